/*
 * Helpers shared by the unit tests (header-only: each test binary is one
 * translation unit).
 */

#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci.h"


/* remove a temp tree a test made; errors are ignored (best effort) */
static void
test_rm_rf(const char *path)
{
    char            sub[OCI_PATH_MAX];
    struct stat     st;
    DIR            *dir;
    struct dirent  *de;

    if (lstat(path, &st) == -1) {
        return;
    }

    if (S_ISDIR(st.st_mode)) {
        dir = opendir(path);

        if (dir != NULL) {
            while ((de = readdir(dir)) != NULL) {
                if (strcmp(de->d_name, ".") == 0
                    || strcmp(de->d_name, "..") == 0)
                {
                    continue;
                }

                snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                test_rm_rf(sub);
            }

            closedir(dir);
        }

        rmdir(path);
        return;
    }

    unlink(path);
}


#endif /* TEST_UTIL_H */
