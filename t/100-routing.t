# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Routing controls: provider.order/only/ignore/sort/max_price, the :floor
# and :nitro suffixes, models[] fallback, allow_fallbacks, the 503 when
# nothing is left, llm_router_weights, llm_router_max_attempts.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config", <<'_EOC_');
    llm_provider cheap http://127.0.0.1:$TEST_NGINX_SERVER_PORT/cheap/v1;
    llm_provider mid   http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mid/v1;
    llm_provider dear  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/dear/v1;
    llm_provider fail  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/fail/v1;
    llm_provider busy  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/busy/v1;

    llm_model m {
        endpoint dear  model=d input=3 output=3;
        endpoint cheap model=c input=1 output=1;
        endpoint mid   model=x input=2 output=2;
    }
    llm_model broken {
        endpoint fail  model=f input=1 output=1;
        endpoint busy  model=b input=1 output=1;
    }
    llm_model backup {
        endpoint mid   model=x input=2 output=2;
    }
_EOC_
    }

    if (!defined $block->config) {
        $block->set_value("config", <<'_EOC_');
    location /v1/ {
        llm_router;
        add_header X-LLM-Attempts $llm_attempts always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /cheap/v1/chat/completions { llm_mock chunks=1; }
    location /mid/v1/chat/completions   { llm_mock chunks=1; }
    location /dear/v1/chat/completions  { llm_mock chunks=1; }
    location /fail/v1/chat/completions  { llm_mock status=500; }
    location /busy/v1/chat/completions  { llm_mock status=429; }
_EOC_
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: provider.sort price: the cheapest endpoint, every time
--- request eval
[map { qq{POST /v1/chat/completions\n{"model":"m","provider":{"sort":"price"},"messages":[{"role":"user","content":"x"}]}} } 1 .. 5]
--- error_code eval
[(200) x 5]
--- response_body_like eval
[(qr/"model":"m".*"provider":"cheap"/) x 5]



=== TEST 2: the :floor suffix sorts by price
--- request eval
[map { qq{POST /v1/chat/completions\n{"model":"m:floor","messages":[{"role":"user","content":"x"}]}} } 1 .. 5]
--- response_body_like eval
[(qr/"model":"m".*"provider":"cheap"/) x 5]



=== TEST 3: provider.order puts the listed providers first, in order
--- request eval
[map { qq{POST /v1/chat/completions\n{"model":"m","provider":{"order":["mid","dear"]},"messages":[{"role":"user","content":"x"}]}} } 1 .. 5]
--- response_body_like eval
[(qr/"provider":"mid"/) x 5]



=== TEST 4: provider.order falls back to the next listed, then to the rest
--- request
POST /v1/chat/completions
{"model":"broken","models":["m"],"provider":{"order":["fail","busy"]},"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers
X-LLM-Attempts: 3
--- response_body_like chomp
"model":"m".*"provider":"(cheap|mid|dear)"



=== TEST 5: provider.only keeps the listed providers
--- request eval
[map { qq{POST /v1/chat/completions\n{"model":"m","provider":{"only":["dear"]},"messages":[{"role":"user","content":"x"}]}} } 1 .. 5]
--- response_body_like eval
[(qr/"provider":"dear"/) x 5]



=== TEST 6: provider.ignore drops the listed providers
--- request eval
[map { qq{POST /v1/chat/completions\n{"model":"m","provider":{"ignore":["cheap","mid"]},"messages":[{"role":"user","content":"x"}]}} } 1 .. 5]
--- response_body_like eval
[(qr/"provider":"dear"/) x 5]



=== TEST 7: provider.max_price drops endpoints over the price
--- request eval
[map { qq{POST /v1/chat/completions\n{"model":"m","provider":{"max_price":{"prompt":1.5,"completion":1}},"messages":[{"role":"user","content":"x"}]}} } 1 .. 5]
--- response_body_like eval
[(qr/"provider":"cheap"/) x 5]



=== TEST 8: nothing left after the filters: a 503 naming what removed them
--- request
POST /v1/chat/completions
{"model":"m","provider":{"only":["cheap","dear"],"ignore":["cheap"],"max_price":{"completion":2}},"messages":[{"role":"user","content":"x"}]}
--- error_code: 503
--- response_body_like chomp
^\{"error":\{"message":"No endpoint of \\"m\\" is allowed: provider.only removed 1; provider.ignore removed 1; provider.max_price removed 1","type":"api_error","param":null,"code":"no_endpoint"\}\}$



=== TEST 9: an unknown provider field is a 400
--- request
POST /v1/chat/completions
{"model":"m","provider":{"data_collection":"deny"},"messages":[{"role":"user","content":"x"}]}
--- error_code: 400
--- response_body_like chomp
"message":"Unknown field \\"provider.data_collection\\"".*"code":"invalid_provider"



=== TEST 10: an invalid sort is a 400
--- request
POST /v1/chat/completions
{"model":"m","provider":{"sort":"vibes"},"messages":[{"role":"user","content":"x"}]}
--- error_code: 400
--- response_body_like chomp
"message":"\\"provider.sort\\" must be \\"price\\", \\"latency\\" or \\"throughput\\""



=== TEST 11: provider.only that is not a list of names is a 400
--- request
POST /v1/chat/completions
{"model":"m","provider":{"only":"cheap"},"messages":[{"role":"user","content":"x"}]}
--- error_code: 400
--- response_body_like chomp
"code":"invalid_provider"



=== TEST 12: models[]: when every endpoint of the first model fails, the next model answers
--- request
POST /v1/chat/completions
{"model":"broken","models":["backup"],"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers
X-LLM-Attempts: 3
--- response_body_like chomp
"model":"backup".*"provider":"mid"



=== TEST 13: models[] alone: the first entry is the primary
--- request
POST /v1/chat/completions
{"models":["backup","m"],"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like chomp
"model":"backup".*"provider":"mid"



=== TEST 14: an unknown model in models[] is a 404 naming it
--- request
POST /v1/chat/completions
{"model":"m","models":["nope"],"messages":[{"role":"user","content":"x"}]}
--- error_code: 404
--- response_body_like chomp
"The model \\"nope\\" does not exist on this router"



=== TEST 15: models that is not an array is a 400
--- request
POST /v1/chat/completions
{"model":"m","models":"backup","messages":[{"role":"user","content":"x"}]}
--- error_code: 400
--- response_body_like chomp
"code":"invalid_models"



=== TEST 16: allow_fallbacks false: the first failure as the provider gave it
--- request
POST /v1/chat/completions
{"model":"broken","models":["backup"],"provider":{"order":["busy","fail"],"allow_fallbacks":false},"messages":[{"role":"user","content":"x"}]}
--- error_code: 429
--- response_headers
Retry-After: 1
X-LLM-Attempts: 1
--- response_body_like chomp
^\{"error":\{"message":"mock failure 429","type":"rate_limit_error","param":null,"code":429,"metadata":\{"previous_errors":\[\{"provider":"busy","model":"broken","status":429,"reason":"status","message":"mock failure 429"\}\],"provider_name":"busy"\}\}\}$



=== TEST 17: llm_router_max_attempts bounds the fallbacks
--- config
    location /v1/ {
        llm_router;
        llm_router_max_attempts 2;
        add_header X-LLM-Attempts $llm_attempts always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /fail/v1/chat/completions  { llm_mock status=500; }
    location /busy/v1/chat/completions  { llm_mock status=503; }
    location /mid/v1/chat/completions   { llm_mock chunks=1; }
--- request
POST /v1/chat/completions
{"model":"broken","models":["backup"],"provider":{"order":["fail","busy"]},"messages":[{"role":"user","content":"x"}]}
--- error_code: 502
--- response_headers
X-LLM-Attempts: 2
--- response_body_like chomp
"message":"No provider could answer: 2 attempts failed, the last via provider \\"busy\\" \(status, status 503\)".*"previous_errors":\[\{"provider":"fail",.*"status":500.*\},\{"provider":"busy",.*"status":503



=== TEST 18: sort latency: the endpoint with the shortest time to first token
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /cheap/v1/chat/completions { llm_mock ttft=300ms chunks=1; }
    location /mid/v1/chat/completions   { llm_mock ttft=0 chunks=1; }
    location /dear/v1/chat/completions  { llm_mock ttft=150ms chunks=1; }
--- request eval
[
qq{POST /v1/chat/completions\n{"model":"m","provider":{"only":["cheap"]},"messages":[{"role":"user","content":"x"}]}},
qq{POST /v1/chat/completions\n{"model":"m","provider":{"only":["mid"]},"messages":[{"role":"user","content":"x"}]}},
qq{POST /v1/chat/completions\n{"model":"m","provider":{"only":["dear"]},"messages":[{"role":"user","content":"x"}]}},
qq{POST /v1/chat/completions\n{"model":"m","provider":{"sort":"latency"},"messages":[{"role":"user","content":"x"}]}},
qq{POST /v1/chat/completions\n{"model":"m","provider":{"sort":"latency","ignore":["mid"]},"messages":[{"role":"user","content":"x"}]}},
]
--- response_body_like eval
[qr/"provider":"cheap"/, qr/"provider":"mid"/, qr/"provider":"dear"/,
 qr/"provider":"mid"/, qr/"provider":"dear"/]



=== TEST 19: the :nitro suffix: the endpoint with the most tokens per second
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /cheap/v1/chat/completions { llm_mock chunks=10 interval=40ms; }
    location /mid/v1/chat/completions   { llm_mock chunks=10 interval=1ms; }
    location /dear/v1/chat/completions  { llm_mock chunks=10 interval=20ms; }
--- request eval
[
qq{POST /v1/chat/completions\n{"model":"m","stream":true,"provider":{"only":["cheap"]},"messages":[{"role":"user","content":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}]}},
qq{POST /v1/chat/completions\n{"model":"m","stream":true,"provider":{"only":["mid"]},"messages":[{"role":"user","content":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}]}},
qq{POST /v1/chat/completions\n{"model":"m","stream":true,"provider":{"only":["dear"]},"messages":[{"role":"user","content":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}]}},
qq{POST /v1/chat/completions\n{"model":"m:nitro","messages":[{"role":"user","content":"x"}]}},
qq{POST /v1/chat/completions\n{"model":"m","provider":{"sort":"throughput","ignore":["mid"]},"messages":[{"role":"user","content":"x"}]}},
]
--- response_body_like eval
[qr/"provider":"cheap"/, qr/"provider":"mid"/, qr/"provider":"dear"/,
 qr/"provider":"mid"/, qr/"provider":"dear"/]



=== TEST 20: llm_router_weights: cost only picks the cheapest, deterministically
--- config
    location /v1/ {
        llm_router;
        llm_router_weights cost=1 latency=0 throughput=0 errors=0;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /cheap/v1/chat/completions { llm_mock chunks=1; }
    location /mid/v1/chat/completions   { llm_mock chunks=1; }
    location /dear/v1/chat/completions  { llm_mock chunks=1; }
--- request eval
[map { qq{POST /v1/chat/completions\n{"model":"m","messages":[{"role":"user","content":"x"}]}} } 1 .. 8]
--- response_body_like eval
[(qr/"provider":"cheap"/) x 8]



=== TEST 21: llm_router_weights: latency weighs against a cheaper but slower endpoint
--- config
    location /v1/ {
        llm_router;
        llm_router_weights cost=1 latency=3;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /cheap/v1/chat/completions { llm_mock ttft=300ms chunks=1; }
    location /mid/v1/chat/completions   { llm_mock ttft=0 chunks=1; }
    location /dear/v1/chat/completions  { llm_mock ttft=300ms chunks=1; }
--- request eval
[
qq{POST /v1/chat/completions\n{"model":"m","provider":{"only":["cheap"]},"messages":[{"role":"user","content":"x"}]}},
qq{POST /v1/chat/completions\n{"model":"m","provider":{"only":["mid"]},"messages":[{"role":"user","content":"x"}]}},
qq{POST /v1/chat/completions\n{"model":"m","provider":{"only":["dear"]},"messages":[{"role":"user","content":"x"}]}},
qq{POST /v1/chat/completions\n{"model":"m","messages":[{"role":"user","content":"x"}]}},
qq{POST /v1/chat/completions\n{"model":"m","messages":[{"role":"user","content":"x"}]}},
]
--- response_body_like eval
[qr/"provider":"cheap"/, qr/"provider":"mid"/, qr/"provider":"dear"/,
 qr/"provider":"mid"/, qr/"provider":"mid"/]



=== TEST 22: the decision is logged at info: candidates in order, attempts and outcomes
--- log_level: info
--- request
POST /v1/chat/completions
{"model":"broken","models":["backup"],"provider":{"order":["fail","busy"]},"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- error_log eval
[
qr/llm: candidates in order: broken\/fail \(price 2\.000000, ttft 0ms, err 0\.000\), broken\/busy \(price 2\.000000, ttft 0ms, err 0\.000\), backup\/mid \(price 4\.000000, ttft 0ms, err 0\.000\)/,
qr/llm: attempt 1: model "broken" endpoint "fail" upstream model "f"/,
qr/llm: attempt 1 via "fail" failed: status, status 500/,
qr/llm: attempt 2 via "busy" failed: status, status 429/,
qr/llm: attempt 3: model "backup" endpoint "mid" upstream model "x"/,
qr/llm: attempt 3 via "mid" answered, ttft \d+ms/,
]



=== TEST 23: every provider field counts, whatever its place (max_price first)
--- request eval
[map { qq{POST /v1/chat/completions\n{"model":"m","provider":{"max_price":{"prompt":10},"ignore":["cheap","mid"]},"messages":[{"role":"user","content":"x"}]}} } 1 .. 5]
--- response_body_like eval
[(qr/"provider":"dear"/) x 5]



=== TEST 24: an unknown field after max_price is still refused
--- request
POST /v1/chat/completions
{"model":"m","provider":{"max_price":{"prompt":10},"zdr":true},"messages":[{"role":"user","content":"x"}]}
--- error_code: 400
--- response_body_like chomp
"message":"Unknown field \\"provider.zdr\\""



=== TEST 25: the default pick leaves an endpoint that failed in the last 30 s for last (the circuit breaker is far from open)
Without the rule, 1/price² sends 9 of 10 requests to the cheaper, failing
endpoint first: ten requests in a row answered at the first attempt by
the dearer one cannot happen by chance (1 in 10^10).
--- http_config
    llm_provider flaky  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/flaky/v1;
    llm_provider steady http://127.0.0.1:$TEST_NGINX_SERVER_PORT/steady/v1;
    llm_router_circuit_breaker failures=100;

    llm_model pair {
        endpoint flaky  model=f input=1 output=1;
        endpoint steady model=s input=3 output=3;
    }
--- config
    location /v1/ {
        llm_router;
        add_header X-LLM-Attempts $llm_attempts always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /flaky/v1/chat/completions  { llm_mock status=500; }
    location /steady/v1/chat/completions { llm_mock chunks=1; }
--- request eval
[
qq{POST /v1/chat/completions\n{"model":"pair","provider":{"order":["flaky","steady"]},"messages":[{"role":"user","content":"x"}]}},
map { qq{POST /v1/chat/completions\n{"model":"pair","messages":[{"role":"user","content":"x"}]}} } 1 .. 10
]
--- error_code eval
[(200) x 11]
--- response_headers eval
["X-LLM-Attempts: 2", ("X-LLM-Attempts: 1") x 10]
--- response_body_like eval
[(qr/"provider":"steady"/) x 11]



=== TEST 26: $llm_upstream_model and $llm_ttft name the answering endpoint's model id and its time to first token
--- config
    location /v1/ {
        llm_router;
        add_header X-Up "$llm_upstream_model" always;
        add_header X-TTFT "$llm_ttft" always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mid/v1/chat/completions { llm_mock ttft=200ms chunks=1; }
--- request
POST /v1/chat/completions
{"model":"backup","messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers_like
X-Up: ^x$
X-TTFT: ^(0\.(19[5-9]|[2-9]\d\d)|[1-9]\d*\.\d{3})$
