/*
 * The credentials of a job's upstream requests, and what a 401 leads to
 * (job_auth.c: see there for the rules).  Part of the job layer: job.c
 * calls it for every request it sends and every 401 it gets, blob.c for
 * the chunks of a ranged download.
 */

#ifndef FETCHER_JOB_AUTH_H
#define FETCHER_JOB_AUTH_H

#include "job.h"

/* Fill the credentials of a request of j: req->registry, and the
 * Authorization the registry's settings and the token cache give, if
 * to_endpoint (the URL is one of the registry's endpoints; a redirect
 * target gets none).  Sets j->sent_bearer and j->sent_basic.  While a
 * refusal of the credentials is remembered (token_refused()), the
 * request is answered 401 without going out (req->answer). */
void job_auth_request(job_t *j, xfer_req_t *req, int to_endpoint);

/* 1 if url has the scheme, host and port of j's current endpoint: the
 * registry's own origin, where its credentials may go. */
int job_from_endpoint(const job_t *j, const char *url);

/* The upstream answered 401 with r, from the URL from (after redirects):
 * get a token (once), or refuse.  A 401 from another origin than the
 * endpoint's is refused at once: no credentials go anywhere for it. */
void job_auth(job_t *j, const xfer_resp_t *r, const char *from);

/*
 * A request of j sent after its first answer (a blob chunk, with
 * job_auth_request()) was answered 401 with r by from.  sent is the
 * token_serial() of the token it carried (0: none), fresh the serial of
 * the token w last got if no request carrying it has succeeded yet (0
 * otherwise): that one refused is a refusal.  Returns 0 to send the
 * request again now (a newer token is cached), 1 if w waits for a token
 * (token_fetch(), or a wait already under way): send it again when w's
 * callback reports ok, or call job_auth_token_failed(); -1 if j was
 * refused (job_refuse(): it may be finished, do not touch it).  The
 * caller owns w and cancels it when it goes.
 */
int job_auth_chunk(job_t *j, const xfer_resp_t *r, const char *from,
    unsigned long sent, unsigned long fresh, token_waiter_t *w);

/* No token for j (code from the token waiter's callback): refuse it. */
void job_auth_token_failed(job_t *j, oci_errcode_t code);

/* token_waiter_t callback of every job (set by job_create()). */
void job_token_done(token_waiter_t *w, int ok, oci_errcode_t code);

#endif /* FETCHER_JOB_AUTH_H */
