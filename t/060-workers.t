# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The router under a master process with two workers: every worker relays,
# JSON and streams, and reloads keep working.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

master_on();
workers(2);
repeat_each(3);

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model chat-model {
        endpoint mock model=m1 input=1 output=2;
    }
_EOC_

    $block->set_value("config", <<'_EOC_');
    location /v1/ { llm_router; }
    include $TEST_NGINX_ROOT/conf-examples/llm_upstream.conf;
    location /mock/v1/chat/completions { llm_mock chunks=3 interval=5ms; }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: JSON through two workers
--- request
POST /v1/chat/completions
{"model":"chat-model","messages":[{"role":"user","content":"two workers"}]}
--- error_code: 200
--- response_body_like chomp
"content":"Hello from the mock provider. You said: two workers".*"provider":"mock"
--- no_error_log
[error]
[alert]



=== TEST 2: a stream through two workers
--- request
POST /v1/chat/completions
{"model":"chat-model","stream":true,"messages":[{"role":"user","content":"two workers"}]}
--- error_code: 200
--- response_body_like eval
qr/"content":"Hello from.*"finish_reason":"stop".*data: \[DONE\]\n\n\z/s
--- no_error_log
[error]
[alert]
