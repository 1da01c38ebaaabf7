/*
 * Hosts that answered 429 to a redirected request (a blob CDN): when they
 * may be asked again.  A registry's endpoints keep their own throttle
 * (endpoints.h); this table is for the hosts they redirect to, so that a
 * CDN that says "later" holds back the requests that lead to it and
 * nothing else.
 *
 * Keyed by origin ("scheme://host:port", url_origin()); at most cap
 * entries: a new one takes the place of an expired entry, else of the
 * one that expires first.  Times are milliseconds of the caller's clock.
 */

#ifndef FETCHER_THROTTLE_H
#define FETCHER_THROTTLE_H

#include <stddef.h>

#include "oci.h"

#define THROTTLE_CAP  256

typedef struct throttle_s  throttle_t;

/* NULL on failure (logged). */
throttle_t *throttle_create(size_t cap);
void throttle_destroy(throttle_t *t);

/* origin is held until until (a later time of an entry that exists
 * wins). */
void throttle_hold(throttle_t *t, const char *origin, long long until);

/* The time origin is held until, if that is after now; else 0. */
long long throttle_until(const throttle_t *t, const char *origin,
    long long now);

#endif /* FETCHER_THROTTLE_H */
