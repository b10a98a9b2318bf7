// CSV for the file source: record framing and row-to-JSON conversion (RFC 4180).
//
// Contract: pure functions, thread-safe, no allocation beyond their outputs. Input is untrusted:
// malformed CSV never crashes; it yields a reason instead.
//  - Fields are separated by ',' and records by '\n' (an optional '\r' before it is dropped).
//  - A field that starts with '"' is quoted: it ends at the next lone '"', "" stands for one
//    '"', and commas and line breaks inside it belong to the field. Text between a closing
//    quote and the next ',' is kept (lenient, as most CSV readers do). A '"' inside an
//    unquoted field is an ordinary character.
//  - A row becomes one JSON object whose keys are the header's fields in order, all values
//    strings, or, with infer_types, JSON numbers (integers up to 18 digits and decimals in
//    JSON number syntax; no leading zeros, so "007" stays a string), true/false for
//    true/false/True/False/TRUE/FALSE, and everything else (including "") a string.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace spate::ingest {

/// Index of the '\n' that ends the first record of `data` (a '\n' inside a quoted field does
/// not end it), or std::string_view::npos if the record is not complete yet.
size_t csv_record_end(std::string_view data);

/// Split one record (without its '\n'; a trailing '\r' is dropped) into fields. False with a
/// reason if a quoted field is not closed.
bool parse_csv_record(std::string_view record, std::vector<std::string>* fields,
                      std::string* reason);

/// Header fields as JSON keys: an empty name becomes "column_<n>" (1-based), a repeated name
/// gets a suffix "_2", "_3", ... so that every key of a row object is unique.
std::vector<std::string> csv_header_keys(const std::vector<std::string>& header);

/// Append `{"key":value,...}` for one row. `keys` and `fields` must have the same size.
void append_csv_row_json(std::string& out, const std::vector<std::string>& keys,
                         const std::vector<std::string>& fields, bool infer_types);

}  // namespace spate::ingest
