package Test::Nginx::Socket;

# Loader for Test::Nginx::Socket.
#
# The project's .t files say "use Test::Nginx::Socket ...".  When the real
# module (openresty/test-nginx, from CPAN) is installed anywhere in @INC
# besides this t/lib directory, that one is loaded; otherwise the minimal
# re-implementation in t/lib/Test/Nginx/Lite/ is.  Set TEST_NGINX_USE_LITE=1
# to force the re-implementation.  See t/lib/README.md.

use strict;
use warnings;

use Cwd ();
use File::Basename ();
use File::Spec ();

BEGIN {
    # t/lib, i.e. the @INC entry this file was found through
    my $here = Cwd::abs_path(File::Spec->catdir(
        File::Basename::dirname(__FILE__), File::Spec->updir, File::Spec->updir));

    my $real;
    unless ($ENV{TEST_NGINX_USE_LITE}) {
        for my $dir (@INC) {
            next if ref $dir;
            my $abs = Cwd::abs_path($dir) // next;
            next if $abs eq $here;
            my $file = File::Spec->catfile($dir, 'Test', 'Nginx', 'Socket.pm');
            if (-f $file) {
                $real = $file;
                last;
            }
        }
    }

    if ($real) {
        # Compile the real module in place of this file.
        $INC{'Test/Nginx/Socket.pm'} = $real;
        my $ok = do $real;
        die "failed to load the real Test::Nginx::Socket from $real: ",
            ($@ || $! || 'it did not return a true value'), "\n" unless $ok;
        no warnings 'once';
        $Test::Nginx::Socket::Implementation = "real ($real)";
    } else {
        require Test::Nginx::Lite::Socket;
    }
}

1;
