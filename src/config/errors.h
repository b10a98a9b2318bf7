// Errors: the collector of configuration errors with their source positions.
//
// Contract: add() records one error; status() renders all of them, sorted by position (stable for
// errors at the same position), one per line, as `SOURCE:LINE:COL: KEY.PATH: message` (the
// `KEY.PATH: ` part is omitted when the path is empty, `LINE:COL: ` when the position is
// unknown). Not thread-safe: one Errors per load.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spate/status.h"

namespace spate::config {

/// A position in a source file, 1-based. line == 0 means unknown.
struct Location {
  int line = 0;
  int column = 0;
};

class Errors {
 public:
  /// At most this many errors are rendered; the rest are summarised in one line.
  static constexpr size_t kMaxReported = 100;

  explicit Errors(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  void add(Location at, std::string_view path, std::string_view message);

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

  /// The rendered errors, sorted by position.
  std::vector<std::string> lines() const;

  /// Ok if there are no errors, else Errc::kConfig with lines() joined by '\n'.
  Status status() const;

 private:
  struct Entry {
    Location at;
    std::string text;
  };
  std::string source_;
  std::vector<Entry> entries_;
};

}  // namespace spate::config
