/*
 * What a manifest refers to: the parse of an image manifest (its config
 * and layers) or of an index (its child manifests and their platforms),
 * shared by the fetcher (prefetch, pins, warm, scrub, purge) and
 * ocimirrorctl (du).  Only sha256 descriptors with a size are kept; the
 * others are counted as invalid.
 */

#ifndef OCI_IMAGE_H
#define OCI_IMAGE_H

#include "oci.h"

typedef enum {
    OCI_IMAGE_OTHER = 0,            /* neither: an artifact's own type */
    OCI_IMAGE_MANIFEST,             /* OCI or Docker v2 image manifest */
    OCI_IMAGE_INDEX                 /* OCI index or Docker manifest list */
} oci_image_kind_t;

typedef struct {
    char        digest[OCI_DIGEST_MAX + 1];
    long long   size;
    char        media_type[OCI_MEDIA_TYPE_MAX + 1];  /* "" if none */
    char        platform[OCI_PLATFORM_MAX];          /* index entries:
                                                        "os/arch[/variant]",
                                                        "" if none or not
                                                        of that grammar
                                                        (oci_platform_valid) */
} oci_desc_t;

typedef struct {
    oci_image_kind_t   kind;
    oci_desc_t         config;      /* MANIFEST; config.digest "" if none */
    oci_desc_t        *items;       /* MANIFEST: layers; INDEX: children */
    size_t             n;
    size_t             invalid;     /* descriptors left out */
} oci_image_t;

/* The kind of a manifest's media type. */
oci_image_kind_t oci_image_kind(const char *media_type);

/*
 * Parse body[0..len), a manifest of media_type.  A type that is neither
 * an image manifest nor an index gives kind OTHER and no items (OCI_OK).
 * Returns OCI_OK (free img with oci_image_free()), OCI_EINVAL for JSON
 * that is not a manifest of that kind, OCI_ENOMEM.
 */
int oci_image_parse(const char *media_type, const char *body, size_t len,
    oci_image_t *img);

/* Read and parse the stored manifest hex (its types/ line and body).
 * OCI_ENOENT if it is not stored (or not a manifest), else as
 * oci_image_parse(), or OCI_EIO. */
int oci_image_read(const char *root, const char *hex, oci_image_t *img);

void oci_image_free(oci_image_t *img);

/*
 * 1 if the platform "os/arch[/variant]" is one of the n patterns:
 * "os/arch" matches every variant, "os/arch/variant" only that one.  No
 * patterns (n == 0) match every platform.
 */
int oci_platform_match(char *const *patterns, size_t n,
    const char *platform);

/* The platform of os, arch and variant (each may be NULL) as
 * "os/arch[/variant]" into out; "" if os or arch is missing. */
void oci_platform_format(char *out, size_t cap, const char *os,
    const char *arch, const char *variant);

#endif /* OCI_IMAGE_H */
