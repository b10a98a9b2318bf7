#!/usr/bin/env python3
"""Writes the OpenAPI document of Spate's HTTP API to stdout: python3 scripts/gen_openapi.py > src/server/web/openapi.json.

src/server/web/openapi.json is built into the binary (GET /openapi.json); edit this script, not the JSON.
tests/e2e/test_openapi.py checks that the committed JSON is this script's output."""
import json
def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def resp(desc, schema=None, ctype="application/json", headers=None):
    r = {"description": desc}
    if schema is not None:
        r["content"] = {ctype: {"schema": schema}}
    if headers: r["headers"] = headers
    return r
def err(desc): return resp(desc, ref("Error"))
def lerr(desc): return {"$ref": "#/components/responses/LogError"} if desc is None else err(desc)
RETRY = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
TEXT = {"type": "string"}
def q(name, desc, required=True, schema=None):
    return {"name": name, "in": "query", "required": required, "description": desc, "schema": schema or {"type": "string"}}
def qi(name, desc, required=True, minimum=None):
    s = {"type": "integer"}
    if minimum is not None: s["minimum"] = minimum
    return q(name, desc, required, s)
def pth(name, desc): return {"name": name, "in": "path", "required": True, "description": desc, "schema": {"type": "string"}}
BIN = "application/x-spate-log"

ingest_body = {"required": True, "description": "One JSON object, a JSON array of objects, or NDJSON (one object per line). "
               "`Content-Encoding: gzip` or `zstd` is accepted; `max_body_bytes` applies after decompression.",
               "content": {"application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
                                                 "example": {"user_id": "u1", "action": "click", "timestamp": "2026-12-03T10:00:00Z"}},
                           "application/x-ndjson": {"schema": {"type": "string"}, "example": "{\"user_id\":\"u1\"}\n{\"user_id\":\"u2\"}\n"}}}
ingest_responses = {
    "202": resp("Processed: every event of the request is counted once in accepted, rejected, duplicates, dead_lettered or dropped", ref("IngestResult")),
    "400": resp("The body as a whole is unusable (empty, broken array, corrupt gzip), or all_or_nothing and a bad event", ref("IngestResult")),
    "404": err("Unknown topic, or no topic and no default_topic"),
    "413": err("Body over max_body_bytes (before or after decompression)"),
    "415": err("Unsupported Content-Type or Content-Encoding"),
    "429": resp("The ingestion queue is full; nothing of the request was accepted", ref("Error"), headers=RETRY),
    "503": resp("Stopping, the log failed, or the dedup store is unreachable", ref("Error"), headers=RETRY),
    "507": resp("The log's disk is full: nothing more is stored until space is freed", ref("Error"), headers=RETRY),
}
log_errors = {
    "400": err("A missing or malformed parameter or body"),
    "404": err("Unknown topic or partition"),
    "409": err("Already exists, or the producer was fenced"),
    "416": err("Offset out of range"),
    "503": err("The log is unavailable or the API is stopping"),
    "507": err("The log's disk is full"),
}
def log_op(summary, params=(), body=None, ok=None, extra=None, tag="Log API"):
    op = {"tags": [tag], "summary": summary, "parameters": list(params), "responses": {**(ok or {"200": resp("OK", TEXT, "text/plain")}), **log_errors, **(extra or {})}}
    if body: op["requestBody"] = {"required": True, "description": body, "content": {BIN: {"schema": {"type": "string", "format": "binary"}}}}
    return op

paths = {
  "/health": {"get": {"tags": ["Admin"], "summary": "Liveness: 200 while the process runs", "operationId": "health",
                      "responses": {"200": resp("Running", ref("Health"))}}},
  "/ready": {"get": {"tags": ["Admin"], "summary": "Readiness: 200 once every component has started", "operationId": "ready",
                     "responses": {"200": resp("Ready", ref("Ready")), "503": resp("Starting, or a dependency (the log, Kafka) is unavailable", ref("Ready"))}}},
  "/metrics": {"get": {"tags": ["Admin"], "summary": "Prometheus metrics (text exposition format 0.0.4)", "operationId": "metrics",
                       "responses": {"200": resp("The metrics", TEXT, "text/plain")}}},
  "/status": {"get": {"tags": ["Admin"], "summary": "The state of the process: components, topics, processors, analytics (spate run), or components, replicas and operations (spate orchestrate)",
                      "operationId": "status", "responses": {"200": resp("Status", {"anyOf": [ref("RunStatus"), ref("OrchestratorStatus")]})}}},
  "/openapi.json": {"get": {"tags": ["Admin"], "summary": "This document (only the endpoints this server serves)", "operationId": "openapi",
                            "responses": {"200": resp("OpenAPI 3.1 document", {"type": "object", "required": ["openapi", "paths"]})}}},
  "/docs": {"get": {"tags": ["Admin"], "summary": "This document rendered as HTML (no external assets)", "operationId": "docs",
                    "responses": {"200": resp("HTML page", TEXT, "text/html")}}},
  "/ui": {"get": {"tags": ["Admin"], "summary": "The built-in web UI: throughput, latency, lag, health, window results, alerts (no external assets)", "operationId": "ui",
                  "responses": {"200": resp("HTML page", TEXT, "text/html")}}},
  "/ui/data": {"get": {"tags": ["Admin"], "summary": "The web UI's data: the latest window results of each analytics job and the latest alerts (anomalies included) with their evidence",
                       "operationId": "uiData", "parameters": [qi("results", "how many latest results per job (default 20, at most 500)", False, 0),
                                                                qi("alerts", "how many latest alerts (default 50, at most 500)", False, 0)],
                       "responses": {"200": resp("Snapshot", ref("UiData")), "400": err("A parameter is not a number")}}},
  "/ingest/{topic}": {"post": {"tags": ["Ingestion"], "summary": "Ingest events into a topic", "operationId": "ingestTopic",
                               "parameters": [pth("topic", "the topic (must exist unless ingestion.allow_any_topic)")],
                               "requestBody": ingest_body, "responses": ingest_responses}},
  "/ingest": {"post": {"tags": ["Ingestion"], "summary": "Ingest events into ingestion.default_topic (or the topic routing rules choose)", "operationId": "ingest",
                       "requestBody": ingest_body, "responses": ingest_responses}},
  "/webhooks/{name}": {"post": {"tags": ["Ingestion"], "summary": "A webhook source: the body is verified (HMAC-SHA256, with replay protection in the timestamped style) and ingested",
                                "operationId": "webhook", "parameters": [pth("name", "the webhook source's name in the pipeline file"),
                                  {"name": "x-hub-signature-256", "in": "header", "required": False, "description": "github style: sha256=HEX (HMAC-SHA256 of the body)", "schema": {"type": "string"}},
                                  {"name": "webhook-signature", "in": "header", "required": False, "description": "timestamped style: t=UNIX_SECONDS,v1=HEX (HMAC-SHA256 of T.BODY; several v1 allowed)", "schema": {"type": "string"}}],
                                "requestBody": ingest_body,
                                "responses": {**ingest_responses, "401": err("Signature invalid, missing or replayed")}}},
  "/log/v1/topics": {"get": log_op("List topics", ok={"200": resp("u32 count, then each name (u32 length + bytes)", {"type": "string", "format": "binary"}, BIN)}),
                     "post": log_op("Create (409 if it exists) or ensure a topic", [q("ensure", "1: succeed when it exists with the same spec", False, {"type": "string", "enum": ["0", "1"]})], "a TopicSpec")},
  "/log/v1/topic": {"get": log_op("Describe a topic", [q("topic", "topic name")], ok={"200": resp("TopicInfo", {"type": "string", "format": "binary"}, BIN)})},
  "/log/v1/append": {"post": log_op("Append records (durable under the owner's fsync policy before the answer)", [q("topic", "topic"), qi("partition", "partition", minimum=0)], "records",
                                    ok={"200": resp("The first offset", TEXT, "text/plain")})},
  "/log/v1/fetch": {"get": log_op("Fetch records", [q("topic", "topic"), qi("partition", "partition", minimum=0), qi("offset", "first offset"),
                                   qi("max_records", "at most this many records"), qi("max_bytes", "at most about this many bytes"),
                                   qi("wait_ms", "wait up to this long for data (capped at max_wait_ms)"),
                                   q("isolation", "committed: hide records of open and aborted transactions", False, {"type": "string", "enum": ["committed", "uncommitted"]})],
                                  ok={"200": resp("A fetch result: records, high watermark, last stable offset", {"type": "string", "format": "binary"}, BIN)})},
  "/log/v1/offset_for_timestamp": {"get": log_op("The first offset with a timestamp at or after ts", [q("topic", "topic"), qi("partition", "partition", minimum=0), qi("ts", "epoch milliseconds")])},
  "/log/v1/commit": {"post": log_op("Commit a consumer group's offsets", [q("group", "consumer group"), q("topic", "topic")], "offsets (partition → next offset)")},
  "/log/v1/committed": {"get": log_op("A consumer group's committed offset", [q("group", "consumer group"), q("topic", "topic"), qi("partition", "partition", minimum=0)],
                                      extra={"204": {"description": "Never committed"}})},
  "/log/v1/txn": {"post": log_op("Open a transaction session (fences older producers with the same id)", [q("id", "transactional id")],
                                 ok={"200": resp("The session id", TEXT, "text/plain")})},
  "/log/v1/txn/{session}": {"delete": log_op("Drop the session (aborts an open transaction)", [pth("session", "session id")])},
  **{f"/log/v1/txn/{{session}}/{op}": {"post": log_op(s, [pth("session", "session id")] + p, b,
        extra={"410": err("Unknown session: the log's owner restarted or the session was idle longer than the transaction timeout")})}
     for op, s, p, b in [("begin", "Begin a transaction", [], None), ("commit", "Commit the transaction", [], None), ("abort", "Abort the transaction", [], None),
                         ("append", "Append records in the transaction", [q("topic", "topic"), qi("partition", "partition", minimum=0)], "records"),
                         ("offsets", "Commit a group's offsets with the transaction", [q("group", "consumer group"), q("topic", "topic")], "offsets")]},
}
ORCH = "Orchestrator"
def orch(summary, params, extra=None):
    return {"post": {"tags": [ORCH], "summary": summary, "parameters": [pth("component", "component name in the deployment file")] + params,
                     "responses": {"202": resp("Accepted; the outcome appears in /status → operations", ref("Operation")),
                                   "400": err("A bad argument"), "404": err("Unknown component"), **(extra or {})}}}
paths["/deploy/{component}"] = orch("(Re)deploy a component", [])
paths["/heal/{component}"] = orch("Restart a component's unhealthy replicas", [])
paths["/scale/{component}"] = orch("Scale a component", [qi("replicas", "the replica count", minimum=0)])

schemas = {
  "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string", "description": "what went wrong and what to do"}}},
  "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
  "Ready": {"type": "object", "required": ["status"], "properties": {"status": {"enum": ["ready", "starting", "unavailable"]}, "reason": {"type": "string"}}},
  "IngestResult": {"type": "object", "required": ["accepted", "rejected", "errors"], "properties": {
      "error": {"type": "string"}, "accepted": {"type": "integer", "minimum": 0}, "rejected": {"type": "integer", "minimum": 0},
      "duplicates": {"type": "integer", "minimum": 0}, "dead_lettered": {"type": "integer", "minimum": 0}, "dropped": {"type": "integer", "minimum": 0},
      "errors": {"type": "array", "items": {"type": "object", "required": ["index", "reason"], "properties": {"index": {"type": "integer", "minimum": 0}, "reason": {"type": "string"}}}}}},
  "Operation": {"type": "object", "required": ["operation", "status", "component"], "properties": {
      "operation": {"type": "string"}, "status": {"const": "pending"}, "component": {"type": "string"}, "replicas": {"type": "integer"}}},
  "RunStatus": {"type": "object", "required": ["name", "version", "ready", "topics"], "properties": {
      "name": {"type": "string"}, "version": {"type": "string"}, "ready": {"type": "boolean"}, "uptime_seconds": {"type": "number"},
      "port": {"type": "integer"},
      "components": {"type": "array", "items": {"type": "object", "required": ["name", "state"], "properties": {"name": {"type": "string"}, "kind": {"type": "string"}, "state": {"type": "string"}}}},
      "topics": {"type": "array", "items": {"type": "object", "required": ["name", "partitions"], "properties": {
          "name": {"type": "string"}, "partitions": {"type": "integer", "minimum": 0},
          "partition_info": {"type": "array", "items": {"type": "object", "required": ["partition", "start_offset", "end_offset"], "properties": {
              "partition": {"type": "integer"}, "start_offset": {"type": "integer"}, "end_offset": {"type": "integer"}, "size_bytes": {"type": "integer"}}}}}}},
      "processors": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "lag": {"type": "number"}, "paused": {"type": "boolean"}}}},
      "analytics": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "events": {"type": "integer"}, "active_windows": {"type": "integer"}}}}}},
  "OrchestratorStatus": {"type": "object", "required": ["deployment", "version", "components", "operations"], "properties": {
      "deployment": {"type": "string"}, "version": {"type": "string"}, "pipeline": {"type": "string"}, "deployed": {"type": "boolean"},
      "total_throughput": {"type": "number"},
      "components": {"type": "array", "items": {"type": "object", "required": ["name", "type", "replicas", "ready_replicas", "health"], "properties": {
          "name": {"type": "string"}, "type": {"type": "string"}, "replicas": {"type": "integer"}, "ready_replicas": {"type": "integer"},
          "health": {"type": "number", "description": "1 healthy, 0 not"},
          "scaling": {"type": "object"},
          "instances": {"type": "array", "items": {"type": "object", "required": ["index", "state"], "properties": {
              "index": {"type": "integer"}, "pid": {"type": "integer"}, "port": {"type": "integer"}, "state": {"type": "string"}, "restarts": {"type": "integer"}}}}}}},
      "operations": {"type": "array", "items": {"type": "object", "required": ["id", "operation", "component", "status"], "properties": {
          "id": {"type": "string"}, "operation": {"type": "string"}, "component": {"type": "string"}, "status": {"type": "string"}, "detail": {"type": "string"}}}}}},
  "UiData": {"type": "object", "required": ["time_ms", "results", "alerts"], "properties": {
      "time_ms": {"type": "integer"}, "name": {"type": "string"},
      "results": {"type": "array", "items": {"type": "object", "required": ["job", "topic", "rows"], "properties": {
          "job": {"type": "string"}, "topic": {"type": "string"}, "rows": {"type": "array", "description": "newest first", "items": {"type": "object"}}}}},
      "alerts": {"type": "array", "description": "newest first", "items": ref("Alert")}}},
  "Alert": {"type": "object", "required": ["id", "analytics", "rule", "kind", "severity", "state", "at_ms", "message", "evidence"], "properties": {
      "id": {"type": "string"}, "analytics": {"type": "string"}, "rule": {"type": "string"}, "kind": {"type": "string"},
      "severity": {"type": "string"}, "state": {"enum": ["firing", "resolved"]}, "key": {}, "window_start": {"type": "integer"},
      "window_end": {"type": "integer"}, "at_ms": {"type": "integer"}, "at": {"type": "string"}, "message": {"type": "string"},
      "evidence": {"type": "object"}}},
}
AUTH_401 = {"description": "server.auth is on and the request has no token or an unknown one", "headers": {
    "WWW-Authenticate": {"description": "Bearer realm=\"spate\"", "schema": {"type": "string"}}},
    "content": {"application/json": {"schema": ref("Error")}}}
AUTH_403 = {"description": "server.auth is on and the token lacks the scope this operation needs", "content": {"application/json": {"schema": ref("Error")}}}
OPEN = {("/health", "get"), ("/ready", "get"), ("/webhooks/{name}", "post")}
for path, item in paths.items():
    for method, op in item.items():
        if (path, method) in OPEN:
            op["security"] = []
            continue
        op["responses"].setdefault("401", AUTH_401)
        op["responses"].setdefault("403", AUTH_403)
doc = {"openapi": "3.1.0",
       "info": {"title": "Spate HTTP API", "version": "@SPATE_VERSION@",
                "description": "The HTTP API of `spate run` (ingestion, the admin endpoints, the log API other processes use) and of `spate orchestrate`. "
                               "Each server's /openapi.json lists only the endpoints that server serves; `x-spate-routes` is its live route table."},
       "tags": [{"name": "Ingestion", "description": "Sending events"}, {"name": "Admin", "description": "Health, metrics, status, docs, UI"},
                {"name": "Log API", "description": "The embedded log served to other spate processes (`log: {kind: remote}`); bodies in the binary format of src/server/log_wire.h"},
                {"name": ORCH, "description": "spate orchestrate's admin API"}],
       "security": [{}, {"bearer": []}, {"apiKey": []}],
       "paths": paths, "components": {"schemas": schemas, "securitySchemes": {
           "bearer": {"type": "http", "scheme": "bearer", "description": "a token of server.auth.tokens; scopes: ingest:TOPIC, ingest:*, read, admin (docs/security.md#authentication)"},
           "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the same token in X-API-Key"}}}}
print(json.dumps(doc, indent=1))
