/*
 * Idle descriptors of the open file caches, closed without traffic (see
 * ngx_http_ocimirror_expire.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_store.h"
#include "ngx_http_ocimirror_expire.h"


#define NGX_HTTP_OCIMIRROR_EXPIRE_INTERVAL  1000    /* ms between ticks */

/* lookups per cache and tick, each closing up to two idle files */
#define NGX_HTTP_OCIMIRROR_EXPIRE_LOOKUPS   64

/* a lookup allocates one cleanup from its pool */
#define NGX_HTTP_OCIMIRROR_EXPIRE_POOL      512


typedef struct {
    ngx_open_file_cache_t      *cache;
    time_t                      valid;
    ngx_uint_t                  min_uses;
} ngx_http_ocimirror_expire_cache_t;


typedef struct {
    ngx_array_t                 caches;     /* of ..._expire_cache_t,
                                               each once */
    ngx_str_t                   marker;     /* the store's marker file */
    ngx_uint_t                  failed;     /* logged: it cannot be
                                               opened */
    ngx_event_t                 timer;
} ngx_http_ocimirror_expire_t;


static void ngx_http_ocimirror_expire_timer(ngx_event_t *ev);
static void ngx_http_ocimirror_expire_idle(ngx_http_ocimirror_expire_t *ex,
    ngx_http_ocimirror_expire_cache_t *ec);


ngx_int_t
ngx_http_ocimirror_expire_add(ngx_conf_t *cf, ngx_http_core_loc_conf_t *clcf)
{
    ngx_http_core_loc_conf_t        **p;
    ngx_http_ocimirror_main_conf_t   *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ocimirror_module);

    if (mcf->locations == NULL) {
        mcf->locations = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_http_core_loc_conf_t *));
        if (mcf->locations == NULL) {
            return NGX_ERROR;
        }
    }

    p = ngx_array_push(mcf->locations);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *p = clcf;

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_expire_init(ngx_cycle_t *cycle,
    ngx_http_ocimirror_main_conf_t *mcf)
{
    size_t                              len;
    ngx_uint_t                          i, j;
    ngx_http_core_loc_conf_t          **clcfp;
    ngx_http_ocimirror_expire_t        *ex;
    ngx_http_ocimirror_expire_cache_t  *ec;

    if (mcf->locations == NULL || mcf->oci == NULL) {
        return NGX_OK;
    }

    ex = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ocimirror_expire_t));
    if (ex == NULL) {
        return NGX_ERROR;
    }

    if (ngx_array_init(&ex->caches, cycle->pool, mcf->locations->nelts,
                       sizeof(ngx_http_ocimirror_expire_cache_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    clcfp = mcf->locations->elts;

    for (i = 0; i < mcf->locations->nelts; i++) {

        if (clcfp[i]->open_file_cache == NULL) {
            continue;
        }

        /* locations that inherit it from the server or http level share
         * one cache */

        ec = ex->caches.elts;

        for (j = 0; j < ex->caches.nelts; j++) {
            if (ec[j].cache == clcfp[i]->open_file_cache) {
                break;
            }
        }

        if (j < ex->caches.nelts) {
            continue;
        }

        ec = ngx_array_push(&ex->caches);
        if (ec == NULL) {
            return NGX_ERROR;
        }

        ec->cache = clcfp[i]->open_file_cache;
        ec->valid = clcfp[i]->open_file_cache_valid;
        ec->min_uses = clcfp[i]->open_file_cache_min_uses;
    }

    if (ex->caches.nelts == 0) {
        return NGX_OK;
    }

    len = ngx_strlen(mcf->oci->store_path) + sizeof("/" OCI_STORE_MARKER);

    ex->marker.data = ngx_pnalloc(cycle->pool, len);
    if (ex->marker.data == NULL) {
        return NGX_ERROR;
    }

    ex->marker.len = ngx_sprintf(ex->marker.data, "%s/" OCI_STORE_MARKER "%Z",
                                 mcf->oci->store_path)
                     - ex->marker.data - 1;

    ex->timer.handler = ngx_http_ocimirror_expire_timer;
    ex->timer.data = ex;
    ex->timer.log = cycle->log;

    /* a worker shutting down does not wait for it */
    ex->timer.cancelable = 1;

    ngx_add_timer(&ex->timer, NGX_HTTP_OCIMIRROR_EXPIRE_INTERVAL);

    return NGX_OK;
}


static void
ngx_http_ocimirror_expire_timer(ngx_event_t *ev)
{
    ngx_uint_t                          i;
    ngx_http_ocimirror_expire_t        *ex = ev->data;
    ngx_http_ocimirror_expire_cache_t  *ec;

    ec = ex->caches.elts;

    for (i = 0; i < ex->caches.nelts; i++) {
        ngx_http_ocimirror_expire_idle(ex, &ec[i]);
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_OCIMIRROR_EXPIRE_INTERVAL);
    }
}


static void
ngx_http_ocimirror_expire_idle(ngx_http_ocimirror_expire_t *ex,
    ngx_http_ocimirror_expire_cache_t *ec)
{
    ngx_int_t              rc;
    ngx_uint_t             n, before, start;
    ngx_pool_t            *pool;
    ngx_open_file_info_t   of;

    start = ec->cache->current;

    for (n = 0; n < NGX_HTTP_OCIMIRROR_EXPIRE_LOOKUPS; n++) {

        pool = ngx_create_pool(NGX_HTTP_OCIMIRROR_EXPIRE_POOL, ex->timer.log);
        if (pool == NULL) {
            return;
        }

        ngx_memzero(&of, sizeof(ngx_open_file_info_t));

        of.directio = NGX_OPEN_FILE_DIRECTIO_OFF;
        of.valid = ec->valid;
        of.min_uses = ec->min_uses;
        of.errors = 0;

        before = ec->cache->current;

        rc = ngx_open_cached_file(ec->cache, &ex->marker, &of, pool);

        /*
         * nginx's cleanup of the lookup, the same as at the end of a
         * request, closes up to two files idle for longer than inactive
         */

        ngx_destroy_pool(pool);

        if (rc != NGX_OK) {

            /* before the fetcher first ran there is nothing to close */

            if (of.err != NGX_ENOENT && !ex->failed) {
                ngx_log_error(NGX_LOG_ERR, ex->timer.log, of.err,
                              "ocimirror: cannot open \"%V\" to close idle "
                              "files of the open file cache", &ex->marker);
                ex->failed = 1;
            }

            return;
        }

        ex->failed = 0;

        /*
         * none closed (or one, and the marker's own entry added): the
         * least recently used entry left is not idle, nor any other
         */

        if (ec->cache->current >= before) {
            break;
        }
    }

    if (ec->cache->current != start) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ex->timer.log, 0,
                       "ocimirror: open file cache from %ui to %ui entries",
                       start, ec->cache->current);
    }
}
