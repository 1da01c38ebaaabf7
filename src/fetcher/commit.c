/*
 * Commits off the loop (see commit.h).
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "oci_store.h"
#include "commit.h"
#include "log.h"

struct commit_req_s {
    commit_req_t    *next;
    int              fd;                        /* the thread's: it closes
                                                   it */
    char             tmp[OCI_PATH_MAX];
    char             hex[OCI_SHA256_HEX_LEN + 1];
    char             path[OCI_PATH_MAX];        /* sha256/<2>/<hex> */
    commit_done_pt   done;                      /* NULL: detached */
    void            *data;
    int              err;                       /* errno, 0: committed */
    long long        ns;                        /* what it took */
};

struct commit_s {
    loop_t          *loop;
    cache_t         *cache;
    char            *root;
    int              do_fsync;
    size_t           max;
    size_t           queued;                    /* the loop's count */
    int              efd;
    pthread_t        thread;
    int              started;

    /* shared with the thread, under lock */
    pthread_mutex_t  lock;
    pthread_cond_t   cond;
    commit_req_t    *fifo;          /* submitted, oldest first */
    commit_req_t   **fifo_tail;
    commit_req_t    *done;
    commit_req_t   **done_tail;
    int              stop;

    stats_commit_t   stats;                     /* the loop's */
};


static long long
commit_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


/* The thread: one request at a time, in order; the store's own function
 * does the work, so a commit here is the commit everywhere else. */
static void *
commit_thread(void *arg)
{
    commit_t      *c = arg;
    commit_req_t  *r;
    long long      start;
    uint64_t       one = 1;
    ssize_t        n;

    for ( ;; ) {
        pthread_mutex_lock(&c->lock);

        while (c->fifo == NULL && !c->stop) {
            pthread_cond_wait(&c->cond, &c->lock);
        }

        r = c->fifo;

        if (r == NULL) {
            pthread_mutex_unlock(&c->lock);
            return NULL;
        }

        c->fifo = r->next;
        if (c->fifo == NULL) {
            c->fifo_tail = &c->fifo;
        }

        pthread_mutex_unlock(&c->lock);

        start = commit_now_ns();
        r->err = 0;

        if (oci_store_commit(c->root, r->tmp, r->fd, r->hex, c->do_fsync)
            != OCI_OK)
        {
            r->err = errno != 0 ? errno : EIO;

            /* nothing may keep its bytes now: the job fails */
            unlink(r->tmp);
        }

        close(r->fd);
        r->fd = -1;
        r->ns = commit_now_ns() - start;

        pthread_mutex_lock(&c->lock);
        r->next = NULL;
        *c->done_tail = r;
        c->done_tail = &r->next;
        pthread_mutex_unlock(&c->lock);

        /* an eventfd write does not fail short of an overflow of its
         * counter, which the loop's reads keep far away */
        do {
            n = write(c->efd, &one, sizeof(one));
        } while (n < 0 && errno == EINTR);
    }
}


/* The ended requests: the cache told, the callbacks called, freed. */
static void
commit_reap(commit_t *c)
{
    commit_req_t  *r, *next;

    pthread_mutex_lock(&c->lock);
    r = c->done;
    c->done = NULL;
    c->done_tail = &c->done;
    pthread_mutex_unlock(&c->lock);

    for ( /* void */ ; r != NULL; r = next) {
        next = r->next;
        c->queued--;

        c->stats.busy_ns += (unsigned long long) r->ns;
        if (r->ns > c->stats.longest_ns) {
            c->stats.longest_ns = r->ns;
        }

        if (r->err == 0) {
            c->stats.committed++;

            if (c->cache != NULL) {
                cache_added(c->cache, r->path);
            }

        } else {
            c->stats.failed++;
        }

        if (r->done != NULL) {
            r->done(r->data, r->err, r->path);

        } else if (r->err != 0) {
            log_error("cannot commit \"%s\" to the store: %s", r->tmp,
                      strerror(r->err));
        }

        free(r);
    }
}


static void
commit_event(loop_t *loop, int fd, uint32_t events, void *data)
{
    commit_t  *c = data;
    uint64_t   count;
    ssize_t    n;

    n = read(fd, &count, sizeof(count));

    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        log_error("read(eventfd) failed: %s", strerror(errno));
    }

    commit_reap(c);
}


commit_t *
commit_create(loop_t *loop, cache_t *cache, const char *root, int do_fsync,
    long queue_max)
{
    commit_t  *c;
    int        rc;

    c = calloc(1, sizeof(commit_t));
    if (c == NULL) {
        log_error("out of memory");
        return NULL;
    }

    c->loop = loop;
    c->cache = cache;
    c->do_fsync = do_fsync;
    c->max = (size_t) queue_max;
    c->efd = -1;
    c->fifo_tail = &c->fifo;
    c->done_tail = &c->done;

    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);

    c->root = strdup(root);
    if (c->root == NULL) {
        log_error("out of memory");
        commit_destroy(c);
        return NULL;
    }

    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd == -1) {
        log_error("eventfd() failed: %s", strerror(errno));
        commit_destroy(c);
        return NULL;
    }

    if (loop_add(loop, c->efd, EPOLLIN, commit_event, c) != 0) {
        log_error("cannot watch the commit eventfd: %s", strerror(errno));
        commit_destroy(c);
        return NULL;
    }

    rc = pthread_create(&c->thread, NULL, commit_thread, c);
    if (rc != 0) {
        log_error("pthread_create() failed: %s", strerror(rc));
        commit_destroy(c);
        return NULL;
    }

    c->started = 1;

    return c;
}


void
commit_destroy(commit_t *c)
{
    commit_req_t  *r, *next;

    if (c == NULL) {
        return;
    }

    if (c->started) {
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);

        /* what is queued is verified: the thread commits it first */
        pthread_join(c->thread, NULL);
    }

    for (r = c->done; r != NULL; r = next) {
        next = r->next;
        free(r);
    }

    if (c->efd != -1) {
        if (c->loop != NULL) {
            loop_del(c->loop, c->efd);
        }

        close(c->efd);
    }

    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c->root);
    free(c);
}


int
commit_submit(commit_t *c, int fd, const char *tmp, const char *hex,
    commit_done_pt done, void *data, commit_req_t **req)
{
    commit_req_t  *r;

    if (c->queued >= c->max) {
        c->stats.refused++;
        errno = EAGAIN;
        return -1;
    }

    r = calloc(1, sizeof(commit_req_t));
    if (r == NULL) {
        errno = ENOMEM;
        return -1;
    }

    if (oci_store_blob_path(c->root, hex, r->path, sizeof(r->path))
        != OCI_OK)
    {
        free(r);
        errno = ENAMETOOLONG;
        return -1;
    }

    /* taken over, not duplicated: a fetcher out of descriptors can
     * still commit what it verified */
    r->fd = fd;

    snprintf(r->tmp, sizeof(r->tmp), "%s", tmp);
    memcpy(r->hex, hex, sizeof(r->hex));
    r->done = done;
    r->data = data;

    c->queued++;

    pthread_mutex_lock(&c->lock);
    *c->fifo_tail = r;
    c->fifo_tail = &r->next;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);

    *req = r;

    return 0;
}


void
commit_detach(commit_req_t *req)
{
    /* only the loop's thread reads done and data */
    req->done = NULL;
    req->data = NULL;
}


void
commit_state(const commit_t *c, stats_commit_t *st)
{
    if (c == NULL) {
        memset(st, 0, sizeof(stats_commit_t));
        return;
    }

    *st = c->stats;
    st->queued = (unsigned long) c->queued;
}
