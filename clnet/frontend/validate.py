"""Load-time checks of what the ONNX checker lets through but no runtime can
run correctly: versions newer than clnet knows, a Transpose perm that is no
permutation, inputs whose dtypes the spec ties together but differ, If
branches of different output counts, constant indices out of range, and
graph outputs declared with another dtype than the graph computes.

Each failure is a ModelError naming the node, op and attribute or input.
Run-time indices (fed or computed) are not checked: the gather and scatter
kernels clamp them into range, where onnxruntime raises.
"""
from __future__ import annotations

import os

import numpy as np
import onnx

from ..errors import ModelError
from ..graph import Graph
from ..subgraph import Subgraph

# The newest default-domain opset and IR version clnet was written against:
# those of the onnx package it runs with.  CLNET_ALLOW_NEWER_OPSET=1 loads
# newer models anyway (ops whose semantics changed may then run the old way).
MAX_OPSET = onnx.defs.onnx_opset_version()
MAX_IR_VERSION = onnx.IR_VERSION
ALLOW_NEWER_ENV = "CLNET_ALLOW_NEWER_OPSET"

# ops whose inputs share one type variable T in the spec: input positions
SAME_DTYPE = {op: None for op in ("Add", "Sub", "Mul", "Div", "Mod", "Equal", "Less",
                                  "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or",
                                  "Xor", "Max", "Min", "Sum", "Mean", "Concat", "MatMul",
                                  "BitwiseAnd", "BitwiseOr", "BitwiseXor", "PRelu")}
SAME_DTYPE["Where"] = (1, 2)
# op: (indices input, data input, axis attribute or None for ScatterND/GatherND)
INDEXED = {"Gather": (1, 0, "axis"), "GatherElements": (1, 0, "axis"),
           "ScatterElements": (1, 0, "axis"), "Scatter": (1, 0, "axis"),
           "ScatterND": (1, 0, None), "GatherND": (1, 0, None)}


def check_versions(proto: "onnx.ModelProto") -> None:
    """Refuse opsets and IR versions newer than clnet knows (unless allowed)."""
    if os.environ.get(ALLOW_NEWER_ENV, "").strip().lower() in ("1", "yes", "on", "true"):
        return
    hint = f"; set {ALLOW_NEWER_ENV}=1 to try it anyway"
    if proto.ir_version > MAX_IR_VERSION:
        raise ModelError(f"the model's IR version {proto.ir_version} is newer than the "
                         f"{MAX_IR_VERSION} clnet knows{hint}")
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version > MAX_OPSET:
            raise ModelError(f"the model imports ONNX opset {entry.version}, newer than the "
                             f"{MAX_OPSET} clnet knows{hint}")


def check_graph(graph: Graph) -> None:
    """The per-node checks, in subgraphs too."""
    for node in graph.nodes:
        _check_transpose(node)
        _check_dtypes(node)
        _check_if(node)
        _check_indices(node)
        for sub in (v for v in node.attrs.values() if isinstance(v, Subgraph)):
            check_graph(sub.graph)


def check_output_dtypes(graph: Graph, declared: list, inferred: list) -> None:
    """Graph outputs whose declared dtype is not what ONNX inference says the
    graph produces (onnxruntime refuses these too)."""
    produced = {info.name: info.type.tensor_type.elem_type for info in inferred
                if info.type.HasField("tensor_type")}
    for info in declared:
        want, got = info.type.tensor_type.elem_type, produced.get(info.name, 0)
        if want and got and want != got:
            raise ModelError(f"graph output {info.name!r} is declared {_type_name(want)} "
                             f"but the graph computes {_type_name(got)}")


def _type_name(code: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(code).lower()
    except ValueError:                  # not an ONNX data type at all
        return f"data type {code}"


def _check_transpose(node) -> None:
    if node.op != "Transpose" or "perm" not in node.attrs:
        return
    perm = [int(p) for p in node.attrs["perm"]]
    if sorted(perm) != list(range(len(perm))):
        raise ModelError(f"{node.label()}: attribute perm={perm} is not a permutation of "
                         f"0..{len(perm) - 1}")
    x = node.inputs[0] if node.inputs else None
    if x is not None and x.shape is not None and len(x.shape) != len(perm):
        raise ModelError(f"{node.label()}: attribute perm={perm} has {len(perm)} entries for "
                         f"input {x.name!r} of rank {len(x.shape)}")


def _check_dtypes(node) -> None:
    if node.op not in SAME_DTYPE or node.domain:
        return
    positions = SAME_DTYPE[node.op] or range(len(node.inputs))
    typed = [(node.inputs[i].name, node.inputs[i].dtype) for i in positions
             if i < len(node.inputs) and node.inputs[i] is not None
             and node.inputs[i].dtype is not None]
    for name, dtype in typed[1:]:
        if dtype != typed[0][1]:
            raise ModelError(f"{node.label()}: input {typed[0][0]!r} is {typed[0][1]} but input "
                             f"{name!r} is {dtype}; {node.op} needs one type (insert a Cast)")


def _check_if(node) -> None:
    if node.op != "If":
        return
    counts = {key: len(node.attrs[key].graph.outputs) for key in ("then_branch", "else_branch")
              if isinstance(node.attrs.get(key), Subgraph)}
    if len(set(counts.values())) > 1:
        raise ModelError(f"{node.label()}: attribute then_branch has {counts['then_branch']} "
                         f"outputs but else_branch has {counts['else_branch']}")
    if counts and next(iter(counts.values())) != len(node.outputs):
        raise ModelError(f"{node.label()}: the branches have {next(iter(counts.values()))} "
                         f"outputs but the node has {len(node.outputs)}")


def _check_indices(node) -> None:
    if node.op not in INDEXED or node.domain:
        return
    i_at, d_at, axis_attr = INDEXED[node.op]
    if len(node.inputs) <= max(i_at, d_at):
        return
    indices, data = node.inputs[i_at], node.inputs[d_at]
    if indices is None or data is None or not indices.is_const or data.shape is None:
        return
    idx = np.asarray(indices.data)
    if idx.size == 0 or idx.dtype.kind not in "iu":
        return
    if axis_attr is None:            # ScatterND / GatherND: the last dim indexes data's dims
        batch = int(node.attrs.get("batch_dims", 0))
        depth = idx.shape[-1] if idx.ndim else 0
        dims = data.shape[batch:batch + depth]
        if len(dims) != depth:
            raise ModelError(f"{node.label()}: input {indices.name!r} indexes {depth} dims of "
                             f"input {data.name!r} of rank {len(data.shape)}")
        for axis, dim in enumerate(dims):
            _in_range(node, indices, idx[..., axis], dim, f"dim {batch + axis}")
        return
    rank = len(data.shape)
    axis = int(node.attrs.get(axis_attr, 0))
    if not -rank <= axis < rank:
        raise ModelError(f"{node.label()}: attribute axis={axis} is out of range for input "
                         f"{data.name!r} of rank {rank}")
    _in_range(node, indices, idx, data.shape[axis % rank], f"axis {axis % rank}")


def _in_range(node, indices, values, dim, where: str) -> None:
    if not isinstance(dim, (int, np.integer)):
        return                       # a symbolic dim: known only at run time
    low, high = int(values.min()), int(values.max())
    if low < -dim or high >= dim:
        bad = high if high >= dim else low
        raise ModelError(f"{node.label()}: input {indices.name!r} holds index {bad}, out of "
                         f"range [{-dim}, {dim - 1}] for {where} of size {dim}")
