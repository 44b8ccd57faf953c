
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * The client's request as the router holds it.  Most of a chat request's
 * bytes are its conversation ("messages"; "prompt" and "input" for the
 * legacy and embeddings APIs), which an OpenAI-dialect provider gets as
 * the client sent it.  So the body is scanned (ngx_http_llm_scan.c), and
 * the conversation is kept as the client's own bytes (ctx->raw), checked
 * but not parsed: it is copied into the provider's request as it is.
 * Whoever needs to read it (the auto router's rules, the Anthropic and
 * Gemini translations) asks for the whole body first:
 * ngx_http_llm_body_full().
 *
 * The other members are kept as the scanner found them (ctx->fields);
 * a value is parsed when someone asks for it (ngx_http_llm_body_get()),
 * and jansson's object of them all (ctx->body) is made only for those
 * who change the request beyond its model id or read it whole
 * (ngx_http_llm_body_object()).
 */


#define NGX_HTTP_LLM_MAX_MEMBERS  64


static const char *ngx_http_llm_body_raw_name(ngx_uint_t api);
static ngx_inline ngx_uint_t ngx_http_llm_body_is_raw(
    ngx_http_llm_member_t *m, const char *raw);
static ngx_int_t ngx_http_llm_body_twice(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, ngx_http_llm_member_t *m, ngx_uint_t n,
    const char *raw, json_error_t *err);
static ngx_http_llm_field_t *ngx_http_llm_body_find(ngx_http_llm_ctx_t *ctx,
    const char *key);
static json_t *ngx_http_llm_body_field(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_field_t *f);
static json_t *ngx_http_llm_body_value(ngx_http_llm_member_t *m,
    json_error_t *err);
static ngx_int_t ngx_http_llm_body_write(ngx_pool_t *pool,
    ngx_http_llm_ctx_t *ctx, ngx_http_llm_sbuf_t *sb);
static ngx_int_t ngx_http_llm_body_write_fields(ngx_pool_t *pool,
    ngx_http_llm_ctx_t *ctx, ngx_http_llm_sbuf_t *sb);
static ngx_int_t ngx_http_llm_body_model(ngx_pool_t *pool,
    ngx_http_llm_ctx_t *ctx, ngx_http_llm_sbuf_t *sb);
static ngx_int_t ngx_http_llm_body_string(ngx_pool_t *pool, u_char *s,
    size_t len, ngx_http_llm_sbuf_t *sb);


/*
 * NGX_OK: the request held as its members (ctx->fields, their values
 * parsed when asked for, ctx->body NULL) or as jansson's object
 * (ctx->body), and ctx->raw; NGX_DECLINED: not a JSON object, with
 * jansson's own words in "err" (err->text empty for a JSON value that is
 * not an object); NGX_ERROR.
 */

ngx_int_t
ngx_http_llm_body_parse(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    u_char *data, size_t len, json_error_t *err)
{
    json_t                 *body;
    ngx_int_t               rc;
    ngx_uint_t              i, j, n;
    const char             *raw;
    ngx_http_llm_field_t   *f;
    ngx_http_llm_member_t   m[NGX_HTTP_LLM_MAX_MEMBERS];

    err->text[0] = '\0';

    raw = ngx_http_llm_body_raw_name(ctx->api);

    rc = (raw == NULL) ? NGX_DECLINED
                       : ngx_http_llm_scan_object(data, data + len, m,
                                                  NGX_HTTP_LLM_MAX_MEMBERS,
                                                  &n);

    if (rc != NGX_OK) {

        /* not for the scanner to decide, or not JSON: jansson's verdict */

        body = json_loadb((const char *) data, len, JSON_ALLOW_NUL, err);

        if (body == NULL) {
            return NGX_DECLINED;
        }

        if (ngx_http_llm_json_own(r->pool, body) != NGX_OK) {
            return NGX_ERROR;
        }

        if (!json_is_object(body)) {
            err->text[0] = '\0';
            return NGX_DECLINED;
        }

        ctx->body = body;

        return NGX_OK;
    }

    f = ngx_palloc(r->pool, (n ? n : 1) * sizeof(ngx_http_llm_field_t));
    if (f == NULL) {
        return NGX_ERROR;
    }

    ctx->fields = f;
    ctx->nfields = 0;
    ctx->body = NULL;

    for (i = 0; i < n; i++) {

        if (ngx_http_llm_body_is_raw(&m[i], raw)) {
            /* the last of duplicates wins, as in jansson */
            ctx->raw = m[i];
            ctx->has_raw = 1;
            continue;
        }

        for (j = 0; j < ctx->nfields; j++) {
            if (f[j].m.key_len == m[i].key_len
                && ngx_memcmp(f[j].m.key, m[i].key, m[i].key_len) == 0)
            {
                /* a key given twice: jansson's object, written from it */
                return ngx_http_llm_body_twice(r, ctx, m, n, raw, err);
            }
        }

        f[ctx->nfields].m = m[i];
        f[ctx->nfields].value = NULL;
        f[ctx->nfields].removed = 0;
        ctx->nfields++;
    }

    return NGX_OK;
}


/*
 * A body with a key given twice is held as jansson holds it, the last
 * value of each key in the place of its first, and written from there.
 */

static ngx_int_t
ngx_http_llm_body_twice(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_member_t *m, ngx_uint_t n, const char *raw,
    json_error_t *err)
{
    json_t      *body, *v;
    ngx_uint_t   i;

    body = json_object();
    if (body == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_llm_json_own(r->pool, body) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->body = body;
    ctx->fields = NULL;
    ctx->nfields = 0;

    for (i = 0; i < n; i++) {

        if (ngx_http_llm_body_is_raw(&m[i], raw)) {
            ctx->raw = m[i];
            ctx->has_raw = 1;
            continue;
        }

        v = ngx_http_llm_body_value(&m[i], err);
        if (v == NULL) {
            /* the scanner let through what jansson does not take */
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "llm: the request's \"%*s\" did not parse: %s",
                          m[i].key_len, m[i].key, err->text);
            return NGX_ERROR;
        }

        if (json_object_setn_new(body, (const char *) m[i].key,
                                 m[i].key_len, v)
            != 0)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A member of the client's request, as json_object_get() on the whole
 * would find it: while the request is held as its members (ctx->body is
 * NULL), only the value asked for is parsed.
 */

json_t *
ngx_http_llm_body_get(ngx_http_llm_ctx_t *ctx, const char *key)
{
    ngx_http_llm_field_t  *f;

    if (ctx->body) {
        return json_object_get(ctx->body, key);
    }

    f = ngx_http_llm_body_find(ctx, key);

    return f ? ngx_http_llm_body_field(ctx, f) : NULL;
}


/*
 * The same for a string, as ngx_http_llm_json_get_str() has it: one
 * without escapes is the client's bytes, not parsed.
 */

ngx_int_t
ngx_http_llm_body_get_str(ngx_http_llm_ctx_t *ctx, const char *key,
    ngx_str_t *value)
{
    ngx_http_llm_field_t  *f;

    if (ctx->body) {
        return ngx_http_llm_json_get_str(ctx->body, key, value);
    }

    f = ngx_http_llm_body_find(ctx, key);

    if (f == NULL || f->m.type == 'n') {
        return NGX_DECLINED;
    }

    if (f->m.type != '"') {
        return NGX_ERROR;
    }

    if (memchr(f->m.value, '\\', f->m.value_len) == NULL) {
        value->data = f->m.value + 1;
        value->len = f->m.value_len - 2;
        return NGX_OK;
    }

    if (ngx_http_llm_body_field(ctx, f) == NULL) {
        return NGX_ERROR;
    }

    value->data = (u_char *) json_string_value(f->value);
    value->len = json_string_length(f->value);

    return NGX_OK;
}


static ngx_http_llm_field_t *
ngx_http_llm_body_find(ngx_http_llm_ctx_t *ctx, const char *key)
{
    size_t                 len;
    ngx_uint_t             i;
    ngx_http_llm_field_t  *f;

    len = ngx_strlen(key);

    for (i = 0; i < ctx->nfields; i++) {
        f = &ctx->fields[i];

        if (!f->removed && f->m.key_len == len
            && ngx_memcmp(f->m.key, key, len) == 0)
        {
            return f;
        }
    }

    return NULL;
}


/*
 * ctx->body made from the members, for those who change the request or
 * read it whole (a translation into another dialect): from then on the
 * request is that object.  The conversation stays bytes (has_raw).
 */

ngx_int_t
ngx_http_llm_body_object(ngx_http_llm_ctx_t *ctx)
{
    json_t                *body, *v;
    ngx_uint_t             i;
    ngx_http_llm_field_t  *f;

    if (ctx->body) {
        return NGX_OK;
    }

    body = json_object();
    if (body == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_llm_json_own(ctx->request->pool, body) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < ctx->nfields; i++) {
        f = &ctx->fields[i];

        if (f->removed) {
            continue;
        }

        v = ngx_http_llm_body_field(ctx, f);

        if (v == NULL
            || json_object_setn(body, (const char *) f->m.key, f->m.key_len,
                                v)
               != 0)
        {
            return NGX_ERROR;
        }
    }

    if (ctx->model_id && json_object_set(body, "model", ctx->model_id) != 0) {
        return NGX_ERROR;
    }

    ctx->body = body;

    return NGX_OK;
}


/* routing fields taken out of the request: "keys", NULL-terminated */

void
ngx_http_llm_body_strip(ngx_http_llm_ctx_t *ctx, const char **keys)
{
    ngx_uint_t             i, k;
    ngx_http_llm_field_t  *f;

    for (i = 0; i < ctx->nfields; i++) {
        f = &ctx->fields[i];

        for (k = 0; keys[k]; k++) {
            if (f->m.key_len == ngx_strlen(keys[k])
                && ngx_memcmp(f->m.key, keys[k], f->m.key_len) == 0)
            {
                f->removed = 1;
                break;
            }
        }
    }
}


/* a member's value parsed, once; it lives as long as the request */

static json_t *
ngx_http_llm_body_field(ngx_http_llm_ctx_t *ctx, ngx_http_llm_field_t *f)
{
    json_t        *v;
    json_error_t   err;

    if (f->value) {
        return f->value;
    }

    v = ngx_http_llm_body_value(&f->m, &err);
    if (v == NULL) {
        /* the scanner let through what jansson does not take */
        ngx_log_error(NGX_LOG_ALERT, ctx->request->connection->log, 0,
                      "llm: the request's \"%*s\" did not parse: %s",
                      f->m.key_len, f->m.key, err.text);
        return NULL;
    }

    if (ngx_http_llm_json_own(ctx->request->pool, v) != NGX_OK) {
        return NULL;
    }

    f->value = v;

    return v;
}


/*
 * A member's value as jansson would have it: strings without escapes,
 * integers and literals made directly (the scanner checked them), the
 * rest parsed.
 */

static json_t *
ngx_http_llm_body_value(ngx_http_llm_member_t *m, json_error_t *err)
{
    u_char      *p, *last;
    json_int_t   n;
    ngx_uint_t   neg;

    switch (m->type) {

    case 't':
        return json_true();

    case 'f':
        return json_false();

    case 'n':
        return json_null();

    case '"':
        if (memchr(m->value, '\\', m->value_len) == NULL) {
            return json_stringn_nocheck((const char *) m->value + 1,
                                        m->value_len - 2);
        }

        break;

    case '0':
        p = m->value;
        last = p + m->value_len;

        if (ngx_strlchr(p, last, '.') || ngx_strlchr(p, last, 'e')
            || ngx_strlchr(p, last, 'E') || m->value_len > 18)
        {
            break;
        }

        neg = (*p == '-');
        n = 0;

        for (p += neg; p < last; p++) {
            n = n * 10 + (*p - '0');
        }

        return json_integer(neg ? -n : n);

    default:
        break;
    }

    return json_loadb((const char *) m->value, m->value_len,
                      JSON_DECODE_ANY|JSON_ALLOW_NUL, err);
}


/* whether a member is the one kept as the client's bytes */

static ngx_inline ngx_uint_t
ngx_http_llm_body_is_raw(ngx_http_llm_member_t *m, const char *raw)
{
    return m->key_len == ngx_strlen(raw)
           && ngx_memcmp(m->key, raw, m->key_len) == 0;
}


/* the member kept as the client's bytes, by API */

static const char *
ngx_http_llm_body_raw_name(ngx_uint_t api)
{
    switch (api) {

    case NGX_HTTP_LLM_API_CHAT:
        return "messages";

    case NGX_HTTP_LLM_API_COMPLETIONS:
        return "prompt";

    case NGX_HTTP_LLM_API_EMBEDDINGS:
        return "input";

    default:
        return NULL;
    }
}


/* the conversation parsed into ctx->body, for those who read it */

ngx_int_t
ngx_http_llm_body_full(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    json_t        *v;
    json_error_t   err;

    if (ngx_http_llm_body_object(ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ctx->has_raw) {
        return NGX_OK;
    }

    v = json_loadb((const char *) ctx->raw.value, ctx->raw.value_len,
                   JSON_DECODE_ANY|JSON_ALLOW_NUL, &err);
    if (v == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "llm: the request's \"%*s\" did not parse: %s",
                      ctx->raw.key_len, ctx->raw.key, err.text);
        return NGX_ERROR;
    }

    if (json_object_setn_new(ctx->body, (const char *) ctx->raw.key,
                             ctx->raw.key_len, v)
        != 0)
    {
        return NGX_ERROR;
    }

    ctx->has_raw = 0;

    return NGX_OK;
}


/*
 * What the conversation is, without parsing it: its JSON type, and for
 * "messages" a non-empty array of objects with a string "role".  NULL,
 * or the problem (with "bad", the index of the message at fault), or ""
 * when a message without a plain "role" has a key written with escapes:
 * jansson's reading decides then.
 */

const char *
ngx_http_llm_body_check(ngx_http_llm_ctx_t *ctx, size_t *bad)
{
    u_char                 *p, *last, type;
    size_t                  i;
    ngx_int_t               rc;
    ngx_uint_t              escaped, keys, role;
    ngx_http_llm_member_t   m;

    if (!ctx->has_raw) {
        return NULL;
    }

    type = ctx->raw.type;

    if (ctx->api != NGX_HTTP_LLM_API_CHAT) {
        if (type == '"' || type == '[') {
            return NULL;
        }

        return (ctx->api == NGX_HTTP_LLM_API_COMPLETIONS)
               ? "The \"prompt\" field must be a string or an array"
               : "The \"input\" field must be a string or an array";
    }

    if (type != '[') {
        return "The \"messages\" field must be a non-empty array";
    }

    /* each message read once: its members up to its closing brace */

    p = ctx->raw.value + 1;
    last = ctx->raw.value + ctx->raw.value_len;

    for (i = 0; /* void */; i++) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == '\n'
                            || *p == '\r' || (*p == ',' && i > 0)))
        {
            p++;
        }

        if (p == last) {
            return "The \"messages\" field must be a non-empty array";
        }

        if (*p == ']') {
            break;
        }

        if (*p != '{') {
            *bad = i;
            return "messages[%uz] must be an object with a string \"role\"";
        }

        keys = 0;
        role = 0;

        while ((rc = ngx_http_llm_scan_pair(&p, last, &m, &escaped))
               == NGX_OK)
        {
            keys |= escaped;

            if (!escaped && m.key_len == 4
                && ngx_memcmp(m.key, "role", 4) == 0)
            {
                /* the last of duplicates wins, as in jansson */
                role = (m.type == '"');
            }
        }

        if (rc != NGX_DONE) {
            return "The \"messages\" field must be a non-empty array";
        }

        if (keys) {
            /* a key written with escapes may be "role": jansson decides */
            return "";
        }

        if (!role) {
            *bad = i;
            return "messages[%uz] must be an object with a string \"role\"";
        }
    }

    if (i == 0) {
        return "The \"messages\" field must be a non-empty array";
    }

    return NULL;
}


/*
 * "root" serialized into "sb", with the conversation kept as the client's
 * bytes put back in: {...,"messages":<the client's bytes>}.  The client's
 * own request (root is ctx->body) is written from the client's bytes
 * where the router left a member as it was: only what it changed or
 * added is serialized.
 */

ngx_int_t
ngx_http_llm_body_dump(ngx_pool_t *pool, ngx_http_llm_ctx_t *ctx,
    json_t *root, ngx_http_llm_sbuf_t *sb)
{
    u_char  *p;

    sb->len = 0;

    if (ngx_http_llm_sbuf_reserve(pool, sb, ctx->body_len + 256) != NGX_OK) {
        return NGX_ERROR;
    }

    if (root == ctx->body && ctx->fields) {
        if (ngx_http_llm_body_write(pool, ctx, sb) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (ngx_http_llm_json_append(pool, root, sb) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ctx->has_raw || root != ctx->body) {
        return NGX_OK;
    }

    /* "{...}": its closing brace becomes ',' (or nothing after "{") */

    if (sb->len < 2 || sb->data[sb->len - 1] != '}') {
        return NGX_ERROR;
    }

    sb->len -= 1;

    if (ngx_http_llm_sbuf_reserve(pool, sb,
                                  ctx->raw.key_len + ctx->raw.value_len + 5)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = sb->data + sb->len;

    if (sb->len > 1) {
        *p++ = ',';
    }

    *p++ = '"';
    p = ngx_cpymem(p, ctx->raw.key, ctx->raw.key_len);
    *p++ = '"';
    *p++ = ':';
    p = ngx_cpymem(p, ctx->raw.value, ctx->raw.value_len);
    *p++ = '}';

    sb->len = p - sb->data;

    return NGX_OK;
}


/*
 * The client's own request (ctx->body) for an OpenAI-dialect provider, as
 * a chain: what the router writes ("{...,\"messages\":"), the client's
 * own bytes of the conversation, not copied, and "}".  NGX_DECLINED when
 * the request is not held that way: ngx_http_llm_body_dump() then.
 */

ngx_int_t
ngx_http_llm_body_chain(ngx_pool_t *pool, ngx_http_llm_ctx_t *ctx,
    ngx_chain_t **out, size_t *len)
{
    ngx_buf_t            *b[3];
    ngx_uint_t            i;
    ngx_chain_t          *cl, **ll;
    ngx_http_llm_sbuf_t   sb;

    static u_char         close[] = "}";

    if (!ctx->has_raw || ctx->fields == NULL) {
        return NGX_DECLINED;
    }

    ngx_memzero(&sb, sizeof(ngx_http_llm_sbuf_t));

    if (ngx_http_llm_sbuf_reserve(pool, &sb, 256 + ctx->body_len
                                             - ctx->raw.value_len)
        != NGX_OK
        || ngx_http_llm_body_write(pool, ctx, &sb) != NGX_OK
        || ngx_http_llm_sbuf_reserve(pool, &sb, ctx->raw.key_len + 4)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* "{...}": its closing brace becomes ',' (or nothing after "{") */

    sb.len--;

    if (sb.len > 1) {
        sb.data[sb.len++] = ',';
    }

    sb.data[sb.len++] = '"';
    ngx_memcpy(sb.data + sb.len, ctx->raw.key, ctx->raw.key_len);
    sb.len += ctx->raw.key_len;
    sb.data[sb.len++] = '"';
    sb.data[sb.len++] = ':';

    for (i = 0; i < 3; i++) {
        b[i] = ngx_calloc_buf(pool);
        if (b[i] == NULL) {
            return NGX_ERROR;
        }

        b[i]->memory = 1;
    }

    /* upstream rewinds request buffers to "start" when it retries */

    b[0]->start = sb.data;
    b[0]->end = sb.data + sb.len;
    b[1]->start = ctx->raw.value;
    b[1]->end = ctx->raw.value + ctx->raw.value_len;
    b[2]->start = close;
    b[2]->end = close + 1;
    b[2]->last_buf = 1;

    ll = out;

    for (i = 0; i < 3; i++) {
        b[i]->pos = b[i]->start;
        b[i]->last = b[i]->end;

        cl = ngx_alloc_chain_link(pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = b[i];
        *ll = cl;
        ll = &cl->next;
    }

    *ll = NULL;
    *len = sb.len + ctx->raw.value_len + 1;

    return NGX_OK;
}


/*
 * The client's request as jansson would write ctx->body (its members in
 * their order), each member the router did not touch as the client wrote
 * it.
 */

static ngx_int_t
ngx_http_llm_body_write(ngx_pool_t *pool, ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_sbuf_t *sb)
{
    void                  *it;
    size_t                 klen, n;
    json_t                *v;
    ngx_uint_t             i;
    const char            *key;
    ngx_http_llm_field_t  *f;

    sb->data[sb->len++] = '{';

    if (ctx->body == NULL) {
        if (ngx_http_llm_body_write_fields(pool, ctx, sb) != NGX_OK) {
            return NGX_ERROR;
        }

        goto close;
    }

    for (it = json_object_iter(ctx->body);
         it;
         it = json_object_iter_next(ctx->body, it))
    {
        key = json_object_iter_key(it);
        klen = json_object_iter_key_len(it);
        v = json_object_iter_value(it);

        f = NULL;

        for (i = 0; i < ctx->nfields; i++) {
            if (ctx->fields[i].m.key_len == klen
                && ngx_memcmp(ctx->fields[i].m.key, key, klen) == 0)
            {
                f = &ctx->fields[i];
                break;
            }
        }

        n = klen + 4 + ((f && f->value == v) ? f->m.value_len : 0);

        if (ngx_http_llm_sbuf_reserve(pool, sb, n) != NGX_OK) {
            return NGX_ERROR;
        }

        if (sb->len > 1) {
            sb->data[sb->len++] = ',';
        }

        if (f) {
            /* a key the scanner took: without escapes */
            sb->data[sb->len++] = '"';
            ngx_memcpy(sb->data + sb->len, key, klen);
            sb->len += klen;
            sb->data[sb->len++] = '"';

        } else if (ngx_http_llm_body_string(pool, (u_char *) key, klen, sb)
                   != NGX_OK)
        {
            return NGX_ERROR;
        }

        sb->data[sb->len++] = ':';

        if (f && f->value == v) {
            ngx_memcpy(sb->data + sb->len, f->m.value, f->m.value_len);
            sb->len += f->m.value_len;
            continue;
        }

        if (json_is_string(v)) {
            if (ngx_http_llm_body_string(pool, (u_char *) json_string_value(v),
                                         json_string_length(v), sb)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (ngx_http_llm_json_append(pool, v, sb) != NGX_OK) {
            return NGX_ERROR;
        }
    }

close:

    if (ngx_http_llm_sbuf_reserve(pool, sb, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    sb->data[sb->len++] = '}';

    return NGX_OK;
}


/*
 * The members as the client wrote them, but the routing fields taken out
 * and the attempt's model id in the place of the client's (or last); the
 * caller writes the braces.
 */

static ngx_int_t
ngx_http_llm_body_write_fields(ngx_pool_t *pool, ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_sbuf_t *sb)
{
    ngx_uint_t             i, model;
    ngx_http_llm_field_t  *f;

    model = (ctx->model_id == NULL);

    for (i = 0; i < ctx->nfields; i++) {
        f = &ctx->fields[i];

        if (f->removed) {
            continue;
        }

        if (ngx_http_llm_sbuf_reserve(pool, sb,
                                      f->m.key_len + f->m.value_len + 4)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (sb->len > 1) {
            sb->data[sb->len++] = ',';
        }

        sb->data[sb->len++] = '"';
        ngx_memcpy(sb->data + sb->len, f->m.key, f->m.key_len);
        sb->len += f->m.key_len;
        sb->data[sb->len++] = '"';
        sb->data[sb->len++] = ':';

        if (!model && f->m.key_len == 5
            && ngx_memcmp(f->m.key, "model", 5) == 0)
        {
            model = 1;

            if (ngx_http_llm_body_model(pool, ctx, sb) != NGX_OK) {
                return NGX_ERROR;
            }

            continue;
        }

        ngx_memcpy(sb->data + sb->len, f->m.value, f->m.value_len);
        sb->len += f->m.value_len;
    }

    if (!model) {
        if (ngx_http_llm_sbuf_reserve(pool, sb, 9) != NGX_OK) {
            return NGX_ERROR;
        }

        if (sb->len > 1) {
            sb->data[sb->len++] = ',';
        }

        ngx_memcpy(sb->data + sb->len, "\"model\":", 8);
        sb->len += 8;

        return ngx_http_llm_body_model(pool, ctx, sb);
    }

    return NGX_OK;
}


/* the attempt's model id, a JSON string */

static ngx_int_t
ngx_http_llm_body_model(ngx_pool_t *pool, ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_sbuf_t *sb)
{
    return ngx_http_llm_body_string(pool,
                                    (u_char *) json_string_value(ctx->model_id),
                                    json_string_length(ctx->model_id), sb);
}


/* a string as jansson writes one: quoted, and escaped where it must be */

static ngx_int_t
ngx_http_llm_body_string(ngx_pool_t *pool, u_char *s, size_t len,
    ngx_http_llm_sbuf_t *sb)
{
    size_t      i, n;
    json_t     *str;

    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == '"' || s[i] == '\\') {
            break;
        }
    }

    if (i == len) {
        if (ngx_http_llm_sbuf_reserve(pool, sb, len + 2) != NGX_OK) {
            return NGX_ERROR;
        }

        sb->data[sb->len++] = '"';
        ngx_memcpy(sb->data + sb->len, s, len);
        sb->len += len;
        sb->data[sb->len++] = '"';

        return NGX_OK;
    }

    str = json_stringn_nocheck((const char *) s, len);
    if (str == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_llm_sbuf_reserve(pool, sb, 6 * len + 2) != NGX_OK) {
        json_decref(str);
        return NGX_ERROR;
    }

    n = json_dumpb(str, (char *) sb->data + sb->len, sb->size - sb->len,
                   JSON_ENCODE_ANY);

    json_decref(str);

    if (n == 0 || n > sb->size - sb->len) {
        return NGX_ERROR;
    }

    sb->len += n;

    return NGX_OK;
}
