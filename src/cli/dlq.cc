#include "cli/dlq.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <vector>

#include "base/hash.h"
#include "base/json_escape.h"
#include "cli/progress.h"
#include "event/expr.h"
#include "event/json.h"

namespace spate::cli {
namespace {

std::string_view header(const std::vector<RecordHeader>& hs, std::string_view key) {
  for (const auto& h : hs) {
    if (h.key == key) return h.value;
  }
  return {};
}

// "quality check amount: amount = -5 ..." -> "quality check amount".
std::string reason_class(std::string_view reason) {
  if (reason.empty()) return "(no error header)";
  size_t colon = reason.find(": ");
  std::string_view c = colon == std::string_view::npos ? reason : reason.substr(0, colon);
  if (c.size() > 80) c = c.substr(0, 80);
  return std::string(c);
}

std::string time_text(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms % 1000));
}

// Visit every retained record of every partition of `topic`.
template <typename F>
Status for_each_record(Log& log, const std::string& topic, F&& f) {
  SPATE_ASSIGN_OR_RETURN(TopicInfo info, log.describe_topic(topic));
  for (uint32_t p = 0; p < info.partitions; ++p) {
    int64_t off = info.partition_info[p].start_offset;
    const int64_t end = info.partition_info[p].end_offset;
    while (off < end) {
      FetchOptions fo;
      fo.max_records = 1000;
      fo.max_bytes = 8 << 20;
      fo.isolation = Isolation::kReadCommitted;  // dead letters of aborted transactions are not real
      SPATE_ASSIGN_OR_RETURN(FetchResult fr, log.fetch(topic, p, off, fo));
      if (fr.records().empty()) {
        if (fr.next_offset > off) {  // skipped transaction markers or aborted records
          off = fr.next_offset;
          continue;
        }
        break;
      }
      for (const RecordView& r : fr.records()) {
        if (r.offset >= end) break;
        if (!f(p, fr, r)) return Status::Ok();
      }
      off = fr.next_offset;
    }
  }
  return Status::Ok();
}

struct ClassStats {
  uint64_t count = 0;
  std::string sample;
  int64_t first_ms = 0;
  int64_t last_ms = 0;
};

}  // namespace

int cmd_dlq_inspect(const DlqInspectOptions& o) {
  auto log = open_log(o.target, true);
  if (!log.ok()) {
    print_error(log.status().to_string());
    return exit_code_for(log.status());
  }
  std::map<std::string, ClassStats> classes;
  std::map<std::string, uint64_t> sources;
  uint64_t total = 0;
  int64_t first = 0, last = 0;
  Status s = for_each_record(**log, o.topic, [&](uint32_t, const FetchResult& fr, const RecordView& r) {
    auto hs = fr.headers_of(r);
    const std::string_view reason = header(hs, "error");
    ClassStats& c = classes[reason_class(reason)];
    if (c.count++ == 0) {
      c.sample = std::string(reason.substr(0, 200));
      c.first_ms = r.timestamp_ms;
    }
    c.first_ms = std::min(c.first_ms, r.timestamp_ms);
    c.last_ms = std::max(c.last_ms, r.timestamp_ms);
    std::string_view src = header(hs, "source");
    ++sources[src.empty() ? std::string("(none)") : std::string(src)];
    first = total == 0 ? r.timestamp_ms : std::min(first, r.timestamp_ms);
    last = std::max(last, r.timestamp_ms);
    ++total;
    return true;
  });
  if (!s.ok()) {
    print_error(s.to_string());
    return exit_code_for(s);
  }
  std::vector<std::pair<std::string, ClassStats>> sorted(classes.begin(), classes.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  if (sorted.size() > o.top) sorted.resize(o.top);
  if (o.json) {
    std::string out = fmt::format("{{\"topic\":");
    append_json_quoted(out, o.topic);
    out += fmt::format(",\"records\":{},\"first\":", total);
    append_json_quoted(out, time_text(first));
    out += ",\"last\":";
    append_json_quoted(out, time_text(last));
    out += ",\"reasons\":[";
    for (size_t i = 0; i < sorted.size(); ++i) {
      const auto& [name, c] = sorted[i];
      out += i ? "," : "";
      out += "{\"class\":";
      append_json_quoted(out, name);
      out += fmt::format(",\"count\":{},\"sample\":", c.count);
      append_json_quoted(out, c.sample);
      out += ",\"first\":";
      append_json_quoted(out, time_text(c.first_ms));
      out += ",\"last\":";
      append_json_quoted(out, time_text(c.last_ms));
      out += "}";
    }
    out += "],\"sources\":{";
    bool firsts = true;
    for (const auto& [name, n] : sources) {
      out += firsts ? "" : ",";
      firsts = false;
      append_json_quoted(out, name);
      out += fmt::format(":{}", n);
    }
    out += "}}\n";
    std::fputs(out.c_str(), stdout);
    return kExitOk;
  }
  std::printf("%s: %llu dead letter%s", o.topic.c_str(), static_cast<unsigned long long>(total),
              total == 1 ? "" : "s");
  if (total > 0) std::printf(", %s .. %s", time_text(first).c_str(), time_text(last).c_str());
  std::printf("\n");
  if (total == 0) return kExitOk;
  std::printf("\n%8s  %-40s  %s\n", "count", "reason", "sample");
  for (const auto& [name, c] : sorted) {
    std::printf("%8llu  %-40s  %s\n", static_cast<unsigned long long>(c.count), name.c_str(),
                c.sample.c_str());
  }
  if (classes.size() > sorted.size()) {
    std::printf("%8s  (%zu more reason classes; --top N)\n", "", classes.size() - sorted.size());
  }
  std::printf("\n%8s  %s\n", "count", "source");
  for (const auto& [name, n] : sources) {
    std::printf("%8llu  %s\n", static_cast<unsigned long long>(n), name.c_str());
  }
  return kExitOk;
}

int cmd_dlq_replay(const DlqReplayOptions& o) {
  auto log_r = open_log(o.target, true);
  if (!log_r.ok()) {
    print_error(log_r.status().to_string());
    return exit_code_for(log_r.status());
  }
  Log& log = **log_r;
  expr::Expression where;
  if (!o.where.empty()) {
    auto e = expr::Expression::compile(o.where);
    if (!e.ok()) {
      print_error("--where: " + e.status().message());
      return kExitUsage;
    }
    where = std::move(e).value();
  }
  auto target = log.describe_topic(o.to);
  if (!target.ok()) {
    print_error(target.status().to_string());
    return exit_code_for(target.status());
  }
  const uint32_t parts = target->partitions;
  // Pending appends per target partition; the strings own the bytes the RecordIns point to.
  struct Pending {
    std::vector<std::string> values, keys, from, errors;
    std::vector<bool> has_key;
    std::vector<int64_t> ts;
  };
  std::vector<Pending> pending(parts);
  uint64_t seen = 0, matched = 0, appended = 0;
  simdjson::dom::parser parser;
  Status failure;
  // On a terminal: how many of the dead letters have been read and replayed so far.
  Progress progress;
  uint64_t total = 0;
  if (progress.enabled()) {
    if (auto src = log.describe_topic(o.topic); src.ok()) {
      for (const PartitionInfo& pi : src->partition_info) {
        total += static_cast<uint64_t>(pi.end_offset - pi.start_offset);
      }
    }
  }
  auto show_progress = [&] {
    const double pct = total ? 100.0 * static_cast<double>(seen) / static_cast<double>(total) : 100.0;
    progress.show(fmt::format("{} {} of {} dead letters read ({:.0f}%), {} matched, {} appended to {}",
                              o.dry_run ? "checking" : "replaying", seen, total, pct, matched,
                              appended, o.to));
  };
  auto flush = [&](uint32_t p) -> Status {
    Pending& pd = pending[p];
    if (pd.values.empty()) return Status::Ok();
    std::vector<RecordHeader> hdrs(2 * pd.values.size());
    std::vector<RecordIn> recs(pd.values.size());
    for (size_t i = 0; i < recs.size(); ++i) {
      hdrs[2 * i] = {"spate.replayed_from", pd.from[i]};
      hdrs[2 * i + 1] = {"spate.replayed_error", pd.errors[i]};
      recs[i].value = pd.values[i];
      if (pd.has_key[i]) recs[i].key = std::string_view(pd.keys[i]);
      recs[i].timestamp_ms = pd.ts[i];
      recs[i].headers = &hdrs[2 * i];
      recs[i].header_count = 2;
    }
    SPATE_RETURN_IF_ERROR(log.append(o.to, p, recs.data(), recs.size()).status());
    appended += recs.size();
    pd = Pending{};
    return Status::Ok();
  };
  Status s = for_each_record(log, o.topic, [&](uint32_t p, const FetchResult& fr, const RecordView& r) {
    if (o.max && matched >= *o.max) return false;
    ++seen;
    if (progress.due()) show_progress();
    if (!where.empty()) {
      simdjson::dom::element doc;
      if (parser.parse(r.value.data(), r.value.size()).get(doc) || !where.matches(doc)) return true;
    }
    ++matched;
    if (o.dry_run) return true;
    bool has_key = r.has_key;
    std::string key(r.key);
    if (!o.key_field.empty()) {
      auto k = json::field_as_string(r.value, o.key_field);
      if (k.ok() && k->has_value()) {
        key = **k;
        has_key = true;
      }
    }
    const uint32_t tp = has_key ? partition_for_key(key, parts) : p % parts;
    Pending& pd = pending[tp];
    pd.values.emplace_back(r.value);
    pd.keys.push_back(std::move(key));
    pd.has_key.push_back(has_key);
    pd.ts.push_back(r.timestamp_ms);
    pd.from.push_back(fmt::format("{}/{}/{}", o.topic, p, r.offset));
    pd.errors.emplace_back(header(fr.headers_of(r), "error"));
    if (pd.values.size() >= 1000) {
      failure = flush(tp);
      if (!failure.ok()) return false;
    }
    return true;
  });
  for (uint32_t p = 0; p < parts && failure.ok() && s.ok(); ++p) failure = flush(p);
  progress.done();
  if (!s.ok() || !failure.ok()) {
    const Status& bad = s.ok() ? failure : s;
    print_error(bad.to_string() + fmt::format(" (appended {} before the error)", appended));
    return exit_code_for(bad);
  }
  std::printf("%s %llu of %llu dead letters from %s to %s\n", o.dry_run ? "would replay" : "replayed",
              static_cast<unsigned long long>(o.dry_run ? matched : appended),
              static_cast<unsigned long long>(seen), o.topic.c_str(), o.to.c_str());
  return kExitOk;
}

}  // namespace spate::cli
