"""`spate k8s render`: the Kubernetes manifests of a deployment file.

Renders examples/deployment.yaml and a Kafka variant (written to a temp dir), checks that
deploy/k8s/quickstart.yaml is the current render (so it cannot drift), validates every object
against the Kubernetes OpenAPI schemas with the npm package kubernetes-models
(tests/e2e/k8s_validate/validate.js, installed with `npm ci` into a cache under the build tree;
unknown fields are refused too, as strict server-side apply does), and asserts what a user
relies on: probes, replica counts, resources, env and envFrom secrets, a least-privilege Role
without wildcards, the explicit-partition StatefulSets and the log's StatefulSet with its
volume claim (absent on Kafka). A mutated object (replicas: "two", a misspelt field) must be
refused, so the validation is not a no-op. Skips the schema part only when npm is not installed."""
import copy
import json
import os
import re
import shutil
import subprocess

from spate_e2e import *

ROOT = os.getcwd()  # ctest runs e2e tests in the source directory
VALIDATE_SRC = os.path.join(ROOT, "tests", "e2e", "k8s_validate")
tmp = tempdir()
# KAFKA_BOOTSTRAP_SERVERS moves a pipeline without log.kind onto Kafka: keep it out of renders.
ENV = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def render(*args):
    return spate("k8s", "render", *args, env=ENV)


# ---------------------------------------------------------------- render, determinism, drift
r = render("examples/deployment.yaml")
check(r.returncode == 0, f"render examples/deployment.yaml exits 0: {r.stderr}")
quickstart = r.stdout
check(render("./examples/deployment.yaml").stdout == quickstart, "the same input renders the same bytes")
with open(os.path.join(ROOT, "deploy", "k8s", "quickstart.yaml")) as f:
    check(f.read() == quickstart,
          "deploy/k8s/quickstart.yaml is the current render (refresh it: ./build/spate k8s render "
          "examples/deployment.yaml > deploy/k8s/quickstart.yaml)")
check(r.stderr == "" and "WARNING" not in quickstart,
      f"a loopback server.host is no problem (pods run --host 0.0.0.0), so no warning: {r.stderr}")
check(quickstart.startswith("# ") and "\n---\n" in quickstart, "a commented multi-document stream")

# Bad input: the config error, exit 2.
bad = os.path.join(tmp, "bad.yaml")
with open(bad, "w") as f:
    f.write("name: x\npipeline: ../nope.yaml\ncomponents: []\n")
r = render(bad)
check(r.returncode == 2 and "nope.yaml" in r.stderr and r.stdout == "", f"bad deployment: exit 2 with the error: {r.returncode} {r.stderr}")
bad2 = os.path.join(tmp, "bad2.yaml")
with open(bad2, "w") as f:
    f.write(f"pipeline: {ROOT}/examples/quickstart.yaml\ncomponents:\n  - {{name: x, type: ingestion, replicas: many}}\n")
r = render(bad2)
check(r.returncode == 2 and f"{bad2}:3:" in r.stderr, f"file:line:col on a bad value: {r.stderr}")
r = render(os.path.join(tmp, "missing.yaml"))
check(r.returncode == 2 and "missing.yaml" in r.stderr, f"missing file: exit 2: {r.stderr}")
r = render("examples/deployment.yaml", "--namespace", "Not_A_Name")
check(r.returncode == 2 and "namespace" in r.stderr, f"an invalid --namespace is refused: {r.stderr}")
r = render("examples/deployment.yaml", "--image", "has space")
check(r.returncode == 2 and "image" in r.stderr, f"an invalid --image is refused: {r.stderr}")
r = spate("k8s", "--help")
check(r.returncode == 0 and "render" in r.stdout, "k8s --help lists render")
r = spate("k8s")
check(r.returncode == 2, "k8s without a subcommand is a usage error")

# ---------------------------------------------------------------- the Kafka variant
with open(os.path.join(tmp, "kpipe.yaml"), "w") as f:
    f.write("""name: kfk
data_dir: ./data
server: {host: 0.0.0.0, port: 8080}
log: {kind: kafka, kafka: {bootstrap_servers: "k:9092"}}
topics:
  - {name: in, partitions: 6}
  - {name: out, partitions: 2}
  - {name: ledger_out, partitions: 1}
  - {name: counts, partitions: 1}
ingestion: {default_topic: in}
processors:
  - {name: enrich, inputs: [in], output: out, steps: [{filter: 'exists(id)'}]}
  - {name: ledger, inputs: [in], output: ledger_out, exactly_once: true, steps: [{filter: 'exists(id)'}]}
analytics:
  - name: per_id
    inputs: [out]
    output: counts
    key_by: [id]
    window: {type: tumbling, size: 1m}
    aggregations: [{type: count}]
""")
kdeploy = os.path.join(tmp, "kdeploy.yaml")
with open(kdeploy, "w") as f:
    f.write("""name: kfk
pipeline: kpipe.yaml
namespace: streams
image: registry.example/spate:1.2.3
healing: {unresponsive_probes: 4, ready_timeout: 30s}
components:
  - name: ingest
    type: ingestion
    replicas: 2
    resources: {cpu: 250m, memory: 128Mi}
    env: {LOG_LEVEL: debug, LITERAL: "$(NOT_EXPANDED)"}
    env_from_secrets: [kafka-creds, api-keys]
  - name: enrich
    type: processor
    processors: [enrich]
    replicas: 3
    resources: {cpu: "2", memory: 2Gi}
    env_from_secrets: [kafka-creds]
  - name: ledger
    type: processor
    processors: [ledger]
    replicas: 2
  - name: counts
    type: analytics
    replicas: 2
""")
r = render(kdeploy)
check(r.returncode == 0 and r.stderr == "", f"render the Kafka deployment: {r.returncode} {r.stderr}")
kafka = r.stdout
loop_pipe = os.path.join(tmp, "kloop.yaml")
with open(os.path.join(tmp, "kpipe.yaml")) as f:
    text = f.read()
with open(loop_pipe, "w") as f:
    f.write(text.replace('"k:9092"', '"localhost:9092"'))
loop_deploy = os.path.join(tmp, "kloop-deploy.yaml")
with open(kdeploy) as f:
    dtext = f.read()
with open(loop_deploy, "w") as f:
    f.write(dtext.replace("pipeline: kpipe.yaml", "pipeline: kloop.yaml"))
r = render(loop_deploy)
check(r.returncode == 0 and "bootstrap_servers" in r.stderr and "localhost:9092" in r.stderr
      and "# WARNING" in r.stdout, f"Kafka at a loopback address is warned about: {r.stderr}")
r = render(kdeploy, "--namespace", "other", "--image", "spate:test")
check(r.returncode == 0, f"render with --namespace/--image: {r.stderr}")
overridden = r.stdout

# ---------------------------------------------------------------- schema validation (node)
node, NODE_DIR = node_tools(VALIDATE_SRC, "test_k8s_render")


def validate(text):
    """(exit code, {"objects": [...], "results": [...]}) of validate.js on a YAML stream."""
    p = subprocess.run([node, os.path.join(VALIDATE_SRC, "validate.js"), "-"], input=text,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "SPATE_K8S_NODE_DIR": NODE_DIR})
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError:
        out = {"objects": [], "results": []}
        check(False, f"validate.js printed JSON: {p.stdout[:500]} {p.stderr[:2000]}")
    return p.returncode, out


def valid(text, what):
    rc, out = validate(text)
    for res in out["results"]:
        check(res["ok"], f"{what}: {res['kind']} {res['name']} is valid: {res['error']}")
    check(rc == 0 and out["results"], f"{what}: the validator accepts every object (exit {rc})")
    return out["objects"]


def find(objs, kind, name):
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    check(len(hits) == 1, f"exactly one {kind} {name} (got {len(hits)})")
    return hits[0] if hits else {"metadata": {}, "spec": {}}


def container(workload):
    return workload["spec"]["template"]["spec"]["containers"][0]


def common_checks(objs, what, ns, name, image):
    kinds = [o["kind"] for o in objs]
    check(kinds[:5] == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"],
          f"{what}: namespace, RBAC and the ConfigMap first: {kinds}")
    check(find(objs, "Namespace", ns)["metadata"].get("namespace") is None, f"{what}: the Namespace {ns}")
    for o in objs:
        n = o["metadata"]["name"]
        check(RFC1123.match(n) and len(n) <= 63, f"{what}: {o['kind']} name {n} is an RFC 1123 label")
        if o["kind"] != "Namespace":
            check(o["metadata"].get("namespace") == ns, f"{what}: {o['kind']} {n} is in namespace {ns}")
        labels = o["metadata"].get("labels", {})
        check(labels.get("app.kubernetes.io/name") == "spate" and labels.get("app.kubernetes.io/instance") == name,
              f"{what}: {o['kind']} {n} has the spate labels")
    # RBAC: least privilege, no wildcards.
    role = find(objs, "Role", f"{name}-orchestrator")
    allowed = {"pods": {"get", "list", "watch", "delete"}, "configmaps": {"get", "patch"},
               "services": {"get", "patch"}, "deployments": {"get", "list", "watch", "patch"},
               "statefulsets": {"get", "list", "watch", "patch"},
               "deployments/scale": {"get", "patch", "update"}, "statefulsets/scale": {"get", "patch", "update"}}
    granted = {}
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            check("*" not in rule.get(field, []), f"{what}: no wildcard in the Role's {field}: {rule}")
        check(rule.get("resourceNames", ["x"]) != [], f"{what}: no empty resourceNames (= all): {rule}")
        for res in rule["resources"]:
            check(res in allowed, f"{what}: the Role grants nothing on {res}")
            check(set(rule["verbs"]) <= allowed.get(res, set()), f"{what}: verbs on {res} within {allowed.get(res)}: {rule['verbs']}")
            granted.setdefault(res, set()).update(rule["verbs"])
    check(granted.get("pods") == {"get", "list", "watch", "delete"}, f"{what}: healing can watch and delete pods")
    check("create" not in set().union(*granted.values()), f"{what}: no create anywhere")
    rb = find(objs, "RoleBinding", f"{name}-orchestrator")
    check(rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-orchestrator"}
          and rb["subjects"] == [{"kind": "ServiceAccount", "name": f"{name}-orchestrator", "namespace": ns}],
          f"{what}: the RoleBinding binds the Role to the ServiceAccount")
    find(objs, "ServiceAccount", f"{name}-orchestrator")
    # The in-cluster orchestrator: one replica, never two at once, under the ServiceAccount,
    # told the namespace and image this render used (so its re-applies keep them).
    orch = find(objs, "Deployment", f"{name}-orchestrator")
    check(objs[-1] is orch, f"{what}: the orchestrator comes last")
    check(orch["spec"]["replicas"] == 1 and orch["spec"]["strategy"] == {"type": "Recreate"},
          f"{what}: one orchestrator, replaced with Recreate")
    ospec = orch["spec"]["template"]["spec"]
    check(ospec["serviceAccountName"] == f"{name}-orchestrator" and ospec["automountServiceAccountToken"] is True,
          f"{what}: the orchestrator runs under its ServiceAccount with a token")
    oc = container(orch)
    a = oc["args"]
    check(a[:2] == ["orchestrate", "/etc/spate/deployment.yaml"] and a[a.index("--pipeline") + 1] == "/etc/spate/pipeline.yaml"
          and a[a.index("--backend") + 1] == "kubernetes" and a[a.index("--host") + 1] == "0.0.0.0"
          and a[a.index("--namespace") + 1] == ns and a[a.index("--image") + 1] == image,
          f"{what}: orchestrator args: {a}")
    check(oc["livenessProbe"]["httpGet"] == {"path": "/health", "port": 9090}, f"{what}: orchestrator liveness on 9090")
    check(set(find(objs, "ConfigMap", f"{name}-pipeline")["data"]) == {"pipeline.yaml", "deployment.yaml"},
          f"{what}: the ConfigMap holds the pipeline and the deployment file")
    # Every component's workload.
    for o in objs:
        if o["kind"] not in ("Deployment", "StatefulSet") or o is orch:
            continue
        n = o["metadata"]["name"]
        tpl = o["spec"]["template"]
        c = container(o)
        check(c["image"] == image, f"{what}: {n} runs image {image}")
        check(c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8080}, f"{what}: {n} readiness /ready 8080")
        check(c["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8080}, f"{what}: {n} liveness /health 8080")
        check({(p["name"], p["containerPort"]) for p in c["ports"]} == {("http", 8080), ("metrics", 8000)},
              f"{what}: {n} ports http 8080, metrics 8000")
        ann = tpl["metadata"]["annotations"]
        check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "8000",
              f"{what}: {n} prometheus scrape annotations")
        comp = tpl["metadata"]["labels"].get("app.kubernetes.io/component")
        check(o["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "spate",
                                                       "app.kubernetes.io/instance": name,
                                                       "app.kubernetes.io/component": comp},
              f"{what}: {n} selects its own pods")
        check(n == f"{name}-{comp}", f"{what}: {n} is <name>-<component>")
        vols = {v["name"]: v for v in tpl["spec"]["volumes"]}
        check(vols.get("pipeline", {}).get("configMap") == {"name": f"{name}-pipeline"}, f"{what}: {n} mounts the pipeline ConfigMap")
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        check(mounts.get("pipeline") == "/etc/spate" and mounts.get("data") == "/var/lib/spate",
              f"{what}: {n} mounts /etc/spate and /var/lib/spate")
        cmd = c.get("args") or c["command"][2].split()
        if "args" not in c:
            check(c["command"][:2] == ["sh", "-c"] and cmd[:2] == ["exec", "spate"], f"{what}: {n} sh -c 'exec spate ...'")
            cmd = cmd[2:]
        check(cmd[:2] == ["run", "/etc/spate/pipeline.yaml"] and "--port" in cmd and "--metrics-port" in cmd,
              f"{what}: {n} runs the mounted pipeline: {cmd}")
        check(cmd[cmd.index("--port") + 1] == "8080" and cmd[cmd.index("--metrics-port") + 1] == "8000",
              f"{what}: {n} --port 8080 --metrics-port 8000")
        check("--host" in cmd and cmd[cmd.index("--host") + 1] == "0.0.0.0",
              f"{what}: {n} listens on all interfaces (--host 0.0.0.0)")
        check(tpl["spec"].get("automountServiceAccountToken") is False, f"{what}: {n} gets no API token")
    return role


def args_of(workload):
    c = container(workload)
    return c["args"] if "args" in c else c["command"][2].split()[2:]


# The quickstart (embedded log).
objs = valid(quickstart, "quickstart")
common_checks(objs, "quickstart", "spate", "quickstart", "spate:latest")
with open(os.path.join(ROOT, "examples", "quickstart.yaml")) as f:
    check(find(objs, "ConfigMap", "quickstart-pipeline")["data"]["pipeline.yaml"] == f.read(),
          "the ConfigMap holds the pipeline file's text, byte for byte")
with open(os.path.join(ROOT, "examples", "deployment.yaml")) as f:
    check(find(objs, "ConfigMap", "quickstart-pipeline")["data"]["deployment.yaml"] == f.read(),
          "and the deployment file's, byte for byte")
log = find(objs, "StatefulSet", "quickstart-log")
check(log["spec"]["replicas"] == 1, "the log runs 1 replica")
vct = log["spec"].get("volumeClaimTemplates", [])
check(len(vct) == 1 and vct[0]["metadata"]["name"] == "data" and vct[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
      and "storage" in vct[0]["spec"]["resources"]["requests"], f"the log has a volume claim: {vct}")
check(not any(v["name"] == "data" for v in log["spec"]["template"]["spec"]["volumes"]),
      "the log's data is the claim, not an emptyDir")
check(args_of(log)[args_of(log).index("--role") + 1] == "log" and "--log-url" not in args_of(log), "the log runs --role log")
svc = find(objs, "Service", "quickstart-log")
check(svc["spec"].get("clusterIP") != "None" and {p["port"] for p in svc["spec"]["ports"]} >= {8080},
      "the log's Service on 8080")
check(svc["spec"]["selector"].get("app.kubernetes.io/component") == "log", "the log's Service selects the log")
expect = {  # component -> (kind, replicas, cpu, memory, role)
    "ingestion": ("Deployment", 1, "1", "512Mi", "ingestion"),
    "errors": ("StatefulSet", 1, "500m", "256Mi", "processors"),
    "analytics": ("StatefulSet", 1, "1", "1Gi", "analytics"),
}
for comp, (kind, replicas, cpu, mem, role) in expect.items():
    w = find(objs, kind, f"quickstart-{comp}")
    check(w["spec"]["replicas"] == replicas, f"{comp}: {replicas} replicas")
    res = container(w)["resources"]
    check(res == {"requests": {"cpu": cpu, "memory": mem}, "limits": {"cpu": cpu, "memory": mem}},
          f"{comp}: resources {cpu}/{mem}: {res}")
    a = args_of(w)
    check(a[a.index("--role") + 1] == role, f"{comp}: --role {role}: {a}")
    check(a[a.index("--log-url") + 1] == "http://quickstart-log:8080", f"{comp}: --log-url http://quickstart-log:8080")
errors = find(objs, "StatefulSet", "quickstart-errors")
check("--replica ${HOSTNAME##*-}/1" in container(errors)["command"][2] and "--processor errors" in container(errors)["command"][2],
      f"errors: explicit split from the pod ordinal: {container(errors)['command']}")
check(errors["spec"]["serviceName"] == "quickstart-errors" and find(objs, "Service", "quickstart-errors")["spec"]["clusterIP"] == "None",
      "errors: a headless governing Service")
check("explicit partition split" in quickstart, "the output says why explicit-split components are StatefulSets")
ing = find(objs, "Service", "quickstart-ingestion")
check([p["port"] for p in ing["spec"]["ports"]] == [8080], "ingestion Service on 8080")
check(len([o for o in objs if o["kind"] == "Service"]) == 4, "Services: log, ingestion and two headless")

# The Kafka variant.
objs = valid(kafka, "kafka")
role = common_checks(objs, "kafka", "streams", "kfk", "registry.example/spate:1.2.3")
check(not any(o["metadata"]["name"] == "kfk-log" for o in objs), "Kafka: no log component")
check("--log-url" not in kafka, "Kafka: no --log-url")
for o in objs:
    if o["kind"] == "StatefulSet" and o["metadata"]["name"] != "kfk-counts":
        check("volumeClaimTemplates" not in o["spec"], f"Kafka: no volume claim on {o['metadata']['name']}")
enrich = find(objs, "Deployment", "kfk-enrich")
check(enrich["spec"]["replicas"] == 3 and "--replica" not in args_of(enrich)
      and args_of(enrich)[args_of(enrich).index("--processor") + 1] == "enrich",
      "Kafka: a group-membership processor is a Deployment of 3 without --replica")
check(container(enrich)["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}, "enrich resources 2 / 2Gi")
check(container(enrich)["envFrom"] == [{"secretRef": {"name": "kafka-creds"}}], "enrich envFrom kafka-creds")
ledger = find(objs, "StatefulSet", "kfk-ledger")
check(ledger["spec"]["replicas"] == 2 and "--replica ${HOSTNAME##*-}/2" in container(ledger)["command"][2],
      "Kafka: an exactly_once processor is a StatefulSet with --replica ORDINAL/2")
check(container(ledger)["resources"]["requests"] == {"cpu": "1"}, "default resources: 1 CPU, no memory")
counts = find(objs, "StatefulSet", "kfk-counts")
check(counts["spec"]["replicas"] == 2 and "--replica ${HOSTNAME##*-}/2" in container(counts)["command"][2]
      and len(counts["spec"].get("volumeClaimTemplates", [])) == 1,
      "analytics: a StatefulSet split by ordinal, with a claim for its checkpoints")
ingest = find(objs, "Deployment", "kfk-ingest")
c = container(ingest)
check(ingest["spec"]["replicas"] == 2, "ingestion: 2 replicas")
check(c["resources"] == {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "250m", "memory": "128Mi"}},
      f"ingestion resources: {c['resources']}")
check(c["envFrom"] == [{"secretRef": {"name": "kafka-creds"}}, {"secretRef": {"name": "api-keys"}}], f"envFrom: {c.get('envFrom')}")
check(c["env"] == [{"name": "LITERAL", "value": "$$(NOT_EXPANDED)"}, {"name": "LOG_LEVEL", "value": "debug"}]
      or c["env"] == [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "LITERAL", "value": "$$(NOT_EXPANDED)"}],
      f"env, with $ escaped from Kubernetes' $(VAR) expansion: {c['env']}")
check(c["livenessProbe"]["failureThreshold"] == 4, "liveness failureThreshold = healing.unresponsive_probes")
check(find(objs, "Service", "kfk-ingest")["spec"]["ports"][0]["port"] == 8080, "Kafka: ingestion Service on 8080")
names = set()
for rule in role["rules"]:
    names.update(rule.get("resourceNames", []))
check(names == {"kfk-ingest", "kfk-enrich", "kfk-ledger", "kfk-counts", "kfk-pipeline"},
      f"Kafka: the Role names exactly the rendered objects: {sorted(names)}")
objs = valid(overridden, "overrides")
common_checks(objs, "overrides", "other", "kfk", "spate:test")

# ---------------------------------------------------------------- the validator is not a no-op
dep = copy.deepcopy(find(valid(quickstart, "quickstart again"), "Deployment", "quickstart-ingestion"))
rc, out = validate(json.dumps(dep))
check(rc == 0 and out["results"][0]["ok"], "control: the Deployment alone, as JSON, is valid")
two = copy.deepcopy(dep)
two["spec"]["replicas"] = "two"
rc, out = validate(json.dumps(two))
check(rc == 1 and not out["results"][0]["ok"] and "replicas" in (out["results"][0]["error"] or ""),
      f"replicas: \"two\" is refused: {out['results']}")
typo = copy.deepcopy(dep)
container(typo)["readinesProbe"] = container(typo).pop("readinessProbe")
rc, out = validate(json.dumps(typo))
check(rc == 1 and "readinesProbe" in (out["results"][0]["error"] or ""), f"a misspelt field is refused: {out['results']}")
cpu = copy.deepcopy(dep)
container(cpu)["resources"]["limits"]["cpu"] = "half"
rc, out = validate(json.dumps(cpu))
check(rc == 1, "cpu: half is refused")
rc, out = validate(json.dumps({"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}))
check(rc == 1 and "unknown kind" in (out["results"][0]["error"] or ""), "an unknown kind is refused")

finish("test_k8s_render")
