/*
 * Anonymous Bearer tokens for upstream registries (the Docker token flow),
 * cached per (registry, scope) until shortly before they expire.
 *
 * A job that met a Bearer challenge calls token_fetch() with a waiter it
 * owns (embedded in the job); every job waiting for the same (registry,
 * scope) shares one token request.  The waiter's done callback runs once,
 * after which the token (if any) is in the cache: token_lookup() returns
 * it.  A job that goes away first calls token_waiter_cancel().
 *
 * Tokens never reach the log.
 */

#ifndef FETCHER_TOKEN_H
#define FETCHER_TOKEN_H

#include <time.h>

#include "oci.h"
#include "oci_auth.h"
#include "oci_error.h"
#include "queue.h"
#include "xfer.h"

#define TOKEN_SCOPE_MAX  512

typedef struct token_cache_s   token_cache_t;
typedef struct token_waiter_s  token_waiter_t;

/* ok: 1 if a token is cached now; else code says why not
 * (UNAUTHORIZED, or UNAVAILABLE if the token service was unreachable). */
typedef void (*token_done_pt)(token_waiter_t *w, int ok, oci_errcode_t code);

struct token_waiter_s {
    queue_t        link;        /* in the fetch's waiters; self if none */
    token_done_pt  done;
    void          *data;
};

/* NULL on failure (logged). */
token_cache_t *token_cache_create(xfer_multi_t *xm);

/* Expiry is measured in seconds of this clock: CLOCK_MONOTONIC unless
 * the unit tests set their own (NULL: back to CLOCK_MONOTONIC). */
typedef time_t (*token_clock_pt)(void);

void token_cache_set_clock(token_cache_t *tc, token_clock_pt now);

/* Abort token requests (waiters are not called) and wipe every token. */
void token_cache_destroy(token_cache_t *tc);

/* A valid cached token for (registry, scope) or NULL. */
const char *token_lookup(token_cache_t *tc, const char *registry,
    const char *scope);

/* Drop a cached token upstream refused. */
void token_forget(token_cache_t *tc, const char *registry, const char *scope);

/*
 * Get a token for (registry, scope) from the challenge's realm, asking for
 * the challenge's scope if it names one, else for scope.  Joins a request
 * already under way.  0, or -1 if no request could be started (w is then
 * not queued and will not be called).
 */
int token_fetch(token_cache_t *tc, const char *registry, const char *scope,
    const oci_challenge_t *ch, token_waiter_t *w);

void token_waiter_init(token_waiter_t *w, token_done_pt done, void *data);
void token_waiter_cancel(token_waiter_t *w);

#endif /* FETCHER_TOKEN_H */
