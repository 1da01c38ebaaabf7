/*
 * The /v2/ handler: method check, routing, validation, and the choice
 * between the store and the fetcher for each endpoint.
 *
 * Routing works on the raw request path (r->unparsed_uri up to '?'):
 * nginx's r->uri is percent-decoded and slash-merged, and a name that
 * only becomes valid after decoding must be refused, not guessed at.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_route.h"
#include "ngx_http_ocimirror_module.h"
#include "ngx_http_ocimirror_cluster.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_handler.h"
#include "ngx_http_ocimirror_manifest.h"
#include "ngx_http_ocimirror_outcome.h"
#include "ngx_http_ocimirror_recency.h"
#include "ngx_http_ocimirror_referrers.h"
#include "ngx_http_ocimirror_serve.h"
#include "ngx_http_ocimirror_stream.h"
#include "ngx_http_ocimirror_tags.h"


static ngx_int_t ngx_http_ocimirror_base(ngx_http_request_t *r);
static ngx_int_t ngx_http_ocimirror_handler_cluster(ngx_http_request_t *r,
    oci_route_t *route);
static ngx_int_t ngx_http_ocimirror_blob(ngx_http_request_t *r,
    ngx_http_ocimirror_main_conf_t *mcf, oci_route_t *route);


ngx_int_t
ngx_http_ocimirror_handler(ngx_http_request_t *r)
{
    u_char                          *path, *q;
    size_t                           len;
    ngx_int_t                        rc;
    ngx_str_t                        ns;
    ngx_uint_t                       status;
    oci_route_t                     *route;
    oci_errcode_t                    code;
    char                             msg[256];
    ngx_http_ocimirror_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);

    /* an API request: until an endpoint says better, nothing cached
     * answers it (the base, tag lists, referrers; see README.md) */
    ngx_http_ocimirror_outcome_set(r, NGX_HTTP_OCIMIRROR_OUTCOME_BYPASS);

    if (ngx_http_ocimirror_add_api_version(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_ocimirror_read_only(r, "the mirror is read-only");

    if (rc != NGX_DECLINED) {
        return rc;
    }

    path = r->unparsed_uri.data;
    len = r->unparsed_uri.len;

    q = ngx_strlchr(path, path + len, '?');

    if (q != NULL) {
        len = q - path;
    }

    if (ngx_http_arg(r, (u_char *) "ns", 2, &ns) != NGX_OK) {
        ns.data = NULL;
        ns.len = 0;
    }

    route = ngx_palloc(r->pool, sizeof(oci_route_t));
    if (route == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    msg[0] = '\0';

    if (oci_route(mcf->oci, (const char *) path, len,
                  (const char *) ns.data, ns.len, route, &code, msg,
                  sizeof(msg))
        != OCI_OK)
    {
        /* UNSUPPORTED from the router is an unknown endpoint, not a
         * method: the method was fine */
        status = (code == OCI_ERR_UNSUPPORTED)
                 ? NGX_HTTP_NOT_FOUND : (ngx_uint_t) oci_err_status(code);

        return ngx_http_ocimirror_send_error(r, status, code,
                                             msg[0] ? msg : NULL);
    }

    if (mcf->cluster != NULL
        && (route->endpoint == OCI_EP_BLOB
            || route->endpoint == OCI_EP_MANIFEST)
        && ngx_http_ocimirror_handler_cluster(r, route) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (route->endpoint) {

    case OCI_EP_BLOB:
        return ngx_http_ocimirror_blob(r, mcf, route);

    case OCI_EP_MANIFEST:
        return ngx_http_ocimirror_manifest(r, mcf, route);

    case OCI_EP_TAGS:
        return ngx_http_ocimirror_tags(r, route, &ns);

    case OCI_EP_REFERRERS:
        return ngx_http_ocimirror_referrers(r, route);

    default: /* OCI_EP_BASE */
        return ngx_http_ocimirror_base(r);
    }
}


/* A cluster node: the request's key (a digest, or a tag's
 * "<registry>/<name>:<tag>"), and whether a peer sent it. */

static ngx_int_t
ngx_http_ocimirror_handler_cluster(ngx_http_request_t *r, oci_route_t *route)
{
    u_char  *key;
    size_t   len;

    if (route->is_digest) {
        key = (u_char *) route->reference;
        len = ngx_strlen(route->reference);

    } else {
        key = ngx_http_ocimirror_cluster_tag_key(r, route->registry->name,
                                                 route->name,
                                                 route->reference, &len);
        if (key == NULL) {
            return NGX_ERROR;
        }
    }

    return ngx_http_ocimirror_cluster_check(r, (const char *) key, len,
                                            route);
}


/* GET /v2/: the API version check every client starts with */

static ngx_int_t
ngx_http_ocimirror_base(ngx_http_request_t *r)
{
    static ngx_str_t  type = ngx_string("application/json");
    static ngx_str_t  body = ngx_string("{}");

    ngx_http_ocimirror_metrics_count(r, NGX_HTTP_OCIMIRROR_HIT_BASE);

    return ngx_http_ocimirror_send_body(r, NGX_HTTP_OK, &type, &body);
}


/* Blobs are immutable: present in the store means served from it. */

static ngx_int_t
ngx_http_ocimirror_blob(ngx_http_request_t *r,
    ngx_http_ocimirror_main_conf_t *mcf, oci_route_t *route)
{
    ngx_int_t             rc;
    ngx_str_t             path, digest;
    ngx_open_file_info_t  of;

    if (ngx_http_ocimirror_blob_path(r, mcf->oci->store_path, route->hex,
                                     &path)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    digest.data = (u_char *) route->reference;
    digest.len = ngx_strlen(route->reference);

    rc = ngx_http_ocimirror_open(r, &path, &of);

    if (rc == NGX_OK) {
        ngx_http_ocimirror_metrics_count(r, NGX_HTTP_OCIMIRROR_HIT_BLOB);
        ngx_http_ocimirror_outcome_set(r, NGX_HTTP_OCIMIRROR_OUTCOME_HIT);
        ngx_http_ocimirror_recency_note(r, route->hex);
        return ngx_http_ocimirror_serve_blob(r, &of, &path, &digest);
    }

    if (rc == NGX_ERROR) {
        return ngx_http_ocimirror_send_error(r,
                                             NGX_HTTP_INTERNAL_SERVER_ERROR,
                                             OCI_ERR_UPSTREAM,
                                             "cannot read the store");
    }

    /* not here: another cluster node may own it */

    rc = ngx_http_ocimirror_cluster_pass(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (r->method == NGX_HTTP_HEAD) {
        /* the size only: nothing is downloaded for a HEAD (BYPASS) */
        return ngx_http_ocimirror_stream_head(r, route, &digest);
    }

    /* STREAM instead if the fetcher says it joined a download (FROM) */
    ngx_http_ocimirror_outcome_set(r, NGX_HTTP_OCIMIRROR_OUTCOME_MISS);

    return ngx_http_ocimirror_stream_blob(r, route, &path, &digest);
}
