// Small JSON helpers over simdjson used by the CLI and (later) the ingest stages.
//
// Contract: pure functions, thread-safe (each call uses a thread-local parser). Input is never
// trusted: invalid JSON yields an error Status, never a crash.
#pragma once

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

}  // namespace spate::json
