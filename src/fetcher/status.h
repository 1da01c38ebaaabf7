/*
 * STATUS: the fetcher's part of the status page (the module's
 * ngx_http_ocimirror_status.c adds nginx's counters around it), one JSON
 * object in a BODY file:
 *
 *   downloads     the blob downloads in flight, oldest first, at most
 *                 STATUS_DOWNLOADS_MAX: registry, repository, digest,
 *                 bytes, total (-1 unknown), rate (bytes/s since the job
 *                 started), eta (seconds, null unknown), waiters,
 *                 seconds, prefetch; downloads_in_flight counts them all
 *   store         bytes, files and the bounds of the cache manager
 *   registries    per registry its upstream counters and its endpoints'
 *                 health (state "up", "down" backing off, "throttled")
 *   errors        the last errors (errors.h), newest first
 *
 * Rendered from summaries the layers give (jobs_view(), cache_state(),
 * endpoints_state(), stats_registry(), errors_get()): a view, not a walk
 * of their internals.
 */

#ifndef FETCHER_STATUS_H
#define FETCHER_STATUS_H

#include "job.h"

#define STATUS_DOWNLOADS_MAX  50

/* The verb's handler (dispatch.c): BODY with the JSON, or FAIL 503. */
void status_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

/* The JSON text (malloc'd, the caller frees it), or NULL out of
 * memory. */
char *status_render(jobs_t *jobs);

#endif /* FETCHER_STATUS_H */
