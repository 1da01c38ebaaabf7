/*
 * Repository names, tags, digests and media types: the grammars of the
 * OCI distribution spec.  All checks take a pointer and a length (nginx
 * strings are not NUL-terminated) and never read past len.
 *
 * Names that pass oci_name_valid() are safe to join into store paths:
 * every component starts with [a-z0-9], so "." and ".." cannot occur,
 * and "//" is rejected.  The same holds for tags (first char [A-Za-z0-9_]).
 */

#ifndef OCI_REF_H
#define OCI_REF_H

#include "oci.h"

/* name: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 * at most OCI_NAME_MAX bytes.  Returns 1 if valid, 0 if not. */
int oci_name_valid(const char *s, size_t len);

/* tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.  Returns 1 if valid, 0 if not. */
int oci_tag_valid(const char *s, size_t len);

/* A registry name as configured and as sent in ?ns=: a host name or IPv4
 * address with an optional :port, lower case, at most OCI_HOST_MAX bytes.
 * Returns 1 if valid, 0 if not. */
int oci_host_valid(const char *s, size_t len);

/*
 * digest: "sha256:" followed by exactly 64 lower-case hex digits.
 * On success copies the 64 hex digits plus a NUL into hex (65 bytes).
 * Returns OCI_OK, OCI_ENOTSUP for a well-formed digest of another
 * algorithm (sha512, ...), or OCI_EINVAL.
 */
int oci_digest_parse(const char *s, size_t len, char hex[OCI_SHA256_HEX_LEN + 1]);

/* The lower-case hex of a sha256 digest: md holds OCI_SHA256_HEX_LEN / 2
 * bytes, out gets OCI_SHA256_HEX_LEN digits and a NUL. */
void oci_sha256_hex(const unsigned char *md,
    char out[OCI_SHA256_HEX_LEN + 1]);

/* 1 if s looks like "<alg>:<encoded>" (so it is meant as a digest, not a
 * tag: tags cannot contain ':'), 0 otherwise. */
int oci_ref_is_digest(const char *s, size_t len);

/* type "/" subtype with RFC 6838 restricted-name characters, no
 * parameters, at most OCI_MEDIA_TYPE_MAX bytes.  1 if valid, 0 if not. */
int oci_media_type_valid(const char *s, size_t len);

/*
 * Turn one or more Accept header values into a comma-separated list of
 * bare media types (parameters such as ";q=0.5" dropped, duplicates and
 * invalid entries dropped, "*" + "/" + "*" kept).  Call once per header
 * with the list built so far in out (start with out[0] = '\0').
 * Returns OCI_OK or OCI_ERANGE if out would overflow (out stays valid).
 */
int oci_accept_append(char *out, size_t cap, const char *hdr, size_t len);

/*
 * 1 if a client whose Accept list (built by oci_accept_append()) is list
 * gets the stored manifest of media_type: the list is empty or only
 * wildcards ("*" "/" "*"; a subtype wildcard such as "application/" "*"
 * is dropped by oci_accept_append(), so it counts as none), or it names
 * media_type itself.  An explicit list
 * that does not name it is answered as the upstream answers that client
 * (a wildcard beside explicit types does not count: registries ignore it
 * when they choose a manifest type, and so does the mirror).
 */
int oci_accept_serves(const char *list, const char *media_type);

/*
 * An image reference as operators write it in pins, warm lists and
 * ocimirrorctl: "<registry>/<name>[:<tag>|@<digest>]", the tag "latest"
 * if neither is given.  With globs allowed, the registry, name and tag
 * may hold '*' and '?' (fnmatch(3), '*' also matching '/'): "ghcr.io/org/
 * *:*" is every tag of every repository under ghcr.io/org/.
 */
typedef struct {
    char  registry[OCI_HOST_MAX + 1];
    char  name[OCI_NAME_MAX + 1];
    char  tag[OCI_TAG_MAX + 1];         /* "" with a digest */
    char  digest[OCI_DIGEST_MAX + 1];   /* "" with a tag */
    int   globs;                        /* some part holds a glob */
} oci_imageref_t;

/* Parse s[0..len).  OCI_OK, or OCI_EINVAL with a reason in why (static
 * text): no registry, a part that fails its grammar, a glob where none
 * is allowed. */
int oci_imageref_parse(const char *s, size_t len, int globs,
    oci_imageref_t *r, const char **why);

/* 1 if r (which may hold globs) names registry/name:tag. */
int oci_imageref_match(const oci_imageref_t *r, const char *registry,
    const char *name, const char *tag);

/* r as "<registry>/<name>:<tag>" or "...@<digest>". */
void oci_imageref_format(const oci_imageref_t *r, char *out, size_t cap);

/* "os/arch" or "os/arch/variant", each part [a-z0-9._-]+, at most
 * OCI_PLATFORM_MAX - 1 bytes.  1 if valid, 0 if not. */
int oci_platform_valid(const char *s);

/* The manifest media types; the mirror asks upstream for all four. */
#define OCI_MT_OCI_MANIFEST  "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_OCI_INDEX     "application/vnd.oci.image.index.v1+json"
#define OCI_MT_DOCKER_MANIFEST \
    "application/vnd.docker.distribution.manifest.v2+json"
#define OCI_MT_DOCKER_LIST \
    "application/vnd.docker.distribution.manifest.list.v2+json"
#define OCI_MT_ALL_MANIFESTS OCI_MT_OCI_INDEX "," OCI_MT_DOCKER_LIST "," \
    OCI_MT_OCI_MANIFEST "," OCI_MT_DOCKER_MANIFEST

#endif /* OCI_REF_H */
