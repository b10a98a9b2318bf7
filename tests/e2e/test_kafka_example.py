"""examples/kafka.yaml runs on the mock Kafka cluster: orders written to the external topic
orders_raw by kcat are ingested by the Kafka source (a bad one dead-lettered), aggregated per
customer and minute, and the results appear on order_totals and on the Kafka result sink's
order_totals_latest, keyed by window and customer."""
import json
import os
import shutil
import subprocess

from spate_e2e import *
from kafka_fixture import MockKafka

kafka = MockKafka([("orders_raw", 2), ("orders", 4), ("order_totals", 1), ("failed_orders", 1),
                   ("order_totals_latest", 1)])
data = tempdir()
port = free_port()
env = kafka.env(SPATE_DATA_DIR=data, SPATE_PORT=str(port))
proc = subprocess.Popen([SPATE, "run", "examples/kafka.yaml"], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, env=env)


def values(topic, fmt="%s\\n"):
    r = kafka.kcat("-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt)
    return r.stdout.decode().splitlines() if r.returncode == 0 else []


try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=60), "ready")
    orders = [
        {"customer": "ann", "amount": 10, "ts": "2026-11-29T10:00:05Z"},
        {"customer": "ann", "amount": 5, "ts": "2026-11-29T10:00:20Z"},
        {"customer": "bob", "amount": 7, "ts": "2026-11-29T10:00:30Z"},
        {"customer": "ann", "amount": 1, "ts": "2026-11-29T10:02:00Z"},  # closes 10:00 for ann
        {"customer": "bob", "amount": 1, "ts": "2026-11-29T10:02:00Z"},
        {"amount": 3, "ts": "2026-11-29T10:00:40Z"},                     # no customer: dead letter
    ]
    r = kafka.kcat("-P", "-t", "orders_raw", "-p", "0",
                   input="".join(json.dumps(o) + "\n" for o in orders).encode())
    check(r.returncode == 0, f"kcat produce: {r.stderr}")
    check(wait_for(lambda: len(values("orders")) == 5, timeout=30),
          f"the Kafka source ingested the 5 good orders: {values('orders')}")
    check(wait_for(lambda: len(values("failed_orders")) == 1, timeout=30),
          f"and dead-lettered the bad one: {values('failed_orders')}")
    w = 1795946400000  # 2026-11-29T10:00:00Z

    def totals():
        res = {}
        for line in values("order_totals"):
            v = json.loads(line)
            res[(v["window_start"], v["key"]["customer"])] = (v["count"], v["total"])
        return res if {(w, "ann"), (w, "bob")} <= set(res) else None
    res = wait_for(totals, timeout=60, interval=0.5) or {}
    check(res.get((w, "ann")) == (2, 15) and res.get((w, "bob")) == (1, 7),
          f"window results on order_totals: {res}")
    latest = {}
    for line in values("order_totals_latest", fmt="%k\\t%s\\n"):
        k, v = line.split("\t", 1)
        latest[json.loads(k)["key"]["customer"], json.loads(k)["window_start"]] = json.loads(v)
    check(latest.get(("ann", w), {}).get("total") == 15 and latest.get(("bob", w), {}).get("count") == 1,
          f"the Kafka result sink holds them keyed by window and customer: {latest}")
finally:
    out, err = stop_process(proc)
    kafka.close()
check(proc.returncode == 0, f"stops cleanly: {err[-3000:]}")
shutil.rmtree(data, ignore_errors=True)
finish("kafka example")
