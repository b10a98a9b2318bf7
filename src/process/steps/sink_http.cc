// kind: http — events POSTed (or PUT) to an endpoint at flush, one request per event with
// `Idempotency-Key: <event id>`, or the whole batch in one request (NDJSON or a JSON array)
// with `Idempotency-Key: <first event id>..<last event id>`. 2xx: written; 408, 429, 5xx or a
// connection failure: transient (the flush is retried, events already acknowledged are not
// sent again); other statuses: that event is rejected (dead letter) — in batch mode the batch
// is then sent again one event per request to find the rejected ones.
#include <fmt/format.h>

#include <strings.h>

#include <charconv>

#include "process/steps/sink.h"
#include "server/http_client.h"

namespace spate::process::sink {
namespace {

struct HttpOptions {
  std::string host;
  uint16_t port = 80;
  std::string target = "/";
  std::string method = "POST";
  HttpHeaders headers;
  bool batch = false;
  bool json_array = false;  // batch body: [a,b] instead of NDJSON
  int64_t timeout_ms = 10'000;
};

// "http://host[:port][/path]": empty on success, else the problem.
std::string parse_http_url(std::string_view url, HttpOptions* o) {
  if (url.substr(0, 8) == "https://") return "https is not supported by this build's HTTP client (use http://)";
  if (url.substr(0, 7) != "http://") return "expected http://host[:port]/path";
  url.remove_prefix(7);
  size_t slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  o->target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (hostport.find('@') != std::string_view::npos) return "credentials in the URL are not supported (use headers)";
  size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos && hostport.find(']') == std::string_view::npos) {
    unsigned p = 0;
    auto sv = hostport.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), p);
    if (ec != std::errc() || ptr != sv.data() + sv.size() || p == 0 || p > 65535) return "bad port";
    o->port = static_cast<uint16_t>(p);
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) return "missing host";
  o->host = std::string(hostport);
  return "";
}

bool transient_status(int status) { return status == 408 || status == 429 || status >= 500; }

class HttpSink final : public EventProcessor {
 public:
  HttpSink(HttpOptions o, const std::string& processor, MetricsRegistry* metrics)
      : o_(std::move(o)),
        downstream_(fmt::format("http://{}:{}{}", o_.host, o_.port,
                                o_.target.substr(0, o_.target.find('?')))),
        metrics_(metrics, processor, "http", downstream_),
        client_(o_.host, o_.port, o_.timeout_ms) {}

  StepOutcome process(ProcessorEvent& ev, StepError*) override {
    events_.push_back({ev.index(), ev.event_id(), std::string(ev.json()), false});
    return StepOutcome::kPass;
  }

  Status flush(std::vector<FlushFailure>* failed) override {
    Status s = o_.batch ? send_batch(failed) : send_each(failed);
    if (!s.ok()) {
      metrics_.failure("transient");
      failed->clear();
      return s.with_context(downstream_);
    }
    events_.clear();
    return Status::Ok();
  }

  void discard() override {
    events_.clear();
    batch_rejected_ = false;
  }
  std::string downstream() const override { return downstream_; }
  bool calls_downstream_in_flush_only() const override { return true; }

 private:
  struct Pending {
    size_t index;
    std::string id;
    std::string body;
    bool done;  // acknowledged (2xx) or rejected: not sent again by a retried flush
    StepError rejected;
  };

  Result<HttpResponse> send(std::string_view body, const std::string& key, bool many) {
    HttpHeaders h = o_.headers;
    h.emplace_back("Idempotency-Key", key);
    bool has_type = false;
    for (const auto& [k, v] : o_.headers) has_type |= (k.size() == 12 && strncasecmp(k.c_str(), "content-type", 12) == 0);
    if (!has_type) {
      h.emplace_back("Content-Type", many && !o_.json_array ? "application/x-ndjson" : "application/json");
    }
    const int64_t t0 = steady_ns();
    auto r = client_.request(o_.method, o_.target, body, h);
    metrics_.request(seconds_since(t0));
    return r;
  }

  // One event per request. A transient answer stops the flush (to be retried).
  Status send_each(std::vector<FlushFailure>* failed) {
    for (Pending& p : events_) {
      if (p.done) continue;
      auto r = send(p.body, p.id, false);
      if (!r.ok()) return r.status();
      if (transient_status(r->status)) return Unavailable(fmt::format("HTTP {}", r->status));
      p.done = true;
      if (r->status >= 200 && r->status < 300) {
        metrics_.written(1);
        continue;
      }
      metrics_.failure("rejected");
      std::string body = r->body.substr(0, 200);
      for (char& c : body) {
        if (c == '\n' || c == '\r') c = ' ';
      }
      p.rejected = StepError{false, fmt::format("http_{}", r->status),
                             fmt::format("HTTP {} from {}: {}", r->status, downstream_, body)};
    }
    for (const Pending& p : events_) {
      if (!p.rejected.kind.empty()) failed->push_back({p.index, p.rejected});
    }
    return Status::Ok();
  }

  Status send_batch(std::vector<FlushFailure>* failed) {
    if (events_.empty()) return Status::Ok();
    if (!batch_rejected_) {
      std::string body = o_.json_array ? "[" : "";
      for (size_t i = 0; i < events_.size(); ++i) {
        if (o_.json_array && i > 0) body += ',';
        body += events_[i].body;
        if (!o_.json_array) body += '\n';
      }
      if (o_.json_array) body += ']';
      auto r = send(body, events_.front().id + ".." + events_.back().id, true);
      if (!r.ok()) return r.status();
      if (transient_status(r->status)) return Unavailable(fmt::format("HTTP {}", r->status));
      if (r->status >= 200 && r->status < 300) {
        metrics_.written(events_.size());
        return Status::Ok();
      }
      batch_rejected_ = true;  // find the rejected events one by one
    }
    Status s = send_each(failed);
    if (s.ok()) batch_rejected_ = false;
    return s;
  }

  HttpOptions o_;
  std::string downstream_;
  SinkMetrics metrics_;
  HttpClient client_;
  std::vector<Pending> events_;
  bool batch_rejected_ = false;
};

}  // namespace

// {kind: http, url, method: POST, headers: {..}, batch: false, format: ndjson | json_array,
//  timeout: 10s}
Result<std::unique_ptr<EventProcessor>> make_http_sink(StepContext& ctx) {
  StepOptions& o = *ctx.options;
  HttpOptions h;
  std::string url;
  if (o.get_string("url", &url, true)) {
    if (std::string e = parse_http_url(url, &h); !e.empty()) o.error("url", e);
  }
  o.get_enum("method", &h.method, {"POST", "PUT", "PATCH"});
  o.get_string_map("headers", &h.headers);
  o.get_bool("batch", &h.batch);
  std::string format = "ndjson";
  o.get_enum("format", &format, {"ndjson", "json_array"});
  h.json_array = format == "json_array";
  o.get_duration_ms("timeout", &h.timeout_ms, 1, 600'000);
  SPATE_RETURN_IF_ERROR(o.finish());
  return std::unique_ptr<EventProcessor>(new HttpSink(std::move(h), ctx.processor->name, ctx.metrics));
}

}  // namespace spate::process::sink
