# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# llm_status's counters are the zone's: requests served by two workers add
# up in one place, whichever worker answers the scrape, and a reload keeps
# them.  The Prometheus text is parsed line by line as a scraper would:
# every sample belongs to a family declared before it, no series twice,
# histogram buckets cumulative and ending in their count.
#
# Runs nginx through t/LLMHarness.pm (a master, two workers, reuseport).

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use LLMHarness;
use Test::More;
use JSON::PP;

plan skip_all => 'TEST_NGINX_LOAD_MODULES has no ngx_http_llm_router_module.so'
    unless ($ENV{TEST_NGINX_LOAD_MODULES} || '')
           =~ /ngx_http_llm_router_module\.so/;

my $msg = '"messages":[{"role":"user","content":"x"}]';

my $h = LLMHarness->new(workers => 2);

my $http = <<'_EOC_';
    llm_router_circuit_breaker off;
    llm_provider p http://127.0.0.1:$PORT/p/v1;
    llm_provider q http://127.0.0.1:$PORT/q/v1;
    llm_model m { endpoint p model=pm input=1 output=1; }
    llm_model n { endpoint q model=qn input=1 output=1; }
_EOC_

my $server = <<'_EOC_';
        include $ROOT/conf-examples/llm_upstream.conf;
        location /v1/ {
            llm_router;
            add_header X-Pid $pid always;
        }
        location = /status {
            llm_status;
            add_header X-Pid $pid always;
        }
        location /p/v1/chat/completions { llm_mock chunks=2; }
        location /q/v1/chat/completions { llm_mock status=500; }
_EOC_

$h->start(http => $http, server => $server, listen => 'reuseport');

# 60 answers from m, 10 failures from n, 5 bad requests, over both workers

my (%pids, %status);

for my $i (1 .. 75) {
    my $r = $i <= 60 ? $h->chat(qq{{"model":"m",$msg}})
          : $i <= 70 ? $h->chat(qq{{"model":"n",$msg}})
          : $h->chat('{');

    $pids{$r->{headers}{'x-pid'} // '?'}++;
    $status{$r->{status}}++;
}

is_deeply(\%status, { 200 => 60, 502 => 10, 400 => 5 }, 'the answers');
is(scalar(grep { $_ ne '?' } keys %pids), 2, 'both workers answered')
    or diag explain \%pids;

# every scrape, by either worker, sees all of them

my %seen;

for (1 .. 10) {
    my $r = $h->request('GET', '/status?format=prometheus');
    $seen{$r->{headers}{'x-pid'}}++;

    my $m = parse_prometheus($r->{body});

    is($m->{'llm_requests_total{model="m",provider="p",status="200"}'}, 60,
       "60 answers of m counted (worker $r->{headers}{'x-pid'})");
    is($m->{'llm_requests_total{model="n",provider="q",status="502"}'}, 10,
       '10 failures of n');
    is($m->{'llm_requests_total{model="",provider="",status="400"}'}, 5,
       '5 bad requests');
    is($m->{'llm_request_duration_seconds_count{model="m",provider="p"}'},
       60, 'the duration histogram of m has 60');
    is($m->{'llm_completion_tokens_total{model="m",provider="p"}'}, 120,
       '2 completion tokens each');
    is($m->{'llm_attempt_failures_total{model="n",provider="q"}'}, 10,
       'the failed attempts');
}

is(scalar keys %seen, 2, 'both workers were scraped') or diag explain \%seen;

my $json = decode_json($h->request('GET', '/status')->{body});
my ($ep) = grep { $_->{model} eq 'm' } @{$json->{endpoints}};

is($ep->{requests}, 60, 'JSON: 60 attempts');
is($ep->{ok}, 60, 'JSON: all answered');
is($ep->{responses}{200}, 60, 'JSON: 60 answers');
is($ep->{duration}{count}, 60, 'JSON: the duration histogram');
is($ep->{duration}{buckets}{'+Inf'}, 60, 'JSON: its +Inf bucket');
is($json->{unrouted}{responses}{400}, 5, 'JSON: the bad requests');

# a reload keeps them; the new workers count on

$h->reload(http => $http . "    llm_model o { endpoint p model=po; }\n",
           server => $server, listen => 'reuseport');

my $m;

for (1 .. 50) {
    $m = parse_prometheus($h->request('GET', '/status?format=prometheus')
                          ->{body});
    last if ($m->{llm_config_generation} // 0) == 2
            && exists $m->{'llm_attempts_total{model="o",provider="p"}'};
    select undef, undef, undef, 0.1;
}

is($m->{llm_config_generation}, 2, 'reloaded');
is($m->{'llm_requests_total{model="m",provider="p",status="200"}'}, 60,
   'the counters survived the reload');

$h->chat(qq{{"model":"m",$msg}});

$m = parse_prometheus($h->request('GET', '/status?format=prometheus')
                      ->{body});

is($m->{'llm_requests_total{model="m",provider="p",status="200"}'}, 61,
   'and count on');

unlike($h->error_log, qr/\[(alert|crit|emerg)\]/, 'no alerts in the log');

$h->stop;

done_testing();


# Prometheus text format 0.0.4, strictly: returns { 'name{labels}' => value }

sub parse_prometheus {
    my ($text) = @_;

    my (%type, %value, %hist, $family);

    like($text, qr/\n\z/, 'the text ends with a newline');

    for my $line (split /\n/, $text) {

        if ($line =~ /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S/) {
            ok(!$type{$1}, "$1 declared once") or last;
            next;
        }

        if ($line =~ /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/) {
            $type{$1} = $2;
            $family = $1;
            next;
        }

        my ($name, $labels, $v) = $line =~
            /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (\S+)$/;

        if (!defined $name) {
            fail("a well formed line: $line");
            next;
        }

        my $base = $name;

        if (!$type{$name}) {
            (my $b = $name) =~ s/_(?:bucket|sum|count)$//;
            $base = $b if ($type{$b} // '') eq 'histogram';
        }

        if (!defined $family || $base ne $family) {
            fail("$name follows its own TYPE line");
            next;
        }

        if ($v !~ /^(?:[0-9]+(?:\.[0-9]+)?|\+Inf)$/) {
            fail("$name has a number: $v");
            next;
        }

        if ($type{$base} eq 'counter' && $name !~ /_total$/) {
            fail("counter $name ends in _total");
        }

        my $key = $name . ($labels // '');

        if (exists $value{$key}) {
            fail("$key appears once");
        }

        $value{$key} = $v;

        if ($name =~ /_bucket$/) {
            my ($le) = $labels =~ /,?le="([^"]+)"/;
            (my $series = $labels) =~ s/,?le="[^"]+"//;
            my $prev = $hist{"$base$series"};

            if (defined $prev && $v < $prev) {
                fail("$key is cumulative");
            }

            $hist{"$base$series"} = $v;
            $hist{"$base$series+Inf"} = $v if $le eq '+Inf';
        }

        if ($name =~ /_count$/ && $type{$base} eq 'histogram') {
            my $inf = $hist{"$base" . ($labels // '') . "+Inf"};
            if (!defined $inf || $inf != $v) {
                fail("$key equals its +Inf bucket");
            }
        }
    }

    return \%value;
}
