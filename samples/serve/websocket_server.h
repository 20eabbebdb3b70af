#pragma once
// The WebSocket side of `vkssm serve`: GET /v1/sessions/{id}/audio, audio in and command events
// out for frame models (the speech-command model).
//
// Transport only: Boost.Beast (Debian libboost-dev) over Boost.Asio, one I/O thread for every
// connection plus a few worker threads for what blocks (waiting for the step loop, Redis). The
// session side (checks, Redis, the step loop's Attach job) is http_api.h's open_audio_session
// and end_audio_session; the audio itself goes to the step loop through the session's AudioFeed.
//
// Its own port: cpp-httplib owns the HTTP port's connections and has no way to hand one over to
// a WebSocket library, so the endpoint listens on --ws-port (default: --port + 1). A load
// balancer in front routes the upgrade requests there (scripts/cluster_check.sh's HAProxy
// config), so clients still see one address.
//
// Protocol: binary messages of 16 kHz signed 16-bit little-endian mono PCM, any length (an odd
// byte waits for the next message); an EMPTY binary message means "end of audio": the rest is
// processed, its events sent, then the server closes with 1000 "end of audio" and the session
// ends. Each detection is one text message, the JSON line `vkssm listen --json -` prints for the
// same audio. Closing the socket ends the session at once. Text messages close the socket with
// 1008 (policy), a message over the size limit with 1009 (too big), both with a reason.
#include <cstddef>
#include <memory>
#include <string>

namespace vkssm::serve {

struct ApiContext;
class Batcher;

// --audio-backlog's seconds as 16 kHz samples (at least one analysis window and hop, 35 ms).
int64_t audio_backlog_samples(double seconds);

class WebSocketServer {
 public:
  // `max_message_bytes`: the largest binary message accepted (--max-body). `max_backlog_samples`:
  // a connection stops reading while its session has more samples than this waiting for the step
  // loop (--audio-backlog), and reads on once the loop has caught up.
  WebSocketServer(ApiContext& api, Batcher& batcher, size_t max_message_bytes, int64_t max_backlog_samples);
  ~WebSocketServer();
  WebSocketServer(const WebSocketServer&) = delete;
  WebSocketServer& operator=(const WebSocketServer&) = delete;

  // Binds (port 0: any free port) and serves on background threads. Throws vkssm::Error when the
  // address is unusable. Returns the bound port.
  int start(const std::string& host, int port);
  // Stops accepting, closes every open connection with 1001 and joins the threads. Idempotent.
  void stop();

  struct Impl;  // public so the connections in websocket_server.cpp can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vkssm::serve
