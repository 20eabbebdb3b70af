#!/usr/bin/python3
"""Measures the command model on real human recordings that Debian ships, through `vkssm listen`.

    evaluate_real.py [--vkssm build/bin/vkssm] [--model models/s4d/speech-commands]
                     [--backend cpu] [--thresholds 0.7] [--noisy] [--verbose] [--asterisk-half test]
                     [--asterisk-band wide]

Everything else the project measures is synthetic speech; these are people:
- alsa-utils' speaker-test recordings (/usr/share/sounds/alsa, 48 kHz): "Front Left", "Rear
  Right", ... ("left" and "right" inside two-word phrases), "Front Center", "Rear Center" and a
  noise burst (no command);
- klettres-data (/usr/share/klettres/en and en_GB, Ogg Vorbis at 44.1 kHz, decoded by sox into a
  temporary folder): two more sets of recordings, each the 26 letters and about 20 short words
  ("dog", "key", "no") said alone: isolated monosyllables, where only "no" is a command;
- asterisk-core-sounds-en-wav (/usr/share/asterisk/sounds/en, 8 kHz telephone audio, one
  speaker): 566 voice-menu prompts, with their transcripts from
  /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz. 183 commands, nearly all
  inside running speech ("to speak with an operator, press zero", "call forward on no answer"),
  the digits said alone, and near misses said alone ("thirteen", "seventy", "nineteen").
  --asterisk-band wide takes the same prompts from asterisk-core-sounds-en-g722 instead: the same
  recordings coded with G.722, wideband (16 kHz, speech up to 7 kHz) as a microphone hears it,
  decoded by ffmpeg into a temporary folder (sox has no G.722 decoder).
(sound-theme-freedesktop's speaker-test voice, "audio-channel-front-left.oga", is the same
recordings as alsa-utils', re-encoded: their samples correlate at 0.999, so it is not a second
speaker and is not in the set.)
real_speech.py can align the asterisk prompts of one half (a fixed split by name) for training
(train_commands.py --real); --asterisk-half test then keeps only the other half, so a model
trained that way is measured on prompts it never heard (of the same speaker: the alsa-utils and
KLettres recordings are the other people). All recordings go through one
`vkssm listen --json` run as concurrent streams. The transcripts have no word times, so a
recording is scored as a bag of words: a command is detected when the recording has an event with
its word (each event counts for one said word), every event beyond the said commands is a false
alarm. Digits written as numerals are the words they are said as; "forwards" and "backwards" are
neither required nor false alarms when heard as "forward" and "backward"; text in brackets or
parentheses is not speech; the two prompts with numbers of two or more digits ("H.323") are left out.

--noisy runs every recording again as if heard in a room: resampled to 16 kHz, reverberation on
half of them, pink noise at 10-20 dB SNR (seeded; evaluate_commands' noisy condition).
"""
import argparse
import collections
import gzip
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import wave
import xml.etree.ElementTree as ET

import numpy as np

import speech_data as sd
from evaluate_commands import condition, run_listen, write_wav

ALSA = "/usr/share/sounds/alsa"
ASTERISK = "/usr/share/asterisk/sounds/en"
KLETTRES = "/usr/share/klettres"
KLETTRES_LANGUAGES = ("en", "en_GB")
ASTERISK_TEXT = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
DIGITS = "zero one two three four five six seven eight nine".split()
SOURCES = ("alsa", "klettres", "asterisk")
TOLERATED = {"forwards": "forward", "backwards": "backward"}
ASTERISK_PACKAGE = {".wav": "asterisk-core-sounds-en-wav", ".g722": "asterisk-core-sounds-en-g722"}


def tokens_of(text):
    """A transcript -> its spoken words, lower case, numerals as words; None when it has a number of
    two or more digits (said in ways the text does not fix)."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text.lower())
    out = []
    for tok in re.findall(r"[a-z']+|\d+", text):
        if tok.isdigit():
            if len(tok) > 1:
                return None
            tok = DIGITS[int(tok)]
        tok = tok.strip("'")
        if tok:
            out.append(tok)
    return out


def words_of(text):
    """A transcript -> (commands said, commands tolerated, usable, number of words)."""
    tokens = tokens_of(text)
    if tokens is None:
        return [], [], False, 0
    said = [t for t in tokens if t in sd.COMMANDS]
    tolerated = [TOLERATED[t] for t in tokens if t in TOLERATED]
    return said, tolerated, True, len(tokens)


def asterisk_half(name):
    """'train' or 'test': a fixed split of the asterisk prompts by a hash of their name (not by
    speaker: they are all one). real_speech.py aligns the train half for training."""
    return "test" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "train"


def asterisk_transcripts(asterisk, asterisk_text, ext=".wav"):
    """[(path, name, transcript)] of the prompts that are there as files ending in ext; a missing
    package is an error."""
    if not os.path.isfile(asterisk_text):
        sys.exit("evaluate_real: no transcripts at %s (Debian package asterisk-core-sounds-en; "
                 "a minimal image may leave out /usr/share/doc)" % asterisk_text)
    out = []
    with gzip.open(asterisk_text, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            path = os.path.join(asterisk, name.strip() + ext)
            if os.path.isfile(path):
                out.append((path, name.strip(), text))
    if not out:
        sys.exit("evaluate_real: no %s recordings in %s (Debian package %s)"
                 % (ext, asterisk, ASTERISK_PACKAGE[ext]))
    return out


def g722_to_wav(src, dst):
    """A G.722 prompt -> a 16 kHz WAV file (ffmpeg: Debian's G.722 decoder)."""
    try:
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "g722", "-i", src, "-ar", str(sd.SR), "-ac", "1",
                        "-c:a", "pcm_s16le", dst], check=True)
    except FileNotFoundError:
        sys.exit("evaluate_real: %s needs ffmpeg to decode G.722 (Debian package ffmpeg)" % src)
    return dst


def klettres_recordings(root, tmp):
    """KLettres' English sounds as WAV files in tmp (vkssm reads WAV, KLettres ships Ogg Vorbis)."""
    out = []
    for lang in KLETTRES_LANGUAGES:
        xml = os.path.join(root, lang, "sounds.xml")
        if not os.path.isfile(xml):
            sys.exit("evaluate_real: no %s (Debian package klettres-data)" % xml)
        for sound in ET.parse(xml).getroot().iter("sound"):
            src = os.path.join(root, sound.get("file"))
            wav = os.path.join(tmp, sound.get("file").replace("/", "_").replace(".ogg", ".wav"))
            subprocess.run(["sox", src, "-c", "1", "-b", "16", wav], check=True)
            said, tolerated, _, words = words_of(sound.get("name"))
            out.append((wav, said, tolerated, "klettres", words))
    return out


def recordings(alsa, asterisk, asterisk_text, klettres, tmp, half="all", band="narrow"):
    """[(path, said, tolerated, source, words in the transcript)] for every recording found (of the
    asterisk prompts, those of `half`: all, train or test, at 8 kHz or, band "wide", the G.722
    ones decoded into tmp); a missing package is an error."""
    out = klettres_recordings(klettres, tmp)
    names = sorted(f for f in os.listdir(alsa) if f.endswith(".wav")) if os.path.isdir(alsa) else []
    if not names:
        sys.exit("evaluate_real: no recordings in %s (Debian package alsa-utils)" % alsa)
    for f in names:
        said, tolerated, _, words = words_of(f[:-4].replace("_", " ") if f != "Noise.wav" else "")
        out.append((os.path.join(alsa, f), said, tolerated, "alsa", words))
    for path, name, text in asterisk_transcripts(asterisk, asterisk_text, ".g722" if band == "wide" else ".wav"):
        said, tolerated, usable, words = words_of(text)
        if usable and half in ("all", asterisk_half(name)):
            if band == "wide":
                path = g722_to_wav(path, os.path.join(tmp, "asterisk-" + name.replace("/", "_") + ".wav"))
            out.append((path, said, tolerated, "asterisk", words))
    return out


def seconds_of(path):
    with wave.open(path, "rb") as w:
        return w.getnframes() / w.getframerate()


def _pink(rng, n):
    return sd._colored_noise(rng, n, "pink")


def noisy_copies(recs, tmp, seed=1):
    """The recordings in a room: 16 kHz WAV copies in tmp through evaluate_commands.condition (its
    reverberation and level), with pink noise for every noise it draws (no synthetic babble here)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (path, said, tolerated, source, words) in enumerate(recs):
        pcm = subprocess.run(["sox", path, "-t", "raw", "-r", str(sd.SR), "-e", "signed", "-b", "16", "-c", "1", "-"],
                             check=True, capture_output=True).stdout
        x = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768.0
        copy = os.path.join(tmp, "noisy-%04d.wav" % i)
        write_wav(copy, condition(rng, x, True, _pink))
        out.append((copy, said, tolerated, source, words))
    return out


def score(recs, events):
    heard = collections.defaultdict(list)
    for e in events:
        heard[e["input"]].append(e["word"])
    rows = []
    for path, said, tolerated, source, words in recs:
        got = collections.Counter(heard.get(path, []))
        want = collections.Counter(said)
        hits = sum(min(n, got[w]) for w, n in want.items())
        extra = got - want
        for w in tolerated:
            if extra[w] > 0:
                extra[w] -= 1
        rows.append({"path": path, "source": source, "said": said, "heard": heard.get(path, []), "hits": hits, "alone": words == 1,
                     "false": sorted((+extra).elements())})
    return rows


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.join(here, "..", "..", "..")
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkssm", default=os.path.join(repo, "build", "bin", "vkssm"))
    ap.add_argument("--model", default="")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--thresholds", default="0.7")
    ap.add_argument("--alsa", default=ALSA)
    ap.add_argument("--asterisk", default=ASTERISK)
    ap.add_argument("--asterisk-text", default=ASTERISK_TEXT)
    ap.add_argument("--klettres", default=KLETTRES)
    ap.add_argument("--noisy", action="store_true", help="the recordings again in a room (reverberation, pink noise)")
    ap.add_argument("--verbose", action="store_true", help="every recording with a miss or a false alarm")
    ap.add_argument("--asterisk-half", default="all", choices=("all", "train", "test"),
                    help="only this half of the asterisk prompts (test: the half real_speech.py never trains on)")
    ap.add_argument("--asterisk-band", default="narrow", choices=("narrow", "wide"),
                    help="the asterisk prompts at 8 kHz (narrow) or their G.722 16 kHz recordings (wide)")
    a = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    recs = recordings(a.alsa, a.asterisk, a.asterisk_text, a.klettres, tmp.name, a.asterisk_half,
                      a.asterisk_band)
    if a.noisy:
        recs = noisy_copies(recs, tmp.name)
    minutes = sum(seconds_of(r[0]) for r in recs) / 60
    n_said = sum(len(r[1]) for r in recs)
    print("%d recordings (%s), %.1f min, %d commands said"
          % (len(recs), ", ".join("%d %s" % (sum(r[3] == src for r in recs), src) for src in SOURCES), minutes, n_said))
    for th in [float(t) for t in a.thresholds.split(",")]:
        events, stats = run_listen(a, [r[0] for r in recs], th)
        rows = score(recs, events)
        alone = [r for r in rows if r["alone"]]
        running = [r for r in rows if r not in alone]
        fa = sum(len(r["false"]) for r in rows)
        hit = sum(r["hits"] for r in rows)
        words = collections.Counter(w for r in rows for w in r["false"])
        print("threshold %.2f  detected %d/%d (%.1f %%): said alone %d/%d, with other words %d/%d; "
              "false alarms %d in %.1f min (%.1f per 10 min): %s"
              % (th, hit, n_said, 100.0 * hit / max(1, n_said), sum(r["hits"] for r in alone),
                 sum(len(r["said"]) for r in alone), sum(r["hits"] for r in running),
                 sum(len(r["said"]) for r in running), fa, minutes, 10 * fa / minutes,
                 ", ".join("%s %d" % kv for kv in words.most_common())))
        for src in SOURCES:
            rs = [r for r in rows if r["source"] == src]
            print("  %-11s detected %d/%d, false alarms %d" % (src, sum(r["hits"] for r in rs),
                                                           sum(len(r["said"]) for r in rs), sum(len(r["false"]) for r in rs)))
        print("  " + stats.splitlines()[-1] if stats else "")
        if a.verbose:
            for r in rows:
                if r["false"] or r["hits"] < len(r["said"]):
                    print("  %-60s said %-30s heard %s" % (os.path.relpath(r["path"], os.path.dirname(r["path"]) + "/.."),
                                                          " ".join(r["said"]) or "-", " ".join(r["heard"]) or "-"))


if __name__ == "__main__":
    sys.exit(main())
