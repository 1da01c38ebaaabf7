/*
 * Routing of a /v2/ request path to (registry, repository, endpoint,
 * reference), in this order:
 *   1. ?ns=<registry> (containerd's mirror parameter) names the registry;
 *   2. else a first path component that is a configured registry name;
 *   3. else the default registry; for a registry with library_prefix,
 *      a one-component name gains "library/".
 * An ns or first component that is not configured is refused (no open
 * proxy).  The path must be the raw request path (before percent-decoding
 * and slash merging): '%' anywhere, "//" or a trailing "/" are refused.
 */

#ifndef OCI_ROUTE_H
#define OCI_ROUTE_H

#include "oci.h"
#include "oci_config.h"
#include "oci_error.h"

typedef enum {
    OCI_EP_BASE = 0,      /* /v2/ */
    OCI_EP_MANIFEST,      /* /v2/<name>/manifests/<reference> */
    OCI_EP_BLOB,          /* /v2/<name>/blobs/<digest> */
    OCI_EP_TAGS,          /* /v2/<name>/tags/list */
    OCI_EP_REFERRERS      /* /v2/<name>/referrers/<digest> */
} oci_endpoint_t;

typedef struct {
    oci_endpoint_t   endpoint;
    oci_registry_t  *registry;
    char             name[OCI_NAME_MAX + 1];   /* upstream repository */
    char             reference[OCI_REF_MAX + 1];  /* tag or full digest */
    int              is_digest;
    char             hex[OCI_SHA256_HEX_LEN + 1]; /* if is_digest */
    /* the prefix the client used before <name> ("ghcr.io/" or ""), so
     * links such as tags/list's Link can be rewritten for the client */
    char             client_prefix[OCI_HOST_MAX + 2];
} oci_route_t;

/*
 * path/path_len: the raw path, starting with "/v2/", without the query.
 * ns/ns_len: the raw value of the ns query argument, or NULL.
 * Returns OCI_OK, or OCI_EINVAL with *code set to the error to answer
 * (NAME_INVALID, DIGEST_INVALID, MANIFEST_INVALID, DENIED, UNSUPPORTED
 * for an unknown endpoint) and msg filled.  A blob and a referrers
 * request must name a sha256 digest (else DIGEST_INVALID).
 */
int oci_route(const oci_config_t *cf, const char *path, size_t path_len,
    const char *ns, size_t ns_len, oci_route_t *out, oci_errcode_t *code,
    char *msg, size_t msglen);

#endif /* OCI_ROUTE_H */
