
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * llm_status in Prometheus' text exposition format, version 0.0.4: the
 * same counters as the JSON, one family at a time.  Series are labelled
 * by model and provider (where a request ended, see
 * ngx_http_llm_metrics.c; provider="" for requests no endpoint took,
 * model="" for those without a model) and by key label.  Numbers are
 * printed from integers (pico-dollars, milliseconds): no floating point.
 */


typedef struct {
    ngx_str_t                   labels;   /* model="...",provider="..." */
    ngx_http_llm_metrics_t     *m;
    ngx_http_llm_stats_t       *st;       /* an endpoint's; else NULL */
} ngx_http_llm_prom_row_t;


typedef struct {
    ngx_http_request_t         *r;
    ngx_http_llm_main_conf_t   *lmcf;
    ngx_http_llm_sbuf_t         out;
    ngx_array_t                 rows;     /* ngx_http_llm_prom_row_t */
    ngx_array_t                 keys;     /* ngx_str_t, key="..." */
    ngx_int_t                   rc;
} ngx_http_llm_prom_t;


static ngx_int_t ngx_http_llm_prom_rows(ngx_http_llm_prom_t *pr);
static ngx_int_t ngx_http_llm_prom_labels(ngx_pool_t *pool, ngx_str_t *out,
    const char *name1, ngx_str_t *value1, const char *name2,
    ngx_str_t *value2);
static void ngx_http_llm_prom_requests(ngx_http_llm_prom_t *pr);
static void ngx_http_llm_prom_histogram(ngx_http_llm_prom_t *pr,
    const char *name, const char *help, ngx_uint_t ttft);
static void ngx_http_llm_prom_usage(ngx_http_llm_prom_t *pr);
static void ngx_http_llm_prom_endpoints(ngx_http_llm_prom_t *pr);
static void ngx_http_llm_prom_keys(ngx_http_llm_prom_t *pr);
static void ngx_http_llm_prom_family(ngx_http_llm_prom_t *pr,
    const char *name, const char *type, const char *help);
static void ngx_http_llm_prom_printf(ngx_http_llm_prom_t *pr, size_t len,
    const char *fmt, ...);
static u_char *ngx_http_llm_prom_usd(u_char *p, int64_t pico);
static ngx_uint_t ngx_http_llm_metrics_used(ngx_http_llm_metrics_t *m);


ngx_int_t
ngx_http_llm_prometheus(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_chain_t           out;
    ngx_http_llm_prom_t   pr;

    ngx_memzero(&pr, sizeof(ngx_http_llm_prom_t));

    pr.r = r;
    pr.lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    if (ngx_http_llm_prom_rows(&pr) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_llm_prom_requests(&pr);

    ngx_http_llm_prom_histogram(&pr, "llm_request_duration_seconds",
                                "Time from a request's start to its end.",
                                0);

    ngx_http_llm_prom_histogram(&pr, "llm_ttft_seconds",
                                "Time from an answered attempt's start to "
                                "its first useful bytes.", 1);

    ngx_http_llm_prom_usage(&pr);
    ngx_http_llm_prom_endpoints(&pr);
    ngx_http_llm_prom_keys(&pr);

    ngx_http_llm_prom_family(&pr, "llm_config_generation", "gauge",
                             "Configurations loaded since the shared zone "
                             "was made.");
    ngx_http_llm_prom_printf(&pr, 0, "llm_config_generation %uA\n",
                             pr.lmcf->sh ? pr.lmcf->sh->generation : 0);

    if (pr.rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = pr.out.len;

    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = pr.out.data;
    b->last = pr.out.data + pr.out.len;
    b->memory = (pr.out.len != 0);
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* the series' rows: every endpoint, then models and the zone if used */

static ngx_int_t
ngx_http_llm_prom_rows(ngx_http_llm_prom_t *pr)
{
    ngx_str_t                  none, *label;
    ngx_uint_t                 i, j;
    ngx_pool_t                *pool;
    ngx_http_llm_key_t        *key;
    ngx_http_llm_model_t     **model;
    ngx_http_llm_endpoint_t   *ep;
    ngx_http_llm_prom_row_t   *row;
    ngx_http_llm_main_conf_t  *lmcf;

    pool = pr->r->pool;
    lmcf = pr->lmcf;

    ngx_str_null(&none);

    if (ngx_array_init(&pr->rows, pool, 16, sizeof(ngx_http_llm_prom_row_t))
        != NGX_OK
        || ngx_array_init(&pr->keys, pool, 4, sizeof(ngx_str_t)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    model = lmcf->models.elts;

    for (i = 0; i < lmcf->models.nelts; i++) {
        ep = model[i]->endpoints.elts;

        for (j = 0; j < model[i]->endpoints.nelts; j++) {
            row = ngx_array_push(&pr->rows);
            if (row == NULL) {
                return NGX_ERROR;
            }

            row->st = ep[j].stats;
            row->m = &ep[j].stats->metrics;

            if (ngx_http_llm_prom_labels(pool, &row->labels,
                                         "model", &model[i]->name,
                                         "provider", &ep[j].provider->name)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    for (i = 0; i <= lmcf->models.nelts; i++) {

        if (i < lmcf->models.nelts) {
            if (!ngx_http_llm_metrics_used(model[i]->metrics)) {
                continue;
            }

        } else if (!ngx_http_llm_metrics_used(lmcf->metrics)) {
            continue;
        }

        row = ngx_array_push(&pr->rows);
        if (row == NULL) {
            return NGX_ERROR;
        }

        row->st = NULL;
        row->m = (i < lmcf->models.nelts) ? model[i]->metrics
                                          : lmcf->metrics;

        if (ngx_http_llm_prom_labels(pool, &row->labels, "model",
                                     (i < lmcf->models.nelts)
                                     ? &model[i]->name : &none,
                                     "provider", &none)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (lmcf->keys == NULL || lmcf->shpool == NULL) {
        return NGX_OK;
    }

    key = lmcf->keys->elts;

    for (i = 0; i < lmcf->keys->nelts; i++) {
        label = ngx_array_push(&pr->keys);
        if (label == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_llm_prom_labels(pool, label, "key", &key[i].label,
                                     NULL, NULL)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* name1="value1"[,name2="value2"], the values escaped as the format says */

static ngx_int_t
ngx_http_llm_prom_labels(ngx_pool_t *pool, ngx_str_t *out,
    const char *name1, ngx_str_t *value1, const char *name2,
    ngx_str_t *value2)
{
    u_char      *p;
    size_t       len;
    ngx_str_t   *v;
    ngx_uint_t   i, n;
    const char  *name;

    len = ngx_strlen(name1) + 3 + 2 * value1->len;

    if (name2) {
        len += 1 + ngx_strlen(name2) + 3 + 2 * value2->len;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    for (n = 0; n < 2; n++) {
        name = n ? name2 : name1;
        v = n ? value2 : value1;

        if (name == NULL) {
            break;
        }

        if (n) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, name, ngx_strlen(name));
        *p++ = '=';
        *p++ = '"';

        for (i = 0; i < v->len; i++) {
            switch (v->data[i]) {

            case '\\':
            case '"':
                *p++ = '\\';
                *p++ = v->data[i];
                break;

            case '\n':
                *p++ = '\\';
                *p++ = 'n';
                break;

            default:
                *p++ = v->data[i];
            }
        }

        *p++ = '"';
    }

    out->len = p - out->data;

    return NGX_OK;
}


static void
ngx_http_llm_prom_requests(ngx_http_llm_prom_t *pr)
{
    ngx_uint_t                i, j, status;
    ngx_atomic_uint_t         n;
    ngx_http_llm_prom_row_t  *row;

    ngx_http_llm_prom_family(pr, "llm_requests_total", "counter",
                             "Requests by the model and provider they "
                             "ended at, and their status.");

    row = pr->rows.elts;

    for (i = 0; i < pr->rows.nelts; i++) {
        for (j = 0; j < NGX_HTTP_LLM_NSTATUS; j++) {
            n = row[i].m->status[j];

            if (n == 0) {
                continue;
            }

            status = ngx_http_llm_metrics_status(j);

            if (status) {
                ngx_http_llm_prom_printf(pr, row[i].labels.len,
                                         "llm_requests_total{%V,"
                                         "status=\"%ui\"} %uA\n",
                                         &row[i].labels, status, n);
            } else {
                ngx_http_llm_prom_printf(pr, row[i].labels.len,
                                         "llm_requests_total{%V,"
                                         "status=\"other\"} %uA\n",
                                         &row[i].labels, n);
            }
        }
    }
}


static void
ngx_http_llm_prom_histogram(ngx_http_llm_prom_t *pr, const char *name,
    const char *help, ngx_uint_t ttft)
{
    u_char                     le[NGX_INT_T_LEN + 8], *p;
    ngx_uint_t                 i, j;
    ngx_atomic_uint_t          n;
    ngx_http_llm_histogram_t  *h;
    ngx_http_llm_prom_row_t   *row;

    ngx_http_llm_prom_family(pr, name, "histogram", help);

    row = pr->rows.elts;

    for (i = 0; i < pr->rows.nelts; i++) {

        if (ttft && row[i].st == NULL) {
            continue;
        }

        h = ttft ? &row[i].m->ttft : &row[i].m->duration;
        n = 0;

        for (j = 0; j <= NGX_HTTP_LLM_NBUCKETS; j++) {
            n += h->count[j];

            if (j == NGX_HTTP_LLM_NBUCKETS) {
                p = ngx_cpymem(le, "+Inf", 4);

            } else {
                p = ngx_http_llm_seconds(le, ngx_http_llm_buckets[j]);
            }

            ngx_http_llm_prom_printf(pr, row[i].labels.len,
                                     "%s_bucket{%V,le=\"%*s\"} %uA\n",
                                     name, &row[i].labels,
                                     (size_t) (p - le), le, n);
        }

        p = ngx_http_llm_seconds(le, h->sum);

        ngx_http_llm_prom_printf(pr, row[i].labels.len,
                                 "%s_sum{%V} %*s\n%s_count{%V} %uA\n",
                                 name, &row[i].labels, (size_t) (p - le),
                                 le, name, &row[i].labels, n);
    }
}


/* tokens and cost of the answers, by the endpoint that gave them */

static void
ngx_http_llm_prom_usage(ngx_http_llm_prom_t *pr)
{
    u_char                    usd[NGX_INT64_LEN + 16], *p;
    ngx_uint_t                i, f;
    ngx_atomic_uint_t         v;
    ngx_http_llm_prom_row_t  *row;

    static const char  *names[] = {
        "llm_prompt_tokens_total", "llm_completion_tokens_total",
        "llm_cached_tokens_total"
    };

    static const char  *helps[] = {
        "Prompt tokens of the answers, as the providers counted them.",
        "Completion tokens of the answers.",
        "Prompt tokens the providers served from their prompt caches."
    };

    row = pr->rows.elts;

    for (f = 0; f < 3; f++) {
        ngx_http_llm_prom_family(pr, names[f], "counter", helps[f]);

        for (i = 0; i < pr->rows.nelts; i++) {

            if (row[i].st == NULL) {
                continue;
            }

            v = (f == 0) ? row[i].m->prompt_tokens
                : (f == 1) ? row[i].m->completion_tokens
                : row[i].m->cached_tokens;

            ngx_http_llm_prom_printf(pr, row[i].labels.len, "%s{%V} %uA\n",
                                     names[f], &row[i].labels, v);
        }
    }

    ngx_http_llm_prom_family(pr, "llm_cost_usd_total", "counter",
                             "What the answers cost, in USD, at the "
                             "endpoints' prices.");

    for (i = 0; i < pr->rows.nelts; i++) {

        if (row[i].st == NULL) {
            continue;
        }

        p = ngx_http_llm_prom_usd(usd, (int64_t) row[i].m->cost);

        ngx_http_llm_prom_printf(pr, row[i].labels.len,
                                 "llm_cost_usd_total{%V} %*s\n",
                                 &row[i].labels, (size_t) (p - usd), usd);
    }
}


/* attempts, fallbacks, the circuit and the moving averages */

static void
ngx_http_llm_prom_endpoints(ngx_http_llm_prom_t *pr)
{
    ngx_int_t                 circuit;
    ngx_uint_t                i, f, v, known;
    ngx_atomic_uint_t         n;
    ngx_http_llm_stats_t     *st;
    ngx_http_llm_prom_row_t  *row;

    static const char  *names[] = {
        "llm_attempts_total", "llm_attempt_failures_total",
        "llm_fallbacks_total", "llm_cache_hits_total",
        "llm_inflight_attempts", "llm_consecutive_failures"
    };

    static const char  *types[] = {
        "counter", "counter", "counter", "counter", "gauge", "gauge"
    };

    static const char  *helps[] = {
        "Attempts sent to the endpoint.",
        "Attempts that failed: refused, timed out, an error status or an "
        "unusable answer.",
        "Failed attempts after which the request went on to another "
        "endpoint.",
        "Answers proxy_cache gave instead of the endpoint (free).",
        "Attempts in flight.",
        "Failed attempts in a row (the circuit breaker's count)."
    };

    static const char  *states[] = { "closed", "half_open", "open" };

    row = pr->rows.elts;

    for (f = 0; f < 6; f++) {
        ngx_http_llm_prom_family(pr, names[f], types[f], helps[f]);

        for (i = 0; i < pr->rows.nelts; i++) {
            st = row[i].st;

            if (st == NULL) {
                continue;
            }

            n = (f == 0) ? st->requests
                : (f == 1) ? st->errors
                : (f == 2) ? st->fallbacks
                : (f == 3) ? st->cache_hits
                : (f == 4) ? (ngx_atomic_uint_t)
                             ngx_max((ngx_atomic_int_t) st->inflight, 0)
                : st->failures;

            ngx_http_llm_prom_printf(pr, row[i].labels.len, "%s{%V} %uA\n",
                                     names[f], &row[i].labels, n);
        }
    }

    ngx_http_llm_prom_family(pr, "llm_circuit_state", "gauge",
                             "The endpoint's circuit breaker: 1 for the "
                             "state it is in.");

    for (i = 0; i < pr->rows.nelts; i++) {
        st = row[i].st;

        if (st == NULL) {
            continue;
        }

        circuit = ngx_http_llm_stats_circuit(pr->lmcf, st);
        v = (circuit == NGX_OK) ? 0 : (circuit == NGX_AGAIN) ? 1 : 2;

        for (f = 0; f < 3; f++) {
            ngx_http_llm_prom_printf(pr, row[i].labels.len,
                                     "llm_circuit_state{%V,state=\"%s\"} "
                                     "%ui\n", &row[i].labels, states[f],
                                     (ngx_uint_t) (f == v));
        }
    }

    ngx_http_llm_prom_family(pr, "llm_ttft_average_seconds", "gauge",
                             "Moving average of the time to first token "
                             "(the latency sort).");

    for (i = 0; i < pr->rows.nelts; i++) {
        if (row[i].st == NULL) {
            continue;
        }

        v = ngx_http_llm_ewma_value(&row[i].st->ttft, &known);

        if (known) {
            ngx_http_llm_prom_printf(pr, row[i].labels.len,
                                     "llm_ttft_average_seconds{%V} "
                                     "%ui.%03ui\n", &row[i].labels,
                                     v / 1000, v % 1000);
        }
    }

    ngx_http_llm_prom_family(pr, "llm_tokens_per_second_average", "gauge",
                             "Moving average of output tokens per second "
                             "(the throughput sort).");

    for (i = 0; i < pr->rows.nelts; i++) {
        if (row[i].st == NULL) {
            continue;
        }

        v = ngx_http_llm_ewma_value(&row[i].st->tps, &known);

        if (known) {
            ngx_http_llm_prom_printf(pr, row[i].labels.len,
                                     "llm_tokens_per_second_average{%V} "
                                     "%ui.%03ui\n", &row[i].labels,
                                     v / 1000, v % 1000);
        }
    }

    ngx_http_llm_prom_family(pr, "llm_error_rate_average", "gauge",
                             "Moving average of the failed attempts' "
                             "share, 0 to 1.");

    for (i = 0; i < pr->rows.nelts; i++) {
        if (row[i].st == NULL) {
            continue;
        }

        v = ngx_http_llm_ewma_value(&row[i].st->error_rate, &known);

        ngx_http_llm_prom_printf(pr, row[i].labels.len,
                                 "llm_error_rate_average{%V} %ui.%06ui\n",
                                 &row[i].labels, v / 1000000, v % 1000000);
    }
}


static void
ngx_http_llm_prom_keys(ngx_http_llm_prom_t *pr)
{
    u_char                    usd[NGX_INT64_LEN + 16], *p;
    int64_t                   v;
    ngx_str_t                *label;
    ngx_uint_t                i, f;
    const char               *reset;
    ngx_http_llm_key_t       *key;
    ngx_http_llm_key_stats_t *st, *stats;

    static const char  *names[] = {
        "llm_key_requests_total", "llm_key_rejected_total",
        "llm_key_spend_usd_total", "llm_key_reserved_usd",
        "llm_key_limit_usd", "llm_key_limit_remaining_usd"
    };

    static const char  *types[] = {
        "counter", "counter", "counter", "gauge", "gauge", "gauge"
    };

    static const char  *helps[] = {
        "Requests made with the key.",
        "Requests refused for the key's limits or models (402, 403, 429).",
        "What the key spent, in USD, all time.",
        "Worst cases reserved by the key's requests in flight, in USD.",
        "The key's limit, in USD (per period with a reset).",
        "What the key may still spend this period, in USD."
    };

    if (pr->keys.nelts == 0) {
        return;
    }

    key = pr->lmcf->keys->elts;
    label = pr->keys.elts;

    stats = ngx_palloc(pr->r->pool,
                       pr->keys.nelts * sizeof(ngx_http_llm_key_stats_t));
    if (stats == NULL) {
        pr->rc = NGX_ERROR;
        return;
    }

    for (i = 0; i < pr->keys.nelts; i++) {
        ngx_http_llm_key_stats_get(pr->lmcf, &key[i], &stats[i]);
    }

    for (f = 0; f < 6; f++) {
        ngx_http_llm_prom_family(pr, names[f], types[f], helps[f]);

        for (i = 0; i < pr->keys.nelts; i++) {
            st = &stats[i];

            if (f < 2) {
                ngx_http_llm_prom_printf(pr, label[i].len, "%s{%V} %L\n",
                                         names[f], &label[i],
                                         f ? st->rejected
                                           : st->all_requests);
                continue;
            }

            if (f >= 4 && key[i].limit < 0) {
                continue;
            }

            v = (f == 2) ? st->total
                : (f == 3) ? st->reserved
                : (f == 4) ? key[i].limit
                : ngx_max(0, key[i].limit - ngx_http_llm_key_spent(&key[i],
                                                                   st));

            p = ngx_http_llm_prom_usd(usd, v);

            ngx_http_llm_prom_printf(pr, label[i].len, "%s{%V} %*s\n",
                                     names[f], &label[i],
                                     (size_t) (p - usd), usd);
        }
    }

    ngx_http_llm_prom_family(pr, "llm_key_period_spend_usd", "gauge",
                             "What the key spent this day, week and month "
                             "(UTC), in USD.");

    for (i = 0; i < pr->keys.nelts; i++) {
        for (f = 0; f < 3; f++) {
            reset = (f == 0) ? "daily" : (f == 1) ? "weekly" : "monthly";

            p = ngx_http_llm_prom_usd(usd, stats[i].period[f]);

            ngx_http_llm_prom_printf(pr, label[i].len,
                                     "llm_key_period_spend_usd{%V,"
                                     "period=\"%s\"} %*s\n", &label[i],
                                     reset, (size_t) (p - usd), usd);
        }
    }
}


static void
ngx_http_llm_prom_family(ngx_http_llm_prom_t *pr, const char *name,
    const char *type, const char *help)
{
    ngx_http_llm_prom_printf(pr, ngx_strlen(help),
                             "# HELP %s %s\n# TYPE %s %s\n",
                             name, help, name, type);
}


/* a line of at most 256 bytes besides "len" bytes of labels or text */

static void
ngx_http_llm_prom_printf(ngx_http_llm_prom_t *pr, size_t len,
    const char *fmt, ...)
{
    u_char   *p;
    size_t    room;
    va_list   args;

    if (pr->rc != NGX_OK) {
        return;
    }

    room = 256 + 2 * len;

    if (ngx_http_llm_sbuf_reserve(pr->r->pool, &pr->out, room) != NGX_OK) {
        pr->rc = NGX_ERROR;
        return;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(pr->out.data + pr->out.len,
                      pr->out.data + pr->out.len + room, fmt, args);
    va_end(args);

    pr->out.len = p - pr->out.data;
}


/* pico-dollars as dollars: 1234 is "0.000000001234" */

static u_char *
ngx_http_llm_prom_usd(u_char *p, int64_t pico)
{
    if (pico < 0) {
        *p++ = '-';
        pico = -pico;
    }

    return ngx_sprintf(p, "%L.%012L", pico / 1000000000000LL,
                       pico % 1000000000000LL);
}


static ngx_uint_t
ngx_http_llm_metrics_used(ngx_http_llm_metrics_t *m)
{
    ngx_uint_t  i;

    if (m == NULL) {
        return 0;
    }

    for (i = 0; i < NGX_HTTP_LLM_NSTATUS; i++) {
        if (m->status[i]) {
            return 1;
        }
    }

    return 0;
}
