"""The size a folded node's outputs would take, checked before it is evaluated.

A node of constant inputs is evaluated on the host at load (and by the
planner); ConstantOfShape, Expand, Tile, Range and friends can be asked for
gigabytes by a few bytes of shape, and numpy would try.  ONNX shape
inference (with the small inputs' values, for data propagation) gives the
output shapes first; outputs over FOLD_MAX_BYTES are a ModelError.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError

FOLD_MAX_BYTES = 1 << 30
# ops whose outputs can be much larger than their inputs
GROWING = frozenset({"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad",
                     "OneHot", "EyeLike", "Trilu", "MatMul", "Gemm", "Einsum", "Constant",
                     "RandomNormal", "RandomUniform", "CenterCropPad", "Col2Im"})
_SMALL = 4096          # inputs up to this many elements are given by value


def check_fold_size(node, proto: "onnx.NodeProto", opset: int) -> None:
    """Raise ModelError when node's outputs would exceed FOLD_MAX_BYTES."""
    if node.op not in GROWING:
        return
    if node.op == "Range":
        start, limit, delta = (float(np.asarray(v.data).reshape(-1)[0]) for v in node.inputs[:3])
        count = max(math.ceil((limit - start) / delta), 0) if delta else math.inf
        _refuse_over(node, count * np.asarray(node.inputs[0].data).dtype.itemsize)
        return
    inits, infos = [], []
    for value in node.inputs:
        if value is None or any(i.name == value.name for i in inits + infos):
            continue
        arr = np.asarray(value.data)
        if arr.size <= _SMALL and arr.dtype != object:
            inits.append(numpy_helper.from_array(arr, value.name))
        else:
            infos.append(helper.make_tensor_value_info(
                value.name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
    graph = helper.make_graph([proto], "fold", infos, [helper.make_tensor_value_info(
        v.name, onnx.TensorProto.UNDEFINED, None) for v in node.outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph.output
    except Exception:
        return                       # the evaluation reports what is wrong
    for info in inferred:
        ttype = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        if not ttype.HasField("shape") or None in dims:
            continue
        try:
            itemsize = helper.tensor_dtype_to_np_dtype(ttype.elem_type).itemsize
        except (KeyError, TypeError, ValueError):
            itemsize = 8
        _refuse_over(node, math.prod(dims) * itemsize, dims)


def _refuse_over(node, nbytes: float, dims=None) -> None:
    if nbytes > FOLD_MAX_BYTES:
        shape = f" of shape {dims}" if dims is not None else ""
        raise ModelError(f"{node.label()}: folding it on its constant inputs would make an "
                         f"output{shape} of {nbytes / 2**30:.1f} GiB, over the "
                         f"{FOLD_MAX_BYTES >> 30} GiB clnet evaluates at load")
