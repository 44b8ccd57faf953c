# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The mock provider in Anthropic's and Gemini's dialects (format=), its
# faults there, and replays of recorded answers (replay=, split=).
#
# Needs TEST_NGINX_LOAD_MODULES (the module) and TEST_NGINX_ROOT (the
# repository, for t/fixtures); "make test" sets both.

use Test::Nginx::Socket 'no_plan';
use Cwd qw(getcwd);
use File::Temp qw(tempdir);

$ENV{TEST_NGINX_ROOT} ||= getcwd();

# a fixture's bytes, for the replay checks
sub fixture {
    my $name = shift;
    my $path = "$ENV{TEST_NGINX_ROOT}/t/fixtures/openai/$name";
    open my $fh, '<', $path or die "$path: $!";
    local $/;
    my $data = <$fh>;
    close $fh;
    return $data;
}

# mistakes in the directive fail "nginx -t", naming llm_mock
sub nginx_t {
    my ($config, $error, $name) = @_;
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my @modules = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
    my $dir = tempdir('llm-mock-XXXXXX', TMPDIR => 1, CLEANUP => 1);

    mkdir "$dir/logs";
    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!";
    print $fh join(' ', map { "load_module $_;" } @modules), "\n",
              "error_log logs/error.log;\npid logs/nginx.pid;\n",
              "events { }\nhttp {\n    server {\n",
              "        listen 127.0.0.1:1984;\n",
              "        location /mock { $config }\n    }\n}\n";
    close $fh;

    my $out = `$nginx -t -p $dir/ -c $dir/nginx.conf 2>&1`;
    isnt($? >> 8, 0, "$name - nginx -t fails");
    like($out, $error, "$name - message");
}

nginx_t('llm_mock replay=no/such/file.sse;',
        qr/"llm_mock" cannot open replay file ".*no\/such\/file\.sse".*No such file or directory.*nginx\.conf:\d+/,
        'a missing replay file');
nginx_t('llm_mock replay=/tmp;',
        qr/"llm_mock" replay file "\/tmp" is not a regular file.*nginx\.conf:\d+/,
        'a directory as replay file');
nginx_t('llm_mock split=10;',
        qr/"split" needs "replay" in "llm_mock".*nginx\.conf:\d+/,
        'split without replay');
nginx_t('llm_mock format=cohere;',
        qr/invalid parameter "format=cohere" in "llm_mock".*nginx\.conf:\d+/,
        'an unknown format');
nginx_t("llm_mock replay=$ENV{TEST_NGINX_ROOT}/t/fixtures/openai/text.json split=0;",
        qr/invalid parameter "split=0" in "llm_mock"/,
        'a zero split');

no_shuffle();
run_tests();

__DATA__

=== TEST 1: anthropic: a Messages answer echoing the last user text block
--- config
    location /mock { llm_mock format=anthropic chunks=3; }
--- request
POST /mock
{"model":"claude-x","max_tokens":100,"system":"be brief","messages":[{"role":"user","content":"first"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"42"},{"type":"text","text":"second"}]}]}
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"id":"msg_mock","type":"message","role":"assistant","model":"claude-x","content":\[\{"type":"text","text":"Hello from the mock provider. You said: second"\}\],"stop_reason":"end_turn","stop_sequence":null,"usage":\{"input_tokens":\d+,"output_tokens":3\}\}$



=== TEST 2: anthropic: a stream of named events, one text_delta a piece
--- config
    location /mock { llm_mock format=anthropic chunks=3 text=abcdef; }
--- request
POST /mock
{"model":"claude-x","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers
Content-Type: text/event-stream; charset=utf-8
--- response_body_like eval
qr/\Aevent: message_start\ndata: \{"type":"message_start","message":\{"id":"msg_mock","type":"message","role":"assistant","model":"claude-x","content":\[\],"stop_reason":null,"stop_sequence":null,"usage":\{"input_tokens":\d+,"output_tokens":1\}\}\}\n\nevent: content_block_start\ndata: \{"type":"content_block_start","index":0,"content_block":\{"type":"text","text":""\}\}\n\nevent: ping\ndata: \{"type":"ping"\}\n\nevent: content_block_delta\ndata: \{"type":"content_block_delta","index":0,"delta":\{"type":"text_delta","text":"ab"\}\}\n\nevent: content_block_delta\ndata: \{"type":"content_block_delta","index":0,"delta":\{"type":"text_delta","text":"cd"\}\}\n\nevent: content_block_delta\ndata: \{"type":"content_block_delta","index":0,"delta":\{"type":"text_delta","text":"ef"\}\}\n\nevent: content_block_stop\ndata: \{"type":"content_block_stop","index":0\}\n\nevent: message_delta\ndata: \{"type":"message_delta","delta":\{"stop_reason":"end_turn","stop_sequence":null\},"usage":\{"output_tokens":3\}\}\n\nevent: message_stop\ndata: \{"type":"message_stop"\}\n\n\z/



=== TEST 3: anthropic: a one-piece stream
--- config
    location /mock { llm_mock format=anthropic chunks=1 text=abc; }
--- request
POST /mock
{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
qr/\Aevent: message_start\n.*event: ping\n[^\n]*\n\nevent: content_block_delta\ndata: [^\n]*"text":"abc"\}\}\n\nevent: content_block_stop\n[^\n]*\n\nevent: message_delta\n[^\n]*\n\nevent: message_stop\ndata: \{"type":"message_stop"\}\n\n\z/s



=== TEST 4: anthropic: errors in Anthropic's shape, 529 overloaded
--- config
    location /mock { llm_mock format=anthropic status=529; }
--- request
POST /mock
{"model":"claude-x","messages":[{"role":"user","content":"x"}]}
--- error_code: 529
--- response_headers
Content-Type: application/json
--- response_body chomp
{"type":"error","error":{"type":"overloaded_error","message":"mock failure 529"},"request_id":"req_mock"}



=== TEST 5: anthropic: X-Mock-Status 429 is a rate_limit_error with Retry-After
--- config
    location /mock { llm_mock format=anthropic; }
--- more_headers
X-Mock-Status: 429
--- request
POST /mock
{"model":"claude-x","messages":[{"role":"user","content":"x"}]}
--- error_code: 429
--- response_headers
Retry-After: 1
--- response_body chomp
{"type":"error","error":{"type":"rate_limit_error","message":"mock failure 429"},"request_id":"req_mock"}



=== TEST 6: anthropic: sse_error is an "error" event before anything else
--- config
    location /mock { llm_mock format=anthropic fault=sse_error; }
--- request
POST /mock
{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body eval
qq{event: error\ndata: {"type":"error","error":{"type":"api_error","message":"mock failure before the answer"}}\n\n}



=== TEST 7: anthropic: sse_error_mid: the first piece, then an "error" event
--- config
    location /mock { llm_mock format=anthropic chunks=3 text=abcdef fault=sse_error_mid; }
--- request
POST /mock
{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
qr/\Aevent: message_start\n.*"text":"ab"\}\}\n\nevent: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"mock failure in the middle"\}\}\n\n\z/s
--- response_body_unlike chomp
message_stop



=== TEST 8: anthropic: no_done ends with message_delta, without message_stop
--- config
    location /mock { llm_mock format=anthropic chunks=2 text=abcd fault=no_done; }
--- request
POST /mock
{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
qr/"text":"cd"\}\}\n\nevent: content_block_stop\n[^\n]*\n\nevent: message_delta\ndata: [^\n]*"stop_reason":"end_turn"[^\n]*\n\n\z/
--- response_body_unlike chomp
message_stop



=== TEST 9: anthropic: role_stall is message_start, then silence
--- config
    location /mock { llm_mock format=anthropic fault=role_stall; }
--- request
POST /mock HTTP/1.0
{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"x"}]}
--- timeout: 0.5
--- abort
--- error_code: 200
--- response_body_like eval
qr/\Aevent: message_start\ndata: \{"type":"message_start",[^\n]*\n\n\z/



=== TEST 10: anthropic: drop closes the stream after its first piece
--- config
    location /mock { llm_mock format=anthropic chunks=3 text=abcdef fault=drop; }
--- request
POST /mock HTTP/1.0
{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
qr/"text":"ab"\}\}\n\n\z/



=== TEST 11: gemini: a generateContent answer echoing the last user part
--- config
    location /g/ { llm_mock format=gemini chunks=2; }
--- request
POST /g/v1beta/models/gemini-2.0-flash:generateContent
{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"first"}]},{"role":"model","parts":[{"text":"ok"}]},{"role":"user","parts":[{"inlineData":{"mimeType":"image/png","data":"AAAA"}},{"text":"second"}]}],"generationConfig":{"maxOutputTokens":100}}
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=UTF-8
--- response_body_like chomp
^\{"candidates":\[\{"content":\{"parts":\[\{"text":"Hello from the mock provider. You said: second"\}\],"role":"model"\},"finishReason":"STOP","index":0\}\],"usageMetadata":\{"promptTokenCount":(\d+),"candidatesTokenCount":2,"totalTokenCount":\d+\},"modelVersion":"gemini-2.0-flash","responseId":"mock"\}$



=== TEST 12: gemini: the URI asks for a stream; CRLF events, the last with the finish and usage
--- config
    location /g/ { llm_mock format=gemini chunks=3 text=abcdef; }
--- request
POST /g/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse
{"contents":[{"parts":[{"text":"x"}]}]}
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
--- response_body_like eval
qr/\Adata: \{"candidates":\[\{"content":\{"parts":\[\{"text":"ab"\}\],"role":"model"\},"index":0\}\],"modelVersion":"gemini-2.0-flash","responseId":"mock"\}\r\n\r\ndata: \{"candidates":\[\{"content":\{"parts":\[\{"text":"cd"\}\],"role":"model"\},"index":0\}\],[^\r\n]*\r\n\r\ndata: \{"candidates":\[\{"content":\{"parts":\[\{"text":"ef"\}\],"role":"model"\},"index":0,"finishReason":"STOP"\}\],"modelVersion":"gemini-2.0-flash","responseId":"mock","usageMetadata":\{"promptTokenCount":\d+,"candidatesTokenCount":3,"totalTokenCount":\d+\}\}\r\n\r\n\z/



=== TEST 13: gemini: "stream" in the body means nothing, the URI decides
--- config
    location /g/ { llm_mock format=gemini chunks=2 text=abcd; }
--- request
POST /g/v1beta/models/m:generateContent
{"stream":true,"contents":[{"role":"user","parts":[{"text":"x"}]}]}
--- error_code: 200
--- response_body_like chomp
^\{"candidates":\[\{"content":\{"parts":\[\{"text":"abcd"\}\]



=== TEST 14: gemini: a one-piece stream is one event
--- config
    location /g/ { llm_mock format=gemini chunks=1 text=abc; }
--- request
POST /g/v1beta/models/m:streamGenerateContent?alt=sse
{"contents":[{"role":"user","parts":[{"text":"x"}]}]}
--- error_code: 200
--- response_body_like eval
qr/\Adata: \{[^\r\n]*"text":"abc"[^\r\n]*"finishReason":"STOP"[^\r\n]*"usageMetadata"[^\r\n]*\r\n\r\n\z/



=== TEST 15: gemini: errors in Google's shape
--- config
    location /g/ { llm_mock format=gemini status=429; }
--- request
POST /g/v1beta/models/m:generateContent
{"contents":[{"role":"user","parts":[{"text":"x"}]}]}
--- error_code: 429
--- response_headers
Retry-After: 1
--- response_body chomp
{"error":{"code":429,"message":"mock failure 429","status":"RESOURCE_EXHAUSTED"}}



=== TEST 16: gemini: X-Mock-Status 503 is UNAVAILABLE
--- config
    location /g/ { llm_mock format=gemini; }
--- more_headers
X-Mock-Status: 503
--- request
POST /g/v1beta/models/m:streamGenerateContent?alt=sse
{"contents":[{"role":"user","parts":[{"text":"x"}]}]}
--- error_code: 503
--- response_body chomp
{"error":{"code":503,"message":"mock failure 503","status":"UNAVAILABLE"}}



=== TEST 17: gemini: sse_error_mid: a piece, then an error object
--- config
    location /g/ { llm_mock format=gemini chunks=3 text=abcdef fault=sse_error_mid; }
--- request
POST /g/v1beta/models/m:streamGenerateContent?alt=sse
{"contents":[{"role":"user","parts":[{"text":"x"}]}]}
--- error_code: 200
--- response_body_like eval
qr/\Adata: \{[^\r\n]*"text":"ab"[^\r\n]*\r\n\r\ndata: \{"error":\{"code":500,"message":"mock failure in the middle","status":"INTERNAL"\}\}\r\n\r\n\z/



=== TEST 18: gemini: no_done: the last piece has no finishReason
--- config
    location /g/ { llm_mock format=gemini chunks=2 text=abcd fault=no_done; }
--- request
POST /g/v1beta/models/m:streamGenerateContent?alt=sse
{"contents":[{"role":"user","parts":[{"text":"x"}]}]}
--- error_code: 200
--- response_body_like eval
qr/"text":"cd"[^\r\n]*\r\n\r\n\z/
--- response_body_unlike chomp
finishReason



=== TEST 19: gemini: role_stall is an empty event, then silence
--- config
    location /g/ { llm_mock format=gemini fault=role_stall; }
--- request
POST /g/v1beta/models/m:streamGenerateContent?alt=sse HTTP/1.0
{"contents":[{"role":"user","parts":[{"text":"x"}]}]}
--- timeout: 0.5
--- abort
--- error_code: 200
--- response_body eval
qq{data: {"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"index":0}],"modelVersion":"m","responseId":"mock"}\r\n\r\n}



=== TEST 20: the OpenAI mock echoes Gemini contents and Anthropic blocks too
--- config
    location /mock { llm_mock chunks=1; }
--- request
POST /mock
{"contents":[{"role":"user","parts":[{"text":"from gemini"}]}]}
--- error_code: 200
--- response_body_like chomp
"model":"mock",.*"content":"Hello from the mock provider. You said: from gemini"



=== TEST 21: replay: a recorded stream as it is
--- config
    location /mock { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/openai/text.sse; }
--- request
POST /mock
{"model":"anything"}
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
--- response_body eval
main::fixture("text.sse")



=== TEST 22: replay: byte by byte
--- config
    location /mock { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/openai/tools.sse split=1 interval=0; }
--- request
POST /mock
{"model":"anything"}
--- error_code: 200
--- response_body eval
main::fixture("tools.sse")



=== TEST 23: replay: in odd pieces, a little apart
--- config
    location /mock { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/openai/text.sse split=37 interval=1ms; }
--- request
POST /mock
not even JSON: a replay answers anything
--- error_code: 200
--- response_body eval
main::fixture("text.sse")



=== TEST 24: replay: a recorded JSON answer with its length
--- config
    location /mock { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/openai/tools.json split=100 interval=0; }
--- request
POST /mock
{"model":"anything"}
--- error_code: 200
--- response_headers eval
"Content-Type: application/json\nContent-Length: " . length(main::fixture("tools.json"))
--- response_body eval
main::fixture("tools.json")



=== TEST 25: replay: a recorded error with its status
--- config
    location /mock { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/openai/error.json status=400; }
--- request
POST /mock
{"model":"anything"}
--- error_code: 400
--- response_body eval
main::fixture("error.json")



=== TEST 26: replay: a path relative to the prefix
--- user_files
>>> rel.json
{"ok":true}
--- config
    location /mock { llm_mock replay=html/rel.json; }
--- request
POST /mock
{}
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"ok":true\}$



=== TEST 27: replay: stall stops after the first piece
--- config
    location /mock { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/openai/text.sse split=10 fault=stall; }
--- request
POST /mock HTTP/1.0
{}
--- timeout: 0.5
--- abort
--- error_code: 200
--- response_body eval
substr(main::fixture("text.sse"), 0, 10)



=== TEST 28: replay feeds the router a recorded tool-call stream byte by byte
--- http_config
    llm_provider rec http://127.0.0.1:$TEST_NGINX_SERVER_PORT/rec/v1;
    llm_model m { endpoint rec model=gpt input=1 output=2; }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /rec/v1/chat/completions {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/openai/tools.sse split=1 interval=0;
    }
--- request
POST /v1/chat/completions
{"model":"m","stream":true,"messages":[{"role":"user","content":"weather?"}]}
--- error_code: 200
--- response_body_like eval
qr/"tool_calls":\[\{"index":0,"id":"call_Kq2Wb7Xv9Lm3Np5Rt8Yz1Ac4".*"arguments":" \\"Paris, France\\"\}".*"tool_calls":\[\{"index":1,"id":"call_Dm6Fh8Jk1Qs3Tv5Wx7Zb9Ce2".*"finish_reason":"tool_calls".*\ndata: \[DONE\]\n\n\z/s
--- no_error_log
[error]



=== TEST 29: an Anthropic client gets the recorded tool calls as tool_use blocks
--- http_config
    llm_provider rec http://127.0.0.1:$TEST_NGINX_SERVER_PORT/rec/v1;
    llm_model m { endpoint rec model=gpt input=1 output=2; }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /rec/v1/chat/completions {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/openai/tools.sse split=13 interval=0;
    }
--- request
POST /v1/messages
{"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"weather?"}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}
--- error_code: 200
--- response_body_like eval
qr/\Aevent: message_start\ndata: \{"type":"message_start","message":\{"id":"msg_chatcmpl-Bx7kS6pQ8rT1uV3xY5aB8cE9fG2hJ",[^\n]*\n\nevent: content_block_start\ndata: \{"type":"content_block_start","index":0,"content_block":\{"type":"tool_use","id":"call_Kq2Wb7Xv9Lm3Np5Rt8Yz1Ac4","name":"get_weather","input":\{\}\}\}\n\nevent: content_block_delta\ndata: \{"type":"content_block_delta","index":0,"delta":\{"type":"input_json_delta","partial_json":"\{\\"location\\":"\}\}\n\n.*event: content_block_stop\ndata: \{"type":"content_block_stop","index":0\}\n\nevent: content_block_start\ndata: \{"type":"content_block_start","index":1,[^\n]*"id":"call_Dm6Fh8Jk1Qs3Tv5Wx7Zb9Ce2".*event: content_block_stop\ndata: \{"type":"content_block_stop","index":1\}\n\nevent: message_delta\ndata: \{"type":"message_delta","delta":\{"stop_reason":"tool_use","stop_sequence":null\},"usage":\{"input_tokens":82,"output_tokens":46,"cost":0.000174\}\}\n\nevent: message_stop\ndata: \{"type":"message_stop"\}\n\n\z/s
--- no_error_log
[error]



=== TEST 30: an Anthropic client's JSON answer from a recorded chat.completion
--- http_config
    llm_provider rec http://127.0.0.1:$TEST_NGINX_SERVER_PORT/rec/v1;
    llm_model m { endpoint rec model=gpt input=1 output=2; }
--- config
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /rec/v1/chat/completions {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/openai/tools.json;
    }
--- request
POST /v1/messages
{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"weather?"}]}
--- error_code: 200
--- response_body_like chomp
^\{"id":"msg_chatcmpl-Bx7kT8rS1tU3vW5yZ7bC9dF2gH4jK","type":"message","role":"assistant","content":\[\{"type":"tool_use","id":"call_Kq2Wb7Xv9Lm3Np5Rt8Yz1Ac4","name":"get_weather","input":\{"location":"Paris, France"\}\},\{"type":"tool_use","id":"call_Dm6Fh8Jk1Qs3Tv5Wx7Zb9Ce2","name":"get_weather","input":\{"location":"Rome, Italy"\}\}\],"stop_reason":"tool_use","stop_sequence":null,"usage":\{"input_tokens":82,"cache_read_input_tokens":0,"output_tokens":46,"cost":0.000174\}
--- no_error_log
[error]
