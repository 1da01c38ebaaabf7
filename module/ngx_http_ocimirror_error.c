/*
 * JSON errors.
 *
 * nginx answers some requests itself before any module runs (a request
 * line or header too large, a body over client_max_body_size, ...).
 * "error_page 400 ... @ocimirror_error" sends those here.  The status
 * arrives in r->err_status: ngx_http_special_response_handler() sets it
 * before it follows error_page to a named location, and an "=code" in
 * error_page overwrites it (with "=" alone it is 0, and the status of the
 * failed response, if any, is in r->headers_out.status).
 *
 * Two quirks of nginx shape the handler.  error_page turns 494 (request
 * header too large) into 400 when it parses the directive, so a 494 comes
 * here as a 400; it is told apart by r->lingering_close, which nginx sets
 * for the oversized header and clears for every genuine 400 before it
 * follows error_page.  And a request whose request line failed (414, or a
 * 400 for a malformed line) has no URI, which a named location refuses:
 * for those to get JSON too, error_page must name a URI location, e.g.
 *
 *   error_page 400 404 405 413 414 494 500 502 503 504 /_ocimirror_error;
 *   location = /_ocimirror_error { internal; ocimirror_error; }
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_outcome.h"
#include "ngx_http_ocimirror_reply.h"




static ngx_str_t  ngx_http_ocimirror_json_type =
    ngx_string("application/json");


ngx_int_t
ngx_http_ocimirror_send_error(ngx_http_request_t *r, ngx_uint_t status,
    oci_errcode_t code, const char *message)
{
    int         n;
    size_t      cap;
    ngx_str_t   body;

    /* escaping grows a byte to at most six */
    cap = 128 + (message ? 6 * ngx_strlen(message) : 128);

    body.data = ngx_pnalloc(r->pool, cap);
    if (body.data == NULL) {
        return NGX_ERROR;
    }

    n = oci_err_json((char *) body.data, cap, code, message);

    if (n < 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ocimirror: cannot format error %d: %d", code, n);
        return NGX_ERROR;
    }

    body.len = n;

    ngx_http_ocimirror_outcome_error(r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "ocimirror: error %ui \"%V\"", status, &body);

    return ngx_http_ocimirror_send_body(r, status,
                                        &ngx_http_ocimirror_json_type, &body);
}


ngx_int_t
ngx_http_ocimirror_send_fail(ngx_http_request_t *r, const oci_msg_t *m)
{
    u_char         *p;
    ngx_str_t      *value;
    ngx_uint_t      status;
    oci_errcode_t   code;

    status = m->status;

    if (oci_err_parse(m->code, ngx_strlen(m->code), &code) != OCI_OK
        || status < NGX_HTTP_BAD_REQUEST || status > 599)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ocimirror: the fetcher failed with %d \"%s\"",
                      m->status, m->code);

        status = NGX_HTTP_BAD_GATEWAY;
        code = OCI_ERR_UPSTREAM;
    }

    /* a refusal of the fetcher's bounds (BUSY) says when to come back */
    if (m->retry_after > 0) {
        value = ngx_palloc(r->pool, sizeof(ngx_str_t));
        p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);

        if (value == NULL || p == NULL) {
            return NGX_ERROR;
        }

        value->data = p;
        value->len = ngx_sprintf(p, "%l", m->retry_after) - p;

        if (ngx_http_ocimirror_add_header(r, "Retry-After", value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_ocimirror_send_error(r, status, code,
                                         m->message[0] ? m->message : NULL);
}


ngx_int_t
ngx_http_ocimirror_error_handler(ngx_http_request_t *r)
{
    ngx_uint_t      status;
    const char     *message;
    oci_errcode_t   code;

    static ngx_str_t  allow = ngx_string("GET, HEAD");

    status = r->err_status ? r->err_status : r->headers_out.status;

    switch (status) {

    case NGX_HTTP_REQUEST_HEADER_TOO_LARGE:
        /* 494 is nginx's own: the client gets a 400 */
        status = NGX_HTTP_BAD_REQUEST;
        code = OCI_ERR_SIZE_INVALID;
        message = "request header too large";
        break;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        code = OCI_ERR_SIZE_INVALID;
        message = "request body too large";
        break;

    case NGX_HTTP_REQUEST_URI_TOO_LARGE:
        code = OCI_ERR_NAME_INVALID;
        message = "request URI too long";
        break;

    case NGX_HTTP_BAD_REQUEST:
        if (r->lingering_close) {
            code = OCI_ERR_SIZE_INVALID;
            message = "request header too large";

        } else {
            code = OCI_ERR_UNSUPPORTED;
            message = "bad request";
        }

        break;

    case NGX_HTTP_NOT_FOUND:
        code = OCI_ERR_NAME_UNKNOWN;
        message = "not found";
        break;

    case NGX_HTTP_NOT_ALLOWED:
        code = OCI_ERR_UNSUPPORTED;
        message = "method not allowed";
        break;

    default:
        if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR && status < 600) {
            code = OCI_ERR_UNAVAILABLE;
            message = "service unavailable";

        } else if (status >= NGX_HTTP_BAD_REQUEST && status < 500) {
            code = OCI_ERR_UNSUPPORTED;
            message = "request not supported";

        } else {
            /* not sent here by error_page: nothing is known to be wrong */
            status = NGX_HTTP_NOT_FOUND;
            code = OCI_ERR_NAME_UNKNOWN;
            message = "not found";
        }

        break;
    }

    /* ngx_http_send_header() replaces the status with err_status */
    r->err_status = status;

    ngx_http_ocimirror_reset_headers(r);

    if (ngx_http_ocimirror_add_api_version(r) != NGX_OK) {
        return NGX_ERROR;
    }

    if (status == NGX_HTTP_NOT_ALLOWED
        && ngx_http_ocimirror_add_header(r, "Allow", &allow) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_ocimirror_send_error(r, status, code, message);
}


/*
 * Whatever the failed response had put into its headers (a digest, an
 * ETag, a range) does not describe this body: drop it.  Headers that
 * directives such as add_header want are added by their filters later.
 */

void
ngx_http_ocimirror_reset_headers(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        h[i].hash = 0;
    }

    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_location(r);
    ngx_http_clear_etag(r);

    r->headers_out.content_range = NULL;
    r->headers_out.www_authenticate = NULL;
    r->headers_out.content_encoding = NULL;
    r->headers_out.refresh = NULL;
    r->headers_out.expires = NULL;
    r->headers_out.cache_control.nelts = 0;
    r->headers_out.link.nelts = 0;

    r->allow_ranges = 0;
}
