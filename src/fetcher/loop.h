/*
 * The fetcher's one event loop: epoll over every descriptor (the listening
 * socket, worker connections, libcurl's sockets, the curl timerfd and the
 * signalfd).
 *
 * Registrations are kept in a table indexed by fd and epoll carries only
 * the fd, so an event for a descriptor that was removed earlier in the same
 * batch finds no handler and is dropped: handlers may remove any
 * registration (their own included) at any time.
 *
 * After every batch of events the loop calls the "after" hook: that is
 * where coalesced work (progress reports, output flushing, closing
 * connections) happens, once per iteration.
 */

#ifndef FETCHER_LOOP_H
#define FETCHER_LOOP_H

#include <stdint.h>

typedef struct loop_s  loop_t;

typedef void (*loop_handler_pt)(loop_t *loop, int fd, uint32_t events,
    void *data);
typedef void (*loop_after_pt)(void *data);

/* NULL on failure (errno kept). */
loop_t *loop_create(void);
void loop_destroy(loop_t *loop);

void loop_set_after(loop_t *loop, loop_after_pt after, void *data);

/*
 * Register fd for events (EPOLLIN / EPOLLOUT ...), change its events, or
 * remove it.  0 or -1 (errno kept).  loop_del() of an unknown fd is a
 * no-op.
 */
int loop_add(loop_t *loop, int fd, uint32_t events, loop_handler_pt handler,
    void *data);
int loop_mod(loop_t *loop, int fd, uint32_t events);
int loop_del(loop_t *loop, int fd);

/* 1 if fd is registered. */
int loop_has(loop_t *loop, int fd);

/* Run until loop_stop().  Returns 0, or -1 if epoll_wait failed for good. */
int loop_run(loop_t *loop);
void loop_stop(loop_t *loop);

/*
 * One iteration of loop_run(): wait at most timeout_ms (-1: no limit) for
 * events, call their handlers, then the "after" hook (not after EINTR).
 * Returns 0, or -1 if epoll_wait failed (logged).  The unit tests step
 * the loop with it.
 */
int loop_once(loop_t *loop, int timeout_ms);

#endif /* FETCHER_LOOP_H */
