"""TLS on the HTTP API (server.tls), with and without mutual TLS.

Certificates are made here with the `openssl` command line: a CA, a server certificate for
127.0.0.1/localhost, a client certificate from the same CA and one from a stranger's CA.
Checked:
  - HTTPS works for a client that trusts the CA (Python's ssl, curl); ingest, /metrics;
  - plain HTTP on the TLS port gets a plaintext 400 saying so; TLS 1.1 and non-forward-secret
    or CBC cipher suites are refused; TLS 1.3 works; min_version 1.3 refuses TLS 1.2;
  - the CLI (`consume --log-url https://...`) verifies the server: without $SPATE_CA_FILE, or
    with a name the certificate does not carry, it fails saying why; with it, it reads the events;
  - mutual TLS: without a client certificate or with one from another CA the handshake fails; with
    the right one requests are served; require_client_cert: false lets clients without one in;
  - http_tls_handshake_failures_total counts each failure by reason;
  - a deployment (`spate orchestrate`) with TLS: replicas reach the log owner over https, the
    orchestrator probes them over https, its own API speaks https;
  - configuration errors with file:line:col: an unreadable key, require_client_cert without
    client_ca_file, an unknown min_version."""
import json
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
import warnings

from spate_e2e import *

warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLS 1.1 is offered on purpose
tmp = tempdir()


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=tmp)
    assert r.returncode == 0, r.stderr
    return r.stdout


def make_ca(name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30", "-subj", f"/CN={name}")


def make_cert(name, ca, cn, san=None):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
    ext = os.path.join(tmp, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\n" if san else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "30", "-extfile", ext)


make_ca("ca")
make_ca("stranger-ca")
make_cert("server", "ca", "localhost", "IP:127.0.0.1,DNS:localhost")
make_cert("alice", "ca", "alice")
make_cert("mallory", "stranger-ca", "mallory")
P = lambda name: os.path.join(tmp, name)  # noqa: E731


def pipeline(name, tls_yaml, extra=""):
    path = P(f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"""
name: {name}
data_dir: {tmp}/{name}-data
log: {{fsync: never}}
server:
  tls: {tls_yaml}
topics:
  - {{name: orders, partitions: 1}}
  - {{name: out, partitions: 1}}
ingestion: {{default_topic: orders}}
{extra}""")
    return path


def start(cfg, env=None):
    port = free_port()
    err = open(P(f"{os.path.basename(cfg)}.{port}.log"), "w")
    proc = subprocess.Popen([SPATE, "run", cfg, "--port", str(port), "--no-status-line"],
                            stdout=subprocess.DEVNULL, stderr=err, env=env)
    return proc, port


def client_ctx(cert=None, max_version=None, min_version=None, ciphers=None, ca="ca.pem"):
    ctx = ssl.create_default_context(cafile=P(ca))
    if cert:
        ctx.load_cert_chain(P(f"{cert}.pem"), P(f"{cert}.key"))
    if max_version:
        ctx.maximum_version = max_version
    if min_version:
        ctx.minimum_version = min_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def https(port, path, ctx=None, method="GET", body=None, headers=None):
    """(status, body) or (None, the error) when no HTTP answer came."""
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx or client_ctx()) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout, ssl.SSLError) as e:
        return None, str(getattr(e, "reason", e))


def failures(port, ctx=None):
    """http_tls_handshake_failures_total by reason."""
    code, body = https(port, "/metrics", ctx)
    out = {}
    for line in body.splitlines() if code == 200 else []:
        if line.startswith("http_tls_handshake_failures_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


def handshake_fails(port, ctx):
    code, err = https(port, "/health", ctx)
    return code is None, err


env = {k: v for k, v in os.environ.items() if not k.startswith("SPATE_")}

# ---------------------------------------------------------------- server TLS
cfg = pipeline("tls", f"{{cert_file: {P('server.pem')}, key_file: {P('server.key')}}}")
proc, port = start(cfg, env)
try:
    check(wait_for(lambda: https(port, "/ready")[0] == 200, timeout=30), "HTTPS /ready turns 200")
    code, body = https(port, "/ingest/orders", method="POST", body=b'{"n": 1}\n{"n": 2}\n',
                       headers={"Content-Type": "application/x-ndjson"})
    check(code == 202, f"ingest over HTTPS: {code} {body}")
    r = subprocess.run(["curl", "-sS", "--cacert", P("ca.pem"), f"https://127.0.0.1:{port}/health"],
                       capture_output=True, text=True)
    check(r.returncode == 0 and '"ok"' in r.stdout, f"curl trusts the server: {r.stdout} {r.stderr}")

    # Plain HTTP on the TLS port: a plaintext answer that says what is wrong.
    code, body = http_get(port, "/health")
    check(code == 400 and "HTTPS" in body, f"plain HTTP gets 400 naming HTTPS: {code} {body}")

    # Old protocol versions and weak suites are refused; TLS 1.3 works.
    failed, err = handshake_fails(port, client_ctx(max_version=ssl.TLSVersion.TLSv1_1))
    check(failed, f"TLS 1.1 is refused: {err}")
    for weak in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA"):
        failed, err = handshake_fails(port, client_ctx(max_version=ssl.TLSVersion.TLSv1_2, ciphers=weak))
        check(failed, f"cipher suite {weak} (no forward secrecy or CBC) is refused: {err}")
    code, _ = https(port, "/health", client_ctx(max_version=ssl.TLSVersion.TLSv1_2,
                                                ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))
    check(code == 200, f"TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 works: {code}")
    ctx13 = client_ctx(min_version=ssl.TLSVersion.TLSv1_3)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx13.wrap_socket(s, server_hostname="127.0.0.1") as t:
            check(t.version() == "TLSv1.3", f"TLS 1.3 is negotiated when offered: {t.version()}")

    # A client that does not trust the server's CA does not talk to it.
    failed, err = handshake_fails(port, client_ctx(ca="stranger-ca.pem"))
    check(failed and "CERTIFICATE_VERIFY_FAILED" in err, f"a client with another CA refuses the server: {err}")

    # The CLI verifies the server certificate.
    url = f"https://127.0.0.1:{port}"
    r = spate("consume", "--log-url", url, "--topic", "orders", "--from-beginning", env=env)
    check(r.returncode != 0 and "certificate" in r.stderr and "SPATE_CA_FILE" in r.stderr,
          f"consume without $SPATE_CA_FILE fails saying how to trust the server: {r.stderr}")
    r = spate("consume", "--log-url", url, "--topic", "orders", "--from-beginning",
              env=dict(env, SPATE_CA_FILE=P("ca.pem"), SPATE_TLS_SERVER_NAME="other.example"))
    check(r.returncode != 0 and "other.example" in r.stderr,
          f"consume refuses a certificate for another name: {r.stderr}")
    r = spate("consume", "--log-url", url, "--topic", "orders", "--from-beginning",
              env=dict(env, SPATE_CA_FILE=P("ca.pem")))
    check(r.returncode == 0 and r.stdout.count('"n"') == 2, f"consume over HTTPS reads both events: {r.stdout} {r.stderr}")

    f = failures(port)
    check(f.get("plain_http", 0) >= 1, f"plain HTTP counted: {f}")
    check(f.get("protocol", 0) >= 4, f"refused versions and suites counted: {f}")
    check(f.get("bad_certificate", 0) + f.get("closed", 0) >= 1, f"a client that refused the certificate counted: {f}")
finally:
    stop_process(proc)

# min_version 1.3
cfg = pipeline("tls13", f"{{cert_file: {P('server.pem')}, key_file: {P('server.key')}, min_version: '1.3'}}")
proc, port = start(cfg, env)
try:
    check(wait_for(lambda: https(port, "/ready")[0] == 200, timeout=30), "min_version 1.3: TLS 1.3 served")
    failed, err = handshake_fails(port, client_ctx(max_version=ssl.TLSVersion.TLSv1_2))
    check(failed, f"min_version 1.3 refuses TLS 1.2: {err}")
finally:
    stop_process(proc)

# ---------------------------------------------------------------- mutual TLS
mtls = f"{{cert_file: {P('server.pem')}, key_file: {P('server.key')}, client_ca_file: {P('ca.pem')}}}"
cfg = pipeline("mtls", mtls)
proc, port = start(cfg, env)
alice = client_ctx(cert="alice")
try:
    check(wait_for(lambda: https(port, "/ready", alice)[0] == 200, timeout=30), "mTLS: alice's certificate is accepted")
    failed, err = handshake_fails(port, client_ctx())
    check(failed, f"mTLS: no client certificate, no service: {err}")
    failed, err = handshake_fails(port, client_ctx(cert="mallory"))
    check(failed, f"mTLS: a certificate from another CA is refused: {err}")
    code, body = https(port, "/ingest/orders", alice, method="POST", body=b'{"n": 3}',
                       headers={"Content-Type": "application/json"})
    check(code == 202, f"mTLS: alice ingests: {code} {body}")
    r = spate("consume", "--log-url", f"https://127.0.0.1:{port}", "--topic", "orders", "--from-beginning",
              env=dict(env, SPATE_CA_FILE=P("ca.pem")))
    check(r.returncode != 0, f"mTLS: the CLI without a client certificate is refused: {r.stderr}")
    r = spate("consume", "--log-url", f"https://127.0.0.1:{port}", "--topic", "orders", "--from-beginning",
              env=dict(env, SPATE_CA_FILE=P("ca.pem"), SPATE_CLIENT_CERT=P("alice.pem"), SPATE_CLIENT_KEY=P("alice.key")))
    check(r.returncode == 0 and '"n":3' in r.stdout.replace(" ", ""), f"mTLS: the CLI with alice's certificate reads: {r.stdout} {r.stderr}")
    f = failures(port, alice)
    check(f.get("no_client_certificate", 0) >= 2, f"missing client certificates counted: {f}")
    check(f.get("bad_certificate", 0) >= 1, f"the stranger's certificate counted: {f}")
finally:
    stop_process(proc)

cfg = pipeline("mtls-optional", mtls.replace("}", ", require_client_cert: false}"))
proc, port = start(cfg, env)
try:
    check(wait_for(lambda: https(port, "/ready")[0] == 200, timeout=30),
          "require_client_cert: false serves clients without a certificate")
    check(https(port, "/health", alice)[0] == 200, "... and those with one")
    failed, err = handshake_fails(port, client_ctx(cert="mallory"))
    check(failed, f"... but not those with a certificate it cannot verify: {err}")
finally:
    stop_process(proc)

# ---------------------------------------------------------------- a deployment with TLS
# The replicas' servers speak HTTPS; the others reach the log owner at https://, the
# orchestrator's probes use https and its own API does too. $SPATE_CA_FILE is inherited.
orch_port, ingest_port = free_port(), free_port()
cfg = pipeline("tls-orch", f"{{cert_file: {P('server.pem')}, key_file: {P('server.key')}}}",
               "processors:\n  - {name: copy, inputs: [orders], output: out, steps: [{filter: 'true'}]}\n")
with open(P("deployment.yaml"), "w") as f:
    f.write(f"""
name: tls-orch
pipeline: {cfg}
state_dir: {tmp}/state
server: {{port: {orch_port}}}
monitor: {{interval: 500ms, probe_timeout: 2s}}
components:
  - {{name: ingestion, type: ingestion, port: {ingest_port}}}
  - {{name: proc, type: processor, processors: [copy]}}
""")
orch_env = dict(env, SPATE_CA_FILE=P("ca.pem"))
orch = subprocess.Popen([SPATE, "orchestrate", P("deployment.yaml")], env=orch_env,
                        stdout=open(P("orch.log"), "w"), stderr=subprocess.STDOUT)
try:
    check(wait_for(lambda: https(orch_port, "/ready")[0] == 200, timeout=90),
          "the deployment comes up over HTTPS")
    code, body = https(ingest_port, "/ingest/orders", method="POST", body=b'{"n": 42}',
                       headers={"Content-Type": "application/json"})
    check(code == 202, f"ingest through the ingestion replica over HTTPS: {code} {body}")

    def status():
        c, b = https(orch_port, "/status")
        return json.loads(b) if c == 200 else None
    log_port = [i["port"] for c in status()["components"] if c["name"] == "log" for i in c["instances"]][0]
    got = wait_for(lambda: (r := spate("consume", "--log-url", f"https://127.0.0.1:{log_port}", "--topic", "out",
                                       "--from-beginning", env=orch_env)).returncode == 0
                   and '"n"' in r.stdout and r, timeout=30, interval=0.5)
    check(got, "the processor replica copied the event through the log owner's HTTPS API")
    probed = wait_for(lambda: (st := status()) and all(i.get("lag") is not None for c in st["components"]
                                                       if c["name"] == "proc" for i in c["instances"]) and st,
                      timeout=30, interval=0.5)
    check(probed, f"the orchestrator's metrics probes speak HTTPS (lag known): {status()}")
    r = spate("top", "--url", f"https://127.0.0.1:{orch_port}", "--once", "--interval", "0.2", env=orch_env)
    check(r.returncode == 0 and "proc" in r.stdout, f"top on the orchestrator over HTTPS: {r.stdout} {r.stderr}")
finally:
    orch.terminate()
    orch.wait(timeout=120)

# ---------------------------------------------------------------- configuration errors
def bad(tls_yaml):
    p = P("bad.yaml")
    with open(p, "w") as f:
        f.write(f"name: bad\ndata_dir: {tmp}/bad\nserver:\n  tls:\n{tls_yaml}")
    return spate("validate", p, env=env)


r = bad(f"    cert_file: {P('server.pem')}\n    key_file: {P('missing.key')}\n")
check(r.returncode == 2 and "bad.yaml:6:15:" in r.stderr and "missing.key" in r.stderr, f"an unreadable key: {r.stderr}")
r = bad(f"    cert_file: {P('server.pem')}\n    key_file: {P('server.key')}\n    require_client_cert: true\n")
check(r.returncode == 2 and "bad.yaml:7:" in r.stderr and "client_ca_file" in r.stderr,
      f"require_client_cert without client_ca_file: {r.stderr}")
r = bad(f"    cert_file: {P('server.pem')}\n    key_file: {P('server.key')}\n    min_version: '1.0'\n")
check(r.returncode == 2 and "bad.yaml:7:" in r.stderr and "1.3" in r.stderr, f"an unknown min_version: {r.stderr}")
r = bad(f"    cert_file: {P('server.pem')}\n")
check(r.returncode == 2 and "key_file" in r.stderr, f"a certificate without its key: {r.stderr}")
# A key that does not match the certificate is found when the server starts.
cfg = pipeline("mismatch", f"{{cert_file: {P('server.pem')}, key_file: {P('alice.key')}}}")
r = spate("run", cfg, "--port", str(free_port()), "--no-status-line", env=env, timeout=30)
check(r.returncode != 0 and "tls" in r.stderr and "key" in r.stderr, f"a key that does not match its certificate: {r.stderr}")

finish("test_tls")
