
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * What a request cost.  Prices are pico-USD per token and token counts are
 * whole, so a cost is an exact integer of pico-USD: correct to the
 * micro-dollar and far below.  Cached prompt tokens are priced at the
 * endpoint's "cached" price when it has one.
 *
 * When a provider reports no usage, the router estimates it (a quarter of
 * the request's bytes for the prompt, of the answer's text for the
 * completion) and says so: "estimated": true.
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


/*
 * The request is over: the key's reservation is settled to what the
 * answering attempt cost.  Called when the answer is complete, and from the
 * log phase for requests that ended otherwise (a client gone): once.
 */

void
ngx_http_llm_account(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    int64_t                  cost, tokens;
    ngx_http_llm_attempt_t  *a;

    if (ctx->key == NULL || ctx->settled) {
        return;
    }

    cost = 0;
    tokens = 0;
    a = ctx->attempt;

    if (a && ctx->committed) {
        /* a cut stream was used all the same: what it sent is billed */
        ngx_http_llm_usage_estimate(ctx);

        cost = ngx_http_llm_attempt_cost(a);
        tokens = a->prompt_tokens + a->completion_tokens;
    }

    ngx_http_llm_key_settle(r, ctx, cost, tokens);
}


ngx_int_t
ngx_http_llm_log_handler(ngx_http_request_t *r)
{
    ngx_http_llm_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    if (ctx) {
        ngx_http_llm_account(r, ctx);
        ngx_http_llm_metrics_request(r, ctx);
    }

    return NGX_OK;
}
