#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each (CI: 30 s; pass another
# number of seconds as the first argument for a longer run, e.g. `bash scripts/fuzz.sh 600`).
# Installs cargo-fuzz if it is missing. Uses `-s none` (no sanitizer) so it runs on stable.
# A crash stops the run with a non-zero exit and leaves the input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

mapfile -t targets < <(cargo fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
  echo "no fuzz targets found in fuzz/" >&2
  exit 1
fi
for t in "${targets[@]}"; do
  printf '\n--> fuzz %s for %ss\n' "$t" "$SECONDS_PER_TARGET"
  log="fuzz/target/fuzz-$t.log"
  mkdir -p fuzz/target
  status=0
  cargo fuzz run -s none "$t" -- -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  # libFuzzer's progress lines stay in the log; print the summary (and any crash report).
  grep -E '^(Done|stat::number_of_executed_units)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t failed (exit $status); input in fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
