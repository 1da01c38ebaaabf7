/*
 * Unit tests for src/oci_route.c, against a config built in memory:
 * docker.io (default, library_prefix), ghcr.io, localhost:5000 and
 * localhost.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "oci_route.h"


#define HEX64 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST  "sha256:" HEX64


typedef struct {
    oci_registry_t  regs[4];
    oci_config_t    cf;
    oci_route_t     r;
    oci_errcode_t   code;
    char            msg[128];
} fixture_t;


static int
setup(void **state)
{
    fixture_t  *f;

    f = calloc(1, sizeof(fixture_t));
    if (f == NULL) {
        return -1;
    }

    f->regs[0].name = "docker.io";
    f->regs[0].library_prefix = 1;
    f->regs[1].name = "ghcr.io";
    f->regs[2].name = "localhost:5000";
    f->regs[3].name = "localhost";

    f->cf.registries = f->regs;
    f->cf.n_registries = 4;
    f->cf.default_registry = &f->regs[0];

    *state = f;

    return 0;
}


static int
teardown(void **state)
{
    free(*state);

    return 0;
}


static int
route_ns(fixture_t *f, const char *path, const char *ns)
{
    f->code = OCI_ERR__COUNT;
    f->msg[0] = '\0';

    return oci_route(&f->cf, path, strlen(path), ns,
                     ns != NULL ? strlen(ns) : 0, &f->r, &f->code, f->msg,
                     sizeof(f->msg));
}


static int
route(fixture_t *f, const char *path)
{
    return route_ns(f, path, NULL);
}


static void
expect_fail(fixture_t *f, const char *path, const char *ns, oci_errcode_t e)
{
    int  rc;

    rc = route_ns(f, path, ns);

    if (rc != OCI_EINVAL || f->code != e) {
        fail_msg("%s (ns %s): rc %d code %s, expected %s", path,
                 ns ? ns : "-", rc, oci_err_code(f->code), oci_err_code(e));
    }

    assert_true(f->msg[0] != '\0');
}


static void
test_base(void **state)
{
    fixture_t  *f = *state;

    assert_int_equal(route(f, "/v2/"), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_BASE);
    assert_null(f->r.registry);

    /* containerd pings with ?ns= too */
    assert_int_equal(route_ns(f, "/v2/", "ghcr.io"), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_BASE);

    expect_fail(f, "/v2", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v1/", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/V2/", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "", NULL, OCI_ERR_UNSUPPORTED);
}


static void
test_default_registry(void **state)
{
    fixture_t  *f = *state;

    assert_int_equal(route(f, "/v2/nginx/manifests/latest"), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_MANIFEST);
    assert_ptr_equal(f->r.registry, &f->regs[0]);
    assert_string_equal(f->r.name, "library/nginx");
    assert_string_equal(f->r.reference, "latest");
    assert_int_equal(f->r.is_digest, 0);
    assert_string_equal(f->r.client_prefix, "");

    assert_int_equal(route(f, "/v2/bitnami/redis/blobs/" DIGEST), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_BLOB);
    assert_string_equal(f->r.name, "bitnami/redis");
    assert_string_equal(f->r.reference, DIGEST);
    assert_string_equal(f->r.hex, HEX64);
    assert_int_equal(f->r.is_digest, 1);

    assert_int_equal(route(f, "/v2/library/nginx/tags/list"), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_TAGS);
    assert_string_equal(f->r.name, "library/nginx");
    assert_string_equal(f->r.reference, "");

    /* "localhost" without a dot: configured, so it routes there */
    assert_int_equal(route(f, "/v2/localhost/app/manifests/v1"), OCI_OK);
    assert_ptr_equal(f->r.registry, &f->regs[3]);
    assert_string_equal(f->r.name, "app");
    assert_string_equal(f->r.client_prefix, "localhost/");

    /* a one-part name that looks like a host is a repository name */
    assert_int_equal(route(f, "/v2/foo.bar/manifests/v1"), OCI_OK);
    assert_ptr_equal(f->r.registry, &f->regs[0]);
    assert_string_equal(f->r.name, "library/foo.bar");
}


static void
test_prefix_registry(void **state)
{
    fixture_t  *f = *state;

    assert_int_equal(route(f, "/v2/ghcr.io/org/app/manifests/" DIGEST),
                     OCI_OK);
    assert_ptr_equal(f->r.registry, &f->regs[1]);
    assert_string_equal(f->r.name, "org/app");
    assert_string_equal(f->r.reference, DIGEST);
    assert_string_equal(f->r.hex, HEX64);
    assert_int_equal(f->r.is_digest, 1);
    assert_string_equal(f->r.client_prefix, "ghcr.io/");

    /* no library/ outside docker.io */
    assert_int_equal(route(f, "/v2/ghcr.io/app/tags/list"), OCI_OK);
    assert_string_equal(f->r.name, "app");
    assert_int_equal(f->r.endpoint, OCI_EP_TAGS);

    assert_int_equal(route(f, "/v2/localhost:5000/a/b/blobs/" DIGEST),
                     OCI_OK);
    assert_ptr_equal(f->r.registry, &f->regs[2]);
    assert_string_equal(f->r.name, "a/b");
    assert_string_equal(f->r.client_prefix, "localhost:5000/");

    /* docker.io spelled out gains library/ as well */
    assert_int_equal(route(f, "/v2/docker.io/nginx/manifests/1.25"), OCI_OK);
    assert_ptr_equal(f->r.registry, &f->regs[0]);
    assert_string_equal(f->r.name, "library/nginx");
    assert_string_equal(f->r.client_prefix, "docker.io/");

    /* looks like a host, not configured: no open proxy */
    expect_fail(f, "/v2/evil.com/x/manifests/latest", NULL, OCI_ERR_DENIED);
    assert_string_equal(f->msg, "registry evil.com is not configured");
    expect_fail(f, "/v2/localhost:5001/x/manifests/latest", NULL,
                OCI_ERR_DENIED);
    expect_fail(f, "/v2/a.b.c.def/x/manifests/latest", NULL, OCI_ERR_DENIED);
    assert_string_equal(f->msg, "registry a.b.c.def is not configured");

    /* not a host name at all: an invalid repository name */
    expect_fail(f, "/v2/GHCR.io/x/manifests/latest", NULL,
                OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/../../etc/passwd/manifests/v1", NULL,
                OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/a:b:c/x/manifests/v1", NULL, OCI_ERR_NAME_INVALID);
}


static void
test_ns(void **state)
{
    fixture_t  *f = *state;
    char        longns[300];

    assert_int_equal(route_ns(f, "/v2/org/app/manifests/v1", "ghcr.io"),
                     OCI_OK);
    assert_ptr_equal(f->r.registry, &f->regs[1]);
    assert_string_equal(f->r.name, "org/app");
    assert_string_equal(f->r.client_prefix, "");

    /* with ns the whole name is the repository, even "ghcr.io/..." */
    assert_int_equal(route_ns(f, "/v2/ghcr.io/app/manifests/v1", "ghcr.io"),
                     OCI_OK);
    assert_string_equal(f->r.name, "ghcr.io/app");

    assert_int_equal(route_ns(f, "/v2/nginx/manifests/v1", "docker.io"),
                     OCI_OK);
    assert_string_equal(f->r.name, "library/nginx");

    /* Go's url.Values.Encode() writes ':' as %3A */
    assert_int_equal(route_ns(f, "/v2/a/manifests/v1", "localhost%3A5000"),
                     OCI_OK);
    assert_ptr_equal(f->r.registry, &f->regs[2]);
    assert_int_equal(route_ns(f, "/v2/a/manifests/v1", "localhost%3a5000"),
                     OCI_OK);
    assert_int_equal(route_ns(f, "/v2/a/manifests/v1", "localhost:5000"),
                     OCI_OK);
    expect_fail(f, "/v2/a/manifests/v1", "localhost%2F5000", OCI_ERR_DENIED);
    expect_fail(f, "/v2/a/manifests/v1", "localhost%3", OCI_ERR_DENIED);

    expect_fail(f, "/v2/a/manifests/v1", "quay.io", OCI_ERR_DENIED);
    assert_string_equal(f->msg, "registry quay.io is not configured");

    /* an empty ns names no registry: routed as without one */
    assert_int_equal(route_ns(f, "/v2/ghcr.io/a/manifests/v1", ""), OCI_OK);
    assert_ptr_equal(f->r.registry, &f->regs[1]);
    assert_string_equal(f->r.client_prefix, "ghcr.io/");

    expect_fail(f, "/v2/a/manifests/v1", "..%2F..", OCI_ERR_DENIED);
    assert_string_equal(f->msg, "registry is not configured");
    expect_fail(f, "/v2/a/manifests/v1", "docker.io.evil", OCI_ERR_DENIED);
    expect_fail(f, "/v2/a/manifests/v1", "Docker.io", OCI_ERR_DENIED);

    /* a long ns is not echoed */
    memset(longns, 'a', sizeof(longns) - 1);
    longns[sizeof(longns) - 1] = '\0';
    expect_fail(f, "/v2/a/manifests/v1", longns, OCI_ERR_DENIED);
    assert_string_equal(f->msg, "registry is not configured");
    longns[100] = '\0';
    expect_fail(f, "/v2/a/manifests/v1", longns, OCI_ERR_DENIED);
    assert_string_equal(f->msg, "registry is not configured");
}


static void
test_no_default(void **state)
{
    fixture_t  *f = *state;

    f->cf.default_registry = NULL;

    expect_fail(f, "/v2/nginx/manifests/latest", NULL, OCI_ERR_DENIED);
    assert_int_equal(route(f, "/v2/ghcr.io/a/manifests/latest"), OCI_OK);
}


static void
test_names(void **state)
{
    fixture_t  *f = *state;
    char        path[600];

    expect_fail(f, "/v2/a%2Fb/manifests/latest", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/a/manifests/lat%65st", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/a//b/manifests/latest", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2//a/manifests/latest", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/a/../b/manifests/latest", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/../manifests/latest", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/Nginx/manifests/latest", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/a b/manifests/latest", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/manifests/latest", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2//manifests/latest", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/tags/list", NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/ghcr.io//a/manifests/x", NULL, OCI_ERR_NAME_INVALID);

    /* a lone first component is a name, even with a dot */
    assert_int_equal(route(f, "/v2/ghcr.io/manifests/x"), OCI_OK);
    assert_string_equal(f->r.name, "library/ghcr.io");

    /* 255 is the limit, "library/" included */
    strcpy(path, "/v2/ghcr.io/");
    memset(path + 12, 'a', 255);
    strcpy(path + 12 + 255, "/tags/list");
    assert_int_equal(route(f, path), OCI_OK);
    assert_int_equal(strlen(f->r.name), 255);

    memset(path + 12, 'a', 256);
    strcpy(path + 12 + 256, "/tags/list");
    expect_fail(f, path, NULL, OCI_ERR_NAME_INVALID);

    strcpy(path, "/v2/");
    memset(path + 4, 'a', 247);
    strcpy(path + 4 + 247, "/tags/list");
    assert_int_equal(route(f, path), OCI_OK);
    assert_int_equal(strlen(f->r.name), 255);

    memset(path + 4, 'a', 248);
    strcpy(path + 4 + 248, "/tags/list");
    expect_fail(f, path, NULL, OCI_ERR_NAME_INVALID);

    /* names may hold endpoint words; the last marker splits */
    assert_int_equal(route(f, "/v2/a/blobs/manifests/latest"), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_MANIFEST);
    assert_string_equal(f->r.name, "a/blobs");

    assert_int_equal(route(f, "/v2/a/manifests/b/blobs/" DIGEST), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_BLOB);
    assert_string_equal(f->r.name, "a/manifests/b");

    assert_int_equal(route(f, "/v2/tags/list/tags/list"), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_TAGS);
    assert_string_equal(f->r.name, "tags/list");
}


static void
test_references(void **state)
{
    fixture_t  *f = *state;
    char        path[300];

    expect_fail(f, "/v2/a/blobs/latest", NULL, OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/blobs/sha256:" HEX64 "0", NULL,
                OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/blobs/sha256:ABCDEF" HEX64, NULL,
                OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/blobs/sha256:0123456789ABCDEF0123456789abcdef"
                "0123456789abcdef0123456789abcdef", NULL,
                OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/blobs/sha512:" HEX64 HEX64, NULL,
                OCI_ERR_DIGEST_INVALID);
    assert_string_equal(f->msg, "unsupported digest algorithm");
    expect_fail(f, "/v2/a/manifests/sha512:" HEX64 HEX64, NULL,
                OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/manifests/sha256:abc", NULL,
                OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/manifests/latest:", NULL, OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/manifests/.latest", NULL, OCI_ERR_MANIFEST_INVALID);
    expect_fail(f, "/v2/a/manifests/-x", NULL, OCI_ERR_MANIFEST_INVALID);
    expect_fail(f, "/v2/a/manifests/a b", NULL, OCI_ERR_MANIFEST_INVALID);
    expect_fail(f, "/v2/a/manifests/a\nb", NULL, OCI_ERR_MANIFEST_INVALID);

    strcpy(path, "/v2/a/manifests/");
    memset(path + 16, 'x', 128);
    path[16 + 128] = '\0';
    assert_int_equal(route(f, path), OCI_OK);
    assert_int_equal(strlen(f->r.reference), 128);
    path[16 + 128] = 'x';
    path[16 + 129] = '\0';
    expect_fail(f, path, NULL, OCI_ERR_MANIFEST_INVALID);
}


static void
test_referrers(void **state)
{
    fixture_t  *f = *state;

    assert_int_equal(route(f, "/v2/org/app/referrers/" DIGEST), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_REFERRERS);
    assert_ptr_equal(f->r.registry, &f->regs[0]);
    assert_string_equal(f->r.name, "org/app");
    assert_string_equal(f->r.reference, DIGEST);
    assert_int_equal(f->r.is_digest, 1);
    assert_string_equal(f->r.hex, HEX64);

    /* library/ as for the other endpoints, a registry by prefix or ns */
    assert_int_equal(route(f, "/v2/nginx/referrers/" DIGEST), OCI_OK);
    assert_string_equal(f->r.name, "library/nginx");

    assert_int_equal(route(f, "/v2/ghcr.io/org/app/referrers/" DIGEST),
                     OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_REFERRERS);
    assert_ptr_equal(f->r.registry, &f->regs[1]);
    assert_string_equal(f->r.name, "org/app");
    assert_string_equal(f->r.client_prefix, "ghcr.io/");

    assert_int_equal(route_ns(f, "/v2/org/app/referrers/" DIGEST,
                              "localhost%3A5000"), OCI_OK);
    assert_ptr_equal(f->r.registry, &f->regs[2]);
    assert_int_equal(f->r.endpoint, OCI_EP_REFERRERS);

    /* the last marker splits: names may hold the other words */
    assert_int_equal(route(f, "/v2/a/referrers/b/manifests/v1"), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_MANIFEST);
    assert_string_equal(f->r.name, "a/referrers/b");

    assert_int_equal(route(f, "/v2/a/manifests/referrers/" DIGEST), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_REFERRERS);
    assert_string_equal(f->r.name, "a/manifests");

    assert_int_equal(route(f, "/v2/a/referrers/blobs/" DIGEST), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_BLOB);
    assert_string_equal(f->r.name, "a/referrers");

    assert_int_equal(route(f, "/v2/a/referrers/b/tags/list"), OCI_OK);
    assert_int_equal(f->r.endpoint, OCI_EP_TAGS);
    assert_string_equal(f->r.name, "a/referrers/b");

    /* only a valid sha256 digest */
    expect_fail(f, "/v2/a/referrers/latest", NULL, OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/referrers/sha256:" HEX64 "0", NULL,
                OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/referrers/sha256:abc", NULL,
                OCI_ERR_DIGEST_INVALID);
    expect_fail(f, "/v2/a/referrers/sha512:" HEX64 HEX64, NULL,
                OCI_ERR_DIGEST_INVALID);
    assert_string_equal(f->msg, "unsupported digest algorithm");
    expect_fail(f, "/v2/A/referrers/" DIGEST, NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/referrers/" DIGEST, NULL, OCI_ERR_NAME_INVALID);
    expect_fail(f, "/v2/org/app/referrers/" DIGEST, "nosuch.io",
                OCI_ERR_DENIED);
}


static void
test_unsupported(void **state)
{
    fixture_t  *f = *state;

    expect_fail(f, "/v2/a/manifests/", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/blobs/", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/manifests/latest/", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/blobs/uploads/123", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/tags/list/", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/tags/list/x", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/tags/lists", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/_catalog", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/referrers/", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/referrers/" DIGEST "/x", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/referrers", NULL, OCI_ERR_UNSUPPORTED);
    expect_fail(f, "/v2/a/manifests", NULL, OCI_ERR_UNSUPPORTED);
}


static void
test_raw_length(void **state)
{
    fixture_t  *f = *state;
    const char *p = "/v2/a/manifests/latestGARBAGE";

    /* only path_len bytes are looked at */
    assert_int_equal(oci_route(&f->cf, p, 22, NULL, 0, &f->r, &f->code,
                               f->msg, sizeof(f->msg)), OCI_OK);
    assert_string_equal(f->r.reference, "latest");

    /* msg may be absent */
    assert_int_equal(oci_route(&f->cf, "/v2/A/tags/list", 15, NULL, 0,
                               &f->r, &f->code, NULL, 0), OCI_EINVAL);
    assert_int_equal(f->code, OCI_ERR_NAME_INVALID);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_base, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_registry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_prefix_registry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_references, setup, teardown),
        cmocka_unit_test_setup_teardown(test_referrers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_length, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
