#pragma once
// Session state in Redis, so any replica behind a load balancer can continue any session.
//
// One hash per session, key "vkssm:session:<id>", fields "state" (Model::snapshot's blob: the
// versioned, fingerprinted, checksummed format of host/state_file.h), "position" (decimal) and
// "logits" (the last token's logits, float32 little-endian; empty at position 0, since
// generation samples from them). Keys expire after the server's idle timeout, refreshed on every
// write. Redis is reached through hiredis' blocking API: one connection per store guarded by a
// mutex, reconnected on the next command after a failure.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "samples/serve/metrics.h"

struct redisContext;

namespace vkssm::serve {

struct StoredSession {
  std::vector<uint8_t> state;
  int64_t position = 0;
  std::vector<float> logits;
};

class RedisStore {
 public:
  // url: "redis://HOST:PORT" (PORT defaults to 6379). Connects at once; throws vkssm::Error
  // naming the address when the URL is malformed or Redis does not answer PING.
  RedisStore(const std::string& url, int64_t ttl_seconds, Metrics& metrics);
  ~RedisStore();

  // Throw vkssm::Error (with Redis' reply or the connection error) on failure.
  void save(const std::string& id, const StoredSession& session);
  std::optional<StoredSession> load(const std::string& id);  // nullopt: no such key
  // Just the stored position (one small round trip): replicas compare it with the copy they
  // hold, which is stale once another replica advanced the session. nullopt: no such key.
  std::optional<int64_t> position(const std::string& id);
  bool remove(const std::string& id);                          // false: there was none

  const std::string& address() const { return address_; }

 private:
  struct Reply;
  // Sends one command (argv form, binary-safe); reconnects first when the connection is broken.
  Reply command(const std::vector<std::string>& args);
  void connect();

  std::string host_;
  int port_ = 6379;
  std::string address_;  // "HOST:PORT" for messages
  int64_t ttl_seconds_;
  Metrics& metrics_;
  std::mutex mutex_;
  redisContext* context_ = nullptr;
};

}  // namespace vkssm::serve
