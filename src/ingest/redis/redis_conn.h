// Blocking hiredis connections as this project opens them (the Redis dedup store, the enrich
// step's redis source): connect with a bounded timeout, the same timeout on every reply,
// TCP keepalive, AUTH (user and password from the URL), SELECT db, then PING — which catches a
// server that wants AUTH when no password is configured (NOAUTH).
//
// Contract: thread-safe functions; a redisContext is used by one thread at a time.
// redis_connect() returns an open context or an error whose message is "redis WHERE: reason"
// (WHERE = RedisUrl::describe(), never the password): kTimeout when the server did not answer
// in time, kUnavailable otherwise. ignore_sigpipe() makes writes to a closed connection fail
// with EPIPE instead of ending the process (unless the program handles SIGPIPE itself).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <vector>

#include "config/redis_url.h"
#include "spate/status.h"

struct redisContext;
struct redisReply;

namespace spate::ingest {

struct RedisReplyDeleter {
  void operator()(redisReply* r) const;
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

struct RedisContextDeleter {
  void operator()(redisContext* c) const;
};
using RedisContextPtr = std::unique_ptr<redisContext, RedisContextDeleter>;

/// Connect, authenticate, select the database, PING. `timeout_ms` bounds the connect and
/// every later reply.
Result<RedisContextPtr> redis_connect(const config::RedisUrl& url, int64_t timeout_ms);

/// One blocking command (binary-safe arguments); nullptr on an I/O error (see ctx->errstr).
RedisReplyPtr redis_command(redisContext* ctx, std::initializer_list<std::string_view> args);

/// Queue one command for a pipeline (binary-safe arguments; read its reply with
/// redisGetReply). False if hiredis could not queue it (out of memory).
bool redis_append(redisContext* ctx, const std::vector<std::string_view>& args);

/// Whether an error reply is worth retrying (the server is loading, busy, read-only, out of
/// memory, without a primary, ...).
bool redis_transient_error(std::string_view error);

/// SIGPIPE -> ignored, if its disposition is the default.
void ignore_sigpipe();

}  // namespace spate::ingest
