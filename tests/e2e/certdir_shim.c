/*
 * An LD_PRELOAD library for the ca_file test: the files under
 * $OCIMIRROR_SHIM_FROM (libcurl's built-in CA directory) are read from
 * $OCIMIRROR_SHIM_TO instead, for this process alone.  It stands in for
 * a private bind mount, which needs root and a mount namespace: without
 * either, the test can still give libcurl a "system" CA store that
 * trusts the test's server, and show that ca_file replaces it.
 *
 * Only the calls libcurl and OpenSSL make to reach a CA file or
 * directory are wrapped (stat, access, open, fopen, opendir); everything
 * else, and every other path, goes to libc untouched.  Built by the test
 * with `cc -shared -fPIC`; see test_upstream_transport.py.
 */

#define _GNU_SOURCE

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* path, or the same name under $OCIMIRROR_SHIM_TO in buf */
static const char *
shim_path(const char *path, char *buf, size_t cap)
{
    const char  *from, *to;
    size_t       n;

    from = getenv("OCIMIRROR_SHIM_FROM");
    to = getenv("OCIMIRROR_SHIM_TO");

    if (path == NULL || from == NULL || to == NULL) {
        return path;
    }

    n = strlen(from);

    if (strncmp(path, from, n) != 0 || (path[n] != '/' && path[n] != '\0')) {
        return path;
    }

    if ((size_t) snprintf(buf, cap, "%s%s", to, path + n) >= cap) {
        return path;
    }

    return buf;
}


static void *
shim_next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}


int
stat(const char *path, struct stat *st)
{
    char  buf[PATH_MAX];
    int (*next)(const char *, struct stat *) = shim_next("stat");

    return next(shim_path(path, buf, sizeof(buf)), st);
}


int
access(const char *path, int mode)
{
    char  buf[PATH_MAX];
    int (*next)(const char *, int) = shim_next("access");

    return next(shim_path(path, buf, sizeof(buf)), mode);
}


int
open(const char *path, int flags, ...)
{
    char     buf[PATH_MAX];
    mode_t   mode;
    va_list  ap;
    int (*next)(const char *, int, ...) = shim_next("open");

    mode = 0;

    if (flags & (O_CREAT | O_TMPFILE)) {
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }

    return next(shim_path(path, buf, sizeof(buf)), flags, mode);
}


FILE *
fopen(const char *path, const char *how)
{
    char  buf[PATH_MAX];
    FILE *(*next)(const char *, const char *) = shim_next("fopen");

    return next(shim_path(path, buf, sizeof(buf)), how);
}


FILE *
fopen64(const char *path, const char *how)
{
    char  buf[PATH_MAX];
    FILE *(*next)(const char *, const char *) = shim_next("fopen64");

    return next(shim_path(path, buf, sizeof(buf)), how);
}


DIR *
opendir(const char *path)
{
    char  buf[PATH_MAX];
    DIR *(*next)(const char *) = shim_next("opendir");

    return next(shim_path(path, buf, sizeof(buf)));
}
