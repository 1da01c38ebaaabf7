/*
 * The Link header of an upstream's tags/list and referrers pages
 * (src/fetcher/paging.c): the rel="next" target the fetcher follows.
 *
 * Input: one flags byte (bit 0: a Link value was left out, as
 * xfer_resp_t.link_truncated says), then the header value (a C string,
 * as xfer keeps it: it ends at the first NUL).
 * Checks: a next target lies inside the value, between a '<' and the
 * first '>' after it; a truncated value never says "last page".
 */

#include <string.h>

#include "fuzz.h"
#include "paging.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           *link;
    const char     *start;
    size_t          len, vlen;
    paging_next_t   next;

    if (size == 0) {
        return 0;
    }

    link = malloc(size);
    if (link == NULL) {
        return 0;
    }

    memcpy(link, data + 1, size - 1);
    link[size - 1] = '\0';
    vlen = strlen(link);

    start = NULL;
    len = 0;
    next = paging_next_target(link, data[0] & 1, &start, &len);

    switch (next) {

    case PAGING_NEXT:
        FUZZ_CHECK(start > link && start + len < link + vlen);
        FUZZ_CHECK(start[-1] == '<' && start[len] == '>');
        FUZZ_CHECK(memchr(start, '>', len) == NULL);
        break;

    case PAGING_LAST:
        FUZZ_CHECK(!(data[0] & 1));
        break;

    case PAGING_UNUSABLE:
        break;

    default:
        FUZZ_CHECK(0);
    }

    free(link);

    return 0;
}
