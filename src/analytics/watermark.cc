#include "analytics/watermark.h"

#include <algorithm>

#include "base/clock.h"
#include "spate/status.h"

namespace spate::analytics {

WatermarkTracker::WatermarkTracker(const WatermarkConfig& config, const Clock* clock)
    : config_(config), clock_(clock) {
  SPATE_CHECK(clock != nullptr, "WatermarkTracker needs a clock");
  SPATE_CHECK(config.max_out_of_orderness_ms >= 0, "max_out_of_orderness_ms must be >= 0");
  SPATE_CHECK(config.idle_timeout_ms >= 0, "idle_timeout_ms must be >= 0");
}

int64_t WatermarkTracker::now_ms() const {
  return clock_->steady_ns() / 1'000'000;
}

void WatermarkTracker::create(uint32_t partition) {
  if (partition >= parts_.size()) parts_.resize(static_cast<size_t>(partition) + 1);
  Part& p = parts_[partition];
  p = Part{};
  p.present = true;
  p.seen = true;  // active as of the next advance()
}

void WatermarkTracker::add_partition(uint32_t partition) {
  if (partition < parts_.size() && parts_[partition].present) return;
  create(partition);
  parts_[partition].seen = false;
  parts_[partition].last_active_ms = now_ms();
}

void WatermarkTracker::remove_partition(uint32_t partition) {
  if (partition < parts_.size()) parts_[partition] = Part{};
}

int64_t WatermarkTracker::part_watermark(const Part& p) const {
  if (p.max_event_time == kNoWatermark) return kNoWatermark;
  // Saturate instead of overflowing for event times near the bottom of the range.
  if (p.max_event_time < kNoWatermark + config_.max_out_of_orderness_ms) return kNoWatermark;
  return p.max_event_time - config_.max_out_of_orderness_ms;
}

int64_t WatermarkTracker::advance() {
  const int64_t now = now_ms();
  bool any_active = false;
  bool any_present = false;
  int64_t min_active = std::numeric_limits<int64_t>::max();
  int64_t max_all = kNoWatermark;
  for (Part& p : parts_) {
    if (!p.present) continue;
    any_present = true;
    if (p.seen) {
      p.seen = false;
      p.idle = false;
      p.last_active_ms = now;
    } else if (config_.idle_timeout_ms > 0 && now - p.last_active_ms >= config_.idle_timeout_ms) {
      p.idle = true;
    }
    const int64_t w = part_watermark(p);
    max_all = std::max(max_all, w);
    if (!p.idle) {
      any_active = true;
      min_active = std::min(min_active, w);
    }
  }
  int64_t candidate = kNoWatermark;
  if (any_active) {
    candidate = min_active;
  } else if (any_present) {
    candidate = max_all;
  }
  watermark_ = std::max(watermark_, candidate);
  return watermark_;
}

int64_t WatermarkTracker::partition_watermark(uint32_t partition) const {
  if (partition >= parts_.size() || !parts_[partition].present) return kNoWatermark;
  return part_watermark(parts_[partition]);
}

bool WatermarkTracker::idle(uint32_t partition) const {
  return partition < parts_.size() && parts_[partition].present && parts_[partition].idle;
}

size_t WatermarkTracker::active_partitions() const {
  size_t n = 0;
  for (const Part& p : parts_) n += p.present && !p.idle;
  return n;
}

}  // namespace spate::analytics
