# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Virtual keys: 401 for a missing, unknown or expired key, 403 for a model
# the key may not use, 402 when its budget cannot take the request's worst
# case, 429 with Retry-After and X-RateLimit-* past its requests or tokens
# per minute; GET /v1/key; the cost of each answer, exact.
#
# Keys (the file holds their SHA-256 only):
#   sk-test-alice  any model, 10 USD, 2 requests a minute
#   sk-test-bob    only "cheap*" models, no limit
#   sk-test-carol  expired
#   sk-test-dave   a budget too small for any request
#   sk-test-erin   300 tokens a minute
#   sk-test-frank  5 USD, "cheap*" models

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

our $Keys = <<'_EOF_';
{"keys": [
  {"hash": "4d692786b022a5d5a48381dcaf1e5e346366feb5579a1d699de2991d153b05f9",
   "label": "alice", "limit": 10, "limit_reset": "monthly", "rpm": 2},
  {"hash": "126fa001bf47b8fca67b958c7cdb3745b15c8eab28dd77b91a53305b5f90632f",
   "label": "bob", "models": ["cheap*"]},
  {"hash": "fadd7dc7eaef7135f14aead3ad6c46371df13e2dc02228168c67590b375f7ae7",
   "label": "carol", "expires": "2020-01-01T00:00:00Z"},
  {"hash": "a228e3ddbf57fc6cb39fe0352bc748e4131e2a48a33d1ec1ff922976f4ed6441",
   "label": "dave", "limit": 0.000001},
  {"hash": "c842fd2a96f192551c5d8898d4e158e6c8053c1ecaa7d688d0307b0057060472",
   "label": "erin", "tpm": 300},
  {"hash": "d0002434b6134242e1f37e1408d8041be3e3b102b84168f177a768a11047853f",
   "label": "frank", "limit": 5, "models": ["cheap*"]}
]}
_EOF_

our $Chat = "POST /v1/chat/completions\n"
    . '{"model":"cheap","messages":[{"role":"user","content":"hi"}]}';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("user_files", ">>> keys.json\n$::Keys");

    $block->set_value("http_config", <<'_EOC_');
    llm_keys ../html/keys.json;
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model cheap {
        endpoint mock model=c input=0.5 output=1.5;
    }
    llm_model premium {
        endpoint mock model=p input=10 output=30;
        max_output 1000;
    }
    llm_provider echo http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/v1;
    llm_model cheap-echo {
        endpoint echo model=e input=0.5 output=1.5;
        max_output 1000;
    }
_EOC_

    $block->set_value("config", <<'_EOC_');
    location /v1/ {
        llm_router;
        add_header X-LLM-Cost $llm_cost always;
        add_header X-LLM-Key $llm_key always;
    }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock chunks=4; }
    location /echo/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: no key: 401
--- request eval
$::Chat
--- error_code: 401
--- response_body_like chomp
^\{"error":\{"message":"An API key is required: send \\"Authorization: Bearer KEY\\" or \\"x-api-key: KEY\\"","type":"authentication_error","param":null,"code":"missing_api_key"\}\}$



=== TEST 2: an unknown key: 401, the key not repeated (nor logged, at info)
--- log_level: info
--- more_headers
Authorization: Bearer sk-test-mallory
--- request eval
$::Chat
--- error_code: 401
--- response_body_like chomp
"message":"The API key is not valid".*"code":"invalid_api_key"
--- response_body_unlike chomp
mallory
--- no_error_log
sk-test-mallory



=== TEST 3: an expired key: 401
--- more_headers
Authorization: Bearer sk-test-carol
--- request eval
$::Chat
--- error_code: 401
--- response_body_like chomp
"message":"The API key \\"carol\\" has expired".*"code":"expired_api_key"



=== TEST 4: a good key; the cost of the answer, exact, in the answer and in $llm_cost
The mock counts the body it gets / 4 = 18 prompt tokens (the client's body
and the "max_tokens":4096 a budgeted key's request is capped at), and 4
completion tokens: 18 x 0.5 + 4 x 1.5 = 15 micro-USD.
--- more_headers
Authorization: Bearer sk-test-alice
--- request eval
$::Chat
--- error_code: 200
--- response_headers
X-LLM-Cost: 0.000015
X-LLM-Key: alice
X-RateLimit-Limit: 2
--- response_body_like chomp
"usage":\{"prompt_tokens":18,"completion_tokens":4,"total_tokens":22,"cost":1.5e-5\}



=== TEST 5: the Anthropic SDK's x-api-key header works too
--- more_headers
x-api-key: sk-test-alice
--- request
POST /v1/messages
{"model":"cheap","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like chomp
"type":"message"



=== TEST 6: a model the key may not use: 403
--- more_headers
Authorization: Bearer sk-test-bob
--- request
POST /v1/chat/completions
{"model":"premium","messages":[{"role":"user","content":"hi"}]}
--- error_code: 403
--- response_body_like chomp
"message":"The key \\"bob\\" may not use the model \\"premium\\"","type":"permission_error","param":null,"code":"model_not_allowed"



=== TEST 7: a fallback model the key may not use: 403 too
--- more_headers
Authorization: Bearer sk-test-bob
--- request
POST /v1/chat/completions
{"model":"cheap","models":["premium"],"messages":[{"role":"user","content":"hi"}]}
--- error_code: 403
--- response_body_like chomp
"code":"model_not_allowed"



=== TEST 8: a budget that cannot take the worst case: 402
--- more_headers
Authorization: Bearer sk-test-dave
--- request eval
$::Chat
--- error_code: 402
--- response_body_like chomp
"message":"The key \\"dave\\" has reached its limit of 0.00 USD \(spent 0.000000, reserved by requests in flight 0.000000; this request may cost up to 0.006152\)","type":"insufficient_quota","param":null,"code":"limit_reached"



=== TEST 9: requests per minute: the third in the minute is a 429 with Retry-After
--- more_headers
Authorization: Bearer sk-test-alice
--- request eval
[$::Chat, $::Chat, $::Chat]
--- error_code eval
[200, 200, 429]
--- response_headers eval
["X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 1",
 "X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 0"]
--- response_headers_like eval
["", "", "Retry-After: \\d+\nX-RateLimit-Reset: \\d+"]
--- response_body_like eval
[qr/"provider":"mock"/, qr/"provider":"mock"/,
 qr/"message":"The key \\"alice\\" is limited to 2 requests per minute","type":"rate_limit_error"/]



=== TEST 10: tokens per minute: once the minute's tokens are used, a 429
Each request counts its prompt estimate up front (a quarter of its body),
then what it used; 300 tokens go in a few requests of 100-odd.  The 429
says when to come back and what the limit is, in tokens.
--- more_headers
Authorization: Bearer sk-test-erin
--- request eval
[map { "POST /v1/chat/completions\n" . '{"model":"cheap","messages":[{"role":"user","content":"' . ("x" x 400) . '"}]}' } 1 .. 4]
--- error_code eval
[200, 200, 200, 429]
--- response_headers_like eval
["", "", "",
 "Retry-After: \\d+\nX-RateLimit-Limit: 300\nX-RateLimit-Remaining: \\d+\nX-RateLimit-Reset: \\d+"]
--- response_body_like eval
[qr/"provider"/, qr/"provider"/, qr/"provider"/,
 qr/"message":"The key \\"erin\\" is limited to 300 tokens per minute"/]



=== TEST 11: GET /v1/key: the caller's label, limit, usage and what remains
Two answers of 15 micro-USD each.
--- more_headers
Authorization: Bearer sk-test-alice
--- request eval
[$::Chat, $::Chat, "GET /v1/key"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"cost":1.5e-5/, qr/"cost":1.5e-5/,
 qr/^\{"data":\{"label":"alice","limit":10\.0,"limit_reset":"monthly","limit_remaining":9\.99997,"usage":3e-5,"usage_daily":3e-5,"usage_weekly":3e-5,"usage_monthly":3e-5,"reserved":0\.0,"is_free_tier":false,"rate_limit":\{"requests":2,"tokens":0,"interval":"1m"\},"expires_at":null\}\}$/]



=== TEST 12: GET /v1/key without a key: 401
--- request
GET /v1/key
--- error_code: 401
--- response_body_like chomp
"code":"missing_api_key"



=== TEST 13: a budgeted key's request without max_tokens is capped at max_output
The reservation counted on it: the provider must not write more.
--- more_headers
Authorization: Bearer sk-test-frank
--- request
POST /v1/chat/completions
{"model":"cheap-echo","messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like chomp
\\"max_tokens\\":1000



=== TEST 14: the client's own max_tokens is left alone
--- more_headers
Authorization: Bearer sk-test-frank
--- request
POST /v1/chat/completions
{"model":"cheap-echo","max_tokens":7,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like chomp
\\"max_tokens\\":7[,}]
--- response_body_unlike chomp
1000



=== TEST 15: a key without a limit leaves the length to the provider
--- more_headers
Authorization: Bearer sk-test-bob
--- request
POST /v1/chat/completions
{"model":"cheap-echo","messages":[{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like chomp
"content":"\{.*\\"messages\\"
--- response_body_unlike chomp
max_tokens



=== TEST 16: a max_tokens above max_output is reserved in full, not cut to it
A billion tokens at 1.5 USD per million cannot fit in 5 USD.
--- more_headers
Authorization: Bearer sk-test-frank
--- request
POST /v1/chat/completions
{"model":"cheap-echo","max_tokens":1000000000,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 402
--- response_body_like chomp
this request may cost up to 1500\.0000\d+\)","type":"insufficient_quota"
