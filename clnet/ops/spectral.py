"""Spectral ops: DFT (opset 17 and 20: real or complex input, onesided,
inverse, inverse one-sided (irfft), dft_length, axis as attribute or input)
on kernels_cl/dft.cl, and the Hann, Hamming and Blackman windows.

A window depends only on its size, which is known when the plan is made (a
constant, or a graph input keyed by value: the registry's shape_inputs), so a
window node is folded to a constant at load like Range or EyeLike.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ._util import const_input, norm_axis, require_float
from .registry import op


def _scalar(ctx, node, index: int, what: str):
    data = const_input(ctx, node, index, what)
    return None if data is None else int(np.asarray(data).reshape(-1)[0])


@op("HannWindow", "HammingWindow", "BlackmanWindow", since=17, shape_inputs=(0,))
def window(ctx, node):
    raise UnsupportedOpError(f"{node.label()}: the size of a {node.op} decides its output "
                             f"shape and must be known at load time (opset {ctx.opset})")


def _dft_axis(ctx, node, rank: int) -> int:
    if ctx.opset >= 20:
        axis = _scalar(ctx, node, 2, "the DFT axis")
        axis = -2 if axis is None else axis
    else:
        axis = node.attrs.get("axis", 1)
    axis = norm_axis(axis, rank, node)
    if axis == rank - 1:
        raise ValueError(f"DFT axis {axis} is the last (real/imaginary) axis of a rank-{rank} "
                         f"input")
    return axis


@op("DFT", since=17, shape_inputs=(1, 2))
def dft(ctx, node, inverse: int = 0, onesided: int = 0):
    x = node.inputs[0]
    shape = ctx.shape(x)
    if len(shape) < 2 or shape[-1] not in (1, 2):
        raise ValueError(f"DFT input {x.name!r} must end in a dimension of 1 (real) or 2 "
                         f"(complex), got shape {shape}")
    require_float(ctx, node, x)
    inverse = bool(node.attrs.get("inverse", inverse))
    onesided = bool(node.attrs.get("onesided", onesided))
    axis = _dft_axis(ctx, node, len(shape))
    length = _scalar(ctx, node, 1, "dft_length")
    hermitian = inverse and onesided
    if length is None:
        length = 2 * (shape[axis] - 1) if hermitian else shape[axis]
    if length < 1:
        raise ValueError(f"DFT length {length} must be positive")
    if hermitian:
        len_out, c_out, terms = length, 1, min(shape[axis], length // 2 + 1)
    else:
        len_out = length // 2 + 1 if onesided else length
        c_out, terms = 2, min(shape[axis], length)
    out_shape = shape[:axis] + (len_out,) + shape[axis + 1:-1] + (c_out,)
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:-1], dtype=np.int64))
    defines = {"C_IN": shape[-1], "C_OUT": c_out, "INVERSE": int(inverse),
               "HERMITIAN": int(hermitian), "ACC_DOUBLE": int(ctx.policy.dft_double())}
    ctx.launch("dft", (inner, len_out, outer),
               [x, out, np.int32(length), np.int32(terms), np.int32(shape[axis]),
                np.int32(len_out), np.int32(inner)], defines)


@op("STFT", since=17, shape_inputs=(1, 3))
def stft(ctx, node, onesided: int = 1):
    x, window = node.inputs[0], node.input(2)
    shape = ctx.shape(x)
    if len(shape) != 3 or shape[-1] not in (1, 2):
        raise ValueError(f"STFT signal {x.name!r} must be (batch, length, 1 or 2), got "
                         f"{shape}")
    require_float(ctx, node, x)
    step = _scalar(ctx, node, 1, "the STFT frame_step")
    length = _scalar(ctx, node, 3, "the STFT frame_length")
    if window is not None and len(ctx.shape(window)) != 1:
        raise ValueError(f"STFT window {window.name!r} must be 1-D, got {ctx.shape(window)}")
    width = ctx.shape(window)[0] if window is not None else length
    if length is None:
        length = width if width is not None else shape[1]
        width = length
    if step is None or step < 1 or length < 1 or shape[1] < length:
        raise ValueError(f"STFT frame_step {step} and frame_length {length} do not fit a "
                         f"signal of length {shape[1]}")
    frames = 1 + (shape[1] - length) // step
    onesided = bool(node.attrs.get("onesided", onesided))
    bins = length // 2 + 1 if onesided else length
    out = ctx.output(node.outputs[0], (shape[0], frames, bins, 2), x.dtype)
    defines = {"C_IN": shape[-1], "HAS_WINDOW": int(window is not None),
               "ACC_DOUBLE": int(ctx.policy.dft_double())}
    spare = ctx.scratch(4)
    ctx.launch("dft", (bins, frames, shape[0]),
               [x, spare if window is None else window, out, np.int32(length),
                np.int32(width), np.int32(step), np.int32(shape[1]), np.int32(bins),
                np.int32(frames)], defines, entry="stft")
