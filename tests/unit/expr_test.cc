// Tests of the expression language (src/event/expr.h): table-driven evaluation rows, compile
// errors with exact positions, limits, and a property test of arithmetic against a reference
// evaluator written independently here.
#include "event/expr.h"

#include <gtest/gtest.h>

#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"

// Counts heap allocations so that a test can check the evaluator's no-allocation promise. Not
// under sanitizers, which bring their own operator new/delete family that must stay paired.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPATE_EXPR_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define SPATE_EXPR_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef SPATE_EXPR_COUNT_ALLOCATIONS
#define SPATE_EXPR_COUNT_ALLOCATIONS 1
#endif

std::atomic<int64_t> g_allocations{0};

#if SPATE_EXPR_COUNT_ALLOCATIONS
// Allocate with malloc, free with free; the deletes stay out of line so the compiler never pairs
// an inlined free() with a new-expression.
void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
#endif

namespace spate::expr {
namespace {

constexpr const char* kEvent = R"({
  "amount": 150, "price": 2.5, "zero": 0, "neg": -7,
  "big": 9223372036854775807, "small": -9223372036854775808, "huge": 18446744073709551615,
  "name": "Alice", "empty": "", "status": "ok", "nil": null, "t": true, "f": false,
  "user": {"id": 42, "country": "FR", "roles": ["admin", "dev"], "email": "alice@example.com"},
  "items": [{"price": 10, "sku": "a"}, {"price": 20.5, "sku": "b"}],
  "tags": ["x", "y"], "nums": [1, 2, 3],
  "payload": {"x-request-id": "abc-123", "weird key": 1, "in": 5},
  "weird key": "w", "msg": "Error: disk full", "n_str": " 42 ", "f_str": "3.5e2",
  "bad_str": "12abc", "obj": {"a": 1, "b": [1, 2]}, "obj2": {"b": [1, 2.0], "a": 1.0},
  "emptyarr": [], "emptyobj": {}, "unicode": "h\u00e9llo"
})";

/// "missing" for the missing value, else the value as JSON (ints "2", doubles "2.0").
std::string render(const Value& v) {
  return v.is_missing() ? "missing" : to_json(v);
}

class Doc {
 public:
  explicit Doc(std::string_view json) : padded_(json) {
    auto err = parser_.parse(padded_).get(root_);
    if (err) ADD_FAILURE() << "bad test JSON: " << simdjson::error_message(err) << "\n" << json;
  }
  const simdjson::dom::element& root() const { return root_; }

 private:
  simdjson::padded_string padded_;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
};

const Doc& event() {
  static const Doc doc(kEvent);
  return doc;
}

std::string eval_str(std::string_view source, const simdjson::dom::element& ev) {
  auto e = Expression::compile(source);
  if (!e.ok()) return "compile error: " + e.status().message();
  return render(e->evaluate(ev));
}

struct Row {
  const char* expr;
  const char* want;
};

void run_rows(const std::vector<Row>& rows) {
  for (const Row& r : rows) {
    EXPECT_EQ(eval_str(r.expr, event().root()), r.want) << "expression: " << r.expr;
  }
}

TEST(ExprEval, Literals) {
  run_rows({
      {"42", "42"},
      {"-3.5", "-3.5"},
      {"1e3", "1000.0"},
      {"1.5E-3", "0.0015"},
      {"007", "7"},
      {R"e("a\tb")e", R"e("a\tb")e"},
      {R"e('it\'s')e", R"e("it's")e"},
      {R"e("say \"hi\"")e", R"e("say \"hi\"")e"},
      {R"e('back\\slash')e", R"e("back\\slash")e"},
      {R"e("\u00e9")e", "\"\xc3\xa9\""},
      {R"e("\ud83d\ude00")e", "\"\xf0\x9f\x98\x80\""},
      {R"e("line\nbreak")e", R"e("line\nbreak")e"},
      {"true", "true"},
      {"false", "false"},
      {"null", "null"},
      {R"e([1, 2, "a"])e", R"e([1,2,"a"])e"},
      {"[]", "[]"},
      {"[1, [2, 3], [], -4.5]", "[1,[2,3],[],-4.5]"},
      {"9223372036854775807", "9223372036854775807"},
      {"-9223372036854775808", "-9223372036854775808"},
      {"9223372036854775808", "9223372036854775808.0"},
      {"99999999999999999999", "1e+20"},
  });
}

TEST(ExprEval, FieldReferences) {
  run_rows({
      {"amount", "150"},
      {"user.id", "42"},
      {"user.country", R"e("FR")e"},
      {"items[0].price", "10"},
      {"items[1].price", "20.5"},
      {"items[-1].sku", R"e("b")e"},
      {"items[2].price", "missing"},
      {"items[-3]", "missing"},
      {R"e(payload["x-request-id"])e", R"e("abc-123")e"},
      {R"e(payload['weird key'])e", "1"},
      {R"e($["weird key"])e", R"e("w")e"},
      {"payload.in", "5"},
      {"$.amount", "150"},
      {R"e($["amount"])e", "150"},
      {"nope", "missing"},
      {"user.nope.deeper", "missing"},
      {"name.first", "missing"},
      {"name[0]", "missing"},
      {"user[0]", "missing"},
      {"tags.x", "missing"},
      {"nil", "null"},
      {"nil.x", "missing"},
      {"tags[0]", R"e("x")e"},
      {R"e(user["roles"][1])e", R"e("dev")e"},
      {"huge", "18446744073709551616.0"},
      {"big", "9223372036854775807"},
      {"small", "-9223372036854775808"},
      {"t", "true"},
      {"obj", R"e({"a":1,"b":[1,2]})e"},
      {"emptyarr", "[]"},
      {"[10, 20, 30][1]", "20"},
      {"[10, 20, 30][-1]", "30"},
      {"[10, 20, 30][3]", "missing"},
      {"[[1, 2]][0][1]", "2"},
      {"[amount, 2][0]", "150"},
      {"coalesce(nope, user).id", "42"},
      {"(user).country", R"e("FR")e"},
      {"(items[1]).sku", R"e("b")e"},
      {"coalesce(nope, tags)[1]", R"e("y")e"},
      {"coalesce(nope, [1, 2])[1]", "2"},
      {R"e("abc".x)e", "missing"},
  });
}

TEST(ExprEval, WholeEvent) {
  Doc doc(R"({"a": 1})");
  EXPECT_EQ(eval_str("$", doc.root()), R"({"a":1})");
  Doc arr(R"([5, 6])");
  EXPECT_EQ(eval_str("$[1]", arr.root()), "6");
  EXPECT_EQ(eval_str("a", arr.root()), "missing");
  Doc scalar("7");
  EXPECT_EQ(eval_str("$ + 1", scalar.root()), "8");
}

TEST(ExprEval, MissingVersusNull) {
  run_rows({
      // Every comparison with missing is false, including != and not in.
      {"nope == 1", "false"},
      {"nope != 1", "false"},
      {"nope == nope", "false"},
      {"nope != nope", "false"},
      {"nope == null", "false"},
      {"nope < 1", "false"},
      {"nope >= 1", "false"},
      {"1 != nope", "false"},
      {"not (nope == 1)", "true"},
      {"not nope", "true"},
      {"nope in [1]", "false"},
      {"nope not in [1]", "false"},
      {"nope in [nope]", "false"},
      {"status in nope", "false"},
      {"status not in nope", "false"},
      {R"e(nope =~ "x")e", "false"},
      {R"e(nope !~ "x")e", "false"},
      {"nope or true", "true"},
      {"nope and true", "false"},
      // JSON null is an ordinary value.
      {"nil == null", "true"},
      {"nil != 1", "true"},
      {"nil == 0", "false"},
      {"nil < 1", "false"},
      {"null == null", "true"},
      {"null <= null", "false"},
      {"!nil", "true"},
      {"nil in [null, 1]", "true"},
      {"nil not in [1, 2]", "true"},
      // Propagation.
      {"nope + 1", "missing"},
      {"1 - nope", "missing"},
      {"nope + nil", "missing"},
      {"nil + 1", "null"},
      {"nil * 2", "null"},
      {"-nope", "missing"},
      {"-nil", "null"},
      // Presence.
      {"exists(nope)", "false"},
      {"exists(nil)", "true"},
      {"exists(user.id)", "true"},
      {"exists(items[5])", "false"},
      {"exists(items[1].sku)", "true"},
      {"is_null(nil)", "true"},
      {"is_null(nope)", "false"},
      {"is_null(0)", "false"},
  });
}

TEST(ExprEval, Comparisons) {
  run_rows({
      {"amount > 100", "true"},
      {"amount >= 150", "true"},
      {"amount < 150", "false"},
      {"amount <= 150", "true"},
      {"amount == 150", "true"},
      {"amount != 150", "false"},
      {"amount == 150.0", "true"},
      {"price == 2.5", "true"},
      {"1 == 1.0", "true"},
      {"1 < 1.5", "true"},
      {"2 > 1.5", "true"},
      {"0.0 == -0.0", "true"},
      // Exact int/double comparison (no rounding of the int to double).
      {"big == 9223372036854775807.0", "false"},
      {"big < 9223372036854775807.0", "true"},
      {"small == -9223372036854775808.0", "true"},
      {"9007199254740993 == 9007199254740992.0", "false"},
      {"9007199254740993 > 9007199254740992.0", "true"},
      {"-9007199254740993 < -9007199254740992.0", "true"},
      {"huge > big", "true"},
      {"1.5 > 1", "true"},
      {"-1.5 < -1", "true"},
      {"(1e308 * 10 - 1e308 * 10) == (1e308 * 10 - 1e308 * 10)", "false"},  // NaN
      {"(1e308 * 10 - 1e308 * 10) != (1e308 * 10 - 1e308 * 10)", "true"},
      // Strings: bytewise.
      {R"e("abc" < "abd")e", "true"},
      {R"e("B" < "a")e", "true"},
      {R"e("a" < "ab")e", "true"},
      {R"e("é" > "z")e", "true"},
      {R"e("a" == 'a')e", "true"},
      {R"e(name == "Alice")e", "true"},
      {R"e(name >= "Alice")e", "true"},
      // Mixed kinds: only == and != are meaningful.
      {R"e("1" == 1)e", "false"},
      {R"e("1" != 1)e", "true"},
      {R"e("1" < 2)e", "false"},
      {R"e("b" > 1)e", "false"},
      {"true == 1", "false"},
      {"true == true", "true"},
      {"t == true", "true"},
      {"f != true", "true"},
      {"true > false", "false"},
      {"true < false", "false"},
      {"tags > 1", "false"},
      // Arrays and objects: deep equality.
      {R"e(tags == ["x", "y"])e", "true"},
      {R"e(tags == ["y", "x"])e", "false"},
      {R"e(tags == ["x"])e", "false"},
      {"nums == [1, 2.0, 3]", "true"},
      {"nums == nums", "true"},
      {"obj == obj2", "true"},
      {"obj == user", "false"},
      {"emptyarr == []", "true"},
      {"emptyobj == emptyobj", "true"},
      {"[1, [2]] == [1, [2]]", "true"},
      {"[1, [2]] != [1, [3]]", "true"},
      {"obj.b == [1, 2]", "true"},
      {"obj == [1]", "false"},
  });
}

TEST(ExprEval, Precedence) {
  run_rows({
      {"1 + 2 * 3", "7"},
      {"(1 + 2) * 3", "9"},
      {"10 - 4 - 3", "3"},
      {"10 - (4 - 3)", "9"},
      {"2 * 3 % 4", "2"},
      {"2 * (3 % 4)", "6"},
      {"100 / 10 / 5", "2.0"},
      {"-2 * 3", "-6"},
      {"-(2 + 3)", "-5"},
      {"- (2 + 3) * 2", "-10"},
      {"--5", "5"},
      {"- -5", "5"},
      {"-amount", "-150"},
      {"3 - -2", "5"},
      {"1 + 2 == 3", "true"},
      {"1 + 2 == 3 and 2 > 1", "true"},
      {"true or false and false", "true"},
      {"(true or false) and false", "false"},
      {"false and true or true", "true"},
      {"false and (true or true)", "false"},
      {"not true or true", "true"},
      {"not (true or true)", "false"},
      {"not 1 == 2", "true"},
      {"!amount > 100", "false"},
      {"! exists(nope) && amount > 100", "true"},
      {"not not true", "true"},
      {"!!amount", "true"},
      {"amount > 100 && status == 'ok' || false", "true"},
      {"amount > 100 and status == 'bad' or name == 'Alice'", "true"},
      {"false and nope.x == 1 or true", "true"},
      {"1 + 2 in [3]", "true"},
      {"a == not b", "false"},  // `not` in operand position applies to what follows it
      {"amount == not nope", "false"},
      {"1 + 1 > 1 == true",
       "compile error: expr:1:11: comparisons cannot be chained; combine "
       "them with \"and\" or use parentheses"},
      {"(1 + 1 > 1) == true", "true"},
  });
}

TEST(ExprEval, Arithmetic) {
  run_rows({
      {"7 / 2", "3.5"},
      {"6 / 3", "2.0"},
      {"7 % 3", "1"},
      {"-7 % 3", "-1"},
      {"7 % -3", "1"},
      {"7.5 % 2", "1.5"},
      {"1 / 0", "null"},
      {"1 % 0", "null"},
      {"1.0 / 0.0", "null"},
      {"1 / 0.0", "null"},
      {"5 % 0.0", "null"},
      {"amount / zero", "null"},
      {"0 / 5", "0.0"},
      // int64 overflow becomes double.
      {"9223372036854775807 + 1", "9223372036854775808.0"},
      {"big + 1", "9223372036854775808.0"},
      {"big + 0", "9223372036854775807"},
      {"small - 1", "-9223372036854775808.0"},
      {"big * 2", "18446744073709551616.0"},
      {"small * -1", "9223372036854775808.0"},
      {"-small", "9223372036854775808.0"},
      {"small % -1", "0"},
      {"small / -1", "9223372036854775808.0"},
      {"2.5 * 2", "5.0"},
      {"price + 1", "3.5"},
      {"amount + price", "152.5"},
      {"0.1 + 0.2", "0.30000000000000004"},
      {"1e308 * 10", "null"},  // infinity renders as JSON null
      {"1e308 * 10 > 1e308", "true"},
      // Strings concatenate with +; nothing else mixes.
      {R"e("a" + "b")e", R"e("ab")e"},
      {R"e(name + " " + user.country)e", R"e("Alice FR")e"},
      {R"e("" + "")e", R"e("")e"},
      {R"e("a" + 1)e", "null"},
      {R"e(1 + "a")e", "null"},
      {R"e("a" - "b")e", "null"},
      {R"e("a" * 2)e", "null"},
      {"true + 1", "null"},
      {R"e(-"a")e", "null"},
      {"-t", "null"},
      {"[1] + [2]", "null"},
      {"tags + 1", "null"},
  });
}

TEST(ExprEval, Regex) {
  run_rows({
      {R"e(msg =~ "^Error")e", "true"},
      {R"e(msg =~ "disk")e", "true"},
      {R"e(msg =~ "^disk")e", "false"},
      {R"e(msg !~ "disk")e", "false"},
      {R"e(msg !~ "^disk")e", "true"},
      {R"e(msg =~ "(?i)error: DISK")e", "true"},
      {R"e(user.email =~ "^[a-z]+@example\\.com$")e", "true"},
      {R"e(user.email =~ '^[a-z]+@example\\.org$')e", "false"},
      {R"e(unicode =~ "^h.llo$")e", "true"},
      {R"e(amount =~ "1")e", "false"},
      {R"e(amount !~ "1")e", "true"},
      {R"e(nil =~ "")e", "false"},
      {R"e(nil !~ "")e", "true"},
      {R"e(msg =~ "^Err" + "or")e", "true"},
      {R"e("abc" =~ "b")e", "true"},
      {R"e(to_string(amount) =~ "^15")e", "true"},
  });
}

TEST(ExprEval, In) {
  run_rows({
      {R"e(status in ["ok", "fine"])e", "true"},
      {R"e(status in ["bad"])e", "false"},
      {R"e(status not in ["bad"])e", "true"},
      {R"e(status not in ["ok"])e", "false"},
      {"amount in [1, 150]", "true"},
      {"amount in [150.0]", "true"},
      {"price in [2.5]", "true"},
      {"amount in []", "false"},
      {"amount not in []", "true"},
      // Eight or more constant items: hash set.
      {R"e(user.country in ["US", "CA", "GB", "FR", "DE", "IT", "ES", "NL", "BE"])e", "true"},
      {R"e(user.country in ["US", "CA", "GB", "JP", "DE", "IT", "ES", "NL", "BE"])e", "false"},
      {R"e(user.country not in ["US", "CA", "GB", "JP", "DE", "IT", "ES", "NL", "BE"])e", "true"},
      {"amount in [1, 2, 3, 4, 5, 6, 7, 8, 150.0]", "true"},
      {"price in [1, 2, 3, 4, 5, 6, 7, 8, 2.5]", "true"},
      {"price in [1, 2, 3, 4, 5, 6, 7, 8, 2]", "false"},
      {R"e(nil in [1, 2, 3, 4, 5, 6, 7, 8, null])e", "true"},
      {R"e(t in [1, 2, 3, 4, 5, 6, 7, 8, true])e", "true"},
      {"nums in [1, 2, 3, 4, 5, 6, 7, 8, [1, 2, 3]]", "true"},
      {"tags in [1, 2, 3, 4, 5, 6, 7, 8, [1, 2, 3]]", "false"},
      {"0 in [1, 2, 3, 4, 5, 6, 7, 8, -0.0]", "true"},
      // Array fields of the event.
      {R"e("admin" in user.roles)e", "true"},
      {R"e("root" in user.roles)e", "false"},
      {R"e("root" not in user.roles)e", "true"},
      {"2.0 in nums", "true"},
      // Lists with computed items.
      {"amount in [amount, 1]", "true"},
      {R"e("x" in [name, status])e", "false"},
      {R"e("ok" in [name, status])e", "true"},
      {R"e("ok" not in [name, status])e", "false"},
      {"nums in [[1, 2, 3]]", "true"},
      {"[1, 2] in [[1, 2], 3]", "true"},
      // Not an array: `in` is false, `not in` true.
      {"1 in name", "false"},
      {"1 not in name", "true"},
      {"1 in nil", "false"},
  });
}

TEST(ExprEval, Functions) {
  run_rows({
      {"len(name)", "5"},
      {"len(unicode)", "6"},
      {"len(tags)", "2"},
      {"len(obj)", "2"},
      {"len(emptyarr)", "0"},
      {"len(emptyobj)", "0"},
      {"len([1, 2, 3])", "3"},
      {"len([amount])", "1"},
      {"len(nope)", "missing"},
      {"len(amount)", "null"},
      {"len(nil)", "null"},
      {"lower(name)", R"e("alice")e"},
      {"upper(name)", R"e("ALICE")e"},
      {"lower('abc')", R"e("abc")e"},
      {"upper(unicode)", "\"H\xc3\xa9LLO\""},
      {"upper(amount)", "null"},
      {"lower(nope)", "missing"},
      {R"e(contains(msg, "disk"))e", "true"},
      {R"e(contains(msg, "DISK"))e", "false"},
      {R"e(contains(msg, ""))e", "true"},
      {R"e(contains(tags, "y"))e", "true"},
      {R"e(contains(tags, "z"))e", "false"},
      {"contains(nums, 2.0)", "true"},
      {"contains(amount, 1)", "null"},
      {"contains(name, 1)", "null"},
      {R"e(contains(nope, "a"))e", "missing"},
      {"contains(name, nope)", "missing"},
      {R"e(starts_with(msg, "Error"))e", "true"},
      {R"e(starts_with(msg, "error"))e", "false"},
      {R"e(starts_with(msg, ""))e", "true"},
      {R"e(ends_with(msg, "full"))e", "true"},
      {R"e(ends_with(name, "Alice!"))e", "false"},
      {"ends_with(tags, 'y')", "null"},
      {"abs(neg)", "7"},
      {"abs(amount)", "150"},
      {"abs(-2.5)", "2.5"},
      {"abs(small)", "9223372036854775808.0"},
      {"abs('a')", "null"},
      {"abs(nope)", "missing"},
      {"coalesce(nope, nil, 3)", "3"},
      {"coalesce(nope, nil)", "null"},
      {"coalesce(nil, nope)", "null"},
      {"coalesce(nope)", "missing"},
      {"coalesce(nope, user.nope)", "missing"},
      {R"e(coalesce(name, "x"))e", R"e("Alice")e"},
      {"coalesce(zero, 5)", "0"},
      {"coalesce(f, 5)", "false"},
      {"to_number('42')", "42"},
      {"to_number(n_str)", "42"},
      {"to_number(f_str)", "350.0"},
      {"to_number(bad_str)", "null"},
      {"to_number('-0.5')", "-0.5"},
      {"to_number('')", "null"},
      {"to_number('1e999')", "null"},
      {"to_number('+1')", "null"},
      {"to_number('99999999999999999999')", "1e+20"},
      {"to_number(true)", "1"},
      {"to_number(f)", "0"},
      {"to_number(price)", "2.5"},
      {"to_number(nil)", "null"},
      {"to_number(tags)", "null"},
      {"to_number(nope)", "missing"},
      {"to_string(42)", R"e("42")e"},
      {"to_string(-2.5)", R"e("-2.5")e"},
      {"to_string(2.0)", R"e("2.0")e"},
      {"to_string(1e21)", R"e("1e+21")e"},
      {"to_string(1e308 * 10)", R"e("Infinity")e"},
      {"to_string(true)", R"e("true")e"},
      {"to_string(nil)", R"e("null")e"},
      {"to_string(tags)", R"e("[\"x\",\"y\"]")e"},
      {"to_string([1, 'a'])", R"e("[1,\"a\"]")e"},
      {"to_string(name)", R"e("Alice")e"},
      {"to_string(nope)", "missing"},
      {"is_null(to_number('x'))", "true"},
      {"upper(lower(name)) + '!'", R"e("ALICE!")e"},
      {"len(to_string(amount))", "3"},
      {"to_number(to_string(amount)) == amount", "true"},
  });
}

TEST(ExprEval, LogicalOperatorsYieldBooleans) {
  run_rows({
      {"1 and 'a'", "true"},
      {"0 or ''", "false"},
      {"nope or nil", "false"},
      {"amount and name", "true"},
      {"not ''", "true"},
      {"not emptyarr", "false"},
  });
}

TEST(ExprEval, Truthiness) {
  struct T {
    const char* expr;
    bool want;
  };
  const T rows[] = {
      {"nope", false},
      {"nil", false},
      {"false", false},
      {"f", false},
      {"0", false},
      {"0.0", false},
      {"zero", false},
      {"''", false},
      {"empty", false},
      {"0 / 1", false},
      {"1e308 * 10 - 1e308 * 10", false},
      {"true", true},
      {"1", true},
      {"-1", true},
      {"0.5", true},
      {"'a'", true},
      {"name", true},
      {"emptyarr", true},
      {"emptyobj", true},
      {"tags", true},
      {"user", true},
      {"amount > 100", true},
  };
  for (const T& r : rows) {
    auto e = Expression::compile(r.expr);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    EXPECT_EQ(e->matches(event().root()), r.want) << r.expr;
    EXPECT_EQ(e->evaluate(event().root()).truthy(), r.want) << r.expr;
  }
}

class FixedClock final : public Clock {
 public:
  int64_t now_ms() const override { return 1700000000123; }
  int64_t steady_ns() const override { return 0; }
};

TEST(ExprEval, NowUsesTheInjectedClock) {
  auto e = Expression::compile("now_ms()");
  ASSERT_TRUE(e.ok());
  FixedClock clock;
  EvalContext ctx;
  ctx.clock = &clock;
  EXPECT_EQ(render(e->evaluate(event().root(), &ctx)), "1700000000123");
  // Default: the system clock (some time after 2023).
  EXPECT_GT(e->evaluate(event().root()).as_int(), 1700000000000);

  Doc doc(R"({"ts": 1700000000000})");
  auto fresh = Expression::compile("now_ms() - ts < 1000");
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->matches(doc.root(), &ctx));
}

struct ErrorRow {
  const char* expr;
  const char* message;
};

TEST(ExprCompile, ErrorsCarryLineColumnAndMessage) {
  const ErrorRow rows[] = {
      {"a and ", R"e(expr:1:7: expected an operand after "and")e"},
      {"x || ", R"e(expr:1:6: expected an operand after "||")e"},
      {"", "expr:1:1: empty expression"},
      {"(a == 1",
       R"e(expr:1:8: expected ")" to close the "(" at 1:1, found the end of the expression)e"},
      {"a == 1)", R"e(expr:1:7: unmatched ")")e"},
      {"a = 1", R"e(expr:1:3: unexpected "="; use "==" to compare)e"},
      {R"e("abc)e", "expr:1:1: unterminated string"},
      {R"e(x == "a\qb")e",
       R"e(expr:1:8: invalid escape "\q" in string (write "\\q" for a backslash, or use a raw string r"..."))e"},
      {R"e(x =~ r"a\d)e", "expr:1:6: unterminated string"},
      {R"e(x == "\u12")e", R"e(expr:1:7: invalid \u escape: expected 4 hex digits)e"},
      {R"e("\ud800")e", R"e(expr:1:2: invalid \u escape: unpaired surrogate)e"},
      {"1 < 2 < 3",
       R"e(expr:1:7: comparisons cannot be chained; combine them with "and" or use parentheses)e"},
      {"a AND b",
       R"e(expr:1:3: expected an operator or the end of the expression, found "AND" (did you mean "and"?))e"},
      {"a b", R"e(expr:1:3: expected an operator or the end of the expression, found "b")e"},
      {"len(a, b)", "expr:1:1: len() takes 1 argument, got 2"},
      {"contains(a)", "expr:1:1: contains() takes 2 arguments, got 1"},
      {"now_ms(1)", "expr:1:1: now_ms() takes 0 arguments, got 1"},
      {"coalesce()", "expr:1:1: coalesce() takes at least 1 argument, got 0"},
      {"msg =~ name", R"e(expr:1:8: the pattern after "=~" must be a string literal)e"},
      {"msg !~ 1", R"e(expr:1:8: the pattern after "!~" must be a string literal)e"},
      {R"e(msg =~ "(")e", "expr:1:8: invalid regular expression: missing ): ("},
      {"a in 5",
       R"e(expr:1:6: the right side of "in" must be a list or an array field, e.g. [1, 2])e"},
      {"a not in 'x'",
       R"e(expr:1:10: the right side of "not in" must be a list or an array field, e.g. [1, 2])e"},
      {"items[x]",
       R"e(expr:1:7: expected an integer or a quoted string inside "[...]", found "x")e"},
      {"items[1.5]", "expr:1:7: an array index must be an integer"},
      {"items[1",
       R"e(expr:1:8: expected "]" to close the "[" at 1:6, found the end of the expression)e"},
      {"a.", R"e(expr:1:3: expected a field name after ".", found the end of the expression)e"},
      {"a.1", R"e(expr:1:3: expected a field name after ".", found "1")e"},
      {"1.", "expr:1:3: expected a digit after the decimal point"},
      {"1e", "expr:1:3: expected a digit in the exponent"},
      {"12abc", R"e(expr:1:1: invalid number "12abc")e"},
      {"1e999", R"e(expr:1:1: number out of range "1e999")e"},
      {"a # b", R"e(expr:1:3: unexpected character "#")e"},
      {"a & b", R"e(expr:1:3: unexpected "&"; use "and" or "&&")e"},
      {"a | b", R"e(expr:1:3: unexpected "|"; use "or" or "||")e"},
      {"[1, 2",
       R"e(expr:1:6: expected "," or "]" in the list started at 1:1, found the end of the expression)e"},
      {"[1 2]", R"e(expr:1:4: expected "," or "]" in the list started at 1:1, found "2")e"},
      {"[1, ]", R"e(expr:1:5: expected an operand after ",")e"},
      {"upper(x",
       R"e(expr:1:8: expected "," or ")" in the arguments of upper() started at 1:6, found the end of the expression)e"},
      {"a not b", R"e(expr:1:7: expected "in" after "not", found "b")e"},
      {"not", R"e(expr:1:4: expected an operand after "not")e"},
      {"and", R"e(expr:1:1: expected an expression, found "and")e"},
      {")", R"e(expr:1:1: expected an expression, found ")")e"},
      {"a ==\n  and b", R"e(expr:2:3: expected an operand after "==")e"},
      {"a == 1 and\n  b ==", R"e(expr:2:7: expected an operand after "==")e"},
      {"a\n]", R"e(expr:2:1: unmatched "]")e"},
      {"x == \x01", R"e(expr:1:6: unexpected character "\x01")e"},
  };
  for (const ErrorRow& r : rows) {
    auto e = Expression::compile(r.expr);
    ASSERT_FALSE(e.ok()) << "compiled: " << r.expr;
    EXPECT_EQ(e.status().code(), Errc::kInvalidArgument);
    EXPECT_EQ(e.status().message(), r.message) << "expression: " << r.expr;
  }
}

TEST(ExprCompile, UnknownFunctionSuggestsTheClosest) {
  const ErrorRow rows[] = {
      {"lenght(name)", R"e(expr:1:1: unknown function "lenght" (did you mean "len"?))e"},
      {"uper(name)", R"e(expr:1:1: unknown function "uper" (did you mean "upper"?))e"},
      {"x and startswith(msg, 'a')",
       R"e(expr:1:7: unknown function "startswith" (did you mean "starts_with"?))e"},
      {"Lower(name)", R"e(expr:1:1: unknown function "Lower" (did you mean "lower"?))e"},
      {"exist(a)", R"e(expr:1:1: unknown function "exist" (did you mean "exists"?))e"},
      {"foo(1)",
       "expr:1:1: unknown function \"foo\"; the functions are exists, len, lower, upper, "
       "contains, starts_with, ends_with, abs, coalesce, now_ms, to_number, to_string, is_null"},
  };
  for (const ErrorRow& r : rows) {
    auto e = Expression::compile(r.expr);
    ASSERT_FALSE(e.ok()) << r.expr;
    EXPECT_EQ(e.status().message(), r.message);
  }
}

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

TEST(ExprCompile, NestingLimit) {
  // 64 levels compile; 65 do not.
  auto ok = Expression::compile(repeat("(", 64) + "amount" + repeat(")", 64));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(render(ok->evaluate(event().root())), "150");
  auto deep = Expression::compile(repeat("(", 65) + "amount" + repeat(")", 65));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().message(), "expr:1:65: expression nested too deeply (limit 64)");

  // Far deeper inputs are rejected without exhausting the stack.
  const std::string deep_inputs[] = {
      repeat("(", 60000) + "1", repeat("[", 60000),          repeat("-", 60000) + "1",
      repeat("!", 60000) + "a", repeat("not ", 16000) + "a", repeat("len(", 16000) + "a",
      repeat("a == (", 10000),
  };
  for (const std::string& src : deep_inputs) {
    auto e = Expression::compile(src);
    ASSERT_FALSE(e.ok()) << src.substr(0, 20);
    EXPECT_NE(e.status().message().find("nested too deeply (limit 64)"), std::string::npos)
        << e.status().message();
  }
}

TEST(ExprCompile, LongChainsAreFlatAndFine) {
  // Chains of one precedence level do not nest: 10,000 terms compile and evaluate.
  std::string sum = "amount";
  for (int i = 0; i < 9999; ++i) sum += " + 1";
  auto e = Expression::compile(sum);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(render(e->evaluate(event().root())), "10149");

  std::string ors = "nope == 0";
  for (int i = 1; i < 3000; ++i) ors += " or amount == " + std::to_string(i);
  auto o = Expression::compile(ors);
  ASSERT_TRUE(o.ok()) << o.status().to_string();
  EXPECT_TRUE(o->matches(event().root()));

  std::string path = "user";
  for (int i = 0; i < 5000; ++i) path += ".x";
  auto p = Expression::compile(path);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->evaluate(event().root()).is_missing());
}

TEST(ExprCompile, SourceAndListLimits) {
  std::string at_limit = "1" + std::string(64 * 1024 - 1, ' ');
  EXPECT_TRUE(Expression::compile(at_limit).ok());
  auto too_long = Expression::compile(at_limit + " ");
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().message(),
            "expr:1:1: expression too long (65537 bytes, limit 65536)");

  auto list_of = [](int n) {
    std::string s = "amount in [";
    for (int i = 0; i < n; ++i) {
      if (i > 0) s += ",";
      s += std::to_string(i);
    }
    return s + "]";
  };
  auto ok = Expression::compile(list_of(10000));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_TRUE(ok->matches(event().root()));
  auto over = Expression::compile(list_of(10001));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().message(), "expr:1:11: list literal has more than 10000 items");
}

TEST(ExprApi, ReferencedFields) {
  auto e = Expression::compile(
      R"e(user.id == 1 and items[0].price > 2 and payload["x-request-id"] != "" and )e"
      R"e(exists(user.id) and $ != null and $["in"] == 1 and $["a b"].c == 1 and )e"
      R"(coalesce(a, b).c == 1 and (d).e and payload.in and [f][0] == 1)");
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  const std::vector<std::string> want = {"user.id",
                                         "items[0].price",
                                         R"e(payload["x-request-id"])e",
                                         "$",
                                         R"e($["in"])e",
                                         R"e($["a b"].c)e",
                                         "a",
                                         "b",
                                         "d",
                                         "payload.in",
                                         "f"};
  EXPECT_EQ(e->referenced_fields(), want);
  EXPECT_TRUE(Expression::compile("1 + 2")->referenced_fields().empty());
}

TEST(ExprApi, SourceEmptyCopyAndMove) {
  Expression empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_TRUE(empty.evaluate(event().root()).is_missing());
  EXPECT_FALSE(empty.matches(event().root()));
  EXPECT_EQ(empty.source(), "");

  Expression copy;
  {
    auto e = Expression::compile(R"(name + "-" + lower("ABC") in ["Alice-abc", "zzz"])");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->source(), R"(name + "-" + lower("ABC") in ["Alice-abc", "zzz"])");
    copy = *e;
    Expression moved = std::move(*e);
    EXPECT_TRUE(moved.matches(event().root()));
  }
  // The copy outlives the original and still owns the program (constants, sets).
  EXPECT_TRUE(copy.matches(event().root()));
  auto c = Expression::compile(R"(coalesce(nope, "const"))");
  ASSERT_TRUE(c.ok());
  Expression kept = *c;
  c = Expression::compile("1");
  EXPECT_EQ(render(kept.evaluate(event().root())), R"("const")");
}

TEST(ExprApi, ConcurrentEvaluation) {
  auto e = Expression::compile(
      R"e(user.country in ["US", "CA", "GB", "FR", "DE", "IT", "ES", "NL", "BE"] and )e"
      R"(msg =~ "(?i)disk" and upper(name) + "!" == "ALICE!" and amount / 3 > 49)");
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  std::vector<std::thread> threads;
  std::vector<int> hits(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Doc doc(kEvent);  // one document per thread, as in the shards
      for (int i = 0; i < 2000; ++i) hits[t] += e->matches(doc.root()) ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  for (int h : hits) EXPECT_EQ(h, 2000);
}

TEST(ExprApi, ValuesAndJson) {
  EXPECT_EQ(to_json(Value::from_string("a\"b")), R"("a\"b")");
  EXPECT_EQ(to_json(Value::from_double(2)), "2.0");
  EXPECT_EQ(to_json(Value::from_double(std::nan(""))), "null");
  EXPECT_EQ(to_json(Value::missing()), "null");
  EXPECT_EQ(to_json(Value::from_list({Value::from_int(1), Value::from_view("x")})), R"([1,"x"])");
  EXPECT_TRUE(values_equal(Value::from_int(3), Value::from_double(3.0)));
  EXPECT_FALSE(values_equal(Value::missing(), Value::missing()));
  std::string out = "{\"v\":";
  append_json(Expression::compile("items[1]")->evaluate(event().root()), out);
  out += "}";
  EXPECT_EQ(out, R"({"v":{"price":20.5,"sku":"b"}})");
  const Value roles = Expression::compile("user.roles")->evaluate(event().root());
  ASSERT_TRUE(roles.is_array());
  EXPECT_TRUE(roles.has_element());
  EXPECT_EQ(roles.size(), 2u);
}

TEST(ExprApi, CommonEvaluationsDoNotAllocate) {
  if (!SPATE_EXPR_COUNT_ALLOCATIONS) GTEST_SKIP() << "allocation counting is off under sanitizers";
  const char* sources[] = {
      "amount > 100 and price <= 2.5 or nope == 1",
      R"(user.country == "FR" and name != "Bob" and items[-1].sku >= "b")",
      R"(status in ["ok", "fine"] and user.country not in ["US", "CA", "GB", "JP", "DE", "IT", "ES", "NL"])",
      R"("admin" in user.roles and amount in [amount, 1])",
      R"(msg =~ r"(?i)disk\s+full" and user.email !~ "@spam\\.")",
      "amount * 2 + price / 3 - neg % 4 > 0 and -amount < 0",
      R"(exists(user.id) and not exists(nope) and len(tags) == 2 and len(name) > 3)",
      R"(coalesce(nope, nil, user.id) == 42 and lower("abc") == "abc" and is_null(nil))",
      R"(starts_with(msg, "Error") and ends_with(msg, "full") and contains(msg, "disk"))",
      R"(contains(tags, "y") and abs(neg) == 7 and to_number(amount) == 150)",
      R"(payload["x-request-id"] == "abc-123" and $["weird key"] == "w" and obj == obj2)",
  };
  std::vector<Expression> exprs;
  for (const char* src : sources) {
    auto e = Expression::compile(src);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    exprs.push_back(*e);
  }
  for (const Expression& e : exprs) EXPECT_TRUE(e.matches(event().root())) << e.source();
  const int64_t before = g_allocations.load();
  int matched = 0;
  for (int i = 0; i < 100; ++i) {
    for (const Expression& e : exprs) matched += e.matches(event().root()) ? 1 : 0;
    for (const Expression& e : exprs) matched += e.evaluate(event().root()).as_bool() ? 1 : 0;
  }
  EXPECT_EQ(g_allocations.load() - before, 0);
  EXPECT_EQ(matched, 200 * static_cast<int>(exprs.size()));
}

// ---- property test: arithmetic over integer literals against a reference evaluator ----

struct Ref {
  enum Kind { kNull, kInt, kDouble } kind = kNull;
  int64_t i = 0;
  double d = 0;
  double as_double() const { return kind == kInt ? static_cast<double>(i) : d; }
};

// 128-bit arithmetic detects int64 overflow independently of the implementation's builtins.
__extension__ typedef __int128 Wide;

Ref ref_int(int64_t i) {
  return {Ref::kInt, i, 0};
}
Ref ref_double(double d) {
  return {Ref::kDouble, 0, d};
}

// Reference semantics, written from docs/expressions.md: int64 arithmetic that becomes double
// on overflow, "/" always double, division or modulo by zero null, null propagates.
Ref ref_apply(char op, const Ref& a, const Ref& b) {
  if (a.kind == Ref::kNull || b.kind == Ref::kNull) return {};
  const bool ints = a.kind == Ref::kInt && b.kind == Ref::kInt;
  const double x = a.as_double();
  const double y = b.as_double();
  const auto kMin = std::numeric_limits<int64_t>::min();
  const auto kMax = std::numeric_limits<int64_t>::max();
  switch (op) {
    case '+':
      if (ints) {
        const Wide r = static_cast<Wide>(a.i) + b.i;
        if (r >= kMin && r <= kMax) return ref_int(static_cast<int64_t>(r));
      }
      return ref_double(x + y);
    case '-':
      if (ints) {
        const Wide r = static_cast<Wide>(a.i) - b.i;
        if (r >= kMin && r <= kMax) return ref_int(static_cast<int64_t>(r));
      }
      return ref_double(x - y);
    case '*':
      if (ints) {
        const Wide r = static_cast<Wide>(a.i) * b.i;
        if (r >= kMin && r <= kMax) return ref_int(static_cast<int64_t>(r));
      }
      return ref_double(x * y);
    case '/':
      if (y == 0) return {};
      return ref_double(x / y);
    case '%':
      if (y == 0) return {};
      if (ints) {
        return ref_int(static_cast<int64_t>(static_cast<Wide>(a.i) % b.i));
      }
      return ref_double(std::fmod(x, y));
  }
  return {};
}

std::string ref_render(const Ref& r) {
  if (r.kind == Ref::kNull) return "null";
  if (r.kind == Ref::kInt) return std::to_string(r.i);
  if (!std::isfinite(r.d)) return "null";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), r.d);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

struct Gen {
  std::mt19937_64 rng;
  std::vector<int64_t> leaves;  // values of the leaves, in order

  int64_t literal() {
    static const int64_t kSpecial[] = {0,
                                       1,
                                       -1,
                                       2,
                                       7,
                                       std::numeric_limits<int64_t>::max(),
                                       std::numeric_limits<int64_t>::min(),
                                       std::numeric_limits<int64_t>::max() / 2,
                                       4294967296,
                                       -3037000500};
    switch (rng() % 3) {
      case 0:
        return kSpecial[rng() % std::size(kSpecial)];
      case 1:
        return static_cast<int64_t>(rng() % 201) - 100;
      default:
        return static_cast<int64_t>(rng());
    }
  }

  // Returns (source with leaves as literals, source with leaves as fields, precedence, value).
  struct Out {
    std::string lit;
    std::string field;
    int prec;  // 1: + -, 2: * / %, 3: unary or leaf
    Ref value;
  };

  Out gen(int depth) {
    if (depth == 0 || rng() % 4 == 0) {
      const int64_t v = literal();
      const std::string name = "v" + std::to_string(leaves.size());
      leaves.push_back(v);
      return {std::to_string(v), name, 3, ref_int(v)};  // "-5" is a unary minus: binds tightest
    }
    if (rng() % 8 == 0) {
      Out x = gen(depth - 1);
      const bool paren = x.prec < 3;
      Out r;
      r.lit = "-" + (paren ? "(" + x.lit + ")" : x.lit);
      r.field = "-" + (paren ? "(" + x.field + ")" : x.field);
      r.prec = 3;
      if (x.value.kind == Ref::kNull) {
        r.value = {};
      } else if (x.value.kind == Ref::kInt) {
        r.value = x.value.i == std::numeric_limits<int64_t>::min()
                      ? ref_double(-static_cast<double>(x.value.i))
                      : ref_int(-x.value.i);
      } else {
        r.value = ref_double(-x.value.d);
      }
      return r;
    }
    static const char kOps[] = {'+', '-', '*', '/', '%'};
    const char op = kOps[rng() % 5];
    const int prec = (op == '+' || op == '-') ? 1 : 2;
    Out a = gen(depth - 1);
    Out b = gen(depth - 1);
    // Left-associative: the left operand needs parentheses below this precedence, the right
    // operand at or below it.
    const bool pa = a.prec < prec;
    const bool pb = b.prec <= prec;
    Out r;
    r.lit = (pa ? "(" + a.lit + ")" : a.lit) + " " + op + " " + (pb ? "(" + b.lit + ")" : b.lit);
    r.field = (pa ? "(" + a.field + ")" : a.field) + " " + op + " " +
              (pb ? "(" + b.field + ")" : b.field);
    r.prec = prec;
    r.value = ref_apply(op, a.value, b.value);
    return r;
  }
};

TEST(ExprProperty, ArithmeticMatchesReference) {
  Gen g{std::mt19937_64(20240501), {}};
  for (int iter = 0; iter < 3000; ++iter) {
    g.leaves.clear();
    const Gen::Out out = g.gen(1 + iter % 6);
    const std::string want = ref_render(out.value);

    auto lit = Expression::compile(out.lit);
    ASSERT_TRUE(lit.ok()) << out.lit << ": " << lit.status().to_string();
    EXPECT_EQ(render(lit->evaluate(event().root())), want) << out.lit;

    std::string json = "{";
    for (size_t i = 0; i < g.leaves.size(); ++i) {
      if (i > 0) json += ",";
      json += "\"v" + std::to_string(i) + "\":" + std::to_string(g.leaves[i]);
    }
    json += "}";
    Doc doc(json);
    auto fld = Expression::compile(out.field);
    ASSERT_TRUE(fld.ok()) << out.field << ": " << fld.status().to_string();
    EXPECT_EQ(render(fld->evaluate(doc.root())), want) << out.field << " over " << json;
  }
}

}  // namespace
}  // namespace spate::expr
