// make_result_sink: the result sink kinds (result_sink.h).
#include "analytics/result_sink.h"

#include "analytics/file_sink.h"
#include "analytics/kafka_sink.h"
#include "analytics/postgres_sink.h"
#include "analytics/redis_sink.h"
#include "analytics/sqlite_sink.h"
#include "config/redis_url.h"
#include "ingest/sources/postgres_conn.h"

namespace spate::analytics {

Result<std::unique_ptr<ResultSink>> make_result_sink(const ResultSinkConfig& c,
                                                     const std::string& job) {
  const std::string table = c.table.empty() ? job : c.table;
  const std::string what = "analytics " + job + ": a " + c.kind + " result sink";
  if (c.kind == "sqlite") {
    if (c.path.empty()) return InvalidArgument(what + " needs a path");
    return std::unique_ptr<ResultSink>(std::make_unique<SqliteResultSink>(c.path, table));
  }
  if (c.kind == "file") {
    if (c.path.empty()) return InvalidArgument(what + " needs a path");
    return std::unique_ptr<ResultSink>(std::make_unique<FileResultSink>(c.path));
  }
  if (c.kind == "postgres") {
    if (c.url.empty()) return InvalidArgument(what + " needs a url (or $POSTGRES_URL)");
    if (std::string e = ingest::pg::check_conninfo(c.url); !e.empty()) {
      return InvalidArgument(what + ": url: " + e);
    }
    PostgresSinkOptions o;
    o.conninfo = c.url;
    o.table = table;
    o.connect_timeout_ms = c.connect_timeout_ms;
    o.timeout_ms = c.timeout_ms > 0 ? c.timeout_ms : 30'000;
    return std::unique_ptr<ResultSink>(std::make_unique<PostgresResultSink>(std::move(o)));
  }
  if (c.kind == "redis") {
    RedisSinkOptions o;
    if (std::string e =
            config::parse_redis_url(c.url.empty() ? "redis://127.0.0.1:6379/0" : c.url, &o.url);
        !e.empty()) {
      return InvalidArgument(what + ": url: " + e);
    }
    o.key_prefix = c.key_prefix.empty() ? "spate:" + job + ":" : c.key_prefix;
    o.ttl_ms = c.ttl_ms;
    o.timeout_ms = c.timeout_ms > 0 ? c.timeout_ms : 5'000;
    return std::unique_ptr<ResultSink>(std::make_unique<RedisResultSink>(std::move(o)));
  }
  if (c.kind == "kafka") {
    if (c.topic.empty()) return InvalidArgument(what + " needs a topic");
    KafkaSinkOptions o;
    o.topic = c.topic;
    o.kafka.bootstrap_servers = c.bootstrap_servers;
    if (kafka_bootstrap_servers(o.kafka).empty()) {
      return InvalidArgument(what + " needs bootstrap_servers (or $KAFKA_BOOTSTRAP_SERVERS)");
    }
    return std::unique_ptr<ResultSink>(std::make_unique<KafkaResultSink>(std::move(o)));
  }
  return InvalidArgument("analytics " + job + ": unknown result sink kind '" + c.kind + "'");
}

}  // namespace spate::analytics
