/*
 * Manifests' references (see oci_image.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "oci_image.h"
#include "oci_ref.h"
#include "oci_store.h"


oci_image_kind_t
oci_image_kind(const char *media_type)
{
    if (strcmp(media_type, OCI_MT_OCI_MANIFEST) == 0
        || strcmp(media_type, OCI_MT_DOCKER_MANIFEST) == 0)
    {
        return OCI_IMAGE_MANIFEST;
    }

    if (strcmp(media_type, OCI_MT_OCI_INDEX) == 0
        || strcmp(media_type, OCI_MT_DOCKER_LIST) == 0)
    {
        return OCI_IMAGE_INDEX;
    }

    return OCI_IMAGE_OTHER;
}


void
oci_platform_format(char *out, size_t cap, const char *os, const char *arch,
    const char *variant)
{
    if (os == NULL || arch == NULL || *os == '\0' || *arch == '\0') {
        out[0] = '\0';
        return;
    }

    if (variant != NULL && *variant != '\0') {
        snprintf(out, cap, "%s/%s/%s", os, arch, variant);

    } else {
        snprintf(out, cap, "%s/%s", os, arch);
    }
}


int
oci_platform_match(char *const *patterns, size_t n, const char *platform)
{
    const char  *slash;
    size_t       i, len;

    if (n == 0) {
        return 1;
    }

    if (platform[0] == '\0') {
        return 0;
    }

    /* "os/arch" of an "os/arch/variant" */
    slash = strchr(platform, '/');
    slash = slash != NULL ? strchr(slash + 1, '/') : NULL;
    len = slash != NULL ? (size_t) (slash - platform) : strlen(platform);

    for (i = 0; i < n; i++) {
        if (strcmp(patterns[i], platform) == 0
            || (strlen(patterns[i]) == len
                && strncmp(patterns[i], platform, len) == 0))
        {
            return 1;
        }
    }

    return 0;
}


/*
 * The platform of an index entry, p, into out: "" unless it is of the
 * grammar pins and prefetch.platforms are (oci_platform_valid()).  Each
 * part alone must hold no '/' (an os of "linux/arm" and an architecture
 * of "v7" would read as linux/arm/v7), and the whole must fit, not be
 * cut short into another platform.
 */
static void
oci_image_platform(json_t *p, char *out, size_t cap)
{
    const char  *part[3];
    char         buf[OCI_PLATFORM_MAX + 1];
    size_t       i;

    out[0] = '\0';

    part[0] = json_string_value(json_object_get(p, "os"));
    part[1] = json_string_value(json_object_get(p, "architecture"));
    part[2] = json_string_value(json_object_get(p, "variant"));

    for (i = 0; i < 3; i++) {
        if (part[i] != NULL && strchr(part[i], '/') != NULL) {
            return;
        }
    }

    /* a byte more than a platform may take: one cut short fails below */
    oci_platform_format(buf, sizeof(buf), part[0], part[1], part[2]);

    if (buf[0] != '\0' && oci_platform_valid(buf) && strlen(buf) < cap) {
        memcpy(out, buf, strlen(buf) + 1);
    }
}


/* Fill d from the JSON descriptor j: 1, or 0 if it has no sha256 digest
 * and size. */
static int
oci_image_desc(json_t *j, oci_desc_t *d)
{
    const char  *digest, *mt;
    char         hex[OCI_SHA256_HEX_LEN + 1];
    json_t      *v, *p;

    memset(d, 0, sizeof(oci_desc_t));

    if (!json_is_object(j)) {
        return 0;
    }

    digest = json_string_value(json_object_get(j, "digest"));
    v = json_object_get(j, "size");

    if (digest == NULL || !json_is_integer(v) || json_integer_value(v) < 0
        || oci_digest_parse(digest, strlen(digest), hex) != OCI_OK)
    {
        return 0;
    }

    snprintf(d->digest, sizeof(d->digest), "sha256:%s", hex);
    d->size = (long long) json_integer_value(v);

    mt = json_string_value(json_object_get(j, "mediaType"));

    if (mt != NULL && oci_media_type_valid(mt, strlen(mt))) {
        snprintf(d->media_type, sizeof(d->media_type), "%s", mt);
    }

    p = json_object_get(j, "platform");

    if (json_is_object(p)) {
        oci_image_platform(p, d->platform, sizeof(d->platform));
    }

    return 1;
}


int
oci_image_parse(const char *media_type, const char *body, size_t len,
    oci_image_t *img)
{
    json_t  *root, *list, *j;
    size_t   i;

    memset(img, 0, sizeof(oci_image_t));

    img->kind = oci_image_kind(media_type);

    if (img->kind == OCI_IMAGE_OTHER) {
        return OCI_OK;
    }

    root = json_loadb(body, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return OCI_EINVAL;
    }

    list = json_object_get(root, img->kind == OCI_IMAGE_INDEX ? "manifests"
                                                              : "layers");

    if (!json_is_array(list)
        || (img->kind == OCI_IMAGE_MANIFEST
            && !json_is_object(json_object_get(root, "config"))))
    {
        json_decref(root);
        return OCI_EINVAL;
    }

    if (img->kind == OCI_IMAGE_MANIFEST
        && !oci_image_desc(json_object_get(root, "config"), &img->config))
    {
        img->invalid++;
    }

    img->items = calloc(json_array_size(list) + 1, sizeof(oci_desc_t));
    if (img->items == NULL) {
        json_decref(root);
        return OCI_ENOMEM;
    }

    json_array_foreach(list, i, j) {
        if (oci_image_desc(j, &img->items[img->n])) {
            img->n++;

        } else {
            img->invalid++;
        }
    }

    json_decref(root);

    return OCI_OK;
}


int
oci_image_read(const char *root, const char *hex, oci_image_t *img)
{
    char       type[OCI_MEDIA_TYPE_MAX + 1];
    char       path[OCI_PATH_MAX];
    char      *body;
    size_t     len;
    long long  mtime;
    int        rc;

    memset(img, 0, sizeof(oci_image_t));

    /* no types/ line: not stored, or not a manifest */
    rc = oci_store_type_read(root, hex, type, sizeof(type));
    if (rc != OCI_OK) {
        return rc;
    }

    rc = oci_store_blob_path(root, hex, path, sizeof(path));
    if (rc != OCI_OK) {
        return rc;
    }

    rc = oci_store_cache_read(path, OCI_MANIFEST_MAX, &body, &len, &mtime);
    if (rc != OCI_OK) {
        return rc == OCI_ERANGE ? OCI_EINVAL : rc;
    }

    rc = oci_image_parse(type, body, len, img);
    free(body);

    return rc;
}


void
oci_image_free(oci_image_t *img)
{
    free(img->items);
    memset(img, 0, sizeof(oci_image_t));
}
