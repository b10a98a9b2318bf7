// RealTimeAnalyticsEngine: windowed aggregations on event time over topics of Spate's log — the
// reference design's class, with its WindowConfig/WindowType and AggregationConfig/
// AggregationType (docs/analytics.md).
//
// An engine consumes its input topics as a consumer group (explicit assignment, replica i of n,
// like a processor), reads each JSON event's event time (a field, the log record's timestamp,
// or processing time), its
// group-by key (any set of fields) and the fields its aggregations need, keeps per-key window
// state and appends one JSON result per (window, key) to the `output` topic.
//
// Contract (this version):
//  - Time: the watermark is, per source partition, the largest event time seen minus
//    `max_out_of_orderness`, and globally the minimum over partitions that are not idle (no
//    event for `idle_timeout`). It only moves forward.
//  - A time window [start, end) is emitted once the watermark reaches `end` (result with
//    "final": false if allowed_lateness > 0, else true); events arriving later but before the
//    watermark reaches end + allowed_lateness update it and it is emitted again ("update"
//    counts the emissions); at end + allowed_lateness the window closes and its state is
//    dropped. An event all of whose windows are closed is
//    late: appended unchanged to `late_topic` (counted; dropped only if no late_topic is set,
//    and counted then too). Count windows emit when their n-th event arrives. Consumers keep
//    the latest result per (analytics, window, key); no extra result is emitted at close.
//  - Sliding windows keep state per pane (gcd of size and slide); a window's result merges its
//    panes, never recomputing from raw events.
//  - State and delivery: with checkpoint_dir set, the whole state (windows, rule states, alert
//    episodes, watermarks) and the input positions are checkpointed together every
//    checkpoint_interval_ms, after that batch's results and alerts were written; a restart
//    restores it and continues from those positions, so the results (and alerts) equal those of
//    an uninterrupted run; what was emitted after the checkpoint is emitted again (sinks upsert;
//    topics are at-least-once). Without a usable checkpoint the engine replays from the
//    committed offsets, which only advance past events no open window holds (approximate:
//    watermark and count-window positions restart; docs/analytics.md).
//  - Patterns and anomalies (`rules`): window rules run once per (key, window) on its first
//    emission; event rules per aggregated event; alerts go through an AlertManager (dedup,
//    cooldown) to alerts_topic and the alert handler.
//  - Bad events (not JSON, no event time, a non-numeric value for a numeric aggregation) are
//    counted per reason and skipped for that aggregation or entirely (no time); never crash.
//  - Thread safety: start()/stop() from one controlling thread; stats() from any thread. One
//    worker thread per engine.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "spate/alerts.h"
#include "spate/log.h"
#include "spate/status.h"

namespace spate {

class MetricsRegistry;

enum class WindowType { kTumbling, kSliding, kSession, kCount, kGlobal };

struct WindowConfig {
  WindowType type = WindowType::kTumbling;
  int64_t size_ms = 60'000;       // tumbling, sliding
  int64_t slide_ms = 0;           // sliding (0 = size: tumbling)
  int64_t gap_ms = 0;             // session: inactivity gap
  int64_t max_length_ms = 0;      // session: 0 = unbounded
  uint64_t count = 0;             // count: events per window
  uint64_t count_slide = 0;       // count: 0 = count (tumbling)
  int64_t allowed_lateness_ms = 0;
  uint64_t trigger_every = 0;     // global: emit a key's result every N of its events
  int64_t trigger_interval_ms = 0;  // global: emit changed keys every interval (processing time)
  bool purge = false;             // global: start afresh after each emission
  int64_t early_ms = 0;           // tumbling/sliding/session: also emit open windows that
                                  // changed, every early_ms of processing time ("early": true)
};

enum class AggregationType {
  kCount, kSum, kAvg, kMin, kMax, kStddev, kVariance, kPercentile, kDistinctCount, kTopK,
  kFirst, kLast, kCorrelation
};

struct AggregationConfig {
  std::string name;                 // output field; default "<type>" or "<type>_<field>"
  AggregationType type = AggregationType::kCount;
  std::string field;                // dotted path; required except for count
  std::string with;                 // correlation: the second field (Pearson r of field, with)
  std::vector<double> quantiles;    // percentile: default {0.5, 0.95, 0.99}
  double relative_error = 0.01;     // percentile (DDSketch α)
  uint32_t k = 10;                  // top_k: items reported
  uint32_t capacity = 0;            // top_k: counters kept (0 = max(10·k, 64))
  int precision = 12;               // distinct_count: HyperLogLog precision (1.6% std error)
  uint32_t exact_threshold = 1000;  // distinct_count: exact below this many distinct values
  bool sample = true;               // stddev/variance: sample (n-1) or population (n)
};

/// Pattern and anomaly rules (pipeline keys `analytics[i].patterns[j]` and
/// `analytics[i].anomalies[j]`, docs/analytics.md#patterns-and-anomalies). Window rules
/// (threshold, trend, correlation, anomaly on: window) are evaluated once per (key, window), on
/// the window's first emission; event rules (sequence, anomaly on: event) per event. Each rule
/// keeps per-key state (checkpointed) and raises alerts: firing, and resolved when its
/// condition clears.
enum class RuleType { kThreshold, kTrend, kCorrelation, kSequence, kAnomaly };

struct RuleConfig {
  std::string name;
  RuleType type = RuleType::kThreshold;
  std::string severity = "warning";  // info | warning | critical
  int64_t cooldown_ms = 300'000;     // re-notify a still-firing (rule, key) at most this often
  int max_per_minute = 0;            // notifications per rule and minute (0 = unlimited)
  // threshold: expressions over the window result (aggregate names are its fields, e.g.
  // `avg_latency_ms > 500`); resolve "" = when condition is false.
  std::string condition;
  std::string resolve;
  uint32_t for_windows = 1;          // threshold: consecutive breaching windows to fire
  int64_t for_ms = 0;                // threshold: and the breach held this long (0 = no bound)
  // trend, anomaly: the value observed — a result field (an aggregate's name) for window
  // rules, an event field for anomaly on: event.
  std::string value;
  uint32_t windows = 5;              // trend: least-squares fit over the last N windows
  double rising = 0;                 // trend: fire when slope/s >= rising (0 = not checked)
  double falling = 0;                // trend: fire when slope/s <= -falling (0 = not checked)
  // correlation: Pearson r of x and y. correlation_windows 0: x and y are event fields, r over
  // one window's events. correlation_windows N (>= 2; YAML `windows: N`): x and y are numeric
  // aggregates of this job (an aggregation's name, or `<percentile>.pNN`), r per key over the
  // (x, y) pairs of its last N windows (a window where either is null or non-finite is skipped).
  std::string x, y;
  uint32_t correlation_windows = 0;
  double min_abs_r = 0.8;            // correlation: fire when |r| >= this (YAML `threshold`)
  uint64_t min_count = 10;           // correlation: pairs needed (events, or windows: <= N)
  std::vector<std::string> steps;    // sequence: step conditions (expressions over events)
  std::string not_followed_by;       // sequence: absent step after the last one ("" = none)
  int64_t within_ms = 60'000;        // sequence: whole match within this
  bool per_event = false;            // anomaly: on: event (true) or window (false)
  std::string method = "zscore";     // anomaly: zscore | mad | ewma
  uint32_t baseline = 100;           // anomaly: values in the rolling baseline (zscore, mad)
  uint32_t warmup = 10;              // anomaly: values before scoring
  double threshold = 3.0;            // anomaly: |score| above it is anomalous
  double alpha = 0.1;                // anomaly (ewma): smoothing factor
  bool include_anomalies = false;    // anomaly: anomalous values join the baseline
  std::string file;                  // position, for errors
  int line = 0;
  int column = 0;
  std::string path;                  // "analytics[0].patterns[1]"
};

/// Where window results go besides the output topic (pipeline key `analytics[i].results[j]`).
/// Every kind upserts by (analytics, window_start, key); see docs/analytics.md#result-sinks.
struct ResultSinkConfig {
  std::string kind = "sqlite";  // sqlite (the embedded default) | postgres | redis | file | kafka
  std::string path;             // sqlite: database file (`spate run` fills "" with
                                // DATA_DIR/analytics.db; the engine needs it set);
                                // file: the NDJSON upsert log (required)
  std::string table;            // sqlite, postgres: "" = the job's name
  std::string url;              // postgres: libpq connection string or URL (key `url` or `dsn`,
                                // default $POSTGRES_URL); redis: redis:// or unix: URL (default
                                // $REDIS_URL, else redis://127.0.0.1:6379/0). May hold a
                                // password: never log it
  std::string key_prefix;       // redis: "" = "spate:<job>:"
  int64_t ttl_ms = 0;           // redis: key expiry (0 = none)
  int64_t connect_timeout_ms = 5'000;  // postgres
  int64_t timeout_ms = 0;       // per statement (postgres; 0 = 30 s) / connect and reply (redis;
                                // 0 = 5 s)
  std::string topic;              // kafka: the topic (required; compacted, keyed by window+key)
  std::string bootstrap_servers;  // kafka: "" = $KAFKA_BOOTSTRAP_SERVERS
};

/// Pipeline key `analytics[i]`.
struct AnalyticsConfig {
  std::string name;
  std::string group;                  // consumer group ("" = "spate.analytics.<name>")
  std::vector<std::string> inputs;
  std::string output;                 // results topic ("" = only the `results` sinks)
  std::vector<ResultSinkConfig> results;  // upserted by (analytics, window_start, key)
  std::string late_topic;             // late events ("" = counted and dropped)
  std::vector<std::string> key_by;    // group-by fields (empty = one global key)
  std::string time_field;             // event time: epoch ms number or RFC 3339 string;
                                      // "" = the log record's timestamp (set by ingestion from
                                      // its timestamp_field, else the arrival time)
  bool processing_time = false;       // use the time an event is read instead
  int64_t max_out_of_orderness_ms = 0;
  int64_t idle_timeout_ms = 30'000;   // 0 = partitions never count as idle
  WindowConfig window;
  std::vector<AggregationConfig> aggregations;
  std::vector<RuleConfig> rules;          // patterns and anomalies, in file order
  std::string alerts_topic;               // alerts (JSON) appended here ("" = none)
  size_t batch_size = 1000;
  int64_t poll_timeout_ms = 100;
  bool checkpoint_enabled = true;         // `spate run` sets checkpoint_dir (if "") to
                                          // DATA_DIR/checkpoints when enabled
  std::string checkpoint_dir;             // state checkpoints ("" = none: a restart rebuilds
                                          // state by replaying from the committed offsets)
  int64_t checkpoint_interval_ms = 10'000;
  uint64_t max_keys = 1'000'000;          // open keys; events of further keys overflow
  uint32_t workers = 1;                   // `spate run`: engines (threads) for this job, each
                                          // replica i of workers x replicas (aggregation_workers)
  uint32_t sequence_buffer = 100'000;     // sequence rules: events buffered per key until the
                                          // watermark passes them (window_buffer_size)
  int64_t cleanup_interval_ms = 200;      // how often idle keys are forgotten and offsets
                                          // committed (cleanup_interval)
  int64_t pattern_interval_ms = 0;        // sequence rules: least time between NFA advances
                                          // (pattern_detection_interval; 0 = every batch)
  uint32_t replica = 0;
  uint32_t replicas = 1;
  std::string file;                   // position, for errors
  int line = 0;
  int column = 0;
  std::string path;                   // "analytics[0]"
};

struct AnalyticsStats {
  uint64_t events = 0;        // events aggregated
  uint64_t late = 0;          // late events (to late_topic or dropped)
  uint64_t invalid = 0;       // events skipped (not JSON, no event time)
  uint64_t results = 0;       // window results appended
  uint64_t active_windows = 0;  // open (key, window) states now
  int64_t watermark_ms = 0;   // current watermark (INT64_MIN before any)
  uint64_t keys = 0;          // keys with state
  uint64_t overflow = 0;      // events of new keys refused at max_keys (late topic/dropped)
  uint64_t checkpoints = 0;   // checkpoints written by this process
  uint64_t state_bytes = 0;   // size of the last checkpoint (the state's encoded size)
  bool restored = false;      // this run started from a checkpoint
  uint64_t patterns = 0;      // pattern detections (threshold/trend/correlation firings, matches)
  uint64_t anomalies = 0;     // anomalous observations
  uint64_t alerts = 0;        // alerts notified (after dedup/cooldown)
};

class RealTimeAnalyticsEngine {
 public:
  RealTimeAnalyticsEngine(AnalyticsConfig config, Log* log, MetricsRegistry* metrics = nullptr);
  ~RealTimeAnalyticsEngine();
  RealTimeAnalyticsEngine(const RealTimeAnalyticsEngine&) = delete;
  RealTimeAnalyticsEngine& operator=(const RealTimeAnalyticsEngine&) = delete;

  /// Check the config and topics, open the consumer group.
  Status initialize();
  /// Alerts that pass dedup/cooldown are also handed to `publish` (after they were appended to
  /// alerts_topic, if set), on the engine's thread: it must not block (a NotifierDispatcher's
  /// publish() queues). Call before start().
  void set_alert_handler(std::function<void(const Alert&)> publish);
  Status start();
  /// Finish the batch in progress and stop (open windows are not emitted; their input is
  /// replayed on the next start).
  void stop();
  AnalyticsStats stats() const;
  const AnalyticsConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Check an analytics config (window sizes, aggregation options) without starting anything;
/// problems as "FILE:LINE:COL: analytics[i]...: message".
Status validate_analytics(const AnalyticsConfig& config);

inline std::string_view window_type_name(WindowType t) {
  switch (t) {
    case WindowType::kTumbling: return "tumbling";
    case WindowType::kSliding: return "sliding";
    case WindowType::kSession: return "session";
    case WindowType::kCount: return "count";
    case WindowType::kGlobal: return "global";
  }
  return "?";
}

inline std::string_view rule_type_name(RuleType t) {
  switch (t) {
    case RuleType::kThreshold: return "threshold";
    case RuleType::kTrend: return "trend";
    case RuleType::kCorrelation: return "correlation";
    case RuleType::kSequence: return "sequence";
    case RuleType::kAnomaly: return "anomaly";
  }
  return "?";
}

inline std::string_view aggregation_type_name(AggregationType t) {
  switch (t) {
    case AggregationType::kCount: return "count";
    case AggregationType::kSum: return "sum";
    case AggregationType::kAvg: return "avg";
    case AggregationType::kMin: return "min";
    case AggregationType::kMax: return "max";
    case AggregationType::kStddev: return "stddev";
    case AggregationType::kVariance: return "variance";
    case AggregationType::kPercentile: return "percentile";
    case AggregationType::kDistinctCount: return "distinct_count";
    case AggregationType::kTopK: return "top_k";
    case AggregationType::kFirst: return "first";
    case AggregationType::kLast: return "last";
    case AggregationType::kCorrelation: return "correlation";
  }
  return "?";
}

}  // namespace spate
