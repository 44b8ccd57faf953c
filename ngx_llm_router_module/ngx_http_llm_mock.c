
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * A mock provider, for the quickstart, the tests and the benchmark.  It
 * answers chat requests deterministically, as JSON or as an event stream,
 * after a configurable time to first token, in a number of chunks with a
 * delay between them (timers, never sleeping), and injects failures on
 * demand:
 *
 *     llm_mock [format=openai|anthropic|gemini] [ttft=TIME]
 *              [interval=TIME] [chunks=N] [status=CODE] [fault=NAME]
 *              [text=STRING] [size=SIZE];
 *
 *     llm_mock replay=PATH [split=SIZE] [ttft=TIME] [interval=TIME]
 *              [status=CODE] [fault=hang|close|drop|stall];
 *
 * "format" is the provider's dialect the mock speaks: OpenAI chat
 * completions (the default), Anthropic Messages (JSON, or its named events
 * when the body says "stream": true) or Gemini generateContent (JSON, or
 * the events of streamGenerateContent?alt=sse when the URI says
 * ":streamGenerateContent").  Errors (status=CODE) come in the dialect's
 * error shape.  The answer echoes the last user message of an OpenAI or
 * Anthropic "messages" list or of Gemini "contents".
 *
 * Faults: hang (never answer), close (close without an answer), garbage
 * (200 with nonsense), drop (close in the middle), stall (stop in the
 * middle), sse_error (an error event before the answer), sse_error_mid
 * (an error event after the first piece), role_stall (the stream's opening
 * only: OpenAI's role chunk, Anthropic's message_start, an empty Gemini
 * event), no_done (no end marker: no [DONE], no message_stop, no Gemini
 * finishReason).
 *
 * "replay" answers with the bytes of a file read at configuration time
 * (relative to the prefix), as text/event-stream when its name ends in
 * ".sse", else as application/json; "split" sends them in pieces of that
 * many bytes, "interval" apart, each flushed.
 *
 * Request headers X-Mock-TTFT, X-Mock-Interval (milliseconds),
 * X-Mock-Chunks, X-Mock-Status and X-Mock-Fault override the location's
 * settings for one request.  "text" may contain variables; "size" repeats
 * the text to that many bytes.  The next chunk waits for the client to take
 * the previous one.
 */


#define NGX_HTTP_LLM_MOCK_NONE          0
#define NGX_HTTP_LLM_MOCK_HANG          1   /* never answer */
#define NGX_HTTP_LLM_MOCK_CLOSE         2   /* close without an answer */
#define NGX_HTTP_LLM_MOCK_DROP          3   /* close in the middle */
#define NGX_HTTP_LLM_MOCK_STALL         4   /* stop in the middle */
#define NGX_HTTP_LLM_MOCK_GARBAGE       5   /* 200 with nonsense */
#define NGX_HTTP_LLM_MOCK_SSE_ERROR     6   /* error event first */
#define NGX_HTTP_LLM_MOCK_SSE_ERROR_MID 7   /* error event after a chunk */
#define NGX_HTTP_LLM_MOCK_ROLE_STALL    8   /* role chunk, then nothing */
#define NGX_HTTP_LLM_MOCK_NO_DONE       9   /* end without [DONE] */

#define NGX_HTTP_LLM_MOCK_MAX_ECHO      200
#define NGX_HTTP_LLM_MOCK_MAX_REPLAY    (64 * 1024 * 1024)


struct ngx_http_llm_mock_conf_s {
    ngx_msec_t                  ttft;
    ngx_msec_t                  interval;
    ngx_uint_t                  chunks;
    ngx_uint_t                  status;
    ngx_uint_t                  fault;
    ngx_uint_t                  format;       /* NGX_HTTP_LLM_FORMAT_* */
    size_t                      size;
    size_t                      split;
    ngx_http_complex_value_t   *text;
    ngx_str_t                   replay;       /* the file's bytes */
    unsigned                    replaying:1;
    unsigned                    replay_sse:1;
};


typedef struct {
    ngx_http_request_t         *request;
    ngx_event_t                 timer;
    ngx_str_t                   text;         /* or the replayed bytes */
    ngx_str_t                   model;
    ngx_uint_t                  pieces;
    ngx_uint_t                  sent;
    ngx_msec_t                  ttft;
    ngx_msec_t                  interval;
    ngx_uint_t                  status;
    ngx_uint_t                  fault;
    ngx_uint_t                  format;
    size_t                      split;        /* replay: bytes a piece */
    size_t                      offset;       /* replay: bytes sent */
    int64_t                     prompt_tokens;
    time_t                      created;
    ngx_http_llm_sbuf_t         sb;           /* the next bytes to send */
    ngx_http_llm_ctx_t         *ctx;
    unsigned                    stream:1;
    unsigned                    include_usage:1;
    unsigned                    started:1;
    unsigned                    replay:1;
} ngx_http_llm_mock_ctx_t;


typedef struct {
    const char                 *name;
    ngx_uint_t                  fault;
} ngx_http_llm_mock_fault_t;


static ngx_int_t ngx_http_llm_mock_read_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *content);
static ngx_int_t ngx_http_llm_mock_handler(ngx_http_request_t *r);
static void ngx_http_llm_mock_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_llm_mock_setup(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, json_t *body);
static void ngx_http_llm_mock_model(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static void ngx_http_llm_mock_overrides(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static ngx_int_t ngx_http_llm_mock_fault(ngx_str_t *name);
static void ngx_http_llm_mock_echo(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, json_t *body);
static void ngx_http_llm_mock_timer(ngx_event_t *ev);
static void ngx_http_llm_mock_cleanup(void *data);
static ngx_int_t ngx_http_llm_mock_step(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static ngx_int_t ngx_http_llm_mock_start(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static ngx_int_t ngx_http_llm_mock_replay(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static ngx_int_t ngx_http_llm_mock_error(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static ngx_int_t ngx_http_llm_mock_json(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static json_t *ngx_http_llm_mock_answer(ngx_http_llm_mock_ctx_t *m);
static ngx_int_t ngx_http_llm_mock_header(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, off_t len);
static ngx_int_t ngx_http_llm_mock_send(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, ngx_uint_t last);
static ngx_int_t ngx_http_llm_mock_output(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, u_char *data, size_t len, ngx_uint_t last);
static ngx_int_t ngx_http_llm_mock_next(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, ngx_int_t rc);
static void ngx_http_llm_mock_writable(ngx_http_request_t *r);
static ngx_int_t ngx_http_llm_mock_opening(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static ngx_int_t ngx_http_llm_mock_content(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, ngx_str_t *piece);
static ngx_int_t ngx_http_llm_mock_closing(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static ngx_int_t ngx_http_llm_mock_stream_error(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, const char *message);
static ngx_int_t ngx_http_llm_mock_chunk(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, const char *role, ngx_str_t *content,
    const char *finish);
static ngx_int_t ngx_http_llm_mock_event(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, const char *name, json_t *json);
static void ngx_http_llm_mock_piece(ngx_http_llm_mock_ctx_t *m, ngx_uint_t n,
    ngx_str_t *piece);
static json_t *ngx_http_llm_mock_usage(ngx_http_llm_mock_ctx_t *m);
static json_t *ngx_http_llm_mock_gemini_usage(ngx_http_llm_mock_ctx_t *m);
static const char *ngx_http_llm_mock_anthropic_type(ngx_uint_t status);
static const char *ngx_http_llm_mock_gemini_status(ngx_uint_t status);


static ngx_http_llm_mock_fault_t  ngx_http_llm_mock_faults[] = {
    { "none", NGX_HTTP_LLM_MOCK_NONE },
    { "hang", NGX_HTTP_LLM_MOCK_HANG },
    { "close", NGX_HTTP_LLM_MOCK_CLOSE },
    { "drop", NGX_HTTP_LLM_MOCK_DROP },
    { "stall", NGX_HTTP_LLM_MOCK_STALL },
    { "garbage", NGX_HTTP_LLM_MOCK_GARBAGE },
    { "sse_error", NGX_HTTP_LLM_MOCK_SSE_ERROR },
    { "sse_error_mid", NGX_HTTP_LLM_MOCK_SSE_ERROR_MID },
    { "role_stall", NGX_HTTP_LLM_MOCK_ROLE_STALL },
    { "no_done", NGX_HTTP_LLM_MOCK_NO_DONE },
    { NULL, 0 }
};


char *
ngx_http_llm_mock(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_loc_conf_t *llcf = conf;

    ngx_int_t                          n;
    ngx_str_t                         *value, arg;
    ngx_uint_t                         i;
    ngx_http_llm_mock_conf_t          *mcf;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_compile_complex_value_t   ccv;

    if (llcf->mock) {
        return "is duplicate";
    }

    if (llcf->router) {
        return "cannot be used in a location with \"llm_router\"";
    }

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_llm_mock_conf_t));
    if (mcf == NULL) {
        return NGX_CONF_ERROR;
    }

    mcf->chunks = 4;
    mcf->interval = 10;
    mcf->format = NGX_HTTP_LLM_FORMAT_OPENAI;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "ttft=", 5) == 0) {
            arg.data = value[i].data + 5;
            arg.len = value[i].len - 5;

            mcf->ttft = ngx_parse_time(&arg, 0);
            if (mcf->ttft == (ngx_msec_t) NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "interval=", 9) == 0) {
            arg.data = value[i].data + 9;
            arg.len = value[i].len - 9;

            mcf->interval = ngx_parse_time(&arg, 0);
            if (mcf->interval == (ngx_msec_t) NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "chunks=", 7) == 0) {
            n = ngx_atoi(value[i].data + 7, value[i].len - 7);
            if (n < 1 || n > 100000) {
                goto invalid;
            }

            mcf->chunks = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "status=", 7) == 0) {
            n = ngx_atoi(value[i].data + 7, value[i].len - 7);
            if (n < 200 || n > 599) {
                goto invalid;
            }

            mcf->status = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "fault=", 6) == 0) {
            arg.data = value[i].data + 6;
            arg.len = value[i].len - 6;

            n = ngx_http_llm_mock_fault(&arg);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            mcf->fault = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "format=", 7) == 0) {
            arg.data = value[i].data + 7;
            arg.len = value[i].len - 7;

            if (arg.len == 6 && ngx_strncmp(arg.data, "openai", 6) == 0) {
                mcf->format = NGX_HTTP_LLM_FORMAT_OPENAI;

            } else if (arg.len == 9
                       && ngx_strncmp(arg.data, "anthropic", 9) == 0)
            {
                mcf->format = NGX_HTTP_LLM_FORMAT_ANTHROPIC;

            } else if (arg.len == 6
                       && ngx_strncmp(arg.data, "gemini", 6) == 0)
            {
                mcf->format = NGX_HTTP_LLM_FORMAT_GEMINI;

            } else {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            arg.data = value[i].data + 5;
            arg.len = value[i].len - 5;

            n = ngx_parse_size(&arg);
            if (n <= 0 || n > 64 * 1024 * 1024) {
                goto invalid;
            }

            mcf->size = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "split=", 6) == 0) {
            arg.data = value[i].data + 6;
            arg.len = value[i].len - 6;

            n = ngx_parse_size(&arg);
            if (n <= 0 || n > 64 * 1024 * 1024) {
                goto invalid;
            }

            mcf->split = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "replay=", 7) == 0) {
            arg.data = value[i].data + 7;
            arg.len = value[i].len - 7;

            if (arg.len == 0) {
                goto invalid;
            }

            if (ngx_conf_full_name(cf->cycle, &arg, 0) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            if (ngx_http_llm_mock_read_file(cf, &arg, &mcf->replay)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            mcf->replaying = 1;
            mcf->replay_sse = (arg.len > 4
                               && ngx_strncmp(arg.data + arg.len - 4, ".sse",
                                              4)
                                  == 0);
            continue;
        }

        if (ngx_strncmp(value[i].data, "text=", 5) == 0) {
            mcf->text = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
            if (mcf->text == NULL) {
                return NGX_CONF_ERROR;
            }

            arg.data = value[i].data + 5;
            arg.len = value[i].len - 5;

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

            ccv.cf = cf;
            ccv.value = &arg;
            ccv.complex_value = mcf->text;

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        goto invalid;
    }

    if (mcf->split && !mcf->replaying) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"split\" needs \"replay\" in \"llm_mock\"");
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_llm_mock_handler;

    llcf->mock = mcf;
    llcf->json_errors = 1;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"llm_mock\"", &value[i]);

    return NGX_CONF_ERROR;
}


/* the whole file, into the configuration's pool */

static ngx_int_t
ngx_http_llm_mock_read_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *content)
{
    off_t            size;
    size_t           got;
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_err_t        err;
    ngx_file_info_t  fi;

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"llm_mock\" cannot open replay file \"%s\"",
                           name->data);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        err = ngx_errno;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, err,
                           "\"llm_mock\" cannot read replay file \"%s\"",
                           name->data);
        goto failed;
    }

    size = ngx_file_size(&fi);

    if (!ngx_is_file(&fi) || size > NGX_HTTP_LLM_MOCK_MAX_REPLAY) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_mock\" replay file \"%s\" is not a regular "
                           "file of at most 64m", name->data);
        goto failed;
    }

    content->len = (size_t) size;
    content->data = ngx_pnalloc(cf->pool, content->len + 1);
    if (content->data == NULL) {
        goto failed;
    }

    for (got = 0; got < content->len; got += n) {
        n = ngx_read_fd(fd, content->data + got, content->len - got);

        if (n == -1 || n == 0) {
            err = (n == -1) ? ngx_errno : 0;
            ngx_conf_log_error(NGX_LOG_EMERG, cf, err,
                               "\"llm_mock\" cannot read replay file \"%s\"",
                               name->data);
            goto failed;
        }
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name->data);
    }

    return NGX_OK;

failed:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name->data);
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_llm_mock_fault(ngx_str_t *name)
{
    ngx_http_llm_mock_fault_t  *f;

    for (f = ngx_http_llm_mock_faults; f->name; f++) {
        if (ngx_strlen(f->name) == name->len
            && ngx_strncasecmp((u_char *) f->name, name->data, name->len) == 0)
        {
            return f->fault;
        }
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_llm_mock_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_llm_send_error(r, NGX_HTTP_NOT_ALLOWED, NULL,
                                       "method_not_allowed",
                                       "The mock provider takes POST only");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_llm_mock_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_llm_mock_body(ngx_http_request_t *r)
{
    u_char                    *data;
    size_t                     len;
    json_t                    *body;
    ngx_int_t                  rc;
    ngx_pool_cleanup_t        *cln;
    ngx_http_llm_ctx_t        *ctx;
    ngx_http_llm_mock_ctx_t   *m;
    ngx_http_llm_loc_conf_t   *llcf;

    ctx = ngx_http_llm_get_ctx(r);
    if (ctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_llm_read_body(r, &data, &len) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llm_router_module);

    /* a replay answers whatever was asked */

    body = NULL;

    if (!llcf->mock->replaying) {
        body = json_loadb((const char *) data, len, JSON_ALLOW_NUL, NULL);

        if (!json_is_object(body)) {
            json_decref(body);
            ngx_http_finalize_request(r,
                ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                        "invalid_json",
                                        "The mock wants a JSON object"));
            return;
        }
    }

    m = ngx_pcalloc(r->pool, sizeof(ngx_http_llm_mock_ctx_t));
    if (m == NULL) {
        json_decref(body);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->mock = m;
    m->ctx = ctx;
    m->request = r;
    m->prompt_tokens = ngx_max(1, (int64_t) len / 4);

    rc = ngx_http_llm_mock_setup(r, m, body);

    json_decref(body);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_http_llm_mock_cleanup;
    cln->data = m;

    /* ev->data is the connection, for nginx's timer debug log */

    m->timer.handler = ngx_http_llm_mock_timer;
    m->timer.data = r->connection;
    m->timer.log = r->connection->log;

    /* notice a client that goes away while we wait */

    r->read_event_handler = ngx_http_test_reading;

    ngx_add_timer(&m->timer, m->ttft);
}


static ngx_int_t
ngx_http_llm_mock_setup(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    json_t *body)
{
    u_char                    *p;
    size_t                     n, len;
    json_t                    *so;
    ngx_http_llm_loc_conf_t   *llcf;
    ngx_http_llm_mock_conf_t  *mcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llm_router_module);
    mcf = llcf->mock;

    m->ttft = mcf->ttft;
    m->interval = mcf->interval;
    m->pieces = mcf->chunks;
    m->status = mcf->status;
    m->fault = mcf->fault;
    m->format = mcf->format;
    m->created = ngx_time();

    if (mcf->replaying) {
        m->replay = 1;
        m->text = mcf->replay;
        m->split = mcf->split ? mcf->split : ngx_max(mcf->replay.len, 1);

        ngx_http_llm_mock_overrides(r, m);

        return NGX_OK;
    }

    if (m->format == NGX_HTTP_LLM_FORMAT_GEMINI) {
        /* models/M:streamGenerateContent?alt=sse */

        m->stream = (ngx_strnstr(r->uri.data, ":streamGenerateContent",
                                 r->uri.len)
                     != NULL);

    } else {
        m->stream = json_is_true(json_object_get(body, "stream"));
    }

    so = json_object_get(body, "stream_options");
    m->include_usage = json_is_true(json_object_get(so, "include_usage"));

    if (ngx_http_llm_json_get_str(body, "model", &m->model) == NGX_OK) {
        p = ngx_pnalloc(r->pool, m->model.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, m->model.data, m->model.len);
        m->model.data = p;

    } else {
        ngx_http_llm_mock_model(r, m);
    }

    if (mcf->text) {
        if (ngx_http_complex_value(r, mcf->text, &m->text) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        ngx_http_llm_mock_echo(r, m, body);
    }

    ngx_http_llm_mock_overrides(r, m);

    if (m->text.len == 0) {
        ngx_str_set(&m->text, "(empty)");
    }

    if (mcf->size) {
        /* the text repeated to the size asked for */

        p = ngx_pnalloc(r->pool, mcf->size);
        if (p == NULL) {
            return NGX_ERROR;
        }

        for (n = 0; n < mcf->size; n += len) {
            len = ngx_min(m->text.len, mcf->size - n);
            ngx_memcpy(p + n, m->text.data, len);
        }

        m->text.data = p;
        m->text.len = mcf->size;
    }

    if (m->pieces > m->text.len) {
        m->pieces = m->text.len;
    }

    return NGX_OK;
}


/* a body without "model": Gemini's is in the URI, models/M:method */

static void
ngx_http_llm_mock_model(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    u_char  *p, *last, *colon;

    ngx_str_set(&m->model, "mock");

    last = r->uri.data + r->uri.len;

    p = ngx_strnstr(r->uri.data, "models/", r->uri.len);
    if (p == NULL) {
        return;
    }

    p += sizeof("models/") - 1;

    colon = ngx_strlchr(p, last, ':');
    if (colon == NULL) {
        colon = last;
    }

    if (colon > p) {
        m->model.data = p;
        m->model.len = colon - p;
    }
}


/*
 * "Hello from the mock provider. You said: <the last user message>": the
 * last "user" of OpenAI's or Anthropic's "messages" (a string, or the
 * first text part or block), or of Gemini's "contents" (its first text
 * part; a content without a role is the user's).
 */

static void
ngx_http_llm_mock_echo(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    json_t *body)
{
    u_char      *p;
    size_t       i, len;
    json_t      *msgs, *msg, *content, *part, *last, *role;
    ngx_str_t    said;
    ngx_uint_t   gemini;

    last = NULL;
    gemini = 0;

    msgs = json_object_get(body, "messages");

    if (!json_is_array(msgs)) {
        msgs = json_object_get(body, "contents");
        gemini = 1;
    }

    json_array_foreach(msgs, i, msg) {
        role = json_object_get(msg, "role");

        if ((json_is_string(role)
             && ngx_strcmp(json_string_value(role), "user") == 0)
            || (gemini && role == NULL && json_is_object(msg)))
        {
            last = msg;
        }
    }

    ngx_str_set(&said, "");

    content = json_object_get(last, gemini ? "parts" : "content");

    if (json_is_array(content)) {
        json_array_foreach(content, i, part) {
            if (json_is_string(json_object_get(part, "text"))) {
                content = json_object_get(part, "text");
                break;
            }
        }
    }

    if (json_is_string(content)) {
        said.data = (u_char *) json_string_value(content);
        said.len = json_string_length(content);
    }

    len = ngx_min(said.len, NGX_HTTP_LLM_MOCK_MAX_ECHO);

    /* do not cut a UTF-8 sequence */

    while (len < said.len && len > 0 && (said.data[len] & 0xc0) == 0x80) {
        len--;
    }

    p = ngx_pnalloc(r->pool, sizeof("Hello from the mock provider. You said: ")
                             - 1 + len);
    if (p == NULL) {
        return;
    }

    m->text.data = p;
    p = ngx_cpymem(p, "Hello from the mock provider. You said: ",
                   sizeof("Hello from the mock provider. You said: ") - 1);
    p = ngx_cpymem(p, said.data, len);
    m->text.len = p - m->text.data;
}


static void
ngx_http_llm_mock_overrides(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    ngx_int_t         n;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len < 7
            || ngx_strncasecmp(h[i].key.data, (u_char *) "x-mock-", 7) != 0)
        {
            continue;
        }

        n = ngx_atoi(h[i].value.data, h[i].value.len);

        if (h[i].key.len == 11
            && ngx_strncasecmp(h[i].key.data + 7, (u_char *) "ttft", 4) == 0
            && n != NGX_ERROR)
        {
            m->ttft = n;

        } else if (h[i].key.len == 15
                   && ngx_strncasecmp(h[i].key.data + 7,
                                      (u_char *) "interval", 8) == 0
                   && n != NGX_ERROR)
        {
            m->interval = n;

        } else if (h[i].key.len == 13
                   && ngx_strncasecmp(h[i].key.data + 7,
                                      (u_char *) "chunks", 6) == 0
                   && n > 0 && n <= 100000)
        {
            m->pieces = n;

        } else if (h[i].key.len == 13
                   && ngx_strncasecmp(h[i].key.data + 7,
                                      (u_char *) "status", 6) == 0
                   && n >= 200 && n <= 599)
        {
            m->status = n;

        } else if (h[i].key.len == 12
                   && ngx_strncasecmp(h[i].key.data + 7,
                                      (u_char *) "fault", 5) == 0)
        {
            n = ngx_http_llm_mock_fault(&h[i].value);

            if (n != NGX_ERROR) {
                m->fault = n;
            }
        }
    }
}


static void
ngx_http_llm_mock_timer(ngx_event_t *ev)
{
    ngx_int_t                 rc;
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_llm_mock_ctx_t  *m;

    m = (ngx_http_llm_mock_ctx_t *) ((u_char *) ev
                                     - offsetof(ngx_http_llm_mock_ctx_t,
                                                timer));
    r = m->request;
    c = r->connection;

    rc = ngx_http_llm_mock_step(r, m);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/* after a chunk: the next one in "interval", or once the client took it */

static ngx_int_t
ngx_http_llm_mock_next(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    ngx_int_t rc)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_AGAIN) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        r->write_event_handler = ngx_http_llm_mock_writable;

        if (!r->connection->write->ready) {
            ngx_add_timer(r->connection->write, clcf->send_timeout);
        }

        if (ngx_handle_write_event(r->connection->write, clcf->send_lowat)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_DONE;
    }

    ngx_add_timer(&m->timer, m->interval);

    return NGX_DONE;
}


static void
ngx_http_llm_mock_writable(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_event_t              *wev;
    ngx_http_llm_ctx_t       *ctx;
    ngx_http_llm_mock_ctx_t  *m;

    wev = r->connection->write;

    if (wev->timedout) {
        r->connection->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);
    m = ctx->mock;

    rc = ngx_http_output_filter(r, NULL);

    if (rc == NGX_AGAIN) {
        rc = ngx_http_llm_mock_next(r, m, rc);

        if (rc != NGX_DONE) {
            ngx_http_finalize_request(r, rc);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    rc = ngx_http_llm_mock_next(r, m, rc);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


static void
ngx_http_llm_mock_cleanup(void *data)
{
    ngx_http_llm_mock_ctx_t *m = data;

    if (m->timer.timer_set) {
        ngx_del_timer(&m->timer);
    }
}


/* NGX_DONE: more to come, or nothing ever; anything else finalizes */

static ngx_int_t
ngx_http_llm_mock_step(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    ngx_int_t             rc;
    ngx_str_t             piece;
    ngx_uint_t            last;
    ngx_http_llm_sbuf_t  *sb;

    if (m->replay) {
        return ngx_http_llm_mock_replay(r, m);
    }

    if (!m->started) {
        m->started = 1;
        return ngx_http_llm_mock_start(r, m);
    }

    sb = &m->sb;
    sb->len = 0;

    if (m->fault == NGX_HTTP_LLM_MOCK_DROP) {
        /* close in the middle of the stream */
        return NGX_ERROR;
    }

    if (m->fault == NGX_HTTP_LLM_MOCK_SSE_ERROR_MID) {
        rc = ngx_http_llm_mock_stream_error(r, m,
                                            "mock failure in the middle");
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_llm_mock_send(r, m, 1);
    }

    if (m->sent < m->pieces) {
        ngx_http_llm_mock_piece(m, m->sent++, &piece);

        if (ngx_http_llm_mock_content(r, m, &piece) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    last = (m->sent == m->pieces);

    if (last) {
        if (ngx_http_llm_mock_closing(r, m) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_llm_mock_send(r, m, 1);
    }

    return ngx_http_llm_mock_next(r, m, ngx_http_llm_mock_send(r, m, 0));
}


static ngx_int_t
ngx_http_llm_mock_start(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    ngx_int_t             rc;
    ngx_str_t             piece, empty;
    ngx_table_elt_t      *h;
    ngx_http_llm_sbuf_t  *sb;

    sb = &m->sb;
    sb->len = 0;

    switch (m->fault) {

    case NGX_HTTP_LLM_MOCK_HANG:
        return NGX_DONE;

    case NGX_HTTP_LLM_MOCK_CLOSE:
        return NGX_HTTP_CLOSE;

    case NGX_HTTP_LLM_MOCK_GARBAGE:
        if (ngx_http_llm_sbuf_append(r->pool, sb,
                                     (u_char *) "data: {this is not json\n\n",
                                     sizeof("data: {this is not json\n\n") - 1,
                                     0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        rc = ngx_http_llm_mock_header(r, NGX_HTTP_OK,
                                      m->stream ? "text/event-stream"
                                                : "application/json",
                                      sb->len);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_llm_mock_send(r, m, 1);
    }

    if (m->status && m->status != NGX_HTTP_OK) {

        if (m->status == NGX_HTTP_TOO_MANY_REQUESTS) {
            h = ngx_list_push(&r->headers_out.headers);
            if (h == NULL) {
                return NGX_ERROR;
            }

            h->hash = 1;
            ngx_str_set(&h->key, "Retry-After");
            ngx_str_set(&h->value, "1");
        }

        return ngx_http_llm_mock_error(r, m);
    }

    if (!m->stream) {
        return ngx_http_llm_mock_json(r, m);
    }

    rc = ngx_http_llm_mock_header(r, NGX_HTTP_OK,
                                  (m->format == NGX_HTTP_LLM_FORMAT_ANTHROPIC)
                                  ? "text/event-stream; charset=utf-8"
                                  : "text/event-stream",
                                  -1);
    if (rc != NGX_OK) {
        return rc;
    }

    if (m->fault == NGX_HTTP_LLM_MOCK_SSE_ERROR) {
        rc = ngx_http_llm_mock_stream_error(r, m,
                                            "mock failure before the answer");
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_llm_mock_send(r, m, 1);
    }

    if (m->fault == NGX_HTTP_LLM_MOCK_ROLE_STALL) {

        if (m->format == NGX_HTTP_LLM_FORMAT_GEMINI) {
            /* an event with an empty text */

            ngx_str_set(&empty, "");

            rc = ngx_http_llm_mock_content(r, m, &empty);

        } else {
            rc = ngx_http_llm_mock_opening(r, m);
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        rc = ngx_http_llm_mock_send(r, m, 0);
        return (rc == NGX_ERROR) ? NGX_ERROR : NGX_DONE;
    }

    if (ngx_http_llm_mock_opening(r, m) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_llm_mock_piece(m, m->sent++, &piece);

    if (ngx_http_llm_mock_content(r, m, &piece) != NGX_OK) {
        return NGX_ERROR;
    }

    if (m->sent == m->pieces && m->fault == NGX_HTTP_LLM_MOCK_NONE) {
        /* a one-piece answer: the rest goes at once */
        m->interval = 0;
    }

    rc = ngx_http_llm_mock_send(r, m, 0);

    if (m->fault == NGX_HTTP_LLM_MOCK_STALL && rc != NGX_ERROR) {
        return NGX_DONE;
    }

    return ngx_http_llm_mock_next(r, m, rc);
}


/*
 * A recorded answer: its bytes as they are, in pieces of "split" bytes.
 * hang and close act before the answer, drop and stall after its first
 * piece; the other faults have no meaning here.
 */

static ngx_int_t
ngx_http_llm_mock_replay(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    size_t                     len;
    ngx_int_t                  rc;
    ngx_uint_t                 last;
    ngx_table_elt_t           *h;
    ngx_http_llm_loc_conf_t   *llcf;

    if (!m->started) {
        m->started = 1;

        if (m->fault == NGX_HTTP_LLM_MOCK_HANG) {
            return NGX_DONE;
        }

        if (m->fault == NGX_HTTP_LLM_MOCK_CLOSE) {
            return NGX_HTTP_CLOSE;
        }

        if (m->status == NGX_HTTP_TOO_MANY_REQUESTS) {
            h = ngx_list_push(&r->headers_out.headers);
            if (h == NULL) {
                return NGX_ERROR;
            }

            h->hash = 1;
            ngx_str_set(&h->key, "Retry-After");
            ngx_str_set(&h->value, "1");
        }

        llcf = ngx_http_get_module_loc_conf(r, ngx_http_llm_router_module);

        rc = ngx_http_llm_mock_header(r, m->status ? m->status : NGX_HTTP_OK,
                                      llcf->mock->replay_sse
                                      ? "text/event-stream"
                                      : "application/json",
                                      llcf->mock->replay_sse
                                      ? -1 : (off_t) m->text.len);
        if (rc != NGX_OK) {
            return rc;
        }

    } else if (m->fault == NGX_HTTP_LLM_MOCK_DROP) {
        return NGX_ERROR;
    }

    len = ngx_min(m->split, m->text.len - m->offset);
    last = (m->offset + len == m->text.len);

    rc = ngx_http_llm_mock_output(r, m, m->text.data + m->offset, len, last);

    m->offset += len;

    if (last || rc == NGX_ERROR) {
        return rc;
    }

    if (m->fault == NGX_HTTP_LLM_MOCK_STALL) {
        return NGX_DONE;
    }

    return ngx_http_llm_mock_next(r, m, rc);
}


/* status=CODE in the dialect's error shape */

static ngx_int_t
ngx_http_llm_mock_error(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    u_char      buf[64];
    json_t     *json;
    ngx_int_t   rc;
    ngx_str_t   msg;

    msg.data = buf;
    msg.len = ngx_sprintf(buf, "mock failure %ui", m->status) - buf;

    switch (m->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        json = json_pack("{s:s,s:{s:s,s:s%},s:s}",
                         "type", "error",
                         "error",
                           "type",
                           ngx_http_llm_mock_anthropic_type(m->status),
                           "message", msg.data, msg.len,
                         "request_id", "req_mock");
        break;

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        json = json_pack("{s:{s:i,s:s%,s:s}}",
                         "error",
                           "code", (int) m->status,
                           "message", msg.data, msg.len,
                           "status",
                           ngx_http_llm_mock_gemini_status(m->status));
        break;

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        return ngx_http_llm_send_error(r, m->status, "mock_error", NULL,
                                       "mock failure %ui", m->status);
    }

    if (json == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_llm_send_json(r, m->status, json);

    json_decref(json);

    return rc;
}


static ngx_int_t
ngx_http_llm_mock_json(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    json_t     *json;
    ngx_int_t   rc;

    json = ngx_http_llm_mock_answer(m);
    if (json == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_llm_json_dump(r->pool, json, &m->sb);

    json_decref(json);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_llm_mock_header(r, NGX_HTTP_OK,
                                  (m->format == NGX_HTTP_LLM_FORMAT_GEMINI)
                                  ? "application/json; charset=UTF-8"
                                  : "application/json",
                                  m->sb.len);
    if (rc != NGX_OK) {
        return rc;
    }

    if (m->fault == NGX_HTTP_LLM_MOCK_DROP
        || m->fault == NGX_HTTP_LLM_MOCK_STALL)
    {
        /* half of the promised body, then trouble */

        m->sb.len /= 2;

        rc = ngx_http_llm_mock_send(r, m, 0);

        if (rc == NGX_ERROR || m->fault == NGX_HTTP_LLM_MOCK_DROP) {
            return NGX_ERROR;
        }

        return NGX_DONE;
    }

    return ngx_http_llm_mock_send(r, m, 1);
}


/* the whole answer in the dialect's JSON */

static json_t *
ngx_http_llm_mock_answer(ngx_http_llm_mock_ctx_t *m)
{
    switch (m->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        return json_pack("{s:s,s:s,s:s,s:s%,s:[{s:s,s:s%}],s:s,s:n,"
                         "s:{s:I,s:I}}",
                         "id", "msg_mock",
                         "type", "message",
                         "role", "assistant",
                         "model", m->model.data, m->model.len,
                         "content",
                           "type", "text",
                           "text", m->text.data, m->text.len,
                         "stop_reason", "end_turn",
                         "stop_sequence",
                         "usage",
                           "input_tokens", (json_int_t) m->prompt_tokens,
                           "output_tokens", (json_int_t) m->pieces);

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        return json_pack("{s:[{s:{s:[{s:s%}],s:s},s:s,s:i}],s:o,s:s%,s:s}",
                         "candidates",
                           "content",
                             "parts",
                               "text", m->text.data, m->text.len,
                             "role", "model",
                           "finishReason", "STOP",
                           "index", 0,
                         "usageMetadata", ngx_http_llm_mock_gemini_usage(m),
                         "modelVersion", m->model.data, m->model.len,
                         "responseId", "mock");

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        return json_pack("{s:s,s:s,s:I,s:s%,s:[{s:i,s:{s:s,s:s%},s:s}],s:o}",
                         "id", "chatcmpl-mock",
                         "object", "chat.completion",
                         "created", (json_int_t) m->created,
                         "model", m->model.data, m->model.len,
                         "choices",
                           "index", 0,
                           "message",
                             "role", "assistant",
                             "content", m->text.data, m->text.len,
                           "finish_reason", "stop",
                         "usage", ngx_http_llm_mock_usage(m));
    }
}


static ngx_int_t
ngx_http_llm_mock_header(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, off_t len)
{
    ngx_int_t            rc;
    ngx_http_llm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);
    ctx->own_output = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    return NGX_OK;
}


/* sends m->sb, in buffers reused once the client took them */

static ngx_int_t
ngx_http_llm_mock_send(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    ngx_uint_t last)
{
    return ngx_http_llm_mock_output(r, m, m->sb.data, m->sb.len, last);
}


/* nothing to send is no buffer at all: the end alone, or nothing */

static ngx_int_t
ngx_http_llm_mock_output(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    u_char *data, size_t len, ngx_uint_t last)
{
    if (len == 0) {
        return last ? ngx_http_send_special(r, NGX_HTTP_LAST) : NGX_OK;
    }

    return ngx_http_llm_output(r, m->ctx, data, len, last);
}


/* what a stream says before its first piece */

static ngx_int_t
ngx_http_llm_mock_opening(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    ngx_str_t  empty;

    switch (m->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        if (ngx_http_llm_mock_event(r, m, "message_start",
                json_pack("{s:s,s:{s:s,s:s,s:s,s:s%,s:[],s:n,s:n,"
                          "s:{s:I,s:i}}}",
                          "type", "message_start",
                          "message",
                            "id", "msg_mock",
                            "type", "message",
                            "role", "assistant",
                            "model", m->model.data, m->model.len,
                            "content",
                            "stop_reason",
                            "stop_sequence",
                            "usage",
                              "input_tokens", (json_int_t) m->prompt_tokens,
                              "output_tokens", 1))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (m->fault == NGX_HTTP_LLM_MOCK_ROLE_STALL) {
            return NGX_OK;
        }

        if (ngx_http_llm_mock_event(r, m, "content_block_start",
                json_pack("{s:s,s:i,s:{s:s,s:s}}",
                          "type", "content_block_start",
                          "index", 0,
                          "content_block", "type", "text", "text", ""))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_http_llm_mock_event(r, m, "ping",
                                       json_pack("{s:s}", "type", "ping"));

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        return NGX_OK;

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        ngx_str_set(&empty, "");

        return ngx_http_llm_mock_chunk(r, m, "assistant", &empty, NULL);
    }
}


/*
 * One piece of the text.  Gemini's last piece carries the finish and the
 * usage, unless a fault wants the stream cut.
 */

static ngx_int_t
ngx_http_llm_mock_content(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    ngx_str_t *piece)
{
    json_t  *json, *candidate;

    switch (m->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        return ngx_http_llm_mock_event(r, m, "content_block_delta",
                   json_pack("{s:s,s:i,s:{s:s,s:s%}}",
                             "type", "content_block_delta",
                             "index", 0,
                             "delta",
                               "type", "text_delta",
                               "text", piece->data, piece->len));

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        json = json_pack("{s:[{s:{s:[{s:s%}],s:s},s:i}],s:s%,s:s}",
                         "candidates",
                           "content",
                             "parts",
                               "text", piece->data, piece->len,
                             "role", "model",
                           "index", 0,
                         "modelVersion", m->model.data, m->model.len,
                         "responseId", "mock");
        if (json == NULL) {
            return NGX_ERROR;
        }

        if (m->sent == m->pieces && m->fault == NGX_HTTP_LLM_MOCK_NONE) {
            candidate = json_array_get(json_object_get(json, "candidates"), 0);

            if (json_object_set_new(candidate, "finishReason",
                                    json_string("STOP"))
                != 0
                || json_object_set_new(json, "usageMetadata",
                                       ngx_http_llm_mock_gemini_usage(m))
                   != 0)
            {
                json_decref(json);
                return NGX_ERROR;
            }
        }

        return ngx_http_llm_mock_event(r, m, NULL, json);

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        return ngx_http_llm_mock_chunk(r, m, NULL, piece, NULL);
    }
}


/* what follows the last piece; no_done leaves out the end marker */

static ngx_int_t
ngx_http_llm_mock_closing(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    ngx_http_llm_sbuf_t  *sb;

    sb = &m->sb;

    switch (m->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        if (ngx_http_llm_mock_event(r, m, "content_block_stop",
                json_pack("{s:s,s:i}", "type", "content_block_stop",
                          "index", 0))
            != NGX_OK
            || ngx_http_llm_mock_event(r, m, "message_delta",
                   json_pack("{s:s,s:{s:s,s:n},s:{s:I}}",
                             "type", "message_delta",
                             "delta",
                               "stop_reason", "end_turn",
                               "stop_sequence",
                             "usage",
                               "output_tokens", (json_int_t) m->pieces))
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (m->fault == NGX_HTTP_LLM_MOCK_NO_DONE) {
            return NGX_OK;
        }

        return ngx_http_llm_mock_event(r, m, "message_stop",
                                       json_pack("{s:s}",
                                                 "type", "message_stop"));

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        /* the last piece said it all */
        return NGX_OK;

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        break;
    }

    if (ngx_http_llm_mock_chunk(r, m, NULL, NULL, "stop") != NGX_OK) {
        return NGX_ERROR;
    }

    if (m->include_usage
        && ngx_http_llm_mock_event(r, m, NULL,
               json_pack("{s:s,s:s,s:I,s:s%,s:[],s:o}",
                         "id", "chatcmpl-mock",
                         "object", "chat.completion.chunk",
                         "created", (json_int_t) m->created,
                         "model", m->model.data, m->model.len,
                         "choices",
                         "usage", ngx_http_llm_mock_usage(m)))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (m->fault != NGX_HTTP_LLM_MOCK_NO_DONE
        && ngx_http_llm_sbuf_append(r->pool, sb,
                                    (u_char *) "data: [DONE]\n\n", 14, 0)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* an error inside a stream, as the dialect says it */

static ngx_int_t
ngx_http_llm_mock_stream_error(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, const char *message)
{
    switch (m->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        return ngx_http_llm_mock_event(r, m, "error",
                   json_pack("{s:s,s:{s:s,s:s}}",
                             "type", "error",
                             "error",
                               "type", "api_error",
                               "message", message));

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        return ngx_http_llm_mock_event(r, m, NULL,
                   json_pack("{s:{s:i,s:s,s:s}}",
                             "error",
                               "code", 500,
                               "message", message,
                               "status", "INTERNAL"));

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        return ngx_http_llm_mock_event(r, m, NULL,
                   json_pack("{s:{s:s,s:s,s:i}}",
                             "error",
                               "message", message,
                               "type", "server_error",
                               "code", 500));
    }
}


static ngx_int_t
ngx_http_llm_mock_chunk(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    const char *role, ngx_str_t *content, const char *finish)
{
    json_t  *delta;

    delta = json_object();

    if (delta == NULL
        || (role && json_object_set_new(delta, "role", json_string(role)) != 0)
        || (content
            && json_object_set_new(delta, "content",
                                   ngx_http_llm_json_str(content))
               != 0))
    {
        json_decref(delta);
        return NGX_ERROR;
    }

    return ngx_http_llm_mock_event(r, m, NULL,
               json_pack("{s:s,s:s,s:I,s:s%,s:[{s:i,s:o,s:s?}]}",
                         "id", "chatcmpl-mock",
                         "object", "chat.completion.chunk",
                         "created", (json_int_t) m->created,
                         "model", m->model.data, m->model.len,
                         "choices",
                           "index", 0,
                           "delta", delta,
                           "finish_reason", finish));
}


/*
 * Appends one event to m->sb and releases the json: "event: <name>\n"
 * when it has a name, "data: <json>", and the blank line, which Gemini
 * writes with CRLF.
 */

static ngx_int_t
ngx_http_llm_mock_event(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    const char *name, json_t *json)
{
    ngx_int_t             rc;
    ngx_http_llm_sbuf_t  *sb;

    if (json == NULL) {
        return NGX_ERROR;
    }

    sb = &m->sb;
    rc = NGX_ERROR;

    if (name
        && (ngx_http_llm_sbuf_append(r->pool, sb, (u_char *) "event: ", 7, 0)
            != NGX_OK
            || ngx_http_llm_sbuf_append(r->pool, sb, (u_char *) name,
                                        ngx_strlen(name), 0)
               != NGX_OK
            || ngx_http_llm_sbuf_append(r->pool, sb, (u_char *) "\n", 1, 0)
               != NGX_OK))
    {
        goto done;
    }

    if (ngx_http_llm_sbuf_append(r->pool, sb, (u_char *) "data: ", 6, 0)
        != NGX_OK
        || ngx_http_llm_json_append(r->pool, json, sb) != NGX_OK)
    {
        goto done;
    }

    if (m->format == NGX_HTTP_LLM_FORMAT_GEMINI) {
        rc = ngx_http_llm_sbuf_append(r->pool, sb, (u_char *) "\r\n\r\n", 4,
                                      0);

    } else {
        rc = ngx_http_llm_sbuf_append(r->pool, sb, (u_char *) "\n\n", 2, 0);
    }

done:

    json_decref(json);

    return (rc == NGX_OK) ? NGX_OK : NGX_ERROR;
}


/* the n-th of m->pieces nearly equal parts of the text, whole characters */

static void
ngx_http_llm_mock_piece(ngx_http_llm_mock_ctx_t *m, ngx_uint_t n,
    ngx_str_t *piece)
{
    size_t  from, to;

    from = m->text.len * n / m->pieces;
    to = m->text.len * (n + 1) / m->pieces;

    while (from > 0 && from < m->text.len
           && (m->text.data[from] & 0xc0) == 0x80)
    {
        from--;
    }

    while (to < m->text.len && (m->text.data[to] & 0xc0) == 0x80) {
        to--;
    }

    if (n + 1 == m->pieces) {
        to = m->text.len;
    }

    if (to < from) {
        to = from;
    }

    piece->data = m->text.data + from;
    piece->len = to - from;
}


static json_t *
ngx_http_llm_mock_usage(ngx_http_llm_mock_ctx_t *m)
{
    return json_pack("{s:I,s:I,s:I}",
                     "prompt_tokens", (json_int_t) m->prompt_tokens,
                     "completion_tokens", (json_int_t) m->pieces,
                     "total_tokens",
                     (json_int_t) (m->prompt_tokens + m->pieces));
}


static json_t *
ngx_http_llm_mock_gemini_usage(ngx_http_llm_mock_ctx_t *m)
{
    return json_pack("{s:I,s:I,s:I}",
                     "promptTokenCount", (json_int_t) m->prompt_tokens,
                     "candidatesTokenCount", (json_int_t) m->pieces,
                     "totalTokenCount",
                     (json_int_t) (m->prompt_tokens + m->pieces));
}


static const char *
ngx_http_llm_mock_anthropic_type(ngx_uint_t status)
{
    switch (status) {

    case NGX_HTTP_BAD_REQUEST:
        return "invalid_request_error";

    case NGX_HTTP_UNAUTHORIZED:
        return "authentication_error";

    case 402:
        return "billing_error";

    case NGX_HTTP_FORBIDDEN:
        return "permission_error";

    case NGX_HTTP_NOT_FOUND:
        return "not_found_error";

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return "request_too_large";

    case NGX_HTTP_TOO_MANY_REQUESTS:
        return "rate_limit_error";

    case NGX_HTTP_GATEWAY_TIME_OUT:
        return "timeout_error";

    case 529:
        return "overloaded_error";

    default:
        break;
    }

    return (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? "api_error"
                                                      : "invalid_request_error";
}


static const char *
ngx_http_llm_mock_gemini_status(ngx_uint_t status)
{
    switch (status) {

    case NGX_HTTP_BAD_REQUEST:
        return "INVALID_ARGUMENT";

    case NGX_HTTP_UNAUTHORIZED:
        return "UNAUTHENTICATED";

    case NGX_HTTP_FORBIDDEN:
        return "PERMISSION_DENIED";

    case NGX_HTTP_NOT_FOUND:
        return "NOT_FOUND";

    case NGX_HTTP_CONFLICT:
        return "ABORTED";

    case NGX_HTTP_TOO_MANY_REQUESTS:
        return "RESOURCE_EXHAUSTED";

    case NGX_HTTP_NOT_IMPLEMENTED:
        return "UNIMPLEMENTED";

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        return "UNAVAILABLE";

    case NGX_HTTP_GATEWAY_TIME_OUT:
        return "DEADLINE_EXCEEDED";

    default:
        break;
    }

    return (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? "INTERNAL"
                                                      : "FAILED_PRECONDITION";
}
