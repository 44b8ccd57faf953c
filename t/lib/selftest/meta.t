# Self-test of the Test::Nginx::Socket re-implementation: behaviours that
# show up as test FAILURES.  Each fixture script in fixtures/ is run in a
# child perl and its TAP output is checked here.  Run from the repository
# root:  prove -It/lib t/lib/selftest/
use strict;
use warnings;

use Cwd ();
use File::Temp ();
use Test::More;

use lib 't/lib';
use Test::Nginx::Lite::Valgrind ();

my $fixtures = 't/lib/selftest/fixtures';
-d $fixtures or plan skip_all => 'run from the repository root';

# Run a fixture (no core dumps) and return (TAP + stderr, exit code).
sub run_fixture {
    my ($name, %env) = @_;
    local %ENV = (%ENV, TEST_NGINX_USE_LITE => 1, %env);
    delete $ENV{TEST_NGINX_USE_VALGRIND} unless exists $env{TEST_NGINX_USE_VALGRIND};
    my $out = `sh -c 'ulimit -c 0; exec "\$0" "\$@"' $^X -It/lib $fixtures/$name 2>&1`;
    return ($out, $? >> 8);
}

# --- Valgrind log parser -----------------------------------------------------
{
    open my $in, '<', "$fixtures/valgrind-sample.log" or die $!;
    my $text = do { local $/; <$in> };
    my @recs = Test::Nginx::Lite::Valgrind::parse_log($text);
    is_deeply [map { $_->{kind} } @recs],
        ['uninitialised value', 'invalid write', 'definitely lost', 'definitely lost'],
        'valgrind parser: error kinds';
    like $recs[1]{text}, qr/Address 0x\w+ is 0 bytes after a block of size 16/,
        'valgrind parser: record text keeps the details';
    like $recs[2]{text}, qr/match-leak-kinds: definite/,
        'valgrind parser: generated suppression kept with its record';
}

# --- timeout without abort ---------------------------------------------------
{
    my ($out) = run_fixture('timeout-no-abort.pl');
    like $out, qr/^not ok 1 - ERROR: client socket timed out - \S+ TEST 1/m,
        'timeout without abort: extra failing test';
    like $out, qr/^ok 2 - .* status code ok/m, 'timeout without abort: status still checked';
    like $out, qr/^ok 3 - .* response_body_like - response is expected \(first\)/m,
        'timeout without abort: partial body checked';
}

# --- truncated chunked body --------------------------------------------------
{
    my ($out) = run_fixture('chunked-truncated.pl');
    like $out, qr/^not ok 1 - \S+ TEST 1: .* - no last chunk found - /m,
        'truncated chunked body: "no last chunk found"';
    like $out, qr/^not ok 2 - .* status code ok/m,
        'truncated chunked body: status code check fails';
    like $out, qr/^not ok 3 - .* response_body_like/m,
        'truncated chunked body: body check fails';
    unlike $out, qr/client socket timed out/, 'truncated chunked body: abort honoured';
}

# --- response_body_like + response_body_unlike -------------------------------
{
    my ($out, $rc) = run_fixture('like-and-unlike.pl');
    is $rc, 0, 'like and unlike: passes (only _like is checked)';
    like $out, qr/^1\.\.2$/m, 'like and unlike: 2 tests';
}

# --- worker crash / nginx gone -----------------------------------------------
{
    my ($out, $rc) = run_fixture('worker-crash.pl');
    # (under AddressSanitizer the worker exits with code 1 instead)
    like $out, qr/^not ok \d+ - .* worker crash: .*exited (?:on signal 11|with code [1-9])/m,
        'worker crash fails the block';
    isnt $rc, 0, 'worker crash: non-zero exit';
}
{
    my ($out, $rc) = run_fixture('nginx-gone.pl');
    like $out, qr/^not ok \d+ - .* the nginx process \d+ is gone/m,
        'vanished nginx fails the block';
}

# --- valgrind errors ---------------------------------------------------------
SKIP: {
    skip 'valgrind or cc not available', 4
        unless `sh -c 'command -v valgrind && command -v cc'`;
    skip 'TEST_NGINX_BINARY is a command prefix (e.g. with ASan preloaded)', 4
        if ($ENV{TEST_NGINX_BINARY} // '') =~ /\s/;
    my $dir = File::Temp->newdir;
    my $lib = "$dir/libselftestbad.so";
    system('cc', '-O0', '-shared', '-fPIC', '-o', $lib, "$fixtures/bad-lib.c") == 0
        or skip 'cannot build the test library', 4;
    my ($out, $rc) = run_fixture('valgrind-error.pl',
                                 TEST_NGINX_USE_VALGRIND => 1, SELFTEST_BAD_LIB => $lib);
    like $out, qr/^ok 1 - .* status code ok/m, 'valgrind: nginx works';
    like $out, qr/^not ok \d+ - .* valgrind: invalid write: Invalid write of size 1/m,
        'valgrind: invalid write reported as a failure';
    like $out, qr/^not ok \d+ - .* valgrind: definitely lost: 16 bytes in 1 blocks/m,
        'valgrind: leak reported as a failure';
    unlike $out, qr/ngx_set_environment.*\n.*\n.*not ok/, 'valgrind: nginx core leaks suppressed';
}

done_testing();
