#!/usr/bin/env bash
# Runs every libFuzzer target of a `make fuzz` build for SECONDS each, FUZZ_JOBS at a time:
# scripts/fuzz-run.sh [BUILD_DIR] [SECONDS] [TARGET...]. New corpus entries go to
# BUILD_DIR/corpus/<target> (the repo's tests/fuzz/corpus/<target> is read, never written),
# crash reproducers to BUILD_DIR/artifacts/<target>/, each run's log to BUILD_DIR/logs/<target>-<UTC time>.log.
# Exits non-zero when any target found something; the summary line per target gives its time,
# executions and corpus size. Minimize a reproducer with BUILD_DIR/bin/<target>_fuzz
# -minimize_crash=1 -runs=10000 FILE, then save it under tests/fuzz/regressions/<target>/.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$(cd "${1:-$root/build-fuzz}" && pwd)"
seconds="${2:-600}"
shift 2 2>/dev/null || shift $#
jobs="${FUZZ_JOBS:-2}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$root"/tests/fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" _fuzz.cpp)"); done
fi

# Inputs larger than a real file of the kind only slow the search down; templates and request
# bodies may use the whole 64 KB cap, where 20k-deep nesting fits.
max_len() {
  case "$1" in
    hf_tokenizer) echo 131072 ;;
    model_config) echo 8192 ;;
    safetensors) echo 16384 ;;
    *) echo 65536 ;;
  esac
}

run_one() {
  local t="$1" bin="$build_dir/bin/${1}_fuzz"
  local corpus="$build_dir/corpus/$t" artifacts="$build_dir/artifacts/$t/" log="$build_dir/logs/$t-$(date -u +%Y%m%dT%H%M%S).log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  local seeds="$t"
  case "$t" in jinja_*) seeds=jinja ;; esac  # the lexer and parser targets share the template seeds
  local dict=()
  [ -f "$root/tests/fuzz/dict/$seeds.dict" ] && dict=(-dict="$root/tests/fuzz/dict/$seeds.dict")
  [ -x "$bin" ] || { echo "fuzz-run: $bin missing (run make fuzz)"; return 1; }
  # UBSan stops at its first report; leaks count; OpenMP's thread pool is not a leak.
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
  OMP_NUM_THREADS=1 \
  # Fork mode (one child at a time) goes on after a crash, timeout or OOM, so one known bug
  # does not end the run: every finding lands in $artifacts.
  nice -n 10 "$bin" "$corpus" "$root/tests/fuzz/corpus/$seeds" "${dict[@]}" \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$artifacts" >"$log" 2>&1
  local last findings
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
  findings=$(ls "$artifacts" | wc -l)
  echo "fuzz-run: $t seconds=$seconds execs=$(echo "$last" | sed -E 's/^#([0-9]+):.*/\1/')" \
       "cov=$(echo "$last" | sed -E 's/.*cov: ([0-9]+).*/\1/') corpus=$(ls "$corpus" | wc -l)" \
       "(+$(ls "$root/tests/fuzz/corpus/$seeds" | wc -l) seeds) findings=$findings"
  [ "$findings" -eq 0 ]
}

status=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
