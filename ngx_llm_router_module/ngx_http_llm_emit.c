
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
static json_t *ngx_http_llm_chunk_of(json_t *answer);


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
