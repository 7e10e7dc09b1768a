"""The emitters of kernels_cl/elementwise.cl that every op family uses:
a strided map of up to three operands (arithmetic or raw bit copies), with
broadcasting (emit_map) and any dtype (emit_typed)."""
from __future__ import annotations

import re

import numpy as np
from pyopencl import cltypes

from ..errors import UnsupportedOpError
from ._util import (C_TYPES, RAW_TYPES, broadcast_strides, c_type, contiguous_strides,
                    float_literal, int_vec, merge_dims)


MAX_RANK = 8


_SAFE_EXPR = re.compile(r"^[A-Za-z0-9_.+\-*/%<>=!?:&|^(),~]+$")


def _int8(values) -> np.ndarray:
    return int_vec(values, 8)


COPY_VEC = 8   # elements per work-item of a raw copy with contiguous inner runs


def emit_strided(ctx, out, shape, out_strides, out_base, operands, expr="a",
                 params=(), raw=False, compute=None, types=None,
                 extra_defines=None) -> None:
    """One launch of the elementwise kernel.

    operands: up to three (value, strides, base) triples read at
    ``base + sum(coord * stride)``; the output is written likewise.
    raw: copy bits (any dtype) instead of doing float arithmetic.
    types: optional C types per operand name ('OUT', 'A', 'B', 'C') for
    non-float operands; compute: the compute type (default float).
    extra_defines: more -D macros for the launch (e.g. MINIFLOAT).
    """
    total = int(np.prod(shape, dtype=np.int64))
    if total == 0:
        return
    if total >= 2 ** 31:
        raise UnsupportedOpError(f"{ctx.node.label()}: tensors of {total} elements exceed "
                                 f"32-bit indexing")
    stride_sets = [out_strides] + [s for _, s, _ in operands]
    mshape, mstrides = merge_dims(shape, stride_sets)
    if len(mshape) > MAX_RANK:
        raise UnsupportedOpError(f"{ctx.node.label()}: broadcasting over {len(mshape)} "
                                 f"non-mergeable dims (at most {MAX_RANK})")
    defines = {"NIN": len(operands), "RANK": len(mshape)}
    if raw:
        ctype = RAW_TYPES[ctx.itemsize(out)]
        defines.update(CT=ctype, OUT_RAW=True, OUT_T=ctype, A_RAW=True, A_T=ctype)
    else:
        clean = expr.replace(" ", "")
        if not _SAFE_EXPR.match(clean) or "--" in clean or "++" in clean:
            raise ValueError(f"unsafe kernel expression {expr!r}")
        defines["EXPR"] = f"({clean})"
        if compute:
            defines["CT"] = compute
        for name, ctype in (types or {}).items():
            defines[f"{name}_RAW"] = True
            defines[f"{name}_T"] = ctype
    for i, value in enumerate(params[:2]):
        defines[f"P{i}"] = float_literal(value)
    defines.update(extra_defines or {})
    pad = [(operands[0][0] if operands else out)] * (3 - len(operands))
    buffers = [v for v, _, _ in operands] + pad
    strides = list(mstrides[1:]) + [(0,) * len(mshape)] * (3 - len(operands))
    bases = [out_base] + [b for _, _, b in operands] + [0] * (3 - len(operands))
    args = [out] + buffers + [np.int32(total), _int8(mshape), _int8(mstrides[0])]
    args += [_int8(s) for s in strides] + [int_vec(bases)]
    items = total
    if raw and len(operands) == 1 and mshape[-1] % COPY_VEC == 0 \
            and mstrides[0][-1] == 1 and mstrides[1][-1] == 1:
        defines["VEC"] = COPY_VEC     # contiguous runs copied a vector at a time
        reps, most = 1, ctx.policy.copy_reps
        while reps * 2 <= most and mshape[-1] % (COPY_VEC * reps * 2) == 0:
            reps *= 2
        if reps > 1:
            defines["VREPS"] = reps
        items = total // (COPY_VEC * reps)
    elif raw and len(operands) == 1:
        axis = _tile_axis(mshape, mstrides)
        if axis is not None:          # a transpose: 8 x 8 tiles (elementwise.cl copy_tiles)
            scale = [COPY_TILE if d in (axis, len(mshape) - 1) else 1
                     for d in range(len(mshape))]
            grid = tuple(n // k for n, k in zip(mshape, scale))
            tiles = total // COPY_TILE ** 2
            ctx.launch("elementwise", (tiles,),
                       [out, operands[0][0], np.int32(tiles), _int8(grid)]
                       + [_int8([st * k for st, k in zip(mstrides[j], scale)]) for j in (0, 1)]
                       + [cltypes.make_int2(out_base, operands[0][2]),
                          cltypes.make_int2(mstrides[0][axis], mstrides[1][-1])],
                       dict(defines, TILE=COPY_TILE), entry="copy_tiles")
            return
        inner = mshape[-1]
        rows = total // inner
        runs = -(-inner // COPY_ROW_RUN)
        outer = list(mshape[:-1])
        ctx.launch("elementwise", (rows * runs,),
                   [out, operands[0][0], np.int32(rows), np.int32(inner), _int8(outer),
                    _int8(mstrides[0][:-1]), _int8(mstrides[1][:-1]),
                    cltypes.make_int2(out_base, operands[0][2]),
                    cltypes.make_int2(mstrides[0][-1], mstrides[1][-1])],
                   dict(defines, ROWS=COPY_ROW_RUN), entry="copy_rows")
        return
    ctx.launch("elementwise", (items,), args, defines)


COPY_TILE = 8  # side of the tiles of a raw copy that transposes (copy_tiles)
COPY_ROW_RUN = 64   # elements of a row one work-item of copy_rows moves


def _tile_axis(mshape, mstrides):
    """The dim along which the input of a raw copy is contiguous where the
    output is contiguous along its innermost dim and the input is not, both
    a multiple of COPY_TILE long (then copy_tiles moves 8 x 8 tiles), or None."""
    out_s, in_s = mstrides
    if len(mshape) < 2 or out_s[-1] != 1 or in_s[-1] == 1 or mshape[-1] % COPY_TILE:
        return None
    for d in range(len(mshape) - 1):
        if in_s[d] == 1 and mshape[d] % COPY_TILE == 0:
            return d
    return None


def emit_map(ctx, out, inputs, expr, params=(), out_dtype=None, types=None, compute=None,
             extra_defines=None):
    """out = expr(inputs...) with ONNX multidirectional broadcasting."""
    shapes = [ctx.shape(v) for v in inputs]
    out_shape = tuple(np.broadcast_shapes(*shapes))
    ctx.output(out, out_shape, out_dtype or inputs[0].dtype)
    operands = [(v, broadcast_strides(s, out_shape), 0) for v, s in zip(inputs, shapes)]
    emit_strided(ctx, out, out_shape, contiguous_strides(out_shape), 0, operands, expr,
                 params, types=types, compute=compute, extra_defines=extra_defines)


def emit_typed(ctx, out, inputs, fexpr, iexpr=None, params=(), out_dtype=None,
               compute_from: int = 0, float_compute: bool = False) -> None:
    """emit_map for tensors of any dtype.

    Float operands (any storage) make the compute type float and use fexpr;
    integer/bool operands are read as their C type, and when no operand is
    float the expression is iexpr computed in the C type of
    inputs[compute_from].  float_compute: compute fexpr in float anyway.
    """
    node = ctx.node
    out_dtype = np.dtype(out_dtype if out_dtype is not None else inputs[compute_from].dtype)
    ctypes = [c_type(ctx, v) for v in inputs]
    types = {name: t for name, t in zip("ABC", ctypes) if t}
    if any(t is None for t in ctypes) or float_compute:
        compute, expr = "float", fexpr
    elif iexpr is None:
        raise UnsupportedOpError(f"{node.label()}: {node.op} (opset {ctx.opset}) on "
                                 f"{inputs[compute_from].dtype} tensors is not supported")
    else:
        compute, expr = ctypes[compute_from], iexpr
    if out_dtype.kind != "f":
        if out_dtype not in C_TYPES:
            raise UnsupportedOpError(f"{node.label()}: {node.op} producing {out_dtype} "
                                     f"tensors is not supported")
        types["OUT"] = C_TYPES[out_dtype]
    emit_map(ctx, out, inputs, expr, params, out_dtype, types, compute)

