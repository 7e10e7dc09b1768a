"""Fused elementwise chains (passes/chains.py, ops/fused.py, kernels_cl/fused.cl)
against the same graph run node by node and against the reference, on odd
shapes (vector blocks with tails, broadcasts along inner, middle and outer
axes), in fp32 and fp16 storage, at every vector width."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import clnet
from clnet.frontend import load_model
from clnet.passes import optimize
from conftest import assert_close, reference

RNG = np.random.default_rng(77)
F = TensorProto.FLOAT


def _model(nodes, inputs: dict, outputs, inits=None, opset=18):
    ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for n, a in inputs.items()]
    init = [numpy_helper.from_array(np.asarray(a), n) for n, a in (inits or {}).items()]
    outs = [helper.make_tensor_value_info(n, t, None) for n, t in outputs]
    graph = helper.make_graph(nodes, "chain", ins, outs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _run(model, feeds, device, precision, **policy):
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision, policy=policy or None)
    return session.run(None, feeds), len(session.last_plan.calls)


def _check(model, feeds, device, precision, rtol=None, widths=(None,)):
    """Fused (at each width) == node by node == reference; the launch counts."""
    want = reference(model, feeds)
    unfused, plain = _run(model, feeds, device, precision, fuse_elementwise=False)
    assert_close(unfused, want, precision, rtol)
    counts = []
    for width in widths:
        policy = {} if width is None else {"elementwise_width": width}
        got, launches = _run(model, feeds, device, precision, **policy)
        assert_close(got, want, precision, rtol)
        for g, u in zip(got, unfused):
            assert g.dtype == u.dtype
        counts.append(launches)
    return counts, plain


def _x(*shape, low=-3.0, high=3.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


SHAPES = [(5,), (3, 13), (2, 3, 7, 9), (1, 4, 33)]


@pytest.mark.parametrize("shape", SHAPES)
def test_silu_is_one_launch(device, precision, shape):
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])]
    counts, plain = _check(_model(nodes, {"x": _x(*shape)}, [("y", F)]), {"x": _x(*shape)},
                           device, precision, widths=(1, 4, 16))
    assert counts == [1, 1, 1] and plain == 2


def test_gelu_tanh_written_out(device, precision):
    """GPT-2's GELU as exporters write it: eight nodes, one launch."""
    c = {"half": np.float32(0.5), "one": np.float32(1.0), "k": np.float32(0.7978845608),
         "cub": np.float32(0.044715), "three": np.float32(3.0)}
    nodes = [helper.make_node("Pow", ["x", "three"], ["x3"]),
             helper.make_node("Mul", ["x3", "cub"], ["a"]),
             helper.make_node("Add", ["x", "a"], ["b"]),
             helper.make_node("Mul", ["b", "k"], ["d"]),
             helper.make_node("Tanh", ["d"], ["t"]),
             helper.make_node("Add", ["t", "one"], ["u"]),
             helper.make_node("Mul", ["x", "half"], ["h"]),
             helper.make_node("Mul", ["h", "u"], ["y"])]
    x = _x(3, 2, 37)
    counts, plain = _check(_model(nodes, {"x": x}, [("y", F)], c), {"x": x}, device, precision,
                           widths=(1, 8, 16))
    assert counts == [1, 1, 1] and plain == 8


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, -0.5, -1.0, 1.7, 0.0])
def test_pow_constant_exponent(device, precision, exponent):
    low = 0.2 if exponent != int(exponent) or exponent < 0 else -3.0
    x = _x(4, 21, low=low)
    model = _model([helper.make_node("Pow", ["x", "e"], ["y"])], {"x": x}, [("y", F)],
                   {"e": np.float32(exponent)})
    _check(model, {"x": x}, device, precision, widths=(1, 16))


def test_pow_tensor_exponent_signs(device):
    """POW's special cases: negative bases with integer and fractional
    exponents, zero bases, zero exponents."""
    x = np.array([-2.0, -2.0, -0.5, 0.0, 0.0, 0.0, 3.0, 2.0, -1.0, 4.0, 1.5, -3.0, 0.25] * 3,
                 np.float32).reshape(3, 13)
    e = np.array([3.0, 2.0, 0.5, 2.0, 0.0, -1.0, 0.0, -2.0, 5.0, 0.5, 2.5, 1.0, -0.5] * 3,
                 np.float32).reshape(3, 13)
    model = _model([helper.make_node("Pow", ["x", "e"], ["y"])], {"x": x, "e": e}, [("y", F)])
    got, _ = _run(model, {"x": x, "e": e}, device, "fp32")
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.power(x.astype(np.float64), e)
    np.testing.assert_allclose(got[0], want, rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("hw", [(7, 7), (14, 14), (5, 3)])
def test_squeeze_excitation_gate_computed_once(device, precision, hw):
    """x * sigmoid(s) with s one value per channel: the gate gets its own
    small launch, the product a vector one."""
    x, s = _x(1, 12, *hw), _x(1, 12, 1, 1)
    nodes = [helper.make_node("Sigmoid", ["s"], ["g"]), helper.make_node("Mul", ["x", "g"], ["y"])]
    counts, plain = _check(_model(nodes, {"x": x, "s": s}, [("y", F)]), {"x": x, "s": s},
                           device, precision, widths=(1, 16))
    assert counts == [2, 2] and plain == 2


def test_where_and_comparisons_inside_a_chain(device, precision):
    x, m = _x(2, 5, 19), _x(5, 1)
    nodes = [helper.make_node("Less", ["x", "m"], ["c"]),
             helper.make_node("Exp", ["x"], ["e"]),
             helper.make_node("Mul", ["x", "two"], ["d"]),
             helper.make_node("Where", ["c", "d", "e"], ["w"]),
             helper.make_node("Clip", ["w", "lo", "hi"], ["y"])]
    inits = {"two": np.float32(2.0), "lo": np.float32(-4.0), "hi": np.float32(9.0)}
    counts, plain = _check(_model(nodes, {"x": x, "m": m}, [("y", F)], inits), {"x": x, "m": m},
                           device, precision, widths=(1, 4, 16))
    assert counts == [1, 1, 1] and plain == 5


def test_bool_and_int_inputs(device, precision):
    """A bool mask and int64 positions read as their own C types."""
    x = _x(2, 3, 11)
    mask = RNG.random((3, 11)) > 0.5
    pos = RNG.integers(0, 50, (11,)).astype(np.int64)
    nodes = [helper.make_node("Cast", ["pos"], ["pf"], to=F),
             helper.make_node("Mul", ["x", "pf"], ["a"]),
             helper.make_node("Where", ["mask", "a", "neg"], ["y"])]
    model = _model(nodes, {"x": x, "mask": mask, "pos": pos}, [("y", F)],
                   {"neg": np.float32(-1e4)})
    counts, _ = _check(model, {"x": x, "mask": mask, "pos": pos}, device, precision,
                       widths=(1, 16))
    assert counts == [1, 1]


def test_many_inputs_split_into_several_kernels(device, precision):
    names = [f"x{i}" for i in range(11)]
    feeds = {n: _x(3, 9) for n in names}
    nodes, acc = [], names[0]
    for i, n in enumerate(names[1:]):
        nodes.append(helper.make_node("Add" if i % 2 else "Mul", [acc, n], [f"s{i}"]))
        acc = f"s{i}"
    nodes[-1].output[0] = "y"
    counts, plain = _check(_model(nodes, feeds, [("y", F)]), feeds, device, precision)
    assert 1 < counts[0] < plain


def test_shared_and_visible_inner_values(device, precision):
    """A value used twice, and one that is also a graph output, are kept."""
    x = _x(4, 10)
    nodes = [helper.make_node("Exp", ["x"], ["e"]),
             helper.make_node("Add", ["e", "x"], ["a"]),
             helper.make_node("Mul", ["e", "a"], ["m"]),
             helper.make_node("Tanh", ["m"], ["y"])]
    model = _model(nodes, {"x": x}, [("y", F), ("m", F)])
    _check(model, {"x": x}, device, precision, widths=(1, 16))


def test_integer_chains_run_unfused(device):
    a = RNG.integers(-20, 20, (3, 7)).astype(np.int64)
    b = RNG.integers(1, 5, (7,)).astype(np.int64)
    nodes = [helper.make_node("Mul", ["a", "b"], ["m"]), helper.make_node("Div", ["m", "b"], ["d"]),
             helper.make_node("Add", ["d", "a"], ["y"])]
    model = _model(nodes, {"a": a, "b": b}, [("y", TensorProto.INT64)])
    got, _ = _run(model, {"a": a, "b": b}, device, "fp32")
    np.testing.assert_array_equal(got[0], reference(model, {"a": a, "b": b})[0])


def test_chains_are_one_node_after_the_passes():
    x = _x(2, 8)
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["m"]),
             helper.make_node("Softmax", ["m"], ["p"]), helper.make_node("Exp", ["p"], ["y"])]
    graph = optimize(load_model(_model(nodes, {"x": x}, [("y", F)]).SerializeToString()))
    assert [n.op for n in graph.nodes] == ["FusedElementwise", "FusedElementwise"]
    assert [m.op for m in graph.nodes[0].body] == ["Sigmoid", "Mul", "Softmax"]
    copy = graph.copy()
    assert copy.nodes[0].body[-1].outputs[0] is copy.nodes[0].outputs[0]


def test_fused_small_case(device):
    """Small enough for Oclgrind: a tail, a splat, a bool, a transcendental."""
    x, s = _x(2, 3, 21), _x(3, 1)
    nodes = [helper.make_node("Greater", ["x", "s"], ["c"]),
             helper.make_node("Tanh", ["x"], ["t"]),
             helper.make_node("Erf", ["s"], ["e"]),
             helper.make_node("Where", ["c", "t", "e"], ["w"]),
             helper.make_node("Mul", ["w", "x"], ["y"])]
    soft = nodes[:-1] + [helper.make_node("Mul", ["w", "x"], ["z"]),
                         helper.make_node("Softmax", ["z"], ["y"], axis=-1)]
    for precision in ("fp32", "fp16"):
        for graph in (nodes, soft):
            _check(_model(graph, {"x": x, "s": s}, [("y", F)]), {"x": x, "s": s}, device,
                   precision, widths=(1, 8))


def test_policy_width_is_checked(device):
    x = _x(3)
    model = _model([helper.make_node("Exp", ["x"], ["y"])], {"x": x}, [("y", F)])
    with pytest.raises(clnet.ClnetError, match="elementwise_width"):
        _run(model, {"x": x}, device, "fp32", elementwise_width=3)




def _norm_nodes(kind: str):
    """Exporters' written-out norms over the last axis."""
    nodes = []
    x = "x"
    if kind == "layer":
        nodes += [helper.make_node("ReduceMean", ["x", "ax"], ["m"]),
                  helper.make_node("Sub", ["x", "m"], ["d"])]
        x = "d"
    nodes += [helper.make_node("Pow", [x, "two"], ["sq"]),
              helper.make_node("ReduceMean", ["sq", "ax"], ["v"]),
              helper.make_node("Add", ["v", "eps"], ["ve"]),
              helper.make_node("Sqrt", ["ve"], ["s"])]
    if kind == "recip":
        nodes += [helper.make_node("Reciprocal", ["s"], ["r"]),
                  helper.make_node("Mul", [x, "r"], ["n"])]
    elif kind == "one_over":
        nodes += [helper.make_node("Div", ["one", "s"], ["r"]),
                  helper.make_node("Mul", ["r", x], ["n"])]
    else:
        nodes += [helper.make_node("Div", [x, "s"], ["n"])]
    nodes += [helper.make_node("Mul", ["w", "n"], ["g"])]
    if kind == "layer":
        nodes += [helper.make_node("Add", ["g", "b"], ["y"])]
    else:
        nodes[-1].output[0] = "y"
    return nodes


@pytest.mark.parametrize("kind", ["div", "recip", "one_over", "layer"])
def test_written_out_norms_become_one_node(device, precision, kind):
    x = _x(2, 5, 48)
    inits = {"ax": np.array([-1], np.int64), "two": np.float32(2.0), "eps": np.float32(1e-6),
             "one": np.float32(1.0), "w": _x(48), "b": _x(48)}
    model = _model(_norm_nodes(kind), {"x": x}, [("y", F)], inits)
    graph = optimize(load_model(model.SerializeToString()))
    want_op = "LayerNormalization" if kind == "layer" else "RMSNormalization"
    assert [n.op for n in graph.nodes] == [want_op]
    got, launches = _run(model, {"x": x}, device, precision)
    assert_close(got, reference(model, {"x": x}), precision)
    assert launches == 1


@pytest.mark.parametrize("kind", ["depthwise", "conv", "matmul"])
def test_silu_in_the_epilogue(device, precision, kind):
    """x * sigmoid(x) after a conv or a MatMul runs in its epilogue."""
    if kind == "matmul":
        x, w = _x(3, 10, 24), _x(24, 20, low=-0.3, high=0.3)
        first = helper.make_node("MatMul", ["x", "w"], ["c"])
    else:
        x = _x(1, 6, 9, 11)
        group = 6 if kind == "depthwise" else 1
        w = _x(6, 6 // group, 3, 3, low=-0.3, high=0.3)
        first = helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3],
                                 pads=[1, 1, 1, 1], group=group)
    nodes = [first, helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Mul", ["c", "s"], ["y"])]
    model = _model(nodes, {"x": x}, [("y", F)], {"w": w})
    graph = optimize(load_model(model.SerializeToString()))
    assert [n.op for n in graph.nodes] == [first.op_type]
    got, _ = _run(model, {"x": x}, device, precision)
    assert_close(got, reference(model, {"x": x}), precision)


@pytest.mark.parametrize("act", [None, "Sigmoid", "SiLU"])
def test_squeeze_excitation_convs_are_gemms(device, precision, act):
    """1x1 convs on a pooled 1x1 map run as one GEMM each (no im2col)."""
    x = _x(2, 24, 5, 7)
    w, b = _x(10, 24, 1, 1, low=-0.3, high=0.3), _x(10)
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Conv", ["p", "w", "b"], ["c"], kernel_shape=[1, 1])]
    if act == "SiLU":
        nodes += [helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])]
    elif act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    else:
        nodes[-1].output[0] = "y"
    model = _model(nodes, {"x": x}, [("y", F)], {"w": w, "b": b})
    got, launches = _run(model, {"x": x}, device, precision)
    assert_close(got, reference(model, {"x": x}), precision)
    assert launches == 2


@pytest.mark.parametrize("shapes", [((3, 10, 24), (24, 20)), ((2, 3, 9, 16), (2, 3, 16, 11)),
                                    ((5, 16), (16, 7))])
def test_matmul_without_bias_takes_the_residual(device, precision, shapes):
    """x @ w + r (T5's and Llama's bias-free projections, attention scores
    plus a position bias) is one GEMM with the residual in its epilogue."""
    a, b = _x(*shapes[0]), _x(*shapes[1], low=-0.5, high=0.5)
    out_shape = np.matmul(a, b).shape
    r = _x(*out_shape)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"]),
             helper.make_node("Add", ["r", "m"], ["y"])]
    model = _model(nodes, {"a": a, "b": b, "r": r}, [("y", F)])
    graph = optimize(load_model(model.SerializeToString()))
    assert [n.op for n in graph.nodes] == ["MatMul"]
    got, _ = _run(model, {"a": a, "b": b, "r": r}, device, precision)
    assert_close(got, reference(model, {"a": a, "b": b, "r": r}), precision)


@pytest.mark.parametrize("heads,dim,seq", [(3, 8, 5), (6, 16, 1), (2, 4, 7)])
def test_split_heads_is_one_copy_per_head_tensor(device, precision, heads, dim, seq):
    """GPT-2's fused QKV: Split, Reshape to heads, Transpose (K also to K^T)
    become one strided copy each; the Split itself never runs."""
    hidden = heads * dim
    x = _x(2, seq, 3 * hidden)
    shape = np.array([2, seq, heads, dim], np.int64)
    nodes = [helper.make_node("Split", ["x", "sizes"], ["q", "k", "v"], axis=2),
             helper.make_node("Reshape", ["q", "shape"], ["qr"]),
             helper.make_node("Transpose", ["qr"], ["qh"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["k", "shape"], ["kr"]),
             helper.make_node("Transpose", ["kr"], ["kh"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["kr"], ["kt"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["v", "shape0"], ["vr"]),
             helper.make_node("Transpose", ["vr"], ["vh"], perm=[0, 2, 1, 3])]
    inits = {"sizes": np.array([hidden] * 3, np.int64), "shape": shape,
             "shape0": np.array([0, 0, heads, -1], np.int64)}
    model = _model(nodes, {"x": x}, [("qh", F), ("kh", F), ("kt", F), ("vh", F)], inits)
    graph = optimize(load_model(model.SerializeToString()))
    assert [n.op for n in graph.nodes] == ["MovementChain"] * 4
    got, launches = _run(model, {"x": x}, device, precision)
    assert_close(got, reference(model, {"x": x}), precision)
    assert launches == 4


def test_split_chain_keeps_split_when_read_elsewhere(device):
    x = _x(3, 12)
    nodes = [helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2),
             helper.make_node("Reshape", ["a", "shape"], ["ar"]),
             helper.make_node("Transpose", ["ar"], ["at"], perm=[0, 2, 1]),
             helper.make_node("Relu", ["b"], ["y"])]
    model = _model(nodes, {"x": x}, [("at", F), ("y", F)],
                   {"shape": np.array([3, 2, 3], np.int64)})
    got, _ = _run(model, {"x": x}, device, "fp32")
    assert_close(got, reference(model, {"x": x}), "fp32")


def test_view_strides():
    from clnet.ops.views import view_strides
    assert view_strides((4, 6), (12, 1), (4, 2, 3)) == (12, 3, 1)
    assert view_strides((2, 3, 4), (24, 4, 1), (2, 12)) == (24, 1)
    assert view_strides((2, 3, 4), (12, 1, 3), (2, 12)) is None      # not contiguous
    assert view_strides((1, 5, 6), (30, 6, 1), (5, 1, 2, 3)) == (6, 0, 3, 1)


@pytest.mark.parametrize("logic", ["And", "Or", "Xor"])
def test_mask_logic_in_a_chain(device, precision, logic):
    """GPT-2's mask: int64 padding mask cast to bool, combined with a causal
    bool constant, turned into an additive float mask: one launch."""
    mask = (RNG.random((2, 1, 1, 9)) > 0.3).astype(np.int64)
    causal = np.tril(np.ones((9, 9), bool)).reshape(1, 1, 9, 9)
    nodes = [helper.make_node("Cast", ["mask"], ["mb"], to=TensorProto.BOOL),
             helper.make_node(logic, ["causal", "mb"], ["both"]),
             helper.make_node("Not", ["both"], ["off"]),
             helper.make_node("Where", ["off", "neg", "zero"], ["y"])]
    inits = {"causal": causal, "neg": np.float32(-1e4), "zero": np.float32(0.0)}
    model = _model(nodes, {"mask": mask}, [("y", F)], inits)
    counts, plain = _check(model, {"mask": mask}, device, precision, widths=(1, 4))
    assert counts == [1, 1] and plain == 4


@pytest.mark.parametrize("shapes", [((2, 3, 5, 9), (2, 1, 1, 9)), ((4, 37), (37,)),
                                    ((1, 6, 16, 16), (1, 1, 16, 16)), ((3, 1, 17), (3, 2, 1))])
def test_mask_add_and_softmax_are_one_launch(device, precision, shapes):
    """scores + mask (and a scale) then Softmax: the chain and the softmax
    run in one kernel, at every vector width, tails and broadcasts."""
    s, m = _x(*shapes[0]), _x(*shapes[1])
    nodes = [helper.make_node("Mul", ["s", "k"], ["a"]),
             helper.make_node("Add", ["a", "m"], ["b"]),
             helper.make_node("Softmax", ["b"], ["y"], axis=-1)]
    model = _model(nodes, {"s": s, "m": m}, [("y", F)], {"k": np.float32(0.7)})
    counts, plain = _check(model, {"s": s, "m": m}, device, precision, widths=(1, 4, 16))
    assert counts == [1, 1, 1] and plain == 3


def test_softmax_on_another_axis_stays_apart(device):
    s = _x(2, 5, 3)
    nodes = [helper.make_node("Exp", ["s"], ["a"]),
             helper.make_node("Softmax", ["a"], ["y"], axis=1)]
    model = _model(nodes, {"s": s}, [("y", F)])
    got, launches = _run(model, {"s": s}, device, "fp32")
    assert_close(got, reference(model, {"s": s}), "fp32")
    assert launches == 2


@pytest.mark.parametrize("batch,heads,seq,dim", [(1, 3, 7, 16), (2, 2, 5, 24), (1, 4, 1, 8),
                                                 (1, 2, 33, 20)])
def test_attention_head_transposes_run_in_the_gemms(device, precision, batch, heads, seq, dim):
    """Q, K, V split into heads by Reshape + Transpose, the result merged
    back: the GEMMs read and write those layouts in place (batch 1), or the
    copies run as before (batch 2)."""
    hidden = heads * dim
    q, k, v = _x(batch, seq, hidden), _x(batch, seq, hidden), _x(batch, seq, hidden)
    shape = np.array([batch, seq, heads, dim], np.int64)
    nodes = [helper.make_node("Reshape", ["q", "shape"], ["qr"]),
             helper.make_node("Transpose", ["qr"], ["qh"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["k", "shape"], ["kr"]),
             helper.make_node("Transpose", ["kr"], ["kt"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["v", "shape"], ["vr"]),
             helper.make_node("Transpose", ["vr"], ["vh"], perm=[0, 2, 1, 3]),
             helper.make_node("MatMul", ["qh", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["ss"]),
             helper.make_node("Softmax", ["ss"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "vh"], ["o"]),
             helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["ot", "shape3"], ["y"])]
    inits = {"shape": shape, "scale": np.float32(dim ** -0.5),
             "shape3": np.array([batch, seq, hidden], np.int64)}
    feeds = {"q": q, "k": k, "v": v}
    model = _model(nodes, feeds, [("y", F)], inits)
    ops = [n.op for n in optimize(load_model(model.SerializeToString())).nodes]
    assert ops.count("MatMulView") == 2 and "Transpose" not in ops
    got, launches = _run(model, feeds, device, precision)
    assert_close(got, reference(model, feeds), precision)
    if batch == 1:
        assert launches <= 5


@pytest.mark.parametrize("pads,opset", [([0, 0, 4, 0, 0, 0], 18), ([0, 0, 1, 2, 0, 0, 3, 0], 18),
                                        ([0, 0, 2, 0, 0, 1], 10)])
def test_zero_pad_becomes_the_convs_padding(device, precision, pads, opset):
    rank = len(pads) // 2
    x = _x(1, 3, *([11] * (rank - 2)))
    w = _x(4, 3, *([3] * (rank - 2)), low=-0.5, high=0.5)
    if opset < 11:
        pad = helper.make_node("Pad", ["x"], ["p"], pads=pads)
        inits = {"w": w}
    else:
        pad = helper.make_node("Pad", ["x", "pads"], ["p"])
        inits = {"w": w, "pads": np.array(pads, np.int64)}
    conv = helper.make_node("Conv", ["p", "w"], ["y"], pads=[1] * (2 * (rank - 2)),
                            dilations=[2] * (rank - 2))
    model = _model([pad, conv], {"x": x}, [("y", F)], inits, opset=opset)
    graph = optimize(load_model(model.SerializeToString()))
    assert [n.op for n in graph.nodes] == ["Conv"]
    got, launches = _run(model, {"x": x}, device, precision)
    assert_close(got, reference(model, {"x": x}), precision)


def test_batchnorm_then_relu_is_one_launch(device, precision):
    """DenseNet's BN -> ReLU (no conv before it to fold into)."""
    x = _x(2, 5, 7, 3)
    inits = {"g": _x(5), "b": _x(5), "m": _x(5), "v": _x(5, low=0.5, high=2.0)}
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["n"],
                              epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["y"])]
    counts, plain = _check(_model(nodes, {"x": x}, [("y", F)], inits), {"x": x}, device,
                           precision, widths=(1, 16))
    assert counts == [1, 1] and plain == 3


@pytest.mark.parametrize("form", ["gelu_tanh", "gelu_tanh_cubed", "hardswish", "silu_div"])
def test_written_out_activation_joins_the_gemm(device, precision, form):
    """A one-input chain after a MatMul that computes a known activation
    (checked on sample points) runs in the GEMM's epilogue."""
    x, w = _x(3, 9, 20), _x(20, 24, low=-0.4, high=0.4)
    c = {"half": np.float32(0.5), "one": np.float32(1.0), "k": np.float32(0.7978845608028654),
         "cub": np.float32(0.044715), "three": np.float32(3.0), "six": np.float32(6.0),
         "zero": np.float32(0.0)}
    mm = helper.make_node("MatMul", ["x", "w"], ["m"])
    if form.startswith("gelu"):
        cube = [helper.make_node("Pow", ["m", "three"], ["m3"])] if form == "gelu_tanh" else \
            [helper.make_node("Mul", ["m", "m"], ["m2"]), helper.make_node("Mul", ["m2", "m"], ["m3"])]
        nodes = [mm] + cube + [
            helper.make_node("Mul", ["cub", "m3"], ["a"]), helper.make_node("Add", ["m", "a"], ["b"]),
            helper.make_node("Mul", ["k", "b"], ["d"]), helper.make_node("Tanh", ["d"], ["t"]),
            helper.make_node("Add", ["one", "t"], ["u"]), helper.make_node("Mul", ["m", "half"], ["h"]),
            helper.make_node("Mul", ["h", "u"], ["y"])]
    elif form == "hardswish":        # x * relu6(x + 3) / 6
        nodes = [mm, helper.make_node("Add", ["m", "three"], ["a"]),
                 helper.make_node("Clip", ["a", "zero", "six"], ["r"]),
                 helper.make_node("Mul", ["m", "r"], ["p"]), helper.make_node("Div", ["p", "six"], ["y"])]
    else:                            # x / (1 + exp(-x))
        nodes = [mm, helper.make_node("Neg", ["m"], ["n"]), helper.make_node("Exp", ["n"], ["e"]),
                 helper.make_node("Add", ["e", "one"], ["d"]), helper.make_node("Div", ["m", "d"], ["y"])]
    model = _model(nodes, {"x": x}, [("y", F)], dict(c, w=w))
    graph = optimize(load_model(model.SerializeToString()))
    assert [n.op for n in graph.nodes] == ["MatMul"] and graph.nodes[0].epilogue.act
    got, launches = _run(model, {"x": x}, device, precision)
    assert_close(got, reference(model, {"x": x}), precision)
    assert launches == 1


def test_lookalike_chain_stays_a_chain():
    x, w = _x(3, 9, 20), _x(20, 24)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Sigmoid", ["m"], ["s"]),
             helper.make_node("Mul", ["s", "m"], ["p"]), helper.make_node("Mul", ["p", "k"], ["y"])]
    model = _model(nodes, {"x": x}, [("y", F)], {"w": w, "k": np.float32(1.001)})
    graph = optimize(load_model(model.SerializeToString()))
    assert [n.op for n in graph.nodes] == ["MatMul", "FusedElementwise"]
