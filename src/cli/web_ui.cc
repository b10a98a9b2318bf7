#include "cli/web_ui.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <set>
#include <vector>

#include "base/json_escape.h"

namespace spate::cli {

namespace {

struct Row {
  int64_t ts = 0;
  uint32_t partition = 0;
  int64_t offset = 0;
  std::string json;
};

// The newest `n` records of `topic`, newest first; values that are not JSON objects are
// skipped (a results or alerts topic holds only objects unless someone else writes to it).
std::vector<Row> tail(Log& log, const std::string& topic, size_t n, simdjson::dom::parser& parser) {
  std::vector<Row> rows;
  if (n == 0) return rows;
  auto info = log.describe_topic(topic);
  if (!info.ok()) return rows;
  for (const PartitionInfo& p : info->partition_info) {
    int64_t from = std::max(p.start_offset, p.end_offset - static_cast<int64_t>(n));
    while (from < p.end_offset) {
      FetchOptions fo;
      fo.max_records = n;
      fo.isolation = Isolation::kReadCommitted;  // what downstream readers see
      auto fr = log.fetch(topic, p.partition, from, fo);
      if (!fr.ok() || fr->records().empty() || fr->next_offset <= from) break;
      for (const RecordView& r : fr->records()) {
        simdjson::dom::object obj;
        if (parser.parse(r.value.data(), r.value.size()).get(obj) != simdjson::SUCCESS) continue;
        rows.push_back({r.timestamp_ms, p.partition, r.offset, std::string(r.value)});
      }
      from = fr->next_offset;
    }
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    if (a.ts != b.ts) return a.ts > b.ts;
    if (a.partition != b.partition) return a.partition < b.partition;
    return a.offset > b.offset;
  });
  if (rows.size() > n) rows.resize(n);
  return rows;
}

void append_rows(std::string& out, const std::vector<Row>& rows) {
  out += '[';
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i) out += ',';
    out += rows[i].json;
  }
  out += ']';
}

bool count_param(const HttpRequest& req, const char* name, size_t def, size_t* out) {
  *out = def;
  auto v = req.query_param(name);
  if (!v) return true;
  size_t n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || p != v->data() + v->size()) return false;
  *out = std::min<size_t>(n, 500);
  return true;
}

}  // namespace

std::string ui_data_json(const PipelineConfig& pc, Log& log, const HttpRequest& req, int* status) {
  *status = 200;
  size_t n_results = 0;
  size_t n_alerts = 0;
  if (!count_param(req, "results", 20, &n_results) || !count_param(req, "alerts", 50, &n_alerts)) {
    *status = 400;
    return R"({"error":"results and alerts are counts: GET /ui/data?results=20&alerts=50"})";
  }
  simdjson::dom::parser parser;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::string out = "{\"time_ms\":" + std::to_string(now_ms) + ",\"name\":\"" +
                    json_escape(pc.name) + "\",\"results\":[";
  bool first = true;
  std::set<std::string> alert_topics;
  for (const AnalyticsConfig& a : pc.analytics) {
    if (!a.alerts_topic.empty()) alert_topics.insert(a.alerts_topic);
    if (a.output.empty()) continue;
    if (!first) out += ',';
    first = false;
    out += "{\"job\":\"" + json_escape(a.name) + "\",\"topic\":\"" + json_escape(a.output) +
           "\",\"rows\":";
    append_rows(out, tail(log, a.output, n_results, parser));
    out += '}';
  }
  for (const NotifierConfig& n : pc.notifiers) {
    if (n.kind == "topic" && !n.topic.empty()) alert_topics.insert(n.topic);
  }
  // The same alert can be in several alerts topics: keep one per (id, state, at_ms).
  std::vector<Row> alerts;
  for (const std::string& t : alert_topics) {
    auto rows = tail(log, t, n_alerts, parser);
    alerts.insert(alerts.end(), std::make_move_iterator(rows.begin()),
                  std::make_move_iterator(rows.end()));
  }
  std::stable_sort(alerts.begin(), alerts.end(), [](const Row& a, const Row& b) { return a.ts > b.ts; });
  std::set<std::string> seen;
  std::vector<Row> unique;
  for (Row& r : alerts) {
    if (unique.size() == n_alerts) break;
    if (seen.insert(r.json).second) unique.push_back(std::move(r));
  }
  out += "],\"alerts\":";
  append_rows(out, unique);
  out += '}';
  return out;
}

}  // namespace spate::cli
