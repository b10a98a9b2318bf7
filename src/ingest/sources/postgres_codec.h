// The postgres source's pure parts: how a PostgreSQL column value (in the text format of a
// session with DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601, bytea_output hex) becomes
// JSON, how the polling query is built and checked, and the cursor checkpoint's file format.
//
// Contract: pure functions without I/O or libpq, thread-safe. Conversions never fail: a value
// that cannot be represented as the natural JSON type (NaN, numerics beyond double precision,
// BC timestamps, malformed input) falls back to a JSON string of PostgreSQL's text.
// decode_checkpoint() returns kCorruption with a reason for a file it cannot read.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spate/status.h"

namespace spate::ingest::pg {

/// How a column's text value is rendered, chosen from its type OID.
enum class ValueKind {
  kInteger,      // int2, int4, int8, oid: JSON number
  kFloat,        // float4, float8: JSON number; NaN/Infinity as strings
  kNumeric,      // numeric: JSON number when a double holds it exactly, else string
  kBool,         // JSON true/false
  kJson,         // json, jsonb: embedded (whitespace removed)
  kTimestampTz,  // RFC 3339 string with Z or the offset
  kTimestamp,    // timestamp without time zone: RFC 3339 string, taken as UTC (Z)
  kBytea,        // base64 string (RFC 4648, padded)
  kString,       // everything else: PostgreSQL's text as a JSON string
};

ValueKind value_kind(uint32_t type_oid);

/// A column of a result.
struct Column {
  std::string name;
  uint32_t type_oid = 0;
};

/// The session settings the text formats above assume; run once after connecting. The session
/// is also read-only, so that a mistaken query is harmless.
extern const char* const kSessionSetup;

/// Rows of one result as JSON objects {"column": value, ...} (NULL as null), typed as above.
class RowJson {
 public:
  /// The result's columns (once per result).
  void reset(const std::vector<Column>& columns);
  bool empty() const { return keys_.empty(); }
  /// Append one row's object; `values` in column order, nullopt for NULL.
  void append(std::string& out, const std::vector<std::optional<std::string_view>>& values) const;

 private:
  std::vector<std::string> keys_;  // "\"name\":"
  std::vector<ValueKind> kinds_;
};

/// Append the JSON for one non-NULL value (`text` is PostgreSQL's text output).
void append_value_json(std::string& out, ValueKind kind, std::string_view text);

/// "2024-01-02 03:04:05.5+00" -> "2024-01-02T03:04:05.5Z"; `with_tz` false appends Z.
/// Values RFC 3339 cannot hold (infinity, BC) are returned unchanged.
std::string timestamp_to_rfc3339(std::string_view text, bool with_tz);

/// Standard base64 with padding.
std::string base64_encode(std::string_view bytes);

/// Remove insignificant whitespace from valid JSON text. False if the text is not balanced.
bool minify_json(std::string_view in, std::string* out);

/// True if a PostgreSQL numeric's text converts to a double and back without loss (at most
/// 15 significant digits, or an integer that fits in int64).
bool numeric_fits_json_number(std::string_view text);

/// An identifier in double quotes ("a""b" for a"b): case-sensitive, any characters.
std::string quote_ident(std::string_view id);
/// "schema.table" -> "schema"."table" (each dot-separated part quoted).
std::string quote_qualified(std::string_view name);

/// The query for `table` + `cursor_column` (identifiers quoted, so case-sensitive).
std::string build_table_query(std::string_view table, std::string_view cursor_column,
                              int64_t batch_rows);

/// Check a user query's placeholders: it must use $1 (the cursor) and no other $n.
/// Returns an empty string if fine, else the problem.
std::string check_query_placeholders(std::string_view query);

/// The cursor checkpoint (<state_dir>/postgres.checkpoint, JSON).
struct Checkpoint {
  std::string cursor;       // text of the last acknowledged row's cursor value
  std::string cursor_type;  // integer | timestamp | text (as configured when written)
  std::string cursor_column;
  /// Log end offsets (topic -> per partition) before which every record of this source is
  /// covered by `cursor`: records after them may be from an unacknowledged batch.
  std::map<std::string, std::vector<int64_t>> offsets;
};

std::string encode_checkpoint(const Checkpoint& c);
Result<Checkpoint> decode_checkpoint(std::string_view text);

/// Parse a decimal int64 (optional leading '-'); false on anything else or overflow.
bool parse_int64(std::string_view text, int64_t* out);

}  // namespace spate::ingest::pg
