/*
 * The referrers kind (referrers.c: see there): the referrers of a
 * manifest, from the upstream's API or its tag schema, kept for
 * referrers_ttl, filtered by the mirror.
 */

#ifndef FETCHER_REFERRERS_H
#define FETCHER_REFERRERS_H

#include "job.h"

/* REFERRERS <id> <registry> <name> <digest> <artifact-type>: BODY or
 * FAIL. */
void referrers_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

#endif /* FETCHER_REFERRERS_H */
