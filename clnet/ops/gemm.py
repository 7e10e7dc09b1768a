"""MatMul and Gemm on kernels_cl/gemm.cl (+ pack.cl), and the GEMM emitter
that the convolutions (clnet/ops/conv/) and other ops build on.

Constant operands (weights) are packed once at load into the panel layouts
the GEMM streams; run-time ones are read in place or packed by a kernel.
A fused activation, bias, residual Add or scale (the node's ``epilogue``,
set by passes/fusion.py) runs in the GEMM's epilogue.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from pyopencl import cltypes

from ..errors import UnsupportedOpError
from ..graph import EPILOGUE_ACTIVATIONS, Node
from ._util import broadcast_strides, contiguous_strides, float_literal, int_vec, require_float
from .strided import emit_map, emit_strided
from .registry import op

ACT_MACROS = {name: f"ACT_{name.upper()}" for name in EPILOGUE_ACTIVATIONS}
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


EPI_BIAS_ROW, EPI_BIAS_COL, EPI_RESIDUAL = 1, 2, 4


def epilogue_args(act=None, bias_mode=None, residual=False, alpha=1.0) -> tuple:
    """(epi flags, float4 alpha/p0/p1) arguments of gemm.cl's epilogue."""
    epi = {"row": EPI_BIAS_ROW, "col": EPI_BIAS_COL, None: 0}[bias_mode]
    if residual:
        epi |= EPI_RESIDUAL
    p0 = p1 = 0.0
    if act:
        epi |= EPILOGUE_ACTIVATIONS[act[0]] << 8
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
    require_float(ctx, node, a, b)
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
    bias_buf = None if bias is None else \
        _bias_col(ctx, bias, ctx.policy.gemm_params(M, N, K, _kind(ctx, a))["TN"], N)
    gemm_general(ctx, node, out, a, a2, b, b2, full, M, N, K, alpha=alpha, bias=bias_buf,
                 bias_mode="col" if bias is not None else None, residual=residual)


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
                 bias_mode=None, residual=None, b_strides=None, b_base=0, a_view=None,
                 c_view=None):
    """C[full][M][N] = A[a2] @ B[b2] with batch broadcasting.

    a may be a Value, a constant view, or a Scratch holding a row-major A;
    b_strides: element strides (batch, k, n) of a run-time B if not contiguous,
    b_base its first element; a_view: (batch stride, row stride, base) of a
    run-time A read in place (rows contiguous); c_view: (batch stride, row
    stride) C is written with (ops/gemm_views.py: transposes read or written
    by the GEMM itself).
    """
    p = ctx.policy.gemm_params(M, N, K, _kind(ctx, a))
    if c_view is not None:
        p = {k: v for k, v in p.items() if k != "KSPLIT"}   # split-K sums a contiguous C
    tm, tn = p["TM"], p["TN"]
    b_batch = int(np.prod(b2[:-2], dtype=np.int64))
    a_batch = int(np.prod(a2[:-2], dtype=np.int64))
    if b_batch == 1 and not _is_const(a) and a_view is None and c_view is None:
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
            b_arg, b_panels = emit_pack_b(ctx, b, K, N, b_batch, tuple(b_strides) + (b_base,),
                                          tn)
            b_base = 0
    b_zstride = b_panels * K * tn if not ldb else b_strides[0]
    if _is_const(a):
        ap = pack_a(np.asarray(a.data, np.float32).reshape(a_batch, M, K) * alpha_k, tm)
        a_arg = ctx.weight(ap, (a.name, "pack_a", tm, alpha_k))
        a_zstride, a_packed, alpha_k = ap.shape[1] * K * tm, True, 1.0
    else:
        a_arg, a_zstride, a_packed = a, M * K, False
    lda, a_base = K, 0
    if a_view is not None:
        a_zstride, lda, a_base = a_view
    a_count = a_batch * M * K
    if za is None:
        maps = [batch_map(a2[:-2], full), batch_map(b2[:-2], full)]
        if maps[0] is None:
            a_arg = _materialize(ctx, a, a2, full + (M, K))
            maps[0], a_count = (1, Z), Z * M * K
        if maps[1] is None:
            raise UnsupportedOpError(f"{node.label()}: MatMul batch broadcast {a2} x {b2}")
        za = (maps[0][0], maps[0][1], a_zstride, a_base)
        zb = (maps[1][0], maps[1][1], b_zstride, b_base if ldb else 0)
    big = ctx.store_half and Mz * N * K * Z >= HALF_A_CONVERT_MIN
    a_float = big and not a_packed and a_view is None
    if a_float:   # one pass half -> float, so that the GEMM reads A as broadcasts
        half_a, a_arg = a_arg, ctx.scratch(a_count * 4)
        ctx.launch("quant", (a_count,), [half_a, a_arg, np.int32(a_count)], {"IN_HALF": True},
                   entry="convert_storage")
    # B too, where enough rows of A reuse it to repay the pass (packed
    # panels, or a contiguous row-major B; see docs/BENCHMARKS.md)
    b_count = b_batch * (b_panels * K * tn if not ldb else K * N)
    b_float = big and Mz >= HALF_B_CONVERT_ROWS and not b_base and (
        not ldb or tuple(b_strides) == (K * N, N, 1))
    if b_float:
        half_b, b_arg = b_arg, ctx.scratch(b_count * 4)
        ctx.launch("quant", (b_count,), [half_b, b_arg, np.int32(b_count)], {"IN_HALF": True},
                   entry="convert_storage")
    zc = (Mz * N, 0, N) if c_view is None else (c_view[0], 0, c_view[1])
    emit_gemm(ctx, out, a_arg, b_arg, Mz, N, K, Z, a_packed=a_packed, params=p, za=za,
              zb=zb, zc=zc, lda=lda, bias=bias, bias_mode=bias_mode,
              residual=residual, act=fused_act(node), alpha=alpha_k, ldb=ldb,
              a_float=a_float, b_float=b_float)


def _kind(ctx, a) -> str:
    """The tuning table of a GEMM: packed weights A ("conv") or not, per storage."""
    kind = "conv" if _is_const(a) else "gemm"
    return kind + "_fp16" if ctx.store_half else kind



@op("Gemm")
def gemm(ctx, node):
    a, b = node.inputs[0], node.inputs[1]
    c = node.input(2)
    require_float(ctx, node, a, b)
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
