"""Convolutions (im2col panels + gemm.cl, depthwise.cl) against onnxruntime.

Odd sizes, strides, dilations, groups, 1-D, and the fused epilogue
(bias + activation + residual), in fp32 and fp16 storage, under the
default and a non-default set of GEMM parameters.
"""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import clnet.ops.gemm as gemm_ops
from conftest import assert_close, run_both

CASES = [
    # (N, C, H, W), (M, C/group, kh, kw), attrs
    ((1, 3, 13, 13), (5, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 4, 13, 11), (7, 4, 3, 3), {"strides": [2, 2], "pads": [1, 0, 1, 2]}),
    ((1, 6, 9, 9), (11, 6, 1, 1), {}),
    ((1, 8, 7, 13), (13, 8, 1, 1), {"strides": [2, 1]}),
    ((1, 6, 11, 11), (9, 2, 3, 3), {"group": 3, "pads": [1, 1, 1, 1], "dilations": [2, 2]}),
    ((1, 5, 13, 13), (5, 1, 3, 3), {"group": 5, "pads": [1, 1, 1, 1]}),
    ((1, 3, 127), (4, 3, 5), {"pads": [2, 2]}),
    # depthwise rows wide enough for the vector interior path, stride 1 and 2
    ((1, 3, 5, 37), (3, 1, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
    ((1, 5, 9, 41), (5, 1, 3, 3), {"group": 5, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
]


def _conv_model(x_shape, w_shape, attrs, rng, act=None, residual=False):
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"],
                              kernel_shape=list(w_shape[2:]), **attrs)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    last = "c"
    if residual:
        nodes.append(helper.make_node("Add", ["c", "r"], ["s"]))
        last = "s"
    if act:
        nodes.append(helper.make_node(act, [last], ["y"]))
        last = "y"
    graph = helper.make_graph(nodes, "conv", inputs + ([helper.make_tensor_value_info(
        "r", TensorProto.FLOAT, None)] if residual else []),
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("case", range(len(CASES)))
def test_conv_shapes(device, precision, case):
    x_shape, w_shape, attrs = CASES[case]
    rng = np.random.default_rng(case)
    model = _conv_model(x_shape, w_shape, attrs, rng, act="Relu")
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    got, want = run_both(model, feeds, device, precision)
    assert_close(got[0], want[0], precision)


@pytest.mark.parametrize("params", [{"TM": 4, "TN": 8, "VW": 8, "M_FIRST": 1},
                                    {"TM": 5, "TN": 16, "VW": 4, "KSPLIT": 2}])
def test_conv_residual_other_params(device, monkeypatch, params):
    """Conv + bias + residual Add + Relu in one epilogue, with forced tiles."""
    monkeypatch.setattr(gemm_ops, "gemm_params",
                        lambda dev, M, N, K, kind="gemm": dict(params, TM=min(params["TM"], M)))
    rng = np.random.default_rng(11)
    x_shape, w_shape = (1, 7, 13, 13), (7, 7, 3, 3)
    model = _conv_model(x_shape, w_shape, {"pads": [1, 1, 1, 1]}, rng, act="Relu",
                        residual=True)
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32),
             "r": rng.standard_normal((1, 7, 13, 13)).astype(np.float32)}
    got, want = run_both(model, feeds, device)
    assert_close(got[0], want[0])
