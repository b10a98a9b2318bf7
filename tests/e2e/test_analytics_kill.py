"""Analytics under SIGKILL: checkpointed state gives exactly the results of an uninterrupted run.

One seeded input (100k JSON events on a 4-partition topic; each key in one partition, in order)
is consumed by four analytics jobs — tumbling with allowed_lateness, sliding, session (with
max_length) and sliding count windows — with count, sum, avg, min/max, stddev, percentile,
distinct_count and first/last, each to its own SQLite table and output topic, checkpointing
every 300 ms. Run A processes it without interruption. Run B processes a copy of the same log
in another data dir and is SIGKILLed at random moments at least 8 times while it works
(at a random point of its progress), restarted each time; every restarted process must report
restored=true for every job and must not have re-read the whole input. Once the watermarks of
both runs reach their final value the SQLite tables are compared per (analytics, window_start,
key): the result JSON without "watermark" and "update" must be equal, no row missing or extra.

The input makes lateness decisions independent of batch boundaries (which differ between runs
and after every restart): per partition events are at most 1.5 s behind the latest (inside
max_out_of_orderness), 5% are 3-8 s behind (late, but their windows stay open: behind by less
than max_out_of_orderness + allowed_lateness), 1% are 3-6 min behind (always behind closed
windows, whatever the partitions' relative progress); every partition ends with an event 1 h
ahead so that all windows close. Each partition gets every P-th event so that partitions
progress alike in event time.

ANAKILL_B_CHECKPOINT=false runs B with `checkpoint: false` (replay-only recovery): a local
experiment showing the comparison detects broken recovery (it then fails)."""
import json
import os
import random
import shutil
import signal
import sqlite3
import time

from spate_e2e import *

P = 4                 # partitions of `in`
KEYS_PER_PART = 8     # key k lives in partition k % P
N = int(os.environ.get("ANAKILL_EVENTS", "100000"))
SEED = int(os.environ.get("ANAKILL_SEED", "20261202"))
MIN_KILLS = 8
B_CHECKPOINT = os.environ.get("ANAKILL_B_CHECKPOINT", "true") != "false"
T0 = 1_800_000_000_000
END_AHEAD = 3_600_000

# name -> (window, max_out_of_orderness in ms, key_by)
JOBS = {
    "tumbling": ("{type: tumbling, size: 5s, allowed_lateness: 10s}", 2000, "[k]"),
    "sliding": ("{type: sliding, size: 10s, slide: 2s, allowed_lateness: 10s}", 2000, "[k]"),
    # Late events are at most 6 s behind the watermark, less than the gap: one can extend a
    # complete session but neither move its start nor bridge it with a later, emitted one (rows
    # keyed by window_start would then depend on emission timing).
    "session": ("{type: session, gap: 20s, max_length: 90s, allowed_lateness: 10s}", 2000,
                "[k, s]"),
    "counts": ("{type: count, size: 20, slide: 10}", 2000, "[k]"),
}
AGGS = """
      - {type: count}
      - {type: sum, field: v}
      - {type: avg, field: v}
      - {type: min, field: v}
      - {type: max, field: v}
      - {type: stddev, field: v}
      - {type: percentile, field: v, quantiles: [0.5, 0.9, 0.99]}
      - {type: distinct_count, field: u, name: users}
      - {type: first, field: seq}
      - {type: last, field: seq}
      - {type: last, field: u, name: last_user}"""


def pipeline(data_dir, checkpoint):
    out = [f"""
name: ana-kill
data_dir: {data_dir}
log: {{fsync: {{interval_ms: 10}}}}
topics:
  - {{name: in, partitions: {P}}}
  - {{name: late, partitions: 1}}
analytics:"""]
    for name, (window, ooo, key_by) in JOBS.items():
        ck = "{interval: 300ms}" if checkpoint else "false"
        out.append(f"""
  - name: {name}
    inputs: [in]
    output: out_{name}
    results: [{{kind: sqlite, table: t_{name}}}]
    {"late_topic: late" if name == "tumbling" else ""}
    key_by: {key_by}
    time: {{field: ts, max_out_of_orderness: {ooo}ms, idle_timeout: 0}}
    window: {window}
    batch_size: 40
    poll_timeout: 5ms
    checkpoint: {ck}
    aggregations:{AGGS}""")
    return "\n".join(out) + "\n"


tmp = tempdir()
cfg = {}
for run, ck in (("a", True), ("b", B_CHECKPOINT)):
    cfg[run] = os.path.join(tmp, f"pipeline_{run}.yaml")
    with open(cfg[run], "w") as f:
        f.write(pipeline(os.path.join(tmp, "data_" + run), ck))

# ---- the input ----
rng = random.Random(SEED)
parts = [[] for _ in range(P)]
base = T0
n_far = n_late = 0
for i in range(N):
    base += rng.randint(0, 50)
    p = i % P
    k = rng.randrange(KEYS_PER_PART) * P + p
    r = rng.random()
    if base - T0 > 420_000 and r < 0.01:
        t = base - rng.randint(180_000, 360_000)  # far behind every open window
        n_far += 1
    elif r < 0.06:
        t = base - rng.randint(3000, 8000)  # late, within allowed lateness
        n_late += 1
    else:
        t = base - rng.randint(0, 1500)  # within max_out_of_orderness
    parts[p].append(json.dumps({"k": f"key{k}", "s": rng.randrange(16), "ts": t, "seq": i,
                                "v": round(rng.uniform(0, 1000), 3),
                                "u": f"u{rng.randrange(2000)}"}))
t_end = base + END_AHEAD
for p in range(P):
    parts[p].append(json.dumps({"k": f"key{p}", "s": 0, "ts": t_end, "seq": N + p, "v": 0,
                                "u": "end"}))
total = N + P
final_wm = {name: t_end - ooo for name, (_, ooo, _) in JOBS.items()}

for p in range(P):
    r = spate("produce", "-c", cfg["a"], "--topic", "in", "--partition", str(p), "--key-field",
              "k", "--batch-size", "2000", input="\n".join(parts[p]) + "\n", timeout=120)
    check(r.returncode == 0, f"produce partition {p}: {r.stderr}")
shutil.copytree(os.path.join(tmp, "data_a"), os.path.join(tmp, "data_b"))


def jobs(port):
    code, body = http_get(port, "/status")
    if code != 200:
        return {}
    return {j["name"]: j for j in json.loads(body)["analytics"]}


def done(port):
    st = jobs(port)
    return len(st) == len(JOBS) and all(st[n]["watermark"] == final_wm[n] for n in JOBS) and st


def finish_run(proc, port, timeout):
    st = wait_for(lambda: done(port), timeout=timeout, interval=0.1)
    check(st, f"watermarks reach {final_wm}: {jobs(port)}")
    stop_process(proc)  # finishes the batch in progress: its results are in SQLite
    return st or {}


# ---- run A: uninterrupted ----
t_a = time.time()
proc, port = start_run(cfg["a"])
st_a = finish_run(proc, port, 120)
t_a = time.time() - t_a
for name in JOBS:
    s = st_a.get(name, {})
    check(s.get("restored") is False, f"A {name}: a fresh run restores nothing: {s}")
    want_late = 0 if name == "counts" else n_far
    check(s.get("late") == want_late, f"A {name}: late {s.get('late')}, want {want_late}")
    want_events = total - want_late
    check(s.get("events") == want_events, f"A {name}: events {s.get('events')}, want {want_events}")

# ---- run B: SIGKILL at random moments, restart ----
KILL_SEED = int(os.environ.get("ANAKILL_KILL_SEED", str(time.time_ns() % 1_000_000)))
krng = random.Random(KILL_SEED)  # kill points; the moments themselves depend on timing anyway
a_events = sum(j["events"] for j in st_a.values())
t_b = time.time()
proc, port = start_run(cfg["b"])
kills = 0
in_flight = 0
segment_events = []
restored_wm = {}
st = jobs(port)
check(st and all(s["restored"] is False for s in st.values()), f"B first start: {st}")
# Lower bound of the watermark in the newest checkpoint of each job: the watermark seen by the
# last poll before a poll that saw the job's checkpoint count go up.
ck_bound = {n: None for n in JOBS}
while kills < MIN_KILLS:
    # Kill at a random point of progress: once this process has aggregated 4-8% of the input
    # and every job has written a checkpoint since the start beyond the one after its first
    # batch (so that every process makes progress).
    target = int(krng.uniform(0.04, 0.08) * a_events)
    seen = {}

    def progressed():
        s = jobs(port)
        if len(s) != len(JOBS):
            return None
        for n, j in s.items():
            if n in seen and j["checkpoints"] > seen[n]["checkpoints"] and \
                    seen[n]["watermark"] is not None:
                ck_bound[n] = max(ck_bound[n] or seen[n]["watermark"], seen[n]["watermark"])
            seen[n] = j
        # A job that already reached the end of the input has nothing left to do.
        finished = {n for n, j in s.items() if j["watermark"] == final_wm[n]}
        return (all(j["events"] > 0 or n in finished for n, j in s.items()) and
                sum(j["events"] for j in s.values()) >= target and
                (not B_CHECKPOINT or all(j["checkpoints"] >= 2 or n in finished
                                         for n, j in s.items())) and s)
    check(wait_for(progressed, timeout=60, interval=0.01),
          f"B: events move after start {kills}: {jobs(port)}")
    if done(port):
        break  # B finished before enough kills (checked below)
    st = jobs(port)
    if st and any(j["watermark"] != final_wm[n] for n, j in st.items()):
        in_flight += 1
    segment_events.append(sum(j["events"] for j in st.values()) if st else 0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kills += 1
    proc, port = start_run(cfg["b"])
    st = jobs(port)
    if B_CHECKPOINT:
        # The state and watermark of the newest checkpoint (never an older one).
        for n in JOBS:
            s = st.get(n, {})
            check(s.get("restored") is True and s.get("watermark") is not None and
                  s["watermark"] >= (ck_bound[n] or 0),
                  f"B restart {kills}: {n} restored its newest checkpoint (watermark at least "
                  f"{ck_bound[n]}): {s}")
st_b = finish_run(proc, port, 120)
t_b = time.time() - t_b
segment_events.append(sum(j["events"] for j in st_b.values()))
check(kills >= MIN_KILLS and in_flight >= MIN_KILLS,
      f"B killed {kills} times ({in_flight} with work in flight), want {MIN_KILLS}")
if B_CHECKPOINT:
    # Each process resumed where a checkpoint left off instead of replaying the input: the last
    # one aggregated well under the total, all of them together little more than run A.
    check(segment_events[-1] < 0.8 * a_events and sum(segment_events) < 1.5 * a_events,
          f"B's processes aggregated {segment_events} events (A: {a_events}): a replay?")


# ---- compare the result tables ----
def table(run, name):
    db = sqlite3.connect(os.path.join(tmp, "data_" + run, "analytics.db"))
    try:
        rows = db.execute(f"SELECT analytics, window_start, key, result FROM t_{name}").fetchall()
    finally:
        db.close()
    out = {}
    for a, ws, key, result in rows:
        v = json.loads(result)
        v.pop("watermark", None)
        v.pop("update", None)
        out[(a, ws, key)] = v
    return out


compared = 0
for name in JOBS:
    a, b = table("a", name), table("b", name)
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    check(len(a) > 100, f"{name}: A has {len(a)} rows")
    check(not missing, f"{name}: {len(missing)} rows of A missing in B, e.g. {missing[:3]}")
    check(not extra, f"{name}: {len(extra)} rows in B not in A, e.g. {extra[:3]}")
    for k in differ[:3]:
        check(False, f"{name} {k}: A {a[k]} != B {b[k]}")
    check(not differ, f"{name}: {len(differ)} of {len(a)} rows differ")
    compared += len(a)
    print(f"{name}: {len(a)} rows, {len(missing)} missing, {len(extra)} extra, "
          f"{len(differ)} differ", flush=True)

print(f"input {total} events ({n_late} late within lateness, {n_far} far late); A {t_a:.1f} s; "
      f"B {t_b:.1f} s with {kills} SIGKILLs ({in_flight} with work in flight), checkpoints "
      f"{'on' if B_CHECKPOINT else 'OFF'}, kill seed {KILL_SEED}; events aggregated by B's "
      f"processes {segment_events} (A: {a_events}); {compared} rows compared")
finish("test_analytics_kill")
