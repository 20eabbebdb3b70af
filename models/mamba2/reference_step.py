#!/usr/bin/env python3
"""Independent PyTorch reference of Mamba-2 (HF Mamba2ForCausalLM / state-spaces Mamba2), float64.

Two forms that share no code with the C++ engine nor with each other past the projections:
  * the recurrent decode step (upstream `Mamba2.step`, HF's cached `torch_forward` path), and
  * the chunked SSD form over the whole sequence (upstream `ssd_minimal_discrete`: intra-chunk
    masked matmul + inter-chunk state passing), which is how upstream ingests a prompt.
The script checks that the two agree, then writes the per-token logits of the step form.

    python3 models/mamba2/reference_step.py --model DIR --ids 1,2,3 --out logits.npy [--chunk 4]
    python3 models/mamba2/reference_step.py --make-tiny DIR [--seed 0]
        writes a small random HF-format checkpoint (awkward sizes: 2 groups, head_dim 8) in float32.
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mamba1"))
from reference_step import read_checkpoint  # noqa: E402  (the shared safetensors reader)


def limit_bound(v):
    """A time_step_limit bound: a number, or transformers 5's {"__float__": "Infinity"}."""
    return float(v["__float__"]) if isinstance(v, dict) else float(v)


def load(model_dir):
    """An HF-format folder, with HF Mamba2Config's defaults for missing keys."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)  # Python's json reads the bare Infinity token HF writes
    t = {k: torch.from_numpy(v) for k, v in read_checkpoint(model_dir).items()}
    D = cfg["hidden_size"]
    E = int(cfg.get("expand", 2) * D)
    c = dict(D=D, L=cfg["num_hidden_layers"], V=cfg["vocab_size"], N=cfg.get("state_size", 128),
             K=cfg.get("conv_kernel", 4), H=cfg.get("num_heads", 128), P=cfg.get("head_dim", 64),
             G=cfg.get("n_groups", 8), E=E, eps=cfg.get("layer_norm_epsilon", 1e-5),
             dt_limit=tuple(limit_bound(v) for v in cfg.get("time_step_limit", (0.0, math.inf))))
    assert c["H"] * c["P"] == E and c["H"] % c["G"] == 0
    assert cfg.get("rms_norm", True)
    return c, t


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def gated_norm(y, z, w, G, eps):
    """RMSNormGated(norm_before_gate=False, group_size=E/G): normalise y*silu(z) per group."""
    y = y * F.silu(z)
    shape = y.shape
    y = y.reshape(*shape[:-1], G, shape[-1] // G)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps)
    return y.reshape(shape) * w


def split_in_proj(c, zxbcdt):
    E, G, N, H = c["E"], c["G"], c["N"], c["H"]
    z, xbc, dt = torch.split(zxbcdt, [E, E + 2 * G * N, H], dim=-1)
    return z, xbc, dt


def run_steps(c, t, ids):
    """Token by token, as upstream Mamba2.step does."""
    E, G, N, H, P, K, L = c["E"], c["G"], c["N"], c["H"], c["P"], c["K"], c["L"]
    conv_dim = E + 2 * G * N
    conv_state = [torch.zeros(conv_dim, K, dtype=torch.float64) for _ in range(L)]
    ssm_state = [torch.zeros(H, P, N, dtype=torch.float64) for _ in range(L)]
    head = t.get("lm_head.weight", t["backbone.embeddings.weight"])
    out = []
    for tok in ids:
        h = t["backbone.embeddings.weight"][tok]
        residual = torch.zeros_like(h)
        for i in range(L):
            p = f"backbone.layers.{i}."
            m = p + "mixer."
            residual = residual + h
            x = rms_norm(residual, t[p + "norm.weight"], c["eps"])
            zxbcdt = t[m + "in_proj.weight"] @ x
            if m + "in_proj.bias" in t:
                zxbcdt = zxbcdt + t[m + "in_proj.bias"]
            z, xbc, dt = split_in_proj(c, zxbcdt)
            conv_state[i] = torch.roll(conv_state[i], shifts=-1, dims=-1)
            conv_state[i][:, -1] = xbc
            xbc = torch.sum(conv_state[i] * t[m + "conv1d.weight"][:, 0, :], dim=-1)
            if m + "conv1d.bias" in t:
                xbc = xbc + t[m + "conv1d.bias"]
            xbc = F.silu(xbc)
            xs, B, C = torch.split(xbc, [E, G * N, G * N])
            A = -torch.exp(t[m + "A_log"])
            dt = F.softplus(dt + t[m + "dt_bias"])
            dt = torch.clamp(dt, c["dt_limit"][0], c["dt_limit"][1])
            dA = torch.exp(dt * A)                                    # [H]
            xs = xs.reshape(H, P)
            B = B.reshape(G, N).repeat_interleave(H // G, dim=0)      # head h -> group h // (H/G)
            C = C.reshape(G, N).repeat_interleave(H // G, dim=0)
            ssm_state[i] = ssm_state[i] * dA[:, None, None] + (dt[:, None] * xs)[:, :, None] * B[:, None, :]
            y = torch.einsum("hpn,hn->hp", ssm_state[i], C) + t[m + "D"][:, None] * xs
            y = gated_norm(y.reshape(E), z, t[m + "norm.weight"], G, c["eps"])
            h = t[m + "out_proj.weight"] @ y
            if m + "out_proj.bias" in t:
                h = h + t[m + "out_proj.bias"]
        residual = residual + h
        out.append(head @ rms_norm(residual, t["backbone.norm_f.weight"], c["eps"]))
    return torch.stack(out)


def segsum(x):
    """x [..., T] -> [..., T, T] with out[i, j] = sum(x[j+1..i]) for j <= i, -inf above."""
    T = x.size(-1)
    x = x[..., None].expand(*x.shape, T)
    x = x.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1), 0)
    s = torch.cumsum(x, dim=-2)
    return s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=0), -math.inf)


def ssd_chunked(X, A, B, C, chunk):
    """X [T,H,P] (already times dt), A [T,H] (dt*A), B/C [T,H,N] -> Y [T,H,P]; T % chunk == 0."""
    T, H, P = X.shape
    nc = T // chunk
    X, A, B, C = (v.reshape(nc, chunk, *v.shape[1:]) for v in (X, A, B, C))
    A = A.permute(2, 0, 1)                                      # [H, c, l]
    A_cumsum = torch.cumsum(A, dim=-1)
    Lmat = torch.exp(segsum(A))                                 # [H, c, l, s]
    Y_diag = torch.einsum("clhn,cshn,hcls,cshp->clhp", C, B, Lmat, X)
    decay_states = torch.exp(A_cumsum[:, :, -1:] - A_cumsum)    # [H, c, l]
    states = torch.einsum("clhn,hcl,clhp->chpn", B, decay_states, X)
    states = torch.cat([torch.zeros_like(states[:1]), states], dim=0)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[:, :, -1], (1, 0))))  # [H, c+1, c+1]
    new_states = torch.einsum("hzc,chpn->zhpn", decay_chunk, states)
    states = new_states[:-1]
    Y_off = torch.einsum("clhn,chpn,hcl->clhp", C, states, torch.exp(A_cumsum))
    return (Y_diag + Y_off).reshape(T, H, P)


def run_chunked(c, t, ids, chunk):
    """The whole sequence at once: projections over all tokens, conv as a causal conv1d, SSD."""
    E, G, N, H, P, K, L = c["E"], c["G"], c["N"], c["H"], c["P"], c["K"], c["L"]
    T = len(ids)
    pad = (-T) % chunk
    h = t["backbone.embeddings.weight"][torch.tensor(ids)]
    residual = torch.zeros_like(h)
    for i in range(L):
        p = f"backbone.layers.{i}."
        m = p + "mixer."
        residual = residual + h
        x = rms_norm(residual, t[p + "norm.weight"], c["eps"])
        zxbcdt = x @ t[m + "in_proj.weight"].T
        if m + "in_proj.bias" in t:
            zxbcdt = zxbcdt + t[m + "in_proj.bias"]
        z, xbc, dt = split_in_proj(c, zxbcdt)
        w = t[m + "conv1d.weight"]                                   # [conv_dim, 1, K]
        xbc = F.conv1d(xbc.T[None], w, t.get(m + "conv1d.bias"), padding=K - 1, groups=w.shape[0])
        xbc = F.silu(xbc[0, :, :T].T)
        xs, B, C = torch.split(xbc, [E, G * N, G * N], dim=-1)
        dt = torch.clamp(F.softplus(dt + t[m + "dt_bias"]), c["dt_limit"][0], c["dt_limit"][1])  # [T, H]
        A = -torch.exp(t[m + "A_log"])
        xs = xs.reshape(T, H, P)
        B = B.reshape(T, G, N).repeat_interleave(H // G, dim=1)
        C = C.reshape(T, G, N).repeat_interleave(H // G, dim=1)
        padT = lambda v: F.pad(v, [0, 0] * (v.dim() - 1) + [0, pad])  # noqa: E731
        Y = ssd_chunked(padT(xs * dt[..., None]), padT(A * dt), padT(B), padT(C), chunk)[:T]
        y = Y + t[m + "D"][:, None] * xs
        y = gated_norm(y.reshape(T, E), z, t[m + "norm.weight"], G, c["eps"])
        h = y @ t[m + "out_proj.weight"].T
        if m + "out_proj.bias" in t:
            h = h + t[m + "out_proj.bias"]
    residual = residual + h
    head = t.get("lm_head.weight", t["backbone.embeddings.weight"])
    return rms_norm(residual, t["backbone.norm_f.weight"], c["eps"]) @ head.T


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make_tiny(out_dir, seed):
    """A small random Mamba-2 with awkward sizes: 2 groups, 6 heads of 8, d_state 16, biases."""
    rng = np.random.default_rng(seed)
    D, L, V, N, K, G, H, P = 24, 2, 48, 16, 4, 2, 6, 8
    E = H * P
    conv_dim = E + 2 * G * N
    rows = 2 * E + 2 * G * N + H
    u = lambda shape, b: rng.uniform(-b, b, size=shape)  # noqa: E731
    t = {"backbone.embeddings.weight": u((V, D), 0.5), "backbone.norm_f.weight": u((D,), 0.1) + 1.0,
         "lm_head.weight": u((V, D), 0.5)}
    for i in range(L):
        p, m = f"backbone.layers.{i}.", f"backbone.layers.{i}.mixer."
        t[p + "norm.weight"] = 1.0 + u((D,), 0.1)
        t[m + "in_proj.weight"] = u((rows, D), 1 / math.sqrt(D))
        t[m + "in_proj.bias"] = u((rows,), 0.05)
        t[m + "conv1d.weight"] = u((conv_dim, 1, K), 1 / math.sqrt(K))
        t[m + "conv1d.bias"] = u((conv_dim,), 0.1)
        dt = np.exp(rng.uniform(math.log(1e-3), math.log(1e-1), size=H))
        t[m + "dt_bias"] = dt + np.log(-np.expm1(-dt))
        t[m + "A_log"] = np.log(rng.uniform(1, 16, size=H))
        t[m + "D"] = 1.0 + u((H,), 0.1)
        t[m + "norm.weight"] = 1.0 + u((E,), 0.1)
        t[m + "out_proj.weight"] = u((D, E), 1 / math.sqrt(E))
        t[m + "out_proj.bias"] = u((D,), 0.05)
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    cfg = {"architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2", "hidden_size": D,
           "num_hidden_layers": L, "vocab_size": V, "state_size": N, "conv_kernel": K, "expand": 2,
           "num_heads": H, "head_dim": P, "n_groups": G, "layer_norm_epsilon": 1e-5, "use_bias": True,
           "use_conv_bias": True, "tie_word_embeddings": False, "chunk_size": 256, "rms_norm": True,
           "residual_in_fp32": True, "torch_dtype": "float32"}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        # time_step_limit written the way HF writes its default: with a bare Infinity token.
        f.write(json.dumps(cfg, indent=2)[:-2] + ',\n  "time_step_limit": [0.0, Infinity]\n}\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--ids")
    ap.add_argument("--out")
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--make-tiny")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    if a.make_tiny:
        make_tiny(a.make_tiny, a.seed)
        return
    c, t = load(a.model)
    ids = [int(s) for s in a.ids.split(",")]
    steps = run_steps(c, t, ids)
    chunked = run_chunked(c, t, ids, a.chunk)
    diff = (steps - chunked).abs().max().item()
    print(f"step form vs chunked SSD form (chunk {a.chunk}): max abs diff {diff:.3g}", file=sys.stderr)
    assert diff < 1e-9, "the two forms disagree"
    np.save(a.out, steps.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
