
/*
 * Copyright (C) The ngx_llm_router authors
 */


#ifndef _NGX_HTTP_LLM_ROUTER_H_INCLUDED_
#define _NGX_HTTP_LLM_ROUTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_http_llm_dialect.h"


#define NGX_HTTP_LLM_FORMAT_OPENAI      0
#define NGX_HTTP_LLM_FORMAT_ANTHROPIC   1
#define NGX_HTTP_LLM_FORMAT_GEMINI      2

/* client API a request came in on */
#define NGX_HTTP_LLM_API_CHAT           1
#define NGX_HTTP_LLM_API_MODELS         2
#define NGX_HTTP_LLM_API_MESSAGES       3   /* Anthropic's, from clients */
#define NGX_HTTP_LLM_API_COMPLETIONS    4   /* OpenAI's legacy one */
#define NGX_HTTP_LLM_API_EMBEDDINGS     5

/* why an attempt failed */
#define NGX_HTTP_LLM_FAIL_NONE          0
#define NGX_HTTP_LLM_FAIL_CONNECT       1   /* refused, reset, bad header */
#define NGX_HTTP_LLM_FAIL_TIMEOUT       2   /* proxy timed out */
#define NGX_HTTP_LLM_FAIL_STATUS        3   /* provider answered >= 300 */
#define NGX_HTTP_LLM_FAIL_INVALID       4   /* provider answer unusable */
#define NGX_HTTP_LLM_FAIL_CUT           5   /* ended before completion */
#define NGX_HTTP_LLM_FAIL_INTERNAL      6   /* the router itself failed */

/* what an attempt says about its endpoint */
#define NGX_HTTP_LLM_OUTCOME_OK         0
#define NGX_HTTP_LLM_OUTCOME_FAILED     1
#define NGX_HTTP_LLM_OUTCOME_NEUTRAL    2

/* how a model's endpoints are ordered */
#define NGX_HTTP_LLM_SORT_DEFAULT       0
#define NGX_HTTP_LLM_SORT_PRICE         1
#define NGX_HTTP_LLM_SORT_LATENCY       2
#define NGX_HTTP_LLM_SORT_THROUGHPUT    3

/* a provider's JSON answer is never allowed to grow past this */
#define NGX_HTTP_LLM_MAX_RESPONSE       (32 * 1024 * 1024)
/* one server-sent event, or what a stream says before its answer */
#define NGX_HTTP_LLM_MAX_EVENT          (1024 * 1024)
/* our buffers on their way to a client before the provider is held back */
#define NGX_HTTP_LLM_MAX_BUSY           16384
/* a provider's error body is kept up to this many bytes for the message */
#define NGX_HTTP_LLM_MAX_ERROR_BODY     8192


/* an attempt's request headers: Content-Type, Accept, the key, a version */

#define NGX_HTTP_LLM_HEADERS         4
#define NGX_HTTP_LLM_HEADER_ACCEPT   1


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   name_json;    /* "name", quoted */
    ngx_str_t                   url;          /* base URL, no trailing '/' */
    ngx_uint_t                  format;
    ngx_str_t                   key;          /* secret: never logged */
    const char                 *auth_header;  /* its name for the dialect */
    const char                 *auth_lowcase; /* the same, lower case */
    ngx_str_t                   authorization;  /* its value, or empty */
    ngx_table_elt_t             headers[NGX_HTTP_LLM_HEADERS];
    ngx_uint_t                  nheaders;     /* the subrequest's, made */
                                              /* at configuration */
} ngx_http_llm_provider_t;


/* requests' final statuses counted one by one, then "other" */
#define NGX_HTTP_LLM_NSTATUS            16
/* histogram buckets, msec: see ngx_http_llm_buckets[] */
#define NGX_HTTP_LLM_NBUCKETS           12


typedef struct {
    ngx_atomic_t                count[NGX_HTTP_LLM_NBUCKETS + 1]; /* +Inf */
    ngx_atomic_t                sum;          /* msec */
} ngx_http_llm_histogram_t;


/* what requests did, by where they ended: counters for llm_status */

typedef struct {
    ngx_atomic_t                status[NGX_HTTP_LLM_NSTATUS];
    ngx_atomic_t                prompt_tokens;
    ngx_atomic_t                completion_tokens;
    ngx_atomic_t                cached_tokens;
    ngx_atomic_t                cost;         /* pico-USD */
    ngx_http_llm_histogram_t    ttft;
    ngx_http_llm_histogram_t    duration;
} ngx_http_llm_metrics_t;


/* live statistics of an endpoint, in the shared zone */

typedef struct {
    ngx_atomic_t                inflight;
    ngx_atomic_t                requests;     /* attempts */
    ngx_atomic_t                errors;       /* failed attempts */
    ngx_atomic_t                failures;     /* consecutive failures */
    ngx_atomic_t                last_failure; /* msec */
    ngx_atomic_t                cooldown_until; /* msec */
    ngx_atomic_t                probe;        /* msec a probe started */
    ngx_atomic_t                ttft;         /* EWMA, msec, plus one */
    ngx_atomic_t                tps;          /* EWMA, tokens/s * 1000 + 1 */
    ngx_atomic_t                error_rate;   /* EWMA, ppm, plus one */
    ngx_atomic_t                ok;           /* answered attempts */
    ngx_atomic_t                fallbacks;    /* failed, next one tried */
    ngx_atomic_t                cache_hits;   /* answered by proxy_cache */
    ngx_http_llm_metrics_t      metrics;      /* requests it ended */
} ngx_http_llm_stats_t;


typedef struct {
    ngx_queue_t                 nodes;
    ngx_atomic_t                generation;   /* configurations loaded */
} ngx_http_llm_shctx_t;


/* a virtual key's spend and rate counters, in the zone, under its lock */

typedef struct {
    int64_t                     total;        /* pico-USD, all time */
    int64_t                     period[3];    /* this day, week, month */
    time_t                      period_start[3];
    int64_t                     reserved;     /* worst cases in flight */
    time_t                      minute;       /* the rate window's start */
    int64_t                     requests[2];  /* this minute, the last */
    int64_t                     tokens[2];
    int64_t                     all_requests; /* all time */
    int64_t                     rejected;     /* answered 402, 403, 429 */
} ngx_http_llm_key_stats_t;


typedef struct {
    u_char                      hash[32];     /* SHA-256 of the key */
    u_char                      hex[65];
    ngx_str_t                   label;
    ngx_array_t                *models;       /* globs; NULL: any */
    int64_t                     limit;        /* pico-USD; -1: none */
    ngx_uint_t                  reset;        /* none, daily, weekly ... */
    ngx_uint_t                  rpm;          /* 0: none */
    ngx_uint_t                  tpm;
    time_t                      expires;      /* 0: never */
    ngx_http_llm_key_stats_t   *stats;
} ngx_http_llm_key_t;


typedef struct {
    ngx_http_llm_provider_t    *provider;
    ngx_http_llm_stats_t       *stats;
    ngx_str_t                   model;        /* the provider's model id */
    json_t                     *model_json;   /* the same, for its requests */
    ngx_str_t                   url;          /* for an answer */
    ngx_str_t                   stream_url;   /* for a stream */
    int64_t                     input_price;  /* pico-USD per token */
    int64_t                     output_price; /* pico-USD per token */
    int64_t                     cached_price; /* cached input; -1: input */
} ngx_http_llm_endpoint_t;


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   name_json;    /* "name", quoted */
    ngx_array_t                 endpoints;    /* ngx_http_llm_endpoint_t */
    ngx_uint_t                  context;
    ngx_uint_t                  max_output;   /* the worst case's tokens */
    ngx_http_llm_metrics_t     *metrics;      /* requests no endpoint took */
    u_char                     *file;
    ngx_uint_t                  line;
} ngx_http_llm_model_t;


typedef struct ngx_http_llm_auto_s  ngx_http_llm_auto_t;


typedef struct {
    ngx_array_t                 providers;    /* ngx_http_llm_provider_t * */
    ngx_array_t                 models;       /* ngx_http_llm_model_t * */
    ngx_array_t                 autos;        /* ngx_http_llm_auto_t * */

    ngx_shm_zone_t             *shm_zone;
    ngx_http_llm_shctx_t       *sh;
    ngx_slab_pool_t            *shpool;
    ngx_http_llm_metrics_t     *metrics;      /* requests without a model */

    ngx_array_t                *keys;         /* ngx_http_llm_key_t */
    ngx_str_t                   keys_file;
    void                       *sha256;       /* EVP_MD, fetched once */

    ngx_str_t                   state_file;
    ngx_msec_t                  state_interval;
    json_t                     *state;        /* as read at start */

    ngx_uint_t                  circuit_failures;
    ngx_msec_t                  circuit_cooldown;
} ngx_http_llm_main_conf_t;


typedef struct ngx_http_llm_mock_conf_s  ngx_http_llm_mock_conf_t;


typedef struct {
    ngx_str_t                   upstream_location;
    ngx_uint_t                  max_attempts;
    ngx_msec_t                  ttft_timeout;
    ngx_msec_t                  idle_timeout;
    double                      weight_cost;
    double                      weight_latency;
    double                      weight_throughput;
    double                      weight_errors;
    ngx_flag_t                  weights;      /* llm_router_weights set */
    ngx_http_llm_mock_conf_t   *mock;
    u_char                     *file;         /* where llm_router is */
    ngx_uint_t                  line;
    unsigned                    router:1;
    unsigned                    json_errors:1;
} ngx_http_llm_loc_conf_t;


/* a member of a JSON object, as ngx_http_llm_scan_object() found it */

typedef struct {
    u_char                     *key;          /* between its quotes */
    size_t                      key_len;
    u_char                     *value;        /* its own bytes */
    size_t                      value_len;
    u_char                      type;         /* '{' '[' '"' '0' 't' 'f' 'n' */
} ngx_http_llm_member_t;


/* the members of an object inside the one scanned, wanted too */

typedef struct {
    const char                 *name;         /* the outer member's key */
    size_t                      name_len;
    ngx_http_llm_member_t      *members;
    ngx_uint_t                  max;
    ngx_uint_t                  n;
    ngx_uint_t                  found;        /* such an object was seen */
} ngx_http_llm_scan_inner_t;


/* a member of the client's request as parsed: its bytes and its value */

typedef struct {
    ngx_http_llm_member_t       m;
    json_t                     *value;        /* when parsed */
    unsigned                    removed:1;    /* a routing field, stripped */
} ngx_http_llm_field_t;


/* incremental server-sent events parser */

typedef struct {
    u_char                     *data;
    size_t                      len;
    size_t                      size;
} ngx_http_llm_sbuf_t;


typedef struct {
    ngx_pool_t                 *pool;
    ngx_http_llm_sbuf_t         line;         /* the line being read */
    ngx_http_llm_sbuf_t         data;         /* data of the event */
    ngx_http_llm_sbuf_t         event;        /* event name */
    size_t                      max;          /* limit for one event */
    unsigned                    has_data:1;
    unsigned                    skip_lf:1;    /* last line ended with CR */
} ngx_http_llm_sse_t;


typedef struct {
    ngx_str_t                   event;
    ngx_str_t                   data;
} ngx_http_llm_sse_event_t;


typedef struct {
    ngx_http_llm_model_t       *model;
    ngx_http_llm_endpoint_t    *endpoint;
    double                      key;          /* for ordering */
    unsigned                    probe:1;      /* circuit half open */
} ngx_http_llm_candidate_t;


/* a model the request names, and how it wants its endpoints ordered */

typedef struct {
    ngx_http_llm_model_t       *model;
    ngx_str_t                   name;         /* as asked, no suffix */
    ngx_uint_t                  sort;         /* from ":floor", ":nitro" */
} ngx_http_llm_model_ref_t;


/* OpenRouter's "provider" object */

typedef struct {
    ngx_array_t                *order;        /* ngx_str_t */
    ngx_array_t                *only;
    ngx_array_t                *ignore;
    int64_t                     max_prompt;   /* pico-USD/token, -1: any */
    int64_t                     max_completion;
    ngx_uint_t                  sort;
    const char                 *unknown;      /* an unknown field */
    unsigned                    allow_fallbacks:1;
} ngx_http_llm_prefs_t;


typedef struct {
    ngx_http_llm_model_t       *model;
    ngx_http_llm_endpoint_t    *endpoint;
    ngx_uint_t                  status;       /* provider's HTTP status */
    ngx_uint_t                  reason;       /* NGX_HTTP_LLM_FAIL_* */
    ngx_str_t                   message;      /* provider's error message */
    ngx_msec_t                  start;
    ngx_msec_t                  ttft;
    ngx_str_t                   retry_after;  /* the provider's header */
    int64_t                     prompt_tokens;
    int64_t                     completion_tokens;
    int64_t                     cached_tokens;
    unsigned                    usage_seen:1;
    unsigned                    estimated:1;  /* usage estimated by us */
    unsigned                    cache_hit:1;  /* from proxy_cache */
} ngx_http_llm_attempt_t;


typedef struct {
    ngx_http_request_t         *request;      /* the main request */
    ngx_http_request_t         *sr;           /* the current attempt */

    ngx_uint_t                  api;          /* NGX_HTTP_LLM_API_* */
    json_t                     *body;         /* the client's request, */
                                              /* NULL: only "fields" */
    ngx_http_llm_member_t       raw;          /* the part kept as bytes */
    ngx_http_llm_field_t       *fields;       /* the others, when scanned */
    ngx_uint_t                  nfields;
    json_t                     *model_id;     /* the attempt's, when */
                                              /* "body" is NULL */
    ngx_http_llm_model_t       *model;        /* as requested */
    ngx_array_t                 models;       /* ngx_http_llm_model_ref_t */
    ngx_http_llm_prefs_t        prefs;
    ngx_str_t                   upstream_url; /* the attempt's */
    ngx_http_llm_decoder_t     *decoder;      /* the provider's stream, */
    ngx_http_llm_encoder_t     *encoder;      /* the client's: when their */
                                              /* dialects need one */
    ngx_event_t                 timer;        /* ttft, then idle */
    ngx_msec_t                  last_read;    /* for the idle timer */

    ngx_array_t                 candidates;   /* ngx_http_llm_candidate_t */
    ngx_uint_t                  next;         /* next candidate to try */
    ngx_array_t                 attempts;     /* ngx_http_llm_attempt_t */
    ngx_http_llm_attempt_t     *attempt;      /* current one */

    /* relay of the current attempt */
    ngx_http_llm_sbuf_t         in;           /* JSON or error body */
    ngx_http_llm_sbuf_t         out;          /* translated, not yet sent */
    ngx_http_llm_sse_t          sse;
    ngx_str_t                   id;           /* the completion's id */
    ngx_chain_t                *free;
    ngx_chain_t                *busy;
    ngx_chain_t                *held;         /* provider bytes queued */
    ngx_chain_t               **held_last;
    u_char                     *request_body; /* the attempt's, to free */

    void                       *mock;         /* the mock provider's state */

    ngx_int_t                 (*create_request)(ngx_http_request_t *r);
                                              /* proxy's, for the attempt */

    ngx_http_llm_key_t         *key;          /* the caller's */
    int64_t                     reserved;     /* its worst case */
    int64_t                     prompt_estimate; /* tokens */
    int64_t                     tokens_counted; /* toward its tpm */
    int64_t                     text_bytes;   /* of the answer, relayed */
    size_t                      body_len;     /* of the request */
    ngx_uint_t                  rate_limit;   /* for X-RateLimit-* */
    ngx_uint_t                  rate_used;
    ngx_uint_t                  rate_reset;

    ngx_uint_t                  reject_status; /* what is wrong with */
    const char                 *reject_code;  /*   the request */
    ngx_str_t                   reject_msg;

    ngx_uint_t                  error_status; /* nginx's own error page */
    ngx_http_llm_sbuf_t         error_body;

    unsigned                    stream:1;     /* client asked for SSE */
    unsigned                    include_usage:1; /* client wants usage */
    unsigned                    sse_response:1; /* provider answers SSE */
    unsigned                    header_seen:1;
    unsigned                    failed:1;     /* the attempt failed */
    unsigned                    timed_out:1;  /* our timer stopped it */
    unsigned                    inflight:1;   /* counted in the stats */
    unsigned                    idle:1;       /* the timer is the idle one */
    unsigned                    client_gone:1; /* aborted or timed out */
    unsigned                    warned:1;     /* about unusable events */
    unsigned                    settled:1;    /* the key's reservation */
    unsigned                    capped:1;     /* we set max_tokens */
    unsigned                    counted:1;    /* in the metrics */
    unsigned                    has_raw:1;    /* "raw" is not in "body" */
    unsigned                    rate_headers:1;
    unsigned                    finished:1;   /* post_subrequest ran */
    unsigned                    complete:1;   /* provider answer ended */
    unsigned                    answered:1;   /* answer content seen */
    unsigned                    stream_done:1; /* finish or [DONE] seen */
    unsigned                    done_sent:1;  /* client got [DONE] */
    unsigned                    committed:1;  /* client got our header */
    unsigned                    own_output:1; /* we answer, not nginx */
    unsigned                    error_sent:1;
} ngx_http_llm_ctx_t;


/* the provider's side: its request, its answer in canonical form */

ngx_int_t ngx_http_llm_upstream_request(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_endpoint_t *ep, ngx_chain_t **body, size_t *len,
    const char **err);
json_t *ngx_http_llm_upstream_answer(ngx_http_llm_ctx_t *ctx, u_char *data,
    size_t len);
ngx_int_t ngx_http_llm_upstream_event(ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_sse_event_t *ev);
ngx_int_t ngx_http_llm_upstream_error_message(ngx_pool_t *pool, u_char *data,
    size_t len, ngx_str_t *secret, ngx_str_t *msg);
void ngx_http_llm_upstream_error_text(ngx_pool_t *pool, json_t *root,
    ngx_str_t *secret, ngx_str_t *msg);


/* the client's side: canonical answers in the client's format */

ngx_int_t ngx_http_llm_emit_chunk(ngx_http_llm_ctx_t *ctx, json_t *chunk);
ngx_int_t ngx_http_llm_emit_done(ngx_http_llm_ctx_t *ctx);
ngx_int_t ngx_http_llm_emit_answer(ngx_http_llm_ctx_t *ctx, json_t *answer);
ngx_int_t ngx_http_llm_stream_end(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
void ngx_http_llm_usage(ngx_http_llm_ctx_t *ctx, json_t *usage);
ngx_uint_t ngx_http_llm_answered(json_t *choices, ngx_uint_t *finished);
void ngx_http_llm_keep_id(ngx_http_llm_ctx_t *ctx, json_t *root);
void ngx_http_llm_count_text(ngx_http_llm_ctx_t *ctx, json_t *choices);


/* OpenAI answers relabelled from their bytes */

ngx_int_t ngx_http_llm_emit_answer_bytes(ngx_http_llm_ctx_t *ctx,
    u_char *data, size_t len);
ngx_int_t ngx_http_llm_emit_chunk_bytes(ngx_http_llm_ctx_t *ctx,
    u_char *data, size_t len);


/* selection */

const char *ngx_http_llm_parse_prefs(ngx_http_request_t *r, json_t *p,
    ngx_http_llm_prefs_t *prefs);
ngx_int_t ngx_http_llm_select(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_str_t *why);


/* auto router */

char *ngx_http_llm_auto_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_llm_auto_resolve(ngx_conf_t *cf,
    ngx_http_llm_main_conf_t *lmcf);
ngx_http_llm_auto_t *ngx_http_llm_find_auto(ngx_http_llm_main_conf_t *lmcf,
    ngx_str_t *name);
ngx_http_llm_model_t *ngx_http_llm_auto_match(ngx_http_request_t *r,
    ngx_http_llm_auto_t *au, ngx_http_llm_ctx_t *ctx);


/* handler */

ngx_int_t ngx_http_llm_router_handler(ngx_http_request_t *r);
ngx_http_llm_ctx_t *ngx_http_llm_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_llm_reject(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *fmt, ...);


/* keys, budgets, rate limits */

char *ngx_http_llm_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_llm_key_check(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, ngx_uint_t count);
ngx_int_t ngx_http_llm_key_admit(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, size_t body_len);
void ngx_http_llm_key_settle(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    int64_t cost, int64_t tokens);
ngx_int_t ngx_http_llm_key_headers(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
ngx_int_t ngx_http_llm_key_handler(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);


/* cost */

int64_t ngx_http_llm_attempt_cost(ngx_http_llm_attempt_t *a);
void ngx_http_llm_usage_estimate(ngx_http_llm_ctx_t *ctx);
ngx_int_t ngx_http_llm_usage_json(ngx_http_llm_ctx_t *ctx, json_t *usage);
void ngx_http_llm_account(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx);
ngx_int_t ngx_http_llm_log_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_llm_precontent_handler(ngx_http_request_t *r);


/* the state file */

char *ngx_http_llm_state(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_llm_state_restore(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_key_t *key);
ngx_int_t ngx_http_llm_state_init_process(ngx_cycle_t *cycle);
void ngx_http_llm_state_exit_process(ngx_cycle_t *cycle);


/* relay filters */

ngx_int_t ngx_http_llm_relay_init(ngx_conf_t *cf);
ngx_int_t ngx_http_llm_commit(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    off_t content_length);
ngx_int_t ngx_http_llm_output(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    u_char *data, size_t len, ngx_uint_t last);


/* server-sent events */

void ngx_http_llm_sse_init(ngx_http_llm_sse_t *p, ngx_pool_t *pool,
    size_t max);
ngx_int_t ngx_http_llm_sse_parse(ngx_http_llm_sse_t *p, u_char **pos,
    u_char *last, ngx_http_llm_sse_event_t *ev);


/* JSON and buffer helpers */

ngx_int_t ngx_http_llm_sbuf_append(ngx_pool_t *pool, ngx_http_llm_sbuf_t *sb,
    u_char *data, size_t len, size_t max);
ngx_int_t ngx_http_llm_sbuf_reserve(ngx_pool_t *pool, ngx_http_llm_sbuf_t *sb,
    size_t len);
ngx_int_t ngx_http_llm_json_dump(ngx_pool_t *pool, json_t *json,
    ngx_http_llm_sbuf_t *sb);
ngx_int_t ngx_http_llm_json_append(ngx_pool_t *pool, json_t *json,
    ngx_http_llm_sbuf_t *sb);
ngx_int_t ngx_http_llm_json_own(ngx_pool_t *pool, json_t *json);
ngx_int_t ngx_http_llm_read_body(ngx_http_request_t *r, u_char **data,
    size_t *len);
json_t *ngx_http_llm_json_str(ngx_str_t *s);
ngx_int_t ngx_http_llm_json_quote(ngx_pool_t *pool, ngx_str_t *s,
    ngx_str_t *out);
u_char *ngx_http_llm_json_real(u_char *p, double v);
u_char *ngx_http_llm_json_pico(u_char *p, int64_t pico);
ngx_int_t ngx_http_llm_json_get_str(json_t *obj, const char *key,
    ngx_str_t *value);
u_char *ngx_http_llm_price_string(u_char *p, int64_t pico);
ngx_int_t ngx_http_llm_printable(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_str_t *secret, ngx_str_t *out);
void ngx_http_llm_redact(ngx_str_t *text, ngx_str_t *secret);


/* the request's body; the JSON scanner */

ngx_int_t ngx_http_llm_body_parse(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, u_char *data, size_t len, json_error_t *err);
ngx_int_t ngx_http_llm_body_full(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
json_t *ngx_http_llm_body_get(ngx_http_llm_ctx_t *ctx, const char *key);
ngx_int_t ngx_http_llm_body_get_str(ngx_http_llm_ctx_t *ctx, const char *key,
    ngx_str_t *value);
ngx_int_t ngx_http_llm_body_object(ngx_http_llm_ctx_t *ctx);
void ngx_http_llm_body_strip(ngx_http_llm_ctx_t *ctx, const char **keys);
const char *ngx_http_llm_body_check(ngx_http_llm_ctx_t *ctx, size_t *bad);
ngx_int_t ngx_http_llm_body_chain(ngx_pool_t *pool, ngx_http_llm_ctx_t *ctx,
    ngx_chain_t **out, size_t *len);
ngx_int_t ngx_http_llm_body_dump(ngx_pool_t *pool, ngx_http_llm_ctx_t *ctx,
    json_t *root, ngx_http_llm_sbuf_t *sb);
ngx_int_t ngx_http_llm_scan_object(u_char *p, u_char *last,
    ngx_http_llm_member_t *members, ngx_uint_t max, ngx_uint_t *n);
ngx_int_t ngx_http_llm_scan_object_in(u_char *p, u_char *last,
    ngx_http_llm_member_t *members, ngx_uint_t max, ngx_uint_t *n,
    ngx_http_llm_scan_inner_t *inner);
ngx_int_t ngx_http_llm_scan_next(u_char **pos, u_char *last, u_char **value,
    size_t *len, u_char *type);
ngx_int_t ngx_http_llm_scan_member(u_char *value, size_t len,
    const char *name, ngx_http_llm_member_t *out);
ngx_int_t ngx_http_llm_scan_lookup(u_char *value, size_t len,
    const char *name, ngx_http_llm_member_t *out, ngx_uint_t *escaped_keys);
ngx_int_t ngx_http_llm_scan_pair(u_char **pos, u_char *last,
    ngx_http_llm_member_t *m, ngx_uint_t *escaped);
ngx_int_t ngx_http_llm_scan_int(ngx_http_llm_member_t *m, int64_t *v);
size_t ngx_http_llm_scan_strlen(u_char *value, size_t len);
u_char *ngx_http_llm_scan_unescape(u_char *dst, u_char *src, size_t len);


/* errors in OpenAI's shape */

ngx_int_t ngx_http_llm_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *code, const char *fmt, ...);
ngx_int_t ngx_http_llm_send_error_json(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, const char *code, ngx_str_t *message,
    json_t *metadata);
json_t *ngx_http_llm_error_json(ngx_uint_t status, const char *type,
    const char *code, ngx_str_t *message, json_t *metadata);
json_t *ngx_http_llm_anthropic_error_json(ngx_uint_t status,
    ngx_str_t *message, json_t *metadata);
const char *ngx_http_llm_error_type(ngx_uint_t status);
ngx_int_t ngx_http_llm_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *json);


/* models */

ngx_http_llm_model_t *ngx_http_llm_find_model(ngx_http_llm_main_conf_t *lmcf,
    ngx_str_t *name);
ngx_int_t ngx_http_llm_models_handler(ngx_http_request_t *r, ngx_str_t *id);


/* status and metrics */

char *ngx_http_llm_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_llm_metrics_request(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx);
ngx_uint_t ngx_http_llm_metrics_status(ngx_uint_t index);
u_char *ngx_http_llm_seconds(u_char *p, ngx_msec_t ms);
ngx_int_t ngx_http_llm_prometheus(ngx_http_request_t *r);
void ngx_http_llm_key_stats_get(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_key_t *key, ngx_http_llm_key_stats_t *st);
int64_t ngx_http_llm_key_spent(ngx_http_llm_key_t *key,
    ngx_http_llm_key_stats_t *st);
const char *ngx_http_llm_key_reset_name(ngx_http_llm_key_t *key);

extern const ngx_msec_t  ngx_http_llm_buckets[NGX_HTTP_LLM_NBUCKETS];


/* variables */

ngx_int_t ngx_http_llm_add_variables(ngx_conf_t *cf);


/* statistics */

char *ngx_http_llm_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_llm_add_zone(ngx_conf_t *cf, ngx_http_llm_main_conf_t *lmcf,
    ngx_str_t *name, size_t size);
ngx_uint_t ngx_http_llm_ewma_value(ngx_atomic_t *avg, ngx_uint_t *known);
void ngx_http_llm_stats_attempt(ngx_http_llm_stats_t *st);
void ngx_http_llm_stats_outcome(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_stats_t *st, ngx_uint_t outcome, ngx_msec_t ttft,
    ngx_uint_t tps_milli);
ngx_int_t ngx_http_llm_stats_circuit(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_stats_t *st);
ngx_int_t ngx_http_llm_stats_probe(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_stats_t *st);


/* configuration */

char *ngx_http_llm_provider(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_llm_model_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


/* mock provider */

char *ngx_http_llm_mock(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


extern ngx_module_t  ngx_http_llm_router_module;


#endif /* _NGX_HTTP_LLM_ROUTER_H_INCLUDED_ */
