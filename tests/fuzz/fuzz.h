/*
 * The fuzz harnesses: one file per parser of outside bytes, each
 * defining libFuzzer's two entry points, so that the same harness runs
 * under afl++ (afl.c: persistent mode, make fuzz), under the corpus
 * replay of make test (replay.c: plain cc with ASan and UBSan) and, for
 * whoever has it, under libFuzzer itself.
 *
 * A harness feeds the input to its parser and checks what the parser
 * promises (round trips, bounds, the grammar of what it accepted):
 * FUZZ_CHECK() aborts, so a broken promise is a crash to the fuzzer and
 * a failure to the replay, like a sanitizer report.
 */

#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                        \
            abort();                                                         \
        }                                                                    \
    } while (0)


/* Once, before the first input: 0, or -1 to give up. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* One input, in a buffer of exactly size bytes (no NUL after it, so a
 * read past the end is the sanitizer's to see).  Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* FUZZ_H */
