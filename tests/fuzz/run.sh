#!/usr/bin/env bash
# make fuzz: afl-fuzz on each harness in turn, FUZZ_SECONDS each (one at a
# time: afl-fuzz takes a core), then one line per harness with what afl
# measured.  Usage: run.sh <build folder> <harness>...
#
# Each harness starts from its seeds (tests/fuzz/corpus/<h>/) with its
# dictionary if it has one (tests/fuzz/<h>.dict); afl's findings stay in
# <build>/fuzz/out/<h>/default/{crashes,hangs}.  A finding is fixed in the
# product and its input copied to tests/fuzz/regressions/<h>/, which make
# test replays.  Exit status 1 if any harness found a crash or a hang.
set -euo pipefail

build=$1
shift
seconds=${FUZZ_SECONDS:-60}
here=$(cd "$(dirname "$0")" && pwd)

# afl's own checks of the machine: a shared builder may not let us bind
# to a core or change the CPU governor, and the findings are read from
# afl's folders, not from core files.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_SKIP_CRASHES=1
# the harnesses are built with ASan: afl must not cap their memory, and a
# report must abort so that afl sees a crash
export ASAN_OPTIONS=abort_on_error=1:symbolize=0:detect_leaks=0
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:symbolize=0

stat_of() {
    sed -n "s/^$2 *: *//p" "$1" | head -n 1
}

found=0
summary=()

for h in "$@"; do
    out=$build/fuzz/out/$h
    rm -rf "$out"
    mkdir -p "$out"

    dict=()
    [ -f "$here/$h.dict" ] && dict=(-x "$here/$h.dict")

    echo "== fuzz $h: ${seconds}s"
    # -V: stop after that many seconds; -m none: ASan reserves a lot of
    # virtual memory; -t: an input that takes 200 ms is a hang (a parser
    # of a few KiB has no business taking longer)
    afl-fuzz -V "$seconds" -m none -t 200 "${dict[@]}" \
        -i "$here/corpus/$h" -o "$out" -- "$build/fuzz/afl-$h" \
        > "$out/afl.log" 2>&1 || {
        echo "afl-fuzz $h failed; the end of $out/afl.log:"
        tail -n 20 "$out/afl.log"
        exit 2
    }

    st=$out/default/fuzzer_stats
    crashes=$(stat_of "$st" saved_crashes)
    hangs=$(stat_of "$st" saved_hangs)
    line=$(printf '%-10s %6ss %12s execs %9s/s %6s paths %3s crashes %3s hangs' \
        "$h" "$(stat_of "$st" run_time)" "$(stat_of "$st" execs_done)" \
        "$(stat_of "$st" execs_per_sec)" "$(stat_of "$st" corpus_count)" \
        "$crashes" "$hangs")
    echo "$line"
    summary+=("$line")

    if [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
        echo "   findings in $out/default/crashes and $out/default/hangs"
        found=1
    fi
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit $found
