"""Elementwise, broadcasting and activation ops, all on kernels_cl/elementwise.cl.

Every op here is one expression in ``a``, ``b``, ``c`` (its inputs) and the
parameters ``P0``/``P1``; the shared kernel does the indexing.  Float tensors
compute in float (float64 ones too: stored and computed as float32, returned
as float64); integer and bool tensors compute in their own C type (bool is
uchar).  Cast also converts to and from bfloat16, float8, float4 and 2/4-bit
integers, whose bits travel as uchar/ushort.
"""
from __future__ import annotations

import ml_dtypes as md
import numpy as np
from onnx import helper

from ..errors import UnsupportedOpError
from ..graph import Value
from ._util import C_TYPES, contiguous_strides, present_inputs, require_float
from .registry import op
from .strided import emit_map, emit_strided, emit_typed


# ---------------------------------------------------------------- unary --
# op: (float expression, integer expression or None)
UNARY = {
    "Relu": ("FMAX(a,0.0f)", "a>0?a:0"),      # FMAX/FMIN: a NaN propagates
    "Sigmoid": ("1.0f/(1.0f+exp(-a))", None),
    "Tanh": ("tanh(a)", None),
    "Neg": ("-a", "-a"),
    "Abs": ("fabs(a)", "a<0?-a:a"),
    "Sign": ("a!=a?a:sign(a)", "(a>0)-(a<0)"),
    "Exp": ("exp(a)", None),
    "Log": ("log(a)", None),
    "Sqrt": ("sqrt(a)", None),
    "Reciprocal": ("1.0f/a", None),
    "Floor": ("floor(a)", None),
    "Ceil": ("ceil(a)", None),
    "Round": ("rint(a)", None),
    "Erf": ("erf_fast(a)", None),
    "Sin": ("sin(a)", None), "Cos": ("cos(a)", None), "Tan": ("tan(a)", None),
    "Asin": ("asin(a)", None), "Acos": ("acos(a)", None), "Atan": ("atan(a)", None),
    "Sinh": ("sinh(a)", None), "Cosh": ("cosh(a)", None), "Asinh": ("asinh(a)", None),
    "Acosh": ("acosh(a)", None), "Atanh": ("atanh(a)", None),
    "Softplus": ("a>20.0f?a:log1p(exp(a))", None),
    "Softsign": ("a/(1.0f+fabs(a))", None),
    "HardSwish": ("a*clamp(a*(1.0f/6.0f)+0.5f,0.0f,1.0f)", None),
    "Mish": ("a*tanh(a>20.0f?a:log1p(exp(a)))", None),
    "Not": ("a==0.0f", "!a"),
    "BitwiseNot": (None, "~a"),
    "IsNaN": ("isnan(a)", "0"),
}
BOOL_RESULT = {"Not", "IsNaN", "IsInf"}


def _unary(fexpr, iexpr):
    def lower(ctx, node):
        x = node.inputs[0]
        if fexpr is None and x.dtype is not None and x.dtype.kind == "f":
            raise UnsupportedOpError(f"{node.label()}: {node.op} needs integer tensors, got "
                                     f"{x.dtype}")
        out_dtype = np.bool_ if node.op in BOOL_RESULT else None
        emit_typed(ctx, node.outputs[0], [x], fexpr, iexpr, out_dtype=out_dtype)
    return lower


for _name, (_fexpr, _iexpr) in UNARY.items():
    op(_name)(_unary(_fexpr, _iexpr))


# op: (float expression in a and the parameters P0/P1, ((attribute, default), ...))
ACTIVATIONS = {
    "LeakyRelu": ("a>0.0f?a:a*P0", (("alpha", 0.01),)),
    "HardSigmoid": ("FMIN(FMAX(a*P0+P1,0.0f),1.0f)", (("alpha", 0.2), ("beta", 0.5))),
    "Elu": ("a>0.0f?a:P0*(exp(a)-1.0f)", (("alpha", 1.0),)),
    "Selu": ("a>0.0f?P1*a:P1*P0*(exp(a)-1.0f)", (("alpha", 1.67326319217681884765625),
                                                  ("gamma", 1.05070102214813232421875))),
    "Celu": ("FMAX(a,0.0f)+FMIN(P0*(exp(a/P0)-1.0f),0.0f)", (("alpha", 1.0),)),
    "ThresholdedRelu": ("a>P0?a:0.0f", (("alpha", 1.0),)),
    "Shrink": ("a<-P1?a+P0:(a>P1?a-P0:0.0f)", (("bias", 0.0), ("lambd", 0.5))),
    "Swish": ("a/(1.0f+exp(-P0*a))", (("alpha", 1.0),)),
}


def activation_expr(node) -> tuple:
    """(float expression in a, P0, P1; its parameters) of an activation op."""
    if node.op == "Gelu":
        if node.attrs.get("approximate", "none") == "tanh":
            return "0.5f*a*(1.0f+tanh(0.7978845608028654f*(a+0.044715f*a*a*a)))", ()
        return "0.5f*a*(1.0f+erf_fast(a*0.7071067811865476f))", ()
    expr, attrs = ACTIVATIONS[node.op]
    return expr, tuple(float(node.attrs.get(name, default)) for name, default in attrs)


@op("Gelu", *ACTIVATIONS)
def activation(ctx, node):
    require_float(ctx, node)
    expr, params = activation_expr(node)
    emit_map(ctx, node.outputs[0], [node.inputs[0]], expr, params)


@op("IsInf")
def is_inf(ctx, node, detect_negative: int = 1, detect_positive: int = 1):
    neg = node.attrs.get("detect_negative", detect_negative)
    pos = node.attrs.get("detect_positive", detect_positive)
    expr = {(1, 1): "isinf(a)", (1, 0): "a==-INFINITY", (0, 1): "a==INFINITY",
            (0, 0): "0"}[(int(bool(neg)), int(bool(pos)))]
    emit_typed(ctx, node.outputs[0], [node.inputs[0]], expr, "0", out_dtype=np.bool_)


@op("PRelu")
def prelu(ctx, node):
    x, slope = node.inputs[:2]
    emit_typed(ctx, node.outputs[0], [x, slope], "a<0.0f?a*b:a", "a<0?a*b:a")


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


@op("Clip", shape_inputs=(1, 2))
def clip(ctx, node):
    x = node.inputs[0]
    bounds = [node.input(i) for i in (1, 2)] if ctx.opset >= 11 else [None, None]
    bounds = [b if b is not None and b.name else None for b in bounds]
    if x.dtype.kind == "f" and all(b is None or b.is_const for b in bounds):
        lo, hi = clip_bounds(ctx, node)
        emit_map(ctx, node.outputs[0], [x], "FMIN(FMAX(a,P0),P1)", (lo, hi))
        return
    if ctx.opset < 11:
        require_float(ctx, node)
    inputs, fexpr, iexpr = [x], "a", "a"
    for bound, fn in ((bounds[0], "max"), (bounds[1], "min")):
        if bound is None:
            continue
        inputs.append(bound)
        name = "bc"[len(inputs) - 2]
        fexpr, iexpr = f"f{fn}({fexpr},{name})", f"{fn}({iexpr},{name})"
    emit_typed(ctx, node.outputs[0], inputs, fexpr, iexpr)


# --------------------------------------------------------------- binary --
# op: (float expression, integer expression or None)
BINARY = {
    "Add": ("a+b", "a+b"), "Sub": ("a-b", "a-b"), "Mul": ("a*b", "a*b"),
    "Div": ("a/b", "a/b"),
    "BitwiseAnd": (None, "a&b"), "BitwiseOr": (None, "a|b"), "BitwiseXor": (None, "a^b"),
}


def _binary(fexpr, iexpr):
    def lower(ctx, node):
        a, b = node.inputs[:2]
        if fexpr is None and a.dtype.kind == "f":
            raise UnsupportedOpError(f"{node.label()}: {node.op} needs integer tensors, got "
                                     f"{a.dtype}")
        emit_typed(ctx, node.outputs[0], [a, b], fexpr, iexpr)
    return lower


for _name, (_fexpr, _iexpr) in BINARY.items():
    op(_name)(_binary(_fexpr, _iexpr))


@op("Pow")
def power(ctx, node):
    """Pow: the result has the base's type; integer exponents use pown."""
    base, exponent = node.inputs[:2]
    expr = "pow(a,b)" if exponent.dtype.kind == "f" else "pown(a,(int)b)"
    if base.dtype.kind != "f":
        expr = f"rint({expr})" if exponent.dtype.kind != "f" else expr
    emit_typed(ctx, node.outputs[0], [base, exponent], expr, out_dtype=base.dtype,
               float_compute=True)


@op("Mod")
def mod(ctx, node, fmod: int = 0):
    a, b = node.inputs[:2]
    fexpr, iexpr = "fmod(a,b)", "a%b"
    if not node.attrs.get("fmod", fmod):  # the remainder takes the divisor's sign
        iexpr = "(a%b!=0&&((a%b<0)!=(b<0)))?a%b+b:a%b"
        fexpr = "(fmod(a,b)!=0.0f&&((fmod(a,b)<0.0f)!=(b<0.0f)))?fmod(a,b)+b:fmod(a,b)"
    emit_typed(ctx, node.outputs[0], [a, b], fexpr, iexpr)


@op("BitShift")
def bit_shift(ctx, node, direction: str = "LEFT"):
    left = node.attrs.get("direction", direction) == "LEFT"
    a, b = node.inputs[:2]
    bits = a.dtype.itemsize * 8   # shifts outside [0, bits) fill with the sign
    expr = f"(b<0||b>={bits})?0:a<<b" if left else f"(b<0||b>={bits})?(a<0?-1:0):a>>b"
    emit_typed(ctx, node.outputs[0], [a, b], None, expr)


# ------------------------------------------------------------- variadic --
VARIADIC = {"Sum": ("a+b", "a+b"), "Mean": ("a+b", "a+b"),
            "Max": ("FMAX(a,b)", "max(a,b)"), "Min": ("FMIN(a,b)", "min(a,b)")}


def _variadic(fexpr, iexpr):
    def lower(ctx, node):
        inputs = present_inputs(node)
        out = node.outputs[0]
        mean = node.op == "Mean" and len(inputs) > 1
        if len(inputs) == 1:
            emit_typed(ctx, out, inputs, "a", "a")
            return
        acc = inputs[0]
        for index, value in enumerate(inputs[1:], start=1):
            last = index == len(inputs) - 1
            target = out if last else Value(f"{out.name}#partial{index}")
            fx = f"({fexpr})*P0" if last and mean else fexpr
            emit_typed(ctx, target, [acc, value], fx, iexpr,
                       params=(1.0 / len(inputs),), out_dtype=inputs[0].dtype)
            acc = target
    return lower


for _name, (_fexpr, _iexpr) in VARIADIC.items():
    op(_name)(_variadic(_fexpr, _iexpr))


# ----------------------------------------------------------------- cast --
def _narrow_types() -> dict:
    """dtype -> (raw C type, decode(bits) expression, encode(x) expression with
    SAT for the saturate flag) of the narrow types Cast converts on the device."""
    def minifloat(e, m, bias, kind, maxbits):
        return (f"mf_decode(B,{e},{m},{bias},{kind})",
                f"mf_encode(X,{e},{m},{bias},{kind},{maxbits}u,SAT)")

    table = {
        md.bfloat16: ("ushort", "as_float(B<<16)", "bf16_encode(X)"),
        md.float8_e4m3fn: ("uchar",) + minifloat(4, 3, 7, 1, 126),
        md.float8_e4m3fnuz: ("uchar",) + minifloat(4, 3, 8, 2, 127),
        md.float8_e5m2: ("uchar",) + minifloat(5, 2, 15, 0, 123),
        md.float8_e5m2fnuz: ("uchar",) + minifloat(5, 2, 16, 2, 127),
        md.float4_e2m1fn: ("uchar",) + minifloat(2, 1, 1, 3, 7),
        md.float8_e8m0fnu: ("uchar", "e8m0_decode(B)", "e8m0_encode(X,ROUND,SAT)"),
        md.int4: ("uchar", "(((int)(B&15u))^8)-8", "((int)(X))&15"),
        md.uint4: ("uchar", "(int)(B&15u)", "((int)(X))&15"),
        md.int2: ("uchar", "(((int)(B&3u))^2)-2", "((int)(X))&3"),
        md.uint2: ("uchar", "(int)(B&3u)", "((int)(X))&3"),
    }
    return {np.dtype(k): v for k, v in table.items()}


NARROW = _narrow_types()
MINIFLOAT = {"MINIFLOAT": True}   # compiles elementwise.cl's codecs (mf_decode, ...)


def emit_cast(ctx, node, x, to_dtype) -> None:
    """node.outputs[0] = x converted to to_dtype (Cast's lowering, reused by quant.py)."""
    to_dtype = np.dtype(to_dtype)
    for dtype in (x.dtype, to_dtype):
        if dtype not in NARROW and (dtype.kind != "f" and dtype not in C_TYPES
                                    or dtype.kind == "f" and dtype.itemsize not in (2, 4, 8)):
            raise UnsupportedOpError(f"{node.label()}: {node.op} between {x.dtype} and "
                                     f"{to_dtype} is not supported")
    if x.dtype not in NARROW and to_dtype not in NARROW:
        expr = "a!=0" if to_dtype == np.bool_ else "a"
        emit_typed(ctx, node.outputs[0], [x], expr, expr, out_dtype=to_dtype)
        return
    _cast_narrow(ctx, node, x, to_dtype)


def _cast_narrow(ctx, node, x, to_dtype) -> None:
    """Casts from or to a narrow type: decode its bits, or encode into them."""
    types = {}
    compute = "float"
    expr = "a"
    if x.dtype in NARROW and x.dtype.kind == "f":
        pass    # float8_e5m2 counts as a float: its values arrive as float
    elif x.dtype in NARROW:
        ctype, decode, _ = NARROW[x.dtype]
        types["A"] = ctype
        compute = "uint"
        expr = decode.replace("B", "a")
    elif x.dtype.kind != "f":
        types["A"] = C_TYPES[x.dtype]
    if to_dtype in NARROW:
        ctype, decode, encode = NARROW[to_dtype]
        saturate = int(bool(node.attrs.get("saturate", 1)))
        rounding = {"up": 0, "down": 1, "nearest": 2}[node.attrs.get("round_mode", "up")]
        expr = encode.replace("X", f"(float)({expr})").replace("SAT", str(saturate)) \
            .replace("ROUND", str(rounding))
        if to_dtype.kind == "f":   # stored as float: round through the narrow type
            expr = decode.replace("B", f"({expr})")
        else:
            types["OUT"] = ctype
    elif to_dtype.kind != "f":
        types["OUT"] = C_TYPES[to_dtype]
        if to_dtype == np.bool_:
            expr = f"({expr})!=0"
    emit_map(ctx, node.outputs[0], [x], expr, out_dtype=to_dtype, types=types,
             compute=compute, extra_defines=MINIFLOAT)


# BitCast between float storage and raw bits: (C type of the integer side,
# float -> bits, bits -> float).
FLOAT_BITS = {
    2: ("ushort", "mf_encode(a,5,10,15,0,31743u,0)", "mf_decode(a,5,10,15,0)"),
    4: ("uint", "as_uint(a)", "as_float(a)"),
    8: ("ulong", None, "f64_decode(a)"),
}


@op("BitCast")
def bit_cast(ctx, node):
    """Reinterpret the bits as another type of the same width."""
    x = node.inputs[0]
    to_dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(node.attrs["to"])))
    if to_dtype.itemsize != x.dtype.itemsize or "O" in (x.dtype.kind, to_dtype.kind):
        raise UnsupportedOpError(f"{node.label()}: BitCast from {x.dtype} to {to_dtype} "
                                 f"(the widths must match, strings are not supported)")
    out = node.outputs[0]
    shape = ctx.shape(x)
    ctx.output(out, shape, to_dtype)
    src_float, dst_float = ctx.storage_dtype(x.dtype).kind == "f", \
        ctx.storage_dtype(to_dtype).kind == "f"
    if not src_float and not dst_float:
        strides = contiguous_strides(shape)
        emit_strided(ctx, out, shape, strides, 0, [(x, strides, 0)], raw=True)
        return
    ctype, encode, decode = FLOAT_BITS.get(x.dtype.itemsize, (None, None, None))
    if src_float and dst_float or ctype is None or (src_float and encode is None):
        raise UnsupportedOpError(f"{node.label()}: BitCast from {x.dtype} to {to_dtype} "
                                 f"needs the bits of a float64, which clnet stores as "
                                 f"float32")
    if src_float:
        emit_map(ctx, out, [x], encode, out_dtype=to_dtype, types={"OUT": ctype},
                 extra_defines=MINIFLOAT)
    else:
        emit_map(ctx, out, [x], decode, out_dtype=to_dtype, types={"A": ctype},
                 compute=ctype, extra_defines=MINIFLOAT)


@op("Cast")
def cast(ctx, node):
    try:
        to_dtype = helper.tensor_dtype_to_np_dtype(int(node.attrs["to"]))
    except (KeyError, TypeError, ValueError):
        raise UnsupportedOpError(f"{node.label()}: Cast to ONNX type {node.attrs.get('to')} "
                                 f"is not supported") from None
    emit_cast(ctx, node, node.inputs[0], to_dtype)


@op("CastLike")
def cast_like(ctx, node):
    emit_cast(ctx, node, node.inputs[0], node.inputs[1].dtype)
