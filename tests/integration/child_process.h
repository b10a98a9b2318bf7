// Helpers for integration fixtures that run a real server (PostgreSQL, Redis) as a child:
// a free loopback port and a fork/exec that redirects output to a log file, optionally drops to
// another user and dies with the test.
//
// Contract: free_loopback_port() returns a port that was free a moment ago (-1 on error).
// spawn_child() returns the child's pid (-1 if the log or /dev/null cannot be opened); the
// child runs argv[0] in `cwd` with stdin from /dev/null and stdout/stderr appended to `log`;
// it exits 126 if it cannot set up (chdir, user switch, death signal) and 127 if exec fails.
// Between fork and exec only async-signal-safe calls are made (the test is multi-threaded).
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace spate::testing {

inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

struct SpawnOptions {
  std::string cwd;
  std::string log;             // stdout and stderr, appended
  int death_signal = 0;        // sent to the child when the test process dies (0 = none)
  bool drop_user = false;      // switch to uid/gid/groups before exec
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

inline pid_t spawn_child(const std::vector<std::string>& args, const SpawnOptions& o) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int out = ::open(o.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || in < 0) {
    if (out >= 0) ::close(out);
    if (in >= 0) ::close(in);
    return -1;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    if (::chdir(o.cwd.c_str()) != 0) ::_exit(126);
    if (o.drop_user && (::setgroups(o.groups.size(), o.groups.data()) != 0 ||
                        ::setgid(o.gid) != 0 || ::setuid(o.uid) != 0)) {
      ::_exit(126);
    }
    // After setuid, which clears it.
    if (o.death_signal != 0 &&
        (::prctl(PR_SET_PDEATHSIG, o.death_signal) != 0 || ::getppid() != parent)) {
      ::_exit(126);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out);
  ::close(in);
  return pid;
}

}  // namespace spate::testing
