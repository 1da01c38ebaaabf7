/*
 * The rel="next" target of an upstream's Link header (RFC 8288), which
 * tags/list and referrers pages carry.  The value may hold several
 * link-values separated by commas (rel="prev", rel="next", ...).  A
 * target is followed, or handed to a worker, only if oci_ipc_link_safe().
 *
 * "There is a next page" and "there is none" must never be confused: a
 * list whose next page cannot be followed is not complete, so the
 * helpers tell three answers apart.
 */

#ifndef FETCHER_LINK_H
#define FETCHER_LINK_H

#include <stddef.h>

typedef enum {
    LINK_NONE = 0,          /* no next page: this one is the last */
    LINK_NEXT,              /* a next page, and its target */
    LINK_UNUSABLE           /* a next page that cannot be followed, or a
                               header that may have named one */
} link_next_t;

/* The rel="next" link-value of link: LINK_NEXT with *start and *len the
 * target between '<' and '>' (pointing into link); LINK_UNUSABLE if a
 * next link-value has no such target, or if none was found and
 * truncated says a Link value was left out (xfer_resp_t.link_truncated);
 * LINK_NONE otherwise. */
link_next_t link_next_target(const char *link, int truncated,
    const char **start, size_t *len);

#endif /* FETCHER_LINK_H */
