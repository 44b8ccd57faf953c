# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Clients of Anthropic's Messages API on POST /v1/messages: their request
# routed to any model in any dialect, the answer in Anthropic's format
# (the message JSON, or its event stream), errors in Anthropic's shape.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

sub main::content_has {
    my $json = shift;
    $json =~ s/(["\\])/\\$1/g;
    return qr/"text":"[^\n]*\Q$json\E/;
}

sub main::exactly {
    my $s = quotemeta shift;
    return qr/\A$s\z/;
}

our $TextEvents = join '', map { "event: $_->[0]\ndata: $_->[1]\n\n" }
    ['message_start', '{"type":"message_start","message":{"id":"msg_chatcmpl-mock","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0},"model":"m","provider":"oai"}}'],
    ['content_block_start', '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'],
    ['content_block_delta', '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ab"}}'],
    ['content_block_delta', '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"cd"}}'],
    ['content_block_stop', '{"type":"content_block_stop","index":0}'],
    ['message_delta', '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":32,"output_tokens":2,"cost":3.4e-5}}'],
    ['message_stop', '{"type":"message_stop"}'];

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    llm_provider oai http://127.0.0.1:$TEST_NGINX_SERVER_PORT/oai/v1;
    llm_provider ant http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ant/v1
                 format=anthropic;
    llm_provider gem http://127.0.0.1:$TEST_NGINX_SERVER_PORT/gem/v1beta
                 format=gemini;
    llm_provider down http://127.0.0.1:1/v1;

    llm_model m   { endpoint oai model=gpt-x input=1 output=1; }
    llm_model a   { endpoint ant model=claude-sonnet-4-5 input=3 output=15; }
    llm_model g   { endpoint gem model=gemini-2.0-flash input=1 output=1; }
    llm_model d   { endpoint down model=x input=1 output=1; }
    llm_model a2o {
        endpoint ant model=claude-sonnet-4-5 input=1 output=1;
        endpoint oai model=gpt-x input=2 output=2;
    }
_EOC_

    my $config = $block->config // '';

    $block->set_value("config", <<'_EOC_' . $config);
    location /v1/ {
        llm_router;
        add_header X-LLM-Attempts $llm_attempts always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an Anthropic request to an OpenAI model, answered as an Anthropic message
--- config
    location /oai/ { llm_mock chunks=2 text=abcd; }
--- request
POST /v1/messages
{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like eval
main::exactly('{"id":"msg_chatcmpl-mock","type":"message","role":"assistant","content":[{"type":"text","text":"abcd"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":19,"output_tokens":2,"cost":2.1e-5},"model":"m","provider":"oai"}')



=== TEST 2: the same streamed: Anthropic's event sequence
--- config
    location /oai/ { llm_mock chunks=2 text=abcd; }
--- request
POST /v1/messages
{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
--- response_body_like eval
main::exactly($::TextEvents)



=== TEST 3: what the OpenAI provider receives: system, tool use and tool results, translated
--- config
    location /oai/ { llm_mock chunks=1 text=$request_body; }
--- request
POST /v1/messages
{"model":"m","max_tokens":100,"system":"be brief","stop_sequences":["END"],"tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],"tool_choice":{"type":"any"},"messages":[{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},{"type":"text","text":"and tomorrow?"}]}]}
--- error_code: 200
--- response_body_like eval
main::content_has('{"model":"gpt-x","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"toolu_1","content":"18C"},{"role":"user","content":"and tomorrow?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"required","max_tokens":100,"stop":["END"]}')



=== TEST 4: an image block reaches an OpenAI provider as an image_url part
--- config
    location /oai/ { llm_mock chunks=1 text=$request_body; }
--- request
POST /v1/messages
{"model":"m","max_tokens":100,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"text","text":"what is it?"}]}]}
--- error_code: 200
--- response_body_like eval
main::content_has('"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"text","text":"what is it?"}]}]')



=== TEST 5: Anthropic in, Anthropic provider, Anthropic out: tool use streamed block by block
--- config
    location /ant/ { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/anthropic/tools.sse split=11 interval=0; }
--- request
POST /v1/messages
{"model":"a","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"weather and time?"}]}
--- error_code: 200
--- response_body_like eval
qr/\Aevent: message_start\n[^\n]*"model":"a","provider":"ant"\}\}\n\n(?s:.*)event: content_block_start\ndata: \{"type":"content_block_start","index":1,"content_block":\{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":\{\}\}\}\n\n(?s:.*)"delta":\{"type":"input_json_delta","partial_json":"\{\\"loca"\}(?s:.*)"index":2,"content_block":\{"type":"tool_use","id":"toolu_01Ck3D9sJ7vQwXe2mB5tRz8L","name":"get_time"(?s:.*)event: message_delta\ndata: \{"type":"message_delta","delta":\{"stop_reason":"tool_use","stop_sequence":null\},"usage":\{"input_tokens":472,"output_tokens":89,"cost":0.002751\}\}\n\nevent: message_stop\ndata: \{"type":"message_stop"\}\n\n\z/



=== TEST 6: Anthropic in, Gemini provider, Anthropic out: parallel calls as tool_use blocks
--- config
    location /gem/ { llm_mock replay=$TEST_NGINX_ROOT/t/fixtures/gemini/tools.json; }
--- request
POST /v1/messages
{"model":"g","max_tokens":100,"messages":[{"role":"user","content":"weather and time?"}]}
--- error_code: 200
--- response_body_like eval
main::exactly('{"id":"msg_3nzTaP2xL7mR7dcPyOq8sQc","type":"message","role":"assistant","content":[{"type":"tool_use","id":"call_0","name":"get_weather","input":{"location":"Paris","unit":"celsius"}},{"type":"tool_use","id":"call_1","name":"get_time","input":{"timezone":"Europe/Paris"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":112,"output_tokens":18,"cost":0.00013},"model":"g","provider":"gem"}')



=== TEST 7: max_tokens from an OpenAI-dialect provider is max_tokens for the Anthropic client
--- config
    location = /oai/v1/chat/completions {
        default_type application/json;
        return 200 '{"id":"c1","object":"chat.completion","created":1,"choices":[{"index":0,"message":{"role":"assistant","content":"cut"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}';
    }
--- request
POST /v1/messages
{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like chomp
"stop_reason":"max_tokens"



=== TEST 8: cross-dialect fallback for an Anthropic client: the Anthropic endpoint fails, OpenAI answers
--- config
    location /ant/ { llm_mock format=anthropic status=529; }
    location /oai/ { llm_mock chunks=2 text=abcd; }
--- request
POST /v1/messages
{"model":"a2o","max_tokens":10,"stream":true,"provider":{"order":["ant","oai"]},"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like eval
qr/\Aevent: message_start\n[^\n]*"provider":"oai"\}\}\n\n.*event: message_stop\ndata: \{"type":"message_stop"\}\n\n\z/s



=== TEST 9: a stream that breaks ends with Anthropic's error event
--- config
    location /oai/ { llm_mock chunks=4 interval=50ms fault=drop text=abcdefgh; }
--- request
POST /v1/messages
{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like eval
qr/"text":"ab".*event: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"The provider's stream broke off; the answer is incomplete"\}\}\n\n\z/s



=== TEST 10: errors in Anthropic's shape: an unknown model
--- request
POST /v1/messages
{"model":"nope","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 404
--- response_body_like eval
main::exactly('{"type":"error","error":{"type":"not_found_error","message":"The model \"nope\" does not exist on this router"}}')



=== TEST 11: errors in Anthropic's shape: no messages
--- request
POST /v1/messages
{"model":"m","max_tokens":10}
--- error_code: 400
--- response_body_like chomp
^\{"type":"error","error":\{"type":"invalid_request_error","message":"\\"messages\\" must be a non-empty array"\}\}$



=== TEST 12: errors in Anthropic's shape: every provider down
--- request
POST /v1/messages
{"model":"d","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_body_like chomp
^\{"type":"error","error":\{"type":"api_error","message":"No provider could answer: 1 attempt failed, the last via provider \\"down\\" \(connect, status 502\)","metadata":\{"previous_errors":\[



=== TEST 13: errors in Anthropic's shape: a body too large (nginx's own 413)
--- config
    location /v1/m {
        client_max_body_size 100;
        llm_router;
    }
--- request eval
"POST /v1/messages\n" . '{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"' . ("x" x 200) . '"}]}'
--- error_code: 413
--- response_body_like chomp
^\{"type":"error","error":\{"type":"request_too_large","message":"The request body is too large"\}\}$



=== TEST 14: GET is a 405, in Anthropic's shape
--- request
GET /v1/messages
--- error_code: 405
--- response_headers
Allow: POST
--- response_body_like chomp
^\{"type":"error","error":\{"type":"invalid_request_error"



=== TEST 15: a Gemini provider's stream to an Anthropic client: Anthropic's event sequence
--- config
    location /gem/v1beta/ { llm_mock format=gemini chunks=2 text=abcd; }
--- request
POST /v1/messages
{"model":"g","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
--- response_body_like eval
qr/\Aevent: message_start\ndata: \{"type":"message_start","message":\{[^\n]*"model":"g","provider":"gem"\}\}\n\nevent: content_block_start\ndata: \{"type":"content_block_start","index":0,"content_block":\{"type":"text","text":""\}\}\n\n(?:event: [a-z_]+\ndata: [^\n]*\n\n)*?event: content_block_delta\ndata: \{"type":"content_block_delta","index":0,"delta":\{"type":"text_delta","text":"ab"\}\}\n\nevent: content_block_delta\ndata: \{"type":"content_block_delta","index":0,"delta":\{"type":"text_delta","text":"cd"\}\}\n\nevent: content_block_stop\ndata: \{"type":"content_block_stop","index":0\}\n\nevent: message_delta\ndata: \{"type":"message_delta","delta":\{"stop_reason":"end_turn","stop_sequence":null\},"usage":\{[^\n]*"cost":[0-9.e-]+\}\}\n\nevent: message_stop\ndata: \{"type":"message_stop"\}\n\n\z/



=== TEST 16: an Anthropic client's stream is forwarded as it arrives
The Gemini mock sends "FIRST", then the rest 3 s later; the client gives up
after 1.5 s of silence and must have "FIRST" by then, and nothing after it.
--- config
    location /gem/v1beta/ {
        llm_mock format=gemini chunks=2 interval=3s text=FIRSTsecond;
    }
--- request
POST /v1/messages HTTP/1.0
{"model":"g","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}
--- timeout: 1.5
--- abort
--- error_code: 200
--- response_body_like eval
qr/\A(?!.*(?:econd|message_stop)).*"text_delta","text":"FIRST/s
