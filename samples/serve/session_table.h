#pragma once
// The sessions one `vkssm serve` process holds: id -> state slot, position and the last token's
// logits. Only the step loop's thread touches it (batcher.cpp), so it needs no lock.
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace vkssm::serve {

using Clock = std::chrono::steady_clock;

struct Session {
  int32_t slot = -1;
  int64_t position = 0;       // tokens consumed since the session was created
  std::vector<float> logits;  // after the last consumed token (empty at position 0)
  Clock::time_point last_used;
  bool busy = false;          // a request on it is in progress in the step loop
  bool persisted = false;     // its state is in Redis, so this copy may be evicted for room
  // Loaded from Redis for a request that has not started on it yet: not evicted before it does
  // (with every other slot busy, it would be the only candidate for the next load's room).
  bool reserved = false;
};

// A new session id: 128 random bits from std::random_device, as 32 lowercase hex digits.
std::string new_session_id();
// Whether `id` has the form new_session_id() gives (handlers reject anything else with 404
// before it reaches Redis as part of a key).
bool valid_session_id(const std::string& id);

class SessionTable {
 public:
  explicit SessionTable(int capacity);

  Session* find(const std::string& id);
  // A session on a free slot (nullptr when every slot is taken); its slot still holds whatever
  // the previous user left, so the caller resets or restores it.
  Session* add(const std::string& id, int64_t vocab);
  void remove(const std::string& id);
  // Ids of sessions that are not busy and were last used before `cutoff`.
  std::vector<std::string> idle_since(Clock::time_point cutoff) const;
  // Frees the slot of the least recently used persisted session that is not busy, not reserved
  // and not `keep`; false when there is none.
  bool evict_one(const Session* keep);
  size_t size() const { return sessions_.size(); }
  bool full() const { return free_.empty(); }

 private:
  std::unordered_map<std::string, Session> sessions_;
  std::vector<int32_t> free_;
};

}  // namespace vkssm::serve
