/*
 * Unit tests for src/oci_range.c: the answers nginx's range filter gives
 * (ngx_http_range_parse()), for the module to know them in advance.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "oci_range.h"


static int
range(const char *v, long long size, size_t max)
{
    return oci_range_parse(v, strlen(v), size, max);
}


static void
test_single(void **state)
{
    assert_int_equal(range("0-99", 1000, 1), OCI_RANGE_SINGLE);
    assert_int_equal(range("500-", 1000, 1), OCI_RANGE_SINGLE);
    assert_int_equal(range("-500", 1000, 1), OCI_RANGE_SINGLE);
    assert_int_equal(range(" 0 - 9 ", 1000, 1), OCI_RANGE_SINGLE);
    /* past the end: cut to the body, still satisfiable */
    assert_int_equal(range("900-5000", 1000, 1), OCI_RANGE_SINGLE);
    assert_int_equal(range("-5000", 1000, 1), OCI_RANGE_SINGLE);
}


static void
test_whole_body(void **state)
{
    /* an empty range from 0 (an empty body) */
    assert_int_equal(range("0-", 0, 1), OCI_RANGE_NONE);
    assert_int_equal(range("-5", 0, 1), OCI_RANGE_NONE);
    /* more ranges than allowed, or more bytes than the body */
    assert_int_equal(range("0-9,20-29", 1000, 1), OCI_RANGE_NONE);
    assert_int_equal(range("0-999,0-999", 1000, 16), OCI_RANGE_NONE);
    assert_int_equal(range("0-9", 1000, 0), OCI_RANGE_NONE);
}


static void
test_multi(void **state)
{
    assert_int_equal(range("0-9,20-29", 1000, 16), OCI_RANGE_MULTI);
    assert_int_equal(range("0-99, 200-299,-5", 1000, 16), OCI_RANGE_MULTI);
}


static void
test_unsatisfiable(void **state)
{
    assert_int_equal(range("1000-2000", 1000, 1), OCI_RANGE_UNSATISFIABLE);
    assert_int_equal(range("1000-", 1000, 1), OCI_RANGE_UNSATISFIABLE);
    assert_int_equal(range("", 1000, 1), OCI_RANGE_UNSATISFIABLE);
    assert_int_equal(range("abc", 1000, 1), OCI_RANGE_UNSATISFIABLE);
    assert_int_equal(range("5", 1000, 1), OCI_RANGE_UNSATISFIABLE);
    assert_int_equal(range("0-9;", 1000, 1), OCI_RANGE_UNSATISFIABLE);
    assert_int_equal(range("0-9,", 1000, 1), OCI_RANGE_UNSATISFIABLE);
    assert_int_equal(range("99999999999999999999-", 1000, 1),
                     OCI_RANGE_UNSATISFIABLE);
    assert_int_equal(range("0-99999999999999999999", 1000, 1),
                     OCI_RANGE_UNSATISFIABLE);
}


static void
test_counted(void **state)
{
    /* the value is counted, never read past; a NUL ends it as in nginx */
    assert_int_equal(oci_range_parse("0-9,20-29", 3, 1000, 16),
                     OCI_RANGE_SINGLE);
    assert_int_equal(oci_range_parse("0-9\0,20-29", 10, 1000, 16),
                     OCI_RANGE_SINGLE);
    assert_int_equal(oci_range_parse("0-", 1, 1000, 1),
                     OCI_RANGE_UNSATISFIABLE);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_whole_body),
        cmocka_unit_test(test_multi),
        cmocka_unit_test(test_unsatisfiable),
        cmocka_unit_test(test_counted),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
