#include "analytics/moments.h"

#include "analytics/codec_internal.h"

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

void Moments::encode(std::string* out) const {
  codec::Writer w(out);
  w.u8('M');
  w.u8(1);
  w.varint(count);
  w.varint(rejected);
  w.f64(sum);
  w.f64(min);
  w.f64(max);
  w.f64(mean);
  w.f64(m2);
}

Result<Moments> Moments::decode(std::string_view in) {
  codec::Reader r(in);
  if (r.u8() != 'M' || r.u8() != 1) return Corruption("moments: bad header");
  Moments m;
  m.count = r.varint();
  m.rejected = r.varint();
  m.sum = r.f64();
  m.min = r.f64();
  m.max = r.f64();
  m.mean = r.f64();
  m.m2 = r.f64();
  if (!r.done()) return Corruption("moments: truncated or trailing bytes");
  if (m.count > 0 && !(std::isfinite(m.sum) && std::isfinite(m.mean) && m.min <= m.max &&
                       m.m2 >= 0 && std::isfinite(m.m2))) {
    return Corruption("moments: inconsistent values");
  }
  // Nothing but add() and merge() changes these, and neither does while count is 0: an empty
  // state with other values would carry them into the next add (e.g. a min below it).
  if (m.count == 0 && !(m.sum == 0 && m.mean == 0 && m.m2 == 0 &&
                        m.min == std::numeric_limits<double>::infinity() &&
                        m.max == -std::numeric_limits<double>::infinity())) {
    return Corruption("moments: inconsistent empty state");
  }
  return m;
}

}  // namespace spate::analytics
