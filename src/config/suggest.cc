#include "config/suggest.h"

#include <algorithm>
#include <cctype>
#include <limits>

namespace spate::config {
namespace {

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool iprefix(std::string_view shorter, std::string_view longer) {
  if (shorter.size() > longer.size()) return false;
  for (size_t i = 0; i < shorter.size(); ++i) {
    if (lower(shorter[i]) != lower(longer[i])) return false;
  }
  return true;
}

}  // namespace

size_t edit_distance(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  const size_t m = b.size();
  // d[i][j] = distance between a[0..i) and b[0..j); three rows suffice for transpositions.
  std::vector<size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = j;
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    prev2.swap(prev);
    prev.swap(cur);
  }
  return prev[m];
}

std::string suggest(std::string_view word, const std::vector<std::string>& candidates) {
  constexpr size_t kNone = std::numeric_limits<size_t>::max();
  const size_t max_distance = std::min<size_t>(2, word.size() / 2);
  size_t best_rank = kNone;  // edit distance, or 3 for a prefix match
  const std::string* best = nullptr;
  for (const std::string& c : candidates) {
    size_t rank = kNone;
    const size_t d = edit_distance(word, c);
    if (d <= max_distance) {
      rank = d;
    } else {
      const bool word_shorter = word.size() <= c.size();
      const std::string_view shorter = word_shorter ? word : std::string_view(c);
      const std::string_view longer = word_shorter ? std::string_view(c) : word;
      if (shorter.size() >= 3 && iprefix(shorter, longer)) rank = 3;
    }
    if (rank < best_rank) {
      best_rank = rank;
      best = &c;
    }
  }
  return best != nullptr ? *best : std::string();
}

}  // namespace spate::config
