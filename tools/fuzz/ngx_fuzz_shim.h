
/*
 * Copyright (C) The ngx_llm_router authors
 */


#ifndef _NGX_FUZZ_SHIM_H_INCLUDED_
#define _NGX_FUZZ_SHIM_H_INCLUDED_


/*
 * The part of nginx's core that the fuzzed parsers need, written for the
 * fuzzers (not nginx's code): a pool that is a list of malloc()ed blocks.
 *
 * Every allocation is its own malloc() block, so AddressSanitizer sees an
 * overrun of any single allocation (in a real pool it would run into the
 * next one unnoticed), and ngx_pfree() really frees, so a pointer kept to a
 * buffer that grew is a use after free.  ngx_fuzz_pool_destroy() frees
 * what is left: nothing outlives one fuzz input and nothing is reported as
 * leaked.
 */


#include <ngx_config.h>
#include <ngx_core.h>


ngx_pool_t *ngx_fuzz_pool_create(void);
void ngx_fuzz_pool_destroy(ngx_pool_t *pool);

/* blocks still allocated in the pool, and their bytes */
size_t ngx_fuzz_pool_blocks(ngx_pool_t *pool);
size_t ngx_fuzz_pool_bytes(ngx_pool_t *pool);


#endif /* _NGX_FUZZ_SHIM_H_INCLUDED_ */
