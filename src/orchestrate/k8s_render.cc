// Kubernetes manifests of a deployment (k8s_render.h, docs/kubernetes.md). The YAML is written
// by a small block-style emitter below: one tree per object, keys in insertion order, strings
// double-quoted unless they are plain words, so the output is deterministic and diffable.
#include "orchestrate/k8s_render.h"

#include <fmt/format.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "base/json_escape.h"

namespace spate::orchestrate {
namespace {

constexpr int kHttpPort = 8080;
constexpr int kMetricsPort = 8000;
constexpr const char* kPipelineDir = "/etc/spate";
constexpr const char* kPipelineFile = "/etc/spate/pipeline.yaml";
constexpr const char* kDeploymentFile = "/etc/spate/deployment.yaml";
constexpr int kOrchestratorPort = 9090;
constexpr const char* kDataDir = "/var/lib/spate";
constexpr const char* kLogStorage = "10Gi";
constexpr const char* kCheckpointStorage = "1Gi";
// A StatefulSet's pods are named <sts>-<ordinal> and its revisions <sts>-<10-char hash>, both
// label values (63 characters at most): Kubernetes advises 52 for StatefulSet names.
constexpr size_t kMaxObjectName = 52;
constexpr size_t kCommentWidth = 100;

// ---------------------------------------------------------------- a block-style YAML tree

struct Y {
  enum class Kind { kMap, kList, kString, kNumber, kBool, kBlock };
  Kind kind = Kind::kMap;
  std::string text;               // kString / kBlock / kNumber / kBool
  std::vector<std::string> keys;  // kMap, parallel to values
  std::vector<Y> values;          // kMap values, kList items
  std::string comment;            // `#` lines emitted before this value's key or item

  Y& set(std::string key, Y v) {
    keys.push_back(std::move(key));
    values.push_back(std::move(v));
    return *this;
  }
  Y& push(Y v) {
    values.push_back(std::move(v));
    return *this;
  }
};

Y ymap() {
  return Y{};
}
Y ymap(std::initializer_list<std::pair<std::string, Y>> kv) {
  Y m;
  for (const auto& [k, v] : kv) m.set(k, v);
  return m;
}
Y ylist() {
  Y l;
  l.kind = Y::Kind::kList;
  return l;
}
Y ylist(std::initializer_list<Y> items) {
  Y l = ylist();
  for (const Y& v : items) l.push(v);
  return l;
}
Y ystr(std::string_view s) {
  Y v;
  v.kind = Y::Kind::kString;
  v.text = std::string(s);
  return v;
}
Y ynum(int64_t n) {
  Y v;
  v.kind = Y::Kind::kNumber;
  v.text = std::to_string(n);
  return v;
}
Y ybool(bool b) {
  Y v;
  v.kind = Y::Kind::kBool;
  v.text = b ? "true" : "false";
  return v;
}
Y ystrings(const std::vector<std::string>& items) {
  Y l = ylist();
  for (const std::string& s : items) l.push(ystr(s));
  return l;
}

// A string YAML reads back as the same string without quotes: a word of letters, digits and
// . _ / - that starts with a letter or '/' and is none of YAML 1.1's booleans and nulls.
bool plain_safe(std::string_view s) {
  if (s.empty()) return false;
  const char f = s.front();
  if (!((f >= 'a' && f <= 'z') || (f >= 'A' && f <= 'Z') || f == '/')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '/' || c == '-')) {
      return false;
    }
  }
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  for (const char* w : {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}) {
    if (lower == w) return false;
  }
  return true;
}

// A YAML double-quoted scalar (its escapes are a superset of JSON's).
std::string yaml_quoted(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out.push_back(ch);
        }
    }
  }
  out += '"';
  return out;
}

std::string scalar(const Y& v) {
  if (v.kind == Y::Kind::kString) return plain_safe(v.text) ? v.text : yaml_quoted(v.text);
  return v.text;  // numbers and booleans
}

// Text that can be a literal block scalar: printable (tabs and newlines allowed), no CR.
bool block_safe(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// `#` lines at `indent`, each line of `comment` wrapped at spaces to kCommentWidth columns.
void emit_comment(std::string& out, const std::string& comment, int indent) {
  if (comment.empty()) return;
  const size_t width = kCommentWidth - static_cast<size_t>(indent) - 2;
  size_t pos = 0;
  while (pos <= comment.size()) {
    size_t nl = comment.find('\n', pos);
    if (nl == std::string::npos) nl = comment.size();
    std::string_view line(comment.data() + pos, nl - pos);
    do {
      std::string_view part = line;
      if (part.size() > width) {
        const size_t space = line.rfind(' ', width);
        part = line.substr(0, space == std::string_view::npos || space == 0 ? line.size() : space);
      }
      out.append(static_cast<size_t>(indent), ' ');
      out += part.empty() ? "#" : fmt::format("# {}", part);
      out += '\n';
      line.remove_prefix(std::min(line.size(), part.size() + 1));
    } while (!line.empty());
    pos = nl + 1;
  }
}

// `|` (one final newline), `|-` (none) or `|+` (several), with an indentation indicator when
// the first line starts with a space; then the lines at `indent`.
void emit_block(std::string& out, const std::string& text, int indent) {
  std::string header = "|";
  const size_t first = text.find_first_not_of('\n');
  if (first != std::string::npos && text[first] == ' ') header += "2";
  std::string body = text;
  if (body.empty() || body.back() != '\n') {
    header += "-";
  } else if (body.size() >= 2 && body[body.size() - 2] == '\n') {
    header += "+";
  }
  out += " " + header + "\n";
  if (!body.empty() && body.back() == '\n') body.pop_back();
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t nl = body.find('\n', pos);
    if (nl == std::string::npos) nl = body.size();
    if (nl > pos) {
      out.append(static_cast<size_t>(indent), ' ');
      out.append(body, pos, nl - pos);
    }
    out += '\n';
    pos = nl + 1;
  }
}

void emit_list(std::string& out, const Y& l, int indent);

// Entries of `m` at `indent`; with `inline_first` the first key follows a `- ` already written.
void emit_map(std::string& out, const Y& m, int indent, bool inline_first) {
  for (size_t i = 0; i < m.keys.size(); ++i) {
    const Y& v = m.values[i];
    if (!(inline_first && i == 0)) {
      emit_comment(out, v.comment, indent);
      out.append(static_cast<size_t>(indent), ' ');
    }
    out += plain_safe(m.keys[i]) ? m.keys[i] : yaml_quoted(m.keys[i]);
    out += ':';
    switch (v.kind) {
      case Y::Kind::kMap:
        if (v.keys.empty()) {
          out += " {}\n";
        } else {
          out += '\n';
          emit_map(out, v, indent + 2, false);
        }
        break;
      case Y::Kind::kList:
        if (v.values.empty()) {
          out += " []\n";
        } else {
          out += '\n';
          emit_list(out, v, indent + 2);
        }
        break;
      case Y::Kind::kBlock:
        emit_block(out, v.text, indent + 2);
        break;
      default:
        out += " " + scalar(v) + "\n";
    }
  }
}

void emit_list(std::string& out, const Y& l, int indent) {
  for (const Y& v : l.values) {
    emit_comment(out, v.comment, indent);
    out.append(static_cast<size_t>(indent), ' ');
    switch (v.kind) {
      case Y::Kind::kMap:
        if (v.keys.empty()) {
          out += "- {}\n";
        } else {
          out += "- ";
          emit_map(out, v, indent + 2, true);
        }
        break;
      case Y::Kind::kList:
        if (v.values.empty()) {
          out += "- []\n";
        } else {
          out += "-\n";
          emit_list(out, v, indent + 2);
        }
        break;
      case Y::Kind::kBlock:
        out += "-";
        emit_block(out, v.text, indent + 2);
        break;
      default:
        out += "- " + scalar(v) + "\n";
    }
  }
}

void emit_document(std::string& out, const Y& doc) {
  out += "---\n";
  emit_comment(out, doc.comment, 0);
  emit_map(out, doc, 0, false);
}

// ---------------------------------------------------------------- names and quantities

// RFC 1123 label (namespaces, most object names, label values): a-z 0-9 '-', alphanumeric at
// both ends; `dns1035` also wants a letter first (Service names).
std::string check_label(std::string_view what, std::string_view v, size_t max, bool dns1035) {
  if (v.empty() || v.size() > max) {
    return fmt::format("{} {} must be 1 to {} characters", what, yaml_quoted(v), max);
  }
  for (char c : v) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return fmt::format("{} {} may hold only a-z, 0-9 and '-'", what, yaml_quoted(v));
    }
  }
  if (v.front() == '-' || v.back() == '-') {
    return fmt::format("{} {} must not start or end with '-'", what, yaml_quoted(v));
  }
  if (dns1035 && !(v.front() >= 'a' && v.front() <= 'z')) {
    return fmt::format("{} {} must start with a letter (it names a Service)", what, yaml_quoted(v));
  }
  return {};
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    const uint32_t min = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// Cores as a Kubernetes CPU quantity: 1 → "1", 0.5 → "500m".
std::string cpu_quantity(double cores) {
  const auto milli = static_cast<int64_t>(std::llround(cores * 1000));
  if (milli % 1000 == 0) return std::to_string(milli / 1000);
  return fmt::format("{}m", std::max<int64_t>(milli, 1));
}

// Bytes as a Kubernetes memory quantity in the largest exact binary unit: 512Mi, 1Gi.
std::string memory_quantity(int64_t bytes) {
  static constexpr std::pair<int64_t, const char*> kUnits[] = {{int64_t{1} << 40, "Ti"},
                                                               {int64_t{1} << 30, "Gi"},
                                                               {int64_t{1} << 20, "Mi"},
                                                               {int64_t{1} << 10, "Ki"}};
  for (const auto& [unit, suffix] : kUnits) {
    if (bytes % unit == 0) return fmt::format("{}{}", bytes / unit, suffix);
  }
  return std::to_string(bytes);
}

int64_t seconds_up(int64_t ms) {
  return std::max<int64_t>(1, (ms + 999) / 1000);
}

// Kubernetes expands $(VAR) in command, args and env values; `$$` is a literal `$`.
std::string k8s_literal(std::string_view s) {
  std::string out;
  for (char c : s) {
    out.push_back(c);
    if (c == '$') out.push_back('$');
  }
  return out;
}

// One word for `sh -c`: as is when it is safe, else single-quoted.
std::string shell_word(std::string_view s) {
  bool safe = !s.empty();
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '/' || c == '-' || c == ':' || c == '=' || c == ',')) {
      safe = false;
    }
  }
  if (safe) return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// ---------------------------------------------------------------- the objects

struct Ctx {
  const DeploymentConfig& d;
  std::string ns;
  std::string pipeline_checksum;
  bool embedded_log = false;
};

Y labels(const Ctx& x, std::string_view component) {
  Y l = ymap(
      {{"app.kubernetes.io/name", ystr("spate")}, {"app.kubernetes.io/instance", ystr(x.d.name)}});
  if (!component.empty()) l.set("app.kubernetes.io/component", ystr(component));
  l.set("app.kubernetes.io/managed-by", ystr("spate"));
  return l;
}

Y selector_labels(const Ctx& x, std::string_view component) {
  return ymap({{"app.kubernetes.io/name", ystr("spate")},
               {"app.kubernetes.io/instance", ystr(x.d.name)},
               {"app.kubernetes.io/component", ystr(component)}});
}

Y metadata(const Ctx& x, std::string_view name, std::string_view component,
           bool namespaced = true) {
  Y m = ymap({{"name", ystr(name)}});
  if (namespaced) m.set("namespace", ystr(x.ns));
  m.set("labels", labels(x, component));
  return m;
}

Y object(std::string_view api_version, std::string_view kind, Y meta) {
  return ymap(
      {{"apiVersion", ystr(api_version)}, {"kind", ystr(kind)}, {"metadata", std::move(meta)}});
}

std::string role_name(ComponentType t) {
  switch (t) {
    case ComponentType::kLog:
      return "log";
    case ComponentType::kIngestion:
      return "ingestion";
    case ComponentType::kProcessor:
      return "processors";
    case ComponentType::kAnalytics:
      return "analytics";
  }
  return "all";
}

std::string object_name(const Ctx& x, const ComponentConfig& c) {
  return x.d.name + "-" + c.name;
}

// `spate run` arguments without the --replica split.
std::vector<std::string> run_args(const Ctx& x, const ComponentConfig& c) {
  std::vector<std::string> a = {"run",
                                kPipelineFile,
                                "--role",
                                role_name(c.type),
                                "--host",
                                "0.0.0.0",
                                "--port",
                                std::to_string(kHttpPort),
                                "--metrics-port",
                                std::to_string(kMetricsPort),
                                "--data-dir",
                                kDataDir};
  for (const std::string& p : c.processors) {
    a.push_back("--processor");
    a.push_back(p);
  }
  for (const std::string& j : c.analytics) {
    a.push_back("--analytics");
    a.push_back(j);
  }
  if (x.embedded_log && c.type != ComponentType::kLog) {
    a.push_back("--log-url");
    a.push_back(fmt::format("http://{}-log:{}", x.d.name, kHttpPort));
  }
  return a;
}

Y http_probe(std::string_view path, int64_t period_s, int64_t timeout_s, int64_t failures) {
  return ymap({{"httpGet", ymap({{"path", ystr(path)}, {"port", ynum(kHttpPort)}})},
               {"periodSeconds", ynum(period_s)},
               {"timeoutSeconds", ynum(timeout_s)},
               {"failureThreshold", ynum(failures)}});
}

Y container(const Ctx& x, const ComponentConfig& c, bool explicit_split) {
  Y k = ymap({{"name", ystr("spate")}, {"image", ystr(x.d.image)}});
  std::vector<std::string> args = run_args(x, c);
  if (explicit_split) {
    // The pod's ordinal (the part of its hostname after the last '-') is its replica index.
    std::string cmd = "exec spate";
    for (const std::string& a : args) cmd += " " + shell_word(k8s_literal(a));
    cmd += fmt::format(" --replica ${{HOSTNAME##*-}}/{}", c.replicas);
    k.set("command", ylist({ystr("sh"), ystr("-c"), ystr(cmd)}));
  } else {
    Y l = ylist();
    for (const std::string& a : args) l.push(ystr(k8s_literal(a)));
    k.set("args", std::move(l));
  }
  k.set("ports", ylist({ymap({{"name", ystr("http")}, {"containerPort", ynum(kHttpPort)}}),
                        ymap({{"name", ystr("metrics")}, {"containerPort", ynum(kMetricsPort)}})}));
  if (!c.env.empty()) {
    Y env = ylist();
    for (const auto& [name, value] : c.env) {
      env.push(ymap({{"name", ystr(name)}, {"value", ystr(k8s_literal(value))}}));
    }
    k.set("env", std::move(env));
  }
  if (!c.env_from_secrets.empty()) {
    Y from = ylist();
    for (const std::string& s : c.env_from_secrets)
      from.push(ymap({{"secretRef", ymap({{"name", ystr(s)}})}}));
    k.set("envFrom", std::move(from));
  }
  Y amounts = ymap({{"cpu", ystr(cpu_quantity(c.cpu))}});
  if (c.memory_bytes > 0) amounts.set("memory", ystr(memory_quantity(c.memory_bytes)));
  k.set("resources", ymap({{"requests", amounts}, {"limits", amounts}}));
  const int64_t timeout = seconds_up(x.d.probe_timeout_ms);
  const int64_t period = std::max(seconds_up(x.d.monitor_interval_ms), timeout);
  const HealingPolicy& h = c.healing;
  // startup: healing.ready_timeout to come up; liveness: healing.unresponsive_probes failed
  // /health probes, one per monitor.interval; readiness: /ready gates the Service endpoints.
  k.set("startupProbe", http_probe("/health", 2, timeout,
                                   std::max<int64_t>(1, (h.ready_timeout_ms + 1999) / 2000)));
  if (h.enabled)
    k.set("livenessProbe", http_probe("/health", period, timeout, h.unresponsive_probes));
  k.set("readinessProbe", http_probe("/ready", period, timeout, 3));
  k.set("volumeMounts", ylist({ymap({{"name", ystr("pipeline")},
                                     {"mountPath", ystr(kPipelineDir)},
                                     {"readOnly", ybool(true)}}),
                               ymap({{"name", ystr("data")}, {"mountPath", ystr(kDataDir)}})}));
  k.set("securityContext", ymap({{"allowPrivilegeEscalation", ybool(false)}}));
  return k;
}

Y pod_template(const Ctx& x, const ComponentConfig& c, bool explicit_split, bool claim_data) {
  Y meta =
      ymap({{"labels", labels(x, c.name)},
            {"annotations", ymap({{"prometheus.io/scrape", ystr("true")},
                                  {"prometheus.io/port", ystr(std::to_string(kMetricsPort))},
                                  {"prometheus.io/path", ystr("/metrics")},
                                  {"spate.io/pipeline-checksum", ystr(x.pipeline_checksum)}})}});
  Y volumes = ylist({ymap({{"name", ystr("pipeline")},
                           {"configMap", ymap({{"name", ystr(x.d.name + "-pipeline")}})}})});
  if (!claim_data) volumes.push(ymap({{"name", ystr("data")}, {"emptyDir", ymap()}}));
  Y spec = ymap({{"automountServiceAccountToken", ybool(false)},
                 {"terminationGracePeriodSeconds", ynum(seconds_up(c.stop_timeout_ms) + 5)},
                 {"containers", ylist({container(x, c, explicit_split)})},
                 {"volumes", std::move(volumes)}});
  return ymap({{"metadata", std::move(meta)}, {"spec", std::move(spec)}});
}

Y service(const Ctx& x, const ComponentConfig& c, bool headless, bool with_metrics,
          std::string comment) {
  Y ports = ylist(
      {ymap({{"name", ystr("http")}, {"port", ynum(kHttpPort)}, {"targetPort", ystr("http")}})});
  if (with_metrics) {
    ports.push(ymap({{"name", ystr("metrics")},
                     {"port", ynum(kMetricsPort)},
                     {"targetPort", ystr("metrics")}}));
  }
  Y spec = ymap();
  if (headless) spec.set("clusterIP", ystr("None"));
  spec.set("selector", selector_labels(x, c.name));
  spec.set("ports", std::move(ports));
  Y s = object("v1", "Service", metadata(x, object_name(x, c), c.name));
  s.set("spec", std::move(spec));
  s.comment = std::move(comment);
  return s;
}

Y volume_claim(const Ctx& x, const ComponentConfig& c, const char* storage) {
  return ymap(
      {{"metadata", ymap({{"name", ystr("data")}, {"labels", labels(x, c.name)}})},
       {"spec", ymap({{"accessModes", ylist({ystr("ReadWriteOnce")})},
                      {"resources", ymap({{"requests", ymap({{"storage", ystr(storage)}})}})}})}});
}

Y stateful_set(const Ctx& x, const ComponentConfig& c, bool explicit_split, const char* storage,
               std::string comment) {
  Y spec = ymap({{"serviceName", ystr(object_name(x, c))},
                 {"replicas", ynum(c.replicas)},
                 {"podManagementPolicy", ystr("Parallel")},
                 {"selector", ymap({{"matchLabels", selector_labels(x, c.name)}})},
                 {"template", pod_template(x, c, explicit_split, storage != nullptr)}});
  if (storage != nullptr) spec.set("volumeClaimTemplates", ylist({volume_claim(x, c, storage)}));
  Y s = object("apps/v1", "StatefulSet", metadata(x, object_name(x, c), c.name));
  s.set("spec", std::move(spec));
  s.comment = std::move(comment);
  return s;
}

Y deployment(const Ctx& x, const ComponentConfig& c, std::string comment) {
  Y spec = ymap({{"replicas", ynum(c.replicas)},
                 {"selector", ymap({{"matchLabels", selector_labels(x, c.name)}})},
                 {"template", pod_template(x, c, false, false)}});
  Y s = object("apps/v1", "Deployment", metadata(x, object_name(x, c), c.name));
  s.set("spec", std::move(spec));
  s.comment = std::move(comment);
  return s;
}

Y rule(std::string_view group, std::vector<std::string> resources, std::vector<std::string> verbs,
       std::vector<std::string> names, std::string comment) {
  Y r = ymap({{"apiGroups", ylist({ystr(group)})}, {"resources", ystrings(resources)}});
  if (!names.empty()) r.set("resourceNames", ystrings(names));
  r.set("verbs", ystrings(verbs));
  r.comment = std::move(comment);
  return r;
}

struct Workloads {
  std::vector<std::string> deployments, stateful_sets, services;
  std::string log;  // the log's StatefulSet, if any
};

Y role(const Ctx& x, const Workloads& w) {
  Y rules = ylist();
  std::vector<std::string> kinds;
  std::vector<std::string> names;
  if (!w.deployments.empty()) kinds.push_back("deployments");
  if (!w.stateful_sets.empty()) kinds.push_back("statefulsets");
  names.insert(names.end(), w.deployments.begin(), w.deployments.end());
  names.insert(names.end(), w.stateful_sets.begin(), w.stateful_sets.end());
  std::sort(names.begin(), names.end());
  std::vector<std::string> scale_kinds;
  for (const std::string& k : kinds) scale_kinds.push_back(k + "/scale");
  // The log stays at one replica: no scale rights on it.
  std::vector<std::string> scalable;
  for (const std::string& n : names) {
    if (n != w.log) scalable.push_back(n);
  }
  rules.push(
      rule("apps", kinds, {"get", "patch"}, names,
           "get, patch: server-side apply (a PATCH) of the components rendered here. No create: "
           "`kubectl apply` of this file creates them, and applying an object that does not "
           "exist yet would also need create."));
  if (!scalable.empty()) {
    rules.push(
        rule("apps", scale_kinds, {"get", "patch", "update"}, scalable,
             "get, patch, update on the scale subresource: read and set replica counts (scaling) "
             "without write access to the rest of the spec. Not on the log, which stays at one "
             "replica."));
  }
  rules.push(
      rule("", {"pods"}, {"get", "list", "watch", "delete"}, {},
           "get, list, watch: replica health; delete: healing restarts a replica by deleting its "
           "pod (its controller starts a new one). Pod names are generated: no resourceNames."));
  rules.push(rule("", {"configmaps"}, {"get", "patch"}, {x.d.name + "-pipeline"},
                  "get, patch: server-side apply of the pipeline ConfigMap."));
  // No rights on Services: the orchestrator never changes them (kubectl apply does).
  Y r = object("rbac.authorization.k8s.io/v1", "Role",
               metadata(x, x.d.name + "-orchestrator", "orchestrator"));
  r.set("rules", std::move(rules));
  r.comment =
      "Least privilege for the orchestrator's in-cluster client: exactly the requests it makes "
      "(src/orchestrate/k8s_backend.cc). No secrets, no RBAC objects, no serviceaccounts, no "
      "wildcards, no create.";
  return r;
}

}  // namespace

std::string k8s_explicit_split_reason(const DeploymentConfig& d, const ComponentConfig& c) {
  const bool kafka = d.pipeline.log.kind == "kafka";
  if (c.type == ComponentType::kAnalytics) {
    return "analytics window state is checkpointed per replica I of N";
  }
  if (c.type != ComponentType::kProcessor) return {};
  if (!kafka) return "the embedded log has no consumer-group rebalancing";
  for (const ProcessorConfig& p : d.pipeline.processors) {
    const bool mine = c.processors.empty() || std::find(c.processors.begin(), c.processors.end(),
                                                        p.name) != c.processors.end();
    if (mine && p.exactly_once) return fmt::format("processor {} is exactly_once", p.name);
  }
  return {};
}

std::vector<std::string> k8s_render_warnings(const DeploymentConfig& d) {
  // Every pod runs `spate run --host 0.0.0.0`, so the pipeline's server.host (127.0.0.1 by
  // default, right on a laptop) does not matter in a pod. A loopback Kafka address does: a pod
  // would look for the brokers inside its own container.
  std::vector<std::string> out;
  if (d.pipeline.log.kind == "kafka") {
    const std::string& b = d.pipeline.log.kafka.bootstrap_servers;
    if (b.find("localhost") != std::string::npos || b.find("127.") != std::string::npos ||
        b.find("[::1]") != std::string::npos) {
      out.push_back(fmt::format(
          "the pipeline's log.kafka.bootstrap_servers is {}: a loopback address in a pod is the "
          "pod itself; name the brokers' Service (or leave it empty and set "
          "KAFKA_BOOTSTRAP_SERVERS in each component's env)",
          b));
    }
  }
  return out;
}

namespace {

// The objects, in apply order (Namespace first, the components last), or the config error.
Y orchestrator_deployment(const Ctx& x) {
  const std::string name = x.d.name + "-orchestrator";
  Y args = ylist();
  for (const char* a : {"orchestrate", kDeploymentFile, "--pipeline", kPipelineFile, "--backend",
                        "kubernetes", "--host", "0.0.0.0", "--port"}) {
    args.push(ystr(a));
  }
  args.push(ystr(std::to_string(kOrchestratorPort)));
  // What `spate k8s render` was told (--namespace, --image): its re-applies must not undo them.
  for (const auto& [k, v] : {std::pair{"--namespace", x.ns}, std::pair{"--image", x.d.image}}) {
    args.push(ystr(k));
    args.push(ystr(v));
  }
  Y probe = ymap({{"httpGet", ymap({{"path", ystr("/health")}, {"port", ynum(kOrchestratorPort)}})},
                  {"periodSeconds", ynum(10)},
                  {"timeoutSeconds", ynum(seconds_up(x.d.probe_timeout_ms))},
                  {"failureThreshold", ynum(3)}});
  Y amounts = ymap({{"cpu", ystr("100m")}, {"memory", ystr("128Mi")}});
  Y k = ymap({{"name", ystr("orchestrator")},
              {"image", ystr(x.d.image)},
              {"args", std::move(args)},
              {"ports", ylist({ymap({{"name", ystr("admin")}, {"containerPort", ynum(kOrchestratorPort)}})})},
              {"resources", ymap({{"requests", amounts}, {"limits", amounts}})},
              {"livenessProbe", probe},
              {"readinessProbe", probe},
              {"volumeMounts", ylist({ymap({{"name", ystr("pipeline")},
                                            {"mountPath", ystr(kPipelineDir)},
                                            {"readOnly", ybool(true)}})})},
              {"securityContext", ymap({{"allowPrivilegeEscalation", ybool(false)}})}});
  Y meta = ymap({{"labels", labels(x, "orchestrator")},
                 {"annotations", ymap({{"prometheus.io/scrape", ystr("true")},
                                       {"prometheus.io/port", ystr(std::to_string(kOrchestratorPort))},
                                       {"prometheus.io/path", ystr("/metrics")},
                                       {"spate.io/pipeline-checksum", ystr(x.pipeline_checksum)}})}});
  Y spec = ymap({{"serviceAccountName", ystr(name)},
                 {"automountServiceAccountToken", ybool(true)},
                 {"containers", ylist({std::move(k)})},
                 {"volumes", ylist({ymap({{"name", ystr("pipeline")},
                                          {"configMap", ymap({{"name", ystr(x.d.name + "-pipeline")}})}})})}});
  Y dep = object("apps/v1", "Deployment", metadata(x, name, "orchestrator"));
  dep.set("spec", ymap({{"replicas", ynum(1)},
                        {"strategy", ymap({{"type", ystr("Recreate")}})},
                        {"selector", ymap({{"matchLabels", selector_labels(x, "orchestrator")}})},
                        {"template", ymap({{"metadata", std::move(meta)}, {"spec", std::move(spec)}})}}));
  dep.comment = fmt::format(
      "The orchestrator, in-cluster (docs/kubernetes.md): heals and scales the components through the "
      "API with the ServiceAccount above. One replica, replaced with Recreate: two orchestrators "
      "must never act at once. Its admin API (/status, /heal, /scale, /metrics) is on port {}: "
      "kubectl port-forward deployment/{} {}.",
      kOrchestratorPort, name, kOrchestratorPort);
  return dep;
}

Result<std::vector<Y>> build_docs(const DeploymentConfig& d, std::string_view pipeline_yaml_text,
                                  std::string_view deployment_yaml_text) {
  std::vector<std::string> errors;
  auto check = [&](std::string e) {
    if (!e.empty()) errors.push_back(std::move(e));
  };
  check(check_label("namespace", d.k8s_namespace, 63, false));
  check(check_label("deployment name", d.name, kMaxObjectName - 13, true));  // <name>-orchestrator
  for (const ComponentConfig& c : d.components) {
    check(check_label("object name", d.name + "-" + c.name, kMaxObjectName, true));
    for (const std::string& s : c.env_from_secrets)
      check(check_label("secret name", s, 253, false));
    for (const auto& [k, v] : c.env) {
      if (k.empty() || k.find('=') != std::string::npos) {
        errors.push_back(
            fmt::format("component {}: env name {} is not usable", c.name, yaml_quoted(k)));
      }
    }
  }
  if (d.image.empty() || d.image.find_first_of(" \t\r\n") != std::string::npos) {
    errors.push_back(
        fmt::format("image {} must be non-empty without whitespace", yaml_quoted(d.image)));
  }
  if (!valid_utf8(deployment_yaml_text)) {
    errors.push_back("the deployment file is not valid UTF-8 (a ConfigMap holds text)");
  }
  if (!valid_utf8(pipeline_yaml_text)) {
    errors.push_back("the pipeline file is not valid UTF-8 (a ConfigMap holds text)");
  }
  if (!errors.empty()) {
    std::string msg = d.source_path + ": cannot render Kubernetes manifests:";
    for (const std::string& e : errors) msg += "\n  " + e;
    return ConfigError(msg);
  }

  Ctx x{d, d.k8s_namespace, fmt::format("{:016x}", hash64(pipeline_yaml_text)),
        d.pipeline.log.kind == "embedded"};
  std::vector<Y> docs;

  Y ns = object("v1", "Namespace", metadata(x, x.ns, "", false));
  docs.push_back(std::move(ns));
  Y sa = object("v1", "ServiceAccount", metadata(x, d.name + "-orchestrator", "orchestrator"));
  sa.set("automountServiceAccountToken", ybool(true));
  sa.comment =
      "The orchestrator's identity in the cluster: its Deployment (last in this file) runs under it.";
  docs.push_back(std::move(sa));

  // The components first, so the Role can name what they are.
  std::vector<Y> component_docs;
  Workloads w;
  for (const ComponentConfig& c : d.components) {
    const std::string name = object_name(x, c);
    if (c.type == ComponentType::kLog) {
      component_docs.push_back(service(
          x, c, false, true,
          fmt::format(
              "The embedded log's address for the other components: --log-url http://{}:{}.", name,
              kHttpPort)));
      component_docs.push_back(stateful_set(
          x, c, false, kLogStorage,
          "The embedded log: exactly one owner of the log's files, on its own volume (a "
          "StatefulSet so the claim follows the pod). Size the claim for the topics' retention."));
      w.stateful_sets.push_back(name);
      w.services.push_back(name);
      w.log = name;
      continue;
    }
    const std::string reason = k8s_explicit_split_reason(d, c);
    if (!reason.empty()) {
      const bool analytics = c.type == ComponentType::kAnalytics;
      component_docs.push_back(
          service(x, c, true, true,
                  "Headless: the governing Service of the StatefulSet below (stable pod names)."));
      component_docs.push_back(stateful_set(
          x, c, true, analytics ? kCheckpointStorage : nullptr,
          fmt::format(
              "{}: explicit partition split ({}). N identical pods of a Deployment cannot each "
              "know their replica index, so this is a StatefulSet and pod <name>-I runs --replica "
              "I/{} (I = the ordinal at the end of $HOSTNAME). Change the count in the deployment "
              "file and render again; `kubectl scale` alone would leave N at {}.{}",
              c.name, reason, c.replicas, c.replicas,
              analytics ? "\nThe claim keeps each replica's window checkpoints across reschedules."
                        : "")));
      w.stateful_sets.push_back(name);
      w.services.push_back(name);
      continue;
    }
    if (c.type == ComponentType::kIngestion) {
      component_docs.push_back(
          service(x, c, false, false,
                  fmt::format("HTTP ingestion: POST http://{}:{}/ingest/TOPIC.", name, kHttpPort)));
      w.services.push_back(name);
    }
    component_docs.push_back(deployment(
        x, c,
        c.type == ComponentType::kIngestion
            ? fmt::format("{}: ingestion; scale with `kubectl scale deployment/{}`.", c.name, name)
            : fmt::format(
                  "{}: processors in a consumer group (Kafka rebalances partitions); scale with "
                  "`kubectl scale deployment/{}`.",
                  c.name, name)));
    w.deployments.push_back(name);
  }

  docs.push_back(role(x, w));
  Y rb = object("rbac.authorization.k8s.io/v1", "RoleBinding",
                metadata(x, d.name + "-orchestrator", "orchestrator"));
  rb.set("roleRef", ymap({{"apiGroup", ystr("rbac.authorization.k8s.io")},
                          {"kind", ystr("Role")},
                          {"name", ystr(d.name + "-orchestrator")}}));
  rb.set("subjects", ylist({ymap({{"kind", ystr("ServiceAccount")},
                                  {"name", ystr(d.name + "-orchestrator")},
                                  {"namespace", ystr(x.ns)}})}));
  docs.push_back(std::move(rb));

  Y cm = object("v1", "ConfigMap", metadata(x, d.name + "-pipeline", "pipeline"));
  Y text;
  text.kind = block_safe(pipeline_yaml_text) ? Y::Kind::kBlock : Y::Kind::kString;
  text.text = std::string(pipeline_yaml_text);
  Y data = ymap({{"pipeline.yaml", std::move(text)}});
  if (!deployment_yaml_text.empty()) {
    Y dtext;
    dtext.kind = block_safe(deployment_yaml_text) ? Y::Kind::kBlock : Y::Kind::kString;
    dtext.text = std::string(deployment_yaml_text);
    data.set("deployment.yaml", std::move(dtext));
  }
  cm.set("data", std::move(data));
  cm.comment = fmt::format("The pipeline file ({}), mounted at {} in every pod.",
                           base_name(d.pipeline_path), kPipelineDir);
  docs.push_back(std::move(cm));
  for (Y& doc : component_docs) docs.push_back(std::move(doc));
  if (!deployment_yaml_text.empty()) docs.push_back(orchestrator_deployment(x));
  return docs;
}

void emit_json(std::string& out, const Y& v) {
  switch (v.kind) {
    case Y::Kind::kMap:
      out += '{';
      for (size_t i = 0; i < v.keys.size(); ++i) {
        if (i) out += ',';
        out += '"';
        append_json_escaped(out, v.keys[i]);
        out += "\":";
        emit_json(out, v.values[i]);
      }
      out += '}';
      break;
    case Y::Kind::kList:
      out += '[';
      for (size_t i = 0; i < v.values.size(); ++i) {
        if (i) out += ',';
        emit_json(out, v.values[i]);
      }
      out += ']';
      break;
    case Y::Kind::kString:
    case Y::Kind::kBlock:
      out += '"';
      append_json_escaped(out, v.text);
      out += '"';
      break;
    case Y::Kind::kNumber:
    case Y::Kind::kBool:
      out += v.text;
      break;
  }
}

const Y* member(const Y& m, std::string_view key) {
  for (size_t i = 0; i < m.keys.size(); ++i) {
    if (m.keys[i] == key) return &m.values[i];
  }
  return nullptr;
}

}  // namespace

Result<std::vector<K8sObject>> render_k8s_objects(const DeploymentConfig& d,
                                                  std::string_view pipeline_yaml_text,
                                                  std::string_view deployment_yaml_text) {
  auto docs = build_docs(d, pipeline_yaml_text, deployment_yaml_text);
  if (!docs.ok()) return docs.status();
  std::vector<K8sObject> out;
  for (const Y& doc : *docs) {
    K8sObject o;
    if (const Y* v = member(doc, "apiVersion")) o.api_version = v->text;
    if (const Y* v = member(doc, "kind")) o.kind = v->text;
    if (const Y* meta = member(doc, "metadata")) {
      if (const Y* v = member(*meta, "name")) o.name = v->text;
      if (const Y* labels = member(*meta, "labels")) {
        if (const Y* v = member(*labels, "app.kubernetes.io/component")) o.component = v->text;
      }
    }
    emit_json(o.json, doc);
    out.push_back(std::move(o));
  }
  return out;
}

Result<std::string> render_k8s_manifests(const DeploymentConfig& d,
                                         std::string_view pipeline_yaml_text,
                                         std::string_view deployment_yaml_text) {
  auto built = build_docs(d, pipeline_yaml_text, deployment_yaml_text);
  if (!built.ok()) return built.status();
  const std::vector<Y>& docs = *built;
  std::string header = fmt::format(
      "Kubernetes manifests of the Spate deployment {} (deployment file {}, pipeline {}), "
      "generated "
      "by `spate k8s render`: render again rather than editing (docs/kubernetes.md).\n"
      "Apply with: kubectl apply --server-side -f THIS_FILE",
      d.name, base_name(d.source_path), base_name(d.pipeline_path));
  for (const std::string& warning : k8s_render_warnings(d)) header += "\nWARNING: " + warning;
  std::string out;
  emit_comment(out, header, 0);
  for (const Y& doc : docs) emit_document(out, doc);
  return out;
}

}  // namespace spate::orchestrate
