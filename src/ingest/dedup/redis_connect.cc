#include "ingest/dedup/redis_connect.h"

#include <hiredis/hiredis.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace spate::ingest {
namespace {

Status failed(redisContext* ctx, std::string what) {
  if (ctx != nullptr) redisFree(ctx);
  return Unavailable(std::move(what));
}

}  // namespace

void RedisReplyFree::operator()(redisReply* r) const { freeReplyObject(r); }

RedisReply redis_command(redisContext* ctx, std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> len;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    len.push_back(a.size());
  }
  return RedisReply(static_cast<redisReply*>(
      redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), len.data())));
}

Result<redisContext*> redis_open(const config::RedisUrl& url, int64_t timeout_ms) {
  const timeval tv{static_cast<time_t>(timeout_ms / 1000),
                   static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
  redisContext* ctx = url.socket_path.empty()
                          ? redisConnectWithTimeout(url.host.c_str(), url.port, tv)
                          : redisConnectUnixWithTimeout(url.socket_path.c_str(), tv);
  if (ctx == nullptr) return failed(nullptr, "cannot allocate a connection");
  if (ctx->err != 0) return failed(ctx, ctx->errstr);
  if (redisSetTimeout(ctx, tv) != REDIS_OK) return failed(ctx, "cannot set the timeout");
  if (url.socket_path.empty()) (void)redisEnableKeepAlive(ctx);
  auto text = [](const redisReply* r) { return std::string(r->str, r->len); };
  if (!url.password.empty()) {
    RedisReply r = url.user.empty() ? redis_command(ctx, {"AUTH", url.password})
                                  : redis_command(ctx, {"AUTH", url.user, url.password});
    if (!r) return failed(ctx, std::string("AUTH: ") + ctx->errstr);
    // The server's message (e.g. WRONGPASS ...) does not echo the password.
    if (r->type == REDIS_REPLY_ERROR) return failed(ctx, "AUTH failed: " + text(r.get()));
  }
  if (url.db != 0) {
    RedisReply r = redis_command(ctx, {"SELECT", std::to_string(url.db)});
    if (!r) return failed(ctx, std::string("SELECT: ") + ctx->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
      return failed(ctx, "SELECT " + std::to_string(url.db) + " failed: " + text(r.get()));
    }
  }
  RedisReply r = redis_command(ctx, {"PING"});
  if (!r) return failed(ctx, std::string("PING: ") + ctx->errstr);
  if (r->type == REDIS_REPLY_ERROR) return failed(ctx, text(r.get()));
  return ctx;
}

}  // namespace spate::ingest
