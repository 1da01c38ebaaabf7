/*
 * Unit tests for src/oci_ipc.c: exact lines for every verb, round trips,
 * and the lines a confused or hostile peer could send.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "oci_ipc.h"
#include "oci_ref.h"


#define HEX64 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST  "sha256:" HEX64


/* encode m, compare with line, decode it back and re-encode */
static void
roundtrip(const oci_msg_t *m, const char *line)
{
    oci_msg_t  d;
    char       buf[OCI_IPC_LINE_MAX + 1];
    char       again[OCI_IPC_LINE_MAX + 1];
    size_t     used;
    int        n;

    n = oci_msg_encode(m, buf, sizeof(buf));
    assert_int_equal(n, (int) strlen(line));
    assert_string_equal(buf, line);

    used = 0;
    assert_int_equal(oci_msg_decode(buf, (size_t) n, &d, &used), OCI_OK);
    assert_int_equal(used, (size_t) n);
    assert_int_equal(d.type, m->type);
    assert_int_equal(d.id, m->id);

    assert_int_equal(oci_msg_encode(&d, again, sizeof(again)), n);
    assert_string_equal(again, line);
}


static int
decode(const char *line, oci_msg_t *m)
{
    size_t  used;

    return oci_msg_decode(line, strlen(line), m, &used);
}


static void
test_requests(void **state)
{
    oci_msg_t  m, d;

    oci_msg_init(&m, OCI_MSG_PING, 0);
    roundtrip(&m, "PING 0\n");

    oci_msg_init(&m, OCI_MSG_CANCEL, 4294967295u);
    roundtrip(&m, "CANCEL 4294967295\n");

    oci_msg_init(&m, OCI_MSG_DETACH, 3);
    roundtrip(&m, "DETACH 3\n");
    assert_int_equal(decode("DETACH 3 x\n", &d), OCI_EINVAL);
    assert_int_equal(decode("DETACH\n", &d), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_STATUS, 11);
    roundtrip(&m, "STATUS 11\n");
    assert_int_equal(decode("STATUS 11 x\n", &d), OCI_EINVAL);
    assert_int_equal(decode("STATUS\n", &d), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_BLOB, 7);
    strcpy(m.registry, "docker.io");
    strcpy(m.name, "library/nginx");
    strcpy(m.reference, DIGEST);
    roundtrip(&m, "BLOB 7 docker.io library/nginx " DIGEST "\n");

    oci_msg_init(&m, OCI_MSG_MANIFEST, 8);
    strcpy(m.registry, "localhost:5000");
    strcpy(m.name, "a/b");
    strcpy(m.reference, "v1.0");
    m.head = 1;
    roundtrip(&m, "MANIFEST 8 localhost:5000 a/b v1.0 1 -\n");

    strcpy(m.accept, OCI_MT_ALL_MANIFESTS ",*/*");
    strcpy(m.reference, DIGEST);
    m.head = 0;
    roundtrip(&m, "MANIFEST 8 localhost:5000 a/b " DIGEST " 0 "
              OCI_MT_ALL_MANIFESTS ",*/*\n");

    assert_int_equal(decode("MANIFEST 8 localhost:5000 a/b v1.0 1 a/b,c/d\n",
                            &d), OCI_OK);
    assert_string_equal(d.accept, "a/b,c/d");
    assert_int_equal(d.head, 1);

    oci_msg_init(&m, OCI_MSG_TAGS, 9);
    strcpy(m.registry, "ghcr.io");
    strcpy(m.name, "org/app");
    roundtrip(&m, "TAGS 9 ghcr.io org/app -1 -\n");

    m.n = 100;
    strcpy(m.last, "v1.2");
    roundtrip(&m, "TAGS 9 ghcr.io org/app 100 v1.2\n");

    assert_int_equal(decode("TAGS 9 ghcr.io org/app 0 -\n", &d), OCI_OK);
    assert_true(d.n == 0);
    assert_string_equal(d.last, "");
}


static void
test_answers(void **state)
{
    oci_msg_t  m, d;
    char       buf[64];

    oci_msg_init(&m, OCI_MSG_PONG, 1);
    m.status = 1;
    roundtrip(&m, "PONG 1 1\n");
    m.status = 0;
    roundtrip(&m, "PONG 1 0\n");

    oci_msg_init(&m, OCI_MSG_SIZE, 2);
    m.size = 9223372036854775807LL;
    strcpy(m.path, "/var/cache/ocimirror/tmp/dl.AbC123");
    roundtrip(&m, "SIZE 2 9223372036854775807 "
              "/var/cache/ocimirror/tmp/dl.AbC123\n");

    oci_msg_init(&m, OCI_MSG_USED, 0);
    strcpy(m.reference, DIGEST);
    roundtrip(&m, "USED 0 " DIGEST "\n");

    oci_msg_init(&m, OCI_MSG_PROGRESS, 3);
    m.bytes = 0;
    roundtrip(&m, "PROGRESS 3 0\n");
    m.bytes = 123456789;
    roundtrip(&m, "PROGRESS 3 123456789\n");

    oci_msg_init(&m, OCI_MSG_DONE, 4);
    roundtrip(&m, "DONE 4\n");

    oci_msg_init(&m, OCI_MSG_WAIT, 9);
    roundtrip(&m, "WAIT 9\n");

    oci_msg_from(&m, 6, OCI_FROM_INFLIGHT);
    roundtrip(&m, "FROM 6 inflight\n");
    oci_msg_from(&m, 6, OCI_FROM_NEGATIVE);
    roundtrip(&m, "FROM 6 negative\n");
    assert_int_equal(decode("FROM 6 store\n", &d), OCI_EINVAL);
    assert_int_equal(decode("FROM 6\n", &d), OCI_EINVAL);
    assert_int_equal(decode("FROM 6 inflight x\n", &d), OCI_EINVAL);
    oci_msg_init(&m, OCI_MSG_FROM, 6);
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_META, 5);
    strcpy(m.digest, DIGEST);
    m.size = 1234;
    strcpy(m.media_type, OCI_MT_OCI_INDEX);
    m.stale = 1;
    roundtrip(&m, "META 5 " DIGEST " 1234 " OCI_MT_OCI_INDEX " 1 -\n");
    assert_null(oci_msg_file(&m));

    /* a relayed answer hands over its temp file */
    m.stale = 0;
    strcpy(m.path, "/s/tmp/relay.1");
    roundtrip(&m, "META 5 " DIGEST " 1234 " OCI_MT_OCI_INDEX
              " 0 /s/tmp/relay.1\n");
    assert_string_equal(oci_msg_file(&m), "/s/tmp/relay.1");

    oci_msg_init(&m, OCI_MSG_BODY, 6);
    m.status = 200;
    strcpy(m.path, "/s/tmp/tags.1");
    roundtrip(&m, "BODY 6 200 /s/tmp/tags.1 -\n");
    assert_string_equal(oci_msg_file(&m), "/s/tmp/tags.1");
    strcpy(m.next, "n=2&last=b");
    roundtrip(&m, "BODY 6 200 /s/tmp/tags.1 n=2&last=b\n");

    oci_msg_fail(&m, 7, 404, OCI_ERR_MANIFEST_UNKNOWN,
                 "manifest unknown: tag  \"x\" ");
    roundtrip(&m, "FAIL 7 404 MANIFEST_UNKNOWN "
              "manifest unknown: tag  \"x\" \n");

    m.message[0] = '\0';
    roundtrip(&m, "FAIL 7 404 MANIFEST_UNKNOWN\n");

    /* a trailing blank: an empty message */
    assert_int_equal(decode("FAIL 7 503 UNAVAILABLE \n", &d), OCI_OK);
    assert_string_equal(d.message, "");
    assert_string_equal(d.code, "UNAVAILABLE");
    assert_int_equal(d.status, 503);

    /* control bytes in a message become spaces */
    strcpy(m.message, "a\nb\rc\td\x7f" "e");
    roundtrip(&m, "FAIL 7 404 MANIFEST_UNKNOWN a b c d e\n");
}


/* STAT asks for a blob's size without its bytes; BUSY refuses at once
 * with a Retry-After. */
static void
test_stat_busy(void **state)
{
    oci_msg_t  m, d;

    oci_msg_init(&m, OCI_MSG_STAT, 12);
    strcpy(m.registry, "docker.io");
    strcpy(m.name, "library/nginx");
    strcpy(m.reference, DIGEST);
    roundtrip(&m, "STAT 12 docker.io library/nginx " DIGEST "\n");

    /* a tag is no blob */
    strcpy(m.reference, "latest");
    assert_int_equal(oci_msg_encode(&m, NULL, 0), OCI_EINVAL);
    assert_int_equal(decode("STAT 12 docker.io a latest\n", &d),
                     OCI_EINVAL);
    assert_int_equal(decode("STAT 12 docker.io a\n", &d), OCI_EINVAL);

    oci_msg_busy(&m, 13, 2, "fetcher.max_jobs (4096) reached");
    roundtrip(&m, "BUSY 13 2 fetcher.max_jobs (4096) reached\n");

    assert_int_equal(decode("BUSY 13 86400 x y\n", &d), OCI_OK);
    assert_int_equal(d.type, OCI_MSG_BUSY);
    assert_int_equal(d.retry_after, 86400);
    assert_string_equal(d.message, "x y");

    /* no message is a message too */
    assert_int_equal(decode("BUSY 13 1\n", &d), OCI_OK);
    assert_string_equal(d.message, "");

    /* a Retry-After of 0 or past a day, or none, is no BUSY */
    assert_int_equal(decode("BUSY 13 0 x\n", &d), OCI_EINVAL);
    assert_int_equal(decode("BUSY 13 86401 x\n", &d), OCI_EINVAL);
    assert_int_equal(decode("BUSY 13 -1 x\n", &d), OCI_EINVAL);
    assert_int_equal(decode("BUSY 13\n", &d), OCI_EINVAL);

    m.retry_after = 0;
    assert_int_equal(oci_msg_encode(&m, NULL, 0), OCI_EINVAL);
    m.retry_after = 86401;
    assert_int_equal(oci_msg_encode(&m, NULL, 0), OCI_EINVAL);
}


static void
test_encode_rejects(void **state)
{
    oci_msg_t  m;
    char       buf[OCI_IPC_LINE_MAX + 1];

    oci_msg_init(&m, OCI_MSG_BLOB, 1);
    strcpy(m.registry, "docker.io");
    strcpy(m.name, "a b");
    strcpy(m.reference, DIGEST);
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    strcpy(m.name, "a");
    strcpy(m.reference, "latest");           /* BLOB needs a digest */
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    strcpy(m.reference, DIGEST);
    strcpy(m.registry, "Docker.io");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    /* an unterminated field */
    strcpy(m.registry, "docker.io");
    memset(m.name, 'a', sizeof(m.name));
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_MANIFEST, 1);
    strcpy(m.registry, "docker.io");
    strcpy(m.name, "a");
    strcpy(m.reference, "v1");
    m.head = 2;
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    m.head = 0;
    strcpy(m.accept, "a/b, c/d");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    strcpy(m.accept, "a/b,");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    strcpy(m.accept, "a/b;q=1");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    strcpy(m.accept, "");
    strcpy(m.reference, "sha256:abc");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_TAGS, 1);
    strcpy(m.registry, "docker.io");
    strcpy(m.name, "a");
    m.n = -2;
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    m.n = 1;
    strcpy(m.last, "a b");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_SIZE, 1);
    m.size = 5;
    strcpy(m.path, "relative/path");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    strcpy(m.path, "/with space");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    strcpy(m.path, "");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    strcpy(m.path, "/ok");
    m.size = -1;
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_PROGRESS, 1);
    m.bytes = -1;
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_PONG, 1);
    m.status = 2;
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_META, 1);
    strcpy(m.digest, DIGEST);
    strcpy(m.media_type, "application/json;charset=x");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_BODY, 1);
    m.status = 200;
    strcpy(m.path, "/p");
    strcpy(m.next, "n=1>; rel=x");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    strcpy(m.next, "-");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    strcpy(m.next, "");
    m.status = 99;
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    oci_msg_init(&m, OCI_MSG_FAIL, 1);
    m.status = 404;
    strcpy(m.code, "bad code");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
    strcpy(m.code, "");
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);

    m.type = OCI_MSG__COUNT;
    assert_int_equal(oci_msg_encode(&m, buf, sizeof(buf)), OCI_EINVAL);
}


static void
test_encode_range(void **state)
{
    oci_msg_t  m;
    char       buf[64];
    size_t     cap;

    oci_msg_init(&m, OCI_MSG_PROGRESS, 12);
    m.bytes = 345;

    /* "PROGRESS 12 345\n" is 16 bytes and needs 17 with the NUL */
    for (cap = 0; cap < 17; cap++) {
        memset(buf, 'X', sizeof(buf));
        assert_int_equal(oci_msg_encode(&m, buf, cap), OCI_ERANGE);
        assert_int_equal(buf[cap], 'X');
    }

    assert_int_equal(oci_msg_encode(&m, buf, 17), 16);
    assert_string_equal(buf, "PROGRESS 12 345\n");
}


static void
test_decode_partial(void **state)
{
    oci_msg_t    m;
    const char  *two = "PING 1\nDONE 2\nPROG";
    size_t       used, off;
    char        *big;

    off = 0;
    assert_int_equal(oci_msg_decode(two, strlen(two), &m, &used), OCI_OK);
    assert_int_equal(m.type, OCI_MSG_PING);
    assert_int_equal(used, 7);
    off += used;

    assert_int_equal(oci_msg_decode(two + off, strlen(two) - off, &m, &used),
                     OCI_OK);
    assert_int_equal(m.type, OCI_MSG_DONE);
    assert_int_equal(m.id, 2);
    off += used;

    used = 99;
    assert_int_equal(oci_msg_decode(two + off, strlen(two) - off, &m, &used),
                     OCI_EAGAIN);
    assert_int_equal(used, 0);

    assert_int_equal(oci_msg_decode("", 0, &m, &used), OCI_EAGAIN);

    /* a truncated line: "PING 1" without its newline */
    assert_int_equal(oci_msg_decode("PING 1\n", 6, &m, &used), OCI_EAGAIN);

    /* over-long: no newline within OCI_IPC_LINE_MAX bytes */
    big = malloc(OCI_IPC_LINE_MAX + 10);
    assert_non_null(big);
    memset(big, 'a', OCI_IPC_LINE_MAX + 10);

    assert_int_equal(oci_msg_decode(big, OCI_IPC_LINE_MAX - 1, &m, &used),
                     OCI_EAGAIN);
    assert_int_equal(oci_msg_decode(big, OCI_IPC_LINE_MAX, &m, &used),
                     OCI_ERANGE);
    assert_int_equal(used, 0);

    /* newline just past the limit is still over-long */
    big[OCI_IPC_LINE_MAX] = '\n';
    assert_int_equal(oci_msg_decode(big, OCI_IPC_LINE_MAX + 10, &m, &used),
                     OCI_ERANGE);

    /* a line of exactly OCI_IPC_LINE_MAX bytes is decoded (and refused
     * as malformed, but skippable) */
    big[OCI_IPC_LINE_MAX - 1] = '\n';
    assert_int_equal(oci_msg_decode(big, OCI_IPC_LINE_MAX + 10, &m, &used),
                     OCI_EINVAL);
    assert_int_equal(used, OCI_IPC_LINE_MAX);

    free(big);
}


static void
test_decode_malformed(void **state)
{
    static const char *const  bad[] = {
        "\n",
        "PING\n",
        "PING \n",
        "PING 1 \n",
        " PING 1\n",
        "PING  1\n",
        "PING 1 2\n",
        "ping 1\n",
        "PINGX 1\n",
        "HELLO 1\n",
        "PING -1\n",
        "PING +1\n",
        "PING 01\n",
        "PING 4294967296\n",
        "PING 99999999999999999999\n",
        "PING 1\r\n",
        "PING 1\t\n",
        "PING\t1\n",
        "DONE 1x\n",
        "WAIT\n",
        "WAIT 1 2\n",
        "BLOB 1 docker.io a\n",
        "BLOB 1 docker.io a sha256:abc\n",
        "BLOB 1 docker.io a sha512:" HEX64 HEX64 "\n",
        "BLOB 1 docker.io A " DIGEST "\n",
        "BLOB 1 docker.io a/../b " DIGEST "\n",
        "BLOB 1 docker.io a//b " DIGEST "\n",
        "BLOB 1 DOCKER.IO a " DIGEST "\n",
        "BLOB 1 - a " DIGEST "\n",
        "BLOB 1 docker.io a " DIGEST " x\n",
        "MANIFEST 1 docker.io a latest 0\n",
        "MANIFEST 1 docker.io a latest 2 -\n",
        "MANIFEST 1 docker.io a latest 00 -\n",
        "MANIFEST 1 docker.io a - 0 -\n",
        "MANIFEST 1 docker.io a .x 0 -\n",
        "MANIFEST 1 docker.io a sha256:x 0 -\n",
        "MANIFEST 1 docker.io a latest 0 a/b,,c/d\n",
        "MANIFEST 1 docker.io a latest 0 a/b;q=1\n",
        "MANIFEST 1 docker.io a latest 0 */*,\n",
        "TAGS 1 docker.io a -2 -\n",
        "TAGS 1 docker.io a - -\n",
        "TAGS 1 docker.io a 1 .x\n",
        "TAGS 1 docker.io a 1\n",
        "PONG 1 2\n",
        "PONG 1\n",
        "SIZE 1 -5 /p\n",
        "SIZE 1 5 p\n",
        "SIZE 1 5 -\n",
        "SIZE 1 5\n",
        "SIZE 1 9223372036854775808 /p\n",
        "USED 0 sha256:abc\n",
        "USED 0\n",
        "PROGRESS 1 -1\n",
        "PROGRESS 1 1.5\n",
        "META 1 sha256:abc 5 a/b 0 -\n",
        "META 1 " DIGEST " 5 a 0 -\n",
        "META 1 " DIGEST " 5 a/b 2 -\n",
        "META 1 " DIGEST " -1 a/b 0 -\n",
        "META 1 " DIGEST " 5 a/b 0\n",
        "META 1 " DIGEST " 5 a/b 0 relative\n",
        "BODY 1 200 relative -\n",
        "BODY 1 99 /p -\n",
        "BODY 1 600 /p -\n",
        "BODY 1 200 /p n=1\"\n",
        "BODY 1 200 /p\n",
        "FAIL 1 404\n",
        "FAIL 1 404 lower msg\n",
        "FAIL 1 1000 X msg\n",
        "FAIL 1 404 X\x01msg\n",
        "FAIL 1 404 X \x7f\n",
        "DONE 1\x00\n",
    };

    oci_msg_t  m;
    size_t     i, used, len;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        len = strlen(bad[i]);

        if (i == sizeof(bad) / sizeof(bad[0]) - 1) {
            len = 8;                        /* the embedded NUL one */
        }

        used = 0;

        if (oci_msg_decode(bad[i], len, &m, &used) != OCI_EINVAL) {
            fail_msg("accepted: \"%s\"", bad[i]);
        }

        /* the caller can skip the bad line */
        assert_int_equal(used, len);
    }
}


static void
test_decode_limits(void **state)
{
    oci_msg_t  m;
    char       line[OCI_IPC_LINE_MAX + 1];
    char       msg[300];

    /* a FAIL message of 255 bytes fits, 256 does not */
    memset(msg, 'm', sizeof(msg));
    snprintf(line, sizeof(line), "FAIL 1 404 X %.*s\n", 255, msg);
    assert_int_equal(decode(line, &m), OCI_OK);
    assert_int_equal(strlen(m.message), 255);
    snprintf(line, sizeof(line), "FAIL 1 404 X %.*s\n", 256, msg);
    assert_int_equal(decode(line, &m), OCI_EINVAL);

    /* a path of OCI_PATH_MAX - 1 fits, OCI_PATH_MAX does not */
    memset(line, 'p', sizeof(line));
    memcpy(line, "SIZE 1 5 /", 10);
    strcpy(line + 9 + OCI_PATH_MAX - 1, "\n");
    assert_int_equal(decode(line, &m), OCI_OK);
    assert_int_equal(strlen(m.path), OCI_PATH_MAX - 1);
    memset(line, 'p', sizeof(line));
    memcpy(line, "SIZE 1 5 /", 10);
    strcpy(line + 9 + OCI_PATH_MAX, "\n");
    assert_int_equal(decode(line, &m), OCI_EINVAL);

    /* non-ASCII bytes are allowed in a path and a message */
    assert_int_equal(decode("SIZE 1 5 /st\xc3\xb6re/x\n", &m), OCI_OK);
    assert_string_equal(m.path, "/st\xc3\xb6re/x");
    assert_int_equal(decode("FAIL 1 502 UNKNOWN caf\xc3\xa9\n", &m), OCI_OK);
    assert_string_equal(m.message, "caf\xc3\xa9");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_stat_busy),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_encode_range),
        cmocka_unit_test(test_decode_partial),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_decode_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
