"""examples/data_quality.yaml as a user runs it: quality-check actions (reject, dead_letter, tag,
drop) and transforms over HTTP, checked in the HTTP answer, the stored events (spate consume),
the dead-letter topic and the metrics."""
import http.client
import json
import os
import subprocess
import time

from spate_e2e import *

tmp = tempdir()
env = dict(os.environ, SPATE_DATA_DIR=os.path.join(tmp, "data"), EMAIL_HASH_KEY="k")
port = free_port()
env["SPATE_PORT"] = str(port)
proc = subprocess.Popen([SPATE, "run", "examples/data_quality.yaml"], env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "spate run becomes ready")

now_ms = int(time.time() * 1000)
events = [
    {"order_id": "o1", "customer": "c1", "amount": 19.9, "quantity": "2", "currency": "EUR",
     "card": "4111111111111111", "cvv": "123", "email": "Ann@Example.com", "cust_name": "Ann"},
    {"customer": "c2", "currency": "EUR"},                                        # 1 rejected
    {"order_id": "o3", "customer": "c3", "currency": "JPY"},                      # 2 rejected
    {"order_id": "o4", "customer": "c4", "currency": "USD", "amount": -5},        # 3 quarantined
    {"order_id": "o5", "customer": "c5", "currency": "USD", "created_at": now_ms - 8 * 86400_000},
    {"order_id": "o6", "customer": "test-bot", "currency": "USD"},                # 5 dropped
    {"order_id": "o7", "customer": "c7", "currency": "GBP", "email": "not-an-email",
     "amount": 2500, "created_at": now_ms},                                       # 6 tagged, large
    {"order_id": "o8", "customer": "c8", "currency": "EUR", "quantity": "lots"},  # 7 cast fails
]
body = "".join(json.dumps(e) + "\n" for e in events)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
c.request("POST", "/ingest/orders", body=body,
          headers={"Content-Type": "application/x-ndjson", "X-Request-Id": "req-42"})
r = c.getresponse()
status, answer = r.status, json.loads(r.read().decode())
check(status == 202, f"202 for a mixed batch, got {status}")
check(answer.get("accepted") == 2, f"2 accepted: {answer}")
check(answer.get("rejected") == 3, f"3 rejected: {answer}")
check(answer.get("dead_lettered") == 2, f"2 dead-lettered: {answer}")
check(answer.get("dropped") == 1, f"1 dropped: {answer}")
reasons = {e["index"]: e["reason"] for e in answer.get("errors", [])}
check(reasons.get(1) == "quality check ids: missing required field order_id", f"reason 1: {reasons}")
check(reasons.get(2) == 'quality check currency: currency = "JPY" is not one of ["EUR","USD","GBP"]',
      f"reason 2: {reasons}")
check(reasons.get(7) == 'transforms[0] (cast quantity): quantity = "lots" cannot be cast to int',
      f"reason 7: {reasons}")

_, metrics = http_get(port, "/metrics")
check('ingestion_quality_failures_total{action="drop",check="not_test"} 1' in metrics,
      "drop counted per check")
check('ingestion_messages_total{source="http",status="dead_lettered"} 2' in metrics,
      "dead-lettered events counted")
proc.terminate()
proc.wait(timeout=30)


def consume(topic):
    out = spate("consume", "-c", "examples/data_quality.yaml", "--topic", topic,
                "--from-beginning", "--with-metadata", env=env)
    check(out.returncode == 0, f"consume {topic}: {out.stderr}")
    return [json.loads(l) for l in out.stdout.splitlines() if l.strip()]


stored = {m["value"]["order_id"]: m for m in consume("orders")}
check(sorted(stored) == ["o1", "o7"], f"stored orders: {sorted(stored)}")
o1 = stored.get("o1", {}).get("value", {})
check(o1.get("quantity") == 2, f"quantity cast to int: {o1}")
check(o1.get("card") == "************1111", f"card masked: {o1}")
check("cvv" not in o1, f"cvv removed: {o1}")
check(o1.get("customer_info") == {"name": "Ann"}, f"cust_name renamed: {o1}")
check(o1.get("channel") == "web", f"default channel: {o1}")
check(len(o1.get("email", "")) == 64 and o1["email"] != "Ann@Example.com", f"email hashed: {o1}")
meta = o1.get("_ingest", {})
check(meta.get("source") == "http" and meta.get("request_id") == "req-42" and
      abs(meta.get("received_at", 0) - now_ms) < 600_000, f"ingest metadata: {meta}")
check(stored.get("o1", {}).get("key") == "c1", "key from customer")
o7 = stored.get("o7", {})
check(o7.get("headers", {}).get("spate.quality") == "email", f"o7 tagged: {o7}")
check(o7.get("value", {}).get("large") is True, f"o7 large: {o7}")

dead = consume("orders_quarantine")
errors = {d["value"].get("order_id", "?"): d["headers"]["error"] for d in dead}
check(set(errors) == {"?", "o3", "o4", "o5", "o8"}, f"dead letters: {errors}")
check(errors.get("o4") == "quality check amount: amount = -5 is out of range [0, 100000]",
      f"o4 reason: {errors}")
check(errors.get("o5", "").startswith("quality check stale: event time ") and
      errors.get("o5", "").endswith(" old, more than 7d"), f"o5 reason: {errors}")
# Dead letters keep the event as it was sent (not transformed).
o8 = [d for d in dead if d["value"].get("order_id") == "o8"]
check(o8 and o8[0]["value"].get("quantity") == "lots", "dead letters keep the original bytes")
finish("test_quality_transforms")
