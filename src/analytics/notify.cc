#include "analytics/notify.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "base/hash.h"
#include "base/json_escape.h"
#include "base/split.h"
#include "process/retry.h"
#include "server/http_client.h"

namespace spate::analytics {

namespace {

using Clock = std::chrono::steady_clock;

// ---- small text helpers ----------------------------------------------------------------------

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  return std::string(trim_space(s));
}

std::string iso_utc(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t);
  return buf;
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(std::max(0, n)));
  return out;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return out;
}

// Short, printable excerpt of a peer's reply for an error message.
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200))
    out.push_back(std::isprint(static_cast<unsigned char>(c)) ? c : ' ');
  return trim(out);
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
  }
  return s;
}

std::string key_text(const Alert& a) {
  return a.key_json.empty() ? "null" : a.key_json;
}

// ---- URLs ------------------------------------------------------------------------------------

struct Url {
  bool https = false;
  std::string host;
  uint16_t port = 0;
  std::string target = "/";  // path and query
};

Status parse_url(std::string_view url, Url* out) {
  // The URL itself may carry a token: never put it into the message.
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    out->https = true;
    rest = url.substr(8);
  } else {
    return ConfigError("the URL must start with http:// or https://");
  }
  const size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view t = rest.substr(slash);
    t = t.substr(0, t.find('#'));
    out->target = t.starts_with('/') ? std::string(t) : "/" + std::string(t);
  }
  if (authority.find('@') != std::string_view::npos) {
    return ConfigError("user information in the URL is not supported (use headers)");
  }
  std::string_view port_text;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return ConfigError("bad IPv6 address in the URL");
    out->host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return ConfigError("bad URL authority");
      port_text = after.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    out->host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (out->host.empty()) return ConfigError("the URL has no host");
  if (port_text.empty()) {
    out->port = out->https ? 443 : 80;
  } else {
    int p = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || p > 65535) return ConfigError("bad port in the URL");
      p = p * 10 + (c - '0');
    }
    if (p <= 0 || p > 65535) return ConfigError("bad port in the URL");
    out->port = static_cast<uint16_t>(p);
  }
  return Status::Ok();
}

// ---- a blocking TCP connection with optional TLS, every step bounded -------------------------

std::string ssl_error_text() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "TLS error" : out;
}

class Conn {
 public:
  Conn() = default;
  ~Conn() { close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  Status connect(const std::string& host, uint16_t port, int64_t timeout_ms) {
    timeout_ms_ = std::max<int64_t>(1, timeout_ms);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
      return Unavailable("cannot resolve " + host + ": " + ::gai_strerror(rc));
    }
    Status last = Unavailable("no address for " + host);
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      int fd =
          ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      if (fd < 0) continue;
      int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        rc = ::poll(&p, 1, static_cast<int>(timeout_ms_));
        if (rc == 0) {
          ::close(fd);
          last = Timeout("connecting to " + host + ":" + service + " timed out");
          continue;
        }
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      }
      if (rc != 0) {
        last = Unavailable("connecting to " + host + ":" + service + ": " + std::strerror(errno));
        ::close(fd);
        continue;
      }
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      timeval tv{static_cast<time_t>(timeout_ms_ / 1000),
                 static_cast<suseconds_t>((timeout_ms_ % 1000) * 1000)};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fd_ = fd;
      ::freeaddrinfo(res);
      return Status::Ok();
    }
    ::freeaddrinfo(res);
    return last;
  }

  // Upgrade to TLS (client side): SNI, certificate and host name verification.
  Status start_tls(const std::string& host, bool verify, const std::string& ca_file) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) return Internal("SSL_CTX_new: " + ssl_error_text());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    if (verify) {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
      if (SSL_CTX_set_default_verify_paths(ctx_) != 1) {
        return Internal("loading the system CA certificates: " + ssl_error_text());
      }
      if (!ca_file.empty() && SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr) != 1) {
        return InvalidArgument("cannot load CA file " + ca_file + ": " + ssl_error_text());
      }
    }
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1)
      return Internal("SSL_new: " + ssl_error_text());
    in6_addr a6{};
    in_addr a4{};
    const bool is_ip = ::inet_pton(AF_INET, host.c_str(), &a4) == 1 ||
                       ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
    if (!is_ip) SSL_set_tlsext_host_name(ssl_, host.c_str());
    if (verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
      if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1
                : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0) != 1) {
        return Internal("setting the TLS host name check: " + ssl_error_text());
      }
    }
    if (SSL_connect(ssl_) != 1) {
      const long vr = SSL_get_verify_result(ssl_);
      std::string why = vr != X509_V_OK ? std::string("certificate verification failed: ") +
                                              X509_verify_cert_error_string(vr)
                                        : ssl_error_text();
      // A certificate problem will not go away by retrying.
      return vr != X509_V_OK ? InvalidArgument("TLS handshake with " + host + ": " + why)
                             : Unavailable("TLS handshake with " + host + ": " + why);
    }
    return Status::Ok();
  }

  Status write_all(std::string_view data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n;
      if (ssl_ != nullptr) {
        n = SSL_write(ssl_, data.data() + off,
                      static_cast<int>(std::min<size_t>(data.size() - off, 1 << 30)));
        if (n <= 0) return io_error("writing", SSL_get_error(ssl_, static_cast<int>(n)));
      } else {
        n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
          return errno == EAGAIN || errno == EWOULDBLOCK
                     ? Timeout("write timed out")
                     : IoError(std::string("write: ") + std::strerror(errno));
      }
      off += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  // Read some bytes into buf_; EOF is an error unless eof_ok.
  Status fill(bool eof_ok = false) {
    char tmp[4096];
    for (;;) {
      ssize_t n;
      if (ssl_ != nullptr) {
        n = SSL_read(ssl_, tmp, sizeof tmp);
        if (n <= 0) {
          const int e = SSL_get_error(ssl_, static_cast<int>(n));
          if (e == SSL_ERROR_ZERO_RETURN) {
            eof_ = true;
            return eof_ok ? Status::Ok() : IoError("connection closed by the server");
          }
          return io_error("reading", e);
        }
      } else {
        n = ::recv(fd_, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
          return errno == EAGAIN || errno == EWOULDBLOCK
                     ? Timeout("read timed out")
                     : IoError(std::string("read: ") + std::strerror(errno));
        if (n == 0) {
          eof_ = true;
          return eof_ok ? Status::Ok() : IoError("connection closed by the server");
        }
      }
      buf_.append(tmp, static_cast<size_t>(n));
      return Status::Ok();
    }
  }

  // One line without its CRLF (or LF).
  Status read_line(std::string* line) {
    size_t p;
    while ((p = buf_.find('\n')) == std::string::npos) {
      if (buf_.size() > 64 * 1024) return IoError("reply line too long");
      SPATE_RETURN_IF_ERROR(fill());
    }
    *line = buf_.substr(0, p > 0 && buf_[p - 1] == '\r' ? p - 1 : p);
    buf_.erase(0, p + 1);
    return Status::Ok();
  }

  std::string& buffer() { return buf_; }
  bool eof() const { return eof_; }

  void close() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (ctx_ != nullptr) {
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

 private:
  Status io_error(const char* what, int ssl_err) {
    if ((ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_WANT_READ ||
         ssl_err == SSL_ERROR_WANT_WRITE) &&
        (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return Timeout(std::string(what) + " timed out");
    }
    return IoError(std::string("TLS ") + what + ": " + ssl_error_text());
  }

  int fd_ = -1;
  int64_t timeout_ms_ = 10'000;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buf_;
  bool eof_ = false;
};

// ---- HTTP POST (http: HttpClient; https: Conn with TLS) ---------------------------------------

Status classify_http(int status, std::string_view body) {
  if (status >= 200 && status < 300) return Status::Ok();
  std::string m = "HTTP " + std::to_string(status);
  if (!body.empty()) m += ": " + excerpt(body);
  if (status == 408 || status == 429 || status >= 500) return Unavailable(m);
  return InvalidArgument(m);  // permanent: retrying the same request will not help
}

Status https_post(const Url& u, const std::string& body, const HttpHeaders& headers,
                  const std::string& ca_file, int64_t timeout_ms) {
  Conn c;
  SPATE_RETURN_IF_ERROR(c.connect(u.host, u.port, timeout_ms));
  SPATE_RETURN_IF_ERROR(c.start_tls(u.host, /*verify=*/true, ca_file));
  std::string host_header = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  if (u.port != 443) host_header += ":" + std::to_string(u.port);
  std::string req = "POST " + u.target + " HTTP/1.1\r\nHost: " + host_header +
                    "\r\nUser-Agent: spate\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n";
  for (const auto& [k, v] : headers) req += one_line(k) + ": " + one_line(v) + "\r\n";
  req += "\r\n";
  req += body;
  SPATE_RETURN_IF_ERROR(c.write_all(req));
  std::string status_line;
  SPATE_RETURN_IF_ERROR(c.read_line(&status_line));
  // "HTTP/1.1 200 OK"
  if (!status_line.starts_with("HTTP/") || status_line.size() < 12) {
    return IoError("malformed HTTP response");
  }
  const int status = std::atoi(status_line.c_str() + status_line.find(' ') + 1);
  // The body excerpt is only for error messages: read what is there up to a small bound.
  std::string& buf = c.buffer();
  if (status < 200 || status >= 300) {
    while (buf.find("\r\n\r\n") == std::string::npos && buf.size() < 8192 && !c.eof()) {
      if (!c.fill(/*eof_ok=*/true).ok()) break;
    }
  }
  const size_t head_end = buf.find("\r\n\r\n");
  return classify_http(status, head_end == std::string::npos ? "" : buf.substr(head_end + 4));
}

Status post_json(const Url& u, const std::string& body, HttpHeaders headers,
                 const std::string& ca_file, int64_t timeout_ms) {
  const bool has_ct = std::any_of(headers.begin(), headers.end(),
                                  [](const auto& h) { return lower(h.first) == "content-type"; });
  if (!has_ct) headers.emplace_back("Content-Type", "application/json");
  if (u.https) return https_post(u, body, headers, ca_file, timeout_ms);
  Result<HttpResponse> r =
      http_request(u.host, u.port, "POST", u.target, body, headers, timeout_ms);
  if (!r.ok()) {
    // HttpClient names the request target, which may carry a token: hide it.
    const std::string& m = r.status().message();
    return Status(r.status().code(), u.target == "/" ? m : replace_all(m, u.target, "/<path>"));
  }
  return classify_http(r->status, r->body);
}

// ---- notifiers -------------------------------------------------------------------------------

class HttpNotifier : public Notifier {
 public:
  HttpNotifier(NotifierConfig cfg, Url url, bool slack)
      : cfg_(std::move(cfg)), url_(std::move(url)), slack_(slack) {}
  Status send(const Alert& a) override {
    return post_json(url_, slack_ ? slack_payload(a) : a.to_json(), cfg_.headers, cfg_.ca_file,
                     cfg_.timeout_ms);
  }
  const NotifierConfig& config() const override { return cfg_; }

 private:
  NotifierConfig cfg_;
  Url url_;
  bool slack_;
};

class StdoutNotifier : public Notifier {
 public:
  StdoutNotifier(NotifierConfig cfg, std::function<void(std::string_view)> sink)
      : cfg_(std::move(cfg)), sink_(std::move(sink)) {}
  Status send(const Alert& a) override {
    std::string line = a.to_json();
    line += '\n';
    if (sink_) {
      sink_(line);
      return Status::Ok();
    }
    static std::mutex mu;  // whole lines, even with several stdout notifiers
    std::lock_guard lock(mu);
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() ||
        std::fflush(stdout) != 0) {
      return IoError("writing to stdout failed");
    }
    return Status::Ok();
  }
  const NotifierConfig& config() const override { return cfg_; }

 private:
  NotifierConfig cfg_;
  std::function<void(std::string_view)> sink_;
};

class TopicNotifier : public Notifier {
 public:
  TopicNotifier(NotifierConfig cfg, Log* log) : cfg_(std::move(cfg)), log_(log) {}
  Status send(const Alert& a) override {
    if (partitions_ == 0) {
      TopicSpec spec;
      spec.name = cfg_.topic;
      SPATE_RETURN_IF_ERROR(log_->ensure_topic(spec));
      Result<TopicInfo> info = log_->describe_topic(cfg_.topic);
      if (!info.ok()) return info.status();
      partitions_ = std::max<uint32_t>(1, info->partitions);
    }
    const std::string key = a.analytics + "/" + a.rule + "/" + key_text(a);
    const std::string value = a.to_json();
    RecordIn rec;
    rec.key = key;
    rec.value = value;
    rec.timestamp_ms = a.at_ms > 0 ? a.at_ms : 0;
    Result<int64_t> r = log_->append(cfg_.topic, partition_for_key(key, partitions_), &rec, 1);
    if (!r.ok()) {
      partitions_ = 0;  // re-read the topic on the next attempt
      // Invalid input to append() would fail the same way again; everything else may pass.
      return r.status().code() == Errc::kInvalidArgument ? r.status()
                                                         : Unavailable(r.status().to_string());
    }
    return Status::Ok();
  }
  const NotifierConfig& config() const override { return cfg_; }

 private:
  NotifierConfig cfg_;
  Log* log_;
  uint32_t partitions_ = 0;
};

// SMTP reply: code and the text of all its lines.
struct Reply {
  int code = 0;
  std::vector<std::string> lines;
  std::string text() const {
    std::string t;
    for (const auto& l : lines) t += (t.empty() ? "" : " / ") + l;
    return excerpt(t);
  }
};

class EmailNotifier : public Notifier {
 public:
  explicit EmailNotifier(NotifierConfig cfg) : cfg_(std::move(cfg)) {}
  Status send(const Alert& a) override {
    Conn c;
    const SmtpConfig& s = cfg_.smtp;
    SPATE_RETURN_IF_ERROR(c.connect(s.host, s.port, cfg_.timeout_ms));
    Reply r;
    SPATE_RETURN_IF_ERROR(read_reply(c, &r));
    SPATE_RETURN_IF_ERROR(expect(r, 220, "greeting"));
    std::vector<std::string> ext;
    SPATE_RETURN_IF_ERROR(hello(c, &ext));
    if (s.starttls) {
      if (!has_ext(ext, "STARTTLS")) {
        return InvalidArgument("the SMTP server does not offer STARTTLS (smtp.starttls is set)");
      }
      SPATE_RETURN_IF_ERROR(command(c, "STARTTLS", 220, &r));
      c.buffer().clear();
      SPATE_RETURN_IF_ERROR(c.start_tls(s.host, s.tls_verify, s.ca_file));
      SPATE_RETURN_IF_ERROR(hello(c, &ext));
    }
    if (!s.username.empty()) SPATE_RETURN_IF_ERROR(auth(c, ext));
    SPATE_RETURN_IF_ERROR(command(c, "MAIL FROM:<" + one_line(s.from) + ">", 250, &r));
    int accepted = 0;
    bool transient = false;
    std::string refused;
    for (const std::string& to : s.to) {
      SPATE_RETURN_IF_ERROR(send_line(c, "RCPT TO:<" + one_line(to) + ">"));
      SPATE_RETURN_IF_ERROR(read_reply(c, &r));
      if (r.code == 250 || r.code == 251) {
        ++accepted;
      } else {
        refused = r.text();
        if (r.code >= 400 && r.code < 500) transient = true;
      }
    }
    if (accepted == 0) {
      const std::string m = "no recipient accepted: " + refused;
      return transient ? Unavailable(m) : InvalidArgument(m);
    }
    SPATE_RETURN_IF_ERROR(command(c, "DATA", 354, &r));
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    SPATE_RETURN_IF_ERROR(c.write_all(dot_stuff(email_message(s, a, now_ms)) + ".\r\n"));
    SPATE_RETURN_IF_ERROR(read_reply(c, &r));
    SPATE_RETURN_IF_ERROR(expect(r, 250, "end of DATA"));
    (void)send_line(c, "QUIT");  // the message is accepted; the reply does not matter
    return Status::Ok();
  }
  const NotifierConfig& config() const override { return cfg_; }

  // Lines starting with '.' get another '.'; bare LF becomes CRLF; ends with CRLF.
  static std::string dot_stuff(std::string_view msg) {
    std::string out;
    out.reserve(msg.size() + 64);
    bool line_start = true;
    for (size_t i = 0; i < msg.size(); ++i) {
      const char ch = msg[i];
      if (line_start && ch == '.') out += '.';
      line_start = false;
      if (ch == '\r' && i + 1 < msg.size() && msg[i + 1] == '\n') continue;  // CRLF: on the LF
      if (ch == '\n' || ch == '\r') {
        out += "\r\n";
        line_start = true;
        continue;
      }
      out += ch;
    }
    if (!line_start) out += "\r\n";
    return out;
  }

 private:
  static Status read_reply(Conn& c, Reply* r) {
    r->lines.clear();
    r->code = 0;
    for (;;) {
      std::string line;
      SPATE_RETURN_IF_ERROR(c.read_line(&line));
      if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
          !std::isdigit(static_cast<unsigned char>(line[1])) ||
          !std::isdigit(static_cast<unsigned char>(line[2]))) {
        return IoError("malformed SMTP reply: " + excerpt(line));
      }
      const int code = std::atoi(line.substr(0, 3).c_str());
      if (r->code != 0 && code != r->code) return IoError("inconsistent multi-line SMTP reply");
      r->code = code;
      r->lines.push_back(line.size() > 4 ? line.substr(4) : "");
      if (line.size() == 3 || line[3] == ' ') return Status::Ok();
      if (line[3] != '-') return IoError("malformed SMTP reply: " + excerpt(line));
      if (r->lines.size() > 1000) return IoError("SMTP reply too long");
    }
  }

  static Status expect(const Reply& r, int code, std::string_view what) {
    if (r.code == code) return Status::Ok();
    const std::string m =
        "SMTP " + std::string(what) + ": " + std::to_string(r.code) + " " + r.text();
    return r.code >= 500 ? InvalidArgument(m) : Unavailable(m);
  }

  static Status send_line(Conn& c, const std::string& line) { return c.write_all(line + "\r\n"); }

  // `shown` replaces the line in error messages (credentials).
  static Status command(Conn& c, const std::string& line, int code, Reply* r,
                        std::string_view shown = {}) {
    SPATE_RETURN_IF_ERROR(send_line(c, line));
    SPATE_RETURN_IF_ERROR(read_reply(c, r));
    std::string what = shown.empty() ? line.substr(0, line.find(':')) : std::string(shown);
    return expect(*r, code, what);
  }

  Status hello(Conn& c, std::vector<std::string>* ext) {
    Reply r;
    SPATE_RETURN_IF_ERROR(send_line(c, "EHLO " + one_line(cfg_.smtp.helo_name)));
    SPATE_RETURN_IF_ERROR(read_reply(c, &r));
    ext->clear();
    if (r.code == 250) {
      for (size_t i = 1; i < r.lines.size(); ++i) ext->push_back(r.lines[i]);
      return Status::Ok();
    }
    return command(c, "HELO " + one_line(cfg_.smtp.helo_name), 250, &r);
  }

  static bool has_ext(const std::vector<std::string>& ext, std::string_view name) {
    return std::any_of(ext.begin(), ext.end(), [&](const std::string& e) {
      const std::string up = lower(e);
      const std::string want = lower(name);
      return up == want || up.starts_with(want + " ");
    });
  }

  Status auth(Conn& c, const std::vector<std::string>& ext) {
    std::string mechs;
    for (const std::string& e : ext) {
      if (lower(e).starts_with("auth ") || lower(e).starts_with("auth="))
        mechs += " " + lower(e.substr(5)) + " ";
    }
    const SmtpConfig& s = cfg_.smtp;
    Reply r;
    if (mechs.find(" plain ") != std::string::npos || mechs.empty()) {
      std::string creds;
      creds += '\0';
      creds += s.username;
      creds += '\0';
      creds += s.password;
      return command(c, "AUTH PLAIN " + base64(creds), 235, &r, "AUTH PLAIN");
    }
    if (mechs.find(" login ") != std::string::npos) {
      SPATE_RETURN_IF_ERROR(command(c, "AUTH LOGIN", 334, &r));
      SPATE_RETURN_IF_ERROR(command(c, base64(s.username), 334, &r, "AUTH LOGIN user name"));
      return command(c, base64(s.password), 235, &r, "AUTH LOGIN password");
    }
    return InvalidArgument("the SMTP server offers neither AUTH PLAIN nor AUTH LOGIN");
  }

  NotifierConfig cfg_;
};

Status check_email(const NotifierConfig& cfg) {
  if (cfg.smtp.host.empty()) return ConfigError("notifier " + cfg.name + ": smtp.host is empty");
  if (cfg.smtp.from.empty()) return ConfigError("notifier " + cfg.name + ": smtp.from is empty");
  if (cfg.smtp.to.empty()) return ConfigError("notifier " + cfg.name + ": no recipients (smtp.to)");
  return Status::Ok();
}

std::string slack_escape(std::string_view s) {
  return replace_all(replace_all(replace_all(std::string(s), "&", "&amp;"), "<", "&lt;"), ">",
                     "&gt;");
}

std::string severity_colour(const Alert& a) {
  if (a.state == "resolved") return "#2eb886";
  if (a.severity == "critical") return "#d00000";
  if (a.severity == "warning") return "#f2c744";
  return "#439fe0";
}

void slack_field(std::string& out, bool& first, std::string_view title, std::string_view value,
                 bool short_field) {
  out += first ? "" : ",";
  first = false;
  out += "{\"title\":";
  append_json_quoted(out, title);
  out += ",\"value\":";
  append_json_quoted(out, value);
  out += short_field ? ",\"short\":true}" : ",\"short\":false}";
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// ---- public helpers --------------------------------------------------------------------------

std::string slack_payload(const Alert& a) {
  const std::string title = a.analytics + "/" + a.rule;
  const std::string text =
      (a.state == "resolved" ? "[RESOLVED] " : "[" + upper(a.severity) + "] ") +
      slack_escape(title) + " " + a.state + ": " + slack_escape(a.message);
  std::string out = "{\"text\":";
  append_json_quoted(out, text);
  out += ",\"attachments\":[{\"color\":";
  append_json_quoted(out, severity_colour(a));
  out += ",\"title\":";
  append_json_quoted(out, slack_escape(title));
  out += ",\"text\":";
  append_json_quoted(out, slack_escape(a.message));
  out += ",\"fields\":[";
  bool first = true;
  slack_field(out, first, "Severity", a.severity, true);
  slack_field(out, first, "State", a.state, true);
  slack_field(out, first, "Kind", a.kind, true);
  slack_field(out, first, "Key", slack_escape(key_text(a)), true);
  slack_field(out, first, "Window", iso_utc(a.window_start) + " – " + iso_utc(a.window_end), false);
  slack_field(out, first, "Evidence",
              "```" + slack_escape(a.evidence_json.empty() ? "{}" : a.evidence_json) + "```",
              false);
  out += "],\"footer\":";
  append_json_quoted(out, "spate alert " + a.id);
  out += ",\"ts\":" + std::to_string(a.at_ms / 1000) + "}]}";
  return out;
}

std::string email_message(const SmtpConfig& smtp, const Alert& a, int64_t now_ms) {
  std::string subject = smtp.subject;
  const std::pair<std::string_view, std::string> vars[] = {
      {"{severity}", a.severity}, {"{state}", a.state}, {"{analytics}", a.analytics},
      {"{rule}", a.rule},         {"{kind}", a.kind},   {"{key}", key_text(a)},
      {"{message}", a.message},   {"{id}", a.id}};
  for (const auto& [k, v] : vars) subject = replace_all(subject, k, v);
  subject = one_line(subject);
  if (!is_ascii(subject)) subject = "=?UTF-8?B?" + base64(subject) + "?=";

  std::string body = a.message + "\n\n";
  body += "Alert:     " + a.analytics + "/" + a.rule + " (" + a.kind + ")\n";
  body += "Severity:  " + a.severity + "\n";
  body += "State:     " + a.state + "\n";
  body += "Key:       " + key_text(a) + "\n";
  body += "Window:    " + iso_utc(a.window_start) + " - " + iso_utc(a.window_end) + "\n";
  body += "At:        " + iso_utc(a.at_ms) + "\n";
  body += "Id:        " + a.id + "\n\n";
  body += "Evidence:\n" + (a.evidence_json.empty() ? std::string("{}") : a.evidence_json) + "\n";

  const time_t secs = static_cast<time_t>(now_ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char date[64];
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &t);
  std::string to;
  for (const std::string& r : smtp.to) to += (to.empty() ? "" : ", ") + one_line(r);
  std::string m;
  m += "From: " + one_line(smtp.from) + "\r\n";
  m += "To: " + to + "\r\n";
  m += "Subject: " + subject + "\r\n";
  m += std::string("Date: ") + date + "\r\n";
  m += "Message-ID: <" + a.id + "." + a.state + "." + std::to_string(now_ms) + "@spate>\r\n";
  m += "X-Spate-Alert-Id: " + one_line(a.id) + "\r\n";
  m += "X-Spate-Alert-State: " + one_line(a.state) + "\r\n";
  m += "X-Spate-Alert-Severity: " + one_line(a.severity) + "\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  if (is_ascii(body)) {
    m += "Content-Transfer-Encoding: 7bit\r\n\r\n";
    m += replace_all(replace_all(body, "\r\n", "\n"), "\n", "\r\n");
  } else {
    m += "Content-Transfer-Encoding: base64\r\n\r\n";
    const std::string b = base64(body);
    for (size_t i = 0; i < b.size(); i += 76) m += b.substr(i, 76) + "\r\n";
  }
  return m;
}

Result<std::unique_ptr<Notifier>> make_notifier(const NotifierConfig& cfg,
                                                const NotifierContext& ctx) {
  if (cfg.name.empty()) return ConfigError("a notifier needs a name");
  if (cfg.kind == "webhook" || cfg.kind == "slack") {
    Url u;
    if (Status st = parse_url(cfg.url, &u); !st.ok()) {
      return ConfigError("notifier " + cfg.name + ": " + st.message());
    }
    return std::unique_ptr<Notifier>(new HttpNotifier(cfg, std::move(u), cfg.kind == "slack"));
  }
  if (cfg.kind == "email") {
    SPATE_RETURN_IF_ERROR(check_email(cfg));
    return std::unique_ptr<Notifier>(new EmailNotifier(cfg));
  }
  if (cfg.kind == "topic") {
    if (ctx.log == nullptr) return ConfigError("notifier " + cfg.name + ": needs a log");
    if (Status st = validate_topic_name(cfg.topic); !st.ok()) {
      return ConfigError("notifier " + cfg.name + ": " + st.message());
    }
    return std::unique_ptr<Notifier>(new TopicNotifier(cfg, ctx.log));
  }
  if (cfg.kind == "stdout")
    return std::unique_ptr<Notifier>(new StdoutNotifier(cfg, ctx.stdout_sink));
  return ConfigError("notifier " + cfg.name + ": unknown type \"" + cfg.kind +
                     "\" (webhook, slack, email, topic, stdout)");
}

std::vector<NotifierConfig> notifiers_from_env(const EnvLookup& env,
                                               std::vector<NotifierConfig> configured,
                                               std::vector<std::string>* warnings) {
  auto get = [&](std::string_view name) -> std::string {
    if (!env) return "";
    auto v = env(name);
    return v ? trim(*v) : std::string();
  };
  auto taken = [&](std::string_view name) {
    return std::any_of(configured.begin(), configured.end(),
                       [&](const NotifierConfig& c) { return c.name == name; });
  };
  auto warn = [&](std::string w) {
    if (warnings != nullptr) warnings->push_back(std::move(w));
  };
  if (std::string url = get("SLACK_WEBHOOK_URL"); !url.empty() && !taken("slack")) {
    NotifierConfig c;
    c.name = "slack";
    c.kind = "slack";
    c.url = url;
    Url u;
    if (parse_url(url, &u).ok()) {
      configured.push_back(std::move(c));
    } else {
      warn("SLACK_WEBHOOK_URL is not an http(s) URL: no slack notifier");
    }
  }
  const std::string email = get("EMAIL_NOTIFICATIONS");
  const std::string flag = lower(email);
  if (!email.empty() && flag != "false" && flag != "0" && flag != "no" && flag != "off" &&
      !taken("email")) {
    NotifierConfig c;
    c.name = "email";
    c.kind = "email";
    SmtpConfig& s = c.smtp;
    if (std::string h = get("SMTP_HOST"); !h.empty()) s.host = h;
    bool port_ok = true;
    if (std::string p = get("SMTP_PORT"); !p.empty()) {
      char* end = nullptr;
      const long v = std::strtol(p.c_str(), &end, 10);
      port_ok = end != p.c_str() && *end == '\0' && v > 0 && v <= 65535;
      if (port_ok) s.port = static_cast<uint16_t>(v);
    }
    s.from = get("SMTP_FROM");
    if (s.from.empty()) s.from = "spate@localhost";
    s.to = flag == "true" || flag == "1" || flag == "yes" || flag == "on"
               ? split_trimmed(get("SMTP_TO"))
               : split_trimmed(email);
    s.username = get("SMTP_USERNAME");
    s.password = get("SMTP_PASSWORD");
    const std::string tls = lower(get("SMTP_STARTTLS"));
    s.starttls = tls.empty() ? s.port == 587 : (tls == "true" || tls == "1" || tls == "yes");
    if (!port_ok) {
      warn("SMTP_PORT is not a port number: no email notifier");
    } else if (s.to.empty()) {
      warn("EMAIL_NOTIFICATIONS is set but there are no recipients (SMTP_TO): no email notifier");
    } else {
      configured.push_back(std::move(c));
    }
  }
  return configured;
}

// ---- dispatcher ------------------------------------------------------------------------------

struct NotifierDispatcher::Worker {
  std::unique_ptr<Notifier> notifier;
  process::RetryPolicy policy;
  std::mt19937_64 rng;
  Counter* sent = nullptr;
  Counter* failed = nullptr;
  Counter* dropped = nullptr;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Alert> queue;
  bool stopping = false;
  Clock::time_point deadline;
  std::atomic<uint64_t> n_sent{0}, n_failed{0}, n_dropped{0}, n_retries{0};
  std::thread thread;

  bool past_deadline_locked() const { return stopping && Clock::now() >= deadline; }

  void drop(uint64_t n) {
    if (n == 0) return;
    n_dropped += n;
    dropped->inc(n);
  }

  void run() {
    for (;;) {
      Alert a;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !queue.empty() || stopping; });
        if (queue.empty()) return;
        if (past_deadline_locked()) {
          drop(queue.size());
          queue.clear();
          return;
        }
        a = std::move(queue.front());
        queue.pop_front();
      }
      deliver(a);
    }
  }

  void deliver(const Alert& a) {
    const std::string& name = notifier->config().name;
    for (int attempt = 1;; ++attempt) {
      Status st = notifier->send(a);
      if (st.ok()) {
        ++n_sent;
        sent->inc();
        return;
      }
      const auto cls = st.code() == Errc::kInvalidArgument || st.code() == Errc::kConfig
                           ? process::ErrorClass::kPermanent
                           : process::ErrorClass::kTransient;
      if (!policy.should_retry(cls, attempt)) {
        ++n_failed;
        failed->inc();
        spdlog::warn("notifier {}: alert {} ({}/{} {}) not delivered after {} attempt(s): {}", name,
                     a.id, a.analytics, a.rule, a.state, attempt, st.to_string());
        return;
      }
      const auto until = Clock::now() + std::chrono::milliseconds(policy.backoff_ms(attempt, rng));
      std::unique_lock lock(mu);
      for (;;) {
        const auto limit = stopping ? std::min(until, deadline) : until;
        if (Clock::now() >= limit) break;
        cv.wait_until(lock, limit);
      }
      if (past_deadline_locked()) {
        ++n_failed;
        failed->inc();
        spdlog::warn("notifier {}: alert {} not delivered before shutdown: {}", name, a.id,
                     st.to_string());
        return;
      }
      ++n_retries;
    }
  }
};

NotifierDispatcher::NotifierDispatcher(std::vector<std::unique_ptr<Notifier>> notifiers,
                                       NotifierDispatcherConfig cfg)
    : cfg_(cfg) {
  MetricsRegistry& m = cfg_.metrics != nullptr ? *cfg_.metrics : global_metrics();
  std::random_device rd;
  uint64_t seed = cfg_.seed != 0 ? cfg_.seed : (static_cast<uint64_t>(rd()) << 32 | rd());
  for (auto& n : notifiers) {
    auto w = std::make_unique<Worker>();
    const NotifierConfig& c = n->config();
    w->policy.max_retries = std::max(0, c.retry.max_attempts - 1);
    w->policy.initial_backoff_ms = c.retry.initial_backoff_ms;
    w->policy.max_backoff_ms = c.retry.max_backoff_ms;
    w->policy.multiplier = c.retry.multiplier;
    w->policy.jitter = c.retry.jitter;
    w->rng.seed(seed++);
    constexpr std::string_view kHelp = "Alert notifications by notifier and outcome";
    w->sent = &m.counter("analytics_notifications_total", kHelp,
                         {{"notifier", c.name}, {"status", "sent"}});
    w->failed = &m.counter("analytics_notifications_total", kHelp,
                           {{"notifier", c.name}, {"status", "failed"}});
    w->dropped = &m.counter("analytics_notifications_total", kHelp,
                            {{"notifier", c.name}, {"status", "dropped"}});
    w->notifier = std::move(n);
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) w->thread = std::thread([p = w.get()] { p->run(); });
}

NotifierDispatcher::~NotifierDispatcher() {
  shutdown();
}

Result<std::unique_ptr<NotifierDispatcher>> NotifierDispatcher::create(
    const std::vector<NotifierConfig>& configs, const NotifierContext& ctx,
    NotifierDispatcherConfig cfg) {
  std::vector<std::unique_ptr<Notifier>> notifiers;
  for (const NotifierConfig& c : configs) {
    Result<std::unique_ptr<Notifier>> n = make_notifier(c, ctx);
    if (!n.ok()) return n.status();
    notifiers.push_back(std::move(*n));
  }
  return std::make_unique<NotifierDispatcher>(std::move(notifiers), cfg);
}

void NotifierDispatcher::publish(const Alert& alert) {
  for (auto& w : workers_) {
    const NotifierConfig& c = w->notifier->config();
    if (!c.route.matches(alert)) continue;
    {
      std::lock_guard lock(w->mu);
      if (w->stopping) continue;
      if (w->queue.size() >= std::max<size_t>(1, c.queue_capacity)) {
        w->queue.pop_front();
        w->drop(1);
      }
      w->queue.push_back(alert);
    }
    w->cv.notify_one();
  }
}

void NotifierDispatcher::shutdown() {
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(std::max<int64_t>(0, cfg_.drain_timeout_ms));
  for (auto& w : workers_) {
    std::lock_guard lock(w->mu);
    if (!w->stopping) {
      w->stopping = true;
      w->deadline = deadline;
    }
  }
  for (auto& w : workers_) {
    w->cv.notify_all();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
    std::lock_guard lock(w->mu);
    w->drop(w->queue.size());
    w->queue.clear();
  }
}

std::vector<NotifierStats> NotifierDispatcher::stats() const {
  std::vector<NotifierStats> out;
  for (const auto& w : workers_) {
    NotifierStats s;
    s.name = w->notifier->config().name;
    s.sent = w->n_sent;
    s.failed = w->n_failed;
    s.dropped = w->n_dropped;
    s.retries = w->n_retries;
    std::lock_guard lock(w->mu);
    s.queued = w->queue.size();
    out.push_back(std::move(s));
  }
  return out;
}

size_t NotifierDispatcher::size() const {
  return workers_.size();
}

}  // namespace spate::analytics
