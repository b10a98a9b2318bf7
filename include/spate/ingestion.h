// DataIngestionEngine: Spate's front door. Events arrive (HTTP today; webhooks, files and
// databases are sources of the same engine), are decoded, checked and routed into log topics,
// and are acknowledged only once durable.
//
// Contract:
//  - submit() takes one request body (a JSON object, a JSON array of objects, or NDJSON),
//    splits it into events, rejects the bad ones with a reason each (and writes them to the
//    dead-letter topic when one is configured), and appends the good ones to their topic's
//    partitions. The completion callback runs exactly once, with per-event results:
//      ack = durable  (default): after every accepted event is durable in the log under its
//                     fsync policy (and every dead-lettered one too);
//      ack = buffered: as soon as the events are queued (lossy if the process dies).
//  - Backpressure: at most max_queue_size events are queued or being appended; a submit that
//    would exceed it is refused whole (IngestStatus::kOverloaded, HTTP 429) — nothing of it is
//    half accepted. Memory stays bounded by max_queue_size × max_event_bytes plus bodies.
//  - Thread safety: submit() may be called from any number of threads once start() returned.
//    initialize()/start()/stop() are called from one controlling thread. stop() refuses new
//    work, drains everything queued (each completion still runs), then stops the shard threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spate/log.h"
#include "spate/status.h"

namespace spate {

class MetricsRegistry;
class Clock;

enum class AckMode { kDurable, kBuffered };

/// One option of a source, as written in the pipeline file (validated by the source itself).
struct SourceOption {
  std::string value;               // scalar text (after ${VAR} interpolation)
  std::vector<std::string> items;  // for a list of scalars
  bool is_list = false;
  int line = 0;  // 1-based position of the value, for file:line:col errors
  int column = 0;
};

/// One entry of `ingestion.sources`. The keys other than type/name/topic are the source type's
/// own options; each source type validates them (see src/ingest/sources/).
struct SourceConfig {
  std::string type;   // registry key: "webhook", "file", "postgres", ...
  std::string name;   // unique among sources; the metric label `source`
  std::string topic;  // target topic ("" = ingestion.default_topic)
  std::map<std::string, SourceOption, std::less<>> options;
  std::string file;  // where this entry is, for errors
  int line = 0;
  int column = 0;
  std::string path;  // "ingestion.sources[2]"
};

/// Pipeline key `ingestion.dedup`: drop events whose key was stored within the TTL.
struct DedupConfig {
  std::vector<std::string> fields;   // dotted field paths; "$" = the whole payload; empty = off
  int64_t ttl_ms = 24LL * 3600 * 1000;
  std::string store = "embedded";    // embedded | redis
  size_t max_keys = 10'000'000;      // embedded: memory bound; oldest keys are evicted beyond it
  bool accept_on_store_error = false;  // on_store_error: accept | reject (default)
  std::string state_dir;             // snapshot / checkpoint directory (set by `spate run`)
  // store: redis (docs/configuration.md). The pipeline loader fills the defaults: redis_url from
  // $REDIS_URL, else redis://127.0.0.1:6379/0; redis_password from $REDIS_PASSWORD;
  // redis_key_prefix "spate:dedup:<pipeline name>:". Empty here = those defaults without the
  // environment (redis://127.0.0.1:6379/0, no password, "spate:dedup:").
  std::string redis_url;
  std::string redis_password;        // secret: never logged
  std::string redis_key_prefix;
  int64_t claim_ttl_ms = 30'000;     // an in-flight claim expires after this (a crashed claimer)
  int64_t redis_timeout_ms = 1000;   // connect and per-round-trip timeout
};

/// One entry of `ingestion.routes`: events matching `when` (an expression, docs/expressions.md;
/// empty = always) go to `topics`. The first matching route wins.
struct RouteConfig {
  std::string when;
  std::vector<std::string> topics;
  std::string file;  // position of `when`, for errors
  int line = 0;
  int column = 0;
  std::string path;  // "ingestion.routes[1]"
};

/// What a failing data-quality check does with the event (docs/ingestion.md "Data quality").
enum class QualityAction {
  kReject,      // reported to the sender as rejected (and dead-lettered if a DLQ is set)
  kDeadLetter,  // acknowledged, written to the dead-letter topic with the reason
  kTag,         // stored in its topic; header `spate.quality` names the failed checks
  kDrop,        // acknowledged and discarded (counted in `dropped` and a metric)
};

/// One entry of `ingestion.quality`. The check kind is the key that names it:
///   required: [f, ...] | range: f (min, max) | allowed: f (values) | regex: f (pattern) |
///   max_age: DURATION (field) | future_skew: DURATION (field) | expr: EXPRESSION
/// Checks on a field pass when the field is absent (use `required` for presence).
struct QualityCheckConfig {
  std::string kind;                 // required|range|allowed|regex|max_age|future_skew|expr
  std::string name;                 // metric label `check`; default "<kind>:<field>"
  std::vector<std::string> fields;  // dotted paths (required: one or more; others: one)
  std::optional<double> min, max;   // range, inclusive
  std::vector<std::string> values;  // allowed: JSON literal text of each value
  std::string pattern;              // regex (RE2 syntax, unanchored)
  int64_t duration_ms = 0;          // max_age / future_skew
  std::string expr;                 // expr: must be true for the event to pass
  QualityAction action = QualityAction::kReject;
  std::string file;  // where this entry is, for errors
  int line = 0;
  int column = 0;
  std::string path;  // "ingestion.quality[0]"
};

/// One entry of `ingestion.transforms`, applied in order after validation and quality checks
/// (docs/ingestion.md "Transforms"). The operation is the key that names its field:
///   rename: f (to) | set: f (value | expr) | remove: f or [f, ...] | cast: f (to) |
///   default: f (value) | mask: f (keep_first, keep_last, char | replacement) |
///   hash: f (key) | metadata: {received_at: f, source: f, request_id: f}
struct TransformConfig {
  std::string op;                   // rename|set|remove|cast|default|mask|hash|metadata
  std::vector<std::string> fields;  // the field(s) the op works on (remove: several)
  std::string to;                   // rename: new path; cast: int|double|string|bool
  std::string value_json;           // set/default constant, as JSON text
  std::string expr;                 // set: expression (instead of value)
  std::string when;                 // optional condition (expression) for the rule
  bool skip_on_error = false;       // on_error: skip (default reject: the event is rejected)
  int keep_first = 0, keep_last = 0;  // mask
  std::string mask_char = "*";        // mask
  std::optional<std::string> replacement;  // mask: replace the whole value with this string
  std::string key;                  // hash: HMAC-SHA256 key ("" = plain SHA-256)
  std::string received_at, source, request_id;  // metadata: target field paths ("" = not set)
  std::string file;  // where this entry is, for errors
  int line = 0;
  int column = 0;
  std::string path;  // "ingestion.transforms[0]"
};

/// Pipeline key `ingestion:` (names follow the reference design's IngestionConfig).
struct IngestionConfig {
  bool enabled = true;
  AckMode ack = AckMode::kDurable;
  size_t batch_size = 1000;            // max events per log append
  int64_t flush_interval_ms = 0;       // linger for a fuller batch (0: append what is queued)
  size_t max_queue_size = 100'000;     // events queued or in flight across all shards
  int max_workers = 2;                 // shard threads (appenders)
  size_t buffer_size = 1 << 16;        // per-connection read buffer hint (bytes)
  bool enable_compression = true;      // accept Content-Encoding gzip / zstd
  size_t max_body_bytes = 16 << 20;    // per request, after decompression
  size_t max_event_bytes = 1 << 20;    // per event
  size_t max_events_per_request = 100'000;  // more: the request is refused (413); 0 = no limit
  uint32_t max_depth = 64;             // JSON nesting depth per event
  std::string key_field;               // dotted path of the partitioning key ("" = none)
  std::string timestamp_field;         // dotted path of the event time ("" = arrival time)
  std::string default_topic;           // for POST /ingest (no topic in the path)
  std::string dead_letter_topic;       // rejected events go here with the reason ("" = none)
  bool all_or_nothing = false;         // one bad event rejects the whole request (400)
  bool allow_any_topic = false;        // POST /ingest/{topic} may name topics not in `topics:`
  std::vector<SourceConfig> sources;   // more sources besides POST /ingest (always on)
  DedupConfig dedup;
  std::vector<RouteConfig> routes;     // for events whose request names no topic
  std::string schema_file;             // JSON Schema (draft 7) every event must satisfy
  std::string schema;                  // ... or the schema inline, as JSON text
  std::vector<QualityCheckConfig> quality;    // data-quality checks, after the schema
  std::vector<TransformConfig> transforms;    // transform rules, after the quality checks
  const Clock* clock = nullptr;        // wall clock for arrival times and age checks (tests)
};

/// Where a request came from (for metrics and metadata).
struct IngestSource {
  std::string name = "http";  // metric label `source`
  std::string request_id;     // optional, echoed into the event headers
};

enum class BodyFormat { kAuto, kJson, kNdjson };

struct EventError {
  size_t index;        // 0-based position of the event in the request
  std::string reason;  // one line
};

enum class IngestStatus {
  kOk,           // processed: see accepted / rejected
  kBadRequest,   // the body as a whole is unusable (400), or all_or_nothing and a bad event
  kTooLarge,     // body over max_body_bytes (413)
  kUnsupported,  // unsupported media type / encoding (415)
  kNotFound,     // unknown topic (404)
  kOverloaded,   // queue full: retry later (429)
  kUnavailable,  // stopping, or the log failed (503)
};

struct IngestResult {
  IngestStatus status = IngestStatus::kOk;
  std::string message;  // for non-kOk statuses
  size_t accepted = 0;
  size_t rejected = 0;
  size_t duplicates = 0;  // acknowledged but not stored again (dedup)
  size_t dead_lettered = 0;  // acknowledged, quarantined by a quality check (dead_letter)
  size_t dropped = 0;        // acknowledged, discarded by a quality check (drop)
  std::vector<EventError> errors;
  int retry_after_seconds = 0;
  // kUnavailable because the log's disk is full (HTTP 507): nothing changes until space is
  // freed, so clients should back off longer than for a transient failure.
  bool storage_full = false;
};

struct IngestRequest {
  std::string topic;    // "" = default_topic
  std::string body;     // owned: events stay views into it until appended
  BodyFormat format = BodyFormat::kAuto;
  IngestSource source;
  /// Optional, one per event of the body in order (sources that read files or tables): every
  /// stored event then carries headers `spate.source` = source.name and `spate.pos` = its
  /// position, so that after a crash the source can find which of its input is already in the
  /// log (see stored_positions()) and neither skip nor repeat it. Ignored if the count differs.
  std::vector<std::string> event_positions;
};

/// Positions (header `spate.pos`) of the records of source `source` in every partition of
/// every topic, from the given start offsets (topic -> per-partition offsets; partitions not
/// listed are scanned from their start). Used by sources to recover after a crash.
Result<std::vector<std::string>> stored_positions(
    Log& log, std::string_view source,
    const std::map<std::string, std::vector<int64_t>>& from_offsets);

/// Visit every record of every topic from the given start offsets (topic -> per-partition
/// offsets; unlisted partitions from their start), as of the call. Stops at the first error.
Status for_each_record_since(Log& log,
                             const std::map<std::string, std::vector<int64_t>>& from_offsets,
                             const std::function<void(const FetchResult&, const RecordView&)>& fn);

/// Current end offsets of every partition of every topic (a source's checkpoint companion).
std::map<std::string, std::vector<int64_t>> end_offsets(Log& log);

class DataIngestionEngine {
 public:
  /// The engine opens and owns an embedded log configured by `log`.
  DataIngestionEngine(IngestionConfig config, LogConfig log, MetricsRegistry* metrics = nullptr);
  /// The engine appends to a log owned by the caller (which must outlive the engine).
  DataIngestionEngine(IngestionConfig config, Log* log, MetricsRegistry* metrics = nullptr);
  ~DataIngestionEngine();
  DataIngestionEngine(const DataIngestionEngine&) = delete;
  DataIngestionEngine& operator=(const DataIngestionEngine&) = delete;

  /// Open the log (if owned), check that the default and dead-letter topics exist.
  Status initialize();
  /// Start the shard threads.
  Status start();
  /// Refuse new work, drain what is queued, stop the threads. Idempotent.
  void stop();

  /// Process one request body; `done` runs exactly once (possibly before submit returns).
  void submit(IngestRequest request, std::function<void(IngestResult)> done);
  /// submit() and wait.
  IngestResult submit_sync(IngestRequest request);

  /// Events currently queued or being appended.
  size_t queued_events() const;
  const IngestionConfig& config() const;
  Log* log() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spate
