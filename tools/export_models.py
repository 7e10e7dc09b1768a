"""Recurrent and control-flow models exported from PyTorch, checked through clnet.

Builds seeded, randomly initialised torch modules, exports them with the
TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) into a
folder, and compares clnet with onnxruntime on each:

* ``crnn``: a CNN + 2-layer bidirectional LSTM text recogniser (CTC log-probs);
* ``gru_tagger``: an embedding + GRU sequence tagger;
* ``scripted_control``: a scripted model whose loop over time steps becomes an
  ONNX Loop and whose data-dependent branch becomes an If.

Needs ``torch`` (``pip install torch==2.13.0``, CPU build).

    python tools/export_models.py --out /tmp/models      # export all and compare
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn


class CRNN(nn.Module):
    """Text-line recogniser: conv features over width, BiLSTM, per-column classes."""

    def __init__(self, classes: int = 37, hidden: int = 48):
        super().__init__()

        def block(cin, cout, pool):
            return [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(),
                    nn.MaxPool2d(pool)]
        self.features = nn.Sequential(*block(1, 16, 2), *block(16, 32, 2),
                                      *block(32, 48, (2, 1)), *block(48, 64, (4, 1)))
        self.rnn = nn.LSTM(64, hidden, num_layers=2, bidirectional=True)
        self.classify = nn.Linear(2 * hidden, classes)

    def forward(self, image):
        f = self.features(image)                  # [N, C, 1, W/4]
        f = f.squeeze(2).permute(2, 0, 1)         # [T, N, C]
        y, _ = self.rnn(f)
        return self.classify(y).log_softmax(-1)   # [T, N, classes]


class GRUTagger(nn.Module):
    def __init__(self, vocab: int = 50, dim: int = 24, hidden: int = 32, tags: int = 9):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.GRU(dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, tags)

    def forward(self, tokens):
        y, _ = self.rnn(self.embed(tokens))
        return self.out(y)


class ScriptedControl(nn.Module):
    """A hand-written recurrence (Loop) and a data-dependent branch (If)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.cell = nn.Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.zeros(x.size(1), 16)
        for t in range(x.size(0)):
            h = torch.tanh(self.inp(x[t]) + self.cell(h))
        if bool(h.mean() > 0.0):
            out = self.head(h)
        else:
            out = self.head(-h) * 2.0
        return out


# symbolic dimensions of each export: a plan is built per concrete size
DYNAMIC = {"crnn": {"image": {0: "batch", 3: "width"}},
           "gru_tagger": {"tokens": {0: "batch", 1: "length"}},
           "scripted_control": {"x": {0: "steps", 1: "batch"}}}
OTHER_SHAPES = {"crnn": {"image": (1, 1, 32, 64)}, "gru_tagger": {"tokens": (1, 5)},
                "scripted_control": {"x": (3, 1, 8)}}


def _randomise_batchnorm(module: nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def models() -> dict:
    """name -> (module builder, example inputs, scripted?)."""
    rng = np.random.default_rng(0)
    return {
        "crnn": (CRNN, {"image": rng.random((2, 1, 32, 100), np.float32)}, False),
        "gru_tagger": (GRUTagger, {"tokens": rng.integers(0, 50, (3, 13), np.int64)}, False),
        "scripted_control": (ScriptedControl,
                             {"x": rng.standard_normal((7, 3, 8)).astype(np.float32)}, True),
    }


def export(name: str, folder: Path, opset: int = 17) -> tuple:
    """Export one model; returns (path, feeds)."""
    builder, feeds, scripted = models()[name]
    torch.manual_seed(0)
    module = builder().eval()
    _randomise_batchnorm(module)
    if scripted:
        module = torch.jit.script(module)
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    path = Path(folder) / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=list(feeds),
                          output_names=["output"], opset_version=opset, dynamo=False,
                          dynamic_axes=DYNAMIC[name])
    return path, feeds


def other_feeds(name: str, feeds: dict) -> dict:
    """Inputs of another size along the model's symbolic dimensions."""
    rng = np.random.default_rng(1)
    result = {}
    for key, shape in OTHER_SHAPES[name].items():
        like = feeds[key]
        if like.dtype.kind == "i":
            result[key] = rng.integers(0, int(like.max()) + 1, shape, like.dtype)
        else:
            result[key] = rng.standard_normal(shape).astype(like.dtype)
    return result


def compare(path: Path, feed_list: list, device=None) -> tuple:
    """(max |clnet - onnxruntime| / max |onnxruntime|, argmax agreement) over
    every feed dict, all run by one session (one plan per input shape)."""
    import onnxruntime as ort

    import clnet
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    session = clnet.InferenceSession(str(path), device=device)
    errors, same = [], True
    for feeds in feed_list:
        want = reference.run(None, feeds)
        got = session.run(None, feeds)
        errors += [float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-12))
                   for g, w in zip(got, want)]
        same = same and all(g.shape == w.shape and (g.argmax(-1) == w.argmax(-1)).all()
                            for g, w in zip(got, want))
    return max(errors), same


def timing(path: Path, feeds: dict, device=None, repeat: int = 20) -> tuple:
    """Median milliseconds per run of (clnet, onnxruntime), after a warm-up run."""
    import time

    import onnxruntime as ort

    import clnet
    medians = []
    for session in (clnet.InferenceSession(str(path), device=device),
                    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])):
        session.run(None, feeds)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - start)
        medians.append(1e3 * float(np.median(times)))
    return tuple(medians)


def ops_of(path: Path) -> list:
    import onnx
    return sorted({n.op_type for n in onnx.load(str(path)).graph.node})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="folder for the .onnx files "
                        "(default: a temporary folder)")
    parser.add_argument("--device", default=None, help="clnet device selection")
    parser.add_argument("--only", default=None, help="comma-separated model names")
    parser.add_argument("--repeat", type=int, default=0,
                        help="also time this many runs of clnet and onnxruntime")
    args = parser.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="clnet_models_"))
    folder.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",") if args.only else list(models())
    failed = 0
    for name in names:
        path, feeds = export(name, folder)
        error, same = compare(path, [feeds, other_feeds(name, feeds)], args.device)
        ok = error <= 1e-3 and same
        failed += not ok
        print(f"{name:18s} {'ok  ' if ok else 'FAIL'} max|diff|/max|ref| {error:.2e} "
              f"argmax {'same' if same else 'DIFFERS'}  ops: {', '.join(ops_of(path))}")
        if args.repeat:
            ours, theirs = timing(path, feeds, args.device, args.repeat)
            shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
            print(f"{'':18s} {shapes}: clnet {ours:.2f} ms, onnxruntime {theirs:.2f} ms "
                  f"(median of {args.repeat})")
    print(f"models in {folder}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
