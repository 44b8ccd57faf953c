
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * An incremental parser for text/event-stream (the WHATWG "server-sent
 * events" format).  Bytes go in as they arrive, split anywhere; a complete
 * event comes out when its terminating blank line has been seen.  Lines end
 * with LF, CRLF or CR; "data" lines of one event are joined with LF;
 * comments and the "id" and "retry" fields are skipped.
 */


/*
 * A line may be as long as an event's worth of value after the longest
 * field name, its colon and a space.  Every line is held to it, whether
 * it came in one read or was put together from several: the same stream
 * must not pass or fail depending on how the network cut it.
 */

#define NGX_HTTP_LLM_SSE_FIELD  (sizeof("event: ") - 1)


static ngx_int_t ngx_http_llm_sse_line(ngx_http_llm_sse_t *p, u_char *line,
    size_t len, ngx_http_llm_sse_event_t *ev);


void
ngx_http_llm_sse_init(ngx_http_llm_sse_t *p, ngx_pool_t *pool, size_t max)
{
    /* a parser used before (by a failed attempt) gives its memory back */

    if (p->line.data) {
        (void) ngx_pfree(p->pool, p->line.data);
    }

    if (p->data.data) {
        (void) ngx_pfree(p->pool, p->data.data);
    }

    if (p->event.data) {
        (void) ngx_pfree(p->pool, p->event.data);
    }

    ngx_memzero(p, sizeof(ngx_http_llm_sse_t));

    p->pool = pool;
    p->max = max;
}


/*
 * Returns NGX_OK with "ev" set when an event is complete ("*pos" is left
 * just after it), NGX_AGAIN when all input was consumed without completing
 * one, NGX_ERROR when an event is larger than the limit or memory runs out.
 * The event's strings stay valid until the next call.
 */

ngx_int_t
ngx_http_llm_sse_parse(ngx_http_llm_sse_t *p, u_char **pos, u_char *last,
    ngx_http_llm_sse_event_t *ev)
{
    u_char     *s, *e, *line;
    size_t      len, max;
    ngx_int_t   rc;

    s = *pos;
    max = p->max ? p->max + NGX_HTTP_LLM_SSE_FIELD : 0;

    while (s < last) {

        if (p->skip_lf) {
            p->skip_lf = 0;

            if (*s == LF) {
                s++;
                continue;
            }
        }

        for (e = s; e < last; e++) {
            if (*e == LF || *e == CR) {
                break;
            }
        }

        if (e == last) {
            /* an incomplete line: keep it for the next call */

            rc = ngx_http_llm_sbuf_append(p->pool, &p->line, s, e - s,
                                          max);
            if (rc != NGX_OK) {
                return NGX_ERROR;
            }

            *pos = last;
            return NGX_AGAIN;
        }

        if (*e == CR) {
            p->skip_lf = 1;
        }

        if (p->line.len) {
            rc = ngx_http_llm_sbuf_append(p->pool, &p->line, s, e - s,
                                          max);
            if (rc != NGX_OK) {
                return NGX_ERROR;
            }

            line = p->line.data;
            len = p->line.len;
            p->line.len = 0;

        } else {
            line = s;
            len = e - s;

            if (max && len > max) {
                return NGX_ERROR;
            }
        }

        s = e + 1;

        rc = ngx_http_llm_sse_line(p, line, len, ev);

        if (rc == NGX_OK) {
            *pos = s;
            return NGX_OK;
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    *pos = s;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_llm_sse_line(ngx_http_llm_sse_t *p, u_char *line, size_t len,
    ngx_http_llm_sse_event_t *ev)
{
    u_char  *colon, *value;
    size_t   name_len, value_len;

    if (len == 0) {

        /* a blank line dispatches the event */

        if (!p->has_data) {
            p->event.len = 0;
            return NGX_DECLINED;
        }

        ev->data.data = p->data.data;
        ev->data.len = p->data.len;
        ev->event.data = p->event.data;
        ev->event.len = p->event.len;

        p->has_data = 0;
        p->data.len = 0;
        p->event.len = 0;

        return NGX_OK;
    }

    if (line[0] == ':') {
        return NGX_DECLINED;
    }

    colon = ngx_strlchr(line, line + len, ':');

    if (colon) {
        name_len = colon - line;
        value = colon + 1;

        if (value < line + len && *value == ' ') {
            value++;
        }

        value_len = line + len - value;

    } else {
        name_len = len;
        value = line + len;
        value_len = 0;
    }

    if (name_len == 4 && ngx_strncmp(line, "data", 4) == 0) {

        if (p->has_data) {
            if (ngx_http_llm_sbuf_append(p->pool, &p->data, (u_char *) "\n",
                                         1, p->max)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (ngx_http_llm_sbuf_append(p->pool, &p->data, value, value_len,
                                     p->max)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        p->has_data = 1;

        return NGX_DECLINED;
    }

    if (name_len == 5 && ngx_strncmp(line, "event", 5) == 0) {
        p->event.len = 0;

        if (ngx_http_llm_sbuf_append(p->pool, &p->event, value, value_len,
                                     p->max)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_DECLINED;
    }

    /* "id", "retry" and unknown fields are ignored */

    return NGX_DECLINED;
}
