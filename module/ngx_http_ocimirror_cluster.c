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
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_metrics.h"
#include "ngx_http_ocimirror_outcome.h"


#define NGX_HTTP_OCIMIRROR_CLUSTER_UPSTREAM   "ocimirror_cluster"
#define NGX_HTTP_OCIMIRROR_CLUSTER_OTHERS     "ocimirror_cluster_others"
#define NGX_HTTP_OCIMIRROR_CLUSTER_LOCATION   "@ocimirror_cluster"
#define NGX_HTTP_OCIMIRROR_CLUSTER_KEEPALIVE  16
#define NGX_HTTP_OCIMIRROR_CLUSTER_LOG_EVERY  60    /* seconds */


/* a request's, from ngx_http_ocimirror_cluster_check() */
typedef struct {
    const char         *key;
    size_t              len;
    oci_route_t        *route;
    ngx_uint_t          peer;       /* a peer's header verified */
    ngx_uint_t          replica;    /* ..._pass(): this node's fetcher's
                                       copy of a hot blob
                                       (OCI_CLUSTER_REPLICA_HEADER without
                                       a peer header) */
    ngx_uint_t          copy;       /* ..._pass(): another node's copy (the
                                       header with a peer header that
                                       verified) */
} ngx_http_ocimirror_cluster_ctx_t;


/* One blob a worker forwarded: how often since start (replicate "hot") */
typedef struct {
    u_char              hex[OCI_SHA256_HEX_LEN];  /* [0] == 0: free */
    time_t              start;      /* of its window */
    time_t              asked;      /* a copy was asked then; 0: never */
    ngx_uint_t          count;
} ngx_http_ocimirror_cluster_hot_t;


struct ngx_http_ocimirror_cluster_s {
    oci_ring_t          ring;
    size_t              self;
    unsigned char       secret[OCI_CLUSTER_SECRET_MAX + 1];
    size_t              secret_len;
    char                list_hash[OCI_CLUSTER_LIST_HASH_LEN + 1];
    ngx_int_t           key_index;
    ngx_int_t           auth_index;
    ngx_int_t           upstream_index;
    ngx_int_t           copy_index;

    /* replicate "hot": the workers' table, in a shared zone (slot
     * updates under its slab pool's mutex) */
    ngx_uint_t          replicate;
    ngx_uint_t          hot_requests;
    time_t              hot_window;
    ngx_uint_t          hot_size;
    ngx_slab_pool_t    *hot_pool;
    ngx_http_ocimirror_cluster_hot_t  *hot;
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
static u_char *ngx_http_ocimirror_cluster_block(u_char *p, u_char *last,
    oci_config_t *oci, const char *name, ngx_uint_t skip_self);
static ngx_uint_t ngx_http_ocimirror_cluster_header(ngx_http_request_t *r,
    ngx_str_t *name, ngx_table_elt_t **found);
static ngx_int_t ngx_http_ocimirror_cluster_hot_zone(ngx_conf_t *cf,
    ngx_http_ocimirror_cluster_t *cl);
static ngx_int_t ngx_http_ocimirror_cluster_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static void ngx_http_ocimirror_cluster_hot(ngx_http_request_t *r,
    ngx_http_ocimirror_cluster_t *cl, ngx_http_ocimirror_cluster_ctx_t *ctx);


static ngx_http_variable_t  ngx_http_ocimirror_cluster_vars[] = {

    /* the upstream's name, for proxy_pass http://$...: a variable, so
     * that the include's location is valid without a cluster group;
     * ngx_http_ocimirror_cluster_pass() sets the other nodes' upstream
     * for a copy */
    { ngx_string("ocimirror_cluster_upstream"), NULL,
      ngx_http_ocimirror_cluster_upstream_variable, 0, 0, 0 },

    /* set by ngx_http_ocimirror_cluster_pass() before it forwards */
    { ngx_string("ocimirror_cluster_key"), NULL,
      ngx_http_ocimirror_cluster_unset_variable, 0, 0, 0 },

    { ngx_string("ocimirror_cluster_auth"), NULL,
      ngx_http_ocimirror_cluster_unset_variable, 0, 0, 0 },

    /* "1" on a copy's request (replicate "hot"), so that the node asked
     * knows it; else empty, and the header is not sent */
    { ngx_string("ocimirror_cluster_copy"), NULL,
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

    ngx_str_set(&name, "ocimirror_cluster_upstream");
    cl->upstream_index = ngx_http_get_variable_index(cf, &name);

    ngx_str_set(&name, "ocimirror_cluster_copy");
    cl->copy_index = ngx_http_get_variable_index(cf, &name);

    if (cl->key_index == NGX_ERROR || cl->auth_index == NGX_ERROR
        || cl->upstream_index == NGX_ERROR || cl->copy_index == NGX_ERROR)
    {
        return NULL;
    }

    cl->replicate = oci->cluster_replicate == OCI_CLUSTER_REPLICATE_HOT;
    cl->hot_requests = (ngx_uint_t) oci->cluster_hot_requests;
    cl->hot_window = (time_t) oci->cluster_hot_window;
    cl->hot_size = (ngx_uint_t) oci->cluster_hot_table;

    if (cl->replicate && ngx_http_ocimirror_cluster_hot_zone(cf, cl)
                         != NGX_OK)
    {
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


/* The shared zone of the hot table: the slots and the slab pool's
 * bookkeeping (a page structure per page, the pool's header). */

static ngx_int_t
ngx_http_ocimirror_cluster_hot_zone(ngx_conf_t *cf,
    ngx_http_ocimirror_cluster_t *cl)
{
    size_t           size;
    ngx_shm_zone_t  *shm_zone;

    static ngx_str_t  name = ngx_string("ocimirror_cluster_hot");

    size = cl->hot_size * sizeof(ngx_http_ocimirror_cluster_hot_t);
    size += size / 16 + 16 * ngx_pagesize;

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_ocimirror_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_ocimirror_cluster_init_zone;
    shm_zone->data = cl;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ocimirror_cluster_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ocimirror_cluster_t  *ocl = data;

    ngx_slab_pool_t               *shpool;
    ngx_http_ocimirror_cluster_t  *cl;

    cl = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    cl->hot_pool = shpool;

    if (ocl != NULL) {
        /* a reload with the same hot_table: the counts carry on */
        cl->hot = ocl->hot;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        cl->hot = shpool->data;
        return NGX_OK;
    }

    cl->hot = ngx_slab_calloc(shpool, cl->hot_size
                              * sizeof(ngx_http_ocimirror_cluster_hot_t));
    if (cl->hot == NULL) {
        return NGX_ERROR;
    }

    shpool->data = cl->hot;

    return NGX_OK;
}


/*
 * The upstream blocks, written to a memfd and parsed by nginx's parser as
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

    len = 512;

    for (i = 0; i < oci->n_cluster_peers; i++) {
        len += 2 * (ngx_strlen(oci->cluster_peers[i]) + 64);
    }

    text = ngx_pnalloc(cf->temp_pool, len);
    if (text == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_ocimirror_cluster_block(text, text + len, oci,
                                         NGX_HTTP_OCIMIRROR_CLUSTER_UPSTREAM,
                                         0);

    /* the same ring without this node: the copies of hot blobs, asked
     * of the owner and, failing it, of the next node but this one (the
     * other points of a ketama ring do not move when a node's go) */
    if (oci->n_cluster_peers > 1) {
        p = ngx_http_ocimirror_cluster_block(p, text + len, oci,
                                      NGX_HTTP_OCIMIRROR_CLUSTER_OTHERS, 1);
    }

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


static u_char *
ngx_http_ocimirror_cluster_block(u_char *p, u_char *last, oci_config_t *oci,
    const char *name, ngx_uint_t skip_self)
{
    size_t  i;

    p = ngx_slprintf(p, last,
                     "upstream %s {\n"
                     "    zone %s 64k;\n"
                     "    hash $ocimirror_cluster_key consistent;\n",
                     name, name);

    for (i = 0; i < oci->n_cluster_peers; i++) {
        if (skip_self && i == oci->cluster_self) {
            continue;
        }

        p = ngx_slprintf(p, last,
                         "    server %s max_fails=1 fail_timeout=%ds;\n",
                         oci->cluster_peers[i],
                         (int) oci->cluster_fail_timeout);
    }

    return ngx_slprintf(p, last, "    keepalive %d;\n}\n",
                        NGX_HTTP_OCIMIRROR_CLUSTER_KEEPALIVE);
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
    size_t len, oci_route_t *route)
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
    ctx->route = route;
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
    ngx_table_elt_t                   *h;
    ngx_http_ocimirror_cluster_t      *cl;
    ngx_http_ocimirror_main_conf_t    *mcf;
    ngx_http_ocimirror_cluster_ctx_t  *ctx;

    static ngx_str_t  replica = ngx_string(OCI_CLUSTER_REPLICA_HEADER);

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);
    cl = mcf->cluster;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ocimirror_module);

    if (cl == NULL || ctx == NULL) {
        return NGX_DECLINED;
    }

    key = ctx->key;
    len = ctx->len;

    /* a copy's mark: looked for on a miss only, a hit never needs it */
    ctx->replica = ngx_http_ocimirror_cluster_header(r, &replica, &h) > 0;
    ctx->copy = ctx->peer && ctx->replica;
    ctx->replica = !ctx->peer && ctx->replica;

    if (ctx->peer) {
        if (ctx->copy && oci_ring_owner(&cl->ring, key, len) != cl->self) {
            /* another node's copy of a hot blob, here because its owner
             * is down: not fetched here for it (two nodes' copies could
             * wait on each other); it asks the upstream */
            return ngx_http_ocimirror_send_error(r, NGX_HTTP_CONFLICT,
                              OCI_ERR_UNAVAILABLE,
                              "a copy is asked of the node that owns it "
                              "only");
        }

        /* a peer passed it here: this node answers, whatever it owns */
        return NGX_DECLINED;
    }

    if (oci_ring_owner(&cl->ring, key, len) == cl->self) {
        if (ctx->replica) {
            /* this node's fetcher asked for a copy of what this node
             * owns (the peers changed meanwhile): served here as a miss
             * it would wait on its own download; it asks the upstream */
            return ngx_http_ocimirror_send_error(r,
                              NGX_HTTP_SERVICE_UNAVAILABLE,
                              OCI_ERR_UNAVAILABLE,
                              "a copy asked of the node that owns it");
        }

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

    if (ctx->replica) {
        /* never back here: the other nodes' upstream */
        if (ngx_http_ocimirror_cluster_set(r, cl->upstream_index,
                         (u_char *) NGX_HTTP_OCIMIRROR_CLUSTER_OTHERS,
                         sizeof(NGX_HTTP_OCIMIRROR_CLUSTER_OTHERS) - 1)
               != NGX_OK
            || ngx_http_ocimirror_cluster_set(r, cl->copy_index,
                                              (u_char *) "1", 1)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_ocimirror_metrics_count(r,
                                         NGX_HTTP_OCIMIRROR_CLUSTER_REPLICA);

    } else {
        ngx_http_ocimirror_metrics_count(r,
                                        NGX_HTTP_OCIMIRROR_CLUSTER_FORWARDED);
        ngx_http_ocimirror_cluster_hot(r, cl, ctx);
    }

    ngx_http_ocimirror_outcome_set(r, NGX_HTTP_OCIMIRROR_OUTCOME_PEER);

    /* the owner's answer brings its own headers: drop the ones the
     * handler added (the API version) */

    ngx_http_ocimirror_reset_headers(r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "ocimirror: cluster: \"%*s\" passed to its owner",
                   len, key);

    ngx_str_set(&location, NGX_HTTP_OCIMIRROR_CLUSTER_LOCATION);

    return ngx_http_named_location(r, &location);
}


/*
 * replicate "hot": a client's GET of a blob another node owns, counted in
 * the workers' shared table (slot by the digest's first digits; a blob
 * that finds another's open window there counts it down and takes the
 * slot when it reaches 0: the table is bounded, the count approximate).  At
 * hot_requests in hot_window the fetcher is asked for a copy (REPLICATE),
 * once a window: the copy makes the next GETs hits, which never come
 * here.
 */

static void
ngx_http_ocimirror_cluster_hot(ngx_http_request_t *r,
    ngx_http_ocimirror_cluster_t *cl, ngx_http_ocimirror_cluster_ctx_t *ctx)
{
    time_t                             now;
    oci_msg_t                          m;
    ngx_int_t                          h;
    ngx_uint_t                         ask, count;
    oci_route_t                       *route;
    ngx_http_ocimirror_main_conf_t    *mcf;
    ngx_http_ocimirror_cluster_hot_t  *slot;

    route = ctx->route;

    /* a client's GET of the whole blob: not a range (this node's own
     * prefetch hints ask for the first byte) */
    if (!cl->replicate || cl->hot == NULL || route == NULL
        || route->endpoint != OCI_EP_BLOB || !route->is_digest
        || r->method != NGX_HTTP_GET || r->headers_in.range != NULL)
    {
        return;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);

    if (mcf->link == NULL) {
        return;
    }

    /* 7 digits: within ngx_int_t everywhere */
    h = ngx_hextoi((u_char *) route->hex, 7);
    slot = &cl->hot[(h == NGX_ERROR ? 0 : (ngx_uint_t) h) % cl->hot_size];
    now = ngx_time();
    ask = 0;

    ngx_shmtx_lock(&cl->hot_pool->mutex);

    if (ngx_memcmp(slot->hex, route->hex, OCI_SHA256_HEX_LEN) != 0) {
        /* another blob's window is open: this one wears its count down
         * and takes the slot at 0, so a blob asked for more often than
         * its neighbour gets counted, whatever a client asks */
        if (slot->hex[0] != '\0' && now - slot->start < cl->hot_window
            && --slot->count > 0)
        {
            ngx_shmtx_unlock(&cl->hot_pool->mutex);
            return;
        }

        ngx_memcpy(slot->hex, route->hex, OCI_SHA256_HEX_LEN);
        slot->start = now;
        slot->asked = 0;
        slot->count = 0;

    } else if (now - slot->start >= cl->hot_window) {
        slot->start = now;
        slot->count = 0;
    }

    count = ++slot->count;

    if (count >= cl->hot_requests
        && (slot->asked == 0 || now - slot->asked >= cl->hot_window))
    {
        /* this worker asks; if the fetcher cannot be told, the next
         * request past the window asks again */
        slot->asked = now;
        ask = 1;
    }

    ngx_shmtx_unlock(&cl->hot_pool->mutex);

    if (!ask) {
        return;
    }

    oci_msg_init(&m, OCI_MSG_REPLICATE, 0);
    (void) ngx_cpystrn((u_char *) m.registry, (u_char *) route->registry->name,
                       sizeof(m.registry));
    (void) ngx_cpystrn((u_char *) m.name, (u_char *) route->name,
                       sizeof(m.name));
    (void) ngx_cpystrn((u_char *) m.reference, (u_char *) route->reference,
                       sizeof(m.reference));

    if (ngx_http_ocimirror_link_notify(mcf->link, &m) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ocimirror: cluster: %s is hot here, but the fetcher "
                      "could not be asked for a copy", route->reference);
        return;
    }

    ngx_http_ocimirror_link_push(mcf->link);

    ngx_http_ocimirror_metrics_count(r, NGX_HTTP_OCIMIRROR_CLUSTER_HOT);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "ocimirror: cluster: %s/%s@%s is hot here (%ui requests "
                  "in %T s): a copy is asked of the fetcher",
                  route->registry->name, route->name, route->reference,
                  count, now - slot->start);
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
    ngx_table_elt_t  *found;
    char              list[OCI_CLUSTER_LIST_HASH_LEN + 1];

    rc = OCI_EINVAL;

    static ngx_str_t  name = ngx_string(OCI_CLUSTER_HEADER);

    switch (ngx_http_ocimirror_cluster_header(r, &name, &found)) {

    case 0:
        return 0;

    case 1:
        break;

    default:
        /* two: nothing a peer sends */
        found = NULL;
        goto refused;
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


/* How many request headers are named name (0, 1 or 2 for more); *found
 * the first. */

static ngx_uint_t
ngx_http_ocimirror_cluster_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_table_elt_t **found)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = 0;
    *found = NULL;
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

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            if (n++ == 0) {
                *found = &h[i];

            } else {
                return 2;
            }
        }
    }

    return n;
}
