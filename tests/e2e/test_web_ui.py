"""The built-in web UI (GET /ui) in real headless Chromium (Debian `chromium`, driven by npm
playwright-core through tests/e2e/web_tools/ui_check.js).

`spate run examples/quickstart.yaml` runs while examples/demo_load.py sends its scenario (user
events, CPU readings with a spike and a hot host). The page must, within the wait:
  - draw points in the throughput and ack-latency charts (counted by the chart and as pixels of
    the line's colour on the canvas — a blank canvas fails) and show the consumer-lag chart;
  - show the latest window results and an alert or anomaly with its evidence (the demo's
    cpu_spike / cpu_hot), and the components with their health;
  - make no request outside the server (everything is embedded) and log no JavaScript error.
GET /docs renders every operation of /openapi.json in the same browser. Screenshots are kept as
artifacts: build/test-artifacts/web_ui.png and web_ui-docs.png."""
import json
import os
import shutil
import subprocess
import sys
import urllib.parse

from spate_e2e import *

ROOT = os.getcwd()
WEB_TOOLS = os.path.join(ROOT, "tests", "e2e", "web_tools")
chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
if chromium is None:
    print("SKIP: chromium is not installed")
    check(not os.environ.get("CI"), "chromium is installed in CI (scripts/install-deps.sh)")
    finish("test_web_ui")
node, node_dir = node_tools(WEB_TOOLS, "test_web_ui")
artifacts = os.path.join(os.path.dirname(SPATE), "test-artifacts")
os.makedirs(artifacts, exist_ok=True)
shot = os.path.join(artifacts, "web_ui.png")
for p in (shot, shot.replace(".png", "-docs.png")):
    if os.path.exists(p):
        os.remove(p)

tmp = tempdir()
port = free_port()
run = subprocess.Popen([SPATE, "run", "examples/quickstart.yaml", "--data-dir", f"{tmp}/data", "--port", str(port),
                        "--no-status-line"], stdout=open(f"{tmp}/run.log", "w"), stderr=subprocess.STDOUT)
load = None
try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "quickstart is ready")
    base = f"http://127.0.0.1:{port}"
    # ~40 s of wall time: the spike at 30 s and the hot host from 40 s of event time (at 10x).
    load = subprocess.Popen([sys.executable, "examples/demo_load.py", "--url", base, "--duration", "400",
                             "--speedup", "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = subprocess.run([node, os.path.join(WEB_TOOLS, "ui_check.js"), base, shot], capture_output=True, text=True,
                       timeout=240, env=dict(os.environ, SPATE_WEB_NODE_DIR=node_dir, CHROMIUM=chromium))
    try:
        seen = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        seen = {"fatal": f"rc={r.returncode} {r.stdout} {r.stderr}"}
    if not check("fatal" not in seen, f"the browser ran: {seen.get('fatal')}"):
        finish("test_web_ui")
    ui = seen["ui"]
    check(seen["waited"] == "ok", f"the page showed live data in time ({seen['waited']}): {json.dumps(ui)[:1500]}")
    for chart in ("ch-throughput", "ch-latency"):
        p = ui["painted"].get(chart, {})
        check(p.get("points", 0) >= 1 and p.get("pixels", 0) >= 20, f"{chart} drew its line: {p}")
    check("ch-lag" in ui["painted"], "the consumer lag chart is there")
    check(ui["result_rows"] >= 2, f"window results are listed: {ui['result_rows']} rows")
    rules = {a["rule"] for a in ui["alerts"]}
    check(rules & {"cpu_spike", "cpu_hot"}, f"an alert or anomaly of the demo appears: {ui['alerts'][:3]}")
    check(any("evidence" in a["text"] or "{" in a["text"] for a in ui["alerts"]), "alerts show their evidence")
    names = {c["name"]: c["health"] for c in ui["components"]}
    check({"log", "ingestion", "errors", "user_activity", "system_health"} <= set(names)
          and all(h == "ok" for h in names.values()), f"components with their health: {names}")
    check(ui["state"]["errors"] == 0, f"every poll succeeded: {ui['state']}")
    check(float(ui["cards"].get("events/s in (accepted)", "0").rstrip("kMG") or 0) > 0 or ui["painted"]["ch-throughput"]["pixels"] > 0,
          f"the throughput card shows a rate: {ui['cards']}")
    own = urllib.parse.urlsplit(base).netloc
    foreign = [u for u in seen["requests"] if urllib.parse.urlsplit(u).netloc != own]
    check(not foreign, f"no request leaves the server: {foreign[:5]}")
    check(not seen["console_errors"] and not seen["page_errors"],
          f"no JavaScript errors: {seen['console_errors'][:3]} {seen['page_errors'][:3]}")
    ops = sum(len(item) for item in json.loads(http_get(port, "/openapi.json")[1])["paths"].values())
    check(seen["docs"]["operations"] == ops, f"/docs renders every operation: {seen['docs']} vs {ops}")
    check(os.path.getsize(shot) > 10000, f"the screenshot is kept: {shot}")
    print(f"screenshots: {shot} and {shot.replace('.png', '-docs.png')}")
finally:
    if load is not None and load.poll() is None:
        load.terminate()
        load.wait(timeout=30)
    out, err = stop_process(run) if run.poll() is None else (None, None)
check(run.returncode == 0, f"spate run exits 0: {run.returncode}")
if FAILURES:
    print("--- run.log\n" + open(f"{tmp}/run.log").read()[-3000:])
finish("test_web_ui")
