/*
 * The scrub: every stored blob and manifest re-hashed at a bounded rate,
 * so that a file the disk damaged after it was verified is found before a
 * client pulls it, and fetched again instead.
 *
 * A pass.  The files under sha256/ (never tmp/) are listed in slices of
 * SCRUB_WALK_SLICE directory entries, then read and hashed, each compared
 * with its name.  The reads run in slices from the scrub's own timerfd on
 * the fetcher's loop, as the cache manager's eviction does: a slice reads
 * at most SCRUB_SLICE_BYTES (less at low rates, to keep the pace smooth)
 * and stops after SCRUB_SLICE_USEC whatever it has done, and the next one
 * is armed for when store.scrub_rate allows the bytes read so far, so
 * that from the start of a pass the bytes read never pass
 * scrub_rate * elapsed + one slice (a timer that fires late may catch up
 * 100 ms of its lateness, no more).  The loop is never held longer than a
 * slice (a manifest or an image config is read whole: at most
 * OCI_MANIFEST_MAX bytes, counted against the rate).  No thread: the
 * fetcher's other units already do their store I/O in the loop, a thread
 * would need locks around the cache index, and a slice bounded in bytes
 * and time costs serving no more than one of theirs.
 *
 * A file that does not match its name is moved (rename) to
 * <store>/quarantine/<hex>.<unix-time>, its types/ line removed if it was
 * a manifest, the cache manager told (cache_removed()), logged as an
 * error with both digests, counted and listed among the findings; the
 * next pull of it is a miss and fetches it again.  quarantine/ holds at
 * most store.quarantine_max files, the oldest go first (logged); the
 * cache index does not cover it.  A file that is gone, or is no longer
 * the file that was read, when its hash is known (evicted or purged
 * meanwhile) is skipped and not reported: "vanished" in the status.
 *
 * Deep (scrub --deep, store.scrub_deep for scheduled passes).  Before the
 * files, each stored image manifest (its types/ line is an OCI or Docker
 * image manifest) is read with its config: for layer i the blob is read
 * once, hashed against its name and unpacked while hashing (layercheck.h)
 * for comparison with the config's rootfs.diff_ids[i].  The blobs the
 * deep part read are not read again, and a layer shared by several images
 * is unpacked once.  A layer that unpacks to another diff_id, or is no
 * valid gzip stream, is a finding (the image, with registry/name:tag when
 * a tag record names it or an index that holds it, the layer, the
 * expected and the computed diff_id), not quarantined: the blob is what
 * upstream served, the image itself is wrong.  zstd and unknown layer
 * types, artifacts (a config that is no image config) and images whose
 * config is not stored are counted as skipped; plain tar layers are
 * checked too, at no cost, since the blob is read anyway.  Bombs: a layer
 * may unpack to at most SCRUB_INFLATE_RATIO times its stored size plus
 * SCRUB_INFLATE_MARGIN (no manifest declares an uncompressed size; real
 * layers stay far below, zeros reach about 1000:1), and past that it is
 * skipped with a warning; a slice unpacks at most SCRUB_SLICE_INFLATE
 * bytes, fed SCRUB_FEED compressed bytes at a time.  The rate applies to
 * the compressed bytes read.
 *
 * Scheduling.  A pass of the whole store every store.scrub_interval
 * seconds after the last whole-store pass ended (0: on demand only),
 * started by scrub_tick() once the cache manager has loaded its index.
 * The end of the last one is kept in <store>/scrub.state, written
 * atomically, so that a restart does not scrub again at once; a store
 * that has none counts from the first start that wrote it.  A shallow
 * pass does not put off a scheduled deep one.  On demand: scrub_start(),
 * the whole store or one image (a manifest and what it names).  One pass
 * at a time.
 */

#ifndef FETCHER_SCRUB_H
#define FETCHER_SCRUB_H

#include <time.h>

#include "oci.h"
#include "oci_config.h"
#include "cache.h"
#include "loop.h"
#include "stats.h"

#define SCRUB_SLICE_BYTES     (1024 * 1024)   /* read per slice at most */
#define SCRUB_SLICE_MIN       (16 * 1024)     /* per slice at low rates */
#define SCRUB_SLICE_INFLATE   (4 * 1024 * 1024)  /* unpacked per slice */
#define SCRUB_SLICE_USEC      4000            /* a slice stops after */
#define SCRUB_WALK_SLICE      1000            /* directory entries */
#define SCRUB_FEED            4096            /* compressed bytes per
                                                 layercheck_feed() */
#define SCRUB_INFLATE_RATIO   100
#define SCRUB_INFLATE_MARGIN  (64LL * 1024 * 1024)
#define SCRUB_FINDINGS_MAX    32              /* kept for scrub-status */
#define SCRUB_NAME_MAX        768             /* "registry/name:tag" */

#define SCRUB_STATE_FILE      "scrub.state"
#define SCRUB_QUARANTINE      "quarantine"

typedef struct scrub_s  scrub_t;

typedef enum {
    SCRUB_FINDING_CORRUPT = 0,      /* a file that did not match its name,
                                       quarantined */
    SCRUB_FINDING_DIFF_ID           /* a layer that is not what its
                                       image's config says */
} scrub_finding_kind_t;

typedef struct {
    scrub_finding_kind_t  kind;
    time_t                at;
    char                  digest[OCI_DIGEST_MAX + 1];  /* the file; the
                                                          layer */
    char                  got[OCI_DIGEST_MAX + 1];     /* what it hashes
                                                          (or unpacks) to;
                                                          "" if nothing */
    char                  image[OCI_DIGEST_MAX + 1];   /* DIFF_ID: the
                                                          image manifest */
    char                  expected[OCI_DIGEST_MAX + 1];  /* DIFF_ID: the
                                                          config's, "" if
                                                          none valid */
    char                  name[SCRUB_NAME_MAX];        /* registry/name:tag
                                                          or "" */
    char                  note[160];   /* the quarantined file; why there
                                          is no computed diff_id */
} scrub_finding_t;

/* A pass: the one running, or the last one this process ran. */
typedef struct {
    int                 deep;
    char                what[SCRUB_NAME_MAX + 96];   /* "the whole store",
                                                        or the image */
    time_t              started;        /* unix seconds; 0: none yet */
    double              seconds;        /* so far, or in all */
    unsigned long long  listed;         /* files to check */
    long long           listed_bytes;
    unsigned long long  checked;        /* files hashed */
    long long           read_bytes;     /* files, manifests, configs */
    unsigned long long  images;         /* deep: image manifests */
    unsigned long long  images_done;
    unsigned long long  corrupt;
    unsigned long long  mismatches;
    unsigned long long  skipped;
    unsigned long long  vanished;       /* gone while the pass ran */
    unsigned long long  slices;
    double              slice_max_ms;   /* the longest slice */
    long long           slice_max_bytes;
} scrub_pass_t;

typedef struct {
    int                 running;
    const char         *phase;          /* what a running pass does */
    scrub_pass_t        pass;
    time_t              last_completed; /* the last whole-store pass
                                           (scrub.state): 0 never */
    double              last_seconds;   /* its duration, -1 unknown */
    int                 last_deep;
    time_t              next;           /* the next scheduled pass; 0:
                                           on demand only */
    long long           rate;           /* store.scrub_rate */
    unsigned long long  quarantined;    /* files in quarantine/ */
    long                quarantine_max;
} scrub_status_t;

/* The scrub of the store of cf, its slices run from loop; cache (may be
 * NULL) is told of the files it quarantines.  Reads scrub.state and
 * quarantine/.  NULL on failure (logged). */
scrub_t *scrub_create(const oci_config_t *cf, loop_t *loop, cache_t *cache);
void scrub_destroy(scrub_t *s);

/* Once a second: a scheduled pass when it is due. */
void scrub_tick(scrub_t *s);

/*
 * Start a pass now: the whole store (hex NULL), or the manifest hex and
 * what it names (an index: its stored children, their configs and
 * layers), called name in the status and the findings.  Returns OCI_OK,
 * OCI_EAGAIN if a pass is running, OCI_ENOENT if hex is not stored,
 * OCI_ENOMEM.
 */
int scrub_start(scrub_t *s, int deep, const char *hex, const char *name);

void scrub_status(scrub_t *s, scrub_status_t *st);

/* The i-th most recent finding (0: the newest), NULL past the last. */
const scrub_finding_t *scrub_finding(scrub_t *s, size_t i);

/* The counters, for the metrics (s may be NULL: zeros). */
void scrub_state(scrub_t *s, stats_scrub_t *st);

#endif /* FETCHER_SCRUB_H */
