// Result sink kind "kafka": window results as records of a Kafka topic (any cluster), keyed by
// {"analytics","window_start","key"} so that a compacted topic keeps exactly the latest result
// of every (window, key) — the upsert of result_sink.h, in Kafka's terms. Value = the result
// JSON as on the output topic; headers spate.updates and spate.final. A write returns once
// every record is acknowledged by the brokers (acks=all, idempotent producer).
#pragma once

#include <memory>
#include <string>

#include "analytics/result_sink.h"
#include "spate/log.h"

namespace spate::analytics {

struct KafkaSinkOptions {
  std::string topic;
  KafkaLogConfig kafka;  // bootstrap_servers ("" = $KAFKA_BOOTSTRAP_SERVERS), security
};

class KafkaResultSink final : public ResultSink {
 public:
  explicit KafkaResultSink(KafkaSinkOptions o) : o_(std::move(o)) {}
  ~KafkaResultSink() override;
  Status open() override;
  Status write(const std::vector<WindowResultRow>& rows, int64_t now_ms) override;
  std::string describe() const override;

 private:
  KafkaSinkOptions o_;
  std::unique_ptr<Log> kafka_;
  uint32_t partitions_ = 1;
};

}  // namespace spate::analytics
