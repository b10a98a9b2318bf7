#include "analytics/moments.h"

namespace spate::analytics {

void Moments::merge(const Moments& o) {
  rejected += o.rejected;
  if (o.count == 0) return;
  if (count == 0) {
    const uint64_t rej = rejected;
    *this = o;
    rejected = rej;
    return;
  }
  const double na = static_cast<double>(count);
  const double nb = static_cast<double>(o.count);
  const double n = na + nb;
  const double delta = o.mean - mean;
  mean += delta * (nb / n);
  m2 += o.m2 + delta * delta * (na * nb / n);
  count += o.count;
  sum += o.sum;
  if (o.min < min) min = o.min;
  if (o.max > max) max = o.max;
}

}  // namespace spate::analytics
