/*
 * The status page: "ocimirror_status" answers GET with one self-contained
 * HTML page (inline CSS and script, no other asset: it works on an
 * offline machine) when the location's URI does not end in ".json", and
 * with the page's data as JSON when it does:
 *
 *   location = /status       { ocimirror_status; }
 *   location = /status.json  { ocimirror_status; }
 *
 * The page asks for its own path with ".json" appended every second.
 * The JSON is nginx's counters of the metrics zone (hits, misses, bytes
 * served), "fetcher_up", and under "fetcher" the fetcher's answer to
 * STATUS (src/fetcher/status.h) as its BODY file, or null when the
 * fetcher cannot answer.  Nothing here runs on the hit path.
 */

#ifndef NGX_HTTP_OCIMIRROR_STATUS_H
#define NGX_HTTP_OCIMIRROR_STATUS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* The content handler of "ocimirror_status". */
ngx_int_t ngx_http_ocimirror_status_handler(ngx_http_request_t *r);


#endif /* NGX_HTTP_OCIMIRROR_STATUS_H */
