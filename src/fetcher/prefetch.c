/*
 * Prefetch (see prefetch.h).
 */

#include <stdlib.h>
#include <string.h>

#include "oci_image.h"
#include "oci_ref.h"
#include "log.h"
#include "prefetch.h"
#include "stats.h"

/* cluster hints in flight at most (prefetch_hint()) */
#define PREFETCH_HINTS_MAX  256

typedef struct {
    jobs_t                *jobs;
    const prefetch_ops_t  *ops;
    const oci_registry_t  *reg;
    const char            *name;
    size_t                 other;       /* another cluster node's */
} prefetch_ctx_t;


/* An index entry's platform is one of prefetch.platforms (an entry
 * without one is not prefetched, nor is any without platforms). */
static int
prefetch_platform_ok(const oci_config_t *cf, const char *platform)
{
    return platform[0] != '\0' && cf->n_prefetch_platforms > 0
           && oci_platform_match(cf->prefetch_platforms,
                                 cf->n_prefetch_platforms, platform);
}


int
prefetch_platform_match(const oci_config_t *cf, const char *os,
    const char *arch, const char *variant)
{
    char  platform[OCI_PLATFORM_MAX];

    oci_platform_format(platform, sizeof(platform), os, arch, variant);

    return prefetch_platform_ok(cf, platform);
}


/* Take descriptor d into the plan (which has room for it) unless it is
 * present or over budget. */
static void
prefetch_take(const oci_config_t *cf, prefetch_plan_t *plan,
    const oci_desc_t *d, prefetch_have_pt have, void *data)
{
    if (have(d->digest, plan->index, data)) {
        plan->present++;
        return;
    }

    /* once one is over the budget, so are the rest: a partial image is
     * still a good start, the client fetches what is missing */
    if (!plan->index
        && (plan->over > 0 || d->size > cf->prefetch_max_bytes - plan->bytes))
    {
        plan->over++;
        return;
    }

    memcpy(plan->items[plan->n].digest, d->digest, strlen(d->digest) + 1);
    plan->items[plan->n].size = d->size;
    plan->n++;

    if (!plan->index) {
        plan->bytes += d->size;
    }
}


int
prefetch_select(const oci_config_t *cf, const char *type, const char *body,
    size_t len, prefetch_have_pt have, void *data, prefetch_plan_t *plan)
{
    oci_image_t  img;
    size_t       i, cap, taken;
    int          rc;

    memset(plan, 0, sizeof(prefetch_plan_t));

    rc = oci_image_parse(type, body, len, &img);
    if (rc != OCI_OK || img.kind == OCI_IMAGE_OTHER) {
        return rc;
    }

    plan->index = img.kind == OCI_IMAGE_INDEX;
    plan->invalid = img.invalid;

    cap = (size_t) (plan->index ? cf->prefetch_max_children
                                : cf->prefetch_max_layers);

    /* the entries within the cap, and the config */
    plan->items = calloc((img.n < cap ? img.n : cap) + 1,
                         sizeof(prefetch_item_t));

    if (plan->items == NULL) {
        oci_image_free(&img);
        return OCI_ENOMEM;
    }

    if (!plan->index && img.config.digest[0] != '\0') {
        prefetch_take(cf, plan, &img.config, have, data);
    }

    taken = 0;

    for (i = 0; i < img.n; i++) {
        if (plan->index
            && !prefetch_platform_ok(cf, img.items[i].platform))
        {
            continue;
        }

        /* the cap comes before the "have" check: each check may be a
         * lookup in the store, and 20k of them would hold the loop */
        if (taken == cap) {
            plan->capped++;
            continue;
        }

        taken++;
        prefetch_take(cf, plan, &img.items[i], have, data);
    }

    oci_image_free(&img);

    return OCI_OK;
}


void
prefetch_plan_free(prefetch_plan_t *plan)
{
    free(plan->items);
    memset(plan, 0, sizeof(prefetch_plan_t));
}


/*
 * Ask the cluster node that owns digest to prefetch it: a GET of its
 * first byte (a manifest: of it) through this node's own nginx, at
 * cluster.self, with no peer header.  The module there passes it to the
 * owner as it passes a client's miss (nginx's ring and failover: a node
 * that is down has its keys asked of the next), and the owner's fetcher
 * downloads the whole blob for its store, as for a client that wanted a
 * range (DETACH), at prefetch priority.  The byte is thrown away.  At
 * most PREFETCH_HINTS_MAX in flight; past it, left out and counted.
 */

static int
prefetch_hint_headers(xfer_t *x, void *data)
{
    return 0;
}


static int
prefetch_hint_body(xfer_t *x, const char *p, size_t n, void *data)
{
    return 0;
}


static void
prefetch_hint_done(xfer_t *x, CURLcode rc, void *data)
{
    jobs_t             *jobs = data;
    const xfer_resp_t  *r = xfer_response(x);

    jobs->hints--;

    if (rc != CURLE_OK || r->status < 200 || r->status > 299) {
        log_debug("prefetch hint %s: %s, status %ld", xfer_effective_url(x),
                  rc != CURLE_OK ? curl_easy_strerror(rc) : "answered",
                  r->status);
    }
}


static const xfer_handler_t  prefetch_hint_handler = {
    prefetch_hint_headers,
    prefetch_hint_body,
    prefetch_hint_done
};


static void
prefetch_hint(prefetch_ctx_t *ctx, const char *digest, int manifest)
{
    jobs_t      *jobs = ctx->jobs;
    char         url[OCI_PATH_MAX];
    int          n;
    xfer_req_t   req;

    if (jobs->hints >= PREFETCH_HINTS_MAX) {
        stats_registry(ctx->reg)->cluster_hints_skipped++;
        return;
    }

    n = snprintf(url, sizeof(url), "http://%s/v2/%s/%s/%s?ns=%s",
                 jobs->cf->cluster_peers[jobs->cf->cluster_self], ctx->name,
                 manifest ? "manifests" : "blobs", digest, ctx->reg->name);

    if (n < 0 || (size_t) n >= sizeof(url)) {
        return;
    }

    memset(&req, 0, sizeof(req));
    req.url = url;
    req.prio = XFER_PRIO_PREFETCH;
    req.unshaped = 1;
    req.direct = 1;
    req.http1 = 1;

    if (!manifest) {
        req.ranged = 1;
        req.range_first = 0;
        req.range_last = 0;
    }

    if (xfer_start(jobs->xm, &req, &prefetch_hint_handler, jobs) == NULL) {
        return;
    }

    jobs->hints++;
    stats_registry(ctx->reg)->cluster_hints++;
}


static int
prefetch_have(const char *digest, int manifest, void *data)
{
    prefetch_ctx_t  *ctx = data;

    /* a cluster node prefetches what it owns: each blob once a region;
     * another node's it asks that node to prefetch */
    if (ctx->jobs->ring.n > 0
        && oci_ring_owner(&ctx->jobs->ring, digest, strlen(digest))
           != ctx->jobs->cf->cluster_self)
    {
        if (!ctx->ops->present(ctx->jobs, ctx->reg, ctx->name, digest,
                               manifest))
        {
            prefetch_hint(ctx, digest, manifest);
        }

        ctx->other++;
        return 1;
    }

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
    ctx.other = 0;

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

    /* once per manifest: the plan is made once per manifest fetched */
    if (plan.capped > 0) {
        log_warn("prefetch %s/%s@%s: %zu %s left out, over "
                 "prefetch.%s (%ld)", reg->name, name, digest, plan.capped,
                 plan.index ? "platform manifests" : "layers",
                 plan.index ? "max_children" : "max_layers",
                 plan.index ? jobs->cf->prefetch_max_children
                            : jobs->cf->prefetch_max_layers);
        stats_registry(reg)->prefetch_capped++;
        stats_registry(reg)->prefetch_left_out += plan.capped;
    }

    if (ctx.other > 0) {
        log_debug("prefetch %s/%s@%s: %zu left to the cluster nodes that "
                  "own them", reg->name, name, digest, ctx.other);
    }

    if (plan.index) {
        log_debug("prefetch %s/%s@%s: %zu platform manifest%s, %zu present",
                  reg->name, name, digest, started, started == 1 ? "" : "s",
                  plan.present);

    } else if (started > 0) {
        log_info("prefetch %s/%s@%s: %zu blobs, %lld bytes", reg->name, name,
                 digest, started, bytes);

    } else if (oci_image_kind(type) == OCI_IMAGE_MANIFEST) {
        log_debug("prefetch %s/%s@%s: nothing to fetch, %zu blobs present",
                  reg->name, name, digest, plan.present);
    }

    prefetch_plan_free(&plan);
}
