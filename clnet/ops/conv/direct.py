"""Direct convolution on kernels_cl/conv_direct.cl: conv_direct (few input
channels, e.g. RGB stems, or few per group, on a padded phase-split copy of
the input) and conv_oc (output channels in vector lanes, the input read in
place).  Both take dilations; 1-D convs run them with one output row.

Which convs run here is decided in clnet/ops/conv/__init__.py (choose_conv)
and, per device, by the kernel policy (ctx.policy).
"""
from __future__ import annotations

import numpy as np

from .._util import int_vec
from ..gemm import pack_a, pack_b
from .operands import bias_arg, conv_epilogue_args

# conv_direct per float vector width (the policy's direct_tile_width): TM
# output channels x RY rows x TN pixels per work-item, TM x RY x TN / width
# vector accumulators: 24 of AVX-512's 32 registers, 12 of AVX2's 16
# (docs/BENCHMARKS.md, 'conv and GEMM', has the measurements)
DIRECT_TILE = {16: (8, 3, 16), 8: (6, 1, 16), 4: (4, 1, 8)}
DIRECT_MAX_C = 16        # conv_direct up to this many input channels, conv_oc above
GROUP_MAX_C = 64         # grouped convs: conv_direct up to this many channels per group
# conv_oc per float vector width: (pixels, vectors of output channels) per
# work-item, OP x OV accumulators: 14 of the 32 zmm registers with AVX-512,
# 12 of the 16 ymm registers with AVX2
DIRECT_OC = {16: (7, 2), 8: (6, 2), 4: (4, 2)}
OC_BLOCKS = 8            # conv_oc pixel blocks per work-item (its OPB)
OC_SLICE = 16            # conv_oc input channels per pass over its blocks (its OCC)
DIRECT_KERNELS = ("conv_direct", "conv_oc")
PHASE_ROWS = 8           # rows of the padded copy per conv_phases work-item


def direct_tile(policy, shape=None) -> tuple:
    """conv_direct's (TM, RY, TN) under this kernel policy, for `shape` if
    given: the tile's TM x RY accumulators are kept, traded between rows and
    channels where the conv has fewer output rows (1-D: one) or fewer
    output channels per group than the tile, and the channels spread evenly
    over the tiles of a group."""
    tm, ry, tn = DIRECT_TILE[policy.direct_tile_width]
    if shape is None:
        return tm, ry, tn
    budget = tm * ry
    ry = min(ry, shape.OH)
    cap = budget // ry
    if shape.Mg < cap:
        tm = shape.Mg
        ry = max(1, min(shape.OH, budget // tm))
    elif cap != tm:
        tiles = -(-shape.Mg // cap)
        tm = -(-shape.Mg // tiles)
    return tm, ry, tn


def direct_kernel(ctx, shape, weights, anywhere: bool = False):
    """The direct kernel that can run this conv, or None: constant weights,
    a spatial kernel, stride <= 4, fp32 storage.  conv_direct for few input
    channels (whose im2col copy would be large for a small K) and for
    grouped convs with up to GROUP_MAX_C channels per group; conv_oc for
    more channels in one group, with at least 16 output channels, on a
    CPU with 16-wide vectors, or on any device where `anywhere` (the tuner
    measured it fastest) or the policy forces the "direct" algorithm
    (see docs/BENCHMARKS.md, 'conv and GEMM')."""
    policy = ctx.policy
    forced = policy.forced("conv_algorithm") == "direct"
    if not (forced or anywhere or policy.direct_conv_ok):
        return None
    if not (isinstance(weights, np.ndarray) and shape.taps > 1
            and max(shape.sy, shape.sx) <= 4 and not ctx.store_half
            and not ctx.weight_int8):
        return None
    if shape.group > 1:
        return "conv_direct" if shape.Cg <= GROUP_MAX_C else None
    if shape.C <= DIRECT_MAX_C:
        return "conv_direct" if shape.M >= direct_tile(policy)[0] else None
    if anywhere or forced:
        return "conv_oc"
    return "conv_oc" if policy.wide_cpu and shape.M >= 16 else None


def emit_direct(ctx, node, kernel, x, out, weights, bias, residual, shape) -> None:
    """conv_direct (after its conv_phases copy) or conv_oc launches."""
    if kernel == "conv_oc":
        _emit_conv_oc(ctx, node, x, out, weights, bias, residual, shape)
        return
    s = shape
    defines = {"KH": s.kh, "KW": s.kw, "SY": s.sy, "SX": s.sx, **_dilations(s)}
    tm, ry, tn = direct_tile(ctx.policy, s)
    tn = tn if s.OW > 8 else 8
    defines.update(TM=tm, TN=tn, RY=ry)
    blocks = -(-s.OW // tn)
    cols = blocks * tn + (s.kw - 1) * s.dx // s.sx
    wp = pack_a(weights.reshape(s.group, s.Mg, -1), tm)
    tiles = wp.shape[1]              # channel tiles per group
    groups = -(-s.OH // ry)
    rows = (s.OH - 1) * s.sy + (s.kh - 1) * s.dy + 1
    xp = ctx.scratch(s.N * s.C * s.sx * rows * cols * ctx.itemsize(x))
    # the padded copy: a program of its own per stride, shared by every conv
    ctx.launch("conv_direct", (-(-rows // PHASE_ROWS), s.N * s.C),
               [x, xp, int_vec((s.H, s.W, rows, cols)), int_vec((s.pad_y, s.pad_x))],
               {"SX": s.sx, "PHASES_ONLY": True, "PHASE_ROWS": PHASE_ROWS},
               entry="conv_phases", lsize=(1, 1))
    wp = ctx.weight(wp, (node.inputs[1].name, kernel, *sorted(defines.items())))
    ctx.launch("conv_direct", (groups * blocks, s.group * tiles, s.N),
               [xp, wp, out, bias_arg(ctx, node, bias), residual,
                int_vec((s.C, s.M, s.OH, s.OW)), int_vec((rows, cols, groups, blocks)),
                int_vec((s.Cg, s.Mg, tiles, 0))]
               + list(conv_epilogue_args(node, bias, residual)),
               defines, entry=kernel, lsize=(1, 1, 1))


def _emit_conv_oc(ctx, node, x, out, weights, bias, residual, shape) -> None:
    s = shape
    defines = {"KH": s.kh, "KW": s.kw, "SY": s.sy, "SX": s.sx, **_dilations(s)}
    vw = ctx.policy.vector_width
    op_, ov = DIRECT_OC[vw]
    blocks = -(-s.OW // op_)
    # pixel blocks per work-item (see conv_direct.cl), fewer where the
    # grid would leave compute units without four work-items each
    opb, oc_blocks = min(OC_BLOCKS, s.OH * blocks), -(-s.M // (ov * vw)) * s.N
    while opb > 1 and -(-s.OH * blocks // opb) * oc_blocks < 4 * ctx.dev.compute_units:
        opb //= 2
    defines.update(OP=op_, OV=ov, OVW=vw, OPB=OC_BLOCKS, OCC=OC_SLICE, OC=True)
    wp = pack_b(weights.reshape(s.M, -1).T, ov * vw)[0]     # [M / (OV OVW)][K][OV OVW]
    wp = ctx.weight(wp, (node.inputs[1].name, "conv_oc", *sorted(defines.items())))
    # the input read in place: its width, left padding and the blocks of a
    # row are compiled in (see conv_direct.cl)
    defines.update(W_IN=s.W, PAD_L=s.pad_x, OW_C=s.OW, BLOCKS=blocks)
    if blocks > 2 and not (op_ * s.sx - s.pad_x >= 0
                           and ((blocks - 1) * op_ - 1) * s.sx + (s.kw - 1) * s.dx - s.pad_x
                           < s.W):
        defines["INNER_CHECKED"] = True   # the blocks between the edges reach padding
    ctx.launch("conv_direct", (-(-s.OH * blocks // opb), -(-s.M // (ov * vw)), s.N),
               [x, wp, out, bias_arg(ctx, node, bias), residual,
                int_vec((s.C, s.M, s.OH, s.OW)), int_vec((s.H, s.pad_y, opb))]
               + list(conv_epilogue_args(node, bias, residual)),
               defines, entry="conv_oc", lsize=(1, 1, 1))


def _dilations(shape) -> dict:
    """DY/DX defines where the conv is dilated (one program less otherwise)."""
    return {k: v for k, v in (("DY", shape.dy), ("DX", shape.dx)) if v != 1}
