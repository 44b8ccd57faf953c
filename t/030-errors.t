# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Every error a client can cause or meet is OpenAI's error JSON with the
# right status: bad input, unknown model, wrong method, a body over the
# limit, and providers that are down, failing, slow or talking nonsense.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';
$ENV{LLM_TEST_ENV_KEY} = 'sk-env-provider-0003';

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config", <<'_EOC_');
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
_EOC_
    }

    if (!defined $block->config) {
        $block->set_value("config", <<'_EOC_');
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock chunks=2; }
_EOC_
    }

    if (!defined $block->no_error_log && !defined $block->error_log) {
        $block->set_value("no_error_log", "[crit]\n[alert]\n[emerg]\n");
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: invalid JSON is a 400 in OpenAI's shape
--- request
POST /v1/chat/completions
{"model": "chat-model", "messages": [
--- error_code: 400
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"error":\{"message":"The request body is not valid JSON: [^"]+","type":"invalid_request_error","param":null,"code":"invalid_json"\}\}$



=== TEST 1b: what no JSON parser takes, even deep in the conversation, is a 400
A NUL in an object's key (found by fuzzing the scanner against jansson:
tools/fuzz/crashes/fuzz_scan-1), a lone surrogate, a control character in
a string, an integer past 64 bits.
--- request eval
["POST /v1/chat/completions\n" . '{"model":"chat-model","messages":[{"role":"user","content":"x","\u0000":1}]}',
 "POST /v1/chat/completions\n" . '{"model":"chat-model","messages":[{"role":"user","content":"\udc00"}]}',
 "POST /v1/chat/completions\n" . qq({"model":"chat-model","messages":[{"role":"user","content":"a\tb"}]}),
 "POST /v1/chat/completions\n" . '{"model":"chat-model","messages":[{"role":"user","content":"x","n":99999999999999999999}]}']
--- error_code eval
[400, 400, 400, 400]
--- response_body_like eval
[qr/"message":"The request body is not valid JSON: NUL byte in object key not supported/,
 qr/"message":"The request body is not valid JSON: invalid Unicode/,
 qr/"message":"The request body is not valid JSON: control character/,
 qr/"message":"The request body is not valid JSON: too big integer/]



=== TEST 2: an empty body is a 400
--- request
POST /v1/chat/completions
--- error_code: 400
--- response_body_like chomp
"code":"invalid_json"



=== TEST 3: a body that is not an object is a 400
--- request
POST /v1/chat/completions
["chat-model"]
--- error_code: 400
--- response_body_like chomp
"message":"The request body must be a JSON object"



=== TEST 4: a missing model is a 400
--- request
POST /v1/chat/completions
{"messages":[{"role":"user","content":"hi"}]}
--- error_code: 400
--- response_body_like chomp
"message":"The \\"model\\" field is required".*"code":"missing_model"



=== TEST 5: a model that is not a string is a 400
--- request
POST /v1/chat/completions
{"model":42,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 400
--- response_body_like chomp
"code":"invalid_model"



=== TEST 6: messages that are not an array are a 400
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":"hi"}
--- error_code: 400
--- response_body_like chomp
"message":"The \\"messages\\" field must be a non-empty array"



=== TEST 7: an empty messages array is a 400
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[]}
--- error_code: 400
--- response_body_like chomp
"code":"invalid_messages"



=== TEST 8: a message without a role is a 400 naming it
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"a"},{"content":"b"}]}
--- error_code: 400
--- response_body_like chomp
"message":"messages\[1\] must be an object with a string \\"role\\""



=== TEST 8b: a "role" key written with escapes is a role, as JSON has it; other escaped keys are not
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"chat-model","messages":[{"r\u006fle":"user","content":"a"}]}',
"POST /v1/chat/completions\n" . '{"model":"chat-model","messages":[{"role":"user","content":"a"},{"c\u006fntent":"b"}]}',
]
--- error_code eval
[200, 400]
--- response_body_like eval
[qr/"object":"chat\.completion"/, qr/"message":"messages\[1\] must be an object with a string \\"role\\""/]



=== TEST 9: stream that is not a boolean is a 400
--- request
POST /v1/chat/completions
{"model":"chat-model","stream":"yes","messages":[{"role":"user","content":"a"}]}
--- error_code: 400
--- response_body_like chomp
"message":"The \\"stream\\" field must be a boolean"



=== TEST 10: an unknown model is a 404
--- request
POST /v1/chat/completions
{"model":"gpt-99","messages":[{"role":"user","content":"hi"}]}
--- error_code: 404
--- response_body_like chomp
^\{"error":\{"message":"The model \\"gpt-99\\" does not exist on this router","type":"invalid_request_error","param":null,"code":"model_not_found"\}\}$



=== TEST 11: GET on chat completions is a 405 with Allow
--- request
GET /v1/chat/completions
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
--- response_body_like chomp
"code":"method_not_allowed"



=== TEST 12: POST on models is a 405 with Allow
--- request
POST /v1/models
{}
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- response_body_like chomp
"type":"invalid_request_error"



=== TEST 13: an unknown URL under the router is a 404 in JSON
--- request
GET /v1/engines
--- error_code: 404
--- response_body_like chomp
"code":"unknown_url"



=== TEST 14: a body over client_max_body_size is a 413 in JSON, not an HTML page
--- config
    location /v1/ {
        client_max_body_size 1k;
        llm_router;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
--- request eval
"POST /v1/chat/completions\n" . ('{"model":"chat-model","messages":[{"role":"user","content":"' . ("x" x 2000) . '"}]}')
--- error_code: 413
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"error":\{"message":"The request body is too large","type":"invalid_request_error","param":null,"code":"request_too_large"\}\}$



=== TEST 15: a chunked body over the limit is a 413 in JSON too
--- config
    location /v1/ {
        client_max_body_size 1k;
        llm_router;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
--- raw_request eval
"POST /v1/chat/completions HTTP/1.1\r
Host: localhost\r
Transfer-Encoding: chunked\r
Connection: close\r
\r
800\r
" . ("x" x 2048) . "\r
0\r
\r
"
--- error_code: 413
--- response_body_like chomp
"code":"request_too_large"



=== TEST 16: a provider that refuses connections gives a 502 naming it
--- http_config
    llm_provider down http://127.0.0.1:1/v1;
    llm_model chat-model {
        endpoint down model=m1 input=1 output=2;
    }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"error":\{"message":"No provider could answer: 1 attempt failed, the last via provider \\"down\\" \(connect, status 502\)","type":"api_error","param":null,"code":502,"metadata":\{"previous_errors":\[\{"provider":"down","model":"chat-model","status":502,"reason":"connect"\}\],"provider_name":"down"\}\}\}$
--- error_log
connect() failed (111: Connection refused)



=== TEST 17: a provider answering 500 gives a 502 with its status and message
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock status=500; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_body_like chomp
"previous_errors":\[\{"provider":"mock","model":"chat-model","status":500,"reason":"status","message":"mock failure 500"\}\],"provider_name":"mock"



=== TEST 18: a provider that does not answer in time gives a 504
--- config
    proxy_read_timeout 300ms;
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock fault=hang; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 504
--- response_body_like chomp
"message":"Upstream timed out: 1 attempt failed, the last via provider \\"mock\\" \(timeout, status 504\)".*"reason":"timeout"
--- error_log
upstream timed out



=== TEST 19: a provider's 400 goes back to the client as a 400 with the provider's message
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock status=400; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 400
--- response_body_like chomp
^\{"error":\{"message":"mock failure 400","type":"invalid_request_error","param":null,"code":400,"metadata":\{"previous_errors":\[\{"provider":"mock","model":"chat-model","status":400,"reason":"status","message":"mock failure 400"\}\],"provider_name":"mock"\}\}\}$



=== TEST 20: a provider's 401 is the router's problem: 502, and nothing of its message
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1
                 key=env:LLM_TEST_ENV_KEY;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock status=401;
    }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_body_like chomp
"message":"The provider did not accept the router's credentials"
--- response_body_unlike chomp
sk-env-provider



=== TEST 21: a provider answering 200 with nonsense gives a 502
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock fault=garbage; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_body_like chomp
"reason":"invalid"



=== TEST 22: a provider closing the connection before answering gives a 502
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock fault=close; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_body_like chomp
"reason":"connect"
--- error_log
upstream prematurely closed connection



=== TEST 23: a provider cutting a JSON answer in half gives a 502, nothing of the half
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock fault=drop; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_body_like chomp
^\{"error":\{"message":"No provider could answer.*"reason":"cut"
--- response_body_unlike chomp
chatcmpl-mock



=== TEST 24: a provider's error page in HTML never reaches the client
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { return 503; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_headers
Content-Type: application/json
--- response_body_unlike chomp
<html>



=== TEST 25: a missing internal upstream location is a JSON 502, not a crash
--- config
    location /v1/ { llm_router; }
    location /mock/v1/chat/completions { llm_mock; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_headers
Content-Type: application/json
--- response_body_like chomp
"reason":"status"



=== TEST 26: a provider's message quoting the router's key is masked, even where it is cut
At debug level nginx itself logs the proxied request headers, key included
(see the README); the router's own lines, at info, never hold it.
--- log_level: info
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1
                 key=env:LLM_TEST_ENV_KEY;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location = /mock/v1/chat/completions {
        default_type application/json;
        return 500 '{"error":{"message":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx key sk-env-provider-0003 was used, and again sk-env-provider-0003"}}';
    }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_body_like chomp
"message":"x+ key \*+
--- response_body_unlike chomp
sk-env
--- no_error_log
sk-env-provider-0003
