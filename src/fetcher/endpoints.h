/*
 * The health of every registry's endpoints, and the order a job tries
 * them in.
 *
 * Per endpoint: consecutive failures, the back-off level, "down until",
 * "throttled until" and the round trip of the last probe.
 *
 *   usable      not down and not throttled.  endpoints_order() lists the
 *               usable endpoints of a registry best first: in the order
 *               written (select = "ordered"), or by the lowest probed
 *               round trip, unknown last, the order written breaking ties
 *               (select = "fastest").
 *   failure     a connect error, a timeout, a reset or a 5xx (of a job's
 *               request or of a probe).  ENDPOINTS_FAIL_MAX consecutive
 *               failures put the endpoint down for the registry's backoff
 *               seconds, doubled each time it goes down again without a
 *               success in between, up to ENDPOINTS_BACKOFF_MAX_SHIFT
 *               doublings (32 times backoff).
 *   success     any answer below 500 other than 429: the failures and the
 *               back-off level start again from 0.
 *   probe       GET <endpoint>/v2/, unauthenticated, at XFER_PRIO_TOKEN
 *               with the registry's transport settings; any HTTP answer
 *               below 500 (401 included) means alive.  A down endpoint is
 *               probed once its back-off has passed: alive brings it back,
 *               a failure puts it down again for the next, doubled,
 *               period.  With select = "fastest" every endpoint that is
 *               not down or throttled is also probed every probe_interval
 *               seconds (the first round at the first tick), and the
 *               round trip (the request going out to the first byte of
 *               the answer: xfer_round_trip_us()) orders them.  Probes
 *               are not held back by bandwidth limits.
 *   throttled   a 429: no request goes to the endpoint until Retry-After
 *               has passed (ENDPOINTS_RETRY_AFTER when the answer has
 *               none), at most the registry's max_retry_after (a
 *               Retry-After of a day must not take a registry away for a
 *               day); it is not probed meanwhile.  Then it is probed as
 *               a down endpoint is: an answer brings it back, another 429
 *               throttles it again, a failure backs it off.  A 429 of a
 *               redirect target (a CDN) is not the endpoint's: job.c
 *               holds back that host (xfer_hold_host()) and credits the
 *               endpoint with its redirect (endpoints_redirected()).
 *
 * When no endpoint of a registry is usable, jobs fail at once instead of
 * waiting on an upstream known to be down (see job.c): a tag is served
 * stale where the window allows, anything else gets 503 (or 429 if an
 * endpoint is throttled).  The probes bring the registry back.
 *
 * Requests, failures, 429s, "up" and the round trip go to stats.h.  The
 * clock is CLOCK_MONOTONIC in milliseconds unless a test sets another.
 */

#ifndef FETCHER_ENDPOINTS_H
#define FETCHER_ENDPOINTS_H

#include "oci.h"
#include "oci_config.h"
#include "xfer.h"

#define ENDPOINTS_FAIL_MAX           3
#define ENDPOINTS_BACKOFF_MAX_SHIFT  5      /* 32 times backoff at most */
#define ENDPOINTS_RETRY_AFTER        60     /* seconds, 429 without one */

typedef struct endpoints_s  endpoints_t;

typedef long long (*endpoints_clock_pt)(void);     /* milliseconds */

/* CLOCK_MONOTONIC in milliseconds: the default clock. */
long long endpoints_monotonic(void);

/* NULL on failure (logged). */
endpoints_t *endpoints_create(const oci_config_t *cf, xfer_multi_t *xm);

/* Abort the probes in flight and free everything. */
void endpoints_destroy(endpoints_t *eps);

void endpoints_set_clock(endpoints_t *eps, endpoints_clock_pt now);

/* The clock's now, in milliseconds. */
long long endpoints_now(endpoints_t *eps);

/* The usable endpoints of reg (indexes into reg->endpoints), best first,
 * into order (room for reg->n_endpoints); returns how many.  *throttled
 * is set to 1 if an endpoint is left out only because it is throttled,
 * else 0. */
size_t endpoints_order(endpoints_t *eps, const oci_registry_t *reg,
    size_t *order, int *throttled);

/* 1 if endpoint i of reg may be sent a request now. */
int endpoints_usable(endpoints_t *eps, const oci_registry_t *reg, size_t i);

/* A request goes to endpoint i of reg. */
void endpoints_sent(endpoints_t *eps, const oci_registry_t *reg, size_t i);

/* Endpoint i of reg answered r (any status): success, failure (5xx) or
 * throttled (429), and the rate limit headers.  A transfer that ended
 * without an answer: endpoints_failed(). */
void endpoints_answered(endpoints_t *eps, const oci_registry_t *reg,
    size_t i, const xfer_resp_t *r);

/* Endpoint i of reg answered with a redirect that was followed (what the
 * target answered, or a refused hop, is not the endpoint's doing): a
 * success. */
void endpoints_redirected(endpoints_t *eps, const oci_registry_t *reg,
    size_t i);

/* Endpoint i of reg could not be reached, timed out or broke. */
void endpoints_failed(endpoints_t *eps, const oci_registry_t *reg,
    size_t i);

/* Start the probes that are due.  Called once a second. */
void endpoints_tick(endpoints_t *eps);

/* For the tests: the state of endpoint i of reg. */
typedef struct {
    int        fails;           /* consecutive */
    int        level;           /* back-off doublings so far */
    int        down;
    long long  down_until;      /* ms; probe once passed */
    long long  throttled_until; /* ms; probe once passed */
    int        throttled;
    long long  rtt_us;          /* -1 unknown */
    int        probing;
} endpoints_state_t;

void endpoints_state(endpoints_t *eps, const oci_registry_t *reg, size_t i,
    endpoints_state_t *st);

#endif /* FETCHER_ENDPOINTS_H */
