#include "ingest/validate/json_schema.h"

#include <fmt/format.h>
#include <re2/re2.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "base/fs.h"
#include "base/json_escape.h"
#include "ingest/validate/ecma_regex.h"
#include "ingest/validate/formats.h"
#include "ingest/validate/json_value.h"
#include "ingest/validate/metaschema_draft7.h"
#include "ingest/validate/uri.h"

namespace spate::schema {
namespace detail {

using simdjson::dom::element;
using simdjson::dom::element_type;

// ---------------------------------------------------------------------------------------------
// The compiled tree.

enum TypeBit : uint8_t {
  kTNull = 1,
  kTBoolean = 2,
  kTObject = 4,
  kTArray = 8,
  kTNumber = 16,
  kTString = 32,
  kTInteger = 64,
};

constexpr std::array<std::pair<std::string_view, uint8_t>, 7> kTypeNames = {{
    {"null", kTNull},
    {"boolean", kTBoolean},
    {"object", kTObject},
    {"array", kTArray},
    {"number", kTNumber},
    {"string", kTString},
    {"integer", kTInteger},
}};

enum Check : uint32_t {
  kCType = 1u << 0,
  kCConst = 1u << 1,
  kCEnum = 1u << 2,
  kCMinimum = 1u << 3,
  kCMaximum = 1u << 4,
  kCExclusiveMinimum = 1u << 5,
  kCExclusiveMaximum = 1u << 6,
  kCMultipleOf = 1u << 7,
  kCMinLength = 1u << 8,
  kCMaxLength = 1u << 9,
  kCPattern = 1u << 10,
  kCFormat = 1u << 11,
  kCItems = 1u << 12,  // items as one schema, or as an array (tuple) plus additionalItems
  kCMinItems = 1u << 13,
  kCMaxItems = 1u << 14,
  kCUniqueItems = 1u << 15,
  kCContains = 1u << 16,
  kCMinProperties = 1u << 17,
  kCMaxProperties = 1u << 18,
  kCObjectPass = 1u << 19,  // properties/patternProperties/additionalProperties/propertyNames/
                            // required/dependencies: one pass over the members
  kCAllOf = 1u << 20,
  kCAnyOf = 1u << 21,
  kCOneOf = 1u << 22,
  kCNot = 1u << 23,
  kCIf = 1u << 24,
};

constexpr uint32_t kNumberChecks =
    kCMinimum | kCMaximum | kCExclusiveMinimum | kCExclusiveMaximum | kCMultipleOf;
constexpr uint32_t kStringChecks = kCMinLength | kCMaxLength | kCPattern | kCFormat;
constexpr uint32_t kArrayChecks = kCItems | kCMinItems | kCMaxItems | kCUniqueItems | kCContains;
constexpr uint32_t kObjectChecks = kCMinProperties | kCMaxProperties | kCObjectPass;
constexpr uint32_t kApplicatorChecks = kCAllOf | kCAnyOf | kCOneOf | kCNot | kCIf;

// Presence of up to this many names (required, dependencies) is tracked in a stack bitmap
// during the member pass; names beyond it are looked up with at_key().
constexpr uint32_t kTrackWords = 16;
constexpr uint32_t kTrackBits = kTrackWords * 64;

struct Node;

// A compiled "pattern": RE2, or a plain string test when the ECMA pattern is a literal with
// optional anchors ("^x-", "_id$", "^exact$", "needle"), which is most patternProperties and
// skips RE2's per-call overhead.
struct Matcher {
  enum Kind : uint8_t { kRe2, kContains, kPrefix, kSuffix, kExact };
  Kind kind = kRe2;
  std::string literal;
  std::shared_ptr<const RE2> re;

  bool match(std::string_view s) const {
    switch (kind) {
      case kContains:
        return s.find(literal) != std::string_view::npos;
      case kPrefix:
        return s.starts_with(literal);
      case kSuffix:
        return s.ends_with(literal);
      case kExact:
        return s == literal;
      case kRe2:
        break;
    }
    return re->Match(s, 0, s.size(), RE2::UNANCHORED, nullptr, 0);
  }

  static Result<Matcher> compile(std::string_view pattern) {
    Matcher m;
    bool front = pattern.starts_with("^");
    std::string_view body = pattern.substr(front ? 1 : 0);
    bool back = body.ends_with("$") && !body.ends_with("\\$");
    if (back) body.remove_suffix(1);
    if (body.find_first_of("\\^$.|?*+()[]{}") == std::string_view::npos) {
      m.literal = std::string(body);
      m.kind = front && back ? kExact : front ? kPrefix : back ? kSuffix : kContains;
      // Still require RE2 to accept it, so errors are the same either way.
    }
    auto re = compile_ecma_regex(pattern);
    if (!re.ok()) return re.status();
    m.re = std::move(re).value();
    return m;
  }
};

// Byte equality without a libc call: names are short and usually differ in the first byte.
inline bool same_string(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// string -> small integer, for member names and string enums. Up to kLinearKeys entries: a linear
// scan. More: open addressing on xxh3, the table at most half full. Built once at compile time;
// find() never allocates. The keys point into the schema document.
class StringIndex {
 public:
  void add(std::string_view key, uint32_t value) {
    keys_.push_back(Key{key, json_string_hash(key), value});
  }

  void build() {
    table_.clear();
    if (keys_.size() <= kLinearKeys) return;
    size_t cap = 16;
    while (cap < keys_.size() * 2) cap *= 2;
    mask_ = cap - 1;
    table_.assign(cap, -1);
    for (size_t i = 0; i < keys_.size(); ++i) {
      size_t h = keys_[i].hash & mask_;
      while (table_[h] >= 0) h = (h + 1) & mask_;
      table_[h] = static_cast<int32_t>(i);
    }
  }

  // The value added with `key`, or -1.
  int64_t find(std::string_view key) const {
    if (table_.empty()) {
      for (const Key& k : keys_) {
        if (same_string(k.key, key)) return k.value;
      }
      return -1;
    }
    uint64_t hash = json_string_hash(key);
    for (size_t h = hash & mask_;; h = (h + 1) & mask_) {
      int32_t i = table_[h];
      if (i < 0) return -1;
      const Key& k = keys_[static_cast<size_t>(i)];
      if (k.hash == hash && k.key == key) return k.value;
    }
  }

 private:
  struct Key {
    std::string_view key;
    uint64_t hash;
    uint32_t value;
  };
  static constexpr size_t kLinearKeys = 8;

  std::vector<Key> keys_;
  std::vector<int32_t> table_;
  size_t mask_ = 0;
};

// A member name the object pass knows about.
struct NameSlot {
  std::string_view name;         // points into the schema document
  const Node* schema = nullptr;  // from "properties"; null if the name is only required/dependent
  int32_t bit = -1;              // presence bit, when required or part of a dependency
};

struct PatternProperty {
  Matcher re;
  std::string_view source;
  const Node* schema = nullptr;
};

struct Dependency {
  uint32_t trigger = 0;            // slot index
  std::vector<uint32_t> required;  // slot indexes
  const Node* schema = nullptr;
};

struct Node {
  uint32_t id = 0;
  std::string location;  // "#/properties/a"
  bool is_false = false;
  const Node* ref = nullptr;
  uint32_t checks = 0;
  uint8_t types = 0;

  element const_value;
  element enum_array;  // for messages
  StringIndex enum_strings;
  std::vector<element> enum_others;

  Number minimum, maximum, exclusive_minimum, exclusive_maximum, multiple_of;

  uint64_t min_length = 0, max_length = 0;
  Matcher pattern;
  std::string_view pattern_source;
  Format format = Format::kDateTime;
  std::string_view format_name;

  const Node* items = nullptr;     // single-schema form
  std::vector<const Node*> tuple;  // array form
  bool tuple_form = false;
  const Node* additional_items = nullptr;
  uint64_t min_items = 0, max_items = 0;
  const Node* contains = nullptr;

  uint64_t min_properties = 0, max_properties = 0;
  std::vector<NameSlot> slots;
  StringIndex slot_index;
  uint32_t tracked = 0;  // presence bits in use
  std::vector<PatternProperty> pattern_properties;
  const Node* additional_properties = nullptr;
  const Node* property_names = nullptr;
  std::vector<uint32_t> required;  // slot indexes
  std::vector<Dependency> dependencies;

  std::vector<const Node*> all_of, any_of, one_of;
  const Node* not_schema = nullptr;
  const Node* if_schema = nullptr;
  const Node* then_schema = nullptr;
  const Node* else_schema = nullptr;

  const NameSlot* find_slot(std::string_view key) const {
    int64_t i = slot_index.find(key);
    return i < 0 ? nullptr : &slots[static_cast<size_t>(i)];
  }

  // Every child pointer; `in_place` ones apply to the same instance (no descent).
  template <typename F>
  void for_each_child(F&& f) {
    auto one = [&](const Node*& p, bool in_place) {
      if (p != nullptr) f(p, in_place);
    };
    one(ref, true);
    one(items, false);
    for (auto& p : tuple) one(p, false);
    one(additional_items, false);
    one(contains, false);
    for (auto& s : slots) one(s.schema, false);
    for (auto& pp : pattern_properties) one(pp.schema, false);
    one(additional_properties, false);
    one(property_names, false);
    for (auto& d : dependencies) one(d.schema, true);
    for (auto& p : all_of) one(p, true);
    for (auto& p : any_of) one(p, true);
    for (auto& p : one_of) one(p, true);
    one(not_schema, true);
    one(if_schema, true);
    one(then_schema, true);
    one(else_schema, true);
  }
};

struct Doc {
  std::unique_ptr<simdjson::dom::parser> parser;
  element root;
  std::string base;     // base URI of the document
  std::string display;  // prefix of locations: "#" for the user's schema
};

// ---------------------------------------------------------------------------------------------
// Evaluation.

// The value being validated: a DOM element, or a member name (for propertyNames).
struct Inst {
  element el;
  std::string_view str;  // when type == STRING
  element_type type = element_type::NULL_VALUE;
  bool is_key = false;

  static Inst of(const element& e) {
    Inst v;
    v.el = e;
    v.type = e.type();
    if (v.type == element_type::STRING) v.str = as_string(e);
    return v;
  }
  static Inst key(std::string_view k) {
    Inst v;
    v.str = k;
    v.type = element_type::STRING;
    v.is_key = true;
    return v;
  }
};

struct Ctx {
  ValidationError* err = nullptr;     // set: reporting pass
  std::vector<std::string> rev_path;  // instance path segments, innermost first
};

uint8_t type_bits(const Inst& v) {
  switch (v.type) {
    case element_type::NULL_VALUE:
      return kTNull;
    case element_type::BOOL:
      return kTBoolean;
    case element_type::OBJECT:
      return kTObject;
    case element_type::ARRAY:
      return kTArray;
    case element_type::STRING:
      return kTString;
    case element_type::INT64:
    case element_type::UINT64:
      return kTNumber | kTInteger;
    case element_type::DOUBLE: {
      double d = v.el.get_double().value_unsafe();
      return std::trunc(d) == d ? (kTNumber | kTInteger) : kTNumber;
    }
  }
  return 0;
}

std::string_view type_name(const Inst& v) {
  uint8_t bits = type_bits(v);
  if (bits & kTInteger) return "integer";
  for (const auto& [name, bit] : kTypeNames) {
    if (bits & bit) return name;
  }
  return "unknown";
}

std::string types_text(uint8_t types) {
  std::vector<std::string_view> names;
  for (const auto& [name, bit] : kTypeNames) {
    if (types & bit) names.push_back(name);
  }
  if (names.empty()) return "of no type (\"type\": [])";
  if (names.size() == 1) return std::string(names[0]);
  return fmt::format("one of [{}]", fmt::join(names, ", "));
}

std::string number_text(const Number& n) {
  switch (n.kind) {
    case Number::kInt:
      return fmt::format("{}", n.i);
    case Number::kUint:
      return fmt::format("{}", n.u);
    case Number::kDouble:
      return fmt::format("{}", n.d);
  }
  return "?";
}

std::string value_text(const Inst& v) {
  if (v.is_key) return quoted_text(v.str);
  return json_text(v.el);
}

// Record the failure at schema location `where` (the reporting pass only).
void fail_at(Ctx& ctx, const std::string& where, std::string_view keyword, std::string message) {
  ValidationError& e = *ctx.err;
  e.keyword = std::string(keyword);
  e.schema_path = where;
  e.message = std::move(message);
}

// Record the failure of keyword `keyword` of node `n`.
void fail(Ctx& ctx, const Node& n, std::string_view keyword, std::string message) {
  std::string where = n.location;
  if (keyword != "false" && keyword != "depth") append_pointer_token(where, keyword);
  fail_at(ctx, where, keyword, std::move(message));
}

bool equals_inst(const Inst& v, const element& expected) {
  if (v.is_key) {
    return expected.type() == element_type::STRING && as_string(expected) == v.str;
  }
  return json_equal(v.el, expected);
}

bool in_enum(const Node& n, const Inst& v) {
  if (v.type == element_type::STRING) return n.enum_strings.find(v.str) >= 0;
  for (const element& e : n.enum_others) {
    if (json_equal(v.el, e)) return true;
  }
  return false;
}

template <bool R>
bool eval(const Node* n, const Inst& v, Ctx& ctx, int depth);

template <bool R>
[[gnu::noinline]] bool eval_number(const Node& n, const Inst& v, Ctx& ctx) {
  Number x;
  to_number(v.el, &x);
  uint32_t c = n.checks;
  if ((c & kCMinimum) && compare_numbers(x, n.minimum) < 0) {
    if constexpr (R) {
      fail(ctx, n, "minimum",
           fmt::format("must be >= {}, got {}", number_text(n.minimum), number_text(x)));
    }
    return false;
  }
  if ((c & kCExclusiveMinimum) && compare_numbers(x, n.exclusive_minimum) <= 0) {
    if constexpr (R) {
      fail(ctx, n, "exclusiveMinimum",
           fmt::format("must be > {}, got {}", number_text(n.exclusive_minimum), number_text(x)));
    }
    return false;
  }
  if ((c & kCMaximum) && compare_numbers(x, n.maximum) > 0) {
    if constexpr (R) {
      fail(ctx, n, "maximum",
           fmt::format("must be <= {}, got {}", number_text(n.maximum), number_text(x)));
    }
    return false;
  }
  if ((c & kCExclusiveMaximum) && compare_numbers(x, n.exclusive_maximum) >= 0) {
    if constexpr (R) {
      fail(ctx, n, "exclusiveMaximum",
           fmt::format("must be < {}, got {}", number_text(n.exclusive_maximum), number_text(x)));
    }
    return false;
  }
  if ((c & kCMultipleOf) && !is_multiple_of(x, n.multiple_of)) {
    if constexpr (R) {
      fail(ctx, n, "multipleOf",
           fmt::format("must be a multiple of {}, got {}", number_text(n.multiple_of),
                       number_text(x)));
    }
    return false;
  }
  return true;
}

template <bool R>
[[gnu::noinline]] bool eval_string(const Node& n, const Inst& v, Ctx& ctx) {
  uint32_t c = n.checks;
  std::string_view s = v.str;
  if (c & kCMinLength) {
    // Code points <= bytes <= 4 * code points: count only when the bytes do not decide.
    if (s.size() < n.min_length || (s.size() / 4 < n.min_length && utf8_length(s) < n.min_length)) {
      if constexpr (R) {
        fail(ctx, n, "minLength",
             fmt::format("must be at least {} characters long, got {}", n.min_length,
                         utf8_length(s)));
      }
      return false;
    }
  }
  if ((c & kCMaxLength) && s.size() > n.max_length && utf8_length(s) > n.max_length) {
    if constexpr (R) {
      fail(ctx, n, "maxLength",
           fmt::format("must be at most {} characters long, got {}", n.max_length, utf8_length(s)));
    }
    return false;
  }
  if ((c & kCPattern) && !n.pattern.match(s)) {
    if constexpr (R) {
      fail(ctx, n, "pattern",
           fmt::format("must match pattern {}, got {}", quoted_text(n.pattern_source),
                       quoted_text(s)));
    }
    return false;
  }
  if ((c & kCFormat) && !check_format(n.format, s)) {
    if constexpr (R) {
      fail(ctx, n, "format",
           fmt::format("must be a valid {}, got {}", n.format_name, quoted_text(s)));
    }
    return false;
  }
  return true;
}

// First pair of equal items, or false when all are distinct.
[[gnu::noinline]] bool find_duplicate(const simdjson::dom::array& arr, size_t size, size_t* first,
                                      size_t* second) {
  if (size < 2) return false;
  constexpr size_t kTiny = 8;
  if (size <= kTiny) {  // pairwise, strings compared directly
    std::array<Inst, kTiny> items;
    size_t k = 0;
    for (element e : arr) items[k++] = Inst::of(e);
    for (size_t j = 1; j < k; ++j) {
      for (size_t i = 0; i < j; ++i) {
        bool equal = items[i].type == element_type::STRING || items[j].type == element_type::STRING
                         ? items[i].type == items[j].type && same_string(items[i].str, items[j].str)
                         : json_equal(items[i].el, items[j].el);
        if (equal) {
          *first = i;
          *second = j;
          return true;
        }
      }
    }
    return false;
  }
  constexpr size_t kSmall = 32;
  if (size <= kSmall) {
    std::array<element, kSmall> items;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-member-init): filled before it is read
    std::array<uint64_t, kSmall> hashes;
    size_t k = 0;
    for (element e : arr) {
      items[k] = e;
      hashes[k] = json_hash(e);
      ++k;
    }
    for (size_t j = 1; j < k; ++j) {
      for (size_t i = 0; i < j; ++i) {
        if (hashes[i] == hashes[j] && json_equal(items[i], items[j])) {
          *first = i;
          *second = j;
          return true;
        }
      }
    }
    return false;
  }
  // Large arrays: sort (hash, index) pairs in a reused thread-local buffer.
  thread_local std::vector<std::pair<uint64_t, uint32_t>> order;
  thread_local std::vector<element> items;
  order.clear();
  items.clear();
  for (element e : arr) {
    order.emplace_back(json_hash(e), static_cast<uint32_t>(items.size()));
    items.push_back(e);
  }
  std::sort(order.begin(), order.end());
  bool found = false;
  for (size_t a = 0; a < order.size();) {
    size_t b = a + 1;
    while (b < order.size() && order[b].first == order[a].first) ++b;
    for (size_t x = a; x < b; ++x) {
      for (size_t y = x + 1; y < b; ++y) {
        uint32_t i = order[x].second, j = order[y].second;
        if (json_equal(items[i], items[j]) && (!found || j < *second)) {
          *first = std::min(i, j);
          *second = std::max(i, j);
          found = true;
        }
      }
    }
    a = b;
  }
  return found;
}

template <bool R>
[[gnu::noinline]] bool eval_array(const Node& n, const Inst& v, Ctx& ctx, int depth) {
  uint32_t c = n.checks;
  simdjson::dom::array arr = as_array(v.el);
  size_t size = element_count(arr);
  if ((c & kCMinItems) && size < n.min_items) {
    if constexpr (R) {
      fail(ctx, n, "minItems",
           fmt::format("must have at least {} items, got {}", n.min_items, size));
    }
    return false;
  }
  if ((c & kCMaxItems) && size > n.max_items) {
    if constexpr (R) {
      fail(ctx, n, "maxItems",
           fmt::format("must have at most {} items, got {}", n.max_items, size));
    }
    return false;
  }
  if (c & kCItems) {
    size_t index = 0;
    for (element item : arr) {
      const Node* s = n.items;
      bool additional = false;
      if (n.tuple_form) {
        if (index < n.tuple.size()) {
          s = n.tuple[index];
        } else {
          s = n.additional_items;
          additional = true;
        }
      }
      if (s == nullptr) break;
      if (s->is_false) {
        if constexpr (R) {
          if (additional) {
            fail_at(ctx, s->location, "additionalItems",
                    fmt::format("must have at most {} items (additionalItems is false), got {}",
                                n.tuple.size(), size));
          } else {
            fail_at(ctx, s->location, "items",
                    "no item is allowed here (the items schema is false)");
            ctx.rev_path.push_back(std::to_string(index));
          }
        }
        return false;
      }
      if (!eval<R>(s, Inst::of(item), ctx, depth + 1)) {
        if constexpr (R) ctx.rev_path.push_back(std::to_string(index));
        return false;
      }
      ++index;
    }
  }
  if (c & kCContains) {
    bool found = false;
    for (element item : arr) {
      if (eval<false>(n.contains, Inst::of(item), ctx, depth + 1)) {
        found = true;
        break;
      }
    }
    if (!found) {
      if constexpr (R) {
        fail(ctx, n, "contains",
             size == 0 ? std::string("must contain an item matching \"contains\", got []")
                       : "must contain at least one item matching \"contains\"");
      }
      return false;
    }
  }
  if (c & kCUniqueItems) {
    size_t i = 0, j = 0;
    if (find_duplicate(arr, size, &i, &j)) {
      if constexpr (R) {
        fail(ctx, n, "uniqueItems",
             fmt::format("must not contain duplicates, items {} and {} are equal", i, j));
      }
      return false;
    }
  }
  return true;
}

std::string suggest(std::string_view word, const std::vector<std::string_view>& candidates);

// Validate member `key` against `s`, which applies through keyword `kw` of `n`.
template <bool R>
bool eval_member(const Node& n, const Node* s, std::string_view kw, std::string_view key,
                 const element& value, std::string_view why, Ctx& ctx, int depth) {
  if (s->is_false) {
    if constexpr (R) {
      std::string message = fmt::format("property {} is not allowed{}", quoted_text(key), why);
      if (kw == "additionalProperties") {
        std::vector<std::string_view> names;
        for (const NameSlot& slot : n.slots) {
          if (slot.schema != nullptr) names.push_back(slot.name);
        }
        std::string hint = suggest(key, names);
        if (!hint.empty()) message += fmt::format("; did you mean {}?", quoted_text(hint));
      }
      fail_at(ctx, s->location, kw, std::move(message));
      ctx.rev_path.emplace_back(key);
    }
    return false;
  }
  if (!eval<R>(s, Inst::of(value), ctx, depth + 1)) {
    if constexpr (R) ctx.rev_path.emplace_back(key);
    return false;
  }
  return true;
}

template <bool R>
[[gnu::noinline]] bool eval_object(const Node& n, const Inst& v, Ctx& ctx, int depth) {
  uint32_t c = n.checks;
  simdjson::dom::object obj = as_object(v.el);
  if (c & (kCMinProperties | kCMaxProperties)) {
    size_t size = element_count(obj);
    if ((c & kCMinProperties) && size < n.min_properties) {
      if constexpr (R) {
        fail(ctx, n, "minProperties",
             fmt::format("must have at least {} properties, got {}", n.min_properties, size));
      }
      return false;
    }
    if ((c & kCMaxProperties) && size > n.max_properties) {
      if constexpr (R) {
        fail(ctx, n, "maxProperties",
             fmt::format("must have at most {} properties, got {}", n.max_properties, size));
      }
      return false;
    }
  }
  if (!(c & kCObjectPass)) return true;

  // Only the words in use are cleared (below): most schemas track a handful of names.
  std::array<uint64_t, kTrackWords> present;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  uint32_t words = std::min<uint32_t>(kTrackWords, (n.tracked + 63) / 64);
  for (uint32_t w = 0; w < words; ++w) present[w] = 0;

  for (auto field : obj) {
    std::string_view key = field.key;
    if (n.property_names != nullptr) {
      if (n.property_names->is_false) {
        if constexpr (R) {
          fail_at(ctx, n.property_names->location, "propertyNames",
                  fmt::format("property name {} is not allowed (propertyNames is false)",
                              quoted_text(key)));
        }
        return false;
      }
      if (!eval<R>(n.property_names, Inst::key(key), ctx, depth + 1)) {
        if constexpr (R) {
          ctx.err->message =
              fmt::format("property name {}: {}", quoted_text(key), ctx.err->message);
        }
        return false;
      }
    }
    bool matched = false;
    if (const NameSlot* slot = n.find_slot(key)) {
      if (slot->bit >= 0 && static_cast<uint32_t>(slot->bit) < kTrackBits) {
        present[static_cast<uint32_t>(slot->bit) / 64] |= uint64_t{1} << (slot->bit % 64);
      }
      if (slot->schema != nullptr) {
        matched = true;
        if (!eval_member<R>(n, slot->schema, "properties", key, field.value, "", ctx, depth)) {
          return false;
        }
      }
    }
    for (const PatternProperty& pp : n.pattern_properties) {
      if (pp.re.match(key)) {
        matched = true;
        if constexpr (R) {
          if (!eval_member<R>(n, pp.schema, "patternProperties", key, field.value,
                              fmt::format(" (patternProperties {})", quoted_text(pp.source)), ctx,
                              depth)) {
            return false;
          }
        } else {
          if (!eval_member<R>(n, pp.schema, "patternProperties", key, field.value, "", ctx,
                              depth)) {
            return false;
          }
        }
      }
    }
    if (!matched && n.additional_properties != nullptr) {
      if (!eval_member<R>(n, n.additional_properties, "additionalProperties", key, field.value,
                          " (additionalProperties is false)", ctx, depth)) {
        return false;
      }
    }
  }

  auto has = [&](uint32_t slot_index) {
    const NameSlot& slot = n.slots[slot_index];
    auto bit = static_cast<uint32_t>(slot.bit);
    if (bit < kTrackBits) return (present[bit / 64] >> (bit % 64)) & 1;
    element ignored;
    return static_cast<uint64_t>(obj.at_key(slot.name).get(ignored) == simdjson::SUCCESS);
  };
  for (uint32_t r : n.required) {
    if (!has(r)) {
      if constexpr (R) {
        fail(ctx, n, "required",
             fmt::format("missing required property {}", quoted_text(n.slots[r].name)));
      }
      return false;
    }
  }
  for (const Dependency& d : n.dependencies) {
    if (!has(d.trigger)) continue;
    for (uint32_t r : d.required) {
      if (!has(r)) {
        if constexpr (R) {
          fail(ctx, n, "dependencies",
               fmt::format("property {} requires property {}", quoted_text(n.slots[d.trigger].name),
                           quoted_text(n.slots[r].name)));
        }
        return false;
      }
    }
    if (d.schema != nullptr) {
      if (d.schema->is_false) {
        if constexpr (R) {
          fail_at(ctx, d.schema->location, "dependencies",
                  fmt::format("property {} is not allowed (its dependencies schema is false)",
                              quoted_text(n.slots[d.trigger].name)));
        }
        return false;
      }
      if (!eval<R>(d.schema, v, ctx, depth + 1)) return false;
    }
  }
  return true;
}

// Why each branch of anyOf/oneOf failed, for the reporting pass.
std::string branch_reasons(const std::vector<const Node*>& branches, const Inst& v, int depth) {
  std::string out;
  size_t shown = 0;
  for (size_t i = 0; i < branches.size() && shown < 4; ++i) {
    ValidationError e;
    Ctx sub;
    sub.err = &e;
    if (eval<true>(branches[i], v, sub, depth + 1)) continue;
    std::string path;
    for (auto it = sub.rev_path.rbegin(); it != sub.rev_path.rend(); ++it) {
      append_pointer_token(path, *it);
    }
    out += fmt::format("{}[{}] {}{}", shown == 0 ? ": " : "; ", i, path.empty() ? "" : path + ": ",
                       e.message);
    ++shown;
  }
  return out;
}

template <bool R>
[[gnu::noinline]] bool eval_applicators(const Node& n, const Inst& v, Ctx& ctx, int depth) {
  uint32_t c = n.checks;
  if (c & kCAllOf) {
    for (const Node* s : n.all_of) {
      if (!eval<R>(s, v, ctx, depth + 1)) return false;
    }
  }
  if (c & kCAnyOf) {
    bool any = false;
    for (const Node* s : n.any_of) {
      if (eval<false>(s, v, ctx, depth + 1)) {
        any = true;
        break;
      }
    }
    if (!any) {
      if constexpr (R) {
        fail(ctx, n, "anyOf",
             "must match at least one schema in anyOf" + branch_reasons(n.any_of, v, depth));
      }
      return false;
    }
  }
  if (c & kCOneOf) {
    size_t matches = 0, first = 0, second = 0;
    for (size_t i = 0; i < n.one_of.size() && matches < 2; ++i) {
      if (eval<false>(n.one_of[i], v, ctx, depth + 1)) {
        (matches == 0 ? first : second) = i;
        ++matches;
      }
    }
    if (matches != 1) {
      if constexpr (R) {
        if (matches == 0) {
          fail(ctx, n, "oneOf",
               "must match exactly one schema in oneOf, matches none" +
                   branch_reasons(n.one_of, v, depth));
        } else {
          fail(ctx, n, "oneOf",
               fmt::format("must match exactly one schema in oneOf, matches {} and {}", first,
                           second));
        }
      }
      return false;
    }
  }
  if (c & kCNot) {
    if (eval<false>(n.not_schema, v, ctx, depth + 1)) {
      if constexpr (R) fail(ctx, n, "not", "must not match the schema in \"not\"");
      return false;
    }
  }
  if (c & kCIf) {
    bool cond = eval<false>(n.if_schema, v, ctx, depth + 1);
    const Node* branch = cond ? n.then_schema : n.else_schema;
    if (branch != nullptr && !eval<R>(branch, v, ctx, depth + 1)) {
      if constexpr (R) {
        if (branch->is_false) {
          fail_at(ctx, branch->location, cond ? "then" : "else",
                  cond ? "must not match \"if\" (\"then\" is false)"
                       : "must match \"if\" (\"else\" is false)");
        }
      }
      return false;
    }
  }
  return true;
}

template <bool R>
bool eval(const Node* n, const Inst& v, Ctx& ctx, int depth) {
  while (n->ref != nullptr) n = n->ref;
  if (depth > kMaxEvalDepth) {
    if constexpr (R) {
      fail(ctx, *n, "depth",
           fmt::format("nesting deeper than {} levels (instance or schema recursion)",
                       kMaxEvalDepth));
    }
    return false;
  }
  if (n->is_false) {
    if constexpr (R) fail(ctx, *n, "false", "no value is allowed here (the schema is false)");
    return false;
  }
  uint32_t c = n->checks;
  if (c == 0) return true;
  if ((c & kCType) && !(type_bits(v) & n->types)) {
    if constexpr (R) {
      fail(ctx, *n, "type", fmt::format("must be {}, got {}", types_text(n->types), type_name(v)));
    }
    return false;
  }
  if ((c & kCConst) && !equals_inst(v, n->const_value)) {
    if constexpr (R) {
      fail(ctx, *n, "const",
           fmt::format("must be equal to {}, got {}", json_text(n->const_value), value_text(v)));
    }
    return false;
  }
  if ((c & kCEnum) && !in_enum(*n, v)) {
    if constexpr (R) {
      fail(ctx, *n, "enum",
           fmt::format("must be one of {}, got {}", json_text(n->enum_array, 120), value_text(v)));
    }
    return false;
  }
  switch (v.type) {
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      if ((c & kNumberChecks) && !eval_number<R>(*n, v, ctx)) return false;
      break;
    case element_type::STRING:
      if ((c & kStringChecks) && !eval_string<R>(*n, v, ctx)) return false;
      break;
    case element_type::ARRAY:
      if ((c & kArrayChecks) && !eval_array<R>(*n, v, ctx, depth)) return false;
      break;
    case element_type::OBJECT:
      if ((c & kObjectChecks) && !eval_object<R>(*n, v, ctx, depth)) return false;
      break;
    default:
      break;
  }
  if (c & kApplicatorChecks) return eval_applicators<R>(*n, v, ctx, depth);
  return true;
}

// ---------------------------------------------------------------------------------------------
// "Did you mean": optimal string alignment distance, ASCII case-insensitive.

size_t edit_distance(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    prev2.swap(prev);
    prev.swap(cur);
  }
  return prev[b.size()];
}

std::string suggest(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  size_t best_distance = SIZE_MAX;
  for (std::string_view c : candidates) {
    size_t d = edit_distance(word, c);
    bool close = d <= 2 && d * 2 <= word.size();
    size_t shorter = std::min(word.size(), c.size());
    if (!close && shorter >= 3 && (word.substr(0, shorter) == c.substr(0, shorter))) {
      close = true;
    }
    if (close && d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return std::string(best);
}

// ---------------------------------------------------------------------------------------------
// Keywords.

enum class Kw {
  kType,
  kEnum,
  kConst,
  kMultipleOf,
  kMaximum,
  kExclusiveMaximum,
  kMinimum,
  kExclusiveMinimum,
  kMaxLength,
  kMinLength,
  kPattern,
  kFormat,
  kItems,
  kAdditionalItems,
  kMaxItems,
  kMinItems,
  kUniqueItems,
  kContains,
  kMaxProperties,
  kMinProperties,
  kRequired,
  kProperties,
  kPatternProperties,
  kAdditionalProperties,
  kDependencies,
  kPropertyNames,
  kIf,
  kThen,
  kElse,
  kAllOf,
  kAnyOf,
  kOneOf,
  kNot,
  kDefinitions,
  kRef,
  kId,
  kSchema,
  // annotations
  kComment,
  kTitle,
  kDescription,
  kDefault,
  kExamples,
  kReadOnly,
  kWriteOnly,
  kContentMediaType,
  kContentEncoding,
};

const std::unordered_map<std::string_view, Kw>& keywords() {
  static const std::unordered_map<std::string_view, Kw> table = {
      {"type", Kw::kType},
      {"enum", Kw::kEnum},
      {"const", Kw::kConst},
      {"multipleOf", Kw::kMultipleOf},
      {"maximum", Kw::kMaximum},
      {"exclusiveMaximum", Kw::kExclusiveMaximum},
      {"minimum", Kw::kMinimum},
      {"exclusiveMinimum", Kw::kExclusiveMinimum},
      {"maxLength", Kw::kMaxLength},
      {"minLength", Kw::kMinLength},
      {"pattern", Kw::kPattern},
      {"format", Kw::kFormat},
      {"items", Kw::kItems},
      {"additionalItems", Kw::kAdditionalItems},
      {"maxItems", Kw::kMaxItems},
      {"minItems", Kw::kMinItems},
      {"uniqueItems", Kw::kUniqueItems},
      {"contains", Kw::kContains},
      {"maxProperties", Kw::kMaxProperties},
      {"minProperties", Kw::kMinProperties},
      {"required", Kw::kRequired},
      {"properties", Kw::kProperties},
      {"patternProperties", Kw::kPatternProperties},
      {"additionalProperties", Kw::kAdditionalProperties},
      {"dependencies", Kw::kDependencies},
      {"propertyNames", Kw::kPropertyNames},
      {"if", Kw::kIf},
      {"then", Kw::kThen},
      {"else", Kw::kElse},
      {"allOf", Kw::kAllOf},
      {"anyOf", Kw::kAnyOf},
      {"oneOf", Kw::kOneOf},
      {"not", Kw::kNot},
      {"definitions", Kw::kDefinitions},
      {"$ref", Kw::kRef},
      {"$id", Kw::kId},
      {"$schema", Kw::kSchema},
      {"$comment", Kw::kComment},
      {"title", Kw::kTitle},
      {"description", Kw::kDescription},
      {"default", Kw::kDefault},
      {"examples", Kw::kExamples},
      {"readOnly", Kw::kReadOnly},
      {"writeOnly", Kw::kWriteOnly},
      {"contentMediaType", Kw::kContentMediaType},
      {"contentEncoding", Kw::kContentEncoding},
  };
  return table;
}

const std::vector<std::string_view>& keyword_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    v.reserve(keywords().size());
    for (const auto& [name, kw] : keywords()) v.push_back(name);
    std::sort(v.begin(), v.end());
    return v;
  }();
  return names;
}

// Keywords of other drafts or dialects that users bring along, with what to do instead.
std::string_view foreign_keyword_hint(std::string_view name) {
  static constexpr std::pair<std::string_view, std::string_view> kHints[] = {
      {"$defs", "is a draft 2019-09 keyword; draft 7 uses \"definitions\""},
      {"dependentRequired", "is a draft 2019-09 keyword; draft 7 uses \"dependencies\""},
      {"dependentSchemas", "is a draft 2019-09 keyword; draft 7 uses \"dependencies\""},
      {"prefixItems", "is a draft 2020-12 keyword; draft 7 uses \"items\": [...]"},
      {"unevaluatedProperties", "is a draft 2019-09 keyword, not available in draft 7"},
      {"unevaluatedItems", "is a draft 2019-09 keyword, not available in draft 7"},
      {"minContains", "is a draft 2019-09 keyword, not available in draft 7"},
      {"maxContains", "is a draft 2019-09 keyword, not available in draft 7"},
      {"$anchor", "is a draft 2019-09 keyword; draft 7 uses \"$id\": \"#name\""},
      {"$recursiveRef", "is a draft 2019-09 keyword, not available in draft 7"},
      {"$recursiveAnchor", "is a draft 2019-09 keyword, not available in draft 7"},
      {"$dynamicRef", "is a draft 2020-12 keyword, not available in draft 7"},
      {"$dynamicAnchor", "is a draft 2020-12 keyword, not available in draft 7"},
      {"$vocabulary", "is a draft 2019-09 keyword, not available in draft 7"},
      {"id", "is a draft 4 keyword; draft 7 uses \"$id\""},
      {"divisibleBy", "is a draft 3 keyword; draft 7 uses \"multipleOf\""},
      {"extends", "is a draft 3 keyword; draft 7 uses \"allOf\""},
      {"disallow", "is a draft 3 keyword; draft 7 uses \"not\""},
      {"nullable", "is an OpenAPI keyword; draft 7 uses \"type\": [..., \"null\"]"},
      {"example", "is an OpenAPI keyword; draft 7 uses \"examples\": [...]"},
      {"discriminator", "is an OpenAPI keyword, not available in draft 7"},
  };
  for (const auto& [n, hint] : kHints) {
    if (n == name) return hint;
  }
  return {};
}

bool is_annotation(Kw k) {
  switch (k) {
    case Kw::kComment:
    case Kw::kTitle:
    case Kw::kDescription:
    case Kw::kDefault:
    case Kw::kExamples:
    case Kw::kReadOnly:
    case Kw::kWriteOnly:
    case Kw::kContentMediaType:
    case Kw::kContentEncoding:
    case Kw::kId:
    case Kw::kSchema:
      return true;
    default:
      return false;
  }
}

std::string_view json_type_name(const element& e) {
  switch (e.type()) {
    case element_type::NULL_VALUE:
      return "null";
    case element_type::BOOL:
      return "boolean";
    case element_type::OBJECT:
      return "object";
    case element_type::ARRAY:
      return "array";
    case element_type::STRING:
      return "string";
    default:
      return "number";
  }
}

bool is_draft7_uri(std::string_view uri) {
  auto [abs, frag] = split_fragment(uri);
  return frag.empty() &&
         (abs == kDraft7MetaSchemaUri || abs == "https://json-schema.org/draft-07/schema");
}

}  // namespace detail

namespace detail {

struct SchemaImpl {
  CompileOptions options;
  std::vector<Doc> docs;
  std::vector<std::unique_ptr<Node>> nodes;
  const Node* root = nullptr;
  std::vector<std::string> ignored_keywords;
};

namespace {

constexpr std::string_view kDefaultBase = "spate:///schema.json";
constexpr size_t kMaxReportedErrors = 20;

class Compiler {
 public:
  explicit Compiler(SchemaImpl& impl) : impl_(impl), strict_(impl.options.strict) {}

  Status run(std::string_view text) {
    size_t doc = 0;
    if (Status s = add_doc(text, std::string(kDefaultBase), "#", &doc); !s.ok()) {
      return InvalidArgument("schema is not valid JSON: " + s.message());
    }
    Node* root = compile_schema(doc, impl_.docs[doc].root, "", impl_.docs[doc].base, 0);
    resolve_refs();
    if (errors_.empty()) check_cycles();
    if (!errors_.empty()) {
      std::string message = fmt::format("invalid JSON Schema: {}", fmt::join(errors_, "; "));
      if (error_count_ > errors_.size()) {
        message += fmt::format(" (and {} more)", error_count_ - errors_.size());
      }
      return InvalidArgument(std::move(message));
    }
    collapse_refs();
    impl_.root = root->ref != nullptr ? root->ref : root;
    return Status::Ok();
  }

 private:
  struct Resource {
    size_t doc = 0;
    std::string pointer;
    element value;
    std::string base;
  };
  struct PendingRef {
    Node* node;
    std::string uri;   // resolved
    std::string text;  // as written
  };

  Status add_doc(std::string_view text, std::string base, std::string display, size_t* index) {
    Doc d;
    d.parser = std::make_unique<simdjson::dom::parser>();
    simdjson::padded_string padded(text);
    if (auto err = d.parser->parse(padded).get(d.root); err != simdjson::SUCCESS) {
      return InvalidArgument(simdjson::error_message(err));
    }
    d.base = std::move(base);
    d.display = std::move(display);
    *index = impl_.docs.size();
    impl_.docs.push_back(std::move(d));
    const Doc& added = impl_.docs.back();
    resources_[added.base] = Resource{*index, "", added.root, added.base};
    return Status::Ok();
  }

  std::string location(size_t doc, std::string_view pointer) const {
    return impl_.docs[doc].display + std::string(pointer);
  }

  void error(std::string_view where, std::string message) {
    ++error_count_;
    if (errors_.size() < kMaxReportedErrors) {
      errors_.push_back(fmt::format("{}: {}", where, message));
    }
  }

  // Compile the schema `e` found at `pointer` of document `doc` (memoised by location).
  Node* compile_schema(size_t doc, const element& e, const std::string& pointer,
                       const std::string& base, int depth) {
    std::string key = fmt::format("{}|{}", doc, pointer);
    if (auto it = by_location_.find(key); it != by_location_.end()) return it->second;
    auto owned = std::make_unique<Node>();
    Node* n = owned.get();
    n->id = static_cast<uint32_t>(impl_.nodes.size());
    n->location = location(doc, pointer);
    impl_.nodes.push_back(std::move(owned));
    by_location_.emplace(std::move(key), n);

    if (depth > impl_.options.max_depth) {
      error(n->location,
            fmt::format("schema nested deeper than {} levels", impl_.options.max_depth));
      return n;
    }
    if (e.type() == element_type::BOOL) {
      n->is_false = !e.get_bool().value_unsafe();
      return n;
    }
    if (e.type() != element_type::OBJECT) {
      error(n->location,
            fmt::format("a schema must be an object or a boolean, got {}", json_type_name(e)));
      return n;
    }
    compile_object(n, doc, e, pointer, base, depth);
    return n;
  }

  Node* child(size_t doc, const element& e, const std::string& pointer, std::string_view token,
              const std::string& base, int depth) {
    std::string p = pointer;
    append_pointer_token(p, token);
    return compile_schema(doc, e, p, base, depth + 1);
  }

  Node* child2(size_t doc, const element& e, const std::string& pointer, std::string_view t1,
               std::string_view t2, const std::string& base, int depth) {
    std::string p = pointer;
    append_pointer_token(p, t1);
    append_pointer_token(p, t2);
    return compile_schema(doc, e, p, base, depth + 1);
  }

  // A non-negative integer keyword value (2 and 2.0 alike); huge values saturate.
  bool get_count(const element& v, const std::string& where, std::string_view kw, uint64_t* out) {
    Number num;
    if (to_number(v, &num) && num.is_integral() && compare_numbers(num, Number::of_int(0)) >= 0) {
      if (num.kind == Number::kInt) {
        *out = static_cast<uint64_t>(num.i);
      } else if (num.kind == Number::kUint) {
        *out = num.u;
      } else {
        *out = num.d >= 18446744073709551616.0 ? UINT64_MAX : static_cast<uint64_t>(num.d);
      }
      return true;
    }
    error(where, fmt::format("\"{}\" must be a non-negative integer, got {}", kw, json_text(v)));
    return false;
  }

  bool get_number(const element& v, const std::string& where, std::string_view kw, Number* out) {
    if (to_number(v, out)) return true;
    error(where, fmt::format("\"{}\" must be a number, got {}", kw, json_text(v)));
    return false;
  }

  uint32_t slot_for(Node* n, std::string_view name) {
    auto& names = slot_names_[n->id];
    auto [it, inserted] = names.emplace(name, static_cast<uint32_t>(n->slots.size()));
    if (inserted) n->slots.push_back(NameSlot{name, nullptr, -1});
    return it->second;
  }

  uint32_t tracked_slot(Node* n, std::string_view name) {
    uint32_t s = slot_for(n, name);
    if (n->slots[s].bit < 0) n->slots[s].bit = static_cast<int32_t>(n->tracked++);
    return s;
  }

  // Checks an object's keys for duplicates (ambiguous in JSON; simdjson keeps both).
  bool no_duplicates(const simdjson::dom::object& obj, const std::string& where,
                     std::string_view what) {
    std::unordered_set<std::string_view> seen;
    for (auto field : obj) {
      if (!seen.insert(field.key).second) {
        error(where, fmt::format("duplicate {} {}", what, quoted_text(field.key)));
        return false;
      }
    }
    return true;
  }

  std::vector<std::string_view> string_list(const element& v, const std::string& where,
                                            std::string_view kw) {
    std::vector<std::string_view> out;
    if (v.type() != element_type::ARRAY) {
      error(where, fmt::format("\"{}\" must be an array of strings, got {}", kw, json_text(v)));
      return out;
    }
    std::unordered_set<std::string_view> seen;
    for (element item : as_array(v)) {
      if (item.type() != element_type::STRING) {
        error(where, fmt::format("\"{}\" must be an array of strings, got {}", kw, json_text(v)));
        return {};
      }
      std::string_view s = as_string(item);
      if (seen.insert(s).second) out.push_back(s);
    }
    return out;
  }

  void unknown_keyword(const Node* n, std::string_view kw) {
    if (!strict_) {
      std::string where = n->location;
      append_pointer_token(where, kw);
      impl_.ignored_keywords.push_back(std::move(where));
      return;
    }
    std::string_view hint = foreign_keyword_hint(kw);
    if (!hint.empty()) {
      error(n->location, fmt::format("\"{}\" {}", kw, hint));
      return;
    }
    std::string guess = suggest(kw, keyword_names());
    error(n->location,
          guess.empty() ? fmt::format("unknown keyword \"{}\"", kw)
                        : fmt::format("unknown keyword \"{}\" (did you mean \"{}\"?)", kw, guess));
  }

  // Type checks of annotation keywords (strict mode only: they never affect validation).
  void check_annotation(const Node* n, Kw kw, std::string_view name, const element& v) {
    if (!strict_) return;
    bool ok = true;
    std::string_view want;
    switch (kw) {
      case Kw::kComment:
      case Kw::kTitle:
      case Kw::kDescription:
      case Kw::kContentMediaType:
      case Kw::kContentEncoding:
        ok = v.type() == element_type::STRING;
        want = "a string";
        break;
      case Kw::kReadOnly:
      case Kw::kWriteOnly:
        ok = v.type() == element_type::BOOL;
        want = "a boolean";
        break;
      case Kw::kExamples:
        ok = v.type() == element_type::ARRAY;
        want = "an array";
        break;
      case Kw::kSchema:
        if (v.type() != element_type::STRING) {
          ok = false;
          want = "a string";
        } else if (!is_draft7_uri(as_string(v))) {
          error(n->location, fmt::format("\"$schema\" is {}; this validator implements draft 7 "
                                         "(\"http://json-schema.org/draft-07/schema#\")",
                                         json_text(v)));
        }
        break;
      default:
        break;
    }
    if (!ok) error(n->location, fmt::format("\"{}\" must be {}, got {}", name, want, json_text(v)));
  }

  void compile_object(Node* n, size_t doc, const element& self, const std::string& pointer,
                      const std::string& base, int depth) {
    simdjson::dom::object obj = as_object(self);
    if (!no_duplicates(obj, n->location, "keyword")) return;
    const auto& kws = keywords();

    element ref;
    if (obj.at_key("$ref").get(ref) == simdjson::SUCCESS) {
      // Draft 7: "$ref" replaces the whole schema; siblings (including "$id") are ignored.
      if (ref.type() != element_type::STRING) {
        error(n->location, fmt::format("\"$ref\" must be a string, got {}", json_text(ref)));
      } else {
        std::string_view text = as_string(ref);
        pending_.push_back(PendingRef{n, resolve_uri(base, text), std::string(text)});
      }
      for (auto field : obj) {
        auto it = kws.find(field.key);
        if (it == kws.end()) {
          unknown_keyword(n, field.key);
        } else if (it->second == Kw::kDefinitions) {
          compile_definitions(n, doc, field.value, pointer, base, depth);
        } else if (is_annotation(it->second)) {
          check_annotation(n, it->second, field.key, field.value);
        } else if (it->second != Kw::kRef && strict_) {
          error(n->location,
                fmt::format("\"{}\" beside \"$ref\" is ignored in draft 7; combine them with "
                            "\"allOf\": [{{\"$ref\": ...}}, {{\"{}\": ...}}]",
                            field.key, field.key));
        }
      }
      return;
    }

    std::string my_base = base;
    element id;
    if (obj.at_key("$id").get(id) == simdjson::SUCCESS) {
      if (id.type() != element_type::STRING) {
        error(n->location, fmt::format("\"$id\" must be a string, got {}", json_text(id)));
      } else {
        register_id(n, doc, self, pointer, id, base, &my_base);
      }
    }

    const element* then_el = nullptr;
    const element* else_el = nullptr;
    element then_v, else_v, additional_items_v;
    bool has_additional_items = false;
    for (auto field : obj) {
      std::string_view name = field.key;
      const element& v = field.value;
      auto it = kws.find(name);
      if (it == kws.end()) {
        unknown_keyword(n, name);
        continue;
      }
      Kw kw = it->second;
      const std::string& where = n->location;
      switch (kw) {
        case Kw::kType:
          compile_type(n, v);
          break;
        case Kw::kEnum: {
          if (v.type() != element_type::ARRAY) {
            error(where, fmt::format("\"enum\" must be an array, got {}", json_text(v)));
            break;
          }
          n->checks |= kCEnum;
          n->enum_array = v;
          size_t count = 0;
          std::unordered_set<std::string_view> strings;
          for (element item : as_array(v)) {
            ++count;
            if (item.type() != element_type::STRING) {
              n->enum_others.push_back(item);
            } else if (strings.insert(as_string(item)).second) {
              n->enum_strings.add(as_string(item), 0);
            }
          }
          n->enum_strings.build();
          if (count == 0 && strict_) error(where, "\"enum\" is empty, so nothing is valid");
          break;
        }
        case Kw::kConst:
          n->checks |= kCConst;
          n->const_value = v;
          break;
        case Kw::kMultipleOf:
          if (get_number(v, where, name, &n->multiple_of)) {
            if (compare_numbers(n->multiple_of, Number::of_int(0)) <= 0) {
              error(where, fmt::format("\"multipleOf\" must be > 0, got {}", json_text(v)));
            } else {
              n->checks |= kCMultipleOf;
            }
          }
          break;
        case Kw::kMaximum:
          if (get_number(v, where, name, &n->maximum)) n->checks |= kCMaximum;
          break;
        case Kw::kExclusiveMaximum:
          if (v.type() == element_type::BOOL) {
            error(where,
                  "\"exclusiveMaximum\" is a number in draft 7 (the boolean form is draft 4)");
          } else if (get_number(v, where, name, &n->exclusive_maximum)) {
            n->checks |= kCExclusiveMaximum;
          }
          break;
        case Kw::kMinimum:
          if (get_number(v, where, name, &n->minimum)) n->checks |= kCMinimum;
          break;
        case Kw::kExclusiveMinimum:
          if (v.type() == element_type::BOOL) {
            error(where,
                  "\"exclusiveMinimum\" is a number in draft 7 (the boolean form is draft 4)");
          } else if (get_number(v, where, name, &n->exclusive_minimum)) {
            n->checks |= kCExclusiveMinimum;
          }
          break;
        case Kw::kMaxLength:
          if (get_count(v, where, name, &n->max_length)) n->checks |= kCMaxLength;
          break;
        case Kw::kMinLength:
          if (get_count(v, where, name, &n->min_length) && n->min_length > 0) {
            n->checks |= kCMinLength;
          }
          break;
        case Kw::kPattern: {
          if (v.type() != element_type::STRING) {
            error(where, fmt::format("\"pattern\" must be a string, got {}", json_text(v)));
            break;
          }
          n->pattern_source = as_string(v);
          auto re = Matcher::compile(n->pattern_source);
          if (!re.ok()) {
            error(where, fmt::format("\"pattern\" {}: {}", quoted_text(n->pattern_source),
                                     re.status().message()));
          } else {
            n->pattern = std::move(re).value();
            n->checks |= kCPattern;
          }
          break;
        }
        case Kw::kFormat:
          compile_format(n, v);
          break;
        case Kw::kItems:
          if (v.type() == element_type::ARRAY) {
            n->tuple_form = true;
            size_t i = 0;
            for (element item : as_array(v)) {
              n->tuple.push_back(
                  child2(doc, item, pointer, "items", std::to_string(i++), my_base, depth));
            }
          } else {
            n->items = child(doc, v, pointer, "items", my_base, depth);
          }
          n->checks |= kCItems;
          break;
        case Kw::kAdditionalItems:
          additional_items_v = v;
          has_additional_items = true;
          break;
        case Kw::kMaxItems:
          if (get_count(v, where, name, &n->max_items)) n->checks |= kCMaxItems;
          break;
        case Kw::kMinItems:
          if (get_count(v, where, name, &n->min_items) && n->min_items > 0) n->checks |= kCMinItems;
          break;
        case Kw::kUniqueItems:
          if (v.type() != element_type::BOOL) {
            error(where, fmt::format("\"uniqueItems\" must be a boolean, got {}", json_text(v)));
          } else if (v.get_bool().value_unsafe()) {
            n->checks |= kCUniqueItems;
          }
          break;
        case Kw::kContains:
          n->contains = child(doc, v, pointer, "contains", my_base, depth);
          n->checks |= kCContains;
          break;
        case Kw::kMaxProperties:
          if (get_count(v, where, name, &n->max_properties)) n->checks |= kCMaxProperties;
          break;
        case Kw::kMinProperties:
          if (get_count(v, where, name, &n->min_properties) && n->min_properties > 0) {
            n->checks |= kCMinProperties;
          }
          break;
        case Kw::kRequired:
          for (std::string_view r : string_list(v, where, name)) {
            n->required.push_back(tracked_slot(n, r));  // string_list removed duplicates
          }
          if (!n->required.empty()) n->checks |= kCObjectPass;
          break;
        case Kw::kProperties:
          if (v.type() != element_type::OBJECT) {
            error(where, fmt::format("\"properties\" must be an object, got {}", json_text(v)));
            break;
          }
          if (!no_duplicates(as_object(v), where, "property")) break;
          for (auto p : as_object(v)) {
            uint32_t s = slot_for(n, p.key);
            n->slots[s].schema = child2(doc, p.value, pointer, "properties", p.key, my_base, depth);
            n->checks |= kCObjectPass;
          }
          break;
        case Kw::kPatternProperties:
          if (v.type() != element_type::OBJECT) {
            error(where,
                  fmt::format("\"patternProperties\" must be an object, got {}", json_text(v)));
            break;
          }
          if (!no_duplicates(as_object(v), where, "pattern")) break;
          for (auto p : as_object(v)) {
            PatternProperty pp;
            pp.source = p.key;
            auto re = Matcher::compile(p.key);
            pp.schema = child2(doc, p.value, pointer, "patternProperties", p.key, my_base, depth);
            if (!re.ok()) {
              error(where, fmt::format("\"patternProperties\" {}: {}", quoted_text(p.key),
                                       re.status().message()));
            } else {
              pp.re = std::move(re).value();
              n->pattern_properties.push_back(std::move(pp));
            }
            n->checks |= kCObjectPass;
          }
          break;
        case Kw::kAdditionalProperties:
          n->additional_properties = child(doc, v, pointer, "additionalProperties", my_base, depth);
          n->checks |= kCObjectPass;
          break;
        case Kw::kDependencies:
          compile_dependencies(n, doc, v, pointer, my_base, depth);
          break;
        case Kw::kPropertyNames:
          n->property_names = child(doc, v, pointer, "propertyNames", my_base, depth);
          n->checks |= kCObjectPass;
          break;
        case Kw::kIf:
          n->if_schema = child(doc, v, pointer, "if", my_base, depth);
          break;
        case Kw::kThen:
          then_v = v;
          then_el = &then_v;
          break;
        case Kw::kElse:
          else_v = v;
          else_el = &else_v;
          break;
        case Kw::kAllOf:
        case Kw::kAnyOf:
        case Kw::kOneOf: {
          auto& list = kw == Kw::kAllOf ? n->all_of : kw == Kw::kAnyOf ? n->any_of : n->one_of;
          if (v.type() != element_type::ARRAY || as_array(v).size() == 0) {
            error(where, fmt::format("\"{}\" must be a non-empty array of schemas, got {}", name,
                                     json_text(v)));
            break;
          }
          size_t i = 0;
          for (element item : as_array(v)) {
            list.push_back(child2(doc, item, pointer, name, std::to_string(i++), my_base, depth));
          }
          n->checks |= kw == Kw::kAllOf ? kCAllOf : kw == Kw::kAnyOf ? kCAnyOf : kCOneOf;
          break;
        }
        case Kw::kNot:
          n->not_schema = child(doc, v, pointer, "not", my_base, depth);
          n->checks |= kCNot;
          break;
        case Kw::kDefinitions:
          compile_definitions(n, doc, v, pointer, my_base, depth);
          break;
        case Kw::kRef:
        case Kw::kId:
          break;
        default:
          check_annotation(n, kw, name, v);
          break;
      }
    }
    // then/else without if never apply, but are still schemas (checked, and $ref targets).
    if (then_el != nullptr) n->then_schema = child(doc, *then_el, pointer, "then", my_base, depth);
    if (else_el != nullptr) n->else_schema = child(doc, *else_el, pointer, "else", my_base, depth);
    if (n->if_schema != nullptr && (n->then_schema != nullptr || n->else_schema != nullptr)) {
      n->checks |= kCIf;
    }
    if (has_additional_items) {
      Node* a = child(doc, additional_items_v, pointer, "additionalItems", my_base, depth);
      if (n->tuple_form) n->additional_items = a;  // ignored unless "items" is an array
    }
    for (uint32_t i = 0; i < n->slots.size(); ++i) n->slot_index.add(n->slots[i].name, i);
    n->slot_index.build();
  }

  void compile_type(Node* n, const element& v) {
    auto add = [&](const element& t) {
      if (t.type() != element_type::STRING) {
        error(n->location, fmt::format("\"type\" names must be strings, got {}", json_text(t)));
        return;
      }
      std::string_view name = as_string(t);
      for (const auto& [type, bit] : kTypeNames) {
        if (type == name) {
          n->types |= bit;
          return;
        }
      }
      std::vector<std::string_view> names;
      names.reserve(kTypeNames.size());
      for (const auto& entry : kTypeNames) names.push_back(entry.first);
      std::string guess = suggest(name, names);
      error(n->location, fmt::format("unknown type {}{}", quoted_text(name),
                                     guess.empty() ? "" : " (did you mean \"" + guess + "\"?)"));
    };
    n->checks |= kCType;
    if (v.type() == element_type::ARRAY) {
      for (element t : as_array(v)) add(t);
      if (as_array(v).size() == 0 && strict_) {
        error(n->location, "\"type\" is an empty array, so nothing is valid");
      }
    } else {
      add(v);
    }
    // "number" includes "integer".
    if (n->types & kTNumber) n->types |= kTInteger;
  }

  void compile_format(Node* n, const element& v) {
    if (v.type() != element_type::STRING) {
      error(n->location, fmt::format("\"format\" must be a string, got {}", json_text(v)));
      return;
    }
    std::string_view name = as_string(v);
    auto f = format_from_name(name);
    if (!f) {
      if (strict_) {
        std::string guess = suggest(name, format_names());
        error(n->location, fmt::format("unknown format {}{}", quoted_text(name),
                                       guess.empty() ? "" : " (did you mean \"" + guess + "\"?)"));
      }
      return;
    }
    if (impl_.options.validate_formats && format_is_checked(*f)) {
      n->format = *f;
      n->format_name = name;
      n->checks |= kCFormat;
    }
  }

  void compile_dependencies(Node* n, size_t doc, const element& v, const std::string& pointer,
                            const std::string& base, int depth) {
    if (v.type() != element_type::OBJECT) {
      error(n->location, fmt::format("\"dependencies\" must be an object, got {}", json_text(v)));
      return;
    }
    if (!no_duplicates(as_object(v), n->location, "dependency")) return;
    for (auto d : as_object(v)) {
      Dependency dep;
      dep.trigger = tracked_slot(n, d.key);
      if (d.value.type() == element_type::ARRAY) {
        for (std::string_view r : string_list(d.value, n->location, "dependencies")) {
          dep.required.push_back(tracked_slot(n, r));
        }
      } else {
        dep.schema = child2(doc, d.value, pointer, "dependencies", d.key, base, depth);
      }
      n->dependencies.push_back(std::move(dep));
      n->checks |= kCObjectPass;
    }
  }

  void compile_definitions(Node* n, size_t doc, const element& v, const std::string& pointer,
                           const std::string& base, int depth) {
    if (v.type() != element_type::OBJECT) {
      error(n->location, fmt::format("\"definitions\" must be an object, got {}", json_text(v)));
      return;
    }
    if (!no_duplicates(as_object(v), n->location, "definition")) return;
    for (auto d : as_object(v)) {
      child2(doc, d.value, pointer, "definitions", d.key, base, depth);
    }
  }

  void register_id(Node* n, size_t doc, const element& self, const std::string& pointer,
                   const element& id, const std::string& base, std::string* my_base) {
    std::string_view text = as_string(id);
    std::string resolved = resolve_uri(base, text);
    auto [abs, frag] = split_fragment(resolved);
    Resource here{doc, pointer, self, ""};
    if (!frag.empty()) {
      if (frag[0] == '/') {
        error(n->location, fmt::format("\"$id\" {} must not contain a JSON Pointer fragment",
                                       quoted_text(text)));
        return;
      }
      here.base = std::string(abs);
      add_resource(anchors_, resolved, here, n);
    }
    if (!split_fragment(text).first.empty()) {
      *my_base = std::string(abs);
      here.base = *my_base;
      add_resource(resources_, *my_base, here, n);
    }
  }

  void add_resource(std::unordered_map<std::string, Resource>& map, const std::string& uri,
                    const Resource& r, const Node* n) {
    auto [it, inserted] = map.emplace(uri, r);
    if (!inserted && (it->second.doc != r.doc || it->second.pointer != r.pointer)) {
      error(n->location, fmt::format("\"$id\" {} is also used at {}", quoted_text(uri),
                                     location(it->second.doc, it->second.pointer)));
    }
  }

  static bool navigate(const element& from, const std::string& token, element* out) {
    if (from.type() == element_type::OBJECT) {
      return as_object(from).at_key(token).get(*out) == simdjson::SUCCESS;
    }
    if (from.type() == element_type::ARRAY) {
      if (token.empty() || token.size() > 10 || (token.size() > 1 && token[0] == '0')) return false;
      size_t index = 0;
      for (char c : token) {
        if (c < '0' || c > '9') return false;
        index = index * 10 + static_cast<size_t>(c - '0');
      }
      return as_array(from).at(index).get(*out) == simdjson::SUCCESS;
    }
    return false;
  }

  bool load_metaschema() {
    size_t doc = 0;
    std::string display = std::string(kDraft7MetaSchemaUri) + "#";
    if (!add_doc(kDraft7MetaSchema, std::string(kDraft7MetaSchemaUri), display, &doc).ok()) {
      return false;
    }
    compile_schema(doc, impl_.docs[doc].root, "", impl_.docs[doc].base, 0);
    return true;
  }

  void resolve_refs() {
    while (!pending_.empty()) {
      PendingRef p = std::move(pending_.front());
      pending_.pop_front();
      auto [abs_view, frag] = split_fragment(p.uri);
      std::string abs(abs_view);
      auto it = resources_.find(abs);
      if (it == resources_.end() &&
          (abs == kDraft7MetaSchemaUri || abs == "https://json-schema.org/draft-07/schema")) {
        if (resources_.find(std::string(kDraft7MetaSchemaUri)) == resources_.end()) {
          load_metaschema();
        }
        it = resources_.find(std::string(kDraft7MetaSchemaUri));
      }
      if (it == resources_.end()) {
        std::string_view scheme = uri_scheme(abs);
        if (scheme == "http" || scheme == "https" || scheme == "ftp" || scheme == "file") {
          error(p.node->location,
                fmt::format("\"$ref\" {} is a remote reference ({}), which is not supported: "
                            "only references within the schema (and the draft-07 meta-schema) "
                            "resolve",
                            quoted_text(p.text), abs));
        } else {
          error(p.node->location,
                fmt::format("\"$ref\" {} does not resolve to any schema in the document",
                            quoted_text(p.text)));
        }
        continue;
      }
      Resource target;
      if (frag.empty() || frag[0] == '/') {
        const Resource& res = it->second;
        auto tokens = parse_json_pointer(percent_decode(frag));
        if (!tokens.ok()) {
          error(p.node->location,
                fmt::format("\"$ref\" {}: {}", quoted_text(p.text), tokens.status().message()));
          continue;
        }
        target = res;
        bool found = true;
        for (const std::string& t : *tokens) {
          element next;
          if (!navigate(target.value, t, &next)) {
            found = false;
            break;
          }
          target.value = next;
          append_pointer_token(target.pointer, t);
        }
        if (!found) {
          error(p.node->location, fmt::format("\"$ref\" {} does not resolve: no {} in the document",
                                              quoted_text(p.text), quoted_text(std::string(frag))));
          continue;
        }
      } else {
        auto a = anchors_.find(p.uri);
        if (a == anchors_.end()) {
          error(p.node->location,
                fmt::format("\"$ref\" {} does not resolve: no \"$id\": \"#{}\" in the document",
                            quoted_text(p.text), frag));
          continue;
        }
        target = a->second;
      }
      p.node->ref = compile_schema(target.doc, target.value, target.pointer, target.base, 0);
    }
  }

  // Reject cycles among in-place applicators ($ref, allOf, anyOf, oneOf, not, if/then/else,
  // schema dependencies): evaluating one would recurse forever on the same value.
  void check_cycles() {
    size_t count = impl_.nodes.size();
    std::vector<uint8_t> color(count, 0);  // 0 new, 1 on stack, 2 done
    struct Frame {
      Node* node;
      std::vector<Node*> next;
      size_t i;
    };
    auto children = [](Node* n) {
      std::vector<Node*> out;
      n->for_each_child([&](const Node*& c, bool in_place) {
        if (in_place) out.push_back(const_cast<Node*>(c));
      });
      return out;
    };
    for (size_t s = 0; s < count; ++s) {
      if (color[s] != 0) continue;
      std::vector<Frame> stack;
      Node* start = impl_.nodes[s].get();
      color[s] = 1;
      stack.push_back(Frame{start, children(start), 0});
      while (!stack.empty()) {
        Frame& f = stack.back();
        if (f.i == f.next.size()) {
          color[f.node->id] = 2;
          stack.pop_back();
          continue;
        }
        Node* c = f.next[f.i++];
        if (color[c->id] == 1) {
          std::vector<std::string_view> cycle;
          size_t k = 0;
          while (stack[k].node != c) ++k;
          for (; k < stack.size(); ++k) cycle.push_back(stack[k].node->location);
          cycle.push_back(c->location);
          error(c->location,
                fmt::format("schema recursion that never reaches a value: {} (a \"$ref\"/"
                            "allOf/anyOf/oneOf/not/if cycle would loop forever)",
                            fmt::join(cycle, " -> ")));
          return;
        }
        if (color[c->id] == 0) {
          color[c->id] = 1;
          stack.push_back(Frame{c, children(c), 0});
        }
      }
    }
  }

  // Point every use of a "$ref" node at the node it finally names (chains are acyclic now).
  void collapse_refs() {
    auto final_target = [](const Node* n) {
      while (n->ref != nullptr) n = n->ref;
      return n;
    };
    for (auto& owned : impl_.nodes) {
      Node* n = owned.get();
      if (n->ref != nullptr) n->ref = final_target(n->ref);
    }
    for (auto& owned : impl_.nodes) {
      owned->for_each_child([&](const Node*& c, bool) {
        if (c != owned.get() && c->ref != nullptr) c = c->ref;
      });
    }
  }

  SchemaImpl& impl_;
  bool strict_;
  std::vector<std::string> errors_;
  size_t error_count_ = 0;
  std::unordered_map<std::string, Node*> by_location_;
  std::unordered_map<uint32_t, std::unordered_map<std::string_view, uint32_t>> slot_names_;
  std::unordered_map<std::string, Resource> resources_;
  std::unordered_map<std::string, Resource> anchors_;
  std::deque<PendingRef> pending_;
};

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------------------------------------

std::string ValidationError::to_string() const {
  return fmt::format("{}: {}", instance_path.empty() ? "(root)" : instance_path, message);
}

Result<CompiledSchema> CompiledSchema::compile(std::string_view schema_json,
                                               const CompileOptions& options) {
  auto impl = std::make_shared<detail::SchemaImpl>();
  impl->options = options;
  detail::Compiler compiler(*impl);
  if (Status s = compiler.run(schema_json); !s.ok()) return s;
  return CompiledSchema(std::move(impl));
}

Result<CompiledSchema> CompiledSchema::compile_file(const std::string& path,
                                                    const CompileOptions& options, FileSystem* fs) {
  if (fs == nullptr) fs = default_fs();
  auto text = fs->read_file(path);
  if (!text.ok()) return text.status();
  auto compiled = compile(*text, options);
  if (!compiled.ok()) return compiled.status().with_context(path);
  return compiled;
}

bool CompiledSchema::valid(const simdjson::dom::element& instance) const {
  detail::Ctx ctx;
  return detail::eval<false>(impl_->root, detail::Inst::of(instance), ctx, 0);
}

bool CompiledSchema::validate(const simdjson::dom::element& instance,
                              ValidationError* first_error) const {
  if (valid(instance)) return true;
  if (first_error == nullptr) return false;
  *first_error = ValidationError();
  detail::Ctx ctx;
  ctx.err = first_error;
  if (detail::eval<true>(impl_->root, detail::Inst::of(instance), ctx, 0)) {
    // Both passes run the same checks; disagreeing is a bug in this file.
    first_error->message = "invalid (internal error: the reporting pass found no failure)";
    return false;
  }
  std::string path;
  for (auto it = ctx.rev_path.rbegin(); it != ctx.rev_path.rend(); ++it) {
    append_pointer_token(path, *it);
  }
  first_error->instance_path = std::move(path);
  return false;
}

Status CompiledSchema::validate_json(std::string_view json_text) const {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(json_text);
  simdjson::dom::element doc;
  if (auto err = parser.parse(padded).get(doc); err != simdjson::SUCCESS) {
    return InvalidArgument(std::string("invalid JSON: ") + simdjson::error_message(err));
  }
  ValidationError e;
  if (validate(doc, &e)) return Status::Ok();
  return InvalidArgument(e.to_string());
}

std::vector<std::string> CompiledSchema::unsupported_keywords() const {
  return impl_->ignored_keywords;
}

const CompileOptions& CompiledSchema::options() const {
  return impl_->options;
}

}  // namespace spate::schema
