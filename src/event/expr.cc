// Values of the expression language (equality, ordering, hashing, JSON rendering) and the
// Expression methods other than compile() (which lives in expr_parse.cc).
#include "event/expr.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/hash.h"
#include "base/json_escape.h"
#include "event/expr_internal.h"

namespace spate::expr {

using internal::Program;

Value Value::from_string(std::string s) {
  auto owned = std::make_shared<const std::string>(std::move(s));
  Value v(Kind::kString);
  v.str_ = *owned;
  v.owner_ = std::move(owned);
  return v;
}

Value Value::from_list(std::vector<Value> items) {
  auto owned = std::make_shared<const std::vector<Value>>(std::move(items));
  Value v(Kind::kArray);
  v.list_ = owned.get();
  v.owner_ = std::move(owned);
  return v;
}

Value Value::from_element(const simdjson::dom::element& e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::ARRAY: {
      Value v(Kind::kArray);
      v.elem_ = e;
      return v;
    }
    case element_type::OBJECT: {
      Value v(Kind::kObject);
      v.elem_ = e;
      return v;
    }
    case element_type::INT64: {
      int64_t i = 0;
      if (e.get_int64().get(i)) return null();
      return from_int(i);
    }
    case element_type::UINT64: {
      uint64_t u = 0;
      if (e.get_uint64().get(u)) return null();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return from_int(static_cast<int64_t>(u));
      }
      return from_double(static_cast<double>(u));
    }
    case element_type::DOUBLE: {
      double d = 0;
      if (e.get_double().get(d)) return null();
      return from_double(d);
    }
    case element_type::STRING: {
      std::string_view s;
      if (e.get_string().get(s)) return null();
      return from_view(s);
    }
    case element_type::BOOL: {
      bool b = false;
      if (e.get_bool().get(b)) return null();
      return from_bool(b);
    }
    case element_type::NULL_VALUE:
      return null();
  }
  return null();
}

size_t Value::size() const {
  if (kind_ == Kind::kArray) {
    if (list_ != nullptr) return list_->size();
    simdjson::dom::array a;
    if (elem_.get_array().get(a)) return 0;
    return a.size();
  }
  if (kind_ == Kind::kObject) {
    simdjson::dom::object o;
    if (elem_.get_object().get(o)) return 0;
    return o.size();
  }
  return 0;
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kMissing:
    case Kind::kNull:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kDouble:
      return d_ != 0.0 && !std::isnan(d_);
    case Kind::kString:
      return !str_.empty();
    case Kind::kArray:
    case Kind::kObject:
      return true;
  }
  return false;
}

namespace internal {
namespace {

constexpr double kTwo63 = 9223372036854775808.0;  // 2^63

/// Exact ordering of an int64 and a double: -1, 0, 1, or 2 for NaN.
int compare_int_double(int64_t i, double d) {
  if (std::isnan(d)) return 2;
  if (d >= kTwo63) return -1;
  if (d < -kTwo63) return 1;
  const auto t = static_cast<int64_t>(d);  // truncation; exact in this range
  if (i < t) return -1;
  if (i > t) return 1;
  const double frac = d - static_cast<double>(t);  // exact
  if (frac > 0) return -1;
  if (frac < 0) return 1;
  return 0;
}

int compare_numbers(const Value& a, const Value& b) {
  if (a.is_int() && b.is_int()) {
    return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
  }
  if (a.is_int()) return compare_int_double(a.as_int(), b.as_double());
  if (b.is_int()) {
    const int c = compare_int_double(b.as_int(), a.as_double());
    return c == 2 ? 2 : -c;
  }
  const double x = a.as_double();
  const double y = b.as_double();
  if (x < y) return -1;
  if (x > y) return 1;
  if (x == y) return 0;
  return 2;  // NaN
}

bool arrays_equal(const Value& a, const Value& b) {
  if (a.size() != b.size()) return false;
  const std::vector<Value>* la = a.list();
  const std::vector<Value>* lb = b.list();
  if (la != nullptr && lb != nullptr) {
    for (size_t i = 0; i < la->size(); ++i) {
      if (!values_equal((*la)[i], (*lb)[i])) return false;
    }
    return true;
  }
  if (la != nullptr || lb != nullptr) {
    const std::vector<Value>& list = la != nullptr ? *la : *lb;
    const Value& other = la != nullptr ? b : a;
    simdjson::dom::array arr;
    if (other.element().get_array().get(arr)) return false;
    size_t i = 0;
    for (simdjson::dom::element e : arr) {
      if (i >= list.size() || !values_equal(list[i], Value::from_element(e))) return false;
      ++i;
    }
    return i == list.size();
  }
  simdjson::dom::array x;
  simdjson::dom::array y;
  if (a.element().get_array().get(x) || b.element().get_array().get(y)) return false;
  auto it = y.begin();
  const auto end = y.end();
  for (simdjson::dom::element e : x) {
    if (!(it != end)) return false;
    if (!values_equal(Value::from_element(e), Value::from_element(*it))) return false;
    ++it;
  }
  return !(it != end);
}

bool objects_equal(const Value& a, const Value& b) {
  simdjson::dom::object x;
  simdjson::dom::object y;
  if (a.element().get_object().get(x) || b.element().get_object().get(y)) return false;
  if (x.size() != y.size()) return false;
  for (auto kv : x) {
    simdjson::dom::element other;
    if (y.at_key(kv.key).get(other)) return false;
    if (!values_equal(Value::from_element(kv.value), Value::from_element(other))) return false;
  }
  return true;
}

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

int compare_values(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b);
  if (a.is_string() && b.is_string()) {
    // Bytewise: char_traits<char>::compare compares as unsigned char.
    const int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  return 2;
}

bool hash_scalar(const Value& v, uint64_t* out) {
  switch (v.kind()) {
    case Value::Kind::kNull:
      *out = mix64(0x6e756c6cULL);
      return true;
    case Value::Kind::kBool:
      *out = mix64(0x626f6f6cULL + (v.as_bool() ? 1 : 0));
      return true;
    case Value::Kind::kInt:
      *out = mix64(static_cast<uint64_t>(v.as_int()));
      return true;
    case Value::Kind::kDouble: {
      const double d = v.as_double();
      if (std::isnan(d)) return false;
      if (d >= -kTwo63 && d < kTwo63 && d == std::trunc(d)) {
        // Integral: hash like the equal int (-0.0 included).
        *out = mix64(static_cast<uint64_t>(static_cast<int64_t>(d)));
      } else {
        *out = mix64(std::bit_cast<uint64_t>(d) ^ 0x5bd1e9955bd1e995ULL);
      }
      return true;
    }
    case Value::Kind::kString:
      *out = hash64(v.as_string());
      return true;
    case Value::Kind::kMissing:
    case Value::Kind::kArray:
    case Value::Kind::kObject:
      return false;
  }
  return false;
}

ConstSet make_const_set(const std::vector<Value>* items) {
  ConstSet set;
  set.items = items;
  const size_t n = items->size();
  if (n < kHashSetMinItems) {
    for (size_t i = 0; i < n; ++i) set.scanned.push_back(static_cast<uint32_t>(i));
    return set;
  }
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  set.slots.assign(cap, 0);
  const size_t mask = cap - 1;
  for (size_t i = 0; i < n; ++i) {
    const Value& item = (*items)[i];
    uint64_t h = 0;
    if (!hash_scalar(item, &h)) {
      // Arrays and objects can still equal a probe; NaN and missing equal nothing.
      if (item.is_array() || item.is_object()) set.scanned.push_back(static_cast<uint32_t>(i));
      continue;
    }
    size_t slot = h & mask;
    while (set.slots[slot] != 0) slot = (slot + 1) & mask;
    set.slots[slot] = static_cast<uint32_t>(i + 1);
  }
  return set;
}

bool const_set_contains(const ConstSet& set, const Value& v) {
  if (v.is_missing()) return false;
  const std::vector<Value>& items = *set.items;
  if (!set.slots.empty()) {
    uint64_t h = 0;
    if (hash_scalar(v, &h)) {
      const size_t mask = set.slots.size() - 1;
      for (size_t slot = h & mask; set.slots[slot] != 0; slot = (slot + 1) & mask) {
        if (values_equal(items[set.slots[slot] - 1], v)) return true;
      }
      return false;  // a scalar never equals the scanned (array/object) items
    }
  }
  for (uint32_t i : set.scanned) {
    if (values_equal(items[i], v)) return true;
  }
  return false;
}

bool parse_number(std::string_view text, Value* out) {
  size_t i = 0;
  const size_t n = text.size();
  auto digits = [&]() {
    const size_t start = i;
    while (i < n && text[i] >= '0' && text[i] <= '9') ++i;
    return i > start;
  };
  if (i < n && text[i] == '-') ++i;
  if (!digits()) return false;
  bool integral = true;
  if (i < n && text[i] == '.') {
    ++i;
    if (!digits()) return false;
    integral = false;
  }
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digits()) return false;
    integral = false;
  }
  if (i != n) return false;
  const char* first = text.data();
  const char* last = text.data() + n;
  if (integral) {
    int64_t v = 0;
    auto r = std::from_chars(first, last, v);
    if (r.ec == std::errc() && r.ptr == last) {
      *out = Value::from_int(v);
      return true;
    }
  }
  double d = 0;
  auto r = std::from_chars(first, last, d);
  if (r.ec != std::errc() || r.ptr != last) return false;
  *out = Value::from_double(d);
  return true;
}

void append_double(double d, std::string& out) {
  if (std::isnan(d)) {
    out += "NaN";
    return;
  }
  if (std::isinf(d)) {
    out += d > 0 ? "Infinity" : "-Infinity";
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), d);
  const std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

}  // namespace internal

bool values_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return internal::compare_numbers(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kMissing:
      return false;
    case Value::Kind::kNull:
      return true;
    case Value::Kind::kBool:
      return a.as_bool() == b.as_bool();
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kArray:
      return internal::arrays_equal(a, b);
    case Value::Kind::kObject:
      return internal::objects_equal(a, b);
    case Value::Kind::kInt:
    case Value::Kind::kDouble:
      break;  // handled above
  }
  return false;
}

void append_json(const Value& v, std::string& out) {
  switch (v.kind()) {
    case Value::Kind::kMissing:
    case Value::Kind::kNull:
      out += "null";
      return;
    case Value::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::kInt: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof(buf), v.as_int());
      out.append(buf, static_cast<size_t>(r.ptr - buf));
      return;
    }
    case Value::Kind::kDouble:
      if (!std::isfinite(v.as_double())) {
        out += "null";
      } else {
        internal::append_double(v.as_double(), out);
      }
      return;
    case Value::Kind::kString:
      append_json_quoted(out, v.as_string());
      return;
    case Value::Kind::kArray:
      if (const std::vector<Value>* items = v.list()) {
        out.push_back('[');
        for (size_t i = 0; i < items->size(); ++i) {
          if (i > 0) out.push_back(',');
          append_json((*items)[i], out);
        }
        out.push_back(']');
        return;
      }
      out += simdjson::minify(v.element());
      return;
    case Value::Kind::kObject:
      out += simdjson::minify(v.element());
      return;
  }
}

std::string to_json(const Value& v) {
  std::string out;
  append_json(v, out);
  return out;
}

Value Expression::evaluate(const simdjson::dom::element& event, const EvalContext* ctx) const {
  if (program_ == nullptr) return Value();
  return internal::eval(*program_, program_->root, event, ctx);
}

bool Expression::matches(const simdjson::dom::element& event, const EvalContext* ctx) const {
  if (program_ == nullptr) return false;
  return internal::test(*program_, program_->root, event, ctx);
}

const std::string& Expression::source() const {
  static const std::string kEmpty;
  return program_ != nullptr ? program_->source : kEmpty;
}

std::vector<std::string> Expression::referenced_fields() const {
  if (program_ == nullptr) return {};
  return program_->fields;
}

}  // namespace spate::expr
