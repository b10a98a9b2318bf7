// An example custom processor step, loaded by `spate` from a shared library.
//
// The step `uppercase` upper-cases (ASCII) the string values of top-level fields:
//
//   plugins: [build/examples/libspate_example_plugin.so]
//   processors:
//     - name: shout
//       ...
//       steps:
//         - {type: uppercase, fields: [name, city], suffix: "!"}
//
// Options: fields (required: a field name or a list of them), suffix (appended to each changed
// value, default ""). Other fields, and listed fields that are absent or not strings, are left
// as they are.
//
// How a plugin works (docs/processors.md, "Custom processors"):
//  - It is built against include/spate/processor_api.h only and links nothing of Spate: the
//    symbols it uses (ProcessorRegistry::add, StepOptions, ProcessorEvent::replace, Status)
//    are resolved from the `spate` executable, which exports them.
//  - It exports `extern "C" void spate_register_processors(spate::ProcessorRegistry*)`, which
//    spate calls once after dlopen() to register the plugin's step types.
//  - A factory parses the step's options (every problem is reported with its file:line:col by
//    StepOptions; finish() turns unknown keys into errors) and returns a fresh EventProcessor.
//    It is called once per worker thread, and once by `spate validate`, so an instance needs
//    no locking.
#include <cctype>
#include <memory>
#include <string>
#include <vector>

#include "spate/processor_api.h"

namespace {

// JSON string escaping for the values we rewrite (keys and other values are copied as the
// minified JSON simdjson gives back).
void append_quoted(std::string& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out.push_back(kHex[(c >> 4) & 0xF]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

class UppercaseStep final : public spate::EventProcessor {
 public:
  UppercaseStep(std::vector<std::string> fields, std::string suffix)
      : fields_(std::move(fields)), suffix_(std::move(suffix)) {}

  spate::StepOutcome process(spate::ProcessorEvent& event, spate::StepError* error) override {
    simdjson::dom::object obj;
    if (event.doc().get_object().get(obj)) {
      // A permanent error: the event goes to the processor's dead-letter topic.
      error->kind = "not_an_object";
      error->message = "uppercase: the event is not a JSON object";
      return spate::StepOutcome::kError;
    }
    std::string out = "{";
    bool changed = false;
    for (auto [key, value] : obj) {
      if (out.size() > 1) out.push_back(',');
      append_quoted(out, key);
      out.push_back(':');
      std::string_view s;
      if (is_listed(key) && !value.get_string().get(s)) {
        std::string up(s);
        for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        append_quoted(out, up + suffix_);
        changed = true;
      } else {
        out += simdjson::minify(value);
      }
    }
    out.push_back('}');
    // Views of the old event (key, doc()) are invalid after replace(); we are done with them.
    if (changed) {
      if (spate::Status s = event.replace(out); !s.ok()) {
        error->kind = "uppercase";
        error->message = s.message();
        return spate::StepOutcome::kError;
      }
    }
    return spate::StepOutcome::kPass;
  }

 private:
  bool is_listed(std::string_view key) const {
    for (const std::string& f : fields_) {
      if (f == key) return true;
    }
    return false;
  }

  std::vector<std::string> fields_;
  std::string suffix_;
};

spate::Result<std::unique_ptr<spate::EventProcessor>> make_uppercase(spate::StepContext& ctx) {
  std::vector<std::string> fields;
  std::string suffix;
  ctx.options->get_string_list("fields", &fields, /*required=*/true);
  ctx.options->get_string("suffix", &suffix);
  if (spate::Status s = ctx.options->finish(); !s.ok()) return s;
  return std::unique_ptr<spate::EventProcessor>(new UppercaseStep(std::move(fields), std::move(suffix)));
}

}  // namespace

extern "C" void spate_register_processors(spate::ProcessorRegistry* registry) {
  // add() fails only if the type is taken (e.g. two plugins registering the same name).
  (void)registry->add("uppercase", "upper-case the string values of fields (example plugin)",
                      make_uppercase);
}
