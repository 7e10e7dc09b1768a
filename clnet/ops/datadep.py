"""Ops whose output shape depends on their input values: NonZero, Unique,
Compress, NonMaxSuppression.

A plan fixes every shape before it runs, so these run on the host, at plan
time, when their inputs are constants (initializers, folded shape
arithmetic, or graph inputs that the session keys by value: the
registry's shape_inputs).  The ONNX reference computes them then; no launch is
emitted.  Fed from tensors computed on the device they are rejected with
this message rather than silently synchronising in the middle of a plan.
"""
from __future__ import annotations

from ..errors import UnsupportedOpError
from .registry import op


@op("NonZero", "Unique", host=True, shape_inputs=(0,))
@op("Compress", host=True, shape_inputs=(0, 1))
@op("NonMaxSuppression", host=True, shape_inputs=(0, 1, 2, 3, 4))
def data_dependent(ctx, node):
    computed = [v.name for v in node.inputs if v is not None and v.name and not v.is_const]
    raise UnsupportedOpError(f"{node.label()}: the output shape of {node.op} depends on the "
                             f"values of {computed}, which are computed on the device; clnet "
                             f"runs {node.op} only on inputs known when the plan is made "
                             f"(constants or graph inputs) (opset {ctx.opset})")
