/*
 * The top of the fetcher: what answers each verb of the workers'
 * protocol (oci_ipc.h), and the wiring of the kinds into the layers
 * below them.  The job layer names no kind; this table does.
 *
 *   PING       the store can take a file now (PONG)
 *   BLOB       blob.h
 *   STAT       blob_head.h
 *   MANIFEST   manifest.h
 *   TAGS       tags.h
 *   REFERRERS  referrers.h
 *   STATS      the counters, a census of the jobs, the store, the warm
 *              lists, the scrub and the loop's stalls (stats.h), as BODY
 *   CANCEL     the job layer: the request's waiter leaves
 *   DETACH     the job layer: it leaves, the job goes on
 *   USED       the cache manager: a stored file was served (recency)
 *   CTL        ocimirrorctl's commands (ctl.h)
 *
 * Any other verb is one the fetcher sends: the worker is confused, and
 * its connection is closed.  To add a verb: its grammar in oci_ipc.h, a
 * handler in the kind (or here, for one that is no job), a line in the
 * table of dispatch.c.
 */

#ifndef FETCHER_DISPATCH_H
#define FETCHER_DISPATCH_H

#include "job.h"
#include "scrub.h"
#include "warm.h"

/* Hook the kinds into the job layer (a fetched manifest's prefetch). */
void dispatch_setup(jobs_t *jobs);

/* How the warm lists reach the kinds: warm_create()'s ops. */
extern const warm_ops_t  dispatch_warm_ops;

/* The warm lists STATS reports on (NULL, the start: none). */
void dispatch_set_warm(warm_t *warm);

/* The scrub STATS reports on (NULL, the start: none). */
void dispatch_set_scrub(scrub_t *scrub);

/* The server's callback for a message of a worker (data: the jobs). */
void dispatch_on_msg(conn_t *c, const oci_msg_t *m, void *data);

#endif /* FETCHER_DISPATCH_H */
