/*
 * ocimirror core library: shared limits and return codes.
 *
 * Everything under src/ is free of nginx headers so that it can be linked
 * into the nginx module, the fetcher daemon and the unit tests alike.
 * Functions return 0 (OCI_OK) or a negative OCI_E* code; where a caller
 * passes an error buffer it receives a one-line human message.  Nothing in
 * the library logs, exits or aborts on input.
 */

#ifndef OCI_H
#define OCI_H

#include <stddef.h>
#include <stdint.h>

#define OCI_OK           0
#define OCI_EINVAL      -1   /* input does not match the grammar */
#define OCI_ENOMEM      -2
#define OCI_EIO         -3   /* a system call failed; errno is kept */
#define OCI_ENOENT      -4   /* no such record / file */
#define OCI_ERANGE      -5   /* input or output too long */
#define OCI_EAGAIN      -6   /* incomplete input, call again with more */
#define OCI_EDIGEST     -7   /* content does not match its digest */
#define OCI_ENOTSUP     -8   /* valid but unsupported (e.g. sha512) */

/* distribution spec limits */
#define OCI_NAME_MAX        255          /* repository name */
#define OCI_TAG_MAX         128
#define OCI_HOST_MAX        255          /* registry name, host[:port] */
#define OCI_SHA256_HEX_LEN  64
#define OCI_DIGEST_MAX      71           /* "sha256:" + 64 hex */
#define OCI_REF_MAX         OCI_TAG_MAX  /* a tag or a digest fits */
#define OCI_MEDIA_TYPE_MAX  255
#define OCI_ACCEPT_MAX      1024         /* normalised Accept list */
#define OCI_PATH_MAX        4096
#define OCI_MANIFEST_MAX    (4 * 1024 * 1024)
#define OCI_PLATFORM_MAX    64           /* "os/arch/variant" and NUL */

#endif /* OCI_H */
