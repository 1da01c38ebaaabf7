/*
 * Image references and the grammars of src/oci_ref.c: what operators
 * write in pins, warm lists and ocimirrorctl (oci_imageref_parse), and
 * the names, tags, hosts, digests, media types, platforms and Accept
 * values that come from clients and upstreams.
 *
 * Input: one flags byte (bit 0: globs allowed), then the text.
 * Checks: a parsed reference formats to a string that parses back to
 * the same reference; what a validator accepts fits its buffer; an
 * Accept list holds only valid types, and appending the same header
 * again changes nothing (duplicates are dropped).
 */

#include <string.h>

#include "fuzz.h"
#include "oci_ref.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


static void
fuzz_imageref(const char *s, size_t len, int globs)
{
    oci_imageref_t   r, again;
    const char      *why;
    char             text[OCI_HOST_MAX + OCI_NAME_MAX + OCI_TAG_MAX
                          + OCI_DIGEST_MAX + 4];

    why = NULL;

    if (oci_imageref_parse(s, len, globs, &r, &why) != OCI_OK) {
        FUZZ_CHECK(why != NULL);
        return;
    }

    FUZZ_CHECK(r.registry[0] != '\0' && r.name[0] != '\0');
    FUZZ_CHECK((r.tag[0] == '\0') != (r.digest[0] == '\0'));
    FUZZ_CHECK(globs || !r.globs);

    if (!r.globs) {
        FUZZ_CHECK(oci_host_valid(r.registry, strlen(r.registry)));
        FUZZ_CHECK(oci_name_valid(r.name, strlen(r.name)));
        FUZZ_CHECK(r.tag[0] == '\0' || oci_tag_valid(r.tag, strlen(r.tag)));
        FUZZ_CHECK(r.tag[0] == '\0'
                   || oci_imageref_match(&r, r.registry, r.name, r.tag));
    }

    oci_imageref_format(&r, text, sizeof(text));

    FUZZ_CHECK(oci_imageref_parse(text, strlen(text), globs, &again, &why)
               == OCI_OK);
    FUZZ_CHECK(memcmp(&r, &again, sizeof(r)) == 0);
}


static void
fuzz_digest(const char *s, size_t len)
{
    char  hex[OCI_SHA256_HEX_LEN + 1];
    int   rc;

    rc = oci_digest_parse(s, len, hex);

    if (rc == OCI_OK) {
        FUZZ_CHECK(len == 7 + OCI_SHA256_HEX_LEN);
        FUZZ_CHECK(strlen(hex) == OCI_SHA256_HEX_LEN);
        FUZZ_CHECK(memcmp(s + 7, hex, OCI_SHA256_HEX_LEN) == 0);
        FUZZ_CHECK(strspn(hex, "0123456789abcdef") == OCI_SHA256_HEX_LEN);
        FUZZ_CHECK(oci_ref_is_digest(s, len));
    }

    if (oci_tag_valid(s, len)) {
        FUZZ_CHECK(len > 0 && len <= OCI_TAG_MAX);
        FUZZ_CHECK(!oci_ref_is_digest(s, len));
    }
}


static void
fuzz_accept(const char *s, size_t len)
{
    char         list[OCI_ACCEPT_MAX + 1], again[OCI_ACCEPT_MAX + 1];
    const char  *p, *comma;
    size_t       n;

    list[0] = '\0';

    if (oci_accept_append(list, sizeof(list), s, len) != OCI_OK) {
        return;
    }

    FUZZ_CHECK(strlen(list) < sizeof(list));

    for (p = list; *p != '\0'; p = comma + 1) {
        comma = strchr(p, ',');
        n = comma != NULL ? (size_t) (comma - p) : strlen(p);

        FUZZ_CHECK((n == 3 && memcmp(p, "*/*", 3) == 0)
                   || oci_media_type_valid(p, n));

        if (comma == NULL) {
            break;
        }
    }

    memcpy(again, list, sizeof(list));
    FUZZ_CHECK(oci_accept_append(again, sizeof(again), s, len) == OCI_OK);
    FUZZ_CHECK(strcmp(again, list) == 0);

    (void) oci_accept_serves(list, OCI_MT_OCI_MANIFEST);
    (void) oci_accept_serves(list, "");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char  *s;
    size_t       len;
    char        *z;

    if (size == 0) {
        return 0;
    }

    s = (const char *) data + 1;
    len = size - 1;

    fuzz_imageref(s, len, data[0] & 1);
    fuzz_digest(s, len);
    fuzz_accept(s, len);

    if (oci_name_valid(s, len)) {
        FUZZ_CHECK(len > 0 && len <= OCI_NAME_MAX);
        FUZZ_CHECK(memchr(s, '\0', len) == NULL);
    }

    if (oci_host_valid(s, len)) {
        FUZZ_CHECK(len > 0 && len <= OCI_HOST_MAX);
    }

    if (oci_media_type_valid(s, len)) {
        FUZZ_CHECK(len > 0 && len <= OCI_MEDIA_TYPE_MAX);
        FUZZ_CHECK(memchr(s, '/', len) != NULL);
    }

    /* oci_platform_valid() takes a C string */
    z = malloc(len + 1);
    if (z == NULL) {
        return 0;
    }

    memcpy(z, s, len);
    z[len] = '\0';

    if (oci_platform_valid(z)) {
        FUZZ_CHECK(strlen(z) < OCI_PLATFORM_MAX);
    }

    free(z);

    return 0;
}
