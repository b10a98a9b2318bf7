// Live views of a running pipeline from its metrics: the status line of `spate run` on a terminal
// and the table of `spate top` (docs/operations.md#live-views).
//
// Both work on two scrapes of the Prometheus text (this process's registry or another's
// /metrics) and turn counters into rates over the time between them.
//
// Thread safety: pure functions.
#pragma once

#include <string>

#include "orchestrate/prom_text.h"

namespace spate::cli {

/// One line, no newline: "in 1.2k/s  out 1.2k/s  lag 0  errors 0/s  alerts 3".
std::string live_status_line(const orchestrate::PromText& prev, const orchestrate::PromText& cur,
                             double seconds);

/// The `spate top` table of one `spate run` process: a row for ingestion and one per
/// processor and analytics job, with rates, lag and counts.
std::string live_top_table(const orchestrate::PromText& prev, const orchestrate::PromText& cur,
                           double seconds);

/// A human figure: 950, 1.2k, 3.4M.
std::string human_number(double v);

}  // namespace spate::cli

namespace spate::cli {

struct TopOptions {
  std::string url = "http://127.0.0.1:8080";  // a `spate run` admin server or an orchestrator's
  double interval_s = 1.0;
  bool once = false;  // print one table (after one interval) and exit
};

/// `spate top`: a refreshing table of the components at `url`. A `spate run` process is shown
/// from its /metrics; an orchestrator (its /status names a deployment) per component from
/// its /status. Exit 0 on SIGINT/SIGTERM or after --once, 1 when the URL cannot be read.
int cmd_top(const TopOptions& opts);

}  // namespace spate::cli
