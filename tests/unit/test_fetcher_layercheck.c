/*
 * Unit tests for src/fetcher/layercheck.c: the sha256 of a layer's
 * uncompressed stream against its diff_id, fed in pieces of any size;
 * gzip members, damaged and truncated streams, trailing bytes, bombs,
 * plain tar, and what is not checked (zstd, other media types).
 *
 * The layers are made here with zlib, from pseudo-random bytes (which
 * deflate cannot shrink) and from text (which it shrinks a lot, so that
 * one piece inflates through the 64 KiB buffer many times).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>
#include <openssl/evp.h>

#include "oci.h"
#include "oci_ref.h"
#include "layercheck.h"

#define MT_OCI_GZIP     "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_TAR      "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_ZSTD     "application/vnd.oci.image.layer.v1.tar+zstd"
#define MT_DOCKER_GZIP  "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_DOCKER_TAR   "application/vnd.docker.image.rootfs.diff.tar"

#define RANDOM_LEN      (96 * 1024)
#define TEXT_LEN        (1024 * 1024)
#define WHOLE           ((size_t) -1)
#define NO_LIMIT        (1LL << 40)

typedef struct {
    unsigned char  *p;
    size_t          n;
} bytes_t;


static void
fill_random(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t  x = seed;
    size_t    i;

    /* xorshift32: the same bytes every run */

    for (i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char) x;
    }
}


static void
fill_text(unsigned char *p, size_t n)
{
    char    line[64];
    size_t  i, len;
    int     k;

    for (i = 0, k = 0; i < n; i += len, k++) {
        len = (size_t) snprintf(line, sizeof(line),
                                "usr/share/doc/file-%06d: ok\n", k);
        len = len < n - i ? len : n - i;
        memcpy(p + i, line, len);
    }
}


/* a layer's payload: random bytes, then text */
static bytes_t
payload(uint32_t seed)
{
    bytes_t  b;

    b.n = RANDOM_LEN + TEXT_LEN;
    b.p = malloc(b.n);
    assert_non_null(b.p);

    fill_random(b.p, RANDOM_LEN, seed);
    fill_text(b.p + RANDOM_LEN, TEXT_LEN);

    return b;
}


/* one gzip member of p (windowBits 16 + 15: a gzip wrapper) */
static bytes_t
gzip_of(const unsigned char *p, size_t n)
{
    z_stream  zs;
    bytes_t   b;

    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                                  16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);

    b.n = deflateBound(&zs, n);
    b.p = malloc(b.n);
    assert_non_null(b.p);

    zs.next_in = (Bytef *) p;
    zs.avail_in = (uInt) n;
    zs.next_out = b.p;
    zs.avail_out = (uInt) b.n;

    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    b.n = zs.total_out;
    deflateEnd(&zs);

    return b;
}


/* a and b, one after the other */
static bytes_t
concat(bytes_t a, const unsigned char *p, size_t n)
{
    bytes_t  b;

    b.n = a.n + n;
    b.p = malloc(b.n > 0 ? b.n : 1);
    assert_non_null(b.p);

    if (a.n > 0) {
        memcpy(b.p, a.p, a.n);
    }

    if (n > 0) {
        memcpy(b.p + a.n, p, n);
    }

    return b;
}


static void
digest_of(const unsigned char *p, size_t n, char out[OCI_DIGEST_MAX + 1])
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen;
    char           hex[OCI_SHA256_HEX_LEN + 1];

    assert_int_equal(EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL), 1);
    assert_int_equal(mdlen, OCI_SHA256_HEX_LEN / 2);

    oci_sha256_hex(md, hex);
    snprintf(out, OCI_DIGEST_MAX + 1, "sha256:%s", hex);
}


/* begin, feed data in pieces of piece bytes (WHOLE: at once), end */
static layercheck_result_t
check(const char *media_type, const char *diff_id, long long max_out,
    const unsigned char *p, size_t n, size_t piece,
    char got[OCI_DIGEST_MAX + 1])
{
    layercheck_t  lc;
    size_t        off, len;

    assert_int_equal(layercheck_begin(&lc, media_type, diff_id, max_out),
                     OCI_OK);

    if (piece == WHOLE) {
        piece = n > 0 ? n : 1;
    }

    for (off = 0; off < n; off += len) {
        len = n - off < piece ? n - off : piece;
        assert_int_equal(layercheck_feed(&lc, p + off, len), OCI_OK);
    }

    return layercheck_end(&lc, got, OCI_DIGEST_MAX + 1);
}


static void
assert_result(layercheck_result_t got, layercheck_result_t expected)
{
    static const char  *names[] = {
        "MATCH", "MISMATCH", "SKIPPED", "CORRUPT", "TOO_LARGE"
    };

    if (got != expected) {
        fail_msg("result %s, expected %s", names[got], names[expected]);
    }
}


/* The diff_id of the payload, in pieces of 1, 7 and 64 KiB bytes and at
 * once: the split of the input changes nothing. */
static void
test_match_pieces(void **state)
{
    static const size_t  pieces[] = { 1, 7, 64 * 1024, WHOLE };
    bytes_t              raw, gz;
    char                 want[OCI_DIGEST_MAX + 1];
    char                 got[OCI_DIGEST_MAX + 1];
    size_t               i;

    raw = payload(1);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    /* the text shrinks: one 64 KiB piece fills the buffer many times */
    assert_true(gz.n < RANDOM_LEN + TEXT_LEN / 8);

    for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        assert_result(check(MT_OCI_GZIP, want, NO_LIMIT, gz.p, gz.n,
                            pieces[i], got),
                      LAYERCHECK_MATCH);
        assert_string_equal(got, want);
    }

    /* docker's gzip type is the same */
    assert_result(check(MT_DOCKER_GZIP, want, NO_LIMIT, gz.p, gz.n, 4096,
                        got),
                  LAYERCHECK_MATCH);
    assert_string_equal(got, want);

    free(gz.p);
    free(raw.p);
}


/* layercheck_out() counts what the feeds unpacked, all of it by the end of
 * each feed: the scrub bounds a slice's work with it. */
static void
test_out(void **state)
{
    layercheck_t  lc;
    bytes_t       raw, gz;
    char          want[OCI_DIGEST_MAX + 1];
    long long     before;
    size_t        off, len;

    raw = payload(3);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP, want, NO_LIMIT),
                     OCI_OK);
    assert_int_equal(layercheck_out(&lc), 0);

    before = 0;

    for (off = 0; off < gz.n; off += len) {
        len = gz.n - off < 4096 ? gz.n - off : 4096;
        assert_int_equal(layercheck_feed(&lc, gz.p + off, len), OCI_OK);
        assert_true(layercheck_out(&lc) >= before);
        before = layercheck_out(&lc);
    }

    assert_int_equal(layercheck_out(&lc), (long long) raw.n);
    assert_result(layercheck_end(&lc, NULL, 0), LAYERCHECK_MATCH);

    free(gz.p);
    free(raw.p);
}


/* A sound stream of another layer: MISMATCH, and got says what it is. */
static void
test_mismatch(void **state)
{
    bytes_t  raw, gz;
    char     want[OCI_DIGEST_MAX + 1], other[OCI_DIGEST_MAX + 1];
    char     got[OCI_DIGEST_MAX + 1];

    raw = payload(2);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    /* the compressed blob's own digest is not the diff_id */
    digest_of(gz.p, gz.n, other);

    assert_result(check(MT_OCI_GZIP, other, NO_LIMIT, gz.p, gz.n, 7, got),
                  LAYERCHECK_MISMATCH);
    assert_string_equal(got, want);

    free(gz.p);
    free(raw.p);
}


/* got is filled only when it holds a whole digest. */
static void
test_got_cap(void **state)
{
    layercheck_t  lc;
    bytes_t       raw, gz;
    char          want[OCI_DIGEST_MAX + 1];
    char          got[OCI_DIGEST_MAX + 1];

    raw = payload(3);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP, want, NO_LIMIT),
                     OCI_OK);
    assert_int_equal(layercheck_feed(&lc, gz.p, gz.n), OCI_OK);
    memset(got, 'x', sizeof(got));
    assert_result(layercheck_end(&lc, got, OCI_DIGEST_MAX), LAYERCHECK_MATCH);
    assert_string_equal(got, "");

    assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP, want, NO_LIMIT),
                     OCI_OK);
    assert_int_equal(layercheck_feed(&lc, gz.p, gz.n), OCI_OK);
    assert_result(layercheck_end(&lc, NULL, 0), LAYERCHECK_MATCH);

    free(gz.p);
    free(raw.p);
}


static void
assert_flip(const bytes_t *gz, size_t off, const char *diff_id,
    int must_be_corrupt)
{
    layercheck_result_t  r;
    char                 got[OCI_DIGEST_MAX + 1];

    gz->p[off] ^= 0x01;
    r = check(MT_OCI_GZIP, diff_id, NO_LIMIT, gz->p, gz->n, 4096, got);
    gz->p[off] ^= 0x01;

    if (r == LAYERCHECK_MATCH
        || (must_be_corrupt && r != LAYERCHECK_CORRUPT))
    {
        fail_msg("a flipped bit at %zu of %zu gave result %d", off, gz->n,
                 (int) r);
    }
}


/* A damaged byte is never a MATCH; in the header, the CRC or the length
 * it is CORRUPT for certain. */
static void
test_flipped_byte(void **state)
{
    bytes_t  raw, gz;
    char     want[OCI_DIGEST_MAX + 1];
    char     got[OCI_DIGEST_MAX + 1];

    raw = payload(4);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    assert_flip(&gz, gz.n / 4, want, 0);             /* random part */
    assert_flip(&gz, gz.n - 100, want, 0);           /* text part */
    assert_flip(&gz, 2, want, 1);                    /* method: 8 */
    assert_flip(&gz, gz.n - 8, want, 1);             /* CRC-32 */
    assert_flip(&gz, gz.n - 1, want, 1);             /* ISIZE */

    /* and the blob put back is sound: the flips were the cause */
    assert_result(check(MT_OCI_GZIP, want, NO_LIMIT, gz.p, gz.n, 4096, got),
                  LAYERCHECK_MATCH);

    free(gz.p);
    free(raw.p);
}


/* A stream cut anywhere is CORRUPT, down to no byte at all. */
static void
test_truncated(void **state)
{
    bytes_t  raw, gz;
    char     want[OCI_DIGEST_MAX + 1];
    char     got[OCI_DIGEST_MAX + 1];
    size_t   cuts[8], i;

    raw = payload(5);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    cuts[0] = gz.n - 1;          /* the last byte of ISIZE */
    cuts[1] = gz.n - 8;          /* no trailer */
    cuts[2] = gz.n / 2;
    cuts[3] = 10;                /* the header only */
    cuts[4] = 3;
    cuts[5] = 2;                 /* the magic only */
    cuts[6] = 1;
    cuts[7] = 0;

    for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        assert_result(check(MT_OCI_GZIP, want, NO_LIMIT, gz.p, cuts[i], 7,
                            got),
                      LAYERCHECK_CORRUPT);
        assert_string_equal(got, "");
    }

    free(gz.p);
    free(raw.p);
}


/* Bytes after the last member are CORRUPT: zeros, text, or the start of
 * a member that never comes. */
static void
test_trailing_garbage(void **state)
{
    static const unsigned char  zeros[512];
    static const unsigned char  magic[] = { 0x1f, 0x8b };
    bytes_t                     raw, gz, bad;
    char                        want[OCI_DIGEST_MAX + 1];
    char                        got[OCI_DIGEST_MAX + 1];
    const unsigned char        *tails[4];
    size_t                      lens[4], i;

    raw = payload(6);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    tails[0] = (const unsigned char *) "x";
    lens[0] = 1;
    tails[1] = zeros;
    lens[1] = sizeof(zeros);
    tails[2] = magic;
    lens[2] = 1;
    tails[3] = magic;
    lens[3] = 2;

    for (i = 0; i < 4; i++) {
        bad = concat(gz, tails[i], lens[i]);

        assert_result(check(MT_OCI_GZIP, want, NO_LIMIT, bad.p, bad.n, WHOLE,
                            got),
                      LAYERCHECK_CORRUPT);
        assert_result(check(MT_OCI_GZIP, want, NO_LIMIT, bad.p, bad.n, 1,
                            got),
                      LAYERCHECK_CORRUPT);

        free(bad.p);
    }

    free(gz.p);
    free(raw.p);
}


/* `gzip -c a b`: the members' payloads, one after the other, are the
 * layer; an empty member in between changes nothing. */
static void
test_concatenated(void **state)
{
    static const size_t  pieces[] = { 1, 7, 64 * 1024, WHOLE };
    bytes_t              a, b, both, gza, gzb, gze, two, three;
    char                 want[OCI_DIGEST_MAX + 1];
    char                 got[OCI_DIGEST_MAX + 1];
    size_t               i;

    a = payload(7);
    b = payload(8);
    both = concat(a, b.p, b.n);
    digest_of(both.p, both.n, want);

    gza = gzip_of(a.p, a.n);
    gzb = gzip_of(b.p, b.n);
    gze = gzip_of((const unsigned char *) "", 0);
    two = concat(gza, gzb.p, gzb.n);

    for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        assert_result(check(MT_OCI_GZIP, want, NO_LIMIT, two.p, two.n,
                            pieces[i], got),
                      LAYERCHECK_MATCH);
        assert_string_equal(got, want);
    }

    three = concat(gza, gze.p, gze.n);
    free(two.p);
    two = concat(three, gzb.p, gzb.n);

    assert_result(check(MT_OCI_GZIP, want, NO_LIMIT, two.p, two.n, 7, got),
                  LAYERCHECK_MATCH);

    /* the first member alone is a sound stream of another layer */
    assert_result(check(MT_OCI_GZIP, want, NO_LIMIT, gza.p, gza.n, 7, got),
                  LAYERCHECK_MISMATCH);

    free(three.p);
    free(two.p);
    free(gze.p);
    free(gzb.p);
    free(gza.p);
    free(both.p);
    free(b.p);
    free(a.p);
}


/* 8 MiB of zeros in a few KiB: past max_out the check stops, TOO_LARGE;
 * max_out itself is allowed. */
static void
test_bomb(void **state)
{
    layercheck_t  lc;
    bytes_t       zeros, gz;
    char          want[OCI_DIGEST_MAX + 1];
    char          got[OCI_DIGEST_MAX + 1];
    long long     size;

    size = 8LL << 20;
    zeros.n = (size_t) size;
    zeros.p = calloc(1, zeros.n);
    assert_non_null(zeros.p);

    gz = gzip_of(zeros.p, zeros.n);
    digest_of(zeros.p, zeros.n, want);
    assert_true(gz.n < 16 * 1024);

    /* known as soon as the bytes are in: the scrub may stop reading */
    assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP, want, 1LL << 20),
                     OCI_OK);
    assert_int_equal(layercheck_feed(&lc, gz.p, gz.n / 2), OCI_OK);
    assert_true(layercheck_known(&lc));
    assert_int_equal(layercheck_feed(&lc, gz.p + gz.n / 2, gz.n - gz.n / 2),
                     OCI_OK);
    assert_result(layercheck_end(&lc, got, sizeof(got)),
                  LAYERCHECK_TOO_LARGE);
    assert_string_equal(got, "");

    assert_result(check(MT_OCI_GZIP, want, size - 1, gz.p, gz.n, WHOLE,
                        got),
                  LAYERCHECK_TOO_LARGE);
    assert_result(check(MT_OCI_GZIP, want, size, gz.p, gz.n, WHOLE, got),
                  LAYERCHECK_MATCH);

    /* the limit holds for a plain tar as well */
    assert_result(check(MT_OCI_TAR, want, size - 1, zeros.p, zeros.n,
                        64 * 1024, got),
                  LAYERCHECK_TOO_LARGE);
    assert_result(check(MT_OCI_TAR, want, size, zeros.p, zeros.n,
                        64 * 1024, got),
                  LAYERCHECK_MATCH);

    free(gz.p);
    free(zeros.p);
}


/* A plain tar is its own stream: the diff_id is the blob's digest. */
static void
test_tar(void **state)
{
    static const size_t  pieces[] = { 1, 7, 64 * 1024, WHOLE };
    bytes_t              raw;
    char                 want[OCI_DIGEST_MAX + 1];
    char                 got[OCI_DIGEST_MAX + 1];
    size_t               i, n;

    raw = payload(9);
    digest_of(raw.p, raw.n, want);

    for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        assert_result(check(MT_OCI_TAR, want, NO_LIMIT, raw.p, raw.n,
                            pieces[i], got),
                      LAYERCHECK_MATCH);
        assert_string_equal(got, want);
    }

    assert_result(check(MT_DOCKER_TAR, want, NO_LIMIT, raw.p, raw.n, 4096,
                        got),
                  LAYERCHECK_MATCH);

    /* one byte more is another layer */
    assert_result(check(MT_OCI_TAR, want, NO_LIMIT, raw.p, raw.n - 1, 4096,
                        got),
                  LAYERCHECK_MISMATCH);

    /* shorter than the magic the check looks for: hashed all the same */
    for (n = 0; n < 4; n++) {
        digest_of(raw.p, n, want);
        assert_result(check(MT_OCI_TAR, want, NO_LIMIT, raw.p, n, 1, got),
                      LAYERCHECK_MATCH);
        assert_string_equal(got, want);
    }

    free(raw.p);
}


/* gzip data under a tar type is unpacked, as a runtime would. */
static void
test_tar_type_gzip_data(void **state)
{
    bytes_t  raw, gz;
    char     want[OCI_DIGEST_MAX + 1];
    char     got[OCI_DIGEST_MAX + 1];

    raw = payload(10);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    assert_result(check(MT_OCI_TAR, want, NO_LIMIT, gz.p, gz.n, 7, got),
                  LAYERCHECK_MATCH);
    assert_string_equal(got, want);

    free(gz.p);
    free(raw.p);
}


/* A gzip type whose data is no gzip is CORRUPT, known from the first
 * bytes; what comes after does not change it. */
static void
test_gzip_type_not_gzip(void **state)
{
    layercheck_t  lc;
    bytes_t       raw, gz;
    char          want[OCI_DIGEST_MAX + 1];
    char          got[OCI_DIGEST_MAX + 1];

    raw = payload(11);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP, want, NO_LIMIT),
                     OCI_OK);
    assert_int_equal(layercheck_feed(&lc, raw.p, 3), OCI_OK);
    assert_false(layercheck_known(&lc));
    assert_int_equal(layercheck_feed(&lc, raw.p + 3, 1), OCI_OK);
    assert_true(layercheck_known(&lc));

    /* a sound gzip stream fed after it is ignored */
    assert_int_equal(layercheck_feed(&lc, gz.p, gz.n), OCI_OK);
    assert_result(layercheck_end(&lc, got, sizeof(got)), LAYERCHECK_CORRUPT);
    assert_string_equal(got, "");

    free(gz.p);
    free(raw.p);
}


/* zstd layers are not checked (no zstd here), by type or by magic. */
static void
test_zstd(void **state)
{
    layercheck_t   lc;
    bytes_t        raw, gz, zst;
    char           want[OCI_DIGEST_MAX + 1];
    char           got[OCI_DIGEST_MAX + 1];
    unsigned char  frame[4096];

    raw = payload(12);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    /* by type: skipped at once, even with data that would match */
    assert_int_equal(layercheck_begin(&lc, MT_OCI_ZSTD, want, NO_LIMIT),
                     OCI_OK);
    assert_true(layercheck_known(&lc));
    assert_int_equal(layercheck_feed(&lc, gz.p, gz.n), OCI_OK);
    memset(got, 'x', sizeof(got));
    assert_result(layercheck_end(&lc, got, sizeof(got)), LAYERCHECK_SKIPPED);
    assert_string_equal(got, "");

    /* by magic, whatever the type says, the magic split across feeds */
    fill_random(frame, sizeof(frame), 13);
    frame[0] = 0x28;
    frame[1] = 0xb5;
    frame[2] = 0x2f;
    frame[3] = 0xfd;
    zst.p = frame;
    zst.n = sizeof(frame);

    assert_result(check(MT_OCI_GZIP, want, NO_LIMIT, zst.p, zst.n, 1, got),
                  LAYERCHECK_SKIPPED);
    assert_result(check(MT_DOCKER_GZIP, want, NO_LIMIT, zst.p, zst.n, WHOLE,
                        got),
                  LAYERCHECK_SKIPPED);
    assert_result(check(MT_OCI_TAR, want, NO_LIMIT, zst.p, zst.n, 3, got),
                  LAYERCHECK_SKIPPED);

    /* three bytes of it are no frame: a tar type hashes them */
    digest_of(frame, 3, want);
    assert_result(check(MT_OCI_TAR, want, NO_LIMIT, frame, 3, 1, got),
                  LAYERCHECK_MATCH);

    free(gz.p);
    free(raw.p);
}


/* Other media types are no image layer: SKIPPED, and no diff_id needed. */
static void
test_unknown_type(void **state)
{
    static const char  *types[] = {
        "application/octet-stream",
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip;foo=bar",
        "application/vnd.oci.image.config.v1+json",
        "",
        NULL
    };
    bytes_t             raw, gz;
    char                want[OCI_DIGEST_MAX + 1];
    char                got[OCI_DIGEST_MAX + 1];
    size_t              i;

    raw = payload(14);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        assert_result(check(types[i], want, NO_LIMIT, gz.p, gz.n, WHOLE,
                            got),
                      LAYERCHECK_SKIPPED);
        assert_string_equal(got, "");
        assert_result(check(types[i], NULL, NO_LIMIT, gz.p, gz.n, WHOLE,
                            got),
                      LAYERCHECK_SKIPPED);
    }

    free(gz.p);
    free(raw.p);
}


/* A diff_id that is no sha256 digest is refused; one of another
 * algorithm cannot be checked. */
static void
test_invalid_diff_id(void **state)
{
    static const char  *bad[] = {
        "",
        "sha256:",
        "sha256:0123456789abcdef0123456789abcdef"
            "0123456789abcdef0123456789abcde",
        "sha256:0123456789abcdef0123456789abcdef"
            "0123456789abcdef0123456789abcdef0",
        "sha256:0123456789ABCDEF0123456789abcdef"
            "0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:0123456789abcdef0123456789abcdef"
            "0123456789abcdef0123456789abcdeg",
        NULL
    };
    layercheck_t        lc;
    char                got[OCI_DIGEST_MAX + 1];
    char                sha512[8 + 128 + 1];
    size_t              i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP, bad[i],
                                          NO_LIMIT),
                         OCI_EINVAL);

        /* nothing held; a mistaken feed or end finds nothing freed */
        assert_null(lc.md);
        assert_null(lc.buf);
        assert_int_equal(layercheck_feed(&lc, "\x1f\x8b", 2), OCI_OK);
        assert_result(layercheck_end(&lc, got, sizeof(got)),
                      LAYERCHECK_SKIPPED);
        layercheck_abort(&lc);

        assert_int_equal(layercheck_begin(&lc, MT_OCI_TAR, bad[i],
                                          NO_LIMIT),
                         OCI_EINVAL);
    }

    assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP,
                                      "sha256:0123456789abcdef0123456789abcdef"
                                      "0123456789abcdef0123456789abcdef", -1),
                     OCI_EINVAL);

    memcpy(sha512, "sha512:", 7);
    memset(sha512 + 7, 'a', 128);
    sha512[7 + 128] = '\0';

    assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP, sha512, NO_LIMIT),
                     OCI_OK);
    assert_true(layercheck_known(&lc));
    assert_result(layercheck_end(&lc, got, sizeof(got)), LAYERCHECK_SKIPPED);
}


/* Abort mid-way frees all (valgrind shows it), and may come twice or
 * after end. */
static void
test_abort(void **state)
{
    layercheck_t  lc;
    bytes_t       raw, gz;
    char          want[OCI_DIGEST_MAX + 1];
    char          got[OCI_DIGEST_MAX + 1];

    raw = payload(15);
    gz = gzip_of(raw.p, raw.n);
    digest_of(raw.p, raw.n, want);

    assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP, want, NO_LIMIT),
                     OCI_OK);
    assert_non_null(lc.md);
    assert_non_null(lc.buf);
    assert_int_equal(layercheck_feed(&lc, gz.p, gz.n / 2), OCI_OK);
    assert_false(layercheck_known(&lc));

    layercheck_abort(&lc);
    assert_null(lc.md);
    assert_null(lc.buf);
    assert_int_equal(lc.inflating, 0);
    layercheck_abort(&lc);

    assert_int_equal(layercheck_feed(&lc, gz.p + gz.n / 2, gz.n - gz.n / 2),
                     OCI_OK);
    assert_result(layercheck_end(&lc, got, sizeof(got)), LAYERCHECK_SKIPPED);

    /* after end */
    assert_int_equal(layercheck_begin(&lc, MT_OCI_GZIP, want, NO_LIMIT),
                     OCI_OK);
    assert_int_equal(layercheck_feed(&lc, gz.p, gz.n), OCI_OK);
    assert_result(layercheck_end(&lc, got, sizeof(got)), LAYERCHECK_MATCH);
    assert_null(lc.md);
    layercheck_abort(&lc);

    free(gz.p);
    free(raw.p);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_pieces),
        cmocka_unit_test(test_out),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_got_cap),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_concatenated),
        cmocka_unit_test(test_bomb),
        cmocka_unit_test(test_tar),
        cmocka_unit_test(test_tar_type_gzip_data),
        cmocka_unit_test(test_gzip_type_not_gzip),
        cmocka_unit_test(test_zstd),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_invalid_diff_id),
        cmocka_unit_test(test_abort),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
