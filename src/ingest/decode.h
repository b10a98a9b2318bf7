// Request-body decoding for ingestion: decompression (gzip, zstd) with a size cap, and splitting
// a body into events (one JSON object, a JSON array, or NDJSON) without copying.
//
// Contract: pure functions, thread-safe. Input is untrusted: every failure is a Status (or a
// per-event reason), never a crash; decompression stops at `max_bytes` (decompression bombs).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "spate/ingestion.h"
#include "spate/status.h"

namespace spate::ingest {

/// Decompress `body` per a Content-Encoding value ("", "identity", "gzip", "x-gzip", "zstd").
/// kInvalidArgument for corrupt data, kOutOfRange when the output exceeds max_bytes,
/// kNotFound for an unsupported encoding.
Result<std::string> decompress(std::string_view encoding, std::string_view body, size_t max_bytes);

/// A piece of the body that should be one event.
struct RawEvent {
  std::string_view json;  // the event's bytes (trimmed)
  size_t index;           // position in the request
};

/// Split a body into candidate events. For kAuto: a body whose first non-space byte is '['
/// is a JSON array; otherwise one line = one event when it has several non-empty lines, else one
/// object. Array splitting tracks strings and nesting only; each piece is fully parsed later.
/// Errors (whole body unusable): empty body, unterminated array, garbage after the array.
Status split_events(std::string_view body, BodyFormat format, std::vector<RawEvent>* out);

}  // namespace spate::ingest
