// Opening a hiredis connection from a RedisUrl, shared by the Redis dedup store and the
// processor's redis sink (hiredis is included only by the .cc files that use it).
//
// Contract: redis_open() connects with `timeout_ms` as the connect timeout and as the timeout
// of every later command, enables TCP keep-alive, sends AUTH (user and password from the URL)
// and SELECT (a db other than 0), and checks the connection with PING (a server that wants AUTH
// when none is configured fails here). On success the caller owns the context (redisFree); on
// failure nothing is left open and the Status (kUnavailable) says what failed, never with the
// password. Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>

#include "config/redis_url.h"
#include "spate/status.h"

struct redisContext;
struct redisReply;

namespace spate::ingest {

Result<redisContext*> redis_open(const config::RedisUrl& url, int64_t timeout_ms);

struct RedisReplyFree {
  void operator()(redisReply* r) const;
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyFree>;

/// One blocking command (binary-safe arguments); nullptr when the connection failed (see
/// ctx->err / ctx->errstr: the connection is then unusable).
RedisReply redis_command(redisContext* ctx, std::initializer_list<std::string_view> args);

}  // namespace spate::ingest
