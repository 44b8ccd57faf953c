
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * Header and body filters.
 *
 * On the router's own subrequests they keep the provider's answer from the
 * client until it proves useful: an error status or a broken answer is
 * swallowed (and kept for the error message) so that the next endpoint can
 * be tried; a good answer is translated and relayed.  A JSON answer is
 * relayed whole, a stream event by event as it arrives.  The client's
 * response header is sent ("committed") together with the first useful
 * bytes, never earlier.
 *
 * On a main request in an llm location they replace nginx's HTML error
 * pages (413, 408, 500 ...) with OpenAI's error JSON.
 */


static ngx_int_t ngx_http_llm_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_llm_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_llm_attempt_header(ngx_http_request_t *sr,
    ngx_http_llm_ctx_t *ctx);
static ngx_int_t ngx_http_llm_attempt_body(ngx_http_request_t *sr,
    ngx_http_llm_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_http_llm_attempt_buf(ngx_http_request_t *sr,
    ngx_http_llm_ctx_t *ctx, ngx_buf_t *b);
static size_t ngx_http_llm_busy(ngx_http_llm_ctx_t *ctx);
static void ngx_http_llm_stop(ngx_http_request_t *sr, ngx_http_llm_ctx_t *ctx);
static ngx_int_t ngx_http_llm_relay_stream(ngx_http_request_t *sr,
    ngx_http_llm_ctx_t *ctx, u_char *pos, u_char *last);
static ngx_int_t ngx_http_llm_relay_json(ngx_http_request_t *sr,
    ngx_http_llm_ctx_t *ctx);
static void ngx_http_llm_attempt_failed(ngx_http_request_t *sr,
    ngx_http_llm_ctx_t *ctx, ngx_uint_t reason, const char *why);
static void ngx_http_llm_keep_error(ngx_http_request_t *sr,
    ngx_http_llm_ctx_t *ctx);
static ngx_int_t ngx_http_llm_error_page_header(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
static ngx_int_t ngx_http_llm_error_page_body(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, ngx_chain_t *in);
static void ngx_http_llm_consume(ngx_chain_t *in);
static void ngx_http_llm_idle_timer(ngx_http_llm_ctx_t *ctx);
static ngx_int_t ngx_http_llm_keep_retry_after(ngx_http_request_t *sr,
    ngx_http_llm_attempt_t *a);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_llm_relay_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_llm_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_llm_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_llm_header_filter(ngx_http_request_t *r)
{
    ngx_http_llm_ctx_t       *ctx;
    ngx_http_llm_loc_conf_t  *llcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    if (r != r->main) {

        if (ctx == NULL) {
            return ngx_http_next_header_filter(r);
        }

        if (ctx->sr != r || ctx->finished) {
            /* a finished attempt, or nginx's error page for it */
            return NGX_OK;
        }

        return ngx_http_llm_attempt_header(r, ctx);
    }

    if (r->headers_out.status < NGX_HTTP_BAD_REQUEST
        || (ctx && ctx->own_output))
    {
        return ngx_http_next_header_filter(r);
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llm_router_module);

    if (!llcf->json_errors) {
        return ngx_http_next_header_filter(r);
    }

    return ngx_http_llm_error_page_header(r, ctx);
}


static ngx_int_t
ngx_http_llm_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_http_llm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    if (ctx == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (r != r->main) {

        if (ctx->sr != r || ctx->finished) {
            ngx_http_llm_consume(in);
            return NGX_OK;
        }

        return ngx_http_llm_attempt_body(r, ctx, in);
    }

    if (ctx->error_status) {
        return ngx_http_llm_error_page_body(r, ctx, in);
    }

    return ngx_http_next_body_filter(r, in);
}


static ngx_int_t
ngx_http_llm_attempt_header(ngx_http_request_t *sr, ngx_http_llm_ctx_t *ctx)
{
    ngx_str_t               *type;
    ngx_http_llm_attempt_t  *a;

    a = ctx->attempt;

    ctx->header_seen = 1;
    a->status = sr->headers_out.status;
    a->cache_hit = sr->cached;

    if (a->status < NGX_HTTP_OK || a->status >= NGX_HTTP_SPECIAL_RESPONSE) {
        ctx->failed = 1;
        a->reason = NGX_HTTP_LLM_FAIL_STATUS;

        return ngx_http_llm_keep_retry_after(sr, a);
    }

    type = &sr->headers_out.content_type;

    if (type->len >= sizeof("text/event-stream") - 1
        && ngx_strncasecmp(type->data, (u_char *) "text/event-stream",
                           sizeof("text/event-stream") - 1)
           == 0)
    {
        ctx->sse_response = 1;
        ngx_http_llm_sse_init(&ctx->sse, sr->pool, NGX_HTTP_LLM_MAX_EVENT);

        if (sr->upstream) {
            /*
             * a stream is relayed as it comes, even where proxy_buffering
             * is on (for proxy_cache): as X-Accel-Buffering: no would do,
             * before upstream looks at it; a stream is thus never cached
             */
            sr->upstream->buffering = 0;
        }

        if (!ctx->stream) {
            /* a stream for a client that wants one JSON answer */
            ngx_http_llm_attempt_failed(sr, ctx, NGX_HTTP_LLM_FAIL_INVALID,
                                        "a stream was not asked for");
        }

        return NGX_OK;
    }

    if (sr->headers_out.content_length_n > NGX_HTTP_LLM_MAX_RESPONSE) {
        ngx_http_llm_attempt_failed(sr, ctx, NGX_HTTP_LLM_FAIL_INVALID,
                                    "the answer is too large");
        return NGX_OK;
    }

    /* room for the announced answer, within reason: the rest as it comes */

    if (sr->headers_out.content_length_n > 0
        && ngx_http_llm_sbuf_reserve(sr->pool, &ctx->in,
                                     ngx_min(sr->headers_out.content_length_n,
                                             65536))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The provider's bytes.  They are queued and taken one upstream buffer at
 * a time; while the client has not taken what was already sent to it
 * (more than NGX_HTTP_LLM_MAX_BUSY of our buffers in flight), the rest
 * stays queued and upstream, its buffer busy, stops reading: a slow client
 * slows the provider down instead of growing the worker.  Upstream calls
 * again with "in" NULL when the client can take more.
 *
 * Once an attempt is judged (failed, or its error body long enough), the
 * provider is stopped at once: upstream is told the answer is over, drops
 * the rest and closes the connection.  (Returning NGX_ERROR would do it too,
 * but upstream takes that for a client error and closes the client.)
 */

static ngx_int_t
ngx_http_llm_attempt_body(ngx_http_request_t *sr, ngx_http_llm_ctx_t *ctx,
    ngx_chain_t *in)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl, *ln;

    for (cl = in; cl; cl = cl->next) {
        ln = ngx_alloc_chain_link(sr->pool);
        if (ln == NULL) {
            return NGX_ERROR;
        }

        ln->buf = cl->buf;
        ln->next = NULL;

        *ctx->held_last = ln;
        ctx->held_last = &ln->next;
    }

    if (in == NULL && ctx->committed) {
        /* the client can take more: push what waits for it */

        rc = ngx_http_next_body_filter(sr, NULL);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        ngx_chain_update_chains(sr->pool, &ctx->free, &ctx->busy, &in,
                                (ngx_buf_tag_t) &ngx_http_llm_router_module);
    }

    while (ctx->held) {

        if (ctx->committed && ngx_http_llm_busy(ctx)
                              > NGX_HTTP_LLM_MAX_BUSY)
        {
            return NGX_OK;
        }

        ln = ctx->held;

        rc = ngx_http_llm_attempt_buf(sr, ctx, ln->buf);

        ctx->held = ln->next;

        if (ctx->held == NULL) {
            ctx->held_last = &ctx->held;
        }

        ngx_free_chain(sr->pool, ln);

        if (rc == NGX_DONE) {
            ngx_http_llm_stop(sr, ctx);
            return NGX_OK;
        }

        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


/* no more of this provider: the rest is dropped, the connection closed */

static void
ngx_http_llm_stop(ngx_http_request_t *sr, ngx_http_llm_ctx_t *ctx)
{
    ngx_chain_t  *ln;

    while (ctx->held) {
        ln = ctx->held;
        ln->buf->pos = ln->buf->last;
        ctx->held = ln->next;
        ngx_free_chain(sr->pool, ln);
    }

    ctx->held_last = &ctx->held;

    if (sr->upstream) {
        sr->upstream->length = 0;
        sr->upstream->keepalive = 0;
    }
}


static ngx_int_t
ngx_http_llm_attempt_buf(ngx_http_request_t *sr, ngx_http_llm_ctx_t *ctx,
    ngx_buf_t *b)
{
    size_t      size;
    ssize_t     n;
    ngx_buf_t   mem;
    ngx_int_t   rc;

    if (!ngx_buf_in_memory(b) && b->in_file) {
        /*
         * a temporary or cache file's bytes: nginx's copy filter, which
         * runs before this one, reads them into memory for us; should it
         * not have, read them here (blocking, as it would)
         */

        if (b->file_last - b->file_pos > NGX_HTTP_LLM_MAX_RESPONSE) {
            ngx_http_llm_attempt_failed(sr, ctx, NGX_HTTP_LLM_FAIL_INVALID,
                                        "the answer is too large");
            return NGX_DONE;
        }

        mem = *b;
        size = (size_t) (b->file_last - b->file_pos);

        mem.in_file = 0;
        mem.file = NULL;
        mem.temporary = 1;

        mem.start = ngx_pnalloc(sr->pool, size ? size : 1);
        if (mem.start == NULL) {
            return NGX_ERROR;
        }

        n = ngx_read_file(b->file, mem.start, size, b->file_pos);

        if (n != (ssize_t) size) {
            ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                          "llm: read %z of %uz bytes of \"%V\"", n, size,
                          &b->file->name);
            return NGX_ERROR;
        }

        b->file_pos = b->file_last;

        mem.pos = mem.start;
        mem.last = mem.start + size;
        mem.end = mem.last;

        rc = ngx_http_llm_attempt_buf(sr, ctx, &mem);

        (void) ngx_pfree(sr->pool, mem.start);

        return rc;
    }

    size = b->last - b->pos;

    if (size && ctx->failed) {
        /* keep the start of an error body for the message, no more */

        size = ngx_min(size, NGX_HTTP_LLM_MAX_ERROR_BODY - ctx->in.len);

        if (ngx_http_llm_sbuf_append(sr->pool, &ctx->in, b->pos, size, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        b->pos = b->last;

        if (ctx->in.len >= NGX_HTTP_LLM_MAX_ERROR_BODY) {
            ngx_http_llm_keep_error(sr, ctx);
            return NGX_DONE;
        }

    } else if (size && ctx->sse_response) {
        rc = ngx_http_llm_relay_stream(sr, ctx, b->pos, b->last);

        b->pos = b->last;

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (ctx->failed) {
            /* broken, or reported an error: no more of this provider */
            return NGX_DONE;
        }

        if (ctx->committed) {
            ngx_http_llm_idle_timer(ctx);
        }

    } else if (size) {

        if (ctx->in.len == 0) {
            /* a JSON answer's first byte is its first token */
            ctx->attempt->ttft = ngx_current_msec - ctx->attempt->start;
        }

        rc = ngx_http_llm_sbuf_append(sr->pool, &ctx->in, b->pos, size,
                                      NGX_HTTP_LLM_MAX_RESPONSE);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        b->pos = b->last;

        if (rc == NGX_DECLINED) {
            ngx_http_llm_attempt_failed(sr, ctx, NGX_HTTP_LLM_FAIL_INVALID,
                                        "the answer is too large");
            return NGX_DONE;
        }

        ngx_http_llm_idle_timer(ctx);
    }

    if (!b->last_in_chain && !b->last_buf) {
        return NGX_OK;
    }

    ctx->complete = 1;

    if (ctx->failed) {
        ngx_http_llm_keep_error(sr, ctx);
        return NGX_OK;
    }

    if (!ctx->sse_response) {
        return ngx_http_llm_relay_json(sr, ctx);
    }

    if (!ctx->committed) {
        ngx_http_llm_attempt_failed(sr, ctx, NGX_HTTP_LLM_FAIL_INVALID,
                                    "the stream ended without an answer");
        return NGX_OK;
    }

    if (!ctx->stream_done) {
        /* the provider closed the stream without its final event */
        ctx->complete = 0;
    }

    return NGX_OK;
}


static size_t
ngx_http_llm_busy(ngx_http_llm_ctx_t *ctx)
{
    size_t        size;
    ngx_chain_t  *cl;

    size = 0;

    for (cl = ctx->busy; cl; cl = cl->next) {
        size += cl->buf->last - cl->buf->pos;
    }

    return size;
}


/*
 * After the first useful bytes the deadline is the next bytes'.  The timer
 * is armed once; every read only notes the time, and the timer handler
 * re-arms itself while the provider keeps talking.
 */

static void
ngx_http_llm_idle_timer(ngx_http_llm_ctx_t *ctx)
{
    ngx_http_llm_loc_conf_t  *llcf;

    ctx->last_read = ngx_current_msec;

    if (ctx->idle) {
        return;
    }

    ctx->idle = 1;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    llcf = ngx_http_get_module_loc_conf(ctx->request,
                                        ngx_http_llm_router_module);

    if (llcf->idle_timeout) {
        ngx_add_timer(&ctx->timer, llcf->idle_timeout);
    }
}


static ngx_int_t
ngx_http_llm_relay_stream(ngx_http_request_t *sr, ngx_http_llm_ctx_t *ctx,
    u_char *pos, u_char *last)
{
    ngx_int_t                 rc;
    ngx_http_llm_sse_event_t  ev;

    for ( ;; ) {
        rc = ngx_http_llm_sse_parse(&ctx->sse, &pos, last, &ev);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc == NGX_ERROR) {
            ngx_http_llm_attempt_failed(sr, ctx, NGX_HTTP_LLM_FAIL_INVALID,
                                        "an event is too large");
            break;
        }

        rc = ngx_http_llm_upstream_event(ctx, &ev);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_ABORT) {
            ngx_http_llm_attempt_failed(sr, ctx, NGX_HTTP_LLM_FAIL_INVALID,
                                        "the provider reported an error in "
                                        "the stream");
            break;
        }

        if (rc == NGX_DECLINED) {

            if (!ctx->committed) {
                ngx_http_llm_attempt_failed(sr, ctx,
                                            NGX_HTTP_LLM_FAIL_INVALID,
                                            "the stream is not a chat "
                                            "completion stream");
                break;
            }

            if (!ctx->warned) {
                ctx->warned = 1;
                ngx_log_error(NGX_LOG_WARN, sr->connection->log, 0,
                              "llm: provider \"%V\" sent an unusable event, "
                              "skipped (and any more)",
                              &ctx->attempt->endpoint->provider->name);
            }
        }
    }

    if (ctx->failed && !ctx->committed) {
        /* nothing of a failed attempt reaches the client */
        ctx->out.len = 0;
        return NGX_OK;
    }

    if (ctx->out.len == 0 || (!ctx->committed && !ctx->answered)) {
        /* nothing to send yet, or nothing that proves the attempt good */

        if (ctx->out.len > NGX_HTTP_LLM_MAX_EVENT) {
            ngx_http_llm_attempt_failed(sr, ctx, NGX_HTTP_LLM_FAIL_INVALID,
                                        "too much talk before an answer");
            ctx->out.len = 0;
        }

        return NGX_OK;
    }

    if (!ctx->committed) {
        ctx->attempt->ttft = ngx_current_msec - ctx->attempt->start;

        if (ngx_http_llm_commit(ctx->request, ctx, -1) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    rc = ngx_http_llm_output(sr, ctx, ctx->out.data, ctx->out.len, 0);

    ctx->out.len = 0;

    return rc;
}


static ngx_int_t
ngx_http_llm_relay_json(ngx_http_request_t *sr, ngx_http_llm_ctx_t *ctx)
{
    json_t       *answer;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    rc = NGX_DECLINED;

    if (ctx->attempt->endpoint->provider->format == NGX_HTTP_LLM_FORMAT_OPENAI
        && ctx->api != NGX_HTTP_LLM_API_MESSAGES && !ctx->stream)
    {
        /* the same dialect in and out: relabelled, not parsed */
        rc = ngx_http_llm_emit_answer_bytes(ctx, ctx->in.data, ctx->in.len);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    if (rc == NGX_OK) {
        goto send;
    }

    answer = ngx_http_llm_upstream_answer(ctx, ctx->in.data, ctx->in.len);

    if (answer == NULL) {
        ngx_http_llm_keep_error(sr, ctx);
        ngx_http_llm_attempt_failed(sr, ctx, NGX_HTTP_LLM_FAIL_INVALID,
                                    "the answer is not a completion");
        return NGX_OK;
    }

    rc = ngx_http_llm_emit_answer(ctx, answer);

    json_decref(answer);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

send:

    if (ngx_http_llm_commit(ctx->request, ctx,
                            ctx->stream ? -1 : (off_t) ctx->out.len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->out.len == 0) {
        return ngx_http_llm_output(sr, ctx, ctx->out.data, 0, 1);
    }

    /* the whole answer: its own buffer is sent, not a copy */

    b = ngx_calloc_buf(sr->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    cl = ngx_alloc_chain_link(sr->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b->start = ctx->out.data;
    b->pos = b->start;
    b->last = b->start + ctx->out.len;
    b->end = b->last;
    b->memory = 1;
    b->flush = 1;
    b->last_buf = (sr == sr->main) ? 1 : 0;
    b->last_in_chain = 1;

    cl->buf = b;
    cl->next = NULL;

    /* the buffer is the output's now: nothing may write to it again */
    ngx_memzero(&ctx->out, sizeof(ngx_http_llm_sbuf_t));

    return ngx_http_next_body_filter(sr, cl);
}


static void
ngx_http_llm_attempt_failed(ngx_http_request_t *sr, ngx_http_llm_ctx_t *ctx,
    ngx_uint_t reason, const char *why)
{
    ngx_http_llm_attempt_t  *a;

    a = ctx->attempt;

    if (!ctx->failed) {
        ctx->failed = 1;
        a->reason = reason;

        ngx_log_error(NGX_LOG_INFO, sr->connection->log, 0,
                      "llm: provider \"%V\": %s",
                      &a->endpoint->provider->name, why);
    }
}


/* the provider's error message, for the client and for the log */

static void
ngx_http_llm_keep_error(ngx_http_request_t *sr, ngx_http_llm_ctx_t *ctx)
{
    ngx_http_llm_attempt_t  *a;

    a = ctx->attempt;

    if (a->message.len || ctx->in.len == 0) {
        return;
    }

    if (a->status == NGX_HTTP_UNAUTHORIZED || a->status == NGX_HTTP_FORBIDDEN) {
        /* it may quote the router's own key: never pass it on */
        ngx_str_set(&a->message,
                    "The provider did not accept the router's credentials");
        return;
    }

    (void) ngx_http_llm_upstream_error_message(sr->pool, ctx->in.data,
                                               ctx->in.len,
                                               &a->endpoint->provider->key,
                                               &a->message);
}


/*
 * Sends the client's response header.  From here on the answer belongs to
 * this attempt: no fallback can follow.
 */

ngx_int_t
ngx_http_llm_commit(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    off_t content_length)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    if (ctx->committed) {
        return NGX_OK;
    }

    if (r->header_sent) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "llm: response header sent before an attempt "
                      "committed");
        return NGX_ERROR;
    }

    ctx->committed = 1;
    ctx->own_output = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = content_length;

    if (ctx->stream) {
        ngx_str_set(&r->headers_out.content_type, "text/event-stream");

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Cache-Control");
        ngx_str_set(&h->value, "no-cache");

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "X-Accel-Buffering");
        ngx_str_set(&h->value, "no");

    } else {
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_llm_key_headers(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Passes bytes on, through the subrequest "r" while an attempt runs or
 * through the main request after it.  Buffers are reused once the client
 * has taken them, so a long stream does not grow the pool.
 */

ngx_int_t
ngx_http_llm_output(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    u_char *data, size_t len, ngx_uint_t last)
{
    size_t        size;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_chain_get_free_buf(r->pool, &ctx->free);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;

    if (b->start == NULL || (size_t) (b->end - b->start) < len) {

        if (b->start) {
            (void) ngx_pfree(r->pool, b->start);
        }

        size = ngx_max(len, 4096);

        b->start = ngx_palloc(r->pool, size);
        if (b->start == NULL) {
            return NGX_ERROR;
        }

        b->end = b->start + size;
    }

    b->pos = b->start;
    b->last = ngx_cpymem(b->start, data, len);
    b->temporary = 1;
    b->flush = 1;
    b->tag = (ngx_buf_tag_t) &ngx_http_llm_router_module;
    b->last_buf = (last && r == r->main) ? 1 : 0;
    b->last_in_chain = last ? 1 : 0;

    rc = ngx_http_next_body_filter(r, cl);

    ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &cl,
                            (ngx_buf_tag_t) &ngx_http_llm_router_module);

    return rc;
}


static ngx_int_t
ngx_http_llm_error_page_header(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    json_t      *json;
    ngx_str_t    msg;
    ngx_uint_t   status;
    const char  *code;

    if (ctx == NULL) {
        ctx = ngx_http_llm_get_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    status = r->headers_out.status;

    switch (status) {

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        ngx_str_set(&msg, "The request body is too large");
        code = "request_too_large";
        break;

    case NGX_HTTP_REQUEST_TIME_OUT:
        ngx_str_set(&msg, "The request body did not arrive in time");
        code = "request_timeout";
        break;

    case NGX_HTTP_BAD_REQUEST:
        ngx_str_set(&msg, "The request is malformed");
        code = "bad_request";
        break;

    case NGX_HTTP_NOT_ALLOWED:
        ngx_str_set(&msg, "The method is not allowed");
        code = "method_not_allowed";
        break;

    case NGX_HTTP_NOT_FOUND:
        ngx_str_set(&msg, "Not found");
        code = "not_found";
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        ngx_str_set(&msg, "The service is unavailable");
        code = "service_unavailable";
        break;

    default:
        if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
            ngx_str_set(&msg, "The router failed to handle the request");
            code = "internal_error";

        } else {
            ngx_str_set(&msg, "The request cannot be handled");
            code = NULL;
        }
    }

    if (ctx->api == NGX_HTTP_LLM_API_MESSAGES
        || (r->uri.len >= 9
            && ngx_strncmp(r->uri.data + r->uri.len - 9, "/messages", 9)
               == 0))
    {
        json = ngx_http_llm_anthropic_error_json(status, &msg, NULL);

    } else {
        json = ngx_http_llm_error_json(status, NULL, code, &msg, NULL);
    }

    if (json == NULL) {
        return NGX_ERROR;
    }

    ctx->error_body.len = 0;

    if (ngx_http_llm_json_dump(r->pool, json, &ctx->error_body) != NGX_OK) {
        json_decref(json);
        return NGX_ERROR;
    }

    json_decref(json);

    ctx->error_status = status;
    ctx->error_sent = 0;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->headers_out.content_length_n = ctx->error_body.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_llm_error_page_body(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_chain_t *in)
{
    ngx_buf_t    *b;
    ngx_chain_t   out;

    ngx_http_llm_consume(in);

    if (ctx->error_sent || in == NULL) {
        return NGX_OK;
    }

    ctx->error_sent = 1;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->error_body.data;
    b->last = ctx->error_body.data + ctx->error_body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


/* a provider's Retry-After, for a client that gets its error as is */

static ngx_int_t
ngx_http_llm_keep_retry_after(ngx_http_request_t *sr,
    ngx_http_llm_attempt_t *a)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &sr->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_OK;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0 || h[i].key.len != sizeof("Retry-After") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Retry-After",
                               sizeof("Retry-After") - 1) != 0
            || h[i].value.len > 32)
        {
            continue;
        }

        a->retry_after.data = ngx_pstrdup(sr->pool, &h[i].value);
        if (a->retry_after.data == NULL) {
            return NGX_ERROR;
        }

        a->retry_after.len = h[i].value.len;

        return NGX_OK;
    }
}


static void
ngx_http_llm_consume(ngx_chain_t *in)
{
    for ( /* void */ ; in; in = in->next) {
        in->buf->pos = in->buf->last;

        if (in->buf->in_file) {
            in->buf->file_pos = in->buf->file_last;
        }
    }
}
