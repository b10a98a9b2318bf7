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
//    outputs of the batch in flight. Exactly-once (log transactions) is still to come.
//  - An event whose step fails (not JSON, a transform that cannot be applied, a route to a
//    missing topic) is a permanent error: it goes to `dead_letter_topic` with headers
//    error.class, error.message, attempts, source.topic, source.partition, source.offset,
//    processor, failed_at; without a dead-letter topic it is counted and skipped (never stops
//    the processor, never loops). A failed append of outputs is transient: retried with
//    exponential backoff and jitter (RetryPolicy) until it succeeds or stop() is called; the
//    offsets are then not committed, so nothing is lost.
//  - start() starts one thread; stop() finishes the batch in progress (or abandons its retries)
//    and returns. Thread-safe: start/stop from one controlling thread; stats() from any.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spate/ingestion.h"
#include "spate/log.h"
#include "spate/status.h"

namespace spate {

class MetricsRegistry;

/// One step of a processor's chain (pipeline key `processors[i].steps[j]`).
struct ProcessorStepConfig {
  std::string kind;                     // filter | map | route
  std::string filter;                   // filter: keep events where this is true
  std::vector<TransformConfig> rules;   // map: transform rules, as ingestion.transforms
  std::vector<RouteConfig> routes;      // route: first match picks the topic(s)
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
  const ProcessorConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spate
