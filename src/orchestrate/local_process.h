// Child processes for the local backend: spawn a command detached into its own session (so it
// outlives the orchestrator and a terminal's Ctrl-C reaches only the orchestrator), find out
// whether a recorded process still runs (pid + kernel start time, so a reused pid is not taken
// for it), signal it, and pick free loopback ports.
//
// Thread safety: the functions are thread-safe; reaping (alive() on an own child) should happen
// on one thread, the orchestrator's monitor.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "spate/status.h"

namespace spate::orchestrate {

struct ProcessId {
  int pid = 0;
  uint64_t start_ticks = 0;  // /proc/PID/stat field 22: tells a reused pid apart
};

struct SpawnSpec {
  std::vector<std::string> argv;                         // argv[0] = the program (a path)
  std::vector<std::pair<std::string, std::string>> env;  // added to this process's environment
  std::string log_path;                                  // stdout and stderr, appended
};

/// fork + setsid + exec. Fails (kIo) when the log file cannot be opened or fork fails; an exec
/// failure shows up as the child exiting with status 127 (and a line in the log file).
Result<ProcessId> spawn_process(const SpawnSpec& spec);

/// True while the process runs. Reaps it when it is our child and has exited (then
/// *exit_status, if given, receives a description such as "exit 3" or "signal 9").
bool process_alive(const ProcessId& p, std::string* exit_status = nullptr);

/// The kernel start time of `pid` (0 if it does not exist).
uint64_t process_start_ticks(int pid);

/// Send `sig` if the process is still the one recorded; false if it is gone.
bool signal_process(const ProcessId& p, int sig);

/// A loopback TCP port that was free a moment ago (bind to 0, read it, close).
Result<uint16_t> pick_free_port(const std::string& host);

}  // namespace spate::orchestrate
