// Progress of a long-running command (dlq replay, opening a large log) on stderr.
//
// On a terminal: one line redrawn in place, at most 10 times a second, erased by done(). Not on
// a terminal: nothing, so that output stays scriptable and logs stay clean.
//
// Thread safety: one thread per Progress.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace spate::cli {

class Progress {
 public:
  /// enabled: draw at all (default: stderr is a terminal).
  explicit Progress(bool enabled);
  Progress();
  ~Progress();  // done()
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Whether it is time to redraw (cheap: call per item and build the text only when true).
  bool due() const;
  /// Redraw the line with `text` (cut to the terminal width).
  void show(const std::string& text);
  /// Erase the line. Idempotent.
  void done();

  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

/// "12.3 MiB", "950 B".
std::string human_bytes(uint64_t bytes);

}  // namespace spate::cli
