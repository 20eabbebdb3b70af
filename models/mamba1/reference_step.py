#!/usr/bin/env python3
"""Independent pure-PyTorch reference of Mamba-1 (and Falcon-Mamba) decoding, one token at a time.

This mirrors upstream state-spaces/mamba `Mamba.step` inside `MambaLMHeadModel`
(mamba_ssm/modules/mamba_simple.py) and is the cross-check for the C++ engine: it shares no code
with it and runs in float64 by default.

It reads an HF-format folder (config.json + model.safetensors, or a sharded
model.safetensors.index.json) with its own small safetensors reader (F32/F16/BF16/F64), so the
`safetensors` package is not needed.

    python3 models/mamba1/reference_step.py --model DIR --ids 1,2,3 --out logits.npy
        writes float32 logits [T, vocab], token t's row computed from a zero state after
        feeding ids[0..t] one at a time.
    python3 models/mamba1/reference_step.py --model DIR --prompt 'ROMEO:\\n' --generate 200
        byte-level text generation (models whose config says "vkssm_tokenizer": "bytes").
    python3 models/mamba1/reference_step.py --make-tiny DIR [--falcon] [--seed 0]
        writes a small random checkpoint (Falcon-Mamba with --falcon) for the tests.

Falcon-Mamba (HF FalconMambaForCausalLM, model_type "falcon_mamba") differs in one place: the dt,
B and C parts of x_proj's output are each RMS-normalised without a weight, with `mixer_rms_eps`
(HF's rms_forward), before dt_proj and the scan.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------- safetensors reader

_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
           "F64": np.dtype("<f8")}


def read_safetensors(path):
    """Returns {name: float64 numpy array}. Validates the header against the file size."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if hlen > len(raw) - 8:
        raise ValueError(f"{path}: header length {hlen} exceeds the file size {len(raw)}")
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    data = memoryview(raw)[8 + hlen:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(v) for v in info["data_offsets"])
        nbytes = math.prod(shape) * _DTYPES[dtype].itemsize
        if not (0 <= begin <= end <= len(data)) or end - begin != nbytes:
            raise ValueError(f"{path}: tensor {name} has bad data_offsets {begin},{end} "
                             f"for shape {shape} {dtype} (data size {len(data)})")
        arr = np.frombuffer(data[begin:end], dtype=_DTYPES[dtype]).reshape(shape)
        if dtype == "BF16":
            # bf16 is the top half of an fp32 bit pattern.
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.astype(np.float64)
    return out


def read_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for shard in shards:
            tensors.update(read_safetensors(os.path.join(model_dir, shard)))
        return tensors
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


# ---------------------------------------------------------------- config

def parse_config(cfg):
    """HF MambaConfig or original mamba_ssm config -> plain dict of sizes."""
    if "hidden_size" in cfg:  # HF
        D = cfg["hidden_size"]
        c = dict(d_model=D, n_layer=cfg["num_hidden_layers"], vocab=cfg["vocab_size"],
                 d_state=cfg.get("state_size", 16), d_conv=cfg.get("conv_kernel", 4),
                 expand=cfg.get("expand", 2), dt_rank=cfg.get("time_step_rank", "auto"),
                 eps=cfg.get("layer_norm_epsilon", 1e-5))
        c["d_inner"] = cfg.get("intermediate_size", c["expand"] * D)
    else:  # original state-spaces/mamba
        ssm = cfg.get("ssm_cfg", {}) or {}
        if ssm.get("layer", "Mamba1") != "Mamba1":
            raise ValueError(f"not a Mamba-1 config: ssm_cfg.layer = {ssm['layer']}")
        D = cfg["d_model"]
        vocab = cfg["vocab_size"]
        mult = cfg.get("pad_vocab_size_multiple", 8)
        vocab += (-vocab) % mult
        c = dict(d_model=D, n_layer=cfg["n_layer"], vocab=vocab, d_state=ssm.get("d_state", 16),
                 d_conv=ssm.get("d_conv", 4), expand=ssm.get("expand", 2),
                 dt_rank=ssm.get("dt_rank", "auto"), eps=cfg.get("norm_epsilon", 1e-5))
        c["d_inner"] = c["expand"] * D
    if c["dt_rank"] == "auto":
        c["dt_rank"] = math.ceil(D / 16)
    c["dt_b_c_rms"] = cfg.get("model_type") == "falcon_mamba"
    c["mixer_rms_eps"] = cfg.get("mixer_rms_eps", 1e-6)
    return c


# ---------------------------------------------------------------- model

class Mamba1Reference:
    def __init__(self, model_dir, dtype=torch.float64):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.raw_config = json.load(f)
        self.c = parse_config(self.raw_config)
        self.dtype = dtype
        t = {k: torch.tensor(v, dtype=dtype) for k, v in read_checkpoint(model_dir).items()}
        c = self.c
        D, E, N, K, R, V = (c["d_model"], c["d_inner"], c["d_state"], c["d_conv"], c["dt_rank"],
                            c["vocab"])

        def get(name, shape, optional=False):
            if name not in t:
                if optional:
                    return None
                raise KeyError(f"missing tensor {name}")
            if list(t[name].shape) != list(shape):
                raise ValueError(f"tensor {name} has shape {list(t[name].shape)}, "
                                 f"expected {list(shape)}")
            return t[name]

        emb_name = ("backbone.embeddings.weight" if "backbone.embeddings.weight" in t
                    else "backbone.embedding.weight")
        self.emb = get(emb_name, [V, D])
        self.layers = []
        for i in range(c["n_layer"]):
            p = f"backbone.layers.{i}."
            m = p + "mixer."
            self.layers.append(dict(
                norm=get(p + "norm.weight", [D]),
                in_proj=get(m + "in_proj.weight", [2 * E, D]),
                in_proj_b=get(m + "in_proj.bias", [2 * E], optional=True),
                conv_w=get(m + "conv1d.weight", [E, 1, K])[:, 0, :],
                conv_b=get(m + "conv1d.bias", [E], optional=True),
                x_proj=get(m + "x_proj.weight", [R + 2 * N, E]),
                dt_w=get(m + "dt_proj.weight", [E, R]),
                dt_b=get(m + "dt_proj.bias", [E]),
                A=-torch.exp(get(m + "A_log", [E, N])),
                Dskip=get(m + "D", [E]),
                out_proj=get(m + "out_proj.weight", [D, E]),
                out_proj_b=get(m + "out_proj.bias", [D], optional=True),
            ))
        self.norm_f = get("backbone.norm_f.weight", [D])
        lm_head = get("lm_head.weight", [V, D], optional=True)
        self.lm_head = self.emb if lm_head is None else lm_head

    def new_state(self):
        c = self.c
        L, E, N, K = c["n_layer"], c["d_inner"], c["d_state"], c["d_conv"]
        return dict(conv=torch.zeros(L, E, K, dtype=self.dtype),   # newest input last
                    ssm=torch.zeros(L, E, N, dtype=self.dtype))

    def rmsnorm(self, x, w):
        return x / torch.sqrt(x.pow(2).mean() + self.c["eps"]) * w

    def step(self, state, token):
        """Feeds one token, updates `state` in place, returns logits [V]."""
        c = self.c
        E, N, R = c["d_inner"], c["d_state"], c["dt_rank"]
        if not 0 <= token < c["vocab"]:
            raise ValueError(f"token {token} outside the vocabulary [0, {c['vocab']})")
        h = self.emb[token]
        residual = torch.zeros_like(h)
        for i, L in enumerate(self.layers):
            residual = h + residual
            x = self.rmsnorm(residual, L["norm"])
            xz = L["in_proj"] @ x
            if L["in_proj_b"] is not None:
                xz = xz + L["in_proj_b"]
            x_in, z = xz[:E], xz[E:]
            conv = state["conv"][i]
            conv.copy_(torch.roll(conv, shifts=-1, dims=1))
            conv[:, -1] = x_in
            xc = (conv * L["conv_w"]).sum(dim=1)
            if L["conv_b"] is not None:
                xc = xc + L["conv_b"]
            xc = F.silu(xc)
            dbl = L["x_proj"] @ xc
            dt_in, Bv, Cv = dbl[:R], dbl[R:R + N], dbl[R + N:]
            if c["dt_b_c_rms"]:  # Falcon-Mamba
                eps = c["mixer_rms_eps"]
                dt_in, Bv, Cv = (v / torch.sqrt(v.pow(2).mean() + eps) for v in (dt_in, Bv, Cv))
            dt = F.softplus(L["dt_w"] @ dt_in + L["dt_b"])   # -> identity above 20, as upstream
            ssm = state["ssm"][i]
            ssm.mul_(torch.exp(dt[:, None] * L["A"])).add_((dt * xc)[:, None] * Bv[None, :])
            y = ssm @ Cv + L["Dskip"] * xc
            h = L["out_proj"] @ (y * F.silu(z))
            if L["out_proj_b"] is not None:
                h = h + L["out_proj_b"]
        residual = h + residual
        return self.lm_head @ self.rmsnorm(residual, self.norm_f)

    def logits_for(self, ids):
        state = self.new_state()
        return torch.stack([self.step(state, int(t)) for t in ids])


def generate(model, prompt_ids, n, temperature, seed):
    """Greedy when temperature == 0, else softmax sampling at that temperature."""
    gen = torch.Generator().manual_seed(seed)
    state = model.new_state()
    for t in prompt_ids:
        logits = model.step(state, t)
    out = []
    for _ in range(n):
        if temperature == 0:
            nxt = int(torch.argmax(logits))
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        out.append(nxt)
        logits = model.step(state, nxt)
    return out


def make_tiny(out_dir, seed, falcon):
    """A small random model with awkward sizes (D 20, E 40, N 6, R 3, V 37), biases and an
    untied head; dt_proj's bias as upstream initialises it."""
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("mamba2_reference",
                                                  os.path.join(here, "..", "mamba2", "reference_step.py"))
    mamba2_reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mamba2_reference)
    rng = np.random.default_rng(seed)
    D, L, V, N, K, E, R = 20, 2, 37, 6, 4, 40, 3
    u = lambda shape, b: rng.uniform(-b, b, size=shape)  # noqa: E731
    t = {"backbone.embeddings.weight": u((V, D), 0.5), "backbone.norm_f.weight": 1.0 + u((D,), 0.1),
         "lm_head.weight": u((V, D), 0.5)}
    for i in range(L):
        p, m = f"backbone.layers.{i}.", f"backbone.layers.{i}.mixer."
        t[p + "norm.weight"] = 1.0 + u((D,), 0.1)
        t[m + "in_proj.weight"] = u((2 * E, D), 1 / math.sqrt(D))
        t[m + "in_proj.bias"] = u((2 * E,), 0.05)
        t[m + "conv1d.weight"] = u((E, 1, K), 1 / math.sqrt(K))
        t[m + "conv1d.bias"] = u((E,), 0.1)
        t[m + "x_proj.weight"] = u((R + 2 * N, E), 1 / math.sqrt(E))
        t[m + "dt_proj.weight"] = u((E, R), 1 / math.sqrt(R))
        dt = np.exp(rng.uniform(math.log(1e-3), math.log(1e-1), size=E))
        t[m + "dt_proj.bias"] = dt + np.log(-np.expm1(-dt))
        t[m + "A_log"] = np.log(np.tile(np.arange(1, N + 1, dtype=np.float64), (E, 1)))
        t[m + "D"] = 1.0 + u((E,), 0.1)
        t[m + "out_proj.weight"] = u((D, E), 1 / math.sqrt(E))
        t[m + "out_proj.bias"] = u((D,), 0.05)
    os.makedirs(out_dir, exist_ok=True)
    mamba2_reference.write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    cfg = {"architectures": ["FalconMambaForCausalLM" if falcon else "MambaForCausalLM"],
           "model_type": "falcon_mamba" if falcon else "mamba", "hidden_size": D,
           "num_hidden_layers": L, "vocab_size": V, "state_size": N, "conv_kernel": K,
           "expand": 2, "intermediate_size": E, "time_step_rank": R, "layer_norm_epsilon": 1e-5,
           "use_bias": True, "use_conv_bias": True, "tie_word_embeddings": False,
           "torch_dtype": "float32"}
    if falcon:
        cfg["mixer_rms_eps"] = 1e-6
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description="Mamba-1 / Falcon-Mamba reference decoder (pure PyTorch)")
    ap.add_argument("--model", help="folder with config.json + model.safetensors")
    ap.add_argument("--make-tiny", metavar="DIR", help="write a small random checkpoint to DIR")
    ap.add_argument("--falcon", action="store_true", help="with --make-tiny: a Falcon-Mamba one")
    ap.add_argument("--ids", help="comma-separated token ids")
    ap.add_argument("--text", help="byte-level: use the UTF-8 bytes of this text as the ids "
                    "(backslash escapes like \\n are interpreted)")
    ap.add_argument("--out", help="write float32 logits [T, vocab] here (.npy)")
    ap.add_argument("--prompt", help="byte-level generation prompt (backslash escapes allowed)")
    ap.add_argument("--generate", type=int, default=0, help="bytes to generate after --prompt")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--float32", action="store_true", help="compute in float32, not float64")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.make_tiny:
        make_tiny(args.make_tiny, args.seed, args.falcon)
        return
    if not args.model:
        ap.error("--model is required (or --make-tiny)")

    model = Mamba1Reference(args.model, torch.float32 if args.float32 else torch.float64)

    def unescape(s):
        return s.encode("utf-8").decode("unicode_escape").encode("latin-1")

    ids = None
    if args.ids:
        ids = [int(v) for v in args.ids.split(",") if v.strip()]
    elif args.text is not None:
        ids = list(unescape(args.text))
    if ids is not None:
        logits = model.logits_for(ids).to(torch.float32).numpy()
        if args.out:
            np.save(args.out, logits)
        print(f"ids {','.join(map(str, ids))}: logits {list(logits.shape)}, "
              f"argmax {','.join(str(int(a)) for a in logits.argmax(-1))}")
    if args.prompt is not None and args.generate > 0:
        prompt = list(unescape(args.prompt))
        out = generate(model, prompt, args.generate, args.temperature, args.seed)
        sys.stdout.write(bytes(prompt + out).decode("utf-8", errors="replace") + "\n")


if __name__ == "__main__":
    main()
