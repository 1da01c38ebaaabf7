/*
 * Stand-ins for the fetcher's transfer layer (xfer.c) and its worker
 * connections (server.c), for the unit tests of the units above them:
 * token.c, job.c, blob.c, manifest.c and tags.c.
 *
 * A test binary that includes this header defines every xfer_*() and
 * conn_*() function those units call, so the linker takes neither xfer.o
 * nor server.o from libocitest.a.  A transfer then never reaches a
 * network: xfer_start() only records the request, and the test answers it
 * with fake_xfer_reply(), which calls the handler's callbacks the way
 * xfer.c does (headers and body for a 2xx answer, the bounded body of an
 * error answer kept in the response, done, then the transfer is freed).
 * What the units send to a worker is kept as encoded IPC lines in the
 * fake connection, to be compared byte for byte.
 *
 * fake_env_t is the common fixture: a temp dir with a prepared store, a
 * config with two registries, a token cache and a job table.
 *
 * Include this header after <cmocka.h> (its helpers assert), from exactly
 * one file per test binary: it holds definitions.
 */

#ifndef FETCHER_FAKES_H
#define FETCHER_FAKES_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "oci_config.h"
#include "test_curl.h"
#include "test_util.h"
#include "oci_ipc.h"
#include "oci_store.h"
#include "dispatch.h"
#include "job.h"
#include "queue.h"
#include "server.h"
#include "stats.h"
#include "token.h"
#include "xfer.h"


/*
 * The transfer layer.
 */

struct xfer_s {
    queue_t                link;        /* fake_xfers.live */
    const xfer_handler_t  *handler;
    void                  *data;
    char                   url[8192];
    int                    head;
    char                   accept[OCI_ACCEPT_MAX + 1];  /* "" if none */
    char                   bearer[256];                 /* "" if none */
    char                   username[64];                /* Basic, "" */
    char                   password[256];               /* if none */
    const oci_registry_t  *registry;
    long                   answer;
    xfer_prio_t            prio;
    int                    urgent;
    int                    ranged;
    long long              range_first;
    long long              range_last;
    int                    http1;
    int                    redirected;
    int                    unshaped;
    int                    direct;
    char                   header[256];  /* req->header, "" if none */
    char                   effective_url[8192];  /* what a test sets */
    char                   home[8192];  /* req->home, "" if none */
    const char            *hop_refused; /* xfer_refused(); a test sets */
    int                    held;        /* xfer_held(); a test sets */
    long long              rtt_us;      /* xfer_round_trip_us(); a test
                                           sets it, -1 until then */
    xfer_resp_t            resp;
};

typedef struct {
    queue_t   live;             /* started, not yet answered or aborted */
    int       inited;
    int       started;          /* counts since fake_xfer_reset() */
    int       aborted;
    int       fail_start;       /* xfer_start() returns NULL */
    char      held_url[8192];   /* the last xfer_hold_host() */
    long      held_secs;
    int       queued;           /* xfer_queued() says this many more
                                   than are live (a test sets it) */
} fake_xfers_t;

fake_xfers_t  fake_xfers;


void
fake_xfer_reset(void)
{
    memset(&fake_xfers, 0, sizeof(fake_xfers));
    queue_init(&fake_xfers.live);
    fake_xfers.inited = 1;
}


xfer_t *
xfer_start(xfer_multi_t *xm, const xfer_req_t *req,
    const xfer_handler_t *handler, void *data)
{
    xfer_t  *x;

    if (!fake_xfers.inited) {
        fake_xfer_reset();
    }

    if (fake_xfers.fail_start) {
        return NULL;
    }

    x = calloc(1, sizeof(xfer_t));
    if (x == NULL) {
        return NULL;
    }

    x->handler = handler;
    x->data = data;
    snprintf(x->url, sizeof(x->url), "%s", req->url);
    snprintf(x->home, sizeof(x->home), "%s",
             req->home != NULL ? req->home : "");
    x->head = req->head;
    snprintf(x->accept, sizeof(x->accept), "%s",
             req->accept != NULL ? req->accept : "");
    snprintf(x->bearer, sizeof(x->bearer), "%s",
             req->bearer != NULL ? req->bearer : "");
    snprintf(x->username, sizeof(x->username), "%s",
             req->username != NULL ? req->username : "");
    snprintf(x->password, sizeof(x->password), "%s",
             req->password != NULL ? req->password : "");
    x->registry = req->registry;
    x->answer = req->answer;
    x->prio = req->prio;
    x->urgent = req->urgent;
    x->ranged = req->ranged;
    x->range_first = req->range_first;
    x->range_last = req->range_last;
    x->http1 = req->http1;
    x->redirected = req->redirected;
    x->unshaped = req->unshaped;
    x->direct = req->direct;
    snprintf(x->header, sizeof(x->header), "%s",
             req->header != NULL ? req->header : "");
    x->rtt_us = -1;
    x->resp.content_length = -1;
    x->resp.range_first = -1;
    x->resp.range_last = -1;
    x->resp.range_total = -1;
    x->resp.retry_after = -1;
    x->resp.ratelimit_limit = -1;
    x->resp.ratelimit_remaining = -1;

    queue_insert_tail(&fake_xfers.live, &x->link);
    fake_xfers.started++;

    return x;
}


static void
fake_xfer_free(xfer_t *x)
{
    queue_remove(&x->link);
    free(x->resp.body);
    free(x);
}


void
xfer_abort(xfer_t *x)
{
    fake_xfers.aborted++;
    fake_xfer_free(x);
}


void
xfer_set_prio(xfer_t *x, xfer_prio_t prio)
{
    x->prio = prio;
}


/* Every live transfer waits for the test's answer: all count as queued,
 * and a test may add more. */
size_t
xfer_queued(const xfer_multi_t *xm, xfer_prio_t prio)
{
    queue_t  *q;
    size_t    n;

    n = (size_t) fake_xfers.queued;

    if (!fake_xfers.inited) {
        return n;
    }

    for (q = queue_head(&fake_xfers.live);
         q != queue_sentinel(&fake_xfers.live);
         q = queue_next(q))
    {
        if (queue_data(q, xfer_t, link)->prio == prio) {
            n++;
        }
    }

    return n;
}


const xfer_resp_t *
xfer_response(const xfer_t *x)
{
    return &x->resp;
}


/* The request's URL unless the test made the answer come from elsewhere
 * (a redirect). */
const char *
xfer_effective_url(const xfer_t *x)
{
    return x->effective_url[0] != '\0' ? x->effective_url : x->url;
}


const char *
xfer_strerror(const xfer_t *x, CURLcode rc)
{
    return curl_easy_strerror(rc);
}


/* As xfer.c: a request with an answer never went out. */
int
xfer_answered(const xfer_t *x)
{
    return x->answer != 0;
}


long long
xfer_round_trip_us(const xfer_t *x)
{
    return x->rtt_us;
}


const char *
xfer_refused(const xfer_t *x)
{
    return x->hop_refused;
}


int
xfer_held(const xfer_t *x)
{
    return x->held;
}


void
xfer_hold_host(xfer_multi_t *xm, const char *url, long secs)
{
    snprintf(fake_xfers.held_url, sizeof(fake_xfers.held_url), "%s", url);
    fake_xfers.held_secs = secs;
}


int
fake_xfer_count(void)
{
    queue_t  *q;
    int       n;

    n = 0;

    if (!fake_xfers.inited) {
        return 0;
    }

    for (q = queue_head(&fake_xfers.live);
         q != queue_sentinel(&fake_xfers.live);
         q = queue_next(q))
    {
        n++;
    }

    return n;
}


/* The i-th live transfer, in the order they were started. */
xfer_t *
fake_xfer_at(int i)
{
    queue_t  *q;

    if (!fake_xfers.inited) {
        return NULL;
    }

    for (q = queue_head(&fake_xfers.live);
         q != queue_sentinel(&fake_xfers.live);
         q = queue_next(q))
    {
        if (i-- == 0) {
            return queue_data(q, xfer_t, link);
        }
    }

    return NULL;
}


/* The live ranged transfer whose range starts at first, or NULL. */
xfer_t *
fake_xfer_range(long long first)
{
    queue_t  *q;
    xfer_t   *x;

    if (!fake_xfers.inited) {
        return NULL;
    }

    for (q = queue_head(&fake_xfers.live);
         q != queue_sentinel(&fake_xfers.live);
         q = queue_next(q))
    {
        x = queue_data(q, xfer_t, link);

        if (x->ranged && x->range_first == first) {
            return x;
        }
    }

    return NULL;
}


/* The only live transfer: fails the test if there is not exactly one. */
xfer_t *
fake_xfer_one(void)
{
    assert_int_equal(fake_xfer_count(), 1);
    return fake_xfer_at(0);
}


typedef struct {
    CURLcode     rc;                /* the transfer's end; after headers and
                                       body if status is set */
    long         status;            /* 0: no answer at all */
    const char  *content_type;
    const char  *digest;
    const char  *www_authenticate;
    const char  *link;
    int          link_truncated;    /* a Link value was left out */
    const char  *body;
    size_t       body_len;          /* 0: strlen(body) */
    int          length_set;        /* Content-Length is length ... */
    long long    length;
    int          chunked;           /* ... or absent; else the body's */
    int          range_set;         /* Content-Range: bytes F-L/T, where */
    long long    range_first;       /* T < 0 stands for "*" */
    long long    range_last;
    long long    range_total;
    size_t       chunk;             /* body handed over in pieces */
    void       (*between)(void *arg, size_t done);  /* after each piece */
    void        *arg;
    const char  *redirect_digest;   /* of the redirect, if effective_url
                                       is set */
    int          retry_after_set;   /* Retry-After: retry_after seconds */
    long         retry_after;
    int          ratelimit_set;     /* RateLimit-Limit / -Remaining */
    long long    ratelimit_limit;
    long long    ratelimit_remaining;
} fake_reply_t;


/* Answer x as an upstream would, through xfer.c's callback contract. */
void
fake_xfer_reply(xfer_t *x, const fake_reply_t *r)
{
    xfer_resp_t  *resp = &x->resp;
    CURLcode      rc;
    size_t        len, off, n;

    rc = r->rc;
    len = r->body == NULL ? 0 : (r->body_len ? r->body_len : strlen(r->body));

    if (r->status == 0) {
        goto done;
    }

    resp->status = r->status;
    /* an answer from elsewhere came through a redirect */
    resp->redirected = x->effective_url[0] != '\0'
                       && strcmp(x->effective_url, x->url) != 0;
    snprintf(resp->redirect_digest, sizeof(resp->redirect_digest), "%s",
             r->redirect_digest != NULL ? r->redirect_digest : "");
    resp->content_length = r->length_set ? r->length
                           : (r->chunked || x->head) ? -1 : (long long) len;
    snprintf(resp->content_type, sizeof(resp->content_type), "%s",
             r->content_type != NULL ? r->content_type : "");
    snprintf(resp->digest, sizeof(resp->digest), "%s",
             r->digest != NULL ? r->digest : "");
    snprintf(resp->www_authenticate, sizeof(resp->www_authenticate), "%s",
             r->www_authenticate != NULL ? r->www_authenticate : "");
    snprintf(resp->link, sizeof(resp->link), "%s",
             r->link != NULL ? r->link : "");
    resp->link_truncated = r->link_truncated;

    if (r->retry_after_set) {
        resp->retry_after = r->retry_after;
    }

    if (r->ratelimit_set) {
        resp->ratelimit_limit = r->ratelimit_limit;
        resp->ratelimit_remaining = r->ratelimit_remaining;
    }

    if (r->range_set) {
        resp->range_first = r->range_first;
        resp->range_last = r->range_last;
        resp->range_total = r->range_total;
    }

    if (r->status < 200 || r->status >= 300) {
        if (len > 0) {
            n = len < XFER_ERRBODY_MAX ? len : XFER_ERRBODY_MAX;
            resp->body = malloc(n);
            assert_non_null(resp->body);
            memcpy(resp->body, r->body, n);
            resp->body_len = n;
        }

        goto done;
    }

    if (x->handler->headers != NULL
        && x->handler->headers(x, x->data) != 0)
    {
        rc = CURLE_WRITE_ERROR;
        goto done;
    }

    for (off = 0; off < len; off += n) {
        n = r->chunk != 0 && r->chunk < len - off ? r->chunk : len - off;

        if (x->handler->body(x, r->body + off, n, x->data) != 0) {
            rc = CURLE_WRITE_ERROR;
            goto done;
        }

        resp->bytes += (long long) n;

        if (r->between != NULL) {
            r->between(r->arg, off + n);
        }
    }

done:

    /* as xfer.c: out of the running set before done, freed after it */
    queue_remove(&x->link);
    x->handler->done(x, rc, x->data);
    free(resp->body);
    free(x);
}


/* Answer x with a status, a body (NULL: none) and a WWW-Authenticate
 * challenge (NULL: none). */
void
fake_reply_to(xfer_t *x, long status, const char *body,
    const char *challenge)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.body = body;
    r.www_authenticate = challenge;
    fake_xfer_reply(x, &r);
}


/*
 * Worker connections.
 */

struct conn_s {
    queue_t    waiters;
    size_t     waiting;         /* kept by the job layer */
    unsigned   number;
    int        dead;
    char      *out;             /* encoded lines, NUL-terminated */
    size_t     out_len;
    size_t     out_cap;
    size_t     read;            /* fake_conn_next() offset */
    long       uid;             /* the peer's: 0 (root) unless a test
                                   sets it */
};


int
conn_send(conn_t *c, const oci_msg_t *m)
{
    char    line[OCI_IPC_LINE_MAX + 1];
    char   *out;
    int     n;

    if (c->dead) {
        return -1;
    }

    n = oci_msg_encode(m, line, sizeof(line));
    if (n < 0) {
        fail_msg("a unit sent a message that cannot be encoded (%d)", n);
    }

    if (c->out_len + (size_t) n + 1 > c->out_cap) {
        c->out_cap = (c->out_len + (size_t) n + 1) * 2;
        out = realloc(c->out, c->out_cap);
        assert_non_null(out);
        c->out = out;
    }

    memcpy(c->out + c->out_len, line, (size_t) n + 1);
    c->out_len += (size_t) n;

    return 0;
}


/* As server.c: a FAIL through conn_send(). */
void
conn_send_fail(conn_t *c, uint32_t id, int status, oci_errcode_t code,
    const char *message)
{
    oci_msg_t  m;

    oci_msg_fail(&m, id, status, code, message);
    conn_send(c, &m);
}


void
conn_kill(conn_t *c)
{
    c->dead = 1;
}


queue_t *
conn_waiters(conn_t *c)
{
    return &c->waiters;
}


size_t *
conn_waiting(conn_t *c)
{
    return &c->waiting;
}


unsigned
conn_number(const conn_t *c)
{
    return c->number;
}


long
conn_peer_uid(const conn_t *c)
{
    return c->uid;
}


void
fake_conn_init(conn_t *c, unsigned number)
{
    memset(c, 0, sizeof(conn_t));
    queue_init(&c->waiters);
    c->number = number;
}


void
fake_conn_free(conn_t *c)
{
    free(c->out);
    c->out = NULL;
}


/* Everything sent since the last take ("" if nothing), as one string
 * valid until the next call. */
const char *
fake_conn_take(conn_t *c)
{
    static char  *copy;

    free(copy);
    copy = strdup(c->out != NULL ? c->out + c->read : "");
    assert_non_null(copy);

    c->out_len = 0;
    c->read = 0;
    if (c->out != NULL) {
        c->out[0] = '\0';
    }

    return copy;
}


/* Decode the next line sent: 1, or 0 if there is none. */
int
fake_conn_next(conn_t *c, oci_msg_t *m)
{
    size_t  used;

    if (c->read >= c->out_len) {
        return 0;
    }

    assert_int_equal(oci_msg_decode(c->out + c->read, c->out_len - c->read,
                                    m, &used), OCI_OK);
    c->read += used;

    return 1;
}


/*
 * The fixture.
 */

#define FAKE_REG      "reg.test"         /* two endpoints */
#define FAKE_SOLO     "solo.test"        /* one endpoint */
#define FAKE_EP1      "http://one.test"
#define FAKE_EP2      "http://two.test"
#define FAKE_EP_SOLO  "http://solo.test"

typedef struct {
    char            dir[64];
    char            store[128];
    oci_config_t   *cf;
    token_cache_t  *tokens;
    jobs_t         *jobs;
    conn_t          c1;
    conn_t          c2;
} fake_env_t;


/* The registry of e's config named name (FAKE_REG, FAKE_SOLO). */
oci_registry_t *
fake_registry(fake_env_t *e, const char *name)
{
    oci_registry_t  *reg;

    reg = oci_config_registry(e->cf, name, strlen(name));
    assert_non_null(reg);

    return reg;
}


/* The probes endpoints_tick() starts now (a throttled endpoint whose
 * Retry-After passed, a backed-off one) all answer status. */
void
fake_probes_answer(fake_env_t *e, long status)
{
    fake_reply_t  r;
    xfer_t       *x;
    size_t        len;
    int           i;

    endpoints_tick(e->jobs->eps);

    memset(&r, 0, sizeof(r));
    r.status = status;

    for (i = 0; (x = fake_xfer_at(i)) != NULL; ) {
        len = strlen(x->url);

        if (len > 4 && strcmp(x->url + len - 4, "/v2/") == 0) {
            fake_xfer_reply(x, &r);
            continue;
        }

        i++;
    }
}


/* The token cache's clock while a test runs. */
time_t  fake_now = 1000;


time_t
fake_clock(void)
{
    return fake_now;
}


/* The worker's client left: CANCEL (c, id), as the worker sends it. */
void
fake_cancel(jobs_t *jobs, conn_t *c, uint32_t id)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_CANCEL, id);
    dispatch_on_msg(c, &m, jobs);
}


/* Make the file at path seconds old (its access and change times). */
void
fake_age_file(const char *path, long seconds)
{
    struct timeval   tv[2];
    struct timespec  now;

    /* the clock list.c ages files by */
    clock_gettime(CLOCK_REALTIME, &now);
    tv[0].tv_sec = now.tv_sec - seconds;
    tv[0].tv_usec = 0;
    tv[1] = tv[0];
    assert_int_equal(utimes(path, tv), 0);
}


/* Files in <store>/tmp. */
int
fake_tmp_count(fake_env_t *e)
{
    char            path[256];
    DIR            *dir;
    struct dirent  *de;
    int             n;

    snprintf(path, sizeof(path), "%s/tmp", e->store);
    dir = opendir(path);
    assert_non_null(dir);

    n = 0;

    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] != '.') {
            n++;
        }
    }

    closedir(dir);
    return n;
}


/* sha256 of data as 64 hex digits. */
void
fake_sha256(const char *data, size_t len, char hex[OCI_SHA256_HEX_LEN + 1])
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen, i;

    assert_int_equal(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL),
                     1);
    assert_int_equal(mdlen, 32);

    for (i = 0; i < mdlen; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
}


/* The whole content of a file into buf (NUL-terminated); its length, or
 * -1 if it cannot be read. */
long
fake_read_file(const char *path, char *buf, size_t cap)
{
    ssize_t  n;
    int      fd;

    fd = open(path, O_RDONLY);
    if (fd < 0) {
        return -1;
    }

    n = read(fd, buf, cap - 1);
    close(fd);

    if (n < 0) {
        return -1;
    }

    buf[n] = '\0';
    return (long) n;
}


/* More of the config for the next fake_env_setup() (a test's group, as
 * the cluster's); NULL: none.  Set before, reset by the setup. */
const char  *fake_env_extra;


int
fake_env_setup(void **state)
{
    fake_env_t  *e;
    char         file[128], err[512];
    FILE        *fp;

    e = calloc(1, sizeof(fake_env_t));
    assert_non_null(e);

    snprintf(e->dir, sizeof(e->dir), "/tmp/ocitest-fetch.XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->store, sizeof(e->store), "%s/store", e->dir);
    snprintf(file, sizeof(file), "%s/ocimirror.cfg", e->dir);

    fp = fopen(file, "w");
    assert_non_null(fp);
    fprintf(fp,
            "store = { path = \"%s\"; fsync = false; };\n"
            "fetcher = { socket = \"%s/fetcher.sock\"; };\n"
            "registries = (\n"
            "  { name = \"" FAKE_REG "\"; endpoints = ( \"" FAKE_EP1 "\", "
            "\"" FAKE_EP2 "/\" ); },\n"
            "  { name = \"" FAKE_SOLO "\"; endpoints = ( \"" FAKE_EP_SOLO
            "\" ); }\n"
            ");\n%s", e->store, e->dir,
            fake_env_extra != NULL ? fake_env_extra : "");
    fclose(fp);
    fake_env_extra = NULL;

    err[0] = '\0';
    if (oci_config_load(file, &e->cf, err, sizeof(err)) != OCI_OK) {
        fail_msg("config: %s", err);
    }

    assert_int_equal(oci_store_prepare(e->store, err, sizeof(err)), OCI_OK);
    assert_int_equal(stats_init(e->cf), 0);

    fake_xfer_reset();
    fake_now = 1000;

    /* the units only pass the multi on to xfer_start(): any pointer */
    e->tokens = token_cache_create((xfer_multi_t *) e);
    assert_non_null(e->tokens);
    token_cache_set_clock(e->tokens, fake_clock);

    e->jobs = jobs_create(e->cf, (xfer_multi_t *) e, e->tokens);
    assert_non_null(e->jobs);
    dispatch_setup(e->jobs);

    fake_conn_init(&e->c1, 1);
    fake_conn_init(&e->c2, 2);

    *state = e;
    return 0;
}


int
fake_env_teardown(void **state)
{
    fake_env_t  *e = *state;

    /* the workers go first, as in fetcher_stop() */
    jobs_on_gone(&e->c1, e->jobs);
    jobs_on_gone(&e->c2, e->jobs);
    jobs_destroy(e->jobs);
    token_cache_destroy(e->tokens);

    /* nothing may be left running */
    assert_int_equal(fake_xfer_count(), 0);

    fake_conn_free(&e->c1);
    fake_conn_free(&e->c2);
    stats_destroy();
    oci_config_destroy(e->cf);
    test_rm_rf(e->dir);
    free(e);

    return 0;
}


#endif /* FETCHER_FAKES_H */
