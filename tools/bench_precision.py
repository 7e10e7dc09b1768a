"""Precision modes side by side: device memory, latency and error.

For ResNet-18 (from clnet.zoo) and the BERT-style encoder of
tests/test_precision.py, runs fp32, fp16 (storage), auto (mixed, calibrated)
and weight-only int8 (alone and with auto), and prints device bytes (weights
+ arena, as ``clnet-run --json`` reports them), their ratio to fp32, the
median latency, and the max error relative to the fp32 output.

    python tools/bench_precision.py [--size 224] [--repeat 5] [--device 0:0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

MODES = (("fp32", {}), ("fp16", {}), ("auto", {}), ("fp32", {"weight_int8": True}),
         ("auto", {"weight_int8": True}))


def models(size: int) -> list:
    from clnet.zoo import resnet18
    from test_precision import bert_encoder

    rng = np.random.default_rng(0)
    image = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    ids = rng.integers(0, 1000, (1, 64)).astype(np.int64)
    return [(f"resnet18-{size}", resnet18(size=size).SerializeToString(), {"input": image}),
            ("bert-encoder-64", bert_encoder(np.random.default_rng(1), hidden=256, heads=4,
                                             layers=4, seq=64).SerializeToString(),
             {"input_ids": ids})]


def measure(data: bytes, feeds: dict, device, precision: str, options: dict,
            repeat: int) -> dict:
    import clnet

    start = time.perf_counter()
    session = clnet.InferenceSession(data, device=device, precision=precision, **options)
    load = time.perf_counter() - start
    out = session.run(None, feeds)[0]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return {"out": out, "bytes": session.device_bytes, "weights": session.last_plan.weight_bytes,
            "ms": float(np.median(times) * 1e3), "load_s": load}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    from clnet.device import select_device

    device = select_device(args.device)
    print(f"device: {device.describe()}")
    header = f"{'model':<18}{'mode':<12}{'device MiB':>11}{'x fp32':>8}{'weights MiB':>12}" \
             f"{'ms':>9}{'rel err':>10}{'top-1':>7}"
    print(header)
    for name, data, feeds in models(args.size):
        base = None
        for precision, options in MODES:
            r = measure(data, feeds, device, precision, options, args.repeat)
            base = base or r
            ref = base["out"].astype(np.float64)
            err = np.abs(r["out"] - ref).max() / np.abs(ref).max()
            same = "yes" if r["out"].reshape(-1).argmax() == ref.reshape(-1).argmax() else "no"
            mode = precision + ("+int8" if options.get("weight_int8") else "")
            print(f"{name:<18}{mode:<12}{r['bytes'] / 2**20:>11.2f}"
                  f"{r['bytes'] / base['bytes']:>8.3f}{r['weights'] / 2**20:>12.2f}"
                  f"{r['ms']:>9.2f}{err:>10.2e}{same if name.startswith('resnet') else '-':>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
