
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * llm_status: the live state of every endpoint, the requests counted by
 * where they ended, and the keys' spend, as every worker sees them (the
 * shared zone), in JSON or in Prometheus' text format
 * (ngx_http_llm_prometheus.c): "?format=prometheus", or a scraper's Accept
 * header, asks for the latter.
 */


static ngx_int_t ngx_http_llm_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_llm_status_wants_text(ngx_http_request_t *r);
static json_t *ngx_http_llm_status_endpoint(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_model_t *model, ngx_http_llm_endpoint_t *ep);
static ngx_int_t ngx_http_llm_status_metrics(json_t *obj,
    ngx_http_llm_metrics_t *m);
static json_t *ngx_http_llm_status_histogram(ngx_http_llm_histogram_t *h);
static json_t *ngx_http_llm_status_keys(ngx_http_llm_main_conf_t *lmcf);
static json_t *ngx_http_llm_usd(int64_t pico);


char *
ngx_http_llm_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_loc_conf_t *llcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "cannot be used in a location that already has a content "
               "handler";
    }

    clcf->handler = ngx_http_llm_status_handler;
    llcf->json_errors = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_llm_status_handler(ngx_http_request_t *r)
{
    json_t                    *root, *eps, *models, *e, *keys;
    ngx_int_t                  rc;
    ngx_uint_t                 i, j;
    ngx_http_llm_model_t     **model;
    ngx_http_llm_endpoint_t   *ep;
    ngx_http_llm_main_conf_t  *lmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_llm_status_wants_text(r);

    if (rc == NGX_OK) {
        return ngx_http_llm_prometheus(r);
    }

    if (rc == NGX_ABORT) {
        return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                       "invalid_format",
                                       "Unknown format: use \"json\" or "
                                       "\"prometheus\"");
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    eps = json_array();
    models = json_array();
    keys = ngx_http_llm_status_keys(lmcf);

    root = json_pack("{s:I,s:o,s:o,s:o,s:o}",
                     "generation",
                     (json_int_t) (lmcf->sh ? lmcf->sh->generation : 0),
                     "endpoints", eps, "models", models,
                     "unrouted", json_object(), "keys", keys);
    if (root == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (lmcf->metrics
        && ngx_http_llm_status_metrics(json_object_get(root, "unrouted"),
                                       lmcf->metrics)
           != NGX_OK)
    {
        goto failed;
    }

    model = lmcf->models.elts;

    for (i = 0; i < lmcf->models.nelts; i++) {
        ep = model[i]->endpoints.elts;

        for (j = 0; j < model[i]->endpoints.nelts; j++) {
            e = ngx_http_llm_status_endpoint(lmcf, model[i], &ep[j]);

            if (e == NULL || json_array_append_new(eps, e) != 0) {
                goto failed;
            }
        }

        /* the model's requests that no endpoint took */

        e = json_pack("{s:s%}", "model", model[i]->name.data,
                      model[i]->name.len);

        if (e == NULL || json_array_append_new(models, e) != 0) {
            goto failed;
        }

        if (model[i]->metrics
            && ngx_http_llm_status_metrics(e, model[i]->metrics) != NGX_OK)
        {
            goto failed;
        }
    }

    rc = ngx_http_llm_send_json(r, NGX_HTTP_OK, root);

    json_decref(root);

    return rc;

failed:

    json_decref(root);

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * NGX_OK for Prometheus' text format: "?format=prometheus", or an Accept
 * header naming its version 0.0.4 or OpenMetrics (as Prometheus' own
 * scrapes do); NGX_DECLINED for JSON; NGX_ABORT for an unknown format.
 */

static ngx_int_t
ngx_http_llm_status_wants_text(ngx_http_request_t *r)
{
    ngx_str_t         format;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *accept;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {

        if (format.len == 10
            && ngx_strncasecmp(format.data, (u_char *) "prometheus", 10) == 0)
        {
            return NGX_OK;
        }

        if (format.len == 4
            && ngx_strncasecmp(format.data, (u_char *) "json", 4) == 0)
        {
            return NGX_DECLINED;
        }

        return NGX_ABORT;
    }

    accept = NULL;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == 6
            && ngx_strncasecmp(h[i].key.data, (u_char *) "accept", 6) == 0)
        {
            accept = &h[i];
            break;
        }
    }

    if (accept
        && (ngx_strlcasestrn(accept->value.data,
                             accept->value.data + accept->value.len,
                             (u_char *) "version=0.0.4", 13 - 1)
            || ngx_strlcasestrn(accept->value.data,
                                accept->value.data + accept->value.len,
                                (u_char *) "openmetrics", 11 - 1)))
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static json_t *
ngx_http_llm_status_endpoint(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_model_t *model, ngx_http_llm_endpoint_t *ep)
{
    json_t                *e;
    ngx_int_t              circuit;
    ngx_uint_t             ttft, tps, err, ttft_known, tps_known, known;
    const char            *state;
    ngx_http_llm_stats_t  *st;

    st = ep->stats;

    ttft = ngx_http_llm_ewma_value(&st->ttft, &ttft_known);
    tps = ngx_http_llm_ewma_value(&st->tps, &tps_known);
    err = ngx_http_llm_ewma_value(&st->error_rate, &known);

    circuit = ngx_http_llm_stats_circuit(lmcf, st);

    state = (circuit == NGX_OK) ? "closed"
            : (circuit == NGX_AGAIN) ? "half_open" : "open";

    e = json_pack("{s:s%,s:s%,s:s%,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,"
                  "s:o,s:o,s:f}",
                  "model", model->name.data, model->name.len,
                  "provider", ep->provider->name.data,
                  ep->provider->name.len,
                  "upstream_model", ep->model.data, ep->model.len,
                  "inflight", (json_int_t) (ngx_atomic_int_t) st->inflight,
                  "requests", (json_int_t) st->requests,
                  "errors", (json_int_t) st->errors,
                  "ok", (json_int_t) st->ok,
                  "fallbacks", (json_int_t) st->fallbacks,
                  "cache_hits", (json_int_t) st->cache_hits,
                  "consecutive_failures", (json_int_t) st->failures,
                  "circuit", state,
                  "ttft_ms",
                  ttft_known ? json_integer(ttft) : json_null(),
                  "tokens_per_second",
                  tps_known ? json_real((double) tps / 1000) : json_null(),
                  "error_rate", (double) err / 1e6);

    if (e && ngx_http_llm_status_metrics(e, &st->metrics) != NGX_OK) {
        json_decref(e);
        return NULL;
    }

    return e;
}


/*
 * What the requests that ended here did: "responses" by status, tokens,
 * cost, and the time to first token and duration histograms.
 */

static ngx_int_t
ngx_http_llm_status_metrics(json_t *obj, ngx_http_llm_metrics_t *m)
{
    u_char       buf[NGX_INT_T_LEN];
    json_t      *responses;
    ngx_uint_t   i, status;

    responses = json_object();

    if (json_object_set_new(obj, "responses", responses) != 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_LLM_NSTATUS; i++) {

        if (m->status[i] == 0) {
            continue;
        }

        status = ngx_http_llm_metrics_status(i);

        if (status) {
            *ngx_sprintf(buf, "%ui", status) = '\0';

        } else {
            ngx_memcpy(buf, "other", sizeof("other"));
        }

        if (json_object_set_new(responses, (char *) buf,
                                json_integer((json_int_t) m->status[i]))
            != 0)
        {
            return NGX_ERROR;
        }
    }

    if (json_object_set_new(obj, "prompt_tokens",
                            json_integer((json_int_t) m->prompt_tokens)) != 0
        || json_object_set_new(obj, "completion_tokens",
                               json_integer((json_int_t)
                                            m->completion_tokens)) != 0
        || json_object_set_new(obj, "cached_tokens",
                               json_integer((json_int_t) m->cached_tokens))
           != 0
        || json_object_set_new(obj, "cost",
                               ngx_http_llm_usd((int64_t) m->cost)) != 0
        || json_object_set_new(obj, "ttft",
                               ngx_http_llm_status_histogram(&m->ttft)) != 0
        || json_object_set_new(obj, "duration",
                               ngx_http_llm_status_histogram(&m->duration))
           != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* {"count", "sum" (seconds), "buckets": {"0.05": cumulative, ... "+Inf"}} */

static json_t *
ngx_http_llm_status_histogram(ngx_http_llm_histogram_t *h)
{
    u_char      buf[NGX_INT_T_LEN + 8], *p;
    json_t     *root, *buckets;
    ngx_uint_t  i, n;

    buckets = json_object();

    root = json_pack("{s:I,s:f,s:o}", "count", (json_int_t) 0,
                     "sum", (double) h->sum / 1000, "buckets", buckets);
    if (root == NULL) {
        return NULL;
    }

    n = 0;

    for (i = 0; i <= NGX_HTTP_LLM_NBUCKETS; i++) {
        n += h->count[i];

        if (i == NGX_HTTP_LLM_NBUCKETS) {
            ngx_memcpy(buf, "+Inf", sizeof("+Inf"));

        } else {
            p = ngx_http_llm_seconds(buf, ngx_http_llm_buckets[i]);
            *p = '\0';
        }

        if (json_object_set_new(buckets, (char *) buf,
                                json_integer((json_int_t) n))
            != 0)
        {
            json_decref(root);
            return NULL;
        }
    }

    if (json_object_set_new(root, "count", json_integer((json_int_t) n))
        != 0)
    {
        json_decref(root);
        return NULL;
    }

    return root;
}


/* every key: its requests and spend; never the key, only its label */

static json_t *
ngx_http_llm_status_keys(ngx_http_llm_main_conf_t *lmcf)
{
    json_t                    *keys, *k;
    int64_t                    spent;
    ngx_uint_t                 i;
    const char                *reset;
    ngx_http_llm_key_t        *key;
    ngx_http_llm_key_stats_t   st;

    keys = json_array();

    if (keys == NULL || lmcf->keys == NULL || lmcf->shpool == NULL) {
        return keys;
    }

    key = lmcf->keys->elts;

    for (i = 0; i < lmcf->keys->nelts; i++) {

        ngx_http_llm_key_stats_get(lmcf, &key[i], &st);

        spent = ngx_http_llm_key_spent(&key[i], &st);
        reset = ngx_http_llm_key_reset_name(&key[i]);

        k = json_pack("{s:s%,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
                      "label", key[i].label.data, key[i].label.len,
                      "requests", (json_int_t) st.all_requests,
                      "rejected", (json_int_t) st.rejected,
                      "usage", ngx_http_llm_usd(st.total),
                      "usage_daily", ngx_http_llm_usd(st.period[0]),
                      "usage_weekly", ngx_http_llm_usd(st.period[1]),
                      "usage_monthly", ngx_http_llm_usd(st.period[2]),
                      "limit", key[i].limit >= 0
                               ? ngx_http_llm_usd(key[i].limit)
                               : json_null(),
                      "limit_reset", reset ? json_string(reset)
                                           : json_null(),
                      "limit_remaining", key[i].limit >= 0
                               ? ngx_http_llm_usd(ngx_max(0, key[i].limit
                                                             - spent))
                               : json_null(),
                      "reserved", ngx_http_llm_usd(st.reserved));

        if (k == NULL || json_array_append_new(keys, k) != 0) {
            json_decref(keys);
            return NULL;
        }
    }

    return keys;
}


static json_t *
ngx_http_llm_usd(int64_t pico)
{
    return json_real((double) pico / 1e12);
}
