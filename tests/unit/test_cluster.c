/*
 * Unit tests for src/oci_cluster.c (the ring, the peer header) and the
 * cluster group of src/oci_config.c.  That the ring is nginx's own is
 * proven end to end (tests/e2e/test_cluster.py: the owner nginx picks is
 * the one the module computes); here, its properties.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "oci_cluster.h"
#include "oci_config.h"


#define KEYS  20000

static char *const  three[] = {
    "127.0.0.2:5000", "127.0.0.3:5000", "127.0.0.4:5000"
};

static char *const  four[] = {
    "127.0.0.2:5000", "127.0.0.3:5000", "127.0.0.4:5000", "127.0.0.5:5000"
};

static const unsigned char  secret[] = "0123456789abcdef-secret";


static void
key_of(size_t i, char *key, size_t len)
{
    snprintf(key, len, "sha256:%064zx", i * 2654435761u);
}


static void
test_crc32(void **state)
{
    /* the check value of CRC-32/ISO-HDLC (zlib's, nginx's) */
    assert_int_equal(oci_crc32(0, "123456789", 9), 0xcbf43926u);
    /* in pieces: the same */
    assert_int_equal(oci_crc32(oci_crc32(0, "1234", 4), "56789", 5),
                     0xcbf43926u);
    assert_int_equal(oci_crc32(0, "", 0), 0);
}


static void
test_ring_even(void **state)
{
    oci_ring_t  ring;
    size_t      i, count[3] = { 0, 0, 0 };
    char        key[80];

    assert_int_equal(oci_ring_build(&ring, three, 3), OCI_OK);
    /* 160 points a peer; a collision would keep fewer */
    assert_true(ring.n <= 480 && ring.n >= 478);

    for (i = 0; i < KEYS; i++) {
        key_of(i, key, sizeof(key));
        count[oci_ring_owner(&ring, key, strlen(key))]++;
    }

    /* 160 points each: every share within 1/3 +- 0.1 */
    for (i = 0; i < 3; i++) {
        assert_true(count[i] > KEYS * 23 / 100);
        assert_true(count[i] < KEYS * 43 / 100);
    }

    oci_ring_free(&ring);
}


/* a fourth node takes about a quarter, and only from the others: no key
 * moves between the three */
static void
test_ring_add_node(void **state)
{
    oci_ring_t  r3, r4;
    size_t      i, a, b, moved;
    char        key[80];

    assert_int_equal(oci_ring_build(&r3, three, 3), OCI_OK);
    assert_int_equal(oci_ring_build(&r4, four, 4), OCI_OK);

    moved = 0;

    for (i = 0; i < KEYS; i++) {
        key_of(i, key, sizeof(key));
        a = oci_ring_owner(&r3, key, strlen(key));
        b = oci_ring_owner(&r4, key, strlen(key));

        if (a != b) {
            assert_int_equal(b, 3);
            moved++;
        }
    }

    assert_true(moved > KEYS * 15 / 100);
    assert_true(moved < KEYS * 35 / 100);

    oci_ring_free(&r3);
    oci_ring_free(&r4);
}


/* the failover order: the owner, then whom the key falls to when the
 * owner is gone (the ring without it), and so on */
static void
test_ring_order(void **state)
{
    oci_ring_t   r3, r2;
    size_t       i, j, n, order[3];
    char        *rest[2];
    char         key[80];

    assert_int_equal(oci_ring_build(&r3, three, 3), OCI_OK);

    for (i = 0; i < 2000; i++) {
        key_of(i, key, sizeof(key));

        n = oci_ring_order(&r3, key, strlen(key), order);
        assert_int_equal(n, 3);
        assert_int_equal(order[0], oci_ring_owner(&r3, key, strlen(key)));
        assert_true(order[0] != order[1] && order[1] != order[2]
                    && order[0] != order[2]);

        /* without the owner, the key is order[1]'s */
        for (j = 0, n = 0; j < 3; j++) {
            if (j != order[0]) {
                rest[n++] = three[j];
            }
        }

        assert_int_equal(oci_ring_build(&r2, rest, 2), OCI_OK);
        assert_string_equal(rest[oci_ring_owner(&r2, key, strlen(key))],
                            three[order[1]]);
        oci_ring_free(&r2);
    }

    oci_ring_free(&r3);
}


static void
test_ring_bounds(void **state)
{
    oci_ring_t  ring;
    char       *many[OCI_CLUSTER_PEERS_MAX + 1];
    char        names[OCI_CLUSTER_PEERS_MAX + 1][32];
    size_t      i;

    assert_int_equal(oci_ring_build(&ring, three, 0), OCI_EINVAL);

    for (i = 0; i <= OCI_CLUSTER_PEERS_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "node-%zu:5000", i);
        many[i] = names[i];
    }

    assert_int_equal(oci_ring_build(&ring, many, OCI_CLUSTER_PEERS_MAX + 1),
                     OCI_EINVAL);
    assert_int_equal(oci_ring_build(&ring, many, OCI_CLUSTER_PEERS_MAX),
                     OCI_OK);
    oci_ring_free(&ring);
}


static void
test_list_hash(void **state)
{
    char  a[OCI_CLUSTER_LIST_HASH_LEN + 1], b[OCI_CLUSTER_LIST_HASH_LEN + 1];
    char *const  reversed[] = {
        "127.0.0.4:5000", "127.0.0.3:5000", "127.0.0.2:5000"
    };

    oci_cluster_list_hash(three, 3, a);
    oci_cluster_list_hash(reversed, 3, b);
    assert_int_equal(strlen(a), OCI_CLUSTER_LIST_HASH_LEN);
    /* the ring does not depend on the order: neither does the hash */
    assert_string_equal(a, b);

    oci_cluster_list_hash(four, 4, b);
    assert_string_not_equal(a, b);

    oci_cluster_list_hash(three, 2, b);
    assert_string_not_equal(a, b);
}


static void
test_sign_verify(void **state)
{
    char        v[OCI_CLUSTER_HEADER_MAX + 1], bad[OCI_CLUSTER_HEADER_MAX + 1];
    char        list[OCI_CLUSTER_LIST_HASH_LEN + 1];
    char        got[OCI_CLUSTER_LIST_HASH_LEN + 1];
    const char *key = "sha256:00112233";
    size_t      klen = strlen(key), slen = sizeof(secret) - 1;
    long long   now = 1800000000;

    oci_cluster_list_hash(three, 3, list);

    assert_int_equal(oci_cluster_sign(secret, slen, list, now, key, klen, v,
                                      sizeof(v)),
                     OCI_OK);
    assert_true(strncmp(v, "v1 ", 3) == 0);

    assert_int_equal(oci_cluster_verify(secret, slen, v, strlen(v), now, key,
                                        klen, got),
                     OCI_OK);
    assert_string_equal(got, list);

    /* within the skew either way, not past it */
    assert_int_equal(oci_cluster_verify(secret, slen, v, strlen(v),
                                        now + OCI_CLUSTER_SKEW, key, klen,
                                        NULL),
                     OCI_OK);
    assert_int_equal(oci_cluster_verify(secret, slen, v, strlen(v),
                                        now + OCI_CLUSTER_SKEW + 1, key,
                                        klen, NULL),
                     OCI_ERANGE);
    assert_int_equal(oci_cluster_verify(secret, slen, v, strlen(v),
                                        now - OCI_CLUSTER_SKEW - 1, key,
                                        klen, NULL),
                     OCI_ERANGE);

    /* another key, another secret, a changed byte: forged */
    assert_int_equal(oci_cluster_verify(secret, slen, v, strlen(v), now,
                                        "sha256:00112234", klen, NULL),
                     OCI_EINVAL);
    assert_int_equal(oci_cluster_verify((const unsigned char *)
                                        "another secret, long enough", 27,
                                        v, strlen(v), now, key, klen, NULL),
                     OCI_EINVAL);

    strcpy(bad, v);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
    assert_int_equal(oci_cluster_verify(secret, slen, bad, strlen(bad), now,
                                        key, klen, NULL),
                     OCI_EINVAL);

    /* the time is signed: moving it forges */
    strcpy(bad, v);
    bad[3 + OCI_CLUSTER_LIST_HASH_LEN + 1 + 9] ^= 1;
    assert_int_equal(oci_cluster_verify(secret, slen, bad, strlen(bad), now,
                                        key, klen, NULL),
                     OCI_EINVAL);

    /* malformed */
    assert_int_equal(oci_cluster_verify(secret, slen, "", 0, now, key, klen,
                                        NULL),
                     OCI_EINVAL);
    assert_int_equal(oci_cluster_verify(secret, slen, "v1", 2, now, key,
                                        klen, NULL),
                     OCI_EINVAL);
    assert_int_equal(oci_cluster_verify(secret, slen, v, strlen(v) - 1, now,
                                        key, klen, NULL),
                     OCI_EINVAL);
    snprintf(bad, sizeof(bad), "v2%s", v + 2);
    assert_int_equal(oci_cluster_verify(secret, slen, bad, strlen(bad), now,
                                        key, klen, NULL),
                     OCI_EINVAL);

    /* a buffer too small for the value */
    assert_int_equal(oci_cluster_sign(secret, slen, list, now, key, klen, v,
                                      20),
                     OCI_ERANGE);
}


/* --- the cluster group ------------------------------------------------ */

typedef struct {
    char  dir[64];
    char  file[128];
    char  secret[128];
    char  err[512];
} fixture_t;


static int
setup(void **state)
{
    fixture_t  *f;
    FILE       *fp;

    f = calloc(1, sizeof(fixture_t));
    if (f == NULL) {
        return -1;
    }

    strcpy(f->dir, "/tmp/oci-test-cluster.XXXXXX");

    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }

    snprintf(f->file, sizeof(f->file), "%s/ocimirror.cfg", f->dir);
    snprintf(f->secret, sizeof(f->secret), "%s/secret", f->dir);

    fp = fopen(f->secret, "w");
    if (fp == NULL) {
        return -1;
    }

    fputs("0123456789abcdef0123\n", fp);
    fclose(fp);

    *state = f;

    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    unlink(f->file);
    unlink(f->secret);
    rmdir(f->dir);
    free(f);

    return 0;
}


/* a config whose cluster group is group (with %s for the secret file) */
static int
load(fixture_t *f, const char *group, oci_config_t **cf)
{
    FILE  *fp;

    fp = fopen(f->file, "w");
    assert_non_null(fp);
    fprintf(fp, "store = { path = \"%s/store\"; };\n"
                "registries = ( { name = \"docker.io\"; endpoints = "
                "( \"https://registry-1.docker.io\" ); } );\n", f->dir);
    fprintf(fp, group, f->secret);
    assert_int_equal(fclose(fp), 0);

    f->err[0] = '\0';
    *cf = NULL;

    return oci_config_load(f->file, cf, f->err, sizeof(f->err));
}


static void
expect_error(fixture_t *f, const char *group, int line, const char *msg)
{
    oci_config_t  *cf;
    char           want[512];

    assert_int_equal(load(f, group, &cf), OCI_EINVAL);
    assert_null(cf);

    snprintf(want, sizeof(want), "%s:%d: %s", f->file, line, msg);
    assert_string_equal(f->err, want);
}


static void
test_config_cluster(void **state)
{
    fixture_t      *f = *state;
    oci_config_t   *cf;
    unsigned char   buf[OCI_CLUSTER_SECRET_MAX + 1];
    size_t          len;

    /* no group: a lone node */
    assert_int_equal(load(f, "", &cf), OCI_OK);
    assert_int_equal(cf->n_cluster_peers, 0);
    oci_config_destroy(cf);

    assert_int_equal(load(f, "cluster = {\n"
                             "  self = \"b.example:5000\";\n"
                             "  peers = ( \"a.example:5000\", "
                             "\"b.example:5000\", \"[::1]:5001\" );\n"
                             "  secret_file = \"%s\";\n"
                             "  fail_timeout = 7;\n"
                             "};\n", &cf),
                     OCI_OK);
    assert_int_equal(cf->n_cluster_peers, 3);
    assert_int_equal(cf->cluster_self, 1);
    assert_string_equal(cf->cluster_peers[2], "[::1]:5001");
    assert_int_equal(cf->cluster_fail_timeout, 7);
    assert_int_equal(cf->cluster_replicate, OCI_CLUSTER_REPLICATE_NONE);
    assert_int_equal(cf->cluster_hot_requests,
                     OCI_DEFAULT_CLUSTER_HOT_REQUESTS);
    assert_int_equal(cf->cluster_hot_window, OCI_DEFAULT_CLUSTER_HOT_WINDOW);
    assert_int_equal(cf->cluster_hot_table, OCI_DEFAULT_CLUSTER_HOT_TABLE);
    assert_int_equal(cf->cluster_max_replicas,
                     OCI_DEFAULT_CLUSTER_MAX_REPLICAS);

    assert_int_equal(oci_config_cluster_secret(cf, buf, sizeof(buf), &len,
                                               f->err, sizeof(f->err)),
                     OCI_OK);
    assert_int_equal(len, 20);
    assert_memory_equal(buf, "0123456789abcdef0123", 20);

    /* a secret too short, with the file and line of secret_file */
    unlink(f->secret);
    {
        FILE  *fp = fopen(f->secret, "w");

        assert_non_null(fp);
        fputs("short\n", fp);
        fclose(fp);
    }
    assert_int_not_equal(oci_config_cluster_secret(cf, buf, sizeof(buf),
                                                   &len, f->err,
                                                   sizeof(f->err)),
                         OCI_OK);
    assert_non_null(strstr(f->err, ":6: cluster.secret_file \""));
    assert_non_null(strstr(f->err, "at least 16 bytes"));

    unlink(f->secret);
    assert_int_not_equal(oci_config_cluster_secret(cf, buf, sizeof(buf),
                                                   &len, f->err,
                                                   sizeof(f->err)),
                         OCI_OK);
    assert_non_null(strstr(f->err, "No such file or directory"));

    oci_config_destroy(cf);

    /* replicate "hot" and its settings */
    assert_int_equal(load(f, "cluster = {\n"
                             "  self = \"a:5000\";\n"
                             "  peers = ( \"a:5000\", \"b:5000\" );\n"
                             "  secret_file = \"%s\";\n"
                             "  replicate = \"hot\"; hot_requests = 5;\n"
                             "  hot_window = 30; hot_table = 128;\n"
                             "  max_replicas = 4;\n"
                             "};\n", &cf),
                     OCI_OK);
    assert_int_equal(cf->cluster_replicate, OCI_CLUSTER_REPLICATE_HOT);
    assert_int_equal(cf->cluster_hot_requests, 5);
    assert_int_equal(cf->cluster_hot_window, 30);
    assert_int_equal(cf->cluster_hot_table, 128);
    assert_int_equal(cf->cluster_max_replicas, 4);
    oci_config_destroy(cf);
}


static void
test_config_cluster_errors(void **state)
{
    fixture_t  *f = *state;

    expect_error(f, "cluster = {\n"
                    "  self = \"c:5000\";\n"
                    "  peers = ( \"a:5000\", \"b:5000\" );\n"
                    "  secret_file = \"%s\";\n};\n", 4,
                 "\"cluster.self\" \"c:5000\" is not in \"cluster.peers\" "
                 "(it must be written the same way)");

    expect_error(f, "cluster = {\n"
                    "  self = \"a:5000\";\n"
                    "  peers = ( \"a:5000\",\n \"a:5000\" );\n"
                    "  secret_file = \"%s\";\n};\n", 6,
                 "\"cluster.peers\": \"a:5000\" is named twice");

    expect_error(f, "cluster = {\n"
                    "  self = \"a:5000\";\n"
                    "  peers = ( \"a:5000\", \"b\" );\n"
                    "  secret_file = \"%s\";\n};\n", 5,
                 "\"cluster.peers\": each must be \"host:port\" (the "
                 "address that node's nginx listens on)");

    expect_error(f, "cluster = {\n"
                    "  self = \"a:5000\";\n"
                    "  peers = ( \"a:70000\" );\n"
                    "  secret_file = \"%s\";\n};\n", 5,
                 "\"cluster.peers\": each must be \"host:port\" (the "
                 "address that node's nginx listens on)");

    expect_error(f, "cluster = {\n"
                    "  self = \"a:5000\";\n"
                    "  peers = ( \"a:5000\" );\n};\n/* %s */\n", 3,
                 "\"cluster.secret_file\" must name the file of the secret "
                 "the nodes share");

    expect_error(f, "cluster = {\n"
                    "  peers = ( \"a:5000\" );\n"
                    "  secret_file = \"%s\";\n};\n", 3,
                 "\"cluster.self\" must name this node as it is written in "
                 "\"cluster.peers\"");

    expect_error(f, "cluster = {\n"
                    "  self = \"a:5000\";\n"
                    "  peers = ( \"a:5000\" );\n"
                    "  secret_file = \"%s\";\n"
                    "  replicate = \"all\";\n};\n", 7,
                 "\"cluster.replicate\" must be \"none\" or \"hot\"");

    expect_error(f, "cluster = {\n"
                    "  self = \"a:5000\";\n"
                    "  peers = ( \"a:5000\" );\n"
                    "  secret_file = \"%s\";\n"
                    "  hot_table = 8;\n};\n", 7,
                 "\"hot_table\" must be between 64 and 1048576");

    expect_error(f, "cluster = {\n"
                    "  self = \"a:5000\";\n"
                    "  peers = ( \"a:5000\" );\n"
                    "  secret_file = \"%s\";\n"
                    "  colour = 1;\n};\n", 7,
                 "unknown setting \"cluster.colour\"");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_ring_even),
        cmocka_unit_test(test_ring_add_node),
        cmocka_unit_test(test_ring_order),
        cmocka_unit_test(test_ring_bounds),
        cmocka_unit_test(test_list_hash),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test_setup_teardown(test_config_cluster, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_cluster_errors, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
