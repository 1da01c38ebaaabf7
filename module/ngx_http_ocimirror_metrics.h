/*
 * Metrics: "ocimirror_metrics" answers GET /metrics in the Prometheus
 * text format with the workers' counters, then the fetcher's (STATS).
 *
 * The workers' counters live in a shared zone ("ocimirror_metrics",
 * added with the cache's when ocimirror_config is read), so every worker
 * counts into, and reports, the same numbers; they are plain atomics, no
 * lock.  A reload keeps the zone: counters must not go back to zero
 * while nginx keeps running.
 *
 * The counting is spread over the files that decide: the handler and the
 * manifest code count hits (ngx_http_ocimirror_metrics_count()), the
 * link counts every question a request sent the fetcher as a miss of its
 * endpoint (ngx_http_ocimirror_metrics_asked()), and a log phase handler
 * counts the status class and body bytes of every /v2/ answer.
 */

#ifndef NGX_HTTP_OCIMIRROR_METRICS_H
#define NGX_HTTP_OCIMIRROR_METRICS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_ipc.h"


typedef struct ngx_http_ocimirror_metrics_s  ngx_http_ocimirror_metrics_t;


/* The counters a request may add to with ngx_http_ocimirror_metrics_count;
 * the others are counted here. */
typedef enum {
    NGX_HTTP_OCIMIRROR_HIT_BASE = 0,     /* GET /v2/, answered by the
                                            worker */
    NGX_HTTP_OCIMIRROR_HIT_BLOB,         /* served from the store */
    NGX_HTTP_OCIMIRROR_HIT_MANIFEST,     /* served from the store */
    NGX_HTTP_OCIMIRROR_STALE_FETCHER,    /* META stale=1 */
    NGX_HTTP_OCIMIRROR_STALE_CACHE,      /* the worker served a stale tag
                                            record: no fetcher */

    NGX_HTTP_OCIMIRROR_MISS_BLOB,
    NGX_HTTP_OCIMIRROR_MISS_MANIFEST,
    NGX_HTTP_OCIMIRROR_MISS_TAGS,
    NGX_HTTP_OCIMIRROR_MISS_REFERRERS,
    NGX_HTTP_OCIMIRROR_RESPONSES_1XX,    /* ... to 5XX, in order */
    NGX_HTTP_OCIMIRROR_RESPONSES_2XX,
    NGX_HTTP_OCIMIRROR_RESPONSES_3XX,
    NGX_HTTP_OCIMIRROR_RESPONSES_4XX,
    NGX_HTTP_OCIMIRROR_RESPONSES_5XX,
    NGX_HTTP_OCIMIRROR_SENT_BYTES,
    NGX_HTTP_OCIMIRROR_CLUSTER_FORWARDED,  /* passed to the owner */
    NGX_HTTP_OCIMIRROR_CLUSTER_PEER,       /* a peer's, served here */
    NGX_HTTP_OCIMIRROR_CLUSTER_REFUSED,    /* a peer header that did not
                                              verify */
    NGX_HTTP_OCIMIRROR_CLUSTER_MISMATCH,   /* a peer with another list */
    NGX_HTTP_OCIMIRROR_CLUSTER_HOT,        /* a copy asked of the fetcher */
    NGX_HTTP_OCIMIRROR_CLUSTER_REPLICA,    /* the fetcher's copy request,
                                              passed over the others */

    NGX_HTTP_OCIMIRROR_COUNTERS
} ngx_http_ocimirror_counter_t;


/* Add the shared zone to the configuration being parsed. */
ngx_http_ocimirror_metrics_t *ngx_http_ocimirror_metrics_create(
    ngx_conf_t *cf);

/* Postconfiguration: the log phase handler that counts /v2/ answers. */
ngx_int_t ngx_http_ocimirror_metrics_init(ngx_conf_t *cf);

/* Add one to counter, for r's configuration (nothing without one). */
void ngx_http_ocimirror_metrics_count(ngx_http_request_t *r,
    ngx_http_ocimirror_counter_t counter);

/* r's question, a message of this type, went to the fetcher: the miss
 * of its endpoint (PING, STATS and the rest are no endpoint's).  Not
 * counted when the fetcher could not be asked. */
void ngx_http_ocimirror_metrics_asked(ngx_http_request_t *r,
    oci_msg_type_t type);

/* The value of counter now, for r's configuration (0 without one). */
ngx_atomic_uint_t ngx_http_ocimirror_metrics_value(ngx_http_request_t *r,
    ngx_http_ocimirror_counter_t counter);

/* The content handler of "ocimirror_metrics". */
ngx_int_t ngx_http_ocimirror_metrics_handler(ngx_http_request_t *r);


#endif /* NGX_HTTP_OCIMIRROR_METRICS_H */
