"""Operands that every conv algorithm passes alike: the constant bias and
the epilogue arguments of a fused activation, bias and residual."""
from __future__ import annotations

from ...graph import Value
from ..gemm import epilogue_args, fused_act


def bias_arg(ctx, node, bias):
    """A constant bias uploaded once (a run-time one is passed as it is)."""
    if bias is not None and not isinstance(bias, Value):
        return ctx.weight(bias, (node.inputs[2].name, "bias"))
    return bias


def conv_epilogue_args(node, bias, residual) -> tuple:
    """gemm.cl-style epilogue arguments with a bias per output channel."""
    return epilogue_args(fused_act(node), "row" if bias is not None else None,
                         residual is not None)
