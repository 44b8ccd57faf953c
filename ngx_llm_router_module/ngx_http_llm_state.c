
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * The keys' spend outlives nginx:
 *
 *     llm_state_file PATH [INTERVAL];      (default interval: 10s)
 *
 * The zone keeps spend across reloads; the state file across restarts.
 * One worker (the first) writes it every INTERVAL and when it exits, to a
 * temporary file renamed over PATH, so a reader never sees half of one.
 * It is read when the configuration is loaded and applied to a zone made
 * anew (a start, not a reload).  A crash loses at most one interval.
 *
 * The write is a few hundred bytes per key, without fsync(): a crashed
 * nginx loses nothing of what was written, a crashed machine may lose the
 * last interval.
 */


static void ngx_http_llm_state_timer(ngx_event_t *ev);
static ngx_int_t ngx_http_llm_state_write(ngx_cycle_t *cycle,
    ngx_http_llm_main_conf_t *lmcf);
static void ngx_http_llm_state_cleanup(void *data);


char *
ngx_http_llm_state(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_main_conf_t *lmcf = conf;

    json_t              *root;
    ngx_str_t           *value;
    json_error_t         err;
    ngx_file_info_t      fi;
    ngx_pool_cleanup_t  *cln;

    if (lmcf->state_file.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lmcf->state_file = value[1];

    if (ngx_conf_full_name(cf->cycle, &lmcf->state_file, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        lmcf->state_interval = ngx_parse_time(&value[2], 0);

        if (lmcf->state_interval == (ngx_msec_t) NGX_ERROR
            || lmcf->state_interval < 100)
        {
            return "has an invalid interval";
        }
    }

    if (ngx_file_info(lmcf->state_file.data, &fi) == NGX_FILE_ERROR) {
        /* the first start: nothing kept yet */
        return NGX_CONF_OK;
    }

    root = json_load_file((char *) lmcf->state_file.data, 0, &err);

    if (!json_is_object(root)
        || !json_is_object(json_object_get(root, "keys")))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_state_file\" \"%V\" is not a state file: "
                           "%s; move it away to start from zero spend",
                           &lmcf->state_file,
                           root ? "no \"keys\" object" : err.text);
        json_decref(root);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        json_decref(root);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_llm_state_cleanup;
    cln->data = root;

    lmcf->state = root;

    return NGX_CONF_OK;
}


static void
ngx_http_llm_state_cleanup(void *data)
{
    json_t *root = data;

    json_decref(root);
}


/* a key's counters from the state file, into a zone made anew */

void
ngx_http_llm_state_restore(ngx_http_llm_main_conf_t *lmcf,
    ngx_http_llm_key_t *key)
{
    json_t                    *k, *v, *periods, *p;
    ngx_uint_t                 i;
    ngx_http_llm_key_stats_t  *st;

    if (lmcf->state == NULL) {
        return;
    }

    k = json_object_get(json_object_get(lmcf->state, "keys"),
                        (char *) key->hex);

    if (!json_is_object(k)) {
        return;
    }

    st = key->stats;

    v = json_object_get(k, "total");

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        st->total = json_integer_value(v);
    }

    periods = json_object_get(k, "periods");

    for (i = 0; i < 3; i++) {
        p = json_array_get(periods, i);

        if (json_is_integer(json_array_get(p, 0))
            && json_is_integer(json_array_get(p, 1))
            && json_integer_value(json_array_get(p, 1)) >= 0)
        {
            /* a past period is reset when the key is next used */
            st->period_start[i] = json_integer_value(json_array_get(p, 0));
            st->period[i] = json_integer_value(json_array_get(p, 1));
        }
    }
}


ngx_int_t
ngx_http_llm_state_init_process(ngx_cycle_t *cycle)
{
    ngx_event_t               *ev;
    ngx_connection_t          *c;
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_llm_router_module);

    if (lmcf == NULL || lmcf->state_file.data == NULL || lmcf->keys == NULL
        || ngx_worker != 0)
    {
        return NGX_OK;
    }

    ev = ngx_pcalloc(cycle->pool, sizeof(ngx_event_t));
    c = ngx_pcalloc(cycle->pool, sizeof(ngx_connection_t));

    if (ev == NULL || c == NULL) {
        return NGX_ERROR;
    }

    /* timer debug logging reads the connection's fd: give it one */

    c->fd = (ngx_socket_t) -1;

    ev->handler = ngx_http_llm_state_timer;
    ev->data = c;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, lmcf->state_interval);

    return NGX_OK;
}


void
ngx_http_llm_state_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_llm_router_module);

    if (lmcf == NULL || lmcf->state_file.data == NULL || lmcf->keys == NULL
        || ngx_worker != 0)
    {
        return;
    }

    (void) ngx_http_llm_state_write(cycle, lmcf);
}


static void
ngx_http_llm_state_timer(ngx_event_t *ev)
{
    ngx_http_llm_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_llm_router_module);

    (void) ngx_http_llm_state_write((ngx_cycle_t *) ngx_cycle, lmcf);

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_add_timer(ev, lmcf->state_interval);
}


static ngx_int_t
ngx_http_llm_state_write(ngx_cycle_t *cycle, ngx_http_llm_main_conf_t *lmcf)
{
    u_char                    *tmp, *p;
    json_t                    *root, *keys, *k;
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    ngx_http_llm_key_t        *key;
    ngx_http_llm_key_stats_t   st;

    keys = json_object();
    root = json_pack("{s:i,s:I,s:o}", "version", 1,
                     "saved", (json_int_t) ngx_time(), "keys", keys);
    if (root == NULL) {
        return NGX_ERROR;
    }

    key = lmcf->keys->elts;
    rc = NGX_OK;

    for (i = 0; i < lmcf->keys->nelts; i++) {

        ngx_shmtx_lock(&lmcf->shpool->mutex);
        st = *key[i].stats;
        ngx_shmtx_unlock(&lmcf->shpool->mutex);

        k = json_pack("{s:s%,s:I,s:[[I,I],[I,I],[I,I]]}",
                      "label", key[i].label.data, key[i].label.len,
                      "total", (json_int_t) st.total,
                      "periods",
                      (json_int_t) st.period_start[0],
                      (json_int_t) st.period[0],
                      (json_int_t) st.period_start[1],
                      (json_int_t) st.period[1],
                      (json_int_t) st.period_start[2],
                      (json_int_t) st.period[2]);

        if (k == NULL
            || json_object_set_new(keys, (char *) key[i].hex, k) != 0)
        {
            json_decref(root);
            return NGX_ERROR;
        }
    }

    /* a temporary file beside it, then rename(): never half a file */

    tmp = ngx_alloc(lmcf->state_file.len + sizeof(".tmp"), cycle->log);
    if (tmp == NULL) {
        json_decref(root);
        return NGX_ERROR;
    }

    p = ngx_cpymem(tmp, lmcf->state_file.data, lmcf->state_file.len);
    ngx_memcpy(p, ".tmp", sizeof(".tmp"));

    if (json_dump_file(root, (char *) tmp, JSON_COMPACT) != 0) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "llm_state_file: cannot write \"%s\"", tmp);
        rc = NGX_ERROR;

    } else if (ngx_rename_file(tmp, lmcf->state_file.data)
               == NGX_FILE_ERROR)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      ngx_rename_file_n " \"%s\" to \"%V\" failed", tmp,
                      &lmcf->state_file);
        rc = NGX_ERROR;
    }

    ngx_free(tmp);
    json_decref(root);

    return rc;
}
