/*
 * Serving from the store, the way ngx_http_static_module serves files:
 * the file leaves as a file buffer (sendfile), nginx's not_modified
 * filter answers If-None-Match from the ETag, its range filter answers a
 * Range.  Only the unsatisfiable Range is answered here, before the
 * headers, because the range filter would send it with an HTML body.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_store.h"
#include "oci_error.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_reply.h"
#include "ngx_http_ocimirror_serve.h"


static ngx_uint_t ngx_http_ocimirror_etag_match(ngx_str_t *list,
    ngx_str_t *etag, ngx_uint_t weak);
static ngx_uint_t ngx_http_ocimirror_range_parse(ngx_http_request_t *r,
    off_t size);


ngx_str_t  ngx_http_ocimirror_octet_stream =
    ngx_string("application/octet-stream");


ngx_int_t
ngx_http_ocimirror_blob_path(ngx_http_request_t *r, const char *root,
    const char *hex, ngx_str_t *path)
{
    size_t   cap;
    u_char  *p;

    cap = ngx_strlen(root) + sizeof("/types/sha256/xx/")
          + OCI_SHA256_HEX_LEN + 1;

    p = ngx_pnalloc(r->pool, cap);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (oci_store_blob_path(root, hex, (char *) p, cap) != OCI_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ocimirror: cannot build the store path of %s", hex);
        return NGX_ERROR;
    }

    path->data = p;
    path->len = ngx_strlen(p);

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_etag(ngx_http_request_t *r, ngx_str_t *digest,
    ngx_str_t *etag)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, digest->len + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    etag->data = p;
    *p++ = '"';
    p = ngx_cpymem(p, digest->data, digest->len);
    *p++ = '"';
    etag->len = p - etag->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_open(ngx_http_request_t *r, ngx_str_t *path,
    ngx_open_file_info_t *of)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ngx_memzero(of, sizeof(ngx_open_file_info_t));

    of->read_ahead = clcf->read_ahead;
    of->directio = clcf->directio;
    of->valid = clcf->open_file_cache_valid;
    of->min_uses = clcf->open_file_cache_min_uses;
    of->errors = 0;
    of->events = clcf->open_file_cache_events;

    if (ngx_open_cached_file(clcf->open_file_cache, path, of, r->pool)
        != NGX_OK)
    {
        if (of->err == NGX_ENOENT || of->err == NGX_ENOTDIR) {
            return NGX_DECLINED;
        }

        if (of->err != 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, of->err,
                          "%s \"%s\" failed", of->failed, path->data);
        }

        return NGX_ERROR;
    }

    if (!of->is_file) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "\"%s\" in the store is not a regular file",
                      path->data);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_open_file(ngx_http_request_t *r, const char *name,
    ngx_str_t *path, ngx_fd_t *fd)
{
    ngx_err_t                 err;
    ngx_pool_cleanup_t       *cln;
    ngx_pool_cleanup_file_t  *clnf;

    path->len = ngx_strlen(name);
    path->data = ngx_pnalloc(r->pool, path->len + 1);
    if (path->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(path->data, name, path->len + 1);

    /* allocated first: an open fd must never be without its cleanup */

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_pool_cleanup_file_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    *fd = ngx_open_file(path->data, NGX_FILE_RDONLY|NGX_FILE_NONBLOCK,
                        NGX_FILE_OPEN, 0);

    if (*fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            return NGX_DECLINED;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, err,
                      ngx_open_file_n " \"%V\" failed", path);
        return NGX_ERROR;
    }

    cln->handler = ngx_pool_cleanup_file;
    clnf = cln->data;
    clnf->fd = *fd;
    clnf->name = path->data;
    clnf->log = r->connection->log;

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_open_body(ngx_http_request_t *r, const char *name,
    const char *what, ngx_str_t *path, ngx_fd_t *fd, off_t *size)
{
    ngx_int_t        rc;
    ngx_file_info_t  fi;

    rc = ngx_http_ocimirror_open_file(r, name, path, fd);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ENOENT,
                      "ocimirror: the %s \"%s\" is gone", what, name);
    }

    if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    if (ngx_fd_info(*fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      ngx_fd_info_n " \"%V\" failed", path);
        return NGX_ERROR;
    }

    *size = ngx_file_size(&fi);

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_add_accept_ranges(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Accept-Ranges");
    ngx_str_set(&h->value, "bytes");

    r->headers_out.accept_ranges = h;

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_set_content(ngx_http_request_t *r, off_t length,
    ngx_str_t *type, ngx_str_t *digest, ngx_str_t *etag)
{
    ngx_table_elt_t  *h;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = length;

    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    if (digest == NULL) {
        return NGX_OK;
    }

    if (ngx_http_ocimirror_add_header(r, "Docker-Content-Digest", digest)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "ETag");
    h->value = *etag;

    r->headers_out.etag = h;

    return NGX_OK;
}


ngx_buf_t *
ngx_http_ocimirror_file_buf(ngx_http_request_t *r, ngx_fd_t fd,
    ngx_str_t *path, off_t size)
{
    ngx_buf_t  *b;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NULL;
    }

    b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
    if (b->file == NULL) {
        return NULL;
    }

    b->file_pos = 0;
    b->file_last = size;
    b->in_file = size ? 1 : 0;

    b->file->fd = fd;
    b->file->name = *path;
    b->file->log = r->connection->log;

    return b;
}


ngx_int_t
ngx_http_ocimirror_send_file(ngx_http_request_t *r, ngx_fd_t fd,
    ngx_str_t *path, off_t size, ngx_uint_t directio)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    /* allocate all before the header is sent */

    b = ngx_http_ocimirror_file_buf(r, fd, path, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->file->directio = directio;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_ocimirror_read_only(ngx_http_request_t *r, const char *message)
{
    ngx_int_t  rc;

    static ngx_str_t  allow = ngx_string("GET, HEAD");

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        return NGX_DECLINED;
    }

    if (ngx_http_ocimirror_add_header(r, "Allow", &allow) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_ocimirror_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                         OCI_ERR_UNSUPPORTED, message);
}


ngx_uint_t
ngx_http_ocimirror_range_test(ngx_http_request_t *r, off_t size,
    ngx_str_t *etag)
{
    ngx_str_t                 *v;
    ngx_table_elt_t           *range;
    ngx_http_core_loc_conf_t  *clcf;

    /* the conditions of ngx_http_range_header_filter() */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    range = r->headers_in.range;

    if (r->http_version < NGX_HTTP_VERSION_10
        || r != r->main
        || clcf->max_ranges == 0
        || range == NULL
        || range->value.len < 7
        || ngx_strncasecmp(range->value.data, (u_char *) "bytes=", 6) != 0)
    {
        return NGX_HTTP_OCIMIRROR_RANGE_NONE;
    }

    /*
     * The not_modified filter runs first.  Without a Last-Modified,
     * If-Unmodified-Since always fails (412) and If-Modified-Since always
     * counts as modified, which also disables If-None-Match.
     */

    if (!r->disable_not_modified) {

        if (r->headers_in.if_unmodified_since != NULL) {
            return NGX_HTTP_OCIMIRROR_RANGE_NONE;
        }

        if (r->headers_in.if_match != NULL
            && !ngx_http_ocimirror_etag_match(&r->headers_in.if_match->value,
                                              etag, 0))
        {
            return NGX_HTTP_OCIMIRROR_RANGE_NONE;
        }

        if (r->headers_in.if_none_match != NULL
            && r->headers_in.if_modified_since == NULL
            && ngx_http_ocimirror_etag_match(
                   &r->headers_in.if_none_match->value, etag, 1))
        {
            return NGX_HTTP_OCIMIRROR_RANGE_NONE;
        }
    }

    /* If-Range: an exact ETag, or a date that cannot match */

    if (r->headers_in.if_range != NULL) {
        v = &r->headers_in.if_range->value;

        if (v->len < 2 || v->data[v->len - 1] != '"'
            || v->len != etag->len
            || ngx_strncmp(v->data, etag->data, etag->len) != 0)
        {
            return NGX_HTTP_OCIMIRROR_RANGE_NONE;
        }
    }

    return ngx_http_ocimirror_range_parse(r, size);
}


/*
 * The grammar and the limits of ngx_http_range_parse(), in
 * src/oci_range.c (where it is unit-tested and fuzzed), on the same
 * header value: a syntax error is "unsatisfiable" there too, more ranges
 * than max_ranges or ranges larger than the body mean "send it all".
 */

static ngx_uint_t
ngx_http_ocimirror_range_parse(ngx_http_request_t *r, off_t size)
{
    ngx_str_t                 *v;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    v = &r->headers_in.range->value;

    return oci_range_parse((const char *) v->data + 6, v->len - 6,
                           (long long) size,
                           r->single_range ? 1 : clcf->max_ranges);
}


/* ngx_http_test_if_match() of the not_modified filter */

static ngx_uint_t
ngx_http_ocimirror_etag_match(ngx_str_t *list, ngx_str_t *etag,
    ngx_uint_t weak)
{
    u_char  *start, *end, ch;

    if (list->len == 1 && list->data[0] == '*') {
        return 1;
    }

    start = list->data;
    end = list->data + list->len;

    while (start < end) {

        if (weak && end - start > 2 && start[0] == 'W' && start[1] == '/') {
            start += 2;
        }

        if (etag->len > (size_t) (end - start)) {
            return 0;
        }

        if (ngx_strncmp(start, etag->data, etag->len) == 0) {
            start += etag->len;

            while (start < end && (*start == ' ' || *start == '\t')) {
                start++;
            }

            if (start == end || *start == ',') {
                return 1;
            }
        }

        while (start < end && *start != ',') { start++; }

        while (start < end) {
            ch = *start;

            if (ch != ' ' && ch != '\t' && ch != ',') {
                break;
            }

            start++;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_ocimirror_send_unsatisfiable(ngx_http_request_t *r, off_t size)
{
    ngx_str_t  value;

    value.data = ngx_pnalloc(r->pool, sizeof("bytes */") - 1 + NGX_OFF_T_LEN);
    if (value.data == NULL) {
        return NGX_ERROR;
    }

    value.len = ngx_sprintf(value.data, "bytes */%O", size) - value.data;

    if (ngx_http_ocimirror_add_header(r, "Content-Range", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_ocimirror_send_error(r,
                                         NGX_HTTP_RANGE_NOT_SATISFIABLE,
                                         OCI_ERR_RANGE_INVALID,
                                         "requested range not satisfiable");
}


ngx_int_t
ngx_http_ocimirror_serve_blob(ngx_http_request_t *r, ngx_open_file_info_t *of,
    ngx_str_t *path, ngx_str_t *digest)
{
    ngx_str_t  etag;

    if (ngx_http_ocimirror_etag(r, digest, &etag) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_ocimirror_range_test(r, of->size, &etag)
        == NGX_HTTP_OCIMIRROR_RANGE_UNSATISFIABLE)
    {
        return ngx_http_ocimirror_send_unsatisfiable(r, of->size);
    }

    if (ngx_http_ocimirror_set_content(r, of->size,
                                       &ngx_http_ocimirror_octet_stream,
                                       digest, &etag)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->allow_ranges = 1;

    return ngx_http_ocimirror_send_file(r, of->fd, path, of->size,
                                        of->is_directio);
}


ngx_int_t
ngx_http_ocimirror_serve_manifest(ngx_http_request_t *r,
    ngx_open_file_info_t *of, ngx_str_t *path, ngx_str_t *type,
    ngx_str_t *digest, ngx_uint_t stale)
{
    ngx_str_t  etag;

    if (ngx_http_ocimirror_etag(r, digest, &etag) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_ocimirror_set_content(r, of->size, type, digest, &etag)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (stale && ngx_http_ocimirror_add_stale_warning(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_ocimirror_send_file(r, of->fd, path, of->size,
                                        of->is_directio);
}


ngx_int_t
ngx_http_ocimirror_add_stale_warning(ngx_http_request_t *r)
{
    static ngx_str_t  stale = ngx_string("110 - \"Response is Stale\"");

    return ngx_http_ocimirror_add_header(r, "Warning", &stale);
}
