"""Secrets never appear in logs, /status, /metrics (labels included), /ui/data, /openapi.json or
error messages.

A pipeline holds one distinct secret in every place a secret can be: notifier URLs and headers
(webhook, Slack), an SMTP password, a webhook source's signing secret, PostgreSQL and Redis
passwords in sink URLs, an HTTP sink's Authorization header, a PostgreSQL source's password, and
an HMAC key of a hash transform. Every downstream is unreachable (a closed port), so the
processes log connection errors, breakers open and notifiers fail — the paths where a URL is most
tempting to print. The test then sends events (good, bad, a forged webhook), waits for the alert
and the failures, and greps everything Spate said for each secret: its stdout and stderr, every
admin endpoint's answer, the HTTP error bodies, and `spate validate`'s error listing of the
same file with a mistake in it. A control secret that is meant to be shown (a topic name) must
be found, so the grep is not a no-op."""
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from spate_e2e import *

tmp = tempdir()
closed = free_port()  # nothing listens here: every downstream is refused
SECRETS = {
    "notifier_url": "s3cr3t-notifier-path-7f1e",
    "notifier_header": "s3cr3t-bearer-9a2c",
    "slack_url": "s3cr3t-slack-hook-44d0",
    "smtp_password": "s3cr3t-smtp-pass-1b7e",
    "webhook_secret": "s3cr3t-webhook-key-c0de",
    "pg_sink_password": "s3cr3t-pg-sink-5e5e",
    "redis_password": "s3cr3t-redis-pass-a11a",
    "http_sink_token": "s3cr3t-http-sink-0f0f",
    "pg_source_password": "s3cr3t-pg-src-7777",
    "hash_key": "s3cr3t-hmac-key-2b2b",
}
CONTROL = "visible_topic_name_e2e"  # not a secret: it must show up in /status

pipeline = f"""
name: secrets-e2e
data_dir: {tmp}/data
log: {{fsync: never}}
topics:
  - {{name: {CONTROL}, partitions: 1}}
  - {{name: out, partitions: 1}}
  - {{name: dead, partitions: 1}}
  - {{name: hooks, partitions: 1}}
  - {{name: rows, partitions: 1}}
  - {{name: alerts, partitions: 1}}
ingestion:
  default_topic: {CONTROL}
  dead_letter_topic: dead
  transforms:
    - {{hash: email, key: "${{HASH_KEY}}"}}
  sources:
    - {{type: webhook, name: gh, topic: hooks, secret: "${{WEBHOOK_SECRET}}"}}
    - type: postgres
      name: pgsrc
      topic: rows
      url: "postgresql://spate:${{PG_SOURCE_PASSWORD}}@127.0.0.1:{closed}/shop"
      query: SELECT id FROM t WHERE id > $1 ORDER BY id LIMIT 10
      cursor_column: id
processors:  # one sink each, so that every one of them fails on its own
  - name: pgsink
    inputs: [{CONTROL}]
    steps:
      - {{type: sink, kind: postgres, url: "postgresql://app:${{PG_SINK_PASSWORD}}@127.0.0.1:{closed}/shop",
         table: t, columns: {{doc: $}}, connect_timeout: 500ms}}
  - name: redissink
    inputs: [{CONTROL}]
    steps:
      - {{type: sink, kind: redis, url: "redis://:${{REDIS_PASSWORD}}@127.0.0.1:{closed}/0", command: set, timeout: 500ms}}
  - name: httpsink
    inputs: [{CONTROL}]
    steps:
      - {{type: sink, kind: http, url: "http://127.0.0.1:{closed}/in", headers: {{Authorization: "Bearer ${{HTTP_SINK_TOKEN}}"}},
         timeout: 500ms}}
analytics:
  - name: counts
    inputs: [{CONTROL}]
    output: out
    alerts_topic: alerts
    time: {{processing_time: true}}
    window: {{type: tumbling, size: 1s}}
    aggregations: [{{type: count}}]
    patterns:
      - {{name: any_events, type: threshold, condition: 'count > 0', severity: critical}}
notifiers:
  - {{name: hook, type: webhook, url: "http://127.0.0.1:{closed}/${{NOTIFIER_URL}}",
     headers: {{Authorization: "Bearer ${{NOTIFIER_HEADER}}"}}, retry: {{max_attempts: 2, initial_backoff: 100ms}}}}
  - {{name: slack, type: slack, url: "http://127.0.0.1:{closed}/services/${{SLACK_URL}}", retry: {{max_attempts: 1}}}}
  - name: mail
    type: email
    retry: {{max_attempts: 1}}
    smtp: {{host: 127.0.0.1, port: {closed}, from: spate@example.com, to: ops@example.com, username: spate,
           password: "${{SMTP_PASSWORD}}"}}
"""
cfg = os.path.join(tmp, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write(pipeline)
env = dict(os.environ, **{k.upper(): v for k, v in SECRETS.items()})
env.pop("KAFKA_BOOTSTRAP_SERVERS", None)

said = {}  # where -> text Spate produced

r = subprocess.run([SPATE, "validate", cfg], capture_output=True, text=True, env=env, timeout=60)
check(r.returncode == 0, f"the pipeline validates: {r.stdout}{r.stderr}")
said["validate"] = r.stdout + r.stderr
# The same file with mistakes next to the secrets: the error listing must not quote them.
bad = pipeline.replace("command: set", "command: sett").replace("type: webhook, url:", "type: webhook, urll:")
bad_cfg = os.path.join(tmp, "bad.yaml")
with open(bad_cfg, "w") as f:
    f.write(bad)
r = subprocess.run([SPATE, "validate", bad_cfg], capture_output=True, text=True, env=env, timeout=60)
check(r.returncode == 2 and "notifiers[0]" in r.stderr, f"the broken copy is refused: {r.stderr}")
said["validate errors"] = r.stdout + r.stderr
# Secrets given inline in the file (not through ${VAR}) and a malformed URL holding one.
inline = pipeline.replace("${NOTIFIER_URL}", SECRETS["notifier_url"]).replace(
    f"redis://:${{REDIS_PASSWORD}}@127.0.0.1:{closed}/0", f"redis://:{SECRETS['redis_password']}@127.0.0.1:notaport/0")
inline_cfg = os.path.join(tmp, "inline.yaml")
with open(inline_cfg, "w") as f:
    f.write(inline)
r = subprocess.run([SPATE, "validate", inline_cfg], capture_output=True, text=True, env=env, timeout=60)
said["validate inline"] = r.stdout + r.stderr
check(r.returncode == 2 and "steps[0].url" in r.stderr, f"the malformed Redis URL is reported: {r.stderr}")

port = free_port()
out_path, err_path = os.path.join(tmp, "stdout.log"), os.path.join(tmp, "stderr.log")
proc = subprocess.Popen([SPATE, "run", cfg, "--port", str(port), "--no-status-line"], env=env,
                        stdout=open(out_path, "w"), stderr=open(err_path, "w"))
try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=60), "spate run is ready")

    def post(path, body, headers=None):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    for i in range(30):  # over 3 s: processing-time windows close and the threshold alert fires
        code, body = post("/ingest", json.dumps({"id": i, "email": f"u{i}@example.com"}).encode())
        check(code == 202, f"ingest: {code} {body}")
        time.sleep(0.1)
    said["ingest bad"] = post("/ingest", b'{"id": ')[1]
    payload = b'{"action":"opened"}'
    wrong = "sha256=" + hmac.new(b"not-the-secret", payload, hashlib.sha256).hexdigest()
    code, body = post("/webhooks/gh", payload, {"X-Hub-Signature-256": wrong})
    check(code == 401, f"a forged webhook is refused: {code}")
    said["webhook 401"] = body
    good = "sha256=" + hmac.new(SECRETS["webhook_secret"].encode(), payload, hashlib.sha256).hexdigest()
    code, body = post("/webhooks/gh", payload, {"X-Hub-Signature-256": good})
    check(code == 202, f"a signed webhook is accepted: {code} {body}")

    # Wait for the failures to happen: each sink's flush, each notifier's delivery, the source.
    expect = [r"pgsink.*flush failed", r"redissink.*flush failed", r"httpsink.*flush failed",
              r"notifier hook: alert .* not delivered", r"notifier slack: alert .* not delivered",
              r"notifier mail: alert .* not delivered", r"postgres source pgsrc: connecting"]
    def failures_seen():
        text = open(err_path).read() + open(out_path).read()
        return all(re.search(e, text) for e in expect)
    ok = wait_for(failures_seen, timeout=90, interval=0.5)
    text = open(err_path).read() + open(out_path).read()
    check(ok, f"every downstream failed and said so: missing {[e for e in expect if not re.search(e, text)]}")
    time.sleep(1.5)  # a few more retries and source polls into the logs
    for path in ("/status", "/metrics", "/ui/data", "/openapi.json", "/ready", "/health"):
        said[path] = http_get(port, path)[1]
    code, said["log api"] = http_get(port, "/log/v1/topic?topic=nosuch")
finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
said["stdout"] = open(out_path).read()
said["stderr"] = open(err_path).read()

check(CONTROL in said["/status"], "control: what is not secret is shown (the grep can find things)")
check(re.search(r"127\.0\.0\.1:%d" % closed, said["stderr"]), "control: the failures were logged, with the downstream's address")
for where, text in said.items():
    for name, secret in SECRETS.items():
        check(secret not in text, f"the {name} secret does not appear in {where}: "
              f"...{text[max(0, text.find(secret) - 200):text.find(secret) + 60]}...")
finish("test_secrets")
