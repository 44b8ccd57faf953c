# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Streamed chat completions: relayed event by event as the provider sends
# them, relabelled, with usage only when the client asked for it, and ended
# properly whatever the provider did.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

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

    if (!defined $block->request) {
        $block->set_value("request", <<'_EOC_');
POST /v1/chat/completions
{"model":"chat-model","stream":true,"messages":[{"role":"user","content":"abcdefgh"}]}
_EOC_
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a stream is relayed event by event, relabelled, ended with [DONE]
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock chunks=2 text=abcdefgh; }
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
Cache-Control: no-cache
--- response_body_like eval
my $s = qq{data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":CREATED,"model":"chat-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"provider":"mock"}\n\n}
. qq{data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":CREATED,"model":"chat-model","choices":[{"index":0,"delta":{"content":"abcd"},"finish_reason":null}],"provider":"mock"}\n\n}
. qq{data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":CREATED,"model":"chat-model","choices":[{"index":0,"delta":{"content":"efgh"},"finish_reason":null}],"provider":"mock"}\n\n}
. qq{data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":CREATED,"model":"chat-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"provider":"mock"}\n\n}
. qq{data: [DONE]\n\n};
my $re = quotemeta $s;
$re =~ s/CREATED/\\d+/g;
qr/\A$re\z/
--- no_error_log
[error]



=== TEST 2: the router asks the provider for usage; the client gets none unless it asked
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
--- error_code: 200
--- response_body_like eval
qr/"content":"\{\\"model\\":\\"m1\\",\\"stream\\":true,\\"stream_options\\":\{\\"include_usage\\":true\},\\"messages\\":\[\{\\"role\\":\\"user\\",\\"content\\":\\"abcdefgh\\"\}\]\}"/
--- response_body_unlike chomp
"usage"



=== TEST 3: a client asking for usage gets one usage chunk, empty choices, before [DONE]
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock chunks=2; }
--- request
POST /v1/chat/completions
{"model":"chat-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like eval
qr/"finish_reason":"stop"\}\],"provider":"mock"\}\n\ndata: \{"id":"chatcmpl-mock","object":"chat.completion.chunk","created":\d+,"model":"chat-model","choices":\[\],"usage":\{"prompt_tokens":\d+,"completion_tokens":2,"total_tokens":\d+,"cost":[0-9.e-]+\},"provider":"mock"\}\n\ndata: \[DONE\]\n\n\z/



=== TEST 4: the first chunk reaches the client long before the provider finishes
The mock sends "FIRST", then "second" 3 s later; the client gives up after
1.5 s of silence and must have "FIRST" by then, and nothing after it.
HTTP/1.0 keeps the cut-off response unchunked, so both harnesses parse it.
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=2 interval=3s text=FIRSTsecond;
    }
--- request
POST /v1/chat/completions HTTP/1.0
{"model":"chat-model","stream":true,"messages":[{"role":"user","content":"x"}]}
--- timeout: 1.5
--- abort
--- error_code: 200
--- response_body_like eval
qr/\A(?!.*(?:second|\[DONE\])).*"content":"FIRST"/s



=== TEST 5: a provider answering a stream request with JSON still gives the client a stream
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location = /mock/v1/chat/completions {
        default_type application/json;
        return 200 '{"id":"c1","object":"chat.completion","created":7,"model":"m1","choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}';
    }
--- request
POST /v1/chat/completions
{"model":"chat-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
--- response_body eval
qq{data: {"id":"c1","object":"chat.completion.chunk","created":7,"choices":[{"index":0,"delta":{"role":"assistant","content":"whole"},"finish_reason":"stop"}],"model":"chat-model","provider":"mock"}\n\n}
. qq{data: {"id":"c1","object":"chat.completion.chunk","created":7,"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"cost":5e-6},"model":"chat-model","provider":"mock"}\n\n}
. qq{data: [DONE]\n\n}



=== TEST 6: a role announcement followed by silence commits nothing: the client gets an error, not a stream
--- config
    proxy_read_timeout 300ms;
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock fault=role_stall; }
--- error_code: 502
--- response_headers
Content-Type: application/json
--- response_body_unlike chomp
data:



=== TEST 7: an error event before any answer commits nothing
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock fault=sse_error; }
--- error_code: 502
--- response_body_like chomp
"message":"mock failure before the answer"
--- response_body_unlike chomp
data:



=== TEST 8: a provider dropping the connection mid-stream: 200, one error chunk, finish_reason error
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=4 interval=50ms fault=drop text=abcdefgh;
    }
--- error_code: 200
--- response_body_like eval
qr/\A(?s)data: \{[^\n]*"role":"assistant"[^\n]*\n\ndata: \{[^\n]*"content":"ab"[^\n]*\n\ndata: \{"id":"chatcmpl-mock","object":"chat.completion.chunk","created":\d+,"model":"chat-model","provider":"mock","error":\{"message":"The provider's stream broke off; the answer is incomplete","type":"api_error","code":502\},"choices":\[\{"index":0,"delta":\{\},"finish_reason":"error"\}\]\}\n\n\z/
--- error_log
upstream prematurely closed connection



=== TEST 9: a provider stalling mid-stream past the read timeout: the same in-band error
--- config
    proxy_read_timeout 300ms;
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=4 fault=stall text=abcdefgh;
    }
--- error_code: 200
--- response_body_like eval
qr/"content":"ab".*"finish_reason":"error"\}\]\}\n\n\z/s
--- response_body_unlike chomp
\[DONE\]
--- error_log
upstream timed out



=== TEST 10: an error event mid-stream ends the stream with the provider's message
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=4 fault=sse_error_mid text=abcdefgh;
    }
--- error_code: 200
--- response_body_like eval
qr/"content":"ab".*"error":\{"message":"mock failure in the middle","type":"api_error","code":502\},"choices":\[\{"index":0,"delta":\{\},"finish_reason":"error"\}\]\}\n\n\z/s



=== TEST 11: a provider ending without [DONE] after its finish: the client still gets [DONE]
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions {
        llm_mock chunks=2 fault=no_done text=abcdefgh;
    }
--- error_code: 200
--- response_body_like eval
qr/"finish_reason":"stop"\}\],"provider":"mock"\}\n\ndata: \[DONE\]\n\n\z/



=== TEST 12: events split at every byte parse the same (provider writes one byte at a time)
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location = /mock/v1/chat/completions {
        default_type text/event-stream;
        echo -n 'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m1",';
        echo_flush;
        echo_sleep 0.05;
        echo -n '"choices":[{"index":0,"delta":{"content":"he"},"finish_reason":null}]}';
        echo_flush;
        echo_sleep 0.05;
        echo -n "\r";
        echo_flush;
        echo_sleep 0.05;
        echo -n "\n\r\ndata: ";
        echo_flush;
        echo_sleep 0.05;
        echo -n '{"id":"x","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"content":"llo"},"finish_reason":"stop"}]}';
        echo -n "\n";
        echo_flush;
        echo_sleep 0.05;
        echo -n "\ndata: [DO";
        echo_flush;
        echo_sleep 0.05;
        echo -n "NE]\n\n";
    }
--- error_code: 200
--- response_body eval
qq{data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"chat-model","choices":[{"index":0,"delta":{"content":"he"},"finish_reason":null}],"provider":"mock"}\n\n}
. qq{data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"chat-model","choices":[{"index":0,"delta":{"content":"llo"},"finish_reason":"stop"}],"provider":"mock"}\n\n}
. qq{data: [DONE]\n\n}



=== TEST 13: comments and unknown fields from the provider are not relayed
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location = /mock/v1/chat/completions {
        default_type text/event-stream;
        echo ': OPENROUTER PROCESSING';
        echo '';
        echo 'id: 7';
        echo 'retry: 100';
        echo 'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}';
        echo '';
        echo 'data: [DONE]';
        echo '';
    }
--- error_code: 200
--- response_body eval
qq{data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"chat-model","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}],"provider":"mock"}\n\n}
. qq{data: [DONE]\n\n}



=== TEST 14: events are relabelled from their bytes: the provider's spacing and escapes kept, its "provider" replaced by ours
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location = /mock/v1/chat/completions {
        default_type text/event-stream;
        echo 'data: {"id":"x", "provider" : "Upstream Inc", "model":"m1","choices":[ {"index":0,"delta":{"content":"caf\u00e9 \\\"ok\\\""},"finish_reason":null} ]}';
        echo '';
        echo 'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}';
        echo '';
        echo 'data: [DONE]';
        echo '';
    }
--- error_code: 200
--- response_body eval
qq{data: {"id":"x","model":"chat-model","choices":[ {"index":0,"delta":{"content":"caf\\u00e9 \\"ok\\""},"finish_reason":null} ],"provider":"mock"}\n\n}
. qq{data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"model":"chat-model","provider":"mock"}\n\n}
. qq{data: [DONE]\n\n}



=== TEST 15: an event with a key written with escapes, or a key given twice, is read by jansson: the same event, written again
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location = /mock/v1/chat/completions {
        default_type text/event-stream;
        echo 'data: {"\u0069d":"x","model":"m1","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}';
        echo '';
        echo 'data: {"id":"x","model":"m1","model":"m2","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}';
        echo '';
        echo 'data: [DONE]';
        echo '';
    }
--- error_code: 200
--- response_body eval
qq{data: {"id":"x","model":"chat-model","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}],"provider":"mock"}\n\n}
. qq{data: {"id":"x","model":"chat-model","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}],"provider":"mock"}\n\n}
. qq{data: [DONE]\n\n}



=== TEST 16: an event whose JSON spans two "data:" lines reaches the client on one line
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location = /mock/v1/chat/completions {
        default_type text/event-stream;
        echo 'data: {"id":"x","model":"m1","choices":[';
        echo 'data: {"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}';
        echo '';
        echo 'data: [DONE]';
        echo '';
    }
--- error_code: 200
--- response_body eval
qq{data: {"id":"x","model":"chat-model","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}],"provider":"mock"}\n\n}
. qq{data: [DONE]\n\n}

