/*
 * Unit tests for src/ctl/octl_du.c: stores laid out in a temp dir with the
 * store's own writers, measured, and compared with what stat() says of
 * each file the test put there.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "octl_du.h"
#include "test_util.h"


#define MT_MANIFEST  "application/vnd.oci.image.manifest.v1+json"
#define MT_INDEX     "application/vnd.oci.image.index.v1+json"
#define MT_LAYER     "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_CONFIG    "application/vnd.oci.image.config.v1+json"

typedef struct {
    char  root[64];
    char  err[512];
} fixture_t;


static int
setup(void **state)
{
    fixture_t  *f;

    f = calloc(1, sizeof(fixture_t));
    if (f == NULL) {
        return -1;
    }

    strcpy(f->root, "/tmp/oci-test-du.XXXXXX");

    if (mkdtemp(f->root) == NULL
        || oci_store_prepare(f->root, f->err, sizeof(f->err)) != OCI_OK)
    {
        free(f);
        return -1;
    }

    *state = f;

    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    test_rm_rf(f->root);
    free(f);

    return 0;
}


/* A digest's hex for n, spread as sha256 would be (the table hashes on
 * the first bytes). */
static const char *
hex_of(unsigned n, char out[OCI_SHA256_HEX_LEN + 1])
{
    uint64_t  x;
    int       i;

    x = n;

    for (i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        x ^= x >> 31;
        snprintf(out + i * 16, 17, "%016llx", (unsigned long long) x);
    }

    return out;
}


static void
put_file(const char *root, const char *hex, size_t size, const char *body)
{
    char   path[OCI_PATH_MAX], dir[OCI_PATH_MAX];
    FILE  *fp;
    size_t i;

    snprintf(dir, sizeof(dir), "%s/sha256/%.2s", root, hex);
    mkdir(dir, 0755);

    assert_int_equal(oci_store_blob_path(root, hex, path, sizeof(path)),
                     OCI_OK);
    fp = fopen(path, "w");
    assert_non_null(fp);

    if (body != NULL) {
        fputs(body, fp);

    } else {
        for (i = 0; i < size; i++) {
            fputc('x', fp);
        }
    }

    fclose(fp);
}


/* What the file of hex takes on disk, 0 if it is not there. */
static long long
disk(const char *root, const char *hex)
{
    struct stat  st;
    char         path[OCI_PATH_MAX];

    oci_store_blob_path(root, hex, path, sizeof(path));

    return stat(path, &st) == 0 ? (long long) st.st_blocks * 512 : 0;
}


/* An image manifest naming config and layers (stored or not). */
static void
put_manifest(const char *root, const char *hex, const char *config,
    const char *const *layers, size_t n)
{
    char    *body;
    size_t   cap, len, i;

    cap = 256 + n * 160;
    body = malloc(cap);
    assert_non_null(body);

    len = (size_t) snprintf(body, cap, "{\"schemaVersion\":2,\"mediaType\":"
                            "\"" MT_MANIFEST "\",\"config\":{\"mediaType\":"
                            "\"" MT_CONFIG "\",\"digest\":\"sha256:%s\","
                            "\"size\":10},\"layers\":[", config);

    for (i = 0; i < n; i++) {
        len += (size_t) snprintf(body + len, cap - len, "%s{\"mediaType\":"
                                 "\"" MT_LAYER "\",\"digest\":\"sha256:%s\","
                                 "\"size\":100}", i > 0 ? "," : "",
                                 layers[i]);
    }

    snprintf(body + len, cap - len, "]}");

    put_file(root, hex, 0, body);
    assert_int_equal(oci_store_type_write(root, hex, MT_MANIFEST, 0),
                     OCI_OK);
    free(body);
}


static void
put_index(const char *root, const char *hex, const char *const *children,
    size_t n)
{
    char    body[4096];
    size_t  len, i;

    len = (size_t) snprintf(body, sizeof(body), "{\"schemaVersion\":2,"
                            "\"mediaType\":\"" MT_INDEX "\",\"manifests\":[");

    for (i = 0; i < n; i++) {
        len += (size_t) snprintf(body + len, sizeof(body) - len,
                                 "%s{\"mediaType\":\"" MT_MANIFEST "\","
                                 "\"digest\":\"sha256:%s\",\"size\":300,"
                                 "\"platform\":{\"os\":\"linux\","
                                 "\"architecture\":\"a%zu\"}}",
                                 i > 0 ? "," : "", children[i], i);
    }

    snprintf(body + len, sizeof(body) - len, "]}");

    put_file(root, hex, 0, body);
    assert_int_equal(oci_store_type_write(root, hex, MT_INDEX, 0), OCI_OK);
}


static void
put_tag(const char *root, const char *registry, const char *name,
    const char *tag, const char *hex)
{
    oci_tag_record_t  rec;

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.digest, sizeof(rec.digest), "sha256:%s", hex);
    rec.size = 300;
    snprintf(rec.media_type, sizeof(rec.media_type), MT_MANIFEST);
    rec.fetched_at = 1700000000;

    assert_int_equal(oci_tag_record_write(root, registry, name, tag, &rec,
                                          0), OCI_OK);
}


static const octl_du_group_t *
group(const octl_du_group_t *v, size_t n, const char *name)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (strcmp(v[i].name, name) == 0) {
            return &v[i];
        }
    }

    fail_msg("no group %s", name);

    return NULL;
}


/* Every file under dir (recursively) but sha256/ at the top: the test's
 * own count of "other". */
static void
count_other(const char *dir, int top, size_t *files, long long *bytes)
{
    char            sub[OCI_PATH_MAX];
    struct stat     st;
    DIR            *d;
    struct dirent  *de;

    d = opendir(dir);
    assert_non_null(d);

    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0
            || (top && strcmp(de->d_name, "sha256") == 0))
        {
            continue;
        }

        snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
        assert_int_equal(lstat(sub, &st), 0);

        if (S_ISDIR(st.st_mode)) {
            count_other(sub, 0, files, bytes);

        } else if (S_ISREG(st.st_mode)) {
            (*files)++;
            *bytes += (long long) st.st_blocks * 512;
        }
    }

    closedir(d);
}


static void
test_empty_store(void **state)
{
    fixture_t  *f = *state;
    octl_du_t   du;
    size_t      files = 0;
    long long   bytes = 0;

    assert_int_equal(octl_du_walk(f->root, 10, &du, f->err, sizeof(f->err)),
                     OCI_OK);

    assert_int_equal(du.files, 0);
    assert_int_equal(du.bytes, 0);
    assert_int_equal(du.tags, 0);
    assert_int_equal(du.n_registries, 0);
    assert_int_equal(du.n_top, 0);

    /* the marker, nothing else */
    count_other(f->root, 1, &files, &bytes);
    assert_int_equal(files, 1);
    assert_int_equal(du.other_files, files);
    assert_int_equal(du.other_bytes, bytes);

    octl_du_free(&du);
}


static void
test_missing_store(void **state)
{
    fixture_t  *f = *state;
    octl_du_t   du;
    char        root[128];

    snprintf(root, sizeof(root), "%s/nowhere", f->root);

    assert_int_equal(octl_du_walk(root, 10, &du, f->err, sizeof(f->err)),
                     OCI_EIO);
    assert_non_null(strstr(f->err, root));
    assert_non_null(strstr(f->err, "No such file"));

    octl_du_free(&du);
}


/*
 * r1/app: v1 and v2 name manifest M1 (config C1, layers L1 L2); v3 names
 * M2 (config C2, layers L1 L3): L1 counts once in the repository.
 * r1/app/sub (a deeper repository): M3 (config C3, layers L1 L4, L4 not
 * stored).  r1/other: M1 again.  r2/multi: index X over M4 (stored:
 * config C4, layer L5) and M5 (not stored).  r2/gone: a manifest that is
 * not stored.  r2/bad: a corrupt record.  Not reached: O1 (a blob by
 * digest) and O2 (a manifest by digest).
 */
typedef struct {
    char  m1[65], m2[65], m3[65], m4[65], m5[65], x[65], gone[65];
    char  c1[65], c2[65], c3[65], c4[65];
    char  l1[65], l2[65], l3[65], l4[65], l5[65];
    char  o1[65], o2[65];
} layout_t;


static void
put_layout(const char *root, layout_t *l)
{
    const char  *m1l[2], *m2l[2], *m3l[2], *m4l[1], *xc[2];
    char         path[OCI_PATH_MAX];
    FILE        *fp;
    unsigned     n = 100;

    hex_of(n++, l->m1); hex_of(n++, l->m2); hex_of(n++, l->m3);
    hex_of(n++, l->m4); hex_of(n++, l->m5); hex_of(n++, l->x);
    hex_of(n++, l->gone);
    hex_of(n++, l->c1); hex_of(n++, l->c2); hex_of(n++, l->c3);
    hex_of(n++, l->c4);
    hex_of(n++, l->l1); hex_of(n++, l->l2); hex_of(n++, l->l3);
    hex_of(n++, l->l4); hex_of(n++, l->l5);
    hex_of(n++, l->o1); hex_of(n++, l->o2);

    /* sizes that take different numbers of blocks */
    put_file(root, l->c1, 10, NULL);
    put_file(root, l->c2, 20, NULL);
    put_file(root, l->c3, 30, NULL);
    put_file(root, l->c4, 40, NULL);
    put_file(root, l->l1, 70000, NULL);
    put_file(root, l->l2, 5000, NULL);
    put_file(root, l->l3, 9000, NULL);
    put_file(root, l->l5, 13000, NULL);
    put_file(root, l->o1, 20000, NULL);

    m1l[0] = l->l1; m1l[1] = l->l2;
    m2l[0] = l->l1; m2l[1] = l->l3;
    m3l[0] = l->l1; m3l[1] = l->l4;
    m4l[0] = l->l5;
    xc[0] = l->m4; xc[1] = l->m5;

    put_manifest(root, l->m1, l->c1, m1l, 2);
    put_manifest(root, l->m2, l->c2, m2l, 2);
    put_manifest(root, l->m3, l->c3, m3l, 2);
    put_manifest(root, l->m4, l->c4, m4l, 1);
    put_index(root, l->x, xc, 2);
    put_manifest(root, l->o2, l->c1, m1l, 2);

    put_tag(root, "r1.example", "app", "v1", l->m1);
    put_tag(root, "r1.example", "app", "v2", l->m1);
    put_tag(root, "r1.example", "app", "v3", l->m2);
    put_tag(root, "r1.example", "app/sub", "v1", l->m3);
    put_tag(root, "r1.example", "other", "latest", l->m1);
    put_tag(root, "r2.example:5000", "multi", "v1", l->x);
    put_tag(root, "r2.example:5000", "gone", "v1", l->gone);

    snprintf(path, sizeof(path), "%s/tags/r2.example:5000/bad", root);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/tags/r2.example:5000/bad/@v1", root);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("not a record\n", fp);
    fclose(fp);
}


static void
test_layout(void **state)
{
    fixture_t              *f = *state;
    const octl_du_group_t  *g;
    const char             *root = f->root;
    octl_du_t               du;
    layout_t                l;
    long long               app, sub, other, multi, r1, r2, reach, all;
    long long               bytes = 0;
    size_t                  files = 0;

    put_layout(root, &l);

    assert_int_equal(octl_du_walk(root, 10, &du, f->err, sizeof(f->err)),
                     OCI_OK);

    app = disk(root, l.m1) + disk(root, l.c1) + disk(root, l.l1)
          + disk(root, l.l2) + disk(root, l.m2) + disk(root, l.c2)
          + disk(root, l.l3);
    sub = disk(root, l.m3) + disk(root, l.c3) + disk(root, l.l1);
    other = disk(root, l.m1) + disk(root, l.c1) + disk(root, l.l1)
            + disk(root, l.l2);
    multi = disk(root, l.x) + disk(root, l.m4) + disk(root, l.c4)
            + disk(root, l.l5);
    r1 = app + disk(root, l.m3) + disk(root, l.c3);
    r2 = multi;
    reach = r1 + r2;
    all = reach + disk(root, l.o1) + disk(root, l.o2);

    /* tag records: 7 good ones and the corrupt one */
    assert_int_equal(du.tags, 8);
    assert_int_equal(du.bad_records, 1);
    assert_int_equal(du.unreadable, 0);

    assert_int_equal(du.n_registries, 2);
    assert_string_equal(du.registries[0].name, "r1.example");
    assert_string_equal(du.registries[1].name, "r2.example:5000");

    g = group(du.registries, du.n_registries, "r1.example");
    assert_int_equal(g->bytes, r1);
    assert_int_equal(g->files, 9);
    assert_int_equal(g->tags, 5);

    g = group(du.registries, du.n_registries, "r2.example:5000");
    assert_int_equal(g->bytes, r2);
    assert_int_equal(g->files, 4);
    assert_int_equal(g->tags, 2);

    assert_int_equal(du.n_repos, 6);

    g = group(du.repos, du.n_repos, "r1.example/app");
    assert_int_equal(g->bytes, app);
    assert_int_equal(g->files, 7);
    assert_int_equal(g->tags, 3);

    g = group(du.repos, du.n_repos, "r1.example/app/sub");
    assert_int_equal(g->bytes, sub);
    assert_int_equal(g->files, 3);
    assert_int_equal(g->tags, 1);

    g = group(du.repos, du.n_repos, "r1.example/other");
    assert_int_equal(g->bytes, other);
    assert_int_equal(g->files, 4);

    g = group(du.repos, du.n_repos, "r2.example:5000/multi");
    assert_int_equal(g->bytes, multi);
    assert_int_equal(g->files, 4);

    g = group(du.repos, du.n_repos, "r2.example:5000/gone");
    assert_int_equal(g->bytes, 0);
    assert_int_equal(g->files, 0);
    assert_int_equal(g->tags, 1);

    /* a repository whose only record is corrupt: no tags */
    g = group(du.repos, du.n_repos, "r2.example:5000/bad");
    assert_int_equal(g->tags, 0);

    /* repositories by registry, then the largest first */
    assert_int_equal(du.repos[0].registry, 0);
    assert_string_equal(du.repos[0].name, "r1.example/app");
    assert_true(du.repos[0].bytes >= du.repos[1].bytes);
    assert_int_equal(du.repos[5].registry, 1);

    /* the stored files: 15, of which 13 are reached */
    assert_int_equal(du.files, 15);
    assert_int_equal(du.bytes, all);
    assert_int_equal(du.reachable_files, 13);
    assert_int_equal(du.reachable_bytes, reach);
    assert_int_equal(du.unreachable_files, 2);
    assert_int_equal(du.unreachable_bytes,
                     disk(root, l.o1) + disk(root, l.o2));

    count_other(root, 1, &files, &bytes);
    assert_int_equal(du.other_files, files);
    assert_int_equal(du.other_bytes, bytes);

    /* images: app:v3 (M2) is largest of app's but for M1's, which
     * app:v1, app:v2 and other:latest share; app/sub misses L4 */
    assert_int_equal(du.n_top, 7);
    assert_int_equal(du.top[du.n_top - 1].bytes, 0);
    assert_string_equal(du.top[du.n_top - 1].ref, "r2.example:5000/gone:v1");
    assert_int_equal(du.top[du.n_top - 1].named, 1);
    assert_int_equal(du.top[du.n_top - 1].stored, 0);

    {
        size_t  i;
        int     seen_sub = 0, seen_multi = 0;

        for (i = 0; i < du.n_top; i++) {
            if (i > 0) {
                assert_true(du.top[i - 1].bytes >= du.top[i].bytes);
            }

            if (strcmp(du.top[i].ref, "r1.example/app/sub:v1") == 0) {
                assert_int_equal(du.top[i].bytes, sub);
                assert_int_equal(du.top[i].named, 4);
                assert_int_equal(du.top[i].stored, 3);
                seen_sub = 1;
            }

            if (strcmp(du.top[i].ref, "r2.example:5000/multi:v1") == 0) {
                /* M5, a platform nobody pulled, is not named */
                assert_int_equal(du.top[i].bytes, multi);
                assert_int_equal(du.top[i].named, 4);
                assert_int_equal(du.top[i].stored, 4);
                seen_multi = 1;
            }
        }

        assert_true(seen_sub && seen_multi);
    }

    octl_du_free(&du);

    /* only the largest two, and ties by name */
    assert_int_equal(octl_du_walk(root, 2, &du, f->err, sizeof(f->err)),
                     OCI_OK);
    assert_int_equal(du.n_top, 2);
    assert_true(du.top[0].bytes >= du.top[1].bytes);

    if (du.top[0].bytes == du.top[1].bytes) {
        assert_true(strcmp(du.top[0].ref, du.top[1].ref) < 0);
    }

    octl_du_free(&du);

    assert_int_equal(octl_du_walk(root, 0, &du, f->err, sizeof(f->err)),
                     OCI_OK);
    assert_int_equal(du.n_top, 0);
    assert_int_equal(du.reachable_bytes, reach);
    octl_du_free(&du);
}


/* The report with exact numbers, line by line. */
static void
test_print(void **state)
{
    fixture_t  *f = *state;
    const char *root = f->root;
    octl_du_t   du;
    char        c[65], l1[65], m[65], o[65], want[512];
    const char *layers[1];
    char       *text;
    size_t      len;
    FILE       *out;

    hex_of(1, c);
    hex_of(2, l1);
    hex_of(3, m);
    hex_of(4, o);

    put_file(root, c, 10, NULL);
    put_file(root, l1, 70000, NULL);
    put_file(root, o, 10, NULL);
    layers[0] = l1;
    put_manifest(root, m, c, layers, 1);
    put_tag(root, "reg.example", "team/app", "v1", m);

    assert_int_equal(octl_du_walk(root, 10, &du, f->err, sizeof(f->err)),
                     OCI_OK);

    out = open_memstream(&text, &len);
    assert_non_null(out);
    octl_du_print(out, root, &du, 1);
    fclose(out);

    snprintf(want, sizeof(want), "store %s\n  blobs and manifests        4 "
             "files %12lld\n", root, disk(root, c) + disk(root, l1)
             + disk(root, m) + disk(root, o));
    assert_memory_equal(text, want, strlen(want));

    snprintf(want, sizeof(want), "\n  not reached                1 file  "
             "%12lld  (pulled", disk(root, o));
    assert_non_null(strstr(text, want));

    snprintf(want, sizeof(want), "\n  reg.example                  %12lld  "
             "1 repository, 1 tag, 3 files\n    team/app                   "
             "%12lld  1 tag, 3 files\n", du.reachable_bytes,
             du.reachable_bytes);
    assert_non_null(strstr(text, want));

    snprintf(want, sizeof(want), "\nlargest images:\n  %12lld  "
             "reg.example/team/app:v1  3 files\n", du.reachable_bytes);
    assert_non_null(strstr(text, want));

    free(text);

    /* for people: binary units */
    out = open_memstream(&text, &len);
    assert_non_null(out);
    octl_du_print(out, root, &du, 0);
    fclose(out);

    assert_non_null(strstr(text, " KiB  1 repository, 1 tag, 3 files\n"));
    free(text);

    octl_du_free(&du);
}


/* A manifest naming more digests than the first table holds: it grows,
 * and every one counts once. */
static void
test_many_digests(void **state)
{
    fixture_t    *f = *state;
    const char  **layers;
    char        (*hex)[65];
    char          c[65], m[65], m2[65];
    octl_du_t     du;
    size_t        i, n = 20000;

    hex = calloc(n, sizeof(*hex));
    layers = calloc(n, sizeof(char *));
    assert_true(hex != NULL && layers != NULL);

    for (i = 0; i < n; i++) {
        layers[i] = hex_of((unsigned) (1000 + i), hex[i]);
    }

    hex_of(1, c);
    hex_of(2, m);
    hex_of(3, m2);
    put_file(f->root, c, 10, NULL);
    put_file(f->root, hex[7], 10, NULL);

    /* the second names the same layers in the other order */
    put_manifest(f->root, m, c, layers, n);

    for (i = 0; i < n / 2; i++) {
        const char  *t = layers[i];

        layers[i] = layers[n - 1 - i];
        layers[n - 1 - i] = t;
    }

    put_manifest(f->root, m2, c, layers, n);
    put_tag(f->root, "reg.example", "big", "a", m);
    put_tag(f->root, "reg.example", "big", "b", m2);

    assert_int_equal(octl_du_walk(f->root, 10, &du, f->err, sizeof(f->err)),
                     OCI_OK);

    assert_true(du.table_size >= 16384);
    assert_int_equal(du.table_size & (du.table_size - 1), 0);
    assert_int_equal(du.table_used, n + 3);
    assert_true(du.table_used * 10 <= du.table_size * 7);

    assert_int_equal(du.n_top, 2);
    assert_int_equal(du.top[0].named, n + 2);
    assert_int_equal(du.top[0].stored, 3);
    assert_int_equal(du.repos[0].files, 4);
    assert_int_equal(du.repos[0].bytes,
                     disk(f->root, c) + disk(f->root, hex[7])
                     + disk(f->root, m) + disk(f->root, m2));
    assert_int_equal(du.reachable_files, 4);
    assert_int_equal(du.unreachable_files, 0);

    octl_du_free(&du);
    free(hex);
    free(layers);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_digests, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
