"""Invalid models are refused at load with a ModelError naming the node and
the attribute or input at fault (issue 18)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import clnet
from clnet.errors import ModelError

F = TensorProto.FLOAT


def _info(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _indices(values):
    return numpy_helper.from_array(np.array(values, np.int64), "i")


def _if_model():
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["t1"]),
                              helper.make_node("Identity", ["x"], ["t2"])], "then", [],
                             [_info("t1", [3]), _info("t2", [3])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e1"])], "else", [],
                              [_info("e1", [3])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="n")
    return _model([node], [_info("x", [3]), _info("c", [], TensorProto.BOOL)], [_info("y", None)])


X43 = [_info("x", [4, 3])]
CASES = {
    "gather index past the end": (
        _model([helper.make_node("Gather", ["x", "i"], ["y"], name="n")], X43, [_info("y", None)],
               [_indices([0, 5])]), "input 'i' holds index 5"),
    "gather negative index": (
        _model([helper.make_node("Gather", ["x", "i"], ["y"], name="n")], X43, [_info("y", None)],
               [_indices([-5])]), "index -5"),
    "gather_elements index": (
        _model([helper.make_node("GatherElements", ["x", "i"], ["y"], name="n", axis=1)], X43,
               [_info("y", None)], [_indices([[0, 7, 1]] * 4)]), "index 7"),
    "scatter_nd index": (
        _model([helper.make_node("ScatterND", ["x", "i", "u"], ["y"], name="n")], X43,
               [_info("y", None)],
               [_indices([[9]]), numpy_helper.from_array(np.ones((1, 3), np.float32), "u")]),
        "index 9"),
    "transpose perm length": (
        _model([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2], name="n")], X43,
               [_info("y", None)]), "attribute perm"),
    "transpose perm repeats": (
        _model([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 0], name="n")], X43,
               [_info("y", None)]), "not a permutation"),
    "kernel_shape zero": (
        _model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[0, 2], name="n")],
               [_info("x", [1, 1, 4, 4])], [_info("y", None)]), "kernel_shape"),
    "float plus int64": (
        _model([helper.make_node("Add", ["x", "c"], ["y"], name="n")], X43, [_info("y", None)],
               [numpy_helper.from_array(np.ones(3, np.int64), "c")]), "input 'c' is int64"),
    "if branch output counts": (_if_model(), "then_branch has 2 outputs"),
    "output dtype": (
        _model([helper.make_node("Relu", ["x"], ["y"], name="n")], X43,
               [_info("y", [4, 3], TensorProto.INT64)]), "declared int64"),
    "unknown output dtype": (
        _model([helper.make_node("Relu", ["x"], ["y"], name="n")], X43,
               [_info("y", [4, 3], 99)]), "declared data type 99"),
    "newer opset": (
        _model([helper.make_node("Relu", ["x"], ["y"], name="n")], X43, [_info("y", [4, 3])],
               opset=99), "opset 99"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_model_is_refused(device, case):
    """At load, or (kernel_shape, known only with the input's rank) at the
    first run; never a wrong result."""
    model, words = CASES[case]
    feeds = {i.name: np.ones([d.dim_value for d in i.type.tensor_type.shape.dim],
                             helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
             for i in model.graph.input}
    with pytest.raises(ModelError, match=words) as info:
        clnet.InferenceSession(model.SerializeToString(), device=device).run(None, feeds)
    text = str(info.value)
    assert "'n'" in text or "output" in text or "opset" in text


def test_newer_ir_version_is_refused_unless_allowed(device, monkeypatch):
    model = CASES["newer opset"][0]
    model.opset_import[0].version = 17
    model.ir_version = 99
    with pytest.raises(ModelError, match="IR version 99"):
        clnet.InferenceSession(model.SerializeToString(), device=device)
    model.ir_version = 8
    model.opset_import[0].version = 99
    monkeypatch.setenv("CLNET_ALLOW_NEWER_OPSET", "1")
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    x = np.array([[-1, 2, 3]] * 4, np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.maximum(x, 0))


def test_in_range_constant_indices_still_run(device):
    model = _model([helper.make_node("Gather", ["x", "i"], ["y"], name="n")], X43,
                   [_info("y", None)], [_indices([3, -4, 0])])
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    got = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, {"x": x})
    np.testing.assert_array_equal(got[0], x[[3, -4, 0]])


def test_nul_byte_in_external_data_location(device, tmp_path):
    from onnx import TensorProto as TP

    weight = TP(name="w", data_type=TP.FLOAT, dims=[3])
    weight.data_location = TP.EXTERNAL
    for key, value in (("location", "weights\0.bin"), ("offset", "0"), ("length", "12")):
        weight.external_data.add(key=key, value=value)
    model = _model([helper.make_node("Add", ["x", "w"], ["y"], name="n")], [_info("x", [3])],
                   [_info("y", [3])], [weight])
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="external data location"):
        clnet.InferenceSession(str(path), device=device)


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand", "Range"])
def test_huge_constant_is_not_folded(device, op):
    """A few bytes of shape asking numpy for 9.3 GiB at load."""
    shape = numpy_helper.from_array(np.array([50000, 50000], np.int64), "s")
    one = numpy_helper.from_array(np.ones(1, np.float32), "k")
    nodes = {"ConstantOfShape": (helper.make_node("ConstantOfShape", ["s"], ["c"], name="n"),
                                 [shape]),
             "Expand": (helper.make_node("Expand", ["k", "s"], ["c"], name="n"), [shape, one]),
             "Range": (helper.make_node("Range", ["a", "b", "d"], ["c"], name="n"),
                       [numpy_helper.from_array(np.array(v, np.float32), n)
                        for n, v in (("a", 0), ("b", 3e9), ("d", 1))])}
    node, inits = nodes[op]
    model = _model([node, helper.make_node("Add", ["x", "c"], ["y"])], [_info("x", [1])],
                   [_info("y", None)], inits)
    with pytest.raises(ModelError, match="GiB"):
        clnet.InferenceSession(model.SerializeToString(), device=device).run(
            None, {"x": np.ones(1, np.float32)})
