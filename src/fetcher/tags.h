/*
 * The tags kind (tags.c: see there): a repository's whole tag list,
 * fetched once, kept for tags_ttl, paged by the mirror.
 */

#ifndef FETCHER_TAGS_H
#define FETCHER_TAGS_H

#include "job.h"

/* TAGS <id> <registry> <name> <n> <last>: BODY or FAIL. */
void tags_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

#endif /* FETCHER_TAGS_H */
