/*
 * ocimirrorctl clients: containerd, CRI-O/podman and Docker files for a
 * mirror URL, from the config's registries (see octl_clients.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "octl_clients.h"


#define OCTL_DOCKER_HUB         "docker.io"
#define OCTL_DOCKER_HUB_SERVER  "https://registry-1.docker.io"

static const char  octl_docker_readme[] =
"Docker's registry-mirrors applies to Docker Hub (docker.io) only: pulls\n"
"of every other registry go to that registry directly, whatever the\n"
"mirror holds.  Merge the keys of daemon.json into /etc/docker/daemon.json\n"
"and restart dockerd (systemctl restart docker).  insecure-registries is\n"
"there when the mirror is plain http.  For other registries through the\n"
"mirror, use containerd or CRI-O/podman, or pull\n"
"<mirror>/<registry>/<name>:<tag> by that name.\n";


static void
octl_text_grow(octl_text_t *t, const char *s, size_t n)
{
    size_t   cap;
    char    *p;

    if (t->failed) {
        return;
    }

    if (t->len + n + 1 > t->cap) {
        cap = t->cap > 0 ? t->cap : 256;

        while (cap < t->len + n + 1) {
            cap *= 2;
        }

        p = realloc(t->data, cap);
        if (p == NULL) {
            t->failed = 1;
            return;
        }

        t->data = p;
        t->cap = cap;
    }

    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}


void
octl_text_add(octl_text_t *t, const char *s)
{
    octl_text_grow(t, s, strlen(s));
}


void
octl_text_quoted(octl_text_t *t, const char *s)
{
    const unsigned char  *p;
    char                  esc[8];

    octl_text_grow(t, "\"", 1);

    for (p = (const unsigned char *) s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char) *p;
            octl_text_grow(t, esc, 2);

        } else if (*p < 0x20 || *p == 0x7f) {
            /* \uXXXX is the one control escape TOML and JSON share */
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            octl_text_grow(t, esc, 6);

        } else {
            octl_text_grow(t, (const char *) p, 1);
        }
    }

    octl_text_grow(t, "\"", 1);
}


void
octl_text_free(octl_text_t *t)
{
    free(t->data);
    t->data = NULL;
    t->len = 0;
    t->cap = 0;
    t->failed = 0;
}


static int
octl_url_error(char *err, size_t errlen, const char *url, const char *why)
{
    snprintf(err, errlen, "bad mirror URL \"%s\": %s", url, why);
    return OCI_EINVAL;
}


int
octl_mirror_parse(const char *url, octl_mirror_t *m, char *err,
    size_t errlen)
{
    const char  *p, *host, *end;
    size_t       n, i;
    long         port;
    int          digits;

    memset(m, 0, sizeof(*m));

    if (strncmp(url, "http://", 7) == 0) {
        host = url + 7;

    } else if (strncmp(url, "https://", 8) == 0) {
        host = url + 8;
        m->https = 1;

    } else {
        return octl_url_error(err, errlen, url,
                              "it must start with http:// or https://");
    }

    end = host + strlen(host);

    if (end > host && end[-1] == '/') {
        end--;
    }

    if (end == host) {
        return octl_url_error(err, errlen, url, "no host");
    }

    if (memchr(host, '@', (size_t) (end - host)) != NULL) {
        return octl_url_error(err, errlen, url,
                              "no user or password: clients pull "
                              "anonymously");
    }

    /* the host: [v6], or a name or an IPv4 address */
    p = host;

    if (*p == '[') {
        for (p++; p < end && *p != ']'; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')
                  || (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
            {
                return octl_url_error(err, errlen, url,
                                      "an IPv6 address holds hex digits, "
                                      "':' and '.' only");
            }
        }

        if (p == end || p == host + 1) {
            return octl_url_error(err, errlen, url, "an unclosed or empty "
                                  "[IPv6 address]");
        }

        p++;

    } else {
        for ( /* void */ ; p < end && *p != ':'; p++) {
            if (*p == '/' || *p == '?' || *p == '#') {
                return octl_url_error(err, errlen, url,
                                      "no path, query or fragment: the "
                                      "mirror answers /v2/ at its root");
            }

            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')
                  || (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '.'))
            {
                return octl_url_error(err, errlen, url,
                                      "a host name holds letters, digits, "
                                      "'-' and '.' only");
            }
        }

        if (p == host || host[0] == '.' || host[0] == '-'
            || p[-1] == '.' || p[-1] == '-')
        {
            return octl_url_error(err, errlen, url, "a bad host name");
        }
    }

    if (p < end) {
        if (*p != ':') {
            return octl_url_error(err, errlen, url,
                                  *p == '/' || *p == '?' || *p == '#'
                                  ? "no path, query or fragment: the "
                                    "mirror answers /v2/ at its root"
                                  : "a bad character after the host");
        }

        port = 0;
        digits = 0;

        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            port = port * 10 + (*p - '0');
            if (++digits > 5) {
                break;
            }
        }

        if (p < end && (*p == '/' || *p == '?' || *p == '#')) {
            return octl_url_error(err, errlen, url,
                                  "no path, query or fragment: the mirror "
                                  "answers /v2/ at its root");
        }

        if (p != end || digits == 0 || port < 1 || port > 65535) {
            return octl_url_error(err, errlen, url,
                                  "the port is a number from 1 to 65535");
        }
    }

    n = (size_t) (end - host);

    if (n > OCI_HOST_MAX) {
        return octl_url_error(err, errlen, url, "the host is too long");
    }

    for (i = 0; i < n; i++) {
        m->hostport[i] = (host[i] >= 'A' && host[i] <= 'Z')
                         ? (char) (host[i] - 'A' + 'a') : host[i];
    }

    m->hostport[n] = '\0';

    snprintf(m->url, sizeof(m->url), "%s://%s", m->https ? "https" : "http",
             m->hostport);

    return OCI_OK;
}


void
octl_clients_server(const oci_registry_t *reg, octl_text_t *out)
{
    const char  *e, *rest;
    size_t       i, n;

    if (strcmp(reg->name, OCTL_DOCKER_HUB) == 0) {
        octl_text_add(out, OCTL_DOCKER_HUB_SERVER);
        return;
    }

    n = strlen(reg->name);

    for (i = 0; i < reg->n_endpoints; i++) {
        e = reg->endpoints[i];

        if (strncmp(e, "http://", 7) != 0) {
            continue;
        }

        rest = e + 7;

        if (strncmp(rest, reg->name, n) == 0
            && (rest[n] == '\0' || rest[n] == '/'))
        {
            octl_text_add(out, "http://");
            octl_text_add(out, reg->name);
            return;
        }
    }

    octl_text_add(out, "https://");
    octl_text_add(out, reg->name);
}


void
octl_clients_hosts_toml(const oci_registry_t *reg, const octl_mirror_t *m,
    const char *ca, octl_text_t *out)
{
    octl_text_t  server;

    memset(&server, 0, sizeof(server));
    octl_clients_server(reg, &server);

    octl_text_add(out, "# containerd: ");
    octl_text_add(out, reg->name);
    octl_text_add(out, " through the ocimirror at ");
    octl_text_add(out, m->url);
    octl_text_add(out, " (generated by ocimirrorctl clients)\n"
                       "server = ");
    octl_text_quoted(out, server.failed ? "" : server.data);
    octl_text_add(out, "\n\n[host.");
    octl_text_quoted(out, m->url);
    octl_text_add(out, "]\n  capabilities = [\"pull\", \"resolve\"]\n");

    if (ca != NULL) {
        octl_text_add(out, "  ca = ");
        octl_text_quoted(out, ca);
        octl_text_add(out, "\n");
    }

    out->failed |= server.failed;
    octl_text_free(&server);
}


/* A registry name can be the first path part of a reference (a host
 * without a port: the path grammar has no ':'). */
static int
octl_clients_path_part(const char *name)
{
    return strchr(name, ':') == NULL;
}


void
octl_clients_registries_conf(const oci_config_t *cf, const octl_mirror_t *m,
    octl_text_t *out)
{
    const oci_registry_t  *reg;
    size_t                 i;

    octl_text_add(out, "# CRI-O and podman: pulls through the ocimirror at ");
    octl_text_add(out, m->url);
    octl_text_add(out, ", then from the\n"
                  "# registry itself if the mirror fails (generated by "
                  "ocimirrorctl clients).\n");

    for (i = 0; i < cf->n_registries; i++) {
        reg = &cf->registries[i];

        if (!octl_clients_path_part(reg->name)
            && reg != cf->default_registry)
        {
            octl_text_add(out, "\n# ");
            octl_text_add(out, reg->name);
            octl_text_add(out, ": left out; a name with a port cannot be "
                          "a path part of the mirror's\n# location (use "
                          "containerd, or make it the default_registry)\n");
            continue;
        }

        octl_text_add(out, "\n[[registry]]\nprefix = ");
        octl_text_quoted(out, reg->name);
        octl_text_add(out, "\nlocation = ");
        octl_text_quoted(out, reg->name);
        octl_text_add(out, "\n\n[[registry.mirror]]\nlocation = ");

        /* the mirror routes its default registry without a prefix */
        if (octl_clients_path_part(reg->name)) {
            octl_text_add(out, "\"");
            octl_text_add(out, m->hostport);
            octl_text_add(out, "/");
            octl_text_add(out, reg->name);
            octl_text_add(out, "\"");

        } else {
            octl_text_quoted(out, m->hostport);
        }

        octl_text_add(out, m->https ? "\n" : "\ninsecure = true\n");
    }
}


int
octl_clients_daemon_json(const oci_config_t *cf, const octl_mirror_t *m,
    octl_text_t *out, char *err, size_t errlen)
{
    if (cf->default_registry == NULL
        || strcmp(cf->default_registry->name, OCTL_DOCKER_HUB) != 0)
    {
        snprintf(err, errlen, "docker: default_registry is %s%s%s, not "
                 OCTL_DOCKER_HUB "; Docker's registry-mirrors serve Docker "
                 "Hub only and would get another registry's images",
                 cf->default_registry != NULL ? "\"" : "",
                 cf->default_registry != NULL ? cf->default_registry->name
                                              : "not set",
                 cf->default_registry != NULL ? "\"" : "");
        return OCI_ENOTSUP;
    }

    octl_text_add(out, "{\n  \"registry-mirrors\": [");
    octl_text_quoted(out, m->url);
    octl_text_add(out, "]");

    if (!m->https) {
        octl_text_add(out, ",\n  \"insecure-registries\": [");
        octl_text_quoted(out, m->hostport);
        octl_text_add(out, "]");
    }

    octl_text_add(out, "\n}\n");

    return OCI_OK;
}


/* mkdir -p of path (modified in place, restored). */
static int
octl_mkdirs(char *path, char *err, size_t errlen)
{
    char  *p;

    for (p = path + 1; ; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }

        if (p[-1] != '/') {
            char  c = *p;

            *p = '\0';

            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create the folder \"%s\": %s",
                         path, strerror(errno));
                *p = c;
                return OCI_EIO;
            }

            *p = c;
        }

        if (*p == '\0') {
            break;
        }
    }

    return OCI_OK;
}


/* Write text as dir/sub/file, replacing a former one whole. */
static int
octl_clients_file(const char *dir, const char *sub, const char *file,
    const octl_text_t *text, octl_clients_report_pt report, void *data,
    char *err, size_t errlen)
{
    char     folder[OCI_PATH_MAX], path[OCI_PATH_MAX], tmp[OCI_PATH_MAX],
             line[OCI_PATH_MAX + 8];
    ssize_t  w;
    size_t   off;
    int      fd, rc;

    if (text->failed) {
        snprintf(err, errlen, "out of memory");
        return OCI_ENOMEM;
    }

    if ((size_t) snprintf(folder, sizeof(folder), "%s/%s", dir, sub)
            >= sizeof(folder)
        || (size_t) snprintf(path, sizeof(path), "%s/%s", folder, file)
            >= sizeof(path)
        || (size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", path)
            >= sizeof(tmp))
    {
        snprintf(err, errlen, "the path under \"%s\" is too long", dir);
        return OCI_ERANGE;
    }

    rc = octl_mkdirs(folder, err, errlen);
    if (rc != OCI_OK) {
        return rc;
    }

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        snprintf(err, errlen, "cannot write \"%s\": %s", tmp,
                 strerror(errno));
        return OCI_EIO;
    }

    for (off = 0; off < text->len; off += (size_t) w) {
        w = write(fd, text->data + off, text->len - off);

        if (w < 0 && errno == EINTR) {
            w = 0;
            continue;
        }

        if (w <= 0) {
            snprintf(err, errlen, "cannot write \"%s\": %s", tmp,
                     w < 0 ? strerror(errno) : "nothing written");
            (void) close(fd);
            (void) unlink(tmp);
            return OCI_EIO;
        }
    }

    if (close(fd) != 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", tmp,
                 strerror(errno));
        (void) unlink(tmp);
        return OCI_EIO;
    }

    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename \"%s\" to \"%s\": %s", tmp,
                 path, strerror(errno));
        (void) unlink(tmp);
        return OCI_EIO;
    }

    snprintf(line, sizeof(line), "wrote %s", path);
    report(line, data);

    return OCI_OK;
}


static int
octl_clients_containerd(const oci_config_t *cf, const octl_mirror_t *m,
    const char *dir, const char *ca, octl_clients_report_pt report,
    void *data, char *err, size_t errlen)
{
    octl_text_t  text;
    size_t       i;
    char         sub[OCI_HOST_MAX + 32];
    int          rc;

    for (i = 0; i < cf->n_registries; i++) {
        memset(&text, 0, sizeof(text));
        octl_clients_hosts_toml(&cf->registries[i], m, ca, &text);

        snprintf(sub, sizeof(sub), "containerd/certs.d/%s",
                 cf->registries[i].name);

        rc = octl_clients_file(dir, sub, "hosts.toml", &text, report, data,
                               err, errlen);
        octl_text_free(&text);

        if (rc != OCI_OK) {
            return rc;
        }
    }

    return OCI_OK;
}


int
octl_clients_write(const oci_config_t *cf, const octl_mirror_t *m,
    const char *dir, unsigned formats, const char *ca,
    octl_clients_report_pt report, void *data, char *err, size_t errlen)
{
    octl_text_t  text, readme;
    size_t       i;
    char         line[512], note[600];
    int          rc;

    if (formats & OCTL_CLIENTS_CONTAINERD) {
        rc = octl_clients_containerd(cf, m, dir, ca, report, data, err,
                                     errlen);
        if (rc != OCI_OK) {
            return rc;
        }
    }

    if (formats & OCTL_CLIENTS_CRIO) {
        memset(&text, 0, sizeof(text));
        octl_clients_registries_conf(cf, m, &text);

        rc = octl_clients_file(dir, "registries.conf.d", "ocimirror.conf",
                               &text, report, data, err, errlen);
        octl_text_free(&text);

        if (rc != OCI_OK) {
            return rc;
        }

        for (i = 0; i < cf->n_registries; i++) {
            if (!octl_clients_path_part(cf->registries[i].name)
                && &cf->registries[i] != cf->default_registry)
            {
                snprintf(line, sizeof(line), "note: registries.conf.d "
                         "leaves out %s (a name with a port cannot be a "
                         "path part; containerd's files have it)",
                         cf->registries[i].name);
                report(line, data);
            }
        }
    }

    if (formats & OCTL_CLIENTS_DOCKER) {
        memset(&text, 0, sizeof(text));

        rc = octl_clients_daemon_json(cf, m, &text, line, sizeof(line));

        if (rc == OCI_ENOTSUP) {
            octl_text_free(&text);

            if (formats != OCTL_CLIENTS_DOCKER) {
                snprintf(note, sizeof(note), "note: no Docker files: %s",
                         line);
                report(note, data);
                return OCI_OK;
            }

            snprintf(err, errlen, "%s", line);
            return rc;
        }

        memset(&readme, 0, sizeof(readme));
        octl_text_add(&readme, octl_docker_readme);

        rc = octl_clients_file(dir, "docker", "daemon.json", &text, report,
                               data, err, errlen);
        if (rc == OCI_OK) {
            rc = octl_clients_file(dir, "docker", "README", &readme, report,
                                   data, err, errlen);
        }

        octl_text_free(&text);
        octl_text_free(&readme);

        if (rc != OCI_OK) {
            return rc;
        }
    }

    return OCI_OK;
}
