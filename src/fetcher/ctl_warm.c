/*
 * ocimirrorctl warm, warm-status (see ctl.h), over the warm lists of
 * warm.h.  Another program parses these lines: their format is fixed.
 *
 *   warm REF [PLATFORM...]
 *       #<id> queued <ref>
 *   warm-status
 *       #<id> <state> <ref> <blobs_done>/<blobs> <bytes_done>/<bytes>
 *       (one line an image, by id)
 *   warm-status ID            (ID as "3" or "#3")
 *       the image's line, then one line a blob of its last round:
 *         <digest> <state> <bytes_done>/<size>     (two spaces first)
 *
 * An image's state is resolving, fetching, done or failed; a blob's is
 * queued, fetching, stored or failed.  <ref> is the reference as the
 * warm lists keep it: registry/name:tag or registry/name@digest, with
 * the library prefix applied.  Errors are one line saying why, with
 * CTL_USAGE (a reference or platform that fails its grammar, a bad ID)
 * or CTL_FAIL (no such registry, warm_max reached, no such image).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "warm.h"


static void
ctl_warm_line(const warm_info_t *info, void *data)
{
    ctl_out(data, "#%u %s %s %zu/%zu %lld/%lld", info->id,
            warm_state_name(info->state), info->ref, info->blobs_done,
            info->blobs, info->bytes_done, info->bytes);
}


static void
ctl_warm_blob_line(const char *digest, warm_blob_state_t st,
    long long done, long long size, void *data)
{
    ctl_out(data, "  %s %s %lld/%lld", digest, warm_blob_state_name(st),
            done, size);
}


int
ctl_warm(ctl_call_t *call, int argc, char **argv)
{
    const oci_config_t  *cf = call->env->jobs->cf;
    warm_spec_t          spec;
    warm_info_t          info;
    unsigned             id;
    char                 err[512];

    if (argc < 2) {
        ctl_out(call, "usage: warm REF [PLATFORM...]  (REF: "
                "registry/name:tag or registry/name@digest; PLATFORM: "
                "os/arch or os/arch/variant, prefetch.platforms if none)");
        return CTL_USAGE;
    }

    switch (warm_spec_parse(cf, argv[1], &argv[2], (size_t) (argc - 2),
                            &spec, err, sizeof(err)))
    {
    case OCI_OK:
        break;

    case OCI_ENOENT:
        ctl_out(call, "%s", err);
        return CTL_FAIL;

    default:
        ctl_out(call, "%s", err);
        return CTL_USAGE;
    }

    switch (warm_add(call->env->warm, &spec, &id)) {

    case OCI_OK:
        break;

    case OCI_ERANGE:
        ctl_out(call, "warm_max reached: %ld images are warmed already, "
                "nothing added", cf->warm_max);
        return CTL_FAIL;

    default:
        ctl_out(call, "out of memory");
        return CTL_FAIL;
    }

    warm_image(call->env->warm, id, &info);
    ctl_out(call, "#%u queued %s", id, info.ref);

    return CTL_OK;
}


int
ctl_warm_status(ctl_call_t *call, int argc, char **argv)
{
    warm_info_t     info;
    const char     *p;
    char           *end;
    unsigned long   id;

    if (argc == 1) {
        warm_list(call->env->warm, ctl_warm_line, call);
        return CTL_OK;
    }

    if (argc != 2) {
        ctl_out(call, "usage: warm-status [ID]");
        return CTL_USAGE;
    }

    p = argv[1][0] == '#' ? argv[1] + 1 : argv[1];

    errno = 0;
    id = strtoul(p, &end, 10);

    if (*p < '0' || *p > '9' || *end != '\0' || errno != 0 || id == 0
        || id > 0xffffffffUL)
    {
        ctl_out(call, "\"%s\": an ID is a number as \"warm\" and "
                "\"warm-status\" show it (#3 or 3)", argv[1]);
        return CTL_USAGE;
    }

    if (warm_image(call->env->warm, (unsigned) id, &info) != OCI_OK) {
        ctl_out(call, "no warm image #%lu; \"warm-status\" lists them", id);
        return CTL_FAIL;
    }

    ctl_warm_line(&info, call);
    warm_blobs(call->env->warm, (unsigned) id, ctl_warm_blob_line, call);

    return CTL_OK;
}


void
ctl_warm_summary(ctl_call_t *call)
{
    stats_warm_t  st;

    warm_state(call->env->warm, &st);

    ctl_out(call, "warm        %lu images: %lu pending, %lu done, %lu failed",
            st.pending + st.done + st.failed, st.pending, st.done,
            st.failed);
}
