
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * Every error a client sees has OpenAI's shape:
 *
 *     {"error":{"message":"...","type":"...","param":null,"code":...,
 *               "metadata":{...}}}
 */


const char *
ngx_http_llm_error_type(ngx_uint_t status)
{
    switch (status) {

    case NGX_HTTP_UNAUTHORIZED:
        return "authentication_error";

    case 402:
        return "insufficient_quota";

    case NGX_HTTP_FORBIDDEN:
        return "permission_error";

    case NGX_HTTP_REQUEST_TIME_OUT:
        return "timeout_error";

    case NGX_HTTP_TOO_MANY_REQUESTS:
        return "rate_limit_error";

    default:
        break;
    }

    if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        return "api_error";
    }

    return "invalid_request_error";
}


json_t *
ngx_http_llm_error_json(ngx_uint_t status, const char *type, const char *code,
    ngx_str_t *message, json_t *metadata)
{
    json_t  *root, *err;

    root = json_object();
    if (root == NULL) {
        json_decref(metadata);
        return NULL;
    }

    /* json_object_set_new() takes the reference even when it fails */

    err = json_object();

    if (json_object_set_new(root, "error", err) != 0) {
        json_decref(root);
        json_decref(metadata);
        return NULL;
    }

    if (type == NULL) {
        type = ngx_http_llm_error_type(status);
    }

    if (json_object_set_new(err, "message",
                            json_stringn((char *) message->data, message->len))
        != 0
        || json_object_set_new(err, "type", json_string(type)) != 0
        || json_object_set_new(err, "param", json_null()) != 0
        || json_object_set_new(err, "code",
                               code ? json_string(code) : json_integer(status))
           != 0)
    {
        json_decref(root);
        json_decref(metadata);
        return NULL;
    }

    if (metadata && json_object_set_new(err, "metadata", metadata) != 0) {
        json_decref(root);
        return NULL;
    }

    return root;
}


/*
 * For clients of /v1/messages, Anthropic's shape:
 *
 *     {"type":"error","error":{"type":"...","message":"...",
 *                              "metadata":{...}}}
 */

json_t *
ngx_http_llm_anthropic_error_json(ngx_uint_t status, ngx_str_t *message,
    json_t *metadata)
{
    json_t      *root;
    const char  *type;

    switch (status) {

    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_NOT_ALLOWED:
        type = "invalid_request_error";
        break;

    case NGX_HTTP_UNAUTHORIZED:
        type = "authentication_error";
        break;

    case 402:
        type = "billing_error";
        break;

    case NGX_HTTP_FORBIDDEN:
        type = "permission_error";
        break;

    case NGX_HTTP_NOT_FOUND:
        type = "not_found_error";
        break;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        type = "request_too_large";
        break;

    case NGX_HTTP_TOO_MANY_REQUESTS:
        type = "rate_limit_error";
        break;

    case NGX_HTTP_GATEWAY_TIME_OUT:
        type = "timeout_error";
        break;

    case 529:
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        type = "overloaded_error";
        break;

    default:
        type = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR)
               ? "api_error" : "invalid_request_error";
    }

    root = json_pack("{s:s,s:{s:s,s:s%}}",
                     "type", "error",
                     "error",
                       "type", type,
                       "message", message->data, message->len);

    if (root == NULL) {
        json_decref(metadata);
        return NULL;
    }

    if (metadata
        && json_object_set_new(json_object_get(root, "error"), "metadata",
                               metadata)
           != 0)
    {
        json_decref(root);
        return NULL;
    }

    return root;
}


ngx_int_t
ngx_http_llm_send_error_json(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *code, ngx_str_t *message, json_t *metadata)
{
    json_t              *json;
    ngx_int_t            rc;
    ngx_http_llm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llm_router_module);

    if (ctx && ctx->api == NGX_HTTP_LLM_API_MESSAGES) {
        json = ngx_http_llm_anthropic_error_json(status, message, metadata);

    } else {
        json = ngx_http_llm_error_json(status, type, code, message, metadata);
    }

    if (json == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_llm_send_json(r, status, json);

    json_decref(json);

    return rc;
}


ngx_int_t
ngx_http_llm_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *code, const char *fmt, ...)
{
    u_char      buf[1024];
    va_list     args;
    ngx_str_t   msg, safe;
    ngx_uint_t  level;

    va_start(args, fmt);
    msg.data = buf;
    msg.len = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args) - buf;
    va_end(args);

    level = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? NGX_LOG_WARN
                                                       : NGX_LOG_INFO;

    if (r->connection->log->log_level >= level) {
        /* the message may quote the client: no control characters */

        if (ngx_http_llm_printable(r->pool, msg.data, msg.len, NULL, &safe)
            == NGX_OK)
        {
            ngx_log_error(level, r->connection->log, 0, "llm: %ui %V",
                          status, &safe);
        }
    }

    return ngx_http_llm_send_error_json(r, status, type, code, &msg, NULL);
}


/* sends a complete JSON answer on the main request */

ngx_int_t
ngx_http_llm_send_json(ngx_http_request_t *r, ngx_uint_t status, json_t *json)
{
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_chain_t           out;
    ngx_http_llm_ctx_t   *ctx;
    ngx_http_llm_sbuf_t   sb;

    ctx = ngx_http_llm_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&sb, sizeof(ngx_http_llm_sbuf_t));

    if (ngx_http_llm_json_dump(r->pool, json, &sb) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->own_output = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = sb.len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = sb.data;
    b->last = sb.data + sb.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
