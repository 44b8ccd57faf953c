
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_dialect.h"


/* stub: being written */

json_t *
ngx_http_llm_messages_request(json_t *req, const char **err)
{
    *err = "not implemented";
    return NULL;
}


json_t *
ngx_http_llm_messages_response(json_t *completion)
{
    return NULL;
}


void
ngx_http_llm_messages_encoder_init(ngx_http_llm_encoder_t *e)
{
}


ngx_int_t
ngx_http_llm_messages_chunk(ngx_http_llm_encoder_t *e, json_t *chunk,
    json_t *events)
{
    return NGX_ERROR;
}


ngx_int_t
ngx_http_llm_messages_end(ngx_http_llm_encoder_t *e, json_t *events)
{
    return NGX_ERROR;
}
