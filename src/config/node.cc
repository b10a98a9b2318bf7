#include "config/node.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <sstream>

#include "base/json_escape.h"
#include "config/interpolate.h"
#include "config/suggest.h"

namespace spate::config {
namespace {

constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

Location to_location(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

std::string join_path(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return fmt::format("{}.{}", parent, key);
}

std::string describe_yaml(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return quote(n.Scalar());
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

enum class Parsed { kOk, kSyntax, kOverflow };

// A plain integer: optional sign, then digits only.
Parsed parse_int(std::string_view text, int64_t* out) {
  std::string_view t = text;
  const bool plus = !t.empty() && t.front() == '+';
  if (plus) t.remove_prefix(1);
  const std::string_view digits = !plus && !t.empty() && t.front() == '-' ? t.substr(1) : t;
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit)) {
    return Parsed::kSyntax;
  }
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec == std::errc::result_out_of_range) return Parsed::kOverflow;
  if (ec != std::errc() || ptr != t.data() + t.size()) return Parsed::kSyntax;
  *out = v;
  return Parsed::kOk;
}

// Leading digits of `t` as a non-negative integer; advances t.
Parsed take_uint(std::string_view* t, int64_t* out) {
  size_t n = 0;
  while (n < t->size() && is_digit((*t)[n])) ++n;
  if (n == 0) return Parsed::kSyntax;
  const auto [ptr, ec] = std::from_chars(t->data(), t->data() + n, *out);
  if (ec == std::errc::result_out_of_range) return Parsed::kOverflow;
  if (ec != std::errc()) return Parsed::kSyntax;
  t->remove_prefix(n);
  return Parsed::kOk;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string int_kind(int64_t min) {
  if (min >= 1) return "a positive integer";
  if (min == 0) return "a non-negative integer";
  return "an integer";
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += sep;
    out += v[i];
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Free helpers.

std::string non_empty(std::string_view value) {
  return value.empty() ? "must not be empty" : "";
}

std::string quote(std::string_view value) { return json_quote(value); }

namespace {

Parsed parse_size_impl(std::string_view text, int64_t* out) {
  const Parsed plain = parse_int(text, out);
  if (plain != Parsed::kSyntax) return plain;
  std::string_view t = text;
  int64_t n = 0;
  if (const Parsed p = take_uint(&t, &n); p != Parsed::kOk) return p;
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  struct UnitDef {
    std::string_view name;
    int64_t factor;
  };
  static constexpr UnitDef kUnits[] = {
      {"B", 1},
      {"KB", 1000LL},
      {"MB", 1000LL * 1000},
      {"GB", 1000LL * 1000 * 1000},
      {"TB", 1000LL * 1000 * 1000 * 1000},
      {"KiB", 1LL << 10},
      {"MiB", 1LL << 20},
      {"GiB", 1LL << 30},
      {"TiB", 1LL << 40},
  };
  for (const UnitDef& u : kUnits) {
    if (iequals(t, u.name)) {
      int64_t v = 0;
      if (__builtin_mul_overflow(n, u.factor, &v)) return Parsed::kOverflow;
      *out = v;
      return Parsed::kOk;
    }
  }
  return Parsed::kSyntax;
}

Parsed parse_duration_impl(std::string_view text, int64_t* out) {
  const Parsed plain = parse_int(text, out);
  if (plain != Parsed::kSyntax) return plain;
  std::string_view t = text;
  if (t.empty()) return Parsed::kSyntax;
  int64_t total = 0;
  bool overflow = false;
  while (!t.empty()) {
    int64_t n = 0;
    const Parsed p = take_uint(&t, &n);
    if (p == Parsed::kSyntax) return p;
    if (p == Parsed::kOverflow) {  // skip the digits, keep checking the syntax
      overflow = true;
      while (!t.empty() && is_digit(t.front())) t.remove_prefix(1);
    }
    int64_t factor = 0;
    if (t.substr(0, 2) == "ms") {
      factor = 1;
      t.remove_prefix(2);
    } else if (!t.empty()) {
      switch (t.front()) {
        case 's':
          factor = 1000;
          break;
        case 'm':
          factor = 60LL * 1000;
          break;
        case 'h':
          factor = 3600LL * 1000;
          break;
        case 'd':
          factor = 24LL * 3600 * 1000;
          break;
        default:
          return Parsed::kSyntax;
      }
      t.remove_prefix(1);
    } else {
      return Parsed::kSyntax;  // "1h30": a trailing number without a unit
    }
    int64_t part = 0;
    if (__builtin_mul_overflow(n, factor, &part) || __builtin_add_overflow(total, part, &total)) {
      overflow = true;
    }
  }
  if (overflow) return Parsed::kOverflow;
  *out = total;
  return Parsed::kOk;
}

}  // namespace

bool parse_size(std::string_view text, int64_t* out) {
  return parse_size_impl(text, out) == Parsed::kOk;
}

bool parse_duration_ms(std::string_view text, int64_t* out) {
  return parse_duration_impl(text, out) == Parsed::kOk;
}

// ---------------------------------------------------------------------------------------------
// Node state.

// Note: YAML::Node::operator= assigns *into* the referenced node; rebinding uses reset().
struct Node::Impl {
  struct Entry {
    std::string key;  // scalar text of the key ("" if not a scalar)
    bool scalar_key = true;
    YAML::Node key_node;
    YAML::Node value;
    Location key_loc;
  };

  Errors* errors = nullptr;
  std::shared_ptr<const EnvLookup> env;
  YAML::Node yaml;
  bool present = false;
  std::string path;
  Location loc;

  bool indexed = false;
  bool finished = false;
  std::vector<Entry> entries;
  std::vector<std::string> asked;  // keys a getter asked for, in order

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    // Safety net: a section parser that forgot finish() still rejects unknown keys.
    if (indexed && !finished) finish();
  }

  void report(Location at, std::string_view p, std::string_view message) const {
    if (errors != nullptr) errors->add(at, p, message);
  }

  void finish() {
    if (finished) return;
    finished = true;
    for (size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      if (!e.scalar_key) {
        report(e.key_loc, path,
               fmt::format("keys must be plain strings, got {}", describe_yaml(e.key_node)));
        continue;
      }
      const std::string key_path = join_path(path, e.key);
      const auto end = entries.begin() + static_cast<std::ptrdiff_t>(i);
      const auto first = std::find_if(
          entries.begin(), end, [&](const Entry& o) { return o.scalar_key && o.key == e.key; });
      if (first != end) {
        report(e.key_loc, key_path,
               fmt::format("duplicate key (first defined at {}:{})", first->key_loc.line,
                           first->key_loc.column));
        continue;
      }
      if (std::find(asked.begin(), asked.end(), e.key) != asked.end()) continue;
      std::string hint = suggest(e.key, asked);
      if (!hint.empty()) {
        report(e.key_loc, key_path, fmt::format("unknown key (did you mean {}?)", quote(hint)));
      } else if (asked.empty()) {
        report(e.key_loc, key_path, "unknown key (this section takes no keys)");
      } else {
        report(e.key_loc, key_path, fmt::format("unknown key (valid keys: {})", join(asked, ", ")));
      }
    }
  }
};

Node::Node() : impl_(std::make_shared<Impl>()) {}

namespace {

// Sees each document of a stream without building it: where it starts, whether it has content.
class DocumentScan final : public YAML::EventHandler {
 public:
  YAML::Mark start;
  bool has_content = false;

  void OnDocumentStart(const YAML::Mark& mark) override {
    start = mark;
    has_content = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {}
  void OnAlias(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {
    has_content = true;
  }
  void OnScalar(const YAML::Mark& /*mark*/, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                const std::string& /*value*/) override {
    has_content = true;
  }
  void OnSequenceStart(const YAML::Mark& /*mark*/, const std::string& /*tag*/,
                       YAML::anchor_t /*anchor*/, YAML::EmitterStyle::value /*style*/) override {
    has_content = true;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& /*mark*/, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                  YAML::EmitterStyle::value /*style*/) override {
    has_content = true;
  }
  void OnMapEnd() override {}
};

}  // namespace

Node Node::parse(std::string_view text, Errors* errors, EnvLookup env) {
  auto impl = std::make_shared<Impl>();
  impl->errors = errors;
  impl->env = std::make_shared<const EnvLookup>(std::move(env));
  impl->loc = {1, 1};
  const std::string input(text);
  try {
    // First walk the documents without building them. YAML::LoadAll() in yaml-cpp 0.7 loops
    // forever, allocating, on some invalid input such as a lone "," (jbeder/yaml-cpp#1040, fixed
    // upstream in 0.8.x): its parser keeps returning empty documents without consuming anything.
    // Here every document must start after the previous one, so the loop ends.
    std::istringstream in(input);
    YAML::Parser parser(in);
    DocumentScan scan;
    int previous_start = -1;
    for (int doc = 0; parser.HandleNextDocument(scan); ++doc) {
      if (scan.start.pos <= previous_start) {
        const size_t pos = static_cast<size_t>(std::max(scan.start.pos, 0));
        const std::string what = pos < input.size() ? quote(input.substr(pos, 1)) : "end of file";
        impl->report(to_location(scan.start), "",
                     fmt::format("YAML syntax error: unexpected {}", what));
        return Node(std::move(impl));
      }
      previous_start = scan.start.pos;
      if (doc > 0 && scan.has_content) {
        impl->report(to_location(scan.start), "",
                     "a second YAML document: a pipeline file holds exactly one");
        return Node(std::move(impl));
      }
    }
    // Then build the first (only) document; Load() reads no further than that.
    YAML::Node root = YAML::Load(input);
    impl->yaml.reset(root);
    impl->present = true;
    if (!root.IsNull()) {
      const Location at = to_location(root.Mark());
      if (at.line > 0) impl->loc = at;
    }
  } catch (const YAML::Exception& e) {
    std::string message = fmt::format("YAML syntax error: {}", e.msg);
    // `{port: ${P}}` is a common trap: in flow style, { and } are YAML syntax.
    if (e.msg.find("flow") != std::string::npos && text.find("${") != std::string_view::npos) {
      message += " (inside {...} or [...], quote values that use ${...}: \"${VAR}\")";
    }
    impl->report(to_location(e.mark), "", message);
    impl->yaml.reset();
    impl->present = false;
  }
  return Node(std::move(impl));
}

bool Node::present() const {
  return impl_->present;
}
bool Node::is_null() const {
  return impl_->present && impl_->yaml.IsNull();
}
bool Node::is_map() const {
  return impl_->present && impl_->yaml.IsMap();
}
bool Node::is_list() const {
  return impl_->present && impl_->yaml.IsSequence();
}
bool Node::is_scalar() const {
  return impl_->present && impl_->yaml.IsScalar();
}
const std::string& Node::path() const {
  return impl_->path;
}
Location Node::location() const {
  return impl_->loc;
}

std::string Node::describe() const {
  if (!impl_->present) return "nothing";
  return describe_yaml(impl_->yaml);
}

void Node::error(std::string_view message) const {
  impl_->report(impl_->loc, impl_->path, message);
}

// ---------------------------------------------------------------------------------------------
// Map access.

void Node::index() {
  Impl& s = *impl_;
  if (s.indexed) return;
  s.indexed = true;
  if (!s.present || s.yaml.IsNull()) return;
  if (!s.yaml.IsMap()) {
    error(fmt::format("expected a map, got {}", describe()));
    s.finished = true;  // nothing more to report about its keys
    return;
  }
  for (auto it = s.yaml.begin(); it != s.yaml.end(); ++it) {
    Impl::Entry e;
    e.key_node.reset(it->first);
    e.value.reset(it->second);
    e.key_loc = to_location(it->first.Mark());
    if (e.key_loc.line == 0) e.key_loc = s.loc;
    e.scalar_key = it->first.IsScalar();
    if (e.scalar_key) e.key = it->first.Scalar();
    s.entries.push_back(std::move(e));
  }
}

Node Node::get(std::string_view key) {
  index();
  Impl& s = *impl_;
  if (std::find(s.asked.begin(), s.asked.end(), key) == s.asked.end()) s.asked.emplace_back(key);
  auto child = std::make_shared<Impl>();
  child->errors = s.errors;
  child->env = s.env;
  child->path = join_path(s.path, key);
  child->loc = s.loc;  // an absent key is reported at its section
  for (const Impl::Entry& e : s.entries) {
    if (!e.scalar_key || e.key != key) continue;
    child->present = true;
    child->yaml.reset(e.value);
    // yaml-cpp places an empty (null) value at the next token; point at the key instead.
    const Location at = to_location(e.value.Mark());
    child->loc = (e.value.IsNull() || at.line == 0) ? e.key_loc : at;
    break;
  }
  return Node(std::move(child));
}

std::vector<std::string> Node::keys() {
  index();
  std::vector<std::string> out;
  for (const Impl::Entry& e : impl_->entries) {
    if (e.scalar_key) out.push_back(e.key);
  }
  return out;
}

Node Node::child(std::string_view key) {
  Node n = get(key);
  n.index();
  return n;
}

std::vector<Node> Node::list(std::string_view key) {
  return get(key).items();
}

Node Node::require(std::string_view key) {
  Node n = get(key);
  if (!n.present()) n.error("missing required key");
  return n;
}

bool Node::get_string(std::string_view key, std::string* out, const Check& check) {
  return get(key).as_string(out, check);
}

bool Node::get_bool(std::string_view key, bool* out) {
  return get(key).as_bool(out);
}

bool Node::get_enum(std::string_view key, std::string* out,
                    const std::vector<std::string>& allowed) {
  return get(key).as_enum(out, allowed);
}

bool Node::get_duration_ms(std::string_view key, int64_t* out, int64_t min, int64_t max) {
  return get(key).as_duration_ms(out, min, max);
}

void Node::finish() {
  index();
  impl_->finish();
}

// ---------------------------------------------------------------------------------------------
// Value access.

std::vector<Node> Node::items() {
  std::vector<Node> out;
  const Impl& s = *impl_;
  if (!s.present || s.yaml.IsNull()) return out;
  if (!s.yaml.IsSequence()) {
    error(fmt::format("expected a list, got {}", describe()));
    return out;
  }
  size_t i = 0;
  for (auto it = s.yaml.begin(); it != s.yaml.end(); ++it, ++i) {
    auto item = std::make_shared<Impl>();
    item->errors = s.errors;
    item->env = s.env;
    item->path = fmt::format("{}[{}]", s.path, i);
    item->present = true;
    item->yaml.reset(*it);
    const Location at = to_location(it->Mark());
    item->loc = (it->IsNull() || at.line == 0) ? s.loc : at;
    out.push_back(Node(std::move(item)));
  }
  return out;
}

bool Node::scalar(std::string_view what, std::string* out) {
  const Impl& s = *impl_;
  if (!s.present) return false;
  if (!s.yaml.IsScalar()) {
    error(fmt::format("expected {}, got {}", what, describe()));
    return false;
  }
  Result<std::string> text = interpolate(s.yaml.Scalar(), s.env ? *s.env : EnvLookup());
  if (!text.ok()) {
    error(text.status().message());
    return false;
  }
  *out = std::move(text).value();
  return true;
}

bool Node::as_string(std::string* out, const Check& check) {
  std::string text;
  if (!scalar("a string", &text)) return false;
  if (check) {
    const std::string problem = check(text);
    if (!problem.empty()) {
      error(problem);
      return false;
    }
  }
  *out = std::move(text);
  return true;
}

bool Node::as_bool(bool* out) {
  std::string text;
  if (!scalar("true or false", &text)) return false;
  if (text == "true" || text == "True" || text == "TRUE") {
    *out = true;
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    *out = false;
    return true;
  }
  error(fmt::format("expected true or false, got {}", quote(text)));
  return false;
}

std::optional<int64_t> Node::as_int_impl(int64_t min, int64_t max, Unit unit) {
  std::string what = int_kind(min);
  if (unit == Unit::kSize) {
    what += " or a size such as \"64KiB\" or \"128MiB\"";
  } else if (unit == Unit::kDuration) {
    what += " (milliseconds) or a duration such as \"500ms\", \"10s\", \"30m\", \"24h\" or \"7d\"";
  }
  std::string text;
  if (!scalar(what, &text)) return std::nullopt;

  int64_t v = 0;
  Parsed parsed = Parsed::kSyntax;
  switch (unit) {
    case Unit::kNone:
      parsed = parse_int(text, &v);
      break;
    case Unit::kSize:
      parsed = parse_size_impl(text, &v);
      break;
    case Unit::kDuration:
      parsed = parse_duration_impl(text, &v);
      break;
  }
  std::string range;
  if (max == kInt64Max) {
    range = fmt::format("must be at least {}", min);
  } else if (min == kInt64Min) {
    range = fmt::format("must be at most {}", max);
  } else {
    range = fmt::format("must be between {} and {}", min, max);
  }
  if (parsed == Parsed::kOverflow) {
    error(fmt::format("{}, got {}", range, quote(text)));
    return std::nullopt;
  }
  if (parsed == Parsed::kSyntax) {
    error(fmt::format("expected {}, got {}", what, quote(text)));
    return std::nullopt;
  }
  if (v < min || v > max) {
    const std::string got =
        text == std::to_string(v) ? text : fmt::format("{} (= {})", quote(text), v);
    error(fmt::format("{}, got {}", range, got));
    return std::nullopt;
  }
  return v;
}

bool Node::as_int(int64_t* out, int64_t min, int64_t max) {
  return assign(as_int_impl(min, max, Unit::kNone), out);
}
bool Node::as_size(int64_t* out, int64_t min, int64_t max) {
  return assign(as_int_impl(min, max, Unit::kSize), out);
}
bool Node::as_duration_ms(int64_t* out, int64_t min, int64_t max) {
  return assign(as_int_impl(min, max, Unit::kDuration), out);
}

bool Node::as_enum(std::string* out, const std::vector<std::string>& allowed,
                   std::string_view also) {
  std::string expected = "one of " + join(allowed, ", ");
  if (!also.empty()) {
    expected += ", ";
    expected += also;
  }
  std::string text;
  if (!scalar(expected, &text)) return false;
  if (std::find(allowed.begin(), allowed.end(), text) != allowed.end()) {
    *out = std::move(text);
    return true;
  }
  std::string message = fmt::format("expected {}, got {}", expected, quote(text));
  const std::string hint = suggest(text, allowed);
  if (!hint.empty()) message += fmt::format(" (did you mean {}?)", quote(hint));
  error(message);
  return false;
}

}  // namespace spate::config
