/*
 * Jobs: the in-flight table, waiters, and the upstream request cycle
 * shared by every kind (see job.h).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "errors.h"
#include "job.h"
#include "job_auth.h"
#include "log.h"
#include "stats.h"
#include "url.h"

#define JOBS_BUCKETS  1024

static void job_xfer_done(xfer_t *x, CURLcode rc, void *data);
static int job_xfer_headers(xfer_t *x, void *data);
static int job_xfer_body(xfer_t *x, const char *p, size_t n, void *data);
static void job_fail_upstream(job_t *j, const xfer_resp_t *r);
static void job_issue_peer(job_t *j);
static void job_peer_forget(job_t *j);
static void job_peer_done(job_t *j, xfer_t *x, CURLcode rc,
    const xfer_resp_t *r);

static const xfer_handler_t  job_xfer_handler = {
    job_xfer_headers,
    job_xfer_body,
    job_xfer_done
};


jobs_t *
jobs_create(const oci_config_t *cf, xfer_multi_t *xm, token_cache_t *tokens)
{
    jobs_t  *jobs;
    size_t   i;

    jobs = calloc(1, sizeof(jobs_t));
    if (jobs == NULL) {
        log_error("out of memory");
        return NULL;
    }

    jobs->buckets = calloc(JOBS_BUCKETS, sizeof(queue_t));
    if (jobs->buckets == NULL) {
        log_error("out of memory");
        free(jobs);
        return NULL;
    }

    jobs->nbuckets = JOBS_BUCKETS;

    for (i = 0; i < jobs->nbuckets; i++) {
        queue_init(&jobs->buckets[i]);
    }

    jobs->cf = cf;
    jobs->xm = xm;
    jobs->tokens = tokens;
    queue_init(&jobs->all);
    queue_init(&jobs->dirty);

    jobs->eps = endpoints_create(cf, xm);
    if (jobs->eps == NULL) {
        jobs_destroy(jobs);
        return NULL;
    }

    jobs->negative = negative_create(NEGATIVE_CAP, endpoints_monotonic);
    if (jobs->negative == NULL) {
        jobs_destroy(jobs);
        return NULL;
    }

    if (cf->n_cluster_peers > 0
        && oci_ring_build(&jobs->ring, cf->cluster_peers,
                          cf->n_cluster_peers)
           != OCI_OK)
    {
        log_error("out of memory");
        jobs_destroy(jobs);
        return NULL;
    }

    return jobs;
}


void
jobs_destroy(jobs_t *jobs)
{
    queue_t  *q;

    if (jobs == NULL) {
        return;
    }

    while (!queue_empty(&jobs->all)) {
        q = queue_head(&jobs->all);
        job_finish(queue_data(q, job_t, link));
    }

    endpoints_destroy(jobs->eps);
    negative_destroy(jobs->negative);
    oci_ring_free(&jobs->ring);
    free(jobs->buckets);
    free(jobs);
}


void
jobs_set_clock(jobs_t *jobs, endpoints_clock_pt now)
{
    endpoints_set_clock(jobs->eps, now);
    negative_set_clock(jobs->negative, now);
}


static queue_t *
jobs_bucket(jobs_t *jobs, const char *key)
{
    uint32_t  h;

    /* FNV-1a */
    h = 2166136261u;

    while (*key != '\0') {
        h ^= (unsigned char) *key++;
        h *= 16777619u;
    }

    return &jobs->buckets[h % jobs->nbuckets];
}


job_t *
job_find(jobs_t *jobs, const char *key)
{
    queue_t  *b, *q;
    job_t    *j;

    b = jobs_bucket(jobs, key);

    for (q = queue_head(b); q != queue_sentinel(b); q = queue_next(q)) {
        j = queue_data(q, job_t, hash_link);

        if (strcmp(j->key, key) == 0) {
            return j;
        }
    }

    return NULL;
}


void
job_target(job_t *j, const oci_registry_t *reg, const char *name,
    const char *ref)
{
    j->registry = reg;
    snprintf(j->name, sizeof(j->name), "%s", name);
    snprintf(j->scope, sizeof(j->scope), "repository:%s:pull", name);
    snprintf(j->label, sizeof(j->label), "%s %s/%s%s%s", j->ops->kind,
             reg->name, name,
             ref == NULL ? "" : (strchr(ref, ':') != NULL ? "@" : ":"),
             ref == NULL ? "" : ref);
}


job_t *
job_create(jobs_t *jobs, const job_ops_t *ops, size_t size,
    const oci_registry_t *reg, const char *name, const char *ref,
    const char *key)
{
    job_t  *j;

    j = calloc(1, size);
    if (j == NULL) {
        log_error("out of memory for a %s job", ops->kind);
        return NULL;
    }

    if (key != NULL) {
        j->key = strdup(key);
        if (j->key == NULL) {
            log_error("out of memory for a %s job", ops->kind);
            free(j);
            return NULL;
        }
    }

    j->ops = ops;
    j->jobs = jobs;
    job_target(j, reg, name, ref);

    j->prio = XFER_PRIO_CLIENT;
    j->started_ms = endpoints_monotonic();

    jobs->njobs++;

    queue_init(&j->hash_link);
    queue_init(&j->dirty_link);
    queue_init(&j->waiters);
    token_waiter_init(&j->token_waiter, job_token_done, j);

    queue_insert_tail(&jobs->all, &j->link);

    if (j->key != NULL) {
        queue_insert_tail(jobs_bucket(jobs, j->key), &j->hash_link);
    }

    return j;
}


waiter_t *
job_add_waiter(job_t *j, conn_t *c, uint32_t id)
{
    waiter_t  *w;

    /* the kind's bytes right after the waiter, aligned as the waiter */
    w = calloc(1, sizeof(waiter_t) + j->ops->waiter_size);
    if (w == NULL) {
        log_error("out of memory for a waiter");
        return NULL;
    }

    w->data = j->ops->waiter_size > 0 ? (void *) (w + 1) : NULL;
    w->job = j;
    w->conn = c;
    w->id = id;
    w->registry = j->registry;
    snprintf(w->name, sizeof(w->name), "%s", j->name);
    w->heard = j->jobs->ticks;
    queue_insert_tail(&j->waiters, &w->job_link);
    queue_insert_tail(conn_waiters(c), &w->conn_link);

    j->jobs->nwaiters++;
    (*conn_waiting(c))++;

    return w;
}


static void
waiter_free(waiter_t *w)
{
    w->job->jobs->nwaiters--;
    (*conn_waiting(w->conn))--;

    queue_remove(&w->job_link);
    queue_remove(&w->conn_link);
    free(w);
}


/* A waiter leaves (CANCEL, worker gone).  A job nobody waits for is
 * dropped here (see job.h), unless it goes on. */
static void
waiter_leave(waiter_t *w)
{
    job_t   *j = w->job;
    jobs_t  *jobs = j->jobs;

    waiter_free(w);

    if (!queue_empty(&j->waiters)) {
        return;
    }

    if (j->detached) {
        job_demote(j);
        return;
    }

    if (j->ops->idle != NULL && j->ops->idle(j)) {
        log_debug("%s: every waiter left, it goes on", j->label);
        jobs->finished_unwaited++;
        return;
    }

    log_debug("%s: every waiter left, dropped", j->label);
    jobs->dropped++;
    job_finish(j);
}


/* BUSY to (c, id): the bound cap (of the given value) is reached. */
static int
jobs_busy(jobs_t *jobs, conn_t *c, uint32_t id, stats_cap_t cap,
    long value)
{
    oci_msg_t  m;
    char       message[160];

    jobs->refused[cap]++;

    snprintf(message, sizeof(message),
             "too many requests for the mirror's fetcher: fetcher.%s (%ld) "
             "reached, retry later", stats_cap_name(cap), value);

    log_debug("worker #%u: request %u refused: fetcher.%s (%ld) reached",
              conn_number(c), (unsigned) id, stats_cap_name(cap), value);

    oci_msg_busy(&m, id, JOBS_RETRY_AFTER, message);
    conn_send(c, &m);

    return -1;
}


int
jobs_admit(jobs_t *jobs, conn_t *c, uint32_t id)
{
    const oci_config_t  *cf = jobs->cf;

    if (*conn_waiting(c) >= (size_t) cf->max_worker_jobs) {
        return jobs_busy(jobs, c, id, STATS_CAP_WORKER_JOBS,
                         cf->max_worker_jobs);
    }

    if (jobs->nwaiters >= (size_t) cf->max_waiters) {
        return jobs_busy(jobs, c, id, STATS_CAP_WAITERS, cf->max_waiters);
    }

    return 0;
}


int
jobs_admit_job(jobs_t *jobs, conn_t *c, uint32_t id)
{
    const oci_config_t  *cf = jobs->cf;

    if (jobs->njobs >= (size_t) cf->max_jobs) {
        return jobs_busy(jobs, c, id, STATS_CAP_JOBS, cf->max_jobs);
    }

    if (xfer_queued(jobs->xm, XFER_PRIO_CLIENT) >= (size_t) cf->max_queued) {
        return jobs_busy(jobs, c, id, STATS_CAP_QUEUED, cf->max_queued);
    }

    return 0;
}


void
job_finish(job_t *j)
{
    queue_t  *q;

    if (j->xfer != NULL) {
        xfer_abort(j->xfer);
        j->xfer = NULL;
    }

    token_waiter_cancel(&j->token_waiter);

    while (!queue_empty(&j->waiters)) {
        q = queue_head(&j->waiters);
        waiter_free(queue_data(q, waiter_t, job_link));
    }

    if (j->ops->cleanup != NULL) {
        j->ops->cleanup(j);
    }

    queue_remove(&j->link);
    queue_remove(&j->hash_link);
    queue_remove(&j->dirty_link);

    j->jobs->njobs--;

    free(j->order);
    free(j->peer_url);
    free(j->key);
    free(j);
}


void
job_mark_dirty(job_t *j)
{
    if (!queue_linked(&j->dirty_link)) {
        queue_insert_tail(&j->jobs->dirty, &j->dirty_link);
    }
}


void
jobs_flush(jobs_t *jobs)
{
    queue_t  *q;
    job_t    *j;

    while (!queue_empty(&jobs->dirty)) {
        q = queue_head(&jobs->dirty);
        queue_remove(q);
        j = queue_data(q, job_t, dirty_link);

        if (j->ops->flush != NULL) {
            j->ops->flush(j);
        }
    }
}


int
waiter_send(waiter_t *w, oci_msg_t *m)
{
    m->id = w->id;
    w->heard = w->job->jobs->ticks;
    return conn_send(w->conn, m);
}


void
jobs_tick(jobs_t *jobs)
{
    queue_t    *q, *wq;
    job_t      *j;
    waiter_t   *w;
    oci_msg_t   m;

    jobs->ticks++;

    endpoints_tick(jobs->eps);

    for (q = queue_head(&jobs->all);
         q != queue_sentinel(&jobs->all);
         q = queue_next(q))
    {
        j = queue_data(q, job_t, link);

        for (wq = queue_head(&j->waiters);
             wq != queue_sentinel(&j->waiters);
             wq = queue_next(wq))
        {
            w = queue_data(wq, waiter_t, job_link);

            if (jobs->ticks - w->heard >= JOBS_WAIT_TICKS) {
                oci_msg_init(&m, OCI_MSG_WAIT, 0);
                waiter_send(w, &m);
            }
        }
    }
}


void
job_send_all(job_t *j, oci_msg_t *m)
{
    queue_t   *q;

    for (q = queue_head(&j->waiters);
         q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        waiter_send(queue_data(q, waiter_t, job_link), m);
    }
}


void
job_fail(job_t *j, int status, oci_errcode_t code, const char *message)
{
    oci_msg_t  m;

    log_debug("%s: FAIL %d %s %s", j->label, status, oci_err_code(code),
              message);

    /* a 404 is the client's mistake, not the upstream's */
    if (status != 404) {
        errors_add(j->label, status, message);
    }

    oci_msg_fail(&m, 0, status, code, message);
    job_send_all(j, &m);
    job_finish(j);
}


/*
 * A 401, 403 or 404, or an unavailable registry, is the answer for the
 * registry and name the job asked through, not for the thing: a blob is
 * the same wherever it is, so its waiters may have asked through other
 * repositories that do have it (or that they may read).  Failing them all
 * would let anyone who asks for a public digest through a repository
 * without it break every concurrent pull of that digest.  So only the
 * waiters that asked the way the job did get FAIL, and the job starts
 * over, temp file and hash reset by job_issue(), for the next waiter's
 * way.  Once can_retry() says no (a blob's waiters already stream the
 * temp file), there is no starting over: FAIL to all, as before.
 */
void
job_refuse(job_t *j, int status, oci_errcode_t code, const char *message)
{
    queue_t   *q, *next;
    waiter_t  *w;
    oci_msg_t  m;

    if (j->ops->retarget == NULL || !j->ops->can_retry(j)) {
        job_fail(j, status, code, message);
        return;
    }

    oci_msg_fail(&m, 0, status, code, message);

    for (q = queue_head(&j->waiters); q != queue_sentinel(&j->waiters);
         q = next)
    {
        next = queue_next(q);
        w = queue_data(q, waiter_t, job_link);

        if (w->registry == j->registry && strcmp(w->name, j->name) == 0) {
            waiter_send(w, &m);
            waiter_free(w);
        }
    }

    if (queue_empty(&j->waiters)) {
        job_fail(j, status, code, message);
        return;
    }

    w = queue_data(queue_head(&j->waiters), waiter_t, job_link);

    log_info("%s: FAIL %d %s for its waiters, trying %s/%s for the others",
             j->label, status, oci_err_code(code), w->registry->name,
             w->name);

    j->ops->retarget(j, w->registry, w->name);
    j->ordered = 0;
    j->auth_tried = 0;
    job_issue(j);
}


int
job_abort(job_t *j, int status, oci_errcode_t code, const char *message)
{
    j->aborted = 1;
    j->abort_status = status;
    j->abort_code = code;
    snprintf(j->abort_message, sizeof(j->abort_message), "%s", message);

    return -1;
}


int
job_restart(job_t *j)
{
    j->restart = 1;

    return -1;
}


void
job_promote(job_t *j)
{
    if (j->prio != XFER_PRIO_PREFETCH) {
        return;
    }

    log_debug("%s: a client joined the prefetch", j->label);

    j->prio = XFER_PRIO_CLIENT;

    if (j->xfer != NULL) {
        xfer_set_prio(j->xfer, XFER_PRIO_CLIENT);
    }

    if (j->ops->promote != NULL) {
        j->ops->promote(j);
    }
}


void
job_demote(job_t *j)
{
    if (j->prio != XFER_PRIO_CLIENT) {
        return;
    }

    j->prio = XFER_PRIO_PREFETCH;

    if (j->xfer != NULL) {
        xfer_set_prio(j->xfer, XFER_PRIO_PREFETCH);
    }

    if (j->ops->promote != NULL) {
        j->ops->promote(j);
    }
}


const char *
job_unavailable_message(job_t *j)
{
    static char  message[256];

    if (j->fail_reason == NULL) {
        return "upstream registry unavailable";
    }

    snprintf(message, sizeof(message), "upstream registry unavailable: %s",
             j->fail_reason);

    return message;
}


/* Every endpoint failed, none is usable, or the kind cannot move on. */
static void
job_unavailable(job_t *j, const char *why)
{
    if (j->ops->unavailable != NULL) {
        log_debug("%s: no endpoint left (%s)", j->label, why);
        j->ops->unavailable(j);
        return;
    }

    log_error("%s: upstream unavailable (%s)", j->label, why);
    job_refuse(j, 503, OCI_ERR_UNAVAILABLE, job_unavailable_message(j));
}


/* A 429 with no other endpoint to ask, or every usable one throttled:
 * what the kind has stored, else FAIL 429. */
static void
job_throttled(job_t *j, const xfer_resp_t *r)
{
    if (j->ops->throttled != NULL && j->ops->throttled(j)) {
        return;
    }

    if (r != NULL) {
        job_fail_upstream(j, r);
        return;
    }

    job_fail(j, 429, OCI_ERR_TOOMANYREQUESTS,
             "upstream rate limit reached, retry later");
}


/* The usable endpoints of j->registry, best first, into j->order, and
 * j->endpoint the first.  0, or -1 if none is usable (the job has ended:
 * nothing is asked of an upstream known to be down or throttled). */
static int
job_order(job_t *j)
{
    const oci_registry_t  *reg = j->registry;
    size_t                *order;
    int                    throttled;

    order = realloc(j->order, (reg->n_endpoints + 1) * sizeof(size_t));
    if (order == NULL) {
        log_error("%s: out of memory", j->label);
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return -1;
    }

    j->order = order;
    j->n_order = endpoints_order(j->jobs->eps, reg, order, &throttled);
    j->order_pos = 0;
    j->ordered = 1;

    if (j->n_order > 0) {
        j->endpoint = order[0];
        return 0;
    }

    if (throttled) {
        log_warn("%s: every usable endpoint of \"%s\" is throttled (429), "
                 "not asking", j->label, reg->name);
        job_throttled(j, NULL);
        return -1;
    }

    log_warn("%s: every endpoint of \"%s\" is backing off, not asking",
             j->label, reg->name);
    job_unavailable(j, "every endpoint is backing off");

    return -1;
}


int
job_url(const job_t *j, char *url, size_t cap)
{
    const char  *ep;
    size_t       eplen;

    ep = j->registry->endpoints[j->endpoint];
    eplen = strlen(ep);

    while (eplen > 0 && ep[eplen - 1] == '/') {
        eplen--;
    }

    if (eplen + strlen(j->path) >= cap) {
        log_error("%s: URL too long", j->label);
        return -1;
    }

    snprintf(url, cap, "%.*s%s", (int) eplen, ep, j->path);

    return 0;
}


int
job_from_peer(job_t *j, const char *url)
{
    j->peer_url = strdup(url);
    if (j->peer_url == NULL) {
        log_error("%s: out of memory", j->label);
        return -1;
    }

    j->peer_ranged = j->ranged;
    j->ranged = 0;

    return 0;
}


/* The request to the peer: the cluster's node-to-node traffic, so none
 * of the registry's settings (credentials, proxy, bandwidth share,
 * counters) apply. */
static void
job_issue_peer(job_t *j)
{
    xfer_req_t  req;

    memset(&req, 0, sizeof(req));
    req.url = j->peer_url;
    req.prio = j->prio;
    req.http1 = 1;
    req.direct = 1;
    req.unshaped = 1;
    req.header = OCI_CLUSTER_REPLICA_HEADER ": 1";

    j->aborted = 0;
    j->restart = 0;

    j->xfer = xfer_start(j->jobs->xm, &req, &job_xfer_handler, j);
    if (j->xfer == NULL) {
        job_peer_failed(j, "cannot start a transfer");
    }
}


/* The peer is left: the request is the registry's again. */
static void
job_peer_forget(job_t *j)
{
    free(j->peer_url);
    j->peer_url = NULL;
    j->ranged = j->peer_ranged;
}


void
job_peer_failed(job_t *j, const char *why)
{
    int  retry;

    retry = j->ops->can_retry(j);
    job_peer_forget(j);

    if (!retry) {
        log_warn("%s: the cluster's copy failed (%s) after clients began "
                 "to read it", j->label, why);
        job_fail(j, 502, OCI_ERR_UPSTREAM, "the cluster's copy failed");
        return;
    }

    log_info("%s: the cluster's copy failed (%s), asking the upstream",
             j->label, why);

    stats_registry(j->registry)->cluster_replica_fallbacks++;
    job_issue(j);
}


void
job_issue(job_t *j)
{
    char         url[OCI_PATH_MAX + JOB_PATH_MAX];
    xfer_req_t   req;

    if (j->ops->reset(j) != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "cannot reset the download");
        return;
    }

    if (j->peer_url != NULL) {
        job_issue_peer(j);
        return;
    }

    if (!j->ordered && job_order(j) != 0) {
        return;
    }

    if (job_url(j, url, sizeof(url)) != 0) {
        job_fail(j, 502, OCI_ERR_UPSTREAM, "URL too long");
        return;
    }

    memset(&req, 0, sizeof(req));
    req.url = url;
    req.head = j->head;
    req.accept = j->accept;
    req.prio = j->prio;
    req.ranged = j->ranged;
    req.range_first = j->range_first;
    req.range_last = j->range_last;

    job_auth_request(j, &req, 1);
    j->aborted = 0;
    j->restart = 0;

    j->xfer = xfer_start(j->jobs->xm, &req, &job_xfer_handler, j);
    if (j->xfer == NULL) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "cannot start a transfer");
        return;
    }

    /* a refusal answered from memory goes to no endpoint */
    if (!xfer_answered(j->xfer)) {
        endpoints_sent(j->jobs->eps, j->registry, j->endpoint);
    }
}


static int
job_xfer_headers(xfer_t *x, void *data)
{
    job_t  *j = data;

    return j->ops->headers(j, xfer_response(x));
}


static int
job_xfer_body(xfer_t *x, const char *p, size_t n, void *data)
{
    job_t  *j = data;

    return j->ops->body(j, p, n);
}


/* The endpoint failed to answer usefully: the request goes to the next
 * endpoint of the job's order that is still usable, if the kind can
 * start over.  1 if it did, 0 if there is none. */
int
job_failover(job_t *j, const char *why)
{
    const oci_registry_t  *reg = j->registry;
    size_t                 pos;
    char                   text[ERRORS_TEXT_MAX];

    for (pos = j->order_pos + 1; pos < j->n_order; pos++) {
        if (endpoints_usable(j->jobs->eps, reg, j->order[pos])) {
            break;
        }
    }

    if (pos >= j->n_order || !j->ops->can_retry(j)) {
        return 0;
    }

    log_warn("%s: endpoint %s failed (%s), trying %s", j->label,
             reg->endpoints[j->endpoint], why,
             reg->endpoints[j->order[pos]]);

    snprintf(text, sizeof(text), "endpoint %s failed (%s), trying %s",
             reg->endpoints[j->endpoint], why, reg->endpoints[j->order[pos]]);
    errors_add(j->label, 0, text);

    stats_registry(reg)->failovers++;
    j->order_pos = pos;
    j->endpoint = j->order[pos];
    job_issue(j);

    return 1;
}


static void
job_next_endpoint(job_t *j, const char *why)
{
    if (!job_failover(j, why)) {
        job_unavailable(j, why);
    }
}


/* An upstream error answer becomes FAIL, with the upstream's own error
 * code when its JSON names one we know. */
static void
job_fail_upstream(job_t *j, const xfer_resp_t *r)
{
    oci_errcode_t   code, up;
    json_t         *root, *errs, *e0, *v;
    char            message[160];
    const char     *s;

    switch (r->status) {
    case 404:
        code = j->ops->not_found;
        break;
    case 403:
        code = OCI_ERR_DENIED;
        break;
    case 429:
        code = OCI_ERR_TOOMANYREQUESTS;
        break;
    default:
        code = OCI_ERR_UPSTREAM;
        break;
    }

    snprintf(message, sizeof(message), "upstream answered %ld", r->status);

    root = NULL;
    if (r->body_len > 0) {
        root = json_loadb(r->body, r->body_len, 0, NULL);
    }

    errs = root != NULL ? json_object_get(root, "errors") : NULL;
    e0 = json_is_array(errs) ? json_array_get(errs, 0) : NULL;

    if (json_is_object(e0)) {
        v = json_object_get(e0, "code");
        s = json_string_value(v);

        if (s != NULL && oci_err_parse(s, strlen(s), &up) == OCI_OK) {
            code = up;
        }

        v = json_object_get(e0, "message");
        s = json_string_value(v);

        if (s != NULL && s[0] != '\0') {
            snprintf(message, sizeof(message), "%s", s);
        }
    }

    json_decref(root);

    if (r->status == 404) {
        log_info("%s: not found upstream (%s)", j->label,
                 oci_err_code(code));

        if (j->negative_ref != NULL) {
            negative_add(j->jobs->negative, j->registry, j->name,
                         j->negative_ref, code);
        }

    } else {
        log_warn("%s: upstream answered %ld (%s)", j->label, r->status,
                 oci_err_code(code));
    }

    /* these say no to this registry and name, not to the thing */
    if (r->status == 403 || r->status == 404) {
        job_refuse(j, oci_err_status(code), code, message);
        return;
    }

    job_fail(j, oci_err_status(code), code, message);
}


void
job_hold_host(job_t *j, const char *url, const xfer_resp_t *r)
{
    char  origin[OCI_HOST_MAX + 32];
    long  secs;

    secs = r->retry_after >= 0 ? r->retry_after : ENDPOINTS_RETRY_AFTER;

    if (secs > j->registry->max_retry_after) {
        secs = j->registry->max_retry_after;
    }

    xfer_hold_host(j->jobs->xm, url, secs);
    stats_registry(j->registry)->hosts_throttled++;

    if (url_origin(url, origin, sizeof(origin)) != 0) {
        snprintf(origin, sizeof(origin), "(unparsable)");
    }

    log_warn("%s: redirect target %s answered 429, not asked for %lds",
             j->label, origin, secs);
}


static void
job_xfer_done(xfer_t *x, CURLcode rc, void *data)
{
    job_t              *j = data;
    const xfer_resp_t  *r;
    char                why[CURL_ERROR_SIZE + 32];
    int                 foreign;

    j->xfer = NULL;
    r = xfer_response(x);

    if (j->peer_url != NULL) {
        job_peer_done(j, x, rc, r);
        return;
    }

    foreign = r->redirected && !job_from_endpoint(j, xfer_effective_url(x));

    /* the endpoint's health, unless the answer came from memory and no
     * endpoint was asked: a reset counts even after a status line; what
     * a redirect target answered (or a refused hop) is not the endpoint's
     * doing, its redirect was an answer */
    if (!xfer_answered(x)) {
        if (foreign || xfer_refused(x) != NULL || xfer_held(x)) {
            endpoints_redirected(j->jobs->eps, j->registry, j->endpoint);

        } else if ((rc != CURLE_OK && xfer_unreachable(rc))
                   || (rc == CURLE_OK && r->status == 0))
        {
            endpoints_failed(j->jobs->eps, j->registry, j->endpoint);

        } else if (r->status > 0) {
            endpoints_answered(j->jobs->eps, j->registry, j->endpoint, r);
        }
    }

    if (j->aborted) {
        job_fail(j, j->abort_status, j->abort_code, j->abort_message);
        return;
    }

    if (j->restart) {
        job_issue(j);
        return;
    }

    j->fail_reason = rc != CURLE_OK ? xfer_failure_reason(rc) : NULL;

    /* a hop to a host that throttles us: not asked again meanwhile */
    if (rc != CURLE_OK && xfer_held(x)) {
        if (!job_failover(j, "redirect target throttled (429)")) {
            job_throttled(j, NULL);
        }

        return;
    }

    if (rc != CURLE_OK && xfer_refused(x) != NULL) {
        /* the transfer goes: keep the reason for the client's message */
        snprintf(j->refused, sizeof(j->refused), "%s", xfer_refused(x));
        j->fail_reason = j->refused;
        job_next_endpoint(j, j->refused);
        return;
    }

    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", xfer_strerror(x, rc));

        if (xfer_unreachable(rc)) {
            job_next_endpoint(j, why);
            return;
        }

        log_error("%s: transfer failed: %s", j->label, why);
        job_fail(j, 502, OCI_ERR_UPSTREAM, "upstream transfer failed");
        return;
    }

    if (r->status >= 200 && r->status < 300) {
        j->ops->done(j, r);
        return;
    }

    if (r->status >= 500 || r->status == 0) {
        snprintf(why, sizeof(why), "answered %ld", r->status);
        job_next_endpoint(j, why);
        return;
    }

    if (r->status == 401) {
        job_auth(j, r, xfer_effective_url(x));
        return;
    }

    /* a redirect target (a CDN) throttles: that host waits, the
     * endpoint does not */
    if (r->status == 429 && foreign) {
        job_hold_host(j, xfer_effective_url(x), r);

        if (!job_failover(j, "redirect target answered 429")) {
            job_throttled(j, r);
        }

        return;
    }

    /* the endpoint is throttled now (endpoints_answered()) */
    if (r->status == 429) {
        if (!job_failover(j, "answered 429")) {
            job_throttled(j, r);
        }

        return;
    }

    /* an empty blob has no byte 0 to range over */
    if (r->status == 416 && j->ranged) {
        log_debug("%s: range not satisfiable, plain GET", j->label);
        j->ranged = 0;
        job_issue(j);
        return;
    }

    if (j->ops->rejected != NULL && j->ops->rejected(j, r)) {
        return;
    }

    job_fail_upstream(j, r);
}


/* The peer's transfer ended: a complete 2xx is the kind's, as from an
 * endpoint.  No answer, a cut, a 5xx (nginx's 502 with every other node
 * down), a 429, a 409 (a node that is not the owner refuses a copy it
 * does not hold: the module) or an answer the kind refused go upstream;
 * another 4xx is the owner's answer from the upstream (a 404: no such
 * blob), not asked of it again. */
static void
job_peer_done(job_t *j, xfer_t *x, CURLcode rc, const xfer_resp_t *r)
{
    char  why[CURL_ERROR_SIZE + 32];

    if (j->aborted) {
        job_peer_failed(j, j->abort_message);
        return;
    }

    if (j->restart) {
        job_issue(j);
        return;
    }

    if (rc == CURLE_OK && r->status >= 200 && r->status < 300) {
        j->ops->done(j, r);
        return;
    }

    if (rc == CURLE_OK && r->status >= 400 && r->status < 500
        && r->status != 409 && r->status != 429)
    {
        log_info("%s: the cluster's copy was answered %ld", j->label,
                 r->status);
        job_peer_forget(j);
        job_fail_upstream(j, r);
        return;
    }

    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", xfer_strerror(x, rc));

    } else {
        snprintf(why, sizeof(why), "answered %ld", r->status);
    }

    job_peer_failed(j, why);
}


const oci_registry_t *
job_check_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const oci_registry_t  *reg;

    reg = oci_config_registry(jobs->cf, m->registry, strlen(m->registry));
    if (reg == NULL || reg->n_endpoints == 0) {
        conn_send_fail(c, m->id, 403, OCI_ERR_DENIED,
                   "registry not configured");
        return NULL;
    }

    if (!oci_name_valid(m->name, strlen(m->name))) {
        conn_send_fail(c, m->id, 400, OCI_ERR_NAME_INVALID,
                   "invalid repository name");
        return NULL;
    }

    return reg;
}


/* The waiter of c's request id, or NULL. */
static waiter_t *
jobs_waiter(conn_t *c, uint32_t id)
{
    queue_t   *q, *h;
    waiter_t  *w;

    h = conn_waiters(c);

    for (q = queue_head(h); q != queue_sentinel(h); q = queue_next(q)) {
        w = queue_data(q, waiter_t, conn_link);

        if (w->id == id) {
            return w;
        }
    }

    return NULL;
}


void
jobs_cancel(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    waiter_t  *w;

    w = jobs_waiter(c, m->id);

    if (w != NULL) {
        log_debug("worker #%u: request %u cancelled", conn_number(c),
                  (unsigned) m->id);
        waiter_leave(w);
    }
}


void
jobs_detach(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    waiter_t  *w;

    w = jobs_waiter(c, m->id);

    if (w != NULL) {
        log_debug("worker #%u: request %u detached", conn_number(c),
                  (unsigned) m->id);
        w->job->detached = 1;
        waiter_leave(w);
    }
}


void
jobs_census(jobs_t *jobs, stats_census_t *census)
{
    queue_t  *q, *wq;
    job_t    *j;
    size_t    i;

    for (q = queue_head(&jobs->all);
         q != queue_sentinel(&jobs->all);
         q = queue_next(q))
    {
        j = queue_data(q, job_t, link);

        /* a kind is a string constant of its job_ops_t, told apart by
         * content */
        for (i = 0; i < census->n; i++) {
            if (strcmp(census->kind[i], j->ops->kind) == 0) {
                break;
            }
        }

        if (i == census->n) {
            if (census->n == STATS_KINDS_MAX) {
                continue;
            }

            census->kind[census->n++] = j->ops->kind;
        }

        census->jobs[i]++;

        for (wq = queue_head(&j->waiters);
             wq != queue_sentinel(&j->waiters);
             wq = queue_next(wq))
        {
            census->waiters++;
        }
    }

    census->queued = xfer_queued(jobs->xm, XFER_PRIO_CLIENT);
    memcpy(census->refused, jobs->refused, sizeof(census->refused));
    census->dropped = jobs->dropped;
    census->finished_unwaited = jobs->finished_unwaited;
}


size_t
jobs_view(jobs_t *jobs, job_view_t *v, size_t max, size_t *all)
{
    queue_t  *q, *wq;
    job_t    *j;
    size_t    n;

    n = 0;
    *all = 0;

    for (q = queue_head(&jobs->all);
         q != queue_sentinel(&jobs->all);
         q = queue_next(q))
    {
        j = queue_data(q, job_t, link);

        if (j->ops->view == NULL) {
            continue;
        }

        (*all)++;

        if (n == max) {
            continue;
        }

        memset(&v[n], 0, sizeof(job_view_t));
        v[n].kind = j->ops->kind;
        v[n].registry = j->registry;
        v[n].name = j->name;
        v[n].started_ms = j->started_ms;
        v[n].total = -1;
        v[n].prefetch = j->prio == XFER_PRIO_PREFETCH;

        for (wq = queue_head(&j->waiters);
             wq != queue_sentinel(&j->waiters);
             wq = queue_next(wq))
        {
            v[n].waiters++;
        }

        j->ops->view(j, &v[n]);
        n++;
    }

    return n;
}


void
jobs_on_gone(conn_t *c, void *data)
{
    queue_t  *h;

    h = conn_waiters(c);

    /* one at a time from the head: leaving may end a job, which frees its
     * other waiters too */
    while (!queue_empty(h)) {
        waiter_leave(queue_data(queue_head(h), waiter_t, conn_link));
    }
}
