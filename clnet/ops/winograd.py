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

from ..tuning import gemm_params
from .elementwise import int_vec
from .gemm import act_defines, emit_gemm

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
    p = gemm_params(ctx.dev, T, M, C, "gemm")
    tn = p["TN"]
    u = ctx.weight(filter_transform(weights, tile, tn),
                   (node.inputs[1].name, variant, tn))
    panels = -(-M // tn)
    isz = ctx.itemsize(x)
    v = ctx.scratch(positions * T * C * isz)
    m = ctx.scratch(positions * T * M * isz)
    defines = {"WINO_M": tile}
    group_c, group_m = _group(ctx, C), _group(ctx, M)
    ctx.launch("winograd", (_padded(C, group_c), T), [x, v, np.int32(C), np.int32(T),
                                                      int_vec((H, W, across, per_image)),
                                                      int_vec((pad_y, pad_x))], defines,
               entry="winograd_input", lsize=(group_c, 1))
    emit_gemm(ctx, m, v, u, T, M, C, positions, a_packed=False, params=p,
              za=(1, positions, T * C, 0), zb=(1, positions, panels * C * tn, 0),
              zc=(T * M, 0, M), lda=C)
    defines.update(act_defines(node))   # compiled in: see winograd.cl
    b_arg = bias
    if isinstance(bias, np.ndarray):
        b_arg = ctx.weight(bias, (node.inputs[2].name, "bias"))
    if bias is not None:
        defines["HAS_BIAS"] = True
    if residual is not None:
        defines["HAS_RESIDUAL"] = True
    ctx.launch("winograd", (_padded(M, group_m), T),
               [m, out, b_arg, residual, np.int32(M), np.int32(T),
                int_vec((OH, OW, across, per_image))],
               defines, entry="winograd_output", lsize=(group_m, 1))


def _group(ctx, channels: int) -> int:
    """Work-group size along the channels: 16-64 neighbouring channels, whose
    V/M elements are contiguous (a CPU driver vectorises across them; the
    transforms took 0.31 instead of 0.17 ms with the driver's own choice),
    within the device's work-group limit."""
    wanted = 64 if channels >= 64 else 32 if channels >= 32 else 16
    return max(1, min(wanted, ctx.dev.max_work_group_size))


def _padded(channels: int, group: int) -> int:
    return -(-channels // group) * group
