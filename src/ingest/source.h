// Ingestion sources: the registry of source types and the interface each implements.
//
// A source type (webhook, file, postgres, ...) lives in src/ingest/sources/<type>.cc and is
// listed once in sources/builtin.cc. Its `validate` checks an `ingestion.sources[i]` entry's
// options without starting anything (used by `spate validate` and before `create`); its
// `create` builds a Source that feeds DataIngestionEngine::submit(). Sources run their own
// threads (or register HTTP routes) between start() and stop(); stop() returns only when the
// source no longer submits. Sources that read outside state (files, tables) keep a checkpoint
// under SourceContext::state_dir and must neither skip nor repeat input across restarts.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "spate/ingestion.h"
#include "spate/status.h"

namespace spate {
class HttpServer;
class MetricsRegistry;
}  // namespace spate

namespace spate::ingest {

class Source {
 public:
  virtual ~Source() = default;
  virtual Status start() = 0;
  virtual void stop() = 0;
};

struct SourceContext {
  DataIngestionEngine* engine = nullptr;
  HttpServer* server = nullptr;      // for sources that receive HTTP (routes before start)
  MetricsRegistry* metrics = nullptr;
  std::string state_dir;             // <data_dir>/sources/<name>/, created by the caller
};

struct SourceType {
  std::string type;
  /// Check the options; errors as one Status (kConfig) with one `file:line:col: path: msg` line
  /// per problem (use OptionReader).
  std::function<Status(const SourceConfig&)> validate;
  std::function<Result<std::unique_ptr<Source>>(const SourceConfig&, SourceContext&)> create;
};

/// The SourceType of a source that feeds the engine and keeps a checkpoint (file, postgres):
/// options checked by `read`, then built as `new SourceT(cfg, std::move(options), ctx)`.
template <typename Options, typename SourceT>
SourceType checkpointed_source_type(std::string type,
                                    Status (*read)(const SourceConfig&, Options*)) {
  SourceType t;
  t.type = type;
  t.validate = [read](const SourceConfig& cfg) {
    Options o;
    return read(cfg, &o);
  };
  t.create = [read, type](const SourceConfig& cfg,
                          SourceContext& ctx) -> Result<std::unique_ptr<Source>> {
    Options o;
    SPATE_RETURN_IF_ERROR(read(cfg, &o));
    if (ctx.engine == nullptr) return Internal(type + " source needs the ingestion engine");
    if (ctx.state_dir.empty()) return Internal(type + " source needs a state directory");
    return std::unique_ptr<Source>(new SourceT(cfg, std::move(o), ctx));
  };
  return t;
}

void register_source_type(SourceType type);
const SourceType* find_source_type(std::string_view type);
std::vector<std::string> source_type_names();
/// Registers the built-in source types (idempotent). Called by the CLI before validation.
void register_builtin_sources();

/// Submit `req` to the engine and wait for its result (sources' delivery loops).
IngestResult submit_and_wait(DataIngestionEngine& engine, IngestRequest req);

/// Validate every entry of cfg.sources (unknown type -> error with a did-you-mean).
Status validate_sources(const IngestionConfig& cfg);

/// Reads a SourceConfig's options with typed getters, collecting errors with positions.
/// Call the getters for every option the type knows, then finish() (unknown options -> errors).
class OptionReader {
 public:
  explicit OptionReader(const SourceConfig& cfg) : cfg_(cfg) {}
  bool has(std::string_view key) const;
  bool get_string(std::string_view key, std::string* out, bool required = false);
  bool get_list(std::string_view key, std::vector<std::string>* out, bool required = false);
  bool get_int(std::string_view key, int64_t* out, int64_t min, int64_t max);
  bool get_duration_ms(std::string_view key, int64_t* out, int64_t min, int64_t max);
  bool get_size(std::string_view key, int64_t* out, int64_t min, int64_t max);
  bool get_bool(std::string_view key, bool* out);
  bool get_enum(std::string_view key, std::string* out, const std::vector<std::string>& allowed);
  /// Report an error about `key` (at its position, or at the entry if absent).
  void error(std::string_view key, std::string_view message);
  /// Errors so far plus unknown options; OK if none.
  Status finish();

 private:
  const SourceOption* find(std::string_view key);
  const SourceConfig& cfg_;
  std::vector<std::string> known_;
  std::vector<std::string> errors_;
};

}  // namespace spate::ingest
