"""FusedElementwise: a chain of elementwise ops in one kernel (kernels_cl/fused.cl).

passes/chains.py replaces each tree of elementwise nodes (each inner value
used by one node only) with one ``FusedElementwise`` node whose ``body`` is
those nodes.  Its lowering writes the body as one expression per node over
the kernel's loaded inputs x0..x7 (one-element constants become literals)
and launches it once; where that cannot be done for these shapes and types
(integer arithmetic, a cast to half, too many inputs, the policy's
``fuse_elementwise`` off) the body nodes are lowered one by one instead.
Inner values smaller than the output (a squeeze-excitation gate, a
broadcast row) are computed first by a launch of their own, so that
nothing costly is recomputed for every output element.
"""
from __future__ import annotations

import re

import numpy as np
from onnx import helper

from ..graph import Graph, Value
from ._util import C_TYPES, broadcast_strides, contiguous_strides, float_literal, int_vec, \
    merge_dims
from .elementwise import ACTIVATIONS, UNARY, activation_expr
from .registry import op
from .strided import MAX_RANK

OP = "FusedElementwise"
DOMAIN = "clnet"
MAX_INPUTS = 8
BINARY = {"Add": "a+b", "Sub": "a-b", "Mul": "a*b", "Div": "a/b", "PRelu": "a<0.0f?a*b:a"}
VARIADIC = {"Sum": "+", "Mean": "+", "Max": "FMAX", "Min": "FMIN"}  # NaN propagates
COMPARE = {"Equal": "==", "Less": "<", "Greater": ">", "LessOrEqual": "<=",
           "GreaterOrEqual": ">="}
LOGIC = {"And": "({0}*{1})", "Or": "fmax({0},{1})", "Xor": "fabs({0}-{1})"}  # on 1/0 floats
BOOL_OUT = set(COMPARE) | set(LOGIC) | {"Not"}   # bool values live only inside a chain
FLOAT_TYPES = (1, 11)               # Cast to float or double (computed as float)
BOOL_TYPE = 9
UNARY_FLOAT = {name for name, (fexpr, _) in UNARY.items()
               if fexpr is not None and name not in ("Not", "IsNaN")}
ELEMENTWISE = UNARY_FLOAT | set(ACTIVATIONS) | {"Gelu", "Pow", "Clip", "Where", "Cast"} \
    | set(BINARY) | set(VARIADIC) | BOOL_OUT
# ops cheaper to recompute for every output element than to launch apart
CHEAP = {"Add", "Sub", "Mul", "Neg", "Abs", "Relu", "Cast", "Clip", "Max", "Min", "Sum", "Where",
         "Not", "Floor", "Ceil", "Round", "Sign", "PRelu", "LeakyRelu"} | set(COMPARE) | set(LOGIC)
EXPENSIVE = 4      # an inner value this many times smaller than the output gets its own launch
_TOKEN = re.compile(r"\b([abc]|P[01])\b")


def fusible(node, opset: int) -> bool:
    """Whether a node can be part of a fused chain (decided without shapes)."""
    if node.domain not in ("", "ai.onnx") or node.epilogue is not None \
            or node.op not in ELEMENTWISE or len(node.outputs) != 1:
        return False
    if node.op == "Clip":
        if opset < 11:
            return True
        return all(v is None or not v.name or (v.is_const and np.size(v.data) == 1)
                   for v in node.inputs[1:3])
    if node.op == "Cast":
        return int(node.attrs.get("to", 0)) in FLOAT_TYPES + (BOOL_TYPE,)
    if node.op in VARIADIC:
        return len([v for v in node.inputs if v is not None and v.name]) >= 1
    return True


def bool_out(node) -> bool:
    """Whether a chain node makes a bool (kept inside chains: never a sink)."""
    return node.op in BOOL_OUT or (node.op == "Cast"
                                   and int(node.attrs.get("to", 0)) == BOOL_TYPE)


def literal_input(value) -> bool:
    """A one-element constant: written into the kernel as a literal."""
    return value is not None and value.is_const and np.size(value.data) == 1 \
        and np.asarray(value.data).dtype.kind in "fiub"


def _fill(expr: str, args: list, params=()) -> str:
    names = dict(zip("abc", args))
    names.update({f"P{i}": _literal(p) for i, p in enumerate(params)})
    expr = _TOKEN.sub(lambda m: names[m.group(1)], expr)
    expr = re.sub(r"\berf_fast\(", "ERF(", expr)
    expr = re.sub(r"\btanh\(", "TANH(", expr)
    return expr


def _literal(value) -> str:
    return f"((FT)({float_literal(float(value))}))"


ONE, ZERO = _literal(1.0), _literal(0.0)


def _power(exponent, base: str, args: list) -> str:
    """Pow with a constant exponent as multiplies or roots; else POW."""
    if literal_input(exponent):
        e = float(np.asarray(exponent.data).reshape(-1)[0])
        special = {1.0: "{0}", 2.0: "{0}*{0}", 3.0: "{0}*{0}*{0}", 4.0: "({0}*{0})*({0}*{0})",
                   0.5: "sqrt({0})", -0.5: "rsqrt({0})", -1.0: "1.0f/{0}",
                   -2.0: "1.0f/({0}*{0})", 0.0: ONE}
        if e in special:
            return special[e].format(base)
    return f"POW({base},{args[1]})"


def node_expr(node, args: list, opset: int) -> str:
    """The float expression of one body node over its inputs' expressions."""
    name = node.op
    if name in UNARY_FLOAT:
        return _fill(UNARY[name][0], args)
    if name in ACTIVATIONS or name == "Gelu":
        expr, params = activation_expr(node)
        return _fill(expr, args, params)
    if name in BINARY:
        return _fill(BINARY[name], args)
    if name == "Pow":
        return _power(node.inputs[1], args[0], args)
    if name == "Clip":
        from .elementwise import clip_bounds
        lo, hi = clip_bounds(_Opset(opset), node)
        return f"FMIN(FMAX({args[0]},{_literal(lo)}),{_literal(hi)})"
    if name in VARIADIC:
        sep = VARIADIC[name]
        expr = args[0]
        for arg in args[1:]:
            expr = f"({expr}{sep}{arg})" if sep == "+" else f"{sep}({expr},{arg})"
        return f"({expr})*{_literal(1.0 / len(args))}" if name == "Mean" else expr
    if name in COMPARE:
        return f"(({args[0]}){COMPARE[name]}({args[1]}))?{ONE}:{ZERO}"
    if name in LOGIC:
        return LOGIC[name].format(args[0], args[1])
    if name == "Not":
        return f"({args[0]}=={ZERO})?{ONE}:{ZERO}"
    if name == "Where":
        return f"({args[0]}!={ZERO})?({args[1]}):({args[2]})"
    if name == "Cast":
        if int(node.attrs.get("to", 0)) == BOOL_TYPE:
            return f"({args[0]}!={ZERO})?{ONE}:{ZERO}"
        return args[0]
    raise KeyError(name)


class _Opset:
    """What clip_bounds needs of a lowering context."""
    def __init__(self, opset: int):
        self.opset = opset


def _dtype(value) -> np.dtype:
    return np.dtype(value.dtype) if value.dtype is not None else np.dtype(np.float32)


def body_dtypes(body: list):
    """Each body output's dtype, or None where a node's inputs are not the
    types its float expression assumes (integer arithmetic: lowered unfused)."""
    dtypes: dict = {}
    for node in body:
        got = [dtypes.get(v) or _dtype(v) for v in node.inputs if v is not None and v.name]
        kinds = "".join("b" if d == np.bool_ else d.kind for d in got)
        floats = [d for d in got if d.kind == "f"]
        if node.op == "Where":
            ok = kinds[:1] == "b" and kinds[1:] == "ff"
        elif node.op == "Cast":
            ok = got[0] in C_TYPES or got[0] in (np.float32, np.float64)
        elif node.op == "Not":
            ok = kinds == "b"
        elif node.op in LOGIC:
            ok = kinds == "bb"
        elif node.op == "Pow":
            ok = kinds[:1] == "f" and kinds[1:] in ("f", "i")
        elif node.op == "Clip":
            ok = kinds[:1] == "f"
        else:
            ok = kinds and set(kinds) == {"f"}
        if not ok:
            return None
        if node.op == "Cast":
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(node.attrs["to"])))
        else:
            dtype = np.dtype(np.bool_) if node.op in BOOL_OUT else floats[0]
        dtypes[node.outputs[0]] = dtype
    return dtypes


@op(OP, domain=DOMAIN)
def fused_elementwise(ctx, node):
    full = list(node.body or ())
    softmax = full[-1].op == "Softmax"     # a chain ending in a row softmax
    body = full[:-1] if softmax else full
    inputs = [v for v in node.inputs if v is not None and v.name]
    dtypes = body_dtypes(body)
    if not ctx.policy.fuse_elementwise or all(v.is_const for v in inputs) or dtypes is None:
        _unfused(ctx, node, full)
        return
    shapes = {v: ctx.shape(v) for v in inputs}
    for member in body:   # every inner value's broadcast shape
        shapes[member.outputs[0]] = tuple(np.broadcast_shapes(
            *[shapes[v] for v in member.inputs if v is not None and v.name]))
    out = body[-1].outputs[0]
    rank = len(shapes[out])
    if softmax and (ctx.opset < 13 or rank == 0
                    or int(full[-1].attrs.get("axis", -1)) % rank != rank - 1):
        _unfused(ctx, node, full)
        return
    size = int(np.prod(shapes[out], dtype=np.int64))
    small = {m for m in body if m.outputs[0] is not out
             and int(np.prod(shapes[m.outputs[0]], dtype=np.int64)) * EXPENSIVE <= size}
    # a small inner value used by a bigger one, if costly, is computed first
    done: set = set()
    for head in [m for m in body if m in small]:
        if any(head.outputs[0] in c.inputs for c in body if c not in small):
            part = _ancestors(head, body, small)
            if all(m.op in CHEAP for m in part):
                continue                  # cheaper to recompute than to launch
            if not _emit(ctx, part, head.outputs[0], shapes, np.float32):
                _unfused(ctx, node, full)
                return
            done.update(part)
    rest = [m for m in body if m not in done]
    if not _emit(ctx, rest, out, shapes, dtypes[out],
                 node.outputs[0] if softmax else None, softmax):
        _unfused(ctx, node, full)


def _ancestors(sink, body: list, members: set) -> list:
    """sink and the members it depends on, in body order."""
    produced = {m.outputs[0]: m for m in members}
    need, stack = {sink}, [sink]
    while stack:
        for value in stack.pop().inputs:
            producer = produced.get(value)
            if producer is not None and producer not in need:
                need.add(producer)
                stack.append(producer)
    return [m for m in body if m in need]


def _unfused(ctx, node, body: list) -> None:
    ctx.lower_subgraph(Graph(body, [], []))
    ctx.begin_node(node)


def _emit(ctx, body: list, out: Value, shapes: dict, dtype, target=None,
          softmax: bool = False) -> bool:
    """One launch of fused.cl computing `out` from body into `target` (default
    out itself), softmax: then a softmax along the last axis; False if it
    cannot."""
    produced = {m.outputs[0] for m in body}
    externals: list = []
    names: dict = {}
    lets = []
    for index, member in enumerate(body):
        args = []
        for value in member.inputs:
            if value is None or not value.name:
                args.append(None)
            elif value in names:
                args.append(names[value])
            elif literal_input(value):
                args.append(_literal(np.asarray(value.data).reshape(-1)[0]))
            elif value not in produced:
                if len(externals) == MAX_INPUTS:
                    return False
                externals.append(value)
                names[value] = f"x{len(externals) - 1}"
                args.append(names[value])
        present = [a for a in args if a is not None]
        expr = node_expr(member, present if member.op in VARIADIC else args, ctx.opset)
        names[member.outputs[0]] = f"t{index}"
        lets.append(f"LET(t{index},{expr})")
    out_shape = shapes[out]
    ctx.output(target or out, out_shape, dtype)
    total = int(np.prod(out_shape, dtype=np.int64))
    if total == 0:
        return True
    if total >= 2 ** 31 or not externals:
        return False
    operand_strides = [broadcast_strides(ctx.shape(v), out_shape) for v in externals]
    sets = [contiguous_strides(out_shape)] + operand_strides
    if softmax:   # the rows' dim stays a dim of its own
        oshape, ostrides = merge_dims(out_shape[:-1], [s[:-1] for s in sets])
        mshape = tuple(oshape) + (out_shape[-1],)
        mstrides = [tuple(o) + (s[-1],) for o, s in zip(ostrides, sets)]
    else:
        mshape, mstrides = merge_dims(out_shape, sets)
    if len(mshape) > MAX_RANK:
        return False
    inner, rows = mshape[-1], total // mshape[-1]
    in_strides = mstrides[1:]
    width = ctx.policy.elementwise_width
    if any(s[-1] not in (0, 1) for s in in_strides):
        width = 1
    while width > 1 and (width > inner or ctx.store_half and inner % width):
        width //= 2     # half storage: no tails (PoCL 3.1 crashed running a
                        # ternary in the scalar tail after vload_half8 blocks)
    defines = {"NIN": len(externals), "RANK": len(mshape), "VW": width,
               "BODY": "".join(lets), "RESULT": names[out]}
    for k, value in enumerate(externals):
        dtype = np.dtype(value.dtype) if value.dtype is not None else np.dtype(np.float32)
        if dtype.kind == "f":
            defines[f"X{k}_L"] = "F"
        else:
            defines.update({f"X{k}_L": "R", f"X{k}_T": C_TYPES[dtype]})
        defines[f"X{k}_V"] = "V" if in_strides[k][-1] == 1 else "S"
    outer = list(mshape[:-1])
    pad = [externals[0]] * (MAX_INPUTS - len(externals))
    zero = [(0,) * len(mshape)] * (MAX_INPUTS - len(externals))
    strides = [s[:-1] for s in in_strides] + [z[:-1] for z in zero]
    items = rows if softmax else rows * ((inner + width - 1) // width)
    args = [target or out] + externals + pad
    args += [np.int32(rows), np.int32(inner), int_vec(outer, 8)]
    args += [int_vec(s, 8) for s in strides]
    args += [int_vec([s[-1] for s in in_strides] + [0] * len(pad), 8)]
    ctx.launch("fused", (items,), args, defines, entry="fused_softmax" if softmax else None)
    return True
