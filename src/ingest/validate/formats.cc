#include "ingest/validate/formats.h"

#include <array>
#include <string>

#include "ingest/validate/ecma_regex.h"

namespace spate::schema {
namespace {

constexpr std::array<std::pair<std::string_view, Format>, 17> kFormats = {{
    {"date-time", Format::kDateTime},
    {"date", Format::kDate},
    {"time", Format::kTime},
    {"email", Format::kEmail},
    {"idn-email", Format::kIdnEmail},
    {"hostname", Format::kHostname},
    {"idn-hostname", Format::kIdnHostname},
    {"ipv4", Format::kIpv4},
    {"ipv6", Format::kIpv6},
    {"uri", Format::kUri},
    {"uri-reference", Format::kUriReference},
    {"iri", Format::kIri},
    {"iri-reference", Format::kIriReference},
    {"uri-template", Format::kUriTemplate},
    {"json-pointer", Format::kJsonPointer},
    {"relative-json-pointer", Format::kRelativeJsonPointer},
    {"regex", Format::kRegex},
}};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_non_ascii(char c) {
  return static_cast<unsigned char>(c) >= 0x80;
}

// `n` ASCII digits at s[pos..], as a number; -1 if any is not a digit or s is too short.
int digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return -1;
  int v = 0;
  for (size_t k = 0; k < n; ++k) {
    if (!is_digit(s[pos + k])) return -1;
    v = v * 10 + (s[pos + k] - '0');
  }
  return v;
}

bool is_leap_year(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

// RFC 3339 full-date: YYYY-MM-DD.
bool check_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  int y = digits(s, 0, 4), m = digits(s, 5, 2), d = digits(s, 8, 2);
  if (y < 0 || m < 1 || m > 12 || d < 1) return false;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int max_day = kDays[m - 1] + (m == 2 && is_leap_year(y) ? 1 : 0);
  return d <= max_day;
}

// RFC 3339 full-time: HH:MM:SS[.frac](Z|+HH:MM|-HH:MM); second 60 only at 23:59 UTC.
bool check_time(std::string_view s) {
  if (s.size() < 9 || s[2] != ':' || s[5] != ':') return false;
  int h = digits(s, 0, 2), m = digits(s, 3, 2), sec = digits(s, 6, 2);
  if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60) return false;
  size_t i = 8;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == start) return false;
  }
  if (i >= s.size()) return false;  // draft 7 requires the offset
  int offset_minutes = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    if (i + 1 != s.size()) return false;
  } else if (s[i] == '+' || s[i] == '-') {
    if (s.size() - i != 6 || s[i + 3] != ':') return false;
    int oh = digits(s, i + 1, 2), om = digits(s, i + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return false;
    offset_minutes = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
  } else {
    return false;
  }
  if (sec == 60) {
    int utc = ((h * 60 + m - offset_minutes) % 1440 + 1440) % 1440;
    if (utc != 23 * 60 + 59) return false;
  }
  return true;
}

bool check_date_time(std::string_view s) {
  if (s.size() < 20 || (s[10] != 'T' && s[10] != 't')) return false;
  return check_date(s.substr(0, 10)) && check_time(s.substr(11));
}

bool check_ipv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    int v = 0;
    while (i < s.size() && is_digit(s[i]) && i - start < 3) v = v * 10 + (s[i++] - '0');
    size_t len = i - start;
    if (len == 0 || v > 255 || (len > 1 && s[start] == '0')) return false;
    ++parts;
    if (i == s.size()) break;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
  return parts == 4;
}

bool check_ipv6(std::string_view s) {
  if (s.size() < 2) return false;
  size_t i = 0;
  int pieces = 0;
  bool double_colon = false;
  if (s.starts_with("::")) {
    double_colon = true;
    i = 2;
    if (i == s.size()) return true;
  } else if (s[0] == ':') {
    return false;
  }
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && s[j] != ':') ++j;
    std::string_view piece = s.substr(i, j - i);
    if (piece.find('.') != std::string_view::npos) {  // embedded IPv4 must come last
      if (j != s.size() || !check_ipv4(piece)) return false;
      pieces += 2;
      break;
    }
    if (piece.empty() || piece.size() > 4) return false;
    for (char c : piece) {
      if (!is_hex(c)) return false;
    }
    ++pieces;
    if (j == s.size()) break;
    if (j + 1 < s.size() && s[j + 1] == ':') {
      if (double_colon) return false;
      double_colon = true;
      i = j + 2;
      if (i == s.size()) break;
    } else {
      i = j + 1;
      if (i == s.size()) return false;  // trailing single ':'
    }
  }
  return double_colon ? pieces <= 7 : pieces == 8;
}

// RFC 1123 host name; `idn` also lets non-ASCII bytes through (no IDNA checks).
bool check_hostname(std::string_view s, bool idn) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!is_alpha(c) && !is_digit(c) && c != '-' && !(idn && is_non_ascii(c))) return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool is_atext(char c) {
  return is_alpha(c) || is_digit(c) ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool check_email(std::string_view s, bool idn) {
  auto at = s.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == s.size()) return false;
  std::string_view local = s.substr(0, at), domain = s.substr(at + 1);
  if (local.size() > 64) return false;
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return false;
    for (size_t i = 1; i + 1 < local.size(); ++i) {
      char c = local[i];
      if (c == '\\') {
        if (++i + 1 >= local.size()) return false;
        continue;
      }
      if (c == '"' || (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F) {
        return false;
      }
    }
  } else {
    if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
      return false;
    }
    for (char c : local) {
      if (c != '.' && !is_atext(c) && !(idn && is_non_ascii(c))) return false;
    }
  }
  if (domain.front() == '[') {
    if (domain.back() != ']') return false;
    std::string_view lit = domain.substr(1, domain.size() - 2);
    if (lit.starts_with("IPv6:")) return check_ipv6(lit.substr(5));
    return check_ipv4(lit);
  }
  return check_hostname(domain, idn);
}

bool is_unreserved(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
bool is_sub_delim(char c) {
  return std::string_view("!$&'()*+,;=").find(c) != std::string_view::npos;
}

// s[i..] of a URI component made of unreserved / pct-encoded / sub-delims / `extra` characters
// (and non-ASCII when `iri`). Advances i to the first character that is none of these.
bool scan_component(std::string_view s, size_t& i, std::string_view extra, bool iri,
                    std::string_view stop) {
  while (i < s.size() && stop.find(s[i]) == std::string_view::npos) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
      i += 3;
      continue;
    }
    if (!is_unreserved(c) && !is_sub_delim(c) && extra.find(c) == std::string_view::npos &&
        !(iri && is_non_ascii(c))) {
      return false;
    }
    ++i;
  }
  return true;
}

// RFC 3986 URI (absolute, with scheme) or, when !require_scheme, URI-reference.
bool check_uri(std::string_view s, bool require_scheme, bool iri) {
  size_t i = 0;
  // scheme
  size_t colon = s.find(':');
  size_t first_delim = s.find_first_of("/?#");
  bool has_scheme = false;
  if (colon != std::string_view::npos && colon > 0 &&
      (first_delim == s.npos || colon < first_delim)) {
    has_scheme = is_alpha(s[0]);
    for (size_t k = 1; k < colon && has_scheme; ++k) {
      char c = s[k];
      has_scheme = is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
    }
    if (!has_scheme) return false;  // a ':' in the first segment of a relative reference
    i = colon + 1;
  }
  if (require_scheme && !has_scheme) return false;
  if (s.substr(i).starts_with("//")) {  // authority
    i += 2;
    size_t end = s.find_first_of("/?#", i);
    if (end == std::string_view::npos) end = s.size();
    std::string_view auth = s.substr(i, end - i);
    size_t at = auth.rfind('@');
    if (at != std::string_view::npos) {
      size_t k = 0;
      std::string_view userinfo = auth.substr(0, at);
      if (!scan_component(userinfo, k, ":", iri, "") || k != userinfo.size()) return false;
      auth = auth.substr(at + 1);
    }
    std::string_view host = auth, port;
    if (auth.starts_with("[")) {
      size_t close = auth.find(']');
      if (close == std::string_view::npos) return false;
      std::string_view lit = auth.substr(1, close - 1);
      if (!(lit.starts_with("v") || lit.starts_with("V")) && !check_ipv6(lit)) return false;
      host = auth.substr(0, close + 1);
      std::string_view rest = auth.substr(close + 1);
      if (!rest.empty()) {
        if (rest[0] != ':') return false;
        port = rest.substr(1);
      }
    } else {
      size_t pc = auth.rfind(':');
      if (pc != std::string_view::npos) {
        host = auth.substr(0, pc);
        port = auth.substr(pc + 1);
      }
      size_t k = 0;
      if (!scan_component(host, k, "", iri, "") || k != host.size()) return false;
    }
    for (char c : port) {
      if (!is_digit(c)) return false;
    }
    i = end;
  }
  // path, query, fragment
  if (!scan_component(s, i, ":@/", iri, "?#")) return false;
  if (i < s.size() && s[i] == '?') {
    ++i;
    if (!scan_component(s, i, ":@/?", iri, "#")) return false;
  }
  if (i < s.size() && s[i] == '#') {
    ++i;
    if (!scan_component(s, i, ":@/?", iri, "")) return false;
  }
  return i == s.size();
}

// RFC 6570 URI Template syntax (levels 1-4).
bool check_uri_template(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '}') return false;
    if (c != '{') {
      if (c == '%') {
        if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
        i += 3;
        continue;
      }
      auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7F || std::string_view("\"'<>\\^`|").find(c) != s.npos) return false;
      ++i;
      continue;
    }
    size_t close = s.find('}', i);
    if (close == std::string_view::npos) return false;
    std::string_view expr = s.substr(i + 1, close - i - 1);
    i = close + 1;
    if (!expr.empty() && std::string_view("+#./;?&=,!@|").find(expr[0]) != s.npos) {
      expr.remove_prefix(1);
    }
    if (expr.empty()) return false;
    size_t start = 0;
    while (start <= expr.size()) {
      size_t comma = expr.find(',', start);
      std::string_view spec = expr.substr(start, comma == s.npos ? s.npos : comma - start);
      size_t k = 0;
      bool need_char = true;
      while (k < spec.size()) {
        char v = spec[k];
        if (is_alpha(v) || is_digit(v) || v == '_') {
          need_char = false;
          ++k;
        } else if (v == '%' && k + 2 < spec.size() && is_hex(spec[k + 1]) && is_hex(spec[k + 2])) {
          need_char = false;
          k += 3;
        } else if (v == '.' && !need_char) {
          need_char = true;
          ++k;
        } else {
          break;
        }
      }
      if (k == 0 || need_char) return false;
      std::string_view modifier = spec.substr(k);
      if (!modifier.empty() && modifier != "*") {
        if (modifier[0] != ':' || modifier.size() < 2 || modifier.size() > 5 ||
            modifier[1] == '0') {
          return false;
        }
        for (char d : modifier.substr(1)) {
          if (!is_digit(d)) return false;
        }
      }
      if (comma == s.npos) break;
      start = comma + 1;
    }
  }
  return true;
}

bool check_json_pointer(std::string_view s) {
  if (s.empty()) return true;
  if (s[0] != '/') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '~' && (i + 1 >= s.size() || (s[i + 1] != '0' && s[i + 1] != '1'))) return false;
  }
  return true;
}

// A non-negative integer without leading zeros at s[i..]; advances i.
bool scan_non_negative_integer(std::string_view s, size_t& i) {
  size_t start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  return i > start && !(i - start > 1 && s[start] == '0');
}

// Relative JSON Pointer: integer, optional index manipulation (+N / -N), then "#" or a pointer.
bool check_relative_json_pointer(std::string_view s) {
  size_t i = 0;
  if (!scan_non_negative_integer(s, i)) return false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    ++i;
    if (!scan_non_negative_integer(s, i)) return false;
  }
  std::string_view rest = s.substr(i);
  return rest == "#" || check_json_pointer(rest);
}

}  // namespace

std::optional<Format> format_from_name(std::string_view name) {
  for (const auto& [n, f] : kFormats) {
    if (n == name) return f;
  }
  return std::nullopt;
}

const std::vector<std::string_view>& format_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    v.reserve(kFormats.size());
    for (const auto& entry : kFormats) v.push_back(entry.first);
    return v;
  }();
  return names;
}

bool format_is_checked(Format f) {
  return f != Format::kIdnHostname;
}

bool check_format(Format f, std::string_view s) {
  switch (f) {
    case Format::kDateTime:
      return check_date_time(s);
    case Format::kDate:
      return check_date(s);
    case Format::kTime:
      return check_time(s);
    case Format::kEmail:
      return check_email(s, false);
    case Format::kIdnEmail:
      return check_email(s, true);
    case Format::kHostname:
      return check_hostname(s, false);
    case Format::kIdnHostname:
      return true;
    case Format::kIpv4:
      return check_ipv4(s);
    case Format::kIpv6:
      return check_ipv6(s);
    case Format::kUri:
      return check_uri(s, true, false);
    case Format::kUriReference:
      return check_uri(s, false, false);
    case Format::kIri:
      return check_uri(s, true, true);
    case Format::kIriReference:
      return check_uri(s, false, true);
    case Format::kUriTemplate:
      return check_uri_template(s);
    case Format::kJsonPointer:
      return check_json_pointer(s);
    case Format::kRelativeJsonPointer:
      return check_relative_json_pointer(s);
    case Format::kRegex:
      return check_ecma_regex(s).ok();
  }
  return true;
}

}  // namespace spate::schema
