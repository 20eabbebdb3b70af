#!/usr/bin/python3
"""Renders the voice bank (speech_data.render_bank) to a pickle, once, for training and tests.

    render_bank.py OUT.pkl [--splits train,valid,test] [--processes 2]
"""
import argparse
import pickle
import time

import speech_data

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--splits", default="train,valid,test")
ap.add_argument("--processes", type=int, default=2)
a = ap.parse_args()
t0 = time.time()
bank = speech_data.render_bank(processes=a.processes, only_split=set(a.splits.split(",")))
with open(a.out, "wb") as f:
    pickle.dump(bank, f, protocol=4)
print("rendered %d voices in %.0f s -> %s" % (len(bank), time.time() - t0, a.out))
