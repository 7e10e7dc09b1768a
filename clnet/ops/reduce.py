"""Reductions, ArgMax/ArgMin, CumSum/CumProd and TopK on kernels_cl/reduce.cl.

Reduce* ops take their axes from an attribute (older opsets) or from a
constant second input (ReduceSum from opset 13, the others from 18), with
keepdims and noop_with_empty_axes.  Float tensors accumulate in float;
integer and bool tensors in their own C type.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ._util import C_TYPES, const_input, contiguous_strides, int_vec, merge_dims, norm_axis
from .registry import op
from .strided import emit_typed

MAX_RANK = 8
GROUP_MIN_ROW = 256        # rows at least this long get a work-group each
GROUP_MAX_OUTPUTS = 1 << 16
WGS = 64

# op: (INIT, PRE(v), COMBINE(acc, v), POST(acc, n)); "LOWEST"/"HIGHEST" are
# replaced by the accumulation type's extremes.
REDUCERS = {
    "ReduceSum": ("0", "(v)", "((acc)+(v))", "(acc)"),
    "ReduceMean": ("0", "(v)", "((acc)+(v))", "((acc)/(CT)(n))"),
    "ReduceMax": ("LOWEST", "(v)", "FMAX((acc),(v))", "(acc)"),   # NaN propagates
    "ReduceMin": ("HIGHEST", "(v)", "FMIN((acc),(v))", "(acc)"),
    "ReduceProd": ("1", "(v)", "((acc)*(v))", "(acc)"),
    "ReduceL1": ("0", "((v)<0?-(v):(v))", "((acc)+(v))", "(acc)"),
    "ReduceL2": ("0", "((v)*(v))", "((acc)+(v))", "sqrt((float)(acc))"),
    "ReduceSumSquare": ("0", "((v)*(v))", "((acc)+(v))", "(acc)"),
    "ReduceLogSum": ("0", "(v)", "((acc)+(v))", "log((float)(acc))"),
    "ReduceLogSumExp": ("0", "(v)", "((acc)+(v))", "(acc)"),
}
AXES_INPUT_SINCE = {"ReduceSum": 13}


def _extreme(ctype: str, dtype, highest: bool) -> str:
    if ctype == "float":
        return "INFINITY" if highest else "(-INFINITY)"
    if np.dtype(dtype) == np.bool_:
        return "1" if highest else "0"
    info = np.iinfo(dtype)
    value = int(info.max if highest else info.min)
    suffix = {8: "L", 4: "", 2: "", 1: ""}[np.dtype(dtype).itemsize]
    if np.dtype(dtype).kind == "u":
        suffix = "U" + suffix
    if value == np.iinfo(np.int64).min:
        return "(-9223372036854775807L-1L)"
    return f"(({ctype}){value}{suffix})"


def _use_group(policy, nout: int, length: int) -> bool:
    """A work-group per output for long rows, unless the policy keeps a
    work-item per output (CPUs with enough outputs to fill their cores)."""
    if length < GROUP_MIN_ROW or nout > GROUP_MAX_OUTPUTS:
        return False
    return not policy.reduce_items(nout)


def reduce_axes(ctx, node, rank: int):
    """The axes to reduce (sorted, non-negative), or None for 'no-op'."""
    if ctx.opset >= AXES_INPUT_SINCE.get(node.op, 18):
        axes = const_input(ctx, node, 1, "axes")
    else:
        axes = node.attrs.get("axes")
    if axes is None or len(np.asarray(axes).reshape(-1)) == 0:
        if node.attrs.get("noop_with_empty_axes", 0):
            return None
        return list(range(rank))
    return sorted({norm_axis(int(a), rank, node) for a in np.asarray(axes).reshape(-1)})


def _types(ctx, x, out_dtype) -> tuple:
    """(compute type, defines for raw in/out storage)."""
    defines = {}
    ctype = "float"
    if x.dtype.kind != "f":
        ctype = C_TYPES.get(x.dtype)
        if ctype is None:
            raise UnsupportedOpError(f"{ctx.node.label()}: {ctx.node.op} on {x.dtype}")
        defines.update(IN_RAW=True, IN_T=ctype)
    if np.dtype(out_dtype).kind != "f":
        defines.update(OUT_RAW=True, OUT_T=C_TYPES[np.dtype(out_dtype)])
    defines["CT"] = ctype
    return ctype, defines


def emit_reduce(ctx, out, x, axes, keepdims: bool, name: str) -> None:
    """out = reduction `name` of x over `axes` (all of REDUCERS' ops)."""
    shape = ctx.shape(x)
    out_shape = tuple(1 if i in axes else d for i, d in enumerate(shape) if keepdims
                      or i not in axes)
    ctx.output(out, out_shape, x.dtype)
    strides = contiguous_strides(shape)
    kept = [(d, s) for i, (d, s) in enumerate(zip(shape, strides)) if i not in axes]
    red = [(d, s) for i, (d, s) in enumerate(zip(shape, strides)) if i in axes]
    kshape, (kstride,) = merge_dims([d for d, _ in kept], [[s for _, s in kept]])
    rshape, (rstride,) = merge_dims([d for d, _ in red], [[s for _, s in red]])
    if len(kshape) > MAX_RANK or len(rshape) > MAX_RANK:
        raise UnsupportedOpError(f"{ctx.node.label()}: more than {MAX_RANK} dims")
    nout = int(np.prod(out_shape, dtype=np.int64))
    length = int(np.prod([d for d, _ in red], dtype=np.int64))
    if length == 0:
        rshape, rstride = (1,), (0,)
    ctype, defines = _types(ctx, x, x.dtype)
    init, pre, combine, post = REDUCERS[name]
    if ctype != "float" and name in ("ReduceL2", "ReduceLogSum", "ReduceLogSumExp"):
        defines["CT"] = ctype = "float"
    init = {"LOWEST": _extreme(ctype, x.dtype, False),
            "HIGHEST": _extreme(ctype, x.dtype, True)}.get(init, init)
    if name == "ReduceLogSumExp":
        defines["LSE"] = True
    defines.update(INIT=f"(({ctype}){init})", KRANK=len(kshape), RRANK=len(rshape))
    defines["PRE(v)"] = pre
    defines["COMBINE(acc,v)"] = combine
    defines["POST(acc,n)"] = post
    args = [x, out, np.int32(nout), np.int32(length), int_vec(kshape, 8), int_vec(kstride, 8),
            int_vec(rshape, 8), int_vec(rstride, 8)]
    if _use_group(ctx.policy, nout, length):
        defines.update(GROUP=True, WGS=WGS)
        ctx.launch("reduce", (nout * WGS,), args, defines, lsize=(WGS,))
    else:
        ctx.launch("reduce", (nout,), args, defines)


def _reduce(ctx, node) -> None:
    x = node.inputs[0]
    axes = reduce_axes(ctx, node, len(ctx.shape(x)))
    if axes is None:
        emit_typed(ctx, node.outputs[0], [x], "a", "a")
        return
    emit_reduce(ctx, node.outputs[0], x, axes, bool(node.attrs.get("keepdims", 1)), node.op)


for _name in REDUCERS:
    op(_name, shape_inputs=(1,))(_reduce)   # axes (an input from opset 13/18)


def _rows(shape, axis: int) -> tuple:
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, shape[axis], inner


def _argreduce(ctx, node, smallest: bool) -> None:
    x = node.inputs[0]
    shape = ctx.shape(x)
    axis = norm_axis(node.attrs.get("axis", 0), len(shape), node)
    keep = node.attrs.get("keepdims", 1)
    out_shape = tuple(1 if i == axis else d for i, d in enumerate(shape) if keep or i != axis)
    out = ctx.output(node.outputs[0], out_shape, np.int64)
    if shape[axis] == 0:
        raise UnsupportedOpError(f"{node.label()}: {node.op} over an empty axis")
    outer, length, inner = _rows(shape, axis)
    _, defines = _types(ctx, x, np.float32)
    defines.pop("OUT_RAW", None)
    if smallest:
        defines["ARGMIN"] = True
    if node.attrs.get("select_last_index", 0):
        defines["LAST"] = True
    rows = outer * inner
    ctx.launch("reduce", (rows,), [x, out, np.int32(rows), np.int32(length), np.int32(inner)],
               defines, entry="argreduce")


@op("ArgMax")
def arg_max(ctx, node):
    _argreduce(ctx, node, smallest=False)


@op("ArgMin")
def arg_min(ctx, node):
    _argreduce(ctx, node, smallest=True)


@op("CumSum", "CumProd", shape_inputs=(1,))
def cum_sum(ctx, node):
    x = node.inputs[0]
    shape = ctx.shape(x)
    axis_data = const_input(ctx, node, 1, "axis")
    axis = norm_axis(int(np.asarray(axis_data).reshape(-1)[0]), len(shape), node)
    out = ctx.output(node.outputs[0], shape, x.dtype)
    outer, length, inner = _rows(shape, axis)
    _, defines = _types(ctx, x, x.dtype)
    if node.attrs.get("exclusive", 0):
        defines["EXCLUSIVE"] = True
    if node.attrs.get("reverse", 0):
        defines["REVERSE"] = True
    if node.op == "CumProd":
        defines["PROD"] = True
    rows = outer * inner
    ctx.launch("reduce", (rows,), [x, out, np.int32(rows), np.int32(length), np.int32(inner)],
               defines, entry="cumsum")


@op("TopK", shape_inputs=(1,))
def top_k(ctx, node):
    x = node.inputs[0]
    shape = ctx.shape(x)
    axis = norm_axis(node.attrs.get("axis", -1), len(shape), node)
    if ctx.opset >= 10:
        k = int(np.asarray(const_input(ctx, node, 1, "K")).reshape(-1)[0])
    else:
        k = int(node.attrs["k"])
    if not 0 <= k <= shape[axis]:
        raise UnsupportedOpError(f"{node.label()}: K={k} but axis {axis} has {shape[axis]} "
                                 f"elements")
    out_shape = tuple(k if i == axis else d for i, d in enumerate(shape))
    values = ctx.output(node.outputs[0], out_shape, x.dtype)
    indices = ctx.output(node.outputs[1], out_shape, np.int64)
    outer, length, inner = _rows(shape, axis)
    _, defines = _types(ctx, x, x.dtype)
    if not node.attrs.get("largest", 1):
        defines["SMALLEST"] = True
    rows = outer * inner
    ctx.launch("reduce", (rows,), [x, values, indices, np.int32(rows), np.int32(length),
                                   np.int32(inner), np.int32(k)], defines, entry="topk")
