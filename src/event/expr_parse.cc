// The expression compiler: a lazy lexer and a recursive-descent parser that builds the flat node
// array of a Program, folding constants, compiling regexes and preparing `in` sets as it goes.
//
// Grammar (lowest precedence first; docs/expressions.md has the user's version):
//   or      := and (("or" | "||") and)*
//   and     := not (("and" | "&&") not)*
//   not     := ("not" | "!") not | cmp
//   cmp     := add [("==" | "!=" | "<" | "<=" | ">" | ">=" | "=~" | "!~" | "in" | "not" "in") add]
//   add     := mul (("+" | "-") mul)*
//   mul     := unary (("*" | "/" | "%") unary)*
//   unary   := "-" unary | postfix
//   postfix := primary ("." NAME | "[" (INTEGER | "-" INTEGER | STRING) "]")*
//   primary := NUMBER | STRING | RAW_STRING | "true" | "false" | "null" | "[" [or ("," or)*] "]"
//            | "(" or ")" | "$" | NAME | NAME "(" [or ("," or)*] ")" | ("not" | "!") not
//
// Recursion is bounded: every construct that nests ("(", "[", calls, unary "-", "not") counts
// towards kMaxDepth, and chains of one precedence level are n-ary nodes, not deep trees.
#include <charconv>
#include <cstdio>
#include <limits>
#include <span>

#include "base/json_escape.h"
#include "base/utf8.h"
#include "event/expr_internal.h"

namespace spate::expr {
namespace internal {
namespace {

constexpr uint32_t kErr = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kVariadic = std::numeric_limits<uint32_t>::max();

enum class Tok : uint8_t {
  kEnd,
  kError,
  kNumber,
  kString,
  kIdent,
  kDollar,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kDot,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kEqEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kMatch,
  kNotMatch,
  kBang,
  kAndAnd,
  kOrOr,
};

struct Token {
  Tok kind = Tok::kEnd;
  uint32_t pos = 0;
  uint32_t len = 0;
  Value num;                // kNumber
  bool plain_int = false;   // kNumber written as digits only, value in uint_value
  uint64_t uint_value = 0;  // ... when it fits uint64
  std::string text;         // kString: decoded bytes; kIdent: the name
};

struct FnInfo {
  std::string_view name;
  Fn fn;
  uint32_t min_args;
  uint32_t max_args;
};

constexpr FnInfo kFunctions[] = {
    {"exists", Fn::kExists, 1, 1},
    {"len", Fn::kLen, 1, 1},
    {"lower", Fn::kLower, 1, 1},
    {"upper", Fn::kUpper, 1, 1},
    {"contains", Fn::kContains, 2, 2},
    {"starts_with", Fn::kStartsWith, 2, 2},
    {"ends_with", Fn::kEndsWith, 2, 2},
    {"abs", Fn::kAbs, 1, 1},
    {"coalesce", Fn::kCoalesce, 1, kVariadic},
    {"now_ms", Fn::kNowMs, 0, 0},
    {"to_number", Fn::kToNumber, 1, 1},
    {"to_string", Fn::kToString, 1, 1},
    {"is_null", Fn::kIsNull, 1, 1},
};

constexpr std::string_view kKeywords[] = {"and", "or", "not", "in", "true", "false", "null"};

bool is_keyword(std::string_view s) {
  for (std::string_view k : kKeywords) {
    if (s == k) return true;
  }
  return false;
}

bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_ident_char(char c) {
  return is_ident_start(c) || is_digit(c);
}

bool is_plain_name(std::string_view s) {
  if (s.empty() || !is_ident_start(s[0])) return false;
  for (char c : s) {
    if (!is_ident_char(c)) return false;
  }
  return true;
}

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

/// Optimal-string-alignment edit distance, ASCII case-insensitive.
size_t edit_distance(std::string_view a, std::string_view b) {
  const size_t m = b.size();
  std::vector<size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = ascii_lower(a[i - 1]) == ascii_lower(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && ascii_lower(a[i - 1]) == ascii_lower(b[j - 2]) &&
          ascii_lower(a[i - 2]) == ascii_lower(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    prev2.swap(prev);
    prev.swap(cur);
  }
  return prev[m];
}

/// The function name closest to `name`: within edit distance 2 (and half its length), or sharing
/// a prefix of at least 3 characters with it. Empty when nothing is close.
std::string_view suggest_function(std::string_view name) {
  if (name.size() > 64) return {};
  const size_t max_distance = std::min<size_t>(2, std::max<size_t>(1, name.size() / 2));
  size_t best_rank = std::numeric_limits<size_t>::max();
  std::string_view best;
  for (const FnInfo& f : kFunctions) {
    size_t rank = edit_distance(name, f.name);
    if (rank > max_distance) {
      const std::string_view shorter = name.size() <= f.name.size() ? name : f.name;
      const std::string_view longer = name.size() <= f.name.size() ? f.name : name;
      rank = shorter.size() >= 3 && iequals(shorter, longer.substr(0, shorter.size()))
                 ? 3
                 : std::numeric_limits<size_t>::max();
    }
    if (rank < best_rank) {
      best_rank = rank;
      best = f.name;
    }
  }
  return best;
}

/// `s` for an error message: control characters and non-ASCII bytes escaped, long text cut.
std::string shown(std::string_view s) {
  std::string out;
  const size_t limit = 40;
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

std::string in_quotes(std::string_view s) {
  return "\"" + shown(s) + "\"";
}


/// Path in the language's own syntax, for referenced_fields().
std::string render_path(const Path& path) {
  if (path.segments.empty()) return "$";
  std::string out;
  for (size_t i = 0; i < path.segments.size(); ++i) {
    const Segment& s = path.segments[i];
    if (s.is_index) {
      if (i == 0) out += "$";
      out += "[" + std::to_string(s.index) + "]";
    } else if (is_plain_name(s.key) && (i > 0 || !is_keyword(s.key))) {
      if (i > 0) out += ".";
      out += s.key;
    } else {
      if (i == 0) out += "$";
      out += "[";
      append_json_quoted(out, s.key);
      out += "]";
    }
  }
  return out;
}

class Compiler {
 public:
  explicit Compiler(Program* p) : p_(p), src_(p->source) {}

  Status run() {
    advance();
    const uint32_t root = parse_or();
    if (root != kErr && tok_.kind != Tok::kEnd) unexpected_after_expression();
    if (failed_) return err_;
    p_->root = root;
    return Status::Ok();
  }

 private:
  // ---- errors ----

  std::string where(uint32_t pos) const {
    uint32_t line = 1;
    uint32_t line_start = 0;
    for (uint32_t i = 0; i < pos && i < src_.size(); ++i) {
      if (src_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    return std::to_string(line) + ":" + std::to_string(pos - line_start + 1);
  }

  uint32_t fail(uint32_t pos, const std::string& message) {
    if (!failed_) {
      failed_ = true;
      err_ = InvalidArgument("expr:" + where(pos) + ": " + message);
    }
    tok_.kind = Tok::kError;  // stops every loop that looks at the current token
    return kErr;
  }

  std::string describe(const Token& t) const {
    if (t.kind == Tok::kEnd) return "the end of the expression";
    return in_quotes(src_.substr(t.pos, t.len));
  }

  uint32_t expected_operand() {
    if (failed_) return kErr;
    if (prev_len_ == 0) {
      if (tok_.kind == Tok::kEnd) return fail(tok_.pos, "empty expression");
      return fail(tok_.pos, "expected an expression, found " + describe(tok_));
    }
    return fail(tok_.pos,
                "expected an operand after " + in_quotes(src_.substr(prev_pos_, prev_len_)));
  }

  void unexpected_after_expression() {
    if (failed_) return;
    if (tok_.kind == Tok::kRParen) {
      fail(tok_.pos, "unmatched \")\"");
      return;
    }
    if (tok_.kind == Tok::kRBracket) {
      fail(tok_.pos, "unmatched \"]\"");
      return;
    }
    std::string msg = "expected an operator or the end of the expression, found " + describe(tok_);
    if (tok_.kind == Tok::kIdent) {
      for (std::string_view k : {"and", "or", "not", "in"}) {
        if (iequals(tok_.text, k)) {
          msg += " (did you mean \"" + std::string(k) + "\"?)";
          break;
        }
      }
    }
    fail(tok_.pos, msg);
  }

  // ---- lexer ----

  void advance() {
    if (failed_) return;
    prev_pos_ = tok_.pos;
    prev_len_ = tok_.len;
    lex();
  }

  uint32_t lex_fail(uint32_t pos, const std::string& message) {
    fail(pos, message);
    return kErr;
  }

  void lex() {
    const size_t n = src_.size();
    while (pos_ < n && (src_[pos_] == ' ' || src_[pos_] == '\t' || src_[pos_] == '\n' ||
                        src_[pos_] == '\r' || src_[pos_] == '\f' || src_[pos_] == '\v')) {
      ++pos_;
    }
    tok_.pos = static_cast<uint32_t>(pos_);
    tok_.len = 1;
    tok_.plain_int = false;
    tok_.text.clear();
    if (pos_ >= n) {
      tok_.kind = Tok::kEnd;
      tok_.len = 0;
      return;
    }
    const char c = src_[pos_];
    const char next = pos_ + 1 < n ? src_[pos_ + 1] : '\0';
    auto single = [&](Tok k) {
      tok_.kind = k;
      ++pos_;
    };
    auto twin = [&](Tok k) {
      tok_.kind = k;
      tok_.len = 2;
      pos_ += 2;
    };
    switch (c) {
      case '(':
        return single(Tok::kLParen);
      case ')':
        return single(Tok::kRParen);
      case '[':
        return single(Tok::kLBracket);
      case ']':
        return single(Tok::kRBracket);
      case ',':
        return single(Tok::kComma);
      case '.':
        return single(Tok::kDot);
      case '+':
        return single(Tok::kPlus);
      case '-':
        return single(Tok::kMinus);
      case '*':
        return single(Tok::kStar);
      case '/':
        return single(Tok::kSlash);
      case '%':
        return single(Tok::kPercent);
      case '$':
        return single(Tok::kDollar);
      case '=':
        if (next == '=') return twin(Tok::kEqEq);
        if (next == '~') return twin(Tok::kMatch);
        lex_fail(tok_.pos, "unexpected \"=\"; use \"==\" to compare");
        return;
      case '!':
        if (next == '=') return twin(Tok::kNe);
        if (next == '~') return twin(Tok::kNotMatch);
        return single(Tok::kBang);
      case '<':
        if (next == '=') return twin(Tok::kLe);
        return single(Tok::kLt);
      case '>':
        if (next == '=') return twin(Tok::kGe);
        return single(Tok::kGt);
      case '&':
        if (next == '&') return twin(Tok::kAndAnd);
        lex_fail(tok_.pos, "unexpected \"&\"; use \"and\" or \"&&\"");
        return;
      case '|':
        if (next == '|') return twin(Tok::kOrOr);
        lex_fail(tok_.pos, "unexpected \"|\"; use \"or\" or \"||\"");
        return;
      case '"':
      case '\'':
        return lex_string(c);
      default:
        break;
    }
    if (is_digit(c)) return lex_number();
    if (c == 'r' && (next == '"' || next == '\'')) return lex_raw_string(next);
    if (is_ident_start(c)) {
      const size_t start = pos_;
      while (pos_ < n && is_ident_char(src_[pos_])) ++pos_;
      tok_.kind = Tok::kIdent;
      tok_.len = static_cast<uint32_t>(pos_ - start);
      tok_.text.assign(src_.substr(start, pos_ - start));
      return;
    }
    lex_fail(tok_.pos, "unexpected character " + in_quotes(src_.substr(pos_, 1)));
  }

  void lex_number() {
    const size_t n = src_.size();
    const size_t start = pos_;
    bool plain = true;
    while (pos_ < n && is_digit(src_[pos_])) ++pos_;
    if (pos_ < n && src_[pos_] == '.') {
      if (pos_ + 1 >= n || !is_digit(src_[pos_ + 1])) {
        lex_fail(static_cast<uint32_t>(pos_ + 1), "expected a digit after the decimal point");
        return;
      }
      ++pos_;
      while (pos_ < n && is_digit(src_[pos_])) ++pos_;
      plain = false;
    }
    if (pos_ < n && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < n && (src_[pos_] == '+' || src_[pos_] == '-')) ++pos_;
      if (pos_ >= n || !is_digit(src_[pos_])) {
        lex_fail(static_cast<uint32_t>(pos_), "expected a digit in the exponent");
        return;
      }
      while (pos_ < n && is_digit(src_[pos_])) ++pos_;
      plain = false;
    }
    if (pos_ < n && (is_ident_char(src_[pos_]) || src_[pos_] == '.')) {
      size_t end = pos_;
      while (end < n && (is_ident_char(src_[end]) || src_[end] == '.')) ++end;
      lex_fail(static_cast<uint32_t>(start),
               "invalid number " + in_quotes(src_.substr(start, end - start)));
      return;
    }
    const std::string_view text = src_.substr(start, pos_ - start);
    tok_.kind = Tok::kNumber;
    tok_.len = static_cast<uint32_t>(text.size());
    if (!parse_number(text, &tok_.num)) {
      lex_fail(static_cast<uint32_t>(start), "number out of range " + in_quotes(text));
      return;
    }
    if (plain) {
      auto r = std::from_chars(text.data(), text.data() + text.size(), tok_.uint_value);
      tok_.plain_int = r.ec == std::errc() && r.ptr == text.data() + text.size();
    }
  }

  bool read_hex4(size_t at, uint32_t* out) const {
    if (at + 4 > src_.size()) return false;
    uint32_t v = 0;
    for (size_t i = at; i < at + 4; ++i) {
      const char c = src_[i];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *out = v;
    return true;
  }

  void lex_string(char quote) {
    const size_t n = src_.size();
    const auto start = static_cast<uint32_t>(pos_);
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= n) {
        lex_fail(start, "unterminated string");
        return;
      }
      const char c = src_[pos_];
      if (c == quote) {
        ++pos_;
        break;
      }
      if (c != '\\') {
        out.push_back(c);
        ++pos_;
        continue;
      }
      const auto esc = static_cast<uint32_t>(pos_);
      if (pos_ + 1 >= n) {
        lex_fail(start, "unterminated string");
        return;
      }
      const char e = src_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case 'n':
          out.push_back('\n');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case '0':
          out.push_back('\0');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '\'':
          out.push_back('\'');
          break;
        case '"':
          out.push_back('"');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!read_hex4(pos_, &cp)) {
            lex_fail(esc, "invalid \\u escape: expected 4 hex digits");
            return;
          }
          pos_ += 4;
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            lex_fail(esc, "invalid \\u escape: unpaired surrogate");
            return;
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = 0;
            if (pos_ + 1 >= n || src_[pos_] != '\\' || src_[pos_ + 1] != 'u' ||
                !read_hex4(pos_ + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
              lex_fail(esc, "invalid \\u escape: unpaired surrogate");
              return;
            }
            pos_ += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          spate::append_utf8(out, cp);
          break;
        }
        default:
          lex_fail(esc, "invalid escape " + in_quotes(src_.substr(esc, 2)) +
                            " in string (write \"\\\\" + shown(src_.substr(esc + 1, 1)) +
                            "\" for a backslash, or use a raw string r\"...\")");
          return;
      }
    }
    tok_.kind = Tok::kString;
    tok_.len = static_cast<uint32_t>(pos_ - start);
    tok_.text = std::move(out);
  }

  /// r"..." or r'...': no escapes; the string cannot contain its quote character.
  void lex_raw_string(char quote) {
    const auto start = static_cast<uint32_t>(pos_);
    const size_t end = src_.find(quote, pos_ + 2);
    if (end == std::string_view::npos) {
      lex_fail(start, "unterminated string");
      return;
    }
    tok_.kind = Tok::kString;
    tok_.text.assign(src_.substr(pos_ + 2, end - pos_ - 2));
    pos_ = end + 1;
    tok_.len = static_cast<uint32_t>(pos_ - start);
  }

  // ---- nodes ----

  class DepthGuard {
   public:
    DepthGuard(Compiler* c, uint32_t pos) : c_(c) {
      if (++c_->depth_ > kMaxDepth) {
        c_->fail(pos, "expression nested too deeply (limit " + std::to_string(kMaxDepth) + ")");
      }
    }
    ~DepthGuard() { --c_->depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Compiler* c_;
  };

  Value intern(const Value& v) {
    if (v.is_string()) {
      p_->strings.emplace_back(v.as_string());
      return Value::from_view(p_->strings.back());
    }
    if (const std::vector<Value>* items = v.list()) {
      std::vector<Value> copy;
      copy.reserve(items->size());
      for (const Value& item : *items) copy.push_back(intern(item));
      p_->lists.push_back(std::move(copy));
      return ValueAccess::borrowed_list(&p_->lists.back());
    }
    return v;  // scalars (a constant never holds an event element)
  }

  std::string_view intern_key(const std::string& s) {
    p_->strings.push_back(s);
    return p_->strings.back();
  }

  uint32_t add_const(const Value& v) {
    p_->consts.push_back(intern(v));
    Node n;
    n.op = Op::kConst;
    n.aux = static_cast<uint32_t>(p_->consts.size() - 1);
    p_->nodes.push_back(n);
    return static_cast<uint32_t>(p_->nodes.size() - 1);
  }

  bool is_const(uint32_t id) const { return p_->nodes[id].op == Op::kConst; }
  const Value& const_value(uint32_t id) const { return p_->consts[p_->nodes[id].aux]; }

  /// Append a node (children already built), folding it into a constant when it has no inputs
  /// other than constants.
  uint32_t add_node(Op op, uint8_t sub, std::span<const uint32_t> kids, uint32_t aux) {
    Node n;
    n.op = op;
    n.sub = sub;
    n.kids = static_cast<uint32_t>(p_->kids.size());
    n.nkids = static_cast<uint32_t>(kids.size());
    n.aux = aux;
    p_->kids.insert(p_->kids.end(), kids.begin(), kids.end());
    p_->nodes.push_back(n);
    const auto id = static_cast<uint32_t>(p_->nodes.size() - 1);
    const bool foldable = op != Op::kField && !(op == Op::kCall && sub == uint8_t(Fn::kNowMs));
    if (!foldable) return id;
    for (uint32_t k : kids) {
      if (!is_const(k)) return id;
    }
    const Value v = eval(*p_, id, simdjson::dom::element(), nullptr);
    p_->consts.push_back(intern(v));
    Node c;
    c.op = Op::kConst;
    c.aux = static_cast<uint32_t>(p_->consts.size() - 1);
    p_->nodes[id] = c;
    return id;
  }

  uint32_t add_unary(Op op, uint32_t kid) { return add_node(op, 0, std::span(&kid, 1), 0); }

  void register_field(const Path& path) {
    std::string f = render_path(path);
    for (const std::string& existing : p_->fields) {
      if (existing == f) return;
    }
    p_->fields.push_back(std::move(f));
  }

  // ---- parser ----

  bool at_ident(std::string_view word) const {
    return tok_.kind == Tok::kIdent && tok_.text == word;
  }
  bool at_or() const { return tok_.kind == Tok::kOrOr || at_ident("or"); }
  bool at_and() const { return tok_.kind == Tok::kAndAnd || at_ident("and"); }
  bool at_not() const { return tok_.kind == Tok::kBang || at_ident("not"); }

  uint32_t parse_or() {
    const uint32_t first = parse_and();
    if (first == kErr || !at_or()) return first;
    std::vector<uint32_t> kids{first};
    while (at_or()) {
      advance();
      const uint32_t k = parse_and();
      if (k == kErr) return kErr;
      kids.push_back(k);
    }
    return add_node(Op::kOr, 0, kids, 0);
  }

  uint32_t parse_and() {
    const uint32_t first = parse_not();
    if (first == kErr || !at_and()) return first;
    std::vector<uint32_t> kids{first};
    while (at_and()) {
      advance();
      const uint32_t k = parse_not();
      if (k == kErr) return kErr;
      kids.push_back(k);
    }
    return add_node(Op::kAnd, 0, kids, 0);
  }

  uint32_t parse_not() {
    if (!at_not()) return parse_cmp();
    DepthGuard guard(this, tok_.pos);
    advance();
    const uint32_t k = parse_not();
    if (k == kErr || failed_) return kErr;
    return add_unary(Op::kNot, k);
  }

  enum class Cmp { kNone, kEq, kNe, kLt, kLe, kGt, kGe, kMatch, kNotMatch, kIn, kNotIn };

  Cmp at_cmp() const {
    switch (tok_.kind) {
      case Tok::kEqEq:
        return Cmp::kEq;
      case Tok::kNe:
        return Cmp::kNe;
      case Tok::kLt:
        return Cmp::kLt;
      case Tok::kLe:
        return Cmp::kLe;
      case Tok::kGt:
        return Cmp::kGt;
      case Tok::kGe:
        return Cmp::kGe;
      case Tok::kMatch:
        return Cmp::kMatch;
      case Tok::kNotMatch:
        return Cmp::kNotMatch;
      case Tok::kIdent:
        if (tok_.text == "in") return Cmp::kIn;
        if (tok_.text == "not") return Cmp::kNotIn;
        return Cmp::kNone;
      default:
        return Cmp::kNone;
    }
  }

  uint32_t parse_cmp() {
    const uint32_t lhs = parse_add();
    if (lhs == kErr) return kErr;
    const Cmp cmp = at_cmp();
    if (cmp == Cmp::kNone) return lhs;
    const std::string op_text =
        cmp == Cmp::kNotIn ? "not in" : std::string(src_.substr(tok_.pos, tok_.len));
    if (cmp == Cmp::kNotIn) {
      advance();
      if (!at_ident("in")) {
        return fail(tok_.pos, "expected \"in\" after \"not\", found " + describe(tok_));
      }
    }
    advance();
    const uint32_t rhs_pos = tok_.pos;
    const uint32_t rhs = parse_add();
    if (rhs == kErr) return kErr;
    const uint32_t node = build_cmp(cmp, op_text, lhs, rhs, rhs_pos);
    if (node == kErr) return kErr;
    if (at_cmp() != Cmp::kNone) {
      return fail(tok_.pos,
                  "comparisons cannot be chained; combine them with \"and\" or use "
                  "parentheses");
    }
    return node;
  }

  uint32_t build_cmp(Cmp cmp, const std::string& op_text, uint32_t lhs, uint32_t rhs,
                     uint32_t rhs_pos) {
    const uint32_t both[2] = {lhs, rhs};
    switch (cmp) {
      case Cmp::kEq:
        return add_node(Op::kCmp, uint8_t(CmpOp::kEq), both, 0);
      case Cmp::kNe:
        return add_node(Op::kCmp, uint8_t(CmpOp::kNe), both, 0);
      case Cmp::kLt:
        return add_node(Op::kCmp, uint8_t(CmpOp::kLt), both, 0);
      case Cmp::kLe:
        return add_node(Op::kCmp, uint8_t(CmpOp::kLe), both, 0);
      case Cmp::kGt:
        return add_node(Op::kCmp, uint8_t(CmpOp::kGt), both, 0);
      case Cmp::kGe:
        return add_node(Op::kCmp, uint8_t(CmpOp::kGe), both, 0);
      case Cmp::kMatch:
      case Cmp::kNotMatch: {
        if (!is_const(rhs) || !const_value(rhs).is_string()) {
          return fail(rhs_pos,
                      "the pattern after " + in_quotes(op_text) + " must be a string literal");
        }
        RE2::Options options;
        options.set_log_errors(false);
        const std::string_view pattern = const_value(rhs).as_string();
        auto re = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
        if (!re->ok()) return fail(rhs_pos, "invalid regular expression: " + shown(re->error()));
        p_->regexes.push_back(std::move(re));
        const auto aux = static_cast<uint32_t>(p_->regexes.size() - 1);
        return add_node(Op::kMatch, cmp == Cmp::kNotMatch ? 1 : 0, std::span(&lhs, 1), aux);
      }
      case Cmp::kIn:
      case Cmp::kNotIn: {
        const uint8_t negate = cmp == Cmp::kNotIn ? 1 : 0;
        if (!is_const(rhs)) return add_node(Op::kIn, negate, both, 0);
        const std::vector<Value>* items = const_value(rhs).list();
        if (items == nullptr) {
          return fail(rhs_pos, "the right side of " + in_quotes(op_text) +
                                   " must be a list or an array field, e.g. [1, 2]");
        }
        p_->sets.push_back(make_const_set(items));
        const auto aux = static_cast<uint32_t>(p_->sets.size() - 1);
        return add_node(Op::kInSet, negate, std::span(&lhs, 1), aux);
      }
      case Cmp::kNone:
        break;
    }
    return fail(rhs_pos, "internal error: unknown comparison");
  }

  uint32_t parse_add() {
    const uint32_t first = parse_mul();
    if (first == kErr) return kErr;
    if (tok_.kind != Tok::kPlus && tok_.kind != Tok::kMinus) return first;
    std::vector<uint32_t> kids{first};
    std::vector<ArithOp> ops;
    while (tok_.kind == Tok::kPlus || tok_.kind == Tok::kMinus) {
      ops.push_back(tok_.kind == Tok::kPlus ? ArithOp::kAdd : ArithOp::kSub);
      advance();
      const uint32_t k = parse_mul();
      if (k == kErr) return kErr;
      kids.push_back(k);
    }
    const auto aux = static_cast<uint32_t>(p_->arith_ops.size());
    p_->arith_ops.insert(p_->arith_ops.end(), ops.begin(), ops.end());
    return add_node(Op::kArith, 0, kids, aux);
  }

  static bool is_mul_op(Tok t) { return t == Tok::kStar || t == Tok::kSlash || t == Tok::kPercent; }

  uint32_t parse_mul() {
    const uint32_t first = parse_unary();
    if (first == kErr) return kErr;
    if (!is_mul_op(tok_.kind)) return first;
    std::vector<uint32_t> kids{first};
    std::vector<ArithOp> ops;
    while (is_mul_op(tok_.kind)) {
      ops.push_back(tok_.kind == Tok::kStar    ? ArithOp::kMul
                    : tok_.kind == Tok::kSlash ? ArithOp::kDiv
                                               : ArithOp::kMod);
      advance();
      const uint32_t k = parse_unary();
      if (k == kErr) return kErr;
      kids.push_back(k);
    }
    const auto aux = static_cast<uint32_t>(p_->arith_ops.size());
    p_->arith_ops.insert(p_->arith_ops.end(), ops.begin(), ops.end());
    return add_node(Op::kArith, 0, kids, aux);
  }

  /// The value of "-" followed by the current number token.
  Value negative_literal() const {
    if (tok_.plain_int && tok_.uint_value == (uint64_t{1} << 63)) {
      return Value::from_int(std::numeric_limits<int64_t>::min());
    }
    if (tok_.num.is_int()) return Value::from_int(-tok_.num.as_int());
    return Value::from_double(-tok_.num.as_double());
  }

  uint32_t parse_unary() {
    if (tok_.kind != Tok::kMinus) return parse_postfix();
    DepthGuard guard(this, tok_.pos);
    advance();
    if (failed_) return kErr;
    if (tok_.kind == Tok::kNumber) {
      const Value v = negative_literal();
      advance();
      return failed_ ? kErr : add_const(v);
    }
    const uint32_t k = parse_unary();
    if (k == kErr) return kErr;
    return add_unary(Op::kNeg, k);
  }

  uint32_t parse_postfix() {
    bool fresh_field = false;
    const uint32_t base = parse_primary(&fresh_field);
    if (base == kErr) return kErr;
    std::vector<Segment> segments;
    while (tok_.kind == Tok::kDot || tok_.kind == Tok::kLBracket) {
      Segment seg;
      if (tok_.kind == Tok::kDot) {
        advance();
        if (tok_.kind != Tok::kIdent) {
          return fail(tok_.pos, "expected a field name after \".\", found " + describe(tok_));
        }
        seg.key = intern_key(tok_.text);
        advance();
      } else {
        const uint32_t open = tok_.pos;
        advance();
        if (tok_.kind == Tok::kString) {
          seg.key = intern_key(tok_.text);
          advance();
        } else if (tok_.kind == Tok::kNumber || tok_.kind == Tok::kMinus) {
          const uint32_t num_pos = tok_.pos;
          Value v = tok_.num;
          if (tok_.kind == Tok::kMinus) {
            advance();
            if (tok_.kind != Tok::kNumber) {
              return fail(tok_.pos, "expected a number after \"-\" in \"[...]\"");
            }
            v = negative_literal();
          }
          if (!v.is_int()) return fail(num_pos, "an array index must be an integer");
          seg.is_index = true;
          seg.index = v.as_int();
          advance();
        } else {
          return fail(tok_.pos, "expected an integer or a quoted string inside \"[...]\", found " +
                                    describe(tok_));
        }
        if (tok_.kind != Tok::kRBracket) {
          return fail(tok_.pos, "expected \"]\" to close the \"[\" at " + where(open) + ", found " +
                                    describe(tok_));
        }
        advance();
      }
      if (failed_) return kErr;
      segments.push_back(seg);
    }
    if (failed_) return kErr;
    if (fresh_field) {
      Path& path = p_->paths[p_->nodes[base].aux];
      path.segments.insert(path.segments.end(), segments.begin(), segments.end());
      register_field(path);
      return base;
    }
    if (segments.empty()) return base;
    p_->paths.push_back(Path{std::move(segments)});
    return add_node(Op::kGet, 0, std::span(&base, 1), static_cast<uint32_t>(p_->paths.size() - 1));
  }

  uint32_t new_field(std::vector<Segment> segments) {
    p_->paths.push_back(Path{std::move(segments)});
    Node n;
    n.op = Op::kField;
    n.aux = static_cast<uint32_t>(p_->paths.size() - 1);
    p_->nodes.push_back(n);
    return static_cast<uint32_t>(p_->nodes.size() - 1);
  }

  uint32_t parse_primary(bool* fresh_field) {
    if (failed_) return kErr;
    switch (tok_.kind) {
      case Tok::kNumber: {
        const Value v = tok_.num;
        advance();
        return failed_ ? kErr : add_const(v);
      }
      case Tok::kString: {
        const uint32_t id = add_const(Value::from_view(tok_.text));  // interned by add_const
        advance();
        return failed_ ? kErr : id;
      }
      case Tok::kDollar:
        advance();
        *fresh_field = true;
        return failed_ ? kErr : new_field({});
      case Tok::kLParen: {
        const uint32_t open = tok_.pos;
        DepthGuard guard(this, open);
        advance();
        const uint32_t k = parse_or();
        if (k == kErr) return kErr;
        if (tok_.kind != Tok::kRParen) {
          return fail(tok_.pos, "expected \")\" to close the \"(\" at " + where(open) + ", found " +
                                    describe(tok_));
        }
        advance();
        return failed_ ? kErr : k;
      }
      case Tok::kLBracket:
        return parse_list();
      case Tok::kBang:
        return parse_not();
      case Tok::kIdent:
        break;
      default:
        return expected_operand();
    }
    const std::string& word = tok_.text;
    if (word == "true" || word == "false") {
      const bool b = word == "true";
      advance();
      return failed_ ? kErr : add_const(Value::from_bool(b));
    }
    if (word == "null") {
      advance();
      return failed_ ? kErr : add_const(Value::null());
    }
    if (word == "not") return parse_not();
    if (word == "and" || word == "or" || word == "in") return expected_operand();
    const std::string name = word;
    const uint32_t name_pos = tok_.pos;
    advance();
    if (failed_) return kErr;
    if (tok_.kind == Tok::kLParen) return parse_call(name, name_pos);
    Segment seg;
    seg.key = intern_key(name);
    *fresh_field = true;
    return new_field({seg});
  }

  uint32_t parse_list() {
    const uint32_t open = tok_.pos;
    DepthGuard guard(this, open);
    advance();
    std::vector<uint32_t> items;
    if (tok_.kind != Tok::kRBracket) {
      while (true) {
        if (items.size() >= kMaxListItems) {
          return fail(open,
                      "list literal has more than " + std::to_string(kMaxListItems) + " items");
        }
        const uint32_t k = parse_or();
        if (k == kErr) return kErr;
        items.push_back(k);
        if (tok_.kind == Tok::kComma) {
          advance();
          continue;
        }
        if (tok_.kind == Tok::kRBracket) break;
        return fail(tok_.pos, "expected \",\" or \"]\" in the list started at " + where(open) +
                                  ", found " + describe(tok_));
      }
    }
    advance();
    if (failed_) return kErr;
    return add_node(Op::kList, 0, items, 0);
  }

  uint32_t parse_call(const std::string& name, uint32_t name_pos) {
    const FnInfo* fn = nullptr;
    for (const FnInfo& f : kFunctions) {
      if (f.name == name) fn = &f;
    }
    if (fn == nullptr) {
      std::string msg = "unknown function " + in_quotes(name);
      const std::string_view s = suggest_function(name);
      if (!s.empty()) {
        msg += " (did you mean \"" + std::string(s) + "\"?)";
      } else {
        msg += "; the functions are";
        for (size_t i = 0; i < std::size(kFunctions); ++i) {
          msg += i == 0 ? " " : ", ";
          msg += kFunctions[i].name;
        }
      }
      return fail(name_pos, msg);
    }
    DepthGuard guard(this, name_pos);
    const uint32_t open = tok_.pos;
    advance();
    std::vector<uint32_t> args;
    if (tok_.kind != Tok::kRParen) {
      while (true) {
        const uint32_t k = parse_or();
        if (k == kErr) return kErr;
        args.push_back(k);
        if (tok_.kind == Tok::kComma) {
          advance();
          continue;
        }
        if (tok_.kind == Tok::kRParen) break;
        return fail(tok_.pos, "expected \",\" or \")\" in the arguments of " + name +
                                  "() started at " + where(open) + ", found " + describe(tok_));
      }
    }
    advance();
    if (failed_) return kErr;
    const size_t n = args.size();
    if (n < fn->min_args || n > fn->max_args) {
      std::string msg = name + "() takes ";
      if (fn->max_args == kVariadic) msg += "at least ";
      const uint32_t want = n < fn->min_args ? fn->min_args : fn->max_args;
      msg += std::to_string(want) + (want == 1 ? " argument" : " arguments");
      msg += ", got " + std::to_string(n);
      return fail(name_pos, msg);
    }
    return add_node(Op::kCall, static_cast<uint8_t>(fn->fn), args, 0);
  }

  Program* p_;
  std::string_view src_;
  size_t pos_ = 0;  // lexer position
  Token tok_;       // current token
  uint32_t prev_pos_ = 0;
  uint32_t prev_len_ = 0;
  int depth_ = 0;
  bool failed_ = false;
  Status err_;
};

}  // namespace
}  // namespace internal

Result<Expression> Expression::compile(std::string_view source) {
  if (source.size() > internal::kMaxSourceBytes) {
    return InvalidArgument("expr:1:1: expression too long (" + std::to_string(source.size()) +
                           " bytes, limit " + std::to_string(internal::kMaxSourceBytes) + ")");
  }
  auto program = std::make_shared<internal::Program>();
  program->source.assign(source);
  internal::Compiler compiler(program.get());
  Status s = compiler.run();
  if (!s.ok()) return s;
  return Expression(std::move(program));
}

}  // namespace spate::expr
