#include "server/log_api.h"

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "server/log_wire.h"

namespace spate {

namespace {

using SteadyClock = std::chrono::steady_clock;

HttpResponse error_response(const Status& s) {
  HttpResponse r = HttpResponse::error(logwire::http_status_for(s.code()), s.message());
  r.headers.emplace_back(std::string(logwire::kErrcHeader), std::string(errc_name(s.code())));
  return r;
}

HttpResponse binary(std::string body) {
  HttpResponse r;
  r.status = 200;
  r.content_type = std::string(logwire::kContentType);
  r.body = std::move(body);
  return r;
}

HttpResponse text(int64_t v) { return HttpResponse::text(200, std::to_string(v)); }

// Required integer query parameter.
template <typename T>
Status int_param(const HttpRequest& req, std::string_view name, T* out) {
  auto v = req.query_param(name);
  if (!v) return InvalidArgument("missing query parameter " + std::string(name));
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), *out);
  if (ec != std::errc() || p != v->data() + v->size()) {
    return InvalidArgument("query parameter " + std::string(name) + " is not an integer: " + *v);
  }
  return Status::Ok();
}

Status str_param(const HttpRequest& req, std::string_view name, std::string* out) {
  auto v = req.query_param(name);
  if (!v || v->empty()) return InvalidArgument("missing query parameter " + std::string(name));
  *out = std::move(*v);
  return Status::Ok();
}

#define LOGAPI_TRY(expr)                                  \
  do {                                                    \
    if (Status _s = (expr); !_s.ok()) return error_response(_s); \
  } while (0)

}  // namespace

struct LogApi::Impl {
  struct Session {
    std::mutex mu;  // one call at a time (TransactionalProducer is single-threaded)
    std::unique_ptr<TransactionalProducer> producer;
    SteadyClock::time_point last_used;
  };

  Log* log;
  LogApiConfig cfg;
  std::mutex mu;
  std::condition_variable cv;       // workers: a job arrived, or stopping
  std::condition_variable reap_cv;  // the reaper: stopping (its own, so it never eats a job's wakeup)
  std::deque<std::function<void()>> jobs;
  bool stopping = false;
  std::vector<std::thread> threads;
  std::thread reaper;
  mutable std::mutex sessions_mu;
  std::map<std::string, std::shared_ptr<Session>, std::less<>> sessions;
  std::mt19937_64 rng{std::random_device{}()};

  Impl(Log* l, LogApiConfig c) : log(l), cfg(c) {
    for (int i = 0; i < std::max(1, cfg.threads); ++i) threads.emplace_back([this] { work(); });
    reaper = std::thread([this] { reap(); });
  }

  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return stopping || !jobs.empty(); });
        if (jobs.empty()) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job();
    }
  }

  void reap() {
    const auto period = std::chrono::milliseconds(std::clamp<int64_t>(cfg.txn_timeout_ms / 4, 10, 1000));
    std::unique_lock lk(mu);
    while (!reap_cv.wait_for(lk, period, [&] { return stopping; })) {
      lk.unlock();
      std::vector<std::shared_ptr<Session>> idle;
      const auto now = SteadyClock::now();
      {
        std::lock_guard sl(sessions_mu);
        for (auto it = sessions.begin(); it != sessions.end();) {
          std::unique_lock busy(it->second->mu, std::try_to_lock);
          if (busy.owns_lock() &&
              now - it->second->last_used > std::chrono::milliseconds(cfg.txn_timeout_ms)) {
            busy.unlock();
            idle.push_back(it->second);
            it = sessions.erase(it);
          } else {
            ++it;
          }
        }
      }
      idle.clear();  // destroying the producers aborts their open transactions
      lk.lock();
    }
  }

  void submit(HttpRequest req, HttpResponder respond) {
    std::unique_lock lk(mu);
    if (stopping) {
      lk.unlock();
      respond(error_response(Unavailable("the log API is stopping")));
      return;
    }
    jobs.emplace_back([this, req = std::move(req), respond = std::move(respond)]() mutable {
      HttpResponse r;
      try {
        r = handle(req);
      } catch (const std::exception& e) {
        r = error_response(Internal(e.what()));
      }
      respond(std::move(r));
    });
    lk.unlock();
    cv.notify_one();
  }

  void shutdown() {
    {
      std::lock_guard lk(mu);
      if (stopping) return;
      stopping = true;
    }
    cv.notify_all();
    reap_cv.notify_all();
    for (auto& t : threads) t.join();
    if (reaper.joinable()) reaper.join();
    std::lock_guard sl(sessions_mu);
    sessions.clear();
  }

  std::shared_ptr<Session> find_session(std::string_view id) {
    std::lock_guard sl(sessions_mu);
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : it->second;
  }

  HttpResponse handle(const HttpRequest& req) {
    std::string_view path = req.path;
    constexpr std::string_view kPrefix = "/log/v1/";
    path.remove_prefix(kPrefix.size());  // routed by prefix
    const bool get = req.method == "GET" || req.method == "HEAD";
    const bool post = req.method == "POST";
    if (get && path == "topics") {
      std::string out;
      const auto names = log->list_topics();
      const uint32_t n = static_cast<uint32_t>(names.size());
      out.append(reinterpret_cast<const char*>(&n), sizeof n);
      for (const auto& name : names) {
        const uint32_t len = static_cast<uint32_t>(name.size());
        out.append(reinterpret_cast<const char*>(&len), sizeof len);
        out += name;
      }
      return binary(std::move(out));
    }
    if (get && path == "topic") {
      std::string topic;
      LOGAPI_TRY(str_param(req, "topic", &topic));
      auto info = log->describe_topic(topic);
      if (!info.ok()) return error_response(info.status());
      std::string out;
      logwire::encode_topic(out, *info);
      return binary(std::move(out));
    }
    if (post && path == "topics") {
      TopicSpec spec;
      LOGAPI_TRY(logwire::decode_topic_spec(req.body, &spec));
      const bool ensure = req.query_param("ensure").value_or("0") == "1";
      LOGAPI_TRY(ensure ? log->ensure_topic(spec) : log->create_topic(spec));
      return HttpResponse::text(200, "ok");
    }
    if (post && path == "append") {
      return append_from(req, [&](const std::string& t, uint32_t p, const RecordIn* r, size_t n) {
        return log->append(t, p, r, n);
      });
    }
    if (get && path == "fetch") {
      std::string topic;
      uint32_t partition = 0;
      int64_t offset = 0;
      FetchOptions fo;
      LOGAPI_TRY(str_param(req, "topic", &topic));
      LOGAPI_TRY(int_param(req, "partition", &partition));
      LOGAPI_TRY(int_param(req, "offset", &offset));
      LOGAPI_TRY(int_param(req, "max_records", &fo.max_records));
      LOGAPI_TRY(int_param(req, "max_bytes", &fo.max_bytes));
      LOGAPI_TRY(int_param(req, "wait_ms", &fo.wait_ms));
      fo.wait_ms = std::clamp<int64_t>(fo.wait_ms, 0, cfg.max_wait_ms);
      fo.isolation = req.query_param("isolation").value_or("") == "committed"
                         ? Isolation::kReadCommitted
                         : Isolation::kReadUncommitted;
      auto fr = log->fetch(topic, partition, offset, fo);
      if (!fr.ok()) return error_response(fr.status());
      std::string out;
      logwire::encode_fetch(out, *fr);
      return binary(std::move(out));
    }
    if (get && path == "offset_for_timestamp") {
      std::string topic;
      uint32_t partition = 0;
      int64_t ts = 0;
      LOGAPI_TRY(str_param(req, "topic", &topic));
      LOGAPI_TRY(int_param(req, "partition", &partition));
      LOGAPI_TRY(int_param(req, "ts", &ts));
      auto r = log->offset_for_timestamp(topic, partition, ts);
      if (!r.ok()) return error_response(r.status());
      return text(*r);
    }
    if (post && path == "commit") {
      return offsets_from(req, [&](const std::string& g, const std::string& t,
                                   const std::map<uint32_t, int64_t>& o) {
        return log->commit_offsets(g, t, o);
      });
    }
    if (get && path == "committed") {
      std::string group;
      std::string topic;
      uint32_t partition = 0;
      LOGAPI_TRY(str_param(req, "group", &group));
      LOGAPI_TRY(str_param(req, "topic", &topic));
      LOGAPI_TRY(int_param(req, "partition", &partition));
      auto r = log->committed_offset(group, topic, partition);
      if (!r.ok()) return error_response(r.status());
      if (!r->has_value()) return HttpResponse::text(204, "");
      return text(**r);
    }
    if (post && path == "txn") {
      std::string id;
      LOGAPI_TRY(str_param(req, "id", &id));
      auto p = log->transactional_producer(id);
      if (!p.ok()) return error_response(p.status());
      auto s = std::make_shared<Session>();
      s->producer = std::move(p).value();
      s->last_used = SteadyClock::now();
      std::string sid;
      {
        std::lock_guard sl(sessions_mu);
        do {
          sid = fmt_hex(rng()) + fmt_hex(rng());
        } while (sessions.count(sid) != 0);
        sessions.emplace(sid, s);
      }
      return HttpResponse::text(200, sid);
    }
    if (path.starts_with("txn/")) return handle_txn(req, path.substr(4));
    return error_response(NotFound("no log API endpoint " + req.method + " " + req.path));
  }

  // ?topic=&partition= and a records body, handed to `append`; answers the first offset.
  template <typename Append>
  static HttpResponse append_from(const HttpRequest& req, Append&& append) {
    std::string topic;
    uint32_t partition = 0;
    LOGAPI_TRY(str_param(req, "topic", &topic));
    LOGAPI_TRY(int_param(req, "partition", &partition));
    std::vector<RecordIn> recs;
    std::vector<RecordHeader> headers;
    LOGAPI_TRY(logwire::decode_records(req.body, &recs, &headers));
    Result<int64_t> r = append(topic, partition, recs.data(), recs.size());
    if (!r.ok()) return error_response(r.status());
    return text(*r);
  }

  // ?group=&topic= and an offsets body, handed to `commit`.
  template <typename Commit>
  static HttpResponse offsets_from(const HttpRequest& req, Commit&& commit) {
    std::string group;
    std::string topic;
    std::map<uint32_t, int64_t> offsets;
    LOGAPI_TRY(str_param(req, "group", &group));
    LOGAPI_TRY(str_param(req, "topic", &topic));
    LOGAPI_TRY(logwire::decode_offsets(req.body, &offsets));
    LOGAPI_TRY(commit(group, topic, offsets));
    return HttpResponse::text(200, "ok");
  }

  static std::string fmt_hex(uint64_t v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = kDigits[v & 15];
    return out;
  }

  HttpResponse handle_txn(const HttpRequest& req, std::string_view rest) {
    const size_t slash = rest.find('/');
    const std::string_view sid = rest.substr(0, slash);
    const std::string_view op = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    if (req.method == "DELETE" && op.empty()) {
      std::shared_ptr<Session> gone;
      {
        std::lock_guard sl(sessions_mu);
        auto it = sessions.find(sid);
        if (it != sessions.end()) {
          gone = std::move(it->second);
          sessions.erase(it);
        }
      }
      if (gone) {
        std::lock_guard busy(gone->mu);
        gone->producer.reset();  // aborts an open transaction
      }
      return HttpResponse::text(200, "ok");
    }
    if (req.method != "POST") {
      return error_response(InvalidArgument("transaction calls are POST (or DELETE of the session)"));
    }
    std::shared_ptr<Session> s = find_session(sid);
    if (!s) {
      HttpResponse r = error_response(
          Unavailable("unknown transaction session (the log's owner restarted, or the session "
                      "was idle longer than the transaction timeout)"));
      r.status = 410;
      return r;
    }
    std::lock_guard busy(s->mu);
    s->last_used = SteadyClock::now();
    if (!s->producer) return error_response(Unavailable("transaction session closed"));
    TransactionalProducer& p = *s->producer;
    HttpResponse r;
    if (op == "begin") {
      LOGAPI_TRY(p.begin());
      r = HttpResponse::text(200, "ok");
    } else if (op == "commit") {
      LOGAPI_TRY(p.commit());
      r = HttpResponse::text(200, "ok");
    } else if (op == "abort") {
      LOGAPI_TRY(p.abort());
      r = HttpResponse::text(200, "ok");
    } else if (op == "append") {
      r = append_from(req, [&](const std::string& t, uint32_t part, const RecordIn* recs, size_t n) {
        return p.append(t, part, recs, n);
      });
    } else if (op == "offsets") {
      r = offsets_from(req, [&](const std::string& g, const std::string& t,
                                const std::map<uint32_t, int64_t>& o) {
        return p.send_offsets(g, t, o);
      });
    } else {
      return error_response(NotFound("no transaction call " + std::string(op)));
    }
    s->last_used = SteadyClock::now();
    return r;
  }
};

LogApi::LogApi(Log* log, LogApiConfig config) : impl_(std::make_unique<Impl>(log, config)) {}

LogApi::~LogApi() { stop(); }

void LogApi::install(HttpServer& server) {
  Impl* impl = impl_.get();
  for (const char* method : {"GET", "POST", "DELETE"}) {
    server.route_prefix_async(method, "/log/v1/", [impl](HttpRequest req, HttpResponder respond) {
      impl->submit(std::move(req), std::move(respond));
    });
  }
}

void LogApi::stop() { impl_->shutdown(); }

size_t LogApi::sessions() const {
  std::lock_guard sl(impl_->sessions_mu);
  return impl_->sessions.size();
}

}  // namespace spate
