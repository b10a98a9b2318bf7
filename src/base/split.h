// Splitting comma-separated lists ("a@x, b@y") as configuration and environment values give
// them. Pure, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace spate {

/// `s` without leading and trailing spaces, tabs, CR and LF.
inline std::string_view trim_space(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

/// The items of a `sep`-separated list, each trimmed; empty items are skipped.
inline std::vector<std::string> split_trimmed(std::string_view s, char sep = ',') {
  std::vector<std::string> out;
  for (size_t start = 0; start <= s.size();) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    const std::string_view item = trim_space(s.substr(start, end - start));
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

}  // namespace spate
