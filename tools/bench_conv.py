"""Convolution speed per layer shape of ResNet-18 and MobileNetV2, per algorithm.

Each distinct Conv shape of the two models becomes a one-node model; its
launches are timed with OpenCL event profiling (min over runs, summed over
the node's launches: im2col + GEMM, Winograd transforms + GEMM, one GEMM, or
one depthwise kernel).  3x3 stride-1 convs run with each algorithm; 1x1
stride-1 convs are also run through im2col to show what reading the input in
place saves.  GFLOP/s counts direct-convolution FLOPs (2 x outputs x Cin x
kh x kw) for every algorithm, so Winograd's figure is an effective rate.

``--real`` times instead a set of real-model convs that are not ResNet's
(REAL_SHAPES: 1-D front ends, TCNs and byte/speech encoders, grouped convs
other than depthwise, large kernels, odd strides) against onnxruntime (2
threads): whole session.run calls, wall clock, in alternating blocks in
this process (median, and the minimum: the machine's load moves medians
most), with the ratio of medians clnet / onnxruntime and GFLOP/s.

    python tools/bench_conv.py
    CLNET_DEVICE=1:0 python tools/bench_conv.py --models resnet18
    python tools/bench_conv.py --real [--only 1d] [--runs 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import clnet
from clnet import zoo
from clnet.device import select_device
from clnet.tune_cli import plan_kernel_seconds
from clnet.tuning import CONV_ALGORITHMS

# (tag, x shape, w shape, attrs): what real models run besides ResNet's convs
REAL_SHAPES = [
    ("1d stft", (1, 1, 16000), (64, 1, 400), {"strides": [160]}),
    ("1d k3", (1, 64, 1000), (128, 64, 3), {"pads": [1, 1]}),
    ("1d k5", (1, 64, 1000), (128, 64, 5), {"pads": [2, 2]}),
    ("1d tcn d2", (1, 128, 1000), (128, 128, 3), {"pads": [2, 2], "dilations": [2]}),
    ("1d tcn d4", (1, 128, 1000), (128, 128, 3), {"pads": [4, 4], "dilations": [4]}),
    ("1d bytes k7", (1, 256, 2048), (128, 256, 7), {"pads": [3, 3]}),
    ("1d bytes k9/4", (1, 256, 2048), (128, 256, 9), {"strides": [4], "pads": [4, 4]}),
    ("1d whisper", (1, 80, 3000), (384, 80, 3), {"pads": [1, 1]}),
    ("1d whisper/2", (1, 384, 3000), (384, 384, 3), {"strides": [2], "pads": [1, 1]}),
    ("1d short", (1, 80, 500), (384, 80, 3), {"pads": [1, 1]}),
    ("1d short/2", (1, 384, 500), (384, 384, 3), {"strides": [2], "pads": [1, 1]}),
    ("1d s3", (1, 128, 999), (128, 128, 3), {"strides": [3]}),
    ("resnext g32", (1, 128, 28, 28), (128, 4, 3, 3), {"group": 32, "pads": [1] * 4}),
    ("regnet gw8", (1, 104, 28, 28), (104, 8, 3, 3), {"group": 13, "pads": [1] * 4}),
    ("regnet gw16", (1, 128, 28, 28), (128, 16, 3, 3), {"group": 8, "pads": [1] * 4}),
    ("regnet gw24", (1, 336, 14, 14), (336, 24, 3, 3), {"group": 14, "pads": [1] * 4}),
    ("regnet gw16/2", (1, 128, 56, 56), (128, 16, 3, 3),
     {"group": 8, "strides": [2, 2], "pads": [1] * 4}),
    ("shuffle g3 in", (1, 240, 28, 28), (60, 80, 1, 1), {"group": 3}),
    ("shuffle g3 out", (1, 60, 28, 28), (240, 20, 1, 1), {"group": 3}),
    ("stem 7x7/2", (1, 3, 224, 224), (64, 3, 7, 7), {"strides": [2, 2], "pads": [3] * 4}),
    ("convnext dw7", (1, 96, 56, 56), (96, 1, 7, 7), {"group": 96, "pads": [3] * 4}),
    ("convnext dw7 s", (1, 384, 14, 14), (384, 1, 7, 7), {"group": 384, "pads": [3] * 4}),
    ("inception 5x5", (1, 48, 35, 35), (64, 48, 5, 5), {"pads": [2] * 4}),
    ("alexnet 11x11/4", (1, 3, 224, 224), (64, 3, 11, 11), {"strides": [4, 4], "pads": [2] * 4}),
    ("stride 3", (1, 64, 57, 57), (64, 64, 3, 3), {"strides": [3, 3]}),
]


def bench_shape(dev, x_shape, w_shape, attrs, runs: int, force_im2col: bool,
                algorithm=None) -> dict:
    model = zoo.single_conv(x_shape, w_shape, attrs)
    x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
    policy = {"im2col": force_im2col or None, "conv_algorithm": algorithm}
    session = clnet.InferenceSession(model.SerializeToString(), device=dev, policy=policy)
    session.run(None, {"x": x})
    seconds = plan_kernel_seconds(session.last_plan, runs)
    launches = session.last_plan.launches
    algo = "+".join(l.entry for l in launches)
    tiles = [dict(l.defines).get("WINO_M") for l in launches if l.entry.startswith("winograd_output")]
    if tiles:
        algo = f"winograd F({tiles[0]}x{tiles[0]},3x3)"
    out = session.last_plan.output_slots[0][0].shape
    flops = 2.0 * np.prod(out) * np.prod(w_shape[1:])
    return {"algo": algo, "ms": seconds * 1e3, "gflops": flops / seconds * 1e-9}


def describe(x_shape, w_shape, attrs) -> str:
    k = "x".join(map(str, w_shape[2:]))
    s = attrs.get("strides", [1, 1])[0]
    g = attrs.get("group", 1)
    return (f"{x_shape[1]:>4}x{x_shape[2]:<3} -> {w_shape[0]:>4} k{k} s{s}"
            + (f" g{g}" if g > 1 else ""))


def bench_real(dev, tag, x_shape, w_shape, attrs, runs: int, policy=None) -> dict:
    """One REAL_SHAPES conv: clnet and onnxruntime medians (session.run, wall)."""
    from bench_models import ort_session, timed
    attrs = dict(attrs, kernel_shape=list(w_shape[2:]))
    data = zoo.single_conv(x_shape, w_shape, attrs).SerializeToString()
    x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
    feeds = {"x": x}
    cl_sess = clnet.InferenceSession(data, device=dev, policy=policy)
    ort_sess = ort_session(data, 2)
    got, want = cl_sess.run(None, feeds)[0], ort_sess.run(None, feeds)[0]
    err = float(np.abs(got - want).max() / (np.abs(want).max() + 1e-6))
    cl_times, ort_times = [], []
    block = max(1, runs // 4)
    for start in range(0, runs, block):
        count = min(block, runs - start)
        cl_times += timed(lambda: cl_sess.run(None, feeds), count)
        ort_times += timed(lambda: ort_sess.run(None, feeds), count)
    cl_ms, ort_ms = np.median(cl_times) * 1e3, np.median(ort_times) * 1e3
    flops = 2.0 * np.prod(want.shape) * np.prod(w_shape[1:])
    algo = "+".join(dict.fromkeys(l.entry for l in cl_sess.last_plan.launches))
    return {"tag": tag, "clnet_ms": cl_ms, "ort_ms": ort_ms, "ratio": cl_ms / ort_ms,
            "clnet_min": min(cl_times) * 1e3, "ort_min": min(ort_times) * 1e3,
            "gflops": flops / cl_ms * 1e-6, "ort_gflops": flops / ort_ms * 1e-6,
            "algo": algo, "err": err}


def main_real(dev, runs: int, only) -> None:
    import onnxruntime
    print(f"device: {dev.describe()}   onnxruntime {onnxruntime.__version__} (2 threads)   "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'shape':16s} {'clnet ms':>9} {'ort ms':>8} {'ratio':>6} {'GFLOP/s':>8} "
          f"{'ort':>6} {'cl min':>7} {'ort min':>7}  {'rel err':>7}  kernels")
    for tag, x_shape, w_shape, attrs in REAL_SHAPES:
        if only and not any(o in tag for o in only.split(",")):
            continue
        r = bench_real(dev, tag, x_shape, w_shape, attrs, runs)
        print(f"{tag:16s} {r['clnet_ms']:>9.3f} {r['ort_ms']:>8.3f} {r['ratio']:>6.2f} "
              f"{r['gflops']:>8.1f} {r['ort_gflops']:>6.1f} {r['clnet_min']:>7.3f} "
              f"{r['ort_min']:>7.3f}  {r['err']:>7.1e}  {r['algo']}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--device", default=None)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--real", action="store_true", help="REAL_SHAPES against onnxruntime")
    ap.add_argument("--only", default=None, help="--real: shapes whose tag has one of these")
    args = ap.parse_args()
    dev = select_device(args.device)
    if args.real:
        main_real(dev, max(args.runs, 20), args.only)
        return
    print(f"device: {dev.describe()}   {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'model':13s} {'layer':32s} {'algorithm':18s} {'ms':>7} {'GFLOP/s':>8}")
    for name in args.models.split(","):
        for x_shape, w_shape, attrs in zoo.conv_shapes(getattr(zoo, name)()):
            label = describe(x_shape, w_shape, attrs)
            unit_stride = list(attrs.get("strides", [1, 1])) == [1, 1]
            pointwise = tuple(w_shape[2:]) == (1, 1) and unit_stride
            variants = [(False, None)]
            if pointwise:
                variants.append((True, None))
            if tuple(w_shape[2:]) == (3, 3) and unit_stride and attrs.get("group", 1) == 1:
                variants = [(False, algo) for algo in CONV_ALGORITHMS]
            for force, algorithm in variants:
                r = bench_shape(dev, x_shape, w_shape, attrs, args.runs, force, algorithm)
                print(f"{name:13s} {label:32s} {r['algo']:18s} {r['ms']:>7.3f} "
                      f"{r['gflops']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
