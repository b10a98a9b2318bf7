#include "orchestrate/local_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace spate::orchestrate {

uint64_t process_start_ticks(int pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!f || !std::getline(f, text)) return 0;
  // The command (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 1));
  std::string field;
  // Fields 3.. follow; start time is field 22, i.e. the 20th after the ')'.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return 0;
    if (i == 3 && field == "Z") return 0;  // a zombie has exited
  }
  return std::strtoull(field.c_str(), nullptr, 10);
}

Result<ProcessId> spawn_process(const SpawnSpec& spec) {
  if (spec.argv.empty()) return InvalidArgument("spawn: empty argv");
  const int log_fd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return IoError("cannot open " + spec.log_path + ": " + std::strerror(errno));
  }
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    const std::string_view key = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& [k, v] : spec.env) overridden = overridden || k == key;
    if (!overridden) env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  static const char kExecFailed[] = "spate orchestrate: exec failed\n";

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(log_fd);
    return IoError(std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::setsid();
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Close every other descriptor (the orchestrator's sockets must not leak into replicas).
#ifdef SYS_close_range
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
    {
      for (int fd = 3; fd < 65536; ++fd) ::close(fd);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(argv[0], argv.data(), envp.data());
    (void)!::write(2, kExecFailed, sizeof kExecFailed - 1);
    ::_exit(127);
  }
  ::close(log_fd);
  ProcessId p;
  p.pid = pid;
  // The child's start time; it exists from fork on (retry briefly if /proc lags).
  for (int i = 0; i < 100 && p.start_ticks == 0; ++i) {
    p.start_ticks = process_start_ticks(pid);
    if (p.start_ticks == 0) ::usleep(1000);
  }
  return p;
}

bool process_alive(const ProcessId& p, std::string* exit_status) {
  if (p.pid <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(p.pid, &status, WNOHANG);
  if (r == p.pid) {
    if (exit_status != nullptr) {
      if (WIFEXITED(status)) {
        *exit_status = "exit " + std::to_string(WEXITSTATUS(status));
      } else if (WIFSIGNALED(status)) {
        *exit_status = "signal " + std::to_string(WTERMSIG(status));
      } else {
        *exit_status = "gone";
      }
    }
    return false;
  }
  if (r == 0) return true;  // our child, still running
  // Not our child (adopted from an earlier orchestrator): the pid must still be that process.
  const uint64_t ticks = process_start_ticks(p.pid);
  if (ticks == 0 || (p.start_ticks != 0 && ticks != p.start_ticks)) {
    if (exit_status != nullptr) *exit_status = "gone";
    return false;
  }
  return true;
}

bool signal_process(const ProcessId& p, int sig) {
  if (p.pid <= 0) return false;
  const uint64_t ticks = process_start_ticks(p.pid);
  if (ticks == 0 || (p.start_ticks != 0 && ticks != p.start_ticks)) return false;
  return ::kill(p.pid, sig) == 0;
}

Result<uint16_t> pick_free_port(const std::string& host) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return IoError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    return IoError(std::string("bind: ") + std::strerror(err));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return static_cast<uint16_t>(ntohs(addr.sin_port));
}

}  // namespace spate::orchestrate
