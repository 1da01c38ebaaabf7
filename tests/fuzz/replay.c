/*
 * The corpus replay of make test: each file named on the command line
 * (or in a directory named there) goes once through the harness, in a
 * buffer of its exact size.  Built with plain cc and ASan/UBSan, so that
 * make test needs no afl++; a sanitizer report, a failed FUZZ_CHECK() or
 * a crash ends the run with a non-zero status.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"


static int
replay_file(const char *path)
{
    FILE           *f;
    unsigned char  *buf;
    long            size;
    size_t          n;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fprintf(stderr, "%s: cannot tell its size\n", path);
        fclose(f);
        return -1;
    }

    /* malloc(0) may give NULL: one byte more, never read */
    buf = malloc((size_t) size + 1);
    if (buf == NULL) {
        fclose(f);
        return -1;
    }

    n = fread(buf, 1, (size_t) size, f);
    fclose(f);

    if (n != (size_t) size) {
        fprintf(stderr, "%s: short read\n", path);
        free(buf);
        return -1;
    }

    LLVMFuzzerTestOneInput(buf, n);
    free(buf);

    return 0;
}


/* The regular files of a directory, in name order (a failure names the
 * same file on every machine). */
static int
replay_dir(const char *dir, size_t *count)
{
    struct dirent  **names;
    struct stat      st;
    char             path[4096];
    int              i, n, rc;

    n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }

    rc = 0;

    for (i = 0; i < n; i++) {
        if (rc == 0 && names[i]->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);

            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                rc = replay_file(path);
                (*count)++;
            }
        }

        free(names[i]);
    }

    free(names);

    return rc;
}


int
main(int argc, char **argv)
{
    struct stat  st;
    size_t       count;
    int          i;

    if (LLVMFuzzerInitialize(&argc, &argv) != 0) {
        return 1;
    }

    count = 0;

    for (i = 1; i < argc; i++) {
        if (stat(argv[i], &st) != 0) {
            /* a harness without regressions yet has no folder for them */
            if (errno == ENOENT) {
                continue;
            }

            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }

        if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) != 0) {
                return 1;
            }

        } else {
            if (replay_file(argv[i]) != 0) {
                return 1;
            }

            count++;
        }
    }

    printf("%s: %zu inputs replayed\n", argv[0], count);

    return 0;
}
