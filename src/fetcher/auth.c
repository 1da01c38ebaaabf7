/*
 * Upstream authentication of jobs: the credentials a request carries, and
 * what a 401 leads to (see job.h).
 *
 * A registry with a token_file gets that token as Bearer on every request
 * to its endpoints, and no token flow.  Otherwise a request carries the
 * cached token of its (registry, scope) if there is one, or Basic if the
 * registry asked for Basic before.  A 401 then leads to one more try: with
 * Basic after a Basic challenge, with a fresh token (asked for with the
 * registry's username and password if it has them) after a Bearer one.  A
 * 401 to a request that carried the configured credentials, or to the one
 * more try, is a refusal: remembered (token.c) so that the requests that
 * follow are answered from memory instead of asking upstream again.
 *
 * Client credentials never get here: the worker forwards no header.
 */

#include <stdio.h>
#include <string.h>

#include "oci_auth.h"
#include "job.h"
#include "log.h"

#define AUTH_REFUSED  "upstream refused the configured credentials"


void
job_auth_request(job_t *j, xfer_req_t *req, int to_endpoint)
{
    token_cache_t         *tc = j->jobs->tokens;
    const oci_registry_t  *reg = j->registry;
    const char            *token, *password;

    req->registry = reg;
    j->sent_bearer = 0;
    j->sent_basic = 0;

    /* a redirect target (a CDN) is not the registry: no credentials */
    if (!to_endpoint) {
        return;
    }

    if (token_refused(tc, reg, j->scope)) {
        req->answer = 401;
        return;
    }

    if (reg->token_file.path != NULL) {
        token = token_file_token(tc, reg);
        req->bearer = token;
        j->sent_bearer = token != NULL;
        return;
    }

    token = token_lookup(tc, reg->name, j->scope);

    if (token != NULL) {
        req->bearer = token;
        j->sent_bearer = 1;
        return;
    }

    if (reg->username != NULL && token_wants_basic(tc, reg)) {
        password = token_password(tc, reg);

        if (password != NULL) {
            req->username = reg->username;
            req->password = password;
            j->sent_basic = 1;
        }
    }
}


/* A 401: one more try with credentials, or a refusal. */
void
job_auth(job_t *j, const xfer_resp_t *r)
{
    token_cache_t         *tc = j->jobs->tokens;
    const oci_registry_t  *reg = j->registry;
    oci_challenge_t        ch;
    const char            *hdr;
    int                    creds, ours;

    creds = reg->token_file.path != NULL || reg->username != NULL;

    if (token_refused(tc, reg, j->scope)) {
        log_debug("%s: refusal remembered", j->label);
        job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
                   creds ? AUTH_REFUSED : "upstream refused access");
        return;
    }

    /* the request carried the configured credentials, or a token just
     * fetched for it: the upstream says no to them */
    ours = j->sent_basic || (j->sent_bearer && reg->token_file.path != NULL);

    if (j->auth_tried || ours) {
        log_warn("%s: upstream refused %s", j->label,
                 j->sent_basic ? "the configured username and password"
                 : reg->token_file.path != NULL ? "the configured token_file"
                 : "the token it granted");
        token_refuse(tc, reg, j->scope);
        job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
                   creds ? AUTH_REFUSED : "upstream refused access");
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
        if (reg->username == NULL || token_password(tc, reg) == NULL) {
            log_warn("%s: upstream wants Basic credentials (%s)", j->label,
                     reg->username == NULL ? "none configured"
                                           : "password_file unreadable");
            job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
                       "upstream requires authentication");
            return;
        }

        token_set_basic(tc, reg);
        j->auth_tried = 1;
        job_issue(j);
        return;
    }

    if (reg->token_file.path != NULL) {
        /* no token flow for a registry with its own token: the file
         * could not be read (logged) */
        job_refuse(j, 401, OCI_ERR_UNAUTHORIZED,
                   "the configured token_file cannot be read");
        return;
    }

    /* a cached token that no longer works (expired early, revoked) */
    if (j->sent_bearer) {
        token_forget(tc, reg->name, j->scope);
    }

    j->auth_tried = 1;

    if (token_fetch(tc, reg, j->scope, &ch, &j->token_waiter) != 0) {
        job_refuse(j, 401, OCI_ERR_UNAUTHORIZED, "cannot request a token");
    }
}


void
job_token_done(token_waiter_t *w, int ok, oci_errcode_t code)
{
    job_t  *j = w->data;

    if (!ok) {
        job_refuse(j, oci_err_status(code), code,
                   code == OCI_ERR_UNAVAILABLE ? "token service unavailable"
                   : j->registry->username != NULL ? AUTH_REFUSED
                   : "no token granted");
        return;
    }

    job_issue(j);
}
