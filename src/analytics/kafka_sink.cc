#include "analytics/kafka_sink.h"

#include <fmt/format.h>

#include <array>
#include <map>

#include "base/hash.h"
#include "base/json_escape.h"

namespace spate::analytics {

KafkaResultSink::~KafkaResultSink() {
  if (kafka_) (void)kafka_->close();
}

Status KafkaResultSink::open() {
  if (kafka_) return Status::Ok();
  LogConfig lc;
  lc.kind = "kafka";
  lc.kafka = o_.kafka;
  lc.auto_create_topics = false;
  SPATE_ASSIGN_OR_RETURN(auto log, open_kafka_log(lc));
  SPATE_ASSIGN_OR_RETURN(TopicInfo info, log->describe_topic(o_.topic));
  partitions_ = std::max<uint32_t>(1, info.partitions);
  kafka_ = std::move(log);
  return Status::Ok();
}

Status KafkaResultSink::write(const std::vector<WindowResultRow>& rows, int64_t now_ms) {
  (void)now_ms;
  if (rows.empty()) return Status::Ok();
  SPATE_RETURN_IF_ERROR(open());
  std::vector<std::string> keys(rows.size());
  std::vector<std::string> updates(rows.size());
  std::vector<std::array<RecordHeader, 2>> headers(rows.size());
  std::map<uint32_t, std::vector<RecordIn>> by_partition;
  for (size_t i = 0; i < rows.size(); ++i) {
    const WindowResultRow& r = rows[i];
    std::string& k = keys[i];
    k = "{\"analytics\":";
    append_json_quoted(k, r.analytics);
    k += fmt::format(",\"window_start\":{},\"key\":{}}}", r.window_start, r.key_json);
    updates[i] = std::to_string(r.updates);
    headers[i] = {RecordHeader{"spate.updates", updates[i]},
                  RecordHeader{"spate.final", r.final ? "true" : "false"}};
    RecordIn in;
    in.key = keys[i];
    in.value = r.result_json;
    in.timestamp_ms = r.window_end;
    in.headers = headers[i].data();
    in.header_count = 2;
    by_partition[partition_for_key(keys[i], partitions_)].push_back(in);
  }
  for (const auto& [p, recs] : by_partition) {
    auto a = kafka_->append(o_.topic, p, recs.data(), recs.size());
    if (!a.ok()) return a.status().with_context("kafka result sink " + o_.topic);
  }
  return Status::Ok();
}

std::string KafkaResultSink::describe() const {
  return "kafka " + o_.topic + " at " + kafka_bootstrap_servers(o_.kafka);
}

}  // namespace spate::analytics
