"""ConvTranspose (1-D, 2-D, 3-D; groups, strides, pads, output_padding,
output_shape, dilations, auto_pad) as a GEMM and a col2im gather.

The GEMM (gemm.py's batched path, weights packed once at load) computes
every (output channel, kernel tap) row for every input pixel; col2im.cl
then sums the taps that land on each output element and adds the bias.
Col2Im (opset 18) is that second step on its own.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ..graph import Node, Value
from ._util import const_input, contiguous_strides, int_vec
from .gemm import gemm_general
from .strided import emit_strided
from .registry import op


class _Weights:
    """A constant operand for gemm_general: the regrouped, transposed weights."""

    def __init__(self, name: str, data: np.ndarray):
        self.name, self.data, self.dtype, self.is_const = name, data, data.dtype, True


def transpose_geometry(node, in_sp, kernel) -> tuple:
    """(output spatial dims, pads before) per the ONNX ConvTranspose rules."""
    nd = len(in_sp)
    strides = list(node.attrs.get("strides") or [1] * nd)
    dil = list(node.attrs.get("dilations") or [1] * nd)
    out_pad = list(node.attrs.get("output_padding") or [0] * nd)
    pads = list(node.attrs.get("pads") or [0] * (2 * nd))
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    out_shape = node.attrs.get("output_shape")
    full = [strides[i] * (in_sp[i] - 1) + out_pad[i] + (kernel[i] - 1) * dil[i] + 1
            for i in range(nd)]
    if out_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = list(out_shape)[-nd:] if out_shape is not None \
            else [in_sp[i] * strides[i] for i in range(nd)]
        begin = []
        for i in range(nd):
            total = full[i] - out[i]
            begin.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        return out, begin, strides, dil
    if auto_pad == "VALID":
        pads = [0] * (2 * nd)
    out = [full[i] - pads[i] - pads[nd + i] for i in range(nd)]
    return out, pads[:nd], strides, dil


def _regrouped_weights(ctx, w, group: int, Cg: int, rows: int):
    """W [C, Mg, k...] as A[g][(m, k)][c]: packed once if constant, else copied."""
    if w.is_const:
        weights = np.asarray(w.data, np.float32).reshape(group, Cg, rows).transpose(0, 2, 1)
        return _Weights(f"{w.name}/convtranspose", np.ascontiguousarray(weights))
    shape = (group, rows, Cg)
    a = Value(f"{w.name}/regrouped", shape, w.dtype)
    emit_strided(ctx, a, shape, contiguous_strides(shape), 0,
                 [(w, (Cg * rows, 1, rows), 0)], raw=True)
    return a


@op("ConvTranspose")
def conv_transpose(ctx, node):
    x, w, b = node.inputs[0], node.inputs[1], node.input(2)
    if x.dtype.kind != "f":
        raise UnsupportedOpError(f"{node.label()}: ConvTranspose on {x.dtype} tensors")
    x_shape, w_shape = ctx.shape(x), ctx.shape(w)
    nd = len(x_shape) - 2
    if not 1 <= nd <= 3:
        raise UnsupportedOpError(f"{node.label()}: {nd}-D ConvTranspose (1-D to 3-D only)")
    group = int(node.attrs.get("group", 1))
    N, C = x_shape[:2]
    Mg = w_shape[1]
    if w_shape[0] != C or C % group:
        raise ValueError(f"ConvTranspose channels: input {x_shape}, weights {w_shape}, "
                         f"group {group}")
    kernel = list(node.attrs.get("kernel_shape") or w_shape[2:])
    out_sp, begin, strides, dil = transpose_geometry(node, x_shape[2:], kernel)
    M = Mg * group
    out = ctx.output(node.outputs[0], (N, M, *out_sp), x.dtype)
    Cg, taps = C // group, int(np.prod(kernel))
    plane = int(np.prod(x_shape[2:], dtype=np.int64))
    rows = Mg * taps
    a = _regrouped_weights(ctx, w, group, Cg, rows)
    cols = Value(f"{out.name}/cols", (N, group, rows, plane), x.dtype)
    plain = Node("MatMul", [], [], {}, node.name)
    gemm_general(ctx, plain, cols, a, (1, group, rows, Cg), x, (N, group, Cg, plane),
                 (N, group), rows, plane, Cg)
    pad3 = lambda v, fill: [fill] * (3 - nd) + list(v)   # noqa: E731
    defines = {}
    bias = None
    if b is not None and b.name:
        bias = b
        defines["HAS_BIAS"] = True
    od, oh, ow = pad3(out_sp, 1)
    ctx.launch("col2im", (ow, oh, N * M * od),
               [cols, bias, out, int_vec(pad3(x_shape[2:], 1)), int_vec((od, oh, ow)),
                int_vec(pad3(kernel, 1)), int_vec(pad3(strides, 1)), int_vec(pad3(begin, 0)),
                int_vec(pad3(dil, 1)), np.int32(M), np.int32(group)], defines)


@op("Col2Im", shape_inputs=(1, 2))
def col2im(ctx, node):
    """Sum sliding blocks [N, C*prod(block), L] back into images [N, C, *image]."""
    x = node.inputs[0]
    image = [int(d) for d in const_input(ctx, node, 1, "image_shape").reshape(-1)]
    block = [int(d) for d in const_input(ctx, node, 2, "block_shape").reshape(-1)]
    nd = len(image)
    if not 1 <= nd <= 3 or len(block) != nd:
        raise UnsupportedOpError(f"{node.label()}: Col2Im over {nd} spatial dims "
                                 f"(1 to 3 supported)")
    dil = list(node.attrs.get("dilations") or [1] * nd)
    pads = list(node.attrs.get("pads") or [0] * (2 * nd))
    strides = list(node.attrs.get("strides") or [1] * nd)
    grid = [(image[i] + pads[i] + pads[nd + i] - (dil[i] * (block[i] - 1) + 1)) // strides[i]
            + 1 for i in range(nd)]
    n, rows, length = ctx.shape(x)
    taps = int(np.prod(block))
    if rows % taps or length != int(np.prod(grid)):
        raise ValueError(f"Col2Im input {ctx.shape(x)} does not fit image {image}, block "
                         f"{block} ({int(np.prod(grid))} block positions)")
    channels = rows // taps
    out = ctx.output(node.outputs[0], (n, channels, *image), x.dtype)
    pad3 = lambda v, fill: [fill] * (3 - nd) + list(v)   # noqa: E731
    od, oh, ow = pad3(image, 1)
    ctx.launch("col2im", (ow, oh, n * channels * od),
               [x, None, out, int_vec(pad3(grid, 1)), int_vec((od, oh, ow)),
                int_vec(pad3(block, 1)), int_vec(pad3(strides, 1)), int_vec(pad3(pads[:nd], 0)),
                int_vec(pad3(dil, 1)), np.int32(channels), np.int32(1)])
