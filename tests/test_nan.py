"""NaN and +-inf flow through max/min-like ops as in the references (issue 18).

Elementwise ops, softmax, ArgMax and TopK are checked against onnxruntime.
Pooling, ReduceMax/Min and Hardmax against numpy (any NaN in a window or row
gives NaN, Hardmax marks the first NaN): onnxruntime's CPU kernels keep a
NaN only when it comes first in their loop order, which is an artefact of
the loop, not a semantics.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper

import clnet

F = TensorProto.FLOAT


def _model(node, input_shapes, out_types=(F,), inits=(), opset=17):
    inputs = [helper.make_tensor_value_info(n, F, s) for n, s in input_shapes.items()]
    outputs = [helper.make_tensor_value_info(n, t, None) for n, t in zip(node.output, out_types)]
    graph = helper.make_graph([node], "nan", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _special(shape, seed=0):
    """Normal values with about 1/7 NaN, 1/9 +inf and 1/9 -inf, the first NaN."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    order = rng.permutation(flat.size)
    n, m = max(1, flat.size // 7), flat.size // 9
    flat[order[:n]] = np.nan
    flat[order[n:n + m]] = np.inf
    flat[order[n + m:n + 2 * m]] = -np.inf
    flat[0] = np.nan
    return x


def _same(got, want, tol=1e-4):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
        return
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=tol)


def _ort(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)


S = [2, 3, 5, 7]
R = [3, 5, 70]
BOUNDS = [helper.make_tensor("lo", F, [], [-0.5]), helper.make_tensor("hi", F, [], [0.5])]
ORT_CASES = {
    "Max": (helper.make_node("Max", ["a", "b"], ["y"]), {"a": S, "b": S}, (F,), ()),
    "Min3": (helper.make_node("Min", ["a", "b", "c"], ["y"]), {"a": S, "b": S, "c": S}, (F,), ()),
    "Clip": (helper.make_node("Clip", ["a", "lo", "hi"], ["y"]), {"a": S}, (F,), BOUNDS),
    "Relu": (helper.make_node("Relu", ["a"], ["y"]), {"a": S}, (F,), ()),
    "HardSigmoid": (helper.make_node("HardSigmoid", ["a"], ["y"]), {"a": S}, (F,), ()),
    "HardSwish": (helper.make_node("HardSwish", ["a"], ["y"]), {"a": S}, (F,), ()),
    "Sign": (helper.make_node("Sign", ["a"], ["y"]), {"a": S}, (F,), ()),
    "Celu": (helper.make_node("Celu", ["a"], ["y"]), {"a": S}, (F,), ()),
    "Softmax": (helper.make_node("Softmax", ["a"], ["y"], axis=1), {"a": R}, (F,), ()),
    "LogSoftmax": (helper.make_node("LogSoftmax", ["a"], ["y"]), {"a": [4, 1000]}, (F,), ()),
    "ArgMax": (helper.make_node("ArgMax", ["a"], ["y"], axis=2), {"a": R},
               (TensorProto.INT64,), ()),
    "TopK": (helper.make_node("TopK", ["a", "k"], ["y", "i"]), {"a": R},
             (F, TensorProto.INT64), [helper.make_tensor("k", TensorProto.INT64, [1], [4])]),
    "TopKSmallest": (helper.make_node("TopK", ["a", "k"], ["y", "i"], largest=0), {"a": R},
                     (F, TensorProto.INT64),
                     [helper.make_tensor("k", TensorProto.INT64, [1], [4])]),
}


@pytest.mark.parametrize("case", sorted(ORT_CASES))
def test_like_onnxruntime(device, case):
    node, shapes, types, inits = ORT_CASES[case]
    model = _model(node, shapes, types, inits)
    feeds = {n: _special(s, seed) for seed, (n, s) in enumerate(shapes.items())}
    got = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, feeds)
    for g, w in zip(got, _ort(model, feeds)):
        _same(g, w)


def _maxpool(x, kernel, strides, pads):
    nd = len(kernel)
    padded = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)],
                    constant_values=-np.inf)
    windows = sliding_window_view(padded, kernel, axis=tuple(range(2, 2 + nd)))
    picked = windows[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]
    return picked.max(axis=tuple(range(-nd, 0)))


@pytest.mark.parametrize("kernel,strides,pads,shape", [
    ([3, 3], [1, 1], [0, 0, 0, 0], [1, 3, 9, 11]),       # the 8-wide row blocks
    ([3, 3], [2, 2], [1, 1, 1, 1], [1, 3, 9, 11]),       # stride 2 of 3 columns
    ([2, 2], [2, 2], [0, 0, 0, 0], [1, 3, 9, 11]),
    ([3], [1], [0, 0], [1, 3, 20]),                      # the general kernel
])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_maxpool_propagates_nan(device, kernel, strides, pads, shape, precision):
    node = helper.make_node("MaxPool", ["a"], ["y"], kernel_shape=kernel, strides=strides,
                            pads=pads)
    model = _model(node, {"a": shape})
    x = _special(shape)
    got = clnet.InferenceSession(model.SerializeToString(), device=device,
                                 precision=precision).run(None, {"a": x})[0]
    _same(got, _maxpool(x, kernel, strides, pads), 2e-2)


def test_maxpool_indices_point_at_the_nan(device):
    node = helper.make_node("MaxPool", ["a"], ["y", "i"], kernel_shape=[2])
    model = _model(node, {"a": [1, 1, 5]}, (F, TensorProto.INT64))
    x = np.array([[[1, np.nan, 2, 5, np.nan]]], np.float32)
    values, indices = clnet.InferenceSession(model.SerializeToString(),
                                             device=device).run(None, {"a": x})
    _same(values, np.array([[[np.nan, np.nan, 5, np.nan]]], np.float32))
    np.testing.assert_array_equal(indices, [[[1, 1, 3, 4]]])


@pytest.mark.parametrize("op,reference", [("ReduceMax", np.max), ("ReduceMin", np.min)])
@pytest.mark.parametrize("axis", [1, 2])
def test_reduce_max_min_propagate_nan(device, op, reference, axis):
    model = _model(helper.make_node(op, ["a"], ["y"], axes=[axis], keepdims=0), {"a": R})
    x = _special(R)
    got = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, {"a": x})
    _same(got[0], reference(x, axis=axis))


def test_global_max_pool_and_hardmax(device):
    x = _special([1, 3, 9, 11])
    model = _model(helper.make_node("GlobalMaxPool", ["a"], ["y"]), {"a": x.shape})
    got = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, {"a": x})
    _same(got[0], x.max(axis=(2, 3), keepdims=True))
    rows = np.array([[1, np.nan, 2], [3, 1, np.inf], [np.nan, 1, np.nan]], np.float32)
    model = _model(helper.make_node("Hardmax", ["a"], ["y"]), {"a": rows.shape})
    got = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, {"a": rows})
    np.testing.assert_array_equal(got[0], np.eye(3, dtype=np.float32)[np.argmax(rows, axis=1)])


@pytest.mark.parametrize("act", ["Relu", "Clip"])
def test_conv_epilogue_activation_keeps_nan(device, act):
    """Relu and Clip fused into the convolution's GEMM epilogue."""
    rng = np.random.default_rng(3)
    w = helper.make_tensor("w", F, [8, 3, 3, 3], rng.standard_normal(216).astype(np.float32))
    nodes = [helper.make_node("Conv", ["a", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node(act, ["c"] + (["lo", "hi"] if act == "Clip" else []), ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("a", F,
                                                                             [1, 3, 10, 10])],
                              [helper.make_tensor_value_info("y", F, None)],
                              [w] + (BOUNDS if act == "Clip" else []))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((1, 3, 10, 10)).astype(np.float32)
    x[0, 1, 4, 4] = np.nan
    got = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, {"a": x})
    _same(got[0], _ort(model, {"a": x})[0])
