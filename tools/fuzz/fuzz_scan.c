
/*
 * Copyright (C) The ngx_llm_router authors
 */


/*
 * The request path's JSON scanner (ngx_http_llm_scan.c) against jansson,
 * which it stands in for: the router passes a conversation the scanner
 * accepted to providers without parsing it, so the two must agree.
 *
 * Checks, besides ASan and UBSan, on any input:
 *   - ngx_http_llm_scan_object() says NGX_OK only for what jansson parses
 *     as an object, and NGX_ERROR only for what jansson refuses or parses
 *     as something else (NGX_DECLINED leaves it to jansson: no check; so
 *     does NGX_ERROR in the module, so a stricter scanner costs time, not
 *     correctness);
 *   - for NGX_OK, its members are jansson's: every value's bytes parse
 *     (alone) to what jansson has under that key, the last of duplicates
 *     winning, and no key is missing;
 *   - ngx_http_llm_scan_next() walks an array member's elements as jansson
 *     has them, and ngx_http_llm_scan_lookup() finds an object element's
 *     "role" as jansson does, or says a key has an escape;
 *   - ngx_http_llm_scan_unescape() decodes every string value the scanner
 *     found to jansson's bytes.
 */


#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"


#define FUZZ_MEMBERS  64


static json_t *
fuzz_parse(const u_char *p, size_t len)
{
    return json_loadb((const char *) p, len, JSON_DECODE_ANY|JSON_ALLOW_NUL,
                      NULL);
}


static void
fuzz_check_member(const u_char *value, size_t len, json_t *expect,
    const char *what)
{
    u_char  *text, *end;
    json_t  *v;

    v = fuzz_parse(value, len);

    if (v == NULL) {
        FUZZ_FAIL("%s: the scanner's bytes do not parse alone", what);
    }

    if (!json_equal(v, expect)) {
        FUZZ_FAIL("%s: the scanner's value is not jansson's", what);
    }

    json_decref(v);

    if (!json_is_string(expect)) {
        return;
    }

    /* exactly the room it is said to need */

    text = malloc(len - 2 ? len - 2 : 1);
    if (text == NULL) {
        FUZZ_FAIL("out of memory");
    }

    end = ngx_http_llm_scan_unescape(text, (u_char *) value + 1, len - 2);

    if ((size_t) (end - text) != json_string_length(expect)
        || memcmp(text, json_string_value(expect), end - text) != 0)
    {
        FUZZ_FAIL("%s: ngx_http_llm_scan_unescape() is not jansson's", what);
    }

    free(text);
}


static void
fuzz_check_array(u_char *value, size_t len, json_t *array)
{
    u_char                 *p, *elt, type;
    size_t                  elen, i;
    ngx_int_t               rc;
    json_t                 *e;
    ngx_uint_t              escaped;
    ngx_http_llm_member_t   m;

    p = value;

    for (i = 0; /* void */; i++) {
        rc = ngx_http_llm_scan_next(&p, value + len, &elt, &elen, &type);

        if (rc == NGX_DONE) {
            break;
        }

        if (rc != NGX_OK) {
            FUZZ_FAIL("ngx_http_llm_scan_next() failed in a checked array");
        }

        e = json_array_get(array, i);

        if (e == NULL) {
            FUZZ_FAIL("ngx_http_llm_scan_next() found more elements");
        }

        fuzz_check_member(elt, elen, e, "an array element");

        if (type != '{') {
            continue;
        }

        rc = ngx_http_llm_scan_lookup(elt, elen, "role", &m, &escaped);

        if (rc == NGX_OK && !escaped) {
            fuzz_check_member(m.value, m.value_len,
                              json_object_get(e, "role"), "\"role\"");

        } else if (rc == NGX_OK || rc == NGX_DECLINED) {
            /*
             * an escaped key is not looked at, by design, but it is
             * reported: it may be "role", or a later duplicate of it
             */
            if (json_object_get(e, "role") != NULL && !escaped) {
                FUZZ_FAIL("ngx_http_llm_scan_lookup() missed \"role\"");
            }

            if (escaped && memchr(elt, '\\', elen) == NULL) {
                FUZZ_FAIL("ngx_http_llm_scan_lookup() saw an escape "
                          "in no key");
            }

        } else {
            FUZZ_FAIL("ngx_http_llm_scan_member() failed on an object");
        }
    }

    if (i != json_array_size(array)) {
        FUZZ_FAIL("ngx_http_llm_scan_next() found %zu elements, not %zu",
                  i, json_array_size(array));
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                 *buf;
    char                    key[1024];
    json_t                 *root, *v;
    ngx_int_t               rc;
    ngx_uint_t              n, i, j, last;
    ngx_http_llm_member_t   m[FUZZ_MEMBERS];

    /* a copy of exactly its size: any read past the end is caught */

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        FUZZ_FAIL("out of memory");
    }

    memcpy(buf, data, size);

    rc = ngx_http_llm_scan_object(buf, buf + size, m, FUZZ_MEMBERS, &n);

    root = json_loadb((const char *) buf, size, JSON_ALLOW_NUL, NULL);

    /*
     * jansson skips a NUL byte after a number (its lexer's look-ahead):
     * the scanner refuses it, as JSON does; the module then asks jansson
     */

    if (rc == NGX_ERROR && json_is_object(root)
        && memchr(buf, '\0', size) == NULL)
    {
        FUZZ_FAIL("the scanner refused an object jansson takes");
    }

    if (rc == NGX_OK) {
        if (!json_is_object(root)) {
            FUZZ_FAIL("the scanner took what jansson %s",
                      root ? "takes as no object" : "refuses");
        }

        for (i = 0; i < n; i++) {
            if (m[i].key_len >= sizeof(key) || memchr(m[i].key, '\0',
                                                      m[i].key_len))
            {
                continue;
            }

            /* the last member of this name is the one jansson has */

            last = i;

            for (j = i + 1; j < n; j++) {
                if (m[j].key_len == m[i].key_len
                    && memcmp(m[j].key, m[i].key, m[i].key_len) == 0)
                {
                    last = j;
                }
            }

            if (last != i) {
                continue;
            }

            memcpy(key, m[i].key, m[i].key_len);
            key[m[i].key_len] = '\0';

            v = json_object_get(root, key);

            if (v == NULL) {
                FUZZ_FAIL("jansson has no member \"%s\"", key);
            }

            fuzz_check_member(m[i].value, m[i].value_len, v, key);

            if (m[i].type == '[') {
                fuzz_check_array(m[i].value, m[i].value_len, v);
            }
        }

        if (json_object_size(root) > n) {
            FUZZ_FAIL("jansson has more members than the scanner");
        }
    }

    json_decref(root);
    free(buf);

    return 0;
}
