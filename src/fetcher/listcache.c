/*
 * The lists kept parsed (see listcache.h): a chained hash table of paths
 * and an LRU list, both intrusive, so that a lookup, a use and an
 * eviction are O(1).
 */

#include <stdlib.h>
#include <string.h>

#include "listcache.h"
#include "queue.h"

typedef struct {
    queue_t     hash_link;      /* in its bucket */
    queue_t     lru_link;       /* head: the least recently used */
    char       *path;
    dev_t       dev;
    ino_t       ino;
    off_t       size;
    struct timespec  mtime;
    json_t     *list;
    size_t      bytes;
} listcache_entry_t;

struct listcache_s {
    long long        max_bytes;
    size_t           max_entries;
    queue_t         *buckets;
    size_t           nbuckets;  /* a power of two */
    queue_t          lru;
    stats_lists_t    stats;
};


/* FNV-1a: paths differ in their tails, every byte counts */
static size_t
listcache_hash(const char *s)
{
    size_t  h = 14695981039346656037ULL;

    for ( /* void */ ; *s != '\0'; s++) {
        h = (h ^ (unsigned char) *s) * 1099511628211ULL;
    }

    return h;
}


listcache_t *
listcache_create(long long max_bytes, long max_entries)
{
    listcache_t  *lc;
    size_t        i, n;

    lc = calloc(1, sizeof(listcache_t));
    if (lc == NULL) {
        return NULL;
    }

    lc->max_bytes = max_bytes;
    lc->max_entries = max_entries > 0 ? (size_t) max_entries : 0;
    queue_init(&lc->lru);

    /* about one entry a bucket when full, and no more than 64k buckets:
     * a full table of long chains is still bounded by max_entries */
    for (n = 16; n < lc->max_entries && n < 65536; n *= 2) {
        /* void */
    }

    lc->buckets = malloc(n * sizeof(queue_t));
    if (lc->buckets == NULL) {
        free(lc);
        return NULL;
    }

    for (i = 0; i < n; i++) {
        queue_init(&lc->buckets[i]);
    }

    lc->nbuckets = n;

    return lc;
}


static void
listcache_remove(listcache_t *lc, listcache_entry_t *e)
{
    queue_remove(&e->hash_link);
    queue_remove(&e->lru_link);
    lc->stats.bytes -= (long long) e->bytes;
    lc->stats.entries--;
    json_decref(e->list);
    free(e->path);
    free(e);
}


void
listcache_destroy(listcache_t *lc)
{
    if (lc == NULL) {
        return;
    }

    while (!queue_empty(&lc->lru)) {
        listcache_remove(lc, queue_data(queue_head(&lc->lru),
                                        listcache_entry_t, lru_link));
    }

    free(lc->buckets);
    free(lc);
}


static listcache_entry_t *
listcache_find(listcache_t *lc, const char *path)
{
    queue_t            *h, *q;
    listcache_entry_t  *e;

    h = &lc->buckets[listcache_hash(path) & (lc->nbuckets - 1)];

    for (q = queue_head(h); q != queue_sentinel(h); q = queue_next(q)) {
        e = queue_data(q, listcache_entry_t, hash_link);

        if (strcmp(e->path, path) == 0) {
            return e;
        }
    }

    return NULL;
}


static int
listcache_same(const listcache_entry_t *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino
           && e->size == st->st_size
           && e->mtime.tv_sec == st->st_mtim.tv_sec
           && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}


json_t *
listcache_get(listcache_t *lc, const char *path, const struct stat *st)
{
    listcache_entry_t  *e;

    if (lc == NULL) {
        return NULL;
    }

    e = listcache_find(lc, path);

    if (e == NULL) {
        lc->stats.misses++;
        return NULL;
    }

    if (!listcache_same(e, st)) {
        lc->stats.invalidations++;
        lc->stats.misses++;
        listcache_remove(lc, e);
        return NULL;
    }

    lc->stats.hits++;
    queue_remove(&e->lru_link);
    queue_insert_tail(&lc->lru, &e->lru_link);

    return json_incref(e->list);
}


void
listcache_put(listcache_t *lc, const char *path, const struct stat *st,
    json_t *list, size_t bytes)
{
    listcache_entry_t  *e, *old;

    if (lc == NULL) {
        return;
    }

    old = listcache_find(lc, path);
    if (old != NULL) {
        listcache_remove(lc, old);
    }

    if (lc->max_entries == 0 || lc->max_bytes <= 0
        || (long long) bytes > lc->max_bytes)
    {
        return;
    }

    /* room first: the oldest go */
    while (!queue_empty(&lc->lru)
           && ((size_t) lc->stats.entries >= lc->max_entries
               || lc->stats.bytes + (long long) bytes > lc->max_bytes))
    {
        lc->stats.evictions++;
        listcache_remove(lc, queue_data(queue_head(&lc->lru),
                                        listcache_entry_t, lru_link));
    }

    e = calloc(1, sizeof(listcache_entry_t));
    if (e == NULL) {
        return;
    }

    e->path = strdup(path);
    if (e->path == NULL) {
        free(e);
        return;
    }

    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->list = json_incref(list);
    e->bytes = bytes;

    queue_insert_tail(&lc->buckets[listcache_hash(path)
                                   & (lc->nbuckets - 1)], &e->hash_link);
    queue_insert_tail(&lc->lru, &e->lru_link);
    lc->stats.bytes += (long long) bytes;
    lc->stats.entries++;
}


void
listcache_drop(listcache_t *lc, const char *path)
{
    listcache_entry_t  *e;

    if (lc == NULL) {
        return;
    }

    e = listcache_find(lc, path);

    if (e != NULL) {
        lc->stats.invalidations++;
        listcache_remove(lc, e);
    }
}


void
listcache_state(const listcache_t *lc, stats_lists_t *st)
{
    if (lc == NULL) {
        memset(st, 0, sizeof(stats_lists_t));
        return;
    }

    *st = lc->stats;
}
