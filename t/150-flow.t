# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# A client that reads slowly slows the provider down; it does not make the
# worker buffer the provider's answer.  The provider (a mock in an nginx of
# its own) streams 20 MB; the client reads the first bytes, then nothing
# for two seconds: the router's worker must not grow by more than a few
# megabytes, and the whole answer must still arrive afterwards.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use LLMHarness;
use Test::More;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(sleep);

# AddressSanitizer's quarantine holds freed memory: RSS means nothing there
plan skip_all => 'memory growth is not measurable under AddressSanitizer'
    if ($ENV{TEST_NGINX_BINARY} || '') =~ /libasan/;

plan skip_all => 'TEST_NGINX_LOAD_MODULES has no ngx_http_llm_router_module.so'
    unless ($ENV{TEST_NGINX_LOAD_MODULES} || '')
           =~ /ngx_http_llm_router_module\.so/;

my $provider = LLMHarness->new;

$provider->start(server => <<'_EOC_');
        location /big/v1/chat/completions {
            llm_mock size=20m chunks=5000 interval=0;
        }
        location /small/v1/chat/completions {
            llm_mock;
        }
_EOC_

my $router = LLMHarness->new;
my $pport = $provider->port;

$router->start(http => <<"_EOC_", server => <<'_EOC_');
    llm_provider big   http://127.0.0.1:$pport/big/v1;
    llm_provider small http://127.0.0.1:$pport/small/v1;
    llm_model m { endpoint big   model=b input=1 output=1; }
    llm_model s { endpoint small model=s input=1 output=1; }
_EOC_
        include $ROOT/conf-examples/llm_upstream.conf;
        location /v1/ {
            llm_router;
            add_header X-Pid $pid;
        }
_EOC_

my $json = '{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}';

# a warm-up request, and the worker's memory at rest
my $warm = $router->request('POST', '/v1/chat/completions',
                            '{"model":"s","messages":[{"role":"user","content":"x"}]}');
is($warm->{status}, 200, 'warm-up request answered');

my $pid = $warm->{headers}{'x-pid'};
ok($pid, "the worker is $pid");

my $before = rss($pid);

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $router->port,
                              Proto => 'tcp') or die $!;
setsockopt($s, SOL_SOCKET, SO_RCVBUF, 65536);

print $s "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\n"
         . "Content-Length: " . length($json) . "\r\n\r\n$json";

my $got = '';
sysread($s, $got, 4096);
like($got, qr{\AHTTP/1\.[01] 200 }, 'the stream started');

sleep 2;

my $during = rss($pid);
my $growth = $during - $before;

cmp_ok($growth, '<', 4 * 1024,
       "the worker grew by ${growth} KiB while the client did not read");

# now read it all
my $total = length $got;
my $tail = '';

while (1) {
    my $n = sysread($s, my $buf, 65536);
    last unless $n;
    $total += $n;
    $tail = substr($tail . $buf, -64);
}

cmp_ok($total, '>', 20 * 1024 * 1024, "the whole answer arrived ($total bytes)");
like($tail, qr/data: \[DONE\]\n\n\z/, 'to its end');

unlike($router->error_log, qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();


sub rss {
    my $pid = shift;

    open my $fh, '<', "/proc/$pid/status" or die "no process $pid: $!";

    while (<$fh>) {
        return $1 if /^VmRSS:\s+(\d+) kB/;
    }

    die "no VmRSS for $pid";
}
