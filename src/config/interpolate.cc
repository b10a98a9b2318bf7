#include "config/interpolate.h"

#include <fmt/format.h>

namespace spate::config {
namespace {

bool is_name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}

bool valid_name(std::string_view s) {
  if (s.empty() || !is_name_start(s[0])) return false;
  for (char c : s) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

}  // namespace

Result<std::string> interpolate(std::string_view text, const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    if (text.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    // Find the matching '}', allowing nested ${...} (and $${ escapes) inside a default.
    size_t j = i + 2;
    int depth = 1;
    while (j < n) {
      if (text.compare(j, 3, "$${") == 0) {
        j += 3;
      } else if (text.compare(j, 2, "${") == 0) {
        ++depth;
        j += 2;
      } else if (text[j] == '}') {
        if (--depth == 0) break;
        ++j;
      } else {
        ++j;
      }
    }
    if (j >= n) {
      return ConfigError(fmt::format(
          "unterminated \"${{\" in \"{}\" (write \"$${{\" for a literal \"${{\")", text));
    }
    const std::string_view inner = text.substr(i + 2, j - (i + 2));
    const size_t colon = inner.find(':');
    const std::string_view name = inner.substr(0, colon);
    if (!valid_name(name)) {
      return ConfigError(fmt::format(
          "invalid variable reference \"${{{}}}\": a name is letters, digits and _ and does not "
          "start with a digit",
          inner));
    }
    bool has_default = false;
    std::string_view default_text;
    if (colon != std::string_view::npos) {
      const std::string_view rest = inner.substr(colon);
      if (rest.substr(0, 2) != ":-") {
        return ConfigError(fmt::format(
            "unsupported variable reference \"${{{}}}\": use ${{{}}} or ${{{}:-default}}", inner,
            name, name));
      }
      has_default = true;
      default_text = rest.substr(2);
    }
    std::optional<std::string> value = env ? env(name) : std::nullopt;
    if (value && !(has_default && value->empty())) {
      out += *value;
    } else if (has_default) {
      SPATE_ASSIGN_OR_RETURN(std::string d, interpolate(default_text, env));
      out += d;
    } else {
      return ConfigError(fmt::format(
          "environment variable {} is not set (write ${{{}:-default}} to give a default)", name,
          name));
    }
    i = j + 1;
  }
  return out;
}

}  // namespace spate::config
