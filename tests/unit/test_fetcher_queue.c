/*
 * Unit tests for src/fetcher/queue.h: order of insertion at both ends,
 * O(1) removal from anywhere, and the self-linked state of a removed node.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "queue.h"


typedef struct {
    int       value;
    queue_t   link;
} item_t;


/* The values from head to tail, as "1,2,3"; the walk from tail to head
 * must meet the same nodes in reverse. */
static const char *
walk(queue_t *h)
{
    static char   buf[128];
    size_t        len;
    queue_t      *q;
    int           fwd[16], nfwd, i, n;

    len = 0;
    nfwd = 0;
    buf[0] = '\0';

    for (q = queue_head(h); q != queue_sentinel(h); q = queue_next(q)) {
        assert_true(nfwd < 16);
        fwd[nfwd] = queue_data(q, item_t, link)->value;
        n = snprintf(buf + len, sizeof(buf) - len, "%s%d",
                     len > 0 ? "," : "", fwd[nfwd]);
        len += (size_t) n;
        nfwd++;
    }

    i = nfwd;

    for (q = h->prev; q != queue_sentinel(h); q = q->prev) {
        assert_true(i > 0);
        i--;
        assert_int_equal(queue_data(q, item_t, link)->value, fwd[i]);
    }

    assert_int_equal(i, 0);

    return buf;
}


static void
test_init_empty(void **state)
{
    queue_t  h;
    item_t   a;

    queue_init(&h);
    assert_true(queue_empty(&h));
    assert_ptr_equal(queue_head(&h), &h);
    assert_ptr_equal(queue_sentinel(&h), &h);

    queue_init(&a.link);
    assert_false(queue_linked(&a.link));

    queue_insert_tail(&h, &a.link);
    assert_false(queue_empty(&h));
    assert_true(queue_linked(&a.link));
    assert_ptr_equal(queue_head(&h), &a.link);
    assert_ptr_equal(h.prev, &a.link);
}


static void
test_insert_order(void **state)
{
    queue_t  h;
    item_t   it[5];
    int      i;

    queue_init(&h);

    for (i = 0; i < 5; i++) {
        it[i].value = i + 1;
    }

    queue_insert_tail(&h, &it[1].link);      /* 2 */
    queue_insert_tail(&h, &it[2].link);      /* 2,3 */
    queue_insert_head(&h, &it[0].link);      /* 1,2,3 */
    queue_insert_tail(&h, &it[4].link);      /* 1,2,3,5 */
    queue_insert_head(&h, &it[3].link);      /* 4,1,2,3,5 */

    assert_string_equal(walk(&h), "4,1,2,3,5");
    assert_ptr_equal(queue_data(queue_head(&h), item_t, link), &it[3]);
}


static void
test_remove(void **state)
{
    queue_t  h;
    item_t   it[4];
    int      i;

    queue_init(&h);

    for (i = 0; i < 4; i++) {
        it[i].value = i + 1;
        queue_insert_tail(&h, &it[i].link);
    }

    /* the middle, the head, the tail */
    queue_remove(&it[1].link);
    assert_string_equal(walk(&h), "1,3,4");
    assert_false(queue_linked(&it[1].link));
    assert_ptr_equal(it[1].link.next, &it[1].link);
    assert_ptr_equal(it[1].link.prev, &it[1].link);

    queue_remove(&it[0].link);
    assert_string_equal(walk(&h), "3,4");

    queue_remove(&it[3].link);
    assert_string_equal(walk(&h), "3");

    /* removing an unlinked node again changes nothing */
    queue_remove(&it[3].link);
    queue_remove(&it[1].link);
    assert_string_equal(walk(&h), "3");

    queue_remove(&it[2].link);
    assert_true(queue_empty(&h));
    assert_string_equal(walk(&h), "");

    /* a removed node can be inserted again, into another list */
    queue_insert_tail(&h, &it[1].link);
    queue_insert_tail(&h, &it[3].link);
    assert_string_equal(walk(&h), "2,4");
}


/* Draining from the head while a callback removes another node: the
 * pattern jobs_on_gone() and token_done() rely on. */
static void
test_drain_from_head(void **state)
{
    queue_t  h, *q;
    item_t   it[3];
    int      i, seen;

    queue_init(&h);

    for (i = 0; i < 3; i++) {
        it[i].value = i + 1;
        queue_insert_tail(&h, &it[i].link);
    }

    seen = 0;

    while (!queue_empty(&h)) {
        q = queue_head(&h);
        queue_remove(q);
        seen = seen * 10 + queue_data(q, item_t, link)->value;

        if (queue_data(q, item_t, link)->value == 1) {
            queue_remove(&it[1].link);       /* "2" leaves meanwhile */
        }
    }

    assert_int_equal(seen, 13);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_empty),
        cmocka_unit_test(test_insert_order),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_drain_from_head),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
