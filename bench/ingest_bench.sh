#!/usr/bin/env bash
# End-to-end HTTP ingestion benchmark, next to nginx in the same run:
#  1. NDJSON batches of 1,000 ~100-byte events per request (ack: durable, fsync interval).
#  2. One event per request, keep-alive, many connections — and nginx `return 204` with the
#     same wrk settings: the ratio of request rates is the figure that counts.
#  3. Ack latency percentiles at ~50% of the peak batch rate (wrk2 is not packaged; wrk's
#     latency distribution at a reduced connection count is reported instead).
# Usage: bash bench/ingest_bench.sh   (needs wrk and nginx: apt-get install wrk nginx-light)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
DURATION=${DURATION:-10s}
SPATE=$BUILD_DIR/spate
TMP=$(mktemp -d)
trap 'kill $SPATE_PID $NGINX_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }

PORT=18480
NGINX_PORT=18481
cat > "$TMP/pipeline.yaml" <<YAML
name: bench
data_dir: $TMP/data
server: {port: $PORT}
log: {fsync: {interval_ms: 50}}
topics: [{name: events, partitions: 4}]
ingestion: {key_field: user, max_queue_size: 1000000, max_workers: 2}
logging: {level: warn}
YAML
"$SPATE" run "$TMP/pipeline.yaml" & SPATE_PID=$!
for i in $(seq 50); do curl -sf localhost:$PORT/ready >/dev/null && break; sleep 0.1; done

python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
lines = "".join(json.dumps({"user": f"u{i % 97}", "action": "click", "n": i, "page": "/products/42"}) + "\n"
                for i in range(1000))
open(f"{tmp}/batch.ndjson", "w").write(lines)
print(f"batch: 1000 events, {len(lines)} bytes ({len(lines)/1000:.0f} bytes/event)", file=sys.stderr)
PY
cat > "$TMP/batch.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
local f = io.open("$TMP/batch.ndjson", "r"); wrk.body = f:read("*a"); f:close()
LUA
cat > "$TMP/one.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":"u1","action":"click","n":1,"page":"/products/42"}'
LUA

echo "== 1. NDJSON batches of 1000 events, 8 connections, 2 threads, $DURATION"
wrk -t2 -c8 -d"$DURATION" --latency -s "$TMP/batch.lua" "http://127.0.0.1:$PORT/ingest/events" | tee "$TMP/batch.out"
echo "== 3. the same at 2 connections (lower load) for ack latency"
wrk -t1 -c2 -d"$DURATION" --latency -s "$TMP/batch.lua" "http://127.0.0.1:$PORT/ingest/events" | tee "$TMP/batch_low.out"
echo "== 2a. one event per request, 64 connections"
wrk -t2 -c64 -d"$DURATION" --latency -s "$TMP/one.lua" "http://127.0.0.1:$PORT/ingest/events" | tee "$TMP/one.out"
kill -TERM $SPATE_PID; wait $SPATE_PID || true

mkdir -p "$TMP/nginx"
cat > "$TMP/nginx.conf" <<NGX
worker_processes 2;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx;
  server { listen 127.0.0.1:$NGINX_PORT; location / { return 204; } }
}
NGX
nginx -c "$TMP/nginx.conf" -g 'daemon off;' & NGINX_PID=$!
sleep 0.5
echo "== 2b. peer: nginx return 204, same wrk settings"
wrk -t2 -c64 -d"$DURATION" --latency -s "$TMP/one.lua" "http://127.0.0.1:$NGINX_PORT/ingest/events" | tee "$TMP/nginx.out"
kill $NGINX_PID; wait $NGINX_PID 2>/dev/null || true

python3 - "$TMP" "$BUILD_DIR/ingest-bench.json" <<'PY'
import json, re, sys
tmp, out = sys.argv[1], sys.argv[2]
def parse(name):
    t = open(f"{tmp}/{name}.out").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    lat = {m.group(1): m.group(2) for m in re.finditer(r"\s+(50|75|90|99)%\s+(\S+)", t)}
    return {"requests_per_second": rps, "latency": lat}
r = {k: parse(k) for k in ("batch", "batch_low", "one", "nginx")}
r["batch"]["events_per_second"] = r["batch"]["requests_per_second"] * 1000
r["batch_low"]["events_per_second"] = r["batch_low"]["requests_per_second"] * 1000
r["one_vs_nginx"] = r["one"]["requests_per_second"] / r["nginx"]["requests_per_second"]
json.dump(r, open(out, "w"), indent=2)
print(f"batches: {r['batch']['events_per_second']:,.0f} events/s (p50 {r['batch']['latency'].get('50')}, p99 {r['batch']['latency'].get('99')})")
print(f"batches, 2 connections: {r['batch_low']['events_per_second']:,.0f} events/s (p50 {r['batch_low']['latency'].get('50')}, p99 {r['batch_low']['latency'].get('99')})")
print(f"one event/request: {r['one']['requests_per_second']:,.0f} req/s vs nginx {r['nginx']['requests_per_second']:,.0f} req/s = {r['one_vs_nginx']:.2f}x")
print(f"written: {out}")
PY
