/*
 * ocimirror nginx module: configuration shared by every file of the
 * module.
 *
 * The libconfig file named by "ocimirror_config" is loaded once per
 * configuration cycle, at the directive, so that "nginx -t" reports its
 * errors with the file name and line; it lives as long as the cycle pool.
 * Each worker owns one link to the fetcher (ngx_http_ocimirror_link.h),
 * created in init_process and kept in the main conf: that memory is
 * private to the worker after fork(), so no global is needed.  The cache
 * of small store files (ngx_http_ocimirror_cache.h) and the counters
 * (ngx_http_ocimirror_metrics.h) are zones the workers share.
 */

#ifndef NGX_HTTP_OCIMIRROR_MODULE_H
#define NGX_HTTP_OCIMIRROR_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_config.h"
#include "ngx_http_ocimirror_cache.h"
#include "ngx_http_ocimirror_metrics.h"


typedef struct ngx_http_ocimirror_link_s  ngx_http_ocimirror_link_t;
typedef struct ngx_http_ocimirror_recency_s  ngx_http_ocimirror_recency_t;
typedef struct ngx_http_ocimirror_cluster_s  ngx_http_ocimirror_cluster_t;


typedef struct {
    /* NULL without ocimirror_config */
    oci_config_t                    *oci;
    ngx_http_ocimirror_cache_t      *cache;
    ngx_http_ocimirror_metrics_t    *metrics;
    ngx_http_ocimirror_cluster_t    *cluster;    /* NULL: a lone node */

    ngx_http_ocimirror_link_t       *link;       /* this worker's, or NULL */
    ngx_http_ocimirror_recency_t    *recency;    /* this worker's, or NULL */

    /* the core loc confs of the locations with "ocimirror", whose open
     * file caches the workers expire (ngx_http_ocimirror_expire.h) */
    ngx_array_t                     *locations;

    /* $ocimirror_cache_status (ngx_http_ocimirror_outcome.h) */
    ngx_int_t                        outcome_index;

    /* the first directive that needs the config, for the error message */
    ngx_str_t                        required_by;
    ngx_str_t                        required_file;
    ngx_uint_t                       required_line;
} ngx_http_ocimirror_main_conf_t;


typedef struct {
    ngx_msec_t                  fetch_timeout;
} ngx_http_ocimirror_loc_conf_t;


extern ngx_module_t  ngx_http_ocimirror_module;


#endif /* NGX_HTTP_OCIMIRROR_MODULE_H */
