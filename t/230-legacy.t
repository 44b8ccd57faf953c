# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# OpenAI's other endpoints, routed like chat to OpenAI-dialect endpoints:
# POST /v1/completions (legacy text completions, JSON and stream) and
# POST /v1/embeddings; the answers relabelled, usage noted.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    llm_provider oai  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/oai/v1;
    llm_provider sse  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sse/v1;
    llm_provider echo http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/v1;
    llm_provider bad  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/bad/v1;
    llm_provider ant  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ant/v1
                      format=anthropic;

    llm_model inst { endpoint oai model=gpt-3.5-turbo-instruct input=1.5 output=2; }
    llm_model stream { endpoint sse model=gpt-3.5-turbo-instruct input=1.5 output=2; }
    llm_model echo { endpoint echo model=gpt-3.5-turbo-instruct input=1.5 output=2; }
    llm_model emb  { endpoint oai model=text-embedding-3-small input=0.02 output=0; }
    llm_model two  {
        endpoint bad model=x input=1 output=1;
        endpoint oai model=gpt-3.5-turbo-instruct input=2 output=2;
    }
    llm_model claude { endpoint ant model=claude-sonnet-4-5 input=3 output=15; }
_EOC_

    my $config = $block->config // '';

    $block->set_value("config", <<'_EOC_' . $config);
    location /v1/ {
        llm_router;
        add_header X-LLM-Attempts $llm_attempts always;
        add_header X-LLM-Upstream $llm_upstream_url always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location = /oai/v1/completions {
        default_type application/json;
        return 200 '{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"Paris","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8}}';
    }
    location = /sse/v1/completions {
        default_type text/event-stream;
        echo 'data: {"id":"cmpl-2","object":"text_completion","created":1,"choices":[{"text":"Pa","index":0,"logprobs":null,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct"}';
        echo '';
        echo 'data: {"id":"cmpl-2","object":"text_completion","created":1,"choices":[{"text":"ris","index":0,"logprobs":null,"finish_reason":"stop"}],"model":"gpt-3.5-turbo-instruct"}';
        echo '';
        echo 'data: {"id":"cmpl-2","object":"text_completion","created":1,"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9},"model":"gpt-3.5-turbo-instruct"}';
        echo '';
        echo 'data: [DONE]';
        echo '';
    }
    location /echo/ { llm_mock chunks=1 "text=$uri $request_body"; }
    location = /oai/v1/embeddings {
        default_type application/json;
        return 200 '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2,0.3]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":3,"total_tokens":3}}';
    }
    location /bad/ { return 500; }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a legacy completion, relabelled
--- request
POST /v1/completions
{"model":"inst","prompt":"The capital of France is","max_tokens":5}
--- error_code: 200
--- response_headers
X-LLM-Upstream: http://127.0.0.1:$ServerPort/oai/v1/completions
--- response_body chomp
{"id":"cmpl-1","object":"text_completion","created":1,"model":"inst","choices":[{"text":"Paris","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8,"cost":1.25e-5},"provider":"oai"}



=== TEST 1b: what the provider gets: its /completions, its model id, the rest untouched
--- request
POST /v1/completions
{"model":"echo","prompt":"The capital of France is","max_tokens":5,"suffix":"."}
--- error_code: 200
--- response_body_like chomp
"content":"/echo/v1/completions \{\\"model\\":\\"gpt-3.5-turbo-instruct\\",\\"max_tokens\\":5,\\"suffix\\":\\".\\",\\"prompt\\":\\"The capital of France is\\"\}"



=== TEST 2: a legacy completion streamed: chunks relabelled, usage only when asked
--- request
POST /v1/completions
{"model":"stream","prompt":"The capital of France is","stream":true}
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
--- response_body eval
qq{data: {"id":"cmpl-2","object":"text_completion","created":1,"choices":[{"text":"Pa","index":0,"logprobs":null,"finish_reason":null}],"model":"stream","provider":"sse"}\n\n}
. qq{data: {"id":"cmpl-2","object":"text_completion","created":1,"choices":[{"text":"ris","index":0,"logprobs":null,"finish_reason":"stop"}],"model":"stream","provider":"sse"}\n\n}
. qq{data: [DONE]\n\n}



=== TEST 3: legacy completions fall back like chat
--- request
POST /v1/completions
{"model":"two","prompt":"The capital of France is","provider":{"order":["bad","oai"]}}
--- error_code: 200
--- response_headers
X-LLM-Attempts: 2
--- response_body_like chomp
"text":"Paris".*"provider":"oai"



=== TEST 4: embeddings, to the provider's /embeddings, relabelled
--- request
POST /v1/embeddings
{"model":"emb","input":"hello"}
--- error_code: 200
--- response_headers
X-LLM-Upstream: http://127.0.0.1:$ServerPort/oai/v1/embeddings
--- response_body chomp
{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2,0.3]}],"model":"emb","usage":{"prompt_tokens":3,"total_tokens":3,"cost":6e-8},"provider":"oai"}



=== TEST 5: these APIs exist in OpenAI's dialect only: an Anthropic-only model is a 503
--- request
POST /v1/completions
{"model":"claude","prompt":"hi"}
--- error_code: 503
--- response_body_like chomp
"message":"No endpoint of \\"claude\\" is allowed: 1 not of the OpenAI dialect this API needs"



=== TEST 6: a completion without a prompt is a 400
--- request
POST /v1/completions
{"model":"inst"}
--- error_code: 400
--- response_body_like chomp
"message":"The \\"prompt\\" field must be a string or an array"



=== TEST 7: embeddings without input are a 400
--- request
POST /v1/embeddings
{"model":"emb","inputs":["hello"]}
--- error_code: 400
--- response_body_like chomp
"message":"The \\"input\\" field must be a string or an array"



=== TEST 8: GET on embeddings is a 405
--- request
GET /v1/embeddings
--- error_code: 405
--- response_headers
Allow: POST
