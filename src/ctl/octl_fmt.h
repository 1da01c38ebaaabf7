/*
 * ocimirrorctl's numbers for people: sizes in binary units, or exact
 * when the operator asked for bytes (a script's input).
 */

#ifndef OCTL_FMT_H
#define OCTL_FMT_H

#include <stddef.h>

#define OCTL_BYTES_LEN  32              /* a buffer for octl_bytes() */

/* n bytes as "512 B", "1.5 KiB", "12.3 MiB", ...; with exact, as the
 * plain decimal number ("1536").  Returns buf. */
const char *octl_bytes(long long n, int exact, char *buf, size_t cap);

/* The percentage of part in whole (0 when whole is not positive),
 * capped at 100: what a progress bar shows. */
int octl_percent(long long part, long long whole);

#endif /* OCTL_FMT_H */
