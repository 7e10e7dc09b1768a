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


CASES = [c for op in QUANT_OPS for c in node_cases(op)]


def _arrays(values) -> list:
    """Case data as numpy arrays (narrow types come as TensorProtos)."""
    return [numpy_helper.to_array(v) if isinstance(v, TensorProto) else np.asarray(v)
            for v in values]


def _assert_matches(got, want, half: bool = False, name: str = "") -> None:
    """Float outputs to a relative tolerance; quantized outputs (integers,
    2/4-bit integers, float8/float4 bits) exactly, or within one step under
    fp16 storage (scales stored as half may move a rounding boundary)."""
    want = np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, name
    rtol, steps = (2e-3, 1) if half else (1e-5, 0)
    if want.dtype.kind == "f" and want.dtype.itemsize > 1:
        if half:    # fp16 storage: values past 65504 become inf
            with np.errstate(over="ignore"):
                want = want.astype(np.float16).astype(want.dtype)
        peak = float(np.abs(want[np.isfinite(want)]).max(initial=0))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * peak,
                                   err_msg=name)
        return
    if want.dtype.kind not in "iu":   # narrow types: compare their bits
        got, want = got.view(np.uint8), want.view(np.uint8)
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    assert diff.max(initial=0) <= steps, f"{name}: off by {diff.max()} steps"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_onnx_node_case(device, precision, case):
    import clnet

    session = clnet.InferenceSession(case.model.SerializeToString(), device=device,
                                     precision=precision)
    names = [i.name for i in case.model.graph.input]
    for inputs, outputs in case.data_sets:
        got = session.run(None, dict(zip(names, _arrays(inputs))))
        for g, w in zip(got, _arrays(outputs)):
            _assert_matches(g, w, half=precision == "fp16", name=case.name)


def test_onnx_node_cases_exact_under_auto(device):
    """precision="auto" keeps every quantization scale and input in fp32."""
    import clnet

    for case in CASES:
        names = [i.name for i in case.model.graph.input]
        feeds = dict(zip(names, _arrays(case.data_sets[0][0])))
        session = clnet.InferenceSession(case.model.SerializeToString(), device=device,
                                         precision="auto", calibration=[feeds])
        for g, w in zip(session.run(None, feeds), _arrays(case.data_sets[0][1])):
            _assert_matches(g, w, name=case.name)


def test_blocked_scale_shape_mismatch_fails_clearly(device):
    import clnet
    from clnet.errors import ClnetError

    node = helper.make_node("DequantizeLinear", ["x", "s"], ["y"], axis=1, block_size=2)
    s = numpy_helper.from_array(np.ones((3, 2), np.float32), "s")
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.INT8, (3, 5))],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [s], opset=21)
    with pytest.raises(ClnetError, match="blocks of 2 along axis 1"):
        clnet.InferenceSession(model.SerializeToString(), device=device).run(
            None, {"x": np.zeros((3, 5), np.int8)})


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


@pytest.mark.parametrize("qtype", ["INT8", "UINT16", "INT4", "UINT4", "INT2", "UINT2",
                                   "FLOAT8E4M3FN", "FLOAT8E5M2", "FLOAT4E2M1"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_blocked_quantize_dequantize_odd_shapes(device, precision, qtype, axis):
    """Blocks of 4 along each axis of a (3, 13, 5) tensor (partial last
    blocks), every quantized type, against the ONNX reference."""
    import ml_dtypes
    from onnx import helper as h

    rng = np.random.default_rng(7)
    x = (rng.standard_normal((3, 13, 5)) * 2).astype(np.float32)
    blocks = list(x.shape)
    blocks[axis] = -(-blocks[axis] // 4)
    scale = rng.uniform(0.05, 0.2, blocks).astype(np.float32)
    onnx_type = getattr(TensorProto, qtype)
    dtype = np.dtype(h.tensor_dtype_to_np_dtype(onnx_type))
    if dtype.kind in "iu" or dtype.name.startswith(("int", "uint")):
        info = ml_dtypes.iinfo(dtype)
        zero = rng.integers(info.min, info.max + 1, blocks).astype(dtype)
    else:
        zero = np.zeros(blocks, dtype)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=axis,
                              block_size=4),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=axis,
                              block_size=4)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                   [helper.make_tensor_value_info("q", onnx_type, None),
                    helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                   [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")],
                   opset=25)
    got, want = _run(model, {"x": x}, device, precision)
    _assert_matches(got[0], want[0], half=precision == "fp16", name=qtype)
    if precision == "fp32":
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    else:   # one quantization step (float4: up to 2 units of the scale) at most
        np.testing.assert_allclose(got[1], want[1], rtol=2e-3, atol=2.01 * scale.max())


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


@pytest.mark.parametrize("per_column", [False, True])
def test_dynamic_quantize_lstm_against_onnxruntime(device, per_column):
    """com.microsoft DynamicQuantizeLSTM (ddddocr's common_old.onnx): equal to
    ONNX LSTM on the dequantized weights, and close to onnxruntime's own
    kernel, which also rounds the activations to uint8."""
    ort = pytest.importorskip("onnxruntime")
    import clnet
    from conftest import assert_close, reference
    rng = np.random.default_rng(5)
    dirs, seq, batch, n_in, hidden = 2, 5, 3, 7, 6
    shape = (dirs, 4 * hidden) if per_column else (dirs,)
    w_q = rng.integers(0, 256, (dirs, n_in, 4 * hidden)).astype(np.uint8)
    r_q = rng.integers(0, 256, (dirs, hidden, 4 * hidden)).astype(np.uint8)
    quant = {"w_q": w_q, "w_s": rng.uniform(0.002, 0.004, shape).astype(np.float32),
             "w_z": np.full(shape, 131, np.uint8), "r_q": r_q,
             "r_s": rng.uniform(0.002, 0.004, shape).astype(np.float32),
             "r_z": np.full(shape, 124, np.uint8),   # onnxruntime: one per tensor
             "b": rng.uniform(-0.2, 0.2, (dirs, 8 * hidden)).astype(np.float32)}
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in
              (("x", [seq, batch, n_in]), ("h0", [dirs, batch, hidden]),
               ("c0", [dirs, batch, hidden]))]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
               for n in ("y", "h", "c")]
    node = helper.make_node("DynamicQuantizeLSTM", ["x", "w_q", "r_q", "b", "", "h0", "c0", "",
                                                    "w_s", "w_z", "r_s", "r_z"],
                            ["y", "h", "c"], domain="com.microsoft", hidden_size=hidden,
                            direction="bidirectional")
    inits = [numpy_helper.from_array(a, n) for n, a in quant.items()]
    graph = helper.make_graph([node], "dqlstm", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    feeds = {"x": rng.standard_normal((seq, batch, n_in)).astype(np.float32),
             "h0": rng.uniform(-0.5, 0.5, (dirs, batch, hidden)).astype(np.float32),
             "c0": rng.uniform(-0.5, 0.5, (dirs, batch, hidden)).astype(np.float32)}
    got = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, feeds)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    assert_close(got, want, rtol=2e-2)

    def dequantized(q, s, z):
        cut = (slice(None), None) if per_column else (slice(None), None, None)
        return ((q.astype(np.float32) - z[cut]) * s[cut]).transpose(0, 2, 1)

    w = dequantized(quant["w_q"], quant["w_s"], quant["w_z"])
    r = dequantized(quant["r_q"], quant["r_s"], quant["r_z"])
    plain = helper.make_node("LSTM", ["x", "w", "r", "b", "", "h0", "c0"], ["y", "h", "c"],
                             hidden_size=hidden, direction="bidirectional")
    floats = [numpy_helper.from_array(np.ascontiguousarray(a), n)
              for n, a in (("w", w), ("r", r), ("b", quant["b"]))]
    float_model = _model([plain], inputs, outputs, floats)
    assert_close(got, reference(float_model, feeds))
