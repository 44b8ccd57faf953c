
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"


void
fuzz_fail(const char *file, int line, const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "\nFUZZ CHECK FAILED at %s:%d: ", file, line);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fprintf(stderr, "\n");

    abort();
}


void
fuzz_decoder_init(ngx_http_llm_decoder_t *d)
{
    ngx_uint_t  i;

    ngx_memzero(d, sizeof(ngx_http_llm_decoder_t));

    for (i = 0; i < NGX_HTTP_LLM_MAX_BLOCKS; i++) {
        d->tool[i] = -1;
    }
}


void
fuzz_check_dump(ngx_pool_t *pool, json_t *json, const char *what,
    ngx_http_llm_sbuf_t *sb)
{
    json_t               *back;
    json_error_t          err;
    ngx_http_llm_sbuf_t   local;

    if (!json_is_object(json) && !json_is_array(json)) {
        FUZZ_FAIL("%s: not an object or an array (type %d)", what,
                  json ? (int) json_typeof(json) : -1);
    }

    if (sb == NULL) {
        ngx_memzero(&local, sizeof(ngx_http_llm_sbuf_t));
        sb = &local;
    }

    if (ngx_http_llm_json_dump(pool, json, sb) != NGX_OK) {
        FUZZ_FAIL("%s: ngx_http_llm_json_dump() failed (invalid UTF-8 in a "
                  "string?)", what);
    }

    back = json_loadb((const char *) sb->data, sb->len, JSON_ALLOW_NUL, &err);

    if (back == NULL) {
        FUZZ_FAIL("%s: the serialized JSON does not parse back: %s "
                  "(column %d): %.*s", what, err.text, err.column,
                  (int) ngx_min(sb->len, 2000), sb->data);
    }

    json_decref(back);

    if (getenv("FUZZ_VERBOSE")) {
        fprintf(stderr, "%s: %.*s\n", what, (int) sb->len, sb->data);
    }

    if (sb == &local) {
        (void) ngx_pfree(pool, local.data);
    }
}


void
fuzz_check_err(json_t *out, const char *err, const char *what)
{
    if (out != NULL) {
        return;
    }

    if (err == NULL) {
        FUZZ_FAIL("%s: NULL without an error message (the router would "
                  "answer 500)", what);
    }

    if (strstr(err, "memory") != NULL) {
        FUZZ_FAIL("%s: \"%s\" although memory did not run out (a json_pack() "
                  "or a setter failed on this input?)", what, err);
    }
}


static void
fuzz_record_put(fuzz_record_t *r, const void *data, size_t len)
{
    u_char  *p;
    size_t   size;

    if (r->size - r->len < len) {
        size = r->size ? 2 * r->size : 1024;

        while (size - r->len < len) {
            size *= 2;
        }

        p = realloc(r->data, size);
        if (p == NULL) {
            FUZZ_FAIL("out of memory in the event record");
        }

        r->data = p;
        r->size = size;
    }

    if (len) {
        memcpy(r->data + r->len, data, len);
        r->len += len;
    }
}


void
fuzz_record_add(fuzz_record_t *r, const u_char *name, size_t name_len,
    const u_char *data, size_t data_len)
{
    uint64_t  n;

    /* each event: its name's length and name, its data's length and data */

    n = name_len;
    fuzz_record_put(r, &n, sizeof(n));
    fuzz_record_put(r, name, name_len);

    n = data_len;
    fuzz_record_put(r, &n, sizeof(n));
    fuzz_record_put(r, data, data_len);

    r->count++;
}


void
fuzz_record_free(fuzz_record_t *r)
{
    free(r->data);
    memset(r, 0, sizeof(fuzz_record_t));
}


int
fuzz_record_prefix(fuzz_record_t *a, fuzz_record_t *b)
{
    /* whole events are recorded, so a byte prefix is an event prefix */

    return a->count <= b->count && a->len <= b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0)
           && (a->count < b->count || a->len == b->len);
}


void
fuzz_anthropic_stream_init(fuzz_anthropic_stream_t *s)
{
    memset(s, 0, sizeof(fuzz_anthropic_stream_t));
    s->open = -1;
}


static json_int_t
fuzz_index(json_t *data, const char *name)
{
    json_t  *v;

    v = json_object_get(data, "index");

    if (!json_is_integer(v)) {
        FUZZ_FAIL("%s without an integer \"index\"", name);
    }

    return json_integer_value(v);
}


void
fuzz_anthropic_stream_event(fuzz_anthropic_stream_t *s, json_t *ev)
{
    json_t      *name, *data, *v, *block, *delta;
    json_int_t   i;
    const char  *n, *t;

    name = json_array_get(ev, 0);
    data = json_array_get(ev, 1);

    if (!json_is_array(ev) || json_array_size(ev) != 2
        || !json_is_string(name) || !json_is_object(data))
    {
        FUZZ_FAIL("an encoder event is not [name, {data}]");
    }

    n = json_string_value(name);

    if (s->stopped) {
        FUZZ_FAIL("\"%s\" after message_stop or error", n);
    }

    v = json_object_get(data, "type");

    if (!json_is_string(v) || strcmp(json_string_value(v), n) != 0) {
        FUZZ_FAIL("\"%s\" whose data's \"type\" is not its name", n);
    }

    if (strcmp(n, "error") == 0) {
        v = json_object_get(data, "error");

        if (!json_is_string(json_object_get(v, "type"))
            || !json_is_string(json_object_get(v, "message")))
        {
            FUZZ_FAIL("error event without error.type and error.message");
        }

        s->stopped = 1;
        return;
    }

    if (strcmp(n, "message_start") == 0) {
        if (s->started) {
            FUZZ_FAIL("a second message_start");
        }

        v = json_object_get(data, "message");

        if (!json_is_string(json_object_get(v, "id"))
            || !json_is_array(json_object_get(v, "content")))
        {
            FUZZ_FAIL("message_start without message.id and content");
        }

        s->started = 1;
        return;
    }

    if (!s->started) {
        FUZZ_FAIL("\"%s\" before message_start", n);
    }

    if (strcmp(n, "content_block_start") == 0) {
        i = fuzz_index(data, n);

        if (s->open >= 0) {
            FUZZ_FAIL("content_block_start %lld while block %lld is open",
                      (long long) i, (long long) s->open);
        }

        if (i != s->blocks) {
            FUZZ_FAIL("content_block_start %lld, expected %lld",
                      (long long) i, (long long) s->blocks);
        }

        if (s->delta_sent) {
            FUZZ_FAIL("content_block_start after message_delta");
        }

        block = json_object_get(data, "content_block");
        t = json_string_value(json_object_get(block, "type"));

        if (t == NULL) {
            FUZZ_FAIL("content_block_start without content_block.type");
        }

        if (i < FUZZ_MAX_TRACKED_BLOCKS) {
            if (strcmp(t, "text") == 0) {
                s->type[i] = 't';

            } else if (strcmp(t, "thinking") == 0) {
                s->type[i] = 'k';

            } else if (strcmp(t, "tool_use") == 0) {
                s->type[i] = 'u';

                if (!json_is_string(json_object_get(block, "id"))
                    || !json_is_string(json_object_get(block, "name"))
                    || !json_is_object(json_object_get(block, "input")))
                {
                    FUZZ_FAIL("tool_use block without id, name and input");
                }

            } else {
                FUZZ_FAIL("content block of type \"%s\"", t);
            }
        }

        s->open = i;
        s->blocks++;
        return;
    }

    if (strcmp(n, "content_block_delta") == 0) {
        i = fuzz_index(data, n);
        delta = json_object_get(data, "delta");
        t = json_string_value(json_object_get(delta, "type"));

        if (i < 0 || i >= s->blocks) {
            FUZZ_FAIL("content_block_delta for block %lld of %lld started",
                      (long long) i, (long long) s->blocks);
        }

        if (t == NULL) {
            FUZZ_FAIL("content_block_delta without delta.type");
        }

        if (strcmp(t, "text_delta") == 0 || strcmp(t, "thinking_delta") == 0) {

            /* text goes to the open block only */

            if (i != s->open) {
                FUZZ_FAIL("%s for block %lld, the open one is %lld", t,
                          (long long) i, (long long) s->open);
            }

            if (i < FUZZ_MAX_TRACKED_BLOCKS
                && s->type[i] != (t[1] == 'e' ? 't' : 'k'))
            {
                FUZZ_FAIL("%s into a block of another type", t);
            }

            if (!json_is_string(json_object_get(delta,
                                    t[1] == 'e' ? "text" : "thinking")))
            {
                FUZZ_FAIL("%s without its text", t);
            }

        } else if (strcmp(t, "input_json_delta") == 0) {

            /*
             * arguments of a call may go to its block after another block
             * opened (ngx_http_llm_messages_tool_calls() says why), but
             * only to a tool_use block
             */

            if (i < FUZZ_MAX_TRACKED_BLOCKS && s->type[i] != 'u') {
                FUZZ_FAIL("input_json_delta into block %lld, not a tool_use",
                          (long long) i);
            }

            if (!json_is_string(json_object_get(delta, "partial_json"))) {
                FUZZ_FAIL("input_json_delta without partial_json");
            }

        } else {
            FUZZ_FAIL("content_block_delta of type \"%s\"", t);
        }

        if (s->delta_sent) {
            FUZZ_FAIL("content_block_delta after message_delta");
        }

        return;
    }

    if (strcmp(n, "content_block_stop") == 0) {
        i = fuzz_index(data, n);

        if (s->open < 0 || i != s->open) {
            FUZZ_FAIL("content_block_stop %lld, the open block is %lld",
                      (long long) i, (long long) s->open);
        }

        s->open = -1;
        return;
    }

    if (strcmp(n, "message_delta") == 0) {
        if (s->delta_sent) {
            FUZZ_FAIL("a second message_delta");
        }

        if (s->open >= 0) {
            FUZZ_FAIL("message_delta while block %lld is open",
                      (long long) s->open);
        }

        v = json_object_get(data, "delta");

        if (!json_is_string(json_object_get(v, "stop_reason"))
            || !json_is_object(json_object_get(data, "usage")))
        {
            FUZZ_FAIL("message_delta without delta.stop_reason and usage");
        }

        s->delta_sent = 1;
        return;
    }

    if (strcmp(n, "message_stop") == 0) {
        if (!s->delta_sent) {
            FUZZ_FAIL("message_stop before message_delta");
        }

        s->stopped = 1;
        return;
    }

    FUZZ_FAIL("unknown event \"%s\"", n);
}
