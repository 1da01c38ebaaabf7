/*
 * Unit tests for src/fetcher/scrub.c on a real temp store: good files
 * pass, a flipped byte is quarantined with its types/ line and the cache
 * told, quarantine/ is bounded, slices respect the pace, a file that goes
 * or is replaced while it is read is not reported, the deep check of
 * layers against their diff_ids (match, mismatch named by tag or index,
 * a layer shared by images read once, zstd and artifacts skipped, a
 * broken gzip), the pass of one image, one pass at a time, and the
 * schedule kept in scrub.state across a restart.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>
#include <openssl/evp.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "cache.h"
#include "loop.h"
#include "scrub.h"
#include "test_util.h"

#define MT_GZIP       "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_ZSTD       "application/vnd.oci.image.layer.v1.tar+zstd"
#define MT_CONFIG     "application/vnd.oci.image.config.v1+json"
#define MT_HELM       "application/vnd.cncf.helm.config.v1+json"
#define MT_ARTIFACT   "application/vnd.example.sbom.v1+json"

#define FAST          (1LL << 30)       /* bytes/s: no pace to speak of */


typedef struct {
    char           root[64];
    oci_config_t   cf;
    loop_t        *loop;
    cache_t       *cache;
    scrub_t       *scrub;
} fixture_t;

/* A blob as stored: its bytes and digest. */
typedef struct {
    unsigned char  *p;
    size_t          n;
    char            hex[OCI_SHA256_HEX_LEN + 1];
    char            digest[OCI_DIGEST_MAX + 1];
} blob_t;

/* An image as stored. */
typedef struct {
    blob_t   layer;
    blob_t   config;
    blob_t   manifest;
    char     diff_id[OCI_DIGEST_MAX + 1];   /* the layer's true one */
} image_t;


static void
mkdir_in(const char *root, const char *rel)
{
    char  path[OCI_PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", root, rel);
    assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
}


static int
setup(void **state)
{
    fixture_t  *f;

    f = calloc(1, sizeof(fixture_t));
    assert_non_null(f);

    strcpy(f->root, "/tmp/oci-test-scrub.XXXXXX");
    assert_non_null(mkdtemp(f->root));

    mkdir_in(f->root, "sha256");
    mkdir_in(f->root, "types");
    mkdir_in(f->root, "types/sha256");
    mkdir_in(f->root, "tags");
    mkdir_in(f->root, "tmp");

    f->cf.store_path = f->root;
    f->cf.store_high_watermark = 90;
    f->cf.store_low_watermark = 80;
    f->cf.store_max_size = 1LL << 40;
    f->cf.scrub_rate = FAST;
    f->cf.scrub_interval = 0;
    f->cf.quarantine_max = 100;

    f->loop = loop_create();
    assert_non_null(f->loop);

    *state = f;
    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    scrub_destroy(f->scrub);
    cache_destroy(f->cache);
    loop_destroy(f->loop);
    test_rm_rf(f->root);
    free(f);

    return 0;
}


static void
sha256_of(const unsigned char *p, size_t n, char hex[OCI_SHA256_HEX_LEN + 1])
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   len;

    assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
    oci_sha256_hex(md, hex);
}


static void
path_of(fixture_t *f, const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->root, rel);
}


static void
write_file(const char *path, const unsigned char *p, size_t n)
{
    int  fd;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd != -1);
    assert_true(n == 0 || write(fd, p, n) == (ssize_t) n);
    assert_int_equal(close(fd), 0);
}


static int
exists(fixture_t *f, const char *rel)
{
    char         path[OCI_PATH_MAX];
    struct stat  st;

    path_of(f, rel, path, sizeof(path));
    return stat(path, &st) == 0;
}


static void
blob_rel(const blob_t *b, char *out, size_t cap)
{
    snprintf(out, cap, "sha256/%.2s/%s", b->hex, b->hex);
}


static int
blob_stored(fixture_t *f, const blob_t *b)
{
    char  rel[512];

    blob_rel(b, rel, sizeof(rel));
    return exists(f, rel);
}


/* Store n bytes of p under their own digest (corrupt: then flip a byte of
 * the stored copy, the name stays). */
static blob_t
put_blob(fixture_t *f, const void *p, size_t n, int corrupt)
{
    blob_t  b;
    char    path[OCI_PATH_MAX], rel[512];

    b.n = n;
    b.p = malloc(n > 0 ? n : 1);
    assert_non_null(b.p);
    memcpy(b.p, p, n);
    sha256_of(b.p, n, b.hex);
    snprintf(b.digest, sizeof(b.digest), "sha256:%s", b.hex);

    snprintf(rel, sizeof(rel), "sha256/%.2s", b.hex);
    mkdir_in(f->root, rel);
    blob_rel(&b, rel, sizeof(rel));
    path_of(f, rel, path, sizeof(path));

    if (corrupt) {
        b.p[n / 2] ^= 0x01;
    }

    write_file(path, b.p, n);

    return b;
}


static blob_t
put_random(fixture_t *f, size_t n, unsigned seed, int corrupt)
{
    unsigned char  *p;
    blob_t          b;
    size_t          i;
    uint32_t        x;

    p = malloc(n);
    assert_non_null(p);

    for (i = 0, x = seed * 2654435761u + 1; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char) x;
    }

    b = put_blob(f, p, n, corrupt);
    free(p);

    return b;
}


static void
put_type(fixture_t *f, const blob_t *b, const char *media_type)
{
    assert_int_equal(oci_store_type_write(f->root, b->hex, media_type, 0),
                     OCI_OK);
}


static void
put_tag(fixture_t *f, const char *registry, const char *name,
    const char *tag, const blob_t *b, const char *media_type)
{
    oci_tag_record_t  rec;

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.digest, sizeof(rec.digest), "%s", b->digest);
    rec.size = (long long) b->n;
    snprintf(rec.media_type, sizeof(rec.media_type), "%s", media_type);
    rec.fetched_at = time(NULL);

    assert_int_equal(oci_tag_record_write(f->root, registry, name, tag, &rec,
                                          0), OCI_OK);
}


static void
blob_free(blob_t *b)
{
    free(b->p);
    b->p = NULL;
}


/* One gzip member of p. */
static unsigned char *
gzip_of(const unsigned char *p, size_t n, size_t *out)
{
    unsigned char  *z;
    z_stream        zs;

    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                                  16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);

    *out = deflateBound(&zs, n);
    z = malloc(*out);
    assert_non_null(z);

    zs.next_in = (Bytef *) p;
    zs.avail_in = (uInt) n;
    zs.next_out = z;
    zs.avail_out = (uInt) *out;

    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out = zs.total_out;
    deflateEnd(&zs);

    return z;
}


/* A gzip layer of n bytes of text (seed makes it unique). */
static blob_t
put_layer(fixture_t *f, unsigned seed, size_t n,
    char diff_id[OCI_DIGEST_MAX + 1], int corrupt)
{
    unsigned char  *raw, *z;
    char            hex[OCI_SHA256_HEX_LEN + 1];
    size_t          i, zn;
    blob_t          b;

    raw = malloc(n);
    assert_non_null(raw);

    for (i = 0; i < n; i++) {
        raw[i] = (unsigned char) ("layer text "[i % 11] + (i / 977 + seed)
                                                           % 7);
    }

    sha256_of(raw, n, hex);
    snprintf(diff_id, OCI_DIGEST_MAX + 1, "sha256:%s", hex);

    z = gzip_of(raw, n, &zn);
    b = put_blob(f, z, zn, corrupt);

    free(z);
    free(raw);

    return b;
}


/* A config naming diff_ids (NULL: "rootfs" left out), of media type
 * config_type, and a manifest over it and the layers. */
static void
put_manifest(fixture_t *f, image_t *im, const char *config_type,
    const char *const *diff_ids, size_t ndiff, const blob_t *layers,
    const char *const *layer_types, size_t nlayers)
{
    char    buf[8192];
    size_t  len, i;

    len = (size_t) snprintf(buf, sizeof(buf), "{\"architecture\":\"amd64\","
                            "\"os\":\"linux\"");

    if (diff_ids != NULL) {
        len += (size_t) snprintf(buf + len, sizeof(buf) - len,
                                 ",\"rootfs\":{\"type\":\"layers\","
                                 "\"diff_ids\":[");

        for (i = 0; i < ndiff; i++) {
            len += (size_t) snprintf(buf + len, sizeof(buf) - len,
                                     "%s\"%s\"", i > 0 ? "," : "",
                                     diff_ids[i]);
        }

        len += (size_t) snprintf(buf + len, sizeof(buf) - len, "]}");
    }

    len += (size_t) snprintf(buf + len, sizeof(buf) - len, "}");
    im->config = put_blob(f, buf, len, 0);

    len = (size_t) snprintf(buf, sizeof(buf), "{\"schemaVersion\":2,"
                            "\"mediaType\":\"" OCI_MT_OCI_MANIFEST "\","
                            "\"config\":{\"mediaType\":\"%s\","
                            "\"digest\":\"%s\",\"size\":%zu},\"layers\":[",
                            config_type, im->config.digest, im->config.n);

    for (i = 0; i < nlayers; i++) {
        len += (size_t) snprintf(buf + len, sizeof(buf) - len,
                                 "%s{\"mediaType\":\"%s\",\"digest\":\"%s\","
                                 "\"size\":%zu}", i > 0 ? "," : "",
                                 layer_types[i], layers[i].digest,
                                 layers[i].n);
    }

    len += (size_t) snprintf(buf + len, sizeof(buf) - len, "]}");

    im->manifest = put_blob(f, buf, len, 0);
    put_type(f, &im->manifest, OCI_MT_OCI_MANIFEST);
}


/* An image of one gzip layer whose config names diff_id (NULL: the
 * layer's true one). */
static void
put_image(fixture_t *f, image_t *im, unsigned seed, const char *diff_id)
{
    const char  *types[] = { MT_GZIP };
    const char  *ids[1];

    im->layer = put_layer(f, seed, 200000, im->diff_id, 0);
    ids[0] = diff_id != NULL ? diff_id : im->diff_id;
    put_manifest(f, im, MT_CONFIG, ids, 1, &im->layer, types, 1);
}


static void
image_free(image_t *im)
{
    blob_free(&im->layer);
    blob_free(&im->config);
    blob_free(&im->manifest);
}


/* An index of the manifests. */
static blob_t
put_index(fixture_t *f, const image_t *const *images, size_t n)
{
    char    buf[4096];
    size_t  len, i;
    blob_t  b;

    len = (size_t) snprintf(buf, sizeof(buf), "{\"schemaVersion\":2,"
                            "\"mediaType\":\"" OCI_MT_OCI_INDEX "\","
                            "\"manifests\":[");

    for (i = 0; i < n; i++) {
        len += (size_t) snprintf(buf + len, sizeof(buf) - len,
                                 "%s{\"mediaType\":\"" OCI_MT_OCI_MANIFEST
                                 "\",\"digest\":\"%s\",\"size\":%zu,"
                                 "\"platform\":{\"os\":\"linux\","
                                 "\"architecture\":\"amd%zu\"}}",
                                 i > 0 ? "," : "", images[i]->manifest.digest,
                                 images[i]->manifest.n, i);
    }

    len += (size_t) snprintf(buf + len, sizeof(buf) - len, "]}");

    b = put_blob(f, buf, len, 0);
    put_type(f, &b, OCI_MT_OCI_INDEX);

    return b;
}


static scrub_status_t
status_of(fixture_t *f)
{
    scrub_status_t  st;

    scrub_status(f->scrub, &st);
    return st;
}


static stats_store_t
store_of(fixture_t *f)
{
    stats_store_t  st;

    cache_state(f->cache, &st);
    return st;
}


/* The cache manager with its index loaded, and the scrub. */
static void
start(fixture_t *f)
{
    int  n;

    f->cache = cache_create(&f->cf, f->loop);
    assert_non_null(f->cache);
    cache_start(f->cache);

    for (n = 0; n < 1000 && store_of(f).loading; n++) {
        loop_once(f->loop, 100);
    }

    assert_false(store_of(f).loading);

    f->scrub = scrub_create(&f->cf, f->loop, f->cache);
    assert_non_null(f->scrub);
}


/* Run the loop until the pass ends (bounded). */
static void
finish(fixture_t *f)
{
    int  n;

    for (n = 0; n < 100000; n++) {
        if (!status_of(f).running) {
            return;
        }

        loop_once(f->loop, 1000);
    }

    fail_msg("the scrub did not end");
}


static void
run_pass(fixture_t *f, int deep)
{
    assert_int_equal(scrub_start(f->scrub, deep, NULL, NULL), OCI_OK);
    assert_true(status_of(f).running);
    finish(f);
}


/* The names in quarantine/, how many (at most max kept in names). */
static size_t
quarantined(fixture_t *f, char names[][256], size_t max)
{
    char            path[OCI_PATH_MAX];
    struct dirent  *de;
    DIR            *d;
    size_t          n;

    path_of(f, SCRUB_QUARANTINE, path, sizeof(path));
    d = opendir(path);

    if (d == NULL) {
        return 0;
    }

    n = 0;

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        if (n < max) {
            snprintf(names[n], 256, "%s", de->d_name);
        }

        n++;
    }

    closedir(d);

    return n;
}


static long long
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}



/* Good files pass, and are left alone; the pass is counted and its end
 * kept in scrub.state. */
static void
test_good(void **state)
{
    fixture_t       *f = *state;
    scrub_status_t   st;
    stats_scrub_t    m;
    blob_t           b[3];
    char             names[4][256];
    char            *text;
    size_t           len;
    long long        mtime;
    char             path[OCI_PATH_MAX], rel[512];
    int              i;

    for (i = 0; i < 3; i++) {
        b[i] = put_random(f, 1000 + 70000 * (size_t) i, (unsigned) i, 0);
    }

    put_type(f, &b[0], OCI_MT_OCI_MANIFEST);

    start(f);
    assert_int_equal(status_of(f).last_completed, 0);

    run_pass(f, 0);

    st = status_of(f);
    assert_int_equal(st.pass.listed, 3);
    assert_int_equal(st.pass.checked, 3);
    assert_int_equal(st.pass.read_bytes, 1000 + 71000 + 141000);
    assert_int_equal(st.pass.listed_bytes, st.pass.read_bytes);
    assert_int_equal(st.pass.corrupt, 0);
    assert_int_equal(st.pass.vanished, 0);
    assert_true(st.last_completed > 0);
    assert_string_equal(st.pass.what, "the whole store");

    for (i = 0; i < 3; i++) {
        assert_true(blob_stored(f, &b[i]));
    }

    snprintf(rel, sizeof(rel), "types/sha256/%.2s/%s", b[0].hex, b[0].hex);
    assert_true(exists(f, rel));

    for (i = 0; i < 3; i++) {
        blob_free(&b[i]);
    }
    assert_int_equal(quarantined(f, names, 4), 0);
    assert_null(scrub_finding(f->scrub, 0));

    scrub_state(f->scrub, &m);
    assert_int_equal(m.checked, 3);
    assert_int_equal(m.checked_bytes, 1000 + 71000 + 141000);
    assert_int_equal(m.running, 0);
    assert_int_equal(m.last_completed, (long long) st.last_completed);

    path_of(f, SCRUB_STATE_FILE, path, sizeof(path));
    assert_int_equal(oci_store_cache_read(path, 1024, &text, &len, &mtime),
                     OCI_OK);
    assert_true(strncmp(text, "completed ", 10) == 0);
    assert_true(atoll(text + 10) == (long long) st.last_completed);
    free(text);
}


/* A flipped byte: the blob and a manifest go to quarantine/ with the
 * bytes they held, the manifest's types/ line goes, the cache forgets
 * both, each is a finding naming both digests. */
static void
test_flipped_byte(void **state)
{
    fixture_t              *f = *state;
    const scrub_finding_t  *fd;
    scrub_status_t          st;
    stats_scrub_t           m;
    blob_t                  good, bad, man;
    char                    names[4][256], path[OCI_PATH_MAX], rel[512];
    char                    got[OCI_SHA256_HEX_LEN + 1];
    char                    types[512], want[OCI_DIGEST_MAX + 1];
    unsigned char           buf[200000];
    unsigned long long      files;
    size_t                  i, n;
    int                     fd_, seen;

    good = put_random(f, 50000, 1, 0);
    bad = put_random(f, 120000, 2, 1);
    man = put_blob(f, "{\"schemaVersion\":2,\"layers\":[]}", 31, 1);
    put_type(f, &man, OCI_MT_OCI_MANIFEST);

    start(f);
    files = store_of(f).files;
    assert_int_equal(files, 3);

    run_pass(f, 0);

    st = status_of(f);
    assert_int_equal(st.pass.checked, 3);
    assert_int_equal(st.pass.corrupt, 2);
    assert_int_equal(st.quarantined, 2);

    assert_true(blob_stored(f, &good));
    assert_false(blob_stored(f, &bad));
    assert_false(blob_stored(f, &man));

    snprintf(types, sizeof(types), "types/sha256/%.2s/%s", man.hex, man.hex);
    assert_false(exists(f, types));

    /* the cache forgot them: a later pull is a miss */
    assert_int_equal(store_of(f).files, files - 2);

    /* quarantine/<hex>.<time>, holding what was stored */
    n = quarantined(f, names, 4);
    assert_int_equal(n, 2);

    for (i = 0; i < n; i++) {
        const blob_t  *b = strncmp(names[i], bad.hex, 64) == 0 ? &bad : &man;

        assert_true(strncmp(names[i], b->hex, 64) == 0);
        assert_int_equal(names[i][64], '.');
        assert_true(atoll(names[i] + 65) > 0);

        snprintf(rel, sizeof(rel), SCRUB_QUARANTINE "/%.200s", names[i]);
        path_of(f, rel, path, sizeof(path));
        fd_ = open(path, O_RDONLY);
        assert_true(fd_ != -1);
        assert_int_equal(read(fd_, buf, sizeof(buf)), (ssize_t) b->n);
        close(fd_);
        assert_memory_equal(buf, b->p, b->n);
    }

    /* the findings, newest first, name both digests */
    seen = 0;

    for (i = 0; (fd = scrub_finding(f->scrub, i)) != NULL; i++) {
        const blob_t  *b = strcmp(fd->digest, bad.digest) == 0 ? &bad : &man;

        assert_int_equal(fd->kind, SCRUB_FINDING_CORRUPT);
        assert_string_equal(fd->digest, b->digest);
        sha256_of(b->p, b->n, got);
        snprintf(want, sizeof(want), "sha256:%s", got);
        assert_string_equal(fd->got, want);
        assert_non_null(strstr(fd->note, b->hex));
        seen |= b == &bad ? 1 : 2;
    }

    assert_int_equal(i, 2);
    assert_int_equal(seen, 3);

    scrub_state(f->scrub, &m);
    assert_int_equal(m.corrupt, 2);
    assert_int_equal(m.quarantine_files, 2);

    /* a second pass finds nothing more */
    run_pass(f, 0);
    assert_int_equal(status_of(f).pass.checked, 1);
    assert_int_equal(status_of(f).pass.corrupt, 0);

    blob_free(&good);
    blob_free(&bad);
    blob_free(&man);
}


/* quarantine/ holds quarantine_max files: the oldest go, at start and
 * with each new one, and files that are not the scrub's are left. */
static void
test_quarantine_bound(void **state)
{
    fixture_t  *f = *state;
    blob_t      bad[2];
    char        names[8][256], rel[512], path[OCI_PATH_MAX];
    size_t      n, i;
    int         old;

    f->cf.quarantine_max = 2;
    mkdir_in(f->root, SCRUB_QUARANTINE);

    for (i = 0; i < 3; i++) {
        snprintf(rel, sizeof(rel), SCRUB_QUARANTINE "/%064zu.%zu", i,
                 100 * (i + 1));
        path_of(f, rel, path, sizeof(path));
        write_file(path, (const unsigned char *) "x", 1);
    }

    path_of(f, SCRUB_QUARANTINE "/README", path, sizeof(path));
    write_file(path, (const unsigned char *) "x", 1);

    start(f);

    /* 100 went at once: 200, 300 and the README stay */
    assert_int_equal(status_of(f).quarantined, 2);
    assert_false(exists(f, SCRUB_QUARANTINE "/"
                           "0000000000000000000000000000000000000000000000000"
                           "000000000000000.100"));
    assert_true(exists(f, SCRUB_QUARANTINE "/"
                          "0000000000000000000000000000000000000000000000000"
                          "000000000000001.200"));

    bad[0] = put_random(f, 3000, 7, 1);
    bad[1] = put_random(f, 3000, 8, 1);
    run_pass(f, 0);

    assert_int_equal(status_of(f).pass.corrupt, 2);
    assert_int_equal(status_of(f).quarantined, 2);

    n = quarantined(f, names, 8);
    assert_int_equal(n, 3);         /* the two new ones and the README */

    old = 0;

    for (i = 0; i < n; i++) {
        if (strncmp(names[i], "00000000", 8) == 0) {
            old++;
        }
    }

    assert_int_equal(old, 0);
    assert_true(exists(f, SCRUB_QUARANTINE "/README"));

    blob_free(&bad[0]);
    blob_free(&bad[1]);
}


/*
 * The pace: a slice reads at most scrub_rate / 50 bytes (at least
 * SCRUB_SLICE_MIN, at most SCRUB_SLICE_BYTES), and from the start the
 * bytes read stay under rate * elapsed + one slice.  Upper bounds only:
 * a slow machine passes them as well.
 */
static void
test_pacing(void **state)
{
    fixture_t       *f = *state;
    scrub_status_t   st;
    blob_t           b;
    long long        t0, before, budget, rate;
    int              n;

    b = put_random(f, 3 * 1024 * 1024 + 5, 3, 0);

    rate = 1024 * 1024;
    budget = rate / 50;
    f->cf.scrub_rate = rate;
    start(f);

    t0 = now_ns();
    assert_int_equal(scrub_start(f->scrub, 0, NULL, NULL), OCI_OK);
    before = 0;

    for (n = 0; n < 400 && status_of(f).pass.read_bytes < 200 * 1024; n++) {
        loop_once(f->loop, 1000);
        st = status_of(f);

        assert_true(st.pass.read_bytes - before <= budget);
        assert_true((double) st.pass.read_bytes
                    <= (double) rate * (double) (now_ns() - t0) / 1e9
                       + (double) budget);
        before = st.pass.read_bytes;
    }

    st = status_of(f);
    assert_true(st.running);
    assert_true(st.pass.read_bytes > 0);
    assert_true(st.pass.slice_max_bytes <= budget);

    /* faster: the slices grow to SCRUB_SLICE_BYTES, never past */
    f->cf.scrub_rate = FAST;
    finish(f);

    st = status_of(f);
    assert_int_equal(st.pass.read_bytes, (long long) b.n);
    assert_int_equal(st.pass.checked, 1);
    assert_true(st.pass.slice_max_bytes <= SCRUB_SLICE_BYTES);
    assert_true(st.pass.slices >= 4);

    blob_free(&b);
}


/* Start a pass at 1 MiB/s and run it until it has read a little: the
 * first file in the walk's order is being read. */
static void
start_slowly(fixture_t *f)
{
    int  n;

    f->cf.scrub_rate = 1024 * 1024;
    assert_int_equal(scrub_start(f->scrub, 0, NULL, NULL), OCI_OK);

    for (n = 0; n < 1000 && status_of(f).pass.read_bytes == 0; n++) {
        loop_once(f->loop, 1000);
    }

    assert_true(status_of(f).pass.read_bytes > 0);
    assert_true(status_of(f).pass.read_bytes < 300000);
}


/* Two corrupt files evicted, one while it is read and one before its
 * turn: neither is reported nor quarantined. */
static void
test_vanished(void **state)
{
    fixture_t       *f = *state;
    scrub_status_t   st;
    blob_t           b[2];
    char             names[4][256], rel[512], path[OCI_PATH_MAX];
    int              i;

    for (i = 0; i < 2; i++) {
        b[i] = put_random(f, 300000, 10 + (unsigned) i, 1);
    }

    start(f);
    start_slowly(f);

    for (i = 0; i < 2; i++) {
        blob_rel(&b[i], rel, sizeof(rel));
        path_of(f, rel, path, sizeof(path));
        assert_int_equal(unlink(path), 0);
        cache_removed(f->cache, path);
    }

    f->cf.scrub_rate = FAST;
    finish(f);

    st = status_of(f);
    assert_int_equal(st.pass.listed, 2);
    assert_int_equal(st.pass.vanished, 2);
    assert_int_equal(st.pass.checked, 0);
    assert_int_equal(st.pass.corrupt, 0);
    assert_int_equal(quarantined(f, names, 4), 0);
    assert_null(scrub_finding(f->scrub, 0));

    for (i = 0; i < 2; i++) {
        blob_free(&b[i]);
    }
}


/* A corrupt file replaced by a sound copy (fetched again) while the scrub
 * reads the old one: the hash of the old bytes says nothing of the new
 * file, which stays. */
static void
test_replaced(void **state)
{
    fixture_t       *f = *state;
    scrub_status_t   st;
    blob_t           b;
    char             names[4][256], rel[512];
    char             path[OCI_PATH_MAX], tmp[OCI_PATH_MAX];

    b = put_random(f, 300000, 12, 1);

    start(f);
    start_slowly(f);

    blob_rel(&b, rel, sizeof(rel));
    path_of(f, rel, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s/tmp/new", f->root);
    b.p[b.n / 2] ^= 0x01;
    write_file(tmp, b.p, b.n);
    assert_int_equal(rename(tmp, path), 0);

    f->cf.scrub_rate = FAST;
    finish(f);

    st = status_of(f);
    assert_int_equal(st.pass.vanished, 1);
    assert_int_equal(st.pass.corrupt, 0);
    assert_int_equal(quarantined(f, names, 4), 0);
    assert_true(blob_stored(f, &b));

    /* the next pass reads the new one */
    run_pass(f, 0);
    assert_int_equal(status_of(f).pass.checked, 1);
    assert_int_equal(status_of(f).pass.corrupt, 0);

    blob_free(&b);
}


/* Deep: layers that unpack to their diff_ids pass; each blob is read
 * once, a layer shared by two images (and named twice by one) too. */
static void
test_deep_match(void **state)
{
    fixture_t       *f = *state;
    scrub_status_t   st;
    image_t          a, b;
    blob_t           layers[2];
    const char      *types[] = { MT_GZIP, MT_GZIP };
    const char      *ids[2];
    long long        total;

    put_image(f, &a, 1, NULL);

    /* b names a's layer twice, with a config of its own */
    layers[0] = a.layer;
    layers[1] = a.layer;
    ids[0] = a.diff_id;
    ids[1] = a.diff_id;
    put_manifest(f, &b, MT_CONFIG, ids, 2, layers, types, 2);

    start(f);
    run_pass(f, 1);

    st = status_of(f);
    total = (long long) (a.layer.n + a.config.n + a.manifest.n + b.config.n
                         + b.manifest.n);

    assert_int_equal(st.pass.listed, 5);
    assert_int_equal(st.pass.checked, 5);
    assert_int_equal(st.pass.read_bytes, total);
    assert_int_equal(st.pass.images, 2);
    assert_int_equal(st.pass.images_done, 2);
    assert_int_equal(st.pass.mismatches, 0);
    assert_int_equal(st.pass.skipped, 0);
    assert_int_equal(st.pass.corrupt, 0);
    assert_null(scrub_finding(f->scrub, 0));
    assert_true(st.last_deep);

    blob_free(&b.manifest);
    blob_free(&b.config);
    image_free(&a);
}


/* Deep: a config that names another diff_id is a finding naming the
 * image (by its tag; by the tag of an index that holds it), the layer and
 * both diff_ids; nothing is quarantined. */
static void
test_deep_mismatch(void **state)
{
    fixture_t              *f = *state;
    const scrub_finding_t  *fd;
    scrub_status_t          st;
    stats_scrub_t           m;
    image_t                 a, c;
    const image_t          *children[1];
    blob_t                  index;
    char                    wrong_a[OCI_DIGEST_MAX + 1];
    char                    wrong_c[OCI_DIGEST_MAX + 1];
    char                    names[2][256];
    size_t                  i;
    int                     seen;

    snprintf(wrong_a, sizeof(wrong_a), "sha256:%064d", 1);
    snprintf(wrong_c, sizeof(wrong_c), "sha256:%064d", 2);

    put_image(f, &a, 2, wrong_a);
    put_tag(f, "reg.test", "team/app", "v1", &a.manifest,
            OCI_MT_OCI_MANIFEST);

    put_image(f, &c, 3, wrong_c);
    children[0] = &c;
    index = put_index(f, children, 1);
    put_tag(f, "reg.test", "other/multi", "v2", &index, OCI_MT_OCI_INDEX);

    start(f);
    run_pass(f, 1);

    st = status_of(f);
    assert_int_equal(st.pass.mismatches, 2);
    assert_int_equal(st.pass.corrupt, 0);
    assert_int_equal(st.pass.images, 2);
    assert_int_equal(st.pass.checked, 7);
    assert_int_equal(quarantined(f, names, 2), 0);
    assert_true(blob_stored(f, &a.layer));
    assert_true(blob_stored(f, &c.layer));

    seen = 0;

    for (i = 0; (fd = scrub_finding(f->scrub, i)) != NULL; i++) {
        assert_int_equal(fd->kind, SCRUB_FINDING_DIFF_ID);

        if (strcmp(fd->image, a.manifest.digest) == 0) {
            assert_string_equal(fd->name, "reg.test/team/app:v1");
            assert_string_equal(fd->digest, a.layer.digest);
            assert_string_equal(fd->expected, wrong_a);
            assert_string_equal(fd->got, a.diff_id);
            seen |= 1;

        } else {
            assert_string_equal(fd->image, c.manifest.digest);
            assert_string_equal(fd->name, "reg.test/other/multi:v2");
            assert_string_equal(fd->digest, c.layer.digest);
            assert_string_equal(fd->expected, wrong_c);
            assert_string_equal(fd->got, c.diff_id);
            seen |= 2;
        }
    }

    assert_int_equal(seen, 3);

    scrub_state(f->scrub, &m);
    assert_int_equal(m.mismatches, 2);

    /* without --deep, nothing to say */
    run_pass(f, 0);
    assert_int_equal(status_of(f).pass.mismatches, 0);
    assert_int_equal(status_of(f).pass.checked, 7);

    blob_free(&index);
    image_free(&a);
    image_free(&c);
}


/* Deep: a zstd layer, an artifact's own manifest type and an image
 * manifest whose config is no image's are skipped (counted); a gzip
 * layer that is no gzip stream is a finding; a flipped byte in a layer is
 * quarantined, not a diff_id finding. */
static void
test_deep_skipped(void **state)
{
    fixture_t              *f = *state;
    const scrub_finding_t  *fd;
    scrub_status_t          st;
    image_t                 z, helm, broken, flipped;
    blob_t                  art;
    unsigned char           zstd[5000];
    char                    diff[OCI_DIGEST_MAX + 1];
    const char             *zt[] = { MT_ZSTD };
    const char             *gt[] = { MT_GZIP };
    const char             *ids[1];
    size_t                  i;

    /* zstd: its magic, then anything */
    memset(zstd, 0x5a, sizeof(zstd));
    zstd[0] = 0x28;
    zstd[1] = 0xb5;
    zstd[2] = 0x2f;
    zstd[3] = 0xfd;
    z.layer = put_blob(f, zstd, sizeof(zstd), 0);
    snprintf(diff, sizeof(diff), "sha256:%064d", 5);
    ids[0] = diff;
    put_manifest(f, &z, MT_CONFIG, ids, 1, &z.layer, zt, 1);

    /* a helm chart in an image manifest */
    helm.layer = put_layer(f, 6, 3000, helm.diff_id, 0);
    ids[0] = helm.diff_id;
    put_manifest(f, &helm, MT_HELM, NULL, 0, &helm.layer, gt, 1);

    /* an artifact manifest of its own type */
    art = put_blob(f, "{\"artifactType\":\"x\"}", 20, 0);
    put_type(f, &art, MT_ARTIFACT);

    /* random bytes under the gzip type */
    broken.layer = put_random(f, 4000, 9, 0);
    ids[0] = diff;
    put_manifest(f, &broken, MT_CONFIG, ids, 1, &broken.layer, gt, 1);

    /* a damaged gzip layer: the blob's own digest speaks first */
    flipped.layer = put_layer(f, 7, 100000, flipped.diff_id, 1);
    ids[0] = flipped.diff_id;
    put_manifest(f, &flipped, MT_CONFIG, ids, 1, &flipped.layer, gt, 1);

    start(f);
    run_pass(f, 1);

    st = status_of(f);
    assert_int_equal(st.pass.skipped, 3);
    assert_int_equal(st.pass.mismatches, 1);
    assert_int_equal(st.pass.corrupt, 1);
    assert_false(blob_stored(f, &flipped.layer));
    assert_true(blob_stored(f, &broken.layer));
    assert_true(blob_stored(f, &z.layer));

    for (i = 0; (fd = scrub_finding(f->scrub, i)) != NULL; i++) {
        if (fd->kind == SCRUB_FINDING_CORRUPT) {
            assert_string_equal(fd->digest, flipped.layer.digest);

        } else {
            assert_string_equal(fd->image, broken.manifest.digest);
            assert_string_equal(fd->digest, broken.layer.digest);
            assert_string_equal(fd->got, "");
            assert_string_equal(fd->expected, diff);
            assert_true(fd->note[0] != '\0');
        }
    }

    assert_int_equal(i, 2);

    image_free(&z);
    image_free(&helm);
    image_free(&broken);
    image_free(&flipped);
    blob_free(&art);
}


/* A pass of one image: an index, its children, configs and layers, and
 * nothing else; named in the findings as asked. */
static void
test_image_pass(void **state)
{
    fixture_t              *f = *state;
    const scrub_finding_t  *fd;
    scrub_status_t          st;
    image_t                 a, b, other;
    const image_t          *children[2];
    blob_t                  index, bad;
    char                    wrong[OCI_DIGEST_MAX + 1];

    snprintf(wrong, sizeof(wrong), "sha256:%064d", 3);

    put_image(f, &a, 11, NULL);
    put_image(f, &b, 12, wrong);
    children[0] = &a;
    children[1] = &b;
    index = put_index(f, children, 2);

    put_image(f, &other, 13, wrong);
    bad = put_random(f, 2000, 14, 1);

    start(f);

    assert_int_equal(scrub_start(f->scrub, 1, index.hex,
                                 "reg.test/team/app:v1"), OCI_OK);
    assert_int_equal(scrub_start(f->scrub, 0, NULL, NULL), OCI_EAGAIN);
    finish(f);

    st = status_of(f);
    assert_int_equal(st.pass.listed, 7);
    assert_int_equal(st.pass.checked, 7);
    assert_int_equal(st.pass.images, 2);
    assert_int_equal(st.pass.mismatches, 1);
    assert_int_equal(st.pass.corrupt, 0);
    assert_true(blob_stored(f, &bad));
    assert_non_null(strstr(st.pass.what, "reg.test/team/app:v1"));
    assert_non_null(strstr(st.pass.what, index.hex));

    /* an image's pass is no pass of the store */
    assert_int_equal(st.last_completed, 0);

    fd = scrub_finding(f->scrub, 0);
    assert_non_null(fd);
    assert_string_equal(fd->image, b.manifest.digest);
    assert_string_equal(fd->name, "reg.test/team/app:v1");
    assert_null(scrub_finding(f->scrub, 1));

    /* a digest that is not stored */
    assert_int_equal(scrub_start(f->scrub, 0, "0000000000000000000000000000"
                                 "000000000000000000000000000000000000", "x"),
                     OCI_ENOENT);
    assert_false(status_of(f).running);

    blob_free(&index);
    blob_free(&bad);
    image_free(&a);
    image_free(&b);
    image_free(&other);
}


/* The schedule: due scrub_interval after the last whole-store pass (or
 * since the state was first written), kept across a restart; a shallow
 * pass does not put off the deep one scrub_deep asks for. */
static void
test_schedule(void **state)
{
    fixture_t       *f = *state;
    scrub_status_t   st;
    blob_t           b;
    char             path[OCI_PATH_MAX], line[128];
    time_t           now, last;
    int              n;

    b = put_random(f, 1000, 21, 0);
    f->cf.scrub_interval = 100;
    start(f);

    /* a store without scrub.state counts from now */
    now = time(NULL);
    st = status_of(f);
    assert_int_equal(st.last_completed, 0);
    assert_true(st.next >= now + 99 && st.next <= now + 101);
    path_of(f, SCRUB_STATE_FILE, path, sizeof(path));
    assert_true(access(path, F_OK) == 0);

    scrub_tick(f->scrub);
    assert_false(status_of(f).running);

    /* the last pass long ago: due at the next tick */
    scrub_destroy(f->scrub);
    n = snprintf(line, sizeof(line), "completed %lld seconds 3 deep 0 "
                 "since %lld\n", (long long) now - 500,
                 (long long) now - 500);
    write_file(path, (const unsigned char *) line, (size_t) n);
    f->scrub = scrub_create(&f->cf, f->loop, f->cache);
    assert_non_null(f->scrub);
    assert_int_equal(status_of(f).last_completed, now - 500);
    assert_true(status_of(f).next <= time(NULL));

    scrub_tick(f->scrub);
    assert_true(status_of(f).running);
    finish(f);

    last = status_of(f).last_completed;
    assert_true(last >= now);
    assert_int_equal(status_of(f).pass.checked, 1);

    /* a restart does not scrub again at once */
    scrub_destroy(f->scrub);
    f->scrub = scrub_create(&f->cf, f->loop, f->cache);
    assert_non_null(f->scrub);
    assert_int_equal(status_of(f).last_completed, last);
    scrub_tick(f->scrub);
    assert_false(status_of(f).running);

    /* scrub_deep: a shallow pass on demand leaves the schedule be */
    f->cf.scrub_deep = 1;
    assert_int_equal(scrub_start(f->scrub, 0, NULL, NULL), OCI_OK);
    finish(f);
    assert_int_equal(status_of(f).last_completed, last);

    /* on demand only */
    f->cf.scrub_interval = 0;
    assert_int_equal(status_of(f).next, 0);

    blob_free(&b);
}


/* The findings keep the SCRUB_FINDINGS_MAX newest, newest first. */
static void
test_findings_ring(void **state)
{
    fixture_t              *f = *state;
    const scrub_finding_t  *a, *b;
    blob_t                  bad;
    size_t                  i, j;

    for (i = 0; i < SCRUB_FINDINGS_MAX + 3; i++) {
        bad = put_random(f, 100, 100 + (unsigned) i, 1);
        blob_free(&bad);
    }

    start(f);
    run_pass(f, 0);

    assert_int_equal(status_of(f).pass.corrupt, SCRUB_FINDINGS_MAX + 3);
    assert_null(scrub_finding(f->scrub, SCRUB_FINDINGS_MAX));

    for (i = 0; i < SCRUB_FINDINGS_MAX; i++) {
        a = scrub_finding(f->scrub, i);
        assert_non_null(a);

        for (j = i + 1; j < SCRUB_FINDINGS_MAX; j++) {
            b = scrub_finding(f->scrub, j);
            assert_string_not_equal(a->digest, b->digest);
            assert_true(a->at >= b->at);
        }
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quarantine_bound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pacing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vanished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_findings_ring, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
