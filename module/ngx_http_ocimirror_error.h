/*
 * Errors as the distribution spec's JSON, for the module's own answers
 * and, through the "ocimirror_error" location, for nginx's.
 */

#ifndef NGX_HTTP_OCIMIRROR_ERROR_H
#define NGX_HTTP_OCIMIRROR_ERROR_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_error.h"
#include "oci_ipc.h"


/*
 * Answer r with status and the JSON body of code (message NULL: the
 * code's default text).  The headers must not be sent yet; headers the
 * caller added stay (Allow, Content-Range, ...).  Returns the value to
 * hand to ngx_http_finalize_request(): never a status code, so nginx does
 * not replace the body with its own error page.
 */
ngx_int_t ngx_http_ocimirror_send_error(ngx_http_request_t *r,
    ngx_uint_t status, oci_errcode_t code, const char *message);

/* Answer r with the error a FAIL message relays: its status and code
 * (502 UNKNOWN if either makes no sense), and a Retry-After if it has
 * one (a BUSY, as the link hands it over). */
ngx_int_t ngx_http_ocimirror_send_fail(ngx_http_request_t *r,
    const oci_msg_t *m);

/* The content handler of "ocimirror_error", a named location that
 * error_page sends nginx's own errors to. */
ngx_int_t ngx_http_ocimirror_error_handler(ngx_http_request_t *r);


/* Drop every header the response has so far (a failed answer's, or what
 * the handler set before it passed the request on to a cluster peer). */
void ngx_http_ocimirror_reset_headers(ngx_http_request_t *r);


#endif /* NGX_HTTP_OCIMIRROR_ERROR_H */
