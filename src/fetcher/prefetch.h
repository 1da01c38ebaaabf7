/*
 * Prefetch: what a fetched manifest makes the fetcher download before any
 * client asks, at prefetch priority (below every client's work).
 *
 *   an image manifest (OCI or Docker v2): its config and layers, in that
 *       order, as long as the bytes queued for the image stay within
 *       prefetch.max_bytes (what is stored or already in flight is
 *       skipped and not counted);
 *   an index or manifest list: its child manifests whose platform is one
 *       of prefetch.platforms ("os/arch" matches every variant,
 *       "os/arch/variant" only that one); each, once fetched, is an image
 *       manifest and prefetches its own blobs.
 *
 * Both fan-outs are capped by count as well as bytes: the first
 * prefetch.max_children matching entries of an index, the first
 * prefetch.max_layers layers of an image (the config aside).  Past a cap
 * the rest is left out, logged once per manifest and counted
 * (stats_registry_t.prefetch_capped, .prefetch_left_out); the client
 * fetches it if it wants it.  warm.c obeys the same caps.
 *
 * A cluster node (cluster.peers) prefetches only the digests it owns
 * (oci_ring_owner()): the others are their owners' to fetch, when a
 * client's miss reaches them, so each blob is stored once a region.
 *
 * A client that asks for something being prefetched joins that job (the
 * in-flight table coalesces by key) and promotes it to client priority.
 */

#ifndef FETCHER_PREFETCH_H
#define FETCHER_PREFETCH_H

#include "oci.h"
#include "oci_config.h"
#include "job.h"

typedef struct {
    char        digest[OCI_DIGEST_MAX + 1];
    long long   size;
} prefetch_item_t;

typedef struct {
    int               index;        /* items are manifests, not blobs */
    prefetch_item_t  *items;        /* to fetch, in order */
    size_t            n;
    long long         bytes;        /* their sizes added up */
    size_t            present;      /* skipped: stored or in flight */
    size_t            over;         /* left out: over max_bytes */
    size_t            capped;       /* left out: over max_children or
                                       max_layers */
    size_t            invalid;      /* descriptors that make no sense */
} prefetch_plan_t;

/* What prefetch asks of the kinds above it, which it does not name (the
 * layer above wires them: dispatch.c).  manifest: the digest is a child
 * manifest of an index, else a blob.  start: a job at prefetch priority,
 * 1 if one was started, 0 if stored or in flight, -1 on failure (logged);
 * present: 1 if stored or in flight. */
typedef struct {
    int  (*start)(jobs_t *jobs, const oci_registry_t *reg, const char *name,
                  const char *digest, int manifest);
    int  (*present)(jobs_t *jobs, const oci_registry_t *reg,
                    const char *name, const char *digest, int manifest);
} prefetch_ops_t;

/* 1 if the blob (or, for an index, the child manifest) digest is stored or
 * in flight. */
typedef int (*prefetch_have_pt)(const char *digest, int manifest,
    void *data);

/*
 * Choose what to prefetch for a manifest of media type `type` (body[0..len)
 * is its JSON).  A type that is neither an image manifest nor an index
 * gives an empty plan.  Returns OCI_OK (plan filled; free it with
 * prefetch_plan_free), OCI_EINVAL for JSON that is not a manifest of that
 * type, or OCI_ENOMEM.
 */
int prefetch_select(const oci_config_t *cf, const char *type,
    const char *body, size_t len, prefetch_have_pt have, void *data,
    prefetch_plan_t *plan);

void prefetch_plan_free(prefetch_plan_t *plan);

/* 1 if the platform of an index entry is one of prefetch.platforms. */
int prefetch_platform_match(const oci_config_t *cf, const char *os,
    const char *arch, const char *variant);

/*
 * A GET of name@digest brought this manifest (the job layer's on_manifest
 * hook): start the prefetch jobs through ops (if prefetch.enabled) and
 * log what was done.
 */
void prefetch_manifest(jobs_t *jobs, const prefetch_ops_t *ops,
    const oci_registry_t *reg, const char *name, const char *digest,
    const char *type, const char *body, size_t len);

#endif /* FETCHER_PREFETCH_H */
