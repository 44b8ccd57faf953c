# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Fallback before the first byte: every trigger (refused, 500, 429, 408,
# timeout, time-to-first-token deadline, an error event, nonsense) moves to
# the next endpoint, for JSON and for streams, and nothing of the failed
# attempt reaches the client: not a header, not a byte.
#
# The failing endpoint answers "BAD...", the good one "GOOD"; the client
# must never see "BAD".

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

our $Json = "POST /v1/chat/completions\n"
    . '{"model":"m","provider":{"order":["bad","refused","good"]},'
    . '"messages":[{"role":"user","content":"x"}]}';

our $Sse = "POST /v1/chat/completions\n"
    . '{"model":"m","stream":true,'
    . '"provider":{"order":["bad","refused","good"]},'
    . '"messages":[{"role":"user","content":"x"}]}';

# the good answer, whole: nothing before it, nothing of BAD in it
our $GoodJson = qr/\A\{"id":"chatcmpl-mock","object":"chat.completion",[^\n]*"content":"GOOD"[^\n]*"provider":"good"\}\z/;

our $GoodSse = qr/\A(?!.*BAD)(?!(?s:.*"role".*"role"))data: \{[^\n]*"role":"assistant"[^\n]*"provider":"good"\}\n\ndata: \{[^\n]*"content":"GOOD"[^\n]*\n\n.*data: \[DONE\]\n\n\z/s;

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config", <<'_EOC_');
    llm_provider bad     http://127.0.0.1:$TEST_NGINX_SERVER_PORT/bad/v1;
    llm_provider refused http://127.0.0.1:1/v1;
    llm_provider good    http://127.0.0.1:$TEST_NGINX_SERVER_PORT/good/v1;

    llm_model m {
        endpoint bad     model=b input=1 output=1;
        endpoint good    model=g input=1 output=1;
    }
    llm_model r {
        endpoint refused model=r input=1 output=1;
        endpoint good    model=g input=1 output=1;
    }
_EOC_
    }

    my $config = $block->config;
    $config = '' unless defined $config;

    $block->set_value("config", $config . <<'_EOC_');
    location /v1/ {
        llm_router;
        add_header X-LLM-Attempts $llm_attempts always;
        add_header X-LLM-Provider $llm_provider always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /good/v1/chat/completions { llm_mock chunks=1 text=GOOD; }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: refused connection, JSON
--- request eval
$::Json =~ s/"model":"m"/"model":"r"/r
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
X-LLM-Provider: good
--- response_body_like eval
$::GoodJson



=== TEST 2: refused connection, stream
--- request eval
$::Sse =~ s/"model":"m"/"model":"r"/r
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
Content-Type: text/event-stream
--- response_body_like eval
$::GoodSse



=== TEST 3: a 500, JSON
--- config
    location /bad/v1/chat/completions { llm_mock status=500 text=BAD; }
--- request eval
$::Json
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodJson



=== TEST 4: a 500, stream
--- config
    location /bad/v1/chat/completions { llm_mock status=500 text=BAD; }
--- request eval
$::Sse
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodSse



=== TEST 5: a 429, JSON
--- config
    location /bad/v1/chat/completions { llm_mock status=429 text=BAD; }
--- request eval
$::Json
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
!Retry-After
--- response_body_like eval
$::GoodJson



=== TEST 6: a 429, stream
--- config
    location /bad/v1/chat/completions { llm_mock status=429 text=BAD; }
--- request eval
$::Sse
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodSse



=== TEST 7: a 408, JSON
--- config
    location /bad/v1/chat/completions { llm_mock status=408 text=BAD; }
--- request eval
$::Json
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodJson



=== TEST 8: a 502 from a provider's own gateway, stream
--- config
    location /bad/v1/chat/completions { llm_mock status=502 text=BAD; }
--- request eval
$::Sse
--- error_code: 200
--- response_body_like eval
$::GoodSse



=== TEST 9: a timeout (proxy_read_timeout), JSON
--- config
    proxy_read_timeout 300ms;
    location /bad/v1/chat/completions { llm_mock fault=hang text=BAD; }
--- request eval
$::Json
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodJson
--- error_log
upstream timed out



=== TEST 10: a timeout (proxy_read_timeout), stream
--- config
    proxy_read_timeout 300ms;
    location /bad/v1/chat/completions { llm_mock fault=hang text=BAD; }
--- request eval
$::Sse
--- error_code: 200
--- response_body_like eval
$::GoodSse



=== TEST 11: the time-to-first-token deadline, JSON: a provider too slow to start
--- config
    llm_router_ttft_timeout 300ms;
    location /bad/v1/chat/completions { llm_mock ttft=3s text=BAD; }
--- request eval
$::Json
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodJson
--- error_log
gave no first token within llm_router_ttft_timeout



=== TEST 12: the time-to-first-token deadline, stream: a provider that says hello and stalls
The bad provider answers 200 and a role chunk at once, then nothing: the
read timeout is far away, only the deadline can leave it, and the client
sees one role chunk, the good one.
--- config
    llm_router_ttft_timeout 300ms;
    proxy_read_timeout 30s;
    location /bad/v1/chat/completions { llm_mock fault=role_stall text=BAD; }
--- request eval
$::Sse
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodSse
--- error_log
gave no first token within llm_router_ttft_timeout



=== TEST 13: an error event before the answer, stream
--- config
    location /bad/v1/chat/completions { llm_mock fault=sse_error text=BAD; }
--- request eval
$::Sse
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodSse



=== TEST 14: nonsense with a 200, JSON
--- config
    location /bad/v1/chat/completions { llm_mock fault=garbage text=BAD; }
--- request eval
$::Json
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodJson



=== TEST 15: a connection closed before the answer, stream
--- config
    location /bad/v1/chat/completions { llm_mock fault=close text=BAD; }
--- request eval
$::Sse
--- error_code: 200
--- response_body_like eval
$::GoodSse



=== TEST 16: a JSON answer cut in half
--- config
    location /bad/v1/chat/completions { llm_mock fault=drop text=BADBADBAD; }
--- request eval
$::Json
--- error_code: 200
--- response_body_like eval
$::GoodJson



=== TEST 17: every endpoint past its deadline: a 504 listing both
--- http_config
    llm_provider bad  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/bad/v1;
    llm_provider slow http://127.0.0.1:$TEST_NGINX_SERVER_PORT/slow/v1;
    llm_provider good http://127.0.0.1:$TEST_NGINX_SERVER_PORT/good/v1;
    llm_model m {
        endpoint bad  model=b input=1 output=1;
        endpoint slow model=s input=1 output=1;
    }
--- config
    llm_router_ttft_timeout 200ms;
    location /bad/v1/chat/completions  { llm_mock ttft=3s text=BAD; }
    location /slow/v1/chat/completions { llm_mock fault=role_stall text=BAD; }
--- request
POST /v1/chat/completions
{"model":"m","stream":true,"provider":{"order":["bad","slow"]},"messages":[{"role":"user","content":"x"}]}
--- error_code: 504
--- response_headers
Content-Type: application/json
X-LLM-Attempts: 2
--- response_body_like chomp
^\{"error":\{"message":"Upstream timed out: 2 attempts failed, the last via provider \\"slow\\" \(timeout, status 504\)","type":"api_error","param":null,"code":504,"metadata":\{"previous_errors":\[\{"provider":"bad","model":"m","status":504,"reason":"timeout"\},\{"provider":"slow","model":"m","status":504,"reason":"timeout"\}\],"provider_name":"slow"\}\}\}$



=== TEST 18: a provider's 400 judges the request: no fallback
--- config
    location /bad/v1/chat/completions { llm_mock status=400 text=BAD; }
--- request eval
$::Json
--- error_code: 400
--- response_headers
X-LLM-Attempts: 1
--- response_body_like chomp
"message":"mock failure 400"



=== TEST 19: an unusable stream is left at once, not when the provider is done
The bad provider sends nonsense, then would hold the connection for 5 s;
the client gives up after 2 s of silence.
--- config
    location = /bad/v1/chat/completions {
        default_type text/event-stream;
        echo 'data: {"not":"a chunk"}';
        echo '';
        echo_flush;
        echo_sleep 5;
        echo 'data: [DONE]';
    }
--- request eval
$::Sse
--- timeout: 2
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodSse



=== TEST 20: a stream sent to a client that asked for JSON: the next endpoint answers in JSON
--- config
    location = /bad/v1/chat/completions {
        default_type text/event-stream;
        echo 'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{"content":"BAD"},"finish_reason":"stop"}]}';
        echo '';
        echo 'data: [DONE]';
        echo '';
    }
--- request eval
$::Json
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
Content-Type: application/json
--- response_body_like eval
$::GoodJson



=== TEST 21: the time-to-first-token deadline is met by a JSON answer's first byte
The answer starts at once and ends after 1 s, past the 500 ms deadline:
it is not cut.
--- config
    llm_router_ttft_timeout 500ms;
    location = /bad/v1/chat/completions {
        default_type application/json;
        echo -n '{"id":"c","object":"chat.completion","created":1,"model":"b",';
        echo_flush;
        echo_sleep 1;
        echo -n '"choices":[{"index":0,"message":{"role":"assistant","content":"SLOW"},"finish_reason":"stop"}]}';
    }
--- request eval
$::Json
--- error_code: 200
--- response_headers
X-LLM-Attempts: 1
--- response_body_like chomp
"content":"SLOW".*"provider":"bad"



=== TEST 22: a 408, stream
--- config
    location /bad/v1/chat/completions { llm_mock status=408 text=BAD; }
--- request eval
$::Sse
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodSse



=== TEST 23: a 502 from a provider's own gateway, JSON
--- config
    location /bad/v1/chat/completions { llm_mock status=502 text=BAD; }
--- request eval
$::Json
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
$::GoodJson
