// The Kubernetes client's parsers (pods, watch events), API paths and query escaping, the
// deployment file's backend keys, and the JSON form of the rendered objects (what the in-cluster
// orchestrator applies). The client against an API server is tested end to end by
// tests/e2e/test_k8s_orchestrate.py (a recording fake API server over TLS).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "orchestrate/k8s_client.h"
#include "orchestrate/k8s_render.h"
#include "spate/orchestrator.h"
#include "test_util.h"

namespace spate::orchestrate {
namespace {

TEST(KubeParse, PodReadinessRestartsAndWaitingReason) {
  auto p = parse_pod(R"J({"metadata":{"name":"q-errors-1","resourceVersion":"42",
    "uid":"u-1","labels":{"app.kubernetes.io/component":"errors"}},
    "status":{"phase":"Running","podIP":"10.0.0.7",
      "conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"False"}],
      "containerStatuses":[{"restartCount":3,"state":{"waiting":{"reason":"CrashLoopBackOff"}}},
                           {"restartCount":1,"state":{"running":{}}}]}})J");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->name, "q-errors-1");
  EXPECT_EQ(p->component, "errors");
  EXPECT_EQ(p->uid, "u-1");
  EXPECT_EQ(p->phase, "Running");
  EXPECT_EQ(p->pod_ip, "10.0.0.7");
  EXPECT_FALSE(p->ready);
  EXPECT_EQ(p->restarts, 4);
  EXPECT_EQ(p->waiting_reason, "CrashLoopBackOff");
  EXPECT_EQ(p->resource_version, "42");
  EXPECT_FALSE(p->deleting);

  auto fresh = parse_pod(R"J({"metadata":{"name":"new","deletionTimestamp":"2026-12-03T08:00:00Z"}})J");
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->deleting);
  EXPECT_TRUE(fresh->phase.empty());
  EXPECT_FALSE(fresh->ready);

  EXPECT_FALSE(parse_pod("not json").ok());
  EXPECT_FALSE(parse_pod(R"J({"metadata":{}})J").ok());
}

TEST(KubeParse, WatchEvents) {
  auto a = parse_watch_event(R"J({"type":"ADDED","object":{"metadata":{"name":"p1","resourceVersion":"9"},
    "status":{"conditions":[{"type":"Ready","status":"True"}]}}})J");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->type, "ADDED");
  EXPECT_EQ(a->pod.name, "p1");
  EXPECT_TRUE(a->pod.ready);
  EXPECT_EQ(a->pod.resource_version, "9");

  auto gone = parse_watch_event(R"J({"type":"ERROR","object":{"kind":"Status","code":410,
    "reason":"Expired","message":"too old resource version: 5 (90)"}})J");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->type, "ERROR");
  EXPECT_EQ(gone->error_code, 410);
  EXPECT_NE(gone->error_message.find("too old"), std::string::npos);

  auto bm = parse_watch_event(R"J({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"777"}}})J");
  ASSERT_TRUE(bm.ok());
  EXPECT_EQ(bm->pod.resource_version, "777");

  EXPECT_FALSE(parse_watch_event(R"J({"type":"EXPLODED","object":{}})J").ok());
  EXPECT_FALSE(parse_watch_event(R"J({"object":{}})J").ok());
  EXPECT_FALSE(parse_watch_event(R"J({"type":"ADDED","object":{"metadata":{}}})J").ok());
  EXPECT_FALSE(parse_watch_event("{\"type\":\"ADDED\",").ok());
}

TEST(KubePaths, ObjectPathsAndQueryEscaping) {
  EXPECT_EQ(k8s_object_path("apps/v1", "Deployment", "ns", "d"), "/apis/apps/v1/namespaces/ns/deployments/d");
  EXPECT_EQ(k8s_object_path("apps/v1", "StatefulSet", "ns", "s"), "/apis/apps/v1/namespaces/ns/statefulsets/s");
  EXPECT_EQ(k8s_object_path("v1", "ConfigMap", "ns", "c"), "/api/v1/namespaces/ns/configmaps/c");
  EXPECT_EQ(k8s_object_path("v1", "Namespace", "ns", "c"), "");  // not namespaced: not applied by us
  EXPECT_EQ(k8s_query_escape("app.kubernetes.io/instance=q,a=b"), "app.kubernetes.io%2Finstance%3Dq%2Ca%3Db");
}

TEST(KubeClientConfigTest, RefusesWhatCannotWork) {
  spate::testing::TempDir dir;
  KubeClientConfig c;
  c.service_account_dir = dir.path();
  c.api_server = "http://127.0.0.1:6443";
  auto r = KubeClient::create(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("https://"), std::string::npos) << r.status().message();
  c.api_server = "https://127.0.0.1:6443";
  r = KubeClient::create(c);
  ASSERT_FALSE(r.ok());  // no token file
  EXPECT_NE(r.status().message().find("token"), std::string::npos) << r.status().message();
  std::ofstream(dir.sub("token")) << "t\n";
  std::ofstream(dir.sub("ca.crt")) << "-----BEGIN CERTIFICATE-----\n";
  r = KubeClient::create(c);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->server_url(), "https://127.0.0.1:6443");
  // Nothing listens there: a clear transport error, not a crash or a hang.
  auto resp = (*r)->request("GET", "/api/v1/namespaces/spate/pods");
  EXPECT_FALSE(resp.ok());
}

TEST(KubeRender, ObjectsAreJsonInApplyOrderWithTheirComponents) {
  auto d = load_deployment_file("examples/deployment.yaml");
  ASSERT_TRUE(d.ok()) << d.status().message();
  std::ifstream f(d->pipeline_path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto objs = render_k8s_objects(*d, text);
  ASSERT_TRUE(objs.ok()) << objs.status().message();
  ASSERT_FALSE(objs->empty());
  EXPECT_EQ(objs->front().kind, "Namespace");
  int workloads = 0;
  for (const K8sObject& o : *objs) {
    simdjson::dom::parser p;
    simdjson::dom::element e;
    ASSERT_FALSE(p.parse(simdjson::padded_string(o.json)).get(e)) << o.kind << " " << o.name;
    std::string_view kind, name;
    ASSERT_FALSE(e["kind"].get(kind));
    ASSERT_FALSE(e["metadata"]["name"].get(name));
    EXPECT_EQ(kind, o.kind);
    EXPECT_EQ(name, o.name);
    if (o.kind == "Deployment" || o.kind == "StatefulSet") {
      ++workloads;
      int64_t replicas = 0;
      EXPECT_FALSE(e["spec"]["replicas"].get(replicas)) << "replicas is a JSON number in " << o.name;
      EXPECT_GE(replicas, 1);
      EXPECT_FALSE(o.component.empty());
      EXPECT_EQ(o.name, d->name + "-" + o.component);
    }
  }
  EXPECT_EQ(workloads, static_cast<int>(d->components.size()));
}

TEST(KubeDeployment, BackendKeys) {
  spate::testing::TempDir dir;
  std::ofstream(dir.sub("deploy.yaml")) << "pipeline: " << std::filesystem::absolute("examples/quickstart.yaml").string()
                                        << R"J(
backend: kubernetes
kubernetes: {api_server: "https://10.0.0.1:443", service_account_dir: /sa, metrics_port: 9100, request_timeout: 3s}
components: [{name: ingestion, type: ingestion}, {name: errors, type: processor, processors: [errors]}, {name: analytics, type: analytics}]
)J";
  auto d = load_deployment_file(dir.sub("deploy.yaml"));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->backend, "kubernetes");
  EXPECT_EQ(d->kubernetes.api_server, "https://10.0.0.1:443");
  EXPECT_EQ(d->kubernetes.service_account_dir, "/sa");
  EXPECT_EQ(d->kubernetes.metrics_port, 9100);
  EXPECT_EQ(d->kubernetes.request_timeout_ms, 3000);

  std::ofstream(dir.sub("bad.yaml")) << "pipeline: " << std::filesystem::absolute("examples/quickstart.yaml").string()
                                     << "\nbackend: nomad\nkubernetes: {api_server: \"http://x\"}\ncomponents: []\n";
  auto b = load_deployment_file(dir.sub("bad.yaml"));
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find(":2:10: backend"), std::string::npos) << b.status().message();
  EXPECT_NE(b.status().message().find("kubernetes.api_server: must be an https:// URL"), std::string::npos)
      << b.status().message();
}

}  // namespace
}  // namespace spate::orchestrate
