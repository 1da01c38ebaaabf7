/*
 * Unit tests for src/fetcher/warm.c: the warm_file's lines (references,
 * platforms, comments, the config's registries and library prefix), the
 * file read again when it changes, warm_max, and through the fakes of
 * fetcher_fakes.h the rounds: a tag resolved by the mirror's own job at
 * prefetch priority, an index's platforms, blobs queued within WARM_JOBS,
 * stored ones skipped, a client joining a warm download, a failure
 * retried at the next interval.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "oci_image.h"
#include "oci_ref.h"
#include "fetcher_fakes.h"
#include "warm.h"


/*
 * Lines.
 */

typedef struct {
    char           dir[64];
    oci_config_t  *cf;
} line_env_t;


static int
line_setup(void **state)
{
    line_env_t  *t;
    char         file[128], err[512];
    FILE        *fp;

    t = calloc(1, sizeof(line_env_t));
    assert_non_null(t);

    snprintf(t->dir, sizeof(t->dir), "/tmp/ocitest-warm.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(file, sizeof(file), "%s/ocimirror.cfg", t->dir);

    fp = fopen(file, "w");
    assert_non_null(fp);
    fprintf(fp,
            "store = { path = \"%s/store\"; };\n"
            "registries = (\n"
            "  { name = \"docker.io\"; endpoints = ( \"https://d.test\" ); },\n"
            "  { name = \"ghcr.io\"; endpoints = ( \"https://g.test\" ); }\n"
            ");\n", t->dir);
    fclose(fp);

    err[0] = '\0';
    if (oci_config_load(file, &t->cf, err, sizeof(err)) != OCI_OK) {
        fail_msg("config: %s", err);
    }

    *state = t;
    return 0;
}


static int
line_teardown(void **state)
{
    line_env_t  *t = *state;

    oci_config_destroy(t->cf);
    test_rm_rf(t->dir);
    free(t);

    return 0;
}


/* Parse text as a warm_file line: its return code. */
static int
parse(line_env_t *t, const char *text, warm_spec_t *spec, char *err,
    size_t cap)
{
    char  line[WARM_LINE_MAX];

    snprintf(line, sizeof(line), "%s", text);
    err[0] = '\0';

    return warm_parse_line(t->cf, line, spec, err, cap);
}


static void
test_line_valid(void **state)
{
    line_env_t   *t = *state;
    warm_spec_t   spec;
    char          err[512];

    /* docker.io's one-part names gain "library/", as in the config */
    assert_int_equal(parse(t, "docker.io/nginx:1.27 linux/amd64 "
                           "linux/arm64/v8\n", &spec, err, sizeof(err)), 1);
    assert_string_equal(spec.ref.registry, "docker.io");
    assert_string_equal(spec.ref.name, "library/nginx");
    assert_string_equal(spec.ref.tag, "1.27");
    assert_string_equal(spec.ref.digest, "");
    assert_int_equal(spec.n_platforms, 2);
    assert_string_equal(spec.platforms[0], "linux/amd64");
    assert_string_equal(spec.platforms[1], "linux/arm64/v8");
    assert_ptr_equal(spec.reg, oci_config_registry(t->cf, "docker.io", 9));

    /* tabs, CR LF, a comment after the words; no tag: "latest" */
    assert_int_equal(parse(t, "\t ghcr.io/org/app\tlinux/amd64 # why\r\n",
                           &spec, err, sizeof(err)), 1);
    assert_string_equal(spec.ref.name, "org/app");
    assert_string_equal(spec.ref.tag, "latest");
    assert_int_equal(spec.n_platforms, 1);

    /* a digest; two parts keep their name; ghcr.io has no prefix */
    assert_int_equal(parse(t, "ghcr.io/app@sha256:"
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                           "aaaaaaaaaaaaaaaa", &spec, err, sizeof(err)), 1);
    assert_string_equal(spec.ref.name, "app");
    assert_string_equal(spec.ref.tag, "");
    assert_memory_equal(spec.ref.digest, "sha256:aaaa", 11);
    assert_int_equal(spec.n_platforms, 0);

    assert_int_equal(parse(t, "docker.io/grafana/grafana:11", &spec, err,
                           sizeof(err)), 1);
    assert_string_equal(spec.ref.name, "grafana/grafana");

    /* nothing to take */
    assert_int_equal(parse(t, "", &spec, err, sizeof(err)), 0);
    assert_int_equal(parse(t, "   \t\r\n", &spec, err, sizeof(err)), 0);
    assert_int_equal(parse(t, "# docker.io/nginx:1", &spec, err,
                           sizeof(err)), 0);
    assert_int_equal(parse(t, "   #", &spec, err, sizeof(err)), 0);
}


static void
test_line_invalid(void **state)
{
    line_env_t   *t = *state;
    warm_spec_t   spec;
    char          err[512], line[2048];
    size_t        i, len;

    assert_int_equal(parse(t, "quay.io/org/app:1", &spec, err, sizeof(err)),
                     OCI_ENOENT);
    assert_string_equal(err, "\"quay.io/org/app:1\": no registry "
                        "\"quay.io\" in the config");

    assert_int_equal(parse(t, "nginx:1.27", &spec, err, sizeof(err)),
                     OCI_EINVAL);
    assert_non_null(strstr(err, "starts with its registry"));

    assert_int_equal(parse(t, "docker.io/Nginx:1", &spec, err, sizeof(err)),
                     OCI_EINVAL);
    assert_non_null(strstr(err, "lower-case"));

    /* no globs in a warm list */
    assert_int_equal(parse(t, "docker.io/nginx:*", &spec, err, sizeof(err)),
                     OCI_EINVAL);
    assert_non_null(strstr(err, "globs"));

    assert_int_equal(parse(t, "docker.io/nginx:1 linux", &spec, err,
                           sizeof(err)), OCI_EINVAL);
    assert_string_equal(err, "\"linux\": a platform is \"os/arch\" or "
                        "\"os/arch/variant\" in lower case");

    assert_int_equal(parse(t, "docker.io/nginx:1 Linux/amd64", &spec, err,
                           sizeof(err)), OCI_EINVAL);

    /* WARM_PLATFORMS platforms at most */
    len = (size_t) snprintf(line, sizeof(line), "docker.io/nginx:1");

    for (i = 0; i < WARM_PLATFORMS; i++) {
        len += (size_t) snprintf(line + len, sizeof(line) - len,
                                 " linux/arch%zu", i);
    }

    assert_int_equal(parse(t, line, &spec, err, sizeof(err)), 1);
    assert_int_equal(spec.n_platforms, WARM_PLATFORMS);

    snprintf(line + len, sizeof(line) - len, " linux/one-more");
    assert_int_equal(parse(t, line, &spec, err, sizeof(err)), OCI_ERANGE);
    assert_non_null(strstr(err, "more than 16 platforms"));
}


/*
 * The lists, through the fakes.
 */

typedef struct {
    fake_env_t  *e;
    warm_t      *w;
    char         file[192];
} warm_env_t;


static time_t  test_now = 1000;


static time_t
test_clock(void)
{
    return test_now;
}


/* ops that never finish a tag: the lists alone are tested */
static int
idle_resolve(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *tag)
{
    return 1;
}


static int
idle_start(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *digest, int manifest)
{
    return 1;
}


static int
idle_running(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *digest, int manifest, long long *done)
{
    *done = 0;
    return 1;
}


static const warm_ops_t  idle_ops = {
    idle_resolve, idle_resolve, idle_start, idle_running
};


static void
write_file(const char *path, const char *text)
{
    FILE  *fp;

    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}


/* The fake env with a warm_file path (not written yet), warm_max images
 * and prefetch off (its jobs would mix with the rounds'). */
static warm_env_t *
env_create(void **state, long warm_max)
{
    warm_env_t  *t;

    t = calloc(1, sizeof(warm_env_t));
    assert_non_null(t);

    fake_env_setup((void **) &t->e);
    t->e->cf->prefetch = 0;
    t->e->cf->warm_max = warm_max;
    snprintf(t->file, sizeof(t->file), "%s/warm.list", t->e->dir);

    test_now = 1000;
    *state = t;

    return t;
}


static int
warm_setup(void **state)
{
    warm_env_t  *t;

    t = env_create(state, 1000);
    t->w = warm_create(t->e->cf, t->e->jobs, &dispatch_warm_ops);
    assert_non_null(t->w);
    warm_set_clock(t->w, test_clock);

    return 0;
}


static int
warm_teardown(void **state)
{
    warm_env_t  *t = *state;

    warm_destroy(t->w);
    fake_env_teardown((void **) &t->e);
    free(t);

    return 0;
}


/* The images as "#id state ref blobs_done/blobs bytes_done/bytes" lines,
 * as warm-status writes them. */
typedef struct {
    char    text[4096];
    size_t  len;
} listing_t;


static void
list_each(const warm_info_t *info, void *data)
{
    listing_t  *l = data;

    l->len += (size_t) snprintf(l->text + l->len, sizeof(l->text) - l->len,
                                "#%u %s %s %zu/%zu %lld/%lld\n", info->id,
                                warm_state_name(info->state), info->ref,
                                info->blobs_done, info->blobs,
                                info->bytes_done, info->bytes);
}


static const char *
listing(warm_t *w)
{
    static listing_t  l;

    memset(&l, 0, sizeof(l));
    warm_list(w, list_each, &l);

    return l.text;
}


static void
blob_each(const char *digest, warm_blob_state_t st, long long done,
    long long size, void *data)
{
    listing_t  *l = data;

    l->len += (size_t) snprintf(l->text + l->len, sizeof(l->text) - l->len,
                                "%.13s %s %lld/%lld\n", digest,
                                warm_blob_state_name(st), done, size);
}


static const char *
blob_listing(warm_t *w, unsigned id)
{
    static listing_t  l;

    memset(&l, 0, sizeof(l));
    assert_int_equal(warm_blobs(w, id, blob_each, &l), OCI_OK);

    return l.text;
}


static void
add(warm_env_t *t, const char *ref, const char *platform, unsigned want_id)
{
    warm_spec_t   spec;
    char          err[512], *p[1];
    unsigned      id;

    p[0] = (char *) platform;
    assert_int_equal(warm_spec_parse(t->e->cf, ref, p, platform ? 1 : 0,
                                     &spec, err, sizeof(err)), OCI_OK);
    assert_int_equal(warm_add(t->w, &spec, &id), OCI_OK);
    assert_int_equal(id, want_id);
}


static void
test_file_read_and_changed(void **state)
{
    warm_env_t    *t;
    stats_warm_t   st;

    t = env_create(state, 1000);
    t->e->cf->warm_file = strdup(t->file);
    assert_non_null(t->e->cf->warm_file);

    write_file(t->file,
               "# the images of the team\n"
               "\n"
               FAKE_REG "/a/b:v1 linux/amd64\n"
               "nope.test/x:1\n"
               FAKE_SOLO "/c:2   # a comment\n"
               FAKE_REG "/a/b:v1\n"
               FAKE_REG "/Bad:1\n");

    t->w = warm_create(t->e->cf, t->e->jobs, &idle_ops);
    assert_non_null(t->w);
    warm_set_clock(t->w, test_clock);

    /* read at once: the bad lines and the repeat skipped */
    assert_string_equal(listing(t->w),
                        "#1 resolving " FAKE_REG "/a/b:v1 0/0 0/0\n"
                        "#2 resolving " FAKE_SOLO "/c:2 0/0 0/0\n");
    warm_state(t->w, &st);
    assert_int_equal(st.bad_lines, 3);
    assert_int_equal(st.pending, 2);

    /* unchanged: nothing moves */
    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 resolving " FAKE_REG "/a/b:v1 0/0 0/0\n"
                        "#2 resolving " FAKE_SOLO "/c:2 0/0 0/0\n");

    /* changed: c:2 leaves, d:3 comes, a/b keeps its id */
    write_file(t->file, FAKE_REG "/a/b:v1 linux/amd64\n"
                        FAKE_REG "/d:3\n"
                        "\n\n\n");
    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 resolving " FAKE_REG "/a/b:v1 0/0 0/0\n"
                        "#3 resolving " FAKE_REG "/d:3 0/0 0/0\n");
    warm_state(t->w, &st);
    assert_int_equal(st.bad_lines, 0);

    /* an image ocimirrorctl named too stays when the file drops it */
    add(t, FAKE_REG "/d:3", NULL, 3);

    /* gone: an empty list (logged once) */
    assert_int_equal(unlink(t->file), 0);
    warm_tick(t->w);
    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#3 resolving " FAKE_REG "/d:3 0/0 0/0\n");

    /* back */
    write_file(t->file, FAKE_SOLO "/e:1\n");
    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#3 resolving " FAKE_REG "/d:3 0/0 0/0\n"
                        "#4 resolving " FAKE_SOLO "/e:1 0/0 0/0\n");

    warm_teardown(state);
}


/* A line past WARM_LINE_MAX is one bad line, not several; the next line
 * is read as usual, and so is a last line without its line feed. */
static void
test_file_long_line(void **state)
{
    warm_env_t    *t;
    stats_warm_t   st;
    char          *text;
    size_t         len;

    t = env_create(state, 1000);
    t->e->cf->warm_file = strdup(t->file);
    assert_non_null(t->e->cf->warm_file);

    len = WARM_LINE_MAX + 1000;
    text = malloc(len + 64);
    assert_non_null(text);
    memset(text, 'a', len);
    snprintf(text + len, 64, "\n" FAKE_REG "/a:1\n" FAKE_SOLO "/b:2");
    write_file(t->file, text);
    free(text);

    t->w = warm_create(t->e->cf, t->e->jobs, &idle_ops);
    assert_non_null(t->w);

    assert_string_equal(listing(t->w),
                        "#1 resolving " FAKE_REG "/a:1 0/0 0/0\n"
                        "#2 resolving " FAKE_SOLO "/b:2 0/0 0/0\n");
    warm_state(t->w, &st);
    assert_int_equal(st.bad_lines, 1);

    warm_teardown(state);
}


static void
test_warm_max(void **state)
{
    warm_env_t    *t;
    warm_spec_t    spec;
    stats_warm_t   st;
    char           err[512];
    unsigned       id;

    t = env_create(state, 2);
    t->e->cf->warm_file = strdup(t->file);
    assert_non_null(t->e->cf->warm_file);

    /* the file's third image is one too many */
    write_file(t->file, FAKE_REG "/a:1\n" FAKE_REG "/b:1\n" FAKE_REG "/c:1\n");

    t->w = warm_create(t->e->cf, t->e->jobs, &idle_ops);
    assert_non_null(t->w);
    warm_set_clock(t->w, test_clock);

    assert_string_equal(listing(t->w),
                        "#1 resolving " FAKE_REG "/a:1 0/0 0/0\n"
                        "#2 resolving " FAKE_REG "/b:1 0/0 0/0\n");
    warm_state(t->w, &st);
    assert_true(st.refused == 1);

    /* so is ocimirrorctl's, counted */
    assert_int_equal(warm_spec_parse(t->e->cf, FAKE_SOLO "/x:1", NULL, 0,
                                     &spec, err, sizeof(err)), OCI_OK);
    assert_int_equal(warm_add(t->w, &spec, &id), OCI_ERANGE);
    warm_state(t->w, &st);
    assert_true(st.refused == 2);

    /* one listed already is no new image: its id, again */
    assert_int_equal(warm_spec_parse(t->e->cf, FAKE_REG "/b:1", NULL, 0,
                                     &spec, err, sizeof(err)), OCI_OK);
    assert_int_equal(warm_add(t->w, &spec, &id), OCI_OK);
    assert_int_equal(id, 2);
    warm_state(t->w, &st);
    assert_true(st.refused == 2);
    assert_int_equal(st.pending, 2);

    warm_teardown(state);
}


/*
 * Rounds.
 */

/* An OCI image manifest whose config and layers are blobs[0..n). */
static void
make_image(char *out, size_t cap, const char *const *blobs, size_t n)
{
    char    hex[OCI_SHA256_HEX_LEN + 1];
    size_t  len, i;

    len = (size_t) snprintf(out, cap, "{\"schemaVersion\":2,\"mediaType\":\""
                            OCI_MT_OCI_MANIFEST "\",");

    for (i = 0; i < n; i++) {
        fake_sha256(blobs[i], strlen(blobs[i]), hex);
        len += (size_t) snprintf(out + len, cap - len,
                                 "%s{\"mediaType\":\"application/"
                                 "octet-stream\",\"digest\":\"sha256:%s\","
                                 "\"size\":%zu}%s",
                                 i == 0 ? "\"config\":"
                                 : i == 1 ? ",\"layers\":[" : ",",
                                 hex, strlen(blobs[i]),
                                 i == n - 1 ? (n > 1 ? "]}" : ",\"layers\":"
                                                             "[]}")
                                            : "");
    }

    assert_true(len < cap);
}


static void
digest_of(const char *body, char *out, size_t cap)
{
    char  hex[OCI_SHA256_HEX_LEN + 1];

    fake_sha256(body, strlen(body), hex);
    snprintf(out, cap, "sha256:%s", hex);
}


/* The live transfer whose URL ends in suffix, or NULL. */
static xfer_t *
xfer_for(const char *suffix)
{
    xfer_t  *x;
    size_t   n, len;
    int      i;

    n = strlen(suffix);

    for (i = 0; (x = fake_xfer_at(i)) != NULL; i++) {
        len = strlen(x->url);

        if (len >= n && strcmp(x->url + len - n, suffix) == 0) {
            return x;
        }
    }

    return NULL;
}


static void
reply(xfer_t *x, long status, const char *type, const char *body)
{
    fake_reply_t  r;

    assert_non_null(x);
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.content_type = type;
    r.body = body;
    fake_xfer_reply(x, &r);
}


/* Answer the GET of a blob with its bytes. */
static void
reply_blob(const char *body)
{
    char  suffix[128];

    snprintf(suffix, sizeof(suffix), "/blobs/");
    digest_of(body, suffix + 7, sizeof(suffix) - 7);
    reply(xfer_for(suffix), 200, "application/octet-stream", body);
}


static void
assert_stored(warm_env_t *t, const char *body, int stored)
{
    char         hex[OCI_SHA256_HEX_LEN + 1], path[OCI_PATH_MAX];
    struct stat  st;

    fake_sha256(body, strlen(body), hex);
    assert_int_equal(oci_store_blob_path(t->e->store, hex, path,
                                         sizeof(path)), OCI_OK);
    assert_int_equal(stat(path, &st) == 0, stored);
}


static int  progress_seen;


/* After each piece of a blob: the tick sees the bytes so far. */
static void
progress_between(void *arg, size_t done)
{
    warm_env_t  *t = arg;

    if (done != 4) {
        return;
    }

    warm_tick(t->w);
    assert_non_null(strstr(blob_listing(t->w, 1), " fetching 4/10\n"));
    assert_string_equal(listing(t->w),
                        "#1 fetching " FAKE_SOLO "/a/b:v1 2/3 27/33\n");
    progress_seen = 1;
}


static void
test_round_image(void **state)
{
    static const char *const  blobs[] = { "{\"os\":\"linux\"}", "layer one",
                                          "layer two!" };
    warm_env_t               *t = *state;
    stats_warm_t              st;
    fake_reply_t              r;
    oci_msg_t                 m;
    char                      image[2048], digest[OCI_DIGEST_MAX + 1];
    xfer_t                   *x;

    make_image(image, sizeof(image), blobs, 3);
    digest_of(image, digest, sizeof(digest));

    add(t, FAKE_SOLO "/a/b:v1", NULL, 1);

    /* the tag: the mirror's own GET, at prefetch priority */
    warm_tick(t->w);
    x = fake_xfer_one();
    assert_string_equal(x->url, FAKE_EP_SOLO "/v2/a/b/manifests/v1");
    assert_int_equal(x->head, 0);
    assert_string_equal(x->accept, OCI_MT_ALL_MANIFESTS);
    assert_int_equal(x->prio, XFER_PRIO_PREFETCH);

    /* a client's GET of the tag without Accept joins it, and promotes
     * it */
    oci_msg_init(&m, OCI_MSG_MANIFEST, 7);
    snprintf(m.registry, sizeof(m.registry), FAKE_SOLO);
    snprintf(m.name, sizeof(m.name), "a/b");
    snprintf(m.reference, sizeof(m.reference), "v1");
    dispatch_on_msg(&t->e->c1, &m, t->e->jobs);
    assert_int_equal(fake_xfers.started, 1);
    assert_int_equal(x->prio, XFER_PRIO_CLIENT);

    reply(x, 200, OCI_MT_OCI_MANIFEST, image);
    assert_memory_equal(fake_conn_take(&t->e->c1), "META 7 sha256:", 14);
    assert_string_equal(listing(t->w),
                        "#1 resolving " FAKE_SOLO "/a/b:v1 0/0 0/0\n");

    /* the record names the stored manifest: its blobs, at prefetch
     * priority */
    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 3);
    assert_int_equal(fake_xfer_at(0)->prio, XFER_PRIO_PREFETCH);
    assert_int_equal(fake_xfer_at(2)->prio, XFER_PRIO_PREFETCH);
    assert_string_equal(listing(t->w),
                        "#1 fetching " FAKE_SOLO "/a/b:v1 0/3 0/33\n");

    /* the bytes of one that arrives in pieces, as it arrives */
    reply_blob(blobs[0]);
    reply_blob(blobs[1]);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = "application/octet-stream";
    r.body = blobs[2];
    r.chunk = 4;
    r.between = progress_between;
    r.arg = t;
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_int_equal(progress_seen, 1);

    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 done " FAKE_SOLO "/a/b:v1 3/3 33/33\n");
    assert_stored(t, blobs[0], 1);
    assert_stored(t, blobs[2], 1);

    warm_state(t->w, &st);
    assert_int_equal(st.done, 1);
    assert_int_equal(st.pending, 0);
    assert_true(st.rounds_done == 1);
    assert_true(st.downloads == 3);

    /* before warm_interval: nothing */
    test_now += t->e->cf->warm_interval - 1;
    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 0);

    /* the next round: a HEAD (the manifest is stored), no blob again */
    test_now += 1;
    warm_tick(t->w);
    x = fake_xfer_one();
    assert_int_equal(x->head, 1);
    assert_int_equal(x->prio, XFER_PRIO_PREFETCH);
    assert_string_equal(listing(t->w),
                        "#1 resolving " FAKE_SOLO "/a/b:v1 0/0 0/0\n");

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = OCI_MT_OCI_MANIFEST;
    r.digest = digest;
    r.length_set = 1;
    r.length = (long long) strlen(image);
    fake_xfer_reply(x, &r);

    warm_tick(t->w);
    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.started, 5);
    assert_string_equal(listing(t->w),
                        "#1 done " FAKE_SOLO "/a/b:v1 3/3 33/33\n");

    warm_state(t->w, &st);
    assert_true(st.rounds_done == 2);
    assert_true(st.downloads == 3);
}


/* An index: the children of the image's platforms (none given:
 * prefetch.platforms), each fetched by digest, then their blobs. */
static void
test_round_index(void **state)
{
    static const char *const  amd[] = { "{\"arch\":\"amd64\"}", "amd layer" };
    static const char *const  arm[] = { "{\"arch\":\"arm64\"}", "arm layer" };
    warm_env_t               *t = *state;
    char                      amd_m[1024], arm_m[1024], index[2048];
    char                      amd_d[OCI_DIGEST_MAX + 1];
    char                      arm_d[OCI_DIGEST_MAX + 1];
    char                      suffix[256];

    make_image(amd_m, sizeof(amd_m), amd, 2);
    make_image(arm_m, sizeof(arm_m), arm, 2);
    digest_of(amd_m, amd_d, sizeof(amd_d));
    digest_of(arm_m, arm_d, sizeof(arm_d));

    snprintf(index, sizeof(index),
             "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_OCI_INDEX "\","
             "\"manifests\":["
             "{\"mediaType\":\"" OCI_MT_OCI_MANIFEST "\",\"digest\":\"%s\","
             "\"size\":%zu,\"platform\":{\"os\":\"linux\","
             "\"architecture\":\"amd64\"}},"
             "{\"mediaType\":\"" OCI_MT_OCI_MANIFEST "\",\"digest\":\"%s\","
             "\"size\":%zu,\"platform\":{\"os\":\"linux\","
             "\"architecture\":\"arm64\"}}]}",
             amd_d, strlen(amd_m), arm_d, strlen(arm_m));

    add(t, FAKE_SOLO "/p:v1", NULL, 1);
    add(t, FAKE_SOLO "/q:v1", "linux/arm64", 2);

    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 2);
    reply(xfer_for("/p/manifests/v1"), 200, OCI_MT_OCI_INDEX, index);
    reply(xfer_for("/q/manifests/v1"), 200, OCI_MT_OCI_INDEX, index);

    /* p: amd64 (prefetch.platforms), q: arm64 */
    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 2);
    snprintf(suffix, sizeof(suffix), "/p/manifests/%s", amd_d);
    assert_non_null(xfer_for(suffix));
    assert_int_equal(xfer_for(suffix)->prio, XFER_PRIO_PREFETCH);
    reply(xfer_for(suffix), 200, OCI_MT_OCI_MANIFEST, amd_m);
    snprintf(suffix, sizeof(suffix), "/q/manifests/%s", arm_d);
    reply(xfer_for(suffix), 200, OCI_MT_OCI_MANIFEST, arm_m);

    assert_string_equal(listing(t->w),
                        "#1 resolving " FAKE_SOLO "/p:v1 0/0 0/0\n"
                        "#2 resolving " FAKE_SOLO "/q:v1 0/0 0/0\n");

    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 4);
    reply_blob(amd[0]);
    reply_blob(amd[1]);
    reply_blob(arm[0]);
    reply_blob(arm[1]);

    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 done " FAKE_SOLO "/p:v1 2/2 25/25\n"
                        "#2 done " FAKE_SOLO "/q:v1 2/2 25/25\n");
    assert_stored(t, amd[1], 1);
    assert_stored(t, arm[1], 1);
}


/* prefetch's caps bound a warm image too: past max_layers the layers
 * are left out, the image fails and the registry's counters move; past
 * max_children the children likewise. */
static void
test_round_capped(void **state)
{
    static const char *const  blobs[] = { "{\"c\":2}", "layer 1",
                                          "layer 2", "layer 3" };
    static const char *const  amd[] = { "{\"arch\":\"amd64\"}", "x" };
    warm_env_t               *t = *state;
    stats_registry_t         *sr;
    char                      image[2048], child[1024], index[2048];
    char                      child_d[OCI_DIGEST_MAX + 1];

    sr = stats_registry(oci_config_registry(t->e->cf, FAKE_SOLO,
                                            strlen(FAKE_SOLO)));
    t->e->cf->prefetch_max_layers = 2;
    t->e->cf->prefetch_max_children = 1;

    make_image(image, sizeof(image), blobs, 4);
    add(t, FAKE_SOLO "/a:v1", NULL, 1);

    warm_tick(t->w);
    reply(fake_xfer_one(), 200, OCI_MT_OCI_MANIFEST, image);

    /* the config and the first two layers, not the third */
    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 3);
    assert_true(sr->prefetch_capped == 1);
    assert_true(sr->prefetch_left_out == 1);
    reply_blob(blobs[0]);
    reply_blob(blobs[1]);
    reply_blob(blobs[2]);
    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 0);
    assert_string_equal(listing(t->w),
                        "#1 failed " FAKE_SOLO "/a:v1 3/3 21/21\n");
    assert_stored(t, blobs[2], 1);
    assert_stored(t, blobs[3], 0);

    /* an index of two amd64 children (an odd one, but a hostile index
     * may list thousands): one is taken */
    make_image(child, sizeof(child), amd, 2);
    digest_of(child, child_d, sizeof(child_d));
    snprintf(index, sizeof(index),
             "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_OCI_INDEX "\","
             "\"manifests\":["
             "{\"mediaType\":\"" OCI_MT_OCI_MANIFEST "\",\"digest\":\"%s\","
             "\"size\":%zu,\"platform\":{\"os\":\"linux\","
             "\"architecture\":\"amd64\"}},"
             "{\"mediaType\":\"" OCI_MT_OCI_MANIFEST "\",\"digest\":"
             "\"sha256:" "%064d" "\",\"size\":9,\"platform\":"
             "{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
             child_d, strlen(child), 7);

    add(t, FAKE_SOLO "/i:v1", NULL, 2);
    warm_tick(t->w);
    reply(xfer_for("/i/manifests/v1"), 200, OCI_MT_OCI_INDEX, index);
    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 1);
    assert_true(sr->prefetch_capped == 2);
    assert_true(sr->prefetch_left_out == 2);
}


/* A failed tag is retried at the next interval, not before; a blob that
 * cannot be fetched fails its image, whose other blobs are stored. */
static void
test_round_failure_retry(void **state)
{
    static const char *const  blobs[] = { "{\"c\":1}", "good layer",
                                          "lost layer" };
    warm_env_t               *t = *state;
    oci_tag_record_t          rec;
    stats_warm_t              st;
    char                      image[2048];

    make_image(image, sizeof(image), blobs, 3);
    add(t, FAKE_SOLO "/a:v1", NULL, 1);

    warm_tick(t->w);
    reply(fake_xfer_one(), 503, NULL, NULL);

    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 failed " FAKE_SOLO "/a:v1 0/0 0/0\n");
    warm_state(t->w, &st);
    assert_int_equal(st.failed, 1);
    assert_true(st.rounds_failed == 1);

    /* the endpoint is not backed off after one failure; the round waits
     * for the interval all the same */
    test_now += 10;
    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 0);

    test_now += t->e->cf->warm_interval;
    warm_tick(t->w);
    reply(fake_xfer_one(), 200, OCI_MT_OCI_MANIFEST, image);

    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 3);
    reply_blob(blobs[0]);
    reply_blob(blobs[1]);
    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 fetching " FAKE_SOLO "/a:v1 2/3 17/27\n");

    reply(fake_xfer_one(), 404, NULL, NULL);
    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 failed " FAKE_SOLO "/a:v1 2/3 17/27\n");
    assert_non_null(strstr(blob_listing(t->w, 1), " failed 0/10\n"));
    assert_stored(t, blobs[1], 1);
    assert_stored(t, blobs[2], 0);

    warm_state(t->w, &st);
    assert_true(st.rounds_failed == 2);

    /* a tag record from before the round is no answer to it: the stale
     * record the mirror keeps serving does not make the round done */
    assert_int_equal(oci_tag_record_read(t->e->store, FAKE_SOLO, "a", "v1",
                                         &rec), OCI_OK);
    rec.fetched_at -= 100;
    assert_int_equal(oci_tag_record_write(t->e->store, FAKE_SOLO, "a", "v1",
                                          &rec, 0), OCI_OK);

    test_now += t->e->cf->warm_interval;
    warm_tick(t->w);
    assert_int_equal(fake_xfer_one()->head, 1);
    reply(fake_xfer_one(), 503, NULL, NULL);
    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 failed " FAKE_SOLO "/a:v1 0/0 0/0\n");
    warm_state(t->w, &st);
    assert_true(st.rounds_failed == 3);
}


/* A remembered 404 fails the round without asking upstream. */
static void
test_round_negative(void **state)
{
    warm_env_t  *t = *state;

    add(t, FAKE_SOLO "/gone:v1", NULL, 1);

    warm_tick(t->w);
    reply(fake_xfer_one(), 404, NULL, NULL);
    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 failed " FAKE_SOLO "/gone:v1 0/0 0/0\n");

    /* named again: a round at once, answered from the negative cache */
    add(t, FAKE_SOLO "/gone:v1", NULL, 1);
    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.started, 1);
    assert_string_equal(listing(t->w),
                        "#1 failed " FAKE_SOLO "/gone:v1 0/0 0/0\n");
}


/* At most WARM_JOBS downloads of the rounds at once; stored blobs are
 * skipped; a client's request joins a warm download. */
static void
test_round_bounded(void **state)
{
    warm_env_t   *t = *state;
    char          bodies[WARM_JOBS + 5][32];
    const char   *blobs[WARM_JOBS + 5];
    char          image[8192], hex[OCI_SHA256_HEX_LEN + 1];
    char          path[OCI_PATH_MAX], digest[OCI_DIGEST_MAX + 1];
    oci_msg_t     m;
    size_t        i, n;
    int           fd;

    n = WARM_JOBS + 5;

    for (i = 0; i < n; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "blob number %02zu", i);
        blobs[i] = bodies[i];
    }

    make_image(image, sizeof(image), blobs, n);

    /* blob 0 (the config) is stored already */
    fake_sha256(blobs[0], strlen(blobs[0]), hex);
    snprintf(path, sizeof(path), "%s/sha256/%.2s", t->e->store, hex);
    mkdir(path, 0755);
    assert_int_equal(oci_store_blob_path(t->e->store, hex, path,
                                         sizeof(path)), OCI_OK);
    fd = open(path, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, blobs[0], strlen(blobs[0])),
                     (ssize_t) strlen(blobs[0]));
    close(fd);

    add(t, FAKE_SOLO "/big:v1", NULL, 1);
    warm_tick(t->w);
    reply(fake_xfer_one(), 200, OCI_MT_OCI_MANIFEST, image);

    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), WARM_JOBS);
    assert_non_null(strstr(blob_listing(t->w, 1), " stored 14/14\n"));
    assert_non_null(strstr(blob_listing(t->w, 1), " queued 0/14\n"));

    /* a client asks for blob 3: it joins (no new transfer), and is told
     * so */
    digest_of(blobs[3], digest, sizeof(digest));
    oci_msg_init(&m, OCI_MSG_BLOB, 9);
    snprintf(m.registry, sizeof(m.registry), FAKE_SOLO);
    snprintf(m.name, sizeof(m.name), "big");
    snprintf(m.reference, sizeof(m.reference), "%s", digest);
    dispatch_on_msg(&t->e->c2, &m, t->e->jobs);
    assert_int_equal(fake_xfers.started, 1 + WARM_JOBS);
    assert_string_equal(fake_conn_take(&t->e->c2), "FROM 9 inflight\n");

    /* the blobs that end make room for the queued ones */
    for (i = 1; i <= WARM_JOBS; i++) {
        reply_blob(blobs[i]);
    }

    assert_memory_equal(fake_conn_take(&t->e->c2), "SIZE 9 ", 7);

    warm_tick(t->w);
    assert_int_equal(fake_xfer_count(), (int) n - 1 - WARM_JOBS);

    for (i = WARM_JOBS + 1; i < n; i++) {
        reply_blob(blobs[i]);
    }

    warm_tick(t->w);
    assert_string_equal(listing(t->w),
                        "#1 done " FAKE_SOLO "/big:v1 21/21 294/294\n");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_valid, line_setup,
                                        line_teardown),
        cmocka_unit_test_setup_teardown(test_line_invalid, line_setup,
                                        line_teardown),
        cmocka_unit_test(test_file_read_and_changed),
        cmocka_unit_test(test_file_long_line),
        cmocka_unit_test(test_warm_max),
        cmocka_unit_test_setup_teardown(test_round_image, warm_setup,
                                        warm_teardown),
        cmocka_unit_test_setup_teardown(test_round_index, warm_setup,
                                        warm_teardown),
        cmocka_unit_test_setup_teardown(test_round_capped, warm_setup,
                                        warm_teardown),
        cmocka_unit_test_setup_teardown(test_round_failure_retry,
                                        warm_setup, warm_teardown),
        cmocka_unit_test_setup_teardown(test_round_negative, warm_setup,
                                        warm_teardown),
        cmocka_unit_test_setup_teardown(test_round_bounded, warm_setup,
                                        warm_teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
