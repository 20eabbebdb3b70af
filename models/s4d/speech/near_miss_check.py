#!/usr/bin/python3
"""How often a near-miss word said alone fires the command it resembles.

    near_miss_check.py --bank build/speech-data/bank.pkl --model models/s4d/speech-commands [--split test]

For each command and each of its near misses in speech_data.NEAR_MISSES, every voice of the split
says the command and the near miss alone (its first rendering, 0.25 s of silence before and
0.75 s after, at a tenth of its rendered level); the model (kws.CommandModel in PyTorch, which gives the
engine's posteriors) runs over each, and the command's posterior is averaged over 8 hops as the
decoder does. Prints, per pair, on how many voices the command's average reaches --level when the
command is said and when the near miss is said: a model that hears "three" in "tree" shows it here
plainly, where evaluate_commands.py only counts false alarms in running speech.
"""
import argparse
import pickle

import numpy as np
import torch

import features
import speech_data as sd
from tune_decoder import load_model


def smoothed_peak(model, x, command, window=8):
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(features.log_mel(x).astype(np.float32))[None])[0], -1).numpy()
    return np.convolve(p[:, command], np.ones(window) / window, mode="valid").max()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--level", type=float, default=0.7)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(a.model)
    with open(a.bank, "rb") as f:
        bank = pickle.load(f)
    voices = sorted(v for v, e in bank.items() if e["split"] == a.split)

    def alone(voice, text):
        x = bank[voice]["draws"][0][text].astype(np.float64) * 0.1
        return np.concatenate([np.zeros(4000), x, np.zeros(12000)])

    print("%-9s %-11s %9s %9s  (voices whose smoothed posterior reaches %.2f, of %d)" %
          ("command", "near miss", "command", "near miss", a.level, len(voices)))
    for command, near in sd.NEAR_MISSES.items():
        c = sd.COMMANDS.index(command)
        said = sum(smoothed_peak(model, alone(v, command), c) >= a.level for v in voices)
        for word in near:
            heard = sum(smoothed_peak(model, alone(v, word), c) >= a.level for v in voices)
            print("%-9s %-11s %9d %9d" % (command, word, said, heard), flush=True)


if __name__ == "__main__":
    main()
