#include "orchestrate/prom_text.h"

#include <cmath>
#include <cstdlib>
#include <string>

namespace spate::orchestrate {

namespace {

bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

bool parse_value(std::string_view s, double* out) {
  if (s == "+Inf" || s == "Inf") {
    *out = HUGE_VAL;
    return true;
  }
  if (s == "-Inf") {
    *out = -HUGE_VAL;
    return true;
  }
  if (s == "NaN") {
    *out = std::nan("");
    return true;
  }
  if (s.empty() || s.size() > 64) return false;
  std::string tmp(s);
  char* end = nullptr;
  *out = std::strtod(tmp.c_str(), &end);
  return end == tmp.c_str() + tmp.size();
}

// One sample line; false if malformed.
bool parse_line(std::string_view line, PromSample* out) {
  size_t i = 0;
  while (i < line.size() && name_char(line[i], i == 0)) ++i;
  if (i == 0) return false;
  out->name.assign(line.substr(0, i));
  out->labels.clear();
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
      if (i >= line.size()) return false;
      if (line[i] == '}') {
        ++i;
        break;
      }
      const size_t k0 = i;
      while (i < line.size() && name_char(line[i], i == k0)) ++i;
      if (i == k0 || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return false;
      std::string key(line.substr(k0, i - k0));
      i += 2;
      std::string value;
      for (;;) {
        if (i >= line.size()) return false;
        const char c = line[i++];
        if (c == '"') break;
        if (c == '\\') {
          if (i >= line.size()) return false;
          const char e = line[i++];
          value.push_back(e == 'n' ? '\n' : e);
        } else {
          value.push_back(c);
        }
      }
      out->labels.emplace_back(std::move(key), std::move(value));
    }
  }
  if (i >= line.size() || (line[i] != ' ' && line[i] != '\t')) return false;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  size_t j = i;
  while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
  return parse_value(line.substr(i, j - i), &out->value);
}

}  // namespace

std::string_view PromSample::label(std::string_view key) const {
  for (const auto& [k, v] : labels) {
    if (k == key) return v;
  }
  return {};
}

double PromText::sum(std::string_view name, bool* found) const {
  double total = 0;
  bool any = false;
  for (const PromSample& s : samples) {
    if (s.name == name) {
      any = true;
      if (!std::isnan(s.value)) total += s.value;
    }
  }
  if (found != nullptr) *found = any;
  return total;
}

PromText parse_prometheus_text(std::string_view text) {
  PromText out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t b = 0;
    while (b < line.size() && (line[b] == ' ' || line[b] == '\t')) ++b;
    line.remove_prefix(b);
    if (line.empty() || line[0] == '#') continue;
    PromSample s;
    if (parse_line(line, &s)) {
      out.samples.push_back(std::move(s));
    } else {
      ++out.malformed_lines;
    }
  }
  return out;
}

}  // namespace spate::orchestrate
