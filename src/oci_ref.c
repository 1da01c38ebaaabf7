/*
 * Grammars of the OCI distribution spec: repository names, tags, digests,
 * registry host names and media types, plus the Accept list normaliser.
 * Every check takes (pointer, length) and never reads past the length.
 */

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "oci_ref.h"


#define OCI_DIGEST_INPUT_MAX  1024   /* longest digest string examined */


static int oci_is_lower_alnum(int c);
static int oci_is_alnum(int c);
static int oci_is_lower_hex(int c);
static int oci_is_restricted_name_char(int c);
static int oci_media_part_valid(const char *s, size_t len);
static int oci_accept_has(const char *list, const char *type, size_t len);
static int oci_accept_q_zero(const char *params, size_t len);


static int
oci_is_lower_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}


static int
oci_is_alnum(int c)
{
    return oci_is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}


static int
oci_is_lower_hex(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}


int
oci_name_valid(const char *s, size_t len)
{
    size_t  i;
    int     c;

    if (s == NULL || len == 0 || len > OCI_NAME_MAX) {
        return 0;
    }

    i = 0;

    for ( ;; ) {
        /* a path component: alnum runs joined by single separators */

        if (i >= len || !oci_is_lower_alnum((unsigned char) s[i])) {
            return 0;
        }

        for ( ;; ) {
            while (i < len && oci_is_lower_alnum((unsigned char) s[i])) {
                i++;
            }

            if (i == len) {
                return 1;
            }

            c = (unsigned char) s[i];

            if (c == '/') {
                i++;
                break;
            }

            if (c == '.') {
                i++;

            } else if (c == '_') {
                i++;
                if (i < len && s[i] == '_') {
                    i++;
                }

            } else if (c == '-') {
                while (i < len && s[i] == '-') {
                    i++;
                }

            } else {
                return 0;
            }

            /* a separator must be followed by an alnum run */

            if (i >= len || !oci_is_lower_alnum((unsigned char) s[i])) {
                return 0;
            }
        }
    }
}


int
oci_tag_valid(const char *s, size_t len)
{
    size_t  i;
    int     c;

    if (s == NULL || len == 0 || len > OCI_TAG_MAX) {
        return 0;
    }

    c = (unsigned char) s[0];

    if (!oci_is_alnum(c) && c != '_') {
        return 0;
    }

    for (i = 1; i < len; i++) {
        c = (unsigned char) s[i];

        if (!oci_is_alnum(c) && c != '_' && c != '.' && c != '-') {
            return 0;
        }
    }

    return 1;
}


int
oci_host_valid(const char *s, size_t len)
{
    size_t    i, label, hostlen;
    unsigned  port;
    int       c;

    if (s == NULL || len == 0 || len > OCI_HOST_MAX) {
        return 0;
    }

    hostlen = len;

    for (i = 0; i < len; i++) {
        if (s[i] == ':') {
            hostlen = i;
            break;
        }
    }

    if (hostlen == 0) {
        return 0;
    }

    /* labels of [a-z0-9-], not starting or ending with '-', 1-63 long */

    label = 0;

    for (i = 0; i < hostlen; i++) {
        c = (unsigned char) s[i];

        if (c == '.') {
            if (label == 0 || s[i - 1] == '-') {
                return 0;
            }
            label = 0;
            continue;
        }

        if (c == '-') {
            if (label == 0) {
                return 0;
            }

        } else if (!oci_is_lower_alnum(c)) {
            return 0;
        }

        if (++label > 63) {
            return 0;
        }
    }

    if (label == 0 || s[hostlen - 1] == '-') {
        return 0;
    }

    if (hostlen == len) {
        return 1;
    }

    /* ":port", 1-65535, no leading zero */

    i = hostlen + 1;

    if (i == len || len - i > 5 || s[i] == '0') {
        return 0;
    }

    port = 0;

    for ( /* void */ ; i < len; i++) {
        c = (unsigned char) s[i];

        if (c < '0' || c > '9') {
            return 0;
        }

        port = port * 10 + (unsigned) (c - '0');
    }

    return port <= 65535;
}


int
oci_digest_parse(const char *s, size_t len, char hex[OCI_SHA256_HEX_LEN + 1])
{
    size_t  i, colon, enclen;
    int     c, component;

    if (s == NULL || len == 0 || len > OCI_DIGEST_INPUT_MAX) {
        return OCI_EINVAL;
    }

    /* algorithm: [a-z0-9]+ ([+._-] [a-z0-9]+)* */

    component = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c == ':') {
            break;
        }

        if (oci_is_lower_alnum(c)) {
            component++;
            continue;
        }

        if ((c == '+' || c == '.' || c == '_' || c == '-') && component) {
            component = 0;
            continue;
        }

        return OCI_EINVAL;
    }

    if (i == len || component == 0) {
        return OCI_EINVAL;
    }

    colon = i;
    enclen = len - colon - 1;

    if (colon == 6 && memcmp(s, "sha256", 6) == 0) {
        if (enclen != OCI_SHA256_HEX_LEN) {
            return OCI_EINVAL;
        }

        for (i = colon + 1; i < len; i++) {
            if (!oci_is_lower_hex((unsigned char) s[i])) {
                return OCI_EINVAL;
            }
        }

        if (hex != NULL) {
            memcpy(hex, s + colon + 1, OCI_SHA256_HEX_LEN);
            hex[OCI_SHA256_HEX_LEN] = '\0';
        }

        return OCI_OK;
    }

    if (colon == 6 && memcmp(s, "sha512", 6) == 0) {
        if (enclen != 128) {
            return OCI_EINVAL;
        }

        for (i = colon + 1; i < len; i++) {
            if (!oci_is_lower_hex((unsigned char) s[i])) {
                return OCI_EINVAL;
            }
        }

        return OCI_ENOTSUP;
    }

    /* encoded: [a-zA-Z0-9=_-]+ */

    if (enclen == 0) {
        return OCI_EINVAL;
    }

    for (i = colon + 1; i < len; i++) {
        c = (unsigned char) s[i];

        if (!oci_is_alnum(c) && c != '=' && c != '_' && c != '-') {
            return OCI_EINVAL;
        }
    }

    return OCI_ENOTSUP;
}


void
oci_sha256_hex(const unsigned char *md, char out[OCI_SHA256_HEX_LEN + 1])
{
    static const char  digits[] = "0123456789abcdef";
    size_t             i;

    for (i = 0; i < OCI_SHA256_HEX_LEN / 2; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 0xf];
    }

    out[OCI_SHA256_HEX_LEN] = '\0';
}


int
oci_ref_is_digest(const char *s, size_t len)
{
    /* tags cannot hold ':', so any ':' means the client meant a digest */
    return s != NULL && len != 0 && memchr(s, ':', len) != NULL;
}


static int
oci_is_restricted_name_char(int c)
{
    return oci_is_alnum(c) || c == '!' || c == '#' || c == '$' || c == '&'
           || c == '-' || c == '^' || c == '_' || c == '.' || c == '+';
}


static int
oci_media_part_valid(const char *s, size_t len)
{
    size_t  i;

    /* RFC 6838 restricted-name: ALPHA/DIGIT then up to 126 more */

    if (len == 0 || len > 127 || !oci_is_alnum((unsigned char) s[0])) {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if (!oci_is_restricted_name_char((unsigned char) s[i])) {
            return 0;
        }
    }

    return 1;
}


int
oci_media_type_valid(const char *s, size_t len)
{
    const char  *slash;

    if (s == NULL || len == 0 || len > OCI_MEDIA_TYPE_MAX) {
        return 0;
    }

    slash = memchr(s, '/', len);

    if (slash == NULL) {
        return 0;
    }

    return oci_media_part_valid(s, (size_t) (slash - s))
           && oci_media_part_valid(slash + 1, len - (size_t) (slash - s) - 1);
}


/* 1 if list (built by oci_accept_append) already holds type */
static int
oci_accept_has(const char *list, const char *type, size_t len)
{
    const char  *p, *comma;
    size_t       n;

    p = list;

    while (*p != '\0') {
        comma = strchr(p, ',');
        n = (comma != NULL) ? (size_t) (comma - p) : strlen(p);

        if (n == len && strncasecmp(p, type, len) == 0) {
            return 1;
        }

        if (comma == NULL) {
            break;
        }

        p = comma + 1;
    }

    return 0;
}


/* 1 if the parameters of an Accept element hold q=0 ("not acceptable") */
static int
oci_accept_q_zero(const char *params, size_t len)
{
    size_t  i, start, end;

    i = 0;

    while (i < len) {
        /* params: ";" OWS name "=" value ... */

        while (i < len && (params[i] == ';' || params[i] == ' '
                           || params[i] == '\t'))
        {
            i++;
        }

        start = i;

        while (i < len && params[i] != ';') {
            i++;
        }

        end = i;

        while (end > start && (params[end - 1] == ' '
                               || params[end - 1] == '\t'))
        {
            end--;
        }

        if (end - start >= 2 && (params[start] == 'q' || params[start] == 'Q')
            && params[start + 1] == '=')
        {
            start += 2;

            if (start == end || params[start] != '0') {
                return 0;
            }

            for (start++; start < end; start++) {
                if (params[start] != '0' && params[start] != '.') {
                    return 0;
                }
            }

            return 1;
        }
    }

    return 0;
}


int
oci_accept_append(char *out, size_t cap, const char *hdr, size_t len)
{
    size_t       i, start, end, typend, used;
    const char  *type;
    size_t       tlen;

    if (out == NULL || cap == 0) {
        return OCI_ERANGE;
    }

    used = strnlen(out, cap);

    if (used == cap) {
        out[0] = '\0';
        return OCI_ERANGE;
    }

    if (hdr == NULL) {
        return OCI_OK;
    }

    i = 0;

    while (i < len) {
        start = i;

        while (i < len && hdr[i] != ',') {
            i++;
        }

        end = i;
        i++;                       /* past the ',' */

        while (start < end && (hdr[start] == ' ' || hdr[start] == '\t')) {
            start++;
        }

        typend = start;

        while (typend < end && hdr[typend] != ';') {
            typend++;
        }

        if (typend < end && oci_accept_q_zero(hdr + typend, end - typend)) {
            continue;
        }

        while (typend > start && (hdr[typend - 1] == ' '
                                  || hdr[typend - 1] == '\t'))
        {
            typend--;
        }

        type = hdr + start;
        tlen = typend - start;

        if (!(tlen == 3 && memcmp(type, "*/*", 3) == 0)
            && !oci_media_type_valid(type, tlen))
        {
            continue;
        }

        if (oci_accept_has(out, type, tlen)) {
            continue;
        }

        if (used + (used ? 1 : 0) + tlen + 1 > cap) {
            return OCI_ERANGE;
        }

        if (used) {
            out[used++] = ',';
        }

        memcpy(out + used, type, tlen);
        used += tlen;
        out[used] = '\0';
    }

    return OCI_OK;
}


int
oci_accept_serves(const char *list, const char *media_type)
{
    const char  *p, *comma;
    size_t       n;
    int          explicit;

    if (list == NULL) {
        return 1;
    }

    explicit = 0;

    for (p = list; *p != '\0'; p = comma + 1) {
        comma = strchr(p, ',');
        n = (comma != NULL) ? (size_t) (comma - p) : strlen(p);

        if (!(n == 3 && memcmp(p, "*/*", 3) == 0)) {
            explicit = 1;

            if (media_type != NULL && n == strlen(media_type)
                && strncasecmp(p, media_type, n) == 0)
            {
                return 1;
            }
        }

        if (comma == NULL) {
            break;
        }
    }

    return !explicit;
}


int
oci_platform_valid(const char *s)
{
    size_t  i, part, parts;

    if (strlen(s) >= OCI_PLATFORM_MAX) {
        return 0;
    }

    part = 0;
    parts = 1;

    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] == '/') {
            if (part == 0) {
                return 0;
            }

            part = 0;
            parts++;
            continue;
        }

        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
              || s[i] == '.' || s[i] == '_' || s[i] == '-'))
        {
            return 0;
        }

        part++;
    }

    return part > 0 && (parts == 2 || parts == 3);
}


/* s[0..len) holds a glob character. */
static int
oci_has_glob(const char *s, size_t len)
{
    return memchr(s, '*', len) != NULL || memchr(s, '?', len) != NULL;
}


/* A glob part: the characters of its grammar (in extra beside
 * alphanumerics), '*' and '?'; not empty, at most max bytes.  A NUL is
 * none of them, though strchr() finds one at the end of extra: it would
 * cut the part short once copied. */
static int
oci_glob_valid(const char *s, size_t len, size_t max, const char *extra)
{
    size_t  i;
    int     c;

    if (len == 0 || len > max) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (!oci_is_alnum(c) && c != '*' && c != '?'
            && (c == '\0' || strchr(extra, c) == NULL))
        {
            return 0;
        }
    }

    return 1;
}


int
oci_imageref_parse(const char *s, size_t len, int globs, oci_imageref_t *r,
    const char **why)
{
    const char  *slash, *at, *colon, *name, *end;
    size_t       rlen, nlen, tlen;
    char         hex[OCI_SHA256_HEX_LEN + 1];
    int          g;

    memset(r, 0, sizeof(oci_imageref_t));

    slash = memchr(s, '/', len);

    if (slash == NULL || slash == s) {
        *why = "an image reference starts with its registry "
               "(\"docker.io/library/nginx:1.27\")";
        return OCI_EINVAL;
    }

    rlen = (size_t) (slash - s);
    name = slash + 1;
    end = s + len;

    at = memchr(name, '@', (size_t) (end - name));

    if (at != NULL) {
        if (oci_digest_parse(at + 1, (size_t) (end - at - 1), hex)
            != OCI_OK)
        {
            *why = "the digest must be \"sha256:\" and 64 lower-case hex "
                   "digits";
            return OCI_EINVAL;
        }

        snprintf(r->digest, sizeof(r->digest), "sha256:%s", hex);
        nlen = (size_t) (at - name);
        tlen = 0;

    } else {
        /* a tag's ':' comes after the name's last '/' */
        for (colon = end - 1; colon > name && *colon != ':'; colon--) {
            /* void */
        }

        if (*colon == ':' && memchr(colon, '/', (size_t) (end - colon))
                             == NULL)
        {
            nlen = (size_t) (colon - name);
            tlen = (size_t) (end - colon - 1);

            if (tlen == 0) {
                *why = "the tag after ':' is empty";
                return OCI_EINVAL;
            }

        } else {
            nlen = (size_t) (end - name);
            tlen = 0;
        }
    }

    g = oci_has_glob(s, rlen) || oci_has_glob(name, nlen)
        || (tlen > 0 && oci_has_glob(name + nlen + 1, tlen));

    if (g && !globs) {
        *why = "globs ('*', '?') are not allowed here";
        return OCI_EINVAL;
    }

    if (g ? !oci_glob_valid(s, rlen, OCI_HOST_MAX, ".:-")
          : !oci_host_valid(s, rlen))
    {
        *why = "the registry must be a host name with an optional :port";
        return OCI_EINVAL;
    }

    if (g ? !oci_glob_valid(name, nlen, OCI_NAME_MAX, "._-/")
          : !oci_name_valid(name, nlen))
    {
        *why = "the repository name must be lower-case components "
               "separated by '/'";
        return OCI_EINVAL;
    }

    if (tlen > 0
        && (g ? !oci_glob_valid(name + nlen + 1, tlen, OCI_TAG_MAX, "._-")
              : !oci_tag_valid(name + nlen + 1, tlen)))
    {
        *why = "the tag must be [A-Za-z0-9_][A-Za-z0-9._-]*";
        return OCI_EINVAL;
    }

    memcpy(r->registry, s, rlen);
    memcpy(r->name, name, nlen);

    if (r->digest[0] == '\0') {
        if (tlen > 0) {
            memcpy(r->tag, name + nlen + 1, tlen);

        } else {
            strcpy(r->tag, "latest");
        }
    }

    r->globs = g;

    return OCI_OK;
}


int
oci_imageref_match(const oci_imageref_t *r, const char *registry,
    const char *name, const char *tag)
{
    if (r->tag[0] == '\0') {
        return 0;
    }

    if (!r->globs) {
        return strcmp(r->registry, registry) == 0
               && strcmp(r->name, name) == 0 && strcmp(r->tag, tag) == 0;
    }

    return fnmatch(r->registry, registry, 0) == 0
           && fnmatch(r->name, name, 0) == 0
           && fnmatch(r->tag, tag, 0) == 0;
}


void
oci_imageref_format(const oci_imageref_t *r, char *out, size_t cap)
{
    if (r->digest[0] != '\0') {
        snprintf(out, cap, "%s/%s@%s", r->registry, r->name, r->digest);

    } else {
        snprintf(out, cap, "%s/%s:%s", r->registry, r->name, r->tag);
    }
}
