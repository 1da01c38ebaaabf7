/*
 * The worker's link to the fetcher (see ngx_http_ocimirror_link.h).
 *
 * The socket is an ordinary nginx connection with read and write
 * handlers; nothing here ever blocks.  Input goes to a fixed buffer of
 * two maximum lines, so a line split across reads is simply completed by
 * the next one; output goes to a fixed queue that a write handler drains.
 * Both buffers live as long as the worker: a message costs no memory.
 *
 * Pending requests sit in a red-black tree keyed by request id; the nodes
 * are embedded in the requests' own state, so they come and go with the
 * request pools.  Losing the link fails every pending request at once.
 * A write error can happen deep inside a request handler (a CANCEL sent
 * from a request cleanup, say), where failing the other requests there and
 * then would re-enter code that is still running: such a loss is posted
 * as an event and handled from the event loop.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/un.h>

#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_outcome.h"


/* enough for hundreds of requests while the fetcher is slow to read */
#define NGX_HTTP_OCIMIRROR_OUT_SIZE  (OCI_IPC_LINE_MAX * 32)
#define NGX_HTTP_OCIMIRROR_IN_SIZE   (OCI_IPC_LINE_MAX * 2)


struct ngx_http_ocimirror_link_s {
    ngx_connection_t     *connection;     /* NULL while down */
    ngx_log_t            *log;

    struct sockaddr_un    sockaddr;
    socklen_t             socklen;

    ngx_rbtree_t          pending;
    ngx_rbtree_node_t     sentinel;
    uint32_t              last_id;

    ngx_str_t             tmp_dir;         /* "<store>/tmp/" */

    ngx_buf_t             in;              /* pos: first unparsed byte */
    ngx_buf_t             out;             /* pos: first unsent byte */

    oci_msg_t             msg;             /* the message being delivered */
    oci_msg_t             failure;         /* a made-up FAIL */
    oci_msg_t             cancel;

    ngx_event_t           lost_event;      /* posted on a write error */

    unsigned              broken:1;        /* lost_event is posted */
    unsigned              down_logged:1;   /* a connect failure was logged */
};


static void ngx_http_ocimirror_link_read_handler(ngx_event_t *rev);
static void ngx_http_ocimirror_link_write_handler(ngx_event_t *wev);
static void ngx_http_ocimirror_link_lost_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_ocimirror_link_request(
    ngx_http_ocimirror_link_t *link, ngx_http_ocimirror_wait_t *w,
    oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_link_parse(
    ngx_http_ocimirror_link_t *link);
static void ngx_http_ocimirror_link_drain(ngx_http_ocimirror_link_t *link);
static void ngx_http_ocimirror_link_release(ngx_http_ocimirror_link_t *link,
    const char *path);
static void ngx_http_ocimirror_link_deliver(ngx_http_ocimirror_link_t *link,
    oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_link_queue(
    ngx_http_ocimirror_link_t *link, oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_link_flush(
    ngx_http_ocimirror_link_t *link);
static void ngx_http_ocimirror_link_post_lost(
    ngx_http_ocimirror_link_t *link);
static void ngx_http_ocimirror_link_lost(ngx_http_ocimirror_link_t *link,
    const char *reason);
static ngx_http_ocimirror_wait_t *ngx_http_ocimirror_link_find(
    ngx_http_ocimirror_link_t *link, uint32_t id);
static void ngx_http_ocimirror_wait_unlink(ngx_http_ocimirror_wait_t *w);
static void ngx_http_ocimirror_wait_leave(ngx_http_ocimirror_wait_t *w,
    oci_msg_type_t type);
static void ngx_http_ocimirror_wait_fail(ngx_http_ocimirror_wait_t *w,
    const char *message);
static void ngx_http_ocimirror_wait_timeout(ngx_event_t *ev);
static void ngx_http_ocimirror_wait_cleanup(void *data);
static void ngx_http_ocimirror_park(ngx_http_request_t *r);


ngx_http_ocimirror_link_t *
ngx_http_ocimirror_link_create(ngx_cycle_t *cycle, const char *socket_path,
    const char *store_path)
{
    size_t                      len, root;
    ngx_http_ocimirror_link_t  *link;

    len = ngx_strlen(socket_path);

    link = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ocimirror_link_t));
    if (link == NULL) {
        return NULL;
    }

    link->log = cycle->log;

    /* the length was checked when the configuration was loaded */

    link->sockaddr.sun_family = AF_UNIX;
    ngx_memcpy(link->sockaddr.sun_path, socket_path, len + 1);
    link->socklen = offsetof(struct sockaddr_un, sun_path) + len + 1;

    /* the fetcher's temp files: the root without its trailing slashes,
     * as oci_store_tmp_create() builds them */

    root = ngx_strlen(store_path);

    while (root > 0 && store_path[root - 1] == '/') {
        root--;
    }

    link->tmp_dir.len = root + sizeof("/tmp/") - 1;
    link->tmp_dir.data = ngx_pnalloc(cycle->pool, link->tmp_dir.len);
    if (link->tmp_dir.data == NULL) {
        return NULL;
    }

    ngx_memcpy(ngx_cpymem(link->tmp_dir.data, store_path, root), "/tmp/",
               sizeof("/tmp/") - 1);

    ngx_rbtree_init(&link->pending, &link->sentinel, ngx_rbtree_insert_value);

    link->in.start = ngx_palloc(cycle->pool, NGX_HTTP_OCIMIRROR_IN_SIZE);
    link->out.start = ngx_palloc(cycle->pool, NGX_HTTP_OCIMIRROR_OUT_SIZE);

    if (link->in.start == NULL || link->out.start == NULL) {
        return NULL;
    }

    link->in.pos = link->in.start;
    link->in.last = link->in.start;
    link->in.end = link->in.start + NGX_HTTP_OCIMIRROR_IN_SIZE;

    link->out.pos = link->out.start;
    link->out.last = link->out.start;
    link->out.end = link->out.start + NGX_HTTP_OCIMIRROR_OUT_SIZE;

    link->lost_event.handler = ngx_http_ocimirror_link_lost_handler;
    link->lost_event.data = link;
    link->lost_event.log = cycle->log;

    return link;
}


ngx_int_t
ngx_http_ocimirror_link_connect(ngx_http_ocimirror_link_t *link)
{
    int                rc;
    ngx_err_t          err;
    ngx_event_t       *rev, *wev;
    ngx_socket_t       s;
    ngx_connection_t  *c;

    if (link->connection != NULL) {
        return link->broken ? NGX_DECLINED : NGX_OK;
    }

    s = ngx_socket(AF_UNIX, SOCK_STREAM, 0);

    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, link->log, ngx_socket_errno,
                      ngx_socket_n " failed for the fetcher link");
        return NGX_DECLINED;
    }

    c = ngx_get_connection(s, link->log);

    if (c == NULL) {
        if (ngx_close_socket(s) == -1) {
            ngx_log_error(NGX_LOG_ERR, link->log, ngx_socket_errno,
                          ngx_close_socket_n " failed");
        }

        return NGX_DECLINED;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ERR, link->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed for the fetcher link");
        goto failed;
    }

    c->data = link;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;

    /* a fetcher that dies resets the socket: not worth an [alert] */
    c->log_error = NGX_ERROR_INFO;

    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    rev = c->read;
    wev = c->write;

    rev->log = link->log;
    wev->log = link->log;
    rev->handler = ngx_http_ocimirror_link_read_handler;
    wev->handler = ngx_http_ocimirror_link_write_handler;

    if (ngx_add_conn) {
        if (ngx_add_conn(c) == NGX_ERROR) {
            goto failed;
        }
    }

    rc = connect(s, (struct sockaddr *) &link->sockaddr, link->socklen);

    if (rc == -1) {
        err = ngx_socket_errno;

        if (err != NGX_EINPROGRESS) {

            /* ENOENT, ECONNREFUSED, or EAGAIN when the backlog is full */

            if (!link->down_logged) {
                ngx_log_error(NGX_LOG_WARN, link->log, err,
                              "connect() to the fetcher at \"unix:%s\" "
                              "failed", link->sockaddr.sun_path);
                link->down_logged = 1;

            } else {
                ngx_log_debug1(NGX_LOG_DEBUG_HTTP, link->log, err,
                               "ocimirror: connect() to \"unix:%s\" failed",
                               link->sockaddr.sun_path);
            }

            goto failed;
        }
    }

    if (!ngx_add_conn) {
        if (ngx_handle_read_event(rev, 0) != NGX_OK) {
            goto failed;
        }
    }

    if (rc == 0) {
        wev->ready = 1;

    } else if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        goto failed;
    }

    link->connection = c;
    link->down_logged = 0;

    ngx_log_error(NGX_LOG_INFO, link->log, 0,
                  "connected to the fetcher at \"unix:%s\"",
                  link->sockaddr.sun_path);

    return NGX_OK;

failed:

    ngx_close_connection(c);

    return NGX_DECLINED;
}


void
ngx_http_ocimirror_link_close(ngx_http_ocimirror_link_t *link)
{
    ngx_rbtree_node_t          *node;
    ngx_http_ocimirror_wait_t  *w;

    if (link->lost_event.posted) {
        ngx_delete_posted_event(&link->lost_event);
    }

    /* requests still pending at exit go with the worker: no callbacks */

    while (link->pending.root != link->pending.sentinel) {
        node = ngx_rbtree_min(link->pending.root, link->pending.sentinel);
        w = (ngx_http_ocimirror_wait_t *) node;
        ngx_http_ocimirror_wait_unlink(w);
    }

    if (link->connection != NULL) {
        ngx_close_connection(link->connection);
        link->connection = NULL;
    }
}


ngx_uint_t
ngx_http_ocimirror_link_up(ngx_http_ocimirror_link_t *link)
{
    return link->connection != NULL && !link->broken;
}


ngx_int_t
ngx_http_ocimirror_ask(ngx_http_request_t *r, ngx_http_ocimirror_link_t *link,
    ngx_http_ocimirror_wait_t *w, ngx_http_ocimirror_wait_pt handler,
    void *data, ngx_msec_t timeout, oci_msg_t *m)
{
    w->request = r;
    w->handler = handler;
    w->data = data;
    w->timeout = timeout;

    if (link == NULL
        || ngx_http_ocimirror_link_request(link, w, m) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* a miss only once the question went out: a request the worker
     * answers itself (stale, or 503) without the fetcher is none */

    ngx_http_ocimirror_metrics_asked(r, m->type);

    ngx_http_ocimirror_park(r);

    return NGX_DONE;
}


/*
 * Send m and activate w.  NGX_OK, or NGX_ERROR if the fetcher cannot be
 * reached now (nothing is pending).
 */

static ngx_int_t
ngx_http_ocimirror_link_request(ngx_http_ocimirror_link_t *link,
    ngx_http_ocimirror_wait_t *w, oci_msg_t *m)
{
    uint32_t             id;
    ngx_http_cleanup_t  *cln;
    ngx_http_request_t  *r;

    r = w->request;

    if (w->active) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "ocimirror: request already waits for the fetcher");
        return NGX_ERROR;
    }

    if (ngx_http_ocimirror_link_connect(link) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!w->cleanup) {
        cln = ngx_http_cleanup_add(r, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_ocimirror_wait_cleanup;
        cln->data = w;
        w->cleanup = 1;
    }

    do {
        id = ++link->last_id;
    } while (id == 0 || ngx_http_ocimirror_link_find(link, id) != NULL);

    m->id = id;

    if (ngx_http_ocimirror_link_queue(link, m) != NGX_OK) {
        return NGX_ERROR;
    }

    w->link = link;
    w->id = id;
    w->node.key = id;
    w->active = 1;
    w->timedout = 0;
    w->lost = 0;

    ngx_rbtree_insert(&link->pending, &w->node);

    w->timer.handler = ngx_http_ocimirror_wait_timeout;
    w->timer.data = w;
    w->timer.log = r->connection->log;

    ngx_add_timer(&w->timer, w->timeout);

    if (ngx_http_ocimirror_link_flush(link) != NGX_OK) {
        /* w is pending: the posted loss will answer it */
        ngx_http_ocimirror_link_post_lost(link);
    }

    return NGX_OK;
}


void
ngx_http_ocimirror_wait_done(ngx_http_ocimirror_wait_t *w)
{
    ngx_http_ocimirror_wait_leave(w, OCI_MSG_CANCEL);
}


void
ngx_http_ocimirror_wait_detach(ngx_http_ocimirror_wait_t *w)
{
    ngx_http_ocimirror_wait_leave(w, OCI_MSG_DETACH);
}


const oci_msg_t *
ngx_http_ocimirror_body_answer(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m, ngx_log_t *log, const char *what, const char *verb)
{
    switch (m->type) {

    case OCI_MSG_BODY:
        return m;

    case OCI_MSG_FAIL:
        if (!w->timedout && !w->lost) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "ocimirror: the fetcher could not give its %s: %s",
                          what, m->message);
        }

        return NULL;

    default:
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ocimirror: unexpected answer %d to %s",
                      (int) m->type, verb);
        return NULL;
    }
}


/* Deactivate w if it is active and tell the fetcher: CANCEL or DETACH. */

static void
ngx_http_ocimirror_wait_leave(ngx_http_ocimirror_wait_t *w,
    oci_msg_type_t type)
{
    ngx_http_ocimirror_link_t  *link;

    if (!w->active) {
        return;
    }

    link = w->link;

    ngx_http_ocimirror_wait_unlink(w);

    if (!ngx_http_ocimirror_link_up(link)) {
        return;
    }

    oci_msg_init(&link->cancel, type, w->id);

    /* a full queue loses the message: the fetcher then keeps a waiter
     * for nobody until its job ends, which is harmless */

    if (ngx_http_ocimirror_link_queue(link, &link->cancel) == NGX_OK
        && ngx_http_ocimirror_link_flush(link) != NGX_OK)
    {
        ngx_http_ocimirror_link_post_lost(link);
    }
}


ngx_http_ocimirror_wait_t *
ngx_http_ocimirror_wait_of(ngx_http_request_t *r)
{
    ngx_http_cleanup_t         *cln;
    ngx_http_ocimirror_wait_t  *w;

    /* ngx_http_cleanup_add() keeps the cleanups with the main request */

    for (cln = r->main->cleanup; cln != NULL; cln = cln->next) {

        if (cln->handler != ngx_http_ocimirror_wait_cleanup) {
            continue;
        }

        w = cln->data;

        if (w->request == r) {
            return w;
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_ocimirror_link_notify(ngx_http_ocimirror_link_t *link,
    oci_msg_t *m)
{
    if (ngx_http_ocimirror_link_connect(link) != NGX_OK) {
        return NGX_DECLINED;
    }

    m->id = 0;

    return ngx_http_ocimirror_link_queue(link, m) == NGX_OK ? NGX_OK
                                                            : NGX_DECLINED;
}


void
ngx_http_ocimirror_link_push(ngx_http_ocimirror_link_t *link)
{
    if (link->connection == NULL || link->broken) {
        return;
    }

    if (ngx_http_ocimirror_link_flush(link) != NGX_OK) {
        ngx_http_ocimirror_link_post_lost(link);
    }
}


ngx_int_t
ngx_http_ocimirror_ask_or_fail(ngx_http_request_t *r,
    ngx_http_ocimirror_wait_t *w, ngx_http_ocimirror_wait_pt handler,
    void *data, oci_msg_t *m)
{
    ngx_int_t                        rc;
    ngx_http_ocimirror_loc_conf_t   *lcf;
    ngx_http_ocimirror_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ocimirror_module);

    rc = ngx_http_ocimirror_ask(r, mcf->link, w, handler, data,
                                lcf->fetch_timeout, m);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_ocimirror_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         OCI_ERR_UNAVAILABLE,
                                         "the fetcher is not available");
}


ngx_int_t
ngx_http_ocimirror_unexpected(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m, const char *verb)
{
    ngx_http_request_t  *r;

    r = w->request;

    ngx_http_ocimirror_wait_done(w);

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "ocimirror: unexpected answer %d to %s", m->type, verb);

    return ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                         OCI_ERR_UPSTREAM,
                                         "unexpected answer from the "
                                         "fetcher");
}


/* One more reference on r, released by the handler's finalization. */

static void
ngx_http_ocimirror_park(ngx_http_request_t *r)
{
    r->main->count++;

    r->read_event_handler = r->discard_body
                            ? ngx_http_discarded_request_body_handler
                            : ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    /* a client that closed right after its request: the end of the
     * stream came with it and no later read event will tell, so look now
     * (from the posted events), or the fetcher keeps working for nobody
     * until the answer comes */
    if (!r->discard_body && r->connection->read->pending_eof) {
        ngx_post_event(r->connection->read, &ngx_posted_events);
    }
}


static void
ngx_http_ocimirror_link_read_handler(ngx_event_t *rev)
{
    ssize_t                     n;
    ngx_buf_t                  *b;
    ngx_connection_t           *c;
    ngx_http_ocimirror_link_t  *link;

    c = rev->data;
    link = c->data;
    b = &link->in;

    for ( ;; ) {

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_ocimirror_link_lost(link, "the fetcher closed it");
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_ocimirror_link_lost(link, "recv() failed");
            return;
        }

        b->last += n;

        if (ngx_http_ocimirror_link_parse(link) != NGX_OK) {
            ngx_http_ocimirror_link_lost(link, "the fetcher sent a line "
                                         "that is too long");
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_ocimirror_link_lost(link, "cannot wait for input");
    }
}


static void
ngx_http_ocimirror_link_write_handler(ngx_event_t *wev)
{
    ngx_connection_t           *c;
    ngx_http_ocimirror_link_t  *link;

    c = wev->data;
    link = c->data;

    if (link->broken) {
        return;
    }

    if (ngx_http_ocimirror_link_flush(link) != NGX_OK) {
        ngx_http_ocimirror_link_lost(link, "send() failed");
    }
}


static void
ngx_http_ocimirror_link_lost_handler(ngx_event_t *ev)
{
    ngx_http_ocimirror_link_lost(ev->data, "send() failed");
}


/* Deliver every complete line in the input buffer. */

static ngx_int_t
ngx_http_ocimirror_link_parse(ngx_http_ocimirror_link_t *link)
{
    int         rc;
    size_t      consumed, len;
    ngx_buf_t  *b;

    b = &link->in;

    for ( ;; ) {
        consumed = 0;

        rc = oci_msg_decode((const char *) b->pos, b->last - b->pos,
                            &link->msg, &consumed);

        if (rc == OCI_EAGAIN) {
            break;
        }

        if (rc == OCI_ERANGE || consumed == 0) {
            return NGX_ERROR;
        }

        if (rc != OCI_OK) {
            len = ngx_min(consumed, 128);

            ngx_log_error(NGX_LOG_WARN, link->log, 0,
                          "ignored a malformed line from the fetcher: "
                          "\"%*s\"", len, b->pos);

            b->pos += consumed;
            continue;
        }

        b->pos += consumed;

        ngx_http_ocimirror_link_deliver(link, &link->msg);
    }

    /* keep the partial line at the start: the buffer then always has room
     * for a whole line after it */

    len = b->last - b->pos;

    if (len && b->pos != b->start) {
        ngx_memmove(b->start, b->pos, len);
    }

    b->pos = b->start;
    b->last = b->start + len;

    return NGX_OK;
}


static void
ngx_http_ocimirror_link_deliver(ngx_http_ocimirror_link_t *link,
    oci_msg_t *m)
{
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_ocimirror_wait_t  *w;

    switch (m->type) {

    case OCI_MSG_PONG:
    case OCI_MSG_SIZE:
    case OCI_MSG_PROGRESS:
    case OCI_MSG_DONE:
    case OCI_MSG_META:
    case OCI_MSG_BODY:
    case OCI_MSG_FAIL:
    case OCI_MSG_WAIT:
    case OCI_MSG_FROM:
        break;

    case OCI_MSG_BUSY:
        /* every kind of request answers a refusal the same way: as the
         * FAIL it is, with its Retry-After */
        m->type = OCI_MSG_FAIL;
        m->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        ngx_cpystrn((u_char *) m->code,
                    (u_char *) oci_err_code(OCI_ERR_TOOMANYREQUESTS),
                    sizeof(m->code));
        break;

    default:
        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "ignored a request verb from the fetcher");
        return;
    }

    w = ngx_http_ocimirror_link_find(link, m->id);

    if (w == NULL) {
        /* an answer for a request that has gone away */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, link->log, 0,
                       "ocimirror: message for unknown id %uD", m->id);

        if (oci_msg_file(m) != NULL) {
            /* handed over to nobody: the fetcher has let go of it */
            ngx_http_ocimirror_link_release(link, oci_msg_file(m));
        }

        return;
    }

    if (m->type == OCI_MSG_WAIT) {
        /* the fetcher is still at work: only the silence starts again */
        ngx_add_timer(&w->timer, w->timeout);
        return;
    }

    if (m->type == OCI_MSG_FROM) {
        /* for the log only: the answer follows */
        ngx_http_ocimirror_outcome_set(w->request,
                                       m->from == OCI_FROM_INFLIGHT
                                       ? NGX_HTTP_OCIMIRROR_OUTCOME_STREAM
                                       : NGX_HTTP_OCIMIRROR_OUTCOME_NEGATIVE);
        return;
    }

    if (m->type == OCI_MSG_SIZE || m->type == OCI_MSG_PROGRESS) {
        ngx_add_timer(&w->timer, w->timeout);

    } else {
        ngx_http_ocimirror_wait_unlink(w);
    }

    r = w->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    w->handler(w, m);

    if (oci_msg_file(m) != NULL) {
        /* opened by the handler if it could: the fd keeps it readable */
        ngx_http_ocimirror_link_release(link, oci_msg_file(m));
    }

    ngx_http_run_posted_requests(c);
}


/*
 * The link is lost with input not delivered (the lines after one that
 * is too long): no request gets them, but a BODY or META among them
 * handed over a file that would then be nobody's.
 */

static void
ngx_http_ocimirror_link_drain(ngx_http_ocimirror_link_t *link)
{
    u_char     *nl;
    size_t      consumed;
    ngx_buf_t  *b;

    b = &link->in;

    for ( ;; ) {
        nl = ngx_strlchr(b->pos, b->last, '\n');

        if (nl == NULL) {
            break;
        }

        if (oci_msg_decode((const char *) b->pos, nl + 1 - b->pos,
                           &link->msg, &consumed)
            == OCI_OK
            && oci_msg_file(&link->msg) != NULL)
        {
            ngx_http_ocimirror_link_release(link, oci_msg_file(&link->msg));
        }

        b->pos = nl + 1;
    }
}


/*
 * Unlink a file a BODY or META handed over.  The path comes from another
 * process: only a plain name directly under "<store>/tmp/" is removed.
 */

static void
ngx_http_ocimirror_link_release(ngx_http_ocimirror_link_t *link,
    const char *path)
{
    size_t       len;
    const char  *name;

    len = ngx_strlen(path);
    name = NULL;

    if (len > link->tmp_dir.len
        && ngx_strncmp(path, link->tmp_dir.data, link->tmp_dir.len) == 0)
    {
        name = path + link->tmp_dir.len;
    }

    if (name == NULL
        || ngx_strchr(name, '/') != NULL
        || ngx_strstr(name, "..") != NULL)
    {
        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "ocimirror: not removing \"%s\": not a temp file of "
                      "the store", path);
        return;
    }

    if (ngx_delete_file(path) == NGX_FILE_ERROR) {

        if (ngx_errno == NGX_ENOENT) {
            return;
        }

        ngx_log_error(NGX_LOG_ERR, link->log, ngx_errno,
                      ngx_delete_file_n " \"%s\" failed", path);
    }
}


static ngx_int_t
ngx_http_ocimirror_link_queue(ngx_http_ocimirror_link_t *link, oci_msg_t *m)
{
    int         n;
    size_t      len;
    ngx_buf_t  *b;

    b = &link->out;

    n = oci_msg_encode(m, (char *) b->last, b->end - b->last);

    if (n == OCI_ERANGE && b->pos != b->start) {
        len = b->last - b->pos;
        ngx_memmove(b->start, b->pos, len);
        b->pos = b->start;
        b->last = b->start + len;

        n = oci_msg_encode(m, (char *) b->last, b->end - b->last);
    }

    if (n == OCI_ERANGE) {
        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "the queue to the fetcher is full");
        return NGX_ERROR;
    }

    if (n < 0) {
        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "cannot encode a message for the fetcher: %d", n);
        return NGX_ERROR;
    }

    b->last += n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ocimirror_link_flush(ngx_http_ocimirror_link_t *link)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = link->connection;
    b = &link->out;

    while (b->pos < b->last && c->write->ready) {

        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN) {
            break;
        }

        b->pos += n;
    }

    if (b->pos == b->last) {
        b->pos = b->start;
        b->last = b->start;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_ocimirror_link_post_lost(ngx_http_ocimirror_link_t *link)
{
    if (link->broken) {
        return;
    }

    link->broken = 1;
    ngx_post_event(&link->lost_event, &ngx_posted_events);
}


static void
ngx_http_ocimirror_link_lost(ngx_http_ocimirror_link_t *link,
    const char *reason)
{
    ngx_rbtree_node_t          *node;
    ngx_http_ocimirror_wait_t  *w;

    if (link->connection == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, link->log, 0,
                  "lost the link to the fetcher: %s", reason);

    if (link->lost_event.posted) {
        ngx_delete_posted_event(&link->lost_event);
    }

    ngx_close_connection(link->connection);

    ngx_http_ocimirror_link_drain(link);

    link->connection = NULL;
    link->broken = 0;
    link->down_logged = 0;

    link->in.pos = link->in.start;
    link->in.last = link->in.start;
    link->out.pos = link->out.start;
    link->out.last = link->out.start;

    /* each handler finalizes or re-parks its request; none sends */

    while (link->pending.root != link->pending.sentinel) {
        node = ngx_rbtree_min(link->pending.root, link->pending.sentinel);
        w = (ngx_http_ocimirror_wait_t *) node;

        ngx_http_ocimirror_wait_unlink(w);
        w->lost = 1;

        ngx_http_ocimirror_wait_fail(w, "lost the link to the fetcher");
    }
}


static ngx_http_ocimirror_wait_t *
ngx_http_ocimirror_link_find(ngx_http_ocimirror_link_t *link, uint32_t id)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = id;
    node = link->pending.root;
    sentinel = link->pending.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        /* the node is the first member of the wait */
        return (ngx_http_ocimirror_wait_t *) node;
    }

    return NULL;
}


static void
ngx_http_ocimirror_wait_unlink(ngx_http_ocimirror_wait_t *w)
{
    if (w->active) {
        ngx_rbtree_delete(&w->link->pending, &w->node);
        w->active = 0;
    }

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
}


/* Hand w a FAIL made up here; w is no longer active. */

static void
ngx_http_ocimirror_wait_fail(ngx_http_ocimirror_wait_t *w,
    const char *message)
{
    oci_msg_t                  *m;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_ocimirror_link_t  *link;

    link = w->link;
    r = w->request;
    c = r->connection;

    m = &link->failure;

    oci_msg_fail(m, w->id, NGX_HTTP_SERVICE_UNAVAILABLE, OCI_ERR_UNAVAILABLE,
                 message);

    ngx_http_set_log_request(c->log, r);

    w->handler(w, m);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_ocimirror_wait_timeout(ngx_event_t *ev)
{
    ngx_http_request_t         *r;
    ngx_http_ocimirror_wait_t  *w;

    w = ev->data;
    r = w->request;

    ngx_http_set_log_request(r->connection->log, r);

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "the fetcher sent nothing for request %uD in %M ms",
                  w->id, w->timeout);

    ngx_http_ocimirror_wait_done(w);
    w->timedout = 1;

    ngx_http_ocimirror_wait_fail(w, "the fetcher did not answer in time");
}


static void
ngx_http_ocimirror_wait_cleanup(void *data)
{
    ngx_http_ocimirror_wait_t  *w = data;

    ngx_http_ocimirror_wait_done(w);
}
