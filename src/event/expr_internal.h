// Internals of the expression language shared by its compiler (expr_parse.cc), evaluator
// (expr_eval.cc) and values (expr.cc). Not for use outside src/event/expr*.cc.
//
// Contract: a Program is built once by the compiler and then never mutated; it is shared by all
// copies of an Expression and read concurrently by evaluating threads, so everything reachable
// from it is immutable (RE2 objects are safe for concurrent matching).
#pragma once

#include <re2/re2.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "event/expr.h"

namespace spate::expr::internal {

inline constexpr size_t kMaxSourceBytes = 64 * 1024;
inline constexpr int kMaxDepth = 64;
inline constexpr size_t kMaxListItems = 10000;
/// Constant lists at least this long get a hash set for `in`; shorter ones are scanned.
inline constexpr size_t kHashSetMinItems = 8;

enum class Op : uint8_t {
  kConst,  // aux: index into consts
  kField,  // aux: index into paths (from the event's root)
  kGet,    // kids: [base]; aux: index into paths (from base's value)
  kAnd,    // kids: operands (n >= 2), short-circuit
  kOr,     // kids: operands (n >= 2), short-circuit
  kNot,    // kids: [x]
  kNeg,    // kids: [x]
  kCmp,    // kids: [lhs, rhs]; sub: CmpOp
  kIn,     // kids: [lhs, rhs]; sub: 1 for `not in`
  kInSet,  // kids: [lhs]; aux: index into sets; sub: 1 for `not in`
  kMatch,  // kids: [lhs]; aux: index into regexes; sub: 1 for `!~`
  kArith,  // kids: operands (n >= 2); aux: index into arith_ops of the first of n-1 operators
  kCall,   // kids: arguments; sub: Fn
  kList,   // kids: items (some not constant)
};

enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };
enum class ArithOp : uint8_t { kAdd, kSub, kMul, kDiv, kMod };
enum class Fn : uint8_t {
  kExists,
  kLen,
  kLower,
  kUpper,
  kContains,
  kStartsWith,
  kEndsWith,
  kAbs,
  kCoalesce,
  kNowMs,
  kToNumber,
  kToString,
  kIsNull,
};

struct Node {
  Op op = Op::kConst;
  uint8_t sub = 0;
  uint32_t kids = 0;   // first child in Program::kids
  uint32_t nkids = 0;  // number of children
  uint32_t aux = 0;
};

struct Segment {
  std::string_view key;  // object member (when !is_index); points into Program::strings
  int64_t index = 0;     // array index; negative counts from the end
  bool is_index = false;
};

struct Path {
  std::vector<Segment> segments;
};

/// A constant list prepared for `in`: an open-addressing table of item indexes by hash for long
/// lists of scalars; non-scalar items (and all items of short lists) are scanned.
struct ConstSet {
  const std::vector<Value>* items = nullptr;
  std::vector<uint32_t> slots;    // 0: empty, else item index + 1; size is a power of two
  std::vector<uint32_t> scanned;  // indexes of items compared one by one
};

struct Program {
  std::string source;
  std::vector<Node> nodes;
  std::vector<uint32_t> kids;
  uint32_t root = 0;
  std::vector<Value> consts;
  std::deque<std::string> strings;       // stable storage for literal strings and keys
  std::deque<std::vector<Value>> lists;  // stable storage for constant lists
  std::vector<Path> paths;
  std::vector<ConstSet> sets;
  std::vector<std::unique_ptr<RE2>> regexes;
  std::vector<ArithOp> arith_ops;
  std::vector<std::string> fields;  // referenced_fields()
};

/// Access to Value's representation for the implementation.
struct ValueAccess {
  /// An array that borrows `items` (which must outlive it).
  static Value borrowed_list(const std::vector<Value>* items) {
    Value v(Value::Kind::kArray);
    v.list_ = items;
    return v;
  }
};

/// Evaluate node `id` of `p`.
Value eval(const Program& p, uint32_t id, const simdjson::dom::element& event,
           const EvalContext* ctx);
/// truthy(eval(...)), without building Values for and/or/not.
bool test(const Program& p, uint32_t id, const simdjson::dom::element& event,
          const EvalContext* ctx);

/// A hash consistent with values_equal for scalars (null, bool, numbers, strings); false for
/// arrays, objects, missing and NaN (which equal nothing a hash could find).
bool hash_scalar(const Value& v, uint64_t* out);

/// Build the `in` set of a constant list.
ConstSet make_const_set(const std::vector<Value>* items);
/// Is `v` equal to an item of `set`?
bool const_set_contains(const ConstSet& set, const Value& v);

/// Ordering of two values for < <= > >=: -1, 0, 1, or 2 when unordered (different kinds, NaN,
/// missing, or kinds without an order: only numbers and strings are ordered).
int compare_values(const Value& a, const Value& b);

/// Parse `text` in the number syntax `-?[0-9]+(.[0-9]+)?([eE][+-]?[0-9]+)?` (the whole text):
/// an int when it has no fraction or exponent and fits int64, else a double. False when the
/// syntax is wrong or the magnitude overflows a double.
bool parse_number(std::string_view text, Value* out);

/// Shortest round-trip text of a double, with ".0" added to integral values ("2.0", "1e+21").
void append_double(double d, std::string& out);

}  // namespace spate::expr::internal
