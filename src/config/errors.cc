#include "config/errors.h"

#include <fmt/format.h>

#include <algorithm>

namespace spate::config {

void Errors::add(Location at, std::string_view path, std::string_view message) {
  std::string text = source_;
  if (at.line > 0) text += fmt::format(":{}:{}", at.line, at.column);
  text += ": ";
  if (!path.empty()) {
    text += path;
    text += ": ";
  }
  text += message;
  entries_.push_back({at, std::move(text)});
}

std::vector<std::string> Errors::lines() const {
  std::vector<const Entry*> sorted;
  sorted.reserve(entries_.size());
  for (const Entry& e : entries_) sorted.push_back(&e);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    if (a->at.line != b->at.line) return a->at.line < b->at.line;
    return a->at.column < b->at.column;
  });
  std::vector<std::string> out;
  out.reserve(std::min(sorted.size(), kMaxReported + 1));
  for (size_t i = 0; i < sorted.size() && i < kMaxReported; ++i) out.push_back(sorted[i]->text);
  if (sorted.size() > kMaxReported) {
    out.push_back(fmt::format("{}: ... and {} more errors", source_, sorted.size() - kMaxReported));
  }
  return out;
}

Status Errors::status() const {
  if (entries_.empty()) return Status::Ok();
  std::string message;
  for (const std::string& line : lines()) {
    if (!message.empty()) message += '\n';
    message += line;
  }
  return ConfigError(std::move(message));
}

}  // namespace spate::config
