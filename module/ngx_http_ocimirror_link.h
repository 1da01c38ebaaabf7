/*
 * A worker's link to the fetcher: one non-blocking unix stream socket,
 * many requests multiplexed by id with the line protocol of oci_ipc.h.
 *
 * A request that needs the fetcher embeds an ngx_http_ocimirror_wait_t
 * and calls ngx_http_ocimirror_ask() with a handler and a message: the
 * message leaves, the request is parked, and the wait is "active": it
 * sits in the link's table of pending requests and its handler gets
 * every message the fetcher sends for its id but WAIT and FROM (a BUSY
 * comes as the FAIL it means: 503 TOOMANYREQUESTS, with retry_after
 * set; a FROM sets the request's $ocimirror_cache_status, see
 * ngx_http_ocimirror_outcome.h).  A
 * terminal message (any but SIZE, PROGRESS and WAIT) deactivates it
 * before the handler runs, so a handler that finds w->active was only
 * told that the fetcher is at work; SIZE and PROGRESS restart its timer,
 * and so does WAIT (the fetcher is still at work), which the handler
 * never sees.  If the timer fires or the link is lost, the handler gets
 * a FAIL message made up here (503 UNAVAILABLE) with timedout or lost
 * set.  The handler runs from the link's or the timer's event, so it
 * owns the request: it finalizes it or keeps it parked; posted requests
 * are run after it returns.
 *
 * A BODY (or a META with a path: a relayed manifest, oci_msg_file())
 * hands the worker a temp file: the handler may open it, and the link
 * unlinks it as soon as the handler returns (the open fd keeps it
 * readable).  Such a message that finds no waiting request (cancelled,
 * timed out, finished), or that is still unread when the link is lost,
 * has its file unlinked at once.  Only a plain name directly under the store's
 * "tmp/" is ever unlinked, whatever the line says.
 *
 * A request that finishes while its wait is active calls
 * ngx_http_ocimirror_wait_done(), which tells the fetcher (CANCEL); a
 * request cleanup (ngx_http_cleanup_add, run when nginx terminates or
 * frees the request) does the same for a request that goes away, such as
 * one whose client closed the connection.  That cleanup also keeps the
 * wait reachable from the request (ngx_http_ocimirror_wait_of()) where
 * r->ctx is not: ngx_http_filter_finalize_request() wipes it.
 */

#ifndef NGX_HTTP_OCIMIRROR_LINK_H
#define NGX_HTTP_OCIMIRROR_LINK_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_ipc.h"
#include "ngx_http_ocimirror_module.h"


typedef struct ngx_http_ocimirror_wait_s  ngx_http_ocimirror_wait_t;

typedef void (*ngx_http_ocimirror_wait_pt)(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m);

struct ngx_http_ocimirror_wait_s {
    ngx_rbtree_node_t            node;      /* node.key: the request id */
    uint32_t                     id;        /* kept: deletion clears key */
    ngx_http_request_t          *request;
    ngx_http_ocimirror_wait_pt   handler;
    void                        *data;
    ngx_msec_t                   timeout;   /* silence allowed, per message */

    ngx_http_ocimirror_link_t   *link;
    ngx_event_t                  timer;

    unsigned                     active:1;
    unsigned                     cleanup:1;  /* request cleanup added */
    unsigned                     timedout:1;
    unsigned                     lost:1;
};


/* Allocate the worker's link from the cycle pool; no connection yet.
 * store_path: the store root, whose "tmp/" BODY files are in. */
ngx_http_ocimirror_link_t *ngx_http_ocimirror_link_create(ngx_cycle_t *cycle,
    const char *socket_path, const char *store_path);

/* Try to connect now; failure is logged once and retried lazily by the
 * next request.  NGX_OK if connected (or connecting), else NGX_DECLINED. */
ngx_int_t ngx_http_ocimirror_link_connect(ngx_http_ocimirror_link_t *link);

/* Close the connection at worker exit; waits get no message. */
void ngx_http_ocimirror_link_close(ngx_http_ocimirror_link_t *link);

/* 1 if the link is connected (or connecting) and usable. */
ngx_uint_t ngx_http_ocimirror_link_up(ngx_http_ocimirror_link_t *link);

/*
 * Ask the fetcher for r: fill in w (handler, data, timeout: the silence
 * allowed), send m (its id is assigned here) and park r until a handler
 * finalizes it: one more reference, and a closed client is noticed
 * (ngx_http_test_reading), as upstream does.  Connects first if the link
 * is down.  Returns NGX_DONE, for the content handler to return, or
 * NGX_DECLINED if the fetcher cannot be reached now (link NULL or down):
 * nothing is pending, and the caller answers.
 */
ngx_int_t ngx_http_ocimirror_ask(ngx_http_request_t *r,
    ngx_http_ocimirror_link_t *link, ngx_http_ocimirror_wait_t *w,
    ngx_http_ocimirror_wait_pt handler, void *data, ngx_msec_t timeout,
    oci_msg_t *m);

/*
 * ngx_http_ocimirror_ask() through the worker's link with the location's
 * ocimirror_fetch_timeout; if the fetcher cannot be reached, r is
 * answered 503 UNAVAILABLE.  Returns what a content handler returns.
 */
ngx_int_t ngx_http_ocimirror_ask_or_fail(ngx_http_request_t *r,
    ngx_http_ocimirror_wait_t *w, ngx_http_ocimirror_wait_pt handler,
    void *data, oci_msg_t *m);

/* Queue m, a message that wants no answer (USED), for the fetcher:
 * connects if the link is down.  NGX_OK, or NGX_DECLINED if the fetcher
 * cannot be reached or the queue is full (m is dropped).  Call
 * ngx_http_ocimirror_link_push() after the last of a batch. */
ngx_int_t ngx_http_ocimirror_link_notify(ngx_http_ocimirror_link_t *link,
    oci_msg_t *m);

/* Send what is queued (or arm the write event for it). */
void ngx_http_ocimirror_link_push(ngx_http_ocimirror_link_t *link);

/* Deactivate w if it is active and tell the fetcher (CANCEL: a job
 * nobody waits for then is dropped). */
void ngx_http_ocimirror_wait_done(ngx_http_ocimirror_wait_t *w);

/* The same, for a request that has what it needs but wants the job done
 * (DETACH: a range on disk, the rest of the blob still worth storing). */
void ngx_http_ocimirror_wait_detach(ngx_http_ocimirror_wait_t *w);

/*
 * The answer m to w, a request for a BODY of the fetcher's own (STATS,
 * STATUS): m if it is that BODY; NULL for a FAIL (logged, unless w timed
 * out or its link was lost) or any other answer (logged).  what names
 * the body in the log ("metrics"), verb the request ("STATS").
 */
const oci_msg_t *ngx_http_ocimirror_body_answer(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m, ngx_log_t *log, const char *what, const char *verb);

/* The wait r was parked with by ngx_http_ocimirror_ask(), or NULL. */
ngx_http_ocimirror_wait_t *ngx_http_ocimirror_wait_of(ngx_http_request_t *r);

/*
 * For a handler that expects one final answer to verb: a terminal message
 * it did not expect.  Logged, the fetcher is told, and the request is
 * answered 502 UNKNOWN; returns what ngx_http_finalize_request() wants.
 */
ngx_int_t ngx_http_ocimirror_unexpected(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m, const char *verb);


#endif /* NGX_HTTP_OCIMIRROR_LINK_H */
