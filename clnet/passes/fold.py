"""Evaluate one node on constant inputs with the ONNX reference implementation.

This is how shape arithmetic (Shape -> Gather -> Concat -> Reshape and the
like) and any node whose inputs are all constants disappears at load time.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError
from .fold_size import check_fold_size

# Ops that must not be evaluated once and frozen.
NEVER_FOLD = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike",
                        "RandomUniformLike", "Multinomial", "Bernoulli"})


def _attr_value(value):
    if isinstance(value, np.ndarray):
        return numpy_helper.from_array(value)
    return value


def to_node_proto(node) -> "onnx.NodeProto":
    inputs = [v.name if v is not None else "" for v in node.inputs]
    outputs = [v.name for v in node.outputs]
    attrs = {k: _attr_value(v) for k, v in node.attrs.items() if not k.startswith("_")}
    return helper.make_node(node.op, inputs, outputs, name=node.name, domain=node.domain or None,
                            **attrs)


def evaluate(node, opset: int) -> list:
    """Run `node` on its constant inputs; returns one array per output."""
    from onnx.reference import ReferenceEvaluator

    if node.op == "ConvertStorage":  # a storage copy: the same values
        return [np.asarray(node.inputs[0].data)]
    proto = to_node_proto(node)
    check_fold_size(node, proto, opset)
    feeds, graph_inputs = {}, []
    for value in node.inputs:
        if value is None or value.name in feeds:
            continue
        arr = np.asarray(value.data)
        feeds[value.name] = arr
        graph_inputs.append(helper.make_tensor_value_info(
            value.name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
    graph_outputs = [helper.make_tensor_value_info(v.name, onnx.TensorProto.UNDEFINED, None)
                     for v in node.outputs]
    graph = helper.make_graph([proto], "fold", graph_inputs, graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:  # the reference rejects inconsistent constants
        if "No implementation" not in str(exc):
            raise ModelError(f"{node.label()}: cannot evaluate on its constant inputs: "
                             f"{exc}") from None
        # the reference implements some ops only from a later opset on (such
        # as DequantizeLinear before 19), whose semantics extend the older
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(
            "", onnx.defs.onnx_opset_version())])
        try:
            results = ReferenceEvaluator(model).run(None, feeds)
        except Exception as exc2:
            raise ModelError(f"{node.label()}: cannot evaluate on its constant inputs: "
                             f"{exc2}") from None
    return [np.asarray(r) for r in results]
