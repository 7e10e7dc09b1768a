"""Softmax, LogSoftmax and Hardmax on kernels_cl/softmax.cl, for every opset
(before 13 the input is coerced to 2-D at `axis`; from 13 one axis)."""
from __future__ import annotations

import numpy as np

from .movement import norm_axis
from .registry import op


def _softmax(ctx, node, log: bool = False, entry: str = "softmax") -> None:
    x = node.inputs[0]
    shape = ctx.shape(x)
    rank = len(shape)
    default_axis = -1 if ctx.opset >= 13 else 1
    axis = norm_axis(node.attrs.get("axis", default_axis), rank, node)
    out = ctx.output(node.outputs[0], shape, x.dtype)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    if ctx.opset >= 13:
        length = shape[axis]
        inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    else:  # before opset 13 the input is coerced to 2-D at `axis`
        length = int(np.prod(shape[axis:], dtype=np.int64))
        inner = 1
    rows = outer * inner
    defines = {"LOG_SOFTMAX": True} if log else {}
    ctx.launch("softmax", (rows,), [x, out, np.int32(rows), np.int32(length), np.int32(inner)],
               defines, entry=entry)


@op("Softmax")
def softmax(ctx, node):
    _softmax(ctx, node, log=False)


@op("LogSoftmax")
def log_softmax(ctx, node):
    _softmax(ctx, node, log=True)


@op("Hardmax")
def hardmax(ctx, node):
    _softmax(ctx, node, entry="hardmax")
