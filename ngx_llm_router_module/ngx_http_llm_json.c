
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


static void ngx_http_llm_json_cleanup(void *data);


/* hands a reference to the pool: it is released when the pool goes */

ngx_int_t
ngx_http_llm_json_own(ngx_pool_t *pool, json_t *json)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        json_decref(json);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_llm_json_cleanup;
    cln->data = json;

    return NGX_OK;
}


static void
ngx_http_llm_json_cleanup(void *data)
{
    json_t *json = data;

    json_decref(json);
}


json_t *
ngx_http_llm_json_str(ngx_str_t *s)
{
    return json_stringn((const char *) s->data, s->len);
}


/* NGX_OK: a string; NGX_DECLINED: absent or null; NGX_ERROR: another type */

ngx_int_t
ngx_http_llm_json_get_str(json_t *obj, const char *key, ngx_str_t *value)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v)) {
        return NGX_DECLINED;
    }

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    value->data = (u_char *) json_string_value(v);
    value->len = json_string_length(v);

    return NGX_OK;
}


/*
 * The request body in one piece of memory.  A body in one memory buffer is
 * used in place; a body nginx wrote to a temporary file is read back.
 */

ngx_int_t
ngx_http_llm_read_body(ngx_http_request_t *r, u_char **data, size_t *len)
{
    u_char       *p;
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *data = NULL;
    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        *data = cl->buf->pos;
        *len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (size == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "llm: cannot read the request body from \"%V\"",
                              &b->file->name);
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    *len = p - *data;

    return NGX_OK;
}


/* pico-USD per token as a decimal string of USD per token: "0.0000025" */

u_char *
ngx_http_llm_price_string(u_char *p, int64_t pico)
{
    u_char   frac[12];
    int64_t  whole, rest;
    size_t   n;

    if (pico < 0) {
        *p++ = '-';
        pico = -pico;
    }

    whole = pico / 1000000000000LL;
    rest = pico % 1000000000000LL;

    p = ngx_sprintf(p, "%L", whole);

    if (rest == 0) {
        return p;
    }

    for (n = 12; n > 0; n--) {
        frac[n - 1] = (u_char) ('0' + rest % 10);
        rest /= 10;
    }

    n = 12;

    while (frac[n - 1] == '0') {
        n--;
    }

    *p++ = '.';

    return ngx_cpymem(p, frac, n);
}


/*
 * A provider's text made fit for a client and a log: control characters
 * become spaces, the provider's key is masked, then it is cut to 512 bytes
 * (masking first: a cut must not leave half a key unmasked).
 */

ngx_int_t
ngx_http_llm_printable(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_str_t *secret, ngx_str_t *out)
{
    u_char  *p;
    size_t   i;

    len = ngx_min(len, 65536);

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        p[i] = (data[i] < 0x20 || data[i] == 0x7f) ? ' ' : data[i];
    }

    out->data = p;
    out->len = len;

    if (secret) {
        ngx_http_llm_redact(out, secret);
    }

    out->len = ngx_min(out->len, 512);

    /* do not cut a UTF-8 sequence */

    while (out->len && out->len < len && (p[out->len] & 0xc0) == 0x80) {
        out->len--;
    }

    while (out->len && p[out->len - 1] == ' ') {
        out->len--;
    }

    return NGX_OK;
}


/* overwrites every occurrence of a secret in a text we own */

void
ngx_http_llm_redact(ngx_str_t *text, ngx_str_t *secret)
{
    u_char  *p, *last;

    if (secret->len < 4 || text->len < secret->len) {
        return;
    }

    p = text->data;
    last = text->data + text->len;

    while ((p = ngx_strlcasestrn(p, last, secret->data, secret->len - 1))
           != NULL)
    {
        ngx_memset(p, '*', secret->len);
        p += secret->len;
    }
}


/* "s" as a JSON string, quotes included, for answers put together by hand */

ngx_int_t
ngx_http_llm_json_quote(ngx_pool_t *pool, ngx_str_t *s, ngx_str_t *out)
{
    json_t               *str;
    ngx_int_t             rc;
    ngx_http_llm_sbuf_t   sb;

    str = ngx_http_llm_json_str(s);
    if (str == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&sb, sizeof(ngx_http_llm_sbuf_t));

    if (ngx_http_llm_sbuf_reserve(pool, &sb, 1024 + 6 * s->len) != NGX_OK) {
        json_decref(str);
        return NGX_ERROR;
    }

    sb.len = json_dumpb(str, (char *) sb.data, sb.size, JSON_ENCODE_ANY);

    json_decref(str);

    rc = (sb.len == 0 || sb.len > sb.size) ? NGX_ERROR : NGX_OK;

    out->data = sb.data;
    out->len = sb.len;

    return rc;
}
