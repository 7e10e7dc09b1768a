"""MovementChain: a Split output reshaped and transposed, as one strided copy.

passes/chains.py replaces Split -> Reshape(s) -> Transpose (a fused QKV
projection split into heads: GPT-2, Falcon, ...) with one ``MovementChain``
node whose body is those nodes.  Its lowering composes the three into the
strides of one read of the Split's input (Split: a base offset; Reshape:
the strides of the new dims, where the dims it splits or merges are
contiguous; Transpose: a permutation) and emits one copy; the Split's own
copy never runs.  Where a Reshape cannot be expressed as strides the body
is lowered node by node.
"""
from __future__ import annotations

from ..graph import Graph
from ._util import contiguous_strides, norm_axis
from .movement import reshaped, split_sizes
from .registry import op
from .strided import emit_strided

OP = "MovementChain"
DOMAIN = "clnet"


def view_strides(shape, strides, new_shape):
    """Strides of new_shape viewing a tensor of (shape, strides), or None
    where the reshape would need a copy (it merges non-contiguous dims)."""
    old = [(d, s) for d, s in zip(shape, strides) if d != 1]
    result, i = [], 0
    new = list(new_shape)
    j = 0
    while j < len(new):
        if new[j] == 1:
            result.append(0)
            j += 1
            continue
        if i >= len(old):
            return None
        # one group: old dims i..i2 and new dims j..j2 with equal products
        size_old, size_new, i2, j2 = old[i][0], new[j], i + 1, j + 1
        while size_old != size_new:
            if size_old < size_new:
                if i2 >= len(old):
                    return None
                size_old *= old[i2][0]
                i2 += 1
            else:
                if j2 >= len(new):
                    return None
                size_new *= new[j2]
                j2 += 1
        for k in range(i, i2 - 1):     # the old dims of the group must be contiguous
            if old[k][1] != old[k + 1][1] * old[k + 1][0]:
                return None
        step = old[i2 - 1][1]
        group = []
        for d in reversed(new[j:j2]):
            group.append(step if d != 1 else 0)
            step *= d
        result.extend(reversed(group))
        i, j = i2, j2
    return tuple(result) if i == len(old) else None


def view_of(ctx, node):
    """(source, shape, strides, base) of what a Transpose or MovementChain
    node makes, read in place from its source; None where a Reshape in a
    chain would need a copy."""
    if node.op == "Transpose":
        x = node.inputs[0]
        shape, strides, base = list(ctx.shape(x)), list(contiguous_strides(ctx.shape(x))), 0
        last = node
    else:
        split, *reshapes, last = node.body
        x = split.inputs[0]
        shape = list(ctx.shape(x))
        strides = list(contiguous_strides(shape))
        axis = norm_axis(split.attrs.get("axis", 0), len(shape), split)
        sizes = split_sizes(ctx, split, shape[axis])
        k = split.outputs.index((reshapes[0] if reshapes else last).inputs[0])
        base = sum(sizes[:k]) * strides[axis]
        shape[axis] = sizes[k]
        for reshape in reshapes:
            new_shape = reshaped(ctx, reshape, tuple(shape))
            new_strides = view_strides(shape, strides, new_shape)
            if new_strides is None:
                return None
            shape, strides = list(new_shape), list(new_strides)
    perm = last.attrs.get("perm") or list(reversed(range(len(shape))))
    if sorted(perm) != list(range(len(shape))):
        raise ValueError(f"Transpose perm {list(perm)} does not fit rank {len(shape)}")
    return x, tuple(shape[p] for p in perm), tuple(strides[p] for p in perm), base


@op(OP, domain=DOMAIN)
def movement_chain(ctx, node):
    view = view_of(ctx, node)
    if view is None:
        ctx.lower_subgraph(Graph(list(node.body), [], []))
        ctx.begin_node(node)
        return
    x, out_shape, strides, base = view
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    emit_strided(ctx, out, out_shape, contiguous_strides(out_shape), 0, [(x, strides, base)],
                 raw=True)
