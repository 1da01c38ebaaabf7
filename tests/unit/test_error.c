/*
 * Unit tests for src/oci_error.c: the code table and the JSON body.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "oci_error.h"


static void
test_codes(void **state)
{
    assert_string_equal(oci_err_code(OCI_ERR_NAME_INVALID), "NAME_INVALID");
    assert_string_equal(oci_err_code(OCI_ERR_RANGE_INVALID), "SIZE_INVALID");
    assert_string_equal(oci_err_code(OCI_ERR_UPSTREAM), "UNKNOWN");
    assert_string_equal(oci_err_code(OCI_ERR_UNAVAILABLE), "UNAVAILABLE");
    assert_null(oci_err_code(OCI_ERR__COUNT));
    assert_null(oci_err_code((oci_errcode_t) -1));

    assert_int_equal(oci_err_status(OCI_ERR_BLOB_UNKNOWN), 404);
    assert_int_equal(oci_err_status(OCI_ERR_DIGEST_INVALID), 400);
    assert_int_equal(oci_err_status(OCI_ERR_MANIFEST_UNKNOWN), 404);
    assert_int_equal(oci_err_status(OCI_ERR_MANIFEST_INVALID), 400);
    assert_int_equal(oci_err_status(OCI_ERR_NAME_INVALID), 400);
    assert_int_equal(oci_err_status(OCI_ERR_NAME_UNKNOWN), 404);
    assert_int_equal(oci_err_status(OCI_ERR_SIZE_INVALID), 400);
    assert_int_equal(oci_err_status(OCI_ERR_UNAUTHORIZED), 401);
    assert_int_equal(oci_err_status(OCI_ERR_DENIED), 403);
    assert_int_equal(oci_err_status(OCI_ERR_UNSUPPORTED), 405);
    assert_int_equal(oci_err_status(OCI_ERR_TOOMANYREQUESTS), 429);
    assert_int_equal(oci_err_status(OCI_ERR_UNAVAILABLE), 503);
    assert_int_equal(oci_err_status(OCI_ERR_RANGE_INVALID), 416);
    assert_int_equal(oci_err_status(OCI_ERR_UPSTREAM), 502);
}


static void
test_parse(void **state)
{
    oci_errcode_t  e;
    unsigned       i;

    for (i = 0; i < OCI_ERR__COUNT; i++) {
        const char  *c = oci_err_code((oci_errcode_t) i);

        assert_int_equal(oci_err_parse(c, strlen(c), &e), OCI_OK);
        assert_string_equal(oci_err_code(e), c);
    }

    assert_int_equal(oci_err_parse("SIZE_INVALID", 12, &e), OCI_OK);
    assert_int_equal(e, OCI_ERR_SIZE_INVALID);
    assert_int_equal(oci_err_parse("UNKNOWN", 7, &e), OCI_OK);
    assert_int_equal(e, OCI_ERR_UPSTREAM);

    assert_int_equal(oci_err_parse("name_invalid", 12, &e), OCI_EINVAL);
    assert_int_equal(oci_err_parse("NAME_INVALIDX", 13, &e), OCI_EINVAL);
    assert_int_equal(oci_err_parse("NAME_INVALID", 11, &e), OCI_EINVAL);
    assert_int_equal(oci_err_parse("", 0, &e), OCI_EINVAL);
    assert_int_equal(oci_err_parse("TAG_INVALID", 11, &e), OCI_EINVAL);
}


static void
test_json(void **state)
{
    char  buf[256];
    int   n;

    n = oci_err_json(buf, sizeof(buf), OCI_ERR_NAME_INVALID, "bad name");
    assert_string_equal(buf, "{\"errors\":[{\"code\":\"NAME_INVALID\","
                        "\"message\":\"bad name\",\"detail\":null}]}");
    assert_int_equal(n, (int) strlen(buf));

    n = oci_err_json(buf, sizeof(buf), OCI_ERR_DENIED,
                     "a\"b\\c\nd\te\x01\x7f");
    assert_string_equal(buf, "{\"errors\":[{\"code\":\"DENIED\","
                        "\"message\":\"a\\\"b\\\\c\\u000ad\\u0009e"
                        "\\u0001\\u007f\",\"detail\":null}]}");
    assert_int_equal(n, (int) strlen(buf));

    /* valid UTF-8 passes, a stray byte becomes U+FFFD */
    n = oci_err_json(buf, sizeof(buf), OCI_ERR_UPSTREAM,
                     "caf\xc3\xa9 \xff\xc3");
    assert_string_equal(buf, "{\"errors\":[{\"code\":\"UNKNOWN\","
                        "\"message\":\"caf\xc3\xa9 \\ufffd\\ufffd\","
                        "\"detail\":null}]}");
    assert_int_equal(n, (int) strlen(buf));

    /* overlong encoding and surrogates are not valid UTF-8 */
    oci_err_json(buf, sizeof(buf), OCI_ERR_UPSTREAM, "\xc0\xaf\xed\xa0\x80");
    assert_non_null(strstr(buf, "\"message\":\"\\ufffd\\ufffd\\ufffd"
                            "\\ufffd\\ufffd\""));

    /* NULL message: the spec's default text */
    oci_err_json(buf, sizeof(buf), OCI_ERR_MANIFEST_UNKNOWN, NULL);
    assert_string_equal(buf, "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\","
                        "\"message\":\"manifest unknown\","
                        "\"detail\":null}]}");

    assert_int_equal(oci_err_json(buf, sizeof(buf), OCI_ERR__COUNT, "x"),
                     OCI_EINVAL);
}


static void
test_json_range(void **state)
{
    char    buf[128];
    size_t  full, cap;
    int     n;

    n = oci_err_json(buf, sizeof(buf), OCI_ERR_DENIED, "\"x\"\n");
    assert_true(n > 0);
    full = (size_t) n;

    /* every cap below full + 1 fails cleanly, full + 1 fits */
    for (cap = 0; cap <= full; cap++) {
        assert_int_equal(oci_err_json(buf, cap, OCI_ERR_DENIED, "\"x\"\n"),
                         OCI_ERANGE);
    }

    assert_int_equal(oci_err_json(buf, full + 1, OCI_ERR_DENIED, "\"x\"\n"),
                     (int) full);
    assert_int_equal(buf[full], '\0');
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_range),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
