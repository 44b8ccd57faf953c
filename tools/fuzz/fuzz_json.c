
/*
 * Copyright (C) The ngx_llm_router authors
 */


/*
 * Every pure translator of ngx_http_llm_dialect.h on one JSON document,
 * taken both as a request and as a provider's answer:
 *
 *   ngx_http_llm_anthropic_request(), ngx_http_llm_gemini_request(),
 *   ngx_http_llm_messages_request()       (a client's request)
 *   ngx_http_llm_anthropic_response(), ngx_http_llm_gemini_response()
 *                                          (a provider's answer), and
 *   ngx_http_llm_messages_response() on the document and on what the two
 *   decoders made of it (an answer for an Anthropic client).
 *
 * The input is parsed as the module parses bodies (json_loadb() with
 * JSON_ALLOW_NUL); any JSON value goes in, not only objects: the
 * translators promise an error, not a crash, for anything.
 *
 * Checks, besides ASan, UBSan and LeakSanitizer (every reference dropped):
 *   - a translator never changes its input (the module gives the same
 *     request to each provider it tries in turn);
 *   - a request translator that answers NULL gives a message, and never
 *     "out of memory";
 *   - a translation is an object that serializes as the module serializes
 *     (ngx_http_llm_json_dump()) and parses back;
 *   - answers in canonical form have a "choices" array;
 *   - ngx_http_llm_messages_response() answers for every object.
 */


#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"


#define FUZZ_MODEL  "claude-fuzz-1"


static void
fuzz_unchanged(json_t *in, json_t *copy, const char *what)
{
    if (!json_equal(in, copy)) {
        FUZZ_FAIL("%s changed its input", what);
    }
}


static void
fuzz_request(ngx_pool_t *pool, json_t *out, const char *err,
    const char *what)
{
    fuzz_check_err(out, err, what);

    if (out == NULL) {
        return;
    }

    if (!json_is_object(out)) {
        FUZZ_FAIL("%s: the request is not an object", what);
    }

    fuzz_check_dump(pool, out, what, NULL);
}


static void
fuzz_messages_response(ngx_pool_t *pool, json_t *answer, const char *what)
{
    json_t  *m;

    m = ngx_http_llm_messages_response(answer);

    if (json_is_object(answer) && m == NULL) {
        FUZZ_FAIL("ngx_http_llm_messages_response() failed on %s", what);
    }

    if (m != NULL) {
        if (!json_is_array(json_object_get(m, "content"))
            || !json_is_string(json_object_get(m, "stop_reason")))
        {
            FUZZ_FAIL("a Messages answer without content and stop_reason "
                      "from %s", what);
        }

        fuzz_check_dump(pool, m, "ngx_http_llm_messages_response()", NULL);
    }

    json_decref(m);
}


static void
fuzz_answer(ngx_pool_t *pool, json_t *in, json_t *out, const char *err,
    const char *what)
{
    if (out == NULL) {
        if (err != NULL && strstr(err, "memory") != NULL) {
            FUZZ_FAIL("%s: \"%s\" although memory did not run out", what,
                      err);
        }

        return;
    }

    if (!json_is_object(out)
        || !json_is_array(json_object_get(out, "choices")))
    {
        FUZZ_FAIL("%s: a canonical answer without a \"choices\" array",
                  what);
    }

    fuzz_check_dump(pool, out, what, NULL);

    fuzz_messages_response(pool, out, what);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t      *root, *copy, *out;
    ngx_pool_t  *pool;
    const char  *err;

    root = json_loadb((const char *) data, size, JSON_ALLOW_NUL, NULL);
    if (root == NULL) {
        return 0;
    }

    copy = json_deep_copy(root);
    if (copy == NULL) {
        FUZZ_FAIL("out of memory");
    }

    pool = ngx_fuzz_pool_create();

    /* as a client's request */

    err = NULL;
    out = ngx_http_llm_anthropic_request(root, FUZZ_MODEL,
                                         sizeof(FUZZ_MODEL) - 1, &err);
    fuzz_unchanged(root, copy, "ngx_http_llm_anthropic_request()");
    fuzz_request(pool, out, err, "ngx_http_llm_anthropic_request()");

    if (out != NULL
        && !json_is_string(json_object_get(out, "model")))
    {
        FUZZ_FAIL("an Anthropic request without its model");
    }

    json_decref(out);

    err = NULL;
    out = ngx_http_llm_gemini_request(root, &err);
    fuzz_unchanged(root, copy, "ngx_http_llm_gemini_request()");
    fuzz_request(pool, out, err, "ngx_http_llm_gemini_request()");
    json_decref(out);

    err = NULL;
    out = ngx_http_llm_messages_request(root, &err);
    fuzz_unchanged(root, copy, "ngx_http_llm_messages_request()");
    fuzz_request(pool, out, err, "ngx_http_llm_messages_request()");

    if (out != NULL && !json_is_array(json_object_get(out, "messages"))) {
        FUZZ_FAIL("a canonical request without \"messages\"");
    }

    json_decref(out);

    /* as a provider's answer */

    err = NULL;
    out = ngx_http_llm_anthropic_response(root, &err);
    fuzz_unchanged(root, copy, "ngx_http_llm_anthropic_response()");
    fuzz_answer(pool, root, out, err, "ngx_http_llm_anthropic_response()");
    json_decref(out);

    err = NULL;
    out = ngx_http_llm_gemini_response(root, &err);
    fuzz_unchanged(root, copy, "ngx_http_llm_gemini_response()");
    fuzz_answer(pool, root, out, err, "ngx_http_llm_gemini_response()");
    json_decref(out);

    /* as a canonical answer for an Anthropic client */

    fuzz_messages_response(pool, root, "the input");
    fuzz_unchanged(root, copy, "ngx_http_llm_messages_response()");

    json_decref(copy);
    json_decref(root);

    ngx_fuzz_pool_destroy(pool);

    return 0;
}
