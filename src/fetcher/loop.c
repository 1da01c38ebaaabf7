/*
 * The epoll loop (see loop.h).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define LOOP_EVENTS  64

typedef struct {
    loop_handler_pt   handler;    /* NULL: not registered */
    void             *data;
    uint32_t          events;
} loop_slot_t;

struct loop_s {
    int               epfd;
    int               stop;
    loop_slot_t      *slots;      /* indexed by fd */
    size_t            nslots;
    loop_after_pt     after;
    void             *after_data;
    loop_stats_t      stats;
};


const long long  loop_stall_bounds_ns[LOOP_STALL_BOUNDS] = {
    100000LL, 1000000LL, 2500000LL, 5000000LL, 10000000LL, 25000000LL,
    50000000LL, 100000000LL, 250000000LL, 500000000LL, 1000000000LL
};

static const loop_stats_t  loop_no_stats;


loop_t *
loop_create(void)
{
    loop_t  *loop;

    loop = calloc(1, sizeof(loop_t));
    if (loop == NULL) {
        return NULL;
    }

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd == -1) {
        free(loop);
        return NULL;
    }

    return loop;
}


void
loop_destroy(loop_t *loop)
{
    if (loop == NULL) {
        return;
    }

    close(loop->epfd);
    free(loop->slots);
    free(loop);
}


void
loop_set_after(loop_t *loop, loop_after_pt after, void *data)
{
    loop->after = after;
    loop->after_data = data;
}


static int
loop_grow(loop_t *loop, int fd)
{
    size_t        n;
    loop_slot_t  *slots;

    if ((size_t) fd < loop->nslots) {
        return 0;
    }

    n = loop->nslots ? loop->nslots : 64;
    while (n <= (size_t) fd) {
        n *= 2;
    }

    slots = realloc(loop->slots, n * sizeof(loop_slot_t));
    if (slots == NULL) {
        return -1;
    }

    memset(slots + loop->nslots, 0, (n - loop->nslots) * sizeof(loop_slot_t));
    loop->slots = slots;
    loop->nslots = n;

    return 0;
}


int
loop_add(loop_t *loop, int fd, uint32_t events, loop_handler_pt handler,
    void *data)
{
    struct epoll_event  ev;

    if (fd < 0) {
        errno = EBADF;
        return -1;
    }

    if (loop_grow(loop, fd) != 0) {
        errno = ENOMEM;
        return -1;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.fd = fd;

    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        return -1;
    }

    loop->slots[fd].handler = handler;
    loop->slots[fd].data = data;
    loop->slots[fd].events = events;

    return 0;
}


int
loop_mod(loop_t *loop, int fd, uint32_t events)
{
    struct epoll_event  ev;

    if (!loop_has(loop, fd)) {
        errno = ENOENT;
        return -1;
    }

    if (loop->slots[fd].events == events) {
        return 0;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.fd = fd;

    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
        return -1;
    }

    loop->slots[fd].events = events;

    return 0;
}


int
loop_del(loop_t *loop, int fd)
{
    if (!loop_has(loop, fd)) {
        return 0;
    }

    loop->slots[fd].handler = NULL;
    loop->slots[fd].data = NULL;
    loop->slots[fd].events = 0;

    /* the fd may already be closed (curl closes some sockets before it
     * tells us): then the kernel dropped it from the set by itself */
    if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) != 0
        && errno != EBADF && errno != ENOENT)
    {
        return -1;
    }

    return 0;
}


int
loop_has(loop_t *loop, int fd)
{
    return fd >= 0 && (size_t) fd < loop->nslots
           && loop->slots[fd].handler != NULL;
}


void
loop_stop(loop_t *loop)
{
    loop->stop = 1;
}


const loop_stats_t *
loop_stats(const loop_t *loop)
{
    return loop != NULL ? &loop->stats : &loop_no_stats;
}


static long long
loop_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


/* One iteration took ns.  Nearly all take less than the first bound:
 * the search ends at its first comparison. */
static void
loop_count(loop_t *loop, long long ns)
{
    size_t         i;
    loop_stats_t  *st;

    st = &loop->stats;
    st->iterations++;
    st->busy_ns += (unsigned long long) ns;

    if (ns > st->longest_ns) {
        st->longest_ns = ns;
    }

    for (i = 0; i < LOOP_STALL_BOUNDS && ns > loop_stall_bounds_ns[i]; i++) {
        /* the bucket of ns */
    }

    st->buckets[i]++;
}


int
loop_once(loop_t *loop, int timeout_ms)
{
    int                 n, i, fd;
    long long           start;
    loop_slot_t        *slot;
    struct epoll_event  events[LOOP_EVENTS];

    n = epoll_wait(loop->epfd, events, LOOP_EVENTS, timeout_ms);

    if (n == -1) {
        if (errno == EINTR) {
            return 0;
        }

        log_error("epoll_wait() failed: %s", strerror(errno));
        return -1;
    }

    /* from here to the next epoll_wait() nothing else is served */
    start = loop_now_ns();

    for (i = 0; i < n; i++) {
        fd = events[i].data.fd;

        if (!loop_has(loop, fd)) {
            continue;
        }

        slot = &loop->slots[fd];
        slot->handler(loop, fd, events[i].events, slot->data);
    }

    if (loop->after != NULL) {
        loop->after(loop->after_data);
    }

    loop_count(loop, loop_now_ns() - start);

    return 0;
}


int
loop_run(loop_t *loop)
{
    while (!loop->stop) {
        if (loop_once(loop, -1) != 0) {
            return -1;
        }
    }

    return 0;
}
