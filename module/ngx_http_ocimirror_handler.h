/*
 * The content handler of "ocimirror": the registry API under /v2/.
 */

#ifndef NGX_HTTP_OCIMIRROR_HANDLER_H
#define NGX_HTTP_OCIMIRROR_HANDLER_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_int_t ngx_http_ocimirror_handler(ngx_http_request_t *r);


#endif /* NGX_HTTP_OCIMIRROR_HANDLER_H */
