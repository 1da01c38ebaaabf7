/*
 * Remembered upstream 404s (see negative.h).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "negative.h"
#include "queue.h"

#define NEGATIVE_BUCKETS  4096
#define NEGATIVE_KEY_MAX  (OCI_HOST_MAX + OCI_NAME_MAX + OCI_REF_MAX + 4)

typedef struct {
    queue_t        hash_link;
    queue_t        age_link;            /* oldest first */
    long long      expires;             /* ms */
    oci_errcode_t  code;
    char           key[];
} negative_entry_t;

struct negative_s {
    queue_t             buckets[NEGATIVE_BUCKETS];
    queue_t             age;
    size_t              n;
    size_t              cap;
    endpoints_clock_pt  now;
};


negative_t *
negative_create(size_t cap, endpoints_clock_pt now)
{
    negative_t  *neg;
    size_t       i;

    neg = calloc(1, sizeof(negative_t));
    if (neg == NULL) {
        log_error("out of memory");
        return NULL;
    }

    for (i = 0; i < NEGATIVE_BUCKETS; i++) {
        queue_init(&neg->buckets[i]);
    }

    queue_init(&neg->age);
    neg->cap = cap;
    neg->now = now;

    return neg;
}


static void
negative_remove(negative_t *neg, negative_entry_t *e)
{
    queue_remove(&e->hash_link);
    queue_remove(&e->age_link);
    free(e);
    neg->n--;
}


void
negative_destroy(negative_t *neg)
{
    if (neg == NULL) {
        return;
    }

    while (!queue_empty(&neg->age)) {
        negative_remove(neg, queue_data(queue_head(&neg->age),
                                        negative_entry_t, age_link));
    }

    free(neg);
}


void
negative_set_clock(negative_t *neg, endpoints_clock_pt now)
{
    neg->now = now;
}


size_t
negative_count(const negative_t *neg)
{
    return neg->n;
}


static queue_t *
negative_bucket(negative_t *neg, const char *key)
{
    uint32_t  h;

    /* FNV-1a */
    h = 2166136261u;

    while (*key != '\0') {
        h ^= (unsigned char) *key++;
        h *= 16777619u;
    }

    return &neg->buckets[h % NEGATIVE_BUCKETS];
}


static negative_entry_t *
negative_lookup(negative_t *neg, const char *key)
{
    queue_t           *b, *q;
    negative_entry_t  *e;

    b = negative_bucket(neg, key);

    for (q = queue_head(b); q != queue_sentinel(b); q = queue_next(q)) {
        e = queue_data(q, negative_entry_t, hash_link);

        if (strcmp(e->key, key) == 0) {
            return e;
        }
    }

    return NULL;
}


static void
negative_key(char *key, size_t cap, const oci_registry_t *reg,
    const char *name, const char *ref)
{
    snprintf(key, cap, "%s %s %s", reg->name, name, ref);
}


void
negative_add(negative_t *neg, const oci_registry_t *reg, const char *name,
    const char *ref, oci_errcode_t code)
{
    negative_entry_t  *e;
    long long          now;
    char               key[NEGATIVE_KEY_MAX];
    size_t             len;

    if (reg->negative_ttl <= 0 || neg->cap == 0) {
        return;
    }

    now = neg->now();
    negative_key(key, sizeof(key), reg, name, ref);

    e = negative_lookup(neg, key);
    if (e != NULL) {
        negative_remove(neg, e);
    }

    /* the expired, then the oldest beyond the cap */
    while (!queue_empty(&neg->age)) {
        e = queue_data(queue_head(&neg->age), negative_entry_t, age_link);

        if (neg->n < neg->cap && e->expires > now) {
            break;
        }

        negative_remove(neg, e);
    }

    len = strlen(key);

    e = malloc(sizeof(negative_entry_t) + len + 1);
    if (e == NULL) {
        log_error("out of memory for a negative cache entry");
        return;
    }

    memcpy(e->key, key, len + 1);
    e->expires = now + (long long) reg->negative_ttl * 1000;
    e->code = code;

    queue_insert_tail(negative_bucket(neg, key), &e->hash_link);
    queue_insert_tail(&neg->age, &e->age_link);
    neg->n++;
}


int
negative_find(negative_t *neg, const oci_registry_t *reg, const char *name,
    const char *ref, oci_errcode_t *code)
{
    negative_entry_t  *e;
    char               key[NEGATIVE_KEY_MAX];

    negative_key(key, sizeof(key), reg, name, ref);

    e = negative_lookup(neg, key);
    if (e == NULL) {
        return 0;
    }

    if (e->expires <= neg->now()) {
        negative_remove(neg, e);
        return 0;
    }

    *code = e->code;

    return 1;
}
