#include "analytics/ddsketch.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "analytics/codec_internal.h"

namespace spate::analytics {

Status DDSketchConfig::validate() const {
  if (!(relative_accuracy > 0 && relative_accuracy < 1)) {
    return InvalidArgument("ddsketch: relative_accuracy must be in (0, 1), got " +
                           std::to_string(relative_accuracy));
  }
  if (max_buckets < 16) {
    return InvalidArgument("ddsketch: max_buckets must be >= 16, got " +
                           std::to_string(max_buckets));
  }
  return Status::Ok();
}

DDSketch::DDSketch(const DDSketchConfig& config)
    : config_(config),
      min_(std::numeric_limits<double>::infinity()),
      max_(-std::numeric_limits<double>::infinity()) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
  gamma_ = (1 + config.relative_accuracy) / (1 - config.relative_accuracy);
  log_gamma_ = std::log(gamma_);
  inv_log_gamma_ = 1 / log_gamma_;
  exact_ = config.exact_threshold > 0;
}

// Bucket i holds (γ^(i-1), γ^i]. Every finite nonzero double maps into int32 range:
// |log(x)| <= 745 and 1/log(γ) <= 1/log((1+α)/(1-α)), so for α >= 1e-6 the index is below 4e8.
int32_t DDSketch::index_of(double magnitude) const {
  return static_cast<int32_t>(std::ceil(std::log(magnitude) * inv_log_gamma_));
}

double DDSketch::value_of(int32_t index) const {
  return 2 * std::exp(index * log_gamma_) / (gamma_ + 1);
}

bool DDSketch::add(double x) {
  if (!std::isfinite(x)) return false;
  ++count_;
  if (x < min_) min_ = x;
  if (x > max_) max_ = x;
  if (exact_) {
    if (raw_.size() < config_.exact_threshold) {
      if (raw_.empty()) raw_.reserve(std::min<size_t>(config_.exact_threshold, 32));
      raw_.push_back(x);
      return true;
    }
    convert_to_buckets();
  }
  add_to_buckets(x);
  return true;
}

void DDSketch::add_to_buckets(double x) {
  if (x > 0) {
    positive_.add(index_of(x), 1, config_.max_buckets);
  } else if (x < 0) {
    negative_.add(index_of(-x), 1, config_.max_buckets);
  } else {
    ++zeros_;
  }
}

void DDSketch::convert_to_buckets() {
  exact_ = false;
  for (double x : raw_) add_to_buckets(x);
  std::vector<double>().swap(raw_);  // release the memory
}

Status DDSketch::merge(const DDSketch& o) {
  if (o.config_.relative_accuracy != config_.relative_accuracy ||
      o.config_.max_buckets != config_.max_buckets ||
      o.config_.exact_threshold != config_.exact_threshold) {
    return InvalidArgument("ddsketch: cannot merge sketches with different configurations");
  }
  if (o.count_ == 0) return Status::Ok();
  if (&o == this) {
    // Merging into itself: read from a snapshot (the copy is the point).
    const DDSketch copy = o;  // NOLINT(performance-unnecessary-copy-initialization)
    return merge(copy);
  }
  count_ += o.count_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
  if (exact_ && o.exact_ && raw_.size() + o.raw_.size() <= config_.exact_threshold) {
    raw_.insert(raw_.end(), o.raw_.begin(), o.raw_.end());
    return Status::Ok();
  }
  if (exact_) convert_to_buckets();
  if (o.exact_) {
    for (double x : o.raw_) add_to_buckets(x);
  } else {
    positive_.merge(o.positive_, config_.max_buckets);
    negative_.merge(o.negative_, config_.max_buckets);
    zeros_ += o.zeros_;
  }
  return Status::Ok();
}

namespace {
uint64_t rank_of(double q, uint64_t count) {
  if (!(q > 0)) q = 0;  // also maps NaN to 0
  if (q > 1) q = 1;
  return static_cast<uint64_t>(q * static_cast<double>(count - 1));
}
}  // namespace

void DDSketch::quantiles(std::span<const double> qs, std::span<double> out) const {
  SPATE_CHECK(out.size() >= qs.size(), "quantiles: output shorter than the input");
  if (count_ == 0 || !exact_) {
    for (size_t i = 0; i < qs.size(); ++i) out[i] = quantile(qs[i]);
    return;
  }
  std::vector<double> sorted(raw_);
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < qs.size(); ++i) out[i] = sorted[rank_of(qs[i], count_)];
}

double DDSketch::quantile(double q) const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  const uint64_t rank = rank_of(q, count_);
  if (exact_) {
    std::vector<double> sorted(raw_);
    auto nth = sorted.begin() + static_cast<long>(rank);
    std::nth_element(sorted.begin(), nth, sorted.end());
    return *nth;
  }
  // The extremes are kept exactly.
  if (rank == 0) return min_;
  if (rank == count_ - 1) return max_;
  // Walk ascending: negatives from the largest magnitude down, zeros, positives upwards.
  // The answer is the bucket holding the element of 0-based rank `rank`.
  uint64_t seen = 0;
  double v = 0;
  bool found = false;
  if (!negative_.empty()) {
    for (int32_t i = negative_.max_index(); i >= negative_.min_index(); --i) {
      seen += negative_.at(i);
      if (seen > rank) {
        v = -value_of(i);
        found = true;
        break;
      }
    }
  }
  if (!found) {
    seen += zeros_;
    if (seen > rank) {
      v = 0;
      found = true;
    }
  }
  if (!found && !positive_.empty()) {
    for (int32_t i = positive_.min_index(); i <= positive_.max_index(); ++i) {
      seen += positive_.at(i);
      if (seen > rank) {
        v = value_of(i);
        found = true;
        break;
      }
    }
  }
  if (!found) v = max_;  // unreachable: the counts add up to count_
  // Clamping to the exact extremes only moves the estimate towards the true value.
  return std::clamp(v, min_, max_);
}

// ---- encoding ----

namespace {

template <typename Store>
void encode_store(codec::Writer& w, const Store& s) {
  w.u8(s.collapsed() ? 1 : 0);
  if (s.empty()) {
    w.varint(0);
    return;
  }
  w.varint(static_cast<uint64_t>(s.max_index() - s.min_index()) + 1);
  w.svarint(s.min_index());
  for (int32_t i = s.min_index(); i <= s.max_index(); ++i) w.varint(s.at(i));
}

}  // namespace

void DDSketch::encode(std::string* out) const {
  codec::Writer w(out);
  w.u8('D');
  w.u8(1);
  w.f64(config_.relative_accuracy);
  w.varint(static_cast<uint64_t>(config_.max_buckets));
  w.varint(config_.exact_threshold);
  w.u8(exact_ ? 1 : 0);
  w.varint(count_);
  w.f64(min_);
  w.f64(max_);
  if (exact_) {
    w.varint(raw_.size());
    for (double x : raw_) w.f64(x);
    return;
  }
  w.varint(zeros_);
  encode_store(w, positive_);
  encode_store(w, negative_);
}

Result<DDSketch> DDSketch::decode(std::string_view in) {
  codec::Reader r(in);
  if (r.u8() != 'D' || r.u8() != 1) return Corruption("ddsketch: bad header");
  DDSketchConfig c;
  c.relative_accuracy = r.f64();
  const uint64_t max_buckets = r.varint();
  const uint64_t threshold = r.varint();
  if (!r.ok() || max_buckets > (1u << 24) || threshold > (1u << 24)) {
    return Corruption("ddsketch: bad configuration");
  }
  c.max_buckets = static_cast<int32_t>(max_buckets);
  c.exact_threshold = static_cast<uint32_t>(threshold);
  if (!c.validate().ok() || c.relative_accuracy < 1e-6) {
    return Corruption("ddsketch: bad configuration");
  }
  DDSketch s(c);
  const bool exact = r.u8() != 0;
  const uint64_t count = r.varint();
  const double min = r.f64();
  const double max = r.f64();
  if (!r.ok() || exact != (c.exact_threshold > 0 && count <= c.exact_threshold)) {
    return Corruption("ddsketch: bad mode");
  }
  if (count > 0 && !(std::isfinite(min) && std::isfinite(max) && min <= max)) {
    return Corruption("ddsketch: bad extremes");
  }
  if (exact) {
    const uint64_t n = r.varint();
    if (!r.ok() || n != count || n * 8 > r.remaining())
      return Corruption("ddsketch: bad raw values");
    for (uint64_t i = 0; i < n; ++i) {
      const double x = r.f64();
      if (!std::isfinite(x) || x < min || x > max) return Corruption("ddsketch: bad raw value");
      s.raw_.push_back(x);
    }
    // min and max are those of the raw values (quantile(0) and quantile(1) return them).
    if (n > 0 && (*std::min_element(s.raw_.begin(), s.raw_.end()) != min ||
                  *std::max_element(s.raw_.begin(), s.raw_.end()) != max)) {
      return Corruption("ddsketch: extremes are not those of the raw values");
    }
  } else {
    s.exact_ = false;
    s.zeros_ = r.varint();
    for (Store* st : {&s.positive_, &s.negative_}) {
      const bool collapsed = r.u8() != 0;
      const uint64_t width = r.varint();
      if (!r.ok() || width > static_cast<uint64_t>(c.max_buckets) || width > r.remaining()) {
        return Corruption("ddsketch: bad store");
      }
      if (width > 0) {
        const int64_t lo = r.svarint();
        if (lo < -(int64_t{1} << 30) || lo > (int64_t{1} << 30))
          return Corruption("ddsketch: bad index");
        for (uint64_t i = 0; i < width; ++i) {
          const uint64_t n = r.varint();
          if (n) st->add(static_cast<int32_t>(lo + static_cast<int64_t>(i)), n, c.max_buckets);
        }
      }
      st->set_collapsed(collapsed);
    }
    if (!r.ok() || s.zeros_ + s.positive_.total() + s.negative_.total() != count) {
      return Corruption("ddsketch: bucket counts do not add up");
    }
  }
  if (!r.done()) return Corruption("ddsketch: truncated or trailing bytes");
  s.count_ = count;
  s.min_ = count ? min : s.min_;
  s.max_ = count ? max : s.max_;
  return s;
}

// ---- Store ----

int32_t DDSketch::Store::reserve(int32_t index, int32_t max_buckets) {
  const int32_t size = static_cast<int32_t>(counts_.size());
  if (size > 0 && index >= offset_ && index < offset_ + size) return index;
  if (size == 0) {
    const int32_t slack = 16;
    // Start centred on the first index (values of a window are often of one magnitude).
    offset_ = index - slack / 2;
    counts_.assign(static_cast<size_t>(slack), 0);
    return index;
  }
  // The range that must be covered: current nonzero range (or current allocation) plus index.
  const int32_t have_lo = total_ ? min_index_ : offset_;
  const int32_t have_hi = total_ ? max_index_ : offset_ + size - 1;
  int64_t need_lo = std::min(have_lo, index);
  int64_t need_hi = std::max(have_hi, index);
  int64_t lo = need_lo;
  int64_t hi = need_hi;
  if (need_hi - need_lo + 1 > max_buckets) {
    // Collapse the lowest buckets: keep [hi - max + 1, hi].
    lo = need_hi - max_buckets + 1;
    collapsed_ = true;
  } else {
    // Grow with slack on the side that grew, without exceeding max_buckets.
    const int64_t slack = std::max<int64_t>(16, size / 2);
    const int64_t room = max_buckets - (need_hi - need_lo + 1);
    const int64_t extra = std::min(slack, room);
    if (index < offset_) {
      lo -= extra;
    } else {
      hi += extra;
    }
  }
  std::vector<uint64_t> grown(static_cast<size_t>(hi - lo + 1), 0);
  if (total_) {
    for (int32_t i = min_index_; i <= max_index_; ++i) {
      const uint64_t c = counts_[static_cast<size_t>(i - offset_)];
      if (c == 0) continue;
      const int64_t j = std::max<int64_t>(i, lo);
      grown[static_cast<size_t>(j - lo)] += c;
    }
    if (min_index_ < lo) min_index_ = static_cast<int32_t>(lo);
  }
  counts_.swap(grown);
  offset_ = static_cast<int32_t>(lo);
  return std::max(index, offset_);
}

void DDSketch::Store::add(int32_t index, uint64_t n, int32_t max_buckets) {
  index = reserve(index, max_buckets);
  counts_[static_cast<size_t>(index - offset_)] += n;
  if (total_ == 0) {
    min_index_ = max_index_ = index;
  } else {
    if (index < min_index_) min_index_ = index;
    if (index > max_index_) max_index_ = index;
  }
  total_ += n;
}

void DDSketch::Store::merge(const Store& o, int32_t max_buckets) {
  if (o.total_ == 0) return;
  collapsed_ = collapsed_ || o.collapsed_;
  // Make room for o's whole range first (top, then bottom: a collapse, if any, happens against
  // the final top), then add bucket by bucket without range checks.
  add(o.max_index_, 0, max_buckets);
  const int32_t lo = reserve(o.min_index_, max_buckets);
  for (int32_t i = o.min_index_; i <= o.max_index_; ++i) {
    const uint64_t c = o.at(i);
    if (c == 0) continue;
    const int32_t j = std::max(i, lo);
    counts_[static_cast<size_t>(j - offset_)] += c;
    if (j < min_index_) min_index_ = j;
  }
  total_ += o.total_;
}

}  // namespace spate::analytics
