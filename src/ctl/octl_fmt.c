/*
 * ocimirrorctl's numbers for people (see octl_fmt.h).
 */

#include <stdio.h>

#include "octl_fmt.h"


const char *
octl_bytes(long long n, int exact, char *buf, size_t cap)
{
    static const char *const  units[] = { "KiB", "MiB", "GiB", "TiB",
                                          "PiB", "EiB" };
    double                    v;
    size_t                    u;

    if (exact || (n < 1024 && n > -1024)) {
        snprintf(buf, cap, exact ? "%lld" : "%lld B", n);
        return buf;
    }

    v = (double) n / 1024;

    /* 1023.96 KiB would print as "1024.0 KiB": take the next unit then */
    for (u = 0; (v >= 1023.95 || v <= -1023.95)
                && u < sizeof(units) / sizeof(units[0]) - 1; u++)
    {
        v /= 1024;
    }

    snprintf(buf, cap, "%.1f %s", v, units[u]);

    return buf;
}


int
octl_percent(long long part, long long whole)
{
    if (whole <= 0 || part <= 0) {
        return 0;
    }

    if (part >= whole) {
        return 100;
    }

    /* 99.9% is not done: round down, so 100 means all of it */
    return (int) ((double) part * 100 / (double) whole);
}
