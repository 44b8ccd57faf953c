
/*
 * Copyright (C) The ngx_llm_router authors
 */


/*
 * A stand-in for the nginx core functions that ngx_http_llm_sse.c and
 * ngx_http_llm_sbuf.c link against, for the fuzzers in this directory.
 * Written for them, not taken from nginx.  See ngx_fuzz_shim.h.
 */


#include <stdio.h>
#include <stdlib.h>

#include "ngx_fuzz_shim.h"


typedef struct ngx_fuzz_block_s  ngx_fuzz_block_t;

struct ngx_fuzz_block_s {
    ngx_fuzz_block_t   *next;
    ngx_fuzz_block_t   *prev;
    void               *data;           /* malloc()ed apart from the node */
    size_t              size;
};


typedef struct {
    ngx_pool_t          pool;           /* first: the pointer nginx sees */
    ngx_fuzz_block_t   *blocks;
    size_t              nblocks;
    size_t              bytes;
} ngx_fuzz_pool_t;


static void
ngx_fuzz_fatal(const char *what)
{
    fprintf(stderr, "ngx_fuzz_shim: %s\n", what);
    abort();
}


ngx_pool_t *
ngx_fuzz_pool_create(void)
{
    ngx_fuzz_pool_t  *fp;

    fp = calloc(1, sizeof(ngx_fuzz_pool_t));
    if (fp == NULL) {
        ngx_fuzz_fatal("out of memory creating a pool");
    }

    /* the nginx fields stay zero: nothing here reads them */

    return &fp->pool;
}


void
ngx_fuzz_pool_destroy(ngx_pool_t *pool)
{
    ngx_fuzz_pool_t   *fp;
    ngx_fuzz_block_t  *b, *next;

    if (pool == NULL) {
        return;
    }

    fp = (ngx_fuzz_pool_t *) pool;

    for (b = fp->blocks; b; b = next) {
        next = b->next;
        free(b->data);
        free(b);
    }

    free(fp);
}


size_t
ngx_fuzz_pool_blocks(ngx_pool_t *pool)
{
    return ((ngx_fuzz_pool_t *) pool)->nblocks;
}


size_t
ngx_fuzz_pool_bytes(ngx_pool_t *pool)
{
    return ((ngx_fuzz_pool_t *) pool)->bytes;
}


static void *
ngx_fuzz_alloc(ngx_pool_t *pool, size_t size, int zero)
{
    ngx_fuzz_pool_t   *fp;
    ngx_fuzz_block_t  *b;

    if (pool == NULL) {
        ngx_fuzz_fatal("allocation from a NULL pool");
    }

    fp = (ngx_fuzz_pool_t *) pool;

    b = malloc(sizeof(ngx_fuzz_block_t));
    if (b == NULL) {
        return NULL;
    }

    /* malloc(0) may answer NULL, which a pool never does: 1 byte then */

    b->data = zero ? calloc(1, size ? size : 1) : malloc(size ? size : 1);
    if (b->data == NULL) {
        free(b);
        return NULL;
    }

    b->size = size;
    b->prev = NULL;
    b->next = fp->blocks;

    if (fp->blocks) {
        fp->blocks->prev = b;
    }

    fp->blocks = b;
    fp->nblocks++;
    fp->bytes += size;

    return b->data;
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    return ngx_fuzz_alloc(pool, size, 0);
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_fuzz_alloc(pool, size, 0);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_fuzz_alloc(pool, size, 1);
}


/*
 * nginx only frees large allocations and answers NGX_DECLINED for others;
 * here every block is freed, which is stricter: a pointer kept to a freed
 * buffer is found by ASan whatever its size.  A pointer that is not from
 * this pool is a bug in the caller: nginx would ignore it, we stop.
 */

ngx_int_t
ngx_pfree(ngx_pool_t *pool, void *p)
{
    ngx_fuzz_pool_t   *fp;
    ngx_fuzz_block_t  *b;

    if (pool == NULL) {
        ngx_fuzz_fatal("ngx_pfree() on a NULL pool");
    }

    fp = (ngx_fuzz_pool_t *) pool;

    for (b = fp->blocks; b; b = b->next) {

        if (b->data != p) {
            continue;
        }

        if (b->prev) {
            b->prev->next = b->next;

        } else {
            fp->blocks = b->next;
        }

        if (b->next) {
            b->next->prev = b->prev;
        }

        fp->nblocks--;
        fp->bytes -= b->size;

        free(b->data);
        free(b);

        return NGX_OK;
    }

    ngx_fuzz_fatal("ngx_pfree() of a pointer that is not in the pool "
                   "(freed twice, or from elsewhere)");

    return NGX_DECLINED;
}

