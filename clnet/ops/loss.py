"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: reduce.cl's `nll`
kernel per item, then the reductions and softmax they are made of."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ..graph import Value
from .reduce import emit_reduce
from .registry import op
from .softmax import emit_softmax
from .strided import emit_map, emit_typed


def emit_nll(ctx, node, log_prob, target, weight, out) -> None:
    """NegativeLogLikelihoodLoss of log-probabilities (N, C, d...) -> out."""
    shape = ctx.shape(log_prob)
    n, c = shape[0], shape[1]
    d = int(np.prod(shape[2:], dtype=np.int64))
    if target.dtype.kind not in "iu":
        raise UnsupportedOpError(f"{node.label()}: target {target.name!r} must be integer")
    if target.dtype != np.int64:
        as_long = Value(f"{out.name}#target")
        emit_typed(ctx, as_long, [target], "a", "a", out_dtype=np.int64)
        target = as_long
    name = out.name
    loss, wsum = Value(f"{name}#loss"), Value(f"{name}#wsum")
    reduction = node.attrs.get("reduction", "mean")
    per_item = (n,) + tuple(shape[2:])
    ctx.output(loss if reduction != "none" else out, per_item, log_prob.dtype)
    ctx.output(wsum, per_item, log_prob.dtype)
    defines = {}
    if weight is not None:
        defines["HAS_WEIGHT"] = True
    if "ignore_index" in node.attrs:
        defines["IGNORE_INDEX"] = f"({int(node.attrs['ignore_index'])}L)"
    target_out = out if reduction == "none" else loss
    ctx.launch("reduce", (n * d,), [log_prob, target, weight if weight is not None else log_prob,
                                    target_out, wsum, np.int32(n * d), np.int32(c),
                                    np.int32(d)], defines, entry="nll")
    if reduction == "none":
        return
    axes = list(range(len(per_item)))
    if reduction == "sum":
        emit_reduce(ctx, out, loss, axes, False, "ReduceSum")
        return
    total, weights = Value(f"{name}#total"), Value(f"{name}#weights")
    emit_reduce(ctx, total, loss, axes, False, "ReduceSum")
    emit_reduce(ctx, weights, wsum, axes, False, "ReduceSum")
    emit_map(ctx, out, [total, weights], "a/b")


@op("NegativeLogLikelihoodLoss")
def nll_loss(ctx, node):
    weight = node.input(2)
    weight = weight if weight is not None and weight.name else None
    emit_nll(ctx, node, node.inputs[0], node.inputs[1], weight, node.outputs[0])


@op("SoftmaxCrossEntropyLoss")
def softmax_cross_entropy(ctx, node):
    scores, labels = node.inputs[:2]
    weight = node.input(2)
    weight = weight if weight is not None and weight.name else None
    if len(node.outputs) > 1 and node.outputs[1].name:
        log_prob = node.outputs[1]
    else:
        log_prob = Value(f"{node.outputs[0].name}#log_prob")
    emit_softmax(ctx, scores, log_prob, 1, log=True, node=node)
    emit_nll(ctx, node, log_prob, labels, weight, node.outputs[0])
