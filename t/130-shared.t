# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# What one request cannot show: the default pick's price weighting over
# many requests, a cooldown decided by one worker and obeyed by the other,
# the single probe that ends it, statistics kept across "nginx -s reload".
#
# These run nginx through t/LLMHarness.pm (a master, two workers, reuseport
# so connections spread over both) and count.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use LLMHarness;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(sleep time);

plan skip_all => 'TEST_NGINX_LOAD_MODULES has no ngx_http_llm_router_module.so'
    unless ($ENV{TEST_NGINX_LOAD_MODULES} || '')
           =~ /ngx_http_llm_router_module\.so/;

my $msg = '"messages":[{"role":"user","content":"x"}]';

# --- the default pick: weighted by 1 / price^2 -----------------------------

{
    my $h = LLMHarness->new(workers => 2);

    $h->start(http => <<'_EOC_', server => <<'_EOC_');
    llm_provider cheap http://127.0.0.1:$PORT/cheap/v1;
    llm_provider dear  http://127.0.0.1:$PORT/dear/v1;
    llm_model m {
        endpoint cheap model=c input=1 output=0;
        endpoint dear  model=d input=3 output=0;
    }
_EOC_
        include $ROOT/conf-examples/llm_upstream.conf;
        location /v1/ { llm_router; }
        location /cheap/v1/chat/completions { llm_mock chunks=1; }
        location /dear/v1/chat/completions  { llm_mock chunks=1; }
_EOC_

    my %n = (cheap => 0, dear => 0, other => 0);
    my $total = 400;

    for (1 .. $total) {
        my $r = $h->chat(qq{{"model":"m",$msg}});
        my ($p) = $r->{body} =~ /"provider":"(\w+)"/;
        $n{$r->{status} == 200 && $p ? $p : 'other'}++;
    }

    # 1/1^2 : 1/3^2 is 9 : 1, so cheap ~ 360 of 400 (sd 6); 330..390 is
    # five standard deviations: a uniform pick (200), 1/price (300) or
    # always-cheapest (400) cannot pass
    is($n{other}, 0, 'every request answered');
    cmp_ok($n{cheap}, '>=', 330, "cheap picked $n{cheap} of $total (>= 330)");
    cmp_ok($n{cheap}, '<=', 390, "cheap picked $n{cheap} of $total (<= 390)");

    $h->stop;
}

# --- the circuit breaker, across workers ----------------------------------

{
    my $h = LLMHarness->new(workers => 2);

    my %conf = (http => <<'_EOC_', server => <<'_EOC_');
    llm_router_circuit_breaker failures=3 cooldown=2s;
    llm_provider flaky http://127.0.0.1:$PORT/flaky/v1;
    llm_provider good  http://127.0.0.1:$PORT/good/v1;
    llm_model m {
        endpoint flaky model=f input=1 output=1;
        endpoint good  model=g input=1 output=1;
    }
_EOC_
        include $ROOT/conf-examples/llm_upstream.conf;
        location /v1/ {
            llm_router;
            add_header X-Attempts $llm_attempts always;
            add_header X-Pid $pid always;
        }
        location = /status { llm_status; }
        location /flaky/v1/chat/completions {
            if (-f $PREFIX/broken) {
                rewrite ^ /flaky-broken last;
            }
            llm_mock chunks=1;
        }
        location /flaky-broken { llm_mock status=500 ttft=800ms; }
        location /good/v1/chat/completions { llm_mock chunks=1; }
_EOC_

    # reuseport: one listening socket per worker, connections spread by
    # their source port
    $h->start(%conf, listen => 'reuseport');

    my $req = qq{{"model":"m","provider":{"order":["flaky","good"]},$msg}};

    open my $fh, '>', $h->prefix . '/broken' or die $!;
    close $fh;

    # three failures, wherever they land
    my %failed_by;

    for (1 .. 3) {
        my $r = $h->chat($req);
        is($r->{headers}{'x-attempts'}, 2, 'flaky fails, good answers');
        $failed_by{$r->{headers}{'x-pid'}}++;
    }

    like($h->request('GET', '/status')->{body},
         qr/"provider":"flaky".*?"consecutive_failures":3,"circuit":"open"/,
         'the circuit is open');

    # a worker that saw fewer than 3 failures itself skips flaky too
    my ($proof, $skipped, $n) = (0, 0, 0);

    while ($n++ < 200) {
        my $r = $h->chat($req);
        $skipped++ if $r->{headers}{'x-attempts'} == 1
                      && $r->{body} =~ /"provider":"good"/;
        $proof = 1 if ($failed_by{$r->{headers}{'x-pid'}} || 0) < 3
                      && $r->{headers}{'x-attempts'} == 1;
        last if $proof && $n >= 10;
    }

    is($skipped, $n > 200 ? 200 : $n,
       'every request skipped the cooling endpoint');
    ok($proof, 'a worker that did not see the failures obeys the cooldown');

    # cooldown over: exactly one of two concurrent requests probes
    sleep 2.1;

    my @r = concurrent_chats($h, $req, 2);
    my @attempts = sort map { $_->{headers}{'x-attempts'} } @r;

    is_deeply(\@attempts, [1, 2],
              'one request probes (and fails), the other skips')
        or diag explain \@r;

    like($h->request('GET', '/status')->{body},
         qr/"provider":"flaky".*?"circuit":"open"/,
         'a failed probe opens the circuit again');

    # the endpoint recovers: the next probe succeeds and closes the circuit
    unlink $h->prefix . '/broken';
    sleep 2.1;

    my $r = $h->chat($req);
    is($r->{headers}{'x-attempts'}, 1, 'the probe goes through');
    like($r->{body}, qr/"provider":"flaky"/, 'and flaky answers');

    like($h->request('GET', '/status')->{body},
         qr/"provider":"flaky".*?"consecutive_failures":0,"circuit":"closed"/,
         'the circuit is closed');

    for (1 .. 5) {
        like($h->chat($req)->{body}, qr/"provider":"flaky"/,
             'flaky is back in its place');
    }

    $h->stop;
}

# --- statistics survive a reload --------------------------------------------

{
    my $h = LLMHarness->new(workers => 2);

    my $http = <<'_EOC_';
    llm_zone llm 1m;
    llm_provider p http://127.0.0.1:$PORT/p/v1;
    llm_model m { endpoint p model=pm input=1 output=1; }
_EOC_

    my $server = <<'_EOC_';
        include $ROOT/conf-examples/llm_upstream.conf;
        location /v1/ { llm_router; }
        location = /status { llm_status; }
        location /p/v1/chat/completions { llm_mock chunks=1 ttft=20ms; }
_EOC_

    $h->start(http => $http, server => $server);

    $h->chat(qq{{"model":"m",$msg}}) for 1 .. 7;

    my $before = $h->request('GET', '/status')->{body};
    like($before, qr/"generation":1,/, 'first configuration');
    like($before, qr/"requests":7,"errors":0,/, '7 requests counted');
    like($before, qr/"ttft_ms":\d+,/, 'time to first token measured');

    # a new configuration: one more model, the same zone
    $h->reload(http => $http . "    llm_model n { endpoint p model=pn; }\n",
               server => $server);

    my $after;

    # until the new workers answer (the old ones see generation 2 too)
    for (1 .. 50) {
        $after = $h->request('GET', '/status')->{body};
        last if $after =~ /"model":"n"/;
        sleep 0.1;
    }

    like($after, qr/"generation":2,/, 'the reload happened');
    like($after,
         qr/"model":"m","provider":"p","upstream_model":"pm","inflight":0,"requests":7,"errors":0,[^}]*"ttft_ms":\d+,/,
         'the statistics of m survived it');
    like($after,
         qr/"model":"n","provider":"p","upstream_model":"pn","inflight":0,"requests":0,/,
         'the new endpoint starts from zero');

    $h->chat(qq{{"model":"m",$msg}});

    like($h->request('GET', '/status')->{body},
         qr/"upstream_model":"pm","inflight":0,"requests":8,/,
         'and the new workers count on');

    unlike($h->error_log, qr/\[(alert|crit|emerg)\]/, 'no alerts in the log');

    $h->stop;
}

done_testing();


# sends n requests at once, reads the answers
sub concurrent_chats {
    my ($h, $json, $n) = @_;

    my @socks;

    for (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $h->port)
            or die $!;
        print $s "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\n"
                 . "Content-Length: " . length($json) . "\r\n\r\n$json";
        push @socks, $s;
    }

    my @out;

    for my $s (@socks) {
        local $/;
        my $raw = <$s>;
        my %hd;
        for my $line (split /\r\n/, (split /\r\n\r\n/, $raw, 2)[0]) {
            my ($k, $v) = $line =~ /^([^:]+):\s*(.*)$/ or next;
            $hd{lc $k} = $v;
        }
        push @out, { raw => $raw, headers => \%hd };
    }

    return @out;
}
