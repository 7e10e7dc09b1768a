"""Dynamic shapes: one session runs a model with symbolic dims at several
batch sizes and sequence lengths (one plan per input-shape signature),
returns the real output shape when the declared one is wrong, and takes
shape tensors (Reshape's shape, Resize's sizes) as run-time inputs."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import clnet
from conftest import assert_close, reference

RNG = np.random.default_rng(11)


def _model(nodes, inputs, outputs, inits=None, opset=17):
    graph = helper.make_graph(nodes, "dyn", inputs, outputs,
                              [numpy_helper.from_array(a, n) for n, a in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _encoder_like():
    """Embedding lookup, projection and a reshape built from Shape at run time."""
    hidden = 12
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"]),               # [B, S, H]
        helper.make_node("MatMul", ["emb", "w"], ["proj"]),
        helper.make_node("Shape", ["ids"], ["bs"]),                          # [B, S]
        helper.make_node("Concat", ["bs", "heads"], ["shape4"], axis=0),     # [B, S, 3, 4]
        helper.make_node("Reshape", ["proj", "shape4"], ["split"]),
        helper.make_node("Transpose", ["split"], ["y"], perm=[0, 2, 1, 3]),  # [B, 3, S, 4]
    ]
    inits = {"table": RNG.standard_normal((50, hidden)).astype(np.float32),
             "w": RNG.standard_normal((hidden, hidden)).astype(np.float32),
             "heads": np.array([3, 4], np.int64)}
    inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                             ["batch", 3, "seq", 4])]
    return _model(nodes, inputs, outputs, inits)


def test_two_batch_sizes_and_sequence_lengths(device, precision):
    model = _encoder_like()
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision)
    plans = []
    for batch, seq in [(1, 13), (3, 7), (1, 13)]:
        ids = RNG.integers(0, 50, size=(batch, seq)).astype(np.int64)
        got = session.run(None, {"ids": ids})
        assert got[0].shape == (batch, 3, seq, 4)
        assert_close(got, reference(model, {"ids": ids}), precision)
        plans.append(session.last_plan)
    assert plans[0] is plans[2] and plans[0] is not plans[1]


def test_declared_output_shape_is_wrong(device):
    """The file says [2, 5] and [7]; the graph really makes [3, 4] and [3, 1]."""
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("ReduceMax", ["x"], ["m"], axes=[1], keepdims=1)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5]),
               helper.make_tensor_value_info("m", TensorProto.FLOAT, [7])]
    model = _model(nodes, inputs, outputs, opset=13)
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    got = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, {"x": x})
    assert [g.shape for g in got] == [(3, 4), (3, 1)]
    np.testing.assert_allclose(got[0], np.maximum(x, 0))
    np.testing.assert_allclose(got[1], x.max(axis=1, keepdims=True))


def test_shape_tensors_fed_at_run_time(device, precision):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Resize", ["r", "", "", "sizes"], ["y"], mode="nearest")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5]),
              helper.make_tensor_value_info("shape", TensorProto.INT64, [4]),
              helper.make_tensor_value_info("sizes", TensorProto.INT64, [4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    model = _model(nodes, inputs, outputs, opset=13)
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision)
    x = RNG.standard_normal((2, 3, 5)).astype(np.float32)
    for shape, sizes in [([1, 2, 3, 5], [1, 2, 7, 9]), ([1, 6, 5, 1], [1, 6, 2, 3]),
                         ([1, 2, 3, 5], [1, 2, 7, 9])]:
        feeds = {"x": x, "shape": np.array(shape, np.int64), "sizes": np.array(sizes, np.int64)}
        got = session.run(None, feeds)
        assert got[0].shape == tuple(sizes)
        assert_close(got, reference(model, feeds), precision)


def test_data_dependent_ops_on_inputs_and_clear_error_otherwise(device):
    import pytest
    from clnet.errors import UnsupportedOpError

    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.INT64, None)]
    model = _model([helper.make_node("NonZero", ["x"], ["y"])], inputs, outputs, opset=13)
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    for _ in range(2):
        x = (RNG.standard_normal((3, 5)) > 0.3).astype(np.float32)
        np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.stack(np.nonzero(x)))
    computed = _model([helper.make_node("Relu", ["x"], ["r"]),
                       helper.make_node("NonZero", ["r"], ["y"], name="nz")],
                      inputs, outputs, opset=13)
    with pytest.raises(UnsupportedOpError, match="'nz'.*NonZero.*computed on the device"):
        clnet.InferenceSession(computed.SerializeToString(), device=device)


def test_negative_declared_dim_is_free(device):
    """PaddleOCR exports declare [-1, 3, ?, ?]; onnxruntime reads -1 as a free
    dim, so any batch size runs (and get_inputs shows it as symbolic)."""
    model = _model([helper.make_node("Relu", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, 5])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 3, 5])])
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    assert not isinstance(session.get_inputs()[0].shape[0], int)
    for batch in (1, 4):
        x = RNG.standard_normal((batch, 3, 5)).astype(np.float32)
        got = session.run(None, {"x": x})
        assert_close(got, reference(model, {"x": x}))


def test_question_mark_dims_are_independent(device):
    """A "?" dim is unknown: two of them need not be equal (PaddleOCR's
    [-1, 3, ?, ?] takes 48x192 images), while a named symbol still binds."""
    import pytest
    from clnet.errors import InputError
    model = _model([helper.make_node("Add", ["x", "b"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "?", "?"]),
                    helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 1, 1])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    feeds = {"x": RNG.standard_normal((2, 3, 7)).astype(np.float32),
             "b": RNG.standard_normal((2, 1, 1)).astype(np.float32)}
    assert_close(session.run(None, feeds), reference(model, feeds))
    with pytest.raises(InputError, match="'n'"):
        session.run(None, {"x": feeds["x"], "b": np.zeros((3, 1, 1), np.float32)})
