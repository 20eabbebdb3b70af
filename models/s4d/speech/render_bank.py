#!/usr/bin/python3
"""Renders the voice bank (speech_data.render_bank) to a pickle, once, for training and tests.

    render_bank.py OUT.pkl [--splits train,valid,test] [--processes 2] [--extra-per-draw N]

--extra-per-draw N also gives every training voice draw N word sequences of its own
(speech_data.render_extra); when OUT.pkl exists already, only those are rendered and added to it.
"""
import argparse
import os
import pickle
import time

import speech_data

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--splits", default="train,valid,test")
ap.add_argument("--processes", type=int, default=2)
ap.add_argument("--extra-per-draw", type=int, default=0)
a = ap.parse_args()
t0 = time.time()
if a.extra_per_draw and os.path.exists(a.out):
    with open(a.out, "rb") as f:
        bank = pickle.load(f)
    if any("extra" in e for e in bank.values()):
        raise SystemExit("%s already holds extra word sequences" % a.out)
else:
    bank = speech_data.render_bank(processes=a.processes, only_split=set(a.splits.split(",")))
if a.extra_per_draw:
    speech_data.render_extra(bank, a.extra_per_draw, processes=a.processes)
with open(a.out, "wb") as f:
    pickle.dump(bank, f, protocol=4)
print("rendered %d voices in %.0f s -> %s" % (len(bank), time.time() - t0, a.out))
