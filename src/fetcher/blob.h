/*
 * The blob kind (blob.c: see there): one download per digest, verified
 * while it arrives, committed to the store, streamed to every waiter.
 */

#ifndef FETCHER_BLOB_H
#define FETCHER_BLOB_H

#include "job.h"

/* BLOB <id> <registry> <name> <digest>: SIZE, PROGRESS, DONE or FAIL. */
void blob_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

/* A job at prefetch priority that nobody waits for yet: 1 if one was
 * started, 0 if the blob is stored or already in flight (or the digest
 * is not sha256), -1 on failure (logged). */
int blob_prefetch(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *digest);

/* REPLICATE <id> <registry> <name> <digest>: a cluster node's copy of a
 * hot blob another node owns, from that node; no answer. */
void blob_replicate(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

/* 1 if the blob is stored or in flight.  A digest that is not sha256
 * counts as present: it is never fetched. */
int blob_present(jobs_t *jobs, const char *digest);

/* 1 and *done (the bytes received in order from offset 0, some maybe
 * still held for their block: a measure of progress, not of what the
 * file holds) while a job for the blob is in flight, else 0. */
int blob_progress(jobs_t *jobs, const char *digest, long long *done);

/* How long bytes may wait in memory for their block while a client
 * streams the file (BLOB_WRITE_HOLD_NS by default); the unit tests set 0
 * to see every flush write what came. */
void blob_set_write_hold(long long ns);

#endif /* FETCHER_BLOB_H */
