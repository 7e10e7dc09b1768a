"""Shape and data-movement ops.

Views (Reshape, Flatten, Squeeze, Unsqueeze, Identity) alias their input's
memory and launch nothing.  Copies (Transpose, Slice, Concat, Expand, Tile,
Split, DepthToSpace, SpaceToDepth) are bit copies through the strided
elementwise kernel, for any dtype; Trilu and OneHot use kernels_cl/index.cl.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from ..errors import UnsupportedOpError
from ._util import (C_TYPES, RAW_TYPES, broadcast_strides, const_input, contiguous_strides,
                    norm_axis)
from .registry import op
from .strided import emit_strided


def shape_of(ctx, node, out_shape) -> None:
    x = node.inputs[0]
    ctx.alias(node.outputs[0], x, out_shape)


@op("Identity")
def identity(ctx, node):
    shape_of(ctx, node, ctx.shape(node.inputs[0]))


@op("Reshape", shape_inputs=(1,))
def reshape(ctx, node):
    shape_of(ctx, node, reshaped(ctx, node, ctx.shape(node.inputs[0])))


def reshaped(ctx, node, in_shape) -> list:
    """The output shape of Reshape `node` on an input of in_shape."""
    target = const_input(ctx, node, 1, "the target shape") if ctx.opset >= 5 \
        else np.asarray(node.attrs["shape"])
    allowzero = node.attrs.get("allowzero", 0)
    dims = [int(d) for d in target.reshape(-1)]
    out = []
    for i, d in enumerate(dims):
        out.append(in_shape[i] if d == 0 and not allowzero else d)
    if out.count(-1) > 1:
        raise ValueError("more than one -1 in the target shape")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        total = int(np.prod(in_shape, dtype=np.int64))
        if known == 0 or total % known:
            raise ValueError(f"cannot reshape {in_shape} to {dims}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != int(np.prod(in_shape, dtype=np.int64)):
        raise ValueError(f"cannot reshape {in_shape} to {dims}")
    return out


@op("Flatten")
def flatten(ctx, node):
    shape = ctx.shape(node.inputs[0])
    axis = node.attrs.get("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    shape_of(ctx, node, (int(np.prod(shape[:axis], dtype=np.int64)),
                         int(np.prod(shape[axis:], dtype=np.int64))))


def _axes(ctx, node, since_input: int):
    if ctx.opset >= since_input:
        axes = const_input(ctx, node, 1, "axes")
        return None if axes is None else [int(a) for a in axes.reshape(-1)]
    axes = node.attrs.get("axes")
    return None if axes is None else list(axes)


@op("Squeeze", shape_inputs=(1,))
def squeeze(ctx, node):
    shape = ctx.shape(node.inputs[0])
    axes = _axes(ctx, node, 13)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = {norm_axis(a, len(shape), node) for a in axes}
    if any(shape[a] != 1 for a in axes):
        raise ValueError(f"cannot squeeze axes {sorted(axes)} of shape {shape}")
    shape_of(ctx, node, [d for i, d in enumerate(shape) if i not in axes])


@op("Unsqueeze", shape_inputs=(1,))
def unsqueeze(ctx, node):
    shape = list(ctx.shape(node.inputs[0]))
    axes = _axes(ctx, node, 13)
    rank = len(shape) + len(axes)
    axes = sorted(norm_axis(a, rank, node) for a in axes)
    for a in axes:
        shape.insert(a, 1)
    shape_of(ctx, node, shape)


@op("Shape")
def shape_op(ctx, node):
    shape = np.asarray(ctx.shape(node.inputs[0]), dtype=np.int64)
    rank = len(shape)
    start = node.attrs.get("start", 0)
    end = node.attrs.get("end", rank)
    ctx.set_const(node.outputs[0], shape[slice(start, end)])


@op("Size")
def size_op(ctx, node):
    ctx.set_const(node.outputs[0], np.asarray(node.inputs[0].size, dtype=np.int64))


@op("Transpose")
def transpose(ctx, node):
    x = node.inputs[0]
    shape = ctx.shape(x)
    perm = node.attrs.get("perm") or list(reversed(range(len(shape))))
    out_shape = tuple(shape[p] for p in perm)
    strides = contiguous_strides(shape)
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    emit_strided(ctx, out, out_shape, contiguous_strides(out_shape), 0,
                 [(x, tuple(strides[p] for p in perm), 0)], raw=True)


@op("Expand", shape_inputs=(1,))
def expand(ctx, node):
    x = node.inputs[0]
    target = [int(d) for d in const_input(ctx, node, 1, "the target shape").reshape(-1)]
    out_shape = tuple(np.broadcast_shapes(ctx.shape(x), tuple(target)))
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    emit_strided(ctx, out, out_shape, contiguous_strides(out_shape), 0,
                 [(x, broadcast_strides(ctx.shape(x), out_shape), 0)], raw=True)


@op("Concat")
def concat(ctx, node):
    inputs = [v for v in node.inputs if v is not None]
    rank = len(ctx.shape(inputs[0]))
    axis = norm_axis(node.attrs["axis"], rank, node)
    out_shape = list(ctx.shape(inputs[0]))
    out_shape[axis] = sum(ctx.shape(v)[axis] for v in inputs)
    for v in inputs:
        s = ctx.shape(v)
        if len(s) != rank or any(a != b for i, (a, b) in enumerate(zip(s, out_shape)) if i != axis):
            raise ValueError(f"Concat inputs have incompatible shapes {s} and {tuple(out_shape)}")
    out = ctx.output(node.outputs[0], out_shape, inputs[0].dtype)
    out_strides = contiguous_strides(out_shape)
    offset = 0
    for v in inputs:
        s = ctx.shape(v)
        emit_strided(ctx, out, s, out_strides, offset * out_strides[axis],
                     [(v, contiguous_strides(s), 0)], raw=True)
        offset += s[axis]


def slice_params(ctx, node, shape) -> tuple:
    """(starts, steps, out_shape) after clamping, per ONNX Slice semantics."""
    rank = len(shape)
    if ctx.opset >= 10:
        starts = const_input(ctx, node, 1, "starts")
        ends = const_input(ctx, node, 2, "ends")
        axes = const_input(ctx, node, 3, "axes")
        steps = const_input(ctx, node, 4, "steps")
    else:
        starts = np.asarray(node.attrs["starts"])
        ends = np.asarray(node.attrs["ends"])
        axes = np.asarray(node.attrs["axes"]) if "axes" in node.attrs else None
        steps = None
    starts, ends = starts.reshape(-1).tolist(), ends.reshape(-1).tolist()
    axes = list(range(len(starts))) if axes is None else axes.reshape(-1).tolist()
    steps = [1] * len(starts) if steps is None else steps.reshape(-1).tolist()
    first = [0] * rank
    step_all = [1] * rank
    out_shape = list(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = norm_axis(int(axis), rank, node)
        if step == 0:
            raise ValueError("slice step 0")
        begin, stop, stride = slice(int(start), int(end), int(step)).indices(shape[axis])
        count = len(range(begin, stop, stride))
        first[axis], step_all[axis], out_shape[axis] = begin, stride, count
    return first, step_all, tuple(out_shape)


@op("Slice", shape_inputs=(1, 2, 3, 4))
def slice_op(ctx, node):
    x = node.inputs[0]
    shape = ctx.shape(x)
    first, steps, out_shape = slice_params(ctx, node, shape)
    strides = contiguous_strides(shape)
    base = sum(f * s for f, s in zip(first, strides))
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    emit_strided(ctx, out, out_shape, contiguous_strides(out_shape), 0,
                 [(x, tuple(s * st for s, st in zip(strides, steps)), base)], raw=True)


@op("Tile", shape_inputs=(1,))
def tile(ctx, node):
    """Each dim d becomes (repeat, d): a broadcast read of the input."""
    x = node.inputs[0]
    shape = ctx.shape(x)
    repeats = [int(r) for r in const_input(ctx, node, 1, "repeats").reshape(-1)]
    if len(repeats) != len(shape) or any(r < 0 for r in repeats):
        raise ValueError(f"Tile repeats {repeats} do not fit a rank-{len(shape)} input")
    strides = contiguous_strides(shape)
    view_shape, view_strides = [], []
    for dim, rep, stride in zip(shape, repeats, strides):
        view_shape += [rep, dim]
        view_strides += [0, stride]
    out = ctx.output(node.outputs[0], [d * r for d, r in zip(shape, repeats)], x.dtype)
    emit_strided(ctx, out, view_shape, contiguous_strides(view_shape), 0,
                 [(x, tuple(view_strides), 0)], raw=True)


def split_sizes(ctx, node, length: int) -> list:
    """Output lengths along the axis: given, or equal parts (ONNX rules)."""
    given = const_input(ctx, node, 1, "split") if ctx.opset >= 13 \
        else node.attrs.get("split")
    outputs = len(node.outputs)
    if given is not None and len(np.asarray(given).reshape(-1)):
        sizes = [int(s) for s in np.asarray(given).reshape(-1)]
    elif "num_outputs" in node.attrs:
        count = int(node.attrs["num_outputs"])
        part = -(-length // count)
        sizes = [part] * (count - 1) + [length - part * (count - 1)]
    else:
        if length % outputs:
            raise ValueError(f"cannot split length {length} into {outputs} equal parts")
        sizes = [length // outputs] * outputs
    if sum(sizes) != length or len(sizes) != outputs or any(s < 0 for s in sizes):
        raise ValueError(f"split sizes {sizes} do not cover length {length} in {outputs} "
                         f"outputs")
    return sizes


@op("Split", shape_inputs=(1,))
def split(ctx, node):
    x = node.inputs[0]
    shape = ctx.shape(x)
    axis = norm_axis(node.attrs.get("axis", 0), len(shape), node)
    strides = contiguous_strides(shape)
    start = 0
    for value, size in zip(node.outputs, split_sizes(ctx, node, shape[axis])):
        out_shape = shape[:axis] + (size,) + shape[axis + 1:]
        out = ctx.output(value, out_shape, x.dtype)
        emit_strided(ctx, out, out_shape, contiguous_strides(out_shape), 0,
                     [(x, strides, start * strides[axis])], raw=True)
        start += size


def _permuted_copy(ctx, node, view_shape, perm, out_shape) -> None:
    """out = transpose(reshape(x, view_shape), perm), reshaped to out_shape."""
    x = node.inputs[0]
    strides = contiguous_strides(view_shape)
    shape = tuple(view_shape[p] for p in perm)
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    emit_strided(ctx, out, shape, contiguous_strides(shape), 0,
                 [(x, tuple(strides[p] for p in perm), 0)], raw=True)


@op("DepthToSpace")
def depth_to_space(ctx, node, mode: str = "DCR"):
    n, c, h, w = ctx.shape(node.inputs[0])
    b = int(node.attrs["blocksize"])
    if c % (b * b):
        raise ValueError(f"DepthToSpace: {c} channels are not divisible by blocksize² {b * b}")
    mode = node.attrs.get("mode", mode)
    out_shape = (n, c // (b * b), h * b, w * b)
    if mode == "DCR":
        _permuted_copy(ctx, node, (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2), out_shape)
    elif mode == "CRD":
        _permuted_copy(ctx, node, (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3), out_shape)
    else:
        raise UnsupportedOpError(f"{node.label()}: DepthToSpace mode {mode!r}")


@op("SpaceToDepth")
def space_to_depth(ctx, node, mode: str = "DCR"):
    n, c, h, w = ctx.shape(node.inputs[0])
    b = int(node.attrs["blocksize"])
    if h % b or w % b:
        raise ValueError(f"SpaceToDepth: spatial dims {(h, w)} are not divisible by {b}")
    mode = node.attrs.get("mode", mode)
    if mode not in ("DCR", "CRD"):
        raise UnsupportedOpError(f"{node.label()}: SpaceToDepth mode {mode!r}")
    perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
    _permuted_copy(ctx, node, (n, c, h // b, b, w // b, b), perm,
                   (n, c * b * b, h // b, w // b))


@op("Trilu", shape_inputs=(1,))
def trilu(ctx, node, upper: int = 1):
    x = node.inputs[0]
    shape = ctx.shape(x)
    if len(shape) < 2:
        raise ValueError(f"Trilu needs a rank >= 2 input, got {shape}")
    k = const_input(ctx, node, 1, "k")
    k = 0 if k is None else int(k.reshape(-1)[0])
    out = ctx.output(node.outputs[0], shape, x.dtype)
    defines = {"T": RAW_TYPES[ctx.itemsize(x)]}
    if node.attrs.get("upper", upper):
        defines["UPPER"] = True
    ctx.launch("index", (out.size,), [x, out, np.int32(shape[-2]), np.int32(shape[-1]),
                                      np.int64(k)], defines, entry="trilu")


@op("OneHot", shape_inputs=(1,))
def one_hot(ctx, node, axis: int = -1):
    indices, values = node.inputs[0], node.inputs[2]
    depth = const_input(ctx, node, 1, "depth")
    depth = int(np.asarray(depth).reshape(-1)[0])
    shape = ctx.shape(indices)
    axis = norm_axis(node.attrs.get("axis", axis), len(shape) + 1, node)
    if int(np.prod(ctx.shape(values), dtype=np.int64)) != 2:
        raise ValueError(f"OneHot values must hold (off, on), got shape {ctx.shape(values)}")
    out_shape = shape[:axis] + (depth,) + shape[axis:]
    out = ctx.output(node.outputs[0], out_shape, values.dtype)
    defines = {"T": RAW_TYPES[ctx.itemsize(values)]}
    if indices.dtype.kind == "f":
        defines["IDX_FLOAT"] = True
    else:
        defines["IDX_T"] = C_TYPES[np.dtype(indices.dtype)]
    inner = int(np.prod(shape[axis:], dtype=np.int64))
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    ctx.launch("index", (inner, depth, outer),
               [indices, values, out, np.int32(inner), np.int32(depth)], defines,
               entry="one_hot")


@op("EyeLike")
def eye_like(ctx, node, k: int = 0):
    """Depends only on the input's shape: a constant of the plan."""
    x = node.inputs[0]
    rows, cols = ctx.shape(x)
    dtype = node.attrs.get("dtype")
    dtype = helper.tensor_dtype_to_np_dtype(dtype) if dtype is not None else x.dtype
    ctx.set_const(node.outputs[0], np.eye(rows, cols, node.attrs.get("k", k), dtype=dtype))


def _needs_constants(what: str):
    def lower(ctx, node):
        raise UnsupportedOpError(f"{node.label()}: {node.op} with inputs computed at run time "
                                 f"has a data-dependent output shape; {what} must be known "
                                 f"at load time (opset {ctx.opset})")
    return lower


# with constant inputs these are folded before lowering
op("Range", shape_inputs=(0, 1, 2))(_needs_constants("start, limit and delta"))
op("ConstantOfShape", shape_inputs=(0,))(_needs_constants("the shape"))


@op("Dropout", shape_inputs=(1, 2))
def dropout(ctx, node, ratio: float = 0.5):
    """Inference: the identity, and a mask of ones.  Training mode with a
    non-zero ratio draws random numbers, which a plan cannot reproduce."""
    training = const_input(ctx, node, 2, "training_mode") if ctx.opset >= 12 else None
    if training is not None and bool(training.reshape(-1)[0]):
        rate = const_input(ctx, node, 1, "ratio")
        rate = ratio if rate is None else float(rate.reshape(-1)[0])
        if rate != 0.0:
            raise UnsupportedOpError(f"{node.label()}: Dropout in training mode (ratio "
                                     f"{rate}) is random; clnet runs inference only")
    x = node.inputs[0]
    shape_of(ctx, node, ctx.shape(x))
    if len(node.outputs) > 1 and node.outputs[1].name:
        ctx.set_const(node.outputs[1], np.ones(ctx.shape(x), dtype=np.bool_))
