# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# A provider that reports no usage: the router estimates it (prompt: the
# request's bytes / 4; completion: the answer's text bytes / 4, rounded
# up), prices the estimate and says so with "estimated": true, in a JSON
# answer and in a stream's usage chunk.  A provider's own usage is never
# marked.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    llm_provider quiet http://127.0.0.1:$TEST_NGINX_SERVER_PORT/quiet/v1;
    llm_provider quiets http://127.0.0.1:$TEST_NGINX_SERVER_PORT/quiets/v1;
    llm_provider quietx http://127.0.0.1:$TEST_NGINX_SERVER_PORT/quietx/v1;
    llm_provider huge http://127.0.0.1:$TEST_NGINX_SERVER_PORT/huge/v1;
    llm_provider mock  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;

    llm_model q  { endpoint quiet  model=u input=1 output=2; }
    llm_model qs { endpoint quiets model=u input=1 output=2; }
    llm_model qx { endpoint quietx model=u input=1 output=2; }
    llm_model hg { endpoint huge model=u input=1 output=2; }
    llm_model m { endpoint mock  model=u input=1 output=2; }
_EOC_

    $block->set_value("config", <<'_EOC_' . ($block->config // ''));
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;

    location /mock/v1/chat/completions { llm_mock chunks=2 text=abcdefgh; }

    location /quiet/v1/chat/completions {
        default_type application/json;
        echo '{"id":"q1","object":"chat.completion","created":1,"model":"u","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}]}';
    }

    location /huge/v1/chat/completions {
        default_type application/json;
        echo '{"id":"h1","object":"chat.completion","created":1,"model":"u","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807,"total_tokens":1}}';
    }

    location /quietx/v1/chat/completions {
        default_type text/event-stream;
        echo 'data: {"id":"q3","object":"chat.completion.chunk","created":1,"model":"u","provider":"elsewhere","choices":[{"index":0,"delta":{"role":"assistant","content":"caf\u00e9\\n"},"finish_reason":null}]}';
        echo '';
        echo 'data: {"id":"q3","object":"chat.completion.chunk","created":1,"model":"u","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\\\"a\\\":1}"}}]},"finish_reason":"tool_calls"}]}';
        echo '';
        echo 'data: [DONE]';
        echo '';
    }

    location /quiets/v1/chat/completions {
        default_type text/event-stream;
        echo 'data: {"id":"q2","object":"chat.completion.chunk","created":1,"model":"u","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}';
        echo '';
        echo 'data: {"id":"q2","object":"chat.completion.chunk","created":1,"model":"u","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}';
        echo '';
        echo 'data: [DONE]';
        echo '';
    }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a JSON answer without usage: estimated, priced, marked
The request is 64 bytes: 16 prompt tokens; "Hello there" is 11 bytes: 3
completion tokens; 16 x 1 + 3 x 2 = 22 USD per million: 2.2e-5.
--- request eval
"POST /v1/chat/completions\n" . '{"model":"q","messages":[{"role":"user","content":"ping ping"}]}'
--- error_code: 200
--- response_body_like chomp
"content":"Hello there".*"usage":\{"prompt_tokens":16,"completion_tokens":3,"total_tokens":19,"estimated":true,"cost":2\.2e-5\},"provider":"quiet"\}$



=== TEST 2: a stream without usage: the usage chunk the client asked for is estimated, priced, marked
The request is 114 bytes: 28 prompt tokens; "Hello there" is 11 bytes: 3
completion tokens; 28 + 6 = 34 USD per million: 3.4e-5.
--- request eval
"POST /v1/chat/completions\n" . '{"model":"qs","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"ping"}]}'
--- error_code: 200
--- response_body_like eval
qr/"content":"Hello".*"content":" there".*\n\ndata: \{[^\n]*"choices":\[\],"usage":\{"prompt_tokens":28,"completion_tokens":3,"total_tokens":31,"estimated":true,"cost":3\.4e-5\}[^\n]*\}\n\ndata: \[DONE\]\n\n\z/s



=== TEST 2b: a stream's text is counted as it decodes, tool call arguments included
"caf\u00e9\n" is 6 bytes, the arguments {"a":1} 7: 13 bytes, 4 completion
tokens (written as sent they would be 22 bytes, 6 tokens).  The request
is 114 bytes: 28 prompt tokens; 28 + 8 = 36 USD per million: 3.6e-5.
--- request eval
"POST /v1/chat/completions\n" . '{"model":"qx","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"ping"}]}'
--- error_code: 200
--- response_body_like eval
qr/"content":"caf\\u00e9\\n"\},"finish_reason":null\}\],"provider":"quietx"\}\n\n.*"arguments":"\{\\"a\\":1\}".*\n\ndata: \{[^\n]*"choices":\[\],"usage":\{"prompt_tokens":28,"completion_tokens":4,"total_tokens":32,"estimated":true,"cost":3\.6e-5\}[^\n]*\}\n\ndata: \[DONE\]\n\n\z/s



=== TEST 3: a provider's own usage is not marked
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"ping"}]}',
"POST /v1/chat/completions\n" . '{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"ping"}]}',
]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"usage":\{"prompt_tokens":\d+,"completion_tokens":2,"total_tokens":\d+,"cost":[0-9.e-]+\}/, qr/"usage":\{"prompt_tokens":\d+,"completion_tokens":2,"total_tokens":\d+,"cost":[0-9.e-]+\}/]
--- response_body_unlike eval
[qr/estimated/, qr/estimated/]



=== TEST 4: absurd token counts from a provider: the cost is held at a million dollars, not overflowed
--- request eval
"POST /v1/chat/completions\n" . '{"model":"hg","messages":[{"role":"user","content":"ping"}]}'
--- error_code: 200
--- response_body_like chomp
"usage":\{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807,"total_tokens":1,"cost":1000000\.0\},"provider":"huge"\}$

