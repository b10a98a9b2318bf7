// HealthPublisher: processor heartbeats and health in Redis (the reference design's "Redis health
// tracking"), for dashboards and for orchestrators running on other machines.
//
// Every `interval_ms` it writes, per processor replica, a hash
//   <key_prefix>:<pipeline>:processor:<name>:<replica>
// with fields pipeline, processor, replica, replicas, workers, host, pid, heartbeat_ms, state
// (running | paused | degraded), consumed, produced, failed, dead_lettered, lag, error_rate
// (failed / consumed over the last interval), breaker (the worst breaker state of its
// downstreams: closed | half_open | open), exactly_once; the key expires after 3 intervals, so a
// dead process disappears by itself. The key is also added to the sorted set
// <key_prefix>:<pipeline> with the heartbeat time as score (members older than 3 intervals are
// removed at each beat).
//
// Contract: start() starts one thread; stop() joins it. Redis being down never affects the
// processors: a failed beat is logged once per outage (and counted in
// `spate_health_publish_failures_total`) and retried at the next interval on a new connection;
// every Redis call is bounded by a timeout of min(interval, 2 s). Thread-safe start/stop from
// one controlling thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "spate/config.h"
#include "spate/status.h"

namespace spate {

class KafkaStreamProcessor;
class MetricsRegistry;

class HealthPublisher {
 public:
  HealthPublisher(HealthConfig cfg, std::string pipeline,
                  std::vector<const KafkaStreamProcessor*> processors, MetricsRegistry* metrics);
  ~HealthPublisher();
  HealthPublisher(const HealthPublisher&) = delete;
  HealthPublisher& operator=(const HealthPublisher&) = delete;

  /// Checks the URL (kConfig if malformed) and starts the thread; the first beat is immediate.
  Status start();
  void stop();
  /// Beats written successfully so far.
  uint64_t beats() const { return beats_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<uint64_t> beats_{0};
};

}  // namespace spate
