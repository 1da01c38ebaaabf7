/*
 * The cache manager: the index of what the store holds, how recently
 * each file was used, and eviction.  Like nginx's cache manager it is the
 * one place that deletes: the fetcher writes every file and the workers
 * only read.
 *
 * The index holds every file of the store but tmp/ and types/: blobs and
 * manifests (sha256/), tag records (tags/), cached tag lists (taglists/)
 * and referrers (referrers/), by path relative to the root, with the
 * bytes they take on disk and their last use.  It is loaded at start by
 * walking the store in bounded slices (cache_start()), then put in order
 * of use in slices (CACHE_SORT_SLICE entries into a list per second of
 * use), and kept current
 * by the fetcher's own writes (cache_added(), cache_removed()).
 *
 * Recency.  A file's last use is the later of its access and modification
 * times.  The workers report the blobs and manifests they serve in
 * batches (USED), the fetcher the ones it answers from the store; the
 * use moves the entry to the young end of the LRU list at once, and goes
 * to disk (utimensat() of the access time) at most once every
 * CACHE_TOUCH_INTERVAL seconds per file, so the order survives a restart
 * of either process to within that interval at the cost of one syscall
 * per file per interval, never per hit.  Records and lists are used when
 * the fetcher rewrites them (every TTL while they are asked for).
 * store.recency = false, a switch to measure what recency costs a hit,
 * turns it off: the workers report nothing, USED lines are not heard,
 * nothing is written to disk and the load reads the modification time
 * alone, so eviction goes by download time; the fetcher's own hand-outs
 * of a stored file still count in memory (they hold it for CACHE_GRACE).
 *
 * Eviction.  The store may take max_size bytes (store.max_size, a size
 * or a share of the filesystem).  Past the high watermark, or with less
 * than min_free bytes free on the filesystem, the least recently used
 * files go (unlinked; an open descriptor keeps serving a client that
 * reads one) until the store is at the low watermark and min_free is
 * free again.  Files not used for store.inactive seconds go whatever the
 * size.  A file used in the last CACHE_GRACE seconds is never evicted
 * (a worker may be about to open it).  Downloads are in tmp/ and not in
 * the index: what they will take is reserved (cache_reserve()) so that
 * eviction runs ahead of them.  Eviction runs in slices of at most
 * CACHE_EVICT_SLICE files; the loop never waits for it, but for
 * cache_free_now(), the answer to ENOSPC, which frees what it needs at
 * once (bounded by CACHE_EMERGENCY_MAX files).
 *
 * Pins (store.pin, ocimirrorctl pin): image references, with globs, and
 * the platforms of an index to hold (none: all).  A pin holds the
 * digests it names: a digest reference, each tag record it matches and
 * that record's manifest, and what those manifests name (an index's children of its
 * platforms; an image's config and layers), also before they are stored.
 * A held file is off the LRU list: never evicted, but counted in the
 * size; a warning says when the pins alone pass the high watermark.
 * The holds are resolved again when the index is loaded, when a pin is
 * added or removed, and at the next tick after a tag record that a pin
 * matches is rewritten (a moved tag lets go of the old image); manifests
 * are read in slices of CACHE_PIN_SLICE.
 *
 * Evicting a manifest removes its types/ line too.  A tag record whose
 * manifest is gone, or a manifest whose blobs are gone, answers no error:
 * the next pull is a miss for exactly what is missing.
 */

#ifndef FETCHER_CACHE_H
#define FETCHER_CACHE_H

#include <time.h>

#include "oci.h"
#include "oci_config.h"
#include "loop.h"
#include "stats.h"

#define CACHE_TOUCH_INTERVAL  600     /* seconds between disk updates of
                                         a file's last use */
#define CACHE_GRACE           5       /* seconds a used file is safe: a
                                         worker told of a new file opens
                                         it within milliseconds */
#define CACHE_LOAD_SLICE      1000    /* directory entries per slice */
#define CACHE_SORT_SLICE      16384   /* entries put in order per slice */
#define CACHE_SORT_BUCKETS    65536   /* lists of use while ordering */
#define CACHE_EVICT_SLICE     64      /* files per slice */
#define CACHE_EMERGENCY_MAX   4096    /* files cache_free_now() may
                                         remove at once */
#define CACHE_PINNED_MAX      65536   /* digests the pins may hold */
#define CACHE_HELD_SECONDS    60      /* evicted bytes count as coming
                                         back for this long */

typedef struct cache_s  cache_t;

/* The cache of the store of cf, its slices run from loop.  NULL on
 * failure (logged).  The index is empty until cache_start(). */
cache_t *cache_create(const oci_config_t *cf, loop_t *loop);
void cache_destroy(cache_t *c);

/* Load the index from the store, in slices; eviction waits for it. */
void cache_start(cache_t *c);

/*
 * What the fetcher does to the store (c may be NULL: then nothing).
 * path is absolute, under the store's root (a file elsewhere is
 * ignored).  added: the file was written or replaced (and so used);
 * removed: the fetcher deleted it.
 */
void cache_added(cache_t *c, const char *path);
void cache_removed(cache_t *c, const char *path);

/* The stored file at path was served (a blob or manifest the workers
 * served, a list the fetcher answered from). */
void cache_used(cache_t *c, const char *path);

/* bytes (> 0) more, or (< 0) fewer, are on their way to the store in
 * downloads: eviction makes room for them ahead. */
void cache_reserve(cache_t *c, long long bytes);

/* A write failed with ENOSPC: evict now, least recently used first, until
 * need bytes are freed or nothing more may go.  Returns the bytes freed
 * (0: none; the writer then fails cleanly). */
long long cache_free_now(cache_t *c, long long need);

/* Once a second: the filesystem's free space and store.inactive. */
void cache_tick(cache_t *c);

/* Pin spec (copied) for the running process: OCI_OK, OCI_EINVAL if the
 * reference is pinned already, OCI_ERANGE past OCI_PINS_MAX, OCI_ENOMEM.
 * unpin: OCI_OK or OCI_ENOENT. */
int cache_pin(cache_t *c, const oci_image_spec_t *spec);
int cache_unpin(cache_t *c, const oci_imageref_t *ref);

/* The pins now (valid until the next pin or unpin). */
size_t cache_pin_list(cache_t *c, const oci_image_spec_t **specs);

/* 1 if a pin holds the digest of hex. */
int cache_is_pinned(cache_t *c, const char *hex);

/* Remove the file rel (relative to the root; a manifest's types/ line
 * with it) now, like an eviction.  OCI_OK (*bytes: what it took),
 * OCI_ENOENT, OCI_EINVAL if a pin holds it, OCI_EIO (logged). */
int cache_purge(cache_t *c, const char *rel, long long *bytes);

/* The next n files eviction would take, oldest use first: each is
 * called with the path (relative), bytes and last use.  The count. */
typedef void (*cache_each_pt)(const char *path, long long bytes,
    time_t used, void *data);
size_t cache_next(cache_t *c, size_t n, cache_each_pt each, void *data);

/* The state, for the metrics. */
void cache_state(cache_t *c, stats_store_t *st);

#endif /* FETCHER_CACHE_H */
