// KubeClient: the orchestrator's client of the Kubernetes API, in-cluster (docs/kubernetes.md).
//
// What it does: HTTPS requests to the API server (Boost.Beast over OpenSSL, TLS 1.2+, the
// server certificate verified against the service account's CA and the server's name or IP),
// each authenticated with the service account's bearer token. The token and the CA are read
// from the service-account directory on every request, so a rotated (projected) token or CA is
// picked up without a restart. One connection per request: the orchestrator's API traffic is a
// few requests per monitor interval, and a fresh connection never carries a stale state.
//
// On top of request(): server-side apply (PATCH application/apply-patch+yaml with a field
// manager and force), the `scale` subresource (GET, then PUT with the resourceVersion it read;
// a 409 Conflict is retried with a fresh GET), pod list, pod watch (a streamed response read
// line by line) and pod delete.
//
// Thread safety: every method may be called from any thread (no shared mutable state).
//
// Errors: kConfig for an unusable configuration (no API server address, unreadable token or CA);
// kUnavailable when the server cannot be reached or the TLS handshake fails; kTimeout;
// request() returns any HTTP status as a success (check KubeResponse::status); the helpers turn
// a non-2xx answer into an error carrying the status code and the API's message.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "spate/status.h"

namespace spate::orchestrate {

struct KubeClientConfig {
  // "https://host:port"; "" = https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
  std::string api_server;
  // Holds `token` and `ca.crt` (and `namespace`), as Kubernetes mounts them in a pod.
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  int64_t timeout_ms = 10000;
  std::string field_manager = "spate-orchestrator";
};

struct KubeResponse {
  int status = 0;
  std::string body;
};

/// What list/watch return about a pod.
struct PodInfo {
  std::string name;
  std::string uid;        // metadata.uid: a StatefulSet's replacement pod has the same name
  std::string component;  // label app.kubernetes.io/component
  std::string phase;      // Pending Running Succeeded Failed Unknown
  std::string pod_ip;
  bool ready = false;
  bool deleting = false;      // metadata.deletionTimestamp is set
  int restarts = 0;           // containerStatuses[*].restartCount, summed
  std::string waiting_reason; // e.g. CrashLoopBackOff, ImagePullBackOff ("" = none)
  std::string resource_version;
};

/// Parse one Pod object (JSON). Errors: kInvalidArgument for JSON that is not a Pod.
Result<PodInfo> parse_pod(std::string_view json);

struct WatchEvent {
  std::string type;  // ADDED MODIFIED DELETED BOOKMARK ERROR
  PodInfo pod;       // ADDED MODIFIED DELETED BOOKMARK (only resource_version for BOOKMARK)
  int error_code = 0;  // ERROR: the Status code (410 = the resourceVersion is too old)
  std::string error_message;
};

/// Parse one line of a watch stream. Errors: kInvalidArgument for a malformed line.
Result<WatchEvent> parse_watch_event(std::string_view line);

class KubeClient {
 public:
  /// Checks the configuration (address, readable token and CA). Does not contact the server.
  static Result<std::unique_ptr<KubeClient>> create(KubeClientConfig cfg);
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  const KubeClientConfig& config() const { return cfg_; }
  /// "https://host:port" actually used.
  std::string server_url() const;

  /// One request; `path` includes the query string.
  Result<KubeResponse> request(std::string_view method, std::string_view path,
                               std::string_view content_type = {}, std::string_view body = {}) const;

  /// Stream the response of a watch request: on_line is called for every line of the body as it
  /// arrives; the call returns when the server ends the response, on_line returns false, `stop`
  /// becomes true (checked at least every 200 ms) or nothing arrived for idle_timeout_ms.
  /// Returns the HTTP status and, for a non-200 answer, its body.
  Result<KubeResponse> watch(std::string_view path,
                             const std::function<bool(std::string_view line)>& on_line,
                             const std::atomic<bool>& stop, int64_t idle_timeout_ms) const;

  /// Server-side apply of `json` (one object) at `object_path` (e.g.
  /// /apis/apps/v1/namespaces/NS/deployments/NAME): PATCH with the field manager, force=true.
  Status apply(std::string_view object_path, std::string_view json) const;
  /// spec.replicas of the scale subresource of `object_path`.
  Result<int> get_scale(std::string_view object_path) const;
  /// Set spec.replicas through the scale subresource: GET, PUT with the resourceVersion read;
  /// on 409 Conflict read again and retry (up to 5 times). Returns the number of conflicts met.
  Result<int> set_scale(std::string_view object_path, int replicas) const;
  /// Delete a pod (404 = already gone counts as success).
  Status delete_pod(std::string_view ns, std::string_view name) const;

 private:
  explicit KubeClient(KubeClientConfig cfg) : cfg_(std::move(cfg)) {}
  KubeClientConfig cfg_;
  std::string host_;
  uint16_t port_ = 0;
};

/// The API path of a named object: "/api/v1/namespaces/NS/configmaps/NAME",
/// "/apis/apps/v1/namespaces/NS/deployments/NAME", ... ("" for a kind it does not know).
std::string k8s_object_path(std::string_view api_version, std::string_view kind, std::string_view ns,
                            std::string_view name);

/// Percent-encode a query value (label selectors hold '=' and ',').
std::string k8s_query_escape(std::string_view v);

}  // namespace spate::orchestrate
