
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * The router's content handler.  A chat request is read and validated,
 * its candidate endpoints are listed, and each attempt is a subrequest to
 * the internal upstream location.  Attempts are started from the main
 * request only (never nested), the next one from the main request's write
 * handler after the previous one has finished.  Nothing of a failed attempt
 * reaches the client: the relay filters commit the client's response only
 * when an attempt delivers its first useful bytes.
 */


static ngx_uint_t ngx_http_llm_uri_ends_with(ngx_http_request_t *r,
    const char *s, size_t len);
static ngx_int_t ngx_http_llm_method_not_allowed(ngx_http_request_t *r,
    const char *allow);
static void ngx_http_llm_chat_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_llm_chat(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
static ngx_int_t ngx_http_llm_models(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, json_t *body);
static json_t *ngx_http_llm_member(ngx_http_llm_ctx_t *ctx, json_t *body,
    const char *key);
static ngx_int_t ngx_http_llm_strip(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
static ngx_int_t ngx_http_llm_add_model(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, json_t *body, ngx_str_t *name);
static const char *ngx_http_llm_check_messages(json_t *messages,
    size_t *bad);
static ngx_int_t ngx_http_llm_next_attempt(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
static ngx_int_t ngx_http_llm_start_attempt(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, ngx_http_llm_candidate_t *cand);
static void ngx_http_llm_attempt_outcome(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
static void ngx_http_llm_timer_handler(ngx_event_t *ev);
static void ngx_http_llm_cleanup(void *data);
static ngx_int_t ngx_http_llm_subrequest_headers(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, ngx_http_llm_endpoint_t *ep,
    ngx_http_headers_in_t *hin);
static ngx_int_t ngx_http_llm_attempt_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static void ngx_http_llm_resume(ngx_http_request_t *r);
static ngx_uint_t ngx_http_llm_retryable(ngx_http_llm_attempt_t *a);
static ngx_int_t ngx_http_llm_send_failure(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
static const char *ngx_http_llm_reason_name(ngx_uint_t reason);


ngx_http_llm_ctx_t *
ngx_http_llm_get_ctx(ngx_http_request_t *r)
{
    ngx_http_llm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_llm_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->request = r;

    ngx_http_set_ctx(r, ctx, ngx_http_llm_router_module);

    return ctx;
}


static ngx_uint_t
ngx_http_llm_uri_ends_with(ngx_http_request_t *r, const char *s, size_t len)
{
    return r->uri.len >= len
           && ngx_strncmp(r->uri.data + r->uri.len - len, s, len) == 0;
}


ngx_int_t
ngx_http_llm_router_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_str_t            id;
    ngx_uint_t           api;
    ngx_http_llm_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    if (ngx_http_llm_uri_ends_with(r, "/chat/completions", 17)) {
        api = NGX_HTTP_LLM_API_CHAT;

    } else if (ngx_http_llm_uri_ends_with(r, "/messages", 9)) {
        api = NGX_HTTP_LLM_API_MESSAGES;

    } else if (ngx_http_llm_uri_ends_with(r, "/completions", 12)) {
        api = NGX_HTTP_LLM_API_COMPLETIONS;

    } else if (ngx_http_llm_uri_ends_with(r, "/embeddings", 11)) {
        api = NGX_HTTP_LLM_API_EMBEDDINGS;

    } else {
        api = 0;
    }

    if (api) {
        ctx = ngx_http_llm_get_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->api = api;

        if (r->method != NGX_HTTP_POST) {
            return ngx_http_llm_method_not_allowed(r, "POST");
        }

        /* the key first: nothing is read for a caller without one */

        rc = ngx_http_llm_key_check(r, ctx, 1);

        if (rc == NGX_DECLINED) {
            if (ngx_http_discard_request_body(r) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_llm_send_error(r, ctx->reject_status, NULL,
                                           ctx->reject_code, "%V",
                                           &ctx->reject_msg);
        }

        if (rc != NGX_OK) {
            return rc;
        }

        rc = ngx_http_read_client_request_body(r,
                                               ngx_http_llm_chat_body_handler);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    if (ngx_http_llm_uri_ends_with(r, "/key", 4)) {

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_llm_method_not_allowed(r, "GET, HEAD");
        }

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx = ngx_http_llm_get_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_llm_key_handler(r, ctx);
    }

    id.data = ngx_strlcasestrn(r->uri.data, r->uri.data + r->uri.len,
                               (u_char *) "/models/", 8 - 1);

    if (id.data) {
        id.data += 8;
        id.len = r->uri.data + r->uri.len - id.data;
    }

    if (ngx_http_llm_uri_ends_with(r, "/models", 7) || id.data) {

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_llm_method_not_allowed(r, "GET, HEAD");
        }

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_llm_models_handler(r, id.data ? &id : NULL);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_llm_send_error(r, NGX_HTTP_NOT_FOUND, NULL,
                                   "unknown_url", "Unknown request URL: %V",
                                   &r->uri);
}


static ngx_int_t
ngx_http_llm_method_not_allowed(ngx_http_request_t *r, const char *allow)
{
    ngx_table_elt_t  *h;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);

    return ngx_http_llm_send_error(r, NGX_HTTP_NOT_ALLOWED, NULL,
                                   "method_not_allowed",
                                   "Method %V is not allowed on %V, use %s",
                                   &r->method_name, &r->uri, allow);
}


static void
ngx_http_llm_chat_body_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_http_llm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    rc = ngx_http_llm_chat(r, ctx);

    if (rc == NGX_DONE) {
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_llm_chat(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    u_char        *data;
    size_t         len, bad;
    json_t        *body, *client, *v;
    ngx_int_t      rc;
    ngx_str_t      why;
    json_error_t   err;
    const char    *problem;

    if (ngx_http_llm_read_body(r, &data, &len) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (len == 0) {
        return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                       "invalid_json",
                                       "The request body is empty; send a "
                                       "JSON object");
    }

    ctx->body_len = len;

    rc = ngx_http_llm_body_parse(r, ctx, data, len, &err);

    if (rc == NGX_DECLINED && err.text[0]) {
        return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                       "invalid_json",
                                       "The request body is not valid JSON: "
                                       "%s (line %d, column %d)",
                                       err.text, err.line, err.column);
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                       "invalid_request",
                                       "The request body must be a JSON "
                                       "object");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* NULL: the client's own request, ctx->body or its members */

    body = NULL;
    client = NULL;

    if (ctx->api == NGX_HTTP_LLM_API_MESSAGES) {
        /* an Anthropic client: its request in canonical form */

        /* its routing fields stay in what it sent */
        client = ctx->body;

        body = ngx_http_llm_messages_request(client, &problem);

        if (body == NULL) {
            if (problem == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                           "invalid_request", "%s", problem);
        }

        if (ngx_http_llm_json_own(r->pool, body) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->body = body;
    }

    bad = 0;

    switch (ctx->has_raw ? 0 : ctx->api) {

    case 0:
        /* what is kept as the client's bytes is checked as such */
        problem = ngx_http_llm_body_check(ctx, &bad);

        if (problem == NULL || problem[0] != '\0') {
            break;
        }

        /* a key written with escapes: as jansson reads it */

        if (ngx_http_llm_body_full(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        problem = ngx_http_llm_check_messages(json_object_get(ctx->body,
                                                              "messages"),
                                              &bad);
        break;

    case NGX_HTTP_LLM_API_COMPLETIONS:
        v = ngx_http_llm_member(ctx, body, "prompt");
        problem = (json_is_string(v) || json_is_array(v)) ? NULL
                  : "The \"prompt\" field must be a string or an array";
        break;

    case NGX_HTTP_LLM_API_EMBEDDINGS:
        v = ngx_http_llm_member(ctx, body, "input");
        problem = (json_is_string(v) || json_is_array(v)) ? NULL
                  : "The \"input\" field must be a string or an array";
        break;

    default:
        problem = ngx_http_llm_check_messages(ngx_http_llm_member(ctx, body,
                                                                 "messages"),
                                              &bad);
    }

    if (problem) {
        return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                       ctx->api == NGX_HTTP_LLM_API_CHAT
                                       ? "invalid_messages"
                                       : "invalid_request",
                                       problem, bad);
    }

    v = ngx_http_llm_member(ctx, body, "stream");

    if (v && !json_is_boolean(v) && !json_is_null(v)) {
        return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                       "invalid_request",
                                       "The \"stream\" field must be a "
                                       "boolean");
    }

    ctx->stream = json_is_true(v) && ctx->api != NGX_HTTP_LLM_API_EMBEDDINGS;

    v = ngx_http_llm_member(ctx, body, "stream_options");

    if (v && !json_is_object(v) && !json_is_null(v)) {
        return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                       "invalid_request",
                                       "The \"stream_options\" field must be "
                                       "an object");
    }

    ctx->include_usage = json_is_true(json_object_get(v, "include_usage"));

    problem = ngx_http_llm_parse_prefs(r,
                                       ngx_http_llm_member(ctx, client,
                                                           "provider"),
                                       &ctx->prefs);
    if (problem) {
        if (ctx->prefs.unknown) {
            return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                           "invalid_provider",
                                           "Unknown field \"provider.%s\"",
                                           ctx->prefs.unknown);
        }

        return ngx_http_llm_send_error(r, NGX_HTTP_BAD_REQUEST, NULL,
                                       "invalid_provider", problem);
    }

    rc = ngx_http_llm_models(r, ctx, client);

    if (rc == NGX_OK) {
        rc = ngx_http_llm_strip(r, ctx);
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_llm_send_error(r, ctx->reject_status, NULL,
                                       ctx->reject_code, "%V",
                                       &ctx->reject_msg);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_array_init(&ctx->candidates, r->pool, 4,
                       sizeof(ngx_http_llm_candidate_t))
        != NGX_OK
        || ngx_array_init(&ctx->attempts, r->pool, 2,
                          sizeof(ngx_http_llm_attempt_t))
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_llm_select(r, ctx, &why);

    if (rc == NGX_DECLINED) {
        return ngx_http_llm_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE, NULL,
                                       "no_endpoint", "%V", &why);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the key's models, tokens per minute and budget; its worst case */

    rc = ngx_http_llm_key_admit(r, ctx, len);

    if (rc == NGX_DECLINED) {
        return ngx_http_llm_send_error(r, ctx->reject_status, NULL,
                                       ctx->reject_code, "%V",
                                       &ctx->reject_msg);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_llm_next_attempt(r, ctx);
}


/*
 * A member of "obj", or of the client's own request when obj is NULL (an
 * OpenAI-format client's, which may be held as its scanned members).
 */

static json_t *
ngx_http_llm_member(ngx_http_llm_ctx_t *ctx, json_t *obj, const char *key)
{
    return obj ? json_object_get(obj, key) : ngx_http_llm_body_get(ctx, key);
}


/*
 * OpenRouter's routing fields are for the router: a provider would refuse
 * them ("Unrecognized request argument").  What the routing preferences
 * point into stays alive with the request's pool.
 */

static ngx_int_t
ngx_http_llm_strip(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    void        *it, *next;
    json_t      *v, *body;
    ngx_uint_t   i;
    const char  *key;

    static const char  *fields[] = {
        "models", "provider", "route", "transforms", "usage", NULL
    };

    body = ctx->body;

    if (body == NULL) {
        /* the request held as its members: they are marked */
        ngx_http_llm_body_strip(ctx, fields);
        return NGX_OK;
    }

    /* a request has a few members: each compared, not five looked up */

    for (it = json_object_iter(body); it; it = next) {
        next = json_object_iter_next(body, it);
        key = json_object_iter_key(it);

        for (i = 0; fields[i]; i++) {
            if (ngx_strcmp(key, fields[i]) == 0) {
                break;
            }
        }

        if (fields[i] == NULL) {
            continue;
        }

        v = json_object_iter_value(it);

        if (ngx_http_llm_json_own(r->pool, json_incref(v)) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (json_object_del(body, key) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return NGX_OK;
}


/* keeps what is wrong with a request for the caller to say: NGX_DECLINED */

ngx_int_t
ngx_http_llm_reject(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *fmt, ...)
{
    va_list              args;
    ngx_http_llm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    ctx->reject_msg.data = ngx_pnalloc(r->pool, 512);
    if (ctx->reject_msg.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    va_start(args, fmt);
    ctx->reject_msg.len = ngx_vslprintf(ctx->reject_msg.data,
                                        ctx->reject_msg.data + 512, fmt, args)
                          - ctx->reject_msg.data;
    va_end(args);

    ctx->reject_status = status;
    ctx->reject_code = code;

    return NGX_DECLINED;
}


/*
 * The models a request names: "model", then each of "models" (OpenRouter's
 * fallback list), without repeats.  A name is a model, an llm_auto block,
 * or either with a ":floor" (cheapest first) or ":nitro" (fastest first)
 * suffix.
 */

static ngx_int_t
ngx_http_llm_models(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    json_t *body)
{
    size_t      i;
    json_t     *list, *v;
    ngx_int_t   rc;
    ngx_str_t   name;

    if (ngx_array_init(&ctx->models, r->pool, 2,
                       sizeof(ngx_http_llm_model_ref_t))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = body ? ngx_http_llm_json_get_str(body, "model", &name)
              : ngx_http_llm_body_get_str(ctx, "model", &name);

    if (rc == NGX_ERROR) {
        return ngx_http_llm_reject(r, NGX_HTTP_BAD_REQUEST,
                                   "invalid_model",
                                   "The \"model\" field must be a "
                                   "string");
    }

    if (rc == NGX_OK) {
        rc = ngx_http_llm_add_model(r, ctx, body, &name);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    list = ngx_http_llm_member(ctx, body, "models");

    if (list && !json_is_null(list)) {

        if (!json_is_array(list)) {
            return ngx_http_llm_reject(r, NGX_HTTP_BAD_REQUEST,
                                       "invalid_models",
                                       "The \"models\" field must be an "
                                       "array of model names");
        }

        json_array_foreach(list, i, v) {

            if (!json_is_string(v)) {
                return ngx_http_llm_reject(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_models",
                                           "models[%uz] must be a string",
                                           i);
            }

            name.data = (u_char *) json_string_value(v);
            name.len = json_string_length(v);

            rc = ngx_http_llm_add_model(r, ctx, body, &name);
            if (rc != NGX_OK) {
                return rc;
            }
        }
    }

    if (ctx->models.nelts == 0) {
        return ngx_http_llm_reject(r, NGX_HTTP_BAD_REQUEST,
                                   "missing_model",
                                   "The \"model\" field is required");
    }

    ctx->model = ((ngx_http_llm_model_ref_t *) ctx->models.elts)->model;

    return NGX_OK;
}


static ngx_int_t
ngx_http_llm_add_model(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    json_t *body, ngx_str_t *name)
{
    ngx_str_t                  base;
    ngx_uint_t                 i, sort;
    ngx_http_llm_auto_t       *au;
    ngx_http_llm_model_t      *model;
    ngx_http_llm_model_ref_t  *ref;
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    base = *name;
    sort = NGX_HTTP_LLM_SORT_DEFAULT;

    model = ngx_http_llm_find_model(lmcf, &base);
    au = model ? NULL : ngx_http_llm_find_auto(lmcf, &base);

    if (model == NULL && au == NULL) {

        if (base.len > 6
            && ngx_strncmp(base.data + base.len - 6, ":floor", 6) == 0)
        {
            base.len -= 6;
            sort = NGX_HTTP_LLM_SORT_PRICE;

        } else if (base.len > 6
                   && ngx_strncmp(base.data + base.len - 6, ":nitro", 6) == 0)
        {
            base.len -= 6;
            sort = NGX_HTTP_LLM_SORT_THROUGHPUT;
        }

        if (sort) {
            model = ngx_http_llm_find_model(lmcf, &base);
            au = model ? NULL : ngx_http_llm_find_auto(lmcf, &base);
        }
    }

    if (au) {
        model = ngx_http_llm_auto_match(r, au, ctx);

        if (model == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (model == NULL) {
        return ngx_http_llm_reject(r, NGX_HTTP_NOT_FOUND,
                                   "model_not_found",
                                   "The model \"%V\" does not exist on "
                                   "this router", name);
    }

    ref = ctx->models.elts;

    for (i = 0; i < ctx->models.nelts; i++) {
        if (ref[i].model == model) {
            return NGX_OK;
        }
    }

    ref = ngx_array_push(&ctx->models);
    if (ref == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ref->model = model;
    ref->name = base;
    ref->sort = sort;

    return NGX_OK;
}


/* NULL when the messages look like a conversation, else what is wrong */

static const char *
ngx_http_llm_check_messages(json_t *messages, size_t *bad)
{
    size_t   i;
    json_t  *msg;

    if (messages == NULL) {
        return "The \"messages\" field is required";
    }

    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        return "The \"messages\" field must be a non-empty array";
    }

    json_array_foreach(messages, i, msg) {
        if (!json_is_object(msg)
            || !json_is_string(json_object_get(msg, "role")))
        {
            *bad = i;
            return "messages[%uz] must be an object with a string \"role\"";
        }
    }

    return NULL;
}


/*
 * Starts the next attempt: the next candidate whose circuit lets it
 * through, within llm_router_max_attempts (one without fallbacks).
 * Returns NGX_DONE when an attempt runs, else what finalizes the request.
 */

static ngx_int_t
ngx_http_llm_next_attempt(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_uint_t                 max;
    ngx_http_llm_loc_conf_t   *llcf;
    ngx_http_llm_candidate_t  *cand;
    ngx_http_llm_main_conf_t  *lmcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llm_router_module);
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    max = ctx->prefs.allow_fallbacks ? llcf->max_attempts : 1;

    while (ctx->next < ctx->candidates.nelts && ctx->attempts.nelts < max) {

        cand = ctx->candidates.elts;
        cand = &cand[ctx->next++];

        if (cand->probe
            && ngx_http_llm_stats_probe(lmcf, cand->endpoint->stats)
               != NGX_OK)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "llm: \"%V\" is cooling down and another request "
                          "probes it, skipped",
                          &cand->endpoint->provider->name);
            continue;
        }

        rc = ngx_http_llm_start_attempt(r, ctx, cand);

        if (rc == NGX_DECLINED) {
            /* this dialect cannot say the request: try the next one */
            continue;
        }

        return rc;
    }

    if (ctx->attempts.nelts) {
        return ngx_http_llm_send_failure(r, ctx);
    }

    return ngx_http_llm_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE, NULL,
                                   "no_endpoint",
                                   "No endpoint of \"%V\" is available: "
                                   "all are cooling down after failures",
                                   &ctx->model->name);
}


static ngx_int_t
ngx_http_llm_start_attempt(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_candidate_t *cand)
{
    size_t                       len;
    ngx_int_t                    rc;
    ngx_uint_t                   i;
    const char                  *err;
    ngx_chain_t                 *body;
    ngx_pool_cleanup_t          *cln;
    ngx_http_headers_in_t        hin;
    ngx_http_request_t          *sr;
    ngx_http_llm_attempt_t      *a;
    ngx_http_llm_endpoint_t     *ep;
    ngx_http_request_body_t     *rb;
    ngx_http_llm_loc_conf_t     *llcf;
    ngx_http_post_subrequest_t  *ps;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llm_router_module);

    ep = cand->endpoint;

    if (ctx->attempts.nelts == 0) {
        /* the first attempt: set up what all attempts share */

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_llm_cleanup;
        cln->data = ctx;

        ctx->timer.handler = ngx_http_llm_timer_handler;
        ctx->timer.data = r->connection;
        ctx->timer.log = r->connection->log;
    }

    if (ctx->attempts.nelts) {
        /* the previous attempt failed over to this one */
        (void) ngx_atomic_fetch_add(&ctx->attempt->endpoint->stats->fallbacks,
                                    1);
    }

    a = ngx_array_push(&ctx->attempts);
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(a, sizeof(ngx_http_llm_attempt_t));

    a->model = cand->model;
    a->endpoint = ep;
    a->start = ngx_current_msec;

    ctx->attempt = a;

    if (ctx->request_body) {
        /* the previous attempt is over: its body copy can go */
        (void) ngx_pfree(r->pool, ctx->request_body);
        ctx->request_body = NULL;
    }

    rc = ngx_http_llm_upstream_request(ctx, ep, &body, &len, &err);

    if (rc == NGX_DECLINED) {
        a->reason = NGX_HTTP_LLM_FAIL_STATUS;
        a->status = NGX_HTTP_BAD_REQUEST;
        a->message.data = (u_char *) err;
        a->message.len = ngx_strlen(err);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm: attempt %ui: \"%V\" cannot take the request: %s",
                      ctx->attempts.nelts, &ep->provider->name, err);

        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request_body = body->buf->start;

    /*
     * Everything the subrequest gets is made before it exists: once
     * created it is posted, and must not run half set up.
     */

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ps->handler = ngx_http_llm_attempt_done;
    ps->data = ctx;

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (rb == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rb->bufs = body;

    if (ngx_http_llm_subrequest_headers(r, ctx, ep, &hin) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    hin.content_length_n = len;

    if (ngx_http_subrequest(r, &llcf->upstream_location, NULL, &sr, ps, 0)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the subrequest is only posted yet: give it its method, body, headers */

    sr->method = NGX_HTTP_POST;
    ngx_str_set(&sr->method_name, "POST");
    sr->request_body = rb;

    sr->headers_in = hin;
    sr->headers_in.headers.last = &sr->headers_in.headers.part;

    ngx_http_set_ctx(sr, ctx, ngx_http_llm_router_module);

    ctx->sr = sr;
    ctx->held = NULL;
    ctx->held_last = &ctx->held;
    ctx->in.len = 0;
    ctx->out.len = 0;
    ctx->id.len = 0;
    ctx->header_seen = 0;
    ctx->failed = 0;
    ctx->timed_out = 0;
    ctx->finished = 0;
    ctx->complete = 0;
    ctx->sse_response = 0;
    ctx->answered = 0;
    ctx->stream_done = 0;
    ctx->done_sent = 0;
    ctx->idle = 0;
    ctx->warned = 0;
    ctx->inflight = 1;

    /* the translations' states, made only for those who translate */

    if (ep->provider->format != NGX_HTTP_LLM_FORMAT_OPENAI) {
        if (ctx->decoder == NULL) {
            ctx->decoder = ngx_palloc(r->pool,
                                      sizeof(ngx_http_llm_decoder_t));
            if (ctx->decoder == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        ngx_memzero(ctx->decoder, sizeof(ngx_http_llm_decoder_t));

        for (i = 0; i < NGX_HTTP_LLM_MAX_BLOCKS; i++) {
            ctx->decoder->tool[i] = -1;
        }
    }

    if (ctx->api == NGX_HTTP_LLM_API_MESSAGES) {
        if (ctx->encoder == NULL) {
            ctx->encoder = ngx_palloc(r->pool,
                                      sizeof(ngx_http_llm_encoder_t));
            if (ctx->encoder == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        ngx_http_llm_messages_encoder_init(ctx->encoder);
    }

    ngx_http_llm_stats_attempt(ep->stats);

    if (llcf->ttft_timeout) {
        ngx_add_timer(&ctx->timer, llcf->ttft_timeout);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "llm: attempt %ui: model \"%V\" endpoint \"%V\" "
                  "upstream model \"%V\"%s", ctx->attempts.nelts,
                  &a->model->name, &ep->provider->name, &ep->model,
                  cand->probe ? ", probing after a cooldown" : "");

    return NGX_DONE;
}


/*
 * The subrequest gets a header list of its own: the client's headers,
 * its Authorization above all, never reach a provider.  The list has room
 * for all its headers in its first part, so it can be copied whole.
 */

static ngx_int_t
ngx_http_llm_subrequest_headers(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep, ngx_http_headers_in_t *hin)
{
    ngx_uint_t                i;
    ngx_table_elt_t          *h;
    ngx_http_llm_provider_t  *pr;

    ngx_memzero(hin, sizeof(ngx_http_headers_in_t));

    pr = ep->provider;

    if (ngx_list_init(&hin->headers, r->pool, NGX_HTTP_LLM_HEADERS,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    hin->content_length_n = -1;
    hin->keep_alive_n = -1;

    /* made at configuration (ngx_http_llm_provider()), copied */

    for (i = 0; i < pr->nheaders; i++) {
        h = ngx_list_push(&hin->headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = pr->headers[i];

        if (i == NGX_HTTP_LLM_HEADER_ACCEPT && ctx->stream) {
            ngx_str_set(&h->value, "text/event-stream");
        }
    }

    return NGX_OK;
}


/*
 * Runs when an attempt's subrequest is finalized, possibly more than once
 * for one subrequest: it only records the outcome and hands the decision
 * to the main request's write handler.
 */

static ngx_int_t
ngx_http_llm_attempt_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_llm_ctx_t *ctx = data;

    ngx_http_request_t      *r;
    ngx_http_llm_attempt_t  *a;

    if (ctx->sr != sr || ctx->finished) {
        return NGX_OK;
    }

    ctx->finished = 1;

    r = ctx->request;
    a = ctx->attempt;

    if (r->connection->error || r->connection->timedout
        || rc == NGX_HTTP_REQUEST_TIME_OUT
        || rc == NGX_HTTP_CLIENT_CLOSED_REQUEST)
    {
        /* the client's doing, not the provider's: nginx ends the request */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm: client %s during attempt %ui",
                      r->connection->timedout ? "timed out"
                                              : "closed the connection",
                      ctx->attempts.nelts);

        ctx->client_gone = 1;

        ngx_http_llm_attempt_outcome(r, ctx);

        return rc;
    }

    if (ctx->committed && ctx->done_sent) {
        /* the client has the whole answer, whatever came after it */
        ctx->complete = 1;
        ctx->failed = 0;
    }

    if (!ctx->header_seen) {
        /* no answer at all: upstream's verdict, or the location's own */

        if (rc == NGX_HTTP_GATEWAY_TIME_OUT) {
            a->reason = NGX_HTTP_LLM_FAIL_TIMEOUT;
            a->status = rc;

        } else if (rc >= NGX_HTTP_SPECIAL_RESPONSE
                   && rc != NGX_HTTP_BAD_GATEWAY)
        {
            a->reason = NGX_HTTP_LLM_FAIL_STATUS;
            a->status = rc;

        } else {
            a->reason = NGX_HTTP_LLM_FAIL_CONNECT;
            a->status = NGX_HTTP_BAD_GATEWAY;
        }

        ctx->failed = 1;

    } else if (!ctx->complete) {
        if (a->reason == NGX_HTTP_LLM_FAIL_NONE) {
            a->reason = NGX_HTTP_LLM_FAIL_CUT;
        }

        ctx->failed = 1;

    } else if (!ctx->committed && !ctx->failed) {
        a->reason = NGX_HTTP_LLM_FAIL_INVALID;
        ctx->failed = 1;
    }

    if (ctx->timed_out && ctx->failed) {
        /* our deadline, whatever upstream made of it */
        a->reason = NGX_HTTP_LLM_FAIL_TIMEOUT;
        a->status = NGX_HTTP_GATEWAY_TIME_OUT;
    }

    if (ctx->failed) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm: attempt %ui via \"%V\" failed: %s, status %ui%s",
                      ctx->attempts.nelts, &a->endpoint->provider->name,
                      ngx_http_llm_reason_name(a->reason), a->status,
                      ctx->committed ? ", after the response started" : "");

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm: attempt %ui via \"%V\" answered, ttft %Mms",
                      ctx->attempts.nelts, &a->endpoint->provider->name,
                      a->ttft);
    }

    ngx_http_llm_attempt_outcome(r, ctx);

    r->write_event_handler = ngx_http_llm_resume;

    return NGX_OK;
}


/* what the attempt tells about its endpoint, for every worker to see */

static void
ngx_http_llm_attempt_outcome(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    ngx_msec_t                 now, gen;
    ngx_uint_t                 outcome, tps;
    ngx_http_llm_attempt_t    *a;
    ngx_http_llm_main_conf_t  *lmcf;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (!ctx->inflight) {
        return;
    }

    ctx->inflight = 0;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);
    a = ctx->attempt;
    tps = 0;

    if (ctx->client_gone || a->cache_hit) {
        /* a cached answer says nothing of the endpoint as it is now */
        outcome = NGX_HTTP_LLM_OUTCOME_NEUTRAL;

    } else if (!ctx->failed) {
        outcome = NGX_HTTP_LLM_OUTCOME_OK;

        /* output tokens per second after the first token, times 1000 */

        now = ngx_current_msec;
        gen = now - a->start - a->ttft;

        if (gen > 0 && a->completion_tokens > 0
            && a->completion_tokens < 1000000000)
        {
            tps = (ngx_uint_t) (a->completion_tokens * 1000 * 1000 / gen);
        }

    } else if (ngx_http_llm_retryable(a) || ctx->committed) {
        outcome = NGX_HTTP_LLM_OUTCOME_FAILED;

    } else {
        /* the provider judged the request, not itself */
        outcome = NGX_HTTP_LLM_OUTCOME_NEUTRAL;
    }

    ngx_http_llm_stats_outcome(lmcf, a->endpoint->stats, outcome, a->ttft,
                               tps);
}


static void
ngx_http_llm_resume(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_http_llm_ctx_t  *ctx;

    r->write_event_handler = ngx_http_request_empty_handler;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    if (ctx->committed) {

        if (ctx->stream && ngx_http_llm_stream_end(r, ctx) == NGX_ERROR) {
            ngx_http_llm_account(r, ctx);
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }

        /* the answer is whole: settle now, not when the connection goes */
        ngx_http_llm_account(r, ctx);

        ngx_http_finalize_request(r, ngx_http_send_special(r, NGX_HTTP_LAST));
        return;
    }

    if (ngx_http_llm_retryable(ctx->attempt)) {
        rc = ngx_http_llm_next_attempt(r, ctx);

        if (rc != NGX_DONE) {
            ngx_http_llm_account(r, ctx);
            ngx_http_finalize_request(r, rc);
        }

        return;
    }

    ngx_http_llm_account(r, ctx);
    ngx_http_finalize_request(r, ngx_http_llm_send_failure(r, ctx));
}


/*
 * The attempt's deadline: before the first useful bytes it is the time to
 * first token (llm_router_ttft_timeout), after them the longest silence
 * allowed (llm_router_idle_timeout).  Either stops the attempt the way a
 * proxy read timeout would: upstream's own code closes the provider
 * connection and finalizes the subrequest.
 */

static void
ngx_http_llm_timer_handler(ngx_event_t *ev)
{
    ngx_msec_t                silence;
    ngx_connection_t         *c, *pc;
    ngx_http_upstream_t      *u;
    ngx_http_llm_ctx_t       *ctx;
    ngx_http_llm_loc_conf_t  *llcf;

    /* ev->data is the connection, for nginx's timer debug log */

    ctx = (ngx_http_llm_ctx_t *) ((u_char *) ev
                                  - offsetof(ngx_http_llm_ctx_t, timer));
    c = ev->data;

    if (ctx->sr == NULL || ctx->finished) {
        return;
    }

    if (ctx->idle) {
        llcf = ngx_http_get_module_loc_conf(ctx->request,
                                            ngx_http_llm_router_module);

        silence = ngx_current_msec - ctx->last_read;

        if (silence < llcf->idle_timeout) {
            ngx_add_timer(ev, llcf->idle_timeout - silence);
            return;
        }
    }

    u = ctx->sr->upstream;

    if (u == NULL || u->peer.connection == NULL) {
        /* not connected yet (a resolver at work): look again soon */
        ngx_add_timer(ev, 100);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "llm: provider \"%V\" %s, stopping the attempt",
                  &ctx->attempt->endpoint->provider->name,
                  ctx->committed ? "went silent past llm_router_idle_timeout"
                                 : "gave no first token within "
                                   "llm_router_ttft_timeout");

    ctx->timed_out = 1;

    pc = u->peer.connection;
    pc->read->timedout = 1;

    ngx_post_event(pc->read, &ngx_posted_events);
}


static void
ngx_http_llm_cleanup(void *data)
{
    ngx_http_llm_ctx_t *ctx = data;

    ngx_http_llm_main_conf_t  *lmcf;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (ctx->inflight) {
        /* the request went away without its attempt finishing */

        ctx->inflight = 0;

        lmcf = ngx_http_get_module_main_conf(ctx->request,
                                             ngx_http_llm_router_module);

        ngx_http_llm_stats_outcome(lmcf, ctx->attempt->endpoint->stats,
                                   NGX_HTTP_LLM_OUTCOME_NEUTRAL, 0, 0);
    }
}


static ngx_uint_t
ngx_http_llm_retryable(ngx_http_llm_attempt_t *a)
{
    if (a->reason != NGX_HTTP_LLM_FAIL_STATUS) {
        return a->reason != NGX_HTTP_LLM_FAIL_INTERNAL;
    }

    /*
     * 400, 413 and 422 judge the client's request and go back to it.  Any
     * other status is the provider's trouble or the router's: 401, 403 and
     * 404 mean a wrong key or model id there, 408, 429 and 5xx a provider
     * in difficulty.  Another endpoint may do.
     */

    switch (a->status) {

    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
    case 422:
        return 0;

    default:
        return 1;
    }
}


/* nothing reached the client and no attempt is left: say what happened */

static ngx_int_t
ngx_http_llm_send_failure(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    json_t                  *meta, *list, *item;
    ngx_str_t                msg;
    ngx_uint_t               i, status, timeouts;
    ngx_table_elt_t         *h;
    ngx_http_llm_attempt_t  *a, *last;

    a = ctx->attempts.elts;
    last = &a[ctx->attempts.nelts - 1];

    meta = json_object();
    if (meta == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    list = json_array();

    if (json_object_set_new(meta, "previous_errors", list) != 0) {
        json_decref(meta);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    timeouts = 0;

    for (i = 0; i < ctx->attempts.nelts; i++) {

        if (a[i].reason == NGX_HTTP_LLM_FAIL_TIMEOUT) {
            timeouts++;
        }

        item = json_pack("{s:s%,s:s%,s:I,s:s}",
                         "provider", a[i].endpoint->provider->name.data,
                         a[i].endpoint->provider->name.len,
                         "model", a[i].model->name.data, a[i].model->name.len,
                         "status", (json_int_t) a[i].status,
                         "reason", ngx_http_llm_reason_name(a[i].reason));

        if (item == NULL || json_array_append_new(list, item) != 0) {
            json_decref(meta);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (a[i].message.len
            && json_object_set_new(item, "message",
                                   json_stringn((char *) a[i].message.data,
                                                a[i].message.len))
               != 0)
        {
            json_decref(meta);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (json_object_set_new(meta, "provider_name",
                            ngx_http_llm_json_str(
                                &last->endpoint->provider->name))
        != 0)
    {
        json_decref(meta);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (last->reason == NGX_HTTP_LLM_FAIL_STATUS
        && (!ngx_http_llm_retryable(last) || !ctx->prefs.allow_fallbacks)
        && last->status >= NGX_HTTP_BAD_REQUEST
        && last->status != NGX_HTTP_UNAUTHORIZED
        && last->status != NGX_HTTP_FORBIDDEN
        && last->status != NGX_HTTP_NOT_FOUND)
    {
        /*
         * The provider judged the client's request, or the client wants no
         * fallback: pass the provider's verdict on.  Not a 401, 403 or 404:
         * those speak of the router's key or model id, not of the client.
         */

        msg = last->message;

        if (msg.len == 0) {
            ngx_str_set(&msg, "The provider rejected the request");
        }

        if (last->retry_after.len) {
            h = ngx_list_push(&r->headers_out.headers);
            if (h == NULL) {
                json_decref(meta);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            h->hash = 1;
            ngx_str_set(&h->key, "Retry-After");
            h->value = last->retry_after;
        }

        return ngx_http_llm_send_error_json(r, last->status, NULL, NULL, &msg,
                                            meta);
    }

    status = (timeouts == ctx->attempts.nelts) ? NGX_HTTP_GATEWAY_TIME_OUT
                                               : NGX_HTTP_BAD_GATEWAY;

    msg.data = ngx_pnalloc(r->pool, 256);
    if (msg.data == NULL) {
        json_decref(meta);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    msg.len = ngx_snprintf(msg.data, 256,
                           "%s: %ui attempt%s failed, the last via provider "
                           "\"%V\" (%s, status %ui)",
                           status == NGX_HTTP_GATEWAY_TIME_OUT
                           ? "Upstream timed out" : "No provider could answer",
                           ctx->attempts.nelts,
                           ctx->attempts.nelts == 1 ? "" : "s",
                           &last->endpoint->provider->name,
                           ngx_http_llm_reason_name(last->reason),
                           last->status)
              - msg.data;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0, "llm: %V", &msg);

    return ngx_http_llm_send_error_json(r, status, NULL, NULL, &msg, meta);
}


static const char *
ngx_http_llm_reason_name(ngx_uint_t reason)
{
    static const char  *names[] = {
        "none", "connect", "timeout", "status", "invalid", "cut", "internal"
    };

    return reason < sizeof(names) / sizeof(names[0]) ? names[reason] : "?";
}
