# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Every file in conf-examples/ loads with "nginx -t", and the quickstart
# serves a streamed chat completion from its mock providers, as "make run"
# does (on the test's ports instead of 8080 and 8081).

use strict;
use warnings;

use Test::More;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep);

my $root = $ENV{TEST_NGINX_ROOT} || '.';
my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my ($module) = grep { /ngx_http_llm_router_module\.so$/ }
               split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');

plan skip_all => 'TEST_NGINX_LOAD_MODULES has no ngx_http_llm_router_module.so'
    unless $module;

my $prefix = tempdir('llm-examples-XXXXXX', TMPDIR => 1, CLEANUP => 1);

make_path("$prefix/modules", "$prefix/logs", "$prefix/conf");
symlink $module, "$prefix/modules/ngx_http_llm_router_module.so" or die $!;

# the examples include llm_upstream.conf (and read keys files) from their
# own directory
system('cp', glob("$root/conf-examples/*.conf"),
       glob("$root/conf-examples/*.json"), "$prefix/conf/") == 0
    or die "cp failed";

# what the examples keep under /var (a cache, a state file, logs) goes to
# the test's directory instead: "nginx -t" creates cache directories

make_path("$prefix/var/lib/nginx/llm", "$prefix/var/log/nginx");

for my $conf (sort glob("$prefix/conf/*.conf")) {
    next if $conf =~ m{/llm_upstream\.conf$};

    open my $fh, '<', $conf or die "$conf: $!";
    my $text = do { local $/; <$fh> };
    close $fh;

    $text =~ s{(?<=[\s"])/var/}{$prefix/var/}g;

    open $fh, '>', $conf or die "$conf: $!";
    print $fh $text;
    close $fh;

    my $out = `$nginx -t -p $prefix/ -c $conf 2>&1`;
    is($? >> 8, 0, "nginx -t loads conf-examples/" . (split m{/}, $conf)[-1])
        or diag $out;
}

# the quickstart, live, on free ports

my $router_port = free_port();
my $mock_port = free_port();

my $quick = "$prefix/conf/quickstart.conf";
open my $in, '<', $quick or die $!;
my $text = do { local $/; <$in> };
close $in;

$text =~ s/127\.0\.0\.1:8080/127.0.0.1:$router_port/g;
$text =~ s/127\.0\.0\.1:8081/127.0.0.1:$mock_port/g;

open my $out, '>', "$prefix/conf/quickstart-test.conf" or die $!;
print $out $text;
close $out;

# the quickstart logs to stderr: keep it out of the TAP output
system("$nginx -p $prefix/ -c $prefix/conf/quickstart-test.conf "
       . "2>$prefix/logs/stderr.log") == 0
    or BAIL_OUT("cannot start the quickstart");

my $body = '{"model":"mock-fast","stream":true,'
           . '"messages":[{"role":"user","content":"hi"}]}';

my $resp = http_post($router_port, '/v1/chat/completions', $body);

like($resp, qr{\AHTTP/1\.[01] 200 OK\r\n}, 'quickstart answers 200');
like($resp, qr{\r\nContent-Type: text/event-stream\r\n}, 'as a stream');
like($resp, qr{"model":"mock-fast"[^\n]*"provider":"mock-[ab]"}s,
     'from its mock provider');
like($resp, qr{data: \[DONE\]\n\n\z}, 'to the end');

kill 'QUIT', pid_of("$prefix/logs/nginx.pid");
sleep 0.3;

done_testing();


sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp')
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}


sub http_post {
    my ($port, $uri, $body) = @_;
    my $sock;

    for (1 .. 50) {
        $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") and last;
        sleep 0.1;
    }

    die "cannot connect to 127.0.0.1:$port" unless $sock;

    print $sock "POST $uri HTTP/1.0\r\nHost: localhost\r\n"
                . "Content-Length: " . length($body) . "\r\n\r\n$body";

    local $/;
    my $resp = <$sock>;
    return $resp;
}


sub pid_of {
    my $file = shift;

    for (1 .. 50) {
        if (open my $fh, '<', $file) {
            my $pid = <$fh>;
            chomp $pid;
            return $pid if $pid;
        }
        sleep 0.1;
    }

    die "no pid file $file";
}
