/*
 * The fetcher's counters, per registry and per endpoint, for the STATS
 * answer (Prometheus text, rendered by stats_render()).  One set for the
 * process: stats_init() after the config is loaded, stats_registry() from
 * anywhere to count.  Counters only grow; gauges say "now".
 */

#ifndef FETCHER_STATS_H
#define FETCHER_STATS_H

#include <stdio.h>

#include "oci.h"
#include "oci_config.h"
#include "loop.h"

typedef struct {
    unsigned long long  requests;       /* upstream requests sent to it */
    unsigned long long  failures;       /* connect errors, timeouts, 5xx,
                                           resets */
    unsigned long long  throttled;      /* 429 answers */
    int                 up;             /* gauge: 1 usable, 0 backing off */
    long long           rtt_us;         /* gauge: last probe round trip,
                                           -1 unknown */
} stats_endpoint_t;

typedef struct {
    unsigned long long  upstream_bytes;      /* 2xx body bytes received */
    unsigned long long  blobs_fetched;       /* verified and committed */
    unsigned long long  manifests_fetched;   /* stored by a GET */
    unsigned long long  digest_mismatches;   /* bodies refused: not stored */
    unsigned long long  stale_served;        /* tags served stale after an
                                                upstream failure */
    unsigned long long  negative_hits;       /* 404s answered from memory */
    unsigned long long  auth_failures;       /* credentials or tokens
                                                refused */
    unsigned long long  failovers;           /* moves to another endpoint */
    unsigned long long  bandwidth_pauses;    /* transfers paused by the
                                                bandwidth limit */
    unsigned long long  redirects_refused;   /* hops to a local or private
                                                address, or from https
                                                down to http (xfer.h) */
    unsigned long long  hosts_throttled;     /* 429s of redirect targets
                                                (a CDN): that host waits,
                                                not the endpoint */
    unsigned long long  urls_renewed;        /* expired signed URLs of a
                                                ranged download asked
                                                for again */
    unsigned long long  prefetch_capped;     /* manifests whose fan-out
                                                (prefetch or warm) was cut
                                                at max_children or
                                                max_layers */
    unsigned long long  prefetch_left_out;   /* the entries cut */
    unsigned long long  cluster_hints;       /* prefetches asked of the
                                                cluster node that owns
                                                them */
    unsigned long long  cluster_hints_skipped;  /* not asked: too many
                                                in flight */
    unsigned long long  cluster_replicas;    /* hot blobs copied from the
                                                node that owns them
                                                (replicate "hot"): begun */
    unsigned long long  cluster_replicas_skipped;  /* not begun: max_replicas
                                                or max_jobs reached */
    unsigned long long  cluster_replica_fallbacks;  /* the owner could not
                                                give it: asked upstream */
    long long           ratelimit_limit;     /* gauge: upstream's last
                                                RateLimit-Limit, -1 */
    long long           ratelimit_remaining; /* gauge, -1 unknown */
    stats_endpoint_t   *endpoints;           /* reg->n_endpoints */
} stats_registry_t;

/* 0, or -1 (out of memory, logged). */
int stats_init(const oci_config_t *cf);
void stats_destroy(void);

/* The counters of reg (a registry of the config given to stats_init()). */
stats_registry_t *stats_registry(const oci_registry_t *reg);

/* A census of the work in flight, taken by the job layer (jobs_census()):
 * jobs by kind, and the worker requests waiting on them; the transfers
 * clients wait for that are queued for a slot; and what the bounds of
 * the job layer did (job.h): requests refused, by the bound
 * (STATS_CAP_*, named by the config key), jobs dropped when their last
 * waiter left, and blob downloads left to finish then. */
#define STATS_KINDS_MAX  16

typedef enum {
    STATS_CAP_WORKER_JOBS = 0,
    STATS_CAP_WAITERS,
    STATS_CAP_JOBS,
    STATS_CAP_QUEUED,
    STATS_CAP_N
} stats_cap_t;

typedef struct {
    const char          *kind[STATS_KINDS_MAX];     /* string constants */
    unsigned long        jobs[STATS_KINDS_MAX];
    size_t               n;
    unsigned long        waiters;
    unsigned long        queued;
    unsigned long long   refused[STATS_CAP_N];
    unsigned long long   dropped;
    unsigned long long   finished_unwaited;
} stats_census_t;

/* The config key of a bound: "max_jobs", ... */
const char *stats_cap_name(stats_cap_t cap);

/* The store as the cache manager sees it (cache_state()). */
typedef struct {
    long long           bytes;          /* in the index */
    unsigned long long  files;
    long long           max;            /* max_size, in bytes */
    long long           high;           /* the watermarks, in bytes */
    long long           low;
    long long           reserved;       /* for downloads under way */
    int                 loading;        /* the index is being loaded */
    int                 evicting;
    double              load_seconds;   /* the last load took; -1 */
    unsigned long long  evictions;      /* files evicted */
    unsigned long long  evicted_bytes;
    unsigned long long  emergencies;    /* ENOSPC answered by eviction */
    long long           fs_free;        /* bytes free on the filesystem */
    long long           min_free;       /* store.min_free */
    size_t              pins;           /* store.pin and ocimirrorctl pin */
    long long           pinned_bytes;   /* what they hold, stored */
    unsigned long long  pinned_files;
} stats_store_t;

/* The warm lists (warm_state()). */
typedef struct {
    unsigned long       pending;        /* images resolving or fetching */
    unsigned long       done;           /* images whose last round ended
                                           with everything stored */
    unsigned long       failed;         /* ... with something missing */
    unsigned long       bad_lines;      /* of the warm_file as last read */
    unsigned long long  refused;        /* images refused over warm_max */
    unsigned long long  rounds_done;    /* rounds ended, by outcome */
    unsigned long long  rounds_failed;
    unsigned long long  downloads;      /* jobs the rounds started */
} stats_warm_t;

/* The scrub (scrub_state()): counters since the fetcher started. */
typedef struct {
    unsigned long long  checked;        /* files re-hashed */
    unsigned long long  checked_bytes;  /* bytes read and hashed */
    unsigned long long  corrupt;        /* files that did not match their
                                           name: quarantined */
    unsigned long long  mismatches;     /* layers that do not unpack to
                                           their config's diff_id */
    unsigned long long  skipped;        /* what a deep scrub could not
                                           check: zstd and unknown layer
                                           types, artifacts, ... */
    int                 running;        /* gauge: a pass is under way */
    long long           last_completed; /* gauge: unix seconds of the
                                           last whole-store pass, 0 never */
    unsigned long long  quarantine_files;   /* gauge */
} stats_scrub_t;

/* The commits off the loop (commit_state()), since the start. */
typedef struct {
    unsigned long       queued;         /* gauge: waiting or running */
    unsigned long long  committed;
    unsigned long long  failed;
    unsigned long long  refused;        /* store.commit_queue was full */
    long long           longest_ns;     /* the longest commit (fsync and
                                           rename), in the thread */
    unsigned long long  busy_ns;        /* all of them */
} stats_commit_t;

/* The parsed lists kept in memory (listcache_state()). */
typedef struct {
    unsigned long long  hits;           /* answered from memory */
    unsigned long long  misses;         /* read and parsed from the store */
    unsigned long long  evictions;      /* dropped for room */
    unsigned long long  invalidations;  /* dropped: the file changed */
    long long           bytes;          /* gauge: their estimated size */
    unsigned long       entries;        /* gauge */
} stats_lists_t;

/* Every counter and gauge, in the Prometheus text format, with names
 * "ocimirror_fetcher_*" and labels registry="..", endpoint="..".  0, or
 * -1 with errno set. */
int stats_render(FILE *f);

/* The census the same way: jobs by kind="..", waiters, queued
 * transfers, refusals by cap="..", dropped and finished jobs. */
int stats_render_census(FILE *f, const stats_census_t *census);

/* The store the same way ("ocimirror_fetcher_store_*"). */
int stats_render_store(FILE *f, const stats_store_t *st);

/* The warm lists the same way ("ocimirror_fetcher_warm_*"). */
int stats_render_warm(FILE *f, const stats_warm_t *st);

/* The scrub the same way ("ocimirror_fetcher_scrub_*" and
 * "ocimirror_fetcher_quarantine_files"). */
int stats_render_scrub(FILE *f, const stats_scrub_t *st);

/* The event loop's stalls (loop_stats()): the longest since the start,
 * a gauge, and the histogram of every iteration
 * ("ocimirror_fetcher_loop_*"). */
int stats_render_loop(FILE *f, const loop_stats_t *ls);

/* The commits the same way ("ocimirror_fetcher_commit_*"). */
int stats_render_commit(FILE *f, const stats_commit_t *st);

/* The list cache the same way ("ocimirror_fetcher_list_cache_*"). */
int stats_render_lists(FILE *f, const stats_lists_t *st);

#endif /* FETCHER_STATS_H */
