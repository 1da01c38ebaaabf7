/*
 * Unit tests for src/fetcher/commit.c, with a real loop and thread on a
 * temp store: a verified temp file appears under its digest only after
 * the thread's commit, the callback runs on the loop with 0 and the path,
 * the descriptor is taken over and closed by the thread (none refused
 * is), a failed rename reports its errno and leaves nothing, a detached request is committed without a
 * callback, the queue bound refuses at once (EAGAIN, counted) until the
 * loop reaped, and destroy commits what is still queued.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/sha.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "commit.h"
#include "loop.h"
#include "test_util.h"


typedef struct {
    char     root[64];
    loop_t  *loop;
    int      calls;
    int      err;
    char     path[OCI_PATH_MAX];
} fixture_t;


static int
setup(void **state)
{
    fixture_t  *f;
    char        tmp[OCI_PATH_MAX];

    f = calloc(1, sizeof(fixture_t));
    assert_non_null(f);
    snprintf(f->root, sizeof(f->root), "/tmp/ocitest-commit.XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(tmp, sizeof(tmp), "%s/tmp", f->root);
    assert_int_equal(mkdir(tmp, 0755), 0);

    f->loop = loop_create();
    assert_non_null(f->loop);
    f->err = -1;

    *state = f;

    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    loop_destroy(f->loop);
    test_rm_rf(f->root);
    free(f);

    return 0;
}


static void
on_done(void *data, int err, const char *path)
{
    fixture_t  *f = data;

    f->calls++;
    f->err = err;
    snprintf(f->path, sizeof(f->path), "%s", path);
}


/* A temp file of the store holding text: its fd, path and sha256 hex. */
static int
temp_blob(fixture_t *f, const char *text, char *tmp, char *hex)
{
    unsigned char  md[SHA256_DIGEST_LENGTH];
    int            fd;

    fd = oci_store_tmp_create(f->root, tmp, OCI_PATH_MAX);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    SHA256((const unsigned char *) text, strlen(text), md);
    oci_sha256_hex(md, hex);

    return fd;
}


static void
run_until(fixture_t *f, int calls)
{
    int  i;

    for (i = 0; i < 100 && f->calls < calls; i++) {
        assert_int_equal(loop_once(f->loop, 100), 0);
    }

    assert_int_equal(f->calls, calls);
}


static void
assert_stored(fixture_t *f, const char *hex, const char *text)
{
    char         path[OCI_PATH_MAX], buf[256];
    ssize_t      n;
    int          fd;

    assert_int_equal(oci_store_blob_path(f->root, hex, path, sizeof(path)),
                     OCI_OK);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, buf, sizeof(buf));
    close(fd);
    assert_int_equal(n, (ssize_t) strlen(text));
    assert_memory_equal(buf, text, strlen(text));
}


static void
test_commit(void **state)
{
    fixture_t       *f = *state;
    commit_t        *c;
    commit_req_t    *req;
    stats_commit_t   st;
    char             tmp[OCI_PATH_MAX], hex[OCI_SHA256_HEX_LEN + 1];
    char             want[OCI_PATH_MAX];
    int              fd;

    c = commit_create(f->loop, NULL, f->root, 1, 4);
    assert_non_null(c);

    fd = temp_blob(f, "the verified bytes", tmp, hex);
    assert_int_equal(commit_submit(c, fd, tmp, hex, on_done, f, &req), 0);

    /* the callback runs on the loop, never from the thread */
    assert_int_equal(f->calls, 0);
    commit_state(c, &st);
    assert_int_equal(st.queued, 1);

    run_until(f, 1);
    assert_int_equal(f->err, 0);
    assert_int_equal(oci_store_blob_path(f->root, hex, want, sizeof(want)),
                     OCI_OK);
    assert_string_equal(f->path, want);
    assert_stored(f, hex, "the verified bytes");
    assert_int_equal(access(tmp, F_OK), -1);

    /* the descriptor was taken over (no duplicate: a fetcher out of
     * descriptors still commits), and closed by the thread */
    errno = 0;
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);

    commit_state(c, &st);
    assert_int_equal(st.queued, 0);
    assert_true(st.committed == 1 && st.failed == 0 && st.refused == 0);
    assert_true(st.longest_ns > 0 && st.busy_ns >= (unsigned long long)
                                                   st.longest_ns);

    /* a temp file that is gone: the rename fails, ENOENT, nothing
     * stored */
    fd = temp_blob(f, "vanishing bytes", tmp, hex);
    assert_int_equal(unlink(tmp), 0);
    assert_int_equal(commit_submit(c, fd, tmp, hex, on_done, f, &req), 0);
    run_until(f, 2);
    assert_int_equal(f->err, ENOENT);
    assert_int_equal(oci_store_blob_path(f->root, hex, want, sizeof(want)),
                     OCI_OK);
    assert_int_equal(access(want, F_OK), -1);
    commit_state(c, &st);
    assert_true(st.committed == 1 && st.failed == 1);

    commit_destroy(c);
}


static void
test_bound_detach_destroy(void **state)
{
    fixture_t       *f = *state;
    commit_t        *c;
    commit_req_t    *req[3];
    stats_commit_t   st;
    char             tmp[3][OCI_PATH_MAX];
    char             hex[3][OCI_SHA256_HEX_LEN + 1];
    int              fd[3], i;

    c = commit_create(f->loop, NULL, f->root, 0, 2);
    assert_non_null(c);

    for (i = 0; i < 3; i++) {
        fd[i] = temp_blob(f, i == 0 ? "zero" : i == 1 ? "one" : "two",
                          tmp[i], hex[i]);
    }

    /* two may be under way; until the loop reaped them, a third is
     * refused at once, and its descriptor stays the caller's */
    assert_int_equal(commit_submit(c, fd[0], tmp[0], hex[0], on_done, f,
                                   &req[0]), 0);
    assert_int_equal(commit_submit(c, fd[1], tmp[1], hex[1], on_done, f,
                                   &req[1]), 0);
    errno = 0;
    assert_int_equal(commit_submit(c, fd[2], tmp[2], hex[2], on_done, f,
                                   &req[2]), -1);
    assert_int_equal(errno, EAGAIN);
    assert_true(fcntl(fd[2], F_GETFD) >= 0);
    commit_state(c, &st);
    assert_true(st.refused == 1 && st.queued == 2);

    /* the first's owner went away: committed, no callback */
    commit_detach(req[0]);
    run_until(f, 1);
    commit_state(c, &st);
    assert_true(st.committed == 2 && st.queued == 0);
    assert_stored(f, hex[0], "zero");
    assert_stored(f, hex[1], "one");

    /* room again; destroy before the loop heard of it: still committed */
    assert_int_equal(commit_submit(c, fd[2], tmp[2], hex[2], on_done, f,
                                   &req[2]), 0);
    commit_destroy(c);
    assert_int_equal(f->calls, 1);
    assert_stored(f, hex[2], "two");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_detach_destroy, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
