/*
 * The ring of the last errors (see errors.h).
 */

#include <string.h>
#include <time.h>

#include "errors.h"

static void errors_copy(char *dst, size_t cap, const char *src);

static errors_entry_t      errors_ring[ERRORS_MAX];
static unsigned long long  errors_added;     /* the next goes to
                                                errors_added % MAX */


void
errors_add(const char *what, int status, const char *message)
{
    errors_entry_t  *e;

    e = &errors_ring[errors_added % ERRORS_MAX];

    e->time = (long long) time(NULL);
    e->status = status;
    errors_copy(e->what, sizeof(e->what), what);
    errors_copy(e->message, sizeof(e->message), message);

    errors_added++;
}


/* Printable ASCII only: an upstream's words may be any bytes, and the
 * status page's JSON wants UTF-8. */
static void
errors_copy(char *dst, size_t cap, const char *src)
{
    size_t  i;

    for (i = 0; i + 1 < cap && src[i] != '\0'; i++) {
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    }

    dst[i] = '\0';
}


size_t
errors_get(errors_entry_t *out, size_t max)
{
    size_t  n, i;

    n = errors_added < ERRORS_MAX ? (size_t) errors_added : ERRORS_MAX;

    if (n > max) {
        n = max;
    }

    for (i = 0; i < n; i++) {
        out[i] = errors_ring[(errors_added - 1 - i) % ERRORS_MAX];
    }

    return n;
}


unsigned long long
errors_total(void)
{
    return errors_added;
}


void
errors_clear(void)
{
    memset(errors_ring, 0, sizeof(errors_ring));
    errors_added = 0;
}
