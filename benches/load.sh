#!/usr/bin/env bash
# End-to-end HTTP under load on loopback (issue: head-to-head benchmarks), with wrk:
#
#   1. server: bare axum "hello" vs the same with the full server stack
#      (Health -> ServerTrace + metrics, spans batch-exported), every trace sampled, and
#      1 % of them sampled (LOAD_SAMPLE_RATIO=0.01: a production-like ratio), and every
#      trace sampled with the SERVER span made by the tracer directly (LOAD_SERVER_SPANS=otel:
#      `ServerTraceLayer::otel_tracer`);
#   2. front -> upstream: a front service making one HTTP call per request to an upstream
#      service (the order -> inventory shape), bare vs the full client stack
#      (Retry -> CircuitBreaker -> ClientTrace -> Timeout) plus the full server stack on both.
#   3. the example services: POST /orders to order-service, which stores the order in SQLite
#      and reserves its stock in inventory-service over gRPC, with every Palisade layer
#      (the default, spans sent over OTLP to a rotel receiver that drops them) against the
#      same binaries with ORDER_MIDDLEWARE=off and INVENTORY_MIDDLEWARE=off.
#
# Prints requests/s, p50 and p99 for each, and the ratios to bare. Targets: full server
# stack >= 0.90x bare throughput, p99 <= 1.2x bare. It exits non-zero only if a run fails,
# never on the numbers (timings are not gated; see benches/README.md).
#
#   bash benches/load.sh                  # 15 s per run, 64 connections
#   DURATION=30 CONNECTIONS=128 bash benches/load.sh
#   ROUNDS=3 bash benches/load.sh         # alternate bare/full 3 times, keep the median
#
# wrk is installed by scripts/install-test-tools.sh (Debian package). On a 2-core machine
# wrk and the server share the cores, so compare ratios, not absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-15}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
ROUNDS="${ROUNDS:-1}"

if ! command -v wrk >/dev/null 2>&1; then
  bash scripts/install-test-tools.sh >/dev/null
fi
command -v wrk >/dev/null 2>&1 || { echo "load.sh: wrk not found" >&2; exit 1; }

# rotel (the OTLP receiver of the example services' spans) comes with the test tools.
[ -f .tools/env ] || bash scripts/install-test-tools.sh >/dev/null
# shellcheck disable=SC1091
source .tools/env

cargo build --release -p palisade-benches --bin load_target
cargo build --release -p order-service -p inventory-service
bin=target/release/load_target
out=$(mktemp -d)
# `start` runs in a command substitution (a subshell), so the pids go to a file.
stop_all() {
  if [ -s "$out/pids" ]; then
    while read -r p; do kill "$p" 2>/dev/null || true; done <"$out/pids"
    while read -r p; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done <"$out/pids"
  fi
  : >"$out/pids"
}
cleanup() {
  stop_all
  rm -rf "$out"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME ARGS...: starts the load target, waits until it listens, prints its address.
start() {
  local name=$1; shift
  local port; port=$(free_port)
  "$bin" "$1" "127.0.0.1:$port" "${@:2}" >"$out/$name.log" 2>&1 &
  echo $! >>"$out/pids"
  for _ in $(seq 1 100); do
    grep -q '^listening on' "$out/$name.log" 2>/dev/null && { echo "127.0.0.1:$port"; return; }
    sleep 0.1
  done
  echo "load.sh: $name did not start:" >&2; cat "$out/$name.log" >&2; exit 1
}

# wait_port NAME PORT: waits until something listens on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return
    sleep 0.1
  done
  echo "load.sh: $1 did not start:" >&2; cat "$out/$1.log" >&2; exit 1
}

# start_examples MIDDLEWARE (on/off): starts inventory-service and order-service on fresh
# databases, the stock of KB-0001 raised so no order runs out; prints the order address.
start_examples() {
  local mw=$1 dir="$out/examples-$1"
  rm -rf "$dir"; mkdir -p "$dir"
  local grpc admin http otlp
  grpc=$(free_port); admin=$(free_port); http=$(free_port); otlp=$(free_port)
  "$PALISADE_ROTEL_AGENT" start --exporter blackhole \
    --otlp-grpc-endpoint "127.0.0.1:$otlp" --otlp-http-endpoint "127.0.0.1:$(free_port)" \
    >"$out/rotel.log" 2>&1 &
  echo $! >>"$out/pids"
  wait_port rotel "$otlp"
  local common=(RUST_LOG=warn OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp"
    INVENTORY_GRPC_ADDR="127.0.0.1:$grpc" INVENTORY_ADMIN_ADDR="127.0.0.1:$admin"
    INVENTORY_DB_PATH="$dir/inventory.db" INVENTORY_DRAIN_DELAY_MS=0 INVENTORY_MIDDLEWARE="$mw")
  # A first start creates and seeds the database; then the stock is raised.
  env "${common[@]}" target/release/inventory-service >"$out/inventory.log" 2>&1 &
  local seed=$!
  wait_port inventory "$grpc"
  kill "$seed"; wait "$seed" 2>/dev/null || true
  python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE stock SET on_hand = 1000000000 WHERE sku = ?", ("KB-0001",)); c.commit()' "$dir/inventory.db"
  env "${common[@]}" target/release/inventory-service >"$out/inventory.log" 2>&1 &
  echo $! >>"$out/pids"
  wait_port inventory "$grpc"
  env "${common[@]}" ORDER_HTTP_ADDR="127.0.0.1:$http" ORDER_DB_PATH="$dir/orders.db" \
    INVENTORY_URL="http://127.0.0.1:$grpc" ORDER_DRAIN_DELAY_MS=0 ORDER_MIDDLEWARE="$mw" \
    target/release/order-service >"$out/orders.log" 2>&1 &
  echo $! >>"$out/pids"
  wait_port orders "$http"
  echo "127.0.0.1:$http"
}

cat >"$out/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"items":[{"sku":"KB-0001","quantity":1}]}'
wrk.headers["Content-Type"] = "application/json"
LUA

# run LABEL URL [WRK_ARGS...]: one wrk run; appends "label rps p50_ms p99_ms" to $out/results.
run() {
  local label=$1 url=$2; shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null  # warm-up
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" >"$out/wrk.txt"
  python3 - "$label" "$out/wrk.txt" >>"$out/results" <<'PY'
import re, sys
label, path = sys.argv[1], sys.argv[2]
text = open(path).read()
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)", text, re.M)}
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
socket = re.search(r"Socket errors: (.*)", text)
if errors or socket:
    print(f"# {label}: {errors.group(0) if errors else ''} {socket.group(0) if socket else ''}", file=sys.stderr)
print(f"{label} {rps:.0f} {lat['50']:.3f} {lat['99']:.3f}")
PY
}

: >"$out/results"
for round in $(seq 1 "$ROUNDS"); do
  echo "--- round $round/$ROUNDS: server, bare vs full stack" >&2
  a=$(start server-bare server-bare); run server_bare "http://$a/hello"; stop_all
  a=$(start server-full server-full); run server_full "http://$a/hello"; stop_all
  a=$(LOAD_SAMPLE_RATIO=0.01 start server-full server-full); run server_full_1pct "http://$a/hello"; stop_all
  a=$(LOAD_SERVER_SPANS=otel start server-full server-full); run server_full_otel "http://$a/hello"; stop_all

  echo "--- round $round/$ROUNDS: front -> upstream, bare vs full stacks" >&2
  up=$(start upstream-bare server-bare); a=$(start front-bare front-bare "$up")
  run front_bare "http://$a/hello"; stop_all
  up=$(start upstream-full server-full); a=$(start front-full front-full "$up")
  run front_full "http://$a/hello"; stop_all

  echo "--- round $round/$ROUNDS: order-service -> inventory-service, no middleware vs every layer" >&2
  a=$(start_examples off); run orders_bare "http://$a/orders" -s "$out/post.lua"; stop_all
  a=$(start_examples on); run orders_full "http://$a/orders" -s "$out/post.lua"; stop_all
done

printf '\nmachine: %s, %s cores; wrk -t%s -c%s -d%ss, %s round(s), median shown\n\n' \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" "$(nproc)" \
  "$THREADS" "$CONNECTIONS" "$DURATION" "$ROUNDS"
python3 - "$out/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, rps, p50, p99 = line.split()
    rows.setdefault(label, []).append((float(rps), float(p50), float(p99)))
med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in rows.items()}
print(f"| {'case':<36} | {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'req/s vs bare':>13} | {'p99 vs bare':>11} |")
print(f"|{'-'*38}|{'-'*11}|{'-'*9}|{'-'*9}|{'-'*15}|{'-'*13}|")
names = {
    "server_bare": "axum hello, bare",
    "server_full": "axum hello, full server stack",
    "server_full_1pct": "axum hello, full stack, 1 % sampled",
    "server_full_otel": "axum hello, full stack, otel_tracer",
    "front_bare": "front -> upstream, bare",
    "front_full": "front -> upstream, full stacks",
    "orders_bare": "POST /orders, no middleware",
    "orders_full": "POST /orders, every layer",
}
for bare, *fulls in (("server_bare", "server_full", "server_full_1pct", "server_full_otel"), ("front_bare", "front_full"), ("orders_bare", "orders_full")):
    b = med[bare]
    for k in (bare, *fulls):
        r = med[k]
        print(f"| {names[k]:<36} | {r[0]:>9.0f} | {r[1]:>7.3f} | {r[2]:>7.3f} | {r[0]/b[0]:>12.2f}x | {r[2]/b[2]:>10.2f}x |")
print()
for k, what in (("server_full", "every trace sampled"), ("server_full_1pct", "1 % sampled"),
                ("server_full_otel", "every trace sampled, otel_tracer")):
    s = med[k][0] / med["server_bare"][0]
    p = med[k][2] / med["server_bare"][2]
    print(f"full server stack, {what}: {s:.2f}x bare throughput (target >= 0.90: {'met' if s >= 0.9 else 'NOT met'}), "
          f"p99 {p:.2f}x bare (target <= 1.2: {'met' if p <= 1.2 else 'NOT met'})")
PY
