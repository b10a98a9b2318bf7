// `spate dlq inspect TOPIC` and `spate dlq replay TOPIC --to TOPIC [--where EXPR]`: look into a
// dead-letter topic and re-inject what is fixed.
//
// Contract:
//  - inspect reads every retained record of the topic (the log opened directly, like consume)
//    and prints counts by reason class (the `error` header up to its first ':'), with a sample
//    reason and the first/last time of each, and counts by `source`; --json prints the same as
//    one JSON object. It never changes the log.
//  - replay appends the records (value and key unchanged) that match --where (an expression over
//    the value as JSON; records that are not JSON never match a --where) to the --to topic, with
//    headers `spate.replayed_from` = "TOPIC/PARTITION/OFFSET" and `spate.replayed_error` = the
//    original `error`; the other headers of the dead letter (error, index, source) are dropped.
//    Dead letters carry no key; with --key-field the key is read from the value (as
//    ingestion.key_field does), so replayed events land on their key's partition; records without
//    a key keep their partition modulo the target's count. The dead-letter topic is not changed; --dry-run only counts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cli/common.h"

namespace spate::cli {

struct DlqInspectOptions {
  LogTarget target;
  std::string topic;
  bool json = false;
  size_t top = 20;  // reason classes listed
};

struct DlqReplayOptions {
  LogTarget target;
  std::string topic;
  std::string to;
  std::string where;
  std::string key_field;  // set the key from this dotted field of the value (dead letters have none)
  bool dry_run = false;
  std::optional<uint64_t> max;
};

int cmd_dlq_inspect(const DlqInspectOptions& o);
int cmd_dlq_replay(const DlqReplayOptions& o);

}  // namespace spate::cli
