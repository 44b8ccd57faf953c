# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# tools/prices/llm-prices: an OpenRouter-format model catalog (a file, or a
# URL served here by nginx on 127.0.0.1) -> an include file of "llm_model"
# blocks with current prices.  It is a command-line tool, so this is a
# plain Test::More script: it builds the tool, runs it, compares its
# output, its errors and its exit status, and has nginx load what it wrote.
#
# Environment, as for the other suites: TEST_NGINX_BINARY,
# TEST_NGINX_LOAD_MODULES, TEST_NGINX_ROOT.  Nothing leaves 127.0.0.1.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);

use LLMHarness;

my $root = File::Spec->rel2abs($ENV{TEST_NGINX_ROOT}
                               || File::Spec->catdir($FindBin::Bin, '..'));
my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $nginx_bin = (split ' ', $nginx)[-1];    # "env LD_PRELOAD=... nginx"
my @modules = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
my $src = "$root/tools/prices";
my $tool = "$src/llm-prices";
my $catalog = "$src/t/catalog.json";

my $build = `make -s -C $src 2>&1`;

plan skip_all => "cannot build tools/prices/llm-prices (libcurl4-openssl-dev"
                 . " and libjansson-dev installed?): $build"
    if $? || !-x $tool;

# the header's time is fixed, and no proxy may take a request elsewhere

$ENV{SOURCE_DATE_EPOCH} = 0;
delete @ENV{qw(http_proxy https_proxy all_proxy no_proxy
               HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY)};

my $tmp = tempdir('llm-prices-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# run(ARGS...) or run({ stdin => FILE }, ARGS...)
#     -> { status, out, err, time }

sub run {
    my $opt = ref $_[0] ? shift : {};
    my $start = time;

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', $opt->{stdin} // '/dev/null' or POSIX::_exit(126);
        open STDOUT, '>', "$tmp/stdout" or POSIX::_exit(126);
        open STDERR, '>', "$tmp/stderr" or POSIX::_exit(126);
        exec $tool, @_ or POSIX::_exit(127);
    }

    waitpid $pid, 0;

    return { status => $? >> 8, out => slurp("$tmp/stdout"),
             err => slurp("$tmp/stderr"), time => time - $start };
}

# a regex of literal strings (joined), but for a last '\\z'

sub lit {
    my $end = $_[-1] eq '\z' ? pop : '';
    my $text = join '', @_;
    return qr/\Q$text\E$end/;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    return scalar <$fh>;
}

sub spit {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh;
}

# the files in a directory, to see that no temporary file is left behind

sub files {
    my ($d) = @_;
    opendir my $dh, $d or die "$d: $!";
    return join ' ', sort grep { !/^\.\.?$/ } readdir $dh;
}

my @mappings = (
    'openai/gpt-4o=gpt-4o@openai:gpt-4o-2024-08-06',
    'anthropic/claude-sonnet-4.5=smart@anthropic:claude-sonnet-4-5',
    'meta-llama/llama-3.1-70b-instruct=llama@groq:llama-3.1-70b-versatile',
    'meta-llama/llama-3.3-70b-instruct:free=llama',
    'openai/gpt-4o-mini',
    'google/gemma-3-4b-it=gemma@local',
);

sub expected {
    my ($source) = @_;

    return <<"_EOT_";
# llm_model prices from $source
# fetched 1970-01-01T00:00:00Z by llm-prices, in USD per million tokens.
# Generated: the next run of llm-prices replaces this file.

llm_model gpt-4o {
    # openai/gpt-4o
    endpoint openai model=gpt-4o-2024-08-06 input=2.5 output=10;
    context 128000;
}

llm_model smart {
    # anthropic/claude-sonnet-4.5
    endpoint anthropic model=claude-sonnet-4-5 input=3 output=15;
    context 1000000;
}

llm_model llama {
    # meta-llama/llama-3.1-70b-instruct
    endpoint groq model=llama-3.1-70b-versatile input=0.4 output=0.4;
    # meta-llama/llama-3.3-70b-instruct:free
    endpoint openrouter model=meta-llama/llama-3.3-70b-instruct:free input=0 output=0;
    context 65536;
}

llm_model openai/gpt-4o-mini {
    # openai/gpt-4o-mini
    endpoint openrouter model=openai/gpt-4o-mini input=0.15 output=0.6;
    context 128000;
}

llm_model gemma {
    # google/gemma-3-4b-it
    # input rounded up from 0.00000001703012 USD per token
    # output rounded up from 0.0000000681536 USD per token
    endpoint local model=gemma-3-4b-it input=0.017031 output=0.068154;
    context 131072;
}
_EOT_
}

my $rounded = lit('warning: catalog model "google/gemma-3-4b-it": ',
                  '"pricing.prompt" "0.00000001703012" USD per token is ',
                  'rounded up to 0.017031 USD per million tokens');

# --- a catalog file ---------------------------------------------------------

{
    my $r = run('--catalog', $catalog, @mappings);

    is($r->{status}, 0, 'file: exit status 0') or diag $r->{err};
    is($r->{out}, expected($catalog), 'file: the llm_model blocks');
    like($r->{err}, $rounded, 'file: a rounded-up price is a warning');
    is(() = $r->{err} =~ /^llm-prices: /mg, 2,
       'file: two warnings (prompt and completion), nothing else');

    $r = run({ stdin => $catalog }, '-c', '-', @mappings);

    is($r->{status}, 0, 'stdin: exit status 0');
    is($r->{out}, expected('standard input'), 'stdin: the same blocks');

    $r = run('-c', $catalog, '--no-context', 'openai/gpt-4o@openai');

    is($r->{out}, <<"_EOT_", '--no-context, the upstream id without vendor/');
# llm_model prices from $catalog
# fetched 1970-01-01T00:00:00Z by llm-prices, in USD per million tokens.
# Generated: the next run of llm-prices replaces this file.

llm_model openai/gpt-4o {
    # openai/gpt-4o
    endpoint openai model=gpt-4o input=2.5 output=10;
}
_EOT_

    $r = run('-c', $catalog, '--provider', 'or',
             'openai/gpt-4o-mini=mini', 'openai/gpt-4o=mini@openai');

    like($r->{out}, lit("\nllm_model mini {\n",
                        "    # openai/gpt-4o-mini\n",
                        "    endpoint or model=openai/gpt-4o-mini ",
                        "input=0.15 output=0.6;\n",
                        "    # openai/gpt-4o\n",
                        "    endpoint openai model=gpt-4o ",
                        "input=2.5 output=10;\n",
                        "    context 128000;\n}\n", '\z'),
         '--provider; one NAME, two endpoints in order');

    $r = run('-c', $catalog, 'openai/gpt-4o@openrouter');

    like($r->{out}, lit("endpoint openrouter model=openai/gpt-4o input="),
         '@ the default provider: the catalog id as it is');

    $r = run('-c', $catalog, '--list', 'LLAMA');

    is($r->{status}, 0, '--list: exit status 0');
    is($r->{out}, <<'_EOT_', '--list SUBSTRING: ids, prices, context');
meta-llama/llama-3.1-70b-instruct       input=0.4 output=0.4 context=131072
meta-llama/llama-3.3-70b-instruct:free  input=0 output=0 context=65536
_EOT_

    $r = run('--help');

    is($r->{status}, 0, '--help: exit status 0');
    like($r->{out}, qr/^Usage: llm-prices .*CATALOG_ID\[=NAME\]/s,
         '--help: usage and the mapping syntax');
}

# --- --output: written atomically, left alone on errors --------------------

{
    my $d = tempdir(DIR => $tmp);
    my $file = "$d/llm-prices.conf";

    spit($file, "# the previous prices\n");
    chmod 0640, $file;

    my $r = run('-c', $catalog, '-o', $file, 'openai/gpt-4o=gpt-4o@openai',
                'no/such-model', 'openrouter/auto=auto@openrouter');

    is($r->{status}, 1, 'unknown id and negative price: exit status 1');
    like($r->{err}, qr/unknown catalog id "no\/such-model"/,
         'unknown id: named');
    like($r->{err}, lit('catalog model "openrouter/auto": negative ',
                        '"pricing.prompt" "-1"'),
         'price -1: the model named');
    is($r->{out}, '', 'errors: nothing on standard output');
    is(slurp($file), "# the previous prices\n", 'errors: file untouched');
    is(files($d), 'llm-prices.conf', 'errors: no temporary file left');

    $r = run('-c', $catalog, '-o', $file, @mappings);

    is($r->{status}, 0, '--output: exit status 0');
    is($r->{out}, '', '--output: nothing on standard output');
    is(slurp($file), expected($catalog), '--output: the file replaced');
    is(files($d), 'llm-prices.conf', '--output: no temporary file left');
    is((stat $file)[2] & 07777, 0640, '--output: permissions kept');

    $r = run('-c', $catalog, '-o', "$d/new.conf", '--strict', @mappings);

    is($r->{status}, 1, '--strict: a price with 7+ decimals is an error');
    like($r->{err}, lit('catalog model "google/gemma-3-4b-it": ',
                        '"pricing.prompt" "0.00000001703012" USD per token ',
                        'needs more than 6 decimals'),
         '--strict: the model and the price named');
    ok(!-e "$d/new.conf", '--strict: no file written');

    $r = run('-c', $catalog, '-o', "$d/new.conf", '--strict',
             'openai/gpt-4o');

    is($r->{status}, 0, '--strict: exact prices pass');
    ok(-e "$d/new.conf", '--strict: file written');

    $r = run('-c', $catalog, '-o', "$tmp/no/such/dir/x.conf",
             'openai/gpt-4o');

    is($r->{status}, 1, 'unwritable --output: exit status 1');
    like($r->{err}, qr/cannot create a temporary file/,
         'unwritable --output: said');
}

# --- bad catalogs and bad prices --------------------------------------------

{
    my %bad = (
        'invalid JSON'     => [ '{"data":[{"id":"a/b",}', qr/invalid JSON/ ],
        'no data array'    => [ '{"object":"list","models":[]}',
                                qr/no "data" array/ ],
        'empty file'       => [ '', qr/invalid JSON/ ],
        'malformed price'  => [ '{"data":[{"id":"a/b","pricing":'
                                . '{"prompt":"0.000001.5","completion":"0"}}]}',
                                lit('catalog model "a/b": invalid ',
                                    '"pricing.prompt" "0.000001.5"') ],
        'price not a number' => [ '{"data":[{"id":"a/b","pricing":'
                                . '{"prompt":"free","completion":"0"}}]}',
                                lit('catalog model "a/b": invalid ',
                                    '"pricing.prompt" "free"') ],
        'missing price'    => [ '{"data":[{"id":"a/b","pricing":'
                                . '{"prompt":"0.000001"}}]}',
                                lit('catalog model "a/b" has no ',
                                    '"pricing.completion"') ],
        'no pricing'       => [ '{"data":[{"id":"a/b"}]}',
                                lit('catalog model "a/b" has no ',
                                    '"pricing.prompt"') ],
        'price too large'  => [ '{"data":[{"id":"a/b","pricing":'
                                . '{"prompt":"1.5","completion":"0"}}]}',
                                qr/"1\.5" is more than the router's limit/ ],
    );

    for my $name (sort keys %bad) {
        my ($json, $error) = @{$bad{$name}};

        spit("$tmp/bad.json", $json);

        my $r = run('-c', "$tmp/bad.json", '-o', "$tmp/bad.conf", 'a/b');

        is($r->{status}, 1, "$name: exit status 1");
        like($r->{err}, $error, "$name: message");
        ok(!-e "$tmp/bad.conf", "$name: no file written");
    }

    # JSON numbers and exponents are read as decimals too

    spit("$tmp/numbers.json", '{"data":[{"id":"a/b","pricing":'
         . '{"prompt":2.5e-06,"completion":"1.5E-5"},"context_length":8192},'
         . '{"id":"c/d","pricing":{"prompt":0,"completion":"0.000000000001"}}'
         . ']}');

    my $r = run('-c', "$tmp/numbers.json", '--no-context', 'a/b=m@p',
                'c/d=m@q');

    is($r->{status}, 0, 'numbers: exit status 0') or diag $r->{err};
    like($r->{out}, lit("endpoint p model=b input=2.5 output=15;\n",
                        "    # c/d\n",
                        "    endpoint q model=d input=0 output=0.000001;\n",
                        "}\n", '\z'),
         'numbers: 2.5e-06 -> 2.5, "1.5E-5" -> 15, 1e-12 -> 0.000001');
    is($r->{err}, '', 'numbers: exact, no warning');

    $r = run('-c', "$tmp/missing.json", 'a/b');

    is($r->{status}, 1, 'missing catalog file: exit status 1');
    like($r->{err}, qr/cannot open the catalog ".*missing\.json"/,
         'missing catalog file: said');
}

# --- bad usage: exit status 2, before any fetch ----------------------------

{
    my %usage = (
        'no mapping'         => [ [], qr/no MAPPING given/ ],
        'empty NAME'         => [ ['a/b=@p'], qr/no NAME after "="/ ],
        'no catalog id'      => [ ['=x'], qr/no catalog id/ ],
        'bad NAME'           => [ ['a/b=x{y'], qr/invalid model name "x\{y"/ ],
        'id not a NAME'      => [ ['~a/b'],
                                  qr/"~a\/b" is not a valid model name/ ],
        'bad PROVIDER'       => [ ['a/b@p/q'],
                                  qr/invalid provider name "p\/q"/ ],
        'empty UPSTREAM_ID'  => [ ['a/b@p:'], qr/nothing after ":"/ ],
        'bad UPSTREAM_ID'    => [ ['a/b@p:x;y'],
                                  qr/invalid upstream model id "x;y"/ ],
        'bad --timeout'      => [ ['-t', 'soon', 'a/b'],
                                  qr/invalid --timeout "soon"/ ],
        'bad --provider'     => [ ['-p', 'a b', 'a/b'],
                                  qr/invalid provider name "a b"/ ],
        'unknown option'     => [ ['--frobnicate', 'a/b'],
                                  qr/unrecognized option/ ],
    );

    for my $name (sort keys %usage) {
        my ($args, $error) = @{$usage{$name}};

        # the URL would fail: usage is checked before the catalog is read
        my $r = run('-c', 'http://127.0.0.1:1/', @$args);

        is($r->{status}, 2, "$name: exit status 2");
        like($r->{err}, $error, "$name: message");
    }
}

# --- a catalog URL, served by nginx on 127.0.0.1 ----------------------------

SKIP: {
    skip "no nginx at $nginx_bin", 22 unless -x $nginx_bin;

    my $h = LLMHarness->new;

    spit($h->prefix . '/catalog.json', slurp($catalog));

    $h->start(server => <<'_EOC_');
        location = /api/v1/models {
            default_type application/json;
            gzip on;
            gzip_types application/json;
            gzip_min_length 0;
            gzip_http_version 1.0;
            alias $PREFIX/catalog.json;
        }
        location = /moved  { return 301 /api/v1/models; }
        location = /boom   {
            default_type application/json;
            return 500 '{"error":{"message":"Internal Server Error"}}';
        }
        location = /html   {
            default_type text/html;
            return 200 '<html><body>down for maintenance</body></html>';
        }
        location = /loop   { return 302 /loop; }
_EOC_

    my $base = 'http://127.0.0.1:' . $h->port;

    my $g = $h->request('GET', '/api/v1/models', undef,
                        'Accept-Encoding' => 'gzip');

    is($g->{headers}{'content-encoding'} // '', 'gzip',
       'the test server compresses the catalog');

    my $r = run('-c', "$base/api/v1/models", '-t', 10, @mappings);

    is($r->{status}, 0, 'URL: exit status 0') or diag $r->{err};
    is($r->{out}, expected("$base/api/v1/models"), 'URL: the same blocks');

    $r = run('-c', "$base/moved", @mappings);

    is($r->{status}, 0, 'redirect: followed');
    is($r->{out}, expected("$base/moved"), 'redirect: the same blocks');

    $r = run('-c', "http://user:secret\@127.0.0.1:" . $h->port
             . '/api/v1/models', 'openai/gpt-4o');

    like($r->{out}, qr/^# llm_model prices from http:\/\/\*\*\*\@127\.0\.0\.1:/,
         'URL credentials: not in the header');
    unlike($r->{out} . $r->{err}, qr/secret/, 'URL credentials: nowhere');

    my %fail = (
        'HTTP 500'      => [ "$base/boom",
                             qr/\Q$base\E\/boom: HTTP status 500: .*Internal/ ],
        'HTTP 404'      => [ "$base/nothing-here",
                             qr/\Q$base\E\/nothing-here: HTTP status 404/ ],
        'not JSON'      => [ "$base/html", qr/\Q$base\E\/html: invalid JSON/ ],
        'redirect loop' => [ "$base/loop", qr/\Q$base\E\/loop: .*redirect/i ],
        'refused'       => [ 'http://127.0.0.1:1/api/v1/models',
                             qr/http:\/\/127\.0\.0\.1:1\/api\/v1\/models: / ],
    );

    for my $name (sort keys %fail) {
        my ($url, $error) = @{$fail{$name}};

        $r = run('-c', $url, '-o', "$tmp/url.conf", 'openai/gpt-4o');

        is($r->{status}, 1, "$name: exit status 1");
        like($r->{err}, $error, "$name: message");
        ok(!-e "$tmp/url.conf", "$name: no file written");
    }

    $h->stop;
}

# --- a server that accepts and never answers: the timeout ------------------

{
    my $listen = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Proto => 'tcp')
        or die "listen: $!";

    my $r = run('-c', 'http://127.0.0.1:' . $listen->sockport . '/models',
                '-t', '1', '-o', "$tmp/slow.conf", 'openai/gpt-4o');

    is($r->{status}, 1, 'timeout: exit status 1');
    like($r->{err}, qr/timed out after 1 seconds/, 'timeout: message');
    cmp_ok($r->{time}, '<', 10, 'timeout: gave up in time');
    ok(!-e "$tmp/slow.conf", 'timeout: no file written');

    close $listen;
}

# --- nginx loads what it wrote, and reads the same prices back -------------

SKIP: {
    skip 'TEST_NGINX_LOAD_MODULES has no ngx_http_llm_router_module.so', 8
        unless -x $nginx_bin
               && grep { /ngx_http_llm_router_module\.so$/ } @modules;

    my $d = tempdir(DIR => $tmp);
    my $include = "$d/llm-prices.conf";

    my $r = run('-c', $catalog, '-o', $include, @mappings);

    is($r->{status}, 0, 'include written') or diag $r->{err};

    my $providers = <<'_EOC_';
    llm_provider openai     https://api.openai.com/v1;
    llm_provider anthropic  https://api.anthropic.com/v1 format=anthropic;
    llm_provider groq       https://api.groq.com/openai/v1;
    llm_provider openrouter https://openrouter.ai/api/v1;
    llm_provider local      http://127.0.0.1:11434/v1;
_EOC_

    mkdir "$d/logs";

    spit("$d/nginx.conf",
         join('', map { "load_module $_;\n" } @modules)
         . "error_log logs/error.log;\npid logs/nginx.pid;\n"
         . "events { }\nhttp {\n$providers    include $include;\n"
         . "    server {\n        listen 127.0.0.1:1984;\n"
         . "        location /v1/ { llm_router; }\n    }\n}\n");

    my $out = `$nginx -t -p $d/ -c $d/nginx.conf 2>&1`;

    is($? >> 8, 0, 'nginx -t accepts the include') or diag $out;
    like($out, qr/test is successful/, 'nginx -t: successful');

    # a wrong price in the include would fail: nginx -t reads it

    spit($include, slurp($include) =~ s/input=2\.5 /input=2.5000001 /r);
    $out = `$nginx -t -p $d/ -c $d/nginx.conf 2>&1`;

    like($out, qr/invalid price "input=2\.5000001"/,
         'nginx -t reads the include (a 7-decimal price fails it)');

    # /v1/models gives back the catalog's prices per token

    $r = run('-c', $catalog, '-o', $include, @mappings);

    my $h = LLMHarness->new;

    $h->start(http => $providers . "    include $include;\n",
              server => "        location /v1/ { llm_router; }\n");

    my $res = $h->request('GET', '/v1/models');

    is($res->{status}, 200, '/v1/models: 200');

    my $list = eval { decode_json($res->{body}) } || {};
    my %got;

    for my $m (@{$list->{data} || []}) {
        for my $ep (@{$m->{endpoints} || []}) {
            $got{"$m->{id} $ep->{provider} $ep->{model}"} =
                "$ep->{pricing}{prompt} $ep->{pricing}{completion}";
        }
    }

    is_deeply(\%got, {
        'gpt-4o openai gpt-4o-2024-08-06'           => '0.0000025 0.00001',
        'smart anthropic claude-sonnet-4-5'         => '0.000003 0.000015',
        'llama groq llama-3.1-70b-versatile'        => '0.0000004 0.0000004',
        'llama openrouter meta-llama/llama-3.3-70b-instruct:free' => '0 0',
        'openai/gpt-4o-mini openrouter openai/gpt-4o-mini'
                                                    => '0.00000015 0.0000006',
        'gemma local gemma-3-4b-it'         => '0.000000017031 0.000000068154',
    }, '/v1/models: the catalog\'s prices per token, the rounded ones up')
        or diag $res->{body};

    my %ctx = map { $_->{id} => $_->{context_length} // 0 }
              @{$list->{data} || []};

    is($ctx{llama}, 65536, '/v1/models: a NAME\'s smallest context');
    is($ctx{smart}, 1000000, '/v1/models: context_length');

    $h->stop;
}

done_testing();
