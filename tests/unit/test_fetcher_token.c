/*
 * Unit tests for src/fetcher/token.c: the token request (URL, headers),
 * several waiters on one request, the cache and its expiry on a test
 * clock, failures and what code they report, cancelling, forgetting,
 * that no token or password reaches the log; the credentials of a
 * registry (secret files read again when they change, Basic on the token
 * request) and remembered refusals.  Transfers are the fakes of
 * fetcher_fakes.h, answered by hand.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fetcher_fakes.h"
#include "log.h"


#define SCOPE      "repository:a/b:pull"
#define TOKEN_URL  "https://auth.test/token?service=reg.test" \
                   "&scope=repository%3Aa%2Fb%3Apull"

typedef struct {
    token_waiter_t   w;
    int              calls;
    int              ok;
    oci_errcode_t    code;
    int              seq;           /* the order it was called in */
    token_waiter_t  *cancel;        /* cancel this one when called */
    token_cache_t   *tc;
    const oci_registry_t  *reg;     /* of the token_lookup() */
    const char      *seen;          /* token_lookup() from inside done */
} test_waiter_t;

static int  seq;


static const oci_registry_t *
fake_reg(fake_env_t *e)
{
    const oci_registry_t  *reg;

    reg = oci_config_registry(e->cf, FAKE_REG, strlen(FAKE_REG));
    assert_non_null(reg);

    return reg;
}

static oci_registry_t *with_password(fake_env_t *e, const char *password,
    char *path, size_t cap);


static void
on_token(token_waiter_t *w, int ok, oci_errcode_t code)
{
    test_waiter_t  *t = w->data;

    t->calls++;
    t->ok = ok;
    t->code = code;
    t->seq = ++seq;

    if (t->cancel != NULL) {
        token_waiter_cancel(t->cancel);
    }

    if (t->tc != NULL) {
        t->seen = token_lookup(t->tc, t->reg, 0, SCOPE);
    }
}


static void
waiter_init(test_waiter_t *t)
{
    memset(t, 0, sizeof(test_waiter_t));
    token_waiter_init(&t->w, on_token, t);
}


static void
challenge(oci_challenge_t *ch, const char *realm, const char *service,
    const char *scope)
{
    memset(ch, 0, sizeof(oci_challenge_t));
    ch->scheme = OCI_AUTH_BEARER;
    snprintf(ch->realm, sizeof(ch->realm), "%s", realm);
    snprintf(ch->service, sizeof(ch->service), "%s", service);
    snprintf(ch->scope, sizeof(ch->scope), "%s", scope);
}


static void
reply_token(const char *body)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = "application/json";
    r.body = body;
    fake_xfer_reply(fake_xfer_one(), &r);
}


/* Fetch SCOPE for FAKE_REG with the default challenge. */
static void
fetch(fake_env_t *e, test_waiter_t *t)
{
    oci_challenge_t  ch;

    challenge(&ch, "https://auth.test/token", "reg.test", "");
    assert_int_equal(token_fetch(e->tokens, fake_reg(e), 0, SCOPE, &ch,
                                 &t->w), 0);
}


static void
test_request(void **state)
{
    fake_env_t  *e = *state;
    test_waiter_t    t;
    xfer_t      *x;

    waiter_init(&t);
    fetch(e, &t);

    x = fake_xfer_one();
    assert_string_equal(x->url, TOKEN_URL);
    assert_string_equal(x->accept, "application/json");
    assert_string_equal(x->bearer, "");
    assert_int_equal(x->head, 0);
    assert_int_equal(x->prio, XFER_PRIO_TOKEN);
    /* the registry's transport; no credentials configured, none sent */
    assert_ptr_equal(x->registry, fake_reg(e));
    assert_string_equal(x->username, "");
    assert_string_equal(x->password, "");

    /* nothing cached while the request runs */
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));
    assert_int_equal(t.calls, 0);

    reply_token("{\"token\":\"tok-1\",\"expires_in\":300}");

    assert_int_equal(t.calls, 1);
    assert_int_equal(t.ok, 1);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-1");

    /* keyed by registry and scope */
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "repository:a/c:pull"));
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_SOLO), 0, SCOPE));
    assert_int_equal(fake_xfer_count(), 0);
}


/* The challenge's own scope wins; a realm with a query gets '&'. */
static void
test_request_url(void **state)
{
    fake_env_t       *e = *state;
    oci_challenge_t   ch;
    test_waiter_t         t;

    waiter_init(&t);
    challenge(&ch, "http://auth.test/t?x=1", "",
              "repository:a/b:pull,push");
    assert_int_equal(token_fetch(e->tokens, fake_reg(e), 0, SCOPE,
                                 &ch, &t.w),
                     0);
    assert_string_equal(fake_xfer_one()->url, "http://auth.test/t?x=1"
                        "&scope=repository%3Aa%2Fb%3Apull%2Cpush");

    /* the answer "access_token" is as good as "token" */
    reply_token("{\"access_token\":\"tok-2\"}");
    assert_int_equal(t.ok, 1);

    /* cached under the job's scope, not the challenge's */
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-2");
}


static void
test_bad_realm(void **state)
{
    fake_env_t       *e = *state;
    oci_challenge_t   ch;
    test_waiter_t         t;

    waiter_init(&t);

    challenge(&ch, "ftp://auth.test/token", "reg.test", "");
    assert_int_equal(token_fetch(e->tokens, fake_reg(e), 0, SCOPE,
                                 &ch, &t.w),
                     -1);

    challenge(&ch, "auth.test/token", "reg.test", "");
    assert_int_equal(token_fetch(e->tokens, fake_reg(e), 0, SCOPE,
                                 &ch, &t.w),
                     -1);

    /* not queued, never called, nothing started */
    assert_false(queue_linked(&t.w.link));
    assert_int_equal(fake_xfers.started, 0);
    assert_int_equal(t.calls, 0);

    /* the transfer cannot start: the same */
    fake_xfers.fail_start = 1;
    challenge(&ch, "https://auth.test/token", "reg.test", "");
    assert_int_equal(token_fetch(e->tokens, fake_reg(e), 0, SCOPE,
                                 &ch, &t.w),
                     -1);
    assert_false(queue_linked(&t.w.link));
    fake_xfers.fail_start = 0;

    /* and no half-made entry is left to be joined */
    fetch(e, &t);
    assert_int_equal(fake_xfer_count(), 1);
    reply_token("{\"token\":\"t\"}");
    assert_int_equal(t.calls, 1);
}


/* Many jobs, one request; each waiter is called once, in order. */
static void
test_waiters(void **state)
{
    fake_env_t  *e = *state;
    test_waiter_t    t[3];
    int          i;

    seq = 0;

    for (i = 0; i < 3; i++) {
        waiter_init(&t[i]);
        fetch(e, &t[i]);
    }

    assert_int_equal(fake_xfers.started, 1);

    /* the first one, called, already finds the token */
    t[0].tc = e->tokens;
    t[0].reg = fake_reg(e);

    reply_token("{\"token\":\"shared\",\"expires_in\":120}");

    for (i = 0; i < 3; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].ok, 1);
        assert_int_equal(t[i].seq, i + 1);
        assert_false(queue_linked(&t[i].w.link));
    }

    assert_string_equal(t[0].seen, "shared");
}


static void
test_cancel(void **state)
{
    fake_env_t  *e = *state;
    test_waiter_t    t[3];
    int          i;

    for (i = 0; i < 3; i++) {
        waiter_init(&t[i]);
        fetch(e, &t[i]);
    }

    /* one leaves before the answer; the first, when called, makes the
     * third leave too */
    token_waiter_cancel(&t[1].w);
    token_waiter_cancel(&t[1].w);
    t[0].cancel = &t[2].w;

    reply_token("{\"token\":\"x\"}");

    assert_int_equal(t[0].calls, 1);
    assert_int_equal(t[1].calls, 0);
    assert_int_equal(t[2].calls, 0);
}


static void
test_expiry(void **state)
{
    fake_env_t  *e = *state;
    test_waiter_t    t;

    /* dropped 10 s before upstream's expiry */
    waiter_init(&t);
    fetch(e, &t);
    reply_token("{\"token\":\"five-min\",\"expires_in\":300}");

    fake_now += 289;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE),
                        "five-min");
    fake_now += 1;
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));

    /* gone for good: a fetch starts a new request */
    waiter_init(&t);
    fetch(e, &t);
    assert_int_equal(fake_xfers.started, 2);

    /* a short-lived token is dropped at half its life: no request goes
     * out with one about to expire */
    reply_token("{\"token\":\"short\",\"expires_in\":8}");
    fake_now += 3;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "short");
    fake_now += 1;
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));

    /* 20 s: 10 either way; 1 s: still kept for the requests waiting */
    waiter_init(&t);
    fetch(e, &t);
    reply_token("{\"token\":\"twenty\",\"expires_in\":20}");
    fake_now += 9;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "twenty");
    fake_now += 1;
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));

    waiter_init(&t);
    fetch(e, &t);
    reply_token("{\"token\":\"one\",\"expires_in\":1}");
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "one");
    fake_now += 1;
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));

    /* no expires_in: 60 s, so 50 */
    waiter_init(&t);
    fetch(e, &t);
    reply_token("{\"token\":\"default\"}");
    fake_now += 49;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "default");
    fake_now += 1;
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));

    /* a huge expires_in is clamped to a day (no overflow of now + ttl) */
    waiter_init(&t);
    fetch(e, &t);
    reply_token("{\"token\":\"huge\",\"expires_in\":9000000000000000000}");
    fake_now += 86400 - 11;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "huge");
    fake_now += 1;
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));
}


static void
test_failures(void **state)
{
    static const struct {
        CURLcode        rc;
        long            status;
        const char     *body;
        oci_errcode_t   code;
    } cases[] = {
        { CURLE_OK, 401, "{\"errors\":[]}", OCI_ERR_UNAUTHORIZED },
        { CURLE_OK, 403, NULL, OCI_ERR_UNAUTHORIZED },
        { CURLE_OK, 404, NULL, OCI_ERR_UNAUTHORIZED },
        { CURLE_OK, 500, NULL, OCI_ERR_UNAVAILABLE },
        { CURLE_OK, 503, NULL, OCI_ERR_UNAVAILABLE },
        { CURLE_COULDNT_CONNECT, 0, NULL, OCI_ERR_UNAVAILABLE },
        { CURLE_OPERATION_TIMEDOUT, 0, NULL, OCI_ERR_UNAVAILABLE },
        { CURLE_OK, 200, "not json", OCI_ERR_UNAUTHORIZED },
        { CURLE_OK, 200, "{\"expires_in\":300}", OCI_ERR_UNAUTHORIZED },
        { CURLE_OK, 200, "{\"token\":\"\"}", OCI_ERR_UNAUTHORIZED },
        { CURLE_OK, 200, "{\"token\":\"a b\"}", OCI_ERR_UNAUTHORIZED },
        { CURLE_OK, 200, "{\"token\":\"a\\nb\"}", OCI_ERR_UNAUTHORIZED },
        { CURLE_OK, 200, "{\"token\":\"caf\\u00e9\"}", OCI_ERR_UNAUTHORIZED },
        { CURLE_OK, 204, NULL, OCI_ERR_UNAUTHORIZED },
    };

    fake_env_t    *e = *state;
    test_waiter_t      t;
    fake_reply_t   r;
    size_t         i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        waiter_init(&t);
        fetch(e, &t);

        memset(&r, 0, sizeof(r));
        r.rc = cases[i].rc;
        r.status = cases[i].status;
        r.body = cases[i].body;
        fake_xfer_reply(fake_xfer_one(), &r);

        if (t.calls != 1 || t.ok != 0 || t.code != cases[i].code) {
            fail_msg("case %zu: calls %d ok %d code %s", i, t.calls, t.ok,
                     oci_err_code(t.code));
        }

        assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));
    }

    /* every failure left nothing behind: the next fetch is a new one */
    waiter_init(&t);
    fetch(e, &t);
    assert_int_equal(fake_xfers.started,
                     (int) (sizeof(cases) / sizeof(cases[0])) + 1);
    reply_token("{\"token\":\"finally\"}");
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "finally");
}


/* A token service that does not stop talking: refused past 64 KiB. */
static void
test_body_limit(void **state)
{
    fake_env_t    *e = *state;
    test_waiter_t      t;
    fake_reply_t   r;
    char          *body;
    size_t         len;

    len = 64 * 1024 + 1;
    body = malloc(len);
    assert_non_null(body);
    memset(body, ' ', len);
    memcpy(body, "{\"token\":\"x\"}", 13);

    waiter_init(&t);
    fetch(e, &t);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.body = body;
    r.body_len = len;
    r.chunk = 4096;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_int_equal(t.calls, 1);
    assert_int_equal(t.ok, 0);
    assert_int_equal(t.code, OCI_ERR_UNAUTHORIZED);

    /* exactly 64 KiB is fine */
    waiter_init(&t);
    fetch(e, &t);
    r.body_len = len - 1;
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_int_equal(t.ok, 1);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "x");

    free(body);
}


/* A refused token is dropped; a refresh keeps the old token meanwhile. */
static void
test_forget_and_refresh(void **state)
{
    fake_env_t  *e = *state;
    test_waiter_t    t;

    waiter_init(&t);
    fetch(e, &t);
    reply_token("{\"token\":\"old\"}");

    token_forget(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE);
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));

    /* forgetting what is not there is harmless */
    token_forget(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE);
    token_forget(e->tokens, fake_registry(e, FAKE_SOLO), 0, "nothing");

    waiter_init(&t);
    fetch(e, &t);
    reply_token("{\"token\":\"second\"}");

    /* a job that had not sent the token asks again: still served */
    waiter_init(&t);
    fetch(e, &t);
    assert_int_equal(fake_xfer_count(), 1);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "second");

    /* refused while the refresh runs: gone now, the refresh goes on */
    token_forget(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE);
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));
    assert_int_equal(fake_xfer_count(), 1);

    reply_token("{\"token\":\"third\"}");
    assert_int_equal(t.ok, 1);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "third");

    /* a failed refresh drops the entry, old token and all */
    waiter_init(&t);
    fetch(e, &t);
    {
        fake_reply_t  r;

        memset(&r, 0, sizeof(r));
        r.status = 503;
        fake_xfer_reply(fake_xfer_one(), &r);
    }
    assert_int_equal(t.ok, 0);
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));
}


/* Destroyed with a request running: aborted, waiters not called. */
static void
test_destroy_pending(void **state)
{
    fake_env_t  *e = *state;
    test_waiter_t    t[2];

    waiter_init(&t[0]);
    waiter_init(&t[1]);
    fetch(e, &t[0]);
    fetch(e, &t[1]);

    token_cache_destroy(e->tokens);
    e->tokens = token_cache_create((xfer_multi_t *) e);
    assert_non_null(e->tokens);
    e->jobs->tokens = e->tokens;

    assert_int_equal(fake_xfers.aborted, 1);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(t[0].calls + t[1].calls, 0);
    assert_false(queue_linked(&t[0].w.link));
    assert_false(queue_linked(&t[1].w.link));
}


/* Tokens never reach the log, at any level. */
static void
test_not_logged(void **state)
{
    fake_env_t  *e = *state;
    test_waiter_t    t;
    char         path[] = "/tmp/ocitest-log.XXXXXX";
    char         buf[8192], pw[256];
    int          fd, saved;
    long         n;

    fd = mkstemp(path);
    assert_true(fd >= 0);
    saved = dup(STDERR_FILENO);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
    log_set_verbose(1);

    with_password(e, "s3cr3t-passw0rd", pw, sizeof(pw));

    waiter_init(&t);
    fetch(e, &t);
    reply_token("{\"token\":\"s3cr3t-t0ken\",\"expires_in\":300}");
    token_forget(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE);
    fetch(e, &t);
    reply_token("{\"token\":\"s3cr3t bad\"}");

    log_set_verbose(0);
    dup2(saved, STDERR_FILENO);
    close(saved);

    n = fake_read_file(path, buf, sizeof(buf));
    unlink(path);

    /* something was logged (the debug line, the refusal), no token */
    assert_true(n > 0);
    assert_non_null(strstr(buf, "token for reg.test " SCOPE " cached"));
    assert_null(strstr(buf, "s3cr3t"));
}


/* Write value and a line end to path (a new file renamed over it, as a
 * secret is rotated). */
static void
write_secret(const char *path, const char *value)
{
    char   tmp[256];
    FILE  *f;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", value);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}


/* FAKE_REG with username "alice" and a password file; the config frees
 * what is set here. */
static oci_registry_t *
with_password(fake_env_t *e, const char *password, char *path, size_t cap)
{
    oci_registry_t  *reg = (oci_registry_t *) fake_reg(e);

    snprintf(path, cap, "%s/alice.pw", e->dir);
    write_secret(path, password);

    reg->creds.username = strdup("alice");
    reg->creds.password_file.path = strdup(path);
    assert_non_null(reg->creds.username);
    assert_non_null(reg->creds.password_file.path);

    return reg;
}


/* The token request carries the registry's username and password; a
 * refusal is remembered for negative_ttl, or until the password changes. */
static void
test_credentials_and_refusal(void **state)
{
    fake_env_t       *e = *state;
    oci_registry_t   *reg;
    test_waiter_t     t;
    fake_reply_t      r;
    xfer_t           *x;
    char              path[256];

    reg = with_password(e, "pw-one", path, sizeof(path));
    reg->negative_ttl = 30;

    waiter_init(&t);
    fetch(e, &t);
    x = fake_xfer_one();
    assert_string_equal(x->username, "alice");
    assert_string_equal(x->password, "pw-one");
    assert_non_null(strstr(x->url, "&account=alice"));

    memset(&r, 0, sizeof(r));
    r.status = 401;
    fake_xfer_reply(x, &r);
    assert_int_equal(t.ok, 0);
    assert_int_equal(t.code, OCI_ERR_UNAUTHORIZED);

    /* remembered, counted once, for this scope only */
    assert_true(token_refused(e->tokens, reg, 0, SCOPE));
    assert_false(token_refused(e->tokens, reg, 0, "repository:a/c:pull"));
    assert_int_equal(stats_registry(reg)->auth_failures, 1);
    fake_now += 29;
    assert_true(token_refused(e->tokens, reg, 0, SCOPE));
    fake_now += 1;
    assert_false(token_refused(e->tokens, reg, 0, SCOPE));

    /* refused again, then the password file changes: forgotten at once,
     * and the new password is what the next request carries */
    token_refuse(e->tokens, reg, 0, SCOPE);
    assert_int_equal(stats_registry(reg)->auth_failures, 2);
    assert_true(token_refused(e->tokens, reg, 0, SCOPE));
    write_secret(path, "pw-two");
    assert_false(token_refused(e->tokens, reg, 0, SCOPE));

    waiter_init(&t);
    fetch(e, &t);
    assert_string_equal(fake_xfer_one()->password, "pw-two");
    reply_token("{\"token\":\"granted\"}");
    assert_int_equal(t.ok, 1);
    assert_false(token_refused(e->tokens, reg, 0, SCOPE));

    /* a negative_ttl below the floor still holds TOKEN_REFUSAL_MIN */
    reg->negative_ttl = 0;
    token_refuse(e->tokens, reg, 0, "repository:x/y:pull");
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "repository:x/y:pull"));
    fake_now += TOKEN_REFUSAL_MIN - 1;
    assert_true(token_refused(e->tokens, reg, 0, "repository:x/y:pull"));
    fake_now += 1;
    assert_false(token_refused(e->tokens, reg, 0, "repository:x/y:pull"));
}


/* Secret files: read when they change, the last good value kept while
 * the file is missing, token_file values fit for a header. */
static void
test_secret_files(void **state)
{
    fake_env_t       *e = *state;
    oci_registry_t   *reg, *solo;
    char              path[256], tpath[256];

    reg = with_password(e, "first", path, sizeof(path));
    assert_string_equal(token_password(e->tokens, reg, 0), "first");

    write_secret(path, "second-longer");
    assert_string_equal(token_password(e->tokens, reg, 0), "second-longer");

    /* same length, new file: still noticed */
    write_secret(path, "third-longer!");
    assert_string_equal(token_password(e->tokens, reg, 0), "third-longer!");

    assert_int_equal(unlink(path), 0);
    assert_string_equal(token_password(e->tokens, reg, 0), "third-longer!");

    /* no username: no password, whatever the file */
    solo = (oci_registry_t *) oci_config_registry(e->cf, FAKE_SOLO,
                                                  strlen(FAKE_SOLO));
    assert_null(token_password(e->tokens, solo, 0));
    assert_null(token_file_token(e->tokens, solo, 0));

    snprintf(tpath, sizeof(tpath), "%s/solo.token", e->dir);
    write_secret(tpath, "ready-token");
    solo->creds.token_file.path = strdup(tpath);
    assert_non_null(solo->creds.token_file.path);
    assert_string_equal(token_file_token(e->tokens, solo, 0), "ready-token");

    write_secret(tpath, "has space");
    assert_null(token_file_token(e->tokens, solo, 0));
    write_secret(tpath, "fixed");
    assert_string_equal(token_file_token(e->tokens, solo, 0), "fixed");

    /* Basic wanted: remembered per registry */
    assert_false(token_wants_basic(e->tokens, reg, 0));
    token_set_basic(e->tokens, reg, 0);
    assert_true(token_wants_basic(e->tokens, reg, 0));
    assert_false(token_wants_basic(e->tokens, solo, 0));
}


/* A token service refusal clears a token the entry still held. */
static void
test_refusal_drops_token(void **state)
{
    fake_env_t     *e = *state;
    test_waiter_t   t;
    fake_reply_t    r;

    waiter_init(&t);
    fetch(e, &t);
    reply_token("{\"token\":\"held\"}");

    /* a refresh while the token is cached, refused */
    waiter_init(&t);
    fetch(e, &t);
    memset(&r, 0, sizeof(r));
    r.status = 403;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));
    assert_true(token_refused(e->tokens, fake_reg(e), 0, SCOPE));
}


/* A token for scope, granted for expires_in seconds. */
static void
grant(fake_env_t *e, const char *scope, const char *token, long expires_in)
{
    oci_challenge_t  ch;
    test_waiter_t    t;
    char             body[128];

    waiter_init(&t);
    challenge(&ch, "https://auth.test/token", "reg.test", "");
    assert_int_equal(token_fetch(e->tokens, fake_reg(e), 0, scope,
                                 &ch, &t.w), 0);
    snprintf(body, sizeof(body), "{\"token\":\"%s\",\"expires_in\":%ld}",
             token, expires_in);
    reply_token(body);
    assert_int_equal(t.ok, 1);
}


/* Beyond the cap the expired entries go first, then the oldest; one with
 * a request under way stays, and when every entry is under way no new
 * request starts. */
static void
test_cap(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg = fake_reg(e);
    oci_challenge_t         ch;
    test_waiter_t           t[4];
    fake_reply_t            r;
    int                     i;

    token_cache_set_cap(e->tokens, 3);

    grant(e, "s:a", "tok-a", 3600);
    grant(e, "s:b", "tok-b", 20);           /* cached 10 s */
    token_refuse(e->tokens, reg, 0, "s:c");
    assert_int_equal(token_cache_count(e->tokens), 3);

    /* b expired: it goes, though a is older */
    fake_now += 11;
    grant(e, "s:d", "tok-d", 3600);
    assert_int_equal(token_cache_count(e->tokens), 3);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:a"), "tok-a");
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:b"));
    assert_true(token_refused(e->tokens, reg, 0, "s:c"));
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:d"), "tok-d");

    /* none expired: the oldest, a, goes for a refusal */
    token_refuse(e->tokens, reg, 0, "s:e");
    assert_int_equal(token_cache_count(e->tokens), 3);
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:a"));
    assert_true(token_refused(e->tokens, reg, 0, "s:c"));
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:d"), "tok-d");
    assert_true(token_refused(e->tokens, reg, 0, "s:e"));

    /* a token renewed is the newest: c goes before d */
    grant(e, "s:d", "tok-d2", 3600);
    grant(e, "s:f", "tok-f", 3600);
    assert_false(token_refused(e->tokens, reg, 0, "s:c"));
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:d"), "tok-d2");

    /* requests under way stay; with three of them nothing more fits */
    challenge(&ch, "https://auth.test/token", "reg.test", "");

    for (i = 0; i < 4; i++) {
        waiter_init(&t[i]);
    }

    assert_int_equal(token_fetch(e->tokens, reg, 0, "s:x", &ch,
                                 &t[0].w), 0);
    assert_int_equal(token_fetch(e->tokens, reg, 0, "s:y", &ch,
                                 &t[1].w), 0);
    assert_int_equal(token_fetch(e->tokens, reg, 0, "s:z", &ch,
                                 &t[2].w), 0);
    assert_int_equal(token_cache_count(e->tokens), 3);
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:d"));
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:f"));

    assert_int_equal(token_fetch(e->tokens, reg, 0, "s:w", &ch,
                                 &t[3].w), -1);
    assert_false(queue_linked(&t[3].w.link));
    token_refuse(e->tokens, reg, 0, "s:w");
    assert_false(token_refused(e->tokens, reg, 0, "s:w"));
    assert_int_equal(fake_xfer_count(), 3);

    /* the three answered: each waiter got its token */
    for (i = 0; i < 3; i++) {
        memset(&r, 0, sizeof(r));
        r.status = 200;
        r.body = "{\"token\":\"t\"}";
        fake_xfer_reply(fake_xfer_at(0), &r);
    }

    assert_int_equal(t[0].ok + t[1].ok + t[2].ok, 3);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:y"), "t");
}


/* Many refusals of names a client made up: the cache stays at its cap,
 * every entry still found among them. */
static void
test_cap_many(void **state)
{
    fake_env_t            *e = *state;
    const oci_registry_t  *reg = fake_reg(e);
    char                   scope[64];
    int                    i;

    token_cache_set_cap(e->tokens, 64);

    for (i = 0; i < 200; i++) {
        snprintf(scope, sizeof(scope), "repository:junk/%d:pull", i);
        token_refuse(e->tokens, reg, 0, scope);
    }

    assert_int_equal(token_cache_count(e->tokens), 64);

    for (i = 0; i < 200; i++) {
        snprintf(scope, sizeof(scope), "repository:junk/%d:pull", i);
        assert_int_equal(token_refused(e->tokens, reg, 0, scope), i >= 136);
    }

    /* all of them expire */
    fake_now += 3600;
    assert_false(token_refused(e->tokens, reg, 0, "repository:junk/199:pull"));
    grant(e, SCOPE, "after", 300);
    assert_int_equal(token_cache_count(e->tokens), 64);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "after");
}


/*
 * Refresh before expiry.  A token granted for 300 s is kept 290 s (from
 * 1000 to 1290 on the test clock); its refresh window is the last quarter
 * of that or the last 60 s, whichever is shorter: from 1230 on.
 */

/* Reply to x with status (and no body) or, for 0, a connect failure. */
static void
reply_failure(xfer_t *x, long status)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.rc = status == 0 ? CURLE_COULDNT_CONNECT : CURLE_OK;
    fake_xfer_reply(x, &r);
}


/* (a) Nothing before the window; at its start one token request, the same
 * as the first one, while the token is still returned. */
static void
test_refresh_window(void **state)
{
    fake_env_t  *e = *state;
    xfer_t      *x;

    grant(e, SCOPE, "tok-1", 300);
    assert_int_equal(fake_xfers.started, 1);

    fake_now += 229;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-1");
    assert_int_equal(fake_xfer_count(), 0);

    fake_now += 1;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-1");
    x = fake_xfer_one();
    assert_string_equal(x->url, TOKEN_URL);
    assert_string_equal(x->accept, "application/json");
    assert_string_equal(x->bearer, "");
    assert_int_equal(x->prio, XFER_PRIO_TOKEN);
    assert_int_equal(x->redirected, 1);
    assert_ptr_equal(x->registry, fake_reg(e));
    reply_token("{\"token\":\"tok-2\",\"expires_in\":300}");

    /* a short life (40 s, kept 30): the last quarter, 7 s */
    grant(e, "s:short", "short-1", 40);
    fake_now += 22;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:short"),
                        "short-1");
    assert_int_equal(fake_xfer_count(), 0);
    fake_now += 1;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:short"),
                        "short-1");
    assert_int_equal(fake_xfer_count(), 1);
    reply_token("{\"token\":\"short-2\",\"expires_in\":40}");
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:short"),
                        "short-2");

    /* a life too short for a window (3 s, kept 1): never refreshed */
    grant(e, "s:tiny", "tiny", 3);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:tiny"), "tiny");
    assert_int_equal(fake_xfer_count(), 0);
}


/* (b) Inside the window, however many lookups: one request, no waiter,
 * the old token (and its serial) meanwhile; with the configured
 * credentials the first request carried. */
static void
test_refresh_once(void **state)
{
    fake_env_t      *e = *state;
    oci_registry_t  *reg;
    unsigned long    serial;
    char             path[256];
    xfer_t          *x;
    int              i;

    reg = with_password(e, "pw-one", path, sizeof(path));

    grant(e, SCOPE, "tok-1", 300);
    serial = token_serial(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE);
    assert_true(serial != 0);

    /* the password file rotated meanwhile: the refresh sends the new */
    write_secret(path, "pw-two");

    fake_now += 230;

    for (i = 0; i < 5; i++) {
        assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE),
                            "tok-1");
        assert_int_equal(token_serial(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), serial);
        fake_now += 10;
    }

    assert_int_equal(fake_xfers.started, 2);
    x = fake_xfer_one();
    assert_string_equal(x->username, "alice");
    assert_string_equal(x->password, "pw-two");
    assert_non_null(strstr(x->url, "&account=alice"));
    assert_ptr_equal(x->registry, reg);
    assert_int_equal(fake_xfer_count(), 1);
}


/* (c) The new token replaces the old; the next refresh waits for the new
 * token's own window. */
static void
test_refresh_replaces(void **state)
{
    fake_env_t     *e = *state;
    unsigned long   serial;

    grant(e, SCOPE, "tok-1", 300);
    serial = token_serial(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE);

    fake_now += 230;                                    /* 1230 */
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-1");
    reply_token("{\"token\":\"tok-2\",\"expires_in\":300}");

    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-2");
    assert_true(token_serial(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE) > serial);
    assert_false(token_refused(e->tokens, fake_reg(e), 0, SCOPE));

    /* kept until 1520, refreshed from 1460 */
    fake_now += 229;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-2");
    assert_int_equal(fake_xfers.started, 2);
    assert_int_equal(fake_xfer_count(), 0);

    fake_now += 1;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-2");
    assert_int_equal(fake_xfers.started, 3);
    reply_token("{\"token\":\"tok-3\",\"expires_in\":300}");
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-3");

    /* the old one lived past its own drop time in the new one */
    fake_now += 289;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-3");
}


/* (d) A failed refresh (unreachable, 5xx, refused): the old token serves
 * until its drop time, with no second request and no refusal remembered;
 * then a fetch starts a new request as for any missing token. */
static void
test_refresh_fails(void **state)
{
    static const long  statuses[] = { 503, 0, 401, 200 };

    fake_env_t     *e = *state;
    test_waiter_t   t;
    size_t          i;
    int             started;

    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        fake_now = 1000;
        grant(e, SCOPE, "tok-1", 300);
        started = fake_xfers.started;

        fake_now += 230;
        assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE),
                            "tok-1");
        assert_int_equal(fake_xfers.started, started + 1);

        if (statuses[i] == 200) {
            reply_token("{\"token\":\"not a token\"}");

        } else {
            reply_failure(fake_xfer_one(), statuses[i]);
        }

        for ( /* void */ ; fake_now < 1290; fake_now += 5) {
            if (token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE) == NULL) {
                fail_msg("case %zu: dropped at %ld", i, (long) fake_now);
            }
        }

        assert_int_equal(fake_xfers.started, started + 1);
        assert_false(token_refused(e->tokens, fake_reg(e), 0, SCOPE));
        assert_int_equal(stats_registry(fake_reg(e))->auth_failures, 0);

        fake_now = 1290;
        assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));

        waiter_init(&t);
        fetch(e, &t);
        assert_int_equal(fake_xfers.started, started + 2);
        reply_token("{\"token\":\"tok-1\",\"expires_in\":300}");
        assert_int_equal(t.ok, 1);
        token_forget(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE);
    }

    /* a refresh that cannot even start is not tried again either */
    fake_now = 1000;
    grant(e, SCOPE, "tok-1", 300);
    started = fake_xfers.started;
    fake_xfers.fail_start = 1;
    fake_now += 230;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-1");
    fake_xfers.fail_start = 0;
    fake_now += 10;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-1");
    assert_int_equal(fake_xfers.started, started);
    assert_int_equal(fake_xfer_count(), 0);
}


/* (e) A token_fetch() while a refresh runs joins it: its waiter gets the
 * new token, or, if the refresh fails, the old one still cached. */
static void
test_refresh_joined(void **state)
{
    fake_env_t     *e = *state;
    test_waiter_t   t;

    grant(e, SCOPE, "tok-1", 300);
    fake_now += 230;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-1");

    waiter_init(&t);
    fetch(e, &t);
    assert_int_equal(fake_xfers.started, 2);
    assert_int_equal(fake_xfer_count(), 1);
    assert_true(token_waiter_pending(&t.w));

    reply_token("{\"token\":\"tok-2\",\"expires_in\":300}");
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.ok, 1);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-2");

    /* joined, and the refresh fails: the token cached is still good */
    fake_now += 230;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-2");
    waiter_init(&t);
    fetch(e, &t);
    assert_int_equal(fake_xfers.started, 3);
    reply_failure(fake_xfer_one(), 503);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.ok, 1);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-2");
    assert_int_equal(fake_xfer_count(), 0);
}


/* A refresh nobody waits for is aborted by token_forget() (the next fetch
 * asks anew) and by token_refuse(); one that a fetch joined goes on after
 * a refusal, but its token is not kept and the refusal stands. */
static void
test_refresh_forget_refuse(void **state)
{
    fake_env_t     *e = *state;
    test_waiter_t   t;

    grant(e, SCOPE, "tok-1", 300);
    fake_now += 230;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-1");
    assert_int_equal(fake_xfer_count(), 1);

    token_forget(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE);
    assert_int_equal(fake_xfers.aborted, 1);
    assert_int_equal(fake_xfer_count(), 0);
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));

    waiter_init(&t);
    fetch(e, &t);
    assert_int_equal(fake_xfers.started, 3);
    reply_token("{\"token\":\"tok-2\",\"expires_in\":300}");
    assert_int_equal(t.ok, 1);

    /* refused while its refresh runs */
    fake_now += 230;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-2");
    token_refuse(e->tokens, fake_reg(e), 0, SCOPE);
    assert_int_equal(fake_xfers.aborted, 2);
    assert_int_equal(fake_xfer_count(), 0);
    assert_true(token_refused(e->tokens, fake_reg(e), 0, SCOPE));

    /* again with a waiter: the refresh goes on, its token is dropped */
    fake_now += TOKEN_REFUSAL_MIN;
    grant(e, SCOPE, "tok-3", 300);
    fake_now += 230;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "tok-3");
    waiter_init(&t);
    fetch(e, &t);
    token_refuse(e->tokens, fake_reg(e), 0, SCOPE);
    assert_int_equal(fake_xfer_count(), 1);
    reply_token("{\"token\":\"tok-4\",\"expires_in\":300}");
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.ok, 0);
    assert_int_equal(t.code, OCI_ERR_UNAUTHORIZED);
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE));
    assert_true(token_refused(e->tokens, fake_reg(e), 0, SCOPE));
    assert_int_equal(stats_registry(fake_reg(e))->auth_failures, 2);
    fake_now += TOKEN_REFUSAL_MIN - 1;
    assert_true(token_refused(e->tokens, fake_reg(e), 0, SCOPE));
}


/* The origin rule of the first request holds for the refresh: no
 * credentials to a plain-http realm of an https registry. */
static void
test_refresh_origin_rule(void **state)
{
    fake_env_t       *e = *state;
    oci_registry_t   *reg;
    oci_challenge_t   ch;
    test_waiter_t     t;
    xfer_t           *x;
    char              path[256];

    reg = with_password(e, "pw-one", path, sizeof(path));

    /* the registry's endpoint is https */
    free(reg->endpoints[0]);
    reg->endpoints[0] = strdup("https://one.test");
    assert_non_null(reg->endpoints[0]);

    waiter_init(&t);
    challenge(&ch, "http://auth.test/token", "reg.test", "");
    assert_int_equal(token_fetch(e->tokens, reg, 0, SCOPE, &ch, &t.w), 0);
    assert_string_equal(fake_xfer_one()->username, "");
    reply_token("{\"token\":\"anon\",\"expires_in\":300}");

    fake_now += 230;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, SCOPE), "anon");
    x = fake_xfer_one();
    assert_string_equal(x->url, "http://auth.test/token?service=reg.test"
                        "&scope=repository%3Aa%2Fb%3Apull");
    assert_string_equal(x->username, "");
    assert_string_equal(x->password, "");
}


/* The cap leaves an entry being refreshed alone. */
static void
test_refresh_cap(void **state)
{
    fake_env_t  *e = *state;

    token_cache_set_cap(e->tokens, 2);

    grant(e, "s:a", "tok-a", 300);
    fake_now += 1;
    grant(e, "s:b", "tok-b", 300);

    fake_now += 229;
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:a"), "tok-a");
    assert_int_equal(fake_xfer_count(), 1);

    /* a newer entry needs room: b goes, though a is older */
    token_refuse(e->tokens, fake_reg(e), 0, "s:c");
    assert_int_equal(token_cache_count(e->tokens), 2);
    assert_int_equal(fake_xfer_count(), 1);
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:a"), "tok-a");
    assert_null(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:b"));

    reply_token("{\"token\":\"tok-a2\",\"expires_in\":300}");
    assert_string_equal(token_lookup(e->tokens, fake_registry(e, FAKE_REG), 0, "s:a"), "tok-a2");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_request_url, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_bad_realm, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_waiters, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_expiry, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_failures, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_forget_and_refresh,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_pending, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_not_logged, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_credentials_and_refusal,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_secret_files, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_refusal_drops_token,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cap, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cap_many, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_window, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_once, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_replaces, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_fails, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_joined, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_forget_refuse,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_origin_rule,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_cap, fake_env_setup,
                                        fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
