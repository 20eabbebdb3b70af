// `vkssm serve` with the speech-command model: WebSocket audio sessions against the in-process
// Listener (what `vkssm listen --json` prints), and every refusal and close with its exact text.
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/listener.h"
#include "host/audio/log_mel.h"
#include "host/audio/resampler.h"
#include "host/audio/wav_reader.h"
#include "samples/listen_event_json.h"
#include "samples/serve/metrics.h"
#include "samples/serve/redis_store.h"
#include "samples/serve/server.h"

extern char** environ;

namespace vkssm {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using serve::Server;
using serve::ServeOptions;

const std::string kCommandModel = std::string(VKSSM_SOURCE_DIR) + "/models/s4d/speech-commands";
const std::string kTokenModel = std::string(VKSSM_SOURCE_DIR) + "/models/mamba1/tiny-shakespeare";
constexpr int kDemoFiles = 4;

ServeOptions audio_options(int streams = 4) {
  ServeOptions o;
  o.model_path = kCommandModel;
  o.load.backend = BackendKind::Reference;
  o.load.max_streams = streams;
  o.port = 0;
  return o;
}

// A demo recording as 16 kHz signed 16-bit PCM, converted with the project's WAV reader and
// resampler (what a client would send).
std::vector<int16_t> demo_pcm(int i) {
  WavAudio w = read_wav_file(kCommandModel + "/demo/command-" + std::to_string(i) + ".wav");
  std::vector<float> x = resample(w.samples, w.sample_rate, 16000);
  std::vector<int16_t> pcm(x.size());
  for (size_t k = 0; k < x.size(); ++k)
    pcm[k] = int16_t(std::lround(std::clamp(x[k] * 32768.0f, -32768.0f, 32767.0f)));
  return pcm;
}

std::string little_endian_bytes(const std::vector<int16_t>& pcm) {
  std::string bytes(pcm.size() * 2, '\0');
  for (size_t k = 0; k < pcm.size(); ++k) {
    bytes[2 * k] = char(uint16_t(pcm[k]) & 0xff);
    bytes[2 * k + 1] = char(uint16_t(pcm[k]) >> 8);
  }
  return bytes;
}

// What `vkssm listen --json -` prints for each recording: the in-process Listener, one stream
// per recording, each event as listen's JSON line.
std::vector<std::vector<std::string>> listener_lines(const std::vector<std::vector<int16_t>>& recordings,
                                                    BackendKind backend = BackendKind::Reference) {
  ListenerOptions o;
  o.load.backend = backend;
  o.load.max_streams = int(recordings.size());
  Listener listener(kCommandModel, o);
  for (const auto& pcm : recordings) {
    const int s = listener.open_stream(16000);
    listener.push_s16(s, pcm.data(), pcm.size());
    listener.finish(s);
  }
  while (listener.process() > 0) {
  }
  std::vector<std::vector<std::string>> lines(recordings.size());
  for (const ListenerEvent& e : listener.poll()) lines[size_t(e.stream)].push_back(cli::listen_event_json(e, 0, "-").dump());
  return lines;
}

// A WebSocket client (Boost.Beast, blocking). A watchdog shuts the socket down after a minute so
// that a server that never answers fails the test instead of hanging it.
class WsClient {
 public:
  ~WsClient() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
  }

  // The handshake's HTTP status: 101 when upgraded; `body()` holds a refusal's JSON.
  int connect(int port, const std::string& target, const std::string& authorization = "") {
    ws_.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), uint16_t(port)));
    const int fd = ws_.next_layer().native_handle();
    watchdog_ = std::thread([this, fd] {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!wake_.wait_for(lock, std::chrono::seconds(60), [this] { return done_; })) ::shutdown(fd, SHUT_RDWR);
    });
    ws_.set_option(websocket::stream_base::decorator([authorization](websocket::request_type& req) {
      if (!authorization.empty()) req.set(http::field::authorization, authorization);
    }));
    websocket::response_type res;
    // The asynchronous handshake: Beast 1.74's blocking one drops a refusal's response.
    ws_.async_handshake(res, "127.0.0.1:" + std::to_string(port), target, [](beast::error_code) {});
    io_.run();
    io_.restart();
    body_ = res.body();
    headers_ = res.base();
    return int(res.result_int());
  }

  json body() const { return json::parse(body_, nullptr, false); }
  std::string header(http::field f) const { return std::string(headers_[f]); }

  void send_binary(const std::string& bytes) {
    ws_.binary(true);
    ws_.write(net::buffer(bytes));
  }
  void send_text(const std::string& text) {
    ws_.text(true);
    ws_.write(net::buffer(text));
  }

  // Text messages until the server closes the connection.
  std::vector<std::string> read_until_close() {
    std::vector<std::string> messages;
    for (;;) {
      beast::flat_buffer buffer;
      beast::error_code ec;
      ws_.read(buffer, ec);
      if (ec == websocket::error::closed) break;
      if (ec) {
        ADD_FAILURE() << "reading: " << ec.message();
        break;
      }
      EXPECT_TRUE(ws_.got_text());
      messages.push_back(beast::buffers_to_string(buffer.data()));
    }
    return messages;
  }
  int close_code() const { return int(ws_.reason().code); }
  std::string close_reason() const { return std::string(ws_.reason().reason.data(), ws_.reason().reason.size()); }
  void close() { ws_.close(websocket::close_code::normal); }

 private:
  net::io_context io_;
  websocket::stream<tcp::socket> ws_{io_};
  std::string body_;
  http::response_header<> headers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread watchdog_;
};

struct Reply {
  int status = 0;
  json body;
};

Reply call(int port, const std::string& method, const std::string& path, const std::string& key = "") {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  httplib::Headers headers;
  if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
  httplib::Result r = method == "GET"      ? client.Get(path.c_str(), headers)
                      : method == "DELETE" ? client.Delete(path.c_str(), headers)
                                           : client.Post(path.c_str(), headers, "{}", "application/json");
  if (!r) {
    ADD_FAILURE() << method << " " << path << ": no answer";
    return {};
  }
  return {r->status, json::parse(r->body, nullptr, false)};
}

std::string new_session(int port, const std::string& key = "") {
  Reply r = call(port, "POST", "/v1/sessions", key);
  EXPECT_EQ(r.status, 200) << r.body;
  return r.body.value("id", "");
}

json error_body(const std::string& type, const std::string& message) {
  return {{"error", {{"message", message}, {"type", type}}}};
}

// A session ends on the worker that sees its socket close, just after the client does: wait for
// DELETE to answer 404 (bounded; it is a matter of milliseconds).
void expect_session_ends(int port, const std::string& id, const std::string& key = "") {
  Reply r;
  for (int i = 0; i < 500; ++i) {
    r = call(port, "DELETE", "/v1/sessions/" + id, key);
    if (r.status == 404) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(r.status, 404) << r.body;
}

std::string audio_path(const std::string& id) { return "/v1/sessions/" + id + "/audio"; }

class ServeAudioTest : public testing::Test {
 protected:
  void start(ServeOptions o = audio_options()) {
    server_ = std::make_unique<Server>(std::move(o));
    server_->start();
    port_ = server_->port();
    ws_port_ = server_->ws_port();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  // A session per recording, each sent whole, then ended: each socket gets exactly `want`'s lines.
  void expect_lines(const std::vector<std::vector<int16_t>>& recordings,
                    const std::vector<std::vector<std::string>>& want) {
    std::vector<std::unique_ptr<WsClient>> clients;
    for (const auto& pcm : recordings) {
      clients.push_back(std::make_unique<WsClient>());
      ASSERT_EQ(clients.back()->connect(ws_port_, audio_path(new_session(port_))), 101);
      clients.back()->send_binary(little_endian_bytes(pcm));
    }
    for (size_t i = 0; i < clients.size(); ++i) {
      clients[i]->send_binary("");
      EXPECT_EQ(clients[i]->read_until_close(), want[i]) << "recording " << i;
    }
  }
  std::unique_ptr<Server> server_;
  int port_ = 0, ws_port_ = 0;
};

// Four clients at once, each streaming a recording in uneven pieces (odd byte counts split
// across messages), get exactly the lines `vkssm listen --json -` gives for that audio.
TEST_F(ServeAudioTest, StreamedRecordingsGetTheListenersEvents) {
  std::vector<std::vector<int16_t>> recordings;
  for (int i = 0; i < kDemoFiles; ++i) recordings.push_back(demo_pcm(i));
  const std::vector<std::vector<std::string>> want = listener_lines(recordings);
  size_t events = 0;
  for (const auto& w : want) events += w.size();
  ASSERT_GE(events, size_t(kDemoFiles));  // the recordings hold commands the model finds

  start();
  std::vector<std::vector<std::string>> got(kDemoFiles);
  std::vector<int> codes(kDemoFiles);
  std::vector<std::string> reasons(kDemoFiles), ids(kDemoFiles);
  std::vector<std::thread> clients;
  for (int i = 0; i < kDemoFiles; ++i) {
    clients.emplace_back([&, i] {
      ids[size_t(i)] = new_session(port_);
      WsClient ws;
      ASSERT_EQ(ws.connect(ws_port_, audio_path(ids[size_t(i)])), 101);
      const std::string bytes = little_endian_bytes(recordings[size_t(i)]);
      const size_t sizes[] = {1, 3, 4097, 999, 16001, 2, 12345};
      size_t at = 0;
      for (size_t k = size_t(i); at < bytes.size(); ++k) {
        const size_t n = std::min(sizes[k % std::size(sizes)], bytes.size() - at);
        ws.send_binary(bytes.substr(at, n));
        at += n;
      }
      ws.send_binary("");  // end of audio
      got[size_t(i)] = ws.read_until_close();
      codes[size_t(i)] = ws.close_code();
      reasons[size_t(i)] = ws.close_reason();
    });
  }
  for (auto& t : clients) t.join();
  uint64_t frames = 0;
  for (int i = 0; i < kDemoFiles; ++i) {
    EXPECT_EQ(got[size_t(i)], want[size_t(i)]) << "recording " << i;
    EXPECT_EQ(codes[size_t(i)], 1000);
    EXPECT_EQ(reasons[size_t(i)], "end of audio");
    // The session ended with its audio.
    EXPECT_EQ(call(port_, "DELETE", "/v1/sessions/" + ids[size_t(i)]).status, 404);
    frames += log_mel_frame_count(recordings[size_t(i)].size());
  }
  // Every frame went through the step loop's batched step_frames.
  httplib::Client client("127.0.0.1", port_);
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("vkssm_audio_frames_total " + std::to_string(frames) + "\n"), std::string::npos)
      << metrics->body;
}

// Backpressure: a client sending a recording far faster than real time, with a backlog of 50 ms
// allowed, is held back (its socket stops being read, the pauses are counted) and still gets
// exactly the listener's events: nothing is dropped.
TEST_F(ServeAudioTest, AFastSenderIsHeldBackWithoutLosingAudio) {
  const std::vector<std::vector<int16_t>> recordings = {demo_pcm(1)};
  const std::vector<std::vector<std::string>> want = listener_lines(recordings);
  ASSERT_FALSE(want[0].empty());
  ServeOptions o = audio_options(1);
  o.max_audio_backlog_s = 0.05;
  start(o);
  WsClient ws;
  ASSERT_EQ(ws.connect(ws_port_, audio_path(new_session(port_))), 101);
  ws.send_binary(little_endian_bytes(recordings[0]));  // 8 s of audio in one message
  ws.send_binary("");
  EXPECT_EQ(ws.read_until_close(), want[0]);
  EXPECT_EQ(ws.close_code(), 1000);
  httplib::Client client("127.0.0.1", port_);
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  const std::string key = "\nvkssm_audio_read_pauses_total ";  // the value line, not # HELP
  const size_t at = metrics->body.find(key);
  ASSERT_NE(at, std::string::npos) << metrics->body;
  EXPECT_GT(std::stod(metrics->body.substr(at + key.size())), 0.0) << metrics->body;
}

// The batched step on the GPU path (validation layer on): the same lines as the Vulkan listener.
TEST_F(ServeAudioTest, VulkanBackendGetsTheListenersEvents) {
  const std::vector<std::vector<int16_t>> recordings = {demo_pcm(2), demo_pcm(3)};
  const std::vector<std::vector<std::string>> want = listener_lines(recordings, BackendKind::Vulkan);
  ASSERT_FALSE(want[0].empty());  // both recordings hold commands the model finds
  ASSERT_FALSE(want[1].empty());
  ServeOptions o = audio_options(2);
  o.load.backend = BackendKind::Vulkan;
  start(o);
  expect_lines(recordings, want);
}

// --frames-per-step 3: sessions step three hops at a time (the last ones padded), and the lines are
// those of the listener's one hop per step.
TEST_F(ServeAudioTest, SeveralHopsPerStepGetTheSameEvents) {
  const std::vector<std::vector<int16_t>> recordings = {demo_pcm(1), demo_pcm(3)};
  const std::vector<std::vector<std::string>> want = listener_lines(recordings, BackendKind::Vulkan);
  ASSERT_FALSE(want[0].empty());
  ServeOptions o = audio_options(2);
  o.load.backend = BackendKind::Vulkan;
  o.load.frames_per_step = 3;
  start(o);
  expect_lines(recordings, want);
}

TEST_F(ServeAudioTest, RefusedHandshakesAnswerTheApisJsonErrors) {
  ServeOptions o = audio_options();
  o.api_key = "secret";
  start(o);
  const std::string id = new_session(port_, "secret");
  {
    WsClient ws;
    EXPECT_EQ(ws.connect(ws_port_, audio_path(id)), 401);
    EXPECT_EQ(ws.body(), error_body("authentication_error", "missing or wrong API key: send 'Authorization: Bearer KEY'"));
    EXPECT_EQ(ws.header(http::field::www_authenticate), "Bearer");
  }
  {
    WsClient ws;
    EXPECT_EQ(ws.connect(ws_port_, audio_path(id), "Bearer wrong"), 401);
  }
  const std::string unknown(32, 'a');
  for (const std::string& bad : {unknown, std::string("nope")}) {
    WsClient ws;
    EXPECT_EQ(ws.connect(ws_port_, audio_path(bad), "Bearer secret"), 404);
    EXPECT_EQ(ws.body(), error_body("not_found_error", "no session '" + bad + "'"));
  }
  {
    WsClient ws;
    EXPECT_EQ(ws.connect(ws_port_, "/v1/sessions/" + id + "/tokens", "Bearer secret"), 404);
    EXPECT_EQ(ws.body(), error_body("not_found_error", "no endpoint GET /v1/sessions/" + id + "/tokens"));
  }
  {
    // An upgrade Beast's accept would refuse is refused before the session is touched.
    httplib::Client client("127.0.0.1", ws_port_);
    auto r = client.Get(audio_path(id).c_str(),
                        {{"Authorization", "Bearer secret"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(json::parse(r->body),
              error_body("invalid_request_error",
                         "the WebSocket upgrade needs a Sec-WebSocket-Key header and Sec-WebSocket-Version: 13"));
  }
  // A session takes one connection at a time.
  WsClient first;
  ASSERT_EQ(first.connect(ws_port_, audio_path(id), "Bearer secret"), 101);
  {
    WsClient second;
    EXPECT_EQ(second.connect(ws_port_, audio_path(id), "Bearer secret"), 409);
    EXPECT_EQ(second.body(), error_body("conflict_error", "session '" + id + "' already has an audio connection"));
  }
  // The HTTP port points to the WebSocket one.
  httplib::Client client("127.0.0.1", port_);
  auto r = client.Get(audio_path(id).c_str(), {{"Authorization", "Bearer secret"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 426);
  EXPECT_EQ(json::parse(r->body),
            error_body("invalid_request_error", "GET /v1/sessions/{id}/audio is a WebSocket endpoint served on port " +
                                                    std::to_string(ws_port_) + " (--ws-port)"));
  // Closing the socket ends the session.
  first.close();
  expect_session_ends(port_, id, "secret");
}

TEST_F(ServeAudioTest, TokenEndpointsOnAFrameSessionAreBadRequests) {
  start(audio_options(1));
  const std::string id = new_session(port_);
  const std::string tail = " is for token models: this server's model (s4d) reads audio frames; stream audio to the "
                           "WebSocket GET /v1/sessions/{id}/audio (port " + std::to_string(ws_port_) + ")";
  for (const std::string endpoint : {"tokens", "generate", "fork"}) {
    Reply r = call(port_, "POST", "/v1/sessions/" + id + "/" + endpoint);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body, error_body("invalid_request_error", "POST /v1/sessions/{id}/" + endpoint + tail));
  }
  Reply r = call(port_, "POST", "/v1/completions");
  EXPECT_EQ(r.body, error_body("invalid_request_error", "POST /v1/completions" + tail));
}

TEST_F(ServeAudioTest, TextAndOversizedMessagesCloseWithAReason) {
  ServeOptions o = audio_options(2);
  o.max_body_bytes = 1000;
  start(o);
  {
    const std::string id = new_session(port_);
    WsClient ws;
    ASSERT_EQ(ws.connect(ws_port_, audio_path(id)), 101);
    ws.send_binary(std::string(999, '\0'));  // odd, within the limit
    ws.send_text("hello");
    EXPECT_EQ(ws.read_until_close(), std::vector<std::string>{});
    EXPECT_EQ(ws.close_code(), 1008);
    EXPECT_EQ(ws.close_reason(), "text messages are not accepted: send binary 16 kHz signed 16-bit little-endian mono PCM");
    expect_session_ends(port_, id);
  }
  {
    const std::string id = new_session(port_);
    WsClient ws;
    ASSERT_EQ(ws.connect(ws_port_, audio_path(id)), 101);
    ws.send_binary(std::string(1001, '\0'));
    EXPECT_EQ(ws.read_until_close(), std::vector<std::string>{});
    EXPECT_EQ(ws.close_code(), 1009);
    EXPECT_EQ(ws.close_reason(), "an audio message may hold at most 1000 bytes (--max-body)");
    expect_session_ends(port_, id);
  }
}

TEST_F(ServeAudioTest, DeleteClosesTheSocket) {
  start(audio_options(1));
  const std::string id = new_session(port_);
  WsClient ws;
  ASSERT_EQ(ws.connect(ws_port_, audio_path(id)), 101);
  ws.send_binary(std::string(3200, '\0'));
  Reply r = call(port_, "DELETE", "/v1/sessions/" + id);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ws.read_until_close(), std::vector<std::string>{});
  EXPECT_EQ(ws.close_code(), 1000);
  EXPECT_EQ(ws.close_reason(), "session deleted");
  // Its slot is free again.
  EXPECT_EQ(call(port_, "POST", "/v1/sessions").status, 200);
}

TEST(ServeAudio, ATokenModelsSessionIsRefused) {
  ServeOptions o;
  o.model_path = kTokenModel;
  o.load.backend = BackendKind::Reference;
  o.load.max_streams = 1;
  o.port = 0;
  Server server(o);
  server.start();
  const std::string id = new_session(server.port());
  WsClient ws;
  EXPECT_EQ(ws.connect(server.ws_port(), audio_path(id)), 400);
  EXPECT_EQ(ws.body(), error_body("invalid_request_error",
                                  "session '" + id + "' is a session of a token model, which reads token ids, not "
                                  "audio: the audio endpoint needs a server started with a speech-command model "
                                  "(--model models/s4d/speech-commands)"));
  server.stop();
}

// A throwaway redis-server (no persistence) on a free port.
class RedisServer {
 public:
  RedisServer() {
    net::io_context io;
    tcp::acceptor probe(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port_ = probe.local_endpoint().port();
    probe.close();
    std::vector<std::string> words = {"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--logfile", "/dev/null"};
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
    serve::Metrics metrics;
    for (int i = 0; pid_ > 0 && i < 100 && !ready_; ++i) {
      try {
        serve::RedisStore ping(url(), 0, metrics);
        ready_ = true;
      } catch (const Error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
  ~RedisServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool ready() const { return ready_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  bool ready_ = false;
};

// With --redis, the replica that takes the WebSocket need not be the one that created the
// session; when the audio ends, so does the stored session, on every replica.
TEST(ServeAudioRedis, AnotherServerTakesTheConnection) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << "redis-server did not start (scripts/setup.sh installs it)";
  ServeOptions o = audio_options(2);
  o.redis_url = redis.url();
  Server a(o), b(o);
  a.start();
  b.start();
  const std::vector<int16_t> pcm = demo_pcm(3);
  const std::vector<std::string> want = listener_lines({pcm})[0];
  ASSERT_FALSE(want.empty());

  const std::string id = new_session(a.port());
  {
    WsClient ws;
    ASSERT_EQ(ws.connect(b.ws_port(), audio_path(id)), 101);
    ws.send_binary(little_endian_bytes(pcm));
    ws.send_binary("");
    EXPECT_EQ(ws.read_until_close(), want);
    EXPECT_EQ(ws.close_code(), 1000);
  }
  // Gone from Redis once the worker that saw the close has ended it: server a, which still holds
  // its copy from the creation, then finds the session deleted.
  int status = 0;
  for (int i = 0; i < 500 && status != 404; ++i) {
    WsClient ws;
    status = ws.connect(a.ws_port(), audio_path(id));
    if (status != 404) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(status, 404);
  a.stop();
  b.stop();
}

}  // namespace
}  // namespace vkssm
