"""Synthetic speech-command data from Debian's text-to-speech voices, with heavy augmentation.

Two stages, both deterministic given the seed:

1. render_bank(): every voice says every command, many non-command words (near misses such as
   "yesterday", "often", "gone", "eighteen" among them), carrier-phrase pieces and sentences.
   Voices: espeak-ng (7 English accents x many variants, random rate and pitch), flite (kal, kal16,
   rms, slt, awb) and festival (kal, ked diphones, the SLT HTS voice); flite/festival renders are
   pitch- and tempo-shifted by sox. Each render is trimmed of silence, resampled to 16 kHz by sox,
   and stored with its voice so data can be split by voice.
2. make_clip(): one training clip of CLIP_SECONDS: a command alone, a command inside running
   speech (carrier phrase pieces before and after it), non-command speech, or noise alone; then
   speed, gain, reverberation, band-limiting (telephone, 8 kHz), microphone colour, additive
   white/pink/brown noise or babble at 0-30 dB SNR. Returns the samples and the command's span.

   Optionally (render_extra()), each training voice draw also says EXTRA_PER_DRAW word
   sequences of its own (extra_texts(): everyday function words and words from Debian's
   American English word list), so the non-command speech a model hears is not a few hundred
   texts said again and again.

   Optionally (phrases.render_phrases()), each training voice draw also says commands inside whole
   carrier phrases, with the command's start and end taken from the synthesizer, so a model hears
   commands coarticulated with the words around them as people say them, not only spliced between
   words said on their own.

Voices are split into train / validation / test by voice identity (split_of_voice): the test
voices are never trained on.
"""
import hashlib
import os
import subprocess
import tempfile
from multiprocessing import Pool

import numpy as np

SR = 16000

COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "forward",
            "backward", "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
BACKGROUND = "_background_"
LABELS = COMMANDS + [BACKGROUND]

# Words that are not commands. Near misses share sounds with a command; homophones of commands
# ("know", "to", "too", "for", "won", "ate", "write", "of") are left out on purpose.
NEGATIVE_WORDS = """
yesterday yellow yet yesses nose north nothing nobody notice number nowhere upper update
uphill upon dog dawn doubt downtown town lift let lesson leftover bright light ride rice
righteous only honest often office offer coffee stock stone stomach stopper goal gold going gone
good ghost goat fork foreign famous format back backpack zebra zeal wonder once win twin tomb
tool tooth true tree free thirteen thirty fourteen forty floor fine fire fight fifteen fifty
sixteen sixty sick seventeen seventy eighteen eighty eighth nineteen ninety nice night nine's
ten eleven twelve hundred thousand hello please thanks maybe okay water music weather
computer robot house window table kitchen today tomorrow bird cat happy marvin sheila visual
learn follow wow bed answer again around station morning evening green orange purple coming
sitting lasting forever
""".split()
NEGATIVE_WORDS = [w for w in NEGATIVE_WORDS if w != "nine's"]

# The words of NEGATIVE_WORDS that differ from a command by about one sound ("tree" / "three",
# "stock" / "stop"), by the command they are mistaken for. Each is drawn about 23 times less often
# than a command in the default mix, so the model's prior says "command" wherever the one differing
# sound is masked by noise; ClipMaker.make_stream(near_miss_share=...) draws them more often.
NEAR_MISSES = {
    "yes": ["yesterday", "yet", "yesses", "yellow"], "no": ["nose", "north", "nothing", "nobody", "notice", "nowhere"],
    "up": ["upper", "update", "uphill", "upon"], "down": ["dawn", "doubt", "downtown", "town"],
    "left": ["lift", "let", "lesson", "leftover"], "right": ["bright", "light", "ride", "rice", "righteous"],
    "on": ["only", "honest"], "off": ["often", "office", "offer", "coffee"],
    "stop": ["stock", "stone", "stomach", "stopper"], "go": ["goal", "gold", "going", "gone", "good", "ghost", "goat"],
    "forward": ["fork", "foreign", "famous", "format"], "backward": ["back", "backpack"],
    "zero": ["zebra", "zeal"], "one": ["wonder", "once", "win"], "two": ["twin", "tomb", "tool", "tooth", "true"],
    "three": ["tree", "free", "thirteen", "thirty"], "four": ["fourteen", "forty", "floor"],
    "five": ["fine", "fire", "fight", "fifteen", "fifty"], "six": ["sixteen", "sixty", "sick"],
    "seven": ["seventeen", "seventy"], "eight": ["eighteen", "eighty", "eighth"],
    "nine": ["nineteen", "ninety", "nice", "night"],
}
NEAR_MISS_WORDS = sorted({w for ws in NEAR_MISSES.values() for w in ws})
assert set(NEAR_MISS_WORDS) <= set(NEGATIVE_WORDS)
# The label ClipMaker.make_stream gives a near-miss word's span in its events (commands: 0..21).
NEAR_MISS = -1

# Pieces of carrier phrases (no commands or their homophones inside).
PREFIXES = ["please", "now", "okay", "I said", "can you", "turn", "move", "the answer is", "say",
            "let's", "and then", "quickly", "robot", "computer", "alright", "we need", "press",
            "choose", "number", "I think", "just", "the code is", "then",
            "hey robot", "could you please", "it was"]
SUFFIXES = ["now", "please", "again", "at the corner", "quickly", "thanks", "at once",
            "a little", "slowly", "and wait", "this time", "over there", "then", "if you can",
            "please robot", "I think", "and that is all", "my friend"]
SENTENCES = [
    "the weather is nice today", "I would like some coffee", "where is the kitchen",
    "this is a test of the system", "my name is Sam", "what time is it", "she sells sea shells",
    "open the window", "call my mother", "play some music", "how are you doing",
    "that was yesterday", "eighteen people came", "they have often gone home",
    "the dog barked at night", "thank you very much", "it is getting late",
    "we met at the station", "please wait here", "can you hear me", "that sounds good",
    "I think so", "maybe later", "sixteen and seventeen", "the yellow bird sang",
    "nobody noticed the stone", "the office is downtown", "a lesson in honesty",
    "the light is bright", "going home is good", "the ghost was famous",
    "fifty thousand people", "eleven and twelve", "a hundred years",
    "nothing happened this morning", "the upper floor", "an update is coming",
    "the ride was long", "rice and beans", "the stock market", "my stomach hurts",
    "a golden goal", "the zebra ran away", "I wonder why", "once upon a time",
    "twin towers", "the tooth fairy", "is it true", "a free tree", "the thirteenth floor",
    "foreign languages", "my backpack is heavy", "happy birthday marvin", "sheila is visiting",
    "follow the river", "the cat is sleeping", "what a wonderful evening", "the station is closed",
    "green and purple", "an orange", "we are sitting here", "it will last forever",
]

# Everyday sentences for measuring false alarms in ordinary speech (evaluate_commands.py): never
# trained on (not in all_texts), with no command and no homophone of one (HOMOPHONES) in them, so
# every event heard in them is a false alarm. Near misses occur at their natural rate only
# ("only", "often", "someone"), unlike NEGATIVE_WORDS and SENTENCES, which are full of them.
HOMOPHONES = ["know", "to", "too", "for", "fore", "won", "ate", "write", "rite", "of"]
EVAL_SENTENCES = """
the children played in the garden all afternoon
my brother is a teacher in a small village
we bought bread and cheese at the market
the train was late again this morning
she has a meeting with her manager after lunch
the library closes early every friday
could you pass me the salt and pepper
the museum has a new exhibition about ancient egypt
he forgot his umbrella at the restaurant
the weather will be cloudy with some rain
our neighbours have a very friendly dog
i usually walk the long way home
the hospital is looking after many patients
this soup tastes a little bit salty
they are planning a trip across the country
the meeting has been moved until thursday
she painted the kitchen a pale blue colour
my grandmother makes the best apple pie
the bus driver waited while we ran across the street
we should buy some milk and eggs
the football match ended in a draw
he speaks french and a little spanish
the mountains were covered in snow
i have been reading a very long novel
the printer needs more paper again
please remember the meeting tomorrow afternoon
the baby slept through the whole night
we watched a film about a famous explorer
the garden needs watering every evening
her sister lives near the beach
the shop sells fresh fruit and vegetables
i can never find my keys in the morning
the teacher asked the students a difficult question
the river flows slowly through the valley
we had pasta with tomato sauce
there was a long queue at the bank
the concert was cancelled during the storm
he fixed the broken chair with some glue
the cinema is showing an old comedy
she signed the letter with a blue pen
the airport was busy during the holidays
the flowers in the park are beautiful this year
my phone battery is almost empty
the children were laughing at the clown
we need a bigger table in the dining room
the doctor said i should drink more water
the hotel room had a lovely view
the farmer keeps sheep and chickens
it was raining when we arrived
the coffee machine is making a strange noise
they moved here from a little town in the north
my cousin is studying medicine at university
the painting hangs above the fireplace
he always listens carefully in class
the road was closed after an accident
we celebrated her birthday with a big cake
the students finished their homework early
the wind was blowing very hard last night
i enjoy cooking dinner with friends
the jacket is warm and comfortable
the bakery smells wonderful in the morning
the computer was running very slowly
she walked along the beach at sunset
the old bridge was built many years ago
we listened quietly while he played the piano
the cat jumped across the kitchen counter
he wants a new apartment in the city
the report is due next month
the lake was calm and very cold
she sings in a choir every sunday
""".strip().split("\n")
assert not {w for s in EVAL_SENTENCES for w in s.split()} & set(COMMANDS + HOMOPHONES)
assert not set(EVAL_SENTENCES) & set(SENTENCES)

ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-029"]
ESPEAK_VARIANTS_TRAIN = ["m1", "m2", "m4", "m5", "m7", "f1", "f2", "f3", "f5", "croak", "klatt",
                         "klatt3", "klatt4", "Andy", "Denis", "Gene", "Jacky", "Lee", "Mario",
                         "Mr", "Storm", "Tweaky", "adam", "anika", "steph", "david", "edward",
                         "linda", "max", "paul", "robert", "john", "whisperf", "grandma",
                         "grandpa", "quincy", "shelby", "travis", "victor", "zac", "norbert",
                         "aunty", "belinda", "boris", "caleb", "iven", "iven3", "rob"]
ESPEAK_VARIANTS_VALID = ["m8", "klatt6", "Alicia", "benjamin", "Mike"]
ESPEAK_VARIANTS_TEST = ["m3", "m6", "f4", "klatt2", "klatt5", "Annie", "Michael", "steph2",
                        "Alex", "edward2", "iven2", "sandro"]
FLITE_TRAIN = ["kal", "kal16", "rms", "slt"]
FLITE_TEST = ["awb"]
FESTIVAL_TRAIN = ["voice_kal_diphone", "voice_cmu_us_slt_arctic_hts"]
FESTIVAL_TEST = ["voice_ked_diphone"]


def voices():
    """[(voice_id, engine, name, split)]; espeak voices are accent + variant."""
    out = []
    for split, variants in (("train", ESPEAK_VARIANTS_TRAIN), ("valid", ESPEAK_VARIANTS_VALID),
                            ("test", ESPEAK_VARIANTS_TEST)):
        for i, v in enumerate(variants):
            # Two accents per variant (rotating through all seven) keeps rendering time in check.
            for a in (ESPEAK_ACCENTS[(2 * i) % 7], ESPEAK_ACCENTS[(2 * i + 1) % 7]):
                out.append(("espeak:%s+%s" % (a, v), "espeak", "%s+%s" % (a, v), split))
    for split, names in (("train", FLITE_TRAIN), ("test", FLITE_TEST)):
        out += [("flite:" + n, "flite", n, split) for n in names]
    for split, names in (("train", FESTIVAL_TRAIN), ("test", FESTIVAL_TEST)):
        out += [("festival:" + n, "festival", n, split) for n in names]
    return out


def _seed_of(*parts):
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def _sox_to_16k(src, effects=()):
    """Any audio file -> float32 16 kHz mono (sox -R: reproducible)."""
    cmd = ["sox", "-R", src, "-t", "raw", "-e", "floating-point", "-b", "32", "-r", str(SR), "-c", "1", "-"] + list(effects)
    return np.frombuffer(subprocess.run(cmd, check=True, capture_output=True).stdout, dtype="<f4").copy()


def _fft_resample(x, rate):
    """Band-limited resampling of a short clip to 16 kHz by cutting or padding its spectrum."""
    if rate == SR:
        return x
    n_out = int(round(len(x) * SR / rate))
    f = np.fft.rfft(x)
    g = np.zeros(n_out // 2 + 1, dtype=complex)
    k = min(len(f), len(g))
    g[:k] = f[:k]
    return np.fft.irfft(g, n_out) * (n_out / len(x))


def _wav_bytes_to_16k(blob):
    """A mono 16-bit WAV (as espeak-ng writes to stdout) -> float 16 kHz."""
    import struct
    rate = struct.unpack("<I", blob[24:28])[0]
    pos = blob.find(b"data")
    pcm = np.frombuffer(blob[pos + 8:], dtype="<i2").astype(np.float64) / 32768.0
    return _fft_resample(pcm, rate)


def trim(x, rel=0.02, margin=0.015):
    """Cuts leading/trailing silence (below rel * peak), keeping `margin` seconds."""
    if len(x) == 0:
        return x
    a = np.abs(x)
    idx = np.nonzero(a > rel * max(a.max(), 1e-9))[0]
    if len(idx) == 0:
        return x[:0]
    m = int(margin * SR)
    return x[max(0, idx[0] - m): idx[-1] + 1 + m]


def _render_job(job):
    """One (voice, variant draw, list of texts) -> {text: samples}."""
    voice_id, engine, name, draw, texts = job
    rng = np.random.default_rng(_seed_of(voice_id, draw))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "x.wav")
        if engine == "espeak":
            rate = int(rng.uniform(110, 210))
            pitch = int(rng.uniform(15, 85))
            for t in texts:
                r = subprocess.run(["espeak-ng", "-v", name, "-s", str(rate), "-p", str(pitch), "--stdout", t],
                                   check=True, capture_output=True)
                out[t] = trim(_wav_bytes_to_16k(r.stdout)).astype(np.float32)
            return voice_id, draw, out
        # flite / festival: a few natural voices, so widen them with sox pitch and tempo.
        cents = int(rng.uniform(-400, 400)) if draw else 0
        tempo = float(rng.uniform(0.8, 1.25)) if draw else 1.0
        effects = ["pitch", str(cents), "tempo", "%.3f" % tempo] if draw else []
        if engine == "flite":
            for t in texts:
                subprocess.run(["flite", "-voice", name, "-t", t, "-o", wav], check=True, capture_output=True)
                if effects:
                    out[t] = trim(_sox_to_16k(wav, effects))
                else:
                    out[t] = trim(_wav_bytes_to_16k(open(wav, "rb").read())).astype(np.float32)
        else:
            script = ["(%s)" % name]
            for i, t in enumerate(texts):
                script.append('(utt.save.wave (SynthText "%s") "%s/%d.wav")' % (t, tmp, i))
            subprocess.run(["festival", "--pipe"], input="\n".join(script).encode(), check=True,
                           capture_output=True)
            for i, t in enumerate(texts):
                out[t] = trim(_sox_to_16k(os.path.join(tmp, "%d.wav" % i), effects))
        return voice_id, draw, out


# ---- extra non-command speech ------------------------------------------------------------------

# Debian's wamerican word list: 100,000 English words, so the non-command speech covers sounds
# and sequences that no hand-written list does (a model trained on ~200 non-command texts fires
# on "ago", "comfortable", "class" in ordinary sentences it has never heard).
WORD_LIST = "/usr/share/dict/american-english"
FUNCTION_WORDS = """the a an and with in at is was are were it he she we they i you my his her our
their that this there then but so very some all from by as if not has have had will can would
could should about after just more most much what when where which who why how""".split()


def _extra_word_ok(w):
    """A word for extra non-command speech: no command or homophone, none ending like one ("ago",
    "someone", "create": said in a sentence, "a go" sounds the same, so such a word as background
    would contradict the carrier phrases), no command with a short ending ("stops", "ones")."""
    if w in COMMANDS or w in HOMOPHONES:
        return False
    if any(w.endswith(c) for c in COMMANDS + HOMOPHONES):
        return False
    return not any(w.startswith(c) and len(w) - len(c) <= 2 for c in COMMANDS)


def extra_words():
    if not os.path.exists(WORD_LIST):
        raise SystemExit("%s is missing: install Debian's wamerican package for extra word sequences" % WORD_LIST)
    with open(WORD_LIST, encoding="utf-8") as f:
        words = [w.strip() for w in f]
    return sorted({w for w in words if w.isascii() and w.isalpha() and w.islower() and 2 <= len(w) <= 12
                   and _extra_word_ok(w)})


def extra_texts(rng, n, words):
    """n word sequences of 3-8 words, about 4 in 10 of them function words."""
    out = []
    for _ in range(n):
        k = int(rng.integers(3, 9))
        out.append(" ".join(FUNCTION_WORDS[rng.integers(len(FUNCTION_WORDS))] if rng.random() < 0.4
                            else words[rng.integers(len(words))] for _ in range(k)))
    return out


EXTRA_PER_DRAW = 60


def render_texts(requests, processes=2):
    """requests: [(voice_id, draw, [text])] -> yields (voice_id, draw, {text: samples}), each said
    as in that draw of the bank (_render_job seeds rate, pitch and sox effects by voice and draw)."""
    engines = {v[0]: v for v in voices()}
    jobs = [(v, engines[v][1], engines[v][2], d, texts) for v, d, texts in requests]
    with Pool(processes) as pool:
        yield from pool.imap_unordered(_render_job, jobs)


def render_extra(bank, per_draw=EXTRA_PER_DRAW, splits=("train",), processes=2):
    """Adds per_draw word sequences of its own to every draw of the voices of `splits`
    (bank[voice]["extra"][draw]: [text]), said as the draw's other texts are."""
    words = extra_words()
    requests = [(voice_id, d, extra_texts(np.random.default_rng(_seed_of("extra", voice_id, d)), per_draw, words))
                for voice_id in sorted(bank) if bank[voice_id]["split"] in splits
                for d in range(len(bank[voice_id]["draws"]))]
    for voice_id, draw, out in render_texts(requests, processes):
        bank[voice_id]["draws"][draw].update(out)
        bank[voice_id].setdefault("extra", {})[draw] = sorted(out)
    for e in bank.values():
        if "extra" in e:
            e["extra"] = [e["extra"][k] for k in sorted(e["extra"])]
    return bank


def all_texts():
    return sorted(set(COMMANDS + NEGATIVE_WORDS + PREFIXES + SUFFIXES + SENTENCES))


def render_bank(draws_espeak=1, draws_other=3, processes=2, only_split=None):
    """{voice_id: {"split": s, "draws": [{text: samples}]}}."""
    jobs = []
    texts = all_texts()
    for voice_id, engine, name, split in voices():
        if only_split and split not in only_split:
            continue
        n = draws_espeak if engine == "espeak" else draws_other
        jobs += [(voice_id, engine, name, d, texts) for d in range(n)]
    bank = {}
    split_of = {v[0]: v[3] for v in voices()}
    with Pool(processes) as pool:
        for voice_id, draw, out in pool.imap_unordered(_render_job, jobs):
            entry = bank.setdefault(voice_id, {"split": split_of[voice_id], "draws": {}})
            entry["draws"][draw] = out
    for e in bank.values():
        e["draws"] = [e["draws"][k] for k in sorted(e["draws"])]
    return bank


# ---- augmentation -----------------------------------------------------------------------------

def _colored_noise(rng, n, kind):
    w = rng.standard_normal(n)
    if kind == "white":
        return w
    f = np.fft.rfft(w)
    k = np.arange(len(f)) + 1.0
    f /= np.sqrt(k) if kind == "pink" else k
    x = np.fft.irfft(f, n)
    return x / (x.std() + 1e-12)


def _fft_filter(x, gain_of_hz):
    f = np.fft.rfft(x)
    hz = np.fft.rfftfreq(len(x), 1.0 / SR)
    return np.fft.irfft(f * gain_of_hz(hz), len(x))


def _reverb(rng, x):
    rt60 = rng.uniform(0.15, 0.9)
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path relative to the tail
    ir /= np.sqrt((ir ** 2).sum())
    m = len(x) + n - 1
    size = 1 << (m - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    return y


def _speed(x, factor):
    """Resample by linear interpolation (speed and pitch change together)."""
    n = int(len(x) / factor)
    if n < 2:
        return x
    return np.interp(np.arange(n) * factor, np.arange(len(x)), x)


def augment(rng, x, babble_source, narrowband_share=0.0):
    """Channel and noise augmentation of a clean clip. narrowband_share: the fraction of clips made
    into a recording at 8 kHz or over a telephone line, where the noise is band-limited with the
    speech and nothing is left above 4 kHz (the 8 kHz branches below add full-band noise after the
    band limit: a phone heard in a noisy room); 0: no extra draw from rng."""
    narrow = None
    if narrowband_share > 0 and rng.random() < narrowband_share:
        # upper edge: an 8 kHz recording's anti-aliasing filter or a phone line; half of them also
        # lose what is below 300 Hz, as a telephone line does
        narrow = (rng.uniform(3300, 3900), 300.0 if rng.random() < 0.5 else 0.0)
    if rng.random() < 0.5:
        x = _reverb(rng, x)
    r = rng.random()
    if r < 0.15:    # telephone band
        x = _fft_filter(x, lambda f: ((f > 300) & (f < 3400)).astype(float))
    elif r < 0.25:  # 8 kHz recording played back at 16 kHz
        x = _fft_filter(x, lambda f: (f < 3800).astype(float))
    elif r < 0.55:  # microphone / room colour: a random smooth tilt and bump
        tilt = rng.uniform(-6, 6)
        c, bw, g = rng.uniform(300, 5000), rng.uniform(0.3, 1.5), rng.uniform(-8, 8)
        x = _fft_filter(x, lambda f: 10 ** ((tilt * np.log2((f + 100) / 1000) +
                                             g * np.exp(-0.5 * (np.log2((f + 1) / c) / bw) ** 2)) / 20))
    speech_rms = np.sqrt(np.mean(x ** 2)) + 1e-9
    if rng.random() < 0.85:
        snr = rng.uniform(0, 30)
        kind = rng.choice(["white", "pink", "brown", "babble", "babble"])
        if kind == "babble":
            noise = babble_source(rng, len(x))
        else:
            noise = _colored_noise(rng, len(x), kind)
        noise = noise / (np.sqrt(np.mean(noise ** 2)) + 1e-9) * speech_rms / (10 ** (snr / 20))
        x = x + noise
    if narrow is not None:
        x = _fft_filter(x, lambda f: ((f > narrow[1]) & (f < narrow[0])).astype(float))
    level_db = rng.uniform(-45, -8)  # rms level re full scale
    x = x / (np.sqrt(np.mean(x ** 2)) + 1e-9) * 10 ** (level_db / 20)
    peak = np.abs(x).max()
    if peak > 0.99:
        x = x * (0.99 / peak)
    return x


# ---- clips ------------------------------------------------------------------------------------

class ClipMaker:
    """Builds clips from the voices of one split of a rendered bank."""

    def __init__(self, bank, splits, clip_seconds, natural_share=0.4, real=()):
        """real: recordings of people with word times ([{"samples", "words": [(word, start,
        end)]}], real_speech.py) that make_stream's real_share draws on."""
        self.n = int(clip_seconds * SR)
        self.real = list(real)
        self.real_with_command = [r for r in self.real if any(w in COMMANDS for w, _, _ in r["words"])]
        self.voices = [v for v, e in sorted(bank.items()) if e["split"] in splits]
        self.bank = bank
        if not self.voices:
            raise ValueError("no voices in splits %s" % (splits,))
        # espeak-ng gives most voices, flite and festival the most natural ones: draw a clip's voice
        # from the two groups at natural_share, so the few natural voices are not drowned out.
        self.espeak = [v for v in self.voices if v.startswith("espeak:")]
        self.natural = [v for v in self.voices if not v.startswith("espeak:")]
        self.natural_share = natural_share

    def pick_voice(self, rng):
        group = self.natural if self.natural and (not self.espeak or rng.random() < self.natural_share) else self.espeak
        return group[rng.integers(len(group))]

    def make_stream(self, rng, negative_share=0.3, word_share=0.5, near_miss_share=0.0, extra_share=0.0,
                    phrase_share=0.0, narrowband_share=0.0, real_share=0.0):
        """A clip of running speech as a stream sees it: several commands (alone or in carrier
        phrases) and non-command words and sentences from one voice, with pauses, then channel and
        noise augmentation. negative_share: the fraction of segments that are non-command speech
        (the rest: commands alone and in carrier phrases, equally, and 10 % pauses); word_share: the
        fraction of those that are one non-command word (many of them near misses) rather than a
        sentence; near_miss_share: the fraction of those words drawn from NEAR_MISS_WORDS (0: every
        word of NEGATIVE_WORDS alike, with no extra draw from rng); extra_share: the fraction of
        non-command segments that are one of the voice's extra word sequences (render_extra; 0: no
        extra draw from rng); phrase_share: the fraction of carrier-phrase commands said inside one
        whole utterance (phrases.render_phrases) instead of spliced from separate words (0: no
        extra draw from rng); narrowband_share: augment's; real_share: the fraction of clips made of
        the real recordings instead (_real_stream; 0: no extra draw from rng).
        -> (samples [n], [(label, start, end)] in samples: the commands, and the near-miss words
        (NEAR_MISS_WORDS) as NEAR_MISS)."""
        if real_share > 0 and self.real and rng.random() < real_share:
            return self._real_stream(rng, narrowband_share)
        command_share = (0.9 - negative_share) / 2
        voice = self.pick_voice(rng)
        x = np.zeros(self.n)
        pos = int(rng.uniform(0.0, 0.6) * SR)
        events = []
        while pos < self.n:
            kind = rng.choice(["alone", "carrier", "negative", "pause"], p=[command_share, command_share, negative_share, 0.1])
            speed = rng.uniform(0.85, 1.2)
            if kind == "pause":
                pos += int(rng.uniform(0.3, 1.5) * SR)
                continue
            if kind == "negative":
                near_miss = False
                if extra_share > 0 and "extra" in self.bank[voice] and rng.random() < extra_share:
                    seg = self._say_extra(rng, voice)
                elif rng.random() >= word_share:
                    seg = self._say(rng, voice, SENTENCES[rng.integers(len(SENTENCES))])
                else:
                    if near_miss_share > 0 and rng.random() < near_miss_share:
                        text = NEAR_MISS_WORDS[rng.integers(len(NEAR_MISS_WORDS))]
                    else:
                        text = NEGATIVE_WORDS[rng.integers(len(NEGATIVE_WORDS))]
                    seg = self._say(rng, voice, text)
                    near_miss = text in NEAR_MISS_WORDS
                seg, span = _speed(seg, speed), None
            else:
                label = int(rng.integers(len(COMMANDS)))
                said = None
                if kind == "carrier" and phrase_share > 0 and "phrases" in self.bank[voice] and rng.random() < phrase_share:
                    said = self._say_phrase(rng, voice, label, speed)
                seg, span = said or self._say_spliced(rng, voice, label, kind == "carrier", speed)
            end = min(self.n, pos + len(seg))
            x[pos:end] = seg[: end - pos]
            if kind == "negative" and near_miss:
                events.append((NEAR_MISS, pos, end))
            if span is not None and pos + span[2] + int(0.45 * SR) <= self.n:
                events.append((span[0], pos + span[1], pos + span[2]))
            elif span is not None:
                # The command would end too close to the clip's end for its label window: cut it out.
                x[pos:end] = 0.0
            pos = end + int(rng.uniform(0.15, 0.9) * SR)
        return augment(rng, x, self.babble, narrowband_share).astype(np.float32), events

    def _real_stream(self, rng, narrowband_share):
        """A clip of real recordings one after another (pauses between them, each at its own speed),
        the commands and near misses among their words labelled from their word times; a
        recording longer than the clip starts at a random point of it. Half of the recordings are
        drawn from those with a command in them: most have none, and a model that hears real
        voices mostly without commands, and synthetic ones mostly with, learns that a real voice
        means background."""
        x = np.zeros(self.n)
        pos = int(rng.uniform(0.0, 0.6) * SR)
        events = []
        while pos < self.n:
            with_command = self.real_with_command
            pool = with_command if with_command and rng.random() < 0.5 else self.real
            rec = pool[rng.integers(len(pool))]
            speed = rng.uniform(0.9, 1.1)
            seg = _speed(rec["samples"].astype(np.float64), speed)
            skip = int(rng.integers(0, len(seg) - self.n // 2)) if len(seg) > self.n else 0
            seg = seg[skip:]
            end = min(self.n, pos + len(seg))
            x[pos:end] = seg[: end - pos]
            for word, start, stop in rec["words"]:
                a, b = pos + int(start / speed) - skip, pos + int(stop / speed) - skip
                if a < pos or a >= end:
                    continue  # cut off by the start of this piece or by the clip's end
                if word in COMMANDS:
                    if b + int(0.45 * SR) <= self.n:
                        events.append((COMMANDS.index(word), a, b))
                    else:  # too close to the clip's end for its label window: cut it out
                        x[a:min(b, self.n)] = 0.0
                elif word in NEAR_MISS_WORDS:
                    events.append((NEAR_MISS, a, min(b, self.n)))
            pos = end + int(rng.uniform(0.15, 0.9) * SR)
        return augment(rng, x, self.babble, narrowband_share).astype(np.float32), events

    def _say_spliced(self, rng, voice, label, carrier, speed):
        """A command alone or between carrier-phrase pieces said on their own -> (samples, (label,
        start, end))."""
        word = self._say(rng, voice, COMMANDS[label])
        before, after = [], []
        if carrier:
            if rng.random() < 0.8:
                before = [self._say(rng, voice, PREFIXES[rng.integers(len(PREFIXES))]), self._gap(rng)]
            if rng.random() < 0.7:
                after = [self._gap(rng), self._say(rng, voice, SUFFIXES[rng.integers(len(SUFFIXES))])]
        pre = np.concatenate(before) if before else np.zeros(0)
        post = np.concatenate(after) if after else np.zeros(0)
        seg = _speed(np.concatenate([pre, word, post]), speed)
        return seg, (label, int(len(pre) / speed), int((len(pre) + len(word)) / speed))

    def _say_phrase(self, rng, voice, label, speed):
        """The command inside one of the voice's whole phrases (phrases.py) -> (samples, (label,
        start, end)), or None when the draw has none; a draw without one for this command falls back
        to any of its phrases."""
        d = int(rng.integers(len(self.bank[voice]["draws"])))
        phrases = self.bank[voice]["phrases"][d]
        mine = [p for p in phrases if p[1] == label] or phrases
        if not mine:
            return None
        text, label, start, end = mine[rng.integers(len(mine))]
        seg = _speed(self.bank[voice]["draws"][d][text], speed)
        return seg, (label, int(start / speed), int(end / speed))

    def _say(self, rng, voice, text):
        draws = self.bank[voice]["draws"]
        return draws[rng.integers(len(draws))][text]

    def _say_extra(self, rng, voice):
        d = rng.integers(len(self.bank[voice]["draws"]))
        texts = self.bank[voice]["extra"][d]
        return self.bank[voice]["draws"][d][texts[rng.integers(len(texts))]]

    def _gap(self, rng, lo=0.0, hi=0.15):
        return np.zeros(int(rng.uniform(lo, hi) * SR))

    def babble(self, rng, n):
        out = np.zeros(n)
        for _ in range(rng.integers(3, 7)):
            v = self.voices[rng.integers(len(self.voices))]
            s = self._say(rng, v, SENTENCES[rng.integers(len(SENTENCES))])
            start = rng.integers(-len(s) // 2, n)
            a, b = max(0, start), min(n, start + len(s))
            if b > a:
                out[a:b] += s[a - start: b - start]
        return out

    def _negative_speech(self, rng, voice, seconds):
        parts, total = [], 0
        while total < seconds * SR:
            if rng.random() < 0.5:
                s = self._say(rng, voice, SENTENCES[rng.integers(len(SENTENCES))])
            else:
                s = self._say(rng, voice, NEGATIVE_WORDS[rng.integers(len(NEGATIVE_WORDS))])
            parts += [s, self._gap(rng, 0.02, 0.3)]
            total += len(s) + len(parts[-1])
        return np.concatenate(parts)
