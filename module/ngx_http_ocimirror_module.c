/*
 * ocimirror: directives, configuration and the module's life cycle.
 *
 *   http { ocimirror_config /etc/ocimirror/ocimirror.cfg; }
 *   location /v2/               { ocimirror; }
 *   location = /healthz         { ocimirror_health live; }
 *   location = /readyz          { ocimirror_health ready; }
 *   location = /metrics         { ocimirror_metrics; }
 *   location = /status          { ocimirror_status; }
 *   location = /status.json     { ocimirror_status; }
 *   location @ocimirror_error   { ocimirror_error; }
 *   ocimirror_fetch_timeout 60s;
 *
 * The libconfig file is read while nginx parses its own configuration,
 * so "nginx -t" fails with the file and line of the first error, and a
 * reload that breaks it keeps the old workers.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/un.h>

#include "ngx_http_ocimirror_module.h"
#include "ngx_http_ocimirror_cluster.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_expire.h"
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_handler.h"
#include "ngx_http_ocimirror_health.h"
#include "ngx_http_ocimirror_metrics.h"
#include "ngx_http_ocimirror_outcome.h"
#include "ngx_http_ocimirror_recency.h"
#include "ngx_http_ocimirror_status.h"


static ngx_int_t ngx_http_ocimirror_preconfiguration(ngx_conf_t *cf);
static void *ngx_http_ocimirror_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_ocimirror_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_ocimirror_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ocimirror_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_ocimirror_config(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ocimirror(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ocimirror_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ocimirror_error(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ocimirror_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ocimirror_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_ocimirror_require_config(ngx_conf_t *cf,
    ngx_str_t *directive);
static void ngx_http_ocimirror_config_cleanup(void *data);
static ngx_int_t ngx_http_ocimirror_init_process(ngx_cycle_t *cycle);
static void ngx_http_ocimirror_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_ocimirror_commands[] = {

    { ngx_string("ocimirror_config"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ocimirror_config,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ocimirror"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ocimirror,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ocimirror_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ocimirror_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ocimirror_error"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ocimirror_error,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ocimirror_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ocimirror_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ocimirror_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ocimirror_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ocimirror_fetch_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ocimirror_loc_conf_t, fetch_timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ocimirror_module_ctx = {
    ngx_http_ocimirror_preconfiguration,   /* preconfiguration */
    ngx_http_ocimirror_metrics_init,       /* postconfiguration */

    ngx_http_ocimirror_create_main_conf,   /* create main configuration */
    ngx_http_ocimirror_init_main_conf,     /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ocimirror_create_loc_conf,    /* create location configuration */
    ngx_http_ocimirror_merge_loc_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_ocimirror_module = {
    NGX_MODULE_V1,
    &ngx_http_ocimirror_module_ctx,        /* module context */
    ngx_http_ocimirror_commands,           /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_ocimirror_init_process,       /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_ocimirror_exit_process,       /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* the module's variables: the cluster's, $ocimirror_cache_status */

static ngx_int_t
ngx_http_ocimirror_preconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_ocimirror_cluster_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_ocimirror_outcome_variables(cf);
}


static void *
ngx_http_ocimirror_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ocimirror_main_conf_t  *mcf;

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->oci = NULL;
     *     mcf->link = NULL;
     *     mcf->cache = NULL;
     *     mcf->metrics = NULL;
     *     mcf->cluster = NULL;
     *     mcf->locations = NULL;
     *     mcf->required_by = { 0, NULL };
     */

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ocimirror_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    return mcf;
}


/*
 * Runs once the whole http block is parsed, so the directives may come in
 * any order: a location that needs the libconfig file is an error only
 * if no ocimirror_config was given at all.
 */

static char *
ngx_http_ocimirror_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_ocimirror_main_conf_t  *mcf = conf;

    if (mcf->required_by.len && mcf->oci == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%V\" in %V:%ui requires \"ocimirror_config\" "
                      "in the http block",
                      &mcf->required_by, &mcf->required_file,
                      mcf->required_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_ocimirror_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_ocimirror_loc_conf_t  *lcf;

    lcf = ngx_palloc(cf->pool, sizeof(ngx_http_ocimirror_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->fetch_timeout = NGX_CONF_UNSET_MSEC;

    return lcf;
}


static char *
ngx_http_ocimirror_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ocimirror_loc_conf_t  *prev = parent;
    ngx_http_ocimirror_loc_conf_t  *conf = child;

    ngx_conf_merge_msec_value(conf->fetch_timeout, prev->fetch_timeout,
                              60000);

    return NGX_CONF_OK;
}


static char *
ngx_http_ocimirror_config(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ocimirror_main_conf_t  *mcf = conf;

    int                  rc;
    char                 err[512];
    ngx_str_t           *value, file;
    oci_config_t        *oci;
    ngx_pool_cleanup_t  *cln;
    struct sockaddr_un   sun;

    if (mcf->oci != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    /* a relative name is taken from the nginx configuration's folder */

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    oci = NULL;
    err[0] = '\0';

    rc = oci_config_load((const char *) file.data, &oci, err, sizeof(err));

    if (rc != OCI_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s",
                           err[0] ? err : "cannot load the configuration");
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_ocimirror_config_cleanup;
    cln->data = oci;

    if (ngx_strlen(oci->fetcher_socket) >= sizeof(sun.sun_path)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s: fetcher socket path \"%s\" is too long",
                           oci->file, oci->fetcher_socket);
        return NGX_CONF_ERROR;
    }

    mcf->oci = oci;

    mcf->cache = ngx_http_ocimirror_cache_create(cf);
    if (mcf->cache == NULL) {
        return NGX_CONF_ERROR;
    }

    mcf->metrics = ngx_http_ocimirror_metrics_create(cf);
    if (mcf->metrics == NULL) {
        return NGX_CONF_ERROR;
    }

    if (oci->n_cluster_peers > 0) {
        mcf->cluster = ngx_http_ocimirror_cluster_create(cf, oci);
        if (mcf->cluster == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_ocimirror(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate";
    }

    ngx_http_ocimirror_require_config(cf, &cmd->name);

    if (ngx_http_ocimirror_expire_add(cf, clcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf->handler = ngx_http_ocimirror_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_ocimirror_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "live") == 0) {
        clcf->handler = ngx_http_ocimirror_live_handler;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "ready") == 0) {

        /* readiness checks the store and the fetcher the file names */

        ngx_http_ocimirror_require_config(cf, &cmd->name);

        clcf->handler = ngx_http_ocimirror_ready_handler;
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\", it must be \"live\" or "
                       "\"ready\"", &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_ocimirror_error(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_ocimirror_error_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_ocimirror_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate";
    }

    /* the counters' zone and the fetcher come with the config */

    ngx_http_ocimirror_require_config(cf, &cmd->name);

    clcf->handler = ngx_http_ocimirror_metrics_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_ocimirror_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate";
    }

    /* the counters' zone and the fetcher come with the config */

    ngx_http_ocimirror_require_config(cf, &cmd->name);

    clcf->handler = ngx_http_ocimirror_status_handler;

    return NGX_CONF_OK;
}


/* Remember the first directive that needs ocimirror_config. */

static void
ngx_http_ocimirror_require_config(ngx_conf_t *cf, ngx_str_t *directive)
{
    ngx_http_ocimirror_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ocimirror_module);

    if (mcf->required_by.len == 0) {
        mcf->required_by = *directive;
        mcf->required_file = cf->conf_file->file.name;
        mcf->required_line = cf->conf_file->line;
    }
}


static void
ngx_http_ocimirror_config_cleanup(void *data)
{
    oci_config_t  *oci = data;

    if (oci != NULL) {
        oci_config_destroy(oci);
    }
}


static ngx_int_t
ngx_http_ocimirror_init_process(ngx_cycle_t *cycle)
{
    ngx_http_ocimirror_main_conf_t  *mcf;

    /* cache managers and loaders serve no requests */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_ocimirror_module);

    if (mcf == NULL || mcf->oci == NULL) {
        return NGX_OK;
    }

    mcf->link = ngx_http_ocimirror_link_create(cycle,
                                               mcf->oci->fetcher_socket,
                                               mcf->oci->store_path);
    if (mcf->link == NULL) {
        return NGX_ERROR;
    }

    /* store.recency = false, a measurement switch: no table, and a hit
     * notes nothing (ngx_http_ocimirror_recency_note() of NULL) */

    if (mcf->oci->store_recency) {
        mcf->recency = ngx_http_ocimirror_recency_create(cycle, mcf->link,
                                      (ngx_uint_t) mcf->oci->recency_batch,
                                      (ngx_msec_t) mcf->oci->recency_interval
                                      * 1000);
        if (mcf->recency == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_ocimirror_expire_init(cycle, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* a fetcher that is not up yet is fine: requests reconnect */

    (void) ngx_http_ocimirror_link_connect(mcf->link);

    return NGX_OK;
}


static void
ngx_http_ocimirror_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_ocimirror_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_ocimirror_module);

    if (mcf == NULL || mcf->link == NULL) {
        return;
    }

    ngx_http_ocimirror_link_close(mcf->link);
    mcf->link = NULL;
    mcf->recency = NULL;
}
