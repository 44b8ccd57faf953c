
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * OpenAI-dialect answers for OpenAI-format clients, relabelled from their
 * bytes instead of parsed and written again: a JSON answer, and each event
 * of a stream.  Their members are copied as the provider wrote them but
 * "model" (the public name), "usage" (its tokens noted, "cost" added) and
 * "provider" (ours, at the end).  What ngx_http_llm_emit_chunk() notes of
 * a chunk (its id, how much text, whether it answers or ends the answer)
 * is read with the scanner too.
 *
 * NGX_DECLINED sends an answer or an event the long way, through jansson
 * (ngx_http_llm_emit.c): keys with escapes, a key given twice, a usage
 * with a cost of its own, an error, anything unexpected.
 */


#define NGX_HTTP_LLM_RELABEL_MAX  32


typedef struct {
    size_t                      text;         /* decoded bytes */
    unsigned                    empty:1;      /* no choices */
    unsigned                    answered:1;
    unsigned                    finished:1;
} ngx_http_llm_choices_t;


static void ngx_http_llm_relabel_inner(ngx_http_llm_scan_inner_t *in,
    ngx_http_llm_member_t *members);
static ngx_int_t ngx_http_llm_relabel_unique(ngx_http_llm_member_t *m,
    ngx_uint_t n);
static ngx_int_t ngx_http_llm_relabel_write(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_member_t *m, ngx_uint_t n, ngx_uint_t u, json_t *usage,
    size_t len);
static ngx_int_t ngx_http_llm_relabel_usage(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_member_t *u, ngx_http_llm_scan_inner_t *in);
static ngx_int_t ngx_http_llm_relabel_choices(ngx_http_llm_member_t *c,
    ngx_http_llm_choices_t *ch);
static ngx_int_t ngx_http_llm_relabel_choice(u_char *value, size_t len,
    ngx_http_llm_choices_t *ch);
static ngx_int_t ngx_http_llm_relabel_delta(ngx_http_llm_member_t *d,
    ngx_uint_t delta, ngx_http_llm_choices_t *ch);
static ngx_int_t ngx_http_llm_relabel_calls(ngx_http_llm_member_t *calls,
    ngx_http_llm_choices_t *ch);


#define ngx_http_llm_key_is(m, name)                                          \
    ((m)->key_len == sizeof(name) - 1                                         \
     && ngx_memcmp((m)->key, name, sizeof(name) - 1) == 0)


/* a JSON answer: NGX_OK with it in ctx->out, or NGX_DECLINED */

ngx_int_t
ngx_http_llm_emit_answer_bytes(ngx_http_llm_ctx_t *ctx, u_char *data,
    size_t len)
{
    json_t                     *usage;
    ngx_int_t                   rc;
    ngx_uint_t                  i, n, list, u;
    ngx_http_llm_member_t       m[NGX_HTTP_LLM_RELABEL_MAX];
    ngx_http_llm_member_t       um[NGX_HTTP_LLM_RELABEL_MAX];
    ngx_http_llm_scan_inner_t   in;

    ngx_http_llm_relabel_inner(&in, um);

    if (ngx_http_llm_scan_object_in(data, data + len, m,
                                    NGX_HTTP_LLM_RELABEL_MAX, &n, &in)
        != NGX_OK
        || ngx_http_llm_relabel_unique(m, n) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    list = 0;
    u = n;

    for (i = 0; i < n; i++) {
        if (ngx_http_llm_key_is(&m[i], "usage")) {
            u = i;

        } else if (ctx->api == NGX_HTTP_LLM_API_EMBEDDINGS
                   ? ngx_http_llm_key_is(&m[i], "data")
                   : ngx_http_llm_key_is(&m[i], "choices"))
        {
            list = (m[i].type == '[');
        }
    }

    if (!list || u == n || m[u].type != '{') {
        return NGX_DECLINED;
    }

    usage = NULL;

    if (ngx_http_llm_relabel_usage(ctx, &m[u], &in) == NGX_DECLINED) {

        /* a usage the scanner does not read alone: jansson's */

        usage = json_loadb((const char *) m[u].value, m[u].value_len,
                           JSON_DECODE_ANY|JSON_ALLOW_NUL, NULL);
        if (usage == NULL) {
            return NGX_ERROR;
        }

        ngx_http_llm_usage(ctx, usage);

        if (ngx_http_llm_usage_json(ctx, usage) != NGX_OK) {
            json_decref(usage);
            return NGX_ERROR;
        }
    }

    ctx->out.len = 0;

    rc = ngx_http_llm_relabel_write(ctx, m, n, u, usage, len);

    if (usage) {
        json_decref(usage);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->answered = 1;
    ctx->stream_done = 1;

    return NGX_OK;
}


/*
 * One event of a stream ("data:"'s JSON): NGX_OK with it appended to
 * ctx->out as an event (or nothing, for the usage chunk the router asked
 * for and the client did not), or NGX_DECLINED.
 */

ngx_int_t
ngx_http_llm_emit_chunk_bytes(ngx_http_llm_ctx_t *ctx, u_char *data,
    size_t len)
{
    ngx_uint_t                  i, n, c, u, id;
    ngx_pool_t                 *pool;
    ngx_http_llm_member_t       m[NGX_HTTP_LLM_RELABEL_MAX];
    ngx_http_llm_member_t       um[NGX_HTTP_LLM_RELABEL_MAX];
    ngx_http_llm_choices_t      ch;
    ngx_http_llm_scan_inner_t   in;

    if (ctx->api == NGX_HTTP_LLM_API_MESSAGES) {
        /* an Anthropic client's events are made from the parsed chunk */
        return NGX_DECLINED;
    }

    /*
     * an event's JSON may span "data:" lines: its line breaks, spaces
     * between tokens, cannot be copied into the single line it goes out in
     */

    if (memchr(data, '\n', len) || memchr(data, '\r', len)) {
        return NGX_DECLINED;
    }

    ngx_http_llm_relabel_inner(&in, um);

    if (ngx_http_llm_scan_object_in(data, data + len, m,
                                    NGX_HTTP_LLM_RELABEL_MAX, &n, &in)
        != NGX_OK
        || ngx_http_llm_relabel_unique(m, n) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    c = n;
    u = n;
    id = n;

    for (i = 0; i < n; i++) {

        if (ngx_http_llm_key_is(&m[i], "choices")) {
            c = i;

        } else if (ngx_http_llm_key_is(&m[i], "usage")) {
            u = i;

        } else if (ngx_http_llm_key_is(&m[i], "id")) {
            id = i;

        } else if (ngx_http_llm_key_is(&m[i], "error")) {
            return NGX_DECLINED;
        }
    }

    if (c == n || m[c].type != '[') {
        return NGX_DECLINED;
    }

    if (u != n && m[u].type != '{') {
        /* not a usage: copied as it is */
        u = n;
    }

    if (id != n && (m[id].type != '"' || ctx->id.len)) {
        /* not an id, or one is kept already */
        id = n;
    }

    if (id != n && memchr(m[id].value, '\\', m[id].value_len)) {
        /* an id to keep as jansson decodes it */
        return NGX_DECLINED;
    }

    if (id != n && m[id].value_len - 2 > 256) {
        /* too long to keep */
        id = n;
    }

    ngx_memzero(&ch, sizeof(ngx_http_llm_choices_t));

    if (ngx_http_llm_relabel_choices(&m[c], &ch) != NGX_OK) {
        return NGX_DECLINED;
    }

    /* the last step that may decline: it notes the usage when it does not */

    if (u != n && ngx_http_llm_relabel_usage(ctx, &m[u], &in) != NGX_OK) {
        return NGX_DECLINED;
    }

    pool = ctx->request->pool;

    if (id != n && m[id].value_len > 2) {
        ctx->id.data = ngx_pnalloc(pool, m[id].value_len - 2);

        if (ctx->id.data) {
            ctx->id.len = m[id].value_len - 2;
            ngx_memcpy(ctx->id.data, m[id].value + 1, ctx->id.len);
        }
    }

    ctx->text_bytes += ch.text;

    if (ch.answered) {
        ctx->answered = 1;
    }

    if (ch.finished) {
        ctx->stream_done = 1;
    }

    if (ch.empty && u != n && !ctx->include_usage) {
        /* the usage chunk the router asked for, not the client */
        return NGX_OK;
    }

    if (ngx_http_llm_sbuf_append(pool, &ctx->out, (u_char *) "data: ", 6, 0)
        != NGX_OK
        || ngx_http_llm_relabel_write(ctx, m, n, u, NULL, len) != NGX_OK
        || ngx_http_llm_sbuf_append(pool, &ctx->out, (u_char *) "\n\n", 2, 0)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the scan asked for the usage's members too */

static void
ngx_http_llm_relabel_inner(ngx_http_llm_scan_inner_t *in,
    ngx_http_llm_member_t *members)
{
    in->name = "usage";
    in->name_len = sizeof("usage") - 1;
    in->members = members;
    in->max = NGX_HTTP_LLM_RELABEL_MAX;
    in->n = 0;
    in->found = 0;
}


/* a key given twice is for jansson to choose (it takes the last) */

static ngx_int_t
ngx_http_llm_relabel_unique(ngx_http_llm_member_t *m, ngx_uint_t n)
{
    ngx_uint_t  i, j;

    for (i = 1; i < n; i++) {
        for (j = 0; j < i; j++) {
            if (m[i].key_len == m[j].key_len
                && ngx_memcmp(m[i].key, m[j].key, m[i].key_len) == 0)
            {
                return NGX_DECLINED;
            }
        }
    }

    return NGX_OK;
}


/*
 * The object of "len" bytes whose members are "m" appended to ctx->out,
 * relabelled; m[u] is its usage, when u < n: jansson's "usage" if that
 * read it, else its bytes with the cost added.
 */

static ngx_int_t
ngx_http_llm_relabel_write(ngx_http_llm_ctx_t *ctx, ngx_http_llm_member_t *m,
    ngx_uint_t n, ngx_uint_t u, json_t *usage, size_t len)
{
    u_char                  *p;
    size_t                   size;
    ngx_uint_t               i, model;
    ngx_pool_t              *pool;
    ngx_http_llm_attempt_t  *a;

    a = ctx->attempt;
    pool = ctx->request->pool;

    /* the object, a "model", a "provider" and a cost (25 bytes at most) */

    size = len + 96 + a->model->name_json.len
           + a->endpoint->provider->name_json.len;

    if (ngx_http_llm_sbuf_reserve(pool, &ctx->out, size) != NGX_OK) {
        return NGX_ERROR;
    }

    p = ctx->out.data + ctx->out.len;
    *p++ = '{';
    model = 0;

    for (i = 0; i < n; i++) {

        if (ngx_http_llm_key_is(&m[i], "provider")) {
            continue;
        }

        *p++ = '"';
        p = ngx_cpymem(p, m[i].key, m[i].key_len);
        *p++ = '"';
        *p++ = ':';

        if (ngx_http_llm_key_is(&m[i], "model")) {
            p = ngx_cpymem(p, a->model->name_json.data,
                           a->model->name_json.len);
            model = 1;

        } else if (i == u && usage) {
            ctx->out.len = p - ctx->out.data;

            if (ngx_http_llm_json_append(pool, usage, &ctx->out) != NGX_OK
                || ngx_http_llm_sbuf_reserve(pool, &ctx->out, size)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }

            p = ctx->out.data + ctx->out.len;

        } else if (i == u) {
            /* {...} becomes {...,"cost":C} */

            p = ngx_cpymem(p, m[i].value, m[i].value_len - 1);

            while (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n'
                   || p[-1] == '\r')
            {
                p--;
            }

            if (p[-1] != '{') {
                *p++ = ',';
            }

            p = ngx_cpymem(p, "\"cost\":", 7);
            p = ngx_http_llm_json_pico(p, ngx_http_llm_attempt_cost(a));
            *p++ = '}';

        } else {
            p = ngx_cpymem(p, m[i].value, m[i].value_len);
        }

        *p++ = ',';
    }

    if (!model) {
        p = ngx_cpymem(p, "\"model\":", 8);
        p = ngx_cpymem(p, a->model->name_json.data, a->model->name_json.len);
        *p++ = ',';
    }

    p = ngx_cpymem(p, "\"provider\":", 11);
    p = ngx_cpymem(p, a->endpoint->provider->name_json.data,
                   a->endpoint->provider->name_json.len);
    *p++ = '}';

    ctx->out.len = p - ctx->out.data;

    return NGX_OK;
}


/*
 * The usage's tokens read with the scanner, as ngx_http_llm_usage() reads
 * them, and noted; NGX_DECLINED, with nothing noted, for what it should
 * read instead (escapes, a "cost" or "estimated" of the provider's own,
 * whose place jansson keeps).
 */

static ngx_int_t
ngx_http_llm_relabel_usage(ngx_http_llm_ctx_t *ctx, ngx_http_llm_member_t *u,
    ngx_http_llm_scan_inner_t *in)
{
    int64_t                  v;
    ngx_uint_t               i;
    ngx_http_llm_member_t    m, prompt, completion, details;
    ngx_http_llm_attempt_t  *a;

    if (!in->found || memchr(u->value, '\\', u->value_len) != NULL) {
        return NGX_DECLINED;
    }

    /* its members, from the answer's scan; the last of duplicates wins */

    ngx_memzero(&prompt, sizeof(ngx_http_llm_member_t));
    ngx_memzero(&completion, sizeof(ngx_http_llm_member_t));
    ngx_memzero(&details, sizeof(ngx_http_llm_member_t));

    for (i = 0; i < in->n; i++) {
        m = in->members[i];

        if (ngx_http_llm_key_is(&m, "cost")
            || ngx_http_llm_key_is(&m, "estimated"))
        {
            return NGX_DECLINED;
        }

        if (ngx_http_llm_key_is(&m, "prompt_tokens")) {
            prompt = m;

        } else if (ngx_http_llm_key_is(&m, "completion_tokens")) {
            completion = m;

        } else if (ngx_http_llm_key_is(&m, "prompt_tokens_details")) {
            details = m;
        }
    }

    a = ctx->attempt;

    if (prompt.type && ngx_http_llm_scan_int(&prompt, &v) == NGX_OK
        && v >= 0)
    {
        a->prompt_tokens = v;
    }

    if (completion.type && ngx_http_llm_scan_int(&completion, &v) == NGX_OK
        && v >= 0)
    {
        a->completion_tokens = v;
    }

    if (details.type == '{'
        && ngx_http_llm_scan_member(details.value, details.value_len,
                                    "cached_tokens", &m)
           == NGX_OK
        && ngx_http_llm_scan_int(&m, &v) == NGX_OK && v >= 0)
    {
        a->cached_tokens = v;
    }

    a->usage_seen = 1;
    a->estimated = 0;

    return NGX_OK;
}


/*
 * What ngx_http_llm_count_text() and ngx_http_llm_answered() find in a
 * chunk's "choices", from its bytes.
 */

static ngx_int_t
ngx_http_llm_relabel_choices(ngx_http_llm_member_t *c,
    ngx_http_llm_choices_t *ch)
{
    u_char     *p, *last, *value, type;
    size_t      len;
    ngx_int_t   rc;

    p = c->value;
    last = p + c->value_len;
    ch->empty = 1;

    while ((rc = ngx_http_llm_scan_next(&p, last, &value, &len, &type))
           == NGX_OK)
    {
        ch->empty = 0;

        if (type == '{'
            && ngx_http_llm_relabel_choice(value, len, ch) != NGX_OK)
        {
            return NGX_DECLINED;
        }
    }

    return (rc == NGX_DONE) ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_llm_relabel_choice(u_char *value, size_t len,
    ngx_http_llm_choices_t *ch)
{
    u_char                 *p, *last;
    size_t                  n;
    ngx_int_t               rc;
    ngx_uint_t              escaped;
    ngx_http_llm_member_t   m, delta, message, text, finish;

    ngx_memzero(&delta, sizeof(ngx_http_llm_member_t));
    ngx_memzero(&message, sizeof(ngx_http_llm_member_t));
    ngx_memzero(&text, sizeof(ngx_http_llm_member_t));
    ngx_memzero(&finish, sizeof(ngx_http_llm_member_t));

    p = value;
    last = value + len;

    while ((rc = ngx_http_llm_scan_pair(&p, last, &m, &escaped)) == NGX_OK) {

        if (escaped) {
            return NGX_DECLINED;
        }

        if (ngx_http_llm_key_is(&m, "delta")) {
            delta = m;

        } else if (ngx_http_llm_key_is(&m, "message")) {
            message = m;

        } else if (ngx_http_llm_key_is(&m, "text")) {
            text = m;

        } else if (ngx_http_llm_key_is(&m, "finish_reason")) {
            finish = m;
        }
    }

    if (rc != NGX_DONE) {
        return NGX_DECLINED;
    }

    if (finish.type == '"') {
        ch->finished = 1;
        ch->answered = 1;
    }

    /* the legacy completions' text */

    if (text.type == '"') {
        n = ngx_http_llm_scan_strlen(text.value, text.value_len);
        ch->text += n;

        if (n) {
            ch->answered = 1;
        }
    }

    /* a "delta" counts, even null; a "message" when there is none */

    if (delta.type) {
        return (delta.type == '{') ? ngx_http_llm_relabel_delta(&delta, 1, ch)
                                   : NGX_OK;
    }

    if (message.type == '{') {
        return ngx_http_llm_relabel_delta(&message, 0, ch);
    }

    return NGX_OK;
}


/* a delta's text counted, and whether it answers (a message only counts) */

static ngx_int_t
ngx_http_llm_relabel_delta(ngx_http_llm_member_t *d, ngx_uint_t delta,
    ngx_http_llm_choices_t *ch)
{
    u_char                 *p, *last;
    size_t                  n;
    ngx_int_t               rc;
    ngx_uint_t              escaped, function, refusal, reasoning, rcontent;
    ngx_http_llm_member_t   m, content, calls;

    ngx_memzero(&content, sizeof(ngx_http_llm_member_t));
    ngx_memzero(&calls, sizeof(ngx_http_llm_member_t));

    /* the last of duplicates wins, as in jansson */

    function = 0;
    refusal = 0;
    reasoning = 0;
    rcontent = 0;

    p = d->value;
    last = p + d->value_len;

    while ((rc = ngx_http_llm_scan_pair(&p, last, &m, &escaped)) == NGX_OK) {

        if (escaped) {
            return NGX_DECLINED;
        }

        if (ngx_http_llm_key_is(&m, "content")) {
            content = m;

        } else if (ngx_http_llm_key_is(&m, "tool_calls")) {
            calls = m;

        } else if (ngx_http_llm_key_is(&m, "function_call")) {
            function = 1;

        } else if (ngx_http_llm_key_is(&m, "refusal")) {
            refusal = (m.type == '"');

        } else if (ngx_http_llm_key_is(&m, "reasoning")) {
            reasoning = (m.type == '"');

        } else if (ngx_http_llm_key_is(&m, "reasoning_content")) {
            rcontent = (m.type == '"');
        }
    }

    if (rc != NGX_DONE) {
        return NGX_DECLINED;
    }

    if (content.type == '"') {
        n = ngx_http_llm_scan_strlen(content.value, content.value_len);
        ch->text += n;

        if (n && delta) {
            ch->answered = 1;
        }
    }

    if (delta && (calls.type || function || refusal || reasoning || rcontent))
    {
        ch->answered = 1;
    }

    if (calls.type == '[') {
        return ngx_http_llm_relabel_calls(&calls, ch);
    }

    return NGX_OK;
}


/* the tool calls' arguments, counted as text */

static ngx_int_t
ngx_http_llm_relabel_calls(ngx_http_llm_member_t *calls,
    ngx_http_llm_choices_t *ch)
{
    u_char                 *p, *last, *value, type;
    size_t                  len;
    ngx_int_t               rc;
    ngx_uint_t              escaped;
    ngx_http_llm_member_t   f, args;

    p = calls->value;
    last = p + calls->value_len;

    while ((rc = ngx_http_llm_scan_next(&p, last, &value, &len, &type))
           == NGX_OK)
    {
        if (type != '{') {
            continue;
        }

        rc = ngx_http_llm_scan_lookup(value, len, "function", &f, &escaped);

        if (escaped || rc == NGX_ERROR) {
            return NGX_DECLINED;
        }

        if (rc != NGX_OK || f.type != '{') {
            continue;
        }

        rc = ngx_http_llm_scan_lookup(f.value, f.value_len, "arguments",
                                      &args, &escaped);

        if (escaped || rc == NGX_ERROR) {
            return NGX_DECLINED;
        }

        if (rc == NGX_OK && args.type == '"') {
            ch->text += ngx_http_llm_scan_strlen(args.value, args.value_len);
        }
    }

    return (rc == NGX_DONE) ? NGX_OK : NGX_DECLINED;
}
