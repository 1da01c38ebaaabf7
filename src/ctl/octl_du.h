/*
 * ocimirrorctl du: what the store holds, and for whom, measured by the
 * CLI itself from the files (read-only), so that this walk of 100k files
 * never runs in the fetcher's loop.
 *
 * Bytes are what the files take on disk (st_blocks * 512), as the cache
 * manager counts them.  From each tag record (tags/<registry>/<name>/@tag)
 * the walk follows its manifest; an index's children that are stored (and
 * theirs, one level more); an image manifest's config and layers.  A file
 * counts once per image, once per repository, once per registry, and once
 * in the total however many tags name it: that is the deduplication the
 * store gives.  Files under sha256/ that no tag record reaches were pulled
 * by digest only, or their tags moved on (orphans the LRU takes in time).
 *
 * Memory is one entry per distinct digest the tag records reach (an open
 * addressing table, 56 bytes an entry), one per repository, and the top
 * images: never a list of the store's files.  Directories are read one
 * at a time.
 */

#ifndef OCTL_DU_H
#define OCTL_DU_H

#include <stdio.h>

#include "oci.h"

#define OCTL_DU_TOP_MAX  10000

/* A registry or a repository. */
typedef struct {
    char       *name;            /* "ghcr.io", or "ghcr.io/org/app" */
    size_t      registry;        /* a repository's: index in registries */
    long long   bytes;           /* distinct stored files, on disk */
    size_t      files;
    size_t      tags;            /* tag records */
} octl_du_group_t;

typedef struct {
    char       *ref;             /* "registry/name:tag" */
    long long   bytes;
    size_t      stored;          /* files of the image in the store */
    size_t      named;           /* files it names (stored or not) */
} octl_du_image_t;

typedef struct octl_du_entry_s  octl_du_entry_t;

typedef struct {
    /* sha256/: every blob and manifest */
    long long          bytes;
    size_t             files;
    /* of those, reached from a tag record, and not */
    long long          reachable_bytes;
    size_t             reachable_files;
    long long          unreachable_bytes;
    size_t             unreachable_files;
    /* everything else: tag records, media types, cached lists, temp
     * files, the marker */
    long long          other_bytes;
    size_t             other_files;

    size_t             tags;          /* tag records read */
    size_t             bad_records;   /* unreadable or corrupt ones */
    size_t             unreadable;    /* directories that could not be
                                         read (permissions) */

    octl_du_group_t   *registries;    /* by name */
    size_t             n_registries;
    octl_du_group_t   *repos;         /* by registry, then bytes */
    size_t             n_repos;
    octl_du_image_t   *top;           /* by bytes, largest first */
    size_t             n_top;
    size_t             top_max;

    /* the walk's own state */
    const char        *root;
    octl_du_entry_t   *table;
    size_t             table_size;    /* slots, a power of two */
    size_t             table_used;
    size_t             repos_cap;
    size_t             registries_cap;
    int                rootfd;
    uint32_t           gen_registry;
    uint32_t           gen_repo;
    uint32_t           gen_image;
} octl_du_t;

/*
 * Measure the store at root, keeping the top largest images (0 to
 * OCTL_DU_TOP_MAX).  OCI_OK (free du with octl_du_free() in any case),
 * OCI_EIO (the store cannot be read; err says why), OCI_ENOMEM.
 * Directories below the root that cannot be read are counted in
 * du->unreadable and skipped.
 */
int octl_du_walk(const char *root, size_t top, octl_du_t *du, char *err,
    size_t errlen);

void octl_du_free(octl_du_t *du);

/* The report, sizes as octl_bytes() gives them. */
void octl_du_print(FILE *out, const char *root, const octl_du_t *du,
    int exact);

#endif /* OCTL_DU_H */
