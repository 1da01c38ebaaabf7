/*
 * The fetcher's counters (see stats.h), rendered for the STATS answer in
 * the Prometheus text exposition format (version 0.0.4).
 *
 * Every metric is written with its # HELP and # TYPE lines even when no
 * registry is configured, so that a scraper sees the same families from
 * a fresh fetcher as from a busy one.  Gauges that are unknown (-1) are
 * left out rather than written as a made-up number.  An endpoint label
 * is the endpoint's URL as configured: the config refuses credentials,
 * queries and fragments in it, so it holds no secret.
 */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "stats.h"

/* job kinds counted apart (there are four) */

/* what a family's value is, and how it is written */
typedef enum {
    STATS_COUNTER = 0,          /* unsigned long long */
    STATS_GAUGE,                /* long long; negative: unknown */
    STATS_GAUGE_INT,            /* int */
    STATS_GAUGE_US              /* long long microseconds, written as
                                   seconds; negative: unknown */
} stats_type_t;

/* a family: its value is at offset in stats_registry_t (per registry)
 * or in stats_endpoint_t (per endpoint) */
typedef struct {
    const char    *name;
    const char    *help;
    stats_type_t   type;
    size_t         offset;
} stats_family_t;


static int stats_family(FILE *f, const char *name, const char *help,
    stats_type_t type);
static int stats_label(FILE *f, const char *value);
static int stats_value(const stats_family_t *fam, const void *counters,
    char *value, size_t cap);
static int stats_sample(FILE *f, const stats_family_t *fam,
    const char *registry, const char *endpoint, const char *value);
static int stats_registry_families(FILE *f);
static int stats_endpoint_families(FILE *f);


static const oci_config_t  *stats_cf;
static stats_registry_t    *stats_regs;
static time_t               stats_started;


static const stats_family_t  stats_families[] = {
    { "ocimirror_fetcher_upstream_bytes_total",
      "Body bytes of 2xx answers received from upstream endpoints.",
      STATS_COUNTER, offsetof(stats_registry_t, upstream_bytes) },
    { "ocimirror_fetcher_blobs_fetched_total",
      "Blobs downloaded, verified and committed to the store.",
      STATS_COUNTER, offsetof(stats_registry_t, blobs_fetched) },
    { "ocimirror_fetcher_manifests_fetched_total",
      "Manifests downloaded with a GET, verified and stored.",
      STATS_COUNTER, offsetof(stats_registry_t, manifests_fetched) },
    { "ocimirror_fetcher_digest_mismatches_total",
      "Upstream bodies refused because their sha256 differs from the "
      "digest asked for or announced; nothing was stored.",
      STATS_COUNTER, offsetof(stats_registry_t, digest_mismatches) },
    { "ocimirror_fetcher_stale_served_total",
      "Answers served from a stale record (tags, tag lists, referrers) "
      "because every endpoint failed or throttled.",
      STATS_COUNTER, offsetof(stats_registry_t, stale_served) },
    { "ocimirror_fetcher_negative_hits_total",
      "Requests answered 404 from the remembered upstream 404.",
      STATS_COUNTER, offsetof(stats_registry_t, negative_hits) },
    { "ocimirror_fetcher_auth_failures_total",
      "Credentials or tokens the upstream refused.",
      STATS_COUNTER, offsetof(stats_registry_t, auth_failures) },
    { "ocimirror_fetcher_failovers_total",
      "Requests moved to another endpoint after a failure.",
      STATS_COUNTER, offsetof(stats_registry_t, failovers) },
    { "ocimirror_fetcher_bandwidth_pauses_total",
      "Transfers paused to keep within the bandwidth limit.",
      STATS_COUNTER, offsetof(stats_registry_t, bandwidth_pauses) },
    { "ocimirror_fetcher_redirects_refused_total",
      "Redirects and token realms refused: to a loopback, link-local, "
      "private or unspecified address not in redirect_hosts, or from "
      "https down to http.",
      STATS_COUNTER, offsetof(stats_registry_t, redirects_refused) },
    { "ocimirror_fetcher_hosts_throttled_total",
      "429 answers of redirect targets (blob CDNs): that host is left "
      "alone for Retry-After, the endpoint is not.",
      STATS_COUNTER, offsetof(stats_registry_t, hosts_throttled) },
    { "ocimirror_fetcher_urls_renewed_total",
      "Expired redirect URLs (401, 403, 410 from a CDN) of ranged "
      "downloads asked for again at the registry.",
      STATS_COUNTER, offsetof(stats_registry_t, urls_renewed) },
    { "ocimirror_fetcher_prefetch_capped_total",
      "Manifests whose prefetch or warm fan-out was cut at "
      "prefetch.max_children or prefetch.max_layers.",
      STATS_COUNTER, offsetof(stats_registry_t, prefetch_capped) },
    { "ocimirror_fetcher_prefetch_left_out_total",
      "Index children and layers left out of a prefetch or warm round "
      "over those caps.",
      STATS_COUNTER, offsetof(stats_registry_t, prefetch_left_out) },
    { "ocimirror_fetcher_cluster_hints_total",
      "Prefetches of a cluster node's own digests asked of it (through "
      "this node's nginx, which passes them to the owner).",
      STATS_COUNTER, offsetof(stats_registry_t, cluster_hints) },
    { "ocimirror_fetcher_cluster_hints_skipped_total",
      "Those not asked: PREFETCH_HINTS_MAX were in flight.",
      STATS_COUNTER, offsetof(stats_registry_t, cluster_hints_skipped) },
    { "ocimirror_fetcher_cluster_replicas_total",
      "Hot blobs another cluster node owns, copied here from it "
      "(cluster.replicate \"hot\"): downloads begun.",
      STATS_COUNTER, offsetof(stats_registry_t, cluster_replicas) },
    { "ocimirror_fetcher_cluster_replicas_skipped_total",
      "Copies not begun: cluster.max_replicas or fetcher.max_jobs were "
      "reached.",
      STATS_COUNTER, offsetof(stats_registry_t, cluster_replicas_skipped) },
    { "ocimirror_fetcher_cluster_replica_fallbacks_total",
      "Copies the cluster could not give (every other node failed): "
      "downloaded from the upstream instead.",
      STATS_COUNTER, offsetof(stats_registry_t, cluster_replica_fallbacks) },
    { "ocimirror_fetcher_ratelimit_limit",
      "The upstream's last RateLimit-Limit (absent until one was seen).",
      STATS_GAUGE, offsetof(stats_registry_t, ratelimit_limit) },
    { "ocimirror_fetcher_ratelimit_remaining",
      "The upstream's last RateLimit-Remaining (absent until one was "
      "seen).",
      STATS_GAUGE, offsetof(stats_registry_t, ratelimit_remaining) }
};


static const stats_family_t  stats_ep_families[] = {
    { "ocimirror_fetcher_endpoint_requests_total",
      "Requests sent to an upstream endpoint.",
      STATS_COUNTER, offsetof(stats_endpoint_t, requests) },
    { "ocimirror_fetcher_endpoint_failures_total",
      "Connect errors, timeouts, resets and 5xx answers of an endpoint.",
      STATS_COUNTER, offsetof(stats_endpoint_t, failures) },
    { "ocimirror_fetcher_endpoint_throttled_total",
      "429 answers of an endpoint.",
      STATS_COUNTER, offsetof(stats_endpoint_t, throttled) },
    { "ocimirror_fetcher_endpoint_up",
      "1 if the endpoint is in use, 0 while it is backed off.",
      STATS_GAUGE_INT, offsetof(stats_endpoint_t, up) },
    { "ocimirror_fetcher_endpoint_rtt_seconds",
      "Round trip of the endpoint's last probe (absent until probed).",
      STATS_GAUGE_US, offsetof(stats_endpoint_t, rtt_us) }
};


int
stats_init(const oci_config_t *cf)
{
    size_t  i, k;

    stats_regs = calloc(cf->n_registries, sizeof(stats_registry_t));
    if (stats_regs == NULL && cf->n_registries > 0) {
        log_error("out of memory");
        return -1;
    }

    stats_cf = cf;
    stats_started = time(NULL);

    for (i = 0; i < cf->n_registries; i++) {
        stats_regs[i].ratelimit_limit = -1;
        stats_regs[i].ratelimit_remaining = -1;
        stats_regs[i].endpoints = calloc(cf->registries[i].n_endpoints,
                                         sizeof(stats_endpoint_t));
        if (stats_regs[i].endpoints == NULL) {
            log_error("out of memory");
            stats_destroy();
            return -1;
        }

        for (k = 0; k < cf->registries[i].n_endpoints; k++) {
            stats_regs[i].endpoints[k].up = 1;
            stats_regs[i].endpoints[k].rtt_us = -1;
        }
    }

    return 0;
}


void
stats_destroy(void)
{
    size_t  i;

    if (stats_regs != NULL) {
        for (i = 0; i < stats_cf->n_registries; i++) {
            free(stats_regs[i].endpoints);
        }
    }

    free(stats_regs);
    stats_regs = NULL;
    stats_cf = NULL;
}


stats_registry_t *
stats_registry(const oci_registry_t *reg)
{
    return &stats_regs[reg - stats_cf->registries];
}


int
stats_render(FILE *f)
{
    if (stats_registry_families(f) != 0
        || stats_endpoint_families(f) != 0)
    {
        return -1;
    }

    if (stats_family(f, "ocimirror_fetcher_start_time_seconds",
                     "When the fetcher started, in seconds since the "
                     "epoch.", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_start_time_seconds %lld\n",
                   (long long) stats_started) < 0)
    {
        return -1;
    }

    return 0;
}


/*
 * One sample line per registry for each family: the registries in the
 * order of the config, so that consecutive scrapes diff cleanly.
 */
static int
stats_registry_families(FILE *f)
{
    size_t                 i, k;
    const stats_family_t  *fam;
    char                   value[48];

    for (k = 0; k < sizeof(stats_families) / sizeof(stats_families[0]);
         k++)
    {
        fam = &stats_families[k];

        if (stats_family(f, fam->name, fam->help, fam->type) != 0) {
            return -1;
        }

        for (i = 0; stats_cf != NULL && i < stats_cf->n_registries; i++) {
            if (stats_value(fam, &stats_regs[i], value, sizeof(value))
                && stats_sample(f, fam, stats_cf->registries[i].name, NULL,
                                value)
                   != 0)
            {
                return -1;
            }
        }
    }

    return 0;
}


/* The same, one line per endpoint of each registry. */
static int
stats_endpoint_families(FILE *f)
{
    size_t                 i, e, k;
    const stats_family_t  *fam;
    const oci_registry_t  *reg;
    char                   value[48];

    for (k = 0;
         k < sizeof(stats_ep_families) / sizeof(stats_ep_families[0]);
         k++)
    {
        fam = &stats_ep_families[k];

        if (stats_family(f, fam->name, fam->help, fam->type) != 0) {
            return -1;
        }

        for (i = 0; stats_cf != NULL && i < stats_cf->n_registries; i++) {
            reg = &stats_cf->registries[i];

            for (e = 0; e < reg->n_endpoints; e++) {
                if (stats_value(fam, &stats_regs[i].endpoints[e], value,
                                sizeof(value))
                    && stats_sample(f, fam, reg->name, reg->endpoints[e],
                                    value)
                       != 0)
                {
                    return -1;
                }
            }
        }
    }

    return 0;
}


/*
 * The value of fam in counters (a stats_registry_t or stats_endpoint_t)
 * as sample text; 0 if the value is unknown: no sample rather than a
 * made-up number.
 */
static int
stats_value(const stats_family_t *fam, const void *counters, char *value,
    size_t cap)
{
    int                  flag;
    long long            gauge;
    const char          *base;
    unsigned long long   counter;

    base = (const char *) counters + fam->offset;

    switch (fam->type) {

    case STATS_COUNTER:
        memcpy(&counter, base, sizeof(counter));
        snprintf(value, cap, "%llu", counter);
        return 1;

    case STATS_GAUGE_INT:
        memcpy(&flag, base, sizeof(flag));
        snprintf(value, cap, "%d", flag);
        return 1;

    default: /* STATS_GAUGE, STATS_GAUGE_US */
        memcpy(&gauge, base, sizeof(gauge));

        if (gauge < 0) {
            return 0;
        }

        if (fam->type == STATS_GAUGE_US) {
            snprintf(value, cap, "%lld.%06lld", gauge / 1000000,
                     gauge % 1000000);

        } else {
            snprintf(value, cap, "%lld", gauge);
        }

        return 1;
    }
}


/* name{registry="..",endpoint=".."} value; endpoint NULL: none */
static int
stats_sample(FILE *f, const stats_family_t *fam, const char *registry,
    const char *endpoint, const char *value)
{
    if (fprintf(f, "%s{registry=", fam->name) < 0
        || stats_label(f, registry) != 0)
    {
        return -1;
    }

    if (endpoint != NULL
        && (fputs(",endpoint=", f) == EOF || stats_label(f, endpoint) != 0))
    {
        return -1;
    }

    return fprintf(f, "} %s\n", value) < 0 ? -1 : 0;
}


static int
stats_family(FILE *f, const char *name, const char *help,
    stats_type_t type)
{
    /* every type but STATS_COUNTER is a gauge */
    if (fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                type == STATS_COUNTER ? "counter" : "gauge") < 0)
    {
        return -1;
    }

    return 0;
}


/* A quoted label value: backslash, double quote and line feed escaped as
 * the text format wants. */
static int
stats_label(FILE *f, const char *value)
{
    const char  *p;
    int          rc;

    if (fputc('"', f) == EOF) {
        return -1;
    }

    for (p = value; *p != '\0'; p++) {

        switch (*p) {

        case '\\':
            rc = fputs("\\\\", f);
            break;

        case '"':
            rc = fputs("\\\"", f);
            break;

        case '\n':
            rc = fputs("\\n", f);
            break;

        default:
            rc = fputc(*p, f);
            break;
        }

        if (rc == EOF) {
            return -1;
        }
    }

    return fputc('"', f) == EOF ? -1 : 0;
}


const char *
stats_cap_name(stats_cap_t cap)
{
    static const char  *names[STATS_CAP_N] = {
        "max_worker_jobs", "max_waiters", "max_jobs", "max_queued"
    };

    return (unsigned) cap < STATS_CAP_N ? names[cap] : "unknown";
}


int
stats_render_census(FILE *f, const stats_census_t *census)
{
    size_t  i;

    if (stats_family(f, "ocimirror_fetcher_jobs",
                     "Upstream jobs in flight, by kind.", STATS_GAUGE)
        != 0)
    {
        return -1;
    }

    for (i = 0; i < census->n; i++) {
        if (fputs("ocimirror_fetcher_jobs{kind=", f) == EOF
            || stats_label(f, census->kind[i]) != 0
            || fprintf(f, "} %lu\n", census->jobs[i]) < 0)
        {
            return -1;
        }
    }

    if (stats_family(f, "ocimirror_fetcher_waiters",
                     "Worker requests waiting on jobs in flight.",
                     STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_waiters %lu\n", census->waiters)
           < 0)
    {
        return -1;
    }

    if (stats_family(f, "ocimirror_fetcher_transfers_queued",
                     "Transfers clients wait for, queued for a slot "
                     "(fetcher.max_transfers).", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_transfers_queued %lu\n",
                   census->queued) < 0)
    {
        return -1;
    }

    if (stats_family(f, "ocimirror_fetcher_refused_total",
                     "Requests refused at once (503 TOOMANYREQUESTS) "
                     "because a bound of the fetcher was reached, by the "
                     "bound's setting.", STATS_COUNTER) != 0)
    {
        return -1;
    }

    for (i = 0; i < STATS_CAP_N; i++) {
        if (fputs("ocimirror_fetcher_refused_total{cap=", f) == EOF
            || stats_label(f, stats_cap_name((stats_cap_t) i)) != 0
            || fprintf(f, "} %llu\n", census->refused[i]) < 0)
        {
            return -1;
        }
    }

    if (stats_family(f, "ocimirror_fetcher_jobs_dropped_total",
                     "Jobs stopped (transfer removed, temp file unlinked) "
                     "because every client waiting for them left.",
                     STATS_COUNTER) != 0
        || fprintf(f, "ocimirror_fetcher_jobs_dropped_total %llu\n",
                   census->dropped) < 0
        || stats_family(f, "ocimirror_fetcher_jobs_finished_unwaited_total",
                        "Blob downloads every client left past "
                        "fetcher.finish_fraction of their bytes, left to "
                        "finish into the store.", STATS_COUNTER) != 0
        || fprintf(f,
                   "ocimirror_fetcher_jobs_finished_unwaited_total %llu\n",
                   census->finished_unwaited) < 0)
    {
        return -1;
    }

    return 0;
}


int
stats_render_store(FILE *f, const stats_store_t *st)
{
    static const struct {
        const char  *name;
        const char  *help;
        int          counter;
        size_t       offset;
        int          unsigned_ll;
    } rows[] = {
        { "ocimirror_fetcher_store_bytes",
          "Bytes the store's files take on disk, as the index counts them.",
          0, offsetof(stats_store_t, bytes), 0 },
        { "ocimirror_fetcher_store_files",
          "Files in the store's index (blobs, manifests, tag records, "
          "lists).", 0, offsetof(stats_store_t, files), 1 },
        { "ocimirror_fetcher_store_max_bytes",
          "store.max_size in bytes.", 0, offsetof(stats_store_t, max), 0 },
        { "ocimirror_fetcher_store_high_watermark_bytes",
          "Eviction starts above this many bytes.", 0,
          offsetof(stats_store_t, high), 0 },
        { "ocimirror_fetcher_store_low_watermark_bytes",
          "Eviction stops at this many bytes.", 0,
          offsetof(stats_store_t, low), 0 },
        { "ocimirror_fetcher_store_reserved_bytes",
          "Bytes reserved for downloads under way.", 0,
          offsetof(stats_store_t, reserved), 0 },
        { "ocimirror_fetcher_store_evictions_total",
          "Files evicted.", 1, offsetof(stats_store_t, evictions), 1 },
        { "ocimirror_fetcher_store_evicted_bytes_total",
          "Bytes evicted.", 1, offsetof(stats_store_t, evicted_bytes), 1 },
        { "ocimirror_fetcher_store_emergency_evictions_total",
          "Writes that found the disk full and were saved by eviction.", 1,
          offsetof(stats_store_t, emergencies), 1 },
        { "ocimirror_fetcher_store_fs_free_bytes",
          "Bytes free on the store's filesystem (for unprivileged users).",
          0, offsetof(stats_store_t, fs_free), 0 },
        { "ocimirror_fetcher_store_pinned_bytes",
          "Bytes of the stored files that pins hold (never evicted).", 0,
          offsetof(stats_store_t, pinned_bytes), 0 },
        { "ocimirror_fetcher_store_pinned_files",
          "Stored files that pins hold.", 0,
          offsetof(stats_store_t, pinned_files), 1 },
    };

    unsigned long long  u;
    long long           v;
    size_t              i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (stats_family(f, rows[i].name, rows[i].help,
                         rows[i].counter ? STATS_COUNTER : STATS_GAUGE)
            != 0)
        {
            return -1;
        }

        if (rows[i].unsigned_ll) {
            memcpy(&u, (const char *) st + rows[i].offset, sizeof(u));

            if (fprintf(f, "%s %llu\n", rows[i].name, u) < 0) {
                return -1;
            }

        } else {
            memcpy(&v, (const char *) st + rows[i].offset, sizeof(v));

            if (fprintf(f, "%s %lld\n", rows[i].name, v) < 0) {
                return -1;
            }
        }
    }

    if (stats_family(f, "ocimirror_fetcher_store_above_high_watermark",
                     "1 while the store (with reservations) is above the "
                     "high watermark or short of min_free.", STATS_GAUGE)
           != 0
        || fprintf(f, "ocimirror_fetcher_store_above_high_watermark %d\n",
                   st->bytes + st->reserved > st->high
                   || st->fs_free < st->min_free) < 0
        || stats_family(f, "ocimirror_fetcher_store_pins",
                        "Pins (store.pin and ocimirrorctl pin).",
                        STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_store_pins %zu\n", st->pins) < 0
        || stats_family(f, "ocimirror_fetcher_store_evicting",
                     "1 while the cache manager evicts.", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_store_evicting %d\n",
                   st->evicting) < 0
        || stats_family(f, "ocimirror_fetcher_store_loading",
                        "1 while the index is being loaded.", STATS_GAUGE)
           != 0
        || fprintf(f, "ocimirror_fetcher_store_loading %d\n",
                   st->loading) < 0)
    {
        return -1;
    }

    if (st->load_seconds >= 0
        && (stats_family(f, "ocimirror_fetcher_store_index_load_seconds",
                         "How long the last load of the index took.",
                         STATS_GAUGE) != 0
            || fprintf(f, "ocimirror_fetcher_store_index_load_seconds "
                       "%.3f\n", st->load_seconds) < 0))
    {
        return -1;
    }

    return 0;
}


int
stats_render_warm(FILE *f, const stats_warm_t *st)
{
    if (stats_family(f, "ocimirror_fetcher_warm_images",
                     "Images of the warm lists by state: pending (a round "
                     "under way, or the first one due), done (the last "
                     "round stored everything), failed (the last round "
                     "did not; retried at the next).", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_warm_images{state=\"pending\"} "
                   "%lu\n", st->pending) < 0
        || fprintf(f, "ocimirror_fetcher_warm_images{state=\"done\"} %lu\n",
                   st->done) < 0
        || fprintf(f, "ocimirror_fetcher_warm_images{state=\"failed\"} "
                   "%lu\n", st->failed) < 0
        || stats_family(f, "ocimirror_fetcher_warm_refused_total",
                        "Images refused because the warm lists held "
                        "warm_max already (warm_file lines, ocimirrorctl "
                        "warm).", STATS_COUNTER) != 0
        || fprintf(f, "ocimirror_fetcher_warm_refused_total %llu\n",
                   st->refused) < 0
        || stats_family(f, "ocimirror_fetcher_warm_rounds_total",
                        "Rounds of warm images ended, by result.",
                        STATS_COUNTER) != 0
        || fprintf(f, "ocimirror_fetcher_warm_rounds_total{result=\"done\"} "
                   "%llu\n", st->rounds_done) < 0
        || fprintf(f, "ocimirror_fetcher_warm_rounds_total"
                   "{result=\"failed\"} %llu\n", st->rounds_failed) < 0
        || stats_family(f, "ocimirror_fetcher_warm_downloads_total",
                        "Manifest and blob downloads the warm lists "
                        "started (what was stored or in flight is not "
                        "counted).", STATS_COUNTER) != 0
        || fprintf(f, "ocimirror_fetcher_warm_downloads_total %llu\n",
                   st->downloads) < 0
        || stats_family(f, "ocimirror_fetcher_warm_file_bad_lines",
                        "Lines of the warm_file skipped as invalid when it "
                        "was last read.", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_warm_file_bad_lines %lu\n",
                   st->bad_lines) < 0)
    {
        return -1;
    }

    return 0;
}


int
stats_render_scrub(FILE *f, const stats_scrub_t *st)
{
    static const struct {
        const char  *name;
        const char  *help;
        size_t       offset;
    } counters[] = {
        { "ocimirror_fetcher_scrub_checked_total",
          "Stored files the scrub re-hashed.",
          offsetof(stats_scrub_t, checked) },
        { "ocimirror_fetcher_scrub_checked_bytes_total",
          "Bytes the scrub read and hashed.",
          offsetof(stats_scrub_t, checked_bytes) },
        { "ocimirror_fetcher_scrub_corrupt_total",
          "Stored files that did not match their digest, moved to "
          "quarantine/.", offsetof(stats_scrub_t, corrupt) },
        { "ocimirror_fetcher_scrub_diff_id_mismatches_total",
          "Image layers that do not unpack to the diff_id their config "
          "names (deep scrub).", offsetof(stats_scrub_t, mismatches) },
        { "ocimirror_fetcher_scrub_skipped_total",
          "Layers and manifests a deep scrub could not check (zstd and "
          "other layer types, artifacts, configs not stored, layers past "
          "the inflation bound).", offsetof(stats_scrub_t, skipped) },
    };

    unsigned long long  u;
    size_t              i;

    for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        memcpy(&u, (const char *) st + counters[i].offset, sizeof(u));

        if (stats_family(f, counters[i].name, counters[i].help,
                         STATS_COUNTER) != 0
            || fprintf(f, "%s %llu\n", counters[i].name, u) < 0)
        {
            return -1;
        }
    }

    if (stats_family(f, "ocimirror_fetcher_scrub_running",
                     "1 while a scrub pass runs.", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_scrub_running %d\n", st->running)
           < 0
        || stats_family(f, "ocimirror_fetcher_scrub_last_completed_"
                        "timestamp_seconds",
                        "When the last scrub of the whole store ended "
                        "(unix seconds; 0: never).", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_scrub_last_completed_timestamp_"
                   "seconds %lld\n", st->last_completed) < 0
        || stats_family(f, "ocimirror_fetcher_quarantine_files",
                        "Files in the store's quarantine/ (at most "
                        "store.quarantine_max).", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_quarantine_files %llu\n",
                   st->quarantine_files) < 0)
    {
        return -1;
    }

    return 0;
}


int
stats_render_loop(FILE *f, const loop_stats_t *ls)
{
    unsigned long long  cumulative;
    size_t              i;

    if (stats_family(f, "ocimirror_fetcher_loop_longest_stall_seconds",
                     "The longest the event loop spent on one batch of "
                     "events, timers and its after hook (between two "
                     "returns to epoll_wait), since the start: nothing "
                     "else was served meanwhile.", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_loop_longest_stall_seconds "
                   "%lld.%09lld\n", ls->longest_ns / 1000000000LL,
                   ls->longest_ns % 1000000000LL) < 0)
    {
        return -1;
    }

    if (fputs("# HELP ocimirror_fetcher_loop_stall_seconds The time the "
              "event loop spent on each batch of events, timers and its "
              "after hook.\n# TYPE ocimirror_fetcher_loop_stall_seconds "
              "histogram\n", f) == EOF)
    {
        return -1;
    }

    cumulative = 0;

    for (i = 0; i < LOOP_STALL_BOUNDS; i++) {
        cumulative += ls->buckets[i];

        if (fprintf(f, "ocimirror_fetcher_loop_stall_seconds_bucket"
                    "{le=\"%.9g\"} %llu\n",
                    (double) loop_stall_bounds_ns[i] / 1e9, cumulative)
            < 0)
        {
            return -1;
        }
    }

    cumulative += ls->buckets[LOOP_STALL_BOUNDS];

    if (fprintf(f, "ocimirror_fetcher_loop_stall_seconds_bucket"
                "{le=\"+Inf\"} %llu\n"
                "ocimirror_fetcher_loop_stall_seconds_sum %llu.%09llu\n"
                "ocimirror_fetcher_loop_stall_seconds_count %llu\n",
                cumulative, ls->busy_ns / 1000000000ULL,
                ls->busy_ns % 1000000000ULL, ls->iterations) < 0)
    {
        return -1;
    }

    return 0;
}


/* Counters (unsigned long long at offset) then gauges, as rows. */
typedef struct {
    const char    *name;
    const char    *help;
    stats_type_t   type;        /* STATS_COUNTER, STATS_GAUGE (long long),
                                   STATS_GAUGE_INT (unsigned long here) */
    size_t         offset;
} stats_row_t;


static int
stats_rows(FILE *f, const stats_row_t *rows, size_t n, const void *st)
{
    unsigned long long  u;
    unsigned long       ul;
    long long           ll;
    size_t              i;
    int                 rc;

    for (i = 0; i < n; i++) {
        if (stats_family(f, rows[i].name, rows[i].help, rows[i].type) != 0) {
            return -1;
        }

        switch (rows[i].type) {

        case STATS_COUNTER:
            memcpy(&u, (const char *) st + rows[i].offset, sizeof(u));
            rc = fprintf(f, "%s %llu\n", rows[i].name, u);
            break;

        case STATS_GAUGE_INT:
            memcpy(&ul, (const char *) st + rows[i].offset, sizeof(ul));
            rc = fprintf(f, "%s %lu\n", rows[i].name, ul);
            break;

        default:
            memcpy(&ll, (const char *) st + rows[i].offset, sizeof(ll));
            rc = fprintf(f, "%s %lld\n", rows[i].name, ll);
            break;
        }

        if (rc < 0) {
            return -1;
        }
    }

    return 0;
}


int
stats_render_commit(FILE *f, const stats_commit_t *st)
{
    static const stats_row_t  rows[] = {
        { "ocimirror_fetcher_commit_queued",
          "Verified downloads waiting for, or in, their fsync and rename "
          "on the commit thread (at most store.commit_queue).",
          STATS_GAUGE_INT, offsetof(stats_commit_t, queued) },
        { "ocimirror_fetcher_commits_total",
          "Blobs the commit thread moved under their digest.",
          STATS_COUNTER, offsetof(stats_commit_t, committed) },
        { "ocimirror_fetcher_commit_failures_total",
          "Commits that failed (fsync or rename): not stored.",
          STATS_COUNTER, offsetof(stats_commit_t, failed) },
        { "ocimirror_fetcher_commit_refused_total",
          "Verified downloads failed because store.commit_queue commits "
          "were under way.",
          STATS_COUNTER, offsetof(stats_commit_t, refused) }
    };

    if (stats_rows(f, rows, sizeof(rows) / sizeof(rows[0]), st) != 0
        || stats_family(f, "ocimirror_fetcher_commit_longest_seconds",
                        "The longest commit (fsync of the file, rename, "
                        "fsync of the directory) on the commit thread, "
                        "since the start.", STATS_GAUGE) != 0
        || fprintf(f, "ocimirror_fetcher_commit_longest_seconds "
                   "%lld.%09lld\n", st->longest_ns / 1000000000LL,
                   st->longest_ns % 1000000000LL) < 0
        || stats_family(f, "ocimirror_fetcher_commit_seconds_total",
                        "The time the commit thread spent committing.",
                        STATS_COUNTER) != 0
        || fprintf(f, "ocimirror_fetcher_commit_seconds_total "
                   "%llu.%09llu\n", st->busy_ns / 1000000000ULL,
                   st->busy_ns % 1000000000ULL) < 0)
    {
        return -1;
    }

    return 0;
}


int
stats_render_lists(FILE *f, const stats_lists_t *st)
{
    static const stats_row_t  rows[] = {
        { "ocimirror_fetcher_list_cache_hits_total",
          "Tag lists and referrers answered from their parsed copy in "
          "memory.", STATS_COUNTER, offsetof(stats_lists_t, hits) },
        { "ocimirror_fetcher_list_cache_misses_total",
          "Tag lists and referrers read and parsed from the store.",
          STATS_COUNTER, offsetof(stats_lists_t, misses) },
        { "ocimirror_fetcher_list_cache_evictions_total",
          "Parsed lists dropped to stay within fetcher.list_cache_size "
          "and list_cache_entries.",
          STATS_COUNTER, offsetof(stats_lists_t, evictions) },
        { "ocimirror_fetcher_list_cache_invalidations_total",
          "Parsed lists dropped because the stored file changed or went.",
          STATS_COUNTER, offsetof(stats_lists_t, invalidations) },
        { "ocimirror_fetcher_list_cache_bytes",
          "The estimated memory of the parsed lists kept.",
          STATS_GAUGE, offsetof(stats_lists_t, bytes) },
        { "ocimirror_fetcher_list_cache_entries",
          "Parsed lists kept.",
          STATS_GAUGE_INT, offsetof(stats_lists_t, entries) }
    };

    return stats_rows(f, rows, sizeof(rows) / sizeof(rows[0]), st);
}
