"""Pad (constant, reflect, edge, wrap; pads/value/axes as attributes or
inputs) and CenterCropPad on kernels_cl/pad.cl, as a bit copy for any dtype."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ._util import RAW_TYPES, const_input, contiguous_strides, int_vec, norm_axis
from .registry import op

MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}
PAD_CHUNK = 32   # output elements per work-item (pad.cl CHUNK)


def pad_amounts(ctx, node, rank: int) -> tuple:
    """(begin, end) per dim from the attribute (opset < 11) or the inputs."""
    if ctx.opset < 11:
        pads = list(node.attrs.get("pads") or node.attrs.get("paddings") or [0] * 2 * rank)
        axes = list(range(rank))
    else:
        pads = [int(p) for p in const_input(ctx, node, 1, "pads").reshape(-1)]
        axes_data = const_input(ctx, node, 3, "axes") if ctx.opset >= 18 else None
        axes = list(range(rank)) if axes_data is None \
            else [norm_axis(int(a), rank, node) for a in axes_data.reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise ValueError(f"{len(pads)} pads for {len(axes)} axes (need two per axis)")
    begin, end = [0] * rank, [0] * rank
    for i, axis in enumerate(axes):
        begin[axis], end[axis] = pads[i], pads[len(axes) + i]
    return begin, end


def pad_value(ctx, node) -> tuple:
    """(constant known at load time, or 0; the value tensor if computed at run time)."""
    if ctx.opset < 11:
        return float(node.attrs.get("value", 0.0)), None
    value = node.input(2)
    if value is None or not value.name:
        return 0, None
    if not value.is_const:
        return 0, value
    data = np.asarray(value.data)
    return (0 if data.size == 0 else data.reshape(-1)[0]), None


@op("Pad", shape_inputs=(1, 2, 3))
def pad(ctx, node, mode: str = "constant"):
    x = node.inputs[0]
    shape = ctx.shape(x)
    rank = len(shape)
    mode = node.attrs.get("mode", mode)
    if mode not in MODES:
        raise UnsupportedOpError(f"{node.label()}: Pad mode {mode!r} is not one of "
                                 f"{list(MODES)}")
    if rank > 8:
        raise UnsupportedOpError(f"{node.label()}: Pad of a rank-{rank} tensor (at most 8)")
    begin, end = pad_amounts(ctx, node, rank)
    constant, tensor = pad_value(ctx, node)
    emit_pad(ctx, x, node.outputs[0], begin, end, mode, constant, tensor)


def emit_pad(ctx, x, out, begin, end, mode: str = "constant", constant=0, tensor=None):
    """out = x padded (negative: cropped) by begin/end per dim."""
    shape = ctx.shape(x)
    out_shape = [d + b + e for d, b, e in zip(shape, begin, end)]
    out = ctx.output(out, out_shape, x.dtype)
    if mode != "constant" and out.size and any(
            d + min(b, 0) + min(e, 0) <= 0 for d, b, e in zip(shape, begin, end)):
        raise ValueError(f"{mode} padding of an empty axis of {shape}")
    bits = np.asarray(constant).astype(ctx.storage_dtype(x.dtype)).reshape(1)
    raw = int(bits.view(np.dtype(f"u{bits.itemsize}"))[0])
    first = [max(-b, 0) for b in begin]
    length = [d - max(-b, 0) - max(-e, 0) for d, b, e in zip(shape, begin, end)]
    dims = _merge_unpadded(out_shape, length, first, [max(b, 0) for b in begin],
                           list(contiguous_strides(shape)))
    rows = int(np.prod(dims[0][:-1], dtype=np.int64)) if out.size else 0
    runs = -(-dims[0][-1] // PAD_CHUNK) if out.size else 0
    ctx.launch("pad", (rows * runs,),
               [x, out, np.int32(len(dims[0]))] + [int_vec(d, 8) for d in dims]
               + [np.uint64(raw), tensor if tensor is not None else x, np.int32(rows)],
               {"T": RAW_TYPES[ctx.itemsize(x)], "PAD_MODE": MODES[mode], "CHUNK": PAD_CHUNK,
                **({"VALUE_TENSOR": True} if tensor is not None else {})})


@op("CenterCropPad", shape_inputs=(1,))
def center_crop_pad(ctx, node):
    """Crop or zero-pad each axis to the given length, keeping the centre."""
    x = node.inputs[0]
    shape = ctx.shape(x)
    target = [int(t) for t in const_input(ctx, node, 1, "the shape").reshape(-1)]
    axes = node.attrs.get("axes")
    axes = list(range(len(shape))) if axes is None \
        else [norm_axis(a, len(shape), node) for a in axes]
    if len(target) != len(axes):
        raise ValueError(f"{len(target)} lengths for {len(axes)} axes")
    begin, end = [0] * len(shape), [0] * len(shape)
    for axis, want in zip(axes, target):
        change = want - shape[axis]
        if change >= 0:
            begin[axis], end[axis] = change // 2, change - change // 2
        else:
            cut = -change
            begin[axis], end[axis] = -(cut // 2), -(cut - cut // 2)
    emit_pad(ctx, x, node.outputs[0], begin, end)


def _merge_unpadded(out_shape, length, first, begin, strides) -> list:
    """Fold each unpadded, uncropped dim into the dim outside it when both
    are contiguous in the input (fewer dims for the kernel to walk)."""
    dims = [[out_shape[0], length[0], first[0], begin[0], strides[0]]] if out_shape else \
        [[1, 1, 0, 0, 1]]
    for i in range(1, len(out_shape)):
        prev = dims[-1]
        plain = begin[i] == 0 and first[i] == 0 and out_shape[i] == length[i]
        prev_plain = prev[3] == 0 and prev[2] == 0 and prev[0] == prev[1]
        if plain and prev_plain and prev[4] == strides[i] * length[i]:
            dims[-1] = [prev[0] * out_shape[i], prev[1] * length[i], 0, 0, strides[i]]
        else:
            dims.append([out_shape[i], length[i], first[i], begin[i], strides[i]])
    return [list(column) for column in zip(*dims)]
