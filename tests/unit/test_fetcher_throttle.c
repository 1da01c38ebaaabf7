/*
 * Unit tests for src/fetcher/throttle.c: hosts held back after a 429, and
 * the bound of the table.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "throttle.h"


static void
test_hold(void **state)
{
    throttle_t  *t;

    t = throttle_create(THROTTLE_CAP);
    assert_non_null(t);

    assert_true(throttle_until(t, "https://cdn.test:443", 0) == 0);

    throttle_hold(t, "https://cdn.test:443", 5000);
    assert_true(throttle_until(t, "https://cdn.test:443", 1000) == 5000);
    assert_true(throttle_until(t, "https://cdn.test:444", 1000) == 0);
    assert_true(throttle_until(t, "http://cdn.test:443", 1000) == 0);

    /* a later time wins, an earlier one does not shorten it */
    throttle_hold(t, "https://cdn.test:443", 9000);
    throttle_hold(t, "https://cdn.test:443", 2000);
    assert_true(throttle_until(t, "https://cdn.test:443", 1000) == 9000);

    /* over once the time has come */
    assert_true(throttle_until(t, "https://cdn.test:443", 9000) == 0);

    throttle_destroy(t);
}


/* A full table gives up the entry that ends first (an expired one
 * first of all), never more than cap entries. */
static void
test_cap(void **state)
{
    throttle_t  *t;
    char         origin[64];
    int          i;

    t = throttle_create(3);
    assert_non_null(t);

    throttle_hold(t, "http://a:80", 1000);
    throttle_hold(t, "http://b:80", 3000);
    throttle_hold(t, "http://c:80", 2000);

    throttle_hold(t, "http://d:80", 4000);
    assert_true(throttle_until(t, "http://a:80", 0) == 0);
    assert_true(throttle_until(t, "http://b:80", 0) == 3000);
    assert_true(throttle_until(t, "http://c:80", 0) == 2000);
    assert_true(throttle_until(t, "http://d:80", 0) == 4000);

    throttle_hold(t, "http://e:80", 5000);
    assert_true(throttle_until(t, "http://c:80", 0) == 0);

    /* many hosts: still bounded, the latest held */
    for (i = 0; i < 1000; i++) {
        snprintf(origin, sizeof(origin), "http://h%d:80", i);
        throttle_hold(t, origin, 10000 + i);
    }

    assert_true(throttle_until(t, "http://h999:80", 0) == 10999);
    assert_true(throttle_until(t, "http://h0:80", 0) == 0);

    throttle_destroy(t);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold),
        cmocka_unit_test(test_cap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
