package Test::Nginx::Lite::Valgrind;

# Parser for valgrind (memcheck) log files written by nginx processes run
# under TEST_NGINX_USE_VALGRIND.  Used by Test::Nginx::Lite::Util to turn
# valgrind error records into test failures.

use v5.36;

# Record headers that are errors, with a short kind name.  Checked in order.
my @KINDS = (
    [qr/^Invalid read of size/                          => 'invalid read'],
    [qr/^Invalid write of size/                         => 'invalid write'],
    [qr/^(?:Invalid|Mismatched) (?:free|delete)/        => 'invalid free'],
    [qr/uninitialised/                                  => 'uninitialised value'],
    [qr/unaddressable/                                  => 'unaddressable memory'],
    [qr/are definitely lost in loss record/             => 'definitely lost'],
    [qr/are possibly lost in loss record/               => 'possibly lost'],
    [qr/are indirectly lost in loss record/             => 'indirectly lost'],
    [qr/^Source and destination overlap/                => 'overlap'],
    [qr/^Argument '.*' of function .* has a fishy/      => 'fishy argument'],
    [qr/^Process terminating/                           => 'process terminating'],
);

# Informational messages that are not errors.
my $INFO = qr/^(?:Warning|WARNING|Note|HEAP SUMMARY|LEAK SUMMARY|ERROR SUMMARY
               |For (?:lists|counts)|Reachable blocks|To see them|Memcheck,
               |Copyright|Using Valgrind|Command:|Parent PID|All heap blocks
               |in use at exit|total heap usage|Rerun with|(?:definitely|indirectly
               |possibly)\ lost:|still\ reachable:|suppressed:|Use\ --track-origins
               |by\ 0x|at\ 0x)/x;

# parse_log($text) -> list of { kind, summary, text } error records.
sub parse_log ($text) {
    my @records;
    my $cur;
    for my $line (split /\n/, $text) {
        if ($line =~ /^==\d+==\s?(.*)$/) {
            my $msg = $1;
            if ($msg =~ /^\S/) {
                # a new record header
                undef $cur;
                next if $msg =~ $INFO;
                my $kind = 'other';
                for my $k (@KINDS) {
                    if ($msg =~ $k->[0]) {
                        $kind = $k->[1];
                        last;
                    }
                }
                $cur = { kind => $kind, summary => $msg, text => "$line\n" };
                push @records, $cur;
                next;
            }
        }
        # stack frames, blank separators and generated suppressions
        $cur->{text} .= "$line\n" if $cur;
    }
    return @records;
}

1;
