/*
 * $ocimirror_cache_status: see ngx_http_ocimirror_outcome.h.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ocimirror_module.h"
#include "ngx_http_ocimirror_outcome.h"


static ngx_int_t ngx_http_ocimirror_outcome_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/* by ngx_http_ocimirror_outcome_e */
static ngx_str_t  ngx_http_ocimirror_outcome_names[] = {
    ngx_null_string,
    ngx_string("HIT"),
    ngx_string("MISS"),
    ngx_string("STREAM"),
    ngx_string("REVALIDATED"),
    ngx_string("STALE"),
    ngx_string("NEGATIVE"),
    ngx_string("BYPASS"),
    ngx_string("ERROR"),
    ngx_string("PEER")
};


ngx_int_t
ngx_http_ocimirror_outcome_variables(ngx_conf_t *cf)
{
    ngx_int_t                        index;
    ngx_http_variable_t             *var;
    ngx_http_ocimirror_main_conf_t  *mcf;

    static ngx_str_t  name = ngx_string("ocimirror_cache_status");

    var = ngx_http_add_variable(cf, &name, 0);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_ocimirror_outcome_variable;

    index = ngx_http_get_variable_index(cf, &name);
    if (index == NGX_ERROR) {
        return NGX_ERROR;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ocimirror_module);
    mcf->outcome_index = index;

    return NGX_OK;
}


/* Only asked for a request whose slot was never set: it has none. */

static ngx_int_t
ngx_http_ocimirror_outcome_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    v->not_found = 1;

    return NGX_OK;
}


void
ngx_http_ocimirror_outcome_set(ngx_http_request_t *r,
    ngx_http_ocimirror_outcome_e outcome)
{
    ngx_str_t                       *name;
    ngx_http_variable_value_t       *v;
    ngx_http_ocimirror_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);

    name = &ngx_http_ocimirror_outcome_names[outcome];
    v = &r->variables[mcf->outcome_index];

    v->data = name->data;
    v->len = name->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->escape = 0;
}


void
ngx_http_ocimirror_outcome_error(ngx_http_request_t *r)
{
    ngx_http_variable_value_t       *v;
    ngx_http_ocimirror_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);

    v = &r->variables[mcf->outcome_index];

    if (!v->valid
        || v->data == ngx_http_ocimirror_outcome_names[
                          NGX_HTTP_OCIMIRROR_OUTCOME_NEGATIVE].data)
    {
        return;
    }

    ngx_http_ocimirror_outcome_set(r, NGX_HTTP_OCIMIRROR_OUTCOME_ERROR);
}
