# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Providers of Google Gemini's generateContent API (format=gemini), for
# OpenAI clients: the request translated (systemInstruction, contents and
# parts, inlineData/fileData images, functionCall/functionResponse,
# generationConfig, tools and toolConfig; the model and the stream in the
# URL; x-goog-api-key), the answers and the alt=sse stream translated back
# (text, parallel function calls, finish reasons, usage with cached
# tokens, errors), a stream split anywhere giving the same output, a stream
# relayed as it arrives, and a fallback to an OpenAI endpoint.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';
$ENV{LLM_TEST_GEMINI_KEY} = 'AIza-test-key-0005';

sub main::content_has {
    my $json = shift;
    $json =~ s/(["\\])/\\$1/g;
    return qr/"content":"[^\n]*\Q$json\E/;
}

sub main::exactly {
    my $s = quotemeta shift;
    $s =~ s/CREATED/\\d+/g;
    return qr/\A$s\z/;
}

our $ToolsSse = join '',
    map { "data: $_\n\n" }
    '{"id":"Bn3TaNq0D6nq7dcPk8bY0Qo","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"model":"m","provider":"gem"}',
    '{"id":"Bn3TaNq0D6nq7dcPk8bY0Qo","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\",\"unit\":\"celsius\"}"}}]},"finish_reason":null}],"model":"m","provider":"gem"}',
    '{"id":"Bn3TaNq0D6nq7dcPk8bY0Qo","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{\"timezone\":\"Europe/Paris\"}"}}]},"finish_reason":null}],"model":"m","provider":"gem"}',
    '{"id":"Bn3TaNq0D6nq7dcPk8bY0Qo","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"model":"m","provider":"gem"}',
    '{"id":"Bn3TaNq0D6nq7dcPk8bY0Qo","object":"chat.completion.chunk","created":CREATED,"choices":[],"usage":{"prompt_tokens":112,"completion_tokens":18,"total_tokens":130,"cost":1.84e-5},"model":"m","provider":"gem"}',
    '[DONE]';

our $Stream = "POST /v1/chat/completions\n"
    . '{"model":"m","stream":true,"stream_options":{"include_usage":true},'
    . '"messages":[{"role":"user","content":"x"}]}';

our $Json = "POST /v1/chat/completions\n"
    . '{"model":"m","messages":[{"role":"user","content":"x"}]}';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    llm_provider gem http://127.0.0.1:$TEST_NGINX_SERVER_PORT/gem/v1beta
                 format=gemini key=env:LLM_TEST_GEMINI_KEY;
    llm_provider oai http://127.0.0.1:$TEST_NGINX_SERVER_PORT/oai/v1;
    llm_model m {
        endpoint gem model=gemini-2.0-flash input=0.1 output=0.4;
    }
    llm_model both {
        endpoint gem model=gemini-2.0-flash input=0.1 output=0.4;
        endpoint oai model=gpt-4o input=2.5 output=10;
    }
_EOC_

    my $config = $block->config // '';

    $block->set_value("config", <<'_EOC_' . $config);
    location /v1/ {
        llm_router;
        add_header X-LLM-Attempts $llm_attempts always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /oai/v1/chat/completions { llm_mock chunks=1 text=OPENAI; }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: system instruction, contents, generation config; the model in the URL
--- config
    location /gem/v1beta/ { llm_mock format=gemini chunks=1 "text=$uri $request_body"; }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"stop":"END","temperature":0.5,"max_completion_tokens":50}
--- error_code: 200
--- response_body_like eval
main::content_has('/gem/v1beta/models/gemini-2.0-flash:generateContent {"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":50,"temperature":0.5,"stopSequences":["END"]}}')



=== TEST 2: a stream asks streamGenerateContent with alt=sse
--- config
    location /gem/v1beta/ { llm_mock format=gemini chunks=1 "text=$uri?$args"; }
--- request
POST /v1/chat/completions
{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like chomp
"content":"/gem/v1beta/models/gemini-2.0-flash:streamGenerateContent\?alt=sse"



=== TEST 3: images: inlineData for data URLs, fileData for the others
--- config
    location /gem/v1beta/ { llm_mock format=gemini chunks=1 text=$request_body; }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is it?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}
--- error_code: 200
--- response_body_like eval
main::content_has('{"contents":[{"role":"user","parts":[{"text":"what is it?"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},{"fileData":{"mimeType":"image/jpeg","fileUri":"https://example.com/cat.jpg"}}]}]}')



=== TEST 4: tools, tool choice, parallel calls and their responses (by name)
--- config
    location /gem/v1beta/ { llm_mock format=gemini chunks=1 text=$request_body; }
--- request
POST /v1/chat/completions
{"model":"m","tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}},"messages":[{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C"},{"role":"tool","tool_call_id":"call_2","content":"{\"temp\":25}"}]}
--- error_code: 200
--- response_body_like eval
main::content_has('{"contents":[{"role":"user","parts":[{"text":"weather in Paris?"}]},{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}},{"functionCall":{"name":"get_weather","args":{"city":"Rome"}}}]},{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"content":"18C"}}},{"functionResponse":{"name":"get_weather","response":{"temp":25}}}]}],"tools":[{"functionDeclarations":[{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_weather"]}}}')



=== TEST 5: the key as x-goog-api-key, nothing else
--- config
    location /gem/v1beta/ {
        llm_mock format=gemini chunks=1
                 "text=goog=[$http_x_goog_api_key] auth=[$http_authorization]";
    }
--- more_headers
Authorization: Bearer client-key
--- request eval
$::Json
--- error_code: 200
--- response_body_like chomp
"content":"goog=\[AIza-test-key-0005\] auth=\[\]"



=== TEST 6: a text answer
--- config
    location /gem/v1beta/ { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/text.json; }
--- request eval
$::Json
--- error_code: 200
--- response_body_like eval
main::exactly('{"id":"mXvTaJz7HdaM7dcPo9ivqAk","object":"chat.completion","created":CREATED,"choices":[{"index":0,"message":{"role":"assistant","content":"The capital of France is Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17,"cost":4.1e-6},"model":"m","provider":"gem"}')



=== TEST 7: parallel function calls as tool_calls
--- config
    location /gem/v1beta/ { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/tools.json; }
--- request eval
$::Json
--- error_code: 200
--- response_body_like eval
main::exactly('{"id":"3nzTaP2xL7mR7dcPyOq8sQc","object":"chat.completion","created":CREATED,"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\",\"unit\":\"celsius\"}"}},{"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{\"timezone\":\"Europe/Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":112,"completion_tokens":18,"total_tokens":130,"cost":1.84e-5},"model":"m","provider":"gem"}')



=== TEST 8: SAFETY is content_filter
--- config
    location /gem/v1beta/ { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/safety.json; }
--- request eval
$::Json
--- error_code: 200
--- response_body_like chomp
"message":\{"role":"assistant","content":""\},"finish_reason":"content_filter"\}\],"usage":\{"prompt_tokens":15,"completion_tokens":0,"total_tokens":15,"cost":1.5e-6\}



=== TEST 9: MAX_TOKENS is length; cached content tokens are reported
--- config
    location /gem/v1beta/ { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/max_tokens.json; }
--- request eval
$::Json
--- error_code: 200
--- response_body_like chomp
"finish_reason":"length"\}\],"usage":\{"prompt_tokens":2118,"completion_tokens":62,"total_tokens":2180,"prompt_tokens_details":\{"cached_tokens":2048\},"cost":0.0002366\}



=== TEST 10: the alt=sse stream, function calls and usage, chunk by chunk
--- config
    location /gem/v1beta/ { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/tools.sse; }
--- request eval
$::Stream
--- error_code: 200
--- response_body_like eval
main::exactly($::ToolsSse)



=== TEST 11: the same stream one byte at a time
--- config
    location /gem/v1beta/ {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/tools.sse
                 split=1 interval=0;
    }
--- request eval
$::Stream
--- error_code: 200
--- response_body_like eval
main::exactly($::ToolsSse)



=== TEST 12: and in pieces of 13 bytes
--- config
    location /gem/v1beta/ {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/tools.sse
                 split=13 interval=0;
    }
--- request eval
$::Stream
--- error_code: 200
--- response_body_like eval
main::exactly($::ToolsSse)



=== TEST 13: relayed as it arrives: the first text while the provider pauses
--- config
    location /gem/v1beta/ {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/text.sse
                 split=300 interval=3s;
    }
--- request
POST /v1/chat/completions HTTP/1.0
{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}
--- timeout: 1.5
--- abort
--- error_code: 200
--- response_body_like eval
qr/\A(?!.*\[DONE\]).*"content":"The"/s



=== TEST 14: an error keeps its message; a 400 goes back to the client
--- config
    location /gem/v1beta/ {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/error.json status=400;
    }
--- request eval
$::Json
--- error_code: 400
--- response_body_like chomp
"message":"The model is overloaded. Please try again later."



=== TEST 15: cross-dialect fallback: Gemini unavailable, OpenAI answers in the same stream format
--- config
    location /gem/v1beta/ { llm_mock format=gemini status=503; }
--- request
POST /v1/chat/completions
{"model":"both","stream":true,"provider":{"order":["gem","oai"]},"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
qr/\A(?!.*"provider":"gem")data: \{[^\n]*"provider":"oai"\}\n\n.*"content":"OPENAI".*data: \[DONE\]\n\n\z/s



=== TEST 16: the mock in Gemini's format end to end
--- config
    location /gem/v1beta/ { llm_mock format=gemini chunks=3 text=abcdef; }
--- request
POST /v1/chat/completions
{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
qr/\Adata: \{[^\n]*"role":"assistant"[^\n]*\n\ndata: \{[^\n]*"content":"ab"[^\n]*\n\ndata: \{[^\n]*"content":"cd"[^\n]*\n\ndata: \{[^\n]*"content":"ef"[^\n]*\n\ndata: \{[^\n]*"finish_reason":"stop"[^\n]*\n\ndata: \[DONE\]\n\n\z/



=== TEST 17: a Gemini stream that breaks off mid-way ends in-band, no fallback
--- config
    location /gem/v1beta/ {
        llm_mock format=gemini chunks=4 interval=50ms fault=drop text=abcdefgh;
    }
--- request
POST /v1/chat/completions
{"model":"both","provider":{"order":["gem","oai"]},"stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers
X-LLM-Attempts: 1
--- response_body_like eval
qr/\A(?!.*OPENAI).*"content":"ab".*"error":\{"message":"The provider's stream broke off; the answer is incomplete","type":"api_error","code":502\},"choices":\[\{"index":0,"delta":\{\},"finish_reason":"error"\}\]\}\n\n\z/s



=== TEST 18: a Gemini stream that stalls past llm_router_idle_timeout ends in-band, no fallback
--- config
    llm_router_idle_timeout 300ms;
    proxy_read_timeout 30s;
    location /gem/v1beta/ {
        llm_mock format=gemini chunks=4 fault=stall text=abcdefgh;
    }
--- request
POST /v1/chat/completions
{"model":"both","provider":{"order":["gem","oai"]},"stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers
X-LLM-Attempts: 1
--- response_body_like eval
qr/\A(?!.*OPENAI).*"content":"ab".*"error":\{"message":"The provider stopped sending; the answer is incomplete","type":"api_error","code":502\},"choices":\[\{"index":0,"delta":\{\},"finish_reason":"error"\}\]\}\n\n\z/s
--- error_log
went silent past llm_router_idle_timeout



=== TEST 19: top_p is topP
--- config
    location /gem/v1beta/ { llm_mock format=gemini chunks=1 "text=$request_body"; }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"user","content":"hi"}],"top_p":0.9,"max_tokens":50}
--- error_code: 200
--- response_body_like eval
main::content_has('"generationConfig":{"maxOutputTokens":50,"topP":0.9}')
