/*
 * Unit tests for src/fetcher/blob.c: one download per digest into a temp
 * file, SIZE / PROGRESS / DONE to every waiter (late joiners included),
 * the sha256 and size checks before the commit, failover before and after
 * waiters started streaming, and the store's own state afterwards; ranged
 * chunks (the probe, out-of-order completion, the contiguous prefix, one
 * failed chunk retried alone, the fallbacks), prefetch and promotion;
 * the token of chunks running out mid-download (fetched again, the chunks
 * not failed) and refusals of chunks (401, not 503).  Upstream and workers
 * are the fakes of fetcher_fakes.h.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fetcher_fakes.h"
#include "blob.h"


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

    /* each flush writes what came, as the streams of these tests expect;
     * test_write_blocks() holds bytes as the fetcher does */
    blob_set_write_hold(0);

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
    dispatch_on_msg(c, &m, t->e->jobs);
}


/* request() of a waiter that joins the download in flight: it is told
 * so first (FROM, for the worker's log), and that line is taken. */
static void
join(blob_test_t *t, conn_t *c, uint32_t id, const char *registry,
    const char *name, const char *digest)
{
    oci_msg_t  m;

    request(t, c, id, registry, name, digest);

    assert_true(fake_conn_next(c, &m));
    assert_int_equal(m.type, OCI_MSG_FROM);
    assert_int_equal(m.id, id);
    assert_int_equal(m.from, OCI_FROM_INFLIGHT);
}


/* After each piece of body: the loop's progress flush, and maybe a
 * second worker asking for the same blob. */
static void
between(void *arg, size_t done)
{
    blob_test_t  *t = arg;

    if (t->joins_at != 0 && done == t->joins_at) {
        join(t, &t->e->c2, 5, FAKE_SOLO, "other/name", t->digest);
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
    /* no temp file before the upstream answers */
    assert_int_equal(fake_tmp_count(t->e), 0);
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

    /* in the store under its digest, mode 0640; the temp file is gone */
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


/* Bytes are written in blocks of 1 MiB: while the hold has not passed a
 * flush writes nothing and announces nothing (PROGRESS counts bytes in
 * the file), each full block is written and announced, the rest at the
 * end; once the hold passed, a flush writes what is held. */
static void
test_write_blocks(void **state)
{
    blob_test_t  *t = *state;
    char          tmp[OCI_PATH_MAX], *body;
    size_t        i, len;
    struct stat   st;
    oci_msg_t     m;
    long long     last;

    len = 2 * 1024 * 1024 + 5000;
    body = malloc(len + 1);
    assert_non_null(body);

    for (i = 0; i < len; i++) {
        body[i] = (char) ('a' + i % 26);
    }

    body[len] = '\0';
    fake_sha256(body, len, t->hex);
    snprintf(t->digest, sizeof(t->digest), "sha256:%s", t->hex);
    snprintf(t->url, sizeof(t->url), FAKE_EP1 "/v2/a/b/blobs/%s", t->digest);
    assert_int_equal(oci_store_blob_path(t->e->store, t->hex, t->blob,
                                         sizeof(t->blob)), OCI_OK);

    /* a day's hold: only full blocks and the end write */
    blob_set_write_hold(86400LL * 1000000000);
    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    t->flush = 1;
    reply_body(t, body, 16384, 0);

    assert_size_tmp(t, &t->e->c1, 1, (long long) len, tmp, sizeof(tmp));

    last = 0;
    while (fake_conn_next(&t->e->c1, &m) && m.type == OCI_MSG_PROGRESS) {
        assert_true(m.bytes > last);
        assert_true(m.bytes == (long long) len
                    || m.bytes % (1024 * 1024) == 0);
        last = m.bytes;
    }

    assert_true(last == (long long) len);
    assert_int_equal(m.type, OCI_MSG_DONE);
    assert_int_equal(stat(t->blob, &st), 0);
    assert_int_equal(st.st_size, (off_t) len);

    /* the same with no hold: every flush writes, so PROGRESS follows
     * the pieces */
    assert_int_equal(unlink(t->blob), 0);
    blob_set_write_hold(0);
    request(t, &t->e->c1, 2, FAKE_REG, "a/b", t->digest);
    reply_body(t, body, 16384, 0);
    assert_size_tmp(t, &t->e->c1, 2, (long long) len, tmp, sizeof(tmp));
    assert_true(fake_conn_next(&t->e->c1, &m));
    assert_true(m.type == OCI_MSG_PROGRESS && m.bytes == 16384);

    free(body);
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

    /* it catches up with what is in the file (bytes 4-8 were still
     * held when it joined), then follows */
    assert_size_tmp(t, &t->e->c2, 5, 11, tmp2, sizeof(tmp2));
    assert_true(fake_conn_next(&t->e->c2, &m));
    assert_int_equal(m.type, OCI_MSG_PROGRESS);
    assert_true(m.bytes == 4);
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
    char          tmp[OCI_PATH_MAX], want[2 * OCI_PATH_MAX + 96];

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    request(t, &t->e->c2, 9, FAKE_REG, "a/b", t->digest);
    request(t, &t->e->c1, 3, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfers.started, 1);
    /* the joiners are told so (for the worker's log) */
    assert_string_equal(fake_conn_take(&t->e->c2), "FROM 9 inflight\n");

    reply_body(t, BODY, 0, 0);

    assert_size_tmp(t, &t->e->c2, 9, 11, tmp, sizeof(tmp));
    snprintf(want, sizeof(want), "FROM 3 inflight\n"
             "SIZE 1 11 %s\nSIZE 3 11 %s\n"
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

    /* a 206 without a usable Content-Range: a plain GET instead, and a
     * 2xx that is not a 200 to that is not a whole blob */
    request(t, &t->e->c1, 2, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfer_one()->ranged, 1);
    memset(&r, 0, sizeof(r));
    r.status = 206;
    r.body = "llo";
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 1 404 BLOB_UNKNOWN blob unknown to registry\n");
    assert_int_equal(fake_xfer_one()->ranged, 0);
    fake_xfer_reply(fake_xfer_one(), &r);

    request(t, &t->e->c1, 3, FAKE_REG, "a/b", t->digest);
    memset(&r, 0, sizeof(r));
    r.status = 404;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_string_equal(fake_conn_take(&t->e->c1),
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


/* The digest is one job whoever asks, but a 404 (or 401/403, or an
 * unavailable registry) answers only the repository it was asked through:
 * its waiters get FAIL, and the job starts over, from an empty temp file,
 * for the waiters that asked through another repository. */
static void
test_refused_retarget(void **state)
{
    blob_test_t   *t = *state;
    fake_reply_t   r;
    char           url[256], tmp[OCI_PATH_MAX];

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    join(t, &t->e->c2, 5, FAKE_REG, "c/d", t->digest);
    join(t, &t->e->c1, 2, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfers.started, 1);

    memset(&r, 0, sizeof(r));
    r.status = 404;
    r.body = "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\","
             "\"message\":\"blob unknown to registry\"}]}";
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 1 404 BLOB_UNKNOWN blob unknown to registry\n"
                        "FAIL 2 404 BLOB_UNKNOWN blob unknown to registry\n");
    assert_string_equal(fake_conn_take(&t->e->c2), "");

    /* the same job, asked again through the other repository */
    assert_int_equal(fake_xfers.started, 2);
    snprintf(url, sizeof(url), FAKE_EP1 "/v2/c/d/blobs/%s", t->digest);
    assert_string_equal(fake_xfer_one()->url, url);
    assert_int_equal(fake_tmp_count(t->e), 0);

    reply_body(t, BODY, 0, 0);

    assert_size_tmp(t, &t->e->c2, 5, 11, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c2), "PROGRESS 5 11\nDONE 5\n");
    assert_string_equal(fake_conn_take(&t->e->c1), "");
    assert_stored(t, BODY);
    assert_int_equal(fake_tmp_count(t->e), 0);
    assert_int_equal(fake_xfer_count(), 0);
}


/* Once SIZE went out, a failure is everyone's: no second chance, even
 * for a waiter that asked through another repository. */
static void
test_refused_after_size(void **state)
{
    blob_test_t   *t = *state;
    fake_reply_t   r;
    char           tmp[OCI_PATH_MAX];

    request(t, &t->e->c1, 1, FAKE_SOLO, "a/b", t->digest);
    join(t, &t->e->c2, 5, FAKE_SOLO, "c/d", t->digest);

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
    assert_size_tmp(t, &t->e->c2, 5, 11, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c2),
                        "FAIL 5 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
    assert_int_equal(fake_xfers.started, 1);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(t->e), 0);
}


/* Every waiter left before a byte came: the job is dropped, its
 * transfer stopped; there was never a temp file, nothing is stored. */
static void
test_cancel_dropped(void **state)
{
    blob_test_t  *t = *state;

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    join(t, &t->e->c2, 2, FAKE_SOLO, "c/d", t->digest);
    assert_int_equal(fake_xfer_count(), 1);

    /* one of two left: it goes on */
    fake_cancel(t->e->jobs, &t->e->c1, 1);
    assert_int_equal(fake_xfer_count(), 1);

    jobs_on_gone(&t->e->c2, t->e->jobs);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.aborted, 1);
    assert_false(blob_present(t->e->jobs, t->digest));
    assert_int_equal(fake_tmp_count(t->e), 0);
    assert_not_stored(t);
    assert_true(t->e->jobs->dropped == 1);
    assert_int_equal(t->e->jobs->njobs, 0);
    assert_string_equal(fake_conn_take(&t->e->c1), "");
    assert_string_equal(fake_conn_take(&t->e->c2), "");
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

    /* the temp file comes with the upstream's answer, and so does the
     * failure */
    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfers.started, 1);
    assert_string_equal(fake_conn_take(&t->e->c1), "");

    reply_body(t, BODY, 0, 0);
    assert_string_equal(fake_conn_take(&t->e->c1),
                        "FAIL 1 503 UNAVAILABLE store not writable\n");
    assert_int_equal(fake_xfer_count(), 0);

    assert_int_equal(unlink(tmp), 0);
    assert_int_equal(rename(off, tmp), 0);
}


/*
 * Ranged chunks.  The blob is CHUNK_TOTAL pseudo-random bytes; chunks of
 * 64 KiB make five of them (the last one shorter), at most three in
 * flight, probe included.
 */

#define CHUNK_SIZE   (64 * 1024)
#define CHUNK_TOTAL  300000
#define CDN_URL      "http://cdn.test/blobs/x?sig=secret"

typedef struct {
    blob_test_t   b;                /* first: request() and friends */
    char         *data;
} chunk_test_t;


static int
setup_chunks(void **state)
{
    chunk_test_t  *t;
    unsigned int   seed;
    size_t         i;

    t = calloc(1, sizeof(chunk_test_t));
    assert_non_null(t);

    fake_env_setup((void **) &t->b.e);
    blob_set_write_hold(0);

    t->b.e->cf->chunk_size = CHUNK_SIZE;
    t->b.e->cf->chunk_threshold = 2 * CHUNK_SIZE;
    t->b.e->cf->chunks_per_blob = 3;

    t->data = malloc(CHUNK_TOTAL);
    assert_non_null(t->data);

    seed = 12345;
    for (i = 0; i < CHUNK_TOTAL; i++) {
        seed = seed * 1103515245 + 12345;
        t->data[i] = (char) (seed >> 16);
    }

    fake_sha256(t->data, CHUNK_TOTAL, t->b.hex);
    snprintf(t->b.digest, sizeof(t->b.digest), "sha256:%s", t->b.hex);
    snprintf(t->b.url, sizeof(t->b.url), FAKE_EP1 "/v2/a/b/blobs/%s",
             t->b.digest);
    assert_int_equal(oci_store_blob_path(t->b.e->store, t->b.hex, t->b.blob,
                                         sizeof(t->b.blob)), OCI_OK);

    *state = t;
    return 0;
}


static int
teardown_chunks(void **state)
{
    chunk_test_t  *t = *state;

    fake_env_teardown((void **) &t->b.e);
    free(t->data);
    free(t);

    return 0;
}


/*
 * Answer x with the bytes [first, last] of the blob, of a total of total
 * (as the upstream claims them), cut short after cut bytes (0: no cut)
 * and ending with rc.
 */
static void
reply_range(chunk_test_t *t, xfer_t *x, long status, long long first,
    long long last, long long total, size_t cut, CURLcode rc)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.rc = rc;
    r.body = t->data + first;
    r.body_len = (size_t) (last - first + 1);
    r.length_set = 1;
    r.length = last - first + 1;
    r.chunk = 16 * 1024;
    r.between = between;
    r.arg = &t->b;

    if (status == 206) {
        r.range_set = 1;
        r.range_first = first;
        r.range_last = last;
        r.range_total = total;
    }

    if (cut != 0) {
        r.body_len = cut;
    }

    fake_xfer_reply(x, &r);
}


/* The next line is PROGRESS id bytes. */
static void
assert_progress(conn_t *c, uint32_t id, long long bytes)
{
    oci_msg_t  m;

    assert_true(fake_conn_next(c, &m));
    assert_int_equal(m.type, OCI_MSG_PROGRESS);
    assert_int_equal(m.id, id);

    if (m.bytes != bytes) {
        fail_msg("PROGRESS %lld, expected %lld", m.bytes, bytes);
    }
}


static void
assert_chunk_xfer(xfer_t *x, const char *url, long long first,
    long long last)
{
    assert_non_null(x);
    assert_string_equal(x->url, url);
    assert_int_equal(x->ranged, 1);
    assert_true(x->range_first == first);
    assert_true(x->range_last == last);
    assert_int_equal(x->http1, 1);
    assert_int_equal(x->redirected, 1);
    assert_int_equal(x->prio, XFER_PRIO_CLIENT);
}


static void
assert_stored_data(chunk_test_t *t)
{
    char  *buf;
    long   n;

    buf = malloc(CHUNK_TOTAL + 1);
    assert_non_null(buf);
    n = fake_read_file(t->b.blob, buf, CHUNK_TOTAL + 1);
    assert_int_equal(n, CHUNK_TOTAL);
    assert_memory_equal(buf, t->data, CHUNK_TOTAL);
    free(buf);
}


/* The probe, the chunks from where it ended, completion out of order:
 * progress is the contiguous prefix, the hash follows it, the blob is
 * stored once every byte is in. */
static void
test_chunks_out_of_order(void **state)
{
    chunk_test_t  *t = *state;
    xfer_t        *x;
    char           tmp[OCI_PATH_MAX], url[256];
    struct stat    st;

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);

    x = fake_xfer_one();
    assert_string_equal(x->url, t->b.url);
    assert_int_equal(x->ranged, 1);
    assert_true(x->range_first == 0 && x->range_last == CHUNK_SIZE - 1);
    assert_int_equal(x->http1, 0);
    assert_int_equal(x->prio, XFER_PRIO_CLIENT);

    /* a redirect to another path of the same registry: the chunks go
     * there, with the registry's (absent) token */
    snprintf(url, sizeof(url), FAKE_EP1 "/cdn/%s", t->b.hex);
    snprintf(x->effective_url, sizeof(x->effective_url), "%s", url);

    t->b.flush = 1;
    reply_range(t, x, 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0, CURLE_OK);

    /* SIZE at the probe's headers, the temp file sized at once */
    assert_size_tmp(&t->b, &t->b.e->c1, 1, CHUNK_TOTAL, tmp, sizeof(tmp));
    assert_int_equal(stat(tmp, &st), 0);
    assert_int_equal(st.st_size, CHUNK_TOTAL);
    assert_progress(&t->b.e->c1, 1, 16384);
    assert_progress(&t->b.e->c1, 1, 32768);
    assert_progress(&t->b.e->c1, 1, 49152);
    assert_progress(&t->b.e->c1, 1, 65536);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");

    /* two chunks joined the probe, a third when it ended */
    assert_int_equal(fake_xfer_count(), 3);
    assert_chunk_xfer(fake_xfer_at(0), url, 65536, 131071);
    assert_chunk_xfer(fake_xfer_at(1), url, 131072, 196607);
    assert_chunk_xfer(fake_xfer_at(2), url, 196608, 262143);
    assert_string_equal(fake_xfer_at(0)->bearer, "");

    /* chunk 3 first: nothing new is contiguous, chunk 4 starts */
    reply_range(t, fake_xfer_range(196608), 206, 196608, 262143,
                CHUNK_TOTAL, 0, CURLE_OK);
    jobs_flush(t->b.e->jobs);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");
    assert_chunk_xfer(fake_xfer_range(262144), url, 262144, CHUNK_TOTAL - 1);
    assert_int_equal(fake_xfer_count(), 3);

    /* chunk 2 */
    reply_range(t, fake_xfer_range(131072), 206, 131072, 196607,
                CHUNK_TOTAL, 0, CURLE_OK);
    jobs_flush(t->b.e->jobs);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");

    /* the frontier: its own bytes, then 2 and 3 read back at its end */
    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    assert_progress(&t->b.e->c1, 1, 65536 + 16384);
    assert_progress(&t->b.e->c1, 1, 65536 + 32768);
    assert_progress(&t->b.e->c1, 1, 65536 + 49152);
    assert_progress(&t->b.e->c1, 1, 131072);
    jobs_flush(t->b.e->jobs);
    assert_progress(&t->b.e->c1, 1, 262144);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");
    assert_not_stored(&t->b);

    reply_range(t, fake_xfer_range(262144), 206, 262144, CHUNK_TOTAL - 1,
                CHUNK_TOTAL, 0, CURLE_OK);
    assert_progress(&t->b.e->c1, 1, 262144 + 16384);
    assert_progress(&t->b.e->c1, 1, 262144 + 32768);
    assert_progress(&t->b.e->c1, 1, CHUNK_TOTAL);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "DONE 1\n");

    assert_stored_data(t);
    assert_int_equal(fake_tmp_count(t->b.e), 0);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.started, 5);
}


/* A chunked download of a/b whose first chunk the registry redirected to
 * CDN_URL: SIZE sent, chunks 1, 2 and 3 running there. */
static void
chunks_via_cdn(chunk_test_t *t)
{
    char  tmp[OCI_PATH_MAX];

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    snprintf(fake_xfer_one()->effective_url, 8192, CDN_URL);
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);
    assert_size_tmp(&t->b, &t->b.e->c1, 1, CHUNK_TOTAL, tmp, sizeof(tmp));
}


/* A chunk that fails is asked for again, alone, for the bytes it lacks;
 * the others go on; the blob is right in the end. */
static void
test_chunk_retry(void **state)
{
    chunk_test_t  *t = *state;
    char           want[OCI_PATH_MAX + 64];

    chunks_via_cdn(t);

    /* to a CDN: no token */
    assert_chunk_xfer(fake_xfer_range(65536), CDN_URL, 65536, 131071);

    /* chunk 1 gets a 500: the same range again, first in line */
    reply_range(t, fake_xfer_range(65536), 500, 65536, 131071, -1, 0,
                CURLE_OK);
    assert_int_equal(fake_xfers.started, 5);
    assert_chunk_xfer(fake_xfer_range(65536), CDN_URL, 65536, 131071);
    assert_int_equal(fake_xfer_range(65536)->urgent, 1);

    /* chunk 2 breaks after 20000 bytes: the rest of it again */
    reply_range(t, fake_xfer_range(131072), 206, 131072, 196607,
                CHUNK_TOTAL, 20000, CURLE_PARTIAL_FILE);
    assert_int_equal(fake_xfers.started, 6);
    assert_chunk_xfer(fake_xfer_range(151072), CDN_URL, 151072, 196607);
    assert_int_equal(fake_xfer_range(151072)->urgent, 0);

    /* a chunk whose answer names other bytes is a failure too */
    reply_range(t, fake_xfer_range(196608), 206, 196608, 262000,
                CHUNK_TOTAL, 0, CURLE_OK);
    assert_int_equal(fake_xfers.started, 7);
    assert_chunk_xfer(fake_xfer_range(196608), CDN_URL, 196608, 262143);

    /* a 200 to a chunk: the CDN ignores Range after all */
    reply_range(t, fake_xfer_range(196608), 200, 0, CHUNK_TOTAL - 1, -1, 0,
                CURLE_OK);
    assert_int_equal(fake_xfers.started, 8);

    reply_range(t, fake_xfer_range(151072), 206, 151072, 196607,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(196608), 206, 196608, 262143,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    reply_range(t, fake_xfer_range(262144), 206, 262144, CHUNK_TOTAL - 1,
                CHUNK_TOTAL, 0, CURLE_OK);

    snprintf(want, sizeof(want), "PROGRESS 1 %d\nDONE 1\n", CHUNK_TOTAL);
    assert_string_equal(fake_conn_take(&t->b.e->c1), want);
    assert_stored_data(t);
    assert_int_equal(fake_xfers.started, 9);
    assert_int_equal(fake_xfer_count(), 0);
}


/* The probe itself breaks after SIZE: its chunk is retried from where it
 * broke, at the URL it had reached. */
static void
test_chunk_probe_retry(void **state)
{
    chunk_test_t  *t = *state;
    char           tmp[OCI_PATH_MAX];

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    snprintf(fake_xfer_one()->effective_url, 8192, CDN_URL);
    t->b.flush = 1;
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL,
                40000, CURLE_RECV_ERROR);
    assert_size_tmp(&t->b, &t->b.e->c1, 1, CHUNK_TOTAL, tmp, sizeof(tmp));
    assert_progress(&t->b.e->c1, 1, 16384);
    assert_progress(&t->b.e->c1, 1, 32768);
    assert_progress(&t->b.e->c1, 1, 40000);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");

    assert_chunk_xfer(fake_xfer_range(40000), CDN_URL, 40000, 65535);
    assert_int_equal(fake_xfer_range(40000)->urgent, 1);

    reply_range(t, fake_xfer_range(40000), 206, 40000, 65535, CHUNK_TOTAL,
                0, CURLE_OK);
    reply_range(t, fake_xfer_range(131072), 206, 131072, 196607,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    reply_range(t, fake_xfer_range(196608), 206, 196608, 262143,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(262144), 206, 262144, CHUNK_TOTAL - 1,
                CHUNK_TOTAL, 0, CURLE_OK);

    assert_stored_data(t);
    assert_int_equal(fake_xfers.started, 6);
}


/* A chunk that keeps failing ends the job: FAIL, every other transfer
 * stopped, the temp file gone. */
static void
test_chunk_retries_run_out(void **state)
{
    chunk_test_t  *t = *state;
    char           tmp[OCI_PATH_MAX];
    int            i;

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);
    assert_size_tmp(&t->b, &t->b.e->c1, 1, CHUNK_TOTAL, tmp, sizeof(tmp));

    for (i = 0; i < 3; i++) {
        reply_range(t, fake_xfer_range(131072), 0, 0, 0, 0, 0,
                    CURLE_COULDNT_CONNECT);
        assert_int_equal(fake_xfer_count(), 3);
        assert_string_equal(fake_conn_take(&t->b.e->c1), "");
    }

    reply_range(t, fake_xfer_range(131072), 0, 0, 0, 0, 0,
                CURLE_COULDNT_CONNECT);
    assert_string_equal(fake_conn_take(&t->b.e->c1),
                        "FAIL 1 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(t->b.e), 0);
    assert_not_stored(&t->b);
    assert_int_equal(fake_xfers.started, 7);
}


/* The upstream ignores Range: the probe's 200 is the whole blob. */
static void
test_chunks_fallback_200(void **state)
{
    chunk_test_t  *t = *state;
    char           tmp[OCI_PATH_MAX], want[OCI_PATH_MAX + 64];

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    assert_int_equal(fake_xfer_one()->ranged, 1);

    reply_range(t, fake_xfer_one(), 200, 0, CHUNK_TOTAL - 1, -1, 0,
                CURLE_OK);

    assert_size_tmp(&t->b, &t->b.e->c1, 1, CHUNK_TOTAL, tmp, sizeof(tmp));
    snprintf(want, sizeof(want), "PROGRESS 1 %d\nDONE 1\n", CHUNK_TOTAL);
    assert_string_equal(fake_conn_take(&t->b.e->c1), want);
    assert_stored_data(t);
    assert_int_equal(fake_xfers.started, 1);
}


/* Below chunk_threshold: the rest in one request, after the probe. */
static void
test_chunks_small(void **state)
{
    chunk_test_t  *t = *state;
    char           tmp[OCI_PATH_MAX];
    xfer_t        *x;

    t->b.e->cf->chunk_threshold = CHUNK_TOTAL + 1;

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);
    assert_size_tmp(&t->b, &t->b.e->c1, 1, CHUNK_TOTAL, tmp, sizeof(tmp));

    x = fake_xfer_one();
    assert_chunk_xfer(x, t->b.url, CHUNK_SIZE, CHUNK_TOTAL - 1);
    reply_range(t, x, 206, CHUNK_SIZE, CHUNK_TOTAL - 1, CHUNK_TOTAL, 0,
                CURLE_OK);

    assert_stored_data(t);
    assert_int_equal(fake_xfers.started, 2);
}


/* What the probe got was all there is. */
static void
test_chunks_one(void **state)
{
    blob_test_t   *t = *state;
    fake_reply_t   r;
    char           tmp[OCI_PATH_MAX];

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);

    memset(&r, 0, sizeof(r));
    r.status = 206;
    r.body = BODY;
    r.range_set = 1;
    r.range_first = 0;
    r.range_last = 10;
    r.range_total = 11;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_size_tmp(t, &t->e->c1, 1, 11, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c1), "PROGRESS 1 11\nDONE 1\n");
    assert_stored(t, BODY);
    assert_int_equal(fake_xfers.started, 1);
}


/* An empty blob: no byte 0 to ask for (416), a plain GET. */
static void
test_chunks_empty(void **state)
{
    blob_test_t   *t = *state;
    fake_reply_t   r;
    char           hex[OCI_SHA256_HEX_LEN + 1], digest[OCI_DIGEST_MAX + 1];
    char           tmp[OCI_PATH_MAX];

    fake_sha256("", 0, hex);
    snprintf(digest, sizeof(digest), "sha256:%s", hex);

    request(t, &t->e->c1, 1, FAKE_REG, "a/b", digest);
    assert_int_equal(fake_xfer_one()->ranged, 1);

    memset(&r, 0, sizeof(r));
    r.status = 416;
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&t->e->c1), "");
    assert_int_equal(fake_xfer_one()->ranged, 0);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.body = "";
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_size_tmp(t, &t->e->c1, 1, 0, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c1), "DONE 1\n");
}


/* chunks_per_blob = 0: no Range at all. */
static void
test_chunks_off(void **state)
{
    blob_test_t  *t = *state;

    t->e->cf->chunks_per_blob = 0;
    request(t, &t->e->c1, 1, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfer_one()->ranged, 0);
    reply_body(t, BODY, 0, 0);
    assert_stored(t, BODY);
}


/* A prefetch runs at prefetch priority; a client joining it promotes the
 * probe and every chunk, and no byte is fetched twice. */
/* The last waiter leaves a ranged download: short of finish_fraction
 * (0.5) it is dropped, chunks and temp file gone; past it, it finishes
 * into the store at prefetch priority. */
static void
test_idle_fraction(void **state)
{
    chunk_test_t  *t = *state;
    int            i;

    /* the probe's 65536 of 300000 bytes: dropped */
    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);
    assert_int_equal(fake_xfer_count(), 3);
    assert_int_equal(fake_tmp_count(t->b.e), 1);

    fake_cancel(t->b.e->jobs, &t->b.e->c1, 1);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(t->b.e), 0);
    assert_false(blob_present(t->b.e->jobs, t->b.digest));
    assert_true(t->b.e->jobs->dropped == 1);
    fake_conn_take(&t->b.e->c1);

    /* again, and 196608 bytes (two chunks and the probe) arrive */
    request(&t->b, &t->b.e->c1, 2, FAKE_REG, "a/b", t->b.digest);
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);
    reply_range(t, fake_xfer_range(131072), 206, 131072, 196607,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    assert_int_equal(fake_xfer_count(), 2);
    fake_conn_take(&t->b.e->c1);

    fake_cancel(t->b.e->jobs, &t->b.e->c1, 2);
    assert_true(blob_present(t->b.e->jobs, t->b.digest));
    assert_true(t->b.e->jobs->finished_unwaited == 1);
    assert_true(t->b.e->jobs->dropped == 1);

    for (i = 0; i < 2; i++) {
        assert_int_equal(fake_xfer_at(i)->prio, XFER_PRIO_PREFETCH);
    }

    reply_range(t, fake_xfer_range(196608), 206, 196608, 262143,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(262144), 206, 262144, CHUNK_TOTAL - 1,
                CHUNK_TOTAL, 0, CURLE_OK);

    assert_stored_data(t);
    assert_int_equal(fake_tmp_count(t->b.e), 0);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");
}


/* finish_fraction 0: even a download nearly done is dropped. */
static void
test_idle_fraction_zero(void **state)
{
    chunk_test_t  *t = *state;

    t->b.e->cf->finish_fraction = 0.0;

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);
    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    reply_range(t, fake_xfer_range(131072), 206, 131072, 196607,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(196608), 206, 196608, 262143,
                CHUNK_TOTAL, 0, CURLE_OK);
    assert_int_equal(fake_xfer_count(), 1);

    jobs_on_gone(&t->b.e->c1, t->b.e->jobs);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(t->b.e), 0);
    assert_false(blob_present(t->b.e->jobs, t->b.digest));
    assert_true(t->b.e->jobs->finished_unwaited == 0);
}


/* A prefetch a client joined and left goes on, back at prefetch
 * priority: the fetcher wanted it before the client did. */
static void
test_prefetch_left(void **state)
{
    chunk_test_t  *t = *state;
    int            i;

    assert_int_equal(blob_prefetch(t->b.e->jobs,
                                   &t->b.e->cf->registries[0], "a/b",
                                   t->b.digest), 1);
    join(&t->b, &t->b.e->c2, 7, FAKE_SOLO, "x/y", t->b.digest);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_CLIENT);

    fake_cancel(t->b.e->jobs, &t->b.e->c2, 7);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_PREFETCH);
    assert_true(t->b.e->jobs->dropped == 0);

    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);

    for (i = 0; i < 3; i++) {
        assert_int_equal(fake_xfer_at(i)->prio, XFER_PRIO_PREFETCH);
    }

    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    reply_range(t, fake_xfer_range(131072), 206, 131072, 196607,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(196608), 206, 196608, 262143,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(262144), 206, 262144, CHUNK_TOTAL - 1,
                CHUNK_TOTAL, 0, CURLE_OK);
    assert_stored_data(t);
    assert_string_equal(fake_conn_take(&t->b.e->c2), "");
}


/* Torn down mid-download (the probe in, chunks in flight): the temp
 * file goes. */
static void
test_destroy_removes_tmp(void **state)
{
    chunk_test_t  *t = *state;

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);
    assert_int_equal(fake_tmp_count(t->b.e), 1);
    fake_conn_take(&t->b.e->c1);

    jobs_destroy(t->b.e->jobs);
    t->b.e->jobs = jobs_create(t->b.e->cf, (xfer_multi_t *) t->b.e,
                               t->b.e->tokens);
    assert_non_null(t->b.e->jobs);

    assert_int_equal(fake_tmp_count(t->b.e), 0);
    assert_int_equal(fake_xfer_count(), 0);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");
}


static void
test_prefetch_promoted(void **state)
{
    chunk_test_t  *t = *state;
    char           tmp[OCI_PATH_MAX], want[OCI_PATH_MAX + 64];
    int            i;

    assert_int_equal(blob_prefetch(t->b.e->jobs,
                                   &t->b.e->cf->registries[0], "a/b",
                                   t->b.digest), 1);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_PREFETCH);

    /* in flight: not twice */
    assert_int_equal(blob_prefetch(t->b.e->jobs,
                                   &t->b.e->cf->registries[0], "a/b",
                                   t->b.digest), 0);

    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);
    assert_int_equal(fake_xfer_count(), 3);

    for (i = 0; i < 3; i++) {
        assert_int_equal(fake_xfer_at(i)->prio, XFER_PRIO_PREFETCH);
    }

    join(&t->b, &t->b.e->c2, 7, FAKE_SOLO, "x/y", t->b.digest);

    for (i = 0; i < 3; i++) {
        assert_int_equal(fake_xfer_at(i)->prio, XFER_PRIO_CLIENT);
    }

    assert_size_tmp(&t->b, &t->b.e->c2, 7, CHUNK_TOTAL, tmp, sizeof(tmp));
    assert_progress(&t->b.e->c2, 7, CHUNK_SIZE);

    /* what starts from now on is the client's too */
    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    assert_int_equal(fake_xfer_range(262144)->prio, XFER_PRIO_CLIENT);

    reply_range(t, fake_xfer_range(131072), 206, 131072, 196607,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(196608), 206, 196608, 262143,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(262144), 206, 262144, CHUNK_TOTAL - 1,
                CHUNK_TOTAL, 0, CURLE_OK);

    snprintf(want, sizeof(want), "PROGRESS 7 %d\nDONE 7\n", CHUNK_TOTAL);
    assert_string_equal(fake_conn_take(&t->b.e->c2), want);
    assert_stored_data(t);
    assert_int_equal(fake_xfers.started, 5);

    /* stored: nothing to prefetch */
    assert_int_equal(blob_prefetch(t->b.e->jobs,
                                   &t->b.e->cf->registries[0], "a/b",
                                   t->b.digest), 0);
    assert_int_equal(fake_xfers.started, 5);
}


/* A token goes to chunks on the registry's own origin (a default port
 * written out is the same origin), never to another host. */
static void
test_chunks_token(void **state)
{
    chunk_test_t  *t = *state;
    fake_reply_t   r;
    xfer_t        *x;
    char           tmp[OCI_PATH_MAX];

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);

    memset(&r, 0, sizeof(r));
    r.status = 401;
    r.www_authenticate = "Bearer realm=\"https://auth.test/token\","
                         "service=\"reg.test\"";
    fake_xfer_reply(fake_xfer_one(), &r);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.body = "{\"token\":\"tok-9\"}";
    fake_xfer_reply(fake_xfer_one(), &r);

    x = fake_xfer_one();
    assert_string_equal(x->bearer, "tok-9");
    assert_int_equal(x->ranged, 1);
    snprintf(x->effective_url, sizeof(x->effective_url),
             "HTTP://ONE.test:80/v2/a/b/blobs/%s", t->b.digest);
    reply_range(t, x, 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0, CURLE_OK);
    assert_size_tmp(&t->b, &t->b.e->c1, 1, CHUNK_TOTAL, tmp, sizeof(tmp));

    assert_int_equal(fake_xfer_count(), 3);
    assert_string_equal(fake_xfer_at(0)->bearer, "tok-9");
    assert_string_equal(fake_xfer_at(2)->bearer, "tok-9");

    jobs_destroy(t->b.e->jobs);
    t->b.e->jobs = jobs_create(t->b.e->cf, (xfer_multi_t *) t->b.e,
                               t->b.e->tokens);
    assert_non_null(t->b.e->jobs);
    fake_conn_take(&t->b.e->c1);

    /* the same host on another port is another origin */
    request(&t->b, &t->b.e->c1, 2, FAKE_REG, "a/b", t->b.digest);
    x = fake_xfer_one();
    assert_string_equal(x->bearer, "tok-9");
    snprintf(x->effective_url, sizeof(x->effective_url),
             "http://one.test:8080/v2/a/b/blobs/%s", t->b.digest);
    reply_range(t, x, 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0, CURLE_OK);
    assert_int_equal(fake_xfer_count(), 3);
    assert_string_equal(fake_xfer_at(0)->bearer, "");
    assert_string_equal(fake_xfer_at(2)->bearer, "");
}


#define TOKEN_CHALLENGE  "Bearer realm=\"https://auth.test/token\"," \
                         "service=\"reg.test\""
#define TOKEN_REQUEST    "https://auth.test/token?service=reg.test" \
                         "&scope=repository%3Aa%2Fb%3Apull"


static void
reply_status(xfer_t *x, long status, const char *body,
    const char *challenge)
{
    fake_reply_t  r;

    assert_non_null(x);
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.body = body;
    r.www_authenticate = challenge;
    fake_xfer_reply(x, &r);
}


/* The live transfer to url, or NULL. */
static xfer_t *
xfer_to(const char *url)
{
    xfer_t  *x;
    int      i;

    for (i = 0; (x = fake_xfer_at(i)) != NULL; i++) {
        if (strcmp(x->url, url) == 0) {
            return x;
        }
    }

    return NULL;
}


/* A chunked download of a/b on FAKE_REG's first endpoint with token
 * tok-1 (granted for 300 s): chunks 1, 2 and 3 running with it. */
static void
chunks_with_token(chunk_test_t *t)
{
    char  tmp[OCI_PATH_MAX];
    int   started;

    started = fake_xfers.started;
    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    reply_status(fake_xfer_one(), 401, NULL, TOKEN_CHALLENGE);
    assert_string_equal(fake_xfer_one()->url, TOKEN_REQUEST);
    reply_status(fake_xfer_one(), 200,
                 "{\"token\":\"tok-1\",\"expires_in\":300}", NULL);
    assert_string_equal(fake_xfer_one()->bearer, "tok-1");
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL, 0,
                CURLE_OK);
    assert_size_tmp(&t->b, &t->b.e->c1, 1, CHUNK_TOTAL, tmp, sizeof(tmp));

    assert_int_equal(fake_xfer_count(), 3);
    assert_string_equal(fake_xfer_range(65536)->bearer, "tok-1");
    assert_string_equal(fake_xfer_range(131072)->bearer, "tok-1");
    assert_string_equal(fake_xfer_range(196608)->bearer, "tok-1");
    assert_int_equal(fake_xfers.started - started, 6);
}


/* The token runs out mid-download: the chunk that went without one and
 * those whose token ran out get 401; one new token is fetched while no
 * chunk starts, the chunks go again with it, none counted as failed, and
 * the blob is stored. */
static void
test_chunks_token_expires(void **state)
{
    chunk_test_t  *t = *state;
    char           want[OCI_PATH_MAX + 64];
    int            i;

    chunks_with_token(t);

    /* chunk 3 fails 3 times: one more failure would end the download */
    for (i = 0; i < 3; i++) {
        reply_status(fake_xfer_range(196608), 500, NULL, NULL);
        assert_string_equal(fake_xfer_range(196608)->bearer, "tok-1");
    }

    /* past the token's life: the next chunk goes without it */
    fake_now += 300;
    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    assert_string_equal(fake_xfer_range(262144)->bearer, "");

    /* its 401: a token request, no chunk started meanwhile */
    reply_status(fake_xfer_range(262144), 401, NULL, TOKEN_CHALLENGE);
    assert_int_equal(fake_xfer_count(), 3);
    assert_non_null(xfer_to(TOKEN_REQUEST));
    assert_int_equal(fake_xfers.started, 11);

    /* a chunk whose token ran out: it waits for the same request */
    reply_status(fake_xfer_range(131072), 401, NULL, TOKEN_CHALLENGE);
    assert_int_equal(fake_xfer_count(), 2);
    assert_int_equal(fake_xfers.started, 11);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");

    /* the token: both go again with it */
    reply_status(xfer_to(TOKEN_REQUEST), 200,
                 "{\"token\":\"tok-2\",\"expires_in\":300}", NULL);
    assert_int_equal(fake_xfer_count(), 3);
    assert_string_equal(fake_xfer_range(131072)->bearer, "tok-2");
    assert_string_equal(fake_xfer_range(262144)->bearer, "tok-2");

    /* chunk 3 with the old token: again at once with the new one, no
     * other token request, and not its fourth failure */
    reply_status(fake_xfer_range(196608), 401, NULL, TOKEN_CHALLENGE);
    assert_null(xfer_to(TOKEN_REQUEST));
    assert_int_equal(fake_xfer_count(), 3);
    assert_string_equal(fake_xfer_range(196608)->bearer, "tok-2");
    assert_int_equal(fake_xfers.started, 14);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");

    reply_range(t, fake_xfer_range(131072), 206, 131072, 196607,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(196608), 206, 196608, 262143,
                CHUNK_TOTAL, 0, CURLE_OK);
    reply_range(t, fake_xfer_range(262144), 206, 262144, CHUNK_TOTAL - 1,
                CHUNK_TOTAL, 0, CURLE_OK);

    snprintf(want, sizeof(want), "PROGRESS 1 %d\nDONE 1\n", CHUNK_TOTAL);
    assert_string_equal(fake_conn_take(&t->b.e->c1), want);
    assert_stored_data(t);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(stats_registry(&t->b.e->cf->registries[0])
                     ->auth_failures, 0);
}


/* Refusals of chunks end the download with 401, not with 503 after the
 * retries: the token service says no; the token just granted is refused;
 * a refusal remembered (another job met it); a redirect target's 401. */
static void
test_chunks_token_refused(void **state)
{
    chunk_test_t  *t = *state;

    /* the token service refuses the new token */
    chunks_with_token(t);
    fake_now += 300;
    reply_status(fake_xfer_range(65536), 401, NULL, TOKEN_CHALLENGE);
    reply_status(xfer_to(TOKEN_REQUEST), 401, NULL, NULL);
    assert_string_equal(fake_conn_take(&t->b.e->c1),
                        "FAIL 1 401 UNAUTHORIZED no token granted\n");
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(t->b.e), 0);
    assert_not_stored(&t->b);

    /* the refusal is remembered: a new download meets it at once */
    request(&t->b, &t->b.e->c1, 2, FAKE_REG, "a/b", t->b.digest);
    assert_int_equal(fake_xfer_one()->answer, 401);
    reply_status(fake_xfer_one(), 401, NULL, NULL);
    assert_string_equal(fake_conn_take(&t->b.e->c1),
                        "FAIL 2 401 UNAUTHORIZED upstream refused access\n");
    fake_now += 3600;

    /* a token granted for the chunks and refused right away */
    chunks_with_token(t);
    fake_now += 300;
    reply_status(fake_xfer_range(65536), 401, NULL, TOKEN_CHALLENGE);
    reply_status(xfer_to(TOKEN_REQUEST), 200, "{\"token\":\"tok-2\"}",
                 NULL);
    assert_string_equal(fake_xfer_range(65536)->bearer, "tok-2");
    reply_status(fake_xfer_range(65536), 401, NULL, TOKEN_CHALLENGE);
    assert_string_equal(fake_conn_take(&t->b.e->c1),
                        "FAIL 1 401 UNAUTHORIZED upstream refused access\n");
    assert_int_equal(fake_xfer_count(), 0);
    assert_null(token_lookup(t->b.e->tokens, fake_registry(t->b.e, FAKE_REG), 0,
                             "repository:a/b:pull"));
    fake_now += 3600;

    /* a refusal another job met: the next chunk is answered 401 without
     * going out, and that ends the download */
    chunks_with_token(t);
    token_refuse(t->b.e->tokens, &t->b.e->cf->registries[0], 0,
                 "repository:a/b:pull");
    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    assert_int_equal(fake_xfer_range(262144)->answer, 401);
    reply_status(fake_xfer_range(262144), 401, NULL, NULL);
    assert_string_equal(fake_conn_take(&t->b.e->c1),
                        "FAIL 1 401 UNAUTHORIZED upstream refused access\n");
    assert_int_equal(fake_xfer_count(), 0);
    fake_now += 3600;

    /* a chunk redirected elsewhere that meets a 401 there: no token
     * request to the realm it names, no credentials: its URL expired,
     * the registry is asked for another one */
    chunks_with_token(t);
    snprintf(fake_xfer_range(131072)->effective_url, 8192, CDN_URL);
    reply_status(fake_xfer_range(131072), 401, NULL,
                 "Bearer realm=\"https://evil.test/token\"");
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");
    assert_string_equal(fake_xfer_range(131072)->url, t->b.url);
    assert_string_equal(fake_xfer_range(131072)->bearer, "tok-1");
    assert_int_equal(fake_xfer_count(), 3);
}


/* The signed URL of a CDN expires mid-download (403, 410): the registry
 * is asked for a fresh redirect by the chunk that met it, the others wait
 * for it, and every chunk asks the fresh URL for the bytes it lacks only;
 * the blob is stored.  A fresh URL refused at once counts as a failure. */
static void
test_chunks_url_renewed(void **state)
{
    static const char  cdn2[] = "http://cdn.test/blobs/x?sig=fresh";

    chunk_test_t  *t = *state;
    char           want[OCI_PATH_MAX + 64];
    xfer_t        *x;

    chunks_via_cdn(t);
    assert_chunk_xfer(fake_xfer_range(65536), CDN_URL, 65536, 131071);

    /* chunk 2 breaks after 20000 bytes with a 403 of the CDN */
    reply_range(t, fake_xfer_range(131072), 206, 131072, 196607,
                CHUNK_TOTAL, 20000, CURLE_PARTIAL_FILE);
    x = fake_xfer_range(151072);
    snprintf(x->effective_url, 8192, "%s", x->url);
    reply_status(x, 403, NULL, NULL);

    /* it asks the registry for the bytes it lacks, without credentials
     * of the CDN's; no other chunk starts meanwhile */
    x = fake_xfer_range(151072);
    assert_string_equal(x->url, t->b.url);
    assert_int_equal(x->redirected, 0);
    assert_true(x->range_last == 196607);
    assert_true(stats_registry(fake_registry(t->b.e, FAKE_REG))
                    ->urls_renewed == 1);

    /* chunk 1 meets the expiry too: it waits, no new transfer */
    snprintf(fake_xfer_range(65536)->effective_url, 8192, CDN_URL);
    reply_status(fake_xfer_range(65536), 410, NULL, NULL);
    assert_null(fake_xfer_range(65536));
    assert_int_equal(fake_xfer_count(), 2);

    /* the registry redirects to a fresh URL: every chunk goes there */
    x = fake_xfer_range(151072);
    snprintf(x->effective_url, 8192, cdn2);
    reply_range(t, x, 206, 151072, 196607, CHUNK_TOTAL, 0, CURLE_OK);
    assert_string_equal(fake_xfer_range(65536)->url, cdn2);
    assert_int_equal(fake_xfer_range(65536)->redirected, 1);
    assert_string_equal(fake_xfer_range(65536)->bearer, "");

    reply_range(t, fake_xfer_range(65536), 206, 65536, 131071, CHUNK_TOTAL,
                0, CURLE_OK);
    reply_range(t, fake_xfer_range(196608), 206, 196608, 262143,
                CHUNK_TOTAL, 0, CURLE_OK);
    assert_string_equal(fake_xfer_range(262144)->url, cdn2);
    reply_range(t, fake_xfer_range(262144), 206, 262144, CHUNK_TOTAL - 1,
                CHUNK_TOTAL, 0, CURLE_OK);

    snprintf(want, sizeof(want), "PROGRESS 1 %d\nDONE 1\n", CHUNK_TOTAL);
    assert_string_equal(fake_conn_take(&t->b.e->c1), want);
    assert_stored_data(t);
    assert_int_equal(fake_xfer_count(), 0);
}


/* A CDN that refuses every fresh URL at once: the first expiry is not
 * counted, each refused renewal is, and the download ends. */
static void
test_chunks_url_refused(void **state)
{
    chunk_test_t  *t = *state;
    xfer_t        *x;
    int            i;

    chunks_via_cdn(t);

    for (i = 0; i < 5; i++) {
        x = fake_xfer_range(65536);
        assert_non_null(x);
        assert_string_equal(x->url, i == 0 ? CDN_URL : t->b.url);
        snprintf(x->effective_url, 8192, CDN_URL);
        reply_status(x, 403, NULL, NULL);
    }

    assert_string_equal(fake_conn_take(&t->b.e->c1),
                        "FAIL 1 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(t->b.e), 0);
    assert_not_stored(&t->b);
}


/* A chunk's CDN answers 429: that host is held back (Retry-After capped
 * by max_retry_after), the endpoint is not, and the download ends 429. */
static void
test_chunks_cdn_throttled(void **state)
{
    chunk_test_t       *t = *state;
    fake_reply_t        r;
    xfer_t             *x;
    endpoints_state_t   st;
    oci_registry_t     *reg;

    reg = fake_registry(t->b.e, FAKE_REG);

    chunks_via_cdn(t);

    x = fake_xfer_range(65536);
    snprintf(x->effective_url, 8192, CDN_URL);
    memset(&r, 0, sizeof(r));
    r.status = 429;
    r.retry_after_set = 1;
    r.retry_after = 86400;
    fake_xfer_reply(x, &r);

    assert_string_equal(fake_conn_take(&t->b.e->c1),
                        "FAIL 1 429 TOOMANYREQUESTS upstream redirect target "
                        "throttles, retry later\n");
    assert_string_equal(fake_xfers.held_url, CDN_URL);
    assert_int_equal(fake_xfers.held_secs, OCI_DEFAULT_MAX_RETRY_AFTER);
    assert_true(stats_registry(reg)->hosts_throttled == 1);
    endpoints_state(t->b.e->jobs->eps, reg, 0, &st);
    assert_int_equal(st.throttled, 0);
    assert_int_equal(fake_xfer_count(), 0);
    assert_not_stored(&t->b);
}


/* A 206 whose Content-Range is not what the probe asked for: a plain GET
 * from the start. */
static void
test_chunks_bad_probe_range(void **state)
{
    chunk_test_t  *t = *state;
    char           tmp[OCI_PATH_MAX];

    request(&t->b, &t->b.e->c1, 1, FAKE_REG, "a/b", t->b.digest);
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, -1, 0,
                CURLE_OK);
    assert_string_equal(fake_conn_take(&t->b.e->c1), "");
    assert_int_equal(fake_xfer_one()->ranged, 0);

    reply_range(t, fake_xfer_one(), 200, 0, CHUNK_TOTAL - 1, -1, 0,
                CURLE_OK);
    assert_size_tmp(&t->b, &t->b.e->c1, 1, CHUNK_TOTAL, tmp, sizeof(tmp));
    assert_stored_data(t);
    assert_int_equal(fake_xfers.started, 2);
}


/*
 * A cluster node's copy of a hot blob (REPLICATE, cluster.replicate
 * "hot"): from its own nginx at cluster.self, which passes it to the
 * owner; upstream if that fails.
 */

#define REPLICA_SELF  "127.0.0.9:5000"

static int
setup_replica(void **state)
{
    fake_env_extra =
        "cluster = { self = \"" REPLICA_SELF "\";\n"
        "  peers = ( \"127.0.0.8:5000\", \"" REPLICA_SELF "\" );\n"
        "  secret_file = \"cluster.secret\"; replicate = \"hot\";\n"
        "  max_replicas = 2; };\n";

    return setup(state);
}


static void
replicate(blob_test_t *t, const char *registry, const char *name,
    const char *digest)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_REPLICATE, 0);
    snprintf(m.registry, sizeof(m.registry), "%s", registry);
    snprintf(m.name, sizeof(m.name), "%s", name);
    snprintf(m.reference, sizeof(m.reference), "%s", digest);
    blob_replicate(t->e->jobs, &t->e->c1, &m);
}


/* The copy is asked of this node's nginx, as the cluster's traffic: a
 * plain GET with the mark, no proxy, no bandwidth share, no registry;
 * verified and stored like any download; nobody is answered. */
static void
test_replicate_from_peer(void **state)
{
    blob_test_t       *t = *state;
    xfer_t            *x;
    char               url[256];
    stats_registry_t  *st;

    st = stats_registry(fake_registry(t->e, FAKE_REG));
    assert_true(t->e->cf->chunks_per_blob > 0);

    replicate(t, FAKE_REG, "a/b", t->digest);

    x = fake_xfer_one();
    snprintf(url, sizeof(url), "http://" REPLICA_SELF "/v2/a/b/blobs/%s"
             "?ns=" FAKE_REG, t->digest);
    assert_string_equal(x->url, url);
    assert_string_equal(x->header, OCI_CLUSTER_REPLICA_HEADER ": 1");
    assert_int_equal(x->ranged, 0);
    assert_int_equal(x->prio, XFER_PRIO_PREFETCH);
    assert_true(x->registry == NULL);
    assert_string_equal(x->bearer, "");
    assert_int_equal(x->direct, 1);
    assert_int_equal(x->unshaped, 1);
    assert_int_equal(x->http1, 1);
    assert_true(st->cluster_replicas == 1);

    /* asked again while it runs: the same copy */
    replicate(t, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfers.started, 1);

    reply_body(t, BODY, 3, 0);
    assert_stored(t, BODY);
    assert_int_equal(fake_tmp_count(t->e), 0);
    assert_string_equal(fake_conn_take(&t->e->c1), "");
    assert_true(t->e->jobs->replicas == 0);

    /* stored: nothing more */
    replicate(t, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfers.started, 1);
    assert_true(st->cluster_replicas == 1);
    assert_true(st->cluster_replica_fallbacks == 0);
}


/* No node gives it (nginx answers 502 with every other node down, or
 * this node's nginx is away): the registry's endpoints, with their
 * ranged probe; the bytes a node sent before it broke are forgotten. */
static void
test_replicate_fallback(void **state)
{
    blob_test_t       *t = *state;
    xfer_t            *x;
    fake_reply_t       r;
    stats_registry_t  *st;

    st = stats_registry(fake_registry(t->e, FAKE_REG));

    replicate(t, FAKE_REG, "a/b", t->digest);
    fake_reply_to(fake_xfer_one(), 502, "bad gateway", NULL);

    x = fake_xfer_one();
    assert_string_equal(x->url, t->url);
    assert_string_equal(x->header, "");
    assert_int_equal(x->ranged, 1);
    assert_true(x->registry == fake_registry(t->e, FAKE_REG));
    assert_true(st->cluster_replica_fallbacks == 1);
    reply_body(t, BODY, 0, 0);
    assert_stored(t, BODY);
    assert_true(t->e->jobs->replicas == 0);

    /* a node that breaks off mid-body */
    assert_int_equal(unlink(t->blob), 0);
    replicate(t, FAKE_REG, "a/b", t->digest);

    memset(&r, 0, sizeof(r));
    r.rc = CURLE_PARTIAL_FILE;
    r.status = 200;
    r.length_set = 1;
    r.length = 11;
    r.body = "hello";
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_string_equal(fake_xfer_one()->url, t->url);
    assert_true(st->cluster_replica_fallbacks == 2);
    reply_body(t, BODY, 0, 0);
    assert_stored(t, BODY);

    /* unreachable */
    assert_int_equal(unlink(t->blob), 0);
    replicate(t, FAKE_REG, "a/b", t->digest);

    memset(&r, 0, sizeof(r));
    r.rc = CURLE_COULDNT_CONNECT;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_string_equal(fake_xfer_one()->url, t->url);
    assert_true(st->cluster_replica_fallbacks == 3);
    reply_body(t, BODY, 0, 0);
    assert_stored(t, BODY);
    assert_string_equal(fake_conn_take(&t->e->c1), "");
}


/* What a node answers: a 409 (a node that is not the owner refuses a
 * copy) and a body that is not the blob go upstream, and the mismatch
 * is not the upstream's; a 404 is the owner's answer from the upstream,
 * not asked again. */
static void
test_replicate_answers(void **state)
{
    blob_test_t       *t = *state;
    fake_reply_t       r;
    stats_registry_t  *st;

    st = stats_registry(fake_registry(t->e, FAKE_REG));

    replicate(t, FAKE_REG, "a/b", t->digest);
    fake_reply_to(fake_xfer_one(), 409, "not the owner", NULL);
    assert_string_equal(fake_xfer_one()->url, t->url);
    assert_true(st->cluster_replica_fallbacks == 1);
    reply_body(t, BODY, 0, 0);
    assert_stored(t, BODY);

    assert_int_equal(unlink(t->blob), 0);
    replicate(t, FAKE_REG, "a/b", t->digest);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.body = "HELLO WORLD";
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_string_equal(fake_xfer_one()->url, t->url);
    assert_true(st->cluster_replica_fallbacks == 2);
    assert_true(st->digest_mismatches == 0);
    reply_body(t, BODY, 0, 0);
    assert_stored(t, BODY);

    assert_int_equal(unlink(t->blob), 0);
    replicate(t, FAKE_REG, "a/b", t->digest);
    fake_reply_to(fake_xfer_one(), 404, NULL, NULL);
    assert_int_equal(fake_xfer_count(), 0);
    assert_true(st->cluster_replica_fallbacks == 2);
    assert_int_equal(fake_tmp_count(t->e), 0);
    assert_true(t->e->jobs->replicas == 0);
}


/* A client of this node that asks meanwhile (a peer's request, this node
 * the owner's failover) joins the copy like any download. */
static void
test_replicate_joined(void **state)
{
    blob_test_t  *t = *state;
    char          tmp[OCI_PATH_MAX];

    replicate(t, FAKE_REG, "a/b", t->digest);
    join(t, &t->e->c2, 4, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfers.started, 1);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_CLIENT);

    reply_body(t, BODY, 0, 0);
    assert_size_tmp(t, &t->e->c2, 4, 11, tmp, sizeof(tmp));
    assert_string_equal(fake_conn_take(&t->e->c2),
                        "PROGRESS 4 11\nDONE 4\n");
    assert_stored(t, BODY);

    /* a blob a client's job downloads already: no copy beside it */
    t->digest[7] = t->digest[7] == 'a' ? 'b' : 'a';
    request(t, &t->e->c2, 5, FAKE_REG, "a/b", t->digest);
    replicate(t, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfers.started, 2);
    assert_true(t->e->jobs->replicas == 0);
}


/* A client joined the copy and was told SIZE (it streams the temp
 * file); the node breaks off: no start over (the file would be truncated
 * under the reader), FAIL 502 to the client, the temp file gone, the
 * copies' count back to 0. */
static void
test_replicate_cut_after_size(void **state)
{
    blob_test_t   *t = *state;
    fake_reply_t   r;
    char           tmp[OCI_PATH_MAX];
    oci_msg_t      m;

    replicate(t, FAKE_REG, "a/b", t->digest);
    join(t, &t->e->c2, 4, FAKE_REG, "a/b", t->digest);

    memset(&r, 0, sizeof(r));
    r.rc = CURLE_PARTIAL_FILE;
    r.status = 200;
    r.length_set = 1;
    r.length = 11;
    r.body = "hello";
    r.body_len = 5;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_size_tmp(t, &t->e->c2, 4, 11, tmp, sizeof(tmp));
    while (fake_conn_next(&t->e->c2, &m) && m.type == OCI_MSG_PROGRESS) {
    }
    assert_int_equal(m.type, OCI_MSG_FAIL);
    assert_int_equal(m.status, 502);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_tmp_count(t->e), 0);
    assert_true(t->e->jobs->replicas == 0);
}


/* A prefetch (nobody was sent SIZE) whose probe breaks after the chunks
 * began: the probe's chunk is retried alone for the bytes it lacks, the
 * other chunks go on (the cluster copy's start over, blob_can_retry(),
 * is for its plain GET alone). */
static void
test_prefetch_probe_cut(void **state)
{
    chunk_test_t  *t = *state;

    assert_int_equal(blob_prefetch(t->b.e->jobs,
                                   &t->b.e->cf->registries[0], "a/b",
                                   t->b.digest), 1);
    reply_range(t, fake_xfer_one(), 206, 0, CHUNK_SIZE - 1, CHUNK_TOTAL,
                20000, CURLE_PARTIAL_FILE);

    assert_non_null(fake_xfer_range(65536));
    assert_non_null(fake_xfer_range(131072));
}


/* At most cluster.max_replicas at once, counted past it; what is not a
 * configured registry or a sha256 digest is left alone. */
static void
test_replicate_bounds(void **state)
{
    blob_test_t       *t = *state;
    stats_registry_t  *st;
    char               digest[OCI_DIGEST_MAX + 1];
    int                i;

    st = stats_registry(fake_registry(t->e, FAKE_REG));

    for (i = 0; i < 3; i++) {
        snprintf(digest, sizeof(digest), "sha256:%064d", i);
        replicate(t, FAKE_REG, "a/b", digest);
    }

    assert_int_equal(fake_xfer_count(), 2);
    assert_true(t->e->jobs->replicas == 2);
    assert_true(st->cluster_replicas == 2);
    assert_true(st->cluster_replicas_skipped == 1);

    replicate(t, "nowhere.test", "a/b", t->digest);
    replicate(t, FAKE_REG, "a/b", "sha512:00");
    assert_int_equal(fake_xfer_count(), 2);
    assert_string_equal(fake_conn_take(&t->e->c1), "");
}


/* A node without replicate "hot" (an nginx that read another config)
 * copies nothing. */
static void
test_replicate_off(void **state)
{
    blob_test_t  *t = *state;

    replicate(t, FAKE_REG, "a/b", t->digest);
    assert_int_equal(fake_xfers.started, 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_coalesced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_blocks, setup, teardown),
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
        cmocka_unit_test_setup_teardown(test_refused_retarget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_after_size, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_unwritable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chunks_out_of_order,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunk_retry, setup_chunks,
                                        teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunk_probe_retry,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunk_retries_run_out,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_fallback_200,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_small, setup_chunks,
                                        teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_fraction, setup_chunks,
                                        teardown_chunks),
        cmocka_unit_test_setup_teardown(test_idle_fraction_zero,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_prefetch_left, setup_chunks,
                                        teardown_chunks),
        cmocka_unit_test_setup_teardown(test_destroy_removes_tmp,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_replicate_from_peer,
                                        setup_replica, teardown),
        cmocka_unit_test_setup_teardown(test_replicate_fallback,
                                        setup_replica, teardown),
        cmocka_unit_test_setup_teardown(test_replicate_answers,
                                        setup_replica, teardown),
        cmocka_unit_test_setup_teardown(test_replicate_joined,
                                        setup_replica, teardown),
        cmocka_unit_test_setup_teardown(test_replicate_bounds,
                                        setup_replica, teardown),
        cmocka_unit_test_setup_teardown(test_replicate_cut_after_size,
                                        setup_replica, teardown),
        cmocka_unit_test_setup_teardown(test_replicate_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_prefetch_promoted,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_prefetch_probe_cut,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_token, setup_chunks,
                                        teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_bad_probe_range,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_token_expires,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_url_renewed,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_url_refused,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_cdn_throttled,
                                        setup_chunks, teardown_chunks),
        cmocka_unit_test_setup_teardown(test_chunks_token_refused,
                                        setup_chunks, teardown_chunks),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
