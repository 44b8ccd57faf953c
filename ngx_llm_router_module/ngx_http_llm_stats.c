
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * Live statistics of every endpoint, in a shared memory zone: every worker
 * updates them, every worker routes by them, and they survive a reload
 * ("nginx -s reload") as long as the zone keeps its name and size.
 *
 * An endpoint's statistics are found by its key (provider name, provider
 * URL, the provider's model id) once, when a configuration is loaded: the
 * zone's init handler binds each endpoint of the new configuration to its
 * node, reusing the node of the previous configuration.  Nodes are never
 * freed: a worker of the previous configuration may still be using them.
 *
 * The request path never locks: counters are atomic, averages are updated
 * with compare-and-swap.
 */


typedef struct {
    ngx_queue_t                 queue;
    void                       *data;         /* what the node holds */
    size_t                      len;
    u_char                      key[1];
} ngx_http_llm_stats_node_t;


static ngx_int_t ngx_http_llm_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t ngx_http_llm_bind_endpoints(ngx_http_llm_main_conf_t *lmcf,
    ngx_slab_pool_t *shpool, ngx_log_t *log);
static void *ngx_http_llm_stats_node(ngx_slab_pool_t *shpool,
    ngx_http_llm_shctx_t *sh, ngx_str_t *key, size_t size);
static ngx_http_llm_metrics_t *ngx_http_llm_metrics_node(
    ngx_http_llm_main_conf_t *lmcf, ngx_slab_pool_t *shpool, ngx_log_t *log,
    const char *prefix, ngx_str_t *name);
static ngx_int_t ngx_http_llm_bind_keys(ngx_http_llm_main_conf_t *lmcf,
    ngx_slab_pool_t *shpool, ngx_log_t *log, ngx_uint_t fresh);
static void ngx_http_llm_ewma(ngx_atomic_t *avg, ngx_atomic_uint_t sample);


char *
ngx_http_llm_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_main_conf_t *lmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (lmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" in \"llm_zone\", it must be "
                           "at least %uzk", &value[2], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    return ngx_http_llm_add_zone(cf, lmcf, &value[1], size);
}


char *
ngx_http_llm_add_zone(ngx_conf_t *cf, ngx_http_llm_main_conf_t *lmcf,
    ngx_str_t *name, size_t size)
{
    lmcf->shm_zone = ngx_shared_memory_add(cf, name, size,
                                           &ngx_http_llm_router_module);
    if (lmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (lmcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llm_zone \"%V\" is already used", name);
        return NGX_CONF_ERROR;
    }

    lmcf->shm_zone->init = ngx_http_llm_init_zone;
    lmcf->shm_zone->data = lmcf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_llm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_llm_main_conf_t *olmcf = data;

    size_t                     len;
    ngx_slab_pool_t           *shpool;
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (olmcf) {
        /* a reload: the zone and its statistics live on */
        lmcf->sh = olmcf->sh;

    } else if (shm_zone->shm.exists) {
        lmcf->sh = shpool->data;

    } else {
        lmcf->sh = ngx_slab_alloc(shpool, sizeof(ngx_http_llm_shctx_t));
        if (lmcf->sh == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(lmcf->sh, sizeof(ngx_http_llm_shctx_t));
        ngx_queue_init(&lmcf->sh->nodes);

        shpool->data = lmcf->sh;

        len = sizeof(" in llm_zone \"\"") + shm_zone->shm.name.len;

        shpool->log_ctx = ngx_slab_alloc(shpool, len);
        if (shpool->log_ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(shpool->log_ctx, " in llm_zone \"%V\"%Z",
                    &shm_zone->shm.name);
    }

    lmcf->sh->generation++;
    lmcf->shpool = shpool;

    if (ngx_http_llm_bind_endpoints(lmcf, shpool, shm_zone->shm.log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_llm_bind_keys(lmcf, shpool, shm_zone->shm.log,
                                  olmcf == NULL);
}


static ngx_int_t
ngx_http_llm_bind_endpoints(ngx_http_llm_main_conf_t *lmcf,
    ngx_slab_pool_t *shpool, ngx_log_t *log)
{
    u_char                    *p;
    ngx_str_t                  key;
    ngx_uint_t                 i, j;
    ngx_http_llm_model_t     **model;
    ngx_http_llm_endpoint_t   *ep;

    model = lmcf->models.elts;

    for (i = 0; i < lmcf->models.nelts; i++) {
        ep = model[i]->endpoints.elts;

        for (j = 0; j < model[i]->endpoints.nelts; j++) {

            if (ep[j].stats) {
                continue;
            }

            key.len = ep[j].provider->name.len + 1 + ep[j].provider->url.len
                      + 1 + ep[j].model.len;

            key.data = ngx_alloc(key.len, log);
            if (key.data == NULL) {
                return NGX_ERROR;
            }

            p = ngx_sprintf(key.data, "%V %V %V", &ep[j].provider->name,
                            &ep[j].provider->url, &ep[j].model);
            key.len = p - key.data;

            ngx_shmtx_lock(&shpool->mutex);
            ep[j].stats = ngx_http_llm_stats_node(shpool, lmcf->sh, &key,
                                                  sizeof(ngx_http_llm_stats_t));
            ngx_shmtx_unlock(&shpool->mutex);

            if (ep[j].stats == NULL) {
                ngx_log_error(NGX_LOG_WARN, log, 0,
                              "llm_zone is too small: the statistics of "
                              "\"%V\" are kept per worker", &key);

                ep[j].stats = ngx_calloc(sizeof(ngx_http_llm_stats_t), log);
                if (ep[j].stats == NULL) {
                    ngx_free(key.data);
                    return NGX_ERROR;
                }
            }

            ngx_free(key.data);
        }

        if (model[i]->metrics == NULL) {
            model[i]->metrics = ngx_http_llm_metrics_node(lmcf, shpool, log,
                                                          "model ",
                                                          &model[i]->name);
            if (model[i]->metrics == NULL) {
                return NGX_ERROR;
            }
        }
    }

    if (lmcf->metrics == NULL) {
        key.len = 0;
        key.data = (u_char *) "";

        lmcf->metrics = ngx_http_llm_metrics_node(lmcf, shpool, log,
                                                  "requests", &key);
        if (lmcf->metrics == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the request counters of a model, or of the zone itself */

static ngx_http_llm_metrics_t *
ngx_http_llm_metrics_node(ngx_http_llm_main_conf_t *lmcf,
    ngx_slab_pool_t *shpool, ngx_log_t *log, const char *prefix,
    ngx_str_t *name)
{
    u_char                  *p;
    ngx_str_t                key;
    ngx_http_llm_metrics_t  *m;

    key.len = ngx_strlen(prefix) + name->len;

    key.data = ngx_alloc(key.len, log);
    if (key.data == NULL) {
        return NULL;
    }

    p = ngx_cpymem(key.data, prefix, ngx_strlen(prefix));
    ngx_memcpy(p, name->data, name->len);

    ngx_shmtx_lock(&shpool->mutex);
    m = ngx_http_llm_stats_node(shpool, lmcf->sh, &key,
                                sizeof(ngx_http_llm_metrics_t));
    ngx_shmtx_unlock(&shpool->mutex);

    if (m == NULL) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "llm_zone is too small: the counters of \"%V\" are "
                      "kept per worker", &key);

        m = ngx_calloc(sizeof(ngx_http_llm_metrics_t), log);
    }

    ngx_free(key.data);

    return m;
}


/* the data of the node "key", created when missing; the zone is locked */

static void *
ngx_http_llm_stats_node(ngx_slab_pool_t *shpool, ngx_http_llm_shctx_t *sh,
    ngx_str_t *key, size_t size)
{
    ngx_queue_t                *q;
    ngx_http_llm_stats_node_t  *node;

    for (q = ngx_queue_head(&sh->nodes);
         q != ngx_queue_sentinel(&sh->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_llm_stats_node_t, queue);

        if (node->len == key->len
            && ngx_memcmp(node->key, key->data, key->len) == 0)
        {
            return node->data;
        }
    }

    node = ngx_slab_calloc_locked(shpool,
                                  offsetof(ngx_http_llm_stats_node_t, key)
                                  + key->len);
    if (node == NULL) {
        return NULL;
    }

    node->data = ngx_slab_calloc_locked(shpool, size);
    if (node->data == NULL) {
        ngx_slab_free_locked(shpool, node);
        return NULL;
    }

    node->len = key->len;
    ngx_memcpy(node->key, key->data, key->len);

    ngx_queue_insert_tail(&sh->nodes, &node->queue);

    return node->data;
}


/*
 * Every key of the configuration gets its spend and rate counters in the
 * zone, by its hash: a reload keeps them.  A zone made anew (a start, not
 * a reload) takes what the state file kept.
 */

static ngx_int_t
ngx_http_llm_bind_keys(ngx_http_llm_main_conf_t *lmcf, ngx_slab_pool_t *shpool,
    ngx_log_t *log, ngx_uint_t fresh)
{
    u_char               buf[4 + 64];
    ngx_str_t            name;
    ngx_uint_t           i;
    ngx_http_llm_key_t  *key;

    if (lmcf->keys == NULL) {
        return NGX_OK;
    }

    key = lmcf->keys->elts;

    for (i = 0; i < lmcf->keys->nelts; i++) {

        name.data = buf;
        name.len = ngx_sprintf(buf, "key %*s", (size_t) 64, key[i].hex)
                   - buf;

        ngx_shmtx_lock(&shpool->mutex);
        key[i].stats = ngx_http_llm_stats_node(shpool, lmcf->sh, &name,
                                           sizeof(ngx_http_llm_key_stats_t));
        ngx_shmtx_unlock(&shpool->mutex);

        if (key[i].stats == NULL) {
            ngx_log_error(NGX_LOG_EMERG, log, 0,
                          "llm_zone is too small for the keys of \"%V\"",
                          &lmcf->keys_file);
            return NGX_ERROR;
        }

        if (fresh) {
            ngx_http_llm_state_restore(lmcf, &key[i]);
        }
    }

    return NGX_OK;
}


/*
 * Exponentially weighted moving average, weight 1/8 for a new sample,
 * lock-free.  Values are kept plus one, so that zero means "no sample".
 */

static void
ngx_http_llm_ewma(ngx_atomic_t *avg, ngx_atomic_uint_t sample)
{
    ngx_atomic_uint_t  old, new;

    sample++;

    do {
        old = *avg;

        if (old == 0) {
            new = sample;

        } else if (sample >= old) {
            new = old + (sample - old + 7) / 8;

        } else {
            new = old - (old - sample) / 8;
        }

    } while (!ngx_atomic_cmp_set(avg, old, new));
}


ngx_uint_t
ngx_http_llm_ewma_value(ngx_atomic_t *avg, ngx_uint_t *known)
{
    ngx_atomic_uint_t  v;

    v = *avg;

    *known = (v != 0);

    return v ? v - 1 : 0;
}


void
ngx_http_llm_stats_attempt(ngx_http_llm_stats_t *st)
{
    (void) ngx_atomic_fetch_add(&st->inflight, 1);
    (void) ngx_atomic_fetch_add(&st->requests, 1);
}


/*
 * The outcome of an attempt.  "failed" counts against the endpoint (the
 * circuit breaker, the recent failures the default pick avoids); a
 * request the provider judged bad (400, 413, 422) is neither a success nor
 * a failure of the endpoint.
 */

void
ngx_http_llm_stats_outcome(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_stats_t *st, ngx_uint_t outcome, ngx_msec_t ttft,
    ngx_uint_t tps_milli)
{
    ngx_msec_t         now;
    ngx_atomic_uint_t  failures;

    now = ngx_current_msec;

    (void) ngx_atomic_fetch_add(&st->inflight, -1);

    switch (outcome) {

    case NGX_HTTP_LLM_OUTCOME_OK:
        (void) ngx_atomic_fetch_add(&st->ok, 1);

        st->failures = 0;
        st->probe = 0;

        ngx_http_llm_ewma(&st->error_rate, 0);
        ngx_http_llm_ewma(&st->ttft, ttft);

        if (tps_milli) {
            ngx_http_llm_ewma(&st->tps, tps_milli);
        }

        return;

    case NGX_HTTP_LLM_OUTCOME_FAILED:
        (void) ngx_atomic_fetch_add(&st->errors, 1);

        ngx_http_llm_ewma(&st->error_rate, 1000000);

        st->last_failure = now;

        failures = ngx_atomic_fetch_add(&st->failures, 1) + 1;

        if (lmcf->circuit_failures && failures >= lmcf->circuit_failures) {
            /* open the circuit, or keep it open after a failed probe */
            st->cooldown_until = now + lmcf->circuit_cooldown;
            st->probe = 0;
        }

        return;

    default: /* NGX_HTTP_LLM_OUTCOME_NEUTRAL */
        if (st->probe) {
            st->probe = 0;
        }

        return;
    }
}


/*
 * Whether the circuit lets a request through: NGX_OK (closed), NGX_BUSY
 * (open: cooling down, or another request is probing), NGX_AGAIN (half
 * open: the caller may probe, see ngx_http_llm_stats_probe()).
 */

ngx_int_t
ngx_http_llm_stats_circuit(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_stats_t *st)
{
    ngx_msec_t  now, probe;

    if (lmcf->circuit_failures == 0 || st->failures < lmcf->circuit_failures) {
        return NGX_OK;
    }

    now = ngx_current_msec;

    if ((ngx_msec_int_t) (st->cooldown_until - now) > 0) {
        return NGX_BUSY;
    }

    probe = st->probe;

    /* a probe that never reported back does not block forever */

    if (probe && (ngx_msec_int_t) (now - probe) < (ngx_msec_int_t)
                                                   lmcf->circuit_cooldown)
    {
        return NGX_BUSY;
    }

    return NGX_AGAIN;
}


/* one request, across all workers, wins the right to probe */

ngx_int_t
ngx_http_llm_stats_probe(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_stats_t *st)
{
    ngx_atomic_uint_t  probe, now;

    probe = st->probe;
    now = ngx_current_msec;

    if (probe && (ngx_msec_int_t) (now - probe) < (ngx_msec_int_t)
                                                   lmcf->circuit_cooldown)
    {
        return NGX_BUSY;
    }

    return ngx_atomic_cmp_set(&st->probe, probe, now ? now : 1) ? NGX_OK
                                                                 : NGX_BUSY;
}
