// Registration of the built-in step types that live in their own files (see processor_api.h).
#pragma once

namespace spate {
class ProcessorRegistry;
}

namespace spate::process {

void register_builtin_steps(ProcessorRegistry& r);  // all of them (builtin.cc)
void register_enrich_step(ProcessorRegistry& r);    // enrich.cc
void register_sink_step(ProcessorRegistry& r);      // sink.cc

}  // namespace spate::process
