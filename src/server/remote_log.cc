#include "server/remote_log.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "server/auth.h"
#include "server/http_client.h"
#include "server/log_wire.h"

namespace spate {

namespace {

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// The "error" member of a {"error": "..."} body, unescaped enough for a message.
std::string error_message(std::string_view body) {
  const size_t k = body.find("\"error\"");
  if (k == std::string_view::npos) return std::string(body.substr(0, 200));
  size_t i = body.find('"', body.find(':', k) + 1);
  if (i == std::string_view::npos) return std::string(body.substr(0, 200));
  std::string out;
  for (++i; i < body.size() && body[i] != '"'; ++i) {
    if (body[i] == '\\' && i + 1 < body.size()) {
      ++i;
      out += body[i] == 'n' ? ' ' : body[i] == 'u' ? '?' : body[i];
      if (body[i] == 'u') i += 4;
    } else {
      out += body[i];
    }
  }
  return out;
}

Result<int64_t> parse_int(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) {
    return Internal("log API: expected a number, got \"" + std::string(s.substr(0, 40)) + "\"");
  }
  return v;
}

}  // namespace

class RemoteLog final : public Log {
 public:
  RemoteLog(RemoteLogConfig cfg, HttpEndpoint endpoint)
      : cfg_(std::move(cfg)),
        host_(std::move(endpoint.host)),
        port_(endpoint.port),
        tls_(endpoint.tls()) {}

  // One request on a pooled connection; a non-2xx answer becomes its Status.
  Result<HttpResponse> call(std::string_view method, const std::string& target,
                            std::string_view body = {}, int64_t extra_ms = 0) const {
    if (closed_.load()) return Unavailable("the log is closed");
    std::unique_ptr<HttpClient> c = acquire();
    c->set_timeout_ms(cfg_.timeout_ms + extra_ms);
    HttpHeaders headers = client_auth_headers();
    headers.emplace_back("Content-Type", std::string(logwire::kContentType));
    auto r = c->request(method, target, body, headers);
    if (!r.ok()) {
      // Unreachable owner: one error code for all the ways a connection fails.
      return Status(r.status().code() == Errc::kTimeout ? Errc::kTimeout : Errc::kUnavailable,
                    "log at " + cfg_.url + ": " + r.status().message());
    }
    release(std::move(c));
    if (r->status >= 200 && r->status < 300) return r;
    const std::string errc = r->header(logwire::kErrcHeader);
    if (errc.empty()) {
      if (r->status == 404 || r->status == 405) {
        return Unimplemented("no log API at " + cfg_.url +
                             " (is it a `spate run` that owns its "
                             "log, with server.log_api on?)");
      }
      if (r->status == 401 || r->status == 403) {
        // Not retried as an outage: the token is wrong until someone changes it.
        return Status(Errc::kConfig, "log at " + cfg_.url + " refused this process (HTTP " +
                                         std::to_string(r->status) + ": " + error_message(r->body) +
                                         "): set SPATE_TOKEN to a token with the admin scope");
      }
      return Unavailable("log at " + cfg_.url + ": HTTP " + std::to_string(r->status));
    }
    Status s(logwire::errc_from_name(errc), error_message(r->body));
    if (r->status == 410) return Status(Errc::kUnavailable, "gone: " + s.message());
    return s;
  }

  static bool gone(const Status& s) { return s.message().starts_with("gone: "); }

  Status create_topic(const TopicSpec& spec) override { return put_topic(spec, false); }
  Status ensure_topic(const TopicSpec& spec) override { return put_topic(spec, true); }

  std::vector<std::string> list_topics() const override {
    std::vector<std::string> out;
    auto r = call("GET", "/log/v1/topics");
    if (!r.ok()) return out;
    std::string_view b = r->body;
    uint32_t n = 0;
    if (b.size() < 4) return out;
    std::memcpy(&n, b.data(), 4);
    b.remove_prefix(4);
    for (uint32_t i = 0; i < n && b.size() >= 4; ++i) {
      uint32_t len = 0;
      std::memcpy(&len, b.data(), 4);
      b.remove_prefix(4);
      if (b.size() < len) break;
      out.emplace_back(b.substr(0, len));
      b.remove_prefix(len);
    }
    return out;
  }

  Result<TopicInfo> describe_topic(std::string_view topic) const override {
    SPATE_ASSIGN_OR_RETURN(HttpResponse r, call("GET", "/log/v1/topic?topic=" + url_encode(topic)));
    TopicInfo info;
    SPATE_RETURN_IF_ERROR(logwire::decode_topic(r.body, &info));
    return info;
  }

  Result<int64_t> append(std::string_view topic, uint32_t partition, const RecordIn* records,
                         size_t count) override {
    std::string body;
    logwire::encode_records(body, records, count);
    auto r = call("POST", fmt_tp("/log/v1/append", topic, partition), body);
    if (!r.ok()) {
      append_errors_.fetch_add(1, std::memory_order_relaxed);
      return r.status();
    }
    appends_.fetch_add(1, std::memory_order_relaxed);
    records_.fetch_add(count, std::memory_order_relaxed);
    bytes_.fetch_add(body.size(), std::memory_order_relaxed);
    return parse_int(r->body);
  }

  Result<FetchResult> fetch(std::string_view topic, uint32_t partition, int64_t offset,
                            const FetchOptions& opts) override {
    const std::string target =
        fmt_tp("/log/v1/fetch", topic, partition) + "&offset=" + std::to_string(offset) +
        "&max_records=" + std::to_string(opts.max_records) +
        "&max_bytes=" + std::to_string(opts.max_bytes) +
        "&wait_ms=" + std::to_string(opts.wait_ms) +
        "&isolation=" + (opts.isolation == Isolation::kReadCommitted ? "committed" : "uncommitted");
    SPATE_ASSIGN_OR_RETURN(HttpResponse r, call("GET", target, {}, opts.wait_ms));
    FetchResult fr;
    SPATE_RETURN_IF_ERROR(logwire::decode_fetch(std::move(r.body), &fr));
    return fr;
  }

  Result<int64_t> offset_for_timestamp(std::string_view topic, uint32_t partition,
                                       int64_t ts_ms) override {
    SPATE_ASSIGN_OR_RETURN(HttpResponse r,
                           call("GET", fmt_tp("/log/v1/offset_for_timestamp", topic, partition) +
                                           "&ts=" + std::to_string(ts_ms)));
    return parse_int(r.body);
  }

  Status commit_offsets(std::string_view group, std::string_view topic,
                        const std::map<uint32_t, int64_t>& offsets) override {
    std::string body;
    logwire::encode_offsets(body, offsets);
    return call("POST", "/log/v1/commit?group=" + url_encode(group) + "&topic=" + url_encode(topic),
                body)
        .status();
  }

  Result<std::optional<int64_t>> committed_offset(std::string_view group, std::string_view topic,
                                                  uint32_t partition) override {
    SPATE_ASSIGN_OR_RETURN(
        HttpResponse r,
        call("GET", "/log/v1/committed?group=" + url_encode(group) + "&topic=" + url_encode(topic) +
                        "&partition=" + std::to_string(partition)));
    if (r.status == 204) return std::optional<int64_t>();
    SPATE_ASSIGN_OR_RETURN(int64_t v, parse_int(r.body));
    return std::optional<int64_t>(v);
  }

  LogStats stats() const override {
    LogStats s;
    s.appends = appends_.load(std::memory_order_relaxed);
    s.records = records_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.append_errors = append_errors_.load(std::memory_order_relaxed);
    return s;
  }

  Status enforce_retention() override { return Status::Ok(); }

  Status close() override {
    closed_.store(true);
    std::lock_guard lk(pool_mu_);
    pool_.clear();
    return Status::Ok();
  }

  Result<std::unique_ptr<TransactionalProducer>> transactional_producer(
      std::string_view transactional_id) override;

  Result<std::string> open_session(std::string_view txid) {
    SPATE_ASSIGN_OR_RETURN(HttpResponse r, call("POST", "/log/v1/txn?id=" + url_encode(txid)));
    return std::move(r.body);
  }

  static std::string fmt_tp(std::string_view path, std::string_view topic, uint32_t partition) {
    return std::string(path) + "?topic=" + url_encode(topic) +
           "&partition=" + std::to_string(partition);
  }

 private:
  Status put_topic(const TopicSpec& spec, bool ensure) {
    std::string body;
    logwire::encode_topic_spec(body, spec);
    return call("POST", std::string("/log/v1/topics?ensure=") + (ensure ? "1" : "0"), body)
        .status();
  }

  std::unique_ptr<HttpClient> acquire() const {
    {
      std::lock_guard lk(pool_mu_);
      if (!pool_.empty()) {
        auto c = std::move(pool_.back());
        pool_.pop_back();
        return c;
      }
    }
    return std::make_unique<HttpClient>(host_, port_, cfg_.timeout_ms, tls_);
  }
  void release(std::unique_ptr<HttpClient> c) const {
    std::lock_guard lk(pool_mu_);
    if (pool_.size() < 64 && !closed_.load()) pool_.push_back(std::move(c));
  }

  RemoteLogConfig cfg_;
  std::string host_;
  uint16_t port_;
  HttpClientTls tls_;
  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<HttpClient>> pool_;
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> appends_{0};
  std::atomic<uint64_t> records_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> append_errors_{0};
};

namespace {

class RemoteProducer final : public TransactionalProducer {
 public:
  RemoteProducer(RemoteLog* log, std::string txid, std::string session)
      : log_(log), txid_(std::move(txid)), session_(std::move(session)) {}

  ~RemoteProducer() override {
    if (!session_.empty()) (void)log_->call("DELETE", "/log/v1/txn/" + session_);
  }

  Status begin() override {
    Status s = op("begin");
    if (!s.ok() && RemoteLog::gone(s)) {
      // The owner restarted (or dropped an idle session): open a new one, fencing whatever
      // holds the id now, but do not begin. While the session was gone another producer with
      // this id (a restarted replica) may have committed, so the caller must re-read the
      // committed offsets — after this fence — before its next transaction.
      SPATE_ASSIGN_OR_RETURN(session_, log_->open_session(txid_));
      return Unavailable(
          "the log's owner lost this producer's session; a new one is open: "
          "re-read the committed offsets, then begin again");
    }
    return s;
  }
  Result<int64_t> append(std::string_view topic, uint32_t partition, const RecordIn* records,
                         size_t count) override {
    std::string body;
    logwire::encode_records(body, records, count);
    SPATE_ASSIGN_OR_RETURN(
        HttpResponse r,
        log_->call("POST",
                   RemoteLog::fmt_tp("/log/v1/txn/" + session_ + "/append", topic, partition),
                   body));
    return parse_int(r.body);
  }
  Status send_offsets(std::string_view group, std::string_view topic,
                      const std::map<uint32_t, int64_t>& next_offsets) override {
    std::string body;
    logwire::encode_offsets(body, next_offsets);
    return log_
        ->call("POST",
               "/log/v1/txn/" + session_ + "/offsets?group=" + url_encode(group) +
                   "&topic=" + url_encode(topic),
               body)
        .status();
  }
  Status commit() override { return op("commit"); }
  Status abort() override {
    Status s = op("abort");
    return s.ok() || RemoteLog::gone(s) ? Status::Ok() : s;  // gone: nothing is open any more
  }

 private:
  Status op(std::string_view what) {
    return log_->call("POST", "/log/v1/txn/" + session_ + "/" + std::string(what)).status();
  }

  RemoteLog* log_;
  std::string txid_;
  std::string session_;
};

}  // namespace

Result<std::unique_ptr<TransactionalProducer>> RemoteLog::transactional_producer(
    std::string_view transactional_id) {
  SPATE_ASSIGN_OR_RETURN(std::string session, open_session(transactional_id));
  return std::unique_ptr<TransactionalProducer>(
      std::make_unique<RemoteProducer>(this, std::string(transactional_id), std::move(session)));
}

Result<std::unique_ptr<Log>> open_remote_log(const RemoteLogConfig& config) {
  SPATE_ASSIGN_OR_RETURN(HttpEndpoint endpoint, parse_endpoint_url(config.url, "log url"));
  auto log = std::make_unique<RemoteLog>(config, std::move(endpoint));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(config.connect_wait_ms);
  for (;;) {
    auto r = log->call("GET", "/log/v1/topics");
    if (r.ok()) return std::unique_ptr<Log>(std::move(log));
    if (r.status().code() == Errc::kUnimplemented) return r.status();
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status(Errc::kUnavailable, r.status().message());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace spate
