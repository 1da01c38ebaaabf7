/*
 * Unit tests for src/oci_auth.c: WWW-Authenticate challenges and token
 * endpoint answers.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "oci_auth.h"


static int
parse(const char *s, oci_challenge_t *c)
{
    return oci_auth_parse_challenge(s, strlen(s), c);
}


static void
test_bearer(void **state)
{
    oci_challenge_t  c;

    assert_int_equal(parse("Bearer realm=\"https://auth.docker.io/token\","
                           "service=\"registry.docker.io\","
                           "scope=\"repository:library/nginx:pull\"", &c),
                     OCI_OK);
    assert_int_equal(c.scheme, OCI_AUTH_BEARER);
    assert_string_equal(c.realm, "https://auth.docker.io/token");
    assert_string_equal(c.service, "registry.docker.io");
    assert_string_equal(c.scope, "repository:library/nginx:pull");

    /* commas inside quotes, blanks around '=' and ',', any case */
    assert_int_equal(parse("  bEaReR  REALM = \"https://ghcr.io/token\" ,"
                           "\tScope=\"repository:a/b:pull,push\" , "
                           "Service = ghcr.io  ", &c), OCI_OK);
    assert_int_equal(c.scheme, OCI_AUTH_BEARER);
    assert_string_equal(c.realm, "https://ghcr.io/token");
    assert_string_equal(c.scope, "repository:a/b:pull,push");
    assert_string_equal(c.service, "ghcr.io");

    /* escapes; unknown parameters ignored; empty list elements */
    assert_int_equal(parse("Bearer error=\"invalid_token\",, "
                           "realm=\"https://a/t?x=\\\"q\\\"\\\\\","
                           "foo=bar", &c), OCI_OK);
    assert_string_equal(c.realm, "https://a/t?x=\"q\"\\");
    assert_string_equal(c.service, "");
    assert_string_equal(c.scope, "");

    /* bare token values */
    assert_int_equal(parse("Bearer realm=https://a/token", &c), OCI_OK);
    assert_string_equal(c.realm, "https://a/token");

    /* a second challenge after the first is not read */
    assert_int_equal(parse("Bearer realm=\"https://a/t\", Basic "
                           "realm=\"x\"", &c), OCI_OK);
    assert_int_equal(c.scheme, OCI_AUTH_BEARER);
    assert_string_equal(c.realm, "https://a/t");
}


static void
test_basic(void **state)
{
    oci_challenge_t  c;

    assert_int_equal(parse("Basic realm=\"Registry Realm\"", &c), OCI_OK);
    assert_int_equal(c.scheme, OCI_AUTH_BASIC);
    assert_string_equal(c.realm, "Registry Realm");

    assert_int_equal(parse("basic", &c), OCI_OK);
    assert_int_equal(c.scheme, OCI_AUTH_BASIC);
    assert_string_equal(c.realm, "");

    assert_int_equal(parse("BASIC realm=x, charset=\"UTF-8\"", &c), OCI_OK);
    assert_string_equal(c.realm, "x");
}


static void
test_malformed(void **state)
{
    static const char *const  bad[] = {
        "",
        "   ",
        "Bearer",                               /* no realm */
        "Bearer service=\"x\"",
        "Bearer realm=\"\"",
        "Bearerrealm=\"x\"",
        "Bearer, realm=\"x\"x",
        "Negotiate abc",
        "Digest realm=\"x\"",
        "Bearer realm=\"unterminated",
        "Bearer realm=\"x\\",
        "Bearer realm=",
        "Bearer realm=\"a\" service=\"b\"",
        "Bearer realm=\"a\";service=\"b\"",
        "Bearer realm",
        "Bearer =x",
        "Bearer realm=\"a\nb\"",
        "Bearer realm=\"a\rb\"",
        "Bearer realm=\"a\",realm=\"b\"",
        "Bearer realm=a b",
        "Bearer token68abc==",
    };

    oci_challenge_t  c;
    size_t           i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &c) != OCI_EINVAL) {
            fail_msg("accepted: \"%s\"", bad[i]);
        }
    }

    /* only len bytes are read */
    assert_int_equal(oci_auth_parse_challenge("Bearer realm=\"x\"", 15, &c),
                     OCI_EINVAL);
    assert_int_equal(oci_auth_parse_challenge("Bearer realm=\"x\"zzz", 16,
                                              &c), OCI_OK);
    assert_string_equal(c.realm, "x");
}


static void
test_too_long(void **state)
{
    oci_challenge_t  c;
    char             s[2048];

    /* realm holds 1023 bytes */
    strcpy(s, "Bearer realm=\"");
    memset(s + 14, 'r', 1023);
    strcpy(s + 14 + 1023, "\"");
    assert_int_equal(parse(s, &c), OCI_OK);
    assert_int_equal(strlen(c.realm), 1023);

    memset(s + 14, 'r', 1024);
    strcpy(s + 14 + 1024, "\"");
    assert_int_equal(parse(s, &c), OCI_ERANGE);

    /* bare value too */
    strcpy(s, "Bearer realm=x, service=");
    memset(s + 24, 's', 256);
    s[24 + 256] = '\0';
    assert_int_equal(parse(s, &c), OCI_ERANGE);
    s[24 + 255] = '\0';
    assert_int_equal(parse(s, &c), OCI_OK);

    /* an unknown parameter may be long */
    strcpy(s, "Bearer realm=x, other=\"");
    memset(s + 23, 'o', 1500);
    strcpy(s + 23 + 1500, "\"");
    assert_int_equal(parse(s, &c), OCI_OK);
}


static void
test_token(void **state)
{
    char         tok[64];
    long         exp;
    const char  *j;

    j = "{\"token\":\"abc.def\",\"expires_in\":300}";
    assert_int_equal(oci_auth_parse_token(j, strlen(j), tok, sizeof(tok),
                                          &exp), OCI_OK);
    assert_string_equal(tok, "abc.def");
    assert_int_equal(exp, 300);

    j = "{\"access_token\":\"xyz\"}";
    assert_int_equal(oci_auth_parse_token(j, strlen(j), tok, sizeof(tok),
                                          &exp), OCI_OK);
    assert_string_equal(tok, "xyz");
    assert_int_equal(exp, 60);

    j = "{\"token\":\"t1\",\"access_token\":\"t2\",\"expires_in\":60.5,"
        "\"issued_at\":\"2024-01-01T00:00:00Z\"}";
    assert_int_equal(oci_auth_parse_token(j, strlen(j), tok, sizeof(tok),
                                          &exp), OCI_OK);
    assert_string_equal(tok, "t1");
    assert_int_equal(exp, 60);

    j = "{\"token\":\"\",\"access_token\":\"t2\"}";
    assert_int_equal(oci_auth_parse_token(j, strlen(j), tok, sizeof(tok),
                                          &exp), OCI_OK);
    assert_string_equal(tok, "t2");

    /* exactly fits / one too many */
    j = "{\"token\":\"0123456789\"}";
    assert_int_equal(oci_auth_parse_token(j, strlen(j), tok, 11, &exp),
                     OCI_OK);
    assert_int_equal(oci_auth_parse_token(j, strlen(j), tok, 10, &exp),
                     OCI_ERANGE);
}


static void
test_token_bad(void **state)
{
    static const char *const  bad[] = {
        "",
        "null",
        "[]",
        "\"token\"",
        "{}",
        "{\"token\":\"\"}",
        "{\"token\":5}",
        "{\"token\":null}",
        "{\"token\":\"a b\"}",
        "{\"token\":\"a\\r\\nX-Evil: 1\"}",
        "{\"token\":\"caf\\u00e9\"}",
        "{\"token\":\"a\",\"expires_in\":-1}",
        "{\"token\":\"a\",\"expires_in\":\"60\"}",
        "{\"token\":\"a\",\"token\":\"b\"}",
        "{\"token\":\"a\"} x",
        "{\"token\":\"a\"",
    };

    char    tok[64];
    long    exp;
    size_t  i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (oci_auth_parse_token(bad[i], strlen(bad[i]), tok, sizeof(tok),
                                 &exp) != OCI_EINVAL)
        {
            fail_msg("accepted: %s", bad[i]);
        }
    }

    /* only len bytes are read */
    assert_int_equal(oci_auth_parse_token("{\"token\":\"a\"}", 12, tok,
                                          sizeof(tok), &exp), OCI_EINVAL);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_token_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
