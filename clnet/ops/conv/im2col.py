"""Convolution as im2col + GEMM (kernels_cl/pack.cl im2col, gemm.cl): the
general algorithm for any groups, strides and dilations.  A 1x1 stride-1
conv without padding skips im2col: the GEMM reads its input in place."""
from __future__ import annotations

import numpy as np

from ...graph import Value
from ..gemm import emit_gemm, fused_act, pack_a
from .operands import bias_arg

SCRATCH_LIMIT = 256 << 20   # bytes of im2col buffer before a conv is split by images
PW_B_SHARE = 0.5     # 1x1 convs walk rows of tiles first from an input of this share of L2


def _divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of n that is <= limit (a local size the grid fits)."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def emit_im2col(ctx, node, x, out, weights, bias, residual, shape) -> None:
    s = shape
    group, Mg = s.group, s.Mg
    K, P = s.Cg * s.taps, s.pixels
    kind = "conv_fp16" if ctx.store_half else "conv"
    policy = ctx.policy
    p = policy.gemm_params(Mg, P, K, kind)
    pointwise = s.taps == 1 and (s.OH, s.OW) == (s.H, s.W) and P >= p["TN"] \
        and s.unit_stride_no_pad and policy.conv_in_place
    if pointwise and not isinstance(weights, Value) \
            and policy.small_n_tile(p, Mg, P, K, kind):
        # (VW 16 comes here only where the policy forces these tiles)
        p.update(TM=12, TN=8, VW=min(p["VW"], 8))
    tm, tn = p["TM"], p["TN"]
    if isinstance(weights, Value):  # run-time weights: row-major A, [G][Mg][K]
        a_arg, a_packed, lda, za = weights, False, K, (1, group, Mg * K, 0)
    else:
        ap = pack_a(weights.reshape(group, Mg, K), tm)
        a_arg = ctx.weight(ap, (node.inputs[1].name, "conv_a", tm))
        a_packed, lda, za = True, 0, (1, group, ap.shape[1] * K * tm, 0)
    b_arg = bias_arg(ctx, node, bias)
    if pointwise:
        # 1x1 conv: B is the input itself, [image * group][Cg][H * W]
        # row-major, tiles in plain order (a row of weights stays cached
        # while the pixels stream past it); where the input passes
        # PW_B_SHARE of a core's L2, down the rows of tiles first, so that
        # it streams once instead of once per row of tiles
        # (docs/BENCHMARKS.md, 'conv and GEMM')
        p = {k: v for k, v in p.items() if k != "GROUP_M"}
        if -(-Mg // tm) > 1 and K * P * ctx.itemsize(x) > PW_B_SHARE * ctx.dev.cache_per_core:
            p["M_FIRST"] = True
        emit_gemm(ctx, out, a_arg, x, Mg, P, K, s.N * group, a_packed=a_packed, params=p,
                  za=za, lda=lda, zb=(1, s.N * group, K * P, 0),
                  zc=(Mg * P, 0, P), bias=b_arg, bias_mode="row", bias_zstride=Mg,
                  residual=residual, act=fused_act(node), ldb=P)
        return
    panels = -(-P // tn)
    per_image = group * panels * K * tn * ctx.itemsize(x)
    chunk = max(1, min(s.N, SCRATCH_LIMIT // max(per_image, 1)))
    C, H, W = s.C, s.H, s.W
    for n0 in range(0, s.N, chunk):
        n = min(chunk, s.N - n0)
        Z = n * group
        scratch = ctx.scratch(Z * panels * K * tn * ctx.itemsize(x))
        ctx.launch("pack", (panels, K, Z),
                   [x, scratch, np.int32(n0 * C * H * W), np.int32(s.Cg), np.int32(H),
                    np.int32(W), np.int32(s.OH), np.int32(s.OW), np.int32(K),
                    np.int32(panels)] + list(s.window_args()),
                   {"TN": tn}, entry="im2col", lsize=(1, _divisor_at_most(K, 64), 1))
        emit_gemm(ctx, out, a_arg, scratch, Mg, P, K, Z, a_packed=a_packed, params=p,
                  za=za, lda=lda, zb=(1, Z, panels * K * tn, 0),
                  zc=(Mg * P, n0 * s.M * P, P), bias=b_arg, bias_mode="row",
                  bias_zstride=Mg, residual=residual, act=fused_act(node))
