
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * llm_status: the live state of every endpoint, as every worker sees it,
 * in JSON.
 */


static ngx_int_t ngx_http_llm_status_handler(ngx_http_request_t *r);
static json_t *ngx_http_llm_status_endpoint(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_model_t *model, ngx_http_llm_endpoint_t *ep);


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
    json_t                    *root, *eps, *e;
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

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    eps = json_array();

    root = json_pack("{s:I,s:o}",
                     "generation",
                     (json_int_t) (lmcf->sh ? lmcf->sh->generation : 0),
                     "endpoints", eps);
    if (root == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    model = lmcf->models.elts;

    for (i = 0; i < lmcf->models.nelts; i++) {
        ep = model[i]->endpoints.elts;

        for (j = 0; j < model[i]->endpoints.nelts; j++) {
            e = ngx_http_llm_status_endpoint(lmcf, model[i], &ep[j]);

            if (e == NULL || json_array_append_new(eps, e) != 0) {
                json_decref(root);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    rc = ngx_http_llm_send_json(r, NGX_HTTP_OK, root);

    json_decref(root);

    return rc;
}


static json_t *
ngx_http_llm_status_endpoint(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_model_t *model, ngx_http_llm_endpoint_t *ep)
{
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

    return json_pack("{s:s%,s:s%,s:s%,s:I,s:I,s:I,s:I,s:s,"
                     "s:o,s:o,s:f}",
                     "model", model->name.data, model->name.len,
                     "provider", ep->provider->name.data,
                     ep->provider->name.len,
                     "upstream_model", ep->model.data, ep->model.len,
                     "inflight", (json_int_t) (ngx_atomic_int_t) st->inflight,
                     "requests", (json_int_t) st->requests,
                     "errors", (json_int_t) st->errors,
                     "consecutive_failures", (json_int_t) st->failures,
                     "circuit", state,
                     "ttft_ms",
                     ttft_known ? json_integer(ttft) : json_null(),
                     "tokens_per_second",
                     tps_known ? json_real((double) tps / 1000)
                               : json_null(),
                     "error_rate", (double) err / 1e6);
}
