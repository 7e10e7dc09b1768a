"""Pad (constant, reflect, edge, wrap; pads/value/axes as attributes or
inputs) on kernels_cl/pad.cl, as a bit copy for any dtype."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from .elementwise import RAW_TYPES, contiguous_strides, int_vec
from .movement import const_input, norm_axis
from .registry import op

MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


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


def pad_value(ctx, node) -> float:
    if ctx.opset < 11:
        return float(node.attrs.get("value", 0.0))
    value = const_input(ctx, node, 2, "the constant value")
    return 0 if value is None or value.size == 0 else value.reshape(-1)[0]


@op("Pad")
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
    out_shape = [d + b + e for d, b, e in zip(shape, begin, end)]
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    if mode != "constant" and out.size and any(
            d + min(b, 0) + min(e, 0) <= 0 for d, b, e in zip(shape, begin, end)):
        raise ValueError(f"{mode} padding of an empty axis of {shape}")
    bits = np.asarray(pad_value(ctx, node)).astype(ctx.storage_dtype(x.dtype)).reshape(1)
    raw = int(bits.view(np.dtype(f"u{bits.itemsize}"))[0])
    first = [max(-b, 0) for b in begin]
    length = [d - max(-b, 0) - max(-e, 0) for d, b, e in zip(shape, begin, end)]
    ctx.launch("pad", (out.size,),
               [x, out, np.int32(rank), int_vec(out_shape, 8), int_vec(length, 8),
                int_vec(first, 8), int_vec([max(b, 0) for b in begin], 8),
                int_vec(contiguous_strides(shape), 8), np.uint64(raw)],
               {"T": RAW_TYPES[ctx.itemsize(x)], "PAD_MODE": MODES[mode]})
