// ECMA 262 regular expressions (the dialect of JSON Schema's "pattern", "patternProperties" and
// format "regex") translated to RE2 syntax, so that matching runs in linear time on untrusted
// input.
//
// Contract: pure functions, thread-safe. The pattern is read as UTF-8 and matched by Unicode code
// point (like ECMA 262 with the `u` flag). What ECMA 262 can say and RE2 can too is translated
// so that it means the same thing: `.` excludes \n \r U+2028 U+2029, `\s`/`\S` use ECMA's
// whitespace set, `\uXXXX` (and surrogate pairs) / `\u{...}` / `\cX` / `\xHH` / `\0` escapes become
// code points, `[]` matches nothing and `[^]` anything, `(?<name>` becomes `(?P<name>`, a `{` that
// is not a quantifier is a literal. What RE2 cannot do is an error naming the construct:
// lookahead/lookbehind, backreferences, octal escapes; so are escapes ECMA 262 does not define
// (`\a`, `\z`, `\Q`, ...) and syntax errors. On success the result is a valid RE2 pattern unless
// RE2's own limits reject it (e.g. a repetition count above 1000), which regex_compile_error()
// reports.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "spate/status.h"

namespace re2 {
class RE2;  // <re2/re2.h>; only the .cc files that match need the full type.
}  // namespace re2

namespace spate::schema {

/// The RE2 pattern equivalent to the ECMA 262 `pattern` (no flags), or InvalidArgument.
Result<std::string> ecma_to_re2(std::string_view pattern);

/// Translate and compile with the options every schema regex uses (UTF-8, no captures, errors
/// returned rather than logged). The shared_ptr carries its deleter, so holders need not see RE2.
Result<std::shared_ptr<const re2::RE2>> compile_ecma_regex(std::string_view pattern);

/// OK if `pattern` translates and compiles with RE2 (the options json_schema uses); else
/// InvalidArgument with the reason. Allocates; used for format "regex" and by tests.
Status check_ecma_regex(std::string_view pattern);

}  // namespace spate::schema
