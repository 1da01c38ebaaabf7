/*
 * Unit tests for src/fetcher/dispatch.c: the verbs of the workers'
 * protocol reach their handlers (PING here; the kinds in their own tests),
 * and a verb only the fetcher sends closes the worker's connection.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fetcher_fakes.h"


static void
test_ping(void **state)
{
    fake_env_t  *e = *state;
    oci_msg_t    m;
    char         tmp[256], off[256];
    int          fd;

    oci_msg_init(&m, OCI_MSG_PING, 3);
    dispatch_on_msg(&e->c1, &m, e->jobs);
    assert_string_equal(fake_conn_take(&e->c1), "PONG 3 1\n");
    assert_int_equal(fake_tmp_count(e), 0);

    /* <store>/tmp is not a directory: not writable */
    snprintf(tmp, sizeof(tmp), "%s/tmp", e->store);
    snprintf(off, sizeof(off), "%s/tmp.off", e->store);
    assert_int_equal(rename(tmp, off), 0);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);

    m.id = 4;
    dispatch_on_msg(&e->c1, &m, e->jobs);
    dispatch_on_msg(&e->c2, &m, e->jobs);
    assert_string_equal(fake_conn_take(&e->c1), "PONG 4 0\n");
    assert_string_equal(fake_conn_take(&e->c2), "PONG 4 0\n");

    assert_int_equal(unlink(tmp), 0);
    assert_int_equal(rename(off, tmp), 0);

    m.id = 5;
    dispatch_on_msg(&e->c1, &m, e->jobs);
    assert_string_equal(fake_conn_take(&e->c1), "PONG 5 1\n");
    assert_int_equal(fake_tmp_count(e), 0);
}


/* A worker that sends a fetcher's message is confused: dropped. */
static void
test_unexpected_verb(void **state)
{
    fake_env_t  *e = *state;
    oci_msg_t    m;

    oci_msg_init(&m, OCI_MSG_DONE, 1);
    dispatch_on_msg(&e->c1, &m, e->jobs);
    assert_int_equal(conn_send(&e->c1, &m), -1);
    assert_string_equal(fake_conn_take(&e->c1), "");

    oci_msg_init(&m, OCI_MSG_FAIL, 1);
    dispatch_on_msg(&e->c2, &m, e->jobs);
    assert_int_equal(conn_send(&e->c2, &m), -1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ping, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_unexpected_verb,
                                        fake_env_setup, fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
