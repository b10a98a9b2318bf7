#include "analytics/anomaly.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "analytics/codec_internal.h"

namespace spate::analytics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

double zscore(double x, double center, double scale) {
  if (scale > 0) return (x - center) / scale;
  if (x == center) return 0;
  return x > center ? kInf : -kInf;
}

uint32_t saturate32(uint64_t n) {
  return n > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                  : static_cast<uint32_t>(n);
}

// The common part of observe(): warm-up, scoring, and whether x joins the baseline.
struct Verdict {
  AnomalyScore score;
  bool add = true;
};

Verdict judge(double x, double threshold, uint64_t n, uint32_t warmup, bool include, double center,
              double scale) {
  Verdict v;
  v.score.n = saturate32(n);
  v.score.baseline_mean = center;
  v.score.baseline_stddev = scale;
  if (n < warmup) {
    v.score.score = kNaN;
    return v;
  }
  v.score.score = zscore(x, center, scale);
  v.score.anomalous = std::fabs(v.score.score) > threshold;
  v.add = !v.score.anomalous || include;
  return v;
}

AnomalyScore rejected_score(uint64_t n, double center, double scale) {
  AnomalyScore s;
  s.score = kNaN;
  s.n = saturate32(n);
  s.baseline_mean = center;
  s.baseline_stddev = scale;
  return s;
}

Status check_window_config(const char* what, uint32_t window, uint32_t warmup) {
  if (window < 2 || window > (1u << 20)) {
    return InvalidArgument(std::string(what) + ": window must be in [2, 1048576], got " +
                           std::to_string(window));
  }
  if (warmup < 2 || warmup > window) {
    return InvalidArgument(std::string(what) + ": warmup must be in [2, window], got " +
                           std::to_string(warmup));
  }
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Configs

Status ZScoreConfig::validate() const {
  return check_window_config("anomaly", window, warmup);
}

Status EwmaConfig::validate() const {
  if (!(alpha > 0 && alpha <= 1)) {
    return InvalidArgument("anomaly: alpha must be in (0, 1], got " + std::to_string(alpha));
  }
  if (warmup < 2) {
    return InvalidArgument("anomaly: warmup must be >= 2, got " + std::to_string(warmup));
  }
  return Status::Ok();
}

Status AnomalyConfig::validate() const {
  switch (method) {
    case AnomalyMethod::kZScore:
    case AnomalyMethod::kMad:
      return window_config().validate();
    case AnomalyMethod::kEwma:
      return ewma_config().validate();
  }
  return InvalidArgument("anomaly: unknown method");
}

// ---------------------------------------------------------------------------------------------
// ValueRing

namespace detail {

bool ValueRing::push(double x, double* evicted) {
  const uint32_t cap = capacity();
  if (size_ < cap) {
    v_[(head_ + size_) % cap] = x;
    ++size_;
    return false;
  }
  *evicted = v_[head_];
  v_[head_] = x;
  head_ = (head_ + 1) % cap;
  return true;
}

void ValueRing::encode(std::string* out) const {
  codec::Writer w(out);
  w.varint(size_);
  for (uint32_t k = 0; k < size_; ++k) w.f64(at(k));
}

bool ValueRing::decode(codec::Reader& r) {
  const uint64_t size = r.varint();
  if (!r.ok() || size > capacity() || size * 8 > r.remaining()) return false;
  for (uint64_t k = 0; k < size; ++k) {
    v_[k] = r.f64();
    if (!std::isfinite(v_[k])) return false;
  }
  head_ = 0;
  size_ = static_cast<uint32_t>(size);
  return true;
}

}  // namespace detail

// Reads a window detector's header and ring: kInvalidArgument if the window differs.
static Status decode_ring(codec::Reader& r, char tag, const char* what, uint64_t* rejected,
                          detail::ValueRing* ring) {
  if (!r.header(tag, 1)) return Corruption(std::string(what) + ": bad header");
  const uint64_t window = r.varint();
  if (!r.ok()) return Corruption(std::string(what) + ": truncated");
  if (window != ring->capacity()) {
    return InvalidArgument(std::string(what) + ": encoded with another window");
  }
  *rejected = r.varint();
  if (!ring->decode(r)) return Corruption(std::string(what) + ": bad values");
  return Status::Ok();
}

static void encode_ring(codec::Writer& w, std::string* out, char tag, uint64_t rejected,
                        const detail::ValueRing& ring) {
  w.header(tag, 1);
  w.varint(ring.capacity());
  w.varint(rejected);
  ring.encode(out);
}

// ---------------------------------------------------------------------------------------------
// ZScoreState

ZScoreState::ZScoreState(const ZScoreConfig& config) : config_(config), ring_(config.window) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
}

double ZScoreState::mean() const {
  return ring_.size() ? mean_ : kNaN;
}

double ZScoreState::stddev() const {
  const uint32_t n = ring_.size();
  return n > 1 ? std::sqrt(std::max(0.0, m2_) / static_cast<double>(n - 1)) : kNaN;
}

AnomalyScore ZScoreState::observe(double x, double threshold) {
  if (!std::isfinite(x)) {
    ++rejected_;
    return rejected_score(ring_.size(), mean(), stddev());
  }
  const Verdict v = judge(x, threshold, ring_.size(), config_.warmup, config_.include_anomalies,
                          mean(), stddev());
  if (v.add) add(x);
  return v.score;
}

void ZScoreState::add(double x) {
  double old = 0;
  if (!ring_.push(x, &old)) {
    const double d = x - mean_;  // Welford
    mean_ += d / static_cast<double>(ring_.size());
    m2_ += d * (x - mean_);
  } else {
    const double n = static_cast<double>(ring_.size());  // replace old by x
    const double old_mean = mean_;
    mean_ += (x - old) / n;
    m2_ += (x - old) * (x - mean_ + old - old_mean);
    if (m2_ < 0) m2_ = 0;
  }
  if (++since_recompute_ >= config_.window) recompute();
}

void ZScoreState::recompute() {
  since_recompute_ = 0;
  const uint32_t n = ring_.size();
  double sum = 0;
  for (uint32_t k = 0; k < n; ++k) sum += ring_.at(k);
  mean_ = n ? sum / n : 0;
  double m2 = 0;
  for (uint32_t k = 0; k < n; ++k) m2 += (ring_.at(k) - mean_) * (ring_.at(k) - mean_);
  m2_ = m2;
}

void ZScoreState::encode(std::string* out) const {
  codec::Writer w(out);
  encode_ring(w, out, 'Z', rejected_, ring_);
  w.f64(mean_);
  w.f64(m2_);
  w.varint(since_recompute_);
}

Result<ZScoreState> ZScoreState::decode(std::string_view in, const ZScoreConfig& config) {
  SPATE_RETURN_IF_ERROR(config.validate());
  codec::Reader r(in);
  ZScoreState s(config);
  SPATE_RETURN_IF_ERROR(decode_ring(r, 'Z', "zscore", &s.rejected_, &s.ring_));
  s.mean_ = r.f64();
  s.m2_ = r.f64();
  const uint64_t since = r.varint();
  if (!r.done()) return Corruption("zscore: truncated or trailing bytes");
  if (!std::isfinite(s.mean_) || !std::isfinite(s.m2_) || s.m2_ < 0 || since >= config.window ||
      (s.ring_.size() == 0 && (s.mean_ != 0 || s.m2_ != 0))) {
    return Corruption("zscore: inconsistent values");
  }
  s.since_recompute_ = static_cast<uint32_t>(since);
  return s;
}

// ---------------------------------------------------------------------------------------------
// MadState

MadState::MadState(const MadConfig& config)
    : config_(config), ring_(config.window), scratch_(config.window) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
}

double MadState::median_of_scratch(uint32_t n) {
  auto mid = scratch_.begin() + n / 2;
  std::nth_element(scratch_.begin(), mid, scratch_.begin() + n);
  const double upper = *mid;
  if (n % 2) return upper;
  const double lower = *std::max_element(scratch_.begin(), mid);
  return lower + (upper - lower) / 2;
}

AnomalyScore MadState::observe(double x, double threshold) {
  const uint32_t n = ring_.size();
  double median = kNaN, scale = kNaN;
  if (n > 0) {
    for (uint32_t k = 0; k < n; ++k) scratch_[k] = ring_.at(k);
    median = median_of_scratch(n);
    double abs_sum = 0;
    for (uint32_t k = 0; k < n; ++k) {
      scratch_[k] = std::fabs(ring_.at(k) - median);
      abs_sum += scratch_[k];
    }
    const double mad = median_of_scratch(n);
    scale = mad > 0 ? mad / 0.6745 : 1.2533 * (abs_sum / n);
  }
  if (!std::isfinite(x)) {
    ++rejected_;
    return rejected_score(n, median, scale);
  }
  const Verdict v =
      judge(x, threshold, n, config_.warmup, config_.include_anomalies, median, scale);
  double evicted;
  if (v.add) ring_.push(x, &evicted);
  return v.score;
}

void MadState::encode(std::string* out) const {
  codec::Writer w(out);
  encode_ring(w, out, 'D', rejected_, ring_);
}

Result<MadState> MadState::decode(std::string_view in, const MadConfig& config) {
  SPATE_RETURN_IF_ERROR(config.validate());
  codec::Reader r(in);
  MadState s(config);
  SPATE_RETURN_IF_ERROR(decode_ring(r, 'D', "mad", &s.rejected_, &s.ring_));
  if (!r.done()) return Corruption("mad: truncated or trailing bytes");
  return s;
}

// ---------------------------------------------------------------------------------------------
// EwmaState

EwmaState::EwmaState(const EwmaConfig& config) : config_(config) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
}

double EwmaState::mean() const {
  return n_ ? mean_ : kNaN;
}
double EwmaState::stddev() const {
  return n_ ? std::sqrt(var_) : kNaN;
}

AnomalyScore EwmaState::observe(double x, double threshold) {
  if (!std::isfinite(x)) {
    ++rejected_;
    return rejected_score(n_, mean(), stddev());
  }
  const Verdict v =
      judge(x, threshold, n_, config_.warmup, config_.include_anomalies, mean(), stddev());
  if (v.add) add(x);
  return v.score;
}

void EwmaState::add(double x) {
  if (n_++ == 0) {
    mean_ = x;
    var_ = 0;
    return;
  }
  const double d = x - mean_;
  const double incr = config_.alpha * d;
  mean_ += incr;
  var_ = (1 - config_.alpha) * (var_ + d * incr);
}

void EwmaState::encode(std::string* out) const {
  codec::Writer w(out);
  w.header('E', 1);
  w.varint(n_);
  w.varint(rejected_);
  w.f64(mean_);
  w.f64(var_);
}

Result<EwmaState> EwmaState::decode(std::string_view in, const EwmaConfig& config) {
  SPATE_RETURN_IF_ERROR(config.validate());
  codec::Reader r(in);
  if (!r.header('E', 1)) return Corruption("ewma: bad header");
  EwmaState s(config);
  s.n_ = r.varint();
  s.rejected_ = r.varint();
  s.mean_ = r.f64();
  s.var_ = r.f64();
  if (!r.done()) return Corruption("ewma: truncated or trailing bytes");
  if (!std::isfinite(s.mean_) || !std::isfinite(s.var_) || s.var_ < 0 ||
      (s.n_ == 0 && (s.mean_ != 0 || s.var_ != 0))) {
    return Corruption("ewma: inconsistent values");
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// AnomalyState

namespace {
std::variant<ZScoreState, MadState, EwmaState> make_detector(const AnomalyConfig& c) {
  switch (c.method) {
    case AnomalyMethod::kMad:
      return MadState(c.window_config());
    case AnomalyMethod::kEwma:
      return EwmaState(c.ewma_config());
    case AnomalyMethod::kZScore:
      break;
  }
  return ZScoreState(c.window_config());
}

AnomalyConfig checked(const AnomalyConfig& c) {
  const Status s = c.validate();
  SPATE_CHECK(s.ok(), s.message());
  return c;
}
}  // namespace

AnomalyState::AnomalyState(const AnomalyConfig& config)
    : config_(checked(config)), state_(make_detector(config)) {}

Result<AnomalyState> AnomalyState::make(const AnomalyConfig& config) {
  SPATE_RETURN_IF_ERROR(config.validate());
  return AnomalyState(config);
}

AnomalyScore AnomalyState::observe(double x, double threshold) {
  return std::visit([&](auto& s) { return s.observe(x, threshold); }, state_);
}

void AnomalyState::encode(std::string* out) const {
  codec::Writer w(out);
  w.header('A', 1);
  w.u8(static_cast<uint8_t>(config_.method));
  std::visit([&](const auto& s) { s.encode(out); }, state_);
}

Result<AnomalyState> AnomalyState::decode(std::string_view in, const AnomalyConfig& config) {
  SPATE_RETURN_IF_ERROR(config.validate());
  codec::Reader r(in);
  if (!r.header('A', 1)) return Corruption("anomaly: bad header");
  const uint8_t method = r.u8();
  if (!r.ok() || method > static_cast<uint8_t>(AnomalyMethod::kEwma)) {
    return Corruption("anomaly: bad method");
  }
  if (method != static_cast<uint8_t>(config.method)) {
    return InvalidArgument("anomaly: encoded with another method");
  }
  const std::string_view rest = in.substr(3);
  AnomalyState a(config);
  switch (config.method) {
    case AnomalyMethod::kZScore: {
      SPATE_ASSIGN_OR_RETURN(a.state_, ZScoreState::decode(rest, config.window_config()));
      break;
    }
    case AnomalyMethod::kMad: {
      SPATE_ASSIGN_OR_RETURN(a.state_, MadState::decode(rest, config.window_config()));
      break;
    }
    case AnomalyMethod::kEwma: {
      SPATE_ASSIGN_OR_RETURN(a.state_, EwmaState::decode(rest, config.ewma_config()));
      break;
    }
  }
  return a;
}

}  // namespace spate::analytics
