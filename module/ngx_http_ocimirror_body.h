/*
 * Answers the fetcher writes to a temp file (BODY), for the requests it
 * answers with BODY or FAIL (tag lists, referrers): ask, then send the
 * file as a file buffer with the kind's Content-Type and headers, or
 * the FAIL as an error.  The link unlinks the file once the handler
 * returns, whatever became of the request (the open fd keeps it
 * readable).
 */

#ifndef NGX_HTTP_OCIMIRROR_BODY_H
#define NGX_HTTP_OCIMIRROR_BODY_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_ipc.h"


/* Add the kind's headers to the answer of the BODY m: status 200,
 * Content-Type and Content-Length are set.  NGX_OK or NGX_ERROR. */
typedef ngx_int_t (*ngx_http_ocimirror_body_headers_pt)(
    ngx_http_request_t *r, const oci_msg_t *m, void *data);

typedef struct {
    const char                          *verb;      /* "TAGS", for the log */
    const char                          *what;      /* the file, for the
                                                       log: "tag list" */
    const char                          *unreadable;    /* the 503's
                                                           message */
    ngx_str_t                            type;      /* Content-Type */
    ngx_http_ocimirror_body_headers_pt   headers;   /* NULL: none */
} ngx_http_ocimirror_body_kind_t;


/* Ask the fetcher with m for r; data goes to kind->headers.  Returns
 * what a content handler returns (NGX_DONE while parked). */
ngx_int_t ngx_http_ocimirror_ask_body(ngx_http_request_t *r,
    const ngx_http_ocimirror_body_kind_t *kind, void *data, oci_msg_t *m);


#endif /* NGX_HTTP_OCIMIRROR_BODY_H */
