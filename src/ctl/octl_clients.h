/*
 * ocimirrorctl clients: the files that point container runtimes at the
 * mirror, generated from the config's registries for one mirror URL.
 *
 *   <dir>/containerd/certs.d/<registry>/hosts.toml
 *       one per registry: server is the registry as clients know it
 *       (docker.io's is https://registry-1.docker.io), the mirror a host
 *       with the pull and resolve capabilities; containerd adds ?ns= to
 *       every request, which routes it (src/oci_route.h)
 *   <dir>/registries.conf.d/ocimirror.conf
 *       CRI-O and podman: a [[registry]] per registry, its mirror
 *       "<mirror>/<registry>" (the registry name as the first path part
 *       routes it); insecure when the mirror is plain http.  A registry
 *       name with a port cannot be a path part of a reference: that
 *       registry is left out (a comment in the file says so), unless it
 *       is the default registry, whose mirror is the bare mirror (the
 *       mirror's own default route)
 *   <dir>/docker/daemon.json and <dir>/docker/README
 *       Docker's registry-mirrors, which serve Docker Hub only: written
 *       only when default_registry is docker.io
 *
 * The same config and URL give the same bytes.  Nothing here logs: what
 * was written and what was left out go to the caller's callback, errors
 * into its buffer.
 */

#ifndef OCTL_CLIENTS_H
#define OCTL_CLIENTS_H

#include <stddef.h>

#include "oci.h"
#include "oci_config.h"

#define OCTL_CLIENTS_CONTAINERD  0x1
#define OCTL_CLIENTS_CRIO        0x2
#define OCTL_CLIENTS_DOCKER      0x4
#define OCTL_CLIENTS_ALL         0x7

/* The mirror as clients reach it: http(s)://host[:port], nothing more. */
typedef struct {
    int    https;
    char   hostport[OCI_HOST_MAX + 1];      /* lower case, as written */
    char   url[OCI_HOST_MAX + 16];          /* "http://" + hostport */
} octl_mirror_t;

/* A growing text; on out of memory it stays as it was and failed is
 * set (checked once, at the end). */
typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
    int      failed;
} octl_text_t;

/* What was done: "wrote <path>", or a note on what was left out. */
typedef void (*octl_clients_report_pt)(const char *line, void *data);

/*
 * Parse the mirror's URL: "http://" or "https://", a host name, an IPv4
 * address or a bracketed IPv6 one, an optional port, an optional "/".
 * No user, path, query or fragment: the mirror answers /v2/ at its root.
 * OCI_OK, or OCI_EINVAL with err saying what is wrong.
 */
int octl_mirror_parse(const char *url, octl_mirror_t *m, char *err,
    size_t errlen);

/* Append s, or s as a double-quoted string that is both a TOML basic
 * string and a JSON string ('"', '\' and control bytes escaped). */
void octl_text_add(octl_text_t *t, const char *s);
void octl_text_quoted(octl_text_t *t, const char *s);
void octl_text_free(octl_text_t *t);

/* The registry's own address, where containerd goes when the mirror
 * fails: https://<name>, docker.io's https://registry-1.docker.io, or
 * http://<name> when an endpoint of the registry is http://<name>. */
void octl_clients_server(const oci_registry_t *reg, octl_text_t *out);

/* The texts of the three formats; ca: a CA file containerd trusts the
 * mirror's certificate with (NULL: the system's).  daemon_json fails
 * with OCI_ENOTSUP (err says why) when the default registry is not
 * docker.io. */
void octl_clients_hosts_toml(const oci_registry_t *reg,
    const octl_mirror_t *m, const char *ca, octl_text_t *out);
void octl_clients_registries_conf(const oci_config_t *cf,
    const octl_mirror_t *m, octl_text_t *out);
int octl_clients_daemon_json(const oci_config_t *cf, const octl_mirror_t *m,
    octl_text_t *out, char *err, size_t errlen);

/*
 * Write the formats asked for (OCTL_CLIENTS_*) under dir, creating the
 * folders; each file replaced whole (a temp file renamed).  Docker's
 * files are left out, with a report, when "all" was asked and the
 * default registry is not docker.io.  OCI_OK, OCI_EIO (err names the
 * path and the reason), OCI_ENOTSUP (Docker alone asked for and not
 * possible), OCI_ENOMEM.
 */
int octl_clients_write(const oci_config_t *cf, const octl_mirror_t *m,
    const char *dir, unsigned formats, const char *ca,
    octl_clients_report_pt report, void *data, char *err, size_t errlen);

#endif /* OCTL_CLIENTS_H */
