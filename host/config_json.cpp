#include "host/config_json.h"

#include <cmath>

#include "host/error.h"

namespace vkssm {

using nlohmann::json;

std::string describe_json(const json& v) {
  return v.is_primitive() ? v.dump() : std::string("(") + v.type_name() + ")";
}

int64_t get_int(const json& j, const std::string& key, const std::string& source) {
  if (!j.contains(key)) throw Error("missing key '" + key + "' in " + source);
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return int64_t(d);
  }
  throw Error("key '" + key + "' in " + source + " must be an integer, got " + describe_json(v));
}

int64_t get_int(const json& j, const std::string& key, const std::string& source, int64_t dflt) {
  return j.contains(key) && !j[key].is_null() ? get_int(j, key, source) : dflt;
}

bool get_bool(const json& j, const std::string& key, const std::string& source, bool dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean())
    throw Error("key '" + key + "' in " + source + " must be true or false, got " + describe_json(j[key]));
  return j[key].get<bool>();
}

double get_number(const json& j, const std::string& key, const std::string& source, double dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number())
    throw Error("key '" + key + "' in " + source + " must be a number, got " + describe_json(j[key]));
  return j[key].get<double>();
}

void check_dim_range(const std::string& arch, const char* what, int64_t v, int64_t max, const std::string& source) {
  if (v < 1 || v > max)
    throw Error(arch + " " + what + " in " + source + " must be between 1 and " + std::to_string(max) +
                ", got " + std::to_string(v));
}

}  // namespace vkssm
