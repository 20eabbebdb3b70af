#!/usr/bin/env python3
"""Train a tiny byte-level Mamba-1 language model on tinyshakespeare and export it HF-style.

The model is the upstream state-spaces/mamba `MambaLMHeadModel` (Mamba-1 mixer, pre-norm
residual blocks, RMSNorm, tied embeddings) written out in plain PyTorch. Training uses the
sequence ("parallel") form: the convolution runs over the whole sequence at once and only the
selective-scan recurrence is a Python loop over time, which is fine for short sequences.
The exported folder (config.json + model.safetensors) is what models/mamba1/reference_step.py
and the C++ engine load; token id = byte value ("vkssm_tokenizer": "bytes").

What made models/mamba1/tiny-shakespeare (about 11 minutes on one core):
    python3 models/mamba1/train_tiny.py --steps 1300 --out models/mamba1/tiny-shakespeare
(--minutes N instead of --steps trains for a wall-clock budget.) Debian's PyTorch links the
reference (netlib) BLAS, which makes matrix products ~40x slower; point it at OpenBLAS, e.g.
    apt-get download libopenblas0-serial && dpkg -x libopenblas0-serial_*.deb oblas
    LD_LIBRARY_PATH=$PWD/oblas/usr/lib/x86_64-linux-gnu/openblas-serial python3 ...
At the end it re-reads the exported folder with reference_step.py and prints the largest
logit difference between the two forms (--verify DIR does only that).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# tinyshakespeare (Andrej Karpathy's char-rnn data/tinyshakespeare/input.txt, public domain); by
# default looked for in a data folder beside the repository, else pass --data.
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "text", "tinyshakespeare.txt")


def repo_relative(args):
    """The arguments with paths relative to the repository root, as train_log.json records them."""
    return {k: os.path.relpath(v, REPO) if k in ("data", "out") else v for k, v in vars(args).items()}


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class SelectiveScan(torch.autograd.Function):
    """The Mamba-1 selective scan, time-major, from a zero state:

        h_t = exp(dt_t * A) * h_{t-1} + (dt_t * x_t) B_t^T      h: [batch, E, N]
        y_t = h_t C_t                                           (D * x is added by the caller)

    Inputs dt, x: [T, batch, E]; A: [E, N]; B, C: [T, batch, N]. Returns y: [T, batch, E].
    Written as one autograd op with a hand-derived backward so the big [batch, E, N] tensors
    are only ever touched one time step at a time (they stay in cache; autograd on the plain
    loop would stream T-sized tensors through memory many times). G_t below is the total
    gradient reaching h_t: G_t = dL/dy_t C_t^T + G_{t+1} * exp(dt_{t+1} * A).
    """

    @staticmethod
    def forward(ctx, dt, x, A, B, C):
        T, Bsz, E = x.shape
        N = A.shape[1]
        hs = torch.empty(T, Bsz, E, N, dtype=x.dtype)
        y = torch.empty(T, Bsz, E, dtype=x.dtype)
        h = torch.zeros(Bsz, E, N, dtype=x.dtype)
        for t in range(T):
            dA = torch.exp(dt[t].unsqueeze(-1) * A)
            h = torch.addcmul(dA * h, (dt[t] * x[t]).unsqueeze(-1), B[t].unsqueeze(1), out=hs[t])
            torch.matmul(h, C[t].unsqueeze(-1), out=y[t].unsqueeze(-1))
        ctx.save_for_backward(dt, x, A, B, C, hs)
        return y

    @staticmethod
    def backward(ctx, gy):
        dt, x, A, B, C, hs = ctx.saved_tensors
        T, Bsz, E = x.shape
        gdt, gx = torch.empty_like(dt), torch.empty_like(x)
        gB, gC = torch.empty_like(B), torch.empty_like(C)
        gA_acc = torch.zeros(Bsz, E, A.shape[1], dtype=x.dtype)
        G = torch.zeros_like(gA_acc)
        for t in range(T - 1, -1, -1):
            G.addcmul_(gy[t].unsqueeze(-1), C[t].unsqueeze(1))
            gC[t] = torch.matmul(gy[t].unsqueeze(1), hs[t]).squeeze(1)
            u = dt[t] * x[t]
            gu = torch.matmul(G, B[t].unsqueeze(-1)).squeeze(-1)
            gB[t] = torch.matmul(u.unsqueeze(1), G).squeeze(1)
            gdt_t = gu * x[t]
            gx[t] = gu * dt[t]
            dA = torch.exp(dt[t].unsqueeze(-1) * A)
            if t > 0:
                # d/d(dt*A) of exp(dt*A) * h_{t-1}
                g_arg = G * hs[t - 1] * dA
                gdt_t += (g_arg * A).sum(-1)
                gA_acc.addcmul_(g_arg, dt[t].unsqueeze(-1))
            gdt[t] = gdt_t
            G.mul_(dA)  # carry to h_{t-1}
        return gdt, gx, gA_acc.sum(0), gB, gC


class MambaMixer(nn.Module):
    """Mamba-1 mixer, sequence form. Parameter names match the HF checkpoint names."""

    def __init__(self, d_model, d_state, d_conv, expand, dt_rank,
                 dt_min=1e-3, dt_max=1e-1, dt_init_floor=1e-4):
        super().__init__()
        E = expand * d_model
        self.d_inner, self.d_state, self.d_conv, self.dt_rank = E, d_state, d_conv, dt_rank
        self.in_proj = nn.Linear(d_model, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, d_conv, groups=E, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(E, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, E, bias=True)
        self.out_proj = nn.Linear(E, d_model, bias=False)

        # Upstream initialisation: dt_proj weight ~ U(+-dt_rank^-0.5); its bias is the inverse
        # softplus of a log-uniform dt in [dt_min, dt_max], so softplus(bias) starts there.
        std = dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(E) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        # S4D-real initialisation: A = -(1..N) for every channel.
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(E, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(E))

    def forward(self, u):
        """u: [B, T, D] -> [B, T, D]; starts from a zero state."""
        Bsz, T, _ = u.shape
        E, N, R = self.d_inner, self.d_state, self.dt_rank
        xz = self.in_proj(u)
        x, z = xz[..., :E], xz[..., E:]
        # Causal depthwise conv: pad K-1 on both sides, keep the first T outputs.
        x = self.conv1d(x.transpose(1, 2))[..., :T].transpose(1, 2)
        x = F.silu(x)
        dbl = self.x_proj(x)
        dt_in, Bm, Cm = dbl[..., :R], dbl[..., R:R + N], dbl[..., R + N:]
        dt = F.softplus(self.dt_proj(dt_in))  # threshold 20 like upstream
        A = -torch.exp(self.A_log)            # [E, N]
        y = SelectiveScan.apply(dt.transpose(0, 1).contiguous(), x.transpose(0, 1).contiguous(),
                                A, Bm.transpose(0, 1).contiguous(), Cm.transpose(0, 1).contiguous())
        y = y.transpose(0, 1)
        y = y + self.D * x
        return self.out_proj(y * F.silu(z))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm = RMSNorm(cfg["hidden_size"], cfg["layer_norm_epsilon"])
        self.mixer = MambaMixer(cfg["hidden_size"], cfg["state_size"], cfg["conv_kernel"],
                                cfg["expand"], cfg["time_step_rank"])

    def forward(self, h, residual):
        residual = h + residual
        return self.mixer(self.norm(residual)), residual


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg["num_hidden_layers"])])
        self.norm_f = RMSNorm(cfg["hidden_size"], cfg["layer_norm_epsilon"])


class MambaLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self._init_like_upstream()

    def _init_like_upstream(self):
        # mamba_ssm.models.mixer_seq_simple._init_weights: embeddings N(0, 0.02); out_proj
        # kaiming-uniform scaled by 1/sqrt(n_layer) (prenorm residual rescale).
        nn.init.normal_(self.backbone.embeddings.weight, std=0.02)
        n_layer = self.cfg["num_hidden_layers"]
        for layer in self.backbone.layers:
            w = layer.mixer.out_proj.weight
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            with torch.no_grad():
                w /= math.sqrt(n_layer)

    def forward(self, ids):
        h = self.backbone.embeddings(ids)
        residual = torch.zeros_like(h)
        for layer in self.backbone.layers:
            h, residual = layer(h, residual)
        x = self.backbone.norm_f(h + residual)
        return x @ self.backbone.embeddings.weight.t()  # tied lm_head


# ---------------------------------------------------------------- safetensors writer

def write_safetensors(path, tensors):
    """tensors: list of (name, float32 numpy array). Writes the safetensors format by hand:
    8-byte little-endian header size, JSON header (padded with spaces to 8 bytes), raw data."""
    header, offset, blobs = {}, 0, []
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr, dtype="<f4")
        blob = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    header["__metadata__"] = {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for blob in blobs:
            f.write(blob)


def export_hf(model, out_dir, extra_config=None):
    os.makedirs(out_dir, exist_ok=True)
    cfg = dict(model.cfg)
    if extra_config:
        cfg.update(extra_config)
    tensors = []
    for name, p in model.state_dict().items():
        tensors.append((name, p.detach().to(torch.float32).cpu().numpy()))
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def make_config(d_model, n_layer, d_state, d_conv, expand, dt_rank):
    return {
        "architectures": ["MambaForCausalLM"],
        "model_type": "mamba",
        "vocab_size": 256,
        "hidden_size": d_model,
        "state_size": d_state,
        "num_hidden_layers": n_layer,
        "intermediate_size": expand * d_model,
        "conv_kernel": d_conv,
        "expand": expand,
        "time_step_rank": dt_rank,
        "layer_norm_epsilon": 1e-5,
        "use_bias": False,
        "use_conv_bias": True,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "residual_in_fp32": True,
        "torch_dtype": "float32",
        "bos_token_id": 0,
        "eos_token_id": 0,
        "pad_token_id": 0,
        "vkssm_tokenizer": "bytes",
    }


def verify_export(out_dir, text=b"ROMEO:\nWhat light through yonder window breaks?"):
    """Loads the exported folder twice, into the training model (sequence form) and into the
    independent step-by-step reference, and returns the max |logit difference| for `text`
    with the training form in float32 and in float64."""
    sys.path.insert(0, HERE)
    import reference_step

    with open(os.path.join(out_dir, "config.json")) as f:
        cfg = json.load(f)
    tensors = reference_step.read_safetensors(os.path.join(out_dir, "model.safetensors"))
    model = MambaLM(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    ids = torch.tensor([list(text)])
    ref = reference_step.Mamba1Reference(out_dir).logits_for(ids[0].tolist())
    with torch.no_grad():
        diff32 = (model.float()(ids)[0].double() - ref).abs().max().item()
        diff64 = (model.double()(ids)[0] - ref).abs().max().item()
    return diff32, diff64


# ---------------------------------------------------------------- training

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", default=os.path.join(HERE, "tiny-shakespeare"))
    ap.add_argument("--minutes", type=float, default=12.0, help="wall-clock training budget")
    ap.add_argument("--steps", type=int, default=0,
                    help="fixed number of steps (overrides --minutes; deterministic schedule)")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--d-conv", type=int, default=4)
    ap.add_argument("--expand", type=int, default=2)
    ap.add_argument("--dt-rank", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--verify", metavar="DIR",
                    help="only compare an exported folder's training-form logits with reference_step.py")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if "BLAS_INFO=generic" in torch.__config__.show() and not os.environ.get("LD_LIBRARY_PATH"):
        print("note: this PyTorch may use the slow reference BLAS; see the header of this file",
              flush=True)
    if args.verify:
        d32, d64 = verify_export(args.verify)
        print(f"max |training - reference| logits: fp32 training form {d32:.3e}, fp64 {d64:.3e}")
        return
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    with open(args.data, "rb") as f:
        data = np.frombuffer(f.read(), dtype=np.uint8).astype(np.int64)
    n_val = len(data) // 10
    train, val = data[:-n_val], data[-n_val:]

    cfg = make_config(args.d_model, args.n_layer, args.d_state, args.d_conv, args.expand,
                      args.dt_rank)
    model = MambaLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params} ({n_params * 4 / 1e6:.2f} MB fp32)", flush=True)

    # No weight decay on norms, biases, A_log and D (as upstream recommends for A_log / D).
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "A_log" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "A_log" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))

    T, Bsz = args.seq_len, args.batch

    def batch(src, n):
        starts = rng.integers(0, len(src) - T - 1, size=n)
        idx = starts[:, None] + np.arange(T + 1)[None, :]
        chunk = torch.from_numpy(src[idx])
        return chunk[:, :-1], chunk[:, 1:]

    val_rng_state = np.random.default_rng(args.seed + 1)
    val_starts = val_rng_state.integers(0, len(val) - T - 1, size=32)
    val_idx = val_starts[:, None] + np.arange(T + 1)[None, :]
    val_chunk = torch.from_numpy(val[val_idx])

    def val_loss():
        model.eval()
        with torch.no_grad():
            losses = []
            for i in range(0, 32, 16):
                c = val_chunk[i:i + 16]
                logits = model(c[:, :-1])
                losses.append(F.cross_entropy(logits.reshape(-1, 256), c[:, 1:].reshape(-1)).item())
        model.train()
        return sum(losses) / len(losses)

    budget_s = args.minutes * 60.0
    warmup = 50
    t0 = time.time()
    step, ema = 0, None
    while True:
        elapsed = time.time() - t0
        if args.steps:
            frac = step / args.steps
            if step >= args.steps:
                break
        else:
            frac = elapsed / budget_s
            if frac >= 1.0:
                break
        # Linear warmup, then cosine decay to 10% over the budget (steps or wall time).
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train, Bsz)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % args.log_every == 0 or step == 1:
            print(f"step {step:5d}  t {time.time() - t0:6.0f}s  lr {lr:.2e}  loss {loss.item():.4f}"
                  f"  ema {ema:.4f}", flush=True)
        if step % 500 == 0:
            print(f"step {step:5d}  val {val_loss():.4f}", flush=True)

    train_s = time.time() - t0
    vl = val_loss()
    print(f"done: {step} steps, {train_s:.0f}s, train ema {ema:.4f}, val {vl:.4f} nats/byte",
          flush=True)
    export_hf(model, args.out)
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump({"steps": step, "seconds": round(train_s, 1), "train_loss_ema": round(ema, 4),
                   "val_loss": round(vl, 4), "params": n_params,
                   "tokens_seen": step * Bsz * T, "args": repo_relative(args)}, f, indent=2)
        f.write("\n")
    print(f"exported to {args.out}", flush=True)
    d32, d64 = verify_export(args.out)
    print(f"max |training - reference| logits: fp32 training form {d32:.3e}, fp64 {d64:.3e}",
          flush=True)


if __name__ == "__main__":
    main()
