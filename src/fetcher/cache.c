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

#include "oci_ref.h"
#include "cache.h"
#include "log.h"
#include "queue.h"

#define CACHE_BUCKETS    65536
#define CACHE_DEPTH_MAX  64          /* directories open while loading */

typedef struct {
    queue_t     hash_link;
    queue_t     lru_link;           /* the oldest use first */
    long long   bytes;              /* on disk */
    time_t      used;               /* the last use */
    time_t      touched;            /* the last use written to disk */
    char        path[];             /* relative to the root */
} cache_entry_t;

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

    /* loading */
    int                  loading;
    int                  loaded;
    struct timespec      load_started;
    double               load_seconds;
    size_t               top;       /* the next of cache_tops[] */
    cache_level_t        level[CACHE_DEPTH_MAX];
    int                  depth;     /* levels open */
    char                 walk_path[OCI_PATH_MAX];

    int                  evicting;
    int                  stuck;     /* warned: nothing may go */
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
static void cache_evict_slice(cache_t *c);
static int cache_should_evict(cache_t *c, time_t now);
static long long cache_evict_one(cache_t *c, time_t now, int inactive_only);
static void cache_statvfs(cache_t *c);


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
        queue_init(&e->lru_link);
        queue_insert_tail(&c->buckets[cache_hash(path) % CACHE_BUCKETS],
                          &e->hash_link);
        c->bytes += bytes;
        c->files++;
    }

    /* while loading, the order is put right by cache_load_done() */
    if (used >= e->used) {
        e->used = used;
        queue_remove(&e->lru_link);
        queue_insert_tail(&c->lru, &e->lru_link);
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
        cache_load_slice(c);

    } else if (c->evicting) {
        cache_evict_slice(c);
    }

    if (c->loading || c->evicting) {
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


/* A file's last use: the later of its access and modification. */
static time_t
cache_stat_used(const struct stat *st)
{
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
                  cache_stat_used(&st), cache_stat_used(&st));
    }
}


static int
cache_cmp_used(const void *a, const void *b)
{
    const cache_entry_t  *x = *(cache_entry_t *const *) a;
    const cache_entry_t  *y = *(cache_entry_t *const *) b;

    return (x->used > y->used) - (x->used < y->used);
}


/* The walk is over: the LRU list in order of use, and eviction may go. */
static void
cache_load_done(cache_t *c)
{
    cache_entry_t   **all;
    struct timespec   now;
    queue_t          *q;
    size_t            i, n;

    c->loading = 0;
    c->loaded = 1;

    all = malloc((c->files + 1) * sizeof(cache_entry_t *));

    if (all == NULL) {
        log_error("out of memory: the store's index stays in the order "
                  "it was read");

    } else {
        n = 0;

        for (q = queue_head(&c->lru); q != queue_sentinel(&c->lru);
             q = queue_next(q))
        {
            all[n++] = queue_data(q, cache_entry_t, lru_link);
        }

        qsort(all, n, sizeof(cache_entry_t *), cache_cmp_used);
        queue_init(&c->lru);

        for (i = 0; i < n; i++) {
            queue_insert_tail(&c->lru, &all[i]->lru_link);
        }

        free(all);
    }

    clock_gettime(CLOCK_MONOTONIC, &now);
    c->load_seconds = (double) (now.tv_sec - c->load_started.tv_sec)
                      + (double) (now.tv_nsec - c->load_started.tv_nsec)
                        / 1e9;

    log_info("store \"%s\": %llu files, %lld bytes indexed in %.3f s",
             c->cf->store_path, c->files, c->bytes, c->load_seconds);

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
    const char   *rel;
    struct stat   st;
    time_t        now;

    if (c == NULL || (rel = cache_relative(c, path)) == NULL) {
        return;
    }

    if (fstatat(c->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return;
    }

    now = time(NULL);
    cache_put(c, rel, (long long) st.st_blocks * 512, now, now);

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

    if (now - e->touched < CACHE_TOUCH_INTERVAL) {
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
    }
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
           || c->fs_free < c->cf->store_min_free
           || cache_candidate(c, now, 1) != NULL;
}


/* Not done: above the low watermark, short of min_free, or an entry
 * inactive. */
static int
cache_must_go_on(cache_t *c, time_t now, int *inactive_only)
{
    *inactive_only = !(c->bytes + c->reserved > cache_low(c)
                       || c->fs_free < c->cf->store_min_free);

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
    c->fs_free += bytes;
    cache_entry_free(c, e);

    return bytes;
}


static void
cache_evict_slice(cache_t *c)
{
    time_t   now;
    size_t   n;
    int      inactive_only;

    now = time(NULL);
    cache_statvfs(c);

    for (n = 0; n < CACHE_EVICT_SLICE; n++) {
        if (!cache_must_go_on(c, now, &inactive_only)) {
            c->evicting = 0;
            c->stuck = 0;
            return;
        }

        if (cache_evict_one(c, now, inactive_only) == 0) {
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
            return;
        }

        c->stuck = 0;
    }
}


long long
cache_free_now(cache_t *c, long long need)
{
    long long  freed, bytes;
    time_t     now;
    size_t     n;

    if (c == NULL) {
        return 0;
    }

    now = time(NULL);
    freed = 0;

    for (n = 0; n < CACHE_EMERGENCY_MAX && freed < need; n++) {
        bytes = cache_evict_one(c, now, 0);
        if (bytes == 0) {
            break;
        }

        freed += bytes;
    }

    cache_statvfs(c);

    log_warn("store \"%s\" is full: %lld bytes freed for a write that "
             "needs %lld", c->cf->store_path, freed, need);

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
}
