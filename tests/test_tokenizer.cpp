// Tokenizers: the byte tokenizer, byte-level BPE on a small hand-written tokenizer.json, and the
// GPT-NeoX-20B tokenizer, through tests/data/gpt-neox-20b-tokenizer-subset.json: the real file cut
// down by tests/data/make_neox_tokenizer_subset.py to the merges these texts use, with the original
// ids (so it encodes them exactly as the full file does).
//
// The expected GPT-NeoX ids were traced through the full file's vocab and merges and cross-checked
// with an independent implementation of the same BPE; those of the Unicode texts (normalization,
// exact character classes) come from tests/data/tokenizer_reference.py, an independent Python
// re-implementation of Hugging Face's pipeline, through tests/data/gpt-neox-20b-unicode-ids.jsonl.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/error.h"
#include "host/tokenizer.h"
#include "host/tokenizer_normalizer.h"
#include "host/tokenizer_pretokenizer.h"
#include "tests/gguf_writer.h"

namespace vkssm {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const char* kNeoxPath = VKSSM_SOURCE_DIR "/tests/data/gpt-neox-20b-tokenizer-subset.json";
// Texts that need normalization or exact character classes, with the ids that
// tests/data/tokenizer_reference.py (an independent re-implementation of Hugging Face's
// pipeline, in Python) gives with the GPT-NeoX tokenizer: one {"text", "ids"} object a line.
const char* kNeoxUnicodeIdsPath = VKSSM_SOURCE_DIR "/tests/data/gpt-neox-20b-unicode-ids.jsonl";
// Texts with the ids Hugging Face's `tokenizers` library gives (see MatchesHuggingFaceAcrossUnicode).
const char* kNeoxHfIdsPath = VKSSM_SOURCE_DIR "/tests/data/gpt-neox-20b-hf-ids.jsonl";

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
// Unicode: normalization and the exact character classes of the GPT-2 split
// ------------------------------------------------------------------------------------------------

struct ReferenceCase {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<ReferenceCase> reference_cases(const char* path = kNeoxUnicodeIdsPath) {
  std::ifstream in(path);
  std::vector<ReferenceCase> cases;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    cases.push_back({j["text"].get<std::string>(), j["ids"].get<std::vector<int32_t>>()});
  }
  return cases;
}

// NFC, then the split with Unicode's general categories: combining accents, the Kelvin sign,
// decomposed Hangul, Vietnamese, Bengali / Burmese / Punjabi, the Hebrew gershayim, marks,
// symbols, double-struck letters, superscripts, U+FEFF, Unicode spaces, emoji sequences, added
// tokens around text that NFC changes (see UNICODE_TEXTS in the script for each line's purpose).
TEST_F(NeoxTokenizer, MatchesTheReferenceOnUnicodeTexts) {
  const std::vector<ReferenceCase> cases = reference_cases();
  ASSERT_EQ(cases.size(), 29u);
  for (const ReferenceCase& c : cases) {
    SCOPED_TRACE(c.text);
    const std::vector<int32_t> ids = tok_->encode(c.text);
    EXPECT_EQ(ids, c.ids);
    // Decoding gives the normalized text, which encodes to the same ids again.
    EXPECT_EQ(tok_->encode(tok_->decode(ids)), ids);
    EXPECT_EQ(tok_->decode(ids), normalize_unicode(c.text, {NormalForm::kNFC}));
  }
}

// Ids computed by Hugging Face's own library (the npm `tokenizers` package runs the same Rust
// code; tests/data/hf_tokenizers_ids.js): a text around every 700th code point of Unicode and
// random mixtures of scripts, marks, emoji, whitespace runs and special tokens
// (tests/data/gpt-neox-20b-hf-ids.md says how they were made).
TEST_F(NeoxTokenizer, MatchesHuggingFaceAcrossUnicode) {
  const std::vector<ReferenceCase> cases = reference_cases(kNeoxHfIdsPath);
  ASSERT_EQ(cases.size(), 2087u);
  int differ = 0;
  for (const ReferenceCase& c : cases)
    if (tok_->encode(c.text) != c.ids && ++differ <= 5) ADD_FAILURE() << "text " << nlohmann::json(c.text).dump();
  EXPECT_EQ(differ, 0);
}

TEST_F(NeoxTokenizer, NormalizesToNfcFirst) {
  // "café" with a combining acute: Hugging Face gives [68, 2320, 860], as for the composed form.
  EXPECT_THAT(tok_->encode("cafe\xCC\x81"), ElementsAre(68, 2320, 860));
  EXPECT_EQ(tok_->encode("\xE2\x84\xAA"), tok_->encode("K"));  // Kelvin sign U+212A
  // Decomposed Hangul (conjoining jamo) composes to the syllable 한.
  EXPECT_EQ(tok_->encode("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), tok_->encode("\xED\x95\x9C"));
  // U+09DC is excluded from composition: NFC decomposes it to U+09A1 U+09BC.
  EXPECT_EQ(tok_->encode("\xE0\xA7\x9C"), tok_->encode("\xE0\xA6\xA1\xE0\xA6\xBC"));
}

TEST_F(NeoxTokenizer, MalformedUtf8KeepsItsBytesAroundNormalizedText) {
  const std::string text = "cafe\xCC\x81\xFF\x80 cafe\xCC\x81\xE6\x97";
  // 0xFF has no token and is dropped (as before); the rest is kept, the valid text NFC.
  EXPECT_EQ(tok_->decode(tok_->encode(text)), "caf\xC3\xA9\x80 caf\xC3\xA9\xE6\x97");
}

// The GGUF token list (tokenizer.ggml.*) of the same file gives the same ids: NFC included.
TEST(BpeTokenizer, GgufVocabularyEncodesLikeItsTokenizerJson) {
  const gguf_test::TokenizerMeta meta = gguf_test::tokenizer_meta_from_json(kNeoxPath, 50280);
  BpeVocabulary v;
  v.tokens = meta.tokens;
  v.token_types.assign(meta.token_types.begin(), meta.token_types.end());
  v.merges = meta.merges;
  const auto from_gguf = make_bpe_tokenizer(v, "test");
  for (const ReferenceCase& c : reference_cases()) EXPECT_EQ(from_gguf->encode(c.text), c.ids) << c.text;
}

TEST(UnicodeNormalization, AllFourForms) {
  const std::string fi_kelvin = "\xEF\xAC\x81 \xE2\x84\xAA e\xCC\x81";  // ﬁ, Kelvin sign, e + acute
  EXPECT_EQ(normalize_unicode(fi_kelvin, {NormalForm::kNFC}), "\xEF\xAC\x81 K \xC3\xA9");
  EXPECT_EQ(normalize_unicode(fi_kelvin, {NormalForm::kNFD}), "\xEF\xAC\x81 K e\xCC\x81");
  EXPECT_EQ(normalize_unicode(fi_kelvin, {NormalForm::kNFKC}), "fi K \xC3\xA9");
  EXPECT_EQ(normalize_unicode(fi_kelvin, {NormalForm::kNFKD}), "fi K e\xCC\x81");
  // Canonical reordering: dot below (class 220) before circumflex (230), then composition.
  EXPECT_EQ(normalize_unicode("e\xCC\x82\xCC\xA3", {NormalForm::kNFC}), "\xE1\xBB\x87");
  EXPECT_EQ(normalize_unicode(std::string("a\0b", 3), {NormalForm::kNFC}), std::string("a\0b", 3));
  EXPECT_EQ(normalize_unicode("e\xCC\x81\xFF" "e\xCC\x81", {NormalForm::kNFC}), "\xC3\xA9\xFF\xC3\xA9");
  EXPECT_EQ(normal_form_named("NFKD"), NormalForm::kNFKD);
  EXPECT_EQ(normal_form_named("Lowercase"), std::nullopt);
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  for (std::string_view w : split_gpt2_words(text)) out.emplace_back(w);
  return out;
}

// \p{L}, \p{N} and \s are Unicode's general categories L*, N* and the separators Z* (+ controls).
TEST(Gpt2Split, UsesExactGeneralCategories) {
  // Hebrew gershayim U+05F4 is punctuation (Po), not a letter.
  EXPECT_THAT(words_of("\xD7\xA6\xD7\x94\xD7\xB4\xD7\x9C"),
              ElementsAre("\xD7\xA6\xD7\x94", "\xD7\xB4", "\xD7\x9C"));
  // ℂ ℕ ℝ are letters (Lu); superscript two is a number (No), superscript minus a symbol (Sm).
  EXPECT_THAT(words_of("\xE2\x84\x82\xE2\x84\x95 x\xC2\xB2\xE2\x81\xBB"),
              ElementsAre("\xE2\x84\x82\xE2\x84\x95", " x", "\xC2\xB2", "\xE2\x81\xBB"));
  // U+FEFF (Cf) and a combining mark (Mn) are neither letters nor numbers.
  EXPECT_THAT(words_of("\xEF\xBB\xBFHi a\xCC\x88"), ElementsAre("\xEF\xBB\xBF", "Hi", " a", "\xCC\x88"));
  // Devanagari vowel sign i (Mc) splits from its consonant; Devanagari digits are numbers.
  EXPECT_THAT(words_of("\xE0\xA4\x95\xE0\xA4\xBF \xE0\xA5\xA7\xE0\xA5\xA8"),
              ElementsAre("\xE0\xA4\x95", "\xE0\xA4\xBF", " \xE0\xA5\xA7\xE0\xA5\xA8"));
  // No-break space, ideographic space and NEL are whitespace; zero-width space (Cf) is not.
  EXPECT_THAT(words_of("a\xC2\xA0\xE3\x80\x80" "b\xC2\x85" "c\xE2\x80\x8B"),
              ElementsAre("a", "\xC2\xA0", "\xE3\x80\x80", "b", "\xC2\x85", "c", "\xE2\x80\x8B"));
}

// A tokenizer.json with NFKC: "normalized": false tokens match the raw text, before
// normalization; "normalized": true ones match the normalized text, their content normalized.
TEST(BpeTokenizer, AddedTokensMatchBeforeOrAfterNormalization) {
  TempDir dir;
  std::string json = tiny_tokenizer_json(false, false);
  const auto replace = [&](const std::string& from, const std::string& to) {
    ASSERT_NE(json.find(from), std::string::npos) << from;
    json.replace(json.find(from), from.size(), to);
  };
  replace("\"normalizer\": null",
          R"("normalizer": {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "NFKC"}]})");
  replace("\"normalized\": false}]",
          "\"normalized\": false}, {\"id\": 12, \"content\": \"\xEF\xAC\x81\", \"normalized\": true}]");
  const auto tok = load_bpe_tokenizer(dir.write("tokenizer.json", json));
  // Fullwidth ＜|endoftext|＞ becomes <|endoftext|> only by normalization: not the special token.
  EXPECT_THAT(tok->encode("\xEF\xBC\x9C|endoftext|\xEF\xBC\x9E"), testing::Not(testing::Contains(11)));
  EXPECT_THAT(tok->encode("h<|endoftext|>"), ElementsAre(0, 11));
  // The added token "ﬁ" is NFKC-normalized to "fi", so both spellings match it.
  EXPECT_THAT(tok->encode("hfi\xEF\xAC\x81"), ElementsAre(0, 12, 12));
  EXPECT_EQ(tok->decode({12}), "\xEF\xAC\x81");

  replace("{\"type\": \"NFD\"}", "{\"type\": \"Lowercase\"}");
  const std::string lower = dir.write("lower.json", json);
  EXPECT_THAT(error_of([&] { load_bpe_tokenizer(lower); }),
              AllOf(HasSubstr(lower), HasSubstr("normalizer type 'Lowercase' is not supported")));
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
