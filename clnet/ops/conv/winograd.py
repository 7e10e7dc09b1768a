"""Winograd F(4x4, 3x3) and F(2x2, 3x3) convolution: kernels_cl/winograd.cl
around one batched GEMM.

For a 3x3 stride-1 convolution the filter transform U = G g G^T is computed
once at load and packed as the GEMM's constant A operand (gemm.cl's packed
panels), one [M][C] matrix per position of the (m+2) x (m+2) input tile.
At run time winograd_input writes the input transform V[positions][C][tiles]
(gemm.cl's row-major B, read in place), gemm.cl computes
M[positions][Cout][tiles] = U V in one batched launch, and winograd_output
turns it into the NCHW output with the bias, residual and activation
applied.  The output tiles of every image are columns of one GEMM, so small
feature maps still give it long rows.

F(4x4) does 4x fewer multiply-adds than direct convolution and F(2x2) 2.25x,
but their transformed filters are 4x and 1.8x the size of the originals: on
small maps, where the GEMM streams the filters for few tiles, that traffic
decides.  The tuner times each per shape; clnet/ops/conv/__init__.py
(choose_conv) has the rule for untuned devices.
"""
from __future__ import annotations

import numpy as np

from .._util import int_vec
from ..gemm import act_defines, emit_gemm
from .operands import bias_arg, conv_epilogue_args

# G of F(m x m, 3x3) per output tile size m; interpolation points 0, +-1,
# (+-2,) and infinity, as in Lavin and Gray (2016).
G_MATRICES = {
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
    2: np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
}
TILE_OF = {"winograd4x4": 4, "winograd2x2": 2}   # algorithm name -> output tile side
SCRATCH_LIMIT = 256 << 20     # bytes of V or M before the plain im2col path is used


def filter_transform(weights: np.ndarray, tile: int, tm: int) -> np.ndarray:
    """[M][C][3][3] filters -> U packed as gemm.cl's A operand:
    [(tile+2)^2][ceil(M/tm)][C][tm], zero-padded filters.

    vec(G w G^T) = (G kron G) vec(w): one matrix product for all filters, on
    the filters already in [9][panel][C][lane] order so that the product
    comes out packed, in float32 (within 1e-7 of a float64 transform, where
    Winograd's own rounding is ~1e-5, and several times faster than
    transforming in float64 and packing afterwards: see docs/BENCHMARKS.md).
    """
    m, c = weights.shape[:2]
    panels = -(-m // tm)
    padded = np.zeros((panels * tm, c, 9), dtype=np.float32)
    padded[:m] = weights.reshape(m, c, 9)
    wt = np.ascontiguousarray(padded.reshape(panels, tm, c, 9).transpose(3, 0, 2, 1))
    g = G_MATRICES[tile]
    u = np.kron(g, g).astype(np.float32) @ wt.reshape(9, -1)
    return u.reshape(-1, panels, c, tm)


def tiles(shape, tile: int) -> tuple:
    """(tiles across, tiles per image, all tiles) of one convolution."""
    across = -(-shape.OW // tile)
    per_image = -(-shape.OH // tile) * across
    return across, per_image, shape.N * per_image


def winograd_ok(ctx, weights, shape) -> bool:
    """Whether Winograd can run this Conv: constant 3x3 weights, stride 1,
    no dilation, one group, fp32 storage (fp16 storage of the transformed
    tiles loses too much: the transforms scale values by up to 100x before
    they cancel), float weights (--int8-weights asks for small weights; the
    transformed filters are larger and off the int8 grid of the originals)
    and scratch buffers within SCRATCH_LIMIT."""
    s = shape
    if (s.kh, s.kw, s.sy, s.sx, s.dy, s.dx, s.group) != (3, 3, 1, 1, 1, 1, 1) \
            or ctx.store_half or ctx.weight_int8 or not isinstance(weights, np.ndarray):
        return False
    return (4 + 2) ** 2 * tiles(s, 4)[2] * max(s.C, s.M) * 4 <= SCRATCH_LIMIT


def emit_winograd(ctx, node, variant, x, out, weights, bias, residual, shape) -> None:
    s = shape
    policy = ctx.policy
    tile = TILE_OF[variant]
    positions = (tile + 2) ** 2
    across, per_image, T = tiles(s, tile)
    TS = _padded(T, 16)          # row length of V and M: 64-byte aligned rows
    isz = ctx.itemsize(x)
    v = ctx.scratch(positions * s.C * TS * isz)
    m = ctx.scratch(positions * s.M * TS * isz)
    p = winograd_gemm_params(policy, s.M, TS, s.C)
    tm = p["TM"]
    u = ctx.weight(filter_transform(weights, tile, tm), (node.inputs[1].name, variant, tm))
    defines = {"WINO_M": tile}
    group = 16 if policy.is_cpu else max(1, min(64, ctx.dev.max_work_group_size))
    geometry = (s.H, s.W, across, per_image)
    rows = policy.winograd_rows(across)
    if rows:
        # vectors of 16 tiles of a tile row where a row has more than 8 and
        # vectors are 16 wide, else 8 (docs/BENCHMARKS.md, 'conv and GEMM')
        tl = 16 if across > 8 and policy.vector_width == 16 else 8
        in_grid, in_block = _row_blocks(ctx, s.N, s.C, per_image // across)
        ctx.launch("winograd", in_grid,
                   [x, v, np.int32(s.C), np.int32(TS), int_vec(geometry),
                    int_vec((s.pad_y, s.pad_x, s.N * s.C * s.H * s.W, in_block))],
                   dict(defines, TL=tl), entry="winograd_input_rows", lsize=(1, 1))
    else:
        ctx.launch("winograd", (TS, s.C), [x, v, np.int32(s.C), np.int32(T), int_vec(geometry),
                                           int_vec((s.pad_y, s.pad_x))], defines,
                   entry="winograd_input", lsize=(_divisor_group(TS, group), 1))
    emit_gemm(ctx, m, u, v, s.M, TS, s.C, positions, a_packed=True, params=p,
              za=(1, positions, -(-s.M // tm) * s.C * tm, 0), zb=(1, positions, s.C * TS, 0),
              zc=(s.M * TS, 0, TS), ldb=TS)
    b_arg = bias_arg(ctx, node, bias)
    out_geo = int_vec((s.OH, s.OW, across, per_image))
    if rows:
        # vectors of 8 tiles (16: no faster, and a program more), the
        # epilogue chosen at run time (gemm.cl's: one program per variant)
        out_grid, out_block = _row_blocks(ctx, s.N, s.M, per_image // across)
        ctx.launch("winograd", out_grid,
                   [m, out, b_arg, residual, np.int32(s.M), np.int32(TS), out_geo,
                    int_vec((out_block, s.N * s.M * s.OH * s.OW, 0, 0))]
                   + list(conv_epilogue_args(node, bias, residual)),
                   dict(defines, TL=8, WINO_OUT=True), entry="winograd_output_rows",
                   lsize=(1, 1))
        return
    # compiled-in epilogue (see winograd.cl)
    defines = dict(defines, WINO_OUT=True, **act_defines(node))
    if bias is not None:
        defines["HAS_BIAS"] = True
    if residual is not None:
        defines["HAS_RESIDUAL"] = True
    ctx.launch("winograd", (TS, s.M),
               [m, out, b_arg, residual, np.int32(s.M), np.int32(T), out_geo],
               defines, entry="winograd_output", lsize=(_divisor_group(TS, group), 1))


def _row_blocks(ctx, images: int, channels: int, rows: int) -> tuple:
    """(grid, tile rows per work-item) of the row kernels: all tile rows of
    an image per work-item, unless that leaves fewer than 16 work-items per
    compute unit."""
    blocks = max(1, min(rows, -(-16 * ctx.dev.compute_units // (images * channels))))
    block = -(-rows // blocks)
    return (images * -(-rows // block), channels), block


def winograd_gemm_params(policy, M: int, TS: int, C: int) -> dict:
    """gemm.cl parameters of the batched product M = U V: packed filters
    (M x C) times the transformed input read in place (C x TS)."""
    p = dict(policy.gemm_params(M, TS, C, "conv"))
    if p["TN"] > TS:
        p["TN"] = 16
        p["VW"] = min(p["VW"], 16)
    # B is read in place, not in packed panels: tiles in plain order
    p.pop("GROUP_M", None)
    if policy.is_cpu and not policy.has_tuning("conv"):
        # four row tiles per work-item, down a column of tiles: the B rows
        # they share stay in the L1 cache (one program serves every one of
        # these GEMMs; docs/BENCHMARKS.md, 'conv and GEMM')
        p.update(NT=4, M_FIRST=True)
    return p


def _divisor_group(n: int, group: int) -> int:
    """The largest power-of-two share of `group` that divides n."""
    while n % group:
        group //= 2
    return group


def _padded(channels: int, group: int) -> int:
    return -(-channels // group) * group
