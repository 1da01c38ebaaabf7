/*
 * Tag lists.  The fetcher writes the upstream's body to a temp file and
 * answers BODY; the worker opens the file and sends it as a file buffer.
 * The link unlinks the file once the handler returns, whatever became of
 * the request (the open fd keeps it readable).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_ref.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_fetcher.h"
#include "ngx_http_ocimirror_serve.h"
#include "ngx_http_ocimirror_tags.h"


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_ocimirror_wait_t    wait;
    oci_route_t                 *route;
    ngx_str_t                    ns;
} ngx_http_ocimirror_tags_ctx_t;


static void ngx_http_ocimirror_tags_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_tags_body(
    ngx_http_ocimirror_tags_ctx_t *ctx, const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_tags_link(
    ngx_http_ocimirror_tags_ctx_t *ctx, const char *next);


ngx_int_t
ngx_http_ocimirror_tags(ngx_http_request_t *r,
    ngx_http_ocimirror_main_conf_t *mcf, oci_route_t *route, ngx_str_t *ns)
{
    ngx_int_t                       n, rc;
    ngx_str_t                       value;
    oci_msg_t                       m;
    ngx_http_ocimirror_loc_conf_t  *lcf;
    ngx_http_ocimirror_tags_ctx_t  *ctx;

    oci_msg_init(&m, OCI_MSG_TAGS, 0);

    m.n = -1;

    if (ngx_http_arg(r, (u_char *) "n", 1, &value) == NGX_OK
        && value.len)
    {
        n = ngx_atoi(value.data, value.len);

        if (n == NGX_ERROR) {
            return ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                 OCI_ERR_UNSUPPORTED,
                                                 "n must be a non-negative "
                                                 "integer");
        }

        m.n = n;
    }

    if (ngx_http_arg(r, (u_char *) "last", 4, &value) == NGX_OK
        && value.len)
    {
        if (!oci_tag_valid((const char *) value.data, value.len)) {
            return ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                 OCI_ERR_UNSUPPORTED,
                                                 "last must be a valid tag");
        }

        ngx_memcpy(m.last, value.data, value.len);
        m.last[value.len] = '\0';
    }

    ngx_cpystrn((u_char *) m.registry, (u_char *) route->registry->name,
                sizeof(m.registry));
    ngx_cpystrn((u_char *) m.name, (u_char *) route->name, sizeof(m.name));

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_tags_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ocimirror_module);

    ctx->request = r;
    ctx->route = route;
    ctx->ns = *ns;

    rc = ngx_http_ocimirror_ask(r, mcf->link, &ctx->wait,
                                ngx_http_ocimirror_tags_message, ctx,
                                lcf->fetch_timeout, &m);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_ocimirror_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         OCI_ERR_UNAVAILABLE,
                                         "the fetcher is not available");
}


static void
ngx_http_ocimirror_tags_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m)
{
    ngx_int_t                       rc;
    ngx_http_request_t             *r;
    ngx_http_ocimirror_tags_ctx_t  *ctx;

    if (w->active) {
        /* SIZE or PROGRESS: no answer, the fetcher is at work */
        return;
    }

    ctx = w->data;
    r = ctx->request;

    switch (m->type) {

    case OCI_MSG_BODY:
        rc = ngx_http_ocimirror_tags_body(ctx, m);
        break;

    case OCI_MSG_FAIL:
        rc = ngx_http_ocimirror_send_fail(r, m);
        break;

    default:
        rc = ngx_http_ocimirror_unexpected(w, m, "TAGS");
        break;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_ocimirror_tags_body(ngx_http_ocimirror_tags_ctx_t *ctx,
    const oci_msg_t *m)
{
    ngx_fd_t             fd;
    ngx_int_t            rc;
    ngx_str_t            path;
    ngx_file_info_t      fi;
    ngx_http_request_t  *r;

    static ngx_str_t  json = ngx_string("application/json");

    r = ctx->request;

    rc = ngx_http_ocimirror_open_file(r, m->path, &path, &fd);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ENOENT,
                      "ocimirror: the tag list \"%s\" is gone", m->path);
    }

    if (rc != NGX_OK) {
        return ngx_http_ocimirror_send_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             OCI_ERR_UNAVAILABLE,
                                             "cannot read the tag list");
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      ngx_fd_info_n " \"%V\" failed", &path);
        return NGX_ERROR;
    }

    if (ngx_http_ocimirror_set_content(r, ngx_file_size(&fi), &json, NULL,
                                       NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (m->status >= NGX_HTTP_OK && m->status < 600) {
        r->headers_out.status = m->status;
    }

    if (m->next[0] && ngx_http_ocimirror_tags_link(ctx, m->next) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_ocimirror_send_file(r, fd, &path, ngx_file_size(&fi), 0);
}


/* Link: </v2/<client-prefix><name>/tags/list?<next>[&ns=..]>; rel="next" */

static ngx_int_t
ngx_http_ocimirror_tags_link(ngx_http_ocimirror_tags_ctx_t *ctx,
    const char *next)
{
    size_t               len;
    u_char              *p;
    ngx_str_t            value;
    oci_route_t         *route;
    ngx_http_request_t  *r;

    r = ctx->request;
    route = ctx->route;

    len = sizeof("</v2/") - 1 + ngx_strlen(route->client_prefix)
          + ngx_strlen(route->name) + sizeof("/tags/list?") - 1
          + ngx_strlen(next) + sizeof("&ns=") - 1 + ctx->ns.len
          + sizeof(">; rel=\"next\"") - 1;

    value.data = ngx_pnalloc(r->pool, len);
    if (value.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(value.data, "</v2/%s%s/tags/list?%s",
                    route->client_prefix, route->name, next);

    /* containerd names the registry in ?ns=: the next page needs it too */

    if (ctx->ns.len) {
        p = ngx_sprintf(p, "&ns=%V", &ctx->ns);
    }

    p = ngx_cpymem(p, ">; rel=\"next\"", sizeof(">; rel=\"next\"") - 1);

    value.len = p - value.data;

    return ngx_http_ocimirror_add_header(r, "Link", &value);
}
