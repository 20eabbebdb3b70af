#!/usr/bin/python3
"""Writes the demo recordings shipped in models/s4d/speech-commands/demo/, spoken by voices that
training never used (flite awb, festival ked, espeak-ng's Annie variant), at three sample rates.

    make_demo.py OUT_DIR

command-N.wav holds a few commands in running speech; command-N.txt says what is in it.
"""
import os
import subprocess
import sys
import tempfile

DEMOS = [
    # (voice, sample rate, channels, pieces; "|" is a pause of about 0.6 s)
    ("flite:awb", 16000, 1, "please turn left | then go forward | and stop"),
    ("espeak:en-us+Annie", 22050, 2, "yes | the weather is nice today | no | up | down"),
    ("festival:voice_ked_diphone", 8000, 1, "one | two | three | four | five"),
    ("flite:awb", 16000, 1, "switch the light on | now off | move backward | zero"),
]


def synth(voice, text, wav):
    engine, name = voice.split(":", 1)
    if engine == "flite":
        subprocess.run(["flite", "-voice", name, "-t", text, "-o", wav], check=True)
    elif engine == "espeak":
        subprocess.run(["espeak-ng", "-v", name, "-s", "150", "-w", wav, text], check=True)
    else:
        script = '(%s) (utt.save.wave (SynthText "%s") "%s")' % (name, text, wav)
        subprocess.run(["festival", "--pipe"], input=script.encode(), check=True)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (voice, rate, channels, text) in enumerate(DEMOS):
            pieces = []
            for j, piece in enumerate(t.strip() for t in text.split("|")):
                raw = os.path.join(tmp, "%d-%d.wav" % (i, j))
                synth(voice, piece, raw)
                norm = os.path.join(tmp, "%d-%d-16k.wav" % (i, j))
                subprocess.run(["sox", "-R", raw, "-r", "16000", "-c", "1", "-b", "16", norm, "pad", "0.3", "0.3"], check=True)
                pieces.append(norm)
            path = os.path.join(out, "command-%d.wav" % i)
            subprocess.run(["sox", "-R"] + pieces + ["-r", str(rate), "-c", str(channels), "-b", "16", path, "norm", "-3"],
                           check=True)
            with open(os.path.join(out, "command-%d.txt" % i), "w") as f:
                f.write("%s, %d Hz, %d channel(s): %s\n" % (voice, rate, channels, text.replace(" | ", " / ")))
    print("wrote %d demo recordings to %s" % (len(DEMOS), out))


if __name__ == "__main__":
    main()
