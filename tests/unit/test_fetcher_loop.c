/*
 * Unit tests for src/fetcher/loop.c, on pipes: registration, dispatch,
 * a handler removing another descriptor whose event is in the same batch,
 * the "after" hook once per batch, fds beyond the first table size,
 * loop_run() until loop_stop(), and the stalls: a handler or an after
 * hook that sleeps a known time makes the longest stall at least that and
 * lands in a bucket that holds it.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "loop.h"


typedef struct {
    loop_t    *loop;
    int        a[2];            /* pipes: [0] read end, [1] write end */
    int        b[2];
    int        calls_a;
    int        calls_b;
    uint32_t   events_a;
    void      *data_a;
    int        afters;
    int        stop_after;      /* loop_stop() in the after hook at this
                                   count of afters; 0: never */
    int        remove_other;    /* handlers remove the other pipe */
    long       sleep_ms;        /* handler_a and after sleep this long */
} fixture_t;


#define MS  1000000LL           /* nanoseconds */


/* At least ms milliseconds, whatever signals come. */
static void
sleep_ms(long ms)
{
    struct timespec  ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * MS;

    while (nanosleep(&ts, &ts) == -1) {
        assert_int_equal(errno, EINTR);
    }
}


static int
setup(void **state)
{
    fixture_t  *f;

    f = calloc(1, sizeof(fixture_t));
    assert_non_null(f);

    f->loop = loop_create();
    assert_non_null(f->loop);
    assert_int_equal(pipe2(f->a, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(pipe2(f->b, O_NONBLOCK | O_CLOEXEC), 0);

    *state = f;
    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    loop_destroy(f->loop);
    close(f->a[0]);
    close(f->a[1]);
    close(f->b[0]);
    close(f->b[1]);
    free(f);

    return 0;
}


static void
handler_a(loop_t *loop, int fd, uint32_t events, void *data)
{
    fixture_t  *f = data;
    char        buf[16];

    f->calls_a++;
    f->events_a = events;
    f->data_a = data;

    while (read(fd, buf, sizeof(buf)) > 0) {
        /* drain */
    }

    if (f->remove_other) {
        assert_int_equal(loop_del(loop, f->b[0]), 0);
    }

    sleep_ms(f->sleep_ms);
}


static void
handler_b(loop_t *loop, int fd, uint32_t events, void *data)
{
    fixture_t  *f = data;
    char        buf[16];

    f->calls_b++;

    while (read(fd, buf, sizeof(buf)) > 0) {
        /* drain */
    }

    if (f->remove_other) {
        assert_int_equal(loop_del(loop, f->a[0]), 0);
    }
}


static void
after(void *data)
{
    fixture_t  *f = data;

    f->afters++;
    sleep_ms(f->sleep_ms);

    if (f->stop_after != 0 && f->afters == f->stop_after) {
        loop_stop(f->loop);
    }
}


static void
test_register(void **state)
{
    fixture_t  *f = *state;

    assert_int_equal(loop_has(f->loop, f->a[0]), 0);
    assert_int_equal(loop_has(f->loop, -1), 0);

    assert_int_equal(loop_add(f->loop, -1, EPOLLIN, handler_a, f), -1);
    assert_int_equal(errno, EBADF);

    assert_int_equal(loop_add(f->loop, f->a[0], EPOLLIN, handler_a, f), 0);
    assert_int_equal(loop_has(f->loop, f->a[0]), 1);

    /* twice: epoll refuses, the first registration stays */
    assert_int_equal(loop_add(f->loop, f->a[0], EPOLLIN, handler_b, f), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(loop_has(f->loop, f->a[0]), 1);

    assert_int_equal(loop_mod(f->loop, f->a[0], EPOLLIN), 0);
    assert_int_equal(loop_mod(f->loop, f->a[0], 0), 0);
    assert_int_equal(loop_mod(f->loop, f->b[0], EPOLLIN), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(loop_del(f->loop, f->a[0]), 0);
    assert_int_equal(loop_has(f->loop, f->a[0]), 0);

    /* unknown, and already removed: no-ops */
    assert_int_equal(loop_del(f->loop, f->a[0]), 0);
    assert_int_equal(loop_del(f->loop, 1000), 0);
    assert_int_equal(loop_del(f->loop, -1), 0);
}


static void
test_dispatch(void **state)
{
    fixture_t  *f = *state;

    loop_set_after(f->loop, after, f);
    assert_int_equal(loop_add(f->loop, f->a[0], EPOLLIN, handler_a, f), 0);
    assert_int_equal(loop_add(f->loop, f->b[0], EPOLLIN, handler_b, f), 0);

    /* nothing ready: the wait times out, after still runs */
    assert_int_equal(loop_once(f->loop, 0), 0);
    assert_int_equal(f->calls_a + f->calls_b, 0);
    assert_int_equal(f->afters, 1);

    assert_int_equal(write(f->a[1], "x", 1), 1);
    assert_int_equal(loop_once(f->loop, 1000), 0);
    assert_int_equal(f->calls_a, 1);
    assert_int_equal(f->calls_b, 0);
    assert_int_equal(f->events_a, EPOLLIN);
    assert_ptr_equal(f->data_a, f);
    assert_int_equal(f->afters, 2);

    /* both ready: one batch, one after */
    assert_int_equal(write(f->a[1], "x", 1), 1);
    assert_int_equal(write(f->b[1], "y", 1), 1);
    assert_int_equal(loop_once(f->loop, 1000), 0);
    assert_int_equal(f->calls_a, 2);
    assert_int_equal(f->calls_b, 1);
    assert_int_equal(f->afters, 3);

    /* interest switched off: a ready fd is not reported */
    assert_int_equal(write(f->a[1], "x", 1), 1);
    assert_int_equal(loop_mod(f->loop, f->a[0], 0), 0);
    assert_int_equal(loop_once(f->loop, 0), 0);
    assert_int_equal(f->calls_a, 2);

    assert_int_equal(loop_mod(f->loop, f->a[0], EPOLLIN), 0);
    assert_int_equal(loop_once(f->loop, 1000), 0);
    assert_int_equal(f->calls_a, 3);

    /* the peer closed: EPOLLHUP is reported to the handler */
    close(f->a[1]);
    f->a[1] = -1;
    assert_int_equal(loop_once(f->loop, 1000), 0);
    assert_int_equal(f->calls_a, 4);
    assert_true(f->events_a & EPOLLHUP);
}


static void
test_remove_in_batch(void **state)
{
    fixture_t  *f = *state;

    f->remove_other = 1;
    assert_int_equal(loop_add(f->loop, f->a[0], EPOLLIN, handler_a, f), 0);
    assert_int_equal(loop_add(f->loop, f->b[0], EPOLLIN, handler_b, f), 0);

    assert_int_equal(write(f->a[1], "x", 1), 1);
    assert_int_equal(write(f->b[1], "y", 1), 1);

    /* whichever runs first removes the other: its event, already in the
     * batch, is dropped */
    assert_int_equal(loop_once(f->loop, 1000), 0);
    assert_int_equal(f->calls_a + f->calls_b, 1);
    assert_int_equal(loop_has(f->loop, f->a[0]) + loop_has(f->loop, f->b[0]),
                     1);
}


static void
test_high_fd(void **state)
{
    fixture_t  *f = *state;
    int         fd;

    /* past the first table of 64 slots, and past its first doubling */
    fd = fcntl(f->a[0], F_DUPFD_CLOEXEC, 200);
    assert_true(fd >= 200);

    assert_int_equal(loop_add(f->loop, fd, EPOLLIN, handler_a, f), 0);
    assert_int_equal(loop_add(f->loop, f->b[0], EPOLLIN, handler_b, f), 0);
    assert_int_equal(loop_has(f->loop, fd), 1);
    assert_int_equal(loop_has(f->loop, f->b[0]), 1);
    assert_int_equal(loop_has(f->loop, fd - 1), 0);

    assert_int_equal(write(f->a[1], "x", 1), 1);
    assert_int_equal(loop_once(f->loop, 1000), 0);
    assert_int_equal(f->calls_a, 1);

    /* closed before it is removed: the kernel already dropped it */
    close(fd);
    assert_int_equal(loop_del(f->loop, fd), 0);
    assert_int_equal(loop_has(f->loop, fd), 0);
}


static void
test_run_stop(void **state)
{
    fixture_t  *f = *state;

    loop_set_after(f->loop, after, f);
    f->stop_after = 3;

    /* an empty pipe's write end stays writable: every wait returns at
     * once, so the loop turns until the third after stops it */
    assert_int_equal(loop_add(f->loop, f->b[1], EPOLLOUT, handler_b, f), 0);

    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->afters, 3);
    assert_int_equal(f->calls_b, 3);

    /* stopped for good */
    assert_int_equal(loop_run(f->loop), 0);
    assert_int_equal(f->afters, 3);
}


/* Iterations in the buckets whose bound is below ns (all of them: at
 * most ns long, and so not a stall of ns). */
static unsigned long long
count_below(const loop_stats_t *st, long long ns)
{
    unsigned long long  n;
    size_t              i;

    n = 0;

    for (i = 0; i < LOOP_STALL_BOUNDS && loop_stall_bounds_ns[i] < ns; i++) {
        n += st->buckets[i];
    }

    return n;
}


static unsigned long long
count_all(const loop_stats_t *st)
{
    unsigned long long  n;
    size_t              i;

    n = 0;

    for (i = 0; i <= LOOP_STALL_BOUNDS; i++) {
        n += st->buckets[i];
    }

    return n;
}


static void
test_stalls(void **state)
{
    fixture_t           *f = *state;
    const loop_stats_t  *st;
    size_t               i;

    /* no loop, and a loop that never turned: nothing */
    st = loop_stats(NULL);
    assert_true(st->iterations == 0 && st->longest_ns == 0
                && count_all(st) == 0);
    st = loop_stats(f->loop);
    assert_true(st->iterations == 0 && st->longest_ns == 0
                && st->busy_ns == 0 && count_all(st) == 0);

    /* the bounds grow, so that every stall has one bucket */
    assert_true(loop_stall_bounds_ns[0] > 0);

    for (i = 1; i < LOOP_STALL_BOUNDS; i++) {
        assert_true(loop_stall_bounds_ns[i] > loop_stall_bounds_ns[i - 1]);
    }

    loop_set_after(f->loop, after, f);
    assert_int_equal(loop_add(f->loop, f->a[0], EPOLLIN, handler_a, f), 0);

    /* a handler of 30 ms: the longest is at least that, and its bucket
     * is one whose bound holds it */
    f->sleep_ms = 30;
    assert_int_equal(write(f->a[1], "x", 1), 1);
    assert_int_equal(loop_once(f->loop, 1000), 0);
    f->sleep_ms = 0;

    st = loop_stats(f->loop);
    assert_int_equal(f->calls_a, 1);
    assert_true(st->iterations == 1 && count_all(st) == 1);
    assert_true(st->longest_ns >= 60 * MS);      /* the handler and after */
    assert_true(st->busy_ns >= (unsigned long long) st->longest_ns);
    assert_true(count_below(st, 60 * MS) == 0);

    /* a quick turn: counted, and the longest stays */
    assert_int_equal(loop_once(f->loop, 0), 0);
    assert_true(st->iterations == 2 && count_all(st) == 2);
    assert_true(st->longest_ns >= 60 * MS);
    assert_true(st->busy_ns >= 60 * MS);

    /* the after hook alone, no event: 25 ms counted as well */
    f->sleep_ms = 25;
    assert_int_equal(loop_once(f->loop, 0), 0);
    f->sleep_ms = 0;
    assert_int_equal(f->calls_a, 1);
    assert_true(st->iterations == 3 && count_all(st) == 3);
    assert_true(st->busy_ns >= 85 * MS);
    assert_true(count_below(st, 25 * MS) <= 1);   /* the quick turn */
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_in_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_high_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalls, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
