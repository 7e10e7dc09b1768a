"""Exporters' written-out forms of fused ops, made one node each: the
five-op erf GELU (then fusable into a MatMul's epilogue), RMSNorm and
LayerNorm over the last axis."""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Node, Value
from .match import const_scalar, is_const, other_input, single_consumer


def fuse_gelu(graph: Graph) -> Graph:
    """0.5 * x * (1 + erf(x / sqrt 2)), written as exporters write it (Div or
    Mul by 1/sqrt 2, Erf, Add 1, and the two Muls in either order), becomes
    one Gelu node: one launch instead of five, and then fusable into a
    MatMul's epilogue."""
    consumers = graph.consumers()
    producers = graph.producers()
    removed = set()

    def only_user(value, op):
        user = single_consumer(graph, value, consumers)
        return user if user is not None and user.op == op and user not in removed else None

    for erf in list(graph.nodes):
        if erf.op != "Erf" or erf in removed:
            continue
        scale = producers.get(erf.inputs[0])
        if scale is None or scale in removed or len(scale.inputs) != 2 \
                or single_consumer(graph, scale.outputs[0], consumers) is not erf:
            continue
        x, c = scale.inputs
        if not ((scale.op == "Div" and const_scalar(c, np.sqrt(2.0)))
                or (scale.op == "Mul" and const_scalar(c, 1.0 / np.sqrt(2.0)))):
            continue
        add = only_user(erf.outputs[0], "Add")
        if add is None or not const_scalar(other_input(add, erf.outputs[0]), 1.0):
            continue
        mul = only_user(add.outputs[0], "Mul")
        if mul is None:
            continue
        other = other_input(mul, add.outputs[0])
        half = producers.get(other)
        if other is x:                          # (x * (1 + erf)) * 0.5
            last = only_user(mul.outputs[0], "Mul")
            if last is None or not const_scalar(other_input(last, mul.outputs[0]), 0.5):
                continue
            absorbed = [scale, erf, add, mul, last]
        elif half is not None and half.op == "Mul" and half not in removed \
                and single_consumer(graph, other, consumers) is mul \
                and other_input(half, x) is not None \
                and const_scalar(other_input(half, x), 0.5):   # (x * 0.5) * (1 + erf)
            last = mul
            absorbed = [half, scale, erf, add, mul]
        else:
            continue
        gelu = Node("Gelu", [x], [last.outputs[0]], {"approximate": "none"},
                    name=(erf.name or "gelu") + "/gelu", domain="")
        graph.nodes[graph.nodes.index(last)] = gelu
        removed.update(n for n in absorbed if n is not last)
    graph.nodes = [n for n in graph.nodes if n not in removed]
    return graph


def _reduce_last_axis(node: Node, opset: int) -> bool:
    """A ReduceMean over the last axis only, keeping it."""
    if node.op != "ReduceMean" or not node.attrs.get("keepdims", 1):
        return False
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = node.inputs[1].data if is_const(node.inputs[1]) else None
    if axes is None:
        return False
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    shape = node.inputs[0].shape
    return axes == [-1] or (shape is not None and len(axes) == 1 and axes[0] == len(shape) - 1)


def _square_of(node, producers, consumers, graph):
    """x where node is Pow(x, 2) or Mul(x, x), else None."""
    if node is None:
        return None
    if node.op == "Pow" and const_scalar(node.input(1), 2.0):
        return node.inputs[0]
    if node.op == "Mul" and len(node.inputs) == 2 and node.inputs[0] is node.inputs[1]:
        return node.inputs[0]
    return None


def fuse_norms(graph: Graph) -> Graph:
    """LayerNorm and RMSNorm as exporters write them out become one
    LayerNormalization / RMSNormalization node over the last axis:

    * RMSNorm (T5, Llama): x / sqrt(mean(x^2) + eps) (or x * 1/sqrt(...),
      x * reciprocal(sqrt(...))), then an optional Mul by a constant weight;
    * LayerNorm (opset < 17 exports): d = x - mean(x); d / sqrt(mean(d^2) +
      eps), then optional Mul by a constant gamma and Add of a constant beta.

    Seven to nine launches become one (kernels_cl/norm.cl)."""
    consumers = graph.consumers()
    producers = graph.producers()
    removed: set = set()

    def only(value, *ops):
        user = single_consumer(graph, value, consumers)
        return user if user is not None and user.op in ops and user not in removed else None

    for mean in list(graph.nodes):
        if mean in removed or not _reduce_last_axis(mean, graph.opset):
            continue
        square = producers.get(mean.inputs[0])
        x = _square_of(square, producers, consumers, graph)
        if x is None or single_consumer(graph, square.outputs[0], consumers) is not mean:
            continue
        add = only(mean.outputs[0], "Add")
        eps_value = other_input(add, mean.outputs[0]) if add is not None else None
        if eps_value is None or not is_const(eps_value) or np.size(eps_value.data) != 1:
            continue
        eps = float(np.asarray(eps_value.data).reshape(-1)[0])
        sqrt = only(add.outputs[0], "Sqrt")
        if sqrt is None:
            continue
        users = [n for n in graph.nodes if sqrt.outputs[0] in n.inputs]
        if len(users) != 1 or sqrt.outputs[0] in graph.outputs:
            continue
        last, absorbed = None, [square, mean, add, sqrt]
        step = users[0]
        if step.op == "Div" and step.inputs[1] is sqrt.outputs[0] and step.inputs[0] is x:
            last = step
        elif step.op in ("Reciprocal", "Div") and (step.op == "Reciprocal"
                                                    or const_scalar(step.input(0), 1.0)):
            mul = only(step.outputs[0], "Mul")
            if mul is not None and other_input(mul, step.outputs[0]) is x:
                absorbed.append(step)
                last = mul
        if last is None:
            continue
        absorbed.append(last)
        centred = producers.get(x)
        layer = centred is not None and centred.op == "Sub" and centred not in removed \
            and _reduce_last_axis(producers.get(centred.inputs[1]) or Node("", [], []),
                                  graph.opset) \
            and producers[centred.inputs[1]].inputs[0] is centred.inputs[0] \
            and len(consumers.get(producers[centred.inputs[1]].outputs[0], ())) == 1 \
            and {id(n) for n in consumers.get(x, ())} == {id(square), id(last)} \
            and x not in graph.outputs
        if layer:
            absorbed += [producers[centred.inputs[1]], centred]
            source = centred.inputs[0]
        else:
            source = x
        out = last
        weight = only(out.outputs[0], "Mul")
        scale = other_input(weight, out.outputs[0]) if weight is not None else None
        if scale is not None and is_const(scale) and np.ndim(scale.data) <= 1:
            absorbed.append(weight)
            out = weight
        else:
            scale = None
        bias = None
        if layer and scale is not None:
            shift = only(out.outputs[0], "Add")
            other = other_input(shift, out.outputs[0]) if shift is not None else None
            if other is not None and is_const(other) and np.ndim(other.data) <= 1:
                absorbed.append(shift)
                out, bias = shift, other
        if scale is None:
            scale = Value(source.name + "/norm_ones", (1,), np.dtype(np.float32),
                          np.ones(1, np.float32))
            graph.values[scale.name] = scale
        op = "LayerNormalization" if layer else "RMSNormalization"
        inputs = [source, scale] + ([bias] if bias is not None else [])
        fused = Node(op, inputs, [out.outputs[0]], {"axis": -1, "epsilon": eps},
                     (mean.name or "norm") + "/" + op, "")
        graph.nodes[graph.nodes.index(out)] = fused
        removed.update(n for n in absorbed if n is not out)
    graph.nodes = [n for n in graph.nodes if n not in removed]
    return graph
