#pragma once
// Typed reads of config.json keys with errors that name the key and the file. Shared by every
// architecture's config parser.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace vkssm {

// A value for an error message: scalars as written, containers by type only (dump() recurses,
// and a hostile file could nest deep enough to overflow the stack).
std::string describe_json(const nlohmann::json& v);

// An integer key (a float with an integral value, e.g. 768.0, is accepted too). The first form
// throws when the key is missing; the second returns `dflt` when it is missing or null.
int64_t get_int(const nlohmann::json& j, const std::string& key, const std::string& source);
int64_t get_int(const nlohmann::json& j, const std::string& key, const std::string& source, int64_t dflt);
bool get_bool(const nlohmann::json& j, const std::string& key, const std::string& source, bool dflt);
double get_number(const nlohmann::json& j, const std::string& key, const std::string& source, double dflt);

// Throws "<arch> <what> in <source> must be between 1 and <max>, got <v>" unless 1 <= v <= max.
void check_dim_range(const std::string& arch, const char* what, int64_t v, int64_t max, const std::string& source);


}  // namespace vkssm
