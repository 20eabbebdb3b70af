#pragma once
// `vkssm serve` as a class, so the tests run it in-process: load a model, start() serving HTTP (and
// the WebSocket audio endpoint, websocket_server.h) on background threads, stop() draining. The
// command (serve_command.cpp) adds flags and signals. A token model serves the token endpoints; a
// speech-command model (a frame model with a speech_commands section) serves audio sessions.
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
  int ws_port = -1;                  // WebSocket audio endpoint; -1: port + 1 (any free one when port is 0)
  std::string redis_url;             // "": sessions live in this process only
  std::string api_key;               // "": no authentication
  size_t max_body_bytes = 1 << 20;   // larger requests get 413, larger audio messages close with 1009
  // Audio a session may have waiting for the step loop, in seconds: past it, its socket is not read
  // until the loop catches up, so TCP flow control slows a client that sends faster than real time
  // (a file streamed at once) and a session's memory stays bounded whatever the client sends.
  double max_audio_backlog_s = 2.0;
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
  // The WebSocket audio endpoint's bound port (after start()).
  int ws_port() const;
  // Stops accepting connections, answers the requests in progress and finishes the step loop's
  // work. Sessions were persisted after every request that changed them. Idempotent.
  void stop();
  const Model& model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vkssm::serve
