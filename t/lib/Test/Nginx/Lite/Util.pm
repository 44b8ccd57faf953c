package Test::Nginx::Lite::Util;

# Settings, nginx.conf generation and nginx process management for the
# minimal Test::Nginx::Socket re-implementation ("Test::Nginx lite") that
# lives in t/lib.  It is only used when the real Test::Nginx::Socket
# (openresty/test-nginx) is not installed; see t/lib/README.md.
#
# The behaviour mirrors Test::Nginx::Util of the real harness: same
# environment variables, same nginx.conf layout, same server root layout,
# same "one nginx per test block" life cycle.  The code is our own.

use v5.36;

use Exporter 'import';
use File::Basename ();
use File::Spec ();
use File::Path qw(make_path remove_tree);
use IO::Socket::INET ();
use POSIX qw(:sys_wait_h SIGQUIT SIGKILL SIGTERM);
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep time);
use Test::More ();
use Test::LongString ();

use Test::Nginx::Lite::Valgrind ();

our @EXPORT_OK = qw(
    bail_out parse_time trim fmt_str parse_headers is_running is_str
    expand_env_in_text error_log_data access_log_data
    setup_server_root write_user_files write_config_file
    start_nginx stop_nginx nginx_is_up check_nginx_health
    get_nginx_version get_canon_version cleanup
);

#----------------------------------------------------------------------------
# Settings.  Environment variables and defaults are the ones documented by
# Test::Nginx::Socket; the exported setter functions live in Socket.pm.
#----------------------------------------------------------------------------

our $RepeatEach          = 1;
our $Workers             = 1;
our $WorkerConnections   = 64;
our $LogLevel            = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled       = 'on';
our $ServerAddr          = '127.0.0.1';
our $ServerName          = 'localhost';
our $ServerPort          = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $NoRootLocation      = 0;
our $TestNginxSleep      = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $Timeout             = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $NoShuffle           = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoLongString        = 0;
our $CheckAccumErrLog    = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $NoNginxManager      = $ENV{TEST_NGINX_NO_NGINX_MANAGER} || 0;
our $UseValgrind         = $ENV{TEST_NGINX_USE_VALGRIND};
our $LoadModules         = $ENV{TEST_NGINX_LOAD_MODULES};
our $PostponeOutput      = $ENV{TEST_NGINX_POSTPONE_OUTPUT};
our $EventType           = $ENV{TEST_NGINX_EVENT_TYPE};
our $ReusePort           = $ENV{TEST_NGINX_REUSE_PORT};
our $WorkerUser          = $ENV{TEST_NGINX_WORKER_USER};
our $Verbose             = $ENV{TEST_NGINX_VERBOSE};
our $ConfigPreamble      = '';
our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;
our @ResponseBodyChecks;

# The real harness runs nginx in the foreground (daemon off) whenever it runs
# it under valgrind, so that it can own the process.
$DaemonEnabled = 'off' if $UseValgrind;

if (defined $WorkerUser && $WorkerUser !~ /^\w+(?:\s+\w+)?$/) {
    die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n";
}

# TEST_NGINX_RANDOMIZE: a random port and server root per test file, so
# that "prove -jN" can run files in parallel (removed again at the end).
our $Randomize = $ENV{TEST_NGINX_RANDOMIZE};
if ($Randomize) {
    $ServerPort = gen_rand_port({})
        // die "Cannot find an available listening port number.\n";
    $ServerPortForClient = $ServerPort;
}

our $ServRoot = $Randomize ? File::Spec->rel2abs("t/servroot_$ServerPort")
              : $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ServRoot =~ s{/+$}{};
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = File::Spec->catfile($ServRoot, 'logs');
our $ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
our $AccLogFile = File::Spec->catfile($LogDir, 'access.log');
our $HtmlDir    = File::Spec->catfile($ServRoot, 'html');
our $ConfDir    = File::Spec->catfile($ServRoot, 'conf');
our $ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
our $PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');

# Valgrind suppressions for stock nginx, next to this file.
our $CoreSuppressions = File::Spec->catfile(
    File::Basename::dirname(File::Spec->rel2abs(__FILE__)), 'nginx-core.supp');

# The nginx binary: TEST_NGINX_BINARY, else "nginx" from PATH, else the
# Debian location.  TEST_NGINX_BINARY may also be a shell command prefix
# such as "env LD_PRELOAD=... /usr/sbin/nginx" (it is then run through
# /bin/sh; the real harness only accepts a plain path here).
our $NginxBinary = $ENV{TEST_NGINX_BINARY}
    || (can_run('nginx') ? 'nginx' : '/usr/sbin/nginx');
our $NginxIsCommand = $NginxBinary =~ /\s/;

our ($NginxVersion, $NginxRawVersion, $OpenSSLVersion, $NginxConfigureArgs);

# Process state.
our $NginxPid;          # pid of the running nginx (master or single process)
our $ValgrindChild;     # pid of our direct child when nginx runs under valgrind
our $ErrLogFilePos = 0; # read position for the per-request error log checks
our $CrashScanPos = 0;  # read position for the worker crash scan
our $InSubprocess;      # true in forked helper processes (mock servers, ...)

srand $$;

#----------------------------------------------------------------------------
# Small helpers
#----------------------------------------------------------------------------

sub can_run ($cmd) {
    if ($cmd =~ m{/}) {
        return -f $cmd && -x _ ? $cmd : undef;
    }
    for my $dir (split /:/, $ENV{PATH} // '') {
        next if $dir eq '';
        my $abs = File::Spec->catfile($dir, $cmd);
        return $abs if -f $abs && -x _;
    }
    return undef;
}

sub bail_out (@msg) {
    cleanup();
    Test::More::BAIL_OUT(join '', @msg);
}

# "1.5", "1.5s", "200ms" -> seconds.
sub parse_time ($tm) {
    return undef unless defined $tm;
    if ($tm =~ s/([^_a-zA-Z])ms$/$1/) {
        $tm = $tm / 1000;
    } else {
        $tm =~ s/([^_a-zA-Z])s$/$1/;
    }
    return $tm;
}

sub trim ($s) {
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;
    return $s;
}

sub fmt_str ($str) {
    chomp $str;
    $str =~ s/"/\\"/g;
    $str =~ s/\r/\\r/g;
    $str =~ s/\n/\\n/g;
    return $str;
}

# "Name: value" lines -> { Name => value }; "!Name" -> { Name => undef }.
sub parse_headers ($s) {
    my %headers;
    for my $line (split /\n/, $s // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            $headers{$line} = undef;
        } else {
            my ($key, $val) = split /\s*:\s*/, $line, 2;
            $headers{$key} = $val // '';
        }
    }
    return \%headers;
}

# String comparison honouring no_long_string() and Regexp expectations.
sub is_str ($got, $expected, $desc = undef) {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    if ($NoLongString) {
        return Test::More::is($got, $expected, $desc);
    }
    return Test::LongString::is_string($got, $expected, $desc);
}

# True if the process exists and is not a zombie (zombies of daemonised
# nginx processes may linger when PID 1 does not reap them).
sub is_running ($pid) {
    return 0 unless $pid && $pid =~ /^\d+$/;
    return 0 unless kill 0, $pid;
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh> // '';
        return 0 if $stat =~ /^\d+ \(.*\) Z /s;
    }
    return 1;
}

# Guard against a stale pid file naming an unrelated process.
sub looks_like_nginx ($pid) {
    open my $fh, '<', "/proc/$pid/cmdline" or return 1;    # no /proc: trust it
    my $cmdline = do { local $/; <$fh> } // '';
    my $base = File::Basename::basename($NginxBinary);
    return $cmdline =~ /nginx|\Q$base\E/;
}

sub get_canon_version (@v) {
    return sprintf "%d.%03d%03d", @v[0 .. 2];
}

sub get_nginx_version () {
    my $out = `$NginxBinary -V 2>&1`;
    if (!defined $out || $? != 0) {
        bail_out("Failed to get the version of the nginx binary "
                 . "\"$NginxBinary\": " . ($out // ''));
    }
    if ($out =~ m{built with OpenSSL (\d+)\.(\d+)\.(\d+)([a-z])?}s) {
        $OpenSSLVersion = get_canon_version($1, $2, $3)
            . (defined $4 ? sprintf('%03d', ord($4) - ord('a')) : '');
    }
    $NginxConfigureArgs = $out =~ /configure arguments:(.*)/ ? $1 : '';
    if ($out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        $NginxRawVersion = "$1.$2.$3";
        $NginxVersion = get_canon_version($1, $2, $3);
        return $NginxVersion;
    }
    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}

# Pick a free TCP port on 127.0.0.1 (for $TEST_NGINX_RAND_PORT_N).
sub gen_rand_port ($used) {
    for (1 .. 1000) {
        my $port = int(rand 63550) + 1985;
        next if $used->{$port};
        my $sock = IO::Socket::INET->new(
            LocalAddr => $ServerAddr, LocalPort => $port,
            Proto => 'tcp', Listen => 1,
        );
        if ($sock) {
            close $sock;
            return $port;
        }
    }
    return undef;
}

# Expand $TEST_NGINX_* environment variables (and the special
# $TEST_NGINX_RAND_PORT_N variables) in config-like sections.
sub expand_env_in_text ($text, $name, $rand_ports) {
    return undef unless defined $text;
    my %used = ($ServerPort => 1, map { $_ => 1 } values %$rand_ports);
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        my $val;
        if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
            $val = $rand_ports->{$var} //= do {
                my $p = gen_rand_port(\%used)
                    // bail_out("$name - Cannot find an available listening "
                                . "port number for $var.\n");
                $used{$p} = 1;
                $p;
            };
        } else {
            bail_out("$name - No environment $var defined.\n")
                unless defined $ENV{$var};
            $val = $ENV{$var};
        }
        $val;
    }eg;
    return $text;
}

#----------------------------------------------------------------------------
# Log access
#----------------------------------------------------------------------------

# Lines of error.log written since the last call (or all of them when
# check_accum_error_log() is in effect), like the real harness.
sub error_log_data () {
    # give nginx a moment to log things in the log phase
    sleep $TestNginxSleep * 3;
    open my $in, '<', $ErrLogFile or return undef;
    seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos > 0;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in unless $CheckAccumErrLog;
    close $in;
    return \@lines;
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    open my $in, '<', $AccLogFile or return undef;
    my @lines = <$in>;
    close $in;
    return \@lines;
}

#----------------------------------------------------------------------------
# Server root and configuration
#----------------------------------------------------------------------------

sub setup_server_root () {
    if (-d $ServRoot) {
        # Only remove what we create ourselves, so that a mis-set
        # TEST_NGINX_SERVROOT cannot wipe unrelated data.
        remove_tree($ConfDir, $HtmlDir, $LogDir,
                    glob("$ServRoot/*_cache"), glob("$ServRoot/*_temp"));
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        next if -d $dir;
        mkdir $dir or bail_out("Failed to do mkdir $dir: $!\n");
    }
    my $index = "$HtmlDir/index.html";
    open my $out, '>', $index or bail_out("Can't open $index for writing: $!\n");
    print $out '<html><head><title>It works!</title></head><body>It works!</body></html>';
    close $out;
    $ErrLogFilePos = 0;
    $CrashScanPos = 0;
}

# --- user_files: ">>> name [date]" headed chunks, or an eval'ed array of
# [name, body, date] triples.
sub write_user_files ($block, $rand_ports) {
    my $name = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @list;
        for my $line (split /^/m, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$1, undef, $2];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: ", ref $files,
                 ", only scalar or ARRAY are accepted");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        $body //= '';
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/} && !-d $1) {
            make_path($1) or bail_out("$name - Cannot create directory $1");
        }
        $body = expand_env_in_text($body, $name, $rand_ports);
        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            system('env', 'TZ=GMT', 'touch', '-t', $date, $path) == 0
                or bail_out("$name - failed to set the mtime of $path\n");
        }
    }
}

# Is the http module providing "<prefix>_temp_path" compiled in?
sub have_http_module ($mod) {
    my $args = $NginxConfigureArgs // '';
    return 0 if $args =~ /--without-http(?:\s|$)/;
    return $args !~ /--without-http_${mod}_module\b/;
}

sub write_config_file ($block, $config, $rand_ports) {
    my $name = $block->name;

    my $http_config = expand_env_in_text(scalar($block->http_config), $name, $rand_ports) // '';
    my $main_config = $block->main_config // '';
    my $post_main_config = $block->post_main_config // '';
    my $err_log_file = $block->error_log_file || $ErrLogFile;
    my $server_name = $block->server_name // $ServerName;
    $config //= '';

    # Like the real harness: load_module lines are appended to the block's
    # --- main_config (on one line) and the result is placed right after
    # the fixed preamble at the top of nginx.conf.
    if ($LoadModules) {
        my @modules = map { "load_module $_;" } grep { length } split /\s+/, $LoadModules;
        $main_config .= join ' ', @modules;
    }
    $main_config = expand_env_in_text($main_config, $name, $rand_ports);
    $post_main_config = expand_env_in_text($post_main_config, $name, $rand_ports);

    my $extra_http_config = '';
    if (defined $PostponeOutput && $http_config !~ /\bpostpone_output\b/) {
        bail_out("Bad TEST_NGINX_POSTPONE_OUTPUT value: $PostponeOutput\n")
            if $PostponeOutput !~ /^\d+$/;
        $extra_http_config .= "    postpone_output $PostponeOutput;\n";
    }

    # Keep all temporary files inside the server root (a stock nginx build
    # does this by default; Debian's build uses /var/lib/nginx).  Skipped for
    # directives the block sets itself at the http{} level.
    my $temp_paths = '';
    my %temp = (client_body => 'client_body', proxy => 'proxy',
                fastcgi => 'fastcgi', uwsgi => 'uwsgi', scgi => 'scgi');
    for my $mod (qw(client_body proxy fastcgi uwsgi scgi)) {
        my $directive = "${mod}_temp_path";
        next if $http_config =~ /\b\Q$directive\E\b/;
        next if $mod ne 'client_body' && !have_http_module($mod);
        $temp_paths .= "    $directive $ServRoot/$temp{$mod}_temp;\n";
    }

    my $listen_opts = $ReusePort ? ' reuseport' : '';

    open my $out, '>', $ConfFile or bail_out("Can't open $ConfFile for writing: $!\n");

    print $out <<"_EOC_";
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $err_log_file $LogLevel;
pid       $PidFile;
env MOCKEAGAIN_VERBOSE;
env MOCKEAGAIN;
env MOCKEAGAIN_WRITE_TIMEOUT_PATTERN;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
env DYLD_INSERT_LIBRARIES;
env DYLD_FORCE_FLAT_NAMESPACE;
_EOC_

    for my $v (@EnvToNginx) {
        print $out 'env ', ($v =~ /\s/ ? "'$v'" : $v), ";\n";
    }

    print $out <<"_EOC_";
#env LUA_PATH;
#env LUA_CPATH;

$main_config

http {
    access_log $AccLogFile;
    #access_log off;

    default_type text/plain;
    keepalive_timeout  68;

$temp_paths$extra_http_config
$http_config

    server {
        listen          $ServerAddr:$ServerPort$listen_opts;
        server_name     '$server_name';

        client_max_body_size 30M;
        #client_body_buffer_size 4k;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

_EOC_

    if (!$NoRootLocation) {
        print $out <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    }

    print $out "    }\n}\n\n$post_main_config\n\n#timer_resolution 100ms;\n\n";
    print $out "events {\n    accept_mutex off;\n\n    worker_connections  $WorkerConnections;\n";
    print $out "    use $EventType;\n" if $EventType;
    print $out "}\n";
    print $out "env ASAN_OPTIONS;\nenv MOCKNOEAGAIN_VERBOSE;\nenv MOCKNOEAGAIN;\n";

    if (defined $WorkerUser) {
        print $out "user $WorkerUser;\n";
    } elsif ($> == 0) {
        print $out "user root;\n";
    }

    close $out;
}

#----------------------------------------------------------------------------
# nginx process management
#----------------------------------------------------------------------------

sub read_pid_file () {
    open my $in, '<', $PidFile or return undef;
    my $pid = do { local $/; <$in> } // '';
    close $in;
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# The nginx command line.  "-e" (nginx >= 1.19.5) points the startup error
# log at logs/error.log, which is where stock nginx builds put it anyway;
# Debian's build would otherwise print startup errors ([emerg] ...) to stderr
# only, and --- must_die + --- error_log could never match.
sub nginx_command () {
    my @args = ('-p', "$ServRoot/", '-c', $ConfFile);
    push @args, '-e', $ErrLogFile if ($NginxVersion // 0) >= 1.019005;
    return ($NginxBinary, @args) unless $NginxIsCommand;
    return ('/bin/sh', '-c', join ' ', 'exec', $NginxBinary, map { "'$_'" } @args);
}

sub valgrind_command (@nginx_cmd) {
    my @opts;
    if ($UseValgrind =~ /^\d+$/) {
        @opts = ('--num-callers=100', '-q', '--tool=memcheck', '--leak-check=full',
                 '--show-possibly-lost=no', '--gen-suppressions=all');
        # nginx's own exit-time "leaks" (shipped with this harness), then
        # the project's ./valgrind.suppress like the real harness
        push @opts, "--suppressions=$CoreSuppressions" if -f $CoreSuppressions;
        push @opts, '--suppressions=valgrind.suppress' if -f 'valgrind.suppress';
    } else {
        @opts = ('-q', split ' ', $UseValgrind);
    }
    # follow the exec()s of a TEST_NGINX_BINARY command prefix
    push @opts, '--trace-children=yes' if $NginxIsCommand;
    # One log file per process (the master forks workers without exec).
    push @opts, "--log-file=$LogDir/valgrind.%p.log"
        unless grep { /^--log-(?:file|fd|socket)=/ } @opts;
    return ('valgrind', @opts, @nginx_cmd);
}

# Run the nginx command line in the foreground and wait for it to exit
# (with daemon on, that is when the daemon has forked).  Returns the raw
# wait status, or -1 when it could not be executed.
sub run_nginx_sync ($name, $max_wait) {
    my @cmd = nginx_command();
    warn "command: @cmd\n" if $Verbose;
    my $pid = fork;
    bail_out("$name - fork() failed: $!") unless defined $pid;
    if ($pid == 0) {
        $InSubprocess = 1;
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    my $deadline = time + $max_wait;
    while (1) {
        my $r = waitpid $pid, WNOHANG;
        if ($r == $pid) {
            my $st = $?;
            return (($st >> 8) == 127 && ($NginxIsCommand || !can_run($NginxBinary)))
                ? -1 : $st;
        }
        if (time > $deadline) {
            # it did not exit by itself (e.g. "daemon off" in --- main_config)
            kill SIGKILL, $pid;
            waitpid $pid, 0;
            return 'hung';
        }
        sleep 0.01;
    }
}

# Start nginx for a block.  Returns nothing; bails out when nginx cannot be
# started at all (like the real harness).
sub start_nginx ($name) {
    wait_port_free($name);

    if ($UseValgrind) {
        my @cmd = valgrind_command(nginx_command());
        warn "$name\n";     # the real harness prints the block name too
        my $pid = fork;
        bail_out("$name - fork() failed: $!") unless defined $pid;
        if ($pid == 0) {
            $InSubprocess = 1;
            setpgrp;
            open STDOUT, '>', '/dev/null';
            exec @cmd or POSIX::_exit(127);
        }
        $ValgrindChild = $NginxPid = $pid;
        sleep $TestNginxSleep;
        return;
    }

    my $waited = 0;
    my $i = 0;
    while (1) {
        my $st = run_nginx_sync($name, 30);
        if ($st eq 'hung') {
            bail_out("$name - nginx did not go to the background "
                     . "(\"daemon off\" in the config?)");
        }
        if ($st == -1) {
            bail_out("$name - Cannot find the nginx executable \"$NginxBinary\"");
        }
        last if $st == 0;

        # Retry for a while when the port is still taken (like the real
        # harness), otherwise give up at once.
        my $log = slurp($ErrLogFile);
        if ($log =~ /Address already in use/ && $waited < 30) {
            $i++;
            my $delay = 0.1 * $i;
            $delay = 1 if $delay > 1;
            sleep $delay;
            $waited += $delay;
            next;
        }
        $log =~ s/^/#   /mg;
        bail_out("$name - Cannot start nginx using command \""
                 . join(' ', nginx_command()) . "\" (status code $st).\n"
                 . "# error.log:\n$log");
    }

    # With "daemon on" the pid file appears right after the fork.
    my $pid;
    for (1 .. 300) {
        $pid = read_pid_file();
        last if $pid && is_running($pid);
        sleep 0.01;
    }
    $NginxPid = $pid;
    sleep $TestNginxSleep;
}

# Start nginx expecting it to die (--- must_die).  Never under valgrind.
# Returns (exec_failed, coredump, exit_code, raw status).
sub run_must_die ($name) {
    wait_port_free($name);
    my $st = run_nginx_sync($name, $Timeout + 5);
    if ($st eq 'hung') {
        # nginx runs in the foreground and did not die: that counts as
        # "did not die" (exit status 0).
        return (0, 0, 0, 0);
    }
    return (1, 0, undef, $st) if $st == -1;
    return (0, ($st & 128) ? 1 : 0, $st >> 8, $st);
}

# Wait until nothing accepts connections on our port any more.
sub wait_port_free ($name) {
    for my $try (1 .. 100) {
        my $sock = IO::Socket::INET->new(
            PeerAddr => $ServerAddr, PeerPort => $ServerPort,
            Proto => 'tcp', Timeout => 0.2,
        );
        return 1 unless $sock;
        close $sock;
        if ($try == 1 && $Verbose) {
            warn "$name - port $ServerPort still in use, waiting\n";
        }
        sleep 0.05;
    }
    warn "WARNING: $name - port $ServerAddr:$ServerPort is still in use by another process\n";
    return 0;
}

sub nginx_is_up () {
    return $NginxPid && is_running($NginxPid);
}

sub wait_exit ($pid, $secs) {
    my $deadline = time + $secs;
    while (is_running($pid)) {
        waitpid $pid, WNOHANG;
        return 0 if time > $deadline;
        sleep 0.02;
    }
    return 1;
}

# Stop the nginx started by us (graceful QUIT, then KILL of its process
# group after timeout() seconds).  Under valgrind, waits for the child and
# returns its wait status.
sub stop_nginx ($name) {
    my $pid = $NginxPid // read_pid_file();
    undef $NginxPid;

    if (defined $ValgrindChild) {
        my $child = $ValgrindChild;
        undef $ValgrindChild;
        kill SIGQUIT, $child;
        # valgrind needs time for its leak check on exit
        my $deadline = time + ($Timeout > 10 ? $Timeout : 10) * 2;
        my $status;
        while (1) {
            my $r = waitpid $child, WNOHANG;
            if ($r == $child || $r == -1) { $status = $?; last }
            if (time > $deadline) {
                warn "$name - timeout when waiting for the valgrind'ed nginx $child to exit\n";
                kill SIGKILL, -$child;
                kill SIGKILL, $child;
                waitpid $child, 0;
                $status = $?;
                last;
            }
            sleep 0.05;
        }
        unlink $PidFile if -f $PidFile;
        return $status;
    }

    return undef unless $pid;
    if (is_running($pid) && looks_like_nginx($pid)) {
        kill SIGQUIT, $pid;
        if (!wait_exit($pid, $Timeout)) {
            warn "$name - timeout when waiting for the process $pid to exit\n";
            my $pgrp = getpgrp($pid);
            if (defined $pgrp && $pgrp == $pid) {
                kill SIGKILL, -$pid;
            } else {
                kill SIGKILL, $pid;
            }
            wait_exit($pid, 5);
        }
    }
    unlink $PidFile if -f $PidFile;
    return undef;
}

# After a block: report crashed workers and a vanished nginx as test
# failures (an extension: the real harness only prints a WARNING for the
# master's "[alert] ... exited on signal" line).
sub check_nginx_health ($name, $expect_running) {
    my @problems;
    if (open my $in, '<', $ErrLogFile) {
        seek $in, $CrashScanPos, 0;
        while (my $line = <$in>) {
            # "exited on signal N" (crash), or a non-zero exit code (e.g.
            # an AddressSanitizer report, fatal errors); code 0 is normal
            if ($line =~ /process \d+ exited (?:on signal \d+|with (?:fatal )?code [1-9])/) {
                chomp $line;
                push @problems, "worker crash: $line";
            }
        }
        $CrashScanPos = tell $in;
        close $in;
    }
    if ($expect_running && !$ValgrindChild && $NginxPid && !is_running($NginxPid)) {
        push @problems, "the nginx process $NginxPid is gone (crashed?)";
        undef $NginxPid;
    }
    for my $p (@problems) {
        Test::More::fail("$name - $p");
    }
}

# Parse valgrind's logs for the block and report the errors.
sub report_valgrind ($name, $status) {
    my @files = sort glob("$LogDir/valgrind.*.log");
    my @records;
    my $report_only = $ENV{TEST_NGINX_VALGRIND_NO_FAIL};
    for my $file (@files) {
        my $text = slurp($file);
        next unless $text =~ /\S/;
        my @recs = Test::Nginx::Lite::Valgrind::parse_log($text);
        # The real harness shows valgrind's output as is; we do too, unless
        # every record is shown as the diagnostics of a failed test below.
        print STDERR $text if $report_only || !@recs;
        push @records, map { [$file, $_] } @recs;
    }
    for my $rec (@records) {
        my ($file, $r) = @$rec;
        my $msg = "$name - valgrind: $r->{kind}: $r->{summary} (see $file)";
        if ($report_only) {
            warn "WARNING: $msg\n";
        } else {
            Test::More::fail($msg);
            Test::More::diag($r->{text});
        }
    }
    if (defined $status && ($status & 127)) {
        Test::More::fail("$name - nginx under valgrind died of signal " . ($status & 127));
    }
}

sub slurp ($file) {
    open my $in, '<', $file or return '';
    local $/;
    my $data = <$in> // '';
    close $in;
    return $data;
}

sub cleanup () {
    $_->() for @CleanupHandlers;
    Test::Nginx::Lite::TcpMock::stop_all() if defined &Test::Nginx::Lite::TcpMock::stop_all;
    if (defined $ValgrindChild) {
        stop_nginx('cleanup');
    }
}

1;
