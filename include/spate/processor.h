// KafkaStreamProcessor: a stream processor over Spate's log (the embedded log today, Kafka with
// the Kafka issue) — the reference design's class name, whatever the log is.
//
// A processor consumes its input topics as a consumer group (explicit assignment: replica i of
// n), runs every event through a chain of steps — filter (an expression), map (the transform
// rules of docs/ingestion.md: rename, set, remove, cast, default, mask, hash, ...), route (first
// matching condition picks the output topic) — and appends the results to output topics.
//
// Contract (this version):
//  - At-least-once: a batch's outputs are appended (durable under the log's fsync policy)
//    before its input offsets are committed, so a crash never loses an event but may repeat the
//    outputs of the batch in flight. With `exactly_once`, a batch's outputs and its input offsets
//    commit in one log transaction: after a crash each event's outputs are there exactly once
//    for read_committed readers.
//  - An event whose step fails (not JSON, a transform that cannot be applied, a route to a
//    missing topic) is a permanent error: it goes to `dead_letter_topic` with headers
//    error.class, error.message, attempts, source.topic, source.partition, source.offset,
//    processor, failed_at; without a dead-letter topic it is counted and skipped (never stops
//    the processor, never loops). A failed append of outputs is transient: retried with
//    exponential backoff and jitter (RetryPolicy) until it succeeds or stop() is called; the
//    offsets are then not committed, so nothing is lost.
//  - start() starts, per worker, a processing thread and a committer thread: the committer
//    delivers batch N (appends + offsets, or its transaction) while the worker processes N+1;
//    N+1 is delivered only after N succeeded, and is polled again with N if N failed. stats()
//    count a batch once it is delivered. stop() finishes the batch being delivered, abandons
//    the one in progress (or its retries; not committed, polled again on restart) and returns.
//    Thread-safe: start/stop from one controlling thread; stats() from any.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spate/ingestion.h"
#include "spate/log.h"
#include "spate/processor_api.h"
#include "spate/status.h"

namespace spate {

class MetricsRegistry;

/// One step of a processor's chain (pipeline key `processors[i].steps[j]`).
struct ProcessorStepConfig {
  std::string kind;                     // the step type: filter | map | route | mask | enrich |
                                        // sink | a plugin's type (processor_api.h)
  std::string filter;                   // filter: keep events where this is true
  std::vector<TransformConfig> rules;   // map: transform rules, as ingestion.transforms
  std::vector<RouteConfig> routes;      // route: first match picks the topic(s)
  OptionValue options;                  // {type: T, ...}: every key but `type`
  std::string file;                     // position, for errors
  int line = 0;
  int column = 0;
  std::string path;                     // "processors[0].steps[1]"
};

/// Pipeline key `processors[i]` (names follow the reference design's ProcessorConfig).
struct ProcessorConfig {
  std::string name;                   // unique; also the default consumer group
  std::string group;                  // consumer group ("" = "spate.processor.<name>")
  std::vector<std::string> inputs;    // topics consumed
  std::string output;                 // default output topic ("" = only routed events leave)
  std::string dead_letter_topic;      // permanent failures go here ("" = counted and skipped)
  std::vector<ProcessorStepConfig> steps;
  size_t batch_size = 500;            // records per poll
  int64_t poll_timeout_ms = 100;      // wait for records when none are available
  uint32_t replica = 0;               // explicit assignment: this replica ...
  uint32_t replicas = 1;              // ... of this many
  bool start_at_latest = false;       // start where no offset was committed: end, not start
  int max_retries = -1;               // appends of outputs: -1 = until they succeed or stop()
  int64_t retry_backoff_ms = 100;     // first retry wait (exponential, jitter, capped at 10 s)
  uint32_t workers = 1;               // threads; partitions are dealt over them
  int64_t processing_timeout_ms = 30'000;  // bound on retrying one event / one batch flush
  int64_t max_poll_interval_ms = 300'000;  // a batch taking longer is reported (metric, log)
  int64_t session_timeout_ms = 45'000;     // Kafka group membership (no effect on embedded)
  size_t buffer_size = 4 << 20;       // bytes fetched per poll at most
  bool exactly_once = false;          // outputs + offsets in one log transaction
  struct Breaker {
    double failure_rate = 0.5;
    int window = 20;
    int min_calls = 10;
    int consecutive_failures = 5;
    int64_t open_ms = 30'000;
    int half_open_probes = 1;
  } breaker;                          // per downstream (circuit_breaker:)
  std::string file;                   // position, for errors
  int line = 0;
  int column = 0;
  std::string path;                   // "processors[0]"
};

struct ProcessorStats {
  uint64_t consumed = 0;      // input records processed
  uint64_t produced = 0;      // output records appended
  uint64_t filtered = 0;      // dropped by a filter
  uint64_t dead_lettered = 0; // permanent failures written to the dead-letter topic
  uint64_t failed = 0;        // permanent failures (dead-lettered or skipped)
  uint64_t retries = 0;       // append retries
  uint64_t batches = 0;       // committed batches
  uint64_t pauses = 0;        // batches abandoned because a downstream's breaker was open
  uint64_t aborts = 0;        // transactions aborted (exactly_once)
  bool paused = false;        // now waiting for a breaker
};

/// A downstream's circuit-breaker state (for /status).
struct DownstreamStatus {
  std::string step;        // "processors[0].steps[2]"
  std::string downstream;  // the step's downstream()
  std::string state;       // closed | open | half_open
  uint64_t transitions = 0;
  int64_t retry_in_ms = 0;
};

/// Check a processor's steps (expressions, transform rules) without starting anything; every
/// problem as "FILE:LINE:COL: processors[i]...: message".
Status validate_processor(const ProcessorConfig& config);

class KafkaStreamProcessor {
 public:
  KafkaStreamProcessor(ProcessorConfig config, Log* log, MetricsRegistry* metrics = nullptr);
  ~KafkaStreamProcessor();
  KafkaStreamProcessor(const KafkaStreamProcessor&) = delete;
  KafkaStreamProcessor& operator=(const KafkaStreamProcessor&) = delete;

  /// Compile the steps, check the topics, open the consumer group.
  Status initialize();
  Status start();
  void stop();
  ProcessorStats stats() const;
  std::vector<DownstreamStatus> downstreams() const;
  /// Records of the assigned partitions not yet committed (as of each worker's last batch).
  int64_t total_lag() const;
  /// Partitions assigned to this processor's workers now (changes with Kafka rebalances).
  size_t assigned_partitions() const;
  /// Steps' extra state (EventProcessor::status_json of worker 0), as JSON object members.
  std::string steps_status_json() const;
  const ProcessorConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spate
