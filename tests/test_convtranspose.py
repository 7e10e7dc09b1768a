"""ConvTranspose (GEMM + col2im) and pooling against the reference.

ConvTranspose: groups, strides, pads, output_padding, output_shape,
dilations, auto_pad, 1-D/2-D/3-D, constant and run-time weights.  Pooling:
MaxPool with Indices (both storage orders), AveragePool edge cases, LpPool,
GlobalLpPool, MaxUnpool.  Both storage modes."""
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


# -- pooling: the other spatial ops ------------------------------------------
POOLS = {
    "max3d_indices": ("MaxPool", (1, 2, 5, 7, 6), {"kernel_shape": [2, 3, 2],
                                                    "strides": [2, 2, 1], "pads": [1, 0, 1] * 2},
                      2),
    "max2d_indices_colmajor": ("MaxPool", (2, 3, 7, 5), {"kernel_shape": [3, 2],
                                                         "storage_order": 1, "dilations": [2, 1]},
                               2),
    "avg_ceil_include_pad": ("AveragePool", (1, 3, 13, 7),
                             {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                              "ceil_mode": 1, "count_include_pad": 1}, 1),
    "avg_same_lower_1d": ("AveragePool", (2, 3, 13), {"kernel_shape": [4],
                                                      "auto_pad": "SAME_LOWER"}, 1),
    "lp3_2d": ("LpPool", (1, 3, 7, 5), {"kernel_shape": [2, 3], "p": 3, "pads": [1, 0, 0, 1]},
               1),
    "lp_3d": ("LpPool", (1, 2, 4, 5, 3), {"kernel_shape": [2, 2, 2]}, 1),
}


@pytest.mark.parametrize("case", list(POOLS))
def test_pool(device, precision, case):
    op, shape, attrs, outputs = POOLS[case]
    names = ["y", "i"][:outputs]
    x = rand(*shape)
    check(device, precision, [helper.make_node(op, ["x"], names, **attrs)], {"x": x},
          opset=18, outputs=names)


def test_global_lp_pool_and_uint8_max_pool(device, precision):
    check(device, precision, [helper.make_node("GlobalLpPool", ["x"], ["y"], p=3)],
          {"x": rand(2, 3, 5, 13)})
    x = np.random.default_rng(5).integers(0, 255, size=(1, 2, 7, 5)).astype(np.uint8)
    check(device, precision, [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 2],
                                               pads=[1, 1, 0, 0])], {"x": x}, opset=12)


@pytest.mark.parametrize("output_shape", [None, (1, 3, 7, 11)])
def test_max_unpool_round_trip(device, precision, output_shape):
    nodes = [helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("MaxUnpool", ["p", "i"] + (["s"] if output_shape else []), ["y"],
                              kernel_shape=[2, 2], strides=[2, 2])]
    inits = {"s": np.array(output_shape, np.int64)} if output_shape else None
    check(device, precision, nodes, {"x": rand(1, 3, 6, 10)}, inits, opset=11)


@pytest.mark.parametrize("attrs", [{}, {"strides": [2, 1], "pads": [1, 0, 0, 1],
                                        "dilations": [1, 2]}])
def test_col2im(device, precision, attrs):
    image, block = np.array([7, 9], np.int64), np.array([3, 2], np.int64)
    strides, pads, dil = (attrs.get(k, d) for k, d in (("strides", [1, 1]),
                                                      ("pads", [0] * 4), ("dilations", [1, 1])))
    grid = [(image[i] + pads[i] + pads[2 + i] - (dil[i] * (block[i] - 1) + 1)) // strides[i] + 1
            for i in range(2)]
    x = rand(2, 3 * 6, int(np.prod(grid)))
    check(device, precision, [helper.make_node("Col2Im", ["x", "i", "b"], ["y"], **attrs)],
          {"x": x}, {"i": image, "b": block}, opset=18)
