/*
 * Unit tests for src/oci_config.c: every file is written into a fresh
 * temp dir, loaded, and the result or the exact "file:line: message"
 * checked.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grp.h>
#include <cmocka.h>

#include "oci_config.h"


typedef struct {
    char  dir[64];
    char  file[128];
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

    strcpy(f->dir, "/tmp/oci-test-config.XXXXXX");

    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }

    snprintf(f->file, sizeof(f->file), "%s/ocimirror.cfg", f->dir);
    *state = f;

    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    unlink(f->file);
    rmdir(f->dir);
    free(f);

    return 0;
}


/* write text as the config file and load it */
static int
load(fixture_t *f, const char *text, oci_config_t **cf)
{
    FILE  *fp;

    fp = fopen(f->file, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);

    f->err[0] = '\0';
    *cf = NULL;

    return oci_config_load(f->file, cf, f->err, sizeof(f->err));
}


/* the load must fail with "FILE:line: <contains>" */
static void
expect_error(fixture_t *f, const char *text, int line, const char *contains)
{
    oci_config_t  *cf;
    char           prefix[256];
    int            rc;

    rc = load(f, text, &cf);
    assert_int_equal(rc, OCI_EINVAL);
    assert_null(cf);

    snprintf(prefix, sizeof(prefix), "%s:%d: ", f->file, line);

    if (strncmp(f->err, prefix, strlen(prefix)) != 0) {
        fail_msg("expected \"%s...\", got \"%s\"", prefix, f->err);
    }

    if (strstr(f->err, contains) == NULL) {
        fail_msg("expected \"%s\" in \"%s\"", contains, f->err);
    }
}


#define STORE  "store = { path = \"/var/cache/ocimirror\"; };\n"
#define REG    "registries = ( { name = \"docker.io\";\n" \
               "  endpoints = ( \"https://registry-1.docker.io\" ); } );\n"


static void
test_full(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;

    assert_int_equal(load(f,
        "store = { path = \"/srv/store\"; fsync = false;\n"
        "          min_free = \"2G\"; };\n"
        "fetcher = { socket = \"/run/x.sock\"; max_transfers = 8;\n"
        "            connect_timeout = 5; low_speed_time = 20; };\n"
        "default_registry = \"docker.io\";\n"
        "registries = (\n"
        "  { name = \"docker.io\";\n"
        "    endpoints = ( \"https://mirror.example/\",\n"
        "                  \"https://registry-1.docker.io\" );\n"
        "    tag_ttl = 600; },\n"
        "  { name = \"ghcr.io\"; endpoints = [ \"https://ghcr.io\" ]; },\n"
        "  { name = \"localhost:5000\"; library_prefix = true;\n"
        "    endpoints = ( \"http://127.0.0.1:5000/prefix//\" ); }\n"
        ");\n", &cf), OCI_OK);

    assert_string_equal(cf->file, f->file);
    assert_string_equal(cf->store_path, "/srv/store");
    assert_int_equal(cf->store_fsync, 0);
    assert_true(cf->store_min_free == 2LL * 1024 * 1024 * 1024);
    assert_string_equal(cf->fetcher_socket, "/run/x.sock");
    assert_int_equal(cf->max_transfers, 8);
    assert_int_equal(cf->connect_timeout, 5);
    assert_int_equal(cf->low_speed_time, 20);

    assert_int_equal(cf->n_registries, 3);
    assert_ptr_equal(cf->default_registry, &cf->registries[0]);

    assert_string_equal(cf->registries[0].name, "docker.io");
    assert_int_equal(cf->registries[0].n_endpoints, 2);
    assert_string_equal(cf->registries[0].endpoints[0],
                        "https://mirror.example");
    assert_string_equal(cf->registries[0].endpoints[1],
                        "https://registry-1.docker.io");
    assert_int_equal(cf->registries[0].tag_ttl, 600);
    assert_int_equal(cf->registries[0].library_prefix, 1);

    assert_string_equal(cf->registries[1].name, "ghcr.io");
    assert_int_equal(cf->registries[1].tag_ttl, OCI_DEFAULT_TAG_TTL);
    assert_int_equal(cf->registries[1].library_prefix, 0);

    assert_int_equal(cf->registries[2].library_prefix, 1);
    assert_string_equal(cf->registries[2].endpoints[0],
                        "http://127.0.0.1:5000/prefix");

    assert_ptr_equal(oci_config_registry(cf, "ghcr.io", 7),
                     &cf->registries[1]);
    assert_ptr_equal(oci_config_registry(cf, "ghcr.iox", 7),
                     &cf->registries[1]);
    assert_null(oci_config_registry(cf, "ghcr.i", 6));
    assert_null(oci_config_registry(cf, "GHCR.IO", 7));

    oci_config_destroy(cf);
}


static void
test_defaults(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;

    assert_int_equal(load(f, STORE REG, &cf), OCI_OK);

    assert_int_equal(cf->store_fsync, 1);
    assert_true(cf->store_min_free == OCI_DEFAULT_MIN_FREE);
    assert_string_equal(cf->fetcher_socket, OCI_DEFAULT_FETCHER_SOCKET);
    assert_int_equal(cf->max_transfers, OCI_DEFAULT_MAX_TRANSFERS);
    assert_int_equal(cf->connect_timeout, 10);
    assert_int_equal(cf->low_speed_time, 30);
    assert_int_equal(cf->max_per_host, OCI_DEFAULT_MAX_PER_HOST);
    assert_int_equal(cf->http2, 1);
    assert_true(cf->chunk_threshold == 16 * 1024 * 1024);
    assert_true(cf->chunk_size == 8 * 1024 * 1024);
    assert_int_equal(cf->chunks_per_blob, 4);
    assert_true(cf->list_cache_size == 64LL * 1024 * 1024);
    assert_int_equal(cf->list_cache_entries, 1024);
    assert_int_equal(cf->prefetch, 1);
    assert_int_equal(cf->n_prefetch_platforms, 1);
    assert_string_equal(cf->prefetch_platforms[0], "linux/amd64");
    assert_true(cf->prefetch_max_bytes == 2LL * 1024 * 1024 * 1024);
    assert_int_equal(cf->prefetch_max_children, 32);
    assert_int_equal(cf->prefetch_max_layers, 256);
    assert_null(cf->default_registry);
    assert_int_equal(cf->registries[0].library_prefix, 1);

    oci_config_destroy(cf);

    /* library_prefix may be turned off for docker.io */
    assert_int_equal(load(f, STORE
        "registries = ( { name = \"docker.io\"; library_prefix = false;\n"
        "  endpoints = ( \"https://r\" ); } );\n", &cf), OCI_OK);
    assert_int_equal(cf->registries[0].library_prefix, 0);
    oci_config_destroy(cf);
}


static void
test_min_free(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;

    assert_int_equal(load(f,
        "store = { path = \"/s\"; min_free = 12345; };\n" REG, &cf), OCI_OK);
    assert_true(cf->store_min_free == 12345);
    oci_config_destroy(cf);

    assert_int_equal(load(f,
        "store = { path = \"/s\"; min_free = 8589934592L; };\n" REG, &cf),
        OCI_OK);
    assert_true(cf->store_min_free == 8589934592LL);
    oci_config_destroy(cf);

    assert_int_equal(load(f,
        "store = { path = \"/s\"; min_free = \"512k\"; };\n" REG, &cf),
        OCI_OK);
    assert_true(cf->store_min_free == 512 * 1024);
    oci_config_destroy(cf);

    assert_int_equal(load(f,
        "store = { path = \"/s\"; min_free = \"0\"; };\n" REG, &cf), OCI_OK);
    assert_true(cf->store_min_free == 0);
    oci_config_destroy(cf);

    expect_error(f, "store = { path = \"/s\";\n min_free = \"1X\"; };\n" REG,
                 2, "min_free");
    expect_error(f, "store = { path = \"/s\";\n min_free = \"1GB\"; };\n" REG,
                 2, "min_free");
    expect_error(f, "store = { path = \"/s\";\n min_free = \"G\"; };\n" REG,
                 2, "min_free");
    expect_error(f, "store = { path = \"/s\";\n min_free = \"-1\"; };\n" REG,
                 2, "min_free");
    expect_error(f, "store = { path = \"/s\";\n"
                 " min_free = \"99999999999999999999\"; };\n" REG,
                 2, "min_free");
    expect_error(f, "store = { path = \"/s\";\n"
                 " min_free = \"9999999999T\"; };\n" REG, 2, "min_free");
    expect_error(f, "store = { path = \"/s\";\n min_free = -1; };\n" REG,
                 2, "\"min_free\" must be between 0 and");
    expect_error(f, "store = { path = \"/s\";\n min_free = 1.5; };\n" REG,
                 2, "\"min_free\" must be an integer");
}


/* store.max_size (a size or a share of the filesystem), the watermarks,
 * inactive and the recency settings */
static void
test_store_bound(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;

    assert_int_equal(load(f, STORE REG, &cf), OCI_OK);
    assert_true(cf->store_max_size == 0);
    assert_int_equal(cf->store_max_size_pct, OCI_DEFAULT_MAX_SIZE_PCT);
    assert_int_equal(cf->store_high_watermark, OCI_DEFAULT_HIGH_WATERMARK);
    assert_int_equal(cf->store_low_watermark, OCI_DEFAULT_LOW_WATERMARK);
    assert_int_equal(cf->store_inactive, 0);
    assert_int_equal(cf->store_recency, 1);
    assert_int_equal(cf->recency_batch, OCI_DEFAULT_RECENCY_BATCH);
    assert_int_equal(cf->recency_interval, OCI_DEFAULT_RECENCY_INTERVAL);
    assert_true(oci_config_max_size(cf, 1000000)
                == 10000LL * OCI_DEFAULT_MAX_SIZE_PCT);
    oci_config_destroy(cf);

    assert_int_equal(load(f,
        "store = { path = \"/s\"; max_size = \"200G\";\n"
        "  high_watermark = 95; low_watermark = \"70%\"; inactive = 86400;\n"
        "  recency = false; recency_batch = 100; recency_interval = 5; };\n"
        REG, &cf), OCI_OK);
    assert_true(cf->store_max_size == 200LL * 1024 * 1024 * 1024);
    assert_true(oci_config_max_size(cf, 1) == 200LL * 1024 * 1024 * 1024);
    assert_int_equal(cf->store_high_watermark, 95);
    assert_int_equal(cf->store_low_watermark, 70);
    assert_int_equal(cf->store_inactive, 86400);
    assert_int_equal(cf->store_recency, 0);
    assert_int_equal(cf->recency_batch, 100);
    assert_int_equal(cf->recency_interval, 5);
    oci_config_destroy(cf);

    assert_int_equal(load(f,
        "store = { path = \"/s\"; max_size = \"50%\"; recency = true; };\n"
        REG, &cf), OCI_OK);
    assert_true(cf->store_max_size == 0);
    assert_int_equal(cf->store_recency, 1);
    assert_int_equal(cf->store_max_size_pct, 50);
    assert_true(oci_config_max_size(cf, 4000) == 2000);
    oci_config_destroy(cf);

    expect_error(f, "store = { path = \"/s\";\n max_size = \"0%\"; };\n" REG,
                 2, "\"store.max_size\" must be a percent from 1 to 100");
    expect_error(f, "store = { path = \"/s\";\n max_size = \"101%\"; };\n"
                 REG, 2, "max_size");
    expect_error(f, "store = { path = \"/s\";\n max_size = \"1k\"; };\n" REG,
                 2, "max_size");
    expect_error(f, "store = { path = \"/s\";\n max_size = \"lots\"; };\n"
                 REG, 2, "max_size");
    expect_error(f, "store = { path = \"/s\";\n high_watermark = 1; };\n"
                 REG, 2, "\"store.high_watermark\" must be a percent from 2");
    expect_error(f, "store = { path = \"/s\";\n low_watermark = \"80\"; };\n"
                 REG, 2, "low_watermark");
    expect_error(f, "store = { path = \"/s\"; high_watermark = 60;\n"
                 " low_watermark = 60; };\n" REG, 2,
                 "\"store.low_watermark\" (60%) must be below "
                 "\"store.high_watermark\" (60%)");
    expect_error(f, "store = { path = \"/s\";\n inactive = -1; };\n" REG,
                 2, "inactive");
    expect_error(f, "store = { path = \"/s\";\n recency = 0; };\n" REG,
                 2, "\"recency\" must be true or false");
    expect_error(f, "store = { path = \"/s\";\n recency_batch = 1; };\n"
                 REG, 2, "recency_batch");
    expect_error(f, "store = { path = \"/s\";\n recency_interval = 601; };\n"
                 REG, 2, "recency_interval");
}


/* store.pin, the warm settings and the scrub keys */
static void
test_images(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;

    assert_int_equal(load(f, STORE REG, &cf), OCI_OK);
    assert_int_equal(cf->n_pins, 0);
    assert_int_equal(cf->n_warm, 0);
    assert_null(cf->warm_file);
    assert_int_equal(cf->warm_interval, OCI_DEFAULT_WARM_INTERVAL);
    assert_int_equal(cf->warm_max, OCI_DEFAULT_WARM_MAX);
    assert_int_equal(cf->scrub_interval, OCI_DEFAULT_SCRUB_INTERVAL);
    assert_true(cf->scrub_rate == OCI_DEFAULT_SCRUB_RATE);
    assert_int_equal(cf->scrub_deep, 0);
    assert_int_equal(cf->quarantine_max, OCI_DEFAULT_QUARANTINE_MAX);
    assert_int_equal(cf->commit_queue, 64);
    oci_config_destroy(cf);

    assert_int_equal(load(f,
        "store = { path = \"/s\";\n"
        "  pin = ( \"docker.io/nginx:1.27\",\n"
        "          { ref = \"ghcr.io/org/*:*\";\n"
        "            platforms = ( \"linux/amd64\", \"linux/arm/v7\" ); },\n"
        "          \"*/library/redis:*\" );\n"
        "  scrub_interval = 0; scrub_rate = \"10M\"; scrub_deep = true;\n"
        "  quarantine_max = 5; commit_queue = 2; };\n"
        "warm = ( \"docker.io/alpine:3.19\",\n"
        "         { ref = \"ghcr.io/org/app@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\";"
        " platforms = ( \"linux/arm64\" ); } );\n"
        "warm_file = \"/etc/ocimirror/warm.list\";\n"
        "warm_interval = 60; warm_max = 10;\n"
        "registries = ( { name = \"docker.io\";\n"
        "  endpoints = ( \"https://r\" ); },\n"
        "  { name = \"ghcr.io\"; endpoints = ( \"https://g\" ); } );\n",
        &cf), OCI_OK);

    assert_int_equal(cf->n_pins, 3);
    assert_string_equal(cf->pins[0].ref.registry, "docker.io");
    assert_string_equal(cf->pins[0].ref.name, "library/nginx");
    assert_string_equal(cf->pins[0].ref.tag, "1.27");
    assert_int_equal(cf->pins[0].n_platforms, 0);
    assert_string_equal(cf->pins[1].ref.name, "org/*");
    assert_int_equal(cf->pins[1].ref.globs, 1);
    assert_int_equal(cf->pins[1].n_platforms, 2);
    assert_string_equal(cf->pins[1].platforms[1], "linux/arm/v7");
    assert_string_equal(cf->pins[2].ref.registry, "*");
    assert_int_equal(cf->scrub_interval, 0);
    assert_true(cf->scrub_rate == 10 * 1024 * 1024);
    assert_int_equal(cf->scrub_deep, 1);
    assert_int_equal(cf->quarantine_max, 5);
    assert_int_equal(cf->commit_queue, 2);

    assert_int_equal(cf->n_warm, 2);
    assert_string_equal(cf->warm[0].ref.name, "library/alpine");
    assert_string_equal(cf->warm[0].ref.tag, "3.19");
    assert_string_equal(cf->warm[1].ref.tag, "");
    assert_int_equal(cf->warm[1].n_platforms, 1);
    assert_string_equal(cf->warm_file, "/etc/ocimirror/warm.list");
    assert_int_equal(cf->warm_interval, 60);
    assert_int_equal(cf->warm_max, 10);
    oci_config_destroy(cf);

    expect_error(f, "store = { path = \"/s\";\n pin = ( \"nginx\" ); };\n"
                 REG, 2, "starts with its registry");
    expect_error(f, "store = { path = \"/s\";\n pin = ( \"quay.io/a:1\" ); "
                 "};\n" REG, 2, "no registry \"quay.io\" in \"registries\"");
    expect_error(f, "store = { path = \"/s\"; pin = (\n { ref = \"docker.io/"
                 "a\"; platforms = ( \"linux\" ); } ); };\n" REG, 2,
                 "a platform must be");
    expect_error(f, "store = { path = \"/s\"; pin = (\n { platforms = "
                 "( \"linux/amd64\" ); } ); };\n" REG, 2, "needs a \"ref\"");
    expect_error(f, "store = { path = \"/s\"; pin = (\n { ref = \"docker.io/"
                 "a\"; what = 1; } ); };\n" REG, 2, "what");
    expect_error(f, "store = { path = \"/s\";\n pin = \"docker.io/a\"; };\n"
                 REG, 2, "must be a list");
    expect_error(f, STORE "warm = (\n \"docker.io/a/*:1\" );\n" REG, 3,
                 "globs");
    expect_error(f, STORE "warm_max = 1;\nwarm = ( \"docker.io/a:1\", "
                 "\"docker.io/b:1\" );\n" REG, 3, "at most 1");
    expect_error(f, STORE "warm_file = \"warm.list\";\n" REG, 2,
                 "absolute path");
    expect_error(f, STORE "warm_interval = 1;\n" REG, 2, "warm_interval");
    expect_error(f, "store = { path = \"/s\";\n scrub_rate = \"1k\"; };\n"
                 REG, 2, "scrub_rate");
    expect_error(f, "store = { path = \"/s\";\n quarantine_max = 0; };\n"
                 REG, 2, "quarantine_max");
    expect_error(f, "store = { path = \"/s\";\n commit_queue = 0; };\n"
                 REG, 2, "\"commit_queue\" must be between 1 and 65536");
}


/* A group of this machine (the test's own), an unknown one, a bad type. */
static void
test_socket_group(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;
    struct group  *gr;
    char           text[512];

    assert_int_equal(load(f, STORE REG, &cf), OCI_OK);
    assert_null(cf->socket_group);
    assert_int_equal(cf->socket_gid, -1);
    oci_config_destroy(cf);

    gr = getgrgid(getgid());
    assert_non_null(gr);

    snprintf(text, sizeof(text), STORE "fetcher = { socket_group = "
             "\"%s\"; };\n" REG, gr->gr_name);
    assert_int_equal(load(f, text, &cf), OCI_OK);
    assert_string_equal(cf->socket_group, gr->gr_name);
    assert_int_equal(cf->socket_gid, (long) getgid());
    oci_config_destroy(cf);

    expect_error(f, STORE "fetcher = {\n\n socket_group = "
                 "\"ocimirror-no-such-group\"; };\n" REG, 4,
                 "\"fetcher.socket_group\": no group "
                 "\"ocimirror-no-such-group\"");
    expect_error(f, STORE "fetcher = {\n socket_group = \"\"; };\n" REG,
                 3, "\"fetcher.socket_group\" must name a group");
    expect_error(f, STORE "fetcher = {\n socket_group = 33; };\n" REG, 3,
                 "\"socket_group\" must be a string");
}


static void
test_syntax_error(void **state)
{
    fixture_t  *f = *state;

    /* libconfig's own message, with its line */
    expect_error(f, STORE "\n\nfetcher = { socket = \"/x\" }\n" REG
                 "oops oops;\n", 7, "syntax error");
    expect_error(f, STORE "registries = ( { name = \"docker.io\"\n", 3,
                 "syntax error");
    expect_error(f, STORE "store = { path = \"/y\"; };\n" REG, 2,
                 "duplicate setting");
}


static void
test_missing_file(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;
    char           expect[256];

    cf = (oci_config_t *) 1;
    assert_int_equal(oci_config_load("/nonexistent/x.cfg", &cf, f->err,
                                     sizeof(f->err)), OCI_EIO);
    assert_null(cf);
    assert_string_equal(f->err, "/nonexistent/x.cfg:0: cannot read: "
                        "No such file or directory");

    assert_int_equal(oci_config_load(f->dir, &cf, f->err, sizeof(f->err)),
                     OCI_EIO);
    snprintf(expect, sizeof(expect), "%s:0: cannot read: Is a directory",
             f->dir);
    assert_string_equal(f->err, expect);
}


static void
test_unknown_keys(void **state)
{
    fixture_t  *f = *state;

    expect_error(f, STORE REG "\nregistires = ();\n", 5,
                 "unknown setting \"registires\"");
    expect_error(f, "store = { path = \"/s\";\n fsnyc = true; };\n" REG, 2,
                 "unknown setting \"store.fsnyc\"");
    expect_error(f, STORE "fetcher = {\n\n sockets = \"/x\"; };\n" REG, 4,
                 "unknown setting \"fetcher.sockets\"");
    expect_error(f, STORE "registries = ( { name = \"docker.io\";\n"
                 "  endpoints = ( \"https://r\" );\n  ttl = 5; } );\n", 4,
                 "unknown setting \"registries.ttl\"");
}


static void
test_store_errors(void **state)
{
    fixture_t  *f = *state;

    expect_error(f, REG, 1, "\"store\" section is missing");
    expect_error(f, "\nstore = { fsync = true; };\n" REG, 2,
                 "\"store.path\" is missing");
    expect_error(f, "store = { path = \"relative/dir\"; };\n" REG, 1,
                 "absolute path");
    expect_error(f, "store = { path = 5; };\n" REG, 1,
                 "\"path\" must be a string");
    expect_error(f, "store = { path = \"/s\";\n fsync = 1; };\n" REG, 2,
                 "\"fsync\" must be true or false");
    expect_error(f, "store = \"/s\";\n" REG, 1, "must be a group");
}


static void
test_fetcher_errors(void **state)
{
    fixture_t  *f = *state;
    char       text[512];
    char       longpath[120];

    expect_error(f, STORE "fetcher = {\n max_transfers = -1; };\n" REG, 3,
                 "\"max_transfers\" must be between 1 and");
    expect_error(f, STORE "fetcher = {\n max_transfers = 0; };\n" REG, 3,
                 "\"max_transfers\" must be between 1 and");
    expect_error(f, STORE "fetcher = {\n connect_timeout = -5; };\n" REG, 3,
                 "\"connect_timeout\" must be between 1 and");
    expect_error(f, STORE "fetcher = {\n low_speed_time = \"30\"; };\n" REG,
                 3, "\"low_speed_time\" must be an integer");
    expect_error(f, STORE "fetcher = {\n socket = \"x.sock\"; };\n" REG, 3,
                 "\"fetcher.socket\" must be an absolute path");

    /* sun_path holds 107 bytes and a NUL */
    memset(longpath, 'a', sizeof(longpath));
    longpath[0] = '/';
    longpath[108] = '\0';
    snprintf(text, sizeof(text), STORE "fetcher = {\n socket = \"%s\"; };\n"
             REG, longpath);
    expect_error(f, text, 3, "\"fetcher.socket\" must be an absolute path");
}


static void
test_registry_errors(void **state)
{
    fixture_t  *f = *state;

    expect_error(f, STORE, 1, "\"registries\" list is missing");
    expect_error(f, STORE "\nregistries = ();\n", 3, "\"registries\" is empty");
    expect_error(f, STORE "registries = ( { name = \"Docker.io\";\n"
                 "  endpoints = ( \"https://r\" ); } );\n", 2,
                 "registry name \"Docker.io\" is not a lower-case");
    expect_error(f, STORE "registries = ( { name = \"a/b\";\n"
                 "  endpoints = ( \"https://r\" ); } );\n", 2,
                 "is not a lower-case host[:port]");
    expect_error(f, STORE "registries = ( {\n"
                 "  endpoints = ( \"https://r\" ); } );\n", 2,
                 "a registry without \"name\"");
    expect_error(f, STORE "registries = ( { name = \"a.io\"; } );\n", 2,
                 "registry \"a.io\" has no \"endpoints\"");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = (); } );\n", 3,
                 "registry \"a.io\" has no endpoints");
    expect_error(f, STORE
                 "registries = ( { name = \"a.io\";\n"
                 "  endpoints = ( \"https://r\" ); },\n"
                 "  { name = \"b.io\"; endpoints = ( \"https://r\" ); },\n"
                 "  { endpoints = ( \"https://r\" );\n"
                 "    name = \"a.io\"; } );\n", 6,
                 "duplicate registry \"a.io\"");
    expect_error(f, STORE REG "\ndefault_registry = \"ghcr.io\";\n", 5,
                 "default_registry \"ghcr.io\" is not among the registries");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"https://r\" );\n tag_ttl = -1; } );\n", 4,
                 "\"tag_ttl\" must be between 0 and");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"https://r\" );\n library_prefix = 1; } );\n",
                 4, "\"library_prefix\" must be true or false");
    expect_error(f, STORE "registries = ( \"a.io\" );\n", 2,
                 "a registry must be a group");
}


static void
test_endpoints(void **state)
{
    fixture_t  *f = *state;

    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"https://ok\",\n"
                 "   \"ftp://a.io\" ); } );\n", 4,
                 "endpoint \"ftp://a.io\" must start with \"https://\" or "
                 "\"http://\"");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"a.io\" ); } );\n", 3, "must start with");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"HTTPS://a.io\" ); } );\n", 3,
                 "must start with");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"https://\" ); } );\n", 3, "has no host");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"https:///x\" ); } );\n", 3, "has no host");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"https://a b\" ); } );\n", 3,
                 "not allowed in a base URL");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"https://a?x=1\" ); } );\n", 3,
                 "not allowed in a base URL");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"https://ok\",\n"
                 "   \"https://user:s3cret@a.io/x\" ); } );\n", 4,
                 "credentials belong in credential files");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( \"http://u@a.io\" ); } );\n", 3,
                 "must not hold credentials");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( 5 ); } );\n", 3,
                 "an endpoint must be a URL or a group");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = \"https://a\"; } );\n", 3,
                 "\"endpoints\" must be a list");
}


static void
test_parallel_engine(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;

    assert_int_equal(load(f, STORE
        "fetcher = { max_per_host = 3; http2 = false;\n"
        "            chunk_threshold = \"1M\"; chunk_size = 262144;\n"
        "            chunks_per_blob = 8; list_cache_size = \"1M\";\n"
        "            list_cache_entries = 3; };\n" REG, &cf), OCI_OK);
    assert_true(cf->list_cache_size == 1024 * 1024);
    assert_int_equal(cf->list_cache_entries, 3);
    assert_int_equal(cf->max_per_host, 3);
    assert_int_equal(cf->http2, 0);
    assert_true(cf->chunk_threshold == 1024 * 1024);
    assert_true(cf->chunk_size == 256 * 1024);
    assert_int_equal(cf->chunks_per_blob, 8);
    oci_config_destroy(cf);

    /* 0 chunks per blob: no ranged downloads; threshold 0: any size */
    assert_int_equal(load(f, STORE
        "fetcher = { chunks_per_blob = 0; chunk_threshold = 0;\n"
        "            chunk_size = \"1g\"; list_cache_size = 0; };\n" REG,
        &cf), OCI_OK);
    assert_true(cf->list_cache_size == 0);
    assert_int_equal(cf->list_cache_entries, 1024);
    assert_int_equal(cf->chunks_per_blob, 0);
    assert_true(cf->chunk_threshold == 0);
    assert_true(cf->chunk_size == 1024 * 1024 * 1024);
    oci_config_destroy(cf);

    expect_error(f, STORE "fetcher = {\n max_per_host = 0; };\n" REG, 3,
                 "\"max_per_host\" must be between 1 and 65536");
    expect_error(f, STORE "fetcher = {\n http2 = \"yes\"; };\n" REG, 3,
                 "\"http2\" must be true or false");
    expect_error(f, STORE "fetcher = {\n chunk_threshold = \"16MB\"; };\n"
                 REG, 3, "\"fetcher.chunk_threshold\" must be a number of "
                 "bytes with an optional K, M, G or T suffix");
    expect_error(f, STORE "fetcher = {\n chunk_threshold = -1; };\n" REG, 3,
                 "\"chunk_threshold\" must be between 0 and");
    expect_error(f, STORE "fetcher = {\n chunk_size = \"8\"; };\n" REG, 3,
                 "\"fetcher.chunk_size\" must be between 65536 and "
                 "1073741824 bytes");
    expect_error(f, STORE "fetcher = {\n chunk_size = \"2G\"; };\n" REG, 3,
                 "\"fetcher.chunk_size\" must be between 65536 and");
    expect_error(f, STORE "fetcher = {\n chunk_size = 1024; };\n" REG, 3,
                 "\"chunk_size\" must be between 65536 and 1073741824");
    expect_error(f, STORE "fetcher = {\n chunks_per_blob = 65; };\n" REG, 3,
                 "\"chunks_per_blob\" must be between 0 and 64");
    expect_error(f, STORE "fetcher = {\n list_cache_size = \"lots\"; };\n"
                 REG, 3, "\"fetcher.list_cache_size\" must be a number");
    expect_error(f, STORE "fetcher = {\n list_cache_entries = -1; };\n"
                 REG, 3, "\"list_cache_entries\" must be between 0 and "
                 "1000000");
    expect_error(f, STORE "fetcher = {\n chunks = 4; };\n" REG, 3,
                 "unknown setting \"fetcher.chunks\"");
}


/* The bounds of the fetcher's work: defaults, values, and what is
 * refused with file and line. */
static void
test_bounds(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;

    assert_int_equal(load(f, STORE REG, &cf), OCI_OK);
    assert_int_equal(cf->max_jobs, OCI_DEFAULT_MAX_JOBS);
    assert_int_equal(cf->max_worker_jobs, OCI_DEFAULT_MAX_WORKER_JOBS);
    assert_int_equal(cf->max_waiters, OCI_DEFAULT_MAX_WAITERS);
    assert_int_equal(cf->max_queued, OCI_DEFAULT_MAX_QUEUED);
    assert_true(cf->finish_fraction == 0.5);
    oci_config_destroy(cf);

    assert_int_equal(load(f, STORE
        "fetcher = { max_jobs = 10; max_worker_jobs = 3; max_waiters = 20;\n"
        "            max_queued = 1; finish_fraction = 0.25; };\n" REG, &cf),
        OCI_OK);
    assert_int_equal(cf->max_jobs, 10);
    assert_int_equal(cf->max_worker_jobs, 3);
    assert_int_equal(cf->max_waiters, 20);
    assert_int_equal(cf->max_queued, 1);
    assert_true(cf->finish_fraction == 0.25);
    oci_config_destroy(cf);

    /* the ends as integers: 0 drops every idle download, 1 only a
     * complete one finishes */
    assert_int_equal(load(f, STORE "fetcher = { finish_fraction = 0; };\n"
                          REG, &cf), OCI_OK);
    assert_true(cf->finish_fraction == 0.0);
    oci_config_destroy(cf);

    assert_int_equal(load(f, STORE "fetcher = { finish_fraction = 1; };\n"
                          REG, &cf), OCI_OK);
    assert_true(cf->finish_fraction == 1.0);
    oci_config_destroy(cf);

    expect_error(f, STORE "fetcher = {\n max_jobs = 0; };\n" REG, 3,
                 "\"max_jobs\" must be between 1 and 1048576");
    expect_error(f, STORE "fetcher = {\n max_worker_jobs = 1048577; };\n"
                 REG, 3, "\"max_worker_jobs\" must be between 1 and 1048576");
    expect_error(f, STORE "fetcher = {\n\n max_waiters = \"1k\"; };\n" REG,
                 4, "\"max_waiters\" must be an integer");
    expect_error(f, STORE "fetcher = {\n max_queued = -1; };\n" REG, 3,
                 "\"max_queued\" must be between 1 and 1048576");
    expect_error(f, STORE "fetcher = {\n finish_fraction = 1.5; };\n" REG, 3,
                 "\"finish_fraction\" must be a number from 0 to 1");
    expect_error(f, STORE "fetcher = {\n finish_fraction = -0.1; };\n" REG,
                 3, "\"finish_fraction\" must be a number from 0 to 1");
    expect_error(f, STORE "fetcher = {\n finish_fraction = \"half\"; };\n"
                 REG, 3, "\"finish_fraction\" must be a number from 0 to 1");
    expect_error(f, STORE "fetcher = {\n finish_fraction = 2; };\n" REG, 3,
                 "\"finish_fraction\" must be a number from 0 to 1");
}


static void
test_prefetch(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;

    assert_int_equal(load(f, STORE
        "prefetch = { enabled = false;\n"
        "  platforms = ( \"linux/arm64\", \"linux/arm/v7\",\n"
        "                \"windows/amd64\" );\n"
        "  max_bytes = \"512M\"; max_children = 4; max_layers = 0; };\n"
        REG, &cf), OCI_OK);
    assert_int_equal(cf->prefetch, 0);
    assert_int_equal(cf->prefetch_max_children, 4);
    assert_int_equal(cf->prefetch_max_layers, 0);
    assert_int_equal(cf->n_prefetch_platforms, 3);
    assert_string_equal(cf->prefetch_platforms[0], "linux/arm64");
    assert_string_equal(cf->prefetch_platforms[1], "linux/arm/v7");
    assert_string_equal(cf->prefetch_platforms[2], "windows/amd64");
    assert_true(cf->prefetch_max_bytes == 512 * 1024 * 1024);
    oci_config_destroy(cf);

    /* a group without platforms keeps the default; an empty list means
     * no platform of an index */
    assert_int_equal(load(f, STORE "prefetch = { max_bytes = 1000; };\n"
                          REG, &cf), OCI_OK);
    assert_int_equal(cf->prefetch, 1);
    assert_int_equal(cf->n_prefetch_platforms, 1);
    assert_string_equal(cf->prefetch_platforms[0], "linux/amd64");
    assert_true(cf->prefetch_max_bytes == 1000);
    assert_int_equal(cf->prefetch_max_children, 32);
    assert_int_equal(cf->prefetch_max_layers, 256);
    oci_config_destroy(cf);

    assert_int_equal(load(f, STORE "prefetch = { max_children = 4096;\n"
                          " max_layers = 65536; };\n" REG, &cf), OCI_OK);
    assert_int_equal(cf->prefetch_max_children, 4096);
    assert_int_equal(cf->prefetch_max_layers, 65536);
    oci_config_destroy(cf);

    assert_int_equal(load(f, STORE "prefetch = { platforms = [ ]; };\n"
                          REG, &cf), OCI_OK);
    assert_int_equal(cf->n_prefetch_platforms, 0);
    oci_config_destroy(cf);

    expect_error(f, STORE "prefetch = {\n enabled = 1; };\n" REG, 3,
                 "\"enabled\" must be true or false");
    expect_error(f, STORE "prefetch = {\n max_bytes = \"lots\"; };\n" REG,
                 3, "\"prefetch.max_bytes\" must be a number of bytes");
    expect_error(f, STORE "prefetch = {\n max_children = 4097; };\n" REG,
                 3, "\"max_children\" must be between 0 and 4096");
    expect_error(f, STORE "prefetch = {\n max_children = -1; };\n" REG,
                 3, "\"max_children\" must be between 0 and 4096");
    expect_error(f, STORE "prefetch = {\n max_layers = 65537; };\n" REG,
                 3, "\"max_layers\" must be between 0 and 65536");
    expect_error(f, STORE "prefetch = {\n max_layers = \"9\"; };\n" REG,
                 3, "\"max_layers\" must be an integer");
    expect_error(f, STORE "prefetch = { platforms = (\n \"linux\" ); };\n"
                 REG, 3, "a platform must be a string \"os/arch\" or "
                 "\"os/arch/variant\" in lower case");
    expect_error(f, STORE "prefetch = { platforms = ( \"linux/amd64\",\n"
                 " \"Linux/AMD64\" ); };\n" REG, 3, "a platform must be");
    expect_error(f, STORE "prefetch = { platforms = (\n \"linux//v7\" ); "
                 "};\n" REG, 3, "a platform must be");
    expect_error(f, STORE "prefetch = { platforms = (\n \"a/b/c/d\" ); "
                 "};\n" REG, 3, "a platform must be");
    expect_error(f, STORE "prefetch = { platforms = (\n \"linux/amd64/\" ); "
                 "};\n" REG, 3, "a platform must be");
    expect_error(f, STORE "prefetch = { platforms = (\n 5 ); };\n" REG, 3,
                 "a platform must be");
    expect_error(f, STORE "prefetch = {\n platforms = \"linux/amd64\"; };\n"
                 REG, 3, "\"prefetch.platforms\" must be a list");
    expect_error(f, STORE "prefetch = {\n platform = ( ); };\n" REG, 3,
                 "unknown setting \"prefetch.platform\"");
    expect_error(f, STORE "\nprefetch = true;\n" REG, 3,
                 "\"prefetch\" must be a group");
}


/* A file in the fixture's dir with the given content; its path in out. */
static void
write_file(fixture_t *f, const char *name, const char *content, char *out,
    size_t cap)
{
    FILE  *fp;

    snprintf(out, cap, "%s/%s", f->dir, name);
    fp = fopen(out, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(content, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}


static void
test_upstream_settings(void **state)
{
    fixture_t             *f = *state;
    oci_config_t          *cf;
    const oci_registry_t  *a, *b, *c;

    assert_int_equal(load(f,
        STORE
        "fetcher = { proxy = \"http://proxy.corp:3128\";\n"
        "            no_proxy = \"localhost,.corp\";\n"
        "            bandwidth_limit = \"10M\"; connect_timeout = 7;\n"
        "            low_speed_time = 9; };\n"
        "registries = (\n"
        "  { name = \"a.io\"; endpoints = ( \"https://m.a.io\",\n"
        "      \"https://a.io\" ); select = \"fastest\";\n"
        "    probe_interval = 5; backoff = 3; username = \"bob\";\n"
        "    password_file = \"/etc/ocimirror/a.pw\";\n"
        "    ca_file = \"/etc/ocimirror/ca.pem\";\n"
        "    client_cert = \"/etc/ocimirror/c.pem\";\n"
        "    client_key = \"/etc/ocimirror/c.key\";\n"
        "    bandwidth_limit = 65536; stale_if_error = 0;\n"
        "    negative_ttl = 0; tags_ttl = 5; referrers_ttl = 6;\n"
        "    connect_timeout = 2; },\n"
        "  { name = \"b.io\"; endpoints = ( \"https://b.io\" );\n"
        "    proxy = \"\"; no_proxy = \"b.io\"; tls_verify = false;\n"
        "    token_file = \"/etc/ocimirror/b.token\"; },\n"
        "  { name = \"c.io\"; endpoints = ( \"https://c.io\" );\n"
        "    proxy = \"socks5h://127.0.0.1:1080\"; }\n"
        ");\n", &cf), OCI_OK);

    assert_string_equal(cf->proxy, "http://proxy.corp:3128");
    assert_string_equal(cf->no_proxy, "localhost,.corp");
    assert_int_equal(cf->bandwidth_limit, 10LL * 1024 * 1024);

    a = oci_config_registry(cf, "a.io", 4);
    b = oci_config_registry(cf, "b.io", 4);
    c = oci_config_registry(cf, "c.io", 4);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);

    assert_int_equal(a->select, OCI_SELECT_FASTEST);
    assert_int_equal(a->probe_interval, 5);
    assert_int_equal(a->backoff, 3);
    assert_string_equal(a->creds.username, "bob");
    assert_string_equal(a->creds.password_file.path, "/etc/ocimirror/a.pw");
    assert_int_equal(a->creds.password_file.line, 10);
    assert_null(a->creds.token_file.path);
    assert_string_equal(a->ca_file.path, "/etc/ocimirror/ca.pem");
    assert_string_equal(a->client_cert.path, "/etc/ocimirror/c.pem");
    assert_string_equal(a->client_key.path, "/etc/ocimirror/c.key");
    assert_int_equal(a->tls_verify, 1);
    assert_string_equal(a->proxy, "http://proxy.corp:3128");
    assert_string_equal(a->no_proxy, "localhost,.corp");
    assert_int_equal(a->bandwidth_limit, 65536);
    assert_int_equal(a->stale_if_error, 0);
    assert_int_equal(a->negative_ttl, 0);
    assert_int_equal(a->tags_ttl, 5);
    assert_int_equal(a->referrers_ttl, 6);
    assert_int_equal(a->connect_timeout, 2);
    assert_int_equal(a->low_speed_time, 9);
    assert_int_equal(a->line, 7);

    /* "" turns the global proxy off for one registry */
    assert_int_equal(b->select, OCI_SELECT_ORDERED);
    assert_null(b->proxy);
    assert_string_equal(b->no_proxy, "b.io");
    assert_int_equal(b->tls_verify, 0);
    assert_string_equal(b->creds.token_file.path, "/etc/ocimirror/b.token");
    assert_null(b->creds.username);
    assert_int_equal(b->connect_timeout, 7);
    assert_int_equal(b->bandwidth_limit, 0);
    assert_int_equal(b->probe_interval, OCI_DEFAULT_PROBE_INTERVAL);
    assert_int_equal(b->backoff, OCI_DEFAULT_BACKOFF);
    assert_int_equal(b->stale_if_error, OCI_DEFAULT_STALE_IF_ERROR);
    assert_int_equal(b->negative_ttl, OCI_DEFAULT_NEGATIVE_TTL);
    assert_int_equal(b->tags_ttl, OCI_DEFAULT_TAGS_TTL);
    assert_int_equal(b->referrers_ttl, OCI_DEFAULT_REFERRERS_TTL);

    assert_string_equal(c->proxy, "socks5h://127.0.0.1:1080");
    assert_string_equal(c->no_proxy, "localhost,.corp");

    oci_config_destroy(cf);

    /* nothing set anywhere: direct, verified, no limit */
    assert_int_equal(load(f, STORE REG, &cf), OCI_OK);
    assert_null(cf->proxy);
    assert_null(cf->registries[0].proxy);
    assert_null(cf->registries[0].no_proxy);
    assert_int_equal(cf->registries[0].tls_verify, 1);
    assert_int_equal(cf->bandwidth_limit, 0);
    assert_int_equal(cf->registries[0].connect_timeout,
                     OCI_DEFAULT_CONNECT_TIMEOUT);
    oci_config_destroy(cf);
}


#define REG_WITH(x) \
    STORE "registries = ( { name = \"r.io\";\n" \
    "  endpoints = ( \"https://r.io\" );\n" x " } );\n"

static void
test_upstream_errors(void **state)
{
    fixture_t  *f = *state;

    expect_error(f, REG_WITH("select = \"random\";"), 4,
                 "\"select\" must be \"ordered\" or \"fastest\"");
    expect_error(f, REG_WITH("probe_interval = 0;"), 4,
                 "\"probe_interval\" must be between 1 and");
    expect_error(f, REG_WITH("username = \"u\";"), 4,
                 "\"username\" and \"password_file\" go together");
    expect_error(f, REG_WITH("password_file = \"/p\";"), 4,
                 "\"username\" and \"password_file\" go together");
    expect_error(f, REG_WITH("username = \"a:b\"; password_file = \"/p\";"),
                 4, "without \":\"");
    expect_error(f, REG_WITH("username = \"u\"; password_file = \"/p\";\n"
                             "token_file = \"/t\";"), 5,
                 "\"token_file\" and \"username\" exclude each other");
    expect_error(f, REG_WITH("token_file = \"relative/t\";"), 4,
                 "\"token_file\" must be an absolute path");
    expect_error(f, REG_WITH("client_cert = \"/c\";"), 4,
                 "\"client_cert\" and \"client_key\" go together");
    expect_error(f, REG_WITH("tls_verify = 0;"), 4,
                 "\"tls_verify\" must be true or false");
    expect_error(f, REG_WITH("proxy = \"ftp://p:21\";"), 4,
                 "\"registries.proxy\" must be a URL");
    expect_error(f, REG_WITH("proxy = \"http://u:pw@p:3128\";"), 4,
                 "no credentials");
    expect_error(f, REG_WITH("no_proxy = \"a.io;rm\";"), 4,
                 "\"registries.no_proxy\" must be a list");
    expect_error(f, REG_WITH("bandwidth_limit = \"1K\";"), 4,
                 "at least 16K bytes per second");
    expect_error(f, REG_WITH("bandwidth_limit = \"fast\";"), 4,
                 "\"registries.bandwidth_limit\" must be a number of bytes");
    expect_error(f, REG_WITH("stale_if_error = -1;"), 4,
                 "\"stale_if_error\" must be between 0 and");
    expect_error(f, REG_WITH("tags_tll = 5;"), 4,
                 "unknown setting \"registries.tags_tll\"");
    expect_error(f, STORE "fetcher = { proxy = \"\"; };\n" REG, 2,
                 "\"fetcher.proxy\" must be a URL");
}


static void
test_check_files(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;
    char           pw[256], empty[256], ca[256], text[2048];
    char           secret[64];

    write_file(f, "pw", "s3cret\nignored second line\n", pw, sizeof(pw));
    write_file(f, "empty", "\n", empty, sizeof(empty));
    write_file(f, "ca.pem", "-----BEGIN CERTIFICATE-----\n", ca,
               sizeof(ca));

    assert_int_equal(oci_config_read_secret(pw, secret, sizeof(secret)),
                     OCI_OK);
    assert_string_equal(secret, "s3cret");
    assert_int_equal(oci_config_read_secret(pw, secret, 4), OCI_ERANGE);
    assert_int_equal(oci_config_read_secret(empty, secret, sizeof(secret)),
                     OCI_EINVAL);
    assert_int_equal(oci_config_read_secret("/nonexistent/pw", secret,
                                            sizeof(secret)), OCI_EIO);

    snprintf(text, sizeof(text),
             REG_WITH("username = \"u\"; password_file = \"%s\";\n"
                      "ca_file = \"%s\";"), pw, ca);
    assert_int_equal(load(f, text, &cf), OCI_OK);
    assert_int_equal(oci_config_check_files(cf, f->err, sizeof(f->err)),
                     OCI_OK);
    oci_config_destroy(cf);

    /* an empty secret: named with its file and line */
    snprintf(text, sizeof(text),
             REG_WITH("username = \"u\";\npassword_file = \"%s\";"), empty);
    assert_int_equal(load(f, text, &cf), OCI_OK);
    assert_int_equal(oci_config_check_files(cf, f->err, sizeof(f->err)),
                     OCI_EIO);
    assert_non_null(strstr(f->err, ":5: registry \"r.io\": password_file"));
    assert_non_null(strstr(f->err, "the first line is empty"));
    oci_config_destroy(cf);

    /* a CA file that is not there */
    snprintf(text, sizeof(text),
             REG_WITH("ca_file = \"%s/missing.pem\";"), f->dir);
    assert_int_equal(load(f, text, &cf), OCI_OK);
    assert_int_equal(oci_config_check_files(cf, f->err, sizeof(f->err)),
                     OCI_EIO);
    assert_non_null(strstr(f->err, ":4: registry \"r.io\": ca_file"));
    assert_non_null(strstr(f->err, "No such file or directory"));
    oci_config_destroy(cf);

    unlink(pw);
    unlink(empty);
    unlink(ca);
}


/* Endpoint groups with credentials of their own; redirect_hosts, resolve
 * and max_retry_after. */
static void
test_confinement_settings(void **state)
{
    fixture_t                *f = *state;
    oci_config_t             *cf;
    const oci_registry_t     *a, *b;
    const oci_credentials_t  *c;

    assert_int_equal(load(f,
        STORE
        "fetcher = { max_retry_after = 120; };\n"
        "registries = (\n"
        "  { name = \"a.io\"; endpoints = (\n"
        "      { url = \"https://mirror.corp/\"; username = \"m\";\n"
        "        password_file = \"/etc/ocimirror/m.pw\"; },\n"
        "      { url = \"https://a.io\";\n"
        "        token_file = \"/etc/ocimirror/a.token\"; },\n"
        "      \"https://third.party\" );\n"
        "    username = \"reg\"; password_file = \"/etc/ocimirror/r.pw\";\n"
        "    redirect_hosts = ( \"CDN.Corp\", \"10.0.0.9\" );\n"
        "    resolve = ( \"Mirror.Corp:443:10.0.0.5\",\n"
        "                \"a.io:443:[::1],127.0.0.2\" );\n"
        "    max_retry_after = 30; },\n"
        "  { name = \"b.io\"; endpoints = ( \"https://b.io\" );\n"
        "    resolve = ( \"mirror.corp:443:10.0.0.5\" ); }\n"
        ");\n", &cf), OCI_OK);

    a = oci_config_registry(cf, "a.io", 4);
    b = oci_config_registry(cf, "b.io", 4);
    assert_non_null(a);
    assert_non_null(b);

    assert_int_equal(a->n_endpoints, 3);
    assert_string_equal(a->endpoints[0], "https://mirror.corp");
    assert_string_equal(a->endpoints[2], "https://third.party");

    /* each endpoint's own, else the registry's */
    c = oci_endpoint_creds(a, 0);
    assert_string_equal(c->username, "m");
    assert_string_equal(c->password_file.path, "/etc/ocimirror/m.pw");
    assert_int_equal(c->password_file.line, 6);
    c = oci_endpoint_creds(a, 1);
    assert_null(c->username);
    assert_string_equal(c->token_file.path, "/etc/ocimirror/a.token");
    c = oci_endpoint_creds(a, 2);
    assert_ptr_equal(c, &a->creds);
    assert_string_equal(c->username, "reg");
    assert_false(oci_credentials_set(oci_endpoint_creds(b, 0)));

    /* host names lower-cased, matched in any case */
    assert_int_equal(a->n_redirect_hosts, 2);
    assert_string_equal(a->redirect_hosts[0], "cdn.corp");
    assert_true(oci_redirect_host_allowed(a, "CDN.corp"));
    assert_true(oci_redirect_host_allowed(a, "10.0.0.9"));
    assert_false(oci_redirect_host_allowed(a, "cdn.corp.evil"));
    assert_false(oci_redirect_host_allowed(b, "cdn.corp"));

    assert_int_equal(a->n_resolve, 2);
    assert_string_equal(a->resolve[0], "mirror.corp:443:10.0.0.5");
    assert_string_equal(a->resolve[1], "a.io:443:[::1],127.0.0.2");

    assert_int_equal(cf->max_retry_after, 120);
    assert_int_equal(a->max_retry_after, 30);
    assert_int_equal(b->max_retry_after, 120);

    oci_config_destroy(cf);

    assert_int_equal(load(f, STORE REG, &cf), OCI_OK);
    assert_int_equal(cf->registries[0].max_retry_after,
                     OCI_DEFAULT_MAX_RETRY_AFTER);
    oci_config_destroy(cf);
}


static void
test_confinement_errors(void **state)
{
    fixture_t  *f = *state;

    expect_error(f, REG_WITH("redirect_hosts = \"cdn\";"), 4,
                 "\"redirect_hosts\" must be a list");
    expect_error(f, REG_WITH("redirect_hosts = ( \"cdn:443\" );"), 4,
                 "\"redirect_hosts\": \"cdn:443\" is not a host name or "
                 "IPv4 address without a port");
    expect_error(f, REG_WITH("redirect_hosts = ( \"ok\",\n 5 );"), 5,
                 "\"redirect_hosts\" must hold strings");
    expect_error(f, REG_WITH("resolve = ( \"a.io:443\" );"), 4,
                 "\"resolve\": \"a.io:443\" is not \"host:port:address\"");
    expect_error(f, REG_WITH("resolve = ( \"a.io:0:10.0.0.1\" );"), 4,
                 "is not \"host:port:address\"");
    expect_error(f, REG_WITH("resolve = ( \"a.io:443:10.0.0.300\" );"), 4,
                 "is not \"host:port:address\"");
    expect_error(f, REG_WITH("resolve = ( \"a.io:443:10.0.0.1,\" );"), 4,
                 "is not \"host:port:address\"");
    expect_error(f, REG_WITH("max_retry_after = 0;"), 4,
                 "\"max_retry_after\" must be between 1 and");
    expect_error(f, STORE "fetcher = { max_retry_after = 86401; };\n" REG, 2,
                 "\"max_retry_after\" must be between 1 and");

    /* one answer per host:port in the whole file */
    expect_error(f, STORE "registries = (\n"
                 " { name = \"a.io\"; endpoints = ( \"https://a\" );\n"
                 "   resolve = ( \"m.corp:443:10.0.0.5\" ); },\n"
                 " { name = \"b.io\"; endpoints = ( \"https://b\" );\n"
                 "   resolve = ( \"x:1:10.0.0.1\",\n"
                 "     \"M.corp:443:10.0.0.6\" ); } );\n", 7,
                 "\"resolve\": m.corp:443 has another address in registry "
                 "\"a.io\"");

    /* endpoint groups */
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( { username = \"u\"; } ); } );\n", 3,
                 "an endpoint group without \"url\"");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( { url = \"https://a\";\n"
                 "   tag_ttl = 5; } ); } );\n", 4,
                 "unknown setting \"registries.endpoints.tag_ttl\"");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( { url = \"ftp://a\"; } ); } );\n", 3,
                 "must start with \"https://\" or \"http://\"");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( { url = \"https://a\";\n"
                 "   username = \"u\"; } ); } );\n", 4,
                 "\"username\" and \"password_file\" go together");
    expect_error(f, STORE "registries = ( { name = \"a.io\";\n"
                 " endpoints = ( { url = \"https://a\";\n"
                 "   token_file = \"relative\"; } ); } );\n", 4,
                 "\"token_file\" must be an absolute path");
}


/* oci_config_check_files() reads the secrets of endpoint groups too. */
static void
test_check_endpoint_files(void **state)
{
    fixture_t     *f = *state;
    oci_config_t  *cf;
    char           text[2048];

    snprintf(text, sizeof(text),
             STORE "registries = ( { name = \"a.io\";\n"
             " endpoints = ( \"https://a\",\n"
             "   { url = \"https://b\"; username = \"u\";\n"
             "     password_file = \"%s/missing.pw\"; } ); } );\n",
             f->dir);
    assert_int_equal(load(f, text, &cf), OCI_OK);
    assert_int_equal(oci_config_check_files(cf, f->err, sizeof(f->err)),
                     OCI_EIO);
    assert_non_null(strstr(f->err, ":5: registry \"a.io\": password_file"));
    oci_config_destroy(cf);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_group, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_min_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetcher_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel_engine, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_prefetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_settings, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upstream_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confinement_settings, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_confinement_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_endpoint_files, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
