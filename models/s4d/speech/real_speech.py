"""Real speech for training: the asterisk voice-menu prompts, split in halves, with word times.

    real_speech.py --out build/speech-data/asterisk-train.pkl [--band wide]

asterisk-core-sounds-en-wav holds 566 prompts of one real speaker (8 kHz telephone audio) with
transcripts but no word times. This script
1. splits the prompts into two halves by a hash of the prompt's name (evaluate_real.asterisk_half):
   the "test" half is what evaluate_real.py --asterisk-half test measures, the "train" half may be
   trained on;
2. finds each word's start and end in the train half by forced alignment with CMU PocketSphinx
   (Debian's pocketsphinx and pocketsphinx-en-us: an HMM recognizer made for this, where our own
   model could only place the words it already hears), decoding each prompt against a grammar that
   allows exactly its transcript; a prompt whose words are not all in the pronouncing dictionary,
   or that the recognizer cannot fit to its transcript, is left out;
3. stores [{"name", "samples" (float32, 16 kHz), "words": [(word, start, end) in samples]}] for
   speech_data.ClipMaker (train_commands.py --real).
--band wide reads the same prompts from asterisk-core-sounds-en-g722 instead: the same recordings
at 16 kHz (G.722, speech up to 7 kHz), which the recognizer's 16 kHz acoustic model also fits
better than 8 kHz audio.
Only one speaker: a model trained on it must be judged on other people too (evaluate_real.py's
alsa-utils and KLettres recordings), beside a control run with the same schedule
and no real speech, and on the synthetic held-out voices.
"""
import argparse
import os
import pickle
import re
import subprocess
import sys
import tempfile
from multiprocessing import Pool

import numpy as np

import evaluate_real
import speech_data as sd

POCKETSPHINX = "/usr/share/pocketsphinx/model/en-us"
# Words of the transcripts that the CMU dictionary lacks (ARPAbet, as the dictionary writes them);
# most of the prompts with many commands in them ("to unmute, press one") need one of them.
EXTRA_PRONUNCIATIONS = {
    "unmute": "AH N M Y UW T", "unmuted": "AH N M Y UW T IH D", "umute": "AH N M Y UW T",
    "waldo's": "W AO L D OW Z", "pbx": "P IY B IY EH K S", "digium": "D IH JH IY AH M",
    "touchtone": "T AH CH T OW N", "prepend": "P R IY P EH N D", "prepending": "P R IY P EH N D IH NG",
    "undelete": "AH N D IH L IY T", "rerecord": "R IY R IH K AO R D",
}


def write_dictionary(path):
    """The CMU dictionary plus EXTRA_PRONUNCIATIONS at path -> the words it knows."""
    words, lines = set(), []
    with open(os.path.join(POCKETSPHINX, "cmudict-en-us.dict"), encoding="utf-8", errors="replace") as f:
        for line in f:
            words.add(re.sub(r"\(\d+\)$", "", line.split(" ", 1)[0]))
            lines.append(line.rstrip("\n"))
    lines += ["%s %s" % wp for wp in sorted(EXTRA_PRONUNCIATIONS.items())]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return words | set(EXTRA_PRONUNCIATIONS)


PAD = 0.5  # seconds of near-silence around a prompt: the recognizer fails on audio that starts at once


def _energy_span(x, rel=0.02):
    """(first, last + 1) sample above rel * peak."""
    idx = np.nonzero(np.abs(x) > rel * max(np.abs(x).max(), 1e-9))[0]
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, len(x))


def align(path, words, dictionary):
    """Forced alignment of one prompt -> (samples at 16 kHz, [(word, start, end)] in samples), or
    None when the recognizer does not return exactly the transcript's words. A one-word prompt the
    recognizer does not fit (its grammar search fails on most of them) spans the prompt's audio."""
    x = sd._sox_to_16k(path)
    pad = int(PAD * sd.SR)
    noise = np.random.default_rng(len(x)).integers(-2, 3, len(x) + 2 * pad)  # dither: no log of zero
    pcm = np.concatenate([np.zeros(pad), x, np.zeros(pad)]) * 32767 + noise
    with tempfile.TemporaryDirectory() as tmp:
        wav, grammar = os.path.join(tmp, "a.wav"), os.path.join(tmp, "a.jsgf")
        subprocess.run(["sox", "-t", "raw", "-r", str(sd.SR), "-e", "signed", "-b", "16", "-c", "1", "-",
                        wav], input=np.clip(pcm, -32768, 32767).astype("<i2").tobytes(), check=True)
        with open(grammar, "w") as f:
            f.write("#JSGF V1.0;\ngrammar prompt;\npublic <s> = %s;\n" % " ".join(words))
        out = subprocess.run(["pocketsphinx_continuous", "-infile", wav, "-jsgf", grammar, "-time", "yes",
                              "-beam", "1e-60", "-pbeam", "1e-60", "-wbeam", "1e-40",
                              "-hmm", os.path.join(POCKETSPHINX, "en-us"),
                              "-dict", dictionary],
                             capture_output=True, text=True).stdout
    got = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[0].startswith(("<", "[")):
            continue
        try:
            start, end = float(parts[1]) - PAD, float(parts[2]) + 0.01 - PAD
        except ValueError:
            continue
        got.append((re.sub(r"\(\d+\)$", "", parts[0]), max(0, int(start * sd.SR)), min(len(x), int(end * sd.SR))))
    if [w for w, _, _ in got] != words:
        if len(words) != 1:
            return None
        got = [(words[0],) + _energy_span(x)]
    return x.astype(np.float32), got


def _align_job(job):
    path, words, dictionary = job
    return path, align(path, words, dictionary)


def train_prompts(asterisk, transcripts, processes=2, band="narrow"):
    """The train half's prompts with word times -> ([{"name", "samples", "words"}], counts)."""
    with tempfile.TemporaryDirectory() as tmp:
        dictionary = os.path.join(tmp, "dictionary")
        known = write_dictionary(dictionary)
        jobs, names, skipped = [], {}, 0
        ext = ".g722" if band == "wide" else ".wav"
        for path, name, text in evaluate_real.asterisk_transcripts(asterisk, transcripts, ext):
            words = evaluate_real.tokens_of(text)
            if evaluate_real.asterisk_half(name) != "train" or not words:
                continue
            if any(w not in known for w in words):
                skipped += 1
                continue
            if band == "wide":
                path = evaluate_real.g722_to_wav(path, os.path.join(tmp, name.replace("/", "_") + ".wav"))
            jobs.append((path, words, dictionary))
            names[path] = name
        with Pool(processes) as pool:
            done = pool.map(_align_job, jobs, chunksize=4)
    out = [{"name": names[p], "samples": r[0], "words": r[1]} for p, r in done if r is not None]
    return out, {"prompts": len(jobs) + skipped, "not in dictionary": skipped,
                 "not aligned": sum(1 for _, r in done if r is None), "aligned": len(out)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--asterisk", default=evaluate_real.ASTERISK)
    ap.add_argument("--asterisk-text", default=evaluate_real.ASTERISK_TEXT)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--band", default="narrow", choices=("narrow", "wide"),
                    help="the 8 kHz prompts (narrow) or their G.722 16 kHz recordings (wide)")
    a = ap.parse_args()
    if not os.path.isdir(os.path.join(POCKETSPHINX, "en-us")):
        sys.exit("real_speech: no acoustic model at %s (Debian packages pocketsphinx pocketsphinx-en-us)" % POCKETSPHINX)
    prompts, counts = train_prompts(a.asterisk, a.asterisk_text, a.processes, a.band)
    seconds = sum(len(p["samples"]) for p in prompts) / sd.SR
    commands = sum(1 for p in prompts for w, _, _ in p["words"] if w in sd.COMMANDS)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "wb") as f:
        pickle.dump(prompts, f)
    print("real_speech: %s; %.1f min, %d commands -> %s" % (counts, seconds / 60, commands, a.out))


if __name__ == "__main__":
    main()
