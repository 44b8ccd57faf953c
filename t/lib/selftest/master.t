# Self-test: master_on(), workers(2), repeat_each(2) and a plan computed the
# way the project's .t files do it.
use strict;
use warnings;

BEGIN {
    $ENV{TEST_NGINX_USE_LITE} //= 1;
    my $echo = '/usr/lib/nginx/modules/ngx_http_echo_module.so';
    if (($ENV{TEST_NGINX_LOAD_MODULES} // '') !~ /echo/ && -f $echo) {
        $ENV{TEST_NGINX_LOAD_MODULES} = join ' ', grep { $_ }
            $ENV{TEST_NGINX_LOAD_MODULES}, $echo;
    }
}

use Test::Nginx::Socket;

master_on();
workers(2);
repeat_each(2);

plan tests => repeat_each() * 3 * blocks();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: two worker processes are started (grep_error_log per repeated request)
--- config
    location = /t {
        echo "pid: $pid";
    }
--- request
GET /t
--- response_body_like: ^pid: \d+$
--- grep_error_log eval: qr/start worker process \d+/
--- grep_error_log_out eval
[qr/\A(?:start worker process \d+\n){2}\z/, qr/\A\z/]



=== TEST 2: several requests are served
--- config
    location = /t {
        echo_sleep 0.05;
        echo ok;
    }
--- request
GET /t
--- response_body
ok
--- no_error_log
[error]



=== TEST 3: graceful stop and restart between blocks with a slow request in flight
--- config
    location = /t {
        echo hello;
        echo_flush;
        echo_sleep 5;
        echo world;
    }
--- request
GET /t HTTP/1.0
--- timeout: 0.5
--- abort
--- response_body
hello
--- no_error_log
[error]



=== TEST 4: the next block gets a fresh nginx on the same port
--- config
    location = /t {
        echo fresh;
    }
--- request
GET /t
--- response_body
fresh
--- no_error_log
[error]
