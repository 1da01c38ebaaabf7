/*
 * ocimirrorctl's commands (see ctl.h): the table, and the commands of the
 * store: status, evict --dry-run, pins, pin, unpin, purge.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oci_image.h"
#include "oci_ref.h"
#include "oci_store.h"
#include "ctl.h"
#include "log.h"

typedef int (*ctl_pt)(ctl_call_t *call, int argc, char **argv);

typedef struct {
    const char  *name;
    ctl_pt       handler;
    int          admin;             /* changes the store or the process */
    const char  *usage;
} ctl_command_t;

static int ctl_status(ctl_call_t *call, int argc, char **argv);
static int ctl_evict(ctl_call_t *call, int argc, char **argv);
static int ctl_pins(ctl_call_t *call, int argc, char **argv);
static int ctl_pin(ctl_call_t *call, int argc, char **argv);
static int ctl_unpin(ctl_call_t *call, int argc, char **argv);
static int ctl_purge(ctl_call_t *call, int argc, char **argv);

static const ctl_command_t  ctl_commands[] = {
    { "status", ctl_status, 0, "status" },
    { "evict", ctl_evict, 0, "evict --dry-run [N]" },
    { "pins", ctl_pins, 0, "pins" },
    { "pin", ctl_pin, 1, "pin REF [PLATFORM...]" },
    { "unpin", ctl_unpin, 1, "unpin REF" },
    { "purge", ctl_purge, 1, "purge REF|DIGEST" },
    { "warm", ctl_warm, 1, "warm REF [PLATFORM...]" },
    { "warm-status", ctl_warm_status, 0, "warm-status [ID]" },
    { "scrub", ctl_scrub, 1, "scrub [--deep] [REF]" },
    { "scrub-status", ctl_scrub_status, 0, "scrub-status" },
};

static ctl_env_t  ctl_env;


void
ctl_setup(const ctl_env_t *env)
{
    ctl_env = *env;
}


void
ctl_out(ctl_call_t *call, const char *fmt, ...)
{
    oci_msg_t  m;
    va_list    ap;

    oci_msg_init(&m, OCI_MSG_OUT, call->id);

    va_start(ap, fmt);
    vsnprintf(m.text, sizeof(m.text), fmt, ap);
    va_end(ap);

    conn_send(call->conn, &m);
}


static void
ctl_end(ctl_call_t *call, int status)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_END, call->id);
    m.status = status;
    conn_send(call->conn, &m);
}


void
ctl_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const ctl_command_t  *cmd;
    ctl_call_t            call;
    char                  text[OCI_IPC_TEXT_MAX];
    char                 *argv[CTL_ARGS_MAX + 1], *p, *save;
    size_t                i;
    long                  uid;
    int                   argc;

    call.env = &ctl_env;
    call.conn = c;
    call.id = m->id;

    uid = conn_peer_uid(c);
    call.admin = uid == 0 || uid == (long) geteuid();

    snprintf(text, sizeof(text), "%s", m->text);
    argc = 0;

    for (p = strtok_r(text, " ", &save); p != NULL;
         p = strtok_r(NULL, " ", &save))
    {
        if (argc == CTL_ARGS_MAX) {
            ctl_out(&call, "too many arguments (at most %d)", CTL_ARGS_MAX);
            ctl_end(&call, CTL_USAGE);
            return;
        }

        argv[argc++] = p;
    }

    argv[argc] = NULL;

    if (argc == 0) {
        ctl_end(&call, CTL_USAGE);
        return;
    }

    for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++) {
        if (strcmp(ctl_commands[i].name, argv[0]) == 0) {
            break;
        }
    }

    if (i == sizeof(ctl_commands) / sizeof(ctl_commands[0])) {
        ctl_out(&call, "unknown command \"%s\"; the commands are:", argv[0]);

        for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
        {
            ctl_out(&call, "  %s", ctl_commands[i].usage);
        }

        ctl_end(&call, CTL_USAGE);
        return;
    }

    cmd = &ctl_commands[i];

    if (cmd->admin && !call.admin) {
        ctl_out(&call, "\"%s\" changes the mirror: run it as root or as the "
                "fetcher's user (uid %ld)", cmd->name, (long) geteuid());
        ctl_end(&call, CTL_FAIL);
        return;
    }

    /* what changes the mirror is worth the log; polls are not */
    if (cmd->admin) {
        log_info("ocimirrorctl (uid %ld): %s", uid, m->text);

    } else {
        log_debug("ocimirrorctl (uid %ld): %s", uid, m->text);
    }

    ctl_end(&call, cmd->handler(&call, argc, argv));
}


const char *
ctl_bytes(long long n, char *buf, size_t cap)
{
    static const char *const  units[] = { "B", "KiB", "MiB", "GiB", "TiB",
                                          "PiB" };
    double                    v;
    size_t                    u;

    if (n < 1024) {
        snprintf(buf, cap, "%lld B", n);
        return buf;
    }

    v = (double) n;

    for (u = 0; v >= 1024 && u < sizeof(units) / sizeof(units[0]) - 1; u++) {
        v /= 1024;
    }

    snprintf(buf, cap, "%.1f %s", v, units[u]);

    return buf;
}


const char *
ctl_age(long long s, char *buf, size_t cap)
{
    if (s >= 86400) {
        snprintf(buf, cap, "%lldd %lldh", s / 86400, s % 86400 / 3600);

    } else if (s >= 3600) {
        snprintf(buf, cap, "%lldh %lldm", s / 3600, s % 3600 / 60);

    } else if (s >= 60) {
        snprintf(buf, cap, "%lldm", s / 60);

    } else {
        snprintf(buf, cap, "%llds", s < 0 ? 0 : s);
    }

    return buf;
}


static int
ctl_status(ctl_call_t *call, int argc, char **argv)
{
    const oci_config_t  *cf = call->env->jobs->cf;
    stats_census_t       census;
    stats_store_t        st;
    char                 a[32], b[32], d[32], line[512];
    size_t               i, len;

    if (argc != 1) {
        ctl_out(call, "usage: status");
        return CTL_USAGE;
    }

    cache_state(call->env->cache, &st);

    ctl_out(call, "store       %s", cf->store_path);

    ctl_out(call, "used        %s of %s (%.1f%%), %llu files%s%s",
            ctl_bytes(st.bytes, a, sizeof(a)), ctl_bytes(st.max, b, sizeof(b)),
            st.max > 0 ? 100.0 * (double) st.bytes / (double) st.max : 0.0,
            st.files, st.reserved > 0 ? ", reserved for downloads " : "",
            st.reserved > 0 ? ctl_bytes(st.reserved, d, sizeof(d)) : "");

    ctl_out(call, "watermarks  high %s (%d%%), low %s (%d%%)",
            ctl_bytes(st.high, a, sizeof(a)), cf->store_high_watermark,
            ctl_bytes(st.low, b, sizeof(b)), cf->store_low_watermark);

    ctl_out(call, "disk        %s free, min_free %s%s",
            ctl_bytes(st.fs_free, a, sizeof(a)),
            ctl_bytes(st.min_free, b, sizeof(b)),
            st.fs_free < st.min_free ? " (below: evicting)" : "");

    ctl_out(call, "state       %s",
            st.loading ? "loading the index"
            : st.evicting ? "evicting"
            : st.bytes + st.reserved > st.high ? "above the high watermark"
            : "ok");

    if (st.load_seconds >= 0) {
        ctl_out(call, "index       %llu files, loaded in %.3f s", st.files,
                st.load_seconds);
    }

    ctl_out(call, "evicted     %llu files, %s; %llu times on a full disk",
            st.evictions,
            ctl_bytes((long long) st.evicted_bytes, a, sizeof(a)),
            st.emergencies);

    ctl_out(call, "pinned      %zu pin%s hold %llu files, %s", st.pins,
            st.pins == 1 ? "" : "s", st.pinned_files,
            ctl_bytes(st.pinned_bytes, a, sizeof(a)));

    memset(&census, 0, sizeof(census));
    jobs_census(call->env->jobs, &census);

    len = 0;
    line[0] = '\0';

    for (i = 0; i < census.n && len < sizeof(line); i++) {
        len += (size_t) snprintf(line + len, sizeof(line) - len, "%s%s %lu",
                                 i > 0 ? ", " : " (", census.kind[i],
                                 census.jobs[i]);
    }

    if (census.n > 0 && len < sizeof(line)) {
        snprintf(line + len, sizeof(line) - len, ")");
    }

    {
        unsigned long  total = 0;

        for (i = 0; i < census.n; i++) {
            total += census.jobs[i];
        }

        ctl_out(call, "jobs        %lu in flight%s, %lu client requests "
                "waiting", total, line, census.waiters);
    }

    ctl_warm_summary(call);
    ctl_scrub_summary(call);

    return CTL_OK;
}


typedef struct {
    ctl_call_t  *call;
    time_t       now;
    size_t       listed;
    size_t       show;
    long long    need;
    long long    bytes;
    size_t       files;
} ctl_next_t;


static void
ctl_next_each(const char *path, long long bytes, time_t used, void *data)
{
    ctl_next_t  *n = data;
    char         a[32], b[32];

    if (n->listed < n->show) {
        ctl_out(n->call, "  %-10s unused %-8s %s",
                ctl_bytes(bytes, a, sizeof(a)),
                ctl_age((long long) (n->now - used), b, sizeof(b)), path);
        n->listed++;
    }

    if (n->bytes < n->need) {
        n->bytes += bytes;
        n->files++;
    }
}


static int
ctl_evict(ctl_call_t *call, int argc, char **argv)
{
    stats_store_t   st;
    ctl_next_t      n;
    char           *end;
    char            a[32];
    long            show;

    show = 20;

    if (argc < 2 || strcmp(argv[1], "--dry-run") != 0 || argc > 3) {
        ctl_out(call, "usage: evict --dry-run [N]  (eviction itself runs "
                "on its own, from the high to the low watermark)");
        return CTL_USAGE;
    }

    if (argc == 3) {
        errno = 0;
        show = strtol(argv[2], &end, 10);

        if (errno != 0 || *end != '\0' || show < 0 || show > 100000) {
            ctl_out(call, "N must be a count from 0 to 100000");
            return CTL_USAGE;
        }
    }

    cache_state(call->env->cache, &st);

    memset(&n, 0, sizeof(n));
    n.call = call;
    n.now = time(NULL);
    n.show = (size_t) show;
    n.need = st.bytes + st.reserved > st.high ? st.bytes + st.reserved - st.low
                                              : 0;

    if (st.fs_free < st.min_free && st.min_free - st.fs_free > n.need) {
        n.need = st.min_free - st.fs_free;
    }

    ctl_out(call, "next to go, least recently used first:");

    cache_next(call->env->cache, st.files, ctl_next_each, &n);

    if (n.listed == 0) {
        ctl_out(call, "  (nothing: every file is pinned or was used in the "
                "last %d s)", CACHE_GRACE);
    }

    if (n.need > 0) {
        ctl_out(call, "eviction is due: %zu files, %s, to reach the low "
                "watermark", n.files, ctl_bytes(n.bytes, a, sizeof(a)));

    } else {
        ctl_out(call, "no eviction is due: the store is under the high "
                "watermark");
    }

    return CTL_OK;
}


static void
ctl_spec_line(ctl_call_t *call, const oci_image_spec_t *spec)
{
    char    ref[OCI_PATH_MAX], plat[512];
    size_t  i, len;

    oci_imageref_format(&spec->ref, ref, sizeof(ref));

    len = 0;
    plat[0] = '\0';

    for (i = 0; i < spec->n_platforms && len < sizeof(plat); i++) {
        len += (size_t) snprintf(plat + len, sizeof(plat) - len, "%s%s",
                                 i > 0 ? "," : "", spec->platforms[i]);
    }

    ctl_out(call, "  %s  %s", ref, len > 0 ? plat : "(every platform)");
}


static int
ctl_pins(ctl_call_t *call, int argc, char **argv)
{
    const oci_image_spec_t  *specs;
    stats_store_t            st;
    size_t                   i, n;
    char                     a[32];

    if (argc != 1) {
        ctl_out(call, "usage: pins");
        return CTL_USAGE;
    }

    n = cache_pin_list(call->env->cache, &specs);
    cache_state(call->env->cache, &st);

    ctl_out(call, "%zu pin%s, holding %llu stored files, %s", n,
            n == 1 ? "" : "s", st.pinned_files,
            ctl_bytes(st.pinned_bytes, a, sizeof(a)));

    for (i = 0; i < n; i++) {
        ctl_spec_line(call, &specs[i]);
    }

    return CTL_OK;
}


/* REF [PLATFORM...] into spec (platforms pointing into argv). */
static int
ctl_spec(ctl_call_t *call, int argc, char **argv, int globs,
    oci_image_spec_t *spec)
{
    const char  *why;
    int          i;

    memset(spec, 0, sizeof(oci_image_spec_t));

    if (oci_imageref_parse(argv[0], strlen(argv[0]), globs, &spec->ref, &why)
        != OCI_OK)
    {
        ctl_out(call, "\"%s\": %s", argv[0], why);
        return CTL_USAGE;
    }

    for (i = 1; i < argc; i++) {
        if (!oci_platform_valid(argv[i])) {
            ctl_out(call, "\"%s\": a platform is \"os/arch\" or "
                    "\"os/arch/variant\" in lower case", argv[i]);
            return CTL_USAGE;
        }
    }

    spec->platforms = argc > 1 ? &argv[1] : NULL;
    spec->n_platforms = (size_t) (argc - 1);

    return CTL_OK;
}


/* The registry of the config named by ref, with its library prefix
 * applied to ref's name: NULL (after an OUT) if there is none. */
static const oci_registry_t *
ctl_registry(ctl_call_t *call, oci_imageref_t *ref)
{
    const oci_config_t  *cf = call->env->jobs->cf;
    size_t               i;

    if (strpbrk(ref->registry, "*?") != NULL) {
        return NULL;
    }

    for (i = 0; i < cf->n_registries; i++) {
        if (strcmp(cf->registries[i].name, ref->registry) != 0) {
            continue;
        }

        if (cf->registries[i].library_prefix && strchr(ref->name, '/') == NULL
            && strlen(ref->name) + 8 < sizeof(ref->name))
        {
            memmove(ref->name + 8, ref->name, strlen(ref->name) + 1);
            memcpy(ref->name, "library/", 8);
        }

        return &cf->registries[i];
    }

    ctl_out(call, "no registry \"%s\" in the config", ref->registry);

    return NULL;
}


/* A pin's REF [PLATFORM...]: spec (globs allowed; a named registry must
 * be configured, its library prefix applied) and its text in ref. */
static int
ctl_pin_spec(ctl_call_t *call, int argc, char **argv, oci_image_spec_t *spec,
    char *ref, size_t cap)
{
    int  rc;

    rc = ctl_spec(call, argc, argv, 1, spec);
    if (rc != CTL_OK) {
        return rc;
    }

    if (strpbrk(spec->ref.registry, "*?") == NULL
        && ctl_registry(call, &spec->ref) == NULL)
    {
        return CTL_FAIL;
    }

    oci_imageref_format(&spec->ref, ref, cap);

    return CTL_OK;
}


static int
ctl_pin(ctl_call_t *call, int argc, char **argv)
{
    oci_image_spec_t  spec;
    char              ref[OCI_PATH_MAX];
    int               rc;

    if (argc < 2) {
        ctl_out(call, "usage: pin REF [PLATFORM...]  (REF may hold globs: "
                "ghcr.io/org/*:*)");
        return CTL_USAGE;
    }

    rc = ctl_pin_spec(call, argc - 1, argv + 1, &spec, ref, sizeof(ref));
    if (rc != CTL_OK) {
        return rc;
    }

    switch (cache_pin(call->env->cache, &spec)) {

    case OCI_OK:
        ctl_out(call, "pinned %s until the fetcher restarts (store.pin in "
                "the config keeps it for good)", ref);
        return CTL_OK;

    case OCI_EINVAL:
        ctl_out(call, "%s is pinned already", ref);
        return CTL_FAIL;

    case OCI_ERANGE:
        ctl_out(call, "there are %d pins already, the most there may be",
                OCI_PINS_MAX);
        return CTL_FAIL;

    default:
        ctl_out(call, "out of memory");
        return CTL_FAIL;
    }
}


static int
ctl_unpin(ctl_call_t *call, int argc, char **argv)
{
    oci_image_spec_t  spec;
    char              ref[OCI_PATH_MAX];
    int               rc;

    if (argc != 2) {
        ctl_out(call, "usage: unpin REF  (as \"pins\" lists it)");
        return CTL_USAGE;
    }

    rc = ctl_pin_spec(call, 1, argv + 1, &spec, ref, sizeof(ref));
    if (rc != CTL_OK) {
        return rc;
    }

    if (cache_unpin(call->env->cache, &spec.ref) != OCI_OK) {
        ctl_out(call, "%s is not pinned; \"pins\" lists the pins", ref);
        return CTL_FAIL;
    }

    ctl_out(call, "unpinned %s until the fetcher restarts", ref);

    return CTL_OK;
}


int
ctl_resolve(ctl_call_t *call, const char *text, oci_imageref_t *ref,
    char hex[OCI_SHA256_HEX_LEN + 1])
{
    oci_tag_record_t   rec;
    const char        *why, *store;
    char               path[OCI_PATH_MAX];
    int                rc;

    store = call->env->jobs->cf->store_path;

    if (oci_imageref_parse(text, strlen(text), 0, ref, &why) != OCI_OK) {
        ctl_out(call, "\"%s\": %s", text, why);
        return CTL_USAGE;
    }

    if (ctl_registry(call, ref) == NULL) {
        return CTL_FAIL;
    }

    if (ref->digest[0] != '\0') {
        oci_digest_parse(ref->digest, strlen(ref->digest), hex);

    } else {
        rc = oci_tag_record_read(store, ref->registry, ref->name, ref->tag,
                                 &rec);
        if (rc != OCI_OK) {
            ctl_out(call, "%s/%s:%s is not in the store (no tag record)",
                    ref->registry, ref->name, ref->tag);
            return CTL_FAIL;
        }

        oci_digest_parse(rec.digest, strlen(rec.digest), hex);
    }

    if (oci_store_blob_path(store, hex, path, sizeof(path)) != OCI_OK
        || access(path, F_OK) != 0)
    {
        ctl_out(call, "the manifest sha256:%s of %s is not in the store", hex,
                text);
        return CTL_FAIL;
    }

    return OCI_OK;
}


typedef struct {
    ctl_call_t  *call;
    size_t       files;
    size_t       pinned;
    long long    bytes;
} ctl_purge_t;


static void
ctl_purge_file(ctl_purge_t *p, const char *rel)
{
    long long  bytes;

    switch (cache_purge(p->call->env->cache, rel, &bytes)) {

    case OCI_OK:
        p->files++;
        p->bytes += bytes;
        break;

    case OCI_EINVAL:
        p->pinned++;
        break;

    case OCI_EIO:
        ctl_out(p->call, "cannot remove %s (see the fetcher's log)", rel);
        break;

    default:
        break;
    }
}


static void
ctl_purge_digest(ctl_purge_t *p, const char *digest)
{
    char  hex[OCI_SHA256_HEX_LEN + 1], rel[96];

    if (oci_digest_parse(digest, strlen(digest), hex) == OCI_OK) {
        snprintf(rel, sizeof(rel), "sha256/%.2s/%s", hex, hex);
        ctl_purge_file(p, rel);
    }
}


/* The image of manifest hex: its blobs, then itself; an index's stored
 * children the same way (one level: an index of indexes is not an
 * image). */
static void
ctl_purge_image(ctl_purge_t *p, const char *hex, int depth)
{
    const char   *store = p->call->env->jobs->cf->store_path;
    oci_image_t   img;
    char          child[OCI_SHA256_HEX_LEN + 1];
    size_t        i;

    if (oci_image_read(store, hex, &img) == OCI_OK) {
        if (img.kind == OCI_IMAGE_MANIFEST) {
            ctl_purge_digest(p, img.config.digest);
        }

        for (i = 0; i < img.n; i++) {
            if (img.kind == OCI_IMAGE_INDEX && depth == 0) {
                if (oci_digest_parse(img.items[i].digest,
                                     strlen(img.items[i].digest), child)
                    == OCI_OK)
                {
                    ctl_purge_image(p, child, 1);
                }

            } else if (img.kind == OCI_IMAGE_MANIFEST) {
                ctl_purge_digest(p, img.items[i].digest);
            }
        }

        oci_image_free(&img);
    }

    {
        char  rel[96];

        snprintf(rel, sizeof(rel), "sha256/%.2s/%s", hex, hex);
        ctl_purge_file(p, rel);
    }
}


static int
ctl_purge(ctl_call_t *call, int argc, char **argv)
{
    oci_imageref_t   ref;
    ctl_purge_t      p;
    char             hex[OCI_SHA256_HEX_LEN + 1], rel[OCI_PATH_MAX];
    char             a[32];
    int              rc;

    if (argc != 2) {
        ctl_out(call, "usage: purge REF|DIGEST  (an image: its tag record, "
                "manifests and blobs; a digest: that file)");
        return CTL_USAGE;
    }

    memset(&p, 0, sizeof(p));
    p.call = call;

    if (strncmp(argv[1], "sha256:", 7) == 0) {
        if (oci_digest_parse(argv[1], strlen(argv[1]), hex) != OCI_OK) {
            ctl_out(call, "\"%s\": a digest is \"sha256:\" and 64 lower-case "
                    "hex digits", argv[1]);
            return CTL_USAGE;
        }

        ctl_purge_digest(&p, argv[1]);

    } else {
        rc = ctl_resolve(call, argv[1], &ref, hex);
        if (rc != OCI_OK) {
            return rc;
        }

        /* the tag record first: no new pull starts from it */
        if (ref.digest[0] == '\0') {
            snprintf(rel, sizeof(rel), "tags/%s/%s/@%s", ref.registry,
                     ref.name, ref.tag);
            ctl_purge_file(&p, rel);
        }

        ctl_purge_image(&p, hex, 0);
    }

    if (p.pinned > 0) {
        ctl_out(call, "%zu file%s held by a pin stay%s (\"unpin\" first)",
                p.pinned, p.pinned == 1 ? "" : "s",
                p.pinned == 1 ? "s" : "");
    }

    if (p.files == 0) {
        ctl_out(call, "nothing to purge: %s is not in the store", argv[1]);
        return p.pinned > 0 ? CTL_FAIL : CTL_OK;
    }

    ctl_out(call, "purged %zu file%s, %s; a later pull fetches them again",
            p.files, p.files == 1 ? "" : "s",
            ctl_bytes(p.bytes, a, sizeof(a)));

    return CTL_OK;
}
