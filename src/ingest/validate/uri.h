// URI references (RFC 3986) and JSON Pointers (RFC 6901) as the schema compiler needs them to
// resolve "$id" and "$ref".
//
// Contract: pure functions, thread-safe. resolve_uri() implements RFC 3986 §5.2 (reference
// resolution with dot-segment removal) on the syntactic level; it never fetches anything.
// Malformed input is resolved as well as the algorithm allows; callers compare the results as
// strings.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "spate/status.h"

namespace spate::schema {

/// `ref` resolved against the absolute URI `base` (RFC 3986 §5.2.2).
std::string resolve_uri(std::string_view base, std::string_view ref);

/// Split "abs#frag" into {"abs", "frag"} (fragment without '#'; empty when absent).
std::pair<std::string_view, std::string_view> split_fragment(std::string_view uri);

/// The URI's scheme ("http"), or empty when it has none.
std::string_view uri_scheme(std::string_view uri);

/// %XX decoding (for JSON Pointers carried in URI fragments). Bad escapes stay as they are.
std::string percent_decode(std::string_view s);

/// The reference tokens of a JSON Pointer ("" -> {}, "/a~1b/0" -> {"a/b", "0"}), or
/// InvalidArgument when it does not start with '/' or has a '~' not followed by 0 or 1.
Result<std::vector<std::string>> parse_json_pointer(std::string_view pointer);

/// Append "/token" to a JSON Pointer, escaping '~' and '/'.
void append_pointer_token(std::string& pointer, std::string_view token);

}  // namespace spate::schema
