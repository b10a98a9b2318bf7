// PgServer / PgTest: a real PostgreSQL server for integration tests, from the Debian
// `postgresql` package (binaries under /usr/lib/postgresql/<version>/bin, or $SPATE_PG_BIN).
//
// Contract: PgServer::start() creates a cluster in a fresh temporary directory (initdb once per
// machine into /tmp/spate-pg-template-<version>-u<uid>, then a copy per server, because initdb
// takes seconds on a busy 2-core machine), and runs `postgres` on 127.0.0.1 and a free port,
// with its unix socket in the temporary directory, fsync off, trust authentication and the
// superuser `spate`. PostgreSQL refuses to run as root, so under root the server, initdb and
// the copy run as the `postgres` user (created by the package) in a directory it owns. The
// server is a direct child process that gets SIGQUIT if the test dies; stop() shuts it down
// (fast) and waits, start() brings it back on the same port and data. The destructor stops it
// and removes the directory. Errors are returned as text (empty = fine) so that tests can
// ASSERT on them; query() records a gtest failure on an SQL error.
// PgTest is a gtest fixture whose SetUp skips the test (GTEST_SKIP) when the binaries are
// missing and otherwise starts `pg`. Not thread-safe: use from the test's thread.
#pragma once

#include <gtest/gtest.h>

#include "integration/child_process.h"
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace spate::testing {

class PgServer {
 public:
  PgServer() = default;
  ~PgServer() {
    stop();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  /// The newest /usr/lib/postgresql/*/bin with initdb and postgres ($SPATE_PG_BIN wins); "" if none.
  static std::string find_bin_dir() {
    namespace fs = std::filesystem;
    auto usable = [](const fs::path& d) {
      return ::access((d / "initdb").c_str(), X_OK) == 0 && ::access((d / "postgres").c_str(), X_OK) == 0;
    };
    if (const char* env = std::getenv("SPATE_PG_BIN"); env != nullptr && *env != '\0') {
      return usable(env) ? std::string(env) : std::string();
    }
    std::string best;
    double best_version = -1;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
      fs::path bin = e.path() / "bin";
      if (!usable(bin)) continue;
      double v = std::atof(e.path().filename().c_str());
      if (v > best_version) {
        best_version = v;
        best = bin.string();
      }
    }
    return best;
  }

  /// Create the cluster (first call) and start the server; returns "" once it accepts connections.
  std::string start() {
    if (pid_ > 0) return "";
    if (bin_.empty()) bin_ = find_bin_dir();
    if (bin_.empty()) return "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin";
    if (dir_.empty()) {
      if (std::string e = prepare_user(); !e.empty()) return e;
      std::string tmpl = (base_dir() / "spate-pg-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) return "mkdtemp failed";
      dir_ = tmpl;
      if (drop_ && ::chown(dir_.c_str(), uid_, gid_) != 0) return "cannot chown " + dir_;
      ::chmod(dir_.c_str(), 0700);
      if (std::string e = create_cluster(); !e.empty()) return e;
      std::filesystem::create_directories(dir_ + "/sock");
      if (drop_ && ::chown((dir_ + "/sock").c_str(), uid_, gid_) != 0) return "cannot chown the socket dir";
      port_ = free_loopback_port();
      if (port_ <= 0) return "no free port";
    }
    std::vector<std::string> argv = {bin_ + "/postgres", "-D", dir_ + "/data", "-p", std::to_string(port_),
                                     "-k", dir_ + "/sock", "-c", "listen_addresses=127.0.0.1",
                                     "-c", "fsync=off", "-c", "synchronous_commit=off",
                                     "-c", "full_page_writes=off", "-c", "max_connections=30",
                                     "-c", "shared_buffers=16MB", "-c", "logging_collector=off"};
    pid_ = spawn(argv, dir_ + "/server.log", /*die_with_parent=*/true);
    if (pid_ <= 0) return "cannot start postgres";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "postgres exited during startup: " + log_tail();
      }
      if (PQping(conninfo().c_str()) == PQPING_OK) return "";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    return "postgres did not accept connections within 60 s: " + log_tail();
  }

  /// Fast shutdown (SIGINT: clients are disconnected) and wait for the server to exit.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGINT);
    int status = 0;
    for (int i = 0; i < 1500; ++i) {  // 30 s
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGQUIT);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string conninfo(const std::string& db = "postgres") const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=spate dbname=" + db +
           " connect_timeout=5";
  }
  std::string url(const std::string& db = "postgres") const {
    return "postgresql://spate@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }

  /// Run SQL (several statements allowed); the rows of the last result as text ("NULL" for
  /// NULL). An error is a gtest failure (and an empty result).
  std::vector<std::vector<std::string>> query(const std::string& sql) {
    std::vector<std::vector<std::string>> rows;
    PGconn* c = PQconnectdb(conninfo().c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      ADD_FAILURE() << "cannot connect to the test PostgreSQL: " << PQerrorMessage(c);
      PQfinish(c);
      return rows;
    }
    PGresult* r = PQexec(c, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      ADD_FAILURE() << "SQL failed: " << sql << ": " << PQresultErrorMessage(r);
    } else {
      for (int t = 0; t < PQntuples(r); ++t) {
        std::vector<std::string> row;
        for (int f = 0; f < PQnfields(r); ++f) {
          row.emplace_back(PQgetisnull(r, t, f) ? "NULL" : PQgetvalue(r, t, f));
        }
        rows.push_back(std::move(row));
      }
    }
    PQclear(r);
    PQfinish(c);
    return rows;
  }
  void exec(const std::string& sql) { (void)query(sql); }

  /// The end of the server's log, for failure messages.
  std::string log_tail() const {
    std::ifstream in(dir_ + "/server.log");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
  }

 private:
  static std::filesystem::path base_dir() {
    // Under root the server user must reach the directory: /tmp is world-searchable.
    if (::geteuid() == 0) return "/tmp";
    return std::filesystem::temp_directory_path();
  }

  std::string prepare_user() {
    if (::geteuid() != 0) return "";
    passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return "running as root, and PostgreSQL refuses to: need the 'postgres' user (apt-get "
             "install postgresql creates it)";
    }
    drop_ = true;
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    int n = 64;
    groups_.resize(static_cast<size_t>(n));
    if (::getgrouplist("postgres", gid_, groups_.data(), &n) < 0) n = 0;
    groups_.resize(static_cast<size_t>(n));
    return "";
  }

  // The data directory: a copy of a cached initdb result (or initdb if copying fails).
  std::string create_cluster() {
    namespace fs = std::filesystem;
    const std::string data = dir_ + "/data";
    const std::string version = fs::path(bin_).parent_path().filename().string();
    const std::string tmpl = (base_dir() / ("spate-pg-template-" + version + "-u" +
                                            std::to_string(drop_ ? uid_ : ::geteuid())))
                                 .string();
    std::error_code ec;
    if (!fs::exists(tmpl + "/PG_VERSION", ec)) {
      // initdb into a staging directory, then rename: concurrent tests race harmlessly.
      std::string staging = dir_ + "/template";
      if (run({bin_ + "/initdb", "-D", staging, "-U", "spate", "-A", "trust", "-E", "UTF8",
               "--locale=C", "--no-sync"},
              dir_ + "/initdb.log") != 0) {
        std::ifstream in(dir_ + "/initdb.log");
        std::stringstream ss;
        ss << in.rdbuf();
        return "initdb failed: " + ss.str();
      }
      if (::rename(staging.c_str(), tmpl.c_str()) != 0) fs::remove_all(staging, ec);
    }
    if (run({"/bin/cp", "-a", "--reflink=auto", tmpl, data}, dir_ + "/copy.log") == 0 &&
        fs::exists(data + "/PG_VERSION", ec)) {
      ::unlink((data + "/postmaster.pid").c_str());
      return "";
    }
    fs::remove_all(data, ec);
    if (run({bin_ + "/initdb", "-D", data, "-U", "spate", "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync"},
            dir_ + "/initdb.log") != 0) {
      return "initdb failed (see " + dir_ + "/initdb.log)";
    }
    return "";
  }

  // Start argv[0] (as the postgres user under root) with stdout/stderr appended to `log`.
  pid_t spawn(const std::vector<std::string>& args, const std::string& log, bool die_with_parent) {
    SpawnOptions o;
    o.cwd = dir_;
    o.log = log;
    o.death_signal = die_with_parent ? SIGQUIT : 0;
    o.drop_user = drop_;
    o.uid = uid_;
    o.gid = gid_;
    o.groups = groups_;
    return spawn_child(args, o);
  }

  int run(const std::vector<std::string>& args, const std::string& log) {
    pid_t pid = spawn(args, log, false);
    if (pid <= 0) return -1;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string bin_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool drop_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::vector<gid_t> groups_;
};

/// A test with a running PostgreSQL in `pg` (skipped if PostgreSQL is not installed).
class PgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (PgServer::find_bin_dir().empty()) {
      GTEST_SKIP() << "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                      "(install the postgresql package: scripts/install-deps.sh)";
    }
    std::string e = pg.start();
    ASSERT_TRUE(e.empty()) << e;
  }
  PgServer pg;
};

}  // namespace spate::testing
