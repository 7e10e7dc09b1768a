"""Elementwise chains: each tree of elementwise nodes becomes one node.

``fuse_elementwise`` groups, from each graph's last node back, an
elementwise node with the elementwise producers of its inputs wherever it
is their only consumer (so a group is a tree: only its last node's output
is seen outside, and no path leaves a group and comes back), up to
``ops.fused.MAX_INPUTS`` run-time inputs (one-element constants become
literals and do not count).  Each group, one node or many, becomes a
``FusedElementwise`` node whose ``body`` is its nodes in order; the
lowering (clnet/ops/fused.py) runs it as one kernel, or node by node where
types or shapes do not allow that.
"""
from __future__ import annotations

import math

import numpy as np

from ..graph import Graph, Node, Value
from ..ops.fused import DOMAIN, MAX_INPUTS, OP, bool_out, fusible, literal_input
from ..ops.gemm_views import DOMAIN as VIEW_DOMAIN, OP as VIEW_OP, viewable
from ..ops.views import DOMAIN as MOVE_DOMAIN, OP as MOVE_OP
from .fold import evaluate


def _externals(members: set) -> set:
    produced = {m.outputs[0] for m in members}
    return {v for m in members for v in m.inputs
            if v is not None and v.name and v not in produced and not literal_input(v)}


def fuse_elementwise(graph: Graph) -> Graph:
    producers = graph.producers()
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    ok = {n for n in graph.nodes if fusible(n, graph.opset)}
    grouped: set = set()
    groups: dict = {}     # sink -> members
    for sink in reversed(graph.nodes):
        if sink not in ok or sink in grouped or bool_out(sink):
            continue
        members, stack = {sink}, [sink]
        while stack:
            node = stack.pop()
            for value in node.inputs:
                producer = producers.get(value)
                if producer is None or producer not in ok or producer in grouped \
                        or producer in members or value in outputs \
                        or {id(c) for c in consumers.get(value, ())} != {id(node)}:
                    continue
                if len(_externals(members | {producer})) > MAX_INPUTS:
                    continue
                members.add(producer)
                stack.append(producer)
        grouped |= members
        groups[sink] = members
    if not groups:
        return graph
    # a chain whose only reader is a Softmax takes it in (ops/fused.py)
    ends = {}
    for sink in groups:
        users = consumers.get(sink.outputs[0], [])
        if len(users) == 1 and users[0].op == "Softmax" and not users[0].domain \
                and sink.outputs[0] not in outputs and users[0].inputs[0] is sink.outputs[0]:
            ends[users[0]] = sink
    nodes = []
    for node in graph.nodes:
        if node in groups and node not in ends.values() or node in ends:
            sink = ends.get(node, node)
            members = groups[sink]
            body = [n for n in graph.nodes if n in members] + ([node] if node in ends else [])
            inputs = sorted(_externals(members) | {v for m in members for v in m.inputs
                                                   if literal_input(v)},
                            key=lambda v: v.name)
            nodes.append(Node(OP, inputs, [node.outputs[0]], {},
                              "+".join(n.name or n.op for n in body), DOMAIN, None, body))
        elif node not in grouped:
            nodes.append(node)
    graph.nodes = nodes
    return graph


def _body_inputs(body: list) -> list:
    """The values a body reads that none of its nodes make, in order."""
    produced = {v for n in body for v in n.outputs}
    inputs = []
    for node in body:
        for v in node.inputs:
            if v is not None and v.name and v not in produced and v not in inputs:
                inputs.append(v)
    return inputs


def _const_or_absent(value) -> bool:
    return value is None or not value.name or value.is_const


def fuse_movement(graph: Graph) -> Graph:
    """Split -> Reshape(s) -> Transpose becomes one MovementChain node (one
    strided copy, ops/views.py); a Split or Reshape all of whose outputs
    such chains read is dropped."""
    producers = graph.producers()
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    chains = []
    for sink in graph.nodes:
        if sink.op != "Transpose" or sink.domain:
            continue
        path, producer = [sink], producers.get(sink.inputs[0])
        while producer is not None and producer.op == "Reshape" and not producer.domain \
                and _const_or_absent(producer.input(1)):
            path.insert(0, producer)
            producer = producers.get(producer.inputs[0])
        if producer is None or producer.op != "Split" or producer.domain \
                or not _const_or_absent(producer.input(1)):
            continue
        chains.append((sink, [producer] + path))
    if not chains:
        return graph
    sinks = {sink for sink, _ in chains}
    candidates = {n for _, body in chains for n in body[:-1]}
    removable: set = set()
    changed = True
    while changed:
        changed = False
        for node in candidates - removable:
            users = [u for v in node.outputs for u in consumers.get(v, ())]
            if not any(v in outputs for v in node.outputs) \
                    and all(u in sinks or u in removable for u in users):
                removable.add(node)
                changed = True
    replaced = {}
    for sink, body in chains:
        # each chain its own copies of the nodes chains share (the Split):
        # a later rewrite of one chain's inputs (a storage conversion) must
        # not reach into another's
        body = [Node(n.op, list(n.inputs), list(n.outputs), dict(n.attrs), n.name, n.domain)
                if n is not sink else n for n in body]
        inputs = _body_inputs(body)
        replaced[sink] = Node(MOVE_OP, inputs, [sink.outputs[0]], {}, sink.name or "chain",
                              MOVE_DOMAIN, None, body)
    graph.nodes = [replaced.get(n, n) for n in graph.nodes if n not in removable]
    return graph


def fuse_matmul_views(graph: Graph) -> Graph:
    """A MatMul takes in the Transpose/MovementChain nodes that make an
    operand only for it, and the Transpose that alone reads its result
    (attention's head transposes): a MatMulView node (ops/gemm_views.py)."""
    producers = graph.producers()
    consumers = graph.consumers()
    outputs = set(graph.outputs)

    def only_for(value, node) -> bool:
        users = consumers.get(value, [])
        return value not in outputs and {id(u) for u in users} == {id(node)}

    taken: set = set()
    replaced = {}
    for mm in graph.nodes:
        if mm.op != "MatMul" or mm.domain or not viewable(mm):
            continue
        body = []
        for value in mm.inputs[:2]:
            p = producers.get(value)
            if p is not None and p.op in ("Transpose", MOVE_OP) and p not in taken \
                    and (p.op != "Transpose" or not p.domain) and only_for(value, mm):
                body.append(p)
        users = consumers.get(mm.outputs[0], [])
        after = users[0] if len(users) == 1 and users[0].op == "Transpose" \
            and not users[0].domain and mm.outputs[0] not in outputs else None
        if not body and after is None:
            continue
        body = body + [mm] + ([after] if after is not None else [])
        taken.update(body)
        inputs = _body_inputs(body)
        last = body[-1]
        replaced[last] = Node(VIEW_OP, inputs, [last.outputs[0]], {}, mm.name or "matmul",
                              VIEW_DOMAIN, None, body)
    if replaced:
        graph.nodes = [replaced.get(n, n) for n in graph.nodes
                       if n in replaced or n not in taken]
    return graph


def _erf(x):
    return np.vectorize(math.erf)(x)


# activations a chain may turn out to compute: (op, attributes) -> f(x)
KNOWN = {
    ("Gelu", (("approximate", "tanh"),)):
        lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3))),
    ("Gelu", (("approximate", "none"),)): lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
    ("Swish", ()): lambda x: x / (1 + np.exp(-x)),
    ("HardSwish", ()): lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    ("Sigmoid", ()): lambda x: 1 / (1 + np.exp(-x)),
}
SAMPLES = np.concatenate([np.linspace(-9, 9, 181), [-30.0, -0.01, 0.0, 0.01, 30.0]])


def _chain_function(node, opset: int):
    """The values of a one-input chain on SAMPLES (the ONNX reference runs
    its nodes), or None where it cannot be evaluated."""
    x = next(v for v in node.inputs if not literal_input(v))
    values = {x: SAMPLES.astype(np.float32)}
    for member in node.body:
        inputs = [None if v is None else Value(v.name, None, None, values.get(v, v.data))
                  for v in member.inputs]
        if any(v is not None and v.data is None for v in inputs):
            return None
        probe = Node(member.op, inputs, [Value(o.name) for o in member.outputs],
                     dict(member.attrs), member.name, member.domain)
        try:
            values[member.outputs[0]] = np.asarray(evaluate(probe, opset)[0])
        except Exception:     # not evaluable: left as a chain
            return None
    return values[node.outputs[0]]


def name_activations(graph: Graph) -> Graph:
    """A chain of one input right after a Conv/Gemm/MatMul that computes a
    known activation (GELU's tanh form written out, x * sigmoid(x), ...),
    checked on sample points against it, becomes that activation node, and
    then part of the GEMM's or conv's epilogue."""
    producers = graph.producers()
    consumers = graph.consumers()
    seen: dict = {}
    for index, node in enumerate(graph.nodes):
        if node.op != OP or len(node.body) < 2 or node.body[-1].op == "Softmax":
            continue
        runtime = [v for v in node.inputs if not literal_input(v)]
        producer = producers.get(runtime[0]) if len(runtime) == 1 else None
        if producer is None or producer.op not in ("Conv", "Gemm", "MatMul") \
                or {id(u) for u in consumers.get(runtime[0], ())} != {id(node)} \
                or runtime[0] in graph.outputs \
                or (producer.epilogue is not None and producer.epilogue.act):
            continue
        key = tuple((m.op, repr(sorted(m.attrs.items())),
                     tuple(repr(np.asarray(v.data).tolist()) if literal_input(v) else None
                           for v in m.inputs)) for m in node.body)
        if key not in seen:
            got = _chain_function(node, graph.opset)
            seen[key] = None if got is None else next(
                (name for name, f in KNOWN.items()
                 if np.allclose(got, f(SAMPLES), rtol=1e-5, atol=1e-6)), None)
        if seen[key] is not None:
            op, attrs = seen[key]
            graph.nodes[index] = Node(op, runtime, list(node.outputs), dict(attrs),
                                      node.name, "")
    return graph
