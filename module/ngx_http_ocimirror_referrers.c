/*
 * Referrers.  The fetcher writes the image index, already filtered by
 * the artifact type, to a temp file and answers BODY; the worker opens
 * the file and sends it as a file buffer.  The link unlinks the file once
 * the handler returns (the open fd keeps it readable).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_ref.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_fetcher.h"
#include "ngx_http_ocimirror_referrers.h"
#include "ngx_http_ocimirror_serve.h"


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_ocimirror_wait_t    wait;
    ngx_uint_t                   filtered;
} ngx_http_ocimirror_referrers_ctx_t;


static ngx_int_t ngx_http_ocimirror_referrers_type(ngx_http_request_t *r,
    oci_msg_t *m);
static void ngx_http_ocimirror_referrers_message(
    ngx_http_ocimirror_wait_t *w, const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_referrers_body(
    ngx_http_ocimirror_referrers_ctx_t *ctx, const oci_msg_t *m);


ngx_int_t
ngx_http_ocimirror_referrers(ngx_http_request_t *r,
    ngx_http_ocimirror_main_conf_t *mcf, oci_route_t *route)
{
    ngx_int_t                            rc;
    oci_msg_t                            m;
    ngx_http_ocimirror_loc_conf_t       *lcf;
    ngx_http_ocimirror_referrers_ctx_t  *ctx;

    oci_msg_init(&m, OCI_MSG_REFERRERS, 0);

    rc = ngx_http_ocimirror_referrers_type(r, &m);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_REQUEST,
                                             OCI_ERR_UNSUPPORTED,
                                             "artifactType must be a media "
                                             "type");
    }

    ngx_cpystrn((u_char *) m.registry, (u_char *) route->registry->name,
                sizeof(m.registry));
    ngx_cpystrn((u_char *) m.name, (u_char *) route->name, sizeof(m.name));
    ngx_cpystrn((u_char *) m.reference, (u_char *) route->reference,
                sizeof(m.reference));

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_referrers_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ocimirror_module);

    ctx->request = r;
    ctx->filtered = (m.artifact_type[0] != '\0');

    rc = ngx_http_ocimirror_ask(r, mcf->link, &ctx->wait,
                                ngx_http_ocimirror_referrers_message, ctx,
                                lcf->fetch_timeout, &m);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_ocimirror_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         OCI_ERR_UNAVAILABLE,
                                         "the fetcher is not available");
}


/*
 * The artifactType argument, percent-decoded (clients escape its '/' and
 * '+'), into m->artifact_type; absent or empty: no filter.  NGX_OK,
 * NGX_DECLINED if it is no media type, NGX_ERROR.
 */
static ngx_int_t
ngx_http_ocimirror_referrers_type(ngx_http_request_t *r, oci_msg_t *m)
{
    u_char     *buf, *dst, *src;
    size_t      len;
    ngx_str_t   value;

    if (ngx_http_arg(r, (u_char *) "artifactType", 12, &value) != NGX_OK
        || value.len == 0)
    {
        return NGX_OK;
    }

    /* an escape takes three bytes: longer than this is too long anyway */
    if (value.len > 3 * OCI_MEDIA_TYPE_MAX) {
        return NGX_DECLINED;
    }

    /* decoding never makes a value longer */
    buf = ngx_pnalloc(r->pool, value.len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    dst = buf;
    src = value.data;

    ngx_unescape_uri(&dst, &src, value.len, 0);

    len = dst - buf;

    if (len > OCI_MEDIA_TYPE_MAX
        || !oci_media_type_valid((const char *) buf, len))
    {
        return NGX_DECLINED;
    }

    ngx_memcpy(m->artifact_type, buf, len);
    m->artifact_type[len] = '\0';

    return NGX_OK;
}


static void
ngx_http_ocimirror_referrers_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m)
{
    ngx_int_t                            rc;
    ngx_http_request_t                  *r;
    ngx_http_ocimirror_referrers_ctx_t  *ctx;

    if (w->active) {
        /* SIZE or PROGRESS: no answer, the fetcher is at work */
        return;
    }

    ctx = w->data;
    r = ctx->request;

    switch (m->type) {

    case OCI_MSG_BODY:
        rc = ngx_http_ocimirror_referrers_body(ctx, m);
        break;

    case OCI_MSG_FAIL:
        rc = ngx_http_ocimirror_send_fail(r, m);
        break;

    default:
        rc = ngx_http_ocimirror_unexpected(w, m, "REFERRERS");
        break;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_ocimirror_referrers_body(ngx_http_ocimirror_referrers_ctx_t *ctx,
    const oci_msg_t *m)
{
    ngx_fd_t             fd;
    ngx_int_t            rc;
    ngx_str_t            path;
    ngx_file_info_t      fi;
    ngx_http_request_t  *r;

    static ngx_str_t  index = ngx_string(OCI_MT_OCI_INDEX);
    static ngx_str_t  filters = ngx_string("artifactType");

    r = ctx->request;

    rc = ngx_http_ocimirror_open_file(r, m->path, &path, &fd);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ENOENT,
                      "ocimirror: the referrers index \"%s\" is gone",
                      m->path);
    }

    if (rc != NGX_OK) {
        return ngx_http_ocimirror_send_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             OCI_ERR_UNAVAILABLE,
                                             "cannot read the referrers");
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      ngx_fd_info_n " \"%V\" failed", &path);
        return NGX_ERROR;
    }

    if (ngx_http_ocimirror_set_content(r, ngx_file_size(&fi), &index, NULL,
                                       NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->filtered
        && ngx_http_ocimirror_add_header(r, "OCI-Filters-Applied", &filters)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_ocimirror_send_file(r, fd, &path, ngx_file_size(&fi), 0);
}
