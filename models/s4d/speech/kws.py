"""The command model in PyTorch (training form) and the posterior decoder, shared by
train_commands.py and evaluate_commands.py.

The model is vkssm's S4D (models/s4d/s4d_model.h): encoder Linear(40, H); per layer the S4D
diagonal SSM as a causal convolution (the kernel of the zero-order-hold recurrence the engine
steps), + D·u, GELU, Conv1d(H, 2H, 1), GLU, residual, post LayerNorm; decoder Linear(H, classes)
on every frame. Parameter names are those of the checkpoint the engine loads.

The decoder (EventDecoder) is the one host/audio/command_decoder.cpp implements: softmax
posteriors, a moving average over the last `window` frames, a detection when a command's average
is the largest command average and reaches `threshold`, then no detection for `refractory`
frames, and the same word again only after its average fell below half the threshold.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from features import HOP, SAMPLE_RATE, WINDOW


class S4DLayer(nn.Module):
    def __init__(self, H, N, dt_min, dt_max, g):
        super().__init__()
        M = N // 2
        self.log_dt = nn.Parameter(torch.rand(H, generator=g) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.C = nn.Parameter(torch.randn(H, M, 2, generator=g) * math.sqrt(0.5))
        self.log_A_real = nn.Parameter(torch.full((H, M), math.log(0.5)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(M, dtype=torch.float32).repeat(H, 1))
        self.D = nn.Parameter(torch.randn(H, generator=g))
        bound = 1 / math.sqrt(H)
        self.out_w = nn.Parameter((torch.rand(2 * H, H, 1, generator=g) * 2 - 1) * bound)
        self.out_b = nn.Parameter((torch.rand(2 * H, generator=g) * 2 - 1) * bound)

    def kernel(self, L):
        dt = torch.exp(self.log_dt)
        C = torch.view_as_complex(self.C)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag
        dtA = A * dt.unsqueeze(-1)
        K = dtA.unsqueeze(-1) * torch.arange(L, device=dtA.device)
        C = C * (torch.exp(dtA) - 1.0) / A
        return 2 * torch.einsum("hn,hnl->hl", C, torch.exp(K)).real

    def forward(self, u):  # u: (B, H, L)
        L = u.shape[-1]
        n = 1 << (2 * L - 1).bit_length()  # a power of two: PyTorch's CPU FFT is much faster there
        k_f = torch.fft.rfft(self.kernel(L), n=n)
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * k_f, n=n)[..., :L]
        y = F.gelu(y + u * self.D.unsqueeze(-1))
        return F.glu(F.conv1d(y, self.out_w, self.out_b), dim=-2)


class CommandModel(nn.Module):
    def __init__(self, d_input, H, N, n_layers, n_classes, dropout=0.1, seed=0, dt_min=0.01, dt_max=0.2):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.H, self.N, self.n_layers = H, N, n_layers
        self.encoder = nn.Linear(d_input, H)
        self.layers = nn.ModuleList(S4DLayer(H, N, dt_min, dt_max, g) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(H) for _ in range(n_layers))
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(H, n_classes)
        self.register_buffer("feat_mean", torch.zeros(d_input))
        self.register_buffer("feat_std", torch.ones(d_input))

    def forward(self, feats):  # (B, L, d_input) -> (B, L, classes)
        x = self.encoder((feats - self.feat_mean) / self.feat_std).transpose(1, 2)
        for layer, norm in zip(self.layers, self.norms):
            z = self.drop(layer(x))
            x = norm((z + x).transpose(1, 2)).transpose(1, 2)
        return self.decoder(x.transpose(1, 2))

    def load_checkpoint(self, t, feat_mean, feat_std):
        """The inverse of checkpoint_tensors: an engine checkpoint (tensors by name) back into the
        training form, the encoder unfolded again around the given feature normalisation, so
        training can go on from a shipped model."""
        with torch.no_grad():
            self.feat_mean.copy_(feat_mean)
            self.feat_std.copy_(feat_std)
            self.encoder.weight.copy_(t["encoder.weight"] * feat_std)
            self.encoder.bias.copy_(t["encoder.bias"] + t["encoder.weight"] @ feat_mean)
            for i, (l, n) in enumerate(zip(self.layers, self.norms)):
                p = "s4_layers.%d." % i
                for name, dst in (("kernel.log_dt", l.log_dt), ("kernel.C", l.C), ("kernel.log_A_real", l.log_A_real),
                                  ("kernel.A_imag", l.A_imag), ("D", l.D), ("output_linear.0.weight", l.out_w),
                                  ("output_linear.0.bias", l.out_b)):
                    dst.copy_(t[p + name])
                n.weight.copy_(t["norms.%d.weight" % i])
                n.bias.copy_(t["norms.%d.bias" % i])
            self.decoder.weight.copy_(t["decoder.weight"])
            self.decoder.bias.copy_(t["decoder.bias"])

    def checkpoint_tensors(self):
        """The engine's S4D tensors; the feature normalisation is folded into the encoder."""
        W = self.encoder.weight.detach() / self.feat_std
        b = self.encoder.bias.detach() - W @ self.feat_mean
        t = {"encoder.weight": W, "encoder.bias": b}
        for i, (l, n) in enumerate(zip(self.layers, self.norms)):
            p = "s4_layers.%d." % i
            t[p + "kernel.log_dt"] = l.log_dt
            t[p + "kernel.C"] = l.C
            t[p + "kernel.log_A_real"] = l.log_A_real
            t[p + "kernel.A_imag"] = l.A_imag
            t[p + "D"] = l.D
            t[p + "output_linear.0.weight"] = l.out_w
            t[p + "output_linear.0.bias"] = l.out_b
            t["norms.%d.weight" % i] = n.weight
            t["norms.%d.bias" % i] = n.bias
        t["decoder.weight"] = self.decoder.weight
        t["decoder.bias"] = self.decoder.bias
        return {k: v.detach().float().contiguous() for k, v in t.items()}


def frame_end_seconds(t):
    """Time of frame t: the end of its window."""
    return (t * HOP + WINDOW) / SAMPLE_RATE


class EventDecoder:
    def __init__(self, n_commands, threshold=0.6, window=8, refractory=30):
        self.n, self.threshold, self.window, self.refractory = n_commands, threshold, window, refractory

    def run(self, logits):
        """logits [T, classes] -> [(frame, command, score)]."""
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        c = np.cumsum(np.vstack([np.zeros((1, p.shape[1])), p]), axis=0)
        events, last, armed = [], -10 ** 9, np.ones(self.n, bool)
        for t in range(len(p)):
            avg = (c[t + 1] - c[max(0, t + 1 - self.window)])[: self.n] / self.window
            armed |= avg < 0.5 * self.threshold
            k = int(np.argmax(avg))
            if avg[k] >= self.threshold and armed[k] and t - last >= self.refractory:
                events.append((t, k, float(avg[k])))
                last, armed[k] = t, False
        return events
