/*
 * Referrers jobs (distribution spec v1.1, "Listing Referrers"): the
 * manifests whose subject is a digest, as an image index in a temp file
 * that the worker opens and unlinks (BODY).
 *
 * The fetcher asks GET <endpoint>/v2/<name>/referrers/<digest> without a
 * filter, follows the upstream's next pages (at most REFERRERS_PAGES_MAX,
 * REFERRERS_BODY_MAX bytes in all) and merges their descriptors into one
 * index, which it keeps in the store for the registry's referrers_ttl
 * seconds (oci_store_referrers_path(); 0: not kept).  The artifactType
 * filter is applied to the answer only, so one stored index serves every
 * filter, and the answer is never paged: the whole list in one index.
 *
 * A registry without the API answers 404 (or 405, 400: it does not know
 * the route).  A 404 with a NAME_UNKNOWN body is taken the same way: a
 * registry with the API answers 200 with an empty index for any digest
 * it does not know, so a 404 says "no API" whatever its body.  The
 * answer is then built from the referrers tag schema: the tag
 * "sha256-<hex>" is asked for as an OCI image index; its manifests are
 * the referrers, and a missing tag (404 of any kind) or a tag that is not
 * an index means none.  "None" is an empty index, never a 404.
 *
 * "None" is not kept in the store: any digest can be asked for, and a
 * file per digest nobody refers to would fill the disk.  With
 * referrers_ttl set it is remembered in memory instead, in the bounded
 * negative cache (negative.h) for the registry's negative_ttl, under the
 * reference "@referrers:<hex>" that no tag or digest can be; an index
 * kept before is removed then.
 *
 * When every endpoint fails, or the upstream answers 429, a stored index
 * younger than referrers_ttl + stale_if_error answers instead (list.c);
 * an older one is removed.  One job per registry, name and digest serves
 * every request meanwhile, each with its own artifactType filter
 * (waiter_t.asked) and its own temp file (the worker unlinks it).  A
 * next page that cannot be followed, or that the upstream no longer
 * knows (404), fails the request (502): never a list cut short, never a
 * 404.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "body.h"
#include "job.h"
#include "list.h"
#include "log.h"
#include "paging.h"
#include "referrers.h"

#define REFERRERS_BODY_MAX   (4 * 1024 * 1024)
#define REFERRERS_PAGES_MAX  100

/* The negative cache's reference for "no referrers": '@' is in no tag
 * and no digest, so it never meets a manifest's remembered 404. */
#define REFERRERS_NONE_REF   "@referrers:"

typedef struct {
    list_job_t   list;                          /* first */
    char         hex[OCI_SHA256_HEX_LEN + 1];
    char         none_ref[sizeof(REFERRERS_NONE_REF)
                          + OCI_SHA256_HEX_LEN];  /* "@referrers:<hex>" */
    int          fallback;                      /* asking for the tag */
    json_t      *manifests;                     /* the descriptors */
} referrers_job_t;

static void referrers_done(job_t *j, const xfer_resp_t *r);
static void referrers_cleanup(job_t *j);
static int referrers_rejected(job_t *j, const xfer_resp_t *r);
static void referrers_job_answer(list_job_t *l, waiter_t *w,
    json_t *manifests);

/* What a waiter asked of the one index its job fetches for all. */
typedef struct {
    char  artifact_type[OCI_MEDIA_TYPE_MAX + 1];    /* "": all */
} referrers_waiter_t;

static const job_ops_t  referrers_ops = {
    "referrers",
    OCI_ERR_MANIFEST_UNKNOWN,
    list_headers,
    list_body,
    list_reset,
    list_can_retry,
    referrers_done,
    list_unavailable,
    NULL,               /* idle: dropped, nobody wants the answer */
    NULL,
    referrers_cleanup,
    NULL,               /* promote: no transfers of its own */
    list_throttled,     /* the stored index, or FAIL 429 */
    NULL,               /* retarget: keyed by registry and name */
    referrers_rejected,
    sizeof(referrers_waiter_t),
    NULL                /* view: not a download the status page lists */
};

static const list_kind_t  referrers_kind = {
    "manifests",
    "index",
    REFERRERS_BODY_MAX,
    REFERRERS_PAGES_MAX,
    "referrers too large",
    referrers_job_answer,
    NULL                /* loaded: filtered whole, any order */
};


/*
 * The image index of the descriptors in manifests whose artifactType is
 * artifact_type ("": all), as JSON text (the caller frees it); NULL if
 * out of memory.
 */
static char *
referrers_index(json_t *manifests, const char *artifact_type)
{
    json_t       *root, *out, *d;
    size_t        i;
    const char   *at;
    char         *text;

    out = json_array();
    root = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2,
                     "mediaType", OCI_MT_OCI_INDEX, "manifests", out);

    if (root == NULL) {
        return NULL;
    }

    json_array_foreach(manifests, i, d) {
        at = json_string_value(json_object_get(d, "artifactType"));

        if (artifact_type[0] != '\0'
            && (at == NULL || strcmp(at, artifact_type) != 0))
        {
            continue;
        }

        if (json_array_append(out, d) != 0) {
            json_decref(root);
            return NULL;
        }
    }

    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    return text;
}


/* Send the index, filtered, to (c, id), or FAIL if it cannot be made. */
static void
referrers_answer(jobs_t *jobs, conn_t *c, uint32_t id, json_t *manifests,
    const char *artifact_type)
{
    char  *text;

    text = referrers_index(manifests, artifact_type);

    if (text == NULL) {
        log_error("out of memory for a referrers index");
        conn_send_fail(c, id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    body_reply(jobs->cf, c, id, text, strlen(text), "");
    free(text);
}


static void
referrers_job_answer(list_job_t *l, waiter_t *w, json_t *manifests)
{
    referrers_waiter_t  *rw = w->data;

    referrers_answer(l->job.jobs, w->conn, w->id, manifests,
                     rw->artifact_type);
}


/* The stored index of reg/name/hex into path, "" if none is kept. */
static void
referrers_path(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *hex, char *path, size_t cap)
{
    if (reg->referrers_ttl == 0
        || oci_store_referrers_path(jobs->cf->store_path, reg->name, name,
                                    hex, path, cap)
           != OCI_OK)
    {
        path[0] = '\0';
    }
}


/* A waiter for (c, m->id) on j, with the client's filter; NULL on
 * failure (logged). */
static waiter_t *
referrers_add_waiter(job_t *j, conn_t *c, const oci_msg_t *m)
{
    waiter_t            *w;
    referrers_waiter_t  *rw;

    w = job_add_waiter(j, c, m->id);
    if (w == NULL) {
        return NULL;
    }

    rw = w->data;
    snprintf(rw->artifact_type, sizeof(rw->artifact_type), "%s",
             m->artifact_type);

    return w;
}


void
referrers_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const oci_registry_t  *reg;
    referrers_job_t       *t;
    job_t                 *j;
    json_t                *manifests;
    oci_errcode_t          code;
    char                   hex[OCI_SHA256_HEX_LEN + 1];
    char                   none_ref[sizeof(t->none_ref)];
    char                   path[OCI_PATH_MAX], key[JOB_KEY_MAX];

    reg = job_check_request(jobs, c, m);
    if (reg == NULL) {
        return;
    }

    if (oci_digest_parse(m->reference, strlen(m->reference), hex) != OCI_OK) {
        conn_send_fail(c, m->id, 400, OCI_ERR_DIGEST_INVALID, "invalid digest");
        return;
    }

    referrers_path(jobs, reg, m->name, hex, path, sizeof(path));

    manifests = list_stored(jobs, &referrers_kind, path,
                            reg->referrers_ttl,
                            reg->referrers_ttl + reg->stale_if_error);

    if (manifests != NULL) {
        log_debug("referrers %s/%s@%s: from the store", reg->name, m->name,
                  m->reference);
        referrers_answer(jobs, c, m->id, manifests, m->artifact_type);
        json_decref(manifests);
        return;
    }

    snprintf(none_ref, sizeof(none_ref), REFERRERS_NONE_REF "%s", hex);

    if (path[0] != '\0'
        && negative_find(jobs->negative, reg, m->name, none_ref, &code))
    {
        log_debug("referrers %s/%s@%s: none, remembered", reg->name,
                  m->name, m->reference);
        manifests = json_array();

        if (manifests == NULL) {
            conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
            return;
        }

        referrers_answer(jobs, c, m->id, manifests, "");
        json_decref(manifests);
        return;
    }

    /* the index is the same for every filter: one fetch for all */
    snprintf(key, sizeof(key), "R %s %s %s", reg->name, m->name, hex);

    j = job_find(jobs, key);

    if (j != NULL) {
        if (referrers_add_waiter(j, c, m) == NULL) {
            conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        }

        return;
    }

    if (jobs_admit_job(jobs, c, m->id) != 0) {
        return;
    }

    j = job_create(jobs, &referrers_ops, sizeof(referrers_job_t), reg,
                   m->name, m->reference, key);
    if (j == NULL) {
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    t = (referrers_job_t *) j;
    list_init(&t->list, &referrers_kind, reg->referrers_ttl, path);
    memcpy(t->hex, hex, sizeof(t->hex));
    memcpy(t->none_ref, none_ref, sizeof(t->none_ref));

    if (referrers_add_waiter(j, c, m) == NULL) {
        job_finish(j);
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    t->manifests = json_array();
    if (t->manifests == NULL) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    snprintf(j->path, sizeof(j->path), "/v2/%s/referrers/sha256:%s",
             m->name, hex);
    j->head = 0;
    j->accept = OCI_MT_OCI_INDEX;

    job_issue(j);
}


/*
 * The next page of the upstream's answer r, as a path for the same
 * endpoint: the rel="next" target without a scheme and host (the token
 * and the endpoint stay those of the registry).  PAGING_NEXT with the path
 * in out; PAGING_UNUSABLE if there is a next page that is no path under
 * /v2/, does not fit out or is not safe (see paging.h); PAGING_LAST if there
 * is none.
 */
static paging_next_t
referrers_link_next(const xfer_resp_t *r, char *out, size_t cap)
{
    const char   *target, *p;
    size_t        len, skip;
    paging_next_t   next;

    next = paging_next_target(r->link, r->link_truncated, &target, &len);
    if (next != PAGING_NEXT) {
        return next;
    }

    skip = 0;

    if (len > 8 && strncmp(target, "https://", 8) == 0) {
        skip = 8;

    } else if (len > 7 && strncmp(target, "http://", 7) == 0) {
        skip = 7;
    }

    if (skip > 0) {
        p = memchr(target + skip, '/', len - skip);
        if (p == NULL) {
            return PAGING_UNUSABLE;
        }

        len -= (size_t) (p - target);
        target = p;
    }

    if (len < 4 || len >= cap || strncmp(target, "/v2/", 4) != 0
        || !oci_ipc_link_safe(target, len))
    {
        return PAGING_UNUSABLE;
    }

    memcpy(out, target, len);
    out[len] = '\0';

    return PAGING_NEXT;
}


/* The index is complete: keep it (or remember that there is none) and
 * answer the waiters. */
static void
referrers_complete(referrers_job_t *t)
{
    job_t  *j = &t->list.job;
    char   *text;

    log_debug("%s: %zu referrers%s", j->label,
              json_array_size(t->manifests),
              t->fallback ? " (tag schema)" : "");

    if (t->list.path[0] != '\0' && json_array_size(t->manifests) == 0) {
        negative_add(j->jobs->negative, j->registry, j->name, t->none_ref,
                     OCI_ERR_MANIFEST_UNKNOWN);

        /* what was kept before is no answer any more, not even stale */
        if (unlink(t->list.path) != 0 && errno != ENOENT) {
            log_error("unlink(\"%s\") failed: %s", t->list.path,
                      strerror(errno));
        }

        cache_removed(j->jobs->cache, t->list.path);
        listcache_drop(j->jobs->lists, t->list.path);

    } else if (t->list.path[0] != '\0') {
        text = referrers_index(t->manifests, "");

        if (text == NULL) {
            job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
            return;
        }

        list_keep(&t->list, text, t->manifests);
        free(text);
    }

    list_answer(&t->list, t->manifests);
}


/* The Content-Type value v names an OCI image index (its parameters, a
 * charset, aside). */
static int
referrers_type_is_index(const char *v)
{
    size_t  len;

    v += strspn(v, " \t");
    len = strcspn(v, ";");

    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
        len--;
    }

    return len == sizeof(OCI_MT_OCI_INDEX) - 1
           && strncasecmp(v, OCI_MT_OCI_INDEX, len) == 0;
}


/* Add the object descriptors of the array manifests.  0 or -1. */
static int
referrers_add(referrers_job_t *t, json_t *manifests)
{
    json_t  *d;
    size_t   i;

    json_array_foreach(manifests, i, d) {
        if (json_is_object(d) && json_array_append(t->manifests, d) != 0) {
            return -1;
        }
    }

    return 0;
}


static void
referrers_done(job_t *j, const xfer_resp_t *r)
{
    referrers_job_t  *t = (referrers_job_t *) j;
    json_t           *root, *manifests;
    const char       *mt;
    char              path[JOB_PATH_MAX];
    paging_next_t       next;
    int               rc;

    root = list_page(&t->list);
    manifests = json_object_get(root, "manifests");

    if (t->fallback) {
        /* the tag may name any manifest: only an index lists referrers */
        mt = json_string_value(json_object_get(root, "mediaType"));

        rc = 0;

        if (json_is_array(manifests)
            && ((mt != NULL && strcmp(mt, OCI_MT_OCI_INDEX) == 0)
                || (mt == NULL && referrers_type_is_index(r->content_type))))
        {
            rc = referrers_add(t, manifests);
        }

        json_decref(root);

        if (rc != 0) {
            job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
            return;
        }

        referrers_complete(t);
        return;
    }

    if (!json_is_array(manifests)) {
        json_decref(root);
        log_error("%s: the upstream's answer is not an image index",
                  j->label);
        job_fail(j, 502, OCI_ERR_UPSTREAM, "invalid referrers upstream");
        return;
    }

    rc = referrers_add(t, manifests);
    json_decref(root);

    if (rc != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    next = referrers_link_next(r, path, sizeof(path));

    if (list_next_page(&t->list, next, path)) {
        return;
    }

    referrers_complete(t);
}


/*
 * 404, 405 or 400 to the first page: no referrers API, so the tag
 * schema; 404 to the tag: no referrers; 404 to a next page: the list
 * the upstream started cannot be finished, an upstream failure (a 404
 * would say the subject is unknown).  Anything else fails as usual.
 */
static int
referrers_rejected(job_t *j, const xfer_resp_t *r)
{
    referrers_job_t  *t = (referrers_job_t *) j;

    if (t->fallback) {
        if (r->status != 404) {
            return 0;
        }

        referrers_complete(t);
        return 1;
    }

    if (t->list.pages > 0) {
        if (r->status != 404) {
            return 0;
        }

        log_error("%s: the upstream's next page is gone (404)", j->label);
        job_fail(j, 502, OCI_ERR_UPSTREAM,
                 "the upstream's next page is gone");
        return 1;
    }

    if (r->status != 404 && r->status != 405 && r->status != 400) {
        return 0;
    }

    log_debug("%s: no referrers API (%ld), asking for the tag sha256-%s",
              j->label, r->status, t->hex);

    t->fallback = 1;
    snprintf(j->path, sizeof(j->path), "/v2/%s/manifests/sha256-%s",
             j->name, t->hex);
    j->accept = OCI_MT_OCI_INDEX;
    job_issue(j);

    return 1;
}


static void
referrers_cleanup(job_t *j)
{
    referrers_job_t  *t = (referrers_job_t *) j;

    list_cleanup(&t->list);
    json_decref(t->manifests);
}
