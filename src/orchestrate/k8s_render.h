// `spate k8s render`: the Kubernetes manifests of a deployment file (docs/kubernetes.md).
//
// What it does: render_k8s_manifests() turns a parsed deployment (load_deployment_file) and the
// text of its pipeline file into one multi-document YAML stream (documents separated by `---`,
// block-style YAML written by hand, with `#` comments that say why an object looks the way it
// does). In order:
//  - a Namespace (d.k8s_namespace);
//  - the orchestrator's ServiceAccount `<name>-orchestrator`, a least-privilege Role (no
//    wildcards; every rule commented with why its verbs are there) and its RoleBinding;
//  - a ConfigMap `<name>-pipeline` whose key `pipeline.yaml` is the pipeline file's text,
//    mounted read-only at /etc/spate in every pod;
//  - per component, in the deployment's start order (the log first):
//      log (embedded log only): Service `<name>-log` (8080 http, 8000 metrics) and a StatefulSet
//        of 1 replica with a volumeClaimTemplate `data` (the log's disk) at /var/lib/spate;
//      explicit-partition components (processors on the embedded log or with exactly_once, and
//        every analytics component): a headless Service and a StatefulSet whose pods run
//        `sh -c 'exec spate run ... --replica ${HOSTNAME##*-}/N'` (I = the pod's ordinal);
//        analytics also get a volumeClaimTemplate for their window checkpoints;
//      other components: a Deployment running `spate run /etc/spate/pipeline.yaml --role ROLE
//        --port 8080 --metrics-port 8000 --data-dir /var/lib/spate ...` (emptyDir data), and a
//        Service on 8080 for ingestion components.
//    Every pod: image d.image, resources from cpu/memory, env and envFrom secretRefs, probes
//    (startup and liveness on /health, readiness on /ready, port 8080) derived from the
//    monitor and healing settings, prometheus.io scrape annotations (port 8000), and a
//    checksum of the pipeline text so that a changed pipeline rolls the pods;
//  - given the deployment file's text: the orchestrator's Deployment (last).
//
// The output depends only on its inputs (no clock, no environment, no paths beyond file base
// names): the same deployment and pipeline give the same bytes.
//
// Thread safety: pure functions.
//
// Errors: kConfig when a name the manifests need is not a valid Kubernetes name (RFC 1123 /
// RFC 1035 labels of at most 63 characters; `<name>-<component>` must stay within 52 because a
// StatefulSet's pods and revisions append to it), when the image is empty or holds whitespace,
// or when the pipeline text cannot be stored in a ConfigMap (not valid UTF-8).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "spate/orchestrator.h"
#include "spate/status.h"

namespace spate::orchestrate {

/// The manifests of `d`, whose pipeline file holds `pipeline_yaml_text`.
/// With `deployment_yaml_text` (the deployment file's own text), the ConfigMap also holds it as
/// `deployment.yaml`, and a Deployment `<name>-orchestrator` runs the in-cluster orchestrator
/// under the ServiceAccount (`spate orchestrate /etc/spate/deployment.yaml --backend kubernetes`).
Result<std::string> render_k8s_manifests(const DeploymentConfig& d,
                                         std::string_view pipeline_yaml_text,
                                         std::string_view deployment_yaml_text = {});

/// One object of the manifests, as JSON (for server-side apply by the in-cluster orchestrator).
struct K8sObject {
  std::string api_version;  // "apps/v1"
  std::string kind;         // "Deployment"
  std::string name;         // metadata.name
  std::string component;    // label app.kubernetes.io/component ("" if none)
  std::string json;         // the whole object
};

/// The same objects as render_k8s_manifests(), in the same order, each as one JSON document.
Result<std::vector<K8sObject>> render_k8s_objects(const DeploymentConfig& d,
                                                  std::string_view pipeline_yaml_text,
                                                  std::string_view deployment_yaml_text = {});

/// Problems that do not stop rendering but will stop the pods from working, one sentence each
/// (e.g. Kafka brokers at a loopback address, which in a pod is the pod itself). The pipeline's
/// server.host is not one of them: every pod runs `spate run --host 0.0.0.0`.
std::vector<std::string> k8s_render_warnings(const DeploymentConfig& d);

/// Why `c` runs with an explicit partition split (replica I of N) and so as a StatefulSet; ""
/// when it is a plain Deployment (ingestion, group-membership processors on Kafka) or the log.
std::string k8s_explicit_split_reason(const DeploymentConfig& d, const ComponentConfig& c);

}  // namespace spate::orchestrate
