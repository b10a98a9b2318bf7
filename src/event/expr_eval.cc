// Evaluation of a compiled expression program over one event (a simdjson DOM element).
//
// Tree walk over the flat node array. Recursion depth is bounded by the compiler's nesting limit
// (chains like `a + b + c` and `x or y or z` are single n-ary nodes). Helpers that need large
// frames are kept out of line so the recursive eval() frame stays small.
#include <charconv>
#include <cmath>
#include <limits>

#include "base/clock.h"
#include "event/expr_internal.h"

namespace spate::expr::internal {
namespace {

using simdjson::dom::element;

constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

/// Calls f(item) for each item of an array value until f returns true; returns whether it did.
template <typename F>
bool any_item(const Value& arr, F&& f) {
  if (const std::vector<Value>* items = arr.list()) {
    for (const Value& x : *items) {
      if (f(x)) return true;
    }
    return false;
  }
  simdjson::dom::array a;
  if (arr.element().get_array().get(a)) return false;
  for (element e : a) {
    if (f(Value::from_element(e))) return true;
  }
  return false;
}

bool resolve_index(int64_t index, size_t size, size_t* out) {
  if (index < 0) {
    index += static_cast<int64_t>(size);
    if (index < 0) return false;
  }
  if (static_cast<uint64_t>(index) >= size) return false;
  *out = static_cast<size_t>(index);
  return true;
}

Value lookup(element e, const Segment* seg, const Segment* end) {
  for (; seg != end; ++seg) {
    if (!seg->is_index) {
      simdjson::dom::object obj;
      if (e.get_object().get(obj)) return Value();
      if (obj.at_key(seg->key).get(e)) return Value();
    } else {
      simdjson::dom::array arr;
      if (e.get_array().get(arr)) return Value();
      size_t i = 0;
      if (seg->index < 0) {
        if (!resolve_index(seg->index, arr.size(), &i)) return Value();
      } else {
        i = static_cast<size_t>(seg->index);
      }
      if (arr.at(i).get(e)) return Value();
    }
  }
  return Value::from_element(e);
}

Value apply_path(Value v, const Path& path) {
  const Segment* seg = path.segments.data();
  const Segment* end = seg + path.segments.size();
  while (seg != end) {
    if (v.has_element()) return lookup(v.element(), seg, end);
    const std::vector<Value>* items = v.list();
    size_t i = 0;
    if (items == nullptr || !seg->is_index || !resolve_index(seg->index, items->size(), &i)) {
      return Value();
    }
    Value next = (*items)[i];
    v = std::move(next);
    ++seg;
  }
  return v;
}

Value negate(const Value& v) {
  if (v.is_int()) {
    if (v.as_int() == kInt64Min) return Value::from_double(-static_cast<double>(kInt64Min));
    return Value::from_int(-v.as_int());
  }
  if (v.is_double()) return Value::from_double(-v.as_double());
  if (v.is_missing()) return Value();
  return Value::null();
}

[[gnu::noinline]] Value arith(ArithOp op, const Value& a, const Value& b) {
  if (a.is_missing() || b.is_missing()) return Value();
  if (a.is_int() && b.is_int()) {
    const int64_t x = a.as_int();
    const int64_t y = b.as_int();
    int64_t r = 0;
    switch (op) {
      case ArithOp::kAdd:
        if (!__builtin_add_overflow(x, y, &r)) return Value::from_int(r);
        return Value::from_double(static_cast<double>(x) + static_cast<double>(y));
      case ArithOp::kSub:
        if (!__builtin_sub_overflow(x, y, &r)) return Value::from_int(r);
        return Value::from_double(static_cast<double>(x) - static_cast<double>(y));
      case ArithOp::kMul:
        if (!__builtin_mul_overflow(x, y, &r)) return Value::from_int(r);
        return Value::from_double(static_cast<double>(x) * static_cast<double>(y));
      case ArithOp::kDiv:
        if (y == 0) return Value::null();
        return Value::from_double(static_cast<double>(x) / static_cast<double>(y));
      case ArithOp::kMod:
        if (y == 0) return Value::null();
        if (y == -1) return Value::from_int(0);  // INT64_MIN % -1 overflows in C++
        return Value::from_int(x % y);
    }
  }
  if (a.is_number() && b.is_number()) {
    const double x = a.as_double();
    const double y = b.as_double();
    switch (op) {
      case ArithOp::kAdd:
        return Value::from_double(x + y);
      case ArithOp::kSub:
        return Value::from_double(x - y);
      case ArithOp::kMul:
        return Value::from_double(x * y);
      case ArithOp::kDiv:
        if (y == 0) return Value::null();
        return Value::from_double(x / y);
      case ArithOp::kMod:
        if (y == 0) return Value::null();
        return Value::from_double(std::fmod(x, y));
    }
  }
  if (op == ArithOp::kAdd && a.is_string() && b.is_string()) {
    std::string s;
    s.reserve(a.as_string().size() + b.as_string().size());
    s.append(a.as_string());
    s.append(b.as_string());
    return Value::from_string(std::move(s));
  }
  return Value::null();
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

Value to_number(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kMissing:
    case Value::Kind::kInt:
    case Value::Kind::kDouble:
      return v;
    case Value::Kind::kBool:
      return Value::from_int(v.as_bool() ? 1 : 0);
    case Value::Kind::kString: {
      std::string_view s = v.as_string();
      while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
      while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
      Value out;
      if (parse_number(s, &out)) return out;
      return Value::null();
    }
    case Value::Kind::kNull:
    case Value::Kind::kArray:
    case Value::Kind::kObject:
      return Value::null();
  }
  return Value::null();
}

Value to_string(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kMissing:
    case Value::Kind::kString:
      return v;
    case Value::Kind::kNull:
      return Value::from_view("null");
    case Value::Kind::kBool:
      return Value::from_view(v.as_bool() ? "true" : "false");
    case Value::Kind::kInt: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof(buf), v.as_int());
      return Value::from_string(std::string(buf, static_cast<size_t>(r.ptr - buf)));
    }
    case Value::Kind::kDouble: {
      std::string s;
      append_double(v.as_double(), s);
      return Value::from_string(std::move(s));
    }
    case Value::Kind::kArray:
    case Value::Kind::kObject:
      return Value::from_string(to_json(v));
  }
  return Value();
}

Value change_case(const Value& v, bool upper) {
  if (!v.is_string()) return v.is_missing() ? Value() : Value::null();
  const std::string_view s = v.as_string();
  const char lo = upper ? 'a' : 'A';
  const char hi = upper ? 'z' : 'Z';
  size_t first = 0;
  while (first < s.size() && !(s[first] >= lo && s[first] <= hi)) ++first;
  if (first == s.size()) return v;  // nothing to change: no allocation
  std::string out(s);
  for (size_t i = first; i < out.size(); ++i) {
    if (out[i] >= lo && out[i] <= hi) out[i] = static_cast<char>(out[i] ^ 0x20);
  }
  return Value::from_string(std::move(out));
}

[[gnu::noinline]] Value call(const Program& p, const Node& n, const element& ev,
                             const EvalContext* ctx) {
  const uint32_t* args = p.kids.data() + n.kids;
  auto arg = [&](uint32_t i) { return eval(p, args[i], ev, ctx); };
  switch (static_cast<Fn>(n.sub)) {
    case Fn::kExists:
      return Value::from_bool(!arg(0).is_missing());
    case Fn::kLen: {
      const Value v = arg(0);
      if (v.is_string()) return Value::from_int(static_cast<int64_t>(v.as_string().size()));
      if (v.is_array() || v.is_object()) return Value::from_int(static_cast<int64_t>(v.size()));
      return v.is_missing() ? Value() : Value::null();
    }
    case Fn::kLower:
      return change_case(arg(0), false);
    case Fn::kUpper:
      return change_case(arg(0), true);
    case Fn::kContains:
    case Fn::kStartsWith:
    case Fn::kEndsWith: {
      const Value s = arg(0);
      const Value t = arg(1);
      if (s.is_missing() || t.is_missing()) return Value();
      const auto fn = static_cast<Fn>(n.sub);
      if (fn == Fn::kContains && s.is_array()) {
        return Value::from_bool(any_item(s, [&](const Value& x) { return values_equal(x, t); }));
      }
      if (!s.is_string() || !t.is_string()) return Value::null();
      const std::string_view a = s.as_string();
      const std::string_view b = t.as_string();
      if (fn == Fn::kContains) return Value::from_bool(a.find(b) != std::string_view::npos);
      if (fn == Fn::kStartsWith) return Value::from_bool(a.starts_with(b));
      return Value::from_bool(a.ends_with(b));
    }
    case Fn::kAbs: {
      const Value v = arg(0);
      if (v.is_int()) {
        if (v.as_int() == kInt64Min) return Value::from_double(-static_cast<double>(kInt64Min));
        return Value::from_int(v.as_int() < 0 ? -v.as_int() : v.as_int());
      }
      if (v.is_double()) return Value::from_double(std::fabs(v.as_double()));
      return v.is_missing() ? Value() : Value::null();
    }
    case Fn::kCoalesce: {
      bool saw_null = false;
      for (uint32_t i = 0; i < n.nkids; ++i) {
        Value v = arg(i);
        if (v.is_null()) {
          saw_null = true;
        } else if (!v.is_missing()) {
          return v;
        }
      }
      return saw_null ? Value::null() : Value();
    }
    case Fn::kNowMs: {
      const Clock* clock = ctx != nullptr && ctx->clock != nullptr ? ctx->clock : system_clock();
      return Value::from_int(clock->now_ms());
    }
    case Fn::kToNumber:
      return to_number(arg(0));
    case Fn::kToString:
      return to_string(arg(0));
    case Fn::kIsNull:
      return Value::from_bool(arg(0).is_null());
  }
  return Value::null();
}

/// The value of a node that is not a constant; fields are looked up without going through eval().
inline Value eval_operand(const Program& p, uint32_t id, const element& ev,
                          const EvalContext* ctx) {
  const Node& n = p.nodes[id];
  if (n.op == Op::kField) {
    const Path& path = p.paths[n.aux];
    return lookup(ev, path.segments.data(), path.segments.data() + path.segments.size());
  }
  return eval(p, id, ev, ctx);
}

/// The value of node `id` as an operand: the constant itself for constants (no copy), else the
/// node evaluated in place (no move).
class Operand {
 public:
  Operand(const Program& p, uint32_t id, const element& ev, const EvalContext* ctx)
      : node_(p.nodes[id]),
        own_(node_.op == Op::kConst ? Value() : eval_operand(p, id, ev, ctx)),
        value_(node_.op == Op::kConst ? &p.consts[node_.aux] : &own_) {}
  Operand(const Operand&) = delete;
  Operand& operator=(const Operand&) = delete;

  const Value& operator*() const { return *value_; }
  const Value* operator->() const { return value_; }

 private:
  const Node& node_;
  const Value own_;
  const Value* value_;
};

[[gnu::noinline]] Value arith_chain(const Program& p, const Node& n, const element& ev,
                                    const EvalContext* ctx) {
  const uint32_t* kids = p.kids.data() + n.kids;
  Value acc = eval(p, kids[0], ev, ctx);
  for (uint32_t i = 1; i < n.nkids; ++i) {
    const Operand rhs(p, kids[i], ev, ctx);
    Value next = arith(p.arith_ops[n.aux + i - 1], acc, *rhs);
    acc = std::move(next);
  }
  return acc;
}

[[gnu::noinline]] bool compare(const Program& p, const Node& n, const element& ev,
                               const EvalContext* ctx) {
  const Operand a(p, p.kids[n.kids], ev, ctx);
  if (a->is_missing()) return false;
  const Operand b(p, p.kids[n.kids + 1], ev, ctx);
  if (b->is_missing()) return false;
  switch (static_cast<CmpOp>(n.sub)) {
    case CmpOp::kEq:
      return values_equal(*a, *b);
    case CmpOp::kNe:
      return !values_equal(*a, *b);
    case CmpOp::kLt:
      return compare_values(*a, *b) == -1;
    case CmpOp::kLe: {
      const int c = compare_values(*a, *b);
      return c == -1 || c == 0;
    }
    case CmpOp::kGt:
      return compare_values(*a, *b) == 1;
    case CmpOp::kGe: {
      const int c = compare_values(*a, *b);
      return c == 1 || c == 0;
    }
  }
  return false;
}

[[gnu::noinline]] bool in_list(const Program& p, const Node& n, const element& ev,
                               const EvalContext* ctx) {
  const Operand a(p, p.kids[n.kids], ev, ctx);
  if (a->is_missing()) return false;
  const uint32_t rhs = p.kids[n.kids + 1];
  const Node& r = p.nodes[rhs];
  bool found = false;
  if (r.op == Op::kList) {
    // A list literal with computed items: compare item by item without building the list.
    for (uint32_t i = 0; i < r.nkids && !found; ++i) {
      const Operand item(p, p.kids[r.kids + i], ev, ctx);
      found = values_equal(*a, *item);
    }
  } else {
    const Value b = eval(p, rhs, ev, ctx);
    if (b.is_missing()) return false;
    found = b.is_array() && any_item(b, [&](const Value& x) { return values_equal(*a, x); });
  }
  return n.sub != 0 ? !found : found;
}

[[gnu::noinline]] bool in_set(const Program& p, const Node& n, const element& ev,
                              const EvalContext* ctx) {
  const Operand a(p, p.kids[n.kids], ev, ctx);
  if (a->is_missing()) return false;
  const bool found = const_set_contains(p.sets[n.aux], *a);
  return n.sub != 0 ? !found : found;
}

[[gnu::noinline]] bool match(const Program& p, const Node& n, const element& ev,
                             const EvalContext* ctx) {
  const Operand a(p, p.kids[n.kids], ev, ctx);
  if (a->is_missing()) return false;
  const bool matched = a->is_string() && RE2::PartialMatch(a->as_string(), *p.regexes[n.aux]);
  return n.sub != 0 ? !matched : matched;
}

[[gnu::noinline]] Value build_list(const Program& p, const Node& n, const element& ev,
                                   const EvalContext* ctx) {
  std::vector<Value> items;
  items.reserve(n.nkids);
  for (uint32_t i = 0; i < n.nkids; ++i) items.push_back(eval(p, p.kids[n.kids + i], ev, ctx));
  return Value::from_list(std::move(items));
}

}  // namespace

Value eval(const Program& p, uint32_t id, const element& event, const EvalContext* ctx) {
  const Node& n = p.nodes[id];
  switch (n.op) {
    case Op::kConst:
      return p.consts[n.aux];
    case Op::kField: {
      const Path& path = p.paths[n.aux];
      return lookup(event, path.segments.data(), path.segments.data() + path.segments.size());
    }
    case Op::kGet:
      return apply_path(eval(p, p.kids[n.kids], event, ctx), p.paths[n.aux]);
    case Op::kAnd:
    case Op::kOr:
    case Op::kNot:
      return Value::from_bool(test(p, id, event, ctx));
    case Op::kNeg:
      return negate(eval(p, p.kids[n.kids], event, ctx));
    case Op::kCmp:
      return Value::from_bool(compare(p, n, event, ctx));
    case Op::kIn:
      return Value::from_bool(in_list(p, n, event, ctx));
    case Op::kInSet:
      return Value::from_bool(in_set(p, n, event, ctx));
    case Op::kMatch:
      return Value::from_bool(match(p, n, event, ctx));
    case Op::kArith:
      return arith_chain(p, n, event, ctx);
    case Op::kCall:
      return call(p, n, event, ctx);
    case Op::kList:
      return build_list(p, n, event, ctx);
  }
  return Value::null();
}

bool test(const Program& p, uint32_t id, const element& event, const EvalContext* ctx) {
  const Node& n = p.nodes[id];
  switch (n.op) {
    case Op::kAnd:
      for (uint32_t i = 0; i < n.nkids; ++i) {
        if (!test(p, p.kids[n.kids + i], event, ctx)) return false;
      }
      return true;
    case Op::kOr:
      for (uint32_t i = 0; i < n.nkids; ++i) {
        if (test(p, p.kids[n.kids + i], event, ctx)) return true;
      }
      return false;
    case Op::kNot:
      return !test(p, p.kids[n.kids], event, ctx);
    case Op::kCmp:
      return compare(p, n, event, ctx);
    case Op::kIn:
      return in_list(p, n, event, ctx);
    case Op::kInSet:
      return in_set(p, n, event, ctx);
    case Op::kMatch:
      return match(p, n, event, ctx);
    default:
      return eval(p, id, event, ctx).truthy();
  }
}

}  // namespace spate::expr::internal
