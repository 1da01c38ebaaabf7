/*
 * Jobs: the upstream work the workers ask for, and who waits for it.
 *
 * A job (of a kind: a blob, a manifest, ...) is created by the first
 * request for a
 * thing and found again by its key in the in-flight table, so one upstream
 * transfer serves every worker and client that asks meanwhile.  Each
 * request that waits on a job is a waiter_t, owned by the job and linked
 * into its worker connection's list too, so that a CANCEL or a closed
 * connection can drop it.
 *
 * Bounded work.  A job that nobody waits for any more is dropped at
 * once, queued or running (its transfer removed, its temp file unlinked:
 * jobs_t.dropped), unless the kind's idle hook keeps it (a blob download
 * past fetcher.finish_fraction of its bytes finishes into the store, at
 * prefetch priority) or it is detached (the fetcher started it itself,
 * prefetch or warm, or a client that had what it needed asked for the
 * rest: DETACH), which goes on at prefetch priority.  So a client that
 * asks for random cold digests and hangs up leaves nothing behind.  And
 * a request is refused at once with BUSY (503 TOOMANYREQUESTS and
 * Retry-After for the client), counted by cap, when its worker
 * connection has max_worker_jobs requests waiting or all have
 * max_waiters (jobs_admit(), before any kind runs), or when it would
 * start a job while max_jobs are in flight or max_queued client
 * transfers wait for a slot (jobs_admit_job(), where a kind would create
 * one; prefetch and warm have bounds of their own).  A temp file exists
 * only once the upstream answered 2xx, so what a job holds before then is
 * memory: descriptors are bounded by the running transfers.
 *
 * The common part here runs the upstream request: endpoints in the order
 * endpoints.h gives when the job first sends it (failing over on
 * connection errors, timeouts, 5xx, 429 and redirects the transfer layer
 * refused, failing at once when no endpoint is usable; a 429 of a
 * redirect target holds back that host, not the endpoint), the Bearer
 * token
 * flow on a 401, a plain GET again when a ranged one was not satisfiable
 * (416), and the mapping of upstream errors to FAIL.
 *
 * A job runs at client priority, or at prefetch priority when the fetcher
 * started it on its own (no waiters); the first client that joins a
 * prefetch job promotes it and every transfer it has.  The kinds supply a
 * job_ops_t for what is specific:
 * what the body becomes, and what the answer is.
 *
 * Ownership: jobs_t owns every job; a job owns its waiters, its transfer
 * (xfer_t, until the transfer's done callback) and its token waiter.
 *
 * This layer names no kind: the kinds (blob.h, manifest.h, tags.h,
 * referrers.h) plug in through job_ops_t, and the verbs reach them
 * through the table of dispatch.c, above them all.
 * job_finish() releases all of it and frees the job; nothing may touch the
 * job afterwards.
 */

#ifndef FETCHER_JOB_H
#define FETCHER_JOB_H

#include "oci.h"
#include "oci_cluster.h"
#include "oci_config.h"
#include "oci_error.h"
#include "oci_ipc.h"
#include "cache.h"
#include "commit.h"
#include "endpoints.h"
#include "listcache.h"
#include "negative.h"
#include "queue.h"
#include "server.h"
#include "stats.h"
#include "token.h"
#include "xfer.h"

#define JOB_KEY_MAX   (OCI_HOST_MAX + OCI_NAME_MAX + OCI_REF_MAX \
                       + OCI_ACCEPT_MAX + 16)
#define JOB_PATH_MAX  (OCI_NAME_MAX + OCI_REF_MAX + 1024)

typedef struct jobs_s   jobs_t;
typedef struct job_s    job_t;
typedef struct waiter_s waiter_t;

struct jobs_s {
    const oci_config_t    *cf;
    xfer_multi_t          *xm;
    token_cache_t         *tokens;
    endpoints_t           *eps;         /* endpoint health, probes */
    negative_t            *negative;    /* remembered 404s */
    cache_t               *cache;       /* the store's cache manager;
                                           NULL: none (unit tests) */
    listcache_t           *lists;       /* stored lists kept parsed;
                                           NULL: none */
    commit_t              *commit;      /* commits off the loop; NULL:
                                           done in place (unit tests) */
    loop_t                *loop;        /* the fetcher's, for its stall
                                           metrics; NULL: none (unit
                                           tests) */
    queue_t               *buckets;     /* the in-flight table, by key */
    size_t                 nbuckets;
    queue_t                all;         /* every job */
    queue_t                dirty;       /* jobs with progress to report */
    /* a kind stored a document it fetched (a manifest: its media type and
     * bytes): the hook of the layer above, which may act on it
     * (dispatch.c wires prefetch to it); NULL: none */
    void                 (*on_stored)(jobs_t *jobs,
                             const oci_registry_t *reg, const char *name,
                             const char *digest, const char *type,
                             const char *body, size_t len);
    unsigned long          ticks;           /* jobs_tick() calls */

    /* a cluster node's ring (cf->cluster_peers; n == 0: a lone node):
     * prefetch leaves what another node owns to that node */
    oci_ring_t             ring;
    size_t                 hints;       /* prefetch.c's, in flight */
    size_t                 replicas;    /* blob.c's copies, in flight */

    /* the bounds (see above) */
    size_t                 njobs;       /* in all */
    size_t                 nwaiters;    /* of every job */
    unsigned long long     refused[STATS_CAP_N];
    unsigned long long     dropped;
    unsigned long long     finished_unwaited;
};

/* A job as the status page lists it (jobs_view()): what the job layer
 * knows, and what the kind's view op adds. */
typedef struct {
    const char            *kind;        /* job_ops_t.kind */
    const oci_registry_t  *registry;
    const char            *name;        /* the job's, valid until the loop
                                           runs again */
    char                   ref[OCI_REF_MAX + 1];    /* the digest */
    long long              started_ms;  /* endpoints_monotonic() */
    long long              done;        /* bytes in the file */
    long long              total;       /* -1: not known yet */
    unsigned long          waiters;
    int                    prefetch;    /* at prefetch priority */
} job_view_t;

typedef struct {
    const char      *kind;              /* "blob", for the log */
    oci_errcode_t    not_found;         /* the code for an upstream 404 */

    /* the 2xx header block is complete / 2xx body bytes: 0 or -1 after
     * job_abort() to stop the transfer */
    int   (*headers)(job_t *j, const xfer_resp_t *r);
    int   (*body)(job_t *j, const char *p, size_t n);

    /* forget a partial body before the request is sent (again) */
    int   (*reset)(job_t *j);

    /* may the request move to another endpoint after a failure? */
    int   (*can_retry)(job_t *j);

    /* a 2xx answer is complete: answer the waiters, job_finish() */
    void  (*done)(job_t *j, const xfer_resp_t *r);

    /* the request failed for good: every endpoint failed, none was
     * usable, or can_retry said no; NULL: FAIL 503 UNAVAILABLE */
    void  (*unavailable)(job_t *j);

    /* the last waiter left a job a client started: 1 if the kind keeps
     * it going (counted; it may lower j->prio with job_demote()), 0 to
     * have it dropped; NULL: dropped */
    int   (*idle)(job_t *j);

    /* report progress (the job was marked dirty); NULL: nothing */
    void  (*flush)(job_t *j);

    /* release what the kind holds (called by job_finish); NULL: it
     * holds nothing */
    void  (*cleanup)(job_t *j);

    /* j->prio changed (a client joined a prefetch, or the clients left
     * a job that goes on): move the kind's own transfers to it too;
     * NULL: it has none besides j->xfer */
    void  (*promote)(job_t *j);

    /* the upstream answered 429 and no other endpoint is usable, or
     * every usable one is throttled: 1 if the kind answered from the
     * store (and finished the job), 0 to FAIL TOOMANYREQUESTS; NULL: 0 */
    int   (*throttled)(job_t *j);

    /* A kind whose waiters may ask for the same thing through different
     * registries or names (a blob, keyed by digest alone).  The upstream
     * refused j->registry / j->name (401, 403, 404) or was unavailable,
     * before can_retry() turned 0: job.c has sent FAIL to the waiters
     * that asked that way, and others remain.  Set the request up for
     * reg / name (job_target(), j->path, the range); job.c sends it.
     * NULL: every waiter asks the way the job does, FAIL to all. */
    void  (*retarget)(job_t *j, const oci_registry_t *reg, const char *name);

    /* The upstream answered r, an error status that is not 401, 5xx, a
     * 429 the kind did not take (throttled) or a ranged 416: 1 if the
     * kind took the answer over (it changed the request and called
     * job_issue(), or answered the waiters and finished the job), 0 for
     * the usual FAIL.  NULL: 0.  (Referrers: a 404 means "no referrers
     * API here", not "no such thing".) */
    int   (*rejected)(job_t *j, const xfer_resp_t *r);

    /* bytes of the kind's own per waiter (waiter_t.data): what it asked,
     * what it was sent; 0: none */
    size_t   waiter_size;

    /* a download the status page lists: fill v->ref, v->done and
     * v->total; NULL: the kind's jobs are not listed (jobs_view()) */
    void  (*view)(const job_t *j, job_view_t *v);
} job_ops_t;

struct job_s {
    const job_ops_t   *ops;
    jobs_t            *jobs;
    queue_t            link;            /* jobs_t.all */
    queue_t            hash_link;       /* in a bucket, if keyed */
    queue_t            dirty_link;
    queue_t            waiters;         /* waiter_t.job_link */
    char              *key;             /* NULL: not coalesced */

    const oci_registry_t  *registry;
    char               name[OCI_NAME_MAX + 1];
    char               scope[TOKEN_SCOPE_MAX];  /* token cache key */
    char               label[OCI_HOST_MAX + OCI_NAME_MAX + OCI_REF_MAX
                             + 32];             /* "blob reg/name@digest" */

    /* the upstream request */
    int                head;
    char               path[JOB_PATH_MAX];      /* "/v2/..." + query */
    const char        *accept;                  /* NULL: none */
    int                ranged;                  /* Range: bytes=F-L */
    long long          range_first;
    long long          range_last;
    xfer_prio_t        prio;
    int                detached;    /* started by the fetcher itself
                                       (prefetch, warm), or a client
                                       DETACHed: goes on when the
                                       clients leave */
    size_t             endpoint;                /* index being tried */
    size_t            *order;       /* endpoints to try, best first: */
    size_t             n_order;     /* computed by the first job_issue() */
    size_t             order_pos;   /* for j->registry; order[order_pos]
                                       is j->endpoint */
    int                ordered;     /* 0: job_issue() computes order */
    const char        *negative_ref;    /* remember an upstream 404 for
                                           registry / name / this; NULL:
                                           do not */
    int                auth_tried;              /* fetched a token once */
    int                sent_bearer;
    const char        *fail_reason;             /* why the last endpoint
                                                   failed, for the client
                                                   (xfer_failure_reason());
                                                   NULL: nothing to add */
    char               refused[160];            /* a refused hop's reason,
                                                   which fail_reason may
                                                   point to */
    int                sent_basic;              /* the request carried the
                                                   registry's Basic
                                                   credentials */
    xfer_t            *xfer;
    token_waiter_t     token_waiter;

    /* not NULL: the request goes there first, a cluster node's copy of
     * a hot blob (blob.c): this node's own nginx, which passes it to the
     * node that owns it (job_from_peer()); on any failure the job starts
     * over at the registry's endpoints, if it can (can_retry) */
    char              *peer_url;
    int                peer_ranged;             /* j->ranged to restore */

    /* set by job_restart() from a kind's callback */
    int                restart;

    /* set by job_abort() from a kind's callback */
    int                aborted;
    int                abort_status;
    oci_errcode_t      abort_code;
    char               abort_message[128];

    long long          started_ms;      /* endpoints_monotonic() */
};

struct waiter_s {
    queue_t            job_link;
    queue_t            conn_link;
    job_t             *job;
    conn_t            *conn;
    uint32_t           id;
    /* how this waiter asked: a job keyed by the thing alone may serve
     * waiters of any registry and name, but a refusal for one of them is
     * no answer for the others (see job_refuse()) */
    const oci_registry_t  *registry;
    char               name[OCI_NAME_MAX + 1];
    unsigned long      heard;           /* jobs_t.ticks at the last send */
    void              *data;            /* the kind's own, zeroed:
                                           job_ops_t.waiter_size bytes;
                                           NULL if none */
};

/* NULL on failure (logged). */
jobs_t *jobs_create(const oci_config_t *cf, xfer_multi_t *xm,
    token_cache_t *tokens);

/* Abort every job: transfers stop, temp files go, no message is sent. */
void jobs_destroy(jobs_t *jobs);

/* The clock of the endpoints' back-off and of the negative cache
 * (milliseconds); CLOCK_MONOTONIC unless a test sets another. */
void jobs_set_clock(jobs_t *jobs, endpoints_clock_pt now);

/* A worker's CANCEL: its request id left (its job may be dropped). */
void jobs_cancel(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

/* A worker's DETACH: its request id has what it needs and leaves, but
 * wants the job done: it goes on (detached) whoever else leaves. */
void jobs_detach(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

/* The server's callback for a worker gone (data: the jobs): its waiters
 * leave. */
void jobs_on_gone(conn_t *c, void *data);

/* Seconds a client is told to wait (Retry-After) after BUSY. */
#define JOBS_RETRY_AFTER  2

/* Room for one more request of c to wait (max_worker_jobs, max_waiters):
 * 0, or -1 after BUSY to (c, id), counted. */
int jobs_admit(jobs_t *jobs, conn_t *c, uint32_t id);

/* Room for one more job started for a client (max_jobs) and its
 * transfer (max_queued): 0, or -1 after BUSY to (c, id), counted. */
int jobs_admit_job(jobs_t *jobs, conn_t *c, uint32_t id);

/* Jobs in flight by kind (job_ops_t.kind), added to census: a kind it
 * names already is counted there, another one appended while there is
 * room; and their waiters. */
void jobs_census(jobs_t *jobs, stats_census_t *census);

/* The downloads in flight (the jobs of kinds with a view op), oldest
 * first, into v[0..max): their number; *all is set to how many there
 * are. */
size_t jobs_view(jobs_t *jobs, job_view_t *v, size_t max, size_t *all);

/* Send the coalesced progress of every dirty job. */
void jobs_flush(jobs_t *jobs);

/* Once a second: WAIT to every waiter sent nothing for JOBS_WAIT_TICKS
 * calls, so that a worker's timer measures the fetcher's silence, not
 * the time a queued or slow job takes. */
#define JOBS_WAIT_TICKS  10
void jobs_tick(jobs_t *jobs);

/*
 * For the kinds.
 */

/* Allocate a job of size bytes (a kind's struct that starts with job_t),
 * at client priority; ref (a tag or digest, for the log) may be NULL; key
 * NULL for a job nobody joins.  NULL on failure (logged). */
job_t *job_create(jobs_t *jobs, const job_ops_t *ops, size_t size,
    const oci_registry_t *reg, const char *name, const char *ref,
    const char *key);

/* Point j at reg / name: j->registry, j->name, the token scope and the
 * label (ref as for job_create()). */
void job_target(job_t *j, const oci_registry_t *reg, const char *name,
    const char *ref);

/* Send j's first request to url (a cluster peer, through this node's
 * nginx: the header OCI_CLUSTER_REPLICA_HEADER) rather than to the
 * registry: a plain GET, no credentials, no proxy, no bandwidth share, no
 * endpoint health.  0, or -1 (out of memory, logged). */
int job_from_peer(job_t *j, const char *url);

/* j's request to the peer (job_from_peer()) failed, or what it sent is
 * not the thing (kinds: a short body, another digest): the registry's
 * endpoints, as if the job began there, if the kind can start over
 * (can_retry); else FAIL 502. */
void job_peer_failed(job_t *j, const char *why);

/* The in-flight job for key, or NULL. */
job_t *job_find(jobs_t *jobs, const char *key);

/* Add a waiter for (c, id), asking through j->registry and j->name until
 * the caller sets w->registry and w->name otherwise; NULL on failure
 * (logged). */
waiter_t *job_add_waiter(job_t *j, conn_t *c, uint32_t id);

/* The URL of j's request at its current endpoint (endpoint + j->path)
 * into url.  0, or -1 if it does not fit (logged). */
int job_url(const job_t *j, char *url, size_t cap);

/* Send the upstream request for j->path / j->head / j->accept to the
 * current endpoint.  The first call (and the first after a retarget)
 * orders the registry's usable endpoints (endpoints_order()) and starts
 * with the best; if none is usable the job ends at once without asking
 * upstream: ops->throttled or FAIL 429 if an endpoint is throttled, else
 * ops->unavailable or FAIL 503.  On failure the job is failed and
 * finished. */
void job_issue(job_t *j);

/* From a kind's headers/body callback: remember the failure and return
 * -1 from the callback; the job fails once the transfer has stopped. */
int job_abort(job_t *j, int status, oci_errcode_t code, const char *message);

/* From a kind's headers/body callback, after changing the request: stop
 * this transfer and send the request again to the same endpoint.  Returns
 * -1 for the callback to return. */
int job_restart(job_t *j);

/* A client joined: from prefetch to client priority (no-op otherwise). */
void job_promote(job_t *j);

/* Nobody waits but the job goes on: from client to prefetch priority
 * (no-op otherwise), so that what clients wait for goes first. */
void job_demote(job_t *j);

/* The message of a 503 after every endpoint failed: "upstream registry
 * unavailable", and the reason of the last failure when there is one
 * worth telling the client (a refused TLS certificate).  Valid until the
 * next call. */
const char *job_unavailable_message(job_t *j);

/* The endpoint answered, but uselessly (from a kind's done callback: a
 * body whose digest does not match): send the request to the next
 * usable endpoint of the job's order, as after a 5xx, if the kind can
 * start over (ops->can_retry).  1 if it went, 0 if there is none: the
 * caller fails the job. */
int job_failover(job_t *j, const char *why);

/* Send FAIL to every waiter and finish the job. */
void job_fail(job_t *j, int status, oci_errcode_t code, const char *message);

/* The upstream refused j->registry / j->name (401, 403, 404) or was
 * unavailable: FAIL to the waiters that asked that way.  If others asked
 * elsewhere and the kind can still start over (ops->retarget, can_retry),
 * the job goes on for the first of them; else it finishes. */
void job_refuse(job_t *j, int status, oci_errcode_t code,
    const char *message);

/* Release everything and free the job (see above). */
void job_finish(job_t *j);

/* The redirect target url of j answered r, a 429: no request of any job
 * goes to its host for Retry-After seconds (ENDPOINTS_RETRY_AFTER if it
 * has none), at most the registry's max_retry_after; counted. */
void job_hold_host(job_t *j, const char *url, const xfer_resp_t *r);

void job_mark_dirty(job_t *j);

/* Send m to every waiter, with each waiter's id. */
void job_send_all(job_t *j, oci_msg_t *m);

/* Send m to one waiter (with its id).  0 or -1 (connection gone). */
int waiter_send(waiter_t *w, oci_msg_t *m);


/* Shared checks of a request: the registry is configured and the name is
 * valid.  The registry, or NULL after answering FAIL. */
const oci_registry_t *job_check_request(jobs_t *jobs, conn_t *c,
    const oci_msg_t *m);

#endif /* FETCHER_JOB_H */
