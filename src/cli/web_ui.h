// GET /ui/data of `spate run` (the web UI's window results and alerts; schema UiData in
// src/server/web/openapi.json): the newest `results` records (default 20) of each analytics
// job's output topic and the newest `alerts` records (default 50) of every alerts topic (the
// jobs' alerts_topic and the `topic` notifiers), each newest first, read from the log.
//
// Thread safety: as the Log's reads (safe with concurrent appends).
#pragma once

#include <string>

#include "server/http_server.h"
#include "spate/config.h"
#include "spate/log.h"

namespace spate::cli {

/// The JSON body, or a JSON {"error"} when a parameter is malformed (*status = 400).
std::string ui_data_json(const PipelineConfig& pc, Log& log, const HttpRequest& req, int* status);

}  // namespace spate::cli
