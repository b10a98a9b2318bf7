#include "ingest/validate/ecma_regex.h"
#include "base/utf8.h"

#include <fmt/format.h>
#include <re2/re2.h>

#include <cstdint>

namespace spate::schema {
namespace {

// ECMA 262 WhiteSpace + LineTerminator (what \s matches), and its complement, as RE2 class
// ranges without the brackets so they can be spliced into a class. The complement leaves out the
// surrogates, which cannot occur in UTF-8 text.
constexpr std::string_view kSpaceRanges =
    "\\x{9}-\\x{d}\\x{20}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}"
    "\\x{3000}\\x{feff}";
constexpr std::string_view kNonSpaceRanges =
    "\\x{0}-\\x{8}\\x{e}-\\x{1f}\\x{21}-\\x{9f}\\x{a1}-\\x{167f}\\x{1681}-\\x{1fff}"
    "\\x{200b}-\\x{2027}\\x{202a}-\\x{202e}\\x{2030}-\\x{205e}\\x{2060}-\\x{2fff}"
    "\\x{3001}-\\x{d7ff}\\x{e000}-\\x{fefe}\\x{ff00}-\\x{10ffff}";
// ECMA `.`: anything but a line terminator.
constexpr std::string_view kDot = "[^\\n\\r\\x{2028}\\x{2029}]";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}
bool is_ascii_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}


// A literal code point in RE2 syntax, safe both inside and outside a character class.
void emit_literal(std::string& out, uint32_t cp) {
  if ((cp < 0x80 && (is_ascii_alpha(static_cast<char>(cp)) || is_digit(static_cast<char>(cp)))) ||
      (cp >= 0xA0 && !(cp >= 0xD800 && cp <= 0xDFFF))) {
    spate::append_utf8(out, cp);
  } else {
    out += fmt::format("\\x{{{:x}}}", cp);
  }
}

// Long ECMA 262 General_Category names -> the short names RE2 knows.
std::string_view short_category(std::string_view name) {
  static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
      {"Letter", "L"},
      {"Cased_Letter", "LC"},
      {"Uppercase_Letter", "Lu"},
      {"Lowercase_Letter", "Ll"},
      {"Titlecase_Letter", "Lt"},
      {"Modifier_Letter", "Lm"},
      {"Other_Letter", "Lo"},
      {"Mark", "M"},
      {"Combining_Mark", "M"},
      {"Nonspacing_Mark", "Mn"},
      {"Spacing_Mark", "Mc"},
      {"Enclosing_Mark", "Me"},
      {"Number", "N"},
      {"Decimal_Number", "Nd"},
      {"digit", "Nd"},
      {"Letter_Number", "Nl"},
      {"Other_Number", "No"},
      {"Punctuation", "P"},
      {"punct", "P"},
      {"Connector_Punctuation", "Pc"},
      {"Dash_Punctuation", "Pd"},
      {"Open_Punctuation", "Ps"},
      {"Close_Punctuation", "Pe"},
      {"Initial_Punctuation", "Pi"},
      {"Final_Punctuation", "Pf"},
      {"Other_Punctuation", "Po"},
      {"Symbol", "S"},
      {"Math_Symbol", "Sm"},
      {"Currency_Symbol", "Sc"},
      {"Modifier_Symbol", "Sk"},
      {"Other_Symbol", "So"},
      {"Separator", "Z"},
      {"Space_Separator", "Zs"},
      {"Line_Separator", "Zl"},
      {"Paragraph_Separator", "Zp"},
      {"Other", "C"},
      {"Control", "Cc"},
      {"cntrl", "Cc"},
      {"Format", "Cf"},
      {"Surrogate", "Cs"},
      {"Private_Use", "Co"},
      {"Unassigned", "Cn"},
  };
  for (const auto& [long_name, short_name] : kNames) {
    if (name == long_name) return short_name;
  }
  return name;
}

class Translator {
 public:
  explicit Translator(std::string_view pattern) : p_(pattern) {}

  Result<std::string> run() {
    out_.reserve(p_.size() + 16);
    while (i_ < p_.size()) {
      char c = p_[i_];
      switch (c) {
        case '\\': {
          ++i_;
          Atom a;
          SPATE_RETURN_IF_ERROR(parse_escape(false, &a));
          if (a.kind == Atom::kChar) {
            emit_literal(out_, a.cp);
          } else {
            out_ += a.outer;
          }
          break;
        }
        case '[':
          ++i_;
          SPATE_RETURN_IF_ERROR(parse_class());
          break;
        case '(':
          ++i_;
          SPATE_RETURN_IF_ERROR(parse_group_open());
          break;
        case ')':
        case '|':
        case '^':
        case '$':
        case '*':
        case '+':
        case '?':
          out_.push_back(c);
          ++i_;
          break;
        case '{': {
          size_t len = quantifier_length();
          if (len == 0) {
            out_ += "\\{";
            ++i_;
          } else {
            SPATE_RETURN_IF_ERROR(check_quantifier_order(len));
            out_.append(p_.substr(i_, len));
            i_ += len;
          }
          break;
        }
        case '}':
        case ']':
          emit_literal(out_, static_cast<unsigned char>(c));
          ++i_;
          break;
        case '.':
          out_ += kDot;
          ++i_;
          break;
        default: {
          uint32_t cp;
          SPATE_RETURN_IF_ERROR(next_code_point(&cp));
          emit_literal(out_, cp);
        }
      }
    }
    return std::move(out_);
  }

 private:
  struct Atom {
    enum Kind { kChar, kSet, kAssertion } kind = kChar;
    uint32_t cp = 0;
    std::string inner;  // kSet: text usable inside [...]
    std::string outer;  // kSet/kAssertion: text usable outside a class
  };

  Status error(std::string_view what) const {
    return InvalidArgument(fmt::format("{} at offset {}", what, i_));
  }

  Status next_code_point(uint32_t* cp) {
    auto b0 = static_cast<unsigned char>(p_[i_]);
    int extra = 0;
    uint32_t v = 0;
    if (b0 < 0x80) {
      v = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      extra = 1;
      v = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
      extra = 2;
      v = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
      extra = 3;
      v = b0 & 0x07;
    } else {
      return error("invalid UTF-8 in pattern");
    }
    if (extra > 0 && i_ + extra >= p_.size()) return error("truncated UTF-8 in pattern");
    for (int k = 1; k <= extra; ++k) {
      auto b = static_cast<unsigned char>(p_[i_ + k]);
      if ((b & 0xC0) != 0x80) return error("invalid UTF-8 in pattern");
      v = (v << 6) | (b & 0x3F);
    }
    if (v > 0x10FFFF) return error("invalid UTF-8 in pattern");
    i_ += 1 + extra;
    *cp = v;
    return Status::Ok();
  }

  // Length of a valid ECMA quantifier {n}, {n,}, {n,m} (plus a lazy '?', which the caller
  // copies as an ordinary '?') starting at i_, or 0 when the '{' is a literal.
  size_t quantifier_length() const {
    size_t j = i_ + 1;
    size_t d = j;
    while (j < p_.size() && is_digit(p_[j])) ++j;
    if (j == d) return 0;
    if (j < p_.size() && p_[j] == ',') {
      ++j;
      while (j < p_.size() && is_digit(p_[j])) ++j;
    }
    if (j < p_.size() && p_[j] == '}') return j + 1 - i_;
    return 0;
  }

  Status check_quantifier_order(size_t len) const {
    std::string_view q = p_.substr(i_ + 1, len - 2);
    auto comma = q.find(',');
    if (comma == std::string_view::npos || comma + 1 == q.size()) return Status::Ok();
    auto parse = [](std::string_view s) {
      uint64_t v = 0;
      for (char c : s) {
        v = v * 10 + static_cast<uint64_t>(c - '0');
        if (v > 1000000) return v;  // RE2 rejects anything above 1000 anyway
      }
      return v;
    };
    if (parse(q.substr(0, comma)) > parse(q.substr(comma + 1))) {
      return error("numbers out of order in {} quantifier");
    }
    return Status::Ok();
  }

  Status parse_hex(size_t digits, uint32_t* cp) {
    if (i_ + digits > p_.size()) return error("incomplete hex escape");
    uint32_t v = 0;
    for (size_t k = 0; k < digits; ++k) {
      char h = p_[i_ + k];
      if (!is_hex(h)) return error("invalid hex escape");
      v = v * 16 + static_cast<uint32_t>(hex_value(h));
    }
    i_ += digits;
    *cp = v;
    return Status::Ok();
  }

  // After "\u".
  Status parse_unicode_escape(uint32_t* cp) {
    if (i_ < p_.size() && p_[i_] == '{') {
      ++i_;
      uint32_t v = 0;
      size_t start = i_;
      while (i_ < p_.size() && is_hex(p_[i_])) {
        v = v * 16 + static_cast<uint32_t>(hex_value(p_[i_]));
        if (v > 0x10FFFF) return error("\\u{...} escape above U+10FFFF");
        ++i_;
      }
      if (i_ == start || i_ >= p_.size() || p_[i_] != '}') return error("invalid \\u{...} escape");
      ++i_;
      *cp = v;
    } else {
      SPATE_RETURN_IF_ERROR(parse_hex(4, cp));
      if (*cp >= 0xD800 && *cp <= 0xDBFF && i_ + 6 <= p_.size() && p_[i_] == '\\' &&
          p_[i_ + 1] == 'u') {
        size_t save = i_;
        i_ += 2;
        uint32_t low;
        if (parse_hex(4, &low).ok() && low >= 0xDC00 && low <= 0xDFFF) {
          *cp = 0x10000 + ((*cp - 0xD800) << 10) + (low - 0xDC00);
          return Status::Ok();
        }
        i_ = save;
      }
    }
    if (*cp >= 0xD800 && *cp <= 0xDFFF) {
      return error("lone surrogate escape (text is matched as UTF-8 code points)");
    }
    return Status::Ok();
  }

  // After "\p" or "\P".
  Status parse_property(bool negated, Atom* a) {
    if (i_ >= p_.size() || p_[i_] != '{') return error("\\p must be followed by {Name}");
    auto close = p_.find('}', i_);
    if (close == std::string_view::npos) return error("unterminated \\p{...}");
    std::string_view body = p_.substr(i_ + 1, close - i_ - 1);
    i_ = close + 1;
    std::string_view name = body;
    auto eq = body.find('=');
    if (eq != std::string_view::npos) {
      std::string_view key = body.substr(0, eq);
      name = body.substr(eq + 1);
      if (key != "General_Category" && key != "gc" && key != "Script" && key != "sc") {
        return error(fmt::format("unsupported Unicode property \\p{{{}}}", body));
      }
    }
    name = short_category(name);
    for (char c : name) {
      if (!is_ascii_alpha(c) && !is_digit(c) && c != '_') {
        return error(fmt::format("invalid Unicode property \\p{{{}}}", body));
      }
    }
    if (name.empty()) return error("empty \\p{}");
    a->kind = Atom::kSet;
    a->inner = fmt::format("\\{}{{{}}}", negated ? 'P' : 'p', name);
    a->outer = a->inner;
    return Status::Ok();
  }

  // After a backslash; i_ is at the escaped character.
  Status parse_escape(bool in_class, Atom* a) {
    if (i_ >= p_.size()) return error("pattern ends with a lone backslash");
    char c = p_[i_];
    if (static_cast<unsigned char>(c) >= 0x80) {  // identity escape of a non-ASCII character
      a->kind = Atom::kChar;
      return next_code_point(&a->cp);
    }
    ++i_;
    a->kind = Atom::kChar;
    switch (c) {
      case 'd':
      case 'D':
      case 'w':
      case 'W':
        a->kind = Atom::kSet;
        a->inner = std::string("\\") + c;
        a->outer = a->inner;
        return Status::Ok();
      case 's':
        a->kind = Atom::kSet;
        a->inner = std::string(kSpaceRanges);
        a->outer = "[" + a->inner + "]";
        return Status::Ok();
      case 'S':
        a->kind = Atom::kSet;
        a->inner = std::string(kNonSpaceRanges);
        a->outer = "[" + a->inner + "]";
        return Status::Ok();
      case 'b':
        if (in_class) {
          a->cp = 0x08;
        } else {
          a->kind = Atom::kAssertion;
          a->outer = "\\b";
        }
        return Status::Ok();
      case 'B':
        if (in_class) return error("\\B inside a character class");
        a->kind = Atom::kAssertion;
        a->outer = "\\B";
        return Status::Ok();
      case 't':
        a->cp = 0x09;
        return Status::Ok();
      case 'n':
        a->cp = 0x0A;
        return Status::Ok();
      case 'v':
        a->cp = 0x0B;
        return Status::Ok();
      case 'f':
        a->cp = 0x0C;
        return Status::Ok();
      case 'r':
        a->cp = 0x0D;
        return Status::Ok();
      case '0':
        if (i_ < p_.size() && is_digit(p_[i_])) {
          return error("octal escapes are not supported (use \\xHH or \\uHHHH)");
        }
        a->cp = 0;
        return Status::Ok();
      case 'c':
        if (i_ < p_.size() && is_ascii_alpha(p_[i_])) {
          a->cp = static_cast<uint32_t>(p_[i_]) % 32;
          ++i_;
          return Status::Ok();
        }
        return error("\\c must be followed by a letter");
      case 'x':
        return parse_hex(2, &a->cp);
      case 'u':
        return parse_unicode_escape(&a->cp);
      case 'p':
      case 'P':
        return parse_property(c == 'P', a);
      case 'k':
        return error("named backreferences (\\k<name>) are not supported by RE2");
      default:
        break;
    }
    if (c >= '1' && c <= '9') {
      --i_;
      return error(fmt::format("backreferences (\\{}) are not supported by RE2", c));
    }
    if (is_ascii_alpha(c) || c == '_') {
      --i_;
      return error(fmt::format("\\{} is not an ECMA 262 escape", c));
    }
    a->cp = static_cast<unsigned char>(c);  // escaped punctuation: the character itself
    return Status::Ok();
  }

  // After '('.
  Status parse_group_open() {
    if (i_ >= p_.size() || p_[i_] != '?') {
      out_.push_back('(');
      return Status::Ok();
    }
    std::string_view rest = p_.substr(i_);
    if (rest.starts_with("?:")) {
      out_ += "(?:";
      i_ += 2;
      return Status::Ok();
    }
    if (rest.starts_with("?=") || rest.starts_with("?!")) {
      return error("lookahead assertions ((?= and (?!) are not supported by RE2");
    }
    if (rest.starts_with("?<=") || rest.starts_with("?<!")) {
      return error("lookbehind assertions ((?<= and (?<!) are not supported by RE2");
    }
    if (rest.starts_with("?<")) {
      auto close = rest.find('>');
      if (close == std::string_view::npos) return error("unterminated group name");
      std::string_view name = rest.substr(2, close - 2);
      if (name.empty()) return error("empty group name");
      for (char c : name) {
        if (!is_ascii_alpha(c) && !is_digit(c) && c != '_') {
          return error("group names must be ASCII letters, digits and _ (RE2)");
        }
      }
      if (is_digit(name[0])) return error("group names must not start with a digit");
      out_ += "(?P<";
      out_ += name;
      out_ += ">";
      i_ += close + 1;
      return Status::Ok();
    }
    return error("invalid group: '(?' must be followed by ':', '=', '!', '<=', '<!' or '<name>'");
  }

  // After '['.
  Status parse_class() {
    bool negated = false;
    if (i_ < p_.size() && p_[i_] == '^') {
      negated = true;
      ++i_;
    }
    if (i_ < p_.size() && p_[i_] == ']') {  // [] matches nothing, [^] anything
      ++i_;
      out_ += negated ? "[\\x{0}-\\x{10ffff}]" : "[^\\x{0}-\\x{10ffff}]";
      return Status::Ok();
    }
    std::string body;
    for (;;) {
      if (i_ >= p_.size()) return error("unterminated character class");
      if (p_[i_] == ']') {
        ++i_;
        break;
      }
      Atom lo;
      SPATE_RETURN_IF_ERROR(class_atom(&lo));
      // A range "lo-hi" needs a '-' that is not the last character before ']'.
      if (i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
        ++i_;
        Atom hi;
        SPATE_RETURN_IF_ERROR(class_atom(&hi));
        if (lo.kind == Atom::kChar && hi.kind == Atom::kChar) {
          if (lo.cp > hi.cp) return error("character class range out of order");
          emit_literal(body, lo.cp);
          body.push_back('-');
          emit_literal(body, hi.cp);
        } else {  // [\d-z]: Annex B reads the '-' literally
          append_class_atom(body, lo);
          emit_literal(body, '-');
          append_class_atom(body, hi);
        }
        continue;
      }
      append_class_atom(body, lo);
    }
    if (body.empty()) {
      return error("empty character class");  // unreachable: handled above
    }
    out_.push_back('[');
    if (negated) out_.push_back('^');
    out_ += body;
    out_.push_back(']');
    return Status::Ok();
  }

  Status class_atom(Atom* a) {
    if (p_[i_] == '\\') {
      ++i_;
      SPATE_RETURN_IF_ERROR(parse_escape(true, a));
      return Status::Ok();
    }
    a->kind = Atom::kChar;
    return next_code_point(&a->cp);
  }

  static void append_class_atom(std::string& body, const Atom& a) {
    if (a.kind == Atom::kChar) {
      emit_literal(body, a.cp);
    } else {
      body += a.inner;
    }
  }

  std::string_view p_;
  size_t i_ = 0;
  std::string out_;
};

}  // namespace

Result<std::string> ecma_to_re2(std::string_view pattern) {
  return Translator(pattern).run();
}

Result<std::shared_ptr<const re2::RE2>> compile_ecma_regex(std::string_view pattern) {
  auto translated = ecma_to_re2(pattern);
  if (!translated.ok()) return translated.status();
  RE2::Options options;
  options.set_log_errors(false);
  options.set_never_capture(true);
  options.set_encoding(RE2::Options::EncodingUTF8);
  auto re = std::make_shared<const RE2>(*translated, options);
  if (!re->ok()) {
    return InvalidArgument(fmt::format("not supported by RE2: {}", re->error()));
  }
  return std::shared_ptr<const RE2>(std::move(re));
}

Status check_ecma_regex(std::string_view pattern) {
  auto re = compile_ecma_regex(pattern);
  return re.ok() ? Status::Ok() : re.status();
}

}  // namespace spate::schema
