/*
 * The deep check of a stored image layer (see layercheck.h).
 */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci.h"
#include "oci_ref.h"
#include "layercheck.h"

#define LAYERCHECK_BUF  (64 * 1024)

/* lc->state */
enum {
    LAYERCHECK_SNIFF = 0,       /* the first bytes will say what follows */
    LAYERCHECK_INFLATE,
    LAYERCHECK_HASH,            /* plain tar: the bytes are the stream */
    LAYERCHECK_FINAL,           /* lc->result is the answer */
    LAYERCHECK_VOID             /* an internal error: nothing to say */
};

typedef struct {
    const char  *type;
    int          gzip;
} layercheck_type_t;

/* The layer types with a diff_id that zlib can unpack.  The
 * nondistributable and foreign types are deprecated, but old images still
 * name them, and a stored one is checked like any other. */
static const layercheck_type_t  layercheck_types[] = {
    { "application/vnd.oci.image.layer.v1.tar+gzip", 1 },
    { "application/vnd.oci.image.layer.v1.tar", 0 },
    { "application/vnd.docker.image.rootfs.diff.tar.gzip", 1 },
    { "application/vnd.docker.image.rootfs.diff.tar", 0 },
    { "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", 1 },
    { "application/vnd.oci.image.layer.nondistributable.v1.tar", 0 },
    { "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", 1 },
    { "application/vnd.docker.image.rootfs.foreign.diff.tar", 0 },
    { NULL, 0 }
};

static const unsigned char  layercheck_gzip_magic[] = { 0x1f, 0x8b };
static const unsigned char  layercheck_zstd_magic[] = { 0x28, 0xb5, 0x2f,
                                                        0xfd };


static int layercheck_sniffed(layercheck_t *lc);
static int layercheck_bytes(layercheck_t *lc, const unsigned char *p,
    size_t n);
static int layercheck_inflate(layercheck_t *lc, const unsigned char *p,
    size_t n);
static int layercheck_hash(layercheck_t *lc, const unsigned char *p,
    size_t n);
static void layercheck_final(layercheck_t *lc, layercheck_result_t result);


int
layercheck_begin(layercheck_t *lc, const char *media_type,
    const char *diff_id, long long max_out)
{
    const layercheck_type_t  *t;
    int                       rc;

    memset(lc, 0, sizeof(layercheck_t));

    if (max_out < 0) {
        layercheck_abort(lc);
        return OCI_EINVAL;
    }

    for (t = layercheck_types; t->type != NULL; t++) {
        if (media_type != NULL && strcmp(media_type, t->type) == 0) {
            break;
        }
    }

    if (t->type == NULL) {
        layercheck_final(lc, LAYERCHECK_SKIPPED);
        return OCI_OK;
    }

    if (diff_id == NULL) {
        layercheck_abort(lc);
        return OCI_EINVAL;
    }

    rc = oci_digest_parse(diff_id, strlen(diff_id), lc->hex);

    if (rc == OCI_ENOTSUP) {
        layercheck_final(lc, LAYERCHECK_SKIPPED);
        return OCI_OK;
    }

    if (rc != OCI_OK) {
        layercheck_abort(lc);
        return OCI_EINVAL;
    }

    lc->gzip_type = t->gzip;
    lc->max_out = max_out;

    /* allocated for a tar type as well: its data may turn out gzip */

    lc->buf = malloc(LAYERCHECK_BUF);
    lc->md = EVP_MD_CTX_new();

    if (lc->buf == NULL || lc->md == NULL) {
        layercheck_abort(lc);
        return OCI_ENOMEM;
    }

    if (EVP_DigestInit_ex(lc->md, EVP_sha256(), NULL) != 1) {
        layercheck_abort(lc);
        return OCI_ENOMEM;
    }

    /* 16 + 15: gzip only, no zlib header, the largest window */

    if (inflateInit2(&lc->zs, 16 + MAX_WBITS) != Z_OK) {
        layercheck_abort(lc);
        return OCI_ENOMEM;
    }

    lc->inflating = 1;

    return OCI_OK;
}


int
layercheck_feed(layercheck_t *lc, const void *p, size_t n)
{
    const unsigned char  *b = p;
    size_t                take;
    int                   rc;

    if (n == 0) {
        return OCI_OK;
    }

    if (lc->state == LAYERCHECK_SNIFF) {
        take = sizeof(lc->magic) - lc->nmagic;
        take = n < take ? n : take;

        memcpy(lc->magic + lc->nmagic, b, take);
        lc->nmagic += take;
        b += take;
        n -= take;

        if (lc->nmagic < sizeof(lc->magic)) {
            return OCI_OK;
        }

        rc = layercheck_sniffed(lc);
        if (rc != OCI_OK) {
            return rc;
        }
    }

    return layercheck_bytes(lc, b, n);
}


int
layercheck_known(const layercheck_t *lc)
{
    return lc->state == LAYERCHECK_FINAL || lc->state == LAYERCHECK_VOID;
}


long long
layercheck_out(const layercheck_t *lc)
{
    return lc->out;
}


layercheck_result_t
layercheck_end(layercheck_t *lc, char *got, size_t cap)
{
    unsigned char        md[EVP_MAX_MD_SIZE];
    unsigned int         mdlen;
    char                 hex[OCI_SHA256_HEX_LEN + 1];
    layercheck_result_t  result;

    if (got != NULL && cap > 0) {
        got[0] = '\0';
    }

    /* a blob shorter than the magic: what there is decides */

    if (lc->state == LAYERCHECK_SNIFF && layercheck_sniffed(lc) != OCI_OK) {
        lc->state = LAYERCHECK_VOID;
    }

    /* a gzip stream is whole only where a member ended */

    if (lc->state == LAYERCHECK_INFLATE && !lc->member_end) {
        layercheck_final(lc, LAYERCHECK_CORRUPT);
    }

    switch (lc->state) {

    case LAYERCHECK_FINAL:
        result = lc->result;
        break;

    case LAYERCHECK_INFLATE:
    case LAYERCHECK_HASH:
        mdlen = 0;

        if (EVP_DigestFinal_ex(lc->md, md, &mdlen) != 1
            || mdlen != OCI_SHA256_HEX_LEN / 2)
        {
            result = LAYERCHECK_SKIPPED;
            break;
        }

        oci_sha256_hex(md, hex);

        if (got != NULL && cap > OCI_DIGEST_MAX) {
            snprintf(got, cap, "sha256:%s", hex);
        }

        result = strcmp(hex, lc->hex) == 0 ? LAYERCHECK_MATCH
                                           : LAYERCHECK_MISMATCH;
        break;

    default:  /* LAYERCHECK_VOID */
        result = LAYERCHECK_SKIPPED;
        break;
    }

    layercheck_abort(lc);

    return result;
}


void
layercheck_abort(layercheck_t *lc)
{
    if (lc->inflating) {
        inflateEnd(&lc->zs);
    }

    EVP_MD_CTX_free(lc->md);
    free(lc->buf);

    /* what is left is a check with nothing to say: a feed or an end that
     * comes by mistake finds no freed pointer */

    memset(lc, 0, sizeof(layercheck_t));
    lc->state = LAYERCHECK_VOID;
}


/*
 * The first bytes are in (all four, or all there is at the end): choose
 * how to read the stream, then pass them on.  A zstd frame is skipped
 * whatever the type says, gzip is unpacked whatever it says: a runtime
 * sniffs the same way, and the diff_id is of what it unpacks.
 */
static int
layercheck_sniffed(layercheck_t *lc)
{
    if (lc->nmagic >= sizeof(layercheck_zstd_magic)
        && memcmp(lc->magic, layercheck_zstd_magic,
                  sizeof(layercheck_zstd_magic)) == 0)
    {
        layercheck_final(lc, LAYERCHECK_SKIPPED);
        return OCI_OK;
    }

    if (lc->nmagic >= sizeof(layercheck_gzip_magic)
        && memcmp(lc->magic, layercheck_gzip_magic,
                  sizeof(layercheck_gzip_magic)) == 0)
    {
        lc->state = LAYERCHECK_INFLATE;

    } else if (lc->gzip_type) {
        layercheck_final(lc, LAYERCHECK_CORRUPT);
        return OCI_OK;

    } else {
        lc->state = LAYERCHECK_HASH;
    }

    return layercheck_bytes(lc, lc->magic, lc->nmagic);
}


static int
layercheck_bytes(layercheck_t *lc, const unsigned char *p, size_t n)
{
    switch (lc->state) {

    case LAYERCHECK_INFLATE:
        return layercheck_inflate(lc, p, n);

    case LAYERCHECK_HASH:
        return layercheck_hash(lc, p, n);

    default:  /* final or void: the answer is known */
        return OCI_OK;
    }
}


/*
 * Inflate through the fixed buffer until the input is used up and the
 * buffer was not filled: a full buffer may leave output inside zlib, and
 * it is taken now, so that a feed does all the work its bytes bring and
 * max_out sees it at once (zlib's own examples loop the same way).
 */
static int
layercheck_inflate(layercheck_t *lc, const unsigned char *p, size_t n)
{
    z_stream  *zs = &lc->zs;
    size_t     produced;
    int        rc, zrc;

    zs->next_in = (Bytef *) p;
    zs->avail_in = 0;

    for ( ;; ) {

        /* avail_in is a uInt: a larger feed goes in in parts */

        if (zs->avail_in == 0 && n > 0) {
            zs->avail_in = n < UINT_MAX ? (uInt) n : UINT_MAX;
            n -= zs->avail_in;
        }

        if (lc->member_end) {
            if (zs->avail_in == 0) {
                return OCI_OK;
            }

            /* more after a member: it must be another member, or the
             * blob has trailing bytes and inflate refuses their header */

            if (inflateReset(zs) != Z_OK) {
                lc->state = LAYERCHECK_VOID;
                return OCI_ENOMEM;
            }

            lc->member_end = 0;
        }

        zs->next_out = lc->buf;
        zs->avail_out = LAYERCHECK_BUF;

        zrc = inflate(zs, Z_NO_FLUSH);

        produced = LAYERCHECK_BUF - zs->avail_out;

        if (produced > 0) {
            rc = layercheck_hash(lc, lc->buf, produced);
            if (rc != OCI_OK || lc->state != LAYERCHECK_INFLATE) {
                return rc;
            }
        }

        switch (zrc) {

        case Z_STREAM_END:
            lc->member_end = 1;
            break;

        case Z_OK:
            if (zs->avail_in == 0 && n == 0 && zs->avail_out != 0) {
                return OCI_OK;
            }

            break;

        case Z_BUF_ERROR:
            /* no progress possible: the output is out, the input too */
            return OCI_OK;

        case Z_DATA_ERROR:
        case Z_NEED_DICT:
            /* bad data, CRC or length; a dictionary is no gzip's */
            layercheck_final(lc, LAYERCHECK_CORRUPT);
            return OCI_OK;

        default:
            /* Z_MEM_ERROR, or Z_STREAM_ERROR that only misuse causes */
            lc->state = LAYERCHECK_VOID;
            return OCI_ENOMEM;
        }
    }
}


/* Uncompressed bytes: count them against max_out, hash them. */
static int
layercheck_hash(layercheck_t *lc, const unsigned char *p, size_t n)
{
    if ((unsigned long long) n > (unsigned long long) (lc->max_out - lc->out))
    {
        layercheck_final(lc, LAYERCHECK_TOO_LARGE);
        return OCI_OK;
    }

    lc->out += (long long) n;

    if (n > 0 && EVP_DigestUpdate(lc->md, p, n) != 1) {
        lc->state = LAYERCHECK_VOID;
        return OCI_ENOMEM;
    }

    return OCI_OK;
}


static void
layercheck_final(layercheck_t *lc, layercheck_result_t result)
{
    lc->state = LAYERCHECK_FINAL;
    lc->result = result;
}
