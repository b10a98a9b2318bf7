// make_result_sink: the result sink kinds (result_sink.h).
#include "analytics/result_sink.h"

#include "analytics/sqlite_sink.h"

namespace spate::analytics {

Result<std::unique_ptr<ResultSink>> make_result_sink(const ResultSinkConfig& c,
                                                     const std::string& job) {
  const std::string table = c.table.empty() ? job : c.table;
  if (c.kind == "sqlite") {
    if (c.path.empty()) return InvalidArgument("analytics " + job + ": a sqlite sink needs a path");
    return std::unique_ptr<ResultSink>(std::make_unique<SqliteResultSink>(c.path, table));
  }
  return InvalidArgument("analytics " + job + ": unknown result sink kind '" + c.kind + "'");
}

}  // namespace spate::analytics
