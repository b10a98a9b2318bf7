#include "ingest/validate/quality.h"

#include <fmt/format.h>
#include <re2/re2.h>

#include <memory>
#include <optional>
#include <unordered_map>

#include "event/expr.h"
#include "event/json.h"
#include "ingest/transform/json_edit.h"
#include "ingest/validate/json_value.h"

namespace spate::ingest {
namespace {

enum class Kind : uint8_t { kRequired, kRange, kAllowed, kRegex, kMaxAge, kFutureSkew, kExpr };

// "1h30m" style text of a duration in milliseconds, for messages.
std::string duration_text(int64_t ms) {
  if (ms <= 0) return fmt::format("{}ms", ms);
  std::string out;
  const std::pair<int64_t, const char*> units[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const auto& [size, name] : units) {
    if (ms >= size) {
      out += fmt::format("{}{}", ms / size, name);
      ms %= size;
    }
  }
  return out;
}

std::string shown(const simdjson::dom::element& e) { return json_excerpt(e); }

std::string number_text(double d) { return fmt::format("{}", d); }

}  // namespace

struct QualityChecks::Check {
  Kind kind = Kind::kRequired;
  std::string name;
  QualityAction action = QualityAction::kReject;
  std::vector<std::string> fields;
  std::optional<double> min, max;
  std::unique_ptr<simdjson::dom::parser> values_parser;  // owns the allowed values' document
  std::vector<simdjson::dom::element> values;
  std::unordered_multimap<uint64_t, simdjson::dom::element> value_index;  // for long lists
  std::string values_text;  // for messages
  std::unique_ptr<RE2> regex;
  int64_t duration_ms = 0;
  expr::Expression expr;

  // True if the event passes.
  bool passes(const simdjson::dom::element& event, int64_t now_ms) const {
    if (kind == Kind::kExpr) return expr.matches(event);
    if (kind == Kind::kRequired) {
      simdjson::dom::element e;
      for (const std::string& f : fields) {
        if (!json::find_path(event, f, &e)) return false;
      }
      return true;
    }
    simdjson::dom::element e;
    if (!json::find_path(event, fields[0], &e)) return true;  // absent: only `required` cares
    switch (kind) {
      case Kind::kRange: {
        double d;
        if (e.get_double().get(d)) return false;  // not a number (ints convert)
        if (min && d < *min) return false;
        if (max && d > *max) return false;
        return true;
      }
      case Kind::kAllowed:
        if (!value_index.empty()) {
          auto [lo, hi] = value_index.equal_range(schema::json_hash(e));
          for (auto it = lo; it != hi; ++it) {
            if (schema::json_equal(e, it->second)) return true;
          }
          return false;
        }
        for (const auto& v : values) {
          if (schema::json_equal(e, v)) return true;
        }
        return false;
      case Kind::kRegex: {
        std::string_view sv;
        if (e.get_string().get(sv)) return false;
        return RE2::PartialMatch(re2::StringPiece(sv.data(), sv.size()), *regex);
      }
      case Kind::kMaxAge:
      case Kind::kFutureSkew: {
        int64_t t;
        if (!json::event_time_ms(e, &t)) return false;
        return kind == Kind::kMaxAge ? now_ms - t <= duration_ms : t - now_ms <= duration_ms;
      }
      default:
        return true;
    }
  }
};

QualityChecks::QualityChecks() = default;
QualityChecks::~QualityChecks() = default;
QualityChecks::QualityChecks(QualityChecks&&) noexcept = default;
QualityChecks& QualityChecks::operator=(QualityChecks&&) noexcept = default;

bool QualityChecks::empty() const { return checks_.empty(); }
size_t QualityChecks::size() const { return checks_.size(); }
const std::string& QualityChecks::name(uint32_t i) const { return checks_[i].name; }
QualityAction QualityChecks::action(uint32_t i) const { return checks_[i].action; }

const char* quality_action_name(QualityAction a) {
  switch (a) {
    case QualityAction::kReject:
      return "reject";
    case QualityAction::kDeadLetter:
      return "dead_letter";
    case QualityAction::kTag:
      return "tag";
    case QualityAction::kDrop:
      return "drop";
  }
  return "reject";
}

Result<QualityChecks> QualityChecks::compile(const std::vector<QualityCheckConfig>& checks,
                                             std::string_view timestamp_field,
                                             bool has_dead_letter_topic) {
  QualityChecks out;
  std::string errors;
  auto error = [&](const QualityCheckConfig& c, std::string_view key, std::string_view msg) {
    errors += (errors.empty() ? "" : "\n") +
              fmt::format("{}:{}:{}: {}.{}: {}", c.file, c.line, c.column, c.path, key, msg);
  };
  static const std::pair<const char*, Kind> kKinds[] = {
      {"required", Kind::kRequired}, {"range", Kind::kRange},     {"allowed", Kind::kAllowed},
      {"regex", Kind::kRegex},       {"max_age", Kind::kMaxAge}, {"future_skew", Kind::kFutureSkew},
      {"expr", Kind::kExpr}};
  for (const QualityCheckConfig& c : checks) {
    Check k;
    bool known = false;
    for (const auto& [name, kind] : kKinds) {
      if (c.kind == name) {
        k.kind = kind;
        known = true;
      }
    }
    if (!known) {
      error(c, "kind", fmt::format("unknown check \"{}\"", c.kind));
      continue;
    }
    k.action = c.action;
    if (k.action == QualityAction::kDeadLetter && !has_dead_letter_topic) {
      error(c, "action", "dead_letter needs ingestion.dead_letter_topic");
    }
    k.fields = c.fields;
    k.min = c.min;
    k.max = c.max;
    k.duration_ms = c.duration_ms;
    if ((k.kind == Kind::kMaxAge || k.kind == Kind::kFutureSkew) && k.fields.empty()) {
      if (timestamp_field.empty()) {
        error(c, c.kind,
              "needs `field` (or ingestion.timestamp_field) to know where the event time is");
        continue;
      }
      k.fields.emplace_back(timestamp_field);
    }
    if (k.kind != Kind::kExpr && k.fields.empty()) {
      error(c, c.kind, "needs a field");
      continue;
    }
    k.name = !c.name.empty() ? c.name
             : k.kind == Kind::kExpr ? fmt::format("expr:{}", c.path.substr(c.path.find('[')))
                                     : fmt::format("{}:{}", c.kind, k.fields[0]);
    switch (k.kind) {
      case Kind::kRange:
        if (!k.min && !k.max) error(c, "range", "needs `min`, `max` or both");
        if (k.min && k.max && *k.min > *k.max) error(c, "min", "min is greater than max");
        break;
      case Kind::kAllowed: {
        if (c.values.empty()) {
          error(c, "values", "needs a non-empty list of values");
          break;
        }
        std::string list = "[";
        for (size_t i = 0; i < c.values.size(); ++i) list += (i ? "," : "") + c.values[i];
        list += "]";
        k.values_text = list.size() > 120 ? list.substr(0, 117) + "..." : list;
        k.values_parser = std::make_unique<simdjson::dom::parser>();
        simdjson::dom::element doc;
        if (k.values_parser->parse(list).get(doc)) {
          error(c, "values", "values must be scalars");
          break;
        }
        const simdjson::dom::array arr = doc.get_array().value_unsafe();
        for (auto v : arr) k.values.push_back(v);
        if (k.values.size() > 8) {
          for (const auto& v : k.values) k.value_index.emplace(schema::json_hash(v), v);
        }
        break;
      }
      case Kind::kRegex: {
        RE2::Options o;
        o.set_log_errors(false);
        k.regex = std::make_unique<RE2>(re2::StringPiece(c.pattern.data(), c.pattern.size()), o);
        if (c.pattern.empty()) error(c, "pattern", "regex needs `pattern`");
        else if (!k.regex->ok()) error(c, "pattern", "invalid regular expression: " + k.regex->error());
        break;
      }
      case Kind::kMaxAge:
      case Kind::kFutureSkew:
        if (k.duration_ms <= 0) error(c, c.kind, "must be a positive duration");
        break;
      case Kind::kExpr: {
        auto e = expr::Expression::compile(c.expr);
        if (!e.ok()) error(c, "expr", e.status().message());
        else k.expr = std::move(e).value();
        break;
      }
      default:
        break;
    }
    out.checks_.push_back(std::move(k));
  }
  if (!errors.empty()) return ConfigError(errors);
  return out;
}

void QualityChecks::evaluate(const simdjson::dom::element& event, int64_t now_ms,
                             Outcome* out) const {
  out->clear();
  for (uint32_t i = 0; i < checks_.size(); ++i) {
    const Check& c = checks_[i];
    if (c.passes(event, now_ms)) continue;
    out->failed.push_back(i);
    if (c.action != QualityAction::kTag) {
      out->decisive = static_cast<int>(out->failed.size() - 1);
      return;
    }
  }
}

std::string QualityChecks::reason(uint32_t i, const simdjson::dom::element& event,
                                  int64_t now_ms) const {
  const Check& c = checks_[i];
  const std::string prefix = fmt::format("quality check {}: ", c.name);
  if (c.kind == Kind::kExpr) return prefix + "expression `" + c.expr.source() + "` is false";
  simdjson::dom::element e;
  if (c.kind == Kind::kRequired) {
    std::string missing;
    for (const std::string& f : c.fields) {
      if (!json::find_path(event, f, &e)) missing += (missing.empty() ? "" : ", ") + f;
    }
    return prefix + "missing required field" + (missing.find(',') != std::string::npos ? "s " : " ") +
           missing;
  }
  const std::string& f = c.fields[0];
  if (!json::find_path(event, f, &e)) return prefix + f + " is absent";
  switch (c.kind) {
    case Kind::kRange: {
      if (!e.is_number()) return prefix + fmt::format("{} = {} is not a number", f, shown(e));
      std::string bounds = c.min && c.max ? fmt::format("[{}, {}]", number_text(*c.min), number_text(*c.max))
                           : c.min        ? fmt::format(">= {}", number_text(*c.min))
                                          : fmt::format("<= {}", number_text(*c.max));
      return prefix + fmt::format("{} = {} is out of range {}", f, shown(e), bounds);
    }
    case Kind::kAllowed:
      return prefix + fmt::format("{} = {} is not one of {}", f, shown(e), c.values_text);
    case Kind::kRegex:
      if (!e.is_string()) return prefix + fmt::format("{} = {} is not a string", f, shown(e));
      return prefix + fmt::format("{} = {} does not match {}", f, shown(e), c.regex->pattern());
    case Kind::kMaxAge:
    case Kind::kFutureSkew: {
      int64_t t;
      if (!json::event_time_ms(e, &t)) {
        return prefix + fmt::format("{} = {} is not epoch milliseconds or an RFC 3339 time", f,
                                    shown(e));
      }
      if (c.kind == Kind::kMaxAge) {
        return prefix + fmt::format("event time {} is {} old, more than {}", shown(e),
                                    duration_text(now_ms - t), duration_text(c.duration_ms));
      }
      return prefix + fmt::format("event time {} is {} in the future, more than {}", shown(e),
                                  duration_text(t - now_ms), duration_text(c.duration_ms));
    }
    default:
      return prefix + "failed";
  }
}

}  // namespace spate::ingest
