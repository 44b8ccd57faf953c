
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


static void *ngx_http_llm_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_llm_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_llm_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_llm_router(ngx_conf_t *cf, ngx_command_t *cmd,
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
    NULL,                                  /* init main configuration */

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
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
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

    return lmcf;
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


static ngx_int_t
ngx_http_llm_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_llm_add_variables(cf);
}


static ngx_int_t
ngx_http_llm_postconfiguration(ngx_conf_t *cf)
{
    return ngx_http_llm_relay_init(cf);
}
