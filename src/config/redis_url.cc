#include "config/redis_url.h"

#include <charconv>

namespace spate::config {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX-decoding of a userinfo part; false on a broken escape.
bool percent_decode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = hex_digit(in[i + 1]);
    int lo = hex_digit(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool parse_int(std::string_view s, int min, int max, int* out) {
  if (s.empty()) return false;
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < min || v > max) return false;
  *out = v;
  return true;
}

// "db=N" (the only query parameter understood).
std::string parse_query(std::string_view q, RedisUrl* out) {
  if (q.substr(0, 3) != "db=" || !parse_int(q.substr(3), 0, 1 << 20, &out->db)) {
    return "the only query parameter is db=N (a database number)";
  }
  return "";
}

}  // namespace

std::string RedisUrl::describe() const {
  std::string where = socket_path.empty()
                          ? (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                                std::to_string(port)
                          : "unix:" + socket_path;
  return where + "/" + std::to_string(db);
}

std::string parse_redis_url(std::string_view url, RedisUrl* out) {
  *out = RedisUrl{};
  if (url.substr(0, 9) == "rediss://") {
    return "rediss:// (TLS) is not supported by this build; use redis:// or a unix: socket";
  }
  if (url.substr(0, 5) == "unix:") {
    std::string_view rest = url.substr(5);
    if (rest.substr(0, 2) == "//") rest.remove_prefix(2);  // unix:///path
    size_t q = rest.find('?');
    if (q != std::string_view::npos) {
      if (std::string e = parse_query(rest.substr(q + 1), out); !e.empty()) return e;
      rest = rest.substr(0, q);
    }
    if (rest.empty() || rest[0] != '/') return "expected unix:/absolute/path/to/redis.sock";
    out->socket_path = std::string(rest);
    return "";
  }
  if (url.substr(0, 8) != "redis://") {
    return "expected redis://[:password@]host[:port][/db] or unix:/path/to/redis.sock";
  }
  std::string_view rest = url.substr(8);
  size_t q = rest.find('?');
  std::string_view query;
  if (q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    std::string_view user = userinfo.substr(0, colon);
    if (!percent_decode(user, &out->user)) return "bad %-escape in the user name";
    if (colon != std::string_view::npos &&
        !percent_decode(userinfo.substr(colon + 1), &out->password)) {
      return "bad %-escape in the password";
    }
  }
  std::string_view host = authority;
  std::string_view port;
  if (!host.empty() && host[0] == '[') {  // [::1]:6379
    size_t close = host.find(']');
    if (close == std::string_view::npos) return "unterminated [ in the host";
    std::string_view after = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!after.empty()) {
      if (after[0] != ':') return "expected :port after the [host]";
      port = after.substr(1);
      if (port.empty()) return "empty port";
    }
  } else {
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
      if (port.empty()) return "empty port";
    }
  }
  if (host.empty()) return "missing host (redis://host:port/db)";
  out->host = std::string(host);
  if (!port.empty() && !parse_int(port, 1, 65535, &out->port)) {
    return "the port must be a number from 1 to 65535";
  }
  if (!path.empty() && !parse_int(path, 0, 1 << 20, &out->db)) {
    return "the path must be a database number (redis://host:port/0)";
  }
  if (!query.empty()) return parse_query(query, out);
  return "";
}

}  // namespace spate::config
