"""Convolution speed per layer shape of ResNet-18 and MobileNetV2, per algorithm.

Each distinct Conv shape of the two models becomes a one-node model; its
launches are timed with OpenCL event profiling (min over runs, summed over
the node's launches: im2col + GEMM, Winograd transforms + GEMM, one GEMM, or
one depthwise kernel).  3x3 stride-1 convs run with each algorithm; 1x1
stride-1 convs are also run through im2col to show what reading the input in
place saves.  GFLOP/s counts direct-convolution FLOPs (2 x outputs x Cin x
kh x kw) for every algorithm, so Winograd's figure is an effective rate.

    python tools/bench_conv.py
    CLNET_DEVICE=1:0 python tools/bench_conv.py --models resnet18
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--device", default=None)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    dev = select_device(args.device)
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
