// Fuzz target: JSON Schema compilation (src/ingest/validate/) and validation.
//
// Input: a schema document, optionally followed by a line "---" and an instance document
// (without one, the schema document itself and a few fixed values are validated). Must never
// crash, hang or overflow the stack; compile either succeeds or returns kInvalidArgument; the
// fast valid() and the reporting validate() must agree, and an invalid instance must come with a
// message. The raw input is also fed to the ECMA 262 -> RE2 translator.
#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "ingest/validate/ecma_regex.h"
#include "ingest/validate/json_schema.h"

namespace {

void check_instance(const spate::schema::CompiledSchema& schema,
                    const simdjson::dom::element& instance) {
  bool fast = schema.valid(instance);
  spate::schema::ValidationError error;
  bool reported = schema.validate(instance, &error);
  if (fast != reported) __builtin_trap();
  if (!reported && error.message.empty()) __builtin_trap();
}

void run(std::string_view schema_text, std::string_view instance_text, bool strict, bool formats) {
  spate::schema::CompileOptions options;
  options.strict = strict;
  options.validate_formats = formats;
  auto compiled = spate::schema::CompiledSchema::compile(schema_text, options);
  if (!compiled.ok()) {
    if (compiled.status().code() != spate::Errc::kInvalidArgument) __builtin_trap();
    return;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element instance;
  if (!instance_text.empty()) {
    simdjson::padded_string padded(instance_text);
    if (parser.parse(padded).get(instance) == simdjson::SUCCESS) {
      check_instance(*compiled, instance);
    }
    return;
  }
  for (std::string_view fixed :
       {schema_text, std::string_view("null"), std::string_view("0"), std::string_view("-1.5"),
        std::string_view("\"abc\""), std::string_view("[1, [2], {\"a\": 3}]"),
        std::string_view("{\"a\": 1, \"b\": \"x\", \"c\": [null]}")}) {
    simdjson::padded_string padded(fixed);
    if (parser.parse(padded).get(instance) == simdjson::SUCCESS) {
      check_instance(*compiled, instance);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)spate::schema::check_ecma_regex(input.substr(0, 512));

  std::string_view schema = input, instance;
  auto sep = input.find("\n---\n");
  if (sep != std::string_view::npos) {
    schema = input.substr(0, sep);
    instance = input.substr(sep + 5);
  }
  run(schema, instance, /*strict=*/false, /*formats=*/true);
  run(schema, instance, /*strict=*/true, /*formats=*/false);
  return 0;
}
