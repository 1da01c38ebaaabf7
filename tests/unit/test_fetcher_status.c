/*
 * Unit tests for src/fetcher/errors.c and src/fetcher/status.c: the ring
 * of the last errors (bounded, newest first, printable ASCII only), and
 * STATUS: a JSON object in a temp file handed over with BODY, with a
 * download in flight (its bytes as they arrive, its waiters), the
 * registries and endpoints of the config, and a digest mismatch among
 * the errors.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "fetcher_fakes.h"
#include "errors.h"
#include "status.h"


#define BODY    "0123456789abcdefghij"   /* 20 bytes */


static void
test_errors_ring(void **state)
{
    errors_entry_t  out[ERRORS_MAX + 5];
    char            what[32];
    size_t          n, i;

    errors_clear();
    assert_int_equal(errors_get(out, ERRORS_MAX), 0);

    errors_add("blob a", 502, "digest mismatch");
    n = errors_get(out, ERRORS_MAX);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].what, "blob a");
    assert_int_equal(out[0].status, 502);
    assert_string_equal(out[0].message, "digest mismatch");
    assert_true(out[0].time > 1600000000);

    /* past the bound: the last ERRORS_MAX, newest first */
    for (i = 1; i < ERRORS_MAX + 5; i++) {
        snprintf(what, sizeof(what), "job %zu", i);
        errors_add(what, 503, "upstream registry unavailable");
    }

    assert_true(errors_total() == ERRORS_MAX + 5);
    n = errors_get(out, ERRORS_MAX + 5);
    assert_int_equal(n, ERRORS_MAX);
    assert_string_equal(out[0].what, "job 24");
    assert_string_equal(out[ERRORS_MAX - 1].what, "job 5");

    /* fewer asked, fewer given */
    assert_int_equal(errors_get(out, 3), 3);
    assert_string_equal(out[2].what, "job 22");

    /* an upstream's bytes: control and non-ASCII bytes become '?' */
    errors_add("blob \x01x", 0, "caf\xc3\xa9\nok");
    assert_int_equal(errors_get(out, 1), 1);
    assert_string_equal(out[0].what, "blob ?x");
    assert_string_equal(out[0].message, "caf???ok");

    errors_clear();
    assert_true(errors_total() == 0);
}


typedef struct {
    fake_env_t  *env;
    json_t      *during;        /* STATUS once 10 bytes were in */
} status_test_t;


/* STATUS from c1 as id; its parsed JSON (the temp file removed). */
static json_t *
status_json(fake_env_t *e, uint32_t id)
{
    oci_msg_t      m;
    char           text[65536];
    json_t        *root;
    json_error_t   err;

    oci_msg_init(&m, OCI_MSG_STATUS, id);
    dispatch_on_msg(&e->c1, &m, e->jobs);

    assert_int_equal(fake_conn_next(&e->c1, &m), 1);
    assert_int_equal(m.type, OCI_MSG_BODY);
    assert_int_equal(m.id, id);
    assert_int_equal(m.status, 200);
    assert_true(fake_read_file(m.path, text, sizeof(text)) > 0);
    assert_int_equal(unlink(m.path), 0);

    root = json_loads(text, 0, &err);
    if (root == NULL) {
        fail_msg("STATUS is no JSON: %s: %s", err.text, text);
    }

    return root;
}


static void
blob_msg(fake_env_t *e, conn_t *c, uint32_t id, const char *digest)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_BLOB, id);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "a/b");
    snprintf(m.reference, sizeof(m.reference), "%s", digest);
    dispatch_on_msg(c, &m, e->jobs);
}


static void
between(void *arg, size_t done)
{
    status_test_t  *t = arg;

    if (done == 10) {
        t->during = status_json(t->env, 7);
    }
}


static void
test_request(void **state)
{
    fake_env_t     *e = *state;
    status_test_t   t;
    fake_reply_t    r;
    json_t         *root, *d, *regs, *eps, *errs, *err;
    oci_msg_t       m;
    char            hex[OCI_SHA256_HEX_LEN + 1], digest[80], bad[80];

    errors_clear();
    memset(&t, 0, sizeof(t));
    t.env = e;

    fake_sha256(BODY, strlen(BODY), hex);
    snprintf(digest, sizeof(digest), "sha256:%s", hex);

    /* nothing in flight */
    root = status_json(e, 1);
    assert_int_equal(json_array_size(json_object_get(root, "downloads")),
                     0);
    assert_int_equal(json_integer_value(
                         json_object_get(root, "downloads_in_flight")), 0);
    assert_int_equal(json_integer_value(
                         json_object_get(root, "downloads_max")),
                     STATUS_DOWNLOADS_MAX);
    assert_int_equal(json_integer_value(json_object_get(root, "errors_max")),
                     ERRORS_MAX);

    /* the registries and endpoints of the config, in its order */
    regs = json_object_get(root, "registries");
    assert_int_equal(json_array_size(regs), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(regs, 0), "name")), FAKE_REG);
    eps = json_object_get(json_array_get(regs, 0), "endpoints");
    assert_int_equal(json_array_size(eps), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(eps, 0), "url")), FAKE_EP1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(eps, 0), "state")), "up");
    json_decref(root);

    /* a download with two waiters, read while half of it is in */
    blob_msg(e, &e->c2, 1, digest);
    blob_msg(e, &e->c2, 2, digest);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = "application/octet-stream";
    r.body = BODY;
    r.chunk = 10;
    r.between = between;
    r.arg = &t;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_non_null(t.during);
    assert_int_equal(json_integer_value(
                         json_object_get(t.during, "downloads_in_flight")),
                     1);
    d = json_array_get(json_object_get(t.during, "downloads"), 0);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "registry")),
                        FAKE_REG);
    assert_string_equal(json_string_value(json_object_get(d, "repository")),
                        "a/b");
    assert_string_equal(json_string_value(json_object_get(d, "digest")),
                        digest);
    assert_int_equal(json_integer_value(json_object_get(d, "total")), 20);
    assert_int_equal(json_integer_value(json_object_get(d, "waiters")), 2);
    assert_true(json_is_false(json_object_get(d, "prefetch")));
    /* written, or held for the next block: 10 either way */
    assert_int_equal(json_integer_value(json_object_get(d, "bytes")), 10);
    json_decref(t.during);

    /* done: gone from the list (the waiters' SIZE, PROGRESS, DONE are
     * c2's) */
    root = status_json(e, 8);
    assert_int_equal(json_array_size(json_object_get(root, "downloads")),
                     0);
    assert_int_equal(json_array_size(json_object_get(root, "errors")), 0);
    json_decref(root);

    /* a body that does not match its digest, from the only endpoint of
     * the other registry: FAIL 502, and the error is listed */
    snprintf(bad, sizeof(bad), "sha256:%064d", 0);
    oci_msg_init(&m, OCI_MSG_BLOB, 3);
    snprintf(m.registry, sizeof(m.registry), FAKE_SOLO);
    snprintf(m.name, sizeof(m.name), "c/d");
    snprintf(m.reference, sizeof(m.reference), "%s", bad);
    dispatch_on_msg(&e->c2, &m, e->jobs);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = "application/octet-stream";
    r.body = BODY;
    fake_xfer_reply(fake_xfer_one(), &r);

    root = status_json(e, 9);
    errs = json_object_get(root, "errors");
    assert_int_equal(json_array_size(errs), 1);
    err = json_array_get(errs, 0);
    assert_int_equal(json_integer_value(json_object_get(err, "status")),
                     502);
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "digest mismatch");
    assert_non_null(strstr(json_string_value(json_object_get(err, "what")),
                           "c/d@sha256:"));
    assert_int_equal(json_integer_value(
                         json_object_get(root, "errors_total")), 1);
    json_decref(root);

    /* nothing else went to c1 */
    assert_int_equal(fake_conn_next(&e->c1, &m), 0);
    errors_clear();
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_errors_ring),
        cmocka_unit_test_setup_teardown(test_request, fake_env_setup,
                                        fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
