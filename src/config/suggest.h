// suggest(): "did you mean" for misspelt keys and enumerated values.
//
// Contract: pure function, thread-safe. Returns the candidate closest to `word`, or an empty
// string when none is close enough. Comparison ignores ASCII case. A candidate is close when its
// edit distance (insertions, deletions, substitutions, adjacent transpositions) to `word` is at
// most 2 and at most half of word's length, or when one is a prefix of the other and the shorter
// has at least 3 characters. Ties go to the smaller distance, then to the earlier candidate.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace spate::config {

std::string suggest(std::string_view word, const std::vector<std::string>& candidates);

/// Edit distance (optimal string alignment), ASCII case-insensitive.
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace spate::config
