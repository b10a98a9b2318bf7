#include "analytics/redis_sink.h"

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include "ingest/redis/redis_conn.h"

namespace spate::analytics {
namespace {

// KEYS[1] the key; ARGV[1] result JSON, ARGV[2] window_start, ARGV[3] updates, ARGV[4] ttl ms
// ("0": none). Returns 1 if written, 0 if the stored result is newer. A stored value that is
// not one of our results (not JSON, no window_start/update) is overwritten.
constexpr char kUpsertScript[] =
    "local cur = redis.call('GET', KEYS[1]) "
    "if cur then "
    "  local ok, d = pcall(cjson.decode, cur) "
    "  if ok and type(d) == 'table' then "
    "    local ws, up = tonumber(d['window_start']), tonumber(d['update']) "
    "    local nws, nup = tonumber(ARGV[2]), tonumber(ARGV[3]) "
    "    if ws and up and (nws < ws or (nws == ws and nup < up)) then return 0 end "
    "  end "
    "end "
    "if ARGV[4] ~= '0' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4]) "
    "else redis.call('SET', KEYS[1], ARGV[1]) end "
    "return 1";

}  // namespace

RedisResultSink::RedisResultSink(RedisSinkOptions options) : o_(std::move(options)) {}

RedisResultSink::~RedisResultSink() {
  close();
}

void RedisResultSink::close() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
  sha_.clear();
}

// Connect and load the script (EVALSHA then sends 40 bytes a row instead of the script).
Status RedisResultSink::connect() {
  if (ctx_ != nullptr) return Status::Ok();
  SPATE_ASSIGN_OR_RETURN(ingest::RedisContextPtr c, ingest::redis_connect(o_.url, o_.timeout_ms));
  ingest::RedisReplyPtr r = ingest::redis_command(c.get(), {"SCRIPT", "LOAD", kUpsertScript});
  if (!r) return Unavailable(describe() + ": SCRIPT LOAD: " + c->errstr);
  if (r->type != REDIS_REPLY_STRING) {
    return IoError(describe() + ": SCRIPT LOAD failed: " +
                   (r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "no SHA"));
  }
  sha_.assign(r->str, r->len);
  ctx_ = c.release();
  return Status::Ok();
}

Status RedisResultSink::open() {
  ingest::ignore_sigpipe();
  return connect();
}

Status RedisResultSink::write(const std::vector<WindowResultRow>& rows, int64_t) {
  if (rows.empty()) return Status::Ok();
  SPATE_RETURN_IF_ERROR(connect());
  const std::string ttl = std::to_string(o_.ttl_ms);
  std::string key, start, updates;
  for (const WindowResultRow& r : rows) {
    key = o_.key_prefix + r.key_json;
    start = std::to_string(r.window_start);
    updates = std::to_string(r.updates);
    if (!ingest::redis_append(ctx_,
                              {"EVALSHA", sha_, "1", key, r.result_json, start, updates, ttl})) {
      close();
      return Unavailable(describe() + ": cannot queue a command (out of memory)");
    }
  }
  Status first;
  for (size_t i = 0; i < rows.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
      // Timeout, reset, EOF: drop the connection; the engine retries the batch.
      Status s = Unavailable(fmt::format("{}: {}", describe(), ctx_->errstr));
      close();
      return s;
    }
    ingest::RedisReplyPtr reply(static_cast<redisReply*>(raw));
    if (reply->type != REDIS_REPLY_ERROR || !first.ok()) continue;
    const std::string_view e(reply->str, reply->len);
    // NOSCRIPT: the server's script cache was flushed; reconnecting loads the script again.
    first = ingest::redis_transient_error(e) || e.substr(0, 8) == "NOSCRIPT"
                ? Unavailable(fmt::format("{}: {}", describe(), e))
                : IoError(fmt::format("{}: {}", describe(), e));
  }
  if (first.code() == Errc::kUnavailable) close();
  return first;
}

}  // namespace spate::analytics
