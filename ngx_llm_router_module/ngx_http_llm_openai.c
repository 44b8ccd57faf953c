
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * The OpenAI chat completions dialect, spoken by OpenAI and by most
 * self-hosted and hosted servers (vLLM, Ollama, Groq, Together, Mistral,
 * DeepSeek, OpenRouter).  The client's request passes through with the
 * provider's model id; the answer gets the public model name and the
 * provider's name.  Unknown fields pass untouched both ways.
 */


static ngx_int_t ngx_http_llm_openai_label(ngx_http_llm_ctx_t *ctx,
    json_t *root);
static ngx_int_t ngx_http_llm_openai_sse(ngx_http_llm_ctx_t *ctx, json_t *root,
    ngx_http_llm_sbuf_t *out);
static void ngx_http_llm_openai_usage(ngx_http_llm_ctx_t *ctx, json_t *usage);
static ngx_uint_t ngx_http_llm_openai_answered(json_t *choices,
    ngx_uint_t *finished);
static void ngx_http_llm_openai_keep_id(ngx_http_llm_ctx_t *ctx,
    json_t *root);
static json_t *ngx_http_llm_openai_chunk_of(json_t *completion);


ngx_int_t
ngx_http_llm_openai_request(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep, ngx_chain_t **body, size_t *len)
{
    json_t               *root, *so;
    ngx_buf_t            *b;
    ngx_pool_t           *pool;
    ngx_chain_t          *cl;
    ngx_http_llm_sbuf_t   sb;

    root = ctx->body;
    pool = ctx->request->pool;

    if (json_object_set_new(root, "model", ngx_http_llm_json_str(&ep->model))
        != 0)
    {
        return NGX_ERROR;
    }

    if (ctx->stream) {
        /* ask for usage always: the router accounts every stream */

        so = json_object_get(root, "stream_options");

        if (!json_is_object(so)) {
            so = json_object();

            if (json_object_set_new(root, "stream_options", so) != 0) {
                return NGX_ERROR;
            }
        }

        if (json_object_set_new(so, "include_usage", json_true()) != 0) {
            return NGX_ERROR;
        }
    }

    ngx_memzero(&sb, sizeof(ngx_http_llm_sbuf_t));

    if (ngx_http_llm_json_dump(pool, root, &sb) != NGX_OK) {
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


/* a complete chat.completion: relabel it */

ngx_int_t
ngx_http_llm_openai_response(ngx_http_llm_ctx_t *ctx, u_char *data, size_t len,
    ngx_http_llm_sbuf_t *out)
{
    json_t     *root;
    ngx_int_t   rc;

    root = json_loadb((const char *) data, len, JSON_ALLOW_NUL, NULL);

    if (root == NULL) {
        return NGX_DECLINED;
    }

    if (!json_is_object(root)
        || !json_is_array(json_object_get(root, "choices")))
    {
        json_decref(root);
        return NGX_DECLINED;
    }

    ngx_http_llm_openai_usage(ctx, json_object_get(root, "usage"));

    rc = ngx_http_llm_openai_label(ctx, root);

    if (rc == NGX_OK) {
        out->len = 0;
        rc = ngx_http_llm_json_append(ctx->request->pool, root, out);
    }

    json_decref(root);

    return rc;
}


/*
 * One event of a chat.completion.chunk stream.  Returns NGX_OK (output may
 * have been appended to "out"), NGX_DECLINED for an event that is not a
 * chunk, NGX_ABORT for an error the provider reported in the stream.
 */

ngx_int_t
ngx_http_llm_openai_event(ngx_http_llm_ctx_t *ctx, ngx_http_llm_sse_event_t *ev,
    ngx_http_llm_sbuf_t *out)
{
    json_t      *root;
    ngx_int_t    rc;
    ngx_pool_t  *pool;

    pool = ctx->request->pool;

    if (ev->data.len == 6 && ngx_strncmp(ev->data.data, "[DONE]", 6) == 0) {
        ctx->stream_done = 1;

        if (ctx->done_sent) {
            return NGX_OK;
        }

        ctx->done_sent = 1;

        return ngx_http_llm_sbuf_append(pool, out,
                                        (u_char *) "data: [DONE]\n\n",
                                        sizeof("data: [DONE]\n\n") - 1, 0);
    }

    root = json_loadb((const char *) ev->data.data, ev->data.len,
                      JSON_ALLOW_NUL, NULL);

    if (root == NULL) {
        return NGX_DECLINED;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        return NGX_DECLINED;
    }

    if (json_object_get(root, "error") != NULL) {
        ngx_http_llm_openai_error_text(pool, root,
                                       &ctx->attempt->endpoint->provider->key,
                                       &ctx->attempt->message);
        json_decref(root);
        return NGX_ABORT;
    }

    rc = ngx_http_llm_openai_sse(ctx, root, out);

    json_decref(root);

    return rc;
}


static ngx_int_t
ngx_http_llm_openai_sse(ngx_http_llm_ctx_t *ctx, json_t *root,
    ngx_http_llm_sbuf_t *out)
{
    json_t      *choices, *usage;
    ngx_uint_t   finished;
    ngx_pool_t  *pool;

    pool = ctx->request->pool;

    choices = json_object_get(root, "choices");
    usage = json_object_get(root, "usage");

    if (!json_is_array(choices)) {
        return NGX_DECLINED;
    }

    ngx_http_llm_openai_keep_id(ctx, root);

    if (json_is_object(usage)) {
        ngx_http_llm_openai_usage(ctx, usage);

        if (json_array_size(choices) == 0 && !ctx->include_usage) {
            /* the usage chunk the router asked for, not the client */
            return NGX_OK;
        }
    }

    finished = 0;

    if (ngx_http_llm_openai_answered(choices, &finished)) {
        ctx->answered = 1;
    }

    if (finished) {
        ctx->stream_done = 1;
    }

    if (ngx_http_llm_openai_label(ctx, root) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_llm_sbuf_append(pool, out, (u_char *) "data: ", 6, 0)
        != NGX_OK
        || ngx_http_llm_json_append(pool, root, out) != NGX_OK
        || ngx_http_llm_sbuf_append(pool, out, (u_char *) "\n\n", 2, 0)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A chunk proves the attempt good when it carries something of the answer:
 * text, a tool call, a refusal or a finish reason.  A bare role announcement
 * does not, so a provider that says hello and stalls can still be left.
 */

static ngx_uint_t
ngx_http_llm_openai_answered(json_t *choices, ngx_uint_t *finished)
{
    size_t       i;
    json_t      *choice, *delta, *v;
    ngx_uint_t   answered;

    answered = 0;

    json_array_foreach(choices, i, choice) {

        v = json_object_get(choice, "finish_reason");

        if (json_is_string(v)) {
            *finished = 1;
            answered = 1;
        }

        delta = json_object_get(choice, "delta");

        if (!json_is_object(delta)) {
            continue;
        }

        v = json_object_get(delta, "content");

        if (json_is_string(v) && json_string_length(v) > 0) {
            answered = 1;
        }

        if (json_object_get(delta, "tool_calls") != NULL
            || json_object_get(delta, "function_call") != NULL
            || json_is_string(json_object_get(delta, "refusal"))
            || json_is_string(json_object_get(delta, "reasoning"))
            || json_is_string(json_object_get(delta, "reasoning_content")))
        {
            answered = 1;
        }
    }

    return answered;
}


static ngx_int_t
ngx_http_llm_openai_label(ngx_http_llm_ctx_t *ctx, json_t *root)
{
    ngx_http_llm_attempt_t  *a;

    a = ctx->attempt;

    if (json_object_set_new(root, "model",
                            ngx_http_llm_json_str(&a->model->name))
        != 0
        || json_object_set_new(root, "provider",
                               ngx_http_llm_json_str(
                                   &a->endpoint->provider->name))
           != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_llm_openai_usage(ngx_http_llm_ctx_t *ctx, json_t *usage)
{
    json_t                  *v;
    ngx_http_llm_attempt_t  *a;

    if (!json_is_object(usage)) {
        return;
    }

    a = ctx->attempt;

    v = json_object_get(usage, "prompt_tokens");

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        a->prompt_tokens = json_integer_value(v);
    }

    v = json_object_get(usage, "completion_tokens");

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        a->completion_tokens = json_integer_value(v);
    }

    a->usage_seen = 1;
}


static void
ngx_http_llm_openai_keep_id(ngx_http_llm_ctx_t *ctx, json_t *root)
{
    json_t  *id;

    if (ctx->id.len) {
        return;
    }

    id = json_object_get(root, "id");

    if (!json_is_string(id) || json_string_length(id) > 256) {
        return;
    }

    ctx->id.len = json_string_length(id);
    ctx->id.data = ngx_pnalloc(ctx->request->pool, ctx->id.len);

    if (ctx->id.data == NULL) {
        ctx->id.len = 0;
        return;
    }

    ngx_memcpy(ctx->id.data, json_string_value(id), ctx->id.len);
}


/*
 * The provider answered a stream request with a whole chat.completion:
 * give the client the stream it asked for.
 */

ngx_int_t
ngx_http_llm_openai_json_to_stream(ngx_http_llm_ctx_t *ctx, u_char *data,
    size_t len, ngx_http_llm_sbuf_t *out)
{
    json_t      *root, *chunk, *usage;
    ngx_int_t    rc;
    ngx_pool_t  *pool;

    pool = ctx->request->pool;

    root = json_loadb((const char *) data, len, JSON_ALLOW_NUL, NULL);

    if (root == NULL) {
        return NGX_DECLINED;
    }

    if (!json_is_object(root)
        || !json_is_array(json_object_get(root, "choices")))
    {
        json_decref(root);
        return NGX_DECLINED;
    }

    chunk = ngx_http_llm_openai_chunk_of(root);

    if (chunk == NULL) {
        json_decref(root);
        return NGX_ERROR;
    }

    out->len = 0;

    rc = ngx_http_llm_openai_sse(ctx, chunk, out);

    json_decref(chunk);

    usage = json_object_get(root, "usage");

    if (rc == NGX_OK && json_is_object(usage)) {
        chunk = json_pack("{s:O?,s:s,s:O?,s:[],s:O}",
                          "id", json_object_get(root, "id"),
                          "object", "chat.completion.chunk",
                          "created", json_object_get(root, "created"),
                          "choices",
                          "usage", usage);

        if (chunk == NULL) {
            rc = NGX_ERROR;

        } else {
            rc = ngx_http_llm_openai_sse(ctx, chunk, out);
            json_decref(chunk);
        }
    }

    json_decref(root);

    if (rc != NGX_OK) {
        return rc;
    }

    ctx->answered = 1;
    ctx->stream_done = 1;
    ctx->done_sent = 1;

    return ngx_http_llm_sbuf_append(pool, out, (u_char *) "data: [DONE]\n\n",
                                    sizeof("data: [DONE]\n\n") - 1, 0);
}


static json_t *
ngx_http_llm_openai_chunk_of(json_t *completion)
{
    size_t   i, j;
    json_t  *chunk, *choices, *choice, *c, *msg, *delta, *calls, *call;

    choices = json_array();

    chunk = json_pack("{s:O?,s:s,s:O?,s:o}",
                      "id", json_object_get(completion, "id"),
                      "object", "chat.completion.chunk",
                      "created", json_object_get(completion, "created"),
                      "choices", choices);

    if (chunk == NULL) {
        return NULL;
    }

    json_array_foreach(json_object_get(completion, "choices"), i, choice) {

        msg = json_object_get(choice, "message");
        delta = json_is_object(msg) ? json_deep_copy(msg) : json_object();

        c = json_pack("{s:O?,s:o,s:O?}",
                      "index", json_object_get(choice, "index"),
                      "delta", delta,
                      "finish_reason", json_object_get(choice,
                                                       "finish_reason"));

        if (c == NULL || json_array_append_new(choices, c) != 0) {
            json_decref(chunk);
            return NULL;
        }

        /* tool call deltas carry their position */

        calls = json_object_get(delta, "tool_calls");

        json_array_foreach(calls, j, call) {
            if (json_is_object(call)
                && json_object_set_new(call, "index", json_integer(j)) != 0)
            {
                json_decref(chunk);
                return NULL;
            }
        }
    }

    return chunk;
}


/* the message of an OpenAI-shaped error body, or the body itself */

ngx_int_t
ngx_http_llm_openai_error_message(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_str_t *secret, ngx_str_t *msg)
{
    json_t  *root;

    root = json_loadb((const char *) data, len, JSON_ALLOW_NUL, NULL);

    if (root != NULL) {
        ngx_http_llm_openai_error_text(pool, root, secret, msg);
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


void
ngx_http_llm_openai_error_text(ngx_pool_t *pool, json_t *root,
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
