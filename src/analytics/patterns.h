// Pattern detectors the analytics engine drives per key: a threshold state machine with
// for-N-windows / for-duration and hysteresis (ThresholdState), a least-squares trend over the
// last N points (TrendState), mergeable streaming co-moments for correlation (CoMoments), the
// (x, y) pairs of the last N windows (PairHistory) and a
// sequence NFA in the spirit of Flink CEP (SequenceState).
//
// The engine evaluates conditions and expressions itself and passes booleans, numbers and step
// bitmasks in; these classes only keep the per-key state machine. Times are event-time epoch
// milliseconds.
//
// Contract (all of them): plain values, not synchronized — one owner at a time (the shard that
// owns the key); configs are immutable and may be shared. No I/O, no threads, no clock.
// Constructors take a config that must be valid (validate() ok; checked, fatal otherwise).
// Every state has encode() (a versioned binary form for checkpoints) and decode(bytes, config):
// malformed, truncated, trailing or inconsistent input gives kCorruption, an encoding written
// under a different config gives kInvalidArgument (the engine then starts the key afresh), an
// invalid config gives kInvalidArgument; decode never reads past its input, and a decoded state
// continues exactly like the one that was encoded.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "spate/status.h"

namespace spate::analytics {

// ---------------------------------------------------------------------------------------------
// Threshold: "value > X for 3 windows" / "for 5 minutes", with an optional resolve condition.

struct ThresholdConfig {
  uint32_t for_windows = 1;  // consecutive breaching observations needed to fire; >= 1
  int64_t for_ms = 0;        // 0: no duration; > 0: breach held for at least this long to fire

  Status validate() const;
};

/// Semantics of observe(t, breach, resolved), one call per evaluation (e.g. per closed window):
///   - Not firing: a breaching observation starts a run (run_start() = its t) or extends it
///     (consecutive() + 1); a non-breaching one ends the run (consecutive() = 0). It fires (kFire)
///     on the observation where consecutive() >= for_windows AND, if for_ms > 0,
///     t − run_start() >= for_ms. Observations are expected in non-decreasing t; a t before
///     run_start() never satisfies for_ms.
///   - Firing: it resolves (kResolve) when `resolved` is true if a resolve condition is given
///     (engaged optional), else when breach is false. An unmet resolve condition keeps it firing
///     even when breach is false (hysteresis). Resolving ends the run; the resolving observation
///     does not start a new one (even if breach is also true), so a re-fire needs a fresh run.
///   - kNone otherwise. run_start() and consecutive() keep describing the run that fired while
///     firing (consecutive() keeps counting breaching observations, saturating).
class ThresholdState {
 public:
  enum class Transition : uint8_t { kNone, kFire, kResolve };

  explicit ThresholdState(const ThresholdConfig& config = {});

  Transition observe(int64_t t, bool breach, std::optional<bool> resolved = std::nullopt);

  bool firing() const { return firing_; }
  /// A run of breaching observations is in progress (or the firing run).
  bool in_run() const { return consecutive_ > 0 || firing_; }
  /// t of the first breaching observation of the current run; meaningful when in_run().
  int64_t run_start() const { return run_start_; }
  /// Breaching observations in the current run (saturates at UINT32_MAX).
  uint32_t consecutive() const { return consecutive_; }
  /// t of the observation that fired; meaningful when firing().
  int64_t fired_at() const { return fired_at_; }
  const ThresholdConfig& config() const { return config_; }

  void encode(std::string* out) const;
  static Result<ThresholdState> decode(std::string_view in, const ThresholdConfig& config);

 private:
  ThresholdConfig config_;
  bool firing_ = false;
  uint32_t consecutive_ = 0;
  int64_t run_start_ = 0;
  int64_t fired_at_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Trend: least-squares slope over the last N points.

struct TrendConfig {
  uint32_t windows = 5;  // points in the fit; in [2, 65536]

  Status validate() const;
};

struct TrendFit {
  double slope_per_second = 0;  // dy per second of event time
  double intercept = 0;         // fitted y at the time of the newest point (not at epoch 0)
  double r2 = 0;                // coefficient of determination in [0, 1]; 1 when y is constant
  uint32_t n = 0;               // points in the fit (== windows)
};

/// A ring buffer of the last `windows` (t, y) points. observe() adds one point and returns the
/// ordinary least-squares fit over the buffer once it holds `windows` points (nullopt before).
/// Numerics: times are taken relative to the newest point (exact int64 differences) and
/// centred on their mean, y centred on its mean, two passes over at most `windows` points — so
/// epoch-scale times and large y offsets lose no precision. Equal times are fine as long as
/// the times are not all equal; if they are, there is no slope and observe() returns nullopt.
/// Points need not be in time order. A non-finite y is ignored (not added; returns nullopt and
/// counts it in rejected()). O(windows) per call, no allocation after construction.
class TrendState {
 public:
  explicit TrendState(const TrendConfig& config = {});

  std::optional<TrendFit> observe(int64_t t, double y);
  /// The fit over the current buffer (nullopt until full or when all times are equal).
  std::optional<TrendFit> fit() const;

  uint32_t size() const { return size_; }
  uint64_t rejected() const { return rejected_; }
  const TrendConfig& config() const { return config_; }

  void encode(std::string* out) const;
  static Result<TrendState> decode(std::string_view in, const TrendConfig& config);

 private:
  TrendConfig config_;
  std::vector<int64_t> t_;  // ring of capacity windows
  std::vector<double> y_;
  uint32_t head_ = 0;  // index of the oldest point
  uint32_t size_ = 0;
  uint64_t rejected_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Correlation: mergeable co-moments.

/// Streaming co-moments of (x, y) pairs: n, means, M2x = Σ(x−x̄)², M2y, Cxy = Σ(x−x̄)(y−ȳ)
/// (Welford's update; Chan et al.'s pairwise merge — numerically stable, and mergeable: merging
/// the states of any split of a stream in any order gives the state of the whole, up to
/// floating-point rounding). A pair with a NaN or ±infinity is rejected (add returns false,
/// counted in `rejected`). Fixed size, never allocates. decode() has no config.
struct CoMoments {
  uint64_t n = 0;
  uint64_t rejected = 0;
  double mean_x = 0;
  double mean_y = 0;
  double m2x = 0;
  double m2y = 0;
  double cxy = 0;

  bool add(double x, double y) {
    if (!std::isfinite(x) || !std::isfinite(y)) {
      ++rejected;
      return false;
    }
    ++n;
    const double inv = 1.0 / static_cast<double>(n);
    const double dx = x - mean_x;
    mean_x += dx * inv;
    const double dy = y - mean_y;
    mean_y += dy * inv;
    m2x += dx * (x - mean_x);
    m2y += dy * (y - mean_y);
    cxy += dx * (y - mean_y);
    return true;
  }
  /// this := co-moments of (this stream ∪ other stream).
  void merge(const CoMoments& other);

  /// Pearson's r in [−1, 1]; NaN when undefined (n < 2 or x or y constant).
  double pearson() const;
  /// Sample covariance Cxy/(n−1); NaN for n < 2.
  double covariance() const;
  /// Population covariance Cxy/n; NaN when empty.
  double covariance_population() const;
  bool empty() const { return n == 0; }

  void encode(std::string* out) const;
  static Result<CoMoments> decode(std::string_view in);
};

/// The (x, y) pairs of the last `windows` observations (a ring, like TrendState's), for a
/// correlation of two aggregates over the last N windows. observe() adds one pair — a pair with
/// a NaN or ±infinity is skipped (not added, counted in rejected()) — and returns the co-moments
/// of the pairs held (at most `windows`, oldest dropped first). Config: TrendConfig (windows in
/// [2, 65536]). O(windows) per call, no allocation after construction.
class PairHistory {
 public:
  explicit PairHistory(const TrendConfig& config = {});

  CoMoments observe(double x, double y);
  /// Co-moments of the pairs held (recomputed from them: no drift from removals).
  CoMoments moments() const;

  uint32_t size() const { return size_; }
  uint64_t rejected() const { return rejected_; }
  const TrendConfig& config() const { return config_; }

  void encode(std::string* out) const;
  static Result<PairHistory> decode(std::string_view in, const TrendConfig& config);

 private:
  TrendConfig config_;
  std::vector<double> x_;  // ring of capacity windows
  std::vector<double> y_;
  uint32_t head_ = 0;  // index of the oldest pair
  uint32_t size_ = 0;
  uint64_t rejected_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Sequence: "A then B (then ...) within T", optionally "... not followed by C".

struct SequenceConfig {
  /// Step indexes 0..steps−1 (bit i of a step mask = step i). Without not_followed_by all are
  /// positive steps; with it the last index is the absent step C. Positive steps: >= 2; steps
  /// <= 32.
  uint32_t steps = 2;
  /// A match spans less than within_ms: every step's t < start_t + within_ms (half-open, like
  /// the windows and Flink's within(): a step at exactly start_t + within_ms is too late); > 0.
  int64_t within_ms = 60'000;
  bool not_followed_by = false;
  /// Cap on partial matches in progress, and separately on completed matches held for their
  /// not-followed-by deadline; >= 1. Overflow drops the oldest (counted in dropped()).
  uint32_t max_partial_matches = 1000;
  /// Cap on buffered events not yet below the watermark; >= 1. add() beyond it rejects the event
  /// (counted in overflowed()).
  uint32_t max_buffered_events = 100'000;

  Status validate() const;
  uint32_t positive_steps() const { return not_followed_by ? steps - 1 : steps; }
};

/// One match. The spans point into the state and are valid only during the callback.
struct SequenceMatch {
  int64_t start_t = 0;                  // t of the step-0 event
  int64_t end_t = 0;                    // t of the last positive step's event
  std::span<const int64_t> step_times;  // one per positive step
  std::span<const uint64_t> step_refs;  // the event_ref passed to add(), one per positive step
};

/// The NFA, skip-till-next-match (Flink's followedBy, no after-match skip):
///   - add(t, mask, ref) buffers an event with the bitmask of the steps whose conditions it
///     satisfies; events may arrive in any order. A mask with no bit below `steps` is ignored.
///     An event with t < the last watermark passed to advance() is late: rejected (returns
///     false, counted in late()), as is an event beyond max_buffered_events (overflowed()).
///   - advance(W, cb): the watermark follows WatermarkTracker's meaning (events with t < W are
///     final; t >= W may still come), so it processes the buffered events with t < W in (t,
///     arrival) order, then emits what W makes final. W below a previous watermark is a no-op.
///   - Per processed event e at time t, in this order:
///     1. partial matches with t >= start_t + within_ms expire (dropped, counted in expired());
///     2. (not_followed_by) if e satisfies C, every held match (completed by an earlier event
///        in processing order) with t < its deadline start_t + within_ms is suppressed (dropped,
///        counted in suppressed()); an event that completes a match cannot suppress it;
///     3. every partial match whose next step e satisfies advances by one step (an event moves
///        a partial match at most one step; several partial matches may take the same event);
///        one that completes its last positive step is emitted (or, with not_followed_by, held
///        until its deadline start_t + within_ms);
///     4. if e satisfies step 0 it starts a new partial match (which e does not also advance).
///        At max_partial_matches, the oldest partial match is dropped (counted in dropped()).
///   - After the events: partial matches with start_t + within_ms <= W can no longer complete
///     and expire; held matches with deadline <= W are emitted in (deadline, completion) order.
///     Without not_followed_by a match is emitted as soon as its last step is processed.
/// So the matches and their order depend only on the events and their (t, arrival) order, not
/// on how the watermark advanced — an out-of-order arrival with distinct times gives the same
/// matches as the sorted stream. C events before the last positive step do not matter (only
/// "followed by ... not followed by C" at the end is supported). The callback must not call
/// into this state. State is bounded by the caps; empty() tells the engine it may
/// forget the key. Memory: flat vectors, grown on demand and reused.
class SequenceState {
 public:
  /// A non-owning reference to the caller's match handler (any callable taking a
  /// `const SequenceMatch&`; no allocation, valid for the advance() call it is passed to).
  class Callback {
   public:
    template <typename F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, Callback>)
        Callback(F&& f)  // NOLINT(google-explicit-constructor)
        : obj_(const_cast<void*>(static_cast<const void*>(&f))),
          call_([](void* o, const SequenceMatch& m) {
            (*static_cast<std::remove_reference_t<F>*>(o))(m);
          }) {}
    void operator()(const SequenceMatch& m) const { call_(obj_, m); }

   private:
    void* obj_;
    void (*call_)(void*, const SequenceMatch&);
  };

  explicit SequenceState(const SequenceConfig& config = {});

  /// Buffers one event (see above); false if late or over max_buffered_events.
  bool add(int64_t t, uint32_t step_mask, uint64_t event_ref);
  /// Processes the events below `watermark` and emits matches (see above); returns how many.
  size_t advance(int64_t watermark, const Callback& on_match);

  /// No buffered events, partial or held matches (counters are not state the engine needs).
  bool empty() const { return events_.empty() && partial_.size() == 0 && held_.size() == 0; }
  /// The smallest watermark at which advance() would process an event, expire a partial match
  /// or emit a held match; nullopt when empty().
  std::optional<int64_t> next_deadline() const;

  int64_t watermark() const { return watermark_; }
  size_t buffered() const { return events_.size(); }
  size_t partial_matches() const { return partial_.size(); }
  size_t held_matches() const { return held_.size(); }
  uint64_t dropped() const { return dropped_; }
  uint64_t expired() const { return expired_; }
  uint64_t suppressed() const { return suppressed_; }
  uint64_t late() const { return late_; }
  uint64_t overflowed() const { return overflowed_; }
  const SequenceConfig& config() const { return config_; }

  void encode(std::string* out) const;
  static Result<SequenceState> decode(std::string_view in, const SequenceConfig& config);

 private:
  struct Event {
    int64_t t;
    uint64_t seq;  // arrival order
    uint32_t mask;
    uint64_t ref;
  };
  // Runs (partial or completed matches) in creation order: per run a tag (next step for a
  // partial match, completion sequence for a held one) and `stride` (t, ref) slots.
  class Runs {
   public:
    explicit Runs(uint32_t stride) : stride_(stride) {}
    size_t size() const { return tag_.size(); }
    uint64_t tag(size_t i) const { return tag_[i]; }
    int64_t start(size_t i) const { return t_[i * stride_]; }
    int64_t* times(size_t i) { return &t_[i * stride_]; }
    uint64_t* refs(size_t i) { return &ref_[i * stride_]; }
    const int64_t* times(size_t i) const { return &t_[i * stride_]; }
    const uint64_t* refs(size_t i) const { return &ref_[i * stride_]; }
    void set_tag(size_t i, uint64_t v) { tag_[i] = v; }
    size_t push(uint64_t tag);  // returns the new index (slots zeroed)
    void erase_front();
    /// Keeps the runs for which keep(i) is true, in order.
    template <typename Keep>
    void retain(Keep keep);

   private:
    uint32_t stride_;
    std::vector<uint64_t> tag_;
    std::vector<int64_t> t_;
    std::vector<uint64_t> ref_;
  };

  void process(const Event& e, const Callback& on_match, size_t* emitted);
  void emit(const int64_t* times, const uint64_t* refs, const Callback& on_match);
  int64_t deadline(int64_t start) const;

  SequenceConfig config_;
  uint32_t positive_;
  std::vector<Event> events_;  // unsorted until advance()
  Runs partial_;               // tag: index of the next positive step
  Runs held_;                  // tag: completion sequence (not_followed_by only)
  int64_t watermark_ = std::numeric_limits<int64_t>::min();
  uint64_t next_seq_ = 0;         // arrival counter
  uint64_t next_completion_ = 0;  // completion counter for held matches
  uint64_t dropped_ = 0;
  uint64_t expired_ = 0;
  uint64_t suppressed_ = 0;
  uint64_t late_ = 0;
  uint64_t overflowed_ = 0;
  std::vector<size_t> due_;  // not state: advance()'s scratch for held matches due
};

}  // namespace spate::analytics
