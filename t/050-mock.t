# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The mock provider on its own: deterministic answers, JSON and stream,
# knobs per location and per request header, and its injected failures.

use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a JSON answer echoing the last user message, usage counted
--- config
    location /mock { llm_mock chunks=3; }
--- request
POST /mock
{"model":"m1","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"second"}]}]}
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"id":"chatcmpl-mock","object":"chat.completion","created":\d+,"model":"m1","choices":\[\{"index":0,"message":\{"role":"assistant","content":"Hello from the mock provider. You said: second"\},"finish_reason":"stop"\}\],"usage":\{"prompt_tokens":\d+,"completion_tokens":3,"total_tokens":\d+\}\}$



=== TEST 2: a stream in the configured number of pieces, usage when asked
--- config
    location /mock { llm_mock chunks=3 text=abcdef; }
--- request
POST /mock
{"model":"m1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
--- response_body_like eval
qr/\A(?s)data: \{[^\n]*"delta":\{"role":"assistant","content":""\}[^\n]*\n\ndata: \{[^\n]*"delta":\{"content":"ab"\}[^\n]*\n\ndata: \{[^\n]*"delta":\{"content":"cd"\}[^\n]*\n\ndata: \{[^\n]*"delta":\{"content":"ef"\}[^\n]*\n\ndata: \{[^\n]*"finish_reason":"stop"[^\n]*\n\ndata: \{[^\n]*"choices":\[\],"usage":\{"prompt_tokens":\d+,"completion_tokens":3,[^\n]*\n\ndata: \[DONE\]\n\n\z/



=== TEST 3: a one-piece stream sends its piece once
--- config
    location /mock { llm_mock chunks=1 text=abc; }
--- request
POST /mock
{"model":"m1","stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
qr/\A(?s)data: \{[^\n]*"delta":\{"role":"assistant","content":""\}[^\n]*\n\ndata: \{[^\n]*"delta":\{"content":"abc"\}[^\n]*\n\ndata: \{[^\n]*"delta":\{\},"finish_reason":"stop"[^\n]*\n\ndata: \[DONE\]\n\n\z/



=== TEST 3b: X-Mock-Status overrides the location
--- config
    location /mock { llm_mock; }
--- more_headers
X-Mock-Status: 429
--- request
POST /mock
{"model":"m1","messages":[{"role":"user","content":"x"}]}
--- error_code: 429
--- response_headers
Retry-After: 1
--- response_body_like chomp
"message":"mock failure 429"



=== TEST 4: X-Mock-Chunks and X-Mock-Fault per request
--- config
    location /mock { llm_mock chunks=9; }
--- more_headers
X-Mock-Chunks: 2
X-Mock-Fault: no_done
--- request
POST /mock
{"model":"m1","stream":true,"messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body_like eval
qr/"finish_reason":"stop"\}\]\}\n\n\z/
--- response_body_unlike chomp
DONE



=== TEST 5: the time to first token is a timer: the answer waits for it
--- config
    location /mock { llm_mock ttft=2s; }
--- request
POST /mock
{"model":"m1","messages":[{"role":"user","content":"x"}]}
--- timeout: 1
--- abort
--- response_body
--- error_code:



=== TEST 6: a hanging mock keeps nothing alive after the client leaves
--- config
    location /mock { llm_mock fault=hang; }
--- request
POST /mock
{"model":"m1","messages":[{"role":"user","content":"x"}]}
--- timeout: 0.3
--- abort
--- wait: 0.2
--- error_code:
--- error_log
client prematurely closed connection



=== TEST 7: a GET is a 405 in JSON
--- config
    location /mock { llm_mock; }
--- request
GET /mock
--- error_code: 405
--- response_body_like chomp
"code":"method_not_allowed"



=== TEST 8: a body that is not JSON is a 400
--- config
    location /mock { llm_mock; }
--- request
POST /mock
hello
--- error_code: 400
--- response_body_like chomp
"code":"invalid_json"



=== TEST 9: garbage on demand, as the relay tests need it
--- config
    location /mock { llm_mock fault=garbage; }
--- request
POST /mock
{"model":"m1","messages":[{"role":"user","content":"x"}]}
--- error_code: 200
--- response_body eval
"data: {this is not json\n\n"
