"""Conv: the op, and the choice of algorithm for each convolution.

One module per algorithm: im2col (+ GEMM, or a GEMM alone for 1x1 convs),
direct (conv_direct, conv_oc), depthwise and winograd; shape.py has the
geometry all of them (and the pools and quantized convs) share.  Device
facts and forced variants come from the kernel policy (``ctx.policy``).
"""
from __future__ import annotations

import numpy as np

from ...graph import Node, Value
from .._util import require_float
from ..gemm import ACT_MACROS, fused_act, gemm, residual_of
from ..registry import op
from ..strided import emit_map
from .depthwise import emit_depthwise
from .direct import DIRECT_KERNELS, direct_kernel, emit_direct
from .im2col import emit_im2col
from .shape import ConvShape
from .winograd import emit_winograd, tiles, winograd_ok

WINO4_FILTER_BYTES = 4 << 20   # F(4x4) up to this many bytes of transformed filters
C1_DEPTHWISE_TAPS = 5          # one-channel convs: the depthwise kernel up to this many taps


@op("Conv")
def conv(ctx, node):
    x, w, b = node.inputs[0], node.inputs[1], node.input(2)
    require_float(ctx, node, x, w)
    shape = ConvShape.of(node, ctx.shape(x), ctx.shape(w))
    out = ctx.output(node.outputs[0], shape.out_shape, x.dtype)
    residual = residual_of(node)
    if residual is not None and ctx.shape(residual) != out.shape:
        # the fused Add broadcasts: run the Conv alone, then add (+ activation)
        act = fused_act(node)
        conv_out = Value(out.name + "/conv")
        conv(ctx, Node(node.op, node.inputs[:3], [conv_out], dict(node.attrs), node.name,
                       node.domain))
        macro = ACT_MACROS[act[0]] if act else "ACT_NONE"
        emit_map(ctx, node.outputs[0], [conv_out, residual], f"{macro}(a+b)",
                 act[1:] if act else ())
        return
    # constant weights/bias are repacked at load; run-time ones are read in place
    weights = np.asarray(w.data, np.float32) if w.is_const else w
    bias = None
    if b is not None and b.name:
        bias = np.asarray(b.data, np.float32) if b.is_const else b
    if shape.taps == shape.H * shape.W == shape.pixels == 1 and shape.group == 1 \
            and w.is_const and residual is None:
        _as_fully_connected(ctx, node, x, out, shape)
        return
    if depthwise(shape) and residual is None:
        emit_depthwise(ctx, node, x, out, weights, bias, shape)
        return
    algorithm = choose_conv(ctx, weights, shape)
    if algorithm.startswith("winograd"):
        emit_winograd(ctx, node, algorithm, x, out, weights, bias, residual, shape)
    elif algorithm in DIRECT_KERNELS:
        emit_direct(ctx, node, algorithm, x, out, weights, bias, residual, shape)
    else:
        emit_im2col(ctx, node, x, out, weights, bias, residual, shape)


def _as_fully_connected(ctx, node, x, out, shape) -> None:
    """A 1x1 conv on a 1x1 map (squeeze-excitation, classifier heads) is a
    Gemm on [N, C] (an M-row GEMM with the weights as B: no im2col
    of one pixel, no tiles of one column)."""
    w, b = node.inputs[1], node.input(2)
    flat = Value(x.name + "/fc")
    ctx.alias(flat, x, (shape.N, shape.C))
    result = Value(out.name + "/fc")
    ctx.alias(out, result, shape.out_shape)
    weights = Value(w.name + "/fc", (shape.M, shape.C), np.dtype(np.float32),
                    np.asarray(w.data, np.float32).reshape(shape.M, shape.C))
    inputs = [flat, weights] + ([b] if b is not None and b.name else [])
    gemm(ctx, Node("Gemm", inputs, [result], {"transB": 1}, node.name, "", node.epilogue))


def depthwise(shape) -> bool:
    """Whether the depthwise kernels run this conv: one input channel per
    group, and more than one group, or one channel with at most
    C1_DEPTHWISE_TAPS taps.  One channel with a longer kernel (an STFT-like
    1-D front end, a grayscale stem) is a GEMM with K = kh x kw: the
    depthwise kernel, unrolled over its taps, ran 1->64 k400/160 on 16000
    samples at 4 GFLOP/s (docs/BENCHMARKS.md, 'convs of every shape')."""
    s = shape
    return s.group == s.C and s.Cg == 1 and (s.C > 1 or s.taps <= C1_DEPTHWISE_TAPS)


def choose_conv(ctx, weights, shape) -> str:
    """How a (non-depthwise) Conv runs: "winograd4x4", "winograd2x2",
    "conv_direct", "conv_oc" or "im2col".

    3x3 stride-1 convs run what the policy says: its forced algorithm, else
    what `clnet tune` measured fastest for their shape on this device.
    Untuned, a rule from ResNet-18's convs (tools/bench_conv.py,
    tools/bench_plan.py; docs/BENCHMARKS.md, 'conv and GEMM'): F(4x4) from
    16 channels and 3x3 tiles per image up; F(2x2) instead where F(4x4)'s
    transformed filters would pass WINO4_FILTER_BYTES on a CPU with 16-wide
    vectors (where they stream from memory on every run); on smaller maps
    conv_oc where it applies, else F(2x2).  Other convs with a spatial
    kernel run a direct kernel where one applies; a forced "im2col" applies
    to every conv.
    """
    s = shape
    if ctx.policy.forced("conv_algorithm") == "im2col":
        return "im2col"
    direct = direct_kernel(ctx, s, weights)
    if winograd_ok(ctx, weights, s):
        chosen = ctx.policy.conv_algorithm((s.M, s.pixels * s.N, s.C * 9))
        if chosen == "direct":
            chosen = direct_kernel(ctx, s, weights, anywhere=True)
        if chosen is not None:
            return chosen
        if s.C < 16 or s.M < 16:
            return direct or "im2col"
        if tiles(s, 4)[1] >= 9:
            small = 36 * s.C * s.M * 4 <= WINO4_FILTER_BYTES
            return "winograd4x4" if small or not ctx.policy.wide_cpu else "winograd2x2"
        if direct == "conv_oc":
            return direct
        return "winograd2x2" if tiles(s, 2)[1] >= 9 else "im2col"
    return direct or "im2col"
