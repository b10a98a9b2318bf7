// Checkers for the JSON Schema draft 7 "format" values.
//
// Contract: pure functions, thread-safe, no allocation except check_format(kRegex, ...), which
// compiles the regex. Draft 7 makes "format" an annotation; json_schema only asserts it when
// CompileOptions::validate_formats is set, and only for the formats format_is_checked() says.
// The checks follow the RFCs named below without regexes: date, time, date-time (RFC 3339
// full-date / full-time / date-time, with leap seconds only at 23:59:60 UTC), email (RFC 5321
// dot-atom or quoted local part, hostname or [IP] domain), hostname (RFC 1123), ipv4 (dotted quad,
// no leading zeros), ipv6 (RFC 4291 text form, no zone id), uri / uri-reference / iri /
// iri-reference (RFC 3986 / 3987 syntax; the iri forms also allow non-ASCII), uri-template
// (RFC 6570 syntax), json-pointer (RFC 6901), relative-json-pointer, regex (ECMA 262 that RE2 can
// run). idn-email checks like email but allows non-ASCII; idn-hostname is not checked (IDNA2008
// needs Unicode tables).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace spate::schema {

enum class Format : unsigned char {
  kDateTime,
  kDate,
  kTime,
  kEmail,
  kIdnEmail,
  kHostname,
  kIdnHostname,
  kIpv4,
  kIpv6,
  kUri,
  kUriReference,
  kIri,
  kIriReference,
  kUriTemplate,
  kJsonPointer,
  kRelativeJsonPointer,
  kRegex,
};

/// The draft 7 format called `name`, or nullopt for a name draft 7 does not define.
std::optional<Format> format_from_name(std::string_view name);

/// Every draft 7 format name (for "did you mean").
const std::vector<std::string_view>& format_names();

/// True if check_format() really checks `f` (false: any string passes).
bool format_is_checked(Format f);

/// True if `s` is a valid `f`.
bool check_format(Format f, std::string_view s);

}  // namespace spate::schema
