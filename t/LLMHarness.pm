package LLMHarness;

# A small harness for the few tests that need more than one request/response
# cycle per nginx start (statistics over hundreds of requests, state shared
# by workers, reloads): it starts nginx with a given http{} body, sends
# requests, reloads and stops.  Everything else uses Test::Nginx blocks.
#
# Environment, as for the Test::Nginx suites: TEST_NGINX_BINARY,
# TEST_NGINX_LOAD_MODULES, TEST_NGINX_ROOT.

use strict;
use warnings;

use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

sub new {
    my ($class, %opt) = @_;

    my $self = bless {
        nginx   => $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx',
        root    => $ENV{TEST_NGINX_ROOT} || '.',
        modules => [split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '')],
        prefix  => tempdir('llm-harness-XXXXXX', TMPDIR => 1, CLEANUP => 1),
        workers => $opt{workers} || 1,
    }, $class;

    $self->{port} = free_port();

    make_path("$self->{prefix}/logs", "$self->{prefix}/conf");

    return $self;
}

sub port { $_[0]{port} }
sub prefix { $_[0]{prefix} }

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp')
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# http => what goes in http{}, server => what goes in the server{} that
# listens on port() (listen => extra "listen" parameters, e.g. reuseport);
# "$PORT", "$ROOT" and "$PREFIX" are replaced.
sub write_conf {
    my ($self, %c) = @_;

    my $text = join('', map { "load_module $_;\n" } @{$self->{modules}})
        . "worker_processes $self->{workers};\n"
        . "error_log logs/error.log " . ($c{log_level} || 'info') . ";\n"
        . "pid logs/nginx.pid;\n"
        . ($> == 0 ? "user root;\n" : '')
        . "events { worker_connections 1024; accept_mutex off; }\n"
        . "http {\n"
        . (($c{http} || '') =~ /access_log/ ? '' : "    access_log off;\n")
        . "    client_body_temp_path tmp;\n    proxy_temp_path tmp;\n"
        . ($c{http} || '')
        . "    server {\n        listen 127.0.0.1:\$PORT"
        . ($c{listen} ? " $c{listen}" : '') . ";\n"
        . ($c{server} || '') . "    }\n}\n";

    $text =~ s/\$PORT\b/$self->{port}/g;
    $text =~ s/\$ROOT\b/$self->{root}/g;
    $text =~ s/\$PREFIX\b/$self->{prefix}/g;

    make_path("$self->{prefix}/tmp");

    open my $fh, '>', "$self->{prefix}/conf/nginx.conf" or die $!;
    print $fh $text;
    close $fh;
}

sub start {
    my ($self, %c) = @_;

    $self->write_conf(%c);

    my $out = `$self->{nginx} -p $self->{prefix}/ -c conf/nginx.conf 2>&1`;
    die "nginx did not start: $out" if $?;

    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}");
        return $self if $s;
        sleep 0.05;
    }

    die "nginx does not listen on $self->{port}";
}

sub reload {
    my ($self, %c) = @_;

    $self->write_conf(%c) if %c;

    my $out = `$self->{nginx} -p $self->{prefix}/ -c conf/nginx.conf -s reload 2>&1`;
    die "reload failed: $out" if $?;
}

sub stop {
    my ($self) = @_;

    my $pid = $self->master_pid or return;
    kill 'QUIT', $pid;

    for (1 .. 100) {
        last unless kill 0, $pid;
        sleep 0.05;
    }
}

sub master_pid {
    my ($self) = @_;

    open my $fh, '<', "$self->{prefix}/logs/nginx.pid" or return;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid;
}

sub error_log {
    my ($self) = @_;

    open my $fh, '<', "$self->{prefix}/logs/error.log" or return '';
    local $/;
    return <$fh>;
}

# request(METHOD, URI, BODY, [HEADER => VALUE ...]) -> { status, headers, body }
sub request {
    my ($self, $method, $uri, $body, %h) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}",
                                  Timeout => 10)
        or die "connect: $!";

    $body //= '';

    my $req = "$method $uri HTTP/1.0\r\nHost: localhost\r\n";
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    $req .= "Content-Length: " . length($body) . "\r\n" if length $body;
    $req .= "\r\n$body";

    print $s $req;

    local $/;
    my $raw = <$s> // '';
    close $s;

    my ($head, $content) = split /\r\n\r\n/, $raw, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    my %headers;

    for my $line (split /\r\n/, $head // '') {
        my ($k, $v) = $line =~ /^([^:]+):\s*(.*)$/ or next;
        $headers{lc $k} = $v;
    }

    return { status => $status // 0, headers => \%headers,
             body => $content // '', raw => $raw };
}

sub chat {
    my ($self, $json, %h) = @_;
    return $self->request('POST', '/v1/chat/completions', $json, %h);
}

sub DESTROY {
    my ($self) = @_;
    $self->stop;
}

1;
