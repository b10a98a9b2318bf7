// Clock: wall and monotonic time behind an interface so tests can skew or freeze time.
//
// Contract: thread-safe. now_ms() is Unix epoch milliseconds (wall clock, may jump);
// steady_ns() is monotonic nanoseconds for measuring intervals.
#pragma once

#include <cstdint>

namespace spate {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ms() const = 0;
  virtual int64_t steady_ns() const = 0;
};

/// The real system clock.
Clock* system_clock();

}  // namespace spate
