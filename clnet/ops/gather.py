"""Gather, GatherElements, GatherND, ScatterElements, ScatterND,
ReverseSequence and TensorScatter on the device.

Data moves as bits (kernels_cl/gather.cl, scatter.cl), so float tensors in
either storage mode and integer/bool tensors share one kernel.  Indices may
be constant (uploaded once) or computed at run time, int64 or int32.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ._util import C_TYPES, RAW_TYPES, contiguous_strides, int_vec, norm_axis
from .registry import op
from .strided import emit_strided

INDEX_TYPES = {np.dtype(np.int64): "long", np.dtype(np.int32): "int"}
REDUCTIONS = {"none": None, "add": "R_ADD", "mul": "R_MUL", "max": "R_MAX", "min": "R_MIN"}


def raw_type(ctx, value) -> str:
    """The unsigned C type that moves one stored element of `value` as bits."""
    return RAW_TYPES[ctx.itemsize(value)]


def index_type(node, indices) -> str:
    ctype = INDEX_TYPES.get(np.dtype(indices.dtype))
    if ctype is None:
        raise UnsupportedOpError(f"{node.label()}: indices {indices.name!r} have dtype "
                                 f"{indices.dtype}; expected int64 or int32")
    return ctype


def copy_into(ctx, out, src) -> None:
    """out = src, element for element (same shape), as a bit copy."""
    shape = ctx.shape(src)
    strides = contiguous_strides(shape)
    emit_strided(ctx, out, shape, strides, 0, [(src, strides, 0)], raw=True)


def emit_fill(ctx, out, value: float = 0.0) -> None:
    """Every element of `out` (already declared) set to `value`."""
    bits = np.asarray(value, dtype=ctx.storage_dtype(out.dtype)).reshape(1)
    ctype = raw_type(ctx, out)
    raw = bits.view(np.dtype(f"u{bits.itemsize}"))[0]
    ctx.launch("scatter", (out.size,), [out, np.uint64(raw)], {"RAW": True, "T": ctype},
               entry="fill")


@op("Gather")
def gather(ctx, node):
    data, indices = node.inputs[0], node.inputs[1]
    shape = ctx.shape(data)
    axis = norm_axis(node.attrs.get("axis", 0), len(shape), node)
    idx_shape = ctx.shape(indices)
    out_shape = shape[:axis] + idx_shape + shape[axis + 1:]
    out = ctx.output(node.outputs[0], out_shape, data.dtype)
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    n_idx = int(np.prod(idx_shape, dtype=np.int64))
    if shape[axis] == 0 and n_idx:
        raise ValueError(f"Gather from an empty axis {axis} of {shape}")
    defines = {"T": raw_type(ctx, data), "IDX_T": index_type(node, indices)}
    ctx.launch("gather", (inner, n_idx, outer),
               [data, indices, out, np.int32(inner), np.int32(shape[axis]), np.int32(n_idx)],
               defines)


@op("GatherElements")
def gather_elements(ctx, node):
    data, indices = node.inputs[0], node.inputs[1]
    shape, idx_shape = ctx.shape(data), ctx.shape(indices)
    if len(shape) != len(idx_shape) or len(shape) > 8:
        raise ValueError(f"GatherElements needs indices of data's rank (at most 8): "
                         f"{idx_shape} vs {shape}")
    axis = norm_axis(node.attrs.get("axis", 0), len(shape), node)
    out = ctx.output(node.outputs[0], idx_shape, data.dtype)
    defines = {"T": raw_type(ctx, data), "IDX_T": index_type(node, indices)}
    ctx.launch("gather", (out.size,),
               [data, indices, out, np.int32(len(shape)), np.int32(axis), np.int32(shape[axis]),
                int_vec(idx_shape, 8), int_vec(contiguous_strides(shape), 8)],
               defines, entry="gather_elements")


def _nd_geometry(data_shape, idx_shape, batch_dims: int) -> tuple:
    """(K, tuples, slice, per_batch, batch_stride, dims, strides) of a *ND op."""
    K = idx_shape[-1]
    if batch_dims + K > len(data_shape) or K > 8:
        raise ValueError(f"index tuples of length {K} with batch_dims={batch_dims} do not fit "
                         f"data of shape {data_shape}")
    if tuple(idx_shape[:batch_dims]) != tuple(data_shape[:batch_dims]):
        raise ValueError(f"batch dims of indices {idx_shape} and data {data_shape} differ")
    strides = contiguous_strides(data_shape)
    tuples = int(np.prod(idx_shape[:-1], dtype=np.int64))
    batches = int(np.prod(idx_shape[:batch_dims], dtype=np.int64))
    per_batch = tuples // batches if batches else 1
    batch_stride = int(np.prod(data_shape[batch_dims:], dtype=np.int64))
    slice_size = int(np.prod(data_shape[batch_dims + K:], dtype=np.int64))
    dims = data_shape[batch_dims:batch_dims + K]
    return K, tuples, slice_size, max(per_batch, 1), batch_stride, dims, \
        strides[batch_dims:batch_dims + K]


@op("GatherND")
def gather_nd(ctx, node):
    data, indices = node.inputs[0], node.inputs[1]
    shape, idx_shape = ctx.shape(data), ctx.shape(indices)
    batch_dims = node.attrs.get("batch_dims", 0)
    K, tuples, slice_size, per_batch, batch_stride, dims, strides = \
        _nd_geometry(shape, idx_shape, batch_dims)
    out_shape = idx_shape[:-1] + shape[batch_dims + K:]
    out = ctx.output(node.outputs[0], out_shape, data.dtype)
    defines = {"T": raw_type(ctx, data), "IDX_T": index_type(node, indices)}
    ctx.launch("gather", (slice_size, tuples),
               [data, indices, out, np.int32(slice_size), np.int32(K), np.int32(per_batch),
                np.int32(batch_stride), int_vec(dims, 8), int_vec(strides, 8)],
               defines, entry="gather_nd")


def _scatter_defines(ctx, node, data, indices) -> dict:
    reduction = node.attrs.get("reduction", "none")
    if reduction not in REDUCTIONS:
        raise UnsupportedOpError(f"{node.label()}: reduction {reduction!r} is not one of "
                                 f"{list(REDUCTIONS)}")
    defines = {"IDX_T": index_type(node, indices)}
    macro = REDUCTIONS[reduction]
    if macro is None:
        defines.update(RAW=True, T=raw_type(ctx, data))
    else:
        defines["REDUCE_OP"] = macro
        if data.dtype.kind != "f":
            ctype = C_TYPES.get(np.dtype(data.dtype))
            if ctype is None or data.dtype == np.bool_:
                raise UnsupportedOpError(f"{node.label()}: reduction {reduction!r} on "
                                         f"{data.dtype} tensors is not supported")
            defines.update(RAW=True, T=ctype)
    return defines


@op("ScatterElements", "Scatter")
def scatter_elements(ctx, node):
    data, indices, updates = node.inputs[:3]
    shape, idx_shape = ctx.shape(data), ctx.shape(indices)
    if idx_shape != ctx.shape(updates) or len(idx_shape) != len(shape) or len(shape) > 9:
        raise ValueError(f"ScatterElements: indices {idx_shape}, updates "
                         f"{ctx.shape(updates)} and data {shape} do not fit")
    axis = norm_axis(node.attrs.get("axis", 0), len(shape), node)
    out = ctx.output(node.outputs[0], shape, data.dtype)
    defines = _scatter_defines(ctx, node, data, indices)
    copy_into(ctx, out, data)
    u_strides, o_strides = contiguous_strides(idx_shape), contiguous_strides(shape)
    keep = [d for d in range(len(shape)) if d != axis]
    lines = int(np.prod([idx_shape[d] for d in keep], dtype=np.int64))
    ctx.launch("scatter", (lines if idx_shape[axis] else 0,),
               [out, indices, updates, np.int32(len(keep)),
                int_vec([idx_shape[d] for d in keep], 8),
                int_vec([u_strides[d] for d in keep], 8),
                int_vec([o_strides[d] for d in keep], 8),
                np.int32(idx_shape[axis]), np.int32(u_strides[axis]),
                np.int32(o_strides[axis]), np.int32(shape[axis])],
               defines, entry="scatter_elements")


@op("ScatterND")
def scatter_nd(ctx, node):
    data, indices, updates = node.inputs[:3]
    shape, idx_shape = ctx.shape(data), ctx.shape(indices)
    K, tuples, slice_size, _, _, dims, strides = _nd_geometry(shape, idx_shape, 0)
    want = idx_shape[:-1] + shape[K:]
    if ctx.shape(updates) != want:
        raise ValueError(f"ScatterND updates have shape {ctx.shape(updates)}, expected {want}")
    out = ctx.output(node.outputs[0], shape, data.dtype)
    defines = _scatter_defines(ctx, node, data, indices)
    copy_into(ctx, out, data)
    serial = "REDUCE_OP" in defines
    if serial:
        defines["SERIAL"] = True
    gsize = (slice_size,) if serial else (slice_size, tuples)
    ctx.launch("scatter", gsize if tuples else (0,),
               [out, indices, updates, np.int32(slice_size), np.int32(K), np.int32(tuples),
                int_vec(dims, 8), int_vec(strides, 8)],
               defines, entry="scatter_nd")


@op("ReverseSequence")
def reverse_sequence(ctx, node, batch_axis: int = 1, time_axis: int = 0):
    x, lens = node.inputs[0], node.inputs[1]
    shape = ctx.shape(x)
    batch_axis = norm_axis(node.attrs.get("batch_axis", batch_axis), len(shape), node)
    time_axis = norm_axis(node.attrs.get("time_axis", time_axis), len(shape), node)
    if batch_axis == time_axis or ctx.shape(lens) != (shape[batch_axis],):
        raise ValueError(f"ReverseSequence: batch_axis {batch_axis}, time_axis {time_axis}, "
                         f"sequence_lens {ctx.shape(lens)} for input {shape}")
    out = ctx.output(node.outputs[0], shape, x.dtype)
    strides = contiguous_strides(shape)
    ctx.launch("gather", (out.size,),
               [x, lens, out, np.int32(strides[time_axis]), np.int32(shape[time_axis]),
                np.int32(strides[batch_axis]), np.int32(shape[batch_axis])],
               {"T": raw_type(ctx, x), "IDX_T": index_type(node, lens)},
               entry="reverse_sequence")


@op("TensorScatter")
def tensor_scatter(ctx, node, axis: int = -2, mode: str = "linear"):
    """The cache with `update` written at each batch's write index along axis."""
    cache, update, indices = node.inputs[0], node.inputs[1], node.input(2)
    shape, u_shape = ctx.shape(cache), ctx.shape(update)
    axis = norm_axis(node.attrs.get("axis", axis), len(shape), node)
    mode = node.attrs.get("mode", mode)
    if axis == 0 or mode not in ("linear", "circular") or len(u_shape) != len(shape) or any(
            a != b for d, (a, b) in enumerate(zip(shape, u_shape)) if d != axis):
        raise ValueError(f"TensorScatter: cache {shape}, update {u_shape}, axis {axis}, "
                         f"mode {mode!r}")
    out = ctx.output(node.outputs[0], shape, cache.dtype)
    copy_into(ctx, out, cache)
    defines = {"RAW": True, "T": raw_type(ctx, cache)}
    if mode == "circular":
        defines["CIRCULAR"] = True
    if indices is not None and indices.name:
        defines.update(HAS_WRITE_INDICES=True, IDX_T=index_type(node, indices))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    ctx.launch("scatter", (inner, u_shape[axis], outer),
               [out, indices if indices is not None and indices.name else cache, update,
                np.int32(inner), np.int32(u_shape[axis]), np.int32(shape[axis]),
                np.int32(outer // shape[0])], defines, entry="tensor_scatter")
