#include "samples/serve/websocket_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <mutex>
#include <optional>
#include <regex>
#include <thread>
#include <vector>

#include "host/audio/log_mel.h"
#include "host/audio/wav_reader.h"
#include "host/error.h"
#include "samples/serve/batcher.h"
#include "samples/serve/http_api.h"
#include "samples/serve/json_fields.h"

namespace vkssm::serve {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kReadChunk = 64 * 1024;               // bytes taken from the socket per read
constexpr size_t kRequestLimit = 16 * 1024;            // the upgrade request's header and body
constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr size_t kWorkers = 4;                         // threads for the blocking session calls
constexpr size_t kMaxCloseReason = 123;                // RFC 6455: a close frame's reason bytes
// While a session's backlog is full, how often its connection looks again: one hop, the time the
// step loop takes to move every session on by one frame in real time.
constexpr auto kBacklogPoll = std::chrono::milliseconds(10);

class Connection;

}  // namespace

struct WebSocketServer::Impl {
  Impl(ApiContext& a, Batcher& b, size_t max_message, int64_t max_backlog)
      : api(a), batcher(b), max_message_bytes(max_message), max_backlog_samples(max_backlog) {}

  void accept_next();

  ApiContext& api;
  Batcher& batcher;
  const size_t max_message_bytes;
  const int64_t max_backlog_samples;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  net::thread_pool workers{kWorkers};
  std::thread thread;
  std::mutex mutex;
  std::vector<std::weak_ptr<Connection>> connections;  // for stop()
  bool started = false;
};

namespace {

// One client: the upgrade request, then the WebSocket. Everything but event() and end() runs on
// the connection's strand; those two are called by the step loop and only post onto it.
class Connection : public AudioSink, public std::enable_shared_from_this<Connection> {
 public:
  Connection(WebSocketServer::Impl& server, tcp::socket socket)
      : server_(server), ws_(std::move(socket)), backlog_timer_(ws_.get_executor()) {}

  void start() {
    net::dispatch(ws_.get_executor(), [self = shared_from_this()] { self->read_request(); });
  }

  // Server stop: an open WebSocket is closed with 1001; a connection still in its HTTP request
  // is just dropped.
  void shutdown() {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      if (self->attached_)
        self->close_with(websocket::close_code::going_away, "the server is shutting down");
      else
        self->drop();
    });
  }

  void event(std::string json_text) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), text = std::move(json_text)]() mutable {
      self->queue_.push_back(std::move(text));
      self->write_next();
    });
  }

  void end(uint16_t close_code, std::string reason) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), close_code, reason = std::move(reason)] {
      self->close_with(close_code, reason);
    });
  }

 private:
  void read_request() {
    parser_.emplace();
    parser_->header_limit(kRequestLimit);
    parser_->body_limit(kRequestLimit);
    beast::get_lowest_layer(ws_).expires_after(kRequestTimeout);
    http::async_read(ws_.next_layer(), buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_request(ec); });
  }

  void on_request(beast::error_code ec) {
    if (ec) return drop();  // gone, timed out or not HTTP: there is no one to answer
    request_ = parser_->release();
    const std::string target(request_.target());
    const std::string path = target.substr(0, target.find('?'));
    // The same order as the HTTP port: the key before the route.
    if (auto denied = check_api_key(server_.api, std::string(request_[http::field::authorization])))
      return refuse(*denied);
    static const std::regex route("^/v1/sessions/([^/]+)/audio$");
    std::smatch match;
    if (!std::regex_match(path, match, route))
      return refuse({404, "not_found_error", "no endpoint " + std::string(request_.method_string()) + " " + path});
    if (request_.method() != http::verb::get || !websocket::is_upgrade(request_))
      return refuse({426, "invalid_request_error",
                     "GET /v1/sessions/{id}/audio is a WebSocket endpoint: send a WebSocket upgrade request"});
    // Beast's accept would refuse these too, but in plain text and after the session was taken.
    if (request_[http::field::sec_websocket_key].empty() || request_[http::field::sec_websocket_version] != "13")
      return refuse({400, "invalid_request_error",
                     "the WebSocket upgrade needs a Sec-WebSocket-Key header and Sec-WebSocket-Version: 13"});
    id_ = match[1].str();
    feed_ = std::make_shared<AudioFeed>();
    // Attaching waits for the step loop (and Redis): on a worker, never on the I/O thread. The work
    // guard keeps the I/O loop running (stop() waits for it) until the answer is back on it, so a
    // connection attached during a stop still ends its session.
    net::post(server_.workers, [self = shared_from_this(), work = net::make_work_guard(ws_.get_executor())] {
      std::optional<HttpError> refused;
      try {
        open_audio_session(self->server_.api, self->id_, self->feed_, self);
      } catch (const HttpError& e) {
        refused = e;
      } catch (const std::exception& e) {
        refused = HttpError{500, "server_error", e.what()};
      }
      net::post(self->ws_.get_executor(), [self, refused] {
        if (refused) return self->refuse(*refused);
        self->attached_ = true;
        self->accept();
      });
    });
  }

  // The handshake is answered with the API's usual JSON error, then the connection ends.
  void refuse(const HttpError& e) {
    auto res = std::make_shared<http::response<http::string_body>>(http::int_to_status(unsigned(e.status)),
                                                                   request_.version());
    res->set(http::field::content_type, "application/json");
    if (e.status == 401) res->set(http::field::www_authenticate, "Bearer");
    if (e.status == 426) res->set(http::field::upgrade, "websocket");
    if (e.status == 429) res->set(http::field::retry_after, "1");
    res->body() = dump(json{{"error", {{"message", e.message}, {"type", e.type}}}});
    res->keep_alive(false);
    res->prepare_payload();
    http::async_write(ws_.next_layer(), *res, [self = shared_from_this(), res](beast::error_code, size_t) {
      beast::error_code ignored;
      beast::get_lowest_layer(self->ws_).socket().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }

  void accept() {
    // From here the WebSocket's own timeouts apply (the close handshake's), not the request's.
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.handshake_timeout = std::chrono::seconds(10);
    ws_.set_option(timeouts);
    // The size limit is enforced in on_read, which can then give a reason with the close code.
    ws_.read_message_max(0);
    ws_.async_accept(request_, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->finish();
      self->accepted_ = true;
      self->read_next();
      self->write_next();
    });
  }

  void read_next() {
    ws_.async_read_some(buffer_, kReadChunk,
                        [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_read(ec, n); });
  }

  void on_read(beast::error_code ec, size_t n) {
    if (ec) return finish();  // the client closed (or answered our close), or the connection broke
    if (close_) return;       // closing: what still arrives is not audio any more
    if (!ws_.got_binary())
      return close_with(websocket::close_code::policy_error,
                        "text messages are not accepted: send binary 16 kHz signed 16-bit little-endian mono PCM");
    message_bytes_ += n;
    if (message_bytes_ > server_.max_message_bytes)
      return close_with(websocket::close_code::too_big, "an audio message may hold at most " +
                                                            std::to_string(server_.max_message_bytes) +
                                                            " bytes (--max-body)");
    if (end_of_audio_ && n > 0)
      return close_with(websocket::close_code::policy_error, "audio after the end of audio (an empty message)");
    push_audio();
    if (ws_.is_message_done()) {
      if (message_bytes_ == 0) {
        std::lock_guard<std::mutex> lock(feed_->mutex);
        feed_->end = true;
        end_of_audio_ = true;
      }
      message_bytes_ = 0;
      if (end_of_audio_) server_.batcher.audio_arrived();
    }
    if (backlog_full()) {
      if (server_.api.metrics) server_.api.metrics->audio_read_pauses.fetch_add(1);
      return wait_for_backlog();
    }
    read_next();
  }

  // Backpressure: more audio waits for the step loop than --audio-backlog allows. The socket is
  // not read until the loop has caught up, so the client's sends block once TCP's buffers fill;
  // no audio is dropped and nothing grows without bound.
  bool backlog_full() const {
    const int64_t stepped = feed_->frames_stepped.load(std::memory_order_acquire) * LogMelSpec::kHop;
    return samples_pushed_ - stepped > server_.max_backlog_samples;
  }
  void wait_for_backlog() {
    backlog_timer_.expires_after(kBacklogPoll);
    backlog_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->close_ || self->finished_) return;  // cancelled, or the connection is ending
      if (self->backlog_full()) return self->wait_for_backlog();
      self->read_next();
    });
  }

  // The bytes read so far, as samples (an odd byte waits for the next read), into the feed.
  void push_audio() {
    const auto* data = static_cast<const uint8_t*>(buffer_.data().data());
    const size_t size = buffer_.size();
    if (size == 0) return;
    bytes_.clear();
    if (carry_) bytes_.push_back(*carry_);
    bytes_.insert(bytes_.end(), data, data + size);
    buffer_.consume(size);
    carry_.reset();
    if (bytes_.size() % 2) carry_ = bytes_.back();
    samples_.resize(bytes_.size() / 2);
    s16le_to_float(bytes_.data(), samples_.size(), samples_.data());
    {
      std::lock_guard<std::mutex> lock(feed_->mutex);
      feed_->samples.insert(feed_->samples.end(), samples_.begin(), samples_.end());
    }
    samples_pushed_ += int64_t(samples_.size());
    server_.batcher.audio_arrived();
  }

  // Events are written one at a time (one write in flight); the close goes after the last.
  void write_next() {
    if (!accepted_ || writing_ || close_sent_ || finished_) return;
    if (!queue_.empty()) {
      writing_ = true;
      ws_.text(true);
      ws_.async_write(net::buffer(queue_.front()), [self = shared_from_this()](beast::error_code ec, size_t) {
        self->writing_ = false;
        if (ec) return self->finish();
        self->queue_.pop_front();
        self->write_next();
      });
      return;
    }
    if (close_) {
      close_sent_ = true;
      ws_.async_close(*close_, [self = shared_from_this()](beast::error_code) { self->finish(); });
    }
  }

  void close_with(uint16_t code, std::string reason) {
    if (close_ || finished_) return;
    if (reason.size() > kMaxCloseReason) reason.resize(kMaxCloseReason);
    websocket::close_reason r;
    r.code = code;
    r.reason = reason;
    close_ = r;
    write_next();
  }

  void drop() {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
    finish();
  }

  // The connection is over: so is its session.
  void finish() {
    if (finished_) return;
    finished_ = true;
    if (!attached_) return;
    net::post(server_.workers, [self = shared_from_this()] { end_audio_session(self->server_.api, self->id_); });
  }

  WebSocketServer::Impl& server_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  std::string id_;
  std::shared_ptr<AudioFeed> feed_;
  bool attached_ = false, accepted_ = false, writing_ = false, close_sent_ = false, finished_ = false;
  bool end_of_audio_ = false;
  std::deque<std::string> queue_;  // events not yet written
  std::optional<websocket::close_reason> close_;
  size_t message_bytes_ = 0;       // of the message being read
  std::optional<uint8_t> carry_;   // an odd byte from the previous read
  int64_t samples_pushed_ = 0;     // into feed_, since the connection opened
  net::steady_timer backlog_timer_;
  std::vector<uint8_t> bytes_;
  std::vector<float> samples_;
};

}  // namespace

void WebSocketServer::Impl::accept_next() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      auto c = std::make_shared<Connection>(*this, std::move(socket));
      {
        std::lock_guard<std::mutex> lock(mutex);
        std::erase_if(connections, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
        connections.push_back(c);
      }
      c->start();
    }
    accept_next();
  });
}

int64_t audio_backlog_samples(double seconds) {
  // At least a window and a hop: up to window - 1 samples wait for the next frame whatever the
  // loop does, and a smaller limit would stop reading a session that can only move with more audio.
  const int64_t floor = LogMelSpec::kWindow + LogMelSpec::kHop;
  return std::max<int64_t>(floor, int64_t(std::llround(seconds * LogMelSpec::kSampleRate)));
}

WebSocketServer::WebSocketServer(ApiContext& api, Batcher& batcher, size_t max_message_bytes,
                                 int64_t max_backlog_samples)
    : impl_(std::make_unique<Impl>(api, batcher, max_message_bytes, max_backlog_samples)) {}

WebSocketServer::~WebSocketServer() { stop(); }

int WebSocketServer::start(const std::string& host, int port) {
  Impl& s = *impl_;
  const std::string where = host + ":" + std::to_string(port);
  beast::error_code ec;
  tcp::resolver resolver(s.io);
  auto endpoints = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) throw Error("cannot listen on " + where + " for WebSocket (--ws-port): " + ec.message());
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  s.acceptor.open(endpoint.protocol(), ec);
  // SO_REUSEADDR only (a quick restart), as on the HTTP port.
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw Error("cannot listen on " + where + " for WebSocket (--ws-port): " + ec.message() +
                " (address in use, or not an address of this machine)");
  const int bound = s.acceptor.local_endpoint().port();
  s.accept_next();
  s.thread = std::thread([&s] {
    for (;;) {
      try {
        s.io.run();
        return;
      } catch (const std::exception&) {
        // A handler's failure ends that connection's work, not the server's.
      }
    }
  });
  s.started = true;
  return bound;
}

void WebSocketServer::stop() {
  Impl& s = *impl_;
  if (!s.started) return;
  s.started = false;
  net::post(s.io, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    std::lock_guard<std::mutex> lock(s.mutex);
    for (auto& w : s.connections)
      if (auto c = w.lock()) c->shutdown();
  });
  // run() returns once every connection has closed (a silent client within the close timeout).
  if (s.thread.joinable()) s.thread.join();
  s.workers.join();
}

}  // namespace vkssm::serve
