/*
 * Unit tests for src/fetcher/blob.c: one download per digest into a temp
 * file, SIZE / PROGRESS / DONE to every waiter (late joiners included),
 * the sha256 and size checks before the commit, failover before and after
 * waiters started streaming, and the store's own state afterwards.
 * Upstream and workers are the fakes of fetcher_fakes.h.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fetcher_fakes.h"


#define BODY  "hello world"

typedef struct {
    fake_env_t  *e;
    char         hex[OCI_SHA256_HEX_LEN + 1];
    char         digest[OCI_DIGEST_MAX + 1];
    char         url[256];
    char         blob[256];         /* its store path */
    size_t       joins_at;          /* c2 asks once this much arrived */
    int          flush;             /* jobs_flush() after every piece */
} blob_test_t;


static int
setup(void **state)
{
    blob_test_t  *t;

    t = calloc(1, sizeof(blob_test_t));
    assert_non_null(t);

    fake_env_setup((void **) &t->e);

    fake_sha256(BODY, strlen(BODY), t->hex);
    snprintf(t->digest, sizeof(t->digest), "sha256:%s", t->hex);
    snprintf(t->url, sizeof(t->url), FAKE_EP1 "/v2/a/b/blobs/%s", t->digest);
    assert_int_equal(oci_store_blob_path(t->e->store, t->hex, t->blob,
                                         sizeof(t->blob)), OCI_OK);

    *state = t;
    return 0;
}


static int
teardown(void **state)
{
    blob_test_t  *t = *state;

    fake_env_teardown((void **) &t->e);
    free(t);

    return 0;
}


static void
request(blob_test_t *t, conn_t *c, uint32_t id, const char *registry,
    const char *name, const char *digest)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_BLOB, id);
    snprintf(m.registry, sizeof(m.registry), "%s", registry);
    snprintf(m.name, sizeof(m.name), "%s", name);
    snprintf(m.reference, sizeof(m.reference), "%s", digest);
    jobs_on_msg(c, &m, t->e->jobs);
}


/* After each piece of body: the loop's progress flush, and maybe a
 * second worker asking for the same blob. */
static void
between(void *arg, size_t done)
{
    blob_test_t  *t = arg;

    if (t->joins_at != 0 && done == t->joins_at) {
        request(t, &t->e->c2, 5, FAKE_SOLO, "other/name", t->digest);
    }

    if (t->flush) {
        jobs_flush(t->e->jobs);
    }
}


static void
reply_body(blob_test_t *t, const char *body, size_t chunk, int chunked)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = "application/octet-stream";
    r.body = body;
    r.body_len = strlen(body);
    r.chunk = chunk;
    r.chunked = chunked;
    r.between = between;
    r.arg = t;
    fake_xfer_reply(fake_xfer_one(), &r);
}


/* The next line is SIZE id size <a temp file>; its path into tmp. */
static void
assert_size_tmp(blob_test_t *t, conn_t *c, uint32_t id, long long size,
    char *tmp, size_t cap)
{
    oci_msg_t  m;
    char       prefix[256];

    assert_true(fake_conn_next(c, &m));
    assert_int_equal(m.type, OCI_MSG_SIZE);
    assert_int_equal(m.id, id);
    assert_true(m.size == size);

    snprintf(prefix, sizeof(prefix), "%s/tmp/", t->e->store);
    assert_memory_equal(m.path, prefix, strlen(prefix));
    snprintf(tmp, cap, "%s", m.path);
}


static void
assert_stored(blob_test_t *t, const char *content)
{
    char  buf[256];

    assert_int_equal(fake_read_file(t->blob, buf, sizeof(buf)),
                     (long) strlen(content));
    assert_string_equal(buf, content);
}


static void
assert_not_stored(blob_test_t *t)
{
    struct stat  st;

    assert_int_equal(stat(t->blob, &st), -1);
}


static void
test_download(void **state)
{
    blob_test_t  *t = *state;
    xfer_t       *x;
    char          tmp[OCI_PATH_MAX], buf[64];
    oci_msg_t     m;

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);

    x = fake_xfer_one();
    assert_string_equal(x->url, t->url);
    assert_int_equal(x->head, 0);
    assert_string_equal(x->accept, "");
    assert_int_equal(fake_tmp_count(t->e), 1);
    assert_string_equal(fake_conn_take(&t->e->c1), "");

    /* progress is reported once per flush, bytes from offset 0 */
    t->flush = 1;
    reply_body(t, BODY, 4, 0);

    assert_size_tmp(t, &t->e->c1, 1, 11, tmp, sizeof(tmp));
    assert_true(fake_conn_next(&t->e->c1, &m));
    assert_int_equal(m.type, OCI_MSG_PROGRESS);
    assert_true(m.bytes == 4);
    assert_true(fake_conn_next(&t->e->c1, &m));
    assert_true(m.bytes == 8);
    assert_true(fake_conn_next(&t->e->c1, &m));
    assert_true(m.bytes == 11);
    assert_true(fake_conn_next(&t->e->c1, &m));
    assert_int_equal(m.type, OCI_MSG_DONE);
    assert_int_equal(m.id, 1);
    assert_false(fake_conn_next(&t->e->c1, &m));

    /* in the store under its digest, mode 0644; the temp file is gone */
    assert_stored(t, BODY);
    assert_int_equal(fake_tmp_count(t->e), 0);
    assert_int_equal(fake_read_file(tmp, buf, sizeof(buf)), -1);
    assert_int_equal(fake_xfer_count(), 0);

    /* asked again: answered from the store, no transfer */
    request(t, &t->e->c1, 2, FAKE_REG, "a/b", t->digest);
    snprintf(tmp, sizeof(tmp), "SIZE 2 11 %s\nDONE 2\n", t->blob);
    assert_string_equal(fake_conn_take(&t->e->c1), tmp);
    assert_int_equal(fake_xfers.started, 1);
}


/* Without flushes in between, one PROGRESS at the end. */
static void
test_progress_coalesced(void **state)
{
    blob_test_t  *t = *state;
    char          tmp[OCI_PATH_MAX];

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    reply_body(t, BODY, 1, 0);

    assert_size_tmp(t, &t->e->c1, 1, 11, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c1),
                        "PROGRESS 1 11\nDONE 1\n");
}


/* A second worker, another registry and name, same digest: it joins the
 * download and catches up at once. */
static void
test_coalesce(void **state)
{
    blob_test_t  *t = *state;
    char          tmp[OCI_PATH_MAX], tmp2[OCI_PATH_MAX];
    char          want[2 * OCI_PATH_MAX + 64];
    oci_msg_t     m;

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);

    t->flush = 1;
    t->joins_at = 8;
    reply_body(t, BODY, 4, 0);
    assert_int_equal(fake_xfers.started, 1);

    assert_size_tmp(t, &t->e->c2, 5, 11, tmp2, sizeof(tmp2));
    assert_true(fake_conn_next(&t->e->c2, &m));
    assert_int_equal(m.type, OCI_MSG_PROGRESS);
    assert_true(m.bytes == 8);
    assert_true(fake_conn_next(&t->e->c2, &m));
    assert_true(m.bytes == 11);
    assert_true(fake_conn_next(&t->e->c2, &m));
    assert_int_equal(m.type, OCI_MSG_DONE);
    assert_int_equal(m.id, 5);
    assert_false(fake_conn_next(&t->e->c2, &m));

    assert_size_tmp(t, &t->e->c1, 1, 11, tmp, sizeof(tmp));
    assert_string_equal(tmp, tmp2);
    snprintf(want, sizeof(want), "PROGRESS 1 4\nPROGRESS 1 8\n"
             "PROGRESS 1 11\nDONE 1\n");
    assert_string_equal(fake_conn_take(&t->e->c1), want);
}


/* Joined before any header: SIZE comes to both with the headers. */
static void
test_coalesce_early(void **state)
{
    blob_test_t  *t = *state;
    char          tmp[OCI_PATH_MAX], want[2 * OCI_PATH_MAX + 64];

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    request(t, &t->e->c2, 9, FAKE_REG, "a/b", t->digest);
    request(t, &t->e->c1, 3, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfers.started, 1);
    assert_string_equal(fake_conn_take(&t->e->c2), "");

    reply_body(t, BODY, 0, 0);

    assert_size_tmp(t, &t->e->c2, 9, 11, tmp, sizeof(tmp));
    snprintf(want, sizeof(want), "SIZE 1 11 %s\nSIZE 3 11 %s\n"
             "PROGRESS 1 11\nDONE 1\nPROGRESS 3 11\nDONE 3\n", tmp, tmp);
    assert_string_equal(fake_conn_take(&t->e->c1), want);
}


static void
test_digest_mismatch(void **state)
{
    blob_test_t  *t = *state;
    char          tmp[OCI_PATH_MAX];

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    reply_body(t, "hello World", 0, 0);

    assert_size_tmp(t, &t->e->c1, 1, 11, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 1 502 UNKNOWN digest mismatch\n");

    assert_not_stored(t);
    assert_int_equal(fake_tmp_count(t->e), 0);
}


static void
test_size_mismatch(void **state)
{
    blob_test_t   *t = *state;
    fake_reply_t   r;
    char           tmp[OCI_PATH_MAX];

    /* fewer bytes than announced */
    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.body = BODY;
    r.length_set = 1;
    r.length = 12;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_size_tmp(t, &t->e->c1, 1, 12, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 1 502 UNKNOWN short body from upstream\n");

    /* more than announced: stopped at the first byte too many */
    request(t, &t->e->c1, 2, FAKE_REG, "a/b", t->digest);
    r.length = 10;
    r.chunk = 10;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_size_tmp(t, &t->e->c1, 2, 10, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 2 502 UNKNOWN upstream sent more than its "
                        "Content-Length\n");

    assert_not_stored(t);
    assert_int_equal(fake_tmp_count(t->e), 0);
    assert_int_equal(fake_xfer_count(), 0);
}


/* No Content-Length: SIZE only once the blob is verified, with the store
 * path. */
static void
test_no_length(void **state)
{
    blob_test_t  *t = *state;
    char          want[2 * OCI_PATH_MAX + 64];

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    t->flush = 1;
    reply_body(t, BODY, 3, 1);

    snprintf(want, sizeof(want), "SIZE 1 11 %s\nPROGRESS 1 11\nDONE 1\n",
             t->blob);
    assert_string_equal(fake_conn_take(&t->e->c1), want);
    assert_stored(t, BODY);
}


static void
test_empty_blob(void **state)
{
    blob_test_t  *t = *state;
    char          hex[OCI_SHA256_HEX_LEN + 1], digest[OCI_DIGEST_MAX + 1];
    char          tmp[OCI_PATH_MAX], want[2 * OCI_PATH_MAX + 64];

    fake_sha256("", 0, hex);
    snprintf(digest, sizeof(digest), "sha256:%s", hex);

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", digest);
    reply_body(t, "", 0, 0);

    assert_size_tmp(t, &t->e->c1, 1, 0, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c1), "DONE 1\n");

    assert_int_equal(oci_store_blob_path(t->e->store, hex, tmp, sizeof(tmp)),
                     OCI_OK);
    assert_int_equal(fake_read_file(tmp, want, sizeof(want)), 0);
}


static void
test_bad_requests(void **state)
{
    blob_test_t  *t = *state;

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", "sha256:abc");
    request(t, &t->e->c1, 2, FAKE_REG, "a/b", "blake3:abcDEF=_-");
    request(t, &t->e->c1, 3, FAKE_REG, "a/b", "latest");
    request(t, &t->e->c1, 4, "nope.test", "a/b", t->digest);
    request(t, &t->e->c1, 5, FAKE_REG, "a/B", t->digest);

    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 1 400 DIGEST_INVALID invalid digest\n"
                        "FAIL 2 400 DIGEST_INVALID unsupported digest "
                        "algorithm\n"
                        "FAIL 3 400 DIGEST_INVALID invalid digest\n"
                        "FAIL 4 403 DENIED registry not configured\n"
                        "FAIL 5 400 NAME_INVALID invalid repository name\n");
    assert_int_equal(fake_xfers.started, 0);
    assert_int_equal(fake_tmp_count(t->e), 0);
}


static void
test_upstream_answers(void **state)
{
    blob_test_t   *t = *state;
    fake_reply_t   r;

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    memset(&r, 0, sizeof(r));
    r.status = 404;
    r.body = "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\","
             "\"message\":\"blob unknown to registry\"}]}";
    fake_xfer_reply(fake_xfer_one(), &r);

    /* a 2xx that is not a plain 200 is not a whole blob */
    request(t, &t->e->c1, 2, FAKE_REG, "a/b", t->digest);
    memset(&r, 0, sizeof(r));
    r.status = 206;
    r.body = "llo";
    fake_xfer_reply(fake_xfer_one(), &r);

    request(t, &t->e->c1, 3, FAKE_REG, "a/b", t->digest);
    memset(&r, 0, sizeof(r));
    r.status = 404;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 1 404 BLOB_UNKNOWN blob unknown to registry\n"
                        "FAIL 2 502 UNKNOWN unexpected upstream status\n"
                        "FAIL 3 404 BLOB_UNKNOWN upstream answered 404\n");
    assert_int_equal(fake_tmp_count(t->e), 0);
    assert_not_stored(t);
}


/* Before SIZE went out the download may start over elsewhere: the temp
 * file and the hash start from zero. */
static void
test_failover_restart(void **state)
{
    blob_test_t   *t = *state;
    fake_reply_t   r;
    char           url[256];

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);

    /* the first endpoint sends garbage without a length, then breaks */
    memset(&r, 0, sizeof(r));
    r.rc = CURLE_PARTIAL_FILE;
    r.status = 200;
    r.chunked = 1;
    r.body = "garbage, a lot of it";
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&t->e->c1), "");

    snprintf(url, sizeof(url), FAKE_EP2 "/v2/a/b/blobs/%s", t->digest);
    assert_string_equal(fake_xfer_one()->url, url);

    reply_body(t, BODY, 0, 1);
    assert_stored(t, BODY);
    assert_int_equal(fake_tmp_count(t->e), 0);
}


/* After SIZE the waiters read the temp file: no second chance. */
static void
test_failover_after_size(void **state)
{
    blob_test_t   *t = *state;
    fake_reply_t   r;
    char           tmp[OCI_PATH_MAX];

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);

    memset(&r, 0, sizeof(r));
    r.rc = CURLE_PARTIAL_FILE;
    r.status = 200;
    r.length_set = 1;
    r.length = 11;
    r.body = "hello";
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_size_tmp(t, &t->e->c1, 1, 11, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 1 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(t->e), 0);
}


/* Every waiter left: the download goes on and fills the cache. */
static void
test_cancel_goes_on(void **state)
{
    blob_test_t  *t = *state;
    oci_msg_t     m;

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);

    oci_msg_init(&m, OCI_MSG_CANCEL, 1);
    jobs_on_msg(&t->e->c1, &m, t->e->jobs);
    assert_int_equal(fake_xfer_count(), 1);

    reply_body(t, BODY, 0, 0);
    assert_string_equal(fake_conn_take(&t->e->c1), "");
    assert_stored(t, BODY);
}


static void
test_store_unwritable(void **state)
{
    blob_test_t  *t = *state;
    char          tmp[256], off[256];
    int           fd;

    snprintf(tmp, sizeof(tmp), "%s/tmp", t->e->store);
    snprintf(off, sizeof(off), "%s/tmp.off", t->e->store);
    assert_int_equal(rename(tmp, off), 0);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 1 503 UNAVAILABLE store not writable\n");
    assert_int_equal(fake_xfers.started, 0);

    assert_int_equal(unlink(tmp), 0);
    assert_int_equal(rename(off, tmp), 0);
}


/* Torn down mid-download: the temp file goes. */
static void
test_destroy_removes_tmp(void **state)
{
    blob_test_t  *t = *state;

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_tmp_count(t->e), 1);

    jobs_destroy(t->e->jobs);
    t->e->jobs = jobs_create(t->e->cf, (xfer_multi_t *) t->e, t->e->tokens);
    assert_non_null(t->e->jobs);

    assert_int_equal(fake_tmp_count(t->e), 0);
    assert_int_equal(fake_xfer_count(), 0);
    assert_string_equal(fake_conn_take(&t->e->c1), "");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_coalesced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_coalesce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalesce_early, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_digest_mismatch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_size_mismatch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_answers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failover_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failover_after_size, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_goes_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_unwritable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_destroy_removes_tmp, setup,
                                        teardown),
    };
    int  rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();

    return rc;
}
