/*
 * Unit tests for src/fetcher/job_auth.c: the credentials a job's request
 * carries (none to a redirect target, token_file as Bearer, Basic once
 * the registry asked for it), the 401 paths (Basic retry, the token flow
 * with the registry's username and password), refusals with a clear
 * message, counted, and answered from memory afterwards; a 401 from a
 * redirect target (another origin) sends no credentials anywhere; no
 * password to a plain http realm of an https registry.  Transfers and
 * connections are the fakes of fetcher_fakes.h.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fetcher_fakes.h"
#include "job_auth.h"


#define PATH       "/v2/a/b/manifests/v1"
#define BEARER     "Bearer realm=\"https://auth.test/token\"," \
                   "service=\"reg.test\",scope=\"repository:a/b:pull\""
#define BASIC      "Basic realm=\"reg\""
#define REFUSED    "FAIL 1 401 UNAUTHORIZED upstream refused the " \
                   "configured credentials\n"


static int
kind_headers(job_t *j, const xfer_resp_t *r)
{
    return 0;
}


static int
kind_body(job_t *j, const char *p, size_t n)
{
    return 0;
}


static int
kind_reset(job_t *j)
{
    return 0;
}


static int
kind_can_retry(job_t *j)
{
    return 1;
}


static void
kind_done(job_t *j, const xfer_resp_t *r)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_DONE, 0);
    job_send_all(j, &m);
    job_finish(j);
}


static void
kind_cleanup(job_t *j)
{
}


static const job_ops_t  ops = {
    "test", OCI_ERR_MANIFEST_UNKNOWN, kind_headers, kind_body, kind_reset,
    kind_can_retry, kind_done, NULL, NULL, NULL, kind_cleanup, NULL, NULL,
    NULL, NULL, 0, NULL
};


static oci_registry_t *
reg_of(fake_env_t *e)
{
    oci_registry_t  *reg;

    reg = (oci_registry_t *) oci_config_registry(e->cf, FAKE_REG,
                                                 strlen(FAKE_REG));
    assert_non_null(reg);

    return reg;
}


static void
write_file(const char *path, const char *value)
{
    FILE  *f;

    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", value);
    fclose(f);
}


/* FAKE_REG with username "alice" and password "pw"; the config frees
 * the strings set here. */
static oci_registry_t *
with_password(fake_env_t *e)
{
    oci_registry_t  *reg = reg_of(e);
    char             path[256];

    snprintf(path, sizeof(path), "%s/alice.pw", e->dir);
    write_file(path, "pw");
    reg->creds.username = strdup("alice");
    reg->creds.password_file.path = strdup(path);
    assert_non_null(reg->creds.username);
    assert_non_null(reg->creds.password_file.path);

    return reg;
}


/* A job for a/b:v1 with one waiter (c1, id 1), issued. */
static job_t *
issue(fake_env_t *e)
{
    job_t  *j;

    j = job_create(e->jobs, &ops, sizeof(job_t), reg_of(e), "a/b", "v1",
                   NULL);
    assert_non_null(j);
    snprintf(j->path, sizeof(j->path), "%s", PATH);
    assert_non_null(job_add_waiter(j, &e->c1, 1));
    job_issue(j);

    return j;
}


static void
test_redirect_target_gets_nothing(void **state)
{
    fake_env_t  *e = *state;
    job_t       *j;
    xfer_req_t   req;
    char         path[256];

    with_password(e);
    token_set_basic(e->tokens, reg_of(e), 0);
    snprintf(path, sizeof(path), "%s/reg.token", e->dir);

    j = job_create(e->jobs, &ops, sizeof(job_t), reg_of(e), "a/b", "v1",
                   NULL);
    assert_non_null(j);

    memset(&req, 0, sizeof(req));
    job_auth_request(j, &req, 0);
    assert_ptr_equal(req.registry, reg_of(e));
    assert_null(req.bearer);
    assert_null(req.username);
    assert_null(req.password);
    assert_int_equal(req.answer, 0);

    /* to an endpoint: Basic, as the registry asked before */
    job_auth_request(j, &req, 1);
    assert_string_equal(req.username, "alice");
    assert_string_equal(req.password, "pw");
    assert_int_equal(j->sent_basic, 1);

    /* a token_file wins over everything: Bearer, no Basic */
    write_file(path, "ready");
    reg_of(e)->creds.token_file.path = strdup(path);
    memset(&req, 0, sizeof(req));
    job_auth_request(j, &req, 1);
    assert_string_equal(req.bearer, "ready");
    assert_null(req.username);
    assert_int_equal(j->sent_bearer, 1);
    assert_int_equal(j->sent_basic, 0);

    job_finish(j);
}


/* A Basic challenge: one more try with Basic, then Basic at once. */
static void
test_basic(void **state)
{
    fake_env_t  *e = *state;
    xfer_t      *x;

    with_password(e);
    issue(e);

    x = fake_xfer_one();
    assert_string_equal(x->username, "");
    fake_reply_to(x, 401, NULL, BASIC);

    x = fake_xfer_one();
    assert_string_equal(x->username, "alice");
    assert_string_equal(x->password, "pw");
    assert_string_equal(x->bearer, "");
    fake_reply_to(x, 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");

    issue(e);
    x = fake_xfer_one();
    assert_string_equal(x->username, "alice");
    fake_reply_to(x, 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");
    assert_int_equal(fake_xfers.started, 3);
    assert_int_equal(stats_registry(reg_of(e))->auth_failures, 0);
}


/* Wrong Basic credentials: a clear FAIL, counted once, and the requests
 * that follow are answered from memory. */
static void
test_basic_refused(void **state)
{
    fake_env_t  *e = *state;
    xfer_t      *x;
    int          i;

    with_password(e);
    issue(e);
    fake_reply_to(fake_xfer_one(), 401, NULL, BASIC);
    fake_reply_to(fake_xfer_one(), 401, NULL, BASIC);
    assert_string_equal(fake_conn_take(&e->c1), REFUSED);
    assert_int_equal(stats_registry(reg_of(e))->auth_failures, 1);

    for (i = 0; i < 3; i++) {
        issue(e);
        x = fake_xfer_one();
        assert_int_equal(x->answer, 401);
        assert_string_equal(x->username, "");
        /* what xfer.c makes of it: a 401 without a challenge */
        fake_reply_to(x, 401, NULL, NULL);
        assert_string_equal(fake_conn_take(&e->c1), REFUSED);
    }

    assert_int_equal(stats_registry(reg_of(e))->auth_failures, 1);
    assert_int_equal(fake_xfers.started, 5);

    /* the memory ends with negative_ttl */
    fake_now += reg_of(e)->negative_ttl;
    issue(e);
    assert_int_equal(fake_xfer_one()->answer, 0);
}


/* A Bearer challenge: the token request carries the username and
 * password, the registry gets only the token. */
static void
test_token_with_credentials(void **state)
{
    fake_env_t  *e = *state;
    xfer_t      *x;

    with_password(e);
    issue(e);
    fake_reply_to(fake_xfer_one(), 401, NULL, BEARER);

    x = fake_xfer_one();
    assert_non_null(strstr(x->url, "https://auth.test/token?"));
    assert_string_equal(x->username, "alice");
    assert_string_equal(x->password, "pw");
    fake_reply_to(x, 200, "{\"token\":\"tok\"}", NULL);

    x = fake_xfer_one();
    assert_string_equal(x->bearer, "tok");
    assert_string_equal(x->username, "");
    fake_reply_to(x, 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");

    /* the token service refuses: a clear FAIL, remembered */
    token_forget(e->tokens, fake_registry(e, FAKE_REG), 0, "repository:a/b:pull");
    issue(e);
    fake_reply_to(fake_xfer_one(), 401, NULL, BEARER);
    fake_reply_to(fake_xfer_one(), 401, NULL, NULL);
    assert_string_equal(fake_conn_take(&e->c1), REFUSED);
    issue(e);
    assert_int_equal(fake_xfer_one()->answer, 401);
    fake_reply_to(fake_xfer_one(), 401, NULL, NULL);
    assert_string_equal(fake_conn_take(&e->c1), REFUSED);
}


/* token_file: sent as is; a 401 to it is a refusal, no token flow. */
static void
test_token_file(void **state)
{
    fake_env_t  *e = *state;
    char         path[256];
    xfer_t      *x;

    snprintf(path, sizeof(path), "%s/reg.token", e->dir);
    write_file(path, "file-token");
    reg_of(e)->creds.token_file.path = strdup(path);

    issue(e);
    x = fake_xfer_one();
    assert_string_equal(x->bearer, "file-token");
    fake_reply_to(x, 401, NULL, BEARER);
    assert_string_equal(fake_conn_take(&e->c1), REFUSED);
    assert_int_equal(fake_xfers.started, 1);
}


/* An expired cached token: dropped, one new token, the client never sees
 * the 401; a token refused right after it was granted is a refusal. */
static void
test_token_renewed_once(void **state)
{
    fake_env_t  *e = *state;

    issue(e);
    fake_reply_to(fake_xfer_one(), 401, NULL, BEARER);
    fake_reply_to(fake_xfer_one(), 200, "{\"token\":\"t1\"}", NULL);
    fake_reply_to(fake_xfer_one(), 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");

    /* upstream says t1 is no good any more */
    issue(e);
    assert_string_equal(fake_xfer_one()->bearer, "t1");
    fake_reply_to(fake_xfer_one(), 401, NULL, BEARER);
    fake_reply_to(fake_xfer_one(), 200, "{\"token\":\"t2\"}", NULL);
    assert_string_equal(fake_xfer_one()->bearer, "t2");
    fake_reply_to(fake_xfer_one(), 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");

    /* granted, then refused for the repository: no third token */
    token_forget(e->tokens, fake_registry(e, FAKE_REG), 0, "repository:a/b:pull");
    issue(e);
    fake_reply_to(fake_xfer_one(), 401, NULL, BEARER);
    fake_reply_to(fake_xfer_one(), 200, "{\"token\":\"t3\"}", NULL);
    fake_reply_to(fake_xfer_one(), 401, NULL, BEARER);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 401 UNAUTHORIZED upstream refused access\n");
    assert_int_equal(stats_registry(reg_of(e))->auth_failures, 1);
}


/* A redirect target (another origin) answers 401 with a realm of its
 * own: a plain 401 FAIL, no token request, no password anywhere; the
 * registry's own 401 still gets the token flow. */
static void
test_redirect_target_401(void **state)
{
    fake_env_t  *e = *state;
    xfer_t      *x;

    with_password(e);
    issue(e);

    x = fake_xfer_one();
    snprintf(x->effective_url, sizeof(x->effective_url),
             "http://cdn.test/blobs/x?sig=1");
    fake_reply_to(x, 401, NULL, "Bearer realm=\"https://evil.test/token\","
                  "service=\"evil\"");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 401 UNAUTHORIZED upstream redirect target "
                        "requires authentication\n");
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.started, 1);

    /* nor Basic: a Basic challenge from there is no reason to send it */
    issue(e);
    x = fake_xfer_one();
    snprintf(x->effective_url, sizeof(x->effective_url),
             "http://one.test:8080" PATH);
    fake_reply_to(x, 401, NULL, BASIC);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 401 UNAUTHORIZED upstream redirect target "
                        "requires authentication\n");
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(token_wants_basic(e->tokens, reg_of(e), 0), 0);

    /* not a refusal of the registry's credentials: nothing remembered */
    assert_int_equal(stats_registry(reg_of(e))->auth_failures, 0);

    /* another path of the endpoint's origin is the registry's own */
    issue(e);
    x = fake_xfer_one();
    snprintf(x->effective_url, sizeof(x->effective_url),
             "HTTP://One.Test:80/elsewhere");
    fake_reply_to(x, 401, NULL, BEARER);
    x = fake_xfer_one();
    assert_non_null(strstr(x->url, "https://auth.test/token?"));
    assert_string_equal(x->username, "alice");
    fake_reply_to(x, 200, "{\"token\":\"tok\"}", NULL);
    fake_reply_to(fake_xfer_one(), 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");
}


/* An https registry whose realm is plain http: the token is asked for
 * without the username and password. */
static void
test_http_realm_of_https_registry(void **state)
{
    fake_env_t      *e = *state;
    oci_registry_t  *reg;
    xfer_t          *x;

    reg = with_password(e);
    free(reg->endpoints[0]);
    reg->endpoints[0] = strdup("https://one.test");
    assert_non_null(reg->endpoints[0]);

    issue(e);
    x = fake_xfer_one();
    assert_string_equal(x->url, "https://one.test" PATH);
    fake_reply_to(x, 401, NULL, "Bearer realm=\"http://auth.test/token\","
                  "service=\"reg.test\"");

    x = fake_xfer_one();
    assert_non_null(strstr(x->url, "http://auth.test/token?"));
    assert_null(strstr(x->url, "account="));
    assert_string_equal(x->username, "");
    assert_string_equal(x->password, "");
    fake_reply_to(x, 200, "{\"token\":\"anon\"}", NULL);

    x = fake_xfer_one();
    assert_string_equal(x->bearer, "anon");
    fake_reply_to(x, 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");

    /* an https realm gets them */
    token_forget(e->tokens, fake_registry(e, FAKE_REG), 0, "repository:a/b:pull");
    issue(e);
    fake_reply_to(fake_xfer_one(), 401, NULL, BEARER);
    x = fake_xfer_one();
    assert_string_equal(x->username, "alice");
    assert_string_equal(x->password, "pw");
    fake_reply_to(x, 200, "{\"token\":\"tok\"}", NULL);
    fake_reply_to(fake_xfer_one(), 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");
}


/*
 * Credentials and tokens are an endpoint's: endpoint one.test has its own
 * (alice), two.test none (a third-party mirror).  A token one.test's token
 * service minted is never sent to two.test after a failover, and
 * two.test's token service gets no password.
 */
static void
test_per_endpoint(void **state)
{
    fake_env_t      *e = *state;
    oci_registry_t  *reg = reg_of(e);
    job_t           *j;
    xfer_t          *x;
    xfer_req_t       req;
    char             path[256];

    snprintf(path, sizeof(path), "%s/alice.pw", e->dir);
    write_file(path, "pw");
    reg->endpoint_creds[0].username = strdup("alice");
    reg->endpoint_creds[0].password_file.path = strdup(path);
    assert_non_null(reg->endpoint_creds[0].username);
    assert_non_null(reg->endpoint_creds[0].password_file.path);

    /* one.test: the token flow with alice's password */
    issue(e);
    fake_reply_to(fake_xfer_one(), 401, NULL, BEARER);
    x = fake_xfer_one();
    assert_string_equal(x->username, "alice");
    assert_string_equal(x->home, FAKE_EP1);
    fake_reply_to(x, 200, "{\"token\":\"tok-one\"}", NULL);
    assert_string_equal(fake_xfer_one()->bearer, "tok-one");
    fake_reply_to(fake_xfer_one(), 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");

    /* one.test fails: two.test gets neither the token nor the password */
    issue(e);
    assert_string_equal(fake_xfer_one()->bearer, "tok-one");
    fake_reply_to(fake_xfer_one(), 503, NULL, NULL);
    x = fake_xfer_one();
    assert_string_equal(x->url, FAKE_EP2 PATH);
    assert_string_equal(x->bearer, "");
    assert_string_equal(x->username, "");

    /* its own challenge: an anonymous token from the realm it names */
    fake_reply_to(x, 401, NULL,
                  "Bearer realm=\"https://auth.two.test/token\","
                  "service=\"two\"");
    x = fake_xfer_one();
    assert_non_null(strstr(x->url, "https://auth.two.test/token?"));
    assert_string_equal(x->username, "");
    assert_string_equal(x->password, "");
    assert_string_equal(x->home, FAKE_EP2);
    fake_reply_to(x, 200, "{\"token\":\"tok-two\"}", NULL);
    assert_string_equal(fake_xfer_one()->bearer, "tok-two");
    fake_reply_to(fake_xfer_one(), 200, "{}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "DONE 1\n");

    /* each endpoint keeps its own */
    assert_string_equal(token_lookup(e->tokens, reg, 0,
                                     "repository:a/b:pull"), "tok-one");
    assert_string_equal(token_lookup(e->tokens, reg, 1,
                                     "repository:a/b:pull"), "tok-two");

    /* Basic goes by endpoint too */
    token_set_basic(e->tokens, reg, 0);
    token_set_basic(e->tokens, reg, 1);
    token_forget(e->tokens, reg, 0, "repository:a/b:pull");
    token_forget(e->tokens, reg, 1, "repository:a/b:pull");

    j = job_create(e->jobs, &ops, sizeof(job_t), reg, "a/b", "v1", NULL);
    assert_non_null(j);
    memset(&req, 0, sizeof(req));
    job_auth_request(j, &req, 1);
    assert_string_equal(req.username, "alice");
    assert_string_equal(req.home, FAKE_EP1);

    j->endpoint = 1;
    memset(&req, 0, sizeof(req));
    job_auth_request(j, &req, 1);
    assert_null(req.username);
    assert_null(req.bearer);
    assert_string_equal(req.home, FAKE_EP2);
    job_finish(j);

    /* a refusal is the endpoint's */
    token_refuse(e->tokens, reg, 0, "repository:a/b:pull");
    assert_true(token_refused(e->tokens, reg, 0, "repository:a/b:pull"));
    assert_false(token_refused(e->tokens, reg, 1, "repository:a/b:pull"));
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_redirect_target_gets_nothing,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_basic, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_basic_refused, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_token_with_credentials,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_token_file, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_token_renewed_once,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_redirect_target_401,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_http_realm_of_https_registry,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_per_endpoint, fake_env_setup,
                                        fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
