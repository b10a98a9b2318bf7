"""spate dlq inspect / replay on the dead letters of a real `spate run`: counts by reason class
and source (text and --json), a --dry-run, and a replay with --where whose records reach the
target topic with their origin in headers, while the dead-letter topic stays as it was.
Progress: on a terminal (a pty) a replay draws "... dead letters read (N%) ..." in place and
erases it; not on a terminal (the calls above) nothing but the result is printed. A restarted
`spate run` logs how long opening (recovering) its log took and what it held."""
import http.client
import json
import os
import pty
import select
import signal
import subprocess
import time

from spate_e2e import *

tmp = tempdir()
cfg = os.path.join(tmp, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write("""
name: dlq-e2e
data_dir: %s
topics:
  - {name: events, partitions: 2}
  - {name: dead, partitions: 1}
ingestion:
  default_topic: events
  dead_letter_topic: dead
  key_field: user
  quality:
    - {name: ids, required: [user]}
    - {name: amount, range: amount, min: 0, action: dead_letter}
""" % os.path.join(tmp, "data"))

port = free_port()
proc = subprocess.Popen([SPATE, "run", cfg, "--port", str(port)], stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True)
check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "spate run becomes ready")
body = "".join(json.dumps(e) + "\n" for e in [
    {"user": "a", "amount": 1},          # stored
    {"amount": 5},                       # rejected: ids
    {"amount": 6},                       # rejected: ids
    {"user": "b", "amount": -1},         # quarantined: amount
    {"user": "c", "amount": -2},         # quarantined: amount
    {"user": "d", "amount": -3},         # quarantined: amount
]) + "not json\n"                         # rejected: invalid JSON
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
c.request("POST", "/ingest/events", body=body, headers={"Content-Type": "application/x-ndjson"})
r = c.getresponse()
answer = json.loads(r.read().decode())
check(r.status == 202 and answer["accepted"] == 1 and answer["rejected"] == 3 and
      answer["dead_lettered"] == 3, f"ingest answer: {answer}")
proc.terminate()
proc.wait(timeout=30)

out = spate("dlq", "inspect", "-c", cfg, "dead")
check(out.returncode == 0, f"inspect: {out.stderr}")
check(out.stdout.startswith("dead: 6 dead letters"), f"inspect header: {out.stdout}")
lines = out.stdout.splitlines()
check(any(l.split()[:4] == ["3", "quality", "check", "amount"] for l in lines), f"amount class: {out.stdout}")
check(any(l.split()[:4] == ["2", "quality", "check", "ids"] for l in lines), f"ids class: {out.stdout}")
check(any(l.split()[:3] == ["1", "invalid", "JSON"] for l in lines), f"JSON class: {out.stdout}")
check(any(l.split() == ["6", "http"] for l in lines), f"by source: {out.stdout}")

js = spate("dlq", "inspect", "-c", cfg, "dead", "--json")
check(js.returncode == 0, f"inspect --json: {js.stderr}")
summary = json.loads(js.stdout)
check(summary["records"] == 6 and summary["sources"] == {"http": 6}, f"json summary: {summary}")
classes = {c["class"]: c["count"] for c in summary["reasons"]}
check(classes == {"quality check amount": 3, "quality check ids": 2, "invalid JSON": 1},
      f"json classes: {classes}")
amount = [c for c in summary["reasons"] if c["class"] == "quality check amount"][0]
check(amount["sample"] == "quality check amount: amount = -1 is out of range >= 0",
      f"sample reason: {amount}")

dry = spate("dlq", "replay", "-c", cfg, "dead", "--to", "events", "--where", "exists(user)",
            "--dry-run")
check(dry.returncode == 0 and dry.stdout.strip() == "would replay 3 of 6 dead letters from dead to events",
      f"dry run: {dry.stdout} {dry.stderr}")
bad = spate("dlq", "replay", "-c", cfg, "dead", "--to", "events", "--where", "user ==")
check(bad.returncode == 2 and "--where: expr:1:" in bad.stderr, f"bad --where: {bad.stderr}")
rep = spate("dlq", "replay", "-c", cfg, "dead", "--to", "events", "--where", "exists(user)",
            "--key-field", "user")
check(rep.returncode == 0 and rep.stdout.strip() == "replayed 3 of 6 dead letters from dead to events",
      f"replay: {rep.stdout} {rep.stderr}")

events = spate("consume", "-c", cfg, "--topic", "events", "--from-beginning", "--with-metadata")
recs = [json.loads(l) for l in events.stdout.splitlines() if l.strip()]
replayed = [x for x in recs if "spate.replayed_from" in x.get("headers", {})]
check(len(recs) == 4 and len(replayed) == 3, f"events after replay: {recs}")
check(sorted(x["value"]["user"] for x in replayed) == ["b", "c", "d"], f"replayed users: {replayed}")
check(all(x["headers"]["spate.replayed_from"].startswith("dead/0/") and
          x["headers"]["spate.replayed_error"].startswith("quality check amount:") and
          "error" not in x["headers"] and x["key"] == x["value"]["user"] for x in replayed),
      f"replayed headers and keys: {replayed}")
after = json.loads(spate("dlq", "inspect", "-c", cfg, "dead", "--json").stdout)
check(after["records"] == 6, "the dead-letter topic is unchanged by a replay")
check("\r" not in rep.stderr and "dead letters read" not in rep.stderr, f"no progress when not on a terminal: {rep.stderr!r}")


def on_terminal(*args, timeout=60):
    """Runs spate with stdout and stderr on a pty; returns (exit code, everything written)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([SPATE, *args], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r_, _, _ = select.select([master], [], [], 0.2)
        if r_:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(timeout=30), out.decode(errors="replace")


rc, text = on_terminal("dlq", "replay", "-c", cfg, "dead", "--to", "events", "--where", "exists(user)", "--dry-run")
check(rc == 0 and "checking 1 of 6 dead letters read" in text and "\r\x1b[K" in text,
      f"on a terminal a replay shows its progress: {text!r}")
check(text.rstrip().endswith("would replay 3 of 6 dead letters from dead to events"),
      f"the progress line is erased before the result: {text!r}")

port = free_port()
proc = subprocess.Popen([SPATE, "run", cfg, "--port", str(port), "--no-status-line"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True)
check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "spate run restarts")
proc.send_signal(signal.SIGTERM)
_, err = proc.communicate(timeout=60)
check("log opened: 2 topics, 3 partitions" in err, f"the restart says what opening the log recovered: {err[-800:]}")
finish("test_dlq")
