/*
 * Unit tests for src/fetcher/bw.c: the token bucket arithmetic on given
 * times, which limits a flow gets, admission and pausing, and the tick
 * that resumes paused flows in turn.  The flows' easy handles are real
 * but never run: curl_easy_pause() on them only flips their state.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test_curl.h"
#include "bw.h"
#include "loop.h"


static struct timespec
at_ms(long ms)
{
    struct timespec  ts;

    ts.tv_sec = 100 + ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;

    return ts;
}


static void
test_bucket(void **state)
{
    bw_bucket_t      b;
    struct timespec  t;

    t = at_ms(0);
    bw_bucket_init(&b, 1000000, &t);

    /* full at the start: 20 ms of saving, 500 ms when flows wait */
    assert_true(b.tokens == 20000.0);
    assert_true(b.burst == 20000.0);
    assert_true(b.busy == 500000.0);

    /* a debt is paid by time: 30 ms earn 30000 bytes */
    b.tokens = -10000.0;
    t = at_ms(30);
    bw_bucket_refill(&b, &t, b.burst);
    assert_true(b.tokens == 20000.0);

    /* idle: never above the cap, however long */
    b.tokens = 0.0;
    t = at_ms(10030);
    bw_bucket_refill(&b, &t, b.burst);
    assert_true(b.tokens == 20000.0);

    /* a late tick for waiting flows keeps what the time earned */
    b.tokens = 0.0;
    t = at_ms(10130);
    bw_bucket_refill(&b, &t, b.busy);
    assert_true(b.tokens == 100000.0);

    /* above a lower cap: kept, nothing added, the time still counts */
    t = at_ms(10140);
    bw_bucket_refill(&b, &t, b.burst);
    assert_true(b.tokens == 100000.0);
    t = at_ms(10150);
    bw_bucket_refill(&b, &t, b.busy);
    assert_true(b.tokens == 110000.0);

    /* time that does not move adds nothing */
    bw_bucket_refill(&b, &t, b.busy);
    assert_true(b.tokens == 110000.0);

    /* a tiny rate still holds a byte */
    bw_bucket_init(&b, 10, &t);
    assert_true(b.burst == 1.0);
    assert_true(b.busy == 5.0);
}


typedef struct {
    loop_t          *loop;
    oci_config_t     cf;
    oci_registry_t   regs[2];
    bw_t            *bw;
    CURL            *easy[3];
    bw_flow_t        flow[3];
} fixture_t;


static int
setup(void **state)
{
    fixture_t  *f;
    int         i;

    f = calloc(1, sizeof(fixture_t));
    assert_non_null(f);

    f->regs[0].name = "limited.test";
    f->regs[0].bandwidth_limit = 50000;     /* 1000-byte burst */
    f->regs[1].name = "free.test";
    f->cf.bandwidth_limit = 100000;         /* 2000-byte burst */
    f->cf.registries = f->regs;
    f->cf.n_registries = 2;

    f->loop = loop_create();
    assert_non_null(f->loop);
    f->bw = bw_create(f->loop, &f->cf);
    assert_non_null(f->bw);

    for (i = 0; i < 3; i++) {
        f->easy[i] = curl_easy_init();
        assert_non_null(f->easy[i]);
    }

    *state = f;
    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;
    int         i;

    bw_destroy(f->bw);

    for (i = 0; i < 3; i++) {
        curl_easy_cleanup(f->easy[i]);
    }

    loop_destroy(f->loop);
    free(f);

    return 0;
}


/* Which buckets a flow has; none at all without limits. */
static void
test_flow_limits(void **state)
{
    fixture_t     *f = *state;
    oci_config_t   cf;
    bw_t          *bw;
    bw_flow_t      fl;

    bw_flow_init(f->bw, &fl, &f->regs[0], f->easy[0]);
    assert_non_null(fl.bucket[0]);
    assert_non_null(fl.bucket[1]);
    assert_int_equal(bw_flow_rate(&fl), 50000);

    bw_flow_init(f->bw, &fl, &f->regs[1], f->easy[0]);
    assert_non_null(fl.bucket[0]);
    assert_null(fl.bucket[1]);
    assert_int_equal(bw_flow_rate(&fl), 100000);

    bw_flow_init(f->bw, &fl, NULL, f->easy[0]);
    assert_int_equal(bw_flow_rate(&fl), 100000);

    /* nothing configured: no buckets, no timer */
    memset(&cf, 0, sizeof(cf));
    cf.registries = f->regs;
    cf.n_registries = 1;
    f->regs[0].bandwidth_limit = 0;
    bw = bw_create(f->loop, &cf);
    assert_non_null(bw);
    bw_flow_init(bw, &fl, &f->regs[0], f->easy[0]);
    assert_null(fl.bucket[0]);
    assert_int_equal(bw_flow_rate(&fl), 0);
    bw_destroy(bw);
}


/* Run the loop until the tick has resumed flow i (bounded). */
static void
until_resumed(fixture_t *f, int i)
{
    int  n;

    for (n = 0; n < 50 && !f->flow[i].resumed; n++) {
        assert_true(loop_once(f->loop, 100) >= 0);
    }

    assert_true(f->flow[i].resumed);
    assert_false(f->flow[i].paused);
}


/* Admission, pausing, and turns in pause order. */
static void
test_turns(void **state)
{
    fixture_t  *f = *state;
    int         i;

    for (i = 0; i < 3; i++) {
        bw_flow_init(f->bw, &f->flow[i], &f->regs[1], f->easy[i]);
    }

    /* the 2000-byte burst: 0 takes it (into debt), then pauses */
    assert_int_equal(bw_admit(f->bw, &f->flow[0], 1500), 1);
    assert_int_equal(bw_admit(f->bw, &f->flow[0], 1500), 1);
    assert_int_equal(bw_admit(f->bw, &f->flow[0], 1500), 0);
    assert_true(f->flow[0].paused);
    assert_int_equal(f->flow[0].taken, 3000);

    /* the others queue behind it, even once tokens are back */
    assert_int_equal(bw_admit(f->bw, &f->flow[1], 100), 0);
    assert_int_equal(bw_admit(f->bw, &f->flow[2], 100), 0);

    /* the tick resumes them in the order they paused; a resumed flow
     * takes its block, pauses again and goes to the end */
    until_resumed(f, 0);
    assert_int_equal(bw_admit(f->bw, &f->flow[0], 1500), 1);
    assert_int_equal(bw_admit(f->bw, &f->flow[0], 1500), 0);

    until_resumed(f, 1);
    assert_int_equal(bw_admit(f->bw, &f->flow[1], 1500), 1);
    assert_int_equal(bw_admit(f->bw, &f->flow[1], 1500), 0);

    until_resumed(f, 2);
    assert_int_equal(bw_admit(f->bw, &f->flow[2], 1500), 1);

    /* removed while paused or resumed: out of the queue, no promise
     * left behind */
    bw_flow_remove(f->bw, &f->flow[2]);
    until_resumed(f, 0);
    bw_flow_remove(f->bw, &f->flow[0]);
    bw_flow_remove(f->bw, &f->flow[1]);
    assert_false(f->flow[1].paused);
    assert_true(f->bw != NULL);

    for (i = 0; i < 3; i++) {
        assert_true(f->flow[i].bucket[0]->reserved == 0.0);
    }
}


/* A registry's own limit holds back its flows only: a flow waits its
 * turn behind the flows that wait for one of its own buckets, not behind
 * every paused flow. */
static void
test_registry_limit(void **state)
{
    fixture_t  *f = *state;

    bw_flow_init(f->bw, &f->flow[0], &f->regs[0], f->easy[0]);
    bw_flow_init(f->bw, &f->flow[1], &f->regs[1], f->easy[1]);
    bw_flow_init(f->bw, &f->flow[2], &f->regs[1], f->easy[2]);

    /* the registry's 1000-byte burst is spent first: 0 waits for it */
    assert_int_equal(bw_admit(f->bw, &f->flow[0], 1200), 1);
    assert_int_equal(bw_admit(f->bw, &f->flow[0], 100), 0);
    assert_int_equal(f->flow[0].bucket[1]->waiters, 1);
    assert_int_equal(f->flow[0].bucket[0]->waiters, 0);

    /* the global bucket still holds 800 and nobody waits for it: the
     * free registry's flow goes on */
    assert_int_equal(bw_admit(f->bw, &f->flow[1], 100), 1);

    /* it spends the global bucket and waits for it; now the other free
     * flow queues behind it even once the bucket holds tokens again */
    f->flow[1].bucket[0]->tokens = -1e9;
    assert_int_equal(bw_admit(f->bw, &f->flow[1], 100), 0);
    assert_int_equal(f->flow[1].bucket[0]->waiters, 1);
    f->flow[1].bucket[0]->tokens = 1000.0;
    assert_int_equal(bw_admit(f->bw, &f->flow[2], 100), 0);
    assert_int_equal(f->flow[1].bucket[0]->waiters, 2);

    /* a tick passes over a flow whose registry bucket is empty */
    f->flow[0].bucket[1]->tokens = -1e9;
    until_resumed(f, 1);
    assert_true(f->flow[0].paused);
    assert_int_equal(bw_admit(f->bw, &f->flow[1], 500), 1);
    until_resumed(f, 2);
    assert_int_equal(bw_admit(f->bw, &f->flow[2], 500), 1);
    assert_int_equal(f->flow[1].bucket[0]->waiters, 0);

    /* its registry's bucket refilled, the limited one goes on */
    f->flow[0].bucket[1]->tokens = 0.0;
    until_resumed(f, 0);
    assert_int_equal(f->flow[0].bucket[1]->waiters, 0);
    assert_int_equal(bw_admit(f->bw, &f->flow[0], 100), 1);

    bw_flow_remove(f->bw, &f->flow[0]);
    bw_flow_remove(f->bw, &f->flow[1]);
    bw_flow_remove(f->bw, &f->flow[2]);
}


/* Two registries with limits of their own and no global one share no
 * bucket: while the slow one's transfer is paused, the fast one's take
 * block after block at its own rate instead of one per tick. */
static void
test_unrelated_flows(void **state)
{
    fixture_t       *f = *state;
    oci_config_t     cf;
    oci_registry_t   regs[2];
    bw_t            *bw;
    bw_flow_t        slow, fast;
    int              i;

    memset(&cf, 0, sizeof(cf));
    memset(regs, 0, sizeof(regs));
    regs[0].name = "slow.test";
    regs[0].bandwidth_limit = 50000;            /* 50 kB/s */
    regs[1].name = "fast.test";
    regs[1].bandwidth_limit = 100000000;        /* 100 MB/s, 2 MB burst */
    cf.registries = regs;
    cf.n_registries = 2;

    bw = bw_create(f->loop, &cf);
    assert_non_null(bw);
    bw_flow_init(bw, &slow, &regs[0], f->easy[0]);
    bw_flow_init(bw, &fast, &regs[1], f->easy[1]);
    assert_null(slow.bucket[1]);
    assert_null(fast.bucket[1]);

    assert_int_equal(bw_admit(bw, &slow, BW_BLOCK), 1);
    assert_int_equal(bw_admit(bw, &slow, BW_BLOCK), 0);
    assert_true(slow.paused);

    /* 64 blocks, 1 MiB: within the fast registry's burst */
    for (i = 0; i < 64; i++) {
        assert_int_equal(bw_admit(bw, &fast, BW_BLOCK), 1);
    }

    assert_false(fast.paused);
    assert_true(fast.taken == 64LL * BW_BLOCK);

    bw_flow_remove(bw, &slow);
    bw_flow_remove(bw, &fast);
    assert_int_equal(slow.bucket[0]->waiters, 0);
    bw_destroy(bw);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),
        cmocka_unit_test_setup_teardown(test_flow_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unrelated_flows, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
