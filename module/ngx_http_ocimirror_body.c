/*
 * Answers in a BODY file (see ngx_http_ocimirror_body.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ocimirror_body.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_serve.h"


typedef struct {
    ngx_http_request_t                    *request;
    ngx_http_ocimirror_wait_t              wait;
    const ngx_http_ocimirror_body_kind_t  *kind;
    void                                  *data;
} ngx_http_ocimirror_body_ctx_t;


static void ngx_http_ocimirror_body_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_body_send(
    ngx_http_ocimirror_body_ctx_t *ctx, const oci_msg_t *m);


ngx_int_t
ngx_http_ocimirror_ask_body(ngx_http_request_t *r,
    const ngx_http_ocimirror_body_kind_t *kind, void *data, oci_msg_t *m)
{
    ngx_http_ocimirror_body_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_body_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->kind = kind;
    ctx->data = data;

    return ngx_http_ocimirror_ask_or_fail(r, &ctx->wait,
                                          ngx_http_ocimirror_body_message,
                                          ctx, m);
}


static void
ngx_http_ocimirror_body_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m)
{
    ngx_int_t                       rc;
    ngx_http_request_t             *r;
    ngx_http_ocimirror_body_ctx_t  *ctx;

    if (w->active) {
        /* SIZE or PROGRESS: no answer, the fetcher is at work */
        return;
    }

    ctx = w->data;
    r = ctx->request;

    switch (m->type) {

    case OCI_MSG_BODY:
        rc = ngx_http_ocimirror_body_send(ctx, m);
        break;

    case OCI_MSG_FAIL:
        rc = ngx_http_ocimirror_send_fail(r, m);
        break;

    default:
        rc = ngx_http_ocimirror_unexpected(w, m, ctx->kind->verb);
        break;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_ocimirror_body_send(ngx_http_ocimirror_body_ctx_t *ctx,
    const oci_msg_t *m)
{
    off_t                                  size;
    ngx_fd_t                               fd;
    ngx_int_t                              rc;
    ngx_str_t                              path, type;
    ngx_http_request_t                    *r;
    const ngx_http_ocimirror_body_kind_t  *kind;

    r = ctx->request;
    kind = ctx->kind;

    rc = ngx_http_ocimirror_open_body(r, m->path, kind->what, &path, &fd,
                                      &size);

    if (rc == NGX_DECLINED) {
        return ngx_http_ocimirror_send_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             OCI_ERR_UNAVAILABLE,
                                             kind->unreadable);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    type = kind->type;

    if (ngx_http_ocimirror_set_content(r, size, &type, NULL, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (kind->headers != NULL
        && kind->headers(r, m, ctx->data) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_ocimirror_send_file(r, fd, &path, size, 0);
}
