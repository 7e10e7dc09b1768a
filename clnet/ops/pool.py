"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool on kernels_cl/pool.cl."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from .elementwise import int_vec
from .gemm import conv_geometry
from .registry import op
from pyopencl import cltypes


def _pool(ctx, node, kind: str) -> None:
    x = node.inputs[0]
    shape = ctx.shape(x)
    nd = len(shape) - 2
    if nd not in (1, 2):
        raise UnsupportedOpError(f"{node.label()}: {nd}-D {node.op} is not supported yet")
    if len(node.outputs) > 1 and node.outputs[1].name:
        raise UnsupportedOpError(f"{node.label()}: MaxPool's Indices output is not supported")
    if node.attrs.get("storage_order", 0):
        raise UnsupportedOpError(f"{node.label()}: storage_order=1 is not supported")
    kernel = node.attrs["kernel_shape"]
    begin, end, strides, dil, out_sp, _ = conv_geometry(node, shape, (0, 0, *kernel))
    if node.attrs.get("ceil_mode", 0):
        out_sp = []
        for i in range(nd):
            eff = (kernel[i] - 1) * dil[i] + 1
            o = -(-(shape[2 + i] + begin[i] + end[i] - eff) // strides[i]) + 1
            # the last window must start inside the input or the left padding
            if (o - 1) * strides[i] >= shape[2 + i] + begin[i]:
                o -= 1
            out_sp.append(o)
    N, C = shape[:2]
    out = ctx.output(node.outputs[0], (N, C, *out_sp), x.dtype)
    if nd == 1:
        H, W, OH, OW = 1, shape[2], 1, out_sp[0]
        kern = (1, kernel[0], 1, strides[0])
        pads = (0, begin[0], 0, end[0])
        dils = (1, dil[0])
    else:
        (H, W), (OH, OW) = shape[2:], out_sp
        kern = (kernel[0], kernel[1], strides[0], strides[1])
        pads = (begin[0], begin[1], end[0], end[1])
        dils = tuple(dil)
    include = int(node.attrs.get("count_include_pad", 0))
    args = [x, out, np.int32(H), np.int32(W), np.int32(OH), np.int32(OW), int_vec(kern),
            int_vec(pads), cltypes.make_int2(*dils), np.int32(include)]
    ctx.launch("pool", (OW, OH, N * C), args, {f"POOL_{kind}": True}, entry="pool2d")


@op("MaxPool")
def max_pool(ctx, node):
    _pool(ctx, node, "MAX")


@op("AveragePool")
def average_pool(ctx, node):
    _pool(ctx, node, "AVG")


def _global(ctx, node, kind: str) -> None:
    x = node.inputs[0]
    shape = ctx.shape(x)
    rows = shape[0] * shape[1]
    length = int(np.prod(shape[2:], dtype=np.int64))
    out = ctx.output(node.outputs[0], shape[:2] + (1,) * (len(shape) - 2), x.dtype)
    ctx.launch("pool", (rows,), [x, out, np.int32(rows), np.int32(length)],
               {f"POOL_{kind}": True}, entry="global_pool")


@op("GlobalAveragePool")
def global_average_pool(ctx, node):
    _global(ctx, node, "AVG")


@op("GlobalMaxPool")
def global_max_pool(ctx, node):
    _global(ctx, node, "MAX")
