#pragma once
// `vkssm serve` as a class, so the tests run it in-process: load a model, start() serving HTTP on
// background threads, stop() draining. The command (serve_command.cpp) adds flags and signals.
#include <cstdint>
#include <memory>
#include <string>

#include "engine/vkssm.hpp"

namespace vkssm::serve {

struct ServeOptions {
  std::string model_path;
  LoadOptions load;                  // load.max_streams = sessions held at once
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (see Server::port)
  std::string redis_url;             // "": sessions live in this process only
  std::string api_key;               // "": no authentication
  size_t max_body_bytes = 1 << 20;   // larger requests get 413
  int64_t idle_timeout_s = 600;      // sessions unused this long are freed (and expire in Redis)
  int max_tokens = 4096;             // the most tokens one request may generate
};

class Server {
 public:
  // Loads the model and its tokenizer and connects to Redis. Throws vkssm::Error.
  explicit Server(ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and serves on background threads. Throws vkssm::Error when the address is unusable.
  void start();
  // The bound port (after start()).
  int port() const;
  // Stops accepting connections, answers the requests in progress and finishes the step loop's
  // work. Sessions were persisted after every request that changed them. Idempotent.
  void stop();
  const Model& model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vkssm::serve
