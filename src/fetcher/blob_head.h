/*
 * The blob_head kind (blob_head.c: see there): a client's HEAD of a blob
 * that is not stored, answered with the upstream's HEAD.
 */

#ifndef FETCHER_BLOB_HEAD_H
#define FETCHER_BLOB_HEAD_H

#include "job.h"

/* The media type of a blob's META (the store keeps none for blobs). */
#define BLOB_HEAD_TYPE  "application/octet-stream"

/* STAT <id> <registry> <name> <digest>: META (the digest and size, type
 * BLOB_HEAD_TYPE, no path) or FAIL. */
void blob_head_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

#endif /* FETCHER_BLOB_HEAD_H */
