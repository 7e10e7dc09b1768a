"""CausalConvWithState (opset 27) and SwiGLU (opset 28) on the device,
checked against the ONNX reference in both storage modes, with odd shapes,
with and without bias/past_state, and every activation."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, run_both
from test_gather import make_model

RNG = np.random.default_rng(27)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("with_past", [False, True])
@pytest.mark.parametrize("activation", ["none", "silu", "swish"])
def test_causal_conv_with_state(device, precision, k, with_bias, with_past, activation):
    batch, channels, length = 3, 5, 13
    feeds = {"x": rand(batch, channels, length), "w": rand(channels, 1, k)}
    inputs = ["x", "w", "", ""]
    if with_bias:
        feeds["b"], inputs[2] = rand(channels), "b"
    if with_past:
        feeds["s"], inputs[3] = rand(batch, channels, k - 1), "s"
    node = helper.make_node("CausalConvWithState", inputs, ["y", "state"],
                            activation=activation)
    model = make_model([node], feeds, outputs=("y", "state"), opset=27)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


def test_causal_conv_decode_step(device, precision):
    """One token at a time with the carried state equals the whole sequence."""
    feeds = {"x": rand(1, 3, 1), "w": rand(3, 1, 4), "s": rand(1, 3, 3)}
    node = helper.make_node("CausalConvWithState", ["x", "w", "", "s"], ["y", "state"])
    model = make_model([node], feeds, outputs=("y", "state"), opset=27)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


def test_causal_conv_rejects_bad_weight(device):
    import clnet

    feeds = {"x": rand(1, 3, 5), "w": rand(4, 1, 2)}
    node = helper.make_node("CausalConvWithState", ["x", "w"], ["y", "state"])
    model = make_model([node], feeds, outputs=("y", "state"), opset=27)
    with pytest.raises(clnet.errors.ClnetError, match="weight"):
        clnet.InferenceSession(model.SerializeToString(), device=device).run(None, feeds)


@pytest.mark.parametrize("alpha", [None, 1.702])
@pytest.mark.parametrize("shape", [(13,), (3, 127)])
def test_swiglu(device, precision, alpha, shape):
    feeds = {"a": rand(*shape), "b": rand(*shape)}
    attrs = {} if alpha is None else {"alpha": alpha}
    model = make_model([helper.make_node("SwiGLU", ["a", "b"], ["y"], **attrs)], feeds,
                       opset=28)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


@pytest.mark.parametrize("rule", ["linear", "gated", "delta", "gated_delta"])
@pytest.mark.parametrize("heads", [(3, 3), (6, 3), (3, 1)])
@pytest.mark.parametrize("with_past", [False, True])
def test_linear_attention(device, precision, rule, heads, with_past):
    heads_q, heads_kv = heads
    batch, steps, dk, dv = 2, 7, 5, 3
    feeds = {"q": rand(batch, steps, heads_q * dk) * 0.5,
             "k": rand(batch, steps, heads_kv * dk) * 0.5,
             "v": rand(batch, steps, heads_kv * dv)}
    inputs = ["q", "k", "v", "", "", ""]
    if with_past:
        feeds["s"], inputs[3] = rand(batch, heads_kv, dk, dv), "s"
    if rule in ("gated", "gated_delta"):
        # per-key decay for gated, per-head for gated_delta: both layouts covered
        width = heads_kv * dk if rule == "gated" else heads_kv
        feeds["g"], inputs[4] = -abs(rand(batch, steps, width)), "g"
    if rule in ("delta", "gated_delta"):
        feeds["b"], inputs[5] = 1.0 / (1.0 + np.exp(-rand(batch, steps, heads_kv))), "b"
    while inputs[-1] == "":
        inputs.pop()
    node = helper.make_node("LinearAttention", inputs, ["y", "state"], update_rule=rule,
                            q_num_heads=heads_q, kv_num_heads=heads_kv)
    model = make_model([node], feeds, outputs=("y", "state"), opset=27)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


def test_linear_attention_scale_and_scalar_beta(device, precision):
    feeds = {"q": rand(1, 13, 8), "k": rand(1, 13, 8) * 0.3, "v": rand(1, 13, 4),
             "g": -abs(rand(1, 13, 2)), "b": np.full((1, 13, 1), 0.5, np.float32)}
    node = helper.make_node("LinearAttention", ["q", "k", "v", "", "g", "b"], ["y", "state"],
                            q_num_heads=2, kv_num_heads=2, scale=0.25)
    model = make_model([node], feeds, outputs=("y", "state"), opset=27)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


def test_linear_attention_rejects_missing_decay(device):
    import clnet

    feeds = {"q": rand(1, 3, 4), "k": rand(1, 3, 4), "v": rand(1, 3, 4)}
    node = helper.make_node("LinearAttention", ["q", "k", "v"], ["y", "state"],
                            update_rule="gated", q_num_heads=1, kv_num_heads=1)
    model = make_model([node], feeds, outputs=("y", "state"), opset=27)
    with pytest.raises(clnet.errors.ClnetError, match="decay"):
        clnet.InferenceSession(model.SerializeToString(), device=device).run(None, feeds)


@pytest.mark.parametrize("opset", [10, 16])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align(device, precision, opset, mode, sampling_ratio):
    x = rand(2, 3, 13, 11)
    # boxes inside, crossing and beyond the image, one thinner than a pixel
    rois = np.array([[0, 0, 9, 9], [2.5, 1.2, 10.7, 12.9], [-3, 4, 5, 20], [6, 6, 6.4, 8]],
                    np.float32)
    feeds = {"x": x, "r": rois, "i": np.array([0, 1, 1, 0], np.int64)}
    node = helper.make_node("RoiAlign", ["x", "r", "i"], ["y"], mode=mode, output_height=5,
                            output_width=3, sampling_ratio=sampling_ratio,
                            spatial_scale=0.9)
    model = make_model([node], feeds, opset=opset)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


@pytest.mark.parametrize("variant", ["plain", "strided_padded", "groups_mask_bias"])
def test_deform_conv(device, precision, variant):
    x = rand(2, 4, 7, 6)
    attrs = {"kernel_shape": [3, 3]}
    w_shape, offset_groups, out_hw = (3, 4, 3, 3), 1, (5, 4)
    if variant == "strided_padded":
        attrs.update(strides=[2, 1], pads=[1, 2, 1, 0], dilations=[1, 2])
        out_hw = (4, 4)
    if variant == "groups_mask_bias":
        attrs.update(group=2, offset_group=2)
        w_shape, offset_groups = (4, 2, 3, 3), 2
    feeds = {"x": x, "w": rand(*w_shape), "off": rand(2, offset_groups * 18, *out_hw) * 1.5}
    inputs = ["x", "w", "off"]
    if variant == "groups_mask_bias":
        feeds["b"] = rand(4)
        feeds["m"] = 1.0 / (1.0 + np.exp(-rand(2, offset_groups * 9, *out_hw)))
        inputs += ["b", "m"]
    model = make_model([helper.make_node("DeformConv", inputs, ["y"], **attrs)], feeds,
                       opset=19)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 3, 5, 5), (13, 13)])
def test_det(device, precision, shape):
    # well-conditioned (diagonal-heavy), determinants within fp16's range,
    # and one singular matrix in the batch
    x = (rand(*shape) + 3.0 * np.eye(shape[-1], dtype=np.float32)) / 3.0
    if len(shape) > 2:
        x[0, 0, 1] = x[0, 0, 0]
    feeds = {"x": x}
    model = make_model([helper.make_node("Det", ["x"], ["y"])], feeds, opset=11)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision, rtol=1e-3 if precision == "fp32" else None)


def test_roi_align_rejects_bad_batch_index(device):
    import clnet

    feeds = {"x": rand(2, 3, 5, 5), "r": np.array([[0, 0, 3, 3]], np.float32)}
    node = helper.make_node("RoiAlign", ["x", "r", "i"], ["y"])
    model = make_model([node], feeds, {"i": np.array([2], np.int64)}, opset=16)
    with pytest.raises(clnet.errors.ClnetError, match="batch_indices"):
        clnet.InferenceSession(model.SerializeToString(), device=device).run(None, feeds)
