#include "event/json.h"

#include <simdjson.h>

namespace spate::json {
namespace {
simdjson::dom::parser& parser() {
  thread_local simdjson::dom::parser p;
  return p;
}
}  // namespace

Status validate(std::string_view doc) {
  simdjson::padded_string padded(doc);
  auto r = parser().parse(padded);
  if (r.error()) return InvalidArgument(simdjson::error_message(r.error()));
  return Status::Ok();
}

Result<std::optional<std::string>> field_as_string(std::string_view doc, std::string_view path) {
  simdjson::padded_string padded(doc);
  simdjson::dom::element e;
  auto err = parser().parse(padded).get(e);
  if (err) return InvalidArgument(simdjson::error_message(err));
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string_view part = path.substr(start, dot == std::string_view::npos ? path.npos : dot - start);
    simdjson::dom::object obj;
    if (e.get_object().get(obj)) return std::optional<std::string>{};
    simdjson::dom::element child;
    if (obj.at_key(part).get(child)) return std::optional<std::string>{};
    e = child;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  std::string_view sv;
  if (!e.get_string().get(sv)) return std::optional<std::string>(std::string(sv));
  return std::optional<std::string>(simdjson::minify(e));
}


}  // namespace spate::json
