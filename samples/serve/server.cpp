#include "samples/serve/server.h"

#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "samples/serve/batcher.h"
#include "samples/serve/http_api.h"
#include "samples/serve/metrics.h"
#include "samples/serve/redis_store.h"
#include "samples/serve/websocket_server.h"

namespace vkssm::serve {

struct Server::Impl {
  ServeOptions options;
  Metrics metrics;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<RedisStore> redis;
  std::unique_ptr<SpeechCommandsConfig> speech;  // frame models
  std::unique_ptr<Batcher> batcher;
  ApiContext api;
  std::unique_ptr<WebSocketServer> ws;
  httplib::Server http;
  std::thread listener;
  int port = 0;
  bool started = false;
};

Server::Server(ServeOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  s.model = load_model(s.options.model_path, s.options.load);
  const ModelInfo& info = s.model->info();
  if (info.vocab_size > 0) {
    s.tokenizer = load_tokenizer_for_path(s.options.model_path);
  } else {
    // A frame model is served as audio sessions: it needs the speech-command front-end's config.
    s.speech = std::make_unique<SpeechCommandsConfig>(read_speech_commands(s.options.model_path, {}));
    check_speech_model(*s.speech, info);
  }
  if (!s.options.redis_url.empty())
    s.redis = std::make_unique<RedisStore>(s.options.redis_url, s.options.idle_timeout_s, s.metrics);
  s.batcher = std::make_unique<Batcher>(*s.model, s.metrics, std::chrono::seconds(s.options.idle_timeout_s),
                                        s.speech.get(), s.options.load.frames_per_step);

  s.api.info = &info;
  std::filesystem::path path(s.options.model_path);
  s.api.model_name = (path.has_filename() ? path.filename() : path.parent_path().filename()).string();
  s.api.tokenizer = s.tokenizer.get();
  s.api.batcher = s.batcher.get();
  s.api.redis = s.redis.get();
  s.api.metrics = &s.metrics;
  s.api.api_key = s.options.api_key;
  s.api.max_tokens = s.options.max_tokens;
  s.http.set_payload_max_length(s.options.max_body_bytes);
  // A handler thread per session that may be generating at once, plus a few for health checks,
  // metrics and requests that are answered without the step loop (httplib's default pool is
  // max(8, cores - 1) threads, which would cap the batch at 8 on a small machine).
  const size_t handlers = static_cast<size_t>(s.model->capacity()) + 4;
  s.http.new_task_queue = [handlers] { return new httplib::ThreadPool(handlers); };
  // One request per connection. httplib gives each connection a pool thread until it closes, so
  // an idle keep-alive connection (a load balancer keeps many) would hold its thread for the
  // keep-alive timeout (5 s) while new connections wait in the queue behind it: measured through
  // HAProxy with 64 clients and two 32-stream replicas, p99 latency fell from 3.7 s to 0.37 s
  // and requests/s rose from 92 to 288 with this. A new local TCP connection costs far less.
  s.http.set_keep_alive_max_count(1);
  // httplib's default also sets SO_REUSEPORT, which lets a second server bind the same port and
  // silently take half the connections; SO_REUSEADDR alone still allows a quick restart.
  s.http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  add_routes(s.http, s.api);
  s.ws = std::make_unique<WebSocketServer>(s.api, *s.batcher, s.options.max_body_bytes,
                                           audio_backlog_samples(s.options.max_audio_backlog_s));
}

Server::~Server() { stop(); }

void Server::start() {
  Impl& s = *impl_;
  if (s.started) return;
  // The WebSocket port first: it does not depend on the HTTP port's outcome, and a failure there
  // is undone by stop(), while httplib cannot give back a port it bound but did not listen on.
  const int ws_port = s.options.ws_port >= 0 ? s.options.ws_port : s.options.port == 0 ? 0 : s.options.port + 1;
  s.api.ws_port = s.ws->start(s.options.host, ws_port);
  s.port = s.options.port == 0 ? s.http.bind_to_any_port(s.options.host)
                               : (s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1);
  if (s.port <= 0) {
    s.ws->stop();
    throw Error("cannot listen on " + s.options.host + ":" + std::to_string(s.options.port) +
                " (address in use, or not an address of this machine)");
  }
  s.batcher->start();
  s.listener = std::thread([&s] { s.http.listen_after_bind(); });
  // httplib's stop() does nothing before the listener runs, so a stop() right after start()
  // would leave it listening forever: return only once it is up.
  while (!s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  s.started = true;
}

int Server::port() const { return impl_->port; }
int Server::ws_port() const { return impl_->api.ws_port; }

void Server::stop() {
  Impl& s = *impl_;
  if (!s.started) return;
  s.started = false;
  // New requests get 503 at once; httplib's stop() then closes the listening socket and waits
  // for the handlers in progress, which wait for their step-loop jobs.
  s.api.draining = true;
  s.http.stop();
  if (s.listener.joinable()) s.listener.join();
  // Open audio connections are closed with 1001 (their sessions end) while the step loop still
  // runs to take their Delete jobs.
  s.ws->stop();
  s.batcher->stop();
}

const Model& Server::model() const { return *impl_->model; }

}  // namespace vkssm::serve
