/*
 * Unit tests for src/fetcher/listcache.c, on real files in a temp dir: a
 * hit while the file is the one parsed, a miss (and the entry dropped)
 * once it was replaced, touched or removed, the LRU order under the
 * entry and byte bounds, a list larger than the whole cache, a bound of 0,
 * and the counters.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "listcache.h"
#include "test_util.h"


typedef struct {
    char  dir[64];
    char  path[4][OCI_PATH_MAX];
} fixture_t;


static int
setup(void **state)
{
    fixture_t  *f;
    int         i;

    f = calloc(1, sizeof(fixture_t));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ocitest-lists.XXXXXX");
    assert_non_null(mkdtemp(f->dir));

    for (i = 0; i < 4; i++) {
        snprintf(f->path[i], sizeof(f->path[i]), "%s/list%d", f->dir, i);
    }

    *state = f;

    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    test_rm_rf(f->dir);
    free(f);

    return 0;
}


/* Write text to path by rename(), as the store does; st gets its stat. */
static void
put_file(const char *path, const char *text, struct stat *st)
{
    char   tmp[OCI_PATH_MAX + 8];
    FILE  *fp;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fp = fopen(tmp, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(rename(tmp, path), 0);
    assert_int_equal(stat(path, st), 0);
}


static json_t *
array_of(const char *a, const char *b)
{
    json_t  *v;

    v = json_pack("[s, s]", a, b);
    assert_non_null(v);

    return v;
}


static void
test_hit_and_invalidation(void **state)
{
    fixture_t      *f = *state;
    listcache_t    *lc;
    json_t         *list, *got;
    struct stat     st, now;
    struct timespec times[2];
    stats_lists_t   s;

    lc = listcache_create(1 << 20, 10);
    assert_non_null(lc);

    put_file(f->path[0], "[\"a\",\"b\"]", &st);
    list = array_of("a", "b");

    /* nothing kept yet: a miss */
    assert_null(listcache_get(lc, f->path[0], &st));

    listcache_put(lc, f->path[0], &st, list, 100);
    assert_int_equal(list->refcount, 2);

    /* the same file: the same parse, a new reference */
    assert_int_equal(stat(f->path[0], &now), 0);
    got = listcache_get(lc, f->path[0], &now);
    assert_ptr_equal(got, list);
    assert_int_equal(list->refcount, 3);
    json_decref(got);

    listcache_state(lc, &s);
    assert_true(s.hits == 1 && s.misses == 1 && s.entries == 1);
    assert_int_equal(s.bytes, 100);

    /* the same bytes under a new inode (written again): stale */
    put_file(f->path[0], "[\"a\",\"b\"]", &now);
    assert_null(listcache_get(lc, f->path[0], &now));
    assert_int_equal(list->refcount, 1);
    listcache_state(lc, &s);
    assert_true(s.invalidations == 1 && s.entries == 0 && s.bytes == 0);

    /* the same inode touched (another mtime): stale too */
    listcache_put(lc, f->path[0], &now, list, 100);
    times[0].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_sec = now.st_mtim.tv_sec - 10;
    times[1].tv_nsec = 5;
    assert_int_equal(utimensat(AT_FDCWD, f->path[0], times, 0), 0);
    assert_int_equal(stat(f->path[0], &now), 0);
    assert_null(listcache_get(lc, f->path[0], &now));

    /* dropped when the file is gone */
    listcache_put(lc, f->path[0], &now, list, 100);
    listcache_drop(lc, f->path[0]);
    listcache_drop(lc, f->path[0]);
    assert_null(listcache_get(lc, f->path[0], &now));
    listcache_state(lc, &s);
    assert_true(s.invalidations == 3 && s.entries == 0);

    /* a put replaces what was kept for the path */
    listcache_put(lc, f->path[0], &now, list, 100);
    got = array_of("c", "d");
    listcache_put(lc, f->path[0], &now, got, 40);
    json_decref(got);
    listcache_state(lc, &s);
    assert_true(s.entries == 1 && s.bytes == 40);
    got = listcache_get(lc, f->path[0], &now);
    assert_string_equal(json_string_value(json_array_get(got, 0)), "c");
    json_decref(got);

    listcache_destroy(lc);
    assert_int_equal(list->refcount, 1);
    json_decref(list);
}


static void
test_bounds_lru(void **state)
{
    fixture_t      *f = *state;
    listcache_t    *lc;
    json_t         *list, *got;
    struct stat     st[4];
    stats_lists_t   s;
    int             i;

    list = array_of("x", "y");

    for (i = 0; i < 4; i++) {
        put_file(f->path[i], "[\"x\",\"y\"]", &st[i]);
    }

    /* two entries at most: the least recently used goes */
    lc = listcache_create(1000, 2);
    listcache_put(lc, f->path[0], &st[0], list, 10);
    listcache_put(lc, f->path[1], &st[1], list, 10);
    got = listcache_get(lc, f->path[0], &st[0]);       /* 0 is young now */
    json_decref(got);
    listcache_put(lc, f->path[2], &st[2], list, 10);
    listcache_state(lc, &s);
    assert_true(s.entries == 2 && s.evictions == 1);
    assert_null(listcache_get(lc, f->path[1], &st[1]));
    got = listcache_get(lc, f->path[0], &st[0]);
    assert_non_null(got);
    json_decref(got);
    listcache_destroy(lc);

    /* 100 bytes: a list of 60 pushes the older of 50 out; one of 101 is
     * never kept, and takes nothing out */
    lc = listcache_create(100, 10);
    listcache_put(lc, f->path[0], &st[0], list, 50);
    listcache_put(lc, f->path[1], &st[1], list, 40);
    listcache_put(lc, f->path[2], &st[2], list, 60);
    listcache_state(lc, &s);
    assert_true(s.entries == 2 && s.bytes == 100 && s.evictions == 1);
    assert_null(listcache_get(lc, f->path[0], &st[0]));
    listcache_put(lc, f->path[3], &st[3], list, 101);
    listcache_state(lc, &s);
    assert_true(s.entries == 2 && s.bytes == 100 && s.evictions == 1);
    assert_null(listcache_get(lc, f->path[3], &st[3]));
    listcache_destroy(lc);

    /* a bound of 0 keeps nothing; a NULL cache is no cache */
    lc = listcache_create(0, 10);
    listcache_put(lc, f->path[0], &st[0], list, 0);
    listcache_put(lc, f->path[1], &st[1], list, 1);
    listcache_state(lc, &s);
    assert_true(s.entries == 0 && s.bytes == 0);
    listcache_destroy(lc);

    lc = listcache_create(1000, 0);
    listcache_put(lc, f->path[0], &st[0], list, 1);
    listcache_state(lc, &s);
    assert_true(s.entries == 0);
    listcache_destroy(lc);

    assert_null(listcache_get(NULL, f->path[0], &st[0]));
    listcache_put(NULL, f->path[0], &st[0], list, 1);
    listcache_drop(NULL, f->path[0]);
    listcache_state(NULL, &s);
    assert_true(s.hits == 0 && s.entries == 0);

    assert_int_equal(list->refcount, 1);
    json_decref(list);
}


/* Many paths in few buckets: each found under its own name. */
static void
test_many(void **state)
{
    fixture_t      *f = *state;
    listcache_t    *lc;
    json_t         *lists[300], *got;
    struct stat     st;
    stats_lists_t   s;
    char            path[OCI_PATH_MAX + 16];
    int             i;

    put_file(f->path[0], "[]", &st);
    lc = listcache_create(1 << 20, 300);

    for (i = 0; i < 300; i++) {
        lists[i] = json_pack("[i]", i);
        snprintf(path, sizeof(path), "%s/%d", f->dir, i);
        listcache_put(lc, path, &st, lists[i], 8);
    }

    for (i = 299; i >= 0; i--) {
        snprintf(path, sizeof(path), "%s/%d", f->dir, i);
        got = listcache_get(lc, path, &st);
        assert_ptr_equal(got, lists[i]);
        json_decref(got);
    }

    listcache_state(lc, &s);
    assert_true(s.entries == 300 && s.hits == 300 && s.evictions == 0);
    listcache_destroy(lc);

    for (i = 0; i < 300; i++) {
        assert_int_equal(lists[i]->refcount, 1);
        json_decref(lists[i]);
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_hit_and_invalidation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bounds_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
