package Test::Nginx::Lite::TcpMock;

# The embedded one-shot TCP server behind --- tcp_listen, --- tcp_reply,
# --- tcp_reply_delay, --- tcp_query, --- tcp_query_len, --- tcp_no_close
# and --- tcp_shutdown, with the semantics of the real Test::Nginx::Util:
#
#   * a listening socket on 127.0.0.1:<port> (or a unix socket "*.sock")
#     is opened for every repeated request of the block, and a forked child
#     serves exactly ONE connection on it;
#   * the child reads once (or until --- tcp_query_len / the length of
#     --- tcp_query bytes arrived), sleeps --- tcp_reply_delay, then sends
#     --- tcp_reply: a string, an array of strings (sent back to back, with
#     no delay in between), or a sub called with the received data that
#     returns a string or an array of strings;
#   * then it closes the connection, unless --- tcp_no_close is given, in
#     which case it keeps it open until the harness kills it.

use v5.36;

use File::Temp ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use POSIX qw(:sys_wait_h SIGQUIT SIGKILL);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(sleep time);
use Test::More ();

use Test::Nginx::Lite::Util qw(bail_out parse_time is_running is_str);

my %Running;    # pid => 1 for mock servers still alive

sub start ($block, $name) {
    my $target = $block->tcp_listen;
    my $reply = $block->tcp_reply;
    if (!defined $reply && !defined $block->tcp_shutdown) {
        bail_out("$name - no --- tcp_reply specified but --- tcp_listen is specified");
    }

    my $req_len = $block->tcp_query_len;
    my $query_file;
    if (defined $block->tcp_query || defined $req_len) {
        $req_len //= length $block->tcp_query;
        (undef, $query_file) = File::Temp::tempfile('tcp-query-XXXXXX',
                                                     TMPDIR => 1, UNLINK => 1);
    }

    my ($listener, $err);
    for my $try (1 .. 40) {
        if ($target =~ /^\d+$/) {
            $listener = IO::Socket::INET->new(
                LocalHost => '127.0.0.1', LocalPort => $target,
                Proto => 'tcp', ReuseAddr => 1, Listen => 5,
            );
        } elsif ($target =~ /\S+\.sock$/) {
            unlink $target if -e $target;
            $listener = IO::Socket::UNIX->new(
                Local => $target, Type => SOCK_STREAM, Listen => 5,
            );
        } else {
            bail_out("$name - bad tcp_listen target: $target");
        }
        last if $listener;
        $err = $!;
        last unless $err =~ /address already in use/i;
        warn "WARNING: failed to create the tcp listening socket: $err\n" if $try == 1;
        sleep 0.25;
    }
    bail_out("$name - failed to create the tcp listening socket: $err") unless $listener;

    my $pid = fork;
    bail_out("$name - fork() failed: $!") unless defined $pid;

    if ($pid == 0) {
        $Test::Nginx::Lite::Util::InSubprocess = 1;
        Test::More->builder->no_ending(1);
        my $ok = eval { serve($block, $name, $listener, $reply, $req_len, $query_file); 1 };
        warn "WARNING: $name - TCP server: $@" unless $ok;
        POSIX::_exit(0);
    }

    $Running{$pid} = 1;
    return { pid => $pid, listener => $listener, query_file => $query_file };
}

# Child side: serve one connection.
sub serve ($block, $name, $listener, $reply, $req_len, $query_file) {
    my $client;
    until ($client = $listener->accept) {
        warn "WARNING: $name - TCP server: failed to accept: $!\n";
        sleep 0.015;
    }

    my ($no_read, $no_write);
    if (defined(my $how = $block->tcp_shutdown)) {
        sleep $block->tcp_shutdown_delay if $block->tcp_shutdown_delay;
        $client->shutdown($how);
        if ($how == 0 || $how == 2) { $no_read = 1 } else { $no_write = 1 }
    }

    my $buf = '';
    unless ($no_read) {
        while (1) {
            my $chunk = '';
            my $ret = $client->recv($chunk, 4096);
            die "failed to receive: $!\n" unless defined $ret;
            $buf .= $chunk;
            if ($query_file) {
                open my $out, '>', $query_file or die "cannot open $query_file: $!\n";
                binmode $out;
                print $out $buf;
                close $out;
            }
            last if !$req_len || length($buf) >= $req_len;
            last if $chunk eq '';    # peer closed before sending everything
        }
    }

    if (my $delay = parse_time(scalar($block->tcp_reply_delay))) {
        sleep $delay;
    }

    if (!$no_write && defined $reply) {
        $reply = $reply->($buf) if ref $reply eq 'CODE';
        my @pieces = ref $reply eq 'ARRAY' ? @$reply
                   : ref $reply ? bail_out('bad --- tcp_reply value')
                   : ($reply);
        for my $piece (@pieces) {
            defined $client->send($piece)
                or warn "WARNING: tcp server failed to send reply: $!\n";
        }
    }

    if (defined $block->tcp_no_close) {
        sleep 1 while 1;
    }

    $client->close;
    $listener->close;
}

# Parent side: the --- tcp_query / --- tcp_query_len subtests.
sub check ($mock, $block, $name) {
    return unless $mock;
    my $buf = '';
    if ($mock->{query_file} && open my $in, '<', $mock->{query_file}) {
        binmode $in;
        local $/;
        $buf = <$in> // '';
        close $in;
    }
    if (defined $block->tcp_query) {
        is_str($buf, scalar($block->tcp_query), "$name - tcp_query ok");
    }
    if (defined $block->tcp_query_len) {
        Test::More::is(length($buf), scalar($block->tcp_query_len), "$name - TCP query length ok");
    }
}

sub stop ($mock, $name) {
    return unless $mock;
    kill_child($mock->{pid}, $name);
    $mock->{listener}->close if $mock->{listener};
    unlink $mock->{query_file} if $mock->{query_file};
}

sub kill_child ($pid, $name) {
    delete $Running{$pid};
    kill SIGQUIT, $pid;
    my $deadline = time + 3;
    while (1) {
        my $r = waitpid $pid, WNOHANG;
        return if $r == $pid || $r == -1;
        if (time > $deadline) {
            warn "$name - timeout when waiting for the TCP server $pid to exit\n";
            kill SIGKILL, $pid;
            waitpid $pid, 0;
            return;
        }
        sleep 0.01;
    }
}

sub stop_all () {
    kill_child($_, 'cleanup') for keys %Running;
}

1;
