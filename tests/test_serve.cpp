// `vkssm serve` in-process: the HTTP API against the model stepped directly, error answers,
// concurrent clients, and sessions shared by two servers through Redis.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <fcntl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/vkssm.hpp"
#include "host/tokenizer.h"
#include "samples/serve/logprobs.h"
#include "samples/serve/metrics.h"
#include "samples/serve/redis_store.h"
#include "samples/serve/server.h"
#include "samples/serve/session_table.h"
#include "tests/test_helpers.h"

extern char** environ;

namespace vkssm {
namespace {

using json = nlohmann::json;
using serve::Server;
using serve::ServeOptions;
using testing_helpers::max_rel_error;

const std::string kModel = std::string(VKSSM_SOURCE_DIR) + "/models/mamba1/tiny-shakespeare";
const std::string kOtherModel = std::string(VKSSM_SOURCE_DIR) + "/tests/data/falcon_mamba_tiny";

ServeOptions options(BackendKind backend = BackendKind::Reference, int streams = 4) {
  ServeOptions o;
  o.model_path = kModel;
  o.load.backend = backend;
  o.load.max_streams = streams;
  o.port = 0;
  return o;
}

std::unique_ptr<Model> reference_model(BackendKind backend = BackendKind::Reference) {
  LoadOptions o;
  o.backend = backend;
  o.max_streams = 1;
  return load_model(kModel, o);
}

std::vector<int32_t> encode(const std::string& text) { return make_byte_tokenizer()->encode(text); }

// The logits after feeding `ids` from a zero state, one Model::step per token.
std::vector<float> stepped_logits(Model& m, const std::vector<int32_t>& ids) {
  const int32_t slot = 0;
  std::vector<float> logits(size_t(m.info().vocab_size));
  m.reset(slot);
  for (int32_t t : ids) m.step(&t, &slot, 1, logits.data());
  return logits;
}

// `n` greedy tokens after `prompt`: the loop a client of Model would write.
std::vector<int32_t> greedy(Model& m, const std::vector<int32_t>& prompt, int n) {
  std::vector<float> logits = stepped_logits(m, prompt);
  const int32_t slot = 0;
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    int32_t next = argmax(logits.data(), int(logits.size()));
    out.push_back(next);
    m.step(&next, &slot, 1, logits.data());
  }
  return out;
}

struct Reply {
  int status = 0;
  json body;
  httplib::Headers headers;
};

// One request; the body is parsed when it is JSON.
Reply call(int port, const std::string& method, const std::string& path, const std::string& body = "",
           const httplib::Headers& headers = {}) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  httplib::Result r = method == "GET"      ? client.Get(path.c_str(), headers)
                      : method == "DELETE" ? client.Delete(path.c_str(), headers)
                                           : client.Post(path.c_str(), headers, body, "application/json");
  if (!r) {
    ADD_FAILURE() << method << " " << path << ": no answer (" << httplib::to_string(r.error()) << ")";
    return {};
  }
  Reply out{r->status, json::parse(r->body, nullptr, false), r->headers};
  return out;
}

Reply post(int port, const std::string& path, const json& body = json::object()) {
  return call(port, "POST", path, body.dump());
}

std::string new_session(int port) {
  Reply r = post(port, "/v1/sessions");
  EXPECT_EQ(r.status, 200) << r.body;
  return r.body.value("id", "");
}

// 127.0.0.1:port.
sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Starts words[0] (searched in PATH) with the rest as its arguments, its stderr into
// `stderr_path` when given. -1 when it cannot be started.
pid_t spawn(std::vector<std::string> words, const std::string& stderr_path = "") {
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  if (!stderr_path.empty())
    posix_spawn_file_actions_addopen(&files, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  if (posix_spawnp(&pid, argv[0], &files, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&files);
  return pid;
}

// A new connection to 127.0.0.1:port with `request` sent on it and a 10 s receive timeout;
// -1 when it cannot connect or send.
int send_on_new_connection(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      send(fd, request.data(), request.size(), 0) != ssize_t(request.size())) {
    close(fd);
    return -1;
  }
  timeval timeout = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

// Sends `request` as it is over a new connection and returns everything the server answers.
std::string raw_request(int port, const std::string& request) {
  const int fd = send_on_new_connection(port, request);
  std::string answer;
  if (fd >= 0) {
    char buf[4096];
    // Until the body announced by Content-Length is in (the server may keep the connection).
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) {
      answer.append(buf, size_t(n));
      const size_t head = answer.find("\r\n\r\n"), length = answer.find("Content-Length: ");
      if (head != std::string::npos && length != std::string::npos &&
          answer.size() >= head + 4 + std::stoul(answer.substr(length + 16)))
        break;
    }
    close(fd);
  }
  return answer;
}

std::vector<float> floats(const json& j) { return j.get<std::vector<float>>(); }

void expect_error(const Reply& r, int status, const std::string& type, const std::string& message) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(r.body["error"]["type"], type) << r.body;
  EXPECT_EQ(r.body["error"]["message"], message) << r.body;
}

class ServeTest : public testing::Test {
 protected:
  void start(ServeOptions o = options()) {
    server_ = std::make_unique<Server>(std::move(o));
    server_->start();
    port_ = server_->port();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  std::unique_ptr<Server> server_;
  int port_ = 0;
};

TEST_F(ServeTest, SessionFedInPiecesMatchesModelStep) {
  start();
  const std::vector<int32_t> text = encode("ROMEO: But soft, what light");
  const std::string id = new_session(port_);
  ASSERT_EQ(id.size(), 32u);
  // Three requests: one token, a long piece (prefill), the rest.
  const std::vector<std::vector<int32_t>> pieces = {
      {text.begin(), text.begin() + 1}, {text.begin() + 1, text.begin() + 20}, {text.begin() + 20, text.end()}};
  Reply r;
  for (const auto& piece : pieces) r = post(port_, "/v1/sessions/" + id + "/tokens", {{"ids", piece}, {"logits", true}, {"top_logprobs", 3}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["position"], text.size());

  auto ref = reference_model();
  std::vector<float> want = stepped_logits(*ref, text);
  std::vector<float> got = floats(r.body["logits"]);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(want.size())), 1e-5f);
  // top_logprobs: [[id, logprob], ...] of the same logits, most likely first.
  auto top = serve::top_logprobs(want.data(), int64_t(want.size()), 3);
  ASSERT_EQ(r.body["top_logprobs"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.body["top_logprobs"][i][0], top[i].first);
    EXPECT_NEAR(r.body["top_logprobs"][i][1].get<float>(), top[i].second, 1e-5);
  }
  // Without "logits": none in the answer.
  r = post(port_, "/v1/sessions/" + id + "/tokens", {{"ids", {32}}});
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.body.contains("logits"));
  EXPECT_EQ(r.body["top_logprobs"], json::array());
}

TEST_F(ServeTest, GenerateAndCompletionsEqualAGreedyLoop) {
  start();
  const std::vector<int32_t> prompt = encode("ROMEO:");
  auto ref = reference_model();
  const std::vector<int32_t> want = greedy(*ref, prompt, 24);
  auto tok = make_byte_tokenizer();

  const std::string id = new_session(port_);
  ASSERT_EQ(post(port_, "/v1/sessions/" + id + "/tokens", {{"ids", prompt}}).status, 200);
  Reply g = post(port_, "/v1/sessions/" + id + "/generate", {{"max_tokens", 24}, {"temperature", 0}});
  ASSERT_EQ(g.status, 200) << g.body;
  EXPECT_EQ(g.body["ids"].get<std::vector<int32_t>>(), want);
  EXPECT_EQ(g.body["text"], tok->decode(want));
  EXPECT_EQ(g.body["position"], prompt.size() + 24);
  EXPECT_EQ(g.body["finish_reason"], "length");

  Reply c = post(port_, "/v1/completions", {{"prompt", "ROMEO:"}, {"max_tokens", 24}, {"temperature", 0}, {"logprobs", 2}});
  ASSERT_EQ(c.status, 200) << c.body;
  const json& choice = c.body["choices"][0];
  EXPECT_EQ(choice["text"], tok->decode(want));
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_EQ(c.body["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(c.body["usage"]["completion_tokens"], 24);
  ASSERT_EQ(choice["logprobs"]["tokens"].size(), 24u);
  // Greedy: each token is its step's most likely one.
  const std::string first = tok->decode({want[0]});
  EXPECT_EQ(choice["logprobs"]["tokens"][0], first);
  EXPECT_EQ(choice["logprobs"]["top_logprobs"][0][first], choice["logprobs"]["token_logprobs"][0]);
  // Ids work as the prompt too; the completion's session is gone afterwards.
  Reply ids = post(port_, "/v1/completions", {{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}});
  EXPECT_EQ(ids.body["choices"][0]["text"], tok->decode(want));
  EXPECT_EQ(ids.body["choices"][0]["logprobs"], nullptr);

  // The same text as `vkssm generate --temperature 0` (which echoes the prompt first).
  const std::string cli = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "vkssm").string();
  FILE* p = popen((cli + " generate --model '" + kModel + "' --backend reference --prompt 'ROMEO:' -n 24 --temperature 0 2>/dev/null").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string printed;
  char buf[256];
  while (size_t n = fread(buf, 1, sizeof buf, p)) printed.append(buf, n);
  ASSERT_EQ(pclose(p), 0);
  EXPECT_EQ(printed, "ROMEO:" + tok->decode(want) + "\n");
}

TEST_F(ServeTest, CompletionsStreamTokensAsServerSentEvents) {
  start();
  auto ref = reference_model();
  const std::vector<int32_t> want = greedy(*ref, encode("JULIET:"), 12);
  httplib::Client client("127.0.0.1", port_);
  std::string stream;
  auto r = client.Post("/v1/completions", json{{"prompt", "JULIET:"}, {"max_tokens", 12}, {"temperature", 0}, {"stream", true}}.dump(),
                       "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  // "data: {...}\n\n" per token, a last event with the finish reason, then "data: [DONE]".
  std::string text, finish;
  size_t events = 0, at = 0;
  for (size_t end; (end = r->body.find("\n\n", at)) != std::string::npos; at = end + 2, ++events) {
    const std::string data = r->body.substr(at + 6, end - at - 6);
    ASSERT_EQ(r->body.substr(at, 6), "data: ");
    if (data == "[DONE]") break;
    json e = json::parse(data);
    text += e["choices"][0]["text"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(events, 13u);
  EXPECT_EQ(at, r->body.size() - std::string("data: [DONE]\n\n").size());
  EXPECT_EQ(text, make_byte_tokenizer()->decode(want));
  EXPECT_EQ(finish, "length");
}

TEST_F(ServeTest, ForkCopiesTheStateAndDeleteFreesIt) {
  start();
  const std::vector<int32_t> prompt = encode("KING:");
  const std::string a = new_session(port_);
  ASSERT_EQ(post(port_, "/v1/sessions/" + a + "/tokens", {{"ids", prompt}}).status, 200);
  Reply f = post(port_, "/v1/sessions/" + a + "/fork");
  ASSERT_EQ(f.status, 200) << f.body;
  const std::string b = f.body["id"];
  EXPECT_NE(a, b);
  EXPECT_EQ(f.body["position"], prompt.size());

  // Each continues on its own from the shared prefix.
  auto ref = reference_model();
  for (const auto& [id, more] : {std::pair{a, encode(" I")}, std::pair{b, encode(" We")}}) {
    Reply r = post(port_, "/v1/sessions/" + id + "/tokens", {{"ids", more}, {"logits", true}});
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), more.begin(), more.end());
    std::vector<float> want = stepped_logits(*ref, all), got = floats(r.body["logits"]);
    EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(want.size())), 1e-5f) << id;
  }

  Reply d = call(port_, "DELETE", "/v1/sessions/" + a);
  EXPECT_EQ(d.status, 200);
  EXPECT_EQ(d.body, (json{{"id", a}, {"deleted", true}}));
  expect_error(post(port_, "/v1/sessions/" + a + "/tokens", {{"ids", {1}}}), 404, "not_found_error",
               "no session '" + a + "'");
  expect_error(call(port_, "DELETE", "/v1/sessions/" + a), 404, "not_found_error", "no session '" + a + "'");
  EXPECT_EQ(post(port_, "/v1/sessions/" + b + "/generate", {{"max_tokens", 2}}).status, 200);
}

TEST_F(ServeTest, BadRequestsGetClearErrors) {
  ServeOptions o = options(BackendKind::Reference, 2);
  o.max_body_bytes = 4096;
  start(o);
  const std::string id = new_session(port_);
  const std::string tokens = "/v1/sessions/" + id + "/tokens";
  expect_error(call(port_, "POST", tokens, "{\"ids\": [1,"), 400, "invalid_request_error",
               "the request body is not valid JSON");
  expect_error(call(port_, "POST", tokens, "[1, 2]"), 400, "invalid_request_error",
               "the request body must be a JSON object");
  expect_error(post(port_, tokens, json::object()), 400, "invalid_request_error",
               "'ids' is required: the token ids to feed");
  expect_error(post(port_, tokens, {{"ids", "abc"}}), 400, "invalid_request_error",
               "'ids' must be a non-empty array of token ids");
  expect_error(post(port_, tokens, {{"ids", {1, 256}}}), 400, "invalid_request_error",
               "'ids[1]' = 256 is not a token id of this model (vocabulary [0, 256))");
  expect_error(post(port_, tokens, {{"ids", {1, -1}}}), 400, "invalid_request_error",
               "'ids[1]' = -1 is not a token id of this model (vocabulary [0, 256))");
  expect_error(post(port_, tokens, {{"ids", {1.5}}}), 400, "invalid_request_error",
               "'ids[0]' = 1.5 is not a token id of this model (vocabulary [0, 256))");
  expect_error(post(port_, tokens, {{"ids", {1}}, {"logits", 1}}), 400, "invalid_request_error",
               "'logits' must be true or false, got 1");
  expect_error(post(port_, "/v1/sessions/" + id + "/generate", {{"max_tokens", 5}}), 400, "invalid_request_error",
               "session '" + id + "' has read no tokens yet: feed at least one token before generating");
  expect_error(post(port_, "/v1/sessions/" + id + "/generate", {{"max_tokens", "5"}}), 400, "invalid_request_error",
               "'max_tokens' must be an integer in [0, 4096], got \"5\"");
  expect_error(post(port_, "/v1/sessions/" + id + "/generate", {{"temperature", -1}}), 400, "invalid_request_error",
               "'temperature' must be a number in [0.0, 1000.0], got -1");
  expect_error(post(port_, "/v1/completions", {{"prompt", {{"a", 1}}}}), 400, "invalid_request_error",
               "'prompt' must be a non-empty array of token ids");
  expect_error(post(port_, "/v1/completions", {{"prompt", ""}}), 400, "invalid_request_error",
               "'prompt' encodes to no tokens");
  expect_error(call(port_, "POST", tokens, std::string(5000, ' ')), 413, "invalid_request_error",
               "the request body is larger than the server's limit");
  // A POST without Content-Length (curl -X POST with no -d) is refused by httplib: say why.
  const std::string raw = raw_request(port_, "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(raw.substr(0, raw.find("\r\n")), "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(json::parse(raw.substr(raw.find("\r\n\r\n") + 4))["error"]["message"],
            "the request has no Content-Length header: send one, even for an empty body (curl: -d '')");
  // Unknown sessions and paths.
  const std::string nobody(32, '0');
  expect_error(post(port_, "/v1/sessions/" + nobody + "/tokens", {{"ids", {1}}}), 404, "not_found_error",
               "no session '" + nobody + "'");
  expect_error(post(port_, "/v1/sessions/../tokens", {{"ids", {1}}}), 404, "not_found_error", "no session '..'");
  expect_error(call(port_, "GET", "/v2/nothing"), 404, "not_found_error", "no endpoint GET /v2/nothing");
  // Full: 429 with Retry-After, also for a completion that needs a session of its own.
  new_session(port_);
  Reply full = post(port_, "/v1/sessions");
  expect_error(full, 429, "capacity_error", "all 2 session slots are in use (--max-streams)");
  ASSERT_EQ(full.headers.count("Retry-After"), 1u);
  EXPECT_EQ(full.headers.find("Retry-After")->second, "1");
  EXPECT_EQ(post(port_, "/v1/completions", {{"prompt", "x"}}).status, 429);
  // Freed by a delete.
  EXPECT_EQ(call(port_, "DELETE", "/v1/sessions/" + id).status, 200);
  EXPECT_EQ(post(port_, "/v1/sessions").status, 200);
  // Still serving after all that.
  EXPECT_EQ(call(port_, "GET", "/health").body, (json{{"status", "ok"}}));
}

TEST_F(ServeTest, ApiKeyIsRequiredOnAllButHealth) {
  ServeOptions o = options();
  o.api_key = "s3cret";
  start(o);
  expect_error(post(port_, "/v1/sessions"), 401, "authentication_error",
               "missing or wrong API key: send 'Authorization: Bearer KEY'");
  expect_error(call(port_, "GET", "/metrics", "", {{"Authorization", "Bearer wrong"}}), 401, "authentication_error",
               "missing or wrong API key: send 'Authorization: Bearer KEY'");
  EXPECT_EQ(call(port_, "GET", "/health").status, 200);
  Reply models = call(port_, "GET", "/v1/models", "", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(models.status, 200);
  EXPECT_EQ(models.body["data"][0]["id"], "tiny-shakespeare");
  EXPECT_EQ(models.body["data"][0]["vocab_size"], 256);
}

TEST_F(ServeTest, ConcurrentClientsShareBatchedSteps) {
  start(options(BackendKind::Reference, 5));
  const std::vector<std::string> prompts = {"ROMEO:", "First Citizen:", "KING HENRY:", "O"};
  auto ref = reference_model();
  std::vector<std::vector<int32_t>> want;
  for (const std::string& p : prompts) want.push_back(greedy(*ref, encode(p), 40));

  std::vector<json> got(prompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < prompts.size(); ++i)
    clients.emplace_back([&, i] {
      const std::string id = new_session(port_);
      post(port_, "/v1/sessions/" + id + "/tokens", {{"ids", encode(prompts[i])}});
      got[i] = post(port_, "/v1/sessions/" + id + "/generate", {{"max_tokens", 40}}).body;
    });
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i]["ids"].get<std::vector<int32_t>>(), want[i]) << prompts[i];

  // Requests on one session run one after the other, never interleaved within a request.
  const std::string shared = new_session(port_);
  const std::vector<int32_t> a = encode("aaaaaaaaaaaaaaaaaaaa"), b = encode("bbbbbbbbbbbbbbbbbbbb");
  std::thread ta([&] { post(port_, "/v1/sessions/" + shared + "/tokens", {{"ids", a}}); });
  std::thread tb([&] { post(port_, "/v1/sessions/" + shared + "/tokens", {{"ids", b}}); });
  ta.join();
  tb.join();
  Reply after = post(port_, "/v1/sessions/" + shared + "/tokens", {{"ids", {32}}, {"logits", true}});
  EXPECT_EQ(after.body["position"], 41);
  std::vector<float> got_logits = floats(after.body["logits"]);
  std::vector<int32_t> ab = a, ba = b;
  ab.insert(ab.end(), b.begin(), b.end());
  ba.insert(ba.end(), a.begin(), a.end());
  ab.push_back(32);
  ba.push_back(32);
  EXPECT_TRUE(got_logits == stepped_logits(*ref, ab) || got_logits == stepped_logits(*ref, ba));
  EXPECT_EQ(call(port_, "DELETE", "/v1/sessions/" + shared).status, 200);

  // Some steps advanced several sessions at once: fewer steps than tokens stepped.
  httplib::Client client("127.0.0.1", port_);
  auto m = client.Get("/metrics");
  ASSERT_TRUE(m);
  auto value = [&](const std::string& name) {
    size_t at = m->body.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(m->body.substr(at + name.size() + 2));
  };
  EXPECT_EQ(value("vkssm_active_sessions"), 4);
  EXPECT_EQ(value("vkssm_tokens_generated_total"), 160);
  EXPECT_LT(value("vkssm_steps_total"), value("vkssm_tokens_stepped_total"));
  EXPECT_EQ(value("vkssm_step_seconds_count"), value("vkssm_steps_total"));
  EXPECT_EQ(value("vkssm_state_bytes"), 4.0 * double(server_->model().info().state_bytes_per_stream));
}

TEST_F(ServeTest, VulkanBackendMatchesModelStep) {
  start(options(BackendKind::Vulkan, 2));
  const std::vector<int32_t> text = encode("Now is the winter of our discontent");
  const std::string id = new_session(port_);
  Reply r;
  for (size_t at = 0; at < text.size(); at += 9) {
    std::vector<int32_t> piece(text.begin() + long(at), text.begin() + long(std::min(at + 9, text.size())));
    r = post(port_, "/v1/sessions/" + id + "/tokens", {{"ids", piece}, {"logits", true}});
  }
  ASSERT_EQ(r.status, 200) << r.body;
  auto ref = reference_model(BackendKind::Vulkan);
  std::vector<float> want = stepped_logits(*ref, text), got = floats(r.body["logits"]);
  EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(want.size())), 1e-5f);
  Reply g = post(port_, "/v1/sessions/" + id + "/generate", {{"max_tokens", 8}});
  EXPECT_EQ(g.body["ids"].get<std::vector<int32_t>>(), greedy(*ref, text, 8));
}

TEST_F(ServeTest, APortInUseIsAClearError) {
  start();
  ServeOptions o = options();
  o.port = port_;
  o.ws_port = 0;  // any free one: the HTTP port is the one in use
  Server second(o);
  EXPECT_EQ(testing_helpers::error_of([&] { second.start(); }),
            "cannot listen on 127.0.0.1:" + std::to_string(port_) +
                " (address in use, or not an address of this machine)");
}

// A load balancer keeps idle connections open to reuse them. httplib holds a handler thread for
// each open connection, so the server answers one request per connection and closes it: idle
// clients never take the threads that new requests need.
TEST_F(ServeTest, EachConnectionIsClosedAfterItsAnswer) {
  start();
  std::vector<int> sockets;
  for (int i = 0; i < 24; ++i) {  // three times the handler threads of a 4-stream server
    const int fd =
        send_on_new_connection(port_, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
    ASSERT_GE(fd, 0) << "connection " << i;
    std::string answer;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, size_t(n));
    EXPECT_EQ(n, 0) << "connection " << i << " was left open by the server";
    EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
    EXPECT_NE(answer.find("Connection: close\r\n"), std::string::npos) << answer;
    sockets.push_back(fd);  // the client side stays open, as a pooling balancer's would
  }
  EXPECT_EQ(call(port_, "GET", "/health").status, 200);
  for (int fd : sockets) close(fd);
}

TEST_F(ServeTest, IdleSessionsExpire) {
  ServeOptions o = options(BackendKind::Reference, 1);
  o.idle_timeout_s = 1;
  start(o);
  const std::string id = new_session(port_);
  EXPECT_EQ(post(port_, "/v1/sessions").status, 429);
  // The step loop looks for idle sessions once a second: gone within two.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  expect_error(post(port_, "/v1/sessions/" + id + "/tokens", {{"ids", {1}}}), 404, "not_found_error",
               "no session '" + id + "'");
  EXPECT_EQ(post(port_, "/v1/sessions").status, 200);
}

// The command: serves until SIGTERM, then finishes and exits 0.
TEST(ServeCommand, ServesUntilSigterm) {
  const std::string log = testing::TempDir() + "vkssm_serve_" + std::to_string(getpid()) + ".log";
  const std::string cli = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "vkssm").string();
  const pid_t pid =
      spawn({cli, "serve", "--model", kModel, "--backend", "reference", "--port", "0", "--max-streams", "2"}, log);
  ASSERT_GT(pid, 0);

  // "... listening on http://127.0.0.1:PORT" once it serves.
  auto read_log = [&] {
    std::ifstream in(log);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  int port = 0;
  for (int i = 0; i < 200 && !port; ++i) {
    const std::string text = read_log();
    const size_t at = text.find("listening on http://127.0.0.1:");
    if (at != std::string::npos && text.find('\n', at) != std::string::npos)
      port = std::atoi(text.c_str() + at + std::strlen("listening on http://127.0.0.1:"));
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(port, 0) << read_log();
  const std::string id = new_session(port);
  EXPECT_EQ(post(port, "/v1/sessions/" + id + "/tokens", {{"ids", {1, 2}}}).body["position"], 2);

  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_log();
  EXPECT_NE(read_log().find("vkssm serve: SIGTERM: finishing the requests in progress"), std::string::npos) << read_log();
  std::filesystem::remove(log);
}

// ---- Redis ----

// A port nothing listens on right now (the kernel's pick for port 0).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(0);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A throwaway redis-server (no persistence) for one test.
class RedisServer {
 public:
  RedisServer() : port_(free_port()) {
    const std::string port = std::to_string(port_);
    pid_ = spawn({"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--logfile", "/dev/null"});
    if (pid_ < 0) return;
    // Ready when it answers PING.
    serve::Metrics metrics;
    for (int i = 0; i < 100 && !ready_; ++i) {
      try {
        serve::RedisStore probe(url(), 0, metrics);
        ready_ = true;
      } catch (const Error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
  ~RedisServer() { stop(); }
  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }
  bool ready() const { return ready_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

TEST(ServeRedis, SessionContinuesOnAnotherServer) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << "redis-server did not start (scripts/setup.sh installs it)";
  ServeOptions o = options();
  o.redis_url = redis.url();
  auto a = std::make_unique<Server>(o);
  Server b(o);
  a->start();
  b.start();

  const std::vector<int32_t> first = encode("ROMEO: "), second = encode("What say");
  std::vector<int32_t> all = first;
  all.insert(all.end(), second.begin(), second.end());
  const std::string id = new_session(a->port());
  ASSERT_EQ(post(a->port(), "/v1/sessions/" + id + "/tokens", {{"ids", first}}).status, 200);
  a->stop();
  a.reset();

  Reply r = post(b.port(), "/v1/sessions/" + id + "/tokens", {{"ids", second}, {"logits", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["position"], all.size());
  auto ref = reference_model();
  std::vector<float> want = stepped_logits(*ref, all), got = floats(r.body["logits"]);
  EXPECT_EQ(got, want);  // cpu backend on both sides: the same floats
  Reply fork = post(b.port(), "/v1/sessions/" + id + "/fork");
  ASSERT_EQ(fork.status, 200);
  Reply g = post(b.port(), "/v1/sessions/" + id + "/generate", {{"max_tokens", 10}});
  EXPECT_EQ(g.body["ids"].get<std::vector<int32_t>>(), greedy(*ref, all, 10));

  // A third server continues the fork, generating from the logits stored with it.
  Server c(o);
  c.start();
  Reply gf = post(c.port(), "/v1/sessions/" + fork.body["id"].get<std::string>() + "/generate", {{"max_tokens", 10}});
  EXPECT_EQ(gf.body["ids"], g.body["ids"]);
  // Deleted on one server: gone from Redis for every other, even one holding a copy.
  EXPECT_EQ(post(c.port(), "/v1/sessions/" + id + "/tokens", {{"ids", {1}}}).status, 200);
  EXPECT_EQ(call(b.port(), "DELETE", "/v1/sessions/" + id).status, 200);
  EXPECT_EQ(post(c.port(), "/v1/sessions/" + id + "/tokens", {{"ids", {1}}}).status, 404);

  // Requests alternating between two live servers: each one's held copy goes stale when the
  // other advances the session, and is replaced by the stored state.
  const std::string s2 = new_session(b.port());
  std::vector<int32_t> fed;
  for (int i = 0; i < 4; ++i) {
    const std::vector<int32_t> piece = encode(i % 2 ? "ab" : "cde");
    fed.insert(fed.end(), piece.begin(), piece.end());
    Reply step = post((i % 2 ? b : c).port(), "/v1/sessions/" + s2 + "/tokens", {{"ids", piece}, {"logits", true}});
    EXPECT_EQ(step.body["position"], fed.size());
    EXPECT_EQ(floats(step.body["logits"]), stepped_logits(*ref, fed)) << "request " << i;
  }

  // Blobs that do not restore: another model's state, a corrupted one.
  serve::Metrics metrics;
  serve::RedisStore store(redis.url(), 0, metrics);
  LoadOptions cpu;
  cpu.backend = BackendKind::Reference;
  cpu.max_streams = 1;
  const std::string other(32, 'a'), broken(32, 'b');
  store.save(other, {load_model(kOtherModel, cpu)->snapshot(0), 0, {}});
  std::vector<uint8_t> blob = ref->snapshot(0);
  blob[blob.size() / 2] ^= 1;
  store.save(broken, {blob, 3, std::vector<float>(256, 0.0f)});
  Reply ro = post(c.port(), "/v1/sessions/" + other + "/tokens", {{"ids", {1}}});
  EXPECT_EQ(ro.status, 409);
  EXPECT_EQ(ro.body["error"]["type"], "invalid_state_error");
  EXPECT_TRUE(ro.body["error"]["message"].get<std::string>().starts_with(
      "session '" + other + "' stored in Redis does not restore into this model: state: saved from a different model"))
      << ro.body;
  Reply rb = post(c.port(), "/v1/sessions/" + broken + "/tokens", {{"ids", {1}}});
  EXPECT_EQ(rb.status, 409);
  EXPECT_TRUE(rb.body["error"]["message"].get<std::string>().starts_with(
      "session '" + broken + "' stored in Redis does not restore into this model: state:"))
      << rb.body;
  EXPECT_GT(metrics.redis_round_trips.load(), 0u);

  // More sessions than slots: with Redis, the least recently used one makes room and is loaded
  // again when asked for.
  {
    ServeOptions one = o;
    one.load.max_streams = 1;
    Server small(one);
    small.start();
    const std::string x = new_session(small.port()), y = new_session(small.port());
    EXPECT_EQ(post(small.port(), "/v1/sessions/" + x + "/tokens", {{"ids", encode("xy")}}).status, 200);
    EXPECT_EQ(post(small.port(), "/v1/sessions/" + y + "/tokens", {{"ids", encode("z")}}).status, 200);
    Reply fx = post(small.port(), "/v1/sessions/" + x + "/fork");
    expect_error(fx, 429, "capacity_error", "all 1 session slots are in use (--max-streams)");  // keeps its source
    Reply back = post(small.port(), "/v1/sessions/" + x + "/tokens", {{"ids", encode("w")}, {"logits", true}});
    EXPECT_EQ(back.body["position"], 3);
    EXPECT_EQ(floats(back.body["logits"]), stepped_logits(*ref, encode("xyw")));
    // A completion's own session is not in Redis, so it cannot be evicted: a create waits its turn.
    EXPECT_EQ(post(small.port(), "/v1/completions", {{"prompt", "a"}, {"max_tokens", 2}}).status, 200);
  }

  // Redis gone: requests that must load or save a state say so; sessions held still answer.
  redis.stop();
  Reply down = post(c.port(), "/v1/sessions");
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(down.body["error"]["type"], "storage_error");
  EXPECT_TRUE(down.body["error"]["message"].get<std::string>().starts_with("Redis at 127.0.0.1:")) << down.body;
}

// A request sent again because its answer was lost (its replica died after saving) names the
// position its ids follow: already applied, it gets the stored answer and the ids are not fed
// twice; at another position it is a 409.
TEST(ServeRedis, ARetriedRequestIsNotFedTwice) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << "redis-server did not start (scripts/setup.sh installs it)";
  ServeOptions o = options();
  o.redis_url = redis.url();
  Server a(o), b(o);
  a.start();
  b.start();
  const std::vector<int32_t> first = encode("ROMEO"), second = encode(": ay");
  std::vector<int32_t> all = first;
  all.insert(all.end(), second.begin(), second.end());
  const std::string id = new_session(a.port());
  ASSERT_EQ(post(a.port(), "/v1/sessions/" + id + "/tokens", {{"ids", first}, {"position", 0}}).status, 200);
  const json again = {{"ids", second}, {"position", first.size()}, {"logits", true}};
  Reply r1 = post(a.port(), "/v1/sessions/" + id + "/tokens", again);
  Reply r2 = post(b.port(), "/v1/sessions/" + id + "/tokens", again);  // the retry, on the other replica
  ASSERT_EQ(r1.status, 200) << r1.body;
  ASSERT_EQ(r2.status, 200) << r2.body;
  auto ref = reference_model();
  EXPECT_EQ(r2.body["position"], all.size());
  EXPECT_EQ(floats(r2.body["logits"]), stepped_logits(*ref, all));
  EXPECT_EQ(r2.body["logits"], r1.body["logits"]);
  expect_error(post(b.port(), "/v1/sessions/" + id + "/tokens", {{"ids", {1}}, {"position", 3}}), 409,
               "position_mismatch_error", "session '" + id + "' is at position 9, not 3 as the request says");
  // Without a position the ids are fed again, as asked.
  EXPECT_EQ(post(b.port(), "/v1/sessions/" + id + "/tokens", {{"ids", second}}).body["position"], all.size() + 4);
}

TEST(ServeRedis, UnreachableRedisIsAClearError) {
  ServeOptions o = options();
  o.redis_url = "redis://127.0.0.1:" + std::to_string(free_port());
  EXPECT_EQ(testing_helpers::error_of([&] { Server s(o); }),
            "cannot connect to Redis at 127.0.0.1:" + o.redis_url.substr(o.redis_url.rfind(':') + 1) +
                ": Connection refused");
  o.redis_url = "http://x";
  EXPECT_EQ(testing_helpers::error_of([&] { Server s(o); }), "--redis: expected redis://HOST[:PORT], got 'http://x'");
}

}  // namespace
// A session loaded from Redis for a request is not evicted for room before that request starts
// on it: with every other slot busy it would otherwise be the only candidate, and the request
// would find no session (seen as 404s under load after a replica died).
TEST(SessionTable, ALoadedSessionIsNotEvictedBeforeItsRequest) {
  serve::SessionTable table(2);
  serve::Session* busy = table.add("busy", 4);
  busy->persisted = true, busy->busy = true;
  serve::Session* loaded = table.add("loaded", 4);
  loaded->persisted = true, loaded->reserved = true;
  EXPECT_FALSE(table.evict_one(nullptr));
  EXPECT_EQ(table.size(), 2u);
  loaded->reserved = false;
  EXPECT_TRUE(table.evict_one(nullptr));
  EXPECT_EQ(table.find("loaded"), nullptr);
  EXPECT_NE(table.find("busy"), nullptr);
}

}  // namespace vkssm
