# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The rule-based router: "model":"auto" picks a model by ordered rules on
# the request (a regex on the prompt or the last user message, estimated
# prompt tokens, tools, images), and the answer names the model that
# answered.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    llm_provider strong http://127.0.0.1:$TEST_NGINX_SERVER_PORT/strong/v1;
    llm_provider cheap  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/cheap/v1;
    llm_provider long   http://127.0.0.1:$TEST_NGINX_SERVER_PORT/long/v1;
    llm_provider vision http://127.0.0.1:$TEST_NGINX_SERVER_PORT/vision/v1;
    llm_provider echo   http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo/v1;

    llm_model medical  { endpoint strong model=s1 input=5 output=15; }
    llm_model smalltalk { endpoint cheap model=c1 input=0.1 output=0.2; }
    llm_model big      { endpoint long   model=l1 input=1 output=2; }
    llm_model eyes     { endpoint vision model=v1 input=1 output=2; }
    llm_model french   { endpoint cheap  model=f1 input=1 output=2; }
    llm_model echoed   { endpoint echo   model=e1 input=1 output=2; }

    llm_auto auto {
        prompt  "~*(drug interaction|dosage|contraindicat)"  medical;
        last    "~^Traduis"                                  french;
        last    "~^echo"                                     echoed;
        images                                               eyes;
        tokens  >50                                          big;
        tools                                                medical;
        default                                              smalltalk;
    }
_EOC_

    $block->set_value("config", <<'_EOC_');
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /strong/v1/chat/completions { llm_mock chunks=1 text=strong; }
    location /cheap/v1/chat/completions  { llm_mock chunks=1 text=cheap; }
    location /long/v1/chat/completions   { llm_mock chunks=1 text=long; }
    location /vision/v1/chat/completions { llm_mock chunks=1 text=vision; }
    location /echo/v1/chat/completions {
        llm_mock chunks=1 text=$request_body;
    }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the default rule
--- request
POST /v1/chat/completions
{"model":"auto","messages":[{"role":"user","content":"how are you?"}]}
--- error_code: 200
--- response_body_like chomp
"model":"smalltalk".*"content":"cheap".*"provider":"cheap"
--- error_log
llm: auto "auto": rule "default" picks "smalltalk"



=== TEST 2: a prompt regex, any message, ignoring case
--- request
POST /v1/chat/completions
{"model":"auto","messages":[{"role":"system","content":"Check the DOSAGE."},{"role":"user","content":"hi"}]}
--- error_code: 200
--- response_body_like chomp
"model":"medical".*"provider":"strong"
--- error_log
llm: auto "auto": rule "prompt ~*(drug interaction|dosage|contraindicat)" picks "medical"



=== TEST 3: a last-message regex looks at the last user message only, case sensitive
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"Traduis ceci"}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"Traduis ceci"},{"role":"assistant","content":"ok"},{"role":"user","content":"merci"}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"traduis ceci"}]}',
]
--- response_body_like eval
[qr/"model":"french"/, qr/"model":"smalltalk"/, qr/"model":"smalltalk"/]



=== TEST 4: text parts count as text
--- request
POST /v1/chat/completions
{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"any contraindications?"}]}]}
--- response_body_like chomp
"model":"medical"



=== TEST 5: an image part
--- request
POST /v1/chat/completions
{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"what is it"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}
--- response_body_like chomp
"model":"eyes".*"provider":"vision"



=== TEST 6: an estimated token threshold (text bytes / 4)
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"' . ("a" x 204) . '"}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"' . ("a" x 203) . '"}]}',
]
--- response_body_like eval
[qr/"model":"big"/, qr/"model":"smalltalk"/]



=== TEST 7: tools
--- request
POST /v1/chat/completions
{"model":"auto","tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"messages":[{"role":"user","content":"hi"}]}
--- response_body_like chomp
"model":"medical"



=== TEST 8: rules apply in order: the first match wins
--- request
POST /v1/chat/completions
{"model":"auto","tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"messages":[{"role":"user","content":"Traduis this"}]}
--- response_body_like chomp
"model":"french"



=== TEST 9: an auto model with a suffix, and in models[]
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"auto:floor","messages":[{"role":"user","content":"dosage?"}]}',
"POST /v1/chat/completions\n" . '{"models":["auto"],"messages":[{"role":"user","content":"a drug interaction?"}]}',
]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"model":"medical"/, qr/"model":"medical"/]



=== TEST 10: streams name the model that answered too
--- request
POST /v1/chat/completions
{"model":"auto","stream":true,"messages":[{"role":"user","content":"dosage?"}]}
--- error_code: 200
--- response_body_like eval
qr/\A(data: \{[^\n]*"model":"medical"[^\n]*"provider":"strong"\}\n\n)+data: \[DONE\]\n\n\z/



=== TEST 11: the rules read strings with their escapes decoded, roles too
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"the dos\u0061ge?"}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"us\u0065r","content":"Tr\u0061duis \"ceci\""}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"\ud83d\ude00 Traduis"}]}',
]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"model":"medical"/, qr/"model":"french"/, qr/"model":"smalltalk"/]



=== TEST 12: the token estimate counts decoded bytes, not escapes
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"' . ('\u00e9' x 102) . '"}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"' . ('\u00e9' x 101) . 'a"}]}',
]
--- response_body_like eval
[qr/"model":"big"/, qr/"model":"smalltalk"/]



=== TEST 13: the last user message's text parts joined; later messages of other roles ignored; an image type with an escape
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"Tra"},{"type":"text","text":"duis ceci"}]},{"role":"assistant","content":null,"tool_calls":[]}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":[{"type":"image\u005furl","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"Traduis"},{"role":"user","content":[{"type":"text","text":"no"}]}]}',
]
--- response_body_like eval
[qr/"model":"french"/, qr/"model":"eyes"/, qr/"model":"smalltalk"/]



=== TEST 14: a conversation routed by the rules reaches an OpenAI-dialect provider as the client's bytes
--- request eval
"POST /v1/chat/completions\n"
. '{"model":"auto", "messages" : [ {"content":"echo caf\u00e9 \"q\"", "role":"user"} ] }'
--- error_code: 200
--- response_body_like chomp
"model":"echoed".*"content":"\{\\"model\\":\\"e1\\",\\"messages\\":\[ \{\\"content\\":\\"echo caf\\\\u00e9 \\\\\\"q\\\\\\"\\", \\"role\\":\\"user\\"\} \]\}"



=== TEST 15: keys written with escapes are the keys jansson reads: nothing hides from the rules
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","c\u006fntent":"the dosage?"}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":[{"type":"text","t\u0065xt":"any contraindications?"}]}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":[{"typ\u0065":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":"Traduis","c\u006fntent":"hello"}]}',
]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[qr/"model":"medical"/, qr/"model":"medical"/, qr/"model":"eyes"/, qr/"model":"smalltalk"/]



=== TEST 16: a role or a type with a NUL in it is not "user" or an image type
--- request eval
[
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user\u0000x","content":"Traduis"}]}',
"POST /v1/chat/completions\n" . '{"model":"auto","messages":[{"role":"user","content":[{"type":"image_url\u0000","text":"x"}]}]}',
]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"model":"smalltalk"/, qr/"model":"smalltalk"/]
