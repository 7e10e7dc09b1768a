"""int8: the ONNX quantized operators' node test cases, odd shapes against the
ONNX reference, and weight-only int8 for float models."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
             "ConvInteger", "QLinearMatMul", "QLinearConv")
INT_KINDS = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32)}


def node_cases(op_type: str, module: str = None) -> list:
    """The ONNX node test cases of one op, generated afresh.

    onnx's collect_testcases fills one global list on first use (with
    whatever op filter that first call had), so this re-runs the op's
    exporter into a private list instead.
    """
    import importlib

    import onnx.backend.test.case.node as registry

    exporter = getattr(importlib.import_module(
        f"onnx.backend.test.case.node.{module or op_type.lower()}"), op_type)
    saved = registry._NodeTestCases, registry._TargetOpType, registry._existing_names
    registry._NodeTestCases, registry._TargetOpType, registry._existing_names = [], op_type, {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in list(vars(exporter)):
                if name.startswith("export"):
                    np.random.seed(0)
                    getattr(exporter, name)()
        return registry._NodeTestCases
    finally:
        registry._NodeTestCases, registry._TargetOpType, registry._existing_names = saved


def _supported(case) -> bool:
    """Cases in the integer types clnet quantizes to (not float8/int4/blocked)."""
    model = case.model
    for node in model.graph.node:
        if any(a.name == "block_size" and a.i for a in node.attribute):
            return False
    for inputs, outputs in case.data_sets:
        for arr in list(inputs) + list(outputs):
            arr = np.asarray(arr)
            if arr.dtype.kind in "iu" and arr.dtype not in INT_KINDS:
                return False
            if arr.dtype.kind not in "iuf":
                return False
    return True


CASES = [c for op in QUANT_OPS for c in node_cases(op)]


@pytest.mark.parametrize("case", [c for c in CASES if _supported(c)], ids=lambda c: c.name)
def test_onnx_node_case(device, precision, case):
    import clnet

    session = clnet.InferenceSession(case.model.SerializeToString(), device=device,
                                     precision=precision)
    names = [i.name for i in case.model.graph.input]
    for inputs, outputs in case.data_sets:
        got = session.run(None, dict(zip(names, inputs)))
        for g, w in zip(got, outputs):
            w = np.asarray(w)
            assert g.dtype == w.dtype and g.shape == w.shape
            if w.dtype.kind == "f":
                tol = 1e-5 if precision == "fp32" else 2e-3
                np.testing.assert_allclose(g, w, rtol=tol, atol=tol * float(np.abs(w).max()))
            elif precision == "fp32":
                np.testing.assert_array_equal(g, w)
            else:  # scales stored as half may move a rounding boundary by one step
                assert np.abs(g.astype(np.int64) - w.astype(np.int64)).max() <= 1


def test_onnx_node_cases_exact_under_auto(device):
    """precision="auto" keeps every quantization scale and input in fp32."""
    import clnet

    for case in (c for c in CASES if _supported(c)):
        names = [i.name for i in case.model.graph.input]
        inputs, outputs = case.data_sets[0]
        session = clnet.InferenceSession(case.model.SerializeToString(), device=device,
                                         precision="auto", calibration=[dict(zip(names, inputs))])
        for g, w in zip(session.run(None, dict(zip(names, inputs))), outputs):
            if np.asarray(w).dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=1e-5, err_msg=case.name)
            else:
                np.testing.assert_array_equal(g, w, err_msg=case.name)


@pytest.mark.parametrize("case", [c for c in CASES if not _supported(c)], ids=lambda c: c.name)
def test_unsupported_types_fail_clearly(device, case):
    import clnet
    from clnet.errors import ClnetError

    names = [i.name for i in case.model.graph.input]
    inputs = case.data_sets[0][0]
    with pytest.raises(ClnetError, match=case.model.graph.node[0].op_type):
        session = clnet.InferenceSession(case.model.SerializeToString(), device=device)
        session.run(None, dict(zip(names, inputs)))


def _run(model, feeds, device, precision="fp32"):
    import clnet
    from onnx.reference import ReferenceEvaluator

    got = clnet.InferenceSession(model.SerializeToString(), device=device,
                                 precision=precision).run(None, feeds)
    return got, ReferenceEvaluator(model).run(None, feeds)


def _model(nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, "q", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_qlinear_conv_groups_per_channel_odd_shapes(device):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1, 6, 13, 11), dtype=np.uint8)
    w = rng.integers(-128, 128, (9, 2, 3, 3), dtype=np.int8)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "sx"),
             numpy_helper.from_array(np.array(128, np.uint8), "zx"),
             numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(rng.uniform(0.001, 0.01, 9).astype(np.float32), "sw"),
             numpy_helper.from_array(np.zeros(9, np.int8), "zw"),
             numpy_helper.from_array(np.array(0.5, np.float32), "sy"),
             numpy_helper.from_array(np.array(120, np.uint8), "zy"),
             numpy_helper.from_array(rng.integers(-500, 500, 9).astype(np.int32), "b")]
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"],
                            ["y"], group=3, pads=[1, 0, 1, 2], strides=[2, 1])
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.UINT8, x.shape)],
                   [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    got, want = _run(model, {"x": x}, device)
    assert np.abs(got[0].astype(int) - want[0].astype(int)).max() <= 1
    assert (got[0] == want[0]).mean() > 0.99


def test_dynamic_quantize_then_matmul_integer(device, precision):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 13, 127)).astype(np.float32)
    b = rng.integers(-127, 128, (127, 5), dtype=np.int8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["a"], ["aq", "sa", "za"]),
             helper.make_node("MatMulInteger", ["aq", "b", "za"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("a", TensorProto.FLOAT, a.shape)],
                   [helper.make_tensor_value_info("y", TensorProto.INT32, None),
                    helper.make_tensor_value_info("sa", TensorProto.FLOAT, None)],
                   [numpy_helper.from_array(b, "b")])
    got, want = _run(model, {"a": a}, device, precision)
    if precision == "fp32":
        np.testing.assert_array_equal(got[0], want[0])
    else:  # half-stored input moves a few quantization steps
        assert np.abs(got[0] - want[0]).max() <= 2 * 127 * 127
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6 if precision == "fp32" else 1e-3)


def test_quantize_dequantize_per_axis(device, precision):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 7, 13)) * 4).astype(np.float32)
    scale = rng.uniform(0.01, 0.1, 7).astype(np.float32)
    zero = rng.integers(-10, 10, 7).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                   [helper.make_tensor_value_info("q", TensorProto.INT8, None),
                    helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                   [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")],
                   opset=19)
    got, want = _run(model, {"x": x}, device, precision)
    diff = np.abs(got[0].astype(int) - want[0].astype(int)).max()
    assert diff == 0 if precision == "fp32" else diff <= 1
    np.testing.assert_allclose(got[1], want[1], atol=0.11 if precision == "fp16" else 1e-6)


# -- weight-only int8 --------------------------------------------------------
def test_weight_only_int8_resnet18_smaller_and_same_top1(device):
    import clnet
    from clnet.zoo import resnet18

    model = resnet18(batch=1, size=64, seed=0).SerializeToString()
    x = np.random.default_rng(7).standard_normal((1, 3, 64, 64)).astype(np.float32)
    fp32 = clnet.InferenceSession(model, device=device)
    int8 = clnet.InferenceSession(model, device=device, weight_int8=True)
    want, got = fp32.run(None, {"input": x})[0], int8.run(None, {"input": x})[0]
    ratio = int8.last_plan.weight_bytes / fp32.last_plan.weight_bytes
    assert ratio <= 0.26, f"int8 weights are {ratio:.3f} x fp32"
    assert got.argmax() == want.argmax()
    assert np.abs(got - want).max() <= 5e-2 * np.abs(want).max()


def test_weight_only_int8_digits_accuracy(device, precision):
    import clnet

    path = str(EXAMPLES / "digits.onnx")
    with np.load(EXAMPLES / "digits_samples.npz") as data:
        feeds = {k: data[k] for k in data.files}
    labels = np.load(EXAMPLES / "digits_labels.npy").reshape(-1)

    def accuracy(**options):
        out = clnet.InferenceSession(path, device=device, **options).run(None, feeds)[0]
        return float((out.reshape(len(labels), -1).argmax(axis=1) == labels).mean())

    base = accuracy()
    quantized = accuracy(weight_int8=True, precision=precision)
    assert quantized >= base - 0.01, f"int8 accuracy {quantized:.3f} vs fp32 {base:.3f}"
