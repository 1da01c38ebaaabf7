/*
 * Upstream credentials: Bearer tokens of the Docker token flow (anonymous,
 * or asked for with an endpoint's username and password), cached per
 * (registry, endpoint, scope) until shortly before they expire; the
 * secrets the password_file and token_file of an endpoint's credentials
 * hold (oci_endpoint_creds(): its own, or the registry's); and refusals.
 *
 * Everything is kept per endpoint: a registry's endpoints may be run by
 * others (a regional mirror, a third-party cache), so a token one
 * endpoint's token service minted is never sent to another endpoint after
 * a failover, and an endpoint's password goes only to the token service
 * its own challenge names.
 *
 * A job that met a Bearer challenge calls token_fetch() with a waiter it
 * owns (embedded in the job); every job waiting for the same (registry,
 * endpoint, scope) shares one token request.  The waiter's done callback runs once,
 * after which the token (if any) is in the cache: token_lookup() returns
 * it.  A job that goes away first calls token_waiter_cancel().
 *
 * A token is refreshed before it runs out: each entry keeps the token
 * request it was got with (the URL made of the challenge's realm, service
 * and scope, and whether the registry's credentials went with it, the
 * origin rule of token_fetch() applied), and token_lookup() of a token in
 * the last quarter of its usable life, or in its last TOKEN_REFRESH_MAX
 * seconds if that is shorter, starts that request again in the background
 * (once per token) while it still returns the current token.  The new
 * token replaces the old; if the refresh fails, the old one stays until it
 * is dropped.  A token_fetch() meanwhile joins the refresh; token_forget()
 * and token_refuse() abort a refresh nobody waits for, and a token got
 * after a refusal is thrown away.
 *
 * Secret files are read again when they change (inode, size, mtime or
 * ctime), so a rotated secret is used without a restart; a file that
 * cannot be read keeps the last value read (the failure is logged).
 * Replaced secrets are wiped.
 *
 * A refusal (the token service or the registry said no to the configured
 * credentials, or to an anonymous token) is remembered per (registry,
 * endpoint, scope) for the registry's negative_ttl, at least
 * TOKEN_REFUSAL_MIN seconds, or until a secret file of the endpoint's
 * credentials changes: requests meet it instead of asking upstream
 * again.
 *
 * The cache holds at most TOKEN_CACHE_CAP entries (tokens and refusals,
 * the latter keyed by repository names clients choose): beyond it the
 * expired entries go first, then the oldest.
 *
 * Tokens, passwords and secret files never reach the log; a token's
 * buffers are wiped (explicit_bzero) before they are freed.
 */

#ifndef FETCHER_TOKEN_H
#define FETCHER_TOKEN_H

#include <time.h>

#include "oci.h"
#include "oci_auth.h"
#include "oci_error.h"
#include "queue.h"
#include "xfer.h"

#define TOKEN_SCOPE_MAX    512
#define TOKEN_SECRET_MAX   4096     /* a secret file's first line */
#define TOKEN_REFUSAL_MIN  5        /* seconds a refusal is remembered */
#define TOKEN_CACHE_CAP    4096     /* entries */
#define TOKEN_REFRESH_MAX  60       /* seconds of the refresh window */

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

/* Another cap than TOKEN_CACHE_CAP (at least 1), for the unit tests. */
void token_cache_set_cap(token_cache_t *tc, size_t cap);

/* Entries held: tokens, refusals, requests under way (expired ones not
 * yet dropped included). */
size_t token_cache_count(const token_cache_t *tc);

/* Abort token requests (waiters are not called) and wipe every token. */
void token_cache_destroy(token_cache_t *tc);

/* A valid cached token for (reg, endpoint ep, scope) or NULL: never one
 * that expires within the margin (10 s, or half of a shorter lifetime).
 * A token in its refresh window (see above) gets a refresh started. */
const char *token_lookup(token_cache_t *tc, const oci_registry_t *reg,
    size_t ep, const char *scope);

/* The serial number of the token token_lookup() gives now (each token
 * fetched gets a new one, from 1), or 0 if there is none: whether the
 * token a request carried is still the cached one. */
unsigned long token_serial(token_cache_t *tc, const oci_registry_t *reg,
    size_t ep, const char *scope);

/* Drop a cached token upstream refused. */
void token_forget(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope);

/*
 * Get a token for (reg, endpoint ep, scope) from the challenge's realm,
 * asking for the challenge's scope if it names one, else for scope, with
 * the endpoint's username and password (Basic) if it has them, unless
 * the endpoint (whose 401 carried the challenge; the caller made sure the
 * 401 came from there, not from a redirect target) is https and the
 * realm plain http: then anonymously.  The request uses reg's transport,
 * and the realm must pass the redirect rule of xfer.h (its host is the
 * endpoint's, or not a local or private address, or in redirect_hosts).
 * Joins a request already under way.  0, or -1 if no request could be
 * started (w is then not queued and will not be called).  A token service
 * that answers 401 or 403 is a refusal (see token_refuse()).
 */
int token_fetch(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope, const oci_challenge_t *ch, token_waiter_t *w);

/* The upstream refused the credentials (or the anonymous token) of
 * (reg, ep, scope): remember it and count it (stats auth_failures). */
void token_refuse(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope);

/* 1 if a refusal of (reg, ep, scope) is remembered. */
int token_refused(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope);

/* The token of endpoint ep's token_file, NULL if it has none or it was
 * never read.  Valid until the next call for it. */
const char *token_file_token(token_cache_t *tc, const oci_registry_t *reg,
    size_t ep);

/* The password of endpoint ep's password_file, NULL if it has no
 * username or the file was never read.  Valid until the next call for
 * it. */
const char *token_password(token_cache_t *tc, const oci_registry_t *reg,
    size_t ep);

/* Endpoint ep of reg answered a Basic challenge to a request without
 * credentials: from now on its requests carry Basic at once. */
void token_set_basic(token_cache_t *tc, const oci_registry_t *reg,
    size_t ep);
int token_wants_basic(token_cache_t *tc, const oci_registry_t *reg,
    size_t ep);

void token_waiter_init(token_waiter_t *w, token_done_pt done, void *data);
void token_waiter_cancel(token_waiter_t *w);

/* 1 while w waits for a token (its done callback is still to come). */
int token_waiter_pending(const token_waiter_t *w);

#endif /* FETCHER_TOKEN_H */
