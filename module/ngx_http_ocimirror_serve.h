/*
 * Serving from the store: opening files, the registry's response headers,
 * file-backed bodies, and the Range pre-check.  Errors go through
 * ngx_http_ocimirror_error.h, which is below this unit: it only needs
 * ngx_http_ocimirror_reply.h.
 *
 * Every ngx_int_t "send" function returns what ngx_http_finalize_request()
 * wants: NGX_OK, NGX_AGAIN, NGX_ERROR, or (header filters only) a status.
 */

#ifndef NGX_HTTP_OCIMIRROR_SERVE_H
#define NGX_HTTP_OCIMIRROR_SERVE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_range.h"
#include "ngx_http_ocimirror_reply.h"


/* what nginx's range filter will make of the request's Range header
 * (oci_range_parse()'s answers) */
#define NGX_HTTP_OCIMIRROR_RANGE_NONE           OCI_RANGE_NONE
#define NGX_HTTP_OCIMIRROR_RANGE_SINGLE         OCI_RANGE_SINGLE
#define NGX_HTTP_OCIMIRROR_RANGE_MULTI          OCI_RANGE_MULTI
#define NGX_HTTP_OCIMIRROR_RANGE_UNSATISFIABLE  OCI_RANGE_UNSATISFIABLE


/* "<root>/sha256/ab/ab..." for a blob or manifest, in the request pool,
 * NUL-terminated. */
ngx_int_t ngx_http_ocimirror_blob_path(ngx_http_request_t *r,
    const char *root, const char *hex, ngx_str_t *path);

/* The quoted digest that serves as ETag. */
ngx_int_t ngx_http_ocimirror_etag(ngx_http_request_t *r, ngx_str_t *digest,
    ngx_str_t *etag);

/*
 * Open a store file (a path built by ngx_http_ocimirror_blob_path())
 * through the location's open_file_cache, never caching its absence: a
 * miss now may be a hit a moment later.  Returns NGX_OK, NGX_DECLINED if
 * there is no such file, NGX_ERROR (logged).
 */
ngx_int_t ngx_http_ocimirror_open(ngx_http_request_t *r, ngx_str_t *path,
    ngx_open_file_info_t *of);

/*
 * Open name read-only, with a pool cleanup that closes it; path gets a
 * copy of name from the pool, for a file buffer.  For files outside the
 * open_file_cache (the fetcher's temp files).  Returns NGX_OK,
 * NGX_DECLINED if there is no such file (not logged), NGX_ERROR (logged).
 */
ngx_int_t ngx_http_ocimirror_open_file(ngx_http_request_t *r,
    const char *name, ngx_str_t *path, ngx_fd_t *fd);

/*
 * Open the fetcher's BODY temp file name (ngx_http_ocimirror_open_file():
 * the link unlinks it once the handler returns, the open fd keeps it
 * readable) and give its size.  what names it in the log ("tag list").
 * Returns NGX_OK, NGX_DECLINED if it could not be opened, NGX_ERROR if
 * its size could not be read (both logged).
 */
ngx_int_t ngx_http_ocimirror_open_body(ngx_http_request_t *r,
    const char *name, const char *what, ngx_str_t *path, ngx_fd_t *fd,
    off_t *size);

/* Accept-Ranges: bytes, for a response the range filter leaves alone. */
ngx_int_t ngx_http_ocimirror_add_accept_ranges(ngx_http_request_t *r);

/* Status 200, Content-Length, Content-Type, and, with a digest,
 * Docker-Content-Digest and the ETag (so If-None-Match gets a 304). */
ngx_int_t ngx_http_ocimirror_set_content(ngx_http_request_t *r,
    off_t length, ngx_str_t *type, ngx_str_t *digest, ngx_str_t *etag);

/* A buffer of bytes [0, size) of fd, path naming it in the log; the
 * caller sets last_buf.  NULL on failure. */
ngx_buf_t *ngx_http_ocimirror_file_buf(ngx_http_request_t *r, ngx_fd_t fd,
    ngx_str_t *path, off_t size);

/* Send the headers and then bytes [0, size) of fd as one file buffer. */
ngx_int_t ngx_http_ocimirror_send_file(ngx_http_request_t *r, ngx_fd_t fd,
    ngx_str_t *path, off_t size, ngx_uint_t directio);

/* Discard the request body; a method but GET and HEAD gets 405
 * UNSUPPORTED with message and Allow.  NGX_DECLINED for GET and HEAD,
 * else what the content handler returns (the error is sent). */
ngx_int_t ngx_http_ocimirror_read_only(ngx_http_request_t *r,
    const char *message);

/*
 * Predict, exactly as nginx's not_modified and range filters will decide
 * for a 200 response of size bytes with this ETag and no Last-Modified,
 * what the Range header leads to.
 */
ngx_uint_t ngx_http_ocimirror_range_test(ngx_http_request_t *r, off_t size,
    ngx_str_t *etag);

/* 416 SIZE_INVALID, with a Content-Range of "bytes *" "/" size. */
ngx_int_t ngx_http_ocimirror_send_unsatisfiable(ngx_http_request_t *r,
    off_t size);

/*
 * A stored blob: the Range pre-check, the blob headers, the file.
 * The file must be open (of from ngx_http_ocimirror_open()).
 */
ngx_int_t ngx_http_ocimirror_serve_blob(ngx_http_request_t *r,
    ngx_open_file_info_t *of, ngx_str_t *path, ngx_str_t *digest);

/* A stored manifest with its media type; stale adds a Warning. */
ngx_int_t ngx_http_ocimirror_serve_manifest(ngx_http_request_t *r,
    ngx_open_file_info_t *of, ngx_str_t *path, ngx_str_t *type,
    ngx_str_t *digest, ngx_uint_t stale);

/* Add "Warning: 110 - "Response is Stale"". */
ngx_int_t ngx_http_ocimirror_add_stale_warning(ngx_http_request_t *r);


extern ngx_str_t  ngx_http_ocimirror_octet_stream;


#endif /* NGX_HTTP_OCIMIRROR_SERVE_H */
