# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Budgets that hold: 50 requests at once from one key, across two
# workers, whose worst cases add up to far more than the key's budget,
# leave the spend within the limit and the excess refused with 402.  The
# spend survives "nginx -s reload" (the zone) and a stop and start (the
# state file, written atomically).  No key, the client's or a provider's,
# ever appears in the error or the access log.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use LLMHarness;
use Test::More;
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(sleep);

plan skip_all => 'TEST_NGINX_LOAD_MODULES has no ngx_http_llm_router_module.so'
    unless ($ENV{TEST_NGINX_LOAD_MODULES} || '')
           =~ /ngx_http_llm_router_module\.so/;

$ENV{LLM_TEST_PROVIDER_KEY} = 'sk-provider-secret-0006';

my $h = LLMHarness->new(workers => 2);
my $prefix = $h->prefix;

# sk-test-alice: 0.05 USD, nothing else
open my $fh, '>', "$prefix/conf/keys.json" or die $!;
print $fh '{"keys":[{"hash":"4d692786b022a5d5a48381dcaf1e5e346366feb5579a1d699de2991d153b05f9","label":"alice","limit":0.05}]}';
close $fh;

# each answer: 2 completion tokens at 1000 USD/M = 0.002 USD, prompt free;
# each worst case: max_tokens 10 at 1000 USD/M = 0.01 USD: five at most
# fit in 0.05 at once, and the mock takes 600 ms, so the burst overlaps
my %conf = (listen => 'reuseport', log_level => 'info', http => <<'_EOC_', server => <<'_EOC_');
    log_format llm '$remote_addr "$request" $status key=$llm_key '
                   'model=$llm_model provider=$llm_provider cost=$llm_cost';
    access_log logs/access.log llm;

    llm_zone llm 1m;
    llm_keys $PREFIX/conf/keys.json;
    llm_state_file $PREFIX/state.json 1s;

    llm_provider mock http://127.0.0.1:$PORT/mock/v1
                 key=env:LLM_TEST_PROVIDER_KEY;
    llm_model m { endpoint mock model=x input=0 output=1000; }
_EOC_
        include $ROOT/conf-examples/llm_upstream.conf;
        location /v1/ { llm_router; }
        location /mock/v1/chat/completions { llm_mock ttft=600ms chunks=2; }
_EOC_

$h->start(%conf);

my $body = '{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}';
my %auth = (Authorization => 'Bearer sk-test-alice');

# --- the burst ----------------------------------------------------------------

my @socks;

for (1 .. 50) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $h->port)
        or die $!;
    print $s "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\n"
             . "Authorization: Bearer sk-test-alice\r\n"
             . "Content-Length: " . length($body) . "\r\n\r\n$body";
    push @socks, $s;
}

my %status;

for my $s (@socks) {
    local $/;
    my $raw = <$s> // '';
    my ($code) = $raw =~ m{^HTTP/1\.\d (\d+)};
    $status{$code // 'none'}++;
}

my $ok = $status{200} || 0;
my $refused = $status{402} || 0;

is($ok + $refused, 50, "50 answers: $ok 200s, $refused 402s")
    or diag explain \%status;
cmp_ok($ok, '>=', 1, 'some requests went through');
cmp_ok($ok, '<=', 5, 'no more than the budget holds at once (5)');
cmp_ok($refused, '>=', 45, 'the excess was refused with 402');

my $key = decode_json($h->request('GET', '/v1/key', undef, %auth)->{body});

cmp_ok($key->{data}{usage}, '<=', 0.05, "spend $key->{data}{usage} <= 0.05");
is(sprintf('%.6f', $key->{data}{usage}), sprintf('%.6f', $ok * 0.002),
   'spend is exactly what the admitted requests cost');
is($key->{data}{reserved}, 0, 'nothing left reserved');

my $spent = $key->{data}{usage};

# --- the spend survives a reload ---------------------------------------------

$h->reload(%conf);
sleep 1;

$key = decode_json($h->request('GET', '/v1/key', undef, %auth)->{body});
is(sprintf('%.6f', $key->{data}{usage}), sprintf('%.6f', $spent),
   'spend kept across nginx -s reload');

my $r = $h->chat($body, %auth);
is($r->{status}, 200, 'a request after the reload');
$spent += 0.002;

# --- and a stop and start, through the state file ------------------------------

$h->stop;

ok(-f "$prefix/state.json", 'the state file was written at exit');
ok(!-e "$prefix/state.json.tmp", 'no temporary file left behind');

my $state = decode_json(do { local (@ARGV, $/) = "$prefix/state.json"; <> });
is($state->{keys}{'4d692786b022a5d5a48381dcaf1e5e346366feb5579a1d699de2991d153b05f9'}{label},
   'alice', 'it holds the key by its hash, with its label');

$h->start(%conf);

$key = decode_json($h->request('GET', '/v1/key', undef, %auth)->{body});
is(sprintf('%.6f', $key->{data}{usage}), sprintf('%.6f', $spent),
   'spend kept across a stop and a start');

# --- and the budget still holds after it --------------------------------------

my $n = 0;

while ($n < 50) {
    $r = $h->chat($body, %auth);
    last if $r->{status} == 402;
    $n++;
}

is($r->{status}, 402, "refused after $n more requests");

$key = decode_json($h->request('GET', '/v1/key', undef, %auth)->{body});
cmp_ok($key->{data}{usage}, '<=', 0.05, "spend $key->{data}{usage} still <= 0.05");

# --- no key in any log ---------------------------------------------------------

$h->request('POST', '/v1/chat/completions', $body,
            Authorization => 'Bearer sk-test-not-a-key');
$h->request('POST', '/v1/messages',
            '{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}',
            'x-api-key' => 'sk-test-alice');
sleep 0.5;

$h->stop;

my $logs = $h->error_log
           . do { local (@ARGV, $/) = "$prefix/logs/access.log"; <> // '' };

like($logs, qr/key=alice model=m provider=mock cost=0\.002\b/,
     'the access log names the key by its label, and the cost');

for my $secret (qw(sk-test-alice sk-test-not-a-key sk-provider-secret-0006)) {
    unlike($logs, qr/\Q$secret\E/, "no \"$secret\" in the logs");
}

done_testing();
