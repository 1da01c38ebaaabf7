/*
 * ocimirror-fetcher: the daemon that does all upstream work for the nginx
 * workers (see DESIGN.md).
 *
 *   ocimirror-fetcher -c FILE [-v]        run in the foreground
 *   ocimirror-fetcher --check -c FILE     check the config and exit
 *
 * One thread, one epoll loop (loop.c): the workers' socket (server.c),
 * libcurl's sockets and timer (xfer.c) and a signalfd for SIGTERM/SIGINT.
 * Ownership, from the top: main owns the config, the loop, the transfer
 * multi, the token cache, the cache manager, the job table, the scrub,
 * the warm lists and the server; it tears them down in the reverse order
 * of their dependencies.
 */

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <curl/curl.h>

#include "oci_config.h"
#include "oci_store.h"
#include "cache.h"
#include "commit.h"
#include "ctl.h"
#include "dispatch.h"
#include "job.h"
#include "listcache.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "stats.h"
#include "token.h"
#include "xfer.h"

/*
 * Free heap pages go back to the system when the fetcher is idle, at most
 * once in FETCHER_TRIM_TICKS seconds.  glibc keeps the pages of freed
 * memory, so a burst of transfers would leave its high-water mark as RSS
 * for good: the soak saw an idle fetcher at 18 MiB whose heap, trimmed,
 * took 14.5 MiB, and a step of 1.2 MiB each time a burst went higher, so
 * that RSS could not tell a leak from a busy minute.  malloc_trim() walks
 * the free chunks and gives their pages back, which took 1 to 50 ms of
 * the loop under the soak's load: hence only with no job in flight (no
 * client waits on the loop then), and only if the heap changed since.
 */
#define FETCHER_TRIM_TICKS  5

typedef struct {
    oci_config_t   *cf;
    loop_t         *loop;
    xfer_multi_t   *xm;
    token_cache_t  *tokens;
    cache_t        *cache;
    commit_t       *commit;
    listcache_t    *lists;
    jobs_t         *jobs;
    scrub_t        *scrub;
    warm_t         *warm;
    server_t       *server;
    int             sigfd;
    int             lockfd;         /* flock()ed: this store is ours */
    int             tickfd;         /* 1 Hz: jobs_tick(), endpoint probes */
    unsigned        ticks;
    size_t          trimmed_inuse;  /* heap in use at the last trim */
} fetcher_t;


static void
fetcher_usage(FILE *out)
{
    fprintf(out,
            "usage: ocimirror-fetcher -c FILE [-v]\n"
            "       ocimirror-fetcher --check -c FILE\n"
            "  -c FILE    the ocimirror config file\n"
            "  --check    check the config file and exit\n"
            "  -v         also log debug lines\n");
}


static void
fetcher_signal_handler(loop_t *loop, int fd, uint32_t events, void *data)
{
    struct signalfd_siginfo  si;
    ssize_t                  n;

    for ( ;; ) {
        n = read(fd, &si, sizeof(si));

        if (n == (ssize_t) sizeof(si)) {
            log_info("got signal %u, stopping", si.ssi_signo);
            loop_stop(loop);
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && errno != EAGAIN) {
            log_error("read(signalfd) failed: %s", strerror(errno));
        }

        return;
    }
}


/*
 * Once per loop iteration, after the events: start queued transfers,
 * report progress, write and close connections.  Closing a connection can
 * end a job and free a transfer slot, so go round until nothing moves.
 */
static void
fetcher_after(void *data)
{
    fetcher_t  *f = data;
    int         more;

    do {
        more = xfer_pump(f->xm);
        jobs_flush(f->jobs);
        more |= server_flush(f->server);
    } while (more);
}


static void
fetcher_trim(fetcher_t *f)
{
    size_t             i;
    stats_census_t     census;
    struct mallinfo2   mi;

    memset(&census, 0, sizeof(census));
    jobs_census(f->jobs, &census);

    for (i = 0; i < census.n; i++) {
        if (census.jobs[i] > 0) {
            return;
        }
    }

    mi = mallinfo2();

    if (mi.uordblks == f->trimmed_inuse) {
        return;
    }

    malloc_trim(0);
    f->trimmed_inuse = mi.uordblks;
}


static void
fetcher_tick_handler(loop_t *loop, int fd, uint32_t events, void *data)
{
    fetcher_t  *f = data;
    uint64_t    expirations;

    if (read(fd, &expirations, sizeof(expirations)) > 0) {
        jobs_tick(f->jobs);
        cache_tick(f->cache);
        scrub_tick(f->scrub);
        warm_tick(f->warm);

        if (++f->ticks % FETCHER_TRIM_TICKS == 0) {
            fetcher_trim(f);
        }
    }
}


/* One timer for every waiter's keepalive: cheap whatever their number. */
static int
fetcher_ticker(fetcher_t *f)
{
    struct itimerspec  its;

    f->tickfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (f->tickfd == -1) {
        log_error("timerfd_create() failed: %s", strerror(errno));
        return -1;
    }

    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = 1;
    its.it_interval.tv_sec = 1;

    if (timerfd_settime(f->tickfd, 0, &its, NULL) != 0) {
        log_error("timerfd_settime() failed: %s", strerror(errno));
        return -1;
    }

    if (loop_add(f->loop, f->tickfd, EPOLLIN, fetcher_tick_handler, f) != 0)
    {
        log_error("epoll_ctl(timerfd) failed: %s", strerror(errno));
        return -1;
    }

    return 0;
}


static int
fetcher_signals(fetcher_t *f)
{
    sigset_t  set;

    /* a worker that went away must not kill us in send() */
    signal(SIGPIPE, SIG_IGN);

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);

    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        log_error("sigprocmask() failed: %s", strerror(errno));
        return -1;
    }

    f->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (f->sigfd == -1) {
        log_error("signalfd() failed: %s", strerror(errno));
        return -1;
    }

    if (loop_add(f->loop, f->sigfd, EPOLLIN, fetcher_signal_handler, f)
        != 0)
    {
        log_error("epoll_ctl(signalfd) failed: %s", strerror(errno));
        return -1;
    }

    return 0;
}


static int
fetcher_start(fetcher_t *f)
{
    const oci_registry_t  *reg;
    ctl_env_t              env;
    char                   err[OCI_PATH_MAX + 128];
    char                   lock[OCI_PATH_MAX];
    size_t                 i;
    int                    swept;

    if (oci_store_prepare(f->cf->store_path, err, sizeof(err)) != OCI_OK
        || oci_store_share(f->cf->store_path, f->cf->socket_gid, err,
                           sizeof(err))
           != OCI_OK)
    {
        log_error("store: %s", err);
        return -1;
    }

    /* the sweep would delete the downloads of a fetcher that is running:
     * the lock says there is none (and is released only by our exit) */
    if (snprintf(lock, sizeof(lock), "%s/" OCI_STORE_MARKER,
                 f->cf->store_path) >= (int) sizeof(lock))
    {
        log_error("store path \"%s\" too long", f->cf->store_path);
        return -1;
    }

    f->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC,
                     OCI_STORE_FILE_MODE);
    if (f->lockfd == -1) {
        log_error("open(\"%s\") failed: %s", lock, strerror(errno));
        return -1;
    }

    if (flock(f->lockfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            log_error("another fetcher uses this store \"%s\"",
                      f->cf->store_path);

        } else {
            log_error("flock(\"%s\") failed: %s", lock, strerror(errno));
        }

        return -1;
    }

    swept = oci_store_sweep(f->cf->store_path);
    if (swept < 0) {
        log_error("cannot sweep \"%s/tmp\": %s", f->cf->store_path,
                  strerror(errno));
        return -1;
    }

    log_info("store \"%s\": swept %d temp file%s", f->cf->store_path, swept,
             swept == 1 ? "" : "s");

    f->loop = loop_create();
    if (f->loop == NULL) {
        log_error("epoll_create1() failed: %s", strerror(errno));
        return -1;
    }

    if (fetcher_signals(f) != 0) {
        return -1;
    }

    if (stats_init(f->cf) != 0) {
        return -1;
    }

    f->xm = xfer_multi_create(f->loop, f->cf);
    if (f->xm == NULL) {
        return -1;
    }

    f->tokens = token_cache_create(f->xm);
    if (f->tokens == NULL) {
        return -1;
    }

    f->cache = cache_create(f->cf, f->loop);
    if (f->cache == NULL) {
        return -1;
    }

    f->jobs = jobs_create(f->cf, f->xm, f->tokens);
    if (f->jobs == NULL) {
        return -1;
    }

    f->commit = commit_create(f->loop, f->cache, f->cf->store_path,
                              f->cf->store_fsync, f->cf->commit_queue);
    if (f->commit == NULL) {
        return -1;
    }

    f->lists = listcache_create(f->cf->list_cache_size,
                                f->cf->list_cache_entries);
    if (f->lists == NULL) {
        log_error("out of memory");
        return -1;
    }

    f->jobs->cache = f->cache;
    f->jobs->lists = f->lists;
    f->jobs->commit = f->commit;
    f->jobs->loop = f->loop;
    dispatch_setup(f->jobs);
    cache_start(f->cache);

    f->scrub = scrub_create(f->cf, f->loop, f->cache);
    if (f->scrub == NULL) {
        return -1;
    }

    f->warm = warm_create(f->cf, f->jobs, &dispatch_warm_ops);
    if (f->warm == NULL) {
        return -1;
    }

    dispatch_set_warm(f->warm);
    dispatch_set_scrub(f->scrub);

    env.jobs = f->jobs;
    env.cache = f->cache;
    env.scrub = f->scrub;
    env.warm = f->warm;
    ctl_setup(&env);

    f->server = server_create(f->loop, f->cf->fetcher_socket,
                              f->cf->socket_gid, f->cf->store_path,
                              dispatch_on_msg, jobs_on_gone, f->jobs);
    if (f->server == NULL) {
        return -1;
    }

    if (fetcher_ticker(f) != 0) {
        return -1;
    }

    loop_set_after(f->loop, fetcher_after, f);

    log_info("listening on \"%s\", %zu registr%s, at most %d transfers, "
             "%d per host, HTTP/2 %s", f->cf->fetcher_socket,
             f->cf->n_registries, f->cf->n_registries == 1 ? "y" : "ies",
             f->cf->max_transfers, f->cf->max_per_host,
             f->cf->http2 ? "on" : "off");

    if (f->cf->chunks_per_blob > 0) {
        log_info("blobs from %lld bytes on in ranges of %lld bytes, %d at "
                 "a time", f->cf->chunk_threshold, f->cf->chunk_size,
                 f->cf->chunks_per_blob);

    } else {
        log_info("ranged downloads off");
    }

    log_info("prefetch %s, at most %lld bytes per image, %zu platform%s",
             f->cf->prefetch ? "on" : "off", f->cf->prefetch_max_bytes,
             f->cf->n_prefetch_platforms,
             f->cf->n_prefetch_platforms == 1 ? "" : "s");

    for (i = 0; i < f->cf->n_registries; i++) {
        reg = &f->cf->registries[i];

        log_info("registry \"%s\": %zu endpoint%s, %s first, back-off "
                 "%lds, stale-if-error %lds, negative TTL %lds", reg->name,
                 reg->n_endpoints, reg->n_endpoints == 1 ? "" : "s",
                 reg->select == OCI_SELECT_FASTEST ? "fastest" : "written",
                 reg->backoff, reg->stale_if_error, reg->negative_ttl);
    }

    return 0;
}


/* The workers' socket first (closing a connection drops its waiters),
 * then the jobs (their transfers, token waits and temp files), the tokens
 * (their transfers), the multi, the loop. */
static void
fetcher_stop(fetcher_t *f)
{
    server_destroy(f->server);
    dispatch_set_warm(NULL);
    warm_destroy(f->warm);
    jobs_destroy(f->jobs);
    listcache_destroy(f->lists);
    commit_destroy(f->commit);
    scrub_destroy(f->scrub);
    cache_destroy(f->cache);
    token_cache_destroy(f->tokens);
    xfer_multi_destroy(f->xm);

    if (f->tickfd != -1) {
        if (f->loop != NULL) {
            loop_del(f->loop, f->tickfd);
        }

        close(f->tickfd);
    }

    if (f->sigfd != -1) {
        if (f->loop != NULL) {
            loop_del(f->loop, f->sigfd);
        }

        close(f->sigfd);
    }

    loop_destroy(f->loop);
    stats_destroy();
    oci_config_destroy(f->cf);

    if (f->lockfd != -1) {
        close(f->lockfd);
    }
}


int
main(int argc, char **argv)
{
    fetcher_t   f;
    const char *file;
    char        err[OCI_PATH_MAX + 256];
    int         i, check, verbose, rc;

    file = NULL;
    check = 0;
    verbose = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            file = argv[++i];

        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;

        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;

        } else if (strcmp(argv[i], "-h") == 0
                   || strcmp(argv[i], "--help") == 0)
        {
            fetcher_usage(stdout);
            return 0;

        } else {
            fprintf(stderr, "ocimirror-fetcher: unknown argument \"%s\"\n",
                    argv[i]);
            fetcher_usage(stderr);
            return 2;
        }
    }

    if (file == NULL) {
        fetcher_usage(stderr);
        return 2;
    }

    log_set_verbose(verbose);

    memset(&f, 0, sizeof(f));
    f.sigfd = -1;
    f.lockfd = -1;
    f.tickfd = -1;

    err[0] = '\0';
    if (oci_config_load(file, &f.cf, err, sizeof(err)) != OCI_OK
        || oci_config_check_files(f.cf, err, sizeof(err)) != OCI_OK)
    {
        if (check) {
            fprintf(stderr, "%s\n", err);

        } else {
            log_error("%s", err);
        }

        oci_config_destroy(f.cf);
        return 1;
    }

    if (check) {
        printf("%s: ok\n", file);
        oci_config_destroy(f.cf);
        return 0;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init() failed");
        oci_config_destroy(f.cf);
        return 1;
    }

    log_info("ocimirror-fetcher starting, config \"%s\", %s",
             file, curl_version());

    rc = 1;

    if (fetcher_start(&f) == 0 && loop_run(f.loop) == 0) {
        rc = 0;
    }

    fetcher_stop(&f);
    curl_global_cleanup();

    log_info("ocimirror-fetcher stopped");

    return rc;
}
