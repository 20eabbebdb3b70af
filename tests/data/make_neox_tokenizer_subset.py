#!/usr/bin/env python3
"""Makes tests/data/gpt-neox-20b-tokenizer-subset.json: the GPT-NeoX-20B tokenizer.json cut down
to what the tests' texts need, so the tokenizer tests run from a clone of the repository alone.

    python3 tests/data/make_neox_tokenizer_subset.py PATH/TO/gpt-neox-20b/tokenizer.json

The source is the tokenizer.json of EleutherAI/gpt-neox-20b (Apache-2.0; the Mamba checkpoints
ship the same file). Kept from it:
  - every added token (<|endoftext|>, <|padding|>, the runs of 2..24 spaces), so the special ids
    and the vocabulary size (one past the largest id, 50277) stay as they are;
  - every single-byte token, so any text still round-trips;
  - every merge that byte-level BPE applies while encoding TEXTS below, with the tokens those
    merges join and make, in the original order (ranks keep their order; nothing else matters).
Ids are the original ids, so the vocabulary has gaps; they decode to nothing.

Why that is enough: at each step BPE applies the lowest-ranked merge among the adjacent pairs of
the word. With a subset S of the merges that contains every merge the full set applies to a word,
the merge the full set picks is always in S and still the lowest-ranked applicable one, so the
subset encodes that word exactly like the full tokenizer. Words come from the same steps as
host/tokenizer_bpe.cpp: added tokens split out first, then the GPT-2 pre-tokenizer pattern
(here through the `regex` module: Debian python3-regex, or pip install regex).
"""
import argparse
import json
import os

import regex

import tokenizer_reference  # beside this script

# Every text tests/test_tokenizer.cpp and tests/test_gguf.cpp encode. Add a text here (and run
# this script again) before testing it.
TEXTS = [
    # test_tokenizer.cpp: NeoxTokenizer.*
    "Hello", "Hello world", " the", "The quick brown fox", "I'm here, it's 2024!", "x\n",
    "a   b\n\nc", "    def f(x):\n        return x**2", "caf\u00e9 \u65e5\u672c \U0001F600", "",
    "<|endoftext|>", "hello<|endoftext|>world", "Hello world<|endoftext|>",
    "Hello, world! This is a test.", "na\u00efve caf\u00e9 r\u00e9sum\u00e9",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\U0001F600\U0001F44D\U0001F3FD emoji",
    "   leading and trailing   ", "tabs\t\tand\nnew\n\n\nlines\r\n",
    " " * 40 + "forty spaces", "don't DON'T they'll we've I'd 's",
    "1234567890 3.14159 -42 1e10 x**2", "foo_bar(baz, qux); // <|padding|> <|endoftext|>",
    "\U0001F600", "z" * 200,
    # test_gguf.cpp: TokenizerFromGgufEncodesLikeTokenizerJson
    "Hello, world! It's a test of the tokenizer.",
    "    four leading spaces\n\n\ttabs\tand\r\nnewlines   ",
    "Numbers 1234567 and 3.14159; emails a.b@c.de; URLs https://example.com/x?y=z",
    "<|endoftext|>after the end<|padding|>",
    "na\u00efve caf\u00e9, \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac, \u0420\u0443\u0441\u0441\u043a\u0438\u0439, "
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8, emoji \U0001F642\U0001F44D\U0001F3FD",
    "they'll've we'd I'M Don't 'tis",
    "def f(x):\n        return x ** 2  # eight spaces\n",
]
# Also every text of tokenizer_reference.UNICODE_TEXTS (normalized and split as that script does).
# Texts given as bytes (not valid UTF-8).
BYTE_TEXTS = [b"bytes \xff\xfe invalid \xc3 utf-8", b"a\x80\xe6\x97 b", b"a\xff b"]

GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def split_added(text, added):
    """Splits out added tokens (longest match first, special before normalized)."""
    pieces = [text]
    for group in (
        [a for a in added if not a.get("normalized")],
        [a for a in added if a.get("normalized")],
    ):
        contents = sorted((a["content"] for a in group if a["content"]), key=len, reverse=True)
        out = []
        for piece in pieces:
            if piece is None:
                out.append(None)
                continue
            start = pos = 0
            while pos < len(piece):
                hit = next((c for c in contents if piece.startswith(c, pos)), None)
                if hit is None:
                    pos += 1
                    continue
                if pos > start:
                    out.append(piece[start:pos])
                out.append(None)  # an added token: no merges
                pos += len(hit)
                start = pos
            if start < len(piece):
                out.append(piece[start:])
        pieces = out
    return [p for p in pieces if p]


def applied_merges(word, ranks):
    """The merges BPE applies to `word` (a list of byte-level symbols): lowest rank, leftmost."""
    used = []
    while True:
        best = None
        for i in range(len(word) - 1):
            r = ranks.get((word[i], word[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return used
        r, i = best
        used.append(r)
        word = word[:i] + [word[i] + word[i + 1]] + word[i + 2:]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="the GPT-NeoX-20B tokenizer.json")
    ap.add_argument("--out", default=os.path.join(here, "gpt-neox-20b-tokenizer-subset.json"))
    args = ap.parse_args()

    with open(args.source, encoding="utf-8") as f:
        full = json.load(f)
    vocab = full["model"]["vocab"]
    merges = [m.split(" ") if isinstance(m, str) else m for m in full["model"]["merges"]]
    ranks = {}
    for r, (a, b) in enumerate(merges):
        ranks.setdefault((a, b), r)
    spell = tokenizer_reference.byte_alphabet()

    used = set()
    for raw in [t.encode("utf-8") for t in TEXTS] + BYTE_TEXTS:
        # Invalid UTF-8 stays as bytes: decode with surrogateescape, re-encode per word.
        text = raw.decode("utf-8", errors="surrogateescape")
        for piece in split_added(text, full["added_tokens"]):
            for word in GPT2_SPLIT.findall(piece):
                data = word.encode("utf-8", errors="surrogateescape")
                used.update(applied_merges([spell[b] for b in data], ranks))

    reference = tokenizer_reference.Tokenizer(args.source)
    # The texts whose ids Hugging Face's own library computed (gpt-neox-20b-hf-ids.jsonl).
    with open(os.path.join(here, "gpt-neox-20b-hf-ids.jsonl"), encoding="utf-8") as f:
        hf_texts = [json.loads(line)["text"] for line in f]
    for text in tokenizer_reference.UNICODE_TEXTS + hf_texts:
        for word in reference.words(text):
            if not isinstance(word, int):  # (an int is an added token's id)
                used.update(applied_merges(word, ranks))

    keep_merges = [merges[r] for r in sorted(used)]
    keep_tokens = {spell[b] for b in range(256)}
    for a, b in keep_merges:
        keep_tokens.update((a, b, a + b))
    keep_tokens.update(a["content"] for a in full["added_tokens"])
    sub_vocab = {t: i for t, i in sorted(vocab.items(), key=lambda kv: kv[1]) if t in keep_tokens}

    out = dict(full)
    out["model"] = dict(full["model"])
    out["model"]["vocab"] = sub_vocab
    out["model"]["merges"] = [f"{a} {b}" for a, b in keep_merges]
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{args.out}: {len(sub_vocab)} of {len(vocab)} vocabulary entries, "
          f"{len(keep_merges)} of {len(merges)} merges, {len(full['added_tokens'])} added tokens")


if __name__ == "__main__":
    main()
