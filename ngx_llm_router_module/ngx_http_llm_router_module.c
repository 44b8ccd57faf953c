
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


static void *ngx_http_llm_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_llm_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_llm_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_llm_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_llm_router(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llm_circuit_breaker(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llm_weights(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_llm_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_llm_postconfiguration(ngx_conf_t *cf);


static char *ngx_http_llm_check_attempts(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_handler_pt  ngx_http_llm_max_attempts_post =
    ngx_http_llm_check_attempts;


static ngx_command_t  ngx_http_llm_commands[] = {

    { ngx_string("llm_provider"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_llm_provider,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_model"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_llm_model_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_auto"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_llm_auto_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_llm_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_keys"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_llm_keys,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_state_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_llm_state,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_router_circuit_breaker"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_llm_circuit_breaker,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_router"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_llm_router,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_upstream_location"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llm_loc_conf_t, upstream_location),
      NULL },

    { ngx_string("llm_router_max_attempts"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llm_loc_conf_t, max_attempts),
      &ngx_http_llm_max_attempts_post },

    { ngx_string("llm_router_ttft_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llm_loc_conf_t, ttft_timeout),
      NULL },

    { ngx_string("llm_router_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llm_loc_conf_t, idle_timeout),
      NULL },

    { ngx_string("llm_router_weights"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_llm_weights,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_llm_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_mock"),
      NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_llm_mock,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_llm_router_module_ctx = {
    ngx_http_llm_preconfiguration,         /* preconfiguration */
    ngx_http_llm_postconfiguration,        /* postconfiguration */

    ngx_http_llm_create_main_conf,         /* create main configuration */
    ngx_http_llm_init_main_conf,           /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_llm_create_loc_conf,          /* create location configuration */
    ngx_http_llm_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_http_llm_router_module = {
    NGX_MODULE_V1,
    &ngx_http_llm_router_module_ctx,       /* module context */
    ngx_http_llm_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_llm_state_init_process,       /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_llm_state_exit_process,       /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_llm_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_llm_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&lmcf->providers, cf->pool, 4,
                       sizeof(ngx_http_llm_provider_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&lmcf->models, cf->pool, 8,
                       sizeof(ngx_http_llm_model_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&lmcf->autos, cf->pool, 2,
                       sizeof(ngx_http_llm_auto_t *))
        != NGX_OK)
    {
        return NULL;
    }

    lmcf->circuit_failures = NGX_CONF_UNSET_UINT;
    lmcf->circuit_cooldown = NGX_CONF_UNSET_MSEC;
    lmcf->state_interval = NGX_CONF_UNSET_MSEC;

    return lmcf;
}


static char *
ngx_http_llm_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_llm_main_conf_t *lmcf = conf;

    ngx_str_t  name;

    ngx_conf_init_uint_value(lmcf->circuit_failures, 5);
    ngx_conf_init_msec_value(lmcf->circuit_cooldown, 30000);
    ngx_conf_init_msec_value(lmcf->state_interval, 10000);

    if (lmcf->keys && lmcf->models.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"llm_keys\" without any \"llm_model\"");
    }

    if (ngx_http_llm_auto_resolve(cf, lmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* statistics are shared by the workers even without an llm_zone */

    if (lmcf->shm_zone == NULL && lmcf->models.nelts) {
        ngx_str_set(&name, "llm_router");

        if (ngx_http_llm_add_zone(cf, lmcf, &name, 1024 * 1024)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_llm_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_llm_loc_conf_t  *llcf;

    llcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_llm_loc_conf_t));
    if (llcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     llcf->upstream_location = { 0, NULL };
     *     llcf->mock = NULL;
     *     llcf->router = 0;
     *     llcf->json_errors = 0;
     */

    llcf->max_attempts = NGX_CONF_UNSET_UINT;
    llcf->ttft_timeout = NGX_CONF_UNSET_MSEC;
    llcf->idle_timeout = NGX_CONF_UNSET_MSEC;
    llcf->weights = NGX_CONF_UNSET;

    return llcf;
}


static char *
ngx_http_llm_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_llm_loc_conf_t *prev = parent;
    ngx_http_llm_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    if (conf->router) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        /* a content handler set after llm_router (proxy_pass ...) */

        if (clcf->handler != ngx_http_llm_router_handler) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"llm_router\" cannot be used in a location "
                          "with another content handler in %s:%ui",
                          conf->file, conf->line);
            return NGX_CONF_ERROR;
        }
    }

    ngx_conf_merge_str_value(conf->upstream_location,
                             prev->upstream_location, "/_llm_upstream");
    ngx_conf_merge_uint_value(conf->max_attempts, prev->max_attempts, 3);
    ngx_conf_merge_msec_value(conf->ttft_timeout, prev->ttft_timeout, 0);
    ngx_conf_merge_msec_value(conf->idle_timeout, prev->idle_timeout, 0);

    if (conf->weights == NGX_CONF_UNSET) {
        conf->weights = (prev->weights == NGX_CONF_UNSET) ? 0 : prev->weights;
        conf->weight_cost = prev->weight_cost;
        conf->weight_latency = prev->weight_latency;
        conf->weight_throughput = prev->weight_throughput;
        conf->weight_errors = prev->weight_errors;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_llm_check_attempts(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t *np = data;

    if (*np < 1 || *np > 20) {
        return "must be between 1 and 20";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_llm_router(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_loc_conf_t *llcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (llcf->router) {
        return "is duplicate";
    }

    if (llcf->mock) {
        return "cannot be used in a location with \"llm_mock\"";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "cannot be used in a location that already has a content "
               "handler (proxy_pass, fastcgi_pass ...)";
    }

    clcf->handler = ngx_http_llm_router_handler;

    llcf->router = 1;
    llcf->json_errors = 1;
    llcf->file = cf->conf_file->file.name.data;
    llcf->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* llm_router_circuit_breaker failures=N [cooldown=TIME] | off */

static char *
ngx_http_llm_circuit_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_main_conf_t *lmcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, arg;
    ngx_uint_t   i;

    if (lmcf->circuit_failures != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        lmcf->circuit_failures = 0;
        lmcf->circuit_cooldown = 0;
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "failures=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);
            if (n < 1) {
                goto invalid;
            }

            lmcf->circuit_failures = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "cooldown=", 9) == 0) {
            arg.data = value[i].data + 9;
            arg.len = value[i].len - 9;

            lmcf->circuit_cooldown = ngx_parse_time(&arg, 0);
            if (lmcf->circuit_cooldown == (ngx_msec_t) NGX_ERROR
                || lmcf->circuit_cooldown == 0)
            {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (lmcf->circuit_failures == NGX_CONF_UNSET_UINT) {
        return "needs \"failures=N\" or \"off\"";
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in "
                       "\"llm_router_circuit_breaker\"", &value[i]);

    return NGX_CONF_ERROR;
}


/* llm_router_weights cost=W latency=W throughput=W errors=W */

static char *
ngx_http_llm_weights(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_loc_conf_t *llcf = conf;

    u_char      *eq;
    double      *w;
    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (llcf->weights != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        llcf->weights = 0;
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        eq = (u_char *) ngx_strchr(value[i].data, '=');
        if (eq == NULL) {
            goto invalid;
        }

        if (eq - value[i].data == 4
            && ngx_strncmp(value[i].data, "cost", 4) == 0)
        {
            w = &llcf->weight_cost;

        } else if (eq - value[i].data == 7
                   && ngx_strncmp(value[i].data, "latency", 7) == 0)
        {
            w = &llcf->weight_latency;

        } else if (eq - value[i].data == 10
                   && ngx_strncmp(value[i].data, "throughput", 10) == 0)
        {
            w = &llcf->weight_throughput;

        } else if (eq - value[i].data == 6
                   && ngx_strncmp(value[i].data, "errors", 6) == 0)
        {
            w = &llcf->weight_errors;

        } else {
            goto invalid;
        }

        /* weights with up to three decimals: "0.5", "2", "0.125" */

        n = ngx_atofp(eq + 1, value[i].data + value[i].len - eq - 1, 3);
        if (n == NGX_ERROR) {
            goto invalid;
        }

        *w = (double) n / 1000;
    }

    llcf->weights = 1;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"llm_router_weights\", "
                       "use cost=, latency=, throughput=, errors= with "
                       "numbers", &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_llm_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_llm_add_variables(cf);
}


static ngx_int_t
ngx_http_llm_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /* settling a key's reservation: when a request ends, however */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_llm_log_handler;

    /* the attempt's proxied request: kept out of the debug log */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_llm_precontent_handler;

    return ngx_http_llm_relay_init(cf);
}
