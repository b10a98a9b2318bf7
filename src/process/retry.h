// Retry policy for processors and sinks: exponential backoff with jitter, a bound on attempts,
// and the transient/permanent distinction (a permanent error is never retried).
//
// Contract: RetryPolicy is a plain value; backoff_ms() is a pure function of the attempt number
// and the random source passed in (tests pass a seeded one), so it is thread-safe as long as each
// thread uses its own random source.
#pragma once

#include <cstdint>
#include <random>

namespace spate::process {

/// How an error should be treated by retries and dead-lettering.
enum class ErrorClass : uint8_t {
  kTransient,  // may succeed later (timeout, connection refused, 503): retried
  kPermanent,  // will fail again (bad input, 4xx, constraint violation): dead-lettered at once
};

struct RetryPolicy {
  int max_retries = 3;               // retries after the first attempt (0 = no retry)
  int64_t initial_backoff_ms = 100;  // before the first retry
  int64_t max_backoff_ms = 30'000;   // cap of any single wait
  double multiplier = 2.0;           // growth per retry
  double jitter = 0.5;               // 0: exact; j in (0, 1]: the wait is drawn from [(1-j)·b, b]

  /// True if an error of class `c` after `attempts` attempts (>= 1) should be tried again.
  bool should_retry(ErrorClass c, int attempts) const {
    return c == ErrorClass::kTransient && attempts <= max_retries;
  }

  /// The wait before retry number `retry` (1-based): min(max, initial · multiplier^(retry-1)),
  /// reduced by up to `jitter` of itself at random so that many failing callers spread out.
  int64_t backoff_ms(int retry, std::mt19937_64& rng) const;
};

}  // namespace spate::process
