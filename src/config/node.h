// config::Node: a schema-walking view of a parsed YAML document that knows its key path and
// position, converts and validates values, and reports every problem to an Errors collector.
//
// A section parser is a few lines:
//
//   void parse_server(config::Node n, ServerConfig* out) {   // n = root.child("server")
//     n.get_string("host", &out->host, config::non_empty);
//     n.get_int("port", &out->port, 0, 65535);
//     n.finish();                                             // unknown keys -> errors
//   }
//
// Contract:
//  - A Node is a cheap handle; copies share state (which keys were read). A Node for a key that
//    is absent from the file is "absent": every getter on it returns false and leaves *out alone,
//    so defaults stay in place.
//  - Every scalar value is interpolated (`${VAR}`, `${VAR:-default}`, `$${`; config/interpolate.h)
//    before conversion. Keys are not interpolated.
//  - get_*()/as_*() return true iff the value was present and valid (and then set *out). On an
//    invalid value they report an error at the value's position and return false.
//  - Map getters on a node that is neither a map nor null/absent report "expected a map" once and
//    read as empty. finish() reports, at each key's position, every key that no getter asked for
//    (with a "did you mean"), duplicate keys and non-string keys. finish() runs automatically when
//    the last handle to a map node that was read goes away, if not called before.
//  - yaml-cpp stays inside node.cc: including this header does not pull in yaml-cpp.
//  - Not thread-safe; one document per thread. The Errors passed to parse() must outlive every
//    Node derived from it.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/errors.h"
#include "spate/config.h"

namespace spate::config {

/// Extra validation of a string value: returns "" if fine, else the error message.
using Check = std::function<std::string(std::string_view value)>;

/// A Check that rejects empty strings ("must not be empty").
std::string non_empty(std::string_view value);

/// Quote a value for an error message: "abc" with `"`, `\` and control characters escaped.
std::string quote(std::string_view value);

/// Parse a size: a non-negative integer with an optional unit B, KB, MB, GB, TB (powers of 1000)
/// or KiB, MiB, GiB, TiB (powers of 1024), case-insensitive, e.g. "128MiB", "1 GB". A plain
/// integer may be negative (used for -1 = unlimited). False on bad syntax or overflow.
bool parse_size(std::string_view text, int64_t* out);

/// Parse a duration in milliseconds: a plain integer (milliseconds, may be negative) or one or
/// more non-negative <integer><unit> parts with units ms, s, m, h, d, e.g. "500ms", "1h30m", "7d".
/// False on bad syntax or overflow.
bool parse_duration_ms(std::string_view text, int64_t* out);

class Node {
 public:
  template <typename T>
  static constexpr int64_t min_of() {
    return static_cast<int64_t>(std::numeric_limits<T>::min());
  }
  template <typename T>
  static constexpr int64_t max_of() {
    return std::cmp_greater(std::numeric_limits<T>::max(), std::numeric_limits<int64_t>::max())
               ? std::numeric_limits<int64_t>::max()
               : static_cast<int64_t>(std::numeric_limits<T>::max());
  }

  /// Parse `text` as a single YAML document. A syntax error is added to `errors` and the result
  /// is absent. An empty document yields an absent node (every key takes its default).
  static Node parse(std::string_view text, Errors* errors, EnvLookup env);

  /// An absent node attached to nothing (errors are dropped).
  Node();

  bool present() const;  // the key exists in the file (possibly with a null value)
  bool is_null() const;
  bool is_map() const;
  bool is_list() const;
  bool is_scalar() const;
  const std::string& path() const;
  Location location() const;
  /// "a map", "a list", "null", or the quoted raw scalar text, for "got ..." in messages.
  std::string describe() const;
  /// Report an error at this node's position and key path.
  void error(std::string_view message) const;

  // ---- Map access: this node is a section (a map). ----

  /// The value at `key` (any type), and mark `key` as known. Absent if missing.
  Node get(std::string_view key);
  /// The (string) keys of this map, in file order. Does not mark them as known.
  std::vector<std::string> keys();
  /// Like get(), but the value must be a map (or null/absent = empty); reports otherwise.
  Node child(std::string_view key);
  /// The items of the list at `key` (null/absent = empty); reports a non-list.
  std::vector<Node> list(std::string_view key);
  /// Report "missing required key" if `key` is absent. Returns get(key).
  Node require(std::string_view key);

  bool get_string(std::string_view key, std::string* out, const Check& check = nullptr);
  bool get_bool(std::string_view key, bool* out);
  bool get_enum(std::string_view key, std::string* out, const std::vector<std::string>& allowed);
  template <typename E>
  bool get_enum(std::string_view key, E* out,
                const std::vector<std::pair<std::string, E>>& allowed) {
    return get(key).as_enum(out, allowed);
  }
  template <typename T>
  bool get_int(std::string_view key, T* out, int64_t min = min_of<T>(), int64_t max = max_of<T>()) {
    return assign(get(key).as_int_impl(min, max, Unit::kNone), out);
  }
  template <typename T>
  bool get_size(std::string_view key, T* out, int64_t min = min_of<T>(),
                int64_t max = max_of<T>()) {
    return assign(get(key).as_int_impl(min, max, Unit::kSize), out);
  }
  bool get_duration_ms(std::string_view key, int64_t* out, int64_t min = 1,
                       int64_t max = std::numeric_limits<int64_t>::max());

  /// Report unknown, duplicate and non-string keys of this map. Idempotent.
  void finish();

  // ---- Value access: this node is the value. ----

  /// The items of this list (null/absent = empty); reports a non-list.
  std::vector<Node> items();
  /// The interpolated scalar text. `what` completes "expected ..." if this is not a scalar.
  bool scalar(std::string_view what, std::string* out);
  bool as_string(std::string* out, const Check& check = nullptr);
  bool as_bool(bool* out);
  bool as_int(int64_t* out, int64_t min, int64_t max);
  bool as_size(int64_t* out, int64_t min, int64_t max);
  bool as_duration_ms(int64_t* out, int64_t min, int64_t max);
  /// One of `allowed`; `also` adds non-scalar alternatives to the message ("{interval_ms: N}").
  bool as_enum(std::string* out, const std::vector<std::string>& allowed,
               std::string_view also = {});
  template <typename E>
  bool as_enum(E* out, const std::vector<std::pair<std::string, E>>& allowed) {
    std::vector<std::string> names;
    names.reserve(allowed.size());
    for (const auto& [name, value] : allowed) names.push_back(name);
    std::string s;
    if (!as_enum(&s, names)) return false;
    for (const auto& [name, value] : allowed) {
      if (name == s) *out = value;
    }
    return true;
  }

 private:
  struct Impl;
  enum class Unit { kNone, kSize, kDuration };
  explicit Node(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

  std::optional<int64_t> as_int_impl(int64_t min, int64_t max, Unit unit);
  template <typename T>
  static bool assign(std::optional<int64_t> v, T* out) {
    if (!v) return false;
    *out = static_cast<T>(*v);
    return true;
  }
  void index();

  std::shared_ptr<Impl> impl_;
};

}  // namespace spate::config
