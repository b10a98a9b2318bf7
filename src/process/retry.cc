#include "process/retry.h"

#include <algorithm>
#include <cmath>

namespace spate::process {

int64_t RetryPolicy::backoff_ms(int retry, std::mt19937_64& rng) const {
  if (retry < 1) retry = 1;
  const double base = static_cast<double>(std::max<int64_t>(0, initial_backoff_ms)) *
                      std::pow(std::max(1.0, multiplier), retry - 1);
  const double capped = std::min(base, static_cast<double>(std::max<int64_t>(0, max_backoff_ms)));
  const double j = std::clamp(jitter, 0.0, 1.0);
  if (j == 0 || capped <= 0) return static_cast<int64_t>(capped);
  std::uniform_real_distribution<double> dist((1.0 - j) * capped, capped);
  return static_cast<int64_t>(dist(rng));
}

}  // namespace spate::process
