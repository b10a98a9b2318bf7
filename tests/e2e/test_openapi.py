"""GET /openapi.json and GET /docs of every server Spate runs.

Servers: a `spate run` whose pipeline has every kind of route (ingestion, a webhook source, the
log API, the admin and web endpoints), and `spate orchestrate examples/deployment.yaml` with the
`spate run` replicas it starts (ingestion, processor, analytics roles), each a different route
table. For each server:
  - the document is a valid OpenAPI 3.1 document (@apidevtools/swagger-parser from npm,
    tests/e2e/web_tools; a broken copy must be refused, so the validation is not a no-op);
  - every route the server registers (`x-spate-routes`, its live route table) is documented
    with its method, and every documented operation is served by one of them (no stale paths);
  - the routes are the ones this kind of server must have (so `x-spate-routes` is not empty or
    made up): /ingest only where ingestion runs, /webhooks/NAME for the webhook source, the
    orchestrator's /scale/, /heal/, /deploy/ only on the orchestrator.
Then every documented operation of the full `spate run` and of the orchestrator is called for
real (path and query parameters filled in): the status must be one the document lists for it,
and a JSON answer must match the documented schema ($refs inlined, checked by Ajv's JSON Schema
2020-12 validator from npm; a wrong body must be refused).
/docs must be a self-contained HTML page (no external URL in any src/href/fetch)."""
import copy
import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request

from spate_e2e import *

ROOT = os.getcwd()
tmp = tempdir()
node, node_dir = node_tools(os.path.join(ROOT, "tests", "e2e", "web_tools"), "test_openapi")
WEB_TOOLS = os.path.join(ROOT, "tests", "e2e", "web_tools")

# ---------------------------------------------------------------- the document's source
gen = subprocess.run(["python3", os.path.join(ROOT, "scripts", "gen_openapi.py")], capture_output=True, text=True, timeout=60)
with open(os.path.join(ROOT, "src", "server", "web", "openapi.json")) as f:
    check(gen.returncode == 0 and gen.stdout == f.read(),
          "src/server/web/openapi.json is the output of scripts/gen_openapi.py (regenerate it)")

# ---------------------------------------------------------------- the servers
pipeline = os.path.join(tmp, "pipeline.yaml")
with open(pipeline, "w") as f:
    f.write(f"""
name: openapi-e2e
data_dir: {tmp}/run-data
log: {{fsync: never}}
topics:
  - {{name: events, partitions: 2}}
  - {{name: hooks, partitions: 1}}
  - {{name: counts, partitions: 1}}
  - {{name: alerts, partitions: 1}}
ingestion:
  default_topic: events
  timestamp_field: ts
  sources:
    - {{type: webhook, name: gh, topic: hooks, secret: openapi-secret}}
analytics:
  - name: per_user
    inputs: [events]
    output: counts
    alerts_topic: alerts
    key_by: [user]
    window: {{type: tumbling, size: 10s}}
    aggregations: [{{type: count}}]
""")
run_port = free_port()
run = subprocess.Popen([SPATE, "run", pipeline, "--port", str(run_port), "--no-status-line"],
                       stdout=open(os.path.join(tmp, "run.log"), "w"), stderr=subprocess.STDOUT)
orch_port, ingest_port = free_port(), free_port()
env = dict(os.environ, SPATE_DATA_DIR=f"{tmp}/data", SPATE_STATE_DIR=f"{tmp}/state",
           SPATE_PORT=str(ingest_port), SPATE_ORCHESTRATOR_PORT=str(orch_port))
env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
orch = subprocess.Popen([SPATE, "orchestrate", os.path.join(ROOT, "examples", "deployment.yaml")], env=env,
                        stdout=open(os.path.join(tmp, "orchestrator.log"), "w"), stderr=subprocess.STDOUT)


def request(port, method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def template_serves(route, tmpl):
    """The test's own reading of the matching rule (web.h): prefix routes serve every template
    that starts with them; exact routes match segment by segment, {x} matching one segment."""
    if route["prefix"]:
        return tmpl.startswith(route["path"])
    a, b = tmpl.split("/"), route["path"].split("/")
    return len(a) == len(b) and all((x.startswith("{") and x.endswith("}") and y) or x == y for x, y in zip(a, b))


def validate_with_node(doc, name):
    p = os.path.join(tmp, name + ".json")
    with open(p, "w") as f:
        json.dump(doc, f)
    r = subprocess.run([node, os.path.join(WEB_TOOLS, "openapi_validate.js"), p],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, SPATE_WEB_NODE_DIR=node_dir))
    return r.returncode, r.stdout + r.stderr


def check_document(port, what, must_have, must_not_have=()):
    code, _, body = request(port, "GET", "/openapi.json")
    if not check(code == 200, f"{what}: GET /openapi.json answers 200: {code}"):
        return None
    doc = json.loads(body)
    rc, out = validate_with_node(doc, what)
    check(rc == 0, f"{what}: the document is valid OpenAPI ({out.strip()})")
    check(doc.get("openapi", "").startswith("3."), f"{what}: OpenAPI 3: {doc.get('openapi')}")
    routes = doc.get("x-spate-routes", [])
    paths = doc.get("paths", {})
    for r in routes:
        documented = [t for t, item in paths.items() if r["method"].lower() in item and template_serves(r, t)]
        check(documented, f"{what}: the route {r['method']} {r['path']}{'*' if r['prefix'] else ''} is documented")
    for t, item in paths.items():
        for method, op in item.items():
            served = any(r["method"].lower() == method and template_serves(r, t) for r in routes)
            check(served, f"{what}: the documented {method.upper()} {t} is served")
            check(op.get("responses"), f"{what}: {method.upper()} {t} lists its status codes")
    have = {(r["method"], r["path"]) for r in routes}
    for m, p in must_have:
        check((m, p) in have, f"{what}: registers {m} {p}: {sorted(have)}")
    for m, p in must_not_have:
        check((m, p) not in have, f"{what}: does not register {m} {p}")
    return doc


try:
    check(wait_for(lambda: http_get(run_port, "/ready")[0] == 200, timeout=60), "spate run is ready")
    check(wait_for(lambda: http_get(orch_port, "/ready")[0] == 200, timeout=120), "examples/deployment.yaml comes up")

    common = [("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/status"),
              ("GET", "/openapi.json"), ("GET", "/docs")]
    full = check_document(run_port, "spate run", common + [
        ("GET", "/ui"), ("GET", "/ui/data"), ("POST", "/ingest"), ("POST", "/ingest/"), ("POST", "/webhooks/gh"),
        ("GET", "/log/v1/"), ("POST", "/log/v1/"), ("DELETE", "/log/v1/")])
    orch_doc = check_document(orch_port, "orchestrator", common + [
        ("POST", "/scale/"), ("POST", "/heal/"), ("POST", "/deploy/")], [("POST", "/ingest"), ("GET", "/ui")])
    st = json.loads(http_get(orch_port, "/status")[1])
    for c in st["components"]:
        for inst in c.get("instances", []):
            if inst.get("port"):
                doc = check_document(inst["port"], f"replica {c['name']}", common,
                                     [("POST", "/scale/")] + ([] if c["type"] == "ingestion" else [("POST", "/webhooks/gh")]))
    # The ingestion replica's own port (SPATE_PORT; its instance port above is its metrics port).
    check_document(ingest_port, "ingestion replica", common + [("POST", "/ingest"), ("POST", "/ingest/"), ("GET", "/ui")],
                   [("GET", "/log/v1/")])

    # The validation is not a no-op: broken copies are refused.
    if full:
        bad = copy.deepcopy(full)
        bad["paths"]["/health"]["get"]["parameters"] = [{"name": "x", "in": "body"}]
        check(validate_with_node(bad, "bad1")[0] != 0, "swagger-parser refuses a parameter in: body")
        bad = copy.deepcopy(full)
        bad["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
            "$ref": "#/components/schemas/Missing"}
        check(validate_with_node(bad, "bad2")[0] != 0, "swagger-parser refuses a dangling $ref")

    # ------------------------------------------------------------ every operation, for real
    def resolve(schema, doc):
        """The schema with every local $ref inlined (the documents have no cycles)."""
        if isinstance(schema, dict):
            if "$ref" in schema:
                node_ = doc
                for part in schema["$ref"].lstrip("#/").split("/"):
                    node_ = node_[part]
                return resolve(node_, doc)
            return {k: resolve(v, doc) for k, v in schema.items()}
        if isinstance(schema, list):
            return [resolve(v, doc) for v in schema]
        return schema

    SAMPLE = {"topic": "events", "partition": "0", "offset": "0", "max_records": "10", "max_bytes": "65536",
              "wait_ms": "0", "ts": "0", "group": "openapi-e2e", "id": "openapi-txn", "ensure": "1",
              "isolation": "committed", "replicas": "1", "results": "5", "alerts": "5",
              "name": "gh", "session": "0000", "component": "no-such-component"}

    bodies = []  # [{what, schema, body}] for check_bodies.js

    def check_bodies(items):
        p = os.path.join(tmp, "bodies.json")
        with open(p, "w") as f:
            json.dump(items, f)
        r = subprocess.run([node, os.path.join(WEB_TOOLS, "check_bodies.js"), p], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, SPATE_WEB_NODE_DIR=node_dir))
        check(r.returncode == 0, f"check_bodies.js runs: {r.stdout}{r.stderr}")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def exercise(port, doc, what):
        called = 0
        for tmpl, item in doc["paths"].items():
            for method, op in item.items():
                params = op.get("parameters", [])
                path = tmpl
                query = {}
                for p in params:
                    if p["in"] == "path":
                        path = path.replace("{" + p["name"] + "}", urllib.parse.quote(SAMPLE[p["name"]], safe=""))
                    elif p["in"] == "query" and (p.get("required") or p["name"] in ("results", "alerts")):
                        query[p["name"]] = SAMPLE[p["name"]]
                if query:
                    path += "?" + urllib.parse.urlencode(query)
                body, headers = None, {}
                if method in ("post", "put"):
                    rb = op.get("requestBody", {}).get("content", {})
                    if "application/json" in rb:
                        body, headers = json.dumps({"user": "u1", "ts": 1796290000000}).encode(), {"Content-Type": "application/json"}
                    else:
                        body = b""
                code, ctype, answer = request(port, method.upper(), path, body, headers)
                called += 1
                documented = op["responses"]
                check(str(code) in documented or "default" in documented,
                      f"{what}: {method.upper()} {path} answered {code}, one of {sorted(documented)}: {answer[:200]!r}")
                resp = documented.get(str(code), {})
                if "$ref" in resp:
                    resp = resolve(resp, doc)
                content = resp.get("content", {})
                if ctype.startswith("application/json"):
                    check("application/json" in content, f"{what}: {method.upper()} {tmpl} {code} documents its JSON body")
                    if "application/json" in content:
                        bodies.append({"what": f"{what}: {method.upper()} {path} {code}",
                                       "schema": resolve(content["application/json"]["schema"], doc),
                                       "body": json.loads(answer)})
                elif content and code != 204:
                    check(any(ctype.startswith(t.split(";")[0]) for t in content),
                          f"{what}: {method.upper()} {tmpl} {code} answers a documented type: {ctype} vs {sorted(content)}")
        return called

    if full:
        # Something to read back: events for the analytics job and /ui/data.
        code, _, _ = request(run_port, "POST", "/ingest", b'{"user":"u1","ts":1796290000000}', {"Content-Type": "application/json"})
        check(code == 202, f"ingest before the calls: {code}")
        n = exercise(run_port, full, "spate run")
        check(n >= 25, f"every operation of spate run was called: {n}")
        # A wrong body is refused (the check is not a no-op).
        wrong = check_bodies([{"what": "control", "schema": resolve({"$ref": "#/components/schemas/IngestResult"}, full),
                               "body": {"accepted": -1, "errors": []}}])
        check(wrong and len(wrong) == 1, f"Ajv refuses a wrong IngestResult: {wrong}")
    if orch_doc:
        n = exercise(orch_port, orch_doc, "orchestrator")
        check(n >= 9, f"every operation of the orchestrator was called: {n}")
    check(len(bodies) >= 15, f"JSON answers were collected: {len(bodies)}")
    failures = check_bodies(bodies)
    for f in failures or []:
        check(False, f"{f['what']}: the body matches the documented schema: {f['errors']}")

    # ------------------------------------------------------------ /docs is self-contained
    for port, what in ((run_port, "spate run"), (orch_port, "orchestrator")):
        code, ctype, page = request(port, "GET", "/docs")
        page = page.decode()
        check(code == 200 and ctype.startswith("text/html"), f"{what}: GET /docs is HTML: {code} {ctype}")
        check("openapi.json" in page, f"{what}: /docs renders /openapi.json")
        external = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|fetch\(\s*["'](?:https?:)?//|@import""", page)
        check(not external, f"{what}: /docs loads nothing from elsewhere: {external}")
finally:
    if orch.poll() is None:
        orch.send_signal(signal.SIGTERM)
        orch.wait(timeout=120)
    if run.poll() is None:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
check(run.returncode == 0, f"spate run exits 0: {run.returncode}")
if FAILURES:
    for n in ("run.log", "orchestrator.log"):
        p = os.path.join(tmp, n)
        if os.path.exists(p):
            print(f"--- {n}\n" + open(p).read()[-3000:])
finish("test_openapi")
