/*
 * Unit tests for src/fetcher/server.c: a real server on a unix socket in a
 * temp dir, stepped with loop_once(), and a client socket in the test.
 * Covers the socket path (directories, mode, stale and live sockets), the
 * splitting of input into lines (partial lines, several per read, an
 * over-long or malformed line), output queuing and flushing (exact bytes,
 * EPOLLOUT when the socket is full, the SERVER_OUT_MAX cap) and closing,
 * with the temp files of BODY lines the worker never got removed.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "oci_ipc.h"
#include "loop.h"
#include "server.h"
#include "test_util.h"


#define MSGS_MAX    64
#define BODY_LINES  1000     /* of about 800 bytes: more than a socket holds */

typedef struct {
    char        dir[64];
    char        path[128];
    char        store[96];
    loop_t     *loop;
    server_t   *server;
    int         client;
    conn_t     *conn;               /* the last one a message came on */
    int         nmsgs;
    oci_msg_t   msgs[MSGS_MAX];
    unsigned    numbers[MSGS_MAX];
    int         gone;
    conn_t     *gone_conn;
    int         gone_waiters_empty;
    uint32_t    kill_id;            /* on_msg kills the conn at this id */
    int         pong;               /* on_msg answers PING with PONG */
} fixture_t;


static void
on_msg(conn_t *c, const oci_msg_t *m, void *data)
{
    fixture_t  *f = data;
    oci_msg_t   r;

    assert_true(f->nmsgs < MSGS_MAX);
    f->msgs[f->nmsgs] = *m;
    f->numbers[f->nmsgs] = conn_number(c);
    f->nmsgs++;
    f->conn = c;

    if (f->kill_id != 0 && m->id == f->kill_id) {
        conn_kill(c);

        /* a killed connection takes no more messages */
        oci_msg_init(&r, OCI_MSG_PONG, m->id);
        r.status = 1;
        assert_int_equal(conn_send(c, &r), -1);
    }

    if (f->pong && m->type == OCI_MSG_PING) {
        oci_msg_init(&r, OCI_MSG_PONG, m->id);
        r.status = 1;
        assert_int_equal(conn_send(c, &r), 0);
    }
}


static void
on_gone(conn_t *c, void *data)
{
    fixture_t  *f = data;
    queue_t    *w;

    f->gone++;
    f->gone_conn = c;

    w = conn_waiters(c);
    f->gone_waiters_empty = queue_empty(w);
}


/* What the fetcher does after every batch of events. */
static void
after(void *data)
{
    fixture_t  *f = data;

    server_flush(f->server);
}


static int
setup(void **state)
{
    fixture_t  *f;

    f = calloc(1, sizeof(fixture_t));
    assert_non_null(f);

    snprintf(f->dir, sizeof(f->dir), "/tmp/ocitest-srv.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/run/sub/fetcher.sock", f->dir);
    snprintf(f->store, sizeof(f->store), "%s/store/", f->dir);

    f->loop = loop_create();
    assert_non_null(f->loop);
    loop_set_after(f->loop, after, f);
    f->client = -1;

    *state = f;
    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;
    char        p[160];

    if (f->client != -1) {
        close(f->client);
    }

    server_destroy(f->server);
    loop_destroy(f->loop);

    unlink(f->path);
    snprintf(p, sizeof(p), "%s/run/sub", f->dir);
    rmdir(p);
    snprintf(p, sizeof(p), "%s/run", f->dir);
    rmdir(p);
    test_rm_rf(f->store);
    assert_int_equal(rmdir(f->dir), 0);

    free(f);
    return 0;
}


static void
start_server(fixture_t *f)
{
    f->server = server_create(f->loop, f->path, -1, f->store, on_msg,
                              on_gone, f);
    assert_non_null(f->server);
}


static int
client_connect(const char *path)
{
    struct sockaddr_un  sa;
    int                 fd;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);

    return fd;
}


/* Connect and let the server accept. */
static void
connect_client(fixture_t *f)
{
    f->client = client_connect(f->path);
    assert_int_equal(loop_once(f->loop, 1000), 0);
}


static void
client_write(fixture_t *f, const char *s, size_t len)
{
    assert_int_equal(write(f->client, s, len), (ssize_t) len);
}


/* Turn the loop until on_msg has seen n messages in all (or a second
 * has passed without events). */
static void
run_until_msgs(fixture_t *f, int n)
{
    int  i;

    for (i = 0; i < 50 && f->nmsgs < n; i++) {
        assert_int_equal(loop_once(f->loop, 20), 0);
    }

    assert_int_equal(f->nmsgs, n);
}


static void
run_until_gone(fixture_t *f, int n)
{
    int  i;

    for (i = 0; i < 50 && f->gone < n; i++) {
        assert_int_equal(loop_once(f->loop, 20), 0);
    }

    assert_int_equal(f->gone, n);
}


/* Read from the client until len bytes came (turning the loop so that
 * the server writes) or EOF; returns the count read. */
static size_t
client_read(fixture_t *f, char *buf, size_t len)
{
    size_t   got;
    ssize_t  n;
    int      idle;

    got = 0;
    idle = 0;

    while (got < len && idle < 50) {
        n = recv(f->client, buf + got, len - got, MSG_DONTWAIT);

        if (n > 0) {
            got += (size_t) n;
            idle = 0;
            continue;
        }

        if (n == 0) {
            break;
        }

        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        assert_int_equal(loop_once(f->loop, 20), 0);
        idle++;
    }

    return got;
}


/* The server closed the connection: EOF (after any pending bytes). */
static void
assert_client_eof(fixture_t *f)
{
    char  buf[64];

    assert_int_equal(client_read(f, buf, sizeof(buf)), 0);
}


static void
test_socket_path(void **state)
{
    fixture_t    *f = *state;
    struct stat   st;

    start_server(f);

    /* the directories were made; the workers connect through the
     * group, here the fetcher's own */
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0660);
    assert_int_equal(st.st_gid, getegid());

    server_destroy(f->server);
    f->server = NULL;
    assert_int_equal(lstat(f->path, &st), -1);
    assert_int_equal(errno, ENOENT);
}


/* A group other than the effective one that this process may give its
 * files: any for root, else a supplementary group; -1 if none. */
static long
other_group(void)
{
    gid_t  groups[256];
    int    i, n;

    if (geteuid() == 0) {
        return (long) getegid() + 1;
    }

    n = getgroups(256, groups);

    for (i = 0; i < n; i++) {
        if (groups[i] != getegid()) {
            return (long) groups[i];
        }
    }

    return -1;
}


/* socket_group: the socket is in that group, 0660 whatever the umask the
 * fetcher was started with, and the umask is given back. */
static void
test_socket_group(void **state)
{
    fixture_t    *f = *state;
    struct stat   st;
    mode_t        old, now;
    long          gid;

    gid = other_group();
    if (gid < 0) {
        gid = (long) getegid();
    }

    old = umask(0);
    f->server = server_create(f->loop, f->path, gid, f->store, on_msg,
                              on_gone, f);
    now = umask(old);
    assert_non_null(f->server);
    assert_int_equal(now, 0);

    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, SERVER_SOCKET_MODE);
    assert_int_equal(st.st_gid, (gid_t) gid);

    connect_client(f);
    server_destroy(f->server);
    f->server = NULL;
    assert_int_equal(f->gone, 1);
}


static void
test_socket_claim(void **state)
{
    fixture_t           *f = *state;
    struct sockaddr_un   sa;
    struct stat          st;
    char                 longpath[200];
    int                  fd;

    start_server(f);

    /* a live fetcher answers there: refuse, leave it alone */
    assert_null(server_create(f->loop, f->path, -1, f->store, on_msg,
                              on_gone, f));
    assert_int_equal(lstat(f->path, &st), 0);

    server_destroy(f->server);
    f->server = NULL;

    /* a stale socket file (its process died): replaced */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    assert_true(strlen(f->path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(lstat(f->path, &st), 0);

    start_server(f);
    connect_client(f);
    server_destroy(f->server);
    f->server = NULL;
    assert_int_equal(f->gone, 1);

    /* not a socket: never removed */
    fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_null(server_create(f->loop, f->path, -1, f->store, on_msg,
                              on_gone, f));
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));

    /* longer than sun_path */
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_null(server_create(f->loop, longpath, -1, f->store, on_msg,
                              on_gone, f));
}


static void
test_lines(void **state)
{
    fixture_t  *f = *state;
    static const char  three[] = "PING 1\nCANCEL 2\nPING 3\n";

    start_server(f);
    connect_client(f);

    /* several lines in one read */
    client_write(f, three, sizeof(three) - 1);
    run_until_msgs(f, 3);
    assert_int_equal(f->msgs[0].type, OCI_MSG_PING);
    assert_int_equal(f->msgs[0].id, 1);
    assert_int_equal(f->msgs[1].type, OCI_MSG_CANCEL);
    assert_int_equal(f->msgs[1].id, 2);
    assert_int_equal(f->msgs[2].id, 3);
    assert_int_equal(f->numbers[0], 1);

    /* a line in pieces, the last piece starting the next line */
    client_write(f, "BLOB 4 docker.io a/b ", 21);
    assert_int_equal(loop_once(f->loop, 100), 0);
    assert_int_equal(f->nmsgs, 3);

    client_write(f, "sha256:0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef\nPI", 74);
    run_until_msgs(f, 4);
    assert_int_equal(f->msgs[3].type, OCI_MSG_BLOB);
    assert_int_equal(f->msgs[3].id, 4);
    assert_string_equal(f->msgs[3].registry, "docker.io");
    assert_string_equal(f->msgs[3].name, "a/b");

    client_write(f, "NG 5\n", 5);
    run_until_msgs(f, 5);
    assert_int_equal(f->msgs[4].type, OCI_MSG_PING);
    assert_int_equal(f->msgs[4].id, 5);
    assert_int_equal(f->gone, 0);

    /* a second worker is another connection */
    close(f->client);
    f->client = client_connect(f->path);
    client_write(f, "PING 6\n", 7);
    run_until_msgs(f, 6);
    assert_int_equal(f->numbers[5], 2);
    assert_int_equal(f->gone, 1);
}


/* Lines before a malformed one are handled, then the worker is dropped. */
static void
test_malformed_line(void **state)
{
    fixture_t  *f = *state;
    static const char  lines[] = "PING 1\nHELLO 2\nPING 3\n";

    start_server(f);
    connect_client(f);

    client_write(f, lines, sizeof(lines) - 1);
    run_until_gone(f, 1);
    assert_int_equal(f->nmsgs, 1);
    assert_int_equal(f->msgs[0].id, 1);
    assert_ptr_equal(f->gone_conn, f->conn);
    assert_true(f->gone_waiters_empty);
    assert_client_eof(f);
}


/* OCI_IPC_LINE_MAX bytes without a newline, across two reads. */
static void
test_long_line(void **state)
{
    fixture_t  *f = *state;
    char       *junk;

    start_server(f);
    connect_client(f);

    junk = malloc(OCI_IPC_LINE_MAX);
    assert_non_null(junk);
    memset(junk, 'A', OCI_IPC_LINE_MAX);

    client_write(f, "PING 1\n", 7);
    client_write(f, junk, OCI_IPC_LINE_MAX / 2);
    run_until_msgs(f, 1);
    assert_int_equal(loop_once(f->loop, 50), 0);
    assert_int_equal(f->gone, 0);

    client_write(f, junk, OCI_IPC_LINE_MAX / 2);
    run_until_gone(f, 1);
    assert_int_equal(f->nmsgs, 1);
    assert_client_eof(f);

    free(junk);
}


static void
test_kill_from_msg(void **state)
{
    fixture_t  *f = *state;
    static const char  lines[] = "PING 1\nPING 2\nPING 3\n";

    f->kill_id = 2;
    start_server(f);
    connect_client(f);

    /* the line after the one that killed it is not handled */
    client_write(f, lines, sizeof(lines) - 1);
    run_until_gone(f, 1);
    assert_int_equal(f->nmsgs, 2);
    assert_client_eof(f);
}


static void
test_send(void **state)
{
    fixture_t  *f = *state;
    char        buf[128];
    static const char  two[] = "PING 1\nPING 2\n";
    static const char  want[] = "PONG 1 1\nPONG 2 1\n";

    f->pong = 1;
    start_server(f);
    connect_client(f);

    /* both answers leave in one flush, in order */
    client_write(f, two, sizeof(two) - 1);
    run_until_msgs(f, 2);
    assert_int_equal(client_read(f, buf, sizeof(want) - 1),
                     sizeof(want) - 1);
    assert_memory_equal(buf, want, sizeof(want) - 1);
}


/* A message that cannot be encoded still gets the worker an answer. */
static void
test_send_unencodable(void **state)
{
    fixture_t  *f = *state;
    oci_msg_t   m;
    char        buf[128];
    static const char  want[] =
        "FAIL 7 502 UNKNOWN the fetcher cannot encode its answer\n";

    start_server(f);
    connect_client(f);
    client_write(f, "PING 1\n", 7);
    run_until_msgs(f, 1);

    oci_msg_init(&m, OCI_MSG_SIZE, 7);
    m.size = 5;
    snprintf(m.path, sizeof(m.path), "/a path/with a space");
    assert_int_equal(conn_send(f->conn, &m), -1);

    assert_int_equal(client_read(f, buf, sizeof(want) - 1),
                     sizeof(want) - 1);
    assert_memory_equal(buf, want, sizeof(want) - 1);

    /* the connection lives on: it still takes messages */
    oci_msg_init(&m, OCI_MSG_PONG, 8);
    m.status = 1;
    assert_int_equal(conn_send(f->conn, &m), 0);
}


/* More than the socket holds: the rest goes out on EPOLLOUT, in order,
 * while more is queued behind it. */
static void
test_send_backlog(void **state)
{
    fixture_t  *f = *state;
    oci_msg_t   m;
    char       *buf, line[64];
    size_t      total, got, off;
    int         i, n, len;

    start_server(f);
    connect_client(f);
    client_write(f, "PING 1\n", 7);
    run_until_msgs(f, 1);

    total = 0;

    for (i = 0; i < 100000; i++) {
        oci_msg_init(&m, OCI_MSG_PROGRESS, (uint32_t) i);
        m.bytes = 1000000000LL + i;
        assert_int_equal(conn_send(f->conn, &m), 0);
        total += (size_t) snprintf(line, sizeof(line), "PROGRESS %d %lld\n",
                                   i, 1000000000LL + i);

        if (i == 50000) {
            /* half of it goes out (as much as the socket takes) */
            assert_int_equal(loop_once(f->loop, 0), 0);
        }
    }

    buf = malloc(total);
    assert_non_null(buf);

    got = client_read(f, buf, total);
    assert_int_equal(got, total);

    off = 0;

    for (i = 0; i < 100000; i++) {
        len = snprintf(line, sizeof(line), "PROGRESS %d %lld\n", i,
                       1000000000LL + i);
        n = memcmp(buf + off, line, (size_t) len);
        if (n != 0) {
            fail_msg("line %d differs", i);
        }
        off += (size_t) len;
    }

    free(buf);
    assert_int_equal(f->gone, 0);
}


/* A worker that does not read is dropped at SERVER_OUT_MAX pending. */
static void
test_send_cap(void **state)
{
    fixture_t  *f = *state;
    oci_msg_t   m;
    char        line[OCI_IPC_LINE_MAX];
    int         len, sent;

    start_server(f);
    connect_client(f);
    client_write(f, "PING 1\n", 7);
    run_until_msgs(f, 1);

    oci_msg_init(&m, OCI_MSG_SIZE, 1);
    m.size = 1;
    memset(m.path, 'p', 4000);
    m.path[0] = '/';
    m.path[4000] = '\0';

    len = oci_msg_encode(&m, line, sizeof(line));
    assert_int_equal(len, (int) strlen("SIZE 1 1 \n") + 4000);

    for (sent = 0; conn_send(f->conn, &m) == 0; sent++) {
        assert_true(sent <= SERVER_OUT_MAX / len);
    }

    assert_int_equal(sent, SERVER_OUT_MAX / len);
    assert_int_equal(conn_send(f->conn, &m), -1);

    /* closed at the next flush, and nothing more is written */
    assert_int_equal(f->gone, 0);
    assert_int_equal(server_flush(f->server), 1);
    assert_int_equal(f->gone, 1);
    assert_int_equal(server_flush(f->server), 0);
    assert_client_eof(f);
}


static void
test_peer_close(void **state)
{
    fixture_t  *f = *state;

    start_server(f);
    connect_client(f);
    client_write(f, "PING 1\n", 7);
    run_until_msgs(f, 1);

    close(f->client);
    f->client = -1;
    run_until_gone(f, 1);
    assert_ptr_equal(f->gone_conn, f->conn);
}


static void
test_destroy_closes(void **state)
{
    fixture_t  *f = *state;
    char        c;

    start_server(f);
    connect_client(f);
    client_write(f, "PING 1\n", 7);
    run_until_msgs(f, 1);

    server_destroy(f->server);
    f->server = NULL;

    assert_int_equal(f->gone, 1);
    assert_ptr_equal(f->gone_conn, f->conn);

    /* the loop no longer has the connection: read it directly */
    assert_int_equal(recv(f->client, &c, 1, MSG_DONTWAIT), 0);
}


static void
make_file(const char *path)
{
    int  fd;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);
}


/*
 * One worker connection that stops reading: a filler line (one byte
 * longer with shift), then BODY_LINES BODY lines for files in <store>/tmp, then
 * two for files the server must never remove.  The worker reads what the
 * server could write, then closes: the files of the lines it got whole are
 * its own, the others must be gone.  Returns 1 if a line was cut between
 * what the worker got and what it did not.
 */
static int
unsent_bodies_round(fixture_t *f, int shift)
{
    char        *got_buf, line[OCI_IPC_LINE_MAX], tmp[128], keep[128];
    char         nested[160];
    size_t       got, end;
    ssize_t      n;
    oci_msg_t    m;
    struct stat  st;
    int          i, len, cut;
    static char  names[BODY_LINES][320];

    snprintf(tmp, sizeof(tmp), "%stmp", f->store);
    snprintf(keep, sizeof(keep), "%skeep", f->store);
    snprintf(nested, sizeof(nested), "%s/sub/dl.nested", tmp);

    f->client = client_connect(f->path);
    client_write(f, "PING 1\n", 7);
    run_until_msgs(f, f->nmsgs + 1);

    oci_msg_init(&m, OCI_MSG_PROGRESS, shift ? 10 : 1);
    m.bytes = 0;
    assert_int_equal(conn_send(f->conn, &m), 0);
    end = (size_t) oci_msg_encode(&m, line, sizeof(line));

    for (i = 0; i < BODY_LINES; i++) {
        oci_msg_init(&m, OCI_MSG_BODY, (uint32_t) (10000 + i));
        m.status = 200;
        len = snprintf(names[i], sizeof(names[i]) - 200, "%s/dl.%04d.", tmp,
                       i);
        memset(names[i] + len, 'x', 200);
        names[i][len + 200] = '\0';
        memcpy(m.path, names[i], strlen(names[i]) + 1);
        memset(m.next, 'n', 500);
        m.next[500] = '\0';

        make_file(names[i]);

        assert_int_equal(conn_send(f->conn, &m), 0);
    }

    /* outside tmp/, or not directly in it: never the server's to remove */
    oci_msg_init(&m, OCI_MSG_BODY, 20000);
    m.status = 200;
    snprintf(m.path, sizeof(m.path), "%s", keep);
    assert_int_equal(conn_send(f->conn, &m), 0);
    snprintf(m.path, sizeof(m.path), "%s/../keep", tmp);
    assert_int_equal(conn_send(f->conn, &m), 0);
    snprintf(m.path, sizeof(m.path), "%s", nested);
    assert_int_equal(conn_send(f->conn, &m), 0);

    /* the server writes what the socket takes; the worker reads it all */
    assert_int_equal(loop_once(f->loop, 0), 0);

    got_buf = malloc(4 * 1024 * 1024);
    assert_non_null(got_buf);
    got = 0;

    for ( ;; ) {
        n = recv(f->client, got_buf + got, 4 * 1024 * 1024 - got,
                 MSG_DONTWAIT);

        if (n <= 0) {
            assert_true(n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
            break;
        }

        got += (size_t) n;
    }

    free(got_buf);

    /* some lines went out, not all */
    assert_true(got > end);
    assert_true(got < end + (size_t) BODY_LINES * 700);

    close(f->client);
    f->client = -1;
    run_until_gone(f, f->gone + 1);

    cut = 0;

    for (i = 0; i < BODY_LINES; i++) {
        oci_msg_init(&m, OCI_MSG_BODY, (uint32_t) (10000 + i));
        m.status = 200;
        memcpy(m.path, names[i], strlen(names[i]) + 1);
        memset(m.next, 'n', 500);
        m.next[500] = '\0';

        len = oci_msg_encode(&m, line, sizeof(line));
        assert_true(len > 700);

        if (got > end && got < end + (size_t) len) {
            cut = 1;
        }

        end += (size_t) len;

        if (end <= got) {
            /* the worker has it: its own to unlink */
            assert_int_equal(unlink(names[i]), 0);
            continue;
        }

        if (stat(names[i], &st) == 0) {
            fail_msg("line %d (%zu bytes of %zu sent): \"%s\" is left",
                     i, got, end, names[i]);
        }

        assert_int_equal(errno, ENOENT);
    }

    assert_int_equal(stat(keep, &st), 0);
    assert_int_equal(stat(nested, &st), 0);

    return cut;
}


static void
test_unsent_body_files_removed(void **state)
{
    fixture_t  *f = *state;
    char        p[160];
    int         cut;

    start_server(f);

    snprintf(p, sizeof(p), "%stmp", f->store);
    assert_int_equal(mkdir(f->store, 0755), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%stmp/sub", f->store);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%stmp/sub/dl.nested", f->store);
    make_file(p);
    snprintf(p, sizeof(p), "%skeep", f->store);
    make_file(p);

    /*
     * Twice, the lines shifted by one byte: the socket takes the same
     * count of bytes both times, so at least once it ends inside a line,
     * a line the worker drops and whose file must go too.
     */
    cut = unsent_bodies_round(f, 0);
    cut |= unsent_bodies_round(f, 1);

    assert_true(cut);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_socket_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_from_msg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_unencodable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_send_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_closes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unsent_body_files_removed,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
