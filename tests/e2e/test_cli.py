"""The spate CLI as a user drives it: help, exit codes, validate errors, topics, produce/consume
with keys, groups, offsets, metadata and follow."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

from spate_e2e import *

tmp = tempdir()

# --help everywhere, exit 0.
for cmd in [[], ["run"], ["validate"], ["topics"], ["topics", "create"], ["produce"], ["consume"]]:
    r = spate(*cmd, "--help")
    check(r.returncode == 0 and "Usage" in r.stdout, f"{' '.join(cmd)} --help")

r = spate("version")
check(r.returncode == 0 and r.stdout.startswith("spate "), "version")
r = spate("consume")  # missing --topic
check(r.returncode == 2, f"usage error exits 2 (got {r.returncode})")
r = spate("frobnicate")
check(r.returncode == 2, "unknown subcommand exits 2")

# validate: ok, and a broken file reports file:line:col for each problem with exit 2.
r = spate("validate", "examples/quickstart.yaml")
check(r.returncode == 0 and "ok" in r.stdout, f"quickstart validates: {r.stdout}{r.stderr}")
bad = os.path.join(tmp, "bad.yaml")
with open(bad, "w") as f:
    f.write("name: x\nserver:\n  prot: 80\nlog:\n  fsync: alway\n")
r = spate("validate", bad)
check(r.returncode == 2, f"bad config exits 2 (got {r.returncode})")
check(f"{bad}:3:3" in r.stderr and "did you mean" in r.stderr and "port" in r.stderr,
      f"unknown key with file:line:col and suggestion: {r.stderr}")
check(f"{bad}:5:10" in r.stderr and "always" in r.stderr, f"bad enum reported: {r.stderr}")
r = spate("validate", os.path.join(tmp, "missing.yaml"))
check(r.returncode == 2 and "missing.yaml" in r.stderr, "missing file is a clear error")

# run: bad --role / --replica / --processor / --log-url are usage errors (exit 2), said plainly.
for args, want in [(["--role", "frontend"], "unknown role"),
                   (["--replica", "2/2"], "--replica must be I/N"),
                   (["--replica", "x"], "--replica must be I/N"),
                   (["--processor", "nope"], "no such processor"),
                   (["--role", "log", "--log-url", "http://127.0.0.1:1"], "cannot use a remote one")]:
    r = spate("run", "examples/quickstart.yaml", "--data-dir", os.path.join(tmp, "never"), *args)
    check(r.returncode == 2 and want in r.stderr, f"run {args}: exit {r.returncode}, {r.stderr}")
# A --log-url where nothing answers: a runtime error (exit 1) once connect_wait is over.
cfg_fast = os.path.join(tmp, "fast.yaml")
with open(cfg_fast, "w") as f:
    f.write("name: x\ndata_dir: %s\nlog: {kind: remote, url: 'http://127.0.0.1:%d', connect_wait: 200ms}\n"
            % (os.path.join(tmp, "fast"), free_port()))
r = spate("topics", "list", "-c", cfg_fast)
check(r.returncode == 1 and "unavailable" in r.stderr, f"unreachable log: {r.returncode} {r.stderr}")

# topics
d = os.path.join(tmp, "data")
r = spate("topics", "list")
check(r.returncode == 2 and "--data-dir" in r.stderr, "log commands say where the log must be")
r = spate("topics", "create", "orders", "--partitions", "3", "--compression", "lz4", "-d", d)
check(r.returncode == 0, f"create: {r.stderr}")
r = spate("topics", "create", "orders", "-d", d)
check(r.returncode == 1 and "already exists" in r.stderr, "duplicate create fails")
r = spate("topics", "create", "bad/name", "-d", d)
check(r.returncode == 2 and "invalid topic name" in r.stderr, "bad topic name is a usage error")
r = spate("topics", "describe", "orders", "--json", "-d", d)
info = json.loads(r.stdout)
check(info["partitions"] == 3 and info["compression"] == "lz4", f"describe json: {r.stdout}")

# produce with a key field: same key -> same partition, order kept per key.
lines = "".join(json.dumps({"user": f"u{i % 5}", "n": i}) + "\n" for i in range(300))
r = spate("produce", "-d", d, "--topic", "orders", "--key-field", "user", "--print-offsets",
          input=lines)
check(r.returncode == 0, f"produce: {r.stderr}")
acks = [tuple(map(int, l.split())) for l in r.stdout.splitlines()]
check(len(acks) == 300, "one ack per line")
part_of = {}
for i, (p, o) in enumerate(acks):
    part_of.setdefault(f"u{i % 5}", set()).add(p)
check(all(len(ps) == 1 for ps in part_of.values()), "each key lands on one partition")
r = spate("consume", "-d", d, "--topic", "orders", "--with-metadata")
recs = [json.loads(l) for l in r.stdout.splitlines()]
check(len(recs) == 300, f"consume returns all 300 (got {len(recs)})")
for rec in recs:
    check(rec["key"] == rec["value"]["user"], "key is the user field")
    break
by_key = {}
for rec in recs:
    by_key.setdefault(rec["key"], []).append(rec["value"]["n"])
check(all(v == sorted(v) for v in by_key.values()), "per-key order preserved")

# invalid JSON lines are rejected with stdin:LINE, the rest is kept, exit 1.
r = spate("produce", "-d", d, "--topic", "orders", "--partition", "0",
          input='{"ok":1}\nnot json\n{"ok":2}\n')
check(r.returncode == 1 and "stdin:2" in r.stderr, f"bad line reported: {r.stderr}")
r = spate("consume", "-d", d, "--topic", "orders", "--partition", "0")
tail = r.stdout.splitlines()[-2:]
check(tail == ['{"ok":1}', '{"ok":2}'], f"valid lines around a bad one are kept: {tail}")

# --offset, --max, --partition
r = spate("consume", "-d", d, "--topic", "orders", "--partition", "0", "--offset", "1", "--max", "2",
          "--with-metadata")
offs = [json.loads(l)["offset"] for l in r.stdout.splitlines()]
check(offs == [1, 2], f"--offset 1 --max 2 gives offsets 1,2: {offs}")

# consumer group: resumes where it left off, across processes.
r = spate("produce", "-d", d, "--topic", "g", "--raw", input="".join(f"m{i}\n" for i in range(10)))
check(r.returncode == 0, "produce raw")
r1 = spate("consume", "-d", d, "--topic", "g", "--group", "grp", "--max", "4")
r2 = spate("consume", "-d", d, "--topic", "g", "--group", "grp")
r3 = spate("consume", "-d", d, "--topic", "g", "--group", "grp")
check(r1.stdout.split() == [f"m{i}" for i in range(4)], f"group first read: {r1.stdout}")
check(r2.stdout.split() == [f"m{i}" for i in range(4, 10)], f"group resumes: {r2.stdout}")
check(r3.stdout == "", "group at the end reads nothing")

# --follow waits for new records and stops cleanly on SIGINT.
p = subprocess.Popen([SPATE, "consume", "-d", d, "--topic", "g", "--follow", "--max", "2"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(0.5)
# One process owns a data directory at a time: while the follower runs, produce is refused
# with a clear message (network produce/consume through a running server comes later).
r = spate("produce", "-d", d, "--topic", "g", "--raw", input="late\n")
check(r.returncode == 1 and "in use" in r.stderr and "--log-url" in r.stderr,
      f"a second process is refused while one owns the log, and told to use --log-url: {r.stderr}")
p.send_signal(signal.SIGINT)
out, err = p.communicate(timeout=20)
check(p.returncode == 0, f"follow stops on SIGINT with exit 0 (got {p.returncode}) {err}")

# Error messages say what to do: a deployment file where a pipeline is expected names the
# command that takes it; a taken port and a data directory in use name the way out.
r = spate("validate", "examples/deployment.yaml")
check(r.returncode == 2 and "examples/deployment.yaml:8:1: pipeline: unknown key" in r.stderr
      and "this is a deployment file" in r.stderr and "spate orchestrate --check examples/deployment.yaml" in r.stderr,
      f"validate on a deployment file points at orchestrate --check: {r.stderr}")
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
taken = busy.getsockname()[1]
r = spate("run", "examples/quickstart.yaml", "--data-dir", os.path.join(tmp, "portdata"), "--port", str(taken),
          "--no-status-line", timeout=60)
busy.close()
check(r.returncode == 1 and "Address already in use" in r.stderr and "--port N" in r.stderr,
      f"a taken port is reported with what to do: {r.stderr[-600:]}")

shutil.rmtree(tmp, ignore_errors=True)
finish("cli")
