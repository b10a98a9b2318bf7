// Scaling and healing arithmetic, free of processes and clocks (every call takes `now_ms`), so
// that tests can drive it with an injected clock.
//
// Autoscaler (one per component): recommend() turns one metrics sample into a desired replica
// count; decide() applies the cooldowns and the scale-down stabilisation window to it.
//  - metric targets: desired = ceil(current × value / target), where value is the per-replica
//    mean; within the tolerance band (|value/target − 1| <= tolerance) the metric asks for
//    `current` (no action).
//  - consumer lag: desired = ceil(total_lag / target_consumer_lag), capped at the partition
//    count; within the tolerance band of current × target it asks for `current`.
//  - the recommendation is the highest any target asks for, clamped to [min, max].
//  - decide(): scaling up waits for scale_up_cooldown since the last scaling, scaling down for
//    scale_down_cooldown; a scale-down goes to the highest recommendation seen within the
//    stabilisation window (so a short dip never scales down).
//
// RestartBackoff (one per replica): delay() before the next restart = initial × 2^(k−1) for the
// k-th restart within the crash-loop window, capped at max, times a jitter factor; crash_loop()
// once `crash_loop_restarts` restarts fall within the window.
//
// Thread safety: none; each object belongs to the orchestrator's monitor thread.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "spate/orchestrator.h"

namespace spate::orchestrate {

/// One component's metrics as the monitor last saw them (absent values are < 0).
struct ScalingSample {
  int current = 0;               // replicas running now
  int partitions = 0;            // input partitions (0 = unknown: lag is not capped)
  double total_lag = -1;         // sum of stream_consumer_lag over the replicas
  double cpu_utilization = -1;   // mean per replica, of resources.cpu
  double memory_utilization = -1;
  double queue_size = -1;        // mean ingestion_queue_size per replica
  double processing_time_ms = -1;  // mean per batch
};

struct Recommendation {
  int replicas = 0;
  std::string reason;  // which target drove it, e.g. "consumer_lag 52000 / 10000"
};

struct ScalingDecision {
  int replicas = 0;     // == current: nothing to do
  std::string reason;   // why (or why not: "cooldown: 120s of 300s")
};

class Autoscaler {
 public:
  explicit Autoscaler(ScalingPolicy policy) : policy_(std::move(policy)) {}
  const ScalingPolicy& policy() const { return policy_; }

  /// The desired replica count for one sample (no cooldowns applied).
  Recommendation recommend(const ScalingSample& s) const;
  /// recommend() + cooldowns + stabilisation at `now_ms`. Records the recommendation.
  ScalingDecision decide(const ScalingSample& s, int64_t now_ms);
  /// A scaling happened at `now_ms` (by decide()'s advice or by hand): cooldowns start here.
  void scaled(int64_t now_ms);
  /// Restore the time of the last scaling (from the orchestrator's state file).
  void restore_last_scale(int64_t at_ms) { last_scale_ms_ = at_ms; }
  /// Count `replicas` as a recommendation at `now_ms`: a freshly started orchestrator does not
  /// scale down before a whole stabilisation window of samples has been seen.
  void seed(int64_t now_ms, int replicas) { history_.emplace_back(now_ms, replicas); }
  int64_t last_scale_ms() const { return last_scale_ms_; }

 private:
  ScalingPolicy policy_;
  int64_t last_scale_ms_ = INT64_MIN / 2;
  std::deque<std::pair<int64_t, int>> history_;  // (time, recommendation) within the window
};

class RestartBackoff {
 public:
  explicit RestartBackoff(HealingPolicy policy) : policy_(std::move(policy)) {}

  /// A restart is due now: record it and return how long to wait before it (ms). `unit` is a
  /// random number in [0, 1) that picks the jitter.
  int64_t next_delay_ms(int64_t now_ms, double unit);
  /// Restarts within the window (after dropping older ones).
  int restarts_in_window(int64_t now_ms);
  bool crash_loop(int64_t now_ms) { return restarts_in_window(now_ms) >= policy_.crash_loop_restarts; }
  void reset() { restarts_.clear(); }

 private:
  HealingPolicy policy_;
  std::deque<int64_t> restarts_;
};

/// Health score of one replica, 0..1: 0 when it does not run or answer; otherwise 0.4 for
/// answering /health, 0.3 for /ready, up to 0.15 for its error rate (1 − rate/5%) and up to
/// 0.15 for its lag (1 when under target or no target, target/lag otherwise).
double replica_health(bool alive, bool healthy, bool ready, double error_rate, double lag,
                      double lag_target);

}  // namespace spate::orchestrate
