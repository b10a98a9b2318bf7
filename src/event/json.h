// Small JSON helpers over simdjson used by the CLI and (later) the ingest stages.
//
// Contract: pure functions, thread-safe (each call uses a thread-local parser). Input is never
// trusted: invalid JSON yields an error Status, never a crash.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "spate/status.h"

namespace spate::json {

/// OK if `doc` is one complete, valid JSON value; else InvalidArgument with simdjson's reason.
Status validate(std::string_view doc);

/// The value at a dotted field path ("user.id") of a JSON object document, rendered as a key:
/// strings unquoted, numbers/bools/null as their JSON text, objects/arrays as minified JSON.
/// nullopt if the path is absent.
Result<std::optional<std::string>> field_as_string(std::string_view doc, std::string_view path);

/// The member at the dotted path `path` ("a.b.c") of an object element; false if absent (or a
/// part on the way is not an object). No allocation.
bool find_path(simdjson::dom::element e, std::string_view path, simdjson::dom::element* out);

/// RFC 3339 date-time ("2026-11-29T10:00:00.123Z", "...+02:00"; 't' and ' ' also accepted as
/// the separator; fractions beyond milliseconds truncated) to Unix epoch milliseconds. False if
/// malformed.
bool parse_rfc3339(std::string_view s, int64_t* ms);

/// An event time: epoch milliseconds as a JSON integer or double, or an RFC 3339 string.
/// False for any other value.
bool event_time_ms(const simdjson::dom::element& e, int64_t* ms);

}  // namespace spate::json
