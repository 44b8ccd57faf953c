
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * What every request did, counted once, when it is logged, in the shared
 * zone: the final status, its duration, and for an answer its tokens,
 * cost and time to first token.  A request is counted where it ended: at
 * the endpoint of its last attempt; at its model when no endpoint was
 * tried (a key's 402, no endpoint left); else in the zone's own row (bad
 * JSON, unknown model, no key).  Counters are atomic: no lock, except for
 * a key's counters, which live under the zone's lock with its spend.
 */


/* histogram buckets, msec (and the "+Inf" one after them) */

const ngx_msec_t  ngx_http_llm_buckets[NGX_HTTP_LLM_NBUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 30000, 60000, 120000
};


/* the statuses counted one by one; the last slot is any other */

static const ngx_uint_t  ngx_http_llm_statuses[NGX_HTTP_LLM_NSTATUS - 1] = {
    200, 400, 401, 402, 403, 404, 405, 408, 413, 429, 499, 500, 502, 503,
    504
};


static ngx_uint_t ngx_http_llm_status_index(ngx_uint_t status);
static void ngx_http_llm_observe(ngx_http_llm_histogram_t *h, ngx_msec_t ms);


void
ngx_http_llm_metrics_request(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    ngx_uint_t                 status;
    ngx_msec_t                 ms;
    ngx_time_t                *tp;
    ngx_msec_int_t             d;
    ngx_http_llm_attempt_t    *a;
    ngx_http_llm_metrics_t    *m;
    ngx_http_llm_key_stats_t  *st;
    ngx_http_llm_main_conf_t  *lmcf;

    if (ctx->counted || ctx->api == 0) {
        return;
    }

    ctx->counted = 1;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    status = r->err_status ? r->err_status : r->headers_out.status;

    tp = ngx_timeofday();

    d = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                          + (tp->msec - r->start_msec));
    ms = (d > 0) ? (ngx_msec_t) d : 0;

    a = (ctx->attempts.nelts && ctx->attempt) ? ctx->attempt : NULL;

    if (a) {
        m = &a->endpoint->stats->metrics;

    } else if (ctx->model && ctx->model->metrics) {
        m = ctx->model->metrics;

    } else {
        m = lmcf->metrics;
    }

    if (m) {
        (void) ngx_atomic_fetch_add(&m->status[ngx_http_llm_status_index(
                                                                   status)],
                                    1);

        ngx_http_llm_observe(&m->duration, ms);

        if (a && ctx->committed && a->cache_hit) {
            (void) ngx_atomic_fetch_add(&a->endpoint->stats->cache_hits, 1);

        } else if (a && ctx->committed) {
            ngx_http_llm_observe(&m->ttft, a->ttft);

            (void) ngx_atomic_fetch_add(&m->prompt_tokens,
                                        (ngx_atomic_int_t) a->prompt_tokens);
            (void) ngx_atomic_fetch_add(&m->completion_tokens,
                                        (ngx_atomic_int_t)
                                        a->completion_tokens);
            (void) ngx_atomic_fetch_add(&m->cached_tokens,
                                        (ngx_atomic_int_t) a->cached_tokens);
            (void) ngx_atomic_fetch_add(&m->cost,
                                        (ngx_atomic_int_t)
                                        ngx_http_llm_attempt_cost(a));
        }
    }

    if (ctx->key && lmcf->shpool) {
        st = ctx->key->stats;

        ngx_shmtx_lock(&lmcf->shpool->mutex);

        st->all_requests++;

        if (status == 402 || status == 403 || status == 429) {
            st->rejected++;
        }

        ngx_shmtx_unlock(&lmcf->shpool->mutex);
    }
}


static ngx_uint_t
ngx_http_llm_status_index(ngx_uint_t status)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_LLM_NSTATUS - 1; i++) {
        if (ngx_http_llm_statuses[i] == status) {
            return i;
        }
    }

    return NGX_HTTP_LLM_NSTATUS - 1;
}


/* the status counted at "index"; 0 for the slot of all others */

ngx_uint_t
ngx_http_llm_metrics_status(ngx_uint_t index)
{
    return (index < NGX_HTTP_LLM_NSTATUS - 1) ? ngx_http_llm_statuses[index]
                                              : 0;
}


static void
ngx_http_llm_observe(ngx_http_llm_histogram_t *h, ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_LLM_NBUCKETS; i++) {
        if (ms <= ngx_http_llm_buckets[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->count[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum, (ngx_atomic_int_t) ms);
}


/* "ms" as seconds, without trailing zeros: 50 is "0.05", 2000 is "2" */

u_char *
ngx_http_llm_seconds(u_char *p, ngx_msec_t ms)
{
    ngx_uint_t  frac, digits;

    p = ngx_sprintf(p, "%M", ms / 1000);

    frac = ms % 1000;

    if (frac == 0) {
        return p;
    }

    digits = 3;

    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }

    switch (digits) {
    case 1:
        return ngx_sprintf(p, ".%ui", frac);
    case 2:
        return ngx_sprintf(p, ".%02ui", frac);
    default:
        return ngx_sprintf(p, ".%03ui", frac);
    }
}
