"""Helpers for e2e tests that drive the real `spate` binary (python3 stdlib only)."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SPATE = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/spate"
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)
    return cond


def finish(name):
    if FAILURES:
        print(f"{name}: {len(FAILURES)} failure(s)")
        sys.exit(1)
    print(f"{name}: ok")
    sys.exit(0)


def spate(*args, input=None, timeout=60, env=None):
    """Run spate to completion; returns CompletedProcess with text stdout/stderr."""
    return subprocess.run([SPATE, *args], input=input, capture_output=True, text=True,
                          timeout=timeout, env=env)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=5):
    """Returns (status, body) or (None, error) if the connection failed."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return None, str(e)


def wait_for(pred, timeout=30, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return None


def start_run(cfg, timeout=30):
    """`spate run CFG` on a free admin port, output discarded; returns (Popen, port) once ready."""
    port = free_port()
    p = subprocess.Popen([SPATE, "run", cfg, "--port", str(port)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=timeout), "spate run becomes ready")
    return p, port


def tempdir():
    return tempfile.mkdtemp(prefix="spate-e2e-")


def stop_process(proc, timeout=30):
    """SIGTERM a `spate run` Popen (text pipes) and wait; SIGKILL after `timeout` s.
    Returns (stdout, stderr)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()
