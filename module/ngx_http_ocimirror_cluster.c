/*
 * A cluster node: the upstream of the peers, the choice between serving
 * here and passing to the owner, the peer header.  See
 * ngx_http_ocimirror_cluster.h.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/mman.h>

#include "ngx_http_ocimirror_module.h"
#include "ngx_http_ocimirror_cluster.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_metrics.h"
#include "ngx_http_ocimirror_outcome.h"


#define NGX_HTTP_OCIMIRROR_CLUSTER_UPSTREAM   "ocimirror_cluster"
#define NGX_HTTP_OCIMIRROR_CLUSTER_LOCATION   "@ocimirror_cluster"
#define NGX_HTTP_OCIMIRROR_CLUSTER_KEEPALIVE  16
#define NGX_HTTP_OCIMIRROR_CLUSTER_LOG_EVERY  60    /* seconds */


/* a request's, from ngx_http_ocimirror_cluster_check() */
typedef struct {
    const char         *key;
    size_t              len;
    ngx_uint_t          peer;       /* a peer's header verified */
} ngx_http_ocimirror_cluster_ctx_t;


struct ngx_http_ocimirror_cluster_s {
    oci_ring_t          ring;
    size_t              self;
    unsigned char       secret[OCI_CLUSTER_SECRET_MAX + 1];
    size_t              secret_len;
    char                list_hash[OCI_CLUSTER_LIST_HASH_LEN + 1];
    ngx_int_t           key_index;
    ngx_int_t           auth_index;
};


static ngx_int_t ngx_http_ocimirror_cluster_upstream_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_ocimirror_cluster_unset_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_ocimirror_cluster_upstream(ngx_conf_t *cf,
    oci_config_t *oci);
static void ngx_http_ocimirror_cluster_cleanup(void *data);
static ngx_int_t ngx_http_ocimirror_cluster_from_peer(ngx_http_request_t *r,
    ngx_http_ocimirror_cluster_t *cl, const char *key, size_t len);
static ngx_int_t ngx_http_ocimirror_cluster_set(ngx_http_request_t *r,
    ngx_int_t index, u_char *data, size_t len);


static ngx_http_variable_t  ngx_http_ocimirror_cluster_vars[] = {

    /* the upstream's name, for proxy_pass http://$...: a variable, so
     * that the include's location is valid without a cluster group */
    { ngx_string("ocimirror_cluster_upstream"), NULL,
      ngx_http_ocimirror_cluster_upstream_variable, 0, 0, 0 },

    /* set by ngx_http_ocimirror_cluster_pass() before it forwards */
    { ngx_string("ocimirror_cluster_key"), NULL,
      ngx_http_ocimirror_cluster_unset_variable, 0, 0, 0 },

    { ngx_string("ocimirror_cluster_auth"), NULL,
      ngx_http_ocimirror_cluster_unset_variable, 0, 0, 0 },

      ngx_http_null_variable
};


/* this worker's last warning about a peer with another list */
static time_t  ngx_http_ocimirror_cluster_warned;


ngx_int_t
ngx_http_ocimirror_cluster_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_ocimirror_cluster_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ocimirror_cluster_upstream_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    v->data = (u_char *) NGX_HTTP_OCIMIRROR_CLUSTER_UPSTREAM;
    v->len = sizeof(NGX_HTTP_OCIMIRROR_CLUSTER_UPSTREAM) - 1;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ocimirror_cluster_unset_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    v->not_found = 1;

    return NGX_OK;
}


ngx_http_ocimirror_cluster_t *
ngx_http_ocimirror_cluster_create(ngx_conf_t *cf, oci_config_t *oci)
{
    char                           err[512];
    size_t                         i;
    ngx_str_t                      name;
    ngx_url_t                      u;
    ngx_pool_cleanup_t            *cln;
    ngx_http_ocimirror_cluster_t  *cl;

    cl = ngx_pcalloc(cf->pool, sizeof(ngx_http_ocimirror_cluster_t));
    if (cl == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_ocimirror_cluster_cleanup;
    cln->data = cl;

    err[0] = '\0';

    if (oci_config_cluster_secret(oci, cl->secret, sizeof(cl->secret),
                                  &cl->secret_len, err, sizeof(err))
        != OCI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err);
        return NULL;
    }

    /* each peer must resolve now, as the upstream's server directive
     * needs: say so naming the libconfig file, not the generated text */

    for (i = 0; i < oci->n_cluster_peers; i++) {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url.data = (u_char *) oci->cluster_peers[i];
        u.url.len = ngx_strlen(oci->cluster_peers[i]);
        u.default_port = 80;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s: cluster.peers: \"%s\": %s", oci->file,
                               oci->cluster_peers[i],
                               u.err ? u.err : "invalid address");
            return NULL;
        }
    }

    if (oci_ring_build(&cl->ring, oci->cluster_peers, oci->n_cluster_peers)
        != OCI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s: cluster.peers: cannot build the ring",
                           oci->file);
        return NULL;
    }

    cl->self = oci->cluster_self;
    oci_cluster_list_hash(oci->cluster_peers, oci->n_cluster_peers,
                          cl->list_hash);

    ngx_str_set(&name, "ocimirror_cluster_key");
    cl->key_index = ngx_http_get_variable_index(cf, &name);

    ngx_str_set(&name, "ocimirror_cluster_auth");
    cl->auth_index = ngx_http_get_variable_index(cf, &name);

    if (cl->key_index == NGX_ERROR || cl->auth_index == NGX_ERROR) {
        return NULL;
    }

    if (ngx_http_ocimirror_cluster_upstream(cf, oci) != NGX_OK) {
        return NULL;
    }

    return cl;
}


static void
ngx_http_ocimirror_cluster_cleanup(void *data)
{
    ngx_http_ocimirror_cluster_t  *cl = data;

    oci_ring_free(&cl->ring);
    explicit_bzero(cl->secret, sizeof(cl->secret));
}


/*
 * The upstream block, written to a memfd and parsed by nginx's parser as
 * if it followed ocimirror_config in the http block (which "include" of
 * a file would do): nginx's own checks and errors, no copy of its code.
 */

static ngx_int_t
ngx_http_ocimirror_cluster_upstream(ngx_conf_t *cf, oci_config_t *oci)
{
    int         fd;
    char       *rv;
    size_t      i, len;
    u_char     *text, *p;
    ssize_t     n;
    ngx_str_t   file;
    u_char      path[64];

    len = 256;

    for (i = 0; i < oci->n_cluster_peers; i++) {
        len += ngx_strlen(oci->cluster_peers[i]) + 64;
    }

    text = ngx_pnalloc(cf->temp_pool, len);
    if (text == NULL) {
        return NGX_ERROR;
    }

    p = ngx_snprintf(text, len,
                     "upstream " NGX_HTTP_OCIMIRROR_CLUSTER_UPSTREAM " {\n"
                     "    zone " NGX_HTTP_OCIMIRROR_CLUSTER_UPSTREAM
                     " 64k;\n"
                     "    hash $ocimirror_cluster_key consistent;\n");

    for (i = 0; i < oci->n_cluster_peers; i++) {
        p = ngx_snprintf(p, len - (p - text),
                         "    server %s max_fails=1 fail_timeout=%ds;\n",
                         oci->cluster_peers[i],
                         (int) oci->cluster_fail_timeout);
    }

    p = ngx_snprintf(p, len - (p - text), "    keepalive %d;\n}\n",
                     NGX_HTTP_OCIMIRROR_CLUSTER_KEEPALIVE);

    fd = memfd_create("ocimirror-cluster-upstream", MFD_CLOEXEC);
    if (fd == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "memfd_create() for the cluster's upstream "
                           "failed");
        return NGX_ERROR;
    }

    n = write(fd, text, p - text);

    if (n != p - text) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "write() of the cluster's upstream failed");
        close(fd);
        return NGX_ERROR;
    }

    file.data = path;
    file.len = ngx_sprintf(path, "/proc/self/fd/%d%Z", fd) - path - 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cf->log, 0,
                   "ocimirror: cluster upstream:\n%*s", p - text, text);

    rv = ngx_conf_parse(cf, &file);

    close(fd);

    if (rv != NGX_CONF_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s: the upstream built from the cluster group "
                           "was refused (see above)", oci->file);
        return NGX_ERROR;
    }

    return NGX_OK;
}


u_char *
ngx_http_ocimirror_cluster_tag_key(ngx_http_request_t *r,
    const char *registry, const char *name, const char *tag, size_t *len)
{
    u_char  *key, *p;
    size_t   n;

    n = ngx_strlen(registry) + 1 + ngx_strlen(name) + 1 + ngx_strlen(tag);

    key = ngx_pnalloc(r->pool, n);
    if (key == NULL) {
        return NULL;
    }

    p = ngx_sprintf(key, "%s/%s:%s", registry, name, tag);
    *len = p - key;

    return key;
}


ngx_int_t
ngx_http_ocimirror_cluster_check(ngx_http_request_t *r, const char *key,
    size_t len)
{
    ngx_http_ocimirror_cluster_t      *cl;
    ngx_http_ocimirror_main_conf_t    *mcf;
    ngx_http_ocimirror_cluster_ctx_t  *ctx;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);
    cl = mcf->cluster;

    if (cl == NULL) {
        return NGX_OK;
    }

    ctx = ngx_palloc(r->pool, sizeof(ngx_http_ocimirror_cluster_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->key = key;
    ctx->len = len;
    ctx->peer = ngx_http_ocimirror_cluster_from_peer(r, cl, key, len);

    ngx_http_set_ctx(r, ctx, ngx_http_ocimirror_module);

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_cluster_pass(ngx_http_request_t *r)
{
    int                                rc;
    u_char                            *k, *auth;
    size_t                             len;
    ngx_str_t                          location;
    const char                        *key;
    ngx_http_ocimirror_cluster_t      *cl;
    ngx_http_ocimirror_main_conf_t    *mcf;
    ngx_http_ocimirror_cluster_ctx_t  *ctx;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);
    cl = mcf->cluster;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ocimirror_module);

    if (cl == NULL || ctx == NULL) {
        return NGX_DECLINED;
    }

    if (ctx->peer) {
        /* a peer passed it here: this node answers, whatever it owns */
        return NGX_DECLINED;
    }

    key = ctx->key;
    len = ctx->len;

    if (oci_ring_owner(&cl->ring, key, len) == cl->self) {
        return NGX_DECLINED;
    }

    k = ngx_pnalloc(r->pool, len);
    auth = ngx_pnalloc(r->pool, OCI_CLUSTER_HEADER_MAX + 1);

    if (k == NULL || auth == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(k, key, len);

    rc = oci_cluster_sign(cl->secret, cl->secret_len, cl->list_hash,
                          (long long) ngx_time(), key, len, (char *) auth,
                          OCI_CLUSTER_HEADER_MAX + 1);
    if (rc != OCI_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_ocimirror_cluster_set(r, cl->key_index, k, len) != NGX_OK
        || ngx_http_ocimirror_cluster_set(r, cl->auth_index, auth,
                                          ngx_strlen(auth))
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the owner's answer brings its own headers: drop the ones the
     * handler added (the API version) */

    ngx_http_ocimirror_reset_headers(r);

    ngx_http_ocimirror_metrics_count(r, NGX_HTTP_OCIMIRROR_CLUSTER_FORWARDED);
    ngx_http_ocimirror_outcome_set(r, NGX_HTTP_OCIMIRROR_OUTCOME_PEER);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "ocimirror: cluster: \"%*s\" passed to its owner",
                   len, key);

    ngx_str_set(&location, NGX_HTTP_OCIMIRROR_CLUSTER_LOCATION);

    return ngx_http_named_location(r, &location);
}


static ngx_int_t
ngx_http_ocimirror_cluster_set(ngx_http_request_t *r, ngx_int_t index,
    u_char *data, size_t len)
{
    ngx_http_variable_value_t  *v;

    v = ngx_http_get_indexed_variable(r, index);
    if (v == NULL) {
        return NGX_ERROR;
    }

    v->data = data;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* 1 if the request carries a peer header that verifies for key */

static ngx_int_t
ngx_http_ocimirror_cluster_from_peer(ngx_http_request_t *r,
    ngx_http_ocimirror_cluster_t *cl, const char *key, size_t len)
{
    int               rc;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    rc = OCI_EINVAL;
    char              list[OCI_CLUSTER_LIST_HASH_LEN + 1];

    static ngx_str_t  name = ngx_string(OCI_CLUSTER_HEADER);

    found = NULL;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name.len
            && ngx_strncasecmp(h[i].key.data, name.data, name.len) == 0)
        {
            if (found != NULL) {
                /* two: nothing a peer sends */
                found = NULL;
                goto refused;
            }

            found = &h[i];
        }
    }

    if (found == NULL) {
        return 0;
    }

    rc = oci_cluster_verify(cl->secret, cl->secret_len,
                            (const char *) found->value.data,
                            found->value.len, (long long) ngx_time(), key,
                            len, list);

    if (rc == OCI_OK) {
        ngx_http_ocimirror_metrics_count(r,
                                         NGX_HTTP_OCIMIRROR_CLUSTER_PEER);

        if (ngx_strcmp(list, cl->list_hash) != 0) {
            ngx_http_ocimirror_metrics_count(r,
                                  NGX_HTTP_OCIMIRROR_CLUSTER_MISMATCH);

            if (ngx_time() - ngx_http_ocimirror_cluster_warned
                >= NGX_HTTP_OCIMIRROR_CLUSTER_LOG_EVERY)
            {
                ngx_http_ocimirror_cluster_warned = ngx_time();

                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "ocimirror: cluster: the peer at %V has "
                              "another peers list (its hash %s, ours %s): "
                              "the peer lists differ, so the nodes "
                              "disagree on who owns what; give every "
                              "node the same cluster.peers",
                              &r->connection->addr_text, list,
                              cl->list_hash);
            }
        }

        return 1;
    }

refused:

    ngx_http_ocimirror_metrics_count(r, NGX_HTTP_OCIMIRROR_CLUSTER_REFUSED);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "ocimirror: cluster: a " OCI_CLUSTER_HEADER " header "
                  "from %V that does not verify (%s): served as a "
                  "client's request", &r->connection->addr_text,
                  found == NULL ? "sent twice"
                  : rc == OCI_ERANGE ? "too old or too new; are the "
                                       "nodes' clocks in step?"
                  : "bad signature");

    return 0;
}
