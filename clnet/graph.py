"""The graph IR: plain data, no device knowledge.

A ``Value`` is a tensor: its shape (ints, or strings/None for symbolic dims
before a plan is made), its dtype (a numpy dtype) and, for initializers and
folded constants, its data.  A ``Node`` is one operator application.  A
``Graph`` keeps nodes in topological order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass(eq=False)
class Value:
    name: str
    shape: Optional[tuple] = None
    dtype: Optional[np.dtype] = None
    data: Optional[np.ndarray] = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape is not None else 0


# Activations a GEMM or conv epilogue applies: op -> the code of epilogue.h's
# switch (its compile-time macro is ACT_<OP in capitals>).
EPILOGUE_ACTIVATIONS = {"Relu": 1, "Clip": 2, "LeakyRelu": 3, "Sigmoid": 4, "Tanh": 5,
                        "HardSigmoid": 6, "HardSwish": 7, "Gelu": 8, "Swish": 9,
                        "GeluTanh": 10}


@dataclass(frozen=True)
class Epilogue:
    """What a Conv/Gemm/MatMul applies to its product before storing it:
    the nodes that passes/fusion.py folded into it."""
    act: Optional[tuple] = None   # the fused activation: (op name, p0, p1)
    bias: bool = False            # MatMul: input 2 is a constant [N] bias
    residual: bool = False        # input 3 is added (a fused residual Add)
    alpha: float = 1.0            # MatMul: the product scaled (a fused Mul/Div)


@dataclass(eq=False)
class Node:
    op: str
    inputs: list          # list[Optional[Value]]; None marks an omitted optional input
    outputs: list         # list[Value]
    attrs: dict = field(default_factory=dict)
    name: str = ""
    domain: str = ""
    epilogue: Optional[Epilogue] = None   # set on fused nodes by passes/fusion.py
    body: Optional[list] = None   # a fused chain (passes/chains.py): the nodes it replaced

    def map_inputs(self, mapping: dict) -> None:
        """Replace inputs found in mapping (Value -> Value), in the body too."""
        self.inputs = [mapping.get(v, v) if v is not None else None for v in self.inputs]
        for member in self.body or ():
            member.map_inputs(mapping)

    def input(self, i: int) -> Optional[Value]:
        return self.inputs[i] if i < len(self.inputs) else None

    def label(self) -> str:
        return f"node {self.name or '(unnamed)'!r} ({self.op})"


@dataclass(eq=False)
class Graph:
    nodes: list
    inputs: list          # graph inputs that are fed at run time
    outputs: list
    opset: int = 13
    name: str = ""
    values: dict = field(default_factory=dict)   # name -> Value, every value

    def producers(self) -> dict:
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict:
        users: dict = {}
        for node in self.nodes:
            for value in node.inputs:
                if value is not None:
                    users.setdefault(value, []).append(node)
        return users

    def copy(self) -> "Graph":
        """A structural copy: new Value and Node objects, shared const data."""
        mapping = {}

        def clone(value: Optional[Value]) -> Optional[Value]:
            if value is None:
                return None
            if value not in mapping:
                mapping[value] = Value(value.name, value.shape, value.dtype, value.data)
            return mapping[value]

        def clone_node(n: Node) -> Node:
            body = [clone_node(m) for m in n.body] if n.body is not None else None
            return Node(n.op, [clone(v) for v in n.inputs], [clone(v) for v in n.outputs],
                        dict(n.attrs), n.name, n.domain, n.epilogue, body)

        nodes = [clone_node(n) for n in self.nodes]
        graph = Graph(nodes, [clone(v) for v in self.inputs], [clone(v) for v in self.outputs],
                      self.opset, self.name)
        graph.values = {v.name: v for v in mapping.values()}
        return graph

