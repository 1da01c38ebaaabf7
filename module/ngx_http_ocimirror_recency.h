/*
 * What a worker served from the store, for the fetcher's cache manager
 * (least recently used files are evicted first).
 *
 * A hit must cost no syscall more than a static file: so a hit only
 * notes the digest in a table of the worker's own memory (no lock, no
 * shared zone: each worker has its own), where a digest served a
 * thousand times in an interval takes one slot.  Every recency_interval
 * seconds (store.recency_interval), or as soon as the table holds
 * recency_batch digests (store.recency_batch, its bound), the worker
 * sends one USED line per digest to the fetcher over its link and empties
 * the table.  A use is thus known to the fetcher within the interval;
 * if the fetcher cannot be reached the batch is dropped, and only the
 * order of eviction is the worse for it.
 */

#ifndef NGX_HTTP_OCIMIRROR_RECENCY_H
#define NGX_HTTP_OCIMIRROR_RECENCY_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ocimirror_module.h"


/* This worker's table and its timer (init_process); NULL on failure
 * (logged). */
ngx_http_ocimirror_recency_t *ngx_http_ocimirror_recency_create(
    ngx_cycle_t *cycle, ngx_http_ocimirror_link_t *link, ngx_uint_t batch,
    ngx_msec_t interval);

/* The stored blob or manifest hex (64 lower-case hex digits) was served
 * to r's client. */
void ngx_http_ocimirror_recency_note(ngx_http_request_t *r,
    const char *hex);


#endif /* NGX_HTTP_OCIMIRROR_RECENCY_H */
