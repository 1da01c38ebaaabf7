/*
 * A blob that is not in the store: asked of the fetcher (BLOB) and sent
 * to the client while the fetcher is still writing it; or, for a HEAD,
 * only its size asked (STAT), which the fetcher gets from the upstream's
 * HEAD without downloading it.
 */

#ifndef NGX_HTTP_OCIMIRROR_STREAM_H
#define NGX_HTTP_OCIMIRROR_STREAM_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_route.h"
#include "ngx_http_ocimirror_module.h"


/* store_path: where the blob will be once committed; digest: its
 * "sha256:..." name.  Returns what a content handler returns (NGX_DONE
 * while parked). */
ngx_int_t ngx_http_ocimirror_stream_blob(ngx_http_request_t *r,
    oci_route_t *route, ngx_str_t *store_path, ngx_str_t *digest);

/* A HEAD of it: the headers a GET would get (status, Content-Length,
 * Docker-Content-Digest, ETag, ranges), from STAT.  Returns what a
 * content handler returns. */
ngx_int_t ngx_http_ocimirror_stream_head(ngx_http_request_t *r,
    oci_route_t *route, ngx_str_t *digest);


#endif /* NGX_HTTP_OCIMIRROR_STREAM_H */
