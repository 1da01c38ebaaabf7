/*
 * Unit tests for src/fetcher/prefetch.c: what a manifest's JSON makes the
 * fetcher fetch (an image's config and layers within max_bytes, an index's
 * platforms), and, through the fakes of fetcher_fakes.h, the jobs a
 * fetched manifest starts, at prefetch priority, and a client joining one.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "oci_ref.h"
#include "fetcher_fakes.h"
#include "prefetch.h"


#define HEXA  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEXB  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEXC  "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define HEXD  "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define HEXE  "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
#define HEXF  "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

#define DESC(hex, size) \
    "{\"mediaType\":\"application/octet-stream\"," \
    "\"digest\":\"sha256:" hex "\",\"size\":" #size "}"

/* config A (100), layers B (1000), C (5000), D (200) */
#define IMAGE \
    "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_OCI_MANIFEST "\"," \
    "\"config\":" DESC(HEXA, 100) ",\"layers\":[" DESC(HEXB, 1000) "," \
    DESC(HEXC, 5000) "," DESC(HEXD, 200) "]}"

#define PLATFORM(hex, os, arch, variant) \
    "{\"mediaType\":\"" OCI_MT_OCI_MANIFEST "\",\"digest\":\"sha256:" hex \
    "\",\"size\":500,\"platform\":{\"os\":\"" os "\",\"architecture\":\"" \
    arch "\"" variant "}}"

#define INDEX \
    "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_OCI_INDEX "\"," \
    "\"manifests\":[" \
    PLATFORM(HEXA, "linux", "amd64", "") "," \
    PLATFORM(HEXB, "linux", "arm64", ",\"variant\":\"v8\"") "," \
    PLATFORM(HEXC, "linux", "arm", ",\"variant\":\"v7\"") "," \
    PLATFORM(HEXD, "windows", "amd64", "") "," \
    PLATFORM(HEXE, "unknown", "unknown", "") "," \
    "{\"digest\":\"sha256:" HEXF "\",\"size\":5}]}"


/* "have": the digests listed in data (a NULL-ended array) are present. */
static int
have_listed(const char *digest, int manifest, void *data)
{
    const char  **list = data;

    for ( /* void */ ; *list != NULL; list++) {
        if (strcmp(*list, digest) == 0) {
            return 1;
        }
    }

    return 0;
}


static oci_config_t *
config(const char *const *platforms, size_t n, long long max_bytes)
{
    static oci_config_t  cf;

    memset(&cf, 0, sizeof(cf));
    cf.prefetch = 1;
    cf.prefetch_platforms = (char **) platforms;
    cf.n_prefetch_platforms = n;
    cf.prefetch_max_bytes = max_bytes;
    cf.prefetch_max_children = 32;
    cf.prefetch_max_layers = 256;

    return &cf;
}


static void
assert_items(const prefetch_plan_t *plan, const char *const *want)
{
    size_t  i;

    for (i = 0; want[i] != NULL; i++) {
        assert_true(i < plan->n);
        assert_string_equal(plan->items[i].digest, want[i]);
    }

    assert_int_equal(plan->n, i);
}


static void
test_select_image(void **state)
{
    static const char *const  amd64[] = { "linux/amd64" };
    static const char        *none[] = { NULL };
    static const char        *have_c[] = { "sha256:" HEXC, NULL };
    static const char *const  all[] = { "sha256:" HEXA, "sha256:" HEXB,
                                         "sha256:" HEXC, "sha256:" HEXD,
                                         NULL };
    static const char *const  no_c[] = { "sha256:" HEXA, "sha256:" HEXB,
                                         "sha256:" HEXD, NULL };
    prefetch_plan_t           plan;
    oci_config_t             *cf;

    cf = config(amd64, 1, 1LL << 30);

    /* config first, then the layers in order */
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, IMAGE,
                                     strlen(IMAGE), have_listed, none,
                                     &plan), OCI_OK);
    assert_int_equal(plan.index, 0);
    assert_items(&plan, all);
    assert_true(plan.items[0].size == 100);
    assert_true(plan.items[2].size == 5000);
    assert_true(plan.bytes == 6300);
    assert_int_equal(plan.present, 0);
    assert_int_equal(plan.over, 0);
    prefetch_plan_free(&plan);

    /* a Docker v2 manifest is an image too; present blobs are skipped */
    assert_int_equal(prefetch_select(cf, OCI_MT_DOCKER_MANIFEST, IMAGE,
                                     strlen(IMAGE), have_listed, have_c,
                                     &plan), OCI_OK);
    assert_items(&plan, no_c);
    assert_true(plan.bytes == 1300);
    assert_int_equal(plan.present, 1);
    prefetch_plan_free(&plan);
}


/* The bytes queued per image stay within max_bytes: the first blob that
 * would go over stops the image, smaller ones after it included. */
static void
test_select_max_bytes(void **state)
{
    static const char *const  amd64[] = { "linux/amd64" };
    static const char        *none[] = { NULL };
    static const char        *have_c[] = { "sha256:" HEXC, NULL };
    static const char *const  a_b[] = { "sha256:" HEXA, "sha256:" HEXB,
                                        NULL };
    static const char *const  a_b_d[] = { "sha256:" HEXA, "sha256:" HEXB,
                                          "sha256:" HEXD, NULL };
    static const char *const  nothing[] = { NULL };
    prefetch_plan_t           plan;
    oci_config_t             *cf;

    /* A + B = 1100 fit, C (5000) does not, D (200) comes after it */
    cf = config(amd64, 1, 1100);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, IMAGE,
                                     strlen(IMAGE), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, a_b);
    assert_true(plan.bytes == 1100);
    assert_int_equal(plan.over, 2);
    prefetch_plan_free(&plan);

    /* C already stored: it costs nothing, D fits */
    cf = config(amd64, 1, 1300);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, IMAGE,
                                     strlen(IMAGE), have_listed, have_c,
                                     &plan), OCI_OK);
    assert_items(&plan, a_b_d);
    assert_int_equal(plan.over, 0);
    prefetch_plan_free(&plan);

    /* one byte short of the config: nothing */
    cf = config(amd64, 1, 99);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, IMAGE,
                                     strlen(IMAGE), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, nothing);
    assert_int_equal(plan.over, 4);
    prefetch_plan_free(&plan);
}


static void
test_select_index(void **state)
{
    static const char *const  amd64_armv7[] = { "linux/amd64",
                                                "linux/arm/v7" };
    static const char *const  arm64[] = { "linux/arm64" };
    static const char *const  arm64_v9[] = { "linux/arm64/v9" };
    static const char        *none[] = { NULL };
    static const char        *have_a[] = { "sha256:" HEXA, NULL };
    static const char *const  want_a_c[] = { "sha256:" HEXA,
                                             "sha256:" HEXC, NULL };
    static const char *const  want_b[] = { "sha256:" HEXB, NULL };
    static const char *const  want_c[] = { "sha256:" HEXC, NULL };
    static const char *const  nothing[] = { NULL };
    prefetch_plan_t           plan;
    oci_config_t             *cf;

    /* max_bytes is for an image's blobs, not for an index */
    cf = config(amd64_armv7, 2, 1);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, INDEX,
                                     strlen(INDEX), have_listed, none,
                                     &plan), OCI_OK);
    assert_int_equal(plan.index, 1);
    assert_items(&plan, want_a_c);
    prefetch_plan_free(&plan);

    /* a stored child is skipped */
    assert_int_equal(prefetch_select(cf, OCI_MT_DOCKER_LIST, INDEX,
                                     strlen(INDEX), have_listed, have_a,
                                     &plan), OCI_OK);
    assert_items(&plan, want_c);
    assert_int_equal(plan.present, 1);
    prefetch_plan_free(&plan);

    /* "os/arch" takes any variant, "os/arch/variant" only its own */
    cf = config(arm64, 1, 1);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, INDEX,
                                     strlen(INDEX), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, want_b);
    prefetch_plan_free(&plan);

    cf = config(arm64_v9, 1, 1);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, INDEX,
                                     strlen(INDEX), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, nothing);
    prefetch_plan_free(&plan);

    /* no platforms configured: no child */
    cf = config(NULL, 0, 1);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, INDEX,
                                     strlen(INDEX), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, nothing);
    prefetch_plan_free(&plan);
}


/* The fan-out is capped by count too: the first max_layers layers (the
 * config aside), the first max_children children of the platforms
 * configured; the rest is counted as capped, and present entries count
 * against the cap as well (the cap is on the manifest, not on the work
 * left). */
static void
test_select_caps(void **state)
{
    static const char *const  amd64_armv7[] = { "linux/amd64",
                                                "linux/arm/v7" };
    static const char *const  linux_all[] = { "linux/amd64",
                                              "linux/arm64",
                                              "linux/arm" };
    static const char        *none[] = { NULL };
    static const char        *have_b[] = { "sha256:" HEXB, NULL };
    static const char *const  a_b_c[] = { "sha256:" HEXA, "sha256:" HEXB,
                                          "sha256:" HEXC, NULL };
    static const char *const  a_c[] = { "sha256:" HEXA, "sha256:" HEXC,
                                        NULL };
    static const char *const  a[] = { "sha256:" HEXA, NULL };
    static const char        *have_a[] = { "sha256:" HEXA, NULL };
    static const char *const  b[] = { "sha256:" HEXB, NULL };
    static const char *const  a_b[] = { "sha256:" HEXA, "sha256:" HEXB,
                                        NULL };
    prefetch_plan_t           plan;
    oci_config_t             *cf;

    cf = config(amd64_armv7, 2, 1LL << 30);

    /* two of three layers: D is left out */
    cf->prefetch_max_layers = 2;
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, IMAGE,
                                     strlen(IMAGE), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, a_b_c);
    assert_int_equal(plan.capped, 1);
    assert_int_equal(plan.over, 0);
    prefetch_plan_free(&plan);

    /* B stored: it still takes its place under the cap */
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, IMAGE,
                                     strlen(IMAGE), have_listed, have_b,
                                     &plan), OCI_OK);
    assert_items(&plan, a_c);
    assert_int_equal(plan.present, 1);
    assert_int_equal(plan.capped, 1);
    prefetch_plan_free(&plan);

    /* no layer at all: the config alone */
    cf->prefetch_max_layers = 0;
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, IMAGE,
                                     strlen(IMAGE), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, a);
    assert_int_equal(plan.capped, 3);
    prefetch_plan_free(&plan);

    /* an index: only children of the platforms count against the cap */
    cf->prefetch_max_children = 1;
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, INDEX,
                                     strlen(INDEX), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, a);
    assert_int_equal(plan.capped, 1);
    prefetch_plan_free(&plan);

    cf->prefetch_max_children = 2;
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, INDEX,
                                     strlen(INDEX), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, a_c);
    assert_int_equal(plan.capped, 0);
    prefetch_plan_free(&plan);

    /* three platforms match, two are taken; a present one counts */
    cf = config(linux_all, 3, 1LL << 30);
    cf->prefetch_max_children = 2;
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, INDEX,
                                     strlen(INDEX), have_listed, none,
                                     &plan), OCI_OK);
    assert_items(&plan, a_b);
    assert_int_equal(plan.capped, 1);
    prefetch_plan_free(&plan);

    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, INDEX,
                                     strlen(INDEX), have_listed, have_a,
                                     &plan), OCI_OK);
    assert_items(&plan, b);
    assert_int_equal(plan.present, 1);
    assert_int_equal(plan.capped, 1);
    prefetch_plan_free(&plan);

    /* none at all */
    cf->prefetch_max_children = 0;
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, INDEX,
                                     strlen(INDEX), have_listed, none,
                                     &plan), OCI_OK);
    assert_int_equal(plan.n, 0);
    assert_int_equal(plan.capped, 3);
    prefetch_plan_free(&plan);
}


static void
test_select_odd(void **state)
{
    static const char *const  amd64[] = { "linux/amd64" };
    static const char        *none[] = { NULL };
    static const char *const  want_a[] = { "sha256:" HEXA, NULL };
    static const char         odd[] =
        "{\"config\":" DESC(HEXA, 1) ",\"layers\":["
        "{\"digest\":\"sha256:" HEXB "\"},"
        "{\"digest\":\"sha512:" HEXB HEXB "\",\"size\":1},"
        "{\"digest\":\"sha256:" HEXC "\",\"size\":-1},"
        "{\"digest\":\"sha256:" HEXD "\",\"size\":\"7\"},"
        "\"sha256:" HEXE "\","
        "{\"digest\":\"sha256:x\",\"size\":1}]}";
    prefetch_plan_t           plan;
    oci_config_t             *cf;

    cf = config(amd64, 1, 1LL << 30);

    /* descriptors that make no sense are counted and left */
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, odd,
                                     strlen(odd), have_listed, none, &plan),
                     OCI_OK);
    assert_items(&plan, want_a);
    assert_int_equal(plan.invalid, 6);
    prefetch_plan_free(&plan);

    /* other types: nothing to do */
    assert_int_equal(prefetch_select(cf,
        "application/vnd.docker.distribution.manifest.v1+prettyjws", IMAGE,
        strlen(IMAGE), have_listed, none, &plan), OCI_OK);
    assert_int_equal(plan.n, 0);
    prefetch_plan_free(&plan);

    /* not what the type says */
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, "[1]", 3,
                                     have_listed, none, &plan), OCI_EINVAL);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST, "{\"la", 4,
                                     have_listed, none, &plan), OCI_EINVAL);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_MANIFEST,
                                     "{\"layers\":[]}", 13, have_listed,
                                     none, &plan), OCI_EINVAL);
    assert_int_equal(prefetch_select(cf, OCI_MT_OCI_INDEX, IMAGE,
                                     strlen(IMAGE), have_listed, none,
                                     &plan), OCI_EINVAL);
    assert_null(plan.items);
}


static void
test_platform_match(void **state)
{
    static const char *const  list[] = { "linux/amd64", "linux/arm/v7" };
    oci_config_t             *cf;

    cf = config(list, 2, 0);

    assert_true(prefetch_platform_match(cf, "linux", "amd64", NULL));
    assert_true(prefetch_platform_match(cf, "linux", "amd64", "v3"));
    assert_true(prefetch_platform_match(cf, "linux", "arm", "v7"));
    assert_false(prefetch_platform_match(cf, "linux", "arm", NULL));
    assert_false(prefetch_platform_match(cf, "linux", "arm", "v6"));
    assert_false(prefetch_platform_match(cf, "linux", "amd", NULL));
    assert_false(prefetch_platform_match(cf, "linux", "amd64x", NULL));
    assert_false(prefetch_platform_match(cf, "lin", "amd64", NULL));
    assert_false(prefetch_platform_match(cf, "windows", "amd64", NULL));
    assert_false(prefetch_platform_match(cf, NULL, "amd64", NULL));
    assert_false(prefetch_platform_match(cf, "linux", NULL, NULL));
}


/*
 * Through the jobs: a fetched manifest starts prefetch jobs.
 */

static void
manifest_get(fake_env_t *e, uint32_t id, const char *ref)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_MANIFEST, id);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "a/b");
    snprintf(m.reference, sizeof(m.reference), "%s", ref);
    dispatch_on_msg(&e->c1, &m, e->jobs);
}


static void
blob_get(fake_env_t *e, conn_t *c, uint32_t id, const char *digest)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_BLOB, id);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "a/b");
    snprintf(m.reference, sizeof(m.reference), "%s", digest);
    dispatch_on_msg(c, &m, e->jobs);
}


static void
reply_manifest(xfer_t *x, const char *type, const char *body)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = type;
    r.body = body;
    fake_xfer_reply(x, &r);
}


static void
assert_prefetch_xfer(xfer_t *x, const char *path)
{
    assert_non_null(x);
    assert_string_equal(x->url, path);
    assert_int_equal(x->prio, XFER_PRIO_PREFETCH);
}


static void
test_image_prefetches_blobs(void **state)
{
    fake_env_t  *e = *state;
    char         path[OCI_PATH_MAX];
    oci_msg_t    m;
    xfer_t      *x;
    int          fd;

    /* layer D is stored already */
    snprintf(path, sizeof(path), "%s/sha256/dd", e->store);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(oci_store_blob_path(e->store, HEXD, path, sizeof(path)),
                     OCI_OK);
    fd = open(path, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);

    manifest_get(e, 1, "v1");
    x = fake_xfer_one();
    assert_int_equal(x->prio, XFER_PRIO_CLIENT);
    reply_manifest(x, OCI_MT_OCI_MANIFEST, IMAGE);

    assert_int_equal(fake_xfer_count(), 3);
    assert_prefetch_xfer(fake_xfer_at(0),
                         FAKE_EP1 "/v2/a/b/blobs/sha256:" HEXA);
    assert_prefetch_xfer(fake_xfer_at(1),
                         FAKE_EP1 "/v2/a/b/blobs/sha256:" HEXB);
    assert_prefetch_xfer(fake_xfer_at(2),
                         FAKE_EP1 "/v2/a/b/blobs/sha256:" HEXC);
    assert_int_equal(fake_xfer_at(0)->ranged, 1);

    /* a client asking for layer C joins its prefetch and promotes it */
    blob_get(e, &e->c2, 9, "sha256:" HEXC);
    assert_int_equal(fake_xfer_count(), 3);
    assert_int_equal(fake_xfer_at(2)->prio, XFER_PRIO_CLIENT);
    assert_int_equal(fake_xfer_at(1)->prio, XFER_PRIO_PREFETCH);
    assert_int_equal(fake_xfers.started, 4);

    /* the same image under another name: everything is in flight or
     * stored already */
    oci_msg_init(&m, OCI_MSG_MANIFEST, 2);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "c/d");
    snprintf(m.reference, sizeof(m.reference), "v1");
    dispatch_on_msg(&e->c1, &m, e->jobs);
    x = fake_xfer_at(3);
    assert_string_equal(x->url, FAKE_EP1 "/v2/c/d/manifests/v1");
    reply_manifest(x, OCI_MT_OCI_MANIFEST, IMAGE);
    assert_int_equal(fake_xfers.started, 5);
    assert_int_equal(fake_xfer_count(), 3);
}


static void
test_index_prefetches_platform(void **state)
{
    fake_env_t  *e = *state;
    char         child[sizeof(IMAGE) + 64], hex[OCI_SHA256_HEX_LEN + 1];
    char         index[2048], path[OCI_PATH_MAX];
    xfer_t      *x;

    /* an index whose amd64 entry is a real manifest */
    snprintf(child, sizeof(child), "%s", IMAGE);
    fake_sha256(child, strlen(child), hex);
    snprintf(index, sizeof(index),
             "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_OCI_INDEX "\","
             "\"manifests\":["
             "{\"digest\":\"sha256:%s\",\"size\":%zu,"
             "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
             PLATFORM(HEXB, "linux", "arm64", "") "]}", hex, strlen(child));

    manifest_get(e, 1, "v1");
    reply_manifest(fake_xfer_one(), OCI_MT_OCI_INDEX, index);

    /* only amd64's manifest, by digest, any manifest type accepted */
    x = fake_xfer_one();
    snprintf(path, sizeof(path), FAKE_EP1 "/v2/a/b/manifests/sha256:%s",
             hex);
    assert_prefetch_xfer(x, path);
    assert_string_equal(x->accept, OCI_MT_ALL_MANIFESTS);
    assert_int_equal(x->head, 0);

    /* which brings its blobs */
    reply_manifest(x, OCI_MT_OCI_MANIFEST, child);
    assert_int_equal(fake_xfer_count(), 4);
    assert_prefetch_xfer(fake_xfer_at(0),
                         FAKE_EP1 "/v2/a/b/blobs/sha256:" HEXA);
    assert_prefetch_xfer(fake_xfer_at(3),
                         FAKE_EP1 "/v2/a/b/blobs/sha256:" HEXD);
    assert_int_equal(fake_xfers.started, 6);

    /* the child manifest is stored: a client gets it without a transfer */
    fake_conn_take(&e->c1);
    snprintf(path, sizeof(path), "sha256:%s", hex);
    manifest_get(e, 2, path);
    assert_int_equal(fake_xfers.started, 6);
    assert_memory_equal(fake_conn_take(&e->c1), "META 2 sha256:", 14);
}


/* A client that asks for a child manifest being prefetched joins it. */
static void
test_index_child_joined(void **state)
{
    fake_env_t  *e = *state;
    char         index[1024];

    snprintf(index, sizeof(index),
             "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_DOCKER_LIST "\","
             "\"manifests\":[" PLATFORM(HEXA, "linux", "amd64", "") "]}");

    manifest_get(e, 1, "v1");
    reply_manifest(fake_xfer_one(), OCI_MT_DOCKER_LIST, index);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_PREFETCH);

    manifest_get(e, 2, "sha256:" HEXA);
    assert_int_equal(fake_xfer_count(), 1);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_CLIENT);
    assert_int_equal(fake_xfers.started, 2);
}


static void
test_prefetch_disabled(void **state)
{
    fake_env_t  *e = *state;

    e->cf->prefetch = 0;

    manifest_get(e, 1, "v1");
    reply_manifest(fake_xfer_one(), OCI_MT_OCI_MANIFEST, IMAGE);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.started, 1);
    assert_memory_equal(fake_conn_take(&e->c1), "META 1 sha256:", 14);
}


/* A HEAD brings no body: nothing to prefetch. */
static void
test_head_prefetches_nothing(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    oci_msg_t      m;
    char           hex[OCI_SHA256_HEX_LEN + 1], digest[OCI_DIGEST_MAX + 1];

    fake_sha256(IMAGE, strlen(IMAGE), hex);
    snprintf(digest, sizeof(digest), "sha256:%s", hex);

    oci_msg_init(&m, OCI_MSG_MANIFEST, 1);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "a/b");
    snprintf(m.reference, sizeof(m.reference), "v1");
    m.head = 1;
    dispatch_on_msg(&e->c1, &m, e->jobs);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = OCI_MT_OCI_MANIFEST;
    r.digest = digest;
    r.length_set = 1;
    r.length = (long long) strlen(IMAGE);
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.started, 1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_image),
        cmocka_unit_test(test_select_max_bytes),
        cmocka_unit_test(test_select_index),
        cmocka_unit_test(test_select_caps),
        cmocka_unit_test(test_select_odd),
        cmocka_unit_test(test_platform_match),
        cmocka_unit_test_setup_teardown(test_image_prefetches_blobs,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_index_prefetches_platform,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_index_child_joined,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_prefetch_disabled,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_head_prefetches_nothing,
                                        fake_env_setup, fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
