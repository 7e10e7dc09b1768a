"""Helpers shared by the op lowerings: strides, C types, kernel int vectors,
axis normalisation, constant inputs and dtype checks.  No kernels here."""
from __future__ import annotations

import numpy as np
from pyopencl import cltypes

from ..errors import UnsupportedOpError


RAW_TYPES = {1: "uchar", 2: "ushort", 4: "uint", 8: "ulong"}


C_TYPES = {np.dtype(np.int64): "long", np.dtype(np.int32): "int", np.dtype(np.int8): "char",
           np.dtype(np.uint8): "uchar", np.dtype(np.bool_): "uchar", np.dtype(np.int16): "short",
           np.dtype(np.uint16): "ushort", np.dtype(np.uint32): "uint", np.dtype(np.uint64): "ulong"}


def contiguous_strides(shape) -> tuple:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def broadcast_strides(in_shape, out_shape) -> tuple:
    """Strides (in elements) reading a tensor of in_shape broadcast to out_shape."""
    pad = len(out_shape) - len(in_shape)
    own = contiguous_strides(in_shape)
    strides = [0] * pad
    for dim, stride in zip(in_shape, own):
        strides.append(0 if dim == 1 else stride)
    return tuple(strides)


def merge_dims(shape, stride_sets) -> tuple:
    """Drop size-1 dims and merge neighbours that are contiguous in every operand."""
    dims = [(d, [s[i] for s in stride_sets]) for i, d in enumerate(shape) if d != 1]
    merged: list = []
    for dim, strides in dims:
        if merged:
            prev_dim, prev_strides = merged[-1]
            if all(ps == s * dim for ps, s in zip(prev_strides, strides)):
                merged[-1] = (prev_dim * dim, strides)
                continue
        merged.append((dim, strides))
    if not merged:
        merged = [(1, [0] * len(stride_sets))]
    shape = tuple(d for d, _ in merged)
    return shape, [tuple(s[i] for _, s in merged) for i in range(len(stride_sets))]


def int_vec(values, width: int = 4) -> np.ndarray:
    """An OpenCL intN kernel argument (zero-padded)."""
    vals = [int(v) for v in values] + [0] * (width - len(values))
    return getattr(cltypes, f"make_int{width}")(*vals)


def float_literal(value: float) -> str:
    value = float(value)
    if np.isnan(value):
        return "NAN"
    if np.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    return f"{value!r}f" if "e" in repr(value) or "." in repr(value) else f"{value!r}.0f"


def require_float(ctx, node, *values) -> None:
    """Raise unless `values` (default: every present input) are float tensors."""
    for value in values or node.inputs:
        if value is not None and value.name and value.dtype is not None \
                and value.dtype.kind != "f":
            raise UnsupportedOpError(
                f"{node.label()}: input {value.name!r} has dtype {value.dtype}; only float "
                f"tensors are computed on the device for {node.op} (opset {ctx.opset})")


def c_type(ctx, value) -> "str | None":
    """C type of a non-float operand (None: a float tensor in storage type)."""
    dtype = value.dtype
    if dtype is None or dtype.kind == "f":
        return None
    ctype = C_TYPES.get(np.dtype(dtype))
    if ctype is None:
        raise UnsupportedOpError(f"{ctx.node.label()}: {value.name!r} has dtype {dtype}, "
                                 f"which clnet cannot compute on the device")
    return ctype


def present_inputs(node) -> list:
    return [v for v in node.inputs if v is not None and v.name != ""]



def const_input(ctx, node, index: int, what: str):
    """A constant input's data, or a clear error if it is computed at run time."""
    value = node.input(index)
    if value is None or value.name == "":
        return None
    if not value.is_const:
        raise UnsupportedOpError(f"{node.label()}: {what} ({value.name!r}) must be known at load "
                                 f"time; data-dependent {what} is not supported "
                                 f"(opset {ctx.opset})")
    return np.asarray(value.data)


def norm_axis(axis: int, rank: int, node) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0
