// Moments and FirstLast: the small, fixed-size aggregate states behind count, sum, avg, min, max,
// variance/stddev and first/last.
//
// Contract: both are plain values (no locking; one owner at a time, like every aggregate state in
// the engine's shard model). Updates never allocate. Both are mergeable: for any split of a
// stream into parts, merging the states of the parts (in any order) gives the state of the whole
// stream — exactly for count/min/max/first/last, and up to floating-point rounding for
// sum/mean/variance (Chan et al.'s pairwise update, which is numerically stable).
//
// Moments::add() ignores NaN and ±infinity (returns false, counts them in `rejected`), so one bad
// value cannot poison a window's sum; the engine decides whether that is worth a metric.
//
// Every state of this folder has encode() (a versioned binary form for checkpoints) and
// decode(), which rejects malformed or inconsistent input with kCorruption and never reads past
// it; decode(encode(x)) behaves exactly like x.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "analytics/codec_internal.h"
#include "spate/status.h"

namespace spate::analytics {

/// count, sum, min, max, mean and the second central moment (Welford's online algorithm).
struct Moments {
  uint64_t count = 0;
  uint64_t rejected = 0;  // non-finite inputs ignored by add()
  double sum = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double mean = 0;
  double m2 = 0;  // sum of squared deviations from the mean

  /// Adds one value. Returns false (and changes nothing but `rejected`) for NaN or ±infinity.
  bool add(double x) {
    if (!std::isfinite(x)) {
      ++rejected;
      return false;
    }
    ++count;
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
    const double delta = x - mean;
    mean += delta / static_cast<double>(count);
    m2 += delta * (x - mean);
    return true;
  }

  /// this := state of (this stream ∪ other stream). Chan, Golub & LeVeque's parallel update.
  void merge(const Moments& other);

  /// Appends a versioned binary encoding (for checkpoints) to *out.
  void encode(std::string* out) const;
  /// Parses encode()'s output; kCorruption if it is malformed or inconsistent.
  static Result<Moments> decode(std::string_view in);

  bool empty() const { return count == 0; }
  /// Mean of the values; NaN when empty.
  double avg() const { return count ? mean : std::numeric_limits<double>::quiet_NaN(); }
  /// Population variance (divide by n); NaN when empty.
  double variance_population() const {
    return count ? clamp0(m2 / static_cast<double>(count))
                 : std::numeric_limits<double>::quiet_NaN();
  }
  /// Sample variance (divide by n − 1); NaN for fewer than two values.
  double variance_sample() const {
    return count > 1 ? clamp0(m2 / static_cast<double>(count - 1))
                     : std::numeric_limits<double>::quiet_NaN();
  }
  double stddev_population() const { return std::sqrt(variance_population()); }
  double stddev_sample() const { return std::sqrt(variance_sample()); }

 private:
  static double clamp0(double v) { return v < 0 ? 0 : v; }
};

/// The first and last value of a stream by event time; ties are broken by arrival order
/// (`seq`, which the caller assigns increasing across the whole stream — e.g. the log offset —
/// so that merging parts stays exact). first = smallest (time, seq), last = largest (time, seq).
/// V is copied on update; use a trivially copyable V (a number, an id) for allocation-free
/// updates.
template <typename V>
struct FirstLast {
  bool has_value = false;
  int64_t first_time = 0;
  uint64_t first_seq = 0;
  V first{};
  int64_t last_time = 0;
  uint64_t last_seq = 0;
  V last{};

  void add(int64_t event_time, uint64_t seq, const V& v) {
    if (!has_value) {
      has_value = true;
      first_time = last_time = event_time;
      first_seq = last_seq = seq;
      first = last = v;
      return;
    }
    if (event_time < first_time || (event_time == first_time && seq < first_seq)) {
      first_time = event_time;
      first_seq = seq;
      first = v;
    }
    if (event_time > last_time || (event_time == last_time && seq > last_seq)) {
      last_time = event_time;
      last_seq = seq;
      last = v;
    }
  }

  /// Binary encoding for checkpoints (arithmetic V only); decode() is kCorruption on bad input.
  void encode(std::string* out) const requires std::is_arithmetic_v<V> {
    codec::Writer w(out);
    w.u8('F');
    w.u8(1);
    w.u8(has_value ? 1 : 0);
    if (!has_value) return;
    w.svarint(first_time);
    w.varint(first_seq);
    put(w, first);
    w.svarint(last_time);
    w.varint(last_seq);
    put(w, last);
  }
  static Result<FirstLast> decode(std::string_view in) requires std::is_arithmetic_v<V> {
    codec::Reader r(in);
    if (r.u8() != 'F' || r.u8() != 1) return Corruption("first/last: bad header");
    FirstLast fl;
    fl.has_value = r.u8() != 0;
    if (fl.has_value) {
      fl.first_time = r.svarint();
      fl.first_seq = r.varint();
      fl.first = get(r);
      fl.last_time = r.svarint();
      fl.last_seq = r.varint();
      fl.last = get(r);
    }
    if (!r.done()) return Corruption("first/last: truncated or trailing bytes");
    if (fl.has_value && (fl.last_time < fl.first_time ||
                         (fl.last_time == fl.first_time && fl.last_seq < fl.first_seq))) {
      return Corruption("first/last: last before first");
    }
    return fl;
  }

  void merge(const FirstLast& o) {
    if (!o.has_value) return;
    if (!has_value) {
      *this = o;
      return;
    }
    if (o.first_time < first_time || (o.first_time == first_time && o.first_seq < first_seq)) {
      first_time = o.first_time;
      first_seq = o.first_seq;
      first = o.first;
    }
    if (o.last_time > last_time || (o.last_time == last_time && o.last_seq > last_seq)) {
      last_time = o.last_time;
      last_seq = o.last_seq;
      last = o.last;
    }
  }

 private:
  // Integers are stored exactly (varint), floating point as its bits.
  static void put(codec::Writer& w, V v) {
    if constexpr (std::is_floating_point_v<V>) {
      w.f64(static_cast<double>(v));
    } else if constexpr (std::is_signed_v<V>) {
      w.svarint(static_cast<int64_t>(v));
    } else {
      w.varint(static_cast<uint64_t>(v));
    }
  }
  static V get(codec::Reader& r) {
    if constexpr (std::is_floating_point_v<V>) {
      return static_cast<V>(r.f64());
    } else if constexpr (std::is_signed_v<V>) {
      return static_cast<V>(r.svarint());
    } else {
      return static_cast<V>(r.varint());
    }
  }
};

}  // namespace spate::analytics
