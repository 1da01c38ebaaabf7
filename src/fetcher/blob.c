/*
 * Blob jobs: one download per digest into a temp file, hashed on the way,
 * committed to the store only when the size and sha256 match.  The temp
 * file is created by the upstream's first 2xx answer, not before: a job
 * queued for a transfer slot, or waiting for a token or an answer, holds
 * no descriptor.  A job its last waiter left is dropped (job.h) unless it
 * has more than fetcher.finish_fraction of its bytes: then it finishes
 * into the store, at prefetch priority (blob_idle()).  Waiters get
 * SIZE (the temp file to stream from) as soon as the size is known,
 * PROGRESS (bytes complete from offset 0) once per loop iteration, and
 * DONE after the commit.
 *
 * With ranged downloads on (fetcher.chunks_per_blob > 0) the first request
 * is a probe for the first chunk, "Range: bytes=0-<chunk_size - 1>":
 *
 *   200          the upstream ignores Range: the probe is the whole blob,
 *                streamed in order as without ranges.
 *   206          its Content-Range gives the size: the temp file is sized
 *                at once and the rest is fetched as ranged chunks (chunks.h)
 *                from the URL the probe ended at (a CDN after a redirect),
 *                over HTTP/1.1 connections of their own, at most
 *                chunks_per_blob at a time counting the probe.  A blob
 *                below chunk_threshold gets its rest in one request.
 *   206 with another Content-Range than asked for (or no total): the
 *                probe is dropped for a plain GET.
 *   416          an empty blob: a plain GET (job.c).
 *
 * The stream and each chunk gather what arrives in a block of up to
 * BLOB_WRITE_BLOCK (blob_wbuf_add()) and write it at once: a write per
 * block, not per piece libcurl hands over.  Bytes count (written, a
 * chunk's got, PROGRESS) only once they are in the file.  Chunks write
 * with pwrite() at their offsets.  The hash follows the contiguous prefix:
 * bytes written at its end are hashed from the block, chunks that finished further out are read back with pread()
 * (from the page cache) once the prefix reaches them.  A failed chunk is
 * retried alone, for the bytes it still lacks, at most BLOB_CHUNK_TRIES
 * times in all before the job fails; the others go on meanwhile.
 *
 * Chunks on the registry's own origin carry its token, which may run out
 * during a long download: a chunk answered 401 there waits (not counted as
 * a failure) while the token is fetched again, and no chunk starts
 * meanwhile; a refusal ends the job with 401 (auth.c, job_auth_chunk()).
 *
 * Chunks that go to a redirect target (a CDN) use the URL the registry
 * signed, which expires: a chunk answered 401, 403 or 410 there asks the
 * registry again.  It is sent to the registry's blob URL (with its token)
 * and follows the fresh redirect; once it is answered 206 its URL is the
 * one the other chunks use.  No other chunk starts meanwhile, chunks that
 * meet the old URL's expiry too wait for it, and what every chunk got is
 * kept: only the bytes a chunk still lacks are asked for again.  An expiry
 * counts as a failure of its chunk only if the URL it expired served no
 * chunk, so a CDN that refuses every fresh URL ends the job.  A chunk's
 * redirect target that answers 429 (or is held back after one) ends the
 * job with 429: that host is left alone for its Retry-After.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "blob.h"
#include "chunks.h"
#include "job.h"
#include "job_auth.h"
#include "log.h"
#include "stats.h"
#include "url.h"

#define BLOB_CHUNK_TRIES  4              /* the first try and 3 retries */
#define BLOB_READBACK     (64 * 1024)

/* Bytes go to the temp file in blocks of up to BLOB_WRITE_BLOCK, held in
 * memory until then, but never longer than BLOB_WRITE_HOLD_NS while a
 * client streams the file: a client sees bytes only once they are in the
 * file (PROGRESS counts written bytes), and a hold of that long keeps
 * blocks large on a fast link without making a slow one look stalled. */
#define BLOB_WRITE_BLOCK    (1024 * 1024)
#define BLOB_WRITE_HOLD_NS  (20 * 1000 * 1000LL)

/* The blocks of all downloads together take at most this much; past it a
 * download writes its bytes as they come, as before blocks, rather than
 * make the fetcher's memory grow with max_transfers x chunks_per_blob. */
#define BLOB_WRITE_BUDGET   (16 * 1024 * 1024)

static long long  blob_write_hold_ns = BLOB_WRITE_HOLD_NS;
static size_t     blob_write_held;              /* bytes of all blocks */

/* The bytes of one writer (the stream, or a chunk) not in the file yet. */
typedef struct {
    char         *data;                         /* cap bytes; NULL until
                                                   needed, or none to be
                                                   had */
    size_t        cap;
    size_t        len;
    long long     off;                          /* of data[0] in the file */
    long long     since;                        /* CLOCK_MONOTONIC ns of
                                                   the oldest byte held */
} blob_wbuf_t;

typedef struct {
    job_t         job;                          /* first */
    char          hex[OCI_SHA256_HEX_LEN + 1];
    int           fd;
    char          tmp[OCI_PATH_MAX];
    EVP_MD_CTX   *md;
    long long     size;                         /* -1 until known */
    long long     written;                      /* from 0, in order, in the
                                                   file and hashed */
    blob_wbuf_t   wbuf;                         /* the stream's bytes not
                                                   written yet */
    blob_wbuf_t  *cbufs;                        /* per chunk, the same */
    int           size_sent;                    /* waiters stream tmp */
    int           size_told;                    /* a waiter was sent
                                                   SIZE with tmp: it
                                                   may read it */
    int           committed;
    int           replica;                      /* a cluster copy
                                                   (blob_replicate()) */
    commit_req_t *commit;                       /* verified, its commit
                                                   under way: tmp is the
                                                   commit thread's */
    long long     reserved;                     /* cache_reserve()d */

    /* ranged chunks, once the probe answered 206 */
    int           chunked;
    chunks_t      chunks;                       /* chunk 0 is the probe's */
    int           parallel;                     /* chunks in flight at most */
    char         *url;                          /* where the probe ended */
    int           url_is_endpoint;              /* same origin: send auth */
    int           url_served;                   /* a chunk completed on
                                                   url */
    int           renew;                        /* url expired: the next
                                                   chunk asks the registry
                                                   for a fresh one */
    chunk_t      *renewing;                     /* that chunk, running */
    int           store_failed;                 /* a chunk could not write */
    token_waiter_t  token_waiter;               /* chunks wait for a token */
    unsigned long   fresh_token;                /* the token it got, until a
                                                   chunk succeeded with it */
} blob_job_t;

/* What a waiter was sent. */
typedef struct {
    int           sent_size;                    /* SIZE went out */
    long long     sent_bytes;                   /* the last PROGRESS */
} blob_waiter_t;

static int blob_headers(job_t *j, const xfer_resp_t *r);
static int blob_body(job_t *j, const char *p, size_t n);
static int blob_reset(job_t *j);
static int blob_can_retry(job_t *j);
static void blob_done(job_t *j, const xfer_resp_t *r);
static void blob_unavailable(job_t *j);
static int blob_idle(job_t *j);
static void blob_flush(job_t *j);
static void blob_cleanup(job_t *j);
static void blob_promote(job_t *j);
static void blob_retarget(job_t *j, const oci_registry_t *reg,
    const char *name);

static int blob_schedule(blob_job_t *b);
static void blob_commit_done(void *data, int err, const char *path);
static void blob_wbuf_free(blob_wbuf_t *wb);
static void blob_committed(blob_job_t *b, int err);
static int blob_chunk_headers(xfer_t *x, void *data);
static int blob_chunk_body(xfer_t *x, const char *p, size_t n, void *data);
static void blob_chunk_done(xfer_t *x, CURLcode rc, void *data);
static void blob_chunk_token_done(token_waiter_t *w, int ok,
    oci_errcode_t code);

static void blob_view(const job_t *j, job_view_t *v);

static const job_ops_t  blob_ops = {
    "blob",
    OCI_ERR_BLOB_UNKNOWN,
    blob_headers,
    blob_body,
    blob_reset,
    blob_can_retry,
    blob_done,
    blob_unavailable,
    blob_idle,
    blob_flush,
    blob_cleanup,
    blob_promote,
    NULL,               /* throttled: FAIL, nothing stored to serve */
    blob_retarget,
    NULL,               /* rejected: FAIL */
    sizeof(blob_waiter_t),
    blob_view
};

static const xfer_handler_t  blob_chunk_handler = {
    blob_chunk_headers,
    blob_chunk_body,
    blob_chunk_done
};


static void
blob_send_size(blob_job_t *b, waiter_t *w, const char *path)
{
    blob_waiter_t  *bw = w->data;
    oci_msg_t       m;

    oci_msg_init(&m, OCI_MSG_SIZE, 0);
    m.size = b->size;
    snprintf(m.path, sizeof(m.path), "%s", path);

    bw->sent_size = 1;
    b->size_told = 1;
    waiter_send(w, &m);
}


static void
blob_send_progress(blob_job_t *b, waiter_t *w)
{
    blob_waiter_t  *bw = w->data;
    oci_msg_t       m;

    if (!bw->sent_size || bw->sent_bytes == b->written) {
        return;
    }

    oci_msg_init(&m, OCI_MSG_PROGRESS, 0);
    m.bytes = b->written;

    bw->sent_bytes = b->written;
    waiter_send(w, &m);
}


/* The blob at path is stored: 1 and its size, else 0. */
static int
blob_stored(const char *path, long long *size)
{
    struct stat  st;

    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        return 0;
    }

    *size = (long long) st.st_size;

    return 1;
}


/* The upstream request for the digest through j->registry and j->name:
 * the probe for the first chunk, or a plain GET. */
static void
blob_request_setup(job_t *j, const char *digest)
{
    const oci_config_t  *cf = j->jobs->cf;

    snprintf(j->path, sizeof(j->path), "/v2/%s/blobs/%s", j->name, digest);
    j->head = 0;
    j->accept = NULL;
    j->ranged = cf->chunks_per_blob > 0;
    j->range_first = 0;
    j->range_last = cf->chunk_size - 1;
}


/* The job is keyed by digest alone, so its waiters may have asked through
 * other registries and names; the one it asked through refused (see
 * job_refuse()): the same request for the next waiter's way. */
static void
blob_retarget(job_t *j, const oci_registry_t *reg, const char *name)
{
    blob_job_t  *b = (blob_job_t *) j;
    char         digest[OCI_DIGEST_MAX + 1];

    snprintf(digest, sizeof(digest), "sha256:%s", b->hex);
    job_target(j, reg, name, digest);
    blob_request_setup(j, digest);
}


/* A new job for the digest (key "B <digest>"), the probe (or the plain
 * GET) on its way.  NULL on failure (logged);
 * with a waiter given, it has got FAIL. */
static job_t *
blob_start(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *digest, const char *hex, const char *key, xfer_prio_t prio,
    conn_t *c, uint32_t id, const char *peer_url)
{
    blob_job_t  *b;
    job_t       *j;

    j = job_create(jobs, &blob_ops, sizeof(blob_job_t), reg, name, digest,
                   key);
    if (j == NULL) {
        if (c != NULL) {
            conn_send_fail(c, id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        }

        return NULL;
    }

    b = (blob_job_t *) j;
    token_waiter_init(&b->token_waiter, blob_chunk_token_done, b);
    b->fd = -1;
    b->size = -1;
    memcpy(b->hex, hex, sizeof(b->hex));
    j->prio = prio;
    j->detached = c == NULL;

    if (c != NULL && job_add_waiter(j, c, id) == NULL) {
        job_finish(j);
        conn_send_fail(c, id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return NULL;
    }

    b->md = EVP_MD_CTX_new();
    if (b->md == NULL) {
        log_error("EVP_MD_CTX_new() failed");
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return NULL;
    }

    blob_request_setup(j, digest);

    if (peer_url != NULL) {
        if (job_from_peer(j, peer_url) != 0) {
            job_finish(j);
            return NULL;
        }

        b->replica = 1;
        jobs->replicas++;
    }

    job_issue(j);

    return j;
}


void
blob_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const oci_registry_t  *reg;
    blob_job_t            *b;
    job_t                 *j;
    waiter_t              *w;
    char                   hex[OCI_SHA256_HEX_LEN + 1];
    char                   path[OCI_PATH_MAX];
    char                   key[OCI_DIGEST_MAX + 8];
    long long              size;
    oci_msg_t              r;
    int                    rc;

    reg = job_check_request(jobs, c, m);
    if (reg == NULL) {
        return;
    }

    rc = oci_digest_parse(m->reference, strlen(m->reference), hex);
    if (rc != OCI_OK) {
        conn_send_fail(c, m->id, 400, OCI_ERR_DIGEST_INVALID,
                   rc == OCI_ENOTSUP ? "unsupported digest algorithm"
                                     : "invalid digest");
        return;
    }

    if (oci_store_blob_path(jobs->cf->store_path, hex, path, sizeof(path))
        != OCI_OK)
    {
        conn_send_fail(c, m->id, 500, OCI_ERR_UNAVAILABLE, "store path too long");
        return;
    }

    if (blob_stored(path, &size)) {
        cache_used(jobs->cache, path);

        oci_msg_init(&r, OCI_MSG_SIZE, m->id);
        r.size = size;
        snprintf(r.path, sizeof(r.path), "%s", path);
        conn_send(c, &r);

        oci_msg_init(&r, OCI_MSG_DONE, m->id);
        conn_send(c, &r);
        return;
    }

    /* one download per digest, whichever registry or name asks; each
     * waiter keeps its own in case the job's is refused (job_refuse()) */
    snprintf(key, sizeof(key), "B %s", m->reference);

    j = job_find(jobs, key);

    if (j != NULL) {
        b = (blob_job_t *) j;

        w = job_add_waiter(j, c, m->id);
        if (w == NULL) {
            conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
            return;
        }

        w->registry = reg;
        snprintf(w->name, sizeof(w->name), "%s", m->name);

        oci_msg_from(&r, m->id, OCI_FROM_INFLIGHT);
        conn_send(c, &r);

        job_promote(j);

        /* while the commit runs tmp may be renamed at any moment: the
         * waiter gets SIZE with the stored path once it is there */
        if (b->size_sent && b->commit == NULL) {
            blob_send_size(b, w, b->tmp);
            blob_send_progress(b, w);
        }

        return;
    }

    if (jobs_admit_job(jobs, c, m->id) != 0) {
        return;
    }

    blob_start(jobs, reg, m->name, m->reference, hex, key, XFER_PRIO_CLIENT,
               c, m->id, NULL);
}


int
blob_present(jobs_t *jobs, const char *digest)
{
    char       hex[OCI_SHA256_HEX_LEN + 1];
    char       path[OCI_PATH_MAX];
    char       key[OCI_DIGEST_MAX + 8];
    long long  size;

    if (oci_digest_parse(digest, strlen(digest), hex) != OCI_OK
        || oci_store_blob_path(jobs->cf->store_path, hex, path, sizeof(path))
           != OCI_OK)
    {
        return 1;
    }

    snprintf(key, sizeof(key), "B %s", digest);

    return blob_stored(path, &size) || job_find(jobs, key) != NULL;
}


int
blob_prefetch(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *digest)
{
    char  hex[OCI_SHA256_HEX_LEN + 1];
    char  key[OCI_DIGEST_MAX + 8];

    if (blob_present(jobs, digest)
        || oci_digest_parse(digest, strlen(digest), hex) != OCI_OK)
    {
        return 0;
    }

    snprintf(key, sizeof(key), "B %s", digest);

    return blob_start(jobs, reg, name, digest, hex, key, XFER_PRIO_PREFETCH,
                      NULL, 0, NULL)
           != NULL ? 1 : -1;
}


/*
 * REPLICATE: a worker of this cluster node forwarded a blob another node
 * owns often enough (cluster.replicate "hot", hot_requests in
 * hot_window): a copy is made here, so that its next clients are served
 * from this node's store.  It is a blob job like a prefetch (detached,
 * at prefetch priority, verified before it is committed), whose first
 * request goes to this node's own nginx at cluster.self with the
 * OCI_CLUSTER_REPLICA_HEADER: the module there passes it over the other
 * nodes (their ring: the owner, then failover), as a client's miss would
 * go, and never serves it as a miss here.  The copy thus crosses the LAN,
 * not the WAN.  If no node gives it, the job asks the upstream
 * (job_peer_failed()).  At most cluster.max_replicas at once, and within
 * fetcher.max_jobs; past them the request is left out and counted.  No
 * answer is sent.
 */
void
blob_replicate(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const oci_config_t    *cf = jobs->cf;
    const oci_registry_t  *reg;
    char                   hex[OCI_SHA256_HEX_LEN + 1];
    char                   key[OCI_DIGEST_MAX + 8];
    char                   url[OCI_PATH_MAX];
    int                    n;

    if (cf->cluster_replicate != OCI_CLUSTER_REPLICATE_HOT
        || cf->n_cluster_peers < 2)
    {
        /* a worker of an nginx that read another config */
        log_debug("REPLICATE of %s ignored: cluster.replicate is not "
                  "\"hot\"", m->reference);
        return;
    }

    reg = oci_config_registry(cf, m->registry, strlen(m->registry));

    if (reg == NULL || reg->n_endpoints == 0
        || !oci_name_valid(m->name, strlen(m->name))
        || oci_digest_parse(m->reference, strlen(m->reference), hex)
           != OCI_OK)
    {
        log_info("REPLICATE of %s/%s@%s ignored: not a configured "
                 "registry, name or sha256 digest", m->registry, m->name,
                 m->reference);
        return;
    }

    if (blob_present(jobs, m->reference)) {
        return;
    }

    if (jobs->replicas >= cf->cluster_max_replicas
        || jobs->njobs >= (size_t) cf->max_jobs)
    {
        stats_registry(reg)->cluster_replicas_skipped++;
        log_debug("REPLICATE of %s left out: %zu copies, %zu jobs in "
                  "flight", m->reference, jobs->replicas, jobs->njobs);
        return;
    }

    n = snprintf(url, sizeof(url), "http://%s/v2/%s/blobs/%s?ns=%s",
                 cf->cluster_peers[cf->cluster_self], m->name, m->reference,
                 reg->name);

    if (n < 0 || (size_t) n >= sizeof(url)) {
        return;
    }

    snprintf(key, sizeof(key), "B %s", m->reference);

    if (blob_start(jobs, reg, m->name, m->reference, hex, key,
                   XFER_PRIO_PREFETCH, NULL, 0, url)
        != NULL)
    {
        stats_registry(reg)->cluster_replicas++;
        log_info("blob %s/%s@%s: hot here, copied from the cluster",
                 reg->name, m->name, m->reference);
    }
}


int
blob_progress(jobs_t *jobs, const char *digest, long long *done)
{
    char         key[OCI_DIGEST_MAX + 8];
    job_t       *j;
    blob_job_t  *b;

    snprintf(key, sizeof(key), "B %s", digest);

    j = job_find(jobs, key);
    if (j == NULL) {
        return 0;
    }

    b = (blob_job_t *) j;
    *done = b->written + (b->chunked ? 0 : (long long) b->wbuf.len);

    return 1;
}


/* The status page: the bytes in the file, from 0 in order, or, of a
 * ranged download, what every chunk got. */
static void
blob_view(const job_t *j, job_view_t *v)
{
    size_t             i;
    const blob_job_t  *b = (const blob_job_t *) j;

    snprintf(v->ref, sizeof(v->ref), "sha256:%s", b->hex);
    v->total = b->size;
    v->done = b->written + (long long) b->wbuf.len;

    if (b->chunked) {
        v->done = 0;

        for (i = 0; i < b->chunks.n; i++) {
            v->done += b->chunks.chunk[i].got;
        }
    }
}


/* Abort the chunk transfers (never from inside one of their callbacks)
 * and forget the chunks. */
static void
blob_chunks_stop(blob_job_t *b)
{
    size_t  i;

    for (i = 0; i < b->chunks.n; i++) {
        if (b->chunks.chunk[i].xfer != NULL) {
            xfer_abort(b->chunks.chunk[i].xfer);
        }
    }

    token_waiter_cancel(&b->token_waiter);
    b->fresh_token = 0;

    if (b->cbufs != NULL) {
        for (i = 0; i < b->chunks.n; i++) {
            blob_wbuf_free(&b->cbufs[i]);
        }

        free(b->cbufs);
        b->cbufs = NULL;
    }

    chunks_free(&b->chunks);
    free(b->url);
    b->url = NULL;
    b->chunked = 0;
    b->renew = 0;
    b->renewing = NULL;
}


static int
blob_reset(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;

    blob_chunks_stop(b);

    /* no answer came yet: no file */
    if (b->fd >= 0 && ftruncate(b->fd, 0) != 0) {
        log_error("ftruncate(\"%s\") failed: %s", b->tmp, strerror(errno));
        return -1;
    }

    if (EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1) {
        log_error("EVP_DigestInit_ex() failed");
        return -1;
    }

    b->written = 0;
    b->size = -1;
    b->size_sent = 0;
    b->wbuf.len = 0;
    b->wbuf.off = 0;

    return 0;
}


/* Once waiters stream the temp file, it cannot start over elsewhere (a
 * job without them goes on by chunks: blob_unavailable()).  The cluster's
 * copy (job_from_peer()), a plain GET, may while no waiter was told of
 * the file. */
static int
blob_can_retry(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;

    return !b->size_told && (!b->size_sent || j->peer_url != NULL);
}


static void
blob_size_known(blob_job_t *b, long long size)
{
    job_t    *j = &b->job;
    queue_t  *q;

    b->size = size;
    b->size_sent = 1;

    /* room for it, made ahead if the store is near its bound */
    cache_reserve(j->jobs->cache, size - b->reserved);
    b->reserved = size;

    for (q = queue_head(&j->waiters);
         q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        blob_send_size(b, queue_data(q, waiter_t, job_link), b->tmp);
    }
}


/* Reserve the whole blob (size > 0) on disk, so that a full disk fails
 * now and not halfway; a filesystem that cannot reserve still gets the
 * size. */
static int
blob_presize(blob_job_t *b, long long size)
{
    /* fallocate() refuses a length of 0 (EINVAL): nothing to hold */
    if (size == 0) {
        return 0;
    }

    if (fallocate(b->fd, 0, 0, (off_t) size) == 0) {
        return 0;
    }

    /* a full disk: the cache manager frees room, or the download fails
     * now, cleanly */
    if (errno == ENOSPC && cache_free_now(b->job.jobs->cache, size) > 0
        && fallocate(b->fd, 0, 0, (off_t) size) == 0)
    {
        return 0;
    }

    if (errno != EOPNOTSUPP && errno != ENOSYS) {
        log_error("fallocate(\"%s\", %lld) failed: %s", b->tmp, size,
                  strerror(errno));
        return -1;
    }

    if (ftruncate(b->fd, (off_t) size) != 0) {
        log_error("ftruncate(\"%s\", %lld) failed: %s", b->tmp, size,
                  strerror(errno));
        return -1;
    }

    return 0;
}


/* The probe got its 206: plan the chunks.  0, or what the headers
 * callback returns. */
static int
blob_chunks_begin(blob_job_t *b, const xfer_resp_t *r)
{
    job_t               *j = &b->job;
    const oci_config_t  *cf = j->jobs->cf;
    long long            total, want_last;
    int                  small;

    total = r->range_total;
    want_last = (total < cf->chunk_size ? total : cf->chunk_size) - 1;

    if (r->range_first != 0 || total <= 0 || r->range_last != want_last) {
        /* no usable size: what came is not worth the trouble, start over
         * without Range */
        log_warn("%s: unusable Content-Range (%lld-%lld/%lld) for bytes "
                 "0-%lld, plain GET", j->label, r->range_first,
                 r->range_last, r->range_total, cf->chunk_size - 1);
        j->ranged = 0;
        return job_restart(j);
    }

    small = total < cf->chunk_threshold;

    if (chunks_plan(&b->chunks, total, cf->chunk_size, small, b) != OCI_OK) {
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
    }

    /* a block each, allocated when its chunk writes, freed when it ends:
     * chunks_per_blob of them at most */
    b->cbufs = calloc(b->chunks.n, sizeof(blob_wbuf_t));
    if (b->cbufs == NULL) {
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
    }

    b->url = strdup(xfer_effective_url(j->xfer));
    if (b->url == NULL) {
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
    }

    if (blob_presize(b, total) != 0) {
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
    }

    /* the registry's token is for the registry, never for a CDN */
    b->url_is_endpoint =
        url_same_origin(b->url, j->registry->endpoints[j->endpoint]);
    b->parallel = small ? 1 : cf->chunks_per_blob;
    b->chunked = 1;
    chunks_start(&b->chunks, &b->chunks.chunk[0]);

    log_debug("%s: %lld bytes in %zu chunk%s, %d at a time", j->label, total,
              b->chunks.n, b->chunks.n == 1 ? "" : "s", b->parallel);

    blob_size_known(b, total);

    /* queued only: they start from the loop, after this callback */
    if (blob_schedule(b) != 0) {
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE,
                         "cannot start a transfer");
    }

    return 0;
}


/* The upstream answered 2xx: the temp file, once per job (a restart
 * truncates it).  0, or what the headers callback returns. */
static int
blob_tmp_open(blob_job_t *b)
{
    job_t               *j = &b->job;
    const oci_config_t  *cf = j->jobs->cf;

    if (b->fd >= 0) {
        return 0;
    }

    b->fd = oci_store_tmp_create(cf->store_path, b->tmp, sizeof(b->tmp));
    if (b->fd < 0) {
        log_error("cannot create a temp file in \"%s/tmp\": %s",
                  cf->store_path, strerror(errno));
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "store not writable");
    }

    return 0;
}


static int
blob_headers(job_t *j, const xfer_resp_t *r)
{
    blob_job_t  *b = (blob_job_t *) j;

    if ((r->status == 200 || (r->status == 206 && j->ranged))
        && blob_tmp_open(b) != 0)
    {
        return -1;
    }

    if (r->status == 206 && j->ranged) {
        return blob_chunks_begin(b, r);
    }

    if (r->status != 200) {
        log_error("%s: upstream answered %ld to a %s GET", j->label,
                  r->status, j->ranged ? "ranged" : "plain");
        return job_abort(j, 502, OCI_ERR_UPSTREAM,
                         "unexpected upstream status");
    }

    if (j->ranged) {
        log_debug("%s: upstream ignores Range, one stream", j->label);
    }

    if (r->content_length >= 0) {
        /* the room first, as for chunks: a full disk fails here, before
         * any waiter is told a size and a client's 200 goes out */
        if (blob_presize(b, r->content_length) != 0) {
            return job_abort(j, 503, OCI_ERR_UNAVAILABLE,
                             "store write failed");
        }

        blob_size_known(b, r->content_length);
    }

    /* else the size is known only at the end: waiters get SIZE then */

    return 0;
}


/* Write n bytes at off; hash them if they extend the prefix.  0, or -1
 * if the store failed (logged). */
static int
blob_write(blob_job_t *b, const char *p, size_t n, long long off)
{
    long long  rest;

    if (oci_write_all(b->fd, p, n, off) != 0) {
        /* a full disk: room for the rest of the blob, if the cache
         * manager can make it; the write goes again at its offset */
        rest = b->size > off ? b->size - off : (long long) n;

        if (errno != ENOSPC
            || cache_free_now(b->job.jobs->cache, rest) == 0
            || oci_write_all(b->fd, p, n, off) != 0)
        {
            log_error("pwrite(\"%s\") failed: %s", b->tmp, strerror(errno));
            return -1;
        }
    }

    if (off == b->written) {
        if (EVP_DigestUpdate(b->md, p, n) != 1) {
            log_error("EVP_DigestUpdate() failed");
            return -1;
        }

        b->written += (long long) n;
    }

    job_mark_dirty(&b->job);

    return 0;
}


void
blob_set_write_hold(long long ns)
{
    blob_write_hold_ns = ns;
}


static long long
blob_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


/* Write what wb holds at wb->off, and forget it.  The bytes written, or
 * -1 (logged). */
static long long
blob_wbuf_flush(blob_job_t *b, blob_wbuf_t *wb)
{
    size_t  n = wb->len;

    if (n == 0) {
        return 0;
    }

    if (blob_write(b, wb->data, n, wb->off) != 0) {
        return -1;
    }

    wb->off += (long long) n;
    wb->len = 0;

    return (long long) n;
}


static void
blob_wbuf_free(blob_wbuf_t *wb)
{
    if (wb->data != NULL) {
        free(wb->data);
        blob_write_held -= wb->cap;
    }

    memset(wb, 0, sizeof(blob_wbuf_t));
}


/* n more bytes after what wb holds: into the block, and the block to the
 * file each time it is full; *flushed gets the bytes that reached the
 * file.  rest: the bytes this writer may still get from wb->off (-1:
 * unknown), so that a small blob takes a small block.  0, or -1
 * (logged). */
static int
blob_wbuf_add(blob_job_t *b, blob_wbuf_t *wb, const char *p, size_t n,
    long long rest, long long *flushed)
{
    size_t     room, want;
    long long  w;

    *flushed = 0;

    if (wb->data == NULL) {
        want = BLOB_WRITE_BLOCK;

        if (rest >= 0 && rest < (long long) want) {
            want = (size_t) rest;
        }

        if (want > n && blob_write_held + want <= BLOB_WRITE_BUDGET) {
            wb->data = malloc(want);

            if (wb->data != NULL) {
                wb->cap = want;
                blob_write_held += want;
            }
        }

        if (wb->data == NULL) {
            /* no block, or no point in one: as they come, then */
            if (blob_write(b, p, n, wb->off) != 0) {
                return -1;
            }

            wb->off += (long long) n;
            *flushed = (long long) n;
            return 0;
        }
    }

    while (n > 0) {
        if (wb->len == 0) {
            wb->since = blob_now_ns();
        }

        room = wb->cap - wb->len;
        if (room > n) {
            room = n;
        }

        memcpy(wb->data + wb->len, p, room);
        wb->len += room;
        p += room;
        n -= room;

        if (wb->len == wb->cap) {
            w = blob_wbuf_flush(b, wb);
            if (w < 0) {
                return -1;
            }

            *flushed += w;
        }
    }

    return 0;
}


/* 1 if a waiter streams the temp file, which sees only written bytes. */
static int
blob_streaming(blob_job_t *b)
{
    return b->size_sent && !queue_empty(&b->job.waiters);
}


/* Write what chunk c holds; its got grows by it.  0, or -1 (logged). */
static int
blob_chunk_flush(blob_job_t *b, chunk_t *c)
{
    long long  w;

    if (b->cbufs == NULL) {
        return 0;
    }

    w = blob_wbuf_flush(b, &b->cbufs[c - b->chunks.chunk]);
    if (w < 0) {
        return -1;
    }

    c->got += w;

    return 0;
}


/* Write what is held longer than BLOB_WRITE_HOLD_NS (all: now = -1),
 * for the streaming clients.  0, or -1 (logged). */
static int
blob_wbufs_flush(blob_job_t *b, long long now)
{
    size_t  i;

    if (!b->chunked) {
        if (b->wbuf.len > 0
            && (now < 0 || now - b->wbuf.since >= blob_write_hold_ns))
        {
            return blob_wbuf_flush(b, &b->wbuf) < 0 ? -1 : 0;
        }

        return 0;
    }

    for (i = 0; b->cbufs != NULL && i < b->chunks.n; i++) {
        if (b->cbufs[i].len > 0
            && (now < 0 || now - b->cbufs[i].since >= blob_write_hold_ns)
            && blob_chunk_flush(b, &b->chunks.chunk[i]) != 0)
        {
            return -1;
        }
    }

    return 0;
}


/* Hash what chunks further out wrote, as far as the prefix is complete.
 * 0, or -1 (logged). */
static int
blob_readback(blob_job_t *b)
{
    long long  contiguous;
    ssize_t    n;
    size_t     want;
    char       buf[BLOB_READBACK];

    contiguous = chunks_contiguous(&b->chunks);

    while (b->written < contiguous) {
        want = contiguous - b->written < (long long) sizeof(buf)
               ? (size_t) (contiguous - b->written) : sizeof(buf);

        n = pread(b->fd, buf, want, (off_t) b->written);

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }

            log_error("pread(\"%s\") failed: %s", b->tmp,
                      n == 0 ? "end of file" : strerror(errno));
            return -1;
        }

        if (EVP_DigestUpdate(b->md, buf, (size_t) n) != 1) {
            log_error("EVP_DigestUpdate() failed");
            return -1;
        }

        b->written += n;
        job_mark_dirty(&b->job);
    }

    return 0;
}


/* Bytes for chunk c: its next bytes in order.  0, or -1 to stop its
 * transfer (b->store_failed says whether the store or the chunk is to
 * blame). */
static int
blob_chunk_write(blob_job_t *b, chunk_t *c, const char *p, size_t n)
{
    blob_wbuf_t  *wb;
    long long     flushed;

    wb = &b->cbufs[c - b->chunks.chunk];

    /* got counts what is in the file; the block continues it */
    if (wb->len == 0) {
        wb->off = c->start + c->got;
    }

    if ((long long) n > c->end - (wb->off + (long long) wb->len)) {
        log_warn("%s: more than bytes %lld-%lld came", b->job.label,
                 c->start, c->end - 1);
        return -1;
    }

    if (blob_wbuf_add(b, wb, p, n, c->end - wb->off, &flushed) != 0) {
        b->store_failed = 1;
        return -1;
    }

    c->got += flushed;

    if (wb->len > 0 && blob_streaming(b)) {
        job_mark_dirty(&b->job);
    }

    return 0;
}


static int
blob_body(job_t *j, const char *p, size_t n)
{
    blob_job_t  *b = (blob_job_t *) j;
    long long    flushed;

    if (b->chunked) {
        if (blob_chunk_write(b, &b->chunks.chunk[0], p, n) == 0) {
            return 0;
        }

        return b->store_failed
               ? job_abort(j, 503, OCI_ERR_UNAVAILABLE, "store write failed")
               : job_abort(j, 502, OCI_ERR_UPSTREAM,
                           "upstream sent more than the range asked for");
    }

    if (b->size >= 0
        && b->written + (long long) b->wbuf.len + (long long) n > b->size)
    {
        return job_abort(j, 502, OCI_ERR_UPSTREAM,
                         "upstream sent more than its Content-Length");
    }

    if (blob_wbuf_add(b, &b->wbuf, p, n,
                      b->size >= 0 ? b->size - b->wbuf.off : -1, &flushed)
        != 0)
    {
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
    }

    if (b->wbuf.len > 0 && blob_streaming(b)) {
        job_mark_dirty(j);
    }

    return 0;
}


/* Start chunk c for the bytes it lacks: at b->url, or at the registry
 * when the URL is to be renewed.  0, or -1 (logged). */
static int
blob_chunk_start(blob_job_t *b, chunk_t *c)
{
    job_t       *j = &b->job;
    xfer_req_t   req;
    char         url[OCI_PATH_MAX + JOB_PATH_MAX];
    int          to_endpoint;

    memset(&req, 0, sizeof(req));
    req.url = b->url;
    req.redirected = 1;
    to_endpoint = b->url_is_endpoint;

    if (b->renew) {
        if (job_url(j, url, sizeof(url)) != 0) {
            return -1;
        }

        req.url = url;
        req.redirected = 0;
        to_endpoint = 1;
        b->renewing = c;
    }

    req.prio = j->prio;
    req.urgent = chunks_is_frontier(&b->chunks, c);
    req.ranged = 1;
    req.range_first = c->start + c->got;
    req.range_last = c->end - 1;
    req.http1 = 1;
    job_auth_request(j, &req, to_endpoint);

    /* which token it carries, for its 401 */
    c->token = req.bearer != NULL
               && oci_endpoint_creds(j->registry, j->endpoint)
                      ->token_file.path == NULL
               ? token_serial(j->jobs->tokens, j->registry, j->endpoint,
                              j->scope)
               : 0;

    c->xfer = xfer_start(j->jobs->xm, &req, &blob_chunk_handler, c);
    if (c->xfer == NULL) {
        return -1;
    }

    chunks_start(&b->chunks, c);

    return 0;
}


/* Keep parallel chunks in flight, the lowest waiting one first; none
 * while they wait for a token, only one while the URL is renewed.  0, or
 * -1 if a transfer could not be set up (logged). */
static int
blob_schedule(blob_job_t *b)
{
    chunk_t  *c;

    if (token_waiter_pending(&b->token_waiter)) {
        return 0;
    }

    while (b->chunks.running < b->parallel && b->renewing == NULL
           && (c = chunks_next(&b->chunks)) != NULL)
    {
        if (blob_chunk_start(b, c) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Chunk c (running) was answered 401, 403 or 410 by the redirect target
 * b->url: the signed URL expired.  It runs again once the registry gave a
 * fresh one (see above).  0, or -1 if that was one expiry too many (the
 * caller fails the chunk).
 */
static int
blob_chunk_expired(blob_job_t *b, chunk_t *c, long status, int renewal)
{
    job_t  *j = &b->job;

    if (renewal) {
        /* the fresh URL failed at once: counted, the retry asks again */
        log_warn("%s: the fresh redirect URL answered %ld", j->label,
                 status);
        return -1;
    }

    if (b->renew) {
        /* the renewal is under way, or was asked for: wait for it */
        chunks_again(&b->chunks, c);
        return 0;
    }

    log_info("%s: the redirect URL answered %ld, asking the registry for "
             "a fresh one", j->label, status);

    b->renew = 1;
    stats_registry(j->registry)->urls_renewed++;

    if (!b->url_served) {
        /* a URL that never served a chunk: the CDN refuses, not expiry */
        return -1;
    }

    chunks_again(&b->chunks, c);

    return 0;
}


/* The renewal chunk got its 206 from url: the URL of every chunk now. */
static int
blob_chunk_renewed(blob_job_t *b, const char *url)
{
    job_t  *j = &b->job;
    char   *copy;

    copy = strdup(url);
    if (copy == NULL) {
        return -1;
    }

    free(b->url);
    b->url = copy;
    b->url_is_endpoint =
        url_same_origin(b->url, j->registry->endpoints[j->endpoint]);
    b->url_served = 0;
    b->renew = 0;
    b->renewing = NULL;

    log_debug("%s: chunks go to the fresh URL now", j->label);

    /* queued only: they start from the loop, after this callback */
    return blob_schedule(b);
}


/* Every byte is in: check the size and the digest, commit, DONE. */
static void
blob_complete(blob_job_t *b)
{
    job_t          *j = &b->job;
    unsigned char   md[EVP_MAX_MD_SIZE];
    unsigned int    mdlen;
    char            got[OCI_SHA256_HEX_LEN + 1];
    const char     *root;

    root = j->jobs->cf->store_path;

    /* what is still held goes to the file before anything is checked */
    if (blob_wbufs_flush(b, -1) != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
        return;
    }

    if (b->size >= 0 && b->written != b->size) {
        if (j->peer_url != NULL) {
            /* the cluster's copy: the upstream, if nobody reads it yet */
            job_peer_failed(j, "short body");
            return;
        }

        log_error("%s: got %lld of %lld bytes", j->label, b->written,
                  b->size);
        job_fail(j, 502, OCI_ERR_UPSTREAM, "short body from upstream");
        return;
    }

    mdlen = 0;
    if (EVP_DigestFinal_ex(b->md, md, &mdlen) != 1
        || mdlen != OCI_SHA256_HEX_LEN / 2)
    {
        log_error("EVP_DigestFinal_ex() failed");
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "hashing failed");
        return;
    }

    oci_sha256_hex(md, got);

    if (strcmp(got, b->hex) != 0 && j->peer_url != NULL) {
        log_error("%s: digest mismatch, the cluster sent sha256:%s "
                  "(%lld bytes); not stored", j->label, got, b->written);
        job_peer_failed(j, "digest mismatch");
        return;
    }

    if (strcmp(got, b->hex) != 0) {
        log_error("%s: digest mismatch, upstream sent sha256:%s "
                  "(%lld bytes); not stored", j->label, got, b->written);
        stats_registry(j->registry)->digest_mismatches++;
        job_fail(j, 502, OCI_ERR_UPSTREAM, "digest mismatch");
        return;
    }

    if (j->jobs->commit == NULL) {
        blob_committed(b, oci_store_commit(root, b->tmp, b->fd, b->hex,
                                           j->jobs->cf->store_fsync)
                          == OCI_OK ? 0 : errno);
        return;
    }

    /* the fsync of a multi-GB file must not hold the loop: the commit
     * thread does it, and the waiters hear DONE when it is over */
    if (commit_submit(j->jobs->commit, b->fd, b->tmp, b->hex,
                      blob_commit_done, b, &b->commit)
        == 0)
    {
        /* the thread closes it: nothing reads the file here any more */
        b->fd = -1;
        return;
    }

    if (errno == EAGAIN) {
        log_error("%s: %ld commits are under way already "
                  "(store.commit_queue), not stored", j->label,
                  j->jobs->cf->commit_queue);
        job_fail(j, 503, OCI_ERR_UNAVAILABLE,
                 "store busy, too many commits under way");
        return;
    }

    log_error("%s: cannot hand \"%s\" to the commit thread: %s",
              j->label, b->tmp, strerror(errno));
    job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
}


/* On the loop: the commit thread is done with tmp. */
static void
blob_commit_done(void *data, int err, const char *path)
{
    blob_job_t  *b = data;

    b->commit = NULL;

    blob_committed(b, err);
}


/* The commit ended, err 0 (the blob is under its name) or an errno:
 * DONE, or FAIL, to every waiter. */
static void
blob_committed(blob_job_t *b, int err)
{
    job_t          *j = &b->job;
    char            path[OCI_PATH_MAX];
    const char     *root;
    queue_t        *q;
    waiter_t       *w;
    oci_msg_t       m;

    root = j->jobs->cf->store_path;

    if (err != 0) {
        log_error("%s: cannot commit \"%s\" to the store: %s", j->label,
                  b->tmp, strerror(err));
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
        return;
    }

    b->committed = 1;
    stats_registry(j->registry)->blobs_fetched++;
    b->size = b->written;

    if (oci_store_blob_path(root, b->hex, path, sizeof(path)) != OCI_OK) {
        path[0] = '\0';
    }

    /* in the index now, instead of reserved (the commit thread's commits
     * are added by commit.c) */
    cache_reserve(j->jobs->cache, -b->reserved);
    b->reserved = 0;

    if (j->jobs->commit == NULL) {
        cache_added(j->jobs->cache, path);
    }

    log_debug("%s: stored, %lld bytes", j->label, b->written);

    for (q = queue_head(&j->waiters);
         q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        w = queue_data(q, waiter_t, job_link);

        if (!((blob_waiter_t *) w->data)->sent_size) {
            blob_send_size(b, w, path);
        }

        blob_send_progress(b, w);

        oci_msg_init(&m, OCI_MSG_DONE, 0);
        waiter_send(w, &m);
    }

    job_finish(j);
}


/* A chunk is done or failed: hash what became contiguous, then finish or
 * start what may run now. */
static void
blob_chunks_next(blob_job_t *b)
{
    if (blob_readback(b) != 0) {
        job_fail(&b->job, 503, OCI_ERR_UNAVAILABLE, "store read failed");
        return;
    }

    if (chunks_complete(&b->chunks)) {
        blob_complete(b);
        return;
    }

    if (blob_schedule(b) != 0) {
        job_fail(&b->job, 503, OCI_ERR_UNAVAILABLE, "cannot start a transfer");
    }
}


/* Chunk c (running) ended; ok: every byte of it is in. */
static void
blob_chunk_ended(blob_job_t *b, chunk_t *c, int ok, const char *why)
{
    job_t  *j = &b->job;

    /* what a failed transfer left unwritten is asked for again; the
     * block's memory goes until the chunk runs again */
    if (b->cbufs != NULL) {
        blob_wbuf_free(&b->cbufs[c - b->chunks.chunk]);
    }

    if (b->store_failed) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
        return;
    }

    if (ok) {
        /* the token the chunks got works */
        if (c->token != 0 && c->token == b->fresh_token) {
            b->fresh_token = 0;
        }

        b->url_served = 1;
        chunks_done(&b->chunks, c);
        blob_chunks_next(b);
        return;
    }

    if (!chunks_failed(&b->chunks, c, BLOB_CHUNK_TRIES)) {
        log_error("%s: bytes %lld-%lld failed %d times (%s)", j->label,
                  c->start + c->got, c->end - 1, c->failures, why);
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "upstream registry unavailable");
        return;
    }

    log_warn("%s: bytes %lld-%lld failed (%s), retrying", j->label,
             c->start + c->got, c->end - 1, why);

    blob_chunks_next(b);
}


static int
blob_chunk_headers(xfer_t *x, void *data)
{
    chunk_t             *c = data;
    blob_job_t          *b = c->owner;
    const xfer_resp_t   *r;

    r = xfer_response(x);

    if (r->status != 206 || r->range_first != c->start + c->got
        || r->range_last != c->end - 1 || r->range_total != b->size)
    {
        log_warn("%s: asked for bytes %lld-%lld/%lld, upstream answered "
                 "%ld with %lld-%lld/%lld", b->job.label, c->start + c->got,
                 c->end - 1, b->size, r->status, r->range_first,
                 r->range_last, r->range_total);
        return -1;
    }

    if (c == b->renewing) {
        if (blob_chunk_renewed(b, xfer_effective_url(x)) != 0) {
            b->store_failed = 1;
            return -1;
        }
    }

    return 0;
}


static int
blob_chunk_body(xfer_t *x, const char *p, size_t n, void *data)
{
    chunk_t  *c = data;

    return blob_chunk_write(c->owner, c, p, n);
}


/* Chunk c (running) was answered 401: its token ran out, or a refusal. */
static void
blob_chunk_unauthorized(blob_job_t *b, chunk_t *c, xfer_t *x,
    const xfer_resp_t *r)
{
    int  rc;

    rc = job_auth_chunk(&b->job, r, xfer_effective_url(x), c->token,
                        b->fresh_token, &b->token_waiter);

    if (rc < 0) {
        /* refused: the job is gone */
        return;
    }

    chunks_again(&b->chunks, c);

    /* 1: it starts again with the others once the token is in */
    if (rc == 0) {
        blob_chunks_next(b);
    }
}


static void
blob_chunk_token_done(token_waiter_t *w, int ok, oci_errcode_t code)
{
    blob_job_t  *b = w->data;
    job_t       *j = &b->job;

    if (!ok) {
        job_auth_token_failed(j, code);
        return;
    }

    b->fresh_token = token_serial(j->jobs->tokens, j->registry,
                                  j->endpoint, j->scope);

    if (blob_schedule(b) != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "cannot start a transfer");
    }
}


static void
blob_chunk_done(xfer_t *x, CURLcode rc, void *data)
{
    chunk_t             *c = data;
    blob_job_t          *b = c->owner;
    job_t               *j = &b->job;
    const xfer_resp_t   *r;
    char                 why[CURL_ERROR_SIZE + 32];
    int                  foreign, renewal;

    /* the transfer is freed when this returns */
    c->xfer = NULL;

    /* every byte it got counts, whatever the end: in the file first */
    if (blob_chunk_flush(b, c) != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
        return;
    }

    renewal = c == b->renewing;

    if (renewal) {
        b->renewing = NULL;
    }

    r = xfer_response(x);
    foreign = !job_from_endpoint(j, xfer_effective_url(x));

    /* a redirect target that throttles: its Retry-After holds for every
     * chunk (and every job) that would go there */
    if ((rc == CURLE_OK && r->status == 429 && foreign) || xfer_held(x)) {
        if (rc == CURLE_OK) {
            job_hold_host(j, xfer_effective_url(x), r);
        }

        job_fail(j, 429, OCI_ERR_TOOMANYREQUESTS,
                 "upstream redirect target throttles, retry later");
        return;
    }

    if (rc != CURLE_OK && xfer_refused(x) != NULL) {
        job_fail(j, 502, OCI_ERR_UPSTREAM, xfer_refused(x));
        return;
    }

    if (rc == CURLE_OK && foreign
        && (r->status == 401 || r->status == 403 || r->status == 410))
    {
        if (blob_chunk_expired(b, c, r->status, renewal) == 0) {
            blob_chunks_next(b);
            return;
        }

        blob_chunk_ended(b, c, 0, "redirect URL refused at once");
        return;
    }

    if (rc == CURLE_OK && r->status == 401) {
        blob_chunk_unauthorized(b, c, x, r);
        return;
    }

    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", xfer_strerror(x, rc));

    } else {
        snprintf(why, sizeof(why), "answered %ld", r->status);
    }

    /* every byte counts, even if the connection broke after the last */
    blob_chunk_ended(c->owner, c, c->start + c->got == c->end, why);
}


static void
blob_done(job_t *j, const xfer_resp_t *r)
{
    blob_job_t  *b = (blob_job_t *) j;
    chunk_t     *c;

    if (!b->chunked) {
        blob_complete(b);
        return;
    }

    c = &b->chunks.chunk[0];

    if (blob_chunk_flush(b, c) != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
        return;
    }

    blob_chunk_ended(b, c, c->start + c->got == c->end, "short body");
}


/* The probe failed for good on its endpoint.  Before the chunks began
 * that is the job's end; after, only chunk 0 failed. */
static void
blob_unavailable(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;

    if (!b->chunked) {
        log_error("%s: upstream unavailable", j->label);
        job_refuse(j, 503, OCI_ERR_UNAVAILABLE, job_unavailable_message(j));
        return;
    }

    blob_chunk_ended(b, &b->chunks.chunk[0], 0, "transfer failed");
}


static void
blob_flush(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;
    queue_t     *q;

    if (blob_streaming(b) && blob_wbufs_flush(b, blob_now_ns()) != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
        return;
    }

    if (b->chunked && blob_readback(b) != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store read failed");
        return;
    }

    for (q = queue_head(&j->waiters);
         q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        blob_send_progress(b, queue_data(q, waiter_t, job_link));
    }
}


/* j->prio changed: the chunks follow. */
static void
blob_promote(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;
    size_t       i;

    for (i = 0; i < b->chunks.n; i++) {
        if (b->chunks.chunk[i].xfer != NULL) {
            xfer_set_prio(b->chunks.chunk[i].xfer, j->prio);
        }
    }
}


/*
 * The last waiter left.  A download that has more than finish_fraction
 * of its bytes goes on into the store, behind what clients wait for: the
 * next pull of the same image most likely wants it, and most of its
 * upstream cost is paid.  One whose size is unknown, or not that far
 * (or finish_fraction 0), is dropped.
 */
static int
blob_idle(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;
    double       fraction;
    long long    got;
    size_t       i;

    /* verified, only the disk is left: nothing to save by dropping it */
    if (b->commit != NULL) {
        return 1;
    }

    fraction = j->jobs->cf->finish_fraction;

    if (fraction <= 0.0 || b->size <= 0) {
        return 0;
    }

    /* what came counts, written yet or still in a block */
    got = b->written + (long long) b->wbuf.len;

    if (b->chunked) {
        got = 0;

        for (i = 0; i < b->chunks.n; i++) {
            got += b->chunks.chunk[i].got
                   + (b->cbufs != NULL ? (long long) b->cbufs[i].len : 0);
        }
    }

    if ((double) got < fraction * (double) b->size) {
        return 0;
    }

    log_info("%s: every client left at %lld of %lld bytes, finishing",
             j->label, got, b->size);

    job_demote(j);

    return 1;
}


static void
blob_cleanup(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;

    blob_chunks_stop(b);
    cache_reserve(j->jobs->cache, -b->reserved);

    /* the fetcher stops (an idle job under commit is kept): the commit
     * goes on, tmp is the commit thread's */
    if (b->commit != NULL) {
        commit_detach(b->commit);
        b->commit = NULL;
        b->committed = 1;
    }

    if (b->fd >= 0) {
        close(b->fd);

        if (!b->committed && unlink(b->tmp) != 0 && errno != ENOENT) {
            log_error("unlink(\"%s\") failed: %s", b->tmp, strerror(errno));
        }
    }

    blob_wbuf_free(&b->wbuf);
    EVP_MD_CTX_free(b->md);

    if (b->replica) {
        j->jobs->replicas--;
    }
}
