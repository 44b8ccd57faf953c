# Self-test of the Test::Nginx::Socket re-implementation in t/lib (plain
# nginx + the echo module).  Run with
#   TEST_NGINX_LOAD_MODULES=/usr/lib/nginx/modules/ngx_http_echo_module.so \
#       prove -It/lib t/lib/selftest/
use strict;
use warnings;

BEGIN {
    # test the re-implementation even if the real one were installed
    $ENV{TEST_NGINX_USE_LITE} //= 1;
    my $echo = '/usr/lib/nginx/modules/ngx_http_echo_module.so';
    if (($ENV{TEST_NGINX_LOAD_MODULES} // '') !~ /echo/ && -f $echo) {
        $ENV{TEST_NGINX_LOAD_MODULES} = join ' ', grep { $_ }
            $ENV{TEST_NGINX_LOAD_MODULES}, $echo;
    }
    $ENV{TEST_NGINX_MOCK_PORT} = 19131;
}

use Test::Nginx::Socket;

no_shuffle();

# counted like the real harness: see the comment of each block
plan tests => 92;

run_tests();

__DATA__

=== TEST 1: echo, response headers, no_error_log (5: status, 2 headers, body, 1 log pattern)
--- config
    location = /t {
        echo hello;
    }
--- request
GET /t
--- response_headers
Content-Type: text/plain
!X-Foo
--- response_body
hello
--- no_error_log
[error]



=== TEST 2: 404, response_body_like, error_log (3)
--- config
    location = /t {
        echo hello;
    }
--- request
    # a comment line before the request line
    GET /nonexistent.html
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log
No such file or directory



=== TEST 3: chunked response decoding (3)
--- config
    location = /t {
        echo hello;
        echo_flush;
        echo_sleep 0.1;
        echo world;
    }
--- request
GET /t
--- response_headers
Transfer-Encoding: chunked
--- response_body
hello
world



=== TEST 4: HTTP/1.0 request, no chunked encoding (3)
--- config
    location = /t {
        echo hello;
        echo_flush;
        echo world;
    }
--- request
GET /t HTTP/1.0
--- response_headers
!Transfer-Encoding
--- response_body
hello
world



=== TEST 5: several requests on separate connections (6: 2 x (status+body), no_error_log after each)
--- config
    location /t {
        echo "uri: $uri";
    }
--- request eval
["GET /t/a", "GET /t/b"]
--- error_code eval
[200, 200]
--- response_body eval
["uri: /t/a\n", "uri: /t/b\n"]
--- no_error_log
[error]



=== TEST 6: POST body, Content-Length, more_headers (2)
--- config
    location = /t {
        echo_read_request_body;
        echo "x-foo: $http_x_foo, len: $http_content_length";
        echo_request_body;
    }
--- more_headers
X-Foo: bar
# a comment
--- request
POST /t
hello world
--- response_body chomp
x-foo: bar, len: 11
hello world



=== TEST 7: error_log eval with regexes, grep_error_log (5)
--- config
    location = /t {
        echo ok;
    }
--- request
GET /t?a=1
--- response_body
ok
--- error_log eval
[qr/http request line: "GET \/t\?a=1 HTTP\/1\.1"/, "http finalize request"]
--- grep_error_log eval: qr/http args: "[^"]*"/
--- grep_error_log_out
http args: "a=1"



=== TEST 8: tcp_listen mock behind proxy_pass, tcp_query, tcp_query_len (4)
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/foo;
    }
--- request
GET /t
--- tcp_listen eval: $ENV{TEST_NGINX_MOCK_PORT}
--- tcp_query eval
"GET /foo HTTP/1.0\r\nHost: 127.0.0.1:$ENV{TEST_NGINX_MOCK_PORT}\r\nConnection: close\r\n\r\n"
--- tcp_query_len: 63
--- tcp_reply eval
"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Mock: yes\r\n\r\nhello"
--- response_body: hello



=== TEST 9: tcp_reply pieces and tcp_reply_delay (3)
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request
GET /t
--- tcp_listen eval: $ENV{TEST_NGINX_MOCK_PORT}
--- tcp_reply_delay: 200ms
--- tcp_reply eval
["HTTP/1.1 200 OK\r\n", "X-Mock: yes\r\n\r\n", "hello ", "world"]
--- response_headers
X-Mock: yes
--- response_body chomp
hello world



=== TEST 10: streaming proof, recipe A: tcp mock that sends one event and keeps the connection open (4)
--- config
    location = /sse {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
--- request
GET /sse HTTP/1.0
--- tcp_listen eval: $ENV{TEST_NGINX_MOCK_PORT}
--- tcp_no_close
--- tcp_reply eval
"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: first\n\n"
--- timeout: 1
--- abort
--- response_headers
Content-Type: text/event-stream
--- response_body_like: \A(?!.*\[DONE\])data: first\n\n\z
--- no_error_log
[error]



=== TEST 11: streaming proof, recipe B: upstream sends one event, waits 2 s, sends the rest (3)
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location = /upstream {
            default_type text/event-stream;
            echo "data: first";
            echo "";
            echo_flush;
            echo_sleep 2;
            echo "data: [DONE]";
            echo "";
        }
    }
--- config
    location = /sse {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/upstream;
        proxy_buffering off;
    }
--- request
GET /sse HTTP/1.0
--- timeout: 1
--- abort
--- response_body_like: \A(?!.*\[DONE\])data: first\n\n\z
--- no_error_log
[error]



=== TEST 12: the same upstream without a client timeout gets everything (2)
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location = /upstream {
            echo "data: first";
            echo_flush;
            echo_sleep 1;
            echo "data: [DONE]";
        }
    }
--- config
    location = /sse {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/upstream;
        proxy_buffering off;
    }
--- request
GET /sse
--- timeout: 3
--- response_body
data: first
data: [DONE]



=== TEST 13: must_die (2: exit status, error_log)
--- config
    location = /t {
        no_such_directive_here on;
    }
--- must_die
--- error_log
unknown directive "no_such_directive_here"



=== TEST 14: must_die with an exit code (2)
--- main_config
    worker_rlimit_nofile bogus;
--- config
--- must_die: 1
--- error_log eval
qr/\[emerg\] .*"worker_rlimit_nofile" directive invalid number/



=== TEST 15: user_files (4)
--- config
--- user_files
>>> foo.txt
hello
>>> dir/bar.txt 202001020304.05
bar
--- request eval
["GET /foo.txt", "GET /dir/bar.txt"]
--- response_body eval
["hello\n", "bar\n"]
--- response_headers eval
["Content-Length: 6", "Last-Modified: Thu, 02 Jan 2020 03:04:05 GMT"]



=== TEST 16: raw_request (2)
--- config
    location = /t {
        echo "proto: $server_protocol";
    }
--- raw_request eval
"GET /t HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- response_body
proto: HTTP/1.0



=== TEST 17: pipelined_requests (4)
--- config
    location /p {
        echo "uri: $uri";
    }
--- pipelined_requests eval
["GET /p/a", "GET /p/b"]
--- response_body eval
["uri: /p/a\n", "uri: /p/b\n"]



=== TEST 18: HEAD request (2)
--- config
    location = /t {
        echo hello;
    }
--- request
HEAD /t
--- response_body



=== TEST 19: response_headers_like, $TEST_NGINX_SERVER_PORT and $ServerPort (3)
--- config
    location = /t {
        add_header X-Port $TEST_NGINX_SERVER_PORT;
        echo "port: $TEST_NGINX_SERVER_PORT";
    }
--- request
GET /t
--- response_headers_like
X-Port: \d+
Content-Type: text/.*
--- response_body
port: $ServerPort



=== TEST 20: a block without --- config reuses the running nginx (2)
--- request
GET /t
--- response_body
port: $ServerPort



=== TEST 21: --- timeout not reached (2)
--- config
    location = /t {
        echo_sleep 0.5;
        echo ok;
    }
--- request
GET /t
--- timeout: 2
--- response_body
ok



=== TEST 22: main_config, http_config, chunked request body (2)
--- main_config
    worker_rlimit_nofile 1024;
--- http_config
    map $http_x_foo $foo_mapped {
        default  none;
        bar      mapped;
    }
--- config
    location = /t {
        echo_read_request_body;
        echo "$foo_mapped";
        echo_request_body;
    }
--- more_headers
X-Foo: bar
Transfer-Encoding: chunked
--- request eval
"POST /t
5\r
hello\r
0\r
\r
"
--- response_body chomp
mapped
hello



=== TEST 23: request split into packets with a delay (2)
--- config
    location = /t {
        echo_read_request_body;
        echo_request_body;
    }
--- request eval
[["POST /t\nhel", {value => "lo", delay_before => 0.2}]]
--- response_body chomp
hello



=== TEST 24: response_body_filters (2)
--- config
    location = /t {
        echo hello;
    }
--- request
GET /t
--- response_body_filters
uc
--- response_body
HELLO



=== TEST 25: skip_nginx (2 skipped)
--- config
    location = /t {
        echo hello;
    }
--- request
GET /t
--- response_body
not what nginx sends
--- skip_nginx
2: > 0.1.0



=== TEST 26: SKIP blocks are not run nor counted
--- config
    location = /t {
        no_such_directive;
    }
--- request
GET /t
--- SKIP



=== TEST 27: log_level, server_name, wait (3)
--- config
    location = /t {
        echo "server: $server_name";
    }
--- log_level: warn
--- server_name: example.test
--- wait: 0.1
--- request
GET /t
--- response_body
server: example.test
--- no_error_log
[debug]



=== TEST 28: shutdown_error_log, checked after nginx is stopped (2 + 2 when the next block starts)
--- config
    location = /t {
        echo ok;
    }
--- request
GET /t
--- response_body
ok
--- shutdown_error_log eval
qr/\[notice\] .*exit/
--- no_shutdown_error_log
[alert]



=== TEST 29: the end (2)
--- config
    location = /t {
        echo bye;
    }
--- request
GET /t
--- response_body
bye



=== TEST 30: more_headers per request, error_code_like, raw_response_headers_like, Regexp body (6)
--- config
    location = /t {
        if ($http_x_code) {
            return 418;
        }
        echo "x-foo: $http_x_foo";
    }
--- request eval
["GET /t", "GET /t"]
--- more_headers eval
["X-Foo: one", "X-Code: 1"]
--- error_code_like eval
["^200\$", "^4\\d\\d\$"]
--- raw_response_headers_like eval
["Content-Type: text/plain\\r\\n", "HTTP/1.1 418"]
--- response_body eval
[qr/x-foo: one/, qr/^\z|418/]
