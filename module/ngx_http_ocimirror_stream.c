/*
 * Streaming a blob the fetcher is downloading.
 *
 * SIZE names the file: the worker opens it once and sends the headers,
 * with the final Content-Length, at once.  Each PROGRESS then becomes a
 * file buffer over [sent, available) of that fd, with flush set; the data
 * the fetcher wrote is in the page cache, so sendfile reads it directly.
 * While a buffer is still on its way to a slow client, progress is only
 * recorded: the next buffer covers everything that arrived meanwhile,
 * so a slow client costs a file offset, never memory.  Buffers are
 * recycled through free/busy chains, as the upstream module does.
 *
 * A whole blob may look complete only after DONE (the digest matched):
 * with a Content-Length, the last byte completes it, so the last byte
 * waits for DONE together with last_buf; so does a single range that
 * runs to the end of the blob ("bytes=N-", a resume).  A single range
 * that ends before the blob does is only a part of it, which the client
 * verifies when it has assembled the blob: once PROGRESS covers it, the
 * request leaves the fetcher (DETACH: the download goes on for the
 * store) and completes as fast as the client reads.  A client that goes
 * away sends CANCEL: a download nobody waits for is dropped.  Bytes before a
 * range start are never read: nothing is sent until PROGRESS passes the
 * start, and the range filter moves the first buffer's file_pos there.
 * A FAIL, a lost link or a timeout while the response still needs the
 * fetcher ends the connection short of Content-Length.
 *
 * A HEAD asks STAT instead, and answers with the headers a GET would get
 * from the size it learns: a HEAD must not make the mirror download the
 * blob (a loop of HEADs over big images would fill the disk).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_serve.h"
#include "ngx_http_ocimirror_stream.h"


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_ocimirror_wait_t    wait;

    ngx_str_t                    digest;
    ngx_str_t                    etag;
    ngx_str_t                    store_path;

    ngx_file_t                   file;
    off_t                        size;       /* from SIZE */
    off_t                        available;  /* from PROGRESS */
    off_t                        sent;       /* handed to the filters */

    /* what the client gets: [start, end) of the blob */
    off_t                        start;
    off_t                        end;

    ngx_chain_t                 *free;
    ngx_chain_t                 *busy;

    unsigned                     header_sent:1;
    unsigned                     header_flush:1;
    unsigned                     vanished:1; /* the file SIZE named */
    unsigned                     done:1;
    unsigned                     partial:1;  /* end < size: no DONE needed */
} ngx_http_ocimirror_stream_t;


static void ngx_http_ocimirror_stream_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m);
static void ngx_http_ocimirror_stream_size(ngx_http_ocimirror_stream_t *s,
    const oci_msg_t *m);
static void ngx_http_ocimirror_stream_stored(ngx_http_ocimirror_stream_t *s);
static ngx_int_t ngx_http_ocimirror_stream_open(
    ngx_http_ocimirror_stream_t *s, const char *tmp_path);
static void ngx_http_ocimirror_stream_send(ngx_http_ocimirror_stream_t *s,
    ngx_uint_t resume);
static void ngx_http_ocimirror_stream_write_handler(ngx_http_request_t *r);
static void ngx_http_ocimirror_stream_fail(ngx_http_ocimirror_stream_t *s,
    ngx_uint_t status, oci_errcode_t code, const char *message);
static void ngx_http_ocimirror_stream_finalize(
    ngx_http_ocimirror_stream_t *s, ngx_int_t rc);
static void ngx_http_ocimirror_stream_head_message(
    ngx_http_ocimirror_wait_t *w, const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_stream_headers(
    ngx_http_ocimirror_stream_t *s, off_t size);


/* A BLOB (store_path: where its bytes will be) or a STAT (NULL: the
 * headers alone) of the digest, its answers to handler. */
static ngx_int_t
ngx_http_ocimirror_stream_ask(ngx_http_request_t *r, oci_route_t *route,
    ngx_str_t *store_path, ngx_str_t *digest, oci_msg_type_t type,
    ngx_http_ocimirror_wait_pt handler)
{
    oci_msg_t                     m;
    ngx_http_ocimirror_stream_t  *s;

    s = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_stream_t));
    if (s == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->request = r;
    s->digest = *digest;

    if (store_path != NULL) {
        s->store_path = *store_path;
    }

    if (ngx_http_ocimirror_etag(r, digest, &s->etag) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    oci_msg_init(&m, type, 0);

    ngx_cpystrn((u_char *) m.registry, (u_char *) route->registry->name,
                sizeof(m.registry));
    ngx_cpystrn((u_char *) m.name, (u_char *) route->name, sizeof(m.name));
    ngx_cpystrn((u_char *) m.reference, (u_char *) route->reference,
                sizeof(m.reference));

    return ngx_http_ocimirror_ask_or_fail(r, &s->wait, handler, s, &m);
}


ngx_int_t
ngx_http_ocimirror_stream_blob(ngx_http_request_t *r, oci_route_t *route,
    ngx_str_t *store_path, ngx_str_t *digest)
{
    return ngx_http_ocimirror_stream_ask(r, route, store_path, digest,
                                         OCI_MSG_BLOB,
                                         ngx_http_ocimirror_stream_message);
}


ngx_int_t
ngx_http_ocimirror_stream_head(ngx_http_request_t *r, oci_route_t *route,
    ngx_str_t *digest)
{
    return ngx_http_ocimirror_stream_ask(r, route, NULL, digest,
                                         OCI_MSG_STAT,
                                  ngx_http_ocimirror_stream_head_message);
}


static void
ngx_http_ocimirror_stream_head_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m)
{
    ngx_int_t                     rc;
    ngx_http_request_t           *r;
    ngx_http_ocimirror_stream_t  *s;

    s = w->data;
    r = s->request;

    switch (m->type) {

    case OCI_MSG_META:
        if (m->size < 0
            || ngx_strlen(m->digest) != s->digest.len
            || ngx_strncmp(m->digest, s->digest.data, s->digest.len) != 0)
        {
            break;
        }

        rc = ngx_http_ocimirror_stream_headers(s, m->size);

        if (rc == NGX_DECLINED) {
            /* answered already (416) */
            return;
        }

        if (rc != NGX_OK) {
            ngx_http_ocimirror_stream_finalize(s, NGX_ERROR);
            return;
        }

        s->header_sent = 1;

        ngx_http_ocimirror_stream_finalize(s, ngx_http_send_header(r));
        return;

    case OCI_MSG_FAIL:
        ngx_http_ocimirror_stream_finalize(s,
                                           ngx_http_ocimirror_send_fail(r, m));
        return;

    default:
        break;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "ocimirror: unexpected answer %d to STAT %V",
                  m->type, &s->digest);

    ngx_http_ocimirror_stream_fail(s, NGX_HTTP_BAD_GATEWAY, OCI_ERR_UPSTREAM,
                                   "unexpected answer from the fetcher");
}


static void
ngx_http_ocimirror_stream_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m)
{
    ngx_http_request_t           *r;
    ngx_http_ocimirror_stream_t  *s;

    s = w->data;
    r = s->request;

    switch (m->type) {

    case OCI_MSG_SIZE:
        if (s->header_sent) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "ocimirror: ignored a second SIZE for %V",
                          &s->digest);
            return;
        }

        ngx_http_ocimirror_stream_size(s, m);
        return;

    case OCI_MSG_PROGRESS:
        if (!s->header_sent) {
            /* before SIZE, or after a SIZE whose file vanished (its FAIL
             * or DONE follows): nothing can be sent yet */
            return;
        }

        if (m->bytes > s->available) {
            s->available = ngx_min(m->bytes, s->size);
        }

        if (s->partial && s->available >= s->end) {
            /* the range is on disk: nothing the fetcher says later (a
             * FAIL, say) concerns this request any more; the rest of the
             * blob is still wanted (the next range, the next pull) */
            ngx_http_ocimirror_wait_detach(&s->wait);
        }

        ngx_http_ocimirror_stream_send(s, 0);
        return;

    case OCI_MSG_DONE:
        if (!s->header_sent) {
            /* committed before the size was ever reported */
            ngx_http_ocimirror_stream_stored(s);
            return;
        }

        s->done = 1;
        s->available = s->size;

        ngx_http_ocimirror_stream_send(s, 0);
        return;

    case OCI_MSG_FAIL:
        if (!s->header_sent) {
            ngx_http_ocimirror_stream_finalize(s,
                                           ngx_http_ocimirror_send_fail(r, m));
            return;
        }

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ocimirror: blob %V aborted after %O of %O bytes: "
                      "%d %s %s", &s->digest, s->sent, s->size, m->status,
                      m->code, m->message);

        ngx_http_ocimirror_stream_finalize(s, NGX_ERROR);
        return;

    default:
        break;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "ocimirror: unexpected answer %d to BLOB %V",
                  m->type, &s->digest);

    ngx_http_ocimirror_stream_fail(s, NGX_HTTP_BAD_GATEWAY, OCI_ERR_UPSTREAM,
                                   "unexpected answer from the fetcher");
}


static void
ngx_http_ocimirror_stream_size(ngx_http_ocimirror_stream_t *s,
    const oci_msg_t *m)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = s->request;

    if (m->size < 0) {
        ngx_http_ocimirror_stream_fail(s, NGX_HTTP_BAD_GATEWAY,
                                       OCI_ERR_UPSTREAM,
                                       "invalid size from the fetcher");
        return;
    }

    rc = ngx_http_ocimirror_stream_open(s, m->path);

    if (rc == NGX_DECLINED) {
        /*
         * Neither the temp file nor the blob: the download failed (a
         * digest mismatch, say) before the file could be opened.  The
         * fetcher's FAIL tells the client why.
         */
        s->vanished = 1;
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_ocimirror_stream_fail(s, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       OCI_ERR_UNAVAILABLE,
                                       "cannot open the download");
        return;
    }

    s->vanished = 0;

    s->size = m->size;

    rc = ngx_http_ocimirror_stream_headers(s, s->size);

    if (rc == NGX_DECLINED) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_ocimirror_stream_finalize(s, NGX_ERROR);
        return;
    }

    s->header_sent = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        /* HEAD, 304, or a failure */
        ngx_http_ocimirror_stream_finalize(s, rc);
        return;
    }

    /*
     * What the range filter made of a Range header: a single range is a
     * 206 with a Content-Range, and ngx_http_range_singlepart_header()
     * left its bounds in content_offset and content_length_n.
     */

    if (r->headers_out.status == NGX_HTTP_PARTIAL_CONTENT
        && r->headers_out.content_range != NULL)
    {
        s->start = r->headers_out.content_offset;
        s->end = s->start + r->headers_out.content_length_n;
        s->partial = (s->end < s->size);

    } else {
        s->start = 0;
        s->end = s->size;
    }

    r->write_event_handler = ngx_http_ocimirror_stream_write_handler;

    /* the headers leave now, not with the first data: a client sees the
     * answer start as soon as the upstream's does */
    s->header_flush = 1;

    ngx_http_ocimirror_stream_send(s, 0);
}


/*
 * The response headers for a blob of size bytes, as a stored blob's
 * answer has them, ranges included.  NGX_OK (ready to send), NGX_DECLINED
 * (answered and finalized: 416) or NGX_ERROR.
 */

static ngx_int_t
ngx_http_ocimirror_stream_headers(ngx_http_ocimirror_stream_t *s,
    off_t size)
{
    ngx_http_request_t  *r;

    r = s->request;

    switch (ngx_http_ocimirror_range_test(r, size, &s->etag)) {

    case NGX_HTTP_OCIMIRROR_RANGE_UNSATISFIABLE:
        ngx_http_ocimirror_stream_finalize(s,
                       ngx_http_ocimirror_send_unsatisfiable(r, size));
        return NGX_DECLINED;

    case NGX_HTTP_OCIMIRROR_RANGE_MULTI:
        /* multipart ranges need the whole body in one buffer: send it
         * all, still saying what a stored blob's answer says, which the
         * range filter, kept out, would have */
        r->allow_ranges = 0;

        if (ngx_http_ocimirror_add_accept_ranges(r) != NGX_OK) {
            return NGX_ERROR;
        }

        break;

    default:
        r->allow_ranges = 1;
        break;
    }

    return ngx_http_ocimirror_set_content(r, size,
                                          &ngx_http_ocimirror_octet_stream,
                                          &s->digest, &s->etag);
}


/* DONE came first: the blob is in the store, serve it as a hit. */

static void
ngx_http_ocimirror_stream_stored(ngx_http_ocimirror_stream_t *s)
{
    ngx_int_t             rc;
    ngx_http_request_t   *r;
    ngx_open_file_info_t  of;

    r = s->request;

    rc = ngx_http_ocimirror_open(r, &s->store_path, &of);

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "ocimirror: blob %V reported done is not in "
                          "the store", &s->digest);
        }

        ngx_http_ocimirror_stream_fail(s, NGX_HTTP_BAD_GATEWAY,
                                       OCI_ERR_UPSTREAM,
                                       "blob missing from the store");
        return;
    }

    ngx_http_ocimirror_stream_finalize(s,
                 ngx_http_ocimirror_serve_blob(r, &of, &s->store_path,
                                               &s->digest));
}


/*
 * Open the file SIZE names.  A temp file that is gone was committed in
 * the meantime (renamed into the store): open the store path.  NGX_OK,
 * NGX_DECLINED if neither exists, NGX_ERROR (logged).
 */

static ngx_int_t
ngx_http_ocimirror_stream_open(ngx_http_ocimirror_stream_t *s,
    const char *tmp_path)
{
    ngx_fd_t             fd;
    ngx_int_t            rc;
    ngx_str_t            path;
    ngx_http_request_t  *r;

    r = s->request;

    rc = ngx_http_ocimirror_open_file(r, tmp_path, &path, &fd);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_ocimirror_open_file(r, (const char *) s->store_path.data,
                                          &path, &fd);
    }

    if (rc == NGX_DECLINED) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "ocimirror: download of %V vanished", &s->digest);
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    s->file.fd = fd;
    s->file.name = path;
    s->file.log = r->connection->log;

    return NGX_OK;
}


/*
 * Hand the filters what is available, one buffer at a time; resume is
 * set when the client's connection became writable again.
 *
 * Buffers run contiguously from offset 0 of the blob, because the range
 * filter locates them by adding up their sizes; the first one waits
 * until there is data past the range start, and the filter then moves
 * its file_pos to the start, so no byte before it is ever read.  The
 * last byte the client gets leaves with last_buf, once DONE came, or as
 * soon as it is written for a range that ends before the blob.
 */

static void
ngx_http_ocimirror_stream_send(ngx_http_ocimirror_stream_t *s,
    ngx_uint_t resume)
{
    off_t                      limit;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_uint_t                 last;
    ngx_chain_t               *out;
    ngx_event_t               *wev;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = s->request;
    wev = r->connection->write;

    if (s->busy != NULL && !resume) {
        /* coalesce: the write event sends what came meanwhile */
        return;
    }

    rc = NGX_OK;

    for ( ;; ) {
        out = NULL;
        last = 0;

        if (s->busy == NULL) {

            /* without DONE, the last byte of a whole blob is held back */

            limit = (s->done || s->partial) ? s->end : s->end - 1;
            limit = ngx_min(s->available, limit);

            last = (limit == s->end);

            if ((limit > s->sent && limit > s->start) || last
                || s->header_flush)
            {
                out = ngx_chain_get_free_buf(r->pool, &s->free);
                if (out == NULL) {
                    ngx_http_ocimirror_stream_finalize(s, NGX_ERROR);
                    return;
                }

                b = out->buf;
                ngx_memzero(b, sizeof(ngx_buf_t));

                b->tag = (ngx_buf_tag_t) &ngx_http_ocimirror_module;
                s->header_flush = 0;

                if (limit > s->sent && limit > s->start) {
                    b->in_file = 1;
                    b->file = &s->file;
                    b->file_pos = s->sent;
                    b->file_last = limit;
                    s->sent = limit;
                }

                if (last) {
                    b->last_buf = (r == r->main) ? 1 : 0;
                    b->last_in_chain = 1;

                } else {
                    b->flush = 1;
                }
            }
        }

        if (out == NULL && !resume) {
            break;
        }

        resume = 0;

        rc = ngx_http_output_filter(r, out);

        if (rc == NGX_ERROR) {
            ngx_http_ocimirror_stream_finalize(s, NGX_ERROR);
            return;
        }

        ngx_chain_update_chains(r->pool, &s->free, &s->busy, &out,
                                (ngx_buf_tag_t) &ngx_http_ocimirror_module);

        if (last) {
            /*
             * The only way to the end: the fetcher is told that this
             * request is over (a FAIL that follows is not ours), and
             * nginx's writer flushes whatever is still buffered.
             */
            ngx_http_ocimirror_stream_finalize(s, rc);
            return;
        }

        if (s->busy != NULL) {
            break;
        }
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (s->busy != NULL || rc == NGX_AGAIN) {

        /* the client is slower than the fetcher */

        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_ocimirror_stream_finalize(s, NGX_ERROR);
        }

        return;
    }

    /* waiting for the fetcher, not for the client */

    if (wev->timer_set && !wev->delayed) {
        ngx_del_timer(wev);
    }
}


static void
ngx_http_ocimirror_stream_write_handler(ngx_http_request_t *r)
{
    ngx_event_t                  *wev;
    ngx_connection_t             *c;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_ocimirror_wait_t    *w;
    ngx_http_ocimirror_stream_t  *s;

    c = r->connection;
    wev = c->write;

    /* not r->ctx: ngx_http_filter_finalize_request() wipes it */

    w = ngx_http_ocimirror_wait_of(r);

    if (w == NULL) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "ocimirror: a streamed request lost its state");
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    s = w->data;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;

        ngx_http_ocimirror_stream_finalize(s, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (wev->delayed || r->aio) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_ocimirror_stream_finalize(s, NGX_ERROR);
        }

        return;
    }

    ngx_http_ocimirror_stream_send(s, 1);
}


/* An error before the headers is a JSON answer; after, an abort. */

static void
ngx_http_ocimirror_stream_fail(ngx_http_ocimirror_stream_t *s,
    ngx_uint_t status, oci_errcode_t code, const char *message)
{
    ngx_http_ocimirror_wait_done(&s->wait);

    if (s->header_sent) {
        ngx_http_ocimirror_stream_finalize(s, NGX_ERROR);
        return;
    }

    ngx_http_ocimirror_stream_finalize(s,
                 ngx_http_ocimirror_send_error(s->request, status, code,
                                               message));
}


/* The one way out: the fetcher is told if it still works for us. */

static void
ngx_http_ocimirror_stream_finalize(ngx_http_ocimirror_stream_t *s,
    ngx_int_t rc)
{
    ngx_http_ocimirror_wait_done(&s->wait);

    ngx_http_finalize_request(s->request, rc);
}
