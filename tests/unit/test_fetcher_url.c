/*
 * Unit tests for src/fetcher/url.c: origins, scheme and host, and the
 * kinds of address a redirect must not lead to.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "url.h"


static void
test_address_local(void **state)
{
    static const struct {
        const char  *addr;
        const char  *kind;          /* NULL: may be redirected to */
    } cases[] = {
        { "127.0.0.1", "loopback" },
        { "127.255.0.3", "loopback" },
        { "::1", "loopback" },
        { "[::1]", "loopback" },
        { "::ffff:127.0.0.1", "loopback" },
        { "169.254.169.254", "link-local" },
        { "fe80::1", "link-local" },
        { "febf::1", "link-local" },
        { "::ffff:169.254.1.1", "link-local" },
        { "10.0.0.5", "private" },
        { "172.16.0.1", "private" },
        { "172.31.255.255", "private" },
        { "192.168.1.1", "private" },
        { "100.64.0.1", "private" },
        { "fc00::1", "private" },
        { "fd12:3456::1", "private" },
        { "0.0.0.0", "unspecified" },
        { "0.1.2.3", "unspecified" },
        { "::", "unspecified" },

        /* public addresses, just outside the ranges */
        { "8.8.8.8", NULL },
        { "172.15.255.255", NULL },
        { "172.32.0.0", NULL },
        { "192.169.0.1", NULL },
        { "169.253.0.1", NULL },
        { "100.128.0.1", NULL },
        { "11.0.0.1", NULL },
        { "2001:db8::1", NULL },
        { "fec0::1", NULL },
        { "::ffff:8.8.8.8", NULL },
        { "::2", NULL },

        /* not numeric addresses */
        { "localhost", NULL },
        { "", NULL },
        { "127.0.0.1.example", NULL },
        { "[127.0.0.1", NULL },
    };

    size_t       i;
    const char  *got;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        got = url_address_local(cases[i].addr);

        if (cases[i].kind == NULL ? got != NULL
            : got == NULL || strcmp(got, cases[i].kind) != 0)
        {
            fail_msg("%s: \"%s\", expected \"%s\"", cases[i].addr,
                     got != NULL ? got : "(null)",
                     cases[i].kind != NULL ? cases[i].kind : "(null)");
        }
    }
}


static void
test_scheme_host(void **state)
{
    char  scheme[16], host[64], tiny[4];

    assert_int_equal(url_scheme_host("HTTPS://Registry.Example:443/v2/",
                                     scheme, sizeof(scheme), host,
                                     sizeof(host)), 0);
    assert_string_equal(scheme, "https");
    assert_string_equal(host, "registry.example");

    assert_int_equal(url_scheme_host("http://[::1]:5000/x?sig=1", scheme,
                                     sizeof(scheme), host, sizeof(host)),
                     0);
    assert_string_equal(scheme, "http");
    assert_string_equal(host, "::1");

    assert_int_equal(url_scheme_host("http://u:p@10.0.0.5/", scheme,
                                     sizeof(scheme), host, sizeof(host)),
                     0);
    assert_string_equal(host, "10.0.0.5");

    assert_int_equal(url_scheme_host("not a url", scheme, sizeof(scheme),
                                     host, sizeof(host)), -1);
    assert_int_equal(url_scheme_host("http://long-host.example/", scheme,
                                     sizeof(scheme), tiny, sizeof(tiny)),
                     -1);
}


static void
test_origin(void **state)
{
    char  o[128];

    assert_int_equal(url_origin("HTTPS://CDN.example/a?b", o, sizeof(o)), 0);
    assert_string_equal(o, "https://cdn.example:443");
    assert_int_equal(url_origin("http://cdn.example:8080", o, sizeof(o)), 0);
    assert_string_equal(o, "http://cdn.example:8080");
    assert_int_equal(url_origin("::", o, sizeof(o)), -1);

    assert_true(url_same_origin("http://a.test/x", "HTTP://A.TEST:80/y"));
    assert_false(url_same_origin("http://a.test/x", "https://a.test/x"));
    assert_false(url_same_origin("http://a.test/x", "http://a.test:81/x"));
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_local),
        cmocka_unit_test(test_scheme_host),
        cmocka_unit_test(test_origin),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
