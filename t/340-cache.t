# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Exact-match answer caching with nginx's own proxy_cache on the internal
# upstream location (conf-examples/caching.conf): a JSON answer is cached
# by endpoint and request body, and served again for free (usage.cost 0,
# counted as a cache hit); a stream is never buffered nor cached, even
# with proxy_buffering on there.  An answer larger than proxy's buffers
# goes through a temporary file and still arrives whole.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_ROOT} ||= '.';

our $Json = "POST /v1/chat/completions\n"
    . '{"model":"m","messages":[{"role":"user","content":"hi"}]}';

our $Stream = "POST /v1/chat/completions\n"
    . '{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    proxy_cache_path answers_cache levels=1:2 keys_zone=llm_answers:1m
                     max_size=16m inactive=10m use_temp_path=off;

    llm_provider mock http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/v1;
    llm_model m { endpoint mock model=x input=1 output=2; }
_EOC_

    $block->set_value("config", <<'_EOC_' . ($block->config // ''));
    location /v1/ {
        llm_router;
        llm_upstream_location /_llm_cached;
    }

    location = /llm/status { llm_status; }

    location /_llm_cached {
        internal;

        proxy_pass                  $llm_upstream_url;
        proxy_http_version          1.1;
        proxy_set_header            Connection "";
        proxy_next_upstream         off;

        proxy_buffering             on;
        proxy_cache                 llm_answers;
        proxy_cache_methods         POST;
        proxy_cache_key             "$llm_upstream_url $request_body";
        proxy_cache_valid           200 10m;
        add_header                  X-Cache $upstream_cache_status always;
    }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the same request twice: the second answer is the first one, free
The mock's answer carries its own request id, so a second call to it would
differ; the cached answer costs nothing, and only the first answer's
tokens and cost are counted.
--- config
    location /mock/v1/chat/completions {
        llm_mock chunks=2 "text=answer $request_id";
    }
--- request eval
[$::Json, $::Json, "GET /llm/status"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"content":"answer ([0-9a-f]{32})".*"cost":1\.8e-5\}/,
 qr/"content":"answer [0-9a-f]{32}".*"usage":\{[^}]*"cost":0\.0[,}]/,
 qr/"provider":"mock",[^}]*"requests":2,"errors":0,"ok":1,"fallbacks":0,"cache_hits":1,[^}]*"responses":\{"200":2\},"prompt_tokens":14,"completion_tokens":2,"cached_tokens":0,"cost":1\.8e-5,/]



=== TEST 2: streams pass unbuffered and are never cached
Two identical stream requests get two answers from the mock, each chunk
by chunk.
--- config
    location /mock/v1/chat/completions {
        llm_mock chunks=3 interval=50ms "text=streamed $request_id";
    }
--- request eval
[$::Stream, $::Stream, "GET /llm/status"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["Content-Type: text/event-stream", "Content-Type: text/event-stream",
 ""]
--- response_body_like eval
[qr/\Adata: .*"content":"streamed .*data: \[DONE\]\n\n\z/s,
 qr/\Adata: .*"content":"streamed .*data: \[DONE\]\n\n\z/s,
 qr/"provider":"mock",[^}]*"requests":2,"errors":0,"ok":2,"fallbacks":0,"cache_hits":0,/]



=== TEST 3: a large answer, cached: from the cache file, whole
200 KiB of text: the mock's sentence, 42 bytes, 4876 times and 8 bytes;
the second time from the cache's file.
--- config
    location /mock/v1/chat/completions {
        llm_mock chunks=1 size=200k;
    }
--- request eval
[$::Json, $::Json]
--- error_code eval
[200, 200]
--- response_body_like eval
[map { qr/\A\{"id":"chatcmpl-mock",[^\n]*"content":"(?:Hello from the mock provider\. You said: hi){4876}Hello fr".*"provider":"mock"\}\z/s } 1 .. 2]
