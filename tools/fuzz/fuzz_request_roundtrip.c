
/*
 * Copyright (C) The ngx_llm_router authors
 */


/*
 * An Anthropic client's request on its way to each kind of provider, as
 * ngx_http_llm_handler.c and ngx_http_llm_upstream.c take it:
 *
 *   Messages request -> ngx_http_llm_messages_request() -> canonical
 *   request -> ngx_http_llm_anthropic_request() and
 *   ngx_http_llm_gemini_request() (and, for an OpenAI provider, the
 *   canonical request itself, serialized).
 *
 * What ngx_http_llm_messages_request() makes must be something the
 * provider translators take without a crash, without a change to it and,
 * since it came from a valid Messages request, with an error only when the
 * provider cannot express it: every outcome is checked as in fuzz_json.c
 * (a message with every NULL, no "out of memory", output that serializes).
 */


#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"


#define FUZZ_MODEL  "claude-fuzz-1"


static void
fuzz_check(ngx_pool_t *pool, json_t *out, const char *err, const char *what)
{
    fuzz_check_err(out, err, what);

    if (out != NULL) {
        if (!json_is_object(out)) {
            FUZZ_FAIL("%s: the request is not an object", what);
        }

        fuzz_check_dump(pool, out, what, NULL);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t      *root, *canonical, *copy, *out;
    ngx_pool_t  *pool;
    const char  *err;

    root = json_loadb((const char *) data, size, JSON_ALLOW_NUL, NULL);

    /* the handler takes objects only */

    if (!json_is_object(root)) {
        json_decref(root);
        return 0;
    }

    pool = ngx_fuzz_pool_create();

    err = NULL;
    canonical = ngx_http_llm_messages_request(root, &err);
    fuzz_check(pool, canonical, err, "ngx_http_llm_messages_request()");

    json_decref(root);

    if (canonical == NULL) {
        ngx_fuzz_pool_destroy(pool);
        return 0;
    }

    if (!json_is_array(json_object_get(canonical, "messages"))) {
        FUZZ_FAIL("a canonical request without \"messages\"");
    }

    copy = json_deep_copy(canonical);
    if (copy == NULL) {
        FUZZ_FAIL("out of memory");
    }

    err = NULL;
    out = ngx_http_llm_anthropic_request(canonical, FUZZ_MODEL,
                                         sizeof(FUZZ_MODEL) - 1, &err);
    if (!json_equal(canonical, copy)) {
        FUZZ_FAIL("ngx_http_llm_anthropic_request() changed its input");
    }

    fuzz_check(pool, out, err, "ngx_http_llm_anthropic_request()");
    json_decref(out);

    err = NULL;
    out = ngx_http_llm_gemini_request(canonical, &err);
    if (!json_equal(canonical, copy)) {
        FUZZ_FAIL("ngx_http_llm_gemini_request() changed its input");
    }

    fuzz_check(pool, out, err, "ngx_http_llm_gemini_request()");
    json_decref(out);

    json_decref(copy);
    json_decref(canonical);

    ngx_fuzz_pool_destroy(pool);

    return 0;
}
