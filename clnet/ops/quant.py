"""Quantized ops and storage conversions on kernels_cl/quant.cl.

* ``ConvertStorage`` (domain clnet): fp32 <-> fp16 storage copies inserted
  by the mixed-precision pass (clnet/passes/precision.py).
* ONNX QuantizeLinear, DequantizeLinear (per tensor, per axis or per block;
  8/16-bit and 2/4-bit integers on the device, float8/float4 by way of a
  float tensor and the Cast kernel's rounding), DynamicQuantizeLinear;
  MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv for 8- and
  16-bit integers, with int32 accumulation.
* onnxruntime's DynamicQuantizeLSTM (com.microsoft): LSTM on its int8
  weights dequantized at load.
* ``int8_weight``: weight-only int8 for float models (per output channel),
  dequantized by a small kernel right before the GEMM that reads it.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ..graph import Graph, Node, Value
from ..subgraph import const_value
from ._util import int_vec
from .conv.shape import ConvShape
from .elementwise import NARROW, emit_cast
from .gemm import batch_map, matmul_shapes
from .registry import op

INT_TYPES = {np.dtype(np.int8): "char", np.dtype(np.uint8): "uchar",
             np.dtype(np.int16): "short", np.dtype(np.uint16): "ushort",
             np.dtype(np.int32): "int"}
QUANT_TYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.uint16))
NARROW_INTS = tuple(d for d in NARROW if d.kind == "V" and d.name[:-1] in ("int", "uint"))
NARROW_FLOATS = tuple(d for d in NARROW
                      if d.name.startswith(("float8_e4", "float8_e5", "float4")))
GEMM_OPS = ("Conv", "Gemm", "MatMul")
INT8_MIN_ELEMENTS = 1024     # smaller weights are not worth a dequantize launch


# ------------------------------------------------------------ helpers ----
def _present(node, index):
    value = node.input(index)
    return value if value is not None and value.name else None


def _int_type(node, value, allowed=QUANT_TYPES) -> str:
    dtype = np.dtype(value.dtype)
    if dtype not in allowed:
        names = ", ".join(str(d) for d in allowed)
        raise UnsupportedOpError(f"{node.label()}: input {value.name!r} has type {dtype}; "
                                 f"{node.op} supports {names} here")
    return INT_TYPES[dtype]


def _range_defines(dtype) -> dict:
    info = np.iinfo(dtype)
    return {"QMIN": int(info.min), "QMAX": int(info.max)}


def _zeros(ctx, dtype):
    """A one-element zero buffer standing in for an omitted zero point."""
    return ctx.weight(np.zeros(1, dtype), ("zero", np.dtype(dtype).name))


def _axis_layout(ctx, node, shape, scale) -> tuple:
    """(geo, strides) int4s locating the scale of each element: per tensor,
    per axis or per block along the axis (block_size, opset 21)."""
    scale_shape = ctx.shape(scale)
    block = int(node.attrs.get("block_size", 0) or 0)
    count = int(np.prod(scale_shape, dtype=np.int64))
    if not block and (len(scale_shape) == 0 or count == 1):
        return int_vec((1, 1, 1, 0)), int_vec((0, 0, 0, 0))
    axis = node.attrs.get("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis < len(shape):
        raise ValueError(f"{node.label()}: axis {node.attrs.get('axis', 1)} is out of range "
                         f"for input {shape}")
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    if block:
        blocks = -(-shape[axis] // block)
        want = shape[:axis] + (blocks,) + shape[axis + 1:]
        if tuple(scale_shape) != tuple(want):
            raise ValueError(f"{node.label()}: scale of shape {scale_shape} does not match "
                             f"input {shape} in blocks of {block} along axis {axis} "
                             f"(expected {want})")
        return int_vec((inner, shape[axis], block, 0)), int_vec((blocks * inner, inner, 1, 0))
    if len(scale_shape) != 1 or shape[axis] != count:
        raise ValueError(f"{node.label()}: scale of shape {scale_shape} does not match "
                         f"axis {axis} of input {shape}")
    return int_vec((inner, count, 1, 0)), int_vec((0, 1, 0, 0))


# ----------------------------------------------------- storage copies ----
@op("ConvertStorage", domain="clnet")
def convert_storage(ctx, node):
    x = node.inputs[0]
    out = ctx.output(node.outputs[0], ctx.shape(x), x.dtype)
    defines = {"IN_HALF": ctx.value_half(x), "OUT_HALF": ctx.value_half(out)}
    ctx.launch("quant", (out.size,), [x, out, np.int32(out.size)], defines,
               entry="convert_storage")


# ------------------------------------------------ (de)quantize linear ----
def _out_qtype(ctx, node, zero):
    if zero is not None:
        return np.dtype(zero.dtype)
    to = node.attrs.get("output_dtype", 0)
    if to:
        from onnx import helper
        return np.dtype(helper.tensor_dtype_to_np_dtype(to))
    return np.dtype(np.uint8)


def _qtype_defines(node, dtype, prefix: str) -> dict:
    """C type, saturation range and bit conversions of an integer quantized
    type; 2/4-bit types take their decode/encode from the Cast table."""
    dtype = np.dtype(dtype)
    if dtype in QUANT_TYPES or dtype == np.dtype(np.int32) and prefix == "X":
        return {f"{prefix}_T": INT_TYPES[dtype], **_range_defines(dtype)}
    if dtype in NARROW_INTS:
        import ml_dtypes
        ctype, decode, encode = NARROW[dtype]
        info = ml_dtypes.iinfo(dtype)
        out = {f"{prefix}_T": ctype, "QMIN": int(info.min), "QMAX": int(info.max),
               f"{prefix}_DEC": decode}
        if prefix == "Y":
            out.update({"Y_ENC": encode, "ZP_DEC": decode})
        return out
    names = ", ".join(str(d) for d in QUANT_TYPES + NARROW_INTS + NARROW_FLOATS)
    raise UnsupportedOpError(f"{node.label()}: {node.op} with type {dtype} is not supported "
                             f"({names} are)")


def _as_float(ctx, node, value, tag: str):
    """value (a float8/float4 tensor) cast to a float tensor by the Cast kernel."""
    if value is None:
        return None
    tmp = Value(f"{node.outputs[0].name}#{tag}")
    emit_cast(ctx, Node("Cast", [value], [tmp], {}, f"{node.name}#{tag}"), value,
              np.float32)
    return tmp


@op("QuantizeLinear")
def quantize_linear(ctx, node):
    x, scale, zero = node.inputs[0], node.inputs[1], _present(node, 2)
    qtype = _out_qtype(ctx, node, zero)
    shape = ctx.shape(x)
    geo, strides = _axis_layout(ctx, node, shape, scale)
    if qtype in NARROW_FLOATS:
        _quantize_float(ctx, node, (x, scale, zero), qtype, geo, strides)
        return
    defines = _qtype_defines(node, qtype, "Y")
    defines["ZP_T"] = defines["Y_T"]
    out = ctx.output(node.outputs[0], shape, qtype)
    if zero is None:
        defines["NO_ZP"] = True
    args = [x, scale, zero if zero is not None else _zeros(ctx, qtype), ctx.scratch(8), out,
            np.int32(out.size), geo, strides]
    ctx.launch("quant", (out.size,), args, defines, entry="quantize_linear")


def _quantize_float(ctx, node, inputs, qtype, geo, strides) -> None:
    """x / scale + zero point as float, then Cast's rounding into qtype
    (honouring the saturate attribute, as Cast does)."""
    x, scale, zero = inputs
    zero_f = _as_float(ctx, node, zero, "zero")
    tmp = Value(f"{node.outputs[0].name}#unrounded")
    ctx.output(tmp, ctx.shape(x), np.float32)
    defines = {"Q_FLOAT": True}
    if zero is None:
        defines["NO_ZP"] = True
        zero_f = _zeros(ctx, np.float32)
    ctx.launch("quant", (tmp.size,), [x, scale, zero_f, ctx.scratch(8), tmp,
                                      np.int32(tmp.size), geo, strides],
               defines, entry="quantize_linear")
    emit_cast(ctx, node, tmp, qtype)


@op("DequantizeLinear")
def dequantize_linear(ctx, node):
    x, scale, zero = node.inputs[0], node.inputs[1], _present(node, 2)
    shape = ctx.shape(x)
    geo, strides = _axis_layout(ctx, node, shape, scale)
    if np.dtype(x.dtype) in NARROW_FLOATS:
        x, zero = _as_float(ctx, node, x, "x"), _as_float(ctx, node, zero, "zero")
        defines = {"X_FLOAT": True}
        zero_type = np.float32
    else:
        defines = _qtype_defines(node, x.dtype, "X")
        defines["ZP_T"] = defines["X_T"]
        zero_type = x.dtype
    out = ctx.output(node.outputs[0], shape, scale.dtype)
    if zero is None:
        defines["NO_ZP"] = True
    args = [x, scale, zero if zero is not None else _zeros(ctx, zero_type), out,
            np.int32(out.size), geo, strides]
    ctx.launch("quant", (out.size,), args, defines, entry="dequantize_linear")


@op("DynamicQuantizeLinear")
def dynamic_quantize_linear(ctx, node):
    x = node.inputs[0]
    y, y_scale, y_zero = node.outputs
    n = x.size
    ctx.output(y, ctx.shape(x), np.uint8)
    ctx.output(y_scale, (), x.dtype)
    ctx.output(y_zero, (), np.uint8)
    wg = 1 << (min(256, ctx.dev.max_work_group_size).bit_length() - 1)
    minmax = ctx.scratch(8)
    ctx.launch("quant", (wg,), [x, np.int32(n), minmax, y_scale, y_zero], {"WG": wg},
               entry="minmax", lsize=(wg,))
    defines = {"DYNAMIC": True, "Y_T": "uchar", "ZP_T": "uchar", "QMIN": 0, "QMAX": 255}
    geo, strides = int_vec((1, 1, 1, 0)), int_vec((0, 0, 0, 0))
    ctx.launch("quant", (n,), [x, y_scale, y_zero, minmax, y, np.int32(n), geo, strides],
               defines, entry="quantize_linear")


# ------------------------------------------------------ integer GEMMs ----
def _per_index(ctx, node, value, count: int, what: str) -> int:
    """Element stride of a zero point / scale: 0 per tensor, 1 per row/column."""
    if value is None:
        return 0
    size = int(np.prod(ctx.shape(value), dtype=np.int64))
    if size == 1:
        return 0
    if size == count and len([d for d in ctx.shape(value) if d != 1]) == 1:
        return 1
    raise UnsupportedOpError(f"{node.label()}: {what} {value.name!r} of shape "
                             f"{ctx.shape(value)} (only per-tensor or per-{count} supported)")


def _emit_qgemm(ctx, node, out, operands, zeros, dims, batches, requant=None) -> None:
    """One qgemm launch.  operands: (a, a dtype, b, b dtype) where a/b are
    Values or scratch; zeros: (za, zb, za_stride, zb_stride)."""
    M, N, K, Z, lda, ldb, row_z = dims
    a, a_dtype, b, b_dtype = operands
    za, zb, za_stride, zb_stride = zeros
    atype, btype = INT_TYPES[np.dtype(a_dtype)], INT_TYPES[np.dtype(b_dtype)]
    defines = {"A_T": atype, "B_T": btype}
    extra = [None, None, None, None, None]
    sa_stride = sb_stride = 0
    if requant is not None:
        bias, sa, sa_stride, sb, sb_stride, sy, yzp, ytype = requant
        defines.update({"REQUANT": True, "Y_T": INT_TYPES[ytype], **_range_defines(ytype)})
        if bias is not None:
            defines["HAS_BIAS"] = True
        if yzp is None:
            defines["NO_YZP"] = True
            yzp = _zeros(ctx, ytype)
        extra = [bias if bias is not None else _zeros(ctx, np.int32), sa, sb, sy, yzp]
    za = za if za is not None else _zeros(ctx, a_dtype)
    zb = zb if zb is not None else _zeros(ctx, b_dtype)
    zA, zB, zC = batches
    args = [a, b, out, za, zb, int_vec((za_stride, zb_stride, sa_stride, sb_stride)),
            np.int32(M), np.int32(N), np.int32(K), np.int32(lda), np.int32(ldb),
            int_vec(zA), int_vec(zB), int_vec(zC), np.int32(row_z)] + extra
    ctx.launch("quant", (-(-N // 4), -(-M // 4), Z), args, defines, entry="qgemm")


def _matmul_int(ctx, node, a, b, za, zb, requant_of=None):
    a2, b2, full, (M, N, K), out_shape = matmul_shapes(node, ctx.shape(a), ctx.shape(b))
    requant = requant_of(M, N) if requant_of else None
    out = ctx.output(node.outputs[0], out_shape, requant[-1] if requant else np.int32)
    maps = [batch_map(a2[:-2], full), batch_map(b2[:-2], full)]
    if None in maps:
        raise UnsupportedOpError(f"{node.label()}: {node.op} batch broadcast {a2} x {b2}")
    Z = int(np.prod(full, dtype=np.int64))
    zeros = (za, zb, _per_index(ctx, node, za, M, "a_zero_point"),
             _per_index(ctx, node, zb, N, "b_zero_point"))
    batches = ((*maps[0], M * K, 0), (*maps[1], K * N, 0), (M * N, 0, 0, 0))
    _int_type(node, a)
    _int_type(node, b)
    _emit_qgemm(ctx, node, out, (a, a.dtype, b, b.dtype), zeros, (M, N, K, Z, K, N, 0),
                batches, requant)


@op("MatMulInteger")
def matmul_integer(ctx, node):
    _matmul_int(ctx, node, node.inputs[0], node.inputs[1], _present(node, 2), _present(node, 3))


@op("QLinearMatMul")
def qlinear_matmul(ctx, node):
    a, sa, za, b, sb, zb, sy, zy = (node.input(i) for i in range(8))
    zy = zy if zy is not None and zy.name else None

    def requant(M, N):
        ytype = np.dtype(zy.dtype) if zy is not None else np.dtype(a.dtype)
        return (None, sa, _per_index(ctx, node, sa, M, "a_scale"), sb,
                _per_index(ctx, node, sb, N, "b_scale"), sy, zy, ytype)

    _matmul_int(ctx, node, a, b, za if za is not None and za.name else None,
                zb if zb is not None and zb.name else None, requant)


def _conv_int(ctx, node, x, w, zx, zw, requant_of=None):
    s = ConvShape.of(node, ctx.shape(x), ctx.shape(w))
    group, Mg = s.group, s.Mg
    K, P, Z = s.Cg * s.taps, s.pixels, s.N * s.group
    if zx is not None and int(np.prod(ctx.shape(zx), dtype=np.int64)) != 1:
        raise UnsupportedOpError(f"{node.label()}: per-channel input zero point "
                                 f"{zx.name!r} is not supported")
    requant = requant_of(s.M) if requant_of else None
    out = ctx.output(node.outputs[0], s.out_shape, requant[-1] if requant else np.int32)
    cols = ctx.scratch(Z * K * P * np.dtype(x.dtype).itemsize)
    ctx.launch("quant", (P, K, Z),
               [x, cols, zx if zx is not None else _zeros(ctx, x.dtype), np.int32(0),
                np.int32(s.Cg), np.int32(s.H), np.int32(s.W), np.int32(s.OH), np.int32(s.OW),
                np.int32(K), *s.window_args()],
               {"B_T": _int_type(node, x)}, entry="qim2col")
    zeros = (zw, zx, _per_index(ctx, node, zw, s.M, "w_zero_point"), 0)
    batches = ((1, group, Mg * K, 0), (1, Z, K * P, 0), (Mg * P, 0, 0, 0))
    _int_type(node, w)
    _emit_qgemm(ctx, node, out, (w, w.dtype, cols, x.dtype), zeros, (Mg, P, K, Z, K, P, Mg),
                batches, requant)


@op("ConvInteger")
def conv_integer(ctx, node):
    _conv_int(ctx, node, node.inputs[0], node.inputs[1], _present(node, 2), _present(node, 3))


@op("QLinearConv")
def qlinear_conv(ctx, node):
    x, sx, zx, w, sw, zw, sy, zy = (node.input(i) for i in range(8))
    bias = _present(node, 8)
    zy = zy if zy is not None and zy.name else None

    def requant(M):
        ytype = np.dtype(zy.dtype) if zy is not None else np.dtype(x.dtype)
        return (bias, sw, _per_index(ctx, node, sw, M, "w_scale"), sx, 0, sy, zy, ytype)

    _conv_int(ctx, node, x, w, zx if zx is not None and zx.name else None,
              zw if zw is not None and zw.name else None, requant)


# ------------------------------------------------ DynamicQuantizeLSTM ----
@op("DynamicQuantizeLSTM", domain="com.microsoft")
def dynamic_quantize_lstm(ctx, node):
    """An ONNX LSTM on the weights dequantized at load.  onnxruntime also
    rounds X and each step's h to uint8 before its integer GEMMs; clnet keeps
    them float: ddddocr's common_old.onnx differs from onnxruntime by 2.8e-3
    of the output range, with the same argmax at every step."""
    w, r = (_lstm_weight(node, 1 + k, 8 + 2 * k) for k in (0, 1))
    weights = [const_value(f"{node.name}/{tag}", data) for tag, data in (("W", w), ("R", r))]
    lstm = Node("LSTM", [node.input(0)] + weights + node.inputs[3:8], node.outputs,
                {k: v for k, v in node.attrs.items() if not k.startswith("_")},
                name=f"{node.name}/lstm")
    ctx.lower_subgraph(Graph([lstm], [], [], ctx.opset))
    ctx.begin_node(node)


def _lstm_weight(node, index: int, scale_index: int) -> np.ndarray:
    """Input `index` ([dirs, in, 4*hidden] int8/uint8, scales and zero points
    per direction or per column) as ONNX LSTM's float [dirs, 4*hidden, in]."""
    q, scale, zero = node.input(index), node.input(scale_index), node.input(scale_index + 1)
    if not all(v is not None and v.is_const for v in (q, scale, zero)):
        raise UnsupportedOpError(f"{node.label()}: the quantized weight {q.name!r}, its scale "
                                 f"and zero point must be initializers")
    data = np.asarray(q.data, np.float32)
    scale, zero = np.asarray(scale.data, np.float32), np.asarray(zero.data, np.float32)
    per_dir = (slice(None), None, None) if scale.ndim == 1 else (slice(None), None)
    weight = (data - zero[per_dir]) * scale[per_dir]
    return np.ascontiguousarray(weight.transpose(0, 2, 1))


# --------------------------------------------------- weight-only int8 ----
def int8_weight(ctx, array: np.ndarray, key: tuple):
    """Keep a GEMM weight as int8 with per-output-channel scales.

    Returns a Scratch holding the dequantized weight (filled by a launch
    emitted now, before the GEMM that reads it), or None to upload `array`
    as it is.  A weight laid out [..., K, T] (GEMM panels) gets one scale per
    (..., t) lane, i.e. per output channel; a 2-D weight one per row.
    """
    node = ctx.node
    if node.op not in GEMM_OPS or array.ndim not in (2, 4) or array.size < INT8_MIN_ELEMENTS:
        return None
    k, t = (array.shape[-2], array.shape[-1]) if array.ndim == 4 else (array.shape[-1], 1)
    q_key, s_key = key + ("int8",), key + ("int8_scale",)
    q_weight, s_weight = ctx.cached_weight(q_key), ctx.cached_weight(s_key)
    if q_weight is None or s_weight is None:
        q, scale = quantize_per_lane(np.asarray(array, np.float32), k, t)
        q_weight, s_weight = ctx.weight(q, q_key), ctx.weight(scale, s_key)
    out = ctx.scratch(array.size * ctx.storage_dtype(np.float32).itemsize)
    ctx.launch("quant", (array.size,), [q_weight, s_weight, out, np.int32(array.size),
                                        np.int32(k * t), np.int32(t)], entry="dequant_weight")
    return out


def quantize_per_lane(array: np.ndarray, k: int, t: int) -> tuple:
    """Symmetric int8 of array viewed as [lanes, k, t]: (q flat, scales flat)."""
    lanes = array.reshape(-1, k, t)
    peak = np.abs(lanes).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(lanes / scale[:, None, :]), -127, 127).astype(np.int8)
    return q.reshape(-1), scale.reshape(-1)
