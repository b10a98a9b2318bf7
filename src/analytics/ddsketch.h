// DDSketch: a mergeable quantile sketch with a relative-error guarantee (Masson, Rim & Lee,
// "DDSketch: a fast and fully-mergeable quantile sketch with relative-error guarantees", VLDB
// 2019).
//
// Values are mapped to logarithmic buckets: bucket i of a store holds magnitudes in
// (γ^(i-1), γ^i] with γ = (1+α)/(1−α), and is represented by 2γ^i/(γ+1), which is within a
// relative error α of every value in the bucket. Positive and negative values have their own
// store (negatives by magnitude); exact zeros have a counter. Each store keeps at most
// `max_buckets` contiguous buckets; when a value would widen a store beyond that, the lowest
// buckets (smallest magnitudes) are collapsed into the lowest kept one, so only quantiles that
// fall in that collapsed tail lose the guarantee (with α = 0.01 and 2048 buckets, a store spans
// magnitudes over 17 orders of magnitude before collapsing). min and max are kept exactly.
//
// Exact mode: while a sketch has seen at most `exact_threshold` values it keeps them raw and
// quantile() is exact; past that it converts to buckets for good (small windows stay exact,
// large ones cost O(buckets) memory).
//
// quantile(q), q in [0,1], returns the value of rank ⌊q·(n−1)⌋ in the sorted stream (0-based),
// in sketch mode within relative error α of it: |returned − true| ≤ α·|true|; rank 0 and rank
// n−1 return the exact min and max.
//
// Mergeable: merge(a, b) gives exactly the sketch that adding a's and b's values to one sketch
// would (same buckets, same quantiles), for sketches with the same DDSketchConfig; merging
// sketches of different configurations fails with kInvalidArgument and changes nothing.
//
// Contract: a plain value, not synchronized. add() is amortized allocation-free: a store
// grows (with slack) only when a value lands outside its current range, and exact mode appends
// to a vector of at most exact_threshold doubles. NaN and ±infinity are rejected (add returns
// false).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "spate/status.h"

namespace spate::analytics {

struct DDSketchConfig {
  double relative_accuracy = 0.01;  // α, in (0, 1)
  int32_t max_buckets = 2048;       // per store (positive, negative); >= 16
  uint32_t exact_threshold = 128;   // keep raw values up to this many (0: always sketch)

  Status validate() const;
};

class DDSketch {
 public:
  /// The config must be valid (validate() ok); checked, fatal otherwise.
  explicit DDSketch(const DDSketchConfig& config = {});

  /// Adds one value. Returns false for NaN or ±infinity (ignored).
  bool add(double x);
  /// this := sketch of the union of both streams. kInvalidArgument if the configs differ.
  Status merge(const DDSketch& other);

  /// Versioned binary encoding (for checkpoints), appended to *out; decode() parses it
  /// (kCorruption if malformed or inconsistent).
  void encode(std::string* out) const;
  static Result<DDSketch> decode(std::string_view in);

  /// Value at rank ⌊q·(n−1)⌋ (q clamped to [0,1]); NaN when empty. See the header comment.
  double quantile(double q) const;
  /// out[i] = quantile(qs[i]) for all i (out.size() >= qs.size()); in exact mode one sort
  /// serves them all.
  void quantiles(std::span<const double> qs, std::span<double> out) const;

  uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  double min() const { return min_; }
  double max() const { return max_; }
  /// True while values are kept raw (quantiles exact).
  bool exact() const { return exact_; }
  /// True once a store collapsed low buckets (the smallest magnitudes lost the guarantee).
  bool collapsed() const { return positive_.collapsed() || negative_.collapsed(); }
  /// Buckets currently allocated (memory ≈ 8 bytes each) plus raw values kept.
  size_t memory_slots() const { return positive_.size() + negative_.size() + raw_.size(); }
  const DDSketchConfig& config() const { return config_; }

 private:
  // Contiguous counts of bucket indexes [offset_, offset_ + counts_.size()).
  class Store {
   public:
    void add(int32_t index, uint64_t n, int32_t max_buckets);
    void merge(const Store& o, int32_t max_buckets);
    bool empty() const { return total_ == 0; }
    uint64_t total() const { return total_; }
    size_t size() const { return counts_.size(); }
    bool collapsed() const { return collapsed_; }
    int32_t min_index() const { return min_index_; }
    int32_t max_index() const { return max_index_; }
    uint64_t at(int32_t index) const { return counts_[static_cast<size_t>(index - offset_)]; }
    void set_collapsed(bool c) { collapsed_ = c; }

   private:
    // Makes room for `index`; returns the index to count it in (raised if collapsed).
    int32_t reserve(int32_t index, int32_t max_buckets);

    std::vector<uint64_t> counts_;
    int32_t offset_ = 0;
    int32_t min_index_ = 0;  // of nonzero buckets, valid when total_ > 0
    int32_t max_index_ = 0;
    uint64_t total_ = 0;
    bool collapsed_ = false;
  };

  int32_t index_of(double magnitude) const;
  double value_of(int32_t index) const;
  void add_to_buckets(double x);
  void convert_to_buckets();

  DDSketchConfig config_;
  double gamma_;
  double inv_log_gamma_;
  double log_gamma_;
  bool exact_ = true;
  std::vector<double> raw_;
  Store positive_;
  Store negative_;
  uint64_t zeros_ = 0;
  uint64_t count_ = 0;
  double min_;
  double max_;
};

}  // namespace spate::analytics
