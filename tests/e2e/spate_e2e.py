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


def node_tools(src_dir, test_name):
    """The npm packages of `src_dir` (its package.json and package-lock.json), installed with
    `npm ci` into a cache in the build tree next to the spate binary, once per lock file (a file
    lock keeps tests running in parallel from installing at the same time). Returns
    (node, node_dir), node_dir holding node_modules; when npm/node are missing prints SKIP and
    finishes the test (a failure in CI, where scripts/install-deps.sh installs them)."""
    import fcntl
    import shutil
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        print(f"SKIP: npm/node are not installed: the checks of {test_name} that need them did not run")
        check(not os.environ.get("CI"), "npm and node are installed in CI (scripts/install-deps.sh)")
        finish(test_name)
    node_dir = os.path.join(os.path.dirname(SPATE), os.path.basename(src_dir.rstrip("/")) + "_node")
    lock_src = os.path.join(src_dir, "package-lock.json")
    stamp = os.path.join(node_dir, "installed-package-lock.json")  # the lock of the last good install

    def read(p):
        try:
            with open(p, "rb") as f:
                return f.read()
        except OSError:
            return None
    with open(node_dir + ".lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if read(lock_src) != read(stamp) or not os.path.isdir(os.path.join(node_dir, "node_modules")):
            shutil.rmtree(node_dir, ignore_errors=True)
            os.makedirs(node_dir)
            shutil.copy(os.path.join(src_dir, "package.json"), node_dir)
            shutil.copy(lock_src, node_dir)
            inst = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=node_dir, capture_output=True,
                                  text=True, timeout=600)
            if not check(inst.returncode == 0, f"npm ci of {src_dir}: {inst.stdout}{inst.stderr}"):
                finish(test_name)
            shutil.copy(lock_src, stamp)  # last: a half-done install is redone next time
    return node, node_dir
