/*
 * The cache manager (see cache.h).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "oci_image.h"
#include "oci_ref.h"
#include "oci_store.h"
#include "cache.h"
#include "log.h"
#include "queue.h"

#define CACHE_BUCKETS    65536
#define CACHE_DEPTH_MAX  64          /* directories open while loading */
#define CACHE_PIN_BUCKETS  4096
#define CACHE_PIN_SLICE    32        /* manifests read per slice */

typedef struct {
    queue_t     hash_link;
    queue_t     lru_link;           /* the oldest use first; or in the
                                       list of pinned entries */
    long long   bytes;              /* on disk */
    time_t      used;               /* the last use */
    time_t      touched;            /* the last use written to disk */
    int         pinned;
    char        path[];             /* relative to the root */
} cache_entry_t;

/* A digest a pin holds, stored or not yet. */
typedef struct {
    queue_t     link;
    size_t      spec;               /* the pin that reached it first */
    char        hex[OCI_SHA256_HEX_LEN + 1];
} cache_pin_t;

/* One directory of the walk: open, and its path relative to the root. */
typedef struct {
    DIR        *dir;
    size_t      len;                /* of the path, in cache_t.walk_path */
} cache_level_t;

struct cache_s {
    const oci_config_t  *cf;
    loop_t              *loop;
    int                  rootfd;
    size_t               rootlen;
    int                  timerfd;   /* armed while there are slices */
    queue_t             *buckets;
    queue_t              lru;
    long long            bytes;
    unsigned long long   files;
    long long            reserved;
    long long            max;
    long long            fs_free;   /* the last statvfs() */
    /* evicted in the last CACHE_HELD_SECONDS: their blocks may still be
     * held by a reader; counted as coming back, so that eviction for
     * min_free does not take more and more while a client reads */
    long long            held_bytes;
    long long            held_base;   /* cache_room() when they started */
    time_t               held_since;

    /* loading: the walk, then the order (sort_buckets != NULL) */
    int                  loading;
    time_t               load_oldest;   /* the uses the walk found */
    time_t               load_newest;
    queue_t             *sort_buckets;  /* a list per sort_quantum of
                                           use, oldest first */
    size_t               sort_n;
    time_t               sort_base;     /* the use of bucket 0 */
    time_t               sort_quantum;  /* seconds a bucket spans */
    int                  loaded;
    struct timespec      load_started;
    double               load_seconds;
    size_t               top;       /* the next of cache_tops[] */
    cache_level_t        level[CACHE_DEPTH_MAX];
    int                  depth;     /* levels open */
    char                 walk_path[OCI_PATH_MAX];

    /* pins: the specs, the digests they hold, and manifests to read */
    oci_image_spec_t    *pins;
    size_t               npins;
    queue_t             *pin_buckets;
    size_t               npinned;   /* digests in pin_buckets */
    queue_t              pinned;    /* entries held by a pin */
    long long            pinned_bytes;
    unsigned long long   pinned_files;
    cache_pin_t        **pending;   /* digests whose manifest to read */
    size_t               npending;
    size_t               pending_cap;
    int                  pins_full;   /* warned: CACHE_PINNED_MAX */
    int                  pins_dirty;  /* a full resolve is due */
    int                  pins_over;   /* warned: pins pass the high
                                         watermark */

    int                  evicting;
    int                  stuck;     /* warned: nothing may go */
    int                  held;      /* warned: evicted files still open;
                                       again once min_free is free */
    unsigned long long   evictions;
    unsigned long long   evicted_bytes;
    unsigned long long   emergencies;
};

/* The folders the index covers; tmp/ (downloads) and types/ (a line per
 * manifest, which goes with it) are not in it. */
static const char *const  cache_tops[] = {
    "sha256", "tags", "taglists", "referrers"
};

static void cache_timer_handler(loop_t *loop, int fd, uint32_t events,
    void *data);
static void cache_kick(cache_t *c);
static void cache_load_slice(cache_t *c);
static void cache_load_done(cache_t *c);
static void cache_sort_slice(cache_t *c);
static void cache_sort_done(cache_t *c);
static void cache_evict_slice(cache_t *c);
static int cache_should_evict(cache_t *c, time_t now);
static long long cache_evict_one(cache_t *c, time_t now, int inactive_only);
static void cache_statvfs(cache_t *c);
static void cache_held_check(cache_t *c, long long before,
    long long evicted, long long want);
static void cache_pins_resolve(cache_t *c);
static void cache_pins_slice(cache_t *c);
static void cache_pins_added(cache_t *c, cache_entry_t *e);
static void cache_pins_clear(cache_t *c);
static int cache_spec_copy(oci_image_spec_t *to, const oci_image_spec_t *from);
static void cache_spec_free(oci_image_spec_t *spec);


static uint32_t
cache_hash(const char *path)
{
    uint32_t  h;

    /* FNV-1a */
    h = 2166136261u;

    while (*path != '\0') {
        h ^= (unsigned char) *path++;
        h *= 16777619u;
    }

    return h;
}


static cache_entry_t *
cache_find(cache_t *c, const char *path)
{
    queue_t        *b, *q;
    cache_entry_t  *e;

    b = &c->buckets[cache_hash(path) % CACHE_BUCKETS];

    for (q = queue_head(b); q != queue_sentinel(b); q = queue_next(q)) {
        e = queue_data(q, cache_entry_t, hash_link);

        if (strcmp(e->path, path) == 0) {
            return e;
        }
    }

    return NULL;
}


static void
cache_entry_free(cache_t *c, cache_entry_t *e)
{
    queue_remove(&e->hash_link);
    queue_remove(&e->lru_link);
    c->bytes -= e->bytes;
    c->files--;

    if (e->pinned) {
        c->pinned_bytes -= e->bytes;
        c->pinned_files--;
    }

    free(e);
}


/* The entry of path, new or updated with bytes and used (the young end
 * of the list if it is the newest use).  NULL if out of memory
 * (logged). */
static cache_entry_t *
cache_put(cache_t *c, const char *path, long long bytes, time_t used,
    time_t touched)
{
    cache_entry_t  *e;
    size_t          len;

    e = cache_find(c, path);

    if (e != NULL) {
        c->bytes += bytes - e->bytes;

        if (e->pinned) {
            c->pinned_bytes += bytes - e->bytes;
        }

        e->bytes = bytes;

    } else {
        len = strlen(path);

        e = malloc(sizeof(cache_entry_t) + len + 1);
        if (e == NULL) {
            log_error("out of memory for the store's index");
            return NULL;
        }

        memcpy(e->path, path, len + 1);
        e->bytes = bytes;
        e->used = 0;
        e->touched = touched;
        e->pinned = 0;
        queue_init(&e->lru_link);
        queue_insert_tail(&c->buckets[cache_hash(path) % CACHE_BUCKETS],
                          &e->hash_link);
        c->bytes += bytes;
        c->files++;
    }

    if (c->loading) {
        if (c->load_oldest == 0 || used < c->load_oldest) {
            c->load_oldest = used;
        }

        if (used > c->load_newest) {
            c->load_newest = used;
        }
    }

    /* while loading, the order is put right by cache_sort_slice(); a
     * pinned entry is off the LRU list */
    if (used >= e->used) {
        e->used = used;

        if (!e->pinned) {
            queue_remove(&e->lru_link);
            queue_insert_tail(&c->lru, &e->lru_link);
        }
    }

    return e;
}


cache_t *
cache_create(const oci_config_t *cf, loop_t *loop)
{
    cache_t          *c;
    struct statvfs    fs;
    size_t            i;

    c = calloc(1, sizeof(cache_t));
    if (c == NULL) {
        log_error("out of memory");
        return NULL;
    }

    c->cf = cf;
    c->loop = loop;
    c->rootlen = strlen(cf->store_path);
    c->load_seconds = -1;
    c->timerfd = -1;
    queue_init(&c->lru);
    queue_init(&c->pinned);

    c->rootfd = open(cf->store_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->rootfd == -1) {
        log_error("open(\"%s\") failed: %s", cf->store_path,
                  strerror(errno));
        free(c);
        return NULL;
    }

    c->buckets = calloc(CACHE_BUCKETS, sizeof(queue_t));
    if (c->buckets == NULL) {
        log_error("out of memory");
        cache_destroy(c);
        return NULL;
    }

    for (i = 0; i < CACHE_BUCKETS; i++) {
        queue_init(&c->buckets[i]);
    }

    c->pin_buckets = calloc(CACHE_PIN_BUCKETS, sizeof(queue_t));
    c->pins = calloc(OCI_PINS_MAX, sizeof(oci_image_spec_t));

    if (c->pin_buckets == NULL || c->pins == NULL) {
        log_error("out of memory");
        cache_destroy(c);
        return NULL;
    }

    for (i = 0; i < CACHE_PIN_BUCKETS; i++) {
        queue_init(&c->pin_buckets[i]);
    }

    for (i = 0; i < cf->n_pins && i < OCI_PINS_MAX; i++) {
        if (cache_spec_copy(&c->pins[c->npins], &cf->pins[i]) != OCI_OK) {
            log_error("out of memory");
            cache_destroy(c);
            return NULL;
        }

        c->npins++;
    }

    if (fstatvfs(c->rootfd, &fs) != 0) {
        log_error("statvfs(\"%s\") failed: %s", cf->store_path,
                  strerror(errno));
        cache_destroy(c);
        return NULL;
    }

    c->max = oci_config_max_size(cf, (long long) fs.f_blocks
                                     * (long long) fs.f_frsize);
    c->fs_free = (long long) fs.f_bavail * (long long) fs.f_frsize;

    c->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->timerfd == -1
        || loop_add(loop, c->timerfd, EPOLLIN, cache_timer_handler, c)
           != 0)
    {
        log_error("cannot set up the cache manager's timer: %s",
                  strerror(errno));
        cache_destroy(c);
        return NULL;
    }

    log_info("store \"%s\": at most %lld bytes, evicting from %d%% to "
             "%d%% of that, or while less than %lld bytes are free",
             cf->store_path, c->max, cf->store_high_watermark,
             cf->store_low_watermark, cf->store_min_free);

    return c;
}


void
cache_destroy(cache_t *c)
{
    queue_t  *q;
    size_t    i;

    if (c == NULL) {
        return;
    }

    while (c->depth > 0) {
        closedir(c->level[--c->depth].dir);
    }

    while (!queue_empty(&c->lru)) {
        q = queue_head(&c->lru);
        cache_entry_free(c, queue_data(q, cache_entry_t, lru_link));
    }

    for (i = 0; c->sort_buckets != NULL && i < c->sort_n; i++) {
        while (!queue_empty(&c->sort_buckets[i])) {
            q = queue_head(&c->sort_buckets[i]);
            cache_entry_free(c, queue_data(q, cache_entry_t, lru_link));
        }
    }

    free(c->sort_buckets);

    while (!queue_empty(&c->pinned)) {
        q = queue_head(&c->pinned);
        cache_entry_free(c, queue_data(q, cache_entry_t, lru_link));
    }

    if (c->pin_buckets != NULL) {
        cache_pins_clear(c);
    }

    for (i = 0; i < c->npins; i++) {
        cache_spec_free(&c->pins[i]);
    }

    free(c->pins);
    free(c->pending);
    free(c->pin_buckets);

    if (c->timerfd != -1) {
        loop_del(c->loop, c->timerfd);
        close(c->timerfd);
    }

    free(c->buckets);
    close(c->rootfd);
    free(c);
}


/* Run a slice from the loop as soon as it is free again. */
static void
cache_kick(cache_t *c)
{
    struct itimerspec  its;

    memset(&its, 0, sizeof(its));
    its.it_value.tv_nsec = 1;

    if (timerfd_settime(c->timerfd, 0, &its, NULL) != 0) {
        log_error("timerfd_settime() failed: %s", strerror(errno));
    }
}


static void
cache_timer_handler(loop_t *loop, int fd, uint32_t events, void *data)
{
    cache_t   *c = data;
    uint64_t   n;

    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN) {
        log_error("read(timerfd) failed: %s", strerror(errno));
    }

    if (c->loading) {
        if (c->sort_buckets != NULL) {
            cache_sort_slice(c);

        } else {
            cache_load_slice(c);
        }

    } else {
        if (c->npending > 0) {
            cache_pins_slice(c);
        }

        /* a resolve puts every pinned file back on the LRU list and holds
         * them again slice by slice: until the last digest is held,
         * eviction could take what a pin still names */
        if (c->evicting && c->npending == 0) {
            cache_evict_slice(c);
        }
    }

    if (c->loading || c->evicting || c->npending > 0) {
        cache_kick(c);
    }
}


void
cache_start(cache_t *c)
{
    clock_gettime(CLOCK_MONOTONIC, &c->load_started);
    c->loading = 1;
    c->top = 0;
    c->depth = 0;
    cache_kick(c);
}


/* Open the directory walk_path[0..len) (relative to the root) as the
 * next level.  0, or -1 (it is skipped; logged unless missing). */
static int
cache_open_level(cache_t *c, size_t len)
{
    DIR  *d;
    int   fd;

    if (c->depth == CACHE_DEPTH_MAX) {
        log_warn("store: \"%.*s\" is nested too deep, not indexed",
                 (int) len, c->walk_path);
        return -1;
    }

    fd = openat(c->rootfd, c->walk_path,
                O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

    if (fd == -1 || (d = fdopendir(fd)) == NULL) {
        if (errno != ENOENT) {
            log_error("open(\"%s/%s\") failed: %s", c->cf->store_path,
                      c->walk_path, strerror(errno));
        }

        if (fd != -1) {
            close(fd);
        }

        return -1;
    }

    c->level[c->depth].dir = d;
    c->level[c->depth].len = len;
    c->depth++;

    return 0;
}


/* A file's last use: the later of its access and modification; without
 * recency (store.recency = false) its modification alone, the download,
 * whatever uses an earlier run or the kernel wrote as its access time. */
static time_t
cache_stat_used(cache_t *c, const struct stat *st)
{
    if (!c->cf->store_recency) {
        return st->st_mtim.tv_sec;
    }

    return st->st_atim.tv_sec > st->st_mtim.tv_sec ? st->st_atim.tv_sec
                                                   : st->st_mtim.tv_sec;
}


/* Up to CACHE_LOAD_SLICE directory entries of the walk. */
static void
cache_load_slice(cache_t *c)
{
    cache_level_t   *lv;
    struct dirent   *de;
    struct stat      st;
    size_t           n, len, nlen;

    for (n = 0; n < CACHE_LOAD_SLICE; n++) {

        if (c->depth == 0) {
            if (c->top == sizeof(cache_tops) / sizeof(cache_tops[0])) {
                cache_load_done(c);
                return;
            }

            len = (size_t) snprintf(c->walk_path, sizeof(c->walk_path),
                                    "%s", cache_tops[c->top++]);
            cache_open_level(c, len);
            continue;
        }

        lv = &c->level[c->depth - 1];

        errno = 0;
        de = readdir(lv->dir);

        if (de == NULL) {
            if (errno != 0) {
                log_error("readdir(\"%s/%.*s\") failed: %s",
                          c->cf->store_path, (int) lv->len, c->walk_path,
                          strerror(errno));
            }

            closedir(lv->dir);
            c->depth--;
            continue;
        }

        if (de->d_name[0] == '.') {
            continue;
        }

        nlen = strlen(de->d_name);

        if (lv->len + 1 + nlen >= sizeof(c->walk_path)) {
            continue;
        }

        c->walk_path[lv->len] = '/';
        memcpy(c->walk_path + lv->len + 1, de->d_name, nlen + 1);
        len = lv->len + 1 + nlen;

        if (fstatat(dirfd(lv->dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW)
            != 0)
        {
            continue;                       /* gone meanwhile */
        }

        if (S_ISDIR(st.st_mode)) {
            cache_open_level(c, len);
            continue;
        }

        if (!S_ISREG(st.st_mode) || cache_find(c, c->walk_path) != NULL) {
            continue;                       /* written since the start */
        }

        cache_put(c, c->walk_path, (long long) st.st_blocks * 512,
                  cache_stat_used(c, &st), cache_stat_used(c, &st));
    }
}


static int
cache_cmp_used(const void *a, const void *b)
{
    const cache_entry_t  *x = *(cache_entry_t *const *) a;
    const cache_entry_t  *y = *(cache_entry_t *const *) b;

    return (x->used > y->used) - (x->used < y->used);
}


/*
 * The walk is over: the LRU list, in the order it was read, is put in the
 * order of use by distributing its entries into a list per second of use
 * (or per power-of-two seconds, for at most CACHE_SORT_BUCKETS lists),
 * CACHE_SORT_SLICE entries a slice, then joining the lists: no sort of
 * the whole index in one go.  Meanwhile the fetcher's own writes and uses
 * go to the end of the LRU list, which is distributed after them; an
 * entry removed leaves whatever list holds it.
 */
static void
cache_load_done(cache_t *c)
{
    time_t  span;
    size_t  i, n;

    /* a second a list if the uses span less than 18 hours; 128 s for a
     * quarter: always well within CACHE_TOUCH_INTERVAL up to a year */
    span = c->load_newest - c->load_oldest + 1;
    c->sort_quantum = 1;

    while (span / c->sort_quantum + 1 > CACHE_SORT_BUCKETS) {
        c->sort_quantum *= 2;
    }

    n = (size_t) (span / c->sort_quantum + 1);

    c->sort_buckets = malloc(n * sizeof(queue_t));

    if (c->sort_buckets == NULL) {
        log_error("out of memory: the store's index stays in the order "
                  "it was read");
        cache_sort_done(c);
        return;
    }

    for (i = 0; i < n; i++) {
        queue_init(&c->sort_buckets[i]);
    }

    c->sort_n = n;
    c->sort_base = c->load_oldest;
}


/* Up to CACHE_SORT_SLICE entries from the LRU list into their buckets;
 * the buckets joined once the list is empty. */
static void
cache_sort_slice(cache_t *c)
{
    cache_entry_t  *e;
    queue_t        *b;
    size_t          n, i;
    time_t          k;

    for (n = 0; n < CACHE_SORT_SLICE; n++) {
        if (queue_empty(&c->lru)) {
            break;
        }

        e = queue_data(queue_head(&c->lru), cache_entry_t, lru_link);
        queue_remove(&e->lru_link);

        /* a use since the walk: the newest bucket */
        k = (e->used - c->sort_base) / c->sort_quantum;
        k = k < 0 ? 0 : (size_t) k >= c->sort_n ? (time_t) c->sort_n - 1
                                                : k;
        queue_insert_tail(&c->sort_buckets[k], &e->lru_link);
    }

    if (!queue_empty(&c->lru)) {
        return;
    }

    for (i = 0; i < c->sort_n; i++) {
        b = &c->sort_buckets[i];

        while (!queue_empty(b)) {
            e = queue_data(queue_head(b), cache_entry_t, lru_link);
            queue_remove(&e->lru_link);
            queue_insert_tail(&c->lru, &e->lru_link);
        }
    }

    free(c->sort_buckets);
    c->sort_buckets = NULL;

    cache_sort_done(c);
}


/* The index is ready: eviction may go. */
static void
cache_sort_done(cache_t *c)
{
    struct timespec  now;

    c->loading = 0;
    c->loaded = 1;

    clock_gettime(CLOCK_MONOTONIC, &now);
    c->load_seconds = (double) (now.tv_sec - c->load_started.tv_sec)
                      + (double) (now.tv_nsec - c->load_started.tv_nsec)
                        / 1e9;

    log_info("store \"%s\": %llu files, %lld bytes indexed in %.3f s",
             c->cf->store_path, c->files, c->bytes, c->load_seconds);

    cache_pins_resolve(c);
    cache_tick(c);
}


/* The path of a file of the store relative to its root, or NULL. */
static const char *
cache_relative(cache_t *c, const char *path)
{
    if (strncmp(path, c->cf->store_path, c->rootlen) != 0
        || path[c->rootlen] != '/')
    {
        return NULL;
    }

    return path + c->rootlen + 1;
}


void
cache_added(cache_t *c, const char *path)
{
    const char     *rel;
    cache_entry_t  *e;
    struct stat     st;
    time_t          now;

    if (c == NULL || (rel = cache_relative(c, path)) == NULL) {
        return;
    }

    if (fstatat(c->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return;
    }

    now = time(NULL);
    e = cache_put(c, rel, (long long) st.st_blocks * 512, now, now);

    if (e != NULL && c->loaded) {
        cache_pins_added(c, e);
    }

    if (cache_should_evict(c, now)) {
        c->evicting = 1;
        cache_kick(c);
    }
}


void
cache_removed(cache_t *c, const char *path)
{
    const char     *rel;
    cache_entry_t  *e;

    if (c == NULL || (rel = cache_relative(c, path)) == NULL) {
        return;
    }

    e = cache_find(c, rel);

    if (e != NULL) {
        cache_entry_free(c, e);
    }
}


void
cache_used(cache_t *c, const char *abs)
{
    const char       *path;
    cache_entry_t    *e;
    struct timespec   times[2];
    time_t            now;

    if (c == NULL || (path = cache_relative(c, abs)) == NULL
        || (e = cache_find(c, path)) == NULL)
    {
        return;
    }

    now = time(NULL);
    cache_put(c, path, e->bytes, now, e->touched);

    /* without recency the disk keeps the download time alone */
    if (!c->cf->store_recency || now - e->touched < CACHE_TOUCH_INTERVAL) {
        return;
    }

    /* the use, on disk for the next start: the access time alone */
    times[0].tv_sec = now;
    times[0].tv_nsec = 0;
    times[1].tv_nsec = UTIME_OMIT;

    if (utimensat(c->rootfd, path, times, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) {
            log_error("utimensat(\"%s/%s\") failed: %s", c->cf->store_path,
                      path, strerror(errno));
        }

        return;
    }

    e->touched = now;
}


void
cache_reserve(cache_t *c, long long bytes)
{
    if (c == NULL) {
        return;
    }

    c->reserved += bytes;

    if (c->reserved < 0) {
        c->reserved = 0;
    }

    if (bytes > 0 && cache_should_evict(c, time(NULL))) {
        c->evicting = 1;
        cache_kick(c);
    }
}


/* pct% of max, exact and without overflow */
static long long
cache_share(long long max, int pct)
{
    return max / 100 * pct + max % 100 * pct / 100;
}


static long long
cache_high(cache_t *c)
{
    return cache_share(c->max, c->cf->store_high_watermark);
}


static long long
cache_low(cache_t *c)
{
    return cache_share(c->max, c->cf->store_low_watermark);
}


static void
cache_statvfs(cache_t *c)
{
    struct statvfs  fs;

    if (fstatvfs(c->rootfd, &fs) == 0) {
        c->fs_free = (long long) fs.f_bavail * (long long) fs.f_frsize;

        if (c->fs_free >= c->cf->store_min_free) {
            c->held = 0;
        }
    }
}


/*
 * evicted bytes were just unlinked, when before were free: read the free
 * space again and say, once until min_free is free again, if less than
 * want is free and little of those bytes came back.  The blocks of an
 * unlinked file are freed when its last descriptor is closed: an nginx
 * worker may still be sending it, or hold it in its open_file_cache
 * until it has been unused for the cache's "inactive" time.  Meanwhile
 * the filesystem looks as full as before, and eviction goes on.
 */
static void
cache_held_check(cache_t *c, long long before, long long evicted,
    long long want)
{
    long long  back;

    if (evicted <= 0) {
        return;
    }

    cache_statvfs(c);

    back = c->fs_free - before;

    if (c->held || c->fs_free >= want || back >= evicted / 2) {
        return;
    }

    log_warn("store \"%s\": %lld bytes evicted, %lld of them free again, "
             "%lld free: evicted files are still open (a client still "
             "reading them, or nginx's open_file_cache until they are "
             "unused for its \"inactive\" time)",
             c->cf->store_path, evicted, back > 0 ? back : 0, c->fs_free);

    c->held = 1;
}


/*
 * The free space plus what the store takes and has reserved: the
 * fetcher's own writes move bytes between the terms (a download is
 * reserved and fallocate()d at once, then committed), and so does an
 * eviction whose blocks come back.  It drops when an evicted file's
 * blocks stay held by a reader (or another process writes to the
 * filesystem).
 */
static long long
cache_room(cache_t *c)
{
    return c->fs_free + c->bytes + c->reserved;
}


/* Free space for eviction's decisions: what statvfs() said, plus what
 * was evicted lately and has not come back yet (at most what was
 * evicted). */
static long long
cache_free_soon(cache_t *c, time_t now)
{
    long long  pending;

    if (c->held_bytes == 0 || now - c->held_since > CACHE_HELD_SECONDS) {
        return c->fs_free;
    }

    pending = c->held_base - cache_room(c);

    if (pending > c->held_bytes) {
        pending = c->held_bytes;
    }

    return c->fs_free + (pending > 0 ? pending : 0);
}


/* The oldest entry may go now: not used within CACHE_GRACE, and, if
 * inactive_only, unused for store.inactive. */
static cache_entry_t *
cache_candidate(cache_t *c, time_t now, int inactive_only)
{
    cache_entry_t  *e;

    if (queue_empty(&c->lru)) {
        return NULL;
    }

    e = queue_data(queue_head(&c->lru), cache_entry_t, lru_link);

    if (now - e->used < CACHE_GRACE
        || (inactive_only
            && (c->cf->store_inactive == 0
                || now - e->used < c->cf->store_inactive)))
    {
        return NULL;
    }

    return e;
}


/* Over the high watermark, short of min_free, or an entry inactive: 1. */
static int
cache_should_evict(cache_t *c, time_t now)
{
    if (!c->loaded) {
        return 0;
    }

    return c->bytes + c->reserved > cache_high(c)
           || cache_free_soon(c, now) < c->cf->store_min_free
           || cache_candidate(c, now, 1) != NULL;
}


/* Not done: above the low watermark, short of min_free, or an entry
 * inactive. */
static int
cache_must_go_on(cache_t *c, time_t now, int *inactive_only)
{
    *inactive_only = !(c->bytes + c->reserved > cache_low(c)
                       || cache_free_soon(c, now) < c->cf->store_min_free);

    return !*inactive_only || cache_candidate(c, now, 1) != NULL;
}


/* Evict the oldest entry that may go.  The bytes it took, 0 if none
 * may. */
static long long
cache_evict_one(cache_t *c, time_t now, int inactive_only)
{
    cache_entry_t  *e;
    long long       bytes;
    char            types[96];

    e = cache_candidate(c, now, inactive_only);
    if (e == NULL) {
        return 0;
    }

    if (unlinkat(c->rootfd, e->path, 0) != 0 && errno != ENOENT) {
        log_error("unlink(\"%s/%s\") failed: %s", c->cf->store_path,
                  e->path, strerror(errno));

        /* not evictable: the young end, so that the others go first */
        e->used = now;
        queue_remove(&e->lru_link);
        queue_insert_tail(&c->lru, &e->lru_link);
        return 0;
    }

    /* a manifest's media type goes with it */
    if (strncmp(e->path, "sha256/", 7) == 0) {
        snprintf(types, sizeof(types), "types/%s", e->path);

        if (unlinkat(c->rootfd, types, 0) != 0 && errno != ENOENT) {
            log_error("unlink(\"%s/%s\") failed: %s", c->cf->store_path,
                      types, strerror(errno));
        }
    }

    log_debug("store: evicted %s, %lld bytes, unused for %lld s", e->path,
              e->bytes, (long long) (now - e->used));

    bytes = e->bytes;
    c->evictions++;
    c->evicted_bytes += (unsigned long long) bytes;

    if (c->held_bytes == 0 || now - c->held_since > CACHE_HELD_SECONDS) {
        c->held_bytes = 0;
        c->held_base = cache_room(c);
        c->held_since = now;
    }

    c->held_bytes += bytes;
    cache_entry_free(c, e);

    return bytes;
}


static void
cache_evict_slice(cache_t *c)
{
    time_t      now;
    size_t      n;
    int         inactive_only;
    long long   before, bytes, evicted;

    now = time(NULL);
    cache_statvfs(c);

    before = c->fs_free;
    evicted = 0;

    for (n = 0; n < CACHE_EVICT_SLICE; n++) {
        if (!cache_must_go_on(c, now, &inactive_only)) {
            c->evicting = 0;
            c->stuck = 0;
            break;
        }

        bytes = cache_evict_one(c, now, inactive_only);

        if (bytes == 0) {
            /* what is left was used in the last seconds: the next tick
             * looks again; said once, not every second */
            if (!inactive_only && !c->stuck) {
                log_warn("store \"%s\": %lld bytes, %lld reserved, %lld "
                         "free, and nothing more may be evicted now",
                         c->cf->store_path, c->bytes, c->reserved,
                         c->fs_free);
                c->stuck = 1;
            }

            c->evicting = 0;
            break;
        }

        evicted += bytes;
        c->stuck = 0;
    }

    cache_held_check(c, before, evicted, c->cf->store_min_free);
}


long long
cache_free_now(cache_t *c, long long need)
{
    long long  freed, bytes, before;
    time_t     now;
    size_t     n;

    if (c == NULL) {
        return 0;
    }

    /* a resolve under way: the pins held again first (a few manifests
     * read, bounded by the pins), so that a full disk takes nothing a
     * pin names */
    while (c->npending > 0) {
        cache_pins_slice(c);
    }

    now = time(NULL);
    freed = 0;

    cache_statvfs(c);
    before = c->fs_free;

    for (n = 0; n < CACHE_EMERGENCY_MAX && freed < need; n++) {
        bytes = cache_evict_one(c, now, 0);
        if (bytes == 0) {
            break;
        }

        freed += bytes;
    }

    log_warn("store \"%s\" is full: %lld bytes freed for a write that "
             "needs %lld", c->cf->store_path, freed, need);

    /* and the free space read again */
    cache_held_check(c, before, freed, need);

    if (freed > 0) {
        c->emergencies++;
    }

    return freed;
}


void
cache_tick(cache_t *c)
{
    if (c == NULL || c->loading) {
        return;
    }

    cache_statvfs(c);

    if (c->pins_dirty && c->npending == 0) {
        cache_pins_resolve(c);
    }

    if (!c->evicting && cache_should_evict(c, time(NULL))) {
        c->evicting = 1;
        cache_kick(c);
    }
}


void
cache_state(cache_t *c, stats_store_t *st)
{
    memset(st, 0, sizeof(stats_store_t));
    st->load_seconds = -1;

    if (c == NULL) {
        return;
    }

    st->bytes = c->bytes;
    st->files = c->files;
    st->max = c->max;
    st->high = cache_high(c);
    st->low = cache_low(c);
    st->reserved = c->reserved;
    st->loading = c->loading;
    st->evicting = c->evicting;
    st->load_seconds = c->load_seconds;
    st->evictions = c->evictions;
    st->evicted_bytes = c->evicted_bytes;
    st->emergencies = c->emergencies;
    st->fs_free = c->fs_free;
    st->min_free = c->cf->store_min_free;
    st->pins = c->npins;
    st->pinned_bytes = c->pinned_bytes;
    st->pinned_files = c->pinned_files;
}



/* Pins. */


static int
cache_spec_copy(oci_image_spec_t *to, const oci_image_spec_t *from)
{
    size_t  i;

    memset(to, 0, sizeof(oci_image_spec_t));
    to->ref = from->ref;

    if (from->n_platforms == 0) {
        return OCI_OK;
    }

    to->platforms = calloc(from->n_platforms + 1, sizeof(char *));
    if (to->platforms == NULL) {
        return OCI_ENOMEM;
    }

    for (i = 0; i < from->n_platforms; i++) {
        to->platforms[i] = strdup(from->platforms[i]);

        if (to->platforms[i] == NULL) {
            cache_spec_free(to);
            return OCI_ENOMEM;
        }

        to->n_platforms++;
    }

    return OCI_OK;
}


static void
cache_spec_free(oci_image_spec_t *spec)
{
    size_t  i;

    for (i = 0; i < spec->n_platforms; i++) {
        free(spec->platforms[i]);
    }

    free(spec->platforms);
    memset(spec, 0, sizeof(oci_image_spec_t));
}


static uint32_t
cache_pin_hash(const char *hex)
{
    uint32_t  h;

    /* a digest is uniform already */
    memcpy(&h, hex, sizeof(h));

    return h;
}


static cache_pin_t *
cache_pin_find(cache_t *c, const char *hex)
{
    queue_t      *b, *q;
    cache_pin_t  *p;

    b = &c->pin_buckets[cache_pin_hash(hex) % CACHE_PIN_BUCKETS];

    for (q = queue_head(b); q != queue_sentinel(b); q = queue_next(q)) {
        p = queue_data(q, cache_pin_t, link);

        if (memcmp(p->hex, hex, OCI_SHA256_HEX_LEN) == 0) {
            return p;
        }
    }

    return NULL;
}


/* Queue p for its manifest to be read (and its entry pinned). */
static void
cache_pin_pend(cache_t *c, cache_pin_t *p)
{
    cache_pin_t  **a;
    size_t         cap;

    cap = c->pending_cap;

    if (c->npending == cap) {
        cap = cap == 0 ? 64 : cap * 2;

        a = realloc(c->pending, cap * sizeof(cache_pin_t *));
        if (a == NULL) {
            log_error("out of memory for the pins");
            return;
        }

        c->pending = a;
        c->pending_cap = cap;
    }

    c->pending[c->npending++] = p;

    if (c->npending == 1) {
        cache_kick(c);
    }
}


/* Hold the digest "sha256:<hex>" (or a bare hex) for pin spec. */
static void
cache_pin_add(cache_t *c, const char *digest, size_t spec)
{
    cache_pin_t  *p;
    char          hex[OCI_SHA256_HEX_LEN + 1];

    if (oci_digest_parse(digest, strlen(digest), hex) != OCI_OK) {
        return;
    }

    if (cache_pin_find(c, hex) != NULL) {
        return;
    }

    if (c->npinned == CACHE_PINNED_MAX) {
        if (!c->pins_full) {
            log_warn("store: the pins hold %d digests, the most there may "
                     "be; the rest of what they name may be evicted",
                     CACHE_PINNED_MAX);
            c->pins_full = 1;
        }

        return;
    }

    p = malloc(sizeof(cache_pin_t));
    if (p == NULL) {
        log_error("out of memory for the pins");
        return;
    }

    memcpy(p->hex, hex, sizeof(hex));
    p->spec = spec;
    queue_insert_tail(&c->pin_buckets[cache_pin_hash(hex)
                                      % CACHE_PIN_BUCKETS], &p->link);
    c->npinned++;

    cache_pin_pend(c, p);
}


static void
cache_pins_clear(cache_t *c)
{
    queue_t  *b;
    size_t    i;

    for (i = 0; i < CACHE_PIN_BUCKETS; i++) {
        b = &c->pin_buckets[i];

        while (!queue_empty(b)) {
            cache_pin_t  *p = queue_data(queue_head(b), cache_pin_t, link);

            queue_remove(&p->link);
            free(p);
        }
    }

    c->npinned = 0;
    c->npending = 0;
    c->pins_full = 0;
}


/* Take e off the LRU list: no eviction. */
static void
cache_entry_pin(cache_t *c, cache_entry_t *e)
{
    if (e->pinned) {
        return;
    }

    e->pinned = 1;
    queue_remove(&e->lru_link);
    queue_insert_tail(&c->pinned, &e->lru_link);
    c->pinned_bytes += e->bytes;
    c->pinned_files++;
}


/* Every pinned entry back into the LRU list, in the order of use. */
static void
cache_pins_release(cache_t *c)
{
    cache_entry_t  **all, *e;
    queue_t         *q;
    size_t           i, n;

    if (c->pinned_files == 0) {
        return;
    }

    all = malloc(c->pinned_files * sizeof(cache_entry_t *));
    n = 0;

    while (!queue_empty(&c->pinned)) {
        e = queue_data(queue_head(&c->pinned), cache_entry_t, lru_link);
        queue_remove(&e->lru_link);
        e->pinned = 0;

        if (all != NULL) {
            all[n++] = e;

        } else {
            /* out of memory: the young end, the safe side */
            queue_insert_tail(&c->lru, &e->lru_link);
        }
    }

    c->pinned_bytes = 0;
    c->pinned_files = 0;

    if (all == NULL) {
        return;
    }

    qsort(all, n, sizeof(cache_entry_t *), cache_cmp_used);

    /* merge into the list, which is in the order of use */
    q = queue_head(&c->lru);

    for (i = 0; i < n; i++) {
        while (q != queue_sentinel(&c->lru)
               && queue_data(q, cache_entry_t, lru_link)->used
                  <= all[i]->used)
        {
            q = queue_next(q);
        }

        queue_insert_tail(q, &all[i]->lru_link);  /* before q */
    }

    free(all);
}


/* Split "tags/<registry>/<name>/@<tag>" in place into its parts; 0, or
 * -1 if path is no tag record. */
static int
cache_tag_parts(const char *path, char *buf, size_t cap, char **registry,
    char **name, char **tag)
{
    char  *slash, *at;

    if (strncmp(path, "tags/", 5) != 0
        || (size_t) snprintf(buf, cap, "%s", path + 5) >= cap)
    {
        return -1;
    }

    slash = strchr(buf, '/');
    at = strstr(buf, "/@");

    if (slash == NULL || at == NULL || at <= slash) {
        return -1;
    }

    *slash = '\0';
    *at = '\0';
    *registry = buf;
    *name = slash + 1;
    *tag = at + 2;

    return 0;
}


/* The pin that names the tag record at path, or -1. */
static long
cache_pin_spec_of(cache_t *c, const char *path, oci_tag_record_t *rec)
{
    char    buf[OCI_PATH_MAX];
    char   *registry, *name, *tag;
    size_t  i;

    if (cache_tag_parts(path, buf, sizeof(buf), &registry, &name, &tag)
        != 0)
    {
        return -1;
    }

    for (i = 0; i < c->npins; i++) {
        if (oci_imageref_match(&c->pins[i].ref, registry, name, tag)) {
            if (rec != NULL
                && oci_tag_record_read(c->cf->store_path, registry, name,
                                       tag, rec)
                   != OCI_OK)
            {
                return -1;
            }

            return (long) i;
        }
    }

    return -1;
}


/* All over again: the digests the pins name directly and through the tag
 * records in the index; their manifests are read in slices. */
static void
cache_pins_resolve(cache_t *c)
{
    oci_tag_record_t   rec;
    cache_entry_t     *e, **tags, **more;
    queue_t           *q;
    size_t             i, ntags;
    long               spec;

    c->pins_dirty = 0;

    cache_pins_release(c);
    cache_pins_clear(c);

    if (c->npins == 0) {
        return;
    }

    for (i = 0; i < c->npins; i++) {
        if (c->pins[i].ref.digest[0] != '\0') {
            cache_pin_add(c, c->pins[i].ref.digest, i);
        }
    }

    /* adding only queues, and the records are pinned after the walk: the
     * list stays as it is while it is walked */
    tags = NULL;
    ntags = 0;
    q = queue_head(&c->lru);

    while (q != queue_sentinel(&c->lru)) {
        e = queue_data(q, cache_entry_t, lru_link);
        q = queue_next(q);

        spec = cache_pin_spec_of(c, e->path, &rec);
        if (spec < 0) {
            continue;
        }

        cache_pin_add(c, rec.digest, (size_t) spec);

        /* the record too: an image whose tag is gone needs the upstream
         * to be pulled by tag again */
        if (ntags % 64 == 0) {
            more = realloc(tags, (ntags + 64) * sizeof(cache_entry_t *));
            if (more == NULL) {
                log_error("out of memory for the pins");
                break;
            }

            tags = more;
        }

        tags[ntags++] = e;
    }

    for (i = 0; i < ntags; i++) {
        cache_entry_pin(c, tags[i]);
    }

    free(tags);
}


/* Up to CACHE_PIN_SLICE digests: their entries pinned, their manifests
 * read for what they name. */
static void
cache_pins_slice(cache_t *c)
{
    const oci_image_spec_t  *spec;
    cache_entry_t           *e;
    cache_pin_t             *p;
    oci_image_t              img;
    char                     path[96];
    size_t                   n, i;

    for (n = 0; n < CACHE_PIN_SLICE && c->npending > 0; n++) {
        p = c->pending[--c->npending];

        snprintf(path, sizeof(path), "sha256/%.2s/%s", p->hex, p->hex);
        e = cache_find(c, path);

        if (e == NULL) {
            continue;               /* pinned once it is stored */
        }

        cache_entry_pin(c, e);

        if (oci_image_read(c->cf->store_path, p->hex, &img) != OCI_OK) {
            continue;               /* a blob, or not a manifest */
        }

        spec = &c->pins[p->spec < c->npins ? p->spec : 0];

        if (img.kind == OCI_IMAGE_MANIFEST && img.config.digest[0] != '\0') {
            cache_pin_add(c, img.config.digest, p->spec);
        }

        for (i = 0; i < img.n; i++) {
            if (img.kind == OCI_IMAGE_INDEX
                && !oci_platform_match(spec->platforms, spec->n_platforms,
                                       img.items[i].platform))
            {
                continue;
            }

            cache_pin_add(c, img.items[i].digest, p->spec);
        }

        oci_image_free(&img);
    }

    if (c->npending > 0) {
        return;
    }

    if (c->pinned_bytes > cache_high(c)) {
        if (!c->pins_over) {
            log_warn("store \"%s\": the pins alone hold %lld bytes, above "
                     "the high watermark (%lld bytes): eviction cannot "
                     "bring the store down to the low watermark",
                     c->cf->store_path, c->pinned_bytes, cache_high(c));
            c->pins_over = 1;
        }

    } else {
        c->pins_over = 0;
    }
}


/* A file the fetcher just wrote: a pinned tag record moved (resolve
 * again at the next tick), a digest a pin holds arrived. */
static void
cache_pins_added(cache_t *c, cache_entry_t *e)
{
    cache_pin_t       *p;
    oci_tag_record_t   rec;
    long               spec;

    if (c->npins == 0) {
        return;
    }

    if (strncmp(e->path, "tags/", 5) == 0) {
        spec = cache_pin_spec_of(c, e->path, &rec);

        if (spec >= 0) {
            /* what the record names is held at once (eviction waits for
             * the pending digests), the record itself too; the digests
             * of what it named before go at the next tick's resolve */
            cache_entry_pin(c, e);
            cache_pin_add(c, rec.digest, (size_t) spec);
            c->pins_dirty = 1;
        }

        return;
    }

    if (strncmp(e->path, "sha256/", 7) == 0 && strlen(e->path) == 10 + 64) {
        p = cache_pin_find(c, e->path + 10);

        if (p != NULL) {
            cache_pin_pend(c, p);
        }
    }
}


int
cache_pin(cache_t *c, const oci_image_spec_t *spec)
{
    char    a[OCI_PATH_MAX], b[OCI_PATH_MAX];
    size_t  i;

    oci_imageref_format(&spec->ref, a, sizeof(a));

    for (i = 0; i < c->npins; i++) {
        oci_imageref_format(&c->pins[i].ref, b, sizeof(b));

        if (strcmp(a, b) == 0) {
            return OCI_EINVAL;
        }
    }

    if (c->npins == OCI_PINS_MAX) {
        return OCI_ERANGE;
    }

    if (cache_spec_copy(&c->pins[c->npins], spec) != OCI_OK) {
        return OCI_ENOMEM;
    }

    c->npins++;
    log_info("store: pinned %s", a);

    if (c->loaded) {
        cache_pins_resolve(c);
    }

    return OCI_OK;
}


int
cache_unpin(cache_t *c, const oci_imageref_t *ref)
{
    char    a[OCI_PATH_MAX], b[OCI_PATH_MAX];
    size_t  i;

    oci_imageref_format(ref, a, sizeof(a));

    for (i = 0; i < c->npins; i++) {
        oci_imageref_format(&c->pins[i].ref, b, sizeof(b));

        if (strcmp(a, b) == 0) {
            break;
        }
    }

    if (i == c->npins) {
        return OCI_ENOENT;
    }

    cache_spec_free(&c->pins[i]);
    memmove(&c->pins[i], &c->pins[i + 1],
            (c->npins - i - 1) * sizeof(oci_image_spec_t));
    c->npins--;
    memset(&c->pins[c->npins], 0, sizeof(oci_image_spec_t));

    log_info("store: unpinned %s", a);

    if (c->loaded) {
        cache_pins_resolve(c);
    }

    return OCI_OK;
}


size_t
cache_pin_list(cache_t *c, const oci_image_spec_t **specs)
{
    *specs = c->pins;
    return c->npins;
}


int
cache_is_pinned(cache_t *c, const char *hex)
{
    return c != NULL && cache_pin_find(c, hex) != NULL;
}


int
cache_purge(cache_t *c, const char *rel, long long *bytes)
{
    cache_entry_t  *e;
    char            types[96];
    int             removed;

    *bytes = 0;
    e = cache_find(c, rel);

    if (e != NULL && e->pinned) {
        return OCI_EINVAL;
    }

    if (unlinkat(c->rootfd, rel, 0) != 0) {
        if (errno != ENOENT) {
            log_error("unlink(\"%s/%s\") failed: %s", c->cf->store_path,
                      rel, strerror(errno));
            return OCI_EIO;
        }

        removed = 0;

    } else {
        removed = 1;
    }

    if (strncmp(rel, "sha256/", 7) == 0) {
        snprintf(types, sizeof(types), "types/%s", rel);

        if (unlinkat(c->rootfd, types, 0) != 0 && errno != ENOENT) {
            log_error("unlink(\"%s/%s\") failed: %s", c->cf->store_path,
                      types, strerror(errno));
        }
    }

    if (e != NULL) {
        *bytes = e->bytes;
        c->fs_free += e->bytes;
        cache_entry_free(c, e);
    }

    if (removed) {
        log_info("store: purged %s", rel);
    }

    return removed ? OCI_OK : OCI_ENOENT;
}


size_t
cache_next(cache_t *c, size_t n, cache_each_pt each, void *data)
{
    cache_entry_t  *e;
    queue_t        *q;
    time_t          now;
    size_t          i;

    now = time(NULL);
    i = 0;

    for (q = queue_head(&c->lru); q != queue_sentinel(&c->lru) && i < n;
         q = queue_next(q))
    {
        e = queue_data(q, cache_entry_t, lru_link);

        if (now - e->used < CACHE_GRACE) {
            break;                  /* it and all after it are too young */
        }

        each(e->path, e->bytes, e->used, data);
        i++;
    }

    return i;
}
