#pragma once
// Reading request bodies for `vkssm serve`: every field checked for type and range, with a 400
// naming the field, the allowed range and the value received.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vkssm::serve {

using json = nlohmann::json;

// An error answer: {"error": {"message": ..., "type": ...}} with this status.
struct HttpError {
  int status;
  std::string type;
  std::string message;
};

HttpError bad_request(const std::string& message);  // 400 invalid_request_error
// JSON text; invalid UTF-8 (a byte-level token may cut a character in two) becomes U+FFFD
// instead of failing the whole answer.
std::string dump(const json& j);

// The body as a JSON object ({} when empty). Throws HttpError.
json parse_body(const std::string& text);
// Optional fields: `fallback` when absent or null. Throw HttpError on a wrong type or range.
int64_t int_field(const json& body, const char* name, int64_t fallback, int64_t min, int64_t max);
uint64_t seed_field(const json& body);  // "seed": a non-negative integer, default 0
double number_field(const json& body, const char* name, double fallback, double min, double max);
bool bool_field(const json& body, const char* name);  // default false
// A non-empty array of token ids in [0, vocab); `name` is how errors call it.
std::vector<int32_t> ids_field(const json& value, const char* name, int64_t vocab);

}  // namespace vkssm::serve
