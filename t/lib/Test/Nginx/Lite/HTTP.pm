package Test::Nginx::Lite::HTTP;

# The HTTP/1.x client side of the Test::Nginx::Socket re-implementation:
# building the requests of a block (--- request, --- request eval arrays,
# packet arrays, --- more_headers, --- raw_request, --- pipelined_requests),
# sending them over a non-blocking socket with the real harness' timeout
# semantics, and parsing responses (Content-Length, chunked, close).

use v5.36;

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use HTTP::Response ();
use IO::Socket::INET ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep);
use Test::More ();

use Test::Nginx::Lite::Util qw(bail_out is_running);

our $TotalConnectingTimeouts = 0;

# fail() that, like the real harness, also disables Test::Builder's plan
# check at the end (extra tests are expected after such failures).
sub fail_no_ending ($msg) {
    Test::More->builder->no_ending(1);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::fail($msg);
}

#----------------------------------------------------------------------------
# Request building
#----------------------------------------------------------------------------

# --- more_headers -> ("Key: value\r\n"..., is_chunked)
sub parse_more_headers ($in) {
    my $out = '';
    my $is_chunked;
    for my $header (split /\n+/, $in // '') {
        next if $header =~ /^\s*#/;
        my ($key, $val) = split /:\s*/, $header, 2;
        $val //= '';
        $is_chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $is_chunked);
}

# Turn a request spec ("METHOD [URI [HTTP/x.y]]\nbody", possibly split into
# several packets) into the wire format: normalised request line, the
# automatic Host/Connection/Content-Length headers plus --- more_headers,
# and the body (trimmed when we compute Content-Length ourselves).  Packet
# boundaries are preserved as closely as the real harness does: every
# original character keeps its packet, inserted text goes with the
# character it follows.
sub build_request ($name, $more_headers, $is_chunked, $conn, $packets) {
    my $raw = join '', map { $_ // '' } @$packets;
    my ($first, $content) = $raw =~ /\A([^\n]*\n?)(.*)\z/s;
    bail_out("$name - Request line should be non-empty") if $first eq '';

    $first =~ /^(\s*)(\S+)( *)((\S+)( *))?((\S+)( *))?(\s*)$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$first\".");
    my ($before, $meth, $after_meth) = ($1, $2, $3);
    my ($url, $after_url) = ($5, $6);
    my ($ver, $after_ver, $eol) = ($8, $9, $10);
    # defaults: URI "/" and HTTP/1.1
    $url = defined $url ? { text => $url, len => length $url }
                        : { text => '/', len => 0 };
    $ver = defined $ver ? { text => $ver, len => length $ver }
                        : { text => 'HTTP/1.1', len => 0 };
    $after_url //= '';
    $after_ver //= '';

    my $len_header = '';
    my $new_content = $content;
    if (!$is_chunked && $content ne ''
        && $more_headers !~ /(?:^|\n)Content-Length:/)
    {
        $new_content =~ s/^\s+|\s+$//gs;
        $len_header = 'Content-Length: ' . length($new_content) . "\r\n";
    }

    $more_headers =~ s/(?<!\r)\n/\r\n/gs;
    my $headers = '';
    $headers .= "Host: $Test::Nginx::Lite::Util::ServerName\r\n"
        if $more_headers !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: $conn\r\n"
        if $more_headers !~ /(?:^|\n)Connection/msi;
    $headers .= "$more_headers$len_header\r\n";

    # (original length, replacement text) for each piece of the request
    my @segments = (
        [length $before,                    ''],
        [length $meth,                      "$meth "],
        [length $after_meth,                ''],
        [$url->{len},                       "$url->{text} "],
        [length $after_url,                 ''],
        [$ver->{len},                       "$ver->{text}\r\n"],
        [length($after_ver) + length($eol), ''],
        [0,                                 $headers],
        [length $content,                   $new_content],
    );
    my $wire = join '', map { $_->[1] } @segments;

    # map the original packet boundaries onto the rewritten request
    my @cuts;
    my $pos = 0;
    for my $p (@$packets[0 .. $#$packets - 1]) {
        $pos += length($p // '');
        my ($orig, $new) = (0, 0);
        for my $seg (@segments) {
            my ($len, $text) = @$seg;
            if ($pos >= $orig + $len) {
                $new += length $text;
            } elsif ($pos > $orig) {
                my $o = $pos - $orig;
                $new += $o < length $text ? $o : length $text;
            }
            $orig += $len;
        }
        push @cuts, $new;
    }
    my @out;
    my $prev = 0;
    for my $cut (@cuts, length $wire) {
        push @out, substr($wire, $prev, $cut - $prev);
        $prev = $cut;
    }
    return \@out;
}

# The block's requests: a list of requests, each a list of packets
# { value => $bytes, delay_before => $secs }.  Several requests are sent on
# separate connections; pipelined requests form one request.
sub get_req_from_block ($block) {
    my $name = $block->name;
    my @req_list;

    if (defined $block->raw_request) {
        my $raw = $block->raw_request;
        push @req_list, ref $raw eq 'ARRAY'
            ? [map { { value => $_ } } @$raw]
            : [{ value => $raw }];
        return \@req_list;
    }

    my $request;
    if (defined $block->request_eval) {
        Test::More::diag("$name - request_eval DEPRECATED. Use request eval instead.");
        $request = eval $block->request_eval;
        warn $@ if $@;
    } else {
        $request = $block->request;
        if (defined $request && !ref $request) {
            # leading comment lines and whitespace
            1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;
        }
    }

    my $more_headers = $block->more_headers || '';
    my $headers_for = sub ($i, $what) {
        return parse_more_headers($more_headers) unless ref $more_headers eq 'ARRAY';
        my $hdr = $more_headers->[$i];
        bail_out("--- more_headers lacks data for the $what") unless defined $hdr;
        return parse_more_headers($hdr);
    };

    if ($block->pipelined_requests) {
        my $reqs = $block->pipelined_requests;
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $reqs eq 'ARRAY';
        my $wire = '';
        for my $i (0 .. $#$reqs) {
            my ($hdr, $chunked) = $headers_for->($i, "$i pipelined request");
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            $wire .= build_request($name, $hdr, $chunked, $conn, [$reqs->[$i]])->[0];
        }
        push @req_list, [{ value => $wire }];
        return \@req_list;
    }

    if (!ref $request) {
        my ($hdr, $chunked) = $headers_for->(0, 'request');
        my $wire = build_request($name, $hdr, $chunked, 'close', [$request]);
        push @req_list, [{ value => $wire->[0] }];

    } elsif (ref $request eq 'ARRAY') {
        for my $i (0 .. $#$request) {
            my $one = $request->[$i];
            my ($hdr, $chunked) = $headers_for->($i, "${i}th request");
            if (!ref $one) {
                my $wire = build_request($name, $hdr, $chunked, 'close', [$one]);
                push @req_list, [{ value => $wire->[0] }];

            } elsif (ref $one eq 'ARRAY') {
                # a request split into packets
                my @packets;
                for my $p (@$one) {
                    if (!ref $p) {
                        push @packets, { value => $p };
                    } elsif (ref $p eq 'HASH') {
                        push @packets, { %$p };
                    } else {
                        bail_out("$name - Invalid syntax. $p should be a string or hash with value.");
                    }
                }
                my $wire = build_request($name, $hdr, $chunked, 'close',
                                         [map { $_->{value} } @packets]);
                $packets[$_]{value} = $wire->[$_] for 0 .. $#packets;
                push @req_list, \@packets;

            } else {
                bail_out("$name - Invalid syntax. $one should be a string or an array of packets.");
            }
        }
    } else {
        bail_out("$name - invalid ---request : MUST be string or array of requests");
    }

    return \@req_list;
}

#----------------------------------------------------------------------------
# Sending
#----------------------------------------------------------------------------

# Connect to nginx, retrying while it comes up (valgrind can be slow), with
# the back-off of the real harness.
sub connect_server ($name, $timeout, $addr) {
    my $port = $Test::Nginx::Lite::Util::ServerPortForClient;
    my $sleep = $Test::Nginx::Lite::Util::TestNginxSleep;
    my $total = $TotalConnectingTimeouts ? 20 : 50;
    for (my $tries = 1; ; $tries++) {
        my $sock = IO::Socket::INET->new(
            PeerAddr => $addr, PeerPort => $port, Proto => 'tcp',
            Timeout => $timeout,
        );
        return $sock if $sock;
        my $err = $!;

        # No point in waiting when the nginx we started is gone.
        my $pid = $Test::Nginx::Lite::Util::NginxPid;
        my $gone = 0;
        if (defined $Test::Nginx::Lite::Util::ValgrindChild) {
            my $r = waitpid $Test::Nginx::Lite::Util::ValgrindChild, WNOHANG;
            $gone = $r != 0;
        } elsif ($pid) {
            $gone = !is_running($pid);
        }
        if ($gone) {
            warn "WARNING: the nginx process $pid is already gone.\n";
            fail_no_ending("$name - Can't connect to $addr:$port: $err (aborted)\n");
            return undef;
        }

        if ($tries > $total) {
            my $msg = "$name - Can't connect to $addr:$port: $err (aborted)\n";
            if (++$TotalConnectingTimeouts < 3) {
                fail_no_ending($msg);
            } else {
                bail_out($msg);
            }
            return undef;
        }

        my $wait = ($sleep + $sleep * $tries) * $tries / 2;
        $wait = 1 if $wait >= 1;
        if ($wait >= 0.6) {
            warn "$name - Can't connect to $addr:$port: $err\n";
            warn "\tRetry connecting after $wait sec\n" if $tries < $total;
        }
        sleep $wait;
    }
}

# Send one request (list of packets) and read the response until the
# server closes the connection.  $timeout is an inactivity timeout, as in
# the real harness: when no I/O happens for $timeout seconds the socket is
# closed and, unless the block has --- abort, a test fails with
# "ERROR: client socket timed out - <name>".  Whatever was received so far
# is returned and checked as usual in both cases.
sub send_request ($req, $middle_delay, $timeout, $block) {
    my $name = $block->name;
    my @bits = @$req;
    my $head_req = (join '', map { $_->{value} } @bits) =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $addr = $block->server_addr_for_client
        // $Test::Nginx::Lite::Util::ServerAddr;
    my $sock = connect_server($name, $timeout, $addr) or return (undef, $head_req);
    $sock->blocking(0);

    my $resp = '';
    my $wbuf = (shift @bits)->{value} // '';
    my $woff = 0;
    my $writing = 1;
    my $fdset = '';
    vec($fdset, fileno($sock), 1) = 1;

    IO: while (1) {
        my ($rout, $wout) = ($fdset, $writing ? $fdset : undef);
        my $nfound = select $rout, $wout, undef, $timeout;
        if ($nfound < 0) {
            next IO if $!{EINTR};
            warn "WARNING: $name - select() failed: $!\n";
            close $sock;
            last IO;
        }
        if ($nfound == 0) {
            # timed out
            close $sock;
            if (!defined $block->abort) {
                fail_no_ending("ERROR: client socket timed out - $name\n");
            } else {
                sleep 0.005;
            }
            last IO;
        }

        if ($writing && vec($wout, fileno($sock), 1)) {
            WRITE: while (1) {
                my $rest = length($wbuf) - $woff;
                if ($rest > 0) {
                    my $n = syswrite $sock, $wbuf, $rest, $woff;
                    if (!defined $n) {
                        last WRITE if $! == EAGAIN || $! == EWOULDBLOCK;
                        my $msg = "write failed: $!";
                        warn "$msg\n";
                        $resp = $msg if $resp eq '';
                        close $sock;
                        last IO;
                    }
                    $woff += $n;
                    next WRITE;
                }
                my $next = shift @bits;
                if (!$next) {
                    $writing = 0;
                    if (defined(my $how = $block->shutdown)) {
                        $how = 1 if $how =~ /^$/s;
                        shutdown $sock, $how;
                    }
                    last WRITE;
                }
                ($wbuf, $woff) = ($next->{value} // '', 0);
                my $delay = $next->{delay_before} // $middle_delay;
                sleep $delay if $delay;
            }
        }

        if (vec($rout, fileno($sock), 1)) {
            while (1) {
                my $buf;
                my $n = sysread $sock, $buf, 1024;
                if (!defined $n) {
                    next IO if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                    warn "WARNING: $name - HTTP response read failure: $!";
                    close $sock;
                    last IO;
                }
                if ($n == 0) {    # connection closed by nginx
                    close $sock;
                    last IO;
                }
                $resp .= $buf;
            }
        }
    }

    return ($resp, $head_req);
}

#----------------------------------------------------------------------------
# Response parsing
#----------------------------------------------------------------------------

# Returns (HTTP::Response, raw header string, bytes left after the
# response).  A chunked body that is truncated or malformed fails a test
# and returns nothing at all (so the status code and body checks fail too),
# exactly like the real harness.
sub parse_response ($name, $raw_resp, $head_req) {
    my $raw_headers = $raw_resp =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw_resp);
    my $left;

    my $code = $res->code;
    if ($code && $code !~ /^\d+$/) {
        undef $code;
        $res->code(undef);
    }
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');

    if (defined $enc && $enc eq 'chunked') {
        my $raw = $res->content // '';
        my $decoded = '';
        while (1) {
            if ($raw =~ /\G 0 [\ \t]* \r\n \r\n /gcsx) {
                $left = $1 if $raw =~ /\G (.+) /gcsx;
                last;
            }
            if ($raw =~ /\G [\ \t]* ([A-Fa-f0-9]+) [\ \t]* \r\n /gcsx) {
                my $size = hex $1;
                if (length($raw) - pos($raw) < $size) {
                    fail_no_ending("$name - invalid chunked data received "
                                   . "(not enought octets for the data section)");
                    return;
                }
                $decoded .= substr $raw, pos($raw), $size;
                pos($raw) += $size;
                if ($raw !~ /\G\r\n/gcs) {
                    fail_no_ending("$name - invalid chunked data received (expected CRLF).");
                    return;
                }
            } elsif ($raw =~ /\G(.+)/gcs) {
                fail_no_ending("$name - invalid chunked body received: $1");
                return;
            } else {
                fail_no_ending("$name - no last chunk found - $raw");
                return;
            }
        }
        $res->content($decoded);

    } elsif (defined $len && $len ne '' && $len >= 0) {
        my $raw = $res->content // '';
        if (length $raw < $len) {
            warn "WARNING: $name - response body truncated: $len expected, but got ",
                 length $raw, "\n" unless $head_req;
        } elsif (length $raw > $len) {
            $left = substr $raw, $len;
            $res->content(substr $raw, 0, $len);
        }
    }

    return ($res, $raw_headers, $left);
}

1;
