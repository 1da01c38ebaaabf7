/*
 * The config file (src/oci_config.c), read by nginx and the fetcher
 * alike: written by an operator, but a mistake in it must end in an
 * error naming file and line, never in a crash of nginx -t.
 *
 * Input: the file's bytes, written to a temp file (libconfig reads a
 * file) and loaded.
 * Checks: a refusal says "<file>:<line>: <why>"; a config that loads
 * has its default registry (if any) among its registries, each found by
 * its name, and watermarks in order.
 */

#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "oci_config.h"


static char  fuzz_path[4096];


static void
fuzz_config_cleanup(void)
{
    unlink(fuzz_path);
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char  *dir;
    int          fd;

    dir = getenv("TMPDIR");
    snprintf(fuzz_path, sizeof(fuzz_path), "%s/ocimirror-fuzz-XXXXXX.cfg",
             dir != NULL && dir[0] != '\0' ? dir : "/tmp");

    fd = mkstemps(fuzz_path, 4);
    if (fd == -1) {
        perror("mkstemps");
        return -1;
    }

    close(fd);
    atexit(fuzz_config_cleanup);

    return 0;
}


/* err is "<file>:<digits>: <why>" (the file may be an @include's) */
static void
fuzz_check_err(const char *err)
{
    const char  *p;

    p = strstr(err, ": ");
    FUZZ_CHECK(p != NULL && p[2] != '\0');

    while (p > err && isdigit((unsigned char) p[-1])) {
        p--;
    }

    FUZZ_CHECK(p > err + 1 && p[-1] == ':' && isdigit((unsigned char) *p));
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE          *f;
    oci_config_t  *cf;
    char           err[1024];
    size_t         i;
    int            rc;

    f = fopen(fuzz_path, "wb");
    if (f == NULL) {
        abort();
    }

    if (fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        abort();
    }

    cf = NULL;
    rc = oci_config_load(fuzz_path, &cf, err, sizeof(err));

    if (rc != OCI_OK) {
        FUZZ_CHECK(cf == NULL);
        FUZZ_CHECK(rc == OCI_EINVAL || rc == OCI_EIO || rc == OCI_ENOMEM);
        fuzz_check_err(err);
        return 0;
    }

    FUZZ_CHECK(cf != NULL);
    FUZZ_CHECK(cf->default_registry == NULL
               || (cf->default_registry >= cf->registries
                   && cf->default_registry
                      < cf->registries + cf->n_registries));

    for (i = 0; i < cf->n_registries; i++) {
        FUZZ_CHECK(oci_config_registry(cf, cf->registries[i].name,
                                       strlen(cf->registries[i].name))
                   == &cf->registries[i]);
    }

    FUZZ_CHECK(cf->store_low_watermark <= cf->store_high_watermark);
    (void) oci_config_max_size(cf, 1LL << 40);

    oci_config_destroy(cf);

    return 0;
}
