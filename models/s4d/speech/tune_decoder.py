#!/usr/bin/python3
"""Chooses the command decoder's threshold and smoothing window on the validation voices.

    tune_decoder.py --bank build/speech-data/bank.pkl --model models/s4d/speech-commands
                    [--split valid] [--min-detection 0.97] [--write]

Builds the same command and non-command streams as evaluate_commands.py for the voices of one
split (validation by default: choosing on the test voices would make their figures optimistic),
runs the model once over each stream in PyTorch (kws.CommandModel, the convolutional form; the
engine's per-hop steps give the same posteriors), then decodes the posteriors with every
(window, threshold) pair of kws.EventDecoder, the rule the engine's decoder implements. Prints
detection and false alarms per 10 minutes of non-command speech for each pair, and the pair with
the fewest false alarms whose detection rate in clean speech is at least --min-detection;
--write stores that pair in the model's config.json (speech_commands.decoder), where `vkssm
listen` reads it.
"""
import argparse
import json
import os
import pickle
import sys

import numpy as np
import torch

import evaluate_commands as ev
import features
import kws
import speech_data as sd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from reference import read_safetensors  # noqa: E402

torch.set_default_dtype(torch.float32)  # reference.py works in float64


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    model = kws.CommandModel(cfg["d_input"], cfg["d_model"], cfg["d_state"], cfg["n_layers"], cfg["d_output"])
    tensors = {k: v.float() for k, v in read_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    # The shipped encoder already holds the feature normalisation: unfold it around mean 0, std 1.
    model.load_checkpoint(tensors, torch.zeros(cfg["d_input"]), torch.ones(cfg["d_input"]))
    return model.eval()


def posteriors_of_streams(bank, split, model, seed):
    """{condition: [(logits [T, classes], truth or None, seconds)]}, the streams evaluate_commands.py
    builds with the same seed."""
    voices = sorted(v for v, e in bank.items() if e["split"] == split)
    maker = sd.ClipMaker(bank, {split}, 1.0)
    out = {}
    for cond in ("clean", "noisy"):
        rng = np.random.default_rng(seed + (cond == "noisy"))
        streams = []
        for v in voices:
            x, truth = ev.command_stream(bank, rng, v)
            x = ev.condition(rng, x, cond == "noisy", maker.babble)
            y, _ = ev.negative_stream(bank, rng, v)
            y = ev.condition(rng, y, cond == "noisy", maker.babble)
            for signal, t in ((x, truth), (y, None)):
                pcm = np.clip(np.round(signal * 32767), -32768, 32767) / 32768.0  # as the WAV file holds it
                with torch.no_grad():
                    logits = model(torch.from_numpy(features.log_mel(pcm).astype(np.float32))[None])[0].numpy()
                streams.append((logits, t, len(signal) / ev.SR))
        out[cond] = streams
    return out


def decode_and_score(streams, threshold, window, refractory):
    """-> (detection rate, false alarms per 10 minutes of non-command speech), matched by
    evaluate_commands.score, the rule the figures in the model's README come from."""
    events, scored = [], []
    for n, (logits, truth, seconds) in enumerate(streams):
        for t, k, _ in kws.EventDecoder(len(sd.COMMANDS), threshold, window, refractory).run(logits):
            events.append({"input": n, "word": sd.COMMANDS[k], "time": kws.frame_end_seconds(t)})
        scored.append((n, truth, seconds, None, None, "commands" if truth else "negative"))
    rows = ev.score(events, scored)
    negative_seconds = sum(r["seconds"] for r in rows if r["negative"])
    false_alarms = sum(len(r["false_alarms"]) for r in rows if r["negative"])
    return sum(r["hits"] for r in rows) / sum(r["commands"] for r in rows), false_alarms / negative_seconds * 600


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--windows", default="8,12,16,24")
    ap.add_argument("--thresholds", default="0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9")
    ap.add_argument("--refractory", type=int, default=30)
    ap.add_argument("--min-detection", type=float, default=0.97)
    ap.add_argument("--write", action="store_true", help="store the chosen pair in the model's config.json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    with open(a.bank, "rb") as f:
        bank = pickle.load(f)
    streams = posteriors_of_streams(bank, a.split, load_model(a.model), a.seed)
    best = None
    for window in (int(w) for w in a.windows.split(",")):
        for threshold in (float(t) for t in a.thresholds.split(",")):
            clean = decode_and_score(streams["clean"], threshold, window, a.refractory)
            noisy = decode_and_score(streams["noisy"], threshold, window, a.refractory)
            print("window %2d threshold %.2f  clean %.1f %% / %5.1f  noisy %.1f %% / %5.1f" %
                  (window, threshold, 100 * clean[0], clean[1], 100 * noisy[0], noisy[1]), flush=True)
            if clean[0] >= a.min_detection and (best is None or clean[1] < best[2][1]):
                best = (window, threshold, clean, noisy)
    if best is None:
        print("no pair detects %.1f %% of the commands" % (100 * a.min_detection))
        return 1
    print("chosen: window %d threshold %.2f (clean %.1f %% detected, %.1f false alarms per 10 min)" %
          (best[0], best[1], 100 * best[2][0], best[2][1]))
    if a.write:
        path = os.path.join(a.model, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["speech_commands"]["decoder"] = {"threshold": best[1], "window": best[0], "refractory": a.refractory}
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
