
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * Settling: when a request is over, its key's reservation becomes what the
 * answering attempt cost (ngx_http_llm_usage.c prices it).
 */


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
