"""Log-mel features of vkssm's speech front-end, in NumPy (float64).

This is the definition that host/audio/log_mel.cpp implements; the training script, the evaluation
script and tests/test_audio.cpp (through features.py --dump) all use it, so the model sees the
very same numbers at training time and in `vkssm listen`.

    16 kHz mono samples in [-1, 1)
    frame t covers samples [160 t, 160 t + 400)   (25 ms window, 10 ms hop; no padding: the
                                                    first frame is ready after 400 samples)
    periodic Hann window of 400, zero-padded to a 512-point real FFT, power |X_k|^2, k = 0..256
    40 triangular mel filters (HTK mel scale, 2595 log10(1 + f/700)) between 20 and 7600 Hz,
    weights from each bin's centre frequency k * 16000 / 512, no area normalisation
    feature = ln(filterbank energy + 1e-6)

    features.py --dump IN.raw OUT.raw   IN: float32 samples; OUT: float32 [frames, 40]
"""
import sys

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 400
HOP = 160
N_FFT = 512
N_MELS = 40
F_MIN = 20.0
F_MAX = 7600.0
LOG_FLOOR = 1e-6


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank():
    """[N_MELS, N_FFT/2 + 1] triangular weights."""
    edges = mel_to_hz(np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2))
    freqs = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    fb = np.zeros((N_MELS, N_FFT // 2 + 1))
    for m in range(N_MELS):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return fb


_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW) / WINDOW)
_FB = mel_filterbank()


def frame_count(n_samples):
    return 0 if n_samples < WINDOW else (n_samples - WINDOW) // HOP + 1


def log_mel(samples):
    """float [n] -> float64 [frames, N_MELS]."""
    x = np.asarray(samples, dtype=np.float64)
    n = frame_count(len(x))
    if n == 0:
        return np.zeros((0, N_MELS))
    idx = np.arange(n)[:, None] * HOP + np.arange(WINDOW)[None, :]
    spec = np.fft.rfft(x[idx] * _WINDOW, n=N_FFT)
    power = spec.real ** 2 + spec.imag ** 2
    return np.log(power @ _FB.T + LOG_FLOOR)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--dump":
        sys.exit(__doc__)
    audio = np.fromfile(sys.argv[2], dtype="<f4")
    log_mel(audio).astype("<f4").tofile(sys.argv[3])
