/*
 * Metrics (see ngx_http_ocimirror_metrics.h).
 *
 * GET /metrics asks the fetcher for STATS, like readiness asks for a
 * PONG, and answers 200 in every case: the workers' counters from the
 * shared zone in memory, "ocimirror_fetcher_up 1" and then the fetcher's
 * text as a file buffer from its BODY file; or, if the fetcher cannot
 * answer, the workers' counters and "ocimirror_fetcher_up 0".  A scraper
 * can then tell a dead fetcher from a dead nginx.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ocimirror_module.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_handler.h"
#include "ngx_http_ocimirror_metrics.h"
#include "ngx_http_ocimirror_serve.h"


/* the fetcher writes a few kilobytes: more than this is a stuck fetcher */
#define NGX_HTTP_OCIMIRROR_STATS_TIMEOUT  5000


typedef struct {
    ngx_atomic_t                     counters[NGX_HTTP_OCIMIRROR_COUNTERS];
} ngx_http_ocimirror_metrics_sh_t;


struct ngx_http_ocimirror_metrics_s {
    ngx_http_ocimirror_metrics_sh_t  *sh;
};


/* One sample; a name starts a family (HELP and TYPE lines), NULL goes on
 * with the family above. */
typedef struct {
    const char                      *name;
    const char                      *help;
    const char                      *sample;
    ngx_http_ocimirror_counter_t     counter;
} ngx_http_ocimirror_sample_t;


typedef struct {
    ngx_http_request_t              *request;
    ngx_http_ocimirror_wait_t        wait;
} ngx_http_ocimirror_metrics_ctx_t;


static ngx_int_t ngx_http_ocimirror_metrics_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static ngx_http_ocimirror_metrics_sh_t *ngx_http_ocimirror_metrics_sh(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_ocimirror_metrics_log(ngx_http_request_t *r);
static void ngx_http_ocimirror_metrics_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_metrics_send(ngx_http_request_t *r,
    const oci_msg_t *m);
static ngx_buf_t *ngx_http_ocimirror_metrics_render(ngx_http_request_t *r,
    ngx_uint_t up);


static const ngx_http_ocimirror_sample_t  ngx_http_ocimirror_samples[] = {

    { "ocimirror_requests_total",
      "Registry API requests by endpoint and outcome: hit, answered by "
      "nginx from the store; miss, the fetcher was asked.",
      "{endpoint=\"base\",outcome=\"hit\"}",
      NGX_HTTP_OCIMIRROR_HIT_BASE },
    { NULL, NULL, "{endpoint=\"blob\",outcome=\"hit\"}",
      NGX_HTTP_OCIMIRROR_HIT_BLOB },
    { NULL, NULL, "{endpoint=\"blob\",outcome=\"miss\"}",
      NGX_HTTP_OCIMIRROR_MISS_BLOB },
    { NULL, NULL, "{endpoint=\"manifest\",outcome=\"hit\"}",
      NGX_HTTP_OCIMIRROR_HIT_MANIFEST },
    { NULL, NULL, "{endpoint=\"manifest\",outcome=\"miss\"}",
      NGX_HTTP_OCIMIRROR_MISS_MANIFEST },
    { NULL, NULL, "{endpoint=\"tags\",outcome=\"miss\"}",
      NGX_HTTP_OCIMIRROR_MISS_TAGS },
    { NULL, NULL, "{endpoint=\"referrers\",outcome=\"miss\"}",
      NGX_HTTP_OCIMIRROR_MISS_REFERRERS },

    { "ocimirror_responses_total",
      "Registry API responses by status class.",
      "{code=\"1xx\"}", NGX_HTTP_OCIMIRROR_RESPONSES_1XX },
    { NULL, NULL, "{code=\"2xx\"}", NGX_HTTP_OCIMIRROR_RESPONSES_2XX },
    { NULL, NULL, "{code=\"3xx\"}", NGX_HTTP_OCIMIRROR_RESPONSES_3XX },
    { NULL, NULL, "{code=\"4xx\"}", NGX_HTTP_OCIMIRROR_RESPONSES_4XX },
    { NULL, NULL, "{code=\"5xx\"}", NGX_HTTP_OCIMIRROR_RESPONSES_5XX },

    { "ocimirror_sent_bytes_total",
      "Body bytes of registry API responses (all of them read from the "
      "store's files).",
      "", NGX_HTTP_OCIMIRROR_SENT_BYTES },

    { "ocimirror_stale_served_total",
      "Manifests served from a stale tag record, with a Warning header: "
      "source=fetcher when every upstream endpoint failed, source=cache "
      "when nginx could not ask the fetcher.",
      "{source=\"fetcher\"}", NGX_HTTP_OCIMIRROR_STALE_FETCHER },
    { NULL, NULL, "{source=\"cache\"}", NGX_HTTP_OCIMIRROR_STALE_CACHE },

    { "ocimirror_cluster_forwarded_total",
      "Requests passed to the cluster node that owns what they ask.",
      "", NGX_HTTP_OCIMIRROR_CLUSTER_FORWARDED },
    { "ocimirror_cluster_peer_requests_total",
      "Requests another cluster node passed here, served here.",
      "", NGX_HTTP_OCIMIRROR_CLUSTER_PEER },
    { "ocimirror_cluster_peer_refused_total",
      "Requests whose peer header did not verify, served as clients'.",
      "", NGX_HTTP_OCIMIRROR_CLUSTER_REFUSED },
    { "ocimirror_cluster_list_mismatch_total",
      "Peer requests from a node whose peers list differs from this "
      "node's.",
      "", NGX_HTTP_OCIMIRROR_CLUSTER_MISMATCH },
    { "ocimirror_cluster_hot_total",
      "Blobs another node owns that this node's clients asked for "
      "cluster.hot_requests times in hot_window (replicate \"hot\"): "
      "a copy here was asked of the fetcher.",
      "", NGX_HTTP_OCIMIRROR_CLUSTER_HOT },
    { "ocimirror_cluster_replica_requests_total",
      "The fetcher's requests for such a copy, passed to the other "
      "nodes.",
      "", NGX_HTTP_OCIMIRROR_CLUSTER_REPLICA }
};


ngx_http_ocimirror_metrics_t *
ngx_http_ocimirror_metrics_create(ngx_conf_t *cf)
{
    ngx_shm_zone_t                *shm_zone;
    ngx_http_ocimirror_metrics_t  *metrics;

    static ngx_str_t  name = ngx_string("ocimirror_metrics");

    metrics = ngx_pcalloc(cf->pool, sizeof(ngx_http_ocimirror_metrics_t));
    if (metrics == NULL) {
        return NULL;
    }

    /* the smallest zone a slab pool is comfortable in */

    shm_zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                     &ngx_http_ocimirror_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_http_ocimirror_metrics_init_zone;
    shm_zone->data = metrics;

    return metrics;
}


static ngx_int_t
ngx_http_ocimirror_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ocimirror_metrics_t  *ometrics = data;

    ngx_slab_pool_t               *shpool;
    ngx_http_ocimirror_metrics_t  *metrics;

    metrics = shm_zone->data;

    if (ometrics != NULL) {
        /* a reload: counters only grow, so the old ones carry on */
        metrics->sh = ometrics->sh;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        metrics->sh = shpool->data;
        return NGX_OK;
    }

    metrics->sh = ngx_slab_calloc(shpool,
                                  sizeof(ngx_http_ocimirror_metrics_sh_t));
    if (metrics->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = metrics->sh;

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt             *h;
    ngx_http_core_main_conf_t       *cmcf;
    ngx_http_ocimirror_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ocimirror_module);

    if (mcf->metrics == NULL) {
        /* no ocimirror_config: no /v2/ to count */
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_ocimirror_metrics_log;

    return NGX_OK;
}


static ngx_http_ocimirror_metrics_sh_t *
ngx_http_ocimirror_metrics_sh(ngx_http_request_t *r)
{
    ngx_http_ocimirror_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);

    if (mcf == NULL || mcf->metrics == NULL) {
        return NULL;
    }

    return mcf->metrics->sh;
}


void
ngx_http_ocimirror_metrics_count(ngx_http_request_t *r,
    ngx_http_ocimirror_counter_t counter)
{
    ngx_http_ocimirror_metrics_sh_t  *sh;

    sh = ngx_http_ocimirror_metrics_sh(r);

    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->counters[counter], 1);
    }
}


ngx_atomic_uint_t
ngx_http_ocimirror_metrics_value(ngx_http_request_t *r,
    ngx_http_ocimirror_counter_t counter)
{
    ngx_http_ocimirror_metrics_sh_t  *sh;

    sh = ngx_http_ocimirror_metrics_sh(r);

    return (sh != NULL) ? sh->counters[counter] : 0;
}


void
ngx_http_ocimirror_metrics_asked(ngx_http_request_t *r, oci_msg_type_t type)
{
    switch (type) {

    case OCI_MSG_BLOB:
    case OCI_MSG_STAT:
        ngx_http_ocimirror_metrics_count(r, NGX_HTTP_OCIMIRROR_MISS_BLOB);
        break;

    case OCI_MSG_MANIFEST:
        ngx_http_ocimirror_metrics_count(r,
                                         NGX_HTTP_OCIMIRROR_MISS_MANIFEST);
        break;

    case OCI_MSG_TAGS:
        ngx_http_ocimirror_metrics_count(r, NGX_HTTP_OCIMIRROR_MISS_TAGS);
        break;

    case OCI_MSG_REFERRERS:
        ngx_http_ocimirror_metrics_count(r,
                                         NGX_HTTP_OCIMIRROR_MISS_REFERRERS);
        break;

    default:
        break;
    }
}


/*
 * The log phase: the status class and body bytes of every answer of the
 * /v2/ handler.  An answer nginx itself made through error_page (for a
 * request the handler returned a bare status for) ran another content
 * handler by then, and is not counted.
 */

static ngx_int_t
ngx_http_ocimirror_metrics_log(ngx_http_request_t *r)
{
    off_t                             sent;
    ngx_uint_t                        status;
    ngx_http_ocimirror_metrics_sh_t  *sh;

    if (r->content_handler != ngx_http_ocimirror_handler) {
        return NGX_OK;
    }

    sh = ngx_http_ocimirror_metrics_sh(r);

    if (sh == NULL) {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status >= 100 && status < 600) {
        (void) ngx_atomic_fetch_add(
                    &sh->counters[NGX_HTTP_OCIMIRROR_RESPONSES_1XX
                                  + status / 100 - 1], 1);
    }

    sent = r->connection->sent - (off_t) r->header_size;

    if (sent > 0) {
        (void) ngx_atomic_fetch_add(
                    &sh->counters[NGX_HTTP_OCIMIRROR_SENT_BYTES],
                    (ngx_atomic_int_t) sent);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    oci_msg_t                          m;
    ngx_http_ocimirror_main_conf_t    *mcf;
    ngx_http_ocimirror_metrics_ctx_t  *ctx;

    rc = ngx_http_ocimirror_read_only(r, "metrics are read-only");

    if (rc != NGX_DECLINED) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_metrics_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    oci_msg_init(&m, OCI_MSG_STATS, 0);

    rc = ngx_http_ocimirror_ask(r, mcf->link, &ctx->wait,
                                ngx_http_ocimirror_metrics_message, ctx,
                                NGX_HTTP_OCIMIRROR_STATS_TIMEOUT, &m);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_ocimirror_metrics_send(r, NULL);
}


static void
ngx_http_ocimirror_metrics_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m)
{
    ngx_http_request_t                *r;
    ngx_http_ocimirror_metrics_ctx_t  *ctx;

    if (w->active) {
        /* SIZE or PROGRESS: no answer, the fetcher is at work */
        return;
    }

    ctx = w->data;
    r = ctx->request;

    m = ngx_http_ocimirror_body_answer(w, m, r->connection->log, "metrics",
                                       "STATS");

    ngx_http_finalize_request(r, ngx_http_ocimirror_metrics_send(r, m));
}


/* The answer: the workers' counters, then the fetcher's BODY file m (NULL:
 * the fetcher did not answer). */

static ngx_int_t
ngx_http_ocimirror_metrics_send(ngx_http_request_t *r, const oci_msg_t *m)
{
    off_t         size;
    ngx_fd_t      fd;
    ngx_int_t     rc;
    ngx_buf_t    *b, *fb;
    ngx_str_t     path;
    ngx_uint_t    up;
    ngx_chain_t   out[2];

    static ngx_str_t  type = ngx_string("text/plain; version=0.0.4");
    static ngx_str_t  no_store = ngx_string("no-store");

    up = 0;
    size = 0;
    fd = NGX_INVALID_FILE;

    if (m != NULL
        && ngx_http_ocimirror_open_body(r, m->path, "fetcher's metrics",
                                        &path, &fd, &size)
           == NGX_OK)
    {
        up = 1;
    }

    b = ngx_http_ocimirror_metrics_render(r, up);
    if (b == NULL) {
        return NGX_ERROR;
    }

    fb = NULL;

    if (size > 0) {
        fb = ngx_http_ocimirror_file_buf(r, fd, &path, size);
        if (fb == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_ocimirror_add_header(r, "Cache-Control", &no_store)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = (b->last - b->pos) + size;
    r->headers_out.content_type = type;
    r->headers_out.content_type_len = type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out[0].buf = b;
    out[0].next = NULL;

    if (fb != NULL) {
        out[0].next = &out[1];
        out[1].buf = fb;
        out[1].next = NULL;
        fb->last_buf = (r == r->main) ? 1 : 0;
        fb->last_in_chain = 1;

    } else {
        b->last_buf = (r == r->main) ? 1 : 0;
        b->last_in_chain = 1;
    }

    return ngx_http_output_filter(r, &out[0]);
}


static ngx_buf_t *
ngx_http_ocimirror_metrics_render(ngx_http_request_t *r, ngx_uint_t up)
{
    size_t                              len;
    u_char                             *p;
    ngx_buf_t                          *b;
    ngx_uint_t                          i;
    const char                         *name;
    ngx_atomic_uint_t                   value;
    ngx_http_ocimirror_metrics_sh_t    *sh;
    const ngx_http_ocimirror_sample_t  *s;

    static const char  up_family[] =
        "# HELP ocimirror_fetcher_up 1 if the fetcher answered this "
        "scrape, 0 if it could not be asked or did not answer.\n"
        "# TYPE ocimirror_fetcher_up gauge\n"
        "ocimirror_fetcher_up ";

    sh = ngx_http_ocimirror_metrics_sh(r);

    len = sizeof(up_family) + sizeof("1\n");
    name = NULL;

    for (i = 0; i < sizeof(ngx_http_ocimirror_samples)
                    / sizeof(ngx_http_ocimirror_samples[0]); i++)
    {
        s = &ngx_http_ocimirror_samples[i];

        if (s->name != NULL) {
            name = s->name;
            len += sizeof("# HELP  \n# TYPE  counter\n") - 1
                   + 2 * ngx_strlen(name) + ngx_strlen(s->help);
        }

        len += ngx_strlen(name) + ngx_strlen(s->sample)
               + sizeof(" \n") - 1 + NGX_ATOMIC_T_LEN;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    p = b->last;

    for (i = 0; i < sizeof(ngx_http_ocimirror_samples)
                    / sizeof(ngx_http_ocimirror_samples[0]); i++)
    {
        s = &ngx_http_ocimirror_samples[i];

        if (s->name != NULL) {
            name = s->name;
            p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s counter\n",
                            name, s->help, name);
        }

        value = (sh != NULL) ? sh->counters[s->counter] : 0;

        p = ngx_sprintf(p, "%s%s %uA\n", name, s->sample, value);
    }

    p = ngx_sprintf(p, "%s%ui\n", up_family, up);

    b->last = p;

    return b;
}
