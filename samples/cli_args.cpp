#include "samples/cli_args.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace vkssm::cli {

namespace {

const Flag* find_flag(const std::vector<Flag>& flags, const std::string& name) {
  for (const Flag& f : flags)
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace

Args::Args(const std::vector<std::string>& words, const std::vector<Flag>& flags, bool positionals) {
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word == "-h" || word == "--help") {
      help_ = true;
      continue;
    }
    // "--name=value" carries its value inline; "--name value" takes the next word, even when that
    // word starts with '-' (so "--temperature -1" reaches the range check, not "unknown option").
    std::string name = word, value;
    bool inline_value = false;
    if (size_t eq = word.find('='); word.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = word.substr(0, eq);
      value = word.substr(eq + 1);
      inline_value = true;
    }
    if (name.empty() || name[0] != '-' || name == "-") {
      if (!positionals) throw UsageError("unexpected argument '" + word + "'");
      positional_.push_back(word);
      continue;
    }
    const Flag* flag = find_flag(flags, name);
    if (!flag) throw UsageError("unknown option '" + name + "'");
    if (flag->value_name.empty()) {
      if (inline_value) throw UsageError("option " + name + " takes no value");
    } else if (!inline_value) {
      if (i + 1 >= words.size()) throw UsageError("option " + name + " requires a value");
      value = words[++i];
    }
    std::vector<std::string>& given = values_[name];
    if (!given.empty() && !flag->repeatable) throw UsageError("option " + name + " given twice");
    given.push_back(value);
  }
}

const std::string& Args::get(const std::string& name) const { return get_all(name).front(); }

std::string Args::get_or(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.front();
}

const std::vector<std::string>& Args::get_all(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw UsageError("missing required option " + name);
  return it->second;
}

int64_t parse_int(const std::string& flag, const std::string& text, int64_t min, int64_t max) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end || v < min || v > max) {
    throw UsageError(flag + ": expected an integer in [" + std::to_string(min) + ", " +
                     std::to_string(max) + "], got '" + text + "'");
  }
  return v;
}

uint64_t parse_u64(const std::string& flag, const std::string& text) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end)
    throw UsageError(flag + ": expected a non-negative integer, got '" + text + "'");
  return v;
}

float parse_float(const std::string& flag, const std::string& text, float min, float max) {
  float v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  // !(v >= min) also rejects NaN ("nan" parses).
  if (text.empty() || ec != std::errc() || ptr != end || !(v >= min) || v > max) {
    std::ostringstream msg;
    msg << flag << ": expected a number in [" << min << ", " << max << "], got '" << text << "'";
    throw UsageError(msg.str());
  }
  return v;
}

std::vector<int32_t> parse_ids(const std::string& flag, const std::string& text) {
  const std::string expected = flag + ": expected comma-separated token ids like 1,2,3";
  if (text.empty()) throw UsageError(expected + ", got an empty list");
  std::vector<int32_t> ids;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int32_t id = 0;
    const char* end = item.data() + item.size();
    auto [ptr, ec] = std::from_chars(item.data(), end, id);
    // from_chars accepts a leading '-': token ids are never negative.
    if (item.empty() || item[0] == '-' || ec != std::errc() || ptr != end)
      throw UsageError(expected + ", got '" + text + "' (bad item '" + item + "')");
    ids.push_back(id);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ids;
}

std::string format_flags(const std::vector<Flag>& flags) {
  std::ostringstream out;
  for (const Flag& f : flags) {
    std::string left = "  " + f.name + " " + f.value_name;
    out << left;
    // Align the help column; long names get at least two spaces.
    out << std::string(left.size() < 26 ? 26 - left.size() : 2, ' ') << f.help << "\n";
  }
  out << "  -h, --help" << std::string(14, ' ') << "show this help\n";
  return out.str();
}

}  // namespace vkssm::cli
