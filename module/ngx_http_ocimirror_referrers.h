/*
 * /v2/<name>/referrers/<digest>[?artifactType=<media type>]: always asked
 * of the fetcher (REFERRERS, answered by BODY or FAIL), which keeps the
 * index and applies the filter.
 */

#ifndef NGX_HTTP_OCIMIRROR_REFERRERS_H
#define NGX_HTTP_OCIMIRROR_REFERRERS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_route.h"
#include "ngx_http_ocimirror_module.h"


/* Returns what a content handler returns (NGX_DONE while parked). */
ngx_int_t ngx_http_ocimirror_referrers(ngx_http_request_t *r,
    oci_route_t *route);


#endif /* NGX_HTTP_OCIMIRROR_REFERRERS_H */
