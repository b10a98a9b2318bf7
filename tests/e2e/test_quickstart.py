"""`spate run examples/quickstart.yaml` serves /health, /ready, /metrics and /status, and stops
cleanly on SIGTERM (exit 0)."""
import json
import os
import shutil
import signal
import subprocess
import sys

from spate_e2e import *

data = tempdir()
port = free_port()
proc = subprocess.Popen([SPATE, "run", "examples/quickstart.yaml", "--data-dir", data,
                         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
try:
    health = wait_for(lambda: http_get(port, "/health")[0] == 200, timeout=30)
    check(health, "/health answers 200")
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "/ready turns 200")

    code, body = http_get(port, "/status")
    check(code == 200, f"/status 200 (got {code})")
    st = json.loads(body)
    check(st["name"] == "quickstart", "status names the pipeline")
    check(st["version"], "status has a version")
    topics = {t["name"]: t for t in st["topics"]}
    check("user_events" in topics and topics["user_events"]["partitions"] == 4,
          f"status lists topic user_events with 4 partitions: {topics.keys()}")
    for t in ("system_metrics", "application_logs", "failed_messages"):
        check(t in topics, f"status lists topic {t}")
    check(all(p["end_offset"] == 0 for p in topics["user_events"]["partition_info"]),
          "fresh topics are empty")
    check(any(c["name"] == "log" for c in st["components"]), "status lists the log component")

    code, body = http_get(port, "/metrics")
    check(code == 200, "/metrics 200")
    check("# TYPE spate_build_info gauge" in body, "build info metric")
    check('spate_log_end_offset{partition="3",topic="user_events"} 0' in body,
          "per-partition end offset metric")
    check("process_resident_memory_bytes" in body, "process metrics")
    check("spate_log_appends_total" in body and "spate_log_fsyncs_total" in body,
          "log counters are exported")

    # POST /ingest routes each event to the reference topics.
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = ('{"user_id":"u1","action":"login"}\n'
            '{"metric":"cpu","value":0.5,"host":"h1"}\n'
            '{"level":"error","message":"timeout talking to db"}\n'
            'not json\n')
    c.request("POST", "/ingest", body=body, headers={"Content-Type": "application/x-ndjson"})
    r = c.getresponse()
    res = json.loads(r.read())
    check(r.status == 202 and res["accepted"] == 3 and res["rejected"] == 1, f"ingest: {res}")
    st = json.loads(http_get(port, "/status")[1])
    ends = {t["name"]: sum(p["end_offset"] for p in t["partition_info"]) for t in st["topics"]}
    check(ends["user_events"] == 1 and ends["system_metrics"] == 1 and
          ends["application_logs"] == 1 and ends["failed_messages"] == 1,
          f"one event in each reference topic and one dead letter: {ends}")

    # The `errors` processor turns the error log line into an error_logs event.
    def error_logs():
        st = json.loads(http_get(port, "/status")[1])
        return [sum(p["end_offset"] for p in t["partition_info"]) for t in st["topics"]
                if t["name"] == "error_logs"] == [1]
    check(wait_for(error_logs, timeout=20), "the errors processor wrote to error_logs")
    # The counts follow the output: a batch is counted once its offsets are committed too.
    def counted():
        procs = json.loads(http_get(port, "/status")[1])["processors"]
        return procs if (len(procs) == 1 and procs[0]["consumed"] == 1 and procs[0]["lag"] == 0) else None
    procs = wait_for(counted, timeout=10) or json.loads(http_get(port, "/status")[1])["processors"]
    check(len(procs) == 1 and procs[0]["name"] == "errors" and procs[0]["inputs"] == ["application_logs"]
          and procs[0]["consumed"] == 1 and procs[0]["produced"] == 1 and procs[0]["lag"] == 0
          and procs[0]["paused"] is False and procs[0]["downstreams"] == [],
          f"/status lists the processor and its counts: {procs}")
    _, m = http_get(port, "/metrics")
    check('stream_messages_processed_total{processor="errors",status="processed",topic="application_logs"} 1'
          in m, "processor metrics")

    # The `user_activity` analytics job: a login at 10:00 and one at 10:02 (same user, so the
    # same partition; the idle ones stop holding the watermark after 5 s) close the 10:00 window.
    c.request("POST", "/ingest/user_events", body=(
        '{"user_id":"u7","action":"login","timestamp":"2026-11-29T10:00:10Z"}\n'
        '{"user_id":"u8","action":"login","timestamp":"2026-11-29T10:00:20Z"}\n'
        '{"user_id":"u7","action":"logout","timestamp":"2026-11-29T10:00:30Z"}\n'
        '{"user_id":"u7","action":"login","timestamp":"2026-11-29T10:02:00Z"}\n'),
        headers={"Content-Type": "application/x-ndjson"})
    r = c.getresponse()
    check(r.status == 202, f"ingest for analytics: {r.status} {r.read()}")
    def analytics_results():
        st = json.loads(http_get(port, "/status")[1])
        a = st["analytics"][0]
        return a if a["results"] >= 2 else None
    a = wait_for(analytics_results, timeout=30)
    check(a and a["name"] == "user_activity" and a["window"] == "tumbling" and a["late"] == 0,
          f"/status lists the analytics job with its results: {a}")
    _, m = http_get(port, "/metrics")
    check('analytics_events_processed_total{analytics="user_activity"}' in m and
          'analytics_active_windows{analytics="user_activity"}' in m, "analytics metrics")

    # The demo load (examples/demo_load.py, 150 s of event time at 30x): a CPU spike on web-3
    # (anomaly) and web-2 hot for a minute (threshold alert, then resolved).
    r = subprocess.run([sys.executable, "examples/demo_load.py", "--url",
                        f"http://127.0.0.1:{port}", "--duration", "150", "--speedup", "30"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and "sent" in r.stdout, f"demo load: {r.stdout} {r.stderr}")
    def health_alerts():
        st = json.loads(http_get(port, "/status")[1])
        a = [x for x in st["analytics"] if x["name"] == "system_health"][0]
        return a if a["patterns"] >= 1 and a["anomalies"] >= 1 and a["alerts"] >= 4 else None
    a = wait_for(health_alerts, timeout=30)
    check(a is not None, f"system_health raised alerts: {json.loads(http_get(port, '/status')[1])}")
    _, m = http_get(port, "/metrics")
    check('analytics_patterns_detected_total{analytics="system_health",pattern="threshold"} 1' in m
          and 'analytics_anomalies_detected_total{analytics="system_health",rule="cpu_spike"}' in m,
          "pattern and anomaly metrics")

    code, _ = http_get(port, "/nope")
    check(code == 404, "unknown path is 404")

    # The data directory is owned by the running process: the CLI says so instead of corrupting it.
    r = spate("topics", "list", "--data-dir", data)
    check(r.returncode == 1 and "in use" in r.stderr,
          f"a second process on the same data dir is refused: rc={r.returncode} {r.stderr}")
finally:
    out, err = stop_process(proc)
check(proc.returncode == 0, f"SIGTERM stops cleanly with exit 0 (got {proc.returncode}): {err}")
check("stopped cleanly" in err, "logs a clean stop")

# After a clean stop the CLI can use the data directory and sees the topics, and what the
# processor wrote.
r = spate("consume", "--data-dir", data, "--topic", "error_logs", "--from-beginning")
check(r.returncode == 0 and json.loads(r.stdout) ==
      {"error": {"message": "timeout talking to db", "severity": "ERROR"}},
      f"error_logs holds the transformed event: {r.stdout} {r.stderr}")
r = spate("consume", "--data-dir", data, "--topic", "user_activity_1m", "--from-beginning")
results = {} if r.returncode else {
    (v["window_start"], v["key"]["action"]): v for v in map(json.loads, r.stdout.splitlines())}
w = 1795946400000  # 2026-11-29T10:00:00Z
check(set(results) >= {(w, "login"), (w, "logout")} and results[(w, "login")]["count"] == 2
      and results[(w, "login")]["users"] == 2 and results[(w, "logout")]["count"] == 1
      and results[(w, "login")]["window_end"] == w + 60000,
      f"window results for 10:00-10:01: {r.stdout} {r.stderr}")
import sqlite3
db = sqlite3.connect(os.path.join(data, "analytics.db"))
rows = db.execute("SELECT window_start, key, json_extract(result, '$.count'), "
                  "json_extract(result, '$.users') FROM user_activity WHERE window_start = ? ORDER BY key",
                  (w,)).fetchall()
db.close()
check(rows == [(w, '{"action":"login"}', 2, 2), (w, '{"action":"logout"}', 1, 1)],
      f"window results upserted into SQLite: {rows}")
# Alerts: on the console notifier (stdout) and in the alerts topic, firing then resolved.
def alert_states(lines):
    out = []
    for line in lines:
        try:
            a = json.loads(line)
        except ValueError:
            continue
        if isinstance(a, dict) and "rule" in a:
            out.append((a["rule"], a["key"].get("host"), a["state"]))
    return out
printed = alert_states(out.splitlines())
r = spate("consume", "--data-dir", data, "--topic", "alerts", "--from-beginning")
stored = alert_states(r.stdout.splitlines())
for want in [("cpu_spike", "web-3", "firing"), ("cpu_hot", "web-2", "firing"),
             ("cpu_hot", "web-2", "resolved")]:
    check(want in printed and want in stored, f"alert {want}: printed {printed} stored {stored}")
check(printed.index(("cpu_hot", "web-2", "firing")) < printed.index(("cpu_hot", "web-2", "resolved")),
      "the threshold alert fires before it resolves")
check(sorted(printed) == sorted(stored), "the console and the alerts topic saw the same alerts")
check(not [x for x in printed if x[0] == "cpu_hot" and x[1] != "web-2"],
      f"only web-2 ran hot: {printed}")
r = spate("topics", "list", "--data-dir", data)
check(r.returncode == 0 and r.stdout.split() ==
      ["alerts", "application_logs", "error_logs", "failed_messages", "late_events",
       "system_health_10s", "system_metrics", "user_activity_1m", "user_events"],
      f"topics list: {r.stdout}")
shutil.rmtree(data, ignore_errors=True)
finish("quickstart")
