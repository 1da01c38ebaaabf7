/*
 * Unit tests for src/fetcher/job.c with a kind of the test's own: the
 * in-flight table, waiters (CANCEL, a worker gone, idle), progress
 * coalescing, the upstream request (URL, failover over endpoints, the
 * token flow on a 401), the mapping of upstream errors to FAIL, the
 * request checks, PING, and tearing everything down.  Transfers and
 * worker connections are the fakes of fetcher_fakes.h.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fetcher_fakes.h"


#define HEX64 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST     "sha256:" HEX64
#define PATH       "/v2/a/b/manifests/v1"
#define CHALLENGE  "Bearer realm=\"https://auth.test/token\"," \
                   "service=\"reg.test\",scope=\"repository:a/b:pull\""
#define TOKEN_URL  "https://auth.test/token?service=reg.test" \
                   "&scope=repository%3Aa%2Fb%3Apull"

typedef struct {
    job_t    job;                   /* first */
    char     body[256];
    size_t   len;
} test_job_t;

/* What the test kind's callbacks saw; reset per test. */
static struct {
    int      headers;
    int      bodies;
    int      resets;
    int      dones;
    int      unavailables;
    int      idles;
    int      idle_keep;             /* idle's answer */
    int      flushes;
    int      cleanups;
    int      retry;                 /* can_retry's answer */
    int      reset_rc;
    int      abort_headers;
    long     done_status;
    char     done_body[256];
} rec;

static int
kind_headers(job_t *j, const xfer_resp_t *r)
{
    rec.headers++;

    if (rec.abort_headers) {
        return job_abort(j, 502, OCI_ERR_UPSTREAM, "aborted by headers");
    }

    return 0;
}


static int
kind_body(job_t *j, const char *p, size_t n)
{
    test_job_t  *t = (test_job_t *) j;

    rec.bodies++;
    assert_true(t->len + n < sizeof(t->body));
    memcpy(t->body + t->len, p, n);
    t->len += n;

    return 0;
}


static int
kind_reset(job_t *j)
{
    rec.resets++;
    ((test_job_t *) j)->len = 0;

    return rec.reset_rc;
}


static int
kind_can_retry(job_t *j)
{
    return rec.retry;
}


static void
kind_done(job_t *j, const xfer_resp_t *r)
{
    test_job_t  *t = (test_job_t *) j;
    oci_msg_t    m;

    rec.dones++;
    rec.done_status = r->status;
    snprintf(rec.done_body, sizeof(rec.done_body), "%.*s", (int) t->len,
             t->body);

    oci_msg_init(&m, OCI_MSG_DONE, 0);
    job_send_all(j, &m);
    job_finish(j);
}


static void
kind_unavailable(job_t *j)
{
    rec.unavailables++;
    job_fail(j, 503, OCI_ERR_UNAVAILABLE, "kind says unavailable");
}


static int
kind_idle(job_t *j)
{
    rec.idles++;

    return rec.idle_keep;
}


static void
kind_flush(job_t *j)
{
    rec.flushes++;
}


static void
kind_cleanup(job_t *j)
{
    rec.cleanups++;
}


/* A kind without an idle hook (dropped when nobody waits) that fails
 * plainly. */
static const job_ops_t  plain_ops = {
    "test", OCI_ERR_MANIFEST_UNKNOWN, kind_headers, kind_body, kind_reset,
    kind_can_retry, kind_done, NULL, NULL, kind_flush, kind_cleanup, NULL, NULL,
    NULL, NULL, 0, NULL
};

/* A kind that is asked when idle and handles "unavailable" itself. */
static const job_ops_t  idle_ops = {
    "test", OCI_ERR_BLOB_UNKNOWN, kind_headers, kind_body, kind_reset,
    kind_can_retry, kind_done, kind_unavailable, kind_idle, NULL,
    kind_cleanup, NULL, NULL, NULL, NULL, 0, NULL
};


/* The endpoints' clock (milliseconds). */
static long long  test_ms;


static long long
test_clock(void)
{
    return test_ms;
}


static int
setup(void **state)
{
    memset(&rec, 0, sizeof(rec));
    rec.retry = 1;

    fake_env_setup(state);
    test_ms = 1000000;
    jobs_set_clock(((fake_env_t *) *state)->jobs, test_clock);

    return 0;
}


static const oci_registry_t *
registry(fake_env_t *e, const char *name)
{
    const oci_registry_t  *reg;

    reg = oci_config_registry(e->cf, name, strlen(name));
    assert_non_null(reg);

    return reg;
}


/* A job for reg.test a/b:v1 (or another registry), with the path set;
 * not yet issued. */
static job_t *
new_job(fake_env_t *e, const job_ops_t *ops, const char *reg,
    const char *key)
{
    job_t  *j;

    j = job_create(e->jobs, ops, sizeof(test_job_t), registry(e, reg),
                   "a/b", "v1", key);
    assert_non_null(j);

    snprintf(j->path, sizeof(j->path), "%s", PATH);
    j->accept = "application/json";

    return j;
}


/* Answer the only transfer running. */
static void
reply(long status, const char *body)
{
    fake_reply_to(fake_xfer_one(), status, body, NULL);
}


static void
reply_rc(CURLcode rc)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.rc = rc;
    fake_xfer_reply(fake_xfer_one(), &r);
}


static void
reply_401(const char *challenge)
{
    fake_reply_to(fake_xfer_one(), 401,
                  "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}", challenge);
}


static void
test_table(void **state)
{
    fake_env_t  *e = *state;
    job_t       *jobs[3000], *loose;
    char         key[32];
    int          i;

    /* more keys than buckets: chains must hold */
    for (i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "K %d", i);
        jobs[i] = new_job(e, &plain_ops, FAKE_REG, key);
    }

    loose = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_null(loose->key);

    for (i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "K %d", i);
        assert_ptr_equal(job_find(e->jobs, key), jobs[i]);
        assert_string_equal(jobs[i]->key, key);
    }

    assert_null(job_find(e->jobs, "K 3000"));
    assert_null(job_find(e->jobs, "K"));
    assert_null(job_find(e->jobs, ""));

    /* finished jobs leave the table, the others stay */
    for (i = 0; i < 3000; i += 2) {
        job_finish(jobs[i]);
    }

    assert_int_equal(rec.cleanups, 1500);

    for (i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "K %d", i);
        assert_ptr_equal(job_find(e->jobs, key), i % 2 ? jobs[i] : NULL);
    }

    /* destroying the table finishes the rest, with no message */
    jobs_destroy(e->jobs);
    assert_int_equal(rec.cleanups, 3001);
    e->jobs = jobs_create(e->cf, (xfer_multi_t *) e, e->tokens);
    assert_non_null(e->jobs);
}


static void
test_names(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg;
    job_t                  *j;

    reg = registry(e, FAKE_SOLO);

    j = job_create(e->jobs, &plain_ops, sizeof(test_job_t), reg, "x/y/z",
                   DIGEST, NULL);
    assert_non_null(j);
    assert_string_equal(j->label, "test solo.test/x/y/z@" DIGEST);
    assert_string_equal(j->scope, "repository:x/y/z:pull");
    assert_string_equal(j->name, "x/y/z");
    assert_ptr_equal(j->registry, reg);
    assert_true(j->endpoint == 0);
    job_finish(j);

    j = job_create(e->jobs, &plain_ops, sizeof(test_job_t), reg, "x",
                   "latest", NULL);
    assert_string_equal(j->label, "test solo.test/x:latest");
    job_finish(j);

    j = job_create(e->jobs, &plain_ops, sizeof(test_job_t), reg, "x", NULL,
                   NULL);
    assert_string_equal(j->label, "test solo.test/x");
    job_finish(j);
}


/* Keepalive: WAIT after JOBS_WAIT_TICKS ticks of silence, per waiter;
 * anything sent restarts that waiter's count. */
static void
test_keepalive(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j, *k;
    oci_msg_t    m;
    int          i;

    j = new_job(e, &plain_ops, FAKE_REG, "Q");
    assert_non_null(job_add_waiter(j, &e->c1, 1));

    for (i = 0; i < 5; i++) {
        jobs_tick(e->jobs);
    }

    /* a later waiter and a message to the first one */
    k = new_job(e, &plain_ops, FAKE_REG, "R");
    assert_non_null(job_add_waiter(k, &e->c2, 2));
    assert_non_null(job_add_waiter(j, &e->c2, 3));

    for (i = 0; i < JOBS_WAIT_TICKS - 5 - 1; i++) {
        jobs_tick(e->jobs);
    }

    assert_string_equal(fake_conn_take(&e->c1), "");
    jobs_tick(e->jobs);
    assert_string_equal(fake_conn_take(&e->c1), "WAIT 1\n");
    assert_string_equal(fake_conn_take(&e->c2), "");

    oci_msg_init(&m, OCI_MSG_PROGRESS, 0);
    m.bytes = 1;
    job_send_all(k, &m);
    assert_string_equal(fake_conn_take(&e->c2), "PROGRESS 2 1\n");

    for (i = 0; i < 4; i++) {
        jobs_tick(e->jobs);
    }

    assert_string_equal(fake_conn_take(&e->c2), "");
    jobs_tick(e->jobs);

    /* 3 was silent for 10 ticks; 2 heard PROGRESS and 1 WAIT 5 ago */
    assert_string_equal(fake_conn_take(&e->c2), "WAIT 3\n");
    assert_string_equal(fake_conn_take(&e->c1), "");

    for (i = 0; i < 5; i++) {
        jobs_tick(e->jobs);
    }

    assert_string_equal(fake_conn_take(&e->c1), "WAIT 1\n");
    assert_string_equal(fake_conn_take(&e->c2), "WAIT 2\n");
}


static void
test_waiters(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;
    oci_msg_t    m;

    j = new_job(e, &idle_ops, FAKE_REG, "W");
    assert_non_null(job_add_waiter(j, &e->c1, 7));
    assert_non_null(job_add_waiter(j, &e->c2, 8));
    assert_non_null(job_add_waiter(j, &e->c1, 9));

    oci_msg_init(&m, OCI_MSG_PROGRESS, 0);
    m.bytes = 5;
    job_send_all(j, &m);
    assert_string_equal(fake_conn_take(&e->c1),
                        "PROGRESS 7 5\nPROGRESS 9 5\n");
    assert_string_equal(fake_conn_take(&e->c2), "PROGRESS 8 5\n");

    /* CANCEL drops that request only; unknown ids are ignored */
    fake_cancel(e->jobs, &e->c1, 9);
    fake_cancel(e->jobs, &e->c1, 8);
    fake_cancel(e->jobs, &e->c2, 100);

    oci_msg_init(&m, OCI_MSG_DONE, 0);
    job_send_all(j, &m);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 7\n");
    assert_string_equal(fake_conn_take(&e->c2), "DONE 8\n");

    /* a worker goes: its requests leave; the job ends with the last */
    jobs_on_gone(&e->c1, e->jobs);
    assert_true(queue_empty(conn_waiters(&e->c1)));
    assert_int_equal(rec.idles, 0);
    assert_ptr_equal(job_find(e->jobs, "W"), j);

    jobs_on_gone(&e->c2, e->jobs);
    assert_int_equal(rec.idles, 1);
    assert_int_equal(rec.cleanups, 1);
    assert_null(job_find(e->jobs, "W"));
    assert_string_equal(fake_conn_take(&e->c2), "");
}


/* Without an idle callback a job nobody waits for is dropped at once:
 * its transfer stops, the kind releases what it holds, it is counted. */
static void
test_no_waiters_left(void **state)
{
    fake_env_t      *e = *state;
    job_t           *j;
    stats_census_t   census;

    j = new_job(e, &plain_ops, FAKE_REG, "G");
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    assert_int_equal(e->jobs->njobs, 1);
    assert_int_equal(e->jobs->nwaiters, 1);
    assert_int_equal(*conn_waiting(&e->c1), 1);

    fake_cancel(e->jobs, &e->c1, 1);
    assert_null(job_find(e->jobs, "G"));
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.aborted, 1);
    assert_int_equal(rec.cleanups, 1);
    assert_int_equal(rec.dones, 0);
    assert_int_equal(e->jobs->njobs, 0);
    assert_int_equal(e->jobs->nwaiters, 0);
    assert_int_equal(*conn_waiting(&e->c1), 0);
    assert_string_equal(fake_conn_take(&e->c1), "");

    memset(&census, 0, sizeof(census));
    jobs_census(e->jobs, &census);
    assert_true(census.dropped == 1);
    assert_true(census.finished_unwaited == 0);

    /* queued, not yet sent: the same */
    j = new_job(e, &plain_ops, FAKE_REG, "Q");
    assert_non_null(job_add_waiter(j, &e->c2, 2));
    job_issue(j);
    jobs_on_gone(&e->c2, e->jobs);
    assert_null(job_find(e->jobs, "Q"));
    assert_int_equal(fake_xfer_count(), 0);
    assert_true(e->jobs->dropped == 2);
}


/* An idle hook that keeps the job: it goes on with nobody waiting, and
 * is counted as finishing unwaited. */
static void
test_idle_keeps(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;

    rec.idle_keep = 1;

    j = new_job(e, &idle_ops, FAKE_REG, "G");
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);

    fake_cancel(e->jobs, &e->c1, 1);
    assert_int_equal(rec.idles, 1);
    assert_ptr_equal(job_find(e->jobs, "G"), j);
    assert_int_equal(fake_xfer_count(), 1);
    assert_true(e->jobs->finished_unwaited == 1);
    assert_true(e->jobs->dropped == 0);

    reply(200, "filled");
    assert_int_equal(rec.dones, 1);
    assert_string_equal(rec.done_body, "filled");
    assert_string_equal(fake_conn_take(&e->c1), "");
}


/* A job the fetcher started itself (prefetch, warm) goes on whoever
 * joins and leaves, without asking the kind, back at prefetch priority
 * once the clients that promoted it are gone. */
static void
test_detached(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;
    oci_msg_t    m;

    j = new_job(e, &idle_ops, FAKE_REG, "P");
    j->prio = XFER_PRIO_PREFETCH;
    j->detached = 1;
    job_issue(j);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_PREFETCH);

    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_promote(j);
    assert_int_equal(j->prio, XFER_PRIO_CLIENT);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_CLIENT);

    fake_cancel(e->jobs, &e->c1, 1);
    assert_int_equal(rec.idles, 0);
    assert_ptr_equal(job_find(e->jobs, "P"), j);
    assert_int_equal(j->prio, XFER_PRIO_PREFETCH);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_PREFETCH);
    assert_true(e->jobs->dropped == 0);

    reply(200, "warm");
    assert_int_equal(rec.dones, 1);

    /* a client's job it left with DETACH (it had what it needed, a
     * range, and wants the rest stored): the same, other clients may
     * come and go */
    j = new_job(e, &idle_ops, FAKE_REG, "D");
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    assert_non_null(job_add_waiter(j, &e->c2, 3));
    job_issue(j);

    oci_msg_init(&m, OCI_MSG_DETACH, 2);
    dispatch_on_msg(&e->c1, &m, e->jobs);
    assert_int_equal(j->detached, 1);
    assert_int_equal(j->prio, XFER_PRIO_CLIENT);

    fake_cancel(e->jobs, &e->c2, 3);
    assert_ptr_equal(job_find(e->jobs, "D"), j);
    assert_int_equal(j->prio, XFER_PRIO_PREFETCH);
    assert_int_equal(rec.idles, 0);
    assert_true(e->jobs->dropped == 0);

    reply(200, "kept");
    assert_int_equal(rec.dones, 2);
    assert_string_equal(fake_conn_take(&e->c1), "");
}


/* The bounds of the waiters: per worker connection, then in all; past
 * one the request gets BUSY at once, naming it, and it is counted. */
static void
test_admit_waiters(void **state)
{
    fake_env_t      *e = *state;
    job_t           *j;
    stats_census_t   census;

    e->cf->max_worker_jobs = 2;
    e->cf->max_waiters = 3;

    j = new_job(e, &plain_ops, FAKE_REG, "A");

    assert_int_equal(jobs_admit(e->jobs, &e->c1, 1), 0);
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    assert_int_equal(jobs_admit(e->jobs, &e->c1, 2), 0);
    assert_non_null(job_add_waiter(j, &e->c1, 2));

    assert_int_equal(jobs_admit(e->jobs, &e->c1, 3), -1);
    assert_string_equal(fake_conn_take(&e->c1),
        "BUSY 3 2 too many requests for the mirror's fetcher: "
        "fetcher.max_worker_jobs (2) reached, retry later\n");

    /* another worker still may, up to the total */
    assert_int_equal(jobs_admit(e->jobs, &e->c2, 4), 0);
    assert_non_null(job_add_waiter(j, &e->c2, 4));
    assert_int_equal(jobs_admit(e->jobs, &e->c2, 5), -1);
    assert_string_equal(fake_conn_take(&e->c2),
        "BUSY 5 2 too many requests for the mirror's fetcher: "
        "fetcher.max_waiters (3) reached, retry later\n");

    /* a CANCEL makes room again */
    fake_cancel(e->jobs, &e->c1, 2);
    assert_int_equal(jobs_admit(e->jobs, &e->c1, 6), 0);
    assert_int_equal(jobs_admit(e->jobs, &e->c2, 7), 0);
    assert_string_equal(fake_conn_take(&e->c1), "");

    memset(&census, 0, sizeof(census));
    jobs_census(e->jobs, &census);
    assert_true(census.refused[STATS_CAP_WORKER_JOBS] == 1);
    assert_true(census.refused[STATS_CAP_WAITERS] == 1);
    assert_true(census.refused[STATS_CAP_JOBS] == 0);
    assert_true(census.waiters == 2);
}


/* The bounds of new jobs: in flight, and client transfers queued. */
static void
test_admit_jobs(void **state)
{
    fake_env_t      *e = *state;
    job_t           *a, *b;
    stats_census_t   census;

    e->cf->max_jobs = 2;
    e->cf->max_queued = 2;

    a = new_job(e, &plain_ops, FAKE_REG, "A");
    assert_int_equal(jobs_admit_job(e->jobs, &e->c1, 1), 0);
    b = new_job(e, &plain_ops, FAKE_REG, "B");

    assert_int_equal(jobs_admit_job(e->jobs, &e->c1, 2), -1);
    assert_string_equal(fake_conn_take(&e->c1),
        "BUSY 2 2 too many requests for the mirror's fetcher: "
        "fetcher.max_jobs (2) reached, retry later\n");

    job_finish(b);
    assert_int_equal(jobs_admit_job(e->jobs, &e->c1, 3), 0);

    /* two client transfers waiting for a slot: no third job */
    job_issue(a);
    fake_xfers.queued = 1;
    assert_int_equal(jobs_admit_job(e->jobs, &e->c1, 4), -1);
    assert_string_equal(fake_conn_take(&e->c1),
        "BUSY 4 2 too many requests for the mirror's fetcher: "
        "fetcher.max_queued (2) reached, retry later\n");

    /* prefetch's queue is not the clients' */
    job_demote(a);
    assert_int_equal(jobs_admit_job(e->jobs, &e->c1, 5), 0);

    memset(&census, 0, sizeof(census));
    jobs_census(e->jobs, &census);
    assert_true(census.refused[STATS_CAP_JOBS] == 1);
    assert_true(census.refused[STATS_CAP_QUEUED] == 1);
    assert_true(census.queued == 1);
    assert_string_equal(fake_conn_take(&e->c1), "");
}


/* One worker's connection, two jobs: gone drops both waiters. */
static void
test_gone_many_jobs(void **state)
{
    fake_env_t  *e = *state;
    job_t       *a, *b;

    a = new_job(e, &idle_ops, FAKE_REG, "A");
    b = new_job(e, &idle_ops, FAKE_REG, "B");
    assert_non_null(job_add_waiter(a, &e->c1, 1));
    assert_non_null(job_add_waiter(b, &e->c1, 2));
    assert_non_null(job_add_waiter(a, &e->c1, 3));
    job_issue(a);
    job_issue(b);
    assert_int_equal(fake_xfer_count(), 2);

    jobs_on_gone(&e->c1, e->jobs);
    assert_int_equal(rec.idles, 2);
    assert_int_equal(rec.cleanups, 2);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.aborted, 2);
}


static void
test_dirty(void **state)
{
    fake_env_t  *e = *state;
    job_t       *a, *b;

    a = new_job(e, &plain_ops, FAKE_REG, NULL);
    b = new_job(e, &plain_ops, FAKE_REG, NULL);

    /* many marks between two flushes: one flush each */
    job_mark_dirty(a);
    job_mark_dirty(a);
    job_mark_dirty(b);
    job_mark_dirty(a);
    jobs_flush(e->jobs);
    assert_int_equal(rec.flushes, 2);

    jobs_flush(e->jobs);
    assert_int_equal(rec.flushes, 2);

    /* a job that ends before the flush is not flushed */
    job_mark_dirty(a);
    job_mark_dirty(b);
    job_finish(b);
    jobs_flush(e->jobs);
    assert_int_equal(rec.flushes, 3);

    /* a kind without flush: marked and dropped quietly */
    b = new_job(e, &idle_ops, FAKE_REG, NULL);
    job_mark_dirty(b);
    jobs_flush(e->jobs);
    assert_int_equal(rec.flushes, 3);
    assert_true(queue_empty(&e->jobs->dirty));
}


static void
test_issue(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;
    xfer_t      *x;

    j = new_job(e, &plain_ops, FAKE_REG, "I");
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    j->head = 1;
    j->accept = "a/b,c/d";
    job_issue(j);

    x = fake_xfer_one();
    assert_string_equal(x->url, FAKE_EP1 PATH);
    assert_int_equal(x->head, 1);
    assert_string_equal(x->accept, "a/b,c/d");
    assert_string_equal(x->bearer, "");
    assert_int_equal(x->prio, XFER_PRIO_CLIENT);
    assert_int_equal(x->ranged, 0);
    assert_int_equal(rec.resets, 1);
    assert_ptr_equal(j->xfer, x);

    reply(200, "body");
    assert_int_equal(rec.headers, 1);
    assert_int_equal(rec.dones, 1);
    assert_int_equal(rec.done_status, 200);
    assert_string_equal(rec.done_body, "body");
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");
}


static void
test_issue_fails(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;

    /* the kind cannot start over */
    rec.reset_rc = -1;
    j = new_job(e, &plain_ops, FAKE_REG, "R");
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 503 UNAVAILABLE cannot reset the download\n");
    assert_null(job_find(e->jobs, "R"));
    assert_int_equal(fake_xfers.started, 0);

    /* no transfer could be set up */
    rec.reset_rc = 0;
    fake_xfers.fail_start = 1;
    j = new_job(e, &plain_ops, FAKE_REG, "R");
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    job_issue(j);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 503 UNAVAILABLE cannot start a transfer\n");
    assert_null(job_find(e->jobs, "R"));
    assert_int_equal(rec.cleanups, 2);
}


/* Connection errors and 5xx move on to the next endpoint, from scratch,
 * on the same path. */
static void
test_failover(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;

    j = new_job(e, &plain_ops, FAKE_REG, "F");
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);

    reply_rc(CURLE_COULDNT_CONNECT);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP2 PATH);
    assert_true(j->endpoint == 1);
    assert_int_equal(rec.resets, 2);
    assert_string_equal(fake_conn_take(&e->c1), "");

    /* the last endpoint fails too */
    reply(503, "{\"errors\":[{\"code\":\"UNAVAILABLE\"}]}");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
    assert_null(job_find(e->jobs, "F"));
    assert_int_equal(fake_xfer_count(), 0);

    /* 5xx on the first, the second answers */
    j = new_job(e, &plain_ops, FAKE_REG, "F");
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    job_issue(j);
    reply(500, NULL);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP2 PATH);
    reply(200, "second");
    assert_string_equal(rec.done_body, "second");
    assert_string_equal(fake_conn_take(&e->c1), "DONE 2\n");

    /* timeouts and resets count as unreachable, a 502 too */
    j = new_job(e, &plain_ops, FAKE_REG, "F");
    assert_non_null(job_add_waiter(j, &e->c1, 3));
    job_issue(j);
    reply_rc(CURLE_OPERATION_TIMEDOUT);
    reply(502, NULL);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 3 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
}


static void
test_failover_refused(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;

    /* the kind cannot start over elsewhere */
    rec.retry = 0;
    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    reply_rc(CURLE_RECV_ERROR);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
    assert_int_equal(fake_xfer_count(), 0);

    /* one endpoint only */
    rec.retry = 1;
    j = new_job(e, &plain_ops, FAKE_SOLO, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    job_issue(j);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP_SOLO PATH);
    reply_rc(CURLE_COULDNT_RESOLVE_HOST);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 503 UNAVAILABLE upstream registry "
                        "unavailable\n");

    /* the kind answers "unavailable" itself */
    j = new_job(e, &idle_ops, FAKE_SOLO, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 3));
    job_issue(j);
    reply(504, NULL);
    assert_int_equal(rec.unavailables, 1);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 3 503 UNAVAILABLE kind says unavailable\n");
}


/* Other transfer failures are final, and a kind's abort wins. */
static void
test_transfer_failed(void **state)
{
    fake_env_t    *e = *state;
    job_t         *j;
    fake_reply_t   r;

    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    reply_rc(CURLE_TOO_MANY_REDIRECTS);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 502 UNKNOWN upstream transfer failed\n");
    assert_int_equal(fake_xfers.started, 1);

    rec.abort_headers = 1;
    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    job_issue(j);
    reply(200, "x");
    assert_int_equal(rec.bodies, 0);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 502 UNKNOWN aborted by headers\n");

    /* an abort also wins over an unreachable-looking end */
    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 3));
    job_issue(j);
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.rc = CURLE_PARTIAL_FILE;
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 3 502 UNKNOWN aborted by headers\n");
    assert_int_equal(fake_xfer_count(), 0);
}


/* Upstream error answers: status and JSON body to FAIL. */
static void
test_upstream_errors(void **state)
{
    static const struct {
        long         status;
        const char  *body;
        const char  *fail;          /* after "FAIL 1 " */
    } cases[] = {
        { 404, NULL, "404 MANIFEST_UNKNOWN upstream answered 404" },
        { 404, "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":"
               "\"repository name not known to registry\"}]}",
          "404 NAME_UNKNOWN repository name not known to registry" },
        { 404, "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\"},"
               "{\"code\":\"NAME_UNKNOWN\"}]}",
          "404 BLOB_UNKNOWN upstream answered 404" },
        { 404, "{\"errors\":[{\"code\":\"NOT_A_CODE\",\"message\":\"m\"}]}",
          "404 MANIFEST_UNKNOWN m" },
        { 404, "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\","
               "\"message\":\"\"}]}",
          "404 MANIFEST_UNKNOWN upstream answered 404" },
        { 404, "<html>not found</html>",
          "404 MANIFEST_UNKNOWN upstream answered 404" },
        { 404, "{\"errors\":{\"code\":\"NAME_UNKNOWN\"}}",
          "404 MANIFEST_UNKNOWN upstream answered 404" },
        { 404, "{\"errors\":[]}",
          "404 MANIFEST_UNKNOWN upstream answered 404" },
        { 404, "{\"errors\":[\"NAME_UNKNOWN\"]}",
          "404 MANIFEST_UNKNOWN upstream answered 404" },
        { 404, "{\"errors\":[{\"code\":7,\"message\":8}]}",
          "404 MANIFEST_UNKNOWN upstream answered 404" },
        { 404, "{\"errors\":[{\"code\":\"name_unknown\"}]}",
          "404 MANIFEST_UNKNOWN upstream answered 404" },
        { 403, NULL, "403 DENIED upstream answered 403" },
        { 403, "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"requested "
               "access to the resource is denied\"}]}",
          "403 DENIED requested access to the resource is denied" },
        { 429, "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":"
               "\"You have reached your pull rate limit.\"}]}",
          "429 TOOMANYREQUESTS You have reached your pull rate limit." },
        { 429, NULL, "429 TOOMANYREQUESTS upstream answered 429" },
        { 400, NULL, "502 UNKNOWN upstream answered 400" },
        { 400, "{\"errors\":[{\"code\":\"MANIFEST_INVALID\","
               "\"message\":\"manifest invalid\"}]}",
          "400 MANIFEST_INVALID manifest invalid" },
        { 405, NULL, "502 UNKNOWN upstream answered 405" },
        { 304, NULL, "502 UNKNOWN upstream answered 304" },
        { 404, "{\"errors\":[{\"code\":\"NAME_UNKNOWN\","
               "\"message\":\"line\\none\\ttwo\"}]}",
          "404 NAME_UNKNOWN line one two" },
    };

    fake_env_t  *e = *state;
    job_t       *j;
    char         want[512];
    size_t       i;
    int          started;

    started = 0;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        j = new_job(e, &plain_ops, FAKE_REG, NULL);
        assert_non_null(job_add_waiter(j, &e->c1, 1));
        job_issue(j);
        reply(cases[i].status, cases[i].body);
        started++;

        /* a 429 throttles the endpoint: the other one is asked */
        if (cases[i].status == 429) {
            assert_string_equal(fake_xfer_one()->url, FAKE_EP2 PATH);
            reply(cases[i].status, cases[i].body);
            started++;
            test_ms += ENDPOINTS_RETRY_AFTER * 1000;
            fake_probes_answer(e, 200);
            started += 2;       /* the probes that bring them back */
        }

        snprintf(want, sizeof(want), "FAIL 1 %s\n", cases[i].fail);
        assert_string_equal(fake_conn_take(&e->c1), want);
    }

    /* no failover for any of the others */
    assert_int_equal(fake_xfers.started, started);

    /* the not-found code is the kind's */
    j = new_job(e, &idle_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    job_issue(j);
    reply(404, NULL);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 404 BLOB_UNKNOWN upstream answered 404\n");
}


/* An upstream message is cut to fit, never dropped. */
static void
test_upstream_message_long(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;
    char         body[600], msg[301], want[256];

    memset(msg, 'm', 300);
    msg[300] = '\0';
    snprintf(body, sizeof(body), "{\"errors\":[{\"code\":\"DENIED\","
             "\"message\":\"%s\"}]}", msg);

    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    reply(403, body);

    snprintf(want, sizeof(want), "FAIL 1 403 DENIED %.159s\n", msg);
    assert_string_equal(fake_conn_take(&e->c1), want);
}


/* 401 -> token -> the same request again with it -> 200. */
static void
test_auth(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;
    xfer_t      *x;

    j = new_job(e, &plain_ops, FAKE_REG, "T");
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    reply_401(CHALLENGE);

    x = fake_xfer_one();
    assert_string_equal(x->url, TOKEN_URL);
    assert_int_equal(x->prio, XFER_PRIO_TOKEN);
    assert_int_equal(rec.resets, 1);

    reply(200, "{\"token\":\"tok-1\",\"expires_in\":300}");

    x = fake_xfer_one();
    assert_string_equal(x->url, FAKE_EP1 PATH);
    assert_string_equal(x->bearer, "tok-1");
    assert_int_equal(rec.resets, 2);

    reply(200, "ok");
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");

    /* the next job of that scope sends the cached token at once */
    j = new_job(e, &plain_ops, FAKE_REG, "T");
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    job_issue(j);
    assert_string_equal(fake_xfer_one()->bearer, "tok-1");

    /* refused: the token is dropped and a new one fetched, once */
    reply_401(CHALLENGE);
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "repository:a/b:pull"));
    assert_string_equal(fake_xfer_one()->url, TOKEN_URL);
    reply(200, "{\"token\":\"tok-2\"}");
    assert_string_equal(fake_xfer_one()->bearer, "tok-2");

    /* refused again: that is the answer */
    reply_401(CHALLENGE);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 401 UNAUTHORIZED upstream refused access\n");
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.started, 6);
}


static void
test_auth_failures(void **state)
{
    static const struct {
        const char  *challenge;     /* of the 401 */
        long         token_status;  /* 0: no token request expected */
        const char  *fail;
    } cases[] = {
        { NULL, 0, "401 UNAUTHORIZED upstream requires authentication" },
        { "Basic realm=\"r\"", 0,
          "401 UNAUTHORIZED upstream requires authentication" },
        { "Bearer", 0, "401 UNAUTHORIZED upstream requires authentication" },
        { "Bearer realm=\"ftp://auth.test/\"", 0,
          "401 UNAUTHORIZED cannot request a token" },
        { CHALLENGE, 401, "401 UNAUTHORIZED no token granted" },
        { CHALLENGE, 503, "503 UNAVAILABLE token service unavailable" },
    };

    fake_env_t  *e = *state;
    job_t       *j;
    char         want[256];
    size_t       i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        j = new_job(e, &plain_ops, FAKE_REG, NULL);
        assert_non_null(job_add_waiter(j, &e->c1, 1));
        job_issue(j);
        reply_401(cases[i].challenge);

        if (cases[i].token_status != 0) {
            assert_string_equal(fake_xfer_one()->url, TOKEN_URL);
            reply(cases[i].token_status, NULL);
        }

        snprintf(want, sizeof(want), "FAIL 1 %s\n", cases[i].fail);
        assert_string_equal(fake_conn_take(&e->c1), want);
        assert_int_equal(fake_xfer_count(), 0);

        /* past the time a refused scope is not asked again */
        fake_now += 3600;
    }
}


/* Two jobs of one scope meet a 401: one token request serves both. */
static void
test_auth_shared(void **state)
{
    fake_env_t  *e = *state;
    job_t       *a, *b;

    a = new_job(e, &plain_ops, FAKE_REG, "A");
    b = new_job(e, &plain_ops, FAKE_REG, "B");
    assert_non_null(job_add_waiter(a, &e->c1, 1));
    assert_non_null(job_add_waiter(b, &e->c2, 2));
    job_issue(a);
    job_issue(b);

    fake_reply_to(fake_xfer_at(0), 401, NULL, CHALLENGE);
    fake_reply_to(fake_xfer_at(0), 401, NULL, CHALLENGE);
    assert_string_equal(fake_xfer_one()->url, TOKEN_URL);
    assert_int_equal(fake_xfers.started, 3);

    reply(200, "{\"token\":\"tok\"}");
    assert_int_equal(fake_xfer_count(), 2);
    assert_ptr_equal(fake_xfer_at(0), a->xfer);
    assert_ptr_equal(fake_xfer_at(1), b->xfer);
    assert_string_equal(fake_xfer_at(0)->bearer, "tok");
    assert_string_equal(fake_xfer_at(1)->bearer, "tok");

    fake_reply_to(fake_xfer_at(1), 200, "b", NULL);
    fake_reply_to(fake_xfer_at(0), 200, "a", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");
    assert_string_equal(fake_conn_take(&e->c2), "DONE 2\n");
}


/* The job ends while it waits for a token: the token request goes on
 * and fills the cache, without calling into the freed job. */
static void
test_auth_job_gone(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;

    j = new_job(e, &idle_ops, FAKE_REG, "A");
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    reply_401(CHALLENGE);

    jobs_on_gone(&e->c1, e->jobs);
    assert_int_equal(rec.idles, 1);
    assert_null(job_find(e->jobs, "A"));

    reply(200, "{\"token\":\"tok\"}");
    assert_int_equal(fake_xfer_count(), 0);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0,
                                     "repository:a/b:pull"), "tok");
    assert_string_equal(fake_conn_take(&e->c1), "");
}


static void
test_check_request(void **state)
{
    fake_env_t      *e = *state;
    oci_msg_t        m;
    oci_registry_t  *reg;

    oci_msg_init(&m, OCI_MSG_BLOB, 5);
    snprintf(m.registry, sizeof(m.registry), "nope.test");
    snprintf(m.name, sizeof(m.name), "a/b");
    assert_null(job_check_request(e->jobs, &e->c1, &m));
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 5 403 DENIED registry not configured\n");

    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    assert_ptr_equal(job_check_request(e->jobs, &e->c1, &m),
                     registry(e, FAKE_REG));
    assert_string_equal(fake_conn_take(&e->c1), "");

    snprintf(m.name, sizeof(m.name), "A/b");
    assert_null(job_check_request(e->jobs, &e->c1, &m));
    snprintf(m.name, sizeof(m.name), "a//b");
    assert_null(job_check_request(e->jobs, &e->c1, &m));
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 5 400 NAME_INVALID invalid repository name\n"
                        "FAIL 5 400 NAME_INVALID invalid repository name\n");

    /* a registry without endpoints cannot serve */
    reg = oci_config_registry(e->cf, FAKE_SOLO, strlen(FAKE_SOLO));
    reg->n_endpoints = 0;
    snprintf(m.registry, sizeof(m.registry), FAKE_SOLO);
    snprintf(m.name, sizeof(m.name), "a/b");
    assert_null(job_check_request(e->jobs, &e->c1, &m));
    reg->n_endpoints = 1;
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 5 403 DENIED registry not configured\n");
}


/* Torn down mid-flight: transfers aborted, no message, every kind
 * cleaned up; the token request belongs to the token cache. */
static void
test_destroy(void **state)
{
    fake_env_t  *e = *state;
    job_t       *a, *b, *c;

    a = new_job(e, &plain_ops, FAKE_REG, "A");
    b = new_job(e, &plain_ops, FAKE_SOLO, "B");
    c = new_job(e, &idle_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(a, &e->c1, 1));
    assert_non_null(job_add_waiter(b, &e->c1, 2));
    assert_non_null(job_add_waiter(c, &e->c2, 3));
    job_issue(a);
    job_issue(b);
    fake_reply_to(fake_xfer_at(1), 401, NULL, CHALLENGE);
    assert_int_equal(fake_xfer_count(), 2);

    jobs_destroy(e->jobs);
    assert_int_equal(rec.cleanups, 3);
    assert_int_equal(fake_xfers.aborted, 1);
    assert_int_equal(fake_xfer_count(), 1);
    assert_true(queue_empty(conn_waiters(&e->c1)));
    assert_true(queue_empty(conn_waiters(&e->c2)));
    assert_string_equal(fake_conn_take(&e->c1), "");
    assert_string_equal(fake_conn_take(&e->c2), "");

    e->jobs = jobs_create(e->cf, (xfer_multi_t *) e, e->tokens);
    assert_non_null(e->jobs);
}

/* Three failures in a row put an endpoint down: jobs start on the next
 * usable one, walk their own order, and count failovers and requests. */
static void
test_endpoint_order(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg;
    stats_registry_t       *st;
    job_t                  *j;
    int                     i;

    reg = registry(e, FAKE_REG);
    st = stats_registry(reg);

    for (i = 1; i <= 3; i++) {
        j = new_job(e, &plain_ops, FAKE_REG, NULL);
        assert_non_null(job_add_waiter(j, &e->c1, i));
        job_issue(j);
        assert_string_equal(fake_xfer_one()->url, FAKE_EP1 PATH);
        reply(500, NULL);
        assert_string_equal(fake_xfer_one()->url, FAKE_EP2 PATH);
        reply(200, "ok");
    }

    assert_true(st->failovers == 3);
    assert_true(st->endpoints[0].requests == 3);
    assert_true(st->endpoints[0].failures == 3);
    assert_true(st->endpoints[1].requests == 3);
    assert_int_equal(st->endpoints[0].up, 0);

    /* skipped: the job starts on the second endpoint */
    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 4));
    job_issue(j);
    assert_true(j->endpoint == 1);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP2 PATH);

    /* a job that fails there has no other endpoint left */
    reply(503, NULL);
    assert_string_equal(fake_conn_take(&e->c1),
                        "DONE 1\nDONE 2\nDONE 3\n"
                        "FAIL 4 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
    assert_true(st->failovers == 3);

    /* an order is kept by the job: the first endpoint going down while
     * the job runs on it still lets the job move on to the second, and
     * one going down meanwhile is not asked */
    test_ms += (long long) reg->backoff * 1000;
    jobs_tick(e->jobs);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP1 "/v2/");
    reply(401, NULL);
    assert_int_equal(st->endpoints[0].up, 1);

    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 5));
    job_issue(j);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP1 PATH);
    endpoints_failed(e->jobs->eps, reg, 1);
    endpoints_failed(e->jobs->eps, reg, 1);
    endpoints_failed(e->jobs->eps, reg, 1);
    reply_rc(CURLE_COULDNT_CONNECT);
    assert_int_equal(fake_xfer_count(), 0);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 5 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
}


/* A request answered from memory (a remembered refusal: xfer_answered())
 * asked no endpoint: it is not counted as sent, and its 401 is no sign of
 * life that would clear the endpoint's failures or back-off level. */
static void
test_endpoints_answered_locally(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg;
    stats_endpoint_t       *st;
    endpoints_state_t       es;
    job_t                  *j;
    xfer_t                 *x;
    const char             *out;

    reg = registry(e, FAKE_REG);
    st = &stats_registry(reg)->endpoints[0];

    endpoints_failed(e->jobs->eps, reg, 0);
    endpoints_failed(e->jobs->eps, reg, 0);
    token_refuse(e->tokens, reg, 0, "repository:a/b:pull");

    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    x = fake_xfer_one();
    assert_int_equal(x->answer, 401);
    assert_true(st->requests == 0);

    /* what xfer.c makes of it: a 401 without a challenge */
    fake_reply_to(x, 401, NULL, NULL);
    out = fake_conn_take(&e->c1);
    assert_non_null(strstr(out, "FAIL 1 401 UNAUTHORIZED "));
    assert_true(st->requests == 0);
    endpoints_state(e->jobs->eps, reg, 0, &es);
    assert_int_equal(es.fails, 2);

    /* so the next real failure is the third in a row */
    endpoints_failed(e->jobs->eps, reg, 0);
    endpoints_state(e->jobs->eps, reg, 0, &es);
    assert_int_equal(es.down, 1);
}


/* Every endpoint backing off: the job ends at once, upstream not asked,
 * through the kind's "unavailable" if it has one. */
static void
test_endpoints_all_down(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg;
    job_t                  *j;
    int                     i;

    reg = registry(e, FAKE_REG);

    for (i = 0; i < ENDPOINTS_FAIL_MAX; i++) {
        endpoints_failed(e->jobs->eps, reg, 0);
        endpoints_failed(e->jobs->eps, reg, 1);
    }

    j = new_job(e, &plain_ops, FAKE_REG, "D");
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    assert_int_equal(fake_xfers.started, 0);
    assert_null(job_find(e->jobs, "D"));
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 503 UNAVAILABLE upstream registry "
                        "unavailable\n");

    j = new_job(e, &idle_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    job_issue(j);
    assert_int_equal(rec.unavailables, 1);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 503 UNAVAILABLE kind says unavailable\n");

    /* another registry is not concerned */
    j = new_job(e, &plain_ops, FAKE_SOLO, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 3));
    job_issue(j);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP_SOLO PATH);
    reply(200, "ok");
    assert_string_equal(fake_conn_take(&e->c1), "DONE 3\n");
}


/* A 429 throttles its endpoint for Retry-After: the job moves on; with
 * none left, FAIL 429, and later jobs fail at once until it has passed. */
static void
test_endpoints_throttled(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg;
    fake_reply_t            r;
    job_t                  *j;

    reg = registry(e, FAKE_REG);

    memset(&r, 0, sizeof(r));
    r.status = 429;
    r.retry_after_set = 1;
    r.retry_after = 30;

    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP2 PATH);
    reply(200, "second");
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");
    assert_true(stats_registry(reg)->endpoints[0].throttled == 1);

    /* the first is skipped, the second throttles too */
    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    job_issue(j);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP2 PATH);
    r.retry_after = 60;
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 429 TOOMANYREQUESTS upstream answered 429\n");

    /* nothing usable: FAIL 429 without asking */
    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 3));
    job_issue(j);
    assert_int_equal(fake_xfer_count(), 0);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 3 429 TOOMANYREQUESTS upstream rate limit "
                        "reached, retry later\n");

    /* Retry-After of the first has passed and a probe found it: it is
     * asked again */
    test_ms += 30 * 1000 - 1;
    fake_probes_answer(e, 200);
    assert_int_equal(fake_xfers.started, 3);
    test_ms += 1;
    fake_probes_answer(e, 200);
    assert_int_equal(fake_xfers.started, 4);
    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 4));
    job_issue(j);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP1 PATH);
    reply(200, "first");
    assert_string_equal(fake_conn_take(&e->c1), "DONE 4\n");

    /* a throttled endpoint is no failure: nothing backs off */
    assert_int_equal(stats_registry(reg)->endpoints[0].up, 1);
    assert_true(stats_registry(reg)->endpoints[1].failures == 0);
}


/* A redirect target (a CDN) answers 429: that host is held back for its
 * Retry-After (capped by max_retry_after), the endpoint is not throttled
 * but credited, the next endpoint is tried, and with none left the client
 * gets 429. */
static void
test_redirect_target_throttles(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg;
    fake_reply_t            r;
    endpoints_state_t       st;
    job_t                  *j;
    xfer_t                 *x;

    reg = registry(e, FAKE_REG);

    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);

    x = fake_xfer_one();
    assert_string_equal(x->home, FAKE_EP1);
    snprintf(x->effective_url, 8192, "https://cdn.test/blob?sig=1");
    memset(&r, 0, sizeof(r));
    r.status = 429;
    r.retry_after_set = 1;
    r.retry_after = 86400;
    fake_xfer_reply(x, &r);

    assert_string_equal(fake_xfers.held_url, "https://cdn.test/blob?sig=1");
    assert_int_equal(fake_xfers.held_secs, OCI_DEFAULT_MAX_RETRY_AFTER);
    assert_true(stats_registry(reg)->hosts_throttled == 1);
    endpoints_state(e->jobs->eps, reg, 0, &st);
    assert_int_equal(st.throttled, 0);
    assert_true(stats_registry(reg)->endpoints[0].throttled == 0);

    /* the other endpoint leads to the held-back host too: the transfer
     * layer stops it before it is sent there */
    x = fake_xfer_one();
    assert_string_equal(x->url, FAKE_EP2 PATH);
    x->held = 1;
    reply_rc(CURLE_ABORTED_BY_CALLBACK);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 429 TOOMANYREQUESTS upstream rate limit "
                        "reached, retry later\n");
    endpoints_state(e->jobs->eps, reg, 1, &st);
    assert_int_equal(st.throttled, 0);
    assert_int_equal(st.fails, 0);

    /* both endpoints stay usable */
    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 2));
    job_issue(j);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP1 PATH);
    reply(200, "fine");
    assert_string_equal(fake_conn_take(&e->c1), "DONE 2\n");
}


/* A hop the transfer layer refused (a redirect to a local address): the
 * next endpoint, and with none left a 503 that says why. */
static void
test_redirect_refused(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg;
    endpoints_state_t       st;
    job_t                  *j;

    reg = registry(e, FAKE_REG);

    j = new_job(e, &plain_ops, FAKE_REG, NULL);
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);

    fake_xfer_one()->hop_refused = "redirect to secret.test (a loopback "
                                   "address) refused";
    reply_rc(CURLE_ABORTED_BY_CALLBACK);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP2 PATH);
    fake_xfer_one()->hop_refused = "redirect to secret.test (a loopback "
                                   "address) refused";
    reply_rc(CURLE_ABORTED_BY_CALLBACK);

    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 503 UNAVAILABLE upstream registry "
                        "unavailable: redirect to secret.test (a loopback "
                        "address) refused\n");

    /* the endpoints answered (a redirect): no failure counted */
    endpoints_state(e->jobs->eps, reg, 0, &st);
    assert_int_equal(st.fails, 0);
    assert_true(stats_registry(reg)->endpoints[0].failures == 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_redirect_target_throttles,
                                        setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_redirect_refused, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_names, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_waiters, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_idle_keeps, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_detached, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_admit_waiters, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_admit_jobs, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_no_waiters_left, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_gone_many_jobs, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_dirty, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_issue, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_issue_fails, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_failover, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_failover_refused, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_transfer_failed, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_errors, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_message_long, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_auth_failures, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_auth_shared, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_auth_job_gone, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_check_request, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_destroy, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_order, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_endpoints_all_down, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_endpoints_answered_locally,
                                        setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_endpoints_throttled, setup,
                                        fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
