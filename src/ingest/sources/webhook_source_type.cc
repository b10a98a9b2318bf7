// Source type "webhook": POST /webhooks/{name}, HMAC-SHA256 verified, then ingested like
// POST /ingest/{topic}. Options:
//   secret:    the shared secret (use ${ENV_VAR}); required unless signature is none
//   signature: github (default) | timestamped | none
//   header:    the signature header (default X-Hub-Signature-256 for github,
//              Webhook-Signature for timestamped)
//   tolerance: timestamped only: accepted clock difference (default 5m); a signature seen
//              before within the window is rejected as a replay
#include <fmt/format.h>

#include <deque>
#include <mutex>
#include <unordered_set>

#include "base/clock.h"
#include "ingest/source.h"
#include "ingest/sources/http_source.h"
#include "ingest/sources/webhook_signature.h"
#include "server/http_server.h"
#include "spate/metrics.h"

namespace spate::ingest {
namespace {

struct WebhookOptions {
  std::string secret;
  SignatureStyle style = SignatureStyle::kGithub;
  std::string header;
  int64_t tolerance_ms = 5 * 60 * 1000;
};

Status read_options(const SourceConfig& cfg, WebhookOptions* o) {
  OptionReader r(cfg);
  std::string style = "github";
  r.get_enum("signature", &style, {"github", "timestamped", "none"});
  o->style = style == "github"        ? SignatureStyle::kGithub
             : style == "timestamped" ? SignatureStyle::kTimestamped
                                      : SignatureStyle::kNone;
  r.get_string("secret", &o->secret, o->style != SignatureStyle::kNone);
  if (o->style != SignatureStyle::kNone && r.has("secret") && o->secret.empty()) {
    r.error("secret", "must not be empty");
  }
  o->header = o->style == SignatureStyle::kTimestamped ? "webhook-signature" : "x-hub-signature-256";
  if (r.get_string("header", &o->header)) {
    for (char& c : o->header) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  r.get_duration_ms("tolerance", &o->tolerance_ms, 1000, 24LL * 3600 * 1000);
  return r.finish();
}

class WebhookSource final : public Source {
 public:
  WebhookSource(const SourceConfig& cfg, WebhookOptions opts, SourceContext& ctx)
      : name_(cfg.name), topic_(cfg.topic), opts_(std::move(opts)), engine_(ctx.engine) {
    MetricsRegistry* m = ctx.metrics ? ctx.metrics : &global_metrics();
    auth_failures_ = &m->counter("ingestion_webhook_auth_failures_total",
                                 "Webhook requests rejected for a bad or missing signature",
                                 {{"source", name_}});
    ctx.server->route_async("POST", "/webhooks/" + name_,
                            [this](HttpRequest req, HttpResponder respond) {
                              handle(std::move(req), std::move(respond));
                            });
  }

  Status start() override {
    running_ = true;
    return Status::Ok();
  }
  void stop() override { running_ = false; }

 private:
  void handle(HttpRequest req, HttpResponder respond) {
    if (!running_) return respond(HttpResponse::error(503, "webhook source is not running"));
    int64_t now = system_clock()->now_ms();
    std::string header = req.header(opts_.header);
    SignatureCheck c =
        verify_signature(opts_.style, opts_.secret, header, req.body, now, opts_.tolerance_ms);
    if (c.ok && opts_.style == SignatureStyle::kTimestamped && !remember(header, now)) {
      c.ok = false;
      c.reason = "signature already used (replay)";
    }
    if (!c.ok) {
      auth_failures_->inc();
      return respond(HttpResponse::error(401, "invalid webhook signature: " + c.reason));
    }
    IngestRequest ir;
    ir.topic = topic_;
    ir.body = std::move(req.body);
    ir.format = BodyFormat::kAuto;
    ir.source.name = name_;
    ir.source.request_id = req.header("x-request-id");
    engine_->submit(std::move(ir), [respond = std::move(respond)](IngestResult r) {
      HttpResponse res = HttpResponse::json(result_http_status(r), result_json(r));
      if (r.retry_after_seconds > 0) {
        res.headers.emplace_back("Retry-After", std::to_string(r.retry_after_seconds));
      }
      respond(std::move(res));
    });
  }

  // True the first time a signature is seen within the tolerance window.
  bool remember(const std::string& sig, int64_t now) {
    std::lock_guard lk(mu_);
    while (!seen_order_.empty() &&
           (seen_order_.front().first < now - 2 * opts_.tolerance_ms || seen_order_.size() > 100000)) {
      seen_.erase(seen_order_.front().second);
      seen_order_.pop_front();
    }
    if (!seen_.insert(sig).second) return false;
    seen_order_.emplace_back(now, sig);
    return true;
  }

  std::string name_, topic_;
  WebhookOptions opts_;
  DataIngestionEngine* engine_;
  Counter* auth_failures_;
  std::atomic<bool> running_{false};
  std::mutex mu_;
  std::unordered_set<std::string> seen_;
  std::deque<std::pair<int64_t, std::string>> seen_order_;
};

}  // namespace

SourceType webhook_source_type() {
  SourceType t;
  t.type = "webhook";
  t.validate = [](const SourceConfig& cfg) {
    WebhookOptions o;
    return read_options(cfg, &o);
  };
  t.create = [](const SourceConfig& cfg, SourceContext& ctx) -> Result<std::unique_ptr<Source>> {
    WebhookOptions o;
    SPATE_RETURN_IF_ERROR(read_options(cfg, &o));
    if (ctx.server == nullptr) return Internal("webhook source needs an HTTP server");
    return std::unique_ptr<Source>(new WebhookSource(cfg, std::move(o), ctx));
  };
  return t;
}

}  // namespace spate::ingest
