# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# llm_status: the JSON shape (endpoints with their counters and
# histograms, the requests no endpoint took, the keys' spend), the
# Prometheus text format (asked by ?format=prometheus or by a scraper's
# Accept header) line by line, and where each request is counted.
# Counters across two workers and a reload: t/335-status-workers.t.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

our $Chat = "POST /v1/chat/completions\n"
    . '{"model":"m","messages":[{"role":"user","content":"hi"}]}';

# sk-test-alice, 10 USD a month
our $Keys = <<'_EOF_';
{"keys": [
  {"hash": "4d692786b022a5d5a48381dcaf1e5e346366feb5579a1d699de2991d153b05f9",
   "label": "alice \"the tester\"", "limit": 10, "limit_reset": "monthly"}
]}
_EOF_

# every line of the text format 0.0.4: a HELP and a TYPE line before each
# family, then samples: name{label="value",...} number
our $Line = qr/(?:# HELP [a-z_]+ [^\n]+\n# TYPE [a-z_]+ (?:counter|gauge|histogram)\n|[a-z_]+(?:\{[a-z_]+="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-z_]+="(?:[^"\\\n]|\\[\\"n])*")*\})? (?:[0-9]+(?:\.[0-9]+)?|\+Inf)\n)/;

# a body that matches every one of these
sub main::all {
    my $re = join '', map { "(?=[\\s\\S]*?$_)" } @_;
    return qr/\A$re/;
}

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config", <<'_EOC_');
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_provider down http://127.0.0.1:$TEST_NGINX_SERVER_PORT/down/v1;
    llm_model m {
        endpoint down model=d input=0 output=0;
        endpoint mock model=x input=1 output=2;
    }
_EOC_
    }

    $block->set_value("config", <<'_EOC_' . ($block->config // ''));
    location /v1/ { llm_router; }
    location = /llm/status { llm_status; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock chunks=3; }
    location /down/v1/chat/completions { llm_mock status=503; }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: JSON: an answer after a fallback is counted at the endpoint that gave it
The first request tries "down" (free, so first; 503), falls back to
"mock"; the mock counts the body it gets / 4 = 14 prompt tokens and 3
completion tokens: 14 x 1 + 3 x 2 = 20 micro-USD.
--- request eval
[$::Chat, "GET /llm/status"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"provider":"mock"/,
 qr/^\{"generation":1,"endpoints":\[\{"model":"m","provider":"down","upstream_model":"d","inflight":0,"requests":1,"errors":1,"ok":0,"fallbacks":1,"cache_hits":0,"consecutive_failures":1,"circuit":"closed","ttft_ms":null,"tokens_per_second":null,"error_rate":1\.0,"responses":\{\},"prompt_tokens":0,"completion_tokens":0,"cached_tokens":0,"cost":0\.0,"ttft":\{"count":0,"sum":0\.0,"buckets":\{"0\.05":0,"0\.1":0,"0\.25":0,"0\.5":0,"1":0,"2\.5":0,"5":0,"10":0,"20":0,"30":0,"60":0,"120":0,"\+Inf":0\}\},"duration":\{"count":0,[^{}]*\{[^{}]*\}\}\},\{"model":"m","provider":"mock","upstream_model":"x","inflight":0,"requests":1,"errors":0,"ok":1,"fallbacks":0,"cache_hits":0,"consecutive_failures":0,"circuit":"closed","ttft_ms":\d+,"tokens_per_second":(?:null|[0-9.e+-]+),"error_rate":0\.0,"responses":\{"200":1\},"prompt_tokens":14,"completion_tokens":3,"cached_tokens":0,"cost":2e-5,"ttft":\{"count":1,"sum":[0-9.e-]+,"buckets":\{"0\.05":[01],[^{}]*"\+Inf":1\}\},"duration":\{"count":1,[^{}]*\{[^{}]*"\+Inf":1\}\}\}\],"models":\[\{"model":"m","responses":\{\},[^\]]*\}\],"unrouted":\{"responses":\{\},[^\]]*\},"keys":\[\]\}$/]



=== TEST 2: JSON: requests no endpoint took are counted at their model, or unrouted
A bad body has no model (400), an unknown model neither (404); a request
whose constraints leave no endpoint (503) is its model's.
--- request eval
["POST /v1/chat/completions\nnot json",
 "POST /v1/chat/completions\n" . '{"model":"nope","messages":[{"role":"user","content":"hi"}]}',
 "POST /v1/chat/completions\n" . '{"model":"m","provider":{"only":["nobody"]},"messages":[{"role":"user","content":"hi"}]}',
 "GET /llm/status"]
--- error_code eval
[400, 404, 503, 200]
--- response_body_like eval
[qr/invalid_json/, qr/model_not_found|not_found/, qr/"error"/,
 qr/"models":\[\{"model":"m","responses":\{"503":1\},.*"unrouted":\{"responses":\{"400":1,"404":1\},/]



=== TEST 3: Prometheus: ?format=prometheus, every line well formed
--- request eval
[$::Chat, "POST /v1/chat/completions\nnot json",
 "GET /llm/status?format=prometheus"]
--- error_code eval
[200, 400, 200]
--- response_headers eval
["", "", "Content-Type: text/plain; version=0.0.4; charset=utf-8"]
--- response_body_like eval
[qr/"provider":"mock"/, qr/invalid_json/, qr/\A$::Line+\z/]



=== TEST 4: Prometheus: the counters of a fallback and an answer
--- request eval
[$::Chat, "GET /llm/status?format=prometheus"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"provider":"mock"/,
 main::all(qr/^# TYPE llm_requests_total counter\nllm_requests_total\{model="m",provider="mock",status="200"\} 1\n# HELP/m,
     qr/^llm_attempts_total\{model="m",provider="down"\} 1\nllm_attempts_total\{model="m",provider="mock"\} 1\n/m,
     qr/^llm_attempt_failures_total\{model="m",provider="down"\} 1\n/m,
     qr/^llm_fallbacks_total\{model="m",provider="down"\} 1\nllm_fallbacks_total\{model="m",provider="mock"\} 0\n/m,
     qr/^llm_prompt_tokens_total\{model="m",provider="mock"\} 14\n/m,
     qr/^llm_completion_tokens_total\{model="m",provider="mock"\} 3\n/m,
     qr/^llm_cost_usd_total\{model="m",provider="mock"\} 0\.000020000000\n/m,
     qr/^llm_ttft_seconds_bucket\{model="m",provider="mock",le="\+Inf"\} 1\nllm_ttft_seconds_sum\{model="m",provider="mock"\} [0-9.]+\nllm_ttft_seconds_count\{model="m",provider="mock"\} 1\n/m,
     qr/^llm_request_duration_seconds_count\{model="m",provider="mock"\} 1\n/m,
     qr/^llm_circuit_state\{model="m",provider="mock",state="closed"\} 1\nllm_circuit_state\{model="m",provider="mock",state="half_open"\} 0\n/m,
     qr/^llm_config_generation 1\n\z/m)]



=== TEST 5: Prometheus: the histogram's buckets are cumulative and end in the count
(how many requests fall in the first buckets depends on the machine's
speed: the test asks only that the counts never go down)
--- request eval
[$::Chat, $::Chat, "GET /llm/status?format=prometheus"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/mock/, qr/mock/,
 qr/^(?=llm_request_duration_seconds_bucket\{model="m",provider="mock",le="0\.05"\} )(?:llm_request_duration_seconds_bucket\{model="m",provider="mock",le="[0-9.]+"\} 0\n)*(?:llm_request_duration_seconds_bucket\{model="m",provider="mock",le="[0-9.]+"\} 1\n)*(?:llm_request_duration_seconds_bucket\{model="m",provider="mock",le="[0-9.]+"\} 2\n)+llm_request_duration_seconds_bucket\{model="m",provider="mock",le="\+Inf"\} 2\nllm_request_duration_seconds_sum\{model="m",provider="mock"\} [0-9.]+\nllm_request_duration_seconds_count\{model="m",provider="mock"\} 2\n/m]



=== TEST 6: a Prometheus scraper's Accept header gets the text format too
--- more_headers
Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1
--- request
GET /llm/status
--- error_code: 200
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
--- response_body_like chomp
^# HELP llm_requests_total



=== TEST 7: an unknown format is a 400, as JSON
--- request
GET /llm/status?format=xml
--- error_code: 400
--- response_body_like chomp
^\{"error":\{"message":"Unknown format: use \\"json\\" or \\"prometheus\\"","type":"invalid_request_error","param":null,"code":"invalid_format"\}\}$



=== TEST 8: keys: requests, refusals and spend by label, escaped; never the key
The answer: 18 prompt tokens (the body with the "max_tokens":4096 a
budgeted key's request is capped at) x 1 + 3 x 2 = 24 micro-USD.
--- http_config
    llm_keys ../html/keys.json;
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_provider down http://127.0.0.1:$TEST_NGINX_SERVER_PORT/down/v1;
    llm_model m { endpoint mock model=x input=1 output=2; }
    llm_model big { endpoint mock model=y input=1000 output=1000; }
--- user_files eval
">>> keys.json\n$::Keys"
--- more_headers
Authorization: Bearer sk-test-alice
--- request eval
[$::Chat,
 "POST /v1/chat/completions\n" . '{"model":"big","max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}',
 "GET /llm/status?format=prometheus", "GET /llm/status"]
--- error_code eval
[200, 402, 200, 200]
--- response_body_like eval
[qr/mock/, qr/limit_reached/,
 main::all(qr/^llm_key_requests_total\{key="alice \\"the tester\\""\} 2\n/m,
     qr/^llm_key_rejected_total\{key="alice \\"the tester\\""\} 1\n/m,
     qr/^llm_key_spend_usd_total\{key="alice \\"the tester\\""\} 0\.000024000000\n/m,
     qr/^llm_key_reserved_usd\{key="alice \\"the tester\\""\} 0\.000000000000\n/m,
     qr/^llm_key_limit_usd\{key="alice \\"the tester\\""\} 10\.000000000000\n/m,
     qr/^llm_key_limit_remaining_usd\{key="alice \\"the tester\\""\} 9\.999976000000\n/m,
     qr/^llm_key_period_spend_usd\{key="alice \\"the tester\\"",period="monthly"\} 0\.000024000000\n/m
, qr/^llm_requests_total\{model="big",provider="",status="402"\} 1\n/m),
 qr/"keys":\[\{"label":"alice \\"the tester\\"","requests":2,"rejected":1,"usage":2\.4e-5,"usage_daily":2\.4e-5,"usage_weekly":2\.4e-5,"usage_monthly":2\.4e-5,"limit":10\.0,"limit_reset":"monthly","limit_remaining":9\.999976,"reserved":0\.0\}\]\}$/]
--- response_body_unlike eval
[qr/sk-test-alice|4d692786/, qr/sk-test-alice|4d692786/,
 qr/sk-test-alice|4d692786/, qr/sk-test-alice|4d692786/]



=== TEST 9: llm_status answers GET and HEAD only
--- request
POST /llm/status
x
--- error_code: 405
--- response_body_like chomp
"type":"invalid_request_error"
