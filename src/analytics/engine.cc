// RealTimeAnalyticsEngine (include/spate/analytics.h): one worker thread that polls its share
// of the input partitions, aggregates per key and window, advances the watermark once per batch,
// emits results and commits the offsets that no open window needs any more.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <variant>

#include "analytics/alerts.h"
#include "analytics/codec_internal.h"
#include "analytics/engine_state.h"
#include "analytics/key_table.h"
#include "analytics/result_sink.h"
#include "analytics/watermark.h"
#include "analytics/windows.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/fs.h"
#include "base/hash.h"
#include "base/json_escape.h"
#include "event/expr.h"
#include "event/json.h"
#include "process/consumer.h"
#include "process/retry.h"
#include "spate/analytics.h"
#include "spate/metrics.h"

namespace spate {

using namespace analytics;  // NOLINT(google-build-using-namespace): the building blocks

namespace {

bool is_numeric(AggregationType t) {
  switch (t) {
    case AggregationType::kSum:
    case AggregationType::kAvg:
    case AggregationType::kMin:
    case AggregationType::kMax:
    case AggregationType::kStddev:
    case AggregationType::kVariance:
    case AggregationType::kPercentile: return true;
    default: return false;
  }
}

void append_double(std::string& out, double v) {
  if (std::isfinite(v)) {
    fmt::format_to(std::back_inserter(out), "{}", v);
  } else {
    out += "null";
  }
}

// "p99", "p99.9", "p50"
std::string quantile_name(double q) {
  std::string s = fmt::format("{}", q * 100);
  return "p" + s;
}

// A finite number at `path` of `doc`.
std::optional<double> number_at(const simdjson::dom::element& doc, std::string_view path) {
  simdjson::dom::element v;
  double d = 0;
  if (!json::find_path(doc, path, &v) || !v.is_number() ||
      v.get_double().get(d) != simdjson::SUCCESS || !std::isfinite(d)) {
    return std::nullopt;
  }
  return d;
}

// The detector configs a rule's YAML/C++ config stands for (validated and compiled alike).
SequenceConfig sequence_config(const RuleConfig& r, uint32_t buffered_events) {
  SequenceConfig sc;
  sc.steps = static_cast<uint32_t>(r.steps.size() + (r.not_followed_by.empty() ? 0 : 1));
  sc.within_ms = r.within_ms;
  sc.not_followed_by = !r.not_followed_by.empty();
  sc.max_buffered_events = buffered_events;
  return sc;
}

analytics::AnomalyConfig anomaly_config(const RuleConfig& r) {
  analytics::AnomalyConfig ac;
  ac.method = r.method == "mad"    ? AnomalyMethod::kMad
              : r.method == "ewma" ? AnomalyMethod::kEwma
                                   : AnomalyMethod::kZScore;
  ac.window = r.baseline;
  ac.warmup = r.warmup;
  ac.alpha = r.alpha;
  ac.include_anomalies = r.include_anomalies;
  return ac;
}

// The correlation aggregation a correlation rule reads (-1 if there is none).
int correlation_slot(const std::vector<AggregationConfig>& aggs, const RuleConfig& r) {
  for (size_t i = 0; i < aggs.size(); ++i) {
    const AggregationConfig& a = aggs[i];
    if (a.type == AggregationType::kCorrelation && a.field == r.x && a.with == r.y) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

// "" if `name` is a numeric field of every window result of `aggs` (what a correlation of two
// aggregates reads), else why not.
std::string numeric_aggregate_error(const std::vector<AggregationConfig>& aggs,
                                    const std::string& name) {
  const size_t dot = name.find('.');
  const std::string base = name.substr(0, dot);
  for (const AggregationConfig& a : aggs) {
    if (a.name != base) continue;
    if (a.type == AggregationType::kPercentile) {
      std::vector<std::string> qs;
      for (double q : a.quantiles) qs.push_back(a.name + "." + quantile_name(q));
      if (dot != std::string::npos && std::find(qs.begin(), qs.end(), name) != qs.end()) return "";
      return fmt::format("{} is not a number: name one of the percentile's quantiles ({})", name,
                         fmt::join(qs, ", "));
    }
    if (dot != std::string::npos) return name + ": aggregation " + base + " has no fields";
    switch (a.type) {
      case AggregationType::kTopK:
      case AggregationType::kFirst:
      case AggregationType::kLast:
        return fmt::format("{} is a {} aggregation, not a number", name,
                           aggregation_type_name(a.type));
      default:
        return "";
    }
  }
  std::vector<std::string> names;
  for (const AggregationConfig& a : aggs) names.push_back(a.name);
  return fmt::format("{} is not an aggregation of this job (aggregations: {})", name,
                     fmt::join(names, ", "));
}

// The value at `e` as text: strings unquoted, anything else as minified JSON.
std::string_view element_text(const simdjson::dom::element& e, std::string* scratch) {
  if (e.is_string()) return std::string_view(e.get_string().value_unsafe());
  *scratch = simdjson::minify(e);
  return *scratch;
}

}  // namespace

Status validate_analytics(const AnalyticsConfig& c) {
  auto at = [&](const std::string& what) {
    return ConfigError(fmt::format("{}:{}:{}: {}: {}", c.file, c.line, c.column, c.path, what));
  };
  if (c.inputs.empty()) return at("no input topics");
  if (c.output.empty() && c.results.empty()) return at("no output topic and no results sink");
  if (c.aggregations.empty()) return at("no aggregations");
  const WindowConfig& w = c.window;
  switch (w.type) {
    case WindowType::kTumbling:
    case WindowType::kSliding:
      if (!SlidingWindows::make(w.size_ms, w.slide_ms ? w.slide_ms : w.size_ms).ok()) {
        return at("window size and slide must be positive");
      }
      break;
    case WindowType::kSession:
      if (Status s = SessionConfig{w.gap_ms, w.max_length_ms}.validate(); !s.ok()) {
        return at("window: " + s.message());
      }
      break;
    case WindowType::kCount:
      if (!CountWindows::make(w.count, w.count_slide).ok()) return at("count window size and slide");
      break;
    case WindowType::kGlobal:
      if (w.trigger_every == 0 && w.trigger_interval_ms <= 0) {
        return at("a global window needs a trigger: every (events) or interval");
      }
      break;
  }
  for (const AggregationConfig& a : c.aggregations) {
    if (a.field.empty() && a.type != AggregationType::kCount) {
      return at("aggregation " + a.name + " needs a field");
    }
    if (a.type == AggregationType::kPercentile) {
      DDSketchConfig dc;
      dc.relative_accuracy = a.relative_error;
      if (Status s = dc.validate(); !s.ok()) return at("aggregation " + a.name + ": " + s.message());
      if (a.quantiles.empty()) return at("aggregation " + a.name + ": no quantiles");
    }
    if (a.type == AggregationType::kDistinctCount) {
      HyperLogLogConfig hc;
      hc.precision = a.precision;
      hc.exact_threshold = a.exact_threshold;
      if (Status s = hc.validate(); !s.ok()) return at("aggregation " + a.name + ": " + s.message());
    }
  }
  if (c.processing_time && !c.time_field.empty()) {
    return at("event time: time.field and time.processing_time exclude each other");
  }
  std::set<std::string> rule_names;
  for (const RuleConfig& r : c.rules) {
    auto bad = [&](const std::string& what) {
      return ConfigError(fmt::format("{}:{}:{}: {}: {}", r.file.empty() ? c.file : r.file, r.line,
                                     r.column, r.path.empty() ? c.path : r.path, what));
    };
    if (r.name.empty() || !rule_names.insert(r.name).second) return bad("rules need unique names");
    auto compiles = [&](const std::string& text) -> Status {
      auto e = expr::Expression::compile(text);
      return e.ok() ? Status::Ok() : bad(e.status().message());
    };
    switch (r.type) {
      case RuleType::kThreshold: {
        if (r.condition.empty()) return bad("a threshold needs a condition");
        SPATE_RETURN_IF_ERROR(compiles(r.condition));
        if (!r.resolve.empty()) SPATE_RETURN_IF_ERROR(compiles(r.resolve));
        ThresholdConfig tc{r.for_windows, r.for_ms};
        if (Status s = tc.validate(); !s.ok()) return bad(s.message());
        break;
      }
      case RuleType::kTrend:
        if (r.value.empty()) return bad("a trend needs a value (an aggregate's name)");
        if (r.rising <= 0 && r.falling <= 0) return bad("a trend needs rising or falling");
        if (Status s = TrendConfig{r.windows}.validate(); !s.ok()) return bad(s.message());
        break;
      case RuleType::kCorrelation:
        if (r.x.empty() || r.y.empty()) return bad("a correlation needs fields x and y");
        if (r.correlation_windows != 0) {  // x and y are aggregates, r over the last N windows
          if (Status s = TrendConfig{r.correlation_windows}.validate(); !s.ok()) {
            return bad("correlation: windows must be in [2, 65536]");
          }
          if (r.min_count < 2 || r.min_count > r.correlation_windows) {
            return bad(fmt::format("correlation: min_count must be in [2, windows = {}], got {}",
                                   r.correlation_windows, r.min_count));
          }
          for (const std::string* f : {&r.x, &r.y}) {
            if (std::string e = numeric_aggregate_error(c.aggregations, *f); !e.empty()) {
              return bad("correlation over windows: " + e);
            }
          }
        }
        break;
      case RuleType::kSequence: {
        for (const std::string& st : r.steps) SPATE_RETURN_IF_ERROR(compiles(st));
        if (!r.not_followed_by.empty()) SPATE_RETURN_IF_ERROR(compiles(r.not_followed_by));
        if (r.steps.size() < 2) return bad("a sequence needs at least 2 steps");
        if (Status s = sequence_config(r, c.sequence_buffer).validate(); !s.ok()) {
          return bad(s.message());
        }
        break;
      }
      case RuleType::kAnomaly: {
        if (r.value.empty()) return bad("an anomaly rule needs a value");
        if (r.method != "zscore" && r.method != "mad" && r.method != "ewma") {
          return bad("method: zscore, mad or ewma");
        }
        if (Status s = anomaly_config(r).validate(); !s.ok()) return bad(s.message());
        break;
      }
    }
  }
  for (const AggregationConfig& a : c.aggregations) {
    if (a.type == AggregationType::kCorrelation && a.with.empty()) {
      return at("aggregation " + a.name + ": a correlation needs `with` (the second field)");
    }
  }
  return Status::Ok();
}

struct RealTimeAnalyticsEngine::Impl {
  // ---- configuration ----
  AnalyticsConfig cfg;
  Log* log;
  MetricsRegistry* metrics;
  Clock* clock = system_clock();
  std::optional<SlidingWindows> sliding;
  std::optional<CountWindows> counting;
  SessionConfig session_cfg;
  int64_t lateness = 0;
  uint32_t out_partitions = 1;
  uint32_t late_partitions = 1;
  uint32_t alert_partitions = 1;
  Slots prototype;

  // ---- state (worker thread only) ----
  KeyTable keys;
  // Timers. A KeyState is only erased (sweep_and_oldest) once it is empty, after every timer
  // that names it has fired, so the pointers never dangle (KeyTable states do not move).
  std::map<int64_t, std::vector<KeyState*>> fire_at;   // window end -> keys to emit
  std::map<int64_t, std::vector<KeyState*>> close_at;  // close time -> keys to clean
  std::set<std::pair<int64_t, std::string>> reemit;      // sliding: (window end, key)
  std::set<std::string> reemit_sessions;
  std::unique_ptr<WatermarkTracker> watermarks;
  int64_t watermark = kNoWatermark;
  uint64_t seq = 0;
  std::unique_ptr<process::GroupConsumer> consumer;
  std::string group;
  // Per partition, polled batches not yet releasable: (next offset, latest event time in it).
  std::map<process::TopicPartition, std::deque<std::pair<int64_t, int64_t>>> pending;
  int64_t last_commit_ms = 0;
  simdjson::dom::parser parser;
  std::vector<std::unique_ptr<ResultSink>> sinks;
  std::vector<WindowResultRow> rows;     // this batch's results for the sinks
  std::vector<std::string> results;      // this batch's results (JSON)
  std::vector<std::string> result_keys;
  std::vector<std::pair<uint32_t, std::string>> late_values;  // (source partition, value)
  std::vector<std::string> late_keys;
  std::vector<bool> late_has_key;

  // ---- control and counters ----
  std::thread thread;
  std::atomic<bool> running{false};
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> n_events{0}, n_late{0}, n_invalid{0}, n_results{0}, n_active{0};
  std::atomic<uint64_t> n_keys{0}, n_overflow{0}, n_checkpoints{0}, state_bytes{0};
  std::atomic<bool> restored{false};
  std::atomic<int64_t> wm_published{kNoWatermark};
  Counter* m_events = nullptr;
  Counter* m_late = nullptr;
  Counter* m_results = nullptr;
  Counter* m_invalid_json = nullptr;
  Counter* m_invalid_time = nullptr;
  Counter* m_overflow = nullptr;
  Counter* m_checkpoints = nullptr;
  Gauge* m_state_bytes = nullptr;
  Gauge* m_active = nullptr;
  Gauge* m_watermark_lag = nullptr;

  Impl(AnalyticsConfig c, Log* l, MetricsRegistry* m) : cfg(std::move(c)), log(l), metrics(m) {}

  Status init() {
    SPATE_RETURN_IF_ERROR(validate_analytics(cfg));
    // A correlation rule reads the CoMoments of a correlation aggregation of its fields:
    // configured, or added here (its r then appears in the results too).
    for (const RuleConfig& rc : cfg.rules) {
      if (rc.type != RuleType::kCorrelation || rc.correlation_windows != 0 ||
          correlation_slot(cfg.aggregations, rc) >= 0) {
        continue;
      }
      AggregationConfig a;
      a.type = AggregationType::kCorrelation;
      a.field = rc.x;
      a.with = rc.y;
      a.name = "correlation_" + rc.x + "_" + rc.y;
      std::replace(a.name.begin(), a.name.end(), '.', '_');
      cfg.aggregations.push_back(a);
    }
    SPATE_RETURN_IF_ERROR(compile_rules());
    lateness = cfg.window.allowed_lateness_ms;
    const WindowConfig& w = cfg.window;
    if (w.type == WindowType::kTumbling || w.type == WindowType::kSliding) {
      const int64_t slide = w.type == WindowType::kSliding && w.slide_ms ? w.slide_ms : w.size_ms;
      SPATE_ASSIGN_OR_RETURN(SlidingWindows sw, SlidingWindows::make(w.size_ms, slide));
      sliding = sw;
    } else if (w.type == WindowType::kCount) {
      SPATE_ASSIGN_OR_RETURN(CountWindows cw, CountWindows::make(w.count, w.count_slide));
      counting = cw;
    } else if (w.type == WindowType::kSession) {
      session_cfg = SessionConfig{w.gap_ms, w.max_length_ms};
    }
    for (const AggregationConfig& a : cfg.aggregations) {
      switch (a.type) {
        case AggregationType::kCount: prototype.s.emplace_back(uint64_t{0}); break;
        case AggregationType::kPercentile: {
          DDSketchConfig dc;
          dc.relative_accuracy = a.relative_error;
          prototype.s.emplace_back(DDSketch(dc));
          break;
        }
        case AggregationType::kDistinctCount: {
          HyperLogLogConfig hc;
          hc.precision = a.precision;
          hc.exact_threshold = a.exact_threshold;
          prototype.s.emplace_back(HyperLogLog(hc));
          break;
        }
        case AggregationType::kTopK: {
          TopKConfig tc;
          tc.capacity = a.capacity ? a.capacity : std::max<uint32_t>(10 * a.k, 64);
          prototype.s.emplace_back(SpaceSaving(tc));
          break;
        }
        case AggregationType::kFirst:
        case AggregationType::kLast: prototype.s.emplace_back(FirstLast<std::string>()); break;
        case AggregationType::kCorrelation: prototype.s.emplace_back(CoMoments()); break;
        default: prototype.s.emplace_back(Moments()); break;
      }
    }
    for (const std::string* t : {&cfg.output, &cfg.late_topic, &cfg.alerts_topic}) {
      if (t->empty()) continue;
      auto info = log->describe_topic(*t);
      if (!info.ok()) {
        TopicSpec spec;
        spec.name = *t;
        SPATE_RETURN_IF_ERROR(log->ensure_topic(spec).with_context("analytics " + cfg.name));
        info = log->describe_topic(*t);
      }
      if (!info.ok()) return info.status();
      (t == &cfg.output ? out_partitions
       : t == &cfg.late_topic ? late_partitions
                              : alert_partitions) = info->partitions;
    }
    for (const ResultSinkConfig& r : cfg.results) {
      SPATE_ASSIGN_OR_RETURN(auto sink, make_result_sink(r, cfg.name));
      SPATE_RETURN_IF_ERROR(sink->open().with_context("analytics " + cfg.name));
      sinks.push_back(std::move(sink));
    }
    group = cfg.group.empty() ? "spate.analytics." + cfg.name : cfg.group;
    process::ConsumerConfig cc;
    cc.group = group;
    cc.topics = cfg.inputs;
    cc.replica = cfg.replica;
    cc.replicas = cfg.replicas;
    cc.max_records = cfg.batch_size;
    cc.max_wait_ms = cfg.poll_timeout_ms;
    consumer = std::make_unique<process::GroupConsumer>(log, cc);
    SPATE_RETURN_IF_ERROR(consumer->open().with_context("analytics " + cfg.name));
    WatermarkConfig wc;
    wc.max_out_of_orderness_ms = cfg.max_out_of_orderness_ms;
    wc.idle_timeout_ms = cfg.idle_timeout_ms;
    watermarks = std::make_unique<WatermarkTracker>(wc, clock);
    for (const auto& tp : consumer->assignment()) {
      watermarks->add_partition(partition_index(tp));
    }
    if (!cfg.checkpoint_dir.empty()) {
      checkpoint_path = path_join(cfg.checkpoint_dir, fmt::format("{}.{}of{}.ckpt", cfg.name,
                                                                  cfg.replica, cfg.replicas));
      SPATE_RETURN_IF_ERROR(default_fs()->create_dirs(cfg.checkpoint_dir));
      restore_checkpoint();
    }
    if (metrics) {
      MetricLabels l = {{"analytics", cfg.name}};
      m_events = &metrics->counter("analytics_events_processed_total",
                                   "Events aggregated by an analytics job", l);
      m_late = &metrics->counter("analytics_late_events_total",
                                 "Events behind every window they belong to (late data)", l);
      m_results = &metrics->counter("analytics_window_results_total",
                                    "Window results emitted (updates included)", l);
      auto invalid = [&](const char* reason) {
        MetricLabels inv = l;
        inv.emplace_back("reason", reason);
        return &metrics->counter("analytics_invalid_events_total",
                                 "Events an analytics job could not use", inv);
      };
      m_invalid_json = invalid("not_json");
      m_invalid_time = invalid("no_event_time");
      m_overflow = invalid("key_limit");
      m_checkpoints = &metrics->counter("analytics_checkpoints_total",
                                        "State checkpoints written by an analytics job", l);
      m_state_bytes = &metrics->gauge("analytics_state_bytes",
                                      "Encoded size of an analytics job's state (last checkpoint)", l);
      m_active = &metrics->gauge("analytics_active_windows",
                                 "Open (key, window) states of an analytics job", l);
      m_watermark_lag = &metrics->gauge("analytics_watermark_lag_seconds",
                                        "Wall-clock time minus the job's watermark", l);
    }
    return Status::Ok();
  }

  // Watermark partitions are per (topic, partition): index them densely.
  std::map<process::TopicPartition, uint32_t> tp_index;
  uint32_t partition_index(const process::TopicPartition& tp) {
    auto it = tp_index.find(tp);
    if (it != tp_index.end()) return it->second;
    const uint32_t i = static_cast<uint32_t>(tp_index.size());
    tp_index.emplace(tp, i);
    return i;
  }

  // ---- checkpoints ----
  //
  // A checkpoint is the whole state at a batch boundary after that batch's results were
  // written: every key's windows, the watermark tracker, the first/last sequence counter, and
  // the consumer's position on each assigned partition. Restoring it and polling from those
  // positions continues the run as if it had not stopped. Layout: magic, version, config
  // fingerprint, assignment with positions, watermark, seq, tracker, keys, CRC32C of it all.
  std::string checkpoint_path;
  int64_t last_checkpoint_ms = 0;
  static constexpr uint64_t kCheckpointMagic = 0x4b43'4150'5341'5053ULL;  // "SPSAPACK"

  // Everything that shapes the state: a checkpoint of another shape is not restored.
  uint64_t fingerprint() const {
    const WindowConfig& w = cfg.window;
    std::string f = fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|", window_type_name(w.type),
                                w.size_ms, w.slide_ms, w.gap_ms, w.max_length_ms, w.count,
                                w.count_slide, w.allowed_lateness_ms, cfg.time_field,
                                cfg.processing_time, cfg.max_out_of_orderness_ms,
                                fmt::join(cfg.key_by, ","));
    for (const AggregationConfig& a : cfg.aggregations) {
      fmt::format_to(std::back_inserter(f), "{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{};",
                     aggregation_type_name(a.type), a.name, a.field, a.with,
                     fmt::join(a.quantiles, ","),
                     a.relative_error, a.k, a.capacity, a.precision, a.exact_threshold, a.sample);
    }
    for (const RuleConfig& r : cfg.rules) {
      fmt::format_to(std::back_inserter(f), "{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{};",
                     rule_type_name(r.type), r.name, r.condition, r.resolve, r.for_windows,
                     r.for_ms, r.value, r.windows, r.x, r.y, fmt::join(r.steps, "\x1f"),
                     r.not_followed_by, r.within_ms, r.per_event, r.method, r.baseline, r.warmup,
                     r.alpha, r.include_anomalies, r.threshold);
      if (r.correlation_windows != 0) {
        fmt::format_to(std::back_inserter(f), "cw{};", r.correlation_windows);
      }
    }
    return hash64(f);
  }

  Status write_checkpoint() {
    std::string out;
    codec::Writer w(&out);
    w.u64(kCheckpointMagic);
    w.u8(1);
    w.u64(fingerprint());
    const auto& assignment = consumer->assignment();
    w.varint(assignment.size());
    for (const auto& tp : assignment) {
      w.bytes(tp.topic);
      w.varint(tp.partition);
      w.svarint(consumer->position(tp));
    }
    w.svarint(watermark);
    w.varint(seq);
    std::string wm;
    watermarks->encode(&wm);
    w.bytes(wm);
    w.varint(keys.size());
    for (const auto& ks : keys.all()) encode_key_state(w, *ks);
    w.bytes(alert_manager->encode());
    w.u64(crc32c::value(out.data(), out.size()));
    SPATE_RETURN_IF_ERROR(default_fs()->write_file_atomic(checkpoint_path, out));
    state_bytes.store(out.size(), std::memory_order_relaxed);
    n_checkpoints.fetch_add(1, std::memory_order_relaxed);
    if (m_checkpoints) m_checkpoints->inc();
    if (m_state_bytes) m_state_bytes->set(static_cast<double>(out.size()));
    return Status::Ok();
  }

  // Decodes the checkpoint into fresh state; the live state is replaced only if all of it
  // parses and it fits this job and assignment.
  Status read_checkpoint(std::string_view in) {
    if (in.size() < 8 + 1 + 8 + 8) return Corruption("too short");
    const std::string_view body = in.substr(0, in.size() - 8);
    codec::Reader tail(in.substr(in.size() - 8));
    if (tail.u64() != crc32c::value(body.data(), body.size())) return Corruption("bad checksum");
    codec::Reader r(body);
    if (r.u64() != kCheckpointMagic || r.u8() != 1) return Corruption("not a checkpoint (v1)");
    if (r.u64() != fingerprint()) {
      return InvalidArgument("written for another configuration of this job");
    }
    const auto& assignment = consumer->assignment();
    if (r.varint() != assignment.size()) return InvalidArgument("another partition assignment");
    std::vector<int64_t> positions;
    for (const auto& tp : assignment) {
      const std::string_view topic = r.bytes();
      const uint64_t partition = r.varint();
      positions.push_back(r.svarint());
      if (!r.ok() || topic != tp.topic || partition != tp.partition) {
        return InvalidArgument("another partition assignment");
      }
    }
    const int64_t wm = r.svarint();
    const uint64_t sq = r.varint();
    const std::string_view tracker = r.bytes();
    const uint64_t n = r.varint();
    if (!r.ok() || n > r.remaining()) return Corruption("truncated");
    KeyTable restored_keys;
    for (uint64_t i = 0; i < n; ++i) {
      KeyState ks;
      SPATE_RETURN_IF_ERROR(decode_key_state(r, prototype, session_cfg, rule_templates, &ks));
      const uint64_t h = KeyTable::hash(ks.key);
      if (restored_keys.find(ks.key, h) != nullptr) return Corruption("duplicate key");
      restored_keys.insert(std::move(ks), h);
    }
    const std::string_view alert_state = r.bytes();
    if (!r.done()) return Corruption("trailing bytes");
    SPATE_RETURN_IF_ERROR(alert_manager->decode(alert_state));
    SPATE_RETURN_IF_ERROR(watermarks->restore(tracker));
    for (size_t i = 0; i < assignment.size(); ++i) {
      SPATE_RETURN_IF_ERROR(consumer->seek(assignment[i], positions[i]));
    }
    keys = std::move(restored_keys);
    watermark = wm;
    wm_published.store(watermark, std::memory_order_relaxed);
    seq = sq;
    rebuild_timers();
    state_bytes.store(in.size(), std::memory_order_relaxed);
    return Status::Ok();
  }

  // The timers and counters that follow from the key states (after a restore).
  void rebuild_timers() {
    fire_at.clear();
    close_at.clear();
    sequence_keys.clear();
    uint64_t active = 0;
    for (const auto& ksp : keys.all()) {
      KeyState& ks = *ksp;
      for (const RuleState& rs : ks.rules) {
        if (rs.sequence && !rs.sequence->empty()) sequence_keys.insert(&ks);
      }
      if (sliding) {
        for (const auto& [ps, slots] : ks.panes) {
          ++active;
          sliding->for_each_window(ps, [&](const TimeWindow& w) {
            if (!is_complete(w, watermark)) fire_at[w.end].push_back(&ks);
          });
          if (auto last = sliding->last_window_of_pane(ps)) {
            close_at[close_time(*last, lateness)].push_back(&ks);
          }
        }
      } else if (ks.sessions) {
        for (const auto& sess : ks.sessions->sessions()) {
          ++active;
          fire_at[sess.window.end].push_back(&ks);
          close_at[close_time(sess.window, lateness)].push_back(&ks);
        }
      }
      active += ks.count_panes.size();
    }
    n_active.store(active, std::memory_order_relaxed);
    n_keys.store(keys.size(), std::memory_order_relaxed);
  }

  void restore_checkpoint() {
    auto data = default_fs()->read_file(checkpoint_path);
    if (!data.ok()) {
      if (data.status().code() != Errc::kNotFound) {
        spdlog::warn("analytics {}: cannot read checkpoint {}: {}; rebuilding state from the "
                     "committed offsets", cfg.name, checkpoint_path, data.status().to_string());
      }
      return;
    }
    if (Status st = read_checkpoint(*data); !st.ok()) {
      spdlog::warn("analytics {}: checkpoint {} not used ({}); rebuilding state from the "
                   "committed offsets", cfg.name, checkpoint_path, st.message());
      return;
    }
    restored.store(true);
    spdlog::info("analytics {}: restored {} keys from checkpoint {} (watermark {})", cfg.name,
                 keys.size(), checkpoint_path, watermark);
  }

  uint64_t batches_since_checkpoint = 0;
  void maybe_checkpoint(bool force) {
    if (checkpoint_path.empty() || batches_since_checkpoint == 0) return;
    const int64_t now = clock->now_ms();
    if (!force && now - last_checkpoint_ms < cfg.checkpoint_interval_ms) return;
    last_checkpoint_ms = now;
    batches_since_checkpoint = 0;
    if (Status st = write_checkpoint(); !st.ok()) {
      spdlog::warn("analytics {}: checkpoint failed: {}", cfg.name, st.to_string());
    }
  }

  // ---- per event ----

  struct Values {
    std::vector<double> num;
    std::vector<double> num2;  // correlation: the second field
    std::vector<std::string_view> text;
    std::vector<bool> has;
    std::vector<std::string> scratch;
  } vals;

  // The key's state, created if needed; nullptr once max_keys keys have state.
  KeyState* key_state(const std::string& key, const simdjson::dom::element& doc) {
    const uint64_t h = KeyTable::hash(key);
    if (KeyState* found = keys.find(key, h)) return found;
    if (keys.size() >= cfg.max_keys) return nullptr;
    KeyState ks;
    ks.key = key;
    ks.key_json = "{";
    for (size_t i = 0; i < cfg.key_by.size(); ++i) {
      if (i) ks.key_json += ',';
      append_json_quoted(ks.key_json, cfg.key_by[i]);
      ks.key_json += ':';
      simdjson::dom::element v;
      if (json::find_path(doc, cfg.key_by[i], &v)) {
        ks.key_json += simdjson::minify(v);
      } else {
        ks.key_json += "null";
      }
    }
    ks.key_json += '}';
    if (cfg.window.type == WindowType::kSession) {
      SessionState proto;
      proto.slots = prototype;
      ks.sessions = std::make_unique<SessionSet<SessionState>>(session_cfg, std::move(proto));
    }
    n_keys.store(keys.size() + 1, std::memory_order_relaxed);
    return keys.insert(std::move(ks), h);
  }

  // Pane states are recycled: a closed pane's Slots keeps its allocations for the next pane.
  std::vector<Slots> spare_slots;
  Slots fresh_slots() {
    if (spare_slots.empty()) return prototype;
    Slots s = std::move(spare_slots.back());
    spare_slots.pop_back();
    s.s = prototype.s;  // same alternatives: assignment reuses their storage
    s.min_time = kMaxTime;
    return s;
  }
  void recycle(Slots&& s) {
    if (spare_slots.size() < 4096) spare_slots.push_back(std::move(s));
  }

  void update(Slots& slots, int64_t t) {
    ++seq;
    slots.min_time = std::min(slots.min_time, t);
    for (size_t i = 0; i < cfg.aggregations.size(); ++i) {
      const AggregationType type = cfg.aggregations[i].type;
      Slot& s = slots.s[i];
      if (type == AggregationType::kCount) {
        if (cfg.aggregations[i].field.empty() || vals.has[i]) ++std::get<uint64_t>(s);
        continue;
      }
      if (!vals.has[i]) continue;
      switch (type) {
        case AggregationType::kPercentile: std::get<DDSketch>(s).add(vals.num[i]); break;
        case AggregationType::kDistinctCount: std::get<HyperLogLog>(s).add(vals.text[i]); break;
        case AggregationType::kTopK: std::get<SpaceSaving>(s).add(vals.text[i]); break;
        case AggregationType::kCorrelation:
          (void)std::get<CoMoments>(s).add(vals.num[i], vals.num2[i]);
          break;
        case AggregationType::kFirst:
        case AggregationType::kLast:
          std::get<FirstLast<std::string>>(s).add(t, seq, std::string(vals.text[i]));
          break;
        default: std::get<Moments>(s).add(vals.num[i]); break;
      }
    }
  }

  // Returns the event's time, or nullopt (invalid: counted).
  std::optional<int64_t> read_event(std::string_view value, int64_t record_ts, std::string* key,
                                    simdjson::dom::element* doc_out) {
    auto doc = parser.parse(value.data(), value.size());
    if (doc.error()) {
      n_invalid.fetch_add(1, std::memory_order_relaxed);
      if (m_invalid_json) m_invalid_json->inc();
      return std::nullopt;
    }
    const simdjson::dom::element e = doc.value_unsafe();
    *doc_out = e;
    int64_t t = 0;
    if (cfg.processing_time) {
      t = clock->now_ms();
    } else if (cfg.time_field.empty()) {
      t = record_ts;  // the log record's timestamp (ingestion sets it from timestamp_field)
    } else {
      simdjson::dom::element te;
      if (!json::find_path(e, cfg.time_field, &te) || !json::event_time_ms(te, &t)) {
        n_invalid.fetch_add(1, std::memory_order_relaxed);
        if (m_invalid_time) m_invalid_time->inc();
        return std::nullopt;
      }
    }
    key->clear();
    std::string scratch;
    for (size_t i = 0; i < cfg.key_by.size(); ++i) {
      if (i) *key += '\x1f';
      simdjson::dom::element v;
      if (json::find_path(e, cfg.key_by[i], &v)) {
        *key += element_text(v, &scratch);
      } else {
        *key += '\x1e';  // absent: distinct from every present value
      }
    }
    const size_t n = cfg.aggregations.size();
    vals.num.assign(n, 0);
    vals.num2.assign(n, 0);
    vals.text.assign(n, {});
    vals.has.assign(n, false);
    vals.scratch.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const AggregationConfig& a = cfg.aggregations[i];
      if (a.field.empty()) continue;
      if (a.type == AggregationType::kCorrelation) {
        auto x = number_at(e, a.field);
        auto y = number_at(e, a.with);
        if (x && y) {
          vals.num[i] = *x;
          vals.num2[i] = *y;
          vals.has[i] = true;
        }
        continue;
      }
      simdjson::dom::element v;
      if (!json::find_path(e, a.field, &v) || v.is_null()) continue;
      if (is_numeric(a.type)) {
        double d = 0;
        if (v.is_number() && v.get_double().get(d) == simdjson::SUCCESS && std::isfinite(d)) {
          vals.num[i] = d;
          vals.has[i] = true;
        }
      } else if (a.type == AggregationType::kFirst || a.type == AggregationType::kLast) {
        vals.scratch[i] = simdjson::minify(v);
        vals.text[i] = vals.scratch[i];
        vals.has[i] = true;
      } else {
        vals.text[i] = element_text(v, &vals.scratch[i]);  // non-strings land in scratch[i]
        vals.has[i] = true;
      }
    }
    return t;
  }

  enum class Outcome { kAggregated, kLate, kOverflow };

  // Aggregate one event: kLate if it belongs only to closed windows, kOverflow if its key is
  // new and max_keys keys have state.
  Outcome aggregate(const std::string& key, const simdjson::dom::element& doc, int64_t t) {
    switch (cfg.window.type) {
      case WindowType::kTumbling:
      case WindowType::kSliding: {
        const int64_t ps = sliding->pane_start(t);
        auto last = sliding->last_window_of_pane(ps);
        if (!last) return Outcome::kAggregated;  // in a gap between hopping windows: in no window, not late
        if (is_closed(*last, watermark, lateness)) return Outcome::kLate;
        KeyState* ksp = key_state(key, doc);
        if (ksp == nullptr) return Outcome::kOverflow;
        KeyState& ks = *ksp;
        auto it = ks.panes.find(ps);
        const bool fresh = it == ks.panes.end();
        if (fresh) {
          it = ks.panes.try_emplace(ps, fresh_slots()).first;
          n_active.fetch_add(1, std::memory_order_relaxed);
          sliding->for_each_window(ps, [&](const TimeWindow& w) {
            if (!is_closed(w, watermark, lateness)) fire_at[w.end].push_back(&ks);
          });
          close_at[close_time(*last, lateness)].push_back(&ks);
        }
        update(it->second, t);
        if (t < watermark) {  // some windows of t may be complete already: emit them again
          sliding->for_each_window(t, [&](const TimeWindow& w) {
            if (is_complete(w, watermark) && !is_closed(w, watermark, lateness)) {
              reemit.emplace(w.end, key);
            }
          });
        }
        return Outcome::kAggregated;
      }
      case WindowType::kSession: {
        KeyState* found = keys.find(key);
        if ((found == nullptr || !found->sessions->covers(t)) &&
            is_closed(TimeWindow{t, sat_add(t, session_cfg.gap_ms)}, watermark, lateness)) {
          return Outcome::kLate;
        }
        KeyState* ksp = found != nullptr ? found : key_state(key, doc);
        if (ksp == nullptr) return Outcome::kOverflow;
        KeyState& ks = *ksp;
        const size_t before = ks.sessions->sessions().size();
        const TimeWindow w = ks.sessions->add(t, [&](SessionState& st) {
          update(st.slots, t);
          st.dirty = true;
          st.early = true;
        });
        const size_t after = ks.sessions->sessions().size();
        n_active.fetch_add(after, std::memory_order_relaxed);
        n_active.fetch_sub(before, std::memory_order_relaxed);
        fire_at[w.end].push_back(&ks);
        close_at[close_time(w, lateness)].push_back(&ks);
        if (is_complete(w, watermark)) reemit_sessions.insert(key);
        return Outcome::kAggregated;
      }
      case WindowType::kCount: {
        KeyState* ksp = key_state(key, doc);
        if (ksp == nullptr) return Outcome::kOverflow;
        KeyState& ks = *ksp;
        const uint64_t k = ks.events++;
        const uint64_t pane = counting->pane_of(k);
        auto it = ks.count_panes.find(pane);
        if (it == ks.count_panes.end()) {
          it = ks.count_panes.try_emplace(pane, fresh_slots()).first;
          n_active.fetch_add(1, std::memory_order_relaxed);
        }
        update(it->second, t);
        if (auto j = counting->completes(k)) {
          auto [p0, p1] = counting->panes_of(*j);
          Slots win = prototype;
          for (auto pit = ks.count_panes.lower_bound(p0);
               pit != ks.count_panes.end() && pit->first <= p1; ++pit) {
            merge_slots(win, pit->second);
          }
          emit(ks, key, TimeWindow{win.min_time, t}, win, 0, true, Emission::kOnTime,
               static_cast<int64_t>(*j));
          // Panes before the next window's first pane are no longer needed.
          const uint64_t keep_from = counting->panes_of(*j + 1).first;
          while (!ks.count_panes.empty() && ks.count_panes.begin()->first < keep_from) {
            recycle(std::move(ks.count_panes.begin()->second));
            ks.count_panes.erase(ks.count_panes.begin());
            n_active.fetch_sub(1, std::memory_order_relaxed);
          }
        }
        return Outcome::kAggregated;
      }
      case WindowType::kGlobal: {
        KeyState* ksp = key_state(key, doc);
        if (ksp == nullptr) return Outcome::kOverflow;
        KeyState& ks = *ksp;
        auto [it, fresh] = ks.count_panes.try_emplace(0, prototype);
        if (fresh) n_active.fetch_add(1, std::memory_order_relaxed);
        update(it->second, t);
        ++ks.events;
        if (cfg.window.trigger_every != 0 && ks.events % cfg.window.trigger_every == 0) {
          fire_global(ks, key, t);
        } else if (cfg.window.trigger_interval_ms > 0) {
          global_dirty.insert(key);
        }
        return Outcome::kAggregated;
      }
    }
    return Outcome::kAggregated;
  }

  // ---- patterns, anomalies, alerts ----

  struct CompiledRule {
    const RuleConfig* cfg = nullptr;
    expr::Expression condition;
    expr::Expression resolve;
    std::vector<expr::Expression> steps;  // sequence: positive steps, then not_followed_by
    int corr_slot = -1;  // correlation of fields: the aggregation holding its CoMoments
    AlertPolicy policy;
    Counter* m_detected = nullptr;        // patterns / anomalies detected
    bool window_rule() const {
      return cfg->type != RuleType::kSequence &&
             !(cfg->type == RuleType::kAnomaly && cfg->per_event);
    }
  };
  std::vector<CompiledRule> rules;
  std::vector<RuleTemplate> rule_templates;
  bool window_rules = false;
  bool event_rules = false;
  std::unique_ptr<AlertManager> alert_manager;
  std::function<void(const Alert&)> publish;
  std::vector<Alert> batch_alerts;   // notified alerts of this batch, published after append
  std::set<KeyState*> sequence_keys;  // keys with sequence state in progress
  int64_t last_sequence_ms = 0;
  simdjson::dom::parser result_parser;
  std::atomic<uint64_t> n_patterns{0}, n_anomalies{0}, n_alerts{0};

  Status compile_rules() {
    for (const RuleConfig& rc : cfg.rules) {
      CompiledRule r;
      r.cfg = &rc;
      r.policy.cooldown_ms = rc.cooldown_ms;
      r.policy.max_per_minute = rc.max_per_minute;
      RuleTemplate t;
      auto compile = [&](const std::string& text, expr::Expression* out) -> Status {
        auto e = expr::Expression::compile(text);
        if (!e.ok()) return InvalidArgument("rule " + rc.name + ": " + e.status().message());
        *out = std::move(e).value();
        return Status::Ok();
      };
      switch (rc.type) {
        case RuleType::kThreshold:
          SPATE_RETURN_IF_ERROR(compile(rc.condition, &r.condition));
          if (!rc.resolve.empty()) SPATE_RETURN_IF_ERROR(compile(rc.resolve, &r.resolve));
          t.threshold.for_windows = rc.for_windows;
          t.threshold.for_ms = rc.for_ms;
          break;
        case RuleType::kTrend: t.trend = TrendConfig{rc.windows}; break;
        case RuleType::kCorrelation:
          if (rc.correlation_windows != 0) {
            t.pairs = TrendConfig{rc.correlation_windows};
          } else {
            r.corr_slot = correlation_slot(cfg.aggregations, rc);
          }
          break;
        case RuleType::kSequence: {
          for (const std::string& st : rc.steps) {
            SPATE_RETURN_IF_ERROR(compile(st, &r.steps.emplace_back()));
          }
          if (!rc.not_followed_by.empty()) {
            SPATE_RETURN_IF_ERROR(compile(rc.not_followed_by, &r.steps.emplace_back()));
          }
          t.sequence = sequence_config(rc, cfg.sequence_buffer);
          break;
        }
        case RuleType::kAnomaly: t.anomaly = anomaly_config(rc); break;
      }
      if (metrics) {
        if (rc.type == RuleType::kAnomaly) {
          r.m_detected = &metrics->counter("analytics_anomalies_detected_total",
                                           "Anomalous observations of an anomaly rule",
                                           {{"analytics", cfg.name}, {"rule", rc.name}});
        } else {
          r.m_detected = &metrics->counter(
              "analytics_patterns_detected_total",
              "Pattern detections (threshold/trend/correlation firings, sequence matches)",
              {{"analytics", cfg.name}, {"pattern", std::string(rule_type_name(rc.type))}});
        }
      }
      (r.window_rule() ? window_rules : event_rules) = true;
      rules.push_back(std::move(r));
      rule_templates.push_back(t);
    }
    AlertManagerConfig amc;
    amc.metrics = metrics;
    alert_manager = std::make_unique<AlertManager>(amc);
    return Status::Ok();
  }

  std::vector<RuleState>& rule_states(KeyState& ks) {
    if (ks.rules.empty()) {
      ks.rules.reserve(rule_templates.size());
      for (const RuleTemplate& t : rule_templates) ks.rules.emplace_back(t);
    }
    return ks.rules;
  }

  Alert alert_of(const CompiledRule& r, const KeyState& ks, int64_t at, bool firing) const {
    Alert a;
    a.analytics = cfg.name;
    a.rule = r.cfg->name;
    a.kind = std::string(rule_type_name(r.cfg->type));
    a.severity = r.cfg->severity;
    a.state = firing ? "firing" : "resolved";
    a.key_json = ks.key_json;
    a.at_ms = at;
    return a;
  }

  void raise(const CompiledRule& r, const KeyState& ks, const TimeWindow& w, int64_t at,
             bool firing, std::string evidence, std::string message) {
    Alert a = alert_of(r, ks, at, firing);
    a.window_start = w.start;
    a.window_end = w.end;
    a.message = std::move(message);
    a.evidence_json = std::move(evidence);
    if (!alert_manager->offer(a, r.policy)) return;
    n_alerts.fetch_add(1, std::memory_order_relaxed);
    batch_alerts.push_back(std::move(a));
  }

  // A sequence match is an occurrence, not a condition: its episode ends with it (silently), so
  // the next match gets its own id.
  void end_episode(const CompiledRule& r, const KeyState& ks, int64_t at) {
    Alert a = alert_of(r, ks, at, false);
    (void)alert_manager->offer(a, r.policy);
  }

  // Fire/resolve through the rule's threshold state machine; returns the transition.
  void transition(const CompiledRule& r, RuleState& rs, const KeyState& ks, const TimeWindow& w,
                  int64_t t, bool breach, std::optional<bool> resolved,
                  const std::function<std::string()>& evidence, const std::string& what) {
    const auto tr = rs.threshold.observe(t, breach, resolved);
    if (tr == ThresholdState::Transition::kNone) return;
    const bool fire = tr == ThresholdState::Transition::kFire;
    if (fire && r.cfg->type != RuleType::kAnomaly) {
      n_patterns.fetch_add(1, std::memory_order_relaxed);
      if (r.m_detected) r.m_detected->inc();
    }
    raise(r, ks, w, t, fire, evidence(),
          fmt::format("{} {} for {}: {}", r.cfg->name, fire ? "firing" : "resolved", ks.key_json,
                      what));
  }

  // One value for an anomaly rule: scored, counted, fired/resolved (window rules pass the
  // window, event rules [t, t]).
  void observe_anomaly(const CompiledRule& r, RuleState& rs, const KeyState& ks,
                       const TimeWindow& w, int64_t t, double v) {
    const RuleConfig& rc = *r.cfg;
    const AnomalyScore sc = rs.anomaly->observe(v, rc.threshold);
    if (sc.anomalous) {
      n_anomalies.fetch_add(1, std::memory_order_relaxed);
      if (r.m_detected) r.m_detected->inc();
    }
    transition(r, rs, ks, w, t, sc.anomalous, std::nullopt,
               [&] { return score_evidence(rc, v, sc); },
               fmt::format("{} = {:.6g}, score {:.3g} (baseline {:.6g} ± {:.3g})", rc.value, v,
                           sc.score, sc.baseline_mean, sc.baseline_stddev));
  }

  static std::string score_evidence(const RuleConfig& rc, double v, const AnomalyScore& sc) {
    std::string e = "{\"value\":";
    append_double(e, v);
    e += ",\"field\":";
    append_json_quoted(e, rc.value);
    e += ",\"method\":";
    append_json_quoted(e, rc.method);
    e += ",\"score\":";
    append_double(e, sc.score);
    e += ",\"baseline_mean\":";
    append_double(e, sc.baseline_mean);
    e += ",\"baseline_stddev\":";
    append_double(e, sc.baseline_stddev);
    fmt::format_to(std::back_inserter(e), ",\"n\":{},\"threshold\":", sc.n);
    append_double(e, rc.threshold);
    e += '}';
    return e;
  }

  // A correlation of two aggregates: this window's (x, y) joins the key's last N pairs (a
  // window where either is null or non-finite is skipped: no observation), then r over them.
  void evaluate_aggregate_correlation(const CompiledRule& r, RuleState& rs, const KeyState& ks,
                                      const TimeWindow& w, const simdjson::dom::element& doc) {
    const RuleConfig& rc = *r.cfg;
    const auto x = number_at(doc, rc.x);
    const auto y = number_at(doc, rc.y);
    if (!x || !y) return;
    const CoMoments cm = rs.pairs->observe(*x, *y);
    const double pr = cm.pearson();
    const bool breach = cm.n >= rc.min_count && std::isfinite(pr) && std::abs(pr) >= rc.min_abs_r;
    transition(
        r, rs, ks, w, w.end, breach, std::nullopt,
        [&] {
          std::string e = "{\"x\":" + json_quoted(rc.x) + ",\"y\":" + json_quoted(rc.y) + ",\"r\":";
          append_double(e, pr);
          fmt::format_to(std::back_inserter(e), ",\"n\":{},\"windows\":{},\"latest_x\":", cm.n,
                         rc.correlation_windows);
          append_double(e, *x);
          e += ",\"latest_y\":";
          append_double(e, *y);
          e += '}';
          return e;
        },
        fmt::format("r({}, {}) = {:.3f} over the last {} windows", rc.x, rc.y, pr, cm.n));
  }

  // Window rules, on a (key, window)'s first emission: `result` is its result JSON.
  void evaluate_window_rules(KeyState& ks, const TimeWindow& w, const Slots& slots,
                             const std::string& result) {
    auto parsed = result_parser.parse(result);
    if (parsed.error()) return;  // cannot happen: the engine wrote it
    const simdjson::dom::element doc = parsed.value_unsafe();
    std::vector<RuleState>& states = rule_states(ks);
    for (size_t i = 0; i < rules.size(); ++i) {
      const CompiledRule& r = rules[i];
      if (!r.window_rule()) continue;
      RuleState& rs = states[i];
      const RuleConfig& rc = *r.cfg;
      switch (rc.type) {
        case RuleType::kThreshold: {
          const bool breach = r.condition.matches(doc);
          std::optional<bool> resolved;
          if (!r.resolve.empty()) resolved = r.resolve.matches(doc);
          transition(r, rs, ks, w, w.end, breach, resolved, [&] {
            return "{\"condition\":" + json_quoted(rc.condition) + ",\"result\":" + result + "}";
          }, rc.resolve.empty() ? rc.condition : rc.condition + " (resolves when " + rc.resolve + ")");
          break;
        }
        case RuleType::kTrend: {
          auto v = number_at(doc, rc.value);
          if (!v) break;
          auto fit = rs.trend->observe(w.end, *v);
          if (!fit) break;
          const bool breach = (rc.rising > 0 && fit->slope_per_second >= rc.rising) ||
                              (rc.falling > 0 && fit->slope_per_second <= -rc.falling);
          transition(r, rs, ks, w, w.end, breach, std::nullopt, [&] {
            std::string e = "{\"value\":" + json_quoted(rc.value) + ",\"latest\":";
            append_double(e, *v);
            e += ",\"slope_per_second\":";
            append_double(e, fit->slope_per_second);
            e += ",\"r2\":";
            append_double(e, fit->r2);
            fmt::format_to(std::back_inserter(e), ",\"windows\":{}}}", fit->n);
            return e;
          }, fmt::format("{} slope {:.4g}/s over {} windows", rc.value, fit->slope_per_second,
                         fit->n));
          break;
        }
        case RuleType::kCorrelation: {
          if (rs.pairs) {
            evaluate_aggregate_correlation(r, rs, ks, w, doc);
            break;
          }
          const CoMoments& cm = std::get<CoMoments>(slots.s[static_cast<size_t>(r.corr_slot)]);
          const double pr = cm.pearson();
          const bool breach = cm.n >= rc.min_count && std::isfinite(pr) && std::abs(pr) >= rc.min_abs_r;
          transition(r, rs, ks, w, w.end, breach, std::nullopt, [&] {
            std::string e = "{\"x\":" + json_quoted(rc.x) + ",\"y\":" + json_quoted(rc.y) + ",\"r\":";
            append_double(e, pr);
            fmt::format_to(std::back_inserter(e), ",\"n\":{}}}", cm.n);
            return e;
          }, fmt::format("r({}, {}) = {:.3f} over {} events", rc.x, rc.y, pr, cm.n));
          break;
        }
        case RuleType::kAnomaly: {
          if (auto v = number_at(doc, rc.value)) observe_anomaly(r, rs, ks, w, w.end, *v);
          break;
        }
        case RuleType::kSequence: break;
      }
    }
  }

  // Event rules, per aggregated event.
  void evaluate_event_rules(const std::string& key, const simdjson::dom::element& doc, int64_t t,
                            uint32_t partition, int64_t offset) {
    KeyState* ks = key_state(key, doc);
    if (ks == nullptr) return;  // max_keys
    std::vector<RuleState>& states = rule_states(*ks);
    for (size_t i = 0; i < rules.size(); ++i) {
      const CompiledRule& r = rules[i];
      if (r.window_rule()) continue;
      RuleState& rs = states[i];
      const RuleConfig& rc = *r.cfg;
      if (rc.type == RuleType::kSequence) {
        if (t < watermark) continue;  // behind the watermark: the NFA may have passed it
        uint32_t mask = 0;
        for (size_t s = 0; s < r.steps.size(); ++s) {
          if (r.steps[s].matches(doc)) mask |= 1u << s;
        }
        if (mask != 0 &&
            rs.sequence->add(t, mask, (static_cast<uint64_t>(partition) << 48) |
                                          static_cast<uint64_t>(offset))) {
          sequence_keys.insert(ks);
        }
        continue;
      }
      if (auto v = number_at(doc, rc.value)) observe_anomaly(r, rs, *ks, TimeWindow{t, t}, t, *v);
    }
  }

  // Sequence matches the watermark made final.
  void advance_sequences() {
    for (auto it = sequence_keys.begin(); it != sequence_keys.end();) {
      KeyState& ks = **it;
      for (size_t i = 0; i < rules.size(); ++i) {
        const CompiledRule& r = rules[i];
        if (r.cfg->type != RuleType::kSequence) continue;
        ks.rules[i].sequence->advance(watermark, [&](const SequenceMatch& m) {
          n_patterns.fetch_add(1, std::memory_order_relaxed);
          if (r.m_detected) r.m_detected->inc();
          std::string e = "{\"steps\":[";
          for (size_t s = 0; s < m.step_times.size(); ++s) {
            if (s) e += ',';
            fmt::format_to(std::back_inserter(e), "{{\"t\":{},\"partition\":{},\"offset\":{}}}",
                           m.step_times[s], m.step_refs[s] >> 48,
                           m.step_refs[s] & ((uint64_t{1} << 48) - 1));
          }
          fmt::format_to(std::back_inserter(e), "],\"within_ms\":{}}}", r.cfg->within_ms);
          raise(r, ks, TimeWindow{m.start_t, m.end_t}, m.end_t, true, std::move(e),
                fmt::format("{} matched for {}: {} steps in {} ms", r.cfg->name, ks.key_json,
                            m.step_times.size(), m.end_t - m.start_t));
          end_episode(r, ks, m.end_t);
        });
      }
      bool pending = false;
      for (const RuleState& rs : ks.rules) pending = pending || (rs.sequence && !rs.sequence->empty());
      it = pending ? std::next(it) : sequence_keys.erase(it);
    }
  }

  static std::string json_quoted(std::string_view v) {
    std::string out;
    append_json_quoted(out, v);
    return out;
  }

  // ---- emission ----

  // kOnTime: the watermark completed the window (window rules run on it); kLate: an update
  // within allowed lateness; kEarly: a periodic result of a window still open.
  enum class Emission { kOnTime, kLate, kEarly };

  void emit(KeyState& ks, const std::string& key, const TimeWindow& w, const Slots& slots,
            uint32_t update_no, bool final, Emission kind, int64_t index = -1) {
    std::string out = "{\"analytics\":";
    append_json_quoted(out, cfg.name);
    fmt::format_to(std::back_inserter(out), ",\"window_start\":{},\"window_end\":{}", w.start,
                   w.end);
    if (index >= 0) fmt::format_to(std::back_inserter(out), ",\"window_index\":{}", index);
    out += ",\"key\":";
    out += ks.key_json;
    for (size_t i = 0; i < cfg.aggregations.size(); ++i) {
      const AggregationConfig& a = cfg.aggregations[i];
      out += ',';
      append_json_quoted(out, a.name);
      out += ':';
      const Slot& s = slots.s[i];
      switch (a.type) {
        case AggregationType::kCount: fmt::format_to(std::back_inserter(out), "{}", std::get<uint64_t>(s)); break;
        case AggregationType::kSum: append_double(out, std::get<Moments>(s).sum); break;
        case AggregationType::kAvg: append_double(out, std::get<Moments>(s).avg()); break;
        case AggregationType::kMin:
          append_double(out, std::get<Moments>(s).empty() ? NAN : std::get<Moments>(s).min);
          break;
        case AggregationType::kMax:
          append_double(out, std::get<Moments>(s).empty() ? NAN : std::get<Moments>(s).max);
          break;
        case AggregationType::kStddev: {
          const Moments& m = std::get<Moments>(s);
          append_double(out, a.sample ? m.stddev_sample() : m.stddev_population());
          break;
        }
        case AggregationType::kVariance: {
          const Moments& m = std::get<Moments>(s);
          append_double(out, a.sample ? m.variance_sample() : m.variance_population());
          break;
        }
        case AggregationType::kPercentile: {
          const DDSketch& d = std::get<DDSketch>(s);
          std::vector<double> qv(a.quantiles.size());
          d.quantiles(a.quantiles, qv);
          out += '{';
          for (size_t q = 0; q < a.quantiles.size(); ++q) {
            if (q) out += ',';
            append_json_quoted(out, quantile_name(a.quantiles[q]));
            out += ':';
            append_double(out, qv[q]);
          }
          out += '}';
          break;
        }
        case AggregationType::kDistinctCount:
          fmt::format_to(std::back_inserter(out), "{}",
                         static_cast<uint64_t>(std::llround(std::get<HyperLogLog>(s).estimate())));
          break;
        case AggregationType::kTopK: {
          out += '[';
          const auto top = std::get<SpaceSaving>(s).top(a.k);
          for (size_t k = 0; k < top.size(); ++k) {
            if (k) out += ',';
            out += "{\"item\":";
            append_json_quoted(out, top[k].item);
            fmt::format_to(std::back_inserter(out), ",\"count\":{},\"error\":{}}}", top[k].count,
                           top[k].error);
          }
          out += ']';
          break;
        }
        case AggregationType::kCorrelation:
          append_double(out, std::get<CoMoments>(s).pearson());
          break;
        case AggregationType::kFirst:
        case AggregationType::kLast: {
          const auto& fl = std::get<FirstLast<std::string>>(s);
          if (!fl.has_value) {
            out += "null";
          } else {
            out += a.type == AggregationType::kFirst ? fl.first : fl.last;
          }
          break;
        }
      }
    }
    if (kind == Emission::kEarly) out += ",\"early\":true";
    fmt::format_to(std::back_inserter(out), ",\"update\":{},\"final\":{},\"watermark\":{}}}",
                   update_no, final ? "true" : "false",
                   watermark == kNoWatermark ? 0 : watermark);
    if (!sinks.empty()) {
      WindowResultRow row;
      row.analytics = cfg.name;
      row.window_start = w.start;
      row.window_end = w.end;
      row.key_json = ks.key_json;
      row.result_json = out;
      row.updates = update_no;
      row.final = final;
      rows.push_back(std::move(row));
    }
    if (kind == Emission::kOnTime && window_rules) evaluate_window_rules(ks, w, slots, out);
    results.push_back(std::move(out));
    result_keys.push_back(key);
  }

  // A sliding/tumbling window's result from its panes (the pane itself when it is the only
  // one, else merged into window_scratch); nullptr if it holds no pane.
  Slots window_scratch;
  const Slots* window_result(const KeyState& ks, const TimeWindow& w) {
    auto it = ks.panes.lower_bound(w.start);
    if (it == ks.panes.end() || it->first >= w.end) return nullptr;
    auto next = it + 1;
    if (next == ks.panes.end() || next->first >= w.end) return &it->second;
    window_scratch = prototype;
    for (; it != ks.panes.end() && it->first < w.end; ++it) merge_slots(window_scratch, it->second);
    return &window_scratch;
  }

  void emit_sliding(KeyState& ks, const std::string& key, int64_t end, Emission kind) {
    const TimeWindow w{end - sliding->size(), end};
    const Slots* r = window_result(ks, w);
    if (r == nullptr) return;
    uint32_t& n = ks.emitted[end];
    emit(ks, key, w, *r, n, lateness == 0 && kind != Emission::kEarly, kind);
    ++n;
  }

  // A key's completed sessions, by (end, start): sessions closed by max_length may overlap,
  // and emitting them in window-end order keeps the order pattern rules see independent of
  // which batch completed them.
  std::vector<size_t> due_sessions;
  void emit_sessions(KeyState& ks, const std::string& key) {
    auto& sessions = ks.sessions->mutable_sessions();
    due_sessions.clear();
    for (size_t i = 0; i < sessions.size(); ++i) {
      if (sessions[i].state.dirty && is_complete(sessions[i].window, watermark)) {
        due_sessions.push_back(i);
      }
    }
    std::sort(due_sessions.begin(), due_sessions.end(), [&](size_t a, size_t b) {
      return std::pair(sessions[a].window.end, sessions[a].window.start) <
             std::pair(sessions[b].window.end, sessions[b].window.start);
    });
    for (size_t i : due_sessions) {
      auto& s = sessions[i];
      emit(ks, key, s.window, s.state.slots, s.state.emissions, lateness == 0,
           s.state.fired ? Emission::kLate : Emission::kOnTime);
      ++s.state.emissions;
      s.state.dirty = false;
      s.state.fired = true;
    }
  }

  // ---- global windows: one state per key, emitted by a trigger ----
  std::set<std::string> global_dirty;  // keys changed since the last interval trigger
  int64_t last_global_ms = 0;

  // The key's result as [earliest event time, `end`]; purge starts the state afresh.
  void fire_global(KeyState& ks, const std::string& key, int64_t end) {
    auto it = ks.count_panes.find(0);
    if (it == ks.count_panes.end()) return;
    uint32_t& n = ks.emitted[0];
    emit(ks, key, TimeWindow{it->second.min_time, std::max(end, it->second.min_time)}, it->second,
         n, false, Emission::kOnTime);
    ++n;
    if (cfg.window.purge) {
      recycle(std::move(it->second));
      ks.count_panes.erase(it);
      n_active.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  void fire_global_interval() {
    for (const std::string& key : global_dirty) {
      if (KeyState* ks = keys.find(key)) {
        fire_global(*ks, key, watermark == kNoWatermark ? 0 : watermark);
      }
    }
    global_dirty.clear();
  }

  // ---- early results (window.early) ----
  // Windows (end, key) and session keys changed since the last early round; keys by name, not
  // pointer: a key may be forgotten between rounds.
  std::set<std::pair<int64_t, std::string>> early_windows;
  std::set<std::string> early_sessions;
  int64_t last_early_ms = 0;

  void note_early(const std::string& key, int64_t t) {
    if (sliding) {
      sliding->for_each_window(t, [&](const TimeWindow& w) {
        if (!is_complete(w, watermark)) early_windows.emplace(w.end, key);
      });
    } else if (cfg.window.type == WindowType::kSession) {
      early_sessions.insert(key);
    }
  }

  void emit_early() {
    for (const auto& [end, key] : early_windows) {
      KeyState* ks = keys.find(key);
      if (ks == nullptr || is_complete(TimeWindow{end - sliding->size(), end}, watermark)) {
        continue;
      }
      emit_sliding(*ks, key, end, Emission::kEarly);
    }
    early_windows.clear();
    for (const std::string& key : early_sessions) {
      KeyState* ks = keys.find(key);
      if (ks == nullptr) continue;
      for (auto& sess : ks->sessions->mutable_sessions()) {
        if (!sess.state.early || is_complete(sess.window, watermark)) continue;
        emit(*ks, key, sess.window, sess.state.slots, sess.state.emissions, false,
             Emission::kEarly);
        ++sess.state.emissions;
        sess.state.early = false;
      }
    }
    early_sessions.clear();
  }

  // Emit what the watermark completed, re-emit late updates, drop what it closed.
  void on_watermark() {
    for (const auto& [end, key] : reemit) {
      if (KeyState* ks = keys.find(key)) emit_sliding(*ks, key, end, Emission::kLate);
    }
    reemit.clear();
    for (const std::string& key : reemit_sessions) {
      if (KeyState* ks = keys.find(key)) emit_sessions(*ks, key);
    }
    reemit_sessions.clear();
    while (!fire_at.empty() && fire_at.begin()->first <= watermark) {
      const int64_t end = fire_at.begin()->first;
      std::vector<KeyState*> ks = std::move(fire_at.begin()->second);
      fire_at.erase(fire_at.begin());
      std::sort(ks.begin(), ks.end());
      ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
      for (KeyState* st : ks) {
        if (sliding) {
          emit_sliding(*st, st->key, end, Emission::kOnTime);
        } else {
          emit_sessions(*st, st->key);
        }
      }
    }
    while (!close_at.empty() && close_at.begin()->first <= watermark) {
      std::vector<KeyState*> ks = std::move(close_at.begin()->second);
      close_at.erase(close_at.begin());
      std::sort(ks.begin(), ks.end());
      ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
      for (KeyState* stp : ks) {
        KeyState& st = *stp;
        if (sliding) {
          while (!st.panes.empty()) {
            auto last = sliding->last_window_of_pane(st.panes.begin()->first);
            if (last && !is_closed(*last, watermark, lateness)) break;
            recycle(std::move(st.panes.begin()->second));
            st.panes.erase(st.panes.begin());
            n_active.fetch_sub(1, std::memory_order_relaxed);
          }
          while (!st.emitted.empty() &&
                 is_closed(TimeWindow{st.emitted.begin()->first - sliding->size(),
                                      st.emitted.begin()->first},
                           watermark, lateness)) {
            st.emitted.erase(st.emitted.begin());
          }
          if (st.panes.empty()) st.emptied_at = watermark;  // swept later (sweep_and_oldest)
        } else {
          size_t dropped = 0;
          st.sessions->pop_closed(watermark, lateness, [&](const TimeWindow&, SessionState&&) {
            ++dropped;
          });
          n_active.fetch_sub(dropped, std::memory_order_relaxed);
          if (st.sessions->empty()) st.emptied_at = watermark;
        }
      }
    }
  }

  // Earliest event time still held by open state (kMaxTime if none); also forgets keys whose
  // windows all closed a while ago (kept meanwhile so that a key's next window reuses its state
  // instead of reallocating it).
  int64_t sweep_and_oldest() {
    const WindowConfig& w = cfg.window;
    const int64_t keep = std::max<int64_t>(60'000, 10 * std::max(w.size_ms, w.gap_ms));
    for (size_t i = keys.size(); i-- > 0;) {  // backwards: erase moves the last state into i
      KeyState& ks = *keys.all()[i];
      bool empty = ks.panes.empty() && (!ks.sessions || ks.sessions->empty()) &&
                   w.type != WindowType::kCount && w.type != WindowType::kGlobal;
      for (const RuleState& rs : ks.rules) empty = empty && rs.idle();
      if (!empty) {
        ks.emptied_at = kMaxTime;
      } else if (ks.emptied_at == kMaxTime) {
        ks.emptied_at = watermark;  // e.g. a rule was busy when its last window closed
      } else if (sat_add(ks.emptied_at, keep) < watermark) {
        keys.erase(&ks);
      }
    }
    n_keys.store(keys.size(), std::memory_order_relaxed);
    int64_t t = kMaxTime;
    for (const auto& ksp : keys.all()) {
      const KeyState& ks = *ksp;
      for (const auto& [p, s] : ks.panes) t = std::min(t, s.min_time);
      for (const auto& [p, s] : ks.count_panes) t = std::min(t, s.min_time);
      if (ks.sessions) {
        for (const auto& s : ks.sessions->sessions()) t = std::min(t, s.state.slots.min_time);
      }
    }
    return t;
  }

  Status append_all(const std::string& topic, uint32_t partitions,
                    const std::vector<std::string>& values, const std::vector<std::string>& rkeys,
                    const std::vector<bool>* has_key) {
    std::map<uint32_t, std::vector<RecordIn>> by_part;
    for (size_t i = 0; i < values.size(); ++i) {
      RecordIn r;
      r.value = values[i];
      const bool keyed = has_key == nullptr || (*has_key)[i];
      if (keyed) r.key = rkeys[i];
      const uint32_t p = keyed ? static_cast<uint32_t>(hash64(rkeys[i]) % partitions)
                               : static_cast<uint32_t>(i % partitions);
      by_part[p].push_back(r);
    }
    for (auto& [p, recs] : by_part) {
      SPATE_RETURN_IF_ERROR(retry_until_stopped(fmt::format("appending to {}[{}]", topic, p), [&] {
        return log->append(topic, p, recs.data(), recs.size()).status();
      }));
    }
    return Status::Ok();
  }

  // Runs `op` until it succeeds, waiting between attempts as the processors' RetryPolicy does
  // (exponential with jitter, capped at 5 s); gives up with the last error only on stop().
  template <typename Op>
  Status retry_until_stopped(const std::string& what, Op&& op) {
    process::RetryPolicy policy;
    policy.max_backoff_ms = 5000;
    for (int retry = 1;; ++retry) {
      Status st = op();
      if (st.ok()) return st;
      spdlog::warn("analytics {}: {}: {}", cfg.name, what, st.to_string());
      if (!sleep_for(policy.backoff_ms(retry, rng))) return st;
    }
  }
  std::mt19937_64 rng{std::random_device{}()};

  bool sleep_for(int64_t ms) {
    std::unique_lock lk(mu);
    return !cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return !running.load(); });
  }

  void run() {
    std::string key;
    std::string late_value;
    while (running.load()) {
      auto polled = consumer->poll();
      if (!polled.ok()) {
        spdlog::warn("analytics {}: poll failed: {}", cfg.name, polled.status().to_string());
        if (!sleep_for(500)) return;
        continue;
      }
      uint64_t events = 0;
      uint64_t late = 0;
      batches_since_checkpoint += polled->size();
      for (const process::PolledBatch& b : *polled) {
        const uint32_t wp = partition_index(b.tp);
        int64_t max_t = std::numeric_limits<int64_t>::min();
        for (const RecordView& r : b.records.records()) {
          simdjson::dom::element doc;
          auto t = read_event(r.value, r.timestamp_ms, &key, &doc);
          if (!t) continue;
          const Outcome o = aggregate(key, doc, *t);
          if (o == Outcome::kAggregated) {
            if (event_rules) evaluate_event_rules(key, doc, *t, wp, r.offset);
            if (cfg.window.early_ms > 0) note_early(key, *t);
            watermarks->observe(wp, *t);
            max_t = std::max(max_t, *t);
            ++events;
          } else {
            if (o == Outcome::kLate) {
              ++late;
            } else {
              n_overflow.fetch_add(1, std::memory_order_relaxed);
              if (m_overflow) m_overflow->inc();
            }
            if (!cfg.late_topic.empty()) {
              late_values.emplace_back(b.tp.partition, std::string(r.value));
              late_keys.emplace_back(r.has_key ? std::string(r.key) : std::string());
              late_has_key.push_back(r.has_key);
            }
          }
        }
        pending[b.tp].emplace_back(b.records.next_offset, max_t);
      }
      n_events.fetch_add(events, std::memory_order_relaxed);
      n_late.fetch_add(late, std::memory_order_relaxed);
      if (m_events) m_events->inc(events);
      if (m_late) m_late->inc(late);
      watermark = watermarks->advance();
      wm_published.store(watermark, std::memory_order_relaxed);
      on_watermark();
      if (cfg.window.trigger_interval_ms > 0 && !global_dirty.empty() &&
          clock->now_ms() - last_global_ms >= cfg.window.trigger_interval_ms) {
        last_global_ms = clock->now_ms();
        fire_global_interval();
      }
      if (cfg.window.early_ms > 0 && clock->now_ms() - last_early_ms >= cfg.window.early_ms) {
        last_early_ms = clock->now_ms();
        emit_early();
      }
      if (!sequence_keys.empty() &&
          clock->now_ms() - last_sequence_ms >= cfg.pattern_interval_ms) {
        last_sequence_ms = clock->now_ms();
        advance_sequences();
      }
      // Results and late events first, offsets after: a crash repeats, never loses.
      for (auto& sink : sinks) {
        if (!retry_until_stopped("writing results to " + sink->describe(),
                                 [&] { return sink->write(rows, clock->now_ms()); })
                 .ok()) {
          return;
        }
      }
      rows.clear();
      if (!results.empty() && cfg.output.empty()) {
        n_results.fetch_add(results.size(), std::memory_order_relaxed);
        if (m_results) m_results->inc(results.size());
        results.clear();
        result_keys.clear();
      }
      if (!results.empty()) {
        if (!append_all(cfg.output, out_partitions, results, result_keys, nullptr).ok()) return;
        n_results.fetch_add(results.size(), std::memory_order_relaxed);
        if (m_results) m_results->inc(results.size());
        results.clear();
        result_keys.clear();
      }
      if (!late_values.empty()) {
        std::vector<std::string> vs;
        for (auto& [p, v] : late_values) vs.push_back(std::move(v));
        if (!append_all(cfg.late_topic, late_partitions, vs, late_keys, &late_has_key).ok()) return;
        late_values.clear();
        late_keys.clear();
        late_has_key.clear();
      }
      if (!batch_alerts.empty()) {
        std::vector<std::string> vs;
        std::vector<std::string> ks;
        for (const Alert& a : batch_alerts) {
          vs.push_back(a.to_json());
          ks.push_back(a.rule + '\x1f' + a.key_json);
        }
        if (!cfg.alerts_topic.empty() &&
            !append_all(cfg.alerts_topic, alert_partitions, vs, ks, nullptr).ok()) {
          return;
        }
        if (publish) {
          for (const Alert& a : batch_alerts) publish(a);
        }
        batch_alerts.clear();
      }
      if (m_active) m_active->set(static_cast<double>(n_active.load()));
      if (m_watermark_lag && watermark != kNoWatermark) {
        m_watermark_lag->set(static_cast<double>(clock->now_ms() - watermark) / 1000.0);
      }
      maybe_checkpoint(false);
      maybe_commit(false);
    }
    maybe_checkpoint(true);
    maybe_commit(true);
  }

  // Commit, per partition, the offsets of the batches whose events no open window holds
  // (at most every cleanup_interval: finding the oldest held event scans the key states).
  void maybe_commit(bool force) {
    const int64_t now = clock->now_ms();
    if (!force && now - last_commit_ms < cfg.cleanup_interval_ms) return;
    last_commit_ms = now;
    const int64_t oldest = sweep_and_oldest();
    std::map<process::TopicPartition, int64_t> commits;
    for (auto& [tp, q] : pending) {
      while (!q.empty() && q.front().second < oldest) {
        commits[tp] = q.front().first;
        q.pop_front();
      }
    }
    if (commits.empty()) return;
    if (Status s = consumer->commit(commits); !s.ok()) {
      spdlog::warn("analytics {}: committing offsets: {}", cfg.name, s.to_string());
    }
  }
};

RealTimeAnalyticsEngine::RealTimeAnalyticsEngine(AnalyticsConfig config, Log* log,
                                                 MetricsRegistry* metrics)
    : impl_(std::make_unique<Impl>(std::move(config), log, metrics)) {}

RealTimeAnalyticsEngine::~RealTimeAnalyticsEngine() { stop(); }

Status RealTimeAnalyticsEngine::initialize() { return impl_->init(); }

void RealTimeAnalyticsEngine::set_alert_handler(std::function<void(const Alert&)> publish) {
  impl_->publish = std::move(publish);
}

Status RealTimeAnalyticsEngine::start() {
  if (!impl_->consumer) return InvalidArgument("initialize() first");
  if (impl_->running.exchange(true)) return InvalidArgument("already running");
  impl_->thread = std::thread([this] { impl_->run(); });
  return Status::Ok();
}

void RealTimeAnalyticsEngine::stop() {
  {
    std::lock_guard lk(impl_->mu);
    impl_->running = false;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

AnalyticsStats RealTimeAnalyticsEngine::stats() const {
  AnalyticsStats s;
  s.events = impl_->n_events.load(std::memory_order_relaxed);
  s.late = impl_->n_late.load(std::memory_order_relaxed);
  s.invalid = impl_->n_invalid.load(std::memory_order_relaxed);
  s.results = impl_->n_results.load(std::memory_order_relaxed);
  s.active_windows = impl_->n_active.load(std::memory_order_relaxed);
  s.watermark_ms = impl_->wm_published.load(std::memory_order_relaxed);
  s.keys = impl_->n_keys.load(std::memory_order_relaxed);
  s.overflow = impl_->n_overflow.load(std::memory_order_relaxed);
  s.checkpoints = impl_->n_checkpoints.load(std::memory_order_relaxed);
  s.state_bytes = impl_->state_bytes.load(std::memory_order_relaxed);
  s.restored = impl_->restored.load(std::memory_order_relaxed);
  s.patterns = impl_->n_patterns.load(std::memory_order_relaxed);
  s.anomalies = impl_->n_anomalies.load(std::memory_order_relaxed);
  s.alerts = impl_->n_alerts.load(std::memory_order_relaxed);
  return s;
}

const AnalyticsConfig& RealTimeAnalyticsEngine::config() const { return impl_->cfg; }

}  // namespace spate
