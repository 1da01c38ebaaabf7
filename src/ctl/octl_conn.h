/*
 * ocimirrorctl's connection to the fetcher: its unix socket, a CTL line
 * out, OUT lines and one END back (oci_ipc.h).  One command at a time on
 * a connection; a connection may carry many in turn (warm polls its
 * status on the one it queued the warm on).
 *
 * The fetcher answers every command at once (work that takes long, warm
 * and scrub, is started and then polled), so an answer that takes longer
 * than the timeout means a stuck fetcher: the call gives up rather than
 * hang a script.
 *
 * Errors come back as a negative code with one line for the operator in
 * the caller's buffer, naming the socket; nothing here prints.
 */

#ifndef OCTL_CONN_H
#define OCTL_CONN_H

#include <signal.h>
#include <stdint.h>
#include <sys/un.h>

#include "oci.h"
#include "oci_ipc.h"

#define OCTL_SOCKET_MAX  (sizeof(((struct sockaddr_un *) 0)->sun_path))

/* the call was given up because *stop was set (Ctrl-C) */
#define OCTL_EINTR  (-100)

/* An OUT line of an answer, as it arrives. */
typedef void (*octl_out_pt)(const char *line, void *data);

typedef struct {
    int                     fd;
    uint32_t                id;           /* of the last CTL sent */
    int                     timeout_ms;   /* for a whole answer */
    volatile sig_atomic_t  *stop;         /* NULL: wait regardless */
    char                    path[OCTL_SOCKET_MAX];
    size_t                  len;          /* bytes in buf */
    char                    buf[OCI_IPC_LINE_MAX];
} octl_conn_t;

/*
 * Connect to the fetcher's socket at path.  OCI_OK; OCI_ENOENT when no
 * fetcher listens there (no socket file, or one nobody accepts on);
 * OCI_EIO for anything else (EACCES: not allowed to use the socket), or
 * OCI_ERANGE for a path longer than a socket address holds.  err names
 * the socket and what to do.
 */
int octl_conn_open(octl_conn_t *c, const char *path, int timeout_ms,
    char *err, size_t errlen);

/*
 * Send the command line text (a CTL: at most OCI_IPC_TEXT_MAX - 1 bytes,
 * no control byte) and hand each OUT line of its answer to out.  Returns
 * the END's status (0 ok, 1 failed, 2 usage, as the fetcher says), or
 * OCI_EINVAL (text cannot be sent, or the answer is malformed), OCI_EIO
 * (the fetcher hung up, or a read or write failed), OCI_EAGAIN (no END
 * within the timeout) or OCTL_EINTR, with err filled.  After an error
 * the connection is of no further use.
 */
int octl_conn_call(octl_conn_t *c, const char *text, octl_out_pt out,
    void *data, char *err, size_t errlen);

void octl_conn_close(octl_conn_t *c);

#endif /* OCTL_CONN_H */
