// CompiledSchema: a JSON Schema (draft 7) compiled once, at pipeline load, into a tree of checks
// that validates events parsed with simdjson's DOM parser.
//
// Contract:
// - compile() parses the schema document and builds the checks: RE2 regexes for "pattern" and
//   "patternProperties" (ECMA 262 translated, see ecma_regex.h), hash sets for string "enum"s,
//   one name index per "properties"/"required"/"dependencies" object, "$ref"s resolved to the
//   nodes they name. Every problem is an Errc::kInvalidArgument Status whose message lists the
//   problems found (up to 20), each with its schema location: invalid JSON, a keyword with a value
//   of the wrong type or range, a bad or RE2-incompatible regex, an unresolvable or remote "$ref"
//   (nothing is ever fetched; only the document itself and the built-in draft-07 meta-schema
//   resolve), "$ref" cycles that would recurse without reaching a value ({"$ref": "#"}), schemas
//   nested deeper than CompileOptions::max_depth. In strict mode (the default) also unknown
//   keywords (with a "did you mean"), keywords of other drafts, validation keywords beside "$ref"
//   (draft 7 ignores them), unknown "format" names, and a "$schema" other than draft-07.
// - valid() answers yes/no and allocates nothing in the common case (the exceptions: format
//   "regex" and "uniqueItems" over more than 32 items, which reuses a thread-local buffer).
//   validate() does the same and, only when the instance is invalid, runs a second, reporting
//   pass that fills *first_error with the first failure found.
// - Evaluation recursion is bounded: instance depth is bounded by the parser (simdjson: 1024),
//   in-place applicator cycles are rejected at compile time, and evaluation deeper than
//   kMaxEvalDepth nested checks fails the instance with keyword "depth" instead of overflowing the
//   stack.
// - Thread safety: a CompiledSchema is immutable after compile(); valid()/validate() are const
//   and may run concurrently from any number of threads. Copies share the compiled tree.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "spate/status.h"

namespace simdjson::dom {
class element;  // <simdjson.h>; callers that validate have it already.
}  // namespace simdjson::dom

namespace spate {
class FileSystem;
}  // namespace spate

namespace spate::schema {

namespace detail {
struct SchemaImpl;  // the compiled tree (json_schema.cc)
}  // namespace detail

struct CompileOptions {
  /// Reject what draft 7 would silently ignore: unknown keywords (typos), other drafts'
  /// keywords, validation keywords beside "$ref", unknown formats, a non-draft-07 "$schema".
  /// Off: those are ignored as the specification says (unsupported_keywords() lists them).
  bool strict = true;
  /// Assert "format" (draft 7 makes it an annotation). See formats.h for what is checked.
  bool validate_formats = false;
  /// Maximum nesting of subschemas inside subschemas.
  int max_depth = 64;
};

/// Evaluation deeper than this many nested checks fails with keyword "depth".
inline constexpr int kMaxEvalDepth = 1000;

struct ValidationError {
  std::string instance_path;  // JSON Pointer into the event: "/user/age" ("" = the whole event)
  std::string schema_path;    // where the failing keyword is: "#/properties/age/minimum"
  std::string keyword;        // "minimum"
  std::string message;        // "must be >= 0, got -3"

  /// "/user/age: must be >= 0, got -3" ("(root)" for an empty instance path).
  std::string to_string() const;
};

class CompiledSchema {
 public:
  /// Compile the schema document `schema_json` (JSON text).
  static Result<CompiledSchema> compile(std::string_view schema_json,
                                        const CompileOptions& options = {});
  /// Read `path` (through `fs`, the POSIX file system by default) and compile it. Read errors
  /// keep their code (kNotFound, kIo); schema errors are kInvalidArgument prefixed with the path.
  static Result<CompiledSchema> compile_file(const std::string& path,
                                             const CompileOptions& options = {},
                                             FileSystem* fs = nullptr);

  /// True if `instance` is valid. No allocation in the common case.
  bool valid(const simdjson::dom::element& instance) const;
  /// Like valid(); when invalid and first_error is not null, describes the first failure.
  bool validate(const simdjson::dom::element& instance, ValidationError* first_error) const;
  /// Parse `json_text` (thread-local parser) and validate it: OK, or InvalidArgument with
  /// "invalid JSON: ..." or the first error's to_string().
  Status validate_json(std::string_view json_text) const;

  /// Non-strict mode: the keywords compile() ignored, as schema locations
  /// ("#/properties/a/foo"). Empty in strict mode (they are errors there).
  std::vector<std::string> unsupported_keywords() const;
  const CompileOptions& options() const;

 private:
  explicit CompiledSchema(std::shared_ptr<const detail::SchemaImpl> impl)
      : impl_(std::move(impl)) {}
  std::shared_ptr<const detail::SchemaImpl> impl_;
};

}  // namespace spate::schema
