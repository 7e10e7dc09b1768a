"""Subgraphs (If branches, Loop and Scan bodies) in the IR.

The frontend (``clnet.frontend.onnx.attach_subgraphs``) turns every
GraphProto attribute into a ``Subgraph``: a clnet Graph plus the names it
reads from enclosing scopes.  Those outer values are appended to the
owning node's inputs (after its ``_n_inputs`` real ones), so liveness,
dead-code elimination and graph copies see the dependency like any other
input.  Nested subgraphs compose: an inner node's outer reads that the
body does not define become outer reads of the body.

At planning time the control-flow lowerings (clnet/ops/control.py) inline a
fresh ``instantiate``d copy of a subgraph per branch or iteration, its
formal inputs and outer reads bound to values of the enclosing plan.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Graph, Value


@dataclass(eq=False)
class Subgraph:
    graph: Graph
    outer: tuple       # names read from the enclosing scope


def free_names(graph: Graph) -> list:
    """Names read by `graph` that it neither receives nor defines, in first-use order."""
    defined = {v for v in graph.inputs} | {v for v in graph.values.values() if v.is_const}
    for node in graph.nodes:
        defined.update(node.outputs)
    found: list = []
    readers = [v for node in graph.nodes for v in node.inputs] + list(graph.outputs)
    for value in readers:
        if value is not None and value.name and value not in defined \
                and value.name not in found:
            found.append(value.name)
    return found


def real_inputs(node) -> list:
    """A control-flow node's own inputs (without the appended outer reads)."""
    return node.inputs[:node.attrs.get("_n_inputs", len(node.inputs))]


def outer_bindings(node) -> dict:
    """Outer-read name -> the enclosing plan's Value, for `node`'s subgraphs."""
    extra = node.inputs[node.attrs.get("_n_inputs", len(node.inputs)):]
    return dict(zip(node.attrs.get("_outer_names", ()), extra))


def instantiate(sub: Subgraph, bindings: dict, prefix: str) -> Graph:
    """A fresh copy of `sub` whose formal inputs and outer reads are replaced
    by the Values in `bindings` (by name); its own values and nodes renamed
    with `prefix` so that copies never share a name (constants keep theirs)."""
    graph = sub.graph.copy()
    formal = {v.name for v in graph.inputs} | set(sub.outer)
    mapping = {}
    for value in graph.values.values():
        if value.name in formal and value.name in bindings:
            mapping[value] = bindings[value.name]
        elif value.name and not value.is_const:
            value.name = prefix + value.name
    for node in graph.nodes:
        node.name = prefix + node.name
        node.map_inputs(mapping)
    graph.outputs = [mapping.get(v, v) for v in graph.outputs]
    graph.inputs = [mapping.get(v, v) for v in graph.inputs]
    return graph


def const_value(name: str, data) -> Value:
    data = np.asarray(data)
    return Value(name, tuple(data.shape), data.dtype, data)
