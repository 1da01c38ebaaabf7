/*
 * What every answer of the module is made of: response headers, and a
 * body in memory.  The lowest of the module's units: errors
 * (ngx_http_ocimirror_error.h) and serving from the store
 * (ngx_http_ocimirror_serve.h) build on it, and it calls neither.
 *
 * ngx_http_ocimirror_send_body() returns what ngx_http_finalize_request()
 * wants: NGX_OK, NGX_AGAIN, NGX_ERROR, or (header filters only) a status.
 */

#ifndef NGX_HTTP_OCIMIRROR_REPLY_H
#define NGX_HTTP_OCIMIRROR_REPLY_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* Push a response header; key and value must outlive the request. */
ngx_int_t ngx_http_ocimirror_add_header(ngx_http_request_t *r,
    const char *key, ngx_str_t *value);

/* Docker-Distribution-API-Version: registry/2.0, once. */
ngx_int_t ngx_http_ocimirror_add_api_version(ngx_http_request_t *r);

/* Send status, type and an in-memory body (pool or static memory). */
ngx_int_t ngx_http_ocimirror_send_body(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *body);


#endif /* NGX_HTTP_OCIMIRROR_REPLY_H */
