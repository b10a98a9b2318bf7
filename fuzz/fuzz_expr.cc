// Fuzz target: the expression language (src/event/expr.h). Input: an expression, optionally
// followed by a NUL byte and a JSON event. Compiling must never crash and must either succeed or
// fail with kInvalidArgument "expr:LINE:COL: ..."; a compiled expression is evaluated over a few
// fixed events (and the input's own event when it parses), rendered as JSON and copied.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "event/expr.h"

namespace {

constexpr const char* kEvents[] = {
    R"({"amount": 150, "price": 2.5, "name": "Alice", "nil": null, "t": true,
        "user": {"id": 42, "roles": ["admin", "dev"], "email": "a@example.com"},
        "items": [{"price": 10, "sku": "a"}, {"price": 20.5}], "tags": ["x", "y"],
        "payload": {"x-request-id": "abc", "in": 5}, "big": 9223372036854775807,
        "small": -9223372036854775808, "huge": 18446744073709551615, "msg": "Error: disk"})",
    R"([1, "two", [3], {"four": 4}])",
    R"("just a string")",
    R"({})",
};

struct Events {
  Events() {
    for (size_t i = 0; i < std::size(kEvents); ++i) {
      padded[i] = simdjson::padded_string(std::string_view(kEvents[i]));
      if (parsers[i].parse(padded[i]).get(roots[i])) __builtin_trap();
    }
  }
  simdjson::padded_string padded[std::size(kEvents)];
  simdjson::dom::parser parsers[std::size(kEvents)];
  simdjson::dom::element roots[std::size(kEvents)];
};

void exercise(const spate::expr::Expression& e, const simdjson::dom::element& ev) {
  const spate::expr::Value v = e.evaluate(ev);
  std::string out;
  spate::expr::append_json(v, out);
  if (out.empty()) __builtin_trap();
  if (e.matches(ev) != v.truthy()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Events events;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view source = input.substr(0, nul);

  auto compiled = spate::expr::Expression::compile(source);
  if (!compiled.ok()) {
    const spate::Status& s = compiled.status();
    if (s.code() != spate::Errc::kInvalidArgument || s.message().rfind("expr:", 0) != 0) {
      __builtin_trap();
    }
    return 0;
  }
  const spate::expr::Expression copy = *compiled;  // copies share the program
  if (copy.source() != source) __builtin_trap();
  (void)copy.referenced_fields();
  for (const auto& root : events.roots) exercise(copy, root);

  if (nul != std::string_view::npos) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (!parser.parse(input.data() + nul + 1, size - nul - 1).get(root)) exercise(copy, root);
  }
  return 0;
}
