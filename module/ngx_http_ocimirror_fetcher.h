/*
 * A worker's link to the fetcher: one non-blocking unix stream socket,
 * many requests multiplexed by id with the line protocol of oci_ipc.h.
 *
 * A request that needs the fetcher embeds an ngx_http_ocimirror_wait_t,
 * fills in request, handler, data and timeout, and calls
 * ngx_http_ocimirror_link_request().  From then on the wait is "active":
 * it sits in the link's table of pending requests and its handler gets
 * every message the fetcher sends for its id.  A terminal message (any
 * but SIZE and PROGRESS) deactivates it before the handler runs; SIZE
 * and PROGRESS restart its timer.  If the timer fires or the link is
 * lost, the handler gets a FAIL message made up here (503 UNAVAILABLE)
 * with timedout or lost set.  The handler runs from the link's or the
 * timer's event, so it owns the request: it finalizes it or keeps it
 * parked; posted requests are run after it returns.
 *
 * A request that finishes while its wait is active calls
 * ngx_http_ocimirror_wait_done(), which tells the fetcher (CANCEL); a
 * request cleanup (ngx_http_cleanup_add, run when nginx terminates or
 * frees the request) does the same for a request that goes away, such as
 * one whose client closed the connection.
 */

#ifndef NGX_HTTP_OCIMIRROR_FETCHER_H
#define NGX_HTTP_OCIMIRROR_FETCHER_H

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


/* Allocate the worker's link from the cycle pool; no connection yet. */
ngx_http_ocimirror_link_t *ngx_http_ocimirror_link_create(ngx_cycle_t *cycle,
    const char *socket_path);

/* Try to connect now; failure is logged once and retried lazily by the
 * next request.  NGX_OK if connected (or connecting), else NGX_DECLINED. */
ngx_int_t ngx_http_ocimirror_link_connect(ngx_http_ocimirror_link_t *link);

/* Close the connection at worker exit; waits get no message. */
void ngx_http_ocimirror_link_close(ngx_http_ocimirror_link_t *link);

/* 1 if the link is connected (or connecting) and usable. */
ngx_uint_t ngx_http_ocimirror_link_up(ngx_http_ocimirror_link_t *link);

/*
 * Send m (its id is assigned here) and activate w.  Connects first if the
 * link is down.  Returns NGX_OK, or NGX_ERROR if the fetcher cannot be
 * reached now (the caller answers 503 UNAVAILABLE; nothing is pending).
 */
ngx_int_t ngx_http_ocimirror_link_request(ngx_http_ocimirror_link_t *link,
    ngx_http_ocimirror_wait_t *w, oci_msg_t *m);

/* Deactivate w if it is active and tell the fetcher (CANCEL). */
void ngx_http_ocimirror_wait_done(ngx_http_ocimirror_wait_t *w);

/*
 * Park r until a wait handler finalizes it: one more reference, and a
 * closed client is noticed (ngx_http_test_reading), as upstream does.
 */
void ngx_http_ocimirror_park(ngx_http_request_t *r);


#endif /* NGX_HTTP_OCIMIRROR_FETCHER_H */
