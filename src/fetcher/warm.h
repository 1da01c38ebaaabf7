/*
 * Warm lists: images the fetcher pulls into the store before any client
 * asks for them, and pulls again every warm_interval seconds, so that a
 * tag that moved brings its new image.  Three sources make one list:
 *
 *   warm (the config)        for the life of the process;
 *   warm_file                one reference a line, the platforms after
 *                            it ("docker.io/library/nginx:1.27
 *                            linux/amd64 linux/arm64"), '#' comments and
 *                            blank lines; read again when its size,
 *                            mtime or inode change (one stat a tick).  A
 *                            bad line is logged "file:line: why" and
 *                            skipped, the others stay; a file that
 *                            cannot be read is logged once and is an
 *                            empty list;
 *   ocimirrorctl warm        until the fetcher stops (ctl_warm.c).
 *
 * An image is its reference (the library prefix applied, as in the
 * config): named twice, it is one image, with the platforms of the
 * config if the config lists it, else the last ones given.  No platforms
 * means prefetch.platforms (none there either: every platform).  At most
 * warm_max images in all: past it a file line or a warm command is
 * refused, logged and counted.
 *
 * A round of an image, everything at prefetch priority (client work goes
 * first; the bandwidth limits apply to every transfer):
 *
 *   resolving   a tag is asked upstream by a manifest job keyed as a
 *               client's GET without Accept (the mirror's own question:
 *               a client that asks meanwhile joins it); the tag record it
 *               rewrites gives the digest.  Then that manifest by digest
 *               unless it is stored, and for an index its children of
 *               the image's platforms;
 *   fetching    the config and layers of each image manifest, as blob
 *               jobs;
 *   done        every one is stored;
 *   failed      something could not be fetched (the log says what); the
 *               next round, warm_interval later, is the retry.
 *
 * Blobs go queued -> fetching -> stored (or failed).  What is stored is
 * not fetched again but marked used, so that eviction takes it last;
 * what is in flight (a client's pull, a prefetch) is joined, not fetched
 * twice.
 *
 * Bounds, so that a long list never stalls the loop nor holds thousands
 * of temp files: WARM_ACTIVE images in a round at once (the others wait
 * their turn), WARM_JOBS of their downloads in flight (the rest stay
 * queued), WARM_TICK_WORK units of store work a tick (a stat is one, a
 * manifest read WARM_READ_COST), WARM_BLOBS blobs an image in all, and
 * prefetch's caps: prefetch.max_children platform manifests of an index,
 * prefetch.max_layers layers of an image manifest (past any of them the
 * rest is left out and the image fails, saying so; a cap of prefetch's
 * moves its counters too), WARM_PLATFORMS
 * platforms an image, and the warm_file at most WARM_FILE_MAX bytes in
 * lines of WARM_LINE_MAX.
 *
 * Ownership: warm_t owns its images and their progress; the jobs it
 * starts belong to the job layer like any other and go on if their image
 * leaves the list.  The kinds are reached through warm_ops_t, which the
 * layer above fills (dispatch.c), as for prefetch.
 */

#ifndef FETCHER_WARM_H
#define FETCHER_WARM_H

#include <time.h>

#include "oci.h"
#include "oci_config.h"
#include "oci_ref.h"
#include "job.h"
#include "stats.h"

#define WARM_ACTIVE       8
#define WARM_JOBS         16
#define WARM_TICK_WORK    256
#define WARM_READ_COST    16
#define WARM_BLOBS        512
#define WARM_PLATFORMS    16
#define WARM_FILE_MAX     (16 * 1024 * 1024)
#define WARM_LINE_MAX     4096

/* "<registry>/<name>:<tag>" or "...@<digest>" */
#define WARM_REF_MAX      (OCI_HOST_MAX + OCI_NAME_MAX + OCI_DIGEST_MAX + 3)

typedef struct warm_s  warm_t;

typedef enum {
    WARM_RESOLVING = 0,
    WARM_FETCHING,
    WARM_DONE,
    WARM_FAILED
} warm_state_t;

typedef enum {
    WARM_BLOB_QUEUED = 0,
    WARM_BLOB_FETCHING,             /* a job is in flight */
    WARM_BLOB_STORED,
    WARM_BLOB_FAILED
} warm_blob_state_t;

/* Where an image comes from (a mask: one image may have several). */
#define WARM_SRC_CONFIG  0x01
#define WARM_SRC_FILE    0x02
#define WARM_SRC_CLI     0x04

/* An image as the sources give it. */
typedef struct {
    oci_imageref_t         ref;         /* the library prefix applied */
    const oci_registry_t  *reg;
    char                   platforms[WARM_PLATFORMS][OCI_PLATFORM_MAX];
    size_t                 n_platforms; /* 0: prefetch.platforms */
} warm_spec_t;

/* What warm asks of the kinds, which it does not name (dispatch.c wires
 * them).  resolve: a GET of the tag at prefetch priority, keyed as a
 * client's GET without Accept; resolving: 1 while that job is in flight.
 * start: as prefetch_ops_t.start (manifest: a manifest by digest, else a
 * blob): 1 started, 0 stored or in flight, -1 failed (logged).  running:
 * 1 while a job for the digest is in flight, with *done its bytes
 * complete from offset 0 (a manifest: 0). */
typedef struct {
    int  (*resolve)(jobs_t *jobs, const oci_registry_t *reg,
                    const char *name, const char *tag);
    int  (*resolving)(jobs_t *jobs, const oci_registry_t *reg,
                      const char *name, const char *tag);
    int  (*start)(jobs_t *jobs, const oci_registry_t *reg, const char *name,
                  const char *digest, int manifest);
    int  (*running)(jobs_t *jobs, const oci_registry_t *reg,
                    const char *name, const char *digest, int manifest,
                    long long *done);
} warm_ops_t;

/* One image's line of warm-status. */
typedef struct {
    unsigned      id;
    const char   *ref;              /* valid until the next tick */
    warm_state_t  state;
    size_t        blobs;
    size_t        blobs_done;       /* stored */
    long long     bytes;
    long long     bytes_done;
} warm_info_t;

typedef void (*warm_each_pt)(const warm_info_t *info, void *data);
typedef void (*warm_blob_each_pt)(const char *digest, warm_blob_state_t st,
    long long done, long long size, void *data);

/* The lists of cf: the config's images now, the warm_file at once; their
 * first rounds start at the first tick.  NULL on failure (logged). */
warm_t *warm_create(const oci_config_t *cf, jobs_t *jobs,
    const warm_ops_t *ops);

/* Drop the lists (the jobs they started go on until the job layer's
 * teardown). */
void warm_destroy(warm_t *w);

/* The clock of the rounds (seconds); CLOCK_MONOTONIC unless a test sets
 * another. */
void warm_set_clock(warm_t *w, time_t (*now)(void));

/* Once a second: the warm_file, the rounds due, the progress of the
 * rounds under way (bounded work, see above). */
void warm_tick(warm_t *w);

/*
 * Parse text, an image reference without globs, and its n platforms into
 * spec: the registry must be in the config, a one-part name of a
 * registry with library_prefix gains "library/".  OCI_OK; OCI_EINVAL (a
 * reference or platform that fails its grammar), OCI_ENOENT (no such
 * registry) or OCI_ERANGE (more than WARM_PLATFORMS platforms), with err
 * saying why.
 */
int warm_spec_parse(const oci_config_t *cf, const char *text,
    char *const *platforms, size_t n, warm_spec_t *spec, char *err,
    size_t cap);

/* One line of a warm_file (split in place): 1 and spec filled, 0 for a
 * blank or comment line, or an error of warm_spec_parse() (err filled). */
int warm_parse_line(const oci_config_t *cf, char *line, warm_spec_t *spec,
    char *err, size_t cap);

/*
 * Add spec from ocimirrorctl: a new image is due at once; one already
 * listed is resolved again at once (unless a round is under way) and
 * takes these platforms unless the config lists it.  OCI_OK with *id;
 * OCI_ERANGE if warm_max images are listed (counted); OCI_ENOMEM.
 */
int warm_add(warm_t *w, const warm_spec_t *spec, unsigned *id);

/* Each image, by id. */
void warm_list(warm_t *w, warm_each_pt each, void *data);

/* Image id: OCI_OK with info filled, or OCI_ENOENT. */
int warm_image(warm_t *w, unsigned id, warm_info_t *info);

/* Each blob of image id's round under way, or of its last one: OCI_OK
 * or OCI_ENOENT. */
int warm_blobs(warm_t *w, unsigned id, warm_blob_each_pt each, void *data);

/* The counters and gauges of the metrics. */
void warm_state(warm_t *w, stats_warm_t *st);

const char *warm_state_name(warm_state_t state);
const char *warm_blob_state_name(warm_blob_state_t state);

#endif /* FETCHER_WARM_H */
