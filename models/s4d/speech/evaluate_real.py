#!/usr/bin/python3
"""Measures the command model on real human recordings that Debian ships, through `vkssm listen`.

    evaluate_real.py [--vkssm build/bin/vkssm] [--model models/s4d/speech-commands]
                     [--backend cpu] [--thresholds 0.7] [--verbose]

Everything else the project measures is synthetic speech; these are people:
- alsa-utils' speaker-test recordings (/usr/share/sounds/alsa, 48 kHz): "Front Left", "Rear
  Right", ... ("left" and "right" inside two-word phrases), "Front Center", "Rear Center" and a
  noise burst (no command);
- asterisk-core-sounds-en-wav (/usr/share/asterisk/sounds/en, 8 kHz telephone audio, one
  speaker): 568 voice-menu prompts, with their transcripts from
  /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz. About 200 commands, nearly all
  inside running speech ("to speak with an operator, press zero", "call forward on no answer"),
  the digits said alone, and near misses said alone ("thirteen", "seventy", "nineteen").
None of it is ever trained on. All recordings go through one `vkssm listen --json` run as
concurrent streams. The transcripts have no word times, so a recording is scored as a bag of
words: a command is detected when the recording has an event with its word (each event counts
for one said word), every event beyond the said commands is a false alarm. Digits written as
numerals are the words they are said as; "forwards" and "backwards" are neither required nor
false alarms when heard as "forward" and "backward"; text in brackets or parentheses is not
speech; the two prompts with numbers of two or more digits ("H.323") are left out.
"""
import argparse
import collections
import gzip
import os
import re
import sys
import wave

import speech_data as sd
from evaluate_commands import run_listen

ALSA = "/usr/share/sounds/alsa"
ASTERISK = "/usr/share/asterisk/sounds/en"
ASTERISK_TEXT = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
DIGITS = "zero one two three four five six seven eight nine".split()
TOLERATED = {"forwards": "forward", "backwards": "backward"}


def words_of(text):
    """A transcript -> (commands said, commands tolerated, usable), lower-case tokens, numerals as words."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text.lower())
    said, tolerated, usable = [], [], True
    for tok in re.findall(r"[a-z']+|\d+", text):
        if tok.isdigit():
            if len(tok) > 1:
                usable = False
                continue
            tok = DIGITS[int(tok)]
        if tok in sd.COMMANDS:
            said.append(tok)
        elif tok in TOLERATED:
            tolerated.append(TOLERATED[tok])
    return said, tolerated, usable


def recordings(alsa, asterisk, asterisk_text):
    """[(path, said, tolerated, source)] for every recording found; a missing package is an error."""
    out = []
    names = sorted(f for f in os.listdir(alsa) if f.endswith(".wav")) if os.path.isdir(alsa) else []
    if not names:
        sys.exit("evaluate_real: no recordings in %s (Debian package alsa-utils)" % alsa)
    for f in names:
        said, tolerated, _ = words_of(f[:-4].replace("_", " ") if f != "Noise.wav" else "")
        out.append((os.path.join(alsa, f), said, tolerated, "alsa"))
    if not os.path.isfile(asterisk_text):
        sys.exit("evaluate_real: no transcripts at %s (Debian package asterisk-core-sounds-en; "
                 "a minimal image may leave out /usr/share/doc)" % asterisk_text)
    with gzip.open(asterisk_text, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            path = os.path.join(asterisk, name.strip() + ".wav")
            if not os.path.isfile(path):
                continue
            said, tolerated, usable = words_of(text)
            if usable:
                out.append((path, said, tolerated, "asterisk"))
    if sum(1 for r in out if r[3] == "asterisk") == 0:
        sys.exit("evaluate_real: no recordings in %s (Debian package asterisk-core-sounds-en-wav)" % asterisk)
    return out


def seconds_of(path):
    with wave.open(path, "rb") as w:
        return w.getnframes() / w.getframerate()


def score(recs, events):
    heard = collections.defaultdict(list)
    for e in events:
        heard[e["input"]].append(e["word"])
    rows = []
    for path, said, tolerated, source in recs:
        got = collections.Counter(heard.get(path, []))
        want = collections.Counter(said)
        hits = sum(min(n, got[w]) for w, n in want.items())
        extra = got - want
        for w in tolerated:
            if extra[w] > 0:
                extra[w] -= 1
        rows.append({"path": path, "source": source, "said": said, "heard": heard.get(path, []), "hits": hits,
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
    ap.add_argument("--verbose", action="store_true", help="every recording with a miss or a false alarm")
    a = ap.parse_args()

    recs = recordings(a.alsa, a.asterisk, a.asterisk_text)
    minutes = sum(seconds_of(r[0]) for r in recs) / 60
    n_said = sum(len(r[1]) for r in recs)
    print("%d recordings (%d alsa-utils, %d asterisk), %.1f min, %d commands said"
          % (len(recs), sum(r[3] == "alsa" for r in recs), sum(r[3] == "asterisk" for r in recs), minutes, n_said))
    for th in [float(t) for t in a.thresholds.split(",")]:
        events, stats = run_listen(a, [r[0] for r in recs], th)
        rows = score(recs, events)
        alone = [r for r in rows if "/digits/" in r["path"] and len(r["said"]) == 1]  # "zero" .. "nine"
        running = [r for r in rows if r not in alone]
        fa = sum(len(r["false"]) for r in rows)
        hit = sum(r["hits"] for r in rows)
        words = collections.Counter(w for r in rows for w in r["false"])
        print("threshold %.2f  detected %d/%d (%.1f %%): digits said alone %d/%d, inside running speech %d/%d; "
              "false alarms %d in %.1f min (%.1f per 10 min): %s"
              % (th, hit, n_said, 100.0 * hit / max(1, n_said), sum(r["hits"] for r in alone),
                 sum(len(r["said"]) for r in alone), sum(r["hits"] for r in running),
                 sum(len(r["said"]) for r in running), fa, minutes, 10 * fa / minutes,
                 ", ".join("%s %d" % kv for kv in words.most_common())))
        for src in ("alsa", "asterisk"):
            rs = [r for r in rows if r["source"] == src]
            print("  %-8s detected %d/%d, false alarms %d" % (src, sum(r["hits"] for r in rs),
                                                           sum(len(r["said"]) for r in rs), sum(len(r["false"]) for r in rs)))
        print("  " + stats.splitlines()[-1] if stats else "")
        if a.verbose:
            for r in rows:
                if r["false"] or r["hits"] < len(r["said"]):
                    print("  %-60s said %-30s heard %s" % (os.path.relpath(r["path"], os.path.dirname(r["path"]) + "/.."),
                                                          " ".join(r["said"]) or "-", " ".join(r["heard"]) or "-"))


if __name__ == "__main__":
    sys.exit(main())
