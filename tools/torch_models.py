"""Real model families exported from PyTorch, for checking clnet against onnxruntime.

Each builder returns a seeded, randomly initialised torch module in eval mode
and an example input; ``export`` writes it to ONNX with the TorchScript
exporter.  Needs ``torch`` (``pip install torch==2.13.0``, CPU build).

    python tools/torch_models.py --out /tmp/models     # export all and compare
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: 1x1 expand, depthwise, optional SE, 1x1 project."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int, se: bool, act: type):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(),
                  nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                  nn.BatchNorm2d(hidden), act()]
        if se:
            layers.append(SqueezeExcite(hidden, max(8, hidden // 4)))
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV3Small(nn.Module):
    def __init__(self, classes: int = 100):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish())
        cfg = [(16, 16, 1, 2, True, nn.ReLU), (16, 24, 4, 2, False, nn.ReLU),
               (24, 24, 3, 1, False, nn.ReLU), (24, 40, 4, 2, True, nn.Hardswish),
               (40, 40, 6, 1, True, nn.Hardswish), (40, 48, 3, 1, True, nn.Hardswish),
               (48, 96, 6, 2, True, nn.Hardswish)]
        self.blocks = nn.Sequential(*[InvertedResidual(*c) for c in cfg])
        self.head = nn.Sequential(nn.Conv2d(96, 256, 1), nn.Hardswish())
        self.fc = nn.Linear(256, classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TinyYolo(nn.Module):
    """A YOLO-style detector: backbone, upsample + concat neck, two heads,
    outputs decoded with Sigmoid/Reshape/Transpose/Split like exported YOLOs."""

    def __init__(self, classes: int = 3, anchors: int = 2):
        super().__init__()
        def cbl(cin, cout, k=3, s=1):
            return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False),
                                 nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))
        self.c1, self.c2 = cbl(3, 16, s=2), cbl(16, 32, s=2)
        self.c3, self.c4 = cbl(32, 64, s=2), cbl(64, 128, s=2)
        self.lat = cbl(128, 64, k=1)
        self.fuse = cbl(128, 64)
        self.na, self.no = anchors, classes + 5
        self.head_big = nn.Conv2d(128, anchors * self.no, 1)
        self.head_small = nn.Conv2d(64, anchors * self.no, 1)

    def _decode(self, p):
        b, _, h, w = p.shape
        p = p.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous()
        xy, wh, rest = p.split([2, 2, self.no - 4], dim=-1)
        out = torch.cat([torch.sigmoid(xy) * 2 - 0.5, torch.exp(wh.clamp(max=4)),
                         torch.sigmoid(rest)], dim=-1)
        return out.view(b, -1, self.no)

    def forward(self, x):
        f3 = self.c3(self.c2(self.c1(x)))
        f4 = self.c4(f3)
        up = F.interpolate(self.lat(f4), scale_factor=2, mode="nearest")
        small = self.fuse(torch.cat([up, f3], dim=1))
        return torch.cat([self._decode(self.head_big(f4)), self._decode(self.head_small(small))], 1)


class TinySegNet(nn.Module):
    """Encoder-decoder segmentation with ConvTranspose and bilinear Resize."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.e1 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU())
        self.e2 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.d1 = nn.Sequential(nn.ConvTranspose2d(32, 16, 2, 2), nn.ReLU())
        self.out = nn.Conv2d(32, classes, 1)

    def forward(self, x):
        a = self.e1(x)
        b = self.d1(self.e2(a))
        y = self.out(torch.cat([a, b], 1))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class TinyBert(nn.Module):
    """BERT-style encoder: embeddings (Gather), LayerNorm, attention with a
    padding mask applied through Where, exact (Erf) GELU."""

    def __init__(self, vocab=1000, hidden=64, heads=4, layers=2, seq=32):
        super().__init__()
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(seq, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.heads = heads
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(nn.ModuleDict({
                "qkv": nn.Linear(hidden, 3 * hidden), "proj": nn.Linear(hidden, hidden),
                "ln1": nn.LayerNorm(hidden), "ff1": nn.Linear(hidden, 4 * hidden),
                "ff2": nn.Linear(4 * hidden, hidden), "ln2": nn.LayerNorm(hidden)}))

    def forward(self, ids, mask):
        b, s = ids.shape
        x = self.norm(self.tok(ids) + self.pos(torch.arange(s).unsqueeze(0)))
        hd = x.shape[-1] // self.heads
        keep = (mask > 0).view(b, 1, 1, s)
        for layer in self.layers:
            q, k, v = layer["qkv"](x).split(x.shape[-1], dim=-1)
            q, k, v = (t.view(b, s, self.heads, hd).transpose(1, 2) for t in (q, k, v))
            scores = q @ k.transpose(-1, -2) / hd ** 0.5
            scores = torch.where(keep, scores, torch.full_like(scores, -1e4))
            att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, -1)
            x = layer["ln1"](x + layer["proj"](att))
            x = layer["ln2"](x + layer["ff2"](F.gelu(layer["ff1"](x))))
        return x


def families() -> dict:
    """name -> (module, example inputs tuple, input names, output names)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 1000, (2, 32), generator=g)
    mask = torch.ones(2, 32, dtype=torch.int64)
    mask[1, 20:] = 0
    return {
        "mobilenet_v3_small": (MobileNetV3Small(), (torch.randn(1, 3, 96, 96, generator=g),),
                               ["input"], ["logits"]),
        "yolo_tiny": (TinyYolo(), (torch.randn(1, 3, 128, 128, generator=g),), ["images"],
                      ["detections"]),
        "segnet": (TinySegNet(), (torch.randn(1, 3, 64, 80, generator=g),), ["image"],
                   ["masks"]),
        "bert_tiny": (TinyBert(), (ids, mask), ["input_ids", "attention_mask"],
                      ["hidden"]),
    }


def _randomise_batchnorm(module: nn.Module) -> None:
    """Give BatchNorm non-trivial statistics so folding bugs would show."""
    g = torch.Generator().manual_seed(2)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def export(name: str, folder: Path, opset: int = 17) -> tuple:
    """Export one family; returns (path, {input name: array})."""
    module, inputs, in_names, out_names = families()[name]
    _randomise_batchnorm(module)
    module.eval()
    path = folder / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(module, inputs, str(path), input_names=in_names,
                          output_names=out_names, opset_version=opset, dynamo=False)
    return path, {n: t.numpy() for n, t in zip(in_names, inputs)}


def compare(path: Path, feeds: dict, device=None) -> float:
    """max |clnet - onnxruntime| / max |onnxruntime| over all outputs."""
    import clnet
    import onnxruntime as ort

    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = clnet.InferenceSession(str(path), device=device).run(None, feeds)
    return max(float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-6))
               for g, w in zip(got, want))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the .onnx files")
    parser.add_argument("--only", default=None, help="one family name")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    status = 0
    for name in families():
        if args.only and name != args.only:
            continue
        path, feeds = export(name, args.out)
        try:
            err = compare(path, feeds)
            print(f"{name:20s} max rel diff vs onnxruntime {err:.2e}")
        except Exception as exc:  # report and continue with the next family
            print(f"{name:20s} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
