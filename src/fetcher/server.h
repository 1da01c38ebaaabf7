/*
 * The unix socket nginx workers connect to, and one conn_t per worker.
 *
 * Input is split into lines and decoded with oci_msg_decode(); each
 * message goes to the on_msg callback.  A malformed line is logged and
 * the connection closed.  Output is queued by conn_send() and written
 * once per loop iteration by server_flush(), with EPOLLOUT armed only
 * while output is pending; a worker that lets more than SERVER_OUT_MAX
 * pile up is dropped.
 *
 * A connection is never freed under a caller's feet: conn_kill() only
 * marks it, server_flush() closes it, calling on_gone first so that the
 * job layer can drop that worker's waiters (the downloads go on).
 *
 * Out of descriptors (EMFILE, ENFILE), accepting pauses: the listening
 * socket leaves the loop, so its pending connection does not spin it,
 * and server_flush() accepts again after every turn of the loop until it
 * works, whatever freed a descriptor in that turn (a download ended, a
 * temp file was closed, a worker left).
 *
 * A BODY queued by conn_send() hands its temp file to the worker; one
 * still unsent (even in part) when its connection closes reached nobody,
 * so closing unlinks its file if it is a plain name in <store>/tmp/.
 */

#ifndef FETCHER_SERVER_H
#define FETCHER_SERVER_H

#include "oci_ipc.h"
#include "loop.h"
#include "queue.h"

#define SERVER_OUT_MAX  (16 * 1024 * 1024)

typedef struct server_s  server_t;
typedef struct conn_s    conn_t;

typedef void (*server_msg_pt)(conn_t *c, const oci_msg_t *m, void *data);
typedef void (*server_gone_pt)(conn_t *c, void *data);

/* The workers connect through the socket's group; others cannot. */
#define SERVER_SOCKET_MODE  0660

/*
 * Bind and listen on path: create its directory if missing, refuse if
 * another process answers on it, else replace a stale socket file; the
 * socket is made SERVER_SOCKET_MODE, in group gid (fetcher.socket_group;
 * -1: the fetcher's own), before it listens.  store_path: the store
 * root, whose "tmp/" holds the files of BODY answers.  NULL on failure
 * (logged).
 */
server_t *server_create(loop_t *loop, const char *path, long gid,
    const char *store_path, server_msg_pt on_msg, server_gone_pt on_gone,
    void *data);

/* Close every connection (on_gone is called) and unlink the socket. */
void server_destroy(server_t *s);

/* Write pending output and close killed connections.  Returns 1 if
 * anything was closed (more work may follow), 0 otherwise. */
int server_flush(server_t *s);

/* Queue one message.  0, or -1 if the connection is dead (or becomes
 * dead now) or the message cannot be encoded (logged). */
int conn_send(conn_t *c, const oci_msg_t *m);

/* Queue FAIL id status code message (oci_msg_fail()): an answer without
 * a job. */
void conn_send_fail(conn_t *c, uint32_t id, int status, oci_errcode_t code,
    const char *message);

/* Mark the connection for closing at the next server_flush(). */
void conn_kill(conn_t *c);

/* The list of the job layer's waiters of this connection. */
queue_t *conn_waiters(conn_t *c);

/* Their number, kept by the job layer beside the list (a bound per
 * worker needs it at every request, without a walk). */
size_t *conn_waiting(conn_t *c);

/* The user id of the process at the other end (SO_PEERCRED at accept),
 * -1 if unknown. */
long conn_peer_uid(const conn_t *c);

/* The number logs call this worker connection by. */
unsigned conn_number(const conn_t *c);

#endif /* FETCHER_SERVER_H */
