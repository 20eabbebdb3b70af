#!/usr/bin/python3
"""Trains the shipped speech-command model (models/s4d/speech-commands) on the CPU.

    train_commands.py --bank build/speech-data/bank.pkl --out models/s4d/speech-commands

Deterministic given --seed (data, initialisation and batch order come from it; torch runs with
deterministic algorithms on a fixed number of threads). Steps:
1. n_train clips from the training voices and n_valid from the validation voices
   (speech_data.ClipMaker: commands alone and in carrier phrases, non-command speech, noise,
   heavy augmentation), as log-mel features (features.py) with one label per frame:
   the command in the frames from 120 ms to 400 ms after its end, background everywhere else;
   from its start to there "this command or background" (--inside-loss) or no label.
2. Per-frame cross-entropy on the S4D model (kws.CommandModel), AdamW, cosine schedule; each
   batch's features are augmented again (augment_features: mel-axis warp, a frequency mask).
3. Exports config.json + model.safetensors + train_log.json; the per-feature normalisation is
   folded into the encoder, so the engine feeds raw log-mel features.
"""
import argparse
import json
import math
import os
import pickle
import sys
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn.functional as F

import features
import kws
import speech_data

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from reference import read_safetensors, write_safetensors  # noqa: E402  (the S4D reference's F32 files)

torch.set_default_dtype(torch.float32)  # reference.py works in float64; training does not

# A command's label covers frames LABEL_FROM..LABEL_TO after the frame where the word ends. Starting
# after the end teaches the model to wait until it has heard that the word is over, so "six" does
# not fire inside "sixteen" nor "eight" inside "eighteen"; the frames from the word's start to
# LABEL_FROM are not scored.
LABEL_FROM = 12  # 120 ms
LABEL_TO = 40
# Background frames right after a command's label window still carry its fading posterior: they are
# scored as background but never picked as hard frames (label NOT_MINED), so hard-frame mining
# (--hard-share) spends itself on what the decoder would report as a false alarm.
NOT_MINED_FRAMES = 20
NOT_MINED = -2
# A frame inside command c's word (before its label window) is labelled INSIDE - c: "c or
# background", scored (--inside-loss) as -log(p_c + p_background). Left unscored, nothing stops the
# model from firing "four" inside "forward" or "on" inside "one".
INSIDE = -10
# The frames where a command's label would be after a near-miss word ("tree", "stock") are
# background labelled NEAR_BACKGROUND, weighted --near-miss-weight times: with the few near misses
# among thousands of commands, a plain mean left "free" and "tree" firing "three" (on the training
# voices too).
NEAR_BACKGROUND = -3

_maker = None


def _init_worker(bank_path, splits, clip_seconds, mix, near_miss_frames, natural_share, real_path):
    global _maker, _mix, _near_miss_frames
    with open(bank_path, "rb") as f:
        bank = pickle.load(f)
    real = []
    if real_path:
        with open(real_path, "rb") as f:
            real = pickle.load(f)
    _maker = speech_data.ClipMaker(bank, splits, clip_seconds, natural_share, real)
    _mix, _near_miss_frames = mix, near_miss_frames


def _frame_of(sample):
    """The first frame whose window ends at or after `sample`."""
    return max(0, math.ceil((sample - features.WINDOW) / features.HOP))


def frame_labels(n_frames, events, near_miss=False):
    """events: [(label, start, end)] in samples -> one label per frame (NOT_MINED: background that
    hard-frame mining skips; INSIDE - c: inside command c's word, c or background; with near_miss,
    NEAR_BACKGROUND after a near-miss word, where background)."""
    background = len(speech_data.COMMANDS)
    y = np.full(n_frames, background, dtype=np.int16)
    for label, start, end in events:
        if label == speech_data.NEAR_MISS:
            continue
        t_start, t_end = _frame_of(start), _frame_of(end)
        y[t_start: t_end + LABEL_FROM] = INSIDE - label
        y[t_end + LABEL_FROM: t_end + LABEL_TO] = label
        tail = y[t_end + LABEL_TO: t_end + LABEL_TO + NOT_MINED_FRAMES]
        tail[tail == len(speech_data.COMMANDS)] = NOT_MINED
    for label, start, end in events:
        if near_miss and label == speech_data.NEAR_MISS:
            t_end = _frame_of(end)
            window = y[t_end + LABEL_FROM: t_end + LABEL_TO]
            window[window == background] = NEAR_BACKGROUND
    return y


def frame_loss(logits, y, hard_share, hard_weight, inside, near_weight=1.0):
    """Per-frame cross-entropy over the scored frames (with `inside`, a command's word frames
    score -log(p_command + p_background)), plus hard_weight times the mean over the hard_share of
    background frames the model gets most wrong (online hard example mining): a false alarm is a
    handful of background frames where a command's posterior is high, lost among the thousands of
    easy ones in a plain mean."""
    n_cls = logits.shape[-1]
    background = n_cls - 1
    logits = logits.reshape(-1, n_cls)
    y = y.reshape(-1)
    near = y == NEAR_BACKGROUND
    target = torch.where((y == NOT_MINED) | near, torch.full_like(y, background), y)
    in_word = target <= INSIDE
    ce = F.cross_entropy(logits, torch.where(in_word, torch.full_like(target, -1), target), ignore_index=-1,
                         reduction="none")
    scored = target >= 0
    if inside:
        lse = torch.logsumexp(logits, dim=-1)
        cmd = (INSIDE - target).clamp(0, background - 1)
        either = torch.logsumexp(torch.stack([logits.gather(1, cmd[:, None])[:, 0], logits[:, background]]), dim=0)
        ce = torch.where(in_word, lse - either, ce)
        scored = scored | in_word
    if near_weight != 1.0:
        w = torch.where(near, torch.full_like(ce, near_weight), torch.ones_like(ce))[scored]
        loss = (ce[scored] * w).sum() / w.sum()
    else:
        loss = ce[scored].mean()
    if hard_share > 0 and hard_weight > 0:
        bg = ce[y == background]
        k = max(1, int(math.ceil(hard_share * bg.numel())))
        loss = loss + hard_weight * torch.topk(bg, k, sorted=False).values.mean()
    return loss


def _clip_job(seed):
    rng = np.random.default_rng(seed)
    x, events = _maker.make_stream(rng, *_mix)
    f = features.log_mel(x).astype(np.float16)
    return f, frame_labels(len(f), events, _near_miss_frames)


def make_set(bank_path, splits, n, seed, clip_seconds, processes, mix, near_miss_frames, natural_share, real_path=""):
    """mix: ClipMaker.make_stream's (negative_share, word_share, near_miss_share, extra_share,
    phrase_share, narrowband_share, real_share); real_path: real_speech.py's recordings."""
    seeds = [seed * 1_000_003 + i for i in range(n)]
    with Pool(processes, _init_worker, (bank_path, splits, clip_seconds, mix, near_miss_frames, natural_share,
                                        real_path)) as pool:
        out = pool.map(_clip_job, seeds, chunksize=64)
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def augment_features(x, gen, warp, max_mask):
    """Feature-space augmentation of a batch of log-mel clips [B, T, M], per clip: the mel axis
    stretched or squeezed by a factor in [1 - warp, 1 + warp] (vocal tract length perturbation:
    a shorter vocal tract moves every formant up by about one factor, which the synthetic voices
    vary far less than people do), then up to max_mask adjacent mel bands set to the clip's mean
    (SpecAugment's frequency mask: no single band may decide a word)."""
    B, T, M = x.shape
    alpha = 1.0 + (torch.rand(B, generator=gen) * 2.0 - 1.0) * warp
    pos = ((torch.arange(M) + 0.5)[None, :] * alpha[:, None] - 0.5).clamp(0, M - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=M - 1)
    frac = (pos - lo)[:, None, :]
    x_lo = torch.gather(x, 2, lo[:, None, :].expand(B, T, M))
    x_hi = torch.gather(x, 2, hi[:, None, :].expand(B, T, M))
    x = x_lo + (x_hi - x_lo) * frac
    width = torch.randint(0, max_mask + 1, (B,), generator=gen)
    start = (torch.rand(B, generator=gen) * (M - width + 1)).long()
    bands = torch.arange(M)[None, :]
    masked = (bands >= start[:, None]) & (bands < (start + width)[:, None])
    return torch.where(masked[:, None, :], x.mean(dim=(1, 2), keepdim=True), x)


def export(model, a, log, t0):
    """Writes config.json, model.safetensors and train_log.json (after every epoch, so a run that
    is stopped early still leaves its last complete epoch)."""
    n_cls = len(speech_data.LABELS)
    os.makedirs(a.out, exist_ok=True)
    config = {
        "architectures": ["S4DClassifier"], "model_type": "s4d", "d_input": features.N_MELS,
        "d_model": a.d_model, "d_state": a.d_state, "n_layers": a.layers, "d_output": n_cls,
        "prenorm": False, "layer_norm_eps": 1e-5, "activation": "gelu", "torch_dtype": "float32",
        "speech_commands": {
            "labels": speech_data.LABELS,
            "features": {"sample_rate": features.SAMPLE_RATE, "window": features.WINDOW, "hop": features.HOP,
                         "n_fft": features.N_FFT, "n_mels": features.N_MELS, "f_min": features.F_MIN,
                         "f_max": features.F_MAX, "log_floor": features.LOG_FLOOR},
            "decoder": {"threshold": 0.7, "window": 8, "refractory": 30},
        },
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(a.out, "model.safetensors"), model.checkpoint_tensors())
    log["parameters"] = sum(p.numel() for n, p in model.named_parameters())
    log["train_seconds"] = round(time.time() - t0, 1)
    log["torch"] = torch.__version__
    with open(os.path.join(a.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=16400)
    ap.add_argument("--n-valid", type=int, default=800)
    # 5.12 s is 510 frames: the S4D layers' FFT convolution then needs 1024 points (2L - 1 <= 1024)
    # instead of the 2048 that 6 s clips need, which halves the FFT work per second of audio.
    ap.add_argument("--clip-seconds", type=float, default=5.12)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-state", type=int, default=32)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--negative-share", type=float, default=0.3,
                    help="fraction of a clip's segments that are non-command speech")
    ap.add_argument("--word-share", type=float, default=0.5,
                    help="fraction of the non-command segments that are one word (many of them near misses), not a sentence")
    ap.add_argument("--near-miss-share", type=float, default=0.0,
                    help="fraction of the non-command words drawn from speech_data.NEAR_MISS_WORDS (0: all words alike)")
    ap.add_argument("--extra-share", type=float, default=0.0,
                    help="fraction of the non-command segments that are the voice's own word sequences "
                         "(render_bank.py --extra-per-draw; 0: none)")
    ap.add_argument("--phrase-share", type=float, default=0.0,
                    help="fraction of carrier-phrase commands said in one whole utterance (render_bank.py --phrases)")
    ap.add_argument("--narrowband-share", type=float, default=0.0,
                    help="fraction of clips recorded at 8 kHz or over a phone line, noise and all (speech_data.augment)")
    ap.add_argument("--natural-share", type=float, default=0.4,
                    help="fraction of clips said by a flite or festival voice rather than an espeak-ng one")
    ap.add_argument("--real", default="", help="real recordings with word times (real_speech.py) to train on")
    ap.add_argument("--real-share", type=float, default=0.0,
                    help="fraction of training clips made of --real's recordings (validation stays synthetic)")
    ap.add_argument("--mel-warp", type=float, default=0.1, help="mel axis stretched by up to this factor")
    ap.add_argument("--freq-mask", type=int, default=5, help="up to this many mel bands masked per clip")
    ap.add_argument("--hard-share", type=float, default=0.0,
                    help="fraction of a batch's background frames (the worst ones) weighted again")
    ap.add_argument("--hard-weight", type=float, default=0.0, help="weight of the hard background frames' mean loss")
    ap.add_argument("--near-miss-weight", type=float, default=1.0,
                    help="weight of the background frames where a command's label would be after a near-miss word")
    ap.add_argument("--inside-loss", type=int, default=0,
                    help="1: frames inside a command's word score -log(p_command + p_background), not nothing")
    ap.add_argument("--init", default="", help="go on from this model folder (its shape replaces --d-model etc.)")
    ap.add_argument("--warmup", type=int, default=300, help="steps of linear learning-rate warm-up")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    # Paths relative to the repository root, never the machine's own.
    repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
    if a.init:
        with open(os.path.join(a.init, "config.json")) as f:
            init_cfg = json.load(f)
        a.d_model, a.d_state, a.layers = init_cfg["d_model"], init_cfg["d_state"], init_cfg["n_layers"]
    log = {"args": {k: os.path.relpath(v, repo) if k in ("bank", "out", "init", "real") and v else v for k, v in vars(a).items()},
           "epochs": []}
    t0 = time.time()
    mix = (a.negative_share, a.word_share, a.near_miss_share, a.extra_share, a.phrase_share, a.narrowband_share)
    if a.real_share > 0 and not a.real:
        sys.exit("train_commands: --real-share needs --real (real_speech.py's output)")
    Xtr, Ytr = make_set(a.bank, {"train"}, a.n_train, a.seed, a.clip_seconds, a.threads, mix + (a.real_share,),
                        a.near_miss_weight != 1.0, a.natural_share, a.real)
    Xva, Yva = make_set(a.bank, {"valid"}, a.n_valid, a.seed + 7919, a.clip_seconds, a.threads, mix + (0.0,),
                        a.near_miss_weight != 1.0, a.natural_share)
    print("data: %d train, %d valid clips of %d frames in %.0f s" % (len(Xtr), len(Xva), Xtr.shape[1], time.time() - t0), flush=True)
    log["data_seconds"] = round(time.time() - t0, 1)

    n_cls = len(speech_data.LABELS)
    model = kws.CommandModel(features.N_MELS, a.d_model, a.d_state, a.layers, n_cls, seed=a.seed)
    flat = Xtr.reshape(-1, features.N_MELS).astype(np.float64)
    feat_mean = torch.from_numpy(flat.mean(0)).float()
    feat_std = torch.from_numpy(flat.std(0) + 1e-3).float()
    del flat
    if a.init:
        t = {k: v.float() for k, v in read_safetensors(os.path.join(a.init, "model.safetensors")).items()}
        model.load_checkpoint(t, feat_mean, feat_std)
    else:
        model.feat_mean.copy_(feat_mean)
        model.feat_std.copy_(feat_std)
    ssm = [p for n, p in model.named_parameters() if any(k in n for k in ("log_dt", "log_A_real", "A_imag"))]
    rest = [p for n, p in model.named_parameters() if not any(k in n for k in ("log_dt", "log_A_real", "A_imag"))]
    opt = torch.optim.AdamW([{"params": rest, "weight_decay": 0.01}, {"params": ssm, "weight_decay": 0.0, "lr": min(a.lr, 1e-3)}],
                            lr=a.lr)
    steps_per_epoch = len(Xtr) // a.batch
    total = steps_per_epoch * a.epochs
    base_lrs = [g["lr"] for g in opt.param_groups]
    g = torch.Generator().manual_seed(a.seed)
    g_aug = torch.Generator().manual_seed(a.seed + 1)
    step = 0
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(Xtr), generator=g)
        tl, tn, te = 0.0, 0, time.time()
        for i in range(steps_per_epoch):
            idx = perm[i * a.batch: (i + 1) * a.batch]
            x = augment_features(torch.from_numpy(Xtr[idx].astype(np.float32)), g_aug, a.mel_warp, a.freq_mask)
            y = torch.from_numpy(Ytr[idx].astype(np.int64))
            warm = min(1.0, (step + 1) / max(1, a.warmup))
            for gr, b in zip(opt.param_groups, base_lrs):
                gr["lr"] = b * warm * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = frame_loss(model(x), y, a.hard_share, a.hard_weight, a.inside_loss, a.near_miss_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tl, tn, step = tl + loss.item(), tn + 1, step + 1
        model.eval()
        with torch.no_grad():
            vl, correct, counted = 0.0, 0, 0
            for i in range(0, len(Xva), 256):
                out = model(torch.from_numpy(Xva[i: i + 256].astype(np.float32)))
                y = torch.from_numpy(Yva[i: i + 256].astype(np.int64))
                y = torch.where((y == NOT_MINED) | (y == NEAR_BACKGROUND), torch.full_like(y, n_cls - 1), y)
                y = torch.where(y <= INSIDE, torch.full_like(y, -1), y)  # inside a word: not in these figures
                vl += F.cross_entropy(out.reshape(-1, n_cls), y.reshape(-1), ignore_index=-1, reduction="sum").item()
                m = y >= 0
                correct += (out.argmax(-1)[m] == y[m]).sum().item()
                counted += m.sum().item()
        e = {"epoch": epoch + 1, "train_loss": round(tl / tn, 4), "valid_loss": round(vl / counted, 4),
             "valid_frame_accuracy": round(correct / counted, 4), "seconds": round(time.time() - te, 1)}
        log["epochs"].append(e)
        print(json.dumps(e), flush=True)
        export(model, a, log, t0)

    export(model, a, log, t0)
    print("wrote %s (%d parameters) in %.0f s" % (a.out, log["parameters"], time.time() - t0))


if __name__ == "__main__":
    sys.exit(main())
