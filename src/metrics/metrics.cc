#include "spate/metrics.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <limits>
#include <thread>

#include "spate/status.h"

namespace spate {

namespace metrics_detail {

std::atomic<size_t> next_thread_slot{0};

size_t slot_count() {
  static const size_t n = [] {
    size_t hw = std::thread::hardware_concurrency();
    size_t s = std::bit_ceil(std::max<size_t>(hw, 1));
    return std::clamp<size_t>(s, 8, 32);
  }();
  return n;
}

}  // namespace metrics_detail

namespace {

using metrics_detail::slot_count;

// --- name checks (mirror `promtool check metrics` lints, so a scrape never fails them) -----

bool is_snake_name(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::vector<std::string_view> split_tokens(std::string_view name) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('_', start);
    if (end == std::string_view::npos) end = name.size();
    out.push_back(name.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Returns "" if `name` is acceptable for a family of `type`, else the problem.
std::string lint_metric_name(std::string_view name, std::string_view type) {
  if (!is_snake_name(name)) return "metric names must be snake_case [a-z_][a-z0-9_]*";
  if (name.starts_with("__")) return "names starting with __ are reserved";
  bool counter = type == "counter";
  if (counter && !ends_with(name, "_total")) return "counter names must end in _total";
  if (!counter && ends_with(name, "_total")) return "only counter names may end in _total";
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (ends_with(name, suffix)) return "names ending in _bucket/_sum/_count are reserved";
  }
  constexpr std::string_view kAbbrev[] = {"s",  "ms", "us", "ns", "sec", "b", "kb",
                                          "mb", "gb", "tb", "pb", "m",   "h", "d"};
  constexpr std::string_view kNonBase[] = {"minutes",    "hours",    "days",   "weeks", "kelvins",
                                           "fahrenheit", "rankine",  "inches", "yards", "miles",
                                           "bits",       "calories", "pounds", "ounces"};
  constexpr std::string_view kBase[] = {"amperes", "bytes",  "celsius", "grams",   "joules",
                                        "kelvin",  "meters", "metres",  "seconds", "volts"};
  constexpr std::string_view kPrefixes[] = {"pico", "nano",  "micro", "milli", "centi", "deci",
                                            "deca", "hecto", "kilo",  "kibi",  "mega",  "mibi",
                                            "giga", "gibi",  "tera",  "tebi",  "peta",  "pebi"};
  auto tokens = split_tokens(name);
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string_view t = tokens[i];
    if (i > 0) {  // promtool matches "_<abbrev>_" or a "_<abbrev>" suffix
      for (std::string_view a : kAbbrev) {
        if (t == a) return "abbreviated unit '" + std::string(t) + "' (use base units)";
      }
    }
    for (std::string_view u : kNonBase) {
      if (t == u) return "non-base unit '" + std::string(t) + "' (use seconds, bytes, ...)";
    }
    for (std::string_view pv : kPrefixes) {
      if (!t.starts_with(pv)) continue;
      std::string_view rest = t.substr(pv.size());
      for (std::string_view u : kBase) {
        if (rest == u) return "prefixed unit '" + std::string(t) + "' (use base units)";
      }
      for (std::string_view u : kNonBase) {
        if (rest == u) return "prefixed unit '" + std::string(t) + "' (use base units)";
      }
    }
    if (i > 0 && (t == "counter" || t == "gauge" || t == "histogram" || t == "summary")) {
      if (t == type) return "metric name should not include its type";
    }
  }
  return {};
}

// Replace invalid UTF-8 sequences with U+FFFD.
std::string sanitize_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  while (i < in.size()) {
    unsigned char c = s[i];
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len != 0 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (s[i + k] & 0x3F);
      }
    }
    if (ok) {
      // Reject overlong forms, surrogates, and code points above U+10FFFF.
      constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
    }
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

void append_escaped_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
}

void append_escaped_help(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
}

}  // namespace

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  constexpr double kExact = 9007199254740992.0;  // 2^53
  if (v == std::floor(v) && std::fabs(v) < kExact) {
    char buf[32];
    int n = std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    return std::string(buf, static_cast<size_t>(n));
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return std::string(buf, r.ptr);
}

// ---------------------------------------------------------------------------------------------
// Counter / Histogram

Counter::Counter() : slots_(std::make_unique<Slot[]>(slot_count())), mask_(slot_count() - 1) {}

double Counter::value() const {
  uint64_t n = 0;
  double d = 0;
  for (size_t i = 0; i <= mask_; ++i) {
    n += slots_[i].n.load(std::memory_order_relaxed);
    d += slots_[i].d.load(std::memory_order_relaxed);
  }
  return static_cast<double>(n) + d;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (!bounds_.empty() && std::isinf(bounds_.back()) && bounds_.back() > 0) bounds_.pop_back();
  for (size_t i = 0; i < bounds_.size(); ++i) {
    SPATE_CHECK(std::isfinite(bounds_[i]), "histogram bucket bounds must be finite");
    SPATE_CHECK(i == 0 || bounds_[i - 1] < bounds_[i],
                "histogram bucket bounds must be strictly increasing");
  }
  size_t cells = 1 + bounds_.size() + 1;  // sum bits, finite buckets, +Inf
  lines_per_slot_ = (cells + 7) / 8;
  mask_ = slot_count() - 1;
  lines_ = std::make_unique<Line[]>(lines_per_slot_ * slot_count());
}

void Histogram::observe(double v) {
  // First bound >= v; NaN compares false everywhere and so lands in +Inf.
  size_t b = bounds_.size();
  if (!std::isnan(v)) {
    b = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  }
  size_t slot = metrics_detail::thread_slot() & mask_;
  cell(slot, 1 + b).fetch_add(1, std::memory_order_relaxed);
  std::atomic<uint64_t>& sum = cell(slot, 0);
  uint64_t cur = sum.load(std::memory_order_relaxed);
  while (!sum.compare_exchange_weak(cur, std::bit_cast<uint64_t>(std::bit_cast<double>(cur) + v),
                                    std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.assign(bounds_.size() + 1, 0);
  for (size_t slot = 0; slot <= mask_; ++slot) {
    s.sum += std::bit_cast<double>(cell(slot, 0).load(std::memory_order_relaxed));
    for (size_t b = 0; b <= bounds_.size(); ++b) {
      s.cumulative[b] += cell(slot, 1 + b).load(std::memory_order_relaxed);
    }
  }
  for (size_t b = 1; b < s.cumulative.size(); ++b) s.cumulative[b] += s.cumulative[b - 1];
  s.count = s.cumulative.back();
  return s;
}

const std::vector<double>& default_latency_buckets() {
  constexpr double kBounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  static const std::vector<double> buckets(std::begin(kBounds), std::end(kBounds));
  return buckets;
}

std::vector<double> exponential_buckets(double start, double factor, size_t count) {
  SPATE_CHECK(start > 0 && factor > 1, "exponential_buckets needs start > 0 and factor > 1");
  std::vector<double> out;
  double v = start;
  for (size_t i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

std::vector<double> linear_buckets(double start, double width, size_t count) {
  SPATE_CHECK(width > 0, "linear_buckets needs width > 0");
  std::vector<double> out;
  for (size_t i = 0; i < count; ++i) out.push_back(start + width * static_cast<double>(i));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Registry

struct MetricsRegistry::Series {
  std::string rendered_labels;  // `a="x",b="y"` (no braces), escaped
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  std::shared_ptr<const std::function<double()>> fn;  // callback series when set
  uint64_t callback_id = 0;
};

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  Kind kind = Kind::kCounter;
  std::map<MetricLabels, Series> series;
};

namespace {

std::string_view kind_name(int kind) {
  constexpr std::string_view kNames[] = {"counter", "gauge", "histogram"};
  return kNames[kind];
}

// Validate, sanitize and sort labels; returns the canonical label set.
MetricLabels canonical_labels(std::string_view metric, MetricLabels labels) {
  for (auto& [name, value] : labels) {
    std::string where = "metric " + std::string(metric) + " label '" + name + "'";
    SPATE_CHECK(is_snake_name(name), where + ": label names must be snake_case [a-z_][a-z0-9_]*");
    SPATE_CHECK(!name.starts_with("__"), where + ": label names starting with __ are reserved");
    SPATE_CHECK(name != "le" && name != "quantile", where + ": label name is reserved");
    value = sanitize_utf8(value);
  }
  std::sort(labels.begin(), labels.end());
  for (size_t i = 1; i < labels.size(); ++i) {
    SPATE_CHECK(labels[i - 1].first != labels[i].first,
                "metric " + std::string(metric) + ": duplicate label '" + labels[i].first + "'");
  }
  return labels;
}

std::string render_labels(const MetricLabels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out.push_back(',');
    out += name;
    out += "=\"";
    append_escaped_label_value(out, value);
    out.push_back('"');
  }
  return out;
}

}  // namespace

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::family_locked(std::string_view name,
                                                        std::string_view help, Kind kind) {
  auto it = families_.find(name);
  if (it != families_.end()) {
    SPATE_CHECK(it->second->kind == kind,
                "metric " + std::string(name) + " registered as " +
                    std::string(kind_name(static_cast<int>(it->second->kind))) + " and as " +
                    std::string(kind_name(static_cast<int>(kind))));
    return *it->second;
  }
  std::string problem = lint_metric_name(name, kind_name(static_cast<int>(kind)));
  SPATE_CHECK(problem.empty(), "metric " + std::string(name) + ": " + problem);
  SPATE_CHECK(!help.empty(), "metric " + std::string(name) + ": help text must not be empty");
  auto fam = std::make_unique<Family>();
  fam->name = std::string(name);
  fam->help = sanitize_utf8(help);
  fam->kind = kind;
  Family& ref = *fam;
  families_.emplace(std::string(name), std::move(fam));
  return ref;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help,
                                  MetricLabels labels) {
  labels = canonical_labels(name, std::move(labels));
  std::lock_guard lock(mu_);
  Family& fam = family_locked(name, help, Kind::kCounter);
  auto [it, inserted] = fam.series.try_emplace(std::move(labels));
  Series& s = it->second;
  if (inserted) {
    s.rendered_labels = render_labels(it->first);
    s.counter = std::make_unique<Counter>();
  }
  SPATE_CHECK(s.counter != nullptr,
              "metric " + std::string(name) + ": series already registered as a callback");
  return *s.counter;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, MetricLabels labels) {
  labels = canonical_labels(name, std::move(labels));
  std::lock_guard lock(mu_);
  Family& fam = family_locked(name, help, Kind::kGauge);
  auto [it, inserted] = fam.series.try_emplace(std::move(labels));
  Series& s = it->second;
  if (inserted) {
    s.rendered_labels = render_labels(it->first);
    s.gauge = std::make_unique<Gauge>();
  }
  SPATE_CHECK(s.gauge != nullptr,
              "metric " + std::string(name) + ": series already registered as a callback");
  return *s.gauge;
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      MetricLabels labels, std::vector<double> buckets) {
  labels = canonical_labels(name, std::move(labels));
  std::lock_guard lock(mu_);
  Family& fam = family_locked(name, help, Kind::kHistogram);
  auto [it, inserted] = fam.series.try_emplace(std::move(labels));
  Series& s = it->second;
  if (inserted) {
    s.rendered_labels = render_labels(it->first);
    s.histogram = std::make_unique<Histogram>(std::move(buckets));
  }
  return *s.histogram;
}

MetricCallbackHandle MetricsRegistry::add_callback(std::string_view name, std::string_view help,
                                                   Kind kind, MetricLabels labels,
                                                   std::function<double()> fn) {
  SPATE_CHECK(fn != nullptr, "metric " + std::string(name) + ": empty callback");
  labels = canonical_labels(name, std::move(labels));
  auto shared = std::make_shared<const std::function<double()>>(std::move(fn));
  std::lock_guard lock(mu_);
  Family& fam = family_locked(name, help, kind);
  auto [it, inserted] = fam.series.try_emplace(labels);
  Series& s = it->second;
  if (inserted) {
    s.rendered_labels = render_labels(it->first);
  } else {
    SPATE_CHECK(s.fn != nullptr,
                "metric " + std::string(name) + ": series already registered as a plain metric");
    callback_index_.erase(s.callback_id);  // replaced: the old handle removes nothing
  }
  // The scrape copies the shared_ptr under mu_, so swapping it here is safe.
  s.fn = std::move(shared);
  s.callback_id = next_callback_id_++;
  callback_index_[s.callback_id] = {std::string(name), std::move(labels)};
  return MetricCallbackHandle{s.callback_id};
}

MetricCallbackHandle MetricsRegistry::gauge_fn(std::string_view name, std::string_view help,
                                               MetricLabels labels, std::function<double()> fn) {
  return add_callback(name, help, Kind::kGauge, std::move(labels), std::move(fn));
}

MetricCallbackHandle MetricsRegistry::counter_fn(std::string_view name, std::string_view help,
                                                 MetricLabels labels, std::function<double()> fn) {
  return add_callback(name, help, Kind::kCounter, std::move(labels), std::move(fn));
}

bool MetricsRegistry::remove(MetricCallbackHandle handle) {
  // scrape_mu_ first: once we hold it no scrape is running callbacks, and none will see
  // this series again.
  std::lock_guard scrape_lock(scrape_mu_);
  std::lock_guard lock(mu_);
  auto idx = callback_index_.find(handle.id);
  if (idx == callback_index_.end()) return false;
  auto fam = families_.find(idx->second.first);
  if (fam != families_.end()) fam->second->series.erase(idx->second.second);
  callback_index_.erase(idx);
  return true;
}

std::string MetricsRegistry::render_prometheus() const {
  struct Item {
    const std::string* labels;
    const Series* series;  // for plain metrics (stable pointers)
    std::shared_ptr<const std::function<double()>> fn;
  };
  struct Fam {
    std::string name, help;
    Kind kind;
    std::vector<Item> items;
  };
  std::lock_guard scrape_lock(scrape_mu_);
  std::vector<Fam> fams;
  {
    std::lock_guard lock(mu_);
    fams.reserve(families_.size());
    for (const auto& [name, fam] : families_) {
      if (fam->series.empty()) continue;
      Fam f{fam->name, fam->help, fam->kind, {}};
      f.items.reserve(fam->series.size());
      // Plain series are never erased, so pointers to them (and their rendered labels) stay
      // valid after mu_ is released; callback series may be erased only by remove(), which
      // waits for scrape_mu_.
      for (const auto& [labels, s] : fam->series) f.items.push_back({&s.rendered_labels, &s, s.fn});
      fams.push_back(std::move(f));
    }
  }

  std::string out;
  out.reserve(256 * fams.size());
  auto sample = [&out](std::string_view name, std::string_view suffix, const std::string& labels,
                       std::string_view extra_label, double v) {
    out += name;
    out += suffix;
    if (!labels.empty() || !extra_label.empty()) {
      out.push_back('{');
      out += labels;
      if (!labels.empty() && !extra_label.empty()) out.push_back(',');
      out += extra_label;
      out.push_back('}');
    }
    out.push_back(' ');
    out += format_metric_value(v);
    out.push_back('\n');
  };
  for (const Fam& f : fams) {
    out += "# HELP ";
    out += f.name;
    out.push_back(' ');
    append_escaped_help(out, f.help);
    out += "\n# TYPE ";
    out += f.name;
    out.push_back(' ');
    out += kind_name(static_cast<int>(f.kind));
    out.push_back('\n');
    for (const Item& it : f.items) {
      if (it.fn) {
        double v;
        try {
          v = (*it.fn)();
        } catch (...) {
          v = std::numeric_limits<double>::quiet_NaN();
        }
        sample(f.name, "", *it.labels, "", v);
      } else if (it.series->counter) {
        sample(f.name, "", *it.labels, "", it.series->counter->value());
      } else if (it.series->gauge) {
        sample(f.name, "", *it.labels, "", it.series->gauge->value());
      } else if (it.series->histogram) {
        Histogram::Snapshot snap = it.series->histogram->snapshot();
        for (size_t b = 0; b < snap.cumulative.size(); ++b) {
          double le =
              b < snap.bounds.size() ? snap.bounds[b] : std::numeric_limits<double>::infinity();
          std::string le_label = "le=\"" + format_metric_value(le) + "\"";
          sample(f.name, "_bucket", *it.labels, le_label, static_cast<double>(snap.cumulative[b]));
        }
        sample(f.name, "_sum", *it.labels, "", snap.sum);
        sample(f.name, "_count", *it.labels, "", static_cast<double>(snap.count));
      }
    }
  }
  return out;
}

MetricsRegistry& global_metrics() {
  static MetricsRegistry* registry = new MetricsRegistry();  // never destroyed: no exit races
  return *registry;
}

}  // namespace spate
