#include "event/json.h"

#include <simdjson.h>

namespace spate::json {
namespace {
simdjson::dom::parser& parser() {
  thread_local simdjson::dom::parser p;
  return p;
}
// Days since 1970-01-01 of a civil date (proleptic Gregorian).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}
}  // namespace

Status validate(std::string_view doc) {
  simdjson::padded_string padded(doc);
  auto r = parser().parse(padded);
  if (r.error()) return InvalidArgument(simdjson::error_message(r.error()));
  return Status::Ok();
}

Result<std::optional<std::string>> field_as_string(std::string_view doc, std::string_view path) {
  simdjson::padded_string padded(doc);
  simdjson::dom::element e;
  auto err = parser().parse(padded).get(e);
  if (err) return InvalidArgument(simdjson::error_message(err));
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string_view part = path.substr(start, dot == std::string_view::npos ? path.npos : dot - start);
    simdjson::dom::object obj;
    if (e.get_object().get(obj)) return std::optional<std::string>{};
    simdjson::dom::element child;
    if (obj.at_key(part).get(child)) return std::optional<std::string>{};
    e = child;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  std::string_view sv;
  if (!e.get_string().get(sv)) return std::optional<std::string>(std::string(sv));
  return std::optional<std::string>(simdjson::minify(e));
}



bool find_path(simdjson::dom::element e, std::string_view path, simdjson::dom::element* out) {
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string_view part = path.substr(start, dot == std::string_view::npos ? path.npos : dot - start);
    simdjson::dom::object obj;
    if (e.get_object().get(obj)) return false;
    if (obj.at_key(part).get(e)) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  *out = e;
  return true;
}

bool parse_rfc3339(std::string_view s, int64_t* ms) {
  auto num = [&](size_t pos, size_t n, int* v) {
    if (pos + n > s.size()) return false;
    int x = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s[pos + i];
      if (c < '0' || c > '9') return false;
      x = x * 10 + (c - '0');
    }
    *v = x;
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!num(0, 4, &y) || s.size() < 19 || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' ||
      !num(8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, &h) ||
      s[13] != ':' || !num(14, 2, &mi) || s[16] != ':' || !num(17, 2, &se)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
  size_t p = 19;
  int frac_ms = 0;
  if (p < s.size() && s[p] == '.') {
    ++p;
    int digits = 0;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      if (digits < 3) frac_ms = frac_ms * 10 + (s[p] - '0');
      ++digits;
      ++p;
    }
    if (digits == 0) return false;
    for (int k = digits; k < 3; ++k) frac_ms *= 10;
  }
  int offset_min = 0;
  if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
    ++p;
  } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
    int oh, om;
    if (!num(p + 1, 2, &oh) || p + 3 >= s.size() || s[p + 3] != ':' || !num(p + 4, 2, &om)) {
      return false;
    }
    offset_min = (oh * 60 + om) * (s[p] == '+' ? 1 : -1);
    p += 6;
  } else {
    return false;
  }
  if (p != s.size()) return false;
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  *ms = ((days * 24 + h) * 60 + mi) * 60'000LL + se * 1000LL + frac_ms - offset_min * 60'000LL;
  return true;
}

bool event_time_ms(const simdjson::dom::element& e, int64_t* ms) {
  double d;
  std::string_view sv;
  if (!e.get_int64().get(*ms)) return true;
  if (!e.get_double().get(d)) {
    if (!(d > -9.2e18 && d < 9.2e18)) return false;
    *ms = static_cast<int64_t>(d);
    return true;
  }
  return !e.get_string().get(sv) && parse_rfc3339(sv, ms);
}

}  // namespace spate::json
