// HealthPublisher (process/health.h).
#include "process/health.h"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "base/clock.h"
#include "ingest/redis/redis_conn.h"
#include "spate/metrics.h"
#include "spate/processor.h"

namespace spate {

struct HealthPublisher::Impl {
  HealthConfig cfg;
  std::string pipeline;
  std::vector<const KafkaStreamProcessor*> processors;
  config::RedisUrl url;
  Counter* failures = nullptr;
  ingest::RedisContextPtr ctx;
  bool failing = false;
  std::map<const KafkaStreamProcessor*, std::pair<uint64_t, uint64_t>> last;  // consumed, failed
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::string host;

  Status beat();
};

HealthPublisher::HealthPublisher(HealthConfig cfg, std::string pipeline,
                                 std::vector<const KafkaStreamProcessor*> processors,
                                 MetricsRegistry* metrics)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(cfg);
  impl_->pipeline = std::move(pipeline);
  impl_->processors = std::move(processors);
  impl_->failures = &(metrics ? *metrics : global_metrics())
                         .counter("spate_health_publish_failures_total",
                                  "Heartbeats that could not be written to Redis");
  char h[256] = {};
  ::gethostname(h, sizeof h - 1);
  impl_->host = h;
}

HealthPublisher::~HealthPublisher() { stop(); }

Status HealthPublisher::start() {
  Impl& m = *impl_;
  if (std::string e = config::parse_redis_url(m.cfg.redis_url, &m.url); !e.empty()) {
    return ConfigError("health.redis_url: " + e);
  }
  ingest::ignore_sigpipe();
  m.thread = std::thread([this] {
    Impl& m = *impl_;
    std::unique_lock lk(m.mu);
    while (!m.stop) {
      lk.unlock();
      Status s = m.beat();
      if (s.ok()) {
        beats_.fetch_add(1);
        if (m.failing) spdlog::info("health: writing heartbeats to redis {} again", m.url.describe());
        m.failing = false;
      } else {
        m.failures->inc();
        m.ctx.reset();
        if (!m.failing) spdlog::warn("health: cannot write heartbeats to redis: {}", s.to_string());
        m.failing = true;
      }
      lk.lock();
      m.cv.wait_for(lk, std::chrono::milliseconds(m.cfg.interval_ms), [&] { return m.stop; });
    }
  });
  return Status::Ok();
}

void HealthPublisher::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lk(m.mu);
    m.stop = true;
  }
  m.cv.notify_all();
  if (m.thread.joinable()) m.thread.join();
}

Status HealthPublisher::Impl::beat() {
  const int64_t timeout = std::min<int64_t>(cfg.interval_ms, 2'000);
  if (!ctx) {
    SPATE_ASSIGN_OR_RETURN(ctx, ingest::redis_connect(url, timeout));
  }
  const int64_t now = system_clock()->now_ms();
  const std::string set_key = fmt::format("{}:{}", cfg.key_prefix, pipeline);
  const std::string ttl = std::to_string(cfg.interval_ms * 3);
  size_t queued = 0;
  auto append = [&](std::vector<std::string> args) {
    std::vector<const char*> argv;
    std::vector<size_t> len;
    for (const auto& a : args) {
      argv.push_back(a.data());
      len.push_back(a.size());
    }
    redisAppendCommandArgv(ctx.get(), static_cast<int>(argv.size()), argv.data(), len.data());
    ++queued;
  };
  for (const KafkaStreamProcessor* p : processors) {
    const ProcessorConfig& c = p->config();
    const ProcessorStats st = p->stats();
    auto& [last_consumed, last_failed] = last[p];
    const uint64_t dc = st.consumed - std::min(st.consumed, last_consumed);
    const uint64_t df = st.failed - std::min(st.failed, last_failed);
    last_consumed = st.consumed;
    last_failed = st.failed;
    const double error_rate = dc == 0 ? 0.0 : static_cast<double>(df) / static_cast<double>(dc);
    std::string breaker = "closed";
    for (const DownstreamStatus& d : p->downstreams()) {
      if (d.state == "open") breaker = "open";
      else if (d.state == "half_open" && breaker == "closed") breaker = "half_open";
    }
    const char* state = st.paused ? "paused" : (breaker != "closed" ? "degraded" : "running");
    const std::string key =
        fmt::format("{}:{}:processor:{}:{}", cfg.key_prefix, pipeline, c.name, c.replica);
    append({"HSET", key, "pipeline", pipeline, "processor", c.name, "replica",
            std::to_string(c.replica), "replicas", std::to_string(c.replicas), "workers",
            std::to_string(c.workers), "host", host, "pid", std::to_string(::getpid()),
            "heartbeat_ms", std::to_string(now), "state", state, "consumed",
            std::to_string(st.consumed), "produced", std::to_string(st.produced), "failed",
            std::to_string(st.failed), "dead_lettered", std::to_string(st.dead_lettered), "lag",
            std::to_string(p->total_lag()), "error_rate", fmt::format("{:.6f}", error_rate),
            "breaker", breaker, "exactly_once", c.exactly_once ? "true" : "false"});
    append({"PEXPIRE", key, ttl});
    append({"ZADD", set_key, std::to_string(now), key});
  }
  append({"ZREMRANGEBYSCORE", set_key, "-inf", std::to_string(now - cfg.interval_ms * 3)});
  append({"PEXPIRE", set_key, ttl});
  Status result;
  for (size_t i = 0; i < queued; ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx.get(), &raw) != REDIS_OK || raw == nullptr) {
      return Unavailable(fmt::format("redis {}: {}", url.describe(), ctx->errstr));
    }
    ingest::RedisReplyPtr r(static_cast<redisReply*>(raw));
    if (r->type == REDIS_REPLY_ERROR && result.ok()) {
      result = Unavailable(fmt::format("redis {}: {}", url.describe(), std::string(r->str, r->len)));
    }
  }
  return result;
}

}  // namespace spate
