/*
 * Upstream authentication of jobs: the credentials a request carries, and
 * what a 401 leads to (see job_auth.h).
 *
 * Credentials are an endpoint's (oci_endpoint_creds(): its own, or the
 * registry's), and so are tokens (token.h): what one endpoint granted or
 * was given never goes to another.  An endpoint with a token_file gets
 * that token as Bearer on every request, and no token flow.  Otherwise a
 * request carries the cached token of its (registry, endpoint, scope) if
 * there is one, or Basic if the endpoint asked for Basic before.  A 401
 * then leads to one more try: with Basic after a Basic challenge, with a
 * fresh token (asked for with the endpoint's username and password if it
 * has them) after a Bearer one.  A 401 to a request that carried the
 * configured credentials, or to the one more try, is a refusal:
 * remembered (token.c) so that the requests that follow are answered from
 * memory instead of asking upstream again.
 *
 * Only a 401 from the origin (scheme, host, port) of the endpoint asked
 * leads to credentials: requests follow redirects, and a redirect target
 * (a CDN, an open redirect) that answers 401 with a challenge of its own
 * must not get the registry's username and password sent to a realm it
 * names.  Its 401 is a plain failure.
 *
 * The chunks of a ranged blob download run after the job's first answer,
 * for as long as the download takes: a token that runs out meanwhile is
 * fetched again for them (job_auth_chunk()).
 *
 * Client credentials never get here: the worker forwards no header.
 */

#include <stdio.h>
#include <string.h>

#include "oci_auth.h"
#include "job.h"
#include "job_auth.h"
#include "log.h"
#include "url.h"

#define AUTH_REFUSED  "upstream refused the configured credentials"


int
job_from_endpoint(const job_t *j, const char *url)
{
    return url_same_origin(url, j->registry->endpoints[j->endpoint]);
}


/* The credentials of j's current endpoint. */
static const oci_credentials_t *
auth_creds(const job_t *j)
{
    return oci_endpoint_creds(j->registry, j->endpoint);
}


/* The refusal of a remembered refusal, or of one just met. */
static void
auth_refuse(job_t *j)
{
    job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
               oci_credentials_set(auth_creds(j))
               ? AUTH_REFUSED : "upstream refused access");
}


/* A 401 from another origin than the endpoint's: no credentials. */
static void
auth_foreign(job_t *j)
{
    log_warn("%s: a redirect target of %s answered 401: no credentials "
             "go there", j->label, j->registry->endpoints[j->endpoint]);
    job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
               "upstream redirect target requires authentication");
}


void
job_auth_request(job_t *j, xfer_req_t *req, int to_endpoint)
{
    token_cache_t             *tc = j->jobs->tokens;
    const oci_registry_t      *reg = j->registry;
    const oci_credentials_t   *cr = auth_creds(j);
    const char                *token, *password;
    size_t                     ep = j->endpoint;

    req->registry = reg;
    req->home = reg->endpoints[ep];
    j->sent_bearer = 0;
    j->sent_basic = 0;

    /* a redirect target (a CDN) is not the registry: no credentials */
    if (!to_endpoint) {
        return;
    }

    if (token_refused(tc, reg, ep, j->scope)) {
        req->answer = 401;
        return;
    }

    if (cr->token_file.path != NULL) {
        token = token_file_token(tc, reg, ep);
        req->bearer = token;
        j->sent_bearer = token != NULL;
        return;
    }

    token = token_lookup(tc, reg, ep, j->scope);

    if (token != NULL) {
        req->bearer = token;
        j->sent_bearer = 1;
        return;
    }

    if (cr->username != NULL && token_wants_basic(tc, reg, ep)) {
        password = token_password(tc, reg, ep);

        if (password != NULL) {
            req->username = cr->username;
            req->password = password;
            j->sent_basic = 1;
        }
    }
}


/* A 401: one more try with credentials, or a refusal. */
void
job_auth(job_t *j, const xfer_resp_t *r, const char *from)
{
    token_cache_t             *tc = j->jobs->tokens;
    const oci_registry_t      *reg = j->registry;
    const oci_credentials_t   *cr = auth_creds(j);
    oci_challenge_t            ch;
    const char                *hdr;
    size_t                     ep = j->endpoint;
    int                        ours;

    if (token_refused(tc, reg, ep, j->scope)) {
        log_debug("%s: refusal remembered", j->label);
        auth_refuse(j);
        return;
    }

    if (!job_from_endpoint(j, from)) {
        auth_foreign(j);
        return;
    }

    /* the request carried the configured credentials, or a token just
     * fetched for it: the upstream says no to them */
    ours = j->sent_basic || (j->sent_bearer && cr->token_file.path != NULL);

    if (j->auth_tried || ours) {
        log_warn("%s: upstream refused %s", j->label,
                 j->sent_basic ? "the configured username and password"
                 : cr->token_file.path != NULL ? "the configured token_file"
                 : "the token it granted");
        token_refuse(tc, reg, ep, j->scope);
        auth_refuse(j);
        return;
    }

    hdr = r->www_authenticate;

    if (hdr[0] == '\0'
        || oci_auth_parse_challenge(hdr, strlen(hdr), &ch) != OCI_OK
        || (ch.scheme != OCI_AUTH_BEARER && ch.scheme != OCI_AUTH_BASIC))
    {
        log_warn("%s: upstream wants credentials in a way not understood",
                 j->label);
        job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
                   "upstream requires authentication");
        return;
    }

    if (ch.scheme == OCI_AUTH_BASIC) {
        if (cr->username == NULL || token_password(tc, reg, ep) == NULL) {
            log_warn("%s: upstream wants Basic credentials (%s)", j->label,
                     cr->username == NULL ? "none configured"
                                          : "password_file unreadable");
            job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
                       "upstream requires authentication");
            return;
        }

        token_set_basic(tc, reg, ep);
        j->auth_tried = 1;
        job_issue(j);
        return;
    }

    if (cr->token_file.path != NULL) {
        /* no token flow for an endpoint with its own token: the file
         * could not be read (logged) */
        job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
                   "the configured token_file cannot be read");
        return;
    }

    /* a cached token that no longer works (expired early, revoked) */
    if (j->sent_bearer) {
        token_forget(tc, reg, ep, j->scope);
    }

    j->auth_tried = 1;

    if (token_fetch(tc, reg, ep, j->scope, &ch, &j->token_waiter) != 0)
    {
        job_refuse(j, 401, OCI_ERR_UNAUTHORIZED, "cannot request a token");
    }
}


int
job_auth_chunk(job_t *j, const xfer_resp_t *r, const char *from,
    unsigned long sent, unsigned long fresh, token_waiter_t *w)
{
    token_cache_t             *tc = j->jobs->tokens;
    const oci_registry_t      *reg = j->registry;
    const oci_credentials_t   *cr = auth_creds(j);
    oci_challenge_t            ch;
    unsigned long              cached;
    const char                *hdr;
    size_t                     ep = j->endpoint;

    if (token_refused(tc, reg, ep, j->scope)) {
        log_debug("%s: refusal remembered", j->label);
        auth_refuse(j);
        return -1;
    }

    if (!job_from_endpoint(j, from)) {
        auth_foreign(j);
        return -1;
    }

    /* another chunk already asks for a token */
    if (token_waiter_pending(w)) {
        return 1;
    }

    /* the configured credentials went with it (Basic or the token_file):
     * they are refused now */
    if (cr->token_file.path != NULL
        || (cr->username != NULL && token_wants_basic(tc, reg, ep)))
    {
        log_warn("%s: upstream refused the configured credentials",
                 j->label);
        token_refuse(tc, reg, ep, j->scope);
        auth_refuse(j);
        return -1;
    }

    /* a token newer than the one it carried (or than none) is cached */
    cached = token_serial(tc, reg, ep, j->scope);

    if (cached != 0 && cached != sent) {
        return 0;
    }

    if (sent != 0 && sent == fresh) {
        log_warn("%s: upstream refused the token it granted", j->label);
        token_refuse(tc, reg, ep, j->scope);
        auth_refuse(j);
        return -1;
    }

    hdr = r->www_authenticate;

    if (hdr[0] == '\0'
        || oci_auth_parse_challenge(hdr, strlen(hdr), &ch) != OCI_OK
        || ch.scheme != OCI_AUTH_BEARER)
    {
        /* the registry let the probe in without Basic: a Basic challenge
         * now is as little understood as none */
        log_warn("%s: upstream wants credentials in a way not understood",
                 j->label);
        job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
                   "upstream requires authentication");
        return -1;
    }

    /* the cached token ran out early or was revoked */
    if (cached != 0) {
        token_forget(tc, reg, ep, j->scope);
    }

    log_debug("%s: the token ran out, asking for another", j->label);

    if (token_fetch(tc, reg, ep, j->scope, &ch, w) != 0)
    {
        job_refuse(j, 401, OCI_ERR_UNAUTHORIZED, "cannot request a token");
        return -1;
    }

    return 1;
}


void
job_auth_token_failed(job_t *j, oci_errcode_t code)
{
    job_refuse(j, oci_err_status(code), code,
               code == OCI_ERR_UNAVAILABLE ? "token service unavailable"
               : code == OCI_ERR_UPSTREAM
               ? "token realm refused: a local or private address"
               : auth_creds(j)->username != NULL ? AUTH_REFUSED
               : "no token granted");
}


void
job_token_done(token_waiter_t *w, int ok, oci_errcode_t code)
{
    job_t  *j = w->data;

    if (!ok) {
        job_auth_token_failed(j, code);
        return;
    }

    job_issue(j);
}
