#!/usr/bin/env python3
"""Streaming generation with the shipped byte-level Mamba-1 (models/mamba1/tiny-shakespeare).

    PYTHONPATH=build/python python3 python/examples/generate_stream.py --prompt "ROMEO:" -n 200

Text is printed as it is sampled (on the device: only the token id comes back per step).
"""
import argparse
import pathlib
import sys
import time

import vkssm

ROOT = pathlib.Path(__file__).resolve().parents[2]

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=str(ROOT / "models/mamba1/tiny-shakespeare"))
parser.add_argument("--prompt", default="ROMEO:")
parser.add_argument("-n", type=int, default=200, help="tokens to generate")
parser.add_argument("--temperature", type=float, default=0.8)
parser.add_argument("--top-k", type=int, default=0)
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--backend", choices=["auto", "vulkan", "cpu", "reference"], default="auto")
args = parser.parse_args()

model = vkssm.load(args.model, backend=args.backend, max_streams=1)
print(args.prompt, end="", flush=True)
start = time.perf_counter()
text = vkssm.generate(model, args.prompt, max_tokens=args.n, temperature=args.temperature, top_k=args.top_k,
                      seed=args.seed, on_text=lambda piece: print(piece, end="", flush=True))
seconds = time.perf_counter() - start
print()
print(f"{len(model.tokenizer.encode(text))} tokens in {seconds:.2f} s on {model.info.backend} ({model.info.device})",
      file=sys.stderr)
