// `vkssm tokenize` / `vkssm detokenize` (samples/tokenize_command.h).
#include "samples/tokenize_command.h"

#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "host/error.h"
#include "host/gguf.h"
#include "host/tokenizer.h"

namespace vkssm::cli {

const std::vector<Flag> kTokenizeFlags = {
    {"--tokenizer", "FILE", "a tokenizer.json, or a .gguf file with a tokenizer in its metadata"},
    {"--model", "PATH", "use this checkpoint's tokenizer (folder or .gguf file)"},
    {"--jsonl", "", "one JSON value per line in and out instead of a single text"},
};

const char* const kTokenizeDetails =
    "Without --jsonl, all of standard input is one text (bytes as they are, no newline\n"
    "stripped) and the ids are printed comma-separated on one line. With --jsonl, each input\n"
    "line is a JSON string and each output line the JSON array of its ids.\n"
    "Input that is not valid UTF-8 keeps its bytes: each stray byte is a character of its own.\n";

const char* const kDetokenizeDetails =
    "Without --jsonl, standard input holds comma-separated ids (surrounding whitespace ignored)\n"
    "and the text's bytes are written exactly, with no newline added. With --jsonl, each input\n"
    "line is a JSON array of ids and each output line the JSON string of its text; bytes that do\n"
    "not form valid UTF-8 (ids ending inside a character) become U+FFFD there.\n";

namespace {

std::unique_ptr<Tokenizer> tokenizer_from_args(const Args& args) {
  if (args.has("--tokenizer") == args.has("--model"))
    throw UsageError("give either --tokenizer FILE or --model PATH");
  std::error_code ec;
  if (args.has("--tokenizer")) {
    const std::string& file = args.get("--tokenizer");
    if (std::filesystem::path(file).extension() == ".gguf") {
      std::unique_ptr<Tokenizer> t = load_gguf_tokenizer(*GgufFile::open(file));
      if (!t) throw Error("GGUF file '" + file + "' holds no tokenizer (no tokenizer.ggml.model)");
      return t;
    }
    return load_bpe_tokenizer(file);
  }
  const std::string& path = args.get("--model");
  if (!std::filesystem::exists(path, ec)) throw Error("model path '" + path + "' does not exist");
  std::unique_ptr<Tokenizer> t = load_tokenizer_for_path(path);
  if (!t) throw Error("model '" + path + "' has no tokenizer (no tokenizer.json, no GGUF tokenizer)");
  return t;
}

std::string read_all_stdin() {
  std::ostringstream s;
  s << std::cin.rdbuf();
  return s.str();
}

// Each line of standard input, numbered from 1, to `fn`; stops with an error naming the line.
template <typename Fn>
void for_each_jsonl_line(Fn&& fn) {
  std::string line;
  for (size_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = "standard input line " + std::to_string(number);
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": invalid JSON: " + e.what());
    }
    fn(value, where);
    std::cout.flush();  // a pipe's other end gets each answer as soon as it is ready
  }
}

void check_id(int64_t id, const Tokenizer& tok, const std::string& where, size_t position) {
  if (id < 0 || id >= tok.vocab_size())
    throw Error(where + ": token id " + std::to_string(id) + " at position " + std::to_string(position) +
                " is out of range for vocabulary size " + std::to_string(tok.vocab_size()));
}

}  // namespace

int cmd_tokenize(const Args& args) {
  const std::unique_ptr<Tokenizer> tok = tokenizer_from_args(args);
  if (!args.has("--jsonl")) {
    const std::vector<int32_t> ids = tok->encode(read_all_stdin());
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) out.append(i ? "," : "").append(std::to_string(ids[i]));
    std::cout << out << "\n";
    return 0;
  }
  for_each_jsonl_line([&](const nlohmann::json& value, const std::string& where) {
    if (!value.is_string()) throw Error(where + ": expected a JSON string, got " + value.dump());
    std::cout << nlohmann::json(tok->encode(value.get<std::string>())).dump() << "\n";
  });
  return 0;
}

int cmd_detokenize(const Args& args) {
  const std::unique_ptr<Tokenizer> tok = tokenizer_from_args(args);
  if (!args.has("--jsonl")) {
    const std::string input = read_all_stdin();
    const size_t first = input.find_first_not_of(" \t\r\n");
    std::vector<int32_t> ids;
    if (first != std::string::npos) {
      const std::string list = input.substr(first, input.find_last_not_of(" \t\r\n") + 1 - first);
      try {
        ids = parse_ids("standard input", list);
      } catch (const UsageError& e) {
        throw Error(e.what());  // bad data, not a bad command line
      }
    }
    for (size_t i = 0; i < ids.size(); ++i) check_id(ids[i], *tok, "standard input", i);
    std::cout << tok->decode(ids);
    return 0;
  }
  for_each_jsonl_line([&](const nlohmann::json& value, const std::string& where) {
    const auto bad = [&] { return Error(where + ": expected a JSON array of token ids, got " + value.dump()); };
    if (!value.is_array()) throw bad();
    std::vector<int32_t> ids;
    for (const nlohmann::json& id : value) {
      if (!id.is_number_integer()) throw bad();
      check_id(id.get<int64_t>(), *tok, where, ids.size());
      ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    std::cout << nlohmann::json(tok->decode(ids)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  });
  return 0;
}

}  // namespace vkssm::cli
