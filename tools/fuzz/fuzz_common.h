
/*
 * Copyright (C) The ngx_llm_router authors
 */


#ifndef _FUZZ_COMMON_H_INCLUDED_
#define _FUZZ_COMMON_H_INCLUDED_


/*
 * Checks shared by the fuzz targets.  A failed check prints what broke
 * and calls abort(), which libFuzzer reports as a crash with the input.
 */


#include <stddef.h>
#include <stdint.h>

#include "ngx_http_llm_router.h"
#include "ngx_fuzz_shim.h"


#define FUZZ_FAIL(...)  fuzz_fail(__FILE__, __LINE__, __VA_ARGS__)

void fuzz_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));


/* a decoder as ngx_http_llm_handler.c sets one up */
void fuzz_decoder_init(ngx_http_llm_decoder_t *d);


/*
 * Serializes "json" the way the module does (ngx_http_llm_json_dump()
 * into a pool buffer); it must succeed and give JSON that parses back.
 * "sb" receives the text when not NULL.
 */
void fuzz_check_dump(ngx_pool_t *pool, json_t *json, const char *what,
    ngx_http_llm_sbuf_t *sb);


/*
 * A translator that answers NULL must say why (the module turns a NULL
 * with no message into a 500), and no input is "out of memory" here: the
 * fuzzers never run out of it.
 */
void fuzz_check_err(json_t *out, const char *err, const char *what);


/* a record of events, to compare two runs of the SSE parser */

typedef struct {
    u_char     *data;
    size_t      len;
    size_t      size;
    size_t      count;
} fuzz_record_t;

void fuzz_record_add(fuzz_record_t *r, const u_char *name, size_t name_len,
    const u_char *data, size_t data_len);
void fuzz_record_free(fuzz_record_t *r);
/* 1 when "a" is "b" or the beginning of it, event by event */
int fuzz_record_prefix(fuzz_record_t *a, fuzz_record_t *b);


/*
 * The Anthropic client's stream as a protocol: message_start first and
 * once, content blocks numbered from 0 and never nested, text deltas into
 * the open block, tool arguments into a tool_use block, message_delta once
 * with no block open, message_stop after it, and nothing after
 * message_stop or error.
 */

#define FUZZ_MAX_TRACKED_BLOCKS  4096

typedef struct {
    unsigned    started:1;
    unsigned    delta_sent:1;
    unsigned    stopped:1;
    json_int_t  open;                 /* the open block, -1 */
    json_int_t  blocks;               /* blocks started */
    u_char      type[FUZZ_MAX_TRACKED_BLOCKS];
                                      /* 't' text, 'k' thinking, 'u' tool */
} fuzz_anthropic_stream_t;

void fuzz_anthropic_stream_init(fuzz_anthropic_stream_t *s);
/* checks one [name, data] pair of ngx_http_llm_messages_chunk()'s output */
void fuzz_anthropic_stream_event(fuzz_anthropic_stream_t *s, json_t *ev);


#endif /* _FUZZ_COMMON_H_INCLUDED_ */
