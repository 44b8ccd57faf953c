# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Configuration mistakes fail "nginx -t" with a message naming the
# directive, the file and the line.
#
# These blocks are checked with "nginx -t", not by serving requests, so the
# file drives Test::Base (on which Test::Nginx::Socket is built) itself: it
# runs the same under the real Test::Nginx and under t/lib.  Each block's
# http_config goes into a minimal nginx.conf; "error" is a regex the output
# of "nginx -t" must match, "ok" says the configuration must load, "warn" a
# regex its output must match while it loads.  "$DIR" in http_config is the
# directory of the generated files, where "key_file" is written as "key".

use strict;
use warnings;

use Test::Base;
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my @modules = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
my $dir = tempdir('llm-config-XXXXXX', TMPDIR => 1, CLEANUP => 1);

$ENV{LLM_TEST_EMPTY} = '';
delete $ENV{LLM_TEST_UNSET};

plan tests => 2 * blocks();

for my $block (blocks()) {
    my $conf = "$dir/nginx.conf";

    make_path("$dir/logs");

    if (defined $block->key_file) {
        open my $kf, '>', "$dir/key" or die "$dir/key: $!";
        print $kf $block->key_file;
        close $kf;
    }

    my $http = $block->http_config // '';
    $http =~ s/\$DIR\b/$dir/g;

    open my $fh, '>', $conf or die "$conf: $!";
    print $fh join(' ', map { "load_module $_;" } @modules), "\n";
    print $fh "error_log logs/error.log;\npid logs/nginx.pid;\n",
              "events { }\nhttp {\n", $http,
              "    server {\n        listen 127.0.0.1:1984;\n",
              $block->config // '', "    }\n}\n";
    close $fh;

    my $out = `$nginx -t -p $dir/ -c $conf 2>&1`;
    my $status = $? >> 8;

    if (defined $block->error) {
        isnt($status, 0, $block->name . ' - nginx -t fails');
        like($out, $block->error, $block->name . ' - message');

    } else {
        is($status, 0, $block->name . ' - nginx -t passes') or diag $out;
        like($out, $block->warn // qr/test is successful/,
             $block->name . ' - message');
    }
}

__DATA__

=== TEST 1: a valid configuration loads
--- http_config
    llm_provider openai https://api.openai.com/v1 key=env:LLM_TEST_EMPTY;
    llm_provider local  http://127.0.0.1:11434/v1 format=openai;
    llm_model gpt-4o {
        endpoint openai model=gpt-4o-2024-08-06 input=2.50 output=10.00;
        context  128000;
    }
    llm_model llama {
        endpoint local;
        endpoint openai model=llama input=0.000001 output=0;
    }
--- config
        location /v1/ { llm_router; }
--- warn eval
qr/\[warn\] \d+#\d+: "llm_provider" "openai": environment variable "LLM_TEST_EMPTY" is not set, requests go without a key in \S+nginx.conf:\d+/



=== TEST 2: llm_provider needs a name and a URL
--- http_config
    llm_provider openai;
--- error eval
qr/\[emerg\] \d+#\d+: invalid number of arguments in "llm_provider" directive in \S+nginx.conf:\d+/



=== TEST 3: a URL without a scheme
--- http_config
    llm_provider openai api.openai.com/v1;
--- error eval
qr/\[emerg\] \d+#\d+: invalid URL "api.openai.com\/v1" in "llm_provider" "openai", it must start with "http:\/\/" or "https:\/\/" in \S+nginx.conf:\d+/



=== TEST 4: a URL with a bad port
--- http_config
    llm_provider openai http://127.0.0.1:99999/v1;
--- error eval
qr/\[emerg\] \d+#\d+: invalid URL "http:\/\/127.0.0.1:99999\/v1" in "llm_provider" "openai": invalid port in \S+nginx.conf:\d+/



=== TEST 5: an unknown format
--- http_config
    llm_provider x http://127.0.0.1/v1 format=cohere;
--- error eval
qr/\[emerg\] \d+#\d+: unsupported format "cohere" in "llm_provider" "x", supported: openai, anthropic, gemini in \S+nginx.conf:\d+/



=== TEST 6: an unknown parameter
--- http_config
    llm_provider x http://127.0.0.1/v1 timeout=5;
--- error eval
qr/\[emerg\] \d+#\d+: invalid parameter "timeout=5" in "llm_provider" "x" in \S+nginx.conf:\d+/



=== TEST 7: a key from a file that does not exist
--- http_config
    llm_provider x http://127.0.0.1/v1 key=file:/nonexistent/key;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_provider" "x": cannot open key file "\/nonexistent\/key" \(2: No such file or directory\) in \S+nginx.conf:\d+/



=== TEST 8: a key source that is neither env: nor file:
--- http_config
    llm_provider x http://127.0.0.1/v1 key=sk-literal-key;
--- error eval
qr/\[emerg\] \d+#\d+: invalid "key" in "llm_provider" "x", use "key=env:NAME" or "key=file:PATH" in \S+nginx.conf:\d+/



=== TEST 9: a provider defined twice
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_provider x http://127.0.0.2/v1;
--- error eval
qr/\[emerg\] \d+#\d+: duplicate "llm_provider" "x" in \S+nginx.conf:\d+/



=== TEST 10: an endpoint naming an unknown provider
--- http_config
    llm_model m {
        endpoint nobody model=x;
    }
--- error eval
qr/\[emerg\] \d+#\d+: unknown provider "nobody" in "endpoint" of "llm_model" "m", define it with "llm_provider" first in \S+nginx.conf:\d+/



=== TEST 10b: a model id that is not UTF-8
--- http_config eval
"    llm_provider x http://127.0.0.1/v1;\n"
. "    llm_model m {\n        endpoint x model=caf\xe9;\n    }\n"
--- error eval
qr/\[emerg\] \d+#\d+: invalid model id "caf\xe9" in "endpoint" of "llm_model" "m": not UTF-8 in \S+nginx.conf:\d+/



=== TEST 11: a price that is not a number
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m {
        endpoint x input=cheap output=1;
    }
--- error eval
qr/\[emerg\] \d+#\d+: invalid price "input=cheap" in "endpoint" of "llm_model" "m", use USD per million tokens with at most six decimals, e.g. "input=2.50" in \S+nginx.conf:\d+/



=== TEST 12: a price with too many decimals
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m {
        endpoint x input=0.0000001 output=1;
    }
--- error eval
qr/\[emerg\] \d+#\d+: invalid price "input=0.0000001" in "endpoint" of "llm_model" "m"/



=== TEST 13: an unknown endpoint parameter
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m {
        endpoint x weight=3;
    }
--- error eval
qr/\[emerg\] \d+#\d+: invalid parameter "weight=3" in "endpoint" of "llm_model" "m" in \S+nginx.conf:\d+/



=== TEST 14: a model without endpoints
--- http_config
    llm_model m {
        context 1000;
    }
--- error eval
qr/\[emerg\] \d+#\d+: "llm_model" "m" has no "endpoint" in \S+nginx.conf:\d+/



=== TEST 15: an unknown directive inside llm_model
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m {
        endpoint x;
        max_tokens 5;
    }
--- error eval
qr/\[emerg\] \d+#\d+: unknown directive "max_tokens" in "llm_model" "m", expected "endpoint", "context" or "max_output" in \S+nginx.conf:\d+/



=== TEST 16: a context that is not a number
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m {
        endpoint x;
        context big;
    }
--- error eval
qr/\[emerg\] \d+#\d+: invalid "context" "big" in "llm_model" "m" in \S+nginx.conf:\d+/



=== TEST 17: a model defined twice
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m { endpoint x; }
    llm_model m { endpoint x; }
--- error eval
qr/\[emerg\] \d+#\d+: duplicate "llm_model" "m" in \S+nginx.conf:\d+/



=== TEST 18: llm_router outside a location
--- http_config
    llm_router;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_router" directive is not allowed here in \S+nginx.conf:\d+/



=== TEST 19: llm_router twice in a location
--- config
        location /v1/ { llm_router; llm_router; }
--- error eval
qr/\[emerg\] \d+#\d+: "llm_router" directive is duplicate in \S+nginx.conf:\d+/



=== TEST 20: llm_router after another content handler
--- config
        location /v1/ { proxy_pass http://127.0.0.1:1; llm_router; }
--- error eval
qr/\[emerg\] \d+#\d+: "llm_router" directive cannot be used in a location that already has a content handler \(proxy_pass, fastcgi_pass ...\) in \S+nginx.conf:\d+/



=== TEST 21: another content handler after llm_router
--- config
        location /v1/ {
            llm_router;
            proxy_pass http://127.0.0.1:1;
        }
--- error eval
qr/\[emerg\] \d+#\d+: "llm_router" cannot be used in a location with another content handler in \S+nginx.conf:9/



=== TEST 21a: llm_router_max_attempts out of bounds
--- config
        location /v1/ { llm_router; llm_router_max_attempts 0; }
--- error eval
qr/\[emerg\] \d+#\d+: "llm_router_max_attempts" directive must be between 1 and 20 in \S+nginx.conf:\d+/



=== TEST 22: llm_mock with a bad parameter
--- config
        location /m { llm_mock chunks=0; }
--- error eval
qr/\[emerg\] \d+#\d+: invalid parameter "chunks=0" in "llm_mock" in \S+nginx.conf:\d+/



=== TEST 23: llm_mock with an unknown fault
--- config
        location /m { llm_mock fault=explode; }
--- error eval
qr/\[emerg\] \d+#\d+: invalid parameter "fault=explode" in "llm_mock" in \S+nginx.conf:\d+/



=== TEST 24: a provider name with a space or quote is refused
--- http_config
    llm_provider "a b" http://127.0.0.1/v1;
--- error eval
qr/\[emerg\] \d+#\d+: invalid provider name "a b" in "llm_provider"/



=== TEST 25: a key with a control character is refused, without printing the key
--- key_file eval
"sk-secret\rInjected: header\n"
--- http_config
    llm_provider x http://127.0.0.1/v1 key=file:$DIR/key;
--- error eval
qr/\A(?!.*sk-secret)(?s:.*)\[emerg\] \d+#\d+: "llm_provider" "x": the key from "file:\S+\/key" contains a character not allowed in a header in \S+nginx.conf:\d+/s



=== TEST 26: llm_zone with a size too small
--- http_config
    llm_zone llm 4k;
--- error eval
qr/\[emerg\] \d+#\d+: invalid size "4k" in "llm_zone", it must be at least 32k in \S+nginx.conf:\d+/



=== TEST 27: llm_auto naming an unknown model
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m { endpoint x; }
    llm_auto auto {
        prompt "~*x" nobody;
        default m;
    }
--- error eval
qr/\[emerg\] \d+#\d+: unknown model "nobody" in "llm_auto" "auto" in \S+nginx.conf:9/



=== TEST 28: llm_auto without a default
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m { endpoint x; }
    llm_auto auto {
        tools m;
    }
--- error eval
qr/\[emerg\] \d+#\d+: "llm_auto" "auto" has no "default" in \S+nginx.conf:\d+/



=== TEST 29: llm_auto with a broken regex
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m { endpoint x; }
    llm_auto auto {
        prompt "~*(unclosed" m;
        default m;
    }
--- error eval
qr/\[emerg\] \d+#\d+: invalid regex "~\*\(unclosed" in "llm_auto" "auto": .*missing closing parenthesis.* in \S+nginx.conf:\d+/



=== TEST 30: llm_auto with a bad token condition
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m { endpoint x; }
    llm_auto auto {
        tokens many m;
        default m;
    }
--- error eval
qr/\[emerg\] \d+#\d+: invalid "tokens" condition "many" in "llm_auto" "auto", use e.g. ">8000" or "<=500" in \S+nginx.conf:\d+/



=== TEST 31: llm_auto with an unknown rule
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m { endpoint x; }
    llm_auto auto {
        weekday m;
        default m;
    }
--- error eval
qr/\[emerg\] \d+#\d+: unknown rule "weekday" in "llm_auto" "auto", expected "prompt", "last", "tokens", "tools", "images" or "default" in \S+nginx.conf:\d+/



=== TEST 32: llm_auto with the name of a model
--- http_config
    llm_provider x http://127.0.0.1/v1;
    llm_model m { endpoint x; }
    llm_auto m {
        default m;
    }
--- error eval
qr/\[emerg\] \d+#\d+: duplicate model name "m" in "llm_auto" in \S+nginx.conf:\d+/



=== TEST 33: llm_router_circuit_breaker with a bad parameter
--- http_config
    llm_router_circuit_breaker failures=0;
--- error eval
qr/\[emerg\] \d+#\d+: invalid parameter "failures=0" in "llm_router_circuit_breaker" in \S+nginx.conf:\d+/



=== TEST 34: llm_router_weights with a bad parameter
--- config
        location /v1/ { llm_router; llm_router_weights cost=1 speed=2; }
--- error eval
qr/\[emerg\] \d+#\d+: invalid parameter "speed=2" in "llm_router_weights", use cost=, latency=, throughput=, errors= with numbers in \S+nginx.conf:\d+/



=== TEST 35: the routing directives load
--- http_config
    llm_zone llm 1m;
    llm_router_circuit_breaker failures=3 cooldown=10s;
    llm_provider x http://127.0.0.1/v1;
    llm_model m { endpoint x; }
    llm_auto auto { default m; }
--- config
        llm_router_ttft_timeout 5s;
        llm_router_idle_timeout 30s;
        llm_router_weights cost=1 latency=0.5 throughput=0.25 errors=2;
        location /v1/ { llm_router; }
        location = /status { llm_status; }



=== TEST 36: a provider name with a slash
--- http_config
    llm_provider open/ai http://127.0.0.1/v1;
--- error eval
qr/\[emerg\] \d+#\d+: invalid provider name "open\/ai" in "llm_provider", use letters, digits, "-", "_" and "." in \S+nginx.conf:\d+/



=== TEST 37: llm_keys: a file that is not JSON
--- key_file
{"keys": [
--- http_config
    llm_keys $DIR/key;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_keys" cannot load "\S+\/key": [^\n]+ \(line \d+\) in \S+nginx.conf:\d+/



=== TEST 38: llm_keys: no keys array
--- key_file
{"key": []}
--- http_config
    llm_keys $DIR/key;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_keys" file "\S+\/key" has no "keys" array in \S+nginx.conf:\d+/



=== TEST 39: llm_keys: a hash that is not a SHA-256
--- key_file
{"keys": [{"hash": "sk-plaintext-key", "label": "x"}]}
--- http_config
    llm_keys $DIR/key;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_keys" file "\S+\/key": keys\[0\] "hash" is not 64 hex digits \(a SHA-256\) in \S+nginx.conf:\d+/



=== TEST 40: llm_keys: an unknown field
--- key_file
{"keys": [{"hash": "4d692786b022a5d5a48381dcaf1e5e346366feb5579a1d699de2991d153b05f9", "budget": 5}]}
--- http_config
    llm_keys $DIR/key;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_keys" file "\S+\/key": keys\[0\] has an unknown field "budget" in \S+nginx.conf:\d+/



=== TEST 41: llm_keys: a bad limit_reset
--- key_file
{"keys": [{"hash": "4d692786b022a5d5a48381dcaf1e5e346366feb5579a1d699de2991d153b05f9", "limit": 5, "limit_reset": "hourly"}]}
--- http_config
    llm_keys $DIR/key;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_keys" file "\S+\/key": keys\[0\] "limit_reset" is not "daily", "weekly", "monthly" or null in \S+nginx.conf:\d+/



=== TEST 42: llm_keys: a bad expiry date
--- key_file
{"keys": [{"hash": "4d692786b022a5d5a48381dcaf1e5e346366feb5579a1d699de2991d153b05f9", "expires": "next year"}]}
--- http_config
    llm_keys $DIR/key;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_keys" file "\S+\/key": keys\[0\] "expires" is not like "2027-01-31T00:00:00Z" in \S+nginx.conf:\d+/



=== TEST 43: llm_keys: one key twice
--- key_file
{"keys": [{"hash": "4d692786b022a5d5a48381dcaf1e5e346366feb5579a1d699de2991d153b05f9"}, {"hash": "4D692786B022A5D5A48381DCAF1E5E346366FEB5579A1D699DE2991D153B05F9"}]}
--- http_config
    llm_keys $DIR/key;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_keys" file "\S+\/key": keys\[1\] and keys\[0\] have the same hash in \S+nginx.conf:\d+/



=== TEST 44: llm_keys: a file that loads
--- key_file
{"keys": [{"hash": "4d692786b022a5d5a48381dcaf1e5e346366feb5579a1d699de2991d153b05f9", "label": "alice", "models": ["gpt-*"], "limit": 10, "limit_reset": "daily", "rpm": 60, "tpm": 100000, "expires": "2099-01-01"}]}
--- http_config
    llm_keys $DIR/key;
    llm_provider x http://127.0.0.1/v1;
    llm_model gpt-x { endpoint x; max_output 2048; }



=== TEST 45: llm_state_file: a file that is not a state file
--- key_file
[1, 2, 3]
--- http_config
    llm_state_file $DIR/key;
--- error eval
qr/\[emerg\] \d+#\d+: "llm_state_file" "\S+\/key" is not a state file: no "keys" object; move it away to start from zero spend in \S+nginx.conf:\d+/
