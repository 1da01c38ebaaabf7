/*
 * A client's Range header (see oci_range.h): ngx_http_range_parse()'s
 * loop, on a counted value.
 */

#include <limits.h>

#include "oci_range.h"


/* the byte at p, or the NUL nginx's header value would end with */
#define OCI_RANGE_CH(p, end)  ((p) < (end) ? *(p) : '\0')


int
oci_range_parse(const char *s, size_t len, long long size,
    size_t max_ranges)
{
    const char  *p, *end;
    long long    start, last, total, cutoff, cutlim;
    size_t       count, ranges;
    int          suffix;
    char         c;

    p = s;
    end = s + len;
    ranges = max_ranges;
    count = 0;
    total = 0;

    cutoff = LLONG_MAX / 10;
    cutlim = LLONG_MAX % 10;

    for ( ;; ) {
        start = 0;
        last = 0;
        suffix = 0;

        while (OCI_RANGE_CH(p, end) == ' ') { p++; }

        if (OCI_RANGE_CH(p, end) != '-') {
            c = OCI_RANGE_CH(p, end);

            if (c < '0' || c > '9') {
                return OCI_RANGE_UNSATISFIABLE;
            }

            while ((c = OCI_RANGE_CH(p, end)) >= '0' && c <= '9') {
                if (start >= cutoff && (start > cutoff || c - '0' > cutlim)) {
                    return OCI_RANGE_UNSATISFIABLE;
                }

                start = start * 10 + (c - '0');
                p++;
            }

            while (OCI_RANGE_CH(p, end) == ' ') { p++; }

            if (OCI_RANGE_CH(p, end) != '-') {
                return OCI_RANGE_UNSATISFIABLE;
            }

            p++;

            while (OCI_RANGE_CH(p, end) == ' ') { p++; }

            c = OCI_RANGE_CH(p, end);

            if (c == ',' || c == '\0') {
                last = size;
                goto found;
            }

        } else {
            suffix = 1;
            p++;
        }

        c = OCI_RANGE_CH(p, end);

        if (c < '0' || c > '9') {
            return OCI_RANGE_UNSATISFIABLE;
        }

        while ((c = OCI_RANGE_CH(p, end)) >= '0' && c <= '9') {
            if (last >= cutoff && (last > cutoff || c - '0' > cutlim)) {
                return OCI_RANGE_UNSATISFIABLE;
            }

            last = last * 10 + (c - '0');
            p++;
        }

        while (OCI_RANGE_CH(p, end) == ' ') { p++; }

        c = OCI_RANGE_CH(p, end);

        if (c != ',' && c != '\0') {
            return OCI_RANGE_UNSATISFIABLE;
        }

        if (suffix) {
            start = (last < size) ? size - last : 0;
            last = size - 1;
        }

        if (last >= size) {
            last = size;

        } else {
            last++;
        }

    found:

        if (start < last) {
            count++;

            if (total > LLONG_MAX - (last - start)) {
                return OCI_RANGE_UNSATISFIABLE;
            }

            total += last - start;

            if (ranges-- == 0) {
                return OCI_RANGE_NONE;
            }

        } else if (start == 0) {
            return OCI_RANGE_NONE;
        }

        if (OCI_RANGE_CH(p, end) != ',') {
            break;
        }

        p++;
    }

    if (count == 0) {
        return OCI_RANGE_UNSATISFIABLE;
    }

    if (total > size) {
        return OCI_RANGE_NONE;
    }

    if (count > 1) {
        return OCI_RANGE_MULTI;
    }

    return OCI_RANGE_SINGLE;
}
