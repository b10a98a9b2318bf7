"""A custom C++ processor step from a shared library (examples/custom_processor/): `spate
validate` and `spate run` load the plugin named in `plugins:`, HTTP events pass through its
`uppercase` step into the output topic; a missing plugin, or a library without
spate_register_processors, is a clear error with exit code 2."""
import ctypes.util
import http.client
import json
import os
import subprocess

from spate_e2e import *

PIPELINE = "examples/custom_processor/pipeline.yaml"
plugin = os.path.join(os.path.dirname(SPATE), "examples", "libspate_example_plugin.so")
check(os.path.exists(plugin), f"the example plugin is built at {plugin}")
data = tempdir()
port = free_port()
env = dict(os.environ, SPATE_PLUGIN=plugin, SPATE_DATA_DIR=data, SPATE_PORT=str(port))

r = spate("validate", PIPELINE, env=env)
check(r.returncode == 0 and "ok" in r.stdout, f"validate with the plugin: rc={r.returncode} {r.stdout} {r.stderr}")

# The plugin's own option checking, reported with positions like a built-in step's.
bad_opts = os.path.join(data, "bad_opts.yaml")
with open(PIPELINE) as f:
    text = f.read()
with open(bad_opts, "w") as f:
    f.write(text.replace("fields: [name, city]", "feilds: [name]"))
r = spate("validate", bad_opts, env=env)
check(r.returncode == 2 and "steps[0].fields: missing required key" in r.stderr
      and "feilds: unknown key (did you mean fields?)" in r.stderr,
      f"plugin options are checked: rc={r.returncode} {r.stderr}")

proc = subprocess.Popen([SPATE, "run", PIPELINE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, env=env)
try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "/ready turns 200")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = ('{"name":"ada","city":"london","age":36}\n'
            '{"name":"grace \\"amazing\\"","city":7}\n')
    c.request("POST", "/ingest/people", body=body, headers={"Content-Type": "application/x-ndjson"})
    res = c.getresponse()
    check(res.status == 202, f"ingest accepted: {res.status} {res.read()}")

    def processed():
        procs = json.loads(http_get(port, "/status")[1]).get("processors", [])
        return procs and procs[0]["consumed"] == 2
    check(wait_for(processed, timeout=20), "the processor consumed the two events")
finally:
    out, err = stop_process(proc)
check(proc.returncode == 0, f"SIGTERM stops cleanly (got {proc.returncode}): {err}")

r = spate("consume", "--data-dir", data, "--topic", "people_loud", "--from-beginning")
got = [json.loads(l) for l in r.stdout.splitlines()]
check(got == [{"name": "ADA!", "city": "LONDON!", "age": 36},
              {"name": 'GRACE "AMAZING"!', "city": 7}],
      f"people_loud holds the upper-cased events: {r.stdout} {r.stderr}")

# A missing plugin: exit 2 with the path and dlopen's reason, for validate and run.
missing = dict(env, SPATE_PLUGIN=os.path.join(data, "nope.so"))
for cmd in (["validate", PIPELINE], ["run", PIPELINE]):
    r = spate(*cmd, env=missing, timeout=30)
    check(r.returncode == 2 and "cannot load plugin" in r.stderr and "nope.so" in r.stderr,
          f"{cmd[0]} with a missing plugin: rc={r.returncode} {r.stderr}")

# A shared library that is not a Spate plugin (no spate_register_processors).
libz = ctypes.util.find_library("z") or "libz.so.1"
r = spate("validate", PIPELINE, env=dict(env, SPATE_PLUGIN=libz))
check(r.returncode == 2 and "does not export spate_register_processors" in r.stderr,
      f"a library without the symbol: rc={r.returncode} {r.stderr}")

# Without the plugin the step type is unknown, and the error says `plugins:` is needed.
no_plugin = os.path.join(data, "no_plugin.yaml")
with open(no_plugin, "w") as f:
    f.write("\n".join(l for l in text.splitlines() if not l.startswith("plugins:")) + "\n")
r = spate("validate", no_plugin, env=env)
check(r.returncode == 2 and 'unknown step type "uppercase"' in r.stderr and "plugins:" in r.stderr,
      f"unknown type without the plugin: rc={r.returncode} {r.stderr}")

finish("test_custom_processor")
