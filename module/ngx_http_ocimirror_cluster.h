/*
 * A cluster node (the libconfig file's cluster group, src/oci_cluster.h):
 * a request whose key another node owns goes to that node through
 * nginx's own upstream machinery.
 *
 * From the group, while nginx reads its configuration, the module builds
 *
 *   upstream ocimirror_cluster {
 *       zone ocimirror_cluster 64k;
 *       hash $ocimirror_cluster_key consistent;
 *       server <peer> max_fails=1 fail_timeout=<fail_timeout>s;  (each)
 *       keepalive 16;
 *   }
 *
 * (parsed by nginx's own parser, from a memfd), so choosing the owner,
 * failing over to the next node of the ring and skipping a failed node
 * for fail_timeout are nginx's.  The packaged include's named location
 * @ocimirror_cluster proxies to it.  The module computes the same ring
 * (oci_ring_owner()) to know, before it forwards, whether this node owns
 * the key; a key this node owns, or a blob or manifest it holds, it
 * serves itself.
 *
 * A request from a peer carries OCI_CLUSTER_HEADER (the variable
 * $ocimirror_cluster_auth, set by the include's proxy_set_header) and is
 * served here, never forwarded again: no loops.  A header that does not
 * verify (a client forging it) makes a client's request of it, and is
 * counted; a peer whose list differs from ours is logged loudly, at most
 * once a minute per worker, and counted.
 */

#ifndef NGX_HTTP_OCIMIRROR_CLUSTER_H
#define NGX_HTTP_OCIMIRROR_CLUSTER_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_cluster.h"
#include "oci_route.h"
#include "ngx_http_ocimirror_module.h"


/* Preconfiguration: the variables the include and the upstream use. */
ngx_int_t ngx_http_ocimirror_cluster_variables(ngx_conf_t *cf);

/* At ocimirror_config, for a config with a cluster group: read the
 * secret, check the peers, build the ring and the upstream.  NULL on
 * error (logged with the file and line). */
ngx_http_ocimirror_cluster_t *ngx_http_ocimirror_cluster_create(
    ngx_conf_t *cf, oci_config_t *oci);

/*
 * Before anything is served: key[0..len) is the request's key; whether a
 * peer sent the request (its header verified for key) is noted for
 * ngx_http_ocimirror_cluster_pass() and counted, hit or miss.  route: what
 * the request asks (a blob's, for replicate "hot").  NGX_OK or
 * NGX_ERROR (out of memory).  Nothing to do without a cluster.
 */
ngx_int_t ngx_http_ocimirror_cluster_check(ngx_http_request_t *r,
    const char *key, size_t len, oci_route_t *route);

/*
 * The request's key (as given to ..._check()) is not served from here
 * as things stand.  NGX_DECLINED: serve it here anyway (this node owns
 * it, or a peer asked, or there is no cluster).  Otherwise the request
 * was handed to @ocimirror_cluster: return what this returns from the
 * content handler.
 */
ngx_int_t ngx_http_ocimirror_cluster_pass(ngx_http_request_t *r);

/* A tag's key, "<registry>/<name>:<tag>", in the request's pool; NULL
 * when out of memory. */
u_char *ngx_http_ocimirror_cluster_tag_key(ngx_http_request_t *r,
    const char *registry, const char *name, const char *tag, size_t *len);


#endif /* NGX_HTTP_OCIMIRROR_CLUSTER_H */
