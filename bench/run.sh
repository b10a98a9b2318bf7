#!/usr/bin/env bash
# Runs the benchmarks next to their peers on the same disk, in the same run, and writes
# build/bench-results.json (machine-readable) plus a summary table on stdout.
#   bash bench/run.sh            (or: make bench)
# SPATE_BENCH_DIR selects the directory (default /tmp); BUILD_DIR the build (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
DIR=${SPATE_BENCH_DIR:-/tmp}
OUT=$BUILD_DIR/bench-results.json
mkdir -p "$DIR"

echo "== peer: dd 1 GiB sequential write with fdatasync on $DIR" >&2
dd_line=$(dd if=/dev/zero of="$DIR/spate-dd-peer" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)
rm -f "$DIR/spate-dd-peer"
echo "$dd_line" >&2
echo "== peer: dd 4 KiB writes, each fdatasync'ed (fsync latency)" >&2
dsync_line=$(dd if=/dev/zero of="$DIR/spate-dd-peer" bs=4k count=500 oflag=dsync 2>&1 | tail -1)
rm -f "$DIR/spate-dd-peer"
echo "$dsync_line" >&2

echo "== spate log_bench" >&2
SPATE_BENCH_DIR=$DIR "$BUILD_DIR/bench/log_bench" --benchmark_min_time=1 \
  --benchmark_out="$BUILD_DIR/log_bench.json" --benchmark_out_format=json >&2

python3 - "$BUILD_DIR/log_bench.json" "$dd_line" "$dsync_line" "$OUT" <<'PY'
import json, re, sys, platform, os
bench, dd_line, dsync_line, out = sys.argv[1:5]

def dd_rate(line):
    # "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2.1 s, 511 MB/s"
    m = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", line)
    return int(m.group(1)) / float(m.group(2)) if m else None

dd_bps = dd_rate(dd_line)
dsync_bps = dd_rate(dsync_line)
data = json.load(open(bench))
rows = []
for b in data["benchmarks"]:
    name = b["name"].split("/real_time")[0]
    name = re.sub(r"(/\d+)+$", "", name)
    row = {"name": name, "real_time": b["real_time"], "time_unit": b["time_unit"]}
    for k in ("items_per_second", "bytes_per_second"):
        if k in b:
            row[k] = b[k]
    if "bytes_per_second" in b and dd_bps:
        row["ratio_to_dd"] = b["bytes_per_second"] / dd_bps
    rows.append(row)
result = {
    "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                "kernel": platform.release()},
    "context": data.get("context", {}),
    "peers": {"dd_fdatasync_bytes_per_second": dd_bps, "dd_dsync_4k_bytes_per_second": dsync_bps},
    "benchmarks": rows,
}
json.dump(result, open(out, "w"), indent=2)
print(f"dd 1 GiB conv=fdatasync: {dd_bps/1e6:.1f} MB/s; dd 4k oflag=dsync: {dsync_bps/1e6:.2f} MB/s"
      f" ({dsync_bps/4096:.0f} fsyncs/s)")
print(f"{'benchmark':58} {'records/s':>12} {'MB/s':>9} {'vs dd':>7} {'time':>12}")
for r in rows:
    ips = f"{r['items_per_second']:,.0f}" if "items_per_second" in r else "-"
    mbs = f"{r['bytes_per_second']/1e6:.1f}" if "bytes_per_second" in r else "-"
    ratio = f"{r['ratio_to_dd']*100:.0f}%" if "ratio_to_dd" in r else "-"
    print(f"{r['name']:58} {ips:>12} {mbs:>9} {ratio:>7} {r['real_time']:>9.1f} {r['time_unit']}")
print(f"written: {out}")
PY

echo "== spate ingest_stages_bench (peer: raw simdjson parse of the same events)" >&2
"$BUILD_DIR/bench/ingest_stages_bench" --benchmark_min_time=1 \
  --benchmark_out="$BUILD_DIR/ingest_stages_bench.json" --benchmark_out_format=json >&2
python3 - "$BUILD_DIR/ingest_stages_bench.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
rows = {b["name"]: b for b in data["benchmarks"]}
peer = rows["BM_Peer_SimdjsonParse"]["cpu_time"]
print(f"{'ingest stage (per event, CPU time)':40} {'events/s/core':>14} {'x raw parse':>12}")
for name, b in rows.items():
    print(f"{name:40} {1e9 / b['cpu_time']:>14,.0f} {b['cpu_time'] / peer:>11.1f}x")
PY
