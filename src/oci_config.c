/*
 * Loading and checking of the libconfig file shared by the module and the
 * fetcher.  Unknown settings are errors, so that a typo fails loudly
 * instead of silently falling back to a default.
 */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <libconfig.h>

#include "oci_cluster.h"
#include "oci_config.h"
#include "oci_ref.h"


#define OCI_STORE_PATH_MAX     1024
#define OCI_ENDPOINT_MAX       1024
#define OCI_SOCKET_PATH_MAX \
    (sizeof(((struct sockaddr_un *) 0)->sun_path) - 1)


typedef struct {
    const char  *file;
    char        *err;
    size_t       errlen;
} oci_config_ctx_t;


static void oci_config_error(oci_config_ctx_t *ctx,
    const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int oci_config_check_keys(oci_config_ctx_t *ctx,
    const config_setting_t *group, const char *where,
    const char *const *allowed);
static int oci_config_get_int(oci_config_ctx_t *ctx,
    const config_setting_t *group, const char *name, long long min,
    long long max, long long *out);
static int oci_config_get_bool(oci_config_ctx_t *ctx,
    const config_setting_t *group, const char *name, int *out);
static int oci_config_get_string(oci_config_ctx_t *ctx,
    const config_setting_t *group, const char *name, const char **out);
static int oci_config_parse_size(const char *s, long long *out);
static int oci_config_get_size(oci_config_ctx_t *ctx,
    const config_setting_t *group, const char *section, const char *name,
    long long min, long long max, long long *out);
static int oci_config_store_bound(oci_config_ctx_t *ctx,
    const config_setting_t *group, oci_config_t *cf);
static int oci_config_store(oci_config_ctx_t *ctx, config_t *lc,
    oci_config_t *cf);
static int oci_config_fetcher(oci_config_ctx_t *ctx, config_t *lc,
    oci_config_t *cf);
static int oci_config_socket_group(oci_config_ctx_t *ctx,
    const config_setting_t *group, oci_config_t *cf);
static int oci_config_prefetch(oci_config_ctx_t *ctx, config_t *lc,
    oci_config_t *cf);
static int oci_config_endpoint_url(oci_config_ctx_t *ctx,
    const config_setting_t *s, char **out);
static int oci_config_endpoint(oci_config_ctx_t *ctx,
    const config_setting_t *s, char **url, oci_credentials_t *creds);
static int oci_config_credentials(oci_config_ctx_t *ctx,
    const config_setting_t *group, oci_credentials_t *creds);
static int oci_config_hosts(oci_config_ctx_t *ctx,
    const config_setting_t *group, oci_registry_t *reg);
static int oci_config_resolve(oci_config_ctx_t *ctx,
    const config_setting_t *group, oci_registry_t *reg);
static int oci_config_resolve_conflicts(oci_config_ctx_t *ctx,
    config_t *lc, const oci_config_t *cf);
static void oci_config_credentials_free(oci_credentials_t *creds);
static void oci_config_strings_free(char **v, size_t n);
static int oci_config_transport(oci_config_ctx_t *ctx,
    const config_setting_t *group, const char *section, char **proxy,
    char **no_proxy, long long *bw);
static int oci_config_registry_parse(oci_config_ctx_t *ctx,
    const config_setting_t *group, oci_config_t *cf, oci_registry_t *reg);
static int oci_config_registries(oci_config_ctx_t *ctx, config_t *lc,
    oci_config_t *cf);
static int oci_config_platforms(oci_config_ctx_t *ctx,
    const config_setting_t *list, const char *what, char ***out, size_t *n);
static int oci_config_images(oci_config_ctx_t *ctx, config_t *lc,
    oci_config_t *cf);
static int oci_config_store_scrub(oci_config_ctx_t *ctx,
    const config_setting_t *group, oci_config_t *cf);
static int oci_config_check_file(oci_config_ctx_t *ctx);
static int oci_config_cluster(oci_config_ctx_t *ctx, config_t *lc,
    oci_config_t *cf);
static int oci_config_cluster_peer(const char *s);


static const char *const  oci_config_top_keys[] = {
    "store", "fetcher", "prefetch", "default_registry", "registries",
    "warm", "warm_file", "warm_interval", "warm_max", "cluster", NULL
};

static const char *const  oci_config_cluster_keys[] = {
    "self", "peers", "secret_file", "replicate", "fail_timeout",
    "hot_requests", "hot_window", "hot_table", "max_replicas", NULL
};

static const char *const  oci_config_store_keys[] = {
    "path", "fsync", "min_free", "max_size", "high_watermark",
    "low_watermark", "inactive", "recency", "recency_batch",
    "recency_interval", "pin", "scrub_interval", "scrub_rate", "scrub_deep",
    "quarantine_max", "commit_queue", NULL
};

static const char *const  oci_config_image_keys[] = {
    "ref", "platforms", NULL
};

static const char *const  oci_config_fetcher_keys[] = {
    "socket", "socket_group", "max_transfers", "connect_timeout",
    "low_speed_time", "max_per_host", "http2", "chunk_threshold",
    "chunk_size", "chunks_per_blob", "proxy", "no_proxy", "bandwidth_limit",
    "max_retry_after", "max_jobs", "max_worker_jobs", "max_waiters",
    "max_queued", "finish_fraction", "list_cache_size",
    "list_cache_entries", NULL
};

static const char *const  oci_config_prefetch_keys[] = {
    "enabled", "platforms", "max_bytes", "max_children", "max_layers",
    NULL
};

static const char *const  oci_config_registry_keys[] = {
    "name", "endpoints", "tag_ttl", "library_prefix", "select",
    "probe_interval", "backoff", "username", "password_file", "token_file",
    "proxy", "no_proxy", "ca_file", "client_cert", "client_key",
    "tls_verify", "connect_timeout", "low_speed_time", "bandwidth_limit",
    "stale_if_error", "negative_ttl", "tags_ttl", "referrers_ttl",
    "max_retry_after", "redirect_hosts", "resolve", NULL
};

static const char *const  oci_config_endpoint_keys[] = {
    "url", "username", "password_file", "token_file", NULL
};


static void
oci_config_error(oci_config_ctx_t *ctx, const config_setting_t *s,
    const char *fmt, ...)
{
    va_list      ap;
    const char  *file;
    int          line, n;

    if (ctx->err == NULL || ctx->errlen == 0) {
        return;
    }

    file = NULL;
    line = 0;

    if (s != NULL) {
        file = config_setting_source_file(s);
        line = config_setting_source_line(s);
    }

    if (file == NULL) {
        file = ctx->file;
    }

    /* a setting that is missing has no line of its own */
    if (line <= 0) {
        line = 1;
    }

    n = snprintf(ctx->err, ctx->errlen, "%s:%d: ", file, line);

    if (n < 0 || (size_t) n >= ctx->errlen) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(ctx->err + n, ctx->errlen - (size_t) n, fmt, ap);
    va_end(ap);
}


static int
oci_config_check_keys(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *where, const char *const *allowed)
{
    config_setting_t  *child;
    const char        *name;
    size_t             i;
    int                n, k;

    n = config_setting_length(group);

    for (k = 0; k < n; k++) {
        child = config_setting_get_elem(group, (unsigned) k);
        name = config_setting_name(child);

        if (name == NULL) {
            continue;
        }

        for (i = 0; allowed[i] != NULL; i++) {
            if (strcmp(allowed[i], name) == 0) {
                break;
            }
        }

        if (allowed[i] == NULL) {
            oci_config_error(ctx, child, "unknown setting \"%s%s\"", where,
                             name);
            return OCI_EINVAL;
        }
    }

    return OCI_OK;
}


/* 0 if absent (out untouched), 1 if set, OCI_EINVAL */
static int
oci_config_get_int(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *name, long long min, long long max, long long *out)
{
    config_setting_t  *s;
    long long          v;

    s = config_setting_get_member(group, name);

    if (s == NULL) {
        return 0;
    }

    if (config_setting_type(s) != CONFIG_TYPE_INT
        && config_setting_type(s) != CONFIG_TYPE_INT64)
    {
        oci_config_error(ctx, s, "\"%s\" must be an integer", name);
        return OCI_EINVAL;
    }

    v = config_setting_get_int64(s);

    if (v < min || v > max) {
        oci_config_error(ctx, s, "\"%s\" must be between %lld and %lld",
                         name, min, max);
        return OCI_EINVAL;
    }

    *out = v;

    return 1;
}


/* A share from 0 to 1: a float, or the integer 0 or 1.  0 if absent
 * (out untouched), 1 if set, OCI_EINVAL. */
static int
oci_config_get_fraction(oci_config_ctx_t *ctx,
    const config_setting_t *group, const char *name, double *out)
{
    config_setting_t  *s;
    double             v;

    s = config_setting_get_member(group, name);

    if (s == NULL) {
        return 0;
    }

    switch (config_setting_type(s)) {

    case CONFIG_TYPE_FLOAT:
        v = config_setting_get_float(s);
        break;

    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v = (double) config_setting_get_int64(s);
        break;

    default:
        oci_config_error(ctx, s, "\"%s\" must be a number from 0 to 1",
                         name);
        return OCI_EINVAL;
    }

    /* a NaN fails both */
    if (!(v >= 0.0 && v <= 1.0)) {
        oci_config_error(ctx, s, "\"%s\" must be a number from 0 to 1",
                         name);
        return OCI_EINVAL;
    }

    *out = v;

    return 1;
}


static int
oci_config_get_bool(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *name, int *out)
{
    config_setting_t  *s;

    s = config_setting_get_member(group, name);

    if (s == NULL) {
        return 0;
    }

    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        oci_config_error(ctx, s, "\"%s\" must be true or false", name);
        return OCI_EINVAL;
    }

    *out = config_setting_get_bool(s) ? 1 : 0;

    return 1;
}


static int
oci_config_get_string(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *name, const char **out)
{
    config_setting_t  *s;

    s = config_setting_get_member(group, name);

    if (s == NULL) {
        return 0;
    }

    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        oci_config_error(ctx, s, "\"%s\" must be a string", name);
        return OCI_EINVAL;
    }

    *out = config_setting_get_string(s);

    return 1;
}


/* "1073741824", "512K", "100M", "1G", "2T" */
static int
oci_config_parse_size(const char *s, long long *out)
{
    long long  v, mult;
    size_t     i;

    v = 0;
    mult = 1;

    if (s[0] < '0' || s[0] > '9') {
        return OCI_EINVAL;
    }

    for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (LLONG_MAX - (s[i] - '0')) / 10) {
            return OCI_ERANGE;
        }
        v = v * 10 + (s[i] - '0');
    }

    switch (s[i]) {
    case '\0':
        break;
    case 'k': case 'K':
        mult = 1024LL;
        break;
    case 'm': case 'M':
        mult = 1024LL * 1024;
        break;
    case 'g': case 'G':
        mult = 1024LL * 1024 * 1024;
        break;
    case 't': case 'T':
        mult = 1024LL * 1024 * 1024 * 1024;
        break;
    default:
        return OCI_EINVAL;
    }

    if (s[i] != '\0' && s[i + 1] != '\0') {
        return OCI_EINVAL;
    }

    if (v > LLONG_MAX / mult) {
        return OCI_ERANGE;
    }

    *out = v * mult;

    return OCI_OK;
}


/*
 * A size: an integer number of bytes, or a string parsed by
 * oci_config_parse_size().  0 if absent (out untouched), 1 if set,
 * OCI_EINVAL.
 */
static int
oci_config_get_size(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *section, const char *name, long long min, long long max,
    long long *out)
{
    config_setting_t  *s;
    long long          v;

    s = config_setting_get_member(group, name);

    if (s == NULL) {
        return 0;
    }

    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        return oci_config_get_int(ctx, group, name, min, max, out);
    }

    if (oci_config_parse_size(config_setting_get_string(s), &v) != OCI_OK) {
        oci_config_error(ctx, s, "\"%s.%s\" must be a number of bytes with "
                         "an optional K, M, G or T suffix", section, name);
        return OCI_EINVAL;
    }

    if (v < min || v > max) {
        oci_config_error(ctx, s, "\"%s.%s\" must be between %lld and %lld "
                         "bytes", section, name, min, max);
        return OCI_EINVAL;
    }

    *out = v;

    return 1;
}


static int
oci_config_store(oci_config_ctx_t *ctx, config_t *lc, oci_config_t *cf)
{
    config_setting_t  *group, *s;
    const char        *path;
    int                rc;

    group = config_lookup(lc, "store");

    if (group == NULL) {
        oci_config_error(ctx, NULL, "the \"store\" section is missing");
        return OCI_EINVAL;
    }

    if (!config_setting_is_group(group)) {
        oci_config_error(ctx, group, "\"store\" must be a group { ... }");
        return OCI_EINVAL;
    }

    if (oci_config_check_keys(ctx, group, "store.", oci_config_store_keys)
        != OCI_OK)
    {
        return OCI_EINVAL;
    }

    path = NULL;
    rc = oci_config_get_string(ctx, group, "path", &path);

    if (rc < 0) {
        return rc;
    }

    if (rc == 0) {
        oci_config_error(ctx, group, "\"store.path\" is missing");
        return OCI_EINVAL;
    }

    s = config_setting_get_member(group, "path");

    if (path[0] != '/' || strlen(path) > OCI_STORE_PATH_MAX) {
        oci_config_error(ctx, s, "\"store.path\" must be an absolute path "
                         "of at most %d bytes", OCI_STORE_PATH_MAX);
        return OCI_EINVAL;
    }

    cf->store_path = strdup(path);

    if (cf->store_path == NULL) {
        oci_config_error(ctx, s, "out of memory");
        return OCI_ENOMEM;
    }

    if (oci_config_get_bool(ctx, group, "fsync", &cf->store_fsync) < 0) {
        return OCI_EINVAL;
    }

    if (oci_config_get_size(ctx, group, "store", "min_free", 0, LLONG_MAX,
                            &cf->store_min_free)
        < 0)
    {
        return OCI_EINVAL;
    }

    if (oci_config_store_bound(ctx, group, cf) != OCI_OK
        || oci_config_store_scrub(ctx, group, cf) != OCI_OK)
    {
        return OCI_EINVAL;
    }

    return OCI_OK;
}


/* scrub_interval, scrub_rate, scrub_deep, quarantine_max */
static int
oci_config_store_scrub(oci_config_ctx_t *ctx, const config_setting_t *group,
    oci_config_t *cf)
{
    long long  n;
    int        rc;

    rc = oci_config_get_int(ctx, group, "scrub_interval", 0,
                            10LL * 365 * 86400, &n);
    if (rc < 0) {
        return OCI_EINVAL;
    }
    if (rc == 1) {
        cf->scrub_interval = (long) n;
    }

    /* below 64K/s a scrub of a real store would never end */
    if (oci_config_get_size(ctx, group, "store", "scrub_rate", 64 * 1024,
                            LLONG_MAX, &cf->scrub_rate)
        < 0)
    {
        return OCI_EINVAL;
    }

    if (oci_config_get_bool(ctx, group, "scrub_deep", &cf->scrub_deep) < 0) {
        return OCI_EINVAL;
    }

    rc = oci_config_get_int(ctx, group, "quarantine_max", 1, 100000, &n);
    if (rc < 0) {
        return OCI_EINVAL;
    }
    if (rc == 1) {
        cf->quarantine_max = (long) n;
    }

    rc = oci_config_get_int(ctx, group, "commit_queue", 1, 65536, &n);
    if (rc < 0) {
        return OCI_EINVAL;
    }
    if (rc == 1) {
        cf->commit_queue = (long) n;
    }

    return OCI_OK;
}


/* A percent: an integer, or a string "NN%", lo..100.  0 if absent, 1 if
 * set, OCI_EINVAL. */
static int
oci_config_get_percent(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *name, int lo, int *out)
{
    config_setting_t  *s;
    const char        *v;
    char              *end;
    long               n;

    s = config_setting_get_member(group, name);

    if (s == NULL) {
        return 0;
    }

    if (config_setting_type(s) == CONFIG_TYPE_INT) {
        n = config_setting_get_int(s);
        end = NULL;

    } else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        v = config_setting_get_string(s);
        n = strtol(v, &end, 10);

        if (end == v || strcmp(end, "%") != 0) {
            n = -1;
        }

    } else {
        n = -1;
    }

    if (n < lo || n > 100) {
        oci_config_error(ctx, s, "\"store.%s\" must be a percent from %d to "
                         "100 (90 or \"90%%\")", name, lo);
        return OCI_EINVAL;
    }

    *out = (int) n;

    return 1;
}


/* max_size, the watermarks and inactive of the store group.  OCI_OK or
 * OCI_EINVAL. */
static int
oci_config_store_bound(oci_config_ctx_t *ctx, const config_setting_t *group,
    oci_config_t *cf)
{
    config_setting_t  *s;
    const char        *v;
    size_t             len;
    long long          n;
    int                pct, rc;

    s = config_setting_get_member(group, "max_size");

    if (s != NULL && config_setting_type(s) == CONFIG_TYPE_STRING
        && (len = strlen(v = config_setting_get_string(s))) > 0
        && v[len - 1] == '%')
    {
        if (oci_config_get_percent(ctx, group, "max_size", 1, &pct) < 0) {
            return OCI_EINVAL;
        }

        cf->store_max_size = 0;
        cf->store_max_size_pct = pct;

    } else if (s != NULL) {
        rc = oci_config_get_size(ctx, group, "store", "max_size",
                                 1024LL * 1024, LLONG_MAX,
                                 &cf->store_max_size);
        if (rc < 0) {
            return OCI_EINVAL;
        }

        cf->store_max_size_pct = 0;
    }

    if (oci_config_get_percent(ctx, group, "high_watermark", 2,
                               &cf->store_high_watermark) < 0
        || oci_config_get_percent(ctx, group, "low_watermark", 1,
                                  &cf->store_low_watermark) < 0)
    {
        return OCI_EINVAL;
    }

    if (cf->store_low_watermark >= cf->store_high_watermark) {
        s = config_setting_get_member(group, "low_watermark");
        oci_config_error(ctx, s != NULL ? s : group, "\"store.low_watermark\" "
                         "(%d%%) must be below \"store.high_watermark\" "
                         "(%d%%)", cf->store_low_watermark,
                         cf->store_high_watermark);
        return OCI_EINVAL;
    }

    rc = oci_config_get_int(ctx, group, "inactive", 0, 10LL * 365 * 86400,
                            &n);
    if (rc < 0) {
        return OCI_EINVAL;
    }

    if (rc == 1) {
        cf->store_inactive = (long) n;
    }

    if (oci_config_get_bool(ctx, group, "recency", &cf->store_recency) < 0) {
        return OCI_EINVAL;
    }

    rc = oci_config_get_int(ctx, group, "recency_batch", 16, 1 << 20, &n);
    if (rc < 0) {
        return OCI_EINVAL;
    }

    if (rc == 1) {
        cf->recency_batch = (long) n;
    }

    /* the last use is worth something to within CACHE_TOUCH_INTERVAL */
    rc = oci_config_get_int(ctx, group, "recency_interval", 1, 600, &n);
    if (rc < 0) {
        return OCI_EINVAL;
    }

    if (rc == 1) {
        cf->recency_interval = (long) n;
    }

    return OCI_OK;
}


long long
oci_config_max_size(const oci_config_t *cf, long long fs_bytes)
{
    if (cf->store_max_size > 0) {
        return cf->store_max_size;
    }

    return fs_bytes / 100 * cf->store_max_size_pct;
}


/* The bounds of the fetcher's work (in "fetcher"): OCI_OK or OCI_EINVAL
 * (reported). */
static int
oci_config_bounds(oci_config_ctx_t *ctx, const config_setting_t *group,
    oci_config_t *cf)
{
    static const struct {
        const char  *name;
        size_t       offset;
    } bounds[] = {
        { "max_jobs", offsetof(oci_config_t, max_jobs) },
        { "max_worker_jobs", offsetof(oci_config_t, max_worker_jobs) },
        { "max_waiters", offsetof(oci_config_t, max_waiters) },
        { "max_queued", offsetof(oci_config_t, max_queued) },
    };

    long long  v;
    size_t     i;
    int        rc;

    for (i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        rc = oci_config_get_int(ctx, group, bounds[i].name, 1, OCI_BOUND_MAX,
                                &v);
        if (rc < 0) {
            return rc;
        }

        if (rc == 1) {
            *(long *) ((char *) cf + bounds[i].offset) = (long) v;
        }
    }

    if (oci_config_get_fraction(ctx, group, "finish_fraction",
                                &cf->finish_fraction)
        < 0)
    {
        return OCI_EINVAL;
    }

    return OCI_OK;
}


static int
oci_config_fetcher(oci_config_ctx_t *ctx, config_t *lc, oci_config_t *cf)
{
    config_setting_t  *group, *s;
    const char        *sock;
    long long          v;
    int                rc;

    sock = OCI_DEFAULT_FETCHER_SOCKET;
    s = NULL;

    group = config_lookup(lc, "fetcher");

    if (group != NULL) {
        if (!config_setting_is_group(group)) {
            oci_config_error(ctx, group, "\"fetcher\" must be a group { ... }");
            return OCI_EINVAL;
        }

        if (oci_config_check_keys(ctx, group, "fetcher.",
                                  oci_config_fetcher_keys)
            != OCI_OK)
        {
            return OCI_EINVAL;
        }

        if (oci_config_get_string(ctx, group, "socket", &sock) < 0) {
            return OCI_EINVAL;
        }

        s = config_setting_get_member(group, "socket");

        rc = oci_config_socket_group(ctx, group, cf);
        if (rc != OCI_OK) {
            return rc;
        }

        rc = oci_config_get_int(ctx, group, "max_transfers", 1, 65536, &v);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            cf->max_transfers = (int) v;
        }

        rc = oci_config_get_int(ctx, group, "connect_timeout", 1, 3600, &v);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            cf->connect_timeout = (long) v;
        }

        rc = oci_config_get_int(ctx, group, "low_speed_time", 1, 3600, &v);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            cf->low_speed_time = (long) v;
        }

        rc = oci_config_get_int(ctx, group, "max_retry_after", 1, 86400,
                                &v);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            cf->max_retry_after = (long) v;
        }

        rc = oci_config_get_int(ctx, group, "max_per_host", 1, 65536, &v);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            cf->max_per_host = (int) v;
        }

        if (oci_config_get_bool(ctx, group, "http2", &cf->http2) < 0) {
            return OCI_EINVAL;
        }

        if (oci_config_get_size(ctx, group, "fetcher", "chunk_threshold", 0,
                                LLONG_MAX, &cf->chunk_threshold)
            < 0)
        {
            return OCI_EINVAL;
        }

        /* tiny chunks would cost a request each for a few bytes: a typo
         * ("8" for "8M") is refused rather than obeyed */
        if (oci_config_get_size(ctx, group, "fetcher", "chunk_size",
                                OCI_CHUNK_SIZE_MIN, 1024LL * 1024 * 1024,
                                &cf->chunk_size)
            < 0)
        {
            return OCI_EINVAL;
        }

        rc = oci_config_get_int(ctx, group, "chunks_per_blob", 0,
                                OCI_CHUNKS_PER_BLOB_MAX, &v);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            cf->chunks_per_blob = (int) v;
        }

        /* 0: no list is kept parsed, each request reads the store */
        if (oci_config_get_size(ctx, group, "fetcher", "list_cache_size", 0,
                                1024LL * 1024 * 1024 * 1024,
                                &cf->list_cache_size)
            < 0)
        {
            return OCI_EINVAL;
        }

        rc = oci_config_get_int(ctx, group, "list_cache_entries", 0,
                                1000000, &v);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            cf->list_cache_entries = (long) v;
        }

        rc = oci_config_transport(ctx, group, "fetcher", &cf->proxy,
                                  &cf->no_proxy, &cf->bandwidth_limit);
        if (rc != OCI_OK) {
            return rc;
        }

        rc = oci_config_bounds(ctx, group, cf);
        if (rc != OCI_OK) {
            return rc;
        }
    }

    if (sock[0] != '/' || strlen(sock) > OCI_SOCKET_PATH_MAX) {
        oci_config_error(ctx, s, "\"fetcher.socket\" must be an absolute "
                         "path of at most %d bytes",
                         (int) OCI_SOCKET_PATH_MAX);
        return OCI_EINVAL;
    }

    cf->fetcher_socket = strdup(sock);

    if (cf->fetcher_socket == NULL) {
        oci_config_error(ctx, s, "out of memory");
        return OCI_ENOMEM;
    }

    return OCI_OK;
}


/*
 * The group is looked up here, not when the socket is made: both nginx -t
 * and ocimirror-fetcher --check then refuse a name that does not exist,
 * with the line that names it, before anything runs.
 */
static int
oci_config_socket_group(oci_config_ctx_t *ctx, const config_setting_t *group,
    oci_config_t *cf)
{
    config_setting_t  *s;
    struct group      *gr;
    const char        *name;
    int                rc;

    rc = oci_config_get_string(ctx, group, "socket_group", &name);
    if (rc <= 0) {
        return (rc == 0) ? OCI_OK : OCI_EINVAL;
    }

    s = config_setting_get_member(group, "socket_group");

    if (name[0] == '\0') {
        oci_config_error(ctx, s, "\"fetcher.socket_group\" must name a "
                         "group");
        return OCI_EINVAL;
    }

    errno = 0;
    gr = getgrnam(name);

    if (gr == NULL) {
        if (errno != 0 && errno != ENOENT && errno != ESRCH
            && errno != EBADF && errno != EPERM)
        {
            oci_config_error(ctx, s, "\"fetcher.socket_group\": cannot look "
                             "up group \"%s\": %s", name, strerror(errno));
            return OCI_EIO;
        }

        oci_config_error(ctx, s, "\"fetcher.socket_group\": no group "
                         "\"%s\"", name);
        return OCI_EINVAL;
    }

    cf->socket_gid = (long) gr->gr_gid;
    cf->socket_group = strdup(name);

    if (cf->socket_group == NULL) {
        oci_config_error(ctx, s, "out of memory");
        return OCI_ENOMEM;
    }

    return OCI_OK;
}


static int
oci_config_prefetch(oci_config_ctx_t *ctx, config_t *lc, oci_config_t *cf)
{
    config_setting_t  *group, *list;
    long long          n;

    group = config_lookup(lc, "prefetch");
    list = NULL;

    if (group != NULL) {
        if (!config_setting_is_group(group)) {
            oci_config_error(ctx, group, "\"prefetch\" must be a group "
                             "{ ... }");
            return OCI_EINVAL;
        }

        if (oci_config_check_keys(ctx, group, "prefetch.",
                                  oci_config_prefetch_keys)
            != OCI_OK)
        {
            return OCI_EINVAL;
        }

        if (oci_config_get_bool(ctx, group, "enabled", &cf->prefetch) < 0) {
            return OCI_EINVAL;
        }

        if (oci_config_get_size(ctx, group, "prefetch", "max_bytes", 0,
                                LLONG_MAX, &cf->prefetch_max_bytes)
            < 0)
        {
            return OCI_EINVAL;
        }

        /* a count as well as bytes: a manifest of 20k tiny layers is
         * within any byte budget, yet 20k jobs and temp files */
        n = cf->prefetch_max_children;
        if (oci_config_get_int(ctx, group, "max_children", 0,
                               OCI_PREFETCH_MAX_CHILDREN_MAX, &n)
            < 0)
        {
            return OCI_EINVAL;
        }

        cf->prefetch_max_children = (long) n;

        n = cf->prefetch_max_layers;
        if (oci_config_get_int(ctx, group, "max_layers", 0,
                               OCI_PREFETCH_MAX_LAYERS_MAX, &n)
            < 0)
        {
            return OCI_EINVAL;
        }

        cf->prefetch_max_layers = (long) n;

        list = config_setting_get_member(group, "platforms");
    }

    if (list == NULL) {
        cf->prefetch_platforms = calloc(1, sizeof(char *));

        if (cf->prefetch_platforms == NULL) {
            oci_config_error(ctx, group, "out of memory");
            return OCI_ENOMEM;
        }

        cf->prefetch_platforms[0] = strdup(OCI_DEFAULT_PREFETCH_PLATFORM);

        if (cf->prefetch_platforms[0] == NULL) {
            oci_config_error(ctx, group, "out of memory");
            return OCI_ENOMEM;
        }

        cf->n_prefetch_platforms = 1;

        return OCI_OK;
    }

    /* an empty list is allowed: an index then prefetches nothing */
    return oci_config_platforms(ctx, list, "prefetch.platforms",
                                &cf->prefetch_platforms,
                                &cf->n_prefetch_platforms);
}


/* A list of platforms ("os/arch" or "os/arch/variant") into *out, *n
 * (an array of n + 1, NULL at the end).  OCI_OK, OCI_EINVAL, OCI_ENOMEM. */
static int
oci_config_platforms(oci_config_ctx_t *ctx, const config_setting_t *list,
    const char *what, char ***out, size_t *n)
{
    config_setting_t  *s;
    const char        *p;
    size_t             i, len;

    if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
        oci_config_error(ctx, list, "\"%s\" must be a list "
                         "( \"linux/amd64\", ... )", what);
        return OCI_EINVAL;
    }

    len = (size_t) config_setting_length(list);

    *out = calloc(len + 1, sizeof(char *));

    if (*out == NULL) {
        oci_config_error(ctx, list, "out of memory");
        return OCI_ENOMEM;
    }

    for (i = 0; i < len; i++) {
        s = config_setting_get_elem(list, (unsigned) i);
        p = config_setting_get_string(s);

        if (p == NULL || !oci_platform_valid(p)) {
            oci_config_error(ctx, s, "a platform must be a string "
                             "\"os/arch\" or \"os/arch/variant\" in lower "
                             "case");
            return OCI_EINVAL;
        }

        (*out)[i] = strdup(p);

        if ((*out)[i] == NULL) {
            oci_config_error(ctx, s, "out of memory");
            return OCI_ENOMEM;
        }

        (*n)++;
    }

    return OCI_OK;
}


/* One image of a pin or warm list: "ref" or { ref = "..."; platforms =
 * ( ... ); }.  The registry must be one of the registries (globs aside);
 * a one-part name of a registry with library_prefix gains "library/". */
static int
oci_config_image(oci_config_ctx_t *ctx, const config_setting_t *s,
    const char *what, int globs, oci_config_t *cf, oci_image_spec_t *spec)
{
    config_setting_t  *list;
    const char        *text, *why;
    oci_registry_t    *reg;
    size_t             i;
    int                rc;

    list = NULL;

    if (config_setting_is_group(s)) {
        if (oci_config_check_keys(ctx, s, what, oci_config_image_keys)
            != OCI_OK)
        {
            return OCI_EINVAL;
        }

        text = NULL;
        rc = oci_config_get_string(ctx, s, "ref", &text);
        if (rc < 0) {
            return OCI_EINVAL;
        }

        if (rc == 0) {
            oci_config_error(ctx, s, "an image of \"%s\" needs a \"ref\"",
                             what);
            return OCI_EINVAL;
        }

        list = config_setting_get_member(s, "platforms");

    } else if ((text = config_setting_get_string(s)) == NULL) {
        oci_config_error(ctx, s, "an image of \"%s\" is a reference "
                         "\"registry/name:tag\" or a group { ref = ...; "
                         "platforms = ( ... ); }", what);
        return OCI_EINVAL;
    }

    if (oci_imageref_parse(text, strlen(text), globs, &spec->ref, &why)
        != OCI_OK)
    {
        oci_config_error(ctx, s, "\"%s\" in \"%s\": %s", text, what, why);
        return OCI_EINVAL;
    }

    if (list != NULL) {
        rc = oci_config_platforms(ctx, list, what, &spec->platforms,
                                  &spec->n_platforms);
        if (rc != OCI_OK) {
            return rc;
        }
    }

    if (strpbrk(spec->ref.registry, "*?") != NULL) {
        return OCI_OK;
    }

    reg = NULL;

    for (i = 0; i < cf->n_registries; i++) {
        if (strcmp(cf->registries[i].name, spec->ref.registry) == 0) {
            reg = &cf->registries[i];
        }
    }

    if (reg == NULL) {
        oci_config_error(ctx, s, "\"%s\" in \"%s\": no registry \"%s\" "
                         "in \"registries\"", text, what,
                         spec->ref.registry);
        return OCI_EINVAL;
    }

    if (reg->library_prefix && strchr(spec->ref.name, '/') == NULL) {
        if (strlen(spec->ref.name) + 8 >= sizeof(spec->ref.name)) {
            oci_config_error(ctx, s, "\"%s\": the name is too long", text);
            return OCI_EINVAL;
        }

        memmove(spec->ref.name + 8, spec->ref.name,
                strlen(spec->ref.name) + 1);
        memcpy(spec->ref.name, "library/", 8);
    }

    return OCI_OK;
}


/* A list of images (store.pin, warm) into *out, *n; at most max. */
static int
oci_config_image_list(oci_config_ctx_t *ctx, const config_setting_t *list,
    const char *what, int globs, size_t max, oci_config_t *cf,
    oci_image_spec_t **out, size_t *n)
{
    size_t  i, len;
    int     rc;

    if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
        oci_config_error(ctx, list, "\"%s\" must be a list ( "
                         "\"docker.io/library/nginx:1.27\", ... )", what);
        return OCI_EINVAL;
    }

    len = (size_t) config_setting_length(list);

    if (len > max) {
        oci_config_error(ctx, list, "\"%s\" has %zu images, at most %zu "
                         "are allowed", what, len, max);
        return OCI_EINVAL;
    }

    *out = calloc(len + 1, sizeof(oci_image_spec_t));

    if (*out == NULL) {
        oci_config_error(ctx, list, "out of memory");
        return OCI_ENOMEM;
    }

    for (i = 0; i < len; i++) {
        rc = oci_config_image(ctx, config_setting_get_elem(list, (unsigned) i),
                              what, globs, cf, &(*out)[i]);
        (*n)++;

        if (rc != OCI_OK) {
            return rc;
        }
    }

    return OCI_OK;
}


/* store.pin, and the top-level warm settings (after the registries, which
 * their references name). */
static int
oci_config_images(oci_config_ctx_t *ctx, config_t *lc, oci_config_t *cf)
{
    config_setting_t  *s, *root;
    const char        *file;
    long long          v;
    int                rc;

    s = config_lookup(lc, "store.pin");

    if (s != NULL) {
        rc = oci_config_image_list(ctx, s, "store.pin", 1, OCI_PINS_MAX, cf,
                                   &cf->pins, &cf->n_pins);
        if (rc != OCI_OK) {
            return rc;
        }
    }

    root = config_root_setting(lc);

    rc = oci_config_get_int(ctx, root, "warm_interval", 10, 30L * 86400, &v);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        cf->warm_interval = (long) v;
    }

    rc = oci_config_get_int(ctx, root, "warm_max", 1, 100000, &v);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        cf->warm_max = (long) v;
    }

    file = NULL;

    if (oci_config_get_string(ctx, root, "warm_file", &file) < 0) {
        return OCI_EINVAL;
    }

    if (file != NULL) {
        if (file[0] != '/') {
            oci_config_error(ctx, config_setting_get_member(root, "warm_file"),
                             "\"warm_file\" must be an absolute path");
            return OCI_EINVAL;
        }

        cf->warm_file = strdup(file);

        if (cf->warm_file == NULL) {
            oci_config_error(ctx, root, "out of memory");
            return OCI_ENOMEM;
        }
    }

    s = config_setting_get_member(root, "warm");

    if (s != NULL) {
        rc = oci_config_image_list(ctx, s, "warm", 0, (size_t) cf->warm_max,
                                   cf, &cf->warm, &cf->n_warm);
        if (rc != OCI_OK) {
            return rc;
        }
    }

    return OCI_OK;
}


static int
oci_config_endpoint_url(oci_config_ctx_t *ctx, const config_setting_t *s,
    char **out)
{
    const char  *url, *host, *slash, *at;
    size_t       len, i;
    int          c;

    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        oci_config_error(ctx, s, "an endpoint must be a string");
        return OCI_EINVAL;
    }

    url = config_setting_get_string(s);
    len = strlen(url);

    if (strncmp(url, "https://", 8) == 0) {
        host = url + 8;

    } else if (strncmp(url, "http://", 7) == 0) {
        host = url + 7;

    } else {
        oci_config_error(ctx, s, "endpoint \"%.64s\" must start with "
                         "\"https://\" or \"http://\"", url);
        return OCI_EINVAL;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) url[i];

        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#') {
            oci_config_error(ctx, s, "endpoint \"%.64s\" holds a character "
                             "not allowed in a base URL", url);
            return OCI_EINVAL;
        }
    }

    /* user:password@host would put a secret in the config and the logs;
     * the URL itself is not echoed, it holds the secret */
    slash = strchr(host, '/');
    at = strchr(host, '@');

    if (at != NULL && (slash == NULL || at < slash)) {
        oci_config_error(ctx, s, "an endpoint must not hold credentials "
                         "(user:password@host): credentials belong in "
                         "credential files");
        return OCI_EINVAL;
    }

    /* a trailing '/' would double the one before "v2/" */
    while (len > (size_t) (host - url) && url[len - 1] == '/') {
        len--;
    }

    if (len > OCI_ENDPOINT_MAX || host[0] == '/' || host[0] == '\0'
        || len == (size_t) (host - url))
    {
        oci_config_error(ctx, s, "endpoint \"%.64s\" has no host or is "
                         "too long", url);
        return OCI_EINVAL;
    }

    *out = malloc(len + 1);

    if (*out == NULL) {
        oci_config_error(ctx, s, "out of memory");
        return OCI_ENOMEM;
    }

    memcpy(*out, url, len);
    (*out)[len] = '\0';

    return OCI_OK;
}


/* An endpoint: a URL, or a group { url = ...; credentials }.  OCI_OK or
 * an error. */
static int
oci_config_endpoint(oci_config_ctx_t *ctx, const config_setting_t *s,
    char **url, oci_credentials_t *creds)
{
    config_setting_t  *u;

    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        return oci_config_endpoint_url(ctx, s, url);
    }

    if (!config_setting_is_group(s)) {
        oci_config_error(ctx, s, "an endpoint must be a URL or a group "
                         "{ url = \"https://...\"; ... }");
        return OCI_EINVAL;
    }

    if (oci_config_check_keys(ctx, s, "registries.endpoints.",
                              oci_config_endpoint_keys)
        != OCI_OK)
    {
        return OCI_EINVAL;
    }

    u = config_setting_get_member(s, "url");

    if (u == NULL) {
        oci_config_error(ctx, s, "an endpoint group without \"url\"");
        return OCI_EINVAL;
    }

    if (oci_config_endpoint_url(ctx, u, url) != OCI_OK) {
        return OCI_EINVAL;
    }

    return oci_config_credentials(ctx, s, creds);
}


/* A proxy URL: scheme http, https, socks5 or socks5h, a host, no
 * credentials, no path beyond "/"; or "" (no proxy) if empty_ok. */
static int
oci_config_proxy_valid(const char *url, int empty_ok)
{
    static const char *const  schemes[] = {
        "http://", "https://", "socks5://", "socks5h://", NULL
    };

    const char  *host;
    size_t       i, len;
    int          c;

    if (url[0] == '\0') {
        return empty_ok;
    }

    host = NULL;

    for (i = 0; schemes[i] != NULL; i++) {
        len = strlen(schemes[i]);

        if (strncmp(url, schemes[i], len) == 0) {
            host = url + len;
            break;
        }
    }

    if (host == NULL || host[0] == '\0' || host[0] == '/' || host[0] == ':')
    {
        return 0;
    }

    for (i = 0; host[i] != '\0'; i++) {
        c = (unsigned char) host[i];

        if (c <= 0x20 || c >= 0x7f || c == '@' || c == '?' || c == '#'
            || (c == '/' && host[i + 1] != '\0'))
        {
            return 0;
        }
    }

    return strlen(url) <= OCI_ENDPOINT_MAX;
}


/* A host list for no_proxy: host names, domains, addresses, "*",
 * separated by commas and spaces. */
static int
oci_config_no_proxy_valid(const char *s)
{
    size_t  i;
    int     c;

    for (i = 0; s[i] != '\0'; i++) {
        c = (unsigned char) s[i];

        if (!(isalnum(c) || c == '.' || c == '-' || c == ',' || c == ' '
              || c == ':' || c == '*' || c == '[' || c == ']' || c == '/'
              || c == '_'))
        {
            return 0;
        }
    }

    return i <= 4096;
}


/* A copy of a string setting into *out (replacing what it held).  0 if
 * absent, 1 if set, or OCI_EINVAL / OCI_ENOMEM. */
static int
oci_config_dup_string(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *name, char **out)
{
    config_setting_t  *s;
    const char        *v;
    char              *copy;
    int                rc;

    rc = oci_config_get_string(ctx, group, name, &v);
    if (rc <= 0) {
        return rc;
    }

    s = config_setting_get_member(group, name);

    copy = strdup(v);
    if (copy == NULL) {
        oci_config_error(ctx, s, "out of memory");
        return OCI_ENOMEM;
    }

    free(*out);
    *out = copy;

    return 1;
}


/* proxy, no_proxy and bandwidth_limit of the "fetcher" group or of a
 * registry (where proxy = "" means no proxy).  OCI_OK or an error. */
static int
oci_config_transport(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *section, char **proxy, char **no_proxy, long long *bw)
{
    int  rc;

    rc = oci_config_dup_string(ctx, group, "proxy", proxy);
    if (rc < 0) {
        return rc;
    }

    if (rc == 1) {
        if (!oci_config_proxy_valid(*proxy, strcmp(section, "fetcher") != 0))
        {
            oci_config_error(ctx, config_setting_get_member(group, "proxy"),
                             "\"%s.proxy\" must be a URL such as "
                             "\"http://proxy:3128\" (http, https, socks5 or "
                             "socks5h; no credentials, no path)%s", section,
                             strcmp(section, "fetcher") != 0
                             ? ", or \"\" for none" : "");
            return OCI_EINVAL;
        }

        if ((*proxy)[0] == '\0') {
            free(*proxy);
            *proxy = NULL;
        }
    }

    rc = oci_config_dup_string(ctx, group, "no_proxy", no_proxy);
    if (rc < 0) {
        return rc;
    }

    if (rc == 1 && !oci_config_no_proxy_valid(*no_proxy)) {
        oci_config_error(ctx, config_setting_get_member(group, "no_proxy"),
                         "\"%s.no_proxy\" must be a list of hosts or "
                         "domains separated by commas", section);
        return OCI_EINVAL;
    }

    /* below 1 KiB/s the low-speed timeout would end every transfer */
    rc = oci_config_get_size(ctx, group, section, "bandwidth_limit", 0,
                             1LL << 40, bw);
    if (rc < 0) {
        return rc;
    }

    if (rc == 1 && *bw != 0 && *bw < 16 * 1024) {
        oci_config_error(ctx,
                         config_setting_get_member(group, "bandwidth_limit"),
                         "\"%s.bandwidth_limit\" must be 0 (none) or at "
                         "least 16K bytes per second", section);
        return OCI_EINVAL;
    }

    return OCI_OK;
}


/* A file setting: an absolute path; its line is kept for the errors of
 * oci_config_check_files().  OCI_OK or an error. */
static int
oci_config_file(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *name, oci_config_file_t *out)
{
    config_setting_t  *s;
    int                rc;

    rc = oci_config_dup_string(ctx, group, name, &out->path);
    if (rc <= 0) {
        return rc;
    }

    s = config_setting_get_member(group, name);
    out->line = config_setting_source_line(s);

    if (out->path[0] != '/' || strlen(out->path) >= OCI_PATH_MAX) {
        oci_config_error(ctx, s, "\"%s\" must be an absolute path", name);
        return OCI_EINVAL;
    }

    return OCI_OK;
}


/* username + password_file, or token_file, of a registry or an endpoint
 * group.  OCI_OK or an error. */
static int
oci_config_credentials(oci_config_ctx_t *ctx, const config_setting_t *group,
    oci_credentials_t *creds)
{
    config_setting_t  *s;
    int                rc;

    rc = oci_config_dup_string(ctx, group, "username", &creds->username);
    if (rc < 0) {
        return rc;
    }

    if (oci_config_file(ctx, group, "password_file", &creds->password_file)
            != OCI_OK
        || oci_config_file(ctx, group, "token_file", &creds->token_file)
            != OCI_OK)
    {
        return OCI_EINVAL;
    }

    if (creds->username != NULL
        && (creds->username[0] == '\0'
            || strchr(creds->username, ':') != NULL
            || strlen(creds->username) > 256))
    {
        oci_config_error(ctx, config_setting_get_member(group, "username"),
                         "\"username\" must be 1 to 256 characters without "
                         "\":\"");
        return OCI_EINVAL;
    }

    if ((creds->username != NULL) != (creds->password_file.path != NULL)) {
        s = config_setting_get_member(group, creds->username != NULL
                                             ? "username" : "password_file");
        oci_config_error(ctx, s, "\"username\" and \"password_file\" go "
                         "together");
        return OCI_EINVAL;
    }

    if (creds->token_file.path != NULL && creds->username != NULL) {
        oci_config_error(ctx, config_setting_get_member(group, "token_file"),
                         "\"token_file\" and \"username\" exclude each "
                         "other");
        return OCI_EINVAL;
    }

    return OCI_OK;
}


/*
 * A list of strings of a registry: NULL and 0 if absent, else a copy of
 * each, checked by valid() (which lower-cases it if it wants); what names
 * a valid value in the error.  OCI_OK or an error.
 */
static int
oci_config_string_list(oci_config_ctx_t *ctx, const config_setting_t *group,
    const char *name, int (*valid)(char *v), const char *what, char ***out,
    size_t *n)
{
    config_setting_t  *list, *e;
    const char        *v;
    int                len, i;

    list = config_setting_get_member(group, name);

    if (list == NULL) {
        return OCI_OK;
    }

    if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
        oci_config_error(ctx, list, "\"%s\" must be a list ( \"...\", ... )",
                         name);
        return OCI_EINVAL;
    }

    len = config_setting_length(list);

    *out = calloc((size_t) len + 1, sizeof(char *));
    if (*out == NULL) {
        oci_config_error(ctx, list, "out of memory");
        return OCI_ENOMEM;
    }

    for (i = 0; i < len; i++) {
        e = config_setting_get_elem(list, (unsigned) i);
        v = config_setting_get_string(e);

        if (v == NULL) {
            oci_config_error(ctx, e, "\"%s\" must hold strings", name);
            return OCI_EINVAL;
        }

        (*out)[i] = strdup(v);
        if ((*out)[i] == NULL) {
            oci_config_error(ctx, e, "out of memory");
            return OCI_ENOMEM;
        }

        (*n)++;

        if (!valid((*out)[i])) {
            oci_config_error(ctx, e, "\"%s\": \"%.64s\" is not %s", name, v,
                             what);
            return OCI_EINVAL;
        }
    }

    return OCI_OK;
}


/* A host name or IPv4 address without a port, lower-cased. */
static int
oci_config_redirect_host_valid(char *v)
{
    char  *p;

    for (p = v; *p != '\0'; p++) {
        *p = (char) tolower((unsigned char) *p);
    }

    return oci_host_valid(v, strlen(v)) && strchr(v, ':') == NULL;
}


/* "host:port:address[,address...]", curl's --resolve; addresses IPv4 or
 * IPv6 (in brackets or not).  The host is lower-cased. */
static int
oci_config_resolve_valid(char *v)
{
    char            *p, *port, *addrs, *a, *end, buf[64];
    unsigned char    bin[sizeof(struct in6_addr)];
    long             n;
    size_t           len;

    port = strchr(v, ':');
    if (port == NULL) {
        return 0;
    }

    for (p = v; p < port; p++) {
        *p = (char) tolower((unsigned char) *p);
    }

    if (!oci_host_valid(v, (size_t) (port - v))) {
        return 0;
    }

    port++;
    n = strtol(port, &addrs, 10);

    if (addrs == port || *addrs != ':' || n < 1 || n > 65535) {
        return 0;
    }

    for (a = addrs + 1; ; a = end + 1) {
        end = strchr(a, ',');
        len = end != NULL ? (size_t) (end - a) : strlen(a);

        if (len >= 2 && a[0] == '[' && a[len - 1] == ']') {
            a++;
            len -= 2;
        }

        if (len == 0 || len >= sizeof(buf)) {
            return 0;
        }

        memcpy(buf, a, len);
        buf[len] = '\0';

        if (inet_pton(AF_INET, buf, bin) != 1
            && inet_pton(AF_INET6, buf, bin) != 1)
        {
            return 0;
        }

        if (end == NULL) {
            return 1;
        }
    }
}


static int
oci_config_hosts(oci_config_ctx_t *ctx, const config_setting_t *group,
    oci_registry_t *reg)
{
    return oci_config_string_list(ctx, group, "redirect_hosts",
                                  oci_config_redirect_host_valid,
                                  "a host name or IPv4 address without a "
                                  "port", &reg->redirect_hosts,
                                  &reg->n_redirect_hosts);
}


static int
oci_config_resolve(oci_config_ctx_t *ctx, const config_setting_t *group,
    oci_registry_t *reg)
{
    return oci_config_string_list(ctx, group, "resolve",
                                  oci_config_resolve_valid,
                                  "\"host:port:address\" (addresses IPv4 or "
                                  "IPv6, separated by commas)",
                                  &reg->resolve, &reg->n_resolve);
}


/*
 * curl keeps one DNS cache for every transfer of the fetcher: a resolve
 * entry of one registry answers for the others too.  So one host:port
 * has one answer in the whole file.  OCI_OK or OCI_EINVAL.
 */
static int
oci_config_resolve_conflicts(oci_config_ctx_t *ctx, config_t *lc,
    const oci_config_t *cf)
{
    const oci_registry_t  *a, *b;
    const char            *ea, *eb, *ca, *cb;
    config_setting_t      *list;
    size_t                 i, j, k, l;

    for (i = 0; i < cf->n_registries; i++) {
        a = &cf->registries[i];

        for (k = 0; k < a->n_resolve; k++) {
            ea = a->resolve[k];
            ca = strchr(strchr(ea, ':') + 1, ':');

            for (j = i; j < cf->n_registries; j++) {
                b = &cf->registries[j];

                for (l = (j == i ? k + 1 : 0); l < b->n_resolve; l++) {
                    eb = b->resolve[l];
                    cb = strchr(strchr(eb, ':') + 1, ':');

                    if (ca - ea != cb - eb || strncmp(ea, eb, ca - ea) != 0
                        || strcmp(ca, cb) == 0)
                    {
                        continue;
                    }

                    list = config_setting_get_member(
                               config_setting_get_elem(
                                   config_lookup(lc, "registries"),
                                   (unsigned) j),
                               "resolve");
                    oci_config_error(ctx,
                                     config_setting_get_elem(list,
                                                             (unsigned) l),
                                     "\"resolve\": %.*s has another "
                                     "address in registry \"%s\" (curl's "
                                     "DNS cache is shared: one answer per "
                                     "host:port)", (int) (cb - eb), eb,
                                     a->name);
                    return OCI_EINVAL;
                }
            }
        }
    }

    return OCI_OK;
}


static int
oci_config_registry_upstream(oci_config_ctx_t *ctx,
    const config_setting_t *group, oci_config_t *cf, oci_registry_t *reg)
{
    static const struct {
        const char  *name;
        size_t       offset;
        long long    min;
        long long    max;
    } secs[] = {
        { "probe_interval", offsetof(oci_registry_t, probe_interval),
          1, 86400 },
        { "backoff", offsetof(oci_registry_t, backoff), 1, 3600 },
        { "connect_timeout", offsetof(oci_registry_t, connect_timeout),
          1, 3600 },
        { "low_speed_time", offsetof(oci_registry_t, low_speed_time),
          1, 3600 },
        { "stale_if_error", offsetof(oci_registry_t, stale_if_error),
          0, 365LL * 24 * 3600 },
        { "negative_ttl", offsetof(oci_registry_t, negative_ttl),
          0, 86400 },
        { "tags_ttl", offsetof(oci_registry_t, tags_ttl), 0, 86400 },
        { "referrers_ttl", offsetof(oci_registry_t, referrers_ttl),
          0, 86400 },
        { "max_retry_after", offsetof(oci_registry_t, max_retry_after),
          1, 86400 },
    };

    config_setting_t  *s;
    const char        *v;
    long long          n;
    size_t             i;
    int                rc;
    char              *proxy;

    reg->select = OCI_SELECT_ORDERED;
    reg->probe_interval = OCI_DEFAULT_PROBE_INTERVAL;
    reg->backoff = OCI_DEFAULT_BACKOFF;
    reg->tls_verify = 1;
    reg->connect_timeout = cf->connect_timeout;
    reg->low_speed_time = cf->low_speed_time;
    reg->bandwidth_limit = 0;
    reg->stale_if_error = OCI_DEFAULT_STALE_IF_ERROR;
    reg->negative_ttl = OCI_DEFAULT_NEGATIVE_TTL;
    reg->tags_ttl = OCI_DEFAULT_TAGS_TTL;
    reg->referrers_ttl = OCI_DEFAULT_REFERRERS_TTL;
    reg->max_retry_after = cf->max_retry_after;

    for (i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
        rc = oci_config_get_int(ctx, group, secs[i].name, secs[i].min,
                                secs[i].max, &n);
        if (rc < 0) {
            return rc;
        }

        if (rc == 1) {
            *(long *) ((char *) reg + secs[i].offset) = (long) n;
        }
    }

    rc = oci_config_get_string(ctx, group, "select", &v);
    if (rc < 0) {
        return rc;
    }

    if (rc == 1) {
        if (strcmp(v, "ordered") == 0) {
            reg->select = OCI_SELECT_ORDERED;

        } else if (strcmp(v, "fastest") == 0) {
            reg->select = OCI_SELECT_FASTEST;

        } else {
            oci_config_error(ctx, config_setting_get_member(group, "select"),
                             "\"select\" must be \"ordered\" or "
                             "\"fastest\"");
            return OCI_EINVAL;
        }
    }

    if (oci_config_get_bool(ctx, group, "tls_verify", &reg->tls_verify) < 0)
    {
        return OCI_EINVAL;
    }

    /* the global proxy unless the registry names its own (or "") */
    proxy = NULL;

    if (config_setting_get_member(group, "proxy") == NULL
        && cf->proxy != NULL)
    {
        proxy = strdup(cf->proxy);
        if (proxy == NULL) {
            oci_config_error(ctx, group, "out of memory");
            return OCI_ENOMEM;
        }
    }

    reg->proxy = proxy;

    if (config_setting_get_member(group, "no_proxy") == NULL
        && cf->no_proxy != NULL)
    {
        reg->no_proxy = strdup(cf->no_proxy);
        if (reg->no_proxy == NULL) {
            oci_config_error(ctx, group, "out of memory");
            return OCI_ENOMEM;
        }
    }

    rc = oci_config_transport(ctx, group, "registries", &reg->proxy,
                              &reg->no_proxy, &reg->bandwidth_limit);
    if (rc != OCI_OK) {
        return rc;
    }

    if (oci_config_credentials(ctx, group, &reg->creds) != OCI_OK
        || oci_config_hosts(ctx, group, reg) != OCI_OK
        || oci_config_resolve(ctx, group, reg) != OCI_OK
        || oci_config_file(ctx, group, "ca_file", &reg->ca_file) != OCI_OK
        || oci_config_file(ctx, group, "client_cert", &reg->client_cert)
            != OCI_OK
        || oci_config_file(ctx, group, "client_key", &reg->client_key)
            != OCI_OK)
    {
        return OCI_EINVAL;
    }

    if ((reg->client_cert.path != NULL) != (reg->client_key.path != NULL)) {
        s = config_setting_get_member(group, reg->client_cert.path != NULL
                                             ? "client_cert" : "client_key");
        oci_config_error(ctx, s, "\"client_cert\" and \"client_key\" go "
                         "together");
        return OCI_EINVAL;
    }

    return OCI_OK;
}


static int
oci_config_registry_parse(oci_config_ctx_t *ctx,
    const config_setting_t *group, oci_config_t *cf, oci_registry_t *reg)
{
    config_setting_t  *s, *eps;
    const char        *name;
    long long          v;
    size_t             i;
    int                rc, n;

    if (!config_setting_is_group(group)) {
        oci_config_error(ctx, group, "a registry must be a group { ... }");
        return OCI_EINVAL;
    }

    if (oci_config_check_keys(ctx, group, "registries.",
                              oci_config_registry_keys)
        != OCI_OK)
    {
        return OCI_EINVAL;
    }

    name = NULL;
    rc = oci_config_get_string(ctx, group, "name", &name);

    if (rc < 0) {
        return rc;
    }

    if (rc == 0) {
        oci_config_error(ctx, group, "a registry without \"name\"");
        return OCI_EINVAL;
    }

    s = config_setting_get_member(group, "name");

    if (!oci_host_valid(name, strlen(name))) {
        oci_config_error(ctx, s, "registry name \"%.64s\" is not a lower-case "
                         "host[:port]", name);
        return OCI_EINVAL;
    }

    if (oci_config_registry(cf, name, strlen(name)) != NULL) {
        oci_config_error(ctx, s, "duplicate registry \"%s\"", name);
        return OCI_EINVAL;
    }

    reg->name = strdup(name);

    if (reg->name == NULL) {
        oci_config_error(ctx, s, "out of memory");
        return OCI_ENOMEM;
    }

    reg->tag_ttl = OCI_DEFAULT_TAG_TTL;
    reg->library_prefix = (strcmp(name, "docker.io") == 0);
    reg->line = config_setting_source_line(group);

    rc = oci_config_registry_upstream(ctx, group, cf, reg);
    if (rc != OCI_OK) {
        return rc;
    }

    rc = oci_config_get_int(ctx, group, "tag_ttl", 0, 365LL * 24 * 3600, &v);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        reg->tag_ttl = (long) v;
    }

    if (oci_config_get_bool(ctx, group, "library_prefix",
                            &reg->library_prefix)
        < 0)
    {
        return OCI_EINVAL;
    }

    eps = config_setting_get_member(group, "endpoints");

    if (eps == NULL) {
        oci_config_error(ctx, group, "registry \"%s\" has no \"endpoints\"",
                         name);
        return OCI_EINVAL;
    }

    if (!config_setting_is_list(eps) && !config_setting_is_array(eps)) {
        oci_config_error(ctx, eps, "\"endpoints\" must be a list "
                         "( \"https://...\", ... )");
        return OCI_EINVAL;
    }

    n = config_setting_length(eps);

    if (n <= 0) {
        oci_config_error(ctx, eps, "registry \"%s\" has no endpoints", name);
        return OCI_EINVAL;
    }

    reg->endpoints = calloc((size_t) n, sizeof(char *));
    reg->endpoint_creds = calloc((size_t) n, sizeof(oci_credentials_t));

    if (reg->endpoints == NULL || reg->endpoint_creds == NULL) {
        oci_config_error(ctx, eps, "out of memory");
        return OCI_ENOMEM;
    }

    for (i = 0; i < (size_t) n; i++) {
        /* counted first so that destroy frees a half-parsed entry */
        reg->n_endpoints++;

        rc = oci_config_endpoint(ctx, config_setting_get_elem(eps,
                                 (unsigned) i), &reg->endpoints[i],
                                 &reg->endpoint_creds[i]);
        if (rc != OCI_OK) {
            return rc;
        }
    }

    return OCI_OK;
}


static int
oci_config_registries(oci_config_ctx_t *ctx, config_t *lc, oci_config_t *cf)
{
    config_setting_t  *list, *s;
    const char        *name;
    size_t             i;
    int                n, rc;

    list = config_lookup(lc, "registries");

    if (list == NULL) {
        oci_config_error(ctx, NULL, "the \"registries\" list is missing");
        return OCI_EINVAL;
    }

    if (!config_setting_is_list(list)) {
        oci_config_error(ctx, list, "\"registries\" must be a list "
                         "( { ... }, ... )");
        return OCI_EINVAL;
    }

    n = config_setting_length(list);

    if (n <= 0) {
        oci_config_error(ctx, list, "\"registries\" is empty");
        return OCI_EINVAL;
    }

    cf->registries = calloc((size_t) n, sizeof(oci_registry_t));

    if (cf->registries == NULL) {
        oci_config_error(ctx, list, "out of memory");
        return OCI_ENOMEM;
    }

    for (i = 0; i < (size_t) n; i++) {
        /* counted first so that destroy frees a half-parsed entry */
        cf->n_registries++;

        rc = oci_config_registry_parse(ctx,
                 config_setting_get_elem(list, (unsigned) i), cf,
                 &cf->registries[i]);
        if (rc != OCI_OK) {
            return rc;
        }
    }

    rc = oci_config_resolve_conflicts(ctx, lc, cf);
    if (rc != OCI_OK) {
        return rc;
    }

    name = NULL;
    rc = oci_config_get_string(ctx, config_root_setting(lc),
                               "default_registry", &name);
    if (rc < 0) {
        return rc;
    }

    if (rc == 1) {
        cf->default_registry = oci_config_registry(cf, name, strlen(name));

        if (cf->default_registry == NULL) {
            s = config_lookup(lc, "default_registry");
            oci_config_error(ctx, s, "default_registry \"%.64s\" is not "
                             "among the registries", name);
            return OCI_EINVAL;
        }
    }

    return OCI_OK;
}


static int
oci_config_check_file(oci_config_ctx_t *ctx)
{
    struct stat  st;
    int          fd, err;

    /* libconfig reports any open failure as "file I/O error" */

    fd = open(ctx->file, O_RDONLY);

    if (fd == -1 || fstat(fd, &st) == -1) {
        err = errno;
        if (fd != -1) {
            close(fd);
        }
        snprintf(ctx->err, ctx->errlen, "%s:0: cannot read: %s", ctx->file,
                 strerror(err));
        errno = err;
        return OCI_EIO;
    }

    close(fd);

    if (S_ISDIR(st.st_mode)) {
        snprintf(ctx->err, ctx->errlen, "%s:0: cannot read: %s", ctx->file,
                 strerror(EISDIR));
        errno = EISDIR;
        return OCI_EIO;
    }

    return OCI_OK;
}


int
oci_config_load(const char *file, oci_config_t **out, char *err,
    size_t errlen)
{
    oci_config_ctx_t   ctx;
    oci_config_t      *cf;
    config_t           lc;
    const char        *efile;
    int                rc;
    char               dummy[1];

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }

    err[0] = '\0';
    *out = NULL;

    ctx.file = file;
    ctx.err = err;
    ctx.errlen = errlen;

    rc = oci_config_check_file(&ctx);

    if (rc != OCI_OK) {
        return rc;
    }

    config_init(&lc);

    if (config_read_file(&lc, file) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
            snprintf(err, errlen, "%s:0: cannot read: %s", file,
                     config_error_text(&lc));
            config_destroy(&lc);
            return OCI_EIO;
        }

        efile = config_error_file(&lc);

        snprintf(err, errlen, "%s:%d: %s", efile != NULL ? efile : file,
                 config_error_line(&lc), config_error_text(&lc));
        config_destroy(&lc);
        return OCI_EINVAL;
    }

    cf = calloc(1, sizeof(oci_config_t));

    if (cf == NULL) {
        snprintf(err, errlen, "%s:0: out of memory", file);
        config_destroy(&lc);
        return OCI_ENOMEM;
    }

    cf->store_fsync = 1;
    cf->store_min_free = OCI_DEFAULT_MIN_FREE;
    cf->store_max_size_pct = OCI_DEFAULT_MAX_SIZE_PCT;
    cf->store_high_watermark = OCI_DEFAULT_HIGH_WATERMARK;
    cf->store_low_watermark = OCI_DEFAULT_LOW_WATERMARK;
    cf->store_recency = 1;
    cf->recency_batch = OCI_DEFAULT_RECENCY_BATCH;
    cf->recency_interval = OCI_DEFAULT_RECENCY_INTERVAL;
    cf->max_transfers = OCI_DEFAULT_MAX_TRANSFERS;
    cf->socket_gid = -1;
    cf->connect_timeout = OCI_DEFAULT_CONNECT_TIMEOUT;
    cf->low_speed_time = OCI_DEFAULT_LOW_SPEED_TIME;
    cf->max_per_host = OCI_DEFAULT_MAX_PER_HOST;
    cf->http2 = 1;
    cf->chunk_threshold = OCI_DEFAULT_CHUNK_THRESHOLD;
    cf->chunk_size = OCI_DEFAULT_CHUNK_SIZE;
    cf->chunks_per_blob = OCI_DEFAULT_CHUNKS_PER_BLOB;
    cf->max_jobs = OCI_DEFAULT_MAX_JOBS;
    cf->max_worker_jobs = OCI_DEFAULT_MAX_WORKER_JOBS;
    cf->max_waiters = OCI_DEFAULT_MAX_WAITERS;
    cf->max_queued = OCI_DEFAULT_MAX_QUEUED;
    cf->finish_fraction = OCI_DEFAULT_FINISH_FRACTION;
    cf->prefetch = 1;
    cf->prefetch_max_bytes = OCI_DEFAULT_PREFETCH_MAX_BYTES;
    cf->prefetch_max_children = OCI_DEFAULT_PREFETCH_MAX_CHILDREN;
    cf->prefetch_max_layers = OCI_DEFAULT_PREFETCH_MAX_LAYERS;
    cf->max_retry_after = OCI_DEFAULT_MAX_RETRY_AFTER;
    cf->scrub_interval = OCI_DEFAULT_SCRUB_INTERVAL;
    cf->scrub_rate = OCI_DEFAULT_SCRUB_RATE;
    cf->quarantine_max = OCI_DEFAULT_QUARANTINE_MAX;
    cf->commit_queue = OCI_DEFAULT_COMMIT_QUEUE;
    cf->list_cache_size = OCI_DEFAULT_LIST_CACHE_SIZE;
    cf->list_cache_entries = OCI_DEFAULT_LIST_CACHE_ENTRIES;
    cf->warm_interval = OCI_DEFAULT_WARM_INTERVAL;
    cf->warm_max = OCI_DEFAULT_WARM_MAX;
    cf->cluster_fail_timeout = OCI_DEFAULT_CLUSTER_FAIL_TIMEOUT;
    cf->cluster_hot_requests = OCI_DEFAULT_CLUSTER_HOT_REQUESTS;
    cf->cluster_hot_window = OCI_DEFAULT_CLUSTER_HOT_WINDOW;
    cf->cluster_max_replicas = OCI_DEFAULT_CLUSTER_MAX_REPLICAS;
    cf->cluster_hot_table = OCI_DEFAULT_CLUSTER_HOT_TABLE;

    cf->file = strdup(file);

    if (cf->file == NULL) {
        snprintf(err, errlen, "%s:0: out of memory", file);
        rc = OCI_ENOMEM;
        goto failed;
    }

    rc = oci_config_check_keys(&ctx, config_root_setting(&lc), "",
                               oci_config_top_keys);
    if (rc != OCI_OK) {
        goto failed;
    }

    rc = oci_config_store(&ctx, &lc, cf);
    if (rc != OCI_OK) {
        goto failed;
    }

    rc = oci_config_fetcher(&ctx, &lc, cf);
    if (rc != OCI_OK) {
        goto failed;
    }

    rc = oci_config_prefetch(&ctx, &lc, cf);
    if (rc != OCI_OK) {
        goto failed;
    }

    rc = oci_config_registries(&ctx, &lc, cf);
    if (rc != OCI_OK) {
        goto failed;
    }

    rc = oci_config_images(&ctx, &lc, cf);
    if (rc != OCI_OK) {
        goto failed;
    }

    rc = oci_config_cluster(&ctx, &lc, cf);
    if (rc != OCI_OK) {
        goto failed;
    }

    config_destroy(&lc);
    *out = cf;

    return OCI_OK;

failed:

    config_destroy(&lc);
    oci_config_destroy(cf);

    return rc;
}


static void
oci_config_free_images(oci_image_spec_t *specs, size_t n)
{
    size_t  i, j;

    if (specs == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        for (j = 0; j < specs[i].n_platforms; j++) {
            free(specs[i].platforms[j]);
        }

        free(specs[i].platforms);
    }

    free(specs);
}


void
oci_config_destroy(oci_config_t *cf)
{
    size_t           i, j;
    oci_registry_t  *reg;

    if (cf == NULL) {
        return;
    }

    for (i = 0; i < cf->n_registries; i++) {
        reg = &cf->registries[i];

        if (reg->endpoints != NULL) {
            for (j = 0; j < reg->n_endpoints; j++) {
                free(reg->endpoints[j]);
            }
            free(reg->endpoints);
        }

        if (reg->endpoint_creds != NULL) {
            for (j = 0; j < reg->n_endpoints; j++) {
                oci_config_credentials_free(&reg->endpoint_creds[j]);
            }
            free(reg->endpoint_creds);
        }

        oci_config_credentials_free(&reg->creds);
        oci_config_strings_free(reg->redirect_hosts, reg->n_redirect_hosts);
        oci_config_strings_free(reg->resolve, reg->n_resolve);
        free(reg->name);
        free(reg->proxy);
        free(reg->no_proxy);
        free(reg->ca_file.path);
        free(reg->client_cert.path);
        free(reg->client_key.path);
    }

    oci_config_free_images(cf->pins, cf->n_pins);
    oci_config_free_images(cf->warm, cf->n_warm);
    free(cf->warm_file);

    if (cf->prefetch_platforms != NULL) {
        for (i = 0; i < cf->n_prefetch_platforms; i++) {
            free(cf->prefetch_platforms[i]);
        }
        free(cf->prefetch_platforms);
    }

    oci_config_strings_free(cf->cluster_peers, cf->n_cluster_peers);
    free(cf->cluster_secret_file);
    free(cf->registries);
    free(cf->fetcher_socket);
    free(cf->socket_group);
    free(cf->proxy);
    free(cf->no_proxy);
    free(cf->store_path);
    free(cf->file);
    free(cf);
}


static void
oci_config_credentials_free(oci_credentials_t *creds)
{
    free(creds->username);
    free(creds->password_file.path);
    free(creds->token_file.path);
}


static void
oci_config_strings_free(char **v, size_t n)
{
    size_t  i;

    if (v == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        free(v[i]);
    }

    free(v);
}


int
oci_credentials_set(const oci_credentials_t *c)
{
    return c->username != NULL || c->token_file.path != NULL;
}


const oci_credentials_t *
oci_endpoint_creds(const oci_registry_t *reg, size_t i)
{
    if (reg->endpoint_creds != NULL && i < reg->n_endpoints
        && oci_credentials_set(&reg->endpoint_creds[i]))
    {
        return &reg->endpoint_creds[i];
    }

    return &reg->creds;
}


int
oci_redirect_host_allowed(const oci_registry_t *reg, const char *host)
{
    size_t  i;

    for (i = 0; i < reg->n_redirect_hosts; i++) {
        if (strcasecmp(reg->redirect_hosts[i], host) == 0) {
            return 1;
        }
    }

    return 0;
}


oci_registry_t *
oci_config_registry(const oci_config_t *cf, const char *name, size_t len)
{
    size_t  i;

    if (cf == NULL || name == NULL) {
        return NULL;
    }

    for (i = 0; i < cf->n_registries; i++) {
        if (cf->registries[i].name != NULL
            && strlen(cf->registries[i].name) == len
            && memcmp(cf->registries[i].name, name, len) == 0)
        {
            return &cf->registries[i];
        }
    }

    return NULL;
}


int
oci_config_read_secret(const char *path, char *out, size_t cap)
{
    FILE    *f;
    size_t   n;
    int      c, err;

    f = fopen(path, "re");
    if (f == NULL) {
        return OCI_EIO;
    }

    n = 0;

    while ((c = getc(f)) != EOF && c != '\n' && c != '\r') {
        if (n + 1 >= cap) {
            explicit_bzero(out, cap);
            fclose(f);
            return OCI_ERANGE;
        }

        out[n++] = (char) c;
    }

    err = ferror(f) ? errno : 0;
    fclose(f);

    out[n] = '\0';

    if (err != 0) {
        explicit_bzero(out, cap);
        errno = err;
        return OCI_EIO;
    }

    return n > 0 ? OCI_OK : OCI_EINVAL;
}


/* Why oci_config_read_secret() refused a file (its return code rc, read
 * buffer of 4 KiB), or NULL if it did not. */
static const char *
oci_config_secret_why(int rc)
{
    switch (rc) {

    case OCI_OK:
        return NULL;

    case OCI_EIO:
        return strerror(errno);

    case OCI_EINVAL:
        return "the first line is empty";

    default: /* OCI_ERANGE */
        return "the first line is longer than 4095 bytes";
    }
}


/* One named file: readable (and, for a secret, a non-empty first line of
 * at most 4 KiB).  OCI_OK or OCI_EIO with err filled. */
static int
oci_config_check_one(const oci_config_t *cf, const oci_registry_t *reg,
    const char *what, const oci_config_file_t *file, int secret, char *err,
    size_t errlen)
{
    char         buf[4096];
    const char  *why;
    FILE        *f;
    int          rc;

    if (file->path == NULL) {
        return OCI_OK;
    }

    why = NULL;

    if (secret) {
        rc = oci_config_read_secret(file->path, buf, sizeof(buf));
        explicit_bzero(buf, sizeof(buf));
        why = oci_config_secret_why(rc);

    } else {
        f = fopen(file->path, "re");

        if (f == NULL || getc(f) == EOF) {
            why = f == NULL ? strerror(errno)
                            : (ferror(f) ? strerror(errno) : "empty file");
        }

        if (f != NULL) {
            fclose(f);
        }
    }

    if (why == NULL) {
        return OCI_OK;
    }

    snprintf(err, errlen, "%s:%d: registry \"%s\": %s \"%s\": %s", cf->file,
             file->line, reg->name, what, file->path, why);

    return OCI_EIO;
}


static int
oci_config_check_creds(const oci_config_t *cf, const oci_registry_t *reg,
    const oci_credentials_t *creds, char *err, size_t errlen)
{
    return oci_config_check_one(cf, reg, "password_file",
                                &creds->password_file, 1, err, errlen)
           || oci_config_check_one(cf, reg, "token_file", &creds->token_file,
                                   1, err, errlen)
           ? OCI_EIO : OCI_OK;
}


int
oci_config_check_files(const oci_config_t *cf, char *err, size_t errlen)
{
    const oci_registry_t  *reg;
    size_t                 i, j;

    for (i = 0; i < cf->n_registries; i++) {
        reg = &cf->registries[i];

        for (j = 0; j < reg->n_endpoints; j++) {
            if (oci_config_check_creds(cf, reg, &reg->endpoint_creds[j], err,
                                       errlen)
                != OCI_OK)
            {
                return OCI_EIO;
            }
        }

        if (oci_config_check_creds(cf, reg, &reg->creds, err, errlen)
                != OCI_OK
            || oci_config_check_one(cf, reg, "ca_file", &reg->ca_file, 0,
                                    err, errlen)
            || oci_config_check_one(cf, reg, "client_cert",
                                    &reg->client_cert, 0, err, errlen)
            || oci_config_check_one(cf, reg, "client_key", &reg->client_key,
                                    0, err, errlen))
        {
            return OCI_EIO;
        }
    }

    return OCI_OK;
}


/* "host:port": a host name, an IPv4 address or a bracketed IPv6 one, and
 * a port from 1 to 65535.  1 if so. */
static int
oci_config_cluster_peer(const char *s)
{
    size_t       len, i;
    long         port;
    const char  *colon, *p;

    len = strlen(s);

    if (len == 0 || len > OCI_CLUSTER_PEER_MAX) {
        return 0;
    }

    colon = strrchr(s, ':');

    if (colon == NULL || colon == s || colon[1] == '\0'
        || strlen(colon + 1) > 5)
    {
        return 0;
    }

    port = 0;

    for (p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }

        port = port * 10 + (*p - '0');
    }

    if (port < 1 || port > 65535) {
        return 0;
    }

    if (s[0] == '[') {
        if (colon[-1] != ']' || colon - s < 4) {
            return 0;
        }

        for (p = s + 1; p < colon - 1; p++) {
            if (!(isxdigit((unsigned char) *p) || *p == ':' || *p == '.')) {
                return 0;
            }
        }

        return 1;
    }

    for (i = 0; s + i < colon; i++) {
        if (!(isalnum((unsigned char) s[i]) || s[i] == '.'
              || s[i] == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static int
oci_config_cluster(oci_config_ctx_t *ctx, config_t *lc, oci_config_t *cf)
{
    int                n, k, rc;
    size_t             i;
    long long          v;
    const char        *self, *replicate, *secret;
    config_setting_t  *group, *peers, *elem, *s;

    group = config_lookup(lc, "cluster");

    if (group == NULL) {
        return OCI_OK;
    }

    if (!config_setting_is_group(group)) {
        oci_config_error(ctx, group, "\"cluster\" must be a group { ... }");
        return OCI_EINVAL;
    }

    if (oci_config_check_keys(ctx, group, "cluster.",
                              oci_config_cluster_keys)
        != OCI_OK)
    {
        return OCI_EINVAL;
    }

    peers = config_setting_get_member(group, "peers");

    if (peers == NULL || !(config_setting_is_list(peers)
                           || config_setting_is_array(peers)))
    {
        oci_config_error(ctx, peers ? peers : group, "\"cluster.peers\" "
                         "must be a list of \"host:port\" strings, every "
                         "node's, this one's too");
        return OCI_EINVAL;
    }

    n = config_setting_length(peers);

    if (n < 1 || n > OCI_CLUSTER_PEERS_MAX) {
        oci_config_error(ctx, peers, "\"cluster.peers\" must name 1 to %d "
                         "nodes", OCI_CLUSTER_PEERS_MAX);
        return OCI_EINVAL;
    }

    cf->cluster_peers = calloc((size_t) n + 1, sizeof(char *));

    if (cf->cluster_peers == NULL) {
        oci_config_error(ctx, peers, "out of memory");
        return OCI_ENOMEM;
    }

    for (k = 0; k < n; k++) {
        elem = config_setting_get_elem(peers, (unsigned) k);

        if (config_setting_type(elem) != CONFIG_TYPE_STRING
            || !oci_config_cluster_peer(config_setting_get_string(elem)))
        {
            oci_config_error(ctx, elem, "\"cluster.peers\": each must be "
                             "\"host:port\" (the address that node's nginx "
                             "listens on)");
            return OCI_EINVAL;
        }

        for (i = 0; i < (size_t) k; i++) {
            if (strcmp(cf->cluster_peers[i],
                       config_setting_get_string(elem)) == 0)
            {
                oci_config_error(ctx, elem, "\"cluster.peers\": \"%s\" is "
                                 "named twice", cf->cluster_peers[i]);
                return OCI_EINVAL;
            }
        }

        cf->cluster_peers[k] = strdup(config_setting_get_string(elem));

        if (cf->cluster_peers[k] == NULL) {
            oci_config_error(ctx, elem, "out of memory");
            return OCI_ENOMEM;
        }

        cf->n_cluster_peers = (size_t) k + 1;
    }

    self = NULL;
    rc = oci_config_get_string(ctx, group, "self", &self);

    if (rc < 0) {
        return OCI_EINVAL;
    }

    if (rc == 0) {
        oci_config_error(ctx, group, "\"cluster.self\" must name this "
                         "node as it is written in \"cluster.peers\"");
        return OCI_EINVAL;
    }

    for (i = 0; i < cf->n_cluster_peers; i++) {
        if (strcmp(cf->cluster_peers[i], self) == 0) {
            break;
        }
    }

    if (i == cf->n_cluster_peers) {
        oci_config_error(ctx, config_setting_get_member(group, "self"),
                         "\"cluster.self\" \"%s\" is not in "
                         "\"cluster.peers\" (it must be written the same "
                         "way)", self);
        return OCI_EINVAL;
    }

    cf->cluster_self = i;

    secret = NULL;
    rc = oci_config_get_string(ctx, group, "secret_file", &secret);

    if (rc < 0) {
        return OCI_EINVAL;
    }

    if (rc == 0) {
        oci_config_error(ctx, group, "\"cluster.secret_file\" must "
                         "name the file of the secret the nodes share");
        return OCI_EINVAL;
    }

    s = config_setting_get_member(group, "secret_file");

    if (secret[0] == '\0') {
        oci_config_error(ctx, s, "\"cluster.secret_file\" is empty");
        return OCI_EINVAL;
    }

    cf->cluster_secret_file = strdup(secret);

    if (cf->cluster_secret_file == NULL) {
        oci_config_error(ctx, s, "out of memory");
        return OCI_ENOMEM;
    }

    cf->cluster_secret_line = config_setting_source_line(s);

    replicate = NULL;

    if (oci_config_get_string(ctx, group, "replicate", &replicate) < 0) {
        return OCI_EINVAL;
    }

    if (replicate == NULL || strcmp(replicate, "none") == 0) {
        cf->cluster_replicate = OCI_CLUSTER_REPLICATE_NONE;

    } else if (strcmp(replicate, "hot") == 0) {
        cf->cluster_replicate = OCI_CLUSTER_REPLICATE_HOT;

    } else {
        oci_config_error(ctx, config_setting_get_member(group, "replicate"),
                         "\"cluster.replicate\" must be \"none\" or "
                         "\"hot\"");
        return OCI_EINVAL;
    }

    v = cf->cluster_hot_requests;

    if (oci_config_get_int(ctx, group, "hot_requests", 1, 1000000, &v) < 0) {
        return OCI_EINVAL;
    }

    cf->cluster_hot_requests = (long) v;

    v = cf->cluster_hot_window;

    if (oci_config_get_int(ctx, group, "hot_window", 1, 86400, &v) < 0) {
        return OCI_EINVAL;
    }

    cf->cluster_hot_window = (long) v;

    v = (long long) cf->cluster_hot_table;

    if (oci_config_get_int(ctx, group, "hot_table", 64, 1048576, &v) < 0) {
        return OCI_EINVAL;
    }

    cf->cluster_hot_table = (size_t) v;

    v = (long long) cf->cluster_max_replicas;

    if (oci_config_get_int(ctx, group, "max_replicas", 1, 4096, &v) < 0) {
        return OCI_EINVAL;
    }

    cf->cluster_max_replicas = (size_t) v;

    v = cf->cluster_fail_timeout;

    if (oci_config_get_int(ctx, group, "fail_timeout", 1, 3600, &v) < 0) {
        return OCI_EINVAL;
    }

    cf->cluster_fail_timeout = (long) v;

    return OCI_OK;
}


int
oci_config_cluster_secret(const oci_config_t *cf, unsigned char *out,
    size_t cap, size_t *len, char *err, size_t errlen)
{
    int          rc;
    const char  *why;

    *len = 0;

    if (cf->cluster_secret_file == NULL) {
        snprintf(err, errlen, "%s:1: no cluster group", cf->file);
        return OCI_EINVAL;
    }

    rc = oci_config_read_secret(cf->cluster_secret_file, (char *) out, cap);
    why = oci_config_secret_why(rc);

    if (why == NULL && strlen((char *) out) < OCI_CLUSTER_SECRET_MIN) {
        why = "the secret must be at least 16 bytes";
        explicit_bzero(out, cap);
        rc = OCI_EINVAL;
    }

    if (why != NULL) {
        snprintf(err, errlen, "%s:%d: cluster.secret_file \"%s\": %s",
                 cf->file, cf->cluster_secret_line > 0
                           ? cf->cluster_secret_line : 1,
                 cf->cluster_secret_file, why);
        return rc;
    }

    *len = strlen((char *) out);

    return OCI_OK;
}
