/*
 * The verbs and the wiring (see dispatch.h).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "blob.h"
#include "blob_head.h"
#include "body.h"
#include "ctl.h"
#include "dispatch.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "manifest.h"
#include "prefetch.h"
#include "referrers.h"
#include "stats.h"
#include "status.h"
#include "tags.h"
#include "warm.h"

typedef void (*dispatch_pt)(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

typedef struct {
    const char   *verb;             /* for the log */
    dispatch_pt   handler;
    int           waits;            /* the request waits on a job: it is
                                       refused past the waiters' bounds
                                       (jobs_admit()) */
} dispatch_verb_t;

static void dispatch_ping(jobs_t *jobs, conn_t *c, const oci_msg_t *m);
static void dispatch_stats(jobs_t *jobs, conn_t *c, const oci_msg_t *m);
static void dispatch_used(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

static const dispatch_verb_t  dispatch_verbs[OCI_MSG__COUNT] = {
    [OCI_MSG_PING] =      { "PING", dispatch_ping, 0 },
    [OCI_MSG_BLOB] =      { "BLOB", blob_request, 1 },
    [OCI_MSG_STAT] =      { "STAT", blob_head_request, 1 },
    [OCI_MSG_MANIFEST] =  { "MANIFEST", manifest_request, 1 },
    [OCI_MSG_TAGS] =      { "TAGS", tags_request, 1 },
    [OCI_MSG_REFERRERS] = { "REFERRERS", referrers_request, 1 },
    [OCI_MSG_STATS] =     { "STATS", dispatch_stats, 0 },
    [OCI_MSG_CANCEL] =    { "CANCEL", jobs_cancel, 0 },
    [OCI_MSG_DETACH] =    { "DETACH", jobs_detach, 0 },
    [OCI_MSG_USED] =      { "USED", dispatch_used, 0 },
    [OCI_MSG_REPLICATE] = { "REPLICATE", blob_replicate, 0 },
    [OCI_MSG_CTL] =       { "CTL", ctl_request, 0 },
    [OCI_MSG_STATUS] =    { "STATUS", status_request, 0 },
};

/* The kinds /metrics lists even while none of their jobs runs. */
static const char *const  dispatch_kinds[] = {
    "blob", "blob_head", "manifest", "tags", "referrers"
};

/* PING: the store failed last time (its changes are logged, not every
 * readiness probe).  One fetcher, one store: state of the process. */
static int  dispatch_store_failing;

/* The warm lists STATS reports on (dispatch_set_warm()). */
static warm_t  *dispatch_warm;

/* The scrub STATS reports on (dispatch_set_scrub()). */
static scrub_t  *dispatch_scrub;


static int
dispatch_prefetch_start(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *digest, int manifest)
{
    return manifest ? manifest_prefetch(jobs, reg, name, digest)
                    : blob_prefetch(jobs, reg, name, digest);
}


static int
dispatch_prefetch_present(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *digest, int manifest)
{
    return manifest ? manifest_present(jobs, reg, name, digest)
                    : blob_present(jobs, digest);
}


static const prefetch_ops_t  dispatch_prefetch_ops = {
    dispatch_prefetch_start,
    dispatch_prefetch_present
};


static int
dispatch_warm_running(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *digest, int manifest, long long *done)
{
    if (manifest) {
        *done = 0;
        return manifest_in_flight(jobs, reg, name, digest);
    }

    return blob_progress(jobs, digest, done);
}


const warm_ops_t  dispatch_warm_ops = {
    manifest_resolve,
    manifest_resolving,
    dispatch_prefetch_start,
    dispatch_warm_running
};


static void
dispatch_manifest_fetched(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *digest, const char *type,
    const char *body, size_t len)
{
    prefetch_manifest(jobs, &dispatch_prefetch_ops, reg, name, digest, type,
                      body, len);
}


void
dispatch_setup(jobs_t *jobs)
{
    jobs->on_stored = dispatch_manifest_fetched;
}


void
dispatch_set_warm(warm_t *warm)
{
    dispatch_warm = warm;
}


void
dispatch_set_scrub(scrub_t *scrub)
{
    dispatch_scrub = scrub;
}


void
dispatch_on_msg(conn_t *c, const oci_msg_t *m, void *data)
{
    jobs_t                 *jobs = data;
    const dispatch_verb_t  *v;

    v = (unsigned) m->type < OCI_MSG__COUNT ? &dispatch_verbs[m->type]
                                            : NULL;

    if (v == NULL || v->handler == NULL) {
        log_error("worker #%u sent a fetcher message (type %d), closing it",
                  conn_number(c), (int) m->type);
        conn_kill(c);
        return;
    }

    log_debug("worker #%u: %s %u %s %s %s%s%s", conn_number(c), v->verb,
              (unsigned) m->id, m->registry, m->name, m->reference,
              m->accept[0] != '\0' ? " accept=" : "", m->accept);

    if (v->waits && jobs_admit(jobs, c, m->id) != 0) {
        return;
    }

    v->handler(jobs, c, m);
}


static void
dispatch_ping(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    oci_msg_t  pong;
    char       path[OCI_PATH_MAX];
    int        fd, ok;

    ok = 0;
    fd = oci_store_tmp_create(jobs->cf->store_path, path, sizeof(path));

    if (fd >= 0) {
        close(fd);
        ok = unlink(path) == 0;
    }

    /* readiness probes ping all the time: log changes only */
    if (!ok && !dispatch_store_failing) {
        log_error("store \"%s\" is not writable: %s", jobs->cf->store_path,
                  strerror(errno));

    } else if (ok && dispatch_store_failing) {
        log_info("store \"%s\" is writable again", jobs->cf->store_path);
    }

    dispatch_store_failing = !ok;

    oci_msg_init(&pong, OCI_MSG_PONG, m->id);
    pong.status = ok;
    conn_send(c, &pong);
}


/* USED: a worker served a stored blob or manifest (recency).  Without
 * recency eviction goes by download time: a worker that still reports
 * (an nginx started before the config changed) is not heard. */
static void
dispatch_used(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    char  hex[OCI_SHA256_HEX_LEN + 1];
    char  path[OCI_PATH_MAX];

    if (jobs->cf->store_recency
        && oci_digest_parse(m->reference, strlen(m->reference), hex) == OCI_OK
        && oci_store_blob_path(jobs->cf->store_path, hex, path, sizeof(path))
           == OCI_OK)
    {
        cache_used(jobs->cache, path);
    }
}


/* STATS: the counters, the census of the jobs, the store and the loop's
 * stalls, as a BODY. */
static void
dispatch_stats(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    stats_census_t   census;
    stats_store_t    store;
    stats_warm_t     warm;
    stats_scrub_t    scrub;
    stats_commit_t   commit;
    stats_lists_t    lists;
    FILE            *f;
    char            *text;
    size_t           len, i;
    int              rc;

    memset(&census, 0, sizeof(census));

    for (i = 0; i < sizeof(dispatch_kinds) / sizeof(dispatch_kinds[0]); i++)
    {
        census.kind[census.n++] = dispatch_kinds[i];
    }

    jobs_census(jobs, &census);
    cache_state(jobs->cache, &store);

    /* the families are there even without warm lists */
    memset(&warm, 0, sizeof(warm));

    if (dispatch_warm != NULL) {
        warm_state(dispatch_warm, &warm);
    }

    /* scrub_state() gives zeros without a scrub */
    scrub_state(dispatch_scrub, &scrub);

    /* so do these without theirs (the unit tests) */
    commit_state(jobs->commit, &commit);
    listcache_state(jobs->lists, &lists);

    text = NULL;
    len = 0;
    f = open_memstream(&text, &len);

    if (f == NULL) {
        log_error("open_memstream() failed: %s", strerror(errno));
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    rc = stats_render(f);

    if (rc == 0) {
        rc = stats_render_census(f, &census);
    }

    if (rc == 0) {
        rc = stats_render_store(f, &store);
    }

    if (rc == 0) {
        rc = stats_render_warm(f, &warm);
    }

    if (rc == 0) {
        rc = stats_render_scrub(f, &scrub);
    }

    if (rc == 0) {
        rc = stats_render_loop(f, loop_stats(jobs->loop));
    }

    if (rc == 0) {
        rc = stats_render_commit(f, &commit);
    }

    if (rc == 0) {
        rc = stats_render_lists(f, &lists);
    }

    if (fclose(f) != 0 || rc != 0) {
        log_error("cannot render the counters: %s", strerror(errno));
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        free(text);
        return;
    }

    body_reply(jobs->cf, c, m->id, text, len, "");
    free(text);
}
