#include "analytics/windows.h"

#include <numeric>
#include <string>

namespace spate::analytics {

Result<SlidingWindows> SlidingWindows::make(int64_t size, int64_t slide, int64_t offset) {
  if (size <= 0) return InvalidArgument("window size must be > 0, got " + std::to_string(size));
  if (slide <= 0) return InvalidArgument("window slide must be > 0, got " + std::to_string(slide));
  if (offset < 0 || offset >= slide) {
    return InvalidArgument("window offset must be in [0, slide), got " + std::to_string(offset));
  }
  return SlidingWindows(size, slide, offset, std::gcd(size, slide));
}

Status SessionConfig::validate() const {
  if (gap_ms <= 0) return InvalidArgument("session gap must be > 0, got " + std::to_string(gap_ms));
  if (max_length_ms != 0 && max_length_ms < gap_ms) {
    return InvalidArgument("session max_length must be 0 or >= gap, got " +
                           std::to_string(max_length_ms));
  }
  return Status::Ok();
}

Result<CountWindows> CountWindows::make(uint64_t n, uint64_t slide) {
  if (n == 0) return InvalidArgument("count window size must be > 0");
  if (slide == 0) slide = n;
  if (slide > n) return InvalidArgument("count window slide must be <= size");
  return CountWindows(n, slide, std::gcd(n, slide));
}

}  // namespace spate::analytics
