"""ConvTranspose (GEMM + col2im) against onnxruntime: groups, strides, pads,
output_padding, output_shape, dilations, auto_pad, 1-D/2-D/3-D, constant and
run-time weights, in both storage modes."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from test_gather import check, rand

CASES = {
    "plain": ((1, 3, 5, 7), (3, 2, 3, 3), {}),
    "stride_pad_outpad": ((2, 3, 5, 7), (3, 5, 3, 2),
                          {"strides": [2, 3], "pads": [1, 0, 0, 1], "output_padding": [1, 2]}),
    "groups_dilation": ((1, 4, 7, 5), (4, 3, 3, 3), {"group": 2, "dilations": [2, 1],
                                                     "strides": [1, 2]}),
    "depthwise": ((1, 3, 5, 5), (3, 1, 4, 4), {"group": 3, "strides": [2, 2], "pads": [1] * 4}),
    "output_shape": ((1, 2, 3, 4), (2, 3, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}),
    "same_upper": ((1, 2, 3, 5), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    "1d": ((2, 3, 13), (3, 4, 5), {"strides": [3], "pads": [2, 1]}),
    "3d": ((1, 2, 3, 4, 5), (2, 3, 2, 3, 2), {"strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1]}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_conv_transpose(device, precision, case):
    x_shape, w_shape, attrs = CASES[case]
    inits = {"w": rand(*w_shape), "b": rand(w_shape[1] * attrs.get("group", 1))}
    check(device, precision, [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"],
                                               **attrs)],
          {"x": rand(*x_shape)}, inits, opset=13)


def test_conv_transpose_runtime_weights_no_bias(device, precision):
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], group=2)
    check(device, precision, [node], {"x": rand(3, 4, 5, 3), "w": rand(4, 2, 3, 3)}, opset=13)
