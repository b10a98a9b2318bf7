"""Authentication of the HTTP API (server.auth): bearer tokens with scopes.

A `spate run` with three tokens — `admin` (read from a file), `ingest:orders` (from the
environment through ${VAR}) and `read` — and a signed webhook source. Checked:
  - /health and /ready are open; every other endpoint needs a token;
  - no token or an unknown one: 401 with WWW-Authenticate; a known token without the scope: 403
    naming the scope; `X-API-Key` works like `Authorization: Bearer`;
  - ingest:orders may post to /ingest/orders only (not /ingest/other, not /ingest), read may
    read /metrics, /status, /ui, /openapi.json but not the log API, admin may do everything;
  - a signed webhook needs no token (its signature authenticates it);
  - http_auth_failures_total counts each refusal by reason;
  - the CLI (`consume --log-url`, `tap`, `top`) sends $SPATE_TOKEN and says what to do without;
  - a deployment (`spate orchestrate`) with auth comes up with $SPATE_TOKEN: replicas use the
    log owner's API, the orchestrator's probes read /metrics, its own API takes the tokens
    (scaling needs admin);
  - no token appears in the logs;
  - configuration errors: a short token, an unknown scope, both token and token_file."""
import hashlib
import hmac
import json
import os
import subprocess
import urllib.error
import urllib.request

from spate_e2e import *

tmp = tempdir()
ADMIN = "admin-0123456789abcdef0123456789abcdef"
INGEST = "ingest-fedcba9876543210fedcba987654"
READ = "read-00112233445566778899aabbccdd"
with open(os.path.join(tmp, "admin.token"), "w") as f:
    f.write(ADMIN + "\n")
cfg = os.path.join(tmp, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write(f"""
name: auth-e2e
data_dir: {tmp}/data
log: {{fsync: never}}
server:
  auth:
    tokens:
      - {{name: ops, token_file: {tmp}/admin.token, scopes: [admin]}}
      - {{name: orders-producer, token: "${{INGEST_TOKEN}}", scopes: ["ingest:orders"]}}
      - {{name: dashboards, token: "{READ}", scopes: [read]}}
topics:
  - {{name: orders, partitions: 1}}
  - {{name: other, partitions: 1}}
  - {{name: hooks, partitions: 1}}
ingestion:
  default_topic: other
  sources:
    - {{type: webhook, name: gh, topic: hooks, secret: hook-secret}}
""")
env = dict(os.environ, INGEST_TOKEN=INGEST)
env.pop("SPATE_TOKEN", None)
port = free_port()
err_path = os.path.join(tmp, "stderr.log")
proc = subprocess.Popen([SPATE, "run", cfg, "--port", str(port), "--no-status-line"], env=env,
                        stdout=subprocess.DEVNULL, stderr=open(err_path, "w"))


def call(method, path, token=None, body=None, headers=None, api_key=False):
    h = dict(headers or {})
    if token:
        h["X-API-Key" if api_key else "Authorization"] = token if api_key else f"Bearer {token}"
    if body is not None:
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


EVENT = b'{"id": 1}'
refused = {"missing": 0, "invalid": 0, "forbidden": 0}
try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "/ready is open and turns 200")
    check(call("GET", "/health")[0] == 200, "/health is open")

    code, hdrs, body = call("POST", "/ingest/orders", body=EVENT)
    refused["missing"] += 1
    check(code == 401 and "Bearer" in hdrs.get("WWW-Authenticate", "") and "ingest:orders" in body,
          f"no token: 401 with WWW-Authenticate and the scope needed: {code} {hdrs} {body}")
    code, _, body = call("POST", "/ingest/orders", token="not-a-known-token-at-all", body=EVENT)
    refused["invalid"] += 1
    check(code == 401 and "unknown token" in body, f"an unknown token: 401: {code} {body}")
    code, _, body = call("POST", "/ingest/orders", token=INGEST, body=EVENT)
    check(code == 202 and json.loads(body)["accepted"] == 1, f"ingest:orders may ingest into orders: {code} {body}")
    code, _, body = call("POST", "/ingest/orders", token=INGEST, body=EVENT, api_key=True)
    check(code == 202, f"X-API-Key works too: {code} {body}")
    for path in ("/ingest/other", "/ingest"):
        code, _, body = call("POST", path, token=INGEST, body=EVENT)
        refused["forbidden"] += 1
        want = "ingest:other" if path == "/ingest/other" else "ingest:*"
        check(code == 403 and want in body and "orders-producer" in body,
              f"ingest:orders may not post to {path}: 403 naming {want}: {code} {body}")
    code, _, body = call("POST", "/ingest", token=ADMIN, body=EVENT)
    check(code == 202, f"admin may ingest anywhere: {code} {body}")

    for path in ("/metrics", "/status", "/ui", "/openapi.json", "/docs", "/ui/data"):
        code, _, _ = call("GET", path)
        refused["missing"] += 1
        check(code == 401, f"GET {path} without a token: 401 ({code})")
        code, _, _ = call("GET", path, token=READ)
        check(code == 200, f"GET {path} with the read token: 200 ({code})")
    code, _, body = call("GET", "/metrics", token=INGEST)
    refused["forbidden"] += 1
    check(code == 403 and "read" in body, f"the ingest token may not read /metrics: {code} {body}")
    code, _, body = call("GET", "/log/v1/topics", token=READ)
    refused["forbidden"] += 1
    check(code == 403 and "admin" in body, f"the read token may not use the log API: {code} {body}")
    code, _, _ = call("GET", "/log/v1/topics", token=ADMIN)
    check(code == 200, f"admin may use the log API: {code}")

    payload = b'{"action":"opened"}'
    sig = "sha256=" + hmac.new(b"hook-secret", payload, hashlib.sha256).hexdigest()
    code, _, body = call("POST", "/webhooks/gh", body=payload, headers={"X-Hub-Signature-256": sig})
    check(code == 202, f"a signed webhook needs no token: {code} {body}")
    code, _, _ = call("POST", "/webhooks/gh", body=payload, headers={"X-Hub-Signature-256": "sha256=00"})
    check(code == 401, "a badly signed webhook is still refused (by its signature)")

    _, _, metrics = call("GET", "/metrics", token=READ)
    for reason, n in refused.items():
        line = f'http_auth_failures_total{{reason="{reason}"}} {n}'
        check(line in metrics, f"refusals counted: {line} in {[l for l in metrics.splitlines() if 'auth_failures' in l]}")

    # The CLI sends $SPATE_TOKEN.
    url = f"http://127.0.0.1:{port}"
    r = spate("consume", "--log-url", url, "--topic", "orders", "--from-beginning", env=env)
    check(r.returncode != 0 and "SPATE_TOKEN" in r.stderr, f"consume without a token says to set SPATE_TOKEN: {r.returncode} {r.stderr}")
    r = spate("consume", "--log-url", url, "--topic", "orders", "--from-beginning", env=dict(env, SPATE_TOKEN=ADMIN))
    check(r.returncode == 0 and len([l for l in r.stdout.splitlines() if l.strip()]) == 2,
          f"consume with the admin token reads the two events: {r.returncode} {r.stdout} {r.stderr}")
    r = spate("tap", "orders", "--log-url", url, "--from-beginning", "--max", "2", env=dict(env, SPATE_TOKEN=ADMIN), timeout=30)
    check(r.returncode == 0 and r.stdout.count('"id"') == 2, f"tap with the admin token: {r.returncode} {r.stdout} {r.stderr}")
    r = spate("top", "--url", url, "--once", "--interval", "0.2", env=env)
    check(r.returncode == 1 and "SPATE_TOKEN" in r.stderr, f"top without a token says what to do: {r.returncode} {r.stderr}")
    r = spate("top", "--url", url, "--once", "--interval", "0.2", env=dict(env, SPATE_TOKEN=READ))
    check(r.returncode == 0 and "ingestion" in r.stdout, f"top with the read token: {r.returncode} {r.stdout} {r.stderr}")
finally:
    proc.terminate()
    proc.wait(timeout=60)
log = open(err_path).read()
check("authentication on: 3 token(s)" in log, f"the log says authentication is on: {log[:600]}")
for t in (ADMIN, INGEST, READ):
    check(t not in log, "no token appears in the log")

# ---------------------------------------------------------------- a deployment with auth
# The orchestrator and every replica it starts share the pipeline's tokens: $SPATE_TOKEN (admin)
# is inherited by the replicas (their RemoteLog calls to the log owner) and used by the
# orchestrator's metrics probes; the orchestrator's own API takes the same tokens.
orch_port, ingest_port = free_port(), free_port()
with open(os.path.join(tmp, "pipeline2.yaml"), "w") as f:
    f.write(f"""
name: auth-orch
data_dir: {tmp}/data2
server:
  auth:
    tokens:
      - {{name: ops, token: "{ADMIN}", scopes: [admin]}}
      - {{name: orders-producer, token: "{INGEST}", scopes: ["ingest:orders"]}}
      - {{name: dashboards, token: "{READ}", scopes: [read]}}
topics:
  - {{name: orders, partitions: 1}}
  - {{name: out, partitions: 1}}
processors:
  - {{name: copy, inputs: [orders], output: out, steps: [{{filter: 'true'}}]}}
""")
with open(os.path.join(tmp, "deployment.yaml"), "w") as f:
    f.write(f"""
name: auth-orch
pipeline: pipeline2.yaml
state_dir: {tmp}/state
server: {{port: {orch_port}}}
monitor: {{interval: 500ms, probe_timeout: 2s}}
components:
  - {{name: ingestion, type: ingestion, port: {ingest_port}}}
  - {{name: proc, type: processor, processors: [copy]}}
""")
orch = subprocess.Popen([SPATE, "orchestrate", os.path.join(tmp, "deployment.yaml")], env=dict(env, SPATE_TOKEN=ADMIN),
                        stdout=open(os.path.join(tmp, "orch.log"), "w"), stderr=subprocess.STDOUT)
try:
    check(wait_for(lambda: http_get(orch_port, "/ready")[0] == 200, timeout=90),
          "the deployment comes up: replicas reach the log owner with $SPATE_TOKEN")
    port = orch_port
    code, _, _ = call("GET", "/status")
    check(code == 401, f"the orchestrator's /status needs a token: {code}")
    code, _, body = call("POST", "/scale/proc?replicas=1", token=READ)
    check(code == 403 and "admin" in body, f"scaling needs admin: {code} {body}")
    code, _, body = call("POST", "/scale/proc?replicas=1", token=ADMIN)
    check(code == 202, f"admin may scale: {code} {body}")
    port = ingest_port
    code, _, body = call("POST", "/ingest/orders", token=INGEST, body=b'{"n": 42}')
    check(code == 202, f"ingest through the ingestion replica: {code} {body}")
    port = orch_port

    def status():
        c, _, b = call("GET", "/status", token=READ)
        return json.loads(b) if c == 200 else None
    log_port = [i["port"] for c in status()["components"] if c["name"] == "log" for i in c["instances"]][0]
    got = wait_for(lambda: (r := spate("consume", "--log-url", f"http://127.0.0.1:{log_port}", "--topic", "out",
                                       "--from-beginning", env=dict(env, SPATE_TOKEN=ADMIN))).returncode == 0
                   and '"n"' in r.stdout and r, timeout=30, interval=0.5)
    check(got, "the processor replica copied the event through the authenticated log API")
    probed = wait_for(lambda: (st := status()) and all(i.get("lag") is not None for c in st["components"]
                                                       if c["name"] == "proc" for i in c["instances"]) and st,
                      timeout=30, interval=0.5)
    check(probed, f"the orchestrator's metrics probes pass authentication (lag known): {status()}")
    r = spate("top", "--url", f"http://127.0.0.1:{orch_port}", "--once", "--interval", "0.2", env=dict(env, SPATE_TOKEN=READ))
    check(r.returncode == 0 and "proc" in r.stdout, f"top on the orchestrator with the read token: {r.stdout} {r.stderr}")
finally:
    orch.terminate()
    orch.wait(timeout=120)
check(ADMIN not in open(os.path.join(tmp, "orch.log")).read(), "no token in the orchestrator's log")

# Configuration errors, with file:line:col.
def bad(tokens_yaml):
    p = os.path.join(tmp, "bad.yaml")
    with open(p, "w") as f:
        f.write(f"name: bad\ndata_dir: {tmp}/bad\nserver:\n  auth:\n    tokens:\n{tokens_yaml}")
    return spate("validate", p, env=env)


r = bad("      - {name: a, token: short, scopes: [admin]}\n")
check(r.returncode == 2 and "bad.yaml:6:9:" in r.stderr and "shorter than 16" in r.stderr, f"a short token: {r.stderr}")
r = bad(f"      - {{name: a, token: {ADMIN}, scopes: [superuser]}}\n")
check(r.returncode == 2 and 'unknown scope "superuser"' in r.stderr, f"an unknown scope: {r.stderr}")
r = bad(f"      - {{name: a, token: {ADMIN}, token_file: {tmp}/admin.token, scopes: [admin]}}\n")
check(r.returncode == 2 and "exactly one of token" in r.stderr, f"token and token_file: {r.stderr}")
check(ADMIN not in r.stderr, "the error does not quote the token")
finish("test_auth")
