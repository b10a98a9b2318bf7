// Standard Prometheus process metrics read from /proc/self (Linux), plus spate_build_info.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "spate/metrics.h"
#include "spate/version.h"

namespace spate {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string read_small_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double cpu_seconds() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return kNaN;
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

// /proc/self/statm: size resident shared text lib data dt (in pages). field 0 = size, 1 = rss.
double statm_bytes(int field) {
  std::string s = read_small_file("/proc/self/statm");
  if (s.empty()) return kNaN;
  std::istringstream in(s);
  unsigned long long v = 0;
  for (int i = 0; i <= field; ++i) {
    if (!(in >> v)) return kNaN;
  }
  long page = sysconf(_SC_PAGESIZE);
  return static_cast<double>(v) * static_cast<double>(page > 0 ? page : 4096);
}

double open_fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return kNaN;
  int own = dirfd(dir);
  double n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    if (std::atoi(e->d_name) == own) continue;  // the fd used to list the directory
    n += 1;
  }
  closedir(dir);
  return n;
}

double max_fds() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return kNaN;
  if (rl.rlim_cur == RLIM_INFINITY) return std::numeric_limits<double>::infinity();
  return static_cast<double>(rl.rlim_cur);
}

// Process start: /proc/self/stat field 22 (starttime, clock ticks after boot) + btime from
// /proc/stat. Falls back to "now" if either cannot be read.
double start_time_seconds() {
  std::string stat = read_small_file("/proc/self/stat");
  std::string proc_stat = read_small_file("/proc/stat");
  // comm (field 2) may contain spaces and parentheses: fields resume after the last ')'.
  size_t rparen = stat.rfind(')');
  size_t btime_pos = proc_stat.find("\nbtime ");
  long ticks = sysconf(_SC_CLK_TCK);
  if (rparen != std::string::npos && btime_pos != std::string::npos && ticks > 0) {
    std::istringstream in(stat.substr(rparen + 1));
    std::string field;
    unsigned long long start_ticks = 0;
    bool ok = true;
    // After ')' comes field 3 (state); starttime is field 22, i.e. the 20th token.
    for (int i = 3; i <= 22; ++i) {
      if (!(in >> field)) {
        ok = false;
        break;
      }
    }
    if (ok) {
      start_ticks = std::strtoull(field.c_str(), nullptr, 10);
      unsigned long long btime = std::strtoull(proc_stat.c_str() + btime_pos + 7, nullptr, 10);
      if (btime > 0) {
        return static_cast<double>(btime) +
               static_cast<double>(start_ticks) / static_cast<double>(ticks);
      }
    }
  }
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

void register_process_metrics(MetricsRegistry& registry) {
  registry.counter_fn("process_cpu_seconds_total",
                      "Total user and system CPU time spent in seconds.", {}, cpu_seconds);
  registry.gauge_fn("process_resident_memory_bytes", "Resident memory size in bytes.", {},
                    [] { return statm_bytes(1); });
  registry.gauge_fn("process_virtual_memory_bytes", "Virtual memory size in bytes.", {},
                    [] { return statm_bytes(0); });
  registry.gauge_fn("process_open_fds", "Number of open file descriptors.", {}, open_fds);
  registry.gauge_fn("process_max_fds", "Maximum number of open file descriptors.", {}, max_fds);
  const double start = start_time_seconds();
  registry.gauge_fn("process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.", {},
                    [start] { return start; });
  registry
      .gauge("spate_build_info", "Spate build information; the value is always 1.",
             {{"version", SPATE_VERSION}})
      .set(1);
}

}  // namespace spate
