#include "ingest/sources/postgres_codec.h"

#include <simdjson.h>

#include <fmt/format.h>

#include "base/json_escape.h"

namespace spate::ingest::pg {
namespace {

// Type OIDs from PostgreSQL's pg_type.dat (stable across versions).
constexpr uint32_t kBoolOid = 16;
constexpr uint32_t kByteaOid = 17;
constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kInt2Oid = 21;
constexpr uint32_t kInt4Oid = 23;
constexpr uint32_t kOidOid = 26;
constexpr uint32_t kJsonOid = 114;
constexpr uint32_t kFloat4Oid = 700;
constexpr uint32_t kFloat8Oid = 701;
constexpr uint32_t kTimestampOid = 1114;
constexpr uint32_t kTimestampTzOid = 1184;
constexpr uint32_t kNumericOid = 1700;
constexpr uint32_t kJsonbOid = 3802;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// bytea hex output: "\x0aff..." -> raw bytes.
bool decode_bytea_hex(std::string_view text, std::string* out) {
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || text.size() % 2 != 0) return false;
  out->clear();
  out->reserve((text.size() - 2) / 2);
  for (size_t i = 2; i < text.size(); i += 2) {
    int hi = hex_value(text[i]);
    int lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

// A JSON number as PostgreSQL prints floats: [-]digits[.digits][e[+-]digits].
bool is_json_number(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (i == s.size() || !is_digit(s[i])) return false;
  if (s[i] == '0' && i + 1 < s.size() && is_digit(s[i + 1])) return false;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i == s.size() || !is_digit(s[i])) return false;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (i == s.size() || !is_digit(s[i])) return false;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  return i == s.size();
}

}  // namespace

ValueKind value_kind(uint32_t type_oid) {
  switch (type_oid) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
    case kOidOid:
      return ValueKind::kInteger;
    case kFloat4Oid:
    case kFloat8Oid:
      return ValueKind::kFloat;
    case kNumericOid:
      return ValueKind::kNumeric;
    case kBoolOid:
      return ValueKind::kBool;
    case kJsonOid:
    case kJsonbOid:
      return ValueKind::kJson;
    case kTimestampTzOid:
      return ValueKind::kTimestampTz;
    case kTimestampOid:
      return ValueKind::kTimestamp;
    case kByteaOid:
      return ValueKind::kBytea;
    default:
      return ValueKind::kString;
  }
}

bool parse_int64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  // Accumulate negatively so that INT64_MIN parses.
  int64_t v = 0;
  for (; i < s.size(); ++i) {
    if (!is_digit(s[i])) return false;
    int d = s[i] - '0';
    if (v < (INT64_MIN + d) / 10) return false;
    v = v * 10 - d;
  }
  if (s[0] != '-') {
    if (v == INT64_MIN) return false;
    v = -v;
  }
  *out = v;
  return true;
}

bool numeric_fits_json_number(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  size_t int_begin = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  size_t int_end = i;
  if (int_end == int_begin) return false;  // NaN, Infinity, garbage
  if (i == s.size()) {
    int64_t v;
    return parse_int64(s, &v);  // an integer: exact if it fits int64
  }
  if (s[i] != '.') return false;
  ++i;
  size_t frac_begin = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i != s.size() || i == frac_begin) return false;
  // Significant digits: strip leading zeros (integer part then fraction) and trailing zeros.
  std::string digits;
  digits.append(s.substr(int_begin, int_end - int_begin));
  digits.append(s.substr(frac_begin));
  size_t first = digits.find_first_not_of('0');
  if (first == std::string::npos) return true;  // zero
  size_t last = digits.find_last_not_of('0');
  size_t significant = last - first + 1;
  // Magnitude: keep well inside double's range (about 1e-307 .. 1e308).
  size_t int_digits = int_end - int_begin;
  if (first < int_digits && int_digits - first > 300) return false;
  if (first >= int_digits && first - int_digits > 300) return false;
  return significant <= 15;
}

std::string timestamp_to_rfc3339(std::string_view text, bool with_tz) {
  size_t sp = text.find(' ');
  if (sp == std::string_view::npos || text.find(' ', sp + 1) != std::string_view::npos) {
    return std::string(text);  // infinity, -infinity, "... BC"
  }
  std::string_view date = text.substr(0, sp);
  std::string_view rest = text.substr(sp + 1);
  if (date.empty() || !is_digit(date[0]) || rest.empty() || !is_digit(rest[0])) {
    return std::string(text);
  }
  std::string out;
  out.reserve(text.size() + 4);
  out.append(date);
  out.push_back('T');
  if (!with_tz) {
    out.append(rest);
    out.push_back('Z');
    return out;
  }
  size_t p = rest.find_first_of("+-");
  if (p == std::string_view::npos) return std::string(text);
  std::string_view time = rest.substr(0, p);
  std::string_view off = rest.substr(p);  // +HH, +HH:MM or +HH:MM:SS
  out.append(time);
  if (off == "+00" || off == "-00" || off == "+00:00") {
    out.push_back('Z');
  } else if (off.size() == 3) {
    out.append(off);
    out.append(":00");
  } else if (off.size() == 6) {
    out.append(off);
  } else {
    return std::string(text);  // seconds in the offset (historic local mean time)
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rem = in.size() - i;
  if (rem > 0) {
    uint32_t v = static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << 16;
    if (rem == 2) v |= static_cast<uint32_t>(static_cast<uint8_t>(in[i + 1])) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rem == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

bool minify_json(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  bool in_string = false;
  int depth = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (in_string) {
      out->push_back(c);
      if (c == '\\' && i + 1 < in.size()) {
        out->push_back(in[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case ' ':
      case '\t':
      case '\n':
      case '\r':
        continue;
      case '"':
        in_string = true;
        break;
      case '{':
      case '[':
        ++depth;
        break;
      case '}':
      case ']':
        if (--depth < 0) return false;
        break;
      default:
        break;
    }
    out->push_back(c);
  }
  return !in_string && depth == 0 && !out->empty();
}

const char* const kSessionSetup =
    "SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; "
    "SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 3; SET bytea_output = 'hex'; "
    "SET default_transaction_read_only = on";

void RowJson::reset(const std::vector<Column>& columns) {
  keys_.clear();
  kinds_.clear();
  for (const Column& c : columns) {
    std::string k;
    append_json_quoted(k, c.name);
    keys_.push_back(k + ":");
    kinds_.push_back(value_kind(c.type_oid));
  }
}

void RowJson::append(std::string& out,
                     const std::vector<std::optional<std::string_view>>& values) const {
  out.push_back('{');
  for (size_t i = 0; i < values.size() && i < keys_.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += keys_[i];
    if (values[i]) {
      append_value_json(out, kinds_[i], *values[i]);
    } else {
      out += "null";
    }
  }
  out.push_back('}');
}

void append_value_json(std::string& out, ValueKind kind, std::string_view text) {
  switch (kind) {
    case ValueKind::kInteger: {
      int64_t v;
      if (parse_int64(text, &v)) {
        out.append(text);
        return;
      }
      break;
    }
    case ValueKind::kFloat:
      if (is_json_number(text)) {
        out.append(text);
        return;
      }
      break;  // NaN, Infinity, -Infinity
    case ValueKind::kNumeric:
      if (numeric_fits_json_number(text)) {
        out.append(text);
        return;
      }
      break;
    case ValueKind::kBool:
      if (text == "t" || text == "f") {
        out.append(text == "t" ? "true" : "false");
        return;
      }
      break;
    case ValueKind::kJson: {
      std::string min;
      if (minify_json(text, &min)) {
        out.append(min);
        return;
      }
      break;
    }
    case ValueKind::kTimestampTz:
    case ValueKind::kTimestamp:
      append_json_quoted(out, timestamp_to_rfc3339(text, kind == ValueKind::kTimestampTz));
      return;
    case ValueKind::kBytea: {
      std::string raw;
      if (decode_bytea_hex(text, &raw)) {
        out.push_back('"');
        out.append(base64_encode(raw));  // base64 needs no escaping
        out.push_back('"');
        return;
      }
      break;
    }
    case ValueKind::kString:
      break;
  }
  append_json_quoted(out, text);
}

std::string quote_ident(std::string_view id) {
  std::string out = "\"";
  for (char c : id) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string quote_qualified(std::string_view name) {
  std::string t;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    if (!t.empty()) t.push_back('.');
    t += quote_ident(name.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return t;
}

std::string build_table_query(std::string_view table, std::string_view cursor_column,
                              int64_t batch_rows) {
  std::string c = quote_ident(cursor_column);
  return fmt::format("SELECT * FROM {} WHERE {} > $1 ORDER BY {} LIMIT {}", quote_qualified(table),
                     c, c, batch_rows);
}

std::string check_query_placeholders(std::string_view q) {
  bool has_one = false;
  for (size_t i = 0; i < q.size(); ++i) {
    char c = q[i];
    if (c == '\'' || c == '"') {  // skip literals and quoted identifiers
      size_t end = q.find(c, i + 1);
      if (end == std::string_view::npos) break;
      i = end;
      continue;
    }
    if (c != '$' || i + 1 >= q.size() || !is_digit(q[i + 1])) continue;
    size_t j = i + 1;
    while (j < q.size() && is_digit(q[j])) ++j;
    std::string_view n = q.substr(i + 1, j - i - 1);
    if (n != "1") {
      return fmt::format("uses ${} but the only parameter is $1 (the cursor)", n);
    }
    has_one = true;
    i = j - 1;
  }
  if (!has_one) {
    return "must use $1 for the cursor, e.g. SELECT * FROM orders WHERE id > $1 ORDER BY id "
           "LIMIT 1000";
  }
  return "";
}

std::string encode_checkpoint(const Checkpoint& c) {
  std::string out = "{\"version\":1,\"cursor\":";
  append_json_quoted(out, c.cursor);
  out += ",\"cursor_type\":";
  append_json_quoted(out, c.cursor_type);
  out += ",\"cursor_column\":";
  append_json_quoted(out, c.cursor_column);
  out += ",\"offsets\":{";
  bool first_topic = true;
  for (const auto& [topic, offs] : c.offsets) {
    if (!first_topic) out.push_back(',');
    first_topic = false;
    append_json_quoted(out, topic);
    out += ":[";
    for (size_t i = 0; i < offs.size(); ++i) {
      if (i > 0) out.push_back(',');
      out += std::to_string(offs[i]);
    }
    out.push_back(']');
  }
  out += "}}\n";
  return out;
}

Result<Checkpoint> decode_checkpoint(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(text.data(), text.size()).get(doc)) {
    return Corruption(std::string("not JSON: ") + simdjson::error_message(err));
  }
  Checkpoint c;
  int64_t version = 0;
  std::string_view sv;
  simdjson::dom::object offsets;
  if (doc["version"].get(version) || version != 1) return Corruption("unknown version");
  if (doc["cursor"].get(sv)) return Corruption("missing cursor");
  c.cursor = std::string(sv);
  if (doc["cursor_type"].get(sv)) return Corruption("missing cursor_type");
  c.cursor_type = std::string(sv);
  if (doc["cursor_column"].get(sv)) return Corruption("missing cursor_column");
  c.cursor_column = std::string(sv);
  if (doc["offsets"].get(offsets)) return Corruption("missing offsets");
  for (auto field : offsets) {
    simdjson::dom::array arr;
    if (field.value.get(arr)) return Corruption("offsets must be arrays");
    auto& v = c.offsets[std::string(field.key)];
    for (auto e : arr) {
      int64_t o;
      if (e.get(o) || o < 0) return Corruption("offsets must be non-negative integers");
      v.push_back(o);
    }
  }
  return c;
}

}  // namespace spate::ingest::pg
