"""Gather/GatherElements/GatherND/ScatterElements/ScatterND on the device,
checked against the reference in both storage modes, for float and int64
data, with constant and run-time (int64/int32, negative) indices."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_close, run_both

RNG = np.random.default_rng(4)
ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
              np.dtype(np.int32): TensorProto.INT32, np.dtype(np.bool_): TensorProto.BOOL,
              np.dtype(np.uint8): TensorProto.UINT8}


def make_model(nodes, inputs: dict, inits: dict = None, outputs=("y",), opset: int = 18):
    """A one-graph model; inputs are fed, inits are constants; outputs shapeless."""
    graph_inputs = [helper.make_tensor_value_info(n, ONNX_TYPES[a.dtype], a.shape)
                    for n, a in inputs.items()]
    graph_outputs = [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None)
                     for n in outputs]
    init = [numpy_helper.from_array(np.asarray(a), n) for n, a in (inits or {}).items()]
    graph = helper.make_graph(nodes, "t", graph_inputs, graph_outputs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    try:   # typed outputs, so that onnxruntime (not only onnx.reference) checks us
        typed = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception:
        return model
    for out, inferred in zip(model.graph.output, typed.graph.output):
        out.type.tensor_type.elem_type = inferred.type.tensor_type.elem_type
    return model


def check(device, precision, nodes, inputs, inits=None, opset=18, outputs=("y",)):
    model = make_model(nodes, inputs, inits, outputs, opset)
    got, want = run_both(model, inputs, device, precision)
    assert_close(got, want, precision)
    return got


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("const_indices", [True, False])
def test_gather(device, precision, axis, const_indices):
    x = rand(3, 13, 5)
    dim = x.shape[axis]
    idx = RNG.integers(-dim, dim, size=(2, 7)).astype(np.int64)
    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)
    if const_indices:
        check(device, precision, [node], {"x": x}, {"i": idx})
    else:
        check(device, precision, [node], {"x": x, "i": idx})


def test_gather_embedding_int32_scalar_and_int64_data(device, precision):
    """BERT's lookup: a constant table, run-time int32 ids; scalar index; int64 data."""
    table = rand(127, 13)
    ids = RNG.integers(0, 127, size=(3, 13)).astype(np.int32)
    check(device, precision, [helper.make_node("Gather", ["t", "i"], ["y"])],
          {"i": ids}, {"t": table})
    check(device, precision, [helper.make_node("Gather", ["x", "s"], ["y"], axis=1)],
          {"x": rand(3, 13)}, {"s": np.array(-2, np.int64)})
    data = RNG.integers(-10**12, 10**12, size=(13, 3)).astype(np.int64)
    got = check(device, precision, [helper.make_node("Gather", ["x", "i"], ["y"])],
                {"x": data, "i": np.array([12, 0, -1], np.int64)})
    assert got[0].dtype == np.int64


@pytest.mark.parametrize("axis", [0, 2])
def test_gather_elements(device, precision, axis):
    x = rand(3, 5, 13)
    shape = list(x.shape)
    shape[axis] = 4
    idx = RNG.integers(-x.shape[axis], x.shape[axis], size=shape).astype(np.int64)
    check(device, precision, [helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)],
          {"x": x, "i": idx})


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gather_nd(device, precision, batch_dims):
    x = rand(3, 5, 13)
    idx = np.stack([RNG.integers(-5, 5, size=(3, 7)), RNG.integers(0, 13, size=(3, 7))], -1)
    if batch_dims == 0:
        idx = np.stack([RNG.integers(0, 3, size=(3, 7)), RNG.integers(-5, 5, size=(3, 7))], -1)
    check(device, precision,
          [helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=batch_dims)],
          {"x": x, "i": idx.astype(np.int64)})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements(device, precision, reduction):
    x = rand(5, 13)
    if reduction == "none":   # unique targets along axis 1 per row
        idx = np.stack([RNG.permutation(13)[:4] for _ in range(3)]).astype(np.int64) - 13
    else:                     # duplicates must all be applied
        idx = RNG.integers(0, 3, size=(3, 4)).astype(np.int64)
    upd = rand(3, 4)
    node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=1,
                            reduction=reduction)
    check(device, precision, [node], {"x": x, "i": idx, "u": upd})


@pytest.mark.parametrize("reduction", ["none", "add", "max"])
def test_scatter_nd(device, precision, reduction):
    x = rand(7, 3, 13)
    if reduction == "none":
        idx = np.array([[[1]], [[-1]], [[4]]], np.int64)
    else:
        idx = np.array([[[1]], [[1]], [[4]]], np.int64)
    upd = rand(3, 1, 3, 13)
    check(device, precision,
          [helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=reduction)],
          {"x": x, "i": idx, "u": upd})


def test_scatter_nd_int64_add(device):
    x = np.arange(13, dtype=np.int64)
    idx = np.array([[3], [3], [12]], np.int64)
    upd = np.array([10**11, 5, -7], np.int64)
    check(device, "fp32", [helper.make_node("ScatterND", ["x", "i", "u"], ["y"],
                                            reduction="add")],
          {"x": x, "i": idx, "u": upd})


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter(device, precision, mode):
    cache, update = rand(2, 3, 13, 4), rand(2, 3, 5, 4)
    idx = np.array([2, 11] if mode == "circular" else [0, 8], np.int64)
    check(device, precision, [helper.make_node("TensorScatter", ["c", "u", "w"], ["y"],
                                               mode=mode)],
          {"c": cache, "u": update, "w": idx}, opset=24)
