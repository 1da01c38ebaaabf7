/*
 * The libconfig file shared by the nginx module and the fetcher.
 *
 *   store    = { path = "/var/cache/ocimirror"; fsync = true;
 *                min_free = "1G"; max_size = "90%";
 *                high_watermark = 90; low_watermark = 80;
 *                inactive = 0; recency = true; recency_batch = 4096;
 *                recency_interval = 60; scrub_interval = 604800;
 *                scrub_rate = "50M"; scrub_deep = false;
 *                quarantine_max = 100; commit_queue = 64; };
 *   (max_size: bytes, or a share of the store's filesystem; the
 *   watermarks: percents of max_size; inactive: seconds, 0 off; see
 *   src/fetcher/cache.h; recency = false is a measurement switch: the
 *   workers note no hit and eviction goes by download time alone.
 *   scrub_interval: seconds, 0 on demand only; scrub_rate: bytes/s, at
 *   least 64K; see src/fetcher/scrub.h; commit_queue: verified
 *   downloads waiting for their fsync and rename at most, see
 *   src/fetcher/commit.h)
 *   fetcher  = { socket = "/run/ocimirror/fetcher.sock";
 *                socket_group = "www-data";
 *                max_transfers = 64; connect_timeout = 10;
 *                low_speed_time = 30; max_per_host = 16; http2 = true;
 *                chunk_threshold = "16M"; chunk_size = "8M";
 *                chunks_per_blob = 4; max_jobs = 1024;
 *                max_worker_jobs = 4096; max_waiters = 8192;
 *                max_queued = 512; finish_fraction = 0.5;
 *                list_cache_size = "64M"; list_cache_entries = 1024; };
 *   (the bounds of the fetcher's work, past which a request is refused
 *   at once with BUSY: jobs in flight, requests waiting from one worker
 *   connection and from all, client transfers queued for a slot; a blob
 *   download whose last waiter left finishes past finish_fraction of its
 *   bytes, 0: never; see src/fetcher/job.h.  list_cache_*: the tag lists
 *   and referrers kept parsed in memory, src/fetcher/listcache.h)
 *   prefetch = { enabled = true; platforms = ( "linux/amd64" );
 *                max_bytes = "2G"; max_children = 32;
 *                max_layers = 256; };
 *   (max_children: platform manifests an index fans out to, max_layers:
 *   layers an image manifest fans out to, in prefetch and warm alike;
 *   see src/fetcher/prefetch.h)
 *   warm = ( "docker.io/library/nginx:1.27",
 *            { ref = "ghcr.io/org/app:v2"; platforms = ( "linux/arm64" ); } );
 *   warm_file = "/etc/ocimirror/warm.list"; warm_interval = 900;
 *   warm_max = 1000;
 *   (images pulled before any client asks: src/fetcher/warm.h)
 *   (socket_group: the group nginx's workers run as; the socket is made
 *   0660 in it and the store's directories are given it, so the workers
 *   connect and read through the group; unset: the fetcher's own group.
 *   A group that does not exist is an error.)
 *   default_registry = "docker.io";
 *   registries = (
 *     { name = "docker.io"; endpoints = ( "https://registry-1.docker.io" );
 *       tag_ttl = 300; },
 *     { name = "ghcr.io"; endpoints = ( "https://ghcr.io" ); }
 *   );
 *
 * An endpoint is a URL, or a group with the URL and credentials of its
 * own: { url = "https://registry-1.docker.io"; username = "u";
 * password_file = "/etc/ocimirror/u.pw"; } (or token_file).  An endpoint
 * without credentials of its own uses the registry's, if any; tokens are
 * kept per endpoint.
 *
 * Upstream settings, in "fetcher" (for every registry) and in a registry
 * (for it alone; a registry's own value wins):
 *   proxy = "http://proxy:3128";    "" in a registry: no proxy for it
 *   no_proxy = "localhost,.corp";   hosts reached without the proxy
 *   bandwidth_limit = "100M";       bytes/s, shared by all transfers
 *   connect_timeout, low_speed_time (seconds)
 *   max_retry_after = 300;          seconds a Retry-After (a 429) is
 *                                   honoured at most
 * Only in a registry:
 *   select = "ordered" | "fastest";  probe_interval = 30; backoff = 10;
 *   username = "u"; password_file = "/etc/ocimirror/u.pw";
 *   token_file = "/etc/ocimirror/r.token";   (instead of username)
 *   ca_file, client_cert, client_key (PEM files); tls_verify = true;
 *   stale_if_error = 86400; negative_ttl = 15; tags_ttl = 60;
 *   referrers_ttl = 60;
 *   redirect_hosts = ( "cdn.corp" );  hosts a redirect or a token realm
 *                                   may lead to even where their address
 *                                   is loopback, link-local, private or
 *                                   unspecified
 *   resolve = ( "registry.corp:443:10.0.0.5" );  curl's --resolve: the
 *                                   address of a host:port (split-horizon
 *                                   DNS); one answer per host:port in the
 *                                   whole file, as curl's DNS cache is
 *                                   shared by every transfer
 * The config only names secret files; oci_config_check_files() (the
 * fetcher, at start and in --check) proves they can be read.  The proxy
 * environment variables are not used: only "proxy" sends traffic to a
 * proxy.
 *
 * Every error names the file and the line ("file:12: ...").  Endpoints
 * must be https:// unless "http://" is written out; the registry name
 * must be a lower-case host[:port].  Sizes are a number of bytes or a
 * string with a K, M, G or T suffix ("8M").
 */

#ifndef OCI_CONFIG_H
#define OCI_CONFIG_H

#include "oci.h"
#include "oci_ref.h"

#define OCI_DEFAULT_TAG_TTL        300
#define OCI_DEFAULT_MAX_TRANSFERS  64
#define OCI_DEFAULT_MIN_FREE       (1024LL * 1024 * 1024)
#define OCI_DEFAULT_MAX_SIZE_PCT   90
#define OCI_DEFAULT_HIGH_WATERMARK 90
#define OCI_DEFAULT_LOW_WATERMARK  80
#define OCI_DEFAULT_RECENCY_BATCH  4096
#define OCI_DEFAULT_RECENCY_INTERVAL  60
#define OCI_DEFAULT_FETCHER_SOCKET "/run/ocimirror/fetcher.sock"
#define OCI_DEFAULT_CONNECT_TIMEOUT  10
#define OCI_DEFAULT_LOW_SPEED_TIME   30
#define OCI_DEFAULT_MAX_PER_HOST     16
#define OCI_DEFAULT_CHUNK_THRESHOLD  (16LL * 1024 * 1024)
#define OCI_DEFAULT_CHUNK_SIZE       (8LL * 1024 * 1024)
#define OCI_DEFAULT_CHUNKS_PER_BLOB  4
#define OCI_DEFAULT_PREFETCH_PLATFORM  "linux/amd64"
#define OCI_DEFAULT_PREFETCH_MAX_BYTES (2LL * 1024 * 1024 * 1024)
#define OCI_DEFAULT_PREFETCH_MAX_CHILDREN  32
#define OCI_DEFAULT_PREFETCH_MAX_LAYERS    256
#define OCI_PREFETCH_MAX_CHILDREN_MAX      4096
#define OCI_PREFETCH_MAX_LAYERS_MAX        65536
#define OCI_DEFAULT_PROBE_INTERVAL   30
#define OCI_DEFAULT_BACKOFF          10
#define OCI_DEFAULT_STALE_IF_ERROR   86400
#define OCI_DEFAULT_NEGATIVE_TTL     15
#define OCI_DEFAULT_TAGS_TTL         60
#define OCI_DEFAULT_REFERRERS_TTL    60
#define OCI_DEFAULT_MAX_RETRY_AFTER  300
#define OCI_DEFAULT_SCRUB_INTERVAL   (7 * 86400)
#define OCI_DEFAULT_SCRUB_RATE       (50LL * 1024 * 1024)
#define OCI_DEFAULT_QUARANTINE_MAX   100
#define OCI_DEFAULT_COMMIT_QUEUE     64
#define OCI_DEFAULT_LIST_CACHE_SIZE  (64LL * 1024 * 1024)
#define OCI_DEFAULT_LIST_CACHE_ENTRIES  1024
#define OCI_DEFAULT_WARM_INTERVAL    900
#define OCI_DEFAULT_WARM_MAX         1000
#define OCI_DEFAULT_CLUSTER_FAIL_TIMEOUT  10   /* seconds */
#define OCI_DEFAULT_CLUSTER_HOT_REQUESTS  3    /* forwards of a blob in
                                                  hot_window */
#define OCI_DEFAULT_CLUSTER_HOT_WINDOW    60   /* seconds */
#define OCI_DEFAULT_CLUSTER_MAX_REPLICAS  16   /* replica downloads at
                                                  once */
#define OCI_DEFAULT_CLUSTER_HOT_TABLE     4096 /* blobs counted at once */
#define OCI_PINS_MAX                 1000

/* A job with its transfer takes about 20 KiB (a blob's: 8 KiB of its
 * own, curl's handle and the response state) and at most one temp file:
 * 1024 are 20 MiB, and 1024 descriptors besides the running transfers'
 * sockets, under the 65536 of the shipped unit.  A waiter is 336 bytes.
 * One worker may hold half of the waiters. */
#define OCI_DEFAULT_MAX_JOBS         1024
#define OCI_DEFAULT_MAX_WORKER_JOBS  4096
#define OCI_DEFAULT_MAX_WAITERS      8192
#define OCI_DEFAULT_MAX_QUEUED       512
#define OCI_DEFAULT_FINISH_FRACTION  0.5
#define OCI_BOUND_MAX                (1 << 20)

#define OCI_CHUNK_SIZE_MIN           (64LL * 1024)
#define OCI_CHUNKS_PER_BLOB_MAX      64

typedef enum {
    OCI_SELECT_ORDERED = 0,   /* endpoints in the order written */
    OCI_SELECT_FASTEST        /* lowest probed round trip first */
} oci_select_t;

/* A file the config names, with the line that names it (for errors). */
typedef struct {
    char    *path;            /* NULL: not set */
    int      line;
} oci_config_file_t;

/* Upstream credentials: username + password_file, or token_file, or
 * none (all NULL). */
typedef struct {
    char              *username;
    oci_config_file_t  password_file;
    oci_config_file_t  token_file;
} oci_credentials_t;

typedef struct {
    char    *name;            /* "docker.io": what clients route by */
    char   **endpoints;       /* "https://registry-1.docker.io", ... */
    oci_credentials_t  *endpoint_creds;   /* per endpoint: its own, or
                                             none (all NULL); see
                                             oci_endpoint_creds() */
    size_t   n_endpoints;
    long     tag_ttl;         /* seconds a tag record is fresh */
    int      library_prefix;  /* one-part names gain "library/" */
    int      line;            /* of the registry's group */

    oci_select_t  select;
    long     probe_interval;  /* seconds between GET /v2/ probes */
    long     backoff;         /* seconds a failing endpoint is skipped
                                 first; doubles while it keeps failing,
                                 up to 32 times this */

    /* the registry's credentials, for its endpoints without their own */
    oci_credentials_t  creds;

    /* transport; proxy, no_proxy, timeouts and bandwidth_limit are
     * already resolved against the "fetcher" group's values */
    char              *proxy;        /* NULL: direct */
    char              *no_proxy;     /* NULL: none */
    oci_config_file_t  ca_file;
    oci_config_file_t  client_cert;
    oci_config_file_t  client_key;
    int                tls_verify;
    long               connect_timeout;   /* seconds */
    long               low_speed_time;    /* seconds */
    long long          bandwidth_limit;   /* bytes/s; 0: none */
    long               max_retry_after;   /* seconds */
    char             **redirect_hosts;    /* lower case */
    size_t             n_redirect_hosts;
    char             **resolve;           /* "host:port:address[,...]" */
    size_t             n_resolve;

    long     stale_if_error;  /* seconds past tag_ttl a stale tag may be
                                 served while every endpoint fails */
    long     negative_ttl;    /* seconds an upstream 404 is remembered */
    long     tags_ttl;        /* seconds a tags/list is reused */
    long     referrers_ttl;   /* seconds a referrers answer is reused */
} oci_registry_t;

/* An image of a pin or a warm list: a reference (pins may hold globs)
 * and the platforms of an index to take (none: every platform for a pin,
 * prefetch.platforms for a warm image). */
typedef struct {
    oci_imageref_t   ref;
    char           **platforms;
    size_t           n_platforms;
} oci_image_spec_t;

typedef struct {
    char            *file;           /* the path it was loaded from */

    char            *store_path;
    int              store_fsync;    /* fsync blobs and dirs on commit */
    long long        store_min_free; /* bytes; below: eviction */
    long long        store_max_size; /* bytes; 0: store_max_size_pct */
    int              store_max_size_pct;  /* of the filesystem's size */
    int              store_high_watermark;  /* % of max_size: evict */
    int              store_low_watermark;   /* % of max_size: stop */
    long             store_inactive; /* seconds unused: evict; 0: off */
    int              store_recency;  /* workers report what they serve
                                        and uses order eviction; 0: the
                                        download time alone (to measure
                                        what recency costs a hit) */
    long             recency_batch;  /* blobs a worker remembers served
                                        before it tells the fetcher */
    long             recency_interval;  /* seconds between those */
    oci_image_spec_t *pins;          /* store.pin: never evicted */
    size_t           n_pins;
    long             scrub_interval; /* seconds between scrubs; 0: off */
    long long        scrub_rate;     /* bytes/s a scrub reads at most */
    int              scrub_deep;     /* scrubs check layers' diff_ids */
    long             quarantine_max; /* files kept in quarantine/ */
    long             commit_queue;   /* commits waiting or running */

    oci_image_spec_t *warm;          /* pulled at start, re-resolved */
    size_t           n_warm;
    char            *warm_file;      /* more of them, a line each */
    long             warm_interval;  /* seconds between re-resolutions */
    long             warm_max;       /* images warmed at most */

    char            *fetcher_socket;
    char            *socket_group;     /* NULL: the fetcher's own group */
    long             socket_gid;       /* its id; -1 when not set */
    int              max_transfers;
    long             connect_timeout;  /* seconds */
    long             low_speed_time;   /* seconds below 1 KiB/s = stall */
    char            *proxy;            /* NULL: direct */
    char            *no_proxy;
    long long        bandwidth_limit;  /* bytes/s for all registries
                                          together; 0: none */
    long             max_retry_after;  /* seconds; the registries'
                                          default */
    int              max_per_host;     /* connections to one host */
    int              http2;            /* multiplex over HTTP/2 if offered */
    long long        chunk_threshold;  /* bytes; smaller blobs: one stream */
    long long        chunk_size;       /* bytes per ranged request */
    int              chunks_per_blob;  /* in flight at once; 0: no ranges */
    long             max_jobs;         /* jobs a client may start: the
                                          in-flight total */
    long             max_worker_jobs;  /* requests waiting, from one
                                          worker connection */
    long             max_waiters;      /* requests waiting, from all */
    long             max_queued;       /* client transfers queued behind
                                          max_transfers */
    double           finish_fraction;  /* a blob whose last waiter left
                                          finishes past this share of its
                                          bytes; 0: dropped whatever */
    long long        list_cache_size;  /* bytes of parsed lists kept */
    long             list_cache_entries;  /* lists kept */

    int              prefetch;            /* prefetch.enabled */
    char           **prefetch_platforms;  /* "os/arch" or "os/arch/variant" */
    size_t           n_prefetch_platforms;
    long long        prefetch_max_bytes;  /* per image */
    long             prefetch_max_children;  /* an index's manifests
                                                taken at most */
    long             prefetch_max_layers;    /* an image's layers taken
                                                at most */

    oci_registry_t  *registries;
    size_t           n_registries;
    oci_registry_t  *default_registry; /* NULL if none configured */

    /* the cluster group (src/oci_cluster.h); no peers: a lone node */
    char           **cluster_peers;       /* "host:port", as written */
    size_t           n_cluster_peers;
    size_t           cluster_self;        /* this node's index in them */
    char            *cluster_secret_file;
    int              cluster_secret_line; /* for errors: file:line */
    int              cluster_replicate;   /* OCI_CLUSTER_REPLICATE_* */
    long             cluster_fail_timeout;   /* seconds a failed peer is
                                                skipped */
    long             cluster_hot_requests;   /* replicate "hot": a blob
                                                nginx forwarded this many
                                                times in hot_window
                                                seconds is copied here */
    long             cluster_hot_window;
    size_t           cluster_hot_table;      /* blobs counted at once, at
                                                most (nginx's shared zone) */
    size_t           cluster_max_replicas;   /* copies downloading at
                                                once, at most */
} oci_config_t;

/*
 * Load and check the file.  On success *out owns everything (free it with
 * oci_config_destroy).  On failure returns OCI_EINVAL / OCI_EIO /
 * OCI_ENOMEM and err holds "file:line: message".
 */
int oci_config_load(const char *file, oci_config_t **out, char *err,
    size_t errlen);

void oci_config_destroy(oci_config_t *cf);

/*
 * The fetcher's check of what the config only names: every password,
 * token, CA, certificate and key file can be opened and read, and a
 * password or token file is not empty.  OCI_OK, or OCI_EIO with err
 * holding "file:line: registry "x": password_file "...": reason".
 */
int oci_config_check_files(const oci_config_t *cf, char *err,
    size_t errlen);

/*
 * Read a secret file (password_file, token_file) into out: the first
 * line without its line end.  OCI_OK, OCI_EIO (errno set), OCI_EINVAL
 * (empty) or OCI_ERANGE (longer than cap - 1).
 */
int oci_config_read_secret(const char *path, char *out, size_t cap);

/* The credentials requests to endpoint i of reg carry: the endpoint's
 * own if it has any, else the registry's (either may be none). */
const oci_credentials_t *oci_endpoint_creds(const oci_registry_t *reg,
    size_t i);

/* 1 if c names credentials (a username or a token_file). */
int oci_credentials_set(const oci_credentials_t *c);

/* 1 if host (a URL's host name or address, any case) is in reg's
 * redirect_hosts. */
int oci_redirect_host_allowed(const oci_registry_t *reg, const char *host);

/* The bytes the store may take: store.max_size, or its share of fs_bytes
 * (the filesystem's size). */
long long oci_config_max_size(const oci_config_t *cf, long long fs_bytes);

/* Read cluster.secret_file into out (cap bytes): the first line, at
 * least OCI_CLUSTER_SECRET_MIN bytes.  OCI_OK with *len set, or an error
 * with err holding "file:line: cluster.secret_file "...": reason". */
int oci_config_cluster_secret(const oci_config_t *cf, unsigned char *out,
    size_t cap, size_t *len, char *err, size_t errlen);

/* Exact, case-sensitive lookup of a registry by name; NULL if absent. */
oci_registry_t *oci_config_registry(const oci_config_t *cf,
    const char *name, size_t len);

#endif /* OCI_CONFIG_H */
