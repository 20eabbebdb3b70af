#!/usr/bin/python3
"""Renders the voice bank (speech_data.render_bank) to a pickle, once, for training and tests.

    render_bank.py OUT.pkl [--splits train,valid,test] [--processes 2] [--extra-per-draw N]
                   [--phrases [--phrases-per-command N]]

--extra-per-draw N also gives every training voice draw N word sequences of its own
(speech_data.render_extra); --phrases gives every training and validation voice draw commands said
inside whole utterances (phrases.render_phrases), N per command (3 by default), replacing any
phrases OUT.pkl holds. When OUT.pkl exists already, only what these options ask for is rendered
and added to it.
"""
import argparse
import os
import pickle
import time

import phrases
import speech_data

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--splits", default="train,valid,test")
ap.add_argument("--processes", type=int, default=2)
ap.add_argument("--extra-per-draw", type=int, default=0)
ap.add_argument("--phrases", action="store_true")
ap.add_argument("--phrases-per-command", type=int, default=phrases.PHRASES_PER_COMMAND)
a = ap.parse_args()
t0 = time.time()
if (a.extra_per_draw or a.phrases) and os.path.exists(a.out):
    with open(a.out, "rb") as f:
        bank = pickle.load(f)
    if a.extra_per_draw and any("extra" in e for e in bank.values()):
        raise SystemExit("%s already holds extra word sequences" % a.out)
    if a.phrases:
        phrases.drop_phrases(bank)
else:
    bank = speech_data.render_bank(processes=a.processes, only_split=set(a.splits.split(",")))
if a.extra_per_draw:
    speech_data.render_extra(bank, a.extra_per_draw, processes=a.processes)
if a.phrases:
    phrases.render_phrases(bank, splits=("train", "valid"), per_command=a.phrases_per_command,
                           processes=a.processes)
with open(a.out, "wb") as f:
    pickle.dump(bank, f, protocol=4)
print("rendered %d voices in %.0f s -> %s" % (len(bank), time.time() - t0, a.out))
