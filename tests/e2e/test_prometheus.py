"""Spate's /metrics as real Prometheus tooling sees it.

Runs examples/deployment.yaml (the quickstart as log owner, processor, analytics and ingestion
processes under `spate orchestrate`), then:
 - `promtool check metrics` on the live /metrics of the orchestrator and of every replica (the
   ingestion replica's is its separate metrics port, as in the reference deployment);
 - every metric the reference design names is exported, with the labels it names;
 - a real Prometheus server (Debian package) on loopback scrapes all of them every second; after
   HTTP load, a query through its HTTP API returns a non-zero
   `rate(ingestion_messages_total[1m])`, every target is up, and the orchestration metrics are
   there per component.
promtool and prometheus come from scripts/install-deps.sh: missing under CI is a failure."""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

from spate_e2e import *  # noqa: F403
from promql_names import metric_names

ROOT = os.getcwd()
promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
if promtool is None or prometheus is None:
    print("SKIP: promtool/prometheus are not installed")
    check(not os.environ.get("CI"), "promtool and prometheus are installed in CI (scripts/install-deps.sh)")
    finish("test_prometheus")

tmp = tempdir()
ingest_port, orch_port, prom_port = free_port(), free_port(), free_port()
env = dict(os.environ, SPATE_DATA_DIR=f"{tmp}/data", SPATE_STATE_DIR=f"{tmp}/state",
           SPATE_PORT=str(ingest_port), SPATE_ORCHESTRATOR_PORT=str(orch_port))
env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
orch = subprocess.Popen([SPATE, "orchestrate", os.path.join(ROOT, "examples", "deployment.yaml")], env=env,
                        stdout=open(os.path.join(tmp, "orchestrator.log"), "w"), stderr=subprocess.STDOUT)
prom = None


def stop_all():
    if prom is not None and prom.poll() is None:
        prom.terminate()
        prom.wait(timeout=30)
    if orch.poll() is None:
        orch.send_signal(signal.SIGTERM)
        orch.wait(timeout=120)


def status():
    code, body = http_get(orch_port, "/status")
    return json.loads(body) if code == 200 else None


try:
    check(wait_for(lambda: http_get(orch_port, "/ready")[0] == 200, timeout=90), "examples/deployment.yaml comes up")
    st = status()
    targets = {"orchestrator": orch_port}
    for c in st["components"]:
        for i in c["instances"]:
            targets[f"{c['name']}-{i['index']}"] = i["port"]
    check(len(targets) == 5, f"the orchestrator and four replicas: {targets}")

    # ------------------------------------------------------------ promtool check metrics
    texts = {}
    for name, port in targets.items():
        code, body = http_get(port, "/metrics")
        check(code == 200, f"{name}: GET /metrics: {code}")
        texts[name] = body
        r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, f"{name}: promtool check metrics passes: {r.stdout}{r.stderr}")
    bad = texts["orchestrator"] + "\nbroken_metric{le=\"x\" 1\n"
    r = subprocess.run([promtool, "check", "metrics"], input=bad, capture_output=True, text=True, timeout=30)
    check(r.returncode != 0, "control: promtool refuses a malformed exposition")

    # ------------------------------------------------------------ the reference names and labels
    def series(text):
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            labels = set()
            if "{" in line:
                inner = line.split("{", 1)[1].rsplit("}", 1)[0]
                labels = {kv.split("=", 1)[0] for kv in inner.split(",") if "=" in kv}
            out.setdefault(name, set()).update(labels)
        return out

    everything = {}
    for text in texts.values():
        for k, v in series(text).items():
            everything.setdefault(k, set()).update(v)
    expected = {  # name -> labels it must carry (the reference design's)
        "ingestion_messages_total": {"source", "status"},
        "ingestion_processing_seconds_bucket": {"le"},
        "ingestion_queue_size": {"source"},
        "ingestion_throughput_per_second": set(),
        "ingestion_validation_errors_total": set(),
        "stream_messages_processed_total": {"processor", "topic", "status"},
        "stream_processing_seconds_bucket": {"processor", "topic", "le"},
        "stream_consumer_lag": {"processor", "topic", "partition"},
        "stream_processing_errors_total": {"processor", "topic", "error"},
        "analytics_events_processed_total": {"analytics"},
        "analytics_active_windows": {"analytics"},
        "analytics_patterns_detected_total": {"analytics", "pattern"},
        "analytics_anomalies_detected_total": {"analytics", "rule"},
        "orchestration_operations_total": {"operation", "status"},
        "streaming_component_health": {"component"},
        "streaming_active_components": {"type"},
        "streaming_total_throughput": set(),
        "process_cpu_seconds_total": set(),
        "process_resident_memory_bytes": set(),
        "process_open_fds": set(),
        "spate_build_info": {"version"},
    }
    for name, labels in expected.items():
        check(name in everything, f"{name} is exported")
        check(labels <= everything.get(name, set()), f"{name} has labels {sorted(labels)}: {sorted(everything.get(name, set()))}")

    # ------------------------------------------------------------ a real Prometheus scrapes them
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n")
        f.write(f"rule_files: ['{ROOT}/deploy/prometheus/alerts.yaml']\nscrape_configs:\n")
        f.write(f"  - job_name: spate-orchestrator\n    static_configs: [{{targets: ['127.0.0.1:{orch_port}']}}]\n")
        replicas = ", ".join(f"'127.0.0.1:{p}'" for n, p in targets.items() if n != "orchestrator")
        f.write(f"  - job_name: spate\n    static_configs: [{{targets: [{replicas}]}}]\n")
    r = subprocess.run([promtool, "check", "config", cfg], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"promtool check config: {r.stdout}{r.stderr}")
    prom = subprocess.Popen([prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/tsdb",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=open(os.path.join(tmp, "prometheus.log"), "w"), stderr=subprocess.STDOUT)
    check(wait_for(lambda: http_get(prom_port, "/-/ready")[0] == 200, timeout=60), "Prometheus is ready")

    def query(q):
        code, body = http_get(prom_port, "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        if code != 200:
            return None
        doc = json.loads(body)
        return doc["data"]["result"] if doc.get("status") == "success" else None

    # Before load: the rate is 0 (a real check, not one that cannot fail).
    check(wait_for(lambda: (r := query('up')) and len(r) == 5 and all(x["value"][1] == "1" for x in r), timeout=60),
          f"every target is up: {query('up')}")
    zero = query("sum(rate(ingestion_messages_total[1m]))")
    check(zero is not None and (not zero or float(zero[0]["value"][1]) == 0.0), f"no ingestion rate before load: {zero}")

    # Load: NDJSON batches for a few seconds.
    sent = 0
    t_end = time.time() + 6
    while time.time() < t_end:
        body = "\n".join(json.dumps({"user_id": f"u{i % 7}", "action": "click", "timestamp": "2026-12-03T10:00:00Z"})
                         for i in range(sent, sent + 50)).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{ingest_port}/ingest/user_events", data=body, method="POST",
                                     headers={"Content-Type": "application/x-ndjson"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            check(resp.status == 202, f"ingest: {resp.status}")
        sent += 50
        time.sleep(0.2)

    def rate_positive():
        r = query("sum(rate(ingestion_messages_total[1m]))")
        return r and float(r[0]["value"][1]) > 0 and r

    got = wait_for(rate_positive, timeout=60)
    check(got, f"rate(ingestion_messages_total[1m]) > 0 after {sent} events: {query('sum(rate(ingestion_messages_total[1m]))')}")
    processed = wait_for(lambda: (r := query('sum(analytics_events_processed_total)')) and float(r[0]["value"][1]) >= sent and r,
                         timeout=60)
    check(processed, f"analytics saw every event through Prometheus: {query('sum(analytics_events_processed_total)')}")
    health = query("streaming_component_health")
    check(health and {x["metric"]["component"] for x in health} == {"log", "errors", "analytics", "ingestion"},
          f"streaming_component_health per component: {health}")
    thr = wait_for(lambda: (r := query("streaming_total_throughput")) and float(r[0]["value"][1]) >= 0 and r, timeout=30)
    check(thr, "streaming_total_throughput is scraped")

    # ------------------------------------------------------------ deploy/prometheus/alerts.yaml, live
    code, body = http_get(prom_port, "/api/v1/rules")
    rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]] if code == 200 else []
    check(len(rules) >= 7, f"Prometheus loaded the alert rules: {len(rules)}")
    evaluated = wait_for(lambda: (c := http_get(prom_port, "/api/v1/rules")) and c[0] == 200 and all(
        r.get("health") == "ok" for g in json.loads(c[1])["data"]["groups"] for r in g["rules"]), timeout=30)
    check(evaluated, "every rule evaluates without error against live data")
    code, body = http_get(prom_port, "/api/v1/alerts")
    firing = [a for a in json.loads(body)["data"]["alerts"] if a["state"] == "firing"] if code == 200 else None
    check(firing == [], f"a healthy deployment fires no alert: {firing}")
    exported = set(everything)
    for r in rules:
        for name in metric_names(r["query"]):
            if name == "up":
                continue  # Prometheus' own
            check(name in exported, f"alert {r['name']}: the metric {name} is exported")

    # ------------------------------------------------------------ deploy/grafana/dashboard.json, live
    dash = json.load(open(os.path.join(ROOT, "deploy/grafana/dashboard.json")))
    panels = [q for p in dash["panels"] for q in [p] + p.get("panels", [])]
    exprs = [(p["title"], t["expr"]) for p in panels for t in p.get("targets", []) if t.get("expr")]
    check(len(exprs) >= 20, f"the dashboard has its queries: {len(exprs)}")
    for title, expr in exprs:
        q = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
        code, body = http_get(prom_port, "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        check(code == 200 and json.loads(body).get("status") == "success", f"panel '{title}': {q} -> {code} {body[:200]}")
        for name in metric_names(q):
            if name in ("up",):
                continue
            # orchestration_* and streaming_* come from the orchestrator, which is scraped here too
            check(name in exported, f"panel '{title}': the metric {name} is exported")
finally:
    stop_all()
check(orch.returncode == 0, f"the orchestrator exits 0: {orch.returncode}")
if FAILURES:
    for n in ("orchestrator.log", "prometheus.log"):
        p = os.path.join(tmp, n)
        if os.path.exists(p):
            print(f"--- {n}\n" + open(p).read()[-3000:])
finish("test_prometheus")
