// RedisResultSink: the latest result per key in Redis (result sink kind `redis`).
//
// Per row, key `<key_prefix><key JSON>` (e.g. `spate:activity:{"user":"ann"}`) holds the result
// JSON as a string (GET it), with an expiry of `ttl` if set. A row replaces the stored value only
// if it is not older: its window_start is later, or the same window with `updates` >= the
// stored one's (the stored result's "window_start" and "update" fields, compared in a Lua
// script, so check and write are atomic). Windows of a key are not kept; the SQL kinds are for
// history.
//
// Contract: open() connects (redis_conn.h: AUTH, SELECT, PING) and loads the script. write()
// pipelines one EVALSHA per row and reads every reply: on an I/O error or a transient error
// reply (LOADING, READONLY, NOSCRIPT, ...) the connection is dropped and kUnavailable returned
// (the next write() reconnects); another error reply (WRONGTYPE: the key holds something else)
// is kIo. Rows before a failure may have been applied; the retry writes them again, which
// changes nothing (same versions). describe() names the server without credentials. Not
// thread-safe: one engine thread owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analytics/result_sink.h"
#include "config/redis_url.h"
#include "spate/status.h"

struct redisContext;

namespace spate::analytics {

struct RedisSinkOptions {
  config::RedisUrl url;
  std::string key_prefix;      // "spate:<job>:"
  int64_t ttl_ms = 0;          // 0 = keys do not expire
  int64_t timeout_ms = 5'000;  // connect and every reply
};

class RedisResultSink final : public ResultSink {
 public:
  explicit RedisResultSink(RedisSinkOptions options);
  ~RedisResultSink() override;
  RedisResultSink(const RedisResultSink&) = delete;
  RedisResultSink& operator=(const RedisResultSink&) = delete;

  Status open() override;
  Status write(const std::vector<WindowResultRow>& rows, int64_t now_ms) override;
  std::string describe() const override { return "redis " + o_.url.describe(); }

 private:
  Status connect();
  void close();

  RedisSinkOptions o_;
  redisContext* ctx_ = nullptr;
  std::string sha_;  // of the upsert script, loaded at connect
};

}  // namespace spate::analytics
