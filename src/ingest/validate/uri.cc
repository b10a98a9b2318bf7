#include "ingest/validate/uri.h"

namespace spate::schema {
namespace {

struct UriParts {
  std::string_view scheme;  // without ':'
  bool has_authority = false;
  std::string_view authority;
  std::string_view path;
  bool has_query = false;
  std::string_view query;
  bool has_fragment = false;
  std::string_view fragment;
};

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

UriParts parse(std::string_view u) {
  UriParts p;
  size_t colon = u.find(':');
  size_t delim = u.find_first_of("/?#");
  if (colon != std::string_view::npos && colon > 0 && (delim == u.npos || colon < delim) &&
      is_alpha(u[0])) {
    bool ok = true;
    for (size_t i = 1; i < colon && ok; ++i) {
      char c = u[i];
      ok = is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
    }
    if (ok) {
      p.scheme = u.substr(0, colon);
      u.remove_prefix(colon + 1);
    }
  }
  if (u.starts_with("//")) {
    u.remove_prefix(2);
    size_t end = u.find_first_of("/?#");
    if (end == std::string_view::npos) end = u.size();
    p.has_authority = true;
    p.authority = u.substr(0, end);
    u.remove_prefix(end);
  }
  size_t end = u.find_first_of("?#");
  if (end == std::string_view::npos) end = u.size();
  p.path = u.substr(0, end);
  u.remove_prefix(end);
  if (u.starts_with("?")) {
    u.remove_prefix(1);
    end = u.find('#');
    if (end == std::string_view::npos) end = u.size();
    p.has_query = true;
    p.query = u.substr(0, end);
    u.remove_prefix(end);
  }
  if (u.starts_with("#")) {
    p.has_fragment = true;
    p.fragment = u.substr(1);
  }
  return p;
}

// RFC 3986 §5.2.4.
std::string remove_dot_segments(std::string_view in) {
  std::string out;
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.remove_prefix(3);
    } else if (in.starts_with("./") || in.starts_with("/./")) {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../") || in == "/..") {
      in = in.size() == 3 ? std::string_view("/") : in.substr(3);
      auto slash = out.rfind('/');
      out.erase(slash == std::string::npos ? 0 : slash);
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      size_t next = in.find('/', 1);
      if (next == std::string_view::npos) next = in.size();
      out.append(in.substr(0, next));
      in.remove_prefix(next);
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string resolve_uri(std::string_view base, std::string_view ref) {
  UriParts b = parse(base), r = parse(ref);
  std::string_view scheme, authority, query;
  bool has_authority = false, has_query = false;
  std::string path;
  if (!r.scheme.empty()) {
    scheme = r.scheme;
    has_authority = r.has_authority;
    authority = r.authority;
    path = remove_dot_segments(r.path);
    has_query = r.has_query;
    query = r.query;
  } else {
    scheme = b.scheme;
    if (r.has_authority) {
      has_authority = true;
      authority = r.authority;
      path = remove_dot_segments(r.path);
      has_query = r.has_query;
      query = r.query;
    } else {
      has_authority = b.has_authority;
      authority = b.authority;
      if (r.path.empty()) {
        path = std::string(b.path);
        has_query = r.has_query || b.has_query;
        query = r.has_query ? r.query : b.query;
      } else {
        if (r.path.starts_with("/")) {
          path = remove_dot_segments(r.path);
        } else {
          std::string merged;
          if (b.has_authority && b.path.empty()) {
            merged = "/";
          } else {
            auto slash = b.path.rfind('/');
            if (slash != std::string_view::npos) merged = std::string(b.path.substr(0, slash + 1));
          }
          merged.append(r.path);
          path = remove_dot_segments(merged);
        }
        has_query = r.has_query;
        query = r.query;
      }
    }
  }
  std::string out;
  if (!scheme.empty()) {
    out.append(scheme);
    out.push_back(':');
  }
  if (has_authority) {
    out.append("//");
    out.append(authority);
  }
  out.append(path);
  if (has_query) {
    out.push_back('?');
    out.append(query);
  }
  if (r.has_fragment) {
    out.push_back('#');
    out.append(r.fragment);
  }
  return out;
}

std::pair<std::string_view, std::string_view> split_fragment(std::string_view uri) {
  auto hash = uri.find('#');
  if (hash == std::string_view::npos) return {uri, {}};
  return {uri.substr(0, hash), uri.substr(hash + 1)};
}

std::string_view uri_scheme(std::string_view uri) {
  return parse(uri).scheme;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

Result<std::vector<std::string>> parse_json_pointer(std::string_view pointer) {
  std::vector<std::string> tokens;
  if (pointer.empty()) return tokens;
  if (pointer[0] != '/') return InvalidArgument("a JSON Pointer must start with '/'");
  size_t i = 1;
  while (true) {
    size_t next = pointer.find('/', i);
    std::string_view raw =
        pointer.substr(i, next == std::string_view::npos ? pointer.npos : next - i);
    std::string token;
    token.reserve(raw.size());
    for (size_t k = 0; k < raw.size(); ++k) {
      if (raw[k] != '~') {
        token.push_back(raw[k]);
      } else if (k + 1 < raw.size() && raw[k + 1] == '0') {
        token.push_back('~');
        ++k;
      } else if (k + 1 < raw.size() && raw[k + 1] == '1') {
        token.push_back('/');
        ++k;
      } else {
        return InvalidArgument("'~' in a JSON Pointer must be followed by 0 or 1");
      }
    }
    tokens.push_back(std::move(token));
    if (next == std::string_view::npos) break;
    i = next + 1;
  }
  return tokens;
}

void append_pointer_token(std::string& pointer, std::string_view token) {
  pointer.push_back('/');
  for (char c : token) {
    if (c == '~') {
      pointer.append("~0");
    } else if (c == '/') {
      pointer.append("~1");
    } else {
      pointer.push_back(c);
    }
  }
}

}  // namespace spate::schema
