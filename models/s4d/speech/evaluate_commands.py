#!/usr/bin/python3
"""Measures the command model on held-out voices through `vkssm listen`, the way a user runs it.

    evaluate_commands.py --bank build/speech-data/bank.pkl [--split test] [--vkssm build/bin/vkssm]
                         [--model models/s4d/speech-commands] [--backend reference] [--thresholds 0.5,0.6]

For every voice of the split (test voices are never trained on) it writes two 16 kHz WAV streams:
- a command stream: each of the 22 commands said twice, once alone and once inside a carrier
  phrase ("please go now"), between pieces of non-command speech, 0.3-1.0 s apart;
- a non-command stream: about 60 s of sentences and near-miss words ("yesterday", "often",
  "gone", "eighteen", ...) with no command in it;
- an ordinary-speech stream: about 60 s of everyday sentences never trained on
  (speech_data.EVAL_SENTENCES: no command or homophone of one, near misses only at their natural
  rate), rendered for the split's voices on first use and kept beside the bank;
- a phrase stream: each command twice, each time inside one whole utterance ("would you stop
  when ready", phrases.py: coarticulated, as people say commands; carrier words never trained
  on), 0.3-1.0 s apart, also rendered on first use and kept beside the bank;
in two conditions: clean, and noisy (reverberation on half the streams, pink noise or babble at
10-20 dB SNR). All streams of a condition go through one `vkssm listen --json` run (concurrent
streams). A command counts as detected when an event with its word lies between its start - 0.5 s
and its end + 0.5 s; every other event is a false alarm. False alarms are counted per 10 minutes of
the non-command streams and, separately, of the ordinary-speech streams (events in command streams
that match nothing are counted apart from both).
"""
import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import wave

import numpy as np

import phrases
import speech_data as sd

SR = sd.SR


def write_wav(path, x):
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def say(bank, rng, voice, text):
    draws = bank[voice]["draws"]
    return draws[int(rng.integers(len(draws)))][text]


def command_stream(bank, rng, voice):
    parts, truth, pos = [np.zeros(int(0.5 * SR))], [], int(0.5 * SR)
    order = [(c, mode) for c in range(len(sd.COMMANDS)) for mode in ("alone", "carrier")]
    rng.shuffle(order)
    for c, mode in order:
        before = [say(bank, rng, voice, sd.PREFIXES[rng.integers(len(sd.PREFIXES))]), np.zeros(int(rng.uniform(0.03, 0.15) * SR))] \
            if mode == "carrier" else []
        after = [np.zeros(int(rng.uniform(0.03, 0.15) * SR)), say(bank, rng, voice, sd.SUFFIXES[rng.integers(len(sd.SUFFIXES))])] \
            if mode == "carrier" else []
        word = say(bank, rng, voice, sd.COMMANDS[c])
        pre = sum(len(p) for p in before)
        truth.append((c, (pos + pre) / SR, (pos + pre + len(word)) / SR))
        seg = before + [word] + after
        if rng.random() < 0.5:  # non-command speech between commands
            seg += [np.zeros(int(rng.uniform(0.3, 0.8) * SR)),
                    say(bank, rng, voice, sd.NEGATIVE_WORDS[rng.integers(len(sd.NEGATIVE_WORDS))])]
        seg.append(np.zeros(int(rng.uniform(0.3, 1.0) * SR)))
        for p in seg:
            parts.append(p)
            pos += len(p)
    return np.concatenate(parts).astype(np.float64), truth


def negative_stream(bank, rng, voice, seconds=60.0):
    """-> (samples, [(text, start s, end s)] of what was said)."""
    parts, total, said = [np.zeros(int(0.3 * SR))], 0, []
    pos = len(parts[0])
    while total < seconds * SR:
        if rng.random() < 0.5:
            text = sd.SENTENCES[rng.integers(len(sd.SENTENCES))]
        else:
            text = sd.NEGATIVE_WORDS[rng.integers(len(sd.NEGATIVE_WORDS))]
        s = say(bank, rng, voice, text)
        said.append((text, pos / SR, (pos + len(s)) / SR))
        parts += [s, np.zeros(int(rng.uniform(0.1, 0.6) * SR))]
        total += len(s) + len(parts[-1])
        pos += len(s) + len(parts[-1])
    return np.concatenate(parts).astype(np.float64), said


def render_eval_sentences(bank_path, voices):
    """{voice: {sentence: samples}} for speech_data.EVAL_SENTENCES, said by each voice as in its
    bank draw 0 (same rate and pitch), rendered once and kept in BANK.eval-sentences.pkl."""
    cache = bank_path + ".eval-sentences.pkl"
    have = {}
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            have = pickle.load(f)
    missing = [(v, 0, sd.EVAL_SENTENCES) for v in voices if set(have.get(v, {})) != set(sd.EVAL_SENTENCES)]
    if missing:
        for voice, _, out in sd.render_texts(missing):
            have[voice] = out
        with open(cache, "wb") as f:
            pickle.dump(have, f, protocol=4)
    return have


def render_eval_phrases(bank_path, voices, per_command=2):
    """{voice: [(text, command, start, end, samples)]}: phrases.EVAL_PREFIXES/EVAL_SUFFIXES around
    each command, said in one utterance by each voice as in its bank draw 0, rendered once and kept
    in BANK.eval-phrases.pkl."""
    cache = bank_path + ".eval-phrases.pkl"
    have = {}
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            have = pickle.load(f)
    missing = [(v, 0, phrases.phrase_texts(np.random.default_rng(sd._seed_of("eval-phrases", v)), per_command,
                                           phrases.EVAL_PREFIXES, phrases.EVAL_SUFFIXES))
               for v in voices if v not in have]
    if missing:
        for (voice, _), out in phrases.render_phrase_jobs(missing).items():
            have[voice] = out
        with open(cache, "wb") as f:
            pickle.dump(have, f, protocol=4)
    return have


def phrase_stream(rng, said_phrases):
    """The voice's phrases in a random order, 0.3-1.0 s apart -> (samples, truth)."""
    parts, truth, pos = [np.zeros(int(0.5 * SR))], [], int(0.5 * SR)
    for i in rng.permutation(len(said_phrases)):
        _, c, start, end, x = said_phrases[i]
        truth.append((c, (pos + start) / SR, (pos + end) / SR))
        parts += [x.astype(np.float64), np.zeros(int(rng.uniform(0.3, 1.0) * SR))]
        pos += len(x) + len(parts[-1])
    return np.concatenate(parts), truth


def ordinary_stream(rng, sentences, seconds=60.0):
    """Everyday sentences in a random order with 0.2-0.8 s pauses -> (samples, what was said)."""
    parts, said = [np.zeros(int(0.3 * SR))], []
    pos = len(parts[0])
    while pos < seconds * SR:
        for text in rng.permutation(sd.EVAL_SENTENCES):
            s = sentences[text]
            said.append((text, pos / SR, (pos + len(s)) / SR))
            parts += [s, np.zeros(int(rng.uniform(0.2, 0.8) * SR))]
            pos += len(s) + len(parts[-1])
            if pos >= seconds * SR:
                break
    return np.concatenate(parts).astype(np.float64), said


def heard_in(said, t):
    """What was said last before time t (a false alarm's cause: the decision comes after the word)."""
    cause = "(silence)"
    for text, start, _ in said:
        if start <= t:
            cause = text
    return cause


def condition(rng, x, noisy, babble):
    if noisy:
        if rng.random() < 0.5:
            x = sd._reverb(rng, x)
        rms = np.sqrt(np.mean(x ** 2)) + 1e-9
        noise = babble(rng, len(x)) if rng.random() < 0.5 else sd._colored_noise(rng, len(x), "pink")
        snr = rng.uniform(10, 20)
        x = x + noise / (np.sqrt(np.mean(noise ** 2)) + 1e-9) * rms / 10 ** (snr / 20)
    return x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(-12, -3) / 20)


def run_listen(args, paths, threshold):
    cmd = [args.vkssm, "listen", "--json", "--backend", args.backend]
    if args.model:
        cmd += ["--model", args.model]
    if threshold is not None:
        cmd += ["--threshold", str(threshold)]
    r = subprocess.run(cmd + paths, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("vkssm listen failed: %s" % r.stderr)
    events = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return events, r.stderr.strip()


def score(events, streams):
    """streams: [(path, truth or None, seconds, voice, said, kind)] -> per-stream (hits, misses, false
    alarms, and for non-command streams what each false alarm was heard in)."""
    by_input = {}
    for e in events:
        by_input.setdefault(e["input"], []).append(e)
    rows = []
    for path, truth, seconds, voice, said, kind in streams:
        evs = sorted(by_input.get(path, []), key=lambda e: e["time"])
        used = [False] * len(evs)
        hits, missed = 0, []
        for c, t0, t1 in truth or []:
            for i, e in enumerate(evs):
                if not used[i] and e["word"] == sd.COMMANDS[c] and t0 - 0.5 <= e["time"] <= t1 + 0.5:
                    used[i] = True
                    hits += 1
                    break
            else:
                missed.append(sd.COMMANDS[c])
        fas = [e["word"] for i, e in enumerate(evs) if not used[i]]
        heard = ["%s <- %s" % (e["word"], heard_in(said, e["time"])) for i, e in enumerate(evs) if not used[i] and said]
        rows.append({"path": path, "voice": voice, "commands": len(truth or []), "hits": hits, "missed": missed,
                     "false_alarms": fas, "heard_in": heard, "seconds": seconds, "negative": kind == "negative",
                     "ordinary": kind == "ordinary", "phrases": kind == "phrases"})
    return rows


def by_engine_of(rows):
    """Detection per synthesizer (espeak, flite, festival) over the rows that hold commands."""
    counts = {}
    for r in rows:
        if r["commands"]:
            h, n = counts.get(r["voice"].split(":")[0], (0, 0))
            counts[r["voice"].split(":")[0]] = (h + r["hits"], n + r["commands"])
    return {k: "%d/%d (%.1f %%)" % (h, n, 100 * h / n) for k, (h, n) in sorted(counts.items())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--vkssm", default="build/bin/vkssm")
    ap.add_argument("--model", default="")
    ap.add_argument("--backend", default="reference")
    ap.add_argument("--thresholds", default="")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--keep", default="", help="folder to keep the WAV streams in")
    a = ap.parse_args()
    with open(a.bank, "rb") as f:
        bank = pickle.load(f)
    voices = sorted(v for v, e in bank.items() if e["split"] == a.split)
    everyday = render_eval_sentences(a.bank, voices)
    whole_phrases = render_eval_phrases(a.bank, voices)
    maker = sd.ClipMaker(bank, {a.split}, 1.0)
    tmp = a.keep or tempfile.mkdtemp(prefix="vkssm_eval_")
    os.makedirs(tmp, exist_ok=True)
    thresholds = [float(t) for t in a.thresholds.split(",")] if a.thresholds else [None]
    report = {"split": a.split, "voices": voices, "conditions": {}}
    for cond in ("clean", "noisy"):
        rng = np.random.default_rng(a.seed + (cond == "noisy"))
        streams = []
        for i, v in enumerate(voices):
            x, truth = command_stream(bank, rng, v)
            p = os.path.join(tmp, "%s-%02d-commands.wav" % (cond, i))
            write_wav(p, condition(rng, x, cond == "noisy", maker.babble))
            streams.append((p, truth, len(x) / SR, v, None, "commands"))
            y, said = negative_stream(bank, rng, v)
            p = os.path.join(tmp, "%s-%02d-negative.wav" % (cond, i))
            write_wav(p, condition(rng, y, cond == "noisy", maker.babble))
            streams.append((p, None, len(y) / SR, v, said, "negative"))
        # A generator of its own, so the command and non-command streams stay as they were
        # before the ordinary-speech streams existed (figures stay comparable).
        rng_ordinary = np.random.default_rng(a.seed + 100 + (cond == "noisy"))
        for i, v in enumerate(voices):
            z, said = ordinary_stream(rng_ordinary, everyday[v])
            p = os.path.join(tmp, "%s-%02d-ordinary.wav" % (cond, i))
            write_wav(p, condition(rng_ordinary, z, cond == "noisy", maker.babble))
            streams.append((p, None, len(z) / SR, v, said, "ordinary"))
        rng_phrases = np.random.default_rng(a.seed + 200 + (cond == "noisy"))
        for i, v in enumerate(voices):
            w, truth = phrase_stream(rng_phrases, whole_phrases[v])
            p = os.path.join(tmp, "%s-%02d-phrases.wav" % (cond, i))
            write_wav(p, condition(rng_phrases, w, cond == "noisy", maker.babble))
            streams.append((p, truth, len(w) / SR, v, None, "phrases"))
        for th in thresholds:
            events, summary = run_listen(a, [s[0] for s in streams], th)
            rows = score(events, streams)
            phrase_rows = [r for r in rows if r["phrases"]]
            rows = [r for r in rows if not r["phrases"]]
            n_phr = sum(r["commands"] for r in phrase_rows)
            phr_hits = sum(r["hits"] for r in phrase_rows)
            phr_fa = sum(len(r["false_alarms"]) for r in phrase_rows)
            n_cmd = sum(r["commands"] for r in rows)
            hits = sum(r["hits"] for r in rows)
            neg_minutes = sum(r["seconds"] for r in rows if r["negative"]) / 60
            neg_fa = sum(len(r["false_alarms"]) for r in rows if r["negative"])
            ord_minutes = sum(r["seconds"] for r in rows if r["ordinary"]) / 60
            ord_fa = sum(len(r["false_alarms"]) for r in rows if r["ordinary"])
            cmd_fa = sum(len(r["false_alarms"]) for r in rows if r["commands"])
            res = {"threshold": th, "commands": n_cmd, "detected": hits, "detection_rate": round(hits / n_cmd, 4),
                   "non_command_minutes": round(neg_minutes, 2), "false_alarms": neg_fa,
                   "false_alarms_per_10_min": round(neg_fa / neg_minutes * 10, 2),
                   "ordinary_speech_minutes": round(ord_minutes, 2), "ordinary_false_alarms": ord_fa,
                   "ordinary_false_alarms_per_10_min": round(ord_fa / ord_minutes * 10, 2),
                   "unmatched_events_in_command_streams": cmd_fa,
                   "phrase_commands": n_phr, "phrase_detected": phr_hits,
                   "phrase_detection_rate": round(phr_hits / n_phr, 4),
                   "phrase_detection_by_engine": by_engine_of(phrase_rows),
                   "phrase_missed": sorted(w for r in phrase_rows for w in r["missed"]),
                   "unmatched_events_in_phrase_streams": phr_fa,
                   "detection_by_engine": by_engine_of(rows),
                   "missed": sorted(w for r in rows for w in r["missed"]),
                   "false_alarm_words": sorted(w for r in rows if r["negative"] for w in r["false_alarms"]),
                   "unmatched_words_in_command_streams": sorted(w for r in rows if r["commands"] for w in r["false_alarms"]),
                   "false_alarms_heard_in": sorted(h for r in rows if r["negative"] for h in r["heard_in"]),
                   "ordinary_false_alarms_heard_in": sorted(h for r in rows if r["ordinary"] for h in r["heard_in"]),
                   "listen": summary}
            report["conditions"].setdefault(cond, []).append(res)
            print("%-5s threshold %-5s detected %4d/%4d (%.1f %%)  false alarms %3d in %.1f min of non-command speech "
                  "(%.2f per 10 min), %d in %.1f min of ordinary speech (%.2f per 10 min)  unmatched in command streams %d" %
                  (cond, th, hits, n_cmd, 100 * hits / n_cmd, neg_fa, neg_minutes, neg_fa / neg_minutes * 10,
                   ord_fa, ord_minutes, ord_fa / ord_minutes * 10, cmd_fa), flush=True)
            print("%-5s threshold %-5s commands in whole phrases: detected %4d/%4d (%.1f %%) %s, unmatched %d" %
                  (cond, th, phr_hits, n_phr, 100 * phr_hits / n_phr, by_engine_of(phrase_rows), phr_fa), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
