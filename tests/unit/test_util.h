// Test helpers: temporary directories, a manual clock.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include "base/clock.h"

namespace spate::testing {

/// A fresh directory under $TMPDIR, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "spate-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// A Clock that moves only when told: now_ms() = wall_offset_ms + elapsed, steady_ns() =
/// elapsed in ns, elapsed starting at start_ms.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t wall_offset_ms = 0, int64_t start_ms = 0)
      : wall_offset_ms_(wall_offset_ms), ms_(start_ms) {}
  int64_t now_ms() const override { return wall_offset_ms_ + ms_; }
  int64_t steady_ns() const override { return ms_ * 1'000'000; }
  void advance(int64_t ms) { ms_ += ms; }

 private:
  int64_t wall_offset_ms_;
  int64_t ms_;
};

}  // namespace spate::testing
