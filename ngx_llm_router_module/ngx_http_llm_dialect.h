
/*
 * Copyright (C) The ngx_llm_router authors
 */


#ifndef _NGX_HTTP_LLM_DIALECT_H_INCLUDED_
#define _NGX_HTTP_LLM_DIALECT_H_INCLUDED_


/*
 * Translations between the router's canonical form and the dialects of
 * providers and clients.
 *
 * The canonical form is OpenAI's chat completions API: a request as a
 * client sends it to /v1/chat/completions, an answer as a "chat.completion"
 * object, a stream as "chat.completion.chunk" objects (the last one with
 * empty "choices" and a "usage").  Canonical answers and chunks carry no
 * "model" and no "provider": the router adds them.
 *
 * Every function here is pure: JSON in (jansson), JSON out, state in a
 * caller-owned struct of fixed size.  No pool, no request, no log, so the
 * parsers can be fuzzed on their own.  Functions that return a json_t
 * return a new reference (the caller decrefs it); json_t arguments are
 * borrowed.  "err" receives a static message for the client when the
 * input cannot be translated.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>


#define NGX_HTTP_LLM_MAX_BLOCKS         128
#define NGX_HTTP_LLM_DEFAULT_MAX_TOKENS 4096


/* the state of one provider stream being turned into canonical chunks */

typedef struct {
    char                        id[128];      /* the answer's id */
    json_int_t                  created;      /* unix time of the answer */
    ngx_int_t                   tool[NGX_HTTP_LLM_MAX_BLOCKS];
                                              /* block index -> tool index,
                                               * -1: not a tool call */
    ngx_uint_t                  tools;        /* tool calls started */
    int64_t                     prompt_tokens;
    int64_t                     completion_tokens;
    int64_t                     cached_tokens;
    char                        error[512];   /* the provider's message */
    unsigned                    started:1;    /* role chunk emitted */
    unsigned                    finished:1;   /* finish_reason emitted */
    unsigned                    usage:1;      /* usage chunk emitted */
} ngx_http_llm_decoder_t;


/*
 * Anthropic's Messages API as a provider (format=anthropic):
 *
 * ngx_http_llm_anthropic_request() turns a canonical request into a
 * Messages request for "model": system and developer messages -> "system";
 * user/assistant turns, consecutive turns of one role merged; text and
 * image parts (data: URLs -> base64 source, http(s) URLs -> url source);
 * assistant "tool_calls" -> "tool_use" blocks ("arguments" parsed);
 * "tool" messages -> "tool_result" blocks in a user turn; "tools" ->
 * {name, description, input_schema}; "tool_choice" auto/none/required/
 * named -> auto/none/any/tool; "parallel_tool_calls":false ->
 * disable_parallel_tool_use; "max_tokens" or "max_completion_tokens"
 * (default NGX_HTTP_LLM_DEFAULT_MAX_TOKENS); "stop" -> "stop_sequences";
 * temperature, top_p, top_k; "stream" as given.  Fields Anthropic does not
 * know are dropped.
 *
 * ngx_http_llm_anthropic_response() turns a Messages answer into a
 * canonical "chat.completion": text blocks joined into "content",
 * "tool_use" -> "tool_calls" (arguments: the input serialized), stop_reason
 * end_turn/stop_sequence/pause_turn -> stop, max_tokens -> length,
 * tool_use -> tool_calls, refusal -> content_filter; usage: prompt_tokens =
 * input + cache read + cache creation tokens, completion_tokens = output,
 * total, prompt_tokens_details.cached_tokens = cache read.  NULL with
 * "err" when it is not a Messages answer.
 *
 * ngx_http_llm_anthropic_event() takes one event of a Messages stream (its
 * "event:" name, may be empty, and its parsed "data:") and appends the
 * canonical chunks it means to "chunks" (a JSON array): message_start ->
 * a role chunk; content_block_start of tool_use -> a tool_calls delta with
 * index, id, type, name and empty arguments; text_delta -> content delta;
 * input_json_delta -> arguments delta of the block's tool call;
 * thinking_delta -> a "reasoning" delta; message_delta -> a finish chunk
 * (and the output tokens); message_stop -> the usage chunk.  ping and
 * content_block_stop give nothing.  Returns NGX_OK, NGX_DONE after
 * message_stop, NGX_ABORT for an "error" event (its message in d->error),
 * NGX_DECLINED for an event it does not understand, NGX_ERROR when out of
 * memory.
 */

json_t *ngx_http_llm_anthropic_request(json_t *req, const char *model,
    size_t model_len, const char **err);
json_t *ngx_http_llm_anthropic_response(json_t *resp, const char **err);
ngx_int_t ngx_http_llm_anthropic_event(ngx_http_llm_decoder_t *d,
    const char *name, size_t name_len, json_t *data, json_t *chunks);


/*
 * Google Gemini's generateContent API as a provider (format=gemini):
 *
 * ngx_http_llm_gemini_request(): system messages -> systemInstruction;
 * user -> role "user", assistant -> role "model", with parts: text,
 * inlineData for data: URL images, fileData for other image URLs,
 * functionCall for assistant tool_calls (args parsed), functionResponse
 * for "tool" messages (the function's name found from the earlier tool
 * call with that id; the response an object: the content parsed when it
 * is a JSON object, else {"content": text}); generationConfig
 * {maxOutputTokens, temperature, topP, topK, stopSequences,
 * candidateCount from n}; tools -> [{functionDeclarations: [...]}];
 * tool_choice -> toolConfig.functionCallingConfig {mode AUTO/NONE/ANY,
 * allowedFunctionNames}.  The model goes in the URL, not the body.
 *
 * ngx_http_llm_gemini_response(): candidates -> choices (parts' text
 * joined; functionCall -> tool_calls with generated ids "call_<n>"),
 * finishReason STOP -> stop (tool_calls when the candidate called a
 * function), MAX_TOKENS -> length, SAFETY, RECITATION, BLOCKLIST,
 * PROHIBITED_CONTENT, SPII -> content_filter, others -> stop;
 * usageMetadata promptTokenCount, candidatesTokenCount (+ thoughts),
 * cachedContentTokenCount -> usage; responseId -> id.
 *
 * ngx_http_llm_gemini_event() takes one event's data of an
 * streamGenerateContent?alt=sse stream (a partial GenerateContentResponse)
 * and appends its canonical chunks: a role chunk first, text deltas,
 * functionCall -> one complete tool_calls delta, finishReason -> a finish
 * chunk, usageMetadata with a finish -> the usage chunk (NGX_DONE then).
 * An "error" object -> NGX_ABORT with d->error.
 */

json_t *ngx_http_llm_gemini_request(json_t *req, const char **err);
json_t *ngx_http_llm_gemini_response(json_t *resp, const char **err);
ngx_int_t ngx_http_llm_gemini_event(ngx_http_llm_decoder_t *d, json_t *data,
    json_t *chunks);


/*
 * Anthropic's Messages API as a client (POST /v1/messages):
 *
 * ngx_http_llm_messages_request() turns a Messages request into a
 * canonical one: "system" (a string or text blocks) -> a system message;
 * text blocks -> text parts; image blocks -> image_url parts (base64 ->
 * data: URL); tool_use blocks -> assistant tool_calls; tool_result blocks
 * -> "tool" messages; tools, tool_choice (auto/any/tool/none),
 * max_tokens, stop_sequences -> stop, temperature, top_p, top_k, stream,
 * metadata dropped.  NULL with "err" when "messages" is not usable.
 *
 * ngx_http_llm_messages_response() turns a canonical chat.completion
 * into a Messages answer: {"id","type":"message","role":"assistant",
 * "content":[text, tool_use...],"stop_reason","stop_sequence":null,
 * "usage":{"input_tokens","output_tokens"}} ("model" is added by the
 * router).
 *
 * A stream: ngx_http_llm_messages_chunk() takes each canonical chunk and
 * appends the Messages events it means to "events", a JSON array of
 * [name, data] pairs: message_start before anything else,
 * content_block_start/delta/stop around text and each tool call
 * (input_json_delta for arguments), message_delta with the stop reason and
 * output tokens once the finish and the usage are known, message_stop.
 * ngx_http_llm_messages_end() closes what is open (message_delta,
 * message_stop) when the stream ends without them.
 */

typedef struct {
    char                        id[128];
    ngx_int_t                   block;        /* open block index, -1 */
    ngx_int_t                   blocks;       /* blocks started */
    ngx_int_t                   tool[NGX_HTTP_LLM_MAX_BLOCKS];
                                              /* tool index -> block */
    ngx_int_t                   open_tool;    /* tool of the open block */
    int64_t                     input_tokens;
    int64_t                     output_tokens;
    char                        stop_reason[32];
    unsigned                    started:1;    /* message_start sent */
    unsigned                    text:1;       /* the open block is text */
    unsigned                    finished:1;   /* a finish_reason seen */
    unsigned                    delta_sent:1; /* message_delta sent */
    unsigned                    stopped:1;    /* message_stop sent */
} ngx_http_llm_encoder_t;

json_t *ngx_http_llm_messages_request(json_t *req, const char **err);
json_t *ngx_http_llm_messages_response(json_t *completion);
void ngx_http_llm_messages_encoder_init(ngx_http_llm_encoder_t *e);
ngx_int_t ngx_http_llm_messages_chunk(ngx_http_llm_encoder_t *e,
    json_t *chunk, json_t *events);
ngx_int_t ngx_http_llm_messages_end(ngx_http_llm_encoder_t *e,
    json_t *events);


/* JSON helpers the translations share (ngx_http_llm_dialect.c) */

json_t *ngx_http_llm_dialect_dump(json_t *value);
json_t *ngx_http_llm_dialect_parse_object(json_t *value);
ngx_int_t ngx_http_llm_dialect_is(json_t *s, const char *lit);
json_int_t ngx_http_llm_dialect_count(json_t *v);
json_int_t ngx_http_llm_dialect_positive(json_t *v);
void ngx_http_llm_dialect_copy(char *dst, size_t size, const char *src,
    size_t len);
void ngx_http_llm_dialect_make_id(char *dst, size_t size);
json_t *ngx_http_llm_dialect_set(json_t *obj, const char *key,
    json_t *value);
json_t *ngx_http_llm_dialect_obj(const char *k1, json_t *v1, const char *k2,
    json_t *v2);
json_t *ngx_http_llm_dialect_list(json_t *value);
json_t *ngx_http_llm_dialect_chunk(ngx_http_llm_decoder_t *d,
    json_t *choices);


#endif /* _NGX_HTTP_LLM_DIALECT_H_INCLUDED_ */
