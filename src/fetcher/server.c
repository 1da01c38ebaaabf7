/*
 * The workers' unix socket and connections (see server.h).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

#define SERVER_IN_CAP     (2 * OCI_IPC_LINE_MAX)
#define SERVER_READS_MAX  16      /* reads per event: be fair to others */
#define SERVER_BACKLOG    128

struct server_s {
    loop_t          *loop;
    int              fd;
    char            *path;
    char            *tmp_dir;     /* "<store>/tmp/", BODY files */
    size_t           tmp_len;
    server_msg_pt    on_msg;
    server_gone_pt   on_gone;
    void            *data;
    queue_t          conns;       /* conn_t.link */
    queue_t          flushq;      /* conn_t.flush_link: output queued */
    queue_t          deadq;       /* conn_t.dead_link: to be closed */
    unsigned         next_number;
    int              accept_paused;
    int              accept_retrying;   /* server_accept_retry() */
};

struct conn_s {
    queue_t          link;
    queue_t          flush_link;
    queue_t          dead_link;
    queue_t          waiters;     /* owned by the job layer */
    size_t           waiting;     /* their number, kept by it too */
    server_t        *server;
    int              fd;
    unsigned         number;
    long             uid;         /* the peer's, -1 if unknown */
    int              dead;
    int              want_write;  /* EPOLLOUT armed */
    size_t           in_len;
    char             in[SERVER_IN_CAP];
    char            *out;         /* whole lines from out[0] on */
    size_t           out_pos;
    size_t           out_len;
    size_t           out_cap;
};

static void server_accept_handler(loop_t *loop, int fd, uint32_t events,
    void *data);
static void conn_handler(loop_t *loop, int fd, uint32_t events, void *data);
static void conn_close(conn_t *c);
static void server_accept_retry(server_t *s);
static size_t conn_unsent_line(const conn_t *c);
static void conn_release_unsent(conn_t *c);
static void server_release(server_t *s, const char *path);


/* mkdir -p of the directory part of path. */
static int
server_mkdirs(const char *path)
{
    char    dir[OCI_PATH_MAX];
    char   *p;
    size_t  len;

    len = strlen(path);
    if (len >= sizeof(dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }

    memcpy(dir, path, len + 1);

    p = strrchr(dir, '/');
    if (p == NULL || p == dir) {
        return 0;
    }

    *p = '\0';

    for (p = dir + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }

        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            return -1;
        }
        *p = '/';
    }

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        return -1;
    }

    return 0;
}


/* If a socket file is in the way: refuse when a fetcher answers on it,
 * remove it when it is a leftover.  0 or -1 (logged). */
static int
server_claim_path(const struct sockaddr_un *sa, const char *path)
{
    struct stat  st;
    int          fd, rc;

    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            return 0;
        }

        log_error("lstat(\"%s\") failed: %s", path, strerror(errno));
        return -1;
    }

    if (!S_ISSOCK(st.st_mode)) {
        log_error("\"%s\" exists and is not a socket", path);
        return -1;
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        log_error("socket() failed: %s", strerror(errno));
        return -1;
    }

    rc = connect(fd, (const struct sockaddr *) sa, sizeof(*sa));
    close(fd);

    if (rc == 0) {
        log_error("another fetcher is running on \"%s\"", path);
        return -1;
    }

    if (errno != ECONNREFUSED && errno != ENOENT) {
        log_error("connect(\"%s\") failed: %s", path, strerror(errno));
        return -1;
    }

    if (unlink(path) != 0 && errno != ENOENT) {
        log_error("unlink(\"%s\") failed: %s", path, strerror(errno));
        return -1;
    }

    log_info("removed stale socket \"%s\"", path);

    return 0;
}


server_t *
server_create(loop_t *loop, const char *path, long gid,
    const char *store_path, server_msg_pt on_msg, server_gone_pt on_gone,
    void *data)
{
    server_t            *s;
    struct sockaddr_un   sa;
    struct stat          st;
    mode_t               mask;
    size_t               root;
    int                  fd, rc;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_error("socket path \"%s\" is too long (max %zu bytes)", path,
                  sizeof(sa.sun_path) - 1);
        return NULL;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);

    if (server_mkdirs(path) != 0) {
        log_error("cannot create the directory of \"%s\": %s", path,
                  strerror(errno));
        return NULL;
    }

    if (server_claim_path(&sa, path) != 0) {
        return NULL;
    }

    s = calloc(1, sizeof(server_t));
    if (s == NULL) {
        log_error("out of memory");
        return NULL;
    }

    /* the root without its trailing slashes, as oci_store_tmp_create()
     * builds the paths */
    root = strlen(store_path);

    while (root > 0 && store_path[root - 1] == '/') {
        root--;
    }

    s->tmp_len = root + sizeof("/tmp/") - 1;
    s->tmp_dir = malloc(s->tmp_len + 1);
    s->path = strdup(path);

    if (s->tmp_dir == NULL || s->path == NULL) {
        log_error("out of memory");
        free(s->tmp_dir);
        free(s->path);
        free(s);
        return NULL;
    }

    memcpy(s->tmp_dir, store_path, root);
    memcpy(s->tmp_dir + root, "/tmp/", sizeof("/tmp/"));

    s->loop = loop;
    s->on_msg = on_msg;
    s->on_gone = on_gone;
    s->data = data;
    s->fd = -1;
    queue_init(&s->conns);
    queue_init(&s->flushq);
    queue_init(&s->deadq);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        log_error("socket() failed: %s", strerror(errno));
        goto failed;
    }

    s->fd = fd;

    /*
     * bind() makes the file with the umask's mode: under umask 0177 it is
     * the fetcher's alone from the first instant, whatever the umask we
     * were started with.  The group is then given, and only then its
     * bits, all before listen(): until then a connect() is refused
     * anyway.  lchown(): the name is not followed if it was swapped.
     */
    mask = umask(0177);
    rc = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
    umask(mask);

    if (rc != 0) {
        log_error("bind(\"%s\") failed: %s", path, strerror(errno));
        goto failed;
    }

    if (lstat(path, &st) != 0) {
        log_error("lstat(\"%s\") failed: %s", path, strerror(errno));
        goto failed_bound;
    }

    /* no chown() when the group is ours already (the units: the sandbox
     * may refuse the call) */
    if (gid >= 0 && st.st_gid != (gid_t) gid
        && lchown(path, (uid_t) -1, (gid_t) gid) != 0)
    {
        log_error("chown(\"%s\", group %ld) failed: %s", path, gid,
                  strerror(errno));
        goto failed_bound;
    }

    /* the workers, another user, connect through the group */
    if (chmod(path, SERVER_SOCKET_MODE) != 0) {
        log_error("chmod(\"%s\") failed: %s", path, strerror(errno));
        goto failed_bound;
    }

    if (listen(fd, SERVER_BACKLOG) != 0) {
        log_error("listen(\"%s\") failed: %s", path, strerror(errno));
        goto failed_bound;
    }

    if (loop_add(loop, fd, EPOLLIN, server_accept_handler, s) != 0) {
        log_error("epoll_ctl(listen) failed: %s", strerror(errno));
        goto failed_bound;
    }

    return s;

failed_bound:

    unlink(path);

failed:

    if (s->fd != -1) {
        close(s->fd);
    }

    free(s->tmp_dir);
    free(s->path);
    free(s);

    return NULL;
}


void
server_destroy(server_t *s)
{
    queue_t  *q;

    if (s == NULL) {
        return;
    }

    while (!queue_empty(&s->conns)) {
        q = queue_head(&s->conns);
        conn_close(queue_data(q, conn_t, link));
    }

    loop_del(s->loop, s->fd);
    close(s->fd);

    if (unlink(s->path) != 0 && errno != ENOENT) {
        log_error("unlink(\"%s\") failed: %s", s->path, strerror(errno));
    }

    free(s->tmp_dir);
    free(s->path);
    free(s);
}


static void
server_accept_handler(loop_t *loop, int fd, uint32_t events, void *data)
{
    server_t      *s = data;
    conn_t        *c;
    struct ucred   cred;
    socklen_t      len;
    int            cfd;

    for ( ;; ) {
        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }

            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }

            /* EMFILE and friends: stop listening, or the level-triggered
             * event spins the loop; server_flush() tries again after
             * every turn of the loop, whatever closed a descriptor */
            if (!s->accept_retrying) {
                log_error("accept4() failed: %s, not accepting workers "
                          "until a descriptor is free", strerror(errno));
            }

            if (loop_mod(loop, fd, 0) == 0) {
                s->accept_paused = 1;
            }

            return;
        }

        c = calloc(1, sizeof(conn_t));
        if (c == NULL) {
            log_error("out of memory for a worker connection");
            close(cfd);
            return;
        }

        c->server = s;
        c->fd = cfd;
        c->number = ++s->next_number;
        c->uid = -1;

        len = sizeof(cred);

        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            c->uid = (long) cred.uid;
        }
        queue_init(&c->flush_link);
        queue_init(&c->dead_link);
        queue_init(&c->waiters);

        if (loop_add(loop, cfd, EPOLLIN, conn_handler, c) != 0) {
            log_error("epoll_ctl(worker) failed: %s", strerror(errno));
            close(cfd);
            free(c);
            return;
        }

        queue_insert_tail(&s->conns, &c->link);

        log_info("worker #%u connected", c->number);
    }
}


void
conn_send_fail(conn_t *c, uint32_t id, int status, oci_errcode_t code,
    const char *message)
{
    oci_msg_t  m;

    oci_msg_fail(&m, id, status, code, message);
    conn_send(c, &m);
}


void
conn_kill(conn_t *c)
{
    if (c->dead) {
        return;
    }

    c->dead = 1;
    queue_remove(&c->flush_link);
    queue_insert_tail(&c->server->deadq, &c->dead_link);
}


queue_t *
conn_waiters(conn_t *c)
{
    return &c->waiters;
}


size_t *
conn_waiting(conn_t *c)
{
    return &c->waiting;
}


long
conn_peer_uid(const conn_t *c)
{
    return c->uid;
}


unsigned
conn_number(const conn_t *c)
{
    return c->number;
}


static void
conn_close(conn_t *c)
{
    server_t  *s = c->server;

    /* the job layer drops this worker's waiters; downloads go on */
    s->on_gone(c, s->data);

    queue_remove(&c->link);
    queue_remove(&c->flush_link);
    queue_remove(&c->dead_link);

    loop_del(s->loop, c->fd);
    close(c->fd);

    log_info("worker #%u disconnected", c->number);

    conn_release_unsent(c);

    free(c->out);
    free(c);
}


/* The start of the first line not written whole: the worker has every
 * line before it, and drops the part of it it may have got. */
static size_t
conn_unsent_line(const conn_t *c)
{
    const char  *nl;

    nl = memrchr(c->out, '\n', c->out_pos);

    return nl != NULL ? (size_t) (nl + 1 - c->out) : 0;
}


/*
 * The connection closes with output unsent: a BODY in it handed over a
 * temp file that the worker never heard of, so it is nobody's.
 */
static void
conn_release_unsent(conn_t *c)
{
    oci_msg_t   m;
    size_t      off, consumed;
    char       *nl;

    if (c->out_pos == c->out_len) {
        return;
    }

    off = conn_unsent_line(c);

    /* conn_send() queues whole lines only */

    while ((nl = memchr(c->out + off, '\n', c->out_len - off)) != NULL) {

        if (oci_msg_decode(c->out + off, (size_t) (nl + 1 - (c->out + off)),
                           &m, &consumed)
            == OCI_OK
            && m.type == OCI_MSG_BODY)
        {
            server_release(c->server, m.path);
        }

        off = (size_t) (nl + 1 - c->out);
    }
}


/* Unlink the file of a BODY nobody got: only a plain name directly
 * under <store>/tmp/, whatever else a line may say. */
static void
server_release(server_t *s, const char *path)
{
    const char  *name;

    if (strncmp(path, s->tmp_dir, s->tmp_len) != 0) {
        return;
    }

    name = path + s->tmp_len;

    if (*name == '\0' || strchr(name, '/') != NULL
        || strstr(name, "..") != NULL)
    {
        return;
    }

    if (unlink(path) == 0) {
        log_debug("removed \"%s\": its BODY was never sent", path);

    } else if (errno != ENOENT) {
        log_error("unlink(\"%s\") failed: %s", path, strerror(errno));
    }
}


/* Log a rejected line, printable and short. */
static void
conn_log_bad_line(conn_t *c, const char *line, size_t len, const char *why)
{
    char    buf[161];
    size_t  i, n;

    n = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;

    for (i = 0; i < n; i++) {
        buf[i] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '?';
    }

    buf[n] = '\0';

    log_error("worker #%u sent %s, closing it: \"%s%s\"", c->number, why,
              buf, len > n ? "..." : "");
}


/* Decode and dispatch every complete line in the input buffer. */
static void
conn_process(conn_t *c)
{
    server_t   *s = c->server;
    oci_msg_t   m;
    size_t      off, consumed;
    int         rc;
    char       *nl;

    off = 0;

    while (!c->dead && off < c->in_len) {
        consumed = 0;
        rc = oci_msg_decode(c->in + off, c->in_len - off, &m, &consumed);

        if (rc == OCI_EAGAIN) {
            break;
        }

        if (rc == OCI_ERANGE) {
            conn_log_bad_line(c, c->in + off, c->in_len - off,
                              "an over-long line");
            conn_kill(c);
            break;
        }

        if (rc != OCI_OK) {
            nl = memchr(c->in + off, '\n', c->in_len - off);
            conn_log_bad_line(c, c->in + off,
                              nl != NULL ? (size_t) (nl - (c->in + off))
                                         : c->in_len - off,
                              "a malformed line");
            conn_kill(c);
            break;
        }

        off += consumed;
        s->on_msg(c, &m, s->data);
    }

    if (c->dead) {
        c->in_len = 0;
        return;
    }

    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
}


static void
conn_read(conn_t *c)
{
    ssize_t  n;
    int      i;

    for (i = 0; i < SERVER_READS_MAX && !c->dead; i++) {
        n = read(c->fd, c->in + c->in_len, SERVER_IN_CAP - c->in_len);

        if (n > 0) {
            c->in_len += (size_t) n;
            conn_process(c);
            continue;
        }

        if (n == 0) {
            conn_kill(c);
            return;
        }

        if (errno == EINTR) {
            continue;
        }

        if (errno == ECONNRESET) {
            log_info("worker #%u went away", c->number);
            conn_kill(c);

        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            log_error("read() from worker #%u failed: %s", c->number,
                      strerror(errno));
            conn_kill(c);
        }

        return;
    }
}


static void
conn_write(conn_t *c)
{
    ssize_t   n;
    uint32_t  events;

    while (c->out_pos < c->out_len) {
        n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
                 MSG_NOSIGNAL);

        if (n > 0) {
            c->out_pos += (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }

        if (errno == EPIPE || errno == ECONNRESET) {
            log_info("worker #%u went away", c->number);

        } else {
            log_error("send() to worker #%u failed: %s", c->number,
                      strerror(errno));
        }

        conn_kill(c);
        return;
    }

    if (c->out_pos == c->out_len) {
        c->out_pos = 0;
        c->out_len = 0;
    }

    events = EPOLLIN | (c->out_len > 0 ? EPOLLOUT : 0);

    if ((events & EPOLLOUT) != (c->want_write ? EPOLLOUT : 0)) {
        if (loop_mod(c->server->loop, c->fd, events) != 0) {
            log_error("epoll_ctl(worker #%u) failed: %s", c->number,
                      strerror(errno));
            conn_kill(c);
            return;
        }

        c->want_write = (events & EPOLLOUT) != 0;
    }
}


static void
conn_handler(loop_t *loop, int fd, uint32_t events, void *data)
{
    conn_t  *c = data;

    if (c->dead) {
        return;
    }

    if (events & EPOLLOUT) {
        conn_write(c);
    }

    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        conn_read(c);
    }
}


int
conn_send(conn_t *c, const oci_msg_t *m)
{
    char       line[OCI_IPC_LINE_MAX];
    char      *out;
    size_t     need, cap, start;
    int        n;
    oci_msg_t  fail;

    if (c->dead) {
        return -1;
    }

    n = oci_msg_encode(m, line, sizeof(line));
    if (n < 0) {
        log_error("cannot encode a message (type %d) for worker #%u: %d",
                  (int) m->type, c->number, n);

        /* the worker still gets an answer for this request */
        if (m->type != OCI_MSG_FAIL) {
            oci_msg_init(&fail, OCI_MSG_FAIL, m->id);
            fail.status = 502;
            snprintf(fail.code, sizeof(fail.code), "UNKNOWN");
            snprintf(fail.message, sizeof(fail.message),
                     "the fetcher cannot encode its answer");
            conn_send(c, &fail);
        }

        return -1;
    }

    if (c->out_pos > 0 && c->out_len + (size_t) n > c->out_cap) {
        /* the line being written stays whole: conn_close() may read it */
        start = conn_unsent_line(c);
        memmove(c->out, c->out + start, c->out_len - start);
        c->out_len -= start;
        c->out_pos -= start;
    }

    need = c->out_len + (size_t) n;

    if (need > SERVER_OUT_MAX) {
        log_error("worker #%u does not read its answers (over %d bytes "
                  "pending), closing it", c->number, SERVER_OUT_MAX);
        conn_kill(c);
        return -1;
    }

    if (need > c->out_cap) {
        cap = c->out_cap ? c->out_cap : 4096;
        while (cap < need) {
            cap *= 2;
        }

        out = realloc(c->out, cap);
        if (out == NULL) {
            log_error("out of memory for worker #%u, closing it", c->number);
            conn_kill(c);
            return -1;
        }

        c->out = out;
        c->out_cap = cap;
    }

    memcpy(c->out + c->out_len, line, (size_t) n);
    c->out_len += (size_t) n;

    if (!queue_linked(&c->flush_link)) {
        queue_insert_tail(&c->server->flushq, &c->flush_link);
    }

    return 0;
}


int
server_flush(server_t *s)
{
    queue_t  *q;
    conn_t   *c;
    int       closed;

    while (!queue_empty(&s->flushq)) {
        q = queue_head(&s->flushq);
        queue_remove(q);
        c = queue_data(q, conn_t, flush_link);
        conn_write(c);
    }

    closed = 0;

    while (!queue_empty(&s->deadq)) {
        q = queue_head(&s->deadq);
        c = queue_data(q, conn_t, dead_link);
        conn_close(c);
        closed = 1;
    }

    if (s->accept_paused) {
        server_accept_retry(s);
    }

    return closed;
}


/*
 * Accept is paused (out of descriptors): this turn of the loop may have
 * freed one, wherever (a download ended, a temp file was closed, a worker
 * left), so accept again now.  While nothing frees one, this costs one
 * failed accept4() per turn, and a turn needs an event: no spin.
 */
static void
server_accept_retry(server_t *s)
{
    unsigned  accepted;

    if (loop_mod(s->loop, s->fd, EPOLLIN) != 0) {
        return;
    }

    /* pauses again, quietly, if there is still no descriptor (maybe
     * after taking the one connection a freed descriptor allows) */
    accepted = s->next_number;
    s->accept_paused = 0;
    s->accept_retrying = 1;
    server_accept_handler(s->loop, s->fd, EPOLLIN, s);
    s->accept_retrying = 0;

    if (!s->accept_paused || s->next_number != accepted) {
        log_info("accepting workers again");
    }
}
