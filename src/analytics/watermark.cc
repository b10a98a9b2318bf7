#include "analytics/watermark.h"

#include <algorithm>

#include "analytics/codec_internal.h"
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

void WatermarkTracker::encode(std::string* out) const {
  codec::Writer w(out);
  w.u8('W');
  w.u8(1);
  w.svarint(watermark_);
  w.varint(parts_.size());
  for (const Part& p : parts_) {
    w.u8(static_cast<uint8_t>((p.present ? 1 : 0) | (p.idle ? 2 : 0)));
    if (p.present) w.svarint(p.max_event_time);
  }
}

Status WatermarkTracker::restore(std::string_view in) {
  codec::Reader r(in);
  if (r.u8() != 'W' || r.u8() != 1) return Corruption("watermark: bad header");
  const int64_t wm = r.svarint();
  const uint64_t n = r.varint();
  if (!r.ok() || n > r.remaining() || n > (uint64_t{1} << 24)) {
    return Corruption("watermark: bad partition count");
  }
  std::vector<Part> parts(n);
  const int64_t now = now_ms();
  for (Part& p : parts) {
    const uint8_t flags = r.u8();
    if (flags > 3 || flags == 2) return Corruption("watermark: bad partition flags");
    p.present = flags & 1;
    p.idle = flags & 2;
    if (p.present) p.max_event_time = r.svarint();
    p.last_active_ms = now;
  }
  if (!r.done()) return Corruption("watermark: truncated or trailing bytes");
  parts_ = std::move(parts);
  watermark_ = wm;
  return Status::Ok();
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
