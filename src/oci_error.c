/*
 * The distribution spec's error codes and the JSON body they travel in.
 */

#include <stdio.h>
#include <string.h>

#include "oci_error.h"


typedef struct {
    const char  *code;
    int          status;
    const char  *message;     /* used when the caller gives none */
} oci_err_entry_t;


static size_t oci_utf8_seq_len(const unsigned char *p, size_t n);


static const oci_err_entry_t  oci_err_table[OCI_ERR__COUNT] = {
    [OCI_ERR_BLOB_UNKNOWN] =
        { "BLOB_UNKNOWN", 404, "blob unknown to registry" },
    [OCI_ERR_DIGEST_INVALID] =
        { "DIGEST_INVALID", 400, "provided digest did not match" },
    [OCI_ERR_MANIFEST_UNKNOWN] =
        { "MANIFEST_UNKNOWN", 404, "manifest unknown" },
    [OCI_ERR_MANIFEST_INVALID] =
        { "MANIFEST_INVALID", 400, "manifest invalid" },
    [OCI_ERR_NAME_INVALID] =
        { "NAME_INVALID", 400, "invalid repository name" },
    [OCI_ERR_NAME_UNKNOWN] =
        { "NAME_UNKNOWN", 404, "repository name not known to registry" },
    [OCI_ERR_SIZE_INVALID] =
        { "SIZE_INVALID", 400, "provided length did not match content length" },
    [OCI_ERR_UNAUTHORIZED] =
        { "UNAUTHORIZED", 401, "authentication required" },
    [OCI_ERR_DENIED] =
        { "DENIED", 403, "requested access to the resource is denied" },
    [OCI_ERR_UNSUPPORTED] =
        { "UNSUPPORTED", 405, "the operation is unsupported" },
    [OCI_ERR_TOOMANYREQUESTS] =
        { "TOOMANYREQUESTS", 429, "too many requests" },
    [OCI_ERR_UNAVAILABLE] =
        { "UNAVAILABLE", 503, "service unavailable" },
    [OCI_ERR_RANGE_INVALID] =
        { "SIZE_INVALID", 416, "requested range not satisfiable" },
    [OCI_ERR_UPSTREAM] =
        { "UNKNOWN", 502, "unknown error" },
};


const char *
oci_err_code(oci_errcode_t e)
{
    if ((unsigned) e >= OCI_ERR__COUNT) {
        return NULL;
    }

    return oci_err_table[e].code;
}


int
oci_err_status(oci_errcode_t e)
{
    if ((unsigned) e >= OCI_ERR__COUNT) {
        return 500;
    }

    return oci_err_table[e].status;
}


int
oci_err_parse(const char *s, size_t len, oci_errcode_t *out)
{
    unsigned  i;

    if (s == NULL) {
        return OCI_EINVAL;
    }

    /* the first entry wins: "SIZE_INVALID" parses as OCI_ERR_SIZE_INVALID */

    for (i = 0; i < OCI_ERR__COUNT; i++) {
        if (strlen(oci_err_table[i].code) == len
            && memcmp(oci_err_table[i].code, s, len) == 0)
        {
            if (out != NULL) {
                *out = (oci_errcode_t) i;
            }
            return OCI_OK;
        }
    }

    return OCI_EINVAL;
}


/* length of the valid UTF-8 sequence at p, or 0 if it is not one */
static size_t
oci_utf8_seq_len(const unsigned char *p, size_t n)
{
    size_t    len, i;
    uint32_t  cp, min;

    if (p[0] < 0x80) {
        return 1;
    }

    if ((p[0] & 0xe0) == 0xc0) {
        len = 2; cp = p[0] & 0x1f; min = 0x80;

    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3; cp = p[0] & 0x0f; min = 0x800;

    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4; cp = p[0] & 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if (n < len) {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return len;
}


int
oci_err_json(char *buf, size_t cap, oci_errcode_t e, const char *message)
{
    static const char     hexdigits[] = "0123456789abcdef";
    const unsigned char  *p;
    const char           *code;
    size_t                pos, mlen, seq;
    int                   n;

    code = oci_err_code(e);

    if (code == NULL || buf == NULL) {
        return OCI_EINVAL;
    }

    if (message == NULL) {
        message = oci_err_table[e].message;
    }

    n = snprintf(buf, cap, "{\"errors\":[{\"code\":\"%s\",\"message\":\"",
                 code);

    if (n < 0 || (size_t) n >= cap) {
        return OCI_ERANGE;
    }

    pos = (size_t) n;
    p = (const unsigned char *) message;
    mlen = strlen(message);

    while (mlen > 0) {
        seq = oci_utf8_seq_len(p, mlen);

        if (seq == 0 || *p < 0x20 || *p == 0x7f) {
            /* control bytes as \u00XX; a stray byte (invalid UTF-8)
             * as U+FFFD: either would make the body invalid JSON */
            if (pos + 6 >= cap) {
                return OCI_ERANGE;
            }

            if (seq == 0) {
                memcpy(buf + pos, "\\ufffd", 6);
                seq = 1;

            } else {
                memcpy(buf + pos, "\\u00", 4);
                buf[pos + 4] = hexdigits[*p >> 4];
                buf[pos + 5] = hexdigits[*p & 0xf];
            }

            pos += 6;

        } else if (*p == '"' || *p == '\\') {
            if (pos + 2 >= cap) {
                return OCI_ERANGE;
            }

            buf[pos++] = '\\';
            buf[pos++] = (char) *p;

        } else {
            if (pos + seq >= cap) {
                return OCI_ERANGE;
            }

            memcpy(buf + pos, p, seq);
            pos += seq;
        }

        p += seq;
        mlen -= seq;
    }

    n = snprintf(buf + pos, cap - pos, "\",\"detail\":null}]}");

    if (n < 0 || (size_t) n >= cap - pos) {
        return OCI_ERANGE;
    }

    return (int) (pos + (size_t) n);
}
