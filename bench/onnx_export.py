#!/usr/bin/python3
"""The export half of clip_bench's ONNX Runtime row: the same PyTorch CLIP towers as torch_clip.py (plain modules, the
same random weights clip_bench generated) written to ONNX with torch.onnx.export (opset 14) for bench/ort/ort_clip.js.

    python3 bench/onnx_export.py MODEL_DIR [--text]

MODEL_DIR holds config.json and model.safetensors. Writes MODEL_DIR/vision.onnx (input pixel_values [B, 3, S, S]
float32, output image_embeds [B, P]; dynamic batch axis) and, with --text, MODEL_DIR/text.onnx (input input_ids
[B, T] int64, causal attention, pooled at the EOS as CLIP does (argmax of the ids for the legacy eos_token_id 2,
else the first EOS), output text_embeds [B, P]; dynamic batch and sequence axes). Prints the files written.
For benchmarking only: nothing here is used by clxp.
"""
import argparse
import json
import os
import sys

import torch
from torch import nn

from torch_clip import Layer, Vision, read_safetensors


class Text(nn.Module):
    """CLIPTextModel + text_projection (Hugging Face architecture), no padding mask: positions after the EOS do not
    reach the pooled one through a causal mask."""

    def __init__(self, cfg):
        super().__init__()
        t = cfg["text_config"]
        d, eps = t["hidden_size"], t.get("layer_norm_eps", 1e-5)
        self.eos = t.get("eos_token_id", 2)
        self.tok = nn.Embedding(t["vocab_size"], d)
        self.pos = nn.Parameter(torch.zeros(t["max_position_embeddings"], d))
        self.layers = nn.ModuleList(
            Layer(d, t["intermediate_size"], t["num_attention_heads"], t.get("hidden_act", "quick_gelu"), eps)
            for _ in range(t["num_hidden_layers"]))
        self.post = nn.LayerNorm(d, eps=eps)
        self.proj = nn.Linear(d, cfg["projection_dim"], bias=False)

    def load(self, w):
        pre = "text_model."
        with torch.no_grad():
            self.tok.weight.copy_(w[pre + "embeddings.token_embedding.weight"])
            self.pos.copy_(w[pre + "embeddings.position_embedding.weight"])
            self.post.weight.copy_(w[pre + "final_layer_norm.weight"])
            self.post.bias.copy_(w[pre + "final_layer_norm.bias"])
            for i, l in enumerate(self.layers):
                l.load(w, f"{pre}encoder.layers.{i}.")
            self.proj.weight.copy_(w["text_projection.weight"])

    def forward(self, ids):
        b, t = ids.shape
        x = self.tok(ids) + self.pos[:t]
        mask = torch.full((t, t), float("-inf")).triu(1)
        for l in self.layers:
            x = l(x, mask)
        x = self.post(x)
        idx = ids.argmax(-1) if self.eos == 2 else (ids == self.eos).int().argmax(-1)
        return self.proj(x[torch.arange(b), idx])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--text", action="store_true", help="also export the text tower (text.onnx)")
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    w = read_safetensors(os.path.join(a.model, "model.safetensors"))
    s = cfg["vision_config"]["image_size"]
    net = Vision(cfg).eval()
    net.load(w)
    out = os.path.join(a.model, "vision.onnx")
    with torch.no_grad():
        torch.onnx.export(net, (torch.zeros(2, 3, s, s),), out, opset_version=14, input_names=["pixel_values"],
                          output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}})
    print(out, flush=True)
    if a.text:
        txt = Text(cfg).eval()
        txt.load(w)
        out = os.path.join(a.model, "text.onnx")
        ids = torch.ones(2, 10, dtype=torch.int64)
        ids[:, -1] = cfg["text_config"]["vocab_size"] - 1
        with torch.no_grad():
            torch.onnx.export(txt, (ids,), out, opset_version=14, input_names=["input_ids"],
                              output_names=["text_embeds"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "text_embeds": {0: "batch"}})
        print(out, flush=True)


if __name__ == "__main__":
    sys.exit(main())
