#include "samples/serve/json_fields.h"

namespace vkssm::serve {

HttpError bad_request(const std::string& message) { return {400, "invalid_request_error", message}; }

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json parse_body(const std::string& text) {
  if (text.empty()) return json::object();
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) throw bad_request("the request body is not valid JSON");
  if (!body.is_object()) throw bad_request("the request body must be a JSON object");
  return body;
}

int64_t int_field(const json& body, const char* name, int64_t fallback, int64_t min, int64_t max) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < min || it->get<int64_t>() > max ||
      (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(max)))
    throw bad_request(std::string("'") + name + "' must be an integer in [" + std::to_string(min) + ", " +
                      std::to_string(max) + "], got " + dump(*it));
  return it->get<int64_t>();
}

uint64_t seed_field(const json& body) {
  auto it = body.find("seed");
  if (it == body.end() || it->is_null()) return 0;
  if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<int64_t>() < 0))
    throw bad_request("'seed' must be a non-negative integer, got " + dump(*it));
  return it->get<uint64_t>();
}

double number_field(const json& body, const char* name, double fallback, double min, double max) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number() || !(it->get<double>() >= min && it->get<double>() <= max))
    throw bad_request(std::string("'") + name + "' must be a number in [" + json(min).dump() + ", " +
                      json(max).dump() + "], got " + dump(*it));
  return it->get<double>();
}

bool bool_field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return false;
  if (!it->is_boolean()) throw bad_request(std::string("'") + name + "' must be true or false, got " + dump(*it));
  return it->get<bool>();
}

std::vector<int32_t> ids_field(const json& value, const char* name, int64_t vocab) {
  if (!value.is_array() || value.empty())
    throw bad_request(std::string("'") + name + "' must be a non-empty array of token ids");
  std::vector<int32_t> ids;
  ids.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const json& v = value[i];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab ||
        (v.is_number_unsigned() && v.get<uint64_t>() >= uint64_t(vocab)))
      throw bad_request(std::string("'") + name + "[" + std::to_string(i) + "]' = " + dump(v) +
                        " is not a token id of this model (vocabulary [0, " + std::to_string(vocab) + "))");
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return ids;
}

}  // namespace vkssm::serve
