/*
 * The lists kept parsed: a stored tag list or referrers index (up to 16
 * MiB of JSON under taglists/ or referrers/) read and parsed once, then
 * answered from memory while the file stays the one it was parsed from.
 * Without it every tags/list request re-read and re-parsed the whole
 * list on the fetcher's one thread.
 *
 * An entry is keyed by the file's path and remembers the file's identity
 * (device, inode, size, modification time to the nanosecond).  The
 * fetcher is the only writer and replaces a list by rename() (a new
 * inode), so it puts the new parse in as it writes (listcache_put());
 * every use also compares the identity with a stat() of the file, which
 * catches what the fetcher did not say: eviction, purge, a file written
 * by the fetcher before a restart, or by hand.
 *
 * Bounded by fetcher.list_cache_size (the estimated memory of the parsed
 * lists, given by the caller) and fetcher.list_cache_entries; past
 * either the least recently used lists go (counted), and a list bigger
 * than the whole size is not kept.  0 for either keeps nothing.
 *
 * Ownership: the cache holds one reference of each list it keeps; get
 * returns a new one.  The lists must not be changed once put.
 */

#ifndef FETCHER_LISTCACHE_H
#define FETCHER_LISTCACHE_H

#include <sys/stat.h>

#include <jansson.h>

#include "stats.h"

typedef struct listcache_s  listcache_t;

/* NULL if out of memory. */
listcache_t *listcache_create(long long max_bytes, long max_entries);
void listcache_destroy(listcache_t *lc);

/* The list parsed from path, if st (a stat() of path now) is the file it
 * was parsed from: a new reference, and it becomes the most recent.
 * NULL (a miss) otherwise; a stale entry is dropped.  lc NULL: NULL. */
json_t *listcache_get(listcache_t *lc, const char *path,
    const struct stat *st);

/* Keep list (the cache takes its own reference) as the parse of path,
 * the file st describes, of about bytes of memory; it replaces what was
 * kept for path.  lc NULL: nothing. */
void listcache_put(listcache_t *lc, const char *path, const struct stat *st,
    json_t *list, size_t bytes);

/* Forget path (the file is gone).  lc NULL or path unknown: nothing. */
void listcache_drop(listcache_t *lc, const char *path);

/* The counters (lc NULL: all zero). */
void listcache_state(const listcache_t *lc, stats_lists_t *st);

#endif /* FETCHER_LISTCACHE_H */
