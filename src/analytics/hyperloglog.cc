#include "analytics/hyperloglog.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <string>

#include "analytics/codec_internal.h"
#include "base/hash.h"

namespace spate::analytics {

Status HyperLogLogConfig::validate() const {
  if (precision < 4 || precision > 18) {
    return InvalidArgument("hyperloglog: precision must be in [4, 18], got " +
                           std::to_string(precision));
  }
  if (exact_threshold > (1u << 24)) {
    return InvalidArgument("hyperloglog: exact_threshold must be <= 16777216");
  }
  return Status::Ok();
}

HyperLogLog::HyperLogLog(const HyperLogLogConfig& config) : config_(config) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
  exact_ = config.exact_threshold > 0;
  if (!exact_) registers_.assign(size_t{1} << config_.precision, 0);
}

double HyperLogLog::standard_error() const {
  return 1.04 / std::sqrt(static_cast<double>(size_t{1} << config_.precision));
}

void HyperLogLog::add(std::string_view item) {
  add_hash(hash64(item));
}

void HyperLogLog::add_hash(uint64_t h) {
  if (h == 0) h = 1;
  if (!exact_) {
    register_add(h);
    return;
  }
  set_insert(h);
  if (set_size_ > config_.exact_threshold) convert_to_registers();
}

void HyperLogLog::register_add(uint64_t h) {
  const int p = config_.precision;
  const size_t idx = static_cast<size_t>(h >> (64 - p));
  const uint64_t w = h << p;
  // Rank: position of the first 1-bit in the remaining 64 - p bits, 64 - p + 1 if none.
  const int rank = w == 0 ? 64 - p + 1 : std::countl_zero(w) + 1;
  uint8_t& r = registers_[idx];
  if (rank > r) r = static_cast<uint8_t>(rank);
}

void HyperLogLog::set_insert(uint64_t h) {
  if (set_.empty()) set_.assign(16, 0);
  // Keep the load at most 1/2 so probes stay short.
  if ((size_t{set_size_} + 1) * 2 > set_.size()) {
    std::vector<uint64_t> old;
    old.swap(set_);
    set_.assign(old.size() * 2, 0);
    set_size_ = 0;
    for (uint64_t v : old) {
      if (v) set_insert(v);
    }
  }
  const size_t mask = set_.size() - 1;
  // The low bits feed the slot (the registers use the high bits, but the set is exact anyway).
  for (size_t i = static_cast<size_t>(h) & mask;; i = (i + 1) & mask) {
    if (set_[i] == h) return;
    if (set_[i] == 0) {
      set_[i] = h;
      ++set_size_;
      return;
    }
  }
}

void HyperLogLog::convert_to_registers() {
  exact_ = false;
  registers_.assign(size_t{1} << config_.precision, 0);
  for (uint64_t v : set_) {
    if (v) register_add(v);
  }
  std::vector<uint64_t>().swap(set_);
  set_size_ = 0;
}

Status HyperLogLog::merge(const HyperLogLog& o) {
  if (o.config_.precision != config_.precision ||
      o.config_.exact_threshold != config_.exact_threshold) {
    return InvalidArgument("hyperloglog: cannot merge sketches with different configurations");
  }
  if (&o == this) return Status::Ok();  // a set united with itself is itself
  if (o.exact_) {
    for (uint64_t v : o.set_) {
      if (!v) continue;
      if (exact_) {
        set_insert(v);
        if (set_size_ > config_.exact_threshold) convert_to_registers();
      } else {
        register_add(v);
      }
    }
    return Status::Ok();
  }
  if (exact_) convert_to_registers();
  // Distinct buffers (self-merge returned above): __restrict lets the compiler vectorize.
  uint8_t* __restrict a = registers_.data();
  const uint8_t* __restrict b = o.registers_.data();
  const size_t m = registers_.size();
  for (size_t i = 0; i < m; ++i) a[i] = a[i] < b[i] ? b[i] : a[i];
  return Status::Ok();
}

void HyperLogLog::encode(std::string* out) const {
  codec::Writer w(out);
  w.u8('H');
  w.u8(1);
  w.varint(static_cast<uint64_t>(config_.precision));
  w.varint(config_.exact_threshold);
  w.u8(exact_ ? 1 : 0);
  if (exact_) {
    // Sorted, so that the encoding depends only on the set (the table's slot order depends
    // on the insertion order, and decode() inserts in encoded order).
    std::vector<uint64_t> hashes;
    hashes.reserve(set_size_);
    for (uint64_t v : set_) {
      if (v) hashes.push_back(v);
    }
    std::sort(hashes.begin(), hashes.end());
    w.varint(hashes.size());
    for (uint64_t v : hashes) w.u64(v);
    return;
  }
  out->append(reinterpret_cast<const char*>(registers_.data()), registers_.size());
}

Result<HyperLogLog> HyperLogLog::decode(std::string_view in) {
  codec::Reader r(in);
  if (r.u8() != 'H' || r.u8() != 1) return Corruption("hyperloglog: bad header");
  const uint64_t p = r.varint();
  const uint64_t threshold = r.varint();
  HyperLogLogConfig c;
  c.precision = static_cast<int>(std::min<uint64_t>(p, 99));
  c.exact_threshold = static_cast<uint32_t>(std::min<uint64_t>(threshold, uint64_t{1} << 30));
  if (!r.ok() || !c.validate().ok()) return Corruption("hyperloglog: bad configuration");
  HyperLogLog h(c);
  const bool exact = r.u8() != 0;
  if (!r.ok() || (exact && c.exact_threshold == 0)) return Corruption("hyperloglog: bad mode");
  if (exact) {
    const uint64_t n = r.varint();
    if (!r.ok() || n > c.exact_threshold || n * 8 > r.remaining()) {
      return Corruption("hyperloglog: bad exact set");
    }
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t v = r.u64();
      if (v == 0) return Corruption("hyperloglog: zero hash in the exact set");
      h.set_insert(v);
    }
    if (h.set_size_ != n) return Corruption("hyperloglog: duplicate hashes in the exact set");
  } else {
    h.exact_ = false;
    h.registers_.assign(size_t{1} << c.precision, 0);
    const int max_rank = 64 - c.precision + 1;
    for (uint8_t& reg : h.registers_) {
      reg = r.u8();
      if (reg > max_rank) return Corruption("hyperloglog: register out of range");
    }
  }
  if (!r.done()) return Corruption("hyperloglog: truncated or trailing bytes");
  return h;
}

namespace {

// σ(x) = x + Σ_{k≥1} x^(2^k) · 2^(k−1)   (Ertl 2017, for the zero registers)
double sigma(double x) {
  if (x == 1) return std::numeric_limits<double>::infinity();
  double y = 1;
  double z = x;
  for (;;) {
    x *= x;
    const double prev = z;
    z += x * y;
    y += y;
    if (z == prev) return z;
  }
}

// τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))² · 2^−k) / 3   (for the saturated registers)
double tau(double x) {
  if (x == 0 || x == 1) return 0;
  double y = 1;
  double z = 1 - x;
  for (;;) {
    x = std::sqrt(x);
    const double prev = z;
    y *= 0.5;
    z -= (1 - x) * (1 - x) * y;
    if (z == prev) return z / 3;
  }
}

}  // namespace

double HyperLogLog::estimate() const {
  if (exact_) return static_cast<double>(set_size_);
  const int q = 64 - config_.precision;
  // Histogram of register values 0..q+1.
  uint32_t c[66] = {};
  for (uint8_t r : registers_) ++c[r];
  const double m = static_cast<double>(registers_.size());
  double z = m * tau(1 - c[q + 1] / m);
  for (int k = q; k >= 1; --k) z = 0.5 * (z + c[k]);
  z += m * sigma(c[0] / m);
  const double alpha_inf = 1 / (2 * std::log(2.0));
  return alpha_inf * m * m / z;
}

}  // namespace spate::analytics
