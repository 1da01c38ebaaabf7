/*
 * Negative caching: the upstream 404s for manifests, remembered per
 * (registry, name, reference) for the registry's negative_ttl seconds so
 * that a storm of pulls of a missing tag asks upstream once.
 *
 * Other kinds remember their own "nothing there" answers here too, under
 * a reference that starts with '@', which no tag and no digest can: the
 * referrers of a digest that has none, "@referrers:<hex>" (referrers.c).
 *
 * A hash table of at most a cap of entries; beyond it the oldest entry
 * goes.  Expired entries go when they are looked up or reach the head of
 * the age list.  The clock is the one of endpoints.h (milliseconds).
 */

#ifndef FETCHER_NEGATIVE_H
#define FETCHER_NEGATIVE_H

#include "oci.h"
#include "oci_config.h"
#include "oci_error.h"
#include "endpoints.h"

#define NEGATIVE_CAP  10000

typedef struct negative_s  negative_t;

/* NULL on failure (logged). */
negative_t *negative_create(size_t cap, endpoints_clock_pt now);
void negative_destroy(negative_t *neg);

void negative_set_clock(negative_t *neg, endpoints_clock_pt now);

/* Remember that the upstream answered 404 with code for reg / name / ref,
 * for reg->negative_ttl seconds (0: nothing is remembered). */
void negative_add(negative_t *neg, const oci_registry_t *reg,
    const char *name, const char *ref, oci_errcode_t code);

/* 1 and *code if a 404 for reg / name / ref is remembered, else 0. */
int negative_find(negative_t *neg, const oci_registry_t *reg,
    const char *name, const char *ref, oci_errcode_t *code);

/* Entries held (expired ones not yet dropped included). */
size_t negative_count(const negative_t *neg);

#endif /* FETCHER_NEGATIVE_H */
