/*
 * The Bearer token cache and the registries' secrets (see token.h).
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "stats.h"
#include "token.h"
#include "url.h"

#define TOKEN_BODY_MAX   (64 * 1024)
#define TOKEN_LEN_MAX    (16 * 1024)
#define TOKEN_MARGIN     10     /* seconds before expiry a token is dropped */
#define TOKEN_TTL_MAX    86400  /* more: now + ttl could overflow */
#define TOKEN_BUCKETS    1024

typedef struct {
    queue_t         hash_link;   /* in a token_cache_t.buckets */
    queue_t         link;        /* in token_cache_t.entries, oldest first */
    token_cache_t  *tc;
    const oci_registry_t  *reg;
    size_t          ep;          /* the endpoint of reg whose token it is */
    char            registry[OCI_HOST_MAX + 1];
    char            scope[TOKEN_SCOPE_MAX];
    char           *token;       /* NULL until fetched */
    unsigned long   serial;      /* of token (token_serial()) */
    time_t          expires;     /* token_cache_t.now seconds; of the
                                    refusal if refused */
    time_t          refresh_at;  /* from then on a lookup refreshes it */
    unsigned long   refreshed;   /* serial of the token a refresh was
                                    started for: one per token */
    char           *url;         /* of the token request, to ask again */
    int             refused;
    unsigned        generation;  /* of the registry's secrets, refused */
    xfer_t         *xfer;        /* the request under way, or NULL */
    int             background;  /* xfer is a refresh token_lookup()
                                    started */
    int             creds;       /* it carries the endpoint's username and
                                    password */
    char           *body;        /* while xfer runs */
    size_t          body_len;
    queue_t         waiters;     /* token_waiter_t */
} token_entry_t;

/* A secret file's value, and what identifies the version read. */
typedef struct {
    char            value[TOKEN_SECRET_MAX];
    int             loaded;
    int             failing;     /* the last read failed (logged once) */
    dev_t           dev;
    ino_t           ino;
    off_t           size;
    struct timespec mtime;
    struct timespec ctime;
} token_secret_t;

/* What is known about the credentials of one endpoint of a registry
 * (oci_endpoint_creds()). */
typedef struct {
    queue_t                   link;       /* in token_cache_t.regs */
    const oci_registry_t     *reg;
    size_t                    ep;
    token_secret_t            password;
    token_secret_t            token;
    int                       basic;      /* it wants Basic at once */
    unsigned                  generation; /* counts changed secrets */
} token_reg_t;

/* The entries: a hash table by (registry, endpoint, scope), and a list by
 * age for the cap.  Refusals are keyed by repository names clients
 * choose, so the table must neither grow without bound nor be scanned
 * whole. */
struct token_cache_s {
    xfer_multi_t   *xm;
    token_clock_pt  now;
    queue_t         buckets[TOKEN_BUCKETS];
    queue_t         entries;     /* token_entry_t, oldest first */
    size_t          n;
    size_t          cap;
    unsigned long   serial;      /* the last token's */
    queue_t         regs;        /* token_reg_t */
};

static int token_body(xfer_t *x, const char *p, size_t n, void *data);
static void token_mark_refused(token_entry_t *e);
static token_reg_t *token_reg(token_cache_t *tc, const oci_registry_t *reg,
    size_t ep);
static void token_done(xfer_t *x, CURLcode rc, void *data);
static int token_request(token_entry_t *e, const char *password);
static void token_refresh(token_entry_t *e);
static void token_refresh_abort(token_entry_t *e);

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
    size_t          i;

    tc = calloc(1, sizeof(token_cache_t));
    if (tc == NULL) {
        log_error("out of memory");
        return NULL;
    }

    tc->xm = xm;
    tc->now = token_monotonic;
    tc->cap = TOKEN_CACHE_CAP;

    for (i = 0; i < TOKEN_BUCKETS; i++) {
        queue_init(&tc->buckets[i]);
    }

    queue_init(&tc->entries);
    queue_init(&tc->regs);

    return tc;
}


void
token_cache_set_clock(token_cache_t *tc, token_clock_pt now)
{
    tc->now = now != NULL ? now : token_monotonic;
}


void
token_cache_set_cap(token_cache_t *tc, size_t cap)
{
    tc->cap = cap > 0 ? cap : 1;
}


size_t
token_cache_count(const token_cache_t *tc)
{
    return tc->n;
}


static void
token_entry_free(token_entry_t *e)
{
    queue_remove(&e->hash_link);
    queue_remove(&e->link);
    e->tc->n--;

    if (e->xfer != NULL) {
        xfer_abort(e->xfer);
    }

    if (e->token != NULL) {
        explicit_bzero(e->token, strlen(e->token));
        free(e->token);
    }

    if (e->body != NULL) {
        explicit_bzero(e->body, e->body_len);
        free(e->body);
    }

    free(e->url);
    free(e);
}


void
token_cache_destroy(token_cache_t *tc)
{
    token_entry_t  *e;
    token_reg_t    *r;
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

    while (!queue_empty(&tc->regs)) {
        q = queue_head(&tc->regs);
        queue_remove(q);
        r = queue_data(q, token_reg_t, link);
        explicit_bzero(r, sizeof(token_reg_t));
        free(r);
    }

    free(tc);
}


static queue_t *
token_bucket(token_cache_t *tc, const char *registry, size_t ep,
    const char *scope)
{
    uint32_t  h;

    /* FNV-1a of "registry <ep> scope" */
    h = 2166136261u;

    while (*registry != '\0') {
        h ^= (unsigned char) *registry++;
        h *= 16777619u;
    }

    h ^= (uint32_t) ep + ' ';
    h *= 16777619u;

    while (*scope != '\0') {
        h ^= (unsigned char) *scope++;
        h *= 16777619u;
    }

    return &tc->buckets[h % TOKEN_BUCKETS];
}


static token_entry_t *
token_find(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope)
{
    queue_t        *b, *q, *next;
    token_entry_t  *e;
    time_t          now;

    now = tc->now();
    b = token_bucket(tc, reg->name, ep, scope);

    for (q = queue_head(b); q != queue_sentinel(b); q = next) {
        next = queue_next(q);
        e = queue_data(q, token_entry_t, hash_link);

        /* expired and idle entries (and old refusals) go as they are
         * met */
        if (e->xfer == NULL && e->expires <= now) {
            token_entry_free(e);
            continue;
        }

        if (e->reg == reg && e->ep == ep && strcmp(e->scope, scope) == 0)
        {
            return e;
        }
    }

    return NULL;
}


/*
 * Room for one more entry: beyond the cap the expired idle entries go,
 * then the oldest idle ones.  Entries with a request under way stay (their
 * waiters count on them).  0, or -1 if every entry is under way.
 */
static int
token_make_room(token_cache_t *tc)
{
    queue_t        *q, *next;
    token_entry_t  *e;
    time_t          now;

    if (tc->n < tc->cap) {
        return 0;
    }

    now = tc->now();

    for (q = queue_head(&tc->entries);
         q != queue_sentinel(&tc->entries) && tc->n >= tc->cap;
         q = next)
    {
        next = queue_next(q);
        e = queue_data(q, token_entry_t, link);

        if (e->xfer == NULL && e->expires <= now) {
            token_entry_free(e);
        }
    }

    for (q = queue_head(&tc->entries);
         q != queue_sentinel(&tc->entries) && tc->n >= tc->cap;
         q = next)
    {
        next = queue_next(q);
        e = queue_data(q, token_entry_t, link);

        if (e->xfer == NULL) {
            token_entry_free(e);
        }
    }

    return tc->n < tc->cap ? 0 : -1;
}


/* A new entry for (reg, ep, scope), the newest; NULL if there is no room
 * or memory (logged). */
static token_entry_t *
token_entry_add(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope)
{
    token_entry_t  *e;

    if (token_make_room(tc) != 0) {
        log_error("token cache full: %zu token requests under way",
                  tc->n);
        return NULL;
    }

    e = calloc(1, sizeof(token_entry_t));
    if (e == NULL) {
        log_error("out of memory");
        return NULL;
    }

    e->tc = tc;
    e->reg = reg;
    e->ep = ep;
    snprintf(e->registry, sizeof(e->registry), "%s", reg->name);
    snprintf(e->scope, sizeof(e->scope), "%s", scope);
    queue_init(&e->waiters);
    queue_insert_tail(token_bucket(tc, e->registry, ep, e->scope),
                      &e->hash_link);
    queue_insert_tail(&tc->entries, &e->link);
    tc->n++;

    return e;
}


/* e got a new token or refusal: it is the newest entry now. */
static void
token_entry_renewed(token_entry_t *e)
{
    queue_remove(&e->link);
    queue_insert_tail(&e->tc->entries, &e->link);
}


unsigned long
token_serial(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope)
{
    token_entry_t  *e;

    e = token_find(tc, reg, ep, scope);
    if (e == NULL || e->token == NULL || e->refused
        || e->expires <= tc->now())
    {
        return 0;
    }

    return e->serial;
}


const char *
token_lookup(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope)
{
    token_entry_t  *e;
    time_t          now;

    e = token_find(tc, reg, ep, scope);
    now = tc->now();

    if (e == NULL || e->token == NULL || e->refused || e->expires <= now) {
        return NULL;
    }

    if (now >= e->refresh_at && e->xfer == NULL
        && e->refreshed != e->serial)
    {
        token_refresh(e);
    }

    return e->token;
}


void
token_forget(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope)
{
    token_entry_t  *e;

    e = token_find(tc, reg, ep, scope);
    if (e == NULL || e->token == NULL) {
        return;
    }

    explicit_bzero(e->token, strlen(e->token));
    free(e->token);
    e->token = NULL;

    /* a refresh of the token refused is not waited for: the next
     * token_fetch() asks anew */
    token_refresh_abort(e);

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
token_waiter_pending(const token_waiter_t *w)
{
    return queue_linked(&w->link);
}


int
token_fetch(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope, const oci_challenge_t *ch, token_waiter_t *w)
{
    const oci_credentials_t  *cr;
    token_entry_t            *e;
    CURL                     *easy;
    const char               *registry = reg->name, *password, *origin;
    char                      url[2048], *copy;
    int                       rc, creds;

    origin = reg->endpoints[ep];
    cr = oci_endpoint_creds(reg, ep);
    e = token_find(tc, reg, ep, scope);

    if (e != NULL && e->xfer != NULL) {
        queue_insert_tail(&e->waiters, &w->link);
        return 0;
    }

    if (strlen(registry) > OCI_HOST_MAX || strlen(scope) >= TOKEN_SCOPE_MAX
        || strlen(ch->realm) >= sizeof(url))
    {
        return -1;
    }

    if (strncasecmp(ch->realm, "https://", 8) != 0
        && strncasecmp(ch->realm, "http://", 7) != 0)
    {
        log_error("token realm of %s is not an http(s) URL", registry);
        return -1;
    }

    /* the username and password never go in clear text when the registry
     * itself is reached over TLS: then the token is asked for anonymously */
    creds = cr->username != NULL;

    if (creds && strncasecmp(origin, "https://", 8) == 0
        && strncasecmp(ch->realm, "http://", 7) == 0)
    {
        log_warn("registry \"%s\": its token realm is plain http: asking "
                 "for a token without the configured credentials", registry);
        creds = 0;
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

    /* the account the token is for, as docker sends it */
    if (rc == 0 && creds) {
        rc = url_add_query_arg(easy, url, sizeof(url), "account",
                               cr->username);
    }

    curl_easy_cleanup(easy);

    if (rc != 0) {
        log_error("token URL for %s is too long", registry);
        return -1;
    }

    password = NULL;

    if (creds) {
        password = token_password(tc, reg, ep);
        if (password == NULL) {
            log_error("registry \"%s\": no password to ask for a token "
                      "with", registry);
            return -1;
        }
    }

    if (e == NULL) {
        e = token_entry_add(tc, reg, ep, scope);
        if (e == NULL) {
            return -1;
        }
    }

    /* what a refresh asks with: this request */
    if (e->url == NULL || strcmp(e->url, url) != 0) {
        copy = strdup(url);
        if (copy == NULL) {
            log_error("out of memory");
            goto failed;
        }

        free(e->url);
        e->url = copy;
    }

    /* a refusal ends with this request: it asks again */
    e->reg = reg;
    e->refused = 0;
    e->creds = creds;

    if (token_request(e, password) != 0) {
        goto failed;
    }

    queue_insert_tail(&e->waiters, &w->link);

    return 0;

failed:

    if (e->token == NULL) {
        token_entry_free(e);
    }

    return -1;
}


/* Start e's token request (e->url, with its endpoint's username and
 * password if e->creds).  0, or -1 if it could not start. */
static int
token_request(token_entry_t *e, const char *password)
{
    xfer_req_t  req;

    memset(&req, 0, sizeof(req));
    req.url = e->url;
    req.redirected = 1;     /* the realm is the upstream's, not ours */
    req.accept = "application/json";
    req.prio = XFER_PRIO_TOKEN;
    req.registry = e->reg;  /* its proxy, CA and client certificate */
    req.home = e->reg->endpoints[e->ep];
    req.username = password != NULL
                   ? oci_endpoint_creds(e->reg, e->ep)->username : NULL;
    req.password = password;

    e->xfer = xfer_start(e->tc->xm, &req, &token_handler, e);
    if (e->xfer == NULL) {
        return -1;
    }

    e->background = 0;
    e->body_len = 0;

    return 0;
}


/*
 * Ask again for e's token, which is in its refresh window, in the
 * background: no one waits, token_lookup() gives the current token
 * meanwhile.  One attempt per token: a failure is not retried (the token
 * is used until it is dropped, and then fetched as any missing token).
 */
static void
token_refresh(token_entry_t *e)
{
    const char  *password;

    e->refreshed = e->serial;
    password = NULL;

    if (e->creds) {
        password = token_password(e->tc, e->reg, e->ep);
        if (password == NULL) {
            log_error("registry \"%s\": no password to refresh the token "
                      "of %s with", e->registry, e->scope);
            return;
        }
    }

    if (token_request(e, password) != 0) {
        log_error("cannot refresh the token of %s %s: the current one is "
                  "used until it runs out", e->registry, e->scope);
        return;
    }

    e->background = 1;

    log_debug("token for %s %s runs out in %ld s: refreshing it",
              e->registry, e->scope, (long) (e->expires - e->tc->now()));
}


/* Abort e's refresh if one runs and nobody waits for it. */
static void
token_refresh_abort(token_entry_t *e)
{
    if (e->xfer == NULL || !e->background || !queue_empty(&e->waiters)) {
        return;
    }

    xfer_abort(e->xfer);
    e->xfer = NULL;
    e->background = 0;

    if (e->body != NULL) {
        explicit_bzero(e->body, e->body_len);
        free(e->body);
        e->body = NULL;
        e->body_len = 0;
    }
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
    long                expires_in, ttl, window;
    int                 ok, refused, background;
    oci_errcode_t       code;

    background = e->background;
    e->xfer = NULL;
    e->background = 0;
    r = xfer_response(x);

    ok = 0;
    refused = 0;
    code = OCI_ERR_UNAUTHORIZED;
    token = NULL;

    if (rc != CURLE_OK) {
        if (xfer_unreachable(rc)) {
            code = OCI_ERR_UNAVAILABLE;

        } else if (xfer_refused(x) != NULL) {
            /* the realm leads where a redirect may not (xfer.h) */
            code = OCI_ERR_UPSTREAM;
        }

        log_error("token request for %s failed: %s", e->registry,
                  xfer_refused(x) != NULL ? xfer_refused(x)
                                          : xfer_strerror(x, rc));

    } else if (r->status != 200) {
        if (r->status >= 500) {
            code = OCI_ERR_UNAVAILABLE;
        }

        refused = r->status == 401 || r->status == 403;

        log_error("token service of %s answered %ld%s", e->registry,
                  r->status,
                  refused && e->creds
                  ? ": the configured credentials were refused" : "");

    } else {
        token = malloc(TOKEN_LEN_MAX);

        if (token != NULL && e->refused) {
            /* refused (token_refuse()) while the request ran: that
             * stands, the token is not kept */
            log_debug("token for %s %s refused meanwhile: not kept",
                      e->registry, e->scope);

        } else if (token != NULL
            && oci_auth_parse_token(e->body != NULL ? e->body : "",
                                    e->body_len, token, TOKEN_LEN_MAX,
                                    &expires_in) == OCI_OK
            && token_printable(token))
        {
            /* dropped before it expires: 10 s early, or at half of a
             * shorter lifetime, so that no request carries a token about
             * to run out */
            ttl = expires_in > TOKEN_TTL_MAX ? TOKEN_TTL_MAX : expires_in;
            ttl = ttl > 2 * TOKEN_MARGIN ? ttl - TOKEN_MARGIN : ttl / 2;
            if (ttl < 1) {
                ttl = 1;
            }

            if (e->token != NULL) {
                explicit_bzero(e->token, strlen(e->token));
                free(e->token);
            }

            /* refreshed in the last quarter of that, or in the last
             * TOKEN_REFRESH_MAX seconds if that is shorter */
            window = ttl / 4 < TOKEN_REFRESH_MAX ? ttl / 4
                                                 : TOKEN_REFRESH_MAX;

            e->token = strdup(token);
            e->serial = ++e->tc->serial;
            e->expires = e->tc->now() + ttl;
            e->refresh_at = e->expires - window;
            ok = e->token != NULL;

            if (ok) {
                token_entry_renewed(e);
            }

            log_debug("token for %s %s cached for %ld s", e->registry,
                      e->scope, ttl);

        } else {
            log_error("token service of %s sent no usable token",
                      e->registry);
        }
    }

    if (token != NULL) {
        explicit_bzero(token, TOKEN_LEN_MAX);
        free(token);
    }

    /* the body holds the token: gone now, not kept for the token's life */
    if (e->body != NULL) {
        explicit_bzero(e->body, e->body_len);
        free(e->body);
        e->body = NULL;
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

    if (e->refused) {
        /* refused while it ran: the refusal stays for its time */
        code = OCI_ERR_UNAUTHORIZED;

    } else if (!ok && background && e->token != NULL
               && e->expires > e->tc->now())
    {
        /* a failed refresh: the current token serves until it is
         * dropped, and is all the waiters that joined need */
        log_warn("token for %s %s not refreshed: the current one is used "
                 "until it runs out", e->registry, e->scope);
        ok = 1;

    } else if (refused) {
        token_mark_refused(e);

    } else if (!ok) {
        token_entry_free(e);
    }

    while (!queue_empty(&waiting)) {
        q = queue_head(&waiting);
        queue_remove(q);
        w = queue_data(q, token_waiter_t, link);
        w->done(w, ok, code);
    }
}


/* The credential state of endpoint ep of reg, created on first use; NULL
 * if out of memory (logged). */
static token_reg_t *
token_reg(token_cache_t *tc, const oci_registry_t *reg, size_t ep)
{
    queue_t      *q;
    token_reg_t  *r;

    for (q = queue_head(&tc->regs); q != queue_sentinel(&tc->regs);
         q = queue_next(q))
    {
        r = queue_data(q, token_reg_t, link);

        if (r->reg == reg && r->ep == ep) {
            return r;
        }
    }

    r = calloc(1, sizeof(token_reg_t));
    if (r == NULL) {
        log_error("out of memory");
        return NULL;
    }

    r->reg = reg;
    r->ep = ep;
    queue_insert_tail(&tc->regs, &r->link);

    return r;
}


/*
 * The value of the secret file path, read again if the file is another
 * one or changed since.  NULL if it was never read.  A changed value
 * counts in the registry's generation (its refusals are then forgotten).
 */
static const char *
token_secret(token_reg_t *r, token_secret_t *sec, const char *path,
    const char *what)
{
    struct stat  st;
    char         buf[TOKEN_SECRET_MAX];
    int          rc;

    if (stat(path, &st) != 0) {
        if (!sec->failing) {
            log_error("registry \"%s\": %s \"%s\": %s%s", r->reg->name,
                      what, path, strerror(errno),
                      sec->loaded ? " (using the value read before)" : "");
            sec->failing = 1;
        }

        return sec->loaded ? sec->value : NULL;
    }

    if (sec->loaded && st.st_dev == sec->dev && st.st_ino == sec->ino
        && st.st_size == sec->size
        && st.st_mtim.tv_sec == sec->mtime.tv_sec
        && st.st_mtim.tv_nsec == sec->mtime.tv_nsec
        && st.st_ctim.tv_sec == sec->ctime.tv_sec
        && st.st_ctim.tv_nsec == sec->ctime.tv_nsec)
    {
        return sec->value;
    }

    rc = oci_config_read_secret(path, buf, sizeof(buf));

    if (rc != OCI_OK) {
        explicit_bzero(buf, sizeof(buf));

        if (!sec->failing) {
            log_error("registry \"%s\": %s \"%s\": %s%s", r->reg->name,
                      what, path,
                      rc == OCI_EIO ? strerror(errno)
                      : rc == OCI_EINVAL ? "the first line is empty"
                      : "the first line is too long",
                      sec->loaded ? " (using the value read before)" : "");
            sec->failing = 1;
        }

        return sec->loaded ? sec->value : NULL;
    }

    if (sec->failing || sec->loaded) {
        log_info("registry \"%s\": %s \"%s\" read again", r->reg->name,
                 what, path);
    }

    if (!sec->loaded || strcmp(buf, sec->value) != 0) {
        r->generation++;
    }

    explicit_bzero(sec->value, sizeof(sec->value));
    memcpy(sec->value, buf, strlen(buf) + 1);
    explicit_bzero(buf, sizeof(buf));

    sec->loaded = 1;
    sec->failing = 0;
    sec->dev = st.st_dev;
    sec->ino = st.st_ino;
    sec->size = st.st_size;
    sec->mtime = st.st_mtim;
    sec->ctime = st.st_ctim;

    return sec->value;
}


const char *
token_file_token(token_cache_t *tc, const oci_registry_t *reg, size_t ep)
{
    const oci_credentials_t  *cr;
    token_reg_t              *r;
    const char               *t;

    cr = oci_endpoint_creds(reg, ep);

    if (cr->token_file.path == NULL || (r = token_reg(tc, reg, ep)) == NULL)
    {
        return NULL;
    }

    t = token_secret(r, &r->token, cr->token_file.path, "token_file");

    /* it goes into a header line */
    if (t != NULL && !token_printable(t)) {
        if (!r->token.failing) {
            log_error("registry \"%s\": token_file \"%s\" holds "
                      "characters a header cannot carry", reg->name,
                      cr->token_file.path);
            r->token.failing = 1;
        }

        return NULL;
    }

    return t;
}


const char *
token_password(token_cache_t *tc, const oci_registry_t *reg, size_t ep)
{
    const oci_credentials_t  *cr;
    token_reg_t              *r;

    cr = oci_endpoint_creds(reg, ep);

    if (cr->username == NULL || cr->password_file.path == NULL
        || (r = token_reg(tc, reg, ep)) == NULL)
    {
        return NULL;
    }

    return token_secret(r, &r->password, cr->password_file.path,
                        "password_file");
}


void
token_set_basic(token_cache_t *tc, const oci_registry_t *reg, size_t ep)
{
    token_reg_t  *r;

    r = token_reg(tc, reg, ep);

    if (r != NULL && !r->basic) {
        log_info("registry \"%s\": endpoint %s wants Basic credentials",
                 reg->name, reg->endpoints[ep]);
        r->basic = 1;
    }
}


int
token_wants_basic(token_cache_t *tc, const oci_registry_t *reg, size_t ep)
{
    token_reg_t  *r;

    r = token_reg(tc, reg, ep);

    return r != NULL && r->basic;
}


static void
token_mark_refused(token_entry_t *e)
{
    token_reg_t  *r;
    long          ttl;

    if (e->token != NULL) {
        explicit_bzero(e->token, strlen(e->token));
        free(e->token);
        e->token = NULL;
    }

    r = token_reg(e->tc, e->reg, e->ep);

    ttl = e->reg->negative_ttl > TOKEN_REFUSAL_MIN ? e->reg->negative_ttl
                                                   : TOKEN_REFUSAL_MIN;
    e->refused = 1;
    e->generation = r != NULL ? r->generation : 0;
    e->expires = e->tc->now() + ttl;
    token_entry_renewed(e);

    stats_registry(e->reg)->auth_failures++;

    log_warn("registry \"%s\" refused access to %s: asking again in %ld s "
             "at the earliest", e->registry, e->scope, ttl);
}


void
token_refuse(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope)
{
    token_entry_t  *e;

    if (strlen(reg->name) > OCI_HOST_MAX || strlen(scope) >= TOKEN_SCOPE_MAX)
    {
        return;
    }

    e = token_find(tc, reg, ep, scope);

    if (e == NULL) {
        e = token_entry_add(tc, reg, ep, scope);
        if (e == NULL) {
            return;
        }
    }

    e->reg = reg;
    token_refresh_abort(e);
    token_mark_refused(e);
}


int
token_refused(token_cache_t *tc, const oci_registry_t *reg, size_t ep,
    const char *scope)
{
    const oci_credentials_t  *cr;
    token_entry_t            *e;
    token_reg_t              *r;

    e = token_find(tc, reg, ep, scope);
    if (e == NULL || !e->refused || e->expires <= tc->now()) {
        return 0;
    }

    /* a secret that changed since may be the fix */
    cr = oci_endpoint_creds(reg, ep);

    if (cr->token_file.path != NULL) {
        token_file_token(tc, reg, ep);

    } else if (cr->username != NULL) {
        token_password(tc, reg, ep);
    }

    r = token_reg(tc, reg, ep);

    return r == NULL || r->generation == e->generation;
}
