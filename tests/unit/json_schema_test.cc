// Tests of spate::schema (src/ingest/validate/): the official JSON-Schema-Test-Suite for draft 7,
// then our own cases for error reporting, strict mode, the regex dialect, $ref resolution and
// cycles, nesting limits, numbers, formats, allocation-free validation and thread safety.
#include "ingest/validate/json_schema.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <new>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ingest/validate/ecma_regex.h"
#include "ingest/validate/formats.h"

// Global allocation counter, to check that valid() does not allocate. Sanitizers own the
// allocator, so sanitizer builds keep the standard operator new and skip that test.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPATE_COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define SPATE_COUNT_ALLOCS 0
#endif
#endif
#ifndef SPATE_COUNT_ALLOCS
#define SPATE_COUNT_ALLOCS 1
#endif

namespace {
std::atomic<bool> g_count_allocs{false};
std::atomic<long> g_allocs{0};
}  // namespace

#if SPATE_COUNT_ALLOCS
// Out of line, so that GCC does not pair an inlined free() with `new` (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t size) {
  if (g_count_allocs.load(std::memory_order_relaxed)) g_allocs.fetch_add(1);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t size) {
  return operator new(size);
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
#endif

namespace spate::schema {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// The official suite.

// Files and cases we do not run, with the reason. Everything else must pass.
const std::map<std::string, std::string>& skipped_files() {
  static const std::map<std::string, std::string> skipped = {
      {"refRemote.json",
       "remote $refs (http://localhost:1234/...) are not supported: nothing is fetched"},
  };
  return skipped;
}

// Optional tests (optional/**) we claim to pass, with validate_formats on. Others are run and
// reported only.
const std::set<std::string>& claimed_optional() {
  static const std::set<std::string> claimed = {
      "float-overflow.json",
      "non-bmp-regex.json",
      "format/date-time.json",
      "format/time.json",
      "format/ipv4.json",
      "format/json-pointer.json",
      "format/relative-json-pointer.json",
  };
  return claimed;
}

fs::path suite_dir() {
  for (const char* candidate : {"../shared/testdata/json-schema-test-suite/draft7",
                                "/work/shared/testdata/json-schema-test-suite/draft7"}) {
    std::error_code ec;
    if (fs::is_directory(candidate, ec)) return candidate;
  }
  return {};
}

struct SuiteCounts {
  int files = 0;
  int groups = 0;
  int passed = 0;
  int failed = 0;
  int skipped = 0;
  std::vector<std::string> failures;
};

std::string fmt_failure(const fs::path& file, std::string_view group, std::string_view test,
                        std::string_view what) {
  std::ostringstream o;
  o << file.filename().string() << " / " << group << " / " << test << ": " << what;
  return o.str();
}

// Runs one suite file; returns false if it could not be read or parsed.
bool run_suite_file(const fs::path& file, const CompileOptions& options, SuiteCounts* counts) {
  simdjson::dom::parser parser;
  simdjson::padded_string text;
  if (simdjson::padded_string::load(file.string()).get(text) != simdjson::SUCCESS) return false;
  simdjson::dom::element root;
  if (parser.parse(text).get(root) != simdjson::SUCCESS) return false;
  simdjson::dom::array groups;
  if (root.get_array().get(groups) != simdjson::SUCCESS) return false;
  ++counts->files;
  for (simdjson::dom::element group : groups) {
    ++counts->groups;
    std::string_view group_desc = group["description"].get_string().value();
    std::string schema_text = simdjson::minify(group["schema"].value());
    simdjson::dom::array tests = group["tests"].get_array().value();
    auto compiled = CompiledSchema::compile(schema_text, options);
    if (!compiled.ok()) {
      for (simdjson::dom::element t : tests) {
        (void)t;
        ++counts->failed;
      }
      counts->failures.push_back(
          fmt_failure(file, group_desc, "(compile)", compiled.status().message()));
      continue;
    }
    for (simdjson::dom::element t : tests) {
      std::string_view test_desc = t["description"].get_string().value();
      bool expected = t["valid"].get_bool().value();
      simdjson::dom::element data = t["data"].value();
      bool fast = compiled->valid(data);
      ValidationError err;
      bool reported = compiled->validate(data, &err);
      if (fast == expected && reported == expected && (expected || !err.message.empty())) {
        ++counts->passed;
      } else {
        ++counts->failed;
        counts->failures.push_back(fmt_failure(
            file, group_desc, test_desc,
            "expected " + std::string(expected ? "valid" : "invalid") +
                ", valid()=" + (fast ? "true" : "false") +
                ", validate()=" + (reported ? "true" : "false") + " " + err.to_string()));
      }
    }
  }
  return true;
}

TEST(JsonSchemaSuite, Draft7) {
  fs::path dir = suite_dir();
  if (dir.empty()) {
    GTEST_SKIP() << "JSON-Schema-Test-Suite not found at ../shared/testdata/json-schema-test-suite"
                    " (or /work/shared/...); it lives beside the clone in CI";
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty());

  CompileOptions options;
  options.strict = false;  // the suite relies on unknown keywords being ignored
  SuiteCounts counts;
  std::vector<std::string> skipped;
  for (const fs::path& file : files) {
    std::string name = file.filename().string();
    if (auto it = skipped_files().find(name); it != skipped_files().end()) {
      skipped.push_back(name + ": " + it->second);
      ++counts.skipped;
      continue;
    }
    EXPECT_TRUE(run_suite_file(file, options, &counts)) << "cannot read " << file;
  }
  for (const std::string& f : counts.failures) ADD_FAILURE() << f;
  std::printf(
      "[json-schema draft7] %d files, %d groups, %d cases passed, %d failed; "
      "%d file(s) skipped:\n",
      counts.files, counts.groups, counts.passed, counts.failed, counts.skipped);
  for (const std::string& s : skipped) std::printf("  skipped %s\n", s.c_str());
  EXPECT_EQ(counts.failed, 0);
  EXPECT_GT(counts.passed, 800);
}

TEST(JsonSchemaSuite, Draft7Optional) {
  fs::path dir = suite_dir();
  if (dir.empty() || !fs::is_directory(dir / "optional")) {
    GTEST_SKIP() << "no optional/ folder in the test suite checkout";
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir / "optional")) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  CompileOptions options;
  options.strict = false;
  options.validate_formats = true;
  for (const fs::path& file : files) {
    std::string rel = fs::relative(file, dir / "optional").generic_string();
    SuiteCounts counts;
    bool read = run_suite_file(file, options, &counts);
    bool claimed = claimed_optional().count(rel) != 0;
    std::printf("[json-schema draft7 optional] %-40s %s %d passed, %d failed%s\n", rel.c_str(),
                read ? "" : "(unreadable)", counts.passed, counts.failed,
                claimed ? " (claimed)" : "");
    if (claimed) {
      for (const std::string& f : counts.failures) ADD_FAILURE() << f;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

CompiledSchema must_compile(std::string_view schema, CompileOptions options = {}) {
  auto r = CompiledSchema::compile(schema, options);
  EXPECT_TRUE(r.ok()) << schema << " -> " << r.status().to_string();
  if (!r.ok()) std::abort();
  return std::move(r).value();
}

std::string compile_error(std::string_view schema, CompileOptions options = {}) {
  auto r = CompiledSchema::compile(schema, options);
  EXPECT_FALSE(r.ok()) << schema << " compiled";
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Errc::kInvalidArgument);
  return r.status().message();
}

class Doc {
 public:
  explicit Doc(std::string_view json) : text_(json) {
    auto err = parser_.parse(text_).get(root_);
    EXPECT_EQ(err, simdjson::SUCCESS) << json;
  }
  const simdjson::dom::element& root() const { return root_; }

 private:
  simdjson::padded_string text_;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
};

bool is_valid(const CompiledSchema& s, std::string_view json) {
  Doc d(json);
  bool fast = s.valid(d.root());
  ValidationError e;
  bool slow = s.validate(d.root(), &e);
  EXPECT_EQ(fast, slow) << json;
  if (!slow) {
    EXPECT_FALSE(e.message.empty()) << json;
  }
  return fast;
}

ValidationError first_error(const CompiledSchema& s, std::string_view json) {
  Doc d(json);
  ValidationError e;
  EXPECT_FALSE(s.validate(d.root(), &e)) << json << " is valid";
  return e;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// Error reports.

TEST(JsonSchema, ErrorHasInstancePathKeywordAndMessage) {
  auto s = must_compile(R"({
    "type": "object",
    "properties": {
      "user": {
        "type": "object",
        "properties": {"age": {"type": "integer", "minimum": 0}, "name": {"type": "string"}},
        "required": ["name"]
      },
      "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}}
    }
  })");
  ValidationError e = first_error(s, R"({"user": {"name": "x", "age": -3}})");
  EXPECT_EQ(e.instance_path, "/user/age");
  EXPECT_EQ(e.keyword, "minimum");
  EXPECT_EQ(e.message, "must be >= 0, got -3");
  EXPECT_EQ(e.schema_path, "#/properties/user/properties/age/minimum");
  EXPECT_EQ(e.to_string(), "/user/age: must be >= 0, got -3");

  e = first_error(s, R"({"user": {"age": 3}})");
  EXPECT_EQ(e.instance_path, "/user");
  EXPECT_EQ(e.keyword, "required");
  EXPECT_EQ(e.message, "missing required property \"name\"");

  e = first_error(s, R"({"tags": ["ab", "abc", "abcd"]})");
  EXPECT_EQ(e.instance_path, "/tags/2");
  EXPECT_EQ(e.keyword, "maxLength");
  EXPECT_EQ(e.message, "must be at most 3 characters long, got 4");

  e = first_error(s, R"({"user": {"name": 5}})");
  EXPECT_EQ(e.instance_path, "/user/name");
  EXPECT_EQ(e.message, "must be string, got integer");

  e = first_error(s, R"([1])");
  EXPECT_EQ(e.instance_path, "");
  EXPECT_EQ(e.to_string(), "(root): must be object, got array");
}

TEST(JsonSchema, ErrorPathEscapesPointerTokens) {
  auto s = must_compile(R"({"properties": {"a/b": {"properties": {"c~d": {"type": "null"}}}}})");
  EXPECT_EQ(first_error(s, R"({"a/b": {"c~d": 1}})").instance_path, "/a~1b/c~0d");
}

TEST(JsonSchema, AdditionalPropertiesSuggestsTheKnownName) {
  auto s =
      must_compile(R"({"properties": {"name": {}, "email": {}}, "additionalProperties": false})");
  ValidationError e = first_error(s, R"({"name": "a", "emial": "b"})");
  EXPECT_EQ(e.instance_path, "/emial");
  EXPECT_EQ(e.keyword, "additionalProperties");
  EXPECT_EQ(e.message,
            "property \"emial\" is not allowed (additionalProperties is false); did you mean "
            "\"email\"?");
}

TEST(JsonSchema, CombinatorMessagesExplainTheBranches) {
  auto s = must_compile(R"({"anyOf": [{"type": "string"}, {"type": "null"}]})");
  ValidationError e = first_error(s, "5");
  EXPECT_EQ(e.keyword, "anyOf");
  EXPECT_EQ(e.message,
            "must match at least one schema in anyOf: [0] must be string, got integer; "
            "[1] must be null, got integer");

  auto one = must_compile(R"({"oneOf": [{"type": "integer"}, {"minimum": 2}]})");
  e = first_error(one, "3");
  EXPECT_EQ(e.message, "must match exactly one schema in oneOf, matches 0 and 1");

  auto cond = must_compile(
      R"({"if": {"properties": {"kind": {"const": "a"}}}, "then": {"required": ["x"]}})");
  e = first_error(cond, R"({"kind": "a"})");
  EXPECT_EQ(e.keyword, "required");
  EXPECT_EQ(e.schema_path, "#/then/required");

  auto names = must_compile(R"({"propertyNames": {"pattern": "^[a-z]+$"}})");
  e = first_error(names, R"({"ok": 1, "Bad": 2})");
  EXPECT_EQ(e.keyword, "pattern");
  EXPECT_TRUE(contains(e.message, "property name \"Bad\": must match pattern")) << e.message;

  auto deps = must_compile(R"({"dependencies": {"card": ["billing"]}})");
  e = first_error(deps, R"({"card": 1})");
  EXPECT_EQ(e.message, "property \"card\" requires property \"billing\"");

  auto tuple = must_compile(R"({"items": [{}, {}], "additionalItems": false})");
  e = first_error(tuple, "[1, 2, 3]");
  EXPECT_EQ(e.keyword, "additionalItems");
  EXPECT_EQ(e.message, "must have at most 2 items (additionalItems is false), got 3");
}

TEST(JsonSchema, ValidateJsonConvenience) {
  auto s = must_compile(R"({"type": "object", "required": ["id"]})");
  EXPECT_TRUE(s.validate_json(R"({"id": 1})").ok());
  Status st = s.validate_json(R"({"x": 1})");
  EXPECT_EQ(st.code(), Errc::kInvalidArgument);
  EXPECT_EQ(st.message(), "(root): missing required property \"id\"");
  EXPECT_TRUE(contains(s.validate_json("{nope").message(), "invalid JSON"));
}

// ---------------------------------------------------------------------------------------------
// Compile errors and strict mode.

TEST(JsonSchema, StrictModeRejectsTyposWithSuggestions) {
  std::string m = compile_error(R"({"type": "object", "requred": ["a"]})");
  EXPECT_TRUE(contains(m, "#: unknown keyword \"requred\" (did you mean \"required\"?)")) << m;

  m = compile_error(R"({"properties": {"a": {"maxLenght": 3}}})");
  EXPECT_TRUE(contains(m,
                       "#/properties/a: unknown keyword \"maxLenght\" (did you mean "
                       "\"maxLength\"?)"))
      << m;

  m = compile_error(R"({"type": "strnig"})");
  EXPECT_TRUE(contains(m, "unknown type \"strnig\" (did you mean \"string\"?)")) << m;

  m = compile_error(R"({"$defs": {"a": {}}})");
  EXPECT_TRUE(contains(m, "draft 7 uses \"definitions\"")) << m;

  m = compile_error(R"({"nullable": true})");
  EXPECT_TRUE(contains(m, "OpenAPI")) << m;

  m = compile_error(R"({"format": "date_time"})");
  EXPECT_TRUE(contains(m, "unknown format \"date_time\" (did you mean \"date-time\"?)")) << m;

  m = compile_error(R"({"$ref": "#/definitions/a", "maxItems": 2, "definitions": {"a": {}}})");
  EXPECT_TRUE(contains(m, "\"maxItems\" beside \"$ref\" is ignored in draft 7")) << m;

  m = compile_error(R"({"$schema": "https://json-schema.org/draft/2020-12/schema"})");
  EXPECT_TRUE(contains(m, "implements draft 7")) << m;

  m = compile_error(R"({"title": 5})");
  EXPECT_TRUE(contains(m, "\"title\" must be a string")) << m;

  // Several problems are reported together.
  m = compile_error(R"({"minLength": -1, "foo": 1, "items": {"bar": 2}})");
  EXPECT_TRUE(contains(m, "minLength")) << m;
  EXPECT_TRUE(contains(m, "\"foo\"")) << m;
  EXPECT_TRUE(contains(m, "#/items: unknown keyword \"bar\"")) << m;

  // What strict mode accepts: annotations, $schema draft-07, $id/definitions beside $ref.
  must_compile(R"({
    "$schema": "http://json-schema.org/draft-07/schema#", "$id": "http://example.com/s.json",
    "title": "t", "description": "d", "$comment": "c", "default": 1, "examples": [1],
    "readOnly": false, "writeOnly": false, "contentMediaType": "text/plain",
    "contentEncoding": "base64", "format": "email"
  })");
  must_compile(
      R"({"$id": "x", "$ref": "#/definitions/a", "definitions": {"a": {}}, "title": "t"})");
}

TEST(JsonSchema, NonStrictModeIgnoresAndListsUnknownKeywords) {
  CompileOptions lax;
  lax.strict = false;
  auto s = must_compile(R"({"requred": ["a"], "properties": {"a": {"foo": 1, "type": "string"}},
                            "format": "no-such-format"})",
                        lax);
  EXPECT_EQ(s.unsupported_keywords(),
            (std::vector<std::string>{"#/requred", "#/properties/a/foo"}));
  EXPECT_TRUE(is_valid(s, R"({})"));
  EXPECT_FALSE(is_valid(s, R"({"a": 1})"));
  EXPECT_TRUE(must_compile(R"({"type": "string"})").unsupported_keywords().empty());
}

TEST(JsonSchema, InvalidSchemasAreRejected) {
  CompileOptions lax;
  lax.strict = false;
  for (const char* bad : {
           R"({"type": 5})",
           R"({"minimum": "3"})",
           R"({"maxLength": 1.5})",
           R"({"minItems": -1})",
           R"({"multipleOf": 0})",
           R"({"multipleOf": -2})",
           R"({"required": "a"})",
           R"({"required": [1]})",
           R"({"properties": []})",
           R"({"items": 3})",
           R"({"allOf": []})",
           R"({"anyOf": {}})",
           R"({"not": "x"})",
           R"({"uniqueItems": 1})",
           R"({"enum": 3})",
           R"({"pattern": 7})",
           R"({"dependencies": {"a": 3}})",
           R"({"exclusiveMinimum": true})",
           R"({"$ref": 5})",
           R"({"type": "object", "type": "array"})",
           R"({"properties": {"a": {}, "a": {}}})",
           R"([])",
           R"("schema")",
           R"({"a": )",
           R"({"$id": "#/definitions/x"})",
       }) {
    compile_error(bad, lax);
  }
  EXPECT_TRUE(contains(compile_error("{"), "not valid JSON"));
}

TEST(JsonSchema, BadRegexesAreRejectedAtCompileTime) {
  struct Case {
    const char* pattern;
    const char* why;
  };
  for (const Case& c : {
           Case{"(?=a)b", "lookahead"},
           Case{"a(?!b)", "lookahead"},
           Case{"(?<=a)b", "lookbehind"},
           Case{"(?<!a)b", "lookbehind"},
           Case{"(a)\\1", "backreferences"},
           Case{"(?<x>a)\\k<x>", "named backreferences"},
           Case{"[a", "unterminated character class"},
           Case{"a{3,2}", "out of order"},
           Case{"\\Z", "not an ECMA 262 escape"},
           Case{"\\a", "not an ECMA 262 escape"},
           Case{"a{1001}", "RE2"},
           Case{"(a", "RE2"},
           Case{"*a", "RE2"},
           Case{"[z-a]", "range"},
           Case{"\\", "lone backslash"},
           Case{"\\01", "octal"},
           Case{"\\uD800", "surrogate"},
           Case{"(?i)a", "invalid group"},
           Case{"\\p{Nope}", "RE2"},
       }) {
    std::string schema = std::string(R"({"pattern": ")") + c.pattern + "\"}";
    // JSON-escape the backslashes of the pattern.
    std::string escaped;
    for (char ch : std::string_view(c.pattern)) {
      if (ch == '\\') {
        escaped += "\\\\";
      } else {
        escaped += ch;
      }
    }
    schema = std::string(R"({"pattern": ")") + escaped + "\"}";
    std::string m = compile_error(schema);
    EXPECT_TRUE(contains(m, c.why)) << c.pattern << " -> " << m;
    EXPECT_TRUE(contains(m, "#: \"pattern\"")) << m;
    std::string pp = std::string(R"({"patternProperties": {")") + escaped + "\": {}}}";
    EXPECT_TRUE(contains(compile_error(pp), "patternProperties")) << pp;
  }
}

// ---------------------------------------------------------------------------------------------
// The ECMA 262 -> RE2 dialect.

bool matches(std::string_view ecma_pattern, std::string_view text) {
  std::string schema = R"({"type": "string", "pattern": )";
  // Build the schema with a JSON-escaped pattern.
  schema += '"';
  for (char c : ecma_pattern) {
    if (c == '\\' || c == '"') schema += '\\';
    schema += c;
  }
  schema += "\"}";
  auto s = must_compile(schema);
  std::string doc = "\"";
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      doc += buf;
    } else if (c == '"' || c == '\\') {
      doc += '\\';
      doc += c;
    } else {
      doc += c;
    }
  }
  doc += '"';
  return is_valid(s, doc);
}

TEST(JsonSchema, RegexDialectFollowsEcma262) {
  EXPECT_TRUE(matches("a+", "xxaayy"));     // not anchored
  EXPECT_FALSE(matches("^abc$", "abc\n"));  // $ is end of input only
  EXPECT_TRUE(matches("^abc$", "abc"));
  EXPECT_TRUE(matches("^\\d$", "7"));
  EXPECT_FALSE(matches("^\\d$", "\u07c0"));  // NKO digit zero: \d is ASCII
  EXPECT_TRUE(matches("^\\D$", "\u07c0"));
  EXPECT_FALSE(matches("^\\w$", "\u00e9"));
  EXPECT_TRUE(matches("^\\W$", "\u00e9"));
  EXPECT_TRUE(matches("^\\s$", " "));
  EXPECT_TRUE(matches("^\\s$", "\u00a0"));  // ECMA \s includes NBSP, BOM, Zs, U+2028/9
  EXPECT_TRUE(matches("^\\s$", "\ufeff"));
  EXPECT_TRUE(matches("^\\s$", "\u2003"));
  EXPECT_TRUE(matches("^\\s$", "\x0b"));
  EXPECT_FALSE(matches("^\\S$", "\u00a0"));
  EXPECT_TRUE(matches("^\\S$", "x"));
  EXPECT_TRUE(matches("^[\\s]$", "\u3000"));
  EXPECT_FALSE(matches("^[^\\s]$", "\u3000"));
  EXPECT_TRUE(matches("^[\\S]$", "\u00e9"));
  EXPECT_FALSE(matches("^.$", "\n"));  // . excludes line terminators
  EXPECT_FALSE(matches("^.$", "\u2028"));
  EXPECT_TRUE(matches("^.$", "\u00e9"));
  EXPECT_TRUE(matches("^.$", "\U0001F4A9"));  // by code point (as with the u flag)
  EXPECT_TRUE(matches("^[^]$", "\n"));        // [^] is anything
  EXPECT_FALSE(matches("a[]", "a"));          // [] is nothing
  EXPECT_TRUE(matches("^\\t$", "\t"));
  EXPECT_TRUE(matches("^\\cC$", "\x03"));
  EXPECT_TRUE(matches("^\\cc$", "\x03"));
  EXPECT_TRUE(matches("^\\u00e1$", "\u00e1"));
  EXPECT_TRUE(matches("^\\uD83D\\uDCA9$", "\U0001F4A9"));  // surrogate pair escape
  EXPECT_TRUE(matches("^\\u{1F4A9}$", "\U0001F4A9"));
  EXPECT_TRUE(matches("^\\x41$", "A"));
  EXPECT_TRUE(matches("^a{2}$", "aa"));
  EXPECT_TRUE(matches("^a{$", "a{"));  // a brace that is not a quantifier is a literal
  EXPECT_TRUE(matches("^{foo}$", "{foo}"));
  EXPECT_TRUE(matches("^x}$", "x}"));
  EXPECT_TRUE(matches("^]$", "]"));
  EXPECT_TRUE(matches("^[]a]$", "]") == false);  // ECMA: [] then a] -> never matches
  EXPECT_TRUE(matches("^[a\\]]+$", "a]a"));
  EXPECT_TRUE(matches("^[[]$", "["));           // '[' in a class is a literal, not POSIX
  EXPECT_FALSE(matches("^[[:alpha:]]$", "a"));  // ... so this is "[[:alph]" then "]"
  EXPECT_TRUE(matches("^[\\d-z]+$", "1-z"));    // Annex B: '-' after a class escape is literal
  EXPECT_TRUE(matches("^[\\b]$", "\b"));        // \b in a class is backspace
  EXPECT_TRUE(matches("\\bfoo\\b", "a foo b"));
  EXPECT_TRUE(matches("^(?<year>\\d{4})-(?:\\d\\d)$", "2024-05"));
  EXPECT_TRUE(matches("^\\p{L}+$", "\u00e9t\u00e9"));
  EXPECT_TRUE(matches("^\\p{Letter}+$", "abc"));
  EXPECT_TRUE(matches("^\\p{Script=Greek}+$", "\u03b1\u03b2"));
  EXPECT_FALSE(matches("^\\P{L}$", "a"));
  EXPECT_TRUE(matches("^\\/\\.\\*$", "/.*"));
  EXPECT_TRUE(matches("^a*?b+?c??$", "aabbc"));
  EXPECT_FALSE(matches("^[^abc]$", "b"));
  EXPECT_TRUE(matches("^[^abc]$", "\u00e9"));
  EXPECT_TRUE(matches("^[\\u0041-\\u0043]+$", "ABC"));
  // Linear time on inputs that make backtracking engines explode.
  EXPECT_FALSE(matches("^(a+)+$", std::string(5000, 'a') + "!"));
}

TEST(JsonSchema, EcmaToRe2Translation) {
  EXPECT_EQ(*ecma_to_re2("^a.b$"), "^a[^\\n\\r\\x{2028}\\x{2029}]b$");
  EXPECT_EQ(*ecma_to_re2("(?<n>x)"), "(?P<n>x)");
  EXPECT_EQ(*ecma_to_re2("a{2,3}?"), "a{2,3}?");
  EXPECT_EQ(*ecma_to_re2("a{x"), "a\\{x");
  EXPECT_TRUE(check_ecma_regex("^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$").ok());
  EXPECT_EQ(*ecma_to_re2("^\\0$"), "^\\x{0}$");
  EXPECT_FALSE(check_ecma_regex("\xff").ok());  // not UTF-8
  EXPECT_FALSE(check_ecma_regex("\xe2\x82").ok());
}

// ---------------------------------------------------------------------------------------------
// $ref resolution, cycles and nesting limits.

TEST(JsonSchema, RefCyclesAreRejectedNotLooped) {
  std::string m = compile_error(R"({"$ref": "#"})");
  EXPECT_TRUE(contains(m, "schema recursion that never reaches a value: # -> #")) << m;
  m = compile_error(
      R"({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}})");
  EXPECT_TRUE(contains(m, "#/definitions/a -> #/definitions/b -> #/definitions/a")) << m;
  m = compile_error(R"({"allOf": [{"$ref": "#"}]})");
  EXPECT_TRUE(contains(m, "never reaches a value")) << m;
  m = compile_error(R"({"definitions": {"a": {"not": {"anyOf": [{"$ref": "#/definitions/a"}]}}}})");
  EXPECT_TRUE(contains(m, "never reaches a value")) << m;
  m = compile_error(R"({"if": {"$ref": "#"}, "then": {}})");
  EXPECT_TRUE(contains(m, "never reaches a value")) << m;
  CompileOptions lax;
  lax.strict = false;
  compile_error(R"({"$ref": "#"})", lax);

  // Recursion through a child value is fine: it ends with the instance.
  auto list = must_compile(R"({"type": "object", "required": ["v"],
      "properties": {"v": {"type": "integer"}, "next": {"$ref": "#"}}, "additionalProperties": false})");
  EXPECT_TRUE(is_valid(list, R"({"v": 1, "next": {"v": 2, "next": {"v": 3}}})"));
  ValidationError e = first_error(list, R"({"v": 1, "next": {"v": 2, "next": {"v": "x"}}})");
  EXPECT_EQ(e.instance_path, "/next/next/v");
  auto names = must_compile(R"({"propertyNames": {"$ref": "#"}, "maxLength": 3})");
  EXPECT_TRUE(is_valid(names, R"({"abc": 1})"));
  EXPECT_FALSE(is_valid(names, R"({"abcd": 1})"));
}

TEST(JsonSchema, RefResolution) {
  auto s = must_compile(R"({
    "definitions": {
      "tilde~field": {"type": "integer"}, "slash/field": {"type": "integer"},
      "percent%field": {"type": "integer"}, "quote\"d": {"type": "integer"},
      "pos": {"$ref": "#/definitions/int"}, "int": {"type": "integer", "minimum": 0},
      "anchored": {"$id": "#thing", "type": "string"}
    },
    "properties": {
      "a": {"$ref": "#/definitions/tilde~0field"}, "b": {"$ref": "#/definitions/slash~1field"},
      "c": {"$ref": "#/definitions/percent%25field"}, "d": {"$ref": "#/definitions/quote%22d"},
      "e": {"$ref": "#/definitions/pos"}, "f": {"$ref": "#thing"},
      "g": {"$ref": "#/properties/e"}, "h": {"items": [{"type": "null"}, {"$ref": "#/properties/h/items/0"}]}
    }
  })");
  EXPECT_TRUE(is_valid(
      s, R"({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": "x", "g": 0, "h": [null, null]})"));
  for (const char* bad : {R"({"a": "x"})", R"({"b": "x"})", R"({"c": "x"})", R"({"d": "x"})",
                          R"({"e": -1})", R"({"f": 1})", R"({"g": -1})", R"({"h": [null, 1]})"}) {
    EXPECT_FALSE(is_valid(s, bad)) << bad;
  }
  EXPECT_EQ(first_error(s, R"({"e": -1})").schema_path, "#/definitions/int/minimum");

  // $id changes the base URI of what it contains.
  auto ids = must_compile(R"({
    "$id": "http://example.com/root.json",
    "definitions": {
      "A": {"$id": "other.json", "definitions": {"B": {"$id": "#b", "type": "integer"}}},
      "C": {"$id": "http://example.com/nested/c.json", "type": "boolean"}
    },
    "properties": {
      "x": {"$ref": "other.json#b"}, "y": {"$ref": "http://example.com/other.json#/definitions/B"},
      "z": {"$ref": "nested/c.json"}, "w": {"$ref": "root.json#/properties/x"}
    }
  })");
  EXPECT_TRUE(is_valid(ids, R"({"x": 1, "y": 2, "z": true, "w": 3})"));
  EXPECT_FALSE(is_valid(ids, R"({"x": "1"})"));
  EXPECT_FALSE(is_valid(ids, R"({"y": "2"})"));
  EXPECT_FALSE(is_valid(ids, R"({"z": 1})"));
  EXPECT_FALSE(is_valid(ids, R"({"w": "3"})"));

  // The built-in draft-07 meta-schema.
  auto meta = must_compile(R"({"$ref": "http://json-schema.org/draft-07/schema#"})");
  EXPECT_TRUE(is_valid(meta, R"({"type": "object", "properties": {"a": {"minLength": 1}}})"));
  EXPECT_FALSE(is_valid(meta, R"({"properties": {"a": {"minLength": -1}}})"));
  EXPECT_FALSE(is_valid(meta, R"({"type": "strnig"})"));
}

TEST(JsonSchema, UnresolvableAndRemoteRefsAreRejected) {
  std::string m = compile_error(R"({"properties": {"a": {"$ref": "#/definitions/missing"}}})");
  EXPECT_TRUE(contains(m, "#/properties/a: \"$ref\" \"#/definitions/missing\" does not resolve"))
      << m;
  m = compile_error(R"({"$ref": "http://example.com/schemas/user.json"})");
  EXPECT_TRUE(contains(m, "remote reference")) << m;
  EXPECT_TRUE(contains(m, "not supported")) << m;
  m = compile_error(R"({"$ref": "user.json"})");
  EXPECT_TRUE(contains(m, "does not resolve")) << m;
  m = compile_error(R"({"$ref": "#nope"})");
  EXPECT_TRUE(contains(m, "no \"$id\": \"#nope\"")) << m;
  m = compile_error(R"({"$ref": "#/definitions/a~2"})");
  EXPECT_TRUE(contains(m, "~")) << m;
  m = compile_error(R"({"items": [{}], "properties": {"a": {"$ref": "#/items/01"}}})");
  EXPECT_TRUE(contains(m, "does not resolve")) << m;
}

std::string nested_items(int levels) {
  std::string s;
  for (int i = 0; i < levels; ++i) s += R"({"items": )";
  s += "{}";
  for (int i = 0; i < levels; ++i) s += "}";
  return s;
}

TEST(JsonSchema, SchemaNestingIsLimited) {
  must_compile(nested_items(64));
  std::string m = compile_error(nested_items(65));
  EXPECT_TRUE(contains(m, "nested deeper than 64 levels")) << m;
  CompileOptions deep;
  deep.max_depth = 200;
  must_compile(nested_items(150), deep);
  // simdjson's own depth limit (1024) applies to the document before that.
  EXPECT_TRUE(contains(compile_error(nested_items(2000)), "not valid JSON"));
}

TEST(JsonSchema, DeepInstancesNeverOverflowTheStack) {
  auto s = must_compile(R"({"type": ["array", "integer"], "items": {"$ref": "#"}})");
  auto nested = [](int depth) {
    return std::string(static_cast<size_t>(depth), '[') + "1" +
           std::string(static_cast<size_t>(depth), ']');
  };
  EXPECT_TRUE(is_valid(s, nested(500)));
  // Deeper than kMaxEvalDepth (but within simdjson's 1024): a clean failure, keyword "depth".
  ValidationError e = first_error(s, nested(1020));
  EXPECT_EQ(e.keyword, "depth");
  EXPECT_TRUE(contains(e.message, "deeper than 1000")) << e.message;
  EXPECT_EQ(std::count(e.instance_path.begin(), e.instance_path.end(), '/'), 1001);
}

// ---------------------------------------------------------------------------------------------
// Values.

TEST(JsonSchema, NumbersCompareByValue) {
  auto integer = must_compile(R"({"type": "integer"})");
  EXPECT_TRUE(is_valid(integer, "1.0"));
  EXPECT_TRUE(is_valid(integer, "1e3"));
  EXPECT_TRUE(is_valid(integer, "-0"));
  EXPECT_TRUE(is_valid(integer, "18446744073709551615"));
  EXPECT_FALSE(is_valid(integer, "1.5"));
  auto c = must_compile(R"({"const": {"a": [1, 2.0]}})");
  EXPECT_TRUE(is_valid(c, R"({"a": [1.0, 2]})"));
  EXPECT_FALSE(is_valid(c, R"({"a": [1, 2, 3]})"));
  // Exact comparisons beyond 2^53.
  auto big = must_compile(R"({"maximum": 9223372036854775806})");
  EXPECT_TRUE(is_valid(big, "9223372036854775806"));
  EXPECT_FALSE(is_valid(big, "9223372036854775807"));
  EXPECT_FALSE(is_valid(big, "18446744073709551615"));
  EXPECT_TRUE(is_valid(big, "9.2e18"));
  EXPECT_FALSE(is_valid(big, "9.3e18"));
  auto ubig = must_compile(R"({"exclusiveMinimum": 18446744073709551614})");
  EXPECT_TRUE(is_valid(ubig, "18446744073709551615"));
  EXPECT_FALSE(is_valid(ubig, "18446744073709551614"));
  EXPECT_FALSE(is_valid(ubig, "-1"));
  auto neg = must_compile(R"({"minimum": -1.5, "exclusiveMaximum": 0})");
  EXPECT_TRUE(is_valid(neg, "-1"));
  EXPECT_TRUE(is_valid(neg, "-1.5"));
  EXPECT_FALSE(is_valid(neg, "-2"));
  EXPECT_FALSE(is_valid(neg, "0"));
  EXPECT_FALSE(is_valid(neg, "0.0"));

  auto cents = must_compile(R"({"multipleOf": 0.01})");
  EXPECT_TRUE(is_valid(cents, "19.99"));
  EXPECT_TRUE(is_valid(cents, "0.07"));
  EXPECT_FALSE(is_valid(cents, "19.999"));
  auto half = must_compile(R"({"multipleOf": 0.5})");
  EXPECT_TRUE(is_valid(half, "1e308"));
  auto seven = must_compile(R"({"multipleOf": 7})");
  EXPECT_TRUE(is_valid(seven, "-9223372036854775807"));  // -7 * 1317624576693539401
  EXPECT_TRUE(is_valid(seven, "9223372036854775807"));   // 2^63 - 1 = 7 * 1317624576693539401
  EXPECT_FALSE(is_valid(seven, "9223372036854775806"));
  EXPECT_TRUE(is_valid(seven, "14.0"));
  EXPECT_FALSE(is_valid(seven, "14.5"));
  EXPECT_EQ(first_error(seven, "15").message, "must be a multiple of 7, got 15");
}

TEST(JsonSchema, StringLengthCountsCodePoints) {
  auto s = must_compile(R"({"minLength": 2, "maxLength": 3})");
  EXPECT_TRUE(is_valid(s, "\"\U0001F4A9\U0001F4A9\""));  // 8 bytes, 2 code points
  EXPECT_TRUE(is_valid(s, "\"\u00e9\u00e9\u00e9\""));
  EXPECT_FALSE(is_valid(s, "\"\U0001F4A9\""));
  EXPECT_FALSE(is_valid(s, "\"\u00e9\u00e9\u00e9\u00e9\""));
  EXPECT_EQ(first_error(s, "\"\U0001F4A9\"").message, "must be at least 2 characters long, got 1");
}

TEST(JsonSchema, UniqueItemsAndEnumsUseDeepEquality) {
  auto u = must_compile(R"({"uniqueItems": true})");
  EXPECT_FALSE(is_valid(u, R"([{"a": 1, "b": [1, 2]}, {"b": [1.0, 2], "a": 1.0}])"));
  EXPECT_TRUE(is_valid(u, R"([1, true, "1", [1], {"1": 1}, null, 0, false])"));
  // Large arrays take the sorting path.
  std::string big = "[";
  for (int i = 0; i < 100; ++i) big += std::to_string(i) + ",";
  EXPECT_TRUE(is_valid(u, big.substr(0, big.size() - 1) + "]"));
  std::string dup = big + "{\"x\": 5}, 40.0]";
  ValidationError e = first_error(u, dup);
  EXPECT_EQ(e.message, "must not contain duplicates, items 40 and 101 are equal");

  std::string many = R"({"enum": [)";
  for (int i = 0; i < 50; ++i) many += "\"v" + std::to_string(i) + "\",";
  many += R"(1, null, {"a": [1]}]})";
  auto en = must_compile(many);
  EXPECT_TRUE(is_valid(en, "\"v17\""));
  EXPECT_TRUE(is_valid(en, "1.0"));
  EXPECT_TRUE(is_valid(en, "null"));
  EXPECT_TRUE(is_valid(en, R"({"a": [1.0]})"));
  EXPECT_FALSE(is_valid(en, "\"v50\""));
  EXPECT_FALSE(is_valid(en, "2"));
  EXPECT_FALSE(is_valid(en, "false"));
}

TEST(JsonSchema, ManyPropertiesAndRequiredNames) {
  // More than the linear-scan threshold, and more required names than the presence bitmap.
  std::string props, required, object;
  for (int i = 0; i < 1100; ++i) {
    std::string name = "p" + std::to_string(i);
    props += (i ? ",\"" : "\"") + name + "\": {\"type\": \"integer\"}";
    required += (i ? ",\"" : "\"") + name + "\"";
    object += (i ? ",\"" : "\"") + name + "\": " + std::to_string(i);
  }
  auto s = must_compile("{\"properties\": {" + props + "}, \"required\": [" + required +
                        "], \"additionalProperties\": false}");
  EXPECT_TRUE(is_valid(s, "{" + object + "}"));
  std::string missing_early = "{" + object.substr(object.find(',') + 1) + "}";  // no p0
  EXPECT_EQ(first_error(s, missing_early).message, "missing required property \"p0\"");
  std::string missing_late = "{" + object.substr(0, object.rfind(',')) + "}";  // no p1099
  EXPECT_EQ(first_error(s, missing_late).message, "missing required property \"p1099\"");
  EXPECT_EQ(first_error(s, "{" + object + ", \"p500x\": 1}").instance_path, "/p500x");
}

// ---------------------------------------------------------------------------------------------
// Formats.

TEST(JsonSchema, FormatsAreAnnotationsUnlessAsked) {
  auto annotate = must_compile(R"({"format": "email"})");
  EXPECT_TRUE(is_valid(annotate, "\"not an email\""));
  CompileOptions assert_formats;
  assert_formats.validate_formats = true;
  auto checked = must_compile(R"({"format": "email"})", assert_formats);
  EXPECT_FALSE(is_valid(checked, "\"not an email\""));
  EXPECT_TRUE(is_valid(checked, "\"joe.bloggs@example.com\""));
  EXPECT_TRUE(is_valid(checked, "12"));  // formats apply to strings only
  EXPECT_EQ(first_error(checked, "\"x\"").message, "must be a valid email, got \"x\"");
}

TEST(JsonSchema, FormatCheckers) {
  struct Case {
    Format f;
    const char* s;
    bool ok;
  };
  for (const Case& c : {
           Case{Format::kDateTime, "1963-06-19T08:30:06.283185Z", true},
           Case{Format::kDateTime, "1963-06-19t08:30:06z", true},
           Case{Format::kDateTime, "1990-12-31T15:59:60-08:00", true},
           Case{Format::kDateTime, "1990-12-31T15:59:60+08:00", false},
           Case{Format::kDateTime, "1963-06-19 08:30:06Z", false},
           Case{Format::kDateTime, "2020-02-30T00:00:00Z", false},
           Case{Format::kDateTime, "1963-06-19T08:30:06", false},
           Case{Format::kDate, "2020-02-29", true},
           Case{Format::kDate, "2021-02-29", false},
           Case{Format::kDate, "1900-02-29", false},
           Case{Format::kDate, "2000-02-29", true},
           Case{Format::kDate, "2020-1-01", false},
           Case{Format::kDate, "2020-13-01", false},
           Case{Format::kTime, "08:30:06Z", true},
           Case{Format::kTime, "23:59:60Z", true},
           Case{Format::kTime, "22:59:60Z", false},
           Case{Format::kTime, "01:29:60+01:30", true},
           Case{Format::kTime, "23:29:60+23:30", true},
           Case{Format::kTime, "15:59:60-08:00", true},
           Case{Format::kTime, "00:29:60-23:30", true},
           Case{Format::kTime, "23:59:60-01:00", false},
           Case{Format::kTime, "12:34:56-00:00", true},
           Case{Format::kTime, "08:30:06-8:000", false},
           Case{Format::kTime, "24:00:00Z", false},
           Case{Format::kTime, "01:02:03+24:00", false},
           Case{Format::kTime, "01:02:03Z+00:30", false},
           Case{Format::kTime, "08:30:06 PST", false},
           Case{Format::kTime, "01:01:01,1111", false},
           Case{Format::kTime, "12:00:00", false},
           Case{Format::kTime, "1\u09e8:00:00Z", false},
           Case{Format::kTime, "2020-11-28T23:55:45Z", false},
           Case{Format::kEmail, "te~st@example.com", true},
           Case{Format::kEmail, "\"joe bloggs\"@example.com", true},
           Case{Format::kEmail, "joe.bloggs@[127.0.0.1]", true},
           Case{Format::kEmail, "joe.bloggs@[IPv6:::1]", true},
           Case{Format::kEmail, ".test@example.com", false},
           Case{Format::kEmail, "te..st@example.com", false},
           Case{Format::kEmail, "test@-example.com", false},
           Case{Format::kEmail, "2962", false},
           Case{Format::kIdnEmail, "\uc2e4\ub840@\uc2e4\ub840.\ud14c\uc2a4\ud2b8", true},
           Case{Format::kHostname, "www.example.com", true},
           Case{Format::kHostname, "xn--4gbwdl.xn--wgbh1c", true},
           Case{Format::kHostname, "-a-host-name-that-starts-with--", false},
           Case{Format::kHostname, "not_a_valid_host_name", false},
           Case{Format::kHostname,
                "a-vvvvvvvvvvvvvvvveeeeeeeeeeeeeeeerrrrrrrrrrrrrrrryyyyyyyyyyyyyyyy-long-host-name-"
                "component",
                false},
           Case{Format::kIpv4, "192.168.0.1", true},
           Case{Format::kIpv4, "127.0.0.0.1", false},
           Case{Format::kIpv4, "256.256.256.256", false},
           Case{Format::kIpv4, "087.10.0.1", false},
           Case{Format::kIpv4, "1.2.3", false},
           Case{Format::kIpv4, "1.2.3.\u09e8", false},
           Case{Format::kIpv6, "::1", true},
           Case{Format::kIpv6, "::", true},
           Case{Format::kIpv6, "1:2:3:4:5:6:7:8", true},
           Case{Format::kIpv6, "1::d6:192.168.0.1", true},
           Case{Format::kIpv6, "::ffff:192.168.0.1", true},
           Case{Format::kIpv6, "12345::", false},
           Case{Format::kIpv6, "1:1:1:1:1:1:1:1:1", false},
           Case{Format::kIpv6, "1::1::1", false},
           Case{Format::kIpv6, ":2:3:4:5:6:7:8", false},
           Case{Format::kIpv6, "1:2:3:4:5:6:7:", false},
           Case{Format::kIpv6, "fe80::a%eth1", false},
           Case{Format::kIpv6, "1:2:3:4:5:6:7:8::", false},
           Case{Format::kUri, "http://foo.bar/?baz=qux#quux", true},
           Case{Format::kUri, "http://[2001:db8::7]/c=GB?objectClass?one", true},
           Case{Format::kUri, "urn:oasis:names:specification:docbook:dtd:xml:4.1.2", true},
           Case{Format::kUri, "mailto:John.Doe@example.com", true},
           Case{Format::kUri, "//foo.bar/?baz=qux#quux", false},
           Case{Format::kUri, "/abc", false},
           Case{Format::kUri, "http:// shouldfail.com", false},
           Case{Format::kUri, "http://example.com/%zz", false},
           Case{Format::kUri, "http://\u00e9.com/", false},
           Case{Format::kIri, "http://\u00e9.com/\u00e9", true},
           Case{Format::kUriReference, "/abc", true},
           Case{Format::kUriReference, "#fragment", true},
           Case{Format::kUriReference, "\\\\WINDOWS\\fileshare", false},
           Case{Format::kUriTemplate, "http://example.com/dictionary/{term:1}/{term}", true},
           Case{Format::kUriTemplate, "http://example.com/dictionary/{term:1}/{term", false},
           Case{Format::kUriTemplate, "{+path,x}/here{?q*}", true},
           Case{Format::kJsonPointer, "/foo/bar~0/baz~1/%a", true},
           Case{Format::kJsonPointer, "", true},
           Case{Format::kJsonPointer, "/foo/bar~", false},
           Case{Format::kJsonPointer, "#/", false},
           Case{Format::kRelativeJsonPointer, "0/foo/bar", true},
           Case{Format::kRelativeJsonPointer, "2#", true},
           Case{Format::kRelativeJsonPointer, "01/a", false},
           Case{Format::kRelativeJsonPointer, "-1/foo", false},
           Case{Format::kRelativeJsonPointer, "0##", false},
           Case{Format::kRelativeJsonPointer, "", false},
           Case{Format::kRelativeJsonPointer, "0+1/foo", true},
           Case{Format::kRelativeJsonPointer, "0-1#", true},
           Case{Format::kRelativeJsonPointer, "0-01", false},
           Case{Format::kRelativeJsonPointer, "0++1", false},
           Case{Format::kRelativeJsonPointer, "0+", false},
           Case{Format::kRelativeJsonPointer, "1#/foo/bar", false},
           Case{Format::kRelativeJsonPointer, "1\n", false},
           Case{Format::kRelativeJsonPointer, "0//", true},
           Case{Format::kJsonPointer, "/~0~", false},
           Case{Format::kJsonPointer, "/~\uff10", false},
           Case{Format::kJsonPointer, "/foo/-/bar", true},
           Case{Format::kIpv4, "0x7f000001", false},
           Case{Format::kIpv4, "192.168.1.0/24", false},
           Case{Format::kIpv4, "1.2.3.4.", false},
           Case{Format::kIpv4, "1.2.3. 4", false},
           Case{Format::kDateTime, "1998-12-31T15:59:60.123-08:00", true},
           Case{Format::kDateTime, "2016-12-31T24:59:60+01:00", false},
           Case{Format::kDateTime, "1985-04-12T23:20:50+01", false},
           Case{Format::kDateTime, "1985-04-12T23:20:50Z\n", false},
           Case{Format::kDateTime, "1963-06-19T08:30:06.28123+01:00Z", false},
           Case{Format::kDateTime, "+11963-06-19T08:30:06.283185Z", false},
           Case{Format::kDateTime, "1985-04-12T00:59:59.999999999999999Z", true},
           Case{Format::kDateTime, "0100-02-29T00:00:00Z", false},
           Case{Format::kDateTime, "0400-02-29T00:00:00Z", true},
           Case{Format::kRegex, "([abc])+\\s+$", true},
           Case{Format::kRegex, "^(abc]", false},
           Case{Format::kRegex, "^\\S(|(.|\\n)*\\S)\\Z", false},
       }) {
    EXPECT_EQ(check_format(c.f, c.s), c.ok) << c.s;
  }
  EXPECT_EQ(format_from_name("date-time"), Format::kDateTime);
  EXPECT_FALSE(format_from_name("uuid").has_value());
  EXPECT_FALSE(format_is_checked(Format::kIdnHostname));
}

// ---------------------------------------------------------------------------------------------
// Runtime properties.

constexpr std::string_view kEventSchema = R"({
  "type": "object",
  "required": ["id", "ts", "user", "amount", "tags"],
  "additionalProperties": false,
  "properties": {
    "id": {"type": "string", "pattern": "^[a-f0-9-]{8,}$"},
    "ts": {"type": "integer", "minimum": 0},
    "kind": {"enum": ["click", "view", "buy", "refund", "signup", "login", "logout", "search", "share"]},
    "user": {"$ref": "#/definitions/user"},
    "amount": {"type": "number", "multipleOf": 0.01, "exclusiveMinimum": 0},
    "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": true,
             "maxItems": 10},
    "meta": {"type": "object", "patternProperties": {"^x-": {"type": "string"}},
             "propertyNames": {"maxLength": 20}}
  },
  "dependencies": {"kind": ["user"]},
  "definitions": {
    "user": {"type": "object", "required": ["name"],
             "properties": {"name": {"type": "string", "maxLength": 64},
                            "age": {"type": "integer", "minimum": 0, "maximum": 150}},
             "if": {"required": ["age"]}, "then": {"properties": {"age": {"minimum": 13}}}}
  }
})";

constexpr std::string_view kEvent = R"({"id": "deadbeef-0001", "ts": 1700000000000, "kind": "buy",
  "user": {"name": "Ann", "age": 34}, "amount": 19.99, "tags": ["a", "b", "c"],
  "meta": {"x-source": "web", "x-campaign": "spring"}})";

TEST(JsonSchema, ValidDoesNotAllocate) {
  if (!SPATE_COUNT_ALLOCS) GTEST_SKIP() << "allocation counting is off in sanitizer builds";
  auto s = must_compile(kEventSchema);
  Doc d(kEvent);
  ASSERT_TRUE(s.valid(d.root()));  // warm up (RE2 builds its DFA states lazily)
  ValidationError e;
  ASSERT_TRUE(s.validate(d.root(), &e));
  g_allocs = 0;
  g_count_allocs = true;
  bool all = true;
  for (int i = 0; i < 1000; ++i) all = s.valid(d.root()) && s.validate(d.root(), &e) && all;
  g_count_allocs = false;
  EXPECT_TRUE(all);
  EXPECT_EQ(g_allocs.load(), 0);

  // Positive control: the reporting pass (invalid instance) does allocate, and is counted.
  Doc bad(R"({"id": "x"})");
  g_allocs = 0;
  g_count_allocs = true;
  bool ok = s.validate(bad.root(), &e);
  g_count_allocs = false;
  EXPECT_FALSE(ok);
  EXPECT_GT(g_allocs.load(), 0);
}

TEST(JsonSchema, ConcurrentValidationFromManyThreads) {
  auto s = must_compile(kEventSchema);
  auto copy = s;  // copies share the compiled tree
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Doc good(kEvent);
      Doc bad(R"({"id": "deadbeef-0001", "ts": -1, "user": {"name": "Ann"}, "amount": 1,
                  "tags": []})");
      const CompiledSchema& mine = t % 2 ? s : copy;
      for (int i = 0; i < 2000; ++i) {
        ValidationError e;
        if (!mine.valid(good.root())) ++wrong;
        if (mine.validate(bad.root(), &e) || e.instance_path != "/ts") ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(JsonSchema, CompileFile) {
  fs::path dir = fs::temp_directory_path() / ("spate_schema_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream(dir / "ok.json") << R"({"type": "integer"})";
    std::ofstream(dir / "bad.json") << R"({"type": "integr"})";
  }
  auto ok = CompiledSchema::compile_file((dir / "ok.json").string());
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_TRUE(is_valid(*ok, "3"));
  auto bad = CompiledSchema::compile_file((dir / "bad.json").string());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Errc::kInvalidArgument);
  EXPECT_TRUE(contains(bad.status().message(), "bad.json: invalid JSON Schema: #: unknown type"))
      << bad.status().message();
  auto missing = CompiledSchema::compile_file((dir / "missing.json").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Errc::kNotFound) << missing.status().to_string();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace spate::schema
