
/*
 * Copyright (C) The ngx_llm_router authors
 */


/*
 * The OpenAI answers relabelled from their bytes (ngx_http_llm_relabel.c)
 * against the jansson path they stand in for (ngx_http_llm_emit.c), which
 * the router takes for whatever the bytes path declines: the two must not
 * differ in what the client gets or in what the router notes.
 *
 * The first byte of an input sets the context (see FUZZ_F_* below); the
 * rest is one event's data, given to ngx_http_llm_emit_chunk_bytes(), and
 * the same bytes as a whole answer, given to
 * ngx_http_llm_emit_answer_bytes().
 *
 * Checks, besides ASan, UBSan and leaks:
 *   - NGX_ERROR never comes (it means out of memory);
 *   - NGX_DECLINED changes nothing: ctx->out, ctx->text_bytes, ctx->id,
 *     ctx->answered, ctx->stream_done, the attempt's tokens and usage_seen;
 *   - the input's bytes are left as they were;
 *   - NGX_OK only for what jansson parses as an object, and then the ctx
 *     holds what ngx_http_llm_emit_chunk() would have noted of it (the id
 *     of ngx_http_llm_keep_id(), the text of ngx_http_llm_count_text(), the
 *     ngx_http_llm_answered() flags, the tokens of ngx_http_llm_usage());
 *   - a chunk's output is nothing for a usage chunk the client did not ask
 *     for; otherwise one event, "data: " JSON "\n\n", with no CR or LF in
 *     the JSON (the client's SSE parser would cut it there), and the JSON
 *     is the input with "model" and "provider" set to ours and, in an
 *     object "usage", "cost" set to the attempt's cost;
 *   - an answer is the same, without the event's frame, and it is only
 *     taken when the jansson path would take it: "choices" ("data" for
 *     embeddings) an array;
 *   - what has no duplicate keys gets none.
 *
 * ngx_http_llm_relabel.c calls functions of files that need a real request
 * (ngx_http_llm_emit.c, ngx_http_llm_cost.c, ngx_http_llm_json.c): they are
 * stood in for below, and this target alone links ngx_http_llm_relabel.o.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"


#define FUZZ_F_INCLUDE_USAGE  0x01  /* the client asked for usage */
#define FUZZ_F_ID             0x02  /* ctx->id was kept already */
#define FUZZ_F_TOKENS         0x04  /* the attempt has tokens already */
#define FUZZ_F_OUT            0x08  /* ctx->out holds an event already */
#define FUZZ_F_TEXT           0x10  /* ctx->text_bytes counted already */
#define FUZZ_F_API_SHIFT      5     /* 2 bits: chat, legacy completions, */
                                    /*   messages (declined), chat */
#define FUZZ_F_EMBEDDINGS     0x80  /* the answer is of the embeddings API */

#define FUZZ_PREV_ID          "chatcmpl-earlier"
#define FUZZ_PREV_EVENT       "data: {\"id\":\"earlier\",\"choices\":[]}\n\n"


/* --- the reference: what the jansson path notes ------------------------ */

typedef struct {
    size_t                      out_len;
    int64_t                     text_bytes;
    size_t                      id_len;
    u_char                      id[300];
    unsigned                    answered:1;
    unsigned                    stream_done:1;
    int64_t                     prompt_tokens;
    int64_t                     completion_tokens;
    int64_t                     cached_tokens;
    unsigned                    usage_seen:1;
    unsigned                    estimated:1;
} fuzz_state_t;


typedef struct {
    ngx_http_request_t          r;
    ngx_http_llm_ctx_t          ctx;
    ngx_http_llm_attempt_t      a;
    ngx_http_llm_model_t        model;
    ngx_http_llm_endpoint_t     ep;
    ngx_http_llm_provider_t     provider;
} fuzz_env_t;


static int          fuzz_verbose = -1;


static void
fuzz_state_get(ngx_http_llm_ctx_t *ctx, fuzz_state_t *s)
{
    ngx_http_llm_attempt_t  *a;

    memset(s, 0, sizeof(fuzz_state_t));

    a = ctx->attempt;

    s->out_len = ctx->out.len;
    s->text_bytes = ctx->text_bytes;
    s->id_len = ngx_min(ctx->id.len, sizeof(s->id));

    if (s->id_len) {
        memcpy(s->id, ctx->id.data, s->id_len);
    }

    s->id_len = ctx->id.len;
    s->answered = ctx->answered;
    s->stream_done = ctx->stream_done;
    s->prompt_tokens = a->prompt_tokens;
    s->completion_tokens = a->completion_tokens;
    s->cached_tokens = a->cached_tokens;
    s->usage_seen = a->usage_seen;
    s->estimated = a->estimated;
}


static void
fuzz_state_check(fuzz_state_t *expect, fuzz_state_t *got, const char *what)
{
#define FUZZ_SAME(f)                                                          \
    if (expect->f != got->f) {                                                \
        FUZZ_FAIL("%s: " #f " is %lld, the jansson path's %lld", what,        \
                  (long long) got->f, (long long) expect->f);                 \
    }

    FUZZ_SAME(out_len);
    FUZZ_SAME(text_bytes);
    FUZZ_SAME(id_len);
    FUZZ_SAME(answered);
    FUZZ_SAME(stream_done);
    FUZZ_SAME(prompt_tokens);
    FUZZ_SAME(completion_tokens);
    FUZZ_SAME(cached_tokens);
    FUZZ_SAME(usage_seen);
    FUZZ_SAME(estimated);

#undef FUZZ_SAME

    if (memcmp(expect->id, got->id, ngx_min(expect->id_len, sizeof(got->id)))
        != 0)
    {
        FUZZ_FAIL("%s: the id kept is \"%.*s\", the jansson path's \"%.*s\"",
                  what, (int) ngx_min(got->id_len, sizeof(got->id)), got->id,
                  (int) ngx_min(expect->id_len, sizeof(expect->id)),
                  expect->id);
    }
}


/* ngx_http_llm_keep_id() and ngx_http_llm_count_text() on the state */

static void
fuzz_noted(fuzz_env_t *env, fuzz_state_t *s, json_t *root, json_t *choices)
{
    ngx_http_llm_ctx_t  ctx;

    ctx = env->ctx;
    ctx.id.data = s->id;
    ctx.id.len = s->id_len;
    ctx.text_bytes = s->text_bytes;

    ngx_http_llm_keep_id(&ctx, root);
    ngx_http_llm_count_text(&ctx, choices);

    if (ctx.id.len > sizeof(s->id)) {
        FUZZ_FAIL("an id of %zu bytes kept", ctx.id.len);
    }

    if (ctx.id.data != s->id) {
        memcpy(s->id, ctx.id.data, ctx.id.len);
    }

    s->id_len = ctx.id.len;
    s->text_bytes = ctx.text_bytes;
}


/* ngx_http_llm_usage() on the state */

static void
fuzz_usage(fuzz_env_t *env, fuzz_state_t *s, json_t *usage)
{
    ngx_http_llm_attempt_t  a;

    a = env->a;

    a.prompt_tokens = s->prompt_tokens;
    a.completion_tokens = s->completion_tokens;
    a.cached_tokens = s->cached_tokens;
    a.usage_seen = s->usage_seen;
    a.estimated = s->estimated;

    env->ctx.attempt = &a;
    ngx_http_llm_usage(&env->ctx, usage);
    env->ctx.attempt = &env->a;

    s->prompt_tokens = a.prompt_tokens;
    s->completion_tokens = a.completion_tokens;
    s->cached_tokens = a.cached_tokens;
    s->usage_seen = a.usage_seen;
    s->estimated = a.estimated;
}


/* --- the context -------------------------------------------------------- */

static fuzz_env_t *
fuzz_env_create(ngx_pool_t *pool, u_char flags, ngx_uint_t api)
{
    fuzz_env_t  *env;

    env = calloc(1, sizeof(fuzz_env_t));
    if (env == NULL) {
        FUZZ_FAIL("out of memory");
    }

    ngx_str_set(&env->provider.name, "prov");
    ngx_str_set(&env->provider.name_json, "\"prov\"");
    env->provider.format = NGX_HTTP_LLM_FORMAT_OPENAI;

    /* prices that make every token count show in the cost */

    env->ep.provider = &env->provider;
    env->ep.input_price = 1000000;
    env->ep.output_price = 2000000;
    env->ep.cached_price = 1000;

    ngx_str_set(&env->model.name, "pub");
    ngx_str_set(&env->model.name_json, "\"pub\"");

    env->a.model = &env->model;
    env->a.endpoint = &env->ep;

    env->r.pool = pool;

    env->ctx.request = &env->r;
    env->ctx.attempt = &env->a;
    env->ctx.api = api;
    env->ctx.include_usage = (flags & FUZZ_F_INCLUDE_USAGE) ? 1 : 0;

    if (flags & FUZZ_F_ID) {
        env->ctx.id.len = sizeof(FUZZ_PREV_ID) - 1;
        env->ctx.id.data = ngx_pnalloc(pool, env->ctx.id.len);
        if (env->ctx.id.data == NULL) {
            FUZZ_FAIL("out of memory");
        }

        memcpy(env->ctx.id.data, FUZZ_PREV_ID, env->ctx.id.len);
    }

    if (flags & FUZZ_F_TOKENS) {
        env->a.prompt_tokens = 7;
        env->a.completion_tokens = 11;
        env->a.cached_tokens = 3;
        env->a.usage_seen = 1;
        env->a.estimated = 1;
    }

    if ((flags & FUZZ_F_OUT)
        && ngx_http_llm_sbuf_append(pool, &env->ctx.out,
                                    (u_char *) FUZZ_PREV_EVENT,
                                    sizeof(FUZZ_PREV_EVENT) - 1, 0)
           != NGX_OK)
    {
        FUZZ_FAIL("out of memory");
    }

    if (flags & FUZZ_F_TEXT) {
        env->ctx.text_bytes = 1000;
    }

    return env;
}


/* --- the output --------------------------------------------------------- */

/*
 * json_equal(), but a real number may have been written by jansson with
 * JSON_REAL_PRECISION(15), as ngx_http_llm_json_append() does: what the
 * jansson path does to every real, and the bytes path to those of a usage
 * it gives to jansson
 */

static int
fuzz_equal(json_t *a, json_t *b)
{
    char         ra[32], rb[32];
    size_t       i;
    json_t      *v;
    const char  *key;

    if (json_typeof(a) != json_typeof(b)) {
        return 0;
    }

    switch (json_typeof(a)) {

    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b)) {
            return 0;
        }

        json_object_foreach(a, key, v) {
            if (json_object_get(b, key) == NULL
                || !fuzz_equal(v, json_object_get(b, key)))
            {
                return 0;
            }
        }

        return 1;

    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) {
            return 0;
        }

        for (i = 0; i < json_array_size(a); i++) {
            if (!fuzz_equal(json_array_get(a, i), json_array_get(b, i))) {
                return 0;
            }
        }

        return 1;

    case JSON_REAL:
        if (json_real_value(a) == json_real_value(b)) {
            return 1;
        }

        snprintf(ra, sizeof(ra), "%.15g", json_real_value(a));
        snprintf(rb, sizeof(rb), "%.15g", json_real_value(b));

        return strcmp(ra, rb) == 0;

    default:
        return json_equal(a, b);
    }
}


/*
 * The relabelled JSON (text..text + len) against the input (root) with
 * "model", "provider" and the usage's cost set as the jansson path sets
 * them.
 */

static void
fuzz_check_json(const u_char *text, size_t len, json_t *root,
    fuzz_state_t *s, ngx_http_llm_endpoint_t *ep, int dups, const char *what)
{
    char                    buf[64], *e;
    double                  c1, c2;
    json_t                 *out, *expect, *usage, *cost;
    int64_t                 pico;
    json_error_t            err;
    ngx_http_llm_attempt_t  a;

    out = json_loadb((const char *) text, len,
                     JSON_ALLOW_NUL | (dups ? 0 : JSON_REJECT_DUPLICATES),
                     &err);

    if (!json_is_object(out)) {
        FUZZ_FAIL("%s: the output is not a JSON object%s: %s (column %d): "
                  "%.*s", what, dups ? "" : " without duplicate keys",
                  out ? "not an object" : err.text, err.column,
                  (int) ngx_min(len, 2000), text);
    }

    expect = json_deep_copy(root);

    if (expect == NULL
        || json_object_set_new(expect, "model", json_string("pub")) != 0
        || json_object_set_new(expect, "provider", json_string("prov")) != 0)
    {
        FUZZ_FAIL("out of memory");
    }

    usage = json_object_get(expect, "usage");

    if (json_is_object(usage)) {
        cost = json_object_get(json_object_get(out, "usage"), "cost");

        if (!json_is_number(cost)) {
            FUZZ_FAIL("%s: the usage has no cost that is a number: %.*s",
                      what, (int) ngx_min(len, 2000), text);
        }

        /*
         * the attempt's cost, with its tokens of this usage: as
         * ngx_http_llm_json_pico() writes it, or as jansson does
         * (JSON_REAL_PRECISION(15)) when the usage went through it
         */

        ngx_memzero(&a, sizeof(ngx_http_llm_attempt_t));
        a.endpoint = ep;
        a.prompt_tokens = s->prompt_tokens;
        a.completion_tokens = s->completion_tokens;
        a.cached_tokens = s->cached_tokens;

        pico = ngx_http_llm_attempt_cost(&a);

        *ngx_http_llm_json_pico((u_char *) buf, pico) = '\0';
        c1 = strtod(buf, NULL);
        snprintf(buf, sizeof(buf), "%.15g", (double) pico / 1e12);
        c2 = strtod(buf, NULL);

        if (json_number_value(cost) != c1 && json_number_value(cost) != c2) {
            FUZZ_FAIL("%s: the cost is %.17g, not the attempt's %.17g "
                      "(prompt %lld, completion %lld, cached %lld)", what,
                      json_number_value(cost), c1,
                      (long long) s->prompt_tokens,
                      (long long) s->completion_tokens,
                      (long long) s->cached_tokens);
        }

        if (json_object_set(usage, "cost", cost) != 0) {
            FUZZ_FAIL("out of memory");
        }

        if (s->estimated
            && json_object_set_new(usage, "estimated", json_true()) != 0)
        {
            FUZZ_FAIL("out of memory");
        }
    }

    if (!fuzz_equal(out, expect)) {
        e = json_dumps(expect, JSON_COMPACT|JSON_SORT_KEYS);

        FUZZ_FAIL("%s: the output is not the input relabelled:\n"
                  "    output:   %.*s\n    expected: %s", what,
                  (int) ngx_min(len, 2000), text, e ? e : "?");
    }

    json_decref(expect);
    json_decref(out);
}


static int
fuzz_has_dups(const u_char *data, size_t len)
{
    json_t  *j;

    j = json_loadb((const char *) data, len,
                   JSON_ALLOW_NUL|JSON_REJECT_DUPLICATES, NULL);

    if (j == NULL) {
        return 1;
    }

    json_decref(j);

    return 0;
}


/*
 * One call of "fn" on a copy of exactly the input's size (any read past
 * its end is caught), with the ctx's state before and after it; the input
 * must come back unchanged.
 */

static ngx_int_t
fuzz_call(fuzz_env_t *env,
    ngx_int_t (*fn)(ngx_http_llm_ctx_t *ctx, u_char *data, size_t len),
    const u_char *data, size_t size, fuzz_state_t *before,
    fuzz_state_t *after, const char *what)
{
    u_char     *buf;
    ngx_int_t   rc;

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        FUZZ_FAIL("out of memory");
    }

    memcpy(buf, data, size);

    fuzz_state_get(&env->ctx, before);

    rc = fn(&env->ctx, buf, size);

    fuzz_state_get(&env->ctx, after);

    if (memcmp(buf, data, size) != 0) {
        FUZZ_FAIL("%s: the bytes path changed its input", what);
    }

    free(buf);

    return rc;
}


/* --- the two entry points ---------------------------------------------- */

static void
fuzz_chunk(const u_char *data, size_t size, u_char flags)
{
    u_char         *p;
    size_t          len;
    json_t         *root, *choices, *usage;
    ngx_int_t       rc;
    ngx_uint_t      api, finished, skip;
    ngx_pool_t     *pool;
    fuzz_env_t     *env;
    fuzz_state_t    before, after, expect;
    static const ngx_uint_t  apis[4] = {
        NGX_HTTP_LLM_API_CHAT, NGX_HTTP_LLM_API_COMPLETIONS,
        NGX_HTTP_LLM_API_MESSAGES, NGX_HTTP_LLM_API_CHAT
    };

    api = apis[(flags >> FUZZ_F_API_SHIFT) & 3];

    pool = ngx_fuzz_pool_create();
    env = fuzz_env_create(pool, flags, api);

    rc = fuzz_call(env, ngx_http_llm_emit_chunk_bytes, data, size, &before,
                   &after, "chunk");

    if ((flags & FUZZ_F_OUT)
        && memcmp(env->ctx.out.data, FUZZ_PREV_EVENT,
                  sizeof(FUZZ_PREV_EVENT) - 1) != 0)
    {
        FUZZ_FAIL("chunk: what ctx->out held before was changed");
    }

    if (rc == NGX_ERROR) {
        FUZZ_FAIL("chunk: NGX_ERROR (out of memory, which does not happen "
                  "here)");
    }

    if (rc == NGX_DECLINED) {
        fuzz_state_check(&before, &after, "chunk declined");
        goto done;
    }

    if (rc != NGX_OK) {
        FUZZ_FAIL("chunk: ngx_http_llm_emit_chunk_bytes() returned %ld",
                  (long) rc);
    }

    if (api == NGX_HTTP_LLM_API_MESSAGES) {
        FUZZ_FAIL("chunk: taken for an Anthropic client");
    }

    root = json_loadb((const char *) data, size, JSON_ALLOW_NUL, NULL);

    if (!json_is_object(root)) {
        FUZZ_FAIL("chunk: taken, but jansson %s it",
                  root ? "does not parse as an object" : "refuses");
    }

    choices = json_object_get(root, "choices");
    usage = json_object_get(root, "usage");

    if (!json_is_array(choices)) {
        FUZZ_FAIL("chunk: taken without a \"choices\" array");
    }

    if (json_object_get(root, "error") != NULL) {
        FUZZ_FAIL("chunk: taken with an \"error\" (the provider's error, "
                  "which ends the attempt)");
    }

    /* what ngx_http_llm_emit_chunk() notes */

    expect = before;

    fuzz_noted(env, &expect, root, choices);

    if (json_is_object(usage)) {
        fuzz_usage(env, &expect, usage);
    }

    finished = 0;

    if (ngx_http_llm_answered(choices, &finished)) {
        expect.answered = 1;
    }

    if (finished) {
        expect.stream_done = 1;
    }

    skip = (json_array_size(choices) == 0 && json_is_object(usage)
            && !env->ctx.include_usage);

    expect.out_len = after.out_len;

    fuzz_state_check(&expect, &after, "chunk");

    if (skip) {
        if (after.out_len != before.out_len) {
            FUZZ_FAIL("chunk: %zu bytes of output for the usage chunk the "
                      "client did not ask for",
                      after.out_len - before.out_len);
        }

        json_decref(root);
        goto done;
    }

    p = env->ctx.out.data + before.out_len;
    len = after.out_len - before.out_len;

    if (fuzz_verbose) {
        fprintf(stderr, "chunk: %.*s", (int) len, p);
    }

    if (len < 8 || memcmp(p, "data: ", 6) != 0
        || memcmp(p + len - 2, "\n\n", 2) != 0)
    {
        FUZZ_FAIL("chunk: the output is not \"data: ...\\n\\n\": %.*s",
                  (int) ngx_min(len, 2000), p);
    }

    p += 6;
    len -= 8;

    if (memchr(p, '\n', len) || memchr(p, '\r', len)) {
        FUZZ_FAIL("chunk: the event's JSON has a line break: the client's "
                  "SSE parser cuts the event there: %.*s",
                  (int) ngx_min(len, 2000), p);
    }

    fuzz_check_json(p, len, root, &expect, &env->ep,
                    fuzz_has_dups(data, size), "chunk");

    json_decref(root);

done:

    free(env);
    ngx_fuzz_pool_destroy(pool);
}


static void
fuzz_answer(const u_char *data, size_t size, u_char flags)
{
    json_t         *root, *usage;
    ngx_int_t       rc;
    ngx_uint_t      api;
    ngx_pool_t     *pool;
    fuzz_env_t     *env;
    const char     *list;
    fuzz_state_t    before, after, expect;

    api = (flags & FUZZ_F_EMBEDDINGS) ? NGX_HTTP_LLM_API_EMBEDDINGS
                                      : NGX_HTTP_LLM_API_CHAT;
    list = (api == NGX_HTTP_LLM_API_EMBEDDINGS) ? "data" : "choices";

    pool = ngx_fuzz_pool_create();
    env = fuzz_env_create(pool, flags, api);

    rc = fuzz_call(env, ngx_http_llm_emit_answer_bytes, data, size, &before,
                   &after, "answer");

    if (rc == NGX_ERROR) {
        FUZZ_FAIL("answer: NGX_ERROR (out of memory, which does not happen "
                  "here)");
    }

    if (rc == NGX_DECLINED) {
        fuzz_state_check(&before, &after, "answer declined");
        goto done;
    }

    if (rc != NGX_OK) {
        FUZZ_FAIL("answer: ngx_http_llm_emit_answer_bytes() returned %ld",
                  (long) rc);
    }

    root = json_loadb((const char *) data, size, JSON_ALLOW_NUL, NULL);

    if (!json_is_object(root)) {
        FUZZ_FAIL("answer: taken, but jansson %s it",
                  root ? "does not parse as an object" : "refuses");
    }

    if (!json_is_array(json_object_get(root, list))) {
        FUZZ_FAIL("answer: taken without a \"%s\" array (the jansson path "
                  "fails the attempt)", list);
    }

    usage = json_object_get(root, "usage");

    if (!json_is_object(usage)) {
        FUZZ_FAIL("answer: taken without a \"usage\" object");
    }

    /*
     * what ngx_http_llm_emit_answer() notes and needs (its id and text
     * are for a stream: not compared)
     */

    expect = before;
    fuzz_usage(env, &expect, usage);

    expect.answered = 1;
    expect.stream_done = 1;
    expect.out_len = after.out_len;
    expect.id_len = after.id_len;
    memcpy(expect.id, after.id, sizeof(expect.id));
    expect.text_bytes = after.text_bytes;


    fuzz_state_check(&expect, &after, "answer");

    if (fuzz_verbose) {
        fprintf(stderr, "answer: %.*s\n", (int) env->ctx.out.len,
                env->ctx.out.data);
    }

    /* the answer replaces what ctx->out held */

    fuzz_check_json(env->ctx.out.data, env->ctx.out.len, root, &expect,
                    &env->ep, fuzz_has_dups(data, size), "answer");

    json_decref(root);

done:

    free(env);
    ngx_fuzz_pool_destroy(pool);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_verbose < 0) {
        fuzz_verbose = (getenv("FUZZ_VERBOSE") != NULL);
    }

    if (size == 0) {
        return 0;
    }

    fuzz_chunk(data + 1, size - 1, data[0]);
    fuzz_answer(data + 1, size - 1, data[0]);

    return 0;
}
