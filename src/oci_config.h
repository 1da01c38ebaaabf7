/*
 * The libconfig file shared by the nginx module and the fetcher.
 *
 *   store    = { path = "/var/cache/ocimirror"; fsync = true;
 *                min_free = "1G"; };
 *   fetcher  = { socket = "/run/ocimirror/fetcher.sock";
 *                max_transfers = 64; connect_timeout = 10;
 *                low_speed_time = 30; max_per_host = 16; http2 = true;
 *                chunk_threshold = "16M"; chunk_size = "8M";
 *                chunks_per_blob = 4; };
 *   prefetch = { enabled = true; platforms = ( "linux/amd64" );
 *                max_bytes = "2G"; };
 *   default_registry = "docker.io";
 *   registries = (
 *     { name = "docker.io"; endpoints = ( "https://registry-1.docker.io" );
 *       tag_ttl = 300; },
 *     { name = "ghcr.io"; endpoints = ( "https://ghcr.io" ); }
 *   );
 *
 * Every error names the file and the line ("file:12: ...").  Endpoints
 * must be https:// unless "http://" is written out; the registry name
 * must be a lower-case host[:port].  Sizes are a number of bytes or a
 * string with a K, M, G or T suffix ("8M").
 */

#ifndef OCI_CONFIG_H
#define OCI_CONFIG_H

#include "oci.h"

#define OCI_DEFAULT_TAG_TTL        300
#define OCI_DEFAULT_MAX_TRANSFERS  64
#define OCI_DEFAULT_MIN_FREE       (1024LL * 1024 * 1024)
#define OCI_DEFAULT_FETCHER_SOCKET "/run/ocimirror/fetcher.sock"
#define OCI_DEFAULT_CONNECT_TIMEOUT  10
#define OCI_DEFAULT_LOW_SPEED_TIME   30
#define OCI_DEFAULT_MAX_PER_HOST     16
#define OCI_DEFAULT_CHUNK_THRESHOLD  (16LL * 1024 * 1024)
#define OCI_DEFAULT_CHUNK_SIZE       (8LL * 1024 * 1024)
#define OCI_DEFAULT_CHUNKS_PER_BLOB  4
#define OCI_DEFAULT_PREFETCH_PLATFORM  "linux/amd64"
#define OCI_DEFAULT_PREFETCH_MAX_BYTES (2LL * 1024 * 1024 * 1024)

#define OCI_CHUNK_SIZE_MIN           (64LL * 1024)
#define OCI_CHUNKS_PER_BLOB_MAX      64
#define OCI_PLATFORM_MAX             64    /* "os/arch/variant" */

typedef struct {
    char    *name;            /* "docker.io": what clients route by */
    char   **endpoints;       /* "https://registry-1.docker.io", ... */
    size_t   n_endpoints;
    long     tag_ttl;         /* seconds a tag record is fresh */
    int      library_prefix;  /* one-part names gain "library/" */
} oci_registry_t;

typedef struct {
    char            *file;           /* the path it was loaded from */

    char            *store_path;
    int              store_fsync;    /* fsync blobs and dirs on commit */
    long long        store_min_free; /* bytes; readiness floor */

    char            *fetcher_socket;
    int              max_transfers;
    long             connect_timeout;  /* seconds */
    long             low_speed_time;   /* seconds below 1 KiB/s = stall */
    int              max_per_host;     /* connections to one host */
    int              http2;            /* multiplex over HTTP/2 if offered */
    long long        chunk_threshold;  /* bytes; smaller blobs: one stream */
    long long        chunk_size;       /* bytes per ranged request */
    int              chunks_per_blob;  /* in flight at once; 0: no ranges */

    int              prefetch;            /* prefetch.enabled */
    char           **prefetch_platforms;  /* "os/arch" or "os/arch/variant" */
    size_t           n_prefetch_platforms;
    long long        prefetch_max_bytes;  /* per image */

    oci_registry_t  *registries;
    size_t           n_registries;
    oci_registry_t  *default_registry; /* NULL if none configured */
} oci_config_t;

/*
 * Load and check the file.  On success *out owns everything (free it with
 * oci_config_destroy).  On failure returns OCI_EINVAL / OCI_EIO /
 * OCI_ENOMEM and err holds "file:line: message".
 */
int oci_config_load(const char *file, oci_config_t **out, char *err,
    size_t errlen);

void oci_config_destroy(oci_config_t *cf);

/* Exact, case-sensitive lookup of a registry by name; NULL if absent. */
oci_registry_t *oci_config_registry(const oci_config_t *cf,
    const char *name, size_t len);

#endif /* OCI_CONFIG_H */
