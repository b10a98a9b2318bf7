"""deploy/grafana/dashboard.json has what a Grafana import needs and the panels the issue names:
title, uid, an integer schemaVersion, a Prometheus data-source variable every panel and target
uses, unique panel ids, grid positions inside the 24-column grid, a PromQL expression and a
unique refId per target, and the reference panels (ingestion throughput, processing latency
heatmap, component health, error rates) plus lag and analytics. The queries themselves run
against a live Prometheus in tests/e2e/test_prometheus.py (every one must evaluate, every
metric must exist). A broken copy must be refused, so the checker is not a no-op."""
import copy
import json
import os

from spate_e2e import *  # noqa: F403

ROOT = os.getcwd()
PATH = os.path.join(ROOT, "deploy", "grafana", "dashboard.json")
TYPES = {"row", "timeseries", "heatmap", "stat", "table", "gauge", "bargauge", "text"}


def problems(d):
    out = []
    for k in ("title", "uid", "panels", "templating"):
        if k not in d:
            out.append(f"no {k}")
    if not isinstance(d.get("schemaVersion"), int):
        out.append("schemaVersion is not an integer")
    var = [v for v in d.get("templating", {}).get("list", []) if v.get("type") == "datasource"
           and v.get("query") == "prometheus"]
    if not var:
        out.append("no Prometheus data-source variable")
    ds_ref = "${" + var[0]["name"] + "}" if var else None
    ids = set()
    for p in d.get("panels", []):
        t = p.get("title", "?")
        if p.get("id") in ids:
            out.append(f"{t}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        if p.get("type") not in TYPES:
            out.append(f"{t}: unknown panel type {p.get('type')}")
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")) or g.get("x", 0) + g.get("w", 0) > 24:
            out.append(f"{t}: bad gridPos {g}")
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != ds_ref:
            out.append(f"{t}: datasource is not {ds_ref}")
        targets = p.get("targets", [])
        if not targets:
            out.append(f"{t}: no targets")
        refs = [x.get("refId") for x in targets]
        if len(set(refs)) != len(refs) or None in refs:
            out.append(f"{t}: refIds not unique")
        for x in targets:
            if not x.get("expr", "").strip():
                out.append(f"{t}: a target without expr")
            if x.get("datasource", {}).get("uid") != ds_ref:
                out.append(f"{t}: a target's datasource is not {ds_ref}")
    return out


d = json.load(open(PATH))
p = problems(d)
check(not p, f"the dashboard is importable: {p}")
titles = [x["title"].lower() for x in d["panels"]]
for want in ("ingestion throughput", "processing latency heatmap", "component health", "error rates",
             "consumer lag", "analytics events"):
    check(want in titles, f"a panel '{want}'")
heat = next((x for x in d["panels"] if x["type"] == "heatmap"), None)
check(heat and all(t.get("format") == "heatmap" and "_bucket" in t["expr"] for t in heat["targets"]),
      "the latency heatmap reads histogram buckets in heatmap format")

bad = copy.deepcopy(d)
bad["panels"][1]["gridPos"]["x"] = 20
bad["panels"][2]["targets"][0]["expr"] = ""
bad["panels"][3]["datasource"] = {"type": "prometheus", "uid": "prod"}
check(len(problems(bad)) >= 3, f"the checker refuses a broken copy: {problems(bad)}")
finish("test_grafana_dashboard")
