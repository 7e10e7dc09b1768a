"""MatMulView: a MatMul that reads transposed operands and writes a
transposed result in place (attention's head transposes).

passes/chains.py gives a MatMul whose operand is made only for it by a
Transpose or a MovementChain (Q, K, V split into heads), or whose result
only a Transpose reads (heads merged back), those nodes as its ``body``.
The GEMM then reads the operand through its strides (rows must stay
contiguous, one batch dim at most beside size-1 ones) and writes C with
the transposed layout's strides: the copies never run.  Where the layout
does not allow it, that node is lowered as before.
"""
from __future__ import annotations

from ..graph import Graph
from ._util import contiguous_strides
from .gemm import gemm_general, matmul, matmul_shapes
from .registry import op
from .views import view_of

OP = "MatMulView"
DOMAIN = "clnet"


def _batch_stride(shape, strides):
    """The one stride of a view's batch dims (0 with none), or None when
    more than one batch dim is longer than 1."""
    dims = [s for d, s in zip(shape[:-2], strides[:-2]) if d != 1]
    if len(dims) > 1:
        return None
    return dims[0] if dims else 0


def parts(node) -> tuple:
    """(A's view node, B's view node, the MatMul, the result's Transpose)."""
    mm = next(n for n in node.body if n.op == "MatMul")
    made = {n.outputs[0]: n for n in node.body if n is not mm}
    after = next((n for n in node.body if mm.outputs[0] in n.inputs), None)
    return made.get(mm.inputs[0]), made.get(mm.inputs[1]), mm, after


@op(OP, domain=DOMAIN)
def matmul_view(ctx, node):
    a_node, b_node, mm, after = parts(node)
    views = [view_of(ctx, v) if v is not None else None for v in (a_node, b_node)]
    a_view = b_view = None
    if views[0] is not None:
        src, shape, strides, base = views[0]
        zs = _batch_stride(shape, strides)
        if zs is not None and strides[-1] == 1 and len(shape) >= 2:
            a_view, a_src, a_shape = (zs, strides[-2], base), src, shape
    if views[1] is not None:
        src, shape, strides, base = views[1]
        zs = _batch_stride(shape, strides)
        if zs is not None and len(shape) >= 2:
            b_view, b_src, b_shape = (zs, strides[-2], strides[-1]), src, shape
            b_base = base
    for view_node, used in ((a_node, a_view), (b_node, b_view)):
        if view_node is not None and used is None:   # materialised as before
            ctx.lower_subgraph(Graph([view_node], [], []))
            ctx.begin_node(node)
    a = a_src if a_view is not None else mm.inputs[0]
    b = b_src if b_view is not None else mm.inputs[1]
    a_shape = a_shape if a_view is not None else ctx.shape(mm.inputs[0])
    b_shape = b_shape if b_view is not None else ctx.shape(mm.inputs[1])
    a2, b2, full, (M, N, K), out_shape = matmul_shapes(mm, tuple(a_shape), tuple(b_shape))
    c_view, target = None, mm.outputs[0]
    if after is not None and len(out_shape) >= 2 and len(a_shape) >= 2 \
            and len(b_shape) >= 2:
        perm = list(after.attrs.get("perm") or reversed(range(len(out_shape))))
        final = tuple(out_shape[p] for p in perm)
        strides = [0] * len(out_shape)
        for i, s in zip(perm, contiguous_strides(final)):
            strides[i] = s
        zs = _batch_stride(out_shape, strides)
        if zs is not None and strides[-1] == 1:
            c_view, target = (zs, strides[-2]), after.outputs[0]
            ctx.output(target, final, a.dtype)
    if a_view is None and b_view is None and c_view is None:
        matmul(ctx, mm)
    else:
        if c_view is None:
            ctx.output(mm.outputs[0], out_shape, a.dtype)
        alpha = float(mm.epilogue.alpha) if mm.epilogue is not None else 1.0
        gemm_general(ctx, mm, target, a, a2, b, b2, full, M, N, K, alpha=alpha,
                     b_strides=(b_view if b_view is not None else None),
                     b_base=b_base if b_view is not None else 0, a_view=a_view,
                     c_view=c_view)
    if after is not None and c_view is None:
        ctx.lower_subgraph(Graph([after], [], []))
        ctx.begin_node(node)


def viewable(node) -> bool:
    """A MatMul the pass may give views: no bias or residual in its epilogue."""
    epilogue = node.epilogue
    return len([v for v in node.inputs if v is not None]) == 2 and \
        (epilogue is None or not (epilogue.bias or epilogue.residual))
