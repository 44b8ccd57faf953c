
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_dialect.h"


/*
 * Anthropic's Messages API as the client's format (POST /v1/messages).
 *
 * Pure functions: jansson and libc only, so that the translations can be
 * fuzzed on their own.  The growable buffer below uses malloc(): nothing
 * of it outlives a call.
 */


typedef struct {
    char                       *data;
    size_t                      len;
    size_t                      size;
} ngx_http_llm_messages_buf_t;


static ngx_int_t ngx_http_llm_messages_system(json_t *msgs, json_t *system,
    const char **err);
static ngx_int_t ngx_http_llm_messages_user(json_t *msgs, json_t *content,
    const char **err);
static ngx_int_t ngx_http_llm_messages_tool_result(json_t *msgs,
    json_t *parts, json_t *block, const char **err);
static ngx_int_t ngx_http_llm_messages_assistant(json_t *msgs,
    json_t *content, const char **err);
static json_t *ngx_http_llm_messages_image(json_t *block);
static json_t *ngx_http_llm_messages_text_part(json_t *text);
static ngx_int_t ngx_http_llm_messages_tools(json_t *out, json_t *req,
    const char **err);
static ngx_int_t ngx_http_llm_messages_params(json_t *out, json_t *req);
static json_t *ngx_http_llm_messages_arguments(json_t *input);
static json_t *ngx_http_llm_messages_input(json_t *arguments);
static json_t *ngx_http_llm_messages_id(json_t *id);
static const char *ngx_http_llm_messages_stop_reason(json_t *finish);
static json_t *ngx_http_llm_messages_usage(json_t *usage);
static json_t *ngx_http_llm_messages_choice(json_t *obj);

static ngx_int_t ngx_http_llm_messages_event(json_t *events, const char *name,
    json_t *data);
static ngx_int_t ngx_http_llm_messages_start(ngx_http_llm_encoder_t *e,
    json_t *chunk, json_t *events);
static ngx_int_t ngx_http_llm_messages_open(ngx_http_llm_encoder_t *e,
    json_t *block, json_t *events);
static ngx_int_t ngx_http_llm_messages_close(ngx_http_llm_encoder_t *e,
    json_t *events);
static ngx_int_t ngx_http_llm_messages_delta(ngx_int_t index, json_t *delta,
    json_t *events);
static ngx_int_t ngx_http_llm_messages_tool_calls(ngx_http_llm_encoder_t *e,
    json_t *calls, json_t *events);
static ngx_int_t ngx_http_llm_messages_finish(ngx_http_llm_encoder_t *e,
    json_t *usage, json_t *events);
static ngx_int_t ngx_http_llm_messages_error(ngx_http_llm_encoder_t *e,
    json_t *error, json_t *events);

static ngx_int_t ngx_http_llm_messages_buf_add(ngx_http_llm_messages_buf_t *b,
    const char *data, size_t len);
static json_t *ngx_http_llm_messages_buf_string(
    ngx_http_llm_messages_buf_t *b);
static int64_t ngx_http_llm_messages_int(json_t *obj, const char *key);


static const char  ngx_http_llm_messages_oom[] = "The router is out of memory";

/* Anthropic's error types: a canonical error of another type is api_error */

static const char  *ngx_http_llm_messages_error_types[] = {
    "invalid_request_error", "authentication_error", "billing_error",
    "permission_error", "not_found_error", "request_too_large",
    "rate_limit_error", "timeout_error", "api_error", "overloaded_error",
    NULL
};


/* request: Messages -> canonical */

json_t *
ngx_http_llm_messages_request(json_t *req, const char **err)
{
    size_t   i;
    json_t  *out, *msgs, *in, *msg, *role, *content;

    *err = ngx_http_llm_messages_oom;

    if (!json_is_object(req)) {
        *err = "The request must be a JSON object";
        return NULL;
    }

    in = json_object_get(req, "messages");

    if (!json_is_array(in) || json_array_size(in) == 0) {
        *err = "\"messages\" must be a non-empty array";
        return NULL;
    }

    out = json_object();
    if (out == NULL) {
        return NULL;
    }

    /* the model as given: the router resolves it */

    if (json_object_get(req, "model")
        && json_object_set(out, "model", json_object_get(req, "model")) != 0)
    {
        goto failed;
    }

    msgs = json_array();

    if (json_object_set_new(out, "messages", msgs) != 0) {
        goto failed;
    }

    if (ngx_http_llm_messages_system(msgs, json_object_get(req, "system"), err)
        != NGX_OK)
    {
        goto failed;
    }

    json_array_foreach(in, i, msg) {

        role = json_object_get(msg, "role");
        content = json_object_get(msg, "content");

        if (!json_is_object(msg)
            || !(ngx_http_llm_dialect_is(role, "user")
                 || ngx_http_llm_dialect_is(role, "assistant")))
        {
            *err = "Each message must be an object with \"role\" "
                   "\"user\" or \"assistant\"";
            goto failed;
        }

        if (!json_is_string(content) && !json_is_array(content)) {
            *err = "A message's \"content\" must be a string or an array "
                   "of content blocks";
            goto failed;
        }

        if (ngx_http_llm_dialect_is(role, "user")) {
            if (ngx_http_llm_messages_user(msgs, content, err) != NGX_OK) {
                goto failed;
            }

        } else {
            if (ngx_http_llm_messages_assistant(msgs, content, err)
                != NGX_OK)
            {
                goto failed;
            }
        }
    }

    if (ngx_http_llm_messages_tools(out, req, err) != NGX_OK) {
        goto failed;
    }

    if (ngx_http_llm_messages_params(out, req) != NGX_OK) {
        goto failed;
    }

    return out;

failed:

    json_decref(out);

    return NULL;
}


/* "system": a string or text blocks, joined into one system message */

static ngx_int_t
ngx_http_llm_messages_system(json_t *msgs, json_t *system, const char **err)
{
    size_t                        i;
    json_t                       *block, *text, *msg;
    ngx_http_llm_messages_buf_t   b;

    if (system == NULL || json_is_null(system)) {
        return NGX_OK;
    }

    if (json_is_string(system)) {
        if (json_string_length(system) == 0) {
            return NGX_OK;
        }

        text = json_incref(system);

    } else if (json_is_array(system)) {

        ngx_memzero(&b, sizeof(ngx_http_llm_messages_buf_t));

        json_array_foreach(system, i, block) {

            if (!json_is_object(block)) {
                free(b.data);
                *err = "\"system\" must be a string or an array of text "
                       "blocks";
                return NGX_ERROR;
            }

            if (!ngx_http_llm_dialect_is(json_object_get(block, "type"),
                                         "text"))
            {
                continue;
            }

            text = json_object_get(block, "text");

            if (!json_is_string(text)) {
                free(b.data);
                *err = "A text block needs a \"text\" string";
                return NGX_ERROR;
            }

            if (json_string_length(text) == 0) {
                continue;
            }

            if ((b.len
                 && ngx_http_llm_messages_buf_add(&b, "\n\n", 2) != NGX_OK)
                || ngx_http_llm_messages_buf_add(&b, json_string_value(text),
                                                 json_string_length(text))
                   != NGX_OK)
            {
                free(b.data);
                return NGX_ERROR;
            }
        }

        if (b.len == 0) {
            free(b.data);
            return NGX_OK;
        }

        text = ngx_http_llm_messages_buf_string(&b);

    } else {
        *err = "\"system\" must be a string or an array of text blocks";
        return NGX_ERROR;
    }

    msg = json_pack("{s:s,s:o}", "role", "system", "content", text);

    return (json_array_append_new(msgs, msg) == 0) ? NGX_OK : NGX_ERROR;
}


/*
 * A user turn: tool_result blocks become "tool" messages, in their place,
 * before one user message with the rest of the turn (text, images, and
 * the images a tool returned, which a "tool" message cannot hold).
 */

static ngx_int_t
ngx_http_llm_messages_user(json_t *msgs, json_t *content, const char **err)
{
    size_t   i, before;
    json_t  *parts, *block, *type, *part, *msg, *source;

    if (json_is_string(content)) {
        msg = json_object();

        if (json_array_append_new(msgs, msg) != 0
            || json_object_set_new(msg, "role", json_string("user")) != 0
            || json_object_set(msg, "content", content) != 0)
        {
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    parts = json_array();
    if (parts == NULL) {
        return NGX_ERROR;
    }

    before = json_array_size(msgs);

    json_array_foreach(content, i, block) {

        if (!json_is_object(block)) {
            *err = "Each content block must be an object";
            goto failed;
        }

        type = json_object_get(block, "type");
        part = NULL;

        if (ngx_http_llm_dialect_is(type, "text")) {
            part = ngx_http_llm_messages_text_part(
                                           json_object_get(block, "text"));
            if (part == NULL) {
                *err = "A text block needs a \"text\" string";
                goto failed;
            }

        } else if (ngx_http_llm_dialect_is(type, "image")) {
            part = ngx_http_llm_messages_image(block);
            if (part == NULL) {
                *err = "An image block needs a base64 or url \"source\"";
                goto failed;
            }

        } else if (ngx_http_llm_dialect_is(type, "document")) {
            /* plain text documents only */

            source = json_object_get(block, "source");

            if (!ngx_http_llm_dialect_is(json_object_get(source, "type"),
                                         "text"))
            {
                continue;
            }

            part = ngx_http_llm_messages_text_part(
                                          json_object_get(source, "data"));
            if (part == NULL) {
                *err = "A text document needs a \"data\" string";
                goto failed;
            }

        } else if (ngx_http_llm_dialect_is(type, "tool_result")) {
            if (ngx_http_llm_messages_tool_result(msgs, parts, block, err)
                != NGX_OK)
            {
                goto failed;
            }

            continue;

        } else {
            /* tool_use in a user turn, thinking, search results... */
            continue;
        }

        if (json_array_append_new(parts, part) != 0) {
            *err = ngx_http_llm_messages_oom;
            goto failed;
        }
    }

    if (json_array_size(parts) == 0 && json_array_size(msgs) > before) {
        /* only tool results */
        json_decref(parts);
        return NGX_OK;
    }

    msg = json_object();

    if (json_array_append_new(msgs, msg) != 0
        || json_object_set_new(msg, "role", json_string("user")) != 0)
    {
        goto failed;
    }

    if (json_array_size(parts) == 0) {
        json_decref(parts);
        parts = json_string("");

    } else if (json_array_size(parts) == 1
               && ngx_http_llm_dialect_is(
                      json_object_get(json_array_get(parts, 0), "type"),
                      "text"))
    {
        /* one text part: a plain string, which every provider takes */

        part = json_incref(json_object_get(json_array_get(parts, 0), "text"));
        json_decref(parts);
        parts = part;
    }

    if (json_object_set_new(msg, "content", parts) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;

failed:

    json_decref(parts);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_llm_messages_tool_result(json_t *msgs, json_t *parts, json_t *block,
    const char **err)
{
    size_t                        i;
    json_t                       *id, *content, *item, *text, *msg, *part;
    ngx_http_llm_messages_buf_t   b;

    id = json_object_get(block, "tool_use_id");

    if (!json_is_string(id)) {
        *err = "A tool_result block needs a \"tool_use_id\"";
        return NGX_ERROR;
    }

    content = json_object_get(block, "content");

    if (json_is_string(content)) {
        text = json_incref(content);

    } else if (content == NULL || json_is_null(content)) {
        text = json_string("");

    } else if (json_is_array(content)) {

        ngx_memzero(&b, sizeof(ngx_http_llm_messages_buf_t));

        json_array_foreach(content, i, item) {

            if (ngx_http_llm_dialect_is(json_object_get(item, "type"),
                                        "image"))
            {
                part = ngx_http_llm_messages_image(item);

                if (part == NULL) {
                    free(b.data);
                    *err = "An image block needs a base64 or url "
                           "\"source\"";
                    return NGX_ERROR;
                }

                if (json_array_append_new(parts, part) != 0) {
                    free(b.data);
                    *err = ngx_http_llm_messages_oom;
                    return NGX_ERROR;
                }

                continue;
            }

            if (!ngx_http_llm_dialect_is(json_object_get(item, "type"),
                                         "text"))
            {
                continue;
            }

            text = json_object_get(item, "text");

            if (!json_is_string(text)) {
                free(b.data);
                *err = "A text block needs a \"text\" string";
                return NGX_ERROR;
            }

            if ((b.len
                 && ngx_http_llm_messages_buf_add(&b, "\n", 1) != NGX_OK)
                || ngx_http_llm_messages_buf_add(&b, json_string_value(text),
                                                 json_string_length(text))
                   != NGX_OK)
            {
                free(b.data);
                *err = ngx_http_llm_messages_oom;
                return NGX_ERROR;
            }
        }

        text = ngx_http_llm_messages_buf_string(&b);

    } else {
        *err = "A tool_result's \"content\" must be a string or an array "
               "of content blocks";
        return NGX_ERROR;
    }

    msg = json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", id,
                    "content", text);

    if (json_array_append_new(msgs, msg) != 0) {
        *err = ngx_http_llm_messages_oom;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* an assistant turn: its text joined, tool_use blocks as tool_calls */

static ngx_int_t
ngx_http_llm_messages_assistant(json_t *msgs, json_t *content,
    const char **err)
{
    size_t                        i;
    json_t                       *msg, *calls, *block, *type, *text, *id,
                                 *name, *call, *args;
    ngx_http_llm_messages_buf_t   b;

    msg = json_object();

    if (json_array_append_new(msgs, msg) != 0
        || json_object_set_new(msg, "role", json_string("assistant")) != 0)
    {
        return NGX_ERROR;
    }

    if (json_is_string(content)) {
        return (json_object_set(msg, "content", content) == 0) ? NGX_OK
                                                               : NGX_ERROR;
    }

    calls = json_array();
    if (calls == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&b, sizeof(ngx_http_llm_messages_buf_t));

    json_array_foreach(content, i, block) {

        if (!json_is_object(block)) {
            *err = "Each content block must be an object";
            goto failed;
        }

        type = json_object_get(block, "type");

        if (ngx_http_llm_dialect_is(type, "text")) {
            text = json_object_get(block, "text");

            if (!json_is_string(text)) {
                *err = "A text block needs a \"text\" string";
                goto failed;
            }

            if (ngx_http_llm_messages_buf_add(&b, json_string_value(text),
                                              json_string_length(text))
                != NGX_OK)
            {
                goto failed;
            }

            continue;
        }

        if (!ngx_http_llm_dialect_is(type, "tool_use")) {
            /* thinking, redacted_thinking, server tools */
            continue;
        }

        id = json_object_get(block, "id");
        name = json_object_get(block, "name");

        if (!json_is_string(id) || !json_is_string(name)) {
            *err = "A tool_use block needs an \"id\" and a \"name\"";
            goto failed;
        }

        args = ngx_http_llm_messages_arguments(json_object_get(block,
                                                               "input"));
        if (args == NULL) {
            goto failed;
        }

        call = json_pack("{s:O,s:s,s:{s:O,s:o}}",
                         "id", id,
                         "type", "function",
                         "function",
                           "name", name,
                           "arguments", args);

        if (json_array_append_new(calls, call) != 0) {
            goto failed;
        }
    }

    if (b.len || json_array_size(calls) == 0) {
        text = ngx_http_llm_messages_buf_string(&b);
        b.data = NULL;

    } else {
        /* tool calls alone */
        text = json_null();
    }

    if (json_object_set_new(msg, "content", text) != 0) {
        goto failed;
    }

    if (json_array_size(calls)) {
        if (json_object_set_new(msg, "tool_calls", calls) != 0) {
            return NGX_ERROR;
        }

    } else {
        json_decref(calls);
    }

    return NGX_OK;

failed:

    free(b.data);
    json_decref(calls);

    return NGX_ERROR;
}


static json_t *
ngx_http_llm_messages_text_part(json_t *text)
{
    if (!json_is_string(text)) {
        return NULL;
    }

    return json_pack("{s:s,s:O}", "type", "text", "text", text);
}


/* base64 source -> data: URL, url source -> the URL */

static json_t *
ngx_http_llm_messages_image(json_t *block)
{
    json_t                       *source, *type, *media, *data, *url;
    ngx_http_llm_messages_buf_t   b;

    source = json_object_get(block, "source");
    type = json_object_get(source, "type");

    if (ngx_http_llm_dialect_is(type, "url")) {
        url = json_object_get(source, "url");

        if (!json_is_string(url)) {
            return NULL;
        }

        return json_pack("{s:s,s:{s:O}}",
                         "type", "image_url",
                         "image_url", "url", url);
    }

    if (!ngx_http_llm_dialect_is(type, "base64")) {
        return NULL;
    }

    media = json_object_get(source, "media_type");
    data = json_object_get(source, "data");

    if (!json_is_string(media) || !json_is_string(data)) {
        return NULL;
    }

    ngx_memzero(&b, sizeof(ngx_http_llm_messages_buf_t));

    if (ngx_http_llm_messages_buf_add(&b, "data:", 5) != NGX_OK
        || ngx_http_llm_messages_buf_add(&b, json_string_value(media),
                                         json_string_length(media))
           != NGX_OK
        || ngx_http_llm_messages_buf_add(&b, ";base64,", 8) != NGX_OK
        || ngx_http_llm_messages_buf_add(&b, json_string_value(data),
                                         json_string_length(data))
           != NGX_OK)
    {
        free(b.data);
        return NULL;
    }

    return json_pack("{s:s,s:{s:o}}",
                     "type", "image_url",
                     "image_url", "url", ngx_http_llm_messages_buf_string(&b));
}


/*
 * tools -> function tools; server tools (a "type" other than "custom")
 * cannot run elsewhere and are left out.  tool_choice only with tools.
 */

static ngx_int_t
ngx_http_llm_messages_tools(json_t *out, json_t *req, const char **err)
{
    size_t   i;
    json_t  *tools, *tool, *list, *name, *type, *fn, *v, *choice;

    tools = json_object_get(req, "tools");

    if (tools == NULL || json_is_null(tools)) {
        return NGX_OK;
    }

    if (!json_is_array(tools)) {
        *err = "\"tools\" must be an array";
        return NGX_ERROR;
    }

    list = json_array();
    if (list == NULL) {
        return NGX_ERROR;
    }

    json_array_foreach(tools, i, tool) {

        if (!json_is_object(tool)) {
            *err = "Each tool must be an object";
            goto failed;
        }

        type = json_object_get(tool, "type");

        if (json_is_string(type) && !ngx_http_llm_dialect_is(type, "custom"))
        {
            continue;
        }

        name = json_object_get(tool, "name");

        if (!json_is_string(name)) {
            *err = "Each tool needs a \"name\"";
            goto failed;
        }

        fn = json_pack("{s:O}", "name", name);

        if (json_array_append_new(list,
                                  json_pack("{s:s,s:o}", "type", "function",
                                            "function", fn))
            != 0)
        {
            goto failed;
        }

        v = json_object_get(tool, "description");

        if (json_is_string(v) && json_object_set(fn, "description", v) != 0) {
            goto failed;
        }

        v = json_object_get(tool, "input_schema");

        if (json_is_object(v)) {
            if (json_object_set(fn, "parameters", v) != 0) {
                goto failed;
            }

        } else if (json_object_set_new(fn, "parameters",
                                       json_pack("{s:s,s:{}}",
                                                 "type", "object",
                                                 "properties"))
                   != 0)
        {
            goto failed;
        }
    }

    if (json_array_size(list) == 0) {
        json_decref(list);
        return NGX_OK;
    }

    if (json_object_set_new(out, "tools", list) != 0) {
        return NGX_ERROR;
    }

    choice = json_object_get(req, "tool_choice");

    if (!json_is_object(choice)) {
        return NGX_OK;
    }

    type = json_object_get(choice, "type");

    if (ngx_http_llm_dialect_is(type, "auto")) {
        v = json_string("auto");

    } else if (ngx_http_llm_dialect_is(type, "any")) {
        v = json_string("required");

    } else if (ngx_http_llm_dialect_is(type, "none")) {
        v = json_string("none");

    } else if (ngx_http_llm_dialect_is(type, "tool")) {
        name = json_object_get(choice, "name");

        if (!json_is_string(name)) {
            *err = "A tool_choice of type \"tool\" needs a \"name\"";
            return NGX_ERROR;
        }

        v = json_pack("{s:s,s:{s:O}}", "type", "function",
                      "function", "name", name);

    } else {
        *err = "\"tool_choice\" must be of type auto, any, tool or none";
        return NGX_ERROR;
    }

    if (json_object_set_new(out, "tool_choice", v) != 0) {
        return NGX_ERROR;
    }

    if (json_is_true(json_object_get(choice, "disable_parallel_tool_use"))
        && json_object_set_new(out, "parallel_tool_calls", json_false()) != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;

failed:

    json_decref(list);

    return NGX_ERROR;
}


/* sampling and length; a value of the wrong type is left out */

static ngx_int_t
ngx_http_llm_messages_params(json_t *out, json_t *req)
{
    size_t   i;
    json_t  *v, *stop, *s;

    v = json_object_get(req, "max_tokens");

    if (json_is_integer(v) && json_object_set(out, "max_tokens", v) != 0) {
        return NGX_ERROR;
    }

    v = json_object_get(req, "temperature");

    if (json_is_number(v) && json_object_set(out, "temperature", v) != 0) {
        return NGX_ERROR;
    }

    v = json_object_get(req, "top_p");

    if (json_is_number(v) && json_object_set(out, "top_p", v) != 0) {
        return NGX_ERROR;
    }

    v = json_object_get(req, "top_k");

    if (json_is_integer(v) && json_object_set(out, "top_k", v) != 0) {
        return NGX_ERROR;
    }

    v = json_object_get(req, "stop_sequences");

    if (json_is_array(v) && json_array_size(v)) {
        stop = json_array();

        if (json_object_set_new(out, "stop", stop) != 0) {
            return NGX_ERROR;
        }

        json_array_foreach(v, i, s) {
            if (json_is_string(s) && json_array_append(stop, s) != 0) {
                return NGX_ERROR;
            }
        }

        if (json_array_size(stop) == 0) {
            json_object_del(out, "stop");
        }
    }

    v = json_object_get(req, "stream");

    if (json_is_boolean(v)) {
        if (json_object_set(out, "stream", v) != 0) {
            return NGX_ERROR;
        }

        /* a Messages stream always reports usage */

        if (json_is_true(v)
            && json_object_set_new(out, "stream_options",
                                   json_pack("{s:b}", "include_usage", 1))
               != 0)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* tool_use "input" serialized as "arguments" */

static json_t *
ngx_http_llm_messages_arguments(json_t *input)
{
    char    *s;
    json_t  *args;

    if (!json_is_object(input)) {
        return json_string("{}");
    }

    s = json_dumps(input, JSON_COMPACT);
    if (s == NULL) {
        return NULL;
    }

    args = json_string(s);

    free(s);

    return args;
}


/* "arguments" parsed back; {} unless they are a JSON object */

static json_t *
ngx_http_llm_messages_input(json_t *arguments)
{
    json_t  *input;

    if (json_is_string(arguments)) {
        input = json_loadb(json_string_value(arguments),
                           json_string_length(arguments), 0, NULL);

        if (json_is_object(input)) {
            return input;
        }

        json_decref(input);
    }

    return json_object();
}


/* "msg_" + the canonical id, unless it already is a Messages id */

static json_t *
ngx_http_llm_messages_id(json_t *id)
{
    ngx_http_llm_messages_buf_t  b;

    if (!json_is_string(id) || json_string_length(id) == 0) {
        return json_string("msg_llm");
    }

    if (json_string_length(id) >= 4
        && ngx_strncmp(json_string_value(id), "msg_", 4) == 0)
    {
        return json_incref(id);
    }

    ngx_memzero(&b, sizeof(ngx_http_llm_messages_buf_t));

    if (ngx_http_llm_messages_buf_add(&b, "msg_", 4) != NGX_OK
        || ngx_http_llm_messages_buf_add(&b, json_string_value(id),
                                         json_string_length(id))
           != NGX_OK)
    {
        free(b.data);
        return NULL;
    }

    return ngx_http_llm_messages_buf_string(&b);
}


static const char *
ngx_http_llm_messages_stop_reason(json_t *finish)
{
    if (ngx_http_llm_dialect_is(finish, "length")) {
        return "max_tokens";
    }

    if (ngx_http_llm_dialect_is(finish, "tool_calls")
        || ngx_http_llm_dialect_is(finish, "function_call"))
    {
        return "tool_use";
    }

    if (ngx_http_llm_dialect_is(finish, "content_filter")) {
        return "refusal";
    }

    return "end_turn";
}


/*
 * Messages usage from canonical usage.  Anthropic's input_tokens do not
 * include the tokens read from the cache, which are counted apart.
 */

static json_t *
ngx_http_llm_messages_usage(json_t *usage)
{
    int64_t   prompt, completion, cached;
    json_t   *u;

    prompt = ngx_http_llm_messages_int(usage, "prompt_tokens");
    completion = ngx_http_llm_messages_int(usage, "completion_tokens");
    cached = ngx_http_llm_messages_int(json_object_get(usage,
                                                   "prompt_tokens_details"),
                                       "cached_tokens");

    if (cached > prompt) {
        cached = prompt;
    }

    u = json_pack("{s:I}", "input_tokens", (json_int_t) (prompt - cached));

    if (u == NULL) {
        return NULL;
    }

    if (json_object_get(json_object_get(usage, "prompt_tokens_details"),
                        "cached_tokens")
        && json_object_set_new(u, "cache_read_input_tokens",
                               json_integer(cached))
           != 0)
    {
        json_decref(u);
        return NULL;
    }

    if (json_object_set_new(u, "output_tokens", json_integer(completion))
        != 0)
    {
        json_decref(u);
        return NULL;
    }

    return u;
}


/* the first choice, or the one with index 0 */

static json_t *
ngx_http_llm_messages_choice(json_t *obj)
{
    size_t   i;
    json_t  *choices, *choice, *index;

    choices = json_object_get(obj, "choices");

    json_array_foreach(choices, i, choice) {

        if (!json_is_object(choice)) {
            continue;
        }

        index = json_object_get(choice, "index");

        if (index == NULL || !json_is_integer(index)
            || json_integer_value(index) == 0)
        {
            return choice;
        }
    }

    return NULL;
}


/* response: canonical chat.completion -> Messages */

json_t *
ngx_http_llm_messages_response(json_t *completion)
{
    size_t   i;
    json_t  *out, *content, *choice, *message, *v, *calls, *call, *fn,
            *block, *id, *part;
    char     name[32];

    if (!json_is_object(completion)) {
        return NULL;
    }

    content = json_array();

    out = json_pack("{s:o,s:s,s:s,s:o}",
                    "id", ngx_http_llm_messages_id(json_object_get(completion,
                                                                   "id")),
                    "type", "message",
                    "role", "assistant",
                    "content", content);
    if (out == NULL) {
        return NULL;
    }

    choice = ngx_http_llm_messages_choice(completion);
    message = json_object_get(choice, "message");

    v = json_object_get(message, "reasoning");

    if (!json_is_string(v)) {
        v = json_object_get(message, "reasoning_content");
    }

    if (json_is_string(v) && json_string_length(v)
        && json_array_append_new(content,
                                 json_pack("{s:s,s:O,s:s}",
                                           "type", "thinking",
                                           "thinking", v,
                                           "signature", ""))
           != 0)
    {
        goto failed;
    }

    v = json_object_get(message, "content");

    if (json_is_string(v)) {
        if (json_string_length(v)
            && json_array_append_new(content,
                                     json_pack("{s:s,s:O}", "type", "text",
                                               "text", v))
               != 0)
        {
            goto failed;
        }

    } else if (json_is_array(v)) {
        json_array_foreach(v, i, part) {
            if (!json_is_string(json_object_get(part, "text"))) {
                continue;
            }

            if (json_array_append_new(content,
                                      json_pack("{s:s,s:O}", "type", "text",
                                                "text",
                                                json_object_get(part, "text")))
                != 0)
            {
                goto failed;
            }
        }

    } else {
        v = json_object_get(message, "refusal");

        if (json_is_string(v) && json_string_length(v)
            && json_array_append_new(content,
                                     json_pack("{s:s,s:O}", "type", "text",
                                               "text", v))
               != 0)
        {
            goto failed;
        }
    }

    calls = json_object_get(message, "tool_calls");

    json_array_foreach(calls, i, call) {

        if (!json_is_object(call)) {
            continue;
        }

        fn = json_object_get(call, "function");
        id = json_object_get(call, "id");

        if (json_is_string(id)) {
            json_incref(id);

        } else {
            snprintf(name, sizeof(name), "toolu_%u", (unsigned) i);
            id = json_string(name);
        }

        v = json_object_get(fn, "name");

        block = json_pack("{s:s,s:o,s:s%,s:o}",
                          "type", "tool_use",
                          "id", id,
                          "name", json_is_string(v) ? json_string_value(v)
                                                    : "",
                          json_is_string(v) ? json_string_length(v) : 0,
                          "input",
                          ngx_http_llm_messages_input(
                                       json_object_get(fn, "arguments")));

        if (json_array_append_new(content, block) != 0) {
            goto failed;
        }
    }

    if (json_array_size(content) == 0
        && json_array_append_new(content,
                                 json_pack("{s:s,s:s}", "type", "text",
                                           "text", ""))
           != 0)
    {
        goto failed;
    }

    if (json_object_set_new(out, "stop_reason",
               json_string(ngx_http_llm_messages_stop_reason(
                               json_object_get(choice, "finish_reason"))))
        != 0
        || json_object_set_new(out, "stop_sequence", json_null()) != 0
        || json_object_set_new(out, "usage",
               ngx_http_llm_messages_usage(json_object_get(completion,
                                                           "usage")))
           != 0)
    {
        goto failed;
    }

    return out;

failed:

    json_decref(out);

    return NULL;
}


/* stream: canonical chunks -> Messages events */

void
ngx_http_llm_messages_encoder_init(ngx_http_llm_encoder_t *e)
{
    ngx_uint_t  i;

    ngx_memzero(e, sizeof(ngx_http_llm_encoder_t));

    e->block = -1;
    e->open_tool = -1;
    e->input_tokens = -1;
    e->output_tokens = -1;

    for (i = 0; i < NGX_HTTP_LLM_MAX_BLOCKS; i++) {
        e->tool[i] = -1;
    }

    ngx_memcpy(e->stop_reason, "end_turn", sizeof("end_turn"));
}


ngx_int_t
ngx_http_llm_messages_chunk(ngx_http_llm_encoder_t *e, json_t *chunk,
    json_t *events)
{
    json_t      *choice, *delta, *v, *usage, *error;
    const char  *reason;

    if (e->stopped || !json_is_object(chunk)) {
        return NGX_OK;
    }

    error = json_object_get(chunk, "error");

    if (error && !json_is_null(error)) {
        return ngx_http_llm_messages_error(e, error, events);
    }

    if (!e->started && ngx_http_llm_messages_start(e, chunk, events) != NGX_OK)
    {
        return NGX_ERROR;
    }

    choice = ngx_http_llm_messages_choice(chunk);
    delta = json_object_get(choice, "delta");

    v = json_object_get(delta, "reasoning");

    if (!json_is_string(v)) {
        v = json_object_get(delta, "reasoning_content");
    }

    if (json_is_string(v) && json_string_length(v)) {

        if (e->block < 0 || e->text || e->open_tool >= 0) {
            if (ngx_http_llm_messages_open(e,
                    json_pack("{s:s,s:s,s:s}", "type", "thinking",
                              "thinking", "", "signature", ""),
                    events)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (ngx_http_llm_messages_delta(e->block,
                json_pack("{s:s,s:O}", "type", "thinking_delta",
                          "thinking", v),
                events)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* a refusal is said as text */

    v = json_object_get(delta, "content");

    if (!json_is_string(v) || json_string_length(v) == 0) {
        v = json_object_get(delta, "refusal");
    }

    if (json_is_string(v) && json_string_length(v)) {

        if (e->block < 0 || !e->text) {
            if (ngx_http_llm_messages_open(e,
                    json_pack("{s:s,s:s}", "type", "text", "text", ""),
                    events)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            e->text = 1;
        }

        if (ngx_http_llm_messages_delta(e->block,
                json_pack("{s:s,s:O}", "type", "text_delta", "text", v),
                events)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    v = json_object_get(delta, "tool_calls");

    if (json_is_array(v)
        && ngx_http_llm_messages_tool_calls(e, v, events) != NGX_OK)
    {
        return NGX_ERROR;
    }

    v = json_object_get(choice, "finish_reason");

    if (json_is_string(v)) {

        if (ngx_http_llm_dialect_is(v, "error")) {
            return ngx_http_llm_messages_error(e, NULL, events);
        }

        if (ngx_http_llm_messages_close(e, events) != NGX_OK) {
            return NGX_ERROR;
        }

        if (!e->finished) {
            e->finished = 1;

            reason = ngx_http_llm_messages_stop_reason(v);
            ngx_memcpy(e->stop_reason, reason, ngx_strlen(reason) + 1);
        }
    }

    usage = json_object_get(chunk, "usage");

    if (!json_is_object(usage)) {
        usage = NULL;

    } else if (!e->finished) {
        /* kept for message_delta; the cache split is not */

        e->input_tokens = ngx_http_llm_messages_int(usage, "prompt_tokens");
        e->output_tokens = ngx_http_llm_messages_int(usage,
                                                     "completion_tokens");
    }

    if (e->finished && (usage || e->output_tokens >= 0)) {
        return ngx_http_llm_messages_finish(e, usage, events);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_llm_messages_end(ngx_http_llm_encoder_t *e, json_t *events)
{
    if (e->stopped) {
        return NGX_OK;
    }

    if (!e->started && ngx_http_llm_messages_start(e, NULL, events) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_llm_messages_close(e, events) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_llm_messages_finish(e, NULL, events);
}


/* appends [name, data], data with its "type" first */

static ngx_int_t
ngx_http_llm_messages_event(json_t *events, const char *name, json_t *data)
{
    json_t  *ev, *typed;

    if (data == NULL) {
        return NGX_ERROR;
    }

    typed = json_pack("{s:s}", "type", name);

    if (typed == NULL || json_object_update(typed, data) != 0) {
        json_decref(typed);
        json_decref(data);
        return NGX_ERROR;
    }

    json_decref(data);

    ev = json_array();

    if (json_array_append_new(ev, json_string(name)) != 0) {
        json_decref(ev);
        json_decref(typed);
        return NGX_ERROR;
    }

    if (json_array_append_new(ev, typed) != 0) {
        json_decref(ev);
        return NGX_ERROR;
    }

    if (json_array_append_new(events, ev) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_llm_messages_start(ngx_http_llm_encoder_t *e, json_t *chunk,
    json_t *events)
{
    size_t       len;
    json_t      *id;
    const char  *s;

    id = ngx_http_llm_messages_id(json_object_get(chunk, "id"));
    if (id == NULL) {
        return NGX_ERROR;
    }

    /* the id, cut on a character boundary if it is too long */

    s = json_string_value(id);
    len = ngx_min(json_string_length(id), sizeof(e->id) - 1);

    while (len < json_string_length(id) && len > 0
           && ((u_char) s[len] & 0xc0) == 0x80)
    {
        len--;
    }

    ngx_memcpy(e->id, s, len);
    e->id[len] = '\0';

    json_decref(id);

    e->started = 1;

    return ngx_http_llm_messages_event(events, "message_start",
               json_pack("{s:{s:s,s:s,s:s,s:[],s:n,s:n,s:{s:i,s:i}}}",
                         "message",
                           "id", e->id,
                           "type", "message",
                           "role", "assistant",
                           "content",
                           "stop_reason",
                           "stop_sequence",
                           "usage",
                             "input_tokens", 0,
                             "output_tokens", 0));
}


/* closes the open block and starts a new one */

static ngx_int_t
ngx_http_llm_messages_open(ngx_http_llm_encoder_t *e, json_t *block,
    json_t *events)
{
    if (block == NULL || ngx_http_llm_messages_close(e, events) != NGX_OK) {
        json_decref(block);
        return NGX_ERROR;
    }

    e->block = e->blocks++;

    return ngx_http_llm_messages_event(events, "content_block_start",
               json_pack("{s:I,s:o}", "index", (json_int_t) e->block,
                         "content_block", block));
}


static ngx_int_t
ngx_http_llm_messages_close(ngx_http_llm_encoder_t *e, json_t *events)
{
    ngx_int_t  block;

    if (e->block < 0) {
        return NGX_OK;
    }

    block = e->block;

    e->block = -1;
    e->text = 0;
    e->open_tool = -1;

    return ngx_http_llm_messages_event(events, "content_block_stop",
               json_pack("{s:I}", "index", (json_int_t) block));
}


static ngx_int_t
ngx_http_llm_messages_delta(ngx_int_t index, json_t *delta, json_t *events)
{
    if (delta == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_llm_messages_event(events, "content_block_delta",
               json_pack("{s:I,s:o}", "index", (json_int_t) index,
                         "delta", delta));
}


/*
 * A tool call's first delta (its id and name) starts a tool_use block;
 * its arguments follow as input_json_delta.  Arguments of a call whose
 * block another one closed still go to that call's block index, which the
 * SDKs accumulate by index.
 */

static ngx_int_t
ngx_http_llm_messages_tool_calls(ngx_http_llm_encoder_t *e, json_t *calls,
    json_t *events)
{
    char        name[32];
    size_t      i;
    json_t     *call, *index, *fn, *id, *fname, *args, *block;
    json_int_t  n;

    json_array_foreach(calls, i, call) {

        if (!json_is_object(call)) {
            continue;
        }

        index = json_object_get(call, "index");
        n = json_is_integer(index) ? json_integer_value(index)
                                   : (json_int_t) i;

        if (n < 0 || n >= NGX_HTTP_LLM_MAX_BLOCKS) {
            continue;
        }

        fn = json_object_get(call, "function");

        if (e->tool[n] < 0) {
            id = json_object_get(call, "id");
            fname = json_object_get(fn, "name");

            if (json_is_string(id) && json_string_length(id)) {
                id = json_incref(id);

            } else {
                snprintf(name, sizeof(name), "toolu_%d", (int) n);
                id = json_string(name);
            }

            block = json_pack("{s:s,s:o,s:s%,s:{}}",
                              "type", "tool_use",
                              "id", id,
                              "name",
                              json_is_string(fname) ? json_string_value(fname)
                                                    : "",
                              json_is_string(fname) ? json_string_length(fname)
                                                    : 0,
                              "input");

            if (ngx_http_llm_messages_open(e, block, events) != NGX_OK) {
                return NGX_ERROR;
            }

            e->tool[n] = e->block;
            e->open_tool = (ngx_int_t) n;
        }

        args = json_object_get(fn, "arguments");

        if (!json_is_string(args) || json_string_length(args) == 0) {
            continue;
        }

        if (ngx_http_llm_messages_delta(e->tool[n],
                json_pack("{s:s,s:O}", "type", "input_json_delta",
                          "partial_json", args),
                events)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* message_delta and message_stop; "usage" when it just arrived */

static ngx_int_t
ngx_http_llm_messages_finish(ngx_http_llm_encoder_t *e, json_t *usage,
    json_t *events)
{
    json_t  *u;

    if (e->delta_sent) {
        return NGX_OK;
    }

    if (ngx_http_llm_messages_close(e, events) != NGX_OK) {
        return NGX_ERROR;
    }

    if (usage) {
        u = ngx_http_llm_messages_usage(usage);

    } else if (e->output_tokens >= 0) {
        u = json_pack("{s:I,s:I}",
                      "input_tokens", (json_int_t) e->input_tokens,
                      "output_tokens", (json_int_t) e->output_tokens);

    } else {
        u = json_pack("{s:i}", "output_tokens", 0);
    }

    if (u == NULL) {
        return NGX_ERROR;
    }

    e->delta_sent = 1;

    if (ngx_http_llm_messages_event(events, "message_delta",
            json_pack("{s:{s:s,s:n},s:o}",
                      "delta",
                        "stop_reason", e->stop_reason,
                        "stop_sequence",
                      "usage", u))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    e->stopped = 1;

    return ngx_http_llm_messages_event(events, "message_stop",
                                       json_object());
}


/*
 * An error in the middle: Anthropic's "error" event, after which nothing
 * follows, so that a client never takes a cut answer for a whole one.
 */

static ngx_int_t
ngx_http_llm_messages_error(ngx_http_llm_encoder_t *e, json_t *error,
    json_t *events)
{
    size_t        len;
    json_t       *v;
    const char   *type, *msg, **t;

    e->stopped = 1;

    type = "api_error";
    msg = "The answer was cut off by an error";
    len = ngx_strlen(msg);

    if (json_is_string(error)) {
        v = error;

    } else {
        v = json_object_get(error, "message");

        for (t = ngx_http_llm_messages_error_types; *t; t++) {
            if (ngx_http_llm_dialect_is(json_object_get(error, "type"), *t))
            {
                type = *t;
                break;
            }
        }
    }

    if (json_is_string(v) && json_string_length(v)) {
        msg = json_string_value(v);
        len = json_string_length(v);
    }

    return ngx_http_llm_messages_event(events, "error",
               json_pack("{s:{s:s,s:s%}}",
                         "error",
                           "type", type,
                           "message", msg, len));
}


/* helpers */

static ngx_int_t
ngx_http_llm_messages_buf_add(ngx_http_llm_messages_buf_t *b,
    const char *data, size_t len)
{
    char    *p;
    size_t   size;

    if (b->size - b->len < len) {
        size = b->size ? 2 * b->size : 256;

        if (size < b->len + len) {
            size = b->len + len;
        }

        p = realloc(b->data, size);
        if (p == NULL) {
            return NGX_ERROR;
        }

        b->data = p;
        b->size = size;
    }

    if (len) {
        ngx_memcpy(b->data + b->len, data, len);
        b->len += len;
    }

    return NGX_OK;
}


/*
 * The buffer as a JSON string; it is freed.  It only ever holds pieces of
 * valid UTF-8 strings and ASCII, so it is not checked again.
 */

static json_t *
ngx_http_llm_messages_buf_string(ngx_http_llm_messages_buf_t *b)
{
    json_t  *s;

    if (b->len == 0) {
        free(b->data);
        return json_string("");
    }

    s = json_stringn_nocheck(b->data, b->len);

    free(b->data);

    return s;
}


/* a non-negative integer member, 0 when absent or not one */

static int64_t
ngx_http_llm_messages_int(json_t *obj, const char *key)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (json_is_integer(v) && json_integer_value(v) > 0) {
        return json_integer_value(v);
    }

    if (json_is_real(v) && json_real_value(v) > 0
        && json_real_value(v) < 9e15)
    {
        return (int64_t) json_real_value(v);
    }

    return 0;
}
