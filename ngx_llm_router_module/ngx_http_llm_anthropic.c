
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_dialect.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>


/*
 * Anthropic's Messages API as a provider.  Only jansson and libc are used
 * here: the file links into a standalone fuzz harness.  Every field of a
 * request or an answer is untrusted: a field of the wrong type is ignored,
 * a field that makes the translation impossible gives an error.
 */


/* what a list of content parts may turn into */
#define NGX_HTTP_LLM_ANTHROPIC_TEXT    0x01
#define NGX_HTTP_LLM_ANTHROPIC_MEDIA   0x02


static ngx_int_t ngx_http_llm_anthropic_messages(json_t *req, json_t *out,
    const char **err);
static ngx_int_t ngx_http_llm_anthropic_add(json_t *list, json_t **last,
    const char *role, json_t *blocks);
static ngx_int_t ngx_http_llm_anthropic_system(json_t *out, json_t *system);
static ngx_int_t ngx_http_llm_anthropic_content(json_t *content,
    json_t *blocks, ngx_uint_t allow, const char **err);
static ngx_int_t ngx_http_llm_anthropic_part(json_t *part, json_t *blocks,
    ngx_uint_t allow, const char **err);
static json_t *ngx_http_llm_anthropic_media(json_t *url, const char *type,
    const char **err);
static ngx_int_t ngx_http_llm_anthropic_tool_calls(json_t *msg,
    json_t *blocks, const char **err);
static ngx_int_t ngx_http_llm_anthropic_tool_result(json_t *msg,
    json_t *blocks, const char **err);
static ngx_int_t ngx_http_llm_anthropic_options(json_t *req, json_t *out,
    const char **err);
static ngx_int_t ngx_http_llm_anthropic_tools(json_t *req, json_t *out,
    const char **err);
static json_t *ngx_http_llm_anthropic_tool_choice(json_t *req);
static json_t *ngx_http_llm_anthropic_usage(json_t *usage, int64_t *prompt,
    int64_t *completion, int64_t *cached);
static json_t *ngx_http_llm_anthropic_usage_json(int64_t prompt,
    int64_t completion, int64_t cached);
static const char *ngx_http_llm_anthropic_finish(json_t *reason);
static ngx_int_t ngx_http_llm_anthropic_start(ngx_http_llm_decoder_t *d,
    json_t *chunks);
static ngx_int_t ngx_http_llm_anthropic_emit(ngx_http_llm_decoder_t *d,
    json_t *chunks, json_t *delta, const char *finish);
static ngx_int_t ngx_http_llm_anthropic_block_start(ngx_http_llm_decoder_t *d,
    json_t *data, json_t *chunks);
static ngx_int_t ngx_http_llm_anthropic_block_delta(ngx_http_llm_decoder_t *d,
    json_t *data, json_t *chunks);
static ngx_int_t ngx_http_llm_anthropic_message_delta(
    ngx_http_llm_decoder_t *d, json_t *data, json_t *chunks);
static ngx_int_t ngx_http_llm_anthropic_message_stop(
    ngx_http_llm_decoder_t *d, json_t *chunks);
static ngx_int_t ngx_http_llm_anthropic_error(ngx_http_llm_decoder_t *d,
    json_t *data);
static ngx_int_t ngx_http_llm_anthropic_block_index(json_t *data);
static json_t *ngx_http_llm_anthropic_concat(json_t *strings,
    const char *sep);
static ngx_int_t ngx_http_llm_anthropic_visible(json_t *s);
static json_t *ngx_http_llm_anthropic_one(json_t *value);


json_t *
ngx_http_llm_anthropic_request(json_t *req, const char *model,
    size_t model_len, const char **err)
{
    json_t      *out, *v;
    const char  *dummy;

    if (err == NULL) {
        err = &dummy;
    }

    if (!json_is_object(req)) {
        *err = "the request is not a JSON object";
        return NULL;
    }

    if (model == NULL || model_len == 0) {
        *err = "no model for the provider";
        return NULL;
    }

    v = json_stringn(model, model_len);
    if (v == NULL) {
        *err = "the provider's model name is not valid UTF-8";
        return NULL;
    }

    out = json_object();

    if (json_object_set_new(out, "model", v) != 0) {
        json_decref(out);
        *err = "out of memory";
        return NULL;
    }

    if (ngx_http_llm_anthropic_messages(req, out, err) != NGX_OK
        || ngx_http_llm_anthropic_options(req, out, err) != NGX_OK
        || ngx_http_llm_anthropic_tools(req, out, err) != NGX_OK)
    {
        json_decref(out);
        return NULL;
    }

    return out;
}


/*
 * "messages": system and developer messages go to "system", the others to
 * user and assistant turns; a turn of the same role as the one before is
 * merged into it, as Anthropic wants roles to alternate.
 */

static ngx_int_t
ngx_http_llm_anthropic_messages(json_t *req, json_t *out, const char **err)
{
    json_t      *messages, *msg, *list, *system, *blocks, *last, *content;
    size_t       i;
    ngx_int_t    rc;
    const char  *role, *turn;

    messages = json_object_get(req, "messages");

    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        *err = "\"messages\" must be a non-empty array";
        return NGX_DECLINED;
    }

    list = json_array();
    system = json_array();
    blocks = NULL;
    last = NULL;

    if (list == NULL || system == NULL) {
        goto nomem;
    }

    json_array_foreach(messages, i, msg) {

        if (!json_is_object(msg)) {
            *err = "a message is not an object";
            goto failed;
        }

        role = json_string_value(json_object_get(msg, "role"));

        if (role == NULL) {
            *err = "a message has no \"role\"";
            goto failed;
        }

        content = json_object_get(msg, "content");

        if (ngx_strcmp(role, "system") == 0
            || ngx_strcmp(role, "developer") == 0)
        {
            rc = ngx_http_llm_anthropic_content(content, system,
                                                NGX_HTTP_LLM_ANTHROPIC_TEXT,
                                                err);
            if (rc != NGX_OK) {
                goto failed;
            }

            continue;
        }

        blocks = json_array();
        if (blocks == NULL) {
            goto nomem;
        }

        if (ngx_strcmp(role, "user") == 0) {
            turn = "user";
            rc = ngx_http_llm_anthropic_content(content, blocks,
                                                NGX_HTTP_LLM_ANTHROPIC_TEXT
                                                |NGX_HTTP_LLM_ANTHROPIC_MEDIA,
                                                err);

        } else if (ngx_strcmp(role, "assistant") == 0) {
            turn = "assistant";
            rc = ngx_http_llm_anthropic_content(content, blocks,
                                                NGX_HTTP_LLM_ANTHROPIC_TEXT,
                                                err);
            if (rc == NGX_OK) {
                rc = ngx_http_llm_anthropic_tool_calls(msg, blocks, err);
            }

        } else if (ngx_strcmp(role, "tool") == 0) {
            turn = "user";
            rc = ngx_http_llm_anthropic_tool_result(msg, blocks, err);

        } else {
            *err = "a message has an unsupported \"role\"";
            goto failed;
        }

        if (rc != NGX_OK) {
            goto failed;
        }

        if (json_array_size(blocks) != 0
            && ngx_http_llm_anthropic_add(list, &last, turn, blocks)
               != NGX_OK)
        {
            goto nomem;
        }

        json_decref(blocks);
        blocks = NULL;
    }

    if (json_array_size(list) == 0) {
        *err = "no user or assistant message with content";
        goto failed;
    }

    if (ngx_http_llm_anthropic_system(out, system) != NGX_OK
        || json_object_set(out, "messages", list) != 0)
    {
        goto nomem;
    }

    json_decref(system);
    json_decref(list);

    return NGX_OK;

nomem:

    *err = "out of memory";

failed:

    json_decref(blocks);
    json_decref(system);
    json_decref(list);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_llm_anthropic_add(json_t *list, json_t **last, const char *role,
    json_t *blocks)
{
    json_t  *msg;

    if (*last != NULL
        && ngx_strcmp(json_string_value(json_object_get(*last, "role")), role)
           == 0)
    {
        return json_array_extend(json_object_get(*last, "content"), blocks)
               == 0 ? NGX_OK : NGX_ERROR;
    }

    msg = ngx_http_llm_dialect_obj("role", json_string(role),
                                   "content", json_incref(blocks));

    if (json_array_append_new(list, msg) != 0) {
        return NGX_ERROR;
    }

    *last = msg;

    return NGX_OK;
}


/*
 * "system": the texts joined with blank lines into one string, or the
 * text blocks as they are when one of them asks for prompt caching
 */

static ngx_int_t
ngx_http_llm_anthropic_system(json_t *out, json_t *system)
{
    json_t  *block, *texts, *s;
    size_t   i;

    if (json_array_size(system) == 0) {
        return NGX_OK;
    }

    json_array_foreach(system, i, block) {
        if (json_object_get(block, "cache_control") != NULL) {
            return json_object_set(out, "system", system) == 0
                   ? NGX_OK : NGX_ERROR;
        }
    }

    texts = json_array();
    if (texts == NULL) {
        return NGX_ERROR;
    }

    json_array_foreach(system, i, block) {
        if (json_array_append(texts, json_object_get(block, "text")) != 0) {
            json_decref(texts);
            return NGX_ERROR;
        }
    }

    s = ngx_http_llm_anthropic_concat(texts, "\n\n");

    json_decref(texts);

    return json_object_set_new(out, "system", s) == 0 ? NGX_OK : NGX_ERROR;
}


/* a message's "content", a string or an array of parts, as blocks */

static ngx_int_t
ngx_http_llm_anthropic_content(json_t *content, json_t *blocks,
    ngx_uint_t allow, const char **err)
{
    json_t  *part;
    size_t   i;

    if (content == NULL || json_is_null(content)) {
        return NGX_OK;
    }

    if (json_is_string(content)) {

        if (json_string_length(content) == 0) {
            return NGX_OK;
        }

        if (json_array_append_new(blocks,
                       ngx_http_llm_dialect_obj("type", json_string("text"),
                                                "text", json_incref(content)))
            != 0)
        {
            *err = "out of memory";
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (!json_is_array(content)) {
        *err = "a message's \"content\" is neither a string nor an array";
        return NGX_DECLINED;
    }

    json_array_foreach(content, i, part) {
        if (ngx_http_llm_anthropic_part(part, blocks, allow, err) != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_llm_anthropic_part(json_t *part, json_t *blocks, ngx_uint_t allow,
    const char **err)
{
    json_t      *text, *block, *cache, *url, *file;
    const char  *type;

    if (!json_is_object(part)) {
        *err = "a content part is not an object";
        return NGX_DECLINED;
    }

    type = json_string_value(json_object_get(part, "type"));

    if (type == NULL) {
        *err = "a content part has no \"type\"";
        return NGX_DECLINED;
    }

    if (ngx_strcmp(type, "text") == 0 || ngx_strcmp(type, "refusal") == 0) {

        text = json_object_get(part, type);

        if (!json_is_string(text)) {
            *err = "a text part has no text";
            return NGX_DECLINED;
        }

        if (json_string_length(text) == 0) {
            return NGX_OK;
        }

        block = ngx_http_llm_dialect_obj("type", json_string("text"),
                                         "text", json_incref(text));

    } else if (ngx_strcmp(type, "image_url") == 0) {

        if (!(allow & NGX_HTTP_LLM_ANTHROPIC_MEDIA)) {
            *err = "images are allowed only in user and tool messages";
            return NGX_DECLINED;
        }

        url = json_object_get(part, "image_url");

        if (json_is_object(url)) {
            url = json_object_get(url, "url");
        }

        block = ngx_http_llm_anthropic_media(url, "image", err);
        if (block == NULL) {
            return NGX_DECLINED;
        }

    } else if (ngx_strcmp(type, "file") == 0) {

        if (!(allow & NGX_HTTP_LLM_ANTHROPIC_MEDIA)) {
            *err = "files are allowed only in user and tool messages";
            return NGX_DECLINED;
        }

        file = json_object_get(part, "file");

        if (!json_is_string(json_object_get(file, "file_data"))) {
            *err = "only files given inline as \"file_data\" are supported";
            return NGX_DECLINED;
        }

        block = ngx_http_llm_anthropic_media(json_object_get(file,
                                                             "file_data"),
                                             "document", err);
        if (block == NULL) {
            return NGX_DECLINED;
        }

    } else if (ngx_strcmp(type, "input_audio") == 0) {
        *err = "audio input is not supported by the provider";
        return NGX_DECLINED;

    } else {
        /* a part the provider cannot take: dropped */
        return NGX_OK;
    }

    cache = json_object_get(part, "cache_control");

    if (json_is_object(cache) && block != NULL) {
        if (json_object_set(block, "cache_control", cache) != 0) {
            json_decref(block);
            block = NULL;
        }
    }

    if (json_array_append_new(blocks, block) != 0) {
        *err = "out of memory";
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * An image (or a document) from a URL: a data: URL with base64 data gives
 * a "base64" source, an http(s) URL a "url" source; any other URL is an
 * error, as Anthropic cannot fetch it and dropping it would change the
 * prompt.
 */

static json_t *
ngx_http_llm_anthropic_media(json_t *url, const char *type, const char **err)
{
    json_t      *mime, *data, *block, *source;
    size_t       len, mlen;
    const char  *s, *comma, *semi, *p;

    s = json_string_value(url);

    if (s == NULL) {
        *err = "a media part has no URL";
        return NULL;
    }

    len = json_string_length(url);

    if (len > 5 && strncasecmp(s, "data:", 5) == 0) {

        comma = memchr(s, ',', len);

        if (comma == NULL || comma - s < 5 + 7
            || strncasecmp(comma - 7, ";base64", 7) != 0
            || (size_t) (comma - s) + 1 == len)
        {
            *err = "a data: URL is not base64";
            return NULL;
        }

        p = s + 5;
        semi = memchr(p, ';', comma - p);
        mlen = semi - p;

        if (mlen == 0 || memchr(p, '/', mlen) == NULL) {
            *err = "a data: URL has no media type";
            return NULL;
        }

        mime = json_stringn(p, mlen);
        data = json_stringn(comma + 1, len - (comma + 1 - s));

        source = ngx_http_llm_dialect_obj("type", json_string("base64"),
                                          "media_type", mime);
        source = ngx_http_llm_dialect_set(source, "data", data);

    } else if ((len > 7 && strncasecmp(s, "http://", 7) == 0)
               || (len > 8 && strncasecmp(s, "https://", 8) == 0))
    {
        source = ngx_http_llm_dialect_obj("type", json_string("url"),
                                          "url", json_incref(url));

    } else {
        *err = "only data: and http(s) URLs are supported for images";
        return NULL;
    }

    block = ngx_http_llm_dialect_obj("type", json_string(type),
                                     "source", source);
    if (block == NULL) {
        *err = "out of memory";
    }

    return block;
}


/* an assistant's "tool_calls" -> "tool_use" blocks */

static ngx_int_t
ngx_http_llm_anthropic_tool_calls(json_t *msg, json_t *blocks,
    const char **err)
{
    json_t      *calls, *call, *id, *fn, *name, *input, *type, *block;
    size_t       i;

    calls = json_object_get(msg, "tool_calls");

    if (calls == NULL || json_is_null(calls)) {
        return NGX_OK;
    }

    if (!json_is_array(calls)) {
        *err = "\"tool_calls\" is not an array";
        return NGX_DECLINED;
    }

    json_array_foreach(calls, i, call) {

        type = json_object_get(call, "type");

        if (type != NULL && !ngx_http_llm_dialect_is(type, "function")) {
            continue;
        }

        id = json_object_get(call, "id");
        fn = json_object_get(call, "function");
        name = json_object_get(fn, "name");

        if (!json_is_string(id) || json_string_length(id) == 0
            || !json_is_string(name) || json_string_length(name) == 0)
        {
            *err = "a tool call has no \"id\" or no function name";
            return NGX_DECLINED;
        }

        input = ngx_http_llm_dialect_parse_object(json_object_get(fn,
                                                             "arguments"));

        block = ngx_http_llm_dialect_obj("type", json_string("tool_use"),
                                         "id", json_incref(id));
        block = ngx_http_llm_dialect_set(block, "name", json_incref(name));
        block = ngx_http_llm_dialect_set(block, "input", input);

        if (json_array_append_new(blocks, block) != 0) {
            *err = "out of memory";
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a "tool" message -> a "tool_result" block of a user turn */

static ngx_int_t
ngx_http_llm_anthropic_tool_result(json_t *msg, json_t *blocks,
    const char **err)
{
    json_t     *id, *content, *block, *parts;
    ngx_int_t   rc;

    id = json_object_get(msg, "tool_call_id");

    if (!json_is_string(id) || json_string_length(id) == 0) {
        *err = "a tool message has no \"tool_call_id\"";
        return NGX_DECLINED;
    }

    block = ngx_http_llm_dialect_obj("type", json_string("tool_result"),
                                     "tool_use_id", json_incref(id));

    if (json_array_append_new(blocks, block) != 0) {
        *err = "out of memory";
        return NGX_ERROR;
    }

    content = json_object_get(msg, "content");

    if (json_is_string(content)) {

        if (json_string_length(content) == 0) {
            return NGX_OK;
        }

        if (json_object_set(block, "content", content) != 0) {
            *err = "out of memory";
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    parts = json_array();
    if (parts == NULL) {
        *err = "out of memory";
        return NGX_ERROR;
    }

    rc = ngx_http_llm_anthropic_content(content, parts,
                                        NGX_HTTP_LLM_ANTHROPIC_TEXT
                                        |NGX_HTTP_LLM_ANTHROPIC_MEDIA, err);

    if (rc == NGX_OK && json_array_size(parts) != 0
        && json_object_set(block, "content", parts) != 0)
    {
        *err = "out of memory";
        rc = NGX_ERROR;
    }

    json_decref(parts);

    return rc;
}


/* max_tokens, stop_sequences, sampling, stream, metadata */

static ngx_int_t
ngx_http_llm_anthropic_options(json_t *req, json_t *out, const char **err)
{
    json_t      *v, *stop, *s;
    size_t       i;
    double       t;
    json_int_t   max;

    max = ngx_http_llm_dialect_positive(json_object_get(req,
                                                 "max_completion_tokens"));
    if (max == 0) {
        max = ngx_http_llm_dialect_positive(json_object_get(req,
                                                              "max_tokens"));
    }

    if (max == 0) {
        max = NGX_HTTP_LLM_DEFAULT_MAX_TOKENS;
    }

    if (json_object_set_new(out, "max_tokens", json_integer(max)) != 0) {
        goto nomem;
    }

    v = json_object_get(req, "stop");

    if (json_is_string(v) || json_is_array(v)) {

        stop = json_array();

        /* Anthropic rejects stop sequences of only white space */

        if (json_is_string(v)) {
            if (ngx_http_llm_anthropic_visible(v)
                && json_array_append(stop, v) != 0)
            {
                json_decref(stop);
                goto nomem;
            }

        } else {
            json_array_foreach(v, i, s) {
                if (ngx_http_llm_anthropic_visible(s)
                    && json_array_append(stop, s) != 0)
                {
                    json_decref(stop);
                    goto nomem;
                }
            }
        }

        if (json_array_size(stop) == 0) {
            json_decref(stop);

        } else if (json_object_set_new(out, "stop_sequences", stop) != 0) {
            goto nomem;
        }
    }

    /* OpenAI's temperature goes to 2, Anthropic's to 1 */

    v = json_object_get(req, "temperature");

    if (json_is_number(v)) {
        t = json_number_value(v);

        if (t > 1.0 || t < 0.0) {
            v = json_real(t > 1.0 ? 1.0 : 0.0);

        } else {
            json_incref(v);
        }

        if (json_object_set_new(out, "temperature", v) != 0) {
            goto nomem;
        }
    }

    /* recent models take temperature or top_p, not both */

    v = json_object_get(req, "top_p");

    if (json_is_number(v)
        && !json_is_number(json_object_get(req, "temperature"))
        && json_object_set(out, "top_p", v) != 0)
    {
        goto nomem;
    }

    v = json_object_get(req, "top_k");

    if (json_is_integer(v) && json_integer_value(v) > 0
        && json_object_set(out, "top_k", v) != 0)
    {
        goto nomem;
    }

    v = json_object_get(req, "stream");

    if (json_is_boolean(v) && json_object_set(out, "stream", v) != 0) {
        goto nomem;
    }

    v = json_object_get(req, "user");

    if (json_is_string(v) && json_string_length(v) != 0
        && json_object_set_new(out, "metadata",
                               ngx_http_llm_dialect_obj("user_id",
                                                   json_incref(v), NULL, NULL))
           != 0)
    {
        goto nomem;
    }

    return NGX_OK;

nomem:

    *err = "out of memory";

    return NGX_ERROR;
}


/* "tools" -> {name, description, input_schema}; "tool_choice" */

static ngx_int_t
ngx_http_llm_anthropic_tools(json_t *req, json_t *out, const char **err)
{
    json_t      *tools, *tool, *fn, *name, *desc, *params, *schema, *list,
                *choice, *def;
    size_t       i;

    tools = json_object_get(req, "tools");

    if (tools == NULL || json_is_null(tools)) {
        return NGX_OK;
    }

    if (!json_is_array(tools)) {
        *err = "\"tools\" is not an array";
        return NGX_DECLINED;
    }

    list = json_array();
    if (list == NULL) {
        goto nomem;
    }

    json_array_foreach(tools, i, tool) {

        if (!json_is_object(tool)) {
            *err = "a tool is not an object";
            json_decref(list);
            return NGX_DECLINED;
        }

        if (json_object_get(tool, "type") != NULL
            && !ngx_http_llm_dialect_is(json_object_get(tool, "type"),
                                        "function"))
        {
            /* only function tools have a meaning for the provider */
            continue;
        }

        fn = json_object_get(tool, "function");
        name = json_object_get(fn, "name");

        if (!json_is_string(name) || json_string_length(name) == 0) {
            *err = "a tool has no function name";
            json_decref(list);
            return NGX_DECLINED;
        }

        params = json_object_get(fn, "parameters");

        if (json_is_object(params)) {
            schema = json_copy(params);

            if (schema != NULL && json_object_get(schema, "type") == NULL
                && json_object_set_new(schema, "type", json_string("object"))
                   != 0)
            {
                json_decref(schema);
                schema = NULL;
            }

        } else {
            schema = ngx_http_llm_dialect_obj("type", json_string("object"),
                                              "properties", json_object());
        }

        def = ngx_http_llm_dialect_obj("name", json_incref(name),
                                       "input_schema", schema);

        desc = json_object_get(fn, "description");

        if (def != NULL && json_is_string(desc)
            && json_object_set(def, "description", desc) != 0)
        {
            json_decref(def);
            def = NULL;
        }

        if (json_array_append_new(list, def) != 0) {
            json_decref(list);
            goto nomem;
        }
    }

    if (json_array_size(list) == 0) {
        json_decref(list);
        return NGX_OK;
    }

    if (json_object_set_new(out, "tools", list) != 0) {
        goto nomem;
    }

    choice = ngx_http_llm_anthropic_tool_choice(req);

    if (choice == NULL) {
        return NGX_OK;
    }

    if (json_object_set_new(out, "tool_choice", choice) != 0) {
        goto nomem;
    }

    return NGX_OK;

nomem:

    *err = "out of memory";

    return NGX_ERROR;
}


/*
 * "tool_choice" auto/none/required/named -> auto/none/any/tool;
 * "parallel_tool_calls":false -> disable_parallel_tool_use, which needs a
 * tool_choice: {"type":"auto"} when the client gave none.  NULL when there
 * is nothing to send (or no memory: then the provider's default holds).
 */

static json_t *
ngx_http_llm_anthropic_tool_choice(json_t *req)
{
    json_t      *tc, *choice, *name, *parallel;
    const char  *s;

    tc = json_object_get(req, "tool_choice");
    choice = NULL;

    s = json_string_value(tc);

    if (s != NULL) {

        if (ngx_strcmp(s, "auto") == 0) {
            choice = ngx_http_llm_anthropic_one(json_string("auto"));

        } else if (ngx_strcmp(s, "none") == 0) {
            return ngx_http_llm_anthropic_one(json_string("none"));

        } else if (ngx_strcmp(s, "required") == 0) {
            choice = ngx_http_llm_anthropic_one(json_string("any"));
        }

    } else if (json_is_object(tc)) {
        name = json_object_get(json_object_get(tc, "function"), "name");

        if (json_is_string(name) && json_string_length(name) != 0) {
            choice = ngx_http_llm_dialect_obj("type", json_string("tool"),
                                              "name", json_incref(name));
        }
    }

    parallel = json_object_get(req, "parallel_tool_calls");

    if (json_is_false(parallel)) {

        if (choice == NULL) {
            choice = ngx_http_llm_anthropic_one(json_string("auto"));
        }

        if (choice != NULL
            && json_object_set_new(choice, "disable_parallel_tool_use",
                                   json_true())
               != 0)
        {
            json_decref(choice);
            return NULL;
        }
    }

    return choice;
}


json_t *
ngx_http_llm_anthropic_response(json_t *resp, const char **err)
{
    json_t      *content, *block, *texts, *thinking, *calls, *call, *text,
                *msg, *usage, *out, *args, *id, *name, *choice;
    size_t       i;
    int64_t      prompt, completion, cached;
    const char  *type, *dummy;
    char         idbuf[128];

    if (err == NULL) {
        err = &dummy;
    }

    if (!json_is_object(resp)) {
        *err = "the provider's answer is not a JSON object";
        return NULL;
    }

    if (ngx_http_llm_dialect_is(json_object_get(resp, "type"), "error")) {
        *err = "the provider answered with an error";
        return NULL;
    }

    content = json_object_get(resp, "content");

    if (!json_is_array(content)) {
        *err = "the provider's answer is not a Messages answer";
        return NULL;
    }

    out = NULL;
    msg = NULL;
    calls = NULL;

    texts = json_array();
    thinking = json_array();

    if (texts == NULL || thinking == NULL) {
        goto nomem;
    }

    json_array_foreach(content, i, block) {

        type = json_string_value(json_object_get(block, "type"));

        if (type == NULL) {
            continue;
        }

        if (ngx_strcmp(type, "text") == 0) {
            text = json_object_get(block, "text");

            if (json_is_string(text) && json_array_append(texts, text) != 0) {
                goto nomem;
            }

        } else if (ngx_strcmp(type, "thinking") == 0) {
            text = json_object_get(block, "thinking");

            if (json_is_string(text)
                && json_array_append(thinking, text) != 0)
            {
                goto nomem;
            }

        } else if (ngx_strcmp(type, "tool_use") == 0) {

            if (calls == NULL) {
                calls = json_array();
                if (calls == NULL) {
                    goto nomem;
                }
            }

            id = json_object_get(block, "id");

            if (!json_is_string(id)) {
                snprintf(idbuf, sizeof(idbuf), "toolu_%u",
                         (unsigned) json_array_size(calls));
                id = NULL;
            }

            name = json_object_get(block, "name");
            args = ngx_http_llm_dialect_dump(json_object_get(block,
                                                               "input"));

            call = ngx_http_llm_dialect_obj("id", id ? json_incref(id)
                                                     : json_string(idbuf),
                                            "type", json_string("function"));
            call = ngx_http_llm_dialect_set(call, "function",
                         ngx_http_llm_dialect_obj("name",
                                      json_is_string(name) ? json_incref(name)
                                                           : json_string(""),
                                      "arguments", args));

            if (json_array_append_new(calls, call) != 0) {
                goto nomem;
            }
        }
    }

    text = NULL;

    if (json_array_size(texts) != 0 || calls == NULL) {
        text = ngx_http_llm_anthropic_concat(texts, "");
        if (text == NULL) {
            goto nomem;
        }
    }

    /* "content" is null when the answer is only tool calls */

    msg = ngx_http_llm_dialect_obj("role", json_string("assistant"),
                                   "content", text ? text : json_null());
    if (msg == NULL) {
        goto nomem;
    }

    if (json_array_size(thinking) != 0
        && json_object_set_new(msg, "reasoning",
                               ngx_http_llm_anthropic_concat(thinking, ""))
           != 0)
    {
        goto nomem;
    }

    if (calls != NULL && json_object_set(msg, "tool_calls", calls) != 0) {
        goto nomem;
    }

    id = json_object_get(resp, "id");

    if (json_is_string(id) && json_string_length(id) != 0) {
        ngx_http_llm_dialect_copy(idbuf, sizeof(idbuf),
                                  json_string_value(id),
                                  json_string_length(id));

    } else {
        ngx_http_llm_dialect_make_id(idbuf, sizeof(idbuf));
    }

    usage = ngx_http_llm_anthropic_usage(json_object_get(resp, "usage"),
                                         &prompt, &completion, &cached);

    choice = ngx_http_llm_dialect_obj("index", json_integer(0),
                                      "message", json_incref(msg));
    choice = ngx_http_llm_dialect_set(choice, "finish_reason",
                          json_string(ngx_http_llm_anthropic_finish(
                                      json_object_get(resp, "stop_reason"))));

    out = ngx_http_llm_dialect_obj("id", json_string(idbuf),
                                   "object",
                                   json_string("chat.completion"));
    out = ngx_http_llm_dialect_set(out, "created",
                                   json_integer((json_int_t) time(NULL)));
    out = ngx_http_llm_dialect_set(out, "choices",
                                   ngx_http_llm_dialect_list(choice));
    out = ngx_http_llm_dialect_set(out, "usage", usage);
    if (out == NULL) {
        goto nomem;
    }

    json_decref(msg);
    json_decref(calls);
    json_decref(texts);
    json_decref(thinking);

    return out;

nomem:

    *err = "out of memory";

    json_decref(msg);
    json_decref(calls);
    json_decref(texts);
    json_decref(thinking);

    return NULL;
}


/*
 * Anthropic's usage -> canonical usage: the prompt is the sum of the
 * uncached input and the input read from and written to the cache.
 */

static json_t *
ngx_http_llm_anthropic_usage(json_t *usage, int64_t *prompt,
    int64_t *completion, int64_t *cached)
{
    *cached = ngx_http_llm_dialect_count(json_object_get(usage,
                                                   "cache_read_input_tokens"));
    *prompt = ngx_http_llm_dialect_count(json_object_get(usage,
                                                           "input_tokens"))
              + *cached
              + ngx_http_llm_dialect_count(json_object_get(usage,
                                               "cache_creation_input_tokens"));
    *completion = ngx_http_llm_dialect_count(json_object_get(usage,
                                                             "output_tokens"));

    return ngx_http_llm_anthropic_usage_json(*prompt, *completion, *cached);
}


static json_t *
ngx_http_llm_anthropic_usage_json(int64_t prompt, int64_t completion,
    int64_t cached)
{
    json_t  *usage;

    usage = ngx_http_llm_dialect_obj("prompt_tokens", json_integer(prompt),
                                     "completion_tokens",
                                     json_integer(completion));
    usage = ngx_http_llm_dialect_set(usage, "total_tokens",
                                     json_integer(prompt + completion));

    if (cached > 0) {
        usage = ngx_http_llm_dialect_set(usage, "prompt_tokens_details",
                         ngx_http_llm_dialect_obj("cached_tokens",
                                                  json_integer(cached),
                                                  NULL, NULL));
    }

    return usage;
}


static const char *
ngx_http_llm_anthropic_finish(json_t *reason)
{
    const char  *s;

    s = json_string_value(reason);

    if (s == NULL) {
        return "stop";
    }

    if (ngx_strcmp(s, "max_tokens") == 0
        || ngx_strcmp(s, "model_context_window_exceeded") == 0)
    {
        return "length";
    }

    if (ngx_strcmp(s, "tool_use") == 0) {
        return "tool_calls";
    }

    if (ngx_strcmp(s, "refusal") == 0) {
        return "content_filter";
    }

    /* end_turn, stop_sequence, pause_turn, and what comes later */

    return "stop";
}


ngx_int_t
ngx_http_llm_anthropic_event(ngx_http_llm_decoder_t *d, const char *name,
    size_t name_len, json_t *data, json_t *chunks)
{
    json_t      *msg, *id, *type;
    int64_t      prompt, completion, cached;
    ngx_int_t    rc;
    const char  *t;
    char         tbuf[32];

    if (d == NULL || !json_is_array(chunks)) {
        return NGX_ERROR;
    }

    /* the data's "type" names the event; the "event:" line when it has none */

    type = json_object_get(data, "type");

    if (json_is_string(type)) {
        t = json_string_value(type);

    } else if (name != NULL && name_len != 0 && name_len < sizeof(tbuf)) {
        ngx_memcpy(tbuf, name, name_len);
        tbuf[name_len] = '\0';
        t = tbuf;

    } else {
        return NGX_DECLINED;
    }

    if (ngx_strcmp(t, "error") == 0) {
        return ngx_http_llm_anthropic_error(d, data);
    }

    if (!json_is_object(data)) {
        return NGX_DECLINED;
    }

    if (ngx_strcmp(t, "ping") == 0) {
        return NGX_OK;
    }

    if (ngx_strcmp(t, "message_start") == 0) {

        msg = json_object_get(data, "message");
        id = json_object_get(msg, "id");

        if (!d->started && json_is_string(id)) {
            ngx_http_llm_dialect_copy(d->id, sizeof(d->id),
                                      json_string_value(id),
                                      json_string_length(id));
        }

        if (json_is_object(json_object_get(msg, "usage"))) {
            json_decref(ngx_http_llm_anthropic_usage(
                                            json_object_get(msg, "usage"),
                                            &prompt, &completion, &cached));

            d->prompt_tokens = ngx_max(d->prompt_tokens, prompt);
            d->completion_tokens = ngx_max(d->completion_tokens, completion);
            d->cached_tokens = ngx_max(d->cached_tokens, cached);
        }

        return ngx_http_llm_anthropic_start(d, chunks);
    }

    if (ngx_strcmp(t, "content_block_start") == 0) {
        rc = ngx_http_llm_anthropic_start(d, chunks);
        return rc == NGX_OK
               ? ngx_http_llm_anthropic_block_start(d, data, chunks) : rc;
    }

    if (ngx_strcmp(t, "content_block_delta") == 0) {
        rc = ngx_http_llm_anthropic_start(d, chunks);
        return rc == NGX_OK
               ? ngx_http_llm_anthropic_block_delta(d, data, chunks) : rc;
    }

    if (ngx_strcmp(t, "content_block_stop") == 0) {
        return NGX_OK;
    }

    if (ngx_strcmp(t, "message_delta") == 0) {
        rc = ngx_http_llm_anthropic_start(d, chunks);
        return rc == NGX_OK
               ? ngx_http_llm_anthropic_message_delta(d, data, chunks) : rc;
    }

    if (ngx_strcmp(t, "message_stop") == 0) {
        rc = ngx_http_llm_anthropic_start(d, chunks);
        return rc == NGX_OK
               ? ngx_http_llm_anthropic_message_stop(d, chunks) : rc;
    }

    return NGX_DECLINED;
}


/*
 * The first event that means an answer: the decoder's tool map is reset
 * (the caller zeroes the decoder, and 0 would be a tool index) and the
 * role chunk goes out.
 */

static ngx_int_t
ngx_http_llm_anthropic_start(ngx_http_llm_decoder_t *d, json_t *chunks)
{
    ngx_uint_t  i;

    if (d->started) {
        return NGX_OK;
    }

    for (i = 0; i < NGX_HTTP_LLM_MAX_BLOCKS; i++) {
        d->tool[i] = -1;
    }

    d->tools = 0;

    if (d->id[0] == '\0') {
        ngx_http_llm_dialect_make_id(d->id, sizeof(d->id));
    }

    if (d->created == 0) {
        d->created = (json_int_t) time(NULL);
    }

    if (ngx_http_llm_anthropic_emit(d, chunks,
                        ngx_http_llm_dialect_obj("role",
                                                 json_string("assistant"),
                                                 "content", json_string("")),
                        NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    d->started = 1;

    return NGX_OK;
}


/* one chunk of choice 0; "delta" is stolen */

static ngx_int_t
ngx_http_llm_anthropic_emit(ngx_http_llm_decoder_t *d, json_t *chunks,
    json_t *delta, const char *finish)
{
    json_t  *choice;

    choice = ngx_http_llm_dialect_obj("index", json_integer(0),
                                      "delta", delta);
    choice = ngx_http_llm_dialect_set(choice, "finish_reason",
                                      finish ? json_string(finish)
                                             : json_null());

    return json_array_append_new(chunks,
                                 ngx_http_llm_dialect_chunk(d,
                                     ngx_http_llm_dialect_list(choice)))
           == 0 ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_llm_anthropic_block_start(ngx_http_llm_decoder_t *d, json_t *data,
    json_t *chunks)
{
    json_t      *block, *text, *input, *args, *id, *name, *call;
    ngx_int_t    index, tool;
    const char  *type;

    index = ngx_http_llm_anthropic_block_index(data);

    if (index == NGX_ERROR) {
        return NGX_DECLINED;
    }

    block = json_object_get(data, "content_block");
    type = json_string_value(json_object_get(block, "type"));

    d->tool[index] = -1;

    if (type == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_strcmp(type, "text") == 0) {
        text = json_object_get(block, "text");

        if (json_string_length(text) == 0) {
            return NGX_OK;
        }

        return ngx_http_llm_anthropic_emit(d, chunks,
                                 ngx_http_llm_dialect_obj("content",
                                                          json_incref(text),
                                                          NULL, NULL),
                                 NULL);
    }

    if (ngx_strcmp(type, "thinking") == 0) {
        text = json_object_get(block, "thinking");

        if (json_string_length(text) == 0) {
            return NGX_OK;
        }

        return ngx_http_llm_anthropic_emit(d, chunks,
                                 ngx_http_llm_dialect_obj("reasoning",
                                                          json_incref(text),
                                                          NULL, NULL),
                                 NULL);
    }

    if (ngx_strcmp(type, "tool_use") != 0) {
        /* redacted thinking, server tools and their results: not for the
         * client */
        return NGX_OK;
    }

    id = json_object_get(block, "id");
    name = json_object_get(block, "name");

    if (!json_is_string(id) || !json_is_string(name)) {
        return NGX_DECLINED;
    }

    tool = d->tools++;
    d->tool[index] = tool;

    /* the input comes in input_json_delta events; a start with a complete
     * input (not what Anthropic sends) gives it at once */

    input = json_object_get(block, "input");

    if (json_is_object(input) && json_object_size(input) != 0) {
        args = ngx_http_llm_dialect_dump(input);

    } else {
        args = json_string("");
    }

    call = ngx_http_llm_dialect_obj("index", json_integer(tool),
                                    "id", json_incref(id));
    call = ngx_http_llm_dialect_set(call, "type", json_string("function"));
    call = ngx_http_llm_dialect_set(call, "function",
                                    ngx_http_llm_dialect_obj("name",
                                                         json_incref(name),
                                                         "arguments", args));

    return ngx_http_llm_anthropic_emit(d, chunks,
                                 ngx_http_llm_dialect_obj("tool_calls",
                                          ngx_http_llm_dialect_list(call),
                                          NULL, NULL),
                                 NULL);
}


static ngx_int_t
ngx_http_llm_anthropic_block_delta(ngx_http_llm_decoder_t *d, json_t *data,
    json_t *chunks)
{
    json_t      *delta, *v, *call;
    ngx_int_t    index, tool;
    const char  *type;

    delta = json_object_get(data, "delta");
    type = json_string_value(json_object_get(delta, "type"));

    if (type == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_strcmp(type, "text_delta") == 0) {
        v = json_object_get(delta, "text");

        if (json_string_length(v) == 0) {
            return NGX_OK;
        }

        return ngx_http_llm_anthropic_emit(d, chunks,
                                 ngx_http_llm_dialect_obj("content",
                                                          json_incref(v),
                                                          NULL, NULL),
                                 NULL);
    }

    if (ngx_strcmp(type, "thinking_delta") == 0) {
        v = json_object_get(delta, "thinking");

        if (json_string_length(v) == 0) {
            return NGX_OK;
        }

        return ngx_http_llm_anthropic_emit(d, chunks,
                                 ngx_http_llm_dialect_obj("reasoning",
                                                          json_incref(v),
                                                          NULL, NULL),
                                 NULL);
    }

    if (ngx_strcmp(type, "input_json_delta") == 0) {
        index = ngx_http_llm_anthropic_block_index(data);

        if (index == NGX_ERROR) {
            return NGX_DECLINED;
        }

        tool = d->tool[index];
        v = json_object_get(delta, "partial_json");

        if (tool < 0 || json_string_length(v) == 0) {
            /* a server tool's input, or an empty piece */
            return NGX_OK;
        }

        call = ngx_http_llm_dialect_obj("index", json_integer(tool),
                                        "function",
                                        ngx_http_llm_dialect_obj(
                                              "arguments", json_incref(v),
                                              NULL, NULL));

        return ngx_http_llm_anthropic_emit(d, chunks,
                                 ngx_http_llm_dialect_obj("tool_calls",
                                          ngx_http_llm_dialect_list(call),
                                          NULL, NULL),
                                 NULL);
    }

    /* signature_delta, citations_delta: nothing for the client */

    return NGX_OK;
}


static ngx_int_t
ngx_http_llm_anthropic_message_delta(ngx_http_llm_decoder_t *d,
    json_t *data, json_t *chunks)
{
    json_t     *usage, *reason, *v;
    int64_t     prompt, completion, cached;
    ngx_int_t   rc;

    usage = json_object_get(data, "usage");

    /* the counts here are cumulative; they may repeat the input counts */

    if (json_is_object(usage)) {
        json_decref(ngx_http_llm_anthropic_usage(usage, &prompt,
                                                 &completion, &cached));

        v = json_object_get(usage, "input_tokens");

        if (json_is_integer(v)) {
            d->prompt_tokens = ngx_max(d->prompt_tokens, prompt);
            d->cached_tokens = ngx_max(d->cached_tokens, cached);
        }

        if (json_is_integer(json_object_get(usage, "output_tokens"))) {
            d->completion_tokens = ngx_max(d->completion_tokens, completion);
        }
    }

    reason = json_object_get(json_object_get(data, "delta"), "stop_reason");

    if (!json_is_string(reason) || d->finished) {
        return NGX_OK;
    }

    rc = ngx_http_llm_anthropic_emit(d, chunks, json_object(),
                                     ngx_http_llm_anthropic_finish(reason));
    if (rc == NGX_OK) {
        d->finished = 1;
    }

    return rc;
}


static ngx_int_t
ngx_http_llm_anthropic_message_stop(ngx_http_llm_decoder_t *d,
    json_t *chunks)
{
    json_t  *chunk;

    if (!d->finished) {
        if (ngx_http_llm_anthropic_emit(d, chunks, json_object(), "stop")
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        d->finished = 1;
    }

    if (d->usage) {
        return NGX_DONE;
    }

    chunk = ngx_http_llm_dialect_chunk(d, json_array());
    chunk = ngx_http_llm_dialect_set(chunk, "usage",
                                   ngx_http_llm_anthropic_usage_json(
                                     d->prompt_tokens, d->completion_tokens,
                                     d->cached_tokens));

    if (json_array_append_new(chunks, chunk) != 0) {
        return NGX_ERROR;
    }

    d->usage = 1;

    return NGX_DONE;
}


/* {"type":"error","error":{"type":"overloaded_error","message":"..."}} */

static ngx_int_t
ngx_http_llm_anthropic_error(ngx_http_llm_decoder_t *d, json_t *data)
{
    json_t  *error, *msg;

    error = json_object_get(data, "error");
    msg = json_object_get(error, "message");

    if (!json_is_string(msg) || json_string_length(msg) == 0) {
        msg = json_object_get(error, "type");
    }

    if (json_is_string(msg) && json_string_length(msg) != 0) {
        ngx_http_llm_dialect_copy(d->error, sizeof(d->error),
                                  json_string_value(msg),
                                  json_string_length(msg));

    } else {
        ngx_http_llm_dialect_copy(d->error, sizeof(d->error),
                                  "the provider's stream failed",
                                  sizeof("the provider's stream failed")
                                  - 1);
    }

    return NGX_ABORT;
}


/* the block "index" of an event, or NGX_ERROR when it is not usable */

static ngx_int_t
ngx_http_llm_anthropic_block_index(json_t *data)
{
    json_t      *v;
    json_int_t   n;

    v = json_object_get(data, "index");

    if (!json_is_integer(v)) {
        return NGX_ERROR;
    }

    n = json_integer_value(v);

    if (n < 0 || n >= NGX_HTTP_LLM_MAX_BLOCKS) {
        return NGX_ERROR;
    }

    return (ngx_int_t) n;
}


/* the strings of an array (non-strings skipped) joined by "sep" */

static json_t *
ngx_http_llm_anthropic_concat(json_t *strings, const char *sep)
{
    json_t  *s, *out;
    size_t   i, len, slen, n;
    char    *buf, *p;

    len = 0;
    n = 0;
    slen = ngx_strlen(sep);

    json_array_foreach(strings, i, s) {
        if (json_is_string(s)) {
            len += json_string_length(s) + (n ? slen : 0);
            n++;
        }
    }

    if (n == 0) {
        return json_string("");
    }

    if (n == 1) {
        json_array_foreach(strings, i, s) {
            if (json_is_string(s)) {
                return json_incref(s);
            }
        }
    }

    buf = malloc(len + 1);
    if (buf == NULL) {
        return NULL;
    }

    p = buf;
    n = 0;

    json_array_foreach(strings, i, s) {
        if (json_is_string(s)) {
            if (n++) {
                p = (char *) ngx_cpymem(p, sep, slen);
            }

            p = (char *) ngx_cpymem(p, json_string_value(s),
                                    json_string_length(s));
        }
    }

    out = json_stringn(buf, p - buf);

    free(buf);

    return out;
}


/* a string with something else than white space */

static ngx_int_t
ngx_http_llm_anthropic_visible(json_t *s)
{
    size_t       i, len;
    const char  *p;

    p = json_string_value(s);
    len = json_string_length(s);

    for (i = 0; p != NULL && i < len; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') {
            return 1;
        }
    }

    return 0;
}


/* {"type": value} */

static json_t *
ngx_http_llm_anthropic_one(json_t *value)
{
    return ngx_http_llm_dialect_obj("type", value, NULL, NULL);
}