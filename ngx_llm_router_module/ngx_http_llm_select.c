
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"

#include <math.h>


/*
 * Endpoint selection.  The candidates of a request are the endpoints of
 * each model it names ("model", then "models[]"), filtered by the
 * request's provider preferences (OpenRouter's "provider" object) and by
 * the circuit breaker, each model's endpoints ordered by:
 *
 *   - provider.order first, in its order;
 *   - then provider.sort (or a ":floor" / ":nitro" suffix): price,
 *     latency (time to first token) or throughput, deterministically;
 *   - else, with llm_router_weights, a weighted score over normalised
 *     price, latency, throughput and error rate, lowest first;
 *   - else OpenRouter's default: endpoints that failed in the last 30
 *     seconds go last; the others are drawn at random, weighted by the
 *     inverse square of their price.
 */


#define NGX_HTTP_LLM_RECENT_FAILURE  30000


typedef struct {
    ngx_uint_t                  format;
    ngx_uint_t                  only;
    ngx_uint_t                  ignore;
    ngx_uint_t                  price;
    ngx_uint_t                  circuit;
} ngx_http_llm_removed_t;


static ngx_int_t ngx_http_llm_str_in(ngx_array_t *a, ngx_str_t *s);
static ngx_int_t ngx_http_llm_parse_names(json_t *v, ngx_pool_t *pool,
    ngx_array_t **a);
static void ngx_http_llm_order(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_candidate_t *c, ngx_uint_t n, ngx_uint_t sort);
static void ngx_http_llm_order_by(ngx_http_llm_candidate_t *c, ngx_uint_t n,
    ngx_uint_t sort);
static void ngx_http_llm_order_scored(ngx_http_llm_loc_conf_t *llcf,
    ngx_http_llm_candidate_t *c, ngx_uint_t n);
static void ngx_http_llm_order_random(ngx_http_llm_candidate_t *c,
    ngx_uint_t n);
static void ngx_http_llm_sort(ngx_http_llm_candidate_t *c, ngx_uint_t n);
static double ngx_http_llm_price(ngx_http_llm_endpoint_t *ep);
static void ngx_http_llm_log_candidates(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);


static ngx_str_t  ngx_http_llm_sort_names[] = {
    ngx_string("default"),
    ngx_string("price"),
    ngx_string("latency"),
    ngx_string("throughput")
};


/*
 * OpenRouter's "provider" object.  Unknown fields are refused: a client
 * asking for a guarantee the router does not give must learn it.
 */

const char *
ngx_http_llm_parse_prefs(ngx_http_request_t *r, json_t *p,
    ngx_http_llm_prefs_t *prefs)
{
    double       d;
    json_t      *v, *mp;
    const char  *key, *mkey;
    ngx_str_t    s;
    ngx_uint_t   i;

    prefs->allow_fallbacks = 1;
    prefs->max_prompt = -1;
    prefs->max_completion = -1;

    if (p == NULL || json_is_null(p)) {
        return NULL;
    }

    if (!json_is_object(p)) {
        return "The \"provider\" field must be an object";
    }

    json_object_foreach(p, key, v) {

        if (ngx_strcmp(key, "order") == 0) {
            if (ngx_http_llm_parse_names(v, r->pool, &prefs->order)
                != NGX_OK)
            {
                return "\"provider.order\" must be an array of provider "
                       "names";
            }

        } else if (ngx_strcmp(key, "only") == 0) {
            if (ngx_http_llm_parse_names(v, r->pool, &prefs->only)
                != NGX_OK)
            {
                return "\"provider.only\" must be an array of provider "
                       "names";
            }

        } else if (ngx_strcmp(key, "ignore") == 0) {
            if (ngx_http_llm_parse_names(v, r->pool, &prefs->ignore)
                != NGX_OK)
            {
                return "\"provider.ignore\" must be an array of provider "
                       "names";
            }

        } else if (ngx_strcmp(key, "allow_fallbacks") == 0) {
            if (!json_is_boolean(v)) {
                return "\"provider.allow_fallbacks\" must be a boolean";
            }

            prefs->allow_fallbacks = json_is_true(v);

        } else if (ngx_strcmp(key, "sort") == 0) {
            if (!json_is_string(v)) {
                return "\"provider.sort\" must be \"price\", \"latency\" or "
                       "\"throughput\"";
            }

            s.data = (u_char *) json_string_value(v);
            s.len = json_string_length(v);

            for (i = 1; i < 4; i++) {
                if (s.len == ngx_http_llm_sort_names[i].len
                    && ngx_strncmp(s.data, ngx_http_llm_sort_names[i].data,
                                   s.len) == 0)
                {
                    prefs->sort = i;
                    break;
                }
            }

            if (i == 4) {
                return "\"provider.sort\" must be \"price\", \"latency\" or "
                       "\"throughput\"";
            }

        } else if (ngx_strcmp(key, "max_price") == 0) {
            if (!json_is_object(v)) {
                return "\"provider.max_price\" must be an object";
            }

            json_object_foreach(v, mkey, mp) {

                if (!json_is_number(mp) || json_number_value(mp) < 0
                    || json_number_value(mp) > 1e6)
                {
                    return "\"provider.max_price\" prices must be numbers "
                           "of USD per million tokens";
                }

                /* USD per million tokens = micro-USD per token * 1e6 */
                d = json_number_value(mp) * 1e6;

                if (ngx_strcmp(mkey, "prompt") == 0) {
                    prefs->max_prompt = (int64_t) llround(d);

                } else if (ngx_strcmp(mkey, "completion") == 0) {
                    prefs->max_completion = (int64_t) llround(d);

                } else {
                    return "\"provider.max_price\" takes \"prompt\" and "
                           "\"completion\" only";
                }
            }

        } else {
            prefs->unknown = key;
            return "unknown field";
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_llm_parse_names(json_t *v, ngx_pool_t *pool, ngx_array_t **a)
{
    size_t      i;
    json_t     *e;
    ngx_str_t  *s;

    if (!json_is_array(v)) {
        return NGX_ERROR;
    }

    *a = ngx_array_create(pool, json_array_size(v) + 1, sizeof(ngx_str_t));
    if (*a == NULL) {
        return NGX_ERROR;
    }

    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
            return NGX_ERROR;
        }

        s = ngx_array_push(*a);
        if (s == NULL) {
            return NGX_ERROR;
        }

        s->data = (u_char *) json_string_value(e);
        s->len = json_string_length(e);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_llm_str_in(ngx_array_t *a, ngx_str_t *s)
{
    ngx_str_t   *e;
    ngx_uint_t   i;

    e = a->elts;

    for (i = 0; i < a->nelts; i++) {
        if (e[i].len == s->len && ngx_strncmp(e[i].data, s->data, s->len) == 0)
        {
            return (ngx_int_t) i;
        }
    }

    return NGX_DECLINED;
}


/*
 * Lists the candidates of every model the request named.  Returns NGX_OK,
 * or NGX_DECLINED with "why" saying which constraints left nothing.
 */

ngx_int_t
ngx_http_llm_select(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_str_t *why)
{
    u_char                    *p, *last;
    ngx_int_t                  rc;
    ngx_uint_t                 i, j, n0, sort;
    ngx_http_llm_prefs_t      *prefs;
    ngx_http_llm_removed_t     removed;
    ngx_http_llm_endpoint_t   *ep;
    ngx_http_llm_model_ref_t  *ref;
    ngx_http_llm_candidate_t  *cand;
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    prefs = &ctx->prefs;
    ngx_memzero(&removed, sizeof(ngx_http_llm_removed_t));

    ref = ctx->models.elts;

    for (i = 0; i < ctx->models.nelts; i++) {

        n0 = ctx->candidates.nelts;
        ep = ref[i].model->endpoints.elts;

        for (j = 0; j < ref[i].model->endpoints.nelts; j++) {

            if ((ctx->api == NGX_HTTP_LLM_API_COMPLETIONS
                 || ctx->api == NGX_HTTP_LLM_API_EMBEDDINGS)
                && ep[j].provider->format != NGX_HTTP_LLM_FORMAT_OPENAI)
            {
                /* the legacy APIs exist in OpenAI's dialect only */
                removed.format++;
                continue;
            }

            if (prefs->only
                && ngx_http_llm_str_in(prefs->only, &ep[j].provider->name)
                   == NGX_DECLINED)
            {
                removed.only++;
                continue;
            }

            if (prefs->ignore
                && ngx_http_llm_str_in(prefs->ignore, &ep[j].provider->name)
                   != NGX_DECLINED)
            {
                removed.ignore++;
                continue;
            }

            if ((prefs->max_prompt >= 0
                 && ep[j].input_price > prefs->max_prompt)
                || (prefs->max_completion >= 0
                    && ep[j].output_price > prefs->max_completion))
            {
                removed.price++;
                continue;
            }

            rc = ngx_http_llm_stats_circuit(lmcf, ep[j].stats);

            if (rc == NGX_BUSY) {
                removed.circuit++;
                continue;
            }

            cand = ngx_array_push(&ctx->candidates);
            if (cand == NULL) {
                return NGX_ERROR;
            }

            ngx_memzero(cand, sizeof(ngx_http_llm_candidate_t));

            cand->model = ref[i].model;
            cand->endpoint = &ep[j];
            cand->probe = (rc == NGX_AGAIN);
        }

        sort = ref[i].sort ? ref[i].sort : prefs->sort;

        cand = ctx->candidates.elts;

        ngx_http_llm_order(r, ctx, &cand[n0], ctx->candidates.nelts - n0,
                           sort);
    }

    if (ctx->candidates.nelts) {
        ngx_http_llm_log_candidates(r, ctx);
        return NGX_OK;
    }

    why->data = ngx_pnalloc(r->pool, 512);
    if (why->data == NULL) {
        return NGX_ERROR;
    }

    last = why->data + 512;

    p = ngx_slprintf(why->data, last, "No endpoint of \"%V\" is allowed:",
                     &ref[0].model->name);

    if (removed.format) {
        p = ngx_slprintf(p, last, " %ui not of the OpenAI dialect this API "
                         "needs;", removed.format);
    }

    if (removed.only) {
        p = ngx_slprintf(p, last, " provider.only removed %ui;",
                         removed.only);
    }

    if (removed.ignore) {
        p = ngx_slprintf(p, last, " provider.ignore removed %ui;",
                         removed.ignore);
    }

    if (removed.price) {
        p = ngx_slprintf(p, last, " provider.max_price removed %ui;",
                         removed.price);
    }

    if (removed.circuit) {
        p = ngx_slprintf(p, last, " %ui cooling down after failures;",
                         removed.circuit);
    }

    why->len = p - why->data - 1;

    return NGX_DECLINED;
}


static void
ngx_http_llm_order(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_candidate_t *c, ngx_uint_t n, ngx_uint_t sort)
{
    ngx_int_t                 k;
    ngx_uint_t                i, first, stable;
    ngx_msec_t                now;
    ngx_http_llm_candidate_t  t;
    ngx_http_llm_loc_conf_t  *llcf;

    if (n == 0) {
        return;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llm_router_module);

    /* provider.order: the listed providers first, in the listed order */

    first = 0;

    if (ctx->prefs.order) {
        for (i = 0; i < n; i++) {
            k = ngx_http_llm_str_in(ctx->prefs.order,
                                    &c[i].endpoint->provider->name);
            c[i].key = (k == NGX_DECLINED) ? 1e9 : (double) k;
        }

        ngx_http_llm_sort(c, n);

        while (first < n && c[first].key < 1e9) {
            first++;
        }

        c += first;
        n -= first;
    }

    if (sort != NGX_HTTP_LLM_SORT_DEFAULT) {
        ngx_http_llm_order_by(c, n, sort);
        return;
    }

    /* endpoints that failed in the last 30 seconds go last */

    now = ngx_current_msec;
    stable = 0;

    for (i = 0; i < n; i++) {
        if (c[i].endpoint->stats->last_failure
            && now - c[i].endpoint->stats->last_failure
               < NGX_HTTP_LLM_RECENT_FAILURE)
        {
            continue;
        }

        if (i != stable) {
            t = c[i];
            ngx_memmove(&c[stable + 1], &c[stable],
                        (i - stable) * sizeof(ngx_http_llm_candidate_t));
            c[stable] = t;
        }

        stable++;
    }

    if (llcf->weights) {
        ngx_http_llm_order_scored(llcf, c, stable);
        ngx_http_llm_order_scored(llcf, c + stable, n - stable);
        return;
    }

    ngx_http_llm_order_random(c, stable);
    ngx_http_llm_order_random(c + stable, n - stable);
}


static void
ngx_http_llm_order_by(ngx_http_llm_candidate_t *c, ngx_uint_t n,
    ngx_uint_t sort)
{
    ngx_uint_t             i, known;
    ngx_http_llm_stats_t  *st;

    for (i = 0; i < n; i++) {
        st = c[i].endpoint->stats;

        switch (sort) {

        case NGX_HTTP_LLM_SORT_PRICE:
            c[i].key = ngx_http_llm_price(c[i].endpoint);
            break;

        case NGX_HTTP_LLM_SORT_LATENCY:
            /* an endpoint never measured is tried: it may be the best */
            c[i].key = (double) ngx_http_llm_ewma_value(&st->ttft, &known);
            break;

        default: /* NGX_HTTP_LLM_SORT_THROUGHPUT */
            c[i].key = -(double) ngx_http_llm_ewma_value(&st->tps, &known);

            if (!known) {
                c[i].key = -1e18;
            }

            break;
        }
    }

    ngx_http_llm_sort(c, n);
}


/*
 * llm_router_weights: score = cost * price + latency * ttft
 *                             + throughput * (1 - tps) + errors * rate,
 * each term normalised to 0..1 over the candidates; lowest score first.
 */

static void
ngx_http_llm_order_scored(ngx_http_llm_loc_conf_t *llcf,
    ngx_http_llm_candidate_t *c, ngx_uint_t n)
{
    double                 max_price, max_ttft, max_tps, price, ttft, tps;
    ngx_uint_t             i, known;
    ngx_http_llm_stats_t  *st;

    max_price = max_ttft = max_tps = 0;

    for (i = 0; i < n; i++) {
        st = c[i].endpoint->stats;

        price = ngx_http_llm_price(c[i].endpoint);
        ttft = (double) ngx_http_llm_ewma_value(&st->ttft, &known);
        tps = (double) ngx_http_llm_ewma_value(&st->tps, &known);

        max_price = ngx_max(max_price, price);
        max_ttft = ngx_max(max_ttft, ttft);
        max_tps = ngx_max(max_tps, tps);
    }

    for (i = 0; i < n; i++) {
        st = c[i].endpoint->stats;

        price = ngx_http_llm_price(c[i].endpoint);
        ttft = (double) ngx_http_llm_ewma_value(&st->ttft, &known);
        tps = (double) ngx_http_llm_ewma_value(&st->tps, &known);

        c[i].key = llcf->weight_cost * (max_price ? price / max_price : 0)
                   + llcf->weight_latency * (max_ttft ? ttft / max_ttft : 0)
                   + llcf->weight_throughput
                     * ((max_tps && known) ? 1 - tps / max_tps : 0)
                   + llcf->weight_errors
                     * ngx_http_llm_ewma_value(&st->error_rate, &known)
                     / 1e6;
    }

    ngx_http_llm_sort(c, n);
}


/*
 * A weighted draw without replacement, weight 1 / price^2: a third of the
 * price is nine times the chance.  Free endpoints come first.
 */

static void
ngx_http_llm_order_random(ngx_http_llm_candidate_t *c, ngx_uint_t n)
{
    double                    total, x, price;
    ngx_uint_t                i, j;
    ngx_http_llm_candidate_t  t;

    for (i = 0; i < n; i++) {
        price = ngx_http_llm_price(c[i].endpoint);
        c[i].key = (price > 0) ? 1 / (price * price) : 1e30;
    }

    for (i = 0; i + 1 < n; i++) {

        total = 0;

        for (j = i; j < n; j++) {
            total += c[j].key;
        }

        x = total * ((double) ngx_random() / ((double) RAND_MAX + 1));

        for (j = i; j + 1 < n; j++) {
            x -= c[j].key;

            if (x < 0) {
                break;
            }
        }

        t = c[i];
        c[i] = c[j];
        c[j] = t;
    }
}


/* a stable insertion sort on "key": candidate lists are short */

static void
ngx_http_llm_sort(ngx_http_llm_candidate_t *c, ngx_uint_t n)
{
    ngx_uint_t                i, j;
    ngx_http_llm_candidate_t  t;

    for (i = 1; i < n; i++) {
        t = c[i];

        for (j = i; j > 0 && c[j - 1].key > t.key; j--) {
            c[j] = c[j - 1];
        }

        c[j] = t;
    }
}


/* USD per million tokens, input and output together */

static double
ngx_http_llm_price(ngx_http_llm_endpoint_t *ep)
{
    return (double) (ep->input_price + ep->output_price) / 1e6;
}


static void
ngx_http_llm_log_candidates(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    u_char                    *p, *last;
    u_char                     buf[NGX_MAX_ERROR_STR];
    ngx_uint_t                 i, known;
    ngx_http_llm_stats_t      *st;
    ngx_http_llm_candidate_t  *c;

    if (r->connection->log->log_level < NGX_LOG_INFO) {
        return;
    }

    p = buf;
    last = buf + sizeof(buf);
    c = ctx->candidates.elts;

    for (i = 0; i < ctx->candidates.nelts && p < last; i++) {
        st = c[i].endpoint->stats;

        p = ngx_slprintf(p, last, "%s%V/%V (price %.6f, ttft %uims, "
                         "err %.3f%s)", i ? ", " : "",
                         &c[i].model->name, &c[i].endpoint->provider->name,
                         ngx_http_llm_price(c[i].endpoint),
                         ngx_http_llm_ewma_value(&st->ttft, &known),
                         (double) ngx_http_llm_ewma_value(&st->error_rate,
                                                          &known) / 1e6,
                         c[i].probe ? ", probe" : "");
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "llm: candidates in order: %*s", p - buf, buf);
}
