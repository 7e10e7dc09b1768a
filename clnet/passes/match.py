"""Small graph queries the load-time passes share."""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Node, Value


def single_consumer(graph: Graph, value: Value, consumers: dict):
    users = consumers.get(value, [])
    if len(users) != 1 or value in graph.outputs:
        return None
    return users[0]


def is_const(value) -> bool:
    return value is not None and value.is_const


def const_scalar(value, target: float) -> bool:
    """Whether value is a one-element constant within 1e-5 of target."""
    if not is_const(value) or value.data is None or np.size(value.data) != 1:
        return False
    return abs(float(np.asarray(value.data).reshape(-1)[0]) - target) <= 1e-5 * abs(target)


def other_input(node: Node, value: Value):
    """The input of a two-input node that is not `value` (None if neither/both)."""
    if len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if a is value and b is not value:
        return b
    if b is value and a is not value:
        return a
    return None
