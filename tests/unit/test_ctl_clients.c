/*
 * Unit tests for src/ctl/octl_clients.c: the mirror URL's grammar, the
 * quoting every generated value goes through, the exact bytes of each
 * format from a config loaded from a file, and the folder it writes.
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

#include "oci_config.h"
#include "octl_clients.h"
#include "test_util.h"


typedef struct {
    char           dir[64];
    char           file[128];
    char           err[1024];
    char           reports[4096];
    oci_config_t  *cf;
} fixture_t;


/* docker.io (the default), ghcr.io behind another endpoint, a plain
 * http registry with a port, named as its endpoint */
static const char  three_registries[] =
    "store = { path = \"/tmp/unused-store\"; };\n"
    "default_registry = \"docker.io\";\n"
    "registries = (\n"
    "  { name = \"docker.io\";"
    "    endpoints = ( \"https://registry-1.docker.io\" ); },\n"
    "  { name = \"ghcr.io\";"
    "    endpoints = ( \"https://ghcr.corp.example\" ); },\n"
    "  { name = \"reg.local:5001\";"
    "    endpoints = ( \"http://reg.local:5001\" ); }\n"
    ");\n";


static int
setup(void **state)
{
    fixture_t  *f;

    f = calloc(1, sizeof(fixture_t));
    if (f == NULL) {
        return -1;
    }

    strcpy(f->dir, "/tmp/oci-test-clients.XXXXXX");

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

    if (f->cf != NULL) {
        oci_config_destroy(f->cf);
    }

    test_rm_rf(f->dir);
    free(f);

    return 0;
}


static void
load(fixture_t *f, const char *text)
{
    FILE  *fp;

    fp = fopen(f->file, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);

    if (f->cf != NULL) {
        oci_config_destroy(f->cf);
        f->cf = NULL;
    }

    if (oci_config_load(f->file, &f->cf, f->err, sizeof(f->err)) != OCI_OK) {
        fail_msg("config: %s", f->err);
    }
}


static void
collect(const char *line, void *data)
{
    fixture_t  *f = data;
    size_t      n;

    n = strlen(f->reports);
    snprintf(f->reports + n, sizeof(f->reports) - n, "%s\n", line);
}


static char *
slurp(const char *path)
{
    static char   buf[8192];
    FILE         *fp;
    size_t        n;

    fp = fopen(path, "r");
    if (fp == NULL) {
        fail_msg("cannot open %s", path);
    }

    n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);

    return buf;
}


static void
mirror(const char *url, octl_mirror_t *m)
{
    char  err[256];

    if (octl_mirror_parse(url, m, err, sizeof(err)) != OCI_OK) {
        fail_msg("%s: %s", url, err);
    }
}


static void
test_mirror_url(void **state)
{
    static const struct {
        const char  *url;
        int          https;
        const char  *hostport;
        const char  *normal;
    } good[] = {
        { "http://mirror.example:5000", 0, "mirror.example:5000",
          "http://mirror.example:5000" },
        { "https://Mirror.Example/", 1, "mirror.example",
          "https://mirror.example" },
        { "http://10.0.0.5:80", 0, "10.0.0.5:80", "http://10.0.0.5:80" },
        { "https://[fd00::1]:5443", 1, "[fd00::1]:5443",
          "https://[fd00::1]:5443" },
        { "http://m:65535/", 0, "m:65535", "http://m:65535" },
    };

    static const struct {
        const char  *url;
        const char  *why;
    } bad[] = {
        { "mirror.example:5000", "must start with http:// or https://" },
        { "ftp://mirror.example", "must start with http:// or https://" },
        { "http://", "no host" },
        { "http:///", "no host" },
        { "http://mirror.example/ocimirror", "no path, query or fragment" },
        { "http://mirror.example:5000/v2/", "no path, query or fragment" },
        { "http://mirror.example?x=1", "no path, query or fragment" },
        { "http://u:p@mirror.example", "no user or password" },
        { "http://u@mirror.example", "no user or password" },
        { "http://mirror.example:0", "the port is a number" },
        { "http://mirror.example:65536", "the port is a number" },
        { "http://mirror.example:", "the port is a number" },
        { "http://mirror.example:5x", "the port is a number" },
        { "http://mirror.example:1234567", "the port is a number" },
        { "http://mir\"ror", "letters, digits" },
        { "http://mir ror", "letters, digits" },
        { "http://.mirror", "a bad host name" },
        { "http://mirror-", "a bad host name" },
        { "http://[fd00::1", "unclosed or empty" },
        { "http://[]", "unclosed or empty" },
        { "http://[fd00::g]", "hex digits" },
        { "http://[fd00::1]x", "a bad character after the host" },
    };

    octl_mirror_t  m;
    size_t         i;
    char           err[256];

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        mirror(good[i].url, &m);
        assert_int_equal(m.https, good[i].https);
        assert_string_equal(m.hostport, good[i].hostport);
        assert_string_equal(m.url, good[i].normal);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';

        if (octl_mirror_parse(bad[i].url, &m, err, sizeof(err))
            != OCI_EINVAL)
        {
            fail_msg("%s was taken", bad[i].url);
        }

        if (strstr(err, bad[i].why) == NULL
            || strstr(err, "bad mirror URL \"") != err)
        {
            fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].url, err,
                     bad[i].why);
        }
    }
}


static void
test_quoting(void **state)
{
    octl_text_t  t;

    memset(&t, 0, sizeof(t));

    octl_text_quoted(&t, "plain/path:5000");
    octl_text_add(&t, " ");
    octl_text_quoted(&t, "a\"b\\c\nd\te\x01\x7f");
    octl_text_add(&t, " ");
    octl_text_quoted(&t, "");
    octl_text_add(&t, " ");
    octl_text_quoted(&t, "caf\xc3\xa9");

    assert_false(t.failed);
    assert_string_equal(t.data, "\"plain/path:5000\" "
                        "\"a\\\"b\\\\c\\u000ad\\u0009e\\u0001\\u007f\" "
                        "\"\" \"caf\xc3\xa9\"");
    assert_int_equal(t.len, strlen(t.data));

    octl_text_free(&t);
}


static void
test_server(void **state)
{
    fixture_t    *f = *state;
    octl_text_t   t;
    size_t        i;

    static const char  *want[] = {
        "https://registry-1.docker.io",
        "https://ghcr.io",           /* its endpoint is elsewhere */
        "http://reg.local:5001",     /* it is its own http endpoint */
    };

    load(f, three_registries);
    assert_int_equal(f->cf->n_registries, 3);

    for (i = 0; i < 3; i++) {
        memset(&t, 0, sizeof(t));
        octl_clients_server(&f->cf->registries[i], &t);
        assert_string_equal(t.data, want[i]);
        octl_text_free(&t);
    }
}


static void
test_hosts_toml(void **state)
{
    fixture_t      *f = *state;
    octl_mirror_t   m;
    octl_text_t     t;

    load(f, three_registries);
    mirror("http://mirror.example:5000", &m);

    memset(&t, 0, sizeof(t));
    octl_clients_hosts_toml(&f->cf->registries[0], &m, NULL, &t);
    assert_string_equal(t.data,
        "# containerd: docker.io through the ocimirror at "
        "http://mirror.example:5000 (generated by ocimirrorctl clients)\n"
        "server = \"https://registry-1.docker.io\"\n"
        "\n"
        "[host.\"http://mirror.example:5000\"]\n"
        "  capabilities = [\"pull\", \"resolve\"]\n");
    octl_text_free(&t);

    /* https, and a CA path whose quote and backslash are escaped */
    mirror("https://[fd00::1]:5443", &m);
    octl_clients_hosts_toml(&f->cf->registries[2], &m,
                            "/etc/ca \"x\"\\.pem", &t);
    assert_string_equal(t.data,
        "# containerd: reg.local:5001 through the ocimirror at "
        "https://[fd00::1]:5443 (generated by ocimirrorctl clients)\n"
        "server = \"http://reg.local:5001\"\n"
        "\n"
        "[host.\"https://[fd00::1]:5443\"]\n"
        "  capabilities = [\"pull\", \"resolve\"]\n"
        "  ca = \"/etc/ca \\\"x\\\"\\\\.pem\"\n");
    octl_text_free(&t);
}


static void
test_registries_conf(void **state)
{
    fixture_t      *f = *state;
    octl_mirror_t   m;
    octl_text_t     t;

    load(f, three_registries);
    mirror("http://mirror.example:5000", &m);

    memset(&t, 0, sizeof(t));
    octl_clients_registries_conf(f->cf, &m, &t);
    assert_string_equal(t.data,
        "# CRI-O and podman: pulls through the ocimirror at "
        "http://mirror.example:5000, then from the\n"
        "# registry itself if the mirror fails (generated by ocimirrorctl "
        "clients).\n"
        "\n"
        "[[registry]]\n"
        "prefix = \"docker.io\"\n"
        "location = \"docker.io\"\n"
        "\n"
        "[[registry.mirror]]\n"
        "location = \"mirror.example:5000/docker.io\"\n"
        "insecure = true\n"
        "\n"
        "[[registry]]\n"
        "prefix = \"ghcr.io\"\n"
        "location = \"ghcr.io\"\n"
        "\n"
        "[[registry.mirror]]\n"
        "location = \"mirror.example:5000/ghcr.io\"\n"
        "insecure = true\n"
        "\n"
        "# reg.local:5001: left out; a name with a port cannot be a path "
        "part of the mirror's\n"
        "# location (use containerd, or make it the default_registry)\n");
    octl_text_free(&t);

    /* the default registry with a port: the bare mirror; https: secure */
    load(f, "store = { path = \"/tmp/unused-store\"; };\n"
            "default_registry = \"127.0.0.1:5001\";\n"
            "registries = ( { name = \"127.0.0.1:5001\";"
            " endpoints = ( \"http://127.0.0.1:5001\" ); } );\n");
    mirror("https://mirror.example", &m);
    octl_clients_registries_conf(f->cf, &m, &t);
    assert_non_null(strstr(t.data,
        "\n[[registry]]\n"
        "prefix = \"127.0.0.1:5001\"\n"
        "location = \"127.0.0.1:5001\"\n"
        "\n"
        "[[registry.mirror]]\n"
        "location = \"mirror.example\"\n"));
    assert_null(strstr(t.data, "insecure"));
    octl_text_free(&t);
}


static void
test_daemon_json(void **state)
{
    fixture_t      *f = *state;
    octl_mirror_t   m;
    octl_text_t     t;

    load(f, three_registries);
    memset(&t, 0, sizeof(t));

    mirror("http://mirror.example:5000", &m);
    assert_int_equal(octl_clients_daemon_json(f->cf, &m, &t, f->err,
                                              sizeof(f->err)), OCI_OK);
    assert_string_equal(t.data,
        "{\n"
        "  \"registry-mirrors\": [\"http://mirror.example:5000\"],\n"
        "  \"insecure-registries\": [\"mirror.example:5000\"]\n"
        "}\n");
    octl_text_free(&t);

    mirror("https://mirror.example", &m);
    assert_int_equal(octl_clients_daemon_json(f->cf, &m, &t, f->err,
                                              sizeof(f->err)), OCI_OK);
    assert_string_equal(t.data,
        "{\n  \"registry-mirrors\": [\"https://mirror.example\"]\n}\n");
    octl_text_free(&t);

    /* Docker Hub's mirror would get another registry's images */
    load(f, "store = { path = \"/tmp/unused-store\"; };\n"
            "default_registry = \"ghcr.io\";\n"
            "registries = ( { name = \"ghcr.io\";"
            " endpoints = ( \"https://ghcr.io\" ); } );\n");
    assert_int_equal(octl_clients_daemon_json(f->cf, &m, &t, f->err,
                                              sizeof(f->err)), OCI_ENOTSUP);
    assert_non_null(strstr(f->err, "default_registry is \"ghcr.io\", not "
                                   "docker.io"));
    assert_null(t.data);
}


static void
test_write_layout(void **state)
{
    fixture_t      *f = *state;
    octl_mirror_t   m;
    char            out[128], path[256], first[4096];
    struct stat     st;

    load(f, three_registries);
    mirror("http://mirror.example:5000", &m);
    snprintf(out, sizeof(out), "%s/out/deeper", f->dir);

    assert_int_equal(octl_clients_write(f->cf, &m, out, OCTL_CLIENTS_ALL,
                                        NULL, collect, f, f->err,
                                        sizeof(f->err)), OCI_OK);

    snprintf(first, sizeof(first),
             "wrote %1$s/containerd/certs.d/docker.io/hosts.toml\n"
             "wrote %1$s/containerd/certs.d/ghcr.io/hosts.toml\n"
             "wrote %1$s/containerd/certs.d/reg.local:5001/hosts.toml\n"
             "wrote %1$s/registries.conf.d/ocimirror.conf\n"
             "note: registries.conf.d leaves out reg.local:5001 (a name "
             "with a port cannot be a path part; containerd's files have "
             "it)\n"
             "wrote %1$s/docker/daemon.json\n"
             "wrote %1$s/docker/README\n", out);
    assert_string_equal(f->reports, first);

    snprintf(path, sizeof(path), "%s/containerd/certs.d/ghcr.io/hosts.toml",
             out);
    assert_non_null(strstr(slurp(path), "server = \"https://ghcr.io\"\n"));
    snprintf(path, sizeof(path), "%s/docker/README", out);
    assert_non_null(strstr(slurp(path), "Docker Hub (docker.io) only"));

    /* the same input, the same bytes; a second run replaces, leaves no
     * temp file */
    snprintf(path, sizeof(path), "%s/registries.conf.d/ocimirror.conf", out);
    snprintf(first, sizeof(first), "%s", slurp(path));
    f->reports[0] = '\0';
    assert_int_equal(octl_clients_write(f->cf, &m, out, OCTL_CLIENTS_CRIO,
                                        NULL, collect, f, f->err,
                                        sizeof(f->err)), OCI_OK);
    assert_string_equal(slurp(path), first);
    snprintf(path, sizeof(path), "%s/registries.conf.d/ocimirror.conf.tmp",
             out);
    assert_int_equal(stat(path, &st), -1);

    /* containerd alone: no other file */
    snprintf(out, sizeof(out), "%s/only", f->dir);
    assert_int_equal(octl_clients_write(f->cf, &m, out,
                                        OCTL_CLIENTS_CONTAINERD, NULL,
                                        collect, f, f->err,
                                        sizeof(f->err)), OCI_OK);
    snprintf(path, sizeof(path), "%s/registries.conf.d", out);
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof(path), "%s/docker", out);
    assert_int_equal(stat(path, &st), -1);
}


static void
test_write_errors(void **state)
{
    fixture_t      *f = *state;
    octl_mirror_t   m;
    char            out[128], want[256];
    FILE           *fp;

    load(f, three_registries);
    mirror("http://mirror.example:5000", &m);

    /* a file where a folder must go */
    snprintf(out, sizeof(out), "%s/afile", f->dir);
    fp = fopen(out, "w");
    assert_non_null(fp);
    fclose(fp);

    assert_int_equal(octl_clients_write(f->cf, &m, out, OCTL_CLIENTS_ALL,
                                        NULL, collect, f, f->err,
                                        sizeof(f->err)), OCI_EIO);
    snprintf(want, sizeof(want), "cannot create the folder \"%s/containerd\""
             ": Not a directory", out);
    assert_string_equal(f->err, want);
    assert_string_equal(f->reports, "");

    /* a folder that cannot be written (root may write anywhere) */
    if (geteuid() != 0) {
        snprintf(out, sizeof(out), "%s/ro", f->dir);
        assert_int_equal(mkdir(out, 0555), 0);
        assert_int_equal(octl_clients_write(f->cf, &m, out,
                                            OCTL_CLIENTS_CRIO, NULL, collect,
                                            f, f->err, sizeof(f->err)),
                         OCI_EIO);
        assert_non_null(strstr(f->err, "Permission denied"));
    }

    /* Docker alone, not possible: an error; with the others: a note */
    load(f, "store = { path = \"/tmp/unused-store\"; };\n"
            "default_registry = \"ghcr.io\";\n"
            "registries = ( { name = \"ghcr.io\";"
            " endpoints = ( \"https://ghcr.io\" ); } );\n");
    snprintf(out, sizeof(out), "%s/d", f->dir);
    assert_int_equal(octl_clients_write(f->cf, &m, out, OCTL_CLIENTS_DOCKER,
                                        NULL, collect, f, f->err,
                                        sizeof(f->err)), OCI_ENOTSUP);
    assert_non_null(strstr(f->err, "docker: default_registry is "
                                   "\"ghcr.io\""));

    f->reports[0] = '\0';
    assert_int_equal(octl_clients_write(f->cf, &m, out, OCTL_CLIENTS_ALL,
                                        NULL, collect, f, f->err,
                                        sizeof(f->err)), OCI_OK);
    assert_non_null(strstr(f->reports, "\nnote: no Docker files: docker: "
                                       "default_registry is \"ghcr.io\""));
    assert_null(strstr(f->reports, "daemon.json"));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_mirror_url),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test_setup_teardown(test_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosts_toml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registries_conf, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_daemon_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
