// Anomaly detectors the analytics engine drives per key: a rolling z-score over the last
// `window` values (ZScoreState), its robust variant on the median and the median absolute
// deviation (MadState), and an exponentially weighted one (EwmaState); AnomalyState holds any
// of the three behind one config (AnomalyConfig / AnomalyMethod) for the engine.
//
// Common semantics of observe(x, threshold) -> AnomalyScore:
//   - x is scored against the baseline of the values BEFORE it (so a spike cannot hide itself),
//     then added to the baseline — except when it was anomalous and include_anomalies is false
//     (so a spike does not inflate the baseline; the price is that a permanent level shift stays
//     anomalous for a window-based method until include_anomalies is set, while EWMA with
//     include_anomalies adapts at the rate alpha).
//   - Warm-up: while fewer than `warmup` values are in the baseline there is no score
//     (score = NaN, anomalous = false) and x is always added. `n` is the number of values in
//     the baseline before x (for EWMA: values folded in, saturating).
//   - score = (x − center) / scale; anomalous iff |score| > threshold (a NaN threshold never
//     fires). A zero scale (constant baseline) gives score 0 when x equals the center, else
//     ±infinity (anomalous for every finite threshold).
//   - A non-finite x is ignored: not added, score NaN, not anomalous, counted in rejected().
//   - baseline_mean / baseline_stddev report center and scale (NaN while undefined, e.g. an
//     empty baseline).
//
// Contract: plain values, not synchronized — one owner at a time (the shard that owns the key);
// configs are immutable. Memory is fixed by the config (ring buffers allocated at
// construction); observe() never allocates. Constructors require a valid config (checked,
// fatal otherwise); AnomalyState::make() returns the validation error instead. encode() writes
// a versioned binary form for checkpoints; decode(bytes, config) gives kCorruption on
// malformed, truncated, trailing or inconsistent input, kInvalidArgument for an encoding made
// under an incompatible config (another method or window), never reads past its input, and the
// decoded state continues exactly like the encoded one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "spate/status.h"

namespace spate::analytics {

struct AnomalyScore {
  double score = 0;            // NaN during warm-up or for a rejected x
  double baseline_mean = 0;    // center: mean (z-score, EWMA) or median (MAD)
  double baseline_stddev = 0;  // scale: stddev, EW stddev, or the MAD-based sigma
  uint32_t n = 0;              // values in the baseline before x
  bool anomalous = false;
};

/// Config of the window-based detectors (ZScoreState, MadState).
struct ZScoreConfig {
  uint32_t window = 100;  // values in the baseline; in [2, 1<<20]
  uint32_t warmup = 10;   // values needed before scoring; in [2, window]
  bool include_anomalies = false;

  Status validate() const;
};
using MadConfig = ZScoreConfig;

struct EwmaConfig {
  double alpha = 0.1;    // weight of the newest value; in (0, 1]
  uint32_t warmup = 10;  // values folded in before scoring; >= 2
  bool include_anomalies = false;

  Status validate() const;
};

namespace codec {
class Reader;
}  // namespace codec

namespace detail {
// Ring of the last `capacity` doubles, oldest first. Internal to the window-based detectors.
class ValueRing {
 public:
  explicit ValueRing(uint32_t capacity) : v_(capacity) {}
  uint32_t size() const { return size_; }
  uint32_t capacity() const { return static_cast<uint32_t>(v_.size()); }
  bool full() const { return size_ == v_.size(); }
  /// k-th oldest value, k < size().
  double at(uint32_t k) const { return v_[(head_ + k) % v_.size()]; }
  /// Appends x; when full, overwrites the oldest and returns it through *evicted (true).
  bool push(double x, double* evicted);
  /// The values (count, then oldest first); the capacity is the caller's to record.
  void encode(std::string* out) const;
  /// Reads encode()'s values into this (empty) ring; false if malformed or too many.
  bool decode(codec::Reader& r);

 private:
  std::vector<double> v_;
  uint32_t head_ = 0;
  uint32_t size_ = 0;
};
}  // namespace detail

/// Rolling mean and sample stddev (n − 1) of the last `window` values: O(1) per value with a
/// running mean and M2 (sliding Welford update), recomputed exactly by two passes over the ring
/// every `window` updates so rounding cannot drift.
class ZScoreState {
 public:
  explicit ZScoreState(const ZScoreConfig& config = {});

  AnomalyScore observe(double x, double threshold);

  uint32_t size() const { return ring_.size(); }
  uint64_t rejected() const { return rejected_; }
  double mean() const;    // NaN when empty
  double stddev() const;  // sample; NaN for fewer than 2 values
  const ZScoreConfig& config() const { return config_; }

  void encode(std::string* out) const;
  static Result<ZScoreState> decode(std::string_view in, const ZScoreConfig& config);

 private:
  void add(double x);
  void recompute();

  ZScoreConfig config_;
  detail::ValueRing ring_;
  double mean_ = 0;
  double m2_ = 0;
  uint32_t since_recompute_ = 0;
  uint64_t rejected_ = 0;
};

/// Median and MAD (median of |v − median|) of the last `window` values; score is the robust
/// z = 0.6745·(x − median)/MAD, i.e. scale = MAD/0.6745 (≈ σ for normal data). MAD = 0 (more
/// than half the baseline equal) falls back to scale = 1.2533·(mean absolute deviation from
/// the median); if that is 0 too the baseline is constant (scale 0, see above). The median of
/// an even count is the mean of the two middle values. O(window) per observe (selection on a
/// scratch copy allocated at construction).
class MadState {
 public:
  explicit MadState(const MadConfig& config = {});

  AnomalyScore observe(double x, double threshold);

  uint32_t size() const { return ring_.size(); }
  uint64_t rejected() const { return rejected_; }
  const MadConfig& config() const { return config_; }

  void encode(std::string* out) const;
  static Result<MadState> decode(std::string_view in, const MadConfig& config);

 private:
  double median_of_scratch(uint32_t n);

  MadConfig config_;
  detail::ValueRing ring_;
  std::vector<double> scratch_;  // not state: reused by observe()
  uint64_t rejected_ = 0;
};

/// Exponentially weighted mean and variance (West's incremental form): the first value sets
/// mean = x, var = 0; then d = x − mean, mean += α·d, var = (1 − α)·(var + α·d²). x is scored
/// against the mean and sqrt(var) before it.
class EwmaState {
 public:
  explicit EwmaState(const EwmaConfig& config = {});

  AnomalyScore observe(double x, double threshold);

  uint64_t count() const { return n_; }
  uint64_t rejected() const { return rejected_; }
  double mean() const;    // NaN when empty
  double stddev() const;  // NaN when empty
  const EwmaConfig& config() const { return config_; }

  void encode(std::string* out) const;
  static Result<EwmaState> decode(std::string_view in, const EwmaConfig& config);

 private:
  void add(double x);

  EwmaConfig config_;
  uint64_t n_ = 0;
  double mean_ = 0;
  double var_ = 0;
  uint64_t rejected_ = 0;
};

enum class AnomalyMethod : uint8_t { kZScore = 0, kMad = 1, kEwma = 2 };

/// One config for the three: window is used by kZScore and kMad, alpha by kEwma.
struct AnomalyConfig {
  AnomalyMethod method = AnomalyMethod::kZScore;
  uint32_t window = 100;
  uint32_t warmup = 10;
  double alpha = 0.1;
  bool include_anomalies = false;

  Status validate() const;
  ZScoreConfig window_config() const { return {window, warmup, include_anomalies}; }
  EwmaConfig ewma_config() const { return {alpha, warmup, include_anomalies}; }
};

/// Any of the three detectors, chosen by AnomalyConfig::method.
class AnomalyState {
 public:
  /// kInvalidArgument if the config is invalid.
  static Result<AnomalyState> make(const AnomalyConfig& config);
  /// The config must be valid (checked, fatal otherwise).
  explicit AnomalyState(const AnomalyConfig& config = {});

  AnomalyScore observe(double x, double threshold);
  AnomalyMethod method() const { return config_.method; }
  const AnomalyConfig& config() const { return config_; }

  /// The method tag, then the detector's own encoding.
  void encode(std::string* out) const;
  static Result<AnomalyState> decode(std::string_view in, const AnomalyConfig& config);

 private:
  AnomalyConfig config_;
  std::variant<ZScoreState, MadState, EwmaState> state_;
};

}  // namespace spate::analytics
