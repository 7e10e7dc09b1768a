"""Normalisation and softmax-family ops on the device against the reference,
in both storage modes, on odd shapes (rows shorter and longer than a
work-group)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from test_elementwise import _model, check

RNG = np.random.default_rng(7)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape,axis", [((3, 13), -1), ((2, 3, 127), 1), ((1, 5, 300), -1)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm(device, precision, shape, axis, with_bias, policy=None):
    inputs = ["x", "s", "b"] if with_bias else ["x", "s"]
    inits = {"s": _rand(*shape[axis:]), "b": _rand(*shape[axis:])}
    node = helper.make_node("LayerNormalization", inputs, ["y", "mean", "inv"], axis=axis,
                            epsilon=1e-3)
    check(device, precision, node, {"x": _rand(*shape) * 3 + 1}, inits, opset=17,
          policy=policy)


def test_layer_norm_broadcast_scale_runtime(device, precision):
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=1)
    check(device, precision, node, {"x": _rand(2, 3, 13), "s": _rand(1, 13), "b": _rand(13)},
          opset=17)


@pytest.mark.parametrize("shape,axis", [((3, 13), -1), ((2, 3, 127), 1)])
def test_rms_norm(device, precision, shape, axis, policy=None):
    node = helper.make_node("RMSNormalization", ["x", "s"], ["y"], axis=axis)
    check(device, precision, node, {"x": _rand(*shape)}, {"s": _rand(*shape[axis:])},
          opset=23, policy=policy)


@pytest.mark.parametrize("shape", [(2, 3, 13), (1, 5, 7, 11)])
def test_instance_norm(device, precision, shape, policy=None):
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4)
    check(device, precision, node, {"x": _rand(*shape)},
          {"s": _rand(shape[1]), "b": _rand(shape[1])}, policy=policy)


def test_group_norm(device, precision, policy=None):
    shape, groups = (2, 6, 5, 13), 3
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups)
    check(device, precision, node, {"x": _rand(*shape)}, {"s": _rand(6), "b": _rand(6)},
          opset=21, policy=policy)


@pytest.mark.parametrize("row_items", [True, False])
def test_norms_with_a_large_mean(device, row_items):
    """Rows far from zero with a small spread (|mean| / std = 1e4), against a
    float64 truth: a float32 mean from a plain sum is off by 3e-3 here
    (onnxruntime 5e-4), so the kernels correct it with the deviations' sum."""
    import clnet

    x = (1000.0 + 0.1 * RNG.standard_normal((8, 37))).astype(np.float32)
    s, b = _rand(37), _rand(37)
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], epsilon=1e-5)
    model = _model(node, {"x": x}, {"s": s, "b": b}, 17)
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     policy={"norm_row_items": row_items})
    got = session.run(None, {"x": x})[0]
    xd = x.astype(np.float64)
    want = (xd - xd.mean(1, keepdims=True)) / np.sqrt(xd.var(1, keepdims=True) + 1e-5) * s + b
    assert np.abs(got - want).max() <= 2e-4 * np.abs(want).max()


@pytest.mark.parametrize("row_items", [True, False])
def test_norm_kernels_on_any_device(device, precision, row_items):
    """Both rownorm kernels whatever the device (CPUs normally run the
    work-item-per-row one, GPUs the work-group one)."""
    policy = {"norm_row_items": row_items}
    if not row_items:
        policy["norm_wgs"] = 16
    test_layer_norm(device, precision, (2, 3, 127), 1, True, policy)
    test_instance_norm(device, precision, (1, 5, 7, 11), policy)
    test_group_norm(device, precision, policy)
    test_rms_norm(device, precision, (3, 13), -1, policy)


@pytest.mark.parametrize("size", [1, 3, 5])   # onnxruntime takes odd sizes only
def test_lrn(device, precision, size):
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=0.01, beta=0.6, bias=1.5)
    check(device, precision, node, {"x": _rand(2, 7, 3, 5)})


@pytest.mark.parametrize("p,axis", [(1, 0), (2, -1)])
def test_lp_norm(device, precision, p, axis):
    node = helper.make_node("LpNormalization", ["x"], ["y"], p=p, axis=axis)
    check(device, precision, node, {"x": _rand(3, 13)})


def test_mean_variance_norm(device, precision):
    node = helper.make_node("MeanVarianceNormalization", ["x"], ["y"])
    check(device, precision, node, {"x": _rand(2, 3, 5, 13) * 2 + 1})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset,axis", [(11, 1), (13, 1), (13, -1)])
def test_softmax_family(device, precision, op, opset, axis):
    x = RNG.integers(-4, 4, (2, 3, 13)).astype(np.float32)   # ties for Hardmax
    node = helper.make_node(op, ["x"], ["y"], axis=axis)
    check(device, precision, node, {"x": x}, opset=opset)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("width", [8, 130])
def test_softmax_wide_rows(device, precision, op, width):
    """Rows with whole vectors and a tail (CPU devices' softmax_rows)."""
    x = (RNG.standard_normal((2, 5, width)) * 4).astype(np.float32)
    check(device, precision, helper.make_node(op, ["x"], ["y"]), {"x": x}, opset=13)


@pytest.mark.parametrize("training", [0, 1])
def test_batch_norm_runtime_parameters(device, precision, training):
    c = 3
    inputs = {"x": _rand(2, c, 5, 7), "s": _rand(c), "b": _rand(c), "m": _rand(c),
              "v": RNG.uniform(0.5, 2, c).astype(np.float32)}
    outputs = ["y", "rm", "rv"] if training else ["y"]
    node = helper.make_node("BatchNormalization", list(inputs), outputs, epsilon=1e-3,
                            momentum=0.8, training_mode=training)
    check(device, precision, node, inputs, opset=15)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("cols", [True, False])
@pytest.mark.parametrize("shape,axis", [((2, 5, 16), 1), ((1, 7, 3, 8), 1), ((3, 24), 0)])
def test_softmax_columns(device, precision, op, cols, shape, axis):
    """A softmax over a non-innermost axis with 8k columns after it, with
    softmax_cols forced on and off."""
    x = (RNG.standard_normal(shape) * 4).astype(np.float32)
    check(device, precision, helper.make_node(op, ["x"], ["y"], axis=axis), {"x": x},
          opset=13, policy={"softmax_cols": cols})
