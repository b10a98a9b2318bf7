// The pipeline file schema (docs/configuration.md). Each section is one small function over
// config::Node; later sections (ingestion, processors, analytics) are added the same way.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include "base/fs.h"
#include "base/split.h"
#include "config/errors.h"
#include "config/node.h"
#include "config/redis_url.h"
#include "event/expr.h"
#include "spate/analytics.h"
#include "spate/config.h"

namespace spate {
namespace {

using config::Node;

constexpr int64_t kMaxPartitions = 1024;
constexpr size_t kMaxTopicName = 200;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

std::string check_name_chars(std::string_view v) {
  if (v.empty()) return "must not be empty";
  for (char c : v) {
    if (!is_name_char(c)) {
      return fmt::format("may contain only letters, digits, '_', '.' and '-', got {}",
                         config::quote(v));
    }
  }
  return "";
}

std::string check_pipeline_name(std::string_view v) {
  return check_name_chars(v);
}

std::string check_topic_name(std::string_view v) {
  if (v.size() > kMaxTopicName) {
    return fmt::format("must be at most {} characters, got {}", kMaxTopicName, v.size());
  }
  if (v == "." || v == "..") return fmt::format("must not be {}", config::quote(v));
  return check_name_chars(v);
}

const std::vector<std::pair<std::string, Compression>>& compressions() {
  static const std::vector<std::pair<std::string, Compression>> names = {
      {"none", Compression::kNone}, {"lz4", Compression::kLz4}, {"zstd", Compression::kZstd}};
  return names;
}

/// A limit that is -1 (unlimited) or positive: a duration (ms) or a size (bytes).
void get_limit(Node& section, std::string_view key, bool is_size, int64_t* out) {
  Node v = section.get(key);
  int64_t x = 0;
  const bool ok =
      is_size ? v.as_size(&x, kInt64Min, kInt64Max) : v.as_duration_ms(&x, kInt64Min, kInt64Max);
  if (!ok) return;
  if (x != -1 && x <= 0) {
    v.error(fmt::format("must be -1 (unlimited) or positive, got {}", x));
    return;
  }
  *out = x;
}

void parse_retention(Node n, RetentionConfig* out) {
  get_limit(n, "ms", /*is_size=*/false, &out->ms);
  get_limit(n, "bytes", /*is_size=*/true, &out->bytes);
  n.finish();
}

// server.auth: {tokens: [{name, token | token_file, scopes: [...]}], open_paths: [...]}
void parse_auth(Node a, AuthConfig* out) {
  if (!a.present() || a.is_null()) return;
  std::vector<Node> tokens = a.list("tokens");
  for (Node t : tokens) {
    AuthTokenConfig tc;
    t.require("name");
    t.get_string("name", &tc.name, config::non_empty);
    const bool inline_token = t.get_string("token", &tc.token);
    std::string file;
    const bool from_file = t.get_string("token_file", &file, config::non_empty);
    if (inline_token == from_file) {
      t.error("give exactly one of token (e.g. \"${INGEST_TOKEN}\") and token_file");
    } else if (from_file) {
      std::FILE* f = std::fopen(file.c_str(), "rb");
      if (f == nullptr) {
        t.get("token_file").error(fmt::format("cannot read {}: {}", file, std::strerror(errno)));
      } else {
        char buf[4096];
        const size_t n = std::fread(buf, 1, sizeof buf, f);
        std::fclose(f);
        tc.token.assign(buf, n);
        while (!tc.token.empty() && std::isspace(static_cast<unsigned char>(tc.token.back())))
          tc.token.pop_back();
      }
    }
    if ((inline_token || from_file) && tc.token.size() < 16 && !tc.token.empty()) {
      t.error(
          "the token is shorter than 16 characters: use a long random one (openssl rand -hex 32)");
    } else if ((inline_token || from_file) && tc.token.empty() && !t.get("token_file").present()) {
      t.get("token").error("the token is empty");
    }
    Node scopes = t.require("scopes");
    for (Node sc : scopes.items()) {
      std::string v;
      if (!sc.as_string(&v)) continue;
      if (v == "admin" || v == "read" || v == "ingest:*" ||
          (v.starts_with("ingest:") && check_topic_name(std::string_view(v).substr(7)).empty())) {
        tc.scopes.push_back(v);
      } else {
        sc.error(fmt::format("unknown scope {}: expected ingest:TOPIC, ingest:*, read or admin",
                             config::quote(v)));
      }
    }
    t.finish();
    out->tokens.push_back(std::move(tc));
  }
  if (a.get("open_paths").present()) {
    out->open_paths.clear();
    for (Node p : a.list("open_paths")) {
      std::string v;
      if (p.as_string(&v, [](std::string_view s) {
            return s.starts_with("/") ? std::string() : std::string("must start with /");
          })) {
        out->open_paths.push_back(v);
      }
    }
  }
  if (tokens.empty()) a.error("auth needs at least one entry in tokens");
  out->enabled = !out->tokens.empty();
  a.finish();
}

// server.tls: {cert_file, key_file, client_ca_file, require_client_cert, min_version}
void parse_tls(Node t, TlsConfig* out) {
  if (!t.present() || t.is_null()) return;
  out->enabled = true;
  t.require("cert_file");
  t.require("key_file");
  auto readable_file = [&](const char* key, std::string* v) {
    if (!t.get_string(key, v, config::non_empty)) return;
    if (std::FILE* f = std::fopen(v->c_str(), "rb")) {
      std::fclose(f);
    } else {
      t.get(key).error(fmt::format("cannot read {}: {}", *v, std::strerror(errno)));
    }
  };
  readable_file("cert_file", &out->cert_file);
  readable_file("key_file", &out->key_file);
  readable_file("client_ca_file", &out->client_ca_file);
  t.get_bool("require_client_cert", &out->require_client_cert);
  if (t.get("require_client_cert").present() && out->client_ca_file.empty()) {
    t.get("require_client_cert")
        .error("require_client_cert needs client_ca_file (the CA that signs client certificates)");
  }
  t.get_enum("min_version", &out->min_version, {"1.2", "1.3"});
  t.finish();
}

void parse_server(Node n, ServerConfig* out) {
  parse_auth(n.child("auth"), &out->auth);
  parse_tls(n.child("tls"), &out->tls);
  n.get_string("host", &out->host, config::non_empty);
  n.get_int("port", &out->port, 0, 65535);
  n.get_int("metrics_port", &out->metrics_port, 0, 65535);
  n.get_int("io_threads", &out->io_threads, 0, 64);
  n.get_bool("log_api", &out->log_api);
  n.get_duration_ms("log_api_txn_timeout", &out->log_api_txn_timeout_ms, 1);
  n.get_int("max_connections", &out->max_connections, 1, 1'000'000);
  n.get_int("max_header_count", &out->max_header_count, 1, 10'000);
  n.get_duration_ms("request_timeout", &out->request_timeout_ms, 100, 3'600'000);
  n.finish();
}

// fsync: always | never | {interval_ms: N}
void parse_fsync(Node f, LogConfig* out) {
  if (f.is_map()) {
    int64_t ms = 0;
    if (f.require("interval_ms").as_duration_ms(&ms, 1, kInt64Max)) {
      out->fsync = FsyncPolicy::kInterval;
      out->fsync_interval_ms = ms;
    }
    f.finish();
    return;
  }
  std::string policy;
  if (!f.as_enum(&policy, {"always", "never"}, "{interval_ms: N}")) return;
  out->fsync = policy == "always" ? FsyncPolicy::kAlways : FsyncPolicy::kNever;
}

// log.kafka: the Kafka log's settings (docs/configuration.md#kafka).
void parse_kafka(Node n, KafkaLogConfig* out) {
  if (!n.present() || n.is_null()) return;
  n.get_string("bootstrap_servers", &out->bootstrap_servers);
  n.get_string("client_id", &out->client_id);
  n.get_enum("acks", &out->acks, {"all", "-1", "0", "1"});
  n.get_bool("enable_idempotence", &out->enable_idempotence);
  n.get_duration_ms("linger_ms", &out->linger_ms, 0, 900'000);
  n.get_size("batch_size", &out->batch_size, 1, 2'147'483'647);
  n.get_enum("compression_type", &out->compression_type, {"none", "gzip", "snappy", "lz4", "zstd"});
  n.get_int("retries", &out->retries, 0, 2'147'483'647);
  n.get_int("max_in_flight_requests_per_connection", &out->max_in_flight_requests_per_connection, 1,
            1'000'000);
  n.get_duration_ms("delivery_timeout_ms", &out->delivery_timeout_ms, 1, 2'147'483'647);
  n.get_duration_ms("request_timeout_ms", &out->request_timeout_ms, 1, 900'000);
  n.get_int("queue_max_messages", &out->queue_max_messages, 1, 2'147'483'647);
  n.get_duration_ms("queue_full_wait_ms", &out->queue_full_wait_ms, 0, 900'000);
  n.get_duration_ms("fetch_wait_max_ms", &out->fetch_wait_max_ms, 0, 300'000);
  n.get_duration_ms("admin_timeout_ms", &out->admin_timeout_ms, 1, 900'000);
  n.get_int("replication_factor", &out->replication_factor, -1, 32767);
  n.get_duration_ms("transaction_timeout_ms", &out->transaction_timeout_ms, 1000, 900'000);
  n.get_enum("security_protocol", &out->security_protocol,
             {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"});
  n.get_enum("sasl_mechanism", &out->sasl_mechanism, {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"});
  n.get_string("sasl_username", &out->sasl_username);
  n.get_string("sasl_password", &out->sasl_password);
  n.get_string("ssl_ca_location", &out->ssl_ca_location);
  n.get_string("ssl_certificate_location", &out->ssl_certificate_location);
  n.get_string("ssl_key_location", &out->ssl_key_location);
  n.get_string("ssl_key_password", &out->ssl_key_password);
  if (out->acks != "all" && out->acks != "-1" && out->enable_idempotence &&
      n.get("acks").present()) {
    n.get("acks").error(
        "enable_idempotence needs acks: all (set enable_idempotence: false to use acks " +
        out->acks + ")");
  }
  Node props = n.child("properties");
  if (props.present() && !props.is_null()) {
    if (!props.is_map()) {
      props.error("expected a map of librdkafka properties (name: value)");
    } else {
      for (const std::string& k : props.keys()) {
        std::string v;
        if (props.get(k).as_string(&v)) out->properties.emplace_back(k, v);
      }
    }
  }
  n.finish();
}

void parse_log(Node n, LogConfig* out) {
  n.get_enum("kind", &out->kind, {"embedded", "remote", "kafka"});
  // The reference design's variable alone moves a pipeline without a log kind onto Kafka.
  if (const char* bs = std::getenv("KAFKA_BOOTSTRAP_SERVERS");
      bs != nullptr && *bs != 0 && !n.get("kind").present()) {
    out->kind = "kafka";
  }
  n.get_string("url", &out->url);
  n.get_duration_ms("timeout", &out->remote_timeout_ms, 1);
  n.get_duration_ms("connect_wait", &out->remote_connect_wait_ms, 0);
  if (out->kind == "remote" && out->url.empty()) {
    n.get("kind").error(
        "log kind remote needs url: http://HOST:PORT of the process that owns the log");
  } else if (!out->url.empty() && !out->url.starts_with("http://") &&
             !out->url.starts_with("https://")) {
    n.get("url").error(
        "expected http://HOST:PORT (or https://) of the process that owns the log, got " +
        config::quote(out->url));
  } else if (!out->url.empty() && out->kind != "remote") {
    n.get("url").error("url is only for log kind remote");
  }
  n.get_size("segment_bytes", &out->segment_bytes, 4096);
  n.get_duration_ms("segment_ms", &out->segment_ms, 1);
  parse_fsync(n.get("fsync"), out);
  n.get_size("index_interval_bytes", &out->index_interval_bytes, 1);
  n.get_enum("compression", &out->compression, compressions());
  parse_retention(n.child("retention"), &out->retention);
  n.get_duration_ms("retention_check_interval_ms", &out->retention_check_interval_ms, 1);
  n.get_int("default_partitions", &out->default_partitions, 1, kMaxPartitions);
  n.get_bool("auto_create_topics", &out->auto_create_topics);
  parse_kafka(n.child("kafka"), &out->kafka);
  if (out->kind != "kafka" && n.get("kafka").present()) {
    n.get("kafka").error("kafka: settings are only for log kind kafka");
  }
  n.finish();
}

// Runs after parse_log: topics inherit the log's default_partitions and retention.
void parse_topics(Node root, PipelineConfig* cfg) {
  struct Seen {
    int line;
    int column;
  };
  std::map<std::string, Seen, std::less<>> seen;
  for (Node item : root.list("topics")) {
    if (!item.is_map()) {
      item.error(fmt::format("expected a topic such as {{name: events, partitions: 4}}, got {}",
                             item.describe()));
      continue;
    }
    TopicSpec t;
    t.partitions = cfg->log.default_partitions;
    Node name = item.require("name");
    const bool named = name.as_string(&t.name, check_topic_name);
    item.get_int("partitions", &t.partitions, 1, kMaxPartitions);
    Node retention = item.child("retention");
    RetentionConfig r = cfg->log.retention;  // unset fields inherit the log's retention
    parse_retention(retention, &r);
    if (retention.is_map()) t.retention = r;
    Compression c = Compression::kNone;
    if (item.get_enum("compression", &c, compressions())) t.compression = c;
    item.finish();
    if (named) {
      const auto it = seen.find(t.name);
      if (it != seen.end()) {
        name.error(fmt::format("duplicate topic name {} (first defined at {}:{})",
                               config::quote(t.name), it->second.line, it->second.column));
      } else {
        seen.emplace(t.name, Seen{name.location().line, name.location().column});
      }
    }
    cfg->topics.push_back(std::move(t));
  }
}

std::string check_field_path(std::string_view v) {
  if (v.empty()) return "";
  if (v.front() == '.' || v.back() == '.' || v.find("..") != std::string_view::npos) {
    return fmt::format("expected a dotted field path such as user.id, got {}", config::quote(v));
  }
  return "";
}

// ingestion.sources: [{type, name, topic, <type-specific options>}]. The options are kept as
// text with their positions; each source type validates its own (src/ingest/sources/).
void parse_sources(Node& n, const std::string& file, IngestionConfig* out) {
  std::map<std::string, std::pair<int, int>, std::less<>> seen;
  size_t index = 0;
  for (Node item : n.list("sources")) {
    SourceConfig sc;
    sc.path = fmt::format("ingestion.sources[{}]", index++);
    sc.file = file;
    sc.line = item.location().line;
    sc.column = item.location().column;
    if (!item.is_map()) {
      item.error(
          fmt::format("expected a source such as {{type: file, name: app, paths: [...]}}, "
                      "got {}",
                      item.describe()));
      continue;
    }
    item.require("type").as_string(&sc.type, config::non_empty);
    Node name = item.require("name");
    const bool named = name.as_string(&sc.name, check_name_chars);
    item.get_string("topic", &sc.topic, [](std::string_view v) {
      return v.empty() ? std::string() : check_topic_name(v);
    });
    if (named) {
      auto it = seen.find(sc.name);
      if (it != seen.end() || sc.name == "http") {
        name.error(sc.name == "http"
                       ? std::string("the name \"http\" is taken by POST /ingest")
                       : fmt::format("duplicate source name {} (first defined at "
                                     "{}:{})",
                                     config::quote(sc.name), it->second.first, it->second.second));
      } else {
        seen.emplace(sc.name, std::make_pair(name.location().line, name.location().column));
      }
    }
    for (const std::string& key : item.keys()) {
      if (key == "type" || key == "name" || key == "topic") continue;
      Node v = item.get(key);
      SourceOption opt;
      opt.line = v.location().line;
      opt.column = v.location().column;
      if (v.is_list()) {
        opt.is_list = true;
        for (Node e : v.items()) {
          std::string text;
          if (e.scalar("a scalar", &text)) opt.items.push_back(std::move(text));
        }
      } else if (!v.scalar("a scalar or a list of scalars", &opt.value)) {
        continue;
      }
      sc.options.emplace(key, std::move(opt));
    }
    item.finish();
    out->sources.push_back(std::move(sc));
  }
}

// ingestion.dedup: {key: field | [fields] | "$", ttl, store, max_keys, on_store_error}
// The `store: redis` keys of ingestion.dedup; they are errors with another store (a redis_url
// that silently does nothing would hide a forgotten `store: redis`).
void parse_dedup_redis(Node& n, const EnvLookup& env, const std::string& pipeline_name,
                       DedupConfig* out) {
  const bool redis = out->store == "redis";
  auto check_url = [](std::string_view v) {
    config::RedisUrl u;
    return config::parse_redis_url(v, &u);
  };
  for (std::string_view key :
       {"redis_url", "redis_password", "redis_key_prefix", "claim_ttl", "redis_timeout"}) {
    Node v = n.get(key);
    if (v.present() && !redis) {
      v.error(fmt::format("applies only to store: redis (store is {})", out->store));
    }
  }
  if (!redis) return;
  n.get_string("redis_url", &out->redis_url, check_url);
  n.get_string("redis_password", &out->redis_password);
  n.get_string("redis_key_prefix", &out->redis_key_prefix, config::non_empty);
  n.get_duration_ms("claim_ttl", &out->claim_ttl_ms, 100, 24LL * 3600 * 1000);
  n.get_duration_ms("redis_timeout", &out->redis_timeout_ms, 1, 600'000);
  auto from_env = [&](const char* name) {
    std::optional<std::string> v = env ? env(name) : std::nullopt;
    return v && !v->empty() ? *v : std::string();
  };
  if (!n.get("redis_url").present()) {
    out->redis_url = from_env("REDIS_URL");
    if (!out->redis_url.empty()) {
      // Not a position in the file: the error names the variable at the `store` key.
      if (std::string e = check_url(out->redis_url); !e.empty()) {
        n.get("store").error("$REDIS_URL: " + e);
      }
    } else {
      out->redis_url = "redis://127.0.0.1:6379/0";
    }
  }
  if (!n.get("redis_password").present()) out->redis_password = from_env("REDIS_PASSWORD");
  if (!n.get("redis_key_prefix").present()) {
    out->redis_key_prefix = "spate:dedup:" + pipeline_name + ":";
  }
}

void parse_dedup(Node n, const EnvLookup& env, const std::string& pipeline_name, DedupConfig* out) {
  if (!n.present() || n.is_null()) return;
  Node key = n.require("key");
  if (key.is_list()) {
    for (Node item : key.items()) {
      std::string f;
      if (item.as_string(&f, [](std::string_view v) {
            return v == "$" ? std::string() : v.empty() ? "must not be empty" : check_field_path(v);
          })) {
        out->fields.push_back(f);
      }
    }
    if (out->fields.empty() && key.present()) key.error("expected at least one field");
  } else if (key.present()) {
    std::string f;
    if (key.as_string(&f, [](std::string_view v) {
          return v == "$" ? std::string() : v.empty() ? "must not be empty" : check_field_path(v);
        })) {
      out->fields.push_back(f);
    }
  }
  n.get_duration_ms("ttl", &out->ttl_ms, 1000);
  n.get_enum("store", &out->store, {"embedded", "redis"});
  n.get_int("max_keys", &out->max_keys, 1000, 1'000'000'000);
  std::string on_error = "reject";
  if (n.get_enum("on_store_error", &on_error, {"reject", "accept"})) {
    out->accept_on_store_error = on_error == "accept";
  }
  parse_dedup_redis(n, env, pipeline_name, out);
  n.finish();
}

// ingestion.routes: [{when: EXPR, topic: T | topics: [T, ...]}]; expressions are compiled (and
// their errors reported with positions) by the ingestion engine's validation.
void parse_route_list(Node& n, std::string_view key, const std::string& file,
                      const std::string& path, std::vector<RouteConfig>* out);

void parse_routes(Node& n, const std::string& file, IngestionConfig* out) {
  parse_route_list(n, "routes", file, "ingestion.routes", &out->routes);
}

void parse_route_list(Node& n, std::string_view key, const std::string& file,
                      const std::string& path, std::vector<RouteConfig>* out) {
  size_t index = 0;
  for (Node item : n.list(key)) {
    RouteConfig r;
    r.path = fmt::format("{}[{}]", path, index++);
    r.file = file;
    if (!item.is_map()) {
      item.error(
          fmt::format("expected a route such as {{when: 'level == \"error\"', topic: "
                      "alerts}}, got {}",
                      item.describe()));
      continue;
    }
    Node when = item.get("when");
    r.line = when.present() ? when.location().line : item.location().line;
    r.column = when.present() ? when.location().column : item.location().column;
    if (when.present()) when.as_string(&r.when, config::non_empty);
    std::string one;
    if (item.get_string("topic", &one, check_topic_name)) r.topics.push_back(one);
    Node many = item.get("topics");
    for (Node t : many.items()) {
      std::string name;
      if (t.as_string(&name, check_topic_name)) r.topics.push_back(name);
    }
    if (r.topics.empty()) item.error("a route needs `topic` or `topics`");
    item.finish();
    out->push_back(std::move(r));
  }
}

// A scalar as a JSON literal: true/false/null and JSON numbers as themselves, anything else as
// a JSON string (quoting in YAML does not change this, as for every other key).
std::string scalar_json(std::string_view text) {
  if (text == "true" || text == "false" || text == "null") return std::string(text);
  size_t i = 0;
  auto digits = [&] {
    size_t b = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    return i > b;
  };
  bool number = true;
  if (i < text.size() && text[i] == '-') ++i;
  if (i < text.size() && text[i] == '0') {
    ++i;
  } else if (!(i < text.size() && text[i] >= '1' && text[i] <= '9' && digits())) {
    number = false;
  }
  if (number && i < text.size() && text[i] == '.') {
    ++i;
    number = digits();
  }
  if (number && i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    number = digits();
  }
  if (number && i == text.size() && !text.empty()) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool get_double(Node& n, std::string_view key, std::optional<double>* out) {
  Node v = n.get(key);
  std::string text;
  if (!v.present() || !v.scalar("a number", &text)) return false;
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || d != d) {
    v.error(fmt::format("expected a number, got {}", config::quote(text)));
    return false;
  }
  *out = d;
  return true;
}

// A field path or a list of them.
void field_list(Node v, std::vector<std::string>* out) {
  auto one = [&](Node item) {
    std::string f;
    if (item.as_string(&f, [](std::string_view s) {
          return s.empty() ? std::string("must not be empty") : check_field_path(s);
        })) {
      out->push_back(f);
    }
  };
  if (v.is_list()) {
    for (Node item : v.items()) one(item);
    if (out->empty()) v.error("expected at least one field");
  } else {
    one(v);
  }
}

// ingestion.quality: [{<kind>: ..., name, action, min, max, values, pattern, field}]
void parse_quality(Node& n, const std::string& file, IngestionConfig* out) {
  static const std::vector<std::string> kKinds = {"required", "range",       "allowed", "regex",
                                                  "max_age",  "future_skew", "expr"};
  size_t index = 0;
  for (Node item : n.list("quality")) {
    QualityCheckConfig c;
    c.path = fmt::format("ingestion.quality[{}]", index++);
    c.file = file;
    c.line = item.location().line;
    c.column = item.location().column;
    if (!item.is_map()) {
      item.error(
          fmt::format("expected a check such as {{name: amount, range: amount, min: 0}}, "
                      "got {}",
                      item.describe()));
      continue;
    }
    std::vector<std::string> kinds;
    for (const std::string& k : item.keys()) {
      if (std::find(kKinds.begin(), kKinds.end(), k) != kKinds.end()) kinds.push_back(k);
    }
    if (kinds.size() != 1) {
      item.error(kinds.empty()
                     ? "a check needs one of required, range, allowed, regex, max_age, "
                       "future_skew, expr"
                     : fmt::format("a check has one kind, got {} and {}", kinds[0], kinds[1]));
      for (const std::string& k : item.keys()) (void)item.get(k);
      continue;
    }
    c.kind = kinds[0];
    Node main = item.get(c.kind);
    c.line = main.location().line;
    c.column = main.location().column;
    item.get_string("name", &c.name, check_name_chars);
    item.get_enum("action", &c.action,
                  std::vector<std::pair<std::string, QualityAction>>{
                      {"reject", QualityAction::kReject},
                      {"dead_letter", QualityAction::kDeadLetter},
                      {"tag", QualityAction::kTag},
                      {"drop", QualityAction::kDrop}});
    if (c.kind == "required") {
      field_list(main, &c.fields);
    } else if (c.kind == "max_age" || c.kind == "future_skew") {
      main.as_duration_ms(&c.duration_ms, 1, kInt64Max);
      std::string f;
      if (item.get_string("field", &f, check_field_path) && !f.empty()) c.fields.push_back(f);
    } else if (c.kind == "expr") {
      main.as_string(&c.expr, config::non_empty);
    } else {
      std::string f;
      if (main.as_string(&f, [](std::string_view s) {
            return s.empty() ? std::string("must not be empty") : check_field_path(s);
          })) {
        c.fields.push_back(f);
      }
    }
    if (c.kind == "range") {
      const bool has_bound = item.get("min").present() || item.get("max").present();
      get_double(item, "min", &c.min);
      get_double(item, "max", &c.max);
      if (!has_bound) item.error("a range check needs `min`, `max` or both");
    }
    if (c.kind == "allowed") {
      Node values = item.require("values");
      for (Node v : values.items()) {
        std::string text;
        if (v.is_null()) {
          c.values.emplace_back("null");  // `null` / `~` in the list: JSON null
        } else if (v.scalar("a scalar", &text)) {
          c.values.push_back(scalar_json(text));
        }
      }
      if (values.present() && values.is_list() && c.values.empty()) {
        values.error("expected at least one value");
      }
    }
    if (c.kind == "regex") item.require("pattern").as_string(&c.pattern, config::non_empty);
    item.finish();
    out->quality.push_back(std::move(c));
  }
}

// ingestion.transforms: [{<op>: field, to, value, expr, when, on_error, ...}]
void parse_transform_list(Node& n, std::string_view key, const std::string& file,
                          const std::string& path, std::vector<TransformConfig>* out);

void parse_transforms(Node& n, const std::string& file, IngestionConfig* out) {
  parse_transform_list(n, "transforms", file, "ingestion.transforms", &out->transforms);
}

void parse_transform_list(Node& n, std::string_view key, const std::string& file,
                          const std::string& path, std::vector<TransformConfig>* out) {
  static const std::vector<std::string> kOps = {"rename",  "set",  "remove", "cast",
                                                "default", "mask", "hash",   "metadata"};
  size_t index = 0;
  for (Node item : n.list(key)) {
    TransformConfig t;
    t.path = fmt::format("{}[{}]", path, index++);
    t.file = file;
    t.line = item.location().line;
    t.column = item.location().column;
    if (!item.is_map()) {
      item.error(fmt::format("expected a transform such as {{rename: usr, to: user_id}}, got {}",
                             item.describe()));
      continue;
    }
    std::vector<std::string> ops;
    for (const std::string& k : item.keys()) {
      if (std::find(kOps.begin(), kOps.end(), k) != kOps.end()) ops.push_back(k);
    }
    if (ops.size() != 1) {
      item.error(ops.empty()
                     ? "a transform needs one of rename, set, remove, cast, default, "
                       "mask, hash, metadata"
                     : fmt::format("a transform does one thing, got {} and {}", ops[0], ops[1]));
      for (const std::string& k : item.keys()) (void)item.get(k);
      continue;
    }
    t.op = ops[0];
    Node main = item.get(t.op);
    t.line = main.location().line;
    t.column = main.location().column;
    if (t.op == "metadata") {
      Node m = item.child("metadata");
      m.get_string("received_at", &t.received_at, check_field_path);
      m.get_string("source", &t.source, check_field_path);
      m.get_string("request_id", &t.request_id, check_field_path);
      if (t.received_at.empty() && t.source.empty() && t.request_id.empty()) {
        main.error(
            "name at least one of received_at, source, request_id, e.g. "
            "{received_at: _ingest.received_at}");
      }
      m.finish();
    } else if (t.op == "remove") {
      field_list(main, &t.fields);
    } else {
      std::string f;
      if (main.as_string(&f, [](std::string_view s) {
            return s.empty() ? std::string("must not be empty") : check_field_path(s);
          })) {
        t.fields.push_back(f);
      }
    }
    if (t.op == "rename") {
      item.require("to").as_string(&t.to, [](std::string_view s) {
        return s.empty() ? std::string("must not be empty") : check_field_path(s);
      });
    }
    if (t.op == "cast") {
      item.require("to").as_enum(&t.to, {"int", "double", "float", "string", "bool"});
      if (t.to == "float") t.to = "double";  // an alias, as in Vector and SQL
    }
    if (t.op == "set" || t.op == "default") {
      Node value = item.get("value");
      std::string text;
      if (value.present()) {
        if (value.scalar("a scalar (use expr for computed or structured values)", &text)) {
          t.value_json = scalar_json(text);
        }
      }
      if (t.op == "set") {
        Node e = item.get("expr");
        if (e.present()) {
          e.as_string(&t.expr, config::non_empty);
          if (value.present()) e.error("give either value or expr, not both");
        } else if (!value.present()) {
          item.error("set needs `value` or `expr`");
        }
      } else if (!value.present()) {
        item.error("default needs `value`");
      }
    }
    if (t.op == "mask") {
      item.get_int("keep_first", &t.keep_first, 0, 1000);
      item.get_int("keep_last", &t.keep_last, 0, 1000);
      item.get_string("char", &t.mask_char, config::non_empty);
      std::string r;
      if (item.get_string("replacement", &r)) t.replacement = r;
    }
    if (t.op == "hash") item.get_string("key", &t.key, config::non_empty);
    item.get_string("when", &t.when, config::non_empty);
    std::string on_error = "reject";
    if (item.get_enum("on_error", &on_error, {"reject", "skip"}))
      t.skip_on_error = on_error == "skip";
    item.finish();
    out->push_back(std::move(t));
  }
}

void parse_ingestion(Node n, const std::string& file, const EnvLookup& env,
                     const std::string& pipeline_name, IngestionConfig* out) {
  n.get_bool("enabled", &out->enabled);
  n.get_enum("ack", &out->ack,
             std::vector<std::pair<std::string, AckMode>>{{"durable", AckMode::kDurable},
                                                          {"buffered", AckMode::kBuffered}});
  n.get_int("batch_size", &out->batch_size, 1, 1'000'000);
  n.get_duration_ms("flush_interval_ms", &out->flush_interval_ms, 0, 60'000);
  n.get_int("max_queue_size", &out->max_queue_size, 1, 1'000'000'000);
  n.get_int("max_workers", &out->max_workers, 1, 256);
  n.get_size("buffer_size", &out->buffer_size, 512, 1 << 30);
  n.get_bool("enable_compression", &out->enable_compression);
  n.get_size("max_body_bytes", &out->max_body_bytes, 1, 1LL << 32);
  n.get_int("max_events_per_request", &out->max_events_per_request, 0, 100'000'000);
  n.get_size("max_event_bytes", &out->max_event_bytes, 1, 1LL << 30);
  n.get_int("max_depth", &out->max_depth, 1, 1024);
  n.get_string("key_field", &out->key_field, check_field_path);
  n.get_string("timestamp_field", &out->timestamp_field, check_field_path);
  n.get_string("default_topic", &out->default_topic,
               [](std::string_view v) { return v.empty() ? std::string() : check_topic_name(v); });
  n.get_string("dead_letter_topic", &out->dead_letter_topic,
               [](std::string_view v) { return v.empty() ? std::string() : check_topic_name(v); });
  n.get_bool("all_or_nothing", &out->all_or_nothing);
  n.get_bool("allow_any_topic", &out->allow_any_topic);
  parse_sources(n, file, out);
  parse_dedup(n.child("dedup"), env, pipeline_name, &out->dedup);
  parse_routes(n, file, out);
  parse_quality(n, file, out);
  parse_transforms(n, file, out);
  n.get_string("schema_file", &out->schema_file, config::non_empty);
  n.get_string("schema", &out->schema, config::non_empty);
  if (!out->schema_file.empty() && !out->schema.empty()) {
    n.get("schema").error("give either schema or schema_file, not both");
  }
  n.finish();
}

// A step's keys as an OptionValue tree (positions kept) for the step type's factory.
void to_option_value(Node n, OptionValue* out, std::string_view skip = {}) {
  out->line = n.location().line;
  out->column = n.location().column;
  if (n.is_map()) {
    out->kind = OptionValue::kMap;
    for (const std::string& k : n.keys()) {
      if (k == skip) continue;
      OptionValue v;
      to_option_value(n.get(k), &v);
      out->map.emplace_back(k, std::move(v));
    }
  } else if (n.is_list()) {
    out->kind = OptionValue::kList;
    for (Node item : n.items()) {
      OptionValue v;
      to_option_value(item, &v);
      out->list.push_back(std::move(v));
    }
  } else if (n.is_scalar()) {
    out->kind = OptionValue::kScalar;
    (void)n.scalar("a value", &out->scalar);
  } else {
    out->kind = OptionValue::kNull;
  }
}

// processors: [{name, inputs, output, dead_letter_topic, group, batch_size, poll_timeout,
// replica, replicas, start, max_retries, retry_backoff, steps: [{filter} | {map} | {route}]}]
// A number in [lo, hi] (plain scalar); reports and returns false otherwise.
bool scalar_double(Node n, double* out, double lo, double hi, std::string_view what) {
  std::string text;
  if (!n.scalar(what, &text)) return false;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !(v >= lo && v <= hi)) {
    n.error(fmt::format("expected {}, got {}", what, n.describe()));
    return false;
  }
  *out = v;
  return true;
}

// analytics[i].patterns and analytics[i].anomalies (RuleConfig).
void parse_rules(Node& item, AnalyticsConfig& ac) {
  const std::vector<std::pair<std::string, RuleType>> pattern_types = {
      {"threshold", RuleType::kThreshold},
      {"trend", RuleType::kTrend},
      {"correlation", RuleType::kCorrelation},
      {"sequence", RuleType::kSequence}};
  std::map<std::string, std::pair<int, int>, std::less<>> names;
  auto common = [&](Node& r, RuleConfig& rc, const std::string& path) {
    rc.file = ac.file;
    rc.line = r.location().line;
    rc.column = r.location().column;
    rc.path = path;
    r.require("name");
    r.get_string("name", &rc.name, check_name_chars);
    r.get_enum("severity", &rc.severity, {"info", "warning", "critical"});
    r.get_duration_ms("cooldown", &rc.cooldown_ms, 0);
    r.get_int("max_per_minute", &rc.max_per_minute, 0, 1'000'000);
    auto it = names.find(rc.name);
    if (!rc.name.empty() && it != names.end()) {
      r.get("name").error(fmt::format("duplicate rule name {} (first defined at {}:{})",
                                      config::quote(rc.name), it->second.first, it->second.second));
    } else if (!rc.name.empty()) {
      names.emplace(rc.name, std::make_pair(rc.line, rc.column));
    }
  };
  auto expression = [](Node& r, std::string_view key, std::string* out) {
    if (!r.get_string(key, out, config::non_empty)) return;
    auto e = expr::Expression::compile(*out);
    if (!e.ok()) r.get(key).error(e.status().message());
  };
  size_t i = 0;
  for (Node r : item.list("patterns")) {
    const std::string path = fmt::format("{}.patterns[{}]", ac.path, i++);
    if (!r.is_map()) {
      r.error(
          fmt::format("expected a pattern such as {{name: slow, type: threshold, "
                      "condition: \"avg_ms > 500\"}}, got {}",
                      r.describe()));
      continue;
    }
    RuleConfig rc;
    common(r, rc, path);
    r.require("type");
    r.get_enum("type", &rc.type, pattern_types);
    switch (rc.type) {
      case RuleType::kThreshold:
        r.require("condition");
        expression(r, "condition", &rc.condition);
        expression(r, "resolve", &rc.resolve);
        if (Node f = r.get("for"); f.present()) {
          // `for: 3` (windows) or `for: 2m` (a duration the breach must hold)
          std::string text;
          if (f.is_scalar() && f.scalar("windows or a duration", &text) && !text.empty() &&
              text.find_first_not_of("0123456789") == std::string::npos) {
            r.get_int("for", &rc.for_windows, 1, 1'000'000);
          } else {
            r.get_duration_ms("for", &rc.for_ms, 1);
          }
        }
        break;
      case RuleType::kTrend:
        r.require("value");
        r.get_string("value", &rc.value, config::non_empty);
        r.get_int("windows", &rc.windows, 2, 10'000);
        if (Node v = r.get("rising"); v.present()) {
          scalar_double(v, &rc.rising, 0, 1e300, "a slope per second >= 0 (0 = not checked)");
        }
        if (Node v = r.get("falling"); v.present()) {
          scalar_double(v, &rc.falling, 0, 1e300, "a slope per second >= 0 (0 = not checked)");
        }
        if (rc.rising <= 0 && rc.falling <= 0) {
          r.error("a trend needs rising: or falling: (a slope per second, e.g. rising: 0.5)");
        }
        break;
      case RuleType::kCorrelation:
        r.require("x");
        r.require("y");
        r.get_string("x", &rc.x, config::non_empty);
        r.get_string("y", &rc.y, config::non_empty);
        if (Node v = r.get("threshold"); v.present()) {
          scalar_double(v, &rc.min_abs_r, 0, 1, "an |r| between 0 and 1, e.g. 0.8");
        }
        // windows: N — x and y are aggregates, r over the key's last N windows (like trend).
        if (r.get_int("windows", &rc.correlation_windows, 2, 10'000)) {
          rc.min_count = std::min<uint64_t>(rc.min_count, rc.correlation_windows);
          if (r.get_int("min_count", &rc.min_count, 2, 1'000'000'000) &&
              rc.min_count > rc.correlation_windows) {
            r.get("min_count")
                .error(
                    fmt::format("min_count must be at most windows ({})", rc.correlation_windows));
          }
          for (const char* k : {"x", "y"}) {
            const std::string& f = *k == 'x' ? rc.x : rc.y;
            const std::string base = f.substr(0, f.find('.'));
            const bool known =
                std::any_of(ac.aggregations.begin(), ac.aggregations.end(),
                            [&](const AggregationConfig& a) { return a.name == base; });
            if (!f.empty() && !known) {
              r.get(k).error(
                  fmt::format("{} is not an aggregation of this job; with windows: the "
                              "correlation reads two aggregates",
                              config::quote(f)));
            }
          }
        } else {
          r.get_int("min_count", &rc.min_count, 2, 1'000'000'000);
        }
        break;
      case RuleType::kSequence: {
        rc.cooldown_ms = 0;  // every match is its own occurrence
        r.get_duration_ms("cooldown", &rc.cooldown_ms, 0);
        Node steps = r.require("steps");
        size_t n = 0;
        for (Node st : r.list("steps")) {
          std::string text;
          if (!st.as_string(&text, config::non_empty)) continue;
          auto e = expr::Expression::compile(text);
          if (!e.ok()) st.error(e.status().message());
          rc.steps.push_back(text);
          ++n;
        }
        if (steps.present() && (n < 2 || n > 31)) {
          steps.error(
              "a sequence needs 2 to 31 steps (conditions), e.g. "
              "[\"type == 'login'\", \"type == 'purchase'\"]");
        }
        expression(r, "not_followed_by", &rc.not_followed_by);
        r.require("within");
        r.get_duration_ms("within", &rc.within_ms, 1);
        break;
      }
      case RuleType::kAnomaly:
        break;
    }
    r.finish();
    ac.rules.push_back(std::move(rc));
  }
  i = 0;
  for (Node r : item.list("anomalies")) {
    const std::string path = fmt::format("{}.anomalies[{}]", ac.path, i++);
    if (!r.is_map()) {
      r.error(
          fmt::format("expected an anomaly rule such as {{name: spike, value: avg_ms, "
                      "threshold: 3}}, got {}",
                      r.describe()));
      continue;
    }
    RuleConfig rc;
    rc.type = RuleType::kAnomaly;
    common(r, rc, path);
    r.require("value");
    r.get_string("value", &rc.value, config::non_empty);
    std::string on = "window";
    if (r.get_enum("on", &on, {"window", "event"})) rc.per_event = on == "event";
    r.get_enum("method", &rc.method, {"zscore", "mad", "ewma"});
    r.get_int("baseline", &rc.baseline, 2, 1 << 20);
    r.get_int("warmup", &rc.warmup, 2, 1 << 20);
    if (rc.warmup > rc.baseline && rc.method != "ewma") {
      r.get("warmup").error("warmup must be at most baseline");
    }
    if (Node v = r.get("threshold"); v.present()) {
      scalar_double(v, &rc.threshold, 1e-9, 1e9, "a score threshold > 0, e.g. 3");
    }
    if (Node v = r.get("alpha"); v.present()) {
      scalar_double(v, &rc.alpha, 1e-9, 1, "a smoothing factor in (0, 1], e.g. 0.1");
    }
    r.get_bool("include_anomalies", &rc.include_anomalies);
    r.finish();
    ac.rules.push_back(std::move(rc));
  }
}

void parse_analytics(Node& root, const std::string& file, const EnvLookup& env,
                     PipelineConfig* cfg) {
  std::map<std::string, std::pair<int, int>, std::less<>> seen;
  size_t index = 0;
  auto topic_check = [](std::string_view v) { return check_topic_name(v); };
  const std::vector<std::pair<std::string, WindowType>> window_types = {
      {"tumbling", WindowType::kTumbling}, {"sliding", WindowType::kSliding},
      {"hopping", WindowType::kSliding},   {"session", WindowType::kSession},
      {"count", WindowType::kCount},       {"global", WindowType::kGlobal}};
  const std::vector<std::pair<std::string, AggregationType>> agg_types = {
      {"count", AggregationType::kCount},
      {"sum", AggregationType::kSum},
      {"avg", AggregationType::kAvg},
      {"min", AggregationType::kMin},
      {"max", AggregationType::kMax},
      {"stddev", AggregationType::kStddev},
      {"variance", AggregationType::kVariance},
      {"percentile", AggregationType::kPercentile},
      {"distinct_count", AggregationType::kDistinctCount},
      {"top_k", AggregationType::kTopK},
      {"first", AggregationType::kFirst},
      {"last", AggregationType::kLast},
      {"correlation", AggregationType::kCorrelation}};
  for (Node item : root.list("analytics")) {
    AnalyticsConfig ac;
    ac.path = fmt::format("analytics[{}]", index++);
    ac.file = file;
    ac.line = item.location().line;
    ac.column = item.location().column;
    if (!item.is_map()) {
      item.error(
          fmt::format("expected an analytics job such as {{name: latency, inputs: [events], "
                      "output: latency_1m, window: {{type: tumbling, size: 1m}}, "
                      "aggregations: [...]}}, got {}",
                      item.describe()));
      continue;
    }
    Node name = item.require("name");
    if (name.as_string(&ac.name, check_name_chars)) {
      auto it = seen.find(ac.name);
      if (it != seen.end()) {
        name.error(fmt::format("duplicate analytics name {} (first defined at {}:{})",
                               config::quote(ac.name), it->second.first, it->second.second));
      } else {
        seen.emplace(ac.name, std::make_pair(name.location().line, name.location().column));
      }
    }
    Node inputs = item.require("inputs");
    if (inputs.is_list()) {
      for (Node t : inputs.items()) {
        std::string topic;
        if (t.as_string(&topic, topic_check)) ac.inputs.push_back(topic);
      }
      if (ac.inputs.empty()) inputs.error("expected at least one input topic");
    } else if (inputs.present()) {
      std::string topic;
      if (inputs.as_string(&topic, topic_check)) ac.inputs.push_back(topic);
    }
    item.get_string("output", &ac.output, topic_check);
    for (Node r : item.list("results")) {
      if (!r.is_map()) {
        r.error(
            fmt::format("expected a result sink such as {{kind: sqlite, path: results.db}}, "
                        "got {}",
                        r.describe()));
        continue;
      }
      ResultSinkConfig rc;
      r.get_enum("kind", &rc.kind, {"sqlite", "postgres", "redis", "file", "kafka"});
      const bool sqlite = rc.kind == "sqlite", postgres = rc.kind == "postgres",
                 redis = rc.kind == "redis", file_kind = rc.kind == "file",
                 kafka = rc.kind == "kafka";
      // A key of another kind is an error (not silently ignored); true if `key` applies.
      auto applies = [&](std::string_view key, bool ok, std::string_view kinds) {
        if (Node v = r.get(key); v.present() && !ok) {
          v.error(fmt::format("applies only to kind: {} (kind is {})", kinds, rc.kind));
        }
        return ok;
      };
      if (applies("path", sqlite || file_kind, "sqlite, file")) {
        if (file_kind) r.require("path");
        r.get_string("path", &rc.path, config::non_empty);
      }
      if (applies("table", sqlite || postgres, "sqlite, postgres")) {
        r.get_string("table", &rc.table, check_name_chars);
        if (rc.table.empty()) rc.table = ac.name;
      }
      applies("dsn", postgres, "postgres");
      if (applies("url", postgres || redis, "postgres, redis")) {
        Node url = r.get("url");
        if (postgres && r.get("dsn").present()) {  // `dsn`: the same setting, by another name
          if (url.present()) r.get("dsn").error("url and dsn are the same setting: give one");
          url = r.get("dsn");
        }
        const config::Check check = [redis](std::string_view v) {
          config::RedisUrl u;
          return redis ? config::parse_redis_url(v, &u) : config::non_empty(v);
        };
        const char* var = postgres ? "POSTGRES_URL" : "REDIS_URL";
        std::optional<std::string> from_env = env && !url.present() ? env(var) : std::nullopt;
        if (url.present()) {
          url.as_string(&rc.url, check);
        } else if (from_env && !from_env->empty()) {
          rc.url = *from_env;
          // Not a position in the file: the error names the variable at the `kind` key.
          if (std::string e = check(rc.url); !e.empty())
            r.get("kind").error(fmt::format("${}: {}", var, e));
        } else if (redis) {
          rc.url = "redis://127.0.0.1:6379/0";
        } else {
          url.error(
              "missing: set url (or dsn), a libpq connection string or postgresql:// URL, "
              "or $POSTGRES_URL");
        }
      }
      if (applies("key_prefix", redis, "redis")) {
        r.get_string("key_prefix", &rc.key_prefix, config::non_empty);
        if (rc.key_prefix.empty()) rc.key_prefix = "spate:" + ac.name + ":";
      }
      if (applies("ttl", redis, "redis")) {
        r.get_duration_ms("ttl", &rc.ttl_ms, 1, 10LL * 365 * 86'400'000);
      }
      if (applies("connect_timeout", postgres, "postgres")) {
        r.get_duration_ms("connect_timeout", &rc.connect_timeout_ms, 1, 600'000);
      }
      if (applies("topic", kafka, "kafka")) {
        r.require("topic");
        r.get_string("topic", &rc.topic, topic_check);
      }
      if (applies("bootstrap_servers", kafka, "kafka")) {
        r.get_string("bootstrap_servers", &rc.bootstrap_servers, config::non_empty);
        const char* bs = std::getenv("KAFKA_BOOTSTRAP_SERVERS");
        if (rc.bootstrap_servers.empty() && (bs == nullptr || *bs == 0)) {
          r.get("kind").error("kind kafka needs bootstrap_servers or $KAFKA_BOOTSTRAP_SERVERS");
        }
      }
      if (applies("timeout", postgres || redis, "postgres, redis")) {
        r.get_duration_ms("timeout", &rc.timeout_ms, 1, 3'600'000);
      }
      r.finish();
      ac.results.push_back(std::move(rc));
    }
    if (ac.output.empty() && ac.results.empty()) {
      item.require("output");  // reported as missing: results need somewhere to go
    }
    item.get_string("late_topic", &ac.late_topic, topic_check);
    item.get_string("group", &ac.group, check_name_chars);
    if (Node k = item.get("key_by"); k.is_list()) {
      for (Node f : k.items()) {
        std::string field;
        if (f.as_string(&field, config::non_empty)) ac.key_by.push_back(field);
      }
    } else if (k.present()) {
      std::string field;
      if (k.as_string(&field, config::non_empty)) ac.key_by.push_back(field);
    }
    {
      Node t = item.child("time");
      t.get_string("field", &ac.time_field, config::non_empty);
      t.get_bool("processing_time", &ac.processing_time);
      t.get_duration_ms("max_out_of_orderness", &ac.max_out_of_orderness_ms, 0);
      t.get_duration_ms("idle_timeout", &ac.idle_timeout_ms, 0);
      t.finish();
      if (!ac.time_field.empty() && ac.processing_time) {
        t.get("processing_time").error("time.field and processing_time: true exclude each other");
      }
    }
    {
      Node w = item.require("window");
      if (w.present() && !w.is_map()) {
        w.error(fmt::format("expected a window such as {{type: tumbling, size: 1m}}, got {}",
                            w.describe()));
      } else if (w.present()) {
        WindowConfig& wc = ac.window;
        w.require("type");
        w.get_enum("type", &wc.type, window_types);
        switch (wc.type) {
          case WindowType::kTumbling:
            w.require("size");
            w.get_duration_ms("size", &wc.size_ms, 1);
            break;
          case WindowType::kSliding:
            w.require("size");
            w.require("slide");
            w.get_duration_ms("size", &wc.size_ms, 1);
            w.get_duration_ms("slide", &wc.slide_ms, 1);
            if (wc.slide_ms > wc.size_ms) {
              w.get("slide").error(
                  fmt::format("a slide longer than the window ({} ms > {} ms) "
                              "leaves events in no window",
                              wc.slide_ms, wc.size_ms));
            }
            break;
          case WindowType::kSession:
            w.require("gap");
            w.get_duration_ms("gap", &wc.gap_ms, 1);
            w.get_duration_ms("max_length", &wc.max_length_ms, 1);
            if (wc.max_length_ms != 0 && wc.max_length_ms < wc.gap_ms) {
              w.get("max_length").error("max_length must be at least the gap");
            }
            break;
          case WindowType::kCount:
            w.require("size");
            w.get_int("size", &wc.count, 1, 100'000'000);
            w.get_int("slide", &wc.count_slide, 1, 100'000'000);
            if (wc.count_slide > wc.count) w.get("slide").error("slide must be at most size");
            break;
          case WindowType::kGlobal: {
            Node trig = w.child("trigger");
            trig.get_int("every", &wc.trigger_every, 1, 1'000'000'000);
            trig.get_duration_ms("interval", &wc.trigger_interval_ms, 1, 86'400'000);
            trig.finish();
            if (wc.trigger_every == 0 && wc.trigger_interval_ms == 0) {
              w.require("trigger");
              if (trig.present()) trig.error("a trigger needs every: N (events) or interval: D");
            }
            w.get_bool("purge", &wc.purge);
            break;
          }
        }
        w.get_duration_ms("allowed_lateness", &wc.allowed_lateness_ms, 0);
        if (w.get_duration_ms("early", &wc.early_ms, 1, 86'400'000) &&
            (wc.type == WindowType::kCount || wc.type == WindowType::kGlobal)) {
          w.get("early").error("early results need a time window (count windows emit per event)");
        }
        w.finish();
      }
    }
    // The reference design's names for lateness: enable_late_data + late_data_threshold_seconds.
    item.get_duration_ms("allowed_lateness", &ac.window.allowed_lateness_ms, 0);
    if (int64_t v = 0; item.get_int("late_data_threshold_seconds", &v, 0, 86'400 * 365)) {
      ac.window.allowed_lateness_ms = v * 1000;
    }
    if (bool late = true; item.get_bool("enable_late_data", &late) && !late) {
      ac.window.allowed_lateness_ms = 0;
    }
    item.get_int("batch_size", &ac.batch_size, 1, 1'000'000);
    item.get_duration_ms("poll_timeout", &ac.poll_timeout_ms, 1, 60'000);
    // State checkpoints: `checkpoint: false` or {enabled, dir, interval}.
    if (Node ck = item.get("checkpoint"); ck.present() && !ck.is_map()) {
      item.get_bool("checkpoint", &ac.checkpoint_enabled);
    } else if (ck.present()) {
      Node c = item.child("checkpoint");
      c.get_bool("enabled", &ac.checkpoint_enabled);
      c.get_string("dir", &ac.checkpoint_dir, config::non_empty);
      c.get_duration_ms("interval", &ac.checkpoint_interval_ms, 100, 3'600'000);
      c.finish();
    }
    item.get_int("max_keys", &ac.max_keys, 1, 1'000'000'000);
    item.get_int("replicas", &ac.replicas, 1, 1024);
    if (item.get_int("replica", &ac.replica, 0, 1023) && ac.replica >= ac.replicas) {
      item.get("replica").error(fmt::format("must be below replicas ({})", ac.replicas));
    }
    std::map<std::string, std::pair<int, int>, std::less<>> agg_names;
    Node aggs = item.require("aggregations");
    for (Node a : item.list("aggregations")) {
      if (!a.is_map()) {
        a.error(
            fmt::format("expected an aggregation such as {{type: avg, field: latency_ms}}, "
                        "got {}",
                        a.describe()));
        continue;
      }
      AggregationConfig g;
      a.require("type");
      a.get_enum("type", &g.type, agg_types);
      a.get_string("field", &g.field, config::non_empty);
      if (g.field.empty() && g.type != AggregationType::kCount) a.require("field");
      if (g.type == AggregationType::kCorrelation) {
        a.require("with");
        a.get_string("with", &g.with, config::non_empty);
      }
      if (g.type == AggregationType::kPercentile) {
        if (Node q = a.get("quantiles"); q.present()) {
          for (Node v : q.items()) {
            double d = 0;
            if (scalar_double(v, &d, 0, 1, "a quantile between 0 and 1")) g.quantiles.push_back(d);
          }
        } else {
          g.quantiles = {0.5, 0.95, 0.99};
        }
        if (Node e = a.get("relative_error"); e.present()) {
          scalar_double(e, &g.relative_error, 1e-6, 0.5, "a relative error in (0, 0.5], e.g. 0.01");
        }
      }
      if (g.type == AggregationType::kTopK) {
        a.get_int("k", &g.k, 1, 10'000);
        a.get_int("capacity", &g.capacity, 1, 1'000'000);
        if (g.capacity != 0 && g.capacity < g.k)
          a.get("capacity").error("capacity must be at least k");
      }
      if (g.type == AggregationType::kDistinctCount) {
        a.get_int("precision", &g.precision, 4, 18);
        a.get_int("exact_threshold", &g.exact_threshold, 0, 1'000'000);
      }
      if (g.type == AggregationType::kStddev || g.type == AggregationType::kVariance) {
        std::string kind = "sample";
        if (a.get_enum("kind", &kind, {"sample", "population"})) g.sample = kind == "sample";
      }
      std::string tname(aggregation_type_name(g.type));
      g.name = g.field.empty() ? tname : tname + "_" + g.field;
      if (!g.with.empty()) g.name += "_" + g.with;
      for (char& c : g.name) {
        if (c == '.') c = '_';
      }
      a.get_string("name", &g.name, config::non_empty);
      a.finish();
      auto it = agg_names.find(g.name);
      if (it != agg_names.end()) {
        a.error(
            fmt::format("duplicate aggregation name {} (first defined at {}:{}); give one a "
                        "name:",
                        config::quote(g.name), it->second.first, it->second.second));
      } else {
        agg_names.emplace(g.name, std::make_pair(a.location().line, a.location().column));
      }
      ac.aggregations.push_back(std::move(g));
    }
    if (aggs.present() && ac.aggregations.empty() && aggs.is_list()) {
      aggs.error("expected at least one aggregation, e.g. [{type: count}]");
    }
    parse_rules(item, ac);
    item.get_string("alerts_topic", &ac.alerts_topic, topic_check);
    // The reference design's tuning keys, mapped onto this engine.
    if (uint32_t workers = 0; item.get_int("aggregation_workers", &workers, 1, 64)) {
      ac.workers = workers;
    }
    item.get_int("window_buffer_size", &ac.sequence_buffer, 1, 100'000'000);
    item.get_duration_ms("cleanup_interval", &ac.cleanup_interval_ms, 10, 3'600'000);
    item.get_duration_ms("pattern_detection_interval", &ac.pattern_interval_ms, 0, 3'600'000);
    item.finish();
    cfg->analytics.push_back(std::move(ac));
  }
}

void parse_processors(Node& root, const std::string& file, PipelineConfig* cfg) {
  std::map<std::string, std::pair<int, int>, std::less<>> seen;
  size_t index = 0;
  auto topic_check = [](std::string_view v) { return check_topic_name(v); };
  for (Node item : root.list("processors")) {
    ProcessorConfig pc;
    pc.path = fmt::format("processors[{}]", index++);
    pc.file = file;
    pc.line = item.location().line;
    pc.column = item.location().column;
    if (!item.is_map()) {
      item.error(
          fmt::format("expected a processor such as {{name: clean, inputs: [events], "
                      "output: clean_events, steps: [...]}}, got {}",
                      item.describe()));
      continue;
    }
    Node name = item.require("name");
    if (name.as_string(&pc.name, check_name_chars)) {
      auto it = seen.find(pc.name);
      if (it != seen.end()) {
        name.error(fmt::format("duplicate processor name {} (first defined at {}:{})",
                               config::quote(pc.name), it->second.first, it->second.second));
      } else {
        seen.emplace(pc.name, std::make_pair(name.location().line, name.location().column));
      }
    }
    Node inputs = item.require("inputs");
    if (inputs.is_list()) {
      for (Node t : inputs.items()) {
        std::string topic;
        if (t.as_string(&topic, topic_check)) pc.inputs.push_back(topic);
      }
      if (pc.inputs.empty()) inputs.error("expected at least one input topic");
    } else if (inputs.present()) {
      std::string topic;
      if (inputs.as_string(&topic, topic_check)) pc.inputs.push_back(topic);
    }
    item.get_string("output", &pc.output, topic_check);
    item.get_string("dead_letter_topic", &pc.dead_letter_topic, topic_check);
    item.get_string("group", &pc.group, check_name_chars);
    item.get_int("batch_size", &pc.batch_size, 1, 1'000'000);
    item.get_duration_ms("poll_timeout", &pc.poll_timeout_ms, 1, 60'000);
    item.get_int("replicas", &pc.replicas, 1, 1024);
    if (item.get_int("replica", &pc.replica, 0, 1023) && pc.replica >= pc.replicas) {
      item.get("replica").error(fmt::format("must be below replicas ({})", pc.replicas));
    }
    std::string start = "earliest";
    if (item.get_enum("start", &start, {"earliest", "latest"}))
      pc.start_at_latest = start == "latest";
    item.get_int("max_retries", &pc.max_retries, -1, 1'000'000);
    item.get_duration_ms("retry_backoff", &pc.retry_backoff_ms, 1, 3'600'000);
    item.get_int("workers", &pc.workers, 1, 256);
    item.get_duration_ms("processing_timeout", &pc.processing_timeout_ms, 1, 86'400'000);
    item.get_duration_ms("max_poll_interval", &pc.max_poll_interval_ms, 1, 86'400'000);
    item.get_duration_ms("session_timeout", &pc.session_timeout_ms, 1, 3'600'000);
    item.get_size("buffer_size", &pc.buffer_size, 1024, 1LL << 30);
    // The reference design's names, as aliases (plain numbers in their units).
    if (int64_t v = 0; item.get_int("processing_timeout_seconds", &v, 1, 86'400)) {
      pc.processing_timeout_ms = v * 1000;
    }
    item.get_int("max_poll_interval_ms", &pc.max_poll_interval_ms, 1, 86'400'000);
    item.get_int("session_timeout_ms", &pc.session_timeout_ms, 1, 3'600'000);
    item.get_bool("exactly_once", &pc.exactly_once);
    {
      Node b = item.child("circuit_breaker");
      auto& bc = pc.breaker;
      if (Node r = b.get("failure_rate"); r.present()) {
        std::string text;
        if (r.scalar("a rate between 0 and 1", &text)) {
          char* end = nullptr;
          double v = std::strtod(text.c_str(), &end);
          if (end == text.c_str() || *end != '\0' || v <= 0 || v > 1) {
            r.error("expected a failure rate in (0, 1], e.g. 0.5");
          } else {
            bc.failure_rate = v;
          }
        }
      }
      b.get_int("window", &bc.window, 1, 10'000);
      b.get_int("min_calls", &bc.min_calls, 1, 10'000);
      b.get_int("consecutive_failures", &bc.consecutive_failures, 0, 10'000);
      b.get_duration_ms("open_for", &bc.open_ms, 1, 86'400'000);
      b.get_int("half_open_probes", &bc.half_open_probes, 1, 1000);
      b.finish();
    }
    size_t step_index = 0;
    for (Node step : item.list("steps")) {
      ProcessorStepConfig sc;
      sc.path = fmt::format("{}.steps[{}]", pc.path, step_index++);
      sc.file = file;
      sc.line = step.location().line;
      sc.column = step.location().column;
      if (!step.is_map()) {
        step.error(
            fmt::format("expected a step such as {{filter: 'amount > 0'}}, {{map: [...]}}, "
                        "{{route: [...]}} or {{type: mask, fields: [card]}}, got {}",
                        step.describe()));
        continue;
      }
      if (step.get("type").present()) {
        // {type: T, ...}: the step type's factory reads the other keys (processor_api.h).
        step.get_string("type", &sc.kind, check_name_chars);
        to_option_value(step, &sc.options, /*skip=*/"type");
        pc.steps.push_back(std::move(sc));
        continue;
      }
      std::vector<std::string> kinds;
      for (const std::string& k : step.keys()) {
        if (k == "filter" || k == "map" || k == "route") kinds.push_back(k);
      }
      if (kinds.size() != 1) {
        step.error(kinds.empty()
                       ? "a step needs `type` or one of filter, map, route"
                       : fmt::format("a step does one thing, got {} and {}", kinds[0], kinds[1]));
        for (const std::string& k : step.keys()) (void)step.get(k);
        continue;
      }
      sc.kind = kinds[0];
      if (sc.kind == "filter") {
        Node f = step.get("filter");
        sc.line = f.location().line;
        sc.column = f.location().column;
        f.as_string(&sc.filter, config::non_empty);
      } else if (sc.kind == "map") {
        parse_transform_list(step, "map", file, sc.path + ".map", &sc.rules);
      } else {
        parse_route_list(step, "route", file, sc.path + ".route", &sc.routes);
      }
      step.finish();
      pc.steps.push_back(std::move(sc));
    }
    if (pc.output.empty()) {
      // Without `output`, events leave through a route, a sink or a custom step.
      bool leaves = false;
      for (const auto& st : pc.steps)
        leaves |= st.kind != "filter" && st.kind != "map" && st.kind != "mask";
      if (!leaves) item.error("a processor needs `output`, a route step or a sink step");
    }
    item.finish();
    cfg->processors.push_back(std::move(pc));
  }
}

void parse_logging(Node n, LoggingConfig* out) {
  n.get_enum("level", &out->level, {"trace", "debug", "info", "warn", "error", "off"});
  n.get_enum("format", &out->format, {"text", "json"});
  n.finish();
}

// notifiers: [{name, type: webhook|slack|email|topic|stdout, url, headers, ca_file, timeout,
// min_severity, analytics, rules, send_resolved, queue_capacity, retry: {...}, smtp: {...},
// topic}] (include/spate/alerts.h, docs/configuration.md).
void parse_notifiers(Node& root, PipelineConfig* cfg) {
  std::map<std::string, std::pair<int, int>, std::less<>> seen;
  auto strings = [](Node v, std::vector<std::string>* out) {
    if (v.is_list()) {
      for (Node e : v.items()) {
        std::string s;
        if (e.as_string(&s, config::non_empty)) out->push_back(std::move(s));
      }
    } else if (std::string s; v.present() && v.as_string(&s, config::non_empty)) {
      // A comma-separated string (as ${SMTP_TO} gives it).
      for (std::string& item : split_trimmed(s)) out->push_back(std::move(item));
    }
  };
  for (Node item : root.list("notifiers")) {
    NotifierConfig nc;
    if (!item.is_map()) {
      item.error(
          fmt::format("expected a notifier such as {{name: ops, type: slack, url: "
                      "\"${{SLACK_WEBHOOK_URL}}\"}}, got {}",
                      item.describe()));
      continue;
    }
    Node name = item.require("name");
    if (name.as_string(&nc.name, check_name_chars)) {
      auto it = seen.find(nc.name);
      if (it != seen.end()) {
        name.error(fmt::format("duplicate notifier name {} (first defined at {}:{})",
                               config::quote(nc.name), it->second.first, it->second.second));
      } else {
        seen.emplace(nc.name, std::make_pair(name.location().line, name.location().column));
      }
    }
    item.require("type");
    item.get_enum("type", &nc.kind, {"webhook", "slack", "email", "topic", "stdout"});
    const bool http = nc.kind == "webhook" || nc.kind == "slack";
    // Keys that belong to one type only.
    auto only_for = [&](std::string_view key, bool applies, std::string_view types) {
      Node v = item.get(key);
      if (v.present() && !applies && !nc.kind.empty()) {
        v.error(fmt::format("applies to {} notifiers only, this one is {}", types, nc.kind));
      }
      return v;
    };
    only_for("url", http, "webhook and slack");
    item.get_string("url", &nc.url, [](std::string_view v) {
      // The URL may carry a token: the message does not repeat it.
      return v.starts_with("http://") || v.starts_with("https://")
                 ? std::string()
                 : std::string("expected an http:// or https:// URL");
    });
    if (http && nc.url.empty() && !item.get("url").present()) item.require("url");
    {
      only_for("headers", http, "webhook and slack");
      Node h = item.child("headers");
      for (const std::string& k : h.keys()) {
        std::string v;
        if (h.get(k).as_string(&v)) nc.headers.emplace_back(k, std::move(v));
      }
    }
    only_for("ca_file", http, "webhook and slack");
    item.get_string("ca_file", &nc.ca_file, config::non_empty);
    item.get_duration_ms("timeout", &nc.timeout_ms, 1, 300'000);
    item.get_enum("min_severity", &nc.route.min_severity, {"info", "warning", "critical"});
    strings(item.get("analytics"), &nc.route.analytics);
    strings(item.get("rules"), &nc.route.rules);
    item.get_bool("send_resolved", &nc.route.send_resolved);
    item.get_int("queue_capacity", &nc.queue_capacity, 1, 1'000'000);
    {
      Node r = item.child("retry");
      r.get_int("max_attempts", &nc.retry.max_attempts, 1, 100);
      r.get_duration_ms("initial_backoff", &nc.retry.initial_backoff_ms, 0, 3'600'000);
      r.get_duration_ms("max_backoff", &nc.retry.max_backoff_ms, 0, 86'400'000);
      if (Node m = r.get("multiplier"); m.present()) {
        scalar_double(m, &nc.retry.multiplier, 1, 100, "a multiplier between 1 and 100");
      }
      if (Node j = r.get("jitter"); j.present()) {
        scalar_double(j, &nc.retry.jitter, 0, 1, "a jitter between 0 and 1");
      }
      r.finish();
    }
    if (nc.kind == "email" && !item.get("smtp").present()) {
      item.require("smtp");
    } else if (nc.kind == "email") {
      Node m = item.child("smtp");
      SmtpConfig& s = nc.smtp;
      m.get_string("host", &s.host, config::non_empty);
      m.get_int("port", &s.port, 1, 65535);
      m.require("from");
      m.get_string("from", &s.from, config::non_empty);
      Node to = m.require("to");
      strings(to, &s.to);
      if (to.present() && s.to.empty()) to.error("expected at least one recipient");
      m.get_string("username", &s.username);
      m.get_string("password", &s.password);
      m.get_string("subject", &s.subject, config::non_empty);
      m.get_bool("starttls", &s.starttls);
      m.get_bool("tls_verify", &s.tls_verify);
      m.get_string("ca_file", &s.ca_file, config::non_empty);
      m.get_string("helo_name", &s.helo_name, config::non_empty);
      if (!s.password.empty() && s.username.empty()) {
        m.get("password").error("a password needs a username");
      }
      m.finish();
    } else {
      only_for("smtp", false, "email");
    }
    only_for("topic", nc.kind == "topic", "topic");
    item.get_string("topic", &nc.topic, [](std::string_view v) { return check_topic_name(v); });
    if (nc.kind == "topic" && !item.get("topic").present()) item.require("topic");
    item.finish();
    cfg->notifiers.push_back(std::move(nc));
  }
}

Result<PipelineConfig> load(std::string_view yaml, std::string source, const EnvLookup& env) {
  PipelineConfig cfg;
  cfg.source_path = source;
  config::Errors errors(std::move(source));
  {
    Node root = Node::parse(yaml, &errors, env);
    if (errors.empty()) {
      root.get_string("name", &cfg.name, check_pipeline_name);
      root.get_string("data_dir", &cfg.data_dir, config::non_empty);
      parse_server(root.child("server"), &cfg.server);
      parse_log(root.child("log"), &cfg.log);
      parse_topics(root, &cfg);
      parse_ingestion(root.child("ingestion"), cfg.source_path, env, cfg.name, &cfg.ingestion);
      for (Node lib : root.list("plugins")) {
        std::string path;
        if (lib.as_string(&path, config::non_empty)) cfg.plugins.push_back(path);
      }
      parse_processors(root, cfg.source_path, &cfg);
      parse_analytics(root, cfg.source_path, env, &cfg);
      parse_logging(root.child("logging"), &cfg.logging);
      {
        Node h = root.child("health");
        h.get_string("redis_url", &cfg.health.redis_url);
        h.get_duration_ms("interval", &cfg.health.interval_ms, 10, 3'600'000);
        h.get_string("key_prefix", &cfg.health.key_prefix, config::non_empty);
        if (!cfg.health.redis_url.empty()) {
          config::RedisUrl u;
          if (std::string e = config::parse_redis_url(cfg.health.redis_url, &u); !e.empty()) {
            h.get("redis_url").error(e);
          }
        } else if (env) {
          // From the environment: checked (and reported in the log) when spate run starts it.
          if (auto v = env("REDIS_URL"); v && !v->empty()) cfg.health.redis_url = *v;
        }
        h.finish();
      }
      parse_notifiers(root, &cfg);
      root.finish();
    }
  }  // every Node is gone (and finished) before the errors are read
  SPATE_RETURN_IF_ERROR(errors.status());
  cfg.log.data_dir = path_join(cfg.data_dir, "log");
  return cfg;
}

}  // namespace

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<PipelineConfig> load_pipeline_file(const std::string& path) {
  return load_pipeline_file(path, process_env());
}

Result<PipelineConfig> load_pipeline_file(const std::string& path, const EnvLookup& env) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return ConfigError(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::string text;
  char buf[8192];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err != 0) return ConfigError(fmt::format("cannot read {}: {}", path, std::strerror(err)));
  Result<PipelineConfig> r = load(text, path, env);
  // A deployment file given where a pipeline file is expected: say which command takes it.
  if (!r.ok() &&
      (text.starts_with("components:") || text.find("\ncomponents:") != std::string::npos)) {
    return ConfigError(fmt::format(
        "{}\n{}: this is a deployment file (it has `components`), not a pipeline: run it with "
        "`spate orchestrate {}` (check it with `spate orchestrate --check {}`)",
        r.status().message(), path, path, path));
  }
  return r;
}

Result<PipelineConfig> load_pipeline_string(std::string_view yaml, std::string_view source_name) {
  return load_pipeline_string(yaml, source_name, process_env());
}

Result<PipelineConfig> load_pipeline_string(std::string_view yaml, std::string_view source_name,
                                            const EnvLookup& env) {
  return load(yaml, source_name.empty() ? std::string("<string>") : std::string(source_name), env);
}

}  // namespace spate
