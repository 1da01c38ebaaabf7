/*
 * afl++'s persistent mode around a harness (make fuzz): one process runs
 * many inputs, each copied from afl's shared buffer into one of its
 * exact size, so that ASan sees a read past the end.  The __AFL_ macros
 * come from afl-clang-fast.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"


__AFL_FUZZ_INIT();


int
main(int argc, char **argv)
{
    unsigned char  *shared, *buf;
    size_t          len;

    if (LLVMFuzzerInitialize(&argc, &argv) != 0) {
        return 1;
    }

    __AFL_INIT();

    shared = __AFL_FUZZ_TESTCASE_BUF;

    while (__AFL_LOOP(10000)) {
        len = (size_t) __AFL_FUZZ_TESTCASE_LEN;

        buf = malloc(len + 1);
        if (buf == NULL) {
            return 1;
        }

        memcpy(buf, shared, len);
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
    }

    return 0;
}
