/*
 * Paging of upstream lists: the rel="next" target of an upstream's Link
 * header (RFC 8288), which tags/list and referrers pages carry.  (The
 * HTTP header, not the worker's link to the fetcher.)  The value may hold several
 * link-values separated by commas (rel="prev", rel="next", ...).  A
 * target is followed, or handed to a worker, only if oci_ipc_link_safe().
 *
 * "There is a next page" and "there is none" must never be confused: a
 * list whose next page cannot be followed is not complete, so the
 * helpers tell three answers apart.
 */

#ifndef FETCHER_PAGING_H
#define FETCHER_PAGING_H

#include <stddef.h>

typedef enum {
    PAGING_LAST = 0,        /* no next page: this one is the last */
    PAGING_NEXT,            /* a next page, and its target */
    PAGING_UNUSABLE         /* a next page that cannot be followed, or a
                               header that may have named one */
} paging_next_t;

/* The rel="next" link-value of link: PAGING_NEXT with *start and *len the
 * target between '<' and '>' (pointing into link); PAGING_UNUSABLE if a
 * next link-value has no such target, or if none was found and
 * truncated says a Link value was left out (xfer_resp_t.link_truncated);
 * PAGING_LAST otherwise. */
paging_next_t paging_next_target(const char *link, int truncated,
    const char **start, size_t *len);

#endif /* FETCHER_PAGING_H */
