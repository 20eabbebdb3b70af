#!/usr/bin/env python3
"""Several WAV files as concurrent command streams with the speech listener.

    PYTHONPATH=build/python python3 python/examples/listen_streams.py models/s4d/speech-commands/demo/*.wav

Each file is one stream, fed in 100 ms chunks from its own thread as if it were live audio; the
main thread runs the batched model hops (one step for all streams per 10 ms of audio) and prints
each command as it is decided. Files: 16-bit PCM WAV, mono or stereo, any sample rate.
"""
import argparse
import threading
import time
import wave

import numpy as np

import vkssm

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("wavs", nargs="+")
parser.add_argument("--backend", choices=["auto", "vulkan", "cpu", "reference"], default="auto")
parser.add_argument("--realtime", action="store_true", help="push audio at its real pace")
args = parser.parse_args()


def read_wav(path):
    with wave.open(path) as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: only 16-bit PCM in this example")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return w.getframerate(), pcm.mean(axis=1).astype(np.int16) if pcm.shape[1] > 1 else pcm[:, 0].copy()


listener = vkssm.Listener(backend=args.backend, max_streams=len(args.wavs))  # the shipped model


def feed(stream, rate, pcm):
    chunk = rate // 10
    for start in range(0, len(pcm), chunk):
        listener.push(stream, pcm[start:start + chunk])  # thread-safe, releases the GIL
        if args.realtime:
            time.sleep(0.1)
    listener.finish(stream)


names = {}
threads = []
for path in args.wavs:
    rate, pcm = read_wav(path)
    stream = listener.open_stream(rate)
    names[stream] = path
    threads.append(threading.Thread(target=feed, args=(stream, rate, pcm)))
for t in threads:
    t.start()

print("STREAM\tSECONDS\tWORD\tSCORE\tFILE")
while True:
    hops = listener.process()
    for e in listener.poll():
        print(f"{e.stream}\t{e.time:.2f}\t{e.word}\t{e.score:.3f}\t{names[e.stream]}", flush=True)
    if hops == 0:
        if listener.open_streams == 0 and not any(t.is_alive() for t in threads):
            break
        time.sleep(0.005)
for t in threads:
    t.join()
