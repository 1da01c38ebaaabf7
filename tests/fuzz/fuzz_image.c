/*
 * The manifests and indexes that prefetch, pins, warm lists, the scrub
 * and ocimirrorctl du read (src/oci_image.c): upstream's JSON, verified
 * by digest but written by whoever pushed the image.
 *
 * Input: one byte choosing the media type (the four manifest types or an
 * artifact's), then the body.
 * Checks: the kind follows the media type; every descriptor kept has a
 * sha256 digest, a size, a valid media type or none, and a platform that
 * is "os/arch[/variant]" or none (platforms go into pins' matching, logs
 * and ocimirrorctl's lines).
 */

#include <string.h>

#include "fuzz.h"
#include "oci_image.h"
#include "oci_ref.h"


static const char  *fuzz_types[] = {
    OCI_MT_OCI_MANIFEST,
    OCI_MT_OCI_INDEX,
    OCI_MT_DOCKER_MANIFEST,
    OCI_MT_DOCKER_LIST,
    "application/vnd.example.artifact.v1+json",
};


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


static void
fuzz_desc(const oci_desc_t *d)
{
    char  hex[OCI_SHA256_HEX_LEN + 1];

    FUZZ_CHECK(oci_digest_parse(d->digest, strlen(d->digest), hex)
               == OCI_OK);
    FUZZ_CHECK(d->size >= 0);
    FUZZ_CHECK(d->media_type[0] == '\0'
               || oci_media_type_valid(d->media_type,
                                       strlen(d->media_type)));
    FUZZ_CHECK(d->platform[0] == '\0' || oci_platform_valid(d->platform));
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    oci_image_t   img;
    const char   *type;
    size_t        i;
    int           rc;

    if (size == 0) {
        return 0;
    }

    type = fuzz_types[data[0] % (sizeof(fuzz_types) / sizeof(char *))];

    rc = oci_image_parse(type, (const char *) data + 1, size - 1, &img);

    if (rc != OCI_OK) {
        FUZZ_CHECK(rc == OCI_EINVAL || rc == OCI_ENOMEM);
        FUZZ_CHECK(img.items == NULL);
        return 0;
    }

    FUZZ_CHECK(img.kind == oci_image_kind(type));

    if (img.kind == OCI_IMAGE_OTHER) {
        FUZZ_CHECK(img.n == 0 && img.items == NULL);
        return 0;
    }

    if (img.kind == OCI_IMAGE_MANIFEST && img.config.digest[0] != '\0') {
        fuzz_desc(&img.config);
    }

    for (i = 0; i < img.n; i++) {
        fuzz_desc(&img.items[i]);
    }

    oci_image_free(&img);

    return 0;
}
