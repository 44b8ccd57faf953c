
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * Growable byte buffers in a request's pool, and JSON serialized into
 * them.  Nothing else of nginx is needed here but the pool, so the fuzz
 * targets (tools/fuzz/) link this file as it is.
 */


#define NGX_HTTP_LLM_JSON_FLAGS  (JSON_COMPACT|JSON_ENCODE_ANY              \
                                  |JSON_REAL_PRECISION(15))


/*
 * A growable byte buffer in a pool.  Old blocks are given back with
 * ngx_pfree() when the pool took them as large allocations.
 */

ngx_int_t
ngx_http_llm_sbuf_reserve(ngx_pool_t *pool, ngx_http_llm_sbuf_t *sb,
    size_t len)
{
    u_char  *p;
    size_t   size;

    if (sb->size - sb->len >= len) {
        return NGX_OK;
    }

    size = sb->size ? 2 * sb->size : 256;

    if (size < sb->len + len) {
        size = sb->len + len;
    }

    p = ngx_pnalloc(pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (sb->len) {
        ngx_memcpy(p, sb->data, sb->len);
    }

    if (sb->data) {
        (void) ngx_pfree(pool, sb->data);
    }

    sb->data = p;
    sb->size = size;

    return NGX_OK;
}


ngx_int_t
ngx_http_llm_sbuf_append(ngx_pool_t *pool, ngx_http_llm_sbuf_t *sb,
    u_char *data, size_t len, size_t max)
{
    if (max && sb->len + len > max) {
        return NGX_DECLINED;
    }

    if (len == 0) {
        /* an empty buffer has no memory yet: no pointer arithmetic on it */
        return NGX_OK;
    }

    if (ngx_http_llm_sbuf_reserve(pool, sb, len) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memcpy(sb->data + sb->len, data, len);
    sb->len += len;

    return NGX_OK;
}


/* serializes "json" at the end of "sb" without going through malloc() */

ngx_int_t
ngx_http_llm_json_append(ngx_pool_t *pool, json_t *json,
    ngx_http_llm_sbuf_t *sb)
{
    size_t  n;

    /* where it fits in the room left, written once; else again, in room */

    if (ngx_http_llm_sbuf_reserve(pool, sb, 64) != NGX_OK) {
        return NGX_ERROR;
    }

    n = json_dumpb(json, (char *) sb->data + sb->len, sb->size - sb->len,
                   NGX_HTTP_LLM_JSON_FLAGS);

    if (n == 0) {
        return NGX_ERROR;
    }

    if (n > sb->size - sb->len) {

        if (ngx_http_llm_sbuf_reserve(pool, sb, n) != NGX_OK) {
            return NGX_ERROR;
        }

        n = json_dumpb(json, (char *) sb->data + sb->len, n,
                       NGX_HTTP_LLM_JSON_FLAGS);

        if (n == 0) {
            return NGX_ERROR;
        }
    }

    sb->len += n;

    return NGX_OK;
}


ngx_int_t
ngx_http_llm_json_dump(ngx_pool_t *pool, json_t *json, ngx_http_llm_sbuf_t *sb)
{
    sb->len = 0;

    return ngx_http_llm_json_append(pool, json, sb);
}
