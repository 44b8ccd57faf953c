
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * The client's side of an answer.  Whatever the provider's dialect, its
 * answer arrives here in canonical form (OpenAI's chat.completion, or its
 * chunks one by one) and leaves in the client's: OpenAI's JSON and
 * "data:" events for /v1/chat/completions (and the legacy completions and
 * embeddings, passed through), Anthropic's message and named events for
 * /v1/messages.  On the way the answer is labelled with the public model
 * name and the provider, and its usage is noted.
 *
 * Everything is written to ctx->out; the relay decides when it goes.
 */


static ngx_int_t ngx_http_llm_label(ngx_http_llm_ctx_t *ctx, json_t *root);
static ngx_int_t ngx_http_llm_data(ngx_http_llm_ctx_t *ctx, json_t *json);
static ngx_int_t ngx_http_llm_events(ngx_http_llm_ctx_t *ctx, json_t *events);
static void ngx_http_llm_usage(ngx_http_llm_ctx_t *ctx, json_t *usage);
static ngx_uint_t ngx_http_llm_answered(json_t *choices,
    ngx_uint_t *finished);
static void ngx_http_llm_keep_id(ngx_http_llm_ctx_t *ctx, json_t *root);
static void ngx_http_llm_count_text(ngx_http_llm_ctx_t *ctx, json_t *choices);
static json_t *ngx_http_llm_chunk_of(json_t *answer);
static ngx_uint_t ngx_http_llm_has_member(ngx_http_llm_member_t *m,
    ngx_uint_t n, const char *name);
static ngx_int_t ngx_http_llm_usage_bytes(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_member_t *u);


/*
 * An OpenAI-dialect provider's JSON answer for an OpenAI-format client,
 * relabelled without parsing it: its members are copied as they are but
 * "model" (the public name), "usage" (its tokens noted, "cost" added) and
 * "provider" (ours, at the end).  NGX_DECLINED sends it the long way
 * (ngx_http_llm_emit_answer()): an answer without usage, keys with
 * escapes, or anything unexpected.
 */

ngx_int_t
ngx_http_llm_emit_answer_bytes(ngx_http_llm_ctx_t *ctx, u_char *data,
    size_t len)
{
    u_char                  *p;
    size_t                   size;
    json_t                  *usage;
    ngx_int_t                rc;
    ngx_uint_t               i, n, list, u;
    ngx_pool_t              *pool;
    ngx_http_llm_member_t    m[32];
    ngx_http_llm_attempt_t  *a;

    if (ngx_http_llm_scan_object(data, data + len, m, 32, &n) != NGX_OK) {
        return NGX_DECLINED;
    }

    list = 0;
    u = n;

    for (i = 0; i < n; i++) {
        if (m[i].key_len == 5 && ngx_strncmp(m[i].key, "usage", 5) == 0) {

            if (u != n) {
                /* "usage" twice: let jansson choose */
                return NGX_DECLINED;
            }

            u = i;

        } else if ((m[i].key_len == 7
                    && ngx_strncmp(m[i].key, "choices", 7) == 0
                    && ctx->api != NGX_HTTP_LLM_API_EMBEDDINGS)
                   || (m[i].key_len == 4
                       && ngx_strncmp(m[i].key, "data", 4) == 0
                       && ctx->api == NGX_HTTP_LLM_API_EMBEDDINGS))
        {
            list = (m[i].type == '[');
        }
    }

    if (!list || u == n || m[u].type != '{') {
        return NGX_DECLINED;
    }

    a = ctx->attempt;
    pool = ctx->request->pool;
    usage = NULL;

    rc = ngx_http_llm_usage_bytes(ctx, &m[u]);

    if (rc == NGX_DECLINED) {
        /* a usage the scanner does not read alone: jansson's */

        usage = json_loadb((const char *) m[u].value, m[u].value_len,
                           JSON_DECODE_ANY|JSON_ALLOW_NUL, NULL);
        if (usage == NULL) {
            return NGX_ERROR;
        }

        ngx_http_llm_usage(ctx, usage);

        if (ngx_http_llm_usage_json(ctx, usage) != NGX_OK) {
            json_decref(usage);
            return NGX_ERROR;
        }
    }

    /* the answer, a "model", a "provider" and a cost (25 bytes at most) */

    size = len + 96 + a->model->name_json.len
           + a->endpoint->provider->name_json.len;

    if (ngx_http_llm_sbuf_reserve(pool, &ctx->out, size) != NGX_OK) {
        goto failed;
    }

    ctx->out.len = 0;
    p = ctx->out.data;
    *p++ = '{';

    for (i = 0; i < n; i++) {

        if (m[i].key_len == 8 && ngx_strncmp(m[i].key, "provider", 8) == 0) {
            continue;
        }

        *p++ = '"';
        p = ngx_cpymem(p, m[i].key, m[i].key_len);
        *p++ = '"';
        *p++ = ':';

        if (m[i].key_len == 5 && ngx_strncmp(m[i].key, "model", 5) == 0) {
            p = ngx_cpymem(p, a->model->name_json.data,
                           a->model->name_json.len);

        } else if (i == u && usage) {
            ctx->out.len = p - ctx->out.data;

            if (ngx_http_llm_json_append(pool, usage, &ctx->out) != NGX_OK
                || ngx_http_llm_sbuf_reserve(pool, &ctx->out, size)
                   != NGX_OK)
            {
                goto failed;
            }

            p = ctx->out.data + ctx->out.len;

        } else if (i == u) {
            /* {...} becomes {...,"cost":C} */

            p = ngx_cpymem(p, m[i].value, m[i].value_len - 1);

            while (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n'
                   || p[-1] == '\r')
            {
                p--;
            }

            if (p[-1] != '{') {
                *p++ = ',';
            }

            p = ngx_cpymem(p, "\"cost\":", 7);
            p = ngx_http_llm_json_pico(p, ngx_http_llm_attempt_cost(a));
            *p++ = '}';

        } else {
            p = ngx_cpymem(p, m[i].value, m[i].value_len);
        }

        *p++ = ',';
    }

    if (usage) {
        json_decref(usage);
    }

    if (!ngx_http_llm_has_member(m, n, "model")) {
        p = ngx_cpymem(p, "\"model\":", 8);
        p = ngx_cpymem(p, a->model->name_json.data, a->model->name_json.len);
        *p++ = ',';
    }

    p = ngx_cpymem(p, "\"provider\":", 11);
    p = ngx_cpymem(p, a->endpoint->provider->name_json.data,
                   a->endpoint->provider->name_json.len);
    *p++ = '}';

    ctx->out.len = p - ctx->out.data;

    ctx->answered = 1;
    ctx->stream_done = 1;

    return NGX_OK;

failed:

    if (usage) {
        json_decref(usage);
    }

    return NGX_ERROR;
}


/*
 * The usage's tokens read with the scanner, as ngx_http_llm_usage() reads
 * them; NGX_DECLINED for what it should read instead (escapes, a "cost"
 * or "estimated" of the provider's own, whose place jansson keeps).
 */

static ngx_int_t
ngx_http_llm_usage_bytes(ngx_http_llm_ctx_t *ctx, ngx_http_llm_member_t *u)
{
    u_char                  *p, *last;
    int64_t                  v;
    ngx_int_t                rc;
    ngx_uint_t               escaped;
    ngx_http_llm_member_t    m, prompt, completion, details;
    ngx_http_llm_attempt_t  *a;

    if (memchr(u->value, '\\', u->value_len) != NULL) {
        return NGX_DECLINED;
    }

    /* one pass; the last of duplicates wins, as in jansson */

    prompt.type = 0;
    completion.type = 0;
    details.type = 0;

    p = u->value;
    last = p + u->value_len;

    while ((rc = ngx_http_llm_scan_pair(&p, last, &m, &escaped)) == NGX_OK) {

        switch (m.key_len) {

        case 4:
            if (ngx_strncmp(m.key, "cost", 4) == 0) {
                return NGX_DECLINED;
            }

            break;

        case 9:
            if (ngx_strncmp(m.key, "estimated", 9) == 0) {
                return NGX_DECLINED;
            }

            break;

        case 13:
            if (ngx_strncmp(m.key, "prompt_tokens", 13) == 0) {
                prompt = m;
            }

            break;

        case 17:
            if (ngx_strncmp(m.key, "completion_tokens", 17) == 0) {
                completion = m;
            }

            break;

        case 21:
            if (ngx_strncmp(m.key, "prompt_tokens_details", 21) == 0) {
                details = m;
            }

            break;
        }
    }

    if (rc != NGX_DONE) {
        return NGX_DECLINED;
    }

    a = ctx->attempt;

    if (prompt.type && ngx_http_llm_scan_int(&prompt, &v) == NGX_OK
        && v >= 0)
    {
        a->prompt_tokens = v;
    }

    if (completion.type && ngx_http_llm_scan_int(&completion, &v) == NGX_OK
        && v >= 0)
    {
        a->completion_tokens = v;
    }

    if (details.type == '{'
        && ngx_http_llm_scan_member(details.value, details.value_len,
                                    "cached_tokens", &m)
           == NGX_OK
        && ngx_http_llm_scan_int(&m, &v) == NGX_OK && v >= 0)
    {
        a->cached_tokens = v;
    }

    a->usage_seen = 1;
    a->estimated = 0;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_llm_has_member(ngx_http_llm_member_t *m, ngx_uint_t n,
    const char *name)
{
    size_t      len;
    ngx_uint_t  i;

    len = ngx_strlen(name);

    for (i = 0; i < n; i++) {
        if (m[i].key_len == len && ngx_strncmp(m[i].key, name, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* one canonical chunk */

ngx_int_t
ngx_http_llm_emit_chunk(ngx_http_llm_ctx_t *ctx, json_t *chunk)
{
    json_t      *choices, *usage, *events;
    ngx_int_t    rc;
    ngx_uint_t   finished;

    choices = json_object_get(chunk, "choices");
    usage = json_object_get(chunk, "usage");

    if (!json_is_array(choices)) {
        return NGX_DECLINED;
    }

    ngx_http_llm_keep_id(ctx, chunk);
    ngx_http_llm_count_text(ctx, choices);

    if (json_is_object(usage)) {
        ngx_http_llm_usage(ctx, usage);

        if (ngx_http_llm_usage_json(ctx, usage) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    finished = 0;

    if (ngx_http_llm_answered(choices, &finished)) {
        ctx->answered = 1;
    }

    if (finished) {
        ctx->stream_done = 1;
    }

    if (ctx->api == NGX_HTTP_LLM_API_MESSAGES) {
        events = json_array();
        if (events == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_llm_messages_chunk(ctx->encoder, chunk, events);

        if (rc == NGX_OK) {
            rc = ngx_http_llm_events(ctx, events);
        }

        json_decref(events);

        return rc;
    }

    if (json_array_size(choices) == 0 && json_is_object(usage)
        && !ctx->include_usage)
    {
        /* the usage chunk the router asked for, not the client */
        return NGX_OK;
    }

    if (ngx_http_llm_label(ctx, chunk) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_llm_data(ctx, chunk);
}


/* the provider's stream is over: [DONE], or message_stop */

ngx_int_t
ngx_http_llm_emit_done(ngx_http_llm_ctx_t *ctx)
{
    json_t     *events, *chunk;
    ngx_int_t   rc;

    ctx->stream_done = 1;

    if (ctx->done_sent) {
        return NGX_OK;
    }

    if (!ctx->attempt->usage_seen
        && ctx->api != NGX_HTTP_LLM_API_EMBEDDINGS)
    {
        /* the provider said nothing of usage: the router's estimate */

        ngx_http_llm_usage_estimate(ctx);

        chunk = json_pack("{s:s%,s:s,s:I,s:[],s:{s:I,s:I,s:I,s:b}}",
                          "id", ctx->id.data ? (char *) ctx->id.data : "",
                          ctx->id.len,
                          "object", "chat.completion.chunk",
                          "created", (json_int_t) ngx_time(),
                          "choices",
                          "usage",
                            "prompt_tokens",
                            (json_int_t) ctx->attempt->prompt_tokens,
                            "completion_tokens",
                            (json_int_t) ctx->attempt->completion_tokens,
                            "total_tokens",
                            (json_int_t) (ctx->attempt->prompt_tokens
                                          + ctx->attempt->completion_tokens),
                            "estimated", 1);
        if (chunk == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_llm_emit_chunk(ctx, chunk);

        json_decref(chunk);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    ctx->done_sent = 1;

    if (ctx->api == NGX_HTTP_LLM_API_MESSAGES) {
        events = json_array();
        if (events == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_llm_messages_end(ctx->encoder, events);

        if (rc == NGX_OK) {
            rc = ngx_http_llm_events(ctx, events);
        }

        json_decref(events);

        return rc;
    }

    return ngx_http_llm_sbuf_append(ctx->request->pool, &ctx->out,
                                    (u_char *) "data: [DONE]\n\n",
                                    sizeof("data: [DONE]\n\n") - 1, 0);
}


/*
 * A whole canonical answer (or, for the legacy APIs, the provider's own).
 * A client that asked for a stream gets one, of the answer in one piece.
 */

ngx_int_t
ngx_http_llm_emit_answer(ngx_http_llm_ctx_t *ctx, json_t *answer)
{
    json_t      *chunk, *message, *usage;
    ngx_int_t    rc;
    ngx_uint_t   finished;

    ngx_http_llm_keep_id(ctx, answer);
    ngx_http_llm_count_text(ctx, json_object_get(answer, "choices"));

    usage = json_object_get(answer, "usage");

    if (json_is_object(usage)) {
        ngx_http_llm_usage(ctx, usage);

    } else if (ctx->api != NGX_HTTP_LLM_API_EMBEDDINGS) {
        ngx_http_llm_usage_estimate(ctx);

        usage = json_pack("{s:I,s:I,s:I}",
                          "prompt_tokens",
                          (json_int_t) ctx->attempt->prompt_tokens,
                          "completion_tokens",
                          (json_int_t) ctx->attempt->completion_tokens,
                          "total_tokens",
                          (json_int_t) (ctx->attempt->prompt_tokens
                                        + ctx->attempt->completion_tokens));

        if (usage == NULL || json_object_set_new(answer, "usage", usage) != 0)
        {
            return NGX_ERROR;
        }
    }

    if (json_is_object(usage) && ngx_http_llm_usage_json(ctx, usage) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->out.len = 0;

    if (ctx->stream) {
        chunk = ngx_http_llm_chunk_of(answer);
        if (chunk == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_llm_emit_chunk(ctx, chunk);

        json_decref(chunk);

        usage = json_object_get(answer, "usage");

        if (rc == NGX_OK && json_is_object(usage)) {
            chunk = json_pack("{s:O?,s:s,s:O?,s:[],s:O}",
                              "id", json_object_get(answer, "id"),
                              "object", "chat.completion.chunk",
                              "created", json_object_get(answer, "created"),
                              "choices",
                              "usage", usage);
            if (chunk == NULL) {
                return NGX_ERROR;
            }

            rc = ngx_http_llm_emit_chunk(ctx, chunk);

            json_decref(chunk);
        }

        if (rc != NGX_OK) {
            return rc;
        }

        ctx->answered = 1;

        return ngx_http_llm_emit_done(ctx);
    }

    finished = 0;
    (void) ngx_http_llm_answered(json_object_get(answer, "choices"),
                                 &finished);

    ctx->answered = 1;
    ctx->stream_done = 1;

    if (ctx->api == NGX_HTTP_LLM_API_MESSAGES) {
        message = ngx_http_llm_messages_response(answer);
        if (message == NULL) {
            return NGX_ERROR;
        }

        usage = json_object_get(message, "usage");

        rc = json_is_object(usage) ? ngx_http_llm_usage_json(ctx, usage)
                                   : NGX_OK;

        if (rc == NGX_OK) {
            rc = ngx_http_llm_label(ctx, message);
        }

        if (rc == NGX_OK) {
            rc = ngx_http_llm_json_append(ctx->request->pool, message,
                                          &ctx->out);
        }

        json_decref(message);

        return rc;
    }

    if (ngx_http_llm_label(ctx, answer) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_llm_json_append(ctx->request->pool, answer, &ctx->out);
}


/*
 * The stream's last words once the provider is done, after the client got
 * its header: the end, or one error the client cannot miss (OpenAI: a
 * chunk with a top-level "error" and finish_reason "error"; Anthropic: an
 * "error" event).
 */

ngx_int_t
ngx_http_llm_stream_end(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    json_t                  *json;
    ngx_int_t                rc;
    ngx_str_t                msg;
    ngx_http_llm_attempt_t  *a;

    ctx->out.len = 0;

    if (!ctx->failed) {
        rc = ngx_http_llm_emit_done(ctx);

    } else {
        a = ctx->attempt;
        msg = a->message;

        if (msg.len == 0) {
            if (a->reason == NGX_HTTP_LLM_FAIL_TIMEOUT) {
                ngx_str_set(&msg, "The provider stopped sending; the answer "
                                  "is incomplete");

            } else {
                ngx_str_set(&msg, "The provider's stream broke off; the "
                                  "answer is incomplete");
            }
        }

        if (ctx->api == NGX_HTTP_LLM_API_MESSAGES) {
            json = json_pack("[[s,{s:s,s:{s:s,s:s%}}]]", "error",
                             "type", "error",
                             "error",
                               "type", "api_error",
                               "message", msg.data, msg.len);

            rc = NGX_ERROR;

            if (json) {
                rc = ngx_http_llm_events(ctx, json);
                json_decref(json);
            }

        } else {
            json = json_pack("{s:s%,s:s,s:I,s:s%,s:s%,"
                             "s:{s:s%,s:s,s:I},s:[{s:i,s:{},s:s}]}",
                             "id", ctx->id.data ? (char *) ctx->id.data : "",
                             ctx->id.len,
                             "object", "chat.completion.chunk",
                             "created", (json_int_t) ngx_time(),
                             "model", a->model->name.data, a->model->name.len,
                             "provider", a->endpoint->provider->name.data,
                             a->endpoint->provider->name.len,
                             "error",
                               "message", msg.data, msg.len,
                               "type", "api_error",
                               "code", (json_int_t) NGX_HTTP_BAD_GATEWAY,
                             "choices",
                               "index", 0,
                               "delta",
                               "finish_reason", "error");
            rc = NGX_ERROR;

            if (json) {
                rc = ngx_http_llm_data(ctx, json);
                json_decref(json);
            }
        }
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->out.len == 0) {
        return NGX_OK;
    }

    rc = ngx_http_llm_output(r, ctx, ctx->out.data, ctx->out.len, 0);

    ctx->out.len = 0;

    return rc;
}


/* "data: <json>\n\n" */

static ngx_int_t
ngx_http_llm_data(ngx_http_llm_ctx_t *ctx, json_t *json)
{
    ngx_pool_t  *pool;

    pool = ctx->request->pool;

    if (ngx_http_llm_sbuf_append(pool, &ctx->out, (u_char *) "data: ", 6, 0)
        != NGX_OK
        || ngx_http_llm_json_append(pool, json, &ctx->out) != NGX_OK
        || ngx_http_llm_sbuf_append(pool, &ctx->out, (u_char *) "\n\n", 2, 0)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Anthropic's named events: "event: <name>\ndata: <json>\n\n" */

static ngx_int_t
ngx_http_llm_events(ngx_http_llm_ctx_t *ctx, json_t *events)
{
    size_t       i;
    json_t      *ev, *name, *data, *message;
    ngx_int_t    rc;
    ngx_pool_t  *pool;

    if (events == NULL) {
        return NGX_ERROR;
    }

    pool = ctx->request->pool;
    rc = NGX_OK;

    json_array_foreach(events, i, ev) {

        name = json_array_get(ev, 0);
        data = json_array_get(ev, 1);

        if (!json_is_string(name) || !json_is_object(data)) {
            continue;
        }

        if (json_is_object(json_object_get(data, "usage"))
            && ngx_strcmp(json_string_value(name), "message_delta") == 0
            && ngx_http_llm_usage_json(ctx, json_object_get(data, "usage"))
               != NGX_OK)
        {
            rc = NGX_ERROR;
            break;
        }

        message = json_object_get(data, "message");

        if (json_is_object(message)
            && ngx_strcmp(json_string_value(name), "message_start") == 0
            && ngx_http_llm_label(ctx, message) != NGX_OK)
        {
            rc = NGX_ERROR;
            break;
        }

        if (ngx_http_llm_sbuf_append(pool, &ctx->out, (u_char *) "event: ",
                                     7, 0)
            != NGX_OK
            || ngx_http_llm_sbuf_append(pool, &ctx->out,
                                        (u_char *) json_string_value(name),
                                        json_string_length(name), 0)
               != NGX_OK
            || ngx_http_llm_sbuf_append(pool, &ctx->out,
                                        (u_char *) "\ndata: ", 7, 0)
               != NGX_OK
            || ngx_http_llm_json_append(pool, data, &ctx->out) != NGX_OK
            || ngx_http_llm_sbuf_append(pool, &ctx->out, (u_char *) "\n\n",
                                        2, 0)
               != NGX_OK)
        {
            rc = NGX_ERROR;
            break;
        }
    }

    return rc;
}


/*
 * A chunk proves the attempt good when it carries something of the answer:
 * text, a tool call, a refusal, reasoning or a finish reason.  A bare role
 * announcement does not, so a provider that says hello and stalls can
 * still be left.
 */

static ngx_uint_t
ngx_http_llm_answered(json_t *choices, ngx_uint_t *finished)
{
    size_t       i;
    json_t      *choice, *delta, *v;
    ngx_uint_t   answered;

    answered = 0;

    json_array_foreach(choices, i, choice) {

        if (json_is_string(json_object_get(choice, "finish_reason"))) {
            *finished = 1;
            answered = 1;
        }

        /* the legacy completions' text */

        v = json_object_get(choice, "text");

        if (json_is_string(v) && json_string_length(v) > 0) {
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
ngx_http_llm_label(ngx_http_llm_ctx_t *ctx, json_t *root)
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
ngx_http_llm_usage(ngx_http_llm_ctx_t *ctx, json_t *usage)
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

    v = json_object_get(json_object_get(usage, "prompt_tokens_details"),
                        "cached_tokens");

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        a->cached_tokens = json_integer_value(v);
    }

    /* the router's own estimate, or a provider's that says it is one */

    a->usage_seen = 1;
    a->estimated = json_is_true(json_object_get(usage, "estimated"));
}


/* the answer's text relayed so far, for an estimate if usage never comes */

static void
ngx_http_llm_count_text(ngx_http_llm_ctx_t *ctx, json_t *choices)
{
    size_t   i, j;
    json_t  *choice, *delta, *v, *call;

    json_array_foreach(choices, i, choice) {
        delta = json_object_get(choice, "delta");

        if (delta == NULL) {
            delta = json_object_get(choice, "message");
        }

        v = json_object_get(delta, "content");

        if (json_is_string(v)) {
            ctx->text_bytes += json_string_length(v);
        }

        v = json_object_get(choice, "text");

        if (json_is_string(v)) {
            ctx->text_bytes += json_string_length(v);
        }

        json_array_foreach(json_object_get(delta, "tool_calls"), j, call) {
            v = json_object_get(json_object_get(call, "function"),
                                "arguments");

            if (json_is_string(v)) {
                ctx->text_bytes += json_string_length(v);
            }
        }
    }
}


static void
ngx_http_llm_keep_id(ngx_http_llm_ctx_t *ctx, json_t *root)
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


/* a whole answer as one chunk: each choice's message as its delta */

static json_t *
ngx_http_llm_chunk_of(json_t *answer)
{
    size_t   i, j;
    json_t  *chunk, *choices, *choice, *c, *msg, *delta, *calls, *call;

    choices = json_array();

    chunk = json_pack("{s:O?,s:s,s:O?,s:o}",
                      "id", json_object_get(answer, "id"),
                      "object", "chat.completion.chunk",
                      "created", json_object_get(answer, "created"),
                      "choices", choices);

    if (chunk == NULL) {
        return NULL;
    }

    json_array_foreach(json_object_get(answer, "choices"), i, choice) {

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
