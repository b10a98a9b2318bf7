#!/usr/bin/env python3
"""Spate against Kafka (librdkafka's mock cluster, `build/spate-test-kafka`), next to kcat in
the same run, against the same cluster:

 1. produce: N NDJSON events (~135 bytes) from a file via `spate produce` vs `kcat -P`, each
    into a fresh topic of the same layout (P partitions, no key: spate spreads its appends,
    kcat's default partitioner spreads messages). kcat gets spate's producer settings (acks=all,
    idempotence, linger.ms=5, batch.size=1 MiB, lz4). Wall time including process start.
 2. consume: the N events back (both read the same topic), `spate consume --from-beginning -n N`
    vs `kcat -C -o beginning -e -q` (with spate's fetch.wait.max.ms=100 and
    queued.max.messages.kbytes=16384), each piped into `wc -l` (the count must be N).
 3. HTTP -> Kafka: `spate run` on the Kafka pipeline, NDJSON batches of 1,000 events POSTed over
    a few keep-alive connections (one Python process each) until N events are sent; every answer
    must be 202 with all events accepted. The same load against an embedded-log pipeline
    (fsync interval 50 ms) in the same run is printed as a reference.

After every measurement the topic's end offsets must sum to N and its start offsets be 0 (the
mock cluster drops the oldest message sets of a partition beyond ~5 MB of stored bytes, so a
trimmed partition is reported, not silently counted).

Usage: python3 bench/kafka_bench.py [--events N] [--runs R] [--partitions P] [--connections C]
Needs: build/spate, build/spate-test-kafka, kcat (Debian package `kcat`). Python 3 stdlib only.
"""
import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build"))
SPATE = os.path.join(BUILD, "spate")
HELPER = os.path.join(BUILD, "spate-test-kafka")
KCAT = shutil.which("kcat") or shutil.which("kafkacat")
# Spate's Kafka producer defaults (include/spate/log.h, KafkaLogConfig), given to kcat as well.
KCAT_PRODUCER = ["-X", "acks=all", "-X", "enable.idempotence=true", "-X", "linger.ms=5",
                 "-X", "batch.size=1048576", "-X", "compression.type=lz4"]
# Spate's Kafka fetch settings (kafka_log.cc); librdkafka's default fetch.wait.max.ms=500 would
# add ~0.5 s to kcat's end-of-partition detection (-e).
KCAT_CONSUMER = ["-X", "fetch.wait.max.ms=100", "-X", "queued.max.messages.kbytes=16384"]
ACTIONS = ["click", "view", "add_to_cart", "purchase", "scroll", "search"]
COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL"]


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc {os.cpu_count()}, {model}"


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def event(i):
    return json.dumps({"user_id": f"u{(i * 7919) % 50000}", "action": ACTIONS[i % len(ACTIONS)],
                       "ts": 1764633600000 + i * 3, "page": f"/products/{(i * 31) % 997}",
                       "session": f"s-{(i * 2654435761) % 2**32:08x}",
                       "country": COUNTRIES[i % len(COUNTRIES)], "value": (i % 1000) / 10},
                      separators=(",", ":"))


def write_events(path, n):
    size = 0
    with open(path, "w") as f:
        for start in range(0, n, 10000):
            chunk = "".join(event(i) + "\n" for i in range(start, min(n, start + 10000)))
            size += len(chunk)
            f.write(chunk)
    return size


class MockKafka:
    def __init__(self, topics, brokers=3):
        args = [HELPER, "--brokers", str(brokers)]
        for name, parts in topics:
            args += ["--topic", f"{name}:{parts}:{min(3, brokers)}"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "bootstrap":
            raise SystemExit(f"spate-test-kafka did not start: {line}")
        self.bootstrap = line[1]

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


def write_pipeline(path, data_dir, topics, bootstrap=None, port=0, kafka_extra=""):
    log = (f'{{kind: kafka, kafka: {{bootstrap_servers: "{bootstrap}"{kafka_extra}}}}}' if bootstrap
           else "{fsync: {interval_ms: 50}}")
    tl = ", ".join(f"{{name: {n}, partitions: {p}}}" for n, p in topics)
    with open(path, "w") as f:
        f.write(f"name: kbench\ndata_dir: {data_dir}\nserver: {{port: {port}}}\nlog: {log}\n"
                f"topics: [{tl}]\n"
                "ingestion: {key_field: user_id, max_queue_size: 1000000, max_workers: 2}\n"
                "logging: {level: warn}\n")


def topic_offsets(pipe, topic):
    """(sum of end offsets, max start offset) of a topic, from `spate topics describe --json`."""
    out = subprocess.run([SPATE, "topics", "describe", "-c", pipe, topic, "--json"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"spate topics describe {topic}: {out.stderr.strip()}")
    info = json.loads(out.stdout)["partition_info"]
    return sum(p["end_offset"] for p in info), max(p["start_offset"] for p in info)


def check_topic(pipe, topic, n, problems, what):
    end, start = topic_offsets(pipe, topic)
    if end != n or start != 0:
        problems.append(f"{what}: topic {topic} has end offsets summing to {end} (want {n}), "
                        f"max start offset {start} (want 0)")
    return end == n and start == 0


def timed(cmd, stdin_path=None, shell=False, env=None):
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=stdin, capture_output=True, shell=shell, env=env, timeout=600)
    dt = time.perf_counter() - t0
    if stdin_path:
        stdin.close()
    return dt, p


# ---- HTTP client (one process per keep-alive connection) ----

def http_worker(port, path, body, requests, per_request, start_evt, q):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-ndjson", "Content-Length": str(len(body))}
    accepted, bad = 0, []
    conn.connect()
    start_evt.wait()
    for _ in range(requests):
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 202:
            bad.append(f"{r.status} {data[:200]!r}")
            continue
        a = json.loads(data).get("accepted", 0)
        accepted += a
        if a != per_request:
            bad.append(f"202 but accepted {a} of {per_request}: {data[:200]!r}")
    conn.close()
    q.put((accepted, bad))


def http_load(port, topic, body, per_request, n, connections):
    total_requests = n // per_request
    ctx = multiprocessing.get_context("fork")
    start_evt, q = ctx.Event(), ctx.Queue()
    procs = []
    for c in range(connections):
        reqs = total_requests // connections + (1 if c < total_requests % connections else 0)
        p = ctx.Process(target=http_worker,
                        args=(port, f"/ingest/{topic}", body, reqs, per_request, start_evt, q))
        p.start()
        procs.append(p)
    time.sleep(0.3)  # all connected
    t0 = time.perf_counter()
    start_evt.set()
    results = [q.get(timeout=600) for _ in procs]
    dt = time.perf_counter() - t0
    for p in procs:
        p.join()
    return dt, sum(a for a, _ in results), [b for _, bs in results for b in bs]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.1)
    return False


def http_run(pipe, topic, body, per_request, n, connections, problems, what, log_path):
    port = free_port()
    log = open(log_path, "ab")
    proc = subprocess.Popen([SPATE, "run", pipe, "--port", str(port)], stdout=log, stderr=log)
    try:
        if not wait_ready(port, proc):
            problems.append(f"{what}: spate run did not become ready (log: {log_path})")
            return None
        dt, accepted, bad = http_load(port, topic, body, per_request, n, connections)
        if bad:
            problems.append(f"{what}: {len(bad)} bad answers, first: {bad[0]}")
        if accepted != n:
            problems.append(f"{what}: accepted {accepted} of {n}")
        return dt if (not bad and accepted == n) else None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_rate(v):
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=500000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--http-batch", type=int, default=1000)
    ap.add_argument("--batch-size-extra", type=int, default=10000,
                    help="also time `spate produce --batch-size B` (0 = skip)")
    ap.add_argument("--linger-ms", type=int, default=None,
                    help="set log.kafka.linger_ms of Spate's pipeline (default: Spate's, 5 ms)")
    ap.add_argument("--no-embedded", action="store_true", help="skip the embedded-log HTTP reference")
    args = ap.parse_args()
    for path, what in ((SPATE, "build/spate"), (HELPER, "build/spate-test-kafka")):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"{what} not built ({path})")
    if not KCAT:
        raise SystemExit("kcat not installed (apt-get install kcat)")
    n, runs, parts = args.events, args.runs, args.partitions
    n_http = n - n % args.http_batch

    tmp = tempfile.mkdtemp(prefix="kafka-bench-")
    print(f"machine: {machine()}; load average at start {loadavg()}")
    events_path = os.path.join(tmp, "events.ndjson")
    nbytes = write_events(events_path, n)
    mb = nbytes / 1e6
    print(f"events: {n}, {nbytes} bytes ({nbytes / n:.0f} bytes/event); topics of {parts} "
          f"partitions, 3 mock brokers, replication 3; {runs} runs")
    with open(events_path) as f:
        body = "".join(next(f) for _ in range(args.http_batch)).encode()

    topics = []
    for r in range(runs):
        topics += [(f"ps{r}", parts), (f"pk{r}", parts), (f"http{r}", parts)]
        if args.batch_size_extra:
            topics.append((f"pb{r}", parts))
    kafka = MockKafka(topics)
    bs = kafka.bootstrap
    pipe = os.path.join(tmp, "kafka.yaml")
    extra = f", linger_ms: {args.linger_ms}" if args.linger_ms is not None else ""
    write_pipeline(pipe, os.path.join(tmp, "data-kafka"), topics, bootstrap=bs, kafka_extra=extra)
    problems = []
    res = {k: [] for k in ("p_spate", "p_kcat", "p_spate_b", "c_spate", "c_kcat", "http", "http_emb")}
    try:
        for r in range(runs):
            print(f"== run {r + 1}/{runs} (load {loadavg()})", flush=True)
            # 1. produce, alternating which goes first
            order = ["spate", "kcat"] if r % 2 == 0 else ["kcat", "spate"]
            for who in order:
                if who == "spate":
                    dt, p = timed([SPATE, "produce", "-c", pipe, "--topic", f"ps{r}"], events_path)
                    topic, key = f"ps{r}", "p_spate"
                else:
                    dt, p = timed([KCAT, "-b", bs, *KCAT_PRODUCER, "-P", "-t", f"pk{r}"], events_path)
                    topic, key = f"pk{r}", "p_kcat"
                if p.returncode != 0:
                    problems.append(f"produce {who} run {r}: exit {p.returncode}: "
                                    f"{p.stderr.decode(errors='replace').strip()[-500:]}")
                elif check_topic(pipe, topic, n, problems, f"produce {who} run {r}"):
                    res[key].append(dt)
                print(f"  produce {who:5}: {dt:6.2f} s  {n / dt:>10,.0f} events/s  {mb / dt:6.1f} MB/s",
                      flush=True)
            if args.batch_size_extra:
                dt, p = timed([SPATE, "produce", "-c", pipe, "--topic", f"pb{r}",
                               "--batch-size", str(args.batch_size_extra)], events_path)
                if p.returncode != 0:
                    problems.append(f"produce spate --batch-size run {r}: exit {p.returncode}: "
                                    f"{p.stderr.decode(errors='replace').strip()[-500:]}")
                elif check_topic(pipe, f"pb{r}", n, problems, f"produce spate --batch-size run {r}"):
                    res["p_spate_b"].append(dt)
                print(f"  produce spate --batch-size {args.batch_size_extra}: {dt:6.2f} s  "
                      f"{n / dt:>10,.0f} events/s", flush=True)
            # 2. consume the spate-produced topic with both
            src = f"ps{r}"
            for who in order:
                if who == "spate":
                    cmd = f"'{SPATE}' consume -c '{pipe}' --topic {src} --from-beginning -n {n} | wc -l"
                    key = "c_spate"
                else:
                    cmd = f"'{KCAT}' -b '{bs}' {' '.join(KCAT_CONSUMER)} -C -t {src} -o beginning -e -q | wc -l"
                    key = "c_kcat"
                dt, p = timed(["bash", "-o", "pipefail", "-c", cmd])
                got = p.stdout.decode().strip()
                if p.returncode != 0 or got != str(n):
                    problems.append(f"consume {who} run {r}: exit {p.returncode}, {got} lines "
                                    f"(want {n}): {p.stderr.decode(errors='replace').strip()[-500:]}")
                else:
                    res[key].append(dt)
                print(f"  consume {who:5}: {dt:6.2f} s  {n / dt:>10,.0f} events/s  {mb / dt:6.1f} MB/s",
                      flush=True)
            # 3. HTTP -> Kafka
            dt = http_run(pipe, f"http{r}", body, args.http_batch, n_http, args.connections,
                          problems, f"http->kafka run {r}", os.path.join(tmp, "spate-run.log"))
            if dt is not None and check_topic(pipe, f"http{r}", n_http, problems, f"http->kafka run {r}"):
                res["http"].append(dt)
            if dt is not None:
                print(f"  HTTP -> Kafka: {dt:6.2f} s  {n_http / dt:>10,.0f} events/s", flush=True)
            if not args.no_embedded:
                epipe = os.path.join(tmp, f"embedded{r}.yaml")
                edir = os.path.join(tmp, f"data-embedded{r}")
                write_pipeline(epipe, edir, [("events", parts)])
                dt = http_run(epipe, "events", body, args.http_batch, n_http, args.connections,
                              problems, f"http->embedded run {r}", os.path.join(tmp, "spate-run.log"))
                if dt is not None and check_topic(epipe, "events", n_http, problems,
                                                  f"http->embedded run {r}"):
                    res["http_emb"].append(dt)
                if dt is not None:
                    print(f"  HTTP -> embedded log (reference): {dt:6.2f} s  "
                          f"{n_http / dt:>10,.0f} events/s", flush=True)
                shutil.rmtree(edir, ignore_errors=True)
    finally:
        kafka.close()
    load_end = loadavg()

    def row(label, key, count, peer=None):
        ts = res[key]
        if not ts:
            return f"| {label} | failed | | | |"
        rates = sorted(count / t for t in ts)
        m = med([count / t for t in ts])
        ratio = ""
        if peer and res[peer]:
            ratio = f"{m / med([count / t for t in res[peer]]):.2f}×"
        rng = f" ({fmt_rate(rates[0])}–{fmt_rate(rates[-1])})" if len(rates) > 1 else ""
        mbs = f"{m * nbytes / n / 1e6:.1f}"
        return f"| {label} | {m:,.0f}{rng} | {mbs} | {med(ts):.2f} s | {ratio} |"

    print()
    print(f"machine: {machine()}; load average {load_end} at end")
    print(f"{n} events of {nbytes / n:.0f} bytes, {parts} partitions, medians of {runs} runs "
          f"(range of single runs in parentheses)")
    print()
    print("| measurement | events/s | MB/s | wall | spate/kcat |")
    print("|---|---:|---:|---:|---:|")
    print(row("produce: `spate produce`", "p_spate", n, "p_kcat"))
    if args.batch_size_extra:
        print(row(f"produce: `spate produce --batch-size {args.batch_size_extra}`", "p_spate_b", n, "p_kcat"))
    print(row("produce: `kcat -P` (spate's producer settings)", "p_kcat", n))
    print(row("consume: `spate consume --from-beginning -n N`", "c_spate", n, "c_kcat"))
    print(row("consume: `kcat -C -e -q` (spate's fetch settings)", "c_kcat", n))
    print(row(f"HTTP → Kafka: `spate run`, {args.http_batch}-event NDJSON batches, "
              f"{args.connections} connections", "http", n_http))
    if not args.no_embedded:
        print(row("reference: the same HTTP load → embedded log (fsync 50 ms)", "http_emb", n_http))
    if problems:
        print("\nproblems:")
        for p in problems:
            print(f"  - {p}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
