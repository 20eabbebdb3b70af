#include "samples/serve/redis_store.h"

#include <hiredis/hiredis.h>

#include <cstring>

#include "host/error.h"

namespace vkssm::serve {

namespace {

std::string key_of(const std::string& id) { return "vkssm:session:" + id; }

int64_t parse_position(const std::string& key, const redisReply* field) {
  const std::string text(field->str, field->len);
  char* end = nullptr;
  const long long position = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || position < 0)
    throw Error("Redis key " + key + ": field 'position' is '" + text + "', not a token count");
  return position;
}

}  // namespace

// Owns one hiredis reply.
struct RedisStore::Reply {
  redisReply* r = nullptr;
  explicit Reply(redisReply* reply) : r(reply) {}
  Reply(Reply&& o) noexcept : r(o.r) { o.r = nullptr; }
  ~Reply() {
    if (r) freeReplyObject(r);
  }
};

RedisStore::RedisStore(const std::string& url, int64_t ttl_seconds, Metrics& metrics)
    : ttl_seconds_(ttl_seconds), metrics_(metrics) {
  const std::string scheme = "redis://";
  if (url.compare(0, scheme.size(), scheme) != 0)
    throw Error("--redis: expected redis://HOST[:PORT], got '" + url + "'");
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  host_ = rest.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p < 1 || p > 65535)
      throw Error("--redis: the port in '" + url + "' must be a number in [1, 65535]");
    port_ = static_cast<int>(p);
  }
  if (host_.empty()) throw Error("--redis: no host in '" + url + "'");
  address_ = host_ + ":" + std::to_string(port_);
  std::lock_guard<std::mutex> lock(mutex_);
  Reply pong = command({"PING"});
  if (pong.r->type == REDIS_REPLY_ERROR)
    throw Error("Redis at " + address_ + " refused PING: " + std::string(pong.r->str, pong.r->len));
}

RedisStore::~RedisStore() {
  if (context_) redisFree(context_);
}

void RedisStore::connect() {
  if (context_) redisFree(context_);
  const timeval timeout = {2, 0};
  context_ = redisConnectWithTimeout(host_.c_str(), port_, timeout);
  if (!context_ || context_->err) {
    const std::string why = context_ ? context_->errstr : "out of memory";
    if (context_) redisFree(context_);
    context_ = nullptr;
    throw Error("cannot connect to Redis at " + address_ + ": " + why);
  }
  redisSetTimeout(context_, timeout);
}

RedisStore::Reply RedisStore::command(const std::vector<std::string>& args) {
  metrics_.redis_round_trips.fetch_add(1);
  try {
    if (!context_) connect();
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) argv.push_back(a.data()), lens.push_back(a.size());
    auto* reply = static_cast<redisReply*>(redisCommandArgv(context_, static_cast<int>(args.size()), argv.data(), lens.data()));
    if (!reply) {
      const std::string why = context_->errstr;
      redisFree(context_);
      context_ = nullptr;  // broken: the next command reconnects
      throw Error("Redis at " + address_ + ": " + args[0] + " failed: " + why);
    }
    return Reply(reply);
  } catch (...) {
    metrics_.redis_failures.fetch_add(1);
    throw;
  }
}

void RedisStore::save(const std::string& id, const StoredSession& session) {
  std::string logits(session.logits.size() * sizeof(float), '\0');
  if (!logits.empty()) std::memcpy(logits.data(), session.logits.data(), logits.size());
  const std::string key = key_of(id);
  std::lock_guard<std::mutex> lock(mutex_);
  // HSET then EXPIRE in one MULTI/EXEC would cost the same round trips with hiredis' blocking
  // API; two commands suffice since a key without its expiry only lives longer.
  Reply set = command({"HSET", key, "state", std::string(session.state.begin(), session.state.end()), "position",
                       std::to_string(session.position), "logits", logits});
  if (set.r->type == REDIS_REPLY_ERROR) {
    metrics_.redis_failures.fetch_add(1);
    throw Error("Redis at " + address_ + " refused HSET " + key + ": " + std::string(set.r->str, set.r->len));
  }
  if (ttl_seconds_ > 0) command({"EXPIRE", key, std::to_string(ttl_seconds_)});
}

std::optional<StoredSession> RedisStore::load(const std::string& id) {
  const std::string key = key_of(id);
  std::lock_guard<std::mutex> lock(mutex_);
  Reply get = command({"HMGET", key, "state", "position", "logits"});
  const redisReply* r = get.r;
  if (r->type == REDIS_REPLY_ERROR)
    throw Error("Redis at " + address_ + " refused HMGET " + key + ": " + std::string(r->str, r->len));
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
    throw Error("Redis at " + address_ + ": unexpected reply to HMGET " + key);
  if (r->element[0]->type == REDIS_REPLY_NIL) return std::nullopt;
  for (size_t i = 0; i < 3; ++i)
    if (r->element[i]->type != REDIS_REPLY_STRING)
      throw Error("Redis key " + key + " lacks the field '" + (i == 0 ? "state" : i == 1 ? "position" : "logits") +
                  "': not a session this server wrote");
  StoredSession s;
  const redisReply* state = r->element[0];
  s.state.assign(state->str, state->str + state->len);
  s.position = parse_position(key, r->element[1]);
  const redisReply* logits = r->element[2];
  if (logits->len % sizeof(float) != 0)
    throw Error("Redis key " + key + ": field 'logits' has " + std::to_string(logits->len) +
                " bytes, not a whole number of float32 values");
  s.logits.resize(logits->len / sizeof(float));
  if (logits->len) std::memcpy(s.logits.data(), logits->str, logits->len);
  return s;
}

std::optional<int64_t> RedisStore::position(const std::string& id) {
  const std::string key = key_of(id);
  std::lock_guard<std::mutex> lock(mutex_);
  Reply get = command({"HGET", key, "position"});
  if (get.r->type == REDIS_REPLY_ERROR)
    throw Error("Redis at " + address_ + " refused HGET " + key + ": " + std::string(get.r->str, get.r->len));
  if (get.r->type == REDIS_REPLY_NIL) return std::nullopt;
  if (get.r->type != REDIS_REPLY_STRING) throw Error("Redis at " + address_ + ": unexpected reply to HGET " + key);
  return parse_position(key, get.r);
}

bool RedisStore::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Reply del = command({"DEL", key_of(id)});
  if (del.r->type == REDIS_REPLY_ERROR)
    throw Error("Redis at " + address_ + " refused DEL: " + std::string(del.r->str, del.r->len));
  return del.r->type == REDIS_REPLY_INTEGER && del.r->integer > 0;
}

}  // namespace vkssm::serve
