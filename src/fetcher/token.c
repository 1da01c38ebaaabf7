/*
 * The Bearer token cache (see token.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "token.h"
#include "url.h"

#define TOKEN_BODY_MAX   (64 * 1024)
#define TOKEN_LEN_MAX    (16 * 1024)
#define TOKEN_MARGIN     10     /* seconds before expiry a token is dropped */
#define TOKEN_TTL_MIN    5
#define TOKEN_TTL_MAX    86400  /* a bigger expires_in would overflow now+ttl */

typedef struct {
    queue_t         link;        /* in token_cache_t.entries */
    token_cache_t  *tc;
    char            registry[OCI_HOST_MAX + 1];
    char            scope[TOKEN_SCOPE_MAX];
    char           *token;       /* NULL until fetched */
    time_t          expires;     /* token_cache_t.now seconds */
    xfer_t         *xfer;        /* the request under way, or NULL */
    char           *body;
    size_t          body_len;
    queue_t         waiters;     /* token_waiter_t */
} token_entry_t;

struct token_cache_s {
    xfer_multi_t   *xm;
    token_clock_pt  now;
    queue_t         entries;
};

static int token_body(xfer_t *x, const char *p, size_t n, void *data);
static void token_done(xfer_t *x, CURLcode rc, void *data);

static const xfer_handler_t  token_handler = {
    NULL,
    token_body,
    token_done
};


static time_t
token_monotonic(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}


token_cache_t *
token_cache_create(xfer_multi_t *xm)
{
    token_cache_t  *tc;

    tc = calloc(1, sizeof(token_cache_t));
    if (tc == NULL) {
        log_error("out of memory");
        return NULL;
    }

    tc->xm = xm;
    tc->now = token_monotonic;
    queue_init(&tc->entries);

    return tc;
}


void
token_cache_set_clock(token_cache_t *tc, token_clock_pt now)
{
    tc->now = now != NULL ? now : token_monotonic;
}


static void
token_entry_free(token_entry_t *e)
{
    queue_remove(&e->link);

    if (e->xfer != NULL) {
        xfer_abort(e->xfer);
    }

    if (e->token != NULL) {
        memset(e->token, 0, strlen(e->token));
        free(e->token);
    }

    if (e->body != NULL) {
        memset(e->body, 0, e->body_len);
        free(e->body);
    }

    free(e);
}


void
token_cache_destroy(token_cache_t *tc)
{
    token_entry_t  *e;
    queue_t        *q;

    if (tc == NULL) {
        return;
    }

    while (!queue_empty(&tc->entries)) {
        q = queue_head(&tc->entries);
        e = queue_data(q, token_entry_t, link);

        while (!queue_empty(&e->waiters)) {
            q = queue_head(&e->waiters);
            queue_remove(q);
        }

        token_entry_free(e);
    }

    free(tc);
}


static token_entry_t *
token_find(token_cache_t *tc, const char *registry, const char *scope)
{
    queue_t        *q, *next;
    token_entry_t  *e, *found;
    time_t          now;

    now = tc->now();
    found = NULL;

    for (q = queue_head(&tc->entries);
         q != queue_sentinel(&tc->entries);
         q = next)
    {
        next = queue_next(q);
        e = queue_data(q, token_entry_t, link);

        /* expired and idle entries go as they are met */
        if (e->xfer == NULL && e->expires <= now) {
            token_entry_free(e);
            continue;
        }

        if (strcmp(e->registry, registry) == 0
            && strcmp(e->scope, scope) == 0)
        {
            found = e;
        }
    }

    return found;
}


const char *
token_lookup(token_cache_t *tc, const char *registry, const char *scope)
{
    token_entry_t  *e;

    e = token_find(tc, registry, scope);
    if (e == NULL || e->token == NULL || e->expires <= tc->now()) {
        return NULL;
    }

    return e->token;
}


void
token_forget(token_cache_t *tc, const char *registry, const char *scope)
{
    token_entry_t  *e;

    e = token_find(tc, registry, scope);
    if (e == NULL || e->token == NULL) {
        return;
    }

    memset(e->token, 0, strlen(e->token));
    free(e->token);
    e->token = NULL;

    if (e->xfer == NULL) {
        token_entry_free(e);
    }
}


void
token_waiter_init(token_waiter_t *w, token_done_pt done, void *data)
{
    queue_init(&w->link);
    w->done = done;
    w->data = data;
}


void
token_waiter_cancel(token_waiter_t *w)
{
    queue_remove(&w->link);
}


int
token_fetch(token_cache_t *tc, const char *registry, const char *scope,
    const oci_challenge_t *ch, token_waiter_t *w)
{
    token_entry_t  *e;
    CURL           *easy;
    char            url[2048];
    int             rc;
    xfer_req_t      req;

    e = token_find(tc, registry, scope);

    if (e != NULL && e->xfer != NULL) {
        queue_insert_tail(&e->waiters, &w->link);
        return 0;
    }

    if (strlen(registry) > OCI_HOST_MAX || strlen(scope) >= TOKEN_SCOPE_MAX
        || strlen(ch->realm) >= sizeof(url))
    {
        return -1;
    }

    if (strncmp(ch->realm, "https://", 8) != 0
        && strncmp(ch->realm, "http://", 7) != 0)
    {
        log_error("token realm of %s is not an http(s) URL", registry);
        return -1;
    }

    /* curl_easy_escape() wants a handle only for historical reasons */
    easy = curl_easy_init();
    if (easy == NULL) {
        return -1;
    }

    snprintf(url, sizeof(url), "%s", ch->realm);
    rc = 0;

    if (ch->service[0] != '\0') {
        rc = url_add_query_arg(easy, url, sizeof(url), "service",
                               ch->service);
    }

    if (rc == 0) {
        rc = url_add_query_arg(easy, url, sizeof(url), "scope",
                               ch->scope[0] != '\0' ? ch->scope : scope);
    }

    curl_easy_cleanup(easy);

    if (rc != 0) {
        log_error("token URL for %s is too long", registry);
        return -1;
    }

    if (e == NULL) {
        e = calloc(1, sizeof(token_entry_t));
        if (e == NULL) {
            log_error("out of memory");
            return -1;
        }

        e->tc = tc;
        snprintf(e->registry, sizeof(e->registry), "%s", registry);
        snprintf(e->scope, sizeof(e->scope), "%s", scope);
        queue_init(&e->waiters);
        queue_insert_tail(&tc->entries, &e->link);
    }

    memset(&req, 0, sizeof(req));
    req.url = url;
    req.redirected = 1;     /* the realm is the upstream's, not ours */
    req.accept = "application/json";
    req.prio = XFER_PRIO_TOKEN;

    e->xfer = xfer_start(tc->xm, &req, &token_handler, e);
    if (e->xfer == NULL) {
        if (e->token == NULL) {
            token_entry_free(e);
        }

        return -1;
    }

    e->body_len = 0;
    queue_insert_tail(&e->waiters, &w->link);

    return 0;
}


static int
token_body(xfer_t *x, const char *p, size_t n, void *data)
{
    token_entry_t  *e = data;

    if (e->body == NULL) {
        e->body = malloc(TOKEN_BODY_MAX);
        if (e->body == NULL) {
            return -1;
        }
    }

    if (n > TOKEN_BODY_MAX - e->body_len) {
        return -1;
    }

    memcpy(e->body + e->body_len, p, n);
    e->body_len += n;

    return 0;
}


/* A token goes into a header line: printable ASCII without spaces only. */
static int
token_printable(const char *t)
{
    if (*t == '\0') {
        return 0;
    }

    for ( /* void */ ; *t != '\0'; t++) {
        if ((unsigned char) *t <= 0x20 || (unsigned char) *t >= 0x7f) {
            return 0;
        }
    }

    return 1;
}


static void
token_done(xfer_t *x, CURLcode rc, void *data)
{
    token_entry_t      *e = data;
    token_waiter_t     *w;
    queue_t            *q, waiting;
    const xfer_resp_t  *r;
    char               *token;
    long                expires_in, ttl;
    int                 ok;
    oci_errcode_t       code;

    e->xfer = NULL;
    r = xfer_response(x);

    ok = 0;
    code = OCI_ERR_UNAUTHORIZED;
    token = NULL;

    if (rc != CURLE_OK) {
        if (xfer_unreachable(rc)) {
            code = OCI_ERR_UNAVAILABLE;
        }

        log_error("token request for %s failed: %s", e->registry,
                  xfer_strerror(x, rc));

    } else if (r->status != 200) {
        if (r->status >= 500) {
            code = OCI_ERR_UNAVAILABLE;
        }

        log_error("token service of %s answered %ld", e->registry,
                  r->status);

    } else {
        token = malloc(TOKEN_LEN_MAX);

        if (token != NULL
            && oci_auth_parse_token(e->body != NULL ? e->body : "",
                                    e->body_len, token, TOKEN_LEN_MAX,
                                    &expires_in) == OCI_OK
            && token_printable(token))
        {
            ttl = expires_in > TOKEN_TTL_MAX ? TOKEN_TTL_MAX : expires_in;
            ttl -= TOKEN_MARGIN;
            if (ttl < TOKEN_TTL_MIN) {
                ttl = TOKEN_TTL_MIN;
            }

            if (e->token != NULL) {
                memset(e->token, 0, strlen(e->token));
                free(e->token);
            }

            e->token = strdup(token);
            e->expires = e->tc->now() + ttl;
            ok = e->token != NULL;

            log_debug("token for %s %s cached for %ld s", e->registry,
                      e->scope, ttl);

        } else {
            log_error("token service of %s sent no usable token",
                      e->registry);
        }
    }

    if (token != NULL) {
        memset(token, 0, TOKEN_LEN_MAX);
        free(token);
    }

    if (e->body != NULL) {
        memset(e->body, 0, e->body_len);
        e->body_len = 0;
    }

    /* the callbacks may start transfers, end jobs or look tokens up (which
     * frees idle entries): take the waiters out of e before calling them */
    queue_init(&waiting);

    while (!queue_empty(&e->waiters)) {
        q = queue_head(&e->waiters);
        queue_remove(q);
        queue_insert_tail(&waiting, q);
    }

    if (!ok) {
        token_entry_free(e);
    }

    while (!queue_empty(&waiting)) {
        q = queue_head(&waiting);
        queue_remove(q);
        w = queue_data(q, token_waiter_t, link);
        w->done(w, ok, code);
    }
}
