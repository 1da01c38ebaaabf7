/*
 * The manifest kind (manifest.c: see there): tags and digests, the
 * mirror's own answer and the relays, stored manifests and tag records.
 */

#ifndef FETCHER_MANIFEST_H
#define FETCHER_MANIFEST_H

#include "job.h"

/* MANIFEST <id> ...: META or FAIL. */
void manifest_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

/* A GET by digest at prefetch priority that nobody waits for yet, every
 * manifest type accepted: 1 if one was started, 0 if the manifest is
 * stored or in flight (or the digest is not sha256), -1 on failure
 * (logged). */
int manifest_prefetch(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *digest);

/* 1 if the manifest by digest is stored or in flight.  A digest that is
 * not sha256 counts as present: it is never fetched. */
int manifest_present(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *digest);

/* A GET by tag at prefetch priority that nobody waits for yet, keyed as
 * a client's GET without Accept (the mirror's own question, which a
 * client asking meanwhile joins): the upstream is asked even if the tag
 * record is fresh (a HEAD when its manifest is stored), and the record is
 * rewritten when it answers.  1 if a job was started, 0 if that job is in
 * flight already, -1 on failure (logged). */
int manifest_resolve(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *tag);

/* 1 while that job for the tag is in flight. */
int manifest_resolving(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *tag);

/* 1 while a GET of the mirror's own of the manifest by digest (a
 * prefetch's, a client's) is in flight. */
int manifest_in_flight(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *digest);

#endif /* FETCHER_MANIFEST_H */
