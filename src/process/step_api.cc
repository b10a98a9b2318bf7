// StepOptions, ProcessorRegistry, plugin loading and ProcessorEvent (include/spate/processor_api.h).
#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>

#include "config/node.h"
#include "config/suggest.h"
#include "process/event_access.h"
#include "spate/processor_api.h"

namespace spate {

bool is_transient(const Status& s) {
  switch (s.code()) {
    case Errc::kUnavailable:
    case Errc::kTimeout:
    case Errc::kIo:
    case Errc::kNoSpace:
      return true;
    default:
      return false;
  }
}

// ---- StepOptions ----

StepOptions::StepOptions(const OptionValue* value, std::string file, std::string path)
    : value_(value), file_(std::move(file)), path_(std::move(path)),
      errors_(std::make_shared<std::string>()) {}

const OptionValue* StepOptions::find(std::string_view key) const {
  if (value_ == nullptr || value_->kind != OptionValue::kMap) return nullptr;
  for (const auto& [k, v] : value_->map) {
    if (k == key) return &v;
  }
  return nullptr;
}

bool StepOptions::has(std::string_view key) const { return find(key) != nullptr; }

const OptionValue* StepOptions::raw(std::string_view key) {
  used_.emplace_back(key);
  return find(key);
}

std::string StepOptions::where(const OptionValue* v, std::string_view key) const {
  const int line = v ? v->line : (value_ ? value_->line : 0);
  const int col = v ? v->column : (value_ ? value_->column : 0);
  return fmt::format("{}:{}:{}: {}{}{}", file_, line, col, path_, key.empty() ? "" : ".", key);
}

void StepOptions::error(std::string_view key, std::string_view message) {
  const OptionValue* v = find(key);
  *errors_ += (errors_->empty() ? "" : "\n") + where(v, key) + ": " + std::string(message);
}

namespace {
const char* kind_name(const OptionValue& v) {
  switch (v.kind) {
    case OptionValue::kNull: return "null";
    case OptionValue::kScalar: return "a scalar";
    case OptionValue::kMap: return "a map";
    case OptionValue::kList: return "a list";
  }
  return "?";
}
}  // namespace

bool StepOptions::get_string(std::string_view key, std::string* out, bool required) {
  const OptionValue* v = raw(key);
  if (v == nullptr || v->kind == OptionValue::kNull) {
    if (required) error(key, "missing required key");
    return false;
  }
  if (v->kind != OptionValue::kScalar) {
    error(key, fmt::format("expected a string, got {}", kind_name(*v)));
    return false;
  }
  *out = v->scalar;
  return true;
}

bool StepOptions::get_bool(std::string_view key, bool* out) {
  std::string s;
  if (!get_string(key, &s)) return false;
  if (s == "true" || s == "yes" || s == "on") {
    *out = true;
  } else if (s == "false" || s == "no" || s == "off") {
    *out = false;
  } else {
    error(key, fmt::format("expected true or false, got {}", config::quote(s)));
    return false;
  }
  return true;
}

namespace {
bool in_range(StepOptions* o, std::string_view key, int64_t v, int64_t min, int64_t max) {
  if (v < min || v > max) {
    o->error(key, fmt::format("must be between {} and {}, got {}", min, max, v));
    return false;
  }
  return true;
}
}  // namespace

bool StepOptions::get_int(std::string_view key, int64_t* out, int64_t min, int64_t max) {
  std::string s;
  if (!get_string(key, &s)) return false;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) {
    error(key, fmt::format("expected an integer, got {}", config::quote(s)));
    return false;
  }
  if (!in_range(this, key, v, min, max)) return false;
  *out = v;
  return true;
}

bool StepOptions::get_double(std::string_view key, double* out) {
  std::string s;
  if (!get_string(key, &s)) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) {
    error(key, fmt::format("expected a number, got {}", config::quote(s)));
    return false;
  }
  *out = v;
  return true;
}

namespace {
// A scalar option in a unit: parse, range-check, report. `expected` completes "expected ...".
bool get_in_unit(StepOptions* o, std::string_view key, int64_t* out, int64_t min, int64_t max,
                 bool (*parse)(std::string_view, int64_t*), const char* expected) {
  std::string s;
  if (!o->get_string(key, &s)) return false;
  int64_t v = 0;
  if (!parse(s, &v)) {
    o->error(key, fmt::format("expected {}, got {}", expected, config::quote(s)));
    return false;
  }
  if (!in_range(o, key, v, min, max)) return false;
  *out = v;
  return true;
}
}  // namespace

bool StepOptions::get_duration_ms(std::string_view key, int64_t* out, int64_t min, int64_t max) {
  return get_in_unit(this, key, out, min, max, config::parse_duration_ms,
                     "a duration such as 500ms, 30s or 5m");
}

bool StepOptions::get_size(std::string_view key, int64_t* out, int64_t min, int64_t max) {
  return get_in_unit(this, key, out, min, max, config::parse_size, "a size such as 64MiB or 4096");
}

bool StepOptions::get_enum(std::string_view key, std::string* out,
                           const std::vector<std::string>& allowed) {
  std::string s;
  if (!get_string(key, &s)) return false;
  if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    std::string hint = config::suggest(s, allowed);
    error(key, fmt::format("expected one of {}, got {}{}", list, config::quote(s),
                           hint.empty() ? "" : fmt::format(" (did you mean {}?)", hint)));
    return false;
  }
  *out = s;
  return true;
}

bool StepOptions::get_string_list(std::string_view key, std::vector<std::string>* out,
                                  bool required) {
  const OptionValue* v = raw(key);
  if (v == nullptr || v->kind == OptionValue::kNull) {
    if (required) error(key, "missing required key");
    return false;
  }
  std::vector<std::string> items;
  if (v->kind == OptionValue::kScalar) {
    items.push_back(v->scalar);
  } else if (v->kind == OptionValue::kList) {
    for (const OptionValue& item : v->list) {
      if (item.kind != OptionValue::kScalar) {
        error(key, fmt::format("expected a list of strings, got {} in it", kind_name(item)));
        return false;
      }
      items.push_back(item.scalar);
    }
  } else {
    error(key, fmt::format("expected a list of strings, got {}", kind_name(*v)));
    return false;
  }
  if (required && items.empty()) {
    error(key, "expected at least one item");
    return false;
  }
  *out = std::move(items);
  return true;
}

bool StepOptions::get_string_map(std::string_view key,
                                 std::vector<std::pair<std::string, std::string>>* out) {
  const OptionValue* v = raw(key);
  if (v == nullptr || v->kind == OptionValue::kNull) return false;
  if (v->kind != OptionValue::kMap) {
    error(key, fmt::format("expected a map, got {}", kind_name(*v)));
    return false;
  }
  std::vector<std::pair<std::string, std::string>> items;
  for (const auto& [k, item] : v->map) {
    if (item.kind != OptionValue::kScalar) {
      error(key, fmt::format("{}: expected a string, got {}", k, kind_name(item)));
      return false;
    }
    items.emplace_back(k, item.scalar);
  }
  *out = std::move(items);
  return true;
}

StepOptions StepOptions::child(std::string_view key) {
  static const OptionValue kEmpty = [] {
    OptionValue v;
    v.kind = OptionValue::kMap;
    return v;
  }();
  const OptionValue* v = raw(key);
  if (v != nullptr && v->kind != OptionValue::kMap && v->kind != OptionValue::kNull) {
    error(key, fmt::format("expected a map, got {}", kind_name(*v)));
    v = nullptr;
  }
  StepOptions c(v && v->kind == OptionValue::kMap ? v : &kEmpty, file_,
                path_ + "." + std::string(key));
  c.errors_ = errors_;
  return c;
}

Status StepOptions::finish() {
  if (value_ != nullptr && value_->kind == OptionValue::kMap) {
    std::vector<std::string> known(used_.begin(), used_.end());
    for (const auto& [k, v] : value_->map) {
      if (std::find(used_.begin(), used_.end(), k) != used_.end()) continue;
      std::string hint = config::suggest(k, known);
      *errors_ += (errors_->empty() ? "" : "\n") + where(&v, k) + ": unknown key" +
                  (hint.empty() ? "" : fmt::format(" (did you mean {}?)", hint));
    }
  }
  if (errors_->empty()) return Status::Ok();
  return ConfigError(*errors_);
}

// ---- ProcessorRegistry ----

namespace process {
void register_builtin_steps(ProcessorRegistry& r);
}

ProcessorRegistry& ProcessorRegistry::global() {
  static ProcessorRegistry* r = [] {
    auto* reg = new ProcessorRegistry();
    process::register_builtin_steps(*reg);
    return reg;
  }();
  return *r;
}

namespace {
std::mutex& registry_mu() {
  static std::mutex mu;
  return mu;
}
}  // namespace

Status ProcessorRegistry::add(std::string type, std::string description, StepFactory factory) {
  std::lock_guard lk(registry_mu());
  if (types_.count(type)) return AlreadyExists("processor type \"" + type + "\" is already registered");
  types_.emplace(std::move(type), std::make_pair(std::move(description), std::move(factory)));
  return Status::Ok();
}

const StepFactory* ProcessorRegistry::find(std::string_view type) const {
  std::lock_guard lk(registry_mu());
  auto it = types_.find(type);
  return it == types_.end() ? nullptr : &it->second.second;
}

std::vector<std::pair<std::string, std::string>> ProcessorRegistry::types() const {
  std::lock_guard lk(registry_mu());
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [n, v] : types_) out.emplace_back(n, v.first);
  return out;
}

Status load_processor_plugin(const std::string& path) {
  static std::mutex mu;
  static std::set<std::string> loaded;
  std::lock_guard lk(mu);
  if (loaded.count(path)) return Status::Ok();
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = ::dlerror();
    return InvalidArgument(fmt::format("cannot load plugin {}: {}", path, e ? e : "unknown error"));
  }
  using Fn = void (*)(ProcessorRegistry*);
  auto fn = reinterpret_cast<Fn>(::dlsym(h, "spate_register_processors"));
  if (fn == nullptr) {
    ::dlclose(h);
    return InvalidArgument(fmt::format(
        "plugin {} does not export spate_register_processors (declare it extern \"C\")", path));
  }
  fn(&ProcessorRegistry::global());
  loaded.insert(path);  // never unloaded: its factories stay registered
  return Status::Ok();
}

// ---- ProcessorEvent ----

void ProcessorEvent::build_event_id() const {
  event_id_.assign(topic_);
  event_id_ += '/';
  event_id_ += std::to_string(partition_);
  event_id_ += '/';
  event_id_ += std::to_string(offset_);
  event_id_offset_ = offset_;
}

struct ProcessorEvent::Owned {
  simdjson::dom::parser parser;
  TextArena* texts = nullptr;  // the batch's stable storage
};

Status ProcessorEvent::replace(std::string_view json) {
  if (!owned_) owned_ = std::make_shared<Owned>();
  simdjson::dom::element doc;
  if (auto err = owned_->parser.parse(json.data(), json.size()).get(doc)) {
    return InvalidArgument(std::string("replacement event is not valid JSON: ") +
                           simdjson::error_message(err));
  }
  json_ = ProcessorEventAccess::texts(*this)->add(json);
  doc_ = doc;
  return Status::Ok();
}

TextArena*& ProcessorEventAccess::texts(ProcessorEvent& e) {
  if (!e.owned_) e.owned_ = std::make_shared<ProcessorEvent::Owned>();
  return e.owned_->texts;
}

}  // namespace spate
