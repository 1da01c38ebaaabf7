/*
 * /v2/<name>/tags/list: always forwarded to the fetcher (TAGS, answered
 * by BODY or FAIL); the next-page Link is rewritten for the client.
 */

#ifndef NGX_HTTP_OCIMIRROR_TAGS_H
#define NGX_HTTP_OCIMIRROR_TAGS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_route.h"
#include "ngx_http_ocimirror_module.h"


/* ns: the raw ?ns= value (len 0 if none), repeated in the Link.
 * Returns what a content handler returns (NGX_DONE while parked). */
ngx_int_t ngx_http_ocimirror_tags(ngx_http_request_t *r,
    oci_route_t *route, ngx_str_t *ns);


#endif /* NGX_HTTP_OCIMIRROR_TAGS_H */
