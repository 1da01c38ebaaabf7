/*
 * Unit tests for src/fetcher/cache.c on a real temp store: the index is
 * loaded in slices from the files' times, eviction takes the least
 * recently used files from the high to the low watermark (a manifest's
 * types/ line with it), a use moves a file to the young end and reaches
 * the disk only past CACHE_TOUCH_INTERVAL, files used within CACHE_GRACE
 * never go, store.recency = false (download time alone), store.inactive,
 * reservations, min_free (and the warning when evicted files are still
 * open) and the answer to ENOSPC.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "oci_image.h"
#include "oci_ref.h"
#include "oci_store.h"
#include "cache.h"
#include "loop.h"
#include "test_util.h"

#define NBLOBS      12
#define BLOB_BYTES  (64 * 1024)


typedef struct {
    char           root[64];
    oci_config_t   cf;
    loop_t        *loop;
    cache_t       *cache;
    long long      b;               /* bytes one blob takes on disk */
} fixture_t;


static int
setup(void **state)
{
    fixture_t  *f;
    char        path[128];

    f = calloc(1, sizeof(fixture_t));
    assert_non_null(f);

    strcpy(f->root, "/tmp/oci-test-cache.XXXXXX");
    assert_non_null(mkdtemp(f->root));

    snprintf(path, sizeof(path), "%s/sha256", f->root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/types", f->root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/types/sha256", f->root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/tmp", f->root);
    assert_int_equal(mkdir(path, 0755), 0);

    f->cf.store_path = f->root;
    f->cf.store_high_watermark = 90;
    f->cf.store_low_watermark = 50;
    f->cf.store_max_size = 1LL << 40;
    f->cf.store_recency = 1;

    f->loop = loop_create();
    assert_non_null(f->loop);

    *state = f;
    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    cache_destroy(f->cache);
    loop_destroy(f->loop);
    umount2(f->root, MNT_DETACH);       /* a test's tmpfs, if any */
    test_rm_rf(f->root);
    free(f);

    return 0;
}


/* The digest of blob i: 64 hex digits. */
static void
digest_of(int i, char *hex)
{
    snprintf(hex, 65, "%02x%062d", (unsigned) (i & 0xff), 0);
}


/* Write root/rel with bytes of data, last used age seconds ago (both
 * times).  The bytes it takes on disk. */
static long long
put_file(fixture_t *f, const char *rel, size_t bytes, time_t age)
{
    char             path[256], dir[256], *buf;
    struct timespec  ts[2];
    struct stat      st;
    int              fd;

    snprintf(path, sizeof(path), "%s/%s", f->root, rel);

    /* the two-digit folder of a blob */
    if (strncmp(rel, "sha256/", 7) == 0 && strchr(rel + 7, '/') != NULL) {
        snprintf(dir, sizeof(dir), "%s/%.9s", f->root, rel);
        mkdir(dir, 0755);
    }

    buf = malloc(bytes + 1);
    assert_non_null(buf);
    memset(buf, 'x', bytes + 1);

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd != -1);
    assert_true(write(fd, buf, bytes) == (ssize_t) bytes);
    assert_int_equal(close(fd), 0);
    free(buf);

    ts[0].tv_sec = time(NULL) - age;
    ts[0].tv_nsec = 0;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);

    assert_int_equal(stat(path, &st), 0);
    return (long long) st.st_blocks * 512;
}


static void
blob_rel(int i, char *rel, size_t cap)
{
    char  hex[65];

    digest_of(i, hex);
    snprintf(rel, cap, "sha256/%.2s/%s", hex, hex);
}


static int
exists(fixture_t *f, const char *rel)
{
    char         path[256];
    struct stat  st;

    snprintf(path, sizeof(path), "%s/%s", f->root, rel);
    return stat(path, &st) == 0;
}


static int
blob_exists(fixture_t *f, int i)
{
    char  rel[128];

    blob_rel(i, rel, sizeof(rel));
    return exists(f, rel);
}


static void
abs_path(fixture_t *f, const char *rel, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", f->root, rel);
}


/* NBLOBS blobs, blob i used base + 10 * i seconds ago (0 the youngest). */
static void
put_blobs(fixture_t *f, time_t base)
{
    char  rel[128];
    int   i;

    for (i = 0; i < NBLOBS; i++) {
        blob_rel(i, rel, sizeof(rel));
        f->b = put_file(f, rel, BLOB_BYTES, base + 10 * i);
    }
}


static stats_store_t
state_of(fixture_t *f)
{
    stats_store_t  st;

    cache_state(f->cache, &st);
    return st;
}


/* Run the loop until the cache neither loads nor evicts (bounded). */
static void
settle(fixture_t *f)
{
    stats_store_t  st;
    int            n;

    for (n = 0; n < 10000; n++) {
        st = state_of(f);

        if (!st.loading && !st.evicting) {
            return;
        }

        loop_once(f->loop, 100);
    }

    fail_msg("the cache did not settle");
}


static void
start(fixture_t *f)
{
    f->cache = cache_create(&f->cf, f->loop);
    assert_non_null(f->cache);
    cache_start(f->cache);
    settle(f);
    assert_true(state_of(f).load_seconds >= 0);
}


/* The walk indexes sha256/, tags/, taglists/ and referrers/ with the
 * bytes on disk, and neither tmp/ nor types/; nothing is evicted under
 * the watermark. */
static void
test_load(void **state)
{
    fixture_t      *f = *state;
    stats_store_t   st;
    long long       want;
    char            path[256];

    put_blobs(f, 1000);
    want = NBLOBS * f->b;

    snprintf(path, sizeof(path), "%s/tags", f->root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/tags/docker.io", f->root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/tags/docker.io/library", f->root);
    assert_int_equal(mkdir(path, 0755), 0);
    want += put_file(f, "tags/docker.io/library/alpine", 100, 5000);
    put_file(f, "tmp/partial", 4096, 5000);
    put_file(f, "types/sha256/00", 50, 5000);

    start(f);

    st = state_of(f);
    assert_int_equal(st.files, NBLOBS + 1);
    assert_true(st.bytes == want);
    assert_true(st.max == 1LL << 40);
    assert_true(st.high == (1LL << 40) * 9 / 10);
    assert_true(st.low == (1LL << 40) / 2);
    assert_int_equal(st.evictions, 0);
    assert_true(exists(f, "tags/docker.io/library/alpine"));
}


/* Uses that span months are ordered in lists of a few minutes: files
 * days apart still go oldest first. */
static void
test_load_order_long_span(void **state)
{
    fixture_t  *f = *state;
    char        rel[128];
    int         i, order[NBLOBS] = { 7, 2, 11, 0, 5, 9, 1, 10, 3, 8, 6, 4 };

    /* blob order[k] used k * 17 days ago (up to 187 days) */
    for (i = 0; i < NBLOBS; i++) {
        blob_rel(order[i], rel, sizeof(rel));
        f->b = put_file(f, rel, BLOB_BYTES, (time_t) i * 17 * 86400);
    }

    /* 12 blobs over 10 * 90%: the 7 oldest go */
    f->cf.store_max_size = 10 * f->b;
    start(f);

    assert_int_equal(state_of(f).files, 5);

    for (i = 0; i < NBLOBS; i++) {
        assert_int_equal(blob_exists(f, order[i]), i < 5);
    }
}


/* Past the high watermark the oldest files go until the low one; a
 * manifest's types/ line goes with it. */
static void
test_evict_lru(void **state)
{
    fixture_t      *f = *state;
    stats_store_t   st;
    char            rel[128], types[160];
    int             i;

    put_blobs(f, 1000);

    /* the oldest is a manifest */
    blob_rel(NBLOBS - 1, rel, sizeof(rel));
    snprintf(types, sizeof(types), "types/%s", rel);
    snprintf(rel, sizeof(rel), "%s/types/sha256/0b", f->root);
    assert_int_equal(mkdir(rel, 0755), 0);
    put_file(f, types, 60, 1000);

    /* 12 blobs over 10 * 90%: down to 10 * 50%, the 5 youngest stay */
    f->cf.store_max_size = 10 * f->b;
    start(f);

    st = state_of(f);
    assert_int_equal(st.files, 5);
    assert_true(st.bytes == 5 * f->b);
    assert_int_equal(st.evictions, NBLOBS - 5);
    assert_true(st.evicted_bytes == (unsigned long long) (NBLOBS - 5) * f->b);

    for (i = 0; i < NBLOBS; i++) {
        assert_int_equal(blob_exists(f, i), i < 5);
    }

    assert_false(exists(f, types));
}


/* A use within CACHE_TOUCH_INTERVAL moves the file to the young end in
 * memory and costs no write to the disk; a later write pushes the store
 * over and the used file outlives younger ones. */
static void
test_used_moves(void **state)
{
    fixture_t      *f = *state;
    stats_store_t   st;
    struct stat     before, after;
    char            rel[128], path[256];
    int             i;

    put_blobs(f, 100);                  /* 100 .. 210 s: < 600 */

    /* 12 blobs under 14 * 90% = 12.6 */
    f->cf.store_max_size = 14 * f->b;
    start(f);
    assert_int_equal(state_of(f).evictions, 0);

    blob_rel(NBLOBS - 1, rel, sizeof(rel));
    abs_path(f, rel, path, sizeof(path));
    assert_int_equal(stat(path, &before), 0);

    cache_used(f->cache, path);

    assert_int_equal(stat(path, &after), 0);
    assert_true(after.st_atim.tv_sec == before.st_atim.tv_sec);

    /* a 13th blob: 13 > 12.6, down to 7: the six oldest but the used */
    blob_rel(NBLOBS, rel, sizeof(rel));
    put_file(f, rel, BLOB_BYTES, 0);
    abs_path(f, rel, path, sizeof(path));
    cache_added(f->cache, path);
    settle(f);

    st = state_of(f);
    assert_int_equal(st.files, 7);
    assert_true(blob_exists(f, NBLOBS - 1));
    assert_true(blob_exists(f, NBLOBS));

    for (i = 0; i < NBLOBS - 1; i++) {
        assert_int_equal(blob_exists(f, i), i < 5);
    }
}


/* Past CACHE_TOUCH_INTERVAL a use reaches the disk (the access time),
 * so a restart of the fetcher keeps the order. */
static void
test_used_survives_restart(void **state)
{
    fixture_t        *f = *state;
    struct stat       st;
    struct timespec   ts[2];
    char              rel[128], path[256];
    time_t            now;
    int               i;

    put_blobs(f, 1000);
    start(f);

    blob_rel(NBLOBS - 1, rel, sizeof(rel));
    abs_path(f, rel, path, sizeof(path));
    now = time(NULL);
    cache_used(f->cache, path);

    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_atim.tv_sec >= now);
    assert_true(st.st_mtim.tv_sec < now - 1000);    /* the content's */

    /* a second use at once is not written again */
    ts[0].tv_sec = now - 50;
    ts[0].tv_nsec = 0;
    ts[1].tv_nsec = UTIME_OMIT;
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);

    cache_used(f->cache, path);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_atim.tv_sec == now - 50);

    cache_destroy(f->cache);
    f->cache = NULL;

    /* the restart: the used blob is now the youngest */
    f->cf.store_max_size = 10 * f->b;
    start(f);

    assert_int_equal(state_of(f).files, 5);
    assert_true(blob_exists(f, NBLOBS - 1));

    for (i = 0; i < NBLOBS - 1; i++) {
        assert_int_equal(blob_exists(f, i), i < 4);
    }
}


/* store.recency = false: a use reaches no disk, and the load orders by
 * the modification time (the download) alone, whatever the access time
 * says. */
static void
test_recency_off(void **state)
{
    fixture_t        *f = *state;
    struct stat       before, after;
    struct timespec   ts[2];
    char              rel[128], path[256];
    int               i;

    put_blobs(f, 1000);
    f->cf.store_recency = 0;

    /* the oldest download was used just now (a run with recency on, or
     * the kernel, wrote its access time) */
    blob_rel(NBLOBS - 1, rel, sizeof(rel));
    abs_path(f, rel, path, sizeof(path));
    ts[0].tv_sec = time(NULL);
    ts[0].tv_nsec = 0;
    ts[1].tv_nsec = UTIME_OMIT;
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);

    start(f);

    /* past CACHE_TOUCH_INTERVAL, and still nothing written */
    blob_rel(0, rel, sizeof(rel));
    abs_path(f, rel, path, sizeof(path));
    assert_int_equal(stat(path, &before), 0);
    cache_used(f->cache, path);
    assert_int_equal(stat(path, &after), 0);
    assert_true(after.st_atim.tv_sec == before.st_atim.tv_sec);
    assert_true(after.st_atim.tv_sec < time(NULL) - 900);

    cache_destroy(f->cache);
    f->cache = NULL;

    /* 12 blobs over 10 * 90%: the 7 oldest downloads go, the one with
     * the fresh access time too */
    f->cf.store_max_size = 10 * f->b;
    start(f);

    assert_int_equal(state_of(f).files, 5);

    for (i = 0; i < NBLOBS; i++) {
        assert_int_equal(blob_exists(f, i), i < 5);
    }
}


/* Files used within CACHE_GRACE never go, even over the watermark. */
static void
test_grace(void **state)
{
    fixture_t  *f = *state;
    char        rel[128];
    int         i;

    for (i = 0; i < 4; i++) {
        blob_rel(i, rel, sizeof(rel));
        f->b = put_file(f, rel, BLOB_BYTES, 0);
    }

    blob_rel(10, rel, sizeof(rel));
    put_file(f, rel, BLOB_BYTES, 3600);

    /* 5 files over 2 * 90%: only the old one may go */
    f->cf.store_max_size = 2 * f->b;
    start(f);

    assert_int_equal(state_of(f).files, 4);
    assert_int_equal(state_of(f).evictions, 1);
    assert_false(blob_exists(f, 10));

    for (i = 0; i < 4; i++) {
        assert_true(blob_exists(f, i));
    }

    /* the next tick looks again, and still nothing may go */
    cache_tick(f->cache);
    settle(f);
    assert_int_equal(state_of(f).files, 4);
}


/* store.inactive: files unused that long go whatever the size. */
static void
test_inactive(void **state)
{
    fixture_t  *f = *state;
    int         i;

    put_blobs(f, 1000);                 /* 1000 .. 1110 s */
    f->cf.store_inactive = 1055;
    start(f);

    /* 1060 .. 1110: six go */
    assert_int_equal(state_of(f).files, 6);

    for (i = 0; i < NBLOBS; i++) {
        assert_int_equal(blob_exists(f, i), i < 6);
    }
}


/* A reservation for downloads makes room ahead of them; released, it
 * is gone from the sums. */
static void
test_reserve(void **state)
{
    fixture_t  *f = *state;

    put_blobs(f, 1000);
    f->cf.store_max_size = 14 * f->b;
    start(f);
    assert_int_equal(state_of(f).evictions, 0);

    /* 12 + 2 reserved > 12.6: down to 7 with the reservation */
    cache_reserve(f->cache, 2 * f->b);
    settle(f);
    assert_true(state_of(f).reserved == 2 * f->b);
    assert_int_equal(state_of(f).files, 5);

    cache_reserve(f->cache, -3 * f->b);
    assert_true(state_of(f).reserved == 0);

    /* without a cache, nothing happens */
    cache_reserve(NULL, 1);
    cache_used(NULL, "/x");
    cache_added(NULL, "/x");
    cache_removed(NULL, "/x");
    cache_tick(NULL);
    assert_true(cache_free_now(NULL, 1) == 0);
}


/* Below min_free on the filesystem, everything that may go goes. */
static void
test_min_free(void **state)
{
    fixture_t  *f = *state;
    char        rel[128];

    put_blobs(f, 1000);
    blob_rel(NBLOBS, rel, sizeof(rel));
    put_file(f, rel, BLOB_BYTES, 0);

    f->cf.store_min_free = 1LL << 60;
    start(f);

    assert_int_equal(state_of(f).files, 1);
    assert_true(blob_exists(f, NBLOBS));
}


/*
 * Below min_free, HELD_FILES files of HELD_BYTES (more than one slice of
 * eviction) evicted, with a descriptor of each kept open if hold (as an
 * nginx worker's open_file_cache keeps one).  What the cache logged
 * meanwhile goes to buf.  The files are large so that what other
 * processes write to the same filesystem cannot pass for them.
 */
#define HELD_FILES  (CACHE_EVICT_SLICE + 6)
#define HELD_BYTES  (256 * 1024)

static void
evict_all(fixture_t *f, int hold, char *buf, size_t cap)
{
    char     rel[128], path[256], log[] = "/tmp/oci-test-cache-log.XXXXXX";
    int      fds[HELD_FILES], i, fd, saved;
    ssize_t  n;

    for (i = 0; i < HELD_FILES; i++) {
        blob_rel(i, rel, sizeof(rel));
        put_file(f, rel, HELD_BYTES, 1000 + i);

        fds[i] = -1;

        if (hold) {
            abs_path(f, rel, path, sizeof(path));
            fds[i] = open(path, O_RDONLY);
            assert_true(fds[i] != -1);
        }
    }

    f->cf.store_min_free = 1LL << 60;

    fd = mkstemp(log);
    assert_true(fd != -1);
    saved = dup(STDERR_FILENO);
    assert_true(saved != -1);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);

    start(f);

    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);

    n = pread(fd, buf, cap - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
    unlink(log);

    for (i = 0; i < HELD_FILES; i++) {
        if (fds[i] != -1) {
            close(fds[i]);
        }
    }

    assert_int_equal(state_of(f).files, 0);
}


static int
count_of(const char *text, const char *needle)
{
    int  n;

    for (n = 0; (text = strstr(text, needle)) != NULL; n++) {
        text += strlen(needle);
    }

    return n;
}


/* Evicted files still open give no space back: said once, although
 * every slice finds it so. */
static void
test_held_open(void **state)
{
    fixture_t  *f = *state;
    char        buf[8192];

    evict_all(f, 1, buf, sizeof(buf));
    assert_int_equal(count_of(buf, "evicted files are still open"), 1);
}


/* Evicted files nobody holds give their space back: not said. */
static void
test_held_none(void **state)
{
    fixture_t  *f = *state;
    char        buf[8192];

    evict_all(f, 0, buf, sizeof(buf));
    assert_int_equal(count_of(buf, "evicted files are still open"), 0);
}


/* Short of min_free by less than the oldest file, which a client still
 * reads: it is evicted, and its bytes count as coming back for
 * CACHE_HELD_SECONDS, so the next looks take nothing more although the
 * filesystem is as full as before.  On a tmpfs of its own, so that free
 * space moves only with the test (skipped where mounting is refused). */
static void
test_held_not_over_evicted(void **state)
{
    fixture_t       *f = *state;
    struct statvfs   fs;
    char             rel[128], path[256];
    int              fd, i;

    if (mount("tmpfs", f->root, "tmpfs", 0, "size=16m") != 0) {
        skip();
    }

    snprintf(path, sizeof(path), "%s/sha256", f->root);
    assert_int_equal(mkdir(path, 0755), 0);

    for (i = 0; i < 4; i++) {
        blob_rel(i, rel, sizeof(rel));
        f->b = put_file(f, rel, 1024 * 1024, 1000 - 10 * i);
    }

    blob_rel(0, rel, sizeof(rel));
    abs_path(f, rel, path, sizeof(path));
    fd = open(path, O_RDONLY);
    assert_true(fd != -1);

    assert_int_equal(statvfs(f->root, &fs), 0);
    f->cf.store_min_free = (long long) fs.f_bavail * (long long) fs.f_frsize
                           + f->b / 2;
    start(f);

    assert_int_equal(state_of(f).evictions, 1);
    assert_false(blob_exists(f, 0));

    for (i = 0; i < 3; i++) {
        cache_tick(f->cache);
        settle(f);
    }

    assert_int_equal(state_of(f).evictions, 1);
    assert_int_equal(state_of(f).files, 3);

    close(fd);
}


/* ENOSPC: the oldest files go at once until what is needed is free;
 * the young ones stay. */
static void
test_free_now(void **state)
{
    fixture_t      *f = *state;
    stats_store_t   st;
    long long       freed;
    char            rel[128], path[128];
    int             i;

    put_blobs(f, 1000);
    start(f);

    freed = cache_free_now(f->cache, 2 * f->b + 1);
    assert_true(freed == 3 * f->b);

    st = state_of(f);
    assert_int_equal(st.emergencies, 1);
    assert_int_equal(st.files, NBLOBS - 3);

    for (i = 0; i < NBLOBS; i++) {
        assert_int_equal(blob_exists(f, i), i < NBLOBS - 3);
    }

    /* nothing may go: 0, and the writer fails cleanly */
    cache_destroy(f->cache);
    f->cache = NULL;
    test_rm_rf(f->root);
    assert_int_equal(mkdir(f->root, 0755), 0);
    snprintf(path, sizeof(path), "%s/sha256", f->root);
    assert_int_equal(mkdir(path, 0755), 0);

    for (i = 0; i < 3; i++) {
        blob_rel(i, rel, sizeof(rel));
        put_file(f, rel, BLOB_BYTES, 0);
    }

    start(f);
    assert_true(cache_free_now(f->cache, 1) == 0);
    assert_int_equal(state_of(f).files, 3);
}


/* What the fetcher writes and removes keeps the sums; paths outside the
 * store are ignored. */
static void
test_added_removed(void **state)
{
    fixture_t      *f = *state;
    stats_store_t   st;
    char            rel[128], path[256], outside[256];

    put_blobs(f, 1000);
    start(f);

    blob_rel(NBLOBS, rel, sizeof(rel));
    put_file(f, rel, 3 * BLOB_BYTES, 0);
    abs_path(f, rel, path, sizeof(path));
    cache_added(f->cache, path);

    st = state_of(f);
    assert_int_equal(st.files, NBLOBS + 1);

    /* rewritten smaller: the bytes follow */
    put_file(f, rel, BLOB_BYTES, 0);
    cache_added(f->cache, path);
    st = state_of(f);
    assert_int_equal(st.files, NBLOBS + 1);
    assert_true(st.bytes == (NBLOBS + 1) * f->b);

    assert_int_equal(unlink(path), 0);
    cache_removed(f->cache, path);
    st = state_of(f);
    assert_int_equal(st.files, NBLOBS);
    assert_true(st.bytes == NBLOBS * f->b);

    /* a sibling folder whose name starts like the root's */
    snprintf(outside, sizeof(outside), "%s-other/sha256/x", f->root);
    cache_added(f->cache, outside);
    cache_used(f->cache, outside);
    cache_removed(f->cache, outside);
    assert_int_equal(state_of(f).files, NBLOBS);
}


/* Write a manifest of media type mt and body json as blob i (with its
 * types line), age seconds old; its digest in digest. */
static void
put_manifest(fixture_t *f, int i, const char *mt, const char *json,
    time_t age, char *digest)
{
    char  rel[128], hex[65], dir[128];

    blob_rel(i, rel, sizeof(rel));
    put_file(f, rel, 0, age);
    {
        char  path[256];
        FILE *fp;

        abs_path(f, rel, path, sizeof(path));
        fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(json, fp);
        fclose(fp);
    }

    digest_of(i, hex);
    snprintf(dir, sizeof(dir), "%s/types/sha256/%.2s", f->root, hex);
    mkdir(dir, 0755);
    assert_int_equal(oci_store_type_write(f->root, hex, mt, 0), OCI_OK);

    /* back to its age: the write above made it new */
    {
        char             path[256];
        struct timespec  ts[2];

        abs_path(f, rel, path, sizeof(path));
        ts[0].tv_sec = time(NULL) - age;
        ts[0].tv_nsec = 0;
        ts[1] = ts[0];
        assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    }

    snprintf(digest, 72, "sha256:%s", hex);
}


static void
put_tag(fixture_t *f, const char *name, const char *tag, const char *digest,
    time_t age)
{
    oci_tag_record_t  rec;
    char              path[512];
    struct timespec   ts[2];

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.digest, sizeof(rec.digest), "%s", digest);
    rec.size = 100;
    snprintf(rec.media_type, sizeof(rec.media_type), "%s",
             OCI_MT_OCI_MANIFEST);
    rec.fetched_at = (long long) (time(NULL) - age);

    assert_int_equal(oci_tag_record_write(f->root, "docker.io", name, tag,
                                          &rec, 0), OCI_OK);
    assert_int_equal(oci_store_tag_path(f->root, "docker.io", name, tag,
                                        path, sizeof(path)), OCI_OK);
    ts[0].tv_sec = time(NULL) - age;
    ts[0].tv_nsec = 0;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}


static void
desc(char *out, size_t cap, int i, long long size)
{
    char  hex[65];

    digest_of(i, hex);
    snprintf(out, cap, "{\"mediaType\":\"application/octet-stream\","
             "\"digest\":\"sha256:%s\",\"size\":%lld}", hex, size);
}


/* An image manifest (blob i) with config blob c and layer blobs l1, l2. */
static void
put_image(fixture_t *f, int i, int c, int l1, int l2, time_t age,
    char *digest)
{
    char  json[2048], dc[256], d1[256], d2[256], rel[128];

    blob_rel(c, rel, sizeof(rel));
    put_file(f, rel, 100, age);
    blob_rel(l1, rel, sizeof(rel));
    put_file(f, rel, BLOB_BYTES, age);
    blob_rel(l2, rel, sizeof(rel));
    put_file(f, rel, BLOB_BYTES, age);

    desc(dc, sizeof(dc), c, 100);
    desc(d1, sizeof(d1), l1, BLOB_BYTES);
    desc(d2, sizeof(d2), l2, BLOB_BYTES);
    snprintf(json, sizeof(json), "{\"schemaVersion\":2,\"mediaType\":\"%s\","
             "\"config\":%s,\"layers\":[%s,%s]}", OCI_MT_OCI_MANIFEST, dc,
             d1, d2);
    put_manifest(f, i, OCI_MT_OCI_MANIFEST, json, age, digest);
}


static void
pin_spec(oci_image_spec_t *spec, const char *ref)
{
    const char  *why;

    memset(spec, 0, sizeof(*spec));
    assert_int_equal(oci_imageref_parse(ref, strlen(ref), 1, &spec->ref,
                                        &why), OCI_OK);
}


/* Run the loop until the pins hold n files (bounded). */
static void
wait_pinned(fixture_t *f, unsigned long long n)
{
    int  i;

    for (i = 0; i < 1000 && state_of(f).pinned_files != n; i++) {
        loop_once(f->loop, 10);
    }

    settle(f);
    assert_int_equal(state_of(f).pinned_files, n);
}


/* A pinned image (tag record, manifest, config, layers) outlives the
 * oldest use and eviction to the low watermark; purge refuses it; once
 * unpinned it is the first to go. */
static void
test_pins(void **state)
{
    fixture_t         *f = *state;
    oci_image_spec_t   spec;
    oci_imageref_t     ref;
    char               m[72], rel[128];
    long long          bytes;
    int                i, kept;

    put_blobs(f, 1000);                         /* 0 .. 11 */
    put_image(f, 20, 21, 22, 23, 5000, m);      /* the oldest of all */
    put_tag(f, "library/app", "v1", m, 5000);
    put_image(f, 30, 31, 32, 33, 5000, m);      /* not pinned */

    pin_spec(&spec, "docker.io/library/app:v*");
    f->cf.pins = &spec;
    f->cf.n_pins = 1;

    /* 12 blobs and 4 layers over 10 * 90%: down to 5 blobs' worth */
    f->cf.store_max_size = 10 * f->b;
    start(f);
    wait_pinned(f, 5);

    for (i = 20; i < 24; i++) {
        assert_true(blob_exists(f, i));
    }

    assert_true(exists(f, "tags/docker.io/library/app/@v1"));
    assert_false(blob_exists(f, 32));
    assert_false(blob_exists(f, 30));
    assert_true(state_of(f).pinned_bytes >= 2 * f->b);
    assert_true(state_of(f).bytes <= 5 * f->b);
    assert_int_equal(state_of(f).pins, 1);

    /* purge refuses what a pin holds */
    blob_rel(22, rel, sizeof(rel));
    assert_int_equal(cache_purge(f->cache, rel, &bytes), OCI_EINVAL);
    assert_true(blob_exists(f, 22));
    assert_true(cache_is_pinned(f->cache, rel + 10));

    memcpy(&ref, &spec.ref, sizeof(ref));
    assert_int_equal(cache_pin(f->cache, &spec), OCI_EINVAL);  /* twice */
    assert_int_equal(cache_unpin(f->cache, &ref), OCI_OK);
    assert_int_equal(cache_unpin(f->cache, &ref), OCI_ENOENT);
    assert_int_equal(state_of(f).pinned_files, 0);
    assert_int_equal(state_of(f).pins, 0);

    /* unpinned, the image is the oldest: the next to go, more than the layers' worth frees the whole image
     * (all of it older than any other file) */
    kept = 0;

    for (i = 0; i < NBLOBS; i++) {
        kept += blob_exists(f, i);
    }

    assert_true(kept > 0);
    assert_true(cache_free_now(f->cache, 2 * f->b + 1) > 2 * f->b);
    assert_false(blob_exists(f, 22));
    assert_false(blob_exists(f, 23));

    for (i = 0; i < kept; i++) {
        assert_true(blob_exists(f, i));
    }
}


/* An index pinned for one platform holds that child and its blobs, not
 * the other's; a pin by digest at run time holds that image; a blob that
 * arrives after the pin is held at once. */
static void
test_pins_index(void **state)
{
    fixture_t         *f = *state;
    oci_image_spec_t   spec, by_digest;
    char               amd[72], arm[72], idx[72], late[72], json[2048];
    char               rel[128], path[256];
    char              *platforms[] = { (char *) "linux/amd64", NULL };

    put_image(f, 40, 41, 42, 43, 5000, amd);
    put_image(f, 50, 51, 52, 53, 5000, arm);
    snprintf(json, sizeof(json),
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":["
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":10,"
             "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":10,"
             "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}]}",
             OCI_MT_OCI_INDEX, OCI_MT_OCI_MANIFEST, amd, OCI_MT_OCI_MANIFEST,
             arm);
    put_manifest(f, 60, OCI_MT_OCI_INDEX, json, 5000, idx);
    put_tag(f, "multi", "1.0", idx, 5000);

    pin_spec(&spec, "docker.io/multi:1.0");
    spec.platforms = platforms;
    spec.n_platforms = 1;
    f->cf.pins = &spec;
    f->cf.n_pins = 1;
    f->cf.store_min_free = 1LL << 60;           /* evict all that may go */

    /* the amd64 child's second layer is not stored yet */
    blob_rel(43, rel, sizeof(rel));
    abs_path(f, rel, path, sizeof(path));
    assert_int_equal(unlink(path), 0);

    start(f);
    wait_pinned(f, 1 + 1 + 1 + 1 + 1);          /* tag, index, 40, 41, 42 */

    assert_true(blob_exists(f, 60) && blob_exists(f, 40)
                && blob_exists(f, 41) && blob_exists(f, 42));
    assert_false(blob_exists(f, 50));
    assert_false(blob_exists(f, 52));

    /* the missing layer arrives: held at once */
    put_file(f, rel, BLOB_BYTES, 0);
    cache_added(f->cache, path);
    wait_pinned(f, 6);

    /* by digest, at run time, with globs in the name */
    put_image(f, 70, 71, 72, 73, 0, late);
    snprintf(json, sizeof(json), "docker.io/any/*@%s", late);
    pin_spec(&by_digest, json);
    assert_int_equal(cache_pin(f->cache, &by_digest), OCI_OK);
    for (int i = 70; i < 74; i++) {
        blob_rel(i, rel, sizeof(rel));
        abs_path(f, rel, path, sizeof(path));
        cache_added(f->cache, path);
    }
    wait_pinned(f, 10);
    assert_int_equal(state_of(f).pins, 2);
}


/* Pins resolved again (a pin added at run time) while eviction is due:
 * the release of every pinned file and the slices that hold them again
 * must not let eviction take what a pin still holds, even when the
 * resolve takes more than one slice (12 images, 5 files each, more than
 * CACHE_PIN_SLICE digests). */
static void
test_pins_resolve_evicting(void **state)
{
    fixture_t         *f = *state;
    oci_image_spec_t   spec, more;
    char               m[72], tag[16];
    int                i;

    for (i = 0; i < 12; i++) {
        put_image(f, 100 + 4 * i, 101 + 4 * i, 102 + 4 * i, 103 + 4 * i,
                  5000 + i, m);
        snprintf(tag, sizeof(tag), "v%d", i);
        put_tag(f, "library/app", tag, m, 5000 + i);
    }

    pin_spec(&spec, "docker.io/library/app:v*");
    f->cf.pins = &spec;
    f->cf.n_pins = 1;
    start(f);
    wait_pinned(f, 12 * 5);

    /* short of free space: only the pins keep anything */
    f->cf.store_min_free = 1LL << 60;
    pin_spec(&more, "docker.io/library/other:1");
    assert_int_equal(cache_pin(f->cache, &more), OCI_OK);
    cache_tick(f->cache);
    wait_pinned(f, 12 * 5);

    for (i = 100; i < 148; i++) {
        assert_true(blob_exists(f, i));
    }
}


/* A pinned tag whose record is written while eviction is due (the record
 * and the manifest were evicted while unpinned, a pull brings them back):
 * what it names is held before any eviction slice runs, not at the next
 * tick's resolve. */
static void
test_pins_tag_written(void **state)
{
    fixture_t         *f = *state;
    oci_image_spec_t   spec;
    char               m[72], path[512];
    int                i;

    put_image(f, 80, 81, 82, 83, 5000, m);
    pin_spec(&spec, "docker.io/library/app:v1");
    f->cf.pins = &spec;
    f->cf.n_pins = 1;
    start(f);
    assert_int_equal(state_of(f).pinned_files, 0);

    f->cf.store_min_free = 1LL << 60;
    put_tag(f, "library/app", "v1", m, 0);
    assert_int_equal(oci_store_tag_path(f->root, "docker.io", "library/app",
                                        "v1", path, sizeof(path)), OCI_OK);
    cache_added(f->cache, path);
    settle(f);

    for (i = 80; i < 84; i++) {
        assert_true(blob_exists(f, i));
    }

    assert_int_equal(state_of(f).pinned_files, 5);
}


/* What eviction would take next, oldest first, young files left out. */
static void
each_next(const char *path, long long bytes, time_t used, void *data)
{
    char  *out = data;

    strcat(out, path + 7);      /* "xx/..." */
    out[strlen(out) - 62] = '\0';
    strcat(out, ",");
}


static void
test_next(void **state)
{
    fixture_t  *f = *state;
    char        out[1024], rel[128];

    put_blobs(f, 1000);
    blob_rel(NBLOBS, rel, sizeof(rel));
    put_file(f, rel, BLOB_BYTES, 0);            /* too young */
    start(f);

    out[0] = '\0';
    assert_int_equal(cache_next(f->cache, 3, each_next, out), 3);
    assert_string_equal(out, "0b/0b,0a/0a,09/09,");

    out[0] = '\0';
    assert_int_equal(cache_next(f->cache, 100, each_next, out), NBLOBS);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_order_long_span, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_evict_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_used_moves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_used_survives_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_recency_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inactive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_not_over_evicted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_free_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_added_removed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pins_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pins_resolve_evicting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pins_tag_written, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_next, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
