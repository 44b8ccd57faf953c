
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * Growable byte buffers in a request's pool, JSON serialized into them,
 * and real numbers written as that serialization writes them.  Nothing
 * else of nginx is needed here but the pool, so the fuzz targets
 * (tools/fuzz/) link this file as it is.
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


/*
 * A real number as ngx_http_llm_json_dump() writes one (jansson's format
 * at precision 15: "%.15g", a ".0" where it would read as an integer, no
 * '+' or leading zeros in the exponent), for answers put together by hand.
 */

u_char *
ngx_http_llm_json_real(u_char *p, double v)
{
    char  buf[64], *s, *e, *d;
    int   n;

    n = snprintf(buf, sizeof(buf), "%.15g", v);

    if (n <= 0 || n >= (int) sizeof(buf) - 3) {
        return ngx_cpymem(p, "0.0", 3);
    }

    if (strchr(buf, '.') == NULL && strchr(buf, 'e') == NULL) {
        buf[n++] = '.';
        buf[n++] = '0';
        buf[n] = '\0';
    }

    e = strchr(buf, 'e');

    if (e) {
        s = e + 1;
        d = s;

        if (*s == '-') {
            s++;
            d++;

        } else if (*s == '+') {
            s++;
        }

        while (*s == '0' && s[1] != '\0') {
            s++;
        }

        ngx_memmove(d, s, strlen(s) + 1);
        n = strlen(buf);
    }

    return ngx_cpymem(p, buf, n);
}


/*
 * A cost of "pico" pico-USD as ngx_http_llm_json_real() writes pico / 1e12,
 * without printf: below 10^15 the quotient has at most 15 significant
 * digits, and "%.15g" gives those back exactly, trailing zeros dropped.
 */

u_char *
ngx_http_llm_json_pico(u_char *p, int64_t pico)
{
    u_char     digits[NGX_INT64_LEN];
    ngx_int_t  nd, ns, x, i;

    if (pico <= 0 || pico >= 1000000000000000LL) {
        return ngx_http_llm_json_real(p, (double) pico / 1e12);
    }

    nd = 0;

    for (x = pico; x > 0; x /= 10) {
        nd++;
    }

    for (i = nd - 1, x = pico; i >= 0; i--, x /= 10) {
        digits[i] = (u_char) ('0' + x % 10);
    }

    for (ns = nd; digits[ns - 1] == '0'; ns--) {
        /* void */
    }

    x = nd - 13;        /* the decimal exponent of its first digit */

    if (x < -4) {
        *p++ = digits[0];

        if (ns > 1) {
            *p++ = '.';
            p = ngx_cpymem(p, digits + 1, ns - 1);
        }

        /* 5 to 12 */

        *p++ = 'e';
        *p++ = '-';

        if (x <= -10) {
            *p++ = '1';
        }

        *p++ = (u_char) ('0' + (-x) % 10);

        return p;
    }

    if (x >= 0) {
        p = ngx_cpymem(p, digits, x + 1);
        *p++ = '.';

        if (ns > x + 1) {
            return ngx_cpymem(p, digits + x + 1, ns - x - 1);
        }

        *p++ = '0';
        return p;
    }

    *p++ = '0';
    *p++ = '.';

    for (i = x + 1; i < 0; i++) {
        *p++ = '0';
    }

    return ngx_cpymem(p, digits, ns);
}
