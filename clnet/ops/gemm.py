"""Gemm, MatMul and Conv on kernels_cl/gemm.cl (+ pack.cl, depthwise.cl).

Constant operands (weights) are packed once at load into the panel layouts
the GEMM streams; activations are packed by a kernel (im2col for convs).
A fused activation, bias, residual Add or scale (the node's ``epilogue``,
set by passes/fusion.py) runs in the GEMM's epilogue.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from pyopencl import cltypes

from ..errors import UnsupportedOpError
from ..graph import Node, Value
from ._util import broadcast_strides, contiguous_strides, float_literal, int_vec
from .strided import emit_map, emit_strided
from .registry import op

ACT_MACROS = {"Relu": "ACT_RELU", "Clip": "ACT_CLIP", "LeakyRelu": "ACT_LEAKYRELU",
              "Sigmoid": "ACT_SIGMOID", "Tanh": "ACT_TANH", "HardSigmoid": "ACT_HARDSIGMOID",
              "HardSwish": "ACT_HARDSWISH", "Gelu": "ACT_GELU"}
SCRATCH_LIMIT = 256 << 20   # bytes of im2col buffer before a conv is split by images
# In half storage a run-time A of a GEMM with at least this many multiply-adds
# is converted to float first (gemm.cl -DA_FLOAT): one cheap pass against
# lane shuffles for every use of A in the GEMM.
HALF_A_CONVERT_MIN = 1 << 25
HALF_B_CONVERT_ROWS = 64   # rows of A (M) from which a half B is converted likewise


def fused_act(node):
    """The activation (name, p0, p1) fused into `node`, or None."""
    return node.epilogue.act if node.epilogue is not None else None


def act_defines(node) -> dict:
    """-D defines for the fused activation of `node`, if any."""
    act = fused_act(node)
    if not act:
        return {}
    name, p0, p1 = act
    return {"ACT": ACT_MACROS[name], "P0": float_literal(p0), "P1": float_literal(p1)}


def residual_of(node):
    """The residual fused into `node` (its input 3), or None."""
    return node.inputs[3] if node.epilogue is not None and node.epilogue.residual else None


def pack_b(b: np.ndarray, tn: int) -> np.ndarray:
    """[..., K, N] -> [Z, ceil(N/tn), K, tn], zero-padded columns."""
    k, n = b.shape[-2:]
    b = b.reshape(-1, k, n)
    panels = -(-n // tn)
    padded = np.zeros((b.shape[0], k, panels * tn), dtype=np.float32)
    padded[:, :, :n] = b
    return np.ascontiguousarray(padded.reshape(b.shape[0], k, panels, tn).transpose(0, 2, 1, 3))


def pack_a(a: np.ndarray, tm: int) -> np.ndarray:
    """[G, M, K] -> [G, ceil(M/tm), K, tm], zero-padded rows."""
    g, m, k = a.shape
    panels = -(-m // tm)
    padded = np.zeros((g, panels * tm, k), dtype=np.float32)
    padded[:, :m] = a
    return np.ascontiguousarray(padded.reshape(g, panels, tm, k).transpose(0, 1, 3, 2))


def gemm_launch_config(params: dict, M: int, N: int, Z: int, *, a_packed: bool) -> tuple:
    """(defines, global size, local size or None) of gemm.cl for one problem."""
    tm, tn, np_ = params["TM"], params["TN"], int(params.get("NP", 1))
    defs = {"TM": tm, "TN": tn, "VW": params.get("VW", min(tn, 16))}
    if a_packed:
        defs["A_PACKED"] = True
    if np_ > 1:
        defs["NP"] = np_
    gsize = (-(-N // (tn * np_)), -(-M // tm), Z)
    nt = int(params.get("NT", 1))
    if nt > 1:
        defs["NT"] = nt
    ksplit = int(params.get("KSPLIT", 1))
    if ksplit > 1:
        defs["KSPLIT"] = ksplit
    lsize = params.get("LSIZE")
    if params.get("GROUP_M", 1) > 1:
        # grouped tile order over a 1-D grid of tile ids (gemm.cl)
        defs["GROUP_M"] = int(params["GROUP_M"])
        gsize = (-(-gsize[0] * gsize[1] // nt), Z * ksplit, 1)
        if lsize:   # the same number of work-items per group, in one dimension
            lsize = (int(np.prod(lsize[:2])), 1, 1)
    else:
        if params.get("M_FIRST"):
            defs["M_FIRST"] = True
            gsize = (gsize[1], gsize[0], Z)
        gsize = (-(-gsize[0] // nt), gsize[1], Z * ksplit)
    if lsize:
        lsize = (tuple(int(v) for v in lsize) + (1, 1))[:2] + (1,)
        lsize = tuple(min(l, g) for l, g in zip(lsize, gsize))
        gsize = tuple(-(-g // l) * l for g, l in zip(gsize, lsize))
    return defs, gsize, lsize


ACT_CODES = {"Relu": 1, "Clip": 2, "LeakyRelu": 3, "Sigmoid": 4, "Tanh": 5,
             "HardSigmoid": 6, "HardSwish": 7, "Gelu": 8}   # epilogue.h's activation switch
EPI_BIAS_ROW, EPI_BIAS_COL, EPI_RESIDUAL = 1, 2, 4


def epilogue_args(act=None, bias_mode=None, residual=False, alpha=1.0) -> tuple:
    """(epi flags, float4 alpha/p0/p1) arguments of gemm.cl's epilogue."""
    epi = {"row": EPI_BIAS_ROW, "col": EPI_BIAS_COL, None: 0}[bias_mode]
    if residual:
        epi |= EPI_RESIDUAL
    p0 = p1 = 0.0
    if act:
        epi |= ACT_CODES[act[0]] << 8
        p0, p1 = act[1], act[2]
    return np.int32(epi), cltypes.make_float4(alpha, p0, p1, 0.0)


def emit_gemm(ctx, out, a, b, M, N, K, Z, *, a_packed, params, za, zb, zc, lda=0,
              bias=None, bias_mode=None, bias_zstride=0, residual=None, act=None,
              alpha=1.0, ldb=0, a_float=False, b_float=False) -> None:
    """gemm.cl launch(es).  za/zb: (div, mod, stride, base); zc: (stride, base, ldc).

    act: the fused activation (name, p0, p1) or None.  With params["KSPLIT"] > 1
    the K slices write partial products to a scratch buffer and gemm_reduce
    sums them and applies the epilogue.  ldb > 0: b is a row-major (unpacked)
    matrix with that leading dimension.
    """
    if ldb and params.get("NP", 1) > 1:
        params = dict(params, NP=1)     # NP panels are packed ones
    defs, gsize, lsize = gemm_launch_config(params, M, N, Z, a_packed=a_packed)
    if ldb:
        defs["B_ROWMAJOR"] = True
    if a_float:
        defs["A_FLOAT"] = True
    if b_float:
        defs["B_FLOAT"] = True
    epi = epilogue_args(act, bias_mode if bias is not None else None, residual is not None,
                        alpha)
    ksplit = defs.get("KSPLIT", 1)
    c_size = Z * zc[0]
    target = out if ksplit == 1 else ctx.scratch(ksplit * c_size * ctx.itemsize(out))
    zc_vec = int_vec(tuple(zc) + (c_size,) if ksplit == 1 else (zc[0], 0, zc[2], c_size))
    args = [a, b, target, bias, residual, np.int32(M), np.int32(N), np.int32(K),
            np.int32(lda), int_vec(za), int_vec(zb), zc_vec, np.int32(bias_zstride),
            np.int32(ldb)]
    if ksplit == 1:
        ctx.launch("gemm", gsize, args + list(epi), defs, lsize=lsize)
        return
    ctx.launch("gemm", gsize, args + list(epilogue_args()), defs, lsize=lsize)
    ctx.launch("gemm", (N, M, Z), [target, out, bias, residual, np.int32(M), np.int32(N),
                                   int_vec(za), int_vec(tuple(zc) + (c_size,)),
                                   np.int32(bias_zstride)] + list(epi),
               {"KSPLIT": ksplit}, entry="gemm_reduce")


def emit_pack_b(ctx, src, K, N, Z, strides, tn):
    """Pack an activation matrix src[z][k][n] (element strides) into panels."""
    panels = -(-N // tn)
    scratch = ctx.scratch(Z * panels * tn * K * ctx.itemsize(src))
    ctx.launch("pack", (panels, K, Z),
               [src, scratch, np.int32(K), np.int32(N), np.int32(panels), int_vec(strides)],
               {"TN": tn}, entry="pack_b")
    return scratch, panels


def _divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of n that is <= limit (a local size the grid fits)."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def batch_map(batch, full) -> tuple:
    """(div, mod) so that operand batch = (z // div) % mod, or None if not expressible."""
    batch = (1,) * (len(full) - len(batch)) + tuple(batch)
    dims = [i for i, d in enumerate(batch) if d != 1]
    if not dims:
        return 1, 1
    lo, hi = dims[0], dims[-1]
    if any(batch[i] != full[i] for i in range(lo, hi + 1)):
        return None
    return int(np.prod(full[hi + 1:], dtype=np.int64)), int(np.prod(full[lo:hi + 1],
                                                                      dtype=np.int64))


def _materialize(ctx, value, shape, full_shape):
    """Copy a broadcast operand to its full batch shape (rare MatMul patterns)."""
    scratch = ctx.scratch(int(np.prod(full_shape)) * ctx.itemsize(value))
    emit_strided(ctx, scratch, full_shape, contiguous_strides(full_shape), 0,
                 [(value, broadcast_strides(shape, full_shape), 0)], "a")
    return scratch


def matmul_shapes(node, a_shape, b_shape) -> tuple:
    """ONNX MatMul shape rule: (a2, b2, batch shape, (M, N, K), output shape),
    with 1-D operands promoted to matrices and their unit dim dropped after."""
    a2 = (1,) + a_shape if len(a_shape) == 1 else a_shape
    b2 = b_shape + (1,) if len(b_shape) == 1 else b_shape
    M, K = a2[-2:]
    K2, N = b2[-2:]
    if K != K2:
        raise ValueError(f"{node.op} inner dims differ: {a_shape} x {b_shape}")
    full = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    out_shape = full + (M, N)
    if len(a_shape) == 1:
        out_shape = out_shape[:-2] + (N,)
    if len(b_shape) == 1:
        out_shape = out_shape[:-1]
    return a2, b2, full, (M, N, K), out_shape


@op("MatMul")
def matmul(ctx, node):
    a, b = node.inputs[0], node.inputs[1]
    _require_float(node, a, b)
    a2, b2, full, (M, N, K), out_shape = matmul_shapes(node, ctx.shape(a), ctx.shape(b))
    out = ctx.output(node.outputs[0], out_shape, a.dtype)
    epilogue = node.epilogue
    bias = node.input(2) if epilogue is not None and epilogue.bias else None
    residual = residual_of(node)
    alpha = float(epilogue.alpha) if epilogue is not None else 1.0   # a fused scalar Mul/Div
    if bias is None and residual is None:
        gemm_general(ctx, node, out, a, a2, b, b2, full, M, N, K, alpha=alpha)
        return
    if len(ctx.shape(b)) == 1 or (residual is not None
                                  and tuple(ctx.shape(residual)) != out_shape):
        _matmul_post_adds(ctx, node, out, (a, a2, b, b2, full, M, N, K), bias, residual)
        return
    bias_buf = _bias_col(ctx, bias, ctx.policy.gemm_params(M, N, K, _kind(ctx, a))["TN"], N)
    gemm_general(ctx, node, out, a, a2, b, b2, full, M, N, K, alpha=alpha, bias=bias_buf,
                 bias_mode="col", residual=residual)


def _bias_col(ctx, bias, tn: int, N: int):
    """A fused [N] bias, zero-padded to whole column panels."""
    padded = np.zeros(-(-N // tn) * tn, np.float32)
    padded[:N] = np.asarray(bias.data, np.float32).reshape(N)
    return ctx.weight(padded, (bias.name, "bias_col", 1.0, tn))


def _matmul_post_adds(ctx, node, out, dims, bias, residual) -> None:
    """The fused bias/residual as separate adds (shapes that do not allow the epilogue)."""
    act = fused_act(node)
    plain = Node(node.op, node.inputs[:2], node.outputs, dict(node.attrs), node.name,
                 node.domain)
    gemm_general(ctx, plain, out, *dims, alpha=float(node.epilogue.alpha))
    for addend in (bias, residual):
        if addend is not None:
            emit_map(ctx, out, [out, addend], "a+b", ())
    if act:
        emit_map(ctx, out, [out], f"{ACT_MACROS[act[0]]}(a)", act[1:])


def _is_const(value) -> bool:
    return bool(getattr(value, "is_const", False))


def gemm_general(ctx, node, out, a, a2, b, b2, full, M, N, K, alpha=1.0, bias=None,
                 bias_mode=None, residual=None, b_strides=None):
    """C[full][M][N] = A[a2] @ B[b2] with batch broadcasting.

    a may be a Value, a constant view, or a Scratch holding a row-major A;
    b_strides: element strides (batch, k, n) of a run-time B if not contiguous.
    """
    p = ctx.policy.gemm_params(M, N, K, _kind(ctx, a))
    tm, tn = p["TM"], p["TN"]
    b_batch = int(np.prod(b2[:-2], dtype=np.int64))
    a_batch = int(np.prod(a2[:-2], dtype=np.int64))
    if b_batch == 1 and not _is_const(a):
        # fold A's batch into M: one big GEMM against a 2-D B
        Mz, Z = M * a_batch, 1
        za = zb = (1, 1, 0, 0)
    else:
        Mz, Z = M, int(np.prod(full, dtype=np.int64))
        za = zb = None
    alpha_k, ldb = alpha, 0
    if _is_const(b):
        bp = ctx.weight(pack_b(np.asarray(b.data, np.float32).reshape(b2) * alpha, tn),
                        (b.name, "pack_b", tn, alpha))
        b_arg, b_panels = bp, -(-N // tn)
        alpha_k = 1.0
    else:
        if b_strides is None:
            strides = contiguous_strides(b2)
            b_strides = (K * N, strides[-2], strides[-1])
        if b_strides[2] == 1 and N >= tn:
            b_arg, b_panels, ldb = b, 0, b_strides[1]
        else:
            b_arg, b_panels = emit_pack_b(ctx, b, K, N, b_batch, tuple(b_strides) + (0,), tn)
    b_zstride = b_panels * K * tn if not ldb else b_strides[0]
    if _is_const(a):
        ap = pack_a(np.asarray(a.data, np.float32).reshape(a_batch, M, K) * alpha_k, tm)
        a_arg = ctx.weight(ap, (a.name, "pack_a", tm, alpha_k))
        a_zstride, a_packed, alpha_k = ap.shape[1] * K * tm, True, 1.0
    else:
        a_arg, a_zstride, a_packed = a, M * K, False
    a_count = a_batch * M * K
    if za is None:
        maps = [batch_map(a2[:-2], full), batch_map(b2[:-2], full)]
        if maps[0] is None:
            a_arg = _materialize(ctx, a, a2, full + (M, K))
            maps[0], a_count = (1, Z), Z * M * K
        if maps[1] is None:
            raise UnsupportedOpError(f"{node.label()}: MatMul batch broadcast {a2} x {b2}")
        za = (maps[0][0], maps[0][1], a_zstride, 0)
        zb = (maps[1][0], maps[1][1], b_zstride, 0)
    big = ctx.store_half and Mz * N * K * Z >= HALF_A_CONVERT_MIN
    a_float = big and not a_packed
    if a_float:   # one pass half -> float, so that the GEMM reads A as broadcasts
        half_a, a_arg = a_arg, ctx.scratch(a_count * 4)
        ctx.launch("quant", (a_count,), [half_a, a_arg, np.int32(a_count)], {"IN_HALF": True},
                   entry="convert_storage")
    # B too, where enough rows of A reuse it to repay the pass (packed
    # panels, or a contiguous row-major B): fp16-storage SGEMM n=1024 went
    # from 0.74-0.80x to ~0.95x of fp32
    b_count = b_batch * (b_panels * K * tn if not ldb else K * N)
    b_float = big and Mz >= HALF_B_CONVERT_ROWS and (
        not ldb or tuple(b_strides) == (K * N, N, 1))
    if b_float:
        half_b, b_arg = b_arg, ctx.scratch(b_count * 4)
        ctx.launch("quant", (b_count,), [half_b, b_arg, np.int32(b_count)], {"IN_HALF": True},
                   entry="convert_storage")
    emit_gemm(ctx, out, a_arg, b_arg, Mz, N, K, Z, a_packed=a_packed, params=p, za=za,
              zb=zb, zc=(Mz * N, 0, N), lda=K, bias=bias, bias_mode=bias_mode,
              residual=residual, act=fused_act(node), alpha=alpha_k, ldb=ldb,
              a_float=a_float, b_float=b_float)


def _kind(ctx, a) -> str:
    """The tuning table of a GEMM: packed weights A ("conv") or not, per storage."""
    kind = "conv" if _is_const(a) else "gemm"
    return kind + "_fp16" if ctx.store_half else kind


def _require_float(node, *values):
    for value in values:
        if value.dtype is not None and value.dtype.kind != "f":
            raise UnsupportedOpError(f"{node.label()}: {node.op} on {value.dtype} tensors is "
                                     f"not supported")


@op("Gemm")
def gemm(ctx, node):
    a, b = node.inputs[0], node.inputs[1]
    c = node.input(2)
    _require_float(node, a, b)
    alpha = float(node.attrs.get("alpha", 1.0))
    beta = float(node.attrs.get("beta", 1.0))
    trans_a, trans_b = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
    a_shape, b_shape = ctx.shape(a), ctx.shape(b)
    if len(a_shape) != 2 or len(b_shape) != 2:
        raise ValueError(f"Gemm needs 2-D inputs, got {a_shape} and {b_shape}")
    M, K = a_shape[::-1] if trans_a else a_shape
    K2, N = b_shape[::-1] if trans_b else b_shape
    if K != K2:
        raise ValueError(f"Gemm inner dims differ: {a_shape} x {b_shape} "
                         f"(transA={trans_a}, transB={trans_b})")
    out = ctx.output(node.outputs[0], (M, N), a.dtype)
    b_strides = None
    if trans_a:
        a = _transposed(ctx, a, a_shape)
    if trans_b:
        if b.is_const:
            b = _ConstView(b.name, np.ascontiguousarray(np.asarray(b.data).T))
        else:
            b_strides = (K * N, 1, K)
    bias, bias_mode, residual, post_add = None, None, residual_of(node), None
    if c is not None and c.name and beta != 0.0:
        c_shape = ctx.shape(c)
        if c.is_const and int(np.prod(c_shape)) in (1, N) and (len(c_shape) < 2 or c_shape[0] == 1):
            vec = np.broadcast_to(np.asarray(c.data, np.float32).reshape(-1) * beta, (N,))
            tn = ctx.policy.gemm_params(M, N, K, _kind(ctx, a))["TN"]
            padded = np.zeros(-(-N // tn) * tn, np.float32)
            padded[:N] = vec
            bias, bias_mode = ctx.weight(padded, (c.name, "bias_col", beta, tn)), "col"
        elif c.is_const and tuple(c_shape) == (M, 1):
            bias = ctx.weight(np.asarray(c.data, np.float32).reshape(M) * beta,
                              (c.name, "bias_row", beta))
            bias_mode = "row"
        elif tuple(c_shape) == (M, N) and residual is None and beta == 1.0:
            residual = c
        else:
            post_add = c
    act = fused_act(node)
    if post_add is not None and act:
        # the bias broadcasts oddly: add it (and then activate) after the GEMM
        node = Node(node.op, node.inputs, node.outputs, dict(node.attrs), node.name,
                    node.domain, replace(node.epilogue, act=None))
    gemm_general(ctx, node, out, a, (M, K), b, (K, N), (), M, N, K, alpha=alpha, bias=bias,
                 bias_mode=bias_mode, residual=residual, b_strides=b_strides)
    if post_add is not None:
        emit_map(ctx, out, [out, post_add], "a+b*P0", (beta,))
        if act:
            emit_map(ctx, out, [out], f"{ACT_MACROS[act[0]]}(a)", act[1:])


class _ConstView:
    """A transposed constant: looks like a const Value to the GEMM code."""

    def __init__(self, name, data):
        self.name, self.data = name + "^T", data
        self.dtype = data.dtype
        self.is_const = True


def _transposed(ctx, value, shape):
    """A^T of a Gemm operand: a constant view, or a run-time copy in scratch."""
    if value.is_const:
        return _ConstView(value.name, np.ascontiguousarray(np.asarray(value.data).T))
    scratch = ctx.scratch(int(np.prod(shape)) * ctx.itemsize(value))
    emit_strided(ctx, scratch, shape[::-1], contiguous_strides(shape[::-1]), 0,
                 [(value, contiguous_strides(shape)[::-1], 0)], "a")
    return scratch


def conv_geometry(node, x_shape, w_shape) -> tuple:
    """(pads_begin, pads_end, strides, dilations, out_spatial) for Conv/pools."""
    spatial = x_shape[2:]
    nd = len(spatial)
    kernel = node.attrs.get("kernel_shape") or w_shape[2:]
    strides = list(node.attrs.get("strides") or [1] * nd)
    dilations = list(node.attrs.get("dilations") or [1] * nd)
    pads = list(node.attrs.get("pads") or [0] * (2 * nd))
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    begin, end, out = pads[:nd], pads[nd:], []
    for i in range(nd):
        eff = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-spatial[i] // strides[i])
            total = max((o - 1) * strides[i] + eff - spatial[i], 0)
            small = total // 2
            begin[i], end[i] = ((small, total - small) if auto_pad == "SAME_UPPER"
                                else (total - small, small))
        elif auto_pad == "VALID":
            begin[i] = end[i] = 0
        o = (spatial[i] + begin[i] + end[i] - eff) // strides[i] + 1
        out.append(o)
    return begin, end, strides, dilations, out, list(kernel)


def conv_dims(node, x_shape, w_shape) -> tuple:
    """Conv shape rule shared by float and integer convolutions.

    Returns ((N, C, H, W, M, OH, OW), group, output shape,
    ((kh, kw, sy, sx), (py, px, dy, dx))); a 1-D conv is a 2-D one with H = 1.
    """
    nd = len(x_shape) - 2
    if nd not in (1, 2):
        raise UnsupportedOpError(f"{node.label()}: {nd}-D {node.op} is not supported yet")
    group = node.attrs.get("group", 1)
    N, C = x_shape[:2]
    M = w_shape[0]
    if C != w_shape[1] * group or M % group:
        raise ValueError(f"{node.op} channels: input {x_shape}, weights {w_shape}, "
                         f"group {group}")
    begin, _, strides, dil, out_sp, kernel = conv_geometry(node, x_shape, w_shape)
    if any(o <= 0 for o in out_sp):
        raise ValueError(f"{node.op} output would be empty: input {x_shape}, kernel {kernel}")
    if nd == 1:
        H, W, OH, OW = 1, x_shape[2], 1, out_sp[0]
        geo = (1, kernel[0], 1, strides[0]), (0, begin[0], 1, dil[0])
    else:
        (H, W), (OH, OW) = x_shape[2:], out_sp
        geo = (*kernel, *strides), (*begin, *dil)
    return (N, C, H, W, M, OH, OW), group, (N, M, *out_sp), geo


@op("Conv")
def conv(ctx, node):
    x, w, b = node.inputs[0], node.inputs[1], node.input(2)
    _require_float(node, x, w)
    x_shape, w_shape = ctx.shape(x), ctx.shape(w)
    (N, C, H, W, M, OH, OW), group, out_shape, geo = conv_dims(node, x_shape, w_shape)
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    residual = residual_of(node)
    if residual is not None and ctx.shape(residual) != out.shape:
        # the fused Add broadcasts: run the Conv alone, then add (+ activation)
        act = fused_act(node)
        conv_out = Value(out.name + "/conv")
        conv(ctx, Node(node.op, node.inputs[:3], [conv_out], dict(node.attrs), node.name,
                       node.domain))
        macro = ACT_MACROS[act[0]] if act else "ACT_NONE"
        emit_map(ctx, node.outputs[0], [conv_out, residual], f"{macro}(a+b)", act[1:] if act else ())
        return
    # constant weights/bias are repacked at load; run-time ones are read in place
    weights = np.asarray(w.data, np.float32) if w.is_const else w
    bias_data = None
    if b is not None and b.name:
        bias_data = np.asarray(b.data, np.float32) if b.is_const else b
    geometry = (int_vec(geo[0]), int_vec(geo[1]))
    if group == C and w_shape[1] == 1 and residual is None:
        _depthwise(ctx, node, x, out, weights, bias_data, (N, C, H, W, M, OH, OW), geometry)
        return
    dims = (N, C, H, W, M, OH, OW)
    algorithm = choose_conv(ctx, weights, group, dims, geo)
    if algorithm.startswith("winograd"):
        from .winograd import emit_winograd
        emit_winograd(ctx, node, algorithm, x, out, weights, bias_data, residual, dims, geo)
    elif algorithm in DIRECT_KERNELS:
        _direct_conv(ctx, node, algorithm, x, out, weights, bias_data, residual, dims, geo)
    else:
        _im2col_gemm(ctx, node, x, out, weights, bias_data, residual, group, dims, geometry,
                     geo[0][0] * geo[0][1])


def choose_conv(ctx, weights, group, dims, geo) -> str:
    """How a (non-depthwise) Conv runs: "winograd4x4", "winograd2x2",
    "conv_direct", "conv_oc" (kernels_cl/conv_direct.cl) or "im2col" (+ GEMM,
    or a GEMM alone for 1x1 convs).

    3x3 stride-1 convs run what `clnet tune` measured fastest for their
    shape on this device (or the algorithm the kernel policy forces);
    untuned, a rule from ResNet-18's convs on an AVX-512 CPU with PoCL
    (tools/bench_conv.py, tools/bench_plan.py; docs/BENCHMARKS.md):
    F(4x4) from 16 channels and 3x3 tiles per image up (1.7-3.8x faster than
    im2col); on a CPU with 16-wide vectors, where the GEMM is fast enough
    to wait on memory, F(2x2) instead where F(4x4)'s transformed filters
    would pass WINO4_FILTER_BYTES (they stream from memory on every run:
    ResNet-18's 256-channel convs took 0.81-0.92 ms with F(2x2)'s 4.2 MB
    against 0.96-1.02 with F(4x4)'s 9.4 MB on PoCL 3.1; PoCL 3.0, which
    reports 8-wide vectors there, took 3.6 against 2.4); on smaller maps
    (7x7) conv_oc, whose filters are a quarter of F(2x2)'s transformed ones,
    on a CPU with 16-wide vectors, else F(2x2).
    Other convs with a spatial kernel run a direct kernel where one applies.
    """
    from .winograd import tiles, winograd_ok

    N, C, H, W, M, OH, OW = dims
    direct = _direct_kernel(ctx, weights, group, dims, geo)
    wide_cpu = ctx.policy.wide_cpu
    if winograd_ok(ctx, weights, group, dims, geo):
        chosen = ctx.policy.conv_algorithm((M, OH * OW * N, C * 9))
        if chosen == "direct":
            chosen = _direct_kernel(ctx, weights, group, dims, geo, any_device=True)
        if chosen is not None:
            return chosen
        if C < 16 or M < 16:
            return direct or "im2col"
        if tiles(dims, 4)[1] >= 9:
            small = 36 * C * M * 4 <= WINO4_FILTER_BYTES
            return "winograd4x4" if small or not wide_cpu else "winograd2x2"
        if direct == "conv_oc":
            return direct
        return "winograd2x2" if tiles(dims, 2)[1] >= 9 else "im2col"
    return direct or "im2col"


WINO4_FILTER_BYTES = 4 << 20   # F(4x4) up to this many bytes of transformed filters
PW_B_SHARE = 0.5     # 1x1 convs walk rows of tiles first from an input of this share of L2

# conv_direct per CPU float vector width (GPUs take the 16 entry): TM output
# channels x RY rows x TN pixels per work-item, TM x RY x TN / width vector
# accumulators.  AVX-512: 8 x 3 x 16, 24 of the 32 zmm registers (three rows:
# ResNet-18's stem 8% faster than two on PoCL 3.1, 30% on PoCL 3.0; four
# spilled on 3.1).  AVX2: 6 x 1 x 16, 12 of the 16 ymm registers (Zen 3,
# PoCL 3.1, the stem: 8 x 3 x 16 4.15 ms, 8 x 3 x 8 3.12, 4 x 1 x 16 1.53,
# 6 x 1 x 16 1.45).
DIRECT_TILE = {16: (8, 3, 16), 8: (6, 1, 16), 4: (4, 1, 8)}
DIRECT_MAX_C = 16        # conv_direct up to this many input channels, conv_oc above
# conv_oc per float vector width: (pixels, vectors of output channels) per
# work-item, OP x OV accumulators: 14 of the 32 zmm registers with AVX-512,
# 12 of the 16 ymm registers with AVX2
DIRECT_OC = {16: (7, 2), 8: (6, 2), 4: (4, 2)}
OC_BLOCKS = 8            # conv_oc pixel blocks per work-item (its OPB)
OC_SLICE = 16            # conv_oc input channels per pass over its blocks (its OCC)
DIRECT_KERNELS = ("conv_direct", "conv_oc")
PHASE_ROWS = 8           # rows of the padded copy per conv_phases work-item


def _direct_kernel(ctx, weights, group, dims, geo, any_device=False):
    """The direct kernel of kernels_cl/conv_direct.cl that can run this
    conv, or None: constant weights, one group, no dilation, a spatial
    kernel, stride <= 4, fp32 storage.  conv_direct for few input channels
    (stems such as ResNet's 7x7/2 on RGB, whose im2col copy is 7.4 MB per
    image for a K of only 147: 1.1 ms against 1.9), conv_oc for more (and
    at least 16 output channels) on a CPU device with 16-wide vectors
    (AVX-512: ResNet-18's strided convs 4-12% faster than im2col + GEMM, its
    7x7-map convs within 10% of F(2x2) either way with 9.4 instead of 16.8 MB
    of weights each; where PoCL 3.0 reports 8-wide vectors on the same CPU
    they took 12 ms against 6 for F(2x2)); any_device, or the policy's
    conv_algorithm "direct": on any device, as where `clnet tune` measured
    it faster)."""
    (kh, kw, sy, sx), (_, _, dy, dx) = geo
    N, C, H, W, M, OH, OW = dims
    if not (isinstance(weights, np.ndarray) and group == 1 and (dy, dx) == (1, 1)
            and kh * kw > 1 and max(sy, sx) <= 4 and not ctx.store_half
            and not ctx.weight_int8):
        return None
    if C <= DIRECT_MAX_C:
        return "conv_direct" if M >= direct_tile(ctx.policy)[0] else None
    if any_device or ctx.policy.forced("conv_algorithm") == "direct":
        return "conv_oc"
    return "conv_oc" if ctx.policy.wide_cpu and M >= 16 else None


def direct_tile(policy) -> tuple:
    """conv_direct's (TM, RY, TN) under this kernel policy (DIRECT_TILE)."""
    return DIRECT_TILE[policy.direct_tile_width]


def _direct_conv(ctx, node, kernel, x, out, weights, bias, residual, dims, geo):
    (kh, kw, sy, sx), (pad_y, pad_x, _, _) = geo
    N, C, H, W, M, OH, OW = dims
    defines = {"KH": kh, "KW": kw, "SY": sy, "SX": sx}
    if kernel == "conv_direct":
        tm, ry, tn = direct_tile(ctx.policy)
        tn = tn if OW > 8 else 8
        defines.update(TM=tm, TN=tn, RY=ry)
        blocks = -(-OW // tn)
        cols = blocks * tn + (kw - 1) // sx
        wp = pack_a(weights.reshape(1, M, -1), tm)
        groups = -(-OH // ry)
        grid, xgeo = (groups * blocks, -(-M // tm), N), (groups, blocks)
    else:
        vw = ctx.policy.vector_width
        op_, ov = DIRECT_OC[vw]
        blocks = -(-OW // op_)
        # pixel blocks per work-item (see conv_direct.cl), fewer where the
        # grid would leave compute units without four work-items each
        opb, oc_blocks = min(OC_BLOCKS, OH * blocks), -(-M // (ov * vw)) * N
        while opb > 1 and -(-OH * blocks // opb) * oc_blocks < 4 * ctx.dev.compute_units:
            opb //= 2
        defines.update(OP=op_, OV=ov, OVW=vw, OPB=OC_BLOCKS, OCC=OC_SLICE, OC=True)
        wp = pack_b(weights.reshape(M, -1).T, ov * vw)[0]     # [M / (OV OVW)][K][OV OVW]
        wp = ctx.weight(wp, (node.inputs[1].name, kernel, *sorted(defines.items())))
        # the input read in place: its width, left padding and the blocks of
        # a row are compiled in (see conv_direct.cl)
        defines.update(W_IN=W, PAD_L=pad_x, OW_C=OW, BLOCKS=blocks)
        if blocks > 2 and not (op_ * sx - pad_x >= 0
                               and ((blocks - 1) * op_ - 1) * sx + kw - 1 - pad_x < W):
            defines["INNER_CHECKED"] = True   # the blocks between the edges reach padding
        ctx.launch("conv_direct", (-(-OH * blocks // opb), -(-M // (ov * vw)), N),
                   [x, wp, out, _bias_arg(ctx, node, bias), residual, int_vec((C, M, OH, OW)),
                    int_vec((H, pad_y, opb))] + list(_conv_epilogue(node, bias, residual)),
                   defines, entry=kernel, lsize=(1, 1, 1))
        return
    rows = (OH - 1) * sy + kh
    xp = ctx.scratch(N * C * sx * rows * cols * ctx.itemsize(x))
    # the padded copy: a program of its own per stride, shared by every conv
    ctx.launch("conv_direct", (-(-rows // PHASE_ROWS), N * C),
               [x, xp, int_vec((H, W, rows, cols)), int_vec((pad_y, pad_x))],
               {"SX": sx, "PHASES_ONLY": True, "PHASE_ROWS": PHASE_ROWS}, entry="conv_phases",
               lsize=(1, 1))
    wp = ctx.weight(wp, (node.inputs[1].name, kernel, *sorted(defines.items())))
    ctx.launch("conv_direct", grid,
               [xp, wp, out, _bias_arg(ctx, node, bias), residual, int_vec((C, M, OH, OW)),
                int_vec((rows, cols) + xgeo)] + list(_conv_epilogue(node, bias, residual)),
               defines, entry=kernel, lsize=(1, 1, 1))


def _bias_arg(ctx, node, bias):
    if bias is not None and not isinstance(bias, Value):
        return ctx.weight(bias, (node.inputs[2].name, "bias"))
    return bias


def _conv_epilogue(node, bias, residual) -> tuple:
    return epilogue_args(fused_act(node), "row" if bias is not None else None,
                         residual is not None)


def _depthwise(ctx, node, x, out, weights, bias, dims, geometry):
    N, C, H, W, M, OH, OW = dims
    kern, pad_dil = geometry
    kh, kw, sx = (int(kern[f]) for f in ("s0", "s1", "s3"))
    w_arg = weights if isinstance(weights, Value) else \
        ctx.weight(weights.reshape(M, -1), (node.inputs[1].name, "dw"))
    defines = {"KH": kh, "KW": kw, **act_defines(node)}
    b_arg = None
    if bias is not None:
        b_arg = bias if isinstance(bias, Value) else ctx.weight(bias, (node.inputs[2].name, "bias"))
        defines["HAS_BIAS"] = True
    args = [x, w_arg, b_arg, out] + [np.int32(v) for v in (C, H, W, M, OH, OW)] \
        + list(geometry) + [np.int32(N * C * H * W)]
    per_core = 16 * max(1, ctx.dev.compute_units)     # work-items wanted on a CPU
    if _plane_depthwise(ctx, dims, geometry, kh, kw):
        # whole small planes in vectors of 16 (depthwise.cl depthwise_plane),
        # each work-item running its share of the channels
        per_item = max(1, N * M // per_core)
        # (one PLANE_VECS for every plane size: one program, not one per map
        # size, to compile at the first run; the masks use only nvec rows)
        defines.update(PLANE=True, PLANE_VECS=PLANE_VECS)
        ctx.launch("depthwise", (-(-N * M // per_item),), args + [np.int32(per_item)],
                   defines, entry="depthwise_plane", lsize=(1,))
        return
    wx = 16 if sx <= 2 and ctx.policy.vector_width == 16 and OW >= 16 \
        else 8 if sx <= 2 else 4
    defines.update(SX=sx, DX=int(pad_dil["s3"]), WX=wx)
    # rows per work-item on a CPU: as many as leave ~16 work-items per core
    # (MobileNetV2's depthwise convs 3.44 -> 2.89 ms in all); one on a GPU.
    # One work-item per group on a CPU: PoCL would otherwise loop over the
    # already vectorised work-items and re-vectorise them (10-20% slower).
    if ctx.policy.is_cpu:
        rows, lsize = max(1, min(OH, N * M * OH // per_core)), (1, 1)
    else:
        rows, lsize = 1, None
    ctx.launch("depthwise", (-(-OH // rows), N * M), args + [np.int32(rows)], defines,
               lsize=lsize)


PLANE_VECS = 49          # depthwise_plane: planes of up to 28 x 28 outputs


def _plane_depthwise(ctx, dims, geometry, kh, kw) -> bool:
    """Whether depthwise_plane runs this depthwise conv: a CPU, fp32
    storage, stride 1, no dilation, output rows as wide as the input's, a
    plane of 16 to 16 * PLANE_VECS outputs, at most 5x5 taps.  (It was kept
    to CPUs with 16-wide vectors until Zen 3 (AVX2) measured it: MobileNetV2's
    14x14 and 7x7 depthwise convs 0.08 -> 0.045 and 0.078 -> 0.035 ms, its
    kernels 8.40 -> 7.88 ms, on PoCL 3.1; PoCL 3.0 and Mesa's rusticl pass the
    plane tests there too.)"""
    N, C, H, W, M, OH, OW = dims
    kern, pad_dil = geometry
    unit = all(int(kern[f]) == 1 for f in ("s2", "s3")) and \
        all(int(pad_dil[f]) == 1 for f in ("s2", "s3"))
    return (ctx.policy.is_cpu and not ctx.store_half
            and unit and OW == W and 16 <= OH * OW <= 16 * PLANE_VECS and kh * kw <= 25)


def _unit_stride_no_pad(geometry) -> bool:
    kern, pad_dil = geometry
    return all(int(kern[f]) == 1 for f in ("s2", "s3")) and \
        all(int(pad_dil[f]) == 0 for f in ("s0", "s1"))


def _im2col_gemm(ctx, node, x, out, weights, bias, residual, group, dims, geometry, khw):
    N, C, H, W, M, OH, OW = dims
    Cg, Mg = C // group, M // group
    K, P = Cg * khw, OH * OW
    kind = "conv_fp16" if ctx.store_half else "conv"
    p = ctx.policy.gemm_params(Mg, P, K, kind)
    pointwise = khw == 1 and (OH, OW) == (H, W) and P >= p["TN"] \
        and _unit_stride_no_pad(geometry) and ctx.policy.conv_in_place
    if pointwise and not isinstance(weights, Value) \
            and ctx.policy.small_n_tile(p, Mg, P, K, kind):
        # (VW 16 comes here only where the policy forces these tiles)
        p.update(TM=12, TN=8, VW=min(p["VW"], 8))
    tm, tn = p["TM"], p["TN"]
    if isinstance(weights, Value):  # run-time weights: row-major A, [G][Mg][K]
        a_arg, a_packed, lda, za = weights, False, K, (1, group, Mg * K, 0)
    else:
        ap = pack_a(weights.reshape(group, Mg, K), tm)
        a_arg = ctx.weight(ap, (node.inputs[1].name, "conv_a", tm))
        a_packed, lda, za = True, 0, (1, group, ap.shape[1] * K * tm, 0)
    b_arg = bias
    if bias is not None and not isinstance(bias, Value):
        b_arg = ctx.weight(bias, (node.inputs[2].name, "bias"))
    if pointwise:
        # 1x1 conv: B is the input itself, [image * group][Cg][H * W] row-major,
        # tiles in plain order (a row of weights stays cached while the pixels
        # stream past it): MobileNetV2's 1x1 convs 3-12% faster than grouped.
        # Where the input passes half a core's L2 (PW_B_SHARE), down the rows
        # of tiles first, so that it streams once instead of once per row of
        # tiles: MobileNetV2's projections at 56 x 56 0.31 -> 0.15 and 0.46 ->
        # 0.22 ms, its GEMMs 6.59 -> 6.18 and 5.76 -> 5.13 ms (AVX-512 Xeon,
        # 2 MB L2: the expansions, whose inputs fit in it, took twice as long
        # this way); Zen 3 (512 KB L2): MobileNetV2's kernels 8.45 -> 8.24 ms
        # against a fixed 1 MB threshold
        p = {k: v for k, v in p.items() if k != "GROUP_M"}
        if -(-Mg // tm) > 1 and K * P * ctx.itemsize(x) > PW_B_SHARE * ctx.dev.cache_per_core:
            p["M_FIRST"] = True
        emit_gemm(ctx, out, a_arg, x, Mg, P, K, N * group, a_packed=a_packed, params=p,
                  za=za, lda=lda, zb=(1, N * group, K * P, 0),
                  zc=(Mg * P, 0, P), bias=b_arg, bias_mode="row", bias_zstride=Mg,
                  residual=residual, act=fused_act(node), ldb=P)
        return
    panels = -(-P // tn)
    per_image = group * panels * K * tn * ctx.itemsize(x)
    chunk = max(1, min(N, SCRATCH_LIMIT // max(per_image, 1)))
    for n0 in range(0, N, chunk):
        n = min(chunk, N - n0)
        Z = n * group
        scratch = ctx.scratch(Z * panels * K * tn * ctx.itemsize(x))
        ctx.launch("pack", (panels, K, Z),
                   [x, scratch, np.int32(n0 * C * H * W), np.int32(Cg), np.int32(H), np.int32(W),
                    np.int32(OH), np.int32(OW), np.int32(K), np.int32(panels)] + list(geometry),
                   {"TN": tn}, entry="im2col", lsize=(1, _divisor_at_most(K, 64), 1))
        emit_gemm(ctx, out, a_arg, scratch, Mg, P, K, Z, a_packed=a_packed, params=p,
                  za=za, lda=lda, zb=(1, Z, panels * K * tn, 0),
                  zc=(Mg * P, n0 * M * P, P), bias=b_arg, bias_mode="row", bias_zstride=Mg,
                  residual=residual, act=fused_act(node))
