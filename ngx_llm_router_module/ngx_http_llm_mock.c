
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * A mock OpenAI-dialect provider, for the quickstart, the tests and the
 * benchmark.  It answers chat completions deterministically, as JSON or as
 * an event stream, after a configurable time to first token, in a number of
 * chunks with a delay between them (timers, never sleeping), and injects
 * failures on demand:
 *
 *     llm_mock [ttft=TIME] [interval=TIME] [chunks=N] [status=CODE]
 *              [fault=NAME] [text=STRING] [size=SIZE];
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


struct ngx_http_llm_mock_conf_s {
    ngx_msec_t                  ttft;
    ngx_msec_t                  interval;
    ngx_uint_t                  chunks;
    ngx_uint_t                  status;
    ngx_uint_t                  fault;
    size_t                      size;
    ngx_http_complex_value_t   *text;
};


typedef struct {
    ngx_http_request_t         *request;
    ngx_event_t                 timer;
    ngx_str_t                   text;
    ngx_str_t                   model;
    ngx_uint_t                  pieces;
    ngx_uint_t                  sent;
    ngx_msec_t                  ttft;
    ngx_msec_t                  interval;
    ngx_uint_t                  status;
    ngx_uint_t                  fault;
    int64_t                     prompt_tokens;
    time_t                      created;
    ngx_http_llm_sbuf_t         sb;           /* the next bytes to send */
    ngx_http_llm_ctx_t         *ctx;
    unsigned                    stream:1;
    unsigned                    include_usage:1;
    unsigned                    started:1;
} ngx_http_llm_mock_ctx_t;


typedef struct {
    const char                 *name;
    ngx_uint_t                  fault;
} ngx_http_llm_mock_fault_t;


static ngx_int_t ngx_http_llm_mock_handler(ngx_http_request_t *r);
static void ngx_http_llm_mock_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_llm_mock_setup(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, json_t *body);
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
static ngx_int_t ngx_http_llm_mock_json(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m);
static ngx_int_t ngx_http_llm_mock_header(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, off_t len);
static ngx_int_t ngx_http_llm_mock_send(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, ngx_uint_t last);
static ngx_int_t ngx_http_llm_mock_next(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, ngx_int_t rc);
static void ngx_http_llm_mock_writable(ngx_http_request_t *r);
static ngx_int_t ngx_http_llm_mock_chunk(ngx_http_request_t *r,
    ngx_http_llm_mock_ctx_t *m, ngx_http_llm_sbuf_t *sb, const char *role,
    ngx_str_t *content, const char *finish);
static ngx_int_t ngx_http_llm_mock_event(ngx_http_request_t *r,
    ngx_http_llm_sbuf_t *sb, json_t *json);
static void ngx_http_llm_mock_piece(ngx_http_llm_mock_ctx_t *m, ngx_uint_t n,
    ngx_str_t *piece);
static json_t *ngx_http_llm_mock_usage(ngx_http_llm_mock_ctx_t *m);


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
    u_char                   *data;
    size_t                    len;
    json_t                   *body;
    ngx_int_t                 rc;
    ngx_pool_cleanup_t       *cln;
    ngx_http_llm_ctx_t       *ctx;
    ngx_http_llm_mock_ctx_t  *m;

    ctx = ngx_http_llm_get_ctx(r);
    if (ctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_llm_read_body(r, &data, &len) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    body = json_loadb((const char *) data, len, JSON_ALLOW_NUL, NULL);

    if (!json_is_object(body)) {
        json_decref(body);
        ngx_http_finalize_request(r,
            ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                    "invalid_json",
                                    "The mock wants a JSON object"));
        return;
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
    json_t                    *model, *so;
    ngx_http_llm_loc_conf_t   *llcf;
    ngx_http_llm_mock_conf_t  *mcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llm_router_module);
    mcf = llcf->mock;

    m->ttft = mcf->ttft;
    m->interval = mcf->interval;
    m->pieces = mcf->chunks;
    m->status = mcf->status;
    m->fault = mcf->fault;
    m->created = ngx_time();

    m->stream = json_is_true(json_object_get(body, "stream"));

    so = json_object_get(body, "stream_options");
    m->include_usage = json_is_true(json_object_get(so, "include_usage"));

    model = json_object_get(body, "model");

    if (json_is_string(model)) {
        m->model.len = json_string_length(model);
        m->model.data = ngx_pnalloc(r->pool, m->model.len);
        if (m->model.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(m->model.data, json_string_value(model), m->model.len);

    } else {
        ngx_str_set(&m->model, "mock");
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


/* "Hello from the mock provider. You said: <the last user message>" */

static void
ngx_http_llm_mock_echo(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    json_t *body)
{
    u_char     *p;
    size_t      i, len;
    json_t     *msgs, *msg, *content, *part, *last;
    ngx_str_t   said;

    last = NULL;
    msgs = json_object_get(body, "messages");

    json_array_foreach(msgs, i, msg) {
        if (json_is_string(json_object_get(msg, "role"))
            && ngx_strcmp(json_string_value(json_object_get(msg, "role")),
                          "user") == 0)
        {
            last = msg;
        }
    }

    ngx_str_set(&said, "");

    content = json_object_get(last, "content");

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
        rc = ngx_http_llm_mock_event(r, sb,
                 json_pack("{s:{s:s,s:s,s:i}}", "error",
                           "message", "mock failure in the middle",
                           "type", "server_error", "code", 500));
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_llm_mock_send(r, m, 1);
    }

    if (m->sent < m->pieces) {
        ngx_http_llm_mock_piece(m, m->sent++, &piece);

        if (ngx_http_llm_mock_chunk(r, m, sb, NULL, &piece, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    last = (m->sent == m->pieces);

    if (last) {
        if (ngx_http_llm_mock_chunk(r, m, sb, NULL, NULL, "stop") != NGX_OK) {
            return NGX_ERROR;
        }

        if (m->include_usage
            && ngx_http_llm_mock_event(r, sb,
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

        return ngx_http_llm_send_error(r, m->status, "mock_error", NULL,
                                       "mock failure %ui", m->status);
    }

    if (!m->stream) {
        return ngx_http_llm_mock_json(r, m);
    }

    rc = ngx_http_llm_mock_header(r, NGX_HTTP_OK, "text/event-stream", -1);
    if (rc != NGX_OK) {
        return rc;
    }

    if (m->fault == NGX_HTTP_LLM_MOCK_SSE_ERROR) {
        rc = ngx_http_llm_mock_event(r, sb,
                 json_pack("{s:{s:s,s:s,s:i}}", "error",
                           "message", "mock failure before the answer",
                           "type", "server_error", "code", 500));
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_llm_mock_send(r, m, 1);
    }

    ngx_str_set(&empty, "");

    if (ngx_http_llm_mock_chunk(r, m, sb, "assistant", &empty, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (m->fault == NGX_HTTP_LLM_MOCK_ROLE_STALL) {
        rc = ngx_http_llm_mock_send(r, m, 0);
        return (rc == NGX_ERROR) ? NGX_ERROR : NGX_DONE;
    }

    ngx_http_llm_mock_piece(m, m->sent++, &piece);

    if (ngx_http_llm_mock_chunk(r, m, sb, NULL, &piece, NULL) != NGX_OK) {
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


static ngx_int_t
ngx_http_llm_mock_json(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m)
{
    json_t     *json;
    ngx_int_t   rc;

    json = json_pack("{s:s,s:s,s:I,s:s%,s:[{s:i,s:{s:s,s:s%},s:s}],s:o}",
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

    if (json == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_llm_json_dump(r->pool, json, &m->sb);

    json_decref(json);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_llm_mock_header(r, NGX_HTTP_OK, "application/json",
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
    return ngx_http_llm_output(r, m->ctx, m->sb.data, m->sb.len, last);
}


static ngx_int_t
ngx_http_llm_mock_chunk(ngx_http_request_t *r, ngx_http_llm_mock_ctx_t *m,
    ngx_http_llm_sbuf_t *sb, const char *role, ngx_str_t *content,
    const char *finish)
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

    return ngx_http_llm_mock_event(r, sb,
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


/* appends "data: <json>\n\n" and releases the json */

static ngx_int_t
ngx_http_llm_mock_event(ngx_http_request_t *r, ngx_http_llm_sbuf_t *sb,
    json_t *json)
{
    ngx_int_t  rc;

    if (json == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (ngx_http_llm_sbuf_append(r->pool, sb, (u_char *) "data: ", 6, 0)
        == NGX_OK
        && ngx_http_llm_json_append(r->pool, json, sb) == NGX_OK
        && ngx_http_llm_sbuf_append(r->pool, sb, (u_char *) "\n\n", 2, 0)
           == NGX_OK)
    {
        rc = NGX_OK;
    }

    json_decref(json);

    return rc;
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
