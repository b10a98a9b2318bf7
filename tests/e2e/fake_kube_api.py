"""A test double of the Kubernetes API server for the e2e tests of Spate's in-cluster
orchestrator client. Stdlib only (plus the `openssl` CLI for the certificates).

It answers like a real kube-apiserver (status codes, Status objects, object shapes, watch
stream framing) for exactly the subset Spate uses, in one namespace, over HTTPS with a
self-signed CA and bearer-token authentication:

  PATCH  /api/v1/namespaces/NS/configmaps/NAME                 server-side apply (create 201 / update 200)
  PATCH  /apis/apps/v1/namespaces/NS/deployments/NAME          server-side apply
  PATCH  /apis/apps/v1/namespaces/NS/statefulsets/NAME         server-side apply
  GET    /apis/apps/v1/namespaces/NS/{deployments|statefulsets}/NAME/scale      Scale (autoscaling/v1)
  PUT    .../scale  (Scale body, resourceVersion precondition -> 409 Conflict)
  PATCH  .../scale  (application/merge-patch+json)
  GET    /api/v1/namespaces/NS/pods[?labelSelector=...]        PodList
  GET    /api/v1/namespaces/NS/pods?watch=true[&resourceVersion=&timeoutSeconds=&allowWatchBookmarks=]
  GET    /api/v1/namespaces/NS/pods/NAME
  DELETE /api/v1/namespaces/NS/pods/NAME

Anything else is 404 NotFound, a wrong method on a known path 405 MethodNotAllowed, another
namespace 403 Forbidden (what the orchestrator's namespaced Role would get). Every request is
recorded in `requests`.

Fake controllers keep N pods per Deployment/StatefulSet (Pending -> Running/NotReady ->
Ready, each a MODIFIED event; pod IPs 127.0.0.10, .11, ...). A changed pod template is rolled
out as a simple *recreate* (all old pods deleted, new ones created at once); StatefulSets
behave as podManagementPolicy Parallel. A plain-HTTP "pod metrics" server on 0.0.0.0
(`metrics_port`) answers /metrics, /health and /ready for the pod whose IP the connection was
made to. Simplifications: no RBAC, no apply conflicts (force ignored), YAML apply bodies must
be JSON, deletion is immediate (no graceful termination), controller status is computed and
does not bump resourceVersion, a no-op apply/scale does not bump resourceVersion (as a real
server does).
"""
import copy
import hashlib
import http.server
import json
import os
import random
import re
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid

COMPONENT = "app.kubernetes.io/component"
_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated names
RESOURCES = {  # plural -> (kind, apiVersion, group)
    "configmaps": ("ConfigMap", "v1", ""),
    "deployments": ("Deployment", "apps/v1", "apps"),
    "statefulsets": ("StatefulSet", "apps/v1", "apps"),
}
PLURAL = {kind: plural for plural, (kind, _, _) in RESOURCES.items()}
DEFAULT_METRICS = ("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                   "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 0.1\n"
                   "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                   "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1e6\n")


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status_obj(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details is not None:
        s["details"] = details
    return s


def not_found(plural, name):
    kind, _, group = RESOURCES.get(plural, (None, None, ""))
    res = f"{plural}.{group}" if group else plural
    details = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return 404, status_obj(404, "NotFound", f'{res} "{name}" not found', details)


def parse_selector(text):
    """labelSelector -> list of (op, key, value); op in = != exists !exists. None if unparseable."""
    terms = []
    for t in filter(None, (x.strip() for x in (text or "").split(","))):
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)", t)
        if m:
            terms.append(("!=" if m.group(2) == "!=" else "=", m.group(1), m.group(3)))
        elif re.fullmatch(r"![\w./-]+", t):
            terms.append(("!exists", t[1:], None))
        elif re.fullmatch(r"[\w./-]+", t):
            terms.append(("exists", t, None))
        else:
            return None
    return terms


def selector_matches(terms, labels):
    labels = labels or {}
    for op, k, v in terms:
        if (op == "=" and labels.get(k) != v) or (op == "!=" and labels.get(k) == v) or \
                (op == "exists" and k not in labels) or (op == "!exists" and k in labels):
            return False
    return True


def canon_header(name):
    return "-".join(p.capitalize() for p in name.split("-"))


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    ssl_context = None

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.ssl_context.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        request.settimeout(10)
        try:
            request.do_handshake()          # in the worker thread, not the accept loop
        except (ssl.SSLError, OSError):
            return
        request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-watch are normal


class _PlainServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class FakeKubeAPI:
    def __init__(self, tmpdir, namespace="spate", token="token-1", pending_s=0.3, ready_s=0.5,
                 recreate_s=0.2, bookmark_interval=2.0, max_history=1000):
        self.namespace, self._token = namespace, token
        self.pending_s, self.ready_s, self.recreate_s = pending_s, ready_s, recreate_s
        self.bookmark_interval, self.max_history = bookmark_interval, max_history
        self.tmpdir = tmpdir
        self.sa_dir = os.path.join(tmpdir, "sa")
        os.makedirs(self.sa_dir, exist_ok=True)
        self._make_certs()
        self._write_sa_file("token", token)
        self._write_sa_file("namespace", namespace)
        self.url = None
        self.port = self.metrics_port = None
        self.requests, self.metrics_requests = [], []
        self._cv = threading.Condition(threading.RLock())
        self._rv = 0
        self._objs = {}          # (kind, name) -> stored object (status computed on output)
        self._tmpl_hash = {}     # (kind, name) -> hash of spec.template
        self._pods = {}          # name -> pod
        self._pod_owner = {}     # name -> (kind, name)
        self._pod_seq = {}       # name -> creation sequence number
        self._failed = set()     # uids of pods made NotReady by fail_pod
        self._ip_pod = {}        # ip -> pod name
        self._next_ip = 10
        self._seq = 0
        self._events = []        # (rv, type, pod copy), increasing rv
        self._compacted = 0      # history before (and at) this rv is gone
        self._scale_conflicts = 0
        self._watch_fault = None
        self._metrics_text = {}
        self._stopping = False
        self._servers = []

    # ---- setup -------------------------------------------------------------------------------
    def _make_certs(self):
        d = self.tmpdir
        p = lambda n: os.path.join(d, n)  # noqa: E731
        def run(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.crt"),
            "-days", "3", "-subj", "/CN=fake-kube-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"), "-out", p("server.csr"),
            "-subj", "/CN=kube-apiserver")
        with open(p("server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
                    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid,issuer\n")
        run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
            "-CAcreateserial", "-out", p("server.crt"), "-days", "3", "-extfile", p("server.ext"))
        self.ca_file, self.cert_file, self.key_file = p("ca.crt"), p("server.crt"), p("server.key")
        with open(self.ca_file) as f:
            self._write_sa_file("ca.crt", f.read())

    def _write_sa_file(self, name, text):
        tmp = os.path.join(self.sa_dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(self.sa_dir, name))  # atomic, like kubelet's projected volume

    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        api = _TLSServer(("127.0.0.1", 0), type("H", (_APIHandler,), {"fake": self}))
        api.ssl_context = ctx
        met = _PlainServer(("0.0.0.0", 0), type("M", (_MetricsHandler,), {"fake": self}))
        self.port, self.metrics_port = api.server_address[1], met.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        for srv in (api, met):
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
            self._servers.append(srv)
        return self

    def stop(self):
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self._servers = []

    def env(self):
        """The environment an in-cluster client sees."""
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(self.port)}

    # ---- test-facing API -----------------------------------------------------------------------
    def rotate_token(self, new_token):
        with self._cv:
            self._write_sa_file("token", new_token)
            self._token = new_token

    def requests_matching(self, method=None, path_prefix=None):
        with self._cv:
            return [r for r in self.requests if (method is None or r["method"] == method)
                    and (path_prefix is None or r["path"].startswith(path_prefix))]

    def objects(self):
        with self._cv:
            return {k: self._output(k) for k in self._objs}

    def pods(self, component=None):
        with self._cv:
            names = sorted(self._pods, key=lambda n: self._pod_seq[n])
            return [copy.deepcopy(self._pods[n]) for n in names if component is None
                    or self._pods[n]["metadata"].get("labels", {}).get(COMPONENT) == component]

    def conflict_next_scale_put(self, n=1):
        with self._cv:
            self._scale_conflicts += n

    def expire_next_watch(self, how="event"):
        assert how in ("event", "http")
        with self._cv:
            self._watch_fault = "410" + how

    def not_found_next_watch(self):
        with self._cv:
            self._watch_fault = "404"

    def compact(self):
        """Forget the whole event history (like etcd compaction): older resourceVersions -> 410."""
        with self._cv:
            self._compacted = self._rv
            self._events = []

    def fail_pod(self, name, ready=False, crash_loop=False):
        with self._cv:
            pod = self._pods[name]
            st = pod["status"]
            if not ready:
                self._failed.add(pod["metadata"]["uid"])
            self._set_ready(pod, ready)
            cs = st.setdefault("containerStatuses", [{"name": "main", "restartCount": 0}])
            if crash_loop:
                cs[0]["restartCount"] = cs[0].get("restartCount", 0) + 1
                cs[0]["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                              "message": f"back-off 10s restarting failed container={cs[0]['name']} pod={name}"}}
                cs[0]["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": now_iso()}}
                cs[0]["started"] = False
            self._emit("MODIFIED", pod)

    def set_pod_metrics(self, component, text):
        with self._cv:
            self._metrics_text[component] = text

    # ---- internals: state ----------------------------------------------------------------------
    def _bump(self):
        self._rv += 1
        return self._rv

    def _emit(self, etype, pod):
        rv = self._bump()
        pod["metadata"]["resourceVersion"] = str(rv)
        self._events.append((rv, etype, copy.deepcopy(pod)))
        if len(self._events) > self.max_history:
            drop = self._events[:len(self._events) - self.max_history]
            self._compacted = drop[-1][0]
            del self._events[:len(drop)]
        self._cv.notify_all()

    def _output(self, key):
        obj = copy.deepcopy(self._objs[key])
        kind = key[0]
        if kind in ("Deployment", "StatefulSet"):
            mine = [p for n, p in self._pods.items() if self._pod_owner.get(n) == key]
            ready = sum(1 for p in mine if self._is_ready(p))
            st = {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": len(mine),
                  "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": len(mine)}
            if kind == "Deployment":
                st["unavailableReplicas"] = len(mine) - ready
            else:
                st["currentReplicas"] = len(mine)
            obj["status"] = {k: v for k, v in st.items() if v}  # omitempty, like the real server
        return obj

    @staticmethod
    def _is_ready(pod):
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in pod["status"].get("conditions", []))

    @staticmethod
    def _set_ready(pod, ready):
        val = "True" if ready else "False"
        for c in pod["status"].get("conditions", []):
            if c["type"] in ("Ready", "ContainersReady") and c["status"] != val:
                c["status"], c["lastTransitionTime"] = val, now_iso()
        for cs in pod["status"].get("containerStatuses", []):
            cs["ready"] = ready

    def _replicas(self, key):
        r = self._objs[key].get("spec", {}).get("replicas")
        return 1 if r is None else r

    def _reconcile(self, key):
        with self._cv:
            if self._stopping or key not in self._objs:
                return
            want = self._replicas(key)
            mine = sorted((n for n in self._pods if self._pod_owner.get(n) == key),
                          key=lambda n: self._pod_seq[n])
            if key[0] == "StatefulSet":
                ords = {int(n.rsplit("-", 1)[1]): n for n in mine}
                for o in sorted(ords, reverse=True):
                    if o >= want:
                        self._remove_pod(ords[o])
                for o in range(want):
                    if o not in ords:
                        self._create_pod(key, f"{key[1]}-{o}")
            else:
                for n in reversed(mine[want:]):  # newest first
                    self._remove_pod(n)
                for _ in range(want - len(mine)):
                    while True:
                        n = f"{key[1]}-{self._tmpl_hash[key]}-{''.join(random.choices(_ALNUM, k=5))}"
                        if n not in self._pods:
                            break
                    self._create_pod(key, n)

    def _create_pod(self, key, name):
        obj = self._objs[key]
        tmpl = copy.deepcopy(obj.get("spec", {}).get("template", {}))
        labels = dict(tmpl.get("metadata", {}).get("labels", {}))
        h = self._tmpl_hash[key]
        if key[0] == "Deployment":
            labels["pod-template-hash"] = h
            owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{key[1]}-{h}",
                     "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, obj["metadata"]["uid"] + h))}
        else:
            labels["controller-revision-hash"] = f"{key[1]}-{h}"
            labels["statefulset.kubernetes.io/pod-name"] = name
            owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": key[1],
                     "uid": obj["metadata"]["uid"]}
        owner.update(controller=True, blockOwnerDeletion=True)
        meta = {"name": name, "namespace": self.namespace, "uid": str(uuid.uuid4()),
                "creationTimestamp": now_iso(), "labels": labels, "ownerReferences": [owner]}
        if tmpl.get("metadata", {}).get("annotations"):
            meta["annotations"] = dict(tmpl["metadata"]["annotations"])
        if key[0] == "Deployment":
            meta["generateName"] = f"{key[1]}-{h}-"
        spec = tmpl.get("spec", {})
        spec.setdefault("containers", [{"name": "main", "image": "spate"}])
        spec.setdefault("restartPolicy", "Always")
        spec["nodeName"] = "fake-node"
        if key[0] == "StatefulSet":
            spec.setdefault("hostname", name)
        pod = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec,
               "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                   {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                    "lastTransitionTime": now_iso()}]}}
        self._seq += 1
        self._pods[name], self._pod_owner[name], self._pod_seq[name] = pod, key, self._seq
        self._emit("ADDED", pod)
        self._later(self.pending_s, self._to_running, name, meta["uid"])

    def _later(self, delay, fn, *args):
        t = threading.Timer(delay, fn, args)
        t.daemon = True
        t.start()

    def _live(self, name, uid):
        p = self._pods.get(name)
        return p if p is not None and p["metadata"]["uid"] == uid and not self._stopping else None

    def _to_running(self, name, uid):
        with self._cv:
            pod = self._live(name, uid)
            if pod is None:
                return
            n = self._next_ip
            self._next_ip += 1 if (n + 1) % 256 != 255 else 3   # skip .255 and .0
            ip = f"127.0.{n // 256}.{n % 256}"
            self._ip_pod[ip] = name
            t = now_iso()
            st = pod["status"]
            st.update(phase="Running", hostIP="127.0.0.1", hostIPs=[{"ip": "127.0.0.1"}], podIP=ip,
                      podIPs=[{"ip": ip}], startTime=t)
            st["conditions"] = [{"type": ty, "status": s, "lastProbeTime": None, "lastTransitionTime": t}
                                for ty, s in (("Initialized", "True"), ("Ready", "False"),
                                              ("ContainersReady", "False"), ("PodScheduled", "True"))]
            st["containerStatuses"] = [
                {"name": c.get("name", "main"), "image": c.get("image", ""), "imageID": "",
                 "containerID": f"containerd://{uuid.uuid4().hex}", "ready": False, "restartCount": 0,
                 "started": True, "state": {"running": {"startedAt": t}}}
                for c in pod["spec"]["containers"]]
            self._emit("MODIFIED", pod)
            self._later(self.ready_s, self._to_ready, name, uid)

    def _to_ready(self, name, uid):
        with self._cv:
            pod = self._live(name, uid)
            if pod is None or uid in self._failed:
                return
            self._set_ready(pod, True)
            self._emit("MODIFIED", pod)

    def _remove_pod(self, name):
        pod = self._pods.pop(name)
        self._pod_owner.pop(name, None)
        self._pod_seq.pop(name, None)
        ip = pod["status"].get("podIP")
        if ip:
            self._ip_pod.pop(ip, None)
        pod["metadata"]["deletionTimestamp"] = now_iso()
        pod["metadata"]["deletionGracePeriodSeconds"] = 0
        self._emit("DELETED", pod)
        return pod

    # ---- internals: request handling -----------------------------------------------------------
    def _dispatch(self, h, method, path, q, body, ctype):
        """Returns (status, json object) or None when the handler already streamed the answer."""
        auth = h.headers.get("Authorization", "")
        with self._cv:
            token = self._token
        if auth != f"Bearer {token}":
            return 401, status_obj(401, "Unauthorized", "Unauthorized")
        routes = [
            (r"/api/v1/namespaces/([^/]+)/(configmaps)/([^/]+)", ("PATCH",), self._apply),
            (r"/apis/apps/v1/namespaces/([^/]+)/(deployments|statefulsets)/([^/]+)", ("PATCH",), self._apply),
            (r"/apis/apps/v1/namespaces/([^/]+)/(deployments|statefulsets)/([^/]+)/scale",
             ("GET", "PUT", "PATCH"), self._scale),
            (r"/api/v1/namespaces/([^/]+)/(pods)", ("GET",), self._pod_list),
            (r"/api/v1/namespaces/([^/]+)/(pods)/([^/]+)", ("GET", "DELETE"), self._pod_one),
        ]
        for rx, methods, fn in routes:
            m = re.fullmatch(rx, path)
            if not m:
                continue
            if method not in methods:
                return 405, status_obj(405, "MethodNotAllowed",
                                       "the server does not allow this method on the requested resource")
            ns, plural = m.group(1), m.group(2)
            if ns != self.namespace:
                verb = {"PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(method, "get")
                if plural == "pods" and m.lastindex == 2:
                    verb = "watch" if q.get("watch") in ("true", "1") else "list"
                grp = RESOURCES.get(plural, ("", "", ""))[2]
                sub = "/scale" if path.endswith("/scale") else ""
                return 403, status_obj(403, "Forbidden", f'{plural}{sub} is forbidden: User '
                                       f'"system:serviceaccount:{self.namespace}:spate-orchestrator" cannot '
                                       f'{verb} resource "{plural}{sub}" in API group "{grp}" in the namespace "{ns}"',
                                       {"kind": plural})
            return fn(h, method, plural, m.groups()[2:], q, body, ctype)
        return 404, status_obj(404, "NotFound", "the server could not find the requested resource", {})

    def _apply(self, h, method, plural, args, q, body, ctype):
        name = args[0]
        kind, api_version, group = RESOURCES[plural]
        qual = f"{kind}.{group}" if group else kind
        if ctype not in ("application/apply-patch+yaml", "application/apply-patch+cbor"):
            if ctype in ("application/merge-patch+json", "application/json-patch+json",
                         "application/strategic-merge-patch+json"):
                msg = "this fake only supports server-side apply (application/apply-patch+yaml) here"
            else:
                msg = ("the body of the request was in an unknown format - accepted media types include: "
                       "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
            return 415, status_obj(415, "UnsupportedMediaType", msg)
        manager = q.get("fieldManager", "")
        if not manager:
            return 400, status_obj(400, "BadRequest", 'PatchOptions.meta.k8s.io "" is invalid: '
                                   "fieldManager: Required value: is required for apply patch")
        if not isinstance(body, dict):
            return 400, status_obj(400, "BadRequest", "error decoding YAML: the fake accepts JSON apply bodies only")
        meta = body.get("metadata") or {}
        if body.get("kind") != kind or body.get("apiVersion") != api_version:
            return 400, status_obj(400, "BadRequest", f"the kind/apiVersion of the object ({body.get('apiVersion')}, "
                                   f"Kind={body.get('kind')}) does not match the URL ({api_version}, Kind={kind})")
        if meta.get("name") != name:
            return 400, status_obj(400, "BadRequest", f"the name of the object ({meta.get('name')}) does not "
                                   f"match the name on the URL ({name})")
        if meta.get("namespace", self.namespace) != self.namespace:
            return 400, status_obj(400, "BadRequest", "the namespace of the provided object does not match "
                                   "the namespace sent on the request")
        new = copy.deepcopy(body)
        new.pop("status", None)
        nmeta = new.setdefault("metadata", {})
        nmeta["namespace"] = self.namespace
        for k in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
            nmeta.pop(k, None)
        key = (kind, name)
        with self._cv:
            old = self._objs.get(key)
            if kind != "ConfigMap":
                spec = new.setdefault("spec", {})
                if spec.get("replicas") is None:
                    spec["replicas"] = 1
                sel = (spec.get("selector") or {}).get("matchLabels") or {}
                tl = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
                if not sel or any(tl.get(k) != v for k, v in sel.items()):
                    return 422, status_obj(422, "Invalid", f'{qual} "{name}" is invalid: spec.template.metadata.'
                                           f"labels: Invalid value: {json.dumps(tl)}: `selector` does not match "
                                           "template `labels`", {"name": name, "group": group, "kind": kind})
                if old is not None and old["spec"].get("selector") != spec.get("selector"):
                    return 422, status_obj(422, "Invalid", f'{qual} "{name}" is invalid: spec.selector: Invalid '
                                           f"value: {json.dumps(spec.get('selector'))}: field is immutable",
                                           {"name": name, "group": group, "kind": kind})
            entry = {"manager": manager, "operation": "Apply", "apiVersion": api_version,
                     "time": now_iso(), "fieldsType": "FieldsV1", "fieldsV1": {}}
            if old is None:
                nmeta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), managedFields=[entry])
                if kind != "ConfigMap":
                    nmeta["generation"] = 1
                nmeta["resourceVersion"] = str(self._bump())
                self._objs[key] = new
                code = 201
            else:
                strip = lambda o: {k: v for k, v in o.items() if k != "metadata"}  # noqa: E731
                ometa = {k: v for k, v in old["metadata"].items()
                         if k not in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")}
                managers = [e for e in old["metadata"].get("managedFields", []) if e["manager"] != manager]
                known = len(managers) < len(old["metadata"].get("managedFields", []))
                if strip(old) == strip(new) and ometa == nmeta and known:
                    return 200, self._output(key)             # no-op apply: nothing written
                for k in ("uid", "creationTimestamp", "generation"):
                    if k in old["metadata"]:
                        nmeta[k] = old["metadata"][k]
                if old.get("spec") != new.get("spec") and "generation" in nmeta:
                    nmeta["generation"] += 1
                nmeta["managedFields"] = managers + [entry]
                nmeta["resourceVersion"] = str(self._bump())
                self._objs[key] = new
                code = 200
            if kind != "ConfigMap":
                th = hashlib.sha256(json.dumps(new["spec"].get("template"), sort_keys=True).encode()).hexdigest()[:10]
                if old is not None and self._tmpl_hash.get(key) != th:  # recreate rollout
                    for n in [n for n in self._pods if self._pod_owner.get(n) == key]:
                        self._remove_pod(n)
                self._tmpl_hash[key] = th
                self._reconcile(key)
            return code, self._output(key)

    def _scale_obj(self, key):
        obj = self._objs[key]
        m = obj["metadata"]
        sel = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
        n = sum(1 for p in self._pod_owner.values() if p == key)
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": m["name"], "namespace": self.namespace, "uid": m["uid"],
                             "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
                "spec": {"replicas": self._replicas(key)},
                "status": {"replicas": n, "selector": ",".join(f"{k}={sel[k]}" for k in sorted(sel))}}

    def _scale(self, h, method, plural, args, q, body, ctype):
        name = args[0]
        kind = RESOURCES[plural][0]
        key = (kind, name)
        with self._cv:
            if key not in self._objs:
                return not_found(plural, name)
            if method == "GET":
                return 200, self._scale_obj(key)
            if method == "PATCH" and ctype != "application/merge-patch+json":
                return 415, status_obj(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                                       "format - accepted media types include: application/merge-patch+json")
            if not isinstance(body, dict):
                return 400, status_obj(400, "BadRequest", "the object provided is unrecognized (must be of type Scale)")
            if method == "PUT" and self._scale_conflicts > 0:
                self._scale_conflicts -= 1
                self._objs[key]["metadata"]["resourceVersion"] = str(self._bump())
            meta = body.get("metadata") or {}
            if body.get("kind", "Scale") != "Scale":
                return 400, status_obj(400, "BadRequest", f"Scale in version \"v1\" cannot be handled as a Scale: "
                                       f"kind {body.get('kind')!r}")
            if meta.get("name", name) != name:
                return 400, status_obj(400, "BadRequest", f"the name of the object ({meta.get('name')}) does "
                                       f"not match the name on the URL ({name})")
            cur = self._objs[key]["metadata"]["resourceVersion"]
            if meta.get("resourceVersion") not in (None, "", cur):
                return 409, status_obj(409, "Conflict", f'Operation cannot be fulfilled on {plural}.apps "{name}": '
                                       "the object has been modified; please apply your changes to the latest "
                                       "version and try again", {"name": name, "group": "apps", "kind": plural})
            spec = body.get("spec") or {}
            if method == "PUT":
                replicas = spec.get("replicas", 0)
            else:
                replicas = spec.get("replicas", self._replicas(key))
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                return 422, status_obj(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: '
                                       f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
                                       {"name": name, "group": "autoscaling", "kind": "Scale"})
            if replicas != self._replicas(key):
                obj = self._objs[key]
                obj["spec"]["replicas"] = replicas
                obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
                obj["metadata"]["resourceVersion"] = str(self._bump())
                self._reconcile(key)
            return 200, self._scale_obj(key)

    def _pod_one(self, h, method, plural, args, q, body, ctype):
        name = args[0]
        with self._cv:
            pod = self._pods.get(name)
            if pod is None:
                return not_found("pods", name)
            if method == "GET":
                return 200, copy.deepcopy(pod)
            pre = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
            for f in ("uid", "resourceVersion"):
                if pre.get(f) and pre[f] != pod["metadata"][f]:
                    return 409, status_obj(409, "Conflict", f'Operation cannot be fulfilled on pods "{name}": '
                                           f"Precondition failed: {f}: {pre[f]}, ObjectMeta.{f}: "
                                           f"{pod['metadata'][f]}", {"name": name, "kind": "pods"})
            owner = self._pod_owner.get(name)
            gone = self._remove_pod(name)
            if owner:
                self._later(self.recreate_s, self._reconcile, owner)
            return 200, copy.deepcopy(gone)

    def _pod_list(self, h, method, plural, args, q, body, ctype):
        terms = parse_selector(q.get("labelSelector"))
        if terms is None:
            return 400, status_obj(400, "BadRequest", f"unable to parse requirement: {q.get('labelSelector')!r}")
        if q.get("watch") in ("true", "1"):
            return self._watch(h, q, terms)
        with self._cv:
            items = [p for p in self.pods() if selector_matches(terms, p["metadata"].get("labels"))]
            return 200, {"kind": "PodList", "apiVersion": "v1",
                         "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _watch(self, h, q, terms):
        with self._cv:
            fault, self._watch_fault = self._watch_fault, None
            cur = self._rv
        rv = q.get("resourceVersion", "")
        if fault == "410http":
            return 410, status_obj(410, "Expired", f"too old resource version: {rv or 1} ({cur})")
        if fault == "404":
            return 404, status_obj(404, "NotFound", "the server could not find the requested resource", {})
        if rv not in ("", "0") and not rv.isdigit():
            return 400, status_obj(400, "BadRequest", f'resourceVersion: Invalid value: "{rv}": must be numeric')
        try:
            timeout = float(q.get("timeoutSeconds") or 30)
        except ValueError:
            return 400, status_obj(400, "BadRequest", "timeoutSeconds: Invalid value")
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        h.start_stream()

        def expired(since):
            return {"type": "ERROR", "object": status_obj(
                410, "Expired", f"too old resource version: {since} ({self._compacted + 1})")}

        out = []
        with self._cv:
            if fault == "410event":
                out, done = [expired(rv or 1)], True
            elif rv in ("", "0"):
                out = [{"type": "ADDED", "object": p} for p in self.pods()
                       if selector_matches(terms, p["metadata"].get("labels"))]
                last, done = self._rv, False
            elif int(rv) < self._compacted:
                out, done = [expired(rv)], True
            else:
                last, done = int(rv), False
        deadline = time.monotonic() + timeout
        next_bm = time.monotonic() + self.bookmark_interval
        try:
            while True:
                for ev in out:
                    h.write_chunk((json.dumps(ev) + "\n").encode())
                if done:
                    break
                out = []
                with self._cv:
                    while not self._stopping:
                        if last < self._compacted:     # fell out of the history window
                            out, done = [expired(last)], True
                            break
                        new = [e for e in self._events if e[0] > last]
                        if new:
                            last = new[-1][0]
                            out = [{"type": t, "object": copy.deepcopy(o)} for _, t, o in new
                                   if selector_matches(terms, o["metadata"].get("labels"))]
                            if out:
                                break
                            continue
                        t = time.monotonic()
                        if t >= deadline:
                            done = True
                            break
                        if bookmarks and t >= next_bm:
                            last = self._rv
                            out = [{"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
                                                                   "metadata": {"resourceVersion": str(last)}}}]
                            next_bm = t + self.bookmark_interval
                            break
                        self._cv.wait(min(deadline - t, max(0.01, next_bm - t)) if bookmarks else deadline - t)
                    if self._stopping:
                        return None
            h.write_chunk(b"")      # the terminating zero-length chunk
        except OSError:
            pass                    # client went away
        h.close_connection = True
        return None


class _APIHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"
    fake = None

    def log_message(self, *args):
        pass

    def _handle(self):
        u = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        raw = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        elif int(self.headers.get("Content-Length") or 0):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        self._rec = {"method": self.command, "path": u.path, "query": query,
                     "headers": {canon_header(k): v for k, v in self.headers.items()},
                     "body": body, "status": None, "time": time.time()}
        try:
            res = self.fake._dispatch(self, self.command, u.path, query, body, ctype)
        except Exception as e:  # a bug in the fake: answer like an apiserver panic would
            res = 500, status_obj(500, "InternalError", f"Internal error occurred: {e!r}")
        if res is not None:
            self._send_json(*res)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = _handle

    def _record(self, code):
        self._rec["status"] = code
        with self.fake._cv:
            self.fake.requests.append(self._rec)

    def _headers(self, code, extra):
        self._record(code)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def _send_json(self, code, obj):
        data = json.dumps(obj).encode()
        self._headers(code, [("Content-Length", str(len(data)))])
        self.wfile.write(data)

    def start_stream(self):
        self._headers(200, [("Transfer-Encoding", "chunked")])

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        fake = self.fake
        ip = self.connection.getsockname()[0]
        path = urllib.parse.urlsplit(self.path).path
        with fake._cv:
            name = fake._ip_pod.get(ip)
            pod = copy.deepcopy(fake._pods.get(name)) if name else None
            comp = pod and pod["metadata"].get("labels", {}).get(COMPONENT)
            text = fake._metrics_text.get(comp, DEFAULT_METRICS)
            fake.metrics_requests.append({"ip": ip, "path": path, "pod": name})
        ctype = "text/plain; charset=utf-8"
        if pod is None or path not in ("/metrics", "/health", "/ready"):
            code, out = 404, "not found\n"
        else:
            cs = (pod["status"].get("containerStatuses") or [{}])[0]
            running = pod["status"].get("phase") == "Running" and "running" in cs.get("state", {})
            if path == "/ready":
                code = 200 if running and FakeKubeAPI._is_ready(pod) else 503
                out = "ready\n" if code == 200 else "not ready\n"
            elif not running:
                code, out = 503, "container not running\n"
            elif path == "/health":
                code, out = 200, "ok\n"
            else:
                code = 200
                out = text(pod) if callable(text) else text
                ctype = "text/plain; version=0.0.4; charset=utf-8"
        data = out.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# ---- self-test ------------------------------------------------------------------------------------
if __name__ == "__main__":
    import http.client
    import queue
    import sys
    import tempfile

    tmp = tempfile.mkdtemp(prefix="fake-kube-")
    fake = FakeKubeAPI(tmp, pending_s=0.1, ready_s=0.15, recreate_s=0.1).start()
    NS = "/api/v1/namespaces/spate"
    APPS = "/apis/apps/v1/namespaces/spate"
    ctx = ssl.create_default_context(cafile=os.path.join(fake.sa_dir, "ca.crt"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    tok = [open(os.path.join(fake.sa_dir, "token")).read()]

    def call(method, path, body=None, ctype="application/json", token=True):
        c = http.client.HTTPSConnection("127.0.0.1", fake.port, context=ctx, timeout=10)
        hdr = {"Accept": "application/json"}
        if token:
            hdr["Authorization"] = f"Bearer {tok[0] if token is True else token}"
        if body is not None:
            hdr["Content-Type"] = ctype
        c.request(method, path, json.dumps(body) if body is not None else None, hdr)
        r = c.getresponse()
        out = json.loads(r.read() or b"null")
        c.close()
        return r.status, out

    def watch(query, sink):
        c = http.client.HTTPSConnection("127.0.0.1", fake.port, context=ctx, timeout=30)
        c.request("GET", f"{NS}/pods?watch=true&{query}", headers={"Authorization": f"Bearer {tok[0]}"})
        r = c.getresponse()
        sink.put(("status", r.status, r.getheader("Transfer-Encoding")))
        for line in iter(r.readline, b""):
            sink.put(("event", json.loads(line)))
        sink.put(("end",))

    def watch_all(query):
        q = queue.Queue()
        watch(query, q)
        return [q.get() for _ in range(q.qsize())]

    def wait_for(cond, what, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if cond():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def deployment(name, comp, replicas, image="spate:1"):
        labels = {"app.kubernetes.io/instance": "qs", COMPONENT: comp}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
                "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": comp, "image": image}]}}}}

    # TLS verification is really on: a context without our CA must fail.
    try:
        http.client.HTTPSConnection("127.0.0.1", fake.port, context=ssl.create_default_context(),
                                    timeout=5).request("GET", "/")
        raise AssertionError("certificate accepted without the CA")
    except ssl.SSLCertVerificationError:
        pass
    # auth
    st, obj = call("GET", f"{NS}/pods", token=False)
    assert st == 401 and obj["reason"] == "Unauthorized" and obj["kind"] == "Status", obj
    assert call("GET", f"{NS}/pods", token="nope")[0] == 401
    assert call("GET", "/api/v1/nodes")[0] == 404 and call("POST", f"{NS}/pods/x")[0] == 405
    assert call("GET", "/api/v1/namespaces/other/pods")[0] == 403
    # server-side apply of a ConfigMap
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}}
    SSA = "application/apply-patch+yaml"
    assert call("PATCH", f"{NS}/configmaps/cfg?fieldManager=spate", cm)[0] == 415
    assert call("PATCH", f"{NS}/configmaps/cfg", cm, SSA)[0] == 400
    assert call("PATCH", f"{NS}/configmaps/other?fieldManager=spate", cm, SSA)[0] == 400
    st, c1 = call("PATCH", f"{NS}/configmaps/cfg?fieldManager=spate&force=true", cm, SSA)
    assert st == 201, (st, c1)
    cm["data"]["a"] = "2"
    st, c2 = call("PATCH", f"{NS}/configmaps/cfg?fieldManager=spate&force=true", cm, SSA)
    assert st == 200 and int(c2["metadata"]["resourceVersion"]) > int(c1["metadata"]["resourceVersion"])
    assert c2["metadata"]["uid"] == c1["metadata"]["uid"] and fake.objects()[("ConfigMap", "cfg")]["data"]["a"] == "2"
    rec = fake.requests_matching("PATCH", f"{NS}/configmaps/cfg")[-1]
    assert rec["headers"]["Authorization"] == "Bearer token-1" and rec["headers"]["Content-Type"] == SSA
    assert rec["query"]["fieldManager"] == "spate" and rec["body"] == cm and rec["status"] == 200
    # a Deployment with 2 replicas: pods appear and become Ready, seen through a watch
    st, lst = call("GET", f"{NS}/pods?labelSelector=" + urllib.parse.quote(f"{COMPONENT}=proc"))
    assert st == 200 and lst["kind"] == "PodList" and lst["items"] == []
    events = queue.Queue()
    sel = urllib.parse.quote(f"app.kubernetes.io/instance=qs,{COMPONENT}=proc")
    threading.Thread(target=watch, daemon=True, args=(
        f"labelSelector={sel}&resourceVersion={lst['metadata']['resourceVersion']}&timeoutSeconds=20", events)).start()
    assert events.get(timeout=5) == ("status", 200, "chunked")
    st, dep = call("PATCH", f"{APPS}/deployments/proc?fieldManager=spate", deployment("proc", "proc", 2), SSA)
    assert st == 201 and dep["metadata"]["generation"] == 1, dep
    wait_for(lambda: len(fake.pods("proc")) == 2 and all(FakeKubeAPI._is_ready(p) for p in fake.pods("proc")),
             "2 ready pods")
    seen = []
    while len([e for e in seen if e["type"] == "MODIFIED"]) < 4:
        seen.append(events.get(timeout=5)[1])
    assert [e["type"] for e in seen].count("ADDED") == 2
    names = {p["metadata"]["name"] for p in fake.pods("proc")}
    assert all(re.fullmatch(r"proc-[0-9a-f]{10}-[a-z0-9]{5}", n) for n in names), names
    ips = {p["status"]["podIP"] for p in fake.pods("proc")}
    assert len(ips) == 2 and all(ip.startswith("127.0.0.") for ip in ips)
    # scale subresource
    st, sc = call("GET", f"{APPS}/deployments/proc/scale")
    assert st == 200 and sc["kind"] == "Scale" and sc["spec"]["replicas"] == 2 and sc["status"]["replicas"] == 2
    assert sc["status"]["selector"] == f"{COMPONENT}=proc,app.kubernetes.io/instance=qs", sc
    assert call("GET", f"{APPS}/deployments/nope/scale")[0] == 404
    sc["spec"]["replicas"] = 3
    st, sc3 = call("PUT", f"{APPS}/deployments/proc/scale", sc)
    assert st == 200 and sc3["spec"]["replicas"] == 3, sc3
    wait_for(lambda: len(fake.pods("proc")) == 3, "3 pods")
    fake.conflict_next_scale_put()
    sc3["spec"]["replicas"] = 1
    st, obj = call("PUT", f"{APPS}/deployments/proc/scale", sc3)
    assert st == 409 and obj["reason"] == "Conflict" and "has been modified" in obj["message"], obj
    st, sc2 = call("PATCH", f"{APPS}/deployments/proc/scale", {"spec": {"replicas": 2}}, "application/merge-patch+json")
    assert st == 200 and sc2["spec"]["replicas"] == 2
    wait_for(lambda: len(fake.pods("proc")) == 2, "back to 2 pods")
    # DELETE a pod -> recreated under a new name
    victim = fake.pods("proc")[0]["metadata"]["name"]
    st, gone = call("DELETE", f"{NS}/pods/{victim}")
    assert st == 200 and gone["metadata"]["name"] == victim and call("GET", f"{NS}/pods/{victim}")[0] == 404
    assert call("DELETE", f"{NS}/pods/{victim}")[0] == 404
    wait_for(lambda: len(fake.pods("proc")) == 2 and victim not in {p["metadata"]["name"] for p in fake.pods("proc")},
             "recreated pod")
    wait_for(lambda: any(e[1]["type"] == "DELETED" and e[1]["object"]["metadata"]["name"] == victim
                         for e in list(events.queue)), "DELETED event")
    # watch faults
    wait_for(lambda: all(FakeKubeAPI._is_ready(p) for p in fake.pods("proc")), "ready again")
    fake.expire_next_watch("event")
    ev = watch_all("resourceVersion=1")
    assert ev[0][:2] == ("status", 200) and ev[1][1]["type"] == "ERROR" and ev[1][1]["object"]["code"] == 410, ev
    assert ev[-1] == ("end",) and len(ev) == 3
    fake.expire_next_watch("http")
    st, obj = call("GET", f"{NS}/pods?watch=1&resourceVersion=1")
    assert st == 410 and obj["reason"] == "Expired"
    fake.not_found_next_watch()
    assert call("GET", f"{NS}/pods?watch=true")[0] == 404
    ev = watch_all("timeoutSeconds=1")          # no resourceVersion: synthetic ADDED, then timeout
    assert [e[1]["type"] for e in ev[1:-1]] == ["ADDED"] * 2 and ev[-1] == ("end",), ev
    fake.compact()
    ev = watch_all("resourceVersion=1&timeoutSeconds=5")
    assert ev[1][1]["type"] == "ERROR" and ev[1][1]["object"]["reason"] == "Expired", ev
    # pod metrics server, per pod IP

    def get(ip, path):
        c = http.client.HTTPConnection(ip, fake.metrics_port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    pods = fake.pods("proc")
    for p in pods:
        ip = p["status"]["podIP"]
        assert get(ip, "/health")[0] == 200 and get(ip, "/ready")[0] == 200
        st, text = get(ip, "/metrics")
        assert st == 200 and "process_cpu_seconds_total 0.1" in text
    fake.set_pod_metrics("proc", "spate_lag 42\n")
    assert get(pods[0]["status"]["podIP"], "/metrics") == (200, "spate_lag 42\n")
    assert get("127.0.0.1", "/metrics")[0] == 404
    fake.fail_pod(pods[1]["metadata"]["name"], crash_loop=True)
    assert get(pods[1]["status"]["podIP"], "/ready")[0] == 503 and get(pods[0]["status"]["podIP"], "/ready")[0] == 200
    p1 = [p for p in fake.pods("proc") if p["metadata"]["name"] == pods[1]["metadata"]["name"]][0]
    cs = p1["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" and cs["restartCount"] == 1
    wait_for(lambda: any(e[0] == "event" and e[1]["type"] == "MODIFIED" and not e[1]["object"]["status"][
        "containerStatuses"][0]["ready"] and e[1]["object"]["metadata"]["name"] == p1["metadata"]["name"] and
        "waiting" in e[1]["object"]["status"]["containerStatuses"][0]["state"] for e in list(events.queue)),
        "crash-loop MODIFIED")
    # StatefulSet: ordinal names, scale down removes the highest, template change recreates
    ss = deployment("an", "analytics", 2)
    ss["kind"] = "StatefulSet"
    ss["spec"]["serviceName"] = "an"
    assert call("PATCH", f"{APPS}/statefulsets/an?fieldManager=spate", ss, SSA)[0] == 201
    wait_for(lambda: sorted(p["metadata"]["name"] for p in fake.pods("analytics")) == ["an-0", "an-1"], "an-0/1")
    st, sc = call("PUT", f"{APPS}/statefulsets/an/scale", {"kind": "Scale", "apiVersion": "autoscaling/v1",
                                                           "metadata": {"name": "an"}, "spec": {"replicas": 1}})
    assert st == 200 and [p["metadata"]["name"] for p in fake.pods("analytics")] == ["an-0"]
    uid0 = fake.pods("analytics")[0]["metadata"]["uid"]
    ss["spec"]["replicas"] = 1
    ss["spec"]["template"]["spec"]["containers"][0]["image"] = "spate:2"
    st, obj = call("PATCH", f"{APPS}/statefulsets/an?fieldManager=spate", ss, SSA)
    assert st == 200 and obj["metadata"]["generation"] == 3, obj
    pods = fake.pods("analytics")
    assert len(pods) == 1 and pods[0]["metadata"]["name"] == "an-0" and pods[0]["metadata"]["uid"] != uid0
    assert pods[0]["spec"]["containers"][0]["image"] == "spate:2"
    # token rotation
    fake.rotate_token("token-2")
    assert call("GET", f"{NS}/pods")[0] == 401
    tok[0] = open(os.path.join(fake.sa_dir, "token")).read()
    assert tok[0] == "token-2" and call("GET", f"{NS}/pods")[0] == 200
    assert fake.requests_matching("GET", f"{NS}/pods")[-2]["status"] == 401
    fake.stop()
    print(f"OK ({len(fake.requests)} requests recorded)")
    sys.exit(0)
