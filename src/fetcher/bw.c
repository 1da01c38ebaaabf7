/*
 * Bandwidth limits: token buckets, paused transfers, the resume timer (see
 * bw.h).
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bw.h"
#include "log.h"

struct bw_s {
    loop_t              *loop;
    const oci_config_t  *cf;
    int                  timerfd;       /* -1: no limit configured */
    int                  armed;
    bw_bucket_t          global;        /* rate 0: none */
    bw_bucket_t         *regs;          /* per registry; rate 0: none */
    queue_t              paused;        /* bw_flow_t, in pause order */
};


void
bw_bucket_init(bw_bucket_t *b, long long rate, const struct timespec *now)
{
    b->rate = rate;
    b->burst = (double) rate * BW_BURST_MS / 1000.0;
    b->busy = (double) rate * BW_BUSY_MS / 1000.0;

    if (b->burst < 1.0) {
        b->burst = 1.0;
    }

    if (b->busy < b->burst) {
        b->busy = b->burst;
    }

    b->tokens = b->burst;
    b->last = *now;
}


void
bw_bucket_refill(bw_bucket_t *b, const struct timespec *now, double cap)
{
    double  elapsed;

    elapsed = (double) (now->tv_sec - b->last.tv_sec)
              + (double) (now->tv_nsec - b->last.tv_nsec) / 1e9;

    if (elapsed <= 0.0) {
        return;
    }

    b->last = *now;

    if (b->tokens >= cap) {
        return;
    }

    b->tokens += elapsed * (double) b->rate;

    if (b->tokens > cap) {
        b->tokens = cap;
    }
}


static void bw_tick(loop_t *loop, int fd, uint32_t events, void *data);


bw_t *
bw_create(loop_t *loop, const oci_config_t *cf)
{
    bw_t             *bw;
    struct timespec   now;
    size_t            i;
    int               limited;

    bw = calloc(1, sizeof(bw_t));
    if (bw == NULL) {
        log_error("out of memory");
        return NULL;
    }

    bw->loop = loop;
    bw->cf = cf;
    bw->timerfd = -1;
    queue_init(&bw->paused);

    clock_gettime(CLOCK_MONOTONIC, &now);
    limited = cf->bandwidth_limit > 0;

    if (limited) {
        bw_bucket_init(&bw->global, cf->bandwidth_limit, &now);
    }

    if (cf->n_registries > 0) {
        bw->regs = calloc(cf->n_registries, sizeof(bw_bucket_t));
        if (bw->regs == NULL) {
            log_error("out of memory");
            free(bw);
            return NULL;
        }
    }

    for (i = 0; i < cf->n_registries; i++) {
        if (cf->registries[i].bandwidth_limit > 0) {
            bw_bucket_init(&bw->regs[i], cf->registries[i].bandwidth_limit,
                           &now);
            limited = 1;
        }
    }

    if (!limited) {
        return bw;
    }

    bw->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (bw->timerfd == -1) {
        log_error("timerfd_create() failed: %s", strerror(errno));
        free(bw->regs);
        free(bw);
        return NULL;
    }

    if (loop_add(loop, bw->timerfd, EPOLLIN, bw_tick, bw) != 0) {
        log_error("epoll_ctl(timerfd) failed: %s", strerror(errno));
        close(bw->timerfd);
        free(bw->regs);
        free(bw);
        return NULL;
    }

    return bw;
}


void
bw_destroy(bw_t *bw)
{
    if (bw == NULL) {
        return;
    }

    while (!queue_empty(&bw->paused)) {
        bw_flow_remove(bw, queue_data(queue_head(&bw->paused), bw_flow_t,
                                      link));
    }

    if (bw->timerfd != -1) {
        loop_del(bw->loop, bw->timerfd);
        close(bw->timerfd);
    }

    free(bw->regs);
    free(bw);
}


void
bw_flow_init(bw_t *bw, bw_flow_t *f, const oci_registry_t *reg, CURL *easy)
{
    bw_bucket_t  *rb;
    int           n;

    memset(f, 0, sizeof(bw_flow_t));
    queue_init(&f->link);
    f->easy = easy;

    n = 0;

    if (bw->global.rate > 0) {
        f->bucket[n++] = &bw->global;
    }

    if (reg != NULL && bw->regs != NULL) {
        rb = &bw->regs[reg - bw->cf->registries];

        if (rb->rate > 0) {
            f->bucket[n++] = rb;
        }
    }
}


long long
bw_flow_rate(const bw_flow_t *f)
{
    long long  rate;
    int        i;

    rate = 0;

    for (i = 0; i < 2 && f->bucket[i] != NULL; i++) {
        if (rate == 0 || f->bucket[i]->rate < rate) {
            rate = f->bucket[i]->rate;
        }
    }

    return rate;
}


/* Every bucket of f holds tokens beyond what a tick promised away. */
static int
bw_ready(const bw_flow_t *f)
{
    int  i;

    for (i = 0; i < 2 && f->bucket[i] != NULL; i++) {
        if (f->bucket[i]->tokens - f->bucket[i]->reserved <= 0.0) {
            return 0;
        }
    }

    return 1;
}


/* A paused flow waits for one of f's buckets: f must queue behind it. */
static int
bw_contended(const bw_flow_t *f)
{
    int  i;

    for (i = 0; i < 2 && f->bucket[i] != NULL; i++) {
        if (f->bucket[i]->waiters > 0) {
            return 1;
        }
    }

    return 0;
}


/* Count the paused f as waiting for each of its buckets that holds no
 * tokens for it, and if behind, that other flows wait for: those are what
 * it queues for; flows that share none of them need not wait behind it. */
static void
bw_wait(bw_flow_t *f, int behind)
{
    bw_bucket_t  *b;
    int           i;

    for (i = 0; i < 2 && f->bucket[i] != NULL; i++) {
        b = f->bucket[i];

        if (!f->waits[i]
            && (b->tokens - b->reserved <= 0.0 || (behind && b->waiters > 0)))
        {
            f->waits[i] = 1;
            b->waiters++;
        }
    }
}


static void
bw_unwait(bw_flow_t *f)
{
    int  i;

    for (i = 0; i < 2 && f->bucket[i] != NULL; i++) {
        if (f->waits[i]) {
            f->waits[i] = 0;
            f->bucket[i]->waiters--;
        }
    }
}


static void
bw_arm(bw_t *bw, int on)
{
    struct itimerspec  its;

    if (bw->armed == on) {
        return;
    }

    memset(&its, 0, sizeof(its));

    if (on) {
        its.it_value.tv_nsec = BW_TICK_MS * 1000000L;
        its.it_interval.tv_nsec = BW_TICK_MS * 1000000L;
    }

    if (timerfd_settime(bw->timerfd, 0, &its, NULL) != 0) {
        log_error("timerfd_settime() failed: %s", strerror(errno));
        return;
    }

    bw->armed = on;
}


/* A resumed flow no longer needs the block a tick promised it. */
static void
bw_release(bw_flow_t *f)
{
    int  i;

    if (!f->resumed) {
        return;
    }

    for (i = 0; i < 2 && f->bucket[i] != NULL; i++) {
        f->bucket[i]->reserved -= BW_BLOCK;

        if (f->bucket[i]->reserved < 0.0) {
            f->bucket[i]->reserved = 0.0;
        }
    }

    f->resumed = 0;
}


int
bw_admit(bw_t *bw, bw_flow_t *f, size_t n)
{
    struct timespec  now;
    int              i, turn;

    clock_gettime(CLOCK_MONOTONIC, &now);

    for (i = 0; i < 2 && f->bucket[i] != NULL; i++) {
        bw_bucket_refill(f->bucket[i], &now,
                         f->bucket[i]->waiters > 0 ? f->bucket[i]->busy
                                                   : f->bucket[i]->burst);
    }

    turn = f->resumed;
    bw_release(f);

    /* while others wait for one of its buckets, only a flow a tick
     * resumed may go on: the queue is the order of turns */
    if ((turn || !bw_contended(f)) && bw_ready(f)) {
        for (i = 0; i < 2 && f->bucket[i] != NULL; i++) {
            f->bucket[i]->tokens -= (double) n;
        }

        f->taken += (long long) n;
        return 1;
    }

    if (!f->paused) {
        f->paused = 1;
        bw_wait(f, 1);
        queue_insert_tail(&bw->paused, &f->link);
    }

    bw_arm(bw, 1);

    return 0;
}


void
bw_flow_remove(bw_t *bw, bw_flow_t *f)
{
    bw_release(f);

    if (f->paused) {
        queue_remove(&f->link);
        bw_unwait(f);
        f->paused = 0;
    }
}


static void
bw_tick_refill(bw_bucket_t *b, const struct timespec *now)
{
    bw_bucket_refill(b, now, b->waiters > 0 ? b->busy : b->burst);
}


/*
 * Every BW_TICK_MS while flows are paused: refill, then resume them in
 * turn while tokens last.  A resumed flow is promised a block of each of
 * its buckets until it takes its bytes, so that a curl which delivers the
 * kept block later than curl_easy_pause() cannot make a tick resume more
 * flows than the tokens cover.
 */
static void
bw_tick(loop_t *loop, int fd, uint32_t events, void *data)
{
    bw_t             *bw = data;
    bw_flow_t        *f;
    queue_t          *q;
    struct timespec   now;
    uint64_t          count;
    size_t            i, n;
    int               k;
    CURLcode          rc;

    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        log_error("read(timerfd) failed: %s", strerror(errno));
    }

    n = 0;

    for (q = queue_head(&bw->paused); q != queue_sentinel(&bw->paused);
         q = queue_next(q))
    {
        n++;
    }

    /* what the time since the last refill earned belongs to the flows
     * that wait, even if this tick comes late; an idle bucket saves up
     * a burst only */
    clock_gettime(CLOCK_MONOTONIC, &now);

    if (bw->global.rate > 0) {
        bw_tick_refill(&bw->global, &now);
    }

    for (i = 0; i < bw->cf->n_registries; i++) {
        if (bw->regs[i].rate > 0) {
            bw_tick_refill(&bw->regs[i], &now);
        }
    }

    /* each paused flow is looked at once: one that is resumed and pauses
     * again goes to the end and waits for the next tick */
    for (i = 0; i < n && !queue_empty(&bw->paused); i++) {
        if (bw->global.rate > 0
            && bw->global.tokens - bw->global.reserved <= 0.0)
        {
            break;
        }

        q = queue_head(&bw->paused);
        f = queue_data(q, bw_flow_t, link);
        queue_remove(q);

        bw_unwait(f);

        if (!bw_ready(f)) {
            /* its registry's bucket is empty: others may go first; it
             * waits for what holds it back now, not for their buckets */
            bw_wait(f, 0);
            queue_insert_tail(&bw->paused, q);
            continue;
        }

        f->paused = 0;
        f->resumed = 1;

        for (k = 0; k < 2 && f->bucket[k] != NULL; k++) {
            f->bucket[k]->reserved += BW_BLOCK;
        }

        rc = curl_easy_pause(f->easy, CURLPAUSE_CONT);
        if (rc != CURLE_OK) {
            /* curl 7.88 delivers the kept block inside curl_easy_pause()
             * and returns here what the write callback made of it, then
             * goes on with the transfer as if nothing happened: a refusal
             * is remembered by xfer_write_cb(), which refuses every later
             * block, and the transfer ends as CURLE_WRITE_ERROR */
            log_debug("curl_easy_pause(CONT) failed: %s",
                      curl_easy_strerror(rc));
        }
    }

    if (queue_empty(&bw->paused)) {
        bw_arm(bw, 0);
    }
}
