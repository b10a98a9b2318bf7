// Blocking hiredis connections (redis_conn.h).
#include "ingest/redis/redis_conn.h"

#include <hiredis/hiredis.h>
#include <signal.h>

#include <cerrno>
#include <csignal>
#include <string>
#include <vector>

namespace spate::ingest {

void RedisReplyDeleter::operator()(redisReply* r) const { freeReplyObject(r); }
void RedisContextDeleter::operator()(redisContext* c) const { redisFree(c); }

RedisReplyPtr redis_command(redisContext* ctx, std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> len;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    len.push_back(a.size());
  }
  return RedisReplyPtr(static_cast<redisReply*>(
      redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), len.data())));
}

bool redis_append(redisContext* ctx, const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> len;
  argv.reserve(args.size());
  len.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    len.push_back(a.size());
  }
  return redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), len.data()) ==
         REDIS_OK;
}

bool redis_transient_error(std::string_view e) {
  for (std::string_view p : {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "OOM",
                             "CLUSTERDOWN", "NOREPLICAS"}) {
    if (e.substr(0, p.size()) == p) return true;
  }
  return false;
}

Result<RedisContextPtr> redis_connect(const config::RedisUrl& url, int64_t timeout_ms) {
  const std::string where = "redis " + url.describe() + ": ";
  const timeval tv{static_cast<time_t>(timeout_ms / 1000),
                   static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
  RedisContextPtr ctx(url.socket_path.empty()
                          ? redisConnectWithTimeout(url.host.c_str(), url.port, tv)
                          : redisConnectUnixWithTimeout(url.socket_path.c_str(), tv));
  if (ctx == nullptr) return Unavailable(where + "cannot allocate a connection");
  auto io_error = [&](const std::string& what) -> Status {
    std::string msg = where + what + ctx->errstr;
    if (ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ETIMEDOUT)) {
      return Timeout(msg);
    }
    return Unavailable(msg);
  };
  if (ctx->err != 0) return io_error("");
  if (redisSetTimeout(ctx.get(), tv) != REDIS_OK) return Unavailable(where + "cannot set the timeout");
  if (url.socket_path.empty()) (void)redisEnableKeepAlive(ctx.get());
  auto checked = [&](std::initializer_list<std::string_view> args, const std::string& what) -> Status {
    RedisReplyPtr r = redis_command(ctx.get(), args);
    if (!r) return io_error(what + ": ");
    // The server's messages (e.g. WRONGPASS ...) do not echo the password.
    if (r->type == REDIS_REPLY_ERROR) return Unavailable(where + what + " failed: " + std::string(r->str, r->len));
    return Status::Ok();
  };
  if (!url.password.empty()) {
    SPATE_RETURN_IF_ERROR(url.user.empty() ? checked({"AUTH", url.password}, "AUTH")
                                           : checked({"AUTH", url.user, url.password}, "AUTH"));
  }
  if (url.db != 0) {
    const std::string db = std::to_string(url.db);
    SPATE_RETURN_IF_ERROR(checked({"SELECT", db}, "SELECT " + db));
  }
  SPATE_RETURN_IF_ERROR(checked({"PING"}, "PING"));
  return ctx;
}

void ignore_sigpipe() {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    std::signal(SIGPIPE, SIG_IGN);
  }
}

}  // namespace spate::ingest
