/*
 * Liveness and readiness: "ocimirror_health live|ready".
 */

#ifndef NGX_HTTP_OCIMIRROR_HEALTH_H
#define NGX_HTTP_OCIMIRROR_HEALTH_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* 200 {"status":"ok"}: the worker answers. */
ngx_int_t ngx_http_ocimirror_live_handler(ngx_http_request_t *r);

/* 200 or 503 with the result of each check (see the .c file). */
ngx_int_t ngx_http_ocimirror_ready_handler(ngx_http_request_t *r);


#endif /* NGX_HTTP_OCIMIRROR_HEALTH_H */
