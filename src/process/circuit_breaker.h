// CircuitBreaker: one per downstream (a sink, an enrichment store). Closed, it lets calls
// through and watches their outcome; after too many failures it opens and refuses calls, so the
// processor pauses (the backlog stays in the log) instead of hammering a dead service; after a
// cool-down it lets a few probe calls through (half-open) and closes again when they succeed.
//
//   closed --(failure rate >= threshold over the last `window` calls, at least `min_calls`;
//             or `consecutive_failures` in a row)--> open
//   open --(open_ms elapsed)--> half_open
//   half_open --(`half_open_successes` probes succeed)--> closed
//   half_open --(a probe fails)--> open (cool-down starts again)
//
// Contract: thread-safe (one mutex; calls are short). Time comes from the injected Clock
// (steady_ns), so tests drive it. allow() must be paired with exactly one record_success() or
// record_failure() when it returned true; in half-open at most `half_open_probes` calls are
// allowed at once. Transitions are counted and reported to an optional listener (for metrics
// and /status), called outside the lock.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace spate {
class Clock;
}

namespace spate::process {

enum class BreakerState : uint8_t { kClosed, kOpen, kHalfOpen };

/// "closed", "open", "half_open".
const char* breaker_state_name(BreakerState s);

struct BreakerConfig {
  double failure_rate = 0.5;      // open when failures / calls >= this over the window
  int window = 20;                // the last N calls judged by the failure rate
  int min_calls = 10;             // ... once at least this many are in the window
  int consecutive_failures = 5;   // open after this many failures in a row (0 = off)
  int64_t open_ms = 30'000;       // cool-down before probing
  int half_open_probes = 1;       // calls allowed at once while half-open
  int half_open_successes = 1;    // successful probes needed to close
};

class CircuitBreaker {
 public:
  using Listener = std::function<void(BreakerState from, BreakerState to)>;

  CircuitBreaker(BreakerConfig config, const Clock* clock, Listener listener = nullptr);

  /// True if a call may go ahead now. While open, false until the cool-down has passed (then
  /// the breaker turns half-open and lets probes through).
  bool allow();
  void record_success();
  void record_failure();

  BreakerState state() const;
  /// Milliseconds until an open breaker lets a probe through (0 if not open).
  int64_t retry_in_ms() const;
  uint64_t transitions() const;
  /// Failures in the current window (for /status).
  int window_failures() const;
  int window_calls() const;

 private:
  int64_t now_ms() const;
  void transition(BreakerState to, std::vector<std::pair<BreakerState, BreakerState>>* events);
  void notify(const std::vector<std::pair<BreakerState, BreakerState>>& events);
  void reset_window();

  const BreakerConfig cfg_;
  const Clock* clock_;
  Listener listener_;
  mutable std::mutex mu_;
  BreakerState state_ = BreakerState::kClosed;
  std::vector<uint8_t> window_;  // ring of the last calls: 1 = failure
  size_t window_pos_ = 0;
  int window_calls_ = 0;
  int window_failures_ = 0;
  int consecutive_ = 0;
  int64_t opened_at_ms_ = 0;
  int probes_in_flight_ = 0;
  int probe_successes_ = 0;
  uint64_t transitions_ = 0;
};

}  // namespace spate::process
