
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"

#include <math.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif


/*
 * A JSON scanner for the request path: it checks a body and finds its
 * top-level members without building anything, so that what the router
 * does not need to look into (a conversation of 32 KiB) is passed on as
 * the client's own bytes instead of being parsed and serialized again.
 *
 * It accepts what jansson accepts (the same grammar, UTF-8 checks,
 * escapes and surrogate pairs, nesting depth, integers that fit 64 bits
 * and reals that do not overflow), and says NGX_DECLINED for what it does
 * not want to decide itself (a key with escapes, a long real number): the
 * caller then parses with jansson.  tools/fuzz/fuzz_scan.c holds it to
 * jansson's verdicts.
 *
 * Needs nothing of nginx but its types: the fuzz targets link it as is.
 */


#define NGX_HTTP_LLM_SCAN_DEPTH  2048     /* jansson's JSON_PARSER_MAX_DEPTH */

/* what ngx_http_llm_scan_string() saw */
#define NGX_HTTP_LLM_SCAN_ESCAPED  1
#define NGX_HTTP_LLM_SCAN_NUL      2      /* a \u0000 */


static ngx_int_t ngx_http_llm_scan_members(u_char **pos, u_char *last,
    ngx_http_llm_member_t *members, ngx_uint_t max, ngx_uint_t *n,
    ngx_uint_t level, ngx_http_llm_scan_inner_t *inner);
static ngx_int_t ngx_http_llm_scan_value(u_char **pos, u_char *last,
    ngx_uint_t level, ngx_uint_t trusted, u_char *type);
static ngx_int_t ngx_http_llm_scan_skip(u_char **pos, u_char *last);
static ngx_inline ngx_int_t ngx_http_llm_scan_str(u_char **pos,
    u_char *last, ngx_uint_t *escaped);
static ngx_int_t ngx_http_llm_scan_string(u_char **pos, u_char *last,
    ngx_uint_t *escaped);
static ngx_int_t ngx_http_llm_scan_number(u_char **pos, u_char *last);
static ngx_int_t ngx_http_llm_scan_utf8(u_char **pos, u_char *last);
static ngx_int_t ngx_http_llm_scan_hex4(u_char *p, ngx_uint_t *cp);
static ngx_inline u_char *ngx_http_llm_scan_space(u_char *p, u_char *last);
static ngx_inline u_char *ngx_http_llm_scan_plain(u_char *p, u_char *last);


/*
 * p..last is one JSON object: NGX_OK, its members in "members" (at most
 * "max"; more is NGX_DECLINED); NGX_ERROR: not JSON, or not an object;
 * NGX_DECLINED: ask jansson.
 */

ngx_int_t
ngx_http_llm_scan_object(u_char *p, u_char *last,
    ngx_http_llm_member_t *members, ngx_uint_t max, ngx_uint_t *n)
{
    return ngx_http_llm_scan_object_in(p, last, members, max, n, NULL);
}


/*
 * The same, and the members of the object that is the value of the
 * member inner->name (the last, if several), found in the same pass:
 * inner->found, inner->members and inner->n.  Keys with escapes, or more
 * members than inner->max, in that object too are NGX_DECLINED.
 */

ngx_int_t
ngx_http_llm_scan_object_in(u_char *p, u_char *last,
    ngx_http_llm_member_t *members, ngx_uint_t max, ngx_uint_t *n,
    ngx_http_llm_scan_inner_t *inner)
{
    ngx_int_t  rc;

    *n = 0;

    if (inner) {
        inner->found = 0;
        inner->n = 0;
    }

    p = ngx_http_llm_scan_space(p, last);

    if (p == last || *p != '{') {
        return NGX_ERROR;
    }

    rc = ngx_http_llm_scan_members(&p, last, members, max, n, 1, inner);
    if (rc != NGX_OK) {
        return rc;
    }

    p = ngx_http_llm_scan_space(p, last);

    return (p == last) ? NGX_OK : NGX_ERROR;
}


/*
 * An object's members, *pos at its '{', then past its '}'; their values
 * are held by "level" containers.
 */

static ngx_int_t
ngx_http_llm_scan_members(u_char **pos, u_char *last,
    ngx_http_llm_member_t *members, ngx_uint_t max, ngx_uint_t *n,
    ngx_uint_t level, ngx_http_llm_scan_inner_t *inner)
{
    u_char                 *p, *start;
    ngx_int_t               rc;
    ngx_uint_t              escaped;
    ngx_http_llm_member_t  *m;

    *n = 0;

    p = ngx_http_llm_scan_space(*pos + 1, last);

    if (p < last && *p == '}') {
        *pos = p + 1;
        return NGX_OK;
    }

    for ( ;; ) {

        if (p == last || *p != '"') {
            return NGX_ERROR;
        }

        if (*n == max) {
            return NGX_DECLINED;
        }

        m = &members[(*n)++];

        start = ++p;

        rc = ngx_http_llm_scan_str(&p, last, &escaped);
        if (rc != NGX_OK) {
            return rc;
        }

        if (escaped) {
            /* "\u006dodel" is "model": jansson knows best */
            return NGX_DECLINED;
        }

        m->key = start;
        m->key_len = p - 1 - start;

        p = ngx_http_llm_scan_space(p, last);

        if (p == last || *p != ':') {
            return NGX_ERROR;
        }

        p = ngx_http_llm_scan_space(p + 1, last);

        m->value = p;

        if (inner && p < last && *p == '{'
            && m->key_len == inner->name_len
            && ngx_memcmp(m->key, inner->name, m->key_len) == 0)
        {
            m->type = '{';
            inner->found = 1;

            rc = ngx_http_llm_scan_members(&p, last, inner->members,
                                           inner->max, &inner->n, level + 1,
                                           NULL);

        } else if (p < last && *p == '"') {
            /* most members are strings and numbers: without a call */
            m->type = '"';
            p++;
            rc = ngx_http_llm_scan_str(&p, last, &escaped);

        } else if (p < last && (*p == '-' || (*p >= '0' && *p <= '9'))) {
            m->type = '0';
            rc = ngx_http_llm_scan_number(&p, last);

        } else {
            rc = ngx_http_llm_scan_value(&p, last, level, 0, &m->type);
        }

        if (rc != NGX_OK) {
            return rc;
        }

        m->value_len = p - m->value;

        p = ngx_http_llm_scan_space(p, last);

        if (p < last && *p == ',') {
            p = ngx_http_llm_scan_space(p + 1, last);
            continue;
        }

        if (p < last && *p == '}') {
            *pos = p + 1;
            return NGX_OK;
        }

        return NGX_ERROR;
    }
}


/*
 * The elements of an array that the scanner has checked: call with
 * *pos at its '['; each call gives the next element in value/len/type and
 * NGX_OK, then NGX_DONE after the last.
 */

ngx_int_t
ngx_http_llm_scan_next(u_char **pos, u_char *last, u_char **value,
    size_t *len, u_char *type)
{
    u_char     *p;
    ngx_int_t   rc;

    p = *pos;

    if (p < last && *p == '[') {
        p = ngx_http_llm_scan_space(p + 1, last);

        if (p < last && *p == ']') {
            *pos = p + 1;
            return NGX_DONE;
        }

    } else {
        p = ngx_http_llm_scan_space(p, last);

        if (p < last && *p == ']') {
            *pos = p + 1;
            return NGX_DONE;
        }

        if (p == last || *p != ',') {
            return NGX_ERROR;
        }

        p = ngx_http_llm_scan_space(p + 1, last);
    }

    *value = p;

    rc = ngx_http_llm_scan_value(&p, last, 0, 1, type);
    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    *len = p - *value;
    *pos = p;

    return NGX_OK;
}


/*
 * In a checked object (value..value + len): the member "name" (without
 * escapes in its key), as value/len/type; NGX_DECLINED when there is none.
 */

ngx_int_t
ngx_http_llm_scan_member(u_char *value, size_t len, const char *name,
    ngx_http_llm_member_t *out)
{
    ngx_uint_t  escaped_keys;

    return ngx_http_llm_scan_lookup(value, len, name, out, &escaped_keys);
}


/*
 * The same, and whether any key of the object has an escape: one that
 * may stand for "name" (jansson decodes keys), so that a reader that must
 * see what jansson sees can tell it cannot.
 */

ngx_int_t
ngx_http_llm_scan_lookup(u_char *value, size_t len, const char *name,
    ngx_http_llm_member_t *out, ngx_uint_t *escaped_keys)
{
    u_char                 *p, *last;
    size_t                  name_len;
    ngx_int_t               rc, found;
    ngx_uint_t              escaped;
    ngx_http_llm_member_t   m;

    p = value;
    last = value + len;
    name_len = ngx_strlen(name);
    found = NGX_DECLINED;
    *escaped_keys = 0;

    if (p == last || *p != '{') {
        return NGX_ERROR;
    }

    for ( ;; ) {
        rc = ngx_http_llm_scan_pair(&p, last, &m, &escaped);

        if (rc == NGX_DONE) {
            return found;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        if (escaped) {
            *escaped_keys = 1;
            continue;
        }

        if (m.key_len == name_len && ngx_memcmp(m.key, name, name_len) == 0) {
            /* the last of duplicates wins, as in jansson */
            *out = m;
            found = NGX_OK;
        }
    }
}


/*
 * The members of an object that the scanner has checked: call with *pos
 * at its '{'; each call gives the next member in "m" (its key as written,
 * "escaped" set when that has an escape) and NGX_OK, then NGX_DONE after
 * the last.
 */

ngx_int_t
ngx_http_llm_scan_pair(u_char **pos, u_char *last, ngx_http_llm_member_t *m,
    ngx_uint_t *escaped)
{
    u_char  *p;

    p = *pos;

    if (p < last && *p == '{') {
        p = ngx_http_llm_scan_space(p + 1, last);

    } else {
        p = ngx_http_llm_scan_space(p, last);

        if (p == last || *p != ',') {
            if (p < last && *p == '}') {
                *pos = p + 1;
                return NGX_DONE;
            }

            return NGX_ERROR;
        }

        p = ngx_http_llm_scan_space(p + 1, last);
    }

    if (p < last && *p == '}') {
        *pos = p + 1;
        return NGX_DONE;
    }

    if (p == last || *p != '"') {
        return NGX_ERROR;
    }

    m->key = ++p;

    /* most keys are plain ASCII: their end found without a call */

    p = ngx_http_llm_scan_plain(p, last);

    if (p < last && *p == '"') {
        p++;
        *escaped = 0;

    } else {
        p = m->key;

        if (ngx_http_llm_scan_skip(&p, last) != NGX_OK) {
            return NGX_ERROR;
        }

        *escaped = (memchr(m->key, '\\', p - 1 - m->key) != NULL);
    }

    m->key_len = p - 1 - m->key;

    p = ngx_http_llm_scan_space(p, last);

    if (p == last || *p != ':') {
        return NGX_ERROR;
    }

    p = ngx_http_llm_scan_space(p + 1, last);
    m->value = p;

    if (ngx_http_llm_scan_value(&p, last, 0, 1, &m->type) != NGX_OK) {
        return NGX_ERROR;
    }

    m->value_len = p - m->value;
    *pos = p;

    return NGX_OK;
}


/*
 * One value, nested ones included, iteratively; *type is its first byte
 * ('{', '[', '"', 't', 'f', 'n' for null) or '0' for a number.  "level"
 * is how many containers hold it: as in jansson, no value may be deeper
 * than NGX_HTTP_LLM_SCAN_DEPTH, itself included.
 */

static ngx_int_t
ngx_http_llm_scan_value(u_char **pos, u_char *last, ngx_uint_t level,
    ngx_uint_t trusted, u_char *type)
{
    u_char      *p, c;
    ngx_int_t    rc;
    ngx_uint_t   depth, escaped;
    u_char       stack[NGX_HTTP_LLM_SCAN_DEPTH];

    p = *pos;
    depth = 0;

    if (p == last) {
        return NGX_ERROR;
    }

    c = *p;
    *type = (c == '-' || (c >= '0' && c <= '9')) ? '0' : c;

value:

    if (p == last || level + depth >= NGX_HTTP_LLM_SCAN_DEPTH) {
        return NGX_ERROR;
    }

    c = *p;

    switch (c) {

    case '{':
    case '[':
        stack[depth++] = c;
        p = ngx_http_llm_scan_space(p + 1, last);

        if (p == last) {
            return NGX_ERROR;
        }

        if (*p == (c == '{' ? '}' : ']')) {
            p++;
            depth--;
            goto next;
        }

        if (c == '[') {
            goto value;
        }

        goto key;

    case '"':
        p++;

        rc = trusted ? ngx_http_llm_scan_skip(&p, last)
                     : ngx_http_llm_scan_str(&p, last, &escaped);
        if (rc != NGX_OK) {
            return rc;
        }

        goto next;

    case 't':
        if (last - p < 4 || ngx_memcmp(p, "true", 4) != 0) {
            return NGX_ERROR;
        }

        p += 4;
        goto next;

    case 'f':
        if (last - p < 5 || ngx_memcmp(p, "false", 5) != 0) {
            return NGX_ERROR;
        }

        p += 5;
        goto next;

    case 'n':
        if (last - p < 4 || ngx_memcmp(p, "null", 4) != 0) {
            return NGX_ERROR;
        }

        p += 4;
        goto next;

    default:
        if (c != '-' && (c < '0' || c > '9')) {
            return NGX_ERROR;
        }

        if (trusted) {
            /* checked already: to its end */

            while (p < last && ((*p >= '0' && *p <= '9') || *p == '-'
                                || *p == '+' || *p == '.' || *p == 'e'
                                || *p == 'E'))
            {
                p++;
            }

            goto next;
        }

        rc = ngx_http_llm_scan_number(&p, last);
        if (rc != NGX_OK) {
            return rc;
        }

        goto next;
    }

key:

    /* p is at a member's key in an object */

    if (*p != '"') {
        return NGX_ERROR;
    }

    p++;

    if (trusted) {
        rc = ngx_http_llm_scan_skip(&p, last);
        escaped = 0;

    } else {
        rc = ngx_http_llm_scan_str(&p, last, &escaped);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    if (escaped & NGX_HTTP_LLM_SCAN_NUL) {
        /* jansson: "NUL byte in object key not supported" */
        return NGX_ERROR;
    }

    p = ngx_http_llm_scan_space(p, last);

    if (p == last || *p != ':') {
        return NGX_ERROR;
    }

    p = ngx_http_llm_scan_space(p + 1, last);

    goto value;

next:

    /* a value ended: what follows it in its container */

    if (depth == 0) {
        *pos = p;
        return NGX_OK;
    }

    p = ngx_http_llm_scan_space(p, last);

    if (p == last) {
        return NGX_ERROR;
    }

    if (*p == ',') {
        p = ngx_http_llm_scan_space(p + 1, last);

        if (p == last) {
            return NGX_ERROR;
        }

        if (stack[depth - 1] == '{') {
            goto key;
        }

        goto value;
    }

    if (*p == (stack[depth - 1] == '{' ? '}' : ']')) {
        p++;
        depth--;
        goto next;
    }

    return NGX_ERROR;
}


/*
 * A string after its opening quote: most are plain ASCII to their closing
 * quote, found here without a call; the rest is ngx_http_llm_scan_string()'s.
 */

static ngx_inline ngx_int_t
ngx_http_llm_scan_str(u_char **pos, u_char *last, ngx_uint_t *escaped)
{
    u_char  *q;

    q = ngx_http_llm_scan_plain(*pos, last);

    if (q < last && *q == '"') {
        *pos = q + 1;
        *escaped = 0;
        return NGX_OK;
    }

    *pos = q;

    return ngx_http_llm_scan_string(pos, last, escaped);
}


/*
 * A string's bytes after its opening quote, up to and past the closing
 * one: escapes as JSON has them (a \u high surrogate followed by a low
 * one; no lone low one), no control characters, valid UTF-8.
 */

static ngx_int_t
ngx_http_llm_scan_string(u_char **pos, u_char *last, ngx_uint_t *escaped)
{
    u_char      *p, c;
    ngx_uint_t   cp, lo;

    p = *pos;
    *escaped = 0;

    for ( ;; ) {

        p = ngx_http_llm_scan_plain(p, last);

        if (p == last) {
            return NGX_ERROR;
        }

        c = *p;

        if (c == '"') {
            *pos = p + 1;
            return NGX_OK;
        }

        if (c < 0x20) {
            return NGX_ERROR;
        }

        if (c >= 0x80) {
            if (ngx_http_llm_scan_utf8(&p, last) != NGX_OK) {
                return NGX_ERROR;
            }

            continue;
        }

        /* a backslash */

        *escaped |= NGX_HTTP_LLM_SCAN_ESCAPED;

        if (last - p < 2) {
            return NGX_ERROR;
        }

        c = p[1];

        switch (c) {

        case '"': case '\\': case '/': case 'b': case 'f': case 'n':
        case 'r': case 't':
            p += 2;
            continue;

        case 'u':
            if (last - p < 6 || ngx_http_llm_scan_hex4(p + 2, &cp) != NGX_OK)
            {
                return NGX_ERROR;
            }

            p += 6;

            if (cp == 0) {
                *escaped |= NGX_HTTP_LLM_SCAN_NUL;
            }

            if (cp >= 0xdc00 && cp <= 0xdfff) {
                /* a low surrogate alone */
                return NGX_ERROR;
            }

            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (last - p < 6 || p[0] != '\\' || p[1] != 'u'
                    || ngx_http_llm_scan_hex4(p + 2, &lo) != NGX_OK
                    || lo < 0xdc00 || lo > 0xdfff)
                {
                    return NGX_ERROR;
                }

                p += 6;
            }

            continue;

        default:
            return NGX_ERROR;
        }
    }
}


/*
 * The first byte from p on that is not plain ASCII in a string: below
 * 0x20, above 0x7f, '"' or '\\'; "last" if there is none.  32 and 16 bytes
 * at a time with SSE2 (a signed compare with 0x20 also takes the bytes
 * above 0x7f), then eight in a word: there a borrow can only flag a byte
 * above one that is flagged by right, so the lowest flag is the answer.
 */

static ngx_inline u_char *
ngx_http_llm_scan_plain(u_char *p, u_char *last)
{
    uint64_t  w;

#if defined(__SSE2__)
    unsigned  mask;
    __m128i   x, y, space, quote, backslash;

    space = _mm_set1_epi8(0x20);
    quote = _mm_set1_epi8('"');
    backslash = _mm_set1_epi8('\\');

#define ngx_http_llm_scan_flags(v)                                            \
    _mm_or_si128(_mm_cmplt_epi8(v, space),                                    \
                 _mm_or_si128(_mm_cmpeq_epi8(v, quote),                       \
                              _mm_cmpeq_epi8(v, backslash)))

    /* most strings are short: the first 16 bytes alone, then 32 at a time */

    if (last - p >= 16) {
        x = ngx_http_llm_scan_flags(_mm_loadu_si128((const __m128i *) p));
        mask = (unsigned) _mm_movemask_epi8(x);

        if (mask) {
            return p + __builtin_ctz(mask);
        }

        p += 16;
    }

    while (last - p >= 32) {
        x = ngx_http_llm_scan_flags(_mm_loadu_si128((const __m128i *) p));
        y = ngx_http_llm_scan_flags(
                _mm_loadu_si128((const __m128i *) (p + 16)));

        if (_mm_movemask_epi8(_mm_or_si128(x, y))) {
            mask = (unsigned) _mm_movemask_epi8(x)
                   | ((unsigned) _mm_movemask_epi8(y) << 16);
            return p + __builtin_ctz(mask);
        }

        p += 32;
    }

    if (last - p >= 16) {
        x = ngx_http_llm_scan_flags(_mm_loadu_si128((const __m128i *) p));
        mask = (unsigned) _mm_movemask_epi8(x);

        if (mask) {
            return p + __builtin_ctz(mask);
        }

        p += 16;
    }

#undef ngx_http_llm_scan_flags
#endif

    while (last - p >= 8) {
        ngx_memcpy(&w, p, 8);

        w = ((w - 0x2020202020202020ULL)
             | w
             | ((w ^ 0x2222222222222222ULL) - 0x0101010101010101ULL)
             | ((w ^ 0x5c5c5c5c5c5c5c5cULL) - 0x0101010101010101ULL))
            & 0x8080808080808080ULL;

        if (w) {
#if (defined __GNUC__ && defined __BYTE_ORDER__                              \
     && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
            return p + (__builtin_ctzll(w) >> 3);
#else
            break;
#endif
        }

        p += 8;
    }

    while (p < last && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
        p++;
    }

    return p;
}


/*
 * Past a string the scanner has already checked: its closing quote is
 * the first '"' after an even number of backslashes.
 */

static ngx_int_t
ngx_http_llm_scan_skip(u_char **pos, u_char *last)
{
    u_char  *p, *q, *b, *end;

    p = *pos;

    /* a short plain string ends in its first 16 bytes: found inline */

    end = (last - p > 16) ? p + 16 : last;
    q = ngx_http_llm_scan_plain(p, end);

    if (q < end && *q == '"') {
        *pos = q + 1;
        return NGX_OK;
    }

    for ( ;; ) {
        q = memchr(p, '"', last - p);

        if (q == NULL) {
            return NGX_ERROR;
        }

        for (b = q; b > *pos && b[-1] == '\\'; b--) {
            /* void */
        }

        if ((q - b) % 2 == 0) {
            *pos = q + 1;
            return NGX_OK;
        }

        p = q + 1;
    }
}


static ngx_int_t
ngx_http_llm_scan_hex4(u_char *p, ngx_uint_t *cp)
{
    u_char      c;
    ngx_uint_t  i, v;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = v * 16 + (c - '0');

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            v = v * 16 + ((c | 0x20) - 'a' + 10);

        } else {
            return NGX_ERROR;
        }
    }

    *cp = v;

    return NGX_OK;
}


/* one UTF-8 sequence of 2 to 4 bytes: no overlong form, no surrogate */

static ngx_int_t
ngx_http_llm_scan_utf8(u_char **pos, u_char *last)
{
    u_char      *p, c;
    ngx_uint_t   n, i, cp;

    p = *pos;
    c = *p;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 1;
        cp = c & 0x1f;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;
        cp = c & 0x0f;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;
        cp = c & 0x07;

    } else {
        return NGX_ERROR;
    }

    if ((size_t) (last - p) <= n) {
        return NGX_ERROR;
    }

    for (i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return NGX_ERROR;
        }

        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
        || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    {
        return NGX_ERROR;
    }

    *pos = p + n + 1;

    return NGX_OK;
}


/*
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and what jansson makes
 * of it: an integer that fits 64 bits, a real that does not overflow.
 */

static ngx_int_t
ngx_http_llm_scan_number(u_char **pos, u_char *last)
{
    u_char      *p, *start, buf[64];
    double       d;
    ngx_uint_t   real, digits, neg;
    uint64_t     v;

    p = start = *pos;
    real = 0;
    neg = 0;

    if (*p == '-') {
        neg = 1;
        p++;
    }

    if (p == last || *p < '0' || *p > '9') {
        return NGX_ERROR;
    }

    if (*p == '0') {
        p++;

        if (p < last && *p >= '0' && *p <= '9') {
            return NGX_ERROR;
        }

    } else {
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    digits = p - start - neg;

    if (p < last && *p == '.') {
        real = 1;
        p++;

        if (p == last || *p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == last || *p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    *pos = p;

    if (!real) {
        /* jansson's json_int_t is 64 bits: INT64_MIN .. INT64_MAX */

        if (digits < 19) {
            return NGX_OK;
        }

        if (digits > 19) {
            return NGX_ERROR;
        }

        v = 0;

        for (p = start + neg; p < *pos; p++) {
            v = v * 10 + (*p - '0');
        }

        return (v <= (uint64_t) INT64_MAX + neg) ? NGX_OK : NGX_ERROR;
    }

    if ((size_t) (p - start) >= sizeof(buf)) {
        return NGX_DECLINED;
    }

    ngx_memcpy(buf, start, p - start);
    buf[p - start] = '\0';

    /* jansson: an overflow is an error, an underflow is not */

    errno = 0;
    d = strtod((char *) buf, NULL);

    if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_inline u_char *
ngx_http_llm_scan_space(u_char *p, u_char *last)
{
    while (p < last && *p <= ' '
           && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


/*
 * A checked member's value as a whole number, as jansson reads one
 * (INT64_MIN to INT64_MAX): NGX_OK, or NGX_DECLINED.
 */

ngx_int_t
ngx_http_llm_scan_int(ngx_http_llm_member_t *m, int64_t *v)
{
    u_char      *p, *last;
    uint64_t     n;
    ngx_uint_t   neg;

    p = m->value;
    last = p + m->value_len;

    if (m->type != '0') {
        return NGX_DECLINED;
    }

    neg = (*p == '-');
    p += neg;

    if (last - p > 19) {
        return NGX_DECLINED;
    }

    n = 0;

    for ( /* void */ ; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_DECLINED;
        }

        n = n * 10 + (*p - '0');
    }

    if (n > (uint64_t) INT64_MAX + neg) {
        return NGX_DECLINED;
    }

    *v = neg ? (int64_t) (0 - n) : (int64_t) n;

    return NGX_OK;
}


/*
 * How long a checked string (value..value + len, its quotes included) is
 * decoded: what jansson's json_string_length() would say.
 */

size_t
ngx_http_llm_scan_strlen(u_char *value, size_t len)
{
    u_char      *p, *last, *bs;
    size_t       n;
    ngx_uint_t   cp;

    p = value + 1;
    last = value + len - 1;
    n = 0;

    while (p < last) {
        bs = memchr(p, '\\', last - p);

        if (bs == NULL) {
            return n + (last - p);
        }

        n += bs - p;
        p = bs + 1;

        if (p == last) {
            break;
        }

        if (*p != 'u') {
            n++;
            p++;
            continue;
        }

        if (last - p < 5 || ngx_http_llm_scan_hex4(p + 1, &cp) != NGX_OK) {
            break;
        }

        p += 5;

        if (cp >= 0xd800 && cp <= 0xdbff) {
            /* and its low surrogate, "\\uDC00" to "\\uDFFF" */
            n += 4;
            p += 6;
            continue;
        }

        n += (cp < 0x80) ? 1 : (cp < 0x800) ? 2 : 3;
    }

    return n;
}


/*
 * A checked string's contents (between its quotes, "len" bytes) decoded
 * into "dst", which has room for "len" bytes: the decoded string is never
 * longer.  Returns the end of what was written.
 */

u_char *
ngx_http_llm_scan_unescape(u_char *dst, u_char *src, size_t len)
{
    u_char      *last, *bs, c;
    ngx_uint_t   cp, lo;

    last = src + len;

    while (src < last) {

        bs = memchr(src, '\\', last - src);

        if (bs == NULL) {
            return ngx_cpymem(dst, src, last - src);
        }

        dst = ngx_cpymem(dst, src, bs - src);
        src = bs + 1;

        if (src == last) {
            break;
        }

        c = *src++;

        switch (c) {

        case 'b':
            *dst++ = '\b';
            continue;

        case 'f':
            *dst++ = '\f';
            continue;

        case 'n':
            *dst++ = '\n';
            continue;

        case 'r':
            *dst++ = '\r';
            continue;

        case 't':
            *dst++ = '\t';
            continue;

        case 'u':
            break;

        default:    /* '"', '\\', '/' */
            *dst++ = c;
            continue;
        }

        if (last - src < 4) {
            break;
        }

        if (ngx_http_llm_scan_hex4(src, &cp) != NGX_OK) {
            break;
        }

        src += 4;

        if (cp >= 0xd800 && cp <= 0xdbff && last - src >= 6
            && src[0] == '\\' && src[1] == 'u'
            && ngx_http_llm_scan_hex4(src + 2, &lo) == NGX_OK)
        {
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                src += 6;
            }
        }

        if (cp < 0x80) {
            *dst++ = (u_char) cp;

        } else if (cp < 0x800) {
            *dst++ = (u_char) (0xc0 | (cp >> 6));
            *dst++ = (u_char) (0x80 | (cp & 0x3f));

        } else if (cp < 0x10000) {
            *dst++ = (u_char) (0xe0 | (cp >> 12));
            *dst++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (cp & 0x3f));

        } else {
            *dst++ = (u_char) (0xf0 | (cp >> 18));
            *dst++ = (u_char) (0x80 | ((cp >> 12) & 0x3f));
            *dst++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (cp & 0x3f));
        }
    }

    return dst;
}
