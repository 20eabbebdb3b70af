#!/usr/bin/env python3
"""An independent reference for vkssm's byte-level BPE tokenizer: Hugging Face `tokenizers`'
pipeline re-done with the Python standard library (`unicodedata`) and the `regex` module.

    python3 tests/data/tokenizer_reference.py            # writes gpt-neox-20b-unicode-ids.jsonl
    python3 tests/data/tokenizer_reference.py --tokenizer FILE.json --jsonl < TEXTS.jsonl

The `tokenizers` package itself cannot be installed here, so its behaviour is re-implemented from
its source (tokenizers/src/tokenizer/added_vocabulary.rs, normalizers/unicode.rs,
pre_tokenizers/byte_level.rs, models/bpe/word.rs):
  1. added tokens with "normalized": false are split out of the raw text (leftmost, longest);
  2. the rest is normalized (NFC, NFD, NFKC, NFKD, or a Sequence of them) and the added tokens
     with "normalized": true (their contents normalized the same way) are split out of it;
  3. each remaining piece (with a leading space when add_prefix_space) is split by the GPT-2
     pattern; its classes are Oniguruma's: \\p{L} = general category L*, \\p{N} = N*, \\s =
     U+0009..U+000D, U+0085 and Z* separators. They are built here from `unicodedata` (not from
     the regex module's own tables), which also pins them to Python's Unicode version;
  4. every word's UTF-8 bytes, spelled in GPT-2's byte alphabet, are merged by BPE: the
     lowest-ranked adjacent pair first (leftmost on ties).
This shares no code with host/tokenizer*.cpp (a different language, regex engine and Unicode
library), so agreement between the two checks both.

Without --jsonl the script writes gpt-neox-20b-unicode-ids.jsonl beside itself: one line
{"text": ..., "ids": [...]} per text of UNICODE_TEXTS, encoded with the GPT-NeoX subset
(make_neox_tokenizer_subset.py keeps the merges these texts need, so the subset gives the full
file's ids). tests/test_tokenizer.cpp checks vkssm against that file.
"""
import argparse
import json
import os
import sys
import unicodedata

import regex

HERE = os.path.dirname(os.path.abspath(__file__))

# Texts whose tokenization depends on normalization or on exact character classes.
UNICODE_TEXTS = [
    "cafe\u0301",                                  # combining acute: NFC makes café
    "un cafe\u0301 noir, cafe\u0301s",
    "273.15 \u212a = 0 \u00b0C, 1 \u212b, 5 \u2126",  # Kelvin, Angstrom, Ohm: singletons -> K, Å, Ω
    "\u1112\u1161\u11ab\u1100\u1173\u11af \ud55c\uad6d\uc5b4",  # decomposed and composed Hangul
    "Tie\u0302\u0301ng Vie\u0323\u0302t co\u0301 da\u0302\u0301u",  # Vietnamese, marks out of order
    "\u0995\u09c7\u09be \u09a1\u09bc \u09dc \u09af\u09bc",  # Bengali: o-sign composes, 09DC excluded
    "\u1019\u103c\u1014\u103a\u1019\u102c \u1025\u102e",   # Burmese: 1025+102E composes to 1026
    "\u0a2a\u0a70\u0a1c\u0a3e\u0a2c\u0a40 \u0a33 \u0a38\u0a3c \u0a36",  # Punjabi: 0A33, 0A36 excluded
    "\u05e6\u05d4\u05f4\u05dc \u05d0\u05e8\u05d4\u05f4\u05d1",  # Hebrew gershayim U+05F4 (Po)
    "a\u0308\u0301x o\u0328\u0304 \u0915\u093f\u0924\u093e\u092c \u0645\u064e\u0631\u0652\u062d\u064e\u0628\u064b\u0627",
    "\u20ac100 \u00a92024 \u2192 \u2211 \u2605 \u2665 \u00b1\u00d7\u00f7 \u00a7\u00b6",
    "\u2102 \u2115 \u211d \u2124\u211a",            # double-struck letters (Lu)
    "x\u00b2 + y\u00b3 = z\u2074, H\u2082O, 10\u207b\u00b3 \u00bd \u2460\u2461",
    "\ufeffHello \ufeff world\ufeff",               # U+FEFF (Cf)
    "<|endoftext|>cafe\u0301<|padding|>cafe\u0301", # added tokens around text that NFC changes
    "a\u00a0b\u3000c\u2028d\u0085e\u2003\u2003f \u00a0 g",  # Unicode whitespace
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f3f3\ufe0f\u200d\U0001f308 1\ufe0f\u20e3 \U0001f1ef\U0001f1f5",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 \u0928\u092e\u0938\u094d\u0924\u0947 \u0967\u0968\u0969 \u0663\u0664",
    "\u03b1\u0301\u03b2 \u0391\u0314 \u00c5ngstr\u00f6m \u212bngstro\u0308m",
    "\ufb01le \u2460 \u3231 \uff21\uff22\uff23 \uff11\uff12",  # compatibility characters (NFC keeps)
    "don\u2019t \u201cquoted\u201d \u00abguillemets\u00bb \u2014 \u2026",
    "\u4e2d\u6587\u3001\u65e5\u672c\u8a9e\u3002\u30ab\u30bf\u30ab\u30ca \u3072\u3089\u304c\u306a",
    "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd \u0c28\u0c2e\u0c38\u0c4d\u0c15\u0c3e\u0c30\u0c02 \u0d28\u0d2e\u0d38\u0d4d\u0d15\u0d3e\u0d30\u0d02",
    "\u0b95\u0bca \u0b95\u0bc6\u0bbe \u0d15\u0d4a \u0d15\u0d46\u0d3e",  # Tamil/Malayalam two-part vowels
    "\u1e9b\u0323 \u0071\u0307\u0323 \u00e7\u0301",  # canonical reordering
    "\u2163 \u216b \u3007 \U00010140",             # Nl numbers
    "\u02b0\u02c6 \u02c2 \u00aa\u00ba \u00b5",      # modifier letters (Lm) and symbols (Sk)
    "tab\tz  \u200b\u200c\u200dzw \u00ad soft",    # zero-width and format characters
    "\u0130stanbul \u0131 \u00df \u1e9e \u01c5",   # Turkish I, sharp s, titlecase Lt
]


def byte_alphabet():
    """GPT-2's printable spelling of each byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


def char_class(predicate):
    """A regex character class of every code point (surrogates excepted) satisfying predicate."""
    ranges, start, prev = [], None, None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or not predicate(cp):
            continue
        if start is not None and cp == prev + 1:
            prev = cp
            continue
        if start is not None:
            ranges.append((start, prev))
        start = prev = cp
    ranges.append((start, prev))
    esc = lambda cp: "\\U%08x" % cp
    return "[" + "".join(esc(a) if a == b else esc(a) + "-" + esc(b) for a, b in ranges) + "]"


def gpt2_pattern():
    cat = lambda cp: unicodedata.category(chr(cp))
    letter = char_class(lambda cp: cat(cp).startswith("L"))
    number = char_class(lambda cp: cat(cp).startswith("N"))
    space = char_class(lambda cp: 9 <= cp <= 13 or cp == 0x85 or cat(cp) in ("Zs", "Zl", "Zp"))
    other = "[^" + letter[1:-1] + number[1:-1] + space[1:-1] + "]"  # [^\s\p{L}\p{N}]
    not_space = "[^" + space[1:-1] + "]"  # \S
    pattern = (rf"'s|'t|'re|'ve|'m|'ll|'d| ?{letter}+| ?{number}+| ?{other}+"
               rf"|{space}+(?!{not_space})|{space}+")
    return regex.compile(pattern)


class Tokenizer:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        self.forms = []
        self._add_normalizer(j.get("normalizer"))
        pre = j["pre_tokenizer"]
        assert pre["type"] == "ByteLevel", pre
        self.add_prefix_space = pre.get("add_prefix_space", True)
        self.use_regex = pre.get("use_regex", True)
        self.vocab = j["model"]["vocab"]
        merges = [m.split(" ") if isinstance(m, str) else m for m in j["model"]["merges"]]
        self.ranks = {}
        for r, (a, b) in enumerate(merges):
            self.ranks.setdefault((a, b), r)
        self.raw_added = {a["content"]: a["id"] for a in j["added_tokens"] if not a.get("normalized")}
        self.norm_added = {self.normalize(a["content"]): a["id"] for a in j["added_tokens"]
                           if a.get("normalized")}
        self.spell = byte_alphabet()
        self.split = gpt2_pattern()

    def _add_normalizer(self, n):
        if n is None:
            return
        if n["type"] == "Sequence":
            for inner in n["normalizers"]:
                self._add_normalizer(inner)
        else:
            assert n["type"] in ("NFC", "NFD", "NFKC", "NFKD"), n
            self.forms.append(n["type"])

    def normalize(self, text):
        for form in self.forms:
            text = unicodedata.normalize(form, text)
        return text

    @staticmethod
    def split_added(pieces, added):
        """pieces: list of str (to tokenize) or int (an added token's id)."""
        out = []
        for piece in pieces:
            if isinstance(piece, int):
                out.append(piece)
                continue
            start = pos = 0
            while pos < len(piece):
                hits = [c for c in added if c and piece.startswith(c, pos)]
                if not hits:
                    pos += 1
                    continue
                hit = max(hits, key=len)
                if pos > start:
                    out.append(piece[start:pos])
                out.append(added[hit])
                pos += len(hit)
                start = pos
            if start < len(piece):
                out.append(piece[start:])
        return out

    def words(self, text):
        """The pieces BPE works on: ids of added tokens, and words in the byte alphabet."""
        pieces = self.split_added([text], self.raw_added)
        pieces = [p if isinstance(p, int) else self.normalize(p) for p in pieces]
        pieces = self.split_added(pieces, self.norm_added)
        for p in pieces:
            if isinstance(p, int):
                yield p
                continue
            if self.add_prefix_space and not p.startswith(" "):
                p = " " + p
            for w in (self.split.findall(p) if self.use_regex else [p]):
                yield [self.spell[b] for b in w.encode("utf-8")]

    def merge(self, word):
        """BPE on one word (a list of symbols); returns the final symbols."""
        while len(word) > 1:
            best = min(((self.ranks.get((word[i], word[i + 1])), i) for i in range(len(word) - 1)
                        if (word[i], word[i + 1]) in self.ranks), default=None)
            if best is None:
                break
            i = best[1]
            word = word[:i] + [word[i] + word[i + 1]] + word[i + 2:]
        return word

    def encode(self, text):
        ids = []
        for w in self.words(text):
            if isinstance(w, int):
                ids.append(w)
            else:
                ids.extend(self.vocab[s] for s in self.merge(w) if s in self.vocab)
        return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default=os.path.join(HERE, "gpt-neox-20b-tokenizer-subset.json"))
    ap.add_argument("--jsonl", action="store_true", help="JSON strings on stdin -> id arrays on stdout")
    ap.add_argument("--out", default=os.path.join(HERE, "gpt-neox-20b-unicode-ids.jsonl"))
    args = ap.parse_args()
    tok = Tokenizer(args.tokenizer)
    if args.jsonl:
        for line in sys.stdin:
            print(json.dumps(tok.encode(json.loads(line)), separators=(",", ":")))
        return
    with open(args.out, "w", encoding="utf-8") as f:
        for text in UNICODE_TEXTS:
            f.write(json.dumps({"text": text, "ids": tok.encode(text)}, ensure_ascii=True) + "\n")
    print(f"{args.out}: {len(UNICODE_TEXTS)} texts")


if __name__ == "__main__":
    main()
