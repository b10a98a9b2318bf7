"""Live views of a running pipeline: `spate tap`, `spate top`, the status line of `spate run` on a
terminal, and `--log-format json`.

 - `spate run --log-format json`: every line on stderr is one JSON object with ts, level, msg,
   also when a message holds quotes;
 - `spate tap TOPIC --where EXPR --max N`: prints the matching events posted after it started,
   in order, and exits once it has N;
 - `spate top --once`: one table with a row for ingestion, each processor and each analytics job,
   and a non-zero ingestion rate while events arrive; against an unreachable URL exit 1;
 - on a terminal (a pty) `spate run` draws a status line ("in N/s  out N/s  lag N ..."); with
   stderr on a file it does not."""
import json
import os
import pty
import select
import signal
import subprocess
import threading
import time
import urllib.request

from spate_e2e import *  # noqa: F403

ROOT = os.getcwd()
tmp = tempdir()
port = free_port()
env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
err_path = os.path.join(tmp, "run.err")
run = subprocess.Popen([SPATE, "run", os.path.join(ROOT, "examples", "quickstart.yaml"), "--port", str(port),
                        "-d", os.path.join(tmp, "data"), "--log-format", "json"],
                       stdout=subprocess.DEVNULL, stderr=open(err_path, "w"), env=env)


def post(events, topic="user_events"):
    body = "\n".join(json.dumps(e) for e in events).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/ingest/{topic}", data=body, method="POST",
                                 headers={"Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=60), "spate run is ready")

    # ---------------------------------------------------------------- tap
    tap = subprocess.Popen([SPATE, "tap", "user_events", "--log-url", f"http://127.0.0.1:{port}",
                            "--where", 'user_id == "u2"', "--max", "3"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # tap starts at the end of the topic: what came before is not shown
    ev = [{"user_id": u, "action": "click", "n": i, "timestamp": "2026-12-03T10:00:00Z"}
          for i, u in enumerate(["u1", "u2", "u3", "u2", "u1", "u2", "u2"])]
    check(post(ev) == 202, "events accepted")
    try:
        out, err = tap.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        tap.kill()
        out, err = tap.communicate()
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    check(tap.returncode == 0, f"tap exits 0 after --max 3: {tap.returncode} {err}")
    got = sorted(x["n"] for x in lines)
    check(len(lines) == 3 and all(x["user_id"] == "u2" for x in lines) and set(got) <= {1, 3, 5, 6},
          f"tap prints 3 events matching --where: {lines}")
    r = spate("tap", "user_events", "--log-url", f"http://127.0.0.1:{port}", "--where", "user_id ==")
    check(r.returncode == 2 and "--where" in r.stderr, f"a bad --where is a usage error: {r.returncode} {r.stderr}")

    # ---------------------------------------------------------------- top
    stop_load = threading.Event()

    def load():
        i = 0
        while not stop_load.is_set():
            post([{"user_id": f"u{i % 5}", "action": "view", "timestamp": "2026-12-03T10:00:00Z"} for _ in range(20)])
            i += 1
            time.sleep(0.05)

    t = threading.Thread(target=load)
    t.start()
    r = spate("top", "--url", f"http://127.0.0.1:{port}", "--once", "--interval", "1.5", timeout=30)
    stop_load.set()
    t.join()
    check(r.returncode == 0, f"top --once exits 0: {r.stderr}")
    rows = {line.split("  ")[0].strip(): line for line in r.stdout.splitlines()}
    check(any(k.startswith("ingestion") for k in rows) and "processor errors" in r.stdout
          and "analytics user_activity" in r.stdout and "analytics system_health" in r.stdout,
          f"top has rows for ingestion, the processor and both analytics jobs:\n{r.stdout}")
    ing = next((line for line in r.stdout.splitlines() if line.startswith("ingestion ")), "")
    cols = ing.split()
    check(len(cols) >= 3 and cols[1] not in ("0", "0.0"), f"a non-zero ingestion IN/s under load: {ing!r}")
    check(r.stdout.startswith("in "), f"top starts with the status line: {r.stdout[:80]!r}")
    r = spate("top", "--url", f"http://127.0.0.1:{free_port()}", "--once", timeout=30)
    check(r.returncode == 1 and "spate top" in r.stderr, f"top of nothing: exit 1 with a reason: {r.returncode} {r.stderr}")
finally:
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=60)

# ---------------------------------------------------------------- --log-format json
with open(err_path) as f:
    err_lines = [x for x in f.read().splitlines() if x.strip()]
parsed = []
for x in err_lines:
    try:
        parsed.append(json.loads(x))
    except ValueError:
        check(False, f"a log line that is not JSON: {x!r}")
check(len(parsed) >= 3 and all({"ts", "level", "msg"} <= set(p) for p in parsed),
      f"every log line is JSON with ts, level, msg ({len(parsed)} lines)")
check(any('"' in p["msg"] for p in parsed), "a message with quotes is escaped, not broken (pipeline \"quickstart\")")
check("\x1b[2K" not in open(err_path).read(), "no status line when stderr is a file")

# ---------------------------------------------------------------- the status line on a terminal
port2 = free_port()
master, slave = pty.openpty()
run2 = subprocess.Popen([SPATE, "run", os.path.join(ROOT, "examples", "quickstart.yaml"), "--port", str(port2),
                         "-d", os.path.join(tmp, "data2")], stdout=subprocess.DEVNULL, stderr=slave, env=env)
os.close(slave)
seen = b""
deadline = time.time() + 20
while time.time() < deadline and b"out " not in seen.split(b"\x1b[2K")[-1] + b"":
    r_, _, _ = select.select([master], [], [], 0.5)
    if r_:
        try:
            seen += os.read(master, 65536)
        except OSError:
            break
    if b"/s  out " in seen and b"lag " in seen:
        break
run2.send_signal(signal.SIGTERM)
run2.wait(timeout=60)
os.close(master)
text = seen.decode(errors="replace")
check("\x1b[2K" in text and "/s  out " in text and "lag " in text and "alerts " in text,
      f"on a terminal spate run draws a status line: {text[-400:]!r}")
finish("test_live_views")
