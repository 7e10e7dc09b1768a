"""Winograd F(4x4, 3x3) and F(2x2, 3x3) convolution: kernels_cl/winograd.cl
around one batched GEMM.

For a 3x3 stride-1 convolution the filter transform U = G g G^T is computed
once at load and packed as the GEMM's constant B operand, one [C][M] matrix
per position of the (m+2) x (m+2) input tile.  At run time winograd_input
writes the input transform V[positions][tiles][C] (row-major A of gemm.cl),
gemm.cl computes M[positions][tiles][Cout] in one batched launch, and
winograd_output turns it into the NCHW output with the bias, residual and
activation applied.  The output tiles of every image are rows of one GEMM,
so small feature maps still give it wide rows of output channels.

F(4x4) does 4x fewer multiply-adds than direct convolution and F(2x2) 2.25x,
but their transformed filters are 4x and 1.8x the size of the originals: on
small maps, where the GEMM streams the filters for few tiles, that traffic
decides (ResNet-18's 7x7 layers).  The tuner times each per shape
(clnet/ops/gemm.py choose_conv has the rule for untuned devices).
"""
from __future__ import annotations

import numpy as np

from ._util import int_vec
from .gemm import act_defines, emit_gemm, epilogue_args, fused_act

# G of F(m x m, 3x3) per output tile size m; interpolation points 0, +-1,
# (+-2,) and infinity, as in Lavin and Gray (2016).
G_MATRICES = {
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
    2: np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
}
VARIANTS = {"winograd4x4": 4, "winograd2x2": 2}   # algorithm name -> output tile side
SCRATCH_LIMIT = 256 << 20     # bytes of V or M before the plain im2col path is used


def filter_transform(weights: np.ndarray, tile: int, tn: int) -> np.ndarray:
    """[M][C][3][3] filters -> U packed as gemm.cl's B operand:
    [(tile+2)^2][ceil(M/tn)][C][tn], zero-padded filters.

    vec(G w G^T) = (G kron G) vec(w): one matrix product for all filters, on
    the filters already in [9][panel][C][lane] order so that the product comes
    out packed.  float32: the result is within 1e-7 of a float64 transform
    (Winograd's own rounding is ~1e-5), and 4x faster than transforming in
    float64 and packing the 4x larger U afterwards (68 -> 17 ms at 512x512,
    the bulk of a warm ResNet-18 load).
    """
    m, c = weights.shape[:2]
    panels = -(-m // tn)
    padded = np.zeros((panels * tn, c, 9), dtype=np.float32)
    padded[:m] = weights.reshape(m, c, 9)
    wt = np.ascontiguousarray(padded.reshape(panels, tn, c, 9).transpose(3, 0, 2, 1))
    g = G_MATRICES[tile]
    u = np.kron(g, g).astype(np.float32) @ wt.reshape(9, -1)
    return u.reshape(-1, panels, c, tn)


def tiles(dims, tile: int) -> tuple:
    """(tiles across, tiles per image, all tiles) of one convolution."""
    N, _, _, _, _, OH, OW = dims
    across = -(-OW // tile)
    per_image = -(-OH // tile) * across
    return across, per_image, N * per_image


def winograd_ok(ctx, weights, group, dims, geo) -> bool:
    """Whether Winograd can run this Conv: constant 3x3 weights, stride 1,
    no dilation, one group, fp32 storage (fp16 storage of the transformed
    tiles loses too much: the transforms scale values by up to 100x before
    they cancel), float weights (--int8-weights asks for small weights; the
    transformed filters are larger and off the int8 grid of the originals)
    and scratch buffers within SCRATCH_LIMIT.  Which algorithm such a conv
    runs is decided in clnet/ops/gemm.py (choose_conv)."""
    (kh, kw, sy, sx), (_, _, dy, dx) = geo
    if (kh, kw, sy, sx, dy, dx, group) != (3, 3, 1, 1, 1, 1, 1) or ctx.store_half \
            or ctx.weight_int8 or not isinstance(weights, np.ndarray):
        return False
    N, C, H, W, M, OH, OW = dims
    return (4 + 2) ** 2 * tiles(dims, 4)[2] * max(C, M) * 4 <= SCRATCH_LIMIT


def emit_winograd(ctx, node, variant, x, out, weights, bias, residual, dims, geo) -> None:
    N, C, H, W, M, OH, OW = dims
    (_, _, _, _), (pad_y, pad_x, _, _) = geo
    tile = VARIANTS[variant]
    positions = (tile + 2) ** 2
    across, per_image, T = tiles(dims, tile)
    TS = _padded(T, 16)          # row length of V and M: 64-byte aligned rows
    isz = ctx.itemsize(x)
    v = ctx.scratch(positions * C * TS * isz)
    m = ctx.scratch(positions * M * TS * isz)
    p = winograd_gemm_params(ctx.policy, M, TS, C)
    tm = p["TM"]
    u = ctx.weight(filter_transform(weights, tile, tm), (node.inputs[1].name, variant, tm))
    defines = {"WINO_M": tile}
    group = 16 if ctx.policy.is_cpu else max(1, min(64, ctx.dev.max_work_group_size))
    geometry = (H, W, across, per_image)
    rows = ctx.policy.winograd_rows(across)
    if rows:
        # vectors of 16 tiles of a tile row where a row has more than 8
        # (ResNet-18's 56 x 56 input transforms 0.17-0.20 ms against
        # 0.22-0.25 with 8), else 8
        tl = 16 if across > 8 and ctx.policy.vector_width == 16 else 8
        in_grid, in_block = _row_blocks(ctx, N, C, per_image // across)
        ctx.launch("winograd", in_grid,
                   [x, v, np.int32(C), np.int32(TS), int_vec(geometry),
                    int_vec((pad_y, pad_x, N * C * H * W, in_block))],
                   dict(defines, TL=tl), entry="winograd_input_rows", lsize=(1, 1))
    else:
        ctx.launch("winograd", (TS, C), [x, v, np.int32(C), np.int32(T), int_vec(geometry),
                                         int_vec((pad_y, pad_x))], defines,
                   entry="winograd_input", lsize=(_divisor_group(TS, group), 1))
    emit_gemm(ctx, m, u, v, M, TS, C, positions, a_packed=True, params=p,
              za=(1, positions, -(-M // tm) * C * tm, 0), zb=(1, positions, C * TS, 0),
              zc=(M * TS, 0, TS), ldb=TS)
    b_arg = bias
    if isinstance(bias, np.ndarray):
        b_arg = ctx.weight(bias, (node.inputs[2].name, "bias"))
    out_geo = int_vec((OH, OW, across, per_image))
    if rows:
        # vectors of 8 tiles (16: no faster, and a program more), the
        # epilogue chosen at run time (gemm.cl's: one program per variant)
        out_grid, out_block = _row_blocks(ctx, N, M, per_image // across)
        epi = epilogue_args(fused_act(node), "row" if bias is not None else None,
                            residual is not None)
        ctx.launch("winograd", out_grid,
                   [m, out, b_arg, residual, np.int32(M), np.int32(TS), out_geo,
                    int_vec((out_block, N * M * OH * OW, 0, 0))] + list(epi),
                   dict(defines, TL=8, WINO_OUT=True), entry="winograd_output_rows",
                   lsize=(1, 1))
        return
    # compiled-in epilogue (see winograd.cl)
    defines = dict(defines, WINO_OUT=True, **act_defines(node))
    if bias is not None:
        defines["HAS_BIAS"] = True
    if residual is not None:
        defines["HAS_RESIDUAL"] = True
    ctx.launch("winograd", (TS, M), [m, out, b_arg, residual, np.int32(M), np.int32(T), out_geo],
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
        # they share stay in the L1 cache (ResNet-18's 56 x 56 layers: 0.44
        # -> 0.38 ms per GEMM; the smaller maps measured alike either way,
        # so that one program serves every one of these GEMMs)
        p.update(NT=4, M_FIRST=True)
    return p


def _divisor_group(n: int, group: int) -> int:
    """The largest power-of-two share of `group` that divides n."""
    while n % group:
        group //= 2
    return group


def _padded(channels: int, group: int) -> int:
    return -(-channels // group) * group
