#!/usr/bin/env bash
# Runs every criterion bench and allocation-count test of palisade-benches, then prints the
# results table (benches/report.py): per case the median time, the ratio to the bare
# baseline measured in the same run, the overhead in ns, and peers as a ratio to Palisade.
#
#   bash benches/run.sh                 # everything, ~3 s measurement per case
#   bash benches/run.sh circuit_breaker # one bench file
#   MEASURE=10 bash benches/run.sh      # longer measurement, less noise
#   bash benches/run.sh --markdown      # the table as Markdown (for benches/README.md)
#
# The end-to-end numbers under load come from benches/load.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

MEASURE="${MEASURE:-3}"
WARMUP="${WARMUP:-1}"
MARKDOWN=""
BENCHES=()
for arg in "$@"; do
  case "$arg" in
    --markdown) MARKDOWN="--markdown" ;;
    *) BENCHES+=(--bench "$arg") ;;
  esac
done

rm -rf target/criterion
[ "${#BENCHES[@]}" -gt 0 ] || BENCHES=(--benches)
cargo bench -p palisade-benches "${BENCHES[@]}" -- \
  --warm-up-time "$WARMUP" --measurement-time "$MEASURE" --noplot

export PALISADE_ALLOC_REPORT="$PWD/target/palisade-allocs.tsv"
rm -f "$PALISADE_ALLOC_REPORT"
cargo test -p palisade-benches --release --tests -- --test-threads=1

printf '\nmachine: %s, %s cores, %s\n\n' \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
  "$(nproc)" "$(rustc --version)"
python3 benches/report.py $MARKDOWN
