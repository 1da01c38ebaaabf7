/*
 * Routing of a raw /v2/ request path to a configured registry, an upstream
 * repository name, an endpoint and a reference.  Nothing is decoded: a
 * '%' anywhere in the path is refused, and every part that leaves this
 * file passed the spec grammar of oci_ref.h.
 */

#include <stdio.h>
#include <string.h>

#include "oci_ref.h"
#include "oci_route.h"


#define OCI_ROUTE_ECHO_MAX  64     /* client bytes echoed in a message */


static const char *oci_route_last(const char *s, size_t len,
    const char *pat, size_t plen);
static size_t oci_route_pos(const char *path, const char *p);
static int oci_route_fail(oci_errcode_t *code, char *msg, size_t msglen,
    oci_errcode_t e, const char *text);
static int oci_route_denied(oci_errcode_t *code, char *msg, size_t msglen,
    const char *reg, size_t len);
static int oci_route_looks_like_host(const char *s, size_t len);


/*
 * the last occurrence of pat (which starts with '/') in s[0..len), or
 * NULL; comparing only at slashes keeps this off the hit path's profile
 */
static const char *
oci_route_last(const char *s, size_t len, const char *pat, size_t plen)
{
    size_t  i;

    if (len < plen) {
        return NULL;
    }

    for (i = len - plen + 1; i-- > 0; /* void */) {
        if (s[i] == '/' && memcmp(s + i, pat, plen) == 0) {
            return s + i;
        }
    }

    return NULL;
}


/* 1 + the offset of p in path, or 0 for NULL: positions that compare */
static size_t
oci_route_pos(const char *path, const char *p)
{
    return (p != NULL) ? (size_t) (p - path) + 1 : 0;
}


static int
oci_route_fail(oci_errcode_t *code, char *msg, size_t msglen,
    oci_errcode_t e, const char *text)
{
    if (code != NULL) {
        *code = e;
    }

    if (msg != NULL && msglen > 0) {
        snprintf(msg, msglen, "%s", text);
    }

    return OCI_EINVAL;
}


static int
oci_route_denied(oci_errcode_t *code, char *msg, size_t msglen,
    const char *reg, size_t len)
{
    if (code != NULL) {
        *code = OCI_ERR_DENIED;
    }

    if (msg == NULL || msglen == 0) {
        return OCI_EINVAL;
    }

    /* echo the client's registry only when it is a plain host name */

    if (len <= OCI_ROUTE_ECHO_MAX && oci_host_valid(reg, len)) {
        snprintf(msg, msglen, "registry %.*s is not configured", (int) len,
                 reg);

    } else {
        snprintf(msg, msglen, "registry is not configured");
    }

    return OCI_EINVAL;
}


/*
 * Docker's rule: a first component with '.' or ':' names a registry.
 * One that is no host name at all ("..", "a:b:c") is left to the name
 * check, which refuses it as NAME_INVALID.
 */
static int
oci_route_looks_like_host(const char *s, size_t len)
{
    return (memchr(s, '.', len) != NULL || memchr(s, ':', len) != NULL)
           && oci_host_valid(s, len);
}


int
oci_route(const oci_config_t *cf, const char *path, size_t path_len,
    const char *ns, size_t ns_len, oci_route_t *out, oci_errcode_t *code,
    char *msg, size_t msglen)
{
    const char      *rest, *end, *pm, *pb, *pr, *pt, *mark, *ref, *cn,
                    *slash;
    size_t           rlen, cnlen, reflen, nlen, plen, i, at_m, at_b, at_r,
                     at_t;
    oci_registry_t  *reg;
    char             nsbuf[OCI_HOST_MAX + 1];
    int              rc, is_host;

    memset(out, 0, sizeof(oci_route_t));

    if (msg != NULL && msglen > 0) {
        msg[0] = '\0';
    }

    if (path == NULL || path_len < 4 || memcmp(path, "/v2/", 4) != 0) {
        return oci_route_fail(code, msg, msglen, OCI_ERR_UNSUPPORTED,
                              "unsupported endpoint");
    }

    if (memchr(path, '%', path_len) != NULL) {
        return oci_route_fail(code, msg, msglen, OCI_ERR_NAME_INVALID,
                              "percent-encoding is not allowed in the path");
    }

    if (path_len == 4) {
        out->endpoint = OCI_EP_BASE;
        return OCI_OK;
    }

    /*
     * The name may itself hold "manifests" or "blobs" components, the
     * reference cannot hold a '/': the last marker splits the path.
     * The search starts at the '/' after "v2" so that an empty name is
     * found (and refused) rather than taken for an unknown endpoint.
     */

    rest = path + 3;
    rlen = path_len - 3;
    end = path + path_len;

    pm = oci_route_last(rest, rlen, "/manifests/", 11);
    pb = oci_route_last(rest, rlen, "/blobs/", 7);
    pr = oci_route_last(rest, rlen, "/referrers/", 11);
    pt = NULL;

    if (rlen >= 10 && memcmp(end - 10, "/tags/list", 10) == 0) {
        pt = end - 10;
    }

    /* the marker furthest right wins (an absent one is at 0) */

    at_m = oci_route_pos(path, pm);
    at_b = oci_route_pos(path, pb);
    at_r = oci_route_pos(path, pr);
    at_t = oci_route_pos(path, pt);

    if (at_t > at_m && at_t > at_b && at_t > at_r) {
        out->endpoint = OCI_EP_TAGS;
        mark = pt;
        ref = end;

    } else if (at_m > at_b && at_m > at_r) {
        out->endpoint = OCI_EP_MANIFEST;
        mark = pm;
        ref = pm + 11;

    } else if (at_r > at_b) {
        out->endpoint = OCI_EP_REFERRERS;
        mark = pr;
        ref = pr + 11;

    } else if (pb != NULL) {
        out->endpoint = OCI_EP_BLOB;
        mark = pb;
        ref = pb + 7;

    } else {
        return oci_route_fail(code, msg, msglen, OCI_ERR_UNSUPPORTED,
                              "unsupported endpoint");
    }

    /* mark is at least path + 3, the '/' of "/v2/" */
    cnlen = (mark > path + 4) ? (size_t) (mark - (path + 4)) : 0;

    reflen = (size_t) (end - ref);

    if (out->endpoint != OCI_EP_TAGS
        && (reflen == 0 || memchr(ref, '/', reflen) != NULL))
    {
        return oci_route_fail(code, msg, msglen, OCI_ERR_UNSUPPORTED,
                              "unsupported endpoint");
    }

    if (cnlen == 0) {
        return oci_route_fail(code, msg, msglen, OCI_ERR_NAME_INVALID,
                              "invalid repository name");
    }

    cn = path + 4;

    /* pick the registry */

    reg = NULL;

    if (ns != NULL && ns_len > 0) {
        /*
         * containerd builds the query with Go's url.Values.Encode(),
         * which writes the ':' of "host:port" as "%3A"; that one escape
         * is undone, the result must still be a configured name.
         */

        plen = 0;

        for (i = 0; i < ns_len; i++) {
            if (plen == sizeof(nsbuf)) {
                return oci_route_denied(code, msg, msglen, ns, ns_len);
            }

            if (ns[i] == '%' && ns_len - i >= 3 && ns[i + 1] == '3'
                && (ns[i + 2] == 'A' || ns[i + 2] == 'a'))
            {
                nsbuf[plen++] = ':';
                i += 2;

            } else {
                nsbuf[plen++] = ns[i];
            }
        }

        reg = oci_config_registry(cf, nsbuf, plen);

        if (reg == NULL) {
            return oci_route_denied(code, msg, msglen, nsbuf, plen);
        }

    } else {
        slash = memchr(cn, '/', cnlen);

        if (slash != NULL) {
            plen = (size_t) (slash - cn);

            is_host = oci_route_looks_like_host(cn, plen);

            if (is_host || (plen == 9 && memcmp(cn, "localhost", 9) == 0)) {
                reg = oci_config_registry(cf, cn, plen);

                if (reg == NULL && is_host) {
                    return oci_route_denied(code, msg, msglen, cn, plen);
                }

                if (reg != NULL) {
                    /* plen <= OCI_HOST_MAX: it matched a configured name */
                    memcpy(out->client_prefix, cn, plen + 1);
                    out->client_prefix[plen + 1] = '\0';
                    cn = slash + 1;
                    cnlen -= plen + 1;
                }
            }
        }

        if (reg == NULL) {
            reg = (cf != NULL) ? cf->default_registry : NULL;

            if (reg == NULL) {
                return oci_route_fail(code, msg, msglen, OCI_ERR_DENIED,
                                      "no default registry is configured");
            }
        }
    }

    out->registry = reg;

    /* the upstream repository name */

    nlen = 0;

    if (reg->library_prefix && memchr(cn, '/', cnlen) == NULL) {
        memcpy(out->name, "library/", 8);
        nlen = 8;
    }

    if (nlen + cnlen > OCI_NAME_MAX) {
        return oci_route_fail(code, msg, msglen, OCI_ERR_NAME_INVALID,
                              "repository name too long");
    }

    memcpy(out->name + nlen, cn, cnlen);
    nlen += cnlen;
    out->name[nlen] = '\0';

    if (!oci_name_valid(out->name, nlen)) {
        return oci_route_fail(code, msg, msglen, OCI_ERR_NAME_INVALID,
                              "invalid repository name");
    }

    /* the reference */

    switch (out->endpoint) {

    case OCI_EP_BLOB:
    case OCI_EP_REFERRERS:
        rc = oci_digest_parse(ref, reflen, out->hex);

        if (rc != OCI_OK) {
            return oci_route_fail(code, msg, msglen, OCI_ERR_DIGEST_INVALID,
                                  rc == OCI_ENOTSUP
                                  ? "unsupported digest algorithm"
                                  : "invalid digest");
        }

        out->is_digest = 1;
        break;

    case OCI_EP_MANIFEST:
        if (oci_ref_is_digest(ref, reflen)) {
            rc = oci_digest_parse(ref, reflen, out->hex);

            if (rc != OCI_OK) {
                return oci_route_fail(code, msg, msglen,
                                      OCI_ERR_DIGEST_INVALID,
                                      rc == OCI_ENOTSUP
                                      ? "unsupported digest algorithm"
                                      : "invalid digest");
            }

            out->is_digest = 1;

        } else if (!oci_tag_valid(ref, reflen)) {
            return oci_route_fail(code, msg, msglen, OCI_ERR_MANIFEST_INVALID,
                                  "invalid tag");
        }

        break;

    default:
        break;
    }

    /* a tag is at most OCI_TAG_MAX, a sha256 digest OCI_DIGEST_MAX */
    memcpy(out->reference, ref, reflen);
    out->reference[reflen] = '\0';

    return OCI_OK;
}
