// The Kubernetes API client (k8s_client.h): Beast async operations on a private io_context per
// request, run under a deadline, over an OpenSSL stream that verifies the API server.
#include "orchestrate/k8s_client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <simdjson.h>

#include "spate/version.h"

namespace spate::orchestrate {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

namespace {

Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return ConfigError("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.pop_back();
  }
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
  return s.substr(i);
}

// The API's own explanation of a failed request: the `message` of its Status object.
std::string api_message(const KubeResponse& r) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  std::string_view msg;
  if (!p.parse(simdjson::padded_string(r.body)).get(e) && !e["message"].get(msg)) {
    return std::string(msg);
  }
  return r.body.substr(0, 200);
}

Status http_error(std::string_view what, const KubeResponse& r) {
  const std::string msg = fmt::format("{}: HTTP {}: {}", what, r.status, api_message(r));
  if (r.status == 404) return NotFound(msg);
  // The service account's token or RBAC role does not allow it: a deployment problem.
  if (r.status == 401 || r.status == 403) return ConfigError(msg);
  if (r.status == 400 || r.status == 422 || r.status == 415) return InvalidArgument(msg);
  return Unavailable(msg);
}

// One TLS connection with a request on it, everything bounded by `deadline`.
class Conn {
 public:
  Conn(const std::string& host, uint16_t port, const std::string& ca_pem)
      : host_(host), port_(port), ctx_(ssl::context::tls_client), ca_(ca_pem) {}

  Status open(SteadyClock::time_point deadline) {
    beast::error_code ec;
    ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx_.add_certificate_authority(net::buffer(ca_), ec);
    if (ec) return ConfigError("the service account's ca.crt is not a PEM certificate: " + ec.message());
    ctx_.set_verify_mode(ssl::verify_peer);
    stream_.emplace(ioc_, ctx_);
    stream_->set_verify_callback(ssl::host_name_verification(host_));
    boost::system::error_code aec;
    const auto addr = net::ip::make_address(host_, aec);
    if (aec && !SSL_set_tlsext_host_name(stream_->native_handle(), host_.c_str())) {
      return Internal("setting SNI failed");
    }
    std::vector<tcp::endpoint> endpoints;
    if (!aec) {
      endpoints.emplace_back(addr, port_);
    } else {
      tcp::resolver resolver(ioc_);
      auto results = resolver.resolve(host_, std::to_string(port_), ec);
      if (ec) return Unavailable(fmt::format("cannot resolve {}: {}", host_, ec.message()));
      for (const auto& r : results) endpoints.push_back(r.endpoint());
    }
    beast::get_lowest_layer(*stream_).expires_at(deadline);
    beast::error_code cec = net::error::would_block;
    beast::get_lowest_layer(*stream_).async_connect(endpoints,
                                                    [&](beast::error_code e, const tcp::endpoint&) { cec = e; });
    run();
    if (cec) return transport("connect", cec);
    beast::error_code hec = net::error::would_block;
    stream_->async_handshake(ssl::stream_base::client, [&](beast::error_code e) { hec = e; });
    run();
    if (hec) return transport("TLS handshake", hec);
    return Status::Ok();
  }

  Status send(http::request<http::string_body>& req) {
    beast::error_code wec = net::error::would_block;
    http::async_write(*stream_, req, [&](beast::error_code e, size_t) { wec = e; });
    run();
    if (wec) return transport("write", wec);
    return Status::Ok();
  }

  Result<KubeResponse> read_all() {
    http::response<http::string_body> res;
    beast::error_code rec = net::error::would_block;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64ull << 20);
    http::async_read(*stream_, buffer_, parser, [&](beast::error_code e, size_t) { rec = e; });
    run();
    if (rec) return transport("read", rec);
    return KubeResponse{static_cast<int>(parser.get().result_int()), parser.get().body()};
  }

  // Streamed body, line by line (watch).
  Result<KubeResponse> read_lines(const std::function<bool(std::string_view)>& on_line,
                                  const std::atomic<bool>& stop, int64_t idle_timeout_ms) {
    http::response_parser<http::buffer_body> parser;
    // Not boost::none: Boost 1.74 compares Content-Length with the empty optional and refuses.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    auto& lowest = beast::get_lowest_layer(*stream_);
    lowest.expires_after(std::chrono::milliseconds(idle_timeout_ms));
    beast::error_code hec = net::error::would_block;
    http::async_read_header(*stream_, buffer_, parser, [&](beast::error_code e, size_t) { hec = e; });
    if (!run_watching(stop, hec)) return KubeResponse{0, ""};
    if (hec) return transport("read", hec);
    const int status = static_cast<int>(parser.get().result_int());
    std::string pending;
    std::string body;
    char chunk[16384];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      lowest.expires_after(std::chrono::milliseconds(idle_timeout_ms));
      beast::error_code rec = net::error::would_block;
      http::async_read_some(*stream_, buffer_, parser, [&](beast::error_code e, size_t) { rec = e; });
      if (!run_watching(stop, rec)) return KubeResponse{status, ""};
      if (rec == http::error::need_buffer) rec = {};
      const size_t n = sizeof chunk - parser.get().body().size;
      if (status != 200) {
        body.append(chunk, n);
      } else {
        pending.append(chunk, n);
        size_t start = 0;
        for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
          std::string_view line(pending.data() + start, nl - start);
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          if (!line.empty() && !on_line(line)) return KubeResponse{status, ""};
        }
        pending.erase(0, start);
      }
      if (rec == beast::error::timeout) return KubeResponse{status, body};  // idle: end this watch
      if (rec) {
        if (rec == http::error::end_of_stream || rec == net::error::eof || rec == ssl::error::stream_truncated) break;
        return transport("read", rec);
      }
    }
    if (status == 200 && !pending.empty()) on_line(pending);
    return KubeResponse{status, body};
  }

  void close() {
    if (!stream_) return;
    beast::error_code ec;
    beast::get_lowest_layer(*stream_).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(*stream_).socket().close(ec);
  }

 private:
  void run() {
    ioc_.restart();
    ioc_.run();
  }
  // Run until the operation sets `ec` (from would_block), checking `stop` every 200 ms.
  // False when stopped (the operation is cancelled).
  bool run_watching(const std::atomic<bool>& stop, const beast::error_code& ec) {
    ioc_.restart();
    while (ec == net::error::would_block) {
      ioc_.run_for(std::chrono::milliseconds(200));
      if (ec != net::error::would_block) break;
      if (stop.load()) {
        close();
        ioc_.restart();
        ioc_.run();
        return false;
      }
      ioc_.restart();
    }
    return true;
  }
  Status transport(std::string_view step, const beast::error_code& ec) {
    const std::string msg = fmt::format("{} https://{}:{}: {}", step, host_, port_, ec.message());
    if (ec == beast::error::timeout) return Timeout(msg);
    return Unavailable(msg);
  }

  std::string host_;
  uint16_t port_;
  net::io_context ioc_{1};
  ssl::context ctx_;
  std::string ca_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buffer_;
};

bool parse_pod_element(simdjson::dom::element e, PodInfo* p) {
  simdjson::dom::element meta;
  if (e["metadata"].get(meta)) return false;
  std::string_view sv;
  if (meta["name"].get(sv)) return false;
  p->name = std::string(sv);
  if (!meta["resourceVersion"].get(sv)) p->resource_version = std::string(sv);
  if (!meta["uid"].get(sv)) p->uid = std::string(sv);
  simdjson::dom::element del;
  p->deleting = !meta["deletionTimestamp"].get(del) && !del.is_null();
  simdjson::dom::object labels;
  if (!meta["labels"].get(labels)) {
    if (!labels["app.kubernetes.io/component"].get(sv)) p->component = std::string(sv);
  }
  simdjson::dom::element status;
  if (e["status"].get(status)) return true;  // a pod just created has no status yet
  if (!status["phase"].get(sv)) p->phase = std::string(sv);
  if (!status["podIP"].get(sv)) p->pod_ip = std::string(sv);
  simdjson::dom::array conds;
  if (!status["conditions"].get(conds)) {
    for (simdjson::dom::element c : conds) {
      std::string_view type, value;
      if (!c["type"].get(type) && type == "Ready" && !c["status"].get(value)) p->ready = value == "True";
    }
  }
  simdjson::dom::array cs;
  if (!status["containerStatuses"].get(cs)) {
    for (simdjson::dom::element c : cs) {
      int64_t n = 0;
      if (!c["restartCount"].get(n)) p->restarts += static_cast<int>(n);
      std::string_view reason;
      if (!c["state"]["waiting"]["reason"].get(reason) && p->waiting_reason.empty()) {
        p->waiting_reason = std::string(reason);
      }
    }
  }
  return true;
}

}  // namespace

Result<PodInfo> parse_pod(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(simdjson::padded_string(json)).get(e)) return InvalidArgument("a pod is not valid JSON");
  PodInfo p;
  if (!parse_pod_element(e, &p)) return InvalidArgument("not a Pod: no metadata.name");
  return p;
}

Result<WatchEvent> parse_watch_event(std::string_view line) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(simdjson::padded_string(line)).get(e)) {
    return InvalidArgument("a watch event is not valid JSON");
  }
  WatchEvent ev;
  std::string_view type;
  if (e["type"].get(type)) return InvalidArgument("a watch event without a type");
  ev.type = std::string(type);
  simdjson::dom::element obj;
  if (e["object"].get(obj)) return InvalidArgument("a watch event without an object");
  if (ev.type == "ERROR") {
    int64_t code = 0;
    std::string_view msg;
    if (!obj["code"].get(code)) ev.error_code = static_cast<int>(code);
    if (!obj["message"].get(msg)) ev.error_message = std::string(msg);
    return ev;
  }
  if (ev.type == "BOOKMARK") {
    std::string_view rv;
    if (!obj["metadata"]["resourceVersion"].get(rv)) ev.pod.resource_version = std::string(rv);
    return ev;
  }
  if (ev.type != "ADDED" && ev.type != "MODIFIED" && ev.type != "DELETED") {
    return InvalidArgument("unknown watch event type " + ev.type);
  }
  if (!parse_pod_element(obj, &ev.pod)) return InvalidArgument("a watch event whose object is not a Pod");
  return ev;
}

Result<std::unique_ptr<KubeClient>> KubeClient::create(KubeClientConfig cfg) {
  std::unique_ptr<KubeClient> c(new KubeClient(std::move(cfg)));
  std::string url = c->cfg_.api_server;
  if (url.empty()) {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    if (host == nullptr || *host == '\0') {
      return ConfigError(
          "kubernetes: no API server: set kubernetes.api_server or run in a pod "
          "(KUBERNETES_SERVICE_HOST is not set)");
    }
    std::string h = host;
    if (h.find(':') != std::string::npos) h = "[" + h + "]";
    url = fmt::format("https://{}:{}", h, port != nullptr && *port != '\0' ? port : "443");
  }
  if (!url.starts_with("https://")) {
    return ConfigError("kubernetes.api_server must be an https:// URL, not " + url);
  }
  std::string rest = url.substr(8);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string host = rest;
  int port = 443;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string::npos) return ConfigError("kubernetes.api_server: bad address " + url);
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = std::atoi(rest.c_str() + close + 2);
  } else if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = std::atoi(rest.c_str() + colon + 1);
  }
  if (host.empty() || host.find('/') != std::string::npos || port <= 0 || port > 65535) {
    return ConfigError("kubernetes.api_server: bad address " + url);
  }
  c->host_ = host;
  c->port_ = static_cast<uint16_t>(port);
  for (const char* f : {"token", "ca.crt"}) {
    auto r = read_file(c->cfg_.service_account_dir + "/" + f);
    if (!r.ok()) return ConfigError("kubernetes: " + r.status().message() + " (the service account)");
  }
  return c;
}

KubeClient::~KubeClient() = default;

std::string KubeClient::server_url() const {
  return host_.find(':') != std::string::npos ? fmt::format("https://[{}]:{}", host_, port_)
                                              : fmt::format("https://{}:{}", host_, port_);
}

namespace {

Result<http::request<http::string_body>> make_request(const KubeClientConfig& cfg,
                                                      const std::string& host, uint16_t port,
                                                      std::string_view method, std::string_view path,
                                                      std::string_view content_type,
                                                      std::string_view body, std::string* ca) {
  // Read on every request: projected tokens rotate, and so may the CA.
  auto token = read_file(cfg.service_account_dir + "/token");
  if (!token.ok()) return token.status();
  auto ca_pem = read_file(cfg.service_account_dir + "/ca.crt");
  if (!ca_pem.ok()) return ca_pem.status();
  *ca = std::move(*ca_pem);
  http::request<http::string_body> req;
  const http::verb verb = http::string_to_verb({method.data(), method.size()});
  if (verb == http::verb::unknown) return InvalidArgument("unknown HTTP method");
  req.method(verb);
  req.target({path.data(), path.size()});
  req.version(11);
  req.set(http::field::host, host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                                                 : fmt::format("{}:{}", host, port));
  req.set(http::field::user_agent, std::string("spate-orchestrator/") + SPATE_VERSION);
  req.set(http::field::authorization, "Bearer " + trim(*token));
  req.set(http::field::accept, "application/json");
  if (!content_type.empty()) req.set(http::field::content_type, std::string(content_type));
  if (!body.empty() || verb == http::verb::put || verb == http::verb::patch || verb == http::verb::post) {
    req.body() = std::string(body);
    req.prepare_payload();
  }
  return req;
}

}  // namespace

Result<KubeResponse> KubeClient::request(std::string_view method, std::string_view path,
                                         std::string_view content_type, std::string_view body) const {
  std::string ca;
  auto req = make_request(cfg_, host_, port_, method, path, content_type, body, &ca);
  if (!req.ok()) return req.status();
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(cfg_.timeout_ms);
  Conn c(host_, port_, ca);
  SPATE_RETURN_IF_ERROR(c.open(deadline));
  SPATE_RETURN_IF_ERROR(c.send(*req));
  auto r = c.read_all();
  c.close();
  return r;
}

Result<KubeResponse> KubeClient::watch(std::string_view path,
                                       const std::function<bool(std::string_view)>& on_line,
                                       const std::atomic<bool>& stop, int64_t idle_timeout_ms) const {
  std::string ca;
  auto req = make_request(cfg_, host_, port_, "GET", path, {}, {}, &ca);
  if (!req.ok()) return req.status();
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(cfg_.timeout_ms);
  Conn c(host_, port_, ca);
  SPATE_RETURN_IF_ERROR(c.open(deadline));
  SPATE_RETURN_IF_ERROR(c.send(*req));
  auto r = c.read_lines(on_line, stop, idle_timeout_ms);
  c.close();
  return r;
}

Status KubeClient::apply(std::string_view object_path, std::string_view json) const {
  const std::string path = fmt::format("{}?fieldManager={}&force=true", object_path,
                                       k8s_query_escape(cfg_.field_manager));
  auto r = request("PATCH", path, "application/apply-patch+yaml", json);
  if (!r.ok()) return r.status();
  if (r->status != 200 && r->status != 201) return http_error(fmt::format("apply {}", object_path), *r);
  return Status::Ok();
}

Result<int> KubeClient::get_scale(std::string_view object_path) const {
  auto r = request("GET", fmt::format("{}/scale", object_path));
  if (!r.ok()) return r.status();
  if (r->status != 200) return http_error(fmt::format("GET {}/scale", object_path), *r);
  simdjson::dom::parser p;
  simdjson::dom::element e;
  if (p.parse(simdjson::padded_string(r->body)).get(e) || e["kind"].get_string().error()) {
    return IoError(fmt::format("GET {}/scale: not a Scale object", object_path));
  }
  int64_t n = 0;
  if (e["spec"]["replicas"].get(n)) n = 0;  // omitted when 0
  return static_cast<int>(n);
}

Result<int> KubeClient::set_scale(std::string_view object_path, int replicas) const {
  const std::string path = fmt::format("{}/scale", object_path);
  int conflicts = 0;
  for (int attempt = 0; attempt < 6; ++attempt) {
    auto g = request("GET", path);
    if (!g.ok()) return g.status();
    if (g->status != 200) return http_error("GET " + path, *g);
    simdjson::dom::parser p;
    simdjson::dom::element e;
    std::string_view name, ns, rv;
    if (p.parse(simdjson::padded_string(g->body)).get(e) || e["metadata"]["name"].get(name) ||
        e["metadata"]["resourceVersion"].get(rv)) {
      return IoError("GET " + path + ": not a Scale object");
    }
    if (e["metadata"]["namespace"].get(ns)) ns = "";
    const std::string body = fmt::format(
        "{{\"apiVersion\":\"autoscaling/v1\",\"kind\":\"Scale\",\"metadata\":{{\"name\":\"{}\","
        "\"namespace\":\"{}\",\"resourceVersion\":\"{}\"}},\"spec\":{{\"replicas\":{}}}}}",
        name, ns, rv, replicas);
    auto u = request("PUT", path, "application/json", body);
    if (!u.ok()) return u.status();
    if (u->status == 200 || u->status == 201) return conflicts;
    if (u->status != 409) return http_error("PUT " + path, *u);
    ++conflicts;  // someone changed the object since our GET: read it again
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * conflicts));
  }
  return Unavailable(fmt::format("PUT {}: still conflicting after {} attempts", path, conflicts));
}

Status KubeClient::delete_pod(std::string_view ns, std::string_view name) const {
  const std::string path = fmt::format("/api/v1/namespaces/{}/pods/{}", ns, name);
  auto r = request("DELETE", path);
  if (!r.ok()) return r.status();
  if (r->status == 200 || r->status == 202 || r->status == 404) return Status::Ok();
  return http_error("DELETE " + path, *r);
}

std::string k8s_object_path(std::string_view api_version, std::string_view kind, std::string_view ns,
                            std::string_view name) {
  std::string plural;
  if (kind == "ConfigMap") plural = "configmaps";
  else if (kind == "Service") plural = "services";
  else if (kind == "Deployment") plural = "deployments";
  else if (kind == "StatefulSet") plural = "statefulsets";
  else if (kind == "ServiceAccount") plural = "serviceaccounts";
  else if (kind == "Secret") plural = "secrets";
  else if (kind == "Pod") plural = "pods";
  else if (kind == "Role") plural = "roles";
  else if (kind == "RoleBinding") plural = "rolebindings";
  else return {};
  const std::string prefix = api_version == "v1" ? std::string("/api/v1") : "/apis/" + std::string(api_version);
  return fmt::format("{}/namespaces/{}/{}/{}", prefix, ns, plural, name);
}

std::string k8s_query_escape(std::string_view v) {
  std::string out;
  for (unsigned char c : v) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace spate::orchestrate
