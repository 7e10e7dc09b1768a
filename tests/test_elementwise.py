"""Elementwise math, activations, comparisons, logic, Where and Cast on the
device, in fp32 and fp16 storage, against the reference, on odd shapes and
integer/bool tensors."""
from __future__ import annotations

import numpy as np
import pytest
import onnx
from onnx import helper, numpy_helper

import clnet
from conftest import assert_close, reference, run_both

RNG = np.random.default_rng(4321)


def _model(node, inputs: dict, inits: dict = None, opset: int = 18):
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype),
                                                  a.shape) for n, a in inputs.items()]
    init = [numpy_helper.from_array(np.asarray(a), n) for n, a in (inits or {}).items()]
    graph = helper.make_graph([node], "t", graph_inputs, [], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    # the outputs' types come from ONNX shape inference
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    fallback = graph_inputs[0].type.tensor_type.elem_type
    model.graph.output.extend(inferred.get(n) or helper.make_tensor_value_info(n, fallback, None)
                              for n in node.output)
    return model


def check(device, precision, node, inputs, inits=None, opset=18, rtol=None, policy=None):
    """One node against the reference; policy forces kernel variants."""
    model = _model(node, inputs, inits, opset)
    if policy is None:
        got, want = run_both(model, inputs, device, precision)
    else:
        session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                         precision=precision, policy=policy)
        got, want = session.run(None, inputs), reference(model, inputs)
    for g, w in zip(got, want):
        assert g.dtype == np.asarray(w).dtype, f"dtype {g.dtype} != reference {w.dtype}"
    assert_close(got, want, precision, rtol)


def _rand(*shape, low=-3.0, high=3.0, dtype=np.float32):
    return RNG.uniform(low, high, shape).astype(dtype)


SHAPES = [(1,), (3, 13), (2, 3, 127)]
# op: (low, high) input range inside the op's domain
UNARY = {"Neg": (-3, 3), "Abs": (-3, 3), "Sign": (-3, 3), "Exp": (-3, 3), "Log": (0.1, 5),
         "Sqrt": (0, 5), "Reciprocal": (0.5, 3), "Floor": (-3, 3), "Ceil": (-3, 3),
         "Round": (-3, 3), "Erf": (-2, 2), "Sin": (-3, 3), "Cos": (-3, 3), "Tan": (-1, 1),
         "Asin": (-0.9, 0.9), "Acos": (-0.9, 0.9), "Atan": (-3, 3), "Sinh": (-2, 2),
         "Cosh": (-2, 2), "Asinh": (-3, 3), "Acosh": (1.1, 4), "Atanh": (-0.9, 0.9),
         "Softplus": (-3, 3), "Softsign": (-3, 3), "Mish": (-3, 3), "Elu": (-3, 3),
         "Selu": (-3, 3), "Celu": (-3, 3), "ThresholdedRelu": (-3, 3), "Gelu": (-3, 3),
         "HardSigmoid": (-3, 3), "HardSwish": (-4, 4), "Relu": (-3, 3), "Sigmoid": (-3, 3)}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(device, precision, op):
    low, high = UNARY[op]
    shape = SHAPES[sorted(UNARY).index(op) % len(SHAPES)]
    # fp16-exact inputs: steps (Floor, Sign...) then agree in both storage modes
    x = _rand(*shape, low=low, high=high).astype(np.float16).astype(np.float32)
    if op == "Round":
        x[..., 0] = 2.5   # halves round to even
    check(device, precision, helper.make_node(op, ["x"], ["y"]), {"x": x}, opset=20)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(device, precision, approximate):
    check(device, precision, helper.make_node("Gelu", ["x"], ["y"], approximate=approximate),
          {"x": _rand(3, 13)}, opset=20)


@pytest.mark.parametrize("op,attrs", [("Elu", {"alpha": 0.7}), ("Celu", {"alpha": 1.7}),
                                      ("Selu", {"alpha": 1.5, "gamma": 2.0}),
                                      ("ThresholdedRelu", {"alpha": 0.4}),
                                      ("Shrink", {"lambd": 0.8, "bias": 0.3})])
def test_activation_attrs(device, precision, op, attrs):
    check(device, precision, helper.make_node(op, ["x"], ["y"], **attrs), {"x": _rand(3, 13)})


def test_prelu_broadcast(device, precision):
    check(device, precision, helper.make_node("PRelu", ["x", "s"], ["y"]),
          {"x": _rand(2, 3, 13)}, {"s": _rand(3, 1, low=0, high=1)})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow"])
@pytest.mark.parametrize("shapes", [((3, 13), (13,)), ((2, 1, 127), (3, 1))])
def test_binary_float(device, precision, op, shapes):
    a = _rand(*shapes[0], low=0.5, high=2)
    b = _rand(*shapes[1], low=0.5, high=2)
    check(device, precision, helper.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b})


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.uint64])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Mod"])
def test_binary_int(device, op, dtype):
    a = RNG.integers(0 if np.dtype(dtype).kind == "u" else -50, 50, (3, 13)).astype(dtype)
    b = RNG.integers(1, 9, (13,)).astype(dtype)
    check(device, "fp32", helper.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b})


@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_float(device, precision, fmod):
    a = _rand(3, 13, low=-10, high=10)
    b = _rand(13, low=0.5, high=3) * np.where(np.arange(13) % 2, 1, -1).astype(np.float32)
    a, b = (v.astype(np.float16).astype(np.float32) for v in (a, b))   # fp16-exact
    check(device, precision, helper.make_node("Mod", ["a", "b"], ["y"], fmod=fmod),
          {"a": a, "b": b}, rtol=0.05 if precision == "fp16" else None)


def test_pow_int_exponent(device, precision):
    check(device, precision, helper.make_node("Pow", ["a", "b"], ["y"]),
          {"a": _rand(3, 13), "b": RNG.integers(0, 4, (13,)).astype(np.int64)})


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
@pytest.mark.parametrize("count", [1, 3])
def test_variadic(device, precision, op, count):
    shapes = [(3, 13), (13,), (2, 1, 1)][:count]
    inputs = {f"x{i}": _rand(*s) for i, s in enumerate(shapes)}
    check(device, precision, helper.make_node(op, list(inputs), ["y"]), inputs)


@pytest.mark.parametrize("op", ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_compare(device, precision, op, dtype):
    a = RNG.integers(-3, 3, (3, 13)).astype(dtype)
    b = RNG.integers(-3, 3, (13,)).astype(dtype)
    check(device, precision, helper.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b})


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic(device, op):
    a = RNG.integers(0, 2, (2, 3, 13)).astype(bool)
    b = RNG.integers(0, 2, (3, 1)).astype(bool)
    check(device, "fp32", helper.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b})


def test_not_isnan_isinf(device, precision):
    x = _rand(3, 13)
    x[0, :3] = [np.nan, np.inf, -np.inf]
    check(device, precision, helper.make_node("IsNaN", ["x"], ["y"]), {"x": x})
    check(device, precision, helper.make_node("IsInf", ["x"], ["y"], detect_negative=0),
          {"x": x})
    check(device, precision, helper.make_node("Not", ["x"], ["y"]), {"x": x > 0})


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_where(device, precision, dtype):
    cond = RNG.integers(0, 2, (3, 1, 13)).astype(bool)
    x = RNG.integers(-9, 9, (2, 13)).astype(dtype)
    y = RNG.integers(-9, 9, (13,)).astype(dtype)
    check(device, precision, helper.make_node("Where", ["c", "x", "y"], ["z"]),
          {"c": cond, "x": x, "y": y})


def test_clip_runtime_bounds_int(device):
    x = RNG.integers(-20, 20, (3, 13)).astype(np.int32)
    check(device, "fp32", helper.make_node("Clip", ["x", "lo", "hi"], ["y"]),
          {"x": x, "lo": np.array(-5, np.int32), "hi": np.array(7, np.int32)})


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift(device, direction):
    x = RNG.integers(0, 200, (3, 13)).astype(np.uint32)
    s = RNG.integers(0, 5, (13,)).astype(np.uint32)
    check(device, "fp32", helper.make_node("BitShift", ["x", "s"], ["y"], direction=direction),
          {"x": x, "s": s})


@pytest.mark.parametrize("src,dst", [(np.float32, np.int64), (np.int64, np.float32),
                                     (np.float32, np.bool_), (np.int32, np.uint8),
                                     (np.bool_, np.float32), (np.float32, np.float64),
                                     (np.float64, np.int32)])
def test_cast(device, precision, src, dst):
    x = RNG.integers(-100, 100, (3, 13)).astype(src)   # exact in fp16 storage too
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
    check(device, precision, helper.make_node("Cast", ["x"], ["y"], to=to), {"x": x})
    check(device, precision, helper.make_node("CastLike", ["x", "t"], ["y"]), {"x": x},
          {"t": np.zeros(1, dst)})


@pytest.mark.parametrize("narrow", ["bfloat16", "float8_e4m3fn", "float8_e4m3fnuz",
                                    "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn",
                                    "float8_e8m0fnu", "int4", "uint4"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_narrow_round_trip(device, narrow, saturate):
    """float32 -> narrow type (round to nearest even, saturating or not) -> float32."""
    import ml_dtypes

    x = np.concatenate([RNG.uniform(-20, 20, 120), [0.0, -0.0, 1e6, -1e6, np.inf, np.nan,
                                                    1e-7, 0.3125]]).astype(np.float32)
    to = helper.np_dtype_to_tensor_dtype(np.dtype(getattr(ml_dtypes, narrow)))
    attrs = {"saturate": saturate} if "float8" in narrow else {}
    if narrow in ("int4", "uint4"):
        x = np.round(x[:120]) % 8      # in range: Cast wraps out-of-range integers
    nodes = [helper.make_node("Cast", ["x"], ["n"], to=to, **attrs),
             helper.make_node("Cast", ["n"], ["y"], to=1)]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_tensor_value_info("y", 1, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    import clnet
    from onnx.reference import ReferenceEvaluator
    got = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, {"x": x})
    want = ReferenceEvaluator(model).run(None, {"x": x})
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("src,dst", [(np.float32, np.int32), (np.int32, np.float32),
                                     (np.float16, np.uint16), (np.uint16, np.float16),
                                     (np.int64, np.float64), (np.bool_, np.uint8),
                                     (np.int8, np.uint8)])
def test_bitcast(device, src, dst):
    x = RNG.uniform(-100, 100, (3, 13)).astype(src)
    if np.dtype(dst).kind == "f":   # bits of ordinary floats (no denormals, NaNs)
        x = RNG.uniform(-100, 100, (3, 13)).astype(dst).view(src)
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
    check(device, "fp32", helper.make_node("BitCast", ["x"], ["y"], to=to), {"x": x},
          opset=26, rtol=1e-6)
