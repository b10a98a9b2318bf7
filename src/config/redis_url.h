// Redis connection URLs, as used by `ingestion.dedup.redis_url` and $REDIS_URL.
//
// Accepted forms:
//   redis://[[user][:password]@]host[:port][/db]   host may be [v6-literal]; port 6379, db 0 by
//                                                  default; user and password are %-decoded
//   unix:/path/to/redis.sock[?db=N]                also unix:///path; no credentials in the URL
// `?db=N` is also accepted after a redis:// URL (instead of /db). rediss:// (TLS) is refused:
// the hiredis this build uses has no TLS.
//
// Contract: pure functions, thread-safe. parse_redis_url() returns "" and fills *out, or returns
// a one-line error (which never contains the password) and leaves *out unspecified.
#pragma once

#include <string>
#include <string_view>

namespace spate::config {

struct RedisUrl {
  std::string host;         // TCP host; empty for a unix socket
  int port = 6379;
  std::string socket_path;  // unix socket; empty for TCP
  std::string user;         // ACL user ("" = the default user)
  std::string password;     // "" = none in the URL (secret: never log it)
  int db = 0;

  /// "127.0.0.1:6379/0" or "unix:/run/redis.sock/0": where, without credentials (for logs).
  std::string describe() const;
};

std::string parse_redis_url(std::string_view url, RedisUrl* out);

}  // namespace spate::config
