// HyperLogLog distinct counting with an exact small-cardinality mode.
//
// Up to `exact_threshold` distinct items the sketch keeps their 64-bit hashes in a small
// open-addressing set, and estimate() is exact (up to 64-bit hash collisions: ~n²/2^65). Beyond
// that it converts, for good, to 2^precision 8-bit registers (Flajolet et al. 2007) and estimates
// with Ertl's improved estimator ("New cardinality estimation algorithms for HyperLogLog
// sketches", 2017), which corrects the small- and large-range bias analytically, without the
// empirical tables of HLL++. Standard error ≈ 1.04/√m: 1.63% at precision 12 (4 KiB), 0.81% at
// precision 14 (16 KiB).
//
// Items are hashed with spate::hash64 (xxh3); callers that already have a good 64-bit hash of
// the item use add_hash().
//
// Mergeable: merge(a, b) gives exactly the sketch of the union stream (register-wise max; set
// union, converting if the union passes the threshold), for sketches with the same
// HyperLogLogConfig; otherwise kInvalidArgument and nothing changes.
//
// Contract: a plain value, not synchronized. add() never allocates in register mode; in exact
// mode the set grows by doubling (16–32 bytes per distinct item: 16 KiB at the default
// threshold, more than the 4 KiB of p = 12 registers — lower the threshold where memory per key
// matters more than exact small counts).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "spate/status.h"

namespace spate::analytics {

struct HyperLogLogConfig {
  int precision = 12;               // p in [4, 18]: m = 2^p registers
  uint32_t exact_threshold = 1000;  // exact distinct count up to this many (0: registers at once)

  Status validate() const;
};

class HyperLogLog {
 public:
  /// The config must be valid; checked, fatal otherwise.
  explicit HyperLogLog(const HyperLogLogConfig& config = {});

  void add(std::string_view item);
  void add_hash(uint64_t hash);
  Status merge(const HyperLogLog& other);

  /// Versioned binary encoding (for checkpoints), appended to *out; decode() parses it
  /// (kCorruption if malformed or inconsistent).
  void encode(std::string* out) const;
  static Result<HyperLogLog> decode(std::string_view in);

  /// Estimated number of distinct items (exact in exact mode).
  double estimate() const;
  bool exact() const { return exact_; }
  /// Relative standard error of estimate() in register mode: 1.04 / sqrt(2^precision).
  double standard_error() const;
  const HyperLogLogConfig& config() const { return config_; }
  size_t memory_bytes() const { return registers_.size() + set_.size() * sizeof(uint64_t); }

 private:
  void set_insert(uint64_t h);
  void register_add(uint64_t h);
  void convert_to_registers();

  HyperLogLogConfig config_;
  bool exact_;
  // Exact mode: linear probing, 0 = empty slot (hash 0 is stored as 1 everywhere).
  std::vector<uint64_t> set_;
  uint32_t set_size_ = 0;
  std::vector<uint8_t> registers_;
};

}  // namespace spate::analytics
