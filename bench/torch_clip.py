#!/usr/bin/python3
"""The PyTorch row of `make bench`: the CLIP image tower written as a plain PyTorch module (nn.Linear,
nn.LayerNorm, nn.Conv2d, softmax attention; the Hugging Face CLIPVisionModel architecture) with the same random
weights clip_bench generated, timed the same way (median of repeated calls after warm-up, same thread count).

    python3 bench/torch_clip.py MODEL_DIR --threads N [--batches 1,16] [--precisions fp32,bf16] [--reps 5]

MODEL_DIR holds config.json and model.safetensors (read with numpy: no safetensors package needed); if it also
holds check_pixels.f32 and check_embeds.f32 (one image and clxp's fp32 embedding of it, written by clip_bench), the
fp32 output is compared with clxp's. One line per measurement on stdout:
    image BATCH PRECISION ITEMS_PER_S MS_PER_BATCH [maxdiff X]
Debian's python3-torch; for a fair comparison run it with OPENBLAS_CORETYPE set for the CPU (clip_bench does).
bf16 is torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's own mixed-precision path.
For benchmarking only: nothing here is used by clxp.
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
from torch import nn


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        data = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: {name}: only F32 tensors are supported here")
        b, e = t["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e].tobytes(), dtype="<f4").reshape(t["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Layer(nn.Module):
    def __init__(self, d, f, heads, act, eps):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=eps)
        self.fc1 = nn.Linear(d, f)
        self.fc2 = nn.Linear(f, d)
        self.act = QuickGELU() if act == "quick_gelu" else nn.GELU()

    def load(self, w, n):
        """This layer's weights from the state dict w, Hugging Face names under prefix n (no_grad by the caller)."""
        for mod, name in ((self.q, "self_attn.q_proj"), (self.k, "self_attn.k_proj"), (self.v, "self_attn.v_proj"),
                          (self.o, "self_attn.out_proj"), (self.fc1, "mlp.fc1"), (self.fc2, "mlp.fc2"),
                          (self.ln1, "layer_norm1"), (self.ln2, "layer_norm2")):
            mod.weight.copy_(w[n + name + ".weight"])
            mod.bias.copy_(w[n + name + ".bias"])

    def forward(self, x, mask=None):
        b, t, d = x.shape
        hd = d // self.heads
        h = self.ln1(x)
        q = (self.q(h) * hd ** -0.5).view(b, t, self.heads, hd).transpose(1, 2)
        k = self.k(h).view(b, t, self.heads, hd).transpose(1, 2)
        v = self.v(h).view(b, t, self.heads, hd).transpose(1, 2)
        s = q @ k.transpose(-1, -2)
        a = torch.softmax(s if mask is None else s + mask, dim=-1) @ v  # mask: the text tower's (onnx_export.py)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class Vision(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        v = cfg["vision_config"]
        d, p, s = v["hidden_size"], v["patch_size"], v["image_size"]
        eps = v.get("layer_norm_eps", 1e-5)
        self.patch = nn.Conv2d(3, d, p, p, bias=False)
        self.cls = nn.Parameter(torch.zeros(d))
        self.pos = nn.Parameter(torch.zeros((s // p) ** 2 + 1, d))
        self.pre = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(
            Layer(d, v["intermediate_size"], v["num_attention_heads"], v.get("hidden_act", "quick_gelu"), eps)
            for _ in range(v["num_hidden_layers"]))
        self.post = nn.LayerNorm(d, eps=eps)
        self.proj = nn.Linear(d, cfg["projection_dim"], bias=False)

    def load(self, w):
        pre = "vision_model."
        with torch.no_grad():
            self.patch.weight.copy_(w[pre + "embeddings.patch_embedding.weight"])
            self.cls.copy_(w[pre + "embeddings.class_embedding"])
            self.pos.copy_(w[pre + "embeddings.position_embedding.weight"])
            for mod, name in ((self.pre, "pre_layrnorm"), (self.post, "post_layernorm")):
                mod.weight.copy_(w[pre + name + ".weight"])
                mod.bias.copy_(w[pre + name + ".bias"])
            for i, l in enumerate(self.layers):
                l.load(w, f"{pre}encoder.layers.{i}.")
            self.proj.weight.copy_(w["visual_projection.weight"])

    def forward(self, px):
        x = self.patch(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], dim=1) + self.pos
        x = self.pre(x)
        for l in self.layers:
            x = l(x)
        return self.proj(self.post(x[:, 0]))


def timed(fn, reps, min_time):
    fn()
    fn()
    t = []
    while len(t) < reps or (sum(t) < min_time and len(t) < 200):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    t.sort()
    return t[len(t) // 2] if len(t) % 2 else 0.5 * (t[len(t) // 2 - 1] + t[len(t) // 2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    net = Vision(cfg).eval()
    net.load(read_safetensors(os.path.join(a.model, "model.safetensors")))
    s = cfg["vision_config"]["image_size"]
    check = os.path.join(a.model, "check_pixels.f32")
    with torch.inference_mode():
        diff = None
        if os.path.exists(check):
            px = torch.from_numpy(np.fromfile(check, dtype="<f4").reshape(1, 3, s, s))
            want = np.fromfile(os.path.join(a.model, "check_embeds.f32"), dtype="<f4")
            got = net(px).numpy().reshape(-1)
            diff = float(np.max(np.abs(got - want))) / max(float(np.max(np.abs(want))), 1e-30)
        gen = torch.Generator().manual_seed(0)
        for prec in a.precisions.split(","):
            for b in (int(x) for x in a.batches.split(",")):
                px = torch.randn(b, 3, s, s, generator=gen)
                if prec == "bf16":
                    def run():
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            net(px)
                else:
                    def run():
                        net(px)
                t = timed(run, a.reps, a.min_time)
                extra = f" maxdiff {diff:.3g}" if prec == "fp32" and diff is not None else ""
                print(f"image {b} {prec} {b / t:.3f} {1000 * t:.2f}{extra}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
