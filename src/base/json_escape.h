// JSON string escaping, shared by every place that writes JSON or quotes user text in messages.
// Pure functions, thread-safe. Escapes '"', '\\' and control characters (\n \r \t \b \f, others
// as \u00XX); other bytes, including UTF-8 sequences, pass through unchanged.
#pragma once

#include <string>
#include <string_view>

namespace spate {

/// Append `s` escaped for use inside a JSON string literal (no surrounding quotes).
void append_json_escaped(std::string& out, std::string_view s);

/// `s` escaped for use inside a JSON string literal (no surrounding quotes).
inline std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_json_escaped(out, s);
  return out;
}

/// Append `s` as a complete JSON string literal, with quotes.
inline void append_json_quoted(std::string& out, std::string_view s) {
  out.push_back('"');
  append_json_escaped(out, s);
  out.push_back('"');
}

/// `s` as a complete JSON string literal, with quotes.
inline std::string json_quote(std::string_view s) {
  std::string out;
  append_json_quoted(out, s);
  return out;
}

}  // namespace spate
