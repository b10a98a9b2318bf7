// Space-Saving heavy hitters (Metwally, Agrawal & El Abbadi 2005) for top_k, with the merge of
// Cafaro et al. / Agarwal et al. ("Mergeable summaries", 2012) so per-pane and per-shard
// summaries combine.
//
// A summary monitors at most `capacity` items, each with a count and an error bound. An unseen
// item, when the summary is full, replaces the item with the smallest count c_min and starts at
// c_min + weight with error c_min. Guarantees, after any sequence of add() and merge():
//   - for a monitored item: count − error ≤ true count ≤ count;
//   - an item that is not monitored has true count ≤ min_count() (0 while not full), so every
//     item with true count > min_count() is monitored;
//   - min_count() ≤ total() / capacity; hence every item more frequent than N/capacity is found.
// top(k) lists the k monitored items with the largest counts (ties: item order), which is the
// exact top k whenever count − error of the k-th exceeds the (k+1)-th count (guaranteed()).
//
// merge(a, b): an item missing from a full summary gets that summary's min_count added to its
// count and error (its possible uncounted occurrences there), then the `capacity` largest are
// kept. The guarantees above hold for the merged summary of the union; unlike the other states,
// the exact counters may depend on the split (Space-Saving is mergeable in its guarantees, not
// in its bits). Summaries of different capacities fail to merge (kInvalidArgument).
//
// Contract: a plain value, not synchronized. add() of a monitored item never allocates; a
// replacement reuses the evicted item's hash-map node and string (no allocation for items up to
// the string's capacity). O(log capacity) per add.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "spate/status.h"

namespace spate::analytics {

struct TopKConfig {
  uint32_t capacity = 128;  // counters kept (m); top(k) is reliable for k well below m

  Status validate() const;
};

struct HeavyHitter {
  std::string item;
  uint64_t count = 0;  // upper bound of the true count
  uint64_t error = 0;  // count − error is a lower bound
};

class SpaceSaving {
 public:
  /// The config must be valid; checked, fatal otherwise.
  explicit SpaceSaving(const TopKConfig& config = {});

  void add(std::string_view item, uint64_t weight = 1);
  Status merge(const SpaceSaving& other);

  /// Versioned binary encoding (for checkpoints), appended to *out; decode() parses it
  /// (kCorruption if malformed or inconsistent).
  void encode(std::string* out) const;
  static Result<SpaceSaving> decode(std::string_view in);

  /// The k monitored items with the largest counts, descending (ties by item).
  std::vector<HeavyHitter> top(size_t k) const;
  /// The monitored entry for item, or a zero entry with error = min_count() if not monitored.
  HeavyHitter find(std::string_view item) const;
  /// Upper bound on the true count of any item not monitored (0 while not full).
  uint64_t min_count() const;
  /// Sum of all weights added (N).
  uint64_t total() const { return total_; }
  size_t size() const { return slots_.size(); }
  const TopKConfig& config() const { return config_; }

 private:
  struct Slot {
    std::string item;
    uint64_t count = 0;
    uint64_t error = 0;
    uint32_t heap_pos = 0;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
  };

  void sift_down(uint32_t pos);
  void sift_up(uint32_t pos);
  bool heap_less(uint32_t a, uint32_t b) const {
    return slots_[heap_[a]].count < slots_[heap_[b]].count;
  }
  void heap_swap(uint32_t a, uint32_t b);
  void rebuild(std::vector<Slot> slots);

  TopKConfig config_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> heap_;  // min-heap of slot indexes by count
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> index_;
  uint64_t total_ = 0;
};

}  // namespace spate::analytics
