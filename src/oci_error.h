/*
 * The distribution spec's error codes, with the HTTP status the mirror
 * answers each with.  Both the module (to build JSON bodies) and the
 * fetcher (to relay an upstream failure) use this one table.
 */

#ifndef OCI_ERROR_H
#define OCI_ERROR_H

#include "oci.h"

typedef enum {
    OCI_ERR_BLOB_UNKNOWN = 0,     /* 404 */
    OCI_ERR_DIGEST_INVALID,       /* 400 */
    OCI_ERR_MANIFEST_UNKNOWN,     /* 404 */
    OCI_ERR_MANIFEST_INVALID,     /* 400: also a malformed reference */
    OCI_ERR_NAME_INVALID,         /* 400 */
    OCI_ERR_NAME_UNKNOWN,         /* 404 */
    OCI_ERR_SIZE_INVALID,         /* 400 */
    OCI_ERR_UNAUTHORIZED,         /* 401 */
    OCI_ERR_DENIED,               /* 403: registry not configured */
    OCI_ERR_UNSUPPORTED,          /* 405 writes; 404 unknown endpoints */
    OCI_ERR_TOOMANYREQUESTS,      /* 429 */
    OCI_ERR_UNAVAILABLE,          /* 503 "UNAVAILABLE": fetcher/upstream down */
    OCI_ERR_RANGE_INVALID,        /* 416, code string "SIZE_INVALID" */
    OCI_ERR_UPSTREAM,             /* 502 "UNKNOWN": upstream answered
                                     nonsense or bytes failed their digest */
    OCI_ERR__COUNT
} oci_errcode_t;

/* "NAME_INVALID", ... ; NULL for an out-of-range value */
const char *oci_err_code(oci_errcode_t e);

/* The default HTTP status for the code. */
int oci_err_status(oci_errcode_t e);

/* Parse a code string back (as relayed by the fetcher over IPC).
 * Returns OCI_OK or OCI_EINVAL. */
int oci_err_parse(const char *s, size_t len, oci_errcode_t *out);

/*
 * Write the spec's error body into buf:
 *   {"errors":[{"code":"NAME_INVALID","message":"...","detail":null}]}
 * The message is JSON-escaped (NULL: the spec's text for the code).
 * Returns the length written (without NUL), OCI_ERANGE if buf is too
 * small or OCI_EINVAL for an unknown code.
 */
int oci_err_json(char *buf, size_t cap, oci_errcode_t e, const char *message);

#endif /* OCI_ERROR_H */
