#include "samples/serve/session_table.h"

#include <random>

namespace vkssm::serve {

std::string new_session_id() {
  // random_device reads the kernel's generator on Linux; one per call keeps it thread safe.
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (int word = 0; word < 4; ++word) {
    uint32_t bits = rd();
    for (int i = 0; i < 8; ++i, bits >>= 4) id += hex[bits & 15];
  }
  return id;
}

bool valid_session_id(const std::string& id) {
  if (id.size() != 32) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

SessionTable::SessionTable(int capacity) {
  // Highest first, so slots are handed out from 0 upwards.
  for (int s = capacity - 1; s >= 0; --s) free_.push_back(s);
}

Session* SessionTable::find(const std::string& id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second;
}

Session* SessionTable::add(const std::string& id, int64_t vocab) {
  if (free_.empty()) return nullptr;
  Session& s = sessions_[id];
  s.slot = free_.back();
  free_.pop_back();
  s.logits.reserve(static_cast<size_t>(vocab));  // steps then copy logits in without allocating
  s.last_used = Clock::now();
  return &s;
}

void SessionTable::remove(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  free_.push_back(it->second.slot);
  sessions_.erase(it);
}

std::vector<std::string> SessionTable::idle_since(Clock::time_point cutoff) const {
  std::vector<std::string> ids;
  for (const auto& [id, s] : sessions_)
    if (!s.busy && s.last_used < cutoff) ids.push_back(id);
  return ids;
}

bool SessionTable::evict_one(const Session* keep) {
  auto victim = sessions_.end();
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
    if (it->second.persisted && !it->second.busy && !it->second.reserved && &it->second != keep &&
        (victim == sessions_.end() || it->second.last_used < victim->second.last_used))
      victim = it;
  if (victim == sessions_.end()) return false;
  free_.push_back(victim->second.slot);
  sessions_.erase(victim);
  return true;
}

}  // namespace vkssm::serve
