# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# What a request reserved from its key's budget is settled however it
# ends: a request whose providers all fail costs nothing, a stream the
# client leaves costs what was relayed (estimated: no usage came), and
# nothing stays reserved.  The state file is written while nginx runs,
# once a period, so a crash (kill -9) loses at most the last period.  A
# reload re-reads the keys file.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use LLMHarness;
use Test::More;
use IO::Socket::INET;
use JSON::PP;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep time);

plan skip_all => 'TEST_NGINX_LOAD_MODULES has no ngx_http_llm_router_module.so'
    unless ($ENV{TEST_NGINX_LOAD_MODULES} || '')
           =~ /ngx_http_llm_router_module\.so/;

my $h = LLMHarness->new(workers => 2);
my $prefix = $h->prefix;

sub keys_file {
    my (@names) = @_;

    open my $fh, '>', "$prefix/conf/keys.json" or die $!;
    print $fh '{"keys":['
        . join(',', map { '{"hash":"' . sha256_hex("sk-test-$_")
                          . '","label":"' . $_ . '","limit":1}' } @names)
        . ']}';
    close $fh;
}

keys_file('alice');

my %conf = (listen => 'reuseport', http => <<'_EOC_', server => <<'_EOC_');
    llm_zone llm 1m;
    llm_keys $PREFIX/conf/keys.json;
    llm_state_file $PREFIX/state.json 1s;

    llm_provider mock http://127.0.0.1:$PORT/mock/v1;
    llm_provider slow http://127.0.0.1:$PORT/slow/v1;
    llm_provider down http://127.0.0.1:1/v1;

    llm_model m { endpoint mock model=x input=0 output=1000; }
    llm_model s { endpoint slow model=x input=0 output=1000; }
    llm_model f { endpoint down model=x input=0 output=1000; }
_EOC_
        include $ROOT/conf-examples/llm_upstream.conf;
        location /v1/ { llm_router; }
        location /mock/v1/chat/completions { llm_mock chunks=2; }
        location /slow/v1/chat/completions {
            llm_mock chunks=10 interval=300ms;
        }
_EOC_

$h->start(%conf);

my %alice = (Authorization => 'Bearer sk-test-alice');

sub key_info {
    my (%auth) = @_;
    my $r = $h->request('GET', '/v1/key', undef, %auth);
    return $r->{status} == 200 ? decode_json($r->{body})->{data} : undef;
}

# --- every provider fails: nothing spent, nothing left reserved -----------------

my $r = $h->chat('{"model":"f","max_tokens":10,'
                 . '"messages":[{"role":"user","content":"hi"}]}', %alice);
is($r->{status}, 502, 'the provider is down: 502');

my $k = key_info(%alice);
is($k->{usage}, 0, 'a failed request costs nothing');
is($k->{reserved}, 0, 'and leaves nothing reserved');

# --- the client leaves a stream: what was relayed is settled -----------------------

my $body = '{"model":"s","stream":true,"max_tokens":10,'
           . '"messages":[{"role":"user","content":"hi"}]}';

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $h->port) or die $!;
print $s "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
         . "Authorization: Bearer sk-test-alice\r\n"
         . "Content-Length: " . length($body) . "\r\n\r\n$body";

my ($got, $buf) = ('', '');
my $until = time + 5;

while (time < $until && $got !~ /"content":"[^"]+"/) {
    last unless sysread($s, $buf, 4096);
    $got .= $buf;
}

like($got, qr/"content":"[^"]+"/, 'the stream started');

$k = key_info(%alice);
cmp_ok($k->{reserved}, '>', 0, 'while it runs, its worst case is reserved');

close $s;
sleep 0.5;

$k = key_info(%alice);
is($k->{reserved}, 0, 'the client left: nothing stays reserved');
cmp_ok($k->{usage}, '>', 0, 'what was relayed is paid for');
cmp_ok($k->{usage}, '<', 0.01, 'and not the whole worst case');

my $spent = $k->{usage};

# --- a full answer, then the state file written while nginx runs -----------------

$r = $h->chat('{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}',
              %alice);
is($r->{status}, 200, 'an answer');
$spent += 0.002;

sleep 2.5;

ok(-f "$prefix/state.json", 'the state file is written while nginx runs');

my $state = decode_json(do { local (@ARGV, $/) = "$prefix/state.json"; <> });
my $total = $state->{keys}{sha256_hex('sk-test-alice')}{total};
is(sprintf('%.6f', ($total // 0) / 1e12), sprintf('%.6f', $spent),
   'with the spend of a period ago');

# --- a crash: kill -9, master and workers; the spend comes back from the file ---

my $master = $h->master_pid;
my @pids = ($master, split ' ', `pgrep -P $master`);

kill 'KILL', @pids;

for (1 .. 100) {
    last unless grep { kill 0, $_ } @pids;
    sleep 0.05;
}

unlink "$prefix/logs/nginx.pid";
$h->start(%conf);

$k = key_info(%alice);
is(sprintf('%.6f', $k->{usage}), sprintf('%.6f', $spent),
   'after kill -9 and a start, the spend of the last period is back');

# --- a reload re-reads the keys file ----------------------------------------------

my %bob = (Authorization => 'Bearer sk-test-bob');

is($h->chat('{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}',
            %bob)->{status}, 401, 'bob is not a key yet');

keys_file('alice', 'bob');
$h->reload(%conf);
sleep 1;

is($h->chat('{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}',
            %bob)->{status}, 200, 'after a reload, the new keys file has bob');

$k = key_info(%alice);
is(sprintf('%.6f', $k->{usage}), sprintf('%.6f', $spent),
   'and alice keeps her spend');

$h->stop;

done_testing();
