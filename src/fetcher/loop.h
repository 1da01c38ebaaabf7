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
 *
 * Stalls.  While the loop handles a batch (its events, the timers among
 * them, the after hook) no other descriptor is served: a worker's
 * request, a transfer's bytes and a probe all wait.  So the loop times
 * each iteration, from the return of epoll_wait() to its next call, with
 * two readings of CLOCK_MONOTONIC (clock_gettime() is answered by the
 * vDSO, no syscall), and keeps the longest since the start and a
 * histogram of them (loop_stats()).  The longest says how bad it ever
 * was; the histogram's counters only grow, so any number of scrapers can
 * each take the difference over a window of their own (how many
 * iterations of that window passed 10 or 50 ms) without disturbing the
 * others, as a "longest since the last scrape" reset by every reader
 * would.
 */

#ifndef FETCHER_LOOP_H
#define FETCHER_LOOP_H

#include <stdint.h>

typedef struct loop_s  loop_t;

typedef void (*loop_handler_pt)(loop_t *loop, int fd, uint32_t events,
    void *data);
typedef void (*loop_after_pt)(void *data);

/* The histogram's buckets: an iteration is counted in the first whose
 * bound (in nanoseconds) it does not pass, or in the last, unbounded,
 * one.  The bounds are loop_stall_bounds_ns[]: 100 us, 1, 2.5, 5, 10,
 * 25, 50, 100, 250, 500 ms, 1 s. */
#define LOOP_STALL_BOUNDS  11

extern const long long  loop_stall_bounds_ns[LOOP_STALL_BOUNDS];

typedef struct {
    unsigned long long  iterations;     /* batches handled */
    unsigned long long  busy_ns;        /* their sum */
    long long           longest_ns;     /* the longest since the start */
    unsigned long long  buckets[LOOP_STALL_BOUNDS + 1];
                                        /* per bucket, not cumulative */
} loop_stats_t;

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

/* The stall counters of loop (see above); loop NULL: all zero (a fetcher
 * without a loop, in the unit tests). */
const loop_stats_t *loop_stats(const loop_t *loop);

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
