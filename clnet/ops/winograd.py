"""Winograd F(4x4, 3x3) convolution: kernels_cl/winograd.cl around 36 GEMMs.

For a 3x3 stride-1 convolution the filter transform U = G g G^T is computed
once at load and packed as the GEMM's constant B operand, one [C][M] matrix
per position of the 6x6 tile.  At run time winograd_input writes the input
transform V[36][tiles][C] (row-major A of gemm.cl), gemm.cl computes
M[36][tiles][Cout] in one batched launch, and winograd_output turns it into
the NCHW output with the bias, residual and activation applied.  The output
tiles of every image are rows of one GEMM, so small feature maps (7x7: 4
tiles) still give the GEMM wide rows of output channels to work on.
"""
from __future__ import annotations

import numpy as np

from ..tuning import conv_algorithm, gemm_params
from .elementwise import int_vec
from .gemm import act_defines, emit_gemm, pack_b

# F(4x4, 3x3) with interpolation points 0, +-1, +-2 and infinity.
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
TILE = 4                      # outputs per tile side
POSITIONS = 36                # (TILE + 2) ** 2 GEMMs
SCRATCH_LIMIT = 256 << 20     # bytes of V or M before the plain im2col path is used


def filter_transform(weights: np.ndarray) -> np.ndarray:
    """[M][C][3][3] filters -> U[36][C][M] (float32), in float64 arithmetic."""
    m, c = weights.shape[:2]
    u = np.einsum("ak,mckl,bl->abcm", G, weights.astype(np.float64), G)
    return u.reshape(POSITIONS, c, m).astype(np.float32)


def tiles(dims) -> tuple:
    """(tiles across, tiles per image, all tiles) of one convolution."""
    N, _, _, _, _, OH, OW = dims
    across = -(-OW // TILE)
    per_image = -(-OH // TILE) * across
    return across, per_image, N * per_image


def winograd_applies(ctx, node, weights, group, dims, geo) -> bool:
    """Whether this Conv should run as Winograd F(4x4, 3x3) on this device.

    Needs constant 3x3 weights, stride 1, no dilation, one group, fp32
    storage (fp16 storage of the transformed tiles loses too much: the
    transforms scale values by up to 100x before they cancel) and float
    weights (--int8-weights asks for small weights; the transformed filters
    are 4x larger and off the int8 grid of the originals).  Among those
    shapes the choice is the tuner's where it measured one (`clnet tune`),
    else a rule from ResNet-18's convs on a CPU (tools/bench_conv.py): 2-4.5x
    faster than im2col + GEMM from 16 channels and 3x3 tiles per image up,
    1.8x slower on 7x7 maps (4 tiles, 64 outputs computed for 49).
    """
    (kh, kw, sy, sx), (_, _, dy, dx) = geo
    if (kh, kw, sy, sx, dy, dx, group) != (3, 3, 1, 1, 1, 1, 1) or ctx.store_half \
            or ctx.weight_int8 or not isinstance(weights, np.ndarray):
        return False
    N, C, H, W, M, OH, OW = dims
    T = tiles(dims)[2]
    if POSITIONS * T * max(C, M) * 4 > SCRATCH_LIMIT:
        return False
    chosen = conv_algorithm(ctx.dev, (M, OH * OW * N, C * 9))
    if chosen is not None:
        return chosen == "winograd"
    return C >= 16 and M >= 16 and tiles(dims)[1] >= 9


def emit_winograd(ctx, node, x, out, weights, bias, residual, dims, geo) -> None:
    N, C, H, W, M, OH, OW = dims
    (_, _, _, _), (pad_y, pad_x, _, _) = geo
    across, per_image, T = tiles(dims)
    p = gemm_params(ctx.dev, T, M, C, "gemm")
    tn = p["TN"]
    u = ctx.weight(pack_b(filter_transform(weights), tn),
                   (node.inputs[1].name, "winograd", tn))
    panels = -(-M // tn)
    isz = ctx.itemsize(x)
    v = ctx.scratch(POSITIONS * T * C * isz)
    m = ctx.scratch(POSITIONS * T * M * isz)
    ctx.launch("winograd", (C, T), [x, v, np.int32(C), np.int32(T),
                                    int_vec((H, W, across, per_image)),
                                    int_vec((pad_y, pad_x))], {}, entry="winograd_input")
    emit_gemm(ctx, m, v, u, T, M, C, POSITIONS, a_packed=False, params=p,
              za=(1, POSITIONS, T * C, 0), zb=(1, POSITIONS, panels * C * tn, 0),
              zc=(T * M, 0, M), lda=C)
    defines = act_defines(node)
    b_arg = bias
    if isinstance(bias, np.ndarray):
        b_arg = ctx.weight(bias, (node.inputs[2].name, "bias"))
    if bias is not None:
        defines["HAS_BIAS"] = True
    if residual is not None:
        defines["HAS_RESIDUAL"] = True
    ctx.launch("winograd", (M, T), [m, out, b_arg, residual, np.int32(M), np.int32(T),
                                    int_vec((OH, OW, across, per_image))],
               defines, entry="winograd_output")
