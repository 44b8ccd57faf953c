
/*
 * Copyright (C) The ngx_llm_router authors
 */


/*
 * A provider's stream, as ngx_http_llm_relay.c and ngx_http_llm_upstream.c
 * handle it, for an Anthropic client (the longest path):
 *
 *   bytes in pieces -> ngx_http_llm_sse_parse() -> each event's data
 *   json_loadb()ed -> the dialect's event decoder (OpenAI: the data is the
 *   chunk) -> each canonical chunk -> ngx_http_llm_messages_chunk() -> each
 *   Messages event serialized as ngx_http_llm_emit.c does -> the client's
 *   text/event-stream; ngx_http_llm_messages_end() at the end.
 *
 * Input: byte 0 picks the provider's dialect (% 3: openai, anthropic,
 * gemini), how the stream is cut into pieces (/ 3 % 6) and whether a small
 * event limit applies (/ 18 % 4 == 3); byte 1 is a parameter for both
 * (piece size, seed, cut position, limit); the rest is the stream.
 *
 * Checks, besides ASan and UBSan:
 *   - the same bytes in one piece and in pieces give the same events
 *     (with a limit: the cut stream stops at an error no later than the
 *     whole one, and gives the same events up to there; the same outcome
 *     unless FUZZ_SSE_LENIENT_LIMIT=1, see fuzz_strict_limit());
 *   - without a limit (the module's 1 MiB, more than any input) the parser
 *     never fails;
 *   - decoders and the encoder never answer NGX_ERROR (out of memory);
 *   - canonical chunks are objects with a "choices" array;
 *   - the encoder's events follow the Messages stream protocol (see
 *     fuzz_anthropic_stream_event()) and end with message_stop or error;
 *   - every event serializes, and the client's stream, parsed again by
 *     the SSE parser, gives back exactly the events that were sent.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"


#define FUZZ_OPENAI     0
#define FUZZ_ANTHROPIC  1
#define FUZZ_GEMINI     2

#define FUZZ_PIECES_ONE_BYTE   0
#define FUZZ_PIECES_FIXED      1
#define FUZZ_PIECES_TINY       2    /* random 1..8, some empty */
#define FUZZ_PIECES_SMALL      3    /* random 1..300 */
#define FUZZ_PIECES_LINES      4    /* cut after every CR and LF */
#define FUZZ_PIECES_TWO        5    /* cut once */


typedef struct {
    ngx_pool_t               *pool;
    ngx_uint_t                dialect;
    ngx_http_llm_decoder_t    decoder;
    ngx_http_llm_encoder_t    encoder;
    fuzz_anthropic_stream_t   proto;
    fuzz_record_t             sent;        /* events to the client */
    ngx_http_llm_sbuf_t       out;         /* the client's stream */
    ngx_http_llm_sbuf_t       tmp;
    unsigned                  aborted:1;   /* the provider said error */
    unsigned                  done_sent:1;
} fuzz_stream_t;


static uint32_t
fuzz_rand(uint32_t *state)
{
    uint32_t  x;

    x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;

    return x;
}


/* ngx_http_llm_events(): what the client receives for encoder events */

static void
fuzz_send(fuzz_stream_t *fs, json_t *events)
{
    size_t    i;
    json_t   *ev, *name, *data;

    if (!json_is_array(events)) {
        FUZZ_FAIL("the encoder's events are not an array");
    }

    json_array_foreach(events, i, ev) {

        fuzz_anthropic_stream_event(&fs->proto, ev);

        name = json_array_get(ev, 0);
        data = json_array_get(ev, 1);

        fuzz_check_dump(fs->pool, data, json_string_value(name), &fs->tmp);

        fuzz_record_add(&fs->sent, (u_char *) json_string_value(name),
                        json_string_length(name), fs->tmp.data, fs->tmp.len);

        if (ngx_http_llm_sbuf_append(fs->pool, &fs->out,
                                     (u_char *) "event: ", 7, 0) != NGX_OK
            || ngx_http_llm_sbuf_append(fs->pool, &fs->out,
                                        (u_char *) json_string_value(name),
                                        json_string_length(name), 0)
               != NGX_OK
            || ngx_http_llm_sbuf_append(fs->pool, &fs->out,
                                        (u_char *) "\ndata: ", 7, 0)
               != NGX_OK
            || ngx_http_llm_json_append(fs->pool, data, &fs->out) != NGX_OK
            || ngx_http_llm_sbuf_append(fs->pool, &fs->out,
                                        (u_char *) "\n\n", 2, 0) != NGX_OK)
        {
            FUZZ_FAIL("cannot write the client's stream");
        }
    }
}


/* ngx_http_llm_emit_chunk() for an Anthropic client */

static void
fuzz_emit_chunk(fuzz_stream_t *fs, json_t *chunk)
{
    json_t     *events;
    ngx_int_t   rc;

    if (!json_is_array(json_object_get(chunk, "choices"))) {
        return;
    }

    events = json_array();
    if (events == NULL) {
        FUZZ_FAIL("out of memory");
    }

    rc = ngx_http_llm_messages_chunk(&fs->encoder, chunk, events);

    if (rc != NGX_OK) {
        FUZZ_FAIL("ngx_http_llm_messages_chunk() returned %d",
                  (int) rc);
    }

    fuzz_send(fs, events);

    json_decref(events);
}


/* ngx_http_llm_emit_done() */

static void
fuzz_emit_done(fuzz_stream_t *fs)
{
    json_t     *events;
    ngx_int_t   rc;

    if (fs->done_sent) {
        return;
    }

    fs->done_sent = 1;

    events = json_array();
    if (events == NULL) {
        FUZZ_FAIL("out of memory");
    }

    rc = ngx_http_llm_messages_end(&fs->encoder, events);

    if (rc != NGX_OK) {
        FUZZ_FAIL("ngx_http_llm_messages_end() returned %d", (int) rc);
    }

    fuzz_send(fs, events);

    json_decref(events);
}


/* ngx_http_llm_upstream_event() */

static void
fuzz_event(fuzz_stream_t *fs, ngx_http_llm_sse_event_t *ev)
{
    size_t      i;
    json_t     *root, *chunks, *chunk;
    ngx_int_t   rc;

    if (fs->aborted) {
        return;
    }

    if (fs->dialect == FUZZ_OPENAI
        && ev->data.len == 6 && ngx_strncmp(ev->data.data, "[DONE]", 6) == 0)
    {
        fuzz_emit_done(fs);
        return;
    }

    root = json_loadb((const char *) ev->data.data, ev->data.len,
                      JSON_ALLOW_NUL, NULL);

    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }

    if (fs->dialect == FUZZ_OPENAI) {

        if (json_object_get(root, "error") != NULL) {
            fs->aborted = 1;

        } else {
            fuzz_emit_chunk(fs, root);
        }

        json_decref(root);
        return;
    }

    chunks = json_array();
    if (chunks == NULL) {
        FUZZ_FAIL("out of memory");
    }

    if (fs->dialect == FUZZ_ANTHROPIC) {
        rc = ngx_http_llm_anthropic_event(&fs->decoder,
                                          (char *) ev->event.data,
                                          ev->event.len, root, chunks);
    } else {
        rc = ngx_http_llm_gemini_event(&fs->decoder, root, chunks);
    }

    json_decref(root);

    if (rc != NGX_OK && rc != NGX_DONE && rc != NGX_ABORT
        && rc != NGX_DECLINED)
    {
        FUZZ_FAIL("the %s event decoder returned %d",
                  fs->dialect == FUZZ_ANTHROPIC ? "anthropic" : "gemini",
                  (int) rc);
    }

    if (!json_is_array(chunks)) {
        FUZZ_FAIL("chunks is no longer an array");
    }

    json_array_foreach(chunks, i, chunk) {

        if (!json_is_object(chunk)
            || !json_is_array(json_object_get(chunk, "choices")))
        {
            FUZZ_FAIL("a canonical chunk without a \"choices\" array");
        }

        fuzz_check_dump(fs->pool, chunk, "canonical chunk", &fs->tmp);

        fuzz_emit_chunk(fs, chunk);
    }

    json_decref(chunks);

    if (rc == NGX_DONE) {
        fuzz_emit_done(fs);

    } else if (rc == NGX_ABORT) {
        if (memchr(fs->decoder.error, '\0', sizeof(fs->decoder.error))
            == NULL)
        {
            FUZZ_FAIL("the decoder's error message is not terminated");
        }

        fs->aborted = 1;
    }
}


/*
 * With a limit, the parser bounds every line alike, whether it was parsed
 * in place or put together from pieces: the outcome must be the same
 * however the stream was cut (crashes/fuzz_sse_decode-2 and -3 were found
 * when it was not).  FUZZ_SSE_LENIENT_LIMIT=1 only asks that a stream cut
 * in pieces fails no later than whole, with the same events until then.
 */

static ngx_uint_t
fuzz_strict_limit(void)
{
    static int  strict = -1;

    if (strict < 0) {
        strict = getenv("FUZZ_SSE_LENIENT_LIMIT") == NULL;
    }

    return strict;
}


/* feeds one piece, in memory of its own size, as the relay does */

static ngx_int_t
fuzz_feed(ngx_http_llm_sse_t *p, const u_char *data, size_t len,
    fuzz_record_t *rec, fuzz_stream_t *fs)
{
    u_char                   *buf, *pos;
    ngx_int_t                 rc;
    ngx_http_llm_sse_event_t  ev;

    buf = malloc(len ? len : 1);
    if (buf == NULL) {
        FUZZ_FAIL("out of memory");
    }

    if (len) {
        memcpy(buf, data, len);
    }

    pos = buf;

    for ( ;; ) {
        ngx_memzero(&ev, sizeof(ngx_http_llm_sse_event_t));

        rc = ngx_http_llm_sse_parse(p, &pos, buf + len, &ev);

        if (rc == NGX_AGAIN) {
            if (pos != buf + len) {
                FUZZ_FAIL("NGX_AGAIN with input left");
            }

            break;
        }

        if (rc == NGX_ERROR) {
            break;
        }

        if (rc != NGX_OK) {
            FUZZ_FAIL("ngx_http_llm_sse_parse() returned %d", (int) rc);
        }

        if (pos < buf || pos > buf + len) {
            FUZZ_FAIL("the parser moved outside its input");
        }

        if ((ev.data.len && ev.data.data == NULL)
            || (ev.event.len && ev.event.data == NULL))
        {
            FUZZ_FAIL("an event with a length and no data");
        }

        fuzz_record_add(rec, ev.event.data, ev.event.len, ev.data.data,
                        ev.data.len);

        if (fs) {
            fuzz_event(fs, &ev);
        }
    }

    free(buf);

    return rc;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                   *pos;
    size_t                    n, off, piece, max;
    uint32_t                  seed;
    ngx_int_t                 rc_split, rc_whole, rc;
    ngx_uint_t                pattern, limited, param;
    fuzz_record_t             split, whole, back;
    fuzz_stream_t             fs;
    ngx_http_llm_sse_t        parser, again;
    ngx_http_llm_sse_event_t  ev;

    if (size < 2) {
        return 0;
    }

    ngx_memzero(&fs, sizeof(fuzz_stream_t));
    ngx_memzero(&split, sizeof(fuzz_record_t));
    ngx_memzero(&whole, sizeof(fuzz_record_t));
    ngx_memzero(&back, sizeof(fuzz_record_t));

    fs.dialect = data[0] % 3;
    pattern = (data[0] / 3) % 6;
    limited = ((data[0] / 18) % 4) == 3;
    param = data[1];

    data += 2;
    size -= 2;

    max = limited ? 16 + param * 8 : NGX_HTTP_LLM_MAX_EVENT;

    fs.pool = ngx_fuzz_pool_create();
    fuzz_decoder_init(&fs.decoder);
    ngx_http_llm_messages_encoder_init(&fs.encoder);
    fuzz_anthropic_stream_init(&fs.proto);

    /* the stream in pieces, decoded as it comes */

    ngx_memzero(&parser, sizeof(ngx_http_llm_sse_t));
    ngx_http_llm_sse_init(&parser, fs.pool, max);

    seed = 0x9e3779b9u ^ (uint32_t) (param * 2654435761u) ^ (uint32_t) size;
    seed = seed ? seed : 1;
    rc_split = NGX_AGAIN;
    off = 0;

    while (off < size) {

        switch (pattern) {

        case FUZZ_PIECES_ONE_BYTE:
            piece = 1;
            break;

        case FUZZ_PIECES_FIXED:
            piece = param + 1;
            break;

        case FUZZ_PIECES_TINY:
            piece = fuzz_rand(&seed) % 9;   /* 0: an empty piece */
            break;

        case FUZZ_PIECES_SMALL:
            piece = 1 + fuzz_rand(&seed) % 300;
            break;

        case FUZZ_PIECES_LINES:
            for (n = off; n < size && data[n] != '\r' && data[n] != '\n'; n++)
            {
                /* void */
            }

            piece = (n < size ? n + 1 : size) - off;
            break;

        default: /* FUZZ_PIECES_TWO */
            piece = off == 0 ? ngx_max((size * param) / 256, 1) : size - off;
            break;
        }

        piece = ngx_min(piece, size - off);

        rc_split = fuzz_feed(&parser, data + off, piece, &split, &fs);

        off += piece;

        if (rc_split == NGX_ERROR) {
            break;
        }
    }

    if (!limited && rc_split == NGX_ERROR) {
        FUZZ_FAIL("the parser failed without a limit to reach");
    }

    /* the stream is over: the encoder closes what is open */

    fuzz_emit_done(&fs);

    if (!fs.proto.stopped) {
        FUZZ_FAIL("the client's stream ends without message_stop or error");
    }

    /*
     * the same stream in one piece, with the same parser set up again as
     * for a new attempt (which gives back what it held)
     */

    ngx_http_llm_sse_init(&parser, fs.pool, max);

    rc_whole = fuzz_feed(&parser, data, size, &whole, NULL);

    if (rc_split != NGX_ERROR || fuzz_strict_limit()) {
        if ((rc_whole == NGX_ERROR) != (rc_split == NGX_ERROR)) {
            FUZZ_FAIL("the stream fails %s, not %s",
                      rc_whole == NGX_ERROR ? "in one piece" : "in pieces",
                      rc_whole == NGX_ERROR ? "in pieces" : "in one piece");
        }

        if (split.count != whole.count || split.len != whole.len
            || (split.len && memcmp(split.data, whole.data, split.len) != 0))
        {
            FUZZ_FAIL("the stream in pieces gives other events (%zu) than "
                      "in one piece (%zu)", split.count, whole.count);
        }

    } else if (!fuzz_record_prefix(&split, &whole)) {
        FUZZ_FAIL("the stream in pieces, until its error, gives other "
                  "events (%zu) than in one piece (%zu)",
                  split.count, whole.count);
    }

    if (getenv("FUZZ_VERBOSE")) {
        fprintf(stderr, "%zu events in pieces, %zu in one piece; the "
                "client's stream:\n%.*s\n", split.count, whole.count,
                (int) fs.out.len, fs.out.data);
    }

    /* what the client got reads back as the events that were sent */

    ngx_memzero(&again, sizeof(ngx_http_llm_sse_t));
    ngx_http_llm_sse_init(&again, fs.pool, 0);

    pos = fs.out.data;

    while (pos < fs.out.data + fs.out.len) {
        rc = ngx_http_llm_sse_parse(&again, &pos, fs.out.data + fs.out.len,
                                    &ev);
        if (rc != NGX_OK) {
            break;
        }

        fuzz_record_add(&back, ev.event.data, ev.event.len, ev.data.data,
                        ev.data.len);
    }

    if (back.count != fs.sent.count || back.len != fs.sent.len
        || (back.len && memcmp(back.data, fs.sent.data, back.len) != 0))
    {
        FUZZ_FAIL("the client's stream reads back as other events (%zu) "
                  "than were sent (%zu)", back.count, fs.sent.count);
    }

    fuzz_record_free(&split);
    fuzz_record_free(&whole);
    fuzz_record_free(&back);
    fuzz_record_free(&fs.sent);

    ngx_fuzz_pool_destroy(fs.pool);

    return 0;
}
