
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_dialect.h"


/* stub: being written */

json_t *
ngx_http_llm_gemini_request(json_t *req, const char **err)
{
    *err = "not implemented";
    return NULL;
}


json_t *
ngx_http_llm_gemini_response(json_t *resp, const char **err)
{
    *err = "not implemented";
    return NULL;
}


ngx_int_t
ngx_http_llm_gemini_event(ngx_http_llm_decoder_t *d, json_t *data,
    json_t *chunks)
{
    return NGX_DECLINED;
}
