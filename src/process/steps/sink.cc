// The sink step: `{type: sink, kind: topic | postgres | http | redis | file, ...}` (see
// docs/processors.md#sinks). This file reads `kind`, holds the topic sink and what the kinds
// share (sink.h); each external kind lives in sink_<kind>.cc.
#include <fmt/format.h>

#include <chrono>

#include "process/steps/sink.h"
#include "process/steps/steps.h"
#include "spate/metrics.h"

namespace spate::process {
namespace sink {

std::string at(const ProcessorStepConfig& sc) {
  return fmt::format("{}:{}:{}: {}", sc.file, sc.line, sc.column, sc.path);
}

std::optional<std::string> render_text(const expr::Value& v) {
  if (v.is_missing() || v.is_null()) return std::nullopt;
  if (v.is_string()) return std::string(v.as_string());
  return expr::to_json(v);
}

std::optional<std::string> Field::eval(const ProcessorEvent& ev) const {
  if (whole_event) return std::string(ev.json());
  return render_text(expr.evaluate(ev.doc()));
}

std::vector<Field> compile_fields(StepOptions& o, std::string_view key,
                                  const std::vector<std::pair<std::string, std::string>>& items) {
  std::vector<Field> out;
  for (const auto& [name, text] : items) {
    Field f;
    f.name = name;
    if (text == "$") {
      f.whole_event = true;
    } else {
      auto e = expr::Expression::compile(text);
      if (!e.ok()) {
        o.error(key, name + ": " + e.status().message());
        continue;
      }
      f.expr = std::move(e).value();
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::string Template::compile(std::string_view text) {
  source_ = std::string(text);
  parts_.clear();
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find('{', i);
    if (open == std::string_view::npos) open = text.size();
    if (open > i) parts_.push_back({Part::kText, std::string(text.substr(i, open - i)), {}});
    if (open == text.size()) break;
    size_t close = text.find('}', open);
    if (close == std::string_view::npos) return fmt::format("unclosed '{{' at byte {}", open);
    std::string_view inner = text.substr(open + 1, close - open - 1);
    Part p;
    if (inner == "@id") {
      p.kind = Part::kId;
    } else if (inner == "@topic") {
      p.kind = Part::kTopic;
    } else if (inner == "@partition") {
      p.kind = Part::kPartition;
    } else if (inner == "@offset") {
      p.kind = Part::kOffset;
    } else {
      auto e = expr::Expression::compile(inner);
      if (!e.ok()) return fmt::format("{{{}}}: {}", inner, e.status().message());
      p.kind = Part::kExpr;
      p.expr = std::move(e).value();
    }
    parts_.push_back(std::move(p));
    i = close + 1;
  }
  return "";
}

std::string Template::render(const ProcessorEvent& ev) const {
  std::string out;
  for (const Part& p : parts_) {
    switch (p.kind) {
      case Part::kText: out += p.text; break;
      case Part::kId: out += ev.event_id(); break;
      case Part::kTopic: out += ev.topic(); break;
      case Part::kPartition: out += std::to_string(ev.partition()); break;
      case Part::kOffset: out += std::to_string(ev.offset()); break;
      case Part::kExpr: out += render_text(p.expr.evaluate(ev.doc())).value_or(""); break;
    }
  }
  return out;
}

SinkMetrics::SinkMetrics(MetricsRegistry* registry, const std::string& processor,
                         const std::string& kind, const std::string& downstream)
    : registry_(registry) {
  if (registry_ == nullptr) return;
  labels_ = {{"processor", processor}, {"sink", kind}, {"downstream", downstream}};
  written_ = &registry_->counter("stream_sink_records_written_total",
                                 "Records (rows, requests' events, lines) a sink has written", labels_);
  requests_ = &registry_->counter("stream_sink_requests_total",
                                  "Writes (statements, HTTP requests, pipelines, fsyncs) a sink made",
                                  labels_);
  seconds_ = &registry_->histogram("stream_sink_write_seconds", "Time of one sink flush", labels_);
}

void SinkMetrics::written(uint64_t records) {
  if (written_ != nullptr) written_->inc(records);
}

void SinkMetrics::request(double seconds) {
  if (requests_ == nullptr) return;
  requests_->inc();
  seconds_->observe(seconds);
}

void SinkMetrics::failure(const std::string& kind, uint64_t n) {
  if (registry_ == nullptr || n == 0) return;
  auto l = labels_;
  l.emplace_back("kind", kind);
  registry_->counter("stream_sink_failures_total", "Sink write failures by kind", l).inc(n);
}

void SinkMetrics::flushed(int64_t started_ns, uint64_t written, uint64_t rejected) {
  request(seconds_since(started_ns));
  this->written(written);
  failure("rejected", rejected);
}

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double seconds_since(int64_t since_ns) { return static_cast<double>(steady_ns() - since_ns) / 1e9; }

}  // namespace sink

namespace {

// kind: topic — the event leaves through the processor's normal output path (so exactly_once
// log transactions cover it).
class TopicSink final : public EventProcessor {
 public:
  explicit TopicSink(std::vector<std::string> topics) : topics_(std::move(topics)) {}
  StepOutcome process(ProcessorEvent& ev, StepError*) override {
    ev.route_to(&topics_);
    return StepOutcome::kPass;
  }
  std::vector<std::string> output_topics() const override { return topics_; }

 private:
  std::vector<std::string> topics_;
};

Result<std::unique_ptr<EventProcessor>> make_sink(StepContext& ctx) {
  StepOptions& o = *ctx.options;
  std::string kind;
  if (!o.get_enum("kind", &kind, {"topic", "postgres", "http", "redis", "file"})) {
    if (!o.has("kind")) o.error("kind", "missing required key");
    return o.finish();
  }
  if (kind == "postgres") return sink::make_postgres_sink(ctx);
  if (kind == "http") return sink::make_http_sink(ctx);
  if (kind == "redis") return sink::make_redis_sink(ctx);
  if (kind == "file") return sink::make_file_sink(ctx);
  std::vector<std::string> topics;
  if (o.has("topics")) {
    o.get_string_list("topics", &topics, true);
  } else {
    o.get_string_list("topic", &topics, true);
  }
  SPATE_RETURN_IF_ERROR(o.finish());
  return std::unique_ptr<EventProcessor>(new TopicSink(std::move(topics)));
}

}  // namespace

void register_sink_step(ProcessorRegistry& r) {
  (void)r.add("sink", "write events to a topic, PostgreSQL, Redis, an HTTP endpoint or a file, "
                      "idempotently (keyed by event id)", make_sink);
}

}  // namespace spate::process
