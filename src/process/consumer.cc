#include "process/consumer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace spate::process {

GroupConsumer::GroupConsumer(Log* log, ConsumerConfig config) : log_(log), cfg_(std::move(config)) {}

Status GroupConsumer::open() {
  if (cfg_.group.empty()) return InvalidArgument("consumer group name is empty");
  if (cfg_.replicas == 0 || cfg_.replica >= cfg_.replicas) {
    return InvalidArgument(fmt::format("replica {} of {} is not a member of the group",
                                       cfg_.replica, cfg_.replicas));
  }
  std::vector<std::string> topics = cfg_.topics;
  std::sort(topics.begin(), topics.end());
  topics.erase(std::unique(topics.begin(), topics.end()), topics.end());
  for (const std::string& t : topics) {  // the topics must exist either way
    auto info = log_->describe_topic(t);
    if (!info.ok()) return info.status().with_context("consumer group " + cfg_.group);
  }
  assignment_.clear();
  state_.clear();
  if (cfg_.group_membership) {
    auto m = log_->join_group(cfg_.group, topics, cfg_.group_options);
    if (m.ok()) {
      membership_ = std::move(m).value();
      return Status::Ok();  // partitions arrive with the first assignment (poll)
    }
    if (m.status().code() != Errc::kUnimplemented) {
      return m.status().with_context("consumer group " + cfg_.group);
    }
  }
  std::vector<TopicPartition> all;
  for (const std::string& t : topics) {
    SPATE_ASSIGN_OR_RETURN(TopicInfo info, log_->describe_topic(t));
    for (uint32_t p = 0; p < info.partitions; ++p) all.push_back({t, p});
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) {
    if (i % cfg_.replicas != cfg_.replica) continue;
    const TopicPartition& tp = all[i];
    SPATE_ASSIGN_OR_RETURN(std::optional<int64_t> c,
                           log_->committed_offset(cfg_.group, tp.topic, tp.partition));
    SPATE_RETURN_IF_ERROR(add_partition(tp, c));
  }
  return Status::Ok();
}

Status GroupConsumer::add_partition(const TopicPartition& tp, std::optional<int64_t> c) {
  SPATE_ASSIGN_OR_RETURN(TopicInfo info, log_->describe_topic(tp.topic));
  if (tp.partition >= info.partition_info.size()) {
    return NotFound(fmt::format("{}[{}] does not exist", tp.topic, tp.partition));
  }
  const PartitionInfo& pi = info.partition_info[tp.partition];
  int64_t start = c ? *c : (cfg_.start_at_latest ? pi.end_offset : pi.start_offset);
  if (start < pi.start_offset) {
    skipped_by_retention_ += static_cast<uint64_t>(pi.start_offset - start);
    start = pi.start_offset;
  }
  start = std::min(start, pi.end_offset);
  assignment_.push_back(tp);
  state_[tp] = {start, c ? std::min(*c, start) : start};
  assigned_count_.store(assignment_.size(), std::memory_order_relaxed);
  return Status::Ok();
}

Status GroupConsumer::refresh_assignment() {
  if (!membership_) return Status::Ok();
  GroupAssignment ga = membership_->assignment();
  if (ga.generation == generation_) return Status::Ok();
  std::vector<TopicPartition> now;
  for (const GroupPartition& g : ga.partitions) now.push_back({g.topic, g.partition});
  std::sort(now.begin(), now.end());
  // Revoked: forget (uncommitted work is the new owner's to redo).
  std::vector<TopicPartition> kept;
  for (const TopicPartition& tp : assignment_) {
    if (std::binary_search(now.begin(), now.end(), tp)) {
      kept.push_back(tp);
    } else {
      state_.erase(tp);
    }
  }
  assignment_ = std::move(kept);
  assigned_count_.store(assignment_.size(), std::memory_order_relaxed);
  for (const TopicPartition& tp : now) {
    if (state_.count(tp)) continue;
    SPATE_ASSIGN_OR_RETURN(std::optional<int64_t> c, membership_->committed(tp.topic, tp.partition));
    SPATE_RETURN_IF_ERROR(add_partition(tp, c));
  }
  std::sort(assignment_.begin(), assignment_.end());
  next_ = 0;
  generation_ = ga.generation;
  return Status::Ok();
}

void GroupConsumer::leave() {
  if (membership_) membership_->leave();
}

Result<std::vector<PolledBatch>> GroupConsumer::poll(int64_t max_wait_ms) {
  const int64_t wait_ms = max_wait_ms < 0 ? cfg_.max_wait_ms : max_wait_ms;
  SPATE_RETURN_IF_ERROR(refresh_assignment());
  std::vector<PolledBatch> out;
  if (assignment_.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (true) {
    size_t records = 0, bytes = 0;
    for (size_t k = 0; k < assignment_.size() && records < cfg_.max_records; ++k) {
      const size_t idx = (next_ + k) % assignment_.size();
      const TopicPartition& tp = assignment_[idx];
      State& st = state_[tp];
      FetchOptions fo;
      fo.isolation = cfg_.isolation;
      fo.max_records = cfg_.max_records - records;
      // Ask for about what max_records needs (the log reads max_bytes from disk at once), by
      // the average record size seen so far, within the configured cap.
      const size_t need = static_cast<size_t>(static_cast<double>(fo.max_records) *
                                              avg_record_bytes_ * 1.25) + 4096;
      fo.max_bytes = std::clamp<size_t>(need, 1, std::max<size_t>(1, cfg_.max_bytes - std::min(bytes, cfg_.max_bytes)));
      SPATE_ASSIGN_OR_RETURN(FetchResult fr, log_->fetch(tp.topic, tp.partition, st.position, fo));
      st.end = fr.end_offset;
      if (fr.records().empty()) {
        // Nothing to return but the position moved: past transaction markers or aborted
        // records, or past the retained start (retention ran). Move up instead of stalling, and
        // hand the caller an empty batch so that it commits the new position (else the lag
        // would never reach zero behind a trailing marker).
        if (fr.next_offset > st.position) {
          if (auto info = log_->describe_topic(tp.topic); info.ok()) {  // rare path
            const int64_t start = info->partition_info[tp.partition].start_offset;
            if (st.position < start) skipped_by_retention_ += static_cast<uint64_t>(start - st.position);
          }
          st.position = fr.next_offset;
          out.push_back({tp, std::move(fr)});
        }
        continue;
      }
      records += fr.records().size();
      size_t got = 0;
      for (const auto& r : fr.records()) got += r.value.size() + r.key.size() + 32;
      bytes += got;
      avg_record_bytes_ = 0.8 * avg_record_bytes_ +
                          0.2 * (static_cast<double>(got) / static_cast<double>(fr.records().size()));
      st.position = fr.next_offset;
      out.push_back({tp, std::move(fr)});
    }
    next_ = (next_ + 1) % assignment_.size();
    if (!out.empty() || std::chrono::steady_clock::now() >= deadline) return out;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(5, wait_ms)));
  }
}

Status GroupConsumer::commit(const std::map<TopicPartition, int64_t>& next_offsets) {
  std::map<std::string, std::map<uint32_t, int64_t>> by_topic;
  for (const auto& [tp, off] : next_offsets) {
    auto it = state_.find(tp);
    if (it == state_.end()) {
      if (membership_) continue;  // revoked since it was polled: its new owner redoes it
      return InvalidArgument(fmt::format("{}[{}] is not assigned to this consumer", tp.topic,
                                         tp.partition));
    }
    if (off > it->second.position) {
      return InvalidArgument(fmt::format("commit of {}[{}] at {} is beyond what was polled ({})",
                                         tp.topic, tp.partition, off, it->second.position));
    }
    if (off > it->second.committed) by_topic[tp.topic][tp.partition] = off;
  }
  for (const auto& [topic, offsets] : by_topic) {
    SPATE_RETURN_IF_ERROR(membership_ ? membership_->commit(topic, offsets)
                                      : log_->commit_offsets(cfg_.group, topic, offsets));
    for (const auto& [p, off] : offsets) state_[{topic, p}].committed = off;
  }
  return Status::Ok();
}

Status GroupConsumer::commit_through(std::string_view topic,
                                     const std::map<uint32_t, int64_t>& offsets) {
  return membership_ ? membership_->commit(topic, offsets)
                     : log_->commit_offsets(cfg_.group, topic, offsets);
}

void GroupConsumer::mark_committed(const std::map<TopicPartition, int64_t>& next_offsets) {
  for (const auto& [tp, off] : next_offsets) {
    auto it = state_.find(tp);
    if (it != state_.end() && off > it->second.committed) it->second.committed = off;
  }
}

Status GroupConsumer::seek(const TopicPartition& tp, int64_t offset) {
  auto it = state_.find(tp);
  if (it == state_.end()) {
    if (membership_) return Status::Ok();  // revoked meanwhile
    return InvalidArgument(tp.topic + " partition is not assigned");
  }
  it->second.position = offset;
  return Status::Ok();
}

Result<std::map<TopicPartition, int64_t>> GroupConsumer::lag() const {
  std::map<TopicPartition, int64_t> out;
  std::map<std::string, TopicInfo> infos;
  for (const auto& [tp, st] : state_) {
    if (st.end >= 0) {  // no round trip to the log (a Kafka cluster) per batch
      out[tp] = std::max<int64_t>(0, st.end - st.committed);
      continue;
    }
    auto it = infos.find(tp.topic);
    if (it == infos.end()) {
      SPATE_ASSIGN_OR_RETURN(TopicInfo info, log_->describe_topic(tp.topic));
      it = infos.emplace(tp.topic, std::move(info)).first;
    }
    out[tp] = std::max<int64_t>(0, it->second.partition_info[tp.partition].end_offset - st.committed);
  }
  return out;
}

int64_t GroupConsumer::position(const TopicPartition& tp) const {
  auto it = state_.find(tp);
  return it == state_.end() ? -1 : it->second.position;
}

int64_t GroupConsumer::committed(const TopicPartition& tp) const {
  auto it = state_.find(tp);
  return it == state_.end() ? -1 : it->second.committed;
}

}  // namespace spate::process
