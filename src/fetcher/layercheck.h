/*
 * The deep check of a stored image layer, for the store scrub: the sha256
 * of the layer's uncompressed stream against the diff_id the image config
 * names for it (rootfs.diff_ids[i]).  A blob's own digest only says the
 * bytes are those upstream sent; this says they unpack to the layer the
 * image was built from, which is what a runtime checks after a pull.
 *
 * Incremental, so that the scrub can read a file at a bounded rate in
 * slices of the event loop: begin, feed the bytes in order in pieces of
 * any size, end.  Memory is fixed (zlib's state, a 64 KiB output buffer,
 * a digest context), whatever the size of the layer.  The work of one
 * feed is bounded by its n: deflate expands at most about 1032 to 1, so
 * a caller that must not hold the loop long passes small slices (4 KiB
 * inflate to at most about 4 MiB).
 *
 * How the bytes are read: the media type says gzip or plain tar, but the
 * data's first bytes decide, as containerd decides when it unpacks (so
 * the result is what a runtime would find).  gzip magic (1f 8b): gzip,
 * every member (`gzip -c a b` and some builders write several).  zstd
 * magic (28 b5 2f fd): not checked.  Anything else under a gzip type is
 * corrupt, under a tar type it is hashed as it is.  Other media types
 * (zstd layers, artifacts that are no image layer) are not checked.
 *
 * Pure: no I/O, no logging; the caller logs the result.
 */

#ifndef FETCHER_LAYERCHECK_H
#define FETCHER_LAYERCHECK_H

#include <stddef.h>
#include <zlib.h>
#include <openssl/evp.h>

#include "oci.h"

typedef enum {
    LAYERCHECK_MATCH = 0,       /* the uncompressed sha256 is the diff_id */
    LAYERCHECK_MISMATCH,        /* a sound stream that is another layer */
    LAYERCHECK_SKIPPED,         /* not checked: see layercheck_end() */
    LAYERCHECK_CORRUPT,         /* no valid stream: bad gzip data or CRC,
                                   truncated, trailing bytes, or a gzip
                                   type that is not gzip */
    LAYERCHECK_TOO_LARGE        /* inflates past max_out: a bomb, or sizes
                                   declared wrong */
} layercheck_result_t;

/* The caller's storage; the fields are layercheck.c's own. */
typedef struct {
    int                   state;
    layercheck_result_t   result;        /* once state is final */
    int                   gzip_type;     /* the media type says gzip */
    int                   inflating;     /* zs is initialised */
    int                   member_end;    /* a gzip member just ended */
    unsigned char         magic[4];      /* the first bytes, until known */
    size_t                nmagic;
    long long             out;           /* uncompressed bytes so far */
    long long             max_out;
    z_stream              zs;
    EVP_MD_CTX           *md;
    unsigned char        *buf;           /* inflate's output */
    char                  hex[OCI_SHA256_HEX_LEN + 1];   /* the diff_id */
} layercheck_t;

/*
 * Start a check of a layer of media_type whose config names diff_id
 * ("sha256:<64 hex>"); its uncompressed stream may be at most max_out
 * bytes (the caller passes the declared sizes plus a margin).
 *
 * A media_type that is no gzip or plain tar layer (NULL too) starts a
 * check that ends SKIPPED at once, and diff_id is not looked at (such
 * blobs have none).  So does a well-formed diff_id of another algorithm
 * (sha512): it cannot be checked with sha256.
 *
 * Returns OCI_OK (then end or abort must follow), OCI_EINVAL for an
 * invalid diff_id or a negative max_out, OCI_ENOMEM.  On an error lc
 * holds nothing, as after abort.
 */
int layercheck_begin(layercheck_t *lc, const char *media_type,
    const char *diff_id, long long max_out);

/*
 * The next n bytes of the blob.  Once the result is known (corrupt, too
 * large, skipped) it does nothing.  Returns OCI_OK, or OCI_ENOMEM when
 * zlib or OpenSSL failed to allocate: the check is then void (end says
 * SKIPPED) and the caller should abort it.
 */
int layercheck_feed(layercheck_t *lc, const void *p, size_t n);

/* 1 if the result no longer depends on more bytes (the scrub may stop
 * reading and call end), 0 if it does. */
int layercheck_known(const layercheck_t *lc);

/* The uncompressed bytes produced so far: a caller that must bound the
 * work of a slice of its loop counts the growth across its feeds, since
 * one input byte may bring about a thousand. */
long long layercheck_out(const layercheck_t *lc);

/*
 * Every byte was fed: the result, and free what begin allocated.  For
 * MATCH and MISMATCH got receives "sha256:<hex>" of the uncompressed
 * stream (cap OCI_DIGEST_MAX + 1); for the others, or a smaller cap, an
 * empty string (got may be NULL with cap 0).  SKIPPED also stands for a
 * check made void by a failed feed or a failed digest.
 */
layercheck_result_t layercheck_end(layercheck_t *lc, char *got, size_t cap);

/* Free what begin allocated, at any point (also after end, or after a
 * failed begin).  lc is left an empty check: feed does nothing, end says
 * SKIPPED. */
void layercheck_abort(layercheck_t *lc);

#endif /* FETCHER_LAYERCHECK_H */
