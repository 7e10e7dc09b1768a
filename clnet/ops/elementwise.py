"""Elementwise, broadcasting and activation ops, all on kernels_cl/elementwise.cl.

Every op here is one expression in ``a``, ``b``, ``c`` (its inputs, as float)
and the parameters ``P0``/``P1``; the shared kernel does the indexing.
"""
from __future__ import annotations

import re

import numpy as np
from pyopencl import cltypes

from ..errors import UnsupportedOpError
from .registry import op

MAX_RANK = 8
RAW_TYPES = {1: "uchar", 2: "ushort", 4: "uint", 8: "ulong"}
C_TYPES = {np.dtype(np.int64): "long", np.dtype(np.int32): "int", np.dtype(np.int8): "char",
           np.dtype(np.uint8): "uchar", np.dtype(np.bool_): "uchar", np.dtype(np.int16): "short",
           np.dtype(np.uint16): "ushort", np.dtype(np.uint32): "uint", np.dtype(np.uint64): "ulong"}
_SAFE_EXPR = re.compile(r"^[A-Za-z0-9_.+\-*/%<>=!?:&|^(),]+$")


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


def _int8(values) -> np.ndarray:
    return int_vec(values, 8)


def emit_strided(ctx, out, shape, out_strides, out_base, operands, expr="a",
                 params=(), raw=False, compute=None, types=None) -> None:
    """One launch of the elementwise kernel.

    operands: up to three (value, strides, base) triples read at
    ``base + sum(coord * stride)``; the output is written likewise.
    raw: copy bits (any dtype) instead of doing float arithmetic.
    types: optional C types per operand name ('OUT', 'A', 'B', 'C') for
    non-float operands; compute: the compute type (default float).
    """
    total = int(np.prod(shape, dtype=np.int64))
    if total == 0:
        return
    if total >= 2 ** 31:
        raise UnsupportedOpError(f"{ctx._node.label()}: tensors of {total} elements exceed "
                                 f"32-bit indexing")
    stride_sets = [out_strides] + [s for _, s, _ in operands]
    mshape, mstrides = merge_dims(shape, stride_sets)
    if len(mshape) > MAX_RANK:
        raise UnsupportedOpError(f"{ctx._node.label()}: broadcasting over {len(mshape)} "
                                 f"non-mergeable dims (at most {MAX_RANK})")
    defines = {"NIN": len(operands), "RANK": len(mshape)}
    if raw:
        ctype = RAW_TYPES[ctx.itemsize(out)]
        defines.update(CT=ctype, OUT_RAW=True, OUT_T=ctype, A_RAW=True, A_T=ctype)
    else:
        clean = expr.replace(" ", "")
        if not _SAFE_EXPR.match(clean) or "--" in clean or "++" in clean:
            raise ValueError(f"unsafe kernel expression {expr!r}")
        defines["EXPR"] = f"({clean})"
        if compute:
            defines["CT"] = compute
        for name, ctype in (types or {}).items():
            defines[f"{name}_RAW"] = True
            defines[f"{name}_T"] = ctype
    for i, value in enumerate(params[:2]):
        defines[f"P{i}"] = _float_literal(value)
    pad = [(operands[0][0] if operands else out)] * (3 - len(operands))
    buffers = [v for v, _, _ in operands] + pad
    strides = list(mstrides[1:]) + [(0,) * len(mshape)] * (3 - len(operands))
    bases = [out_base] + [b for _, _, b in operands] + [0] * (3 - len(operands))
    args = [out] + buffers + [np.int32(total), _int8(mshape), _int8(mstrides[0])]
    args += [_int8(s) for s in strides] + [int_vec(bases)]
    ctx.launch("elementwise", (total,), args, defines)


def _float_literal(value: float) -> str:
    value = float(value)
    if np.isnan(value):
        return "NAN"
    if np.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    return f"{value!r}f" if "e" in repr(value) or "." in repr(value) else f"{value!r}.0f"


def emit_map(ctx, out, inputs, expr, params=(), out_dtype=None, types=None, compute=None):
    """out = expr(inputs...) with ONNX multidirectional broadcasting."""
    shapes = [ctx.shape(v) for v in inputs]
    out_shape = tuple(np.broadcast_shapes(*shapes))
    ctx.output(out, out_shape, out_dtype or inputs[0].dtype)
    operands = [(v, broadcast_strides(s, out_shape), 0) for v, s in zip(inputs, shapes)]
    emit_strided(ctx, out, out_shape, contiguous_strides(out_shape), 0, operands, expr,
                 params, types=types, compute=compute)


def _require_float(ctx, node) -> None:
    for value in node.inputs:
        if value is not None and value.dtype is not None and value.dtype.kind != "f":
            raise UnsupportedOpError(
                f"{node.label()}: input {value.name!r} has dtype {value.dtype}; only float "
                f"tensors are computed on the device for {node.op} (opset {ctx.opset})")


# ---------------------------------------------------------------- unary --
UNARY = {
    "Relu": "fmax(a,0.0f)",
    "Sigmoid": "1.0f/(1.0f+exp(-a))",
    "Tanh": "tanh(a)",
    "Neg": "-a",
    "Abs": "fabs(a)",
    "Exp": "exp(a)",
    "Log": "log(a)",
    "Sqrt": "sqrt(a)",
    "Reciprocal": "1.0f/a",
    "Floor": "floor(a)",
    "Ceil": "ceil(a)",
    "Erf": "erf(a)",
    "Softplus": "a>20.0f?a:log1p(exp(a))",
    "Softsign": "a/(1.0f+fabs(a))",
    "HardSwish": "a*clamp(a*(1.0f/6.0f)+0.5f,0.0f,1.0f)",
}


def _unary(expr):
    def lower(ctx, node):
        _require_float(ctx, node)
        emit_map(ctx, node.outputs[0], [node.inputs[0]], expr)
    return lower


for _name, _expr in UNARY.items():
    op(_name)(_unary(_expr))


@op("LeakyRelu")
def leaky_relu(ctx, node, alpha: float = 0.01):
    _require_float(ctx, node)
    alpha = node.attrs.get("alpha", alpha)
    emit_map(ctx, node.outputs[0], [node.inputs[0]], "a>0.0f?a:a*P0", (alpha,))


@op("HardSigmoid")
def hard_sigmoid(ctx, node, alpha: float = 0.2, beta: float = 0.5):
    _require_float(ctx, node)
    alpha, beta = node.attrs.get("alpha", alpha), node.attrs.get("beta", beta)
    emit_map(ctx, node.outputs[0], [node.inputs[0]], "clamp(a*P0+P1,0.0f,1.0f)", (alpha, beta))


@op("Elu")
def elu(ctx, node, alpha: float = 1.0):
    _require_float(ctx, node)
    emit_map(ctx, node.outputs[0], [node.inputs[0]], "a>0.0f?a:P0*(exp(a)-1.0f)",
             (node.attrs.get("alpha", alpha),))


def clip_bounds(ctx, node) -> tuple:
    """(min, max) of Clip: attributes before opset 11, constant inputs after."""
    lo, hi = -np.inf, np.inf
    if ctx.opset < 11:
        return node.attrs.get("min", lo), node.attrs.get("max", hi)
    for index in (1, 2):
        value = node.input(index)
        if value is None or value.name == "":
            continue
        if not value.is_const:
            raise UnsupportedOpError(f"{node.label()}: Clip bound {value.name!r} must be a "
                                     f"constant (opset {ctx.opset})")
        bound = float(np.asarray(value.data).reshape(-1)[0])
        lo, hi = (bound, hi) if index == 1 else (lo, bound)
    return lo, hi


@op("Clip")
def clip(ctx, node):
    _require_float(ctx, node)
    lo, hi = clip_bounds(ctx, node)
    emit_map(ctx, node.outputs[0], [node.inputs[0]], "fmin(fmax(a,P0),P1)", (lo, hi))


# --------------------------------------------------------------- binary --
BINARY = {"Add": "a+b", "Sub": "a-b", "Mul": "a*b", "Div": "a/b", "Pow": "pow(a,b)",
          "Max": "fmax(a,b)", "Min": "fmin(a,b)"}


def _binary(expr):
    def lower(ctx, node):
        _require_float(ctx, node)
        inputs = [v for v in node.inputs if v is not None]
        if len(inputs) == 1:
            emit_map(ctx, node.outputs[0], inputs, "a")
            return
        if len(inputs) > 2:  # variadic Max/Min: fold pairwise at plan time
            raise UnsupportedOpError(f"{node.label()}: {node.op} with {len(inputs)} inputs")
        emit_map(ctx, node.outputs[0], inputs, expr)
    return lower


for _name, _expr in BINARY.items():
    op(_name)(_binary(_expr))


@op("BatchNormalization")
def batch_norm(ctx, node, epsilon: float = 1e-5):
    """Inference form: y = x * scale' + shift' with per-channel constants."""
    _require_float(ctx, node)
    x = node.inputs[0]
    params = node.inputs[1:5]
    if any(p is None or not p.is_const for p in params):
        raise UnsupportedOpError(f"{node.label()}: BatchNormalization needs constant scale, "
                                 f"bias, mean and variance (training mode is not supported)")
    if node.attrs.get("training_mode", 0):
        raise UnsupportedOpError(f"{node.label()}: BatchNormalization training_mode=1")
    scale, shift = batchnorm_affine(node, epsilon)
    shape = ctx.shape(x)
    channel_shape = (len(scale),) + (1,) * max(len(shape) - 2, 0)
    ctx.output(node.outputs[0], shape, x.dtype)
    s_w = ctx.weight(scale.reshape(channel_shape), (node.inputs[1].name, "bn_scale"))
    b_w = ctx.weight(shift.reshape(channel_shape), (node.inputs[1].name, "bn_shift"))
    strides_c = broadcast_strides(channel_shape, shape)
    out = node.outputs[0]
    emit_strided(ctx, out, shape, contiguous_strides(shape), 0,
                 [(x, contiguous_strides(shape), 0), (s_w, strides_c, 0), (b_w, strides_c, 0)],
                 "a*b+c")


def batchnorm_affine(node, epsilon: float = 1e-5) -> tuple:
    gamma, beta, mean, var = (np.asarray(v.data, dtype=np.float64) for v in node.inputs[1:5])
    eps = node.attrs.get("epsilon", epsilon)
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    return scale.astype(np.float32), shift.astype(np.float32)
