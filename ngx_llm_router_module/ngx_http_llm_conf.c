
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


typedef struct {
    ngx_http_llm_main_conf_t   *lmcf;
    ngx_http_llm_model_t       *model;
} ngx_http_llm_model_conf_ctx_t;


static ngx_int_t ngx_http_llm_valid_name(ngx_str_t *name, const char *more);
static void ngx_http_llm_provider_header(ngx_http_llm_provider_t *pr,
    const char *name, const char *lowcase, const char *value);
static ngx_int_t ngx_http_llm_load_key(ngx_conf_t *cf, ngx_str_t *spec,
    ngx_str_t *provider, ngx_str_t *key);
static char *ngx_http_llm_model_line(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
static char *ngx_http_llm_endpoint(ngx_conf_t *cf,
    ngx_http_llm_model_conf_ctx_t *mctx);
static ngx_int_t ngx_http_llm_endpoint_urls(ngx_conf_t *cf,
    ngx_http_llm_endpoint_t *ep);
static ngx_int_t ngx_http_llm_parse_price(ngx_str_t *value, int64_t *price);
static ngx_http_llm_provider_t *ngx_http_llm_find_provider(
    ngx_http_llm_main_conf_t *lmcf, ngx_str_t *name);


char *
ngx_http_llm_provider(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_main_conf_t *lmcf = conf;

    u_char                   *p;
    ngx_str_t                *value, spec, key;
    ngx_url_t                 u;
    ngx_uint_t                i;
    ngx_http_llm_provider_t  *pr, **prp;

    value = cf->args->elts;

    if (ngx_http_llm_valid_name(&value[1], "-_.") != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid provider name \"%V\" in \"llm_provider\", "
                           "use letters, digits, \"-\", \"_\" and \".\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_llm_find_provider(lmcf, &value[1]) != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate \"llm_provider\" \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    prp = ngx_array_push(&lmcf->providers);
    if (prp == NULL) {
        return NGX_CONF_ERROR;
    }

    pr = ngx_pcalloc(cf->pool, sizeof(ngx_http_llm_provider_t));
    if (pr == NULL) {
        return NGX_CONF_ERROR;
    }

    *prp = pr;

    pr->name = value[1];

    if (ngx_http_llm_json_quote(cf->pool, &pr->name, &pr->name_json)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }
    pr->format = NGX_HTTP_LLM_FORMAT_OPENAI;

    /* the URL: http:// or https://, a host, an optional path prefix */

    pr->url = value[2];

    while (pr->url.len && pr->url.data[pr->url.len - 1] == '/') {
        pr->url.len--;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    if (pr->url.len > 7
        && ngx_strncasecmp(pr->url.data, (u_char *) "http://", 7) == 0)
    {
        u.url.data = pr->url.data + 7;
        u.url.len = pr->url.len - 7;
        u.default_port = 80;

    } else if (pr->url.len > 8
               && ngx_strncasecmp(pr->url.data, (u_char *) "https://", 8) == 0)
    {
        u.url.data = pr->url.data + 8;
        u.url.len = pr->url.len - 8;
        u.default_port = 443;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"llm_provider\" \"%V\", "
                           "it must start with \"http://\" or \"https://\"",
                           &value[2], &value[1]);
        return NGX_CONF_ERROR;
    }

    u.uri_part = 1;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.host.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"llm_provider\" \"%V\"%s%s",
                           &value[2], &value[1], u.err ? ": " : "",
                           u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    if (u.uri.len && u.uri.data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"llm_provider\" \"%V\", "
                           "query strings are not supported",
                           &value[2], &value[1]);
        return NGX_CONF_ERROR;
    }

    /* options */

    ngx_str_null(&spec);

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "format=", 7) == 0) {
            p = value[i].data + 7;

            if (ngx_strcmp(p, "openai") == 0) {
                pr->format = NGX_HTTP_LLM_FORMAT_OPENAI;
                continue;
            }

            if (ngx_strcmp(p, "anthropic") == 0) {
                pr->format = NGX_HTTP_LLM_FORMAT_ANTHROPIC;
                continue;
            }

            if (ngx_strcmp(p, "gemini") == 0) {
                pr->format = NGX_HTTP_LLM_FORMAT_GEMINI;
                continue;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unsupported format \"%s\" in \"llm_provider\" "
                               "\"%V\", supported: openai, anthropic, gemini",
                               p, &value[1]);
            return NGX_CONF_ERROR;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            spec.data = value[i].data + 4;
            spec.len = value[i].len - 4;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"llm_provider\" "
                           "\"%V\"", &value[i], &value[1]);
        return NGX_CONF_ERROR;
    }

    if (spec.data) {
        if (ngx_http_llm_load_key(cf, &spec, &pr->name, &key) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        pr->key = key;
    }

    /* how each dialect carries the key */

    switch (pr->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        pr->auth_header = "x-api-key";
        pr->auth_lowcase = "x-api-key";
        pr->authorization = pr->key;
        break;

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        pr->auth_header = "x-goog-api-key";
        pr->auth_lowcase = "x-goog-api-key";
        pr->authorization = pr->key;
        break;

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        pr->auth_header = "Authorization";
        pr->auth_lowcase = "authorization";

        if (pr->key.len) {
            pr->authorization.len = sizeof("Bearer ") - 1 + pr->key.len;
            pr->authorization.data = ngx_pnalloc(cf->pool,
                                                 pr->authorization.len);
            if (pr->authorization.data == NULL) {
                return NGX_CONF_ERROR;
            }

            p = ngx_cpymem(pr->authorization.data, "Bearer ",
                           sizeof("Bearer ") - 1);
            ngx_memcpy(p, pr->key.data, pr->key.len);
        }
    }

    /* the attempt's headers, Accept's value set for each (JSON or SSE) */

    ngx_http_llm_provider_header(pr, "Content-Type", "content-type",
                                 "application/json");
    ngx_http_llm_provider_header(pr, "Accept", "accept", "application/json");

    if (pr->authorization.len) {
        ngx_http_llm_provider_header(pr, pr->auth_header, pr->auth_lowcase,
                                     NULL);
        pr->headers[pr->nheaders - 1].value = pr->authorization;
    }

    if (pr->format == NGX_HTTP_LLM_FORMAT_ANTHROPIC) {
        ngx_http_llm_provider_header(pr, "anthropic-version",
                                     "anthropic-version", "2023-06-01");
    }

    return NGX_CONF_OK;
}


static void
ngx_http_llm_provider_header(ngx_http_llm_provider_t *pr, const char *name,
    const char *lowcase, const char *value)
{
    ngx_table_elt_t  *h;

    h = &pr->headers[pr->nheaders++];

    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->lowcase_key = (u_char *) lowcase;
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);

    if (value) {
        h->value.data = (u_char *) value;
        h->value.len = ngx_strlen(value);
    }
}


/* letters, digits and the characters of "more" */

static ngx_int_t
ngx_http_llm_valid_name(ngx_str_t *name, const char *more)
{
    u_char      c;
    ngx_uint_t  i;

    if (name->len == 0 || name->len > 128) {
        return NGX_ERROR;
    }

    for (i = 0; i < name->len; i++) {
        c = name->data[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || (c && ngx_strchr(more, c) != NULL))
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A provider key is read once, when the configuration is loaded, from the
 * master's environment ("env:NAME") or from a file ("file:PATH").  It is
 * never logged: error messages name the source, not the value.
 */

static ngx_int_t
ngx_http_llm_load_key(ngx_conf_t *cf, ngx_str_t *spec, ngx_str_t *provider,
    ngx_str_t *key)
{
    u_char           *p, *v;
    size_t            len;
    ssize_t           n;
    ngx_str_t         src;
    ngx_uint_t        i;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    if (spec->len > 4 && ngx_strncmp(spec->data, "env:", 4) == 0) {
        src.data = spec->data + 4;
        src.len = spec->len - 4;

        v = (u_char *) getenv((char *) src.data);

        if (v == NULL || *v == '\0') {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "\"llm_provider\" \"%V\": environment variable "
                               "\"%V\" is not set, requests go without a key",
                               provider, &src);
            key->len = 0;
            key->data = NULL;
            return NGX_OK;
        }

        len = ngx_strlen(v);

        key->data = ngx_pnalloc(cf->pool, len);
        if (key->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(key->data, v, len);
        key->len = len;

    } else if (spec->len > 5 && ngx_strncmp(spec->data, "file:", 5) == 0) {
        src.data = spec->data + 5;
        src.len = spec->len - 5;

        if (ngx_conf_full_name(cf->cycle, &src, 1) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_memzero(&file, sizeof(ngx_file_t));
        file.name = src;
        file.log = cf->log;

        file.fd = ngx_open_file(src.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

        if (file.fd == NGX_INVALID_FILE) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "\"llm_provider\" \"%V\": cannot open key "
                               "file \"%V\"", provider, &src);
            return NGX_ERROR;
        }

        if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR
            || ngx_file_size(&fi) > 16384)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_provider\" \"%V\": key file \"%V\" is "
                               "unreadable or too large", provider, &src);
            (void) ngx_close_file(file.fd);
            return NGX_ERROR;
        }

        len = (size_t) ngx_file_size(&fi);

        key->data = ngx_pnalloc(cf->pool, len + 1);
        if (key->data == NULL) {
            (void) ngx_close_file(file.fd);
            return NGX_ERROR;
        }

        n = ngx_read_file(&file, key->data, len, 0);

        (void) ngx_close_file(file.fd);

        if (n != (ssize_t) len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_provider\" \"%V\": cannot read key "
                               "file \"%V\"", provider, &src);
            return NGX_ERROR;
        }

        key->len = len;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"key\" in \"llm_provider\" \"%V\", "
                           "use \"key=env:NAME\" or \"key=file:PATH\"",
                           provider);
        return NGX_ERROR;
    }

    /* trim the whitespace a file or a shell leaves around the key */

    p = key->data;

    while (key->len && (*p == ' ' || *p == '\t' || *p == CR || *p == LF)) {
        p++;
        key->len--;
    }

    key->data = p;

    while (key->len
           && (p[key->len - 1] == ' ' || p[key->len - 1] == '\t'
               || p[key->len - 1] == CR || p[key->len - 1] == LF))
    {
        key->len--;
    }

    /* the key goes into a header line: no control characters */

    for (i = 0; i < key->len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_provider\" \"%V\": the key from \"%V\" "
                               "contains a character not allowed in a "
                               "header", provider, spec);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


char *
ngx_http_llm_model_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_main_conf_t *lmcf = conf;

    char                           *rv;
    ngx_str_t                      *value;
    ngx_conf_t                      save;
    ngx_http_llm_model_t           *model, **modelp;
    ngx_http_llm_model_conf_ctx_t   mctx;

    value = cf->args->elts;

    if (ngx_http_llm_valid_name(&value[1], "-_.:/") != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid model name \"%V\" in \"llm_model\", "
                           "use letters, digits and \"-_.:/\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_llm_find_model(lmcf, &value[1]) != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate \"llm_model\" \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    modelp = ngx_array_push(&lmcf->models);
    if (modelp == NULL) {
        return NGX_CONF_ERROR;
    }

    model = ngx_pcalloc(cf->pool, sizeof(ngx_http_llm_model_t));
    if (model == NULL) {
        return NGX_CONF_ERROR;
    }

    *modelp = model;

    model->name = value[1];

    if (ngx_http_llm_json_quote(cf->pool, &model->name, &model->name_json)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }
    model->max_output = NGX_HTTP_LLM_DEFAULT_MAX_TOKENS;
    model->file = cf->conf_file->file.name.data;
    model->line = cf->conf_file->line;

    if (ngx_array_init(&model->endpoints, cf->pool, 2,
                       sizeof(ngx_http_llm_endpoint_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    mctx.lmcf = lmcf;
    mctx.model = model;

    save = *cf;
    cf->handler = ngx_http_llm_model_line;
    cf->handler_conf = (char *) &mctx;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (model->endpoints.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_model\" \"%V\" has no \"endpoint\"",
                           &model->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_llm_model_line(ngx_conf_t *cf, ngx_command_t *dummy, void *conf)
{
    ngx_http_llm_model_conf_ctx_t *mctx = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (value[0].len == 8 && ngx_strcmp(value[0].data, "endpoint") == 0) {
        return ngx_http_llm_endpoint(cf, mctx);
    }

    if ((value[0].len == 7 && ngx_strcmp(value[0].data, "context") == 0)
        || (value[0].len == 10
            && ngx_strcmp(value[0].data, "max_output") == 0))
    {

        if (cf->args->nelts != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid number of arguments in \"%V\" "
                               "of \"llm_model\" \"%V\"", &value[0],
                               &mctx->model->name);
            return NGX_CONF_ERROR;
        }

        n = ngx_atoi(value[1].data, value[1].len);

        if (n <= 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\" \"%V\" in \"llm_model\" "
                               "\"%V\"", &value[0], &value[1],
                               &mctx->model->name);
            return NGX_CONF_ERROR;
        }

        if (value[0].data[0] == 'c') {
            mctx->model->context = n;

        } else {
            mctx->model->max_output = n;
        }

        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in \"llm_model\" \"%V\", "
                       "expected \"endpoint\", \"context\" or "
                       "\"max_output\"",
                       &value[0], &mctx->model->name);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_llm_endpoint(ngx_conf_t *cf, ngx_http_llm_model_conf_ctx_t *mctx)
{
    u_char                   *p;
    ngx_str_t                *value, arg;
    ngx_uint_t                i;
    ngx_http_llm_model_t     *model;
    ngx_http_llm_endpoint_t  *ep;

    value = cf->args->elts;
    model = mctx->model;

    if (cf->args->nelts < 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"endpoint\" in \"llm_model\" \"%V\" needs a "
                           "provider name", &model->name);
        return NGX_CONF_ERROR;
    }

    ep = ngx_array_push(&model->endpoints);
    if (ep == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(ep, sizeof(ngx_http_llm_endpoint_t));

    ep->provider = ngx_http_llm_find_provider(mctx->lmcf, &value[1]);

    if (ep->provider == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown provider \"%V\" in \"endpoint\" of "
                           "\"llm_model\" \"%V\", define it with "
                           "\"llm_provider\" first", &value[1], &model->name);
        return NGX_CONF_ERROR;
    }

    ep->model = model->name;
    ep->cached_price = -1;

    for (i = 2; i < cf->args->nelts; i++) {

        p = (u_char *) ngx_strchr(value[i].data, '=');

        if (p == NULL || p == value[i].data) {
            goto invalid;
        }

        arg.data = p + 1;
        arg.len = value[i].data + value[i].len - arg.data;

        if (p - value[i].data == 5
            && ngx_strncmp(value[i].data, "model", 5) == 0)
        {
            if (arg.len == 0) {
                goto invalid;
            }

            ep->model = arg;
            continue;
        }

        if (p - value[i].data == 5
            && ngx_strncmp(value[i].data, "input", 5) == 0)
        {
            if (ngx_http_llm_parse_price(&arg, &ep->input_price) != NGX_OK) {
                goto invalid_price;
            }

            continue;
        }

        if (p - value[i].data == 6
            && ngx_strncmp(value[i].data, "cached", 6) == 0)
        {
            if (ngx_http_llm_parse_price(&arg, &ep->cached_price) != NGX_OK) {
                goto invalid_price;
            }

            continue;
        }

        if (p - value[i].data == 6
            && ngx_strncmp(value[i].data, "output", 6) == 0)
        {
            if (ngx_http_llm_parse_price(&arg, &ep->output_price) != NGX_OK) {
                goto invalid_price;
            }

            continue;
        }

        goto invalid;
    }

    /* the URLs of an answer and of a stream are fixed now, not per request */

    if (ngx_http_llm_endpoint_urls(cf, ep) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* and the model id as the requests carry it: made once, shared */

    ep->model_json = json_stringn((const char *) ep->model.data,
                                  ep->model.len);

    if (ep->model_json == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid model id \"%V\" in \"endpoint\" of "
                           "\"llm_model\" \"%V\": not UTF-8",
                           &ep->model, &model->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_llm_json_own(cf->pool, ep->model_json) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid_price:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid price \"%V\" in \"endpoint\" of \"llm_model\" "
                       "\"%V\", use USD per million tokens with at most six "
                       "decimals, e.g. \"input=2.50\"",
                       &value[i], &model->name);
    return NGX_CONF_ERROR;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"endpoint\" of "
                       "\"llm_model\" \"%V\"", &value[i], &model->name);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_llm_endpoint_urls(ngx_conf_t *cf, ngx_http_llm_endpoint_t *ep)
{
    u_char     *p;
    size_t      len;
    ngx_str_t  *base;

    base = &ep->provider->url;

    switch (ep->provider->format) {

    case NGX_HTTP_LLM_FORMAT_ANTHROPIC:
        len = base->len + sizeof("/messages") - 1;

        p = ngx_pnalloc(cf->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ep->url.data = p;
        p = ngx_cpymem(p, base->data, base->len);
        ngx_memcpy(p, "/messages", sizeof("/messages") - 1);
        ep->url.len = len;

        ep->stream_url = ep->url;

        return NGX_OK;

    case NGX_HTTP_LLM_FORMAT_GEMINI:
        /* the model is in the path: models/M:generateContent */

        len = base->len + sizeof("/models/") - 1 + ep->model.len
              + sizeof(":streamGenerateContent?alt=sse") - 1;

        p = ngx_pnalloc(cf->pool, 2 * len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ep->url.data = p;
        p = ngx_sprintf(p, "%V/models/%V:generateContent", base, &ep->model);
        ep->url.len = p - ep->url.data;

        ep->stream_url.data = p;
        p = ngx_sprintf(p, "%V/models/%V:streamGenerateContent?alt=sse", base,
                        &ep->model);
        ep->stream_url.len = p - ep->stream_url.data;

        return NGX_OK;

    default: /* NGX_HTTP_LLM_FORMAT_OPENAI */
        len = base->len + sizeof("/chat/completions") - 1;

        p = ngx_pnalloc(cf->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ep->url.data = p;
        p = ngx_cpymem(p, base->data, base->len);
        ngx_memcpy(p, "/chat/completions", sizeof("/chat/completions") - 1);
        ep->url.len = len;

        ep->stream_url = ep->url;

        return NGX_OK;
    }
}


/*
 * Prices are given in USD per million tokens and kept as integers: a
 * micro-dollar per million tokens is a pico-dollar per token, so a cost is
 * an exact integer product of tokens and price.
 */

static ngx_int_t
ngx_http_llm_parse_price(ngx_str_t *value, int64_t *price)
{
    ngx_int_t  n;

    if (value->len == 0 || value->len > 20) {
        return NGX_ERROR;
    }

    n = ngx_atofp(value->data, value->len, 6);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* 1,000,000 USD per million tokens is more than anyone charges */

    if (n > (ngx_int_t) 1000000 * 1000000) {
        return NGX_ERROR;
    }

    *price = n;

    return NGX_OK;
}


static ngx_http_llm_provider_t *
ngx_http_llm_find_provider(ngx_http_llm_main_conf_t *lmcf, ngx_str_t *name)
{
    ngx_uint_t                 i;
    ngx_http_llm_provider_t  **pr;

    pr = lmcf->providers.elts;

    for (i = 0; i < lmcf->providers.nelts; i++) {
        if (pr[i]->name.len == name->len
            && ngx_strncmp(pr[i]->name.data, name->data, name->len) == 0)
        {
            return pr[i];
        }
    }

    return NULL;
}


ngx_http_llm_model_t *
ngx_http_llm_find_model(ngx_http_llm_main_conf_t *lmcf, ngx_str_t *name)
{
    ngx_uint_t              i;
    ngx_http_llm_model_t  **model;

    model = lmcf->models.elts;

    for (i = 0; i < lmcf->models.nelts; i++) {
        if (model[i]->name.len == name->len
            && ngx_strncmp(model[i]->name.data, name->data, name->len) == 0)
        {
            return model[i];
        }
    }

    return NULL;
}
