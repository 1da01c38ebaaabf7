/*
 * ocimirrorctl's connection to the fetcher (see octl_conn.h).
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "octl_conn.h"


static long long
octl_conn_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int
octl_conn_open(octl_conn_t *c, const char *path, int timeout_ms,
    char *err, size_t errlen)
{
    struct sockaddr_un  sa;
    size_t              len;
    int                 fd, e;

    memset(c, 0, sizeof(octl_conn_t));
    c->fd = -1;
    c->timeout_ms = timeout_ms;

    len = strlen(path);

    if (len == 0 || len >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "the fetcher's socket path \"%s\" is empty or "
                 "longer than a unix socket address holds (%zu bytes)", path,
                 sizeof(sa.sun_path) - 1);
        return OCI_ERANGE;
    }

    memcpy(c->path, path, len + 1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(err, errlen, "socket() failed: %s", strerror(errno));
        return OCI_EIO;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len + 1);

    /* a unix socket connects at once or not at all: no timeout needed */
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        e = errno;
        close(fd);

        switch (e) {

        case ENOENT:
            snprintf(err, errlen, "the fetcher is not running: there is no "
                     "socket %s (start ocimirror-fetcher, or name its socket "
                     "with -s or -c)", path);
            return OCI_ENOENT;

        case ECONNREFUSED:
            snprintf(err, errlen, "the fetcher is not running: nothing "
                     "listens on %s (start ocimirror-fetcher)", path);
            return OCI_ENOENT;

        case EACCES:
        case EPERM:
            snprintf(err, errlen, "cannot use the fetcher's socket %s: %s: "
                     "run as root or as a user allowed to use the socket",
                     path, strerror(e));
            return OCI_EIO;

        default:
            snprintf(err, errlen, "cannot connect to the fetcher's socket "
                     "%s: %s", path, strerror(e));
            return OCI_EIO;
        }
    }

    c->fd = fd;

    return OCI_OK;
}


/* Read what the socket has into buf; 0, or an error with err filled. */
static int
octl_conn_fill(octl_conn_t *c, long long deadline, char *err, size_t errlen)
{
    struct pollfd  pfd;
    long long      left;
    ssize_t        n;
    int            rc;

    for ( ;; ) {
        if (c->stop != NULL && *c->stop) {
            snprintf(err, errlen, "interrupted");
            return OCTL_EINTR;
        }

        left = deadline - octl_conn_now_ms();

        if (left <= 0) {
            snprintf(err, errlen, "the fetcher did not answer within %d s "
                     "(socket %s; -t waits longer)",
                     (c->timeout_ms + 999) / 1000, c->path);
            return OCI_EAGAIN;
        }

        pfd.fd = c->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;

        rc = poll(&pfd, 1, left > 1000 ? 1000 : (int) left);

        if (rc == -1) {
            if (errno == EINTR) {
                continue;           /* *stop is looked at above */
            }

            snprintf(err, errlen, "poll() failed: %s", strerror(errno));
            return OCI_EIO;
        }

        if (rc == 0) {
            continue;
        }

        n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);

        if (n > 0) {
            c->len += (size_t) n;
            return 0;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == 0 || errno == ECONNRESET) {
            snprintf(err, errlen, "the fetcher closed the connection before "
                     "its answer ended (socket %s; see the fetcher's log)",
                     c->path);
            return OCI_EIO;
        }

        snprintf(err, errlen, "read(%s) failed: %s", c->path,
                 strerror(errno));
        return OCI_EIO;
    }
}


/* The start of a line that is no answer, printable, for an error. */
static void
octl_conn_malformed(octl_conn_t *c, const char *why, char *err,
    size_t errlen)
{
    char    shown[64];
    size_t  i;

    for (i = 0; i < c->len && i < sizeof(shown) - 1; i++) {
        if (c->buf[i] == '\n') {
            break;
        }

        shown[i] = (c->buf[i] >= 0x20 && c->buf[i] < 0x7f) ? c->buf[i] : '?';
    }

    shown[i] = '\0';

    snprintf(err, errlen, "malformed answer from the fetcher on %s (%s): "
             "\"%s%s\"", c->path, why, shown,
             i < c->len && c->buf[i] != '\n' ? "..." : "");
}


int
octl_conn_call(octl_conn_t *c, const char *text, octl_out_pt out,
    void *data, char *err, size_t errlen)
{
    oci_msg_t   m;
    long long   deadline;
    size_t      len, used, sent;
    ssize_t     n;
    char        line[OCI_IPC_LINE_MAX];
    int         rc;

    len = strlen(text);

    if (len == 0 || len >= sizeof(m.text)) {
        snprintf(err, errlen, "a command line is 1 to %zu bytes",
                 sizeof(m.text) - 1);
        return OCI_EINVAL;
    }

    oci_msg_init(&m, OCI_MSG_CTL, ++c->id);
    memcpy(m.text, text, len + 1);

    rc = oci_msg_encode(&m, line, sizeof(line));
    if (rc < 0) {
        snprintf(err, errlen, "the command line cannot be sent");
        return OCI_EINVAL;
    }

    for (sent = 0; sent < (size_t) rc; sent += (size_t) n) {
        /* MSG_NOSIGNAL: a fetcher gone away is an error, not SIGPIPE */
        n = send(c->fd, line + sent, (size_t) rc - sent, MSG_NOSIGNAL);

        if (n == -1) {
            if (errno == EINTR) {
                n = 0;
                continue;
            }

            if (errno == EPIPE || errno == ECONNRESET) {
                snprintf(err, errlen, "the fetcher closed the connection "
                         "(socket %s; see the fetcher's log)", c->path);

            } else {
                snprintf(err, errlen, "cannot send to the fetcher on %s: %s",
                         c->path, strerror(errno));
            }

            return OCI_EIO;
        }
    }

    deadline = octl_conn_now_ms() + c->timeout_ms;

    for ( ;; ) {
        rc = oci_msg_decode(c->buf, c->len, &m, &used);

        if (rc == OCI_EAGAIN) {
            rc = octl_conn_fill(c, deadline, err, errlen);
            if (rc != 0) {
                return rc;
            }

            continue;
        }

        if (rc != OCI_OK) {
            octl_conn_malformed(c, rc == OCI_ERANGE ? "a line too long"
                                                    : "not a protocol line",
                                err, errlen);
            return OCI_EINVAL;
        }

        if ((m.type != OCI_MSG_OUT && m.type != OCI_MSG_END)
            || m.id != c->id)
        {
            octl_conn_malformed(c, m.id != c->id ? "another request's id"
                                                 : "neither OUT nor END",
                                err, errlen);
            return OCI_EINVAL;
        }

        c->len -= used;
        memmove(c->buf, c->buf + used, c->len);

        if (m.type == OCI_MSG_END) {
            return m.status;
        }

        if (out != NULL) {
            out(m.text, data);
        }
    }
}


void
octl_conn_close(octl_conn_t *c)
{
    if (c->fd != -1) {
        close(c->fd);
        c->fd = -1;
    }
}
