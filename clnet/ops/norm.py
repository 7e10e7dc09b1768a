"""Normalisation ops: LayerNormalization, RMSNormalization,
InstanceNormalization and GroupNormalization on kernels_cl/norm.cl's
`rownorm` (a work-group per row) or `rownorm_items` (a work-item per row),
as ``ctx.policy`` chooses; LRN on its `lrn`; LpNormalization and
MeanVarianceNormalization composed from reductions and elementwise maps.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ..graph import Value
from ._util import broadcast_strides, contiguous_strides, int_vec, norm_axis, require_float
from .reduce import emit_reduce
from .registry import op
from .strided import emit_map, emit_strided


def _expanded(ctx, node, value: Value, shape: tuple, what: str) -> Value:
    """`value` broadcast (unidirectionally) to `shape`, materialised if needed."""
    have = ctx.shape(value)
    if have == tuple(shape):
        return value
    np.broadcast_shapes(have, shape)  # raises ValueError when incompatible
    if value.is_const:
        data = np.broadcast_to(np.asarray(value.data, np.float32), shape)
        return ctx.weight(np.ascontiguousarray(data), (value.name, what, tuple(shape)))
    full = Value(f"{node.outputs[0].name}#{what}")
    ctx.output(full, shape, value.dtype)
    emit_strided(ctx, full, shape, contiguous_strides(shape), 0,
                 [(value, broadcast_strides(have, shape), 0)], "a")
    return full


def _optional(node, index: int):
    value = node.input(index)
    return value if value is not None and value.name else None


def emit_rownorm(ctx, node, x, scale, bias, rows: int, length: int, eps: float,
                 param_map: tuple, rms: bool = False, stats=(None, None)) -> None:
    """y = normalise each of `rows` contiguous rows of `length` elements."""
    out = node.outputs[0]
    items = ctx.policy.norm_row_items()
    wgs = ctx.policy.norm_wgs()
    defines = {"ROW_ITEM": True} if items else {"WGS": wgs}
    if items and param_map[2] == 1 and param_map[3] >= length:
        defines["PARAM_CONTIG"] = True     # LayerNorm: scale[j], bias[j]
    if rms:
        defines["RMS"] = True
    if bias is not None:
        defines["HAS_BIAS"] = True
    mean_out, inv_out = stats
    if mean_out is not None or inv_out is not None:
        defines["STATS"] = True
    placeholder = x
    args = [x, scale, bias if bias is not None else placeholder, out,
            mean_out if mean_out is not None else (inv_out or placeholder),
            inv_out if inv_out is not None else (mean_out or placeholder),
            np.int32(length), np.float32(eps), int_vec(param_map)]
    if not (rows and length):
        return
    if items:
        ctx.launch("norm", (rows,), args + [np.int32(rows)], defines, entry="rownorm_items")
    else:
        ctx.launch("norm", (rows * wgs,), args, defines, entry="rownorm", lsize=(wgs,))


def _stat_output(ctx, node, index: int, shape) -> "Value | None":
    if len(node.outputs) <= index or not node.outputs[index].name:
        return None
    return ctx.output(node.outputs[index], shape, np.float32)


def _layer_norm(ctx, node, rms: bool) -> None:
    require_float(ctx, node)
    x = node.inputs[0]
    shape = ctx.shape(x)
    axis = norm_axis(node.attrs.get("axis", -1), len(shape), node)
    eps = node.attrs.get("epsilon", 1e-5)
    rows = int(np.prod(shape[:axis], dtype=np.int64))
    length = int(np.prod(shape[axis:], dtype=np.int64))
    ctx.output(node.outputs[0], shape, x.dtype)
    scale = _expanded(ctx, node, node.inputs[1], shape[axis:], "scale")
    bias = None
    if not rms and _optional(node, 2) is not None:
        bias = _expanded(ctx, node, node.inputs[2], shape[axis:], "bias")
    stat_shape = tuple(shape[:axis]) + (1,) * (len(shape) - axis)
    stats = (None, None) if rms else (_stat_output(ctx, node, 1, stat_shape),
                                      _stat_output(ctx, node, 2, stat_shape))
    emit_rownorm(ctx, node, x, scale, bias, rows, length, eps, (1, 0, 1, max(length, 1)),
                 rms=rms, stats=stats)


@op("LayerNormalization")
def layer_norm(ctx, node):
    _layer_norm(ctx, node, rms=False)


@op("RMSNormalization")
def rms_norm(ctx, node):
    _layer_norm(ctx, node, rms=True)


@op("InstanceNormalization")
def instance_norm(ctx, node, epsilon: float = 1e-5):
    require_float(ctx, node)
    x, scale, bias = node.inputs[:3]
    shape = ctx.shape(x)
    n, c = shape[0], shape[1]
    length = int(np.prod(shape[2:], dtype=np.int64))
    ctx.output(node.outputs[0], shape, x.dtype)
    emit_rownorm(ctx, node, x, scale, bias, n * c, length,
                 node.attrs.get("epsilon", epsilon), (c, 1, max(length, 1), 1))


@op("GroupNormalization")
def group_norm(ctx, node, epsilon: float = 1e-5):
    require_float(ctx, node)
    x, scale, bias = node.inputs[:3]
    shape = ctx.shape(x)
    groups = int(node.attrs["num_groups"])
    n, c = shape[0], shape[1]
    if c % groups:
        raise UnsupportedOpError(f"{node.label()}: {c} channels do not split into {groups} "
                                 f"groups")
    spatial = int(np.prod(shape[2:], dtype=np.int64))
    per_group = c // groups
    length = per_group * spatial
    ctx.output(node.outputs[0], shape, x.dtype)
    if ctx.shape(scale)[0] == c:       # opset 21: per-channel scale and bias
        param_map = (groups, per_group, max(spatial, 1), per_group)
    else:                               # opset 18: per-group scale and bias
        param_map = (groups, 1, max(length, 1), 1)
    emit_rownorm(ctx, node, x, scale, bias, n * groups, length,
                 node.attrs.get("epsilon", epsilon), param_map)


@op("LRN")
def lrn(ctx, node, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0):
    require_float(ctx, node)
    x = node.inputs[0]
    shape = ctx.shape(x)
    size = int(node.attrs["size"])
    out = ctx.output(node.outputs[0], shape, x.dtype)
    total = int(np.prod(shape, dtype=np.int64))
    spatial = int(np.prod(shape[2:], dtype=np.int64))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    args = [x, out, np.int32(total), np.int32(shape[1]), np.int32(spatial), np.int32(before),
            np.int32(after), np.float32(node.attrs.get("alpha", alpha) / size),
            np.float32(node.attrs.get("beta", beta)), np.float32(node.attrs.get("bias", bias))]
    ctx.launch("norm", (total,), args, entry="lrn")


@op("LpNormalization")
def lp_norm(ctx, node, axis: int = -1, p: int = 2):
    require_float(ctx, node)
    x = node.inputs[0]
    shape = ctx.shape(x)
    axis = norm_axis(node.attrs.get("axis", axis), len(shape), node)
    p = int(node.attrs.get("p", p))
    if p not in (1, 2):
        raise UnsupportedOpError(f"{node.label()}: LpNormalization with p={p} (only 1 or 2)")
    norm = Value(f"{node.outputs[0].name}#norm")
    emit_reduce(ctx, norm, x, [axis], True, "ReduceL2" if p == 2 else "ReduceL1")
    emit_map(ctx, node.outputs[0], [x, norm], "b==0.0f?0.0f:a/b")


@op("MeanVarianceNormalization")
def mean_variance_norm(ctx, node, axes=(0, 2, 3)):
    """(x - mean) / (sqrt(E[x^2] - mean^2) + 1e-9) over `axes`, as ONNX defines it."""
    require_float(ctx, node)
    x = node.inputs[0]
    shape = ctx.shape(x)
    axes = sorted({norm_axis(int(a), len(shape), node) for a in node.attrs.get("axes", axes)})
    name = node.outputs[0].name
    mean, square, mean_sq = (Value(f"{name}#{w}") for w in ("mean", "square", "meansq"))
    emit_reduce(ctx, mean, x, axes, True, "ReduceMean")
    emit_map(ctx, square, [x], "a*a")
    emit_reduce(ctx, mean_sq, square, axes, True, "ReduceMean")
    emit_map(ctx, node.outputs[0], [x, mean, mean_sq],
             "(a-b)/(sqrt(fmax(c-b*b,0.0f))+1e-9f)")
