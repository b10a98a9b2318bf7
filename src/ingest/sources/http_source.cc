#include "ingest/sources/http_source.h"

#include <charconv>

#include "base/json_escape.h"
#include "ingest/decode.h"

namespace spate::ingest {
namespace {

std::string lower_media_type(std::string_view ct) {
  std::string_view t = ct.substr(0, ct.find(';'));
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  std::string out(t);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Content-Type -> body format; false if unsupported.
bool format_for(std::string_view content_type, BodyFormat* f) {
  std::string t = lower_media_type(content_type);
  if (t.empty()) {
    *f = BodyFormat::kAuto;
  } else if (t == "application/json") {
    *f = BodyFormat::kJson;
  } else if (t == "application/x-ndjson" || t == "application/ndjson" ||
             t == "application/jsonl" || t == "application/x-jsonlines" ||
             t == "application/jsonlines") {
    *f = BodyFormat::kNdjson;
  } else if (t == "text/plain") {
    *f = BodyFormat::kAuto;
  } else {
    return false;
  }
  return true;
}

HttpResponse respond_with(const IngestResult& r) {
  HttpResponse res = HttpResponse::json(result_http_status(r), result_json(r));
  if (r.retry_after_seconds > 0) {
    res.headers.emplace_back("Retry-After", std::to_string(r.retry_after_seconds));
  }
  return res;
}

void handle(DataIngestionEngine& engine, std::string topic, HttpRequest req,
            HttpResponder respond) {
  const IngestionConfig& cfg = engine.config();
  IngestRequest ir;
  ir.topic = std::move(topic);
  ir.source.name = "http";
  ir.source.request_id = req.header("x-request-id");
  const std::string content_type = req.header("content-type");
  if (!format_for(content_type, &ir.format)) {
    return respond(HttpResponse::error(
        415, "unsupported Content-Type \"" + content_type +
                 "\" (use application/json or application/x-ndjson)"));
  }
  std::string encoding = lower_media_type(req.header("content-encoding"));
  if (!encoding.empty() && encoding != "identity") {
    if (!cfg.enable_compression) {
      return respond(HttpResponse::error(415, "compressed bodies are disabled"));
    }
    auto body = decompress(encoding, req.body, cfg.max_body_bytes);
    if (!body.ok()) {
      int status = body.status().code() == Errc::kOutOfRange ? 413
                   : body.status().code() == Errc::kNotFound ? 415
                                                             : 400;
      return respond(HttpResponse::error(status, body.status().message()));
    }
    ir.body = std::move(body).value();
  } else {
    if (req.body.size() > cfg.max_body_bytes) {
      return respond(HttpResponse::error(
          413, "body larger than " + std::to_string(cfg.max_body_bytes) + " bytes"));
    }
    ir.body = std::move(req.body);
  }
  engine.submit(std::move(ir), [respond = std::move(respond)](IngestResult r) {
    respond(respond_with(r));
  });
}

}  // namespace

int result_http_status(const IngestResult& r) {
  switch (r.status) {
    case IngestStatus::kOk: return 202;
    case IngestStatus::kBadRequest: return 400;
    case IngestStatus::kTooLarge: return 413;
    case IngestStatus::kUnsupported: return 415;
    case IngestStatus::kNotFound: return 404;
    case IngestStatus::kOverloaded: return 429;
    case IngestStatus::kUnavailable: return r.storage_full ? 507 : 503;
  }
  return 500;
}

std::string result_json(const IngestResult& r) {
  std::string out;
  out.reserve(64);
  auto num = [&out](size_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<size_t>(end - buf));
  };
  out += '{';
  if (r.status != IngestStatus::kOk) {
    out += "\"error\":";
    append_json_quoted(out, r.message);
    out += ',';
  }
  out += "\"accepted\":";
  num(r.accepted);
  out += ",\"rejected\":";
  num(r.rejected);
  // Counts that are only there when something happened to some events.
  if (r.duplicates) {
    out += ",\"duplicates\":";
    num(r.duplicates);
  }
  if (r.dead_lettered) {
    out += ",\"dead_lettered\":";
    num(r.dead_lettered);
  }
  if (r.dropped) {
    out += ",\"dropped\":";
    num(r.dropped);
  }
  out += ",\"errors\":[";
  for (size_t i = 0; i < r.errors.size(); ++i) {
    if (i) out += ',';
    out += "{\"index\":";
    num(r.errors[i].index);
    out += ",\"reason\":";
    append_json_quoted(out, r.errors[i].reason);
    out += '}';
  }
  out += "]}";
  return out;
}

void install_http_source(HttpServer& server, DataIngestionEngine& engine) {
  server.route_prefix_async("POST", "/ingest/", [&engine](HttpRequest req, HttpResponder respond) {
    std::string topic = req.path.substr(8);
    if (topic.empty() || !validate_topic_name(topic).ok()) {
      return respond(HttpResponse::error(404, "no such ingestion endpoint: " + req.path));
    }
    handle(engine, std::move(topic), std::move(req), std::move(respond));
  });
  server.route_async("POST", "/ingest", [&engine](HttpRequest req, HttpResponder respond) {
    handle(engine, "", std::move(req), std::move(respond));
  });
}

}  // namespace spate::ingest
