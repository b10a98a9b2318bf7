#include "ingest/sources/file_csv.h"

#include <set>

#include "base/json_escape.h"

namespace spate::ingest {
namespace {

enum class State { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted };

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// JSON number syntax: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, with at most 18
// integer digits (so that every parser reads it without overflow) and a small exponent.
bool is_json_number(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  size_t int_start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  size_t int_digits = i - int_start;
  if (int_digits == 0 || int_digits > 18) return false;
  if (int_digits > 1 && s[int_start] == '0') return false;
  if (i < s.size() && s[i] == '.') {
    size_t frac_start = ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == frac_start || i - frac_start > 18) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == exp_start || i - exp_start > 2) return false;
  }
  return i == s.size();
}

}  // namespace

size_t csv_record_end(std::string_view data) {
  State st = State::kFieldStart;
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    switch (st) {
      case State::kFieldStart:
        if (c == '\n') return i;
        st = c == '"' ? State::kQuoted : c == ',' ? State::kFieldStart : State::kUnquoted;
        break;
      case State::kUnquoted:
        if (c == '\n') return i;
        if (c == ',') st = State::kFieldStart;
        break;
      case State::kQuoted:
        if (c == '"') st = State::kQuoteInQuoted;
        break;
      case State::kQuoteInQuoted:
        if (c == '\n') return i;
        st = c == '"' ? State::kQuoted : c == ',' ? State::kFieldStart : State::kUnquoted;
        break;
    }
  }
  return std::string_view::npos;
}

bool parse_csv_record(std::string_view record, std::vector<std::string>* fields,
                      std::string* reason) {
  fields->clear();
  if (!record.empty() && record.back() == '\r') record.remove_suffix(1);
  State st = State::kFieldStart;
  std::string field;
  for (const char c : record) {
    switch (st) {
      case State::kFieldStart:
        if (c == '"') {
          st = State::kQuoted;
        } else if (c == ',') {
          fields->push_back(std::move(field));
          field.clear();
        } else {
          field.push_back(c);
          st = State::kUnquoted;
        }
        break;
      case State::kUnquoted:
        if (c == ',') {
          fields->push_back(std::move(field));
          field.clear();
          st = State::kFieldStart;
        } else {
          field.push_back(c);
        }
        break;
      case State::kQuoted:
        if (c == '"') {
          st = State::kQuoteInQuoted;
        } else {
          field.push_back(c);
        }
        break;
      case State::kQuoteInQuoted:
        if (c == '"') {  // "" inside a quoted field
          field.push_back('"');
          st = State::kQuoted;
        } else if (c == ',') {
          fields->push_back(std::move(field));
          field.clear();
          st = State::kFieldStart;
        } else {  // text after the closing quote: keep it
          field.push_back(c);
          st = State::kUnquoted;
        }
        break;
    }
  }
  if (st == State::kQuoted) {
    *reason = "unterminated quoted field";
    fields->clear();
    return false;
  }
  fields->push_back(std::move(field));
  return true;
}

std::vector<std::string> csv_header_keys(const std::vector<std::string>& header) {
  std::vector<std::string> keys;
  keys.reserve(header.size());
  std::set<std::string, std::less<>> used;
  for (size_t i = 0; i < header.size(); ++i) {
    std::string base = header[i].empty() ? "column_" + std::to_string(i + 1) : header[i];
    std::string key = base;
    for (int n = 2; used.count(key) > 0; ++n) key = base + "_" + std::to_string(n);
    used.insert(key);
    keys.push_back(std::move(key));
  }
  return keys;
}

void append_csv_row_json(std::string& out, const std::vector<std::string>& keys,
                         const std::vector<std::string>& fields, bool infer_types) {
  out.push_back('{');
  for (size_t i = 0; i < keys.size() && i < fields.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_json_quoted(out, keys[i]);
    out.push_back(':');
    const std::string& v = fields[i];
    if (infer_types && is_json_number(v)) {
      out += v;
    } else if (infer_types && (v == "true" || v == "True" || v == "TRUE")) {
      out += "true";
    } else if (infer_types && (v == "false" || v == "False" || v == "FALSE")) {
      out += "false";
    } else {
      append_json_quoted(out, v);
    }
  }
  out.push_back('}');
}

}  // namespace spate::ingest
