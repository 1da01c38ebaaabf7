/*
 * Tags jobs.  The answer is a tags/list JSON in a temp file that the
 * worker opens and unlinks (BODY), with the query of the Link header's
 * next page.  Every answer has its own file: the worker unlinks it.
 *
 * With the registry's tags_ttl at 0 the request is forwarded: GET
 * <endpoint>/v2/<name>/tags/list?n=..&last=.., the upstream's body and
 * next page handed on as they are; each request has its own job, since
 * its query is its own.  A next page that cannot be handed on (too long,
 * not safe for a Link header) fails the request (502): passing the page
 * on without it would say the list ends there.
 *
 * Otherwise the fetcher keeps the repository's whole list in the store
 * (oci_store_taglist_path(), {"name":..,"tags":[..]} sorted, written
 * atomically) and pages it itself, as the distribution spec says: tags
 * in lexical (byte) order, only those after "last", at most "n" of them
 * ("n=0": none), and a next page "n=<n>&last=<last tag sent>" while more
 * remain.  A list younger than tags_ttl answers at once; an older or
 * missing one is fetched whole (GET .../tags/list, following the
 * upstream's own next pages, at most TAGS_PAGES_MAX of them and
 * TAGS_BODY_MAX bytes in all) and stored, by one job per registry and
 * name that every request meanwhile waits for, each with its own n and
 * last (waiter_t.asked).  A next page that cannot be followed fails the
 * fetch (502) and nothing is stored.  When every endpoint fails, or
 * the upstream answers 429, a stored list younger than tags_ttl +
 * stale_if_error is answered instead (list.c).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "body.h"
#include "job.h"
#include "list.h"
#include "log.h"
#include "paging.h"
#include "tags.h"
#include "url.h"

#define TAGS_BODY_MAX   (16 * 1024 * 1024)
#define TAGS_PAGES_MAX  1000

typedef struct {
    list_job_t   list;                          /* first; forwarded: no
                                                   pages, nothing kept */

    /* forwarded: the body goes to the temp file */
    int          fd;
    char         tmp[OCI_PATH_MAX];
    long long    written;
    int          handed_over;                   /* the worker owns tmp */

    /* cached: the whole list is fetched, page by page, into memory */
    int          whole;
    json_t      *tags;                          /* array of strings */
} tags_job_t;

static int tags_headers(job_t *j, const xfer_resp_t *r);
static int tags_body(job_t *j, const char *p, size_t n);
static int tags_reset(job_t *j);
static void tags_done(job_t *j, const xfer_resp_t *r);
static void tags_cleanup(job_t *j);
static void tags_job_answer(list_job_t *l, waiter_t *w, json_t *tags);
static int tags_loaded(json_t *tags);

/* What a waiter asked of the one list its job fetches for all. */
typedef struct {
    long long  n;                       /* -1: none */
    char       last[OCI_TAG_MAX + 1];   /* "": none */
} tags_waiter_t;

static const job_ops_t  tags_ops = {
    "tags",
    OCI_ERR_NAME_UNKNOWN,
    tags_headers,
    tags_body,
    tags_reset,
    list_can_retry,
    tags_done,
    list_unavailable,
    NULL,               /* idle: dropped, nobody wants the answer */
    NULL,
    tags_cleanup,
    NULL,               /* promote: no transfers of its own */
    list_throttled,     /* the stored list, or FAIL 429 */
    NULL,               /* retarget: keyed by registry and name */
    NULL,               /* rejected: FAIL */
    sizeof(tags_waiter_t),
    NULL                /* view: not a download the status page lists */
};

static const list_kind_t  tags_kind = {
    "tags",
    "list",
    TAGS_BODY_MAX,
    TAGS_PAGES_MAX,
    "tag list too large",
    tags_job_answer,
    tags_loaded
};


/* A stored list is ours only if it is as tags_store() writes it: strings
 * in strictly increasing byte order, which the pages' binary search
 * relies on.  Anything else is refused, and fetched again. */
static int
tags_loaded(json_t *tags)
{
    size_t       i, count;
    const char  *s, *prev;

    count = json_array_size(tags);
    prev = NULL;

    for (i = 0; i < count; i++) {
        s = json_string_value(json_array_get(tags, i));

        if (s == NULL || (prev != NULL && strcmp(prev, s) >= 0)) {
            log_warn("a stored tag list is not in order: fetched again");
            return -1;
        }

        prev = s;
    }

    return 0;
}


/* The index of the first tag after last in the sorted tags ("": 0), by
 * binary search: a page costs its own size, not the list's. */
static size_t
tags_after(json_t *tags, const char *last)
{
    size_t  lo, hi, mid;

    lo = 0;
    hi = json_array_size(tags);

    if (last[0] == '\0') {
        return 0;
    }

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (strcmp(json_string_value(json_array_get(tags, mid)), last) <= 0)
        {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return lo;
}


/*
 * The page of tags (an array of strings in strictly increasing order:
 * tags_store() and tags_loaded() see to it) that n and last select, as the JSON text of a tags/list answer (the caller frees it),
 * and its next page's query in next ("" for none).  NULL if out of
 * memory (logged).
 */
static char *
tags_page(const char *name, json_t *tags, long long n, const char *last,
    char *next, size_t cap)
{
    json_t       *root, *out;
    size_t        i, count, sent;
    const char   *s, *last_sent;
    char         *text;

    out = json_array();
    root = json_object();

    if (out == NULL || root == NULL
        || json_object_set_new(root, "name", json_string(name)) != 0
        || json_object_set(root, "tags", out) != 0)
    {
        json_decref(out);
        json_decref(root);
        log_error("out of memory for a tag list");
        return NULL;
    }

    count = json_array_size(tags);
    sent = 0;
    last_sent = NULL;
    next[0] = '\0';

    for (i = tags_after(tags, last); i < count; i++) {
        s = json_string_value(json_array_get(tags, i));

        if (n >= 0 && (long long) sent == n) {
            /* more remain: the next page starts after the last one sent
             * (n = 0 sends none and has no next page, as the spec says) */
            if (last_sent != NULL) {
                snprintf(next, cap, "n=%lld&last=%s", n, last_sent);
            }
            break;
        }

        if (json_array_append_new(out, json_string(s)) != 0) {
            json_decref(out);
            json_decref(root);
            log_error("out of memory for a tag list");
            return NULL;
        }

        sent++;
        last_sent = s;
    }

    json_decref(out);

    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    if (text == NULL) {
        log_error("out of memory for a tag list");
    }

    return text;
}


/* Send the page to (c, id), or FAIL if it cannot be made. */
static void
tags_answer(jobs_t *jobs, conn_t *c, uint32_t id, const char *name,
    json_t *tags, long long n, const char *last)
{
    char  *text, next[512];

    text = tags_page(name, tags, n, last, next, sizeof(next));

    if (text == NULL) {
        conn_send_fail(c, id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    body_reply(jobs->cf, c, id, text, strlen(text), next);
    free(text);
}


static void
tags_job_answer(list_job_t *l, waiter_t *w, json_t *tags)
{
    tags_waiter_t  *tw = w->data;

    tags_answer(l->job.jobs, w->conn, w->id, l->job.name, tags, tw->n,
                tw->last);
}


/* The stored list of reg/name into path, "" if none is kept. */
static void
tags_path(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    char *path, size_t cap)
{
    if (reg->tags_ttl == 0
        || oci_store_taglist_path(jobs->cf->store_path, reg->name, name,
                                  path, cap)
           != OCI_OK)
    {
        path[0] = '\0';
    }
}


/* qsort() of an array of json strings, by bytes */
static int
tags_cmp(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *) a),
                  json_string_value(*(json_t *const *) b));
}


/*
 * The fetched pages, sorted and without duplicates, as the stored list;
 * the sorted array replaces t->tags.  0 or -1 (logged).
 */
static int
tags_store(tags_job_t *t)
{
    job_t       *j = &t->list.job;
    json_t     **v, *sorted, *root;
    size_t       i, count;
    char        *text;

    count = json_array_size(t->tags);

    v = malloc((count + 1) * sizeof(json_t *));
    sorted = json_array();

    if (v == NULL || sorted == NULL) {
        free(v);
        json_decref(sorted);
        log_error("out of memory for a tag list");
        return -1;
    }

    for (i = 0; i < count; i++) {
        v[i] = json_array_get(t->tags, i);
    }

    qsort(v, count, sizeof(json_t *), tags_cmp);

    for (i = 0; i < count; i++) {
        if (i > 0 && tags_cmp(&v[i - 1], &v[i]) == 0) {
            continue;
        }

        if (json_array_append(sorted, v[i]) != 0) {
            free(v);
            json_decref(sorted);
            log_error("out of memory for a tag list");
            return -1;
        }
    }

    free(v);
    json_decref(t->tags);
    t->tags = sorted;

    root = json_pack("{s:s, s:O}", "name", j->name, "tags", sorted);
    text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);

    if (text == NULL) {
        log_error("out of memory for a tag list");
        return -1;
    }

    list_keep(&t->list, text, sorted);
    free(text);

    return 0;
}


static int
tags_forward_query(job_t *j, const oci_msg_t *m)
{
    CURL  *easy;
    char   num[32];
    int    rc;

    easy = curl_easy_init();
    if (easy == NULL) {
        return -1;
    }

    rc = 0;

    if (m->n >= 0) {
        snprintf(num, sizeof(num), "%lld", m->n);
        rc = url_add_query_arg(easy, j->path, sizeof(j->path), "n", num);
    }

    if (rc == 0 && m->last[0] != '\0') {
        rc = url_add_query_arg(easy, j->path, sizeof(j->path), "last",
                               m->last);
    }

    curl_easy_cleanup(easy);

    return rc;
}


/* A waiter for (c, m->id) on j, with the client's n and last; NULL
 * on failure (logged). */
static waiter_t *
tags_add_waiter(job_t *j, conn_t *c, const oci_msg_t *m)
{
    waiter_t       *w;
    tags_waiter_t  *tw;

    w = job_add_waiter(j, c, m->id);
    if (w == NULL) {
        return NULL;
    }

    tw = w->data;
    tw->n = m->n;
    snprintf(tw->last, sizeof(tw->last), "%s", m->last);

    return w;
}


void
tags_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const oci_registry_t  *reg;
    tags_job_t            *t;
    job_t                 *j;
    json_t                *tags;
    char                   path[OCI_PATH_MAX], key[JOB_KEY_MAX];

    reg = job_check_request(jobs, c, m);
    if (reg == NULL) {
        return;
    }

    if (m->last[0] != '\0' && !oci_tag_valid(m->last, strlen(m->last))) {
        conn_send_fail(c, m->id, 400, OCI_ERR_UNSUPPORTED, "invalid last");
        return;
    }

    tags_path(jobs, reg, m->name, path, sizeof(path));

    tags = list_stored(jobs, &tags_kind, path, reg->tags_ttl,
                       reg->tags_ttl + reg->stale_if_error);

    if (tags != NULL) {
        log_debug("tags %s/%s: from the store", reg->name, m->name);
        tags_answer(jobs, c, m->id, m->name, tags, m->n, m->last);
        json_decref(tags);
        return;
    }

    /* the whole list is the same for every request: one fetch for all */
    key[0] = '\0';

    if (reg->tags_ttl > 0) {
        snprintf(key, sizeof(key), "T %s %s", reg->name, m->name);

        j = job_find(jobs, key);

        if (j != NULL) {
            if (tags_add_waiter(j, c, m) == NULL) {
                conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE,
                           "out of memory");
            }

            return;
        }
    }

    if (jobs_admit_job(jobs, c, m->id) != 0) {
        return;
    }

    j = job_create(jobs, &tags_ops, sizeof(tags_job_t), reg, m->name, NULL,
                   key[0] != '\0' ? key : NULL);
    if (j == NULL) {
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    t = (tags_job_t *) j;
    list_init(&t->list, &tags_kind, reg->tags_ttl, path);
    t->fd = -1;
    t->whole = reg->tags_ttl > 0;

    if (tags_add_waiter(j, c, m) == NULL) {
        job_finish(j);
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    snprintf(j->path, sizeof(j->path), "/v2/%s/tags/list", m->name);

    j->head = 0;
    j->accept = "application/json";

    if (t->whole) {
        t->tags = json_array();
        if (t->tags == NULL) {
            job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
            return;
        }

        job_issue(j);
        return;
    }

    if (tags_forward_query(j, m) != 0) {
        job_fail(j, 400, OCI_ERR_UNSUPPORTED, "query too long");
        return;
    }

    job_issue(j);
}


/* The list's bound (forwarded too: its total stays 0); a forwarded page
 * gets its temp file now that the upstream answered 2xx, not while the
 * job waits (bounded work, job.h). */
static int
tags_headers(job_t *j, const xfer_resp_t *r)
{
    tags_job_t          *t = (tags_job_t *) j;
    const oci_config_t  *cf = j->jobs->cf;

    if (list_headers(j, r) != 0) {
        return -1;
    }

    if (t->whole || t->fd >= 0) {
        return 0;
    }

    t->fd = oci_store_tmp_create(cf->store_path, t->tmp, sizeof(t->tmp));
    if (t->fd < 0) {
        log_error("cannot create a temp file in \"%s/tmp\": %s",
                  cf->store_path, strerror(errno));
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "store not writable");
    }

    return 0;
}


static int
tags_reset(job_t *j)
{
    tags_job_t  *t = (tags_job_t *) j;

    if (t->whole) {
        return list_reset(j);
    }

    if (t->fd >= 0 && ftruncate(t->fd, 0) != 0) {
        log_error("ftruncate(\"%s\") failed: %s", t->tmp, strerror(errno));
        return -1;
    }

    t->written = 0;

    return 0;
}


static int
tags_body(job_t *j, const char *p, size_t n)
{
    tags_job_t  *t = (tags_job_t *) j;

    if (t->whole) {
        return list_body(j, p, n);
    }

    if (t->written + (long long) n > TAGS_BODY_MAX) {
        log_error("%s: body over the limit", j->label);
        return job_abort(j, 502, OCI_ERR_UPSTREAM, "tag list too large");
    }

    if (oci_write_all(t->fd, p, n, t->written) != 0) {
        log_error("pwrite(\"%s\") failed: %s", t->tmp, strerror(errno));
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
    }

    t->written += (long long) n;

    return 0;
}


/*
 * The query of the rel="next" target of the answer r:
 *   </v2/<name>/tags/list?n=2&last=b>; rel="next"   ->   n=2&last=b
 * PAGING_NEXT with the query in out; PAGING_UNUSABLE if there is a next page
 * without a query, or whose query does not fit out or is no valid IPC
 * token (see paging.h); PAGING_LAST if there is none.
 */
static paging_next_t
tags_link_next(const xfer_resp_t *r, char *out, size_t cap)
{
    const char   *target, *q;
    size_t        tlen, len;
    paging_next_t   next;

    next = paging_next_target(r->link, r->link_truncated, &target, &tlen);
    if (next != PAGING_NEXT) {
        return next;
    }

    q = memchr(target, '?', tlen);
    if (q == NULL) {
        return PAGING_UNUSABLE;
    }

    q++;
    len = tlen - (size_t) (q - target);

    /* it goes into the client's Link header and onto an IPC line */
    if (len == 0 || len >= cap || !oci_ipc_link_safe(q, len)) {
        return PAGING_UNUSABLE;
    }

    memcpy(out, q, len);
    out[len] = '\0';

    return PAGING_NEXT;
}


/*
 * One upstream page of the whole list: add its valid tags, then ask for
 * the next page or, after the last, store the list and answer.
 */
static void
tags_done_page(tags_job_t *t, const xfer_resp_t *r)
{
    job_t       *j = &t->list.job;
    json_t      *root, *tags, *v;
    size_t       i;
    const char  *s;
    char         query[sizeof(r->link)], path[JOB_PATH_MAX];
    paging_next_t  next;

    root = list_page(&t->list);
    tags = json_object_get(root, "tags");

    if (!json_is_object(root) || (!json_is_array(tags) && !json_is_null(tags)
                                  && tags != NULL))
    {
        json_decref(root);
        log_error("%s: the upstream's tag list is not valid", j->label);
        job_fail(j, 502, OCI_ERR_UPSTREAM, "invalid tag list upstream");
        return;
    }

    /* a tag that breaks the grammar could never be asked for */
    json_array_foreach(tags, i, v) {
        s = json_string_value(v);

        if (s != NULL && oci_tag_valid(s, strlen(s))
            && json_array_append(t->tags, v) != 0)
        {
            json_decref(root);
            job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
            return;
        }
    }

    json_decref(root);

    next = tags_link_next(r, query, sizeof(query));

    if (next == PAGING_NEXT) {
        snprintf(path, sizeof(path), "/v2/%s/tags/list?%s", j->name, query);
    }

    if (list_next_page(&t->list, next, path)) {
        return;
    }

    if (tags_store(t) != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    log_debug("%s: %zu tags in %u pages", j->label,
              json_array_size(t->tags), t->list.pages);

    list_answer(&t->list, t->tags);
}


static void
tags_done(job_t *j, const xfer_resp_t *r)
{
    tags_job_t  *t = (tags_job_t *) j;
    queue_t     *q;
    oci_msg_t    m;

    if (t->whole) {
        tags_done_page(t, r);
        return;
    }

    oci_msg_init(&m, OCI_MSG_BODY, 0);
    m.status = (int) r->status;
    snprintf(m.path, sizeof(m.path), "%s", t->tmp);

    switch (tags_link_next(r, m.next, sizeof(m.next))) {

    case PAGING_NEXT:
        break;

    case PAGING_LAST:
        m.next[0] = '\0';
        break;

    default:
        /* the page alone would say the list ends there */
        log_error("%s: the upstream's next page cannot be handed on",
                  j->label);
        job_fail(j, 502, OCI_ERR_UPSTREAM,
                 "cannot follow the upstream's next page");
        return;
    }

    /* one waiter; once it has the message the file is the worker's */
    if (!queue_empty(&j->waiters)) {
        q = queue_head(&j->waiters);
        if (waiter_send(queue_data(q, waiter_t, job_link), &m) == 0) {
            t->handed_over = 1;
        }
    }

    job_finish(j);
}


static void
tags_cleanup(job_t *j)
{
    tags_job_t  *t = (tags_job_t *) j;

    list_cleanup(&t->list);
    json_decref(t->tags);

    if (t->fd < 0) {
        return;
    }

    close(t->fd);

    if (!t->handed_over && unlink(t->tmp) != 0 && errno != ENOENT) {
        log_error("unlink(\"%s\") failed: %s", t->tmp, strerror(errno));
    }
}
