# NOTE: this file defines the package Test::Nginx::Socket.  It is loaded by
# t/lib/Test/Nginx/Socket.pm when the real Test::Nginx::Socket (from
# openresty/test-nginx) is not installed.  See t/lib/README.md for the
# supported subset and the differences from the real harness.
package Test::Nginx::Socket;

use v5.36;

# Like the real module, we are a Test::Base subclass: the "=== TEST" /
# "--- section" block format, the section filters (eval, chomp, ...),
# --- ONLY / --- SKIP / --- LAST, plan handling in import and all of
# Test::More's functions come from Test::Base.  ("-base" rather than the
# real module's "-Base": no Spiffy source filter in this file.)
use Test::Base -base;

use Carp qw(croak);
use Encode ();
use File::Path ();
use List::Util qw(shuffle min);
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep);
use Digest::MD5 ();
use Digest::SHA ();
use HTTP::Response ();
use Test::LongString ();

use Test::Nginx::Lite::Util qw(
    bail_out parse_time trim fmt_str parse_headers is_running
    expand_env_in_text error_log_data access_log_data
    setup_server_root write_user_files write_config_file
    start_nginx stop_nginx check_nginx_health get_nginx_version
    get_canon_version
);
use Test::Nginx::Lite::HTTP ();
use Test::Nginx::Lite::TcpMock ();

our $VERSION = '0.29_lite';

# Which implementation is loaded ("lite" here, "real" when the shim found
# the real module).
our $Implementation = 'lite';

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test
    repeat_each config_preamble worker_connections
    master_process_enabled
    no_long_string workers master_on master_off
    log_level no_shuffle no_root_location use_hup
    server_name
    server_addr server_root html_dir server_port server_port_for_client
    timeout no_nginx_manager check_accum_error_log
    add_block_preprocessor bail_out add_cleanup_handler
    add_response_body_check
);

# "U::" is a compile-time alias of the Test::Nginx::Lite::Util package, so
# that $U::RepeatEach etc. (including "local $U::LogLevel") refer to the
# shared settings themselves.
BEGIN { *U:: = *Test::Nginx::Lite::Util::; }
our ($PrevConfig, $PrevBlock, $PrevConfigBlock, $PrevRandPorts);

#----------------------------------------------------------------------------
# Exported configuration functions (same names and prototypes as the real)
#----------------------------------------------------------------------------

sub env_to_nginx :prototype(@) (@vars) {
    croak "env_to_nginx: no arguments specified" unless @vars;
    for my $v (@vars) {
        croak "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @Test::Nginx::Lite::Util::EnvToNginx, $v;
    }
}

sub is_str :prototype(@) (@args) {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::Nginx::Lite::Util::is_str(@args);
}

# getter/setter helper for the scalar settings
sub _setting ($ref, @args) {
    $$ref = $args[0] if @args;
    return $$ref;
}

sub repeat_each :prototype(@) (@a)        { _setting(\$U::RepeatEach, @a) }
sub workers :prototype(@) (@a)            { _setting(\$U::Workers, @a) }
sub worker_connections :prototype(@) (@a) { _setting(\$U::WorkerConnections, @a) }
sub log_level :prototype(@) (@a)          { _setting(\$U::LogLevel, @a) }
sub server_name :prototype(@) (@a)        { _setting(\$U::ServerName, @a) }
sub server_addr :prototype(@) (@a)        { _setting(\$U::ServerAddr, @a) }
sub server_port :prototype(@) (@a)        { _setting(\$U::ServerPort, @a) }
sub server_port_for_client :prototype(@) (@a) { _setting(\$U::ServerPortForClient, @a) }
sub timeout :prototype(@) (@a)            { _setting(\$U::Timeout, @a) }
sub config_preamble :prototype($) ($p)    { $U::ConfigPreamble = $p }
sub no_long_string :prototype() ()        { $U::NoLongString = 1 }
sub no_shuffle :prototype() ()            { $U::NoShuffle = 1 }
sub no_root_location :prototype() ()      { $U::NoRootLocation = 1 }
sub no_nginx_manager :prototype() ()      { $U::NoNginxManager = 1 }
sub check_accum_error_log :prototype() () { $U::CheckAccumErrLog = 1 }
sub master_on :prototype() ()             { $U::MasterProcessEnabled = 'on' }
sub master_off :prototype() ()            { $U::MasterProcessEnabled = 'off' }
sub html_dir :prototype() ()              { $U::HtmlDir }
sub server_root :prototype() ()           { $U::ServRoot }

sub master_process_enabled :prototype(@) (@a) {
    $U::MasterProcessEnabled = $a[0] ? 'on' : 'off' if @a;
    return $U::MasterProcessEnabled;
}

# The HUP-reload mode is not implemented: nginx is always restarted.
sub use_hup :prototype() () {
    warn "WARNING: use_hup() is not supported by the lite Test::Nginx::Socket; ignored\n";
}

sub add_block_preprocessor :prototype(&) ($cb) {
    unshift @U::BlockPreprocessors, $cb;
}

sub add_cleanup_handler :prototype($) ($cb) {
    unshift @U::CleanupHandlers, $cb;
}

sub add_response_body_check :prototype($) ($cb) {
    push @U::ResponseBodyChecks, $cb;
}

#----------------------------------------------------------------------------
# Running the blocks
#----------------------------------------------------------------------------

sub run_tests :prototype() () {
    get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $U::ServerPort;

    for my $block ($U::NoShuffle ? Test::Base::blocks() : shuffle Test::Base::blocks()) {
        $_->($block) for @U::BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        run_test($block);
        $PrevBlock = $block;
    }

    Test::Nginx::Lite::Util::cleanup();
}

# Evaluate --- skip_eval / skip_nginx / skip_nginx2 / skip_openssl / todo.
# Returns (tests_to_skip, should_skip, skip_reason, should_todo, todo_reason).
sub _skip_and_todo ($block, $name) {
    my ($n, $skip, $reason);

    if (defined(my $spec = $block->skip_eval)) {
        if ($spec =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            ($n, $reason) = ($1, 'skip_eval');
            my $code = $2;
            $skip = eval $code;
            bail_out("$name - skip_eval - failed to eval the Perl code \"$code\": $@") if $@;
        }
    }

    my $ver = $U::NginxVersion;
    my $cmp = sub ($op, $v) { defined $ver && eval "$ver $op $v" };
    my $vre = qr/([<>]=?)\s*(\d+)\.(\d+)\.(\d+)/;

    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^\s*(\d+)\s*:\s*$vre(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        $n = $1;
        my ($op, $v) = ($2, get_canon_version($3, $4, $5));
        $reason = $6 || "nginx version $op $3.$4.$5";
        $skip = 1 if (!defined $ver && $op =~ /^</) || $cmp->($op, $v);

    } elsif (defined(my $spec2 = $block->skip_nginx2)) {
        $spec2 =~ /^\s*(\d+)\s*:\s*$vre\s*(or|and)\s*$vre(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- skip_nginx2 spec: $spec2");
        $n = $1;
        my ($opa, $va) = ($2, get_canon_version($3, $4, $5));
        my ($opx, $opb, $vb) = ($6, $7, get_canon_version($8, $9, $10));
        $reason = $11;
        my ($ok_a, $ok_b) = ($cmp->($opa, $va), $cmp->($opb, $vb));
        $skip = 1 if !defined $ver || ($opx eq 'or' ? ($ok_a || $ok_b) : ($ok_a && $ok_b));
    }

    if (defined(my $spec = $block->skip_openssl)) {
        $spec =~ /^\s*(\d+)\s*:\s*$vre([a-z])?(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- skip_openssl spec: $spec");
        $n = $1;
        my ($op, $v) = ($2, get_canon_version($3, $4, $5)
                            . (defined $6 ? sprintf('%03d', ord($6) - ord('a')) : ''));
        my $ossl = $U::OpenSSLVersion;
        $reason = $7 || (defined $ossl ? "OpenSSL version $op $3.$4.$5" . ($6 // '')
                                      : 'Not built with OpenSSL');
        $skip = 1 if !defined $ossl || eval "$ossl $op $v";
    }

    my ($todo, $todo_reason);
    if (defined(my $spec = $block->todo)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- todo spec: $spec");
        ($todo, $n, $todo_reason) = (1, $1, $2);
    }

    return ($n, $skip, $reason // 'various reasons', $todo, $todo_reason // 'various reasons');
}

# Sections of the real harness that this implementation ignores (with a
# warning).
our @UNSUPPORTED_SECTIONS = qw(
    http2 http3 curl curl_options curl_protocol curl_error
    udp_listen udp_reply udp_reply_delay udp_query
    stap stap_out stap_out_like stap_out_unlike
    reload_fails todo_nginx skip_slave quic_max_idle_timeout
);

sub run_test :prototype($) ($block) {
    return if defined $block->SKIP;

    my $name = $block->name;
    my $rand_ports = {};
    my $config = expand_env_in_text(scalar($block->config), $name, $rand_ports);

    local $U::LogLevel = $block->log_level || $U::LogLevel;
    my $must_die = $block->must_die;
    # must_die blocks never run under valgrind (nginx is expected to die)
    local $U::UseValgrind = defined $must_die ? undef : $U::UseValgrind;

    if (my @unsupported = grep { exists $block->{$_} } @UNSUPPORTED_SECTIONS) {
        warn "WARNING: $name - section(s) not supported by the lite "
             . "Test::Nginx::Socket, ignored: @unsupported\n";
    }

    # A block without --- config reuses the running nginx (and its config),
    # as in the real harness.
    my $should_restart = 1;
    if (!defined $config) {
        if (!$U::NoNginxManager && !defined $PrevConfig) {
            bail_out("$name - No '--- config' section specified and could not "
                     . "get previous one. Use TEST_NGINX_NO_NGINX_MANAGER ?");
        }
        $should_restart = 0;
    } elsif ($U::NoNginxManager) {
        Test::More::diag("NO_NGINX_MANAGER activated: config for $name ignored");
        $should_restart = 0;
    } elsif (defined $PrevConfig && $config eq $PrevConfig
             && defined $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST}
             && !$ENV{TEST_NGINX_FORCE_RESTART_ON_TEST})
    {
        $should_restart = 0;
    }

    my ($tests_to_skip, $should_skip, $skip_reason, $should_todo, $todo_reason)
        = _skip_and_todo($block, $name);

    # Deviation: under valgrind nginx is stopped after every block, so a
    # block without --- config has to start it again with the previous
    # block's configuration (the real harness fails to connect here).
    if (!defined $config && $U::UseValgrind && !$U::NoNginxManager && !$should_skip
        && defined $PrevConfigBlock && !Test::Nginx::Lite::Util::nginx_is_up())
    {
        setup_server_root();
        write_user_files($PrevConfigBlock, $PrevRandPorts);
        write_config_file($PrevConfigBlock, $PrevConfig, $PrevRandPorts);
        start_nginx($name);
    }

    if (!$U::NoNginxManager && !$should_skip && $should_restart) {
        $PrevConfig = $config;
        ($PrevConfigBlock, $PrevRandPorts) = ($block, $rand_ports);

        stop_nginx($name);
        check_prev_block_shutdown_error_log();

        setup_server_root();
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports);

        if (defined $must_die) {
            run_must_die_block($block, $must_die);
            return;
        }

        start_nginx($name);
    }

    if ($block->init) {
        eval $block->init;
        bail_out("$name - init failed: $@") if $@;
    }

    $U::ErrLogFilePos = 0;
    for my $i (1 .. $U::RepeatEach) {
        my $mock = defined $block->tcp_listen
                 ? Test::Nginx::Lite::TcpMock::start($block, $name) : undef;

        write_user_files($block, $rand_ports) if $i > 1;

        if ($should_skip && defined $tests_to_skip) {
            SKIP: {
                skip("$name - $skip_reason", $tests_to_skip);
            }
        } elsif ($should_todo) {
            TODO: {
                todo_skip("$name - $todo_reason", $tests_to_skip);
            }
        } else {
            run_test_helper($block, $i - 1);
            Test::Nginx::Lite::TcpMock::check($mock, $block, $name);
        }

        Test::Nginx::Lite::TcpMock::stop($mock, $name);
    }

    # Extension: worker crashes / a vanished nginx fail the block.
    if (!$U::NoNginxManager && !$should_skip) {
        check_nginx_health($name, 1);
    }

    if (my $total_errlog = $ENV{TEST_NGINX_ERROR_LOG}) {
        if (-s $U::ErrLogFile && open my $out, '>>', $total_errlog) {
            print $out "\n=== $0 $name\n", Test::Nginx::Lite::Util::slurp($U::ErrLogFile);
            close $out;
        }
    }

    # Under valgrind nginx is stopped after every block, so that valgrind
    # writes its leak report, which is then checked.
    if ($U::UseValgrind && defined $U::ValgrindChild) {
        my $status = stop_nginx($name);
        Test::Nginx::Lite::Util::report_valgrind($name, $status);
    }
}

# --- must_die: start nginx and expect it to exit with an error.
sub run_must_die_block ($block, $must_die) {
    my $name = $block->name;
    $U::ErrLogFilePos = 0;
    for my $i (0 .. $U::RepeatEach - 1) {
        my ($exec_failed, $coredump, $exit_code, $status)
            = Test::Nginx::Lite::Util::run_must_die($name);

        if ($exec_failed) {
            fail("$name - failed to execute the nginx command line");
        } elsif ($coredump) {
            fail("$name - nginx core dumped");
        } elsif (looks_like_number($must_die)) {
            is($must_die, $exit_code, "$name - die with the expected exit code");
        } else {
            isnt($status, 0, "$name - die as expected");
        }

        check_error_log($block, undef, $i, 0);

        if (!$exec_failed && $status == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing it (req $i)";
            for (1 .. 15) {
                last if -f $U::PidFile;
                sleep $U::TestNginxSleep;
            }
            stop_nginx($name);
        }
    }
}

# Send the block's request(s) and run the response and log checks, once per
# repeat_each() iteration.
sub run_test_helper ($block, $repeated_req_idx) {
    my $name = $block->name;
    my $reqs = Test::Nginx::Lite::HTTP::get_req_from_block($block);
    bail_out("$name - request empty") unless @$reqs;

    my $timeout = parse_time(scalar($block->timeout)) // $U::Timeout;
    my $pipelined = $block->pipelined_requests;
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    my $res;
    my $req_idx = 0;

    for my $one_req (@$reqs) {
        my ($raw_resp, $head_req) = Test::Nginx::Lite::HTTP::send_request(
            $one_req, scalar($block->raw_request_middle_delay), $timeout, $block);

        # pipelined responses arrive on one connection, one after another
        my $n = $pipelined ? scalar @$pipelined : 0;

        while (1) {
            $raw_resp //= '';
            my ($raw_headers, $left);

            if (!defined $block->ignore_response) {
                if (defined $block->http09) {
                    $res = HTTP::Response->new(200, 'OK', [], $raw_resp);
                    $raw_headers = '';
                } else {
                    ($res, $raw_headers, $left) = Test::Nginx::Lite::HTTP::parse_response(
                        $name, $raw_resp, $head_req);
                }
            }

            if (!$n) {
                if (defined $left && length $left) {
                    $left =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                    warn "WARNING: $name - unexpected extra bytes after last chunk in ",
                         "response: \"$left\"\n";
                }
            } else {
                $raw_resp = $left;
                $n--;
            }

            if (!defined $block->ignore_response) {
                check_error_code($block, $res, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $req_idx, $need_array);
                transform_response_body($block, $res, $req_idx);
                check_response_body($block, $res, $req_idx, $repeated_req_idx, $need_array);
            }

            # the logs are checked after every request but the last here
            if ($n || $req_idx < @$reqs - 1) {
                sleep $block->wait if $block->wait;
                check_error_log($block, $res, $repeated_req_idx, $need_array);
                check_access_log($block, $repeated_req_idx) unless defined $block->ignore_response;
            }

            $req_idx++;
            last unless $n;
        }
    }

    sleep $block->wait if $block->wait;
    check_error_log($block, $res, $repeated_req_idx, $need_array);
    check_access_log($block, $repeated_req_idx) unless defined $block->ignore_response;
}

#----------------------------------------------------------------------------
# Checks (one subtest each, as counted by the real harness)
#----------------------------------------------------------------------------

# Expected value for request number $req_idx: blocks with several requests
# need arrays.
sub get_indexed_value ($name, $value, $req_idx, $need_array) {
    if ($need_array) {
        return $value->[$req_idx] if ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.");
    }
    if (ref $value eq 'ARRAY') {
        bail_out("$name - SHOULD NOT HAPPEN: idx != 0 and don't need array.") if $req_idx;
        return $value->[0];
    }
    return $value;
}

sub _subst_port ($s) {
    return $s if !defined $s || ref $s;
    $s =~ s/\$ServerPort\b/$U::ServerPort/g;
    $s =~ s/\$ServerPortForClient\b/$U::ServerPortForClient/g;
    return $s;
}

# Always one test: --- error_code_like, --- error_code, or 200.
sub check_error_code ($block, $res, $req_idx, $need_array) {
    my $name = $block->name;
    my $got = ($res && $res->code) || '';
    if (defined $block->error_code_like) {
        my $pat = get_indexed_value($name, scalar($block->error_code_like), $req_idx, $need_array);
        like($got, qr/$pat/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        is($got, get_indexed_value($name, scalar($block->error_code), $req_idx, $need_array),
           "$name - status code ok");
    } else {
        is($got, 200, "$name - status code ok");
    }
}

sub check_raw_response_headers ($block, $raw_headers, $req_idx, $need_array) {
    my $name = $block->name;
    if (defined $block->raw_response_headers_like) {
        my $pat = get_indexed_value($name, scalar($block->raw_response_headers_like),
                                    $req_idx, $need_array);
        like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = get_indexed_value($name, scalar($block->raw_response_headers_unlike),
                                    $req_idx, $need_array);
        unlike($raw_headers, qr/$pat/s, "$name - raw resp headers unlike");
    }
}

# One test per header line; "!Name" asserts absence.  --- response_headers_like
# is only looked at when there is no --- response_headers (as in the real).
sub check_response_headers ($block, $res, $raw_headers, $req_idx, $need_array) {
    my $name = $block->name;
    if (defined $block->response_headers) {
        my $headers = parse_headers(get_indexed_value(
            $name, scalar($block->response_headers), $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key};
            if (!defined $val) {
                unlike($raw_headers // '', qr/^\s*\Q$key\E\s*:/ms,
                       "$name - header $key not present in the raw headers");
                next;
            }
            my $actual = $res ? $res->header($key) : undef;
            is($actual // '', _subst_port($val), "$name - header $key ok");
        }
    } elsif (defined $block->response_headers_like) {
        my $headers = parse_headers(get_indexed_value(
            $name, scalar($block->response_headers_like), $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key} // '';
            my $actual = $res ? $res->header($key) : undef;
            like($actual // '', qr/^$val$/, "$name - header $key like ok");
        }
    }
}

sub run_filter_helper ($block, $filter, $content) {
    my $name = $block->name;
    return $filter->($content) if ref $filter eq 'CODE';
    bail_out("$name - the --- response_body_filters section only supports "
             . "subroutine reference values and string values") if ref $filter;
    my %builtin = (
        md5_hex  => \&Digest::MD5::md5_hex,
        sha1_hex => \&Digest::SHA::sha1_hex,
        uc       => sub ($s) { uc $s },
        lc       => sub ($s) { lc $s },
        ucfirst  => sub ($s) { ucfirst $s },
        lcfirst  => sub ($s) { lcfirst $s },
        length   => sub ($s) { length $s },
    );
    my $f = $builtin{$filter}
        or bail_out("$name - unknown filter, \"$filter\", specified in the "
                    . "--- response_body_filters section");
    return $f->($content);
}

sub transform_response_body ($block, $res, $req_idx) {
    return unless defined $res;
    my $content = $res->content;
    return unless defined $content;
    my $filters = $block->response_body_filters;
    return unless defined $filters;

    my $name = $block->name;
    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [split /\s+/, $filters];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }
    my $filter = $filters;
    if (ref $filters->[0] eq 'ARRAY') {
        # one list of filters per request
        $filter = $filters->[$req_idx];
        bail_out("$name - the ---response_body_filters two-dimensional array "
                 . "unmatch the specified request($req_idx)") unless defined $filter;
    }
    $content = run_filter_helper($block, $_, $content) for @$filter;
    $res->content($content);
}

# One test: --- response_body (exact, or a Regexp from eval), else
# --- response_body_like, else --- response_body_unlike.  NOTE: when both
# _like and _unlike are given only _like is checked (as in the real).
sub check_response_body ($block, $res, $req_idx, $repeated_req_idx, $need_array) {
    my $name = $block->name;
    my $content = $res ? $res->content : undef;
    if (defined $content) {
        $content =~ s/^TE: deflate,gzip;q=0\.3\r\n//gms;
        $content =~ s/^Connection: TE, close\r\n//gms;
    }

    if (defined $block->response_body || defined $block->response_body_eval) {
        my $expected;
        if ($block->response_body_eval) {
            diag("$name - response_body_eval is DEPRECATED. Use response_body eval instead.");
            $expected = eval get_indexed_value($name, scalar($block->response_body_eval),
                                               $req_idx, $need_array);
            warn $@ if $@;
        } else {
            $expected = get_indexed_value($name, scalar($block->response_body), $req_idx, $need_array);
        }
        if ($block->charset) {
            Encode::from_to($expected, 'UTF-8', scalar($block->charset));
        }
        $expected = _subst_port($expected);

        my $desc = "$name - response_body - response is expected "
                 . "(repeated req $repeated_req_idx, req $req_idx)";
        if (ref $expected) {
            like($content, $expected, "$name - response_body - like "
                 . "(repeated req $repeated_req_idx, req $req_idx)");
        } elsif ($U::NoLongString) {
            is($content, $expected, $desc);
        } else {
            Test::LongString::is_string($content, $expected, $desc);
        }

    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my ($patterns, $type) = defined $block->response_body_like
            ? (scalar($block->response_body_like), 'like')
            : (scalar($block->response_body_unlike), 'unlike');
        my $pat = get_indexed_value($name, $patterns, $req_idx, $need_array);
        $pat = _subst_port("$pat");
        my $summary = trim($content) // '';
        my $desc = "$name - response_body_$type - response is expected ($summary)";
        if ($type eq 'like') {
            like($content, qr/$pat/s, $desc);
        } else {
            unlike($content, qr/$pat/s, $desc);
        }
    }

    for my $check (@U::ResponseBodyChecks) {
        $check->($block, $res ? $res->content : undef, $req_idx, $repeated_req_idx, 0);
    }
}

# Does a section value (string, Regexp or array of them) contain $pat?
sub value_contains ($val, $pat) {
    return $val =~ /\Q$pat\E/ if !ref $val || ref $val eq 'Regexp';
    if (ref $val eq 'ARRAY') {
        for my $v (@$val) {
            return 1 if value_contains($v, $pat);
        }
    }
    return undef;
}

# --- error_log / --- no_error_log style value -> list of patterns
# (strings match literally, Regexps as regexes).
sub _patterns ($pats) {
    if (!ref $pats) {
        chomp $pats;
        return [split /\n+/, $pats];
    }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub _line_matches ($line, $pat) {
    return ref $pat ? $line =~ /$pat/ : $line =~ /\Q$pat\E/;
}

# "pattern must match some line": one test per pattern.
sub _check_log_present ($name, $pats, $lines, $what, $suffix) {
    $pats = _patterns($pats);
    for my $line (@{ $lines // [] }) {
        for my $pat (@$pats) {
            next unless defined $pat;
            if (_line_matches($line, $pat)) {
                pass("$name - pattern \"$pat\" matches a line in $what$suffix");
                undef $pat;
            }
        }
    }
    for my $pat (@$pats) {
        fail("$name - pattern \"$pat\" should match a line in $what$suffix") if defined $pat;
    }
}

# "pattern must not match any line": one passing test per pattern, or one
# failing test per matching line.
sub _check_log_absent ($name, $pats, $lines, $what, $suffix) {
    $pats = _patterns($pats);
    my %found;
    $lines //= [];
    for my $i (0 .. $#$lines) {
        my $line = $lines->[$i];
        for my $pat (@$pats) {
            next unless defined $pat;
            next unless _line_matches($line, $pat);
            if ($found{$pat}++) {
                Test::More->builder->no_ending(1);
            }
            my @more = @$lines[$i + 1 .. min($i + 9, $#$lines - 1)];
            fail("$name - pattern \"" . fmt_str($pat) . "\" should not match any line in "
                 . "$what but matches line \"" . fmt_str($line) . "\"$suffix\n" . join '', @more);
        }
    }
    for my $pat (@$pats) {
        next if !defined $pat || $found{$pat};
        pass("$name - pattern \"" . fmt_str($pat) . "\" does not match a line in $what$suffix");
    }
}

sub check_error_log ($block, $res, $repeated_req_idx, $need_array) {
    my $name = $block->name;
    my $lines;
    my %warn_for = (alert => 1, crit => 1, emerg => 1);

    my $grep_pat = $block->grep_error_log;
    if (defined $grep_pat) {
        $grep_pat = $grep_pat->[$repeated_req_idx] if ref $grep_pat eq 'ARRAY';
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- grep_error_log_out is defined");
    }

    if (defined $grep_pat) {
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined")
            unless defined $expected;
        $expected = $expected->[$repeated_req_idx] if ref $expected eq 'ARRAY';

        $lines //= error_log_data();
        my $matched = '';
        for my $line (@{ $lines // [] }) {
            if (ref $grep_pat ? $line =~ /$grep_pat/ : $line =~ /\Q$grep_pat\E/) {
                $matched .= "$&\n" if $& !~ /\n/;
            }
        }
        my $desc = "$name - grep_error_log_out (req $repeated_req_idx)";
        if (ref $expected eq 'Regexp') {
            like($matched, $expected, $desc);
        } elsif ($U::NoLongString) {
            is($matched, $expected, $desc);
        } else {
            Test::LongString::is_string($matched, $expected, $desc);
        }
    }

    for my $section (qw(error_log no_error_log)) {
        my $pats = $block->$section;
        next unless defined $pats;
        for my $level (keys %warn_for) {
            delete $warn_for{$level} if value_contains($pats, "[$level");
        }
        $lines //= error_log_data();
        my $check = $section eq 'error_log' ? \&_check_log_present : \&_check_log_absent;
        $check->($name, $pats, $lines, 'error.log', " (req $repeated_req_idx)");
    }

    # [alert], [crit] and [emerg] lines are reported as warnings unless the
    # block mentions them.
    for my $level (sort keys %warn_for) {
        $lines //= error_log_data();
        for my $line (@{ $lines // [] }) {
            warn "WARNING: $name - " . fmt_str($line) . "\n" if $line =~ /\[$level\]/;
        }
    }

    for my $line (@{ $lines // [] }) {
        if ($line =~ /\bAssertion .*?failed\b/) {
            Test::More->builder->no_ending(1);
            chomp(my $l = $line);
            fail("$name - $l\n");
        }
    }
}

sub check_access_log ($block, $repeated_req_idx) {
    my $name = $block->name;
    my $lines;
    if (defined(my $pats = $block->access_log)) {
        $lines //= access_log_data();
        _check_log_present($name, $pats, $lines, 'access.log', " (req $repeated_req_idx)");
    }
    if (defined(my $pats = $block->no_access_log)) {
        $lines //= access_log_data();
        _check_log_absent($name, $pats, $lines, 'access.log', " (req $repeated_req_idx)");
    }
}

# --- shutdown_error_log (and, only together with it, --- no_shutdown_error_log)
# of the previous block, checked once its nginx has been stopped.
sub check_prev_block_shutdown_error_log () {
    my $block = $PrevBlock;
    return unless defined $block && defined $block->shutdown_error_log;
    return if $ENV{TEST_NGINX_NO_CLEAN};
    my $name = $block->name;
    my $lines = error_log_data();
    if (defined(my $no = $block->no_shutdown_error_log)) {
        _check_log_absent($name, $no, $lines, 'error.log', '');
    }
    _check_log_present($name, scalar($block->shutdown_error_log), $lines, 'error.log', '');
    undef $PrevBlock;
}

END {
    return if $U::InSubprocess;
    local $?;
    Test::Nginx::Lite::Util::cleanup();
    if ($U::UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN}) {
        stop_nginx('END') unless $U::NoNginxManager;
    }
    check_prev_block_shutdown_error_log();
    if ($U::Randomize && $U::ServRoot =~ m{/t/servroot_\d+$} && -d $U::ServRoot) {
        File::Path::remove_tree($U::ServRoot);
    }
}

1;
