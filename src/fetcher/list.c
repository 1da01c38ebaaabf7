/*
 * Lists kept in the store (see list.h).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci_store.h"
#include "list.h"
#include "listcache.h"
#include "log.h"
#include "stats.h"


void
list_init(list_job_t *l, const list_kind_t *kind, long ttl,
    const char *path)
{
    l->kind = kind;
    l->ttl = ttl;
    snprintf(l->path, sizeof(l->path), "%s", path);
}


/* The memory a parsed list of count members takes, about: jansson's
 * values and their strings come to a few times the text they were read
 * from, and a fixed cost per value */
static size_t
list_bytes(size_t text_len, size_t count)
{
    return 2 * text_len + 128 * count;
}


/* Read and parse the stored list at path (st: a stat of it) and keep the
 * parse if the file did not change meanwhile.  The member array (a new
 * reference) or NULL. */
static json_t *
list_load(jobs_t *jobs, const list_kind_t *kind, const char *path,
    const struct stat *st)
{
    char         *text;
    size_t        len;
    long long     mtime;
    json_t       *root, *list;
    struct stat   after;

    if (oci_store_cache_read(path, kind->body_max, &text, &len, &mtime)
        != OCI_OK)
    {
        return NULL;
    }

    root = json_loadb(text, len, 0, NULL);
    free(text);

    list = json_object_get(root, kind->member);

    if (!json_is_array(list)) {
        json_decref(root);
        return NULL;
    }

    json_incref(list);
    json_decref(root);

    if (kind->loaded != NULL && kind->loaded(list) != 0) {
        json_decref(list);
        return NULL;
    }

    /* the identity before and after the read: the parse is of that file
     * (a list is replaced by rename(), never rewritten in place) */
    if (stat(path, &after) == 0 && after.st_ino == st->st_ino
        && after.st_dev == st->st_dev && after.st_size == st->st_size
        && after.st_mtim.tv_sec == st->st_mtim.tv_sec
        && after.st_mtim.tv_nsec == st->st_mtim.tv_nsec)
    {
        listcache_put(jobs->lists, path, st, list,
                      list_bytes(len, json_array_size(list)));
    }

    return list;
}


json_t *
list_stored(jobs_t *jobs, const list_kind_t *kind, const char *path,
    long max_age, long expire)
{
    long long         age;
    json_t           *list;
    struct stat       st;
    struct timespec   now;

    if (path[0] == '\0') {
        return NULL;
    }

    /* one stat() a request: what the parse in memory is checked with */
    if (stat(path, &st) != 0) {
        listcache_drop(jobs->lists, path);
        return NULL;
    }

    if ((unsigned long long) st.st_size > kind->body_max) {
        return NULL;
    }

    /* the clock that stamps files, not time(NULL)'s coarser one: a file
     * written just now must not look younger than now */
    clock_gettime(CLOCK_REALTIME, &now);
    age = (long long) now.tv_sec - (long long) st.st_mtime;

    if (age >= expire) {
        /* nothing answers from it any more: it would only take room */
        if (unlink(path) != 0 && errno != ENOENT) {
            log_error("unlink(\"%s\") failed: %s", path, strerror(errno));
        }

        listcache_drop(jobs->lists, path);
        cache_removed(jobs->cache, path);

        return NULL;
    }

    if (age < 0 || age >= max_age) {
        return NULL;
    }

    list = listcache_get(jobs->lists, path, &st);

    if (list == NULL) {
        list = list_load(jobs, kind, path, &st);

        if (list == NULL) {
            return NULL;
        }
    }

    cache_used(jobs->cache, path);

    return list;
}


void
list_keep(list_job_t *l, const char *text, json_t *list)
{
    jobs_t              *jobs = l->job.jobs;
    const oci_config_t  *cf = jobs->cf;
    struct stat          st;
    size_t               len;

    if (l->path[0] == '\0') {
        return;
    }

    len = strlen(text);

    if (oci_store_cache_write(cf->store_path, l->path, text, len,
                              cf->store_fsync)
        != OCI_OK)
    {
        log_error("cannot write \"%s\": %s", l->path, strerror(errno));
        listcache_drop(jobs->lists, l->path);
        return;
    }

    /* the parse of the new file is at hand: the next request is a hit */
    if (stat(l->path, &st) == 0) {
        listcache_put(jobs->lists, l->path, &st, list,
                      list_bytes(len, json_array_size(list)));

    } else {
        listcache_drop(jobs->lists, l->path);
    }

    cache_added(jobs->cache, l->path);
}


json_t *
list_page(list_job_t *l)
{
    return json_loadb(l->page != NULL ? l->page : "", l->page_len, 0, NULL);
}


int
list_next_page(list_job_t *l, paging_next_t next, const char *path)
{
    job_t  *j = &l->job;

    l->pages++;

    if (next == PAGING_LAST) {
        return 0;
    }

    /* taking this page for the whole list would be a wrong answer */
    if (next == PAGING_UNUSABLE) {
        log_error("%s: the upstream's next page cannot be followed",
                  j->label);
        job_fail(j, 502, OCI_ERR_UPSTREAM,
                 "cannot follow the upstream's next page");
        return 1;
    }

    if (l->pages == l->kind->pages_max) {
        log_error("%s: more than %u pages upstream", j->label,
                  l->kind->pages_max);
        job_fail(j, 502, OCI_ERR_UPSTREAM, l->kind->too_large);
        return 1;
    }

    snprintf(j->path, sizeof(j->path), "%s", path);
    l->page_len = 0;
    job_issue(j);

    return 1;
}


void
list_answer(list_job_t *l, json_t *list)
{
    job_t    *j = &l->job;
    queue_t  *q;

    /* a failed send only marks the connection dead: no waiter goes
     * while this runs */
    for (q = queue_head(&j->waiters); q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        l->kind->answer(l, queue_data(q, waiter_t, job_link), list);
    }

    job_finish(j);
}


void
list_cleanup(list_job_t *l)
{
    free(l->page);
}


int
list_headers(job_t *j, const xfer_resp_t *r)
{
    list_job_t  *l = (list_job_t *) j;

    if (r->content_length > (long long) l->kind->body_max - l->total) {
        log_error("%s: %lld bytes is over the limit", j->label,
                  r->content_length);
        return job_abort(j, 502, OCI_ERR_UPSTREAM, l->kind->too_large);
    }

    return 0;
}


int
list_body(job_t *j, const char *p, size_t n)
{
    list_job_t  *l = (list_job_t *) j;
    size_t       cap;
    char        *page;

    if (l->total + (long long) n > (long long) l->kind->body_max) {
        log_error("%s: body over the limit", j->label);
        return job_abort(j, 502, OCI_ERR_UPSTREAM, l->kind->too_large);
    }

    if (l->page_len + n > l->page_cap) {
        cap = l->page_cap ? l->page_cap : 16384;

        while (cap < l->page_len + n) {
            cap *= 2;
        }

        page = realloc(l->page, cap);
        if (page == NULL) {
            log_error("%s: out of memory", j->label);
            return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        }

        l->page = page;
        l->page_cap = cap;
    }

    memcpy(l->page + l->page_len, p, n);
    l->page_len += n;
    l->total += (long long) n;

    return 0;
}


int
list_reset(job_t *j)
{
    list_job_t  *l = (list_job_t *) j;

    /* the pages before this one stay */
    l->total -= (long long) l->page_len;
    l->page_len = 0;

    return 0;
}


int
list_can_retry(job_t *j)
{
    list_job_t  *l = (list_job_t *) j;

    /* the next page's query is the first endpoint's cursor */
    return l->pages == 0;
}


/*
 * The upstream cannot answer now: the stored list, if it is no older
 * than ttl + stale_if_error, answers instead.  1 if it did (and the job
 * is finished).
 */
int
list_throttled(job_t *j)
{
    list_job_t  *l = (list_job_t *) j;
    json_t      *list;
    queue_t     *q;
    long         expire;

    if (l->path[0] == '\0' || queue_empty(&j->waiters)) {
        return 0;
    }

    expire = l->ttl + j->registry->stale_if_error;

    list = list_stored(l->job.jobs, l->kind, l->path, expire, expire);
    if (list == NULL) {
        return 0;
    }

    log_warn("%s: upstream unavailable, the stored %s answers", j->label,
             l->kind->what);

    /* one stale answer per waiter */
    for (q = queue_head(&j->waiters); q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        stats_registry(j->registry)->stale_served++;
    }

    list_answer(l, list);
    json_decref(list);

    return 1;
}


void
list_unavailable(job_t *j)
{
    if (list_throttled(j)) {
        return;
    }

    log_error("%s: upstream unavailable", j->label);
    job_fail(j, 503, OCI_ERR_UNAVAILABLE, job_unavailable_message(j));
}

