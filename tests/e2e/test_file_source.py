"""The file source as a user drives it: `spate run` tails a glob of NDJSON files while a writer
keeps appending; the file is rotated (mv + new file) while tailed and again while Spate is
down; Spate is SIGKILLed mid-stream and restarted; after a clean stop, `spate consume` shows
every written line exactly once."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time

from spate_e2e import *

tmp = tempdir()
data = os.path.join(tmp, "data")
logs = os.path.join(tmp, "in")
os.makedirs(logs)
app = os.path.join(logs, "app.ndjson")
cfg = os.path.join(tmp, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write("""
name: file-e2e
data_dir: %s
log: {fsync: {interval_ms: 20}}
topics:
  - {name: events, partitions: 2}
ingestion:
  sources:
    - {type: file, name: tail, topic: events, paths: ["%s/*.ndjson"], poll_interval: 50ms,
       batch_lines: 50, rotate_wait: 300ms}
""" % (data, logs))

r = spate("validate", cfg)
check(r.returncode == 0, f"the pipeline validates: {r.stdout} {r.stderr}")
bad = os.path.join(tmp, "bad.yaml")
with open(bad, "w") as f:
    f.write("name: x\ndata_dir: %s\ntopics: [{name: events}]\ningestion:\n  sources:\n"
            "    - {type: file, name: t, topic: events, paths: /x/*.log, fromat: csv}\n" % data)
r = spate("validate", bad)
check(r.returncode == 2 and "bad.yaml:6:" in r.stderr and "fromat" in r.stderr
      and 'did you mean "format"' in r.stderr, f"bad option is a positioned error: {r.stderr}")


class Writer:
    """Appends NDJSON lines through one descriptor, like an application; rotate() renames the
    file away (the glob no longer matches it), writes a few more lines through the old
    descriptor, then reopens the path."""

    def __init__(self):
        self.written = []
        self.seq = 0
        self.rotations = 0
        self.f = open(app, "a")
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def write(self, n):
        with self.lock:
            for _ in range(n):
                line = json.dumps({"seq": self.seq, "pad": "x" * (self.seq % 40)})
                self.f.write(line + "\n")
                self.written.append(line)
                self.seq += 1
            self.f.flush()

    def rotate(self):
        with self.lock:
            self.rotations += 1
            os.rename(app, "%s.%d" % (app, self.rotations))
        self.write(5)  # the application has not reopened yet
        with self.lock:
            self.f.close()
            self.f = open(app, "a")

    def run(self):
        while not self.stop.is_set():
            self.write(7)
            time.sleep(0.01)

    def close(self):
        with self.lock:
            self.f.close()


def start():
    port = free_port()
    p = subprocess.Popen([SPATE, "run", cfg, "--port", str(port)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    ok = wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30)
    check(ok, "spate run becomes ready")
    return p, port


def caught_up():
    """True when the checkpoint says every tracked file is read to its end and every file
    the writer created is either tracked at its end or was read and let go."""
    try:
        with open(os.path.join(data, "sources", "tail", "checkpoint.json")) as f:
            cp = json.load(f)
    except (OSError, ValueError):
        return False
    tracked = {(e["dev"], e["ino"]): e for e in cp["files"]}
    for name in os.listdir(logs):
        st = os.stat(os.path.join(logs, name))
        e = tracked.get((st.st_dev, st.st_ino))
        if e is not None and e["pos"] != st.st_size:
            return False
        if e is None and name == "app.ndjson":
            return False
    return len(tracked) == 1  # rotated files were finished and closed


t_begin = time.time()
w = Writer()
w.write(20)  # before the first start
proc, port = start()
wt = threading.Thread(target=w.run)
wt.start()
time.sleep(1.0)
w.rotate()  # while tailed
time.sleep(1.0)
proc.send_signal(signal.SIGKILL)  # mid-stream: the writer keeps going
proc.wait()
time.sleep(0.3)
w.rotate()  # while Spate is down
time.sleep(0.3)
proc, port = start()
time.sleep(0.4)  # while it catches up with the backlog: batches in flight
proc.send_signal(signal.SIGKILL)
proc.wait()
time.sleep(0.3)
proc, port = start()
time.sleep(1.0)
w.stop.set()
wt.join()
w.close()
check(wait_for(caught_up, timeout=20), "the source catches up with the writer")
code, metrics = http_get(port, "/metrics")
check('ingestion_file_tracked_files{source="tail"} 1' in metrics, "one file tracked at the end")
check('ingestion_file_lines_total{source="tail"}' in metrics, "lines are counted")
recovered = [l for l in metrics.splitlines() if l.startswith("ingestion_file_recovered_lines_total")]
proc.send_signal(signal.SIGTERM)
proc.wait(timeout=30)
check(proc.returncode == 0, f"clean stop (got {proc.returncode}): {proc.stderr.read()[-2000:]}")

r = spate("consume", "-c", cfg, "--topic", "events", timeout=60)
check(r.returncode == 0, f"consume: {r.stderr}")
got = r.stdout.splitlines()
counts = {}
for line in got:
    counts[line] = counts.get(line, 0) + 1
dups = [l for l, c in counts.items() if c > 1]
missing = set(w.written) - set(counts)
extra = set(counts) - set(w.written)
check(not dups, f"no line stored twice ({len(dups)} duplicated, e.g. {dups[:3]})")
check(not missing, f"no line missing ({len(missing)} missing, e.g. {sorted(missing)[:3]})")
check(not extra, f"nothing else stored: {sorted(extra)[:3]}")
check(len(w.written) > 500, f"the writer wrote a stream ({len(w.written)} lines)")
print(f"written {len(w.written)}, stored {len(got)}, {time.time() - t_begin:.1f}s; {recovered}")

shutil.rmtree(tmp, ignore_errors=True)
finish("file_source")
