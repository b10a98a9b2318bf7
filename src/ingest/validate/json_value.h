// JSON value semantics that JSON Schema needs, over simdjson DOM values: numbers compared by
// mathematical value across int64/uint64/double (1 == 1.0, exact even beyond 2^53), deep
// equality (object member order ignored), a hash consistent with that equality, and length in
// Unicode code points.
//
// Contract: pure functions, thread-safe, no allocation (except json_text()). Recursion follows
// the value's nesting, which simdjson's parser bounds (its max depth, 1024 by default).
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace spate::schema {

/// The array/object/string inside `e`, which the caller knows has that type. By value: binding
/// `e.get_array().value_unsafe()` in a range-for would dangle (it is a reference into a
/// temporary simdjson_result).
inline simdjson::dom::array as_array(const simdjson::dom::element& e) {
  return e.get_array().value_unsafe();
}
inline simdjson::dom::object as_object(const simdjson::dom::element& e) {
  return e.get_object().value_unsafe();
}
inline std::string_view as_string(const simdjson::dom::element& e) {
  return e.get_string().value_unsafe();
}

/// Number of elements/members. simdjson's size() saturates at 0xFFFFFF; beyond that, count.
inline size_t element_count(const simdjson::dom::array& a) {
  size_t n = a.size();
  if (n < 0xFFFFFF) return n;
  n = 0;
  for (auto it = a.begin(); it != a.end(); ++it) ++n;
  return n;
}
inline size_t element_count(const simdjson::dom::object& o) {
  size_t n = o.size();
  if (n < 0xFFFFFF) return n;
  n = 0;
  for (auto it = o.begin(); it != o.end(); ++it) ++n;
  return n;
}

/// A JSON number as simdjson parsed it.
struct Number {
  enum Kind : uint8_t { kInt, kUint, kDouble };
  Kind kind = kInt;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;

  static Number of_int(int64_t v) { return {kInt, v, 0, 0}; }
  static Number of_uint(uint64_t v) { return {kUint, 0, v, 0}; }
  static Number of_double(double v) { return {kDouble, 0, 0, v}; }
  double as_double() const;
  /// True when the value has no fractional part (1, 1.0, 1e3).
  bool is_integral() const;
};

/// The number `e` holds; false if `e` is not a number.
bool to_number(const simdjson::dom::element& e, Number* out);

/// -1, 0 or 1 as a <, ==, > b, comparing exact values.
int compare_numbers(const Number& a, const Number& b);

/// True if x / m is an integer. m must be > 0. Exact when m is an integer; for fractional m the
/// quotient is computed in double and accepted within 16 ulps of an integer (so 0.0075 is a
/// multiple of 0.0001); when the quotient overflows, fmod decides (1e308 is a multiple of 0.5).
bool is_multiple_of(const Number& x, const Number& m);

/// Deep JSON equality: numbers by value, strings by bytes, arrays in order, objects as sets of
/// members.
bool json_equal(const simdjson::dom::element& a, const simdjson::dom::element& b);

/// Hash consistent with json_equal (json_equal(a, b) implies equal hashes).
uint64_t json_hash(const simdjson::dom::element& e);
uint64_t json_string_hash(std::string_view s);

/// Number of Unicode code points in valid UTF-8 text.
size_t utf8_length(std::string_view s);

/// `e` as minified JSON, cut to about max_len bytes (on a UTF-8 boundary) with "..." appended.
std::string json_text(const simdjson::dom::element& e, size_t max_len = 80);

/// `s` as a quoted JSON string, cut like json_text.
std::string quoted_text(std::string_view s, size_t max_len = 80);

}  // namespace spate::schema
