"""Pooling on kernels_cl/pool.cl: MaxPool (with its Indices output),
AveragePool, LpPool over 1 to 3 spatial dims, the global pools, and
MaxUnpool (a zero fill and a scatter, kernels_cl/scatter.cl)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import UnsupportedOpError
from ._util import C_TYPES, RAW_TYPES, const_input, float_literal, int_vec
from .conv.shape import Window
from .gather import emit_fill, index_type
from .registry import op


def pool_window(node, shape) -> Window:
    """The pooling window over `shape`'s spatial dims, ceil_mode included."""
    nd = len(shape) - 2
    window = Window.of(node, shape[2:], list(node.attrs["kernel_shape"]))
    if not node.attrs.get("ceil_mode", 0):
        return window
    out = []
    for i in range(nd):
        eff = (window.kernel[i] - 1) * window.dilations[i] + 1
        o = -(-(shape[2 + i] + window.begin[i] + window.end[i] - eff)
              // window.strides[i]) + 1
        # the last window must start inside the input or the left padding
        if (o - 1) * window.strides[i] >= shape[2 + i] + window.begin[i]:
            o -= 1
        out.append(o)
    return replace(window, out=tuple(out))


def _element_defines(ctx, node, x) -> dict:
    if x.dtype.kind == "f":
        return {}
    if node.op != "MaxPool" or np.dtype(x.dtype) not in C_TYPES:
        raise UnsupportedOpError(f"{node.label()}: {node.op} on {x.dtype} tensors "
                                 f"(opset {ctx.opset})")
    return {"RAW": True, "T": C_TYPES[np.dtype(x.dtype)]}


def _pool(ctx, node, kind: str, p: float = 2.0) -> None:
    x = node.inputs[0]
    shape = ctx.shape(x)
    nd = len(shape) - 2
    if not 1 <= nd <= 3:
        raise UnsupportedOpError(f"{node.label()}: {nd}-D {node.op} (1-D to 3-D only)")
    window = pool_window(node, shape)
    begin, end, strides, dil = window.begin, window.end, window.strides, window.dilations
    out_sp, kernel = window.out, window.kernel
    if any(o <= 0 for o in out_sp):
        raise ValueError(f"{node.op} output would be empty: input {shape}, "
                         f"kernel {list(kernel)}")
    N, C = shape[:2]
    out = ctx.output(node.outputs[0], (N, C, *out_sp), x.dtype)
    defines = {f"POOL_{kind}": True, **_element_defines(ctx, node, x)}
    indices = node.outputs[1] if len(node.outputs) > 1 and node.outputs[1].name else None
    if nd == 2 and kind in ("MAX", "AVG") and indices is None and "RAW" not in defines:
        # the common case, with the window compiled in (pool.cl pool2d)
        defines.update(KH=kernel[0], KW=kernel[1], SH=strides[0], SW=strides[1],
                       DH=dil[0], DW=dil[1])
        args = [x, out, int_vec((*shape[2:], *out_sp)), int_vec((*begin, *end)),
                np.int32(node.attrs.get("count_include_pad", 0))]
        if ctx.policy.pool_rows:   # a row per work-item (pool.cl pool2d_rows)
            ctx.launch("pool", (out_sp[0], N * C), args, defines, entry="pool2d_rows",
                       lsize=(1, 1))
        else:
            ctx.launch("pool", (out_sp[1], out_sp[0], N * C), args, defines, entry="pool2d")
        return
    if nd < 3:
        defines["NO_DEPTH"] = True
    if kind == "LP":
        defines["LP_P"] = float_literal(p)
    if indices is not None:
        ctx.output(indices, out.shape, np.int64)
        defines["WITH_INDICES"] = True

    def as3(values, fill):
        return int_vec([fill] * (3 - nd) + list(values))

    od, oh, ow = [1] * (3 - nd) + list(out_sp)
    args = [x, out, indices, as3(shape[2:], 1), as3(out_sp, 1), as3(kernel, 1),
            as3(strides, 1), as3(begin, 0), as3(end, 0), as3(dil, 1),
            np.int32(node.attrs.get("count_include_pad", 0)),
            np.int32(node.attrs.get("storage_order", 0))]
    ctx.launch("pool", (ow, oh, N * C * od), args, defines, entry="pool")


@op("MaxPool")
def max_pool(ctx, node):
    _pool(ctx, node, "MAX")


@op("AveragePool")
def average_pool(ctx, node):
    _pool(ctx, node, "AVG")


@op("LpPool")
def lp_pool(ctx, node, p: int = 2):
    _pool(ctx, node, "LP", node.attrs.get("p", p))


def _global(ctx, node, kind: str, p: float = 2.0) -> None:
    x = node.inputs[0]
    shape = ctx.shape(x)
    rows = shape[0] * shape[1]
    length = int(np.prod(shape[2:], dtype=np.int64))
    out = ctx.output(node.outputs[0], shape[:2] + (1,) * (len(shape) - 2), x.dtype)
    defines = {f"POOL_{kind}": True}
    if kind == "LP":
        defines["LP_P"] = float_literal(p)
    ctx.launch("pool", (rows,), [x, out, np.int32(rows), np.int32(length)], defines,
               entry="global_pool")


@op("GlobalAveragePool")
def global_average_pool(ctx, node):
    _global(ctx, node, "AVG")


@op("GlobalMaxPool")
def global_max_pool(ctx, node):
    _global(ctx, node, "MAX")


@op("GlobalLpPool")
def global_lp_pool(ctx, node, p: int = 2):
    _global(ctx, node, "LP", node.attrs.get("p", p))


@op("MaxUnpool", shape_inputs=(2,))
def max_unpool(ctx, node):
    """Zeros, then each input element written at its flat index.

    With output_shape, indices are flat indices into that shape, as MaxPool
    on the original input produced them (onnxruntime and PyTorch agree; the
    ONNX reference re-lays them out from the default shape instead)."""
    x, indices = node.inputs[0], node.inputs[1]
    shape = ctx.shape(x)
    nd = len(shape) - 2
    if not 1 <= nd <= 3:
        raise UnsupportedOpError(f"{node.label()}: {nd}-D MaxUnpool (1-D to 3-D only)")
    given = const_input(ctx, node, 2, "output_shape")
    if given is None:
        kernel = node.attrs["kernel_shape"]
        strides = node.attrs.get("strides") or [1] * nd
        pads = node.attrs.get("pads") or [0] * (2 * nd)
        out_shape = list(shape[:2]) + [(shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i]
                                       - pads[nd + i] for i in range(nd)]
    else:
        out_shape = [int(d) for d in given.reshape(-1)]
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    emit_fill(ctx, out, 0)
    pad3 = [1] * (3 - nd)
    ctx.launch("scatter", (int(np.prod(ctx.shape(indices), dtype=np.int64)),),
               [out, indices, x, int_vec(pad3 + out_shape[2:]), int_vec(pad3 + out_shape[2:]),
                np.int32(out_shape[0] * out_shape[1])],
               {"RAW": True, "T": RAW_TYPES[ctx.itemsize(x)],
                "IDX_T": index_type(node, indices)}, entry="scatter_flat")
