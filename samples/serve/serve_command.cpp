#include "samples/serve/serve_command.h"

#include <csignal>
#include <iostream>

#include "samples/load_options.h"
#include "samples/serve/server.h"

namespace vkssm::cli {

const std::vector<Flag> kServeFlags = {
    {"--model", "PATH", "checkpoint folder or GGUF file: a token model, or a speech-command model for audio sessions"},
    {"--backend", "NAME", kBackendHelp},
    {"--device", "N", "Vulkan device index (default: $VKSSM_DEVICE, else the best one)"},
    {"--threads", "N", kThreadsHelp},
    {"--weights", "TYPE", "auto (default), f32, f16, q8_0, q4_0, q4_k, q5_k or q6_k"},
    {"--host", "ADDR", "address to listen on (default 127.0.0.1)"},
    {"--port", "N", "port to listen on; 0 = any free port (default 8080)"},
    {"--ws-port", "N", "port of the WebSocket audio endpoint; 0 = any free port (default: --port + 1)"},
    {"--max-streams", "N", "sessions held at once, all stepped together (default 8)"},
    {"--redis", "URL", "keep every session's state in Redis (redis://HOST:PORT) so replicas share sessions"},
    {"--api-key", "KEY", "require 'Authorization: Bearer KEY' on every endpoint but /health"},
    {"--idle-timeout", "S", "free sessions unused for S seconds (default 600)"},
    {"--max-body", "BYTES", "largest request body or audio message accepted (default 1048576)"},
    {"--max-tokens", "N", "most tokens one request may generate (default 4096)"},
    {"--audio-backlog", "S", "seconds of audio a session may have waiting before its socket is not read (default 2)"},
    {"--frames-per-step", "F", "audio sessions: hops per session in each batched step, 1..64 (default 1), as for vkssm listen"},
};

const char* const kServeDetails =
    "Endpoints: GET /health, GET /metrics, GET /v1/models, POST /v1/sessions,\n"
    "POST /v1/sessions/ID/tokens, POST /v1/sessions/ID/generate, POST /v1/sessions/ID/fork,\n"
    "DELETE /v1/sessions/ID, POST /v1/completions (see README.md). With a speech-command model\n"
    "(models/s4d/speech-commands): WebSocket GET /v1/sessions/ID/audio on --ws-port, 16 kHz s16le PCM\n"
    "in, one JSON text message per detected command out. Every active session advances in one\n"
    "batched model step. SIGTERM or SIGINT: finish the requests in progress, then exit.\n";

int cmd_serve(const Args& args) {
  serve::ServeOptions opt;
  opt.model_path = args.get("--model");
  opt.load = load_options(args);
  opt.load.max_streams = static_cast<int>(parse_int("--max-streams", args.get_or("--max-streams", "8"), 1, 1024));
  opt.host = args.get_or("--host", "127.0.0.1");
  opt.port = static_cast<int>(parse_int("--port", args.get_or("--port", "8080"), 0, 65535));
  if (args.has("--ws-port")) opt.ws_port = static_cast<int>(parse_int("--ws-port", args.get("--ws-port"), 0, 65535));
  opt.redis_url = args.get_or("--redis", "");
  opt.api_key = args.get_or("--api-key", "");
  opt.idle_timeout_s = parse_int("--idle-timeout", args.get_or("--idle-timeout", "600"), 1, 1 << 30);
  opt.max_body_bytes = static_cast<size_t>(parse_int("--max-body", args.get_or("--max-body", "1048576"), 1, 1 << 30));
  opt.max_tokens = static_cast<int>(parse_int("--max-tokens", args.get_or("--max-tokens", "4096"), 1, 1 << 20));
  opt.max_audio_backlog_s = parse_float("--audio-backlog", args.get_or("--audio-backlog", "2"), 0.0f, 3600.0f);
  opt.load.frames_per_step =
      static_cast<int>(parse_int("--frames-per-step", args.get_or("--frames-per-step", "1"), 1, 64));

  // Block the signals before any thread starts so that every thread inherits the mask and only
  // sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  serve::Server server(opt);
  server.start();
  const ModelInfo& info = server.model().info();
  report_backend_choice(info);
  std::cerr << "vkssm serve: " << info.architecture << " on " << info.backend << " (" << info.device_name << "), "
            << server.model().capacity() << " sessions, listening on http://" << opt.host << ":" << server.port()
            << " and ws://" << opt.host << ":" << server.ws_port()
            << (opt.redis_url.empty() ? "" : ", sessions in " + opt.redis_url) << std::endl;
  int signal = 0;
  sigwait(&stop_signals, &signal);
  std::cerr << "vkssm serve: " << (signal == SIGTERM ? "SIGTERM" : "SIGINT")
            << ": finishing the requests in progress" << std::endl;
  server.stop();
  return 0;
}

}  // namespace vkssm::cli
