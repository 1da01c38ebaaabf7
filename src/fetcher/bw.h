/*
 * Bandwidth limits: fetcher.bandwidth_limit for all registries together
 * and a registry's own bandwidth_limit, each a token bucket shared by the
 * transfers it applies to.
 *
 * xfer.c gives every transfer a bw_flow_t.  Its write callback asks
 * bw_admit() before it takes a block of body bytes: while every bucket of
 * the flow holds tokens and no paused flow waits for one of them, the
 * block passes (a bucket may go below zero by the one block, a debt the
 * next refills pay); otherwise the flow is queued and the callback returns
 * CURL_WRITEFUNC_PAUSE, so that curl keeps the block and stops reading the
 * socket.  A paused flow waits for those of its buckets that were empty
 * or already waited for when it paused: a flow of another registry that
 * shares none of them goes on at its own rate.  A timerfd in the loop
 * ticks every BW_TICK_MS while any flow is paused: it resumes paused flows
 * in the order they paused (round robin: a flow that pauses again goes to
 * the end) with curl_easy_pause(CURLPAUSE_CONT), never from inside a curl
 * callback of that handle.  curl delivers the kept block again after the
 * unpause (7.88 does it inside curl_easy_pause, later versions at the next
 * socket action), so a tick resumes flows only while the tokens it has
 * not yet seen spent cover a block for each.  A block the write callback
 * refuses inside curl_easy_pause() is an error curl 7.88 returns there and
 * then forgets: xfer.c remembers it (see xfer_write_cb()).
 *
 * A transfer that no limit applies to has no buckets: bw_admit() is then
 * never called and costs nothing.
 */

#ifndef FETCHER_BW_H
#define FETCHER_BW_H

#include <time.h>

#include <curl/curl.h>

#include "oci_config.h"
#include "loop.h"
#include "queue.h"

#define BW_TICK_MS      20
#define BW_BURST_MS     20       /* tokens a bucket saves up while
                                    nothing waits: a new transfer cannot
                                    take more than this ahead of others */
#define BW_BUSY_MS      500      /* what a tick may add while flows wait
                                    (a late tick loses nothing) */
#define BW_BLOCK        CURL_MAX_WRITE_SIZE  /* the most curl hands over
                                                at once */

typedef struct bw_s  bw_t;

typedef struct {
    long long        rate;       /* bytes per second, > 0 */
    double           tokens;     /* bytes that may pass; < 0: a debt */
    double           burst;      /* the most tokens it saves up idle */
    double           busy;       /* the most a tick fills it to */
    int              waiters;    /* paused flows waiting for it */
    double           reserved;   /* tokens promised within a tick to
                                    resumed flows that have not yet
                                    taken them */
    struct timespec  last;       /* of the last refill */
} bw_bucket_t;

typedef struct {
    queue_t          link;       /* in bw_t.paused while paused */
    bw_bucket_t     *bucket[2];  /* the global one, the registry's; NULL */
    CURL            *easy;
    int              paused;
    int              resumed;    /* a tick resumed it; it has not taken
                                    its next block yet */
    int              waits[2];   /* counted in bucket[i]->waiters */
    long long        taken;      /* bytes admitted so far */
} bw_flow_t;

/* A bucket of rate bytes/s, full, as of now. */
void bw_bucket_init(bw_bucket_t *b, long long rate,
    const struct timespec *now);

/* Add the tokens earned since the last refill, up to cap bytes (a bucket
 * that holds more keeps what it holds). */
void bw_bucket_refill(bw_bucket_t *b, const struct timespec *now,
    double cap);

/*
 * The shaper of one xfer_multi_t.  NULL on failure (logged).  Without any
 * limit in cf it holds no timer.
 */
bw_t *bw_create(loop_t *loop, const oci_config_t *cf);
void bw_destroy(bw_t *bw);

/* Set f up for a transfer of reg (NULL: only the global limit) on easy.
 * f->bucket[0] is NULL when no limit applies. */
void bw_flow_init(bw_t *bw, bw_flow_t *f, const oci_registry_t *reg,
    CURL *easy);

/* The write callback has n body bytes for f: 1 to take them, 0 if f is
 * now paused (return CURL_WRITEFUNC_PAUSE). */
int bw_admit(bw_t *bw, bw_flow_t *f, size_t n);

/* The transfer goes away: forget f if it is paused. */
void bw_flow_remove(bw_t *bw, bw_flow_t *f);

/* The lowest rate among f's buckets (0 if none) */
long long bw_flow_rate(const bw_flow_t *f);

#endif /* FETCHER_BW_H */
