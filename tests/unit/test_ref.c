/*
 * Unit tests for src/oci_ref.c: names, tags, hosts, digests, media types
 * and the Accept list.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "oci_ref.h"


#define NAME(s)  oci_name_valid(s, strlen(s))
#define TAG(s)   oci_tag_valid(s, strlen(s))
#define HOST(s)  oci_host_valid(s, strlen(s))
#define MT(s)    oci_media_type_valid(s, strlen(s))

#define HEX64 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


static void
test_name_valid(void **state)
{
    assert_true(NAME("nginx"));
    assert_true(NAME("library/nginx"));
    assert_true(NAME("a/b/c/d"));
    assert_true(NAME("a.b_c__d-e---f"));
    assert_true(NAME("0"));
    assert_true(NAME("foo/blobs"));
    assert_true(NAME("x9/y8.z7"));
}


static void
test_name_invalid(void **state)
{
    char  buf[300];

    assert_false(NAME(""));
    assert_false(NAME(".."));
    assert_false(NAME("a/../b"));
    assert_false(NAME("a/./b"));
    assert_false(NAME("a//b"));
    assert_false(NAME("/a"));
    assert_false(NAME("a/"));
    assert_false(NAME("Nginx"));
    assert_false(NAME("a___b"));
    assert_false(NAME("a_"));
    assert_false(NAME("a-"));
    assert_false(NAME("-a"));
    assert_false(NAME("a..b"));
    assert_false(NAME("a.-b"));
    assert_false(NAME("a%2Fb"));
    assert_false(NAME("a b"));
    assert_false(NAME("a\nb"));
    assert_false(NAME("a:b"));
    assert_false(oci_name_valid("a\0b", 3));
    assert_false(oci_name_valid(NULL, 0));

    /* 255 is the limit */
    memset(buf, 'a', 256);
    assert_true(oci_name_valid(buf, 255));
    assert_false(oci_name_valid(buf, 256));

    /* never reads past len: "ab" then garbage */
    assert_true(oci_name_valid("ab/", 2));
}


static void
test_tag(void **state)
{
    char  buf[200];

    assert_true(TAG("latest"));
    assert_true(TAG("_x"));
    assert_true(TAG("V1.2.3-rc_1"));
    assert_false(TAG(""));
    assert_false(TAG(".x"));
    assert_false(TAG("-x"));
    assert_false(TAG("a:b"));
    assert_false(TAG("a/b"));
    assert_false(TAG("a b"));
    assert_false(TAG("%2F"));

    memset(buf, 'a', sizeof(buf));
    assert_true(oci_tag_valid(buf, 128));
    assert_false(oci_tag_valid(buf, 129));
}


static void
test_host(void **state)
{
    char    buf[300];
    size_t  i;

    assert_true(HOST("docker.io"));
    assert_true(HOST("localhost"));
    assert_true(HOST("localhost:5000"));
    assert_true(HOST("127.0.0.1:65535"));
    assert_true(HOST("a-b.c-d.io"));
    assert_false(HOST(""));
    assert_false(HOST("Docker.io"));
    assert_false(HOST("docker..io"));
    assert_false(HOST(".docker.io"));
    assert_false(HOST("docker.io."));
    assert_false(HOST("-a.io"));
    assert_false(HOST("a-.io"));
    assert_false(HOST("a_b.io"));
    assert_false(HOST("host:"));
    assert_false(HOST(":80"));
    assert_false(HOST("host:0"));
    assert_false(HOST("host:080"));
    assert_false(HOST("host:65536"));
    assert_false(HOST("host:123456"));
    assert_false(HOST("host:80:80"));
    assert_false(HOST("host:8a"));
    assert_false(HOST("a/b"));
    assert_false(HOST("a b"));
    assert_false(HOST("[::1]:5000"));

    memset(buf, 'a', sizeof(buf));
    assert_true(oci_host_valid(buf, 63));
    assert_false(oci_host_valid(buf, 64));       /* one label too long */

    for (i = 63; i < sizeof(buf); i += 64) {
        buf[i] = '.';
    }
    assert_true(oci_host_valid(buf, 255));
    assert_false(oci_host_valid(buf, 256));
}


static void
test_digest(void **state)
{
    char  hex[OCI_SHA256_HEX_LEN + 1];
    char  s[200];

    memset(hex, 'x', sizeof(hex));
    assert_int_equal(oci_digest_parse("sha256:" HEX64, 71, hex), OCI_OK);
    assert_string_equal(hex, HEX64);

    assert_int_equal(oci_digest_parse("sha256:" HEX64, 70, NULL), OCI_EINVAL);
    assert_int_equal(oci_digest_parse("sha256:" HEX64 "0", 72, NULL),
                     OCI_EINVAL);

    /* upper-case hex */
    strcpy(s, "sha256:" HEX64);
    s[20] = 'A';
    assert_int_equal(oci_digest_parse(s, 71, NULL), OCI_EINVAL);

    /* non-hex */
    s[20] = 'g';
    assert_int_equal(oci_digest_parse(s, 71, NULL), OCI_EINVAL);

    assert_int_equal(oci_digest_parse("SHA256:" HEX64, 71, NULL),
                     OCI_EINVAL);
    assert_int_equal(oci_digest_parse("sha256" HEX64, 70, NULL), OCI_EINVAL);
    assert_int_equal(oci_digest_parse(":" HEX64, 65, NULL), OCI_EINVAL);
    assert_int_equal(oci_digest_parse("sha256:", 7, NULL), OCI_EINVAL);
    assert_int_equal(oci_digest_parse("", 0, NULL), OCI_EINVAL);

    /* other algorithms: well-formed is ENOTSUP */
    assert_int_equal(oci_digest_parse("sha512:" HEX64 HEX64, 135, NULL),
                     OCI_ENOTSUP);
    assert_int_equal(oci_digest_parse("sha512:" HEX64, 71, NULL), OCI_EINVAL);
    assert_int_equal(oci_digest_parse("blake3:abcDEF=_-", 16, NULL),
                     OCI_ENOTSUP);
    assert_int_equal(oci_digest_parse("multihash+base58:QmRZxt", 23, NULL),
                     OCI_ENOTSUP);
    assert_int_equal(oci_digest_parse("a+:x", 4, NULL), OCI_EINVAL);
    assert_int_equal(oci_digest_parse("+a:x", 4, NULL), OCI_EINVAL);
    assert_int_equal(oci_digest_parse("md5:a/b", 7, NULL), OCI_EINVAL);
    assert_int_equal(oci_digest_parse("md5:a b", 7, NULL), OCI_EINVAL);

    assert_true(oci_ref_is_digest("sha256:x", 8));
    assert_true(oci_ref_is_digest("a:", 2));
    assert_false(oci_ref_is_digest("latest", 6));
    assert_false(oci_ref_is_digest("latest:", 6));
}


static void
test_media_type(void **state)
{
    char  buf[300];

    assert_true(MT("application/json"));
    assert_true(MT(OCI_MT_OCI_MANIFEST));
    assert_true(MT(OCI_MT_DOCKER_LIST));
    assert_true(MT("Application/Vnd.Foo+JSON"));
    assert_false(MT("application"));
    assert_false(MT("application/"));
    assert_false(MT("/json"));
    assert_false(MT("*/*"));
    assert_false(MT("application/json; charset=utf-8"));
    assert_false(MT("application/json;q=1"));
    assert_false(MT("a/b/c"));
    assert_false(MT(".a/b"));
    assert_false(MT("a b/c"));

    memset(buf, 'a', sizeof(buf));
    buf[127] = '/';
    assert_true(oci_media_type_valid(buf, 255));
    assert_false(oci_media_type_valid(buf, 256));
}


static void
test_accept(void **state)
{
    char  out[OCI_ACCEPT_MAX + 1];
    char  small[40];
    const char  *h1, *h2;

    out[0] = '\0';
    h1 = "application/vnd.oci.image.index.v1+json;q=0.9, "
         "application/json ; q=0.5,,bogus, text/html;q=0";
    assert_int_equal(oci_accept_append(out, sizeof(out), h1, strlen(h1)),
                     OCI_OK);
    assert_string_equal(out, OCI_MT_OCI_INDEX ",application/json");

    /* a second header: duplicates (any case) dropped, wildcard kept */
    h2 = "APPLICATION/JSON, */*;q=0.1, application/*";
    assert_int_equal(oci_accept_append(out, sizeof(out), h2, strlen(h2)),
                     OCI_OK);
    assert_string_equal(out, OCI_MT_OCI_INDEX ",application/json,*/*");

    /* overflow: ERANGE, what was there stays valid */
    small[0] = '\0';
    h1 = "application/json, application/vnd.docker.x+json";
    assert_int_equal(oci_accept_append(small, sizeof(small), h1, strlen(h1)),
                     OCI_ERANGE);
    assert_string_equal(small, "application/json");

    /* an exact fit */
    small[0] = '\0';
    h1 = "a/bcdefghijklmnopqrstuvwxyz0123456789ab";   /* 39 bytes */
    assert_int_equal(oci_accept_append(small, sizeof(small), h1, strlen(h1)),
                     OCI_OK);
    assert_string_equal(small, h1);

    /* q=0.000 drops, q=0.001 keeps */
    out[0] = '\0';
    h1 = "a/b;q=0.000,c/d;Q=0.001";
    assert_int_equal(oci_accept_append(out, sizeof(out), h1, strlen(h1)),
                     OCI_OK);
    assert_string_equal(out, "c/d");

    /* only the first len bytes are read */
    out[0] = '\0';
    assert_int_equal(oci_accept_append(out, sizeof(out), "a/b,c/d", 3),
                     OCI_OK);
    assert_string_equal(out, "a/b");
}


static void
test_accept_serves(void **state)
{
    /* absent, empty or wildcards only: whatever is stored */
    assert_true(oci_accept_serves("", OCI_MT_OCI_INDEX));
    assert_true(oci_accept_serves(NULL, OCI_MT_OCI_INDEX));
    assert_true(oci_accept_serves("*/*", OCI_MT_DOCKER_MANIFEST));

    /* an explicit list: only the types it names */
    assert_true(oci_accept_serves(OCI_MT_ALL_MANIFESTS, OCI_MT_DOCKER_LIST));
    assert_true(oci_accept_serves("a/b," OCI_MT_OCI_MANIFEST,
                                  OCI_MT_OCI_MANIFEST));
    assert_false(oci_accept_serves(OCI_MT_DOCKER_MANIFEST,
                                   OCI_MT_DOCKER_LIST));
    assert_true(oci_accept_serves("APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON",
                                  OCI_MT_OCI_INDEX));

    /* a wildcard beside explicit types does not widen them */
    assert_false(oci_accept_serves(OCI_MT_DOCKER_MANIFEST ",*/*",
                                   OCI_MT_OCI_INDEX));
    assert_true(oci_accept_serves("*/*," OCI_MT_OCI_INDEX,
                                  OCI_MT_OCI_INDEX));

    /* a prefix is not a match */
    assert_false(oci_accept_serves("application/vnd.oci.image.index.v1",
                                   OCI_MT_OCI_INDEX));
    assert_false(oci_accept_serves(OCI_MT_OCI_INDEX,
                                   "application/vnd.oci.image.index.v1"));
}


static void
test_sha256_hex(void **state)
{
    unsigned char  md[OCI_SHA256_HEX_LEN / 2];
    char           hex[OCI_SHA256_HEX_LEN + 1];
    size_t         i;

    for (i = 0; i < sizeof(md); i++) {
        md[i] = (unsigned char) (i * 17 + 0x0f);
    }

    memset(hex, 'x', sizeof(hex));
    oci_sha256_hex(md, hex);
    assert_string_equal(hex, "0f2031425364758697a8b9cadbecfd0e"
                             "1f30415263748596a7b8c9daebfc0d1e");
    assert_int_equal(oci_digest_parse("sha256:0f2031425364758697a8b9cadbecfd0e"
                                      "1f30415263748596a7b8c9daebfc0d1e",
                                      71, NULL), OCI_OK);
}


/* parse s (no globs unless g) and expect OCI_OK with these parts */
static void
expect_ref(const char *s, int g, const char *registry, const char *name,
    const char *tag, const char *digest, int globs)
{
    oci_imageref_t   r;
    const char      *why = NULL;

    if (oci_imageref_parse(s, strlen(s), g, &r, &why) != OCI_OK) {
        fail_msg("\"%s\": %s", s, why);
    }

    assert_string_equal(r.registry, registry);
    assert_string_equal(r.name, name);
    assert_string_equal(r.tag, tag);
    assert_string_equal(r.digest, digest);
    assert_int_equal(r.globs, globs);
}


static void
expect_bad_ref(const char *s, int g, const char *why_has)
{
    oci_imageref_t   r;
    const char      *why = NULL;

    assert_int_equal(oci_imageref_parse(s, strlen(s), g, &r, &why),
                     OCI_EINVAL);
    assert_non_null(why);

    if (strstr(why, why_has) == NULL) {
        fail_msg("\"%s\": expected \"%s\" in \"%s\"", s, why_has, why);
    }
}


#define D64 "0123456789abcdef0123456789abcdef" \
            "0123456789abcdef0123456789abcdef"


static void
test_imageref(void **state)
{
    oci_imageref_t   r;
    const char      *why;
    char             out[512];

    expect_ref("docker.io/library/nginx:1.27", 0, "docker.io",
               "library/nginx", "1.27", "", 0);
    expect_ref("docker.io/library/nginx", 0, "docker.io", "library/nginx",
               "latest", "", 0);
    expect_ref("localhost:5000/a/b:v1", 0, "localhost:5000", "a/b", "v1", "",
               0);
    expect_ref("localhost:5000/a/b", 0, "localhost:5000", "a/b", "latest",
               "", 0);
    expect_ref("ghcr.io/org/app@sha256:" D64, 0, "ghcr.io", "org/app", "",
               "sha256:" D64, 0);
    expect_ref("ghcr.io/org/*:*", 1, "ghcr.io", "org/*", "*", "", 1);
    expect_ref("*/library/nginx:1.2?", 1, "*", "library/nginx", "1.2?", "",
               1);
    expect_ref("quay.io/a/b:v1", 1, "quay.io", "a/b", "v1", "", 0);

    expect_bad_ref("nginx:1.27", 0, "starts with its registry");
    expect_bad_ref("/nginx:1.27", 0, "starts with its registry");
    expect_bad_ref("docker.io/:1", 0, "repository name");
    expect_bad_ref("docker.io/Nginx:1", 0, "repository name");
    expect_bad_ref("docker.io/nginx:", 0, "tag after ':' is empty");
    expect_bad_ref("docker.io/nginx:-x", 0, "the tag must be");
    expect_bad_ref("docker.io/nginx@sha256:abc", 0, "digest");
    expect_bad_ref("Docker.IO/nginx:1", 0, "registry");
    expect_bad_ref("ghcr.io/org/*:*", 0, "globs");
    expect_bad_ref("ghcr.io/org/$:*", 1, "repository name");
    expect_bad_ref("ghcr.io/org/a:[x]", 1, "the tag must be");

    /* a NUL is no glob character (found by tests/fuzz/fuzz_ref.c): it
     * cut the part short once copied, "gh" for "gh\0r.io" */
    assert_int_equal(oci_imageref_parse("gh\0r.io/org/D:*", 15, 1, &r, &why),
                     OCI_EINVAL);
    assert_int_equal(oci_imageref_parse("ghcr.io/o\0g/*:*", 15, 1, &r, &why),
                     OCI_EINVAL);
    assert_int_equal(oci_imageref_parse("ghcr.io/org/*:\0", 15, 1, &r, &why),
                     OCI_EINVAL);

    /* matching: exact, and globs where '*' also spans '/' */
    assert_int_equal(oci_imageref_parse("ghcr.io/org/*:*", 15, 1, &r, &why),
                     OCI_OK);
    assert_true(oci_imageref_match(&r, "ghcr.io", "org/app", "v1"));
    assert_true(oci_imageref_match(&r, "ghcr.io", "org/team/app", "v1"));
    assert_false(oci_imageref_match(&r, "ghcr.io", "other/app", "v1"));
    assert_false(oci_imageref_match(&r, "quay.io", "org/app", "v1"));

    assert_int_equal(oci_imageref_parse("docker.io/library/nginx:1.27", 28,
                                        0, &r, &why), OCI_OK);
    assert_true(oci_imageref_match(&r, "docker.io", "library/nginx",
                                   "1.27"));
    assert_false(oci_imageref_match(&r, "docker.io", "library/nginx",
                                    "1.27.1"));
    oci_imageref_format(&r, out, sizeof(out));
    assert_string_equal(out, "docker.io/library/nginx:1.27");

    /* a digest reference names no tag */
    assert_int_equal(oci_imageref_parse("ghcr.io/a@sha256:" D64,
                        strlen("ghcr.io/a@sha256:" D64), 0, &r, &why), OCI_OK);
    assert_false(oci_imageref_match(&r, "ghcr.io", "a", "latest"));
    oci_imageref_format(&r, out, sizeof(out));
    assert_string_equal(out, "ghcr.io/a@sha256:" D64);
}


static void
test_platform_valid(void **state)
{
    assert_true(oci_platform_valid("linux/amd64"));
    assert_true(oci_platform_valid("linux/arm/v7"));
    assert_false(oci_platform_valid("linux"));
    assert_false(oci_platform_valid("linux/"));
    assert_false(oci_platform_valid("/amd64"));
    assert_false(oci_platform_valid("linux/arm/v7/x"));
    assert_false(oci_platform_valid("Linux/amd64"));
    assert_false(oci_platform_valid("linux//amd64"));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_name_invalid),
        cmocka_unit_test(test_tag),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_media_type),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_accept_serves),
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_imageref),
        cmocka_unit_test(test_platform_valid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
