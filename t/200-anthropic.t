# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Providers of Anthropic's Messages API (format=anthropic), for OpenAI
# clients: the request translated (system, turns, images, tools, tool
# results, stop, max_tokens; x-api-key and anthropic-version), the answer
# and the event stream translated back chunk by chunk (text, single and
# parallel tool calls, stop reasons, usage with cache reads, errors), a
# stream split at every byte giving the same output, a stream relayed as
# it arrives, and a fallback from an Anthropic endpoint to an OpenAI one.
#
# The Anthropic side is the mock in Anthropic's format, or recorded
# exchanges from t/fixtures/anthropic replayed by it.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';
$ENV{LLM_TEST_ANTHROPIC_KEY} = 'sk-ant-test-0004';

# the JSON text "$json" as it appears escaped in an answer's content
sub main::content_is {
    my $json = shift;
    $json =~ s/(["\\])/\\$1/g;
    return qr/"content":"\Q$json\E"/;
}

# ... or anywhere in it
sub main::content_has {
    my $json = shift;
    $json =~ s/(["\\])/\\$1/g;
    return qr/"content":"[^\n]*\Q$json\E/;
}

# a regex of an exact body, with every "created" value free
sub main::exactly {
    my $s = quotemeta shift;
    $s =~ s/CREATED/\\d+/g;
    return qr/\A$s\z/;
}

our $ToolsSse = join '',
    map { "data: $_\n\n" }
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"content":"I\'ll check the weather"},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"content":" and the time."},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"loca"}}]},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"tion\": \"San Fra"}}]},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ncisco, CA\", \"unit\": \"fahr"}}]},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"enheit\"}"}}]},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"toolu_01Ck3D9sJ7vQwXe2mB5tRz8L","type":"function","function":{"name":"get_time","arguments":""}}]},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"timez"}}]},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"one\": \"America/Los_An"}}]},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"geles\"}"}}]},"finish_reason":null}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"model":"m","provider":"ant"}',
    '{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":CREATED,"choices":[],"usage":{"prompt_tokens":472,"completion_tokens":89,"total_tokens":561,"cost":0.002751},"model":"m","provider":"ant"}',
    '[DONE]';

our $Stream = "POST /v1/chat/completions\n"
    . '{"model":"m","stream":true,"stream_options":{"include_usage":true},'
    . '"messages":[{"role":"user","content":"x"}]}';

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config", <<'_EOC_');
    llm_provider ant http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ant/v1
                 format=anthropic key=env:LLM_TEST_ANTHROPIC_KEY;
    llm_provider oai http://127.0.0.1:$TEST_NGINX_SERVER_PORT/oai/v1;
    llm_model m {
        endpoint ant model=claude-sonnet-4-5 input=3 output=15;
    }
    llm_model both {
        endpoint ant model=claude-sonnet-4-5 input=3 output=15;
        endpoint oai model=gpt-4o input=2.5 output=10;
    }
_EOC_
    }

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

=== TEST 1: the request in Anthropic's terms: system, stop, max tokens, temperature
--- config
    location /ant/v1/messages { llm_mock format=anthropic chunks=1 text=$request_body; }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"stop":"END","temperature":0.5,"max_completion_tokens":50}
--- error_code: 200
--- response_body_like eval
main::content_is('{"model":"claude-sonnet-4-5","system":"be brief","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":50,"stop_sequences":["END"],"temperature":0.5,"stream":false}')



=== TEST 2: max_tokens is required by Anthropic: a default when the client gives none
--- config
    location /ant/v1/messages { llm_mock format=anthropic chunks=1 text=$request_body; }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like eval
main::content_has('"max_tokens":4096,')



=== TEST 3: images, base64 and by URL
--- config
    location /ant/v1/messages { llm_mock format=anthropic chunks=1 text=$request_body; }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is it?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}
--- error_code: 200
--- response_body_like eval
main::content_has('"messages":[{"role":"user","content":[{"type":"text","text":"what is it?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]')



=== TEST 4: tools, a named tool choice, parallel tool calls and their results
--- config
    location /ant/v1/messages { llm_mock format=anthropic chunks=1 text=$request_body; }
--- request
POST /v1/chat/completions
{"model":"m","tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}},"messages":[{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C"},{"role":"tool","tool_call_id":"call_2","content":"{\"temp\":25}"}]}
--- error_code: 200
--- response_body_like eval
main::content_is('{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[{"type":"text","text":"weather in Paris?"}]},{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"call_2","name":"get_weather","input":{"city":"Rome"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"18C"},{"type":"tool_result","tool_use_id":"call_2","content":"{\"temp\":25}"}]}],"max_tokens":4096,"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"description":"Weather"}],"tool_choice":{"type":"tool","name":"get_weather"},"stream":false}')



=== TEST 5: Anthropic's headers: x-api-key and anthropic-version, no Authorization
--- config
    location /ant/v1/messages {
        llm_mock format=anthropic chunks=1
                 "text=key=[$http_x_api_key] version=[$http_anthropic_version] auth=[$http_authorization]";
    }
--- more_headers
Authorization: Bearer client-key
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like chomp
"content":"key=\[sk-ant-test-0004\] version=\[2023-06-01\] auth=\[\]"



=== TEST 6: a text answer back as a chat completion, usage mapped
--- config
    location /ant/v1/messages { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/text.json; }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
main::exactly('{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","object":"chat.completion","created":CREATED,"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! The capital of France is Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":21,"completion_tokens":12,"total_tokens":33,"cost":0.000243},"model":"m","provider":"ant"}')



=== TEST 7: parallel tool calls back as tool_calls, finish_reason tool_calls
--- config
    location /ant/v1/messages { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/tools.json; }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
main::exactly('{"id":"msg_01Aq9w938a90dw8q4mWZsKzC","object":"chat.completion","created":CREATED,"choices":[{"index":0,"message":{"role":"assistant","content":"I\'ll check the weather and the local time in San Francisco.","tool_calls":[{"id":"toolu_01A09q90qw90lq917835lq9","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"San Francisco, CA\",\"unit\":\"fahrenheit\"}"}},{"id":"toolu_01B7cPxZ4kJ2mT8vR3nW6qYe","type":"function","function":{"name":"get_time","arguments":"{\"timezone\":\"America/Los_Angeles\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":472,"completion_tokens":121,"total_tokens":593,"cost":0.003231},"model":"m","provider":"ant"}')



=== TEST 8: max_tokens is "length"; cache reads and writes count as prompt tokens
--- config
    location /ant/v1/messages { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/max_tokens.json; }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like chomp
"finish_reason":"length"\}\],"usage":\{"prompt_tokens":2118,"completion_tokens":16,"total_tokens":2134,"prompt_tokens_details":\{"cached_tokens":1856\},"cost":0.006594\}



=== TEST 9: the event stream, tool calls and all, translated chunk by chunk
--- config
    location /ant/v1/messages { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/tools.sse; }
--- request eval
$::Stream
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
--- response_body_like eval
main::exactly($::ToolsSse)



=== TEST 10: the same stream fed one byte at a time gives the same output
--- config
    location /ant/v1/messages {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/tools.sse
                 split=1 interval=0;
    }
--- request eval
$::Stream
--- error_code: 200
--- response_body_like eval
main::exactly($::ToolsSse)



=== TEST 11: and in pieces of 7 bytes
--- config
    location /ant/v1/messages {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/tools.sse
                 split=7 interval=0;
    }
--- request eval
$::Stream
--- error_code: 200
--- response_body_like eval
main::exactly($::ToolsSse)



=== TEST 12: translated as it arrives: the first text is relayed while the provider pauses
The provider sends its stream in 500-byte pieces 3 s apart; the client
gives up after 1.5 s of silence with the first text in hand.
--- config
    location /ant/v1/messages {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/text.sse
                 split=700 interval=3s;
    }
--- request
POST /v1/chat/completions HTTP/1.0
{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}
--- timeout: 1.5
--- abort
--- error_code: 200
--- response_body_like eval
qr/\A(?!.*\[DONE\]).*"content":"Hello!"/s



=== TEST 13: an overloaded provider's error: its message kept, the next endpoint tried
--- config
    location /ant/v1/messages {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/error.json
                 status=529;
    }
--- request
POST /v1/chat/completions
{"model":"m","messages":[{"role":"user","content":"x"}]}
--- error_code: 502
--- response_body_like chomp
"previous_errors":\[\{"provider":"ant","model":"m","status":529,"reason":"status","message":"Overloaded"\}\]



=== TEST 14: an error event after the first text reached the client: the in-band error, the provider's message
--- config
    location /ant/v1/messages {
        llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/error.sse
                 split=640 interval=200ms;
    }
--- request eval
$::Stream
--- error_code: 200
--- response_body_like eval
qr/"content":"Once upon a".*"error":\{"message":"Overloaded","type":"api_error","code":502\},"choices":\[\{"index":0,"delta":\{\},"finish_reason":"error"\}\]\}\n\n\z/s



=== TEST 14b: the same error arriving with the text, before anything was sent: no stream, a 502
Nothing reached the client yet, so nothing has to be cut: the attempt
failed as a whole (and a fallback would be tried).
--- config
    location /ant/v1/messages { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/error.sse; }
--- request eval
$::Stream
--- error_code: 502
--- response_body_like chomp
"previous_errors":\[\{"provider":"ant","model":"m","status":200,"reason":"invalid","message":"Overloaded"\}\]



=== TEST 15: cross-dialect fallback: the Anthropic endpoint fails, the OpenAI one answers, JSON
--- config
    location /ant/v1/messages { llm_mock format=anthropic status=529; }
--- request
POST /v1/chat/completions
{"model":"both","provider":{"order":["ant","oai"]},"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like chomp
^\{"id":"chatcmpl-mock","object":"chat.completion",.*"content":"OPENAI".*"provider":"oai"\}$



=== TEST 16: cross-dialect fallback in a stream: nothing of the failed attempt
--- config
    location /ant/v1/messages { llm_mock format=anthropic fault=sse_error; }
--- request
POST /v1/chat/completions
{"model":"both","stream":true,"provider":{"order":["ant","oai"]},"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
qr/\A(?!.*"provider":"ant")data: \{[^\n]*"role":"assistant"[^\n]*"provider":"oai"\}\n\n.*"content":"OPENAI".*data: \[DONE\]\n\n\z/s



=== TEST 17: the mock in Anthropic's format end to end: a stream of its pieces
--- config
    location /ant/v1/messages { llm_mock format=anthropic chunks=3 text=abcdef; }
--- request
POST /v1/chat/completions
{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
qr/\Adata: \{[^\n]*"role":"assistant"[^\n]*\n\ndata: \{[^\n]*"content":"ab"[^\n]*\n\ndata: \{[^\n]*"content":"cd"[^\n]*\n\ndata: \{[^\n]*"content":"ef"[^\n]*\n\ndata: \{[^\n]*"finish_reason":"stop"[^\n]*\n\ndata: \[DONE\]\n\n\z/



=== TEST 18: empty "event:" and "data:" lines and comments, byte by byte, change nothing
Found by fuzzing (tools/fuzz/crashes/fuzz_sse_decode-1): an empty value
once made the parser do arithmetic on a buffer it had not allocated.
--- user_files eval
">>> empty.sse\n:keep-alive\n\nevent:\ndata:\n\ndata:\n\n"
    . do { local (@ARGV, $/) = ("$ENV{TEST_NGINX_ROOT}/t/fixtures/anthropic/tools.sse"); <> }
--- config
    location /ant/v1/messages {
        llm_mock replay=html/empty.sse split=1 interval=0;
    }
--- request eval
$::Stream
--- error_code: 200
--- response_body_like eval
main::exactly($::ToolsSse)



=== TEST 17: top_p without temperature, a list of stops; with temperature too, only temperature (recent models take one)
--- config
    location /ant/v1/messages { llm_mock format=anthropic chunks=1 text=$request_body; }
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["END","STOP"],"top_p":0.9,"max_tokens":50}',
"POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5,"top_p":0.9,"max_tokens":50}',
]
--- error_code eval
[200, 200]
--- response_body_like eval
[main::content_is('{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":50,"stop_sequences":["END","STOP"],"top_p":0.9,"stream":false}'),
 main::content_is('{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":50,"temperature":0.5,"stream":false}')]
