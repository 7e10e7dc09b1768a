"""Einsum, lowered to strided copies and batched GEMMs.

Operands are contracted pairwise, left to right.  For a pair, every letter
is a batch letter (kept, in both), a free letter of one side (kept), or a
contracted letter (summed).  Each side is copied once into [batch, rows,
contracted] / [batch, contracted, columns] order (the copy also takes
diagonals, by summing the strides of a repeated letter, and broadcasts, by
stride 0), one GEMM multiplies them, and a last copy puts the letters in the
output's order.  A letter summed on one side only is contracted against a
stride-0 broadcast of the other side; a single operand is contracted against
a vector of ones.
"""
from __future__ import annotations

import string

import numpy as np

from ..graph import Node, Value
from ._util import contiguous_strides, require_float
from .gemm import gemm_general
from .registry import op
from .strided import emit_strided


class _Ones:
    """A constant vector of ones (the other side of a one-operand sum)."""

    def __init__(self, length: int):
        self.name = f"einsum/ones{length}"
        self.data = np.ones((length, 1), np.float32)
        self.dtype, self.is_const = self.data.dtype, True


def parse(equation: str, ranks: list) -> tuple:
    """(input letter strings, output letters), ellipses spelled out."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"equation {equation!r} has {len(terms)} operands, got {len(ranks)}")
    used = set(equation)
    spare = [c for c in string.ascii_uppercase + string.ascii_lowercase if c not in used]
    widest = 0
    for term, rank in zip(terms, ranks):
        if "..." in term:
            widest = max(widest, rank - (len(term) - 3))
    ellipsis = "".join(spare[:widest])
    inputs = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            count = rank - (len(term) - 3)
            term = term.replace("...", ellipsis[widest - count:])
        if len(term) != rank:
            raise ValueError(f"operand {term!r} does not match a rank-{rank} input")
        inputs.append(term)
    if arrow:
        output = rhs.replace("...", ellipsis)
    else:
        counts = {c: sum(t.count(c) for t in inputs) for c in set("".join(inputs))}
        output = ellipsis + "".join(sorted(c for c, n in counts.items()
                                           if n == 1 and c not in ellipsis))
    return inputs, output


def _view(letters: str, shape) -> dict:
    """letter -> (size, stride) of one operand; repeated letters are diagonals."""
    strides = contiguous_strides(shape)
    view: dict = {}
    for letter, size, stride in zip(letters, shape, strides):
        if letter in view:
            if view[letter][0] != size:
                raise ValueError(f"letter {letter!r} has sizes {view[letter][0]} and {size}")
            view[letter] = (size, view[letter][1] + stride)
        else:
            view[letter] = (size, stride)
    return view


def _copy(ctx, src, view: dict, order: str, sizes: dict, name: str) -> Value:
    """src's elements in `order` (broadcasting letters it lacks or has as 1)."""
    shape = tuple(sizes[c] for c in order)
    strides = tuple(view[c][1] if c in view and view[c][0] != 1 else 0 for c in order)
    dst = Value(name, shape, np.dtype(np.float32))
    emit_strided(ctx, dst, shape, contiguous_strides(shape), 0, [(src, strides, 0)], "a")
    return dst


def _contract(ctx, node, a, a_view, b, b_view, keep: set, sizes: dict, tag: str,
              out=None, out_letters=None) -> tuple:
    """(value, letters) of a and b contracted over the letters not in keep."""
    batch = [c for c in a_view if c in b_view and c in keep]
    rows = [c for c in a_view if c not in b_view and c in keep]
    cols = [c for c in b_view if c not in a_view and c in keep]
    summed = [c for c in dict.fromkeys(list(a_view) + list(b_view)) if c not in keep]
    count = lambda letters: int(np.prod([sizes[c] for c in letters], dtype=np.int64))  # noqa
    Z, M, N, K = count(batch), count(rows), count(cols), count(summed)
    a_copy = _copy(ctx, a, a_view, "".join(batch + rows + summed), sizes, f"{tag}/a")
    if b is None:
        b_arg = _Ones(K)
    else:
        b_arg = _copy(ctx, b, b_view, "".join(batch + summed + cols), sizes, f"{tag}/b")
    letters = "".join(batch + rows + cols)
    direct = out is not None and letters == out_letters
    result = out if direct else Value(f"{tag}/c", tuple(sizes[c] for c in letters),
                                      np.dtype(np.float32))
    plain = Node("MatMul", [], [], {}, node.name)
    if b is None or Z == 1:
        gemm_general(ctx, plain, result, a_copy, (Z * M, K), b_arg, (K, N), (), Z * M, N, K)
    else:
        gemm_general(ctx, plain, result, a_copy, (Z, M, K), b_arg, (Z, K, N), (Z,), M, N, K)
    return result, letters, direct


@op("Einsum")
def einsum(ctx, node):
    operands = [v for v in node.inputs if v is not None]
    require_float(ctx, node, *operands)
    shapes = [ctx.shape(v) for v in operands]
    inputs, output = parse(node.attrs["equation"], [len(s) for s in shapes])
    sizes: dict = {}
    views = [_view(letters, shape) for letters, shape in zip(inputs, shapes)]
    for view in views:
        for letter, (size, _) in view.items():
            if sizes.get(letter, 1) not in (1, size) and size != 1:
                raise ValueError(f"letter {letter!r} has sizes {sizes[letter]} and {size}")
            sizes[letter] = max(sizes.get(letter, 1), size)
    missing = [c for c in output if c not in sizes]
    if missing:
        raise ValueError(f"output letters {missing} appear in no operand")
    out = ctx.output(node.outputs[0], tuple(sizes[c] for c in output), operands[0].dtype)
    current, view = operands[0], views[0]
    for index in range(1, max(len(operands), 2)):
        later = set(output) | set("".join(inputs[index + 1:]))
        other, other_view = (operands[index], views[index]) if index < len(operands) \
            else (None, {})
        last = index >= len(operands) - 1
        current, letters, direct = _contract(
            ctx, node, current, view, other, other_view, later, sizes, f"{out.name}/{index}",
            out if last else None, output)
        view = _view(letters, ctx.shape(current))
    if not direct:
        shape = ctx.shape(out)
        strides = tuple(view[c][1] for c in output)
        emit_strided(ctx, out, shape, contiguous_strides(shape), 0, [(current, strides, 0)],
                     "a")
