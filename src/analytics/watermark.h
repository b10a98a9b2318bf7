// WatermarkTracker: event-time progress of a stream made of source partitions.
//
// Per partition, bounded out-of-orderness: watermark_p = (max event time seen on p) − bound.
// Meaning: events up to `bound` ms older than the newest one seen are still on time; an event
// with event_time < watermark() is late. The global watermark is the minimum over the partitions
// that are not idle, so the slowest partition holds event time back — but a partition with no
// event for `idle_timeout_ms` of processing time (from the injected Clock) is idle and excluded,
// so a quiet partition cannot stall the stream. When every partition is idle the global
// watermark advances to the maximum of the partition watermarks (so the last windows of a quiet
// stream still close). A declared partition that has not produced yet holds the global watermark
// at kNoWatermark until it produces or goes idle. The global watermark never moves backwards: a
// partition returning from idleness behind the others makes its old events late, it does not
// reopen closed windows.
//
// Cost model: observe() is the per-event hot path — a compare and a store, no clock read, no
// allocation (except the first event of a new partition id). advance() reads the clock once and
// recomputes the global watermark in O(partitions); the engine calls it once per batch.
// Idleness therefore has the resolution of advance() calls.
//
// Contract: not synchronized; one owner (the shard that consumes these partitions). Partition
// ids are small dense integers (log partition numbers); the tracker keeps a slot per id up to the
// largest seen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "spate/status.h"

namespace spate {
class Clock;
}

namespace spate::analytics {

/// "No event-time progress yet": smaller than every event time.
inline constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min();

struct WatermarkConfig {
  int64_t max_out_of_orderness_ms = 0;  // bound >= 0
  int64_t idle_timeout_ms = 0;          // > 0: idle after this long without events; 0: never idle
};

class WatermarkTracker {
 public:
  /// clock must outlive the tracker (steady_ns() is used for idleness).
  WatermarkTracker(const WatermarkConfig& config, const Clock* clock);

  /// Declares a partition expected to produce (e.g. on assignment); it holds the global
  /// watermark until it produces or goes idle. Reads the clock.
  void add_partition(uint32_t partition);
  /// Forgets a partition (e.g. revoked on rebalance); it no longer holds the watermark.
  void remove_partition(uint32_t partition);

  /// Records one event. Hot path: no clock read.
  void observe(uint32_t partition, int64_t event_time_ms) {
    if (partition >= parts_.size() || !parts_[partition].present) create(partition);
    Part& p = parts_[partition];
    if (event_time_ms > p.max_event_time) p.max_event_time = event_time_ms;
    p.seen = true;
  }

  /// Applies the events observed since the last call and the passing of processing time (idle
  /// partitions), and returns the new global watermark (>= every earlier one).
  int64_t advance();

  /// Checkpoint: the global watermark and each partition's max event time and idleness.
  /// Processing time does not survive a restart: restore() counts idleness from now.
  void encode(std::string* out) const;
  /// Replaces this tracker's state with an encoding; kCorruption (state unchanged) if malformed.
  Status restore(std::string_view in);

  /// The global watermark as of the last advance().
  int64_t watermark() const { return watermark_; }
  /// True if an event with this time is late as of the last advance().
  bool is_late(int64_t event_time_ms) const { return event_time_ms < watermark_; }

  /// max event time − bound for a partition (kNoWatermark if none or unknown).
  int64_t partition_watermark(uint32_t partition) const;
  /// Idle as of the last advance() (unknown partitions are not idle).
  bool idle(uint32_t partition) const;
  /// Present partitions that are not idle.
  size_t active_partitions() const;

 private:
  struct Part {
    bool present = false;
    bool seen = false;  // an event since the last advance()
    bool idle = false;
    int64_t max_event_time = kNoWatermark;
    int64_t last_active_ms = 0;
  };
  void create(uint32_t partition);
  int64_t part_watermark(const Part& p) const;
  int64_t now_ms() const;

  WatermarkConfig config_;
  const Clock* clock_;
  std::vector<Part> parts_;
  int64_t watermark_ = kNoWatermark;
};

}  // namespace spate::analytics
