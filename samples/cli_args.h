#pragma once
// A tiny command-line parser for the `vkssm` tool.
//
// Each subcommand declares its options as a list of Flag; Args accepts `--name value`,
// `--name=value` and `-h`/`--help`, and nothing else. Every mistake (unknown option, missing value,
// option given twice unless it is declared repeatable, malformed number) throws UsageError, which
// the tool reports with exit code 2, as opposed to vkssm::Error (a runtime failure, exit code 1).
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace vkssm::cli {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One option of a subcommand. An option takes a value unless its value_name is empty: then it
// is a switch (`--json`), read with Args::has. -h/--help is built in.
struct Flag {
  std::string name;        // as typed: "--model", "-n"
  std::string value_name;  // shown in the help: "PATH", "N"; "" for a switch
  std::string help;        // one line
  // May be given several times (`--ids 1,2 --ids 3`); read all values with Args::get_all. Any
  // other option given twice is a usage error, which catches typos like a doubled --model.
  bool repeatable = false;
};

class Args {
 public:
  // Parses the words after the subcommand. Throws UsageError. With `positionals`, words that are
  // not options (and "-", standard input) are kept in order for positional(); otherwise they are
  // usage errors.
  Args(const std::vector<std::string>& words, const std::vector<Flag>& flags, bool positionals = false);
  const std::vector<std::string>& positional() const { return positional_; }

  bool help() const { return help_; }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  // The value of a required option; throws UsageError naming the option when it is absent.
  // For a repeatable option this is the first value given.
  const std::string& get(const std::string& name) const;
  std::string get_or(const std::string& name, const std::string& fallback) const;
  // Every value of an option, in command-line order; throws UsageError when it is absent.
  const std::vector<std::string>& get_all(const std::string& name) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;  // never holds an empty list
  std::vector<std::string> positional_;
  bool help_ = false;
};

// Strict number parsing: the whole text must be the number, and it must lie in [min, max].
// Messages name `flag`, e.g. "-n: expected an integer in [0, 1000000], got 'x'".
int64_t parse_int(const std::string& flag, const std::string& text, int64_t min, int64_t max);
uint64_t parse_u64(const std::string& flag, const std::string& text);
float parse_float(const std::string& flag, const std::string& text, float min, float max);

// "1,2,3" -> {1, 2, 3}. Rejects empty lists, empty items ("1,,2"), signs, spaces and anything
// that is not a decimal token id below 2^31.
std::vector<int32_t> parse_ids(const std::string& flag, const std::string& text);

// "  --model PATH      help" lines for a subcommand's help text.
std::string format_flags(const std::vector<Flag>& flags);

}  // namespace vkssm::cli
