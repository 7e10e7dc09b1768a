"""gemm.cl through MatMul/Gemm models: every parameter family on odd shapes.

The tile parameters are forced (as a tuning file would) so that each kernel
variant — tile shapes, vector widths, local sizes, dimension order, split-K —
is checked against onnxruntime, in fp32 and fp16 storage.
"""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import clnet.ops.gemm as gemm_ops
from clnet import tuning
from conftest import assert_close, node_ops, reference, run_both

CONFIGS = {
    "class-default": None,
    "4x16v8": {"TM": 4, "TN": 16, "VW": 8},
    "3x8v4-mfirst": {"TM": 3, "TN": 8, "VW": 4, "M_FIRST": 1, "LSIZE": (2, 1, 1)},
    "splitk3": {"TM": 4, "TN": 16, "VW": 8, "KSPLIT": 3, "LSIZE": (1, 1, 1)},
    "grouped-nt2": {"TM": 5, "TN": 16, "VW": 8, "GROUP_M": 3, "NT": 2, "LSIZE": (1, 1, 1)},
    # a full group of row tiles, then a partial one, crossed by one work-item
    "grouped-partial-nt4": {"TM": 4, "TN": 8, "VW": 8, "GROUP_M": 3, "NT": 4,
                            "LSIZE": (1, 1, 1)},
    "nt3-mfirst": {"TM": 4, "TN": 8, "VW": 4, "M_FIRST": 1, "NT": 3},
    "gpu-splitk4": {"TM": 4, "TN": 8, "VW": 4, "KSPLIT": 4},
    "grouped-splitk2": {"TM": 4, "TN": 16, "VW": 8, "GROUP_M": 2, "KSPLIT": 2, "NT": 3,
                        "LSIZE": (1, 1, 1)},
    # B panels side by side: partial groups of panels (a missing panel reads
    # the last one), with split-K, grouped order and M_FIRST
    "np2-grouped": {"TM": 2, "TN": 16, "VW": 8, "NP": 2, "GROUP_M": 2, "NT": 2,
                    "LSIZE": (1, 1, 1)},
    "np3-splitk2": {"TM": 3, "TN": 8, "VW": 4, "NP": 3, "KSPLIT": 2},
    "np2-mfirst": {"TM": 4, "TN": 8, "VW": 8, "NP": 2, "M_FIRST": 1, "NT": 2},
}


@pytest.fixture(params=list(CONFIGS))
def forced_params(request, device):
    """The kernel policy forcing one parameter set on every GEMM (TM
    clamped to M, as KernelPolicy.gemm_params does)."""
    return {"gemm": CONFIGS[request.param] or tuning.class_defaults(device)}


def run_forced(model, feeds: dict, device, policy, precision: str = "fp32"):
    """(clnet outputs, reference outputs) with kernel variants forced by `policy`."""
    import clnet
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision, policy=policy)
    return session.run(None, feeds), reference(model, feeds)


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _info(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


@pytest.mark.parametrize("m,k,n", [(1, 127, 13), (13, 3, 127), (7, 130, 33)])
def test_matmul_const_weights(device, precision, forced_params, m, k, n):
    rng = np.random.default_rng(m * 1000 + n)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_info("x", (m, k))],
                   [_info("y", (m, n))], [numpy_helper.from_array(w, "w")])
    feeds = {"x": rng.standard_normal((m, k)).astype(np.float32)}
    got, want = run_forced(model, feeds, device, forced_params, precision)
    assert_close(got[0], want[0], precision)


def test_batched_matmul_runtime_operands(device, precision, forced_params):
    """Attention-style: both operands computed at run time, broadcast batch."""
    rng = np.random.default_rng(3)
    model = _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                   [_info("a", (2, 3, 13, 7)), _info("b", (3, 7, 13))],
                   [_info("y", (2, 3, 13, 13))])
    feeds = {"a": rng.standard_normal((2, 3, 13, 7)).astype(np.float32),
             "b": rng.standard_normal((3, 7, 13)).astype(np.float32)}
    got, want = run_forced(model, feeds, device, forced_params, precision)
    assert_close(got[0], want[0], precision)


def test_gemm_bias_relu_epilogue(device, precision, forced_params):
    """Gemm(transB) + bias + Relu fused into the GEMM's epilogue (or split-K reduce)."""
    rng = np.random.default_rng(5)
    m, k, n = 3, 129, 37
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["g"], transB=1, alpha=0.5),
             helper.make_node("Relu", ["g"], ["y"])]
    model = _model(nodes, [_info("x", (m, k))], [_info("y", (m, n))],
                   [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "c")])
    feeds = {"x": rng.standard_normal((m, k)).astype(np.float32)}
    got, want = run_forced(model, feeds, device, forced_params, precision)
    assert_close(got[0], want[0], precision)


def test_gemm_residual_epilogue(device, forced_params):
    """A run-time C of the output's shape is added in the epilogue."""
    rng = np.random.default_rng(6)
    m, k, n = 13, 31, 19
    w = rng.standard_normal((k, n)).astype(np.float32)
    model = _model([helper.make_node("Gemm", ["x", "w", "r"], ["y"])],
                   [_info("x", (m, k)), _info("r", (m, n))], [_info("y", (m, n))],
                   [numpy_helper.from_array(w, "w")])
    feeds = {"x": rng.standard_normal((m, k)).astype(np.float32),
             "r": rng.standard_normal((m, n)).astype(np.float32)}
    got, want = run_forced(model, feeds, device, forced_params)
    assert_close(got[0], want[0])


def test_gpu_defaults_split_k_when_tiles_are_few(device, monkeypatch, tmp_path):
    """An untuned GPU splits K for M=1 rows (125 tiles cannot fill 132 cores)."""
    from types import SimpleNamespace

    monkeypatch.setenv("CLNET_CACHE_DIR", str(tmp_path))
    gpu = SimpleNamespace(type="GPU", compute_units=132, name="gpu", driver="1",
                          platform_version="OpenCL 3.0",
                          cl_device=SimpleNamespace(vendor="Test", native_vector_width_float=1))
    assert tuning.gemm_params(gpu, 1, 1000, 768)["KSPLIT"] == 3
    assert tuning.gemm_params(gpu, 1024, 1024, 1024).get("KSPLIT", 1) == 1
    assert tuning.gemm_params(gpu, 1, 1000, 256).get("KSPLIT", 1) == 1
    tuning.reload()


def test_gemm_launch_config_rounds_to_local_size():
    defs, gsize, lsize = gemm_ops.gemm_launch_config(
        {"TM": 4, "TN": 16, "VW": 8, "LSIZE": (4, 2)}, 13, 127, 3, a_packed=True)
    assert defs["A_PACKED"] and defs["VW"] == 8
    assert lsize == (4, 2, 1)
    assert gsize == (8, 4, 3)   # ceil(127/16)=8 panels, ceil(13/4)=4 rows of tiles


def _dense_residual_model(x_shape, w, bias, res_shape, act=True):
    n = w.shape[1]
    out_shape = np.broadcast_shapes(tuple(x_shape[:-1]) + (n,), tuple(res_shape))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]),
             helper.make_node("Add", ["bias", "mm"], ["biased"]),
             helper.make_node("Add", ["biased", "r"], ["sum"])]
    nodes.append(helper.make_node("Relu", ["sum"], ["y"]) if act
                 else helper.make_node("Identity", ["sum"], ["y"]))
    return _model(nodes, [_info("x", x_shape), _info("r", res_shape)], [_info("y", out_shape)],
                  [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "bias")])


@pytest.mark.parametrize("x_shape,res_shape", [((13, 127), (13, 33)),
                                               ((3, 7, 127), (3, 7, 33)),
                                               ((3, 7, 127), (33,))])
def test_matmul_bias_residual_relu_fused(device, precision, forced_params, x_shape, res_shape):
    """MatMul + const bias Add + residual Add + Relu: the epilogue, or separate adds
    when the residual broadcasts."""
    rng = np.random.default_rng(len(x_shape) * 100 + len(res_shape))
    w = (rng.standard_normal((127, 33)) / np.sqrt(127)).astype(np.float32)
    bias = rng.standard_normal(33).astype(np.float32)
    model = _dense_residual_model(x_shape, w, bias, res_shape)
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32),
             "r": rng.standard_normal(res_shape).astype(np.float32)}
    got, want = run_forced(model, feeds, device, forced_params, precision)
    assert_close(got[0], want[0], precision)


def test_matmul_bias_add_becomes_epilogue():
    from clnet.frontend.onnx import to_graph
    from clnet.passes.fusion import optimize
    rng = np.random.default_rng(5)
    w = rng.standard_normal((127, 33)).astype(np.float32)
    model = _dense_residual_model((13, 127), w, np.ones(33, np.float32), (13, 33))
    nodes = optimize(to_graph(model)).nodes
    assert [node.op for node in nodes] == ["MatMul"]
    epilogue = nodes[0].epilogue
    assert epilogue.bias and epilogue.residual and epilogue.act


@pytest.mark.parametrize("form", ["div", "mul", "mul_left", "divisor", "shape_1"])
def test_matmul_scale_becomes_alpha(device, precision, form):
    """scores = Q.K^T / s (or * s, s * ...) with a 0-d constant s: the GEMM's
    alpha, one launch; s / scores and a [1]-shaped s stay separate ops.
    Both forms match the reference, with the scale on a run-time B and on
    packed weights."""
    from clnet.frontend.onnx import to_graph
    from clnet.passes.fusion import optimize

    rng = np.random.default_rng(11)
    s = np.array(0.125 if form.startswith("mul") else 8.0, np.float32)
    if form == "shape_1":
        s = s.reshape(1)
    op = "Div" if form in ("div", "divisor", "shape_1") else "Mul"
    ins = {"mul_left": ["s", "q"], "divisor": ["s", "q"]}.get(form, ["q", "s"])
    nodes = [helper.make_node("MatMul", ["x", "kt"], ["q"]),
             helper.make_node(op, ins, ["y"]),
             helper.make_node("MatMul", ["y", "w"], ["z"])]
    w = (rng.standard_normal((21, 5)) / 4).astype(np.float32)
    model = _model(nodes, [_info("x", (2, 13, 16)), _info("kt", (2, 16, 21))],
                   [_info("z", (2, 13, 5))], [numpy_helper.from_array(s, "s"),
                                                numpy_helper.from_array(w, "w")])
    graph = optimize(to_graph(model))
    fused = list(graph.nodes)
    if form in ("divisor", "shape_1"):
        assert node_ops(graph) == ["MatMul", op, "MatMul"]
    else:
        assert [n.op for n in fused] == ["MatMul", "MatMul"]
        assert fused[0].epilogue.alpha == pytest.approx(0.125)
    feeds = {"x": rng.standard_normal((2, 13, 16)).astype(np.float32),
             "kt": rng.standard_normal((2, 16, 21)).astype(np.float32)}
    if form == "divisor":
        return                # s / q: only that it stays apart (q can be ~0)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got[0], want[0], precision)


def _gelu_nodes(x: str, order: str, scale_op: str = "Div", scale=float(np.sqrt(2.0)),
                prefix: str = "g") -> tuple:
    """The erf GELU as exporters write it: (nodes, constants, output name)."""
    c = {f"{prefix}_s": scale, f"{prefix}_one": 1.0, f"{prefix}_half": 0.5}
    nodes = [helper.make_node(scale_op, [x, f"{prefix}_s"], [f"{prefix}_d"]),
             helper.make_node("Erf", [f"{prefix}_d"], [f"{prefix}_e"]),
             helper.make_node("Add", [f"{prefix}_one", f"{prefix}_e"], [f"{prefix}_a"])]
    if order == "half-first":    # (x * 0.5) * (1 + erf): PyTorch's export
        nodes += [helper.make_node("Mul", [x, f"{prefix}_half"], [f"{prefix}_h"]),
                  helper.make_node("Mul", [f"{prefix}_h", f"{prefix}_a"], [f"{prefix}_y"])]
    else:                        # (x * (1 + erf)) * 0.5
        nodes += [helper.make_node("Mul", [f"{prefix}_a", x], [f"{prefix}_m"]),
                  helper.make_node("Mul", [f"{prefix}_m", f"{prefix}_half"], [f"{prefix}_y"])]
    inits = [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in c.items()]
    return nodes, inits, f"{prefix}_y"


@pytest.mark.parametrize("order,scale_op,scale", [
    ("half-first", "Div", float(np.sqrt(2.0))), ("half-last", "Div", float(np.sqrt(2.0))),
    ("half-first", "Mul", float(1 / np.sqrt(2.0)))])
def test_gelu_becomes_one_node_and_a_matmul_epilogue(device, precision, order, scale_op, scale):
    """The five-op erf GELU after MatMul + bias runs in the GEMM's epilogue;
    on a graph input it is one elementwise Gelu; both match the reference."""
    from clnet.frontend.onnx import to_graph
    from clnet.passes.fusion import optimize

    rng = np.random.default_rng(9)
    w = (rng.standard_normal((37, 29)) / 6).astype(np.float32)
    b = rng.standard_normal(29).astype(np.float32)
    gelu1, c1, y1 = _gelu_nodes("mmb", order, scale_op, scale, "g1")
    gelu2, c2, y2 = _gelu_nodes("x2", order, scale_op, scale, "g2")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["mmb"])] + gelu1 + gelu2
    model = _model(nodes, [_info("x", (13, 37)), _info("x2", (5, 41))],
                   [_info(y1, (13, 29)), _info(y2, (5, 41))],
                   [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")] + c1 + c2)
    ops = node_ops(optimize(to_graph(model)))
    assert ops == ["MatMul", "Gelu"]
    feeds = {"x": rng.standard_normal((13, 37)).astype(np.float32) * 3,
             "x2": rng.standard_normal((5, 41)).astype(np.float32) * 3}
    got, want = run_both(model, feeds, device, precision)
    for g, r in zip(got, want):
        assert_close(g, r, precision)


def test_gelu_lookalikes_are_left_alone():
    """A wrong constant, or an intermediate used elsewhere, keeps the five ops."""
    from clnet.frontend.onnx import to_graph
    from clnet.passes.fusion import optimize

    nodes, inits, y = _gelu_nodes("x", "half-first", scale=1.5)
    model = _model(nodes, [_info("x", (3, 4))], [_info(y, (3, 4))], inits)
    assert node_ops(optimize(to_graph(model))).count("Erf") == 1
    nodes, inits, y = _gelu_nodes("x", "half-last")
    model = _model(nodes, [_info("x", (3, 4))], [_info(y, (3, 4)), _info("g_e", (3, 4))],
                   inits)
    assert "Gelu" not in node_ops(optimize(to_graph(model)))


@pytest.mark.parametrize("a_shape,b_shape,const_b", [
    ((300, 256), (256, 512), True),              # folded rows, packed weights
    ((2, 150, 256), (2, 256, 512), False),       # batched run-time operands
    ((3, 1, 128, 256), (2, 256, 512), False),    # A broadcast over B's batch
])
def test_half_storage_large_gemm_reads_a_as_float(device, a_shape, b_shape, const_b):
    """In half storage a large GEMM's run-time A is converted to float once
    (gemm.cl -DA_FLOAT), and so is B where at least 64 rows of A use it
    (-DB_FLOAT: packed weights, a packed run-time B, a contiguous row-major
    one); results stay within fp16 tolerance."""
    import clnet
    rng = np.random.default_rng(21)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = (rng.standard_normal(b_shape) / 16).astype(np.float32)
    out_shape = np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) + (a_shape[-2], b_shape[-1])
    inputs, inits, feeds = [_info("a", a_shape)], [], {"a": a}
    if const_b:
        inits = [numpy_helper.from_array(b, "b")]
    else:
        inputs.append(_info("b", b_shape))
        feeds["b"] = b
    model = _model([helper.make_node("MatMul", ["a", "b"], ["y"])], inputs,
                   [_info("y", out_shape)], inits)
    session = clnet.InferenceSession(model.SerializeToString(), device=device, precision="fp16")
    (got,) = session.run(None, feeds)
    gemms = [dict(l.defines) for l in session.last_plan.launches if l.entry == "gemm"]
    assert gemms and all(d.get("A_FLOAT") and d.get("B_FLOAT") for d in gemms)
    assert "convert_storage" in {l.entry for l in session.last_plan.launches}
    want = np.matmul(a.astype(np.float16).astype(np.float64), b.astype(np.float16))
    assert_close([got], [want], "fp16")
