/*
 * What the mirror did for a registry API request, for the access log:
 * the variable $ocimirror_cache_status (HIT, MISS, STREAM, REVALIDATED,
 * STALE, NEGATIVE, BYPASS, ERROR, PEER; README.md says when each is
 * logged).
 *
 * The value lives in the request's slot of the indexed variable
 * (r->variables), which nginx allocates with the request and keeps
 * across internal redirects (error_page, the cluster's named location):
 * setting it is a pointer and a length, no allocation.  A request the
 * handler never saw has none, and logs "-".
 */

#ifndef NGX_HTTP_OCIMIRROR_OUTCOME_H
#define NGX_HTTP_OCIMIRROR_OUTCOME_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef enum {
    NGX_HTTP_OCIMIRROR_OUTCOME_NONE = 0,
    NGX_HTTP_OCIMIRROR_OUTCOME_HIT,          /* served from the store */
    NGX_HTTP_OCIMIRROR_OUTCOME_MISS,         /* the fetcher downloaded it
                                                for this request */
    NGX_HTTP_OCIMIRROR_OUTCOME_STREAM,       /* joined a download already
                                                in flight */
    NGX_HTTP_OCIMIRROR_OUTCOME_REVALIDATED,  /* an expired tag record,
                                                asked upstream again */
    NGX_HTTP_OCIMIRROR_OUTCOME_STALE,        /* an expired tag record
                                                served, the upstream or
                                                the fetcher failing */
    NGX_HTTP_OCIMIRROR_OUTCOME_NEGATIVE,     /* a remembered upstream
                                                404 */
    NGX_HTTP_OCIMIRROR_OUTCOME_BYPASS,       /* not cached here: passed
                                                on, or answered alike
                                                every time */
    NGX_HTTP_OCIMIRROR_OUTCOME_ERROR,        /* an error was answered */
    NGX_HTTP_OCIMIRROR_OUTCOME_PEER          /* passed to the cluster
                                                node that owns it */
} ngx_http_ocimirror_outcome_e;


/* Preconfiguration: add the variable and keep its index in the main
 * conf. */
ngx_int_t ngx_http_ocimirror_outcome_variables(ngx_conf_t *cf);

/* Set r's outcome (the last call wins). */
void ngx_http_ocimirror_outcome_set(ngx_http_request_t *r,
    ngx_http_ocimirror_outcome_e outcome);

/*
 * An error is being answered: ERROR for a request the handler saw, but
 * a remembered 404 stays NEGATIVE.  A request without an outcome (not
 * an API request, or one nginx refused first) keeps none.
 */
void ngx_http_ocimirror_outcome_error(ngx_http_request_t *r);


#endif /* NGX_HTTP_OCIMIRROR_OUTCOME_H */
