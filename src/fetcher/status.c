/*
 * The fetcher's status (see status.h).
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "body.h"
#include "endpoints.h"
#include "errors.h"
#include "log.h"
#include "stats.h"
#include "status.h"

static json_t *status_downloads(jobs_t *jobs, size_t *all);
static json_t *status_store(jobs_t *jobs);
static json_t *status_registries(jobs_t *jobs, unsigned long long *bytes);
static json_t *status_errors(void);


void
status_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    char  *text;

    text = status_render(jobs);

    if (text == NULL) {
        log_error("cannot render the status: out of memory");
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    body_reply(jobs->cf, c, m->id, text, strlen(text), "");
    free(text);
}


char *
status_render(jobs_t *jobs)
{
    json_t              *root, *downloads, *registries;
    char                *text;
    size_t               all;
    unsigned long long   upstream;

    upstream = 0;
    all = 0;

    /* before json_pack(): its arguments are evaluated in no set order */
    downloads = status_downloads(jobs, &all);
    registries = status_registries(jobs, &upstream);

    /* json_pack steals the references ("o"); a NULL among them fails it */
    root = json_pack("{s:I, s:o, s:I, s:I, s:o, s:o, s:I, s:o, s:I, s:I}",
                     "time", (json_int_t) time(NULL),
                     "downloads", downloads,
                     "downloads_in_flight", (json_int_t) all,
                     "downloads_max", (json_int_t) STATUS_DOWNLOADS_MAX,
                     "store", status_store(jobs),
                     "registries", registries,
                     "upstream_bytes", (json_int_t) upstream,
                     "errors", status_errors(),
                     "errors_total", (json_int_t) errors_total(),
                     "errors_max", (json_int_t) ERRORS_MAX);

    if (root == NULL) {
        return NULL;
    }

    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    return text;
}


static json_t *
status_downloads(jobs_t *jobs, size_t *all)
{
    json_t      *list, *d;
    size_t       n, i;
    long long    now, ms, rate;
    job_view_t  *v;

    list = json_array();
    v = calloc(STATUS_DOWNLOADS_MAX, sizeof(job_view_t));

    if (list == NULL || v == NULL) {
        json_decref(list);
        free(v);
        return NULL;
    }

    n = jobs_view(jobs, v, STATUS_DOWNLOADS_MAX, all);
    now = endpoints_monotonic();

    for (i = 0; i < n; i++) {
        /* the mean since the job started: queued and token time too */
        ms = now - v[i].started_ms;
        rate = ms > 0 ? v[i].done * 1000 / ms : 0;

        d = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:I, s:f, s:b}",
                      "registry", v[i].registry->name,
                      "repository", v[i].name,
                      "digest", v[i].ref,
                      "bytes", (json_int_t) v[i].done,
                      "total", (json_int_t) v[i].total,
                      "rate", (json_int_t) rate,
                      "eta", (v[i].total >= 0 && rate > 0)
                             ? json_integer((v[i].total - v[i].done
                                             + rate - 1) / rate)
                             : json_null(),
                      "waiters", (json_int_t) v[i].waiters,
                      "seconds", (double) ms / 1000,
                      "prefetch", v[i].prefetch);

        if (json_array_append_new(list, d) != 0) {
            json_decref(list);
            free(v);
            return NULL;
        }
    }

    free(v);

    return list;
}


static json_t *
status_store(jobs_t *jobs)
{
    stats_store_t  st;

    cache_state(jobs->cache, &st);

    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b,"
                     " s:I}",
                     "bytes", (json_int_t) st.bytes,
                     "files", (json_int_t) st.files,
                     "max", (json_int_t) st.max,
                     "high", (json_int_t) st.high,
                     "low", (json_int_t) st.low,
                     "reserved", (json_int_t) st.reserved,
                     "fs_free", (json_int_t) st.fs_free,
                     "min_free", (json_int_t) st.min_free,
                     "loading", st.loading,
                     "evicting", st.evicting,
                     "evictions", (json_int_t) st.evictions);
}


static json_t *
status_registries(jobs_t *jobs, unsigned long long *bytes)
{
    json_t                *list, *eps, *e, *r;
    size_t                 i, k;
    const char            *state;
    stats_registry_t      *sr;
    endpoints_state_t      es;
    const oci_registry_t  *reg;

    list = json_array();
    if (list == NULL) {
        return NULL;
    }

    for (i = 0; i < jobs->cf->n_registries; i++) {
        reg = &jobs->cf->registries[i];
        sr = stats_registry(reg);
        *bytes += sr->upstream_bytes;

        eps = json_array();
        if (eps == NULL) {
            goto failed;
        }

        for (k = 0; k < reg->n_endpoints; k++) {
            memset(&es, 0, sizeof(es));
            es.rtt_us = -1;

            if (jobs->eps != NULL) {
                endpoints_state(jobs->eps, reg, k, &es);
            }

            state = es.down ? "down" : (es.throttled ? "throttled" : "up");

            /* the URL as configured: the config refuses credentials in
             * it (stats.c labels the metrics with it too) */
            e = json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:o}",
                          "url", reg->endpoints[k],
                          "state", state,
                          "fails", es.fails,
                          "requests", (json_int_t) sr->endpoints[k].requests,
                          "failures", (json_int_t) sr->endpoints[k].failures,
                          "throttled",
                          (json_int_t) sr->endpoints[k].throttled,
                          "rtt_ms", es.rtt_us >= 0
                                    ? json_real((double) es.rtt_us / 1000)
                                    : json_null());

            if (json_array_append_new(eps, e) != 0) {
                json_decref(eps);
                goto failed;
            }
        }

        r = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o}",
                      "name", reg->name,
                      "upstream_bytes", (json_int_t) sr->upstream_bytes,
                      "blobs_fetched", (json_int_t) sr->blobs_fetched,
                      "manifests_fetched",
                      (json_int_t) sr->manifests_fetched,
                      "digest_mismatches",
                      (json_int_t) sr->digest_mismatches,
                      "stale_served", (json_int_t) sr->stale_served,
                      "endpoints", eps);

        if (json_array_append_new(list, r) != 0) {
            goto failed;
        }
    }

    return list;

failed:

    json_decref(list);

    return NULL;
}


static json_t *
status_errors(void)
{
    json_t          *list, *e;
    size_t           n, i;
    errors_entry_t   errs[ERRORS_MAX];

    list = json_array();
    if (list == NULL) {
        return NULL;
    }

    n = errors_get(errs, ERRORS_MAX);

    for (i = 0; i < n; i++) {
        e = json_pack("{s:I, s:i, s:s, s:s}",
                      "time", (json_int_t) errs[i].time,
                      "status", errs[i].status,
                      "what", errs[i].what,
                      "message", errs[i].message);

        if (json_array_append_new(list, e) != 0) {
            json_decref(list);
            return NULL;
        }
    }

    return list;
}
