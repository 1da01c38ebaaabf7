/*
 * Unit tests for src/ctl/octl_conn.c.  The test is the fetcher: it
 * listens on a socket in a temp dir, accepts the CLI's connection and
 * writes its answer ahead (the socket buffers hold it), then reads what
 * the CLI sent and compares it byte for byte.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "octl_conn.h"
#include "test_util.h"


typedef struct {
    char          dir[64];
    char          path[128];
    int           lfd;              /* listening */
    int           sfd;              /* the fetcher's end */
    octl_conn_t   conn;
    char          err[1024];
    char          out[4096];        /* the OUT lines, '\n' after each */
} fixture_t;


static int
setup(void **state)
{
    struct sockaddr_un  sa;
    fixture_t          *f;

    f = calloc(1, sizeof(fixture_t));
    if (f == NULL) {
        return -1;
    }

    f->lfd = -1;
    f->sfd = -1;
    f->conn.fd = -1;
    strcpy(f->dir, "/tmp/oci-test-ctl.XXXXXX");

    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }

    snprintf(f->path, sizeof(f->path), "%s/f.sock", f->dir);

    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, f->path);

    if (f->lfd == -1 || bind(f->lfd, (struct sockaddr *) &sa, sizeof(sa))
        != 0 || listen(f->lfd, 4) != 0)
    {
        return -1;
    }

    *state = f;

    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    octl_conn_close(&f->conn);

    if (f->sfd != -1) {
        close(f->sfd);
    }

    if (f->lfd != -1) {
        close(f->lfd);
    }

    test_rm_rf(f->dir);
    free(f);

    return 0;
}


static void
collect(const char *line, void *data)
{
    fixture_t  *f = data;
    size_t      len = strlen(f->out);

    snprintf(f->out + len, sizeof(f->out) - len, "%s\n", line);
}


/* Connect and accept: the fetcher's end in f->sfd. */
static void
open_conn(fixture_t *f, int timeout_ms)
{
    assert_int_equal(octl_conn_open(&f->conn, f->path, timeout_ms, f->err,
                                    sizeof(f->err)), OCI_OK);
    f->sfd = accept(f->lfd, NULL, NULL);
    assert_true(f->sfd >= 0);
}


static void
answer(fixture_t *f, const char *bytes)
{
    assert_int_equal(write(f->sfd, bytes, strlen(bytes)),
                     (ssize_t) strlen(bytes));
}


/* What the CLI sent, as far as it has come. */
static void
assert_sent(fixture_t *f, const char *want)
{
    char     buf[4096];
    ssize_t  n;

    n = recv(f->sfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_true(n >= 0);
    buf[n] = '\0';

    assert_string_equal(buf, want);
}


static void
test_answer(void **state)
{
    fixture_t  *f = *state;

    open_conn(f, 5000);

    answer(f, "OUT 1 store       /var/cache/ocimirror\nOUT 1\n"
              "OUT 1 jobs        0 in flight\nEND 1 0\n");

    assert_int_equal(octl_conn_call(&f->conn, "status", collect, f, f->err,
                                    sizeof(f->err)), 0);
    assert_string_equal(f->out, "store       /var/cache/ocimirror\n\n"
                                "jobs        0 in flight\n");
    assert_sent(f, "CTL 1 status\n");

    /* the next command on the same connection has the next id; the
     * fetcher's status is the call's */
    f->out[0] = '\0';
    answer(f, "OUT 2 usage: evict --dry-run [N]\nEND 2 2\n");
    assert_int_equal(octl_conn_call(&f->conn, "evict --now", collect, f,
                                    f->err, sizeof(f->err)), 2);
    assert_string_equal(f->out, "usage: evict --dry-run [N]\n");
    assert_sent(f, "CTL 2 evict --now\n");

    answer(f, "END 3 1\n");
    assert_int_equal(octl_conn_call(&f->conn, "pin x", NULL, NULL, f->err,
                                    sizeof(f->err)), 1);
    assert_sent(f, "CTL 3 pin x\n");
}


/* An answer that arrives a byte at a time is the same answer. */
static void
test_answer_split(void **state)
{
    fixture_t   *f = *state;
    const char  *a = "OUT 1 one\nOUT 1 two\nEND 1 0\n";
    size_t       i;

    open_conn(f, 5000);

    for (i = 0; a[i] != '\0'; i++) {
        assert_int_equal(write(f->sfd, &a[i], 1), 1);
    }

    assert_int_equal(octl_conn_call(&f->conn, "pins", collect, f, f->err,
                                    sizeof(f->err)), 0);
    assert_string_equal(f->out, "one\ntwo\n");
}


static void
test_malformed(void **state)
{
    fixture_t  *f = *state;

    open_conn(f, 5000);
    answer(f, "OUT 1 fine\nHELLO there\n");

    assert_int_equal(octl_conn_call(&f->conn, "status", collect, f, f->err,
                                    sizeof(f->err)), OCI_EINVAL);
    assert_string_equal(f->out, "fine\n");
    assert_non_null(strstr(f->err, "malformed answer from the fetcher"));
    assert_non_null(strstr(f->err, f->path));
    assert_non_null(strstr(f->err, "\"HELLO there\""));
}


static void
test_wrong_id(void **state)
{
    fixture_t  *f = *state;

    open_conn(f, 5000);
    answer(f, "OUT 9 someone else's\nEND 9 0\n");

    assert_int_equal(octl_conn_call(&f->conn, "status", NULL, NULL, f->err,
                                    sizeof(f->err)), OCI_EINVAL);
    assert_non_null(strstr(f->err, "another request's id"));
}


static void
test_not_ctl_answer(void **state)
{
    fixture_t  *f = *state;

    open_conn(f, 5000);
    answer(f, "PONG 1 1\n");

    assert_int_equal(octl_conn_call(&f->conn, "status", NULL, NULL, f->err,
                                    sizeof(f->err)), OCI_EINVAL);
    assert_non_null(strstr(f->err, "neither OUT nor END"));
}


static void
test_long_line(void **state)
{
    fixture_t  *f = *state;
    char        big[OCI_IPC_LINE_MAX + 16];

    memcpy(big, "OUT 1 ", 6);
    memset(big + 6, 'x', OCI_IPC_LINE_MAX + 8);
    big[OCI_IPC_LINE_MAX + 14] = '\n';
    big[OCI_IPC_LINE_MAX + 15] = '\0';

    open_conn(f, 5000);
    answer(f, big);

    assert_int_equal(octl_conn_call(&f->conn, "status", NULL, NULL, f->err,
                                    sizeof(f->err)), OCI_EINVAL);
    assert_non_null(strstr(f->err, "a line too long"));
    assert_non_null(strstr(f->err, "xxx...\""));
}


static void
test_hang_up(void **state)
{
    fixture_t  *f = *state;

    open_conn(f, 5000);
    answer(f, "OUT 1 half an answer\n");

    /* the fetcher's half closes: the CLI's line still goes out */
    shutdown(f->sfd, SHUT_WR);

    assert_int_equal(octl_conn_call(&f->conn, "status", collect, f, f->err,
                                    sizeof(f->err)), OCI_EIO);
    assert_string_equal(f->out, "half an answer\n");
    assert_non_null(strstr(f->err, "closed the connection before its "
                                   "answer ended"));
    assert_non_null(strstr(f->err, f->path));
    assert_sent(f, "CTL 1 status\n");

    /* gone altogether before the next command */
    close(f->sfd);
    f->sfd = -1;

    assert_int_equal(octl_conn_call(&f->conn, "status", NULL, NULL, f->err,
                                    sizeof(f->err)), OCI_EIO);
    assert_non_null(strstr(f->err, "closed the connection"));
}


static void
test_timeout(void **state)
{
    fixture_t  *f = *state;

    open_conn(f, 200);
    answer(f, "OUT 1 and then nothing\n");

    assert_int_equal(octl_conn_call(&f->conn, "status", collect, f, f->err,
                                    sizeof(f->err)), OCI_EAGAIN);
    assert_string_equal(f->out, "and then nothing\n");
    assert_non_null(strstr(f->err, "did not answer within 1 s"));
    assert_non_null(strstr(f->err, f->path));
}


static void
test_stop(void **state)
{
    fixture_t              *f = *state;
    volatile sig_atomic_t   stop = 1;

    open_conn(f, 5000);
    f->conn.stop = &stop;

    assert_int_equal(octl_conn_call(&f->conn, "warm-status 1", NULL, NULL,
                                    f->err, sizeof(f->err)), OCTL_EINTR);
}


static void
test_bad_text(void **state)
{
    fixture_t  *f = *state;
    char        big[OCI_IPC_TEXT_MAX + 1];

    open_conn(f, 5000);

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    assert_int_equal(octl_conn_call(&f->conn, big, NULL, NULL, f->err,
                                    sizeof(f->err)), OCI_EINVAL);
    assert_int_equal(octl_conn_call(&f->conn, "", NULL, NULL, f->err,
                                    sizeof(f->err)), OCI_EINVAL);

    /* nothing went out */
    assert_int_equal(recv(f->sfd, big, sizeof(big), MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
}


static void
test_no_fetcher(void **state)
{
    fixture_t           *f = *state;
    struct sockaddr_un   sa;
    char                 path[128], longpath[200];
    int                  fd;

    /* no socket file */
    snprintf(path, sizeof(path), "%s/none.sock", f->dir);
    assert_int_equal(octl_conn_open(&f->conn, path, 1000, f->err,
                                    sizeof(f->err)), OCI_ENOENT);
    assert_non_null(strstr(f->err, "the fetcher is not running"));
    assert_non_null(strstr(f->err, path));
    assert_int_equal(f->conn.fd, -1);

    /* a socket file nobody listens on (a fetcher that was killed) */
    snprintf(path, sizeof(path), "%s/dead.sock", f->dir);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    close(fd);

    assert_int_equal(octl_conn_open(&f->conn, path, 1000, f->err,
                                    sizeof(f->err)), OCI_ENOENT);
    assert_non_null(strstr(f->err, "nothing listens on"));
    assert_non_null(strstr(f->err, path));

    /* no room in a socket address */
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(octl_conn_open(&f->conn, longpath, 1000, f->err,
                                    sizeof(f->err)), OCI_ERANGE);
    assert_non_null(strstr(f->err, "longer than a unix socket address"));

    /* a directory is not a socket */
    assert_int_equal(octl_conn_open(&f->conn, f->dir, 1000, f->err,
                                    sizeof(f->err)), OCI_ENOENT);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_ctl_answer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_fetcher, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
