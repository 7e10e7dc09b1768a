"""Attention (opset 23), RotaryEmbedding and the MatMul/Softmax attention pattern,
checked against onnxruntime or the ONNX reference evaluator."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import assert_close, run_both

F = TensorProto.FLOAT


def one_node(op, inputs: dict, n_outputs, opset=23, **attrs):
    names = [n if a is not None else "" for n, a in inputs.items()]
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outs, **attrs)
    infos = [helper.make_tensor_value_info(
        n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in inputs.items() if a is not None]
    graph = helper.make_graph([node], "g", infos,
                              [helper.make_tensor_value_info(o, F, None) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model, {n: a for n, a in inputs.items() if a is not None}


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_attention_4d(device, precision):
    rng = np.random.default_rng(0)
    model, feeds = one_node("Attention", {"Q": rand(rng, 2, 3, 13, 8),
                                          "K": rand(rng, 2, 3, 7, 8),
                                          "V": rand(rng, 2, 3, 7, 5)}, 1)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


def test_attention_3d_grouped_query_float_mask(device):
    rng = np.random.default_rng(1)
    model, feeds = one_node("Attention", {"Q": rand(rng, 2, 5, 6 * 4),
                                          "K": rand(rng, 2, 9, 2 * 4),
                                          "V": rand(rng, 2, 9, 2 * 3),
                                          "attn_mask": rand(rng, 5, 9)}, 1,
                            q_num_heads=6, kv_num_heads=2, scale=0.3)
    got, want = run_both(model, feeds, device)
    assert_close(got, want)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_cache_causal_bool_mask_softcap(device, mode):
    rng = np.random.default_rng(2)
    mask = rng.random((2, 1, 3, 7)) > 0.3
    model, feeds = one_node("Attention", {
        "Q": rand(rng, 2, 4, 3, 8), "K": rand(rng, 2, 2, 3, 8), "V": rand(rng, 2, 2, 3, 8),
        "attn_mask": mask, "past_key": rand(rng, 2, 2, 4, 8),
        "past_value": rand(rng, 2, 2, 4, 8)}, 4,
        is_causal=1, softcap=2.5, qk_matmul_output_mode=mode)
    got, _ = run_both(model, feeds, device)
    # onnxruntime exposes the scores before softcap in mode 0; the ONNX
    # reference (which the node tests follow) after it
    from onnx.reference import ReferenceEvaluator
    for g, w in zip(got, ReferenceEvaluator(model).run(None, feeds)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)   # -inf where masked


def test_attention_fully_masked_row_is_zero(device):
    rng = np.random.default_rng(3)
    mask = np.ones((3, 5), bool)
    mask[1] = False
    model, feeds = one_node("Attention", {"Q": rand(rng, 1, 1, 3, 4), "K": rand(rng, 1, 1, 5, 4),
                                          "V": rand(rng, 1, 1, 5, 4), "attn_mask": mask}, 1)
    got, want = run_both(model, feeds, device)
    assert_close(got, want)
    assert not np.abs(got[0][0, 0, 1]).any()


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_4d_positions(device, precision, interleaved):
    rng = np.random.default_rng(4)
    model, feeds = one_node("RotaryEmbedding", {
        "X": rand(rng, 2, 3, 13, 8), "cos": rand(rng, 20, 3), "sin": rand(rng, 20, 3),
        "pos": rng.integers(0, 20, (2, 13)).astype(np.int64)}, 1,
        interleaved=interleaved, rotary_embedding_dim=6)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


def test_rotary_3d_without_positions(device):
    rng = np.random.default_rng(5)
    model, feeds = one_node("RotaryEmbedding", {
        "X": rand(rng, 2, 7, 3 * 4), "cos": rand(rng, 2, 7, 2), "sin": rand(rng, 2, 7, 2)},
        1, num_heads=3)
    got, want = run_both(model, feeds, device)
    assert_close(got, want)


def test_matmul_softmax_attention_pattern(device, precision):
    """softmax(Q K^T / sqrt(d) + mask) V built from standard ops (older exports)."""
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("Transpose", ["K"], ["Kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["Q", "Kt"], ["s"]),
             helper.make_node("Div", ["s", "root"], ["scaled"]),
             helper.make_node("Add", ["scaled", "mask"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "V"], ["Y"])]
    from onnx import numpy_helper
    inits = [numpy_helper.from_array(np.array(np.sqrt(8), np.float32), "root")]
    arrays = {"Q": rand(rng, 1, 3, 13, 8), "K": rand(rng, 1, 3, 13, 8),
              "V": rand(rng, 1, 3, 13, 8),
              "mask": np.where(rng.random((1, 1, 1, 13)) > 0.2, 0, -1e4).astype(np.float32)}
    infos = [helper.make_tensor_value_info(n, F, a.shape) for n, a in arrays.items()]
    graph = helper.make_graph(nodes, "g", infos, [helper.make_tensor_value_info("Y", F, None)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    got, want = run_both(model, arrays, device, precision)
    assert_close(got, want, precision)


def test_attention_nonpad_kv_seqlen_causal(device):
    rng = np.random.default_rng(7)
    model, feeds = one_node("Attention", {
        "Q": rand(rng, 2, 2, 3, 4), "K": rand(rng, 2, 2, 7, 4), "V": rand(rng, 2, 2, 7, 4),
        "attn_mask": None, "past_key": None, "past_value": None,
        "nonpad": np.array([5, 7], np.int64)}, 1, opset=24, is_causal=1)
    from onnx.reference import ReferenceEvaluator
    got, _ = run_both(model, feeds, device)
    assert_close(got, ReferenceEvaluator(model).run(None, feeds))
