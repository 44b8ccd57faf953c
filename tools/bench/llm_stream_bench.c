
/*
 * Copyright (C) The ngx_llm_router authors
 */


/*
 * llm-stream-bench: the streaming client of the router's benchmark.  It
 * keeps CONCURRENCY streaming chat completions in flight against an
 * OpenAI-compatible endpoint on the loopback interface until TOTAL are
 * done, and prints one line of JSON with, over the requests that ended
 * well (HTTP 200 and "data: [DONE]"), the percentiles of
 *
 *   ttfb_us           start of the request -> first byte of the response
 *   first_content_us  start -> first event with a non-empty "content"
 *   gap_us            time between successive "data:" events of a stream
 *
 * One libcurl multi handle driven by epoll (curl_multi_socket_action), one
 * HTTP/1.1 connection per stream.  Server-sent events are parsed a byte at
 * a time by a small state machine, so events may be split across reads
 * anywhere; nothing of a body is kept, only a few bytes of state and the
 * stream's gaps.
 *
 * With --hold all the streams start at once; when every one has had its
 * first content (or failed) the line "READY <n>" goes to standard error
 * and, atomically, to the --ready-file, so that a driver can measure the
 * server while all the streams are open.
 */


#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>


#define BENCH_DEFAULT_MODEL     "bench"
#define BENCH_DEFAULT_PROMPT    64
#define BENCH_DEFAULT_TIMEOUT   60.0

#define BENCH_MAX_CONCURRENCY   100000
#define BENCH_MAX_TOTAL         100000000L
#define BENCH_MAX_BODY          (64L * 1024 * 1024)
#define BENCH_MAX_ERRORS_SHOWN  10
#define BENCH_EPOLL_EVENTS      512
#define BENCH_MAX_WAIT_MS       1000

#define bench_append_literal(p, size, len, s)                                 \
    bench_append(p, size, len, s, sizeof(s) - 1)

#define BENCH_OK                0
#define BENCH_FAILED            1
#define BENCH_USAGE             2

/* the SSE line parser's states */
#define BENCH_SSE_LINE_START    0
#define BENCH_SSE_FIELD         1
#define BENCH_SSE_VALUE_FIRST   2
#define BENCH_SSE_VALUE         3
#define BENCH_SSE_IGNORE        4

/* the "content" matcher: 0..8 inside "\"content\"", then these */
#define BENCH_CM_KEY_LEN        9
#define BENCH_CM_AFTER_KEY      9
#define BENCH_CM_AFTER_COLON    10
#define BENCH_CM_AFTER_QUOTE    11


typedef struct {
    int64_t     *v;
    size_t       n;
    size_t       size;
} bench_array_t;


typedef struct bench_s  bench_t;


typedef struct {
    CURL            *easy;
    bench_t         *bench;
    long             id;            /* the request's number, from 0 */
    int              slot;

    int64_t          start;         /* monotonic microseconds */
    int64_t          ttfb;          /* -1: not yet */
    int64_t          first_content; /* -1: not yet */
    int64_t          last_event;    /* -1: no event yet */

    uint64_t         bytes;
    uint64_t         events;
    bench_array_t    gaps;

    /* the SSE parser */
    unsigned         state;
    unsigned         skip_lf;       /* the previous byte was a CR */
    unsigned         is_data;       /* the current line is a data line */
    unsigned         cm;            /* the "content" matcher */
    size_t           field_len;
    size_t           value_len;
    char             field[4];
    char             value[6];

    /* the event being read */
    unsigned         ev_data_lines;
    unsigned         ev_done_lines;
    unsigned         ev_content;

    unsigned         done;          /* "data: [DONE]" seen */
    unsigned         reached;       /* first content seen (for --hold) */
} bench_stream_t;


typedef struct {
    long         code;
    uint64_t     n;
} bench_status_t;


typedef struct {
    const char          *url;
    const char          *body_file;
    const char          *model;
    const char          *ready_file;
    const char          *label;
    long                 concurrency;
    long                 total;
    long                 prompt_bytes;
    double               timeout;
    int                  hold;
    int                  total_set;
    int                  prompt_set;
    int                  localhost;
} bench_options_t;


struct bench_s {
    bench_options_t     *opt;

    CURLM               *multi;
    int                  epfd;
    int64_t              timer;         /* curl's deadline, -1: none */

    char                *body;
    size_t               body_len;
    struct curl_slist   *headers;
    struct curl_slist   *user_headers;

    bench_stream_t      *streams;       /* concurrency slots */
    int                 *free_slots;
    int                  n_free;

    long                 started;
    long                 finished;
    long                 ok;
    uint64_t             done;
    uint64_t             events;
    uint64_t             bytes;
    long                 errors_shown;

    /* --hold */
    long                 waiting;       /* started, no content, not over */
    long                 reached;       /* had their first content */
    long                 reached_failed;
    int                  ready;

    bench_status_t      *status;
    size_t               n_status;

    bench_array_t        ttfb;
    bench_array_t        first_content;
    bench_array_t        gaps;

    int64_t              t_start;
    int64_t              t_end;
    int                  fatal;
};


static void bench_usage(FILE *f);
static void bench_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int bench_parse_long(const char *s, long min, long max, long *v);
static int bench_check_url(const char *url, int *localhost);
static void bench_raise_nofile(long concurrency);
static int bench_make_body(bench_t *b);
static int bench_make_headers(bench_t *b);
static int bench_read_file(const char *path, char **data, size_t *len);
static int bench_json_string(char **p, size_t *size, size_t *len,
    const char *s);
static int bench_append(char **p, size_t *size, size_t *len, const char *s,
    size_t n);
static int bench_run(bench_t *b);
static int bench_start(bench_t *b);
static void bench_finish(bench_t *b, CURL *easy, CURLcode result);
static void bench_check_done(bench_t *b);
static void bench_check_ready(bench_t *b);
static int bench_write_ready(const char *path, long n);
static void bench_cleanup(bench_t *b);
static int bench_socket_cb(CURL *easy, curl_socket_t fd, int what,
    void *data, void *socketp);
static int bench_timer_cb(CURLM *multi, long timeout_ms, void *data);
static curl_socket_t bench_open_socket(void *data, curlsocktype purpose,
    struct curl_sockaddr *addr);
static size_t bench_header_cb(char *p, size_t size, size_t n, void *data);
static size_t bench_write_cb(char *p, size_t size, size_t n, void *data);
static void bench_sse(bench_stream_t *s, const u_char *p, size_t n,
    int64_t now);
static void bench_sse_end_line(bench_stream_t *s);
static void bench_sse_dispatch(bench_stream_t *s, int64_t now);
static void bench_content_byte(bench_stream_t *s, u_char c);
static int bench_array_push(bench_array_t *a, int64_t v);
static int bench_array_append(bench_array_t *a, bench_array_t *from);
static int bench_count_status(bench_t *b, long code);
static void bench_print(bench_t *b);
static void bench_print_string(const char *s);
static void bench_print_stats(const char *name, bench_array_t *a);
static int bench_cmp_int64(const void *one, const void *two);
static int bench_cmp_status(const void *one, const void *two);
static int64_t bench_now(void);


static const char  *bench_progname = "llm-stream-bench";

static const char   bench_filler[] =
    "The quick brown fox jumps over the lazy dog while the router streams "
    "tokens to many clients at once. ";


static void
bench_usage(FILE *f)
{
    fprintf(f,
"Usage: llm-stream-bench -u URL [-c CONCURRENCY] [-n TOTAL]\n"
"           [-p PROMPT_BYTES | -b BODY_FILE] [-m MODEL] [-H 'Name: value']...\n"
"           [-t TIMEOUT_S] [--hold] [--ready-file PATH] [--label TEXT]\n"
"\n"
"Keeps CONCURRENCY streaming chat completions in flight against URL until\n"
"TOTAL are done; prints one line of JSON with the time to first byte, to\n"
"first content and between events (microseconds) over the requests that\n"
"ended with HTTP 200 and \"data: [DONE]\".\n"
"\n"
"Options:\n"
"  -u, --url URL            http://127.0.0.1[:PORT]/... or\n"
"                           http://localhost[:PORT]/... (nothing else)\n"
"  -c, --concurrency N      requests in flight (default: 1)\n"
"  -n, --total N            requests in all (default: CONCURRENCY)\n"
"  -p, --prompt-bytes N     a user message of N bytes of filler text\n"
"                           (default: %d)\n"
"  -b, --body-file FILE     send FILE's bytes as the body instead\n"
"  -m, --model NAME         the request's model (default: %s)\n"
"  -H, --header 'N: V'      an extra request header (repeatable)\n"
"  -t, --timeout SECONDS    a request's total time limit (default: %g)\n"
"      --hold               start all CONCURRENCY requests at once (TOTAL\n"
"                           is CONCURRENCY); when each has had its first\n"
"                           content or failed, write \"READY <n>\" (n: the\n"
"                           streams with content and not failed) to\n"
"                           standard error and to --ready-file\n"
"      --ready-file PATH    with --hold: write the READY line to PATH\n"
"                           (a temporary file renamed over it)\n"
"      --label TEXT         the \"label\" of the JSON line\n"
"  -h, --help               this help\n"
"\n"
"Exit status: 0 all requests ok, 1 some failed, 2 bad usage or setup.\n",
            BENCH_DEFAULT_PROMPT, BENCH_DEFAULT_MODEL, BENCH_DEFAULT_TIMEOUT);
}


int
main(int argc, char **argv)
{
    int               c, rc;
    char             *end;
    bench_t           b;
    bench_options_t   opt;

    static const struct option  longopts[] = {
        { "url",          required_argument, NULL, 'u' },
        { "concurrency",  required_argument, NULL, 'c' },
        { "total",        required_argument, NULL, 'n' },
        { "prompt-bytes", required_argument, NULL, 'p' },
        { "body-file",    required_argument, NULL, 'b' },
        { "model",        required_argument, NULL, 'm' },
        { "header",       required_argument, NULL, 'H' },
        { "timeout",      required_argument, NULL, 't' },
        { "hold",         no_argument,       NULL, 'O' },
        { "ready-file",   required_argument, NULL, 'R' },
        { "label",        required_argument, NULL, 'L' },
        { "help",         no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    memset(&b, 0, sizeof(bench_t));
    memset(&opt, 0, sizeof(bench_options_t));

    opt.model = BENCH_DEFAULT_MODEL;
    opt.label = "";
    opt.concurrency = 1;
    opt.prompt_bytes = BENCH_DEFAULT_PROMPT;
    opt.timeout = BENCH_DEFAULT_TIMEOUT;

    b.opt = &opt;
    b.epfd = -1;
    b.timer = -1;

    rc = BENCH_USAGE;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        bench_error("curl_global_init() failed");
        return BENCH_USAGE;
    }

    while ((c = getopt_long(argc, argv, "u:c:n:p:b:m:H:t:h", longopts,
                            NULL))
           != -1)
    {
        switch (c) {

        case 'u':
            opt.url = optarg;
            break;

        case 'c':
            if (bench_parse_long(optarg, 1, BENCH_MAX_CONCURRENCY,
                                 &opt.concurrency)
                != 0)
            {
                bench_error("invalid concurrency \"%s\" (1 to %d)", optarg,
                            BENCH_MAX_CONCURRENCY);
                goto done;
            }
            break;

        case 'n':
            if (bench_parse_long(optarg, 1, BENCH_MAX_TOTAL, &opt.total)
                != 0)
            {
                bench_error("invalid total \"%s\" (1 to %ld)", optarg,
                            BENCH_MAX_TOTAL);
                goto done;
            }
            opt.total_set = 1;
            break;

        case 'p':
            if (bench_parse_long(optarg, 0, BENCH_MAX_BODY,
                                 &opt.prompt_bytes)
                != 0)
            {
                bench_error("invalid prompt size \"%s\" (0 to %ld)", optarg,
                            BENCH_MAX_BODY);
                goto done;
            }
            opt.prompt_set = 1;
            break;

        case 'b':
            opt.body_file = optarg;
            break;

        case 'm':
            opt.model = optarg;
            break;

        case 'H':
            if (strchr(optarg, ':') == NULL && strchr(optarg, ';') == NULL) {
                bench_error("invalid header \"%s\" (\"Name: value\")",
                            optarg);
                goto done;
            }

            {
                struct curl_slist  *l;

                l = curl_slist_append(b.user_headers, optarg);
                if (l == NULL) {
                    bench_error("out of memory");
                    goto done;
                }
                b.user_headers = l;
            }
            break;

        case 't':
            errno = 0;
            opt.timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end != '\0'
                || !(opt.timeout > 0) || opt.timeout > 86400)
            {
                bench_error("invalid timeout \"%s\" (seconds, up to 86400)",
                            optarg);
                goto done;
            }
            break;

        case 'O':
            opt.hold = 1;
            break;

        case 'R':
            opt.ready_file = optarg;
            break;

        case 'L':
            opt.label = optarg;
            break;

        case 'h':
            bench_usage(stdout);
            rc = BENCH_OK;
            goto done;

        default:
            bench_usage(stderr);
            goto done;
        }
    }

    if (optind < argc) {
        bench_error("unexpected argument \"%s\"", argv[optind]);
        goto done;
    }

    if (opt.url == NULL) {
        bench_error("no URL (-u)");
        bench_usage(stderr);
        goto done;
    }

    if (bench_check_url(opt.url, &opt.localhost) != 0) {
        bench_error("refusing URL \"%s\": only http://127.0.0.1[:PORT]/... "
                    "or http://localhost[:PORT]/... may be benchmarked",
                    opt.url);
        goto done;
    }

    if (opt.body_file && opt.prompt_set) {
        bench_error("-p and -b exclude each other");
        goto done;
    }

    if (opt.ready_file && !opt.hold) {
        bench_error("--ready-file needs --hold");
        goto done;
    }

    if (opt.hold) {
        if (opt.total_set && opt.total != opt.concurrency) {
            bench_error("with --hold TOTAL is CONCURRENCY (-n %ld, -c %ld)",
                        opt.total, opt.concurrency);
            goto done;
        }

        opt.total = opt.concurrency;

    } else if (!opt.total_set) {
        opt.total = opt.concurrency;
    }

    if (opt.concurrency > opt.total) {
        opt.concurrency = opt.total;
    }

    (void) signal(SIGPIPE, SIG_IGN);

    bench_raise_nofile(opt.concurrency);

    if (bench_make_body(&b) != 0 || bench_make_headers(&b) != 0) {
        goto done;
    }

    rc = bench_run(&b);

done:

    bench_cleanup(&b);

    if (b.epfd != -1) {
        close(b.epfd);
    }

    curl_global_cleanup();

    return rc;
}


static void
bench_cleanup(bench_t *b)
{
    long             i;
    bench_stream_t  *s;

    if (b->streams) {
        for (i = 0; i < b->opt->concurrency; i++) {
            s = &b->streams[i];

            if (s->easy) {
                if (b->multi) {
                    (void) curl_multi_remove_handle(b->multi, s->easy);
                }

                curl_easy_cleanup(s->easy);
            }

            free(s->gaps.v);
        }
    }

    if (b->multi) {
        curl_multi_cleanup(b->multi);
    }

    if (b->epfd != -1) {
        close(b->epfd);
    }

    curl_slist_free_all(b->headers);
    curl_slist_free_all(b->user_headers);
    free(b->body);
    free(b->streams);
    free(b->free_slots);
    free(b->status);
    free(b->ttfb.v);
    free(b->first_content.v);
    free(b->gaps.v);
}


static void
bench_error(const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "%s: ", bench_progname);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


static int
bench_parse_long(const char *s, long min, long max, long *v)
{
    long   n;
    char  *end;

    errno = 0;
    n = strtol(s, &end, 10);

    if (errno || end == s || *end != '\0' || n < min || n > max) {
        return -1;
    }

    *v = n;

    return 0;
}


/*
 * http://127.0.0.1[:PORT][/...] or http://localhost[:PORT][/...]: the
 * authority is exactly that host and an optional port, nothing else (no
 * user info, no other spelling of an address).  The socket callback also
 * refuses to connect anywhere but 127.0.0.1.
 */

static int
bench_check_url(const char *url, int *localhost)
{
    long         port;
    size_t       len;
    const char  *host, *end, *p;

    if (strncasecmp(url, "http://", 7) != 0) {
        return -1;
    }

    host = url + 7;
    end = host + strcspn(host, "/?#");

    for (p = url; *p; p++) {
        if ((u_char) *p <= ' ' || *p == 0x7f) {
            return -1;
        }
    }

    len = end - host;

    if (len >= 9 && memcmp(host, "127.0.0.1", 9) == 0) {
        *localhost = 0;

    } else if (len >= 9 && strncasecmp(host, "localhost", 9) == 0) {
        *localhost = 1;

    } else {
        return -1;
    }

    p = host + 9;

    if (p == end) {
        return 0;
    }

    if (*p++ != ':' || p == end || end - p > 5) {
        return -1;
    }

    port = 0;

    while (p < end) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        port = port * 10 + (*p++ - '0');
    }

    if (port < 1 || port > 65535) {
        return -1;
    }

    return 0;
}


static void
bench_raise_nofile(long concurrency)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        bench_error("getrlimit(RLIMIT_NOFILE) failed: %s", strerror(errno));
        return;
    }

    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;

        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            bench_error("setrlimit(RLIMIT_NOFILE, %llu) failed: %s",
                        (unsigned long long) rl.rlim_max, strerror(errno));
            (void) getrlimit(RLIMIT_NOFILE, &rl);
        }
    }

    if (rl.rlim_cur != RLIM_INFINITY
        && (unsigned long long) concurrency + 64 > rl.rlim_cur)
    {
        bench_error("warning: %ld streams but only %llu file descriptors",
                    concurrency, (unsigned long long) rl.rlim_cur);
    }
}


static int
bench_make_body(bench_t *b)
{
    long      i;
    size_t    size, len, n;
    bench_options_t  *opt;

    opt = b->opt;

    if (opt->body_file) {
        return bench_read_file(opt->body_file, &b->body, &b->body_len);
    }

    size = 0;
    len = 0;

    if (bench_append_literal(&b->body, &size, &len, "{\"model\":") != 0
        || bench_json_string(&b->body, &size, &len, opt->model) != 0
        || bench_append_literal(&b->body, &size, &len,
                                ",\"stream\":true,\"messages\":[{\"role\":"
                                "\"user\",\"content\":\"")
           != 0)
    {
        goto failed;
    }

    for (i = 0; i < opt->prompt_bytes; i += n) {
        n = opt->prompt_bytes - i;

        if (n > sizeof(bench_filler) - 1) {
            n = sizeof(bench_filler) - 1;
        }

        if (bench_append(&b->body, &size, &len, bench_filler, n) != 0) {
            goto failed;
        }
    }

    if (bench_append_literal(&b->body, &size, &len, "\"}]}") != 0) {
        goto failed;
    }

    b->body_len = len;

    return 0;

failed:

    bench_error("out of memory");
    return -1;
}


/*
 * Content-Type: application/json unless a -H gives one, no "Expect:
 * 100-continue" (a large body would wait for it), then the -H headers.
 */

static int
bench_make_headers(bench_t *b)
{
    int                 ct;
    struct curl_slist  *l, *h;

    ct = 0;

    for (h = b->user_headers; h; h = h->next) {
        if (strncasecmp(h->data, "Content-Type:", 13) == 0
            || strncasecmp(h->data, "Content-Type;", 13) == 0)
        {
            ct = 1;
        }
    }

    l = NULL;

    if (!ct) {
        l = curl_slist_append(l, "Content-Type: application/json");
        if (l == NULL) {
            goto failed;
        }
    }

    h = curl_slist_append(l, "Expect:");
    if (h == NULL) {
        goto failed;
    }

    l = h;

    for (h = b->user_headers; h; h = h->next) {
        struct curl_slist  *n;

        n = curl_slist_append(l, h->data);
        if (n == NULL) {
            goto failed;
        }

        l = n;
    }

    b->headers = l;

    return 0;

failed:

    curl_slist_free_all(l);
    bench_error("out of memory");
    return -1;
}


static int
bench_read_file(const char *path, char **data, size_t *len)
{
    FILE    *f;
    char    *p;
    size_t   n;
    struct stat  st;

    f = fopen(path, "rb");
    if (f == NULL) {
        bench_error("cannot open \"%s\": %s", path, strerror(errno));
        return -1;
    }

    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)
        || st.st_size > BENCH_MAX_BODY)
    {
        bench_error("\"%s\" is not a regular file of at most %ld bytes",
                    path, BENCH_MAX_BODY);
        fclose(f);
        return -1;
    }

    p = malloc(st.st_size + 1);
    if (p == NULL) {
        bench_error("out of memory");
        fclose(f);
        return -1;
    }

    n = fread(p, 1, st.st_size, f);

    if (ferror(f) || n != (size_t) st.st_size) {
        bench_error("cannot read \"%s\"", path);
        free(p);
        fclose(f);
        return -1;
    }

    fclose(f);

    *data = p;
    *len = n;

    return 0;
}


static int
bench_json_string(char **p, size_t *size, size_t *len, const char *s)
{
    char  esc[8];

    if (bench_append_literal(p, size, len, "\"") != 0) {
        return -1;
    }

    for ( /* void */ ; *s; s++) {

        if (*s == '"' || *s == '\\') {
            esc[0] = '\\';
            esc[1] = *s;

            if (bench_append(p, size, len, esc, 2) != 0) {
                return -1;
            }

        } else if ((u_char) *s < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", (u_char) *s);

            if (bench_append(p, size, len, esc, 6) != 0) {
                return -1;
            }

        } else if (bench_append(p, size, len, s, 1) != 0) {
            return -1;
        }
    }

    return bench_append_literal(p, size, len, "\"");
}


static int
bench_append(char **p, size_t *size, size_t *len, const char *s, size_t n)
{
    char    *np;
    size_t   ns;

    if (*len + n + 1 > *size) {
        ns = *size ? *size : 256;

        while (*len + n + 1 > ns) {
            ns *= 2;
        }

        np = realloc(*p, ns);
        if (np == NULL) {
            return -1;
        }

        *p = np;
        *size = ns;
    }

    memcpy(*p + *len, s, n);
    *len += n;
    (*p)[*len] = '\0';

    return 0;
}


static int
bench_run(bench_t *b)
{
    int                  i, n, rc, running;
    long                 c;
    int64_t              now, wait;
    struct epoll_event   events[BENCH_EPOLL_EVENTS];

    c = b->opt->concurrency;

    b->streams = calloc(c, sizeof(bench_stream_t));
    b->free_slots = calloc(c, sizeof(int));

    if (b->streams == NULL || b->free_slots == NULL) {
        bench_error("out of memory");
        return BENCH_USAGE;
    }

    for (i = 0; i < c; i++) {
        b->free_slots[i] = c - 1 - i;
    }

    b->n_free = c;

    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd == -1) {
        bench_error("epoll_create1() failed: %s", strerror(errno));
        return BENCH_USAGE;
    }

    b->multi = curl_multi_init();
    if (b->multi == NULL) {
        bench_error("curl_multi_init() failed");
        return BENCH_USAGE;
    }

    if (curl_multi_setopt(b->multi, CURLMOPT_SOCKETFUNCTION, bench_socket_cb)
        || curl_multi_setopt(b->multi, CURLMOPT_SOCKETDATA, b)
        || curl_multi_setopt(b->multi, CURLMOPT_TIMERFUNCTION, bench_timer_cb)
        || curl_multi_setopt(b->multi, CURLMOPT_TIMERDATA, b)
        || curl_multi_setopt(b->multi, CURLMOPT_PIPELINING,
                             (long) CURLPIPE_NOTHING)
        || curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, c + 16))
    {
        bench_error("curl_multi_setopt() failed");
        return BENCH_USAGE;
    }

    b->t_start = bench_now();

    while (b->started < c) {
        if (bench_start(b) != 0) {
            return BENCH_USAGE;
        }
    }

    bench_check_ready(b);

    while (b->finished < b->opt->total) {

        now = bench_now();

        if (b->timer == -1) {
            wait = BENCH_MAX_WAIT_MS;

        } else if (b->timer <= now) {
            wait = 0;

        } else {
            wait = (b->timer - now + 999) / 1000;

            if (wait > BENCH_MAX_WAIT_MS) {
                wait = BENCH_MAX_WAIT_MS;
            }
        }

        n = epoll_wait(b->epfd, events, BENCH_EPOLL_EVENTS, (int) wait);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            bench_error("epoll_wait() failed: %s", strerror(errno));
            return BENCH_USAGE;
        }

        for (i = 0; i < n; i++) {
            int  mask;

            mask = 0;

            if (events[i].events & (EPOLLIN | EPOLLHUP)) {
                mask |= CURL_CSELECT_IN;
            }

            if (events[i].events & EPOLLOUT) {
                mask |= CURL_CSELECT_OUT;
            }

            if (events[i].events & EPOLLERR) {
                mask |= CURL_CSELECT_ERR;
            }

            (void) curl_multi_socket_action(b->multi, events[i].data.fd,
                                            mask, &running);
        }

        if (b->timer != -1 && b->timer <= bench_now()) {
            b->timer = -1;
            (void) curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0,
                                            &running);
        }

        bench_check_done(b);

        if (b->fatal) {
            return BENCH_USAGE;
        }

        bench_check_ready(b);
    }

    b->t_end = bench_now();

    bench_print(b);

    rc = (b->ok == b->opt->total) ? BENCH_OK : BENCH_FAILED;

    return rc;
}


static int
bench_start(bench_t *b)
{
    CURL             *easy;
    CURLcode          e;
    bench_stream_t   *s;
    bench_options_t  *opt;

    opt = b->opt;

    if (b->n_free == 0 || b->started >= opt->total) {
        return 0;
    }

    s = &b->streams[b->free_slots[b->n_free - 1]];

    easy = curl_easy_init();
    if (easy == NULL) {
        bench_error("curl_easy_init() failed");
        return -1;
    }

    memset(s, 0, sizeof(bench_stream_t));

    s->easy = easy;
    s->bench = b;
    s->slot = b->free_slots[b->n_free - 1];
    s->id = b->started;
    s->ttfb = -1;
    s->first_content = -1;
    s->last_event = -1;

    e = CURLE_OK;

#define bench_setopt(opt, val)                                               \
    if (e == CURLE_OK) {                                                     \
        e = curl_easy_setopt(easy, opt, val);                                \
    }

    bench_setopt(CURLOPT_URL, opt->url);
    bench_setopt(CURLOPT_PROTOCOLS_STR, "http");
    bench_setopt(CURLOPT_FOLLOWLOCATION, 0L);
    bench_setopt(CURLOPT_PROXY, "");
    bench_setopt(CURLOPT_NOPROXY, "*");
    bench_setopt(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
    bench_setopt(CURLOPT_NOSIGNAL, 1L);
    bench_setopt(CURLOPT_TIMEOUT_MS, (long) (opt->timeout * 1000));
    bench_setopt(CURLOPT_POST, 1L);
    bench_setopt(CURLOPT_POSTFIELDS, b->body);
    bench_setopt(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) b->body_len);
    bench_setopt(CURLOPT_HTTPHEADER, b->headers);
    bench_setopt(CURLOPT_HEADERFUNCTION, bench_header_cb);
    bench_setopt(CURLOPT_HEADERDATA, s);
    bench_setopt(CURLOPT_WRITEFUNCTION, bench_write_cb);
    bench_setopt(CURLOPT_WRITEDATA, s);
    bench_setopt(CURLOPT_OPENSOCKETFUNCTION, bench_open_socket);
    bench_setopt(CURLOPT_OPENSOCKETDATA, b);
    bench_setopt(CURLOPT_PRIVATE, s);

    if (opt->localhost) {
        bench_setopt(CURLOPT_IPRESOLVE, (long) CURL_IPRESOLVE_V4);
    }

#undef bench_setopt

    if (e != CURLE_OK) {
        bench_error("curl_easy_setopt() failed: %s", curl_easy_strerror(e));
        curl_easy_cleanup(easy);
        s->easy = NULL;
        return -1;
    }

    b->n_free--;
    b->started++;
    b->waiting++;

    s->start = bench_now();

    if (curl_multi_add_handle(b->multi, easy) != CURLM_OK) {
        bench_error("curl_multi_add_handle() failed");
        return -1;
    }

    return 0;
}


static void
bench_check_done(bench_t *b)
{
    int       left;
    CURLMsg  *msg;

    while ((msg = curl_multi_info_read(b->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            bench_finish(b, msg->easy_handle, msg->data.result);
        }
    }

    while (b->n_free > 0 && b->started < b->opt->total && !b->fatal) {
        if (bench_start(b) != 0) {
            b->fatal = 1;
        }
    }
}


static void
bench_finish(bench_t *b, CURL *easy, CURLcode result)
{
    int              ok;
    long             code;
    char            *priv;
    bench_stream_t  *s;

    priv = NULL;
    code = 0;

    (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);

    s = (bench_stream_t *) priv;

    if (result == CURLE_OK) {
        /* an event not closed by an empty line before the end */
        if (s->state != BENCH_SSE_LINE_START) {
            bench_sse_end_line(s);
        }

        bench_sse_dispatch(s, bench_now());
    }

    ok = (result == CURLE_OK && code == 200 && s->done);

    if (!s->reached) {
        b->waiting--;

    } else if (!ok) {
        b->reached_failed++;
    }

    b->finished++;
    b->events += s->events;
    b->bytes += s->bytes;
    b->done += s->done;

    if (bench_count_status(b, code) != 0) {
        b->fatal = 1;
    }

    if (ok) {
        b->ok++;

        if (bench_array_push(&b->ttfb, s->ttfb) != 0
            || (s->first_content >= 0
                && bench_array_push(&b->first_content, s->first_content)
                   != 0)
            || bench_array_append(&b->gaps, &s->gaps) != 0)
        {
            b->fatal = 1;
        }

    } else if (b->errors_shown < BENCH_MAX_ERRORS_SHOWN) {
        b->errors_shown++;

        if (result != CURLE_OK) {
            fprintf(stderr, "%s: request %ld: %s (HTTP %ld, %llu events)\n",
                    bench_progname, s->id, curl_easy_strerror(result), code,
                    (unsigned long long) s->events);

        } else if (code != 200) {
            fprintf(stderr, "%s: request %ld: HTTP %ld\n",
                    bench_progname, s->id, code);

        } else {
            fprintf(stderr, "%s: request %ld: no \"data: [DONE]\" "
                    "(%llu events)\n", bench_progname, s->id,
                    (unsigned long long) s->events);
        }
    }

    if (b->fatal) {
        bench_error("out of memory");
    }

    (void) curl_multi_remove_handle(b->multi, easy);
    curl_easy_cleanup(easy);

    free(s->gaps.v);
    s->gaps.v = NULL;
    s->easy = NULL;

    b->free_slots[b->n_free++] = s->slot;
}


static void
bench_check_ready(bench_t *b)
{
    long  n;

    if (!b->opt->hold || b->ready || b->started < b->opt->total) {
        return;
    }

    if (b->waiting > 0) {
        return;
    }

    b->ready = 1;

    n = b->reached - b->reached_failed;

    fprintf(stderr, "READY %ld\n", n);
    fflush(stderr);

    if (b->opt->ready_file) {
        (void) bench_write_ready(b->opt->ready_file, n);
    }
}


static int
bench_write_ready(const char *path, long n)
{
    int    rc;
    FILE  *f;
    char  *tmp;

    if (asprintf(&tmp, "%s.%ld.tmp", path, (long) getpid()) == -1) {
        bench_error("out of memory");
        return -1;
    }

    f = fopen(tmp, "w");
    if (f == NULL) {
        bench_error("cannot create \"%s\": %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }

    rc = fprintf(f, "READY %ld\n", n);

    if (fclose(f) != 0 || rc < 0) {
        bench_error("cannot write \"%s\"", tmp);
        (void) unlink(tmp);
        free(tmp);
        return -1;
    }

    if (rename(tmp, path) != 0) {
        bench_error("cannot rename \"%s\" to \"%s\": %s", tmp, path,
                    strerror(errno));
        (void) unlink(tmp);
        free(tmp);
        return -1;
    }

    free(tmp);

    return 0;
}


static int
bench_socket_cb(CURL *easy, curl_socket_t fd, int what, void *data,
    void *socketp)
{
    int                  op;
    bench_t             *b;
    struct epoll_event   ev;

    (void) easy;
    (void) socketp;

    b = data;

    if (what == CURL_POLL_REMOVE) {
        /* the socket may be closed already: epoll has then forgotten it */
        (void) epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }

    memset(&ev, 0, sizeof(struct epoll_event));

    ev.data.fd = fd;

    if (what & CURL_POLL_IN) {
        ev.events |= EPOLLIN;
    }

    if (what & CURL_POLL_OUT) {
        ev.events |= EPOLLOUT;
    }

    op = EPOLL_CTL_MOD;

    if (epoll_ctl(b->epfd, op, fd, &ev) == -1 && errno == ENOENT) {
        op = EPOLL_CTL_ADD;

        if (epoll_ctl(b->epfd, op, fd, &ev) == -1) {
            bench_error("epoll_ctl(ADD, %d) failed: %s", (int) fd,
                        strerror(errno));
            return -1;
        }
    }

    return 0;
}


static int
bench_timer_cb(CURLM *multi, long timeout_ms, void *data)
{
    bench_t  *b;

    (void) multi;

    b = data;

    if (timeout_ms < 0) {
        b->timer = -1;

    } else {
        b->timer = bench_now() + (int64_t) timeout_ms * 1000;
    }

    return 0;
}


/* the last word on where a connection goes: 127.0.0.1 only */

static curl_socket_t
bench_open_socket(void *data, curlsocktype purpose,
    struct curl_sockaddr *addr)
{
    struct sockaddr_in  *sin;

    (void) data;

    if (purpose != CURLSOCKTYPE_IPCXN || addr->family != AF_INET
        || addr->addrlen < sizeof(struct sockaddr_in))
    {
        return CURL_SOCKET_BAD;
    }

    sin = (struct sockaddr_in *) &addr->addr;

    if (sin->sin_addr.s_addr != htonl(INADDR_LOOPBACK)) {
        return CURL_SOCKET_BAD;
    }

    return socket(addr->family, addr->socktype | SOCK_CLOEXEC,
                  addr->protocol);
}


static size_t
bench_header_cb(char *p, size_t size, size_t n, void *data)
{
    bench_stream_t  *s;

    (void) p;

    s = data;

    if (s->ttfb < 0) {
        s->ttfb = bench_now() - s->start;
    }

    return size * n;
}


static size_t
bench_write_cb(char *p, size_t size, size_t n, void *data)
{
    int64_t          now;
    bench_stream_t  *s;

    s = data;
    n *= size;

    now = bench_now();

    if (s->ttfb < 0) {
        s->ttfb = now - s->start;
    }

    s->bytes += n;

    bench_sse(s, (u_char *) p, n, now);

    return n;
}


/*
 * Server-sent events, a byte at a time: lines end with LF, CR or CRLF; a
 * line "field:value" (one space after the colon is dropped), ":comment",
 * or "field"; an empty line ends an event.  Only "data" lines matter: an
 * event of only "[DONE]" data ends the stream, any other is an event,
 * timed when its empty line arrives.
 */

static void
bench_sse(bench_stream_t *s, const u_char *p, size_t n, int64_t now)
{
    u_char        c;
    const u_char *last;

    for (last = p + n; p < last; p++) {
        c = *p;

        if (s->skip_lf) {
            s->skip_lf = 0;

            if (c == '\n') {
                continue;
            }
        }

        if (c == '\r') {
            s->skip_lf = 1;
            c = '\n';
        }

        switch (s->state) {

        case BENCH_SSE_LINE_START:

            if (c == '\n') {
                bench_sse_dispatch(s, now);
                break;
            }

            s->is_data = 0;
            s->value_len = 0;
            s->cm = 0;

            if (c == ':') {
                s->state = BENCH_SSE_IGNORE;
                break;
            }

            s->field[0] = c;
            s->field_len = 1;
            s->state = BENCH_SSE_FIELD;
            break;

        case BENCH_SSE_FIELD:

            if (c == ':' || c == '\n') {
                s->is_data = (s->field_len == 4
                              && memcmp(s->field, "data", 4) == 0);

                if (c == '\n') {
                    bench_sse_end_line(s);
                    break;
                }

                s->state = s->is_data ? BENCH_SSE_VALUE_FIRST
                                      : BENCH_SSE_IGNORE;
                break;
            }

            if (s->field_len < sizeof(s->field)) {
                s->field[s->field_len] = c;
            }

            if (s->field_len <= sizeof(s->field)) {
                s->field_len++;
            }

            break;

        case BENCH_SSE_VALUE_FIRST:

            s->state = BENCH_SSE_VALUE;

            if (c == ' ') {
                break;
            }

            /* fall through */

        case BENCH_SSE_VALUE:

            if (c == '\n') {
                bench_sse_end_line(s);
                break;
            }

            if (s->value_len < sizeof(s->value)) {
                s->value[s->value_len] = c;
            }

            if (s->value_len <= sizeof(s->value)) {
                s->value_len++;
            }

            if (s->first_content < 0 && !s->ev_content) {
                bench_content_byte(s, c);
            }

            break;

        default: /* BENCH_SSE_IGNORE */

            if (c == '\n') {
                bench_sse_end_line(s);
            }

            break;
        }
    }
}


static void
bench_sse_end_line(bench_stream_t *s)
{
    if (s->is_data) {
        s->ev_data_lines++;

        if (s->value_len == 6 && memcmp(s->value, "[DONE]", 6) == 0) {
            s->ev_done_lines++;
        }
    }

    s->is_data = 0;
    s->state = BENCH_SSE_LINE_START;
}


static void
bench_sse_dispatch(bench_stream_t *s, int64_t now)
{
    if (s->ev_data_lines == 0) {
        goto reset;
    }

    if (s->ev_done_lines == s->ev_data_lines) {
        s->done = 1;
        goto reset;
    }

    s->events++;

    if (s->last_event >= 0) {
        /* a failure to grow the array only loses this gap */
        (void) bench_array_push(&s->gaps, now - s->last_event);
    }

    s->last_event = now;

    if (s->ev_content && s->first_content < 0) {
        s->first_content = now - s->start;
        s->reached = 1;
        s->bench->reached++;
        s->bench->waiting--;
    }

reset:

    s->ev_data_lines = 0;
    s->ev_done_lines = 0;
    s->ev_content = 0;
}


/*
 * Matches "content" WS* : WS* " followed by anything but a quote, that is
 * a non-empty string value of a "content" key (or a string containing
 * that text unescaped, which JSON does not allow).
 */

static void
bench_content_byte(bench_stream_t *s, u_char c)
{
    static const char  key[] = "\"content\"";

    switch (s->cm) {

    case BENCH_CM_AFTER_KEY:

        if (c == ':') {
            s->cm = BENCH_CM_AFTER_COLON;

        } else if (c != ' ' && c != '\t') {
            s->cm = (c == '"') ? 1 : 0;
        }

        return;

    case BENCH_CM_AFTER_COLON:

        if (c == '"') {
            s->cm = BENCH_CM_AFTER_QUOTE;

        } else if (c != ' ' && c != '\t') {
            s->cm = 0;
        }

        return;

    case BENCH_CM_AFTER_QUOTE:

        if (c != '"') {
            s->ev_content = 1;
        }

        s->cm = 0;
        return;

    default:

        /* only the key's first byte, '"', starts it again */

        if (c == (u_char) key[s->cm]) {
            s->cm++;

        } else {
            s->cm = (c == '"') ? 1 : 0;
        }

        return;
    }
}


static int
bench_array_push(bench_array_t *a, int64_t v)
{
    size_t    ns;
    int64_t  *nv;

    if (a->n == a->size) {
        ns = a->size ? a->size * 2 : 16;

        nv = realloc(a->v, ns * sizeof(int64_t));
        if (nv == NULL) {
            return -1;
        }

        a->v = nv;
        a->size = ns;
    }

    a->v[a->n++] = v;

    return 0;
}


static int
bench_array_append(bench_array_t *a, bench_array_t *from)
{
    size_t    ns;
    int64_t  *nv;

    if (a->n + from->n > a->size) {
        ns = a->size ? a->size : 1024;

        while (a->n + from->n > ns) {
            ns *= 2;
        }

        nv = realloc(a->v, ns * sizeof(int64_t));
        if (nv == NULL) {
            return -1;
        }

        a->v = nv;
        a->size = ns;
    }

    if (from->n) {
        memcpy(a->v + a->n, from->v, from->n * sizeof(int64_t));
        a->n += from->n;
    }

    return 0;
}


static int
bench_count_status(bench_t *b, long code)
{
    size_t           i;
    bench_status_t  *ns;

    for (i = 0; i < b->n_status; i++) {
        if (b->status[i].code == code) {
            b->status[i].n++;
            return 0;
        }
    }

    ns = realloc(b->status, (b->n_status + 1) * sizeof(bench_status_t));
    if (ns == NULL) {
        return -1;
    }

    b->status = ns;
    b->status[b->n_status].code = code;
    b->status[b->n_status].n = 1;
    b->n_status++;

    return 0;
}


static void
bench_print(bench_t *b)
{
    size_t   i;
    double   duration;

    duration = (double) (b->t_end - b->t_start) / 1e6;

    printf("{\"label\":");
    bench_print_string(b->opt->label);

    printf(",\"requests\":%ld,\"ok\":%ld,\"errors\":%ld,\"status\":{",
           b->finished, b->ok, b->finished - b->ok);

    qsort(b->status, b->n_status, sizeof(bench_status_t), bench_cmp_status);

    for (i = 0; i < b->n_status; i++) {
        printf("%s\"%ld\":%llu", i ? "," : "", b->status[i].code,
               (unsigned long long) b->status[i].n);
    }

    printf("},\"done\":%llu,\"events\":%llu,\"bytes\":%llu,"
           "\"duration_s\":%.6f,\"rps\":%.1f,",
           (unsigned long long) b->done, (unsigned long long) b->events,
           (unsigned long long) b->bytes, duration,
           duration > 0 ? b->finished / duration : 0.0);

    bench_print_stats("ttfb_us", &b->ttfb);
    putchar(',');
    bench_print_stats("first_content_us", &b->first_content);
    putchar(',');
    bench_print_stats("gap_us", &b->gaps);

    printf("}\n");
    fflush(stdout);
}


static void
bench_print_string(const char *s)
{
    putchar('"');

    for ( /* void */ ; *s; s++) {
        if (*s == '"' || *s == '\\') {
            putchar('\\');
            putchar(*s);

        } else if ((u_char) *s < 0x20) {
            printf("\\u%04x", (u_char) *s);

        } else {
            putchar(*s);
        }
    }

    putchar('"');
}


/* nearest-rank percentiles; null values for an empty set */

static void
bench_print_stats(const char *name, bench_array_t *a)
{
    size_t   i, n;
    double   sum;
    int64_t  p50, p90, p99;

    printf("\"%s\":", name);

    n = a->n;

    if (n == 0) {
        printf("{\"p50\":null,\"p90\":null,\"p99\":null,\"max\":null,"
               "\"mean\":null}");
        return;
    }

    qsort(a->v, n, sizeof(int64_t), bench_cmp_int64);

    sum = 0;

    for (i = 0; i < n; i++) {
        sum += (double) a->v[i];
    }

    p50 = a->v[(n * 50 + 99) / 100 - 1];
    p90 = a->v[(n * 90 + 99) / 100 - 1];
    p99 = a->v[(n * 99 + 99) / 100 - 1];

    printf("{\"p50\":%lld,\"p90\":%lld,\"p99\":%lld,\"max\":%lld,"
           "\"mean\":%lld}",
           (long long) p50, (long long) p90, (long long) p99,
           (long long) a->v[n - 1], (long long) llround(sum / n));
}


static int
bench_cmp_int64(const void *one, const void *two)
{
    int64_t  a, b;

    a = *(const int64_t *) one;
    b = *(const int64_t *) two;

    return (a > b) - (a < b);
}


static int
bench_cmp_status(const void *one, const void *two)
{
    long  a, b;

    a = ((const bench_status_t *) one)->code;
    b = ((const bench_status_t *) two)->code;

    return (a > b) - (a < b);
}


static int64_t
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
