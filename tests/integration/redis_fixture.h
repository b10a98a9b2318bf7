// RedisServer / RedisTest: a real Redis server for integration tests, from the Debian
// `redis-server` package (/usr/bin/redis-server, or $SPATE_REDIS_SERVER).
//
// Contract: RedisServer::start() runs `redis-server` in a fresh temporary directory on 127.0.0.1
// and a free port (plus a unix socket in that directory if Options::unix_socket), without
// persistence unless Options::persistent (then an append-only file, fsync always, so data
// survives stop()/start()), and with `requirepass` if Options::password is set. The server is
// a direct child process that gets SIGKILL if the test process dies (PR_SET_PDEATHSIG). stop()
// shuts it down (SIGTERM, then SIGKILL after 10 s) and waits; start() brings it back on the
// same port and directory, to simulate an outage; pause()/resume() freeze and thaw it (SIGSTOP,
// SIGCONT) to simulate a hung server. The destructor stops it and removes the
// directory. Errors are returned as text (empty = fine) so that tests can ASSERT on them.
// command() is a minimal RESP client for assertions ("+OK", "$value", "(nil)", ":1",
// "-ERR ...", arrays as "*N" followed by one element per line).
// RedisTest is a gtest fixture whose SetUp skips the test (GTEST_SKIP) when redis-server is
// missing and otherwise starts `redis`. Not thread-safe: use from the test's thread.
#pragma once

#include <gtest/gtest.h>

#include "integration/child_process.h"
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace spate::testing {

class RedisServer {
 public:
  struct Options {
    bool persistent = false;  // appendonly yes (fsync always): data survives stop()/start()
    std::string password;     // requirepass
    bool unix_socket = false;  // also listen on <dir>/redis.sock
  };

  RedisServer() = default;
  explicit RedisServer(Options o) : opts_(std::move(o)) {}
  ~RedisServer() {
    stop();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  /// $SPATE_REDIS_SERVER, else /usr/bin/redis-server, else /usr/local/bin/redis-server; "" if none.
  static std::string find_binary() {
    if (const char* env = std::getenv("SPATE_REDIS_SERVER"); env != nullptr && *env != '\0') {
      return ::access(env, X_OK) == 0 ? std::string(env) : std::string();
    }
    for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
      if (::access(p, X_OK) == 0) return p;
    }
    return "";
  }

  /// Start the server (first call: pick the directory and port); "" once it answers PING.
  std::string start() {
    if (pid_ > 0) return "";
    if (bin_.empty()) bin_ = find_binary();
    if (bin_.empty()) return "redis-server not found (apt-get install redis-server)";
    if (dir_.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "spate-redis-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) return "mkdtemp failed";
      dir_ = tmpl;
      port_ = free_loopback_port();
      if (port_ <= 0) return "no free port";
    }
    std::vector<std::string> argv = {bin_, "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--dir", dir_, "--daemonize", "no", "--save", "",
                                     "--protected-mode", "no", "--databases", "16"};
    if (opts_.persistent) {
      argv.insert(argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
    } else {
      argv.insert(argv.end(), {"--appendonly", "no"});
    }
    if (!opts_.password.empty()) argv.insert(argv.end(), {"--requirepass", opts_.password});
    if (opts_.unix_socket) argv.insert(argv.end(), {"--unixsocket", socket_path(), "--unixsocketperm", "700"});
    pid_ = spawn(argv);
    if (pid_ <= 0) return "cannot start redis-server";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "redis-server exited during startup: " + log_tail();
      }
      std::string pong = command({"PING"});
      if (pong == "+PONG") return "";
      if (pong.rfind("-NOAUTH", 0) == 0 || pong.rfind("-ERR", 0) == 0) return "";  // up, wants AUTH
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    return "redis-server did not answer PING within 20 s: " + log_tail();
  }

  /// SIGTERM and wait (SIGKILL after 10 s). With persistent, the AOF keeps the data.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);  // in case it was paused
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  /// SIGSTOP / SIGCONT: the server keeps its connections but answers nothing (a hung Redis).
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string socket_path() const { return dir_ + "/redis.sock"; }
  /// redis://[:password@]127.0.0.1:port/db
  std::string url(int db = 0) const {
    std::string auth = opts_.password.empty() ? "" : ":" + opts_.password + "@";
    return "redis://" + auth + "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }

  /// One command on a fresh connection (AUTH first if a password is set, then SELECT db).
  /// Returns the reply as text (see the header comment), or "" if the server is unreachable.
  std::string command(const std::vector<std::string>& args, int db = 0) const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return "";
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return "";
    }
    Reader rd{fd};
    std::string out;
    bool ok = true;
    if (!opts_.password.empty()) ok = send(fd, {"AUTH", opts_.password}) && rd.reply() == "+OK";
    if (ok && db != 0) ok = send(fd, {"SELECT", std::to_string(db)}) && rd.reply() == "+OK";
    if (ok && send(fd, args)) out = rd.reply();
    ::close(fd);
    return out;
  }

  /// The end of the server's log, for failure messages.
  std::string log_tail() const {
    std::ifstream in(dir_ + "/server.log");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
  }

 private:
  struct Reader {
    int fd;
    std::string buf;
    bool fill() {
      char tmp[4096];
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
      return true;
    }
    bool line(std::string* out) {
      size_t p;
      while ((p = buf.find("\r\n")) == std::string::npos) {
        if (!fill()) return false;
      }
      *out = buf.substr(0, p);
      buf.erase(0, p + 2);
      return true;
    }
    std::string reply() {
      std::string l;
      if (!line(&l) || l.empty()) return "";
      if (l[0] == '$') {
        long n = std::atol(l.c_str() + 1);
        if (n < 0) return "(nil)";
        while (buf.size() < static_cast<size_t>(n) + 2) {
          if (!fill()) return "";
        }
        std::string v = buf.substr(0, static_cast<size_t>(n));
        buf.erase(0, static_cast<size_t>(n) + 2);
        return "$" + v;
      }
      if (l[0] == '*') {
        long n = std::atol(l.c_str() + 1);
        if (n < 0) return "(nil)";
        std::string out = l;
        for (long i = 0; i < n; ++i) out += "\n" + reply();
        return out;
      }
      return l;  // +status, -error, :integer
    }
  };

  static bool send(int fd, const std::vector<std::string>& args) {
    std::string msg = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args) msg += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    size_t off = 0;
    while (off < msg.size()) {
      ssize_t n = ::send(fd, msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Start argv[0] with stdout/stderr appended to <dir>/server.log; SIGKILL if we die.
  pid_t spawn(const std::vector<std::string>& args) {
    SpawnOptions o;
    o.cwd = dir_;
    o.log = dir_ + "/server.log";
    o.death_signal = SIGKILL;
    return spawn_child(args, o);
  }

  Options opts_;
  std::string bin_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// A test with a running Redis in `redis` (skipped if redis-server is not installed).
class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RedisServer::find_binary().empty()) {
      GTEST_SKIP() << "redis-server not found (install the redis-server package: "
                      "scripts/install-deps.sh)";
    }
    std::string e = redis.start();
    ASSERT_TRUE(e.empty()) << e;
  }
  RedisServer redis;
};

}  // namespace spate::testing
