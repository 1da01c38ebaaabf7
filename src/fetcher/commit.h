/*
 * Commits off the loop: the fsync of a verified temp file, the rename
 * into sha256/ and the fsync of the directory (oci_store_commit()), done
 * by one thread of their own, so that the loop never waits while the
 * disk writes back a multi-GB blob.
 *
 * A job that verified its temp file hands it over (commit_submit()); the
 * thread commits the requests in order and the loop learns of each end
 * through an eventfd it watches: on success the cache manager is told
 * (cache_added()), then the request's callback runs, on the loop's
 * thread, with 0 or the errno of the failure.  Until then the file is
 * not under its name: nothing unsynced is ever visible (with
 * store.fsync), and a crash leaves a temp file, swept at the next start.
 *
 * Bounded: store.commit_queue requests wait or run at most; past it
 * commit_submit() refuses (EAGAIN) and the caller fails the request, and
 * the refusal is counted.  The thread touches only the request (a copy of
 * the paths, the descriptor handed over): the jobs, the cache index and the
 * counters stay the loop's, so nothing but the two lists is locked.
 *
 * Ownership: commit_t owns the thread, the eventfd and every request;
 * the caller's data only until it detaches (commit_detach(): it is going
 * away; the commit goes on, the callback is not called).  commit_destroy()
 * lets the thread finish what is queued (verified files) and joins it.
 */

#ifndef FETCHER_COMMIT_H
#define FETCHER_COMMIT_H

#include "oci.h"
#include "cache.h"
#include "loop.h"
#include "stats.h"

typedef struct commit_s      commit_t;
typedef struct commit_req_s  commit_req_t;

/* On the loop: err 0 (committed as path) or an errno. */
typedef void (*commit_done_pt)(void *data, int err, const char *path);

/* NULL on failure (logged).  cache may be NULL. */
commit_t *commit_create(loop_t *loop, cache_t *cache, const char *root,
    int do_fsync, long queue_max);
void commit_destroy(commit_t *c);

/*
 * Commit the temp file tmp (open as fd) as sha256/<hex>.  0 and *req (for
 * commit_detach()): fd is the thread's now, it closes it.  Or -1 with
 * errno EAGAIN (the queue is full), ENOMEM or ENAMETOOLONG: fd stays the
 * caller's.
 */
int commit_submit(commit_t *c, int fd, const char *tmp, const char *hex,
    commit_done_pt done, void *data, commit_req_t **req);

/* The caller's data goes away: the commit goes on without a callback. */
void commit_detach(commit_req_t *req);

/* c NULL: all zero. */
void commit_state(const commit_t *c, stats_commit_t *st);

#endif /* FETCHER_COMMIT_H */
