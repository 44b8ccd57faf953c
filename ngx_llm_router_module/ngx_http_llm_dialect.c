
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_dialect.h"

#include <stdio.h>
#include <time.h>


/*
 * JSON helpers the translations share (ngx_http_llm_anthropic.c,
 * ngx_http_llm_gemini.c, ngx_http_llm_messages.c): pure, as they are.
 */


#define NGX_HTTP_LLM_DIALECT_JSON     (JSON_COMPACT|JSON_REAL_PRECISION(15))

/* token counts are clamped: no overflow when they are added */
#define NGX_HTTP_LLM_DIALECT_MAX_COUNT  ((json_int_t) 1 << 50)


/* tool call arguments serialized as "arguments" ("{}" when none) */

json_t *
ngx_http_llm_dialect_dump(json_t *value)
{
    char           *s;
    json_t         *out;
    json_free_t     free_fn;
    json_malloc_t   malloc_fn;

    if (value == NULL || json_is_null(value)) {
        return json_string("{}");
    }

    s = json_dumps(value, NGX_HTTP_LLM_DIALECT_JSON|JSON_ENCODE_ANY);
    if (s == NULL) {
        return NULL;
    }

    out = json_string(s);

    json_get_alloc_funcs(&malloc_fn, &free_fn);
    free_fn(s);

    return out;
}


/* tool call "arguments" (a JSON text, or an object) as an object */

json_t *
ngx_http_llm_dialect_parse_object(json_t *value)
{
    json_t  *obj;

    if (json_is_object(value)) {
        return json_incref(value);
    }

    if (json_is_string(value)) {
        obj = json_loadb(json_string_value(value), json_string_length(value),
                         0, NULL);

        if (json_is_object(obj)) {
            return obj;
        }

        json_decref(obj);
    }

    /* empty or malformed arguments: providers need an object */

    return json_object();
}


/* a string equal to "lit", the whole of it (a NUL inside is not its end) */

ngx_int_t
ngx_http_llm_dialect_is(json_t *s, const char *lit)
{
    size_t  len;

    if (!json_is_string(s)) {
        return 0;
    }

    len = ngx_strlen(lit);

    return json_string_length(s) == len
           && ngx_memcmp(json_string_value(s), lit, len) == 0;
}


/* a token count: a non-negative integer, clamped; 0 otherwise */

json_int_t
ngx_http_llm_dialect_count(json_t *v)
{
    json_int_t  n;

    if (!json_is_integer(v)) {
        return 0;
    }

    n = json_integer_value(v);

    if (n < 0) {
        return 0;
    }

    return ngx_min(n, NGX_HTTP_LLM_DIALECT_MAX_COUNT);
}


/* a positive integer, or a real of one or more; 0 otherwise */

json_int_t
ngx_http_llm_dialect_positive(json_t *v)
{
    double  f;

    if (json_is_integer(v)) {
        return json_integer_value(v) > 0
               ? ngx_min(json_integer_value(v),
                         NGX_HTTP_LLM_DIALECT_MAX_COUNT)
               : 0;
    }

    if (json_is_real(v)) {
        f = json_real_value(v);

        if (f >= 1.0 && f < (double) NGX_HTTP_LLM_DIALECT_MAX_COUNT) {
            return (json_int_t) f;
        }
    }

    return 0;
}


/*
 * Copies a provider's string into a fixed buffer: cut at a NUL, and, when
 * it does not fit, at a character boundary, so the copy stays UTF-8.
 */

void
ngx_http_llm_dialect_copy(char *dst, size_t size, const char *src,
    size_t len)
{
    size_t       n;
    const char  *nul;

    nul = memchr(src, '\0', len);

    if (nul != NULL) {
        len = nul - src;
    }

    n = ngx_min(len, size - 1);

    if (n < len) {
        while (n > 0 && (((u_char) src[n]) & 0xc0) == 0x80) {
            n--;
        }
    }

    ngx_memcpy(dst, src, n);
    dst[n] = '\0';
}


/* an id for an answer that came without one */

void
ngx_http_llm_dialect_make_id(char *dst, size_t size)
{
    static unsigned  seq;

    snprintf(dst, size, "chatcmpl-%lx%04x", (unsigned long) time(NULL),
             (seq++) & 0xffff);
}


/*
 * Building JSON without json_pack(), whose error paths in jansson 2.14
 * misread their arguments when a nested value is missing.  Every value is
 * stolen, also on failure, and a NULL object or value makes the result
 * NULL: a chain of calls needs one check at its end.
 */

json_t *
ngx_http_llm_dialect_set(json_t *obj, const char *key, json_t *value)
{
    if (json_object_set_new(obj, key, value) != 0) {
        json_decref(obj);
        return NULL;
    }

    return obj;
}


json_t *
ngx_http_llm_dialect_obj(const char *k1, json_t *v1, const char *k2,
    json_t *v2)
{
    json_t  *obj;

    obj = ngx_http_llm_dialect_set(json_object(), k1, v1);

    if (k2 == NULL) {
        json_decref(v2);
        return obj;
    }

    return ngx_http_llm_dialect_set(obj, k2, v2);
}


/* [value] */

json_t *
ngx_http_llm_dialect_list(json_t *value)
{
    json_t  *list;

    list = json_array();

    if (json_array_append_new(list, value) != 0) {
        json_decref(list);
        return NULL;
    }

    return list;
}


/* a canonical chunk around "choices" (stolen) */

json_t *
ngx_http_llm_dialect_chunk(ngx_http_llm_decoder_t *d, json_t *choices)
{
    json_t  *chunk;

    chunk = ngx_http_llm_dialect_obj("id", json_string(d->id),
                                     "object",
                                     json_string("chat.completion.chunk"));
    chunk = ngx_http_llm_dialect_set(chunk, "created",
                                     json_integer(d->created));

    return ngx_http_llm_dialect_set(chunk, "choices", choices);
}
