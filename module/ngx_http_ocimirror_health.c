/*
 * Health endpoints.
 *
 * Readiness checks what serving needs:
 *   fetcher         a PING answered by PONG within two seconds
 *   store_readable  the store's marker file can be opened and read
 *   store_writable  the fetcher could create a file in the store (PONG)
 *   free_space      statvfs() of the store shows at least store.min_free
 *                   ("ok"), or less ("low")
 * and answers 200 if every check but free_space says "ok", else 503, with
 *   {"status":"ok","checks":{"fetcher":"ok",...}}
 * Free space is reported, not required: below min_free the fetcher's
 * cache manager evicts (src/fetcher/cache.h), and a node whose disk is
 * full keeps serving what it holds, so the load balancer must not drain
 * it (a fleet fills at the same pace: it would drain them all).
 * The request waits for the PONG parked, like any fetcher request.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/statvfs.h>

#include "oci_store.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_health.h"
#include "ngx_http_ocimirror_serve.h"


#define NGX_HTTP_OCIMIRROR_PING_TIMEOUT  2000


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_ocimirror_wait_t    wait;
    oci_config_t                *oci;
    const char                  *fetcher;
    const char                  *writable;
} ngx_http_ocimirror_ready_ctx_t;


static ngx_int_t ngx_http_ocimirror_health_start(ngx_http_request_t *r);
static void ngx_http_ocimirror_ready_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_ready_send(
    ngx_http_ocimirror_ready_ctx_t *ctx);
static const char *ngx_http_ocimirror_store_readable(ngx_http_request_t *r,
    const char *store);
static const char *ngx_http_ocimirror_free_space(ngx_http_request_t *r,
    const char *store, long long min_free);
static ngx_int_t ngx_http_ocimirror_health_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *body);


ngx_int_t
ngx_http_ocimirror_live_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    static ngx_str_t  ok = ngx_string("{\"status\":\"ok\"}");

    rc = ngx_http_ocimirror_health_start(r);

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_ocimirror_health_send(r, NGX_HTTP_OK, &ok);
}


ngx_int_t
ngx_http_ocimirror_ready_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    oci_msg_t                        m;
    ngx_http_ocimirror_main_conf_t  *mcf;
    ngx_http_ocimirror_ready_ctx_t  *ctx;

    rc = ngx_http_ocimirror_health_start(r);

    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_ready_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->oci = mcf->oci;

    oci_msg_init(&m, OCI_MSG_PING, 0);

    rc = ngx_http_ocimirror_ask(r, mcf->link, &ctx->wait,
                                ngx_http_ocimirror_ready_message, ctx,
                                NGX_HTTP_OCIMIRROR_PING_TIMEOUT, &m);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    ctx->fetcher = "unreachable";
    ctx->writable = "unknown";

    return ngx_http_ocimirror_ready_send(ctx);
}


static ngx_int_t
ngx_http_ocimirror_health_start(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    return NGX_OK;
}


static void
ngx_http_ocimirror_ready_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m)
{
    ngx_http_ocimirror_ready_ctx_t  *ctx;

    if (w->active) {
        /* SIZE or PROGRESS: no answer, the fetcher is at work */
        return;
    }

    ctx = w->data;

    switch (m->type) {

    case OCI_MSG_PONG:
        ctx->fetcher = "ok";
        ctx->writable = m->status ? "ok" : "fail";
        break;

    case OCI_MSG_FAIL:
        ctx->fetcher = w->timedout ? "timeout"
                                   : (w->lost ? "unreachable" : "fail");
        ctx->writable = "unknown";
        break;

    default:
        ngx_http_ocimirror_wait_done(w);
        ctx->fetcher = "bad answer";
        ctx->writable = "unknown";
        break;
    }

    ngx_http_finalize_request(ctx->request,
                              ngx_http_ocimirror_ready_send(ctx));
}


static ngx_int_t
ngx_http_ocimirror_ready_send(ngx_http_ocimirror_ready_ctx_t *ctx)
{
    size_t               len;
    ngx_str_t            body;
    ngx_uint_t           ok;
    const char          *readable, *space;
    ngx_http_request_t  *r;

    r = ctx->request;

    readable = ngx_http_ocimirror_store_readable(r, ctx->oci->store_path);
    space = ngx_http_ocimirror_free_space(r, ctx->oci->store_path,
                                          ctx->oci->store_min_free);

    ok = ngx_strcmp(ctx->fetcher, "ok") == 0
         && ngx_strcmp(ctx->writable, "ok") == 0
         && ngx_strcmp(readable, "ok") == 0;

    len = sizeof("{\"status\":\"fail\",\"checks\":{\"fetcher\":\"\","
                 "\"store_readable\":\"\",\"store_writable\":\"\","
                 "\"free_space\":\"\"}}")
          + ngx_strlen(ctx->fetcher) + ngx_strlen(readable)
          + ngx_strlen(ctx->writable) + ngx_strlen(space);

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_ERROR;
    }

    body.len = ngx_sprintf(body.data,
                           "{\"status\":\"%s\",\"checks\":{"
                           "\"fetcher\":\"%s\",\"store_readable\":\"%s\","
                           "\"store_writable\":\"%s\",\"free_space\":\"%s\""
                           "}}",
                           ok ? "ok" : "fail", ctx->fetcher, readable,
                           ctx->writable, space)
               - body.data;

    return ngx_http_ocimirror_health_send(r,
                                          ok ? NGX_HTTP_OK
                                             : NGX_HTTP_SERVICE_UNAVAILABLE,
                                          &body);
}


static const char *
ngx_http_ocimirror_store_readable(ngx_http_request_t *r, const char *store)
{
    u_char     buf[64];
    ssize_t    n;
    ngx_fd_t   fd;
    ngx_str_t  path;

    path.len = ngx_strlen(store) + sizeof("/" OCI_STORE_MARKER) - 1;
    path.data = ngx_pnalloc(r->pool, path.len + 1);
    if (path.data == NULL) {
        return "fail";
    }

    ngx_sprintf(path.data, "%s/" OCI_STORE_MARKER "%Z", store);

    fd = ngx_open_file(path.data, NGX_FILE_RDONLY|NGX_FILE_NONBLOCK,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      ngx_open_file_n " \"%V\" failed", &path);
        return "fail";
    }

    n = ngx_read_fd(fd, buf, sizeof(buf));

    if (n == -1) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      ngx_read_fd_n " \"%V\" failed", &path);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &path);
    }

    if (n <= 0) {
        return "fail";
    }

    return "ok";
}


static const char *
ngx_http_ocimirror_free_space(ngx_http_request_t *r, const char *store,
    long long min_free)
{
    struct statvfs  fs;

    if (statvfs(store, &fs) == -1) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      "statvfs(\"%s\") failed", store);
        return "fail";
    }

    if ((long long) fs.f_bavail * (long long) fs.f_frsize < min_free) {
        return "low";
    }

    return "ok";
}


static ngx_int_t
ngx_http_ocimirror_health_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    static ngx_str_t  json = ngx_string("application/json");
    static ngx_str_t  no_store = ngx_string("no-store");

    if (ngx_http_ocimirror_add_header(r, "Cache-Control", &no_store)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_ocimirror_send_body(r, status, &json, body);
}
