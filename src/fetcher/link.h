/*
 * The rel="next" target of an upstream's Link header (RFC 8288), which
 * tags/list and referrers pages carry.  The value may hold several
 * link-values separated by commas (rel="prev", rel="next", ...).  A
 * target is followed, or handed to a worker, only if oci_ipc_link_safe().
 */

#ifndef FETCHER_LINK_H
#define FETCHER_LINK_H

#include <stddef.h>

/* The target between '<' and '>' of the rel="next" link-value of link:
 * *start and *len point into link.  1 if found, 0 otherwise. */
int link_next_target(const char *link, const char **start, size_t *len);

#endif /* FETCHER_LINK_H */
