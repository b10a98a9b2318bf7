// enrich step: looks up a key (an expression over the event) in a file, Redis or PostgreSQL,
// through a bounded per-instance cache (enrich_cache.h), and adds what it found to the event.
// Options and behaviour: docs/processors.md, "enrich".
//
// Errors: a lookup that cannot reach its downstream (connection refused or lost, no reply within
// `timeout`) is a transient StepError — the processor retries it and counts it against the
// step's circuit breaker (downstream() names the server, without credentials); the connection
// is reopened on the next call. A looked-up value that is not valid JSON (redis get), or not an
// object where fields are copied from it, or a query the server rejects, is permanent.
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "base/clock.h"
#include "base/fs.h"
#include "base/json_escape.h"
#include "config/redis_url.h"
#include "event/expr.h"
#include "ingest/redis/redis_conn.h"
#include "ingest/sources/file_csv.h"
#include "ingest/sources/postgres_codec.h"
#include "ingest/sources/postgres_conn.h"
#include "ingest/transform/json_edit.h"
#include "process/steps/enrich_cache.h"
#include "process/steps/steps.h"
#include "spate/metrics.h"
#include "spate/processor.h"
#include "spate/processor_api.h"

namespace spate::process {
namespace {

// A lookup: OK with the value's JSON text, OK with nullopt (not found), or an error (transient
// per is_transient()).
using LookupResult = Result<std::optional<std::string>>;

class LookupSource {
 public:
  virtual ~LookupSource() = default;
  virtual LookupResult lookup(const std::string& key) = 0;
  virtual std::string downstream() const { return {}; }
};

// The text of a key value: strings as they are, integers (and integral doubles) in decimal,
// booleans as true/false. False for missing, null, arrays and objects (no lookup).
bool key_text(const expr::Value& v, std::string* out) {
  switch (v.kind()) {
    case expr::Value::Kind::kString: *out = std::string(v.as_string()); return true;
    case expr::Value::Kind::kInt: *out = std::to_string(v.as_int()); return true;
    case expr::Value::Kind::kBool: *out = v.as_bool() ? "true" : "false"; return true;
    case expr::Value::Kind::kDouble: {
      double d = v.as_double();
      if (!std::isfinite(d)) return false;
      if (d == std::floor(d) && std::fabs(d) < 9e15) {
        *out = std::to_string(static_cast<int64_t>(d));
      } else {
        *out = expr::to_json(v);
      }
      return true;
    }
    default: return false;
  }
}

// ---- file ----

// The whole file in memory: .ndjson/.jsonl (one object a line), .json (an object of key ->
// value, or an array of objects), .csv (header row). Reloaded when its mtime or size changes
// (checked at most once a second); a reload that fails keeps the previous contents.
class FileSource final : public LookupSource {
 public:
  FileSource(std::string path, std::string key_field, const Clock* clock)
      : path_(std::move(path)), key_field_(std::move(key_field)), clock_(clock) {}

  Status load() {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return NotFound("enrich file " + path_ + ": cannot stat it");
    SPATE_ASSIGN_OR_RETURN(std::string text, default_fs()->read_file(path_));
    std::unordered_map<std::string, std::string> rows;
    SPATE_RETURN_IF_ERROR(parse(text, &rows).with_context("enrich file " + path_));
    rows_ = std::move(rows);
    mtime_ns_ = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    size_ = static_cast<int64_t>(st.st_size);
    return Status::Ok();
  }

  LookupResult lookup(const std::string& key) override {
    maybe_reload();
    auto it = rows_.find(key);
    if (it == rows_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  size_t size() const { return rows_.size(); }

 private:
  void maybe_reload() {
    const int64_t now = clock_->steady_ns();
    if (now - checked_ns_ < 1'000'000'000) return;
    checked_ns_ = now;
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return;
    const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    if (mtime == mtime_ns_ && static_cast<int64_t>(st.st_size) == size_) return;
    if (Status s = load(); !s.ok()) {
      spdlog::warn("enrich: reloading {} failed, keeping the previous contents: {}", path_, s.message());
      mtime_ns_ = mtime;  // do not retry until it changes again
      size_ = static_cast<int64_t>(st.st_size);
    }
  }

  bool element_key(const simdjson::dom::element& e, std::string* out) const {
    std::string_view s;
    int64_t i;
    uint64_t u;
    if (!e.get_string().get(s)) {
      *out = std::string(s);
    } else if (!e.get_int64().get(i)) {
      *out = std::to_string(i);
    } else if (!e.get_uint64().get(u)) {
      *out = std::to_string(u);
    } else {
      return false;
    }
    return true;
  }

  Status add_object(const simdjson::dom::element& obj, size_t n,
                    std::unordered_map<std::string, std::string>* rows) const {
    simdjson::dom::element k;
    std::string key;
    if (!obj.is_object()) return InvalidArgument(fmt::format("record {}: not a JSON object", n));
    if (obj[key_field_].get(k) || !element_key(k, &key)) {
      return InvalidArgument(fmt::format("record {}: no string or integer key_field \"{}\"", n, key_field_));
    }
    std::string json;
    ingest::append_element_json(obj, json);
    (*rows)[key] = std::move(json);
    return Status::Ok();
  }

  Status parse(const std::string& text, std::unordered_map<std::string, std::string>* rows) const {
    simdjson::dom::parser parser;
    auto ends_with = [&](std::string_view suffix) {
      return path_.size() >= suffix.size() && path_.compare(path_.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with(".csv")) {
      std::string_view rest = text;
      std::vector<std::string> header, fields;
      std::vector<std::string> keys;
      std::string why;
      size_t line = 0;
      while (!rest.empty()) {
        size_t end = ingest::csv_record_end(rest);
        std::string_view rec = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
        ++line;
        if (rec.empty() || rec == "\r") continue;
        if (!ingest::parse_csv_record(rec, keys.empty() ? &header : &fields, &why)) {
          return InvalidArgument(fmt::format("line {}: {}", line, why));
        }
        if (keys.empty()) {
          keys = ingest::csv_header_keys(header);
          continue;
        }
        if (fields.size() != keys.size()) {
          return InvalidArgument(fmt::format("line {}: {} fields, the header has {}", line,
                                             fields.size(), keys.size()));
        }
        std::string json;
        ingest::append_csv_row_json(json, keys, fields, true);
        simdjson::dom::element obj;
        if (parser.parse(json).get(obj)) return InvalidArgument(fmt::format("line {}: bad row", line));
        SPATE_RETURN_IF_ERROR(add_object(obj, line, rows));
      }
      return Status::Ok();
    }
    if (ends_with(".json")) {
      simdjson::dom::element root;
      if (auto err = parser.parse(text).get(root)) {
        return InvalidArgument(std::string("not valid JSON: ") + simdjson::error_message(err));
      }
      simdjson::dom::object obj;
      simdjson::dom::array arr;
      if (!root.get_object().get(obj)) {
        for (auto [k, v] : obj) {
          std::string json;
          ingest::append_element_json(v, json);
          (*rows)[std::string(k)] = std::move(json);
        }
      } else if (!root.get_array().get(arr)) {
        size_t n = 0;
        for (simdjson::dom::element v : arr) SPATE_RETURN_IF_ERROR(add_object(v, ++n, rows));
      } else {
        return InvalidArgument("expected an object of key -> value, or an array of objects");
      }
      return Status::Ok();
    }
    // NDJSON
    std::string_view rest = text;
    size_t line = 0;
    while (!rest.empty()) {
      size_t end = rest.find('\n');
      std::string_view l = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      ++line;
      if (l.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      simdjson::dom::element obj;
      if (auto err = parser.parse(l.data(), l.size()).get(obj)) {
        return InvalidArgument(fmt::format("line {}: not valid JSON: {}", line, simdjson::error_message(err)));
      }
      SPATE_RETURN_IF_ERROR(add_object(obj, line, rows));
    }
    return Status::Ok();
  }

  std::string path_, key_field_;
  const Clock* clock_;
  std::unordered_map<std::string, std::string> rows_;
  int64_t mtime_ns_ = 0, size_ = 0, checked_ns_ = 0;
};

// ---- redis ----

// GET key_prefix+key (a JSON value) or HGETALL key_prefix+key (an object of strings); one
// connection, opened on first use and again after any I/O failure.
class RedisSource final : public LookupSource {
 public:
  RedisSource(config::RedisUrl url, std::string command, std::string prefix, int64_t timeout_ms)
      : url_(std::move(url)), command_(std::move(command)), prefix_(std::move(prefix)),
        timeout_ms_(timeout_ms), name_("redis://" + url_.describe()) {
    ingest::ignore_sigpipe();
  }

  std::string downstream() const override { return name_; }

  LookupResult lookup(const std::string& key) override {
    if (!ctx_) {
      auto c = ingest::redis_connect(url_, timeout_ms_);
      if (!c.ok()) return c.status();
      ctx_ = std::move(c).value();
    }
    const std::string k = prefix_ + key;
    ingest::RedisReplyPtr r =
        ingest::redis_command(ctx_.get(), {command_ == "hgetall" ? "HGETALL" : "GET", k});
    if (!r) {
      const bool timed_out = ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
      std::string msg = fmt::format("{}: {}", name_, ctx_->errstr[0] ? ctx_->errstr : "connection lost");
      ctx_.reset();  // reconnect on the next call
      if (timed_out) return Timeout(fmt::format("{}: no reply within {} ms", name_, timeout_ms_));
      return Unavailable(std::move(msg));
    }
    if (r->type == REDIS_REPLY_ERROR) {
      std::string_view e(r->str, r->len);
      // A server that is starting or busy answers with these; anything else (WRONGTYPE, ...)
      // is about the data.
      for (std::string_view t : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOAUTH"}) {
        if (e.substr(0, t.size()) == t) {
          ctx_.reset();
          return Unavailable(fmt::format("{}: {}", name_, e));
        }
      }
      return InvalidArgument(fmt::format("{}: {} {}: {}", name_, command_, k, e));
    }
    if (r->type == REDIS_REPLY_NIL) return std::optional<std::string>();
    if (command_ == "hgetall") {
      if (r->type != REDIS_REPLY_ARRAY) return InvalidArgument(name_ + ": HGETALL: unexpected reply");
      if (r->elements == 0) return std::optional<std::string>();
      std::string json = "{";
      for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (i > 0) json.push_back(',');
        append_json_quoted(json, std::string_view(r->element[i]->str, r->element[i]->len));
        json.push_back(':');
        append_json_quoted(json, std::string_view(r->element[i + 1]->str, r->element[i + 1]->len));
      }
      json.push_back('}');
      return std::optional<std::string>(std::move(json));
    }
    if (r->type != REDIS_REPLY_STRING) return InvalidArgument(name_ + ": GET: unexpected reply");
    std::string_view v(r->str, r->len);
    simdjson::dom::element e;
    if (auto err = parser_.parse(v.data(), v.size()).get(e)) {
      return InvalidArgument(fmt::format("{}: the value of {} is not valid JSON ({})", name_, k,
                                         simdjson::error_message(err)));
    }
    std::string json;
    ingest::append_element_json(e, json);
    return std::optional<std::string>(std::move(json));
  }

 private:
  config::RedisUrl url_;
  std::string command_, prefix_;
  int64_t timeout_ms_;
  std::string name_;
  ingest::RedisContextPtr ctx_;
  simdjson::dom::parser parser_;
};

// ---- postgres ----

// The query with the key as $1; the first row becomes an object of its columns (typed as the
// postgres source types them). One connection, reopened after a failure.
class PostgresSource final : public LookupSource {
 public:
  PostgresSource(std::string url, std::string query, int64_t timeout_ms, std::string app)
      : url_(std::move(url)), query_(std::move(query)), timeout_ms_(timeout_ms),
        app_(std::move(app)), name_(ingest::pg::describe_conninfo(url_)) {}

  std::string downstream() const override { return name_; }

  LookupResult lookup(const std::string& key) override {
    if (!conn_.connected()) {
      Status s = conn_.connect(url_, app_, timeout_ms_);
      if (s.ok()) s = conn_.exec(ingest::pg::kSessionSetup);
      if (!s.ok()) {
        conn_.close();
        return Status(is_transient(s) ? s.code() : Errc::kUnavailable, name_ + ": " + s.message());
      }
    }
    std::optional<std::string> found;
    ingest::pg::RowJson row_json;
    auto on_row = [&](const std::vector<ingest::pg::Column>& cols,
                      const std::vector<std::optional<std::string_view>>& vals) {
      if (found) return;
      row_json.reset(cols);
      found.emplace();
      row_json.append(*found, vals);
    };
    bool truncated = false;
    Status s = conn_.query(query_, key, 1, on_row, &truncated, timeout_ms_);
    if (!s.ok()) {
      // A lost connection is transient; an error about the SQL (or the key's type) is not.
      if (!conn_.connected() || is_transient(s)) {
        conn_.close();
        return Status(s.code() == Errc::kTimeout ? Errc::kTimeout : Errc::kUnavailable,
                      name_ + ": " + s.message());
      }
      return InvalidArgument(name_ + ": " + s.message());
    }
    return found;
  }

 private:
  std::string url_, query_;
  int64_t timeout_ms_;
  std::string app_, name_;
  ingest::pg::PgConnection conn_;
};

// ---- the step ----

struct EnrichOptions {
  std::string source;
  expr::Expression key;
  std::string into;
  std::vector<std::pair<std::string, std::string>> fields;  // looked-up member -> event path
  std::string on_miss = "keep";
  LookupCache::Config cache;
};

class EnrichStep final : public EventProcessor {
 public:
  EnrichStep(EnrichOptions o, std::unique_ptr<LookupSource> src, const Clock* clock,
             MetricsRegistry* metrics, const std::string& processor, const std::string& step)
      : o_(std::move(o)), src_(std::move(src)), cache_(o_.cache, clock) {
    if (metrics != nullptr) {
      auto counter = [&](const char* name, const char* help, const char* result) {
        return &metrics->counter(name, help, {{"processor", processor}, {"step", step}, {"result", result}});
      };
      const char* kCache = "stream_enrich_cache_total";
      const char* kCacheHelp = "Enrich step cache probes (hit, negative_hit, miss) and evictions";
      const char* kLookups = "stream_enrich_lookups_total";
      const char* kLookupsHelp = "Enrich step lookups in the source, by outcome";
      m_hit_ = counter(kCache, kCacheHelp, "hit");
      m_negative_ = counter(kCache, kCacheHelp, "negative_hit");
      m_miss_ = counter(kCache, kCacheHelp, "miss");
      m_evict_ = counter(kCache, kCacheHelp, "eviction");
      m_found_ = counter(kLookups, kLookupsHelp, "found");
      m_not_found_ = counter(kLookups, kLookupsHelp, "not_found");
      m_error_ = counter(kLookups, kLookupsHelp, "error");
    }
  }

  StepOutcome process(ProcessorEvent& ev, StepError* error) override {
    std::string key;
    if (!key_text(o_.key.evaluate(ev.doc()), &key)) return miss(ev, error, "the key is missing or not a scalar");
    std::string value;
    switch (cache_.get(key, &value)) {
      case LookupCache::Probe::kHit:
        inc(m_hit_);
        return apply(ev, value, error);
      case LookupCache::Probe::kNegativeHit:
        inc(m_negative_);
        return miss(ev, error, "no entry for key " + key);
      case LookupCache::Probe::kMiss:
        inc(m_miss_);
        break;
    }
    LookupResult r = src_->lookup(key);
    if (!r.ok()) {
      inc(m_error_);
      errors_.fetch_add(1, std::memory_order_relaxed);
      error->transient = is_transient(r.status());
      error->kind = error->transient ? "lookup_unavailable" : "lookup";
      error->message = r.status().message();
      return StepOutcome::kError;
    }
    const bool found = r->has_value();
    inc(found ? m_found_ : m_not_found_);
    if (size_t n = cache_.put(key, *r); n > 0 && m_evict_ != nullptr) m_evict_->inc(n);
    if (!found) return miss(ev, error, "no entry for key " + key);
    return apply(ev, **r, error);
  }

  std::string downstream() const override { return src_->downstream(); }

  std::string status_json() const override {
    const auto& c = cache_.counters();
    return fmt::format(
        "\"cache\":{{\"hits\":{},\"negative_hits\":{},\"misses\":{},\"evictions\":{},"
        "\"expirations\":{},\"entries\":{}}},\"lookup_errors\":{}",
        c.hits.load(), c.negative_hits.load(), c.misses.load(), c.evictions.load(),
        c.expirations.load(), c.entries.load(), errors_.load());
  }

 private:
  static void inc(Counter* c) {
    if (c != nullptr) c->inc();
  }

  StepOutcome miss(ProcessorEvent& ev, StepError* error, std::string why) {
    if (o_.on_miss == "drop") return StepOutcome::kDrop;
    if (o_.on_miss == "fail") {
      *error = StepError{false, "not_found", "enrich: " + why};
      return StepOutcome::kError;
    }
    if (o_.on_miss == "null") return apply(ev, "null", error);
    return StepOutcome::kPass;  // keep
  }

  // Set `into` to the value, or copy the listed members of it (a null value sets them null).
  StepOutcome apply(ProcessorEvent& ev, std::string_view value, StepError* error) {
    edit_.reset(ev.doc());
    if (!o_.into.empty()) {
      if (!edit_.set_json(o_.into, value)) return cannot_set(o_.into, error);
    } else {
      simdjson::dom::element v;
      if (parser_.parse(value.data(), value.size()).get(v)) {
        *error = StepError{false, "lookup", "enrich: the looked-up value is not valid JSON"};
        return StepOutcome::kError;
      }
      if (!v.is_object() && !v.is_null()) {
        *error = StepError{false, "lookup", "enrich: fields are copied from an object, the looked-up value is " +
                                                ingest::json_excerpt(v)};
        return StepOutcome::kError;
      }
      for (const auto& [from, to] : o_.fields) {
        simdjson::dom::element m;
        if (v.is_null()) {
          if (!edit_.set_json(to, "null")) return cannot_set(to, error);
          continue;
        }
        if (v[from].get(m)) continue;  // absent in the looked-up object: left alone
        text_.clear();
        ingest::append_element_json(m, text_);
        if (!edit_.set_json(to, text_)) return cannot_set(to, error);
      }
    }
    out_.clear();
    edit_.write(out_);
    if (Status s = ev.replace(out_); !s.ok()) {
      *error = StepError{false, "lookup", "enrich: " + s.message()};
      return StepOutcome::kError;
    }
    return StepOutcome::kPass;
  }

  static StepOutcome cannot_set(const std::string& path, StepError* error) {
    *error = StepError{false, "enrich", "enrich: cannot set " + path + " (a parent is not an object)"};
    return StepOutcome::kError;
  }

  EnrichOptions o_;
  std::unique_ptr<LookupSource> src_;
  LookupCache cache_;
  ingest::JsonEdit edit_;
  simdjson::dom::parser parser_;
  std::string text_, out_;
  std::atomic<uint64_t> errors_{0};
  Counter *m_hit_ = nullptr, *m_negative_ = nullptr, *m_miss_ = nullptr, *m_evict_ = nullptr;
  Counter *m_found_ = nullptr, *m_not_found_ = nullptr, *m_error_ = nullptr;
};

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::string(fallback);
}

Result<std::unique_ptr<EventProcessor>> make_enrich(StepContext& ctx) {
  StepOptions& o = *ctx.options;
  EnrichOptions eo;
  if (!o.has("source")) o.error("source", "missing required key (file, redis or postgres)");
  o.get_enum("source", &eo.source, {"file", "redis", "postgres"});
  std::string key;
  if (o.get_string("key", &key, true)) {
    auto e = expr::Expression::compile(key);
    if (!e.ok()) {
      o.error("key", e.status().message());
    } else {
      eo.key = std::move(e).value();
    }
  }
  const bool has_into = o.get_string("into", &eo.into);
  const bool has_fields = o.get_string_map("fields", &eo.fields);
  if (has_into == has_fields) o.error(has_into ? "fields" : "into", "write either into: FIELD or fields: {member: field, ...}");
  if (has_into && eo.into.empty()) o.error("into", "must not be empty");
  if (has_fields && eo.fields.empty()) o.error("fields", "expected at least one member");
  if (const OptionValue* m = o.raw("on_miss"); m != nullptr && m->kind == OptionValue::kNull) {
    eo.on_miss = "null";  // on_miss: null, unquoted, is YAML's null
  } else {
    o.get_enum("on_miss", &eo.on_miss, {"keep", "drop", "fail", "null"});
  }
  {
    StepOptions c = o.child("cache");
    int64_t n = static_cast<int64_t>(eo.cache.max_entries);
    c.get_int("max_entries", &n, 0, 100'000'000);
    eo.cache.max_entries = static_cast<size_t>(n);
    c.get_duration_ms("ttl", &eo.cache.ttl_ms, 0, 365LL * 86'400'000);
    c.get_duration_ms("negative_ttl", &eo.cache.negative_ttl_ms, 0, 365LL * 86'400'000);
    (void)c.finish();  // unknown keys of cache: join the step's errors
  }
  int64_t timeout_ms = 2000;
  o.get_duration_ms("timeout", &timeout_ms, 1, 60'000);

  std::unique_ptr<LookupSource> src;
  if (eo.source == "file") {
    std::string path, key_field = "id";
    o.get_string("path", &path, true);
    o.get_string("key_field", &key_field);
    SPATE_RETURN_IF_ERROR(o.finish());
    auto f = std::make_unique<FileSource>(path, key_field, system_clock());
    if (Status s = f->load(); !s.ok()) {
      return ConfigError(fmt::format("{}:{}:{}: {}.path: {}", ctx.step->file, ctx.step->line,
                                     ctx.step->column, ctx.step->path, s.message()));
    }
    src = std::move(f);
  } else if (eo.source == "redis") {
    std::string url = env_or("REDIS_URL", "redis://127.0.0.1:6379/0"), command = "get", prefix;
    o.get_string("url", &url);
    o.get_enum("command", &command, {"get", "hgetall"});
    o.get_string("key_prefix", &prefix);
    config::RedisUrl ru;
    if (std::string e = config::parse_redis_url(url, &ru); !e.empty()) o.error("url", e);
    SPATE_RETURN_IF_ERROR(o.finish());
    src = std::make_unique<RedisSource>(std::move(ru), command, prefix, timeout_ms);
  } else if (eo.source == "postgres") {
    std::string url = env_or("POSTGRES_URL", ""), query;
    if (!o.get_string("url", &url) && url.empty()) {
      o.error("url", "missing: set url (a libpq connection string or postgres:// URL) or $POSTGRES_URL");
    }
    if (!url.empty()) {
      if (std::string e = ingest::pg::check_conninfo(url); !e.empty()) {
        o.error("url", "not a valid connection string or URL: " + e);
      }
    }
    if (o.get_string("query", &query, true)) {
      if (std::string e = ingest::pg::check_query_placeholders(query); !e.empty()) {
        o.error("query", e + " (the lookup key is $1)");
      }
    }
    SPATE_RETURN_IF_ERROR(o.finish());
    src = std::make_unique<PostgresSource>(url, query, timeout_ms, "spate-" + ctx.processor->name);
  } else {
    SPATE_RETURN_IF_ERROR(o.finish());
    return ConfigError(o.path() + ": source is required");
  }
  // Nothing connects before the first lookup, so validate_only needs no special case here.
  return std::unique_ptr<EventProcessor>(new EnrichStep(std::move(eo), std::move(src), system_clock(),
                                                        ctx.validate_only ? nullptr : ctx.metrics,
                                                        ctx.processor->name, ctx.step->path));
}

}  // namespace

void register_enrich_step(ProcessorRegistry& r) {
  (void)r.add("enrich", "look fields up by key in a file, Redis or PostgreSQL (cached)", make_enrich);
}

}  // namespace spate::process
