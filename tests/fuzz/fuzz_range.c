/*
 * A client's Range header on a blob (src/oci_range.c, what the module's
 * ngx_http_ocimirror_range_test() asks before the headers go out).
 *
 * Input: 8 bytes of the body's size (little-endian; negative taken as
 * its opposite's low 62 bits, as no file has a negative size), one byte
 * of max_ranges, then the value after "bytes=".
 * Checks: one of the four answers; a NUL ends the value as it ends
 * nginx's; one range allowed never makes a multipart answer; an empty
 * body is never sent in part; a part needs a digit.
 */

#include <string.h>

#include "fuzz.h"
#include "oci_range.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char  *s;
    long long    body;
    uint64_t     u;
    size_t       len, max, i;
    int          rc;

    if (size < 9) {
        return 0;
    }

    u = 0;

    for (i = 0; i < 8; i++) {
        u |= (uint64_t) data[i] << (8 * i);
    }

    body = (long long) (u & ((1ULL << 62) - 1));
    max = data[8];
    s = (const char *) data + 9;
    len = size - 9;

    rc = oci_range_parse(s, len, body, max);

    FUZZ_CHECK(rc == OCI_RANGE_NONE || rc == OCI_RANGE_SINGLE
               || rc == OCI_RANGE_MULTI || rc == OCI_RANGE_UNSATISFIABLE);

    FUZZ_CHECK(rc == oci_range_parse(s, strnlen(s, len), body, max));

    if (rc == OCI_RANGE_SINGLE || rc == OCI_RANGE_MULTI) {
        FUZZ_CHECK(body > 0 && max > 0);
        FUZZ_CHECK(memchr(s, '-', len) != NULL);

        for (i = 0; i < len && (s[i] < '0' || s[i] > '9'); i++) {
            /* void */
        }

        FUZZ_CHECK(i < len);
    }

    if (rc == OCI_RANGE_MULTI) {
        FUZZ_CHECK(max > 1 && memchr(s, ',', len) != NULL);
    }

    if (max > 1) {
        FUZZ_CHECK(oci_range_parse(s, len, body, 1) != OCI_RANGE_MULTI);
    }

    return 0;
}
