# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# GET /v1/models: the configured models in OpenAI's list shape, with
# OpenRouter's context_length and pricing (USD per token, as strings).

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    llm_provider openai http://127.0.0.1:1/v1;
    llm_provider local  http://127.0.0.1:2/v1;

    llm_model gpt-4o {
        endpoint openai model=gpt-4o-2024-08-06 input=2.50 output=10.00;
        context  128000;
    }
    llm_model llama-3.1-70b {
        endpoint openai model=llama-3.1-70b-versatile input=0.59 output=0.79;
        endpoint local  model=llama3.1:70b            input=0    output=0;
    }
    llm_model meta/tiny {
        endpoint local input=0.000001 output=1000;
    }
_EOC_

    $block->set_value("config", <<'_EOC_');
    location /v1/ { llm_router; }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the list, in configuration order, with prices per token as strings
--- request
GET /v1/models
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body chomp
{"object":"list","data":[{"id":"gpt-4o","object":"model","created":0,"owned_by":"openai","context_length":128000,"pricing":{"prompt":"0.0000025","completion":"0.00001"},"endpoints":[{"provider":"openai","model":"gpt-4o-2024-08-06","pricing":{"prompt":"0.0000025","completion":"0.00001"}}]},{"id":"llama-3.1-70b","object":"model","created":0,"owned_by":"local","pricing":{"prompt":"0","completion":"0"},"endpoints":[{"provider":"openai","model":"llama-3.1-70b-versatile","pricing":{"prompt":"0.00000059","completion":"0.00000079"}},{"provider":"local","model":"llama3.1:70b","pricing":{"prompt":"0","completion":"0"}}]},{"id":"meta/tiny","object":"model","created":0,"owned_by":"local","pricing":{"prompt":"0.000000000001","completion":"0.001"},"endpoints":[{"provider":"local","model":"meta/tiny","pricing":{"prompt":"0.000000000001","completion":"0.001"}}]}]}



=== TEST 2: one model by id, even with a slash in it
--- request
GET /v1/models/meta/tiny
--- error_code: 200
--- response_body chomp
{"id":"meta/tiny","object":"model","created":0,"owned_by":"local","pricing":{"prompt":"0.000000000001","completion":"0.001"},"endpoints":[{"provider":"local","model":"meta/tiny","pricing":{"prompt":"0.000000000001","completion":"0.001"}}]}



=== TEST 3: an unknown model id is a 404 in JSON
--- request
GET /v1/models/gpt-5
--- error_code: 404
--- response_body_like chomp
"code":"model_not_found"



=== TEST 4: HEAD gives the header only
--- request
HEAD /v1/models
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body
