
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * Variables describe the current (or last) attempt of the main request.
 * Subrequests share the main request's variable cache, so every one of
 * them is non-cacheable: a fallback must never see the previous attempt.
 */


#define ngx_http_llm_var_upstream_url       0
#define ngx_http_llm_var_model              1
#define ngx_http_llm_var_provider           2
#define ngx_http_llm_var_upstream_model     3
#define ngx_http_llm_var_attempts           4
#define ngx_http_llm_var_ttft               5
#define ngx_http_llm_var_prompt_tokens      6
#define ngx_http_llm_var_completion_tokens  7
#define ngx_http_llm_var_cost               8
#define ngx_http_llm_var_key                9


static ngx_int_t ngx_http_llm_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_llm_vars[] = {

    { ngx_string("llm_upstream_url"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_upstream_url, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_model"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_model, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_provider"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_provider, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_upstream_model"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_upstream_model, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_attempts"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_attempts, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_ttft"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_ttft, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_prompt_tokens"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_prompt_tokens, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_completion_tokens"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_completion_tokens, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_cost"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_cost, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_key"), NULL, ngx_http_llm_variable,
      ngx_http_llm_var_key, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_llm_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_llm_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_llm_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                  *p;
    ngx_str_t               *s;
    ngx_http_llm_ctx_t      *ctx;
    ngx_http_llm_attempt_t  *a;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_llm_router_module);

    if (ctx && data == ngx_http_llm_var_key && ctx->key) {
        /* the key's label, never the key */
        v->data = ctx->key->label.data;
        v->len = ctx->key->label.len;
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;
        return NGX_OK;
    }

    if (ctx == NULL || ctx->attempt == NULL
        || data == ngx_http_llm_var_key)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    a = ctx->attempt;
    s = NULL;
    p = NULL;

    switch (data) {

    case ngx_http_llm_var_upstream_url:
        s = &ctx->upstream_url;
        break;

    case ngx_http_llm_var_model:
        s = &a->model->name;
        break;

    case ngx_http_llm_var_provider:
        s = &a->endpoint->provider->name;
        break;

    case ngx_http_llm_var_upstream_model:
        s = &a->endpoint->model;
        break;

    default:
        p = ngx_pnalloc(r->pool, 2 * NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;

        switch (data) {

        case ngx_http_llm_var_attempts:
            p = ngx_sprintf(p, "%ui", ctx->attempts.nelts);
            break;

        case ngx_http_llm_var_ttft:
            if (!ctx->committed) {
                v->not_found = 1;
                return NGX_OK;
            }

            p = ngx_sprintf(p, "%M.%03M", a->ttft / 1000, a->ttft % 1000);
            break;

        case ngx_http_llm_var_prompt_tokens:
            p = ngx_sprintf(p, "%L", a->prompt_tokens);
            break;

        case ngx_http_llm_var_cost:
            if (!ctx->committed) {
                p = ngx_cpymem(p, "0", 1);
                break;
            }

            p = ngx_http_llm_price_string(p, ngx_http_llm_attempt_cost(a));
            break;

        default: /* ngx_http_llm_var_completion_tokens */
            p = ngx_sprintf(p, "%L", a->completion_tokens);
            break;
        }

        v->len = p - v->data;
    }

    if (s) {
        v->data = s->data;
        v->len = s->len;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
