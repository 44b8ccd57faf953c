
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * The provider's side of an attempt: the request in the provider's dialect,
 * and its answer back in canonical form (see ngx_http_llm_dialect.h).
 *
 * OpenAI's dialect is the canonical one, spoken by OpenAI and by most
 * other servers (vLLM, Ollama, Groq, Together, Mistral, DeepSeek,
 * OpenRouter): the client's request passes with the provider's model id,
 * unknown fields untouched.  Anthropic's and Gemini's are translated.
 */


static ngx_int_t ngx_http_llm_upstream_openai(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep, json_t **root);
static ngx_int_t ngx_http_llm_upstream_cap(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep);
static ngx_int_t ngx_http_llm_upstream_url(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep, const char *path, size_t len);
static ngx_int_t ngx_http_llm_upstream_chunks(ngx_http_llm_ctx_t *ctx,
    ngx_int_t rc, json_t *chunks);
static ngx_int_t ngx_http_llm_upstream_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_llm_upstream_create_request(ngx_http_request_t *r);


ngx_int_t
ngx_http_llm_upstream_request(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep, ngx_chain_t **body, size_t *len,
    const char **err)
{
    json_t               *root;
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_pool_t           *pool;
    ngx_chain_t          *cl;
    ngx_http_llm_sbuf_t   sb;

    pool = ctx->request->pool;
    root = NULL;
    *err = NULL;

    if (ngx_http_llm_upstream_cap(ctx, ep) != NGX_OK) {
        return NGX_ERROR;
    }

    switch (ep->provider->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        if (ngx_http_llm_body_full(ctx->request, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        root = ngx_http_llm_anthropic_request(ctx->body,
                                              (char *) ep->model.data,
                                              ep->model.len, err);
        ctx->upstream_url = ep->url;
        break;

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        if (ngx_http_llm_body_full(ctx->request, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        root = ngx_http_llm_gemini_request(ctx->body, err);
        ctx->upstream_url = ctx->stream ? ep->stream_url : ep->url;
        break;

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        rc = ngx_http_llm_upstream_openai(ctx, ep, &root);
        if (rc != NGX_OK) {
            return rc;
        }

        /* root is ctx->body, NULL while the request is its members */
    }

    if (root == NULL && ep->provider->format != NGX_HTTP_LLM_FORMAT_OPENAI) {
        return *err ? NGX_DECLINED : NGX_ERROR;
    }

    if (ep->provider->format == NGX_HTTP_LLM_FORMAT_ANTHROPIC
        && json_object_set_new(root, "stream", json_boolean(ctx->stream))
           != 0)
    {
        json_decref(root);
        return NGX_ERROR;
    }

    if (root == ctx->body) {
        rc = ngx_http_llm_body_chain(pool, ctx, body, len);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    ngx_memzero(&sb, sizeof(ngx_http_llm_sbuf_t));

    rc = ngx_http_llm_body_dump(pool, ctx, root, &sb);

    if (root != ctx->body) {
        json_decref(root);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    b = ngx_calloc_buf(pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    /* upstream rewinds request buffers to "start" when it retries */

    b->start = sb.data;
    b->pos = sb.data;
    b->last = sb.data + sb.len;
    b->end = b->last;
    b->memory = 1;
    b->last_buf = 1;

    cl = ngx_alloc_chain_link(pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    *body = cl;
    *len = sb.len;

    return NGX_OK;
}


/*
 * A chat request that does not say how long its answer may be gets the
 * model's max_output as max_tokens when that bound matters: Anthropic
 * requires one, and a key with a limit reserved exactly that much, so the
 * provider must not be free to write more.  Otherwise the provider's own
 * default stands (and a cap set for an earlier attempt is taken back).
 */

static ngx_int_t
ngx_http_llm_upstream_cap(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep)
{
    ngx_http_llm_model_t  *model;

    if (ctx->api != NGX_HTTP_LLM_API_CHAT
        && ctx->api != NGX_HTTP_LLM_API_MESSAGES)
    {
        return NGX_OK;
    }

    if ((ctx->key == NULL || ctx->key->limit < 0)
        && ep->provider->format != NGX_HTTP_LLM_FORMAT_ANTHROPIC)
    {
        /* the bound does not matter */

        if (ctx->capped) {
            ctx->capped = 0;
            (void) json_object_del(ctx->body, "max_tokens");
        }

        return NGX_OK;
    }

    if (!ctx->capped
        && (ngx_http_llm_body_get(ctx, "max_tokens")
            || ngx_http_llm_body_get(ctx, "max_completion_tokens")))
    {
        return NGX_OK;
    }

    if (ngx_http_llm_body_object(ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    model = ctx->attempt->model;
    ctx->capped = 1;

    return json_object_set_new(ctx->body, "max_tokens",
                               json_integer(model->max_output))
           ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_llm_upstream_openai(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep, json_t **root)
{
    json_t  *body, *so;

    so = NULL;

    if (ctx->stream) {
        so = ngx_http_llm_body_get(ctx, "stream_options");

        /* the router changes stream_options (below): in the object */

        if (!json_is_true(json_object_get(so, "include_usage"))
            && ngx_http_llm_body_object(ctx) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    body = ctx->body;

    if (body == NULL) {
        /* written into the client's members (ngx_http_llm_body_chain()) */
        ctx->model_id = ep->model_json;

    } else if (json_object_set(body, "model", ep->model_json) != 0) {
        return NGX_ERROR;
    }

    switch (ctx->api) {

    case NGX_HTTP_LLM_API_COMPLETIONS:
        if (ngx_http_llm_upstream_url(ctx, ep, "/completions", 12) != NGX_OK) {
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_LLM_API_EMBEDDINGS:
        if (ngx_http_llm_upstream_url(ctx, ep, "/embeddings", 11) != NGX_OK) {
            return NGX_ERROR;
        }

        *root = body;
        return NGX_OK;

    default:
        ctx->upstream_url = ep->url;
        break;
    }

    if (ctx->stream) {
        /* ask for usage always: the router accounts every stream */

        if (!json_is_true(json_object_get(so, "include_usage"))) {

            /*
             * a new object, not the client's changed in place: the
             * provider's request is written from the client's bytes where
             * a member is the one parsed from them
             */

            so = json_is_object(so) ? json_copy(so) : json_object();

            if (json_object_set_new(body, "stream_options", so) != 0
                || json_object_set_new(so, "include_usage", json_true()) != 0)
            {
                return NGX_ERROR;
            }
        }
    }

    *root = body;

    return NGX_OK;
}


static ngx_int_t
ngx_http_llm_upstream_url(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep, const char *path, size_t len)
{
    u_char  *p;

    p = ngx_pnalloc(ctx->request->pool, ep->provider->url.len + len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->upstream_url.data = p;
    p = ngx_cpymem(p, ep->provider->url.data, ep->provider->url.len);
    p = ngx_cpymem(p, path, len);
    ctx->upstream_url.len = p - ctx->upstream_url.data;

    return NGX_OK;
}


/*
 * A whole answer, in canonical form (or, for the legacy APIs, as the
 * provider gave it): a new reference, or NULL when it is not an answer
 * (a->message may then say why).
 */

json_t *
ngx_http_llm_upstream_answer(ngx_http_llm_ctx_t *ctx, u_char *data,
    size_t len)
{
    json_t                  *root, *answer;
    const char              *err, *list;
    ngx_http_llm_attempt_t  *a;

    a = ctx->attempt;

    root = json_loadb((const char *) data, len, JSON_ALLOW_NUL, NULL);

    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }

    err = NULL;

    switch (a->endpoint->provider->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        answer = ngx_http_llm_anthropic_response(root, &err);
        json_decref(root);
        break;

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        answer = ngx_http_llm_gemini_response(root, &err);
        json_decref(root);
        break;

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        list = (ctx->api == NGX_HTTP_LLM_API_EMBEDDINGS) ? "data" : "choices";

        if (json_is_array(json_object_get(root, list))) {
            answer = root;

        } else {
            answer = NULL;
            json_decref(root);
        }
    }

    if (answer == NULL && err && a->message.len == 0) {
        (void) ngx_http_llm_printable(ctx->request->pool, (u_char *) err,
                                      ngx_strlen(err), NULL, &a->message);
    }

    return answer;
}


/*
 * One event of the provider's stream: its canonical chunks go to the
 * client's encoder.  NGX_OK, NGX_DECLINED for an event that means nothing,
 * NGX_ABORT for an error the provider reported (a->message says it).
 */

ngx_int_t
ngx_http_llm_upstream_event(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_sse_event_t *ev)
{
    json_t                   *root, *chunks;
    ngx_int_t                 rc;
    ngx_http_llm_attempt_t   *a;
    ngx_http_llm_provider_t  *pr;

    a = ctx->attempt;
    pr = a->endpoint->provider;

    if (ev->data.len == 0) {
        /* "data:" with nothing: carries nothing, like a comment line */
        return NGX_OK;
    }

    if (pr->format == NGX_HTTP_LLM_FORMAT_OPENAI
        && ev->data.len == 6 && ngx_strncmp(ev->data.data, "[DONE]", 6) == 0)
    {
        return ngx_http_llm_emit_done(ctx);
    }

    if (pr->format == NGX_HTTP_LLM_FORMAT_OPENAI) {
        /* relabelled from its bytes where it can be */

        rc = ngx_http_llm_emit_chunk_bytes(ctx, ev->data.data, ev->data.len);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    root = json_loadb((const char *) ev->data.data, ev->data.len,
                      JSON_ALLOW_NUL, NULL);

    if (!json_is_object(root)) {
        json_decref(root);
        return NGX_DECLINED;
    }

    switch (pr->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
    case NGX_HTTP_LLM_FORMAT_GEMINI:

        chunks = json_array();
        if (chunks == NULL) {
            json_decref(root);
            return NGX_ERROR;
        }

        if (pr->format == NGX_HTTP_LLM_FORMAT_ANTHROPIC) {
            rc = ngx_http_llm_anthropic_event(ctx->decoder,
                                              (char *) ev->event.data,
                                              ev->event.len, root, chunks);
        } else {
            rc = ngx_http_llm_gemini_event(ctx->decoder, root, chunks);
        }

        json_decref(root);

        rc = ngx_http_llm_upstream_chunks(ctx, rc, chunks);

        json_decref(chunks);

        return rc;

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */

        if (json_object_get(root, "error") != NULL) {
            ngx_http_llm_upstream_error_text(ctx->request->pool, root,
                                             &pr->key, &a->message);
            json_decref(root);
            return NGX_ABORT;
        }

        rc = ngx_http_llm_emit_chunk(ctx, root);

        json_decref(root);

        return rc;
    }
}


static ngx_int_t
ngx_http_llm_upstream_chunks(ngx_http_llm_ctx_t *ctx, ngx_int_t rc,
    json_t *chunks)
{
    size_t                   i;
    json_t                  *chunk;
    ngx_int_t                rv;
    ngx_http_llm_attempt_t  *a;

    a = ctx->attempt;

    json_array_foreach(chunks, i, chunk) {
        rv = ngx_http_llm_emit_chunk(ctx, chunk);

        if (rv == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    switch (rc) {

    case NGX_DONE:
        return ngx_http_llm_emit_done(ctx);

    case NGX_ABORT:
        /* only a translation aborts: it has a decoder */
        (void) ngx_http_llm_printable(ctx->request->pool,
                                      (u_char *) ctx->decoder->error,
                                      ngx_strlen(ctx->decoder->error),
                                      &a->endpoint->provider->key,
                                      &a->message);
        return NGX_ABORT;

    default:
        return rc;
    }
}


/* the message of an error body in any of the dialects, or its text */

ngx_int_t
ngx_http_llm_upstream_error_message(ngx_pool_t *pool, u_char *data,
    size_t len, ngx_str_t *secret, ngx_str_t *msg)
{
    json_t  *root;

    root = json_loadb((const char *) data, len, JSON_ALLOW_NUL, NULL);

    if (root != NULL) {
        ngx_http_llm_upstream_error_text(pool, root, secret, msg);
        json_decref(root);

        if (msg->len) {
            return NGX_OK;
        }
    }

    /* an HTML error page says nothing a client could use */

    while (len && (*data == ' ' || *data == CR || *data == LF)) {
        data++;
        len--;
    }

    if (len == 0 || *data == '<') {
        return NGX_DECLINED;
    }

    return ngx_http_llm_printable(pool, data, len, secret, msg);
}


/*
 * OpenAI and Anthropic: {"error":{"message"}}; Gemini: {"error":
 * {"message"}} too; vLLM: {"message"}; others: {"error":"..."},
 * {"detail":"..."}.
 */

void
ngx_http_llm_upstream_error_text(ngx_pool_t *pool, json_t *root,
    ngx_str_t *secret, ngx_str_t *msg)
{
    json_t  *err, *v;

    err = json_object_get(root, "error");

    v = NULL;

    if (json_is_object(err)) {
        v = json_object_get(err, "message");

    } else if (json_is_string(err)) {
        v = err;
    }

    if (!json_is_string(v)) {
        v = json_object_get(root, "message");
    }

    if (!json_is_string(v)) {
        v = json_object_get(root, "detail");
    }

    if (!json_is_string(v)) {
        return;
    }

    (void) ngx_http_llm_printable(pool, (u_char *) json_string_value(v),
                                  json_string_length(v), secret, msg);
}


/*
 * The provider's key is a header of the attempt's proxied request, and
 * nginx's proxy module writes that request's header to the debug log,
 * whole, when it makes it (in u->create_request, run from the content
 * handler, or later after a cache lock).  For the attempt's subrequest,
 * the content handler and create_request run with the debug log off: the
 * rest of its debug lines (the upstream's progress, the answer's header)
 * stay.
 */

ngx_int_t
ngx_http_llm_precontent_handler(ngx_http_request_t *r)
{
    ngx_http_llm_ctx_t  *ctx;

    if (r == r->main || r->content_handler == NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    if (ctx == NULL || ctx->sr != r) {
        return NGX_DECLINED;
    }

    r->content_handler = ngx_http_llm_upstream_handler;

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_llm_upstream_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_uint_t                 level;
    ngx_log_t                 *log;
    ngx_http_llm_ctx_t        *ctx;
    ngx_http_upstream_t       *u;
    ngx_http_core_loc_conf_t  *clcf;

    /* the location's own handler: proxy_pass's (r->content_handler is us) */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    log = r->connection->log;
    level = log->log_level;

    if (level > NGX_LOG_DEBUG) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, log, 0,
                       "llm: the attempt's proxied request is not logged "
                       "at debug level: it carries the provider's key");

        log->log_level = NGX_LOG_DEBUG;
    }

    rc = clcf->handler(r);

    log->log_level = level;

    /* its request not made yet (a cache lock): when it is, the same */

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);
    u = r->upstream;

    if (ctx && u && u->request_bufs == NULL && u->create_request
        && u->create_request != ngx_http_llm_upstream_create_request)
    {
        ctx->create_request = u->create_request;
        u->create_request = ngx_http_llm_upstream_create_request;
    }

    return rc;
}


static ngx_int_t
ngx_http_llm_upstream_create_request(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_uint_t           level;
    ngx_log_t           *log;
    ngx_http_llm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    log = r->connection->log;
    level = log->log_level;

    if (level > NGX_LOG_DEBUG) {
        log->log_level = NGX_LOG_DEBUG;
    }

    rc = ctx->create_request(r);

    log->log_level = level;

    return rc;
}
