"""Commands said inside whole synthesized utterances, with the time of the command word.

The bank (speech_data.render_bank) renders every word and carrier-phrase piece on its own, and
ClipMaker splices them with short pauses: every command the model hears there is in citation
form, said as if it were a whole sentence. People say "please turn left at the corner" in one
breath: the command is shorter, unstressed, and runs into the words around it. A model that has
only heard spliced words misses most of these (the demo recordings are made this way).

Here every voice draw says phrases such as "could you please go now" in one utterance, and the
synthesizer itself says where the command word starts and ends:
- espeak-ng through its C library (libespeak-ng.so.1, the library the espeak-ng command uses):
  its word events give each word's first sample; a word ends where the next begins.
- flite: `-psdur` prints every phone with its end time; the command's phones follow the phones of
  the words before it (counted by `-ps` on those words alone).
- festival: the utterance's Word relation has word_start and word_end.
Rate, pitch and sox effects are those of the voice's bank draw (speech_data._render_job's seed).

    bank[voice]["phrases"][draw] = [(text, command index, start, end)]  (samples at 16 kHz)
    bank[voice]["draws"][draw][text] = samples
"""
import ctypes
import os
import subprocess
import tempfile

import numpy as np

import speech_data as sd

PHRASES_PER_COMMAND = 3

# Carrier pieces for measuring (evaluate_commands.py): never trained on, spliced or whole, and
# with no command or homophone of one in them.
EVAL_PREFIXES = ["would you", "we should", "let me", "they said", "he will", "make it", "you can",
                 "try and", "I want", "she said", "did you say", "let us", "perhaps", "and so"]
EVAL_SUFFIXES = ["when ready", "if possible", "very slowly", "in a minute", "after that",
                 "before lunch", "with me", "as usual", "tonight", "as fast as you can", "soon"]
assert not {w for p in EVAL_PREFIXES + EVAL_SUFFIXES for w in p.split()} & set(sd.COMMANDS + sd.HOMOPHONES)


def phrase_texts(rng, per_command=PHRASES_PER_COMMAND, prefixes=sd.PREFIXES, suffixes=sd.SUFFIXES):
    """[(text, command index, index of the command's word)]: per command, per_command phrases of
    a carrier prefix (4 in 5), the command and a carrier suffix (7 in 10), as ClipMaker's spliced
    carrier phrases are drawn; never the command alone."""
    out = []
    for c, command in enumerate(sd.COMMANDS):
        for _ in range(per_command):
            before = prefixes[rng.integers(len(prefixes))] if rng.random() < 0.8 else ""
            after = suffixes[rng.integers(len(suffixes))] if rng.random() < 0.7 else ""
            if not before and not after:
                before = prefixes[rng.integers(len(prefixes))]
            words = before.split() + [command] + after.split()
            out.append((" ".join(words), c, len(before.split())))
    return out


# ---- espeak-ng through its library ---------------------------------------------------------------

class _EspeakEvent(ctypes.Structure):
    # espeak_EVENT from speak_lib.h (the id union is one pointer wide).
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_void_p)]


class _EspeakVoice(ctypes.Structure):
    # espeak_VOICE from speak_lib.h.
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.POINTER(_EspeakEvent))
_AUDIO_OUTPUT_SYNCHRONOUS, _EVENT_WORD, _EVENT_LIST_TERMINATED = 2, 1, 0
_ESPEAK_RATE, _ESPEAK_PITCH = 1, 3


class _Espeak:
    """One espeak-ng instance per process (the library keeps global state)."""

    def __init__(self):
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self.audio, self.word_samples = [], []
        self.callback = _SYNTH_CALLBACK(self._on_audio)  # kept alive as long as the instance
        self.lib.espeak_SetSynthCallback(self.callback)

    def _on_audio(self, wav, n, events):
        if n > 0:
            self.audio.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                self.word_samples.append((events[i].text_position, events[i].sample))
            i += 1
        return 0

    def say(self, voice, rate, pitch, text):
        """-> (samples at self.rate as float, [(1-based character position, first sample)] per word event)."""
        # As the espeak-ng command does: a voice name first, then a language ("en-gb+klatt5": the
        # language's voice with that variant).
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            select = _EspeakVoice(languages=voice.encode())
            if self.lib.espeak_SetVoiceByProperties(ctypes.byref(select)) != 0:
                raise RuntimeError("espeak-ng has no voice %s" % voice)
        self.lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
        self.lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
        self.audio, self.word_samples = [], []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        x = np.concatenate(self.audio).astype(np.float64) / 32768.0 if self.audio else np.zeros(0)
        return x, list(self.word_samples)


_espeak = None


def _espeak_phrase(name, rate, pitch, text, word):
    global _espeak
    if _espeak is None:
        _espeak = _Espeak()
    x, events = _espeak.say(name, rate, pitch, text)
    # Word events by where the word begins in the text (the library sometimes adds one past the end).
    at = {position: sample for position, sample in events}
    positions = [i + 1 for i, ch in enumerate(text) if ch != " " and (i == 0 or text[i - 1] == " ")]
    if any(p not in at for p in positions):
        return None
    starts = [at[p] for p in positions]
    end = starts[word + 1] if word + 1 < len(starts) else len(x)
    scale = sd.SR / _espeak.rate
    return sd._fft_resample(x, _espeak.rate), starts[word] * scale, end * scale


# ---- flite and festival ---------------------------------------------------------------------------

def _flite_phones(name, text, cache):
    """Phones of `text` said alone (no pauses), as flite's lexicon and letter-to-sound give them."""
    if text not in cache:
        r = subprocess.run(["flite", "-voice", name, "-ps", "-t", text, "-o", "none"], check=True,
                           capture_output=True, text=True)
        cache[text] = [p for p in r.stdout.split() if p != "pau"]
    return cache[text]


def _flite_phrase(name, text, word, wav, cache):
    r = subprocess.run(["flite", "-voice", name, "-psdur", "-t", text, "-o", wav], check=True,
                       capture_output=True, text=True)
    segments = [(p, float(t)) for p, t in (s.rsplit(":", 1) for s in r.stdout.split())]
    words = text.split()
    before = len(_flite_phones(name, " ".join(words[:word]), cache)) if word else 0
    command = _flite_phones(name, words[word], cache)
    spoken = [(p, t, segments[i - 1][1] if i else 0.0) for i, (p, t) in enumerate(segments) if p != "pau"]
    if [p for p, _, _ in spoken[before: before + len(command)]] != command:
        return None  # the words before it were said with other phones than alone: skip the phrase
    return spoken[before][2], spoken[before + len(command) - 1][1]


def _festival_phrases(name, phrases, tmp):
    """-> [(start s, end s) or None] of each phrase's command word; waves in tmp/N.wav."""
    script = ["(%s)" % name]
    for i, (text, _, word) in enumerate(phrases):
        script.append('(set! u (SynthText "%s")) (utt.save.wave u "%s/%d.wav")' % (text, tmp, i))
        script.append('(set! w (nth %d (utt.relation.items u (quote Word)))) '
                      '(format t "WORD %d %%s %%f %%f\\n" (item.name w) (item.feat w "word_start") (item.feat w "word_end"))'
                      % (word, i))
    r = subprocess.run(["festival", "--pipe"], input="\n".join(script).encode(), check=True, capture_output=True)
    times = [None] * len(phrases)
    for line in r.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "WORD":
            i = int(parts[1])
            if parts[2] == sd.COMMANDS[phrases[i][1]]:
                times[i] = (float(parts[3]), float(parts[4]))
    return times


def _finish(x, start, end):
    """Trims silence from a 16 kHz phrase and moves the command's span with it (-> samples, start,
    end), or None when the span is not inside what is left."""
    a = np.abs(x)
    loud = np.nonzero(a > 0.02 * max(a.max(), 1e-9))[0] if len(x) else []
    if len(loud) == 0:
        return None
    margin = int(0.015 * sd.SR)
    first, last = max(0, loud[0] - margin), min(len(x), loud[-1] + 1 + margin)
    # A word's span may begin or end in the silence that is cut.
    start, end = max(int(round(start)), first) - first, min(int(round(end)), last) - first
    if end <= start:
        return None
    return x[first:last].astype(np.float32), start, end


def _phrase_job(job):
    """One (voice, draw, phrases) -> (voice_id, draw, [(text, command, start, end, samples)])."""
    voice_id, engine, name, draw, phrases = job
    rng = np.random.default_rng(sd._seed_of(voice_id, draw))  # the bank draw's rate, pitch, effects
    out = []
    if engine == "espeak":
        rate, pitch = int(rng.uniform(110, 210)), int(rng.uniform(15, 85))
        for text, c, word in phrases:
            got = _espeak_phrase(name, rate, pitch, text, word)
            done = got and _finish(*got)
            if done:
                out.append((text, c, done[1], done[2], done[0]))
        return voice_id, draw, out
    cents = int(rng.uniform(-400, 400)) if draw else 0
    tempo = float(rng.uniform(0.8, 1.25)) if draw else 1.0
    effects = ["pitch", str(cents), "tempo", "%.3f" % tempo] if draw else []
    with tempfile.TemporaryDirectory() as tmp:
        if engine == "flite":
            cache, waves, times = {}, [], []
            for i, (text, _, word) in enumerate(phrases):
                waves.append(os.path.join(tmp, "%d.wav" % i))
                times.append(_flite_phrase(name, text, word, waves[-1], cache))
        else:
            times = _festival_phrases(name, phrases, tmp)
            waves = [os.path.join(tmp, "%d.wav" % i) for i in range(len(phrases))]
        for (text, c, _), wav, span in zip(phrases, waves, times):
            if span is None:
                continue
            x = sd._sox_to_16k(wav, effects).astype(np.float64)
            # sox tempo (WSOLA) keeps pitch and shortens time by the tempo factor; pitch keeps time.
            done = _finish(x, span[0] * sd.SR / tempo, span[1] * sd.SR / tempo)
            if done:
                out.append((text, c, done[1], done[2], done[0]))
    return voice_id, draw, out


def render_phrase_jobs(requests, processes=2):
    """requests: [(voice_id, draw, [(text, command, word index)])] -> {(voice_id, draw): [(text,
    command, start, end, samples)]}; a phrase whose command could not be placed is left out."""
    from multiprocessing import Pool
    engines = {v[0]: v for v in sd.voices()}
    jobs = [(v, engines[v][1], engines[v][2], d, texts) for v, d, texts in requests]
    # One job per process: espeak-ng's library keeps state from one utterance and voice to the next,
    # so a job's audio would depend on what its process said before.
    with Pool(processes, maxtasksperchild=1) as pool:
        return {(v, d): out for v, d, out in pool.imap_unordered(_phrase_job, jobs)}


def drop_phrases(bank):
    """Removes the phrases render_phrases added (their samples and lists), so they can be rendered
    again with other settings."""
    for entry in bank.values():
        for draw, said in zip(entry["draws"], entry.pop("phrases", [])):
            for text, _, _, _ in said:
                draw.pop(text, None)


def render_phrases(bank, splits=("train",), per_command=PHRASES_PER_COMMAND, processes=2):
    """Adds phrases to every draw of the voices of `splits` (see the module's docstring)."""
    requests = [(voice_id, d, phrase_texts(np.random.default_rng(sd._seed_of("phrases", voice_id, d)), per_command))
                for voice_id in sorted(bank) if bank[voice_id]["split"] in splits
                for d in range(len(bank[voice_id]["draws"]))]
    found = render_phrase_jobs(requests, processes)
    for voice_id in sorted(bank):
        if bank[voice_id]["split"] not in splits:
            continue
        entry = bank[voice_id]
        entry["phrases"] = []
        for d, draw in enumerate(entry["draws"]):
            out = found[(voice_id, d)]
            draw.update({text: x for text, _, _, _, x in out})
            entry["phrases"].append([(text, c, start, end) for text, c, start, end, _ in out])
    return bank
