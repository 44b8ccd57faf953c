
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_dialect.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>


/*
 * Google Gemini's generateContent API as a provider.  Only jansson and
 * libc are used here: the file links into a standalone fuzz harness.  Every
 * field of a request or an answer is untrusted: a field of the wrong type
 * is ignored, a field that makes the translation impossible is an error.
 */


/* candidate indexes beyond this are replaced by their position */
#define NGX_HTTP_LLM_GEMINI_MAX_INDEX  1024

/* a tool's parameter schema: its nesting, and the work spent on it */
#define NGX_HTTP_LLM_GEMINI_SCHEMA_DEPTH  32
#define NGX_HTTP_LLM_GEMINI_SCHEMA_WORK   16384

/* what a list of content parts may turn into */
#define NGX_HTTP_LLM_GEMINI_TEXT       0x01
#define NGX_HTTP_LLM_GEMINI_MEDIA      0x02


typedef struct {
    json_t                     *root;      /* for "$ref" */
    size_t                      work;      /* keys and items left to see */
    ngx_uint_t                  refs;
    json_t                     *ref[NGX_HTTP_LLM_GEMINI_SCHEMA_DEPTH];
                                           /* "$ref"s being inlined */
} ngx_http_llm_gemini_schema_t;


static ngx_int_t ngx_http_llm_gemini_contents(json_t *req, json_t *out,
    const char **err);
static ngx_int_t ngx_http_llm_gemini_add(json_t *list, json_t **last,
    const char *role, json_t *parts);
static ngx_int_t ngx_http_llm_gemini_content(json_t *content, json_t *parts,
    ngx_uint_t allow, const char **err);
static ngx_int_t ngx_http_llm_gemini_part(json_t *part, json_t *parts,
    ngx_uint_t allow, const char **err);
static json_t *ngx_http_llm_gemini_media(json_t *url, ngx_uint_t image,
    const char **err);
static json_t *ngx_http_llm_gemini_audio(json_t *audio, const char **err);
static ngx_int_t ngx_http_llm_gemini_calls(json_t *msg, json_t *parts,
    json_t *names, const char **err);
static ngx_int_t ngx_http_llm_gemini_result(json_t *msg, json_t *parts,
    json_t *names, const char **err);
static ngx_int_t ngx_http_llm_gemini_config(json_t *req, json_t *out,
    const char **err);
static ngx_int_t ngx_http_llm_gemini_tools(json_t *req, json_t *out,
    const char **err);
static json_t *ngx_http_llm_gemini_tool_config(json_t *req);
static json_t *ngx_http_llm_gemini_parameters(json_t *params);
static json_t *ngx_http_llm_gemini_schema(ngx_http_llm_gemini_schema_t *ctx,
    json_t *s, ngx_uint_t depth);
static json_t *ngx_http_llm_gemini_ref(ngx_http_llm_gemini_schema_t *ctx,
    json_t *ref);
static json_t *ngx_http_llm_gemini_choice(json_t *cand, ngx_int_t index);
static const char *ngx_http_llm_gemini_finish(json_t *reason,
    ngx_uint_t calls);
static json_t *ngx_http_llm_gemini_call(json_t *fc, json_int_t index,
    ngx_int_t tool);
static void ngx_http_llm_gemini_counts(json_t *usage, int64_t *prompt,
    int64_t *completion, int64_t *cached);
static json_t *ngx_http_llm_gemini_usage_json(int64_t prompt,
    int64_t completion, int64_t cached);
static ngx_int_t ngx_http_llm_gemini_start(ngx_http_llm_decoder_t *d,
    json_t *data, json_t *chunks);
static ngx_int_t ngx_http_llm_gemini_candidate(ngx_http_llm_decoder_t *d,
    json_t *cand, ngx_int_t index, json_t *chunks);
static ngx_int_t ngx_http_llm_gemini_emit(ngx_http_llm_decoder_t *d,
    json_t *chunks, ngx_int_t index, json_t *delta, const char *finish);
static ngx_int_t ngx_http_llm_gemini_index(json_t *cand, size_t i);
static json_int_t ngx_http_llm_gemini_time(json_t *v);
static ngx_int_t ngx_http_llm_gemini_digits(const char *p, size_t n);
static ngx_int_t ngx_http_llm_gemini_data_url(const char *s, size_t len,
    json_t **mime, json_t **data, const char **err);
static const char *ngx_http_llm_gemini_guess_type(const char *url,
    size_t len);
static json_t *ngx_http_llm_gemini_text(json_t *content);
static json_t *ngx_http_llm_gemini_concat(json_t *strings);


json_t *
ngx_http_llm_gemini_request(json_t *req, const char **err)
{
    json_t      *out;
    const char  *dummy;

    if (err == NULL) {
        err = &dummy;
    }

    if (!json_is_object(req)) {
        *err = "the request is not a JSON object";
        return NULL;
    }

    out = json_object();
    if (out == NULL) {
        *err = "out of memory";
        return NULL;
    }

    if (ngx_http_llm_gemini_contents(req, out, err) != NGX_OK
        || ngx_http_llm_gemini_config(req, out, err) != NGX_OK
        || ngx_http_llm_gemini_tools(req, out, err) != NGX_OK)
    {
        json_decref(out);
        return NULL;
    }

    return out;
}


/*
 * "contents" and "systemInstruction": user and tool messages are "user"
 * turns, assistant messages "model" turns; a turn of the same role as the
 * one before is merged into it, so that the answers to parallel function
 * calls share one turn.
 */

static ngx_int_t
ngx_http_llm_gemini_contents(json_t *req, json_t *out, const char **err)
{
    json_t      *messages, *msg, *list, *system, *parts, *last, *names,
                *content;
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
    names = json_object();    /* tool call id -> function name */
    parts = NULL;
    last = NULL;

    if (list == NULL || system == NULL || names == NULL) {
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
            rc = ngx_http_llm_gemini_content(content, system,
                                             NGX_HTTP_LLM_GEMINI_TEXT, err);
            if (rc != NGX_OK) {
                goto failed;
            }

            continue;
        }

        parts = json_array();
        if (parts == NULL) {
            goto nomem;
        }

        if (ngx_strcmp(role, "user") == 0) {
            turn = "user";
            rc = ngx_http_llm_gemini_content(content, parts,
                                             NGX_HTTP_LLM_GEMINI_TEXT
                                             |NGX_HTTP_LLM_GEMINI_MEDIA,
                                             err);

        } else if (ngx_strcmp(role, "assistant") == 0) {
            turn = "model";
            rc = ngx_http_llm_gemini_content(content, parts,
                                             NGX_HTTP_LLM_GEMINI_TEXT, err);
            if (rc == NGX_OK) {
                rc = ngx_http_llm_gemini_calls(msg, parts, names, err);
            }

        } else if (ngx_strcmp(role, "tool") == 0) {
            turn = "user";
            rc = ngx_http_llm_gemini_result(msg, parts, names, err);

        } else {
            *err = "a message has an unsupported \"role\"";
            goto failed;
        }

        if (rc != NGX_OK) {
            goto failed;
        }

        if (json_array_size(parts) != 0
            && ngx_http_llm_gemini_add(list, &last, turn, parts) != NGX_OK)
        {
            goto nomem;
        }

        json_decref(parts);
        parts = NULL;
    }

    if (json_array_size(list) == 0) {
        *err = "no user or assistant message with content";
        goto failed;
    }

    if (json_array_size(system) != 0
        && json_object_set_new(out, "systemInstruction",
                               ngx_http_llm_dialect_obj("parts",
                                                        json_incref(system),
                                                        NULL, NULL))
           != 0)
    {
        goto nomem;
    }

    if (json_object_set(out, "contents", list) != 0) {
        goto nomem;
    }

    json_decref(names);
    json_decref(system);
    json_decref(list);

    return NGX_OK;

nomem:

    *err = "out of memory";

failed:

    json_decref(parts);
    json_decref(names);
    json_decref(system);
    json_decref(list);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_llm_gemini_add(json_t *list, json_t **last, const char *role,
    json_t *parts)
{
    json_t  *turn;

    if (*last != NULL
        && ngx_strcmp(json_string_value(json_object_get(*last, "role")), role)
           == 0)
    {
        return json_array_extend(json_object_get(*last, "parts"), parts)
               == 0 ? NGX_OK : NGX_ERROR;
    }

    turn = ngx_http_llm_dialect_obj("role", json_string(role),
                                    "parts", json_incref(parts));

    if (json_array_append_new(list, turn) != 0) {
        return NGX_ERROR;
    }

    *last = turn;

    return NGX_OK;
}


/* a message's "content", a string or an array of parts, as parts */

static ngx_int_t
ngx_http_llm_gemini_content(json_t *content, json_t *parts, ngx_uint_t allow,
    const char **err)
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

        if (json_array_append_new(parts,
                                  ngx_http_llm_dialect_obj("text",
                                                        json_incref(content),
                                                        NULL, NULL))
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
        if (ngx_http_llm_gemini_part(part, parts, allow, err) != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_llm_gemini_part(json_t *part, json_t *parts, ngx_uint_t allow,
    const char **err)
{
    json_t      *text, *out, *url, *file;
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

        out = ngx_http_llm_dialect_obj("text", json_incref(text), NULL, NULL);

    } else if (!(allow & NGX_HTTP_LLM_GEMINI_MEDIA)) {

        if (ngx_strcmp(type, "image_url") == 0
            || ngx_strcmp(type, "input_audio") == 0
            || ngx_strcmp(type, "file") == 0)
        {
            *err = "media are allowed only in user messages";
            return NGX_DECLINED;
        }

        return NGX_OK;

    } else if (ngx_strcmp(type, "image_url") == 0) {

        url = json_object_get(part, "image_url");

        if (json_is_object(url)) {
            url = json_object_get(url, "url");
        }

        out = ngx_http_llm_gemini_media(url, 1, err);
        if (out == NULL) {
            return NGX_DECLINED;
        }

    } else if (ngx_strcmp(type, "input_audio") == 0) {

        out = ngx_http_llm_gemini_audio(json_object_get(part, "input_audio"),
                                        err);
        if (out == NULL) {
            return NGX_DECLINED;
        }

    } else if (ngx_strcmp(type, "file") == 0) {

        file = json_object_get(part, "file");

        if (!json_is_string(json_object_get(file, "file_data"))) {
            *err = "only files given inline as \"file_data\" are supported";
            return NGX_DECLINED;
        }

        out = ngx_http_llm_gemini_media(json_object_get(file, "file_data"),
                                        0, err);
        if (out == NULL) {
            return NGX_DECLINED;
        }

    } else {
        /* a part the provider cannot take: dropped */
        return NGX_OK;
    }

    if (json_array_append_new(parts, out) != 0) {
        *err = "out of memory";
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Media from a URL: a data: URL with base64 data -> inlineData, any other
 * URL (for images only) -> fileData with a MIME type guessed from its
 * path; Gemini fetches what it can and rejects the rest.
 */

static json_t *
ngx_http_llm_gemini_media(json_t *url, ngx_uint_t image, const char **err)
{
    json_t      *mime, *data, *uri, *part;
    size_t       len;
    ngx_int_t    rc;
    const char  *s;

    s = json_string_value(url);

    if (s == NULL || json_string_length(url) == 0) {
        *err = "a media part has no URL";
        return NULL;
    }

    len = json_string_length(url);

    rc = ngx_http_llm_gemini_data_url(s, len, &mime, &data, err);

    if (rc == NGX_ERROR) {
        return NULL;
    }

    if (rc == NGX_OK) {
        part = ngx_http_llm_dialect_obj("inlineData",
                                        ngx_http_llm_dialect_obj("mimeType",
                                                               mime,
                                                               "data", data),
                                        NULL, NULL);

    } else if (image) {
        uri = ngx_http_llm_dialect_obj("mimeType",
                          json_string(ngx_http_llm_gemini_guess_type(s, len)),
                          "fileUri", json_incref(url));

        part = ngx_http_llm_dialect_obj("fileData", uri, NULL, NULL);

    } else {
        *err = "a file must be a base64 data: URL";
        return NULL;
    }

    if (part == NULL) {
        *err = "out of memory";
    }

    return part;
}


/* {"data": base64, "format": "wav"} -> inlineData "audio/wav" */

static json_t *
ngx_http_llm_gemini_audio(json_t *audio, const char **err)
{
    json_t      *data, *format, *part;
    char         mime[64];
    size_t       len;
    const char  *f;

    data = json_object_get(audio, "data");
    format = json_object_get(audio, "format");

    f = json_string_value(format);
    len = json_string_length(format);

    if (!json_is_string(data) || json_string_length(data) == 0
        || f == NULL || len == 0 || len > 32 || memchr(f, '\0', len) != NULL
        || memchr(f, '/', len) != NULL)
    {
        *err = "an audio part needs \"data\" and \"format\"";
        return NULL;
    }

    snprintf(mime, sizeof(mime), "audio/%s", f);

    part = ngx_http_llm_dialect_obj("inlineData",
                                    ngx_http_llm_dialect_obj("mimeType",
                                                           json_string(mime),
                                                           "data",
                                                           json_incref(data)),
                                    NULL, NULL);
    if (part == NULL) {
        *err = "out of memory";
    }

    return part;
}


/*
 * An assistant's "tool_calls" -> "functionCall" parts; the function names
 * are remembered by call id for the "tool" messages that answer them.
 */

static ngx_int_t
ngx_http_llm_gemini_calls(json_t *msg, json_t *parts, json_t *names,
    const char **err)
{
    json_t  *calls, *call, *id, *fn, *name, *args, *type, *part;
    size_t   i;

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

        if (!json_is_string(name) || json_string_length(name) == 0) {
            *err = "a tool call has no function name";
            return NGX_DECLINED;
        }

        args = ngx_http_llm_dialect_parse_object(json_object_get(fn,
                                                               "arguments"));

        part = ngx_http_llm_dialect_obj("functionCall",
                                        ngx_http_llm_dialect_obj("name",
                                                          json_incref(name),
                                                          "args", args),
                                        NULL, NULL);

        if (json_array_append_new(parts, part) != 0) {
            goto nomem;
        }

        if (json_is_string(id)
            && json_object_setn(names, json_string_value(id),
                                json_string_length(id), name)
               != 0)
        {
            goto nomem;
        }
    }

    return NGX_OK;

nomem:

    *err = "out of memory";

    return NGX_ERROR;
}


/*
 * A "tool" message -> a "functionResponse" part: the name is that of the
 * latest call with the message's "tool_call_id"; the response is the
 * content when it is a JSON object, else {"content": text}.
 */

static ngx_int_t
ngx_http_llm_gemini_result(json_t *msg, json_t *parts, json_t *names,
    const char **err)
{
    json_t  *id, *name, *text, *response, *part;

    id = json_object_get(msg, "tool_call_id");
    name = NULL;

    if (json_is_string(id)) {
        name = json_object_getn(names, json_string_value(id),
                                json_string_length(id));
    }

    if (name == NULL) {
        name = json_object_get(msg, "name");

        if (!json_is_string(name) || json_string_length(name) == 0) {
            *err = "a tool message answers no earlier tool call";
            return NGX_DECLINED;
        }
    }

    text = ngx_http_llm_gemini_text(json_object_get(msg, "content"));
    if (text == NULL) {
        goto nomem;
    }

    response = json_loadb(json_string_value(text), json_string_length(text),
                          0, NULL);

    if (!json_is_object(response)) {
        json_decref(response);
        response = ngx_http_llm_dialect_obj("content", json_incref(text),
                                            NULL, NULL);
    }

    json_decref(text);

    part = ngx_http_llm_dialect_obj("functionResponse",
                                    ngx_http_llm_dialect_obj("name",
                                                          json_incref(name),
                                                          "response",
                                                          response),
                                    NULL, NULL);

    if (json_array_append_new(parts, part) != 0) {
        goto nomem;
    }

    return NGX_OK;

nomem:

    *err = "out of memory";

    return NGX_ERROR;
}


/* "generationConfig" */

static ngx_int_t
ngx_http_llm_gemini_config(json_t *req, json_t *out, const char **err)
{
    json_t      *cfg, *v, *stop, *s, *fmt, *schema;
    size_t       i;
    json_int_t   n;

    cfg = json_object();
    if (cfg == NULL) {
        goto nomem;
    }

    n = ngx_http_llm_dialect_positive(json_object_get(req,
                                                     "max_completion_tokens"));
    if (n == 0) {
        n = ngx_http_llm_dialect_positive(json_object_get(req, "max_tokens"));
    }

    if (n != 0
        && json_object_set_new(cfg, "maxOutputTokens", json_integer(n)) != 0)
    {
        goto failed;
    }

    v = json_object_get(req, "temperature");

    if (json_is_number(v) && json_object_set(cfg, "temperature", v) != 0) {
        goto failed;
    }

    v = json_object_get(req, "top_p");

    if (json_is_number(v) && json_object_set(cfg, "topP", v) != 0) {
        goto failed;
    }

    v = json_object_get(req, "top_k");

    if (json_is_integer(v) && json_integer_value(v) > 0
        && json_object_set(cfg, "topK", v) != 0)
    {
        goto failed;
    }

    v = json_object_get(req, "seed");

    if (json_is_integer(v) && json_object_set(cfg, "seed", v) != 0) {
        goto failed;
    }

    v = json_object_get(req, "n");

    if (json_is_integer(v) && json_integer_value(v) >= 1
        && json_object_set(cfg, "candidateCount", v) != 0)
    {
        goto failed;
    }

    v = json_object_get(req, "stop");

    if (json_is_string(v) || json_is_array(v)) {

        stop = json_array();
        if (stop == NULL) {
            goto failed;
        }

        if (json_is_string(v)) {
            if (json_string_length(v) && json_array_append(stop, v) != 0) {
                json_decref(stop);
                goto failed;
            }

        } else {
            json_array_foreach(v, i, s) {
                if (json_is_string(s) && json_string_length(s)
                    && json_array_append(stop, s) != 0)
                {
                    json_decref(stop);
                    goto failed;
                }
            }
        }

        if (json_array_size(stop) == 0) {
            json_decref(stop);

        } else if (json_object_set_new(cfg, "stopSequences", stop) != 0) {
            goto failed;
        }
    }

    /* response_format: JSON mode, with the schema when there is one */

    v = json_object_get(req, "response_format");
    fmt = json_object_get(v, "type");

    if (ngx_http_llm_dialect_is(fmt, "json_object")
        || ngx_http_llm_dialect_is(fmt, "json_schema"))
    {
        if (json_object_set_new(cfg, "responseMimeType",
                                json_string("application/json"))
            != 0)
        {
            goto failed;
        }

        schema = json_object_get(json_object_get(v, "json_schema"), "schema");

        if (json_is_object(schema)) {
            schema = ngx_http_llm_gemini_parameters(schema);

            if (schema != NULL
                && json_object_size(schema) != 0
                && json_object_set_new(cfg, "responseSchema", schema) != 0)
            {
                goto failed;
            }

            if (schema != NULL && json_object_size(schema) == 0) {
                json_decref(schema);
            }
        }
    }

    if (json_object_size(cfg) == 0) {
        json_decref(cfg);
        return NGX_OK;
    }

    if (json_object_set_new(out, "generationConfig", cfg) != 0) {
        goto nomem;
    }

    return NGX_OK;

failed:

    json_decref(cfg);

nomem:

    *err = "out of memory";

    return NGX_ERROR;
}


/* "tools" -> [{functionDeclarations: [...]}]; "tool_choice" */

static ngx_int_t
ngx_http_llm_gemini_tools(json_t *req, json_t *out, const char **err)
{
    json_t  *tools, *tool, *fn, *name, *desc, *params, *list, *decl,
            *config;
    size_t   i;

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
            continue;
        }

        fn = json_object_get(tool, "function");
        name = json_object_get(fn, "name");

        if (!json_is_string(name) || json_string_length(name) == 0) {
            *err = "a tool has no function name";
            json_decref(list);
            return NGX_DECLINED;
        }

        decl = ngx_http_llm_dialect_obj("name", json_incref(name), NULL, NULL);

        desc = json_object_get(fn, "description");

        if (json_is_string(desc)) {
            decl = ngx_http_llm_dialect_set(decl, "description",
                                            json_incref(desc));
        }

        params = json_object_get(fn, "parameters");

        if (json_is_object(params)) {
            params = ngx_http_llm_gemini_parameters(params);

            if (params == NULL) {
                json_decref(decl);
                decl = NULL;

            } else if (json_object_size(params) == 0) {
                /* a function without parameters */
                json_decref(params);

            } else {
                decl = ngx_http_llm_dialect_set(decl, "parameters", params);
            }
        }

        if (json_array_append_new(list, decl) != 0) {
            json_decref(list);
            goto nomem;
        }
    }

    if (json_array_size(list) == 0) {
        json_decref(list);
        return NGX_OK;
    }

    if (json_object_set_new(out, "tools",
                            ngx_http_llm_dialect_list(
                                ngx_http_llm_dialect_obj(
                                    "functionDeclarations", list,
                                    NULL, NULL)))
        != 0)
    {
        goto nomem;
    }

    config = ngx_http_llm_gemini_tool_config(req);

    if (config != NULL && json_object_set_new(out, "toolConfig", config) != 0)
    {
        goto nomem;
    }

    return NGX_OK;

nomem:

    *err = "out of memory";

    return NGX_ERROR;
}


/*
 * "tool_choice" auto/none/required/named ->
 * {"functionCallingConfig": {"mode": AUTO/NONE/ANY,
 * "allowedFunctionNames": [name]}}; NULL when there is nothing to send.
 */

static json_t *
ngx_http_llm_gemini_tool_config(json_t *req)
{
    json_t      *tc, *fcc, *name;
    const char  *s, *mode;

    tc = json_object_get(req, "tool_choice");
    s = json_string_value(tc);
    name = NULL;
    mode = NULL;

    if (s != NULL) {

        if (ngx_strcmp(s, "auto") == 0) {
            mode = "AUTO";

        } else if (ngx_strcmp(s, "none") == 0) {
            mode = "NONE";

        } else if (ngx_strcmp(s, "required") == 0) {
            mode = "ANY";
        }

    } else if (json_is_object(tc)) {
        name = json_object_get(json_object_get(tc, "function"), "name");

        if (json_is_string(name) && json_string_length(name) != 0) {
            mode = "ANY";

        } else {
            name = NULL;
        }
    }

    if (mode == NULL) {
        return NULL;
    }

    fcc = ngx_http_llm_dialect_obj("mode", json_string(mode), NULL, NULL);

    if (name != NULL) {
        fcc = ngx_http_llm_dialect_set(fcc, "allowedFunctionNames",
                                       ngx_http_llm_dialect_list(
                                           json_incref(name)));
    }

    return ngx_http_llm_dialect_obj("functionCallingConfig", fcc, NULL, NULL);
}


/*
 * A JSON schema as Gemini's OpenAPI subset: unknown keywords (such as
 * "additionalProperties", which Gemini rejects) are dropped, type arrays
 * become a type and "nullable", local "$ref"s are inlined (within a node
 * budget, so recursive or exploding schemas stay bounded).  An object
 * without properties gives {}: Gemini wants no "parameters" then.  NULL
 * when out of memory.
 */

static json_t *
ngx_http_llm_gemini_parameters(json_t *params)
{
    json_t                        *s, *props;
    ngx_http_llm_gemini_schema_t   ctx;

    ctx.root = params;
    ctx.work = NGX_HTTP_LLM_GEMINI_SCHEMA_WORK;
    ctx.refs = 0;

    s = ngx_http_llm_gemini_schema(&ctx, params, 0);
    if (s == NULL) {
        return NULL;
    }

    props = json_object_get(s, "properties");

    if (ngx_http_llm_dialect_is(json_object_get(s, "type"), "object")
        && json_object_size(props) == 0)
    {
        json_object_clear(s);
    }

    return s;
}


static json_t *
ngx_http_llm_gemini_schema(ngx_http_llm_gemini_schema_t *ctx, json_t *s,
    ngx_uint_t depth)
{
    json_t      *out, *v, *t, *sub, *list, *props, *ref;
    size_t       i, klen;
    ngx_uint_t   nullable, strings, n;
    const char  *key, *pkey;

    out = json_object();

    if (out == NULL || !json_is_object(s)
        || depth >= NGX_HTTP_LLM_GEMINI_SCHEMA_DEPTH
        || ctx->work < json_object_size(s) + 1)
    {
        return out;
    }

    /* "$ref"s may visit a part many times: the work is bounded, not the
     * number of visits */

    ctx->work -= json_object_size(s) + 1;

    ref = json_object_get(s, "$ref");

    if (json_is_string(ref)) {
        sub = ngx_http_llm_gemini_ref(ctx, ref);

        for (n = 0; n < ctx->refs; n++) {
            if (ctx->ref[n] == sub) {
                /* a recursive schema: cut at its first repetition */
                return ngx_http_llm_dialect_set(out, "type",
                                                json_string("object"));
            }
        }

        json_decref(out);

        if (sub == NULL || ctx->refs == NGX_HTTP_LLM_GEMINI_SCHEMA_DEPTH) {
            return json_object();
        }

        ctx->ref[ctx->refs++] = sub;

        out = ngx_http_llm_gemini_schema(ctx, sub, depth + 1);

        ctx->refs--;

        v = json_object_get(s, "description");

        if (out != NULL && json_is_string(v)) {
            out = ngx_http_llm_dialect_set(out, "description",
                                           json_incref(v));
        }

        return out;
    }

    json_object_foreach(s, key, v) {

        if (ngx_strcmp(key, "type") == 0) {

            if (json_is_string(v)) {
                out = ngx_http_llm_dialect_set(out, "type", json_incref(v));

            } else if (json_is_array(v) && json_array_size(v) < ctx->work) {
                ctx->work -= json_array_size(v);
                nullable = 0;
                t = NULL;

                json_array_foreach(v, i, sub) {
                    if (ngx_http_llm_dialect_is(sub, "null")) {
                        nullable = 1;

                    } else if (t == NULL && json_is_string(sub)) {
                        t = sub;
                    }
                }

                if (t != NULL) {
                    out = ngx_http_llm_dialect_set(out, "type",
                                                   json_incref(t));
                }

                if (nullable) {
                    out = ngx_http_llm_dialect_set(out, "nullable",
                                                   json_true());
                }
            }

        } else if (ngx_strcmp(key, "format") == 0) {

            /* Gemini knows only these formats */

            if (ngx_http_llm_dialect_is(v, "enum")
                || ngx_http_llm_dialect_is(v, "date-time")
                || ngx_http_llm_dialect_is(v, "float")
                || ngx_http_llm_dialect_is(v, "double")
                || ngx_http_llm_dialect_is(v, "int32")
                || ngx_http_llm_dialect_is(v, "int64"))
            {
                out = ngx_http_llm_dialect_set(out, "format", json_incref(v));
            }

        } else if (ngx_strcmp(key, "enum") == 0) {

            /* Gemini's enums are strings */

            strings = json_is_array(v) && json_array_size(v) != 0
                      && json_array_size(v) < ctx->work;

            if (!strings) {
                continue;
            }

            ctx->work -= json_array_size(v);

            json_array_foreach(v, i, sub) {
                if (!json_is_string(sub)) {
                    strings = 0;
                }
            }

            if (strings) {
                out = ngx_http_llm_dialect_set(out, "enum", json_incref(v));
            }

        } else if (ngx_strcmp(key, "const") == 0) {

            if (json_is_string(v) && json_object_get(s, "enum") == NULL) {
                out = ngx_http_llm_dialect_set(out, "enum",
                                               ngx_http_llm_dialect_list(
                                                   json_incref(v)));
            }

        } else if (ngx_strcmp(key, "properties") == 0) {

            if (!json_is_object(v) || json_object_size(v) >= ctx->work) {
                continue;
            }

            ctx->work -= json_object_size(v);

            props = json_object();

            json_object_keylen_foreach(v, pkey, klen, sub) {
                if (json_object_setn_new(props, pkey, klen,
                                         ngx_http_llm_gemini_schema(ctx, sub,
                                                                 depth + 1))
                    != 0)
                {
                    json_decref(props);
                    props = NULL;
                    break;
                }
            }

            out = ngx_http_llm_dialect_set(out, "properties", props);

        } else if (ngx_strcmp(key, "items") == 0) {

            if (json_is_object(v)) {
                out = ngx_http_llm_dialect_set(out, "items",
                                  ngx_http_llm_gemini_schema(ctx, v,
                                                             depth + 1));
            }

        } else if (ngx_strcmp(key, "anyOf") == 0
                   || ngx_strcmp(key, "oneOf") == 0)
        {
            if (!json_is_array(v) || json_array_size(v) == 0
                || json_array_size(v) >= ctx->work)
            {
                continue;
            }

            ctx->work -= json_array_size(v);

            list = json_array();

            json_array_foreach(v, i, sub) {
                if (json_array_append_new(list,
                                          ngx_http_llm_gemini_schema(ctx, sub,
                                                                 depth + 1))
                    != 0)
                {
                    json_decref(list);
                    list = NULL;
                    break;
                }
            }

            out = ngx_http_llm_dialect_set(out, "anyOf", list);

        } else if (ngx_strcmp(key, "title") == 0
                   || ngx_strcmp(key, "description") == 0
                   || ngx_strcmp(key, "nullable") == 0
                   || ngx_strcmp(key, "required") == 0
                   || ngx_strcmp(key, "minItems") == 0
                   || ngx_strcmp(key, "maxItems") == 0
                   || ngx_strcmp(key, "minProperties") == 0
                   || ngx_strcmp(key, "maxProperties") == 0
                   || ngx_strcmp(key, "minLength") == 0
                   || ngx_strcmp(key, "maxLength") == 0
                   || ngx_strcmp(key, "pattern") == 0
                   || ngx_strcmp(key, "minimum") == 0
                   || ngx_strcmp(key, "maximum") == 0
                   || ngx_strcmp(key, "default") == 0
                   || ngx_strcmp(key, "example") == 0
                   || ngx_strcmp(key, "propertyOrdering") == 0)
        {
            out = ngx_http_llm_dialect_set(out, key, json_incref(v));
        }

        if (out == NULL) {
            return NULL;
        }
    }

    /* Gemini wants a type: enums are of strings, properties of objects */

    if (json_object_get(out, "type") == NULL) {

        if (json_object_get(out, "enum") != NULL) {
            out = ngx_http_llm_dialect_set(out, "type", json_string("string"));

        } else if (json_object_get(out, "properties") != NULL) {
            out = ngx_http_llm_dialect_set(out, "type", json_string("object"));
        }
    }

    return out;
}


/* "#/$defs/name" or "#/definitions/name" in the root schema */

static json_t *
ngx_http_llm_gemini_ref(ngx_http_llm_gemini_schema_t *ctx, json_t *ref)
{
    size_t       len;
    const char  *s;

    s = json_string_value(ref);
    len = json_string_length(ref);

    if (len > 8 && ngx_strncmp(s, "#/$defs/", 8) == 0) {
        return json_object_getn(json_object_get(ctx->root, "$defs"),
                                s + 8, len - 8);
    }

    if (len > 14 && ngx_strncmp(s, "#/definitions/", 14) == 0) {
        return json_object_getn(json_object_get(ctx->root, "definitions"),
                                s + 14, len - 14);
    }

    return NULL;
}


json_t *
ngx_http_llm_gemini_response(json_t *resp, const char **err)
{
    json_t      *cands, *cand, *choices, *choice, *usage, *out, *id,
                *reason;
    size_t       i;
    int64_t      prompt, completion, cached;
    const char  *dummy;
    char         idbuf[128];
    json_int_t   created;

    if (err == NULL) {
        err = &dummy;
    }

    if (!json_is_object(resp)) {
        *err = "the provider's answer is not a JSON object";
        return NULL;
    }

    if (json_object_get(resp, "error") != NULL) {
        *err = "the provider answered with an error";
        return NULL;
    }

    cands = json_object_get(resp, "candidates");

    if (!json_is_array(cands)
        && !json_is_object(json_object_get(resp, "promptFeedback")))
    {
        *err = "the provider's answer is not a generateContent answer";
        return NULL;
    }

    choices = json_array();
    if (choices == NULL) {
        goto nomem;
    }

    json_array_foreach(cands, i, cand) {

        if (!json_is_object(cand)) {
            continue;
        }

        if (json_array_append_new(choices,
                        ngx_http_llm_gemini_choice(cand,
                                         ngx_http_llm_gemini_index(cand, i)))
            != 0)
        {
            goto nomem;
        }
    }

    if (json_array_size(choices) == 0) {

        /* the prompt was blocked: no candidates, a "blockReason" */

        reason = json_object_get(json_object_get(resp, "promptFeedback"),
                                 "blockReason");

        choice = ngx_http_llm_dialect_obj("index", json_integer(0),
                              "message",
                              ngx_http_llm_dialect_obj("role",
                                                       json_string("assistant"),
                                                       "content",
                                                       json_string("")));
        choice = ngx_http_llm_dialect_set(choice, "finish_reason",
                                          json_string(json_is_string(reason)
                                                     ? "content_filter"
                                                     : "stop"));

        if (json_array_append_new(choices, choice) != 0) {
            goto nomem;
        }
    }

    id = json_object_get(resp, "responseId");

    if (json_is_string(id) && json_string_length(id) != 0) {
        ngx_http_llm_dialect_copy(idbuf, sizeof(idbuf), json_string_value(id),
                                  json_string_length(id));

    } else {
        ngx_http_llm_dialect_make_id(idbuf, sizeof(idbuf));
    }

    created = ngx_http_llm_gemini_time(json_object_get(resp, "createTime"));

    if (created == 0) {
        created = (json_int_t) time(NULL);
    }

    ngx_http_llm_gemini_counts(json_object_get(resp, "usageMetadata"),
                               &prompt, &completion, &cached);

    usage = ngx_http_llm_gemini_usage_json(prompt, completion, cached);

    out = ngx_http_llm_dialect_obj("id", json_string(idbuf),
                                   "object", json_string("chat.completion"));
    out = ngx_http_llm_dialect_set(out, "created", json_integer(created));
    out = ngx_http_llm_dialect_set(out, "choices", choices);
    out = ngx_http_llm_dialect_set(out, "usage", usage);

    if (out == NULL) {
        *err = "out of memory";
    }

    return out;

nomem:

    json_decref(choices);

    *err = "out of memory";

    return NULL;
}


/* one candidate as a choice; NULL when out of memory */

static json_t *
ngx_http_llm_gemini_choice(json_t *cand, ngx_int_t index)
{
    json_t      *parts, *part, *texts, *thoughts, *calls, *text, *fc, *msg,
                *choice;
    size_t       i;
    const char  *finish;

    texts = json_array();
    thoughts = json_array();
    calls = json_array();
    msg = NULL;

    if (texts == NULL || thoughts == NULL || calls == NULL) {
        goto failed;
    }

    parts = json_object_get(json_object_get(cand, "content"), "parts");

    json_array_foreach(parts, i, part) {

        text = json_object_get(part, "text");
        fc = json_object_get(part, "functionCall");

        if (json_is_string(text)) {

            if (json_array_append(json_is_true(json_object_get(part,
                                                               "thought"))
                                  ? thoughts : texts, text)
                != 0)
            {
                goto failed;
            }

        } else if (json_is_object(fc)) {

            if (json_array_append_new(calls,
                                      ngx_http_llm_gemini_call(fc, -1,
                                                  json_array_size(calls)))
                != 0)
            {
                goto failed;
            }
        }
    }

    finish = ngx_http_llm_gemini_finish(json_object_get(cand,
                                                        "finishReason"),
                                        json_array_size(calls));

    text = NULL;

    if (json_array_size(texts) != 0 || json_array_size(calls) == 0) {
        text = ngx_http_llm_gemini_concat(texts);
        if (text == NULL) {
            goto failed;
        }
    }

    /* "content" is null when the answer is only function calls */

    msg = ngx_http_llm_dialect_obj("role", json_string("assistant"),
                                   "content", text ? text : json_null());

    if (json_array_size(thoughts) != 0) {
        msg = ngx_http_llm_dialect_set(msg, "reasoning",
                                       ngx_http_llm_gemini_concat(thoughts));
    }

    if (json_array_size(calls) != 0) {
        msg = ngx_http_llm_dialect_set(msg, "tool_calls", json_incref(calls));
    }

    choice = ngx_http_llm_dialect_obj("index", json_integer(index),
                                      "message", msg);
    choice = ngx_http_llm_dialect_set(choice, "finish_reason",
                                      json_string(finish));

    json_decref(texts);
    json_decref(thoughts);
    json_decref(calls);

    return choice;

failed:

    json_decref(texts);
    json_decref(thoughts);
    json_decref(calls);

    return NULL;
}


static const char *
ngx_http_llm_gemini_finish(json_t *reason, ngx_uint_t calls)
{
    const char  *s;

    s = json_string_value(reason);

    if (s == NULL || ngx_strcmp(s, "STOP") == 0) {
        return calls ? "tool_calls" : "stop";
    }

    if (ngx_strcmp(s, "MAX_TOKENS") == 0) {
        return "length";
    }

    if (ngx_strcmp(s, "SAFETY") == 0
        || ngx_strcmp(s, "RECITATION") == 0
        || ngx_strcmp(s, "BLOCKLIST") == 0
        || ngx_strcmp(s, "PROHIBITED_CONTENT") == 0
        || ngx_strcmp(s, "SPII") == 0
        || ngx_strcmp(s, "IMAGE_SAFETY") == 0)
    {
        return "content_filter";
    }

    /* LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, what comes later */

    return "stop";
}


/*
 * A functionCall as an OpenAI tool call: the id is Gemini's when it gives
 * one, else "call_<n>", n the call's position in the answer; "index" is
 * for stream deltas (-1: none).
 */

static json_t *
ngx_http_llm_gemini_call(json_t *fc, json_int_t index, ngx_int_t tool)
{
    json_t  *call, *id, *name;
    char     buf[32];

    id = json_object_get(fc, "id");
    name = json_object_get(fc, "name");

    if (json_is_string(id) && json_string_length(id) != 0) {
        id = json_incref(id);

    } else {
        snprintf(buf, sizeof(buf), "call_%u", (unsigned) tool);
        id = json_string(buf);
    }

    call = (index >= 0)
           ? ngx_http_llm_dialect_obj("index", json_integer(index), NULL, NULL)
           : json_object();

    call = ngx_http_llm_dialect_set(call, "id", id);
    call = ngx_http_llm_dialect_set(call, "type", json_string("function"));

    return ngx_http_llm_dialect_set(call, "function",
               ngx_http_llm_dialect_obj("name",
                                        json_is_string(name) ? json_incref(name)
                                                             : json_string(""),
                                        "arguments",
                                        ngx_http_llm_dialect_dump(
                                           json_object_get(fc, "args"))));
}


/*
 * usageMetadata -> counts: the prompt includes the cached content and the
 * tool-use prompt; the completion includes the thoughts.
 */

static void
ngx_http_llm_gemini_counts(json_t *usage, int64_t *prompt,
    int64_t *completion, int64_t *cached)
{
    *prompt = ngx_http_llm_dialect_count(json_object_get(usage,
                                                        "promptTokenCount"))
              + ngx_http_llm_dialect_count(json_object_get(usage,
                                                  "toolUsePromptTokenCount"));
    *completion = ngx_http_llm_dialect_count(json_object_get(usage,
                                                    "candidatesTokenCount"))
                  + ngx_http_llm_dialect_count(json_object_get(usage,
                                                    "thoughtsTokenCount"));
    *cached = ngx_http_llm_dialect_count(json_object_get(usage,
                                                   "cachedContentTokenCount"));
}


static json_t *
ngx_http_llm_gemini_usage_json(int64_t prompt, int64_t completion,
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
                                         ngx_http_llm_dialect_obj(
                                            "cached_tokens",
                                            json_integer(cached),
                                            NULL, NULL));
    }

    return usage;
}


ngx_int_t
ngx_http_llm_gemini_event(ngx_http_llm_decoder_t *d, json_t *data,
    json_t *chunks)
{
    json_t      *error, *msg, *cands, *cand, *usage, *feedback, *chunk, *v;
    size_t       i;
    ngx_int_t    rc;

    if (d == NULL || !json_is_array(chunks)) {
        return NGX_ERROR;
    }

    if (!json_is_object(data)) {
        return NGX_DECLINED;
    }

    error = json_object_get(data, "error");

    if (error != NULL) {
        msg = json_object_get(error, "message");

        if (!json_is_string(msg) || json_string_length(msg) == 0) {
            msg = json_object_get(error, "status");
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

    cands = json_object_get(data, "candidates");
    usage = json_object_get(data, "usageMetadata");
    feedback = json_object_get(data, "promptFeedback");

    if (!json_is_array(cands) && !json_is_object(usage)
        && !json_is_object(feedback))
    {
        return NGX_DECLINED;
    }

    if (d->usage) {
        /* the stream is over */
        return NGX_DONE;
    }

    rc = ngx_http_llm_gemini_start(d, data, chunks);
    if (rc != NGX_OK) {
        return rc;
    }

    json_array_foreach(cands, i, cand) {

        if (!json_is_object(cand)) {
            continue;
        }

        rc = ngx_http_llm_gemini_candidate(d, cand,
                                           ngx_http_llm_gemini_index(cand, i),
                                           chunks);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    v = json_object_get(feedback, "blockReason");

    if (json_array_size(cands) == 0 && json_is_string(v) && !d->finished) {

        if (ngx_http_llm_gemini_emit(d, chunks, 0, json_object(),
                                     "content_filter")
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        d->finished = 1;
    }

    if (!json_is_object(usage)) {
        return NGX_OK;
    }

    /* the counts are the totals so far: the last ones hold */

    v = json_object_get(usage, "promptTokenCount");

    if (json_is_integer(v)) {
        d->prompt_tokens = ngx_http_llm_dialect_count(v)
                           + ngx_http_llm_dialect_count(json_object_get(usage,
                                                  "toolUsePromptTokenCount"));
    }

    v = json_object_get(usage, "candidatesTokenCount");

    if (json_is_integer(v)) {
        d->completion_tokens = ngx_http_llm_dialect_count(v)
                               + ngx_http_llm_dialect_count(
                                     json_object_get(usage,
                                                     "thoughtsTokenCount"));
    }

    v = json_object_get(usage, "cachedContentTokenCount");

    if (json_is_integer(v)) {
        d->cached_tokens = ngx_http_llm_dialect_count(v);
    }

    if (!d->finished) {
        return NGX_OK;
    }

    chunk = ngx_http_llm_dialect_chunk(d, json_array());
    chunk = ngx_http_llm_dialect_set(chunk, "usage",
                                     ngx_http_llm_gemini_usage_json(
                                        d->prompt_tokens,
                                        d->completion_tokens,
                                        d->cached_tokens));

    if (json_array_append_new(chunks, chunk) != 0) {
        return NGX_ERROR;
    }

    d->usage = 1;

    return NGX_DONE;
}


/* the first event: the answer's id and time, and the role chunk */

static ngx_int_t
ngx_http_llm_gemini_start(ngx_http_llm_decoder_t *d, json_t *data,
    json_t *chunks)
{
    json_t  *id;

    if (d->started) {
        return NGX_OK;
    }

    id = json_object_get(data, "responseId");

    if (json_is_string(id) && json_string_length(id) != 0) {
        ngx_http_llm_dialect_copy(d->id, sizeof(d->id), json_string_value(id),
                                  json_string_length(id));

    } else if (d->id[0] == '\0') {
        ngx_http_llm_dialect_make_id(d->id, sizeof(d->id));
    }

    if (d->created == 0) {
        d->created = ngx_http_llm_gemini_time(json_object_get(data,
                                                              "createTime"));
    }

    if (d->created == 0) {
        d->created = (json_int_t) time(NULL);
    }

    if (ngx_http_llm_gemini_emit(d, chunks, 0,
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


/*
 * One candidate of an event: each part in order (text -> content delta,
 * thought -> reasoning delta, functionCall -> a complete tool call), then
 * the finish.
 */

static ngx_int_t
ngx_http_llm_gemini_candidate(ngx_http_llm_decoder_t *d, json_t *cand,
    ngx_int_t index, json_t *chunks)
{
    json_t      *parts, *part, *text, *fc, *delta, *reason;
    size_t       i;
    ngx_int_t    tool;
    const char  *finish;

    parts = json_object_get(json_object_get(cand, "content"), "parts");

    json_array_foreach(parts, i, part) {

        text = json_object_get(part, "text");
        fc = json_object_get(part, "functionCall");

        if (json_is_string(text)) {

            if (json_string_length(text) == 0) {
                continue;
            }

            delta = ngx_http_llm_dialect_obj(
                        json_is_true(json_object_get(part, "thought"))
                        ? "reasoning" : "content",
                        json_incref(text), NULL, NULL);

        } else if (json_is_object(fc)) {

            tool = d->tools++;

            delta = ngx_http_llm_dialect_obj("tool_calls",
                                  ngx_http_llm_dialect_list(
                                      ngx_http_llm_gemini_call(fc, tool,
                                                               tool)),
                                  NULL, NULL);

        } else {
            continue;
        }

        if (ngx_http_llm_gemini_emit(d, chunks, index, delta, NULL)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    reason = json_object_get(cand, "finishReason");

    if (!json_is_string(reason) || json_string_length(reason) == 0) {
        return NGX_OK;
    }

    finish = ngx_http_llm_gemini_finish(reason, d->tools);

    if (ngx_http_llm_gemini_emit(d, chunks, index, json_object(), finish)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    d->finished = 1;

    return NGX_OK;
}


/* one chunk of one choice; "delta" is stolen */

static ngx_int_t
ngx_http_llm_gemini_emit(ngx_http_llm_decoder_t *d, json_t *chunks,
    ngx_int_t index, json_t *delta, const char *finish)
{
    json_t  *choice;

    choice = ngx_http_llm_dialect_obj("index", json_integer(index),
                                      "delta", delta);
    choice = ngx_http_llm_dialect_set(choice, "finish_reason",
                                      finish ? json_string(finish)
                                             : json_null());

    return json_array_append_new(chunks,
                                 ngx_http_llm_dialect_chunk(d,
                                     ngx_http_llm_dialect_list(choice)))
           == 0 ? NGX_OK : NGX_ERROR;
}


/* a candidate's "index", or its position when that is not usable */

static ngx_int_t
ngx_http_llm_gemini_index(json_t *cand, size_t i)
{
    json_t  *v;

    v = json_object_get(cand, "index");

    if (json_is_integer(v) && json_integer_value(v) >= 0
        && json_integer_value(v) < NGX_HTTP_LLM_GEMINI_MAX_INDEX)
    {
        return (ngx_int_t) json_integer_value(v);
    }

    return (ngx_int_t) ngx_min(i, NGX_HTTP_LLM_GEMINI_MAX_INDEX);
}


/*
 * An RFC 3339 time ("2025-03-26T18:22:31.123456Z", Vertex AI's
 * "createTime") as unix time; 0 when it is not one.
 */

static json_int_t
ngx_http_llm_gemini_time(json_t *v)
{
    size_t       len, n;
    ngx_int_t    year, month, day, hour, min, sec, oh, om, era, yoe, doy, doe,
                 y;
    json_int_t   t, off;
    const char  *s, *p;

    s = json_string_value(v);
    len = json_string_length(v);

    if (s == NULL || len < 20 || s[4] != '-' || s[7] != '-'
        || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        || s[13] != ':' || s[16] != ':')
    {
        return 0;
    }

    year = ngx_http_llm_gemini_digits(s, 4);
    month = ngx_http_llm_gemini_digits(s + 5, 2);
    day = ngx_http_llm_gemini_digits(s + 8, 2);
    hour = ngx_http_llm_gemini_digits(s + 11, 2);
    min = ngx_http_llm_gemini_digits(s + 14, 2);
    sec = ngx_http_llm_gemini_digits(s + 17, 2);

    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31
        || hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0
        || sec > 60)
    {
        return 0;
    }

    p = s + 19;
    n = len - 19;

    if (*p == '.') {
        do {
            p++;
            n--;
        } while (n > 0 && *p >= '0' && *p <= '9');
    }

    if (n == 1 && (*p == 'Z' || *p == 'z')) {
        off = 0;

    } else if (n == 6 && (*p == '+' || *p == '-') && p[3] == ':') {
        oh = ngx_http_llm_gemini_digits(p + 1, 2);
        om = ngx_http_llm_gemini_digits(p + 4, 2);

        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return 0;
        }

        off = (oh * 60 + om) * 60;

        if (*p == '-') {
            off = -off;
        }

    } else {
        return 0;
    }

    /* days since the epoch of a civil date (Howard Hinnant's algorithm) */

    y = year - (month <= 2);
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    t = (json_int_t) (era * 146097 + doe - 719468) * 86400
        + hour * 3600 + min * 60 + sec - off;

    return t > 0 ? t : 0;
}


static ngx_int_t
ngx_http_llm_gemini_digits(const char *p, size_t n)
{
    ngx_int_t  v;

    v = 0;

    while (n--) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        v = v * 10 + (*p++ - '0');
    }

    return v;
}


/*
 * "data:<type>;base64,<data>" -> mime and data strings.  NGX_DECLINED when
 * it is not a data: URL, NGX_ERROR (with "err") when it is not usable.
 */

static ngx_int_t
ngx_http_llm_gemini_data_url(const char *s, size_t len, json_t **mime,
    json_t **data, const char **err)
{
    size_t       mlen;
    const char  *comma, *semi, *p;

    if (len < 5 || strncasecmp(s, "data:", 5) != 0) {
        return NGX_DECLINED;
    }

    comma = memchr(s, ',', len);

    if (comma == NULL || comma - s < 5 + 7
        || strncasecmp(comma - 7, ";base64", 7) != 0
        || (size_t) (comma - s) + 1 == len)
    {
        *err = "a data: URL is not base64";
        return NGX_ERROR;
    }

    p = s + 5;
    semi = memchr(p, ';', comma - p);
    mlen = semi - p;

    if (mlen == 0 || memchr(p, '/', mlen) == NULL) {
        *err = "a data: URL has no media type";
        return NGX_ERROR;
    }

    *mime = json_stringn(p, mlen);
    *data = json_stringn(comma + 1, len - (comma + 1 - s));

    return NGX_OK;
}


/* the MIME type of an image URL by its extension */

static const char *
ngx_http_llm_gemini_guess_type(const char *url, size_t len)
{
    size_t       i, n;
    const char  *end, *dot;

    static const struct {
        const char  *ext;
        const char  *type;
    } types[] = {
        { "png",  "image/png" },
        { "jpg",  "image/jpeg" },
        { "jpeg", "image/jpeg" },
        { "gif",  "image/gif" },
        { "webp", "image/webp" },
        { "heic", "image/heic" },
        { "heif", "image/heif" },
        { "pdf",  "application/pdf" }
    };

    end = url;

    while (end < url + len && *end != '?' && *end != '#') {
        end++;
    }

    dot = NULL;

    for (i = 0; url + i < end; i++) {
        if (url[i] == '.') {
            dot = url + i + 1;

        } else if (url[i] == '/') {
            dot = NULL;
        }
    }

    if (dot != NULL) {
        n = end - dot;

        for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (n == ngx_strlen(types[i].ext)
                && strncasecmp(dot, types[i].ext, n) == 0)
            {
                return types[i].type;
            }
        }
    }

    return "image/jpeg";
}


/* a tool message's content as one string: text parts joined */

static json_t *
ngx_http_llm_gemini_text(json_t *content)
{
    json_t  *texts, *part, *out;
    size_t   i;

    if (json_is_string(content)) {
        return json_incref(content);
    }

    texts = json_array();
    if (texts == NULL) {
        return NULL;
    }

    json_array_foreach(content, i, part) {
        if (ngx_http_llm_dialect_is(json_object_get(part, "type"), "text")
            && json_array_append(texts, json_object_get(part, "text")) != 0)
        {
            json_decref(texts);
            return NULL;
        }
    }

    out = ngx_http_llm_gemini_concat(texts);

    json_decref(texts);

    return out;
}


/* the strings of an array (non-strings skipped) joined */

static json_t *
ngx_http_llm_gemini_concat(json_t *strings)
{
    json_t  *s, *out, *one;
    size_t   i, len, n;
    char    *buf, *p;

    len = 0;
    n = 0;
    one = NULL;

    json_array_foreach(strings, i, s) {
        if (json_is_string(s)) {
            len += json_string_length(s);
            one = s;
            n++;
        }
    }

    if (n == 0) {
        return json_string("");
    }

    if (n == 1) {
        return json_incref(one);
    }

    buf = malloc(len + 1);
    if (buf == NULL) {
        return NULL;
    }

    p = buf;

    json_array_foreach(strings, i, s) {
        if (json_is_string(s)) {
            p = (char *) ngx_cpymem(p, json_string_value(s),
                                    json_string_length(s));
        }
    }

    out = json_stringn(buf, p - buf);

    free(buf);

    return out;
}