#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <poll.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <deque>
#include <future>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/hash.h"
#include "cli/common.h"
#include "event/expr.h"
#include "cli/dlq.h"
#include "cli/k8s.h"
#include "cli/live.h"
#include "cli/orchestrate.h"
#include "cli/run.h"
#include "base/json_escape.h"
#include "event/json.h"
#include "ingest/source.h"
#include "spate/config.h"
#include "spate/log.h"
#include "spate/version.h"

namespace spate::cli {
namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

// ---------------------------------------------------------------- validate

int cmd_validate(const std::string& path) {
  auto pc = load_pipeline_file(path);
  if (!pc.ok()) {
    std::fprintf(stderr, "%s\n", pc.status().message().c_str());
    return kExitUsage;
  }
  std::string errors;
  for (const std::string& lib : pc->plugins) {
    if (Status s = load_processor_plugin(lib); !s.ok()) {
      errors += (errors.empty() ? "" : "\n") + path + ": " + s.message();
    }
  }
  if (Status s = ingest::validate_sources(pc->ingestion); !s.ok()) errors += (errors.empty() ? "" : "\n") + s.message();
  for (const ProcessorConfig& p : pc->processors) {
    if (Status s = validate_processor(p); !s.ok()) errors += (errors.empty() ? "" : "\n") + s.message();
  }
  for (const AnalyticsConfig& a : pc->analytics) {
    if (Status s = validate_analytics(a); !s.ok()) errors += (errors.empty() ? "" : "\n") + s.message();
  }
  if (!errors.empty()) {
    std::fprintf(stderr, "%s\n", errors.c_str());
    return kExitUsage;
  }
  std::printf("%s: ok (pipeline \"%s\", %zu topic%s, log %s)\n", path.c_str(), pc->name.c_str(),
              pc->topics.size(), pc->topics.size() == 1 ? "" : "s", pc->log.kind.c_str());
  return kExitOk;
}

// ---------------------------------------------------------------- topics

int cmd_topics_list(const LogTarget& t) {
  auto log = open_log(t, true);
  if (!log.ok()) {
    print_error(log.status().to_string());
    return exit_code_for(log.status());
  }
  for (const auto& name : (*log)->list_topics()) std::printf("%s\n", name.c_str());
  return kExitOk;
}

int cmd_topics_create(const LogTarget& t, const std::string& name, uint32_t partitions,
                      std::optional<int64_t> retention_ms, std::optional<int64_t> retention_bytes,
                      const std::string& compression) {
  auto log = open_log(t, false);
  if (!log.ok()) {
    print_error(log.status().to_string());
    return exit_code_for(log.status());
  }
  TopicSpec spec;
  spec.name = name;
  spec.partitions = partitions;
  if (retention_ms || retention_bytes) {
    RetentionConfig r;
    if (retention_ms) r.ms = *retention_ms;
    if (retention_bytes) r.bytes = *retention_bytes;
    spec.retention = r;
  }
  if (!compression.empty()) {
    if (compression == "none") spec.compression = Compression::kNone;
    else if (compression == "lz4") spec.compression = Compression::kLz4;
    else if (compression == "zstd") spec.compression = Compression::kZstd;
    else {
      print_error("--compression must be none, lz4 or zstd");
      return kExitUsage;
    }
  }
  Status s = (*log)->create_topic(spec);
  if (!s.ok()) {
    print_error(s.to_string());
    return exit_code_for(s);
  }
  std::printf("created topic %s with %u partition%s\n", name.c_str(), partitions,
              partitions == 1 ? "" : "s");
  return kExitOk;
}

std::string topic_json(const TopicInfo& info) {
  std::string out = "{\"name\":";
  append_json_quoted(out, info.name);
  out += fmt::format(",\"partitions\":{},\"retention_ms\":{},\"retention_bytes\":{},"
                     "\"compression\":\"{}\",\"partition_info\":[",
                     info.partitions, info.retention.ms, info.retention.bytes,
                     compression_name(info.compression));
  for (size_t i = 0; i < info.partition_info.size(); ++i) {
    const auto& p = info.partition_info[i];
    out += fmt::format("{}{{\"partition\":{},\"start_offset\":{},\"end_offset\":{},"
                       "\"size_bytes\":{},\"segments\":{}}}",
                       i ? "," : "", p.partition, p.start_offset, p.end_offset, p.size_bytes,
                       p.segments);
  }
  out += "]}";
  return out;
}

int cmd_topics_describe(const LogTarget& t, const std::string& name, bool as_json) {
  auto log = open_log(t, true);
  if (!log.ok()) {
    print_error(log.status().to_string());
    return exit_code_for(log.status());
  }
  auto info = (*log)->describe_topic(name);
  if (!info.ok()) {
    print_error(info.status().to_string());
    return exit_code_for(info.status());
  }
  if (as_json) {
    std::printf("%s\n", topic_json(*info).c_str());
    return kExitOk;
  }
  std::printf("topic %s: %u partitions, compression %s, retention %lld ms / %lld bytes\n",
              info->name.c_str(), info->partitions,
              std::string(compression_name(info->compression)).c_str(),
              static_cast<long long>(info->retention.ms),
              static_cast<long long>(info->retention.bytes));
  std::printf("%-10s %14s %14s %14s %9s\n", "PARTITION", "START", "END", "BYTES", "SEGMENTS");
  for (const auto& p : info->partition_info) {
    std::printf("%-10u %14lld %14lld %14llu %9u\n", p.partition,
                static_cast<long long>(p.start_offset), static_cast<long long>(p.end_offset),
                static_cast<unsigned long long>(p.size_bytes), p.segments);
  }
  return kExitOk;
}

// ---------------------------------------------------------------- produce

struct ProduceOptions {
  std::string topic;
  std::string key;
  std::string key_field;
  std::optional<uint32_t> partition;
  size_t batch_size = 1000;
  bool raw = false;
  bool print_offsets = false;
};

int cmd_produce(const LogTarget& t, const ProduceOptions& o) {
  auto log_r = open_log(t, true);
  if (!log_r.ok()) {
    print_error(log_r.status().to_string());
    return exit_code_for(log_r.status());
  }
  auto& log = *log_r;
  if (!log->describe_topic(o.topic).ok()) {
    TopicSpec spec;
    spec.name = o.topic;
    auto lc = resolve_log_config(t);
    spec.partitions = lc.ok() ? lc->default_partitions : 1;
    Status s = log->ensure_topic(spec);
    if (!s.ok()) {
      print_error(s.to_string());
      return exit_code_for(s);
    }
  }
  uint32_t partitions = log->describe_topic(o.topic)->partitions;
  if (o.partition && *o.partition >= partitions) {
    print_error(fmt::format("--partition {} out of range: topic {} has {} partitions",
                            *o.partition, o.topic, partitions));
    return kExitUsage;
  }

  struct Line {
    std::string value;
    std::optional<std::string> key;
    uint32_t partition;
  };
  uint64_t line_no = 0, produced = 0, rejected = 0;
  uint32_t rr = static_cast<uint32_t>(system_clock()->steady_ns() % partitions);
  std::string pending;  // bytes read but not yet a complete line
  std::vector<Line> batch;
  bool eof = false;
  std::vector<char> buf(1 << 16);
  Status failure;

  // One append per partition, preserving input order within each partition. Without
  // --print-offsets, batches are appended in the background, up to kInFlight at a time, while
  // the next ones are read (an append waits for the disk or the brokers). A batch waits for
  // every earlier one that shares a partition with it, so each partition keeps input order.
  constexpr size_t kInFlight = 4;
  struct Flight {
    std::future<Status> done;
    std::vector<bool> parts;
    size_t lines = 0;
  };
  std::deque<Flight> flights;
  auto append_batch = [&log, &o, partitions](const std::vector<Line>& lines,
                                             std::vector<int64_t>* offsets) -> Status {
    std::vector<std::vector<size_t>> by_part(partitions);
    for (size_t i = 0; i < lines.size(); ++i) by_part[lines[i].partition].push_back(i);
    std::vector<RecordIn> recs;
    for (uint32_t p = 0; p < partitions; ++p) {
      if (by_part[p].empty()) continue;
      recs.clear();
      for (size_t i : by_part[p]) {
        RecordIn r;
        r.value = lines[i].value;
        if (lines[i].key) r.key = std::string_view(*lines[i].key);
        recs.push_back(r);
      }
      SPATE_ASSIGN_OR_RETURN(int64_t base, log->append(o.topic, p, recs.data(), recs.size()));
      if (offsets != nullptr) {
        for (size_t k = 0; k < by_part[p].size(); ++k) {
          (*offsets)[by_part[p][k]] = base + static_cast<int64_t>(k);
        }
      }
    }
    return Status::Ok();
  };
  auto land_oldest = [&]() -> Status {
    Status s = flights.front().done.get();
    if (s.ok()) produced += flights.front().lines;
    flights.pop_front();
    return s;
  };
  auto land_all = [&]() -> Status {
    Status first;
    while (!flights.empty()) {
      Status s = land_oldest();
      if (first.ok()) first = s;
    }
    return first;
  };

  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::Ok();
    if (o.print_offsets) {
      std::vector<int64_t> offsets(batch.size(), -1);
      SPATE_RETURN_IF_ERROR(append_batch(batch, &offsets));
      std::string out;
      for (size_t i = 0; i < batch.size(); ++i) {
        out += fmt::format("{} {}\n", batch[i].partition, offsets[i]);
      }
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
      produced += batch.size();
    } else {
      std::vector<bool> parts(partitions, false);
      for (const Line& l : batch) parts[l.partition] = true;
      auto shares = [&](const Flight& f) {
        for (uint32_t p = 0; p < partitions; ++p) {
          if (parts[p] && f.parts[p]) return true;
        }
        return false;
      };
      while (!flights.empty() &&
             (flights.size() >= kInFlight ||
              std::any_of(flights.begin(), flights.end(), shares))) {
        SPATE_RETURN_IF_ERROR(land_oldest());
      }
      auto owned = std::make_shared<std::vector<Line>>(std::move(batch));
      Flight f;
      f.lines = owned->size();
      f.parts = std::move(parts);
      f.done = std::async(std::launch::async,
                          [owned, &append_batch] { return append_batch(*owned, nullptr); });
      flights.push_back(std::move(f));
    }
    batch.clear();
    rr = (rr + 1) % partitions;  // sticky partitioner: switch partition per batch
    return Status::Ok();
  };

  auto take_line = [&](std::string_view line) -> Status {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) return Status::Ok();
    if (!o.raw) {
      Status v = json::validate(line);
      if (!v.ok()) {
        ++rejected;
        std::fprintf(stderr, "spate: stdin:%llu: invalid JSON: %s (line skipped)\n",
                     static_cast<unsigned long long>(line_no), v.message().c_str());
        return Status::Ok();
      }
    }
    Line l;
    l.value = std::string(line);
    if (!o.key.empty()) {
      l.key = o.key;
    } else if (!o.key_field.empty()) {
      auto k = json::field_as_string(line, o.key_field);
      if (k.ok() && k->has_value()) l.key = **k;
    }
    if (o.partition) l.partition = *o.partition;
    else if (l.key) l.partition = partition_for_key(*l.key, partitions);
    else l.partition = rr;
    batch.push_back(std::move(l));
    if (batch.size() >= o.batch_size) return flush();
    return Status::Ok();
  };

  while (!eof && failure.ok()) {
    ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      failure = IoError(std::string("reading stdin: ") + std::strerror(errno));
      break;
    }
    if (n == 0) eof = true;
    pending.append(buf.data(), static_cast<size_t>(n));
    size_t start = 0;
    while (failure.ok()) {
      size_t nl = pending.find('\n', start);
      if (nl == std::string::npos) break;
      failure = take_line(std::string_view(pending).substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
    if (eof && !pending.empty() && failure.ok()) {
      failure = take_line(pending);
      pending.clear();
    }
    // Nothing more buffered right now: start appending what we have before blocking on stdin.
    if (failure.ok()) {
      pollfd pfd{STDIN_FILENO, POLLIN, 0};
      if (eof || ::poll(&pfd, 1, 0) == 0) failure = flush();
    }
  }
  if (failure.ok()) failure = flush();
  if (Status landed = land_all(); failure.ok()) failure = landed;
  Status c = log->close();
  if (failure.ok()) failure = c;
  if (!failure.ok()) {
    print_error(fmt::format("produce failed after {} durable records: {}", produced,
                            failure.to_string()));
    return kExitRuntime;
  }
  std::fprintf(stderr, "spate: produced %llu records to %s%s\n",
               static_cast<unsigned long long>(produced), o.topic.c_str(),
               rejected ? fmt::format(" ({} lines rejected)", rejected).c_str() : "");
  return rejected ? kExitRuntime : kExitOk;
}

// ---------------------------------------------------------------- consume

struct ConsumeOptions {
  std::string topic;
  std::string group;
  bool from_beginning = false;
  std::optional<int64_t> offset;
  std::optional<uint32_t> partition;
  std::optional<uint64_t> max;
  bool follow = false;
  bool with_metadata = false;
  std::string isolation = "read_committed";
  std::string where;  // only records whose JSON value matches this expression
};

int cmd_consume(const LogTarget& t, const ConsumeOptions& o) {
  expr::Expression where;
  if (!o.where.empty()) {
    auto e = expr::Expression::compile(o.where);
    if (!e.ok()) {
      print_error("--where: " + e.status().message() + " (docs/expressions.md)");
      return kExitUsage;
    }
    where = std::move(e).value();
  }
  simdjson::dom::parser where_parser;
  auto log_r = open_log(t, true);
  if (!log_r.ok()) {
    print_error(log_r.status().to_string());
    return exit_code_for(log_r.status());
  }
  auto& log = *log_r;
  auto info = log->describe_topic(o.topic);
  if (!info.ok()) {
    print_error(info.status().to_string());
    return exit_code_for(info.status());
  }
  std::vector<uint32_t> parts;
  if (o.partition) {
    if (*o.partition >= info->partitions) {
      print_error(fmt::format("--partition {} out of range: topic {} has {} partitions",
                              *o.partition, o.topic, info->partitions));
      return kExitUsage;
    }
    parts.push_back(*o.partition);
  } else {
    for (uint32_t p = 0; p < info->partitions; ++p) parts.push_back(p);
  }
  // Starting positions.
  std::vector<int64_t> pos(parts.size()), stop_at(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& pi = info->partition_info[parts[i]];
    // --offset, else the group's committed offset, else the beginning with --from-beginning
    // or without --follow, else the end.
    int64_t start = (o.from_beginning || !o.follow) ? pi.start_offset : pi.end_offset;
    if (!o.group.empty()) {
      auto c = log->committed_offset(o.group, o.topic, parts[i]);
      if (c.ok() && c->has_value()) start = **c;
    }
    if (o.offset) start = std::clamp(*o.offset, pi.start_offset, pi.end_offset);
    pos[i] = std::max(start, pi.start_offset);
    stop_at[i] = pi.end_offset;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  uint64_t printed = 0;
  std::string out;
  Status failure;
  auto done = [&] { return g_stop.load() || (o.max && printed >= *o.max); };
  while (!done() && failure.ok()) {
    bool progressed = false;
    bool all_caught_up = true;
    std::map<uint32_t, int64_t> commits;
    for (size_t i = 0; i < parts.size() && !done(); ++i) {
      if (!o.follow && pos[i] >= stop_at[i]) continue;
      FetchOptions fo;
      fo.max_records = o.max ? std::min<uint64_t>(1000, *o.max - printed) : 1000;
      fo.isolation = o.isolation == "read_uncommitted" ? Isolation::kReadUncommitted
                                                       : Isolation::kReadCommitted;
      auto r = log->fetch(o.topic, parts[i], pos[i], fo);
      if (!r.ok()) {
        failure = r.status();
        break;
      }
      out.clear();
      for (const auto& rec : r->records()) {
        if (o.max && printed >= *o.max) break;
        if (!where.empty()) {
          simdjson::dom::element doc;
          if (where_parser.parse(rec.value.data(), rec.value.size()).get(doc) || !where.matches(doc)) {
            pos[i] = rec.offset + 1;
            progressed = true;
            continue;
          }
        }
        if (o.with_metadata) {
          out += fmt::format("{{\"partition\":{},\"offset\":{},\"timestamp\":{},\"key\":",
                             parts[i], rec.offset, rec.timestamp_ms);
          if (rec.has_key) append_json_quoted(out, rec.key);
          else out += "null";
          auto hs = r->headers_of(rec);
          if (!hs.empty()) {
            out += ",\"headers\":{";
            for (size_t h = 0; h < hs.size(); ++h) {
              if (h) out += ",";
              append_json_quoted(out, hs[h].key);
              out += ":";
              append_json_quoted(out, hs[h].value);
            }
            out += "}";
          }
          out += ",\"value\":";
          if (json::validate(rec.value).ok()) out += rec.value;
          else append_json_quoted(out, rec.value);
          out += "}\n";
        } else {
          out.append(rec.value);
          out += '\n';
        }
        pos[i] = rec.offset + 1;
        ++printed;
        progressed = true;
      }
      // Past everything returned, and past markers / aborted records the fetch skipped.
      if (!(o.max && printed >= *o.max) && r->next_offset > pos[i]) {
        pos[i] = r->next_offset;
        progressed = true;
      }
      if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) {
        g_stop = true;  // stdout closed (e.g. piped into head)
        break;
      }
      if (!o.group.empty()) commits[parts[i]] = pos[i];
      if (pos[i] < (o.follow ? r->end_offset : stop_at[i])) all_caught_up = false;
    }
    std::fflush(stdout);
    if (!o.group.empty() && !commits.empty() && failure.ok()) {
      Status s = log->commit_offsets(o.group, o.topic, commits);
      if (!s.ok()) failure = s;
    }
    if (!o.follow && all_caught_up) break;
    if (o.follow && !progressed && !done()) {
      // Wait on the first partition; poll the others each round.
      FetchOptions fo;
      fo.max_records = 0;
      fo.wait_ms = parts.size() == 1 ? 200 : 50;
      (void)log->fetch(o.topic, parts[0], pos[0], fo);
      if (parts.size() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  Status c = log->close();
  if (failure.ok()) failure = c;
  if (!failure.ok()) {
    print_error(failure.to_string());
    return kExitRuntime;
  }
  return kExitOk;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"Spate: real-time data streaming and processing", "spate"};
  app.require_subcommand(1);
  app.set_version_flag("-V,--version-flag", SPATE_VERSION);

  auto* version = app.add_subcommand("version", "Print the version");

  std::string validate_path;
  auto* validate = app.add_subcommand("validate", "Check a pipeline file without starting it");
  validate->add_option("FILE", validate_path, "Pipeline YAML")->required();

  RunOptions run_opts;
  auto* run = app.add_subcommand("run", "Run a pipeline (admin server, log, ...)");
  run->add_option("FILE", run_opts.config_path, "Pipeline YAML")->required();
  run->add_option("-d,--data-dir", run_opts.data_dir, "Override data_dir");
  run->add_option("-p,--port", run_opts.port, "Override server.port (0 = any free port)");
  run->add_option("--host", run_opts.host,
                  "Override server.host, the address the HTTP and metrics ports listen on (0.0.0.0 = all)");
  run->add_option("--role", run_opts.role,
                  "What to run: all (default) or a comma list of log, ingestion, processors");
  run->add_option("--processor", run_opts.processors,
                  "Run only this processor (repeatable; default: all of them)");
  run->add_option("--analytics", run_opts.analytics,
                  "Run only this analytics job (repeatable; default: every one)");
  run->add_option("--metrics-port", run_opts.metrics_port,
                  "Override server.metrics_port (also serves /health /ready /status)");
  run->add_option("--log-format", run_opts.log_format, "text (default) or json: one JSON object per log line")
      ->check(CLI::IsMember({"text", "json"}));
  run->add_flag("--no-status-line", run_opts.no_status_line, "No live status line on a terminal");
  run->add_flag("--reuse-port", run_opts.reuse_port,
                "Share the main port with other processes (SO_REUSEPORT), as ingestion replicas do");
  run->add_option("--replica", run_opts.replica,
                  "I/N: run the processors as replica I of N (partitions split explicitly)");
  run->add_option("--log-url", run_opts.log_url,
                  "Use the log of the process at http://HOST:PORT instead of owning one");

  OrchestrateOptions orch_opts;
  auto* orch = app.add_subcommand("orchestrate",
                                  "Deploy, monitor, heal and scale a pipeline's components as local processes");
  orch->add_option("FILE", orch_opts.path, "Deployment YAML")->required();
  orch->add_option("-p,--port", orch_opts.port, "Override server.port of the admin API (0 = any free port)");
  orch->add_option("--state-dir", orch_opts.state_dir, "Override state_dir");
  orch->add_flag("--check", orch_opts.check, "Validate the deployment and its pipeline, then exit");
  orch->add_option("--pipeline", orch_opts.pipeline, "Use this pipeline file instead of the deployment's");
  orch->add_option("--host", orch_opts.host, "Override server.host of the admin API (0.0.0.0 = all)");
  orch->add_option("--namespace", orch_opts.k8s_namespace, "Override the deployment's namespace (Kubernetes)");
  orch->add_option("--image", orch_opts.image, "Override the deployment's image (Kubernetes)");
  orch->add_option("--backend", orch_opts.backend, "Override the deployment's backend")
      ->check(CLI::IsMember({"local", "kubernetes"}));
  orch->add_flag("--leave-running", orch_opts.leave_running,
                 "On SIGINT/SIGTERM stop only the orchestrator; a new one adopts the replicas");

  auto* k8s = app.add_subcommand("k8s", "Kubernetes: render a deployment's manifests");
  k8s->require_subcommand(1);
  K8sRenderOptions k8s_opts;
  auto* k8s_render_cmd =
      k8s->add_subcommand("render", "Print the Kubernetes manifests of a deployment (docs/kubernetes.md)");
  k8s_render_cmd->add_option("FILE", k8s_opts.path, "Deployment YAML")->required();
  k8s_render_cmd->add_option("--namespace", k8s_opts.k8s_namespace, "Override the deployment's namespace");
  k8s_render_cmd->add_option("--image", k8s_opts.image, "Override the deployment's image");

  auto* topics = app.add_subcommand("topics", "List, create and describe topics");
  topics->require_subcommand(1);
  LogTarget tl, tc, td;
  auto* tlist = topics->add_subcommand("list", "List topics");
  add_log_target(tlist, &tl);
  std::string create_name;
  uint32_t create_partitions = 1;
  std::optional<int64_t> create_ret_ms, create_ret_bytes;
  std::string create_comp;
  auto* tcreate = topics->add_subcommand("create", "Create a topic");
  add_log_target(tcreate, &tc);
  tcreate->add_option("NAME", create_name, "Topic name")->required();
  tcreate->add_option("--partitions", create_partitions, "Partition count")
      ->check(CLI::Range(1u, 100000u));
  tcreate->add_option("--retention-ms", create_ret_ms, "Retention by age (-1 = forever)");
  tcreate->add_option("--retention-bytes", create_ret_bytes, "Retention by size per partition");
  tcreate->add_option("--compression", create_comp, "none | lz4 | zstd");
  std::string describe_name;
  bool describe_json = false;
  auto* tdescribe = topics->add_subcommand("describe", "Show a topic's partitions and offsets");
  add_log_target(tdescribe, &td);
  tdescribe->add_option("NAME", describe_name, "Topic name")->required();
  tdescribe->add_flag("--json", describe_json, "JSON output");

  LogTarget tp;
  ProduceOptions po;
  auto* produce = app.add_subcommand(
      "produce", "Append NDJSON from stdin to a topic (exits 0 once every line is durable)");
  add_log_target(produce, &tp);
  produce->add_option("-t,--topic", po.topic, "Topic")->required();
  auto* key_opt = produce->add_option("-k,--key", po.key, "Key for every record");
  produce->add_option("--key-field", po.key_field, "JSON field path of the key (e.g. user.id)")
      ->excludes(key_opt);
  produce->add_option("--partition", po.partition, "Write to this partition only");
  produce->add_option("--batch-size", po.batch_size, "Max lines per append")
      ->check(CLI::Range(static_cast<size_t>(1), static_cast<size_t>(1000000)));
  produce->add_flag("--raw", po.raw, "Do not require each line to be JSON");
  produce->add_flag("--print-offsets", po.print_offsets,
                    "Print 'PARTITION OFFSET' per line once it is durable");

  LogTarget tco;
  ConsumeOptions co;
  auto* consume = app.add_subcommand("consume", "Print a topic's records");
  add_log_target(consume, &tco);
  consume->add_option("-t,--topic", co.topic, "Topic")->required();
  consume->add_option("-g,--group", co.group, "Consumer group: resume from and commit offsets");
  auto* fb = consume->add_flag("--from-beginning", co.from_beginning,
                               "Start at the earliest retained offset");
  consume->add_option("--offset", co.offset, "Start at this offset")->excludes(fb);
  consume->add_option("--partition", co.partition, "Only this partition");
  consume->add_option("-n,--max", co.max, "Stop after N records");
  consume->add_flag("-f,--follow", co.follow, "Keep waiting for new records");
  consume->add_flag("--with-metadata", co.with_metadata,
                    "Print JSON with partition, offset, key, timestamp, headers, value");
  consume->add_option("--isolation", co.isolation,
                      "read_committed (default: no output of open or aborted transactions) or "
                      "read_uncommitted")
      ->check(CLI::IsMember({"read_committed", "read_uncommitted"}));
  consume->add_option("--where", co.where, "Only records whose JSON value matches EXPR (docs/expressions.md)");

  // `spate tap TOPIC`: what arrives on a topic of a running pipeline, live (like `vector tap`).
  LogTarget ttap;
  ConsumeOptions tapo;
  tapo.follow = true;
  auto* tap = app.add_subcommand("tap", "Print a running pipeline's events on a topic as they arrive");
  tap->add_option("TOPIC", tapo.topic, "Topic")->required();
  tap->add_option("--where", tapo.where, "Only events matching EXPR (docs/expressions.md)");
  tap->add_option("--log-url", ttap.log_url, "The running pipeline's admin server")
      ->default_val("http://127.0.0.1:8080");
  tap->add_option("-n,--max", tapo.max, "Stop after N events");
  tap->add_flag("--with-metadata", tapo.with_metadata, "Print partition, offset, key, timestamp, headers too");
  tap->add_flag("--from-beginning", tapo.from_beginning, "Start at the earliest retained offset, not now");

  TopOptions topo;
  auto* top = app.add_subcommand("top", "A refreshing table of a running pipeline's (or orchestrator's) components");
  top->add_option("--url", topo.url, "Admin server of `spate run` or of `spate orchestrate`")
      ->default_val("http://127.0.0.1:8080");
  top->add_option("--interval", topo.interval_s, "Seconds between refreshes")->default_val(1.0);
  top->add_flag("--once", topo.once, "Print one table and exit");

  auto* dlq = app.add_subcommand("dlq", "Inspect and replay a dead-letter topic");
  dlq->require_subcommand(1);
  DlqInspectOptions di;
  auto* dinspect = dlq->add_subcommand("inspect", "Summarise a dead-letter topic by reason and source");
  add_log_target(dinspect, &di.target);
  dinspect->add_option("TOPIC", di.topic, "Dead-letter topic")->required();
  dinspect->add_flag("--json", di.json, "Print one JSON object");
  dinspect->add_option("--top", di.top, "Reason classes to list (default 20)");
  DlqReplayOptions dr;
  auto* dreplay = dlq->add_subcommand("replay", "Re-inject dead letters into a topic");
  add_log_target(dreplay, &dr.target);
  dreplay->add_option("TOPIC", dr.topic, "Dead-letter topic")->required();
  dreplay->add_option("--to", dr.to, "Target topic")->required();
  dreplay->add_option("--where", dr.where, "Only records whose value matches this expression");
  dreplay->add_option("-n,--max", dr.max, "Replay at most N records");
  dreplay->add_option("--key-field", dr.key_field,
                      "Set each record's key from this field of its value (as key_field)");
  dreplay->add_flag("--dry-run", dr.dry_run, "Only count what would be replayed");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  if (*version) {
    std::printf("spate %s\n", SPATE_VERSION);
    return kExitOk;
  }
  if (*validate) return cmd_validate(validate_path);
  if (*run) return run_pipeline(run_opts);
  if (*orch) return orchestrate(orch_opts);
  if (*k8s_render_cmd) return k8s_render(k8s_opts);
  if (*tlist) return cmd_topics_list(tl);
  if (*tcreate) {
    return cmd_topics_create(tc, create_name, create_partitions, create_ret_ms, create_ret_bytes,
                             create_comp);
  }
  if (*tdescribe) return cmd_topics_describe(td, describe_name, describe_json);
  if (*produce) return cmd_produce(tp, po);
  if (*consume) return cmd_consume(tco, co);
  if (*tap) return cmd_consume(ttap, tapo);
  if (*top) return cmd_top(topo);
  if (*dinspect) return cmd_dlq_inspect(di);
  if (*dreplay) return cmd_dlq_replay(dr);
  return kExitUsage;
}

}  // namespace spate::cli
