#!/usr/bin/python3
"""Independent PyTorch reference for vkssm's S4D: upstream's computation, in float64.

The main path is the one upstream trains with: state-spaces/s4 `models/s4/s4d.py` (S4DKernel
builds the convolution kernel K over the whole sequence, S4D.forward convolves with it through
rfft/irfft of length 2L, adds D*u, GELU, then Conv1d(H, 2H, 1) + GLU) inside the S4Model loop of
`example.py` (encoder, residual, LayerNorm pre or post, decoder). It differs from upstream in one
place only: the decoder is applied to every time step instead of to the mean over time (the mean
of these per-step outputs is upstream's pooled output, since the decoder is affine). Dropout is
off (eval mode). A second, recurrent implementation (s = dA*s + dB*u per step) runs too, and the
two must agree.

    reference.py MODEL_DIR INPUTS.npy OUT.npy
        MODEL_DIR holds config.json + model.safetensors (vkssm's S4D format); INPUTS is float32
        [T, d_input]; OUT gets float32 [T, d_output].
    reference.py --make-test-data DATA_DIR
        writes the tiny test models and fixtures of tests/data (s4d_tiny*, see s4d_tiny_ref.txt).

Only torch and numpy are needed; safetensors files are read and written by hand.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

# ---- safetensors ------------------------------------------------------------------------------

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = blob[base + begin : base + end]
        if info["dtype"] == "BF16":
            u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u16.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = torch.from_numpy(arr.astype(np.float64).reshape(info["shape"]))
    return out


def write_safetensors(path, tensors):
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        data = np.ascontiguousarray(t.detach().numpy().astype("<f4")).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    assert cfg.get("model_type") == "s4d", "not an S4D config"
    assert cfg.get("activation", "gelu") == "gelu"
    return cfg, read_safetensors(os.path.join(model_dir, "model.safetensors"))


# ---- the convolutional form, as upstream computes it ------------------------------------------


def s4d_kernel(p, prefix, L):
    """S4DKernel.forward: K[h, l] = 2 Re(sum_n C[h,n] (exp(dt A)-1)/A exp(dt A l))."""
    dt = torch.exp(p[prefix + "log_dt"])  # (H)
    C = torch.view_as_complex(p[prefix + "C"].contiguous())  # (H N)
    A = -torch.exp(p[prefix + "log_A_real"]) + 1j * p[prefix + "A_imag"]  # (H N)
    dtA = A * dt.unsqueeze(-1)
    K = dtA.unsqueeze(-1) * torch.arange(L)  # (H N L)
    C = C * (torch.exp(dtA) - 1.0) / A
    return 2 * torch.einsum("hn,hnl->hl", C, torch.exp(K)).real


def s4d_layer_conv(p, i, u):
    """S4D.forward on u (H, L), transposed=True, eval mode."""
    pre = "s4_layers.%d." % i
    L = u.shape[-1]
    k = s4d_kernel(p, pre + "kernel.", L)
    k_f = torch.fft.rfft(k, n=2 * L)
    u_f = torch.fft.rfft(u, n=2 * L)
    y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]
    y = y + u * p[pre + "D"].unsqueeze(-1)
    y = F.gelu(y)  # nn.GELU(): exact erf form
    y = F.conv1d(y.unsqueeze(0), p[pre + "output_linear.0.weight"], p[pre + "output_linear.0.bias"])[0]
    return F.glu(y, dim=-2)


# ---- the recurrent form -----------------------------------------------------------------------


def s4d_layer_recurrent(p, i, u):
    """The same layer as a recurrence over time, zero-order hold discretisation."""
    pre = "s4_layers.%d." % i
    dt = torch.exp(p[pre + "kernel.log_dt"]).unsqueeze(-1)
    A = -torch.exp(p[pre + "kernel.log_A_real"]) + 1j * p[pre + "kernel.A_imag"]
    C = torch.view_as_complex(p[pre + "kernel.C"].contiguous())
    dA = torch.exp(dt * A)
    dB = (dA - 1.0) / A
    s = torch.zeros_like(A)
    ys = []
    for t in range(u.shape[-1]):
        s = dA * s + dB * u[:, t].unsqueeze(-1)
        ys.append(2 * (C * s).sum(-1).real + p[pre + "D"] * u[:, t])
    y = F.gelu(torch.stack(ys, dim=-1))
    W = p[pre + "output_linear.0.weight"][:, :, 0]
    a = W @ y + p[pre + "output_linear.0.bias"].unsqueeze(-1)
    H = a.shape[0] // 2
    return a[:H] * torch.sigmoid(a[H:])


# ---- S4Model (example.py), decoder on every step ----------------------------------------------


def run_model(cfg, p, inputs, layer_fn):
    eps = cfg.get("layer_norm_eps", 1e-5)
    H = cfg["d_model"]
    x = inputs @ p["encoder.weight"].T + p["encoder.bias"]  # (L, H)
    x = x.T  # (H, L)
    for i in range(cfg["n_layers"]):
        norm = lambda v: F.layer_norm(v.T, (H,), p["norms.%d.weight" % i], p["norms.%d.bias" % i], eps).T
        z = norm(x) if cfg.get("prenorm", False) else x
        z = layer_fn(p, i, z)
        x = z + x
        if not cfg.get("prenorm", False):
            x = norm(x)
    return x.T @ p["decoder.weight"].T + p["decoder.bias"]  # (L, d_output)


def reference(model_dir, inputs):
    cfg, p = load_model(model_dir)
    assert inputs.ndim == 2 and inputs.shape[1] == cfg["d_input"], "inputs must be [T, d_input]"
    x = torch.from_numpy(inputs.astype(np.float64))
    with torch.no_grad():
        conv = run_model(cfg, p, x, s4d_layer_conv)
        rec = run_model(cfg, p, x, s4d_layer_recurrent)
    diff = (conv - rec).abs().max().item()
    scale = max(1.0, conv.abs().max().item())
    assert diff <= 1e-9 * scale, "convolutional and recurrent forms disagree by %g" % diff
    return conv.numpy(), diff


# ---- test fixtures ----------------------------------------------------------------------------


def make_tiny(seed, d_input=3, H=12, N=8, n_layers=2, d_output=5):
    """Upstream's S4D/S4Model initialisation, then perturbed like a trained model, so that every
    tensor matters: log_A_real and A_imag vary per mode, dt is larger (faster dynamics within a
    short test sequence) and the LayerNorms are not identities."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(*s, generator=g)
    randn = lambda *s: torch.randn(*s, generator=g)
    unif = lambda bound, *s: (rand(*s) * 2 - 1) * bound
    t = {}
    t["encoder.weight"] = unif(1 / math.sqrt(d_input), H, d_input)
    t["encoder.bias"] = unif(1 / math.sqrt(d_input), H)
    M = N // 2
    for i in range(n_layers):
        pre = "s4_layers.%d." % i
        t[pre + "kernel.log_dt"] = rand(H) * (math.log(0.5) - math.log(1e-2)) + math.log(1e-2)
        t[pre + "kernel.C"] = randn(H, M, 2) * math.sqrt(0.5)
        t[pre + "kernel.log_A_real"] = math.log(0.5) + 0.5 * randn(H, M)
        t[pre + "kernel.A_imag"] = math.pi * torch.arange(M).repeat(H, 1) + 0.3 * randn(H, M)
        t[pre + "D"] = randn(H)
        t[pre + "output_linear.0.weight"] = unif(1 / math.sqrt(H), 2 * H, H, 1)
        t[pre + "output_linear.0.bias"] = unif(1 / math.sqrt(H), 2 * H)
        t["norms.%d.weight" % i] = 1 + 0.1 * randn(H)
        t["norms.%d.bias" % i] = 0.05 * randn(H)
    t["decoder.weight"] = unif(1 / math.sqrt(H), d_output, H)
    t["decoder.bias"] = unif(1 / math.sqrt(H), d_output)
    cfg = {"architectures": ["S4DClassifier"], "model_type": "s4d", "d_input": d_input, "d_model": H,
           "d_state": N, "n_layers": n_layers, "d_output": d_output, "prenorm": False,
           "layer_norm_eps": 1e-5, "activation": "gelu", "torch_dtype": "float32"}
    return cfg, t


def save_model(model_dir, cfg, tensors):
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(model_dir, "model.safetensors"), tensors)


def make_test_data(data_dir):
    cfg, tensors = make_tiny(seed=4)
    save_model(os.path.join(data_dir, "s4d_tiny"), cfg, tensors)
    save_model(os.path.join(data_dir, "s4d_tiny_prenorm"), dict(cfg, prenorm=True), tensors)
    inputs = torch.randn(24, cfg["d_input"], generator=torch.Generator().manual_seed(5)).numpy().astype(np.float32)
    np.save(os.path.join(data_dir, "s4d_tiny_inputs.npy"), inputs)
    for name, ref in (("s4d_tiny", "s4d_tiny_ref.npy"), ("s4d_tiny_prenorm", "s4d_tiny_prenorm_ref.npy")):
        out, diff = reference(os.path.join(data_dir, name), inputs)
        np.save(os.path.join(data_dir, ref), out.astype(np.float32))
        print("%s: outputs %s, |conv - recurrent| max %.3g" % (name, out.shape, diff))


def main(argv):
    if len(argv) == 2 and argv[0] == "--make-test-data":
        make_test_data(argv[1])
        return 0
    if len(argv) != 3 or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    inputs = np.load(argv[1])
    if inputs.dtype != np.float32:
        print("inputs must be float32, got %s" % inputs.dtype, file=sys.stderr)
        return 1
    out, diff = reference(argv[0], inputs)
    np.save(argv[2], out.astype(np.float32))
    print("wrote %s %s (|conv - recurrent| max %.3g)" % (argv[2], out.shape, diff))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
