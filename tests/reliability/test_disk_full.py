"""A full disk, for real: the log's data directory on a small tmpfs.

`spate run` (fsync always) ingests NDJSON batches with unique ids until the file system is full.
Checked:
  - once the disk is full, ingestion answers 507 with Retry-After and a reason that says so; the
    process stays up (/health), counts the failures (spate_log_append_errors_total);
  - every event that got a 202 can be read back, none twice, and nothing of a refused request
    on the single partition is stored;
  - when space returns (the tmpfs grows), ingestion resumes by itself, without a restart;
  - after SIGKILL and a restart on the same directory, every acknowledged event is still there,
    in order, none twice (a write cut short by ENOSPC left nothing that breaks recovery).
Needs to mount a tmpfs (root, as in CI)."""
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from spate_e2e import *  # noqa: E402

tmp = tempdir()
disk = os.path.join(tmp, "disk")
os.makedirs(disk)
r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", disk], capture_output=True, text=True)
if r.returncode != 0:
    check(False, f"mount a 6 MiB tmpfs for the data directory (needs root): {r.stderr.strip()}")
    finish("test_disk_full")

cfg = os.path.join(tmp, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write(f"""
name: disk-full
data_dir: {disk}/data
log: {{fsync: always, segment_bytes: 1MiB}}
topics: [{{name: events, partitions: 1}}]
ingestion: {{default_topic: events}}
""")
PAD = "x" * 900
next_id = 0


def post_batch(port, n=50):
    """Sends n events with fresh ids; returns (status, headers, body, ids)."""
    global next_id
    ids = list(range(next_id, next_id + n))
    next_id += n
    body = "".join(json.dumps({"id": i, "pad": PAD}) + "\n" for i in ids).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/ingest/events", data=body,
                                 headers={"Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read().decode(), ids
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(), ids


def stored_ids(port):
    r = spate("consume", "--log-url", f"http://127.0.0.1:{port}", "--topic", "events", "--from-beginning",
              timeout=120)
    check(r.returncode == 0, f"consume: {r.stderr}")
    return [json.loads(line)["id"] for line in r.stdout.splitlines() if line.startswith("{")]


def metric(port, name):
    code, body = http_get(port, "/metrics")
    for line in body.splitlines() if code == 200 else []:
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


acked, refused, full_answer = [], [], None
proc = port = None
try:
    proc, port = start_run(cfg)
    for _ in range(400):  # 6 MiB / ~46 KiB per batch: full after ~130 batches
        code, headers, body, ids = post_batch(port)
        if code == 202:
            acked += ids
        else:
            refused += ids
            full_answer = full_answer or (code, headers, body)
            if len(refused) >= 5 * 50:
                break
    check(full_answer is not None, "the disk filled up")
    code, headers, body = full_answer or (None, {}, "")
    check(code == 507, f"a full disk answers 507 Insufficient Storage: {code} {body}")
    check(headers.get("Retry-After") == "5", f"... with Retry-After: 5: {headers}")
    check("disk is full" in body and "No space left on device" in body, f"... and says why: {body}")
    check(http_get(port, "/health")[0] == 200, "the process stays up with a full disk")
    check((metric(port, "spate_log_append_errors_total") or 0) >= 5, "the failed appends are counted")
    print(f"disk full after {len(acked)} acknowledged events; {len(refused)} refused", flush=True)

    got = stored_ids(port)
    check(len(got) == len(set(got)), "no event is stored twice")
    check(set(acked) <= set(got), f"every acknowledged event is readable: {len(set(acked) - set(got))} missing")
    check(not (set(got) & set(refused)), f"nothing of a refused request is stored: {len(set(got) & set(refused))}")

    # Space returns: ingestion resumes by itself.
    r = subprocess.run(["mount", "-o", "remount,size=64m", disk], capture_output=True, text=True)
    check(r.returncode == 0, f"grow the tmpfs: {r.stderr}")

    def resumed():
        code, _, _, ids = post_batch(port)
        (acked if code == 202 else refused).extend(ids)
        return code == 202
    check(wait_for(resumed, timeout=30, interval=0.5), "ingestion resumes once space is freed")
    for _ in range(20):
        code, _, body, ids = post_batch(port)
        check(code == 202, f"ingest after recovery: {code} {body}")
        (acked if code == 202 else refused).extend(ids)

    # SIGKILL and restart: recovery keeps everything acknowledged.
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc, port = start_run(cfg)
    got = stored_ids(port)
    check(len(got) == len(set(got)), "after the restart no event is stored twice")
    missing = set(acked) - set(got)
    check(not missing, f"after SIGKILL and restart every acknowledged event is there: {len(missing)} missing")
    check(got == sorted(got), "... in the order they were acknowledged")
    print(f"after recovery: {len(acked)} acknowledged, {len(got)} stored, 0 lost", flush=True)
finally:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    subprocess.run(["umount", "-l", disk], capture_output=True)

finish("test_disk_full")
