"""The foundation ops (a CNN classifier's), each checked against the reference
in fp32 and fp16 storage, on odd shapes."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_close, run_both

RNG = np.random.default_rng(1234)


def _model(nodes, inputs: dict, inits: dict = None, outputs=("y",), opset: int = 13):
    graph_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape)
                    for n, a in inputs.items()]
    graph_outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                     for n in outputs]
    for out in graph_outputs:
        out.type.tensor_type.ClearField("shape")
    init = [numpy_helper.from_array(np.asarray(a), n) for n, a in (inits or {}).items()]
    graph = helper.make_graph(nodes, "t", graph_inputs, graph_outputs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def check(device, precision, nodes, inputs, inits=None, opset=13, outputs=("y",)):
    model = _model(nodes, inputs, inits, outputs, opset)
    got, want = run_both(model, inputs, device, precision)
    assert_close(got, want, precision)


UNARY = ["Relu", "Sigmoid", "Tanh", "HardSwish", "Identity"]


@pytest.mark.parametrize("op", UNARY)
@pytest.mark.parametrize("shape", [(1,), (3, 13), (2, 3, 127)])
def test_unary(device, precision, op, shape):
    opset = 14 if op == "HardSwish" else 13
    check(device, precision, [helper.make_node(op, ["x"], ["y"])], {"x": _rand(*shape, scale=3)},
          opset=opset)


@pytest.mark.parametrize("op,attrs", [("LeakyRelu", {"alpha": 0.13}),
                                      ("HardSigmoid", {"alpha": 0.3, "beta": 0.4})])
def test_unary_with_attrs(device, precision, op, attrs):
    check(device, precision, [helper.make_node(op, ["x"], ["y"], **attrs)],
          {"x": _rand(3, 13, scale=3)})


@pytest.mark.parametrize("opset", [6, 13])
def test_clip(device, precision, opset):
    if opset >= 11:
        node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
        inits = {"lo": np.float32(-0.5), "hi": np.float32(1.25)}
    else:
        node = helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=1.25)
        inits = None
    check(device, precision, [node], {"x": _rand(3, 13, 7)}, inits, opset=opset)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("shapes", [((3, 13), (3, 13)), ((2, 3, 13), (13,)),
                                    ((1, 3, 1, 7), (5, 1, 4, 1)), ((127,), (1,))])
def test_binary_broadcast(device, precision, op, shapes):
    a, b = _rand(*shapes[0]), _rand(*shapes[1])
    if op == "Div":
        b = np.where(np.abs(b) < 0.5, 1.5, b).astype(np.float32)
    check(device, precision, [helper.make_node(op, ["a", "b"], ["y"])], {"a": a, "b": b})


def test_binary_with_constant(device, precision):
    check(device, precision, [helper.make_node("Mul", ["a", "c"], ["y"])], {"a": _rand(2, 3, 13)},
          {"c": _rand(3, 1)})


CONV_CASES = [
    # (N, C, H, W), (M, C/g, kh, kw), attrs
    ((1, 3, 13, 13), (8, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 3, 17, 11), (5, 3, 3, 3), {"strides": [2, 2], "pads": [1, 0, 2, 1]}),
    ((1, 4, 13, 13), (6, 4, 1, 1), {}),
    ((1, 6, 13, 13), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),          # depthwise
    ((1, 4, 13, 13), (8, 1, 3, 3), {"group": 4, "strides": [2, 2]}),            # multiplier 2
    ((1, 6, 9, 9), (9, 2, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),           # grouped
    ((1, 3, 15, 15), (4, 3, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 3, 13, 13), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 13, 13), (4, 3, 4, 4), {"auto_pad": "SAME_LOWER"}),
    ((1, 3, 13, 13), (4, 3, 3, 3), {"auto_pad": "VALID"}),
    ((1, 3, 127), (5, 3, 5), {"pads": [2, 2]}),                                  # 1-D
    ((1, 3, 30, 30), (127, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,attrs", CONV_CASES)
def test_conv(device, precision, xs, ws, attrs, bias):
    inits = {"w": _rand(*ws, scale=0.3)}
    inputs = ["x", "w"]
    if bias:
        inits["b"] = _rand(ws[0])
        inputs.append("b")
    kernel = list(ws[2:])
    node = helper.make_node("Conv", inputs, ["y"], kernel_shape=kernel, **attrs)
    check(device, precision, [node], {"x": _rand(*xs)}, inits)


@pytest.mark.parametrize("act", ["Relu", "Clip", "HardSwish", "LeakyRelu", "Sigmoid", "Tanh",
                                 "HardSigmoid", "SiLU"])
@pytest.mark.parametrize("k", [3, 1])
def test_conv_fused_activation_and_residual(device, precision, act, k):
    """Every fused activation, inline or out of line in the epilogue (3x3:
    Winograd or direct; 1x1: the GEMM), on whole vectors and their tails."""
    x = _rand(1, 8, 13, 13)
    inits = {"w": _rand(8, 8, k, k, scale=0.2), "b": _rand(8)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k],
                              pads=[k // 2] * 4),
             helper.make_node("Add", ["c", "x"], ["r"])]
    if act == "Clip":
        inits.update(lo=np.float32(0.0), hi=np.float32(6.0))
        nodes.append(helper.make_node("Clip", ["r", "lo", "hi"], ["y"]))
    elif act == "SiLU":     # x * sigmoid(x), as exporters write it
        nodes += [helper.make_node("Sigmoid", ["r"], ["s"]),
                  helper.make_node("Mul", ["s", "r"], ["y"])]
    else:
        nodes.append(helper.make_node(act, ["r"], ["y"]))
    check(device, precision, nodes, {"x": x}, inits, opset=14)


def test_conv_residual_broadcast_falls_back(device, precision):
    """A fused Add whose other operand broadcasts must still be exact."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["c", "r"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    check(device, precision, nodes, {"x": _rand(1, 4, 7, 7), "r": _rand(1, 6, 1, 7)},
          {"w": _rand(6, 4, 1, 1)})


@pytest.mark.parametrize("m,k,n", [(1, 3, 1), (3, 13, 127), (13, 127, 3), (127, 67, 129)])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_gemm(device, precision, m, k, n, trans_a, trans_b):
    a = _rand(k, m) if trans_a else _rand(m, k)
    b = _rand(n, k) if trans_b else _rand(k, n)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=trans_a, transB=trans_b,
                            alpha=0.7, beta=1.3)
    check(device, precision, [node], {"a": a}, {"b": b, "c": _rand(n)})


@pytest.mark.parametrize("c_shape", [(1,), (13, 1), (13, 5)])
def test_gemm_bias_shapes(device, precision, c_shape):
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"])
    check(device, precision, [node], {"a": _rand(13, 7)}, {"b": _rand(7, 5), "c": _rand(*c_shape)})


def test_gemm_runtime_operands(device, precision):
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1)
    check(device, precision, [node], {"a": _rand(13, 7), "b": _rand(5, 7), "c": _rand(13, 5)})


@pytest.mark.parametrize("a_shape,b_shape", [
    ((13,), (13, 7)), ((3, 13), (13,)), ((3, 13), (13, 7)), ((2, 3, 13), (13, 127)),
    ((2, 3, 13), (2, 13, 5)), ((2, 1, 3, 13), (1, 4, 13, 5)), ((4, 3, 13), (13, 5)),
])
@pytest.mark.parametrize("const_b", [True, False])
def test_matmul(device, precision, a_shape, b_shape, const_b):
    a, b = _rand(*a_shape), _rand(*b_shape)
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    if const_b:
        check(device, precision, [node], {"a": a}, {"b": b})
    else:
        check(device, precision, [node], {"a": a, "b": b})


def test_batchnorm(device, precision):
    c = 5
    inits = {"s": RNG.uniform(0.5, 1.5, c).astype(np.float32), "bb": _rand(c),
             "m": _rand(c), "v": RNG.uniform(0.5, 1.5, c).astype(np.float32)}
    node = helper.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["y"], epsilon=1e-3)
    check(device, precision, [node], {"x": _rand(2, c, 7, 3)}, inits)


def test_conv_batchnorm_folded(device, precision):
    c = 6
    inits = {"w": _rand(c, 3, 3, 3, scale=0.3), "s": RNG.uniform(0.5, 1.5, c).astype(np.float32),
             "bb": _rand(c), "m": _rand(c), "v": RNG.uniform(0.5, 1.5, c).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"])]
    check(device, precision, nodes, {"x": _rand(1, 3, 13, 13)}, inits)


POOL_CASES = [
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, (1, 3, 13, 13)),
    ({"kernel_shape": [2, 2], "strides": [2, 2]}, (2, 3, 13, 7)),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, (1, 2, 13, 13)),
    ({"kernel_shape": [3, 2], "auto_pad": "SAME_UPPER"}, (1, 2, 7, 9)),
    ({"kernel_shape": [5]}, (1, 3, 127)),
    # rows wide enough for pool2d_rows' eight-at-a-time path, with borders
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, (1, 2, 21, 45)),
    ({"kernel_shape": [3, 2], "pads": [2, 1, 0, 1]}, (2, 2, 7, 38)),
    ({"kernel_shape": [2, 3], "strides": [1, 2], "ceil_mode": 1}, (1, 3, 6, 44)),
    ({"kernel_shape": [1, 4], "strides": [3, 3]}, (1, 2, 8, 53)),
    # a window wider than the row without its end padding (no interior outputs)
    ({"kernel_shape": [2, 5], "strides": [1, 2], "pads": [0, 0, 0, 1]}, (1, 3, 4, 4)),
]


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs,shape", POOL_CASES)
def test_pool(device, precision, op, attrs, shape):
    check(device, precision, [helper.make_node(op, ["x"], ["y"], **attrs)], {"x": _rand(*shape)})


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("case", [0, 1, 5, 6, 7, 8, 9])
def test_pool2d_rows_on_any_device(device, precision, op, case):
    """pool.cl pool2d_rows (CPU devices' 2-D pooling) forced on any device,
    so that Oclgrind checks it too."""
    import clnet
    from conftest import reference

    attrs, shape = POOL_CASES[case]
    inputs = {"x": _rand(*shape)}
    model = _model([helper.make_node(op, ["x"], ["y"], **attrs)], inputs, None, ("y",), 13)
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision, policy={"pool_rows": True})
    assert_close(session.run(None, inputs), reference(model, inputs), precision)


@pytest.mark.parametrize("width,strides", [(13, [1, 1]), (41, [1, 1]), (41, [2, 2])])
def test_average_pool_count_include_pad(device, precision, width, strides):
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 2],
                            strides=strides, count_include_pad=1)
    check(device, precision, [node], {"x": _rand(1, 3, 13, width)})


@pytest.mark.parametrize("strides", [[1, 1], [2, 2]])
def test_max_pool_dilations(device, precision, strides):
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2],
                            strides=strides, pads=[1, 1, 0, 1])
    check(device, precision, [node], {"x": _rand(1, 3, 13, 47)}, opset=13)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(device, precision, op):
    check(device, precision, [helper.make_node(op, ["x"], ["y"])], {"x": _rand(2, 3, 13, 7)})


@pytest.mark.parametrize("axis,opset", [(-1, 13), (1, 13), (0, 13), (1, 11), (2, 11)])
def test_softmax(device, precision, axis, opset):
    check(device, precision, [helper.make_node("Softmax", ["x"], ["y"], axis=axis)],
          {"x": _rand(3, 13, 7, scale=4)}, opset=opset)


def test_shape_ops(device, precision):
    """Flatten, Reshape (with 0 and -1), Transpose, Slice, Concat, Identity."""
    x = _rand(2, 3, 5, 7)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t", "shape"], ["r"]),
        helper.make_node("Slice", ["r", "starts", "ends", "axes", "steps"], ["s"]),
        helper.make_node("Flatten", ["x"], ["f"], axis=2),
        helper.make_node("Slice", ["f", "starts2", "ends2"], ["f2"]),
        helper.make_node("Reshape", ["f2", "shape2"], ["f3"]),
        helper.make_node("Concat", ["s", "f3"], ["c"], axis=1),
        helper.make_node("Identity", ["c"], ["y"]),
    ]
    inits = {"shape": np.array([0, -1, 3], np.int64),
             "starts": np.array([1, 0], np.int64), "ends": np.array([-1, 100], np.int64),
             "axes": np.array([1, 2], np.int64), "steps": np.array([3, 2], np.int64),
             "starts2": np.array([0, 1], np.int64), "ends2": np.array([2, 33], np.int64),
             "shape2": np.array([2, 16, 2], np.int64)}
    model = _model(nodes, {"x": x}, inits, ("y", "r"))
    got, want = run_both(model, {"x": x}, device, precision)
    assert_close(got, want, precision)


def test_negative_step_slice_and_constant(device, precision):
    nodes = [helper.make_node("Constant", [], ["k"],
                              value=numpy_helper.from_array(_rand(1, 13), "k")),
             helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["s"]),
             helper.make_node("Add", ["s", "k"], ["y"])]
    inits = {"st": np.array([-1], np.int64), "en": np.array([-1000], np.int64),
             "ax": np.array([1], np.int64), "sp": np.array([-2], np.int64)}
    check(device, precision, nodes, {"x": _rand(3, 25)}, inits)


def test_shape_arithmetic_is_folded(device):
    """Shape -> Gather -> Concat -> Reshape runs no kernel for the shape part."""
    import clnet

    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
             helper.make_node("Unsqueeze", ["d0", "ax"], ["d0u"]),
             helper.make_node("Concat", ["d0u", "m1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    inits = {"i0": np.array(0, np.int64), "ax": np.array([0], np.int64),
             "m1": np.array([-1], np.int64)}
    x = _rand(3, 5, 7)
    model = _model(nodes, {"x": x}, inits)
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(y, x.reshape(3, -1))
    assert len(session.last_plan.calls) == 0   # a pure view: nothing launched


@pytest.mark.parametrize("group,ws", [(1, (5, 3, 3, 3)), (3, (3, 1, 3, 3)), (3, (6, 1, 1, 1))])
def test_conv_runtime_weights_and_bias(device, precision, group, ws):
    """Weights fed as graph inputs are read in place (no load-time packing)."""
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=list(ws[2:]),
                            group=group, pads=[1, 1, 1, 1] if ws[2] == 3 else [0, 0, 0, 0])
    check(device, precision, [node], {"x": _rand(2, 3, 9, 7), "w": _rand(*ws, scale=0.3),
                                      "b": _rand(ws[0])})


def test_gemm_runtime_bias_with_beta_and_activation(device, precision):
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["g"], beta=0.35, alpha=0.5),
             helper.make_node("Relu", ["g"], ["y"])]
    check(device, precision, nodes, {"a": _rand(13, 7), "c": _rand(13, 1)}, {"b": _rand(7, 5)})
