
/*
 * Copyright (C) The ngx_llm_router authors
 */


/*
 * llm-prices: reads an OpenRouter-format model catalog (a URL, through
 * libcurl, or a file) and writes an nginx include file of "llm_model"
 * blocks with the current prices of the models the user lists.  It runs
 * beside nginx (from cron, a timer, a deploy script), never inside a
 * worker: the router's request path only reads the include at reload.
 *
 * The catalog gives prices in USD per token as decimal strings
 * ("0.0000025"); the router wants USD per million tokens with at most six
 * decimals ("2.5").  The conversion is done on the decimal digits, never
 * in floating point; a price that needs more than six decimals per million
 * tokens is rounded up to the next millionth (never undercharged), with a
 * warning, or refused with --strict.
 */


#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>


#define LLM_VERSION            "1.0"
#define LLM_DEFAULT_CATALOG    "https://openrouter.ai/api/v1/models"
#define LLM_DEFAULT_PROVIDER   "openrouter"
#define LLM_DEFAULT_TIMEOUT    30.0

#define LLM_MAX_CATALOG        (64 * 1024 * 1024)
#define LLM_MAX_NAME           128
#define LLM_MAX_ID             256
#define LLM_MAX_PRICE_STRING   256

/* the router's own limit: 1,000,000 USD per million tokens, in millionths */
#define LLM_MAX_MICRO          1000000000000LL

#define LLM_OK                 0
#define LLM_ERROR              1
#define LLM_USAGE              2

#define LLM_PRICE_OK           0
#define LLM_PRICE_MALFORMED    -1
#define LLM_PRICE_NEGATIVE     -2
#define LLM_PRICE_TOO_LARGE    -3


typedef struct {
    char        *data;
    size_t       len;
    size_t       size;
    int          too_large;
} llm_buf_t;


typedef struct {
    int64_t      micro;         /* USD per million tokens, in millionths */
    int          rounded;       /* rounded up to the next millionth */
    char         src[64];       /* the catalog's USD per token, printable */
} llm_price_t;


typedef struct {
    const char  *arg;           /* the mapping as given */
    char        *copy;          /* the same, cut into the parts below */
    const char  *id;            /* CATALOG_ID */
    const char  *name;          /* NAME */
    const char  *provider;      /* PROVIDER */
    const char  *upstream;      /* UPSTREAM_ID */
    llm_price_t  input;
    llm_price_t  output;
    int64_t      context;       /* 0: not in the catalog */
    int          written;
} llm_mapping_t;


typedef struct {
    const char  *catalog;
    const char  *output;
    const char  *provider;
    double       timeout;
    int          context;
    int          strict;
    int          list;
} llm_options_t;


static void llm_usage(FILE *f);
static void llm_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void llm_warn(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int llm_parse_mapping(llm_mapping_t *m, const char *arg,
    const char *provider);
static int llm_valid_name(const char *s, const char *more);
static int llm_valid_token(const char *s, size_t max);
static int llm_is_url(const char *s);
static int llm_load(const char *src, double timeout, llm_buf_t *b);
static size_t llm_curl_write(char *ptr, size_t size, size_t n, void *data);
static int llm_fetch(const char *url, double timeout, llm_buf_t *b);
static int llm_read_file(const char *path, llm_buf_t *b);
static int llm_buf_append(llm_buf_t *b, const char *p, size_t n);
static json_t *llm_catalog_data(llm_buf_t *b, const char *src,
    json_t **root);
static json_t *llm_find_model(json_t *data, const char *id);
static int llm_price_get(json_t *model, const char *id, const char *field,
    int strict, int quiet, llm_price_t *price);
static int llm_price_parse(const char *s, int64_t *micro, int *rounded);
static void llm_price_format(int64_t micro, char *buf, size_t size);
static int64_t llm_context_get(json_t *model);
static int llm_list(json_t *data, char **patterns, int n);
static int llm_list_match(const char *id, char **patterns, int n);
static char *llm_render(llm_mapping_t *maps, int n, const char *src,
    int context, size_t *len);
static int llm_write_atomic(const char *path, const char *text, size_t len);
static void llm_printable(const char *s, char *buf, size_t size);
static void llm_source_name(const char *src, char *buf, size_t size);


static const char  *llm_progname = "llm-prices";


static void
llm_usage(FILE *f)
{
    fprintf(f,
"Usage: llm-prices [OPTIONS] MAPPING...\n"
"       llm-prices --list [OPTIONS] [SUBSTRING...]\n"
"\n"
"Writes nginx \"llm_model\" blocks with current prices, in USD per million\n"
"tokens, from an OpenRouter-format model catalog, for the router to\n"
"\"include\".\n"
"\n"
"MAPPING is CATALOG_ID[=NAME][@PROVIDER[:UPSTREAM_ID]]:\n"
"  CATALOG_ID    the model's \"id\" in the catalog, e.g. openai/gpt-4o\n"
"  NAME          the llm_model name clients ask for (default: CATALOG_ID)\n"
"  PROVIDER      the llm_provider that serves it (default: %s,\n"
"                or --provider)\n"
"  UPSTREAM_ID   the provider's own model id (default: CATALOG_ID, without\n"
"                its \"vendor/\" prefix when PROVIDER is not the default)\n"
"Mappings with the same NAME make one llm_model with several endpoints,\n"
"in the order given.\n"
"\n"
"Options:\n"
"  -c, --catalog URL|FILE  the catalog: an http:// or https:// URL, a file,\n"
"                          or - for standard input\n"
"                          (default: %s)\n"
"  -o, --output FILE       write FILE atomically (a temporary file renamed\n"
"                          over it) instead of standard output; on any\n"
"                          error FILE is left as it was\n"
"  -p, --provider NAME     PROVIDER for mappings without @ (default: %s)\n"
"  -t, --timeout SECONDS   give up fetching the catalog after SECONDS\n"
"                          (default: %g)\n"
"      --no-context        no \"context\" lines (default: the catalog's\n"
"                          context_length; the smallest of a NAME's models)\n"
"      --strict            refuse a price that needs more than 6 decimals\n"
"                          per million tokens instead of rounding it up\n"
"  -l, --list              print the catalog's models whose id contains a\n"
"                          SUBSTRING (all without one), with their prices\n"
"  -h, --help              this help\n"
"  -V, --version           the version\n"
"\n"
"Example:\n"
"  llm-prices -o /etc/nginx/llm-prices.conf \\\n"
"      openai/gpt-4o=gpt-4o@openai:gpt-4o-2024-08-06 \\\n"
"      anthropic/claude-sonnet-4.5=smart@anthropic:claude-sonnet-4-5 \\\n"
"    && nginx -t && nginx -s reload\n"
"\n"
"Exit status: 0 written, 1 failed (nothing written), 2 bad usage.\n",
            LLM_DEFAULT_PROVIDER, LLM_DEFAULT_CATALOG, LLM_DEFAULT_PROVIDER,
            LLM_DEFAULT_TIMEOUT);
}


int
main(int argc, char **argv)
{
    int             c, i, n, rc, failed, missing;
    char           *text, *end;
    size_t          len;
    json_t         *root, *data, *model, *links;
    llm_buf_t       buf;
    llm_mapping_t  *maps;
    llm_options_t   opt;

    static const struct option  long_options[] = {
        { "catalog",    required_argument, NULL, 'c' },
        { "output",     required_argument, NULL, 'o' },
        { "provider",   required_argument, NULL, 'p' },
        { "timeout",    required_argument, NULL, 't' },
        { "no-context", no_argument,       NULL, 'C' },
        { "strict",     no_argument,       NULL, 'S' },
        { "list",       no_argument,       NULL, 'l' },
        { "help",       no_argument,       NULL, 'h' },
        { "version",    no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };

    memset(&opt, 0, sizeof(llm_options_t));
    opt.catalog = LLM_DEFAULT_CATALOG;
    opt.provider = LLM_DEFAULT_PROVIDER;
    opt.timeout = LLM_DEFAULT_TIMEOUT;
    opt.context = 1;

    while ((c = getopt_long(argc, argv, "c:o:p:t:lhV", long_options, NULL))
           != -1)
    {
        switch (c) {

        case 'c':
            opt.catalog = optarg;
            break;

        case 'o':
            opt.output = optarg;
            break;

        case 'p':
            if (llm_valid_name(optarg, "-_.") != LLM_OK) {
                llm_error("invalid provider name \"%s\", use letters, "
                          "digits, \"-\", \"_\" and \".\"", optarg);
                return LLM_USAGE;
            }

            opt.provider = optarg;
            break;

        case 't':
            errno = 0;
            opt.timeout = strtod(optarg, &end);

            if (errno || end == optarg || *end != '\0'
                || !(opt.timeout > 0 && opt.timeout <= 86400))
            {
                llm_error("invalid --timeout \"%s\", use seconds, "
                          "e.g. 30 or 2.5", optarg);
                return LLM_USAGE;
            }

            break;

        case 'C':
            opt.context = 0;
            break;

        case 'S':
            opt.strict = 1;
            break;

        case 'l':
            opt.list = 1;
            break;

        case 'h':
            llm_usage(stdout);
            return LLM_OK;

        case 'V':
            printf("llm-prices " LLM_VERSION " (%s, jansson %s)\n",
                   curl_version(), JANSSON_VERSION);
            return LLM_OK;

        default:
            fprintf(stderr, "Try \"%s --help\".\n", llm_progname);
            return LLM_USAGE;
        }
    }

    n = argc - optind;

    if (opt.list) {
        if (opt.output) {
            llm_error("--list prints to standard output, "
                      "it takes no --output");
            return LLM_USAGE;
        }

        maps = NULL;

    } else {
        if (n == 0) {
            llm_error("no MAPPING given, e.g. "
                      "\"openai/gpt-4o=gpt-4o@openai\"");
            fprintf(stderr, "Try \"%s --help\".\n", llm_progname);
            return LLM_USAGE;
        }

        if (opt.output && opt.output[0] == '\0') {
            llm_error("empty --output");
            return LLM_USAGE;
        }

        maps = calloc(n, sizeof(llm_mapping_t));
        if (maps == NULL) {
            llm_error("out of memory");
            return LLM_ERROR;
        }

        failed = 0;

        for (i = 0; i < n; i++) {
            if (llm_parse_mapping(&maps[i], argv[optind + i], opt.provider)
                != LLM_OK)
            {
                failed = 1;
            }
        }

        if (failed) {
            rc = LLM_USAGE;
            goto done;
        }
    }

    /* the catalog */

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        llm_error("cannot initialize libcurl");
        rc = LLM_ERROR;
        goto done;
    }

    memset(&buf, 0, sizeof(llm_buf_t));
    root = NULL;

    rc = llm_load(opt.catalog, opt.timeout, &buf);

    if (rc == LLM_OK) {
        data = llm_catalog_data(&buf, opt.catalog, &root);
        rc = data ? LLM_OK : LLM_ERROR;
    }

    free(buf.data);

    if (rc != LLM_OK) {
        goto cleanup;
    }

    if (opt.list) {
        rc = llm_list(data, argv + optind, n);
        goto cleanup;
    }

    /* each mapping's model and prices; every problem is reported */

    failed = 0;
    missing = 0;

    for (i = 0; i < n; i++) {
        model = llm_find_model(data, maps[i].id);

        if (model == NULL) {
            llm_error("unknown catalog id \"%s\" (in \"%s\")",
                      maps[i].id, maps[i].arg);
            failed = 1;
            missing = 1;
            continue;
        }

        if (llm_price_get(model, maps[i].id, "prompt", opt.strict, 0,
                          &maps[i].input)
            != LLM_OK)
        {
            failed = 1;
        }

        if (llm_price_get(model, maps[i].id, "completion", opt.strict, 0,
                          &maps[i].output)
            != LLM_OK)
        {
            failed = 1;
        }

        maps[i].context = llm_context_get(model);
    }

    if (missing) {
        llm_error("note: \"llm-prices --list [SUBSTRING]\" lists the "
                  "catalog's ids");

        links = json_object_get(root, "links");

        if (json_is_string(json_object_get(links, "next"))) {
            llm_error("note: the catalog has more pages (\"links.next\"), "
                      "only the first one was read");
        }
    }

    if (failed) {
        rc = LLM_ERROR;
        goto cleanup;
    }

    text = llm_render(maps, n, opt.catalog, opt.context, &len);

    if (text == NULL) {
        llm_error("out of memory");
        rc = LLM_ERROR;
        goto cleanup;
    }

    if (opt.output == NULL || strcmp(opt.output, "-") == 0) {
        if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
            llm_error("cannot write to standard output: %s",
                      strerror(errno));
            rc = LLM_ERROR;
        }

    } else {
        rc = llm_write_atomic(opt.output, text, len);
    }

    free(text);

cleanup:

    json_decref(root);
    curl_global_cleanup();

done:

    if (maps) {
        for (i = 0; i < n; i++) {
            free(maps[i].copy);
        }

        free(maps);
    }

    return rc;
}


static void
llm_error(const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "%s: ", llm_progname);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


static void
llm_warn(const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "%s: warning: ", llm_progname);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


/*
 * CATALOG_ID[=NAME][@PROVIDER[:UPSTREAM_ID]]: catalog ids have no "=" or
 * "@", names no "@", provider names no ":", so the first "@", the first
 * "=" before it and the first ":" after it cut the mapping unambiguously;
 * UPSTREAM_ID keeps any ":" or "@" of its own ("llama3.1:70b",
 * "claude-3-5-sonnet@20240620").
 */

static int
llm_parse_mapping(llm_mapping_t *m, const char *arg, const char *provider)
{
    char  *at, *eq, *colon, *slash;

    m->arg = arg;

    m->copy = strdup(arg);
    if (m->copy == NULL) {
        llm_error("out of memory");
        return LLM_ERROR;
    }

    at = strchr(m->copy, '@');
    if (at) {
        *at++ = '\0';
    }

    eq = strchr(m->copy, '=');
    if (eq) {
        *eq++ = '\0';
    }

    m->id = m->copy;

    if (llm_valid_token(m->id, LLM_MAX_ID) != LLM_OK) {
        llm_error("invalid mapping \"%s\": %s", arg,
                  m->id[0] ? "the catalog id has a space or a control "
                             "character, or is too long"
                           : "no catalog id before \"=\" or \"@\"");
        return LLM_ERROR;
    }

    if (eq) {
        m->name = eq;

        if (m->name[0] == '\0') {
            llm_error("invalid mapping \"%s\": no NAME after \"=\"", arg);
            return LLM_ERROR;
        }

        if (llm_valid_name(m->name, "-_.:/") != LLM_OK) {
            llm_error("invalid model name \"%s\" in \"%s\", use up to %d "
                      "letters, digits and \"-_.:/\"",
                      m->name, arg, LLM_MAX_NAME);
            return LLM_ERROR;
        }

    } else {
        m->name = m->id;

        if (llm_valid_name(m->name, "-_.:/") != LLM_OK) {
            llm_error("the catalog id \"%s\" is not a valid model name "
                      "(letters, digits and \"-_.:/\"), name it: "
                      "\"%s=NAME%s%s\"",
                      m->id, m->id, at ? "@" : "", at ? at : "");
            return LLM_ERROR;
        }
    }

    if (at) {
        colon = strchr(at, ':');
        if (colon) {
            *colon++ = '\0';
        }

        m->provider = at;

        if (llm_valid_name(m->provider, "-_.") != LLM_OK) {
            llm_error("invalid provider name \"%s\" in \"%s\", use up to "
                      "%d letters, digits and \"-_.\"",
                      m->provider, arg, LLM_MAX_NAME);
            return LLM_ERROR;
        }

        if (colon) {
            m->upstream = colon;

        } else if (strcmp(m->provider, provider) == 0) {
            /* the catalog's own provider knows its ids */
            m->upstream = m->id;

        } else {
            /* "openai/gpt-4o@openai" is "gpt-4o" at openai */
            slash = strchr(m->id, '/');
            m->upstream = (slash && slash[1]) ? slash + 1 : m->id;
        }

    } else {
        m->provider = provider;
        m->upstream = m->id;
    }

    /*
     * "model=UPSTREAM_ID" is one nginx token, written unquoted: no
     * whitespace, quotes, backslash, ";", "{", "}", "#" or "$"
     */

    if (llm_valid_token(m->upstream, LLM_MAX_ID) != LLM_OK
        || strpbrk(m->upstream, "\"'\\;{}#$") != NULL)
    {
        llm_error("invalid upstream model id \"%s\" in \"%s\"%s",
                  m->upstream, arg,
                  m->upstream[0] ? ", it cannot have spaces or any of "
                                   "\" ' \\ ; { } # $"
                                 : ", nothing after \":\"");
        return LLM_ERROR;
    }

    return LLM_OK;
}


/* as the module's: 1 to 128 letters, digits and the characters of "more" */

static int
llm_valid_name(const char *s, const char *more)
{
    size_t  i;

    for (i = 0; s[i]; i++) {
        if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
            || (s[i] >= '0' && s[i] <= '9') || strchr(more, s[i]) != NULL)
        {
            continue;
        }

        return LLM_ERROR;
    }

    return (i == 0 || i > LLM_MAX_NAME) ? LLM_ERROR : LLM_OK;
}


/* 1 to max printable ASCII characters, no space */

static int
llm_valid_token(const char *s, size_t max)
{
    size_t  i;

    for (i = 0; s[i]; i++) {
        if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f) {
            return LLM_ERROR;
        }
    }

    return (i == 0 || i > max) ? LLM_ERROR : LLM_OK;
}


static int
llm_is_url(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0
           || strncasecmp(s, "https://", 8) == 0;
}


static int
llm_load(const char *src, double timeout, llm_buf_t *b)
{
    if (llm_is_url(src)) {
        return llm_fetch(src, timeout, b);
    }

    return llm_read_file(src, b);
}


static int
llm_buf_append(llm_buf_t *b, const char *p, size_t n)
{
    char    *data;
    size_t   size;

    if (n > LLM_MAX_CATALOG - b->len) {
        b->too_large = 1;
        return LLM_ERROR;
    }

    if (b->len + n + 1 > b->size) {
        size = b->size ? b->size : 65536;

        while (size < b->len + n + 1) {
            size *= 2;
        }

        data = realloc(b->data, size);
        if (data == NULL) {
            return LLM_ERROR;
        }

        b->data = data;
        b->size = size;
    }

    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';

    return LLM_OK;
}


static size_t
llm_curl_write(char *ptr, size_t size, size_t n, void *data)
{
    llm_buf_t  *b = data;

    if (llm_buf_append(b, ptr, size * n) != LLM_OK) {
        return 0;
    }

    return size * n;
}


static int
llm_fetch(const char *url, double timeout, llm_buf_t *b)
{
    int                 rc;
    long                status;
    char                errbuf[CURL_ERROR_SIZE], show[512], body[201];
    CURL               *curl;
    CURLcode            code;
    struct curl_slist  *headers;

    llm_source_name(url, show, sizeof(show));

    curl = curl_easy_init();
    if (curl == NULL) {
        llm_error("cannot initialize libcurl");
        return LLM_ERROR;
    }

    headers = curl_slist_append(NULL, "Accept: application/json");

    errbuf[0] = '\0';

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "llm-prices/" LLM_VERSION);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    /* 0 would be no timeout at all */
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     timeout < 0.001 ? 1L : (long) (timeout * 1000));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, llm_curl_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, b);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS,
                     (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS,
                     (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif

    code = curl_easy_perform(curl);

    rc = LLM_ERROR;

    if (code == CURLE_OPERATION_TIMEDOUT) {
        llm_error("%s: timed out after %g seconds (see --timeout)",
                  show, timeout);

    } else if (b->too_large) {
        llm_error("%s: the catalog is larger than %d MiB", show,
                  LLM_MAX_CATALOG / 1024 / 1024);

    } else if (code != CURLE_OK) {
        llm_error("%s: %s", show,
                  errbuf[0] ? errbuf : curl_easy_strerror(code));

    } else {
        status = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

        if (status < 200 || status > 299) {
            llm_printable(b->len ? b->data : "", body, sizeof(body));
            llm_error("%s: HTTP status %ld%s%s", show, status,
                      body[0] ? ": " : "", body);

        } else {
            rc = LLM_OK;
        }
    }

    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);

    return rc;
}


static int
llm_read_file(const char *path, llm_buf_t *b)
{
    int     rc;
    char    chunk[65536];
    FILE   *f;
    size_t  n;

    if (strcmp(path, "-") == 0) {
        f = stdin;

    } else {
        f = fopen(path, "rb");
        if (f == NULL) {
            llm_error("cannot open the catalog \"%s\": %s", path,
                      strerror(errno));
            return LLM_ERROR;
        }
    }

    rc = LLM_OK;

    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (llm_buf_append(b, chunk, n) != LLM_OK) {
            llm_error("cannot read the catalog \"%s\": %s", path,
                      b->too_large ? "larger than 64 MiB" : "out of memory");
            rc = LLM_ERROR;
            break;
        }
    }

    if (rc == LLM_OK && ferror(f)) {
        llm_error("cannot read the catalog \"%s\": %s", path,
                  strerror(errno));
        rc = LLM_ERROR;
    }

    if (f != stdin) {
        fclose(f);
    }

    return rc;
}


static json_t *
llm_catalog_data(llm_buf_t *b, const char *src, json_t **root)
{
    char          show[512], text[201];
    json_t       *data;
    json_error_t  err;

    llm_source_name(src, show, sizeof(show));

    *root = json_loadb(b->data ? b->data : "", b->len, 0, &err);

    if (*root == NULL) {
        llm_printable(err.text, text, sizeof(text));
        llm_error("%s: invalid JSON at line %d, column %d: %s",
                  show, err.line, err.column, text);
        return NULL;
    }

    data = json_object_get(*root, "data");

    if (!json_is_array(data)) {
        llm_error("%s: not an OpenRouter-format model catalog, "
                  "it has no \"data\" array", show);
        return NULL;
    }

    return data;
}


static json_t *
llm_find_model(json_t *data, const char *id)
{
    size_t       i;
    json_t      *model;
    const char  *s;

    json_array_foreach(data, i, model) {
        s = json_string_value(json_object_get(model, "id"));

        if (s && strcmp(s, id) == 0) {
            return model;
        }
    }

    return NULL;
}


static int
llm_price_get(json_t *model, const char *id, const char *field, int strict,
    int quiet, llm_price_t *price)
{
    int      rc;
    char    *dump, num[32], micro[32];
    json_t  *v;

    v = json_object_get(json_object_get(model, "pricing"), field);

    if (json_is_string(v)) {
        llm_printable(json_string_value(v), price->src, sizeof(price->src));
        rc = llm_price_parse(json_string_value(v), &price->micro,
                             &price->rounded);

    } else if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        llm_printable(num, price->src, sizeof(price->src));
        rc = llm_price_parse(num, &price->micro, &price->rounded);

    } else if (json_is_real(v)) {
        /*
         * jansson keeps a JSON number with a fraction as a double: 15
         * significant digits give back any decimal the catalog wrote with
         * up to 15 (catalogs write prices as strings anyway)
         */

        dump = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        if (dump == NULL) {
            llm_error("out of memory");
            return LLM_ERROR;
        }

        llm_printable(dump, price->src, sizeof(price->src));
        rc = llm_price_parse(dump, &price->micro, &price->rounded);
        free(dump);

    } else {
        if (!quiet) {
            llm_error("catalog model \"%s\" has no \"pricing.%s\"",
                      id, field);
        }

        return LLM_ERROR;
    }

    if (quiet) {
        return (rc == LLM_PRICE_OK) ? LLM_OK : LLM_ERROR;
    }

    switch (rc) {

    case LLM_PRICE_OK:

        if (!price->rounded) {
            return LLM_OK;
        }

        if (strict) {
            llm_error("catalog model \"%s\": \"pricing.%s\" \"%s\" USD per "
                      "token needs more than 6 decimals in USD per million "
                      "tokens (--strict refuses to round it up)",
                      id, field, price->src);
            return LLM_ERROR;
        }

        llm_price_format(price->micro, micro, sizeof(micro));
        llm_warn("catalog model \"%s\": \"pricing.%s\" \"%s\" USD per "
                 "token is rounded up to %s USD per million tokens",
                 id, field, price->src, micro);
        return LLM_OK;

    case LLM_PRICE_NEGATIVE:
        llm_error("catalog model \"%s\": negative \"pricing.%s\" \"%s\", "
                  "the catalog has no fixed price for it (a router?)",
                  id, field, price->src);
        return LLM_ERROR;

    case LLM_PRICE_TOO_LARGE:
        llm_error("catalog model \"%s\": \"pricing.%s\" \"%s\" is more "
                  "than the router's limit of 1 USD per token",
                  id, field, price->src);
        return LLM_ERROR;

    default: /* LLM_PRICE_MALFORMED */
        llm_error("catalog model \"%s\": invalid \"pricing.%s\" \"%s\", "
                  "expected USD per token as a decimal number",
                  id, field, price->src);
        return LLM_ERROR;
    }
}


/*
 * A decimal number of USD per token ("0.0000025", "3e-6", "0") to
 * millionths of USD per million tokens, which are its digits shifted by
 * 12 places: no floating point is involved.  Digits past the last kept
 * one round the price up.
 */

static int
llm_price_parse(const char *s, int64_t *micro, int *rounded)
{
    int          n, frac, exp, esign, dot, seen, neg, k, i, rest;
    char         digits[LLM_MAX_PRICE_STRING];
    int64_t      v;
    const char  *p;

    if (strlen(s) >= LLM_MAX_PRICE_STRING) {
        return LLM_PRICE_MALFORMED;
    }

    p = s;
    neg = 0;

    if (*p == '-') {
        neg = 1;
        p++;
    }

    /* significant digits (leading zeros dropped) and how many follow "." */

    n = 0;
    frac = 0;
    dot = 0;
    seen = 0;

    for ( ; *p; p++) {

        if (*p == '.') {
            if (dot) {
                return LLM_PRICE_MALFORMED;
            }

            dot = 1;
            continue;
        }

        if (*p < '0' || *p > '9') {
            break;
        }

        seen = 1;

        if (dot) {
            frac++;
        }

        if (n == 0 && *p == '0') {
            continue;
        }

        digits[n++] = *p;
    }

    if (!seen) {
        return LLM_PRICE_MALFORMED;
    }

    exp = 0;

    if (*p == 'e' || *p == 'E') {
        p++;
        esign = 1;

        if (*p == '+' || *p == '-') {
            esign = (*p == '-') ? -1 : 1;
            p++;
        }

        if (*p < '0' || *p > '9') {
            return LLM_PRICE_MALFORMED;
        }

        for ( ; *p >= '0' && *p <= '9'; p++) {
            if (exp > 10000) {
                return LLM_PRICE_MALFORMED;
            }

            exp = exp * 10 + (*p - '0');
        }

        exp *= esign;
    }

    if (*p != '\0') {
        return LLM_PRICE_MALFORMED;
    }

    *rounded = 0;

    if (n == 0) {
        /* "0", "0.000", "-0" */
        *micro = 0;
        return LLM_PRICE_OK;
    }

    if (neg) {
        return LLM_PRICE_NEGATIVE;
    }

    /*
     * the value is digits * 10^(exp - frac) USD per token, that is
     * digits * 10^(exp - frac + 12) millionths per million tokens: the
     * first k digits are the integer, the rest is what is rounded up
     */

    k = n + exp - frac + 12;

    if (k > 13) {
        return LLM_PRICE_TOO_LARGE;
    }

    v = 0;

    for (i = 0; i < k; i++) {
        v = v * 10 + (i < n ? digits[i] - '0' : 0);
    }

    rest = 0;

    for (i = (k > 0) ? k : 0; i < n; i++) {
        if (digits[i] != '0') {
            rest = 1;
        }
    }

    if (rest) {
        v++;
        *rounded = 1;
    }

    if (v > LLM_MAX_MICRO) {
        return LLM_PRICE_TOO_LARGE;
    }

    *micro = v;

    return LLM_PRICE_OK;
}


/* 2500000 -> "2.5", 10000000 -> "10", 0 -> "0", 1 -> "0.000001" */

static void
llm_price_format(int64_t micro, char *buf, size_t size)
{
    int  len;

    len = snprintf(buf, size, "%lld", (long long) (micro / 1000000));

    if (micro % 1000000 == 0 || len < 0 || (size_t) len >= size) {
        return;
    }

    snprintf(buf + len, size - len, ".%06lld",
             (long long) (micro % 1000000));

    len = strlen(buf);

    while (buf[len - 1] == '0') {
        buf[--len] = '\0';
    }
}


/* the catalog's "context_length", 0 when missing or not a positive count */

static int64_t
llm_context_get(json_t *model)
{
    double   d;
    json_t  *v;

    v = json_object_get(model, "context_length");

    if (json_is_integer(v)) {
        if (json_integer_value(v) > 0
            && json_integer_value(v) <= 1000000000000LL)
        {
            return json_integer_value(v);
        }

        return 0;
    }

    if (json_is_real(v)) {
        d = json_real_value(v);

        if (d >= 1 && d <= 1e12 && d == (double) (int64_t) d) {
            return (int64_t) d;
        }
    }

    return 0;
}


static int
llm_list(json_t *data, char **patterns, int n)
{
    int          width;
    char         id[LLM_MAX_ID + 4], in[32], out[32], ctx[32];
    size_t       i;
    json_t      *model;
    const char  *s;
    llm_price_t  price;

    /* the ids' width first, then the lines */

    width = 0;

    json_array_foreach(data, i, model) {
        s = json_string_value(json_object_get(model, "id"));

        if (s && llm_list_match(s, patterns, n)) {
            llm_printable(s, id, sizeof(id));

            if ((int) strlen(id) > width) {
                width = strlen(id);
            }
        }
    }

    json_array_foreach(data, i, model) {
        s = json_string_value(json_object_get(model, "id"));

        if (s == NULL || !llm_list_match(s, patterns, n)) {
            continue;
        }

        llm_printable(s, id, sizeof(id));

        memset(&price, 0, sizeof(llm_price_t));

        if (llm_price_get(model, s, "prompt", 0, 1, &price) == LLM_OK) {
            llm_price_format(price.micro, in, sizeof(in));

        } else {
            strcpy(in, "-");
        }

        if (llm_price_get(model, s, "completion", 0, 1, &price) == LLM_OK) {
            llm_price_format(price.micro, out, sizeof(out));

        } else {
            strcpy(out, "-");
        }

        ctx[0] = '\0';

        if (llm_context_get(model)) {
            snprintf(ctx, sizeof(ctx), " context=%lld",
                     (long long) llm_context_get(model));
        }

        printf("%-*s  input=%s output=%s%s\n", width, id, in, out, ctx);
    }

    if (fflush(stdout) != 0) {
        llm_error("cannot write to standard output: %s", strerror(errno));
        return LLM_ERROR;
    }

    return LLM_OK;
}


/* no SUBSTRING matches all; case does not matter */

static int
llm_list_match(const char *id, char **patterns, int n)
{
    int  i;

    if (n == 0) {
        return 1;
    }

    for (i = 0; i < n; i++) {
        if (strcasestr(id, patterns[i]) != NULL) {
            return 1;
        }
    }

    return 0;
}


/*
 * The include file: a header, then one "llm_model" block a NAME, in the
 * order the names first appear, with its endpoints in the order given.
 */

static char *
llm_render(llm_mapping_t *maps, int n, const char *src, int context,
    size_t *len)
{
    int         i, j;
    char       *text, in[32], out[32], show[512], stamp[32];
    FILE       *f;
    time_t      now;
    int64_t     ctx;
    struct tm   tm;
    const char *epoch;

    /* SOURCE_DATE_EPOCH, as for reproducible builds, fixes the time */

    epoch = getenv("SOURCE_DATE_EPOCH");
    now = (epoch && *epoch) ? (time_t) strtoll(epoch, NULL, 10) : time(NULL);

    if (gmtime_r(&now, &tm) == NULL
        || strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    {
        strcpy(stamp, "(unknown time)");
    }

    llm_source_name(src, show, sizeof(show));

    text = NULL;

    f = open_memstream(&text, len);
    if (f == NULL) {
        return NULL;
    }

    fprintf(f, "# llm_model prices from %s\n"
               "# fetched %s by llm-prices, in USD per million tokens.\n"
               "# Generated: the next run of llm-prices replaces this "
               "file.\n",
            show, stamp);

    for (i = 0; i < n; i++) {
        if (maps[i].written) {
            continue;
        }

        fprintf(f, "\nllm_model %s {\n", maps[i].name);

        ctx = 0;

        for (j = i; j < n; j++) {
            if (strcmp(maps[j].name, maps[i].name) != 0) {
                continue;
            }

            maps[j].written = 1;

            llm_price_format(maps[j].input.micro, in, sizeof(in));
            llm_price_format(maps[j].output.micro, out, sizeof(out));

            fprintf(f, "    # %s\n", maps[j].id);

            if (maps[j].input.rounded) {
                fprintf(f, "    # input rounded up from %s USD per token\n",
                        maps[j].input.src);
            }

            if (maps[j].output.rounded) {
                fprintf(f, "    # output rounded up from %s USD per token\n",
                        maps[j].output.src);
            }

            fprintf(f, "    endpoint %s model=%s input=%s output=%s;\n",
                    maps[j].provider, maps[j].upstream, in, out);

            /* the window every endpoint of the model can take */

            if (maps[j].context && (ctx == 0 || maps[j].context < ctx)) {
                ctx = maps[j].context;
            }
        }

        if (context && ctx) {
            fprintf(f, "    context %lld;\n", (long long) ctx);
        }

        fprintf(f, "}\n");
    }

    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }

    return text;
}


/*
 * FILE is replaced in one rename(2): nginx, reloaded at any moment, reads
 * the old file or the new one, never a part.  The temporary file is a
 * hidden one beside it (".FILE.XXXXXX"), which an "include" of "*.conf"
 * does not pick up; it keeps an existing FILE's permissions.
 */

static int
llm_write_atomic(const char *path, const char *text, size_t len)
{
    int           fd, dfd;
    char         *tmp, *dir;
    mode_t        mode, mask;
    size_t        dlen, off;
    ssize_t       n;
    const char   *base, *slash;
    struct stat   st;

    slash = strrchr(path, '/');
    base = slash ? slash + 1 : path;
    dlen = slash ? (size_t) (slash - path) + 1 : 0;

    if (*base == '\0') {
        llm_error("cannot write \"%s\": it is a directory", path);
        return LLM_ERROR;
    }

    tmp = malloc(dlen + strlen(base) + sizeof("..XXXXXX"));
    if (tmp == NULL) {
        llm_error("out of memory");
        return LLM_ERROR;
    }

    sprintf(tmp, "%.*s.%s.XXXXXX", (int) dlen, path, base);

    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        mode = st.st_mode & 07777;

    } else {
        mask = umask(0);
        umask(mask);
        mode = 0666 & ~mask;
    }

    fd = mkstemp(tmp);
    if (fd == -1) {
        llm_error("cannot create a temporary file \"%s\": %s", tmp,
                  strerror(errno));
        free(tmp);
        return LLM_ERROR;
    }

    if (fchmod(fd, mode) == -1) {
        goto failed;
    }

    for (off = 0; off < len; off += n) {
        n = write(fd, text + off, len - off);

        if (n == -1) {
            if (errno == EINTR) {
                n = 0;
                continue;
            }

            goto failed;
        }
    }

    if (fsync(fd) == -1) {
        goto failed;
    }

    if (close(fd) == -1) {
        fd = -1;
        goto failed;
    }

    fd = -1;

    if (rename(tmp, path) == -1) {
        llm_error("cannot rename \"%s\" to \"%s\": %s", tmp, path,
                  strerror(errno));
        unlink(tmp);
        free(tmp);
        return LLM_ERROR;
    }

    /* the rename itself survives a crash once the directory is synced */

    dir = dlen ? strndup(path, dlen) : NULL;

    dfd = open(dir ? dir : ".", O_RDONLY | O_DIRECTORY);

    if (dfd != -1) {
        (void) fsync(dfd);
        close(dfd);
    }

    free(dir);

    free(tmp);

    return LLM_OK;

failed:

    llm_error("cannot write \"%s\": %s", tmp, strerror(errno));

    if (fd != -1) {
        close(fd);
    }

    unlink(tmp);
    free(tmp);

    return LLM_ERROR;
}


/*
 * A copy fit for one line of a message or a comment: runs of white space
 * are one space, other control characters "?"; cut with "..." to size.
 */

static void
llm_printable(const char *s, char *buf, size_t size)
{
    size_t         i, j;
    unsigned char  c;

    for (i = 0, j = 0; s[i] && j < size - 1; i++) {
        c = s[i];

        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (j == 0 || buf[j - 1] != ' ') {
                buf[j++] = ' ';
            }

            continue;
        }

        buf[j++] = (c < 0x20 || c == 0x7f) ? '?' : c;
    }

    buf[j] = '\0';

    if (s[i] && size > 4) {
        strcpy(buf + size - 4, "...");
    }
}


/* the catalog as shown in messages and in the header: no user:password@ */

static void
llm_source_name(const char *src, char *buf, size_t size)
{
    char        *tmp;
    const char  *host, *at, *end;

    if (llm_is_url(src)) {
        host = strstr(src, "://") + 3;
        end = host + strcspn(host, "/?#");
        at = memchr(host, '@', end - host);

        if (at) {
            tmp = malloc(strlen(src) + 4);

            if (tmp) {
                sprintf(tmp, "%.*s***%s", (int) (host - src), src, at);
                llm_printable(tmp, buf, size);
                free(tmp);
                return;
            }
        }

    } else if (strcmp(src, "-") == 0) {
        src = "standard input";
    }

    llm_printable(src, buf, size);
}
