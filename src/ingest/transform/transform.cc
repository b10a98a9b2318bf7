#include "ingest/transform/transform.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <cmath>
#include <limits>

#include "base/hex.h"
#include "base/json_escape.h"
#include "event/expr.h"
#include "ingest/transform/json_edit.h"

namespace spate::ingest {
namespace {

enum class OpKind : uint8_t { kRename, kSet, kRemove, kCast, kDefault, kMask, kHash, kMetadata };
enum class CastTo : uint8_t { kInt, kDouble, kString, kBool };

// Per-thread scratch: the overlay, two parsers used in turn for re-parsed events, buffers.
struct Scratch {
  JsonEdit edit;
  simdjson::dom::parser parsers[2];
  int current = -1;  // parser holding the current event; -1: the caller's original document
  simdjson::dom::element doc;
  std::string out;    // the current event's text once written
  std::string value;  // a value being built
  // Fields edited in the overlay since s.doc was parsed: an expression that reads none of them
  // can be evaluated on s.doc as it is, without writing and parsing the overlay.
  std::vector<std::string_view> edited;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Write the overlay and parse it again: afterwards s.doc is the edited event, s.out its text.
bool flush(Scratch& s, std::string* reason) {
  s.out.clear();
  s.edit.write(s.out);
  const size_t n = s.out.size();
  s.out.reserve(n + simdjson::SIMDJSON_PADDING);
  const int next = s.current == 0 ? 1 : 0;
  if (auto err = s.parsers[next].parse(s.out.data(), n, false).get(s.doc)) {
    *reason = std::string("the transformed event could not be parsed again: ") +
              simdjson::error_message(err);
    return false;
  }
  s.current = next;
  s.edit.reset(s.doc);
  s.edited.clear();
  return true;
}

// True if one dotted path is a prefix of the other at a segment boundary ("a" and "a.b").
bool overlaps(std::string_view x, std::string_view y) {
  const size_t n = std::min(x.size(), y.size());
  if (x.substr(0, n) != y.substr(0, n)) return false;
  return x.size() == y.size() || (x.size() > n ? x[n] : y[n]) == '.';
}


// Text of a scalar for mask/hash: strings as they are, numbers and booleans as JSON text.
bool scalar_text(const simdjson::dom::element& e, std::string& buf, std::string_view* out) {
  if (e.is_string()) {
    *out = e.get_string().value_unsafe();
    return true;
  }
  if (e.is_object() || e.is_array() || e.is_null()) return false;
  buf.clear();
  append_element_json(e, buf);
  *out = buf;
  return true;
}

bool parse_int_text(std::string_view s, int64_t* out) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_double_text(std::string_view s, double* out) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(*out);
}


}  // namespace

struct TransformChain::Rule {
  OpKind kind = OpKind::kSet;
  std::vector<std::string> fields;
  std::string to;
  CastTo cast = CastTo::kString;
  std::string value_json;
  expr::Expression expr;
  expr::Expression when;
  bool skip_on_error = false;
  int keep_first = 0;
  int keep_last = 0;
  std::string mask_char;
  std::optional<std::string> replacement;
  std::string key;
  std::string received_at, source, request_id;
  std::string label;  // "transforms[2] (cast amount)" for reasons
  // Dotted prefixes of the fields `expr` and `when` read (up to the first index or quoted key);
  // reads_root: one of them reads the whole event (`$`).
  std::vector<std::string> reads;
  bool reads_root = false;

  // Apply to the event in `s`; false with *reason on failure.
  bool run(Scratch& s, const TransformInput& in, std::string* reason) const;
  // Make s.doc the event for this rule's expressions: parse the overlay again only if the rule
  // reads a field edited since s.doc was parsed.
  bool current_doc(Scratch& s, std::string* reason) const;
  bool fail(std::string* reason, std::string_view what) const {
    *reason = fmt::format("{}: {}", label, what);
    return false;
  }
};

namespace {

// The untouched DOM value at `path` (re-parsing if the path leads into edited parts).
bool resolve(Scratch& s, std::string_view path, simdjson::dom::element* e, bool* present,
             std::string* reason) {
  JsonEdit::NodeId n = s.edit.find(path);
  *present = n != JsonEdit::kNone;
  if (!*present) return true;
  if (s.edit.element_of(n, e)) return true;
  if (!flush(s, reason)) return false;
  n = s.edit.find(path);
  *present = n != JsonEdit::kNone;
  return !*present || s.edit.element_of(n, e);
}

}  // namespace

bool TransformChain::Rule::run(Scratch& s, const TransformInput& in, std::string* reason) const {
  if (!when.empty()) {
    if (!current_doc(s, reason)) return false;
    if (!when.matches(s.doc)) return true;
  }
  // cast, mask and hash read the field's value first; absent and null values are left alone.
  simdjson::dom::element e;
  if (kind == OpKind::kCast || kind == OpKind::kMask || kind == OpKind::kHash) {
    bool present = false;
    if (!resolve(s, fields[0], &e, &present, reason)) return false;
    if (!present || e.is_null()) return true;
  }
  switch (kind) {
    case OpKind::kRename: {
      JsonEdit::NodeId n = s.edit.detach(fields[0]);
      if (n == JsonEdit::kNone) return true;
      s.edited.push_back(fields[0]);
      s.edited.push_back(to);
      if (!s.edit.set_node(to, n)) {
        (void)s.edit.set_node(fields[0], n);  // put it back
        return fail(reason, fmt::format("cannot rename {} to {}: a parent of {} is not an object",
                                        fields[0], to, to));
      }
      return true;
    }
    case OpKind::kSet: {
      if (expr.empty()) {
        s.edited.push_back(fields[0]);
        if (!s.edit.set_json(fields[0], value_json)) {
          return fail(reason, fmt::format("cannot set {}: a parent is not an object", fields[0]));
        }
        return true;
      }
      if (!current_doc(s, reason)) return false;
      expr::Value v = expr.evaluate(s.doc);
      if (v.is_missing()) return true;
      s.value.clear();
      expr::append_json(v, s.value);
      s.edited.push_back(fields[0]);  // after current_doc(), which may have parsed again
      if (!s.edit.set_json(fields[0], s.value)) {
        return fail(reason, fmt::format("cannot set {}: a parent is not an object", fields[0]));
      }
      return true;
    }
    case OpKind::kRemove:
      for (const std::string& f : fields) {
        if (s.edit.detach(f) != JsonEdit::kNone) s.edited.push_back(f);
      }
      return true;
    case OpKind::kDefault: {
      bool present = false;
      if (!resolve(s, fields[0], &e, &present, reason)) return false;
      if (present && !e.is_null()) return true;
      s.edited.push_back(fields[0]);
      if (!s.edit.set_json(fields[0], value_json)) {
        return fail(reason, fmt::format("cannot set {}: a parent is not an object", fields[0]));
      }
      return true;
    }
    case OpKind::kCast: {
      s.value.clear();
      std::string_view sv;
      const bool is_str = !e.get_string().get(sv);
      switch (cast) {
        case CastTo::kInt: {
          int64_t i = 0;
          double d = 0;
          bool b = false;
          if (!e.get_int64().get(i)) {
            // already an int
          } else if (!e.get_double().get(d)) {
            if (!(std::fabs(d) < 9.2e18)) return fail(reason, fmt::format("{} is out of range for int", fields[0]));
            i = static_cast<int64_t>(std::trunc(d));
          } else if (!e.get_bool().get(b)) {
            i = b ? 1 : 0;
          } else if (is_str && parse_int_text(sv, &i)) {
          } else if (is_str && parse_double_text(sv, &d) && std::fabs(d) < 9.2e18) {
            i = static_cast<int64_t>(std::trunc(d));
          } else {
            return fail(reason, fmt::format("{} = {} cannot be cast to int", fields[0],
                                            json_excerpt(e, 60)));
          }
          char buf[24];
          auto r = std::to_chars(buf, buf + sizeof buf, i);
          s.value.append(buf, r.ptr);
          break;
        }
        case CastTo::kDouble: {
          double d = 0;
          bool b = false;
          if (!e.get_double().get(d)) {  // ints convert too
          } else if (!e.get_bool().get(b)) {
            d = b ? 1 : 0;
          } else if (is_str && parse_double_text(sv, &d)) {
          } else {
            return fail(reason, fmt::format("{} = {} cannot be cast to double", fields[0],
                                            json_excerpt(e, 60)));
          }
          expr::append_json(expr::Value::from_double(d), s.value);  // finite: "2.0", "1e+20"
          break;
        }
        case CastTo::kString: {
          if (is_str) return true;
          std::string text;
          append_element_json(e, text);
          append_json_quoted(s.value, text);
          break;
        }
        case CastTo::kBool: {
          bool b = false;
          int64_t i = 0;
          double d = 0;
          if (!e.get_bool().get(b)) {
          } else if (!e.get_int64().get(i)) {
            b = i != 0;
          } else if (!e.get_double().get(d)) {
            b = d != 0;
          } else if (is_str && (sv == "true" || sv == "TRUE" || sv == "True" || sv == "1" ||
                                sv == "yes")) {
            b = true;
          } else if (is_str && (sv == "false" || sv == "FALSE" || sv == "False" || sv == "0" ||
                                sv == "no")) {
            b = false;
          } else {
            return fail(reason, fmt::format("{} = {} cannot be cast to bool", fields[0],
                                            json_excerpt(e, 60)));
          }
          s.value = b ? "true" : "false";
          break;
        }
      }
      s.edited.push_back(fields[0]);
      (void)s.edit.set_json(fields[0], s.value);
      return true;
    }
    case OpKind::kMask: {
      thread_local std::string buf;
      std::string_view text;
      s.value.clear();
      if (replacement) {
        append_json_quoted(s.value, *replacement);
      } else if (!scalar_text(e, buf, &text)) {
        return fail(reason, fmt::format("{} is an object or array; mask needs a scalar (or use "
                                        "`replacement`)", fields[0]));
      } else {
        // Count code points; keep the first/last ones, replace the rest.
        size_t cps = 0;
        for (unsigned char c : text) cps += (c & 0xC0) != 0x80;
        size_t keep_head = static_cast<size_t>(keep_first);
        size_t keep_tail = static_cast<size_t>(keep_last);
        if (keep_head + keep_tail >= cps) keep_head = keep_tail = 0;  // too short: mask it all
        thread_local std::string masked;
        masked.clear();
        size_t cp = 0;
        for (size_t i = 0; i < text.size();) {
          size_t len = 1;
          while (i + len < text.size() && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) ++len;
          if (cp < keep_head || cp >= cps - keep_tail) {
            masked.append(text.substr(i, len));
          } else {
            masked += mask_char;
          }
          ++cp;
          i += len;
        }
        append_json_quoted(s.value, masked);
      }
      s.edited.push_back(fields[0]);
      (void)s.edit.set_json(fields[0], s.value);
      return true;
    }
    case OpKind::kHash: {
      thread_local std::string buf;
      std::string_view text;
      if (!scalar_text(e, buf, &text)) {
        buf.clear();
        append_element_json(e, buf);  // objects and arrays hash their minified JSON
        text = buf;
      }
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int md_len = 0;
      if (key.empty()) {
        EVP_Digest(text.data(), text.size(), md, &md_len, EVP_sha256(), nullptr);
      } else {
        HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(text.data()), text.size(), md, &md_len);
      }
      s.value = "\"";
      append_hex(s.value, md, md_len);
      s.value += "\"";
      s.edited.push_back(fields[0]);
      (void)s.edit.set_json(fields[0], s.value);
      return true;
    }
    case OpKind::kMetadata: {
      for (const std::string* f : {&received_at, &source, &request_id}) {
        if (!f->empty()) s.edited.push_back(*f);
      }
      if (!received_at.empty()) {
        char b[24];
        auto r = std::to_chars(b, b + sizeof b, in.received_at_ms);
        if (!s.edit.set_json(received_at, std::string_view(b, static_cast<size_t>(r.ptr - b)))) {
          return fail(reason, fmt::format("cannot set {}: a parent is not an object", received_at));
        }
      }
      if (!source.empty()) {
        s.value.clear();
        append_json_quoted(s.value, in.source);
        if (!s.edit.set_json(source, s.value)) {
          return fail(reason, fmt::format("cannot set {}: a parent is not an object", source));
        }
      }
      if (!request_id.empty() && !in.request_id.empty()) {
        s.value.clear();
        append_json_quoted(s.value, in.request_id);
        if (!s.edit.set_json(request_id, s.value)) {
          return fail(reason, fmt::format("cannot set {}: a parent is not an object", request_id));
        }
      }
      return true;
    }
  }
  return true;
}

bool TransformChain::Rule::current_doc(Scratch& s, std::string* reason) const {
  if (!s.edit.dirty()) return true;
  bool stale = reads_root;
  for (size_t i = 0; !stale && i < reads.size(); ++i) {
    for (std::string_view e : s.edited) {
      if (overlaps(reads[i], e)) {
        stale = true;
        break;
      }
    }
  }
  return !stale || flush(s, reason);
}

TransformChain::TransformChain() = default;
TransformChain::~TransformChain() = default;
TransformChain::TransformChain(TransformChain&&) noexcept = default;
TransformChain& TransformChain::operator=(TransformChain&&) noexcept = default;

bool TransformChain::empty() const { return rules_.empty(); }

Result<TransformChain> TransformChain::compile(const std::vector<TransformConfig>& rules) {
  TransformChain chain;
  std::string errors;
  auto error = [&](const TransformConfig& c, std::string_view key, std::string_view msg) {
    errors += (errors.empty() ? "" : "\n") +
              fmt::format("{}:{}:{}: {}.{}: {}", c.file, c.line, c.column, c.path, key, msg);
  };
  static const std::pair<const char*, OpKind> kOps[] = {
      {"rename", OpKind::kRename}, {"set", OpKind::kSet},         {"remove", OpKind::kRemove},
      {"cast", OpKind::kCast},     {"default", OpKind::kDefault}, {"mask", OpKind::kMask},
      {"hash", OpKind::kHash},     {"metadata", OpKind::kMetadata}};
  for (const TransformConfig& c : rules) {
    Rule r;
    bool known = false;
    for (const auto& [name, kind] : kOps) {
      if (c.op == name) {
        r.kind = kind;
        known = true;
      }
    }
    if (!known) {
      error(c, "op", fmt::format("unknown transform \"{}\"", c.op));
      continue;
    }
    r.fields = c.fields;
    r.to = c.to;
    r.value_json = c.value_json;
    r.skip_on_error = c.skip_on_error;
    r.keep_first = c.keep_first;
    r.keep_last = c.keep_last;
    r.mask_char = c.mask_char;
    r.replacement = c.replacement;
    r.key = c.key;
    r.received_at = c.received_at;
    r.source = c.source;
    r.request_id = c.request_id;
    r.label = fmt::format("{} ({}{}{})", c.path.substr(c.path.find('.') + 1), c.op,
                          c.fields.empty() ? "" : " ", c.fields.empty() ? "" : c.fields[0]);
    if (r.kind != OpKind::kMetadata && r.fields.empty()) {
      error(c, c.op, "needs a field");
      continue;
    }
    if (r.kind == OpKind::kCast) {
      if (c.to == "int") r.cast = CastTo::kInt;
      else if (c.to == "double") r.cast = CastTo::kDouble;
      else if (c.to == "string") r.cast = CastTo::kString;
      else if (c.to == "bool") r.cast = CastTo::kBool;
      else error(c, "to", fmt::format("expected int, double, string or bool, got \"{}\"", c.to));
    }
    if (r.kind == OpKind::kRename && c.to.empty()) error(c, "to", "rename needs `to`");
    if ((r.kind == OpKind::kSet || r.kind == OpKind::kDefault) && c.expr.empty() &&
        c.value_json.empty()) {
      error(c, c.op, r.kind == OpKind::kSet ? "set needs `value` or `expr`" : "default needs `value`");
    }
    if (!c.expr.empty()) {
      auto e = expr::Expression::compile(c.expr);
      if (!e.ok()) error(c, "expr", e.status().message());
      else r.expr = std::move(e).value();
    }
    if (!c.when.empty()) {
      auto e = expr::Expression::compile(c.when);
      if (!e.ok()) error(c, "when", e.status().message());
      else r.when = std::move(e).value();
    }
    for (const expr::Expression* e : {&r.expr, &r.when}) {
      for (const std::string& f : e->referenced_fields()) {
        std::string_view p = f;
        if (p.empty() || p[0] == '$') {
          r.reads_root = true;
          continue;
        }
        p = p.substr(0, std::min(p.find('['), p.size()));
        if (p.empty()) r.reads_root = true;
        else r.reads.emplace_back(p);
      }
    }
    if (r.kind == OpKind::kMetadata && c.received_at.empty() && c.source.empty() &&
        c.request_id.empty()) {
      error(c, "metadata", "name at least one of received_at, source, request_id");
    }
    chain.rules_.push_back(std::move(r));
  }
  if (!errors.empty()) return ConfigError(errors);
  return chain;
}

bool TransformChain::apply(const simdjson::dom::element& event, const TransformInput& in,
                           Outcome* out, std::string* reason, bool parse_result) const {
  Scratch& s = scratch();
  s.current = -1;
  s.doc = event;
  s.edit.reset(event);
  s.edited.clear();
  bool reparsed = false;
  for (const Rule& r : rules_) {
    const int before = s.current;
    std::string why;
    if (!r.run(s, in, &why)) {
      if (!r.skip_on_error) {
        *reason = std::move(why);
        return false;
      }
    }
    reparsed |= s.current != before;
  }
  bool parsed = true;  // s.doc is the text in s.out
  if (s.edit.dirty()) {
    if (parse_result) {
      if (!flush(s, reason)) return false;
    } else {  // the text only: the overlay written, not parsed (the next apply() resets it)
      s.out.clear();
      s.edit.write(s.out);
      parsed = false;
    }
    reparsed = true;
  }
  out->changed = reparsed;
  if (reparsed) {
    out->json = s.out;
    out->doc = parsed ? s.doc : simdjson::dom::element();
  }
  return true;
}

}  // namespace spate::ingest
