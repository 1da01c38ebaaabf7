/*
 * Prefetch (see prefetch.h).
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "oci_ref.h"
#include "log.h"
#include "prefetch.h"

typedef struct {
    jobs_t                *jobs;
    const prefetch_ops_t  *ops;
    const oci_registry_t  *reg;
    const char            *name;
} prefetch_ctx_t;


int
prefetch_platform_match(const oci_config_t *cf, const char *os,
    const char *arch, const char *variant)
{
    const char  *p;
    size_t       i, oslen, archlen;

    if (os == NULL || arch == NULL) {
        return 0;
    }

    oslen = strlen(os);
    archlen = strlen(arch);

    for (i = 0; i < cf->n_prefetch_platforms; i++) {
        p = cf->prefetch_platforms[i];

        if (strncmp(p, os, oslen) != 0 || p[oslen] != '/') {
            continue;
        }

        p += oslen + 1;

        if (strncmp(p, arch, archlen) != 0) {
            continue;
        }

        p += archlen;

        if (*p == '\0'
            || (*p == '/' && variant != NULL && strcmp(p + 1, variant) == 0))
        {
            return 1;
        }
    }

    return 0;
}


static int
prefetch_type_image(const char *type)
{
    return strcmp(type, OCI_MT_OCI_MANIFEST) == 0
           || strcmp(type, OCI_MT_DOCKER_MANIFEST) == 0;
}


static int
prefetch_type_index(const char *type)
{
    return strcmp(type, OCI_MT_OCI_INDEX) == 0
           || strcmp(type, OCI_MT_DOCKER_LIST) == 0;
}


/* A descriptor's sha256 digest and size: 1, or 0 if it has none. */
static int
prefetch_descriptor(json_t *d, const char **digest, long long *size)
{
    char     hex[OCI_SHA256_HEX_LEN + 1];
    json_t  *v;

    *digest = json_string_value(json_object_get(d, "digest"));
    v = json_object_get(d, "size");

    if (*digest == NULL || !json_is_integer(v)
        || json_integer_value(v) < 0
        || oci_digest_parse(*digest, strlen(*digest), hex) != OCI_OK)
    {
        return 0;
    }

    *size = (long long) json_integer_value(v);

    return 1;
}


/* Take descriptor d into the plan (which has room for it) unless it is
 * present or over budget. */
static void
prefetch_take(const oci_config_t *cf, prefetch_plan_t *plan, json_t *d,
    prefetch_have_pt have, void *data)
{
    const char  *digest;
    long long    size;

    if (!prefetch_descriptor(d, &digest, &size)) {
        plan->invalid++;
        return;
    }

    if (have(digest, plan->index, data)) {
        plan->present++;
        return;
    }

    /* once one is over the budget, so are the rest: a partial image is
     * still a good start, the client fetches what is missing */
    if (!plan->index
        && (plan->over > 0 || size > cf->prefetch_max_bytes - plan->bytes))
    {
        plan->over++;
        return;
    }

    memcpy(plan->items[plan->n].digest, digest, strlen(digest) + 1);
    plan->items[plan->n].size = size;
    plan->n++;

    if (!plan->index) {
        plan->bytes += size;
    }
}


int
prefetch_select(const oci_config_t *cf, const char *type, const char *body,
    size_t len, prefetch_have_pt have, void *data, prefetch_plan_t *plan)
{
    json_t  *root, *list, *d, *p;
    size_t   i;

    memset(plan, 0, sizeof(prefetch_plan_t));

    plan->index = prefetch_type_index(type);

    if (!plan->index && !prefetch_type_image(type)) {
        return OCI_OK;
    }

    root = json_loadb(body, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return OCI_EINVAL;
    }

    list = json_object_get(root, plan->index ? "manifests" : "layers");

    if (!json_is_array(list)
        || (!plan->index && !json_is_object(json_object_get(root, "config"))))
    {
        json_decref(root);
        return OCI_EINVAL;
    }

    /* every entry, and the config */
    plan->items = calloc(json_array_size(list) + 1, sizeof(prefetch_item_t));

    if (plan->items == NULL) {
        json_decref(root);
        return OCI_ENOMEM;
    }

    if (!plan->index) {
        prefetch_take(cf, plan, json_object_get(root, "config"), have, data);
    }

    json_array_foreach(list, i, d) {
        if (!json_is_object(d)) {
            plan->invalid++;
            continue;
        }

        if (plan->index) {
            p = json_object_get(d, "platform");

            if (!prefetch_platform_match(cf,
                    json_string_value(json_object_get(p, "os")),
                    json_string_value(json_object_get(p, "architecture")),
                    json_string_value(json_object_get(p, "variant"))))
            {
                continue;
            }
        }

        prefetch_take(cf, plan, d, have, data);
    }

    json_decref(root);

    return OCI_OK;
}


void
prefetch_plan_free(prefetch_plan_t *plan)
{
    free(plan->items);
    memset(plan, 0, sizeof(prefetch_plan_t));
}


static int
prefetch_have(const char *digest, int manifest, void *data)
{
    prefetch_ctx_t  *ctx = data;

    return ctx->ops->present(ctx->jobs, ctx->reg, ctx->name, digest,
                             manifest);
}


void
prefetch_manifest(jobs_t *jobs, const prefetch_ops_t *ops,
    const oci_registry_t *reg, const char *name, const char *digest,
    const char *type, const char *body, size_t len)
{
    prefetch_plan_t   plan;
    prefetch_ctx_t    ctx;
    size_t            i, started;
    long long         bytes;
    int               rc;

    if (!jobs->cf->prefetch) {
        return;
    }

    ctx.jobs = jobs;
    ctx.ops = ops;
    ctx.reg = reg;
    ctx.name = name;

    rc = prefetch_select(jobs->cf, type, body, len, prefetch_have, &ctx,
                         &plan);
    if (rc != OCI_OK) {
        log_debug("prefetch %s/%s@%s: %s", reg->name, name, digest,
                  rc == OCI_ENOMEM ? "out of memory"
                                   : "not a manifest of its media type");
        return;
    }

    started = 0;
    bytes = 0;

    for (i = 0; i < plan.n; i++) {
        rc = ops->start(jobs, reg, name, plan.items[i].digest, plan.index);
        if (rc == 1) {
            started++;
            bytes += plan.items[i].size;
        }
    }

    if (plan.invalid > 0) {
        log_debug("prefetch %s/%s@%s: %zu descriptors without a sha256 "
                  "digest and size", reg->name, name, digest, plan.invalid);
    }

    if (plan.over > 0) {
        log_debug("prefetch %s/%s@%s: %zu blobs left out, over "
                  "prefetch.max_bytes", reg->name, name, digest, plan.over);
    }

    if (plan.index) {
        log_debug("prefetch %s/%s@%s: %zu platform manifest%s, %zu present",
                  reg->name, name, digest, started, started == 1 ? "" : "s",
                  plan.present);

    } else if (started > 0) {
        log_info("prefetch %s/%s@%s: %zu blobs, %lld bytes", reg->name, name,
                 digest, started, bytes);

    } else if (prefetch_type_image(type)) {
        log_debug("prefetch %s/%s@%s: nothing to fetch, %zu blobs present",
                  reg->name, name, digest, plan.present);
    }

    prefetch_plan_free(&plan);
}
