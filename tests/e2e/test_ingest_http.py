"""HTTP ingestion as a user drives it: mixed valid/invalid batches, gzip and zstd bodies, errors
with reasons, the dead-letter topic; then a SIGKILL during a load run, after which every event
that got a 202 is in the log exactly once."""
import gzip
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time

from spate_e2e import *

tmp = tempdir()
data = os.path.join(tmp, "data")
cfg = os.path.join(tmp, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write("""
name: ingest-e2e
data_dir: %s
log: {fsync: {interval_ms: 20}}
topics:
  - {name: events, partitions: 2}
  - {name: dlq, partitions: 1}
  - {name: hooks, partitions: 1}
ingestion:
  key_field: user
  default_topic: events
  dead_letter_topic: dlq
  max_body_bytes: 64KiB
  dedup: {key: id, ttl: 1h}
  sources:
    - {type: webhook, name: gh, topic: hooks, secret: "${GH_SECRET:-gh-secret}"}
    - {type: webhook, name: pay, topic: hooks, signature: timestamped, secret: pay-secret,
       tolerance: 5m}
""" % data)


def start():
    port = free_port()
    p = subprocess.Popen([SPATE, "run", cfg, "--port", str(port)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    ok = wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30)
    check(ok, "spate run becomes ready")
    return p, port


def post(port, path, body, headers=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", path, body=body, headers=headers or {})
    r = c.getresponse()
    out = r.status, r.read().decode(), dict(r.getheaders())
    if conn is None:
        c.close()
    return out


proc, port = start()
try:
    nd = {"Content-Type": "application/x-ndjson"}
    st, body, _ = post(port, "/ingest/events",
                       '{"user":"a","n":1}\n{broken\n{"user":"b","n":2}\n"str"\n', nd)
    res = json.loads(body)
    check(st == 202, f"mixed batch is 202 (got {st})")
    check(res["accepted"] == 2 and res["rejected"] == 2, f"counts: {res}")
    check([e["index"] for e in res["errors"]] == [1, 3], f"errors name the bad events: {res}")
    check(all(e["reason"] for e in res["errors"]), "each error has a reason")

    js = {"Content-Type": "application/json"}
    st, body, _ = post(port, "/ingest/events", gzip.compress(b'[{"user":"g","n":3},{"user":"g","n":4}]'),
                       {**js, "Content-Encoding": "gzip"})
    check(st == 202 and json.loads(body)["accepted"] == 2, f"gzip body: {st} {body}")
    if shutil.which("zstd"):
        z = subprocess.run(["zstd", "-c"], input=b'{"user":"z","n":5}', capture_output=True).stdout
        st, body, _ = post(port, "/ingest", z, {**js, "Content-Encoding": "zstd"})
        check(st == 202 and json.loads(body)["accepted"] == 1, f"zstd body to default topic: {st} {body}")

    st, body, _ = post(port, "/ingest/events", b"\x1f\x8b garbage", {**js, "Content-Encoding": "gzip"})
    check(st == 400, f"corrupt gzip is 400 (got {st})")
    st, body, _ = post(port, "/ingest/events", "{}", {"Content-Type": "text/csv"})
    check(st == 415 and "Content-Type" in body, f"unsupported media type is 415: {st} {body}")
    st, body, _ = post(port, "/ingest/events", "{}", {**js, "Content-Encoding": "br"})
    check(st == 415, f"unsupported encoding is 415 (got {st})")
    st, body, _ = post(port, "/ingest/nope", "{}", js)
    check(st == 404 and "does not exist" in body, f"unknown topic is 404: {st} {body}")
    st, body, _ = post(port, "/ingest/events", "[{}, {}", js)
    check(st == 400 and "unterminated" in body, f"broken array is 400: {st} {body}")
    st, body, _ = post(port, "/ingest/events", '{"x":"' + "y" * 70000 + '"}', js)
    check(st == 413, f"body over max_body_bytes is 413 (got {st})")
    bomb = gzip.compress(b'{"x":"' + b"y" * 200000 + b'"}')
    st, body, _ = post(port, "/ingest/events", bomb, {**js, "Content-Encoding": "gzip"})
    check(st == 413, f"decompressed body over the limit is 413 (got {st})")

    # Webhooks: GitHub style and timestamped style; bad, missing and replayed signatures -> 401.
    import hashlib, hmac
    hook = b'{"action":"opened","n":1}'
    sig = "sha256=" + hmac.new(b"gh-secret", hook, hashlib.sha256).hexdigest()
    st, body, _ = post(port, "/webhooks/gh", hook, {"X-Hub-Signature-256": sig, **js})
    check(st == 202 and json.loads(body)["accepted"] == 1, f"signed github webhook: {st} {body}")
    st, body, _ = post(port, "/webhooks/gh", hook, {"X-Hub-Signature-256": "sha256=" + "0" * 64, **js})
    check(st == 401 and "does not match" in body, f"bad signature is 401: {st} {body}")
    st, body, _ = post(port, "/webhooks/gh", hook, js)
    check(st == 401 and "missing" in body, f"missing signature is 401: {st} {body}")
    ts = str(int(time.time()))
    pay = b'{"id":"evt_1"}'
    tsig = "t=%s,v1=%s" % (ts, hmac.new(b"pay-secret", ts.encode() + b"." + pay, hashlib.sha256).hexdigest())
    st, body, _ = post(port, "/webhooks/pay", pay, {"Webhook-Signature": tsig, **js})
    check(st == 202, f"timestamped webhook: {st} {body}")
    st, body, _ = post(port, "/webhooks/pay", pay, {"Webhook-Signature": tsig, **js})
    check(st == 401 and "replay" in body, f"replayed webhook is 401: {st} {body}")
    old = str(int(time.time()) - 3600)
    osig = "t=%s,v1=%s" % (old, hmac.new(b"pay-secret", old.encode() + b"." + pay, hashlib.sha256).hexdigest())
    st, body, _ = post(port, "/webhooks/pay", pay, {"Webhook-Signature": osig, **js})
    check(st == 401 and "tolerance" in body, f"old timestamp is 401: {st} {body}")

    code, metrics = http_get(port, "/metrics")
    check('ingestion_webhook_auth_failures_total{source="gh"} 2' in metrics, "webhook auth failures counted")
    check('ingestion_webhook_auth_failures_total{source="pay"} 2' in metrics, "replays counted")
    check('ingestion_messages_total{source="http",status="accepted"} 5' in metrics,
          "accepted events counted")
    check('ingestion_messages_total{source="http",status="rejected"} 2' in metrics,
          "rejected events counted")
finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
check(proc.returncode == 0, f"clean stop (got {proc.returncode})")

r = spate("consume", "-c", cfg, "--topic", "hooks")
check(r.stdout.splitlines() == ['{"action":"opened","n":1}', '{"id":"evt_1"}'],
      f"only the verified webhooks were stored: {r.stdout}")
r = spate("consume", "-c", cfg, "--topic", "dlq", "--with-metadata")
dead = [json.loads(l) for l in r.stdout.splitlines()]
check(len(dead) == 2, f"two dead letters: {r.stdout} {r.stderr}")
check(dead and dead[0]["headers"]["error"].startswith("invalid JSON"), "dead letter carries the reason")
check(dead and dead[0]["value"] == "{broken", "dead letter keeps the original bytes")

# ---- SIGKILL during a load run: every 202-acknowledged event is in the log exactly once.
proc, port = start()
acked = set()
lock = threading.Lock()
stop = threading.Event()


def client(cid):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seq = 0
    while not stop.is_set():
        ids = [f"{cid}-{seq + i}" for i in range(20)]
        seq += 20
        body = "".join(json.dumps({"user": f"u{cid}", "id": i, "pad": "x" * 50}) + "\n" for i in ids)
        try:
            st, resp, _ = post(port, "/ingest/events", body, nd, conn)
        except Exception:
            return  # the server died: this request may or may not have been stored
        if st == 202:
            with lock:
                acked.update(ids)


threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
for t in threads:
    t.start()
time.sleep(2.0)
proc.send_signal(signal.SIGKILL)
proc.wait()
stop.set()
for t in threads:
    t.join()
check(len(acked) > 1000, f"load was running when killed ({len(acked)} acked)")

r = spate("consume", "-c", cfg, "--topic", "events", timeout=120)
check(r.returncode == 0, f"consume after SIGKILL: {r.stderr}")
ids = [json.loads(l).get("id") for l in r.stdout.splitlines()]
ids = [i for i in ids if i is not None]
check(len(ids) == len(set(ids)), f"no event stored twice ({len(ids) - len(set(ids))} duplicates)")
missing = acked - set(ids)
check(not missing, f"every acknowledged event survived ({len(missing)} missing)")
print(f"acked {len(acked)}, stored {len(ids)}")

# It restarts and serves again; events acknowledged before the SIGKILL are recognised as
# duplicates after the restart (dedup state rebuilt from the snapshot and the log).
proc, port = start()
st, body, _ = post(port, "/ingest/events", '{"user":"after"}', {"Content-Type": "application/json"})
check(st == 202, "ingests after the restart")
resend = sorted(acked)[:200]
body = "".join(json.dumps({"user": "r", "id": i}) + "\n" for i in resend)
st, resp, _ = post(port, "/ingest/events", body, nd)
res = json.loads(resp)
check(st == 202 and res.get("duplicates") == 200 and res["accepted"] == 0,
      f"re-sent acknowledged events are duplicates after a crash and restart: {resp}")
proc.send_signal(signal.SIGTERM)
proc.wait(timeout=30)
shutil.rmtree(tmp, ignore_errors=True)
finish("ingest_http")
