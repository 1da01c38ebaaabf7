/*
 * The content-addressed store, shared by the fetcher (the only writer of
 * blobs and tag records) and the nginx workers (readers).
 *
 *   <root>/sha256/<2 hex>/<64 hex>        blobs and manifests, by digest
 *   <root>/types/sha256/<2 hex>/<64 hex>  a manifest's media type (one
 *                                         line), written before the
 *                                         manifest itself becomes visible
 *   <root>/tags/<registry>/<name>/@<tag>  tag records
 *   <root>/taglists/<registry>/<name>/@list
 *                                         a repository's whole tag list,
 *                                         cached by the fetcher
 *   <root>/referrers/<registry>/<name>/@<64 hex>
 *                                         the referrers of a manifest,
 *                                         cached by the fetcher
 *   <root>/tmp/                           downloads in progress
 *   <root>/quarantine/<64 hex>.<unix-time>
 *                                         files the scrub found damaged,
 *                                         moved out of sha256/ (kept for
 *                                         a look, never served)
 *   <root>/scrub.state                    when the last scrub of the
 *                                         whole store ended
 *                                         (src/fetcher/scrub.h)
 *   <root>/ocimirror-store                a marker line, written by
 *                                         oci_store_prepare(); readiness
 *                                         reads it to prove the store is
 *                                         readable
 *
 * A blob appears under sha256/ only by rename() of a complete temp file
 * whose digest was verified; temp files are swept at fetcher start.
 * Paths are built only from parts that passed oci_ref.h's checks.
 */

#ifndef OCI_STORE_H
#define OCI_STORE_H

#include "oci.h"

/*
 * Modes of what the fetcher makes: nginx's workers read through the
 * store's group, nobody else reads at all.  tmp/ is group-writable
 * because a worker unlinks the answers handed to it there (BODY, a
 * relayed META).
 */
#define OCI_STORE_DIR_MODE   0750
#define OCI_STORE_TMP_MODE   0770
#define OCI_STORE_FILE_MODE  0640

typedef struct {
    char       digest[OCI_DIGEST_MAX + 1];   /* "sha256:..." */
    long long  size;
    char       media_type[OCI_MEDIA_TYPE_MAX + 1];
    long long  fetched_at;                   /* unix seconds */
} oci_tag_record_t;

/* Path builders: return OCI_OK, OCI_ERANGE, or OCI_EINVAL if a part fails
 * its check (hex: 64 lower hex; registry, name, tag: oci_ref.h). */
int oci_store_blob_path(const char *root, const char *hex, char *out,
    size_t cap);
int oci_store_type_path(const char *root, const char *hex, char *out,
    size_t cap);
int oci_store_tag_path(const char *root, const char *registry,
    const char *name, const char *tag, char *out, size_t cap);

/* Create the directories under root and the marker file.  OCI_OK or
 * OCI_EIO (err filled with the path and strerror). */
#define OCI_STORE_MARKER "ocimirror-store"
int oci_store_prepare(const char *root, char *err, size_t errlen);

/*
 * Let the group gid (the workers', fetcher.socket_group; -1: the
 * caller's own) read the store: the root and the directories
 * oci_store_prepare() made get that group and at least their modes
 * (OCI_STORE_DIR_MODE, tmp/ OCI_STORE_TMP_MODE; the marker
 * OCI_STORE_FILE_MODE), and, when gid is not
 * the caller's effective group, the set-group-ID bit, so that everything
 * made below takes the group without a chown() per file.  Only what is
 * missing is changed (no syscall when nothing is): bits a store already
 * had stay.  OCI_OK or OCI_EIO (err names the path and the call).
 */
int oci_store_share(const char *root, long gid, char *err, size_t errlen);

/* Write all n bytes of p to fd, at off with pwrite(), or at the file
 * position with write() if off is negative; retries on EINTR and short
 * writes.  0, or -1 with errno set (the caller logs, naming the call). */
int oci_write_all(int fd, const char *p, size_t n, long long off);

/* Remove every file under <root>/tmp.  Returns the count removed (>= 0)
 * or OCI_EIO. */
int oci_store_sweep(const char *root);

/* Create a new, empty temp file under <root>/tmp, opened O_RDWR, mode
 * 0640 (nginx workers, in the store's group, open it to stream a miss).
 * Returns the fd (>= 0) and its path in path_out, or OCI_EIO. */
int oci_store_tmp_create(const char *root, char *path_out, size_t cap);

/*
 * Make a fully written and verified temp file visible as the blob hex:
 * fsync the file (if do_fsync), create sha256/<2 hex>/, rename, fsync the
 * directory (if do_fsync).  The fd stays open and valid (the caller closes
 * it).  If the blob already exists the temp file is simply removed.
 * Returns OCI_OK or OCI_EIO.
 */
int oci_store_commit(const char *root, const char *tmp_path, int fd,
    const char *hex, int do_fsync);

/* Write / read the media type of a stored manifest. */
int oci_store_type_write(const char *root, const char *hex,
    const char *media_type, int do_fsync);
int oci_store_type_read(const char *root, const char *hex, char *out,
    size_t cap);

/*
 * Tag records: one line "<digest> <size> <media-type> <fetched-at>\n".
 * write: atomically (temp file, fsync if asked, rename), creating the
 * directories.  read: OCI_OK, OCI_ENOENT, or OCI_EINVAL for a corrupt
 * record (treated as absent by callers).
 */
int oci_tag_record_write(const char *root, const char *registry,
    const char *name, const char *tag, const oci_tag_record_t *rec,
    int do_fsync);
int oci_tag_record_read(const char *root, const char *registry,
    const char *name, const char *tag, oci_tag_record_t *rec);

/* Encode / parse the record line (used by the two functions above). */
int oci_tag_record_format(const oci_tag_record_t *rec, char *buf,
    size_t cap);
int oci_tag_record_parse(const char *buf, size_t len,
    oci_tag_record_t *rec);

/*
 * Answers the fetcher caches (tag lists, referrers): one file each, whose
 * mtime is the time it was fetched.  The '@' keeps a cached file from
 * colliding with a directory of a longer repository name.
 */
int oci_store_taglist_path(const char *root, const char *registry,
    const char *name, char *out, size_t cap);
int oci_store_referrers_path(const char *root, const char *registry,
    const char *name, const char *hex, char *out, size_t cap);

/* Replace the file at path (under root) with data atomically (temp file,
 * fsync if asked, rename), creating the directories.  OCI_OK or OCI_EIO
 * (errno set). */
int oci_store_cache_write(const char *root, const char *path,
    const char *data, size_t len, int do_fsync);

/*
 * Read the file at path whole: *out gets a malloc()ed copy with a NUL
 * after its *len bytes (the caller frees it), *mtime its modification
 * time (unix seconds).  OCI_OK, OCI_ENOENT, OCI_ERANGE (over max bytes),
 * OCI_ENOMEM or OCI_EIO (errno set).
 */
int oci_store_cache_read(const char *path, size_t max, char **out,
    size_t *len, long long *mtime);

#endif /* OCI_STORE_H */
