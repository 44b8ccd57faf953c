# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# After the first byte there is no fallback: a provider that stalls past
# llm_router_idle_timeout or drops the connection ends the client's stream
# with one in-band error chunk (status stays 200) and its connection is
# closed; a client that goes away closes the provider connection at once.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    llm_provider p http://127.0.0.1:$TEST_NGINX_SERVER_PORT/p/v1;
    llm_provider q http://127.0.0.1:$TEST_NGINX_SERVER_PORT/q/v1;
    llm_model m {
        endpoint p model=pm input=1 output=1;
        endpoint q model=qm input=1 output=1;
    }
_EOC_

    if (!defined $block->request) {
        $block->set_value("request", <<'_EOC_');
POST /v1/chat/completions
{"model":"m","stream":true,"provider":{"order":["p","q"]},"messages":[{"role":"user","content":"x"}]}
_EOC_
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a stall past llm_router_idle_timeout ends the stream in-band, no fallback
--- config
    llm_router_idle_timeout 300ms;
    proxy_read_timeout 30s;
    location /v1/ {
        llm_router;
        add_header X-LLM-Attempts $llm_attempts always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /p/v1/chat/completions { llm_mock chunks=4 fault=stall text=abcdefgh; }
    location /q/v1/chat/completions { llm_mock chunks=1 text=OTHER; }
--- error_code: 200
--- response_headers
X-LLM-Attempts: 1
--- response_body_like eval
qr/\A(?!.*OTHER)data: \{[^\n]*"role":"assistant"[^\n]*\n\ndata: \{[^\n]*"content":"ab"[^\n]*\n\ndata: \{"id":"chatcmpl-mock","object":"chat.completion.chunk","created":\d+,"model":"m","provider":"p","error":\{"message":"The provider stopped sending; the answer is incomplete","type":"api_error","code":502\},"choices":\[\{"index":0,"delta":\{\},"finish_reason":"error"\}\]\}\n\n\z/s
--- error_log
went silent past llm_router_idle_timeout
upstream timed out



=== TEST 2: the idle timer restarts with every chunk: a slow but steady stream is not cut
--- config
    llm_router_idle_timeout 400ms;
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /p/v1/chat/completions { llm_mock chunks=5 interval=250ms text=abcdefghij; }
    location /q/v1/chat/completions { llm_mock chunks=1 text=OTHER; }
--- error_code: 200
--- response_body_like eval
qr/"content":"ij".*"finish_reason":"stop".*data: \[DONE\]\n\n\z/s
--- no_error_log
went silent



=== TEST 3: a provider dropping the connection mid-stream: the in-band error, no fallback
--- config
    location /v1/ {
        llm_router;
        add_header X-LLM-Attempts $llm_attempts always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /p/v1/chat/completions { llm_mock chunks=4 interval=50ms fault=drop text=abcdefgh; }
    location /q/v1/chat/completions { llm_mock chunks=1 text=OTHER; }
--- error_code: 200
--- response_headers
X-LLM-Attempts: 1
--- response_body_like eval
qr/\A(?!.*OTHER).*"content":"ab".*"error":\{"message":"The provider's stream broke off; the answer is incomplete","type":"api_error","code":502\},"choices":\[\{"index":0,"delta":\{\},"finish_reason":"error"\}\]\}\n\n\z/s



=== TEST 4: a client going away closes the provider connection at once
The client gives up after 0.5 s; the provider would stream for 10 s more.
The mock, on the provider's side of the connection, sees its client (the
router) close within the 0.3 s the test waits.
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /p/v1/chat/completions { llm_mock chunks=20 interval=500ms; }
    location /q/v1/chat/completions { llm_mock chunks=1 text=OTHER; }
--- request
POST /v1/chat/completions HTTP/1.0
{"model":"m","stream":true,"provider":{"order":["p","q"]},"messages":[{"role":"user","content":"x"}]}
--- timeout: 0.4
--- abort
--- wait: 0.3
--- error_code: 200
--- response_body_like eval
qr/"content":"He"/
--- error_log eval
[
qr/llm: client closed the connection during attempt 1/,
qr/client prematurely closed connection.*request: "POST \/p\/v1\/chat\/completions/,
]



=== TEST 5: after a client abort, the endpoint's in-flight count is back to zero
--- config
    location /v1/ { llm_router; }
    location = /status { llm_status; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /p/v1/chat/completions { llm_mock chunks=20 interval=500ms; }
    location /q/v1/chat/completions { llm_mock chunks=1 text=OTHER; }
--- request eval
[
"POST /v1/chat/completions HTTP/1.0\n" . '{"model":"m","stream":true,"provider":{"order":["p","q"]},"messages":[{"role":"user","content":"x"}]}',
"GET /status",
]
--- timeout: 0.4
--- abort
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"content":"He"/,
 qr/"model":"m","provider":"p","upstream_model":"pm","inflight":0,"requests":1,"errors":0,/]
