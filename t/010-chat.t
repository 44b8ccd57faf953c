# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Non-streaming chat completions relayed through the router: the request
# reaches the provider with the provider's model id and key and nothing of
# the client's headers; the answer comes back with the public model name and
# the provider's name.
#
# Needs TEST_NGINX_LOAD_MODULES (the module) and TEST_NGINX_ROOT (the
# repository, for the upstream location snippet); "make test" sets both.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

# a provider key read from the environment when the configuration loads
$ENV{LLM_TEST_ENV_KEY} = 'sk-env-provider-0001';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a chat completion is relayed with the public model name and the provider
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock chunks=3; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"id":"chatcmpl-mock","object":"chat.completion",.*"model":"chat-model",.*"content":"Hello from the mock provider. You said: ping".*"finish_reason":"stop".*"usage":\{"prompt_tokens":\d+,"completion_tokens":3,"total_tokens":\d+,"cost":[0-9.e-]+\},"provider":"mock"\}$
--- no_error_log
[error]



=== TEST 2: the provider receives its own model id, the rest of the request untouched
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
--- request
POST /v1/chat/completions
{"model":"chat-model","temperature":0.7,"x_custom":{"a":[1,2]},"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body_like chomp
"content":"\{\\"model\\":\\"upstream-id-7\\",\\"temperature\\":0.7,\\"x_custom\\":\{\\"a\\":\[1,2\]\},\\"messages\\":\[\{\\"role\\":\\"system\\",\\"content\\":\\"be brief\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"ping\\"\}\]\}"
--- no_error_log
[error]



=== TEST 2b: the router's own fields (models, provider, route, transforms, usage) do not reach the provider
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
--- request
POST /v1/chat/completions
{"model":"chat-model","models":["chat-model"],"provider":{"sort":"price"},"route":"fallback","transforms":["middle-out"],"usage":{"include":true},"top_k":5,"messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body_like chomp
"content":"\{\\"model\\":\\"upstream-id-7\\",\\"top_k\\":5,\\"messages\\":\[\{\\"role\\":\\"user\\",\\"content\\":\\"ping\\"\}\]\}"
--- no_error_log
[error]



=== TEST 2c: the conversation reaches the provider as the client wrote it, byte for byte
Escapes, spacing and key order inside "messages" are the client's: the
router checks the conversation but does not parse and rewrite it.
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
--- request eval
"POST /v1/chat/completions\n"
. '{"model":"chat-model", "messages" : [ {"content":"caf\u00e9 \"quoted\" \ud83d\ude00", "role":"user"} ] }'
--- error_code: 200
--- response_body_like chomp
"content":"\{\\"model\\":\\"upstream-id-7\\",\\"messages\\":\[ \{\\"content\\":\\"caf\\\\u00e9 \\\\\\"quoted\\\\\\" \\\\ud83d\\\\ude00\\", \\"role\\":\\"user\\"\} \]\}"
--- no_error_log
[error]



=== TEST 2d: "messages" twice: the last one counts, as for any JSON parser
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1;
    }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"first"}],"messages":[{"role":"user","content":"second"}]}
--- error_code: 200
--- response_body_like chomp
"content":"Hello from the mock provider. You said: second"



=== TEST 2e: the members the router leaves alone reach the provider as the client wrote them
Numbers, escapes and spacing inside each member are the client's; the
router writes only what it changes (the model id), in the client's order.
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
--- request eval
"POST /v1/chat/completions\n"
. '{ "temperature" : 0.70, "stop":[ "\/end" ], "model":"chat-model", "x":{"b" : 1e2}, "messages":[{"role":"user","content":"ping"}]}'
--- error_code: 200
--- response_body_like chomp
"content":"\{\\"temperature\\":0.70,\\"stop\\":\[ \\"\\\\/end\\" \],\\"model\\":\\"upstream-id-7\\",\\"x\\":\{\\"b\\" : 1e2\},\\"messages\\":\[\{\\"role\\":\\"user\\",\\"content\\":\\"ping\\"\}\]\}"
--- no_error_log
[error]



=== TEST 2f: a member given twice: the last one counts, and the provider gets it once
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
--- request
POST /v1/chat/completions
{"model":"chat-model","temperature":0.5,"top_p":1,"temperature":0.25,"messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body_like chomp
"content":"\{\\"model\\":\\"upstream-id-7\\",\\"temperature\\":0.25,\\"top_p\\":1,\\"messages\\":\[\{\\"role\\":\\"user\\",\\"content\\":\\"ping\\"\}\]\}"
--- no_error_log
[error]



=== TEST 2g: a stream's stream_options gets include_usage, the client's other options kept
The client asked for no usage chunk: the provider is asked for one anyway
(the router accounts every stream), and the client does not get it.
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
--- request
POST /v1/chat/completions
{"model":"chat-model","stream":true,"stream_options":{"include_usage":false,"x_opt":"kept"},"messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body_like chomp
\\"stream_options\\":\{\\"include_usage\\":true,\\"x_opt\\":\\"kept\\"\}(?![\s\S]*"usage")
--- no_error_log
[error]



=== TEST 2h: routing fields are taken out; a model named only in "models" is written last, before the conversation
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
--- request
POST /v1/chat/completions
{"provider":{"sort":"price"},"temperature":0.5,"models":["chat-model"],"route":"fallback","messages":[{"role":"user","content":"ping"}],"transforms":[]}
--- error_code: 200
--- response_body_like chomp
"content":"\{\\"temperature\\":0.5,\\"model\\":\\"upstream-id-7\\",\\"messages\\":\[\{\\"role\\":\\"user\\",\\"content\\":\\"ping\\"\}\]\}"
--- no_error_log
[error]



=== TEST 2i: a stream that asks for usage itself: its request reaches the provider as written, but the model id
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
--- request
POST /v1/chat/completions
{"stream":true, "stream_options":{ "include_usage":true },"model":"chat-model","messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body_like chomp
"content":"\{\\"stream\\":true,\\"stream_options\\":\{ \\"include_usage\\":true \},\\"model\\":\\"upstream-id-7\\",\\"messages\\":\[\{\\"role\\":\\"user\\",\\"content\\":\\"ping\\"\}\]\}"[\s\S]*"usage":\{
--- no_error_log
[error]



=== TEST 3: the client's Authorization never reaches the provider; the provider's key (env:) does
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
    location /mock/v1/chat/completions {
        llm_mock chunks=1
                 "text=auth=[$http_authorization] cookie=[$http_cookie] x=[$http_x_client_secret] ct=[$http_content_type]";
    }
--- more_headers
Authorization: Bearer client-secret-key
Cookie: session=client-cookie
X-Client-Secret: do-not-forward
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body_like chomp
"content":"auth=\[Bearer sk-env-provider-0001\] cookie=\[\] x=\[\] ct=\[application/json\]"
--- no_error_log
[error]
sk-env-provider-0001



=== TEST 4: the provider's key from a file (key=file:), whitespace trimmed
--- user_files
>>> provider.key
  sk-file-provider-0002

--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1
                 key=file:../html/provider.key;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 "text=auth=[$http_authorization]";
    }
--- more_headers
Authorization: Bearer client-secret-key
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body_like chomp
"content":"auth=\[Bearer sk-file-provider-0002\]"
--- no_error_log
[error]



=== TEST 5: a provider without a key gets no Authorization at all
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 "text=auth=[$http_authorization]";
    }
--- more_headers
Authorization: Bearer client-secret-key
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body_like chomp
"content":"auth=\[\]"
--- no_error_log
[error]



=== TEST 6: a body nginx wrote to a temporary file is read back
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    client_body_buffer_size 1k;
    client_body_in_file_only on;
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock chunks=2; }
--- request eval
"POST /v1/chat/completions\n"
. '{"model":"chat-model","messages":[{"role":"system","content":"'
. ("x" x 6000)
. '"},{"role":"user","content":"from a file"}]}'
--- error_code: 200
--- response_body_like chomp
"content":"Hello from the mock provider. You said: from a file"
--- no_error_log
[error]



=== TEST 7: the upstream location may be renamed with llm_upstream_location
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    location /v1/ {
        llm_router;
        llm_upstream_location /_elsewhere;
    }
    location /_elsewhere {
        internal;
        proxy_pass $llm_upstream_url;
        proxy_http_version 1.1;
        proxy_buffering off;
    }
    location /mock/v1/chat/completions { llm_mock chunks=2; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body_like chomp
"provider":"mock"
--- no_error_log
[error]



=== TEST 8: a UTF-8 answer comes back intact
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock chunks=5; }
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"grüße, 世界 \u00e9"}]}
--- error_code: 200
--- response_body_like chomp
"content":"Hello from the mock provider. You said: grüße, 世界 é"
--- no_error_log
[error]



=== TEST 9: an OpenAI-dialect answer is relabelled, not rewritten
Its members keep the provider's bytes and order (the real 1.50, the
escaped \u00e9); "model" becomes the public name, the provider's own
"provider" gives way to ours, at the end; usage gets its cost.
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock replay=html/answer.json;
    }
--- user_files
>>> answer.json
{"id":"chatcmpl-1", "object":"chat.completion","created":1,"model":"gpt-x","provider":"Upstream Inc","choices":[{"index":0,"message":{"role":"assistant","content":"caf\u00e9"},"logprobs":{"p":1.50},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"system_fingerprint":"fp_1"}
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body eval
'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"chat-model","choices":[{"index":0,"message":{"role":"assistant","content":"caf\u00e9"},"logprobs":{"p":1.50},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"cost":5e-6},"system_fingerprint":"fp_1","provider":"mock"}'
--- no_error_log
[error]



=== TEST 10: a provider's own usage.cost gives way to the router's
An OpenRouter-like provider prices its answers itself; the router's price
is the endpoint's: its "cost" replaces the provider's, in place.
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock replay=html/answer.json;
    }
--- user_files
>>> answer.json
{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{ "prompt_tokens": 3 , "cost": 99, "completion_tokens": 1 }}
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body eval
'{"id":"c","object":"chat.completion","created":1,"model":"chat-model","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"cost":5e-6,"completion_tokens":1},"provider":"mock"}'



=== TEST 11: a usage written with spaces keeps them, and gets its cost
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock replay=html/answer.json;
    }
--- user_files
>>> answer.json
{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{ "prompt_tokens": 3 , "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 2} }}
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}
--- error_code: 200
--- response_body eval
'{"id":"c","object":"chat.completion","created":1,"model":"chat-model","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{ "prompt_tokens": 3 , "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 2},"cost":5e-6},"provider":"mock"}'



=== TEST 12: at debug level, nginx's log of the proxied request leaves the provider's key out; the rest of the attempt's debug lines stay; the client's key is only in nginx's own log of the headers it read
(the mock provider is a server of its own, logging at info elsewhere: a
real provider does not write into the router's log)
--- log_level: debug
--- more_headers
Authorization: Bearer sk-client-secret-0042
--- main_config
    env LLM_TEST_ENV_KEY;
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_SERVER_PORT;
        server_name provider.invalid;
        error_log logs/provider.log info;

        location /mock/v1/chat/completions {
            llm_mock chunks=1 "text=key: $http_authorization";
        }
    }

    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1
                 key=env:LLM_TEST_ENV_KEY;
    llm_model chat-model {
        endpoint mock model=upstream-id-7 input=1 output=2;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}',
"POST /v1/chat/completions\n" . '{"model":"chat-model","stream":true,"messages":[{"role":"user","content":"ping"}]}',
]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"content":"key: Bearer sk-env-provider-0001"/, qr/"content":"key: Bearer sk-env-provider-0001"/]
--- error_log
llm: the attempt's proxied request is not logged at debug level
http proxy status 200
--- no_error_log eval
["sk-env-provider", qr/^(?!.*http header: "Authorization: Bearer sk-client-secret-0042").*sk-client-secret/]



=== TEST 13: cached prompt tokens at the endpoint's cached= price, in a JSON answer and a stream
3 prompt tokens of which 2 cached, 1 completion token: 1 x 1 + 2 x 0.25
+ 1 x 2 = 3.5 USD per million.
--- http_config
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_provider mocks http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mocks/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2 cached=0.25;
    }
    llm_model stream-model {
        endpoint mocks model=m1 input=1 output=2 cached=0.25;
    }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock replay=html/answer.json;
    }
    location /mocks/v1/chat/completions {
        default_type text/event-stream;
        llm_mock replay=html/answer.sse;
    }
--- user_files
>>> answer.json
{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":2}}}
>>> answer.sse
data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}

data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":2}}}

data: [DONE]

--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"chat-model","messages":[{"role":"user","content":"ping"}]}',
"POST /v1/chat/completions\n" . '{"model":"stream-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"ping"}]}',
]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"usage":\{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":\{"cached_tokens":2\},"cost":3\.5e-6\}/,
 qr/"usage":\{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":\{"cached_tokens":2\},"cost":3\.5e-6\}/]
