/*
 * A client's Range header on a stored or streamed blob: what nginx's
 * range filter will do with it, decided before the headers go out (the
 * module answers an unsatisfiable range itself, with the spec's JSON,
 * and a streamed blob needs to know where the first byte it sends is).
 * The grammar and the limits are those of ngx_http_range_parse() in
 * nginx's range filter, which answers the request afterwards: the two
 * must agree.  Pure, so that it is unit-tested and fuzzed without nginx.
 */

#ifndef OCI_RANGE_H
#define OCI_RANGE_H

#include "oci.h"

#define OCI_RANGE_NONE           0     /* the whole body */
#define OCI_RANGE_SINGLE         1
#define OCI_RANGE_MULTI          2     /* multipart/byteranges */
#define OCI_RANGE_UNSATISFIABLE  3

/*
 * s[0..len): the value after "bytes=" ("0-99", "-500", "10-,20-30");
 * size: the body's; max_ranges: the ranges nginx allows (max_ranges, 1
 * for a single_range request).  A syntax error is unsatisfiable, as in
 * nginx; more ranges than max_ranges, a range from 0 that is empty, or
 * ranges adding up to more than the body send the whole body.  A NUL
 * ends the value, as it ends nginx's.
 */
int oci_range_parse(const char *s, size_t len, long long size,
    size_t max_ranges);

#endif /* OCI_RANGE_H */
