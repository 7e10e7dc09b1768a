"""Load-time clean-ups before the fusions: constants folded, zero Pads
taken into convs, lone BatchNorms made multiply-adds."""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Node, Value
from .batchnorm import node_batchnorm_affine
from .fold import NEVER_FOLD, evaluate
from .match import is_const, single_consumer


def constant_nodes(graph: Graph) -> Graph:
    """Constant nodes, and nodes all of whose inputs are constant (the
    exporters' shape and pad arithmetic), become constant values, so that
    the patterns below see them (the planner would fold them anyway)."""
    kept = []
    for node in graph.nodes:
        present = [v for v in node.inputs if v is not None and v.name]
        if node.op != "Constant" and present and all(v.is_const for v in present) \
                and not node.domain and node.op not in NEVER_FOLD \
                and node.epilogue is None and node.body is None \
                and not any(k.startswith("_") for k in node.attrs):
            try:
                results = evaluate(node, graph.opset)
            except Exception:   # left to the planner, whose error names the node
                kept.append(node)
                continue
            for value, data in zip(node.outputs, results):
                data = np.asarray(data)
                value.data, value.shape, value.dtype = data, tuple(data.shape), data.dtype
            continue
        if node.op == "Constant" and not node.domain and len(node.outputs) == 1:
            try:
                data = np.asarray(evaluate(node, graph.opset)[0])
            except Exception:   # left to the planner, whose error names the node
                kept.append(node)
                continue
            value = node.outputs[0]
            value.data, value.shape, value.dtype = data, tuple(data.shape), data.dtype
            continue
        kept.append(node)
    graph.nodes = kept
    return graph


def _pad_amounts(pad: Node, opset: int):
    """(pads, value) of a constant-mode Pad known at load, else None."""
    if pad.attrs.get("mode", "constant") not in ("constant", b"constant"):
        return None
    if opset < 11:
        return list(pad.attrs.get("pads") or []), float(pad.attrs.get("value", 0.0))
    if not is_const(pad.input(1)) or (pad.input(3) is not None and pad.input(3).name):
        return None
    value = pad.input(2)
    fill = 0.0
    if value is not None and value.name:
        if not is_const(value) or np.size(value.data) != 1:
            return None
        fill = float(np.asarray(value.data).reshape(-1)[0])
    return [int(p) for p in np.asarray(pad.inputs[1].data).reshape(-1)], fill


def fold_pad_into_conv(graph: Graph) -> Graph:
    """A zero Pad of a conv's spatial dims only (a causal 1-D conv, explicit
    'same' padding) becomes the conv's own pads: no copy."""
    consumers = graph.consumers()
    removed = set()
    for pad in graph.nodes:
        if pad.op != "Pad" or pad.domain:
            continue
        conv = single_consumer(graph, pad.outputs[0], consumers)
        if conv is None or conv.op != "Conv" or conv.inputs[0] is not pad.outputs[0] \
                or conv.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
            continue
        amounts = _pad_amounts(pad, graph.opset)
        if amounts is None or amounts[1] != 0.0 or len(amounts[0]) < 6 \
                or len(amounts[0]) % 2:
            continue
        pads, rank = amounts[0], len(amounts[0]) // 2
        begin, end = pads[:rank], pads[rank:]
        spatial = rank - 2
        old = list(conv.attrs.get("pads") or [0] * 2 * spatial)
        if any(p < 0 for p in pads) or begin[:2] != [0, 0] or end[:2] != [0, 0] \
                or len(old) != 2 * spatial:
            continue
        conv.attrs["pads"] = [old[i] + begin[2 + i] for i in range(spatial)] + \
            [old[spatial + i] + end[2 + i] for i in range(spatial)]
        conv.inputs = [pad.inputs[0]] + list(conv.inputs[1:])
        removed.add(pad)
    graph.nodes = [n for n in graph.nodes if n not in removed]
    return graph


def batchnorm_as_affine(graph: Graph) -> Graph:
    """An inference BatchNorm that no conv took (DenseNet's and pre-activation
    ResNets' BN -> ReLU -> Conv) becomes x * scale + shift, which the
    elementwise chains then fuse with the activation after it."""
    nodes = []
    for node in graph.nodes:
        x = node.inputs[0] if node.inputs else None
        params = node.inputs[1:5]
        if node.op != "BatchNormalization" or node.domain or len(node.outputs) != 1 \
                or node.attrs.get("training_mode", 0) or len(params) != 4 \
                or x is None or x.shape is None or len(x.shape) < 2 \
                or not all(is_const(v) and np.ndim(v.data) == 1 for v in params) \
                or len({np.size(v.data) for v in params}) != 1:
            nodes.append(node)
            continue
        scale, shift = node_batchnorm_affine(node)
        shape = (scale.size,) + (1,) * (len(x.shape) - 2)
        name = node.name or node.outputs[0].name
        values = []
        for tag, data in (("scale", scale), ("shift", shift)):
            value = Value(f"{name}/bn_{tag}", shape, np.dtype(np.float32), data.reshape(shape))
            graph.values[value.name] = value
            values.append(value)
        mid = Value(f"{name}/bn_scaled", x.shape, x.dtype)
        graph.values[mid.name] = mid
        nodes += [Node("Mul", [x, values[0]], [mid], {}, name + "/bn_mul"),
                  Node("Add", [mid, values[1]], [node.outputs[0]], {}, name + "/bn_add")]
    graph.nodes = nodes
    return graph
