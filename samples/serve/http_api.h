#pragma once
// The HTTP endpoints of `vkssm serve` (routes, JSON in and out, error mapping). They only check
// requests and translate them to step-loop jobs (batcher.h) and Redis calls (redis_store.h).
#include <atomic>
#include <memory>
#include <string>

#include "engine/vkssm.hpp"
#include "host/tokenizer.h"
#include "samples/serve/batcher.h"
#include "samples/serve/metrics.h"
#include "samples/serve/redis_store.h"

namespace httplib {
class Server;
}

namespace vkssm::serve {

struct ApiContext {
  const ModelInfo* info = nullptr;
  std::string model_name;             // the model folder's name, as /v1/models reports it
  const Tokenizer* tokenizer = nullptr;  // nullptr: prompts must be ids, replies carry no text
  Batcher* batcher = nullptr;
  RedisStore* redis = nullptr;        // nullptr: sessions live in this process only
  Metrics* metrics = nullptr;
  std::string api_key;
  int max_tokens = 4096;
  std::atomic<bool> draining{false};  // set by Server::stop(): new work gets 503
};

void add_routes(httplib::Server& http, ApiContext& api);

}  // namespace vkssm::serve
