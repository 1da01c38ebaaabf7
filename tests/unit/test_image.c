/*
 * Unit tests for src/oci_image.c: what a manifest or an index names.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "oci_image.h"
#include "oci_ref.h"


#define HEX64 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST  "sha256:" HEX64


static int
parse(const char *type, const char *json, oci_image_t *img)
{
    return oci_image_parse(type, json, strlen(json), img);
}


static void
test_manifest(void **state)
{
    oci_image_t  img;

    assert_int_equal(parse(OCI_MT_OCI_MANIFEST,
        "{\"config\":{\"digest\":\"" DIGEST "\",\"size\":7},"
        "\"layers\":[{\"digest\":\"" DIGEST "\",\"size\":9,"
        "\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\"},"
        "{\"digest\":\"sha512:00\",\"size\":1},{\"size\":1}]}", &img),
        OCI_OK);

    assert_int_equal(img.kind, OCI_IMAGE_MANIFEST);
    assert_string_equal(img.config.digest, DIGEST);
    assert_int_equal(img.config.size, 7);
    assert_int_equal(img.n, 1);
    assert_int_equal(img.items[0].size, 9);
    assert_string_equal(img.items[0].media_type,
                        "application/vnd.oci.image.layer.v1.tar+gzip");
    assert_int_equal(img.invalid, 2);
    oci_image_free(&img);

    assert_int_equal(parse(OCI_MT_OCI_MANIFEST, "{\"layers\":[]}", &img),
                     OCI_EINVAL);
    assert_int_equal(parse(OCI_MT_DOCKER_MANIFEST, "[1]", &img),
                     OCI_EINVAL);
    assert_int_equal(parse("application/vnd.example+json", "{", &img),
                     OCI_OK);
    assert_int_equal(img.kind, OCI_IMAGE_OTHER);
    assert_null(img.items);
}


/* the platform an index gives its one child, whose "platform" is
 * platform_json */
static const char *
child_platform(const char *platform_json, oci_image_t *img)
{
    char  json[1024];

    snprintf(json, sizeof(json), "{\"manifests\":[{\"digest\":\"" DIGEST
             "\",\"size\":1,\"platform\":%s}]}", platform_json);

    assert_int_equal(parse(OCI_MT_OCI_INDEX, json, img), OCI_OK);
    assert_int_equal(img->n, 1);

    return img->items[0].platform;
}


static void
test_index_platforms(void **state)
{
    oci_image_t  img;

    assert_string_equal(child_platform(
        "{\"os\":\"linux\",\"architecture\":\"amd64\"}", &img),
        "linux/amd64");
    oci_image_free(&img);

    assert_string_equal(child_platform(
        "{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}",
        &img), "linux/arm/v7");
    oci_image_free(&img);

    assert_string_equal(child_platform("{\"os\":\"linux\"}", &img), "");
    oci_image_free(&img);

    /* found by tests/fuzz/fuzz_image.c: parts outside the grammar of
     * patterns made platforms no pattern could name */
    assert_string_equal(child_platform(
        "{\"os\":\"Windows\",\"architecture\":\"amd64\"}", &img), "");
    oci_image_free(&img);

    assert_string_equal(child_platform(
        "{\"os\":\"linux\",\"architecture\":\"a|d64\"}", &img), "");
    oci_image_free(&img);

    /* a '/' in a part would read as another platform */
    assert_string_equal(child_platform(
        "{\"os\":\"linux/arm\",\"architecture\":\"v7\"}", &img), "");
    oci_image_free(&img);

    /* too long: cut short it could name another platform */
    assert_string_equal(child_platform(
        "{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":"
        "\"v7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        &img), "");
    oci_image_free(&img);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_index_platforms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
