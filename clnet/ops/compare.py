"""Comparison, logical and selection ops on the elementwise kernel.

Comparisons read both operands in their own type (float storage, or the C
type of integer/bool tensors) and write bool tensors, stored as uchar.
"""
from __future__ import annotations

import numpy as np

from .registry import op
from .strided import emit_typed

COMPARE = {"Equal": "a==b", "Less": "a<b", "LessOrEqual": "a<=b", "Greater": "a>b",
           "GreaterOrEqual": "a>=b"}
LOGIC = {"And": "a&&b", "Or": "a||b", "Xor": "(a!=0)!=(b!=0)"}


def _compare(expr: str):
    def lower(ctx, node):
        a, b = node.inputs[:2]
        emit_typed(ctx, node.outputs[0], [a, b], expr, expr, out_dtype=np.bool_)
    return lower


for _name, _expr in {**COMPARE, **LOGIC}.items():
    op(_name)(_compare(_expr))


@op("Where")
def where(ctx, node):
    cond, x, y = node.inputs[:3]
    emit_typed(ctx, node.outputs[0], [cond, x, y], "a!=0?b:c", "a!=0?b:c",
               out_dtype=x.dtype, compute_from=1)
