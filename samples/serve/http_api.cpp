#include "samples/serve/http_api.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>

#include "samples/serve/json_fields.h"
#include "samples/serve/logprobs.h"

namespace vkssm::serve {

namespace {

void send_json(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, const HttpError& e) {
  if (e.status == 429) res.set_header("Retry-After", "1");
  if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
  send_json(res, {{"error", {{"message", e.message}, {"type", e.type}}}}, e.status);
}

// A job on one session that needs nothing else (create, delete).
JobSpec control(JobKind kind, const std::string& id) {
  JobSpec spec;
  spec.kind = kind;
  spec.session = id;
  return spec;
}

// ---- the API ----

class Api {
 public:
  explicit Api(ApiContext& c) : c_(c), vocab_(c.info->vocab_size) {}

  void health(httplib::Response& res) {
    if (c_.draining) return send_json(res, {{"status", "draining"}}, 503);
    send_json(res, {{"status", "ok"}});
  }

  void models(httplib::Response& res) {
    send_json(res, {{"object", "list"},
                    {"data", json::array({{{"id", c_.model_name},
                                           {"object", "model"},
                                           {"owned_by", "vkssm"},
                                           {"architecture", c_.info->architecture},
                                           {"backend", c_.info->backend},
                                           {"vocab_size", vocab_},
                                           {"max_sessions", c_.info->memory.capacity}}})}});
  }

  void create(httplib::Response& res) {
    const std::string id = new_session_id();
    JobSpec spec = control(JobKind::Create, id);
    spec.want_state = c_.redis != nullptr;
    persist(id, expect_ok(run(spec), id));
    send_json(res, {{"id", id}});
  }

  // Frame models' sessions read audio over the WebSocket endpoint; the token endpoints say so.
  void require_token_model(const std::string& endpoint) const {
    if (vocab_ > 0) return;
    throw bad_request(endpoint + " is for token models: this server's model (" + c_.info->architecture +
                      ") reads audio frames; stream audio to the WebSocket GET /v1/sessions/{id}/audio "
                      "(port " + std::to_string(c_.ws_port) + ")");
  }

  void open_audio(const std::string& id, std::shared_ptr<AudioFeed> feed, std::shared_ptr<AudioSink> sink) {
    if (!valid_session_id(id)) throw not_found(id);
    if (c_.draining) throw HttpError{503, "unavailable_error", "the server is shutting down"};
    if (c_.redis) {
      // Audio sessions are stored at creation only (position 0), so any replica can take the
      // connection; one that another replica deleted is gone here too.
      if (!storage([&] { return c_.redis->position(id); })) {
        drop_local(id);
        throw not_found(id);
      }
    }
    JobSpec spec = control(JobKind::Attach, id);
    spec.audio_feed = feed;
    spec.audio_sink = sink;
    JobResult r = run(spec);
    if (r.status == Status::NotFound && c_.redis && load_from_redis(id)) r = run(spec);
    expect_ok(r, id);
  }

  void end_audio(const std::string& id) {
    run(control(JobKind::Delete, id));  // NotFound: the step loop ended it already
    if (c_.redis) {
      try {
        c_.redis->remove(id);
      } catch (const Error&) {
        // The key expires after the idle timeout anyway.
      }
    }
  }

  void tokens(const std::string& id, const json& body, httplib::Response& res) {
    require_token_model("POST /v1/sessions/{id}/tokens");
    auto ids = body.find("ids");
    if (ids == body.end()) throw bad_request("'ids' is required: the token ids to feed");
    JobSpec spec = session_spec(id);
    spec.feed = ids_field(*ids, "ids", vocab_);
    const int k = static_cast<int>(int_field(body, "top_logprobs", 0, 0, vocab_));
    const bool want_logits = bool_field(body, "logits");
    const int64_t after = int_field(body, "position", -1, 0, std::numeric_limits<int32_t>::max());
    std::optional<JobResult> done = after >= 0 ? answered_before(id, after, spec.feed.size()) : std::nullopt;
    JobResult r = done ? std::move(*done) : run_on_session(spec);
    json out = {{"position", r.position}, {"top_logprobs", json::array()}};
    for (const auto& [tok, lp] : top_logprobs(r.logits.data(), vocab_, k)) out["top_logprobs"].push_back({tok, lp});
    if (want_logits) out["logits"] = r.logits;
    send_json(res, out);
  }

  void generate(const std::string& id, const json& body, httplib::Response& res) {
    require_token_model("POST /v1/sessions/{id}/generate");
    JobSpec spec = session_spec(id);
    read_sampling(body, spec);
    JobResult r = run_on_session(spec);
    send_json(res, {{"ids", r.generated},
                    {"text", text_of(r.generated)},
                    {"position", r.position},
                    {"finish_reason", r.finish_reason}});
  }

  void fork(const std::string& id, httplib::Response& res) {
    // A frame session's front-end and decoder live with its connection, not in the slot.
    require_token_model("POST /v1/sessions/{id}/fork");
    JobSpec spec = session_spec(id);
    spec.kind = JobKind::Fork;
    spec.target = new_session_id();
    JobResult r = run_on_session(spec);
    persist(spec.target, r);
    send_json(res, {{"id", spec.target}, {"position", r.position}});
  }

  void remove(const std::string& id, httplib::Response& res) {
    if (!valid_session_id(id)) throw not_found(id);
    JobResult r = run(control(JobKind::Delete, id));
    bool found = r.status == Status::Ok;
    if (!found && r.status != Status::NotFound) expect_ok(r, id);
    if (c_.redis) found = storage([&] { return c_.redis->remove(id); }) || found;
    if (!found) throw not_found(id);
    send_json(res, {{"id", id}, {"deleted", true}});
  }

  void completions(const json& body, httplib::Response& res) {
    require_token_model("POST /v1/completions");
    auto prompt = body.find("prompt");
    if (prompt == body.end()) throw bad_request("'prompt' is required: a string or an array of token ids");
    JobSpec spec;
    if (prompt->is_string()) {
      if (!c_.tokenizer) throw bad_request("this model has no tokenizer: give 'prompt' as an array of token ids");
      spec.feed = c_.tokenizer->encode(prompt->get<std::string>());
      if (spec.feed.empty()) throw bad_request("'prompt' encodes to no tokens");
      for (int32_t t : spec.feed)
        if (t >= vocab_) throw bad_request("the prompt encodes to token " + std::to_string(t) +
                                           ", outside this model's vocabulary [0, " + std::to_string(vocab_) + ")");
    } else {
      spec.feed = ids_field(*prompt, "prompt", vocab_);
    }
    read_sampling(body, spec, /*default_temperature=*/1.0);
    const int logprobs = static_cast<int>(int_field(body, "logprobs", -1, 0, 20));
    const bool stream = bool_field(body, "stream");
    const size_t prompt_tokens = spec.feed.size();

    // A session of its own for the request, deleted when the answer is done.
    spec.session = new_session_id();
    expect_ok(run(control(JobKind::Create, spec.session)), spec.session);
    auto cleanup = std::make_shared<SessionGuard>(c_, spec.session);

    const std::string cmpl_id = "cmpl-" + new_session_id();
    const int64_t created =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    auto choice_logprobs = std::make_shared<json>(json{{"tokens", json::array()},
                                                       {"token_logprobs", json::array()},
                                                       {"top_logprobs", json::array()}});
    auto record = [this, logprobs](json& lp, int32_t token, const float* logits) {
      lp["tokens"].push_back(text_of({token}));
      lp["token_logprobs"].push_back(logprob_of(logits, vocab_, token));
      json top = json::object();
      for (const auto& [t, v] : top_logprobs(logits, vocab_, logprobs)) top[text_of({t})] = v;
      lp["top_logprobs"].push_back(top);
    };
    auto chunk = [this, cmpl_id, created](const std::string& text, const json& lp, const json& finish) {
      return json{{"id", cmpl_id},
                  {"object", "text_completion"},
                  {"created", created},
                  {"model", c_.model_name},
                  {"choices", json::array({{{"index", 0}, {"text", text}, {"logprobs", lp}, {"finish_reason", finish}}})}};
    };

    if (!stream) {
      if (logprobs >= 0)
        spec.on_token = [&](int32_t token, const float* logits) {
          record(*choice_logprobs, token, logits);
          return true;
        };
      JobResult r = expect_ok(run(spec), spec.session);
      json out = chunk(text_of(r.generated), logprobs >= 0 ? *choice_logprobs : json(nullptr), r.finish_reason);
      out["usage"] = {{"prompt_tokens", prompt_tokens},
                      {"completion_tokens", r.generated.size()},
                      {"total_tokens", prompt_tokens + r.generated.size()}};
      return send_json(res, out);
    }

    // Server-sent events: one event per token as the step loop samples it, then [DONE].
    auto events = std::make_shared<EventQueue>();
    spec.on_token = [this, events, record, chunk, logprobs](int32_t token, const float* logits) {
      json lp = nullptr;
      if (logprobs >= 0) {
        lp = json{{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()}};
        record(lp, token, logits);
      }
      return events->push("data: " + dump(chunk(text_of({token}), lp, nullptr)) + "\n\n");
    };
    auto done = std::make_shared<std::future<JobResult>>(c_.batcher->submit(spec));
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, events, done, chunk](size_t, httplib::DataSink& sink) {
          std::string event;
          while (events->pop(event, *done))
            if (!sink.write(event.data(), event.size())) events->cancel();
          JobResult r = done->get();
          std::string tail;
          if (r.status == Status::Ok)
            tail = "data: " + dump(chunk("", nullptr, r.finish_reason)) + "\n\n";
          else
            tail = "data: " + dump(json{{"error", {{"message", r.message}, {"type", "server_error"}}}}) + "\n\n";
          tail += "data: [DONE]\n\n";
          sink.write(tail.data(), tail.size());
          sink.done();
          return true;
        },
        [cleanup, events, done](bool) {
          // The client may be gone before the provider ran: stop the generation, wait for it.
          events->cancel();
          if (done->valid()) done->wait();
        });
  }

  // Maps handlers' outcomes to answers; used by every route.
  template <typename F>
  void guarded(httplib::Response& res, F&& handler) {
    try {
      if (c_.draining) throw HttpError{503, "unavailable_error", "the server is shutting down"};
      handler();
    } catch (const HttpError& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      send_error(res, {500, "server_error", e.what()});
    }
  }

 private:
  // Tokens generated by the step loop, waiting to be written to a streaming client.
  class EventQueue {
   public:
    // False once the client is gone: the generation stops.
    bool push(std::string event) {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.push_back(std::move(event));
      ready_.notify_one();
      return !cancelled_;
    }
    // The next event, or false when the job is done and every event was taken.
    bool pop(std::string& event, std::future<JobResult>& done) {
      std::unique_lock<std::mutex> lock(mutex_);
      for (;;) {
        if (!events_.empty()) {
          event = std::move(events_.front());
          events_.pop_front();
          return true;
        }
        if (done.wait_for(std::chrono::seconds(0)) == std::future_status::ready) return false;
        ready_.wait_for(lock, std::chrono::milliseconds(20));
      }
    }
    void cancel() {
      std::lock_guard<std::mutex> lock(mutex_);
      cancelled_ = true;
    }

   private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::string> events_;
    bool cancelled_ = false;
  };

  // Deletes a request's own session when the last user of it lets go.
  struct SessionGuard {
    ApiContext& c;
    std::string id;
    SessionGuard(ApiContext& context, std::string session) : c(context), id(std::move(session)) {}
    ~SessionGuard() { c.batcher->submit(control(JobKind::Delete, id)).wait(); }
  };

  static HttpError not_found(const std::string& id) {
    return {404, "not_found_error", "no session '" + id + "'"};
  }

  JobSpec session_spec(const std::string& id) {
    if (!valid_session_id(id)) throw not_found(id);
    JobSpec spec;
    spec.session = id;
    spec.want_logits = true;
    spec.want_state = c_.redis != nullptr;
    return spec;
  }

  void read_sampling(const json& body, JobSpec& spec, double default_temperature = 0.0) {
    spec.max_tokens = static_cast<int>(int_field(body, "max_tokens", 16, 0, c_.max_tokens));
    spec.sampling.temperature = static_cast<float>(number_field(body, "temperature", default_temperature, 0, 1000));
    spec.sampling.top_k = static_cast<int>(int_field(body, "top_k", 0, 0, vocab_));
    spec.sampling.seed = seed_field(body);
    spec.eos = c_.tokenizer ? c_.tokenizer->eos_id() : -1;
  }

  std::string text_of(const std::vector<int32_t>& ids) const { return c_.tokenizer ? c_.tokenizer->decode(ids) : ""; }

  JobResult run(const JobSpec& spec) { return c_.batcher->submit(spec).get(); }

  // A job on an existing session: a session this process does not hold is loaded from Redis
  // first, and the state the job leaves is written back.
  JobResult run_on_session(JobSpec spec) {
    if (c_.redis) {
      // Redis holds the current state: a copy held here at another position is stale.
      std::optional<int64_t> stored = storage([&] { return c_.redis->position(spec.session); });
      if (!stored) {
        drop_local(spec.session);  // deleted (or expired) elsewhere
        throw not_found(spec.session);
      }
      spec.expect_position = *stored;
    }
    JobResult r = run(spec);
    if (r.status == Status::NotFound && c_.redis && load_from_redis(spec.session)) r = run(spec);
    expect_ok(r, spec.session);
    if (spec.kind != JobKind::Fork) persist(spec.session, r);
    return r;
  }

  // A request sent again because its answer was lost (the replica that ran it died) must not feed
  // its ids twice. A client that names the position its ids follow ("position") gets, when Redis
  // shows the session already past that position by exactly that many ids, the stored result
  // instead; any other position than the session's is a 409. Without --redis nothing is shared
  // between processes, so there is nothing to check against and the field is ignored.
  std::optional<JobResult> answered_before(const std::string& id, int64_t after, size_t n) {
    if (!c_.redis || !valid_session_id(id)) return std::nullopt;
    std::optional<StoredSession> stored = storage([&] { return c_.redis->load(id); });
    if (!stored) throw not_found(id);
    if (stored->position == after) return std::nullopt;  // not run yet: run it
    if (stored->position != after + int64_t(n))
      throw HttpError{409, "position_mismatch_error",
                      "session '" + id + "' is at position " + std::to_string(stored->position) +
                          ", not " + std::to_string(after) + " as the request says"};
    JobResult r;
    r.position = stored->position;
    r.logits = std::move(stored->logits);
    return r;
  }

  void drop_local(const std::string& id) { run(control(JobKind::Delete, id)); }  // NotFound is fine

  bool load_from_redis(const std::string& id) {
    std::optional<StoredSession> stored = storage([&] { return c_.redis->load(id); });
    if (!stored) return false;
    JobSpec load;
    load.kind = JobKind::Load;
    load.session = id;
    load.state = std::move(stored->state);
    load.position = stored->position;
    load.logits = std::move(stored->logits);
    JobResult r = run(load);
    if (r.status == Status::BadState)
      throw HttpError{409, "invalid_state_error",
                      "session '" + id + "' stored in Redis does not restore into this model: " + r.message};
    expect_ok(r, id);
    return true;
  }

  void persist(const std::string& id, const JobResult& r) {
    if (!c_.redis) return;
    storage([&] {
      c_.redis->save(id, {r.state, r.position, r.logits});
      return true;
    });
  }

  // Redis failures answer 503: the state in this process is fine, only the shared copy is not.
  template <typename F>
  auto storage(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const Error& e) {
      throw HttpError{503, "storage_error", e.what()};
    }
  }

  const JobResult& expect_ok(const JobResult& r, const std::string& id) {
    switch (r.status) {
      case Status::Ok: return r;
      case Status::NotFound: throw not_found(id);
      case Status::Full: throw HttpError{429, "capacity_error", r.message};
      case Status::Invalid: throw bad_request(r.message);
      case Status::BadState: throw HttpError{409, "invalid_state_error", r.message};
      case Status::Conflict: throw HttpError{409, "conflict_error", r.message};
      case Status::Failed: break;
    }
    if (c_.draining) throw HttpError{503, "unavailable_error", r.message};
    throw HttpError{500, "server_error", r.message};
  }

  ApiContext& c_;
  const int64_t vocab_;
};

}  // namespace

// The session id captured by a route's pattern.
static std::string session_of(const httplib::Request& req) { return req.matches[1].str(); }

void add_routes(httplib::Server& http, ApiContext& c) {
  auto api = std::make_shared<Api>(c);

  // Authentication before routing, so an unknown path without a key is 401, not 404.
  http.set_pre_routing_handler([&c](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    std::optional<HttpError> denied = check_api_key(c, req.get_header_value("Authorization"));
    if (!denied) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, *denied);
    return httplib::Server::HandlerResponse::Handled;
  });
  // httplib's own errors (unknown path, body over the limit) get a JSON body too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 413)
      send_error(res, {413, "invalid_request_error", "the request body is larger than the server's limit"});
    else if (res.status == 404)
      send_error(res, {404, "not_found_error", "no endpoint " + req.method + " " + req.path});
    else if (res.status == 400 && !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding"))
      // httplib reads a body it is not told the length of as malformed, even an empty one.
      send_error(res, {400, "invalid_request_error",
                       "the request has no Content-Length header: send one, even for an empty body (curl: -d '')"});
    else
      send_error(res, {res.status, "invalid_request_error", "the request could not be handled"});
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_logger([&c](const httplib::Request&, const httplib::Response& res) {
    c.metrics->http_requests.fetch_add(1);
    if (res.status >= 400) c.metrics->http_errors.fetch_add(1);
  });

  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  http.Get("/health", [api](Req, Res res) { api->health(res); });
  http.Get("/metrics", [&c](Req, Res res) {
    res.set_content(c.metrics->prometheus(), "text/plain; version=0.0.4");
  });
  http.Get("/v1/models", [api](Req, Res res) { api->guarded(res, [&] { api->models(res); }); });
  http.Post("/v1/sessions", [api](Req, Res res) { api->guarded(res, [&] { api->create(res); }); });
  http.Post(R"(/v1/sessions/([^/]+)/tokens)", [api](Req req, Res res) {
    api->guarded(res, [&] { api->tokens(session_of(req), parse_body(req.body), res); });
  });
  http.Post(R"(/v1/sessions/([^/]+)/generate)", [api](Req req, Res res) {
    api->guarded(res, [&] { api->generate(session_of(req), parse_body(req.body), res); });
  });
  http.Post(R"(/v1/sessions/([^/]+)/fork)", [api](Req req, Res res) {
    api->guarded(res, [&] { api->fork(session_of(req), res); });
  });
  http.Delete(R"(/v1/sessions/([^/]+))", [api](Req req, Res res) {
    api->guarded(res, [&] { api->remove(session_of(req), res); });
  });
  http.Post("/v1/completions", [api](Req req, Res res) {
    api->guarded(res, [&] { api->completions(parse_body(req.body), res); });
  });
  // httplib cannot hand a connection over to a WebSocket library, so the audio endpoint has a
  // port of its own (websocket_server.h); a client that asks this port is told which.
  http.Get(R"(/v1/sessions/([^/]+)/audio)", [&c](Req, Res res) {
    res.set_header("Upgrade", "websocket");
    send_error(res, {426, "invalid_request_error",
                     "GET /v1/sessions/{id}/audio is a WebSocket endpoint served on port " + std::to_string(c.ws_port) +
                         " (--ws-port)"});
  });
}

std::optional<HttpError> check_api_key(const ApiContext& c, const std::string& authorization) {
  if (c.api_key.empty() || authorization == "Bearer " + c.api_key) return std::nullopt;
  return HttpError{401, "authentication_error", "missing or wrong API key: send 'Authorization: Bearer KEY'"};
}

void open_audio_session(ApiContext& c, const std::string& id, std::shared_ptr<AudioFeed> feed,
                        std::shared_ptr<AudioSink> sink) {
  Api(c).open_audio(id, std::move(feed), std::move(sink));
}

void end_audio_session(ApiContext& c, const std::string& id) { Api(c).end_audio(id); }

}  // namespace vkssm::serve
