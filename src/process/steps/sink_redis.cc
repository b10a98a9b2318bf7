// kind: redis — one command per event, pipelined at flush. `set` and `hset` overwrite by key
// (and field), so a replayed event writes the same value again; `xadd`, `lpush` and `rpush`
// are not idempotent in Redis, so each runs in a script that first checks a marker key per
// event id ("<seen_prefix><event id>", kept for dedup_ttl) and sets it after the write.
#include <hiredis/hiredis.h>

#include <fmt/format.h>

#include <cctype>

#include "config/redis_url.h"
#include "ingest/redis/redis_conn.h"
#include "process/steps/sink.h"

namespace spate::process::sink {
namespace {

// KEYS[1] target, KEYS[2] marker; ARGV[1] marker ttl ms, ARGV[2] command, ARGV[3] event id,
// ARGV[4] value, ARGV[5] ttl ms of the target (0: none).
constexpr char kOnceScript[] =
    "if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end "
    "if ARGV[2] == 'XADD' then redis.call('XADD', KEYS[1], '*', 'event_id', ARGV[3], 'event', ARGV[4]) "
    "else redis.call(ARGV[2], KEYS[1], ARGV[4]) end "
    "if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end "
    "redis.call('SET', KEYS[2], '1', 'PX', ARGV[1]) return 1";

struct RedisOptions {
  config::RedisUrl url;
  std::string command = "set";
  Template key;
  Template field;                 // hset
  std::optional<Field> value;     // default: the event's JSON
  int64_t ttl_ms = 0;
  int64_t dedup_ttl_ms = 7LL * 86'400'000;
  std::string seen_prefix;
  int64_t timeout_ms = 5'000;
};

class RedisSink final : public EventProcessor {
 public:
  RedisSink(RedisOptions o, const std::string& processor, MetricsRegistry* metrics)
      : o_(std::move(o)),
        downstream_("redis://" + o_.url.describe()),
        metrics_(metrics, processor, "redis", downstream_) {}
  ~RedisSink() override { close(); }

  StepOutcome process(ProcessorEvent& ev, StepError*) override {
    Pending p;
    p.index = ev.index();
    p.id = ev.event_id();
    p.key = o_.key.render(ev);
    if (o_.value) {
      p.value = o_.value->eval(ev).value_or("");
    } else {
      p.value = std::string(ev.json());
    }
    if (o_.command == "hset") p.field = o_.field.render(ev);
    events_.push_back(std::move(p));
    return StepOutcome::kPass;
  }

  Status flush(std::vector<FlushFailure>* failed) override {
    if (events_.empty()) return Status::Ok();
    const int64_t t0 = steady_ns();
    if (ctx_ == nullptr) {
      auto c = ingest::redis_connect(o_.url, o_.timeout_ms);
      if (!c.ok()) {
        metrics_.failure("transient");
        return c.status().with_context(downstream_);
      }
      ctx_ = c->release();
    }
    const std::string ttl = std::to_string(o_.ttl_ms), dedup_ttl = std::to_string(o_.dedup_ttl_ms);
    std::string upper = o_.command;
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    for (const Pending& p : events_) {
      std::vector<std::string_view> args;
      std::string marker;
      if (o_.command == "set") {
        args = {"SET", p.key, p.value};
        if (o_.ttl_ms > 0) args.insert(args.end(), {"PX", ttl});
      } else if (o_.command == "hset") {
        args = {"HSET", p.key, p.field, p.value};
      } else {
        marker = o_.seen_prefix + p.id;
        args = {"EVAL", kOnceScript, "2", p.key, marker, dedup_ttl, upper, p.id, p.value,
                o_.ttl_ms > 0 ? std::string_view(ttl) : std::string_view("0")};
      }
      append(args);
      if (o_.command == "hset" && o_.ttl_ms > 0) {
        append({"PEXPIRE", p.key, ttl});
        }
    }
    std::vector<FlushFailure> failures;
    size_t i = 0;
    for (const Pending& p : events_) {
      const size_t replies = (o_.command == "hset" && o_.ttl_ms > 0) ? 2 : 1;
      for (size_t r = 0; r < replies; ++r, ++i) {
        void* raw = nullptr;
        if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
          // Timeout, reset, EOF: the connection is dropped and the flush retried.
          Status s = Unavailable(std::string("redis: ") + ctx_->errstr);
          close();
          metrics_.failure("transient");
          return s.with_context(downstream_);
        }
        ingest::RedisReplyPtr reply(static_cast<redisReply*>(raw));
        if (reply->type != REDIS_REPLY_ERROR) continue;
        std::string_view e(reply->str, reply->len);
        if (ingest::redis_transient_error(e)) {
          close();  // replies still in flight: the connection is not reused
          metrics_.failure("transient");
          return Unavailable(fmt::format("{}: {}", downstream_, e));
        }
        if (failures.empty() || failures.back().index != p.index) {
          failures.push_back({p.index, StepError{false, "redis", fmt::format("redis {}: {}", downstream_, e)}});
        }
      }
    }
    metrics_.flushed(t0, events_.size() - failures.size(), failures.size());
    *failed = std::move(failures);
    events_.clear();
    return Status::Ok();
  }

  void discard() override { events_.clear(); }
  std::string downstream() const override { return downstream_; }
  bool calls_downstream_in_flush_only() const override { return true; }

 private:
  struct Pending {
    size_t index;
    std::string id, key, field, value;
  };

  void append(const std::vector<std::string_view>& args) { (void)ingest::redis_append(ctx_, args); }

  void close() {
    if (ctx_ != nullptr) redisFree(ctx_);
    ctx_ = nullptr;
  }

  RedisOptions o_;
  std::string downstream_;
  SinkMetrics metrics_;
  redisContext* ctx_ = nullptr;
  std::vector<Pending> events_;
};

}  // namespace

// {kind: redis, url, command: set | hset | xadd | lpush | rpush, key: TEMPLATE, field: TEMPLATE,
//  value: EXPR, ttl, dedup_ttl: 7d, seen_prefix, timeout: 5s}
Result<std::unique_ptr<EventProcessor>> make_redis_sink(StepContext& ctx) {
  StepOptions& o = *ctx.options;
  RedisOptions r;
  std::string url;
  if (o.get_string("url", &url, true)) {
    if (std::string e = config::parse_redis_url(url, &r.url); !e.empty()) o.error("url", e);
  }
  o.get_enum("command", &r.command, {"set", "hset", "xadd", "lpush", "rpush"});
  std::string key = "spate:{@id}";
  o.get_string("key", &key);
  if (std::string e = r.key.compile(key); !e.empty()) o.error("key", e);
  std::string field = "{@id}";
  if (o.get_string("field", &field) && r.command != "hset") o.error("field", "only for command: hset");
  if (std::string e = r.field.compile(field); !e.empty()) o.error("field", e);
  std::string value;
  if (o.get_string("value", &value)) {
    auto f = compile_fields(o, "value", {{"value", value}});
    if (!f.empty()) r.value = std::move(f.front());
  }
  o.get_duration_ms("ttl", &r.ttl_ms, 1, 10LL * 365 * 86'400'000);
  o.get_duration_ms("dedup_ttl", &r.dedup_ttl_ms, 1, 10LL * 365 * 86'400'000);
  r.seen_prefix = "spate:seen:" + ctx.processor->name + ":";
  o.get_string("seen_prefix", &r.seen_prefix);
  o.get_duration_ms("timeout", &r.timeout_ms, 1, 600'000);
  SPATE_RETURN_IF_ERROR(o.finish());
  return std::unique_ptr<EventProcessor>(new RedisSink(std::move(r), ctx.processor->name, ctx.metrics));
}

}  // namespace spate::process::sink
