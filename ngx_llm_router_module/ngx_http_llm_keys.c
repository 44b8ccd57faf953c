
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"

#include <fnmatch.h>
#include <math.h>
#include <openssl/evp.h>


/*
 * Virtual keys, budgets and rate limits.
 *
 *     llm_keys FILE;
 *
 * FILE is JSON:
 *
 *     {"keys": [
 *         {"hash": "<SHA-256 of the key, hex>", "label": "alice",
 *          "models": ["gpt-4o*", "auto"], "limit": 10.0,
 *          "limit_reset": "daily|weekly|monthly", "rpm": 60,
 *          "tpm": 100000, "expires": "2027-01-01T00:00:00Z"}
 *     ]}
 *
 * A client presents its key as "Authorization: Bearer KEY" (OpenAI's SDKs)
 * or "x-api-key: KEY" (Anthropic's).  Only the key's SHA-256 is kept, and
 * compared in constant time.  Without llm_keys the router is open.
 *
 * A request reserves its worst case (the prompt's estimated tokens at the
 * input price plus max_tokens, or the model's max_output, at the output
 * price, for the dearest candidate) before it is forwarded; the reservation
 * and the spend are checked and changed together under the zone's lock, so
 * concurrent requests in any worker never push the spend past the limit.
 * When the request ends, however it ends, the reservation is settled to
 * what was used.
 */


#define NGX_HTTP_LLM_RESET_NONE     0
#define NGX_HTTP_LLM_RESET_DAILY    1
#define NGX_HTTP_LLM_RESET_WEEKLY   2
#define NGX_HTTP_LLM_RESET_MONTHLY  3


static char *ngx_http_llm_parse_key(ngx_conf_t *cf, json_t *k, ngx_uint_t n,
    ngx_http_llm_key_t *key);
static ngx_int_t ngx_http_llm_hex(u_char *hex, size_t len, u_char *bin);
static time_t ngx_http_llm_parse_iso8601(const char *s);
static ngx_http_llm_key_t *ngx_http_llm_find_key(
    ngx_http_llm_main_conf_t *lmcf, ngx_str_t *presented);
static ngx_int_t ngx_http_llm_presented_key(ngx_http_request_t *r,
    ngx_str_t *key);
static void ngx_http_llm_key_periods(ngx_http_llm_key_stats_t *st,
    time_t now);
static ngx_int_t ngx_http_llm_rate_headers(ngx_http_request_t *r,
    ngx_uint_t limit, ngx_uint_t used, ngx_uint_t reset);
static void ngx_http_llm_keys_md_free(void *data);
static ngx_uint_t ngx_http_llm_window(ngx_uint_t cur, ngx_uint_t prev,
    time_t now);


char *
ngx_http_llm_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_main_conf_t *lmcf = conf;

    size_t               i;
    json_t              *root, *list, *k;
    ngx_str_t           *value;
    ngx_uint_t           j;
    json_error_t         err;
    ngx_pool_cleanup_t  *cln;
    ngx_http_llm_key_t  *key, *keys;

    if (lmcf->keys) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lmcf->keys_file = value[1];

    if (ngx_conf_full_name(cf->cycle, &lmcf->keys_file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* read at configuration time, in the master: blocking is fine here */

    root = json_load_file((char *) lmcf->keys_file.data, 0, &err);

    if (root == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_keys\" cannot load \"%V\": %s (line %d)",
                           &lmcf->keys_file, err.text, err.line);
        return NGX_CONF_ERROR;
    }

    list = json_object_get(root, "keys");

    if (!json_is_array(list)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_keys\" file \"%V\" has no \"keys\" array",
                           &lmcf->keys_file);
        json_decref(root);
        return NGX_CONF_ERROR;
    }

    lmcf->keys = ngx_array_create(cf->pool, json_array_size(list) + 1,
                                  sizeof(ngx_http_llm_key_t));
    if (lmcf->keys == NULL) {
        json_decref(root);
        return NGX_CONF_ERROR;
    }

    json_array_foreach(list, i, k) {
        key = ngx_array_push(lmcf->keys);
        if (key == NULL) {
            json_decref(root);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_llm_parse_key(cf, k, i, key) != NGX_CONF_OK) {
            json_decref(root);
            return NGX_CONF_ERROR;
        }
    }

    json_decref(root);

    /* two entries of one key would split its spend */

    keys = lmcf->keys->elts;

    for (i = 0; i < lmcf->keys->nelts; i++) {
        for (j = 0; j < i; j++) {
            if (ngx_memcmp(keys[i].hash, keys[j].hash, 32) == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"llm_keys\" file \"%V\": keys[%uz] and "
                                   "keys[%ui] have the same hash",
                                   &lmcf->keys_file, i, j);
                return NGX_CONF_ERROR;
            }
        }
    }

    /*
     * the digest looked up once: OpenSSL 3 otherwise fetches it from its
     * providers, under a lock, for every request
     */

#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)

    lmcf->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);

    if (lmcf->sha256 == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_keys\": OpenSSL has no SHA-256");
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        EVP_MD_free(lmcf->sha256);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_llm_keys_md_free;
    cln->data = lmcf->sha256;

#else

    lmcf->sha256 = (void *) EVP_sha256();

#endif

    return NGX_CONF_OK;
}


static void
ngx_http_llm_keys_md_free(void *data)
{
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    EVP_MD_free(data);
#endif
}


static char *
ngx_http_llm_parse_key(ngx_conf_t *cf, json_t *k, ngx_uint_t n,
    ngx_http_llm_key_t *key)
{
    size_t                     i;
    double                     d;
    json_t                    *v, *m;
    ngx_str_t                 *glob, hm;
    const char                *what, *s, *field;
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_llm_router_module);

    ngx_memzero(key, sizeof(ngx_http_llm_key_t));

    key->limit = -1;

    if (!json_is_object(k)) {
        what = "is not an object";
        goto invalid;
    }

    json_object_foreach(k, field, v) {

        if (ngx_strcmp(field, "hash") == 0) {
            if (!json_is_string(v) || json_string_length(v) != 64
                || ngx_http_llm_hex((u_char *) json_string_value(v), 64,
                                    key->hash)
                   != NGX_OK)
            {
                what = "\"hash\" is not 64 hex digits (a SHA-256)";
                goto invalid;
            }

            /* the hex form, lower case, for the zone and the state file */

            for (i = 0; i < 32; i++) {
                ngx_sprintf(&key->hex[2 * i], "%02xd", key->hash[i]);
            }

        } else if (ngx_strcmp(field, "label") == 0) {
            if (!json_is_string(v)) {
                what = "\"label\" is not a string";
                goto invalid;
            }

            hm.data = (u_char *) json_string_value(v);
            hm.len = json_string_length(v);

            if (ngx_http_llm_printable(cf->pool, hm.data, hm.len, NULL,
                                       &key->label)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

        } else if (ngx_strcmp(field, "models") == 0) {
            if (!json_is_array(v)) {
                what = "\"models\" is not an array of model names or globs";
                goto invalid;
            }

            key->models = ngx_array_create(cf->pool, json_array_size(v) + 1,
                                           sizeof(ngx_str_t));
            if (key->models == NULL) {
                return NGX_CONF_ERROR;
            }

            json_array_foreach(v, i, m) {
                if (!json_is_string(m)) {
                    what = "\"models\" is not an array of model names or "
                           "globs";
                    goto invalid;
                }

                glob = ngx_array_push(key->models);
                if (glob == NULL) {
                    return NGX_CONF_ERROR;
                }

                hm.data = (u_char *) json_string_value(m);
                hm.len = json_string_length(m);

                /* NUL-terminated, for fnmatch() */

                glob->data = ngx_pnalloc(cf->pool, hm.len + 1);
                if (glob->data == NULL) {
                    return NGX_CONF_ERROR;
                }

                ngx_memcpy(glob->data, hm.data, hm.len);
                glob->data[hm.len] = '\0';
                glob->len = hm.len;
            }

        } else if (ngx_strcmp(field, "limit") == 0) {
            if (json_is_null(v)) {
                continue;
            }

            d = json_number_value(v);

            if (!json_is_number(v) || d < 0 || d > 1e9) {
                what = "\"limit\" is not a number of USD";
                goto invalid;
            }

            key->limit = (int64_t) llround(d * 1e12);

        } else if (ngx_strcmp(field, "limit_reset") == 0) {
            s = json_string_value(v);

            if (json_is_null(v)) {
                key->reset = NGX_HTTP_LLM_RESET_NONE;

            } else if (s && ngx_strcmp(s, "daily") == 0) {
                key->reset = NGX_HTTP_LLM_RESET_DAILY;

            } else if (s && ngx_strcmp(s, "weekly") == 0) {
                key->reset = NGX_HTTP_LLM_RESET_WEEKLY;

            } else if (s && ngx_strcmp(s, "monthly") == 0) {
                key->reset = NGX_HTTP_LLM_RESET_MONTHLY;

            } else {
                what = "\"limit_reset\" is not \"daily\", \"weekly\", "
                       "\"monthly\" or null";
                goto invalid;
            }

        } else if (ngx_strcmp(field, "rpm") == 0
                   || ngx_strcmp(field, "tpm") == 0)
        {
            if (!json_is_integer(v) || json_integer_value(v) < 0
                || json_integer_value(v) > 1000000000)
            {
                what = "\"rpm\" and \"tpm\" must be whole numbers";
                goto invalid;
            }

            if (field[0] == 'r') {
                key->rpm = json_integer_value(v);

            } else {
                key->tpm = json_integer_value(v);
            }

        } else if (ngx_strcmp(field, "expires") == 0) {
            if (json_is_integer(v) && json_integer_value(v) > 0) {
                key->expires = (time_t) json_integer_value(v);

            } else if (json_is_string(v)) {
                key->expires = ngx_http_llm_parse_iso8601(json_string_value(v));

                if (key->expires == (time_t) -1) {
                    what = "\"expires\" is not like \"2027-01-31T00:00:00Z\"";
                    goto invalid;
                }

            } else if (!json_is_null(v)) {
                what = "\"expires\" is not a date or a unix time";
                goto invalid;
            }

        } else if (ngx_strcmp(field, "comment") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_keys\" file \"%V\": keys[%ui] has an "
                               "unknown field \"%s\"", &lmcf->keys_file, n,
                               field);
            return NGX_CONF_ERROR;
        }
    }

    if (key->hex[0] == '\0') {
        what = "has no \"hash\"";
        goto invalid;
    }

    if (key->label.len == 0) {
        /* a label never shows the key; the hash's start is safe to show */
        key->label.data = key->hex;
        key->label.len = 8;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"llm_keys\" file \"%V\": keys[%ui] %s",
                       &lmcf->keys_file, n, what);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_llm_hex(u_char *hex, size_t len, u_char *bin)
{
    size_t     i;
    ngx_int_t  n;

    for (i = 0; i < len; i += 2) {
        n = ngx_hextoi(hex + i, 2);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        bin[i / 2] = (u_char) n;
    }

    return NGX_OK;
}


/* "YYYY-MM-DDTHH:MM:SSZ" or "YYYY-MM-DD", UTC; -1 if it is neither */

static time_t
ngx_http_llm_parse_iso8601(const char *s)
{
    int     year, mon, day, hour, min, sec;
    size_t  len;
    long    era, yoe, doy, doe, days;

    len = ngx_strlen(s);
    hour = min = sec = 0;

    if (len == 10) {
        if (sscanf(s, "%4d-%2d-%2d", &year, &mon, &day) != 3) {
            return -1;
        }

    } else if (len == 20 && s[10] == 'T' && s[19] == 'Z') {
        if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &year, &mon, &day, &hour,
                   &min, &sec)
            != 6)
        {
            return -1;
        }

    } else {
        return -1;
    }

    if (year < 1970 || year > 9999 || mon < 1 || mon > 12 || day < 1
        || day > 31 || hour > 23 || min > 59 || sec > 60)
    {
        return -1;
    }

    /* days since 1970-01-01 of a proleptic Gregorian date */

    year -= (mon <= 2);
    era = year / 400;
    yoe = year - era * 400;
    doy = (153 * (mon + (mon > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = era * 146097 + doe - 719468;

    return (time_t) days * 86400 + hour * 3600 + min * 60 + sec;
}


/*
 * The key the client presents: "Authorization: Bearer KEY" or
 * "x-api-key: KEY".  NGX_DECLINED when there is none.
 */

static ngx_int_t
ngx_http_llm_presented_key(ngx_http_request_t *r, ngx_str_t *key)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (r->headers_in.authorization) {
        *key = r->headers_in.authorization->value;

        if (key->len > 7
            && ngx_strncasecmp(key->data, (u_char *) "Bearer ", 7) == 0)
        {
            key->data += 7;
            key->len -= 7;

            while (key->len && key->data[0] == ' ') {
                key->data++;
                key->len--;
            }

            return key->len ? NGX_OK : NGX_DECLINED;
        }
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_DECLINED;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("x-api-key") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "x-api-key",
                               sizeof("x-api-key") - 1)
               == 0
            && h[i].value.len)
        {
            *key = h[i].value;
            return NGX_OK;
        }
    }
}


/*
 * The key whose hash is the presented key's SHA-256.  Every configured
 * hash is compared, each in constant time, and the loop never stops
 * early: the time taken says nothing about which key came close.
 */

static ngx_http_llm_key_t *
ngx_http_llm_find_key(ngx_http_llm_main_conf_t *lmcf, ngx_str_t *presented)
{
    u_char               digest[EVP_MAX_MD_SIZE];
    unsigned int         dlen;
    ngx_uint_t           i, j, diff;
    ngx_http_llm_key_t  *key, *found;

    if (EVP_Digest(presented->data, presented->len, digest, &dlen,
                   lmcf->sha256, NULL)
        != 1
        || dlen != 32)
    {
        return NULL;
    }

    key = lmcf->keys->elts;
    found = NULL;

    for (i = 0; i < lmcf->keys->nelts; i++) {
        diff = 0;

        for (j = 0; j < 32; j++) {
            diff |= key[i].hash[j] ^ digest[j];
        }

        /* branch-free: found becomes key[i] only when diff is 0 */

        found = (ngx_http_llm_key_t *)
                ((uintptr_t) found
                 | ((uintptr_t) &key[i] & (uintptr_t) -(diff == 0)));
    }

    return found;
}


/*
 * Before the body: who is calling, and may they now (expiry, requests per
 * minute).  NGX_OK, or NGX_DECLINED with the verdict kept for the caller
 * (ngx_http_llm_reject()).
 */

ngx_int_t
ngx_http_llm_key_check(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_uint_t count)
{
    time_t                     now;
    ngx_str_t                  presented;
    ngx_uint_t                 used, reset;
    ngx_http_llm_key_t        *key;
    ngx_http_llm_key_stats_t  *st;
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    if (lmcf->keys == NULL) {
        return NGX_OK;
    }

    if (ngx_http_llm_presented_key(r, &presented) != NGX_OK) {
        return ngx_http_llm_reject(r, NGX_HTTP_UNAUTHORIZED,
                                   "missing_api_key",
                                   "An API key is required: send "
                                   "\"Authorization: Bearer KEY\" or "
                                   "\"x-api-key: KEY\"");
    }

    key = ngx_http_llm_find_key(lmcf, &presented);

    if (key == NULL) {
        return ngx_http_llm_reject(r, NGX_HTTP_UNAUTHORIZED,
                                   "invalid_api_key",
                                   "The API key is not valid");
    }

    now = ngx_time();

    if (key->expires && now >= key->expires) {
        return ngx_http_llm_reject(r, NGX_HTTP_UNAUTHORIZED,
                                   "expired_api_key",
                                   "The API key \"%V\" has expired",
                                   &key->label);
    }

    ctx->key = key;

    if (key->rpm == 0 || !count) {
        return NGX_OK;
    }

    st = key->stats;

    ngx_shmtx_lock(&lmcf->shpool->mutex);

    ngx_http_llm_key_periods(st, now);

    used = ngx_http_llm_window(st->requests[0], st->requests[1], now);

    if (used < key->rpm) {
        st->requests[0]++;
    }

    ngx_shmtx_unlock(&lmcf->shpool->mutex);

    reset = 60 - now % 60;

    if (used >= key->rpm) {
        if (ngx_http_llm_rate_headers(r, key->rpm, used, reset) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_llm_reject(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                   "rate_limit_exceeded",
                                   "The key \"%V\" is limited to %ui "
                                   "requests per minute", &key->label,
                                   key->rpm);
    }

    ctx->rate_headers = 1;
    ctx->rate_limit = key->rpm;
    ctx->rate_used = used + 1;
    ctx->rate_reset = reset;

    return NGX_OK;
}


/*
 * Once the request is known: may the key use these models, has it tokens
 * left this minute, and does the worst case fit its budget.  The worst
 * case is reserved here.  NGX_OK, or NGX_DECLINED with the verdict kept.
 */

ngx_int_t
ngx_http_llm_key_admit(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    size_t body_len)
{
    time_t                     now;
    int64_t                    worst, cost, out, spent, tokens, reserved;
    ngx_uint_t                 i, j, allowed, used;
    ngx_str_t                 *glob;
    json_t                    *v;
    ngx_http_llm_key_t        *key;
    ngx_http_llm_candidate_t  *cand;
    ngx_http_llm_model_ref_t  *ref;
    ngx_http_llm_key_stats_t  *st;
    ngx_http_llm_main_conf_t  *lmcf;

    key = ctx->key;

    if (key == NULL) {
        return NGX_OK;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    /* the models the request names, as it names them */

    if (key->models) {
        ref = ctx->models.elts;

        for (i = 0; i < ctx->models.nelts; i++) {
            glob = key->models->elts;
            allowed = 0;

            for (j = 0; j < key->models->nelts; j++) {
                if (fnmatch((char *) glob[j].data,
                            (char *) ref[i].name.data, 0)
                    == 0)
                {
                    allowed = 1;
                    break;
                }
            }

            if (!allowed) {
                return ngx_http_llm_reject(r, NGX_HTTP_FORBIDDEN,
                                           "model_not_allowed",
                                           "The key \"%V\" may not use "
                                           "the model \"%V\"",
                                           &key->label, &ref[i].name);
            }
        }
    }

    /* the worst case: the dearest candidate answering at full length */

    ctx->prompt_estimate = ngx_max(1, (int64_t) body_len / 4);

    v = ngx_http_llm_body_get(ctx, "max_completion_tokens");

    if (!json_is_integer(v)) {
        v = ngx_http_llm_body_get(ctx, "max_tokens");
    }

    worst = 0;
    cand = ctx->candidates.elts;

    for (i = 0; i < ctx->candidates.nelts; i++) {

        /*
         * the length the client asked for, else the model's max_output,
         * which is then sent as max_tokens (ngx_http_llm_upstream_cap())
         */

        if (ctx->api == NGX_HTTP_LLM_API_EMBEDDINGS) {
            out = 0;

        } else if (json_is_integer(v) && json_integer_value(v) > 0) {
            /* no model writes a billion tokens; no overflow below */
            out = ngx_min(json_integer_value(v), 1000000000);

        } else {
            out = cand[i].model->max_output;
        }

        cost = ctx->prompt_estimate * cand[i].endpoint->input_price
               + out * cand[i].endpoint->output_price;

        worst = ngx_max(worst, cost);
    }

    now = ngx_time();
    st = key->stats;

    ngx_shmtx_lock(&lmcf->shpool->mutex);

    ngx_http_llm_key_periods(st, now);

    if (key->tpm) {
        tokens = ngx_http_llm_window(st->tokens[0], st->tokens[1], now);

        if ((ngx_uint_t) tokens >= key->tpm) {
            ngx_shmtx_unlock(&lmcf->shpool->mutex);
            goto tpm;
        }

        st->tokens[0] += ctx->prompt_estimate;
    }

    spent = (key->reset == NGX_HTTP_LLM_RESET_NONE)
            ? st->total : st->period[key->reset - 1];

    if (key->limit >= 0 && spent + st->reserved + worst > key->limit) {
        if (key->tpm) {
            st->tokens[0] -= ctx->prompt_estimate;
        }

        reserved = st->reserved;

        ngx_shmtx_unlock(&lmcf->shpool->mutex);

        return ngx_http_llm_reject(r, 402, "limit_reached",
                                   "The key \"%V\" has reached its limit of "
                                   "%.2f USD (spent %.6f, reserved by "
                                   "requests in flight %.6f; this request "
                                   "may cost up to %.6f)",
                                   &key->label,
                                   (double) key->limit / 1e12,
                                   (double) spent / 1e12,
                                   (double) reserved / 1e12,
                                   (double) worst / 1e12);
    }

    st->reserved += worst;

    ngx_shmtx_unlock(&lmcf->shpool->mutex);

    ctx->reserved = worst;
    ctx->tokens_counted = key->tpm ? ctx->prompt_estimate : 0;

    return NGX_OK;

tpm:

    used = (ngx_uint_t) tokens;

    if (ngx_http_llm_rate_headers(r, key->tpm, used, 60 - now % 60)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_llm_reject(r, NGX_HTTP_TOO_MANY_REQUESTS,
                               "rate_limit_exceeded",
                               "The key \"%V\" is limited to %ui tokens per "
                               "minute", &key->label, key->tpm);
}


/*
 * The request is over: its reservation becomes what it spent.  Runs once,
 * from the log phase, however the request ended.
 */

void
ngx_http_llm_key_settle(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    int64_t cost, int64_t tokens)
{
    time_t                     now;
    ngx_uint_t                 i;
    ngx_http_llm_key_t        *key;
    ngx_http_llm_key_stats_t  *st;
    ngx_http_llm_main_conf_t  *lmcf;

    key = ctx->key;

    if (key == NULL || ctx->settled) {
        return;
    }

    ctx->settled = 1;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    now = ngx_time();
    st = key->stats;

    ngx_shmtx_lock(&lmcf->shpool->mutex);

    ngx_http_llm_key_periods(st, now);

    st->reserved -= ctx->reserved;

    if (st->reserved < 0) {
        st->reserved = 0;
    }

    st->total += cost;

    for (i = 0; i < 3; i++) {
        st->period[i] += cost;
    }

    if (key->tpm) {
        st->tokens[0] += tokens - ctx->tokens_counted;

        if (st->tokens[0] < 0) {
            st->tokens[0] = 0;
        }
    }

    ngx_shmtx_unlock(&lmcf->shpool->mutex);

    ctx->reserved = 0;
}


/*
 * Periods start at midnight UTC: the day, the week on Monday, the month
 * on its first.  A counter of a past period starts again from zero; the
 * rate windows slide by the minute.  The zone is locked.
 */

static void
ngx_http_llm_key_periods(ngx_http_llm_key_stats_t *st, time_t now)
{
    time_t      start[3], minute;
    ngx_tm_t    tm;
    ngx_uint_t  i;

    ngx_gmtime(now, &tm);

    start[0] = now - now % 86400;
    start[1] = start[0] - ((tm.ngx_tm_wday + 6) % 7) * 86400;
    start[2] = start[0] - (tm.ngx_tm_mday - 1) * 86400;

    for (i = 0; i < 3; i++) {
        if (st->period_start[i] != start[i]) {
            st->period_start[i] = start[i];
            st->period[i] = 0;
        }
    }

    minute = now - now % 60;

    if (st->minute != minute) {
        if (st->minute == minute - 60) {
            st->requests[1] = st->requests[0];
            st->tokens[1] = st->tokens[0];

        } else {
            st->requests[1] = 0;
            st->tokens[1] = 0;
        }

        st->requests[0] = 0;
        st->tokens[0] = 0;
        st->minute = minute;
    }
}


/* a sliding minute: this minute's count and the part of the last one */

static ngx_uint_t
ngx_http_llm_window(ngx_uint_t cur, ngx_uint_t prev, time_t now)
{
    return cur + prev * (60 - now % 60) / 60;
}


static ngx_int_t
ngx_http_llm_rate_headers(ngx_http_request_t *r, ngx_uint_t limit,
    ngx_uint_t used, ngx_uint_t reset)
{
    u_char           *p;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    static const char  *names[] = {
        "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
        "Retry-After"
    };

    for (i = 0; i < 4; i++) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key.data = (u_char *) names[i];
        h->key.len = ngx_strlen(names[i]);
        h->value.data = p;

        switch (i) {
        case 0:
            p = ngx_sprintf(p, "%ui", limit);
            break;
        case 1:
            p = ngx_sprintf(p, "%ui", used < limit ? limit - used : 0);
            break;
        default:
            p = ngx_sprintf(p, "%ui", reset);
            break;
        }

        h->value.len = p - h->value.data;

        if (i == 2 && used < limit) {
            /* not refused: no Retry-After */
            break;
        }
    }

    return NGX_OK;
}


/* the rate headers on an answer that was let through */

ngx_int_t
ngx_http_llm_key_headers(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    if (!ctx->rate_headers) {
        return NGX_OK;
    }

    ctx->rate_headers = 0;

    return ngx_http_llm_rate_headers(r, ctx->rate_limit, ctx->rate_used,
                                     ctx->rate_reset);
}


/*
 * GET /v1/key: the calling key, in OpenRouter's shape:
 *
 *     {"data":{"label","limit","limit_reset","limit_remaining","usage",
 *              "usage_daily","usage_weekly","usage_monthly",
 *              "is_free_tier":false,"rate_limit":{...},"expires_at"}}
 */

ngx_int_t
ngx_http_llm_key_handler(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx)
{
    json_t                    *data, *root;
    int64_t                    spent, period[3], total, reserved;
    ngx_int_t                  rc;
    const char                *reset;
    ngx_http_llm_key_t        *key;
    ngx_http_llm_key_stats_t   st;
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llm_router_module);

    if (lmcf->keys == NULL) {
        return ngx_http_llm_send_error(r, NGX_HTTP_NOT_FOUND, NULL,
                                       "no_keys",
                                       "This router has no keys (llm_keys "
                                       "is not configured)");
    }

    /* asking what is left is not a request against the limits */

    rc = ngx_http_llm_key_check(r, ctx, 0);

    if (rc == NGX_DECLINED) {
        return ngx_http_llm_send_error(r, ctx->reject_status, NULL,
                                       ctx->reject_code, "%V",
                                       &ctx->reject_msg);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    key = ctx->key;

    ngx_http_llm_key_stats_get(lmcf, key, &st);

    total = st.total;
    period[0] = st.period[0];
    period[1] = st.period[1];
    period[2] = st.period[2];
    reserved = st.reserved;

    spent = ngx_http_llm_key_spent(key, &st);
    reset = ngx_http_llm_key_reset_name(key);

    data = json_object();
    root = json_pack("{s:o}", "data", data);

    if (root == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_object_set_new(data, "label",
                            ngx_http_llm_json_str(&key->label)) != 0
        || json_object_set_new(data, "limit",
                               key->limit >= 0
                               ? json_real((double) key->limit / 1e12)
                               : json_null()) != 0
        || json_object_set_new(data, "limit_reset",
                               reset
                               ? json_string(reset)
                               : json_null()) != 0
        || json_object_set_new(data, "limit_remaining",
                               key->limit >= 0
                               ? json_real((double) ngx_max(0, key->limit
                                                             - spent)
                                           / 1e12)
                               : json_null()) != 0
        || json_object_set_new(data, "usage",
                               json_real((double) total / 1e12)) != 0
        || json_object_set_new(data, "usage_daily",
                               json_real((double) period[0] / 1e12)) != 0
        || json_object_set_new(data, "usage_weekly",
                               json_real((double) period[1] / 1e12)) != 0
        || json_object_set_new(data, "usage_monthly",
                               json_real((double) period[2] / 1e12)) != 0
        || json_object_set_new(data, "reserved",
                               json_real((double) reserved / 1e12)) != 0
        || json_object_set_new(data, "is_free_tier", json_false()) != 0
        || json_object_set_new(data, "rate_limit",
                               json_pack("{s:I,s:I,s:s}",
                                         "requests", (json_int_t) key->rpm,
                                         "tokens", (json_int_t) key->tpm,
                                         "interval", "1m")) != 0
        || json_object_set_new(data, "expires_at",
                               key->expires ? json_integer(key->expires)
                                            : json_null()) != 0)
    {
        json_decref(root);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_llm_send_json(r, NGX_HTTP_OK, root);

    json_decref(root);

    return rc;
}


/* a copy of the key's counters, its periods brought up to date */

void
ngx_http_llm_key_stats_get(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_key_t *key, ngx_http_llm_key_stats_t *st)
{
    ngx_shmtx_lock(&lmcf->shpool->mutex);

    ngx_http_llm_key_periods(key->stats, ngx_time());

    *st = *key->stats;

    ngx_shmtx_unlock(&lmcf->shpool->mutex);
}


/* what counts against the limit: this period's spend, or all of it */

int64_t
ngx_http_llm_key_spent(ngx_http_llm_key_t *key, ngx_http_llm_key_stats_t *st)
{
    return (key->reset == NGX_HTTP_LLM_RESET_NONE)
           ? st->total : st->period[key->reset - 1];
}


const char *
ngx_http_llm_key_reset_name(ngx_http_llm_key_t *key)
{
    static const char  *names[] = { NULL, "daily", "weekly", "monthly" };

    return names[key->reset];
}
