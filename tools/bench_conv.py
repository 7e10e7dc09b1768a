"""Convolution speed per layer shape of ResNet-18 and MobileNetV2, per algorithm.

Each distinct Conv shape of the two models becomes a one-node model; its
launches are timed with OpenCL event profiling (min over runs, summed over
the node's launches: im2col + GEMM, or one GEMM, or one depthwise kernel).
1x1 stride-1 convs are also run through im2col to show what reading the
input in place saves.

    python tools/bench_conv.py
    CLNET_DEVICE=1:0 python tools/bench_conv.py --models resnet18
"""
from __future__ import annotations

import argparse
import time
from unittest import mock

import numpy as np
import onnx
import pyopencl as cl
from onnx import TensorProto, helper, numpy_helper

import clnet
import clnet.ops.gemm as gemm_ops
from clnet import zoo
from clnet.device import select_device


def conv_shapes(model: onnx.ModelProto) -> list:
    """(input shape, weight shape, attrs) of every distinct Conv in the model."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        key = (tuple(shapes[node.input[0]]), tuple(inits[node.input[1]]),
               tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                            for k, v in attrs.items())))
        if key not in [f[:3] for f in found]:
            found.append(key + (attrs,))
    return [(f[0], f[1], f[3]) for f in found]


def one_conv(x_shape, w_shape, attrs) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.standard_normal(w_shape).astype(np.float32) * 0.1
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def time_plan(session, runs: int) -> tuple:
    """(min kernel seconds per run, launch entry names) of the last plan."""
    plan = session.last_plan
    queue = plan.dev.new_queue(profiling=True)
    best = None
    for _ in range(runs):
        events = [cl.enqueue_nd_range_kernel(queue, k, g, l) for k, g, l in plan.calls]
        queue.finish()
        total = sum(e.profile.end - e.profile.start for e in events) * 1e-9
        best = total if best is None else min(best, total)
    return best, "+".join(l.entry for l in plan.launches)


def bench_shape(dev, x_shape, w_shape, attrs, runs: int, force_im2col: bool) -> dict:
    model = one_conv(x_shape, w_shape, attrs)
    x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
    patch = mock.patch.object(gemm_ops, "_unit_stride_no_pad", lambda g: False) \
        if force_im2col else mock.MagicMock()
    with patch:
        session = clnet.InferenceSession(model.SerializeToString(), device=dev)
    session.run(None, {"x": x})
    seconds, algo = time_plan(session, runs)
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
        for x_shape, w_shape, attrs in conv_shapes(getattr(zoo, name)()):
            label = describe(x_shape, w_shape, attrs)
            pointwise = tuple(w_shape[2:]) == (1, 1) \
                and list(attrs.get("strides", [1, 1])) == [1, 1]
            for force in ((False, True) if pointwise else (False,)):
                r = bench_shape(dev, x_shape, w_shape, attrs, args.runs, force)
                print(f"{name:13s} {label:32s} {r['algo']:18s} {r['ms']:>7.3f} "
                      f"{r['gflops']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
