// Spate's expression language: `amount > 100 and user.country in ["FR", "DE"]`.
//
// One small language shared by routing rules, transforms ("set a field to an expression"),
// data-quality checks, processor filter/map and analytics patterns. The syntax and semantics are
// specified in docs/expressions.md; this header is the C++ contract.
//
// Contract:
// - Expression::compile() parses, type-checks what can be checked statically (function names and
//   arity, regex patterns, `in` lists), folds constants and compiles regexes once. On failure it
//   returns Errc::kInvalidArgument with "expr:LINE:COL: message" (1-based, columns in bytes).
//   It never crashes or throws on any input; the limits are 64 KiB of source, nesting depth 64 and
//   10,000 items per list literal.
// - A compiled Expression is immutable. Copies share the compiled program (cheap). evaluate() and
//   matches() are const and thread-safe: any number of threads may evaluate one Expression at once.
// - Evaluation never fails: type mismatches yield null (arithmetic) or false (comparisons), absent
//   fields yield the *missing* value. It does not allocate for field access, comparisons,
//   arithmetic, `in`, regex matches or most functions; only functions that build new strings
//   (lower/upper of a string that changes, to_string of a non-string, string `+`) and list
//   literals with non-constant items used as values allocate.
// - A Value returned by evaluate() may point into the event's simdjson document and into the
//   Expression's constants: it is valid while both are alive (strings it owns, it keeps alive).
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "spate/status.h"

namespace spate {
class Clock;
}  // namespace spate

namespace spate::expr {

namespace internal {
struct Program;
struct ValueAccess;
}  // namespace internal

/// The result of evaluating an expression (or any of its parts).
///
/// `missing` (an absent field) is distinct from JSON `null`. Arrays are either elements of the
/// event (json_element()) or lists built by the expression (list()); objects are always elements
/// of the event. Strings are views into the event or the expression, or owned by the Value.
class Value {
 public:
  enum class Kind : uint8_t { kMissing, kNull, kBool, kInt, kDouble, kString, kArray, kObject };

  Value() = default;  // missing

  static Value missing() { return Value(); }
  static Value null() { return Value(Kind::kNull); }
  static Value from_bool(bool b) {
    Value v(Kind::kBool);
    v.b_ = b;
    return v;
  }
  static Value from_int(int64_t i) {
    Value v(Kind::kInt);
    v.i_ = i;
    return v;
  }
  static Value from_double(double d) {
    Value v(Kind::kDouble);
    v.d_ = d;
    return v;
  }
  /// A string that borrows `s`: the caller keeps the bytes alive as long as the Value.
  static Value from_view(std::string_view s) {
    Value v(Kind::kString);
    v.str_ = s;
    return v;
  }
  /// A string that owns its bytes.
  static Value from_string(std::string s);
  /// A JSON element: scalars become their kinds (uint64 above INT64_MAX becomes a double);
  /// arrays and objects keep the element.
  static Value from_element(const simdjson::dom::element& e);
  /// An array owning its items.
  static Value from_list(std::vector<Value> items);

  Kind kind() const { return kind_; }
  bool is_missing() const { return kind_ == Kind::kMissing; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_double() const { return kind_ == Kind::kDouble; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kDouble; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  /// Accessors; each returns a zero value when the kind does not match.
  bool as_bool() const { return kind_ == Kind::kBool && b_; }
  int64_t as_int() const { return kind_ == Kind::kInt ? i_ : 0; }
  /// Ints are converted.
  double as_double() const {
    return kind_ == Kind::kDouble ? d_ : kind_ == Kind::kInt ? static_cast<double>(i_) : 0.0;
  }
  std::string_view as_string() const { return kind_ == Kind::kString ? str_ : std::string_view(); }

  /// Number of items of an array or members of an object; 0 for other kinds.
  size_t size() const;
  /// The items of an array built by the expression (list literal); nullptr otherwise.
  const std::vector<Value>* list() const { return kind_ == Kind::kArray ? list_ : nullptr; }
  /// True for arrays and objects that are elements of the event; element() is then valid.
  bool has_element() const {
    return (kind_ == Kind::kArray && list_ == nullptr) || kind_ == Kind::kObject;
  }
  const simdjson::dom::element& element() const { return elem_; }

  /// Truthiness, as used by `and`, `or`, `not` and Expression::matches(): false for missing,
  /// null, false, 0, 0.0, NaN and ""; true for everything else (including empty arrays/objects).
  bool truthy() const;

 private:
  friend struct internal::ValueAccess;
  explicit Value(Kind k) : kind_(k) {}

  Kind kind_ = Kind::kMissing;
  union {
    bool b_;
    int64_t i_ = 0;
    double d_;
  };
  const std::vector<Value>* list_ = nullptr;  // kArray built by the expression
  std::string_view str_;                      // kString
  simdjson::dom::element elem_;               // kArray (when list_ is null) / kObject
  std::shared_ptr<const void> owner_;         // keeps an owned string or list alive
};

/// The language's `==`: numbers compare numerically across int/double (exactly, without
/// rounding), strings by bytes, arrays item by item, objects member by member; different kinds
/// are unequal; missing is equal to nothing, not even missing.
bool values_equal(const Value& a, const Value& b);

/// Append `v` as JSON: strings quoted and escaped, doubles with a fraction or exponent ("2.0"),
/// non-finite doubles and missing as null, arrays/objects minified.
void append_json(const Value& v, std::string& out);
std::string to_json(const Value& v);

/// Per-evaluation inputs. Optional: a null context means the defaults.
struct EvalContext {
  const Clock* clock = nullptr;  // for now_ms(); nullptr: the system clock
};

/// A compiled expression. See the contract at the top of this file.
class Expression {
 public:
  /// An empty expression: evaluates to missing, matches nothing. Use compile() to get a real one.
  Expression() = default;

  /// Parse and compile. Errors: Errc::kInvalidArgument, "expr:LINE:COL: message".
  static Result<Expression> compile(std::string_view source);

  /// The value of the expression for `event` (normally a JSON object).
  Value evaluate(const simdjson::dom::element& event, const EvalContext* ctx = nullptr) const;

  /// Truthiness of evaluate(): false for missing, null, false, 0, NaN and "".
  bool matches(const simdjson::dom::element& event, const EvalContext* ctx = nullptr) const;

  /// The source text as given to compile() (empty for a default-constructed Expression).
  const std::string& source() const;

  /// Field paths read from the event, unique, in order of first appearance, in the language's
  /// own syntax: `user.id`, `items[0].price`, `payload["x-request-id"]`, `$` for the whole event.
  std::vector<std::string> referenced_fields() const;

  /// True for a default-constructed (or moved-from) Expression.
  bool empty() const { return program_ == nullptr; }

 private:
  explicit Expression(std::shared_ptr<const internal::Program> p) : program_(std::move(p)) {}
  std::shared_ptr<const internal::Program> program_;
};

}  // namespace spate::expr
