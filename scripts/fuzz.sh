#!/usr/bin/env bash
# Runs every libFuzzer target in fuzz/ (built with clang, ASan+UBSan) for a fixed number of
# executions each (at most MAX_SECONDS, default 45, per target: the slow ones, which drive a real
# server or fsync, stop there and report how far they got), starting from its seed corpus in fuzz/corpus/NAME/ (what it finds new is kept
# in build-fuzz/corpus/NAME/). A crash, leak, sanitizer report or timeout fails the run; the input
# that caused it is left in build-fuzz/crashes/ — fix the bug and add the input to the seed corpus
# (fuzz/corpus/NAME/), where ctest replays it (fuzz_corpus.NAME) as a regression test.
# Writes build-fuzz/fuzz-results.tsv: target, executions, seconds, corpus files.
#
#   scripts/fuzz.sh [RUNS]        (default 100000; `make fuzz FUZZ_RUNS=...`)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-100000}"
MAX_SECONDS="${MAX_SECONDS:-45}"
BUILD=build-fuzz
JOBS="${JOBS:-$(nproc)}"
bash scripts/install-deps.sh --fuzz
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSPATE_FUZZ=ON -DSPATE_SANITIZE=address -DSPATE_BUILD_TESTS=OFF -DSPATE_BUILD_BENCH=OFF
fi
targets=()
for f in fuzz/fuzz_*.cc; do
  n=$(basename "$f" .cc)
  targets+=("${n#fuzz_}")
done
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]/#/fuzz_}"
mkdir -p "$BUILD/crashes"
results="$BUILD/fuzz-results.tsv"
printf 'target\texecutions\tseconds\tcorpus_files\n' > "$results"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$BUILD/corpus/$t"
  log="$BUILD/fuzz-$t.log"
  start=$(date +%s%N)
  if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "./$BUILD/fuzz/fuzz_$t" -runs="$RUNS" -max_total_time="$MAX_SECONDS" -max_len=65536 \
      -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$BUILD/crashes/$t-" \
      "$BUILD/corpus/$t" "fuzz/corpus/$t" > "$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=1
  fi
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  files=$(find "$BUILD/corpus/$t" "fuzz/corpus/$t" -type f | wc -l)
  printf '%s\t%s\t%d.%01d\t%s\n' "$t" "${execs:-0}" $((ms / 1000)) $((ms % 1000 / 100)) "$files" >> "$results"
  echo "fuzz_$t: $status, ${execs:-0} executions in $((ms / 1000)) s ($files corpus files)"
  if [[ $status != ok ]]; then
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20 || true
  fi
done
cat "$results"
exit $failed
