import json, random, sys
random.seed(7)
out = []
# Every code point (skip surrogates), in a few contexts.
for cp in range(0x20, 0x110000):
    if 0xD800 <= cp <= 0xDFFF: continue
    ch = chr(cp)
    if cp % 3 == 0: out.append(f"a{ch} {ch}b {ch}{ch}")
    elif cp % 3 == 1: out.append(f" {ch}1 x{ch}")
    else: out.append(f"{ch}'s {ch}  {ch}\n")
# Random mixtures of scripts, marks, emoji, whitespace runs, specials.
pools = [range(0x41,0x7b), range(0x300,0x370), range(0x400,0x4ff), range(0x590,0x600), range(0x600,0x6ff),
         range(0x900,0x97f), range(0x980,0x9ff), range(0xa00,0xa7f), range(0x1000,0x109f), range(0x1100,0x11ff),
         range(0x3040,0x30ff), range(0x4e00,0x4f00), range(0xac00,0xad00), range(0x1f300,0x1f6ff), range(0x2000,0x206f),
         range(0x2100,0x214f), range(0xfe00,0xfe10), range(0x1f3fb,0x1f400)]
specials = ["<|endoftext|>", "<|padding|>", " ", "  ", "\t", "\n\n", "\u200d", "\ufeff", "'s", "'ll", "123", "4567"]
for i in range(30000):
    parts = []
    for _ in range(random.randint(1, 12)):
        if random.random() < 0.15: parts.append(random.choice(specials))
        else: parts.append(chr(random.choice(random.choice(pools))))
    out.append("".join(parts))
for t in out: sys.stdout.write(json.dumps(t) + "\n")
