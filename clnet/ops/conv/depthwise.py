"""Depthwise convolution (one input channel per group) on
kernels_cl/depthwise.cl: whole small planes per work-item on CPUs
(depthwise_plane), else rows of outputs (depthwise)."""
from __future__ import annotations

import numpy as np

from ...graph import Value
from ..gemm import act_defines
from .operands import bias_arg

PLANE_VECS = 49          # depthwise_plane: planes of up to 28 x 28 outputs


def emit_depthwise(ctx, node, x, out, weights, bias, shape) -> None:
    s = shape
    w_arg = weights if isinstance(weights, Value) else \
        ctx.weight(weights.reshape(s.M, -1), (node.inputs[1].name, "dw"))
    defines = {"KH": s.kh, "KW": s.kw, **act_defines(node)}
    b_arg = bias_arg(ctx, node, bias)
    if bias is not None:
        defines["HAS_BIAS"] = True
    args = [x, w_arg, b_arg, out] + [np.int32(v) for v in (s.C, s.H, s.W, s.M, s.OH, s.OW)] \
        + list(s.window_args()) + [np.int32(s.N * s.C * s.H * s.W)]
    policy = ctx.policy
    per_core = 16 * max(1, ctx.dev.compute_units)     # work-items wanted on a CPU
    if plane_depthwise(ctx, s):
        # whole small planes in vectors of 16 (depthwise.cl depthwise_plane),
        # each work-item running its share of the channels
        per_item = max(1, s.N * s.M // per_core)
        # (one PLANE_VECS for every plane size: one program, not one per map
        # size, to compile at the first run; the masks use only nvec rows)
        defines.update(PLANE=True, PLANE_VECS=PLANE_VECS)
        ctx.launch("depthwise", (-(-s.N * s.M // per_item),), args + [np.int32(per_item)],
                   defines, entry="depthwise_plane", lsize=(1,))
        return
    wx = 16 if s.sx <= 2 and policy.vector_width == 16 and s.OW >= 16 \
        else 8 if s.sx <= 2 else 4
    defines.update(SX=s.sx, DX=s.dx, WX=wx)
    # rows per work-item on a CPU: as many as leave ~16 work-items per core;
    # one on a GPU.  One work-item per group on a CPU: PoCL would otherwise
    # loop over the already vectorised work-items and re-vectorise them
    # (docs/BENCHMARKS.md, 'conv and GEMM')
    if policy.is_cpu:
        rows, lsize = max(1, min(s.OH, s.N * s.M * s.OH // per_core)), (1, 1)
    else:
        rows, lsize = 1, None
    ctx.launch("depthwise", (-(-s.OH // rows), s.N * s.M), args + [np.int32(rows)], defines,
               lsize=lsize)


def plane_depthwise(ctx, shape) -> bool:
    """Whether depthwise_plane runs this depthwise conv: a CPU, fp32
    storage, stride 1, no dilation, output rows as wide as the input's, a
    plane of 16 to 16 * PLANE_VECS outputs, at most 5x5 taps (see
    docs/BENCHMARKS.md, 'conv and GEMM')."""
    s = shape
    unit = s.sy == s.sx == 1 and s.dy == s.dx == 1
    # its 16-wide vectors need a compiler that takes 8-wide ones at least
    return (ctx.policy.is_cpu and ctx.policy.vector_width >= 8 and not ctx.store_half
            and unit and s.OW == s.W and 16 <= s.pixels <= 16 * PLANE_VECS and s.taps <= 25)
