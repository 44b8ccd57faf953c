
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * What an attempt used and cost.  Prices are pico-USD per token and token
 * counts are whole, so a cost is an exact integer of pico-USD: correct to
 * the micro-dollar and far below.  Cached prompt tokens are priced at the
 * endpoint's "cached" price when it has one.
 *
 * When a provider reports no usage, the router estimates it (a quarter of
 * the request's bytes for the prompt, of the answer's text for the
 * completion) and says so: "estimated": true.
 *
 * And what a parsed answer or chunk says of itself (its id, its text,
 * whether it answers): ngx_http_llm_relabel.c reads the same from bytes,
 * and tools/fuzz/fuzz_relabel.c holds the two to the same results.
 */


/* a million dollars: more than any request can cost */
#define NGX_HTTP_LLM_MAX_COST  1000000000000000000LL


static int64_t ngx_http_llm_cost_of(int64_t tokens, int64_t price);
static int64_t ngx_http_llm_cost_add(int64_t a, int64_t b);


int64_t
ngx_http_llm_attempt_cost(ngx_http_llm_attempt_t *a)
{
    int64_t                   cached, price;
    ngx_http_llm_endpoint_t  *ep;

    if (a->cache_hit) {
        /* proxy_cache answered: nobody was paid for it */
        return 0;
    }

    ep = a->endpoint;

    cached = ngx_min(a->cached_tokens, a->prompt_tokens);
    price = (ep->cached_price >= 0) ? ep->cached_price : ep->input_price;

    return ngx_http_llm_cost_add(
               ngx_http_llm_cost_add(
                   ngx_http_llm_cost_of(a->prompt_tokens - cached,
                                        ep->input_price),
                   ngx_http_llm_cost_of(cached, price)),
               ngx_http_llm_cost_of(a->completion_tokens, ep->output_price));
}


/*
 * Tokens at a price, and costs added, held at NGX_HTTP_LLM_MAX_COST: a
 * provider reporting absurd counts must not overflow a cost or a budget.
 */

static int64_t
ngx_http_llm_cost_of(int64_t tokens, int64_t price)
{
    if (tokens <= 0 || price <= 0) {
        return 0;
    }

    if (tokens > NGX_HTTP_LLM_MAX_COST / price) {
        return NGX_HTTP_LLM_MAX_COST;
    }

    return tokens * price;
}


static int64_t
ngx_http_llm_cost_add(int64_t a, int64_t b)
{
    return (a > NGX_HTTP_LLM_MAX_COST - b) ? NGX_HTTP_LLM_MAX_COST : a + b;
}


/* the usage a provider did not report, estimated */

void
ngx_http_llm_usage_estimate(ngx_http_llm_ctx_t *ctx)
{
    ngx_http_llm_attempt_t  *a;

    a = ctx->attempt;

    if (a == NULL || a->usage_seen) {
        return;
    }

    a->prompt_tokens = ngx_max(1, (int64_t) ctx->body_len / 4);
    a->completion_tokens = (ctx->text_bytes + 3) / 4;
    a->estimated = 1;
    a->usage_seen = 1;
}


/* the attempt's usage and cost into a usage object of the answer */

ngx_int_t
ngx_http_llm_usage_json(ngx_http_llm_ctx_t *ctx, json_t *usage)
{
    ngx_http_llm_attempt_t  *a;

    a = ctx->attempt;

    if (a->estimated
        && (json_object_set_new(usage, "estimated", json_true()) != 0))
    {
        return NGX_ERROR;
    }

    if (json_object_set_new(usage, "cost",
                            json_real((double) ngx_http_llm_attempt_cost(a)
                                      / 1e12))
        != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a provider's usage object, parsed: its tokens noted */

void
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


/*
 * A chunk proves the attempt good when it carries something of the answer:
 * text, a tool call, a refusal, reasoning or a finish reason.  A bare role
 * announcement does not, so a provider that says hello and stalls can
 * still be left.
 */

ngx_uint_t
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


void
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


/* the answer's text relayed so far, for an estimate if usage never comes */

void
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
