#include "ingest/source.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <optional>
#include <map>
#include <mutex>

#include "config/node.h"
#include "config/suggest.h"
#include "event/expr.h"
#include "ingest/transform/transform.h"
#include "ingest/validate/json_schema.h"
#include "ingest/validate/quality.h"

namespace spate::ingest {
namespace {

std::mutex& registry_mu() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, SourceType, std::less<>>& registry() {
  static std::map<std::string, SourceType, std::less<>> r;
  return r;
}

}  // namespace

void register_source_type(SourceType type) {
  std::lock_guard lk(registry_mu());
  std::string name = type.type;
  registry()[name] = std::move(type);
}

const SourceType* find_source_type(std::string_view type) {
  std::lock_guard lk(registry_mu());
  auto it = registry().find(type);
  return it == registry().end() ? nullptr : &it->second;
}

std::vector<std::string> source_type_names() {
  std::lock_guard lk(registry_mu());
  std::vector<std::string> out;
  for (const auto& [k, v] : registry()) out.push_back(k);
  return out;
}

Status validate_sources(const IngestionConfig& cfg) {
  register_builtin_sources();
  std::string errors;
  for (const SourceConfig& sc : cfg.sources) {
    const SourceType* t = find_source_type(sc.type);
    Status s;
    if (t == nullptr) {
      std::string hint = config::suggest(sc.type, source_type_names());
      std::string all;
      for (const auto& n : source_type_names()) all += (all.empty() ? "" : ", ") + n;
      s = ConfigError(fmt::format("{}:{}:{}: {}.type: unknown source type \"{}\" ({}{})", sc.file,
                                  sc.line, sc.column, sc.path, sc.type,
                                  hint.empty() ? "" : "did you mean \"" + hint + "\"? ",
                                  "known: " + all));
    } else {
      s = t->validate(sc);
    }
    if (!s.ok()) errors += (errors.empty() ? "" : "\n") + s.message();
  }
  // Route conditions compile here so that `spate validate` reports them with positions.
  for (const RouteConfig& r : cfg.routes) {
    if (r.when.empty()) continue;
    auto e = expr::Expression::compile(r.when);
    if (!e.ok()) {
      errors += (errors.empty() ? "" : "\n") +
                fmt::format("{}:{}:{}: {}.when: {}", r.file, r.line, r.column, r.path,
                            e.status().message());
    }
  }
  if (auto q = QualityChecks::compile(cfg.quality, cfg.timestamp_field, !cfg.dead_letter_topic.empty()); !q.ok()) {
    errors += (errors.empty() ? "" : "\n") + q.status().message();
  }
  if (auto t = TransformChain::compile(cfg.transforms); !t.ok()) {
    errors += (errors.empty() ? "" : "\n") + t.status().message();
  }
  if (!cfg.schema_file.empty() || !cfg.schema.empty()) {
    auto compiled = cfg.schema_file.empty() ? schema::CompiledSchema::compile(cfg.schema)
                                            : schema::CompiledSchema::compile_file(cfg.schema_file);
    if (!compiled.ok()) {
      errors += (errors.empty() ? "" : "\n") +
                fmt::format("ingestion.{}: {}", cfg.schema_file.empty() ? "schema" : "schema_file",
                            compiled.status().message());
    }
  }
  if (!errors.empty()) return ConfigError(errors);
  return Status::Ok();
}

const SourceOption* OptionReader::find(std::string_view key) {
  if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
  auto it = cfg_.options.find(key);
  return it == cfg_.options.end() ? nullptr : &it->second;
}

bool OptionReader::has(std::string_view key) const { return cfg_.options.count(std::string(key)) > 0; }

void OptionReader::error(std::string_view key, std::string_view message) {
  auto it = cfg_.options.find(key);
  int line = it == cfg_.options.end() ? cfg_.line : it->second.line;
  int col = it == cfg_.options.end() ? cfg_.column : it->second.column;
  errors_.push_back(fmt::format("{}:{}:{}: {}.{}: {}", cfg_.file, line, col, cfg_.path, key, message));
}

bool OptionReader::get_string(std::string_view key, std::string* out, bool required) {
  const SourceOption* o = find(key);
  if (o == nullptr) {
    if (required) error(key, "missing required option");
    return false;
  }
  if (o->is_list) {
    error(key, "expected a single value, got a list");
    return false;
  }
  *out = o->value;
  return true;
}

bool OptionReader::get_list(std::string_view key, std::vector<std::string>* out, bool required) {
  const SourceOption* o = find(key);
  if (o == nullptr) {
    if (required) error(key, "missing required option");
    return false;
  }
  if (o->is_list) {
    *out = o->items;
  } else {
    *out = {o->value};
  }
  return true;
}

namespace {
template <typename Parse>
bool get_number(OptionReader& r, const SourceOption* o, std::string_view key, int64_t* out,
                int64_t min, int64_t max, Parse parse, std::string_view what) {
  if (o == nullptr) return false;
  int64_t v = 0;
  if (o->is_list || !parse(o->value, &v)) {
    r.error(key, fmt::format("expected {}, got \"{}\"", what, o->value));
    return false;
  }
  if (v < min || v > max) {
    r.error(key, fmt::format("must be between {} and {}, got {}", min, max, v));
    return false;
  }
  *out = v;
  return true;
}
bool parse_int(std::string_view s, int64_t* v) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  int64_t x = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    if (x > (INT64_MAX - 9) / 10) return false;
    x = x * 10 + (s[i] - '0');
  }
  *v = s[0] == '-' ? -x : x;
  return true;
}
}  // namespace

bool OptionReader::get_int(std::string_view key, int64_t* out, int64_t min, int64_t max) {
  return get_number(*this, find(key), key, out, min, max, parse_int, "an integer");
}
bool OptionReader::get_duration_ms(std::string_view key, int64_t* out, int64_t min, int64_t max) {
  return get_number(*this, find(key), key, out, min, max, config::parse_duration_ms,
                    "a duration such as 500ms, 5s or 1m");
}
bool OptionReader::get_size(std::string_view key, int64_t* out, int64_t min, int64_t max) {
  return get_number(*this, find(key), key, out, min, max, config::parse_size,
                    "a size such as 64KiB or 1MiB");
}
bool OptionReader::get_bool(std::string_view key, bool* out) {
  const SourceOption* o = find(key);
  if (o == nullptr) return false;
  if (o->value == "true" || o->value == "True" || o->value == "TRUE") {
    *out = true;
  } else if (o->value == "false" || o->value == "False" || o->value == "FALSE") {
    *out = false;
  } else {
    error(key, fmt::format("expected true or false, got \"{}\"", o->value));
    return false;
  }
  return true;
}
bool OptionReader::get_enum(std::string_view key, std::string* out,
                            const std::vector<std::string>& allowed) {
  std::string v;
  if (!get_string(key, &v)) return false;
  if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
    std::string all;
    for (const auto& a : allowed) all += (all.empty() ? "" : ", ") + a;
    std::string hint = config::suggest(v, allowed);
    error(key, fmt::format("expected one of {}, got \"{}\"{}", all, v,
                           hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
    return false;
  }
  *out = v;
  return true;
}

Status OptionReader::finish() {
  for (const auto& [k, o] : cfg_.options) {
    if (std::find(known_.begin(), known_.end(), k) != known_.end()) continue;
    std::string hint = config::suggest(k, known_);
    errors_.push_back(fmt::format("{}:{}:{}: {}.{}: unknown option for a {} source{}", cfg_.file,
                                  o.line, o.column, cfg_.path, k, cfg_.type,
                                  hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
  }
  if (errors_.empty()) return Status::Ok();
  std::string all;
  for (const auto& e : errors_) all += (all.empty() ? "" : "\n") + e;
  return ConfigError(all);
}

IngestResult submit_and_wait(DataIngestionEngine& engine, IngestRequest req) {
  struct Ack {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<IngestResult> result;
  };
  auto ack = std::make_shared<Ack>();
  engine.submit(std::move(req), [ack](IngestResult r) {
    std::lock_guard lk(ack->mu);
    ack->result = std::move(r);
    ack->cv.notify_all();
  });
  std::unique_lock lk(ack->mu);
  ack->cv.wait(lk, [&] { return ack->result.has_value(); });
  return std::move(*ack->result);
}

}  // namespace spate::ingest
