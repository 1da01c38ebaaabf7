/*
 * Recency of what a worker served (see ngx_http_ocimirror_recency.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci.h"
#include "oci_ipc.h"
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_recency.h"


struct ngx_http_ocimirror_recency_s {
    ngx_http_ocimirror_link_t  *link;
    u_char                     *slot;       /* size * 64 hex digits; a
                                               slot starting with NUL is
                                               free */
    ngx_uint_t                  size;       /* slots, twice the batch */
    ngx_uint_t                  n;          /* digests held */
    ngx_uint_t                  batch;
    ngx_msec_t                  interval;
    ngx_event_t                 timer;
};


static void ngx_http_ocimirror_recency_flush(
    ngx_http_ocimirror_recency_t *rc);
static void ngx_http_ocimirror_recency_timer(ngx_event_t *ev);


ngx_http_ocimirror_recency_t *
ngx_http_ocimirror_recency_create(ngx_cycle_t *cycle,
    ngx_http_ocimirror_link_t *link, ngx_uint_t batch, ngx_msec_t interval)
{
    ngx_http_ocimirror_recency_t  *rc;

    rc = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ocimirror_recency_t));
    if (rc == NULL) {
        return NULL;
    }

    /* at most half full: open addressing stays short */
    rc->size = batch * 2;
    rc->batch = batch;
    rc->interval = interval;
    rc->link = link;

    rc->slot = ngx_pcalloc(cycle->pool, rc->size * OCI_SHA256_HEX_LEN);
    if (rc->slot == NULL) {
        return NULL;
    }

    rc->timer.handler = ngx_http_ocimirror_recency_timer;
    rc->timer.data = rc;
    rc->timer.log = cycle->log;

    /* a worker shutting down does not wait for it */
    rc->timer.cancelable = 1;

    ngx_add_timer(&rc->timer, interval);

    return rc;
}


void
ngx_http_ocimirror_recency_note(ngx_http_request_t *r, const char *hex)
{
    u_char                          *s;
    ngx_uint_t                       i, h;
    ngx_http_ocimirror_recency_t    *rc;
    ngx_http_ocimirror_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);
    rc = mcf->recency;

    if (rc == NULL) {
        return;
    }

    /* the digest is uniformly random: its first digits are the hash */
    h = ngx_hextoi((u_char *) hex, 8);
    i = (h == (ngx_uint_t) NGX_ERROR ? 0 : h) % rc->size;

    for ( ;; ) {
        s = rc->slot + i * OCI_SHA256_HEX_LEN;

        if (s[0] == '\0') {
            break;
        }

        if (ngx_memcmp(s, hex, OCI_SHA256_HEX_LEN) == 0) {
            return;
        }

        i = (i + 1) % rc->size;
    }

    ngx_memcpy(s, hex, OCI_SHA256_HEX_LEN);

    if (++rc->n >= rc->batch) {
        ngx_http_ocimirror_recency_flush(rc);
    }
}


/* One USED line per digest held, then an empty table. */
static void
ngx_http_ocimirror_recency_flush(ngx_http_ocimirror_recency_t *rc)
{
    u_char      *s;
    oci_msg_t    m;
    ngx_uint_t   i, sent, failed;

    sent = 0;
    failed = 0;

    for (i = 0; i < rc->size; i++) {
        s = rc->slot + i * OCI_SHA256_HEX_LEN;

        if (s[0] == '\0') {
            continue;
        }

        oci_msg_init(&m, OCI_MSG_USED, 0);
        ngx_memcpy(m.reference, "sha256:", 7);
        ngx_memcpy(m.reference + 7, s, OCI_SHA256_HEX_LEN);
        m.reference[7 + OCI_SHA256_HEX_LEN] = '\0';

        /* a link that is down or full: the rest is dropped */
        if (!failed) {
            if (ngx_http_ocimirror_link_notify(rc->link, &m) == NGX_OK) {
                sent++;

            } else {
                failed = 1;
            }
        }

        s[0] = '\0';
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rc->timer.log, 0,
                   "ocimirror: %ui of %ui uses told to the fetcher", sent,
                   rc->n);

    rc->n = 0;

    if (sent > 0) {
        ngx_http_ocimirror_link_push(rc->link);
    }
}


static void
ngx_http_ocimirror_recency_timer(ngx_event_t *ev)
{
    ngx_http_ocimirror_recency_t  *rc = ev->data;

    if (rc->n > 0) {
        ngx_http_ocimirror_recency_flush(rc);
    }

    if (!ngx_exiting) {
        ngx_add_timer(&rc->timer, rc->interval);
    }
}
