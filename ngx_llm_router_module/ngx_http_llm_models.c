
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * GET /v1/models and GET /v1/models/{id}: the configured models in
 * OpenAI's list shape, with OpenRouter's "context_length" and "pricing"
 * (USD per token, as strings) and the endpoints that serve each model.
 */


static json_t *ngx_http_llm_model_json(ngx_http_llm_model_t *model);
static json_t *ngx_http_llm_pricing_json(ngx_http_llm_endpoint_t *ep);


ngx_int_t
ngx_http_llm_models_handler(ngx_http_request_t *r, ngx_str_t *id)
{
    json_t                    *root, *data, *m;
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    ngx_http_llm_model_t     **model, *found;
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    if (id) {
        found = ngx_http_llm_find_model(lmcf, id);

        if (found == NULL) {
            return ngx_http_llm_send_error(r, NGX_HTTP_NOT_FOUND, NULL,
                                           "model_not_found",
                                           "The model \"%V\" does not exist "
                                           "on this router", id);
        }

        root = ngx_http_llm_model_json(found);
        if (root == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_llm_send_json(r, NGX_HTTP_OK, root);
        json_decref(root);

        return rc;
    }

    data = json_array();
    root = json_pack("{s:s,s:o}", "object", "list", "data", data);

    if (root == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    model = lmcf->models.elts;

    for (i = 0; i < lmcf->models.nelts; i++) {
        m = ngx_http_llm_model_json(model[i]);

        if (m == NULL || json_array_append_new(data, m) != 0) {
            json_decref(root);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_llm_send_json(r, NGX_HTTP_OK, root);

    json_decref(root);

    return rc;
}


static json_t *
ngx_http_llm_model_json(ngx_http_llm_model_t *model)
{
    json_t                   *m, *eps, *e;
    ngx_uint_t                i;
    ngx_http_llm_endpoint_t  *ep, *cheapest;

    ep = model->endpoints.elts;
    cheapest = &ep[0];

    for (i = 1; i < model->endpoints.nelts; i++) {
        if (ep[i].input_price + ep[i].output_price
            < cheapest->input_price + cheapest->output_price)
        {
            cheapest = &ep[i];
        }
    }

    eps = json_array();

    m = json_pack("{s:s%,s:s,s:i,s:s%,s:o*,s:o,s:o}",
                  "id", model->name.data, model->name.len,
                  "object", "model",
                  "created", 0,
                  "owned_by", cheapest->provider->name.data,
                  cheapest->provider->name.len,
                  "context_length",
                  model->context ? json_integer(model->context) : NULL,
                  "pricing", ngx_http_llm_pricing_json(cheapest),
                  "endpoints", eps);

    if (m == NULL) {
        return NULL;
    }

    for (i = 0; i < model->endpoints.nelts; i++) {
        e = json_pack("{s:s%,s:s%,s:o}",
                      "provider", ep[i].provider->name.data,
                      ep[i].provider->name.len,
                      "model", ep[i].model.data, ep[i].model.len,
                      "pricing", ngx_http_llm_pricing_json(&ep[i]));

        if (e == NULL || json_array_append_new(eps, e) != 0) {
            json_decref(m);
            return NULL;
        }
    }

    return m;
}


static json_t *
ngx_http_llm_pricing_json(ngx_http_llm_endpoint_t *ep)
{
    u_char  in[32], out[32], *p, *q;

    p = ngx_http_llm_price_string(in, ep->input_price);
    q = ngx_http_llm_price_string(out, ep->output_price);

    return json_pack("{s:s%,s:s%}",
                     "prompt", in, (size_t) (p - in),
                     "completion", out, (size_t) (q - out));
}
