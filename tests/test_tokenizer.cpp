// Tokenizers: the byte tokenizer, byte-level BPE on a small hand-written tokenizer.json, and the
// GPT-NeoX-20B tokenizer, through tests/data/gpt-neox-20b-tokenizer-subset.json: the real file cut
// down by tests/data/make_neox_tokenizer_subset.py to the merges these texts use, with the original
// ids (so it encodes them exactly as the full file does).
//
// The expected GPT-NeoX ids were traced through the full file's vocab and merges and cross-checked
// with an independent implementation of the same BPE.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "host/error.h"
#include "host/tokenizer.h"

namespace vkssm {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const char* kNeoxPath = VKSSM_SOURCE_DIR "/tests/data/gpt-neox-20b-tokenizer-subset.json";

// A fresh folder under the test temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = fs::path(testing::TempDir()) /
            ("vkssm_tokenizer_" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& contents) const {
    const fs::path file = path_ / name;
    std::ofstream(file, std::ios::binary) << contents;
    return file.string();
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

// Returns the message of the vkssm::Error that `fn` throws ("" when it throws nothing).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ------------------------------------------------------------------------------------------------
// Byte tokenizer
// ------------------------------------------------------------------------------------------------

TEST(ByteTokenizer, RoundTripsEveryByte) {
  const auto tok = make_byte_tokenizer();
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::vector<int32_t> ids = tok->encode(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(ids[b], b);
  EXPECT_EQ(tok->decode(ids), all);
  EXPECT_THAT(tok->encode("Hi\n"), ElementsAre(72, 105, 10));
  EXPECT_EQ(tok->vocab_size(), 256);
  EXPECT_EQ(tok->eos_id(), -1);
  EXPECT_EQ(tok->decode_token(-1), "");
  EXPECT_EQ(tok->decode_token(256), "");
}

// ------------------------------------------------------------------------------------------------
// Byte-level BPE on a small hand-written tokenizer.json
// ------------------------------------------------------------------------------------------------

// Vocabulary strings are GPT-2 byte-level: printable ASCII stands for itself, space is "Ġ"
// (U+0120). Bytes without a token here are dropped when encoding.
std::string tiny_tokenizer_json(bool add_prefix_space, bool merges_as_pairs) {
  const std::string merges = merges_as_pairs
                                 ? R"([["h","e"], ["l","l"], ["he","ll"], ["hell","o"], ["Ġ","h"]])"
                                 : R"(["h e", "l l", "he ll", "hell o", "Ġ h"])";
  return R"({
    "version": "1.0",
    "added_tokens": [{"id": 11, "content": "<|endoftext|>", "special": true, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": )" +
         std::string(add_prefix_space ? "true" : "false") + R"(, "trim_offsets": true},
    "decoder": {"type": "ByteLevel"},
    "model": {
      "type": "BPE",
      "vocab": {"h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "he": 5, "ll": 6, "hell": 7, "hello": 8,
                "Ġh": 9, "!": 10, "<|endoftext|>": 11},
      "merges": )" +
         merges + R"(
    }
  })";
}

TEST(BpeTokenizer, MergesByRankOnSmallVocab) {
  for (bool pairs : {false, true}) {
    TempDir dir;
    const auto tok = load_bpe_tokenizer(dir.write("tokenizer.json", tiny_tokenizer_json(false, pairs)));
    EXPECT_THAT(tok->encode("hello"), ElementsAre(8));
    // "Ġ h" has a worse rank than "h e", so " hello" is Ġ + hello, not Ġh + ...
    EXPECT_THAT(tok->encode("hello hello!"), ElementsAre(8, 4, 8, 10));
    EXPECT_THAT(tok->encode(" h"), ElementsAre(9));
    EXPECT_THAT(tok->encode("hell<|endoftext|>o"), ElementsAre(7, 11, 3));
    EXPECT_EQ(tok->decode({8, 4, 8, 10, 11}), "hello hello!<|endoftext|>");
    EXPECT_EQ(tok->eos_id(), 11);
    EXPECT_EQ(tok->vocab_size(), 12);
    // Bytes with no token ('x', 'y') are dropped, as Hugging Face does without an unknown token.
    EXPECT_THAT(tok->encode("xhey"), ElementsAre(5));
  }
}

TEST(BpeTokenizer, AddPrefixSpace) {
  TempDir dir;
  const auto tok = load_bpe_tokenizer(dir.write("tokenizer.json", tiny_tokenizer_json(true, false)));
  EXPECT_THAT(tok->encode("hello"), ElementsAre(4, 8));
  EXPECT_THAT(tok->encode(" hello"), ElementsAre(4, 8));
}

// ------------------------------------------------------------------------------------------------
// The GPT-NeoX-20B tokenizer (the subset of tests/data)
// ------------------------------------------------------------------------------------------------

class NeoxTokenizer : public testing::Test {
 protected:
  // Loaded once for all tests of this suite (a load error fails the first test).
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  void SetUp() override {
    if (!tok_) tok_ = load_bpe_tokenizer(kNeoxPath).release();
  }
  static Tokenizer* tok_;
};
Tokenizer* NeoxTokenizer::tok_ = nullptr;

TEST_F(NeoxTokenizer, SizesAndSpecialTokens) {
  EXPECT_EQ(tok_->vocab_size(), 50277);
  EXPECT_EQ(tok_->eos_id(), 0);
  EXPECT_EQ(tok_->decode_token(0), "<|endoftext|>");
  EXPECT_EQ(tok_->decode_token(50276), "  ");  // added token: a run of two spaces
  EXPECT_EQ(tok_->decode_token(12092), "Hello");
  EXPECT_EQ(tok_->decode_token(1533), " world");
  // Ids past the vocabulary (Mamba pads its embedding table to 50280) decode to nothing.
  EXPECT_EQ(tok_->decode_token(50279), "");
  EXPECT_EQ(tok_->decode_token(-1), "");
}

TEST_F(NeoxTokenizer, KnownIds) {
  EXPECT_THAT(tok_->encode("Hello"), ElementsAre(12092));
  EXPECT_THAT(tok_->encode("Hello world"), ElementsAre(12092, 1533));
  EXPECT_THAT(tok_->encode(" the"), ElementsAre(253));
  EXPECT_THAT(tok_->encode("The quick brown fox"), ElementsAre(510, 3158, 8516, 30013));
  EXPECT_THAT(tok_->encode("I'm here, it's 2024!"),
              ElementsAre(42, 1353, 1060, 13, 352, 434, 1384, 1348, 2));
  EXPECT_THAT(tok_->encode("x\n"), ElementsAre(89, 187));
  // Runs of spaces are added tokens 50254.. (24 spaces down to 2).
  EXPECT_THAT(tok_->encode("a   b\n\nc"), ElementsAre(66, 50275, 67, 187, 187, 68));
  EXPECT_THAT(tok_->encode("    def f(x):\n        return x**2"),
              ElementsAre(50274, 1545, 269, 9, 89, 2262, 187, 50270, 2309, 1269, 424, 19));
  EXPECT_THAT(tok_->encode("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80"),  // café 日本 😀
              ElementsAre(68, 2320, 860, 209, 49868, 49042, 211));
  EXPECT_TRUE(tok_->encode("").empty());
}

TEST_F(NeoxTokenizer, EndOfTextInTextIsIdZero) {
  EXPECT_THAT(tok_->encode("<|endoftext|>"), ElementsAre(0));
  EXPECT_THAT(tok_->encode("hello<|endoftext|>world"), ElementsAre(25521, 0, 10186));
  EXPECT_THAT(tok_->encode("Hello world<|endoftext|>"), ElementsAre(12092, 1533, 0));
}

TEST_F(NeoxTokenizer, RoundTrips) {
  const std::vector<std::string> texts = {
      "Hello, world! This is a test.",
      "naïve café résumé",
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88",
      "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD emoji",
      "   leading and trailing   ",
      "tabs\t\tand\nnew\n\n\nlines\r\n",
      "                                        forty spaces",
      "don't DON'T they'll we've I'd 's",
      "1234567890 3.14159 -42 1e10 x**2",
      "foo_bar(baz, qux); // <|padding|> <|endoftext|>",
  };
  for (const std::string& text : texts) EXPECT_EQ(tok_->decode(tok_->encode(text)), text) << text;
}

TEST_F(NeoxTokenizer, TokensMaySplitUtf8Characters) {
  // 😀 is 4 bytes spread over 3 tokens; only the concatenation is valid UTF-8.
  const std::vector<int32_t> ids = tok_->encode("\xF0\x9F\x98\x80");
  EXPECT_THAT(ids, ElementsAre(14931, 235, 211));
  EXPECT_EQ(tok_->decode_token(211), "\x80");
  std::string joined;
  for (int32_t id : ids) joined += tok_->decode_token(id);
  EXPECT_EQ(joined, "\xF0\x9F\x98\x80");
}

TEST_F(NeoxTokenizer, MalformedUtf8AndLongInputs) {
  // Stray continuation bytes and truncated sequences keep their bytes; 0xFF (never valid in
  // UTF-8) has no token and is dropped.
  EXPECT_EQ(tok_->decode(tok_->encode("a\x80\xE6\x97 b")), "a\x80\xE6\x97 b");
  EXPECT_EQ(tok_->decode(tok_->encode("a\xFF b")), "a b");
  // One long word must not take quadratic time.
  const std::string long_word(100000, 'z');
  EXPECT_EQ(tok_->decode(tok_->encode(long_word)), long_word);
}

// ------------------------------------------------------------------------------------------------
// Errors and the per-model lookup
// ------------------------------------------------------------------------------------------------

TEST(BpeTokenizer, RejectsBadFiles) {
  TempDir dir;
  const std::string missing = dir.path() + "/nope.json";
  EXPECT_THAT(error_of([&] { load_bpe_tokenizer(missing); }),
              AllOf(HasSubstr(missing), HasSubstr("does not exist")));
  EXPECT_THAT(error_of([&] { load_bpe_tokenizer(dir.path()); }), HasSubstr("not a regular file"));

  const std::string bad_json = dir.write("bad.json", "{\"model\": ");
  EXPECT_THAT(error_of([&] { load_bpe_tokenizer(bad_json); }),
              AllOf(HasSubstr(bad_json), HasSubstr("invalid JSON")));

  const std::string not_bpe = dir.write(
      "wordpiece.json", R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  EXPECT_THAT(error_of([&] { load_bpe_tokenizer(not_bpe); }),
              AllOf(HasSubstr(not_bpe), HasSubstr("model type 'WordPiece' is not supported")));

  std::string json = tiny_tokenizer_json(false, false);
  const std::string metaspace = dir.write(
      "metaspace.json",
      std::string(json).replace(json.find("\"ByteLevel\", \"add"), 11, "\"Metaspace\""));
  EXPECT_THAT(error_of([&] { load_bpe_tokenizer(metaspace); }),
              HasSubstr("pre_tokenizer type 'Metaspace' is not supported"));

  const std::string bad_merge =
      dir.write("merge.json", std::string(json).replace(json.find("\"h e\""), 5, "\"h q\""));
  EXPECT_THAT(error_of([&] { load_bpe_tokenizer(bad_merge); }),
              HasSubstr("merge 0 ('h' + 'q') names a token missing from model.vocab"));

  const std::string bad_id =
      dir.write("id.json", std::string(json).replace(json.find("\"o\": 3"), 6, "\"o\": -3"));
  EXPECT_THAT(error_of([&] { load_bpe_tokenizer(bad_id); }),
              HasSubstr("vocab entry 'o' has id -3"));

  const std::string no_model = dir.write("nomodel.json", R"({"added_tokens": []})");
  EXPECT_THAT(error_of([&] { load_bpe_tokenizer(no_model); }), HasSubstr("no \"model\" object"));
}

TEST(TokenizerForModel, PicksBytesFileOrNothing) {
  TempDir dir;
  const auto bytes = load_tokenizer_for_model(dir.path(), {{"vkssm_tokenizer", "bytes"}});
  ASSERT_NE(bytes, nullptr);
  EXPECT_EQ(bytes->vocab_size(), 256);

  EXPECT_EQ(load_tokenizer_for_model(dir.path(), {{"d_model", 16}}), nullptr);

  EXPECT_THAT(error_of([&] { load_tokenizer_for_model(dir.path(), {{"vkssm_tokenizer", "spm"}}); }),
              HasSubstr("unknown vkssm_tokenizer \"spm\""));

  dir.write("tokenizer.json", tiny_tokenizer_json(false, false));
  const auto bpe = load_tokenizer_for_model(dir.path(), {{"d_model", 16}});
  ASSERT_NE(bpe, nullptr);
  EXPECT_THAT(bpe->encode("hello"), ElementsAre(8));
}

}  // namespace
}  // namespace vkssm
