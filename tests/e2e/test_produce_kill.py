"""Crash test: `spate produce` is SIGKILLed in the middle of a stream of produces, several times;
afterwards `consume --from-beginning` returns every acknowledged record exactly once, in order
(records that were written but not yet acknowledged may appear, but only once and in order)."""
import random
import shutil
import signal
import subprocess
import threading
import time

from spate_e2e import *

random.seed(20261129)
data = tempdir()
r = spate("topics", "create", "seq", "--partitions", "1", "--data-dir", data)
check(r.returncode == 0, f"create topic: {r.stderr}")

acked = []        # seq numbers acknowledged by produce (printed offsets)
next_seq = 0
for round_no in range(5):
    proc = subprocess.Popen([SPATE, "produce", "--data-dir", data, "--topic", "seq",
                             "--print-offsets"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)
    sent = []
    stop = threading.Event()

    def writer():
        global next_seq
        try:
            while not stop.is_set():
                burst = random.randint(1, 200)
                lines = []
                for _ in range(burst):
                    lines.append('{"seq":%d,"pad":"%s"}\n' % (next_seq, "x" * random.randint(0, 300)))
                    sent.append(next_seq)
                    next_seq += 1
                proc.stdin.write("".join(lines))
                proc.stdin.flush()
                time.sleep(random.random() * 0.01)
        except (BrokenPipeError, ValueError, OSError):
            pass

    t = threading.Thread(target=writer)
    t.start()
    # Acks come back in input order: the i-th ack line is for the i-th line sent this round.
    kill_after = random.randint(500, 5000)
    got = 0
    for line in proc.stdout:
        parts = line.split()
        if len(parts) != 2:
            continue
        acked.append(sent[got])
        got += 1
        if got >= kill_after:
            break
    proc.send_signal(signal.SIGKILL)
    stop.set()
    proc.wait()
    t.join()
    check(proc.returncode == -signal.SIGKILL, f"round {round_no}: produce was SIGKILLed")
    print(f"round {round_no}: sent {len(sent)}, acked {got}", flush=True)

r = spate("consume", "--data-dir", data, "--topic", "seq", "--from-beginning", timeout=120)
check(r.returncode == 0, f"consume exit 0: {r.stderr}")
seqs = [json.loads(l)["seq"] for l in r.stdout.splitlines() if l]
check(len(seqs) == len(set(seqs)), f"no duplicates ({len(seqs) - len(set(seqs))} found)")
check(seqs == sorted(seqs), "records in the order they were produced")
missing = set(acked) - set(seqs)
check(not missing, f"every acknowledged record survives ({len(missing)} missing)")
print(f"acked {len(acked)}, consumed {len(seqs)}")

# The log is still healthy: one more produce appends after what survived.
r = spate("produce", "--data-dir", data, "--topic", "seq", input='{"seq":"final"}\n')
check(r.returncode == 0, f"produce after crashes: {r.stderr}")
r = spate("consume", "--data-dir", data, "--topic", "seq", "--from-beginning")
check(r.stdout.splitlines()[-1] == '{"seq":"final"}', "appends continue after recovery")
shutil.rmtree(data, ignore_errors=True)
finish("produce_kill")
