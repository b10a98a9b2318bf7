"""PostgreSQL sink exactly-once under SIGKILL: a throw-away PostgreSQL (started here the way
tests/integration/pg_fixture.h does it, as the `postgres` user when running as root), a topic of
20 keys x 1000 per-key sequence numbers produced with `spate produce`, and a processor whose
postgres sink upserts every event by its event id. spate is killed with SIGKILL at random moments
at least 10 times while it works through the backlog and restarted each time. At the end the
table holds every (key, seq) exactly once, with no gaps. Skipped (exit 0 with a note) when the
PostgreSQL server binaries are not installed."""
import glob
import os
import pwd
import random
import shutil
import signal
import subprocess
import time

from spate_e2e import *

KEYS, CHUNK, KILLS = 20, 500, 12  # CHUNK seqs per key are added before each start
SEQS = CHUNK * (KILLS + 1)


def pg_bin():
    env = os.environ.get("SPATE_PG_BIN")
    if env:
        return env if os.path.exists(os.path.join(env, "postgres")) else None
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "postgres"), os.X_OK)]
    dirs.sort(key=lambda d: float(d.split("/")[-2]))
    return dirs[-1] if dirs else None


class Postgres:
    """A cluster in a fresh directory, on 127.0.0.1 and a free port, trust auth, superuser spate."""

    def __init__(self, bindir):
        self.bin = bindir
        self.demote = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            pw = pwd.getpwnam("postgres")
            uid, gid = pw.pw_uid, pw.pw_gid
            def demote():
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            self.demote, self.uid, self.gid = demote, uid, gid
        self.dir = tempfile.mkdtemp(prefix="spate-e2e-pg-", dir="/tmp")
        if self.demote:
            os.chown(self.dir, self.uid, self.gid)
        os.chmod(self.dir, 0o700)
        data = os.path.join(self.dir, "data")
        r = subprocess.run([os.path.join(bindir, "initdb"), "-D", data, "-U", "spate", "-A", "trust",
                            "-E", "UTF8", "--locale=C", "--no-sync"], preexec_fn=self.demote,
                           capture_output=True, text=True, cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError("initdb failed: " + r.stderr)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [os.path.join(bindir, "postgres"), "-D", data, "-p", str(self.port), "-k", self.dir,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=30", "-c", "shared_buffers=16MB"],
            preexec_fn=self.demote, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir)
        if not wait_for(lambda: self.psql("SELECT 1", check_ok=False) == "1", timeout=60):
            raise RuntimeError("postgres did not start")

    def url(self):
        return f"postgresql://spate@127.0.0.1:{self.port}/postgres"

    def psql(self, sql, check_ok=True):
        r = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url(),
                            "-c", sql], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            if check_ok:
                check(False, f"psql {sql}: {r.stderr}")
            return None
        return r.stdout.strip()

    def close(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


bindir = pg_bin()
if bindir is None or shutil.which("psql") is None:
    print("test_sink_postgres_kill: skipped (PostgreSQL server binaries or psql not installed)")
    sys.exit(0)

started = time.time()
pg = Postgres(bindir)
try:
    pg.psql("CREATE TABLE seqs (event_id text PRIMARY KEY, k text NOT NULL, seq int NOT NULL)")
    tmp = tempdir()
    data = os.path.join(tmp, "data")
    cfg = os.path.join(tmp, "pipeline.yaml")
    with open(cfg, "w") as f:
        f.write(f"""
name: sink-kill
data_dir: {data}
log: {{fsync: {{interval_ms: 10}}}}
topics:
  - {{name: in, partitions: 3}}
  - {{name: dlq}}
processors:
  - name: store
    inputs: [in]
    dead_letter_topic: dlq
    batch_size: 10
    poll_timeout: 5ms
    steps:
      - {{type: sink, kind: postgres, url: "{pg.url()}", table: seqs, columns: {{k: k, seq: seq}},
         connect_timeout: 2s, timeout: 5s}}
""")
    r = spate("topics", "create", "in", "--partitions", "3", "-c", cfg)
    check(r.returncode == 0, f"topics create: {r.stderr}")
    r = spate("topics", "create", "dlq", "-c", cfg)
    produced = [0]

    def produce_chunk():
        # Written while spate is down, so that every start has a backlog to work on.
        lo = produced[0]
        lines = "".join(f'{{"k":"k{k}","seq":{s}}}\n' for s in range(lo, lo + CHUNK) for k in range(KEYS))
        r = spate("produce", "-c", cfg, "--topic", "in", "--key-field", "k", input=lines, timeout=120)
        check(r.returncode == 0, f"produce: {r.stderr}")
        produced[0] += CHUNK

    def start():
        return start_run(cfg)

    def rows():
        v = pg.psql("SELECT count(*) FROM seqs", check_ok=False)
        return int(v) if v else 0

    rng = random.Random(int(os.environ.get("SPATE_E2E_SEED", "11")))
    kills_mid_run = 0
    for i in range(KILLS):
        produce_chunk()
        proc, port = start()
        time.sleep(rng.uniform(0.05, 0.4))
        before = rows()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if before < KEYS * produced[0]:
            kills_mid_run += 1
    print(f"{KILLS} kills, {kills_mid_run} while the backlog was being written")
    check(kills_mid_run >= 10, f"at least 10 kills hit the run in progress ({kills_mid_run})")

    produce_chunk()
    proc, port = start()
    check(wait_for(lambda: rows() >= KEYS * SEQS, timeout=60), f"the backlog drains ({rows()} rows)")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)

    total = int(pg.psql("SELECT count(*) FROM seqs"))
    distinct = int(pg.psql("SELECT count(*) FROM (SELECT DISTINCT k, seq FROM seqs) d"))
    check(total == KEYS * SEQS, f"{KEYS * SEQS} rows, got {total}")
    check(distinct == total, f"every (key, seq) once: {total - distinct} duplicates")
    gaps = pg.psql("SELECT k, count(*), min(seq), max(seq) FROM seqs GROUP BY k "
                   f"HAVING count(*) <> {SEQS} OR min(seq) <> 0 OR max(seq) <> {SEQS - 1}")
    check(gaps == "", f"no gaps per key: {gaps}")
    check(pg.psql("SELECT count(*) FROM seqs WHERE event_id NOT LIKE 'in/_/%'") == "0",
          "rows are keyed by event id")
    dl = spate("consume", "-c", cfg, "--topic", "dlq", "--from-beginning", timeout=60)
    check(dl.returncode == 0 and dl.stdout.strip() == "", f"nothing dead-lettered: {dl.stdout[:300]}")
finally:
    pg.close()
print(f"ran {time.time() - started:.1f} s")
finish("test_sink_postgres_kill")
