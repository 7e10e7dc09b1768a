"""Reductions, ArgMax/ArgMin, CumSum and TopK on the device against the
reference, in both storage modes, over odd shapes, short rows (one work-item
per output) and long rows (a work-group per output)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from conftest import run_both
from test_elementwise import _model, check

RNG = np.random.default_rng(99)
REDUCERS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
            "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
CASES = [((3, 13), [1], 1), ((2, 3, 127), [0, 2], 0), ((1, 5, 300), [2], 1),
         ((3, 700), None, 1)]


def _data(op, shape):
    if op == "ReduceProd":
        return RNG.uniform(0.8, 1.2, shape).astype(np.float32)
    if op == "ReduceLogSum":
        return RNG.uniform(0.1, 2.0, shape).astype(np.float32)
    return RNG.uniform(-2, 2, shape).astype(np.float32)


@pytest.mark.parametrize("op", REDUCERS)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_reduce_axes_input(device, precision, op, case):
    shape, axes, keepdims = CASES[case]
    inputs = ["x", "axes"] if axes is not None else ["x"]
    inits = {"axes": np.array(axes, np.int64)} if axes is not None else None
    node = helper.make_node(op, inputs, ["y"], keepdims=keepdims)
    check(device, precision, node, {"x": _data(op, shape)}, inits, opset=18,
          rtol=5e-2 if precision == "fp16" else 1e-4)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
def test_reduce_axes_attribute(device, precision, op):
    node = helper.make_node(op, ["x"], ["y"], axes=[-1, 0], keepdims=0)
    check(device, precision, node, {"x": _data(op, (3, 2, 13))}, opset=11)


def test_reduce_noop_and_empty(device):
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], noop_with_empty_axes=1)
    check(device, "fp32", node, {"x": _data("ReduceSum", (3, 13))},
          {"axes": np.array([], np.int64)})
    node = helper.make_node("ReduceLogSumExp", ["x", "axes"], ["y"])
    model = _model(node, {"x": np.zeros((2, 0, 4), np.float32)},
                   {"axes": np.array([1], np.int64)})
    got, want = run_both(model, {"x": np.zeros((2, 0, 4), np.float32)}, device)
    np.testing.assert_array_equal(got[0], want[0])   # -inf: the log of an empty sum


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin"])
def test_reduce_int(device, op, dtype):
    if dtype == np.bool_ and op == "ReduceSum":
        pytest.skip("ReduceSum has no bool version")
    x = RNG.integers(-50, 50, (3, 13, 5)).astype(dtype)
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)
    check(device, "fp32", node, {"x": x}, {"axes": np.array([1], np.int64)}, opset=20)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
def test_argreduce(device, precision, op, last):
    x = RNG.integers(-3, 3, (3, 13, 5)).astype(np.float32)   # many ties
    node = helper.make_node(op, ["x"], ["y"], axis=1, keepdims=last, select_last_index=last)
    check(device, precision, node, {"x": x}, opset=13)


@pytest.mark.parametrize("op", ["CumSum", "CumProd"])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumulative(device, precision, op, exclusive, reverse):
    node = helper.make_node(op, ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)
    data = _data("ReduceProd" if op == "CumProd" else "ReduceSum", (3, 13, 5))
    check(device, precision, node, {"x": data}, {"axis": np.array(-2, np.int64)},
          opset=26 if op == "CumProd" else 14)


@pytest.mark.parametrize("largest", [0, 1])
def test_topk(device, precision, largest):
    x = RNG.integers(-20, 20, (3, 127)).astype(np.float32)   # ties: lower index first
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=largest)
    check(device, precision, node, {"x": x}, {"k": np.array([13], np.int64)}, opset=11)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_and_nll(device, precision, reduction, weighted):
    scores = RNG.standard_normal((3, 5, 13)).astype(np.float32)
    labels = RNG.integers(0, 5, (3, 13)).astype(np.int64)
    labels[0, :4] = 2                                  # ignored
    inits = {"w": RNG.uniform(0.5, 2, 5).astype(np.float32)} if weighted else {}
    inputs = ["x", "t", "w"] if weighted else ["x", "t"]
    for op, outputs in (("SoftmaxCrossEntropyLoss", ["loss", "log_prob"]),
                        ("NegativeLogLikelihoodLoss", ["loss"])):
        node = helper.make_node(op, inputs, outputs, reduction=reduction, ignore_index=2)
        check(device, precision, node, {"x": scores, "t": labels}, inits, opset=13)
