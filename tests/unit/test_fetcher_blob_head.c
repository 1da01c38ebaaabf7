/*
 * Unit tests for src/fetcher/blob_head.c: a HEAD of a blob that is not
 * stored asks the upstream with HEAD and answers META with its size,
 * never downloading or storing a byte; joins, refusals, the checks of
 * the upstream's answer, a stored blob, and a client that leaves.
 */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fetcher_fakes.h"
#include "blob_head.h"


#define HEX64 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST  "sha256:" HEX64
#define URL     FAKE_EP1 "/v2/a/b/blobs/" DIGEST


static void
stat_request(fake_env_t *e, conn_t *c, uint32_t id, const char *name,
    const char *digest)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_STAT, id);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "%s", name);
    snprintf(m.reference, sizeof(m.reference), "%s", digest);
    dispatch_on_msg(c, &m, e->jobs);
}


static void
answer_head(xfer_t *x, long long length, const char *digest)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = "application/octet-stream";
    r.digest = digest;

    if (length >= 0) {
        r.length_set = 1;
        r.length = length;
    }

    fake_xfer_reply(x, &r);
}


/* One HEAD upstream for two clients of the same repository; a META each
 * with the upstream's size; no temp file, nothing stored. */
static void
test_head(void **state)
{
    fake_env_t  *e = *state;
    xfer_t      *x;
    char         path[OCI_PATH_MAX];
    struct stat  st;

    stat_request(e, &e->c1, 1, "a/b", DIGEST);
    stat_request(e, &e->c2, 2, "a/b", DIGEST);

    x = fake_xfer_one();
    assert_string_equal(x->url, URL);
    assert_int_equal(x->head, 1);
    assert_int_equal(x->ranged, 0);
    assert_int_equal(x->prio, XFER_PRIO_CLIENT);

    answer_head(x, 5000000000LL, DIGEST);

    assert_string_equal(fake_conn_take(&e->c1),
                        "META 1 " DIGEST " 5000000000 "
                        "application/octet-stream 0 -\n");
    assert_string_equal(fake_conn_take(&e->c2),
                        "META 2 " DIGEST " 5000000000 "
                        "application/octet-stream 0 -\n");
    assert_int_equal(fake_xfers.started, 1);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(e), 0);

    assert_int_equal(oci_store_blob_path(e->store, HEX64, path,
                                         sizeof(path)), OCI_OK);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(e->jobs->njobs, 0);

    /* without a Docker-Content-Digest the size is still the answer */
    stat_request(e, &e->c1, 3, "a/b", DIGEST);
    answer_head(fake_xfer_one(), 0, NULL);
    assert_string_equal(fake_conn_take(&e->c1),
                        "META 3 " DIGEST " 0 application/octet-stream 0 -\n");
}


/* What the upstream says is checked: a size must be there, and its
 * digest, if named, must be the one asked for; a 404 is BLOB_UNKNOWN. */
static void
test_upstream_answers(void **state)
{
    fake_env_t  *e = *state;

    stat_request(e, &e->c1, 1, "a/b", DIGEST);
    answer_head(fake_xfer_one(), -1, DIGEST);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 502 UNKNOWN upstream gave no blob size\n");

    stat_request(e, &e->c1, 2, "a/b", DIGEST);
    answer_head(fake_xfer_one(), 10,
                "sha256:ffffffffffffffffffffffffffffffffffffffffffffffff"
                "ffffffffffffffff");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 502 UNKNOWN upstream named another digest\n");

    stat_request(e, &e->c1, 3, "a/b", DIGEST);
    fake_reply_to(fake_xfer_one(), 404, NULL, NULL);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 3 404 BLOB_UNKNOWN upstream answered 404\n");
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(e), 0);
}


/* Requests checked before anything is asked; a stored blob is answered
 * from the store. */
static void
test_request_checks(void **state)
{
    fake_env_t  *e = *state;
    char         path[OCI_PATH_MAX];
    int          fd;

    stat_request(e, &e->c1, 1, "a/b", "sha256:0123");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 400 DIGEST_INVALID invalid digest\n");

    assert_int_equal(oci_store_blob_path(e->store, HEX64, path,
                                         sizeof(path)), OCI_OK);
    *strrchr(path, '/') = '\0';
    assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
    path[strlen(path)] = '/';

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "12345", 5), 5);
    close(fd);

    stat_request(e, &e->c1, 2, "a/b", DIGEST);
    assert_string_equal(fake_conn_take(&e->c1),
                        "META 2 " DIGEST " 5 application/octet-stream 0 -\n");
    assert_int_equal(fake_xfers.started, 0);
}


/* The client left: the HEAD is dropped; a bound refuses with BUSY. */
static void
test_left_and_bounded(void **state)
{
    fake_env_t  *e = *state;

    stat_request(e, &e->c1, 1, "a/b", DIGEST);
    fake_cancel(e->jobs, &e->c1, 1);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(e->jobs->njobs, 0);
    assert_true(e->jobs->dropped == 1);

    e->cf->max_jobs = 1;
    stat_request(e, &e->c1, 2, "a/b", DIGEST);
    stat_request(e, &e->c1, 3, "c/d", DIGEST);
    assert_string_equal(fake_conn_take(&e->c1),
                        "BUSY 3 2 too many requests for the mirror's "
                        "fetcher: fetcher.max_jobs (1) reached, retry "
                        "later\n");

    /* joining the one in flight needs no new job */
    stat_request(e, &e->c2, 4, "a/b", DIGEST);
    answer_head(fake_xfer_one(), 7, DIGEST);
    assert_string_equal(fake_conn_take(&e->c1),
                        "META 2 " DIGEST " 7 application/octet-stream 0 -\n");
    assert_string_equal(fake_conn_take(&e->c2),
                        "META 4 " DIGEST " 7 application/octet-stream 0 -\n");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_head, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_answers,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_request_checks, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_left_and_bounded,
                                        fake_env_setup, fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
