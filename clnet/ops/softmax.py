"""Softmax, LogSoftmax and Hardmax on kernels_cl/softmax.cl, for every opset
(before 13 the input is coerced to 2-D at `axis`; from 13 one axis)."""
from __future__ import annotations

import numpy as np

from ._util import norm_axis
from .registry import op


def _softmax(ctx, node, log: bool = False, entry: str = "softmax") -> None:
    x = node.inputs[0]
    default_axis = -1 if ctx.opset >= 13 else 1
    emit_softmax(ctx, x, node.outputs[0], node.attrs.get("axis", default_axis),
                 coerce_2d=ctx.opset < 13, log=log, entry=entry, node=node)


def emit_softmax(ctx, x, out, axis: int, coerce_2d: bool = False, log: bool = False,
                 entry: str = "softmax", node=None) -> None:
    """out = softmax (or log-softmax, or hardmax) of x along `axis`."""
    shape = ctx.shape(x)
    axis = norm_axis(axis, len(shape), node)
    ctx.output(out, shape, x.dtype)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    if not coerce_2d:
        length = shape[axis]
        inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    else:  # before opset 13 the input is coerced to 2-D at `axis`
        length = int(np.prod(shape[axis:], dtype=np.int64))
        inner = 1
    rows = outer * inner
    defines = {"LOG_SOFTMAX": True} if log else {}
    if entry == "softmax" and ctx.policy.softmax_rows(inner):
        # contiguous rows: a row per work-item in vectors (softmax.cl)
        ctx.launch("softmax", (rows,), [x, out, np.int32(rows), np.int32(length)], defines,
                   entry="softmax_rows", lsize=(1,))
        return
    if entry == "softmax" and inner % 8 == 0 and ctx.policy.softmax_cols():
        # columns along the axis, 8 at a time in vectors (softmax.cl)
        cols = rows // 8
        ctx.launch("softmax", (cols,), [x, out, np.int32(cols), np.int32(length),
                                        np.int32(inner)], defines, entry="softmax_cols")
        return
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
