"""Data-movement and spatial ops: clnet against onnxruntime (CPU) on one model each.

Each case is a one-node model at a size real networks use (BERT's embedding
lookup, a segmentation decoder's 2x upsampling and transposed convolution,
a detector's reflect padding, an attention Einsum).  Outputs are checked
against onnxruntime first; then both run `--repeat` times and the median
wall time per run is printed (clnet's includes the input upload and output
download), with the bytes the op must move divided by clnet's time.

    python tools/bench_movement.py
    python tools/bench_movement.py --precision fp16 --repeat 50 --cases gather,resize
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import clnet
from bench_models import timed   # tools/ is on sys.path when run as a script

RNG = np.random.default_rng(0)


def _model(node, feeds: dict, inits: dict, opset: int = 18):
    types = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64}
    inputs = [helper.make_tensor_value_info(n, types[a.dtype], a.shape) for n, a in feeds.items()]
    graph = helper.make_graph([node], "bench", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def cases() -> dict:
    f = lambda *s: RNG.standard_normal(s).astype(np.float32)  # noqa: E731
    return {
        "gather": (helper.make_node("Gather", ["table", "ids"], ["y"]),
                   {"ids": RNG.integers(0, 30522, size=(8, 128)).astype(np.int64)},
                   {"table": f(30522, 768)}),
        "resize": (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear"),
                   {"x": f(1, 64, 128, 128)}, {"s": np.array([1, 1, 2, 2], np.float32)}),
        "convtranspose": (helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"],
                                           strides=[2, 2], pads=[1, 1, 1, 1]),
                          {"x": f(1, 64, 64, 64)}, {"w": f(64, 32, 4, 4), "b": f(32)}),
        "pad": (helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect"),
                {"x": f(1, 64, 128, 128)}, {"p": np.array([0, 0, 3, 3, 0, 0, 3, 3], np.int64)}),
        "einsum": (helper.make_node("Einsum", ["q", "k"], ["y"], equation="bhid,bhjd->bhij"),
                   {"q": f(1, 12, 128, 64), "k": f(1, 12, 128, 64)}, {}),
        "maxpool": (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3],
                                     strides=[2, 2], pads=[1, 1, 1, 1]),
                    {"x": f(1, 64, 112, 112)}, {}),
    }


def median_time(fn, repeat: int) -> float:
    return statistics.median(timed(fn, repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cases", default="", help="comma-separated subset")
    args = parser.parse_args()
    chosen = [c for c in args.cases.split(",") if c]
    session = None
    print(f"{'case':14s} {'clnet ms':>9s} {'ort ms':>9s} {'clnet GB/s':>10s}  max|diff|")
    for name, (node, feeds, inits) in cases().items():
        if chosen and name not in chosen:
            continue
        model = _model(node, feeds, inits).SerializeToString()
        session = clnet.InferenceSession(model, precision=args.precision)
        ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        got, want = session.run(None, feeds)[0], ref.run(None, feeds)[0]
        diff = float(np.abs(got.astype(np.float64) - want).max())
        t_cl = median_time(lambda: session.run(None, feeds), args.repeat)
        t_ort = median_time(lambda: ref.run(None, feeds), args.repeat)
        moved = sum(a.nbytes for a in feeds.values()) + want.nbytes
        print(f"{name:14s} {t_cl * 1e3:9.2f} {t_ort * 1e3:9.2f} {moved / t_cl / 1e9:10.2f}  "
              f"{diff:.2g}")
    if session is not None:
        print(f"device: {session.device.describe()}; precision {args.precision}; "
              f"median of {args.repeat} runs")


if __name__ == "__main__":
    main()
