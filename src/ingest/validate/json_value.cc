#include "ingest/validate/json_value.h"

#include <cmath>

#include "base/hash.h"
#include "base/json_escape.h"

namespace spate::schema {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kTwo64 = 18446744073709551616.0;

int sign(double v) {
  return v > 0 ? 1 : (v < 0 ? -1 : 0);
}

// i <=> d, exactly.
int compare_int_double(int64_t i, double d) {
  if (d >= kTwo63) return -1;
  if (d < -kTwo63) return 1;
  double t = std::trunc(d);
  auto ti = static_cast<int64_t>(t);
  if (i != ti) return i < ti ? -1 : 1;
  return -sign(d - t);
}

int compare_uint_double(uint64_t u, double d) {
  if (d < 0) return 1;
  if (d >= kTwo64) return -1;
  double t = std::trunc(d);
  auto tu = static_cast<uint64_t>(t);
  if (u != tu) return u < tu ? -1 : 1;
  return -sign(d - t);
}

int compare_int_uint(int64_t i, uint64_t u) {
  if (i < 0) return -1;
  auto iu = static_cast<uint64_t>(i);
  return iu < u ? -1 : (iu > u ? 1 : 0);
}

uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

uint64_t number_hash(const Number& n) {
  constexpr uint64_t kIntTag = 0x1000, kUintTag = 0x2000, kDoubleTag = 0x3000;
  switch (n.kind) {
    case Number::kInt:
      return mix(static_cast<uint64_t>(n.i) ^ kIntTag);
    case Number::kUint:
      if (n.u <= static_cast<uint64_t>(INT64_MAX)) return mix(n.u ^ kIntTag);
      return mix(n.u ^ kUintTag);
    case Number::kDouble:
      if (n.is_integral() && n.d >= -kTwo63 && n.d < kTwo63) {
        return mix(static_cast<uint64_t>(static_cast<int64_t>(n.d)) ^ kIntTag);
      }
      if (n.is_integral() && n.d >= kTwo63 && n.d < kTwo64) {
        return mix(static_cast<uint64_t>(n.d) ^ kUintTag);
      }
      uint64_t bits;
      static_assert(sizeof bits == sizeof n.d);
      __builtin_memcpy(&bits, &n.d, sizeof bits);
      return mix(bits ^ kDoubleTag);
  }
  return 0;
}

size_t utf8_cut(std::string_view s, size_t max_len) {
  if (s.size() <= max_len) return s.size();
  size_t cut = max_len;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return cut;
}

}  // namespace

double Number::as_double() const {
  switch (kind) {
    case kInt:
      return static_cast<double>(i);
    case kUint:
      return static_cast<double>(u);
    case kDouble:
      return d;
  }
  return d;
}

bool Number::is_integral() const {
  return kind != kDouble || std::trunc(d) == d;
}

bool to_number(const element& e, Number* out) {
  switch (e.type()) {
    case element_type::INT64:
      *out = Number::of_int(e.get_int64().value_unsafe());
      return true;
    case element_type::UINT64:
      *out = Number::of_uint(e.get_uint64().value_unsafe());
      return true;
    case element_type::DOUBLE:
      *out = Number::of_double(e.get_double().value_unsafe());
      return true;
    default:
      return false;
  }
}

int compare_numbers(const Number& a, const Number& b) {
  using K = Number::Kind;
  if (a.kind == K::kInt && b.kind == K::kInt) return a.i < b.i ? -1 : (a.i > b.i ? 1 : 0);
  if (a.kind == K::kUint && b.kind == K::kUint) return a.u < b.u ? -1 : (a.u > b.u ? 1 : 0);
  if (a.kind == K::kDouble && b.kind == K::kDouble) return a.d < b.d ? -1 : (a.d > b.d ? 1 : 0);
  if (a.kind == K::kInt && b.kind == K::kUint) return compare_int_uint(a.i, b.u);
  if (a.kind == K::kUint && b.kind == K::kInt) return -compare_int_uint(b.i, a.u);
  if (a.kind == K::kInt) return compare_int_double(a.i, b.d);
  if (a.kind == K::kUint) return compare_uint_double(a.u, b.d);
  if (b.kind == K::kInt) return -compare_int_double(b.i, a.d);
  return -compare_uint_double(b.u, a.d);
}

bool is_multiple_of(const Number& x, const Number& m) {
  bool m_integral = m.is_integral() && (m.kind != Number::kDouble || m.d < kTwo64);
  if (m_integral) {
    uint64_t mu = m.kind == Number::kInt    ? static_cast<uint64_t>(m.i)
                  : m.kind == Number::kUint ? m.u
                                            : static_cast<uint64_t>(m.d);
    if (mu == 0) return false;
    if (x.kind == Number::kInt) {
      uint64_t mag = x.i < 0 ? 0 - static_cast<uint64_t>(x.i) : static_cast<uint64_t>(x.i);
      return mag % mu == 0;
    }
    if (x.kind == Number::kUint) return x.u % mu == 0;
    if (!x.is_integral()) return false;
    return std::fmod(x.d, static_cast<double>(mu)) == 0;
  }
  double xd = x.as_double(), md = m.as_double();
  double q = xd / md;
  if (!std::isfinite(q)) return std::fmod(xd, md) == 0;
  double r = std::round(q);
  return std::fabs(q - r) <= std::fabs(q) * (16 * 2.220446049250313e-16);
}

bool json_equal(const element& a, const element& b) {
  element_type ta = a.type(), tb = b.type();
  Number na, nb;
  if (to_number(a, &na)) return to_number(b, &nb) && compare_numbers(na, nb) == 0;
  if (ta != tb) return false;
  switch (ta) {
    case element_type::NULL_VALUE:
      return true;
    case element_type::BOOL:
      return a.get_bool().value_unsafe() == b.get_bool().value_unsafe();
    case element_type::STRING:
      return as_string(a) == as_string(b);
    case element_type::ARRAY: {
      auto aa = as_array(a), ba = as_array(b);
      auto ia = aa.begin(), ib = ba.begin();
      for (; ia != aa.end() && ib != ba.end(); ++ia, ++ib) {
        if (!json_equal(*ia, *ib)) return false;
      }
      return ia == aa.end() && ib == ba.end();
    }
    case element_type::OBJECT: {
      auto ao = as_object(a), bo = as_object(b);
      if (element_count(ao) != element_count(bo)) return false;
      for (auto field : ao) {
        element other;
        if (bo.at_key(field.key).get(other) != simdjson::SUCCESS) return false;
        if (!json_equal(field.value, other)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

uint64_t json_string_hash(std::string_view s) {
  return hash64(s) ^ 0x5555;
}

uint64_t json_hash(const element& e) {
  Number n;
  if (to_number(e, &n)) return number_hash(n);
  switch (e.type()) {
    case element_type::NULL_VALUE:
      return 0x6e756c6c;
    case element_type::BOOL:
      return e.get_bool().value_unsafe() ? 0x74727565 : 0x66616c73;
    case element_type::STRING:
      return json_string_hash(as_string(e));
    case element_type::ARRAY: {
      uint64_t h = 0xa77a;
      for (element child : as_array(e)) h = mix(h * 31 + json_hash(child));
      return h;
    }
    case element_type::OBJECT: {
      uint64_t h = 0x0b7ec7;
      for (auto field : as_object(e)) {
        h += mix(hash64(field.key) ^ (json_hash(field.value) * 0x9e3779b97f4a7c15ULL));
      }
      return mix(h);
    }
    default:
      return 0;
  }
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string json_text(const element& e, size_t max_len) {
  std::string text = simdjson::minify(e);
  size_t cut = utf8_cut(text, max_len);
  if (cut < text.size()) {
    text.resize(cut);
    text += "...";
  }
  return text;
}

std::string quoted_text(std::string_view s, size_t max_len) {
  size_t cut = utf8_cut(s, max_len);
  std::string out = json_quote(s.substr(0, cut));
  if (cut < s.size()) out += "...";
  return out;
}

}  // namespace spate::schema
