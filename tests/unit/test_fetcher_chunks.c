/*
 * Unit tests for src/fetcher/chunks.c: how a blob is cut into ranges, which
 * chunk runs next (the frontier first), the contiguous prefix while chunks
 * finish out of order, and the bookkeeping of a failed chunk's retries.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "oci.h"
#include "chunks.h"


static void
assert_chunk(const chunks_t *t, size_t i, long long start, long long end)
{
    assert_true(i < t->n);

    if (t->chunk[i].start != start || t->chunk[i].end != end) {
        fail_msg("chunk %zu is [%lld, %lld), expected [%lld, %lld)", i,
                 t->chunk[i].start, t->chunk[i].end, start, end);
    }
}


static void
test_plan(void **state)
{
    chunks_t  t;
    int       owner;
    size_t    i;

    memset(&t, 0, sizeof(t));

    /* a remainder: the last chunk is shorter */
    assert_int_equal(chunks_plan(&t, 1000, 256, 0, &owner), OCI_OK);
    assert_int_equal(t.n, 4);
    assert_chunk(&t, 0, 0, 256);
    assert_chunk(&t, 1, 256, 512);
    assert_chunk(&t, 2, 512, 768);
    assert_chunk(&t, 3, 768, 1000);

    for (i = 0; i < t.n; i++) {
        assert_int_equal(t.chunk[i].state, CHUNK_WAITING);
        assert_true(t.chunk[i].got == 0);
        assert_ptr_equal(t.chunk[i].owner, &owner);
        assert_null(t.chunk[i].xfer);
    }

    chunks_free(&t);
    assert_null(t.chunk);
    assert_int_equal(t.n, 0);

    /* an exact multiple: no empty chunk at the end */
    assert_int_equal(chunks_plan(&t, 1024, 256, 0, NULL), OCI_OK);
    assert_int_equal(t.n, 4);
    assert_chunk(&t, 3, 768, 1024);
    chunks_free(&t);

    /* smaller than one chunk; one byte */
    assert_int_equal(chunks_plan(&t, 100, 256, 0, NULL), OCI_OK);
    assert_int_equal(t.n, 1);
    assert_chunk(&t, 0, 0, 100);
    chunks_free(&t);

    assert_int_equal(chunks_plan(&t, 1, 256, 0, NULL), OCI_OK);
    assert_int_equal(t.n, 1);
    assert_chunk(&t, 0, 0, 1);
    chunks_free(&t);

    /* the rest in one piece, for a blob below the threshold */
    assert_int_equal(chunks_plan(&t, 1000, 256, 1, NULL), OCI_OK);
    assert_int_equal(t.n, 2);
    assert_chunk(&t, 0, 0, 256);
    assert_chunk(&t, 1, 256, 1000);
    chunks_free(&t);

    assert_int_equal(chunks_plan(&t, 256, 256, 1, NULL), OCI_OK);
    assert_int_equal(t.n, 1);
    assert_chunk(&t, 0, 0, 256);
    chunks_free(&t);

    /* big numbers: a 5 GiB blob in 8 MiB chunks */
    assert_int_equal(chunks_plan(&t, 5LL << 30, 8LL << 20, 0, NULL), OCI_OK);
    assert_int_equal(t.n, 640);
    assert_chunk(&t, 639, (5LL << 30) - (8LL << 20), 5LL << 30);
    chunks_free(&t);
}


/* The lowest waiting chunk runs next, whatever finished further out. */
static void
test_next_frontier(void **state)
{
    chunks_t   t;
    chunk_t   *c;

    memset(&t, 0, sizeof(t));
    assert_int_equal(chunks_plan(&t, 1000, 100, 0, NULL), OCI_OK);

    c = chunks_next(&t);
    assert_ptr_equal(c, &t.chunk[0]);
    assert_true(chunks_is_frontier(&t, c));
    chunks_start(&t, c);

    assert_ptr_equal(chunks_next(&t), &t.chunk[1]);
    assert_false(chunks_is_frontier(&t, &t.chunk[1]));
    chunks_start(&t, &t.chunk[1]);
    chunks_start(&t, chunks_next(&t));
    assert_int_equal(t.running, 3);
    assert_ptr_equal(chunks_next(&t), &t.chunk[3]);

    /* chunk 2 done, chunk 1 fails: 1 runs next, before 3 */
    t.chunk[2].got = 100;
    chunks_done(&t, &t.chunk[2]);
    assert_int_equal(chunks_failed(&t, &t.chunk[1], 3), 1);
    assert_int_equal(t.running, 1);
    assert_ptr_equal(chunks_next(&t), &t.chunk[1]);

    /* chunk 0 done: 1 is the frontier now */
    t.chunk[0].got = 100;
    chunks_done(&t, &t.chunk[0]);
    assert_true(chunks_is_frontier(&t, &t.chunk[1]));
    assert_false(chunks_is_frontier(&t, &t.chunk[3]));
    chunks_start(&t, &t.chunk[1]);
    assert_ptr_equal(chunks_next(&t), &t.chunk[3]);

    chunks_free(&t);
}


/* The prefix ends in the lowest chunk not done, at what it got. */
static void
test_contiguous(void **state)
{
    chunks_t  t;
    size_t    i;

    memset(&t, 0, sizeof(t));
    assert_int_equal(chunks_plan(&t, 450, 100, 0, NULL), OCI_OK);
    assert_int_equal(t.n, 5);

    for (i = 0; i < t.n; i++) {
        chunks_start(&t, &t.chunk[i]);
    }

    assert_true(chunks_contiguous(&t) == 0);

    /* out of order: 3 and 4 complete, 1 half way */
    t.chunk[3].got = 100;
    chunks_done(&t, &t.chunk[3]);
    t.chunk[4].got = 50;
    chunks_done(&t, &t.chunk[4]);
    t.chunk[1].got = 60;
    assert_true(chunks_contiguous(&t) == 0);
    assert_false(chunks_complete(&t));

    /* 0 half way, then done: the prefix runs into 1 */
    t.chunk[0].got = 30;
    assert_true(chunks_contiguous(&t) == 30);
    t.chunk[0].got = 100;
    chunks_done(&t, &t.chunk[0]);
    assert_true(chunks_contiguous(&t) == 160);

    /* 2 done before 1: the prefix stays in 1 */
    t.chunk[2].got = 100;
    chunks_done(&t, &t.chunk[2]);
    assert_true(chunks_contiguous(&t) == 160);

    /* 1 fails after 60 bytes: they stay */
    assert_int_equal(chunks_failed(&t, &t.chunk[1], 3), 1);
    assert_true(chunks_contiguous(&t) == 160);
    chunks_start(&t, &t.chunk[1]);

    /* 1 done: everything, up to the end */
    t.chunk[1].got = 100;
    chunks_done(&t, &t.chunk[1]);
    assert_true(chunks_contiguous(&t) == 450);
    assert_true(chunks_complete(&t));
    assert_null(chunks_next(&t));
    assert_int_equal(t.running, 0);

    chunks_free(&t);
}


static void
test_failures(void **state)
{
    chunks_t   t;
    chunk_t   *c;
    int        xfer;

    memset(&t, 0, sizeof(t));
    assert_int_equal(chunks_plan(&t, 300, 100, 0, NULL), OCI_OK);

    c = &t.chunk[1];
    chunks_start(&t, c);
    c->xfer = (xfer_t *) &xfer;

    /* the fourth failure of a chunk allowed four tries is its last */
    assert_int_equal(chunks_failed(&t, c, 4), 1);
    assert_null(c->xfer);
    assert_int_equal(c->state, CHUNK_WAITING);
    chunks_start(&t, c);
    assert_int_equal(chunks_failed(&t, c, 4), 1);
    chunks_start(&t, c);
    assert_int_equal(chunks_failed(&t, c, 4), 1);
    chunks_start(&t, c);
    assert_int_equal(chunks_failed(&t, c, 4), 0);
    assert_int_equal(c->failures, 4);
    assert_int_equal(t.running, 0);

    /* the other chunks' counts are their own */
    assert_int_equal(t.chunk[0].failures, 0);
    assert_int_equal(t.chunk[2].failures, 0);

    chunks_free(&t);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_next_frontier),
        cmocka_unit_test(test_contiguous),
        cmocka_unit_test(test_failures),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
