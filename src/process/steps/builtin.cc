// Built-in processor steps: filter, map, mask, route (enrich and sink live in their own files).
#include <fmt/format.h>

#include "event/expr.h"
#include "ingest/transform/transform.h"
#include "process/event_access.h"
#include "process/steps/steps.h"
#include "spate/processor.h"
#include "spate/processor_api.h"

namespace spate::process {
namespace {

std::string at(const ProcessorStepConfig& sc) {
  return fmt::format("{}:{}:{}: {}", sc.file, sc.line, sc.column, sc.path);
}

class FilterStep final : public EventProcessor {
 public:
  explicit FilterStep(expr::Expression e) : e_(std::move(e)) {}
  StepOutcome process(ProcessorEvent& ev, StepError*) override {
    return e_.matches(ev.doc()) ? StepOutcome::kPass : StepOutcome::kDrop;
  }

 private:
  expr::Expression e_;
};

// map and mask: a TransformChain over the event. As the last step of the processor (`last`),
// no step reads the event's parse after it — the processor appends the text — so the chain's
// result is not parsed again; ev.doc() then still holds the parse of the event as it came in.
class ChainStep final : public EventProcessor {
 public:
  ChainStep(ingest::TransformChain chain, std::string source, bool last)
      : chain_(std::move(chain)), source_(std::move(source)), last_(last) {}
  StepOutcome process(ProcessorEvent& ev, StepError* error) override {
    ingest::TransformInput in;
    in.received_at_ms = ev.timestamp_ms();
    in.source = source_;
    ingest::TransformChain::Outcome out;
    std::string why;
    if (!chain_.apply(ev.doc(), in, &out, &why, /*parse_result=*/!last_)) {
      error->kind = "transform";
      error->message = std::move(why);
      return StepOutcome::kError;
    }
    if (out.changed) {
      // The chain's parse stays valid until its next apply (the next event on this thread);
      // the text is copied into the batch's storage because outputs are appended at batch end.
      std::string_view json = ProcessorEventAccess::texts(ev)->add(out.json);
      ProcessorEventAccess::set(ev, json, last_ ? ev.doc() : out.doc);
    }
    return StepOutcome::kPass;
  }

 private:
  ingest::TransformChain chain_;
  std::string source_;
  bool last_;  // the processor's last step: the result's parse is not needed
};

// True if `ctx` is the last step of its processor (create_steps passes the config's own).
bool is_last_step(const StepContext& ctx) {
  return ctx.processor != nullptr && !ctx.processor->steps.empty() &&
         ctx.step == &ctx.processor->steps.back();
}

class RouteStep final : public EventProcessor {
 public:
  struct Route {
    expr::Expression when;
    std::vector<std::string> topics;
  };
  explicit RouteStep(std::vector<Route> routes) : routes_(std::move(routes)) {}
  StepOutcome process(ProcessorEvent& ev, StepError*) override {
    for (const Route& r : routes_) {
      if (r.when.empty() || r.when.matches(ev.doc())) {
        ev.route_to(&r.topics);
        return StepOutcome::kPass;
      }
    }
    return StepOutcome::kPass;  // no match: the processor's output, if any
  }
  std::vector<std::string> output_topics() const override {
    std::vector<std::string> out;
    for (const Route& r : routes_) out.insert(out.end(), r.topics.begin(), r.topics.end());
    return out;
  }

 private:
  std::vector<Route> routes_;
};

Result<std::unique_ptr<EventProcessor>> make_filter(StepContext& ctx) {
  const ProcessorStepConfig& sc = *ctx.step;
  std::string text = sc.filter;
  if (text.empty()) ctx.options->get_string("when", &text, true);
  SPATE_RETURN_IF_ERROR(ctx.options->finish());
  auto e = expr::Expression::compile(text);
  if (!e.ok()) return ConfigError(fmt::format("{}.filter: {}", at(sc), e.status().message()));
  return std::unique_ptr<EventProcessor>(new FilterStep(std::move(e).value()));
}

Result<std::unique_ptr<EventProcessor>> make_map(StepContext& ctx) {
  const ProcessorStepConfig& sc = *ctx.step;
  if (sc.rules.empty()) {
    return ConfigError(at(sc) + ": write a map step as {map: [{set: ...}, {rename: ...}]}");
  }
  SPATE_ASSIGN_OR_RETURN(auto chain, ingest::TransformChain::compile(sc.rules));
  return std::unique_ptr<EventProcessor>(new ChainStep(std::move(chain), ctx.processor->name,
                                                          is_last_step(ctx)));
}

// {type: mask, fields: [card, user.email], with: redact|partial|hash, replacement, keep_first,
//  keep_last, char, key}
Result<std::unique_ptr<EventProcessor>> make_mask(StepContext& ctx) {
  const ProcessorStepConfig& sc = *ctx.step;
  StepOptions& o = *ctx.options;
  std::vector<std::string> fields;
  o.get_string_list("fields", &fields, true);
  std::string with = "redact";
  o.get_enum("with", &with, {"redact", "partial", "hash"});
  TransformConfig base;
  base.file = sc.file;
  base.line = sc.line;
  base.column = sc.column;
  if (with == "hash") {
    base.op = "hash";
    o.get_string("key", &base.key);
  } else {
    base.op = "mask";
    if (with == "redact") {
      std::string rep = "[REDACTED]";
      o.get_string("replacement", &rep);
      base.replacement = rep;
    } else {
      int64_t first = 0, last = 0;
      o.get_int("keep_first", &first, 0, 1000);
      o.get_int("keep_last", &last, 0, 1000);
      base.keep_first = static_cast<int>(first);
      base.keep_last = static_cast<int>(last);
      o.get_string("char", &base.mask_char);
    }
  }
  SPATE_RETURN_IF_ERROR(o.finish());
  std::vector<TransformConfig> rules;
  for (size_t i = 0; i < fields.size(); ++i) {
    TransformConfig r = base;
    r.fields = {fields[i]};
    r.path = fmt::format("{}.fields[{}]", sc.path, i);
    rules.push_back(std::move(r));
  }
  SPATE_ASSIGN_OR_RETURN(auto chain, ingest::TransformChain::compile(rules));
  return std::unique_ptr<EventProcessor>(new ChainStep(std::move(chain), ctx.processor->name,
                                                          is_last_step(ctx)));
}

Result<std::unique_ptr<EventProcessor>> make_route(StepContext& ctx) {
  const ProcessorStepConfig& sc = *ctx.step;
  if (sc.routes.empty()) {
    return ConfigError(at(sc) + ": write a route step as {route: [{when: ..., topic: ...}]}");
  }
  std::vector<RouteStep::Route> routes;
  std::string errors;
  for (const RouteConfig& rc : sc.routes) {
    RouteStep::Route r;
    if (!rc.when.empty()) {
      auto e = expr::Expression::compile(rc.when);
      if (!e.ok()) {
        errors += (errors.empty() ? "" : "\n") + fmt::format("{}:{}:{}: {}.when: {}", rc.file,
                                                              rc.line, rc.column, rc.path,
                                                              e.status().message());
        continue;
      }
      r.when = std::move(e).value();
    }
    r.topics = rc.topics;
    routes.push_back(std::move(r));
  }
  if (!errors.empty()) return ConfigError(errors);
  return std::unique_ptr<EventProcessor>(new RouteStep(std::move(routes)));
}

}  // namespace

void register_builtin_steps(ProcessorRegistry& r) {
  (void)r.add("filter", "keep events where an expression is true", make_filter);
  (void)r.add("map", "transform rules: set, rename, remove, cast, default, mask, hash", make_map);
  (void)r.add("mask", "redact, partially mask or hash sensitive fields", make_mask);
  (void)r.add("route", "send events to topics by condition", make_route);
  register_enrich_step(r);
  register_sink_step(r);
}

}  // namespace spate::process
